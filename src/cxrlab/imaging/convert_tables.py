"""The tables side of a conversion: images tables as sources, findings whose boxes follow the images.

Kept apart from :mod:`cxrlab.imaging.convert` so that converting a folder of images never imports pandas
(~0.2 s of every run's start-up): this module is imported only when a table is given.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cxrlab.errors import ParameterError, UsageError
from cxrlab.imaging.transform import scale_findings
from cxrlab.tables import (
    FINDINGS_FILE,
    IMAGES_FILE,
    conform_findings,
    conform_images,
    load_tables,
    read_parquet,
    save_tables,
)

__all__ = ["load_findings", "table_sources", "write_tables"]


def table_sources(src: Path, root: Path | None
                  ) -> tuple[list[tuple[str, Path]], pd.DataFrame, pd.DataFrame | None]:  # fmt: skip
    """(image id, path) pairs, the images table and (for a tables folder) the findings of ``src``: a tables
    folder or an images table file (.parquet/.csv with ``image_id`` and ``path``)."""
    if src.is_dir():
        tables = load_tables(src)
        return _table_pairs(tables.images, root or src, src), tables.images, tables.findings
    table = read_parquet(src) if src.suffix.lower() == ".parquet" else _read_csv(src)
    pairs = _table_pairs(table, root or src.parent, src)
    return pairs, conform_images(_with_image_columns(table)), None


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"image_id": str, "path": str})
    except Exception as exc:
        raise UsageError(f"{path}: not a readable CSV table ({exc})") from None


def _table_pairs(table: pd.DataFrame, root: Path, what: Path) -> list[tuple[str, Path]]:
    missing = [c for c in ("image_id", "path") if c not in table.columns]
    if missing:
        raise UsageError(f"{what}: the images table lacks column(s) {', '.join(missing)}")
    no_path = table["path"].isna()
    if no_path.any():
        first = table["image_id"][no_path].iloc[0]
        raise UsageError(f"{what}: {int(no_path.sum())} image(s) have no path (first: {first})")
    return [(str(i), root / str(p)) for i, p in zip(table["image_id"], table["path"], strict=True)]


def _with_image_columns(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for column in ("dataset", "split", "patient_id", "width", "height", "sex", "age", "view"):
        if column not in table.columns:
            table[column] = pd.NA
    return table


def load_findings(path: Path, images: pd.DataFrame | None) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    if path.is_dir():
        if (path / IMAGES_FILE).is_file():
            tables = load_tables(path)
            return tables.images, tables.findings
        return images, conform_findings(read_parquet(path / FINDINGS_FILE))
    if path.suffix.lower() == ".parquet":
        return images, conform_findings(read_parquet(path))
    raise ParameterError("findings", f"must be a tables folder or a findings .parquet file (got {path})")


def write_tables(out: Path, manifest: pd.DataFrame, images: pd.DataFrame | None,
                 findings: pd.DataFrame) -> Path:  # fmt: skip
    """The images table at the new size and the findings rescaled, into ``out`` (converted images only)."""
    ok = manifest[manifest["status"] == "ok"]
    sizes = pd.DataFrame(
        {
            "image_id": ok["image_id"].astype("string"),
            "new_path": ok["output"].astype("string"),
            "new_width": ok["width"],
            "new_height": ok["height"],
            "source_width": ok["orig_width"],
            "source_height": ok["orig_height"],
            "scale_x": ok["scale_x"],
            "scale_y": ok["scale_y"],
        }
    )
    if images is None:
        images = _with_image_columns(sizes[["image_id"]].assign(path=sizes["new_path"]))
    base = images.copy()
    base["image_id"] = base["image_id"].astype("string")
    merged = base.merge(sizes, on="image_id", how="inner")
    if "path" in merged.columns:
        merged = merged.rename(columns={"path": "source_path"})
    merged["path"] = merged.pop("new_path")
    merged["width"] = merged.pop("new_width")
    merged["height"] = merged.pop("new_height")
    new_images = conform_images(merged)
    findings = conform_findings(findings)
    known = findings["image_id"].isin(new_images["image_id"])
    new_findings = scale_findings(findings[known], sizes[["image_id", "scale_x", "scale_y"]])
    save_tables(out, new_images, new_findings)
    return out
