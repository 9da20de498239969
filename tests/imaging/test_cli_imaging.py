"""The ``convert`` and ``dicom`` commands end to end, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pydicom
from imaging_helpers import chest_like, make_dicom

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES


def _cxrlab(*args: str) -> subprocess.CompletedProcess[str]:
    env_args = [sys.executable, "-m", "cxrlab.cli.main", *args]
    return subprocess.run(
        env_args, capture_output=True, text=True, check=False, env={**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    )


def test_convert_names_the_bad_file_and_exits_1(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dicom(src, "good.dicom", chest_like(64, 48), transfer_syntax=TRANSFER_SYNTAXES["jpegls_lossless"])
    (src / "broken.dicom").write_bytes(b"nope")
    out = _cxrlab("convert", str(src), str(tmp_path / "out"), "--size", "32", "--json")
    assert out.returncode == 1, out.stderr
    assert "broken.dicom" in out.stderr and "failed" in out.stderr
    summary = json.loads(out.stdout)
    assert (summary["converted"], summary["failed"]) == (1, 1)
    assert summary["by_decoder"] == {"imagecodecs.jpegls (CharLS)": 1}
    assert (tmp_path / "out" / "good.png").is_file()
    again = _cxrlab("convert", str(src), str(tmp_path / "out"), "--size", "32")
    assert again.returncode == 1 and "skipped 1 already done" in again.stdout


def test_convert_usage_errors_exit_2(tmp_path: Path) -> None:
    out = _cxrlab("convert", str(tmp_path / "absent"), str(tmp_path / "out"))
    assert out.returncode == 2 and "absent" in out.stderr
    (tmp_path / "src").mkdir()
    bad = _cxrlab("convert", str(tmp_path / "src"), str(tmp_path / "out"), "--format", "tiff")
    assert bad.returncode == 2 and "--format" in bad.stderr


def test_dicom_inspect(tmp_path: Path) -> None:
    path = make_dicom(tmp_path, "a.dcm", chest_like(30, 20), photometric="MONOCHROME1",
                      windows=[(2000, 3000), (900, 200)], rescale_slope=1.0, rescale_intercept=-1024.0,
                      sex="F", age="045Y", transfer_syntax=TRANSFER_SYNTAXES["rle"])  # fmt: skip
    out = _cxrlab("dicom", "inspect", str(path), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["transfer_syntax"] == TRANSFER_SYNTAXES["rle"] and info["photometric"] == "MONOCHROME1"
    assert info["window_center"] == [2000.0, 900.0] and info["rescale_intercept"] == -1024.0
    assert (info["rows"], info["columns"], info["patient_sex"], info["identifying_tags"]) == (30, 20, "F", 0)
    human = _cxrlab("dicom", "inspect", str(path))
    assert human.returncode == 0 and "RLE Lossless" in human.stdout


def test_phi_check(tmp_path: Path) -> None:
    make_dicom(tmp_path / "clean", "a.dcm", chest_like(10, 10), sex="M", age="030Y")
    clean = _cxrlab("dicom", "phi-check", str(tmp_path / "clean"))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "No identifying tag in 1 file" in clean.stdout

    path = make_dicom(tmp_path / "dirty", "b.dcm", chest_like(10, 10))
    ds = pydicom.dcmread(path)
    ds.PatientName = "Doe^Jane"
    ds.StudyDate = "20190102"
    ds.InstitutionName = "General Hospital"
    ds.BurnedInAnnotation = "YES"
    ds.add_new(0x00091001, "LO", "vendor secret")
    ds.save_as(path)
    dirty = _cxrlab("dicom", "phi-check", str(tmp_path / "dirty"), "--json")
    assert dirty.returncode == 1
    found = {f["keyword"]: f for f in json.loads(dirty.stdout)["findings"]}
    assert {"PatientName", "StudyDate", "InstitutionName", "BurnedInAnnotation", "private"} <= set(found)
    assert found["PatientName"]["value"] == "Doe^Jane" and found["StudyDate"]["reason"] == "date or time"


def test_phi_check_unreadable_file_and_empty_folder(tmp_path: Path) -> None:
    make_dicom(tmp_path / "mixed", "a.dcm", chest_like(10, 10), sex="M", age="030Y")
    (tmp_path / "mixed" / "broken.dcm").write_bytes(b"")
    mixed = _cxrlab("dicom", "phi-check", str(tmp_path / "mixed"))
    assert mixed.returncode == 1, mixed.stdout + mixed.stderr
    assert "broken.dcm" in mixed.stderr
    (tmp_path / "none").mkdir()
    empty = _cxrlab("dicom", "phi-check", str(tmp_path / "none"))
    assert empty.returncode == 2
    assert "no .dcm or .dicom file" in empty.stderr
