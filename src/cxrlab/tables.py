"""The two tables every step reads: ``images`` (one row per image) and ``findings`` (one row per
(image, reader, label, box)).

Coordinates are pixels of the original image, ``x_min, y_min, x_max, y_max``, origin top-left; an
image-level label has NaN coordinates. A tables folder holds ``images.parquet`` and ``findings.parquet``.
Validation names the offending rows so a user can find them in the source files.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.atomic import atomic_path
from cxrlab.errors import CxrlabError

IMAGES_FILE = "images.parquet"
FINDINGS_FILE = "findings.parquet"
BOX_COLUMNS = ["x_min", "y_min", "x_max", "y_max"]

# column -> pandas dtype; dataset-specific extra columns are allowed after these.
IMAGE_COLUMNS: dict[str, str] = {
    "image_id": "string",
    "dataset": "string",
    "split": "string",
    "patient_id": "string",
    "path": "string",
    "width": "Int64",
    "height": "Int64",
    "sex": "string",
    "age": "Float64",
    "view": "string",
}
FINDING_COLUMNS: dict[str, str] = {
    "image_id": "string",
    "reader": "string",
    "label": "string",
    "x_min": "float64",
    "y_min": "float64",
    "x_max": "float64",
    "y_max": "float64",
    "score": "float64",
}
SEXES = {"M", "F", "O"}
CONSENSUS = "consensus"
"""The ``reader`` of fused labels: box fusion and majority vote, or a release's own (VinDr test)."""
MAX_EXAMPLES = 5


class TableError(CxrlabError):
    """A table that breaks the schema; the message lists the offending rows."""


@dataclass
class Tables:
    images: pd.DataFrame
    findings: pd.DataFrame


def empty_images() -> pd.DataFrame:
    return conform_images(pd.DataFrame({c: [] for c in IMAGE_COLUMNS}))


def empty_findings() -> pd.DataFrame:
    return conform_findings(pd.DataFrame({c: [] for c in FINDING_COLUMNS}))


def _conform(df: pd.DataFrame, schema: dict[str, str], what: str) -> pd.DataFrame:
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise TableError(f"{what} table lacks column(s) {', '.join(missing)}")
    out = df.copy()
    for column, dtype in schema.items():
        try:
            out[column] = out[column].astype(dtype)
        except (TypeError, ValueError) as exc:
            raise TableError(f"{what} table: column '{column}' cannot be read as {dtype}: {exc}") from None
    extras = [c for c in out.columns if c not in schema]
    return out[list(schema) + extras].reset_index(drop=True)


def conform_images(df: pd.DataFrame) -> pd.DataFrame:
    """Cast to the images schema (column order, dtypes); extra columns are kept after the schema's."""
    return _conform(df, IMAGE_COLUMNS, "images")


def conform_findings(df: pd.DataFrame) -> pd.DataFrame:
    """Cast to the findings schema (column order, dtypes); extra columns are kept after the schema's."""
    return _conform(df, FINDING_COLUMNS, "findings")


def _examples(df: pd.DataFrame, mask: pd.Series | np.ndarray, columns: Iterable[str]) -> str:
    rows = df.loc[np.asarray(mask, dtype=bool), list(columns)].head(MAX_EXAMPLES)
    return "; ".join(f"row {i}: " + ", ".join(f"{k}={v}" for k, v in r.items()) for i, r in rows.iterrows())


def _problem(df: pd.DataFrame, mask: pd.Series | np.ndarray, text: str, columns: Iterable[str]) -> str | None:
    n = int(np.asarray(mask, dtype=bool).sum())
    if n == 0:
        return None
    return f"{n} row(s) {text} ({_examples(df, mask, columns)})"


def validate_images(images: pd.DataFrame) -> pd.DataFrame:
    """Conform and check an images table; raise :class:`TableError` naming the offending rows."""
    df = conform_images(images)
    problems = [
        _problem(df, df["image_id"].isna() | (df["image_id"] == ""), "without image_id", ["image_id"]),
        _problem(df, df["image_id"].duplicated(keep=False), "with a duplicated image_id", ["image_id"]),
        _problem(df, (df["width"] <= 0).fillna(False), "with width <= 0", ["image_id", "width"]),
        _problem(df, (df["height"] <= 0).fillna(False), "with height <= 0", ["image_id", "height"]),
        _problem(df, ((df["age"] < 0) | (df["age"] > 150)).fillna(False), "with age outside 0-150",
                 ["image_id", "age"]),
        _problem(df, df["sex"].notna() & ~df["sex"].isin(SEXES).fillna(False),
                 f"with sex not in {sorted(SEXES)}", ["image_id", "sex"]),
    ]  # fmt: skip
    _raise_if("images", problems)
    return df


def validate_findings(findings: pd.DataFrame, images: pd.DataFrame | None = None) -> pd.DataFrame:
    """Conform and check a findings table (boxes, scores, and image ids against ``images`` if given)."""
    df = conform_findings(findings)
    boxes = df[BOX_COLUMNS].to_numpy(dtype=float)
    nan = np.isnan(boxes)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    has_box = ~nan.any(axis=1)
    inverted = has_box & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    infinite = np.isinf(boxes).any(axis=1)
    score = df["score"].to_numpy(dtype=float)
    cols = ["image_id", "reader", "label", *BOX_COLUMNS]
    problems = [
        _problem(df, df["image_id"].isna(), "without image_id", cols),
        _problem(df, df["label"].isna() | (df["label"] == ""), "without label", cols),
        _problem(df, df["reader"].isna() | (df["reader"] == ""), "without reader", cols),
        _problem(df, partial, "with some but not all box coordinates", cols),
        _problem(df, inverted, "with x_max <= x_min or y_max <= y_min", cols),
        _problem(df, infinite, "with infinite coordinates", cols),
        _problem(df, np.isnan(score) | (score < 0) | (score > 1), "with score outside [0, 1]",
                 [*cols, "score"]),
    ]  # fmt: skip
    if images is not None:
        unknown = ~df["image_id"].isin(images["image_id"]).fillna(False)
        problems.append(_problem(df, unknown, "naming an image_id absent from the images table", cols))
    _raise_if("findings", problems)
    return df


def _raise_if(what: str, problems: list[str | None]) -> None:
    found = [p for p in problems if p]
    if found:
        raise TableError(f"invalid {what} table: " + " | ".join(found))


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically: a reader never sees a half-written file under the final name."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such table file")
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise TableError(f"{path}: not a readable Parquet file ({exc})") from None


def save_tables(folder: str | Path, images: pd.DataFrame, findings: pd.DataFrame) -> Path:
    """Validate both tables and write them into ``folder``."""
    images = validate_images(images)
    findings = validate_findings(findings, images)
    folder = Path(folder)
    write_parquet(images, folder / IMAGES_FILE)
    write_parquet(findings, folder / FINDINGS_FILE)
    return folder


def load_tables(folder: str | Path, *, validate: bool = True) -> Tables:
    """Read a tables folder written by :func:`save_tables` (or by any step that follows the schema)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TableError(f"{folder}: not a tables folder (expected {IMAGES_FILE} and {FINDINGS_FILE})")
    images = read_parquet(folder / IMAGES_FILE)
    findings = read_parquet(folder / FINDINGS_FILE)
    if validate:
        try:
            images = validate_images(images)
            findings = validate_findings(findings, images)
        except TableError as exc:
            raise TableError(f"{folder}: {exc}") from None
    else:
        images, findings = conform_images(images), conform_findings(findings)
    return Tables(images, findings)


def has_box(findings: pd.DataFrame) -> np.ndarray:
    """Boolean mask of rows that carry a box (all four coordinates present)."""
    return findings[BOX_COLUMNS].notna().all(axis=1).to_numpy()


READER_DEFAULTS = ("consensus-or-all", "consensus-or-only", "only", "all")


def select_readers(
    findings: pd.DataFrame,
    readers: str | list[str] | tuple[str, ...] | None = None,
    *,
    default: str = "consensus-or-all",
    where: str = "the findings",
    parameter: str = "reader",
) -> tuple[pd.DataFrame, str]:
    """The rows of the readers asked for, or of the default readers; and who they are, in words.

    ``readers`` given: their rows (a reader absent from ``findings`` is a :class:`ParameterError` naming
    ``parameter``). Otherwise by ``default``: ``consensus-or-all`` the ``consensus`` reader when present,
    else every reader (exports); ``consensus-or-only`` the consensus, else the only reader (truth for
    box metrics); ``only`` the only reader (a model's predictions); ``all`` every reader (image-level
    truth). Where the default cannot choose, the error names ``parameter`` and the readers found.
    """
    from cxrlab.errors import ParameterError  # here, so that this function stays one block of the file

    if default not in READER_DEFAULTS:
        raise ValueError(f"default must be one of {', '.join(READER_DEFAULTS)}, not {default!r}")
    present = sorted(findings["reader"].dropna().astype(str).unique())
    shown = ", ".join(present[:10]) + (" ..." if len(present) > 10 else "") or "none"
    if readers is not None and len(readers):
        wanted = [readers] if isinstance(readers, str) else list(readers)
        unknown = [r for r in wanted if r not in present]
        if unknown:
            raise ParameterError(parameter, f"{', '.join(unknown)}: no rows in {where}; readers: {shown}")
        return findings[findings["reader"].isin(wanted)], ", ".join(wanted)
    if default == "all":
        return findings, "any reader"
    if default != "only" and CONSENSUS in present:
        return findings[findings["reader"] == CONSENSUS], CONSENSUS
    if default == "consensus-or-all" or len(present) == 1:
        return findings, ", ".join(present) if len(present) == 1 else "every reader"
    build = f" and no '{CONSENSUS}' (or build a consensus first)" if default == "consensus-or-only" else ""
    raise ParameterError(parameter, f"is needed: {where} has {len(present)} readers ({shown}){build}")
