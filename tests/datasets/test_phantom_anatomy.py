"""render_chest draws each lesion inside its box, on a plausible chest."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.datasets.phantom import (
    LESION_KINDS,
    Lesion,
    enlarge_heart,
    place_lesion,
    render_chest,
    sample_geometry,
)

SHAPE = (300, 260)


def _pair(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, Lesion]:
    """The same chest rendered without and with one lesion (same random streams)."""
    g = sample_geometry(np.random.default_rng(seed), SHAPE)
    if kind == "cardiomegaly":
        g2, lesion = enlarge_heart(g, np.random.default_rng(seed + 1))
    else:
        g2, lesion = g, place_lesion(kind, g, np.random.default_rng(seed + 1))
    plain = render_chest(np.random.default_rng(seed + 2), SHAPE, [], geometry=g, noise=0)
    drawn = render_chest(np.random.default_rng(seed + 2), SHAPE, [lesion], geometry=g2, noise=0)
    return plain, drawn, lesion


@pytest.mark.parametrize("kind", LESION_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_lesion_changes_the_image_inside_its_box(kind: str, seed: int) -> None:
    plain, drawn, lesion = _pair(kind, seed)
    diff = np.abs(drawn.astype(np.float64) - plain)
    x0, y0, x1, y1 = lesion.box
    assert 0 <= x0 < x1 <= SHAPE[1] and 0 <= y0 < y1 <= SHAPE[0], lesion.box
    mask = np.zeros(SHAPE, bool)
    mask[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
    inside = diff[mask].mean()
    assert inside > 0.01, (kind, inside)
    if kind != "cardiomegaly":
        # the change is concentrated in the box: little of it falls outside
        grown = np.zeros(SHAPE, bool)
        pad = 0.2 * max(x1 - x0, y1 - y0) + 3
        grown[max(0, int(y0 - pad)) : int(y1 + pad) + 1, max(0, int(x0 - pad)) : int(x1 + pad) + 1] = True
        assert diff[~grown].sum() < 0.05 * diff[mask].sum() + 1e-6, kind


@pytest.mark.parametrize("kind", ["nodule", "mass", "calcification", "effusion", "consolidation"])
def test_dense_lesions_are_brighter(kind: str) -> None:
    for seed in range(3):
        plain, drawn, lesion = _pair(kind, seed)
        x0, y0, x1, y1 = (round(v) for v in lesion.box)
        assert drawn[y0:y1, x0:x1].mean() > plain[y0:y1, x0:x1].mean() + 0.02


def test_pneumothorax_is_darker() -> None:
    plain, drawn, lesion = _pair("pneumothorax", 0)
    x0, y0, x1, y1 = (round(v) for v in lesion.box)
    assert drawn[y0:y1, x0:x1].mean() < plain[y0:y1, x0:x1].mean()


def test_chest_anatomy_is_plausible() -> None:
    img = render_chest(np.random.default_rng(0), 256, [])
    assert img.dtype == np.float32 and img.shape == (256, 256)
    assert img.min() >= 0 and img.max() <= 1
    lung = img[90:130, 50:80].mean()
    mediastinum = img[90:130, 120:136].mean()
    outside = img[5:20, 0:10].mean()
    below_diaphragm = img[230:250, 60:100].mean()
    assert outside < lung < mediastinum and lung < below_diaphragm


def test_cardiomegaly_heart_is_wide() -> None:
    g = sample_geometry(np.random.default_rng(0), SHAPE)
    g2, lesion = enlarge_heart(g, np.random.default_rng(1))
    x0, _, x1, _ = lesion.box
    assert (x1 - x0) / g2.thorax_width() > 0.5 > 2 * g.heart_rx * SHAPE[1] / g.thorax_width()


def test_same_seed_same_image_and_unknown_kind() -> None:
    a = render_chest(np.random.default_rng(7), (128, 100), [])
    b = render_chest(np.random.default_rng(7), (128, 100), [])
    assert a.shape == (128, 100) and np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown lesion kind"):
        Lesion("tumour", (0, 0, 1, 1))
