"""Box geometry shared by consensus, agreement and the metrics.

Box convention: ``x_min, y_min, x_max, y_max`` in pixels of the original image, origin top-left,
continuous coordinates, so a box's area is ``(x_max - x_min) * (y_max - y_min)`` (no "+1 pixel" rule).
An inverted box has area 0. Overlaps of boxes with a zero union (or a zero-area predicted box) are 0.
"""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """Areas of (N, 4) boxes -> (N,); an inverted box counts 0."""
    return np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)


def _paired_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _safe_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of the i-th box of ``a`` with the i-th box of ``b``: (N, 4), (N, 4) -> (N,) in [0, 1]."""
    inter = _paired_intersection(a, b)
    return _safe_ratio(inter, box_area(a) + box_area(b) - inter)


def paired_iobb(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over the predicted box's area (ChestX-ray8's IoBB) of paired boxes: (N, 4) -> (N,)."""
    return _safe_ratio(_paired_intersection(pred, truth), box_area(pred))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4) -> (N, M), as torchvision's."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    return _safe_ratio(inter, box_area(a)[:, None] + box_area(b)[None, :] - inter)
