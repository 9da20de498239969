"""The manifest: one schema written by convert and read back by export, typed the same either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from imaging_helpers import chest_like, make_dicom

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES
from cxrlab.errors import CxrlabError
from cxrlab.imaging.convert import ConvertOptions, convert
from cxrlab.imaging.manifest import (
    MANIFEST_COLUMNS,
    manifest_frame,
    read_manifest,
    summarize,
    summarize_records,
    write_manifest,
)
from cxrlab.labels.export import read_manifest as export_manifest


def test_convert_manifest_reads_back_the_same_from_parquet_and_csv(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        make_dicom(src, f"m{i}.dcm", chest_like(40, 30, seed=i))
    (src / "bad.dcm").write_bytes(b"nope")
    convert(src, tmp_path / "out", ConvertOptions(size=16))
    parquet = read_manifest(tmp_path / "out")
    assert list(parquet.columns) == MANIFEST_COLUMNS and len(parquet) == 4
    (tmp_path / "out" / "manifest.parquet").unlink()
    csv = read_manifest(tmp_path / "out")
    pd.testing.assert_frame_equal(parquet, csv)
    ok = read_manifest(tmp_path / "out", ok_only=True)
    assert sorted(ok["image_id"]) == ["m0", "m1", "m2"]
    exported = export_manifest(tmp_path / "out")  # export reads it through the same reader
    assert sorted(exported["output"]) == ["m0.png", "m1.png", "m2.png"] and "pad_x" not in exported


def test_foreign_manifest_needs_the_size_columns(tmp_path: Path) -> None:
    pd.DataFrame({"image_id": ["a"], "output": ["a.png"], "width": [8]}).to_csv(tmp_path / "manifest.csv")
    with pytest.raises(CxrlabError, match="scale_x"):
        read_manifest(tmp_path)
    with pytest.raises(CxrlabError, match="no conversion manifest"):
        read_manifest(tmp_path / "nothing")


def _varied_records(tmp_path: Path) -> list[dict[str, object]]:
    """Real records of a conversion (ok, failed, MONOCHROME1, J2K reduced, notes) plus hand-made edge
    values: a comma and a quote in text, a newline, NaN, an int in a float column, a missing column."""
    from cxrlab.imaging.journal import read_journal

    src = tmp_path / "src"
    for i, syntax in enumerate(("explicit_le", "j2k_lossless", "rle")):
        make_dicom(src, f"v{i}.dcm", chest_like(64, 48, seed=i), transfer_syntax=TRANSFER_SYNTAXES[syntax],
                   photometric="MONOCHROME1" if i == 1 else "MONOCHROME2")  # fmt: skip
    (src / "bad.dcm").write_bytes(b"nope")
    convert(src, tmp_path / "out", ConvertOptions(size=16))
    records = list(read_journal(tmp_path / "out" / ".manifest.journal.jsonl").values())
    records.append({"image_id": 'odd,"id"', "source": "a\nb", "status": "removed", "scale_x": 2,
                    "window_center": float("nan"), "inverted": None, "notes": "x; y"})  # fmt: skip
    return records


def test_pandas_free_writer_writes_what_pandas_writes(tmp_path: Path) -> None:
    """The records writer against pandas' own writers of manifest_frame: the same Arrow schema and pandas
    metadata, the same table, the same CSV text."""
    import pyarrow.parquet as pq

    records = _varied_records(tmp_path)
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir(), theirs.mkdir()
    write_manifest(records, ours)
    frame = manifest_frame(records)
    frame.to_parquet(theirs / "manifest.parquet", index=False)
    frame.to_csv(theirs / "manifest.csv", index=False)
    mine, pandas_made = pq.read_table(ours / "manifest.parquet"), pq.read_table(theirs / "manifest.parquet")
    assert mine.schema.equals(pandas_made.schema, check_metadata=True)
    assert mine.equals(pandas_made)
    assert (ours / "manifest.csv").read_text() == (theirs / "manifest.csv").read_text()
    pd.testing.assert_frame_equal(read_manifest(ours), frame)


def test_summary_of_records_equals_pandas_counts(tmp_path: Path) -> None:
    records = _varied_records(tmp_path)
    frame = manifest_frame(records)
    ok = frame[frame["status"] == "ok"]
    summary = summarize_records(records)
    assert summary == summarize(frame)
    assert summary["by_transfer_syntax"] == ok["transfer_syntax_name"].fillna("PNG").value_counts().to_dict()
    assert summary["by_decoder"] == ok["decoder"].value_counts().to_dict()
    assert summary["inverted_monochrome1"] == 1 and summary["removed_sources"] == 1
    assert summary["j2k_reduced"] == int((ok["j2k_reduce"] > 0).sum()) == 1  # 64 -> 16 px: one level skipped


def test_folder_conversion_imports_no_pandas(tmp_path: Path) -> None:
    """A folder of images converts without pandas (~0.2 s of start-up); the tables folder constant that
    convert repeats to avoid importing cxrlab.tables agrees with it."""
    from cxrlab import tables
    from cxrlab.imaging import convert as convert_module

    assert convert_module.IMAGES_FILE == tables.IMAGES_FILE
    make_dicom(tmp_path / "src", "p.dcm", chest_like(40, 30))
    probe = (
        "import sys; from cxrlab.imaging.convert import convert, ConvertOptions; "
        f"r = convert({str(tmp_path / 'src')!r}, {str(tmp_path / 'out')!r}, ConvertOptions(size=16)); "
        "print(r.converted, 'pandas' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["1", "False"]
    assert len(read_manifest(tmp_path / "out")) == 1
