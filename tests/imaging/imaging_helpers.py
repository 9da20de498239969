"""Helpers of the imaging tests: chest-like stored arrays and phantom DICOMs by the phantom writer."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrlab.datasets.phantom import DicomSpec, write_dicom


def chest_like(rows: int, cols: int, bits: int = 12, seed: int = 0, signed: bool = False) -> np.ndarray:
    """Smooth anatomy-like structure, noise and sharp edges: exercises every predictor of a codec."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:rows, 0:cols]
    top = 2**bits - 1
    base = 0.5 + 0.3 * np.sin(xx / (cols / 7)) * np.cos(yy / (rows / 5))
    base[rows // 4 : rows // 2, cols // 5 : cols // 3] = 0.95  # a sharp bright block
    img = base * top + rng.normal(0, top * 0.01, base.shape)
    img = np.clip(np.rint(img), 0, top)
    if signed:
        img = img - 2 ** (bits - 1)
        return img.astype(np.int16 if bits > 8 else np.int8)
    return img.astype(np.uint16 if bits > 8 else np.uint8)


def make_dicom(folder: Path, name: str, stored: np.ndarray, **spec: object) -> Path:
    """Write ``folder/name`` with the phantom writer; ``spec`` are :class:`DicomSpec` fields."""
    path = folder / name
    write_dicom(path, stored, DicomSpec(**spec))  # type: ignore[arg-type]
    return path
