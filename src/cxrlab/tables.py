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
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.atomic import atomic_path, atomic_paths
from cxrlab.errors import CxrlabError, UsageError
from cxrlab.problems import MAX_EXAMPLES, ProblemLog

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
MAX_PLAUSIBLE_AGE = 120.0
"""Years; an age above it is a data error (the oldest verified human lived 122 years). Every reader of ages
(NIH's Data_Entry, DICOM headers) masks ages above it and the images table refuses them."""


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


def _offending(
    log: ProblemLog,
    kind: str,
    df: pd.DataFrame,
    mask: pd.Series | np.ndarray,
    text: str,
    columns: Iterable[str],
) -> None:
    """Report the rows of ``df`` where ``mask`` holds, the first few described by ``columns``."""
    mask = np.asarray(mask, dtype=bool)
    rows = df.loc[mask, list(columns)].head(MAX_EXAMPLES)
    described = [
        "row " + str(i) + ": " + ", ".join(f"{k}={v}" for k, v in r.items()) for i, r in rows.iterrows()
    ]
    log.add(kind, text, described, count=int(mask.sum()))


def validate_images(images: pd.DataFrame) -> pd.DataFrame:
    """Conform and check an images table; raise :class:`TableError` naming the offending rows."""
    df = conform_images(images)
    log = ProblemLog("images table")
    ids = ["image_id"]
    _offending(log, "no-id", df, df["image_id"].isna() | (df["image_id"] == ""), "without image_id", ids)
    _offending(
        log, "duplicate-id", df, df["image_id"].duplicated(keep=False), "with a duplicated image_id", ids
    )
    _offending(log, "bad-width", df, (df["width"] <= 0).fillna(False), "with width <= 0", [*ids, "width"])
    _offending(log, "bad-height", df, (df["height"] <= 0).fillna(False), "with height <= 0", [*ids, "height"])
    bad_age = ((df["age"] < 0) | (df["age"] > MAX_PLAUSIBLE_AGE)).fillna(False)
    _offending(log, "bad-age", df, bad_age, f"with age outside 0-{MAX_PLAUSIBLE_AGE:g}", [*ids, "age"])
    bad_sex = df["sex"].notna() & ~df["sex"].isin(SEXES).fillna(False)
    _offending(log, "bad-sex", df, bad_sex, f"with sex not in {sorted(SEXES)}", [*ids, "sex"])
    _raise_if("images", log)
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
    log = ProblemLog("findings table")
    _offending(log, "no-id", df, df["image_id"].isna(), "without image_id", cols)
    _offending(log, "no-label", df, df["label"].isna() | (df["label"] == ""), "without label", cols)
    _offending(log, "no-reader", df, df["reader"].isna() | (df["reader"] == ""), "without reader", cols)
    _offending(log, "partial-box", df, partial, "with some but not all box coordinates", cols)
    _offending(log, "inverted-box", df, inverted, "with x_max <= x_min or y_max <= y_min", cols)
    _offending(log, "infinite-box", df, infinite, "with infinite coordinates", cols)
    bad_score = np.isnan(score) | (score < 0) | (score > 1)
    _offending(log, "bad-score", df, bad_score, "with score outside [0, 1]", [*cols, "score"])
    if images is not None:
        unknown = ~isin_strings(df["image_id"], images["image_id"])
        _offending(log, "unknown-image", df, unknown, "naming an image_id absent from the images table", cols)
    _raise_if("findings", log)
    return df


def _arrow_strings(values: Any) -> Any:
    """``values`` (Series, Index, array, list) as one pyarrow large_string array, zero-copy where the
    pandas strings are already Arrow-backed."""
    import pyarrow as pa

    data = values.array if isinstance(values, pd.Series | pd.Index) else values
    arr = pa.array(data) if not isinstance(data, list) else pa.array(data, type=pa.large_string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if pa.types.is_large_string(arr.type) else arr.cast(pa.large_string())


def isin_strings(values: Any, allowed: Any) -> np.ndarray:
    """``values.isin(allowed)`` for string ids as a boolean array, through pyarrow's hash lookup.

    pandas' ``isin`` on Arrow-backed strings loops in Python (about 0.9 s for 112,000 NIH ids against as
    many, ``Index.get_indexer`` 0.17 s, this 0.03 s); missing values match only a missing value in
    ``allowed``. Values that are not strings fall back to pandas.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        mask = pc.is_in(_arrow_strings(values), value_set=_arrow_strings(allowed))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pd.Series(values).isin(list(allowed)).to_numpy(dtype=bool)
    return mask.to_numpy(zero_copy_only=False).astype(bool, copy=False)


def positions_in(values: Any, allowed: Any) -> np.ndarray:
    """For each of ``values``, its position in ``allowed`` (the first, for repeats), -1 where absent:
    ``pd.Index(allowed).get_indexer(values)`` through pyarrow, about 5x faster on Arrow strings."""
    import pyarrow.compute as pc

    found = pc.index_in(_arrow_strings(values), value_set=_arrow_strings(allowed))
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def _raise_if(what: str, log: ProblemLog) -> None:
    if len(log):
        found = [f"{p.count} row(s) {p.message} ({'; '.join(p.examples)})" for p in log]
        raise TableError(f"invalid {what} table: " + " | ".join(found))


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    """Write atomically: a reader never sees a half-written file under the final name."""
    path = Path(path)
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False, write_page_checksum=True)
    return path


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a Parquet table, checking what Parquet itself does not by default.

    Page checksums are verified where the writer stored them (:func:`write_parquet` and
    :func:`save_tables` do), and the decoded columns are validated in full: a flipped byte in a string
    page otherwise loads as invalid UTF-8 and fails far from here, deep inside pandas.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TableError(f"{path}: no such table file")
    try:
        table = pq.read_table(path, page_checksum_verification=True)
        table.validate(full=True)
        return table.to_pandas()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise TableError(f"{path}: not a readable Parquet file ({exc})") from None


def save_tables(
    folder: str | Path,
    images: pd.DataFrame,
    findings: pd.DataFrame,
    *,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Validate both tables and write them into ``folder``, with ``extra`` files (name -> bytes: a report).

    All files change together: each is written to a temporary name first and the final names are replaced
    only when every write succeeded, so a full disk or an interruption never leaves new images beside old
    findings.
    """
    images = validate_images(images)
    findings = validate_findings(findings, images)
    folder = Path(folder)
    extra = extra or {}
    names = [IMAGES_FILE, FINDINGS_FILE, *extra]
    with atomic_paths([folder / n for n in names]) as temps:
        images.to_parquet(temps[0], index=False, write_page_checksum=True)
        findings.to_parquet(temps[1], index=False, write_page_checksum=True)
        for tmp, data in zip(temps[2:], extra.values(), strict=True):
            tmp.write_bytes(data)
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


def images_of_split(
    images: pd.DataFrame, split: str | None, *, where: str = "the images table", parameter: str = "split"
) -> pd.DataFrame:
    """The images of ``split`` (all of them when None); a split no image has is a :class:`ParameterError`
    naming ``parameter`` and the splits there are, rather than an empty selection scored or written."""
    from cxrlab.errors import ParameterError

    if split is None:
        return images
    chosen = images[images["split"] == split]
    if chosen.empty:
        splits = ", ".join(sorted(map(str, images["split"].dropna().unique()))) or "none"
        raise ParameterError(parameter, f"'{split}' is the split of no image in {where} (splits: {splits})")
    return chosen


READER_DEFAULTS = ("consensus-or-all", "consensus-or-only", "only", "all", "consensus-per-image")


def human_readers(findings: pd.DataFrame) -> list[str]:
    """The readers who are people: not ``consensus``, and every score 1 (a radiologist marks a finding; a
    model gives it a probability)."""
    lowest = findings.groupby("reader", observed=True)["score"].min()
    return sorted(str(r) for r, s in lowest.items() if s >= 1.0 and r != CONSENSUS)


def _consensus_per_image(findings: pd.DataFrame) -> pd.DataFrame:
    """Each image's ``consensus`` rows where it has a consensus reader; elsewhere the rows of its human
    readers (of every reader when there is no human one, as in a model's own table)."""
    is_consensus = (findings["reader"] == CONSENSUS).to_numpy()
    decided = findings["image_id"].isin(findings.loc[is_consensus, "image_id"]).to_numpy()
    people = human_readers(findings) or sorted(set(findings["reader"].dropna().astype(str)) - {CONSENSUS})
    return findings[is_consensus | (~decided & findings["reader"].isin(people).to_numpy())]


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
    truth); ``consensus-per-image`` image by image, the consensus where the image has one, else its human
    readers (:func:`human_readers`; every reader when none is human), the readers of a label vote (label
    statistics). Where the default cannot choose, the error names ``parameter`` and the readers found.
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
            hint = f" (build a {CONSENSUS} first)" if CONSENSUS in unknown else ""
            raise ParameterError(
                parameter, f"{', '.join(unknown)}: no rows in {where}{hint}; readers: {shown}"
            )
        return findings[findings["reader"].isin(wanted)], ", ".join(wanted)
    if default == "all":
        return findings, "any reader"
    if default == "consensus-per-image":
        return _consensus_per_image(findings), "the consensus where an image has one, else its human readers"
    if default != "only" and CONSENSUS in present:
        return findings[findings["reader"] == CONSENSUS], CONSENSUS
    if default == "consensus-or-all" or len(present) == 1:
        return findings, ", ".join(present) if len(present) == 1 else "every reader"
    build = f" and no '{CONSENSUS}' (or build a consensus first)" if default == "consensus-or-only" else ""
    raise ParameterError(parameter, f"is needed: {where} has {len(present)} readers ({shown}){build}")


TABLE_SUFFIXES = (".csv", ".tsv", ".parquet")


def check_table_suffix(out: str | Path) -> str:
    """The suffix of a table file to write (``.csv``, ``.tsv`` or ``.parquet``), or a usage error."""
    suffix = Path(out).suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise UsageError(f"{out}: the output must end in .csv, .tsv or .parquet")
    return suffix


def write_table(table: pd.DataFrame, out: str | Path) -> Path:
    """Any table (not only the two of the schema) as CSV, TSV or Parquet by suffix, written to a temporary
    name then renamed; in CSV an empty cell is a missing value (for report labels: not mentioned)."""
    out = Path(out)
    suffix = check_table_suffix(out)
    with atomic_path(out, suffix=".part") as tmp:
        if suffix == ".parquet":
            table.to_parquet(tmp, index=False)
        else:
            table.to_csv(tmp, index=False, sep="\t" if suffix == ".tsv" else ",")
    return out
