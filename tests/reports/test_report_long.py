"""The negation engine on long reports: the same decisions as walking the sentence, in linear time."""

from __future__ import annotations

import random
from bisect import bisect_right

import pandas as pd
import pytest
from negation_reference import classify_by_walking

from conftest import realdata_path
from cxrlab.reports import ReportLabeler, negation
from cxrlab.reports.labeler import prepare
from cxrlab.reports.negation import TriggerIndex, classify
from cxrlab.reports.sections import sentence_ends, split_sections

_SALAD = (
    "no pneumonia effusion there is mild atelectasis but pneumothorax possible consolidation versus edema "
    "cannot be excluded , ; stable cardiomegaly heart size is normal not seen without evidence of suggestive "
    "to suggest opacity either or resolved no change may represent scarring likely the lungs are clear . "
    "however nodule mass fibrosis thickening pleural free of negative for concerning for"
)
VOCABULARY = _SALAD.split()


def _decisions(labeler: ReportLabeler, text: str) -> list[tuple[object, object]]:
    """Every mention decided by both engines, on the sentences the labeler gives them."""
    low = prepare(text)
    triggers = labeler.rules.find(low)
    index = TriggerIndex(low, triggers)
    starts = [t.start for t in triggers]
    ends = sentence_ends(low)
    sections = split_sections(low)
    out = []
    for m in labeler.finder.find(low):
        k = max(bisect_right([s.start for s in sections], m.start) - 1, 0)
        i = bisect_right(ends, m.start)
        sentence = (
            max(ends[i - 1] if i else 0, sections[k].start),
            min(ends[i] if i < len(ends) else len(low), sections[k].end),
        )
        fast = classify(low, m.start, m.end, sentence, index)
        slow = classify_by_walking(low, m.start, m.end, sentence, triggers, starts)
        out.append((fast, slow))
    return out


@pytest.fixture(scope="module")
def nih() -> ReportLabeler:
    return ReportLabeler("nih")


def test_same_decisions_as_walking_on_real_reports(nih: ReportLabeler) -> None:
    table = pd.read_csv(realdata_path("reports", "indiana_reports_dev.csv"), dtype=str)
    texts = (table["findings"].fillna("") + "\n" + table["impression"].fillna("")).tolist()
    pairs = [p for text in texts for p in _decisions(nih, text)]
    assert len(pairs) > 3000
    assert all(fast == slow for fast, slow in pairs)


@pytest.mark.parametrize("seed", range(6))
def test_same_decisions_as_walking_on_random_text(nih: ReportLabeler, seed: int) -> None:
    """Word salad dense in triggers and phrases: long clauses, nested scopes, terminations anywhere."""
    rng = random.Random(seed)
    text = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(50, 3000)))
    pairs = _decisions(nih, text)
    assert pairs and all(fast == slow for fast, slow in pairs)


def _work_per_mention(labeler: ReportLabeler, text: str, monkeypatch: pytest.MonkeyPatch) -> float:
    """Trigger look-ups (word counts and trigger reads) per mention: constant when the engine is linear."""
    calls = [0]
    words_between = TriggerIndex.words_between
    in_pre = negation._in_pre

    def counted_words(self: TriggerIndex, start: int, end: int) -> int:
        calls[0] += 1
        return words_between(self, start, end)

    def counted_pre(*args: object) -> bool:
        calls[0] += 1
        return in_pre(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(TriggerIndex, "words_between", counted_words)
    monkeypatch.setattr(negation, "_in_pre", counted_pre)
    mentions = len(labeler.mentions(text))
    monkeypatch.undo()
    return calls[0] / max(mentions, 1)


def test_one_long_report_without_sentence_breaks_is_linear(
    nih: ReportLabeler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Work per mention does not grow with the clause (walking the sentence did: 1 MB took minutes)."""
    rng = random.Random(1)
    words = [w for w in VOCABULARY if w not in (".", ";", "but", "however")]
    short = " ".join(rng.choice(words) for _ in range(2000))  # ~12 kB, one clause
    long = " ".join(rng.choice(words) for _ in range(40000))  # ~250 kB, one clause
    assert _work_per_mention(nih, long, monkeypatch) < 2 * _work_per_mention(nih, short, monkeypatch) + 5
    text = long * 4  # ~1 MB
    assert len(text) > 900_000 and nih.label(text)  # labels (quadratic walking took > 300 s)
