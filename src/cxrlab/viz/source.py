"""Where an image's pixels are and how to show them: a dataset root or a conversion output.

``ImageSource(SRC)``: SRC is either a dataset root (the images table's ``path`` column is relative to it) or
the output folder of ``cxrlab convert`` (it holds ``manifest.parquet``: one converted file per image id).
:func:`load_display` reads one image through the imaging pipeline (DICOM: fastest decoder, modality LUT,
VOI LUT or window, MONOCHROME1 inversion; PNG: 8 or 16 bit, grey) and shrinks it for the screen.

Boxes in the tables are in the pixel frame of the image the tables describe (``width`` x ``height``: the
original for an index, the converted size for a conversion's own tables). :meth:`ImageSource.box_scale`
gives the factors from that frame to the pixels shown, so the same tables draw right on the original and on
a converted copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.imaging.decoders import decode_pixels, read_dataset
from cxrlab.imaging.dicom import DisplayOptions, to_display
from cxrlab.imaging.transform import resize_image
from cxrlab.tables import read_parquet

__all__ = ["DisplayImage", "ImageSource", "load_display"]

MANIFEST = "manifest.parquet"


@dataclass
class DisplayImage:
    """8-bit grey pixels ready to show, and the factors from the file's own pixels to these."""

    pixels: np.ndarray  # (rows, cols) uint8
    file_width: int
    file_height: int

    @property
    def shrink_x(self) -> float:
        return self.pixels.shape[1] / self.file_width

    @property
    def shrink_y(self) -> float:
        return self.pixels.shape[0] / self.file_height


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if img.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        img = cv2.cvtColor(img, code)
    if img.dtype == np.uint8:
        return img
    if img.dtype == np.uint16:
        return ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    low, high = float(np.min(img)), float(np.max(img))  # .npy of floats: min-max
    scaled = (img.astype(np.float64) - low) / (high - low or 1.0) * 255
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    f = max_side / max(width, height)
    return max(1, round(width * f)), max(1, round(height * f))


def load_display(path: str | Path, max_side: int | None = 1024) -> DisplayImage:
    """One image file (DICOM, PNG, JPEG or .npy) as 8-bit display pixels, longer side at most ``max_side``."""
    path = Path(path)
    if not path.is_file():
        raise CxrlabError(f"{path}: no such image file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        img = _to_uint8(np.load(path, allow_pickle=False))
    elif suffix in (".png", ".jpg", ".jpeg"):
        raw = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise CxrlabError(f"{path}: not a readable image file")
        img = _to_uint8(raw)
    else:
        ds = read_dataset(path)
        width, height = int(ds.Columns), int(ds.Rows)
        decoded = decode_pixels(ds, target=_fit(width, height, max_side), path=path)
        small = decoded.pixels
        if small.ndim == 2 and small.dtype.kind in "ui":
            small = resize_image(small, *_fit(small.shape[1], small.shape[0], max_side))
        shown, _ = to_display(small, ds, DisplayOptions(bits=8))
        out = resize_image(_to_uint8(shown), *_fit(width, height, max_side))
        return DisplayImage(out, width, height)
    height, width = img.shape[:2]
    return DisplayImage(resize_image(img, *_fit(width, height, max_side)), width, height)


class ImageSource:
    """Image files by id: a dataset root (tables' ``path`` relative to it) or a conversion output."""

    def __init__(self, root: str | Path, images: pd.DataFrame) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ParameterError(
                "root", f"must be a dataset root or a conversion output folder (got {self.root})"
            )
        self.manifest: pd.DataFrame | None = None
        if (self.root / MANIFEST).is_file():
            m = read_parquet(self.root / MANIFEST)
            m = m[m["status"] == "ok"]
            self.manifest = m.set_index(m["image_id"].astype(str))
        self.images = images.set_index(images["image_id"].astype(str))

    def path(self, image_id: str) -> Path:
        """The file of ``image_id``; a clear error when the source does not have it."""
        if self.manifest is not None:
            if image_id not in self.manifest.index:
                raise CxrlabError(f"{self.root / MANIFEST}: no converted image '{image_id}'")
            return self.root / str(self.manifest.at[image_id, "output"])
        if image_id not in self.images.index:
            raise CxrlabError(f"image '{image_id}' is not in the images table")
        rel = self.images.at[image_id, "path"]
        if pd.isna(rel) or not str(rel):
            raise CxrlabError(f"image '{image_id}' has no path in the images table")
        return self.root / str(rel)

    def box_scale(self, image_id: str, shown: DisplayImage) -> tuple[float, float]:
        """Factors from the tables' pixel frame of ``image_id`` to the pixels of ``shown``."""
        width = height = None
        if image_id in self.images.index:
            w, h = self.images.at[image_id, "width"], self.images.at[image_id, "height"]
            if pd.notna(w) and pd.notna(h) and w > 0 and h > 0:
                width, height = float(w), float(h)
        if width is None and self.manifest is not None and image_id in self.manifest.index:
            row = self.manifest.loc[image_id]  # unknown size: the tables describe the original
            width, height = float(row["orig_width"]), float(row["orig_height"])
        if width is None or height is None:  # unknown size, original file: its own frame
            width, height = float(shown.file_width), float(shown.file_height)
        return shown.pixels.shape[1] / width, shown.pixels.shape[0] / height

    def load(self, image_id: str, max_side: int | None = 1024) -> tuple[DisplayImage, tuple[float, float]]:
        """The display pixels of ``image_id`` and the box factors into them."""
        shown = load_display(self.path(image_id), max_side)
        return shown, self.box_scale(image_id, shown)
