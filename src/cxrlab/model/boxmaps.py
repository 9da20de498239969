"""Box supervision of the per-location class maps (the maps that log-sum-exp pooling reads).

Where boxes exist, every cell of a box label's map learns whether it lies on a box of that label: the
unified classification and localization of Li et al. (CVPR 2018, "Thoracic disease identification and
localization with limited supervision"), where boxed images train patches and the others train the pooled
image score. A finding of a few pixels gets a direct target on the cells it covers, and every cell of an
image without it a negative one, instead of one image-level bit diluted over a thousand locations.

The loss is torchvision's sigmoid focal loss. Each box spreads a weight of one over its cells, so a 6-px
nodule weighs as much as a heart; the sum is divided by the number of boxes, as FCOS divides by its
positive locations.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.ops import sigmoid_focal_loss

__all__ = ["PRIOR", "box_map_loss", "cell_span", "map_targets"]

PRIOR = 0.01
"""The probability a box-supervised map starts at on every cell (the focal-loss detectors' prior): almost
every cell is negative, and a map that starts at one half spends its first steps unlearning that."""

MIN_OVERLAP = 0.25
"""A cell is on a box when the box covers at least this share of the cell's width (and height)."""


def cell_span(lo: float, hi: float, stride: float, cells: int) -> tuple[int, int]:
    """The cells ``[first, last]`` of a stride-``stride`` level that the extent ``[lo, hi]`` (input pixels)
    covers by at least :data:`MIN_OVERLAP` of a cell; never none: at least the cell nearest the extent's
    centre.

    Cell ``m`` is centred on input pixel ``stride * m`` (its centre at ``stride * m + 0.5``), as
    :func:`cxrlab.model.cam.to_input` places it.
    """
    half, margin = stride / 2, MIN_OVERLAP * stride
    first = math.ceil((lo - 0.5 - half + margin) / stride)
    last = math.floor((hi - 0.5 + half - margin) / stride)
    centre = min(max(round(((lo + hi) / 2 - 0.5) / stride), 0), cells - 1)
    return max(min(first, centre), 0), min(max(last, centre), cells - 1)


def map_targets(
    targets: list[dict[str, Tensor]], classes: int, shape: tuple[int, int], stride: float
) -> tuple[Tensor, Tensor, int]:
    """Per image and detection class, (target, weight) maps of ``shape`` and the number of boxes.

    ``targets``: per image ``boxes`` (N, 4) in input pixels and ``labels`` (N,) class indices. A positive
    cell's weight is the sum of ``1 / cells`` over the boxes covering it; negative cells weigh one.
    """
    h, w = shape
    target = torch.zeros(len(targets), classes, h, w)
    positive = torch.zeros(len(targets), classes, h, w)
    count = 0
    for i, t in enumerate(targets):
        for box, label in zip(t["boxes"].tolist(), t["labels"].tolist(), strict=True):
            x0, x1 = cell_span(box[0], box[2], stride, w)
            y0, y1 = cell_span(box[1], box[3], stride, h)
            if x1 < x0 or y1 < y0:
                continue
            cells = (x1 - x0 + 1) * (y1 - y0 + 1)
            target[i, label, y0 : y1 + 1, x0 : x1 + 1] = 1.0
            positive[i, label, y0 : y1 + 1, x0 : x1 + 1] += 1.0 / cells
            count += 1
    weight = torch.where(target > 0, positive, torch.ones_like(positive))
    return target, weight, count


def box_map_loss(maps: Tensor, targets: list[dict[str, Tensor]], stride: float) -> Tensor:
    """Focal loss of (B, K, h, w) map logits against the boxes of ``targets`` (see the module docstring)."""
    target, weight, count = map_targets(targets, maps.shape[1], (maps.shape[2], maps.shape[3]), stride)
    target, weight = target.to(maps.device), weight.to(maps.device)
    loss = sigmoid_focal_loss(maps.float(), target, reduction="none")
    return (loss * weight).sum() / max(count, 1)
