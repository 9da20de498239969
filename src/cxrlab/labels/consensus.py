"""One set of labels per image from several readers: majority vote for labels, fusion for boxes.

Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the original image, origin top-left.

Rules (README "Consensus of readers"):

- **Images fused**: every image with at least one human reader (any reader but ``consensus``). Earlier
  ``consensus`` rows of such an image are replaced; an image whose only reader is ``consensus`` (the VinDr
  test split, a consensus of 5 radiologists) is kept as it is.
- **Image labels**: a label is positive when at least ``min_readers`` distinct readers report it on the image,
  by a box or an image-level row. The quorum is capped at the image's number of readers (an image read by one
  radiologist keeps that reader's labels).
- **Boxes**: per image and label, the readers' boxes are fused: ``wbf`` (ensemble-boxes' weighted boxes
  fusion, the VinBigData challenge's standard), ``nms`` (ensemble-boxes' NMS: a kept reader box stands for its
  cluster), or ``majority-box`` (cxrlab's rule: boxes of different readers are linked when their IoU >=
  ``iou``; each connected group gives, per reader, the box enclosing that reader's boxes in the group, then
  the coordinate-wise median over readers). Readers enter ensemble-boxes in sorted reader order with score 1,
  so the result is deterministic. Coordinates are normalised to [0, 1] by the image size; where the size is
  unknown (label files without DICOMs) by the largest coordinate of the image's boxes: IoU and averages do not
  change under that scaling, so the fused boxes are the same.
- **Support**: ``n_readers`` counts the distinct readers behind each fused box. ensemble-boxes does not return
  its clusters, so each reader box is assigned to the fused box of the same label it overlaps most (IoU); for
  ``majority-box`` the groups are exact. A fused box with fewer than the quorum is dropped unless
  ``keep_minority``; a positive label left without a box stays as an image-level row (NaN box).
- **No finding**: an image with no fused box and no positive label gets ``No finding``.
- ``score`` of a consensus row is ``n_readers`` divided by the image's number of readers. Fused coordinates
  are rounded to 0.001 px (ensemble-boxes computes in float32).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from cxrlab.boxes import box_iou
from cxrlab.params import check_choice, check_count, check_iou
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, FINDING_COLUMNS, conform_findings, has_box
from cxrlab.taxonomy import NO_FINDING

METHODS = ("wbf", "nms", "majority-box")


@dataclass
class ConsensusResult:
    findings: pd.DataFrame
    """The input findings with the ``consensus`` rows replaced; ``n_readers`` is set on consensus rows."""
    stats: dict[str, object] = field(default_factory=dict)


def support(
    fused: np.ndarray, fused_labels: np.ndarray, boxes: np.ndarray, labels: np.ndarray, readers: np.ndarray
) -> np.ndarray:
    """Distinct readers behind each fused box: each input box counts for the same-label fused box it
    overlaps most (ties to the first). Shapes: (F, 4), (F,), (N, 4), (N,), (N,) -> (F,) int."""
    n = np.zeros(len(fused), dtype=np.int64)
    if len(fused) == 0 or len(boxes) == 0:
        return n
    iou = box_iou(boxes, fused)
    iou[labels[:, None] != fused_labels[None, :]] = -1.0
    owner = np.argmax(iou, axis=1)
    ok = iou[np.arange(len(boxes)), owner] > 0
    span = int(readers.max()) + 1
    keys = np.unique(owner[ok] * span + readers[ok])  # distinct (fused box, reader) pairs
    return np.bincount(keys // span, minlength=len(fused)).astype(np.int64)


def majority_boxes(
    boxes: np.ndarray, labels: np.ndarray, readers: np.ndarray, iou_thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cxrlab's ``majority-box`` rule on one image: link boxes of different readers at IoU >= ``iou_thr``;
    each connected group -> per reader the enclosing box of its members, then the median over readers.

    Returns (fused (F, 4), labels (F,), n_readers (F,)).
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    out_boxes, out_labels, out_n = [], [], []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        b, r = boxes[idx], readers[idx]
        link = (box_iou(b, b) >= iou_thr) & (r[:, None] != r[None, :])
        _, comp = connected_components(csr_matrix(link), directed=False)
        for c in np.unique(comp):
            members = comp == c
            per_reader = []
            for reader in np.unique(r[members]):
                own = b[members & (r == reader)]
                per_reader.append([own[:, 0].min(), own[:, 1].min(), own[:, 2].max(), own[:, 3].max()])
            out_boxes.append(np.median(np.asarray(per_reader), axis=0))
            out_labels.append(label)
            out_n.append(len(per_reader))
    return (
        np.asarray(out_boxes, dtype=float).reshape(-1, 4),
        np.asarray(out_labels, dtype=np.int64),
        np.asarray(out_n, dtype=np.int64),
    )


def fuse_image(
    boxes: np.ndarray, labels: np.ndarray, readers: np.ndarray, *, method: str, iou_thr: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fuse the boxes of one image (coordinates in [0, 1]); readers and labels are integer codes.

    Returns (fused (F, 4), labels (F,), n_readers (F,)).
    """
    if method == "majority-box":
        return majority_boxes(boxes, labels, readers, iou_thr)
    from ensemble_boxes import nms, weighted_boxes_fusion

    order = np.unique(readers)
    boxes_list = [boxes[readers == r] for r in order]
    labels_list = [labels[readers == r] for r in order]
    scores_list = [np.ones(len(x)) for x in labels_list]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "wbf":
            fused, _, fused_labels = weighted_boxes_fusion(
                boxes_list, scores_list, labels_list, iou_thr=iou_thr, skip_box_thr=0.0
            )
        else:
            fused, _, fused_labels = nms(boxes_list, scores_list, labels_list, iou_thr=iou_thr)
    fused = np.asarray(fused, dtype=float).reshape(-1, 4)
    fused_labels = np.asarray(fused_labels).astype(np.int64)
    return fused, fused_labels, support(fused, fused_labels, boxes, labels, readers)


def consensus(
    images: pd.DataFrame,
    findings: pd.DataFrame,
    *,
    method: str = "wbf",
    iou: float = 0.4,
    min_readers: int = 2,
    keep_minority: bool = False,
) -> ConsensusResult:
    """Replace the ``consensus`` reader of every image that has human readers (module docstring)."""
    check_choice(method, METHODS, "method")
    check_iou(iou)
    check_count(min_readers, "min_readers", minimum=1)
    findings = conform_findings(findings)
    is_cons = (findings["reader"] == CONSENSUS).to_numpy()
    human = findings[~is_cons]
    fused_ids = pd.Index(human["image_id"].unique())
    kept_cons = findings[is_cons & ~findings["image_id"].isin(fused_ids).to_numpy()]
    n_img = human.groupby("image_id", sort=False)["reader"].nunique()  # readers per image
    quorum = np.minimum(n_img, min_readers)
    votes = _label_votes(human, n_img, quorum)
    fused, stats = _fuse_boxes(images, human, method=method, iou=iou)
    fused["n_img"] = fused["image_id"].map(n_img).to_numpy()
    fused["quorum"] = fused["image_id"].map(quorum).to_numpy()
    minority = fused["n_readers"] < fused["quorum"]
    stats["fused_boxes"] = len(fused)
    stats["minority_boxes_dropped"] = 0 if keep_minority else int(minority.sum())
    if not keep_minority:
        fused = fused[~minority]
    level_rows = _image_level_rows(votes, fused)
    box_rows = fused[["image_id", "label", *BOX_COLUMNS, "n_readers", "n_img"]]
    rows = pd.concat([box_rows, level_rows], ignore_index=True)
    nf_rows = _no_finding_rows(fused_ids, rows, votes, n_img)
    new = _as_consensus(pd.concat([rows, nf_rows], ignore_index=True))
    if "n_readers" not in kept_cons.columns:  # earlier support counts of kept consensus rows stay
        kept_cons = kept_cons.assign(n_readers=pd.NA)
    out = pd.concat([human.assign(n_readers=pd.NA), kept_cons], ignore_index=True)
    out["n_readers"] = out["n_readers"].astype("Int64")
    out = pd.concat([out, new], ignore_index=True)
    out = (
        conform_findings(out)
        .sort_values(["image_id", "reader", "label", *BOX_COLUMNS], na_position="last", kind="stable")
        .reset_index(drop=True)
    )
    stats.update(
        method=method,
        iou=iou,
        min_readers=min_readers,
        images_fused=len(fused_ids),
        images_kept=int(kept_cons["image_id"].nunique()),
        consensus_boxes=len(fused),
        consensus_image_labels=len(level_rows),
        no_finding_images=len(nf_rows),
    )
    return ConsensusResult(out, stats)


def _label_votes(human: pd.DataFrame, n_img: pd.Series, quorum: pd.Series) -> pd.DataFrame:
    """Per (image, label): how many readers reported it, the image's readers and quorum."""
    votes = (
        human[["image_id", "reader", "label"]]
        .drop_duplicates()
        .groupby(["image_id", "label"], sort=False)
        .size()
        .rename("votes")
        .reset_index()
    )
    votes["n_img"] = votes["image_id"].map(n_img).to_numpy()
    votes["quorum"] = votes["image_id"].map(quorum).to_numpy()
    return votes


def _image_level_rows(votes: pd.DataFrame, fused: pd.DataFrame) -> pd.DataFrame:
    """Labels voted positive by the quorum that kept no fused box: image-level rows."""
    positive = votes[(votes["label"] != NO_FINDING) & (votes["votes"] >= votes["quorum"])]
    boxed = fused[["image_id", "label"]].drop_duplicates()
    level = positive.merge(boxed, on=["image_id", "label"], how="left", indicator=True)
    level = level[level["_merge"] == "left_only"]
    return pd.DataFrame(
        {
            "image_id": level["image_id"].to_numpy(),
            "label": level["label"].to_numpy(),
            **{c: np.nan for c in BOX_COLUMNS},
            "n_readers": level["votes"].to_numpy(),
            "n_img": level["n_img"].to_numpy(),
        }
    )


def _no_finding_rows(
    fused_ids: pd.Index, rows: pd.DataFrame, votes: pd.DataFrame, n_img: pd.Series
) -> pd.DataFrame:
    """``No finding`` for the fused images where nothing is left, with the readers who said so."""
    empty_ids = fused_ids.difference(pd.Index(rows["image_id"].unique()))
    nf_votes = votes[votes["label"] == NO_FINDING].set_index("image_id")["votes"]
    return pd.DataFrame(
        {
            "image_id": np.asarray(empty_ids, dtype=object),
            "label": NO_FINDING,
            **{c: np.nan for c in BOX_COLUMNS},
            "n_readers": nf_votes.reindex(empty_ids).fillna(0).to_numpy(dtype=np.int64),
            "n_img": n_img.reindex(empty_ids).to_numpy(),
        }
    )


def _as_consensus(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of the ``consensus`` reader, scored by the share of the image's readers behind each."""
    rows["reader"] = CONSENSUS
    rows["score"] = rows["n_readers"].to_numpy(dtype=float) / rows["n_img"].to_numpy(dtype=float)
    rows["n_readers"] = rows["n_readers"].astype("Int64")
    return rows[[*FINDING_COLUMNS, "n_readers"]]


def _fuse_boxes(
    images: pd.DataFrame, human: pd.DataFrame, *, method: str, iou: float
) -> tuple[pd.DataFrame, dict[str, object]]:
    """All images at once: numpy arrays prepared once, sorted by image, one ensemble-boxes call per image."""
    has = has_box(human)
    bx = human[has]
    if bx.empty:
        empty = {"image_id": pd.Series(dtype=object), "label": pd.Series(dtype=object)}
        empty.update({c: pd.Series(dtype=float) for c in BOX_COLUMNS})
        empty["n_readers"] = pd.Series(dtype=np.int64)
        return pd.DataFrame(empty), {
            "input_boxes": 0,
            "images_scaled_by_max_coordinate": 0,
        }
    img_codes, img_names = pd.factorize(bx["image_id"], sort=True)
    lab_codes, lab_names = pd.factorize(bx["label"], sort=True)
    rd_codes, _ = pd.factorize(bx["reader"], sort=True)
    xy = bx[BOX_COLUMNS].to_numpy(dtype=float)
    order = np.lexsort((rd_codes, lab_codes, img_codes))
    img_codes, lab_codes, rd_codes, xy = img_codes[order], lab_codes[order], rd_codes[order], xy[order]
    starts = np.flatnonzero(np.r_[True, img_codes[1:] != img_codes[:-1]])
    ends = np.r_[starts[1:], len(img_codes)]

    # Per-image scale: the image size, or the largest coordinate where the size is unknown.
    size = images.set_index("image_id")[["width", "height"]].reindex(img_names)
    w = size["width"].to_numpy(dtype=float, na_value=np.nan)
    h = size["height"].to_numpy(dtype=float, na_value=np.nan)
    max_x = np.maximum.reduceat(xy[:, 2], starts)
    max_y = np.maximum.reduceat(xy[:, 3], starts)
    unknown = np.isnan(w) | np.isnan(h) | (w < max_x) | (h < max_y)
    w = np.where(unknown, np.maximum(max_x, 1e-9), w)
    h = np.where(unknown, np.maximum(max_y, 1e-9), h)
    scale = np.stack([w, h, w, h], axis=1)

    out_img, out_lab, out_xy, out_n = [], [], [], []
    for g, (s, e) in enumerate(zip(starts, ends, strict=True)):
        boxes = xy[s:e] / scale[g]
        fused, labels, n = fuse_image(boxes, lab_codes[s:e], rd_codes[s:e], method=method, iou_thr=iou)
        out_img.append(np.full(len(fused), g))
        out_lab.append(labels)
        out_xy.append(np.round(fused * scale[g], 3))  # ensemble-boxes computes in float32: 0.001 px
        out_n.append(n)
    gi = np.concatenate(out_img).astype(np.int64)
    coords = np.concatenate(out_xy).reshape(-1, 4)
    fused = pd.DataFrame(
        {
            "image_id": np.asarray(img_names)[gi],
            "label": np.asarray(lab_names)[np.concatenate(out_lab)],
            **{c: coords[:, i] for i, c in enumerate(BOX_COLUMNS)},
            "n_readers": np.concatenate(out_n),
        }
    )
    return fused, {"input_boxes": len(bx), "images_scaled_by_max_coordinate": int(unknown.sum())}
