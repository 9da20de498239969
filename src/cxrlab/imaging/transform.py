"""Resize images and move their boxes with them.

Boxes: ``x_min, y_min, x_max, y_max`` in pixels, origin at the top-left corner of the top-left pixel (the
findings table's convention); a pixel ``i`` covers ``[i, i + 1)``. Under that convention a resize by
``(sx, sy)`` maps a coordinate ``x`` to ``x * sx`` exactly, which is also how OpenCV's INTER_AREA and
INTER_LINEAR place pixel centres, so a box drawn on a lesion stays on it. ``keep_aspect`` fits the longer
side to the size and never pads: there is no offset, and ``scale_x == scale_y``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import cv2
import numpy as np

from cxrlab.errors import ParameterError, UsageError

if TYPE_CHECKING:  # pandas only for the boxes: converting images does not import it
    import pandas as pd

__all__ = ["Resize", "plan_resize", "resize_image", "scale_boxes", "scale_findings"]


@dataclass(frozen=True)
class Resize:
    """Original and new size of one image; ``scale_x = width / orig_width`` (new pixels per old pixel)."""

    orig_width: int
    orig_height: int
    width: int
    height: int

    @property
    def scale_x(self) -> float:
        return self.width / self.orig_width

    @property
    def scale_y(self) -> float:
        return self.height / self.orig_height


def plan_resize(orig_width: int, orig_height: int, size: int | None, keep_aspect: bool = False) -> Resize:
    """``size`` x ``size``, or with ``keep_aspect`` the longer side = ``size`` (no padding); None keeps it."""
    if orig_width <= 0 or orig_height <= 0:
        raise UsageError(f"image size {orig_width} x {orig_height} is not positive")
    if size is None:
        return Resize(orig_width, orig_height, orig_width, orig_height)
    if size <= 0:
        raise ParameterError("size", f"must be positive (got {size})")
    if not keep_aspect:
        return Resize(orig_width, orig_height, size, size)
    longer = max(orig_width, orig_height)
    width = max(1, round(orig_width * size / longer))
    height = max(1, round(orig_height * size / longer))
    return Resize(orig_width, orig_height, width, height)


def resize_image(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing, cheapest), bilinear when enlarging; any 8/16-bit dtype."""
    if img.shape[1] == width and img.shape[0] == height:
        return img
    shrinking = width <= img.shape[1] and height <= img.shape[0]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cast(np.ndarray, cv2.resize(img, (width, height), interpolation=interpolation))


def scale_boxes(boxes: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """(N, 4) float boxes in original pixels -> the same boxes in resized pixels (NaN stays NaN)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes * np.array([scale_x, scale_y, scale_x, scale_y])


def scale_findings(findings: pd.DataFrame, scales: pd.DataFrame) -> pd.DataFrame:
    """Rescale every box of ``findings`` by its image's ``scale_x``/``scale_y`` (``scales``: image_id,
    scale_x, scale_y). Rows of images absent from ``scales`` are dropped; image-level rows keep NaN."""
    from cxrlab.tables import BOX_COLUMNS

    merged = findings.merge(scales[["image_id", "scale_x", "scale_y"]], on="image_id", how="inner")
    boxes = merged[BOX_COLUMNS].to_numpy(dtype=np.float64)
    sx = merged["scale_x"].to_numpy(dtype=np.float64)[:, None]
    sy = merged["scale_y"].to_numpy(dtype=np.float64)[:, None]
    merged[BOX_COLUMNS] = boxes * np.hstack([sx, sy, sx, sy])
    return merged.drop(columns=["scale_x", "scale_y"])
