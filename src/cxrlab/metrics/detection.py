"""Detection metrics: PASCAL VOC average precision (the VinBigData challenge's mAP at IoU 0.4), COCO-style
AP@[.5:.95], and the localization accuracy T(IoU) / T(IoBB) of ChestX-ray8.

Box convention (:mod:`cxrlab.boxes`): ``x_min, y_min, x_max, y_max`` in pixels of the original image, origin
top-left, continuous coordinates: a box's area is ``(x_max - x_min) * (y_max - y_min)``, no "+1 pixel" rule.
The challenge's ``No finding`` truth and prediction is class 14 with the box ``0 0 1 1``: an ordinary box of
area 1 here.

Inputs are tables with the columns ``image_id``, ``label`` (any class key: a name or a challenge class id),
the four box columns, and for predictions ``score``. Rows without a box are not allowed here; the caller
(:mod:`cxrlab.metrics.scoring`) decides what an image-level row means.

How :func:`average_precision` scores (the PASCAL VOC 2010+ devkit, which the VinBigData challenge used):

- per class, predictions are sorted by descending score; equal scores keep the order of the table (a stable
  sort, like pycocotools; the VOC devkit's MATLAB ``sort`` is stable too);
- each prediction is compared with the truth boxes of its image and class; the box of largest IoU (the first
  in table order among equal IoUs) is its candidate. It is a true positive when that IoU is ``> threshold``
  (VOC's ``ovmax > ovthresh``; ``inclusive=True`` gives ``>=``) and the candidate is not matched yet;
  otherwise a false positive, even when another free box also passes the threshold (VOC's rule);
- AP is the area under the precision envelope at every recall step (VOC 2010+ "all points");
- every prediction counts: one on an image that has no truth of its class (or no truth at all) is a false
  positive; a class without truth boxes has an undefined AP (NaN) and is left out of the mean.

Differences from ``map_boxes.mean_average_precision_for_boxes`` (map-boxes 1.0.6, the reference many
challenge teams used); the tests reproduce it to 1e-9 where none of these applies:

1. map-boxes matches an image's predictions in the order they are listed, not by score: the same only when
   each image's predictions are listed by descending score;
2. it ignores predictions on images absent from its truth table; here they are false positives;
3. it tests ``IoU >= threshold``; VOC and cxrlab ``>`` (pass ``inclusive=True`` for map-boxes' rule);
4. it casts boxes and scores to float32, so scores equal in float32 become ties and boxes move slightly;
5. it breaks score ties across images with ``np.argsort(-scores)`` (not stable, so tied predictions land in
   an arbitrary order); here ties keep the table order;
6. both score a class with truth but no prediction as AP 0 and ignore classes with predictions only; both
   take the mean over the classes that have truth.

A common mistake that this module does not repeat: challenge notebooks passed ``x_min, y_min, x_max, y_max``
to pycocotools as COCO's ``x, y, w, h``. :func:`coco_average_precision` matches on ``x_min .. y_max`` boxes
itself and equals pycocotools given correctly converted boxes (the tests check both).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from cxrlab.boxes import paired_iobb, paired_iou
from cxrlab.errors import CxrlabError
from cxrlab.params import check_choice, check_iou

BOX_COLUMNS = ["x_min", "y_min", "x_max", "y_max"]
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
"""0.5, 0.55, ..., 0.95 exactly as pycocotools builds them."""
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)
CHESTXRAY8_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

Overlap = Literal["iou", "iobb"]


@dataclass
class _Encoded:
    """Truth and predictions with images and classes as integer codes (the fast paths work on these)."""

    classes: list[object]
    n_images: int
    t_cls: np.ndarray
    t_key: np.ndarray  # class * n_images + image
    t_box: np.ndarray
    p_cls: np.ndarray
    p_key: np.ndarray
    p_box: np.ndarray
    p_score: np.ndarray


def _encode(truth: pd.DataFrame, pred: pd.DataFrame, classes: Sequence[object] | None) -> _Encoded:
    for name, df, cols in (
        ("truth", truth, ["image_id", "label", *BOX_COLUMNS]),
        ("predictions", pred, ["image_id", "label", *BOX_COLUMNS, "score"]),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise CxrlabError(f"{name} table lacks column(s) {', '.join(missing)}")
    t_box = truth[BOX_COLUMNS].to_numpy(dtype=float)
    p_box = pred[BOX_COLUMNS].to_numpy(dtype=float)
    if np.isnan(t_box).any() or np.isnan(p_box).any():
        raise CxrlabError("detection metrics need a box on every row; drop image-level rows first")
    ids = pd.concat([truth["image_id"], pred["image_id"]], ignore_index=True)
    images, _ = pd.factorize(ids if truth["image_id"].dtype == pred["image_id"].dtype else ids.astype(str))
    n_images = int(images.max()) + 1 if len(images) else 1
    if classes is None:
        found = pd.unique(pd.concat([truth["label"], pred["label"]], ignore_index=True))
        classes = sorted(found, key=lambda c: (str(type(c)), c))
    t_cls = _class_codes(truth["label"], classes)
    p_cls = _class_codes(pred["label"], classes)
    # Rows of classes outside ``classes`` are dropped, in the truth and in the predictions.
    t_keep, p_keep = t_cls >= 0, p_cls >= 0
    t_cls, p_cls = t_cls[t_keep], p_cls[p_keep]
    t_img = images[: len(truth)][t_keep].astype(np.int64)
    p_img = images[len(truth) :][p_keep].astype(np.int64)
    score = pred["score"].to_numpy(dtype=float)[p_keep]
    if np.isnan(score).any():
        raise CxrlabError("predictions have rows without a score")
    return _Encoded(
        classes=list(classes),
        n_images=n_images,
        t_cls=t_cls,
        t_key=t_cls * n_images + t_img,
        t_box=t_box[t_keep],
        p_cls=p_cls,
        p_key=p_cls * n_images + p_img,
        p_box=p_box[p_keep],
        p_score=score,
    )


_DENSE_KEYS = (
    50_000_000  # up to this many (class, image) keys, look groups up in a table instead of searching
)


def _class_codes(labels: pd.Series, classes: Sequence[object]) -> np.ndarray:
    """Position of each label in ``classes`` (-1 if absent), by factorizing first: fast on large tables."""
    codes, uniques = pd.factorize(labels)
    index = pd.Index(list(classes), dtype=object)
    lookup = np.append(index.get_indexer(pd.Index(uniques, dtype=object)), -1)  # code -1 (NaN) -> -1
    return lookup[codes].astype(np.int64)


def _pairs(query_key: np.ndarray, target_key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query, target) pair sharing a key: query-major, targets in table order within a query.

    Returns ``(pair_query, pair_target, count)`` where ``count[q]`` is the number of targets of query ``q``.
    """
    order = np.argsort(target_key, kind="stable")
    sorted_keys = target_key[order]
    n_keys = int(max(query_key.max(initial=-1), target_key.max(initial=-1))) + 1
    if n_keys <= _DENSE_KEYS:
        per_key = np.bincount(target_key, minlength=n_keys)
        first = np.cumsum(per_key) - per_key
        start, count = first[query_key], per_key[query_key]
    else:
        start = np.searchsorted(sorted_keys, query_key, side="left")
        count = np.searchsorted(sorted_keys, query_key, side="right") - start
    total = int(count.sum())
    pair_query = np.repeat(np.arange(len(query_key)), count)
    offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    pair_target = order[np.repeat(start, count) + offset]
    return pair_query, pair_target, count


def _class_score_order(cls: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Indices sorted by class, then descending score, ties in table order (two stable sorts; the second is a
    radix sort on small class codes)."""
    by_score = np.argsort(-score)  # the fast unstable sort; equal to the stable one when scores are distinct
    ranked = score[by_score]
    if len(ranked) > 1 and (ranked[1:] == ranked[:-1]).any():
        by_score = np.argsort(-score, kind="stable")
    small = cls.astype(np.int16) if len(cls) and cls.max() < 2**15 else cls
    return by_score[np.argsort(small[by_score], kind="stable")]


def _best_per_query(values: np.ndarray, count: np.ndarray, pair_target: np.ndarray) -> tuple[np.ndarray, ...]:
    """Max of ``values`` per query and the first target reaching it (-1 and 0.0 for queries without pairs)."""
    n = len(count)
    best = np.zeros(n)
    target = np.full(n, -1, dtype=np.int64)
    has = count > 0
    if not has.any():
        return best, target
    starts = (np.cumsum(count) - count)[has]
    best[has] = np.maximum.reduceat(values, starts)
    at_max = values == np.repeat(best, count)
    first = np.minimum.reduceat(np.where(at_max, np.arange(len(values)), len(values)), starts)
    target[has] = pair_target[first]
    return best, target


@dataclass
class APResult:
    """Per-class average precision and the mean over classes that have truth boxes."""

    table: pd.DataFrame
    """One row per class: ``label``, ``ap`` (NaN without truth), ``n_truth``, ``n_pred``, ``tp``."""
    iou_threshold: float

    @property
    def mean(self) -> float:
        values = self.table["ap"].to_numpy(dtype=float)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _voc_ap(tp: np.ndarray, n_truth: int) -> float:
    """VOC 2010+ all-points AP of a score-sorted TP indicator (FP = not TP)."""
    if n_truth == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    tps = np.cumsum(tp)
    fps = np.cumsum(~tp)
    recall = tps / n_truth
    precision = tps / (tps + fps)
    mrec = np.concatenate(([0.0], recall, [1.0]))
    mpre = np.concatenate(([0.0], precision, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    step = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _voc_tp(enc: _Encoded, thresholds: np.ndarray, inclusive: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sort order (class, descending score) and the TP matrix (T, P) of the sorted predictions."""
    order = _class_score_order(enc.p_cls, enc.p_score)
    pq, pt, count = _pairs(enc.p_key[order], enc.t_key)
    iou = paired_iou(enc.p_box[order[pq]], enc.t_box[pt])
    best, target = _best_per_query(iou, count, pt)
    tp = np.zeros((len(thresholds), len(order)), dtype=bool)
    for k, thr in enumerate(thresholds):
        ok = np.flatnonzero((best >= thr) if inclusive else (best > thr))
        _, first = np.unique(target[ok], return_index=True)  # the first in score order takes the box
        tp[k, ok[first]] = True
    return order, tp


def average_precision(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    *,
    iou_threshold: float = 0.4,
    inclusive: bool = False,
    classes: Sequence[object] | None = None,
) -> APResult:
    """VOC 2010+ average precision per class at one IoU threshold (the module docstring says exactly how).

    ``classes`` fixes the classes and their order (others are dropped); by default every class of either
    table, sorted. The challenge's mAP is ``average_precision(truth, pred, iou_threshold=0.4).mean``.
    """
    return average_precision_at(
        truth, pred, iou_thresholds=[iou_threshold], inclusive=inclusive, classes=classes
    )[0]


def average_precision_at(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    *,
    iou_thresholds: Sequence[float],
    inclusive: bool = False,
    classes: Sequence[object] | None = None,
) -> list[APResult]:
    """:func:`average_precision` at several IoU thresholds, sharing the sorting and the IoUs."""
    thresholds = np.asarray([check_iou(t, "iou_threshold") for t in iou_thresholds], dtype=float)
    enc = _encode(truth, pred, classes)
    order, tp = _voc_tp(enc, thresholds, inclusive)
    sorted_cls = enc.p_cls[order]
    n_cls = len(enc.classes)
    bounds = np.searchsorted(sorted_cls, np.arange(n_cls + 1))
    n_truth = np.bincount(enc.t_cls, minlength=n_cls)
    results = []
    for k, thr in enumerate(thresholds):
        rows = []
        for c, label in enumerate(enc.classes):
            tp_c = tp[k, bounds[c] : bounds[c + 1]]
            rows.append(
                {
                    "label": label,
                    "ap": _voc_ap(tp_c, int(n_truth[c])),
                    "n_truth": int(n_truth[c]),
                    "n_pred": len(tp_c),
                    "tp": int(tp_c.sum()),
                }
            )
        results.append(APResult(pd.DataFrame(rows), float(thr)))
    return results


def coco_average_precision(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    *,
    iou_thresholds: Sequence[float] = tuple(COCO_IOU_THRESHOLDS),
    max_detections: int = 100,
    classes: Sequence[object] | None = None,
) -> pd.DataFrame:
    """COCO-style AP per class: 101-point interpolated precision averaged over ``iou_thresholds``.

    Follows pycocotools' ``COCOeval`` for boxes with area range "all" and nothing crowd: the top
    ``max_detections`` predictions per image and class, each matched (by descending score) to the unmatched
    truth box of highest IoU ``>= threshold`` (the last one among equal IoUs, as pycocotools). Returns one
    row per class: ``label``, ``ap`` (mean over thresholds; NaN without truth), ``n_truth``, and ``ap50``,
    ``ap75`` where those thresholds are among ``iou_thresholds``.
    """
    enc = _encode(truth, pred, classes)
    thr = np.asarray(iou_thresholds, dtype=float)
    # Keep the top max_detections per (image, class), by descending score with ties in table order.
    order = np.lexsort((-enc.p_score, enc.p_key))
    keys = enc.p_key[order]
    group_start = np.searchsorted(keys, keys, side="left")
    keep = order[(np.arange(len(order)) - group_start) < max_detections]
    p_key, p_box, p_score, p_cls = enc.p_key[keep], enc.p_box[keep], enc.p_score[keep], enc.p_cls[keep]
    matched_dt = np.zeros((len(thr), len(keep)), dtype=bool)
    # Greedy matching inside each (image, class) group that has truth: sequential by nature.
    pq, pt, count = _pairs(p_key, enc.t_key)
    iou = paired_iou(p_box[pq], enc.t_box[pt])
    by_group: dict[int, list[int]] = {}
    has = np.flatnonzero(count > 0)
    for q in has[np.lexsort((-p_score[has], p_key[has]))]:
        by_group.setdefault(int(p_key[q]), []).append(int(q))
    starts = np.cumsum(count) - count
    for _key, queries in by_group.items():
        n_t = int(count[queries[0]])
        taken = np.zeros((len(thr), n_t), dtype=bool)
        for q in queries:
            ious = iou[starts[q] : starts[q] + n_t]
            cand = (~taken) & (ious[None, :] >= np.minimum(thr, 1 - 1e-10)[:, None])
            values = np.where(cand, ious[None, :], -1.0)
            last_best = n_t - 1 - np.argmax(values[:, ::-1], axis=1)
            hit = cand.any(axis=1)
            taken[np.flatnonzero(hit), last_best[hit]] = True
            matched_dt[hit, q] = True
    n_truth = np.bincount(enc.t_cls, minlength=len(enc.classes))
    rows = []
    for c, label in enumerate(enc.classes):
        sel = np.flatnonzero(p_cls == c)
        sel = sel[np.argsort(-p_score[sel], kind="mergesort")]
        per_thr = [_coco_ap(matched_dt[k, sel], int(n_truth[c])) for k in range(len(thr))]
        row: dict[str, object] = {
            "label": label,
            "ap": float(np.mean(per_thr)) if n_truth[c] else float("nan"),
            "n_truth": int(n_truth[c]),
        }
        for name, value in (("ap50", 0.5), ("ap75", 0.75)):
            hit = np.flatnonzero(np.isclose(thr, value))
            if len(hit):
                row[name] = per_thr[hit[0]]
        rows.append(row)
    return pd.DataFrame(rows)


def _coco_ap(tp: np.ndarray, n_truth: int) -> float:
    """pycocotools' 101-point interpolated AP of a score-sorted TP indicator."""
    if n_truth == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    tps = np.cumsum(tp).astype(float)
    fps = np.cumsum(~tp).astype(float)
    recall = tps / n_truth
    precision = tps / (tps + fps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    idx = np.searchsorted(recall, COCO_RECALL_THRESHOLDS, side="left")
    q = np.where(idx < len(tp), precision[np.minimum(idx, len(tp) - 1)], 0.0)
    return float(np.mean(q))


def localization_accuracy(
    truth: pd.DataFrame,
    pred: pd.DataFrame,
    *,
    overlap: Overlap = "iobb",
    thresholds: Sequence[float] = CHESTXRAY8_THRESHOLDS,
    classes: Sequence[object] | None = None,
) -> pd.DataFrame:
    """ChestX-ray8's localization accuracy: the share of truth boxes that a predicted box of the same image
    and class overlaps by more than T, with overlap IoU (``T(IoU)``) or the intersection over the
    predicted box's area (``T(IoBB)``).

    Returns one row per class and threshold: ``label``, ``threshold``, ``accuracy`` (NaN without truth),
    ``n_truth``, and ``afp``, the average number of false-positive boxes (predictions overlapping no truth box
    of their class by more than T) per image that has truth of any class.
    """
    check_choice(overlap, ("iou", "iobb"), "overlap")
    enc = _encode(truth, pred, classes)
    measure = paired_iobb if overlap == "iobb" else paired_iou
    tq, tp_, t_count = _pairs(enc.t_key, enc.p_key)
    best_t, _ = _best_per_query(measure(enc.p_box[tp_], enc.t_box[tq]), t_count, tp_)
    pq, pt, p_count = _pairs(enc.p_key, enc.t_key)
    best_p, _ = _best_per_query(measure(enc.p_box[pq], enc.t_box[pt]), p_count, pt)
    n_images = max(len(np.unique(enc.t_key % enc.n_images)), 1)
    rows = []
    for c, label in enumerate(enc.classes):
        t_sel, p_sel = enc.t_cls == c, enc.p_cls == c
        n_truth = int(t_sel.sum())
        for thr in thresholds:
            rows.append(
                {
                    "label": label,
                    "threshold": float(thr),
                    "accuracy": float((best_t[t_sel] > thr).mean()) if n_truth else float("nan"),
                    "n_truth": n_truth,
                    "afp": float((best_p[p_sel] <= thr).sum()) / n_images,
                }
            )
    return pd.DataFrame(rows)
