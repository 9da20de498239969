"""A model's results for the report: per-label AUROC with bootstrap CIs (:mod:`cxrlab.metrics`), ROC curves
with bootstrap bands, per-class AP, and the images it got most right and most wrong.

The truth is the ``consensus`` reader where the tables have one, else any reader's label (as ``cxrlab score
--metric auroc`` does), on the images the predictions cover. An image's score for a label is the highest
predicted score of that label on it (0 when none).

ROC band: the same resamples as the AUROC CIs (patients drawn with replacement, all their images taken);
in each resample the ROC curve is computed with the draw counts as weights and read at 101 false-positive
rates; the band is the pointwise percentile interval of those curves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError
from cxrlab.metrics.classification import bootstrap_counts, classification_metrics, resampling_units
from cxrlab.metrics.detection import average_precision
from cxrlab.metrics.scoring import Predictions, image_level, select_truth
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, Tables, has_box
from cxrlab.viz.predictions import read_predictions

__all__ = ["ModelResults", "model_results", "roc_band"]

FPR_GRID = np.linspace(0, 1, 101)


@dataclass
class RocCurve:
    label: str
    tpr: np.ndarray  # at FPR_GRID
    low: np.ndarray
    high: np.ndarray


@dataclass
class ModelResults:
    name: str
    table: pd.DataFrame  # classification_metrics' per-label table
    summary: pd.DataFrame
    curves: list[RocCurve]
    ap: pd.Series  # label -> AP
    ap_kind: str
    best: pd.DataFrame  # image_id, error, truth, predicted
    worst: pd.DataFrame
    predictions: pd.DataFrame
    truth: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _weighted_roc(y: np.ndarray, s: np.ndarray, w: np.ndarray) -> np.ndarray:
    """TPR at FPR_GRID for each weight column: y, s (n,), w (n, B) -> (B, len(FPR_GRID))."""
    order = np.argsort(-s, kind="stable")
    y, s, w = y[order], s[order], w[order]
    last = np.r_[s[1:] != s[:-1], True]  # end of each run of tied scores: one threshold
    tp = np.cumsum(w * y[:, None], axis=0)[last]
    fp = np.cumsum(w * (1 - y)[:, None], axis=0)[last]
    out = np.full((w.shape[1], len(FPR_GRID)), np.nan)
    for b in range(w.shape[1]):
        if tp[-1, b] <= 0 or fp[-1, b] <= 0:
            continue
        fpr = np.r_[0.0, fp[:, b] / fp[-1, b]]
        tpr = np.r_[0.0, tp[:, b] / tp[-1, b]]
        out[b] = np.interp(FPR_GRID, fpr, tpr)
    return out


def roc_band(
    y: np.ndarray,
    s: np.ndarray,
    patients: np.ndarray | None,
    *,
    n_boot: int = 200,
    ci: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of one label at FPR_GRID and its pointwise bootstrap band (resampled by patient)."""
    y, s = np.asarray(y, dtype=float), np.asarray(s, dtype=float)
    point = _weighted_roc(y, s, np.ones((len(y), 1)))[0]
    unit, n_units = resampling_units(len(y), patients)
    counts = bootstrap_counts(n_units, n_boot, np.random.default_rng(seed))  # (units, B)
    curves = _weighted_roc(y, s, counts[unit])
    alpha = (1 - ci) / 2 * 100
    ok = np.isfinite(curves).all(axis=1)
    if not ok.any():
        nan = np.full(len(FPR_GRID), np.nan)
        return point, nan, nan
    low, high = np.percentile(curves[ok], [alpha, 100 - alpha], axis=0)
    return point, low, high


def _truth_for(tables: Tables, preds: pd.DataFrame) -> tuple[Tables, str]:
    ids = set(preds["image_id"].astype(str))
    images = tables.images[tables.images["image_id"].astype(str).isin(ids)]
    if images.empty:
        raise CxrlabError("the predictions name no image of the tables")
    has_consensus = (tables.findings["reader"] == CONSENSUS).any()
    return Tables(images, tables.findings), CONSENSUS if has_consensus else ""


def _cases(
    ids: list[str], y: np.ndarray, s: np.ndarray, labels: list[str], k: int
) -> tuple[pd.DataFrame, ...]:
    """The ``k`` images with the smallest and largest mean |truth - score| over the labels."""
    error = np.abs(y - s).mean(axis=1)

    def describe(rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "image_id": [ids[i] for i in rows],
                "error": error[rows],
                "truth": [", ".join(labels[j] for j in np.flatnonzero(y[i])) or "none" for i in rows],
                "predicted": [
                    ", ".join(f"{labels[j]} {s[i, j]:.2f}" for j in np.argsort(-s[i])[:3]) for i in rows
                ],
            }
        )

    order = np.argsort(error, kind="stable")
    return describe(order[:k]), describe(order[::-1][:k])


def _average_precision(
    truth: pd.DataFrame, preds: pd.DataFrame, table: pd.DataFrame
) -> tuple[pd.Series, str]:
    t = truth[has_box(truth)]
    p = preds[has_box(preds)]
    if t.empty or p.empty:
        return table.set_index("label")["auprc"], "image-level AP (area under the precision-recall curve)"
    classes = sorted(set(t["label"].astype(str)))
    tt = pd.DataFrame({"image_id": t["image_id"].astype(str), "label": t["label"].astype(str)})
    tt[BOX_COLUMNS] = t[BOX_COLUMNS].to_numpy(dtype=float)
    pp = pd.DataFrame(
        {
            "image_id": p["image_id"].astype(str),
            "label": p["label"].astype(str),
            "score": p["score"].to_numpy(dtype=float),
        }
    )
    pp[BOX_COLUMNS] = p[BOX_COLUMNS].to_numpy(dtype=float)
    result = average_precision(tt, pp, iou_threshold=0.4, classes=classes)
    ap = result.table.set_index("label")["ap"]
    return ap.astype(float), "box AP at IoU > 0.4 (VOC, as the VinBigData challenge)"


def model_results(
    tables: Tables, path: str | Path, *, n_boot: int = 200, seed: int = 0, cases: int = 4
) -> ModelResults:
    """Everything the report shows about one prediction file."""
    path = Path(path)
    preds = read_predictions(path, tables.images)
    readers = sorted(preds["reader"].astype(str).unique())
    name = readers[0] if len(readers) == 1 else path.stem
    sub, reader = _truth_for(tables, preds)
    truth = select_truth(sub, reader=reader or None, any_reader=not reader)
    inside = preds[preds["image_id"].isin(truth.images["image_id"])]
    y, s, labels, notes = image_level(truth, Predictions(inside.reset_index(drop=True), "findings"))
    pid = truth.images["patient_id"]
    patients = pid.to_numpy(dtype=object) if pid.notna().any() else None
    metrics = classification_metrics(y, s, labels=labels, patient_ids=patients, n_boot=n_boot, seed=seed)
    curves = []
    for j, label in enumerate(labels):
        if 0 < y[:, j].sum() < len(y):
            tpr, low, high = roc_band(y[:, j], s[:, j], patients, n_boot=n_boot, seed=seed)
            curves.append(RocCurve(label, tpr, low, high))
    ap, ap_kind = _average_precision(truth.findings, inside, metrics.table)
    ids = truth.images["image_id"].astype(str).tolist()
    best, worst = _cases(ids, y, s, labels, cases)
    notes = [*truth.notes, *notes, f"truth: {truth.reader}; {len(ids):,} images with predictions"]
    return ModelResults(
        name, metrics.table, metrics.summary, curves, ap, ap_kind, best, worst, inside, truth.findings, notes
    )
