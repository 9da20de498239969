"""Metrics at the real sizes: the challenge's mAP@0.4 against map-boxes, and bootstrap AUROC CIs against a
scikit-learn loop, each measured in the same run.

- mAP: 3,000 images (the VinDr test set) x 15 classes, 100 predictions per image (300,000 boxes). The two
  results must agree (predictions listed by descending score per image, so map-boxes' order is VOC's).
- AUROC: ChestX-ray14's test set size, 25,596 images x 14 labels, 1,000 patient-level resamples (goal < 10 s);
  the baseline is scikit-learn's ``roc_auc_score`` per label and resample, timed on a few resamples.
- Bootstrap memory: 102,000 images x 14 labels, 1,000 resamples, in a fresh process: peak resident memory
  (goal <= 500 MiB; the pooled micro column alone drove it to 1.3 GiB before it was computed in blocks),
  peak traced allocations, and the time of the pooled column against a label column's.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time

import numpy as np
import pandas as pd

from cxrlab.metrics.classification import classification_metrics
from cxrlab.metrics.detection import average_precision

BOX = ["x_min", "y_min", "x_max", "y_max"]


def detection_case(n_images: int = 3000, per_image: int = 100, seed: int = 0) -> tuple[pd.DataFrame, ...]:
    rng = np.random.default_rng(seed)
    ids = np.array([f"{i:032x}" for i in range(n_images)])
    n_boxes = rng.integers(0, 6, n_images)
    t_img = np.repeat(np.arange(n_images), np.maximum(n_boxes, 1))
    t_cls = np.where(np.repeat(n_boxes, np.maximum(n_boxes, 1)) == 0, 14, rng.integers(0, 14, len(t_img)))
    xy = rng.uniform(0, 2000, (len(t_img), 2))
    wh = rng.uniform(30, 600, (len(t_img), 2))
    t_box = np.hstack([xy, xy + wh])
    t_box[t_cls == 14] = [0, 0, 1, 1]
    truth = pd.DataFrame({"image_id": ids[t_img], "label": t_cls})
    truth[BOX] = t_box
    # Predictions: per image, jittered copies of its truth boxes and random boxes of any class.
    p_img = np.repeat(np.arange(n_images), per_image)
    first_truth = np.searchsorted(t_img, np.arange(n_images))
    n_truth = np.maximum(n_boxes, 1)
    pick = first_truth[p_img] + (rng.random(len(p_img)) * n_truth[p_img]).astype(int)
    jittered = rng.random(len(p_img)) < 0.3
    p_cls = np.where(jittered, t_cls[pick], rng.integers(0, 15, len(p_img)))
    xy = rng.uniform(0, 2000, (len(p_img), 2))
    wh = rng.uniform(30, 600, (len(p_img), 2))
    p_box = np.hstack([xy, xy + wh])
    noise = rng.normal(0, 20, (len(p_img), 4))
    p_box[jittered] = t_box[pick[jittered]] + noise[jittered]
    p_box[:, 2:] = np.maximum(p_box[:, 2:], p_box[:, :2] + 1)
    score = (rng.permutation(len(p_img)) + 1) / 2.0**20  # distinct, exact in float32
    pred = pd.DataFrame({"image_id": ids[p_img], "label": p_cls, "score": score})
    pred[BOX] = np.round(p_box)  # whole pixels: exact in float32 for map-boxes
    truth[BOX] = np.round(truth[BOX])
    pred = pred.sort_values(["image_id", "score"], ascending=[True, False], kind="stable")
    return truth, pred.reset_index(drop=True)


def bench_map() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        from map_boxes import mean_average_precision_for_boxes
    truth, pred = detection_case()
    n_images = truth["image_id"].nunique()
    print(f"mAP@0.4: {n_images:,} images, {len(truth):,} truth boxes, {len(pred):,} predictions")
    t0 = time.perf_counter()
    ours = average_precision(truth, pred, iou_threshold=0.4, inclusive=True).mean
    t_ours = time.perf_counter() - t0
    ann = truth[["image_id", "label", "x_min", "x_max", "y_min", "y_max"]].to_numpy()
    det = pred[["image_id", "label", "score", "x_min", "x_max", "y_min", "y_max"]].to_numpy()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        theirs, _ = mean_average_precision_for_boxes(ann, det, iou_threshold=0.4, verbose=False)
    t_theirs = time.perf_counter() - t0
    print(f"  cxrlab    {t_ours:8.2f} s   mAP {ours:.12f}")
    print(f"  map-boxes {t_theirs:8.2f} s   mAP {float(theirs):.12f}   |difference| {abs(ours - theirs):.1e}")
    print(f"  speed-up: {t_theirs / t_ours:.0f}x (goal >= 20x)")


def bench_bootstrap() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    n, labels = 25_596, 14
    prevalence = rng.uniform(0.002, 0.2, labels)
    y = (rng.random((n, labels)) < prevalence).astype(int)
    s = rng.random((n, labels)) + y * rng.uniform(0.05, 0.6, labels)
    patients = np.sort(rng.integers(0, 2_797, n))  # the NIH test set's patient count
    n_patients = len(np.unique(patients))
    print(f"bootstrap AUROC CIs: {n:,} images x {labels} labels, {n_patients:,} patients, 1,000 resamples")
    t0 = time.perf_counter()
    result = classification_metrics(y, s, patient_ids=patients, n_boot=1000, seed=0)
    t_ours = time.perf_counter() - t0
    # Baseline: scikit-learn per resample and label (timed on 10 resamples, scaled to 1,000).
    codes = np.unique(patients, return_inverse=True)[1]
    members = pd.Series(np.arange(n)).groupby(codes).apply(np.asarray).tolist()
    t0 = time.perf_counter()
    for _ in range(10):
        drawn = rng.integers(0, len(members), len(members))
        idx = np.concatenate([members[k] for k in drawn])
        for j in range(labels):
            if y[idx, j].any():
                roc_auc_score(y[idx, j], s[idx, j])
    t_sklearn = (time.perf_counter() - t0) * 100
    macro = result.summary.set_index("label").loc["macro"]
    print(f"  cxrlab (AUROC + AUPRC, per label, macro, micro) {t_ours:6.2f} s (goal < 10 s)")
    print(f"  scikit-learn loop, AUROC only (estimated)       {t_sklearn:6.1f} s")
    print(f"  speed-up: {t_sklearn / t_ours:.0f}x; macro AUROC {macro['auroc']:.4f} "
          f"[{macro['auroc_low']:.4f}, {macro['auroc_high']:.4f}]")  # fmt: skip


_MEMORY_CHILD = """
import json, resource, sys, time, tracemalloc
import numpy as np
from cxrlab.metrics import classification as c

n, labels, n_boot = 102_000, 14, 1_000
rng = np.random.default_rng(2)
y = (rng.random((n, labels)) < rng.uniform(0.002, 0.2, labels)).astype(int)
s = rng.random((n, labels)) + y * rng.uniform(0.05, 0.6, labels)
patients = np.sort(rng.integers(0, 30_805, n))  # NIH's patient count
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
t0 = time.perf_counter()
c.classification_metrics(y, s, patient_ids=patients, n_boot=n_boot, seed=0)
total = time.perf_counter() - t0
traced = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
unit, n_units = c.resampling_units(n, patients)
w = c.bootstrap_counts(n_units, 100, np.random.default_rng(0))
columns = [c._prepare(y[:, j], s[:, j], unit, n_units) for j in range(labels)]
pooled = c._prepare(y.ravel(), s.ravel(), np.repeat(unit, labels), n_units)
t0 = time.perf_counter()
for col in columns:
    c._auroc_auprc(col, w)
per_label = (time.perf_counter() - t0) / labels
t0 = time.perf_counter()
c._auroc_auprc(pooled, w)
micro = time.perf_counter() - t0
print(json.dumps({"total": total, "rss_mib": peak / 1024, "rss_before_mib": base / 1024,
                  "traced_mib": traced / 2**20, "per_label": per_label, "micro": micro,
                  "distinct": [int(pooled.pos.shape[0]), int(np.mean([k.pos.shape[0] for k in columns]))]}))
"""


def bench_bootstrap_memory() -> None:
    """Peak memory of the bootstrap at 102k images, measured in a fresh process (RSS is per process)."""
    run = subprocess.run([sys.executable, "-c", _MEMORY_CHILD], capture_output=True, text=True, check=True)
    r = json.loads(run.stdout.strip().splitlines()[-1])
    print("bootstrap AUROC CIs at 102,000 images x 14 labels, 1,000 resamples (fresh process)")
    print(
        f"  time {r['total']:.1f} s; peak RSS {r['rss_mib']:.0f} MiB (goal <= 500; {r['rss_before_mib']:.0f} "
        f"MiB before the call: imports and data); peak traced allocations {r['traced_mib']:.0f} MiB"
    )
    print(f"  per 100 resamples: pooled (micro) column {r['micro']:.2f} s for {r['distinct'][0]:,} distinct "
          f"positive scores, a label column {r['per_label']:.2f} s for {r['distinct'][1]:,}: "
          f"{r['micro'] / r['per_label']:.1f}x a label column for {14}x its items")  # fmt: skip


def main() -> None:
    bench_map()
    bench_bootstrap()
    bench_bootstrap_memory()


if __name__ == "__main__":
    main()
