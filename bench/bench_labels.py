"""Index + WBF consensus of VinDr-CXR label files of the real size, against ensemble-boxes' WBF alone.

The label files are the challenge's ``train.csv`` (15,000 images x 3 readers, about 68,000 rows; ~70% of the
images `No finding` for all three readers, the others 1-10 boxes per reader around shared lesions), written to
a temporary folder without DICOMs: the case of a user who holds only the labels. The baseline is the bare
ensemble-boxes loop on the same boxes, already normalised and split per image and reader (what any consensus
must at least pay). Target: index + consensus < 10 s.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.datasets.vindr import index_vindr
from cxrlab.labels.consensus import consensus
from cxrlab.taxonomy import VINDR_CHALLENGE

IMAGES = 15_000
NORMAL = 0.70
SIZE = 2500.0
REPEATS = 3


def make_train_csv(path: Path, *, images: int = IMAGES, seed: int = 0) -> int:
    """Write a realistic challenge train.csv; returns the number of rows."""
    rng = np.random.default_rng(seed)
    classes = list(VINDR_CHALLENGE.class_ids.items())[:-1]
    rows: list[tuple] = []
    for i in range(images):
        image_id = f"{i:032x}"
        readers = rng.choice(17, size=3, replace=False) + 1
        if rng.random() < NORMAL:
            rows += [(image_id, "No finding", 14, f"R{r}", None, None, None, None) for r in readers]
            continue
        n_lesions = min(rng.geometric(0.28), 9)
        lesions = []
        for _ in range(n_lesions):
            w, h = rng.uniform(80, 700, 2)
            x, y = rng.uniform(0, SIZE - w), rng.uniform(0, SIZE - h)
            lesions.append((classes[rng.integers(len(classes))], x, y, w, h))
        for r in readers:
            drawn = 0
            for (name, cid), x, y, w, h in lesions:
                if rng.random() > 0.75 or drawn >= 10:
                    continue
                jitter = rng.normal(0, 0.08, 4) * [w, h, w, h]
                x0, y0 = max(0.0, x + jitter[0]), max(0.0, y + jitter[1])
                x1, y1 = min(SIZE, x + w + jitter[2]), min(SIZE, y + h + jitter[3])
                rows.append((image_id, name, cid, f"R{r}", int(x0), int(y0), int(x1), int(y1)))
                drawn += 1
            if drawn == 0:
                rows.append((image_id, "No finding", 14, f"R{r}", None, None, None, None))
    df = pd.DataFrame(
        rows, columns=["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
    )
    for c in ("x_min", "y_min", "x_max", "y_max"):
        df[c] = df[c].astype("Int64")
    df.to_csv(path, index=False)
    return len(df)


def wbf_alone(findings: pd.DataFrame, iou: float = 0.4) -> float:
    """Seconds of the bare ensemble-boxes loop, on arrays prepared outside the timing."""
    from ensemble_boxes import weighted_boxes_fusion

    f = findings[findings[["x_min", "y_min", "x_max", "y_max"]].notna().all(axis=1)]
    codes, _ = pd.factorize(f["label"])
    xy = f[["x_min", "y_min", "x_max", "y_max"]].to_numpy(float)
    scale = np.maximum(np.maximum(xy[:, 2], xy[:, 3]).max(), 1.0)
    groups = []
    for (_, _), g in f.assign(code=codes).groupby(["image_id", "reader"], sort=True):
        groups.append(g)
    per_image: dict[str, list] = {}
    for g in groups:
        per_image.setdefault(g["image_id"].iloc[0], []).append(
            (g[["x_min", "y_min", "x_max", "y_max"]].to_numpy(float) / scale, g["code"].to_numpy())
        )
    prepared = [
        ([b for b, _ in v], [np.ones(len(b)) for b, _ in v], [c for _, c in v]) for v in per_image.values()
    ]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for boxes, scores, labels in prepared:
            weighted_boxes_fusion(boxes, scores, labels, iou_thr=iou, skip_box_thr=0.0)
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        n_rows = make_train_csv(root / "train.csv")
        print(
            f"label files: {IMAGES} images, {n_rows} rows of train.csv "
            f"(written in {time.perf_counter() - t0:.1f} s)"
        )
        t_index, t_cons, t_wbf = [], [], []
        for _ in range(REPEATS):  # best of a few: other work shares this machine's cores
            t0 = time.perf_counter()
            idx = index_vindr(root)
            t_index.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = consensus(idx.images, idx.findings, method="wbf", iou=0.4, min_readers=2)
            t_cons.append(time.perf_counter() - t0)
            t_wbf.append(wbf_alone(idx.findings))
        t_index, t_cons, t_wbf = min(t_index), min(t_cons), min(t_wbf)
        total = t_index + t_cons
        s = result.stats
        print(f"best of {REPEATS} runs")
        print(f"index (labels only)        {t_index:6.2f} s")
        print(
            f"consensus (WBF, quorum 2)  {t_cons:6.2f} s   {s['input_boxes']} reader boxes -> "
            f"{s['consensus_boxes']} consensus boxes on {s['images_fused']} images"
        )
        print(
            f"index + consensus          {total:6.2f} s   "
            f"(target < 10 s: {'met' if total < 10 else 'NOT met'})"
        )
        print(f"ensemble-boxes WBF alone   {t_wbf:6.2f} s   (same boxes, prepared arrays)")
        print(
            f"ratio consensus / WBF alone: {t_cons / t_wbf:.2f}x; index + consensus / WBF alone: "
            f"{total / t_wbf:.2f}x"
        )


if __name__ == "__main__":
    main()
