"""Box supervision of the class maps: which cells a box covers, their weights, the loss and its gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cxrlab.model.boxmaps import MIN_OVERLAP, box_map_loss, cell_span, map_targets


def _covered_cells(lo: float, hi: float, stride: float, cells: int) -> list[int]:
    """Reference: every cell's overlap with [lo, hi] measured one by one (cell m spans stride*m + 0.5 +-
    stride/2), the centre's cell when none reaches the minimum."""
    found = []
    for m in range(cells):
        left, right = stride * m + 0.5 - stride / 2, stride * m + 0.5 + stride / 2
        if min(right, hi) - max(left, lo) >= MIN_OVERLAP * stride - 1e-9:
            found.append(m)
    centre = min(max(round(((lo + hi) / 2 - 0.5) / stride), 0), cells - 1)
    return sorted(set(found) | {centre})


def test_cell_span_matches_the_cell_by_cell_overlap() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        stride = float(rng.choice([4.0, 8.0, 16.0]))
        cells = int(rng.integers(4, 40))
        size = stride * cells
        lo = float(rng.uniform(-10, size))
        hi = lo + float(rng.choice([rng.uniform(0.5, 8), rng.uniform(8, size)]))
        first, last = cell_span(lo, hi, stride, cells)
        expected = _covered_cells(lo, hi, stride, cells)
        assert list(range(first, last + 1)) == expected, (lo, hi, stride, cells)


def test_a_small_box_gets_its_own_cell_and_each_box_weighs_one() -> None:
    boxes = torch.tensor(
        [[100.0, 100.0, 106.0, 106.0], [40.0, 60.0, 140.0, 160.0], [101.0, 99.0, 107.0, 105.0]]
    )
    targets = [
        {"boxes": boxes, "labels": torch.tensor([0, 1, 0])},
        {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)},
    ]
    target, weight, count = map_targets(targets, 2, (32, 32), 8.0)
    assert count == 3
    assert target[0, 0].sum() >= 1 and target[0, 0, 13, 13] == 1  # the nodule's centre (103 px) is cell 13
    assert target[0, 1].sum() > 100  # the large box covers many cells
    positive = target > 0
    assert torch.isclose(weight[positive].sum(), torch.tensor(3.0))  # one per box, two boxes share cell 13
    assert (weight[~positive] == 1).all() and target[1].sum() == 0


def test_the_loss_is_torchvisions_focal_loss_weighted_by_box() -> None:
    from torchvision.ops import sigmoid_focal_loss

    torch.manual_seed(0)
    maps = torch.randn(2, 3, 16, 16)
    targets = [
        {"boxes": torch.tensor([[10.0, 20.0, 60.0, 70.0]]), "labels": torch.tensor([2])},
        {
            "boxes": torch.tensor([[30.0, 30.0, 36.0, 36.0], [0.0, 0.0, 128.0, 40.0]]),
            "labels": torch.tensor([0, 1]),
        },
    ]
    target, weight, count = map_targets(targets, 3, (16, 16), 8.0)
    expected = (sigmoid_focal_loss(maps, target, reduction="none") * weight).sum() / count
    assert torch.isclose(box_map_loss(maps, targets, 8.0), expected)
    right = torch.where(target > 0, 8.0, -8.0)
    assert box_map_loss(right, targets, 8.0) < 0.01 * box_map_loss(-right, targets, 8.0)


def test_gradient_descent_on_the_loss_lights_the_boxed_cells() -> None:
    """A free map trained on the loss alone ends highest on the nodule's cells."""
    maps = torch.full((1, 1, 32, 32), -math.log(99.0), requires_grad=True)
    targets = [{"boxes": torch.tensor([[100.0, 180.0, 108.0, 188.0]]), "labels": torch.tensor([0])}]
    optimizer = torch.optim.SGD([maps], lr=1.0)
    for _ in range(50):
        optimizer.zero_grad()
        box_map_loss(maps, targets, 8.0).backward()
        optimizer.step()
    peak = divmod(int(maps.detach().flatten().argmax()), 32)
    assert peak[0] in (22, 23) and peak[1] in (12, 13)  # rows 180-188 px, columns 100-108 px
    assert torch.sigmoid(maps.detach()).amax() > 0.5


def test_the_network_trains_its_box_labels_maps_only_with_lse_pooling() -> None:
    from cxrlab.model.data import model_labels
    from cxrlab.model.network import CxrNet, NetworkSpec

    _, labels, boxes = model_labels("vindr")
    targets = [
        {
            "boxes": torch.tensor([[20.0, 30.0, 28.0, 38.0]]),
            "labels": torch.tensor([boxes.index("Nodule/Mass")]),
        }
    ]
    images = torch.rand(1, 1, 96, 96)
    torch.manual_seed(0)
    plain = CxrNet(NetworkSpec("resnet18", labels, boxes, 96))
    assert plain.map_loss(images, plain(images), targets).item() == 0.0
    model = CxrNet(NetworkSpec("resnet18", labels, boxes, 96, pool="avg+lse"))
    assert model.local is not None and model.local.bias is not None
    assert torch.allclose(model.local.bias, torch.tensor(-math.log(99.0)))
    loss = model.map_loss(images, model(images), targets)
    assert loss.item() > 0
    loss.backward()
    grad = model.local.weight.grad
    assert grad is not None
    touched = {labels[k] for k in range(len(labels)) if grad[k].abs().sum() > 0}
    assert "Nodule/Mass" in touched and touched <= set(boxes)  # global labels get no box gradient
    weak = CxrNet(NetworkSpec("resnet18", labels, (), 96, pool="lse"))
    assert weak.local is not None and weak.local.bias is not None
    assert (weak.local.bias == 0).all()  # no boxes: the maps start flat at zero


@pytest.mark.parametrize("stride", [4.0, 8.0])
def test_a_box_past_the_edge_is_clipped_to_the_grid(stride: float) -> None:
    first, last = cell_span(-20.0, 3.0, stride, 10)
    assert first == 0 and 0 <= last < 10
    first, last = cell_span(stride * 9, stride * 12, stride, 10)
    assert last == 9 and first <= last
