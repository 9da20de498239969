"""The report labeler: mentions -> negation/uncertainty -> one value per label and report.

Per report and label the decisive mention is the one with the highest priority, positive > uncertain >
negative; a label never mentioned stays blank. ``No finding`` is 1 when no finding label (support devices
aside) is positive or uncertain, blank otherwise, as the CheXpert labeler writes it; an empty report is
blank everywhere, since it says nothing.

A differential ("atelectasis versus scarring") is uncertain by default, as the issue's rules and the
CheXpert labeler have it; ``differential="positive"`` counts both candidates of an unhedged differential as
positive, as the human MeSH coding behind NIH-style gold (Open-i) does.

Values: 1 positive, 0 negative, -1 uncertain, ``<NA>`` not mentioned. The ``uncertain`` policy maps -1 to
1 ("positive", the U-Ones of the CheXpert paper), to 0 ("negative", U-Zeros) or keeps it; ``No finding`` is
computed before the policy, from the raw decisions.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import pandas as pd

from cxrlab.errors import UsageError
from cxrlab.params import check_choice
from cxrlab.progress import track
from cxrlab.reports.mentions import LABEL_SET_NAMES, MentionFinder, default_finder
from cxrlab.reports.negation import (
    DIFFERENTIAL,
    NEGATIVE,
    POSITIVE,
    UNCERTAIN,
    Decision,
    Rules,
    TriggerIndex,
    classify,
    default_rules,
)
from cxrlab.reports.sections import CONTEXT_SECTIONS, sentence_ends, split_sections
from cxrlab.taxonomy import NO_FINDING, LabelSet

UncertainPolicy = Literal["keep", "positive", "negative"]
UNCERTAIN_POLICIES: tuple[str, ...] = ("keep", "positive", "negative")
DifferentialPolicy = Literal["positive", "uncertain"]
DIFFERENTIAL_POLICIES: tuple[str, ...] = ("uncertain", "positive")
STATUS_NAMES = {POSITIVE: "positive", NEGATIVE: "negative", UNCERTAIN: "uncertain"}
_PRIORITY = {POSITIVE: 2, UNCERTAIN: 1, NEGATIVE: 0}
NOT_FINDINGS = frozenset({"Support Devices"})
"""Labels that are no abnormality: they do not stop ``No finding``."""
EXPLANATION = "explanation"


@dataclass(frozen=True, slots=True)
class Mention:
    """One finding named in a report and what the rules made of it (offsets in the prepared text)."""

    label: str
    phrase: str
    text: str
    start: int
    end: int
    section: str
    status: int
    rule: str
    trigger: str = ""

    def explain(self) -> str:
        where = f" [{self.section}]" if self.section else ""
        how = f"{self.rule} '{self.trigger}'" if self.trigger else self.rule
        return f"'{self.text}'{where} {STATUS_NAMES[self.status]}: {how}"


def prepare(text: object) -> str:
    """Lower-cased text with normal line ends and composed Unicode; anything not a string becomes ''."""
    if not isinstance(text, str):
        return "" if text is None or (isinstance(text, float) and text != text) else str(text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = unicodedata.normalize("NFC", text).replace("\x00", "")
    return text.lower()


class ReportLabeler:
    """Labels reports for one label set; build once, then call :meth:`label` for each report."""

    def __init__(
        self,
        label_set: str | LabelSet = "nih",
        *,
        phrases: str | Path | None = None,
        rules: str | Path | None = None,
        skip_sections: Iterable[str] = CONTEXT_SECTIONS,
        differential: DifferentialPolicy = "uncertain",
    ) -> None:
        if phrases is None and isinstance(label_set, str):
            shipped = check_choice(label_set.lower(), LABEL_SET_NAMES, "label_set")
            self.finder: MentionFinder = default_finder(shipped)
        else:
            self.finder = MentionFinder.load(label_set, phrases)
        self.rules: Rules = default_rules() if rules is None else Rules.load(rules)
        self.label_set: LabelSet = self.finder.label_set
        self.skip_sections = frozenset(skip_sections)
        self.findings = tuple(lab for lab in self.label_set.findings if lab not in NOT_FINDINGS)
        self.differential: DifferentialPolicy = check_differential(differential)

    # -- one report ---------------------------------------------------------------------------------
    def mentions(self, text: object) -> list[Mention]:
        """Every mention of every label in the report, in order, with its status and rule."""
        low = prepare(text)
        matches = self.finder.find(low)
        if not matches:
            return []
        sections = split_sections(low)
        section_starts = [s.start for s in sections]
        index = TriggerIndex(low, self.rules.find(low))
        ends = sentence_ends(low)
        out: list[Mention] = []
        for m in matches:
            k = bisect_right(section_starts, m.start) - 1
            section = sections[k] if k >= 0 else sections[0]
            if section.name in self.skip_sections or m.start < section.start:
                continue
            i = bisect_right(ends, m.start)
            s_start = max(ends[i - 1] if i else 0, section.start)
            s_end = min(ends[i] if i < len(ends) else len(low), section.end)
            decision = classify(low, m.start, m.end, (s_start, s_end), index)
            if decision is None:
                continue
            if decision.rule == DIFFERENTIAL and self.differential == "positive":
                decision = Decision(POSITIVE, decision.rule, decision.trigger)
            for label, neutral in zip(m.labels, m.neutral, strict=True):
                if neutral and decision.status == POSITIVE:
                    continue  # "heart size is stable": normal anatomy, no finding
                out.append(
                    Mention(
                        label,
                        m.phrase,
                        low[m.start : m.end],
                        m.start,
                        m.end,
                        section.name,
                        decision.status,
                        decision.rule,
                        decision.trigger,
                    )
                )
        return out

    def decide(self, text: object) -> tuple[dict[str, int], dict[str, Mention]]:
        """Per label, the raw value (1, 0, -1; absent when not mentioned) and its decisive mention."""
        decisive: dict[str, Mention] = {}
        for m in self.mentions(text):
            best = decisive.get(m.label)
            if best is None or _PRIORITY[m.status] > _PRIORITY[best.status]:
                decisive[m.label] = m
        values = {label: m.status for label, m in decisive.items()}
        said_something = bool(decisive) or (isinstance(text, str) and bool(text.strip()))
        if said_something and all(values.get(lab, NEGATIVE) == NEGATIVE for lab in self.findings):
            values[NO_FINDING] = POSITIVE
        return values, decisive

    def label(self, text: object, *, uncertain: UncertainPolicy = "keep") -> dict[str, int]:
        """The values of one report after the ``uncertain`` policy; labels not mentioned are absent."""
        check_policy(uncertain)
        values, _ = self.decide(text)
        values = apply_policy(values, uncertain)
        return {lab: values[lab] for lab in self.label_set.labels if lab in values}

    # -- many reports -------------------------------------------------------------------------------
    def label_reports(
        self,
        texts: Iterable[object],
        ids: Iterable[object] | None = None,
        *,
        uncertain: UncertainPolicy = "keep",
        explain: bool = False,
        progress: bool = False,
        total: int | None = None,
    ) -> pd.DataFrame:
        """A table: ``report_id``, one nullable-integer column per label in the set's order, and with
        ``explain`` an ``explanation`` column naming the phrase and rule behind every value."""
        check_policy(uncertain)
        texts = list(texts) if total is None and not hasattr(texts, "__len__") else texts
        n = total if total is not None else len(texts)  # type: ignore[arg-type]
        rows: list[dict[str, int]] = []
        notes: list[str] = []
        for text in track(texts, total=n, description="labelling reports", progress=progress):
            values, decisive = self.decide(text)
            rows.append(apply_policy(values, uncertain))
            if explain:
                notes.append(explanation(values, decisive))
        labels = list(self.label_set.labels)
        table = pd.DataFrame.from_records(rows, columns=labels).astype("Int8")
        ids_list = list(ids) if ids is not None else list(range(len(table)))
        if len(ids_list) != len(table):
            raise UsageError(f"{len(ids_list)} report ids for {len(table)} reports")
        table.insert(0, "report_id", pd.array([str(i) for i in ids_list], dtype="string"))
        if explain:
            table[EXPLANATION] = pd.array(notes, dtype="string")
        return table


def explanation(values: dict[str, int], decisive: dict[str, Mention]) -> str:
    """One line: ``Label=value: 'matched text' [section] status: rule 'trigger'`` for each decided label."""
    parts = [f"{label}={values[label]}: {m.explain()}" for label, m in decisive.items()]
    if values.get(NO_FINDING) == POSITIVE:
        parts.append(f"{NO_FINDING}=1: no finding positive or uncertain")
    return "; ".join(parts)


def check_policy(uncertain: str) -> UncertainPolicy:
    """``uncertain`` as a policy, or a ParameterError listing the policies."""
    return cast(UncertainPolicy, check_choice(uncertain, UNCERTAIN_POLICIES, "uncertain"))


def check_differential(differential: str) -> DifferentialPolicy:
    """``differential`` as a policy, or a ParameterError listing the policies."""
    return cast(DifferentialPolicy, check_choice(differential, DIFFERENTIAL_POLICIES, "differential"))


def apply_policy(values: dict[str, int], uncertain: str) -> dict[str, int]:
    """Map -1 to 1 or 0 (``positive``/``negative``) or keep it; ``No finding`` is left as it is."""
    if uncertain == "keep" or UNCERTAIN not in values.values():
        return values
    to = POSITIVE if uncertain == "positive" else NEGATIVE
    return {k: (to if v == UNCERTAIN and k != NO_FINDING else v) for k, v in values.items()}


def label_reports(
    texts: Iterable[object],
    label_set: str = "nih",
    *,
    ids: Iterable[object] | None = None,
    uncertain: UncertainPolicy = "keep",
    explain: bool = False,
) -> pd.DataFrame:
    """Shortcut: :meth:`ReportLabeler.label_reports` with the shipped lists of ``label_set``."""
    return ReportLabeler(label_set).label_reports(texts, ids, uncertain=uncertain, explain=explain)
