"""Class activation maps (ChestX-ray8's weakly supervised boxes) from the classifier on the pooled features.

With global average pooling followed by one linear layer, the CAM of label ``k`` is ``sum_c w[k, c] * F[c]``
over the pooled feature maps ``F`` (here C5 and P3, each upsampled to the input); Grad-CAM taken at those
maps reduces to the same map (the gradient of the logit with respect to ``F`` is ``w[k] / (h * w)``
everywhere), so one matrix product gives both. The map, scaled to [0, 1] by its own range, is thresholded;
the box is the bounding rectangle of the connected region that holds the map's peak.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = ["activation_maps", "cam_boxes"]


def activation_maps(features: tuple[Tensor, ...], weight: Tensor, labels: list[int], size: int) -> Tensor:
    """Feature maps (B, C_i, h_i, w_i) whose pooled values, concatenated, the (L, sum C_i) classifier weights
    multiply -> (B, len(labels), size, size) maps, the sum of each map's share."""
    total: Tensor | None = None
    start = 0
    for fmap in features:
        part = weight[labels, start : start + fmap.shape[1]].float()
        start += fmap.shape[1]
        maps = torch.einsum("bchw,lc->blhw", fmap.float(), part)
        maps = torch.nn.functional.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False)
        total = maps if total is None else total + maps
    assert total is not None and start == weight.shape[1], "feature channels must match the classifier"
    return total


def _peak_box(cam: np.ndarray, threshold: float) -> tuple[float, float, float, float]:
    low, high = float(cam.min()), float(cam.max())
    if high - low <= 1e-12:
        return 0.0, 0.0, float(cam.shape[1]), float(cam.shape[0])
    scaled = (cam - low) / (high - low)
    mask = (scaled >= threshold).astype(np.uint8)
    _, components, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    y, x = np.unravel_index(int(np.argmax(scaled)), scaled.shape)
    x0, y0, w, h = stats[components[y, x], :4]
    return float(x0), float(y0), float(x0 + w), float(y0 + h)


def cam_boxes(
    features: tuple[Tensor, ...], weight: Tensor, labels: list[int], size: int, threshold: float = 0.5
) -> np.ndarray:
    """(B, len(labels), 4) boxes in input pixels, one per image and label."""
    maps = activation_maps(features, weight, labels, size).cpu().numpy()
    out = np.zeros((maps.shape[0], maps.shape[1], 4), dtype=np.float64)
    for b in range(maps.shape[0]):
        for k in range(maps.shape[1]):
            out[b, k] = _peak_box(maps[b, k], threshold)
    return out
