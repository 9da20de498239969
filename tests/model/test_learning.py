"""The issue's learning acceptance on a phantom VinDr-CXR (1,000 images, 30% test), from scratch on CPU.

Slow (two trainings, each of at most 10 min on a quiet 2-core machine, far longer under load): skipped unless
selected; ``./run test -m slow -n 0 tests/model/test_learning.py -s`` runs it and prints the figures (a
failed assertion names them too). Thresholds: macro AUROC >= 0.80 over the local labels with >= 20 test
positives, Cardiomegaly and Nodule/Mass >= 0.95, mAP@0.4 >= 0.20 (challenge classes, No finding included); a
second model trained without boxes must place CAM boxes with T(IoBB > 0.5) >= 0.5 for Cardiomegaly and
Nodule/Mass.

A 30% test split of 1,000 images holds 26 Nodule/Mass images. Measured on a quiet machine (load 0.5-2.0),
``--pool auto`` (class maps at stride 4 with boxes): the boxed model (256 px, 12 epochs, class-balanced,
2 threads) 7.7 min wall, macro AUROC 0.96, Cardiomegaly 1.00, Nodule/Mass 0.951 (0.972 and 0.974 in two
runs at 1 thread, 12 and 14 epochs; 0.94-0.947 at 224 px), mAP@0.4 0.56; the model without boxes (avg,
256 px, 16 epochs) 8.1 min wall, CAM boxes (CAM sharpened by LayerCAM at stride 4) T(IoBB > 0.5)
Cardiomegaly 0.95, Nodule/Mass 0.63. The model without boxes trains without augmentation: with it,
Nodule/Mass AUROC fell from 0.86 to 0.80 in 16 epochs (and with lr 2e-3 the classifier did not leave the
label priors in 10 epochs).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .model_helpers import make_model_data

SETTINGS = {"batch_size": 16, "threads": 2, "seed": 0, "val_fraction": 0.1}
# --pool auto: lse with box-trained class maps (BOXED), avg with CAM sharpened by LayerCAM at C2 (WEAK)
BOXED = {"image_size": 256, "epochs": 12, "det_weight": 2.0, "balanced": True}
WEAK = {"image_size": 256, "epochs": 16, "boxes": False, "augment": False}


def _train_and_evaluate(data, out: Path, **extra: object):  # type: ignore[no-untyped-def]
    from cxrlab.model.config import resolve_config
    from cxrlab.model.evaluate import evaluate
    from cxrlab.model.train import train

    cfg = resolve_config(
        tables=str(data.tables), images=str(data.converted), out=str(out), **SETTINGS, **extra
    )
    wall, cpu, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    result = train(cfg)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"\n{out.name}: {len(result.history)} epochs in {wall / 60:.1f} min wall, {cpu / 60:.1f} min CPU "
        f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f}), "
        f"{result.history[-1]['images_per_s']:.1f} img/s in the last epoch"
    )
    return evaluate(out, data.tables, data.converted, out.with_name(out.name + "-eval"), n_boot=200)


@pytest.mark.slow
def test_learns_the_phantom(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("two trainings of about 10 min each (far longer under load): run it with -m slow")
    from cxrlab.model.evaluate import local_macro
    from cxrlab.taxonomy import VINDR

    data = make_model_data(tmp_path, images=1000, size=512, px=256, test_fraction=0.3)
    boxed = _train_and_evaluate(data, tmp_path / "boxes", **BOXED)
    auroc = boxed.scores["auroc"].table.set_index("label")
    macro, used = local_macro(boxed.scores["auroc"], list(VINDR.local), min_positives=20)
    map40 = boxed.scores["map40"].mean
    figures = (
        f"macro AUROC {macro:.3f} over {', '.join(used)}; "
        f"Cardiomegaly {auroc.at['Cardiomegaly', 'auroc']:.3f}, "
        f"Nodule/Mass {auroc.at['Nodule/Mass', 'auroc']:.3f}; mAP@0.4 {map40:.3f}"
    )
    print(figures)
    weak = _train_and_evaluate(data, tmp_path / "no-boxes", **WEAK)
    iobb = weak.scores["iobb"].table.set_index("label")["T=0.5"]
    figures += (
        f"; CAM T(IoBB > 0.5) without boxes: Cardiomegaly {iobb['Cardiomegaly']:.2f}, "
        f"Nodule/Mass {iobb['Nodule/Mass']:.2f}"
    )
    print(figures)
    assert macro >= 0.80, figures
    assert auroc.at["Cardiomegaly", "auroc"] >= 0.95, figures
    assert auroc.at["Nodule/Mass", "auroc"] >= 0.95, figures
    assert map40 >= 0.20, figures
    assert iobb["Cardiomegaly"] >= 0.5 and iobb["Nodule/Mass"] >= 0.5, figures
