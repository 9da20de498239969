"""Box geometry against a plain loop over boxes (the obvious reference)."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.boxes import box_area, box_iou, paired_iobb, paired_iou


def _reference_iou(a: list[float], b: list[float]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    xy = rng.uniform(0, 100, size=(n, 2))
    wh = rng.uniform(1, 50, size=(n, 2))
    return np.hstack([xy, xy + wh])


@pytest.mark.parametrize("seed", range(5))
def test_matrix_and_paired_iou_equal_a_plain_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random_boxes(rng, 7), _random_boxes(rng, 5)
    matrix = box_iou(a, b)
    assert matrix.shape == (7, 5)
    for i in range(7):
        for j in range(5):
            assert matrix[i, j] == pytest.approx(_reference_iou(list(a[i]), list(b[j])), abs=1e-12)
    np.testing.assert_allclose(paired_iou(a[:5], b), np.diag(matrix[:5]), atol=1e-12)


def test_iobb_area_and_degenerate_boxes() -> None:
    truth = np.array([[0.0, 0.0, 10.0, 10.0]])
    inside = np.array([[2.0, 2.0, 4.0, 4.0]])
    assert paired_iobb(inside, truth)[0] == 1.0
    assert paired_iou(inside, truth)[0] == pytest.approx(0.04)
    inverted = np.array([[5.0, 5.0, 1.0, 1.0]])
    assert box_area(inverted)[0] == 0.0
    assert paired_iobb(inverted, truth)[0] == 0.0
    assert box_iou(inverted, inverted)[0, 0] == 0.0
