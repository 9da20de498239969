"""Scoring predictions against the tables: pick the truth, read and check the predictions, run one metric.

The truth is a tables folder (:func:`cxrlab.tables.load_tables`). Its readers decide what "truth" means:
the ``consensus`` reader when present (VinDr's test labels, or a consensus step's output), the single reader
when there is one, otherwise the reader the user names. Predictions are a findings table (Parquet file,
tables folder or CSV with the findings columns) or a VinBigData challenge submission CSV.

Metrics:

- ``map40``: the challenge's mAP at IoU > 0.4 over its 15 classes. VinDr labels map to the classes through
  :data:`cxrlab.taxonomy.VINDR_CHALLENGE`; other labels are dropped (and counted); an image whose truth has no
  box becomes class 14 (``No finding``) with the box ``0 0 1 1``, as the challenge scored it.
- ``auroc``: per label, image-level presence in the truth (any truth row of the label) against the highest
  predicted score of the label on the image (0 when none); labels without positives are undefined.
- ``iobb``: ChestX-ray8's localization accuracy T(IoBB) at 0.1 ... 0.7 for the labels with truth boxes.
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.metrics.classification import UndefinedMetricWarning, classification_metrics
from cxrlab.metrics.detection import CHESTXRAY8_THRESHOLDS, average_precision, localization_accuracy
from cxrlab.metrics.submission import (
    HEADER,
    NORMAL_BOX,
    check_predictions,
    raise_problems,
    read_prediction_table,
    read_submission,
)
from cxrlab.params import check_choice, check_count, check_iou, check_probability
from cxrlab.problems import Problem
from cxrlab.tables import BOX_COLUMNS, Tables, has_box, images_of_split, load_tables, select_readers
from cxrlab.taxonomy import CHALLENGE_NO_FINDING_ID, NO_FINDING, VINDR_CHALLENGE

Metric = Literal["map40", "auroc", "iobb"]
METRICS: tuple[str, ...] = ("map40", "auroc", "iobb")


@dataclass
class Truth:
    """The images scored and the truth rows on them."""

    images: pd.DataFrame
    findings: pd.DataFrame
    reader: str
    """The reader whose rows are the truth, or ``any reader``."""
    notes: list[str] = field(default_factory=list)


def select_truth(
    tables: Tables,
    *,
    reader: str | None = None,
    split: str | None = None,
    any_reader: bool = False,
) -> Truth:
    """Choose the truth rows: ``reader`` if given, else ``consensus`` when present, else the only reader;
    with ``any_reader`` (image-level labels) every reader's rows count when ``reader`` is not given.

    The images scored are those (of ``split`` if given) with at least one truth row.
    """
    images = images_of_split(tables.images, split, where="the truth tables")
    findings = tables.findings[tables.findings["image_id"].isin(images["image_id"])]
    findings, chosen = select_readers(
        findings,
        reader,
        default="all" if any_reader else "consensus-or-only",
        where="the truth tables",
        parameter="truth_reader",
    )
    scored = images[images["image_id"].isin(findings["image_id"])]
    notes = []
    if len(scored) < len(images):
        notes.append(f"{len(images) - len(scored)} image(s) have no truth row by {chosen}: not scored")
    if scored.empty:
        raise CxrlabError(f"no image has truth rows by {chosen}")
    return Truth(scored.reset_index(drop=True), findings.reset_index(drop=True), chosen, notes)


@dataclass
class Predictions:
    findings: pd.DataFrame
    """image_id, reader, label, the box columns (NaN: image-level), score."""
    source: Literal["submission", "findings"]
    notes: list[str] = field(default_factory=list)
    path: str = "the predictions"


def is_submission(path: str | Path) -> bool:
    """Whether ``path`` is a CSV whose header is the challenge's ``image_id,PredictionString``."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() != ".csv":
        return False
    with path.open("rb") as fh:
        first = fh.readline(4096).decode("utf-8-sig", errors="replace")
    try:
        header = next(csv.reader([first]), [])
    except csv.Error:  # not CSV at all: read as a findings table, which says what is wrong with it
        return False
    return tuple(c.strip() for c in header[:2]) == HEADER


def load_predictions(
    path: str | Path,
    *,
    truth: Truth,
    all_images: pd.DataFrame,
    pred_reader: str | None = None,
    allow_missing: bool = False,
) -> Predictions:
    """Read and check predictions; every problem is listed in one :class:`SubmissionError` (exit 1).

    Unknown image ids are those absent from ``all_images`` (the truth's images table); missing images
    are truth images without any prediction (allowed with ``allow_missing``: then they have none).
    """
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"{path}: no such prediction file")
    expected = None if allow_missing else list(truth.images["image_id"].astype(str))
    notes: list[str] = []
    if is_submission(path):
        preds, problems = read_submission(path, images=all_images, expected=expected)
        raise_problems(path, problems)
        findings = preds.drop(columns="class_id").assign(reader="submission")
        source: Literal["submission", "findings"] = "submission"
    else:
        findings, _ = select_readers(
            read_prediction_table(path), pred_reader, default="only", where=str(path), parameter="pred_reader"
        )
        findings = findings.reset_index(drop=True)
        raise_problems(path, _table_problems(findings, str(path), all_images, expected))
        source = "findings"
    inside = findings["image_id"].isin(truth.images["image_id"])
    if not inside.all():
        n_out = int((~inside).sum())
        notes.append(
            f"{n_out} prediction(s) on images outside the scored set (other split or no truth): ignored"
        )
    findings = findings[inside].reset_index(drop=True)
    return Predictions(findings, source, notes, str(path))


@dataclass
class MetricScore:
    """A metric's per-class table, its mean and what the user should know about the inputs."""

    metric: str
    table: pd.DataFrame
    mean: float
    mean_name: str
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        rows = self.table.astype(object).where(self.table.notna(), None).to_dict(orient="records")
        mean = None if not np.isfinite(self.mean) else self.mean
        return {
            "metric": self.metric,
            self.mean_name: mean,
            "classes": rows,
            "notes": self.notes,
            **self.extra,
        }


def _table_problems(
    findings: pd.DataFrame, file: str, all_images: pd.DataFrame, expected: list[str] | None
) -> list[Problem]:
    """The problems of a predictions table, one per row, in row order; then the images with no row."""
    where = [f"row {i + 1}" for i in range(len(findings))]
    problems = check_predictions(findings, file=file, where=where, images=all_images)
    dup_cols = ["image_id", "label", *BOX_COLUMNS, "score"]
    dup = findings.duplicated(subset=dup_cols, keep="first").to_numpy()
    first = findings.reset_index().groupby(dup_cols, dropna=False)["index"].transform("min").to_numpy()
    ids = findings["image_id"].astype(str)
    problems += [
        Problem.at(file, where[i], "duplicate-row", f"duplicate of row {first[i] + 1}", ids.iat[i])
        for i in np.flatnonzero(dup)
    ]
    no_label = findings["label"].isna().to_numpy()
    problems += [
        Problem.at(file, where[i], "no-label", "no label", ids.iat[i]) for i in np.flatnonzero(no_label)
    ]
    problems.sort(key=lambda p: int(p.where.split()[1]))
    if expected is not None:
        have = set(ids)
        missing = "missing image (no prediction, not even 'No finding')"
        problems += [
            Problem.at(file, "no row for", "missing-image", missing, i) for i in expected if i not in have
        ]
    return problems


def _challenge_class(labels: pd.Series) -> pd.Series:
    return labels.astype(str).map(VINDR_CHALLENGE.match).map(VINDR_CHALLENGE.class_ids)


def challenge_truth(truth: Truth) -> tuple[pd.DataFrame, list[str]]:
    """Truth boxes as challenge classes; an image without a box gets class 14 with ``0 0 1 1``."""
    f = truth.findings
    cls = _challenge_class(f["label"])
    boxed = has_box(f)
    notes = []
    outside = cls.isna()
    if outside.any():
        counts = f.loc[outside, "label"].value_counts()
        listed = ", ".join(f"{k} {v}" for k, v in counts.items())
        notes.append(f"{int(outside.sum())} truth row(s) of labels outside the 15 classes dropped ({listed})")
    boxless = ~outside & ~boxed & (cls != CHALLENGE_NO_FINDING_ID)
    if boxless.any():
        notes.append(f"{int(boxless.sum())} truth row(s) of box classes without a box dropped")
    boxes = f[~outside & boxed & (cls != CHALLENGE_NO_FINDING_ID)]
    rows = pd.DataFrame({"image_id": boxes["image_id"].astype(str), "label": cls[boxes.index].astype(int)})
    rows[BOX_COLUMNS] = boxes[BOX_COLUMNS].to_numpy(dtype=float)
    normal_ids = sorted(set(truth.images["image_id"].astype(str)) - set(rows["image_id"]))
    normal = pd.DataFrame({"image_id": normal_ids, "label": CHALLENGE_NO_FINDING_ID})
    normal[BOX_COLUMNS] = np.tile(NORMAL_BOX, (len(normal), 1)) if len(normal) else np.zeros((0, 4))
    return pd.concat([rows, normal], ignore_index=True), notes


def challenge_predictions(preds: Predictions) -> tuple[pd.DataFrame, list[str]]:
    """Predictions as challenge classes; ``No finding`` without a box gets ``0 0 1 1``."""
    f = preds.findings
    cls = _challenge_class(f["label"])
    box = f[BOX_COLUMNS].to_numpy(dtype=float, copy=True)
    no_box = np.isnan(box).any(axis=1)
    normal = (cls == CHALLENGE_NO_FINDING_ID).to_numpy()
    box[normal & no_box] = NORMAL_BOX
    outside = cls.isna().to_numpy()
    keep = ~outside & (normal | ~no_box)
    notes = []
    if outside.any():
        notes.append(f"{int(outside.sum())} prediction(s) of labels outside the 15 classes dropped")
    if (~outside & ~normal & no_box).any():
        notes.append(
            f"{int((~outside & ~normal & no_box).sum())} prediction(s) of box classes without a box dropped"
        )
    out = pd.DataFrame({"image_id": f["image_id"].astype(str).to_numpy()[keep],
                        "label": cls.to_numpy()[keep].astype(int),
                        "score": f["score"].to_numpy(dtype=float)[keep]})  # fmt: skip
    out[BOX_COLUMNS] = box[keep]
    return out, notes


def score_map(truth: Truth, preds: Predictions, *, iou_threshold: float = 0.4) -> MetricScore:
    """The challenge's mAP: VOC AP per class at IoU > ``iou_threshold``, mean over classes with truth."""
    t, t_notes = challenge_truth(truth)
    p, p_notes = challenge_predictions(preds)
    result = average_precision(
        t, p, iou_threshold=iou_threshold, classes=list(range(CHALLENGE_NO_FINDING_ID + 1))
    )
    table = result.table.rename(columns={"label": "class_id"})
    table.insert(1, "label", [VINDR_CHALLENGE.labels[c] for c in table["class_id"]])
    notes = [*truth.notes, *preds.notes, *t_notes, *p_notes]
    undefined = table.loc[table["n_truth"] == 0, "label"].tolist()
    if undefined:
        notes.append(f"no truth for {', '.join(undefined)}: AP undefined (n/a), left out of the mean")
    return MetricScore(f"map@{iou_threshold:g}", table, result.mean, "mAP", notes,
                 {"iou_threshold": iou_threshold, "images": len(truth.images)})  # fmt: skip


def image_level(
    truth: Truth, preds: Predictions, *, allow_missing: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(N, L) presence and max score per truth image and predicted label; labels; notes.

    Image-level predictions (rows without a box) must give each (image, label) exactly one score: a missing
    one scored 0 would count as a confident negative (AUROC 0.875 became 0.375). With ``allow_missing`` a
    missing pair scores 0 and duplicates their maximum, and a note says how many. Box predictions (a
    detector's) give each label the best box's score, and no box means 0, as detectors are scored.
    """
    ids = truth.images["image_id"].astype(str).tolist()
    labels = sorted(set(preds.findings["label"].dropna().astype(str)) - {NO_FINDING})
    if not labels:
        raise CxrlabError("the predictions name no label other than 'No finding': nothing to score for AUROC")
    row = {i: k for k, i in enumerate(ids)}
    col = {label: j for j, label in enumerate(labels)}
    y = np.zeros((len(ids), len(labels)))
    s = np.zeros((len(ids), len(labels)))
    tf = truth.findings
    tl = tf["label"].astype(str)
    sel = tl.isin(col).to_numpy()
    y[tf["image_id"].astype(str)[sel].map(row).to_numpy(), tl[sel].map(col).to_numpy()] = 1
    pf = preds.findings[preds.findings["label"].astype(str).isin(col)]
    notes = _check_pairs(pf, len(ids), len(labels), preds.path, allow_missing)
    best = pf.groupby([pf["image_id"].astype(str), pf["label"].astype(str)])["score"].max()
    r = best.index.get_level_values(0).map(row).to_numpy()
    c = best.index.get_level_values(1).map(col).to_numpy()
    s[r, c] = best.to_numpy()
    unpredicted = sorted(set(tl) - set(labels) - {NO_FINDING})
    if unpredicted:
        notes.append(f"truth labels without predictions, not scored: {', '.join(unpredicted)}")
    return y, s, labels, notes


def _check_pairs(pf: pd.DataFrame, n_images: int, n_labels: int, path: str, allow_missing: bool) -> list[str]:
    """Missing and duplicate (image, label) scores of image-level predictions: an error, or notes."""
    level = pf[pf[BOX_COLUMNS].isna().all(axis=1)]
    if level.empty:
        return [] if pf.empty else ["box predictions: a label without a box on an image scores 0 there"]
    counts = level.groupby([level["image_id"].astype(str), level["label"].astype(str)]).size()
    missing = n_images * n_labels - len(counts)
    duplicated = counts[counts > 1]
    if not missing and duplicated.empty:
        return []
    problems = []
    if missing:
        problems.append(f"{missing} (image, label) pair(s) have no score")
    if len(duplicated):
        (image_id, label), times = next(iter(duplicated.items())), int(duplicated.iloc[0])
        problems.append(f"{len(duplicated)} have several (e.g. image {image_id}, {label}: {times} rows)")
    if not allow_missing:
        raise ParameterError(
            "allow_missing",
            f"is off and in {path} {'; '.join(problems)}: each image needs one score per label "
            "(allowing them scores a missing pair 0 and several by their maximum)",
            exit_code=1,
        )
    treated = ["missing ones scored 0"] * bool(missing) + ["several scores taken at their maximum"] * bool(
        len(duplicated)
    )
    return [f"{'; '.join(problems)}: {', '.join(treated)}"]


def score_auroc(
    truth: Truth,
    preds: Predictions,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
    allow_missing: bool = False,
) -> MetricScore:
    """Per-label AUROC with bootstrap CIs (by patient where the images table has patient ids)."""
    y, s, labels, notes = image_level(truth, preds, allow_missing=allow_missing)
    pid = truth.images["patient_id"]
    patients = pid.to_numpy(dtype=object) if pid.notna().any() else None
    with warnings.catch_warnings():  # the undefined labels become a note below
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = classification_metrics(y, s, labels=labels, patient_ids=patients, n_boot=n_boot, seed=seed,
                                        threshold=threshold)  # fmt: skip
    undefined = result.table.loc[result.table["positives"] == 0, "label"].tolist()
    if undefined:
        notes.append(f"no positive image for {', '.join(undefined)}: AUROC undefined (n/a), not 0.5")
    macro = result.summary.set_index("label")
    extra = {
        "images": len(y),
        "bootstrap": {"resamples": n_boot, "ci": result.ci, "by": result.resampled_by, "seed": seed},
        "threshold": threshold,
        "summary": result.summary.astype(object)
        .where(result.summary.notna(), None)
        .to_dict(orient="records"),
    }
    return MetricScore("auroc", result.table, float(macro.loc["macro", "auroc"]), "macro AUROC",
                 [*truth.notes, *preds.notes, *notes], extra)  # fmt: skip


def score_iobb(
    truth: Truth, preds: Predictions, *, thresholds: Sequence[float] = CHESTXRAY8_THRESHOLDS,
    overlap: Literal["iou", "iobb"] = "iobb",
) -> MetricScore:  # fmt: skip
    """ChestX-ray8's localization accuracy per label with truth boxes, one column per threshold."""
    tf = truth.findings[has_box(truth.findings)]
    pf = preds.findings[has_box(preds.findings)]
    if tf.empty:
        raise CxrlabError("the truth has no box: nothing to localize")
    classes = sorted(tf["label"].astype(str).unique())
    t = pd.DataFrame({"image_id": tf["image_id"].astype(str), "label": tf["label"].astype(str)})
    t[BOX_COLUMNS] = tf[BOX_COLUMNS].to_numpy(dtype=float)
    p = pd.DataFrame({"image_id": pf["image_id"].astype(str), "label": pf["label"].astype(str),
                      "score": pf["score"].to_numpy(dtype=float)})  # fmt: skip
    p[BOX_COLUMNS] = pf[BOX_COLUMNS].to_numpy(dtype=float)
    long = localization_accuracy(t, p, overlap=overlap, thresholds=thresholds, classes=classes)
    wide = long.pivot(index="label", columns="threshold", values="accuracy")
    wide.columns = [f"T={thr:g}" for thr in wide.columns]
    n_truth = long.groupby("label")["n_truth"].first()
    table = wide.reset_index()
    table.insert(1, "n_truth", n_truth.loc[table["label"]].to_numpy())
    means = {c: float(np.nanmean(table[c])) for c in wide.columns}
    notes = [*truth.notes, *preds.notes]
    dropped = len(preds.findings) - len(pf)
    if dropped:
        notes.append(f"{dropped} prediction(s) without a box ignored")
    afp = long.pivot(index="label", columns="threshold", values="afp")
    extra = {"overlap": overlap, "mean_by_threshold": means,
             "afp": {f"T={k:g}": v for k, v in afp.mean(axis=0).items()}}  # fmt: skip
    mean_at = min(thresholds, key=lambda x: abs(x - 0.5))
    name = f"mean accuracy at T={mean_at:g}"
    return MetricScore(f"T({overlap.upper()})", table, means[f"T={mean_at:g}"], name, notes, extra)


def score(
    truth_path: str | Path,
    pred_path: str | Path,
    *,
    metric: str = "map40",
    truth_reader: str | None = None,
    pred_reader: str | None = None,
    split: str | None = None,
    allow_missing: bool = False,
    iou_threshold: float = 0.4,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float = 0.5,
) -> MetricScore:
    """Load the truth tables and the predictions, check them, and compute ``metric``."""
    check_choice(metric, METRICS, "metric")
    check_iou(iou_threshold, "iou_threshold")  # usage before data: checked again where they are used
    check_count(n_boot, "n_boot")
    check_probability(threshold, "threshold")
    tables = load_tables(truth_path)
    truth = select_truth(tables, reader=truth_reader, split=split, any_reader=metric == "auroc")
    preds = load_predictions(pred_path, truth=truth, all_images=tables.images, pred_reader=pred_reader,
                             allow_missing=allow_missing)  # fmt: skip
    if metric == "map40":
        return score_map(truth, preds, iou_threshold=iou_threshold)
    if metric == "auroc":
        return score_auroc(
            truth, preds, n_boot=n_boot, seed=seed, threshold=threshold, allow_missing=allow_missing
        )
    return score_iobb(truth, preds)


def simulate_predictions(
    truth: Truth,
    *,
    seed: int = 0,
    drop: float = 0.25,
    jitter: float = 0.15,
    false_boxes: float = 1.0,
    reader: str = "simulated-model",
) -> pd.DataFrame:
    """A deliberately imperfect prediction of ``truth`` as a findings table (for demos and tests).

    Each challenge-class truth box is dropped with probability ``drop``, else kept with each side moved by
    up to ``jitter`` of the box's size and a confidence in [0.3, 1); a Poisson(``false_boxes``) number of
    random false boxes per image get confidences in [0, 0.7); every image gets a ``No finding`` score (high
    where the truth is normal) and an image-level score (no box) for each of the 14 box classes, noisy but
    higher where the truth has the class. Seeded: the same seed gives the same table.
    """
    rng = np.random.default_rng(seed)
    boxes, _ = challenge_truth(truth)
    real = boxes[boxes["label"] != CHALLENGE_NO_FINDING_ID]
    kept = real[rng.random(len(real)) >= drop]
    b = kept[BOX_COLUMNS].to_numpy(dtype=float, copy=True)
    size = np.hstack([b[:, 2:] - b[:, :2], b[:, 2:] - b[:, :2]]) if len(b) else np.zeros((0, 4))
    b = b + rng.uniform(-jitter, jitter, b.shape) * size
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2] + 1)
    rows = [pd.DataFrame({"image_id": kept["image_id"].to_numpy(), "label": kept["label"].to_numpy(),
                          "score": rng.uniform(0.3, 1.0, len(kept))})]  # fmt: skip
    rows[0][BOX_COLUMNS] = b
    images = truth.images
    w = images["width"].astype("Float64").fillna(1024).to_numpy(dtype=float)
    h = images["height"].astype("Float64").fillna(1024).to_numpy(dtype=float)
    n_false = rng.poisson(false_boxes, len(images))
    owner = np.repeat(np.arange(len(images)), n_false)
    x0 = rng.uniform(0, 0.8, len(owner)) * w[owner]
    y0 = rng.uniform(0, 0.8, len(owner)) * h[owner]
    x1 = np.minimum(x0 + rng.uniform(0.05, 0.2, len(owner)) * w[owner], w[owner])
    y1 = np.minimum(y0 + rng.uniform(0.05, 0.2, len(owner)) * h[owner], h[owner])
    false = pd.DataFrame({"image_id": images["image_id"].astype(str).to_numpy()[owner],
                          "label": rng.integers(0, CHALLENGE_NO_FINDING_ID, len(owner)),
                          "score": rng.uniform(0.0, 0.7, len(owner)),
                          "x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1})  # fmt: skip
    normal_ids = set(boxes.loc[boxes["label"] == CHALLENGE_NO_FINDING_ID, "image_id"])
    is_normal = images["image_id"].astype(str).isin(normal_ids).to_numpy()
    normal = pd.DataFrame({"image_id": images["image_id"].astype(str).to_numpy(),
                           "label": CHALLENGE_NO_FINDING_ID,
                           "score": np.where(is_normal, rng.uniform(0.4, 1.0, len(images)),
                                             rng.uniform(0.0, 0.6, len(images)))})  # fmt: skip
    normal[BOX_COLUMNS] = np.nan
    # Image-level scores of every box class, higher where the truth has the class (for AUROC).
    n_cls = CHALLENGE_NO_FINDING_ID
    present = np.zeros((len(images), n_cls), dtype=bool)
    row_of = {image_id: k for k, image_id in enumerate(images["image_id"].astype(str))}
    present[real["image_id"].map(row_of).to_numpy(), real["label"].to_numpy(dtype=int)] = True
    level = np.clip(
        rng.uniform(0.0, 0.55, present.shape) + present * rng.uniform(0.0, 0.6, present.shape), 0, 1
    )
    image_level = pd.DataFrame(
        {
            "image_id": np.repeat(images["image_id"].astype(str).to_numpy(), n_cls),
            "label": np.tile(np.arange(n_cls), len(images)),
            "score": level.ravel(),
        }
    )
    image_level[BOX_COLUMNS] = np.nan
    out = pd.concat([*rows, false, normal, image_level], ignore_index=True)
    out["label"] = [VINDR_CHALLENGE.labels[int(c)] for c in out["label"]]
    out["reader"] = reader
    return out[["image_id", "reader", "label", *BOX_COLUMNS, "score"]]
