"""The conversion manifest: one schema, one writer, one reader (convert writes it, export reads it).

One row per source image of the last run, plus rows for sources removed since an earlier run whose
outputs are still in the folder (status ``removed``). ``output`` is the file name relative to the folder
(empty when there is no output); ``status`` is ``ok``, ``failed`` or ``removed``.

The writer takes the records themselves and needs no pandas (pyarrow for the Parquet file, the csv module
for the CSV): a conversion of a folder never imports pandas, ~0.2 s of every run. The files are those
pandas writes from :func:`manifest_frame` (the same Arrow schema and pandas metadata, the same CSV text;
the tests compare them), so any reader gets the typed table back.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrlab.errors import CxrlabError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MANIFEST",
    "MANIFEST_COLUMNS",
    "MANIFEST_CSV",
    "STATUSES",
    "manifest_frame",
    "read_manifest",
    "summarize",
    "summarize_records",
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
    """The records (from the journal) as a typed manifest table, columns in :data:`MANIFEST_COLUMNS` order.

    Each column is built from the typed values (:func:`_typed`), so that a 19-digit ``source_mtime_ns``
    stays exact even where another row lacks it (no trip through float64)."""
    import pandas as pd

    rows = [_typed(r) for r in records]
    dtypes = {
        **dict.fromkeys(STRING_COLUMNS, "string"),
        **dict.fromkeys(INT_COLUMNS, "Int64"),
        **dict.fromkeys(FLOAT_COLUMNS, "float64"),
        **dict.fromkeys(BOOL_COLUMNS, "boolean"),
    }
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=dtypes[c]) for c in MANIFEST_COLUMNS})


def write_manifest(records: list[dict[str, Any]] | pd.DataFrame, folder: str | Path) -> Path:
    """Write ``manifest.parquet`` and ``manifest.csv`` as a pair: both are written to unique temporary
    names first and renamed only when both succeeded, so a full disk leaves the previous pair intact."""
    folder = Path(folder)
    rows = [_typed(r) for r in (_records_of(records) if not isinstance(records, list) else records)]
    temps: list[tuple[Path, Path]] = []
    try:
        for name in (MANIFEST, MANIFEST_CSV):
            final = folder / name
            tmp = folder / f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            temps.append((tmp, final))
            if name == MANIFEST:
                _write_parquet(rows, tmp)
            else:
                _write_csv(rows, tmp)
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return folder / MANIFEST


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA (recognised without importing pandas)."""
    return value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType"


def _typed(record: dict[str, Any]) -> dict[str, Any]:
    """One row in :data:`MANIFEST_COLUMNS` order, each value as :func:`manifest_frame` types it (None when
    missing; the text columns that may be empty are "")."""
    row: dict[str, Any] = {}
    for column in MANIFEST_COLUMNS:
        value: Any = record.get(column)
        if _missing(value):
            row[column] = "" if column in ("output", "error", "notes") else None
        elif column in _INT:
            row[column] = int(value)
        elif column in _FLOAT:
            row[column] = float(value)
        elif column in _BOOL:
            row[column] = bool(value)
        else:
            row[column] = str(value)
    return row


_INT, _FLOAT, _BOOL = frozenset(INT_COLUMNS), frozenset(FLOAT_COLUMNS), frozenset(BOOL_COLUMNS)


def _records_of(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [dict(zip(df.columns, values, strict=True)) for values in df.itertuples(index=False)]


def _write_parquet(rows: list[dict[str, Any]], path: Path) -> None:
    """The rows through Arrow's JSON reader with the manifest's schema: ``pyarrow.array`` and the table
    constructors would import pandas (~0.2 s) just to check whether they were given pandas objects."""
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    kinds = {**dict.fromkeys(INT_COLUMNS, pa.int64()), **dict.fromkeys(FLOAT_COLUMNS, pa.float64()),
             **dict.fromkeys(BOOL_COLUMNS, pa.bool_())}  # fmt: skip
    schema = pa.schema([pa.field(c, kinds.get(c, pa.large_string())) for c in MANIFEST_COLUMNS])
    if rows:
        lines = "\n".join(json.dumps(row, allow_nan=False) for row in rows).encode()
        options = pa_json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
        table = pa_json.read_json(io.BytesIO(lines), parse_options=options,
                                  read_options=pa_json.ReadOptions(use_threads=False))  # fmt: skip
        table = table.select(MANIFEST_COLUMNS)  # in the schema's order already (no cast: it imports compute)
    else:
        table = schema.empty_table()
    pq.write_table(table.replace_schema_metadata({b"pandas": _pandas_metadata(pa.__version__)}), path)


def _pandas_metadata(pyarrow_version: str) -> bytes:
    """The metadata pandas stores with the table (its dtypes: string, Int64, float64, boolean), so that
    ``pandas.read_parquet`` types the columns as :func:`manifest_frame` does."""
    from importlib.metadata import version

    def column(name: str) -> dict[str, Any]:
        pandas_type, numpy_type = (("int64", "Int64") if name in _INT else ("float64", "float64")
                                   if name in _FLOAT else ("bool", "boolean") if name in _BOOL
                                   else ("object", "string"))  # fmt: skip
        return {"name": name, "field_name": name, "pandas_type": pandas_type, "numpy_type": numpy_type,
                "metadata": None}  # fmt: skip

    return json.dumps({
        "index_columns": [], "column_indexes": [], "columns": [column(c) for c in MANIFEST_COLUMNS],
        "attributes": {}, "creator": {"library": "pyarrow", "version": pyarrow_version},
        "pandas_version": version("pandas"),
    }).encode()  # fmt: skip


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    """The text ``DataFrame.to_csv(index=False)`` writes: missing values empty, floats by their shortest
    repr, booleans True/False, minimal quoting, ``\\n`` line ends."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for row in rows:
            writer.writerow(["" if (v := row[c]) is None else repr(v) if isinstance(v, float) else v
                             for c in MANIFEST_COLUMNS])  # fmt: skip


def read_manifest(folder: str | Path, *, ok_only: bool = False) -> pd.DataFrame:
    """The manifest of a converted folder (Parquet, else CSV), typed as :func:`manifest_frame` makes it.

    A manifest written by another tool needs at least ``image_id``, ``output``, ``width``, ``height``,
    ``scale_x``, ``scale_y``; ``ok_only`` keeps the rows with an output.
    """
    import pandas as pd

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
    """:func:`summarize_records` of a manifest table (from :func:`read_manifest`)."""
    return summarize_records(_records_of(df))


def summarize_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the converted images: by transfer syntax, decoder and VOI step (most frequent first);
    MONOCHROME1 inverted, JPEG 2000 decoded at a reduced resolution, syntax inferred; images with a note;
    outputs of removed sources kept."""
    ok = [_typed(r) for r in records if r.get("status") == "ok"]

    def counts(column: str, missing: str | None = None) -> dict[str, int]:
        found = Counter(str(v) for r in ok if (v := missing if r[column] is None else r[column]) is not None)
        return dict(sorted(found.items(), key=lambda kv: -kv[1]))  # stable: ties in order of appearance

    return {
        "by_transfer_syntax": counts("transfer_syntax_name", "PNG"),
        "by_decoder": counts("decoder"),
        "by_voi": counts("voi"),
        "inverted_monochrome1": sum(bool(r["inverted"]) for r in ok),
        "j2k_reduced": sum((r["j2k_reduce"] or 0) > 0 for r in ok),
        "syntax_inferred": sum(bool(r["syntax_inferred"]) for r in ok),
        "with_notes": sum(r["notes"] != "" for r in ok),
        "removed_sources": sum(r.get("status") == "removed" for r in records),
    }
