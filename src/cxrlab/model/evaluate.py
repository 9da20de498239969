"""Evaluation: predict a split of the tables with a run, then score it with :mod:`cxrlab.metrics.scoring`.

- AUROC with 95% CIs per label (image-level: a label is present when any truth reader marked it), from the
  classifier's probabilities;
- mAP@0.4, the VinBigData challenge's metric (``No finding`` included, as the challenge scored it), from the
  rows a submission would hold (for the VinDr and challenge label sets);
- T(IoBB), ChestX-ray8's localization accuracy, from the CAM boxes (where the truth has boxes).

The scores go to ``OUT/scores.json`` and the test metrics into the run's model card.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.atomic import write_text_atomic
from cxrlab.errors import UsageError
from cxrlab.metrics.scoring import MetricScore, Predictions, score_auroc, score_iobb, score_map, select_truth
from cxrlab.metrics.submission import make_submission, write_submission
from cxrlab.model.card import add_test_metrics
from cxrlab.model.predict import SUBMISSION_OUT, CamSettings, PredictResult, predict, submission_rows
from cxrlab.model.train import read_run_config
from cxrlab.tables import load_tables

__all__ = ["Evaluation", "evaluate", "local_macro"]

SCORES_OUT = "scores.json"
NO_IMAGE_EVIDENCE = ("Other diseases", "Other disease")
"""Labels the phantom draws at random, without any trace in the image: left out of the local macro."""


@dataclass
class Evaluation:
    prediction: PredictResult
    scores: dict[str, MetricScore]
    notes: list[str] = field(default_factory=list)


def local_macro(auroc: MetricScore, labels: list[str], min_positives: int = 20) -> tuple[float, list[str]]:
    """Mean AUROC over ``labels`` with at least ``min_positives`` positive test images."""
    t = auroc.table
    chosen = t[t["label"].isin(labels) & (t["positives"] >= min_positives) & t["auroc"].notna()]
    return (float(chosen["auroc"].mean()) if len(chosen) else float("nan")), chosen["label"].tolist()


def evaluate(
    run: str | Path,
    tables: str | Path,
    images: str | Path,
    out: str | Path,
    *,
    split: str | None = "test",
    checkpoint: str = "best",
    n_boot: int = 1000,
    seed: int = 0,
    cam_threshold: float = 0.5,
    cam_core: float = CamSettings.core,
    cam_method: str = CamSettings.method,
    batch_size: int = 16,
    progress: bool = False,
) -> Evaluation:
    """Predict the ``split`` images of ``tables`` from ``images`` (converted) and score them."""
    config = read_run_config(run)
    t = load_tables(tables)
    images_table = t.images if split is None else t.images[t.images["split"] == split]
    if images_table.empty:
        found = ", ".join(sorted(t.images["split"].dropna().astype(str).unique()))
        raise UsageError(f"{tables}: no image of split '{split}' (splits: {found or 'none'})")
    ids = images_table["image_id"].astype(str).tolist()
    pred = predict(
        run,
        images,
        out,
        image_ids=ids,
        checkpoint=checkpoint,
        cam_threshold=cam_threshold,
        cam_core=cam_core,
        cam_method=cam_method,
        batch_size=batch_size,
        progress=progress,
    )
    f = pred.findings
    scores: dict[str, MetricScore] = {}
    notes: list[str] = []
    truth_any = select_truth(t, split=split, any_reader=True)
    scores["auroc"] = score_auroc(
        truth_any, Predictions(f[f["source"] == "classifier"], "findings"), n_boot=n_boot, seed=seed
    )
    try:
        truth = select_truth(t, split=split)
    except UsageError as exc:
        truth = None
        notes.append(f"no single truth reader for mAP and T(IoBB): {exc}")
    if truth is not None and config.labels in ("vindr", "challenge"):
        rows = submission_rows(f, pred.box_labels)
        scores["map40"] = score_map(truth, Predictions(rows, "findings"))
        sub, _ = make_submission(rows, image_ids=ids, images=t.images)
        write_submission(sub, Path(out) / SUBMISSION_OUT)
    cam = f[f["source"] == "cam"]
    if truth is not None and len(cam) and truth.findings[["x_min"]].notna().any().item():
        scores["iobb"] = score_iobb(truth, Predictions(cam, "findings"))
    _write_scores(Path(out) / SCORES_OUT, scores, notes)
    add_test_metrics(run, _card_lines(scores, split, pred.cam_maps))
    return Evaluation(pred, scores, notes)


def _write_scores(path: Path, scores: dict[str, MetricScore], notes: list[str]) -> None:
    data: dict[str, Any] = {name: s.to_json() for name, s in scores.items()}
    data["notes"] = notes
    write_text_atomic(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def _json_default(value: object) -> object:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return str(value)


def _card_lines(scores: dict[str, MetricScore], split: str | None, cam_maps: str) -> list[str]:
    lines = [f"- Test metrics (`cxrlab evaluate`, split {split or 'all'}):"]
    if "auroc" in scores:
        s = scores["auroc"]
        lines.append(f"  - macro AUROC {s.mean:.3f} over {int(s.table['auroc'].notna().sum())} labels")
        table = s.table[s.table["auroc"].notna()].sort_values("positives", ascending=False).head(10)
        for r in table.itertuples():
            lines.append(
                f"    - {r.label}: {r.auroc:.3f} (95% CI {r.auroc_low:.3f}-{r.auroc_high:.3f}), "
                f"{int(r.positives)} positives"
            )
    if "map40" in scores:
        lines.append(f"  - mAP@0.4 (challenge, No finding included) {scores['map40'].mean:.3f}")
    if "iobb" in scores:
        iobb = scores["iobb"].table.set_index("label")["T=0.5"]
        shown = ", ".join(f"{k} {v:.2f}" for k, v in iobb.dropna().items())
        lines.append(f"  - CAM T(IoBB > 0.5), boxes from the {cam_maps}: {shown}")
    return lines
