"""The conversion manifest: one schema, one writer, one reader (convert writes it, export reads it).

One row per source image of the last run, plus rows for sources removed since an earlier run whose
outputs are still in the folder (status ``removed``). ``output`` is the file name relative to the folder
(empty when there is no output); ``status`` is ``ok``, ``failed`` or ``removed``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from cxrlab.errors import CxrlabError

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "MANIFEST_CSV",
    "STATUSES",
    "manifest_frame",
    "read_manifest",
    "summarize",
    "write_manifest",
]

MANIFEST = "manifest.parquet"
MANIFEST_CSV = "manifest.csv"
STATUSES = ("ok", "failed", "removed")

STRING_COLUMNS = [
    "image_id", "source", "output", "status", "error", "transfer_syntax", "transfer_syntax_name", "decoder",
    "photometric", "modality", "voi", "voi_detail", "voi_function", "notes",
]  # fmt: skip
INT_COLUMNS = [
    "orig_width", "orig_height", "width", "height", "j2k_reduce", "bits", "source_bytes", "source_mtime_ns",
    "worker_pid",
]  # fmt: skip
FLOAT_COLUMNS = [
    "scale_x", "scale_y", "rescale_slope", "rescale_intercept", "window_center", "window_width", "range_low",
    "range_high", "seconds", "worker_peak_rss_mb",
]  # fmt: skip
BOOL_COLUMNS = ["syntax_inferred", "inverted"]
MANIFEST_COLUMNS = [
    "image_id", "source", "output", "status", "error",
    "orig_width", "orig_height", "width", "height", "scale_x", "scale_y",
    "transfer_syntax", "transfer_syntax_name", "syntax_inferred", "decoder", "j2k_reduce",
    "photometric", "modality", "rescale_slope", "rescale_intercept",
    "voi", "voi_detail", "window_center", "window_width", "voi_function", "range_low", "range_high",
    "inverted", "bits", "notes",
    "source_bytes", "source_mtime_ns", "seconds", "worker_pid", "worker_peak_rss_mb",
]  # fmt: skip
"""Every column, in order; the typed groups above give each its dtype."""


def manifest_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """The records (from the journal) as a typed manifest table, columns in :data:`MANIFEST_COLUMNS` order."""
    df = pd.DataFrame(records)
    for column in MANIFEST_COLUMNS:
        if column not in df.columns:
            df[column] = pd.NA
    df = df[MANIFEST_COLUMNS]
    for column in STRING_COLUMNS:
        df[column] = df[column].astype("string")
    for column in ("output", "error", "notes"):  # text that may be empty: "" (a CSV reads it back as NA)
        df[column] = df[column].fillna("")
    for column in INT_COLUMNS:
        df[column] = pd.to_numeric(df[column]).astype("Int64")
    for column in FLOAT_COLUMNS:
        df[column] = pd.to_numeric(df[column]).astype("float64")
    for column in BOOL_COLUMNS:
        df[column] = df[column].astype("boolean")
    return df


def write_manifest(df: pd.DataFrame, folder: str | Path) -> Path:
    """Write ``manifest.parquet`` and ``manifest.csv`` as a pair: both are written to unique temporary
    names first and renamed only when both succeeded, so a full disk leaves the previous pair intact."""
    folder = Path(folder)
    temps: list[tuple[Path, Path]] = []
    try:
        for name in (MANIFEST, MANIFEST_CSV):
            final = folder / name
            tmp = folder / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            temps.append((tmp, final))
            if name == MANIFEST:
                df.to_parquet(tmp, index=False)
            else:
                df.to_csv(tmp, index=False)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return folder / MANIFEST


def read_manifest(folder: str | Path, *, ok_only: bool = False) -> pd.DataFrame:
    """The manifest of a converted folder (Parquet, else CSV), typed as :func:`manifest_frame` makes it.

    A manifest written by another tool needs at least ``image_id``, ``output``, ``width``, ``height``,
    ``scale_x``, ``scale_y``; ``ok_only`` keeps the rows with an output.
    """
    folder = Path(folder)
    path = next((folder / n for n in (MANIFEST, MANIFEST_CSV) if (folder / n).is_file()), None)
    if path is None:
        raise CxrlabError(f"{folder}: no conversion manifest ({MANIFEST} or {MANIFEST_CSV})")
    try:
        if path.suffix == ".parquet":
            raw = pd.read_parquet(path)
        else:
            raw = pd.read_csv(path, dtype={"image_id": str})
    except Exception as exc:
        raise CxrlabError(f"{path}: not a readable manifest ({exc})") from None
    missing = [c for c in ("image_id", "output", "width", "height", "scale_x", "scale_y") if c not in raw]
    if missing:
        raise CxrlabError(f"{path}: manifest lacks column(s) {', '.join(missing)}")
    if "status" not in raw.columns:
        raw["status"] = "ok"
    df = manifest_frame(raw.to_dict("records"))
    if ok_only:
        df = df[(df["status"] == "ok") & df["output"].fillna("").ne("")].reset_index(drop=True)
    return df


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Counts over the converted images: by transfer syntax, decoder and VOI step; MONOCHROME1 inverted,
    JPEG 2000 decoded at a reduced resolution, syntax inferred; images with a note."""
    ok = df[df["status"] == "ok"]
    return {
        "by_transfer_syntax": ok["transfer_syntax_name"].fillna("PNG").value_counts().to_dict(),
        "by_decoder": ok["decoder"].value_counts().to_dict(),
        "by_voi": ok["voi"].value_counts().to_dict(),
        "inverted_monochrome1": int(ok["inverted"].fillna(False).sum()),
        "j2k_reduced": int((ok["j2k_reduce"].fillna(0) > 0).sum()),
        "syntax_inferred": int(ok["syntax_inferred"].fillna(False).sum()),
        "with_notes": int((ok["notes"].fillna("") != "").sum()),
        "removed_sources": int((df["status"] == "removed").sum()),
    }
