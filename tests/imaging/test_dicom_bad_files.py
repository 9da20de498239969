"""``dicom inspect`` and ``dicom phi-check`` on what is not DICOM, or DICOM with a corrupt element: a named
failure, never a pass and never a traceback; the check goes on with the other files."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from imaging_helpers import chest_like, make_dicom

from cxrlab.imaging.reading import DecodeError, looks_like_dicom, read_dicom


def _cxrlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True,
                          check=False, env=env)  # fmt: skip


def _not_dicom(folder: Path, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "notes.dicom"
    text.write_text("Patient seen on Monday.\n" * int(rng.integers(1, 50)))
    noise = folder / "noise.dcm"
    noise.write_bytes(rng.integers(0, 256, int(rng.integers(10, 5000)), dtype=np.uint8).tobytes())
    png = folder / "picture.dicom"
    png.write_bytes(cv2.imencode(".png", rng.integers(0, 255, (20, 20), dtype=np.uint8))[1].tobytes())
    return [text, noise, png]


def _corrupt_length(path: Path, keyword_tag: bytes, out: Path) -> Path:
    """Rewrite the 16-bit length of an explicit-VR element (found by its tag bytes) to a wrong value."""
    data = bytearray(path.read_bytes())
    at = data.find(keyword_tag, 132)
    assert at > 0
    length = struct.unpack_from("<H", data, at + 6)[0]
    struct.pack_into("<H", data, at + 6, length + 3)  # odd, and past the element's end
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_not_dicom_fails_inspect_and_phi_check(tmp_path: Path, seed: int) -> None:
    bad = _not_dicom(tmp_path / "bad", seed)
    good = make_dicom(tmp_path / "bad", "good.dcm", chest_like(16, 16))
    for path in bad:
        assert not looks_like_dicom(path.read_bytes()[:136])
        run = _cxrlab("dicom", "inspect", str(path))
        assert run.returncode == 1 and path.name in run.stderr and "Traceback" not in run.stderr
    check = _cxrlab("dicom", "phi-check", str(tmp_path / "bad"), "--json")
    assert check.returncode == 1 and "Traceback" not in check.stderr
    summary = json.loads(check.stdout)
    assert summary["files_checked"] == 1  # the good file was still checked
    assert {Path(u.split(":")[0]).name for u in summary["unreadable"]} == {
        "noise.dcm",
        "notes.dicom",
        "picture.dicom",
    }
    assert read_dicom(good).Rows == 16


@pytest.mark.parametrize(
    "tag",
    [b"\x28\x00\x30\x00", b"\x08\x00\x60\x00", b"\x20\x00\x0d\x00"],
    ids=["PixelSpacing", "Modality", "StudyInstanceUID"],
)
def test_corrupt_element_length_is_named_and_the_check_goes_on(tmp_path: Path, tag: bytes) -> None:
    folder = tmp_path / "dicoms"
    base = make_dicom(tmp_path, "base.dcm", chest_like(16, 16), pixel_spacing=(0.14, 0.14))
    _corrupt_length(base, tag, folder / "a_corrupt.dcm")
    make_dicom(folder, "b_good.dcm", chest_like(16, 16))
    with pytest.raises(DecodeError, match=r"a_corrupt\.dcm"):
        read_dicom(folder / "a_corrupt.dcm", pixels=False)
    check = _cxrlab("dicom", "phi-check", str(folder), "--json")
    assert check.returncode == 1 and "Traceback" not in check.stderr, check.stderr
    summary = json.loads(check.stdout)
    assert summary["files_checked"] == 1 and "a_corrupt.dcm" in summary["unreadable"][0]
    inspect = _cxrlab("dicom", "inspect", str(folder / "a_corrupt.dcm"))
    assert inspect.returncode == 1 and "a_corrupt.dcm" in inspect.stderr and "Traceback" not in inspect.stderr
