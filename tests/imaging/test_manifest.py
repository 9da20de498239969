"""The manifest: one schema written by convert and read back by export, typed the same either way."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from imaging_helpers import chest_like, make_dicom

from cxrlab.errors import CxrlabError
from cxrlab.imaging.convert import ConvertOptions, convert
from cxrlab.imaging.manifest import MANIFEST_COLUMNS, read_manifest
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
