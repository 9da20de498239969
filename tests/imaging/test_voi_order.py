"""The VOI order: resizing the stored values before the display table (the default) against the exact order
(display, then resize), measured on a narrow window across sharp edges and on a chest-like window."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pydicom
from imaging_helpers import chest_like, make_dicom

from cxrlab.imaging.convert import ConvertOptions, convert
from cxrlab.imaging.dicom import DisplayOptions, display_reference


def _exact(path: Path, size: int) -> np.ndarray:
    ds = pydicom.dcmread(path)
    shown, _ = display_reference(ds.pixel_array, ds, DisplayOptions())
    return cv2.resize(shown, (size, size), interpolation=cv2.INTER_AREA)


def _outputs(src: Path, out: Path, **options: object) -> dict[str, np.ndarray]:
    convert(src, out, ConvertOptions(size=64, **options))  # type: ignore[arg-type]
    return {p.stem: cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(int) for p in out.glob("*.png")}


def test_exact_order_matches_display_then_resize_and_the_default_is_measured(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    edges = np.where(rng.random((30, 30)) > 0.5, 3800, 300).astype(np.uint16)
    edges = np.kron(edges, np.ones((9, 7), dtype=np.uint16))  # 270 x 210: blocks with sharp edges
    src = tmp_path / "src"
    make_dicom(src, "narrow.dcm", edges, windows=[(2050, 20)])  # everything is black or white
    make_dicom(src, "chest.dcm", chest_like(270, 210, seed=3), windows=[(2000, 3000)])
    exact = _outputs(src, tmp_path / "exact", exact_voi=True)
    fast = _outputs(src, tmp_path / "fast")
    for name in ("narrow", "chest"):
        reference = _exact(src / f"{name}.dcm", 64).astype(int)
        assert np.abs(exact[name] - reference).max() <= 1, name  # the exact order, to rounding
    narrow = np.abs(fast["narrow"] - exact["narrow"])
    chest = np.abs(fast["chest"] - exact["chest"])
    assert narrow.max() >= 100 and (narrow > 1).mean() > 0.05  # the default's known error on sharp edges
    assert (chest > 1).mean() < 0.02 and chest.max() < 20  # a wide window: a few edge pixels off
