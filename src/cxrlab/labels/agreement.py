"""Observer variability: how much the readers of the same images agree, per label, overall and per reader.

Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the original image, origin top-left.

- **Presence**: Fleiss' kappa per label on "did this reader report the label on this image" (a box or an
  image-level row), over the images read by the most common number of human readers (Fleiss' kappa needs the
  same number of ratings per subject; the other images are counted and left out). "Overall" pools every
  (image, label) pair as one subject. Per reader: Cohen's kappa of the reader against each co-reader on the
  same (image, label) pairs, averaged over co-readers weighted by the number of shared images.
- **Boxes**: for every image and every pair of its readers, per label, the two readers' boxes are matched
  one-to-one by the Hungarian algorithm (scipy's ``linear_sum_assignment``) over the pairs with IoU >=
  ``iou``: the most matched pairs, then the largest total IoU; each matched pair counts as agreement.
  F1 = 2 x matches / (boxes of one + boxes of the other); mean IoU is over the matched pairs.
  A reader's figures pool every pair it is part of.
The ``consensus`` reader and model readers (any score < 1, :func:`cxrlab.tables.human_readers`) are left
out: this measures the radiologists.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from cxrlab.boxes import box_iou
from cxrlab.errors import CxrlabError
from cxrlab.params import check_iou
from cxrlab.tables import BOX_COLUMNS, conform_findings, has_box, human_readers


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of (N subjects, k categories) rating counts, every row summing to the same n >= 2.

    NaN when agreement by chance is total (every rating in one category).
    """
    counts = np.asarray(counts, dtype=float)
    if counts.ndim != 2 or len(counts) == 0:
        return float("nan")
    n = counts.sum(axis=1)
    if not np.all(n == n[0]) or n[0] < 2:
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings for every subject")
    n0 = n[0]
    p_i = ((counts**2).sum(axis=1) - n0) / (n0 * (n0 - 1))
    p_bar = p_i.mean()
    p_j = counts.sum(axis=0) / counts.sum()
    p_e = float((p_j**2).sum())
    if np.isclose(p_e, 1.0):
        return float("nan")
    return float((p_bar - p_e) / (1 - p_e))


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two binary rating vectors; NaN when chance agreement is total."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if len(a) == 0:
        return float("nan")
    po = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    pe = float(pa * pb + (1 - pa) * (1 - pb))
    if np.isclose(pe, 1.0):
        return float("nan")
    return (po - pe) / (1 - pe)


def match_boxes(a: np.ndarray, b: np.ndarray, iou_thr: float) -> np.ndarray:
    """IoUs of the one-to-one matches at IoU >= ``iou_thr``; (N,4),(M,4).

    Hungarian on the pairs at or above the threshold only: the most such pairs, then the largest total IoU
    among them (maximising the total IoU of all pairs could prefer two pairs under the threshold to one
    above it, and find no agreement where there is some).
    """
    if len(a) == 0 or len(b) == 0:
        return np.zeros(0)
    iou = box_iou(a, b)
    ok = iou >= iou_thr
    # A pair counts 1 + its IoU and the total IoU (< min(N, M)) never outweighs one more pair.
    weight = np.where(ok, min(len(a), len(b)) + 1.0 + iou, 0.0)
    rows, cols = linear_sum_assignment(weight, maximize=True)
    got = iou[rows, cols]
    return got[ok[rows, cols]]


@dataclass
class _Acc:
    boxes: int = 0
    matches: int = 0
    iou_sum: float = 0.0

    def add(self, n_boxes: int, ious: np.ndarray) -> None:
        self.boxes += n_boxes
        self.matches += len(ious)
        self.iou_sum += float(ious.sum())

    def figures(self) -> dict[str, Any]:
        return {
            "box_f1": 2 * self.matches / self.boxes if self.boxes else None,
            "mean_iou": self.iou_sum / self.matches if self.matches else None,
            "box_matches": self.matches,
        }


@dataclass
class Agreement:
    labels: list[dict[str, Any]]
    overall: dict[str, Any]
    readers: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"info": self.info, "overall": self.overall, "labels": self.labels, "readers": self.readers}


def _nan_to_none(x: float) -> float | None:
    return None if x is None or np.isnan(x) else float(x)


def agreement(findings: pd.DataFrame, *, iou: float = 0.4) -> Agreement:
    """Presence kappa and pairwise box agreement of the human readers (module docstring)."""
    check_iou(iou)
    f = conform_findings(findings)
    f = f[f["reader"].isin(human_readers(f))]
    if f.empty:
        raise CxrlabError("no human reader in the findings table: nothing to measure agreement on")
    readers_of = f.groupby("image_id")["reader"].unique()
    n_per = readers_of.map(len)
    multi = n_per[n_per >= 2]
    if multi.empty:
        raise CxrlabError("no image has two or more readers: agreement needs several readers per image")
    n_modal = int(multi.mode().iloc[0])
    kappa_ids = multi.index[multi == n_modal]
    labels = sorted(f["label"].unique())
    present = f[["image_id", "reader", "label"]].drop_duplicates()  # (image, reader, label) reported
    counts, per_label_kappa, pooled = _presence_kappa(present, labels, kappa_ids, n_modal)
    boxed = f[has_box(f)]
    per_label, per_reader, total = _box_agreement(boxed, readers_of, iou)
    reader_rows = _reader_rows(f, present, labels, boxed, per_reader)
    label_rows = [
        {
            "label": lab,
            "images_reported": int((row > 0).sum()),
            "kappa": _nan_to_none(per_label_kappa[lab]),
            "boxes": int((boxed["label"] == lab).sum()),
            **per_label[lab].figures(),
        }
        for lab, row in zip(labels, counts, strict=True)
    ]
    finite = [k for k in per_label_kappa.values() if not np.isnan(k)]
    overall = {
        "kappa_pooled": _nan_to_none(pooled),
        "kappa_mean": float(np.mean(finite)) if finite else None,
        **total.figures(),
    }
    info = {
        "images": len(n_per),
        "images_with_several_readers": len(multi),
        "readers_per_image": n_modal,
        "images_in_kappa": len(kappa_ids),
        "images_left_out_of_kappa": int(len(multi) - len(kappa_ids)),
        "iou": iou,
        "matching": "hungarian (scipy linear_sum_assignment): most pairs at IoU >= iou, then total IoU",
    }
    return Agreement(label_rows, overall, reader_rows, info)


def _presence_kappa(
    present: pd.DataFrame, labels: list[str], kappa_ids: pd.Index, n_modal: int
) -> tuple[np.ndarray, dict[str, float], float]:
    """(label x image) counts of readers reporting, Fleiss' kappa per label and pooled over labels, on the
    images read by the modal number of readers (Fleiss needs the same number of ratings per subject)."""
    counts = (
        present[present["image_id"].isin(kappa_ids)]
        .groupby(["label", "image_id"])
        .size()
        .unstack(fill_value=0)
        .reindex(index=labels, columns=kappa_ids, fill_value=0)
        .to_numpy()
    )
    per_label = {
        lab: fleiss_kappa(np.stack([n_modal - row, row], axis=1))
        for lab, row in zip(labels, counts, strict=True)
    }
    pooled = fleiss_kappa(np.stack([n_modal - counts.ravel(), counts.ravel()], axis=1))
    return counts, per_label, pooled


def _box_agreement(
    boxed: pd.DataFrame, readers_of: pd.Series, iou: float
) -> tuple[dict[str, _Acc], dict[str, _Acc], _Acc]:
    """Matched boxes of every pair of readers of an image, per label: per label, per reader and in all.

    One pass over arrays sorted by image."""
    per_label: dict[str, _Acc] = defaultdict(_Acc)
    per_reader: dict[str, _Acc] = defaultdict(_Acc)
    total = _Acc()
    if boxed.empty:
        return per_label, per_reader, total
    img_codes, img_names = pd.factorize(boxed["image_id"], sort=True)
    order = np.argsort(img_codes, kind="stable")
    xy = boxed[BOX_COLUMNS].to_numpy(dtype=float)[order]
    rd = boxed["reader"].to_numpy(dtype=object)[order]
    lb = boxed["label"].to_numpy(dtype=object)[order]
    ic = img_codes[order]
    starts = np.flatnonzero(np.r_[True, ic[1:] != ic[:-1]])
    ends = np.r_[starts[1:], len(ic)]
    for g, (s, e) in enumerate(zip(starts, ends, strict=True)):
        readers = sorted(readers_of[img_names[g]])
        if len(readers) < 2:
            continue
        b, r, lab = xy[s:e], rd[s:e], lb[s:e]
        for label in np.unique(lab):
            sel = lab == label
            for ra, rb in combinations(readers, 2):
                ba, bb = b[sel & (r == ra)], b[sel & (r == rb)]
                if len(ba) == 0 and len(bb) == 0:
                    continue
                ious = match_boxes(ba, bb, iou)
                n = len(ba) + len(bb)
                for acc in (per_label[label], total, per_reader[ra], per_reader[rb]):
                    acc.add(n, ious)
    return per_label, per_reader, total


def _reader_rows(
    f: pd.DataFrame,
    present: pd.DataFrame,
    labels: list[str],
    boxed: pd.DataFrame,
    per_reader: dict[str, _Acc],
) -> list[dict[str, Any]]:
    """Per reader: Cohen's kappa on presence against each co-reader on their shared images (weighted by
    the images shared), and the reader's box figures."""
    matrix = present.assign(v=True).pivot_table(
        index=["image_id", "label"], columns="reader", values="v", aggfunc="any", fill_value=False
    )
    all_readers = sorted(f["reader"].unique(), key=_reader_key)
    image_sets = {r: set(f.loc[f["reader"] == r, "image_id"]) for r in all_readers}
    pair_kappa: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for ra, rb in combinations(all_readers, 2):
        shared = image_sets[ra] & image_sets[rb]
        if not shared:
            continue
        sub = matrix[matrix.index.get_level_values(0).isin(shared)]
        # every (shared image, label) pair, absent ones included
        full = pd.MultiIndex.from_product([sorted(shared), labels], names=["image_id", "label"])
        sub = sub.reindex(full, fill_value=False)
        k = cohen_kappa(sub[ra].to_numpy(), sub[rb].to_numpy())
        if not np.isnan(k):
            pair_kappa[ra].append((k, len(shared)))
            pair_kappa[rb].append((k, len(shared)))
    rows = []
    for r in all_readers:
        ks = pair_kappa.get(r, [])
        weight = sum(w for _, w in ks)
        rows.append(
            {
                "reader": r,
                "images": len(image_sets[r]),
                "boxes": int((boxed["reader"] == r).sum()),
                "kappa": sum(k * w for k, w in ks) / weight if weight else None,
                **per_reader[r].figures(),
            }
        )
    return rows


def _reader_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else 10**9, name)
