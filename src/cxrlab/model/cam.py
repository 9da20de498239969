"""Class activation maps (ChestX-ray8's weakly supervised boxes) from the classifier on the pooled features.

With global average pooling followed by one linear layer, the CAM of label ``k`` is ``sum_c w[k, c] * F[c]``
over the pooled feature maps ``F`` (here C5 and P3, each brought to the input with every cell on the pixel its
convolutions centre it on); Grad-CAM taken at those maps reduces to the same map (the gradient of the logit
with respect to ``F`` is ``w[k] / (h * w)`` everywhere), so one matrix product gives both. With log-sum-exp
pooling the class maps that are pooled are the CAM themselves (``CxrNet.class_maps``). The map, scaled to
[0, 1] by its own range, is thresholded; each isolated region gets a box, as in ChestX-ray8, so that a
second nodule gets its own; ``core`` tightens each box to the part of its region near the region's peak
(T(IoBB) divides by the predicted box's area: a box wider than the finding loses).

A map's peak can only sit on a cell centre (bilinear interpolation peaks there): a stride-32 CAM puts its
box on a 32-px grid, which a nodule of 6-14 px rarely holds. :func:`sharpen` places it finer: the class map
says where the label's evidence is, LayerCAM at stride 4 (from the gradients of the logit) which cells' own
features carry it. (At stride 8 the peak of a small nodule still fell on its edge, the box outside it.)
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

__all__ = [
    "CamBoxes",
    "activation_maps",
    "cam_boxes",
    "layer_cam",
    "region_boxes",
    "sharpen",
    "to_input",
]


def _cell_weights(cells: int, size: int) -> Tensor:
    """(size, cells) linear interpolation weights placing cell ``m`` on input pixel ``m * size / cells``."""
    pos = (torch.arange(size, dtype=torch.float64) * cells / size).clamp(0, cells - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=cells - 1)
    rows = torch.arange(size)
    weights = torch.zeros(size, cells, dtype=torch.float64)
    weights.index_put_((rows, lo), 1 - (pos - lo), accumulate=True)
    weights.index_put_((rows, hi), pos - lo, accumulate=True)
    return weights.float()


def to_input(maps: Tensor, size: int) -> Tensor:
    """(B, L, h, w) maps of one feature level -> (B, L, size, size), bilinear, each cell on its input pixel.

    A stride-s level of a convolutional backbone (3x3 convolutions padded by 1, a 7x7 by 3) centres its cell
    ``m`` on input pixel ``s * m``, not on the middle of the s x s block that an image resize assumes: that
    resize would shift the map down and right by half a cell (3.5 px at stride 8, 15.5 px at stride 32).
    """
    h, w = maps.shape[-2:]
    rows, cols = _cell_weights(h, size).to(maps.device), _cell_weights(w, size).to(maps.device)
    return torch.einsum("yh,blhw,xw->blyx", rows, maps.float(), cols)


def activation_maps(features: tuple[Tensor, ...], weight: Tensor, labels: list[int], size: int) -> Tensor:
    """Feature maps (B, C_i, h_i, w_i) whose pooled values, concatenated, the (L, sum C_i) classifier weights
    multiply -> (B, len(labels), size, size) maps, the sum of each map's share."""
    total: Tensor | None = None
    start = 0
    for fmap in features:
        part = weight[labels, start : start + fmap.shape[1]].float()
        start += fmap.shape[1]
        maps = to_input(torch.einsum("bchw,lc->blhw", fmap.float(), part), size)
        total = maps if total is None else total + maps
    assert total is not None and start == weight.shape[1], "feature channels must match the classifier"
    return total


def layer_cam(features: Tensor, grads: Tensor) -> Tensor:
    """LayerCAM (Jiang et al. 2021): features (B, C, h, w), every location's weighted by their own positive
    gradient (of one logit per image), summed over the channels -> (B, h, w). On a fine level, where one
    weight per channel (Grad-CAM) lights every similar texture, the per-location weights keep the map on
    what the logit depends on."""
    return torch.relu((torch.relu(grads) * features).sum(dim=1))


def _unit_range(maps: Tensor) -> Tensor:
    """(B, L, h, w) maps, each scaled to [0, 1] by its own range (a flat map becomes zero)."""
    flat = maps.flatten(2)
    low, high = flat.amin(dim=2)[..., None, None], flat.amax(dim=2)[..., None, None]
    return (maps - low) / (high - low).clamp_min(1e-12)


def sharpen(maps: Tensor, fine: Tensor) -> Tensor:
    """Class maps (B, L, H, W) times fine maps of the same shape (LayerCAM brought to the input), each scaled
    to [0, 1] by its own range: the class map chooses the regions, the fine one places the peak within
    them."""
    return _unit_range(maps) * _unit_range(fine)


@dataclass
class CamBoxes:
    """One row per box: the image (index in the batch), the label (index into the labels asked for), the box
    (input pixels) and the region's peak (share of the map's range, 1 for the map's own peak)."""

    image: np.ndarray
    label: np.ndarray
    boxes: np.ndarray
    peak: np.ndarray


def region_boxes(
    cam: np.ndarray, threshold: float = 0.5, core: float = 0.0, max_regions: int = 3
) -> list[tuple[tuple[float, float, float, float], float]]:
    """Boxes of the isolated regions of ``cam`` (ChestX-ray8 boxes each region of the thresholded heat map).

    The map is scaled to [0, 1] by its range; a region is a connected component at or above ``threshold``;
    its box bounds the part of the region, connected to the region's peak, at or above ``core`` times that
    peak (0: the whole region). Regions come strongest first, at most ``max_regions``.
    """
    low, high = float(cam.min()), float(cam.max())
    if high - low <= 1e-12:
        return [((0.0, 0.0, float(cam.shape[1]), float(cam.shape[0])), 1.0)]
    scaled = (cam - low) / (high - low)
    count, regions = cv2.connectedComponents((scaled >= threshold).astype(np.uint8), connectivity=8)
    ids = np.arange(1, count)
    peaks = ndimage.maximum(scaled, regions, ids)
    where = ndimage.maximum_position(scaled, regions, ids)
    out = []
    for k in np.argsort(-np.asarray(peaks))[:max_regions]:
        peak, (y, x) = float(peaks[k]), where[k]
        inside = (regions == ids[k]) & (scaled >= core * peak)
        _, parts, stats, _ = cv2.connectedComponentsWithStats(inside.astype(np.uint8), connectivity=8)
        x0, y0, w, h = stats[parts[y, x], :4]
        out.append(((float(x0), float(y0), float(x0 + w), float(y0 + h)), peak))
    return out


def cam_boxes(cams: Tensor, threshold: float = 0.5, core: float = 0.0, max_regions: int = 3) -> CamBoxes:
    """The boxes of :func:`region_boxes` for each image and label of the maps ``cams`` (B, L, h, w)."""
    maps = cams.cpu().numpy()
    rows = [
        (b, k, box, peak)
        for b in range(maps.shape[0])
        for k in range(maps.shape[1])
        for box, peak in region_boxes(maps[b, k], threshold, core, max_regions)
    ]
    return CamBoxes(
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, 4),
        np.array([r[3] for r in rows], dtype=np.float64),
    )
