"""Score the labeler against gold labels: per-label precision, recall, F1, and micro/macro averages.

The reference data is the Indiana University (Open-i) chest X-ray collection with NegBio's gold for the 14
NIH labels (``openi_gld_std14.csv``, ``filename`` = ``CXR<uid>``), coded by human MeSH indexers. The text
is FINDINGS + IMPRESSION. Averages cover the labels with at least one gold positive (Hernia has none in
Open-i).

Uncertain mentions are scored as negative (``uncertain="negative"``), as NIH's own mining pipeline
dropped them: the indexers coded what the radiologist asserted, and hedged findings ("may represent
pneumonia", "concerning for pneumonia") are mostly absent from their coding. Borderline findings, which the
indexers did code ("borderline cardiomegaly"), are a degree, not a hedge, in the rules, so they count.
The indexers also coded both candidates of an unhedged differential ("atelectasis versus scarring"), which
the labeler calls uncertain by default; ``differential="positive"`` follows the indexers there.

A deterministic dev/holdout split by a hash of the report id lets one check that phrase lists written while
looking at one part generalise to the other.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError
from cxrlab.params import check_choice
from cxrlab.reports.labeler import ReportLabeler, UncertainPolicy, check_policy
from cxrlab.reports.reading import read_csv_text
from cxrlab.taxonomy import NO_FINDING, get_label_set

SPLITS = ("all", "dev", "holdout")


@dataclass(frozen=True)
class LabelScore:
    label: str
    support: int
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        d = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / d if d else float("nan")


@dataclass(frozen=True)
class Evaluation:
    """Per-label scores and the averages over labels with gold positives."""

    scores: list[LabelScore]
    reports: int
    split: str

    @property
    def scored(self) -> list[LabelScore]:
        return [s for s in self.scores if s.support > 0]

    @property
    def micro(self) -> LabelScore:
        sc = self.scored
        return LabelScore(
            "micro", sum(s.support for s in sc), *(sum(getattr(s, k) for s in sc) for k in ("tp", "fp", "fn"))
        )

    @property
    def macro_f1(self) -> float:
        return float(np.mean([s.f1 for s in self.scored])) if self.scored else float("nan")

    def to_frame(self) -> pd.DataFrame:
        rows = [
            {
                "label": s.label,
                "support": s.support,
                "tp": s.tp,
                "fp": s.fp,
                "fn": s.fn,
                "precision": s.precision,
                "recall": s.recall,
                "f1": s.f1,
            }
            for s in [*self.scores, self.micro]
        ]
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, object]:
        return {
            "split": self.split,
            "reports": self.reports,
            "micro_f1": _num(self.micro.f1),
            "micro_precision": _num(self.micro.precision),
            "micro_recall": _num(self.micro.recall),
            "macro_f1": _num(self.macro_f1),
            "labels": [
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                for row in self.to_frame().to_dict(orient="records")
            ],
        }


def _num(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def in_holdout(report_id: str, fraction: float = 0.3) -> bool:
    """A stable pseudo-random assignment of ``report_id`` to the holdout part (about ``fraction``)."""
    h = int.from_bytes(hashlib.sha256(str(report_id).encode("utf-8")).digest()[:8], "big")
    return h / 2**64 < fraction


def score_labels(pred: pd.DataFrame, gold: pd.DataFrame, labels: list[str]) -> list[LabelScore]:
    """Scores of 0/1 predictions (NA counts as 0) against 0/1 gold, both indexed alike."""
    out = []
    for label in labels:
        p = pred[label].fillna(0).to_numpy(dtype=int) == 1
        g = gold[label].to_numpy(dtype=int) == 1
        out.append(
            LabelScore(label, int(g.sum()), int((p & g).sum()), int((p & ~g).sum()), int((~p & g).sum()))
        )
    return out


def load_openi(reports_csv: str | Path, gold_csv: str | Path) -> pd.DataFrame:
    """Join Indiana reports and the NegBio gold: ``report_id``, ``text`` (FINDINGS + IMPRESSION), labels."""
    reports = read_csv_text(reports_csv)
    gold = read_csv_text(gold_csv)
    for frame, path, need in (
        (reports, reports_csv, ("uid", "findings", "impression")),
        (gold, gold_csv, ("filename",)),
    ):
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise CxrlabError(f"{path}: missing column(s) {', '.join(missing)}")
    nih = get_label_set("nih")
    gold = gold.rename(columns={c: nih.canonical(c) for c in gold.columns if c != "filename" and c in nih})
    gold["report_id"] = gold["filename"].str.removeprefix("CXR")
    gold["gold_row"] = np.arange(len(gold))
    reports["report_id"] = reports["uid"].astype(str)
    reports["text"] = (
        "FINDINGS: " + reports["findings"].fillna("") + "\nIMPRESSION: " + reports["impression"].fillna("")
    )
    joined = reports[["report_id", "text"]].merge(gold, on="report_id", how="inner")
    if joined.empty:
        raise CxrlabError(
            f"{reports_csv} and {gold_csv}: no report id in common (gold 'filename' is CXR<uid>)"
        )
    labels = [lab for lab in nih.findings if lab in joined.columns]
    joined[labels] = _gold_values(gold, labels, gold_csv).loc[joined["gold_row"]].to_numpy()
    return joined.drop(columns="gold_row")


def _gold_values(gold: pd.DataFrame, labels: list[str], path: str | Path) -> pd.DataFrame:
    """The gold's label columns as 0/1 integers; any other cell is an error naming its row and column.

    A cell such as ``maybe`` or a blank, read as 0, would quietly turn a positive into a negative (or leave
    no label with positives: micro-F1 NaN).
    """
    values = gold[labels].apply(lambda c: pd.to_numeric(c.str.strip(), errors="coerce"))
    bad = ~values.isin([0, 1])
    if bad.to_numpy().any():
        rows, cols = np.nonzero(bad.to_numpy())
        examples = "; ".join(
            f"row {r + 2}, column {labels[c]}: {gold[labels[c]].iat[r]!r}"
            for r, c in zip(rows[:3], cols[:3], strict=True)
        )
        more = f" (and {len(rows) - 3} more)" if len(rows) > 3 else ""
        raise CxrlabError(f"{path}: gold labels must be 0 or 1; {examples}{more}")
    return values.astype(int)


def evaluate_openi(
    reports_csv: str | Path,
    gold_csv: str | Path,
    *,
    split: str = "all",
    uncertain: UncertainPolicy = "negative",
    labeler: ReportLabeler | None = None,
) -> Evaluation:
    """Label the Open-i reports with the NIH lists and score them against the gold."""
    check_choice(split, SPLITS, "split")
    check_policy(uncertain)  # usage before data
    data = load_openi(reports_csv, gold_csv)
    if split != "all":
        hold = data["report_id"].map(in_holdout)
        data = data[hold if split == "holdout" else ~hold].reset_index(drop=True)
    labeler = labeler or ReportLabeler("nih")
    pred = labeler.label_reports(data["text"], data["report_id"], uncertain=uncertain)
    labels = [lab for lab in labeler.label_set.findings if lab in data.columns and lab != NO_FINDING]
    return Evaluation(score_labels(pred, data, labels), len(data), split)
