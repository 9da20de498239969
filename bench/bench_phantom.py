"""Phantom generation speed: 200 VinDr DICOMs and 100 NIH PNGs at 1024 px.

Baseline, measured in the same run: writing the same number of raw uint16 (VinDr) / uint8 (NIH) arrays of the
same size with ``numpy.save``. The target of the issue is 200 VinDr images at 1024 px in under 60 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from cxrlab.datasets.phantom import make_nih, make_vindr, render_chest

VINDR_IMAGES = 200
NIH_IMAGES = 100
SIZE = 1024


def _baseline(folder: Path, n: int, shape: tuple[int, int], dtype: type) -> float:
    arr = np.zeros(shape, dtype=dtype)
    arr[::7] = 1
    t0 = time.perf_counter()
    for i in range(n):
        np.save(folder / f"{i}.npy", arr)
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "raw16").mkdir()
        (root / "raw8").mkdir()
        base_vindr = _baseline(
            root / "raw16", VINDR_IMAGES, (round(SIZE * 1.09), round(SIZE * 0.94)), np.uint16
        )
        base_nih = _baseline(root / "raw8", NIH_IMAGES, (SIZE, SIZE), np.uint8)

        t0 = time.perf_counter()
        for i in range(20):
            render_chest(np.random.default_rng(i), SIZE, [])
        render_ms = (time.perf_counter() - t0) / 20 * 1000

        t0 = time.perf_counter()
        vindr = make_vindr(root / "vindr", images=VINDR_IMAGES, size=SIZE, seed=0)
        t_vindr = time.perf_counter() - t0
        t0 = time.perf_counter()
        nih = make_nih(root / "nih", images=NIH_IMAGES, size=SIZE, seed=0)
        t_nih = time.perf_counter() - t0

    print(f"render_chest {SIZE} px, no lesions: {render_ms:.0f} ms/image")
    print(
        f"VinDr {VINDR_IMAGES} images at ~{SIZE} px: {t_vindr:.1f} s "
        f"({t_vindr / VINDR_IMAGES * 1000:.0f} ms/image, "
        f"{vindr.summary['bytes'] / 1e6:.0f} MB); raw numpy.save baseline {base_vindr:.2f} s; "
        f"ratio {t_vindr / base_vindr:.0f}x; target < 60 s: {'met' if t_vindr < 60 else 'NOT met'}"
    )
    print(
        f"NIH {NIH_IMAGES} images at {SIZE} px in {nih.summary['archives']} archives: {t_nih:.1f} s "
        f"({t_nih / NIH_IMAGES * 1000:.0f} ms/image); raw numpy.save baseline {base_nih:.2f} s; "
        f"ratio {t_nih / base_nih:.0f}x"
    )


if __name__ == "__main__":
    main()
