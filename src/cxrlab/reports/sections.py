"""Split a report into sections (FINDINGS, IMPRESSION, ...) and sentences.

Sections start at a known heading followed by a colon, at the start of a line or after a sentence
("... normal. IMPRESSION: ..."). Text before the first heading belongs to the section ``""``. Headings that
only give context (INDICATION, HISTORY, COMPARISON, TECHNIQUE) are skipped by the labeler by default:
"evaluate for pneumonia" is a question, not a finding.

Sentences end at ``.``, ``!`` or ``?`` followed by a blank or the end, at a full stop glued to the next word
("apex.There"), at a blank line, and before a numbered or bulleted item on a new line. Decimal numbers,
list numbers ("2. Edema") and abbreviations of single letters ("a.m.") do not end a sentence. Offsets are
those of the input string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SECTION_NAMES: dict[str, str] = {
    "findings": "findings",
    "finding": "findings",
    "impression": "impression",
    "impressions": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "opinion": "impression",
    "interpretation": "impression",
    "report": "findings",
    "indication": "indication",
    "indications": "indication",
    "reason for exam": "indication",
    "reason for examination": "indication",
    "reason for study": "indication",
    "clinical indication": "indication",
    "clinical information": "history",
    "clinical history": "history",
    "history": "history",
    "clinical data": "history",
    "comparison": "comparison",
    "comparisons": "comparison",
    "technique": "technique",
    "procedure": "technique",
    "examination": "technique",
    "exam": "technique",
    "recommendation": "recommendation",
    "recommendations": "recommendation",
    "notification": "notification",
    "addendum": "addendum",
}
"""Heading as written (lower case) -> the section it starts."""

CONTEXT_SECTIONS = frozenset({"indication", "history", "comparison", "technique", "notification"})
"""Sections the labeler skips by default."""

_HEADING = re.compile(
    r"(?:^|(?<=[.!?\n]))[ \t]*("
    + "|".join(sorted((re.escape(n).replace(r"\ ", r"\s+") for n in SECTION_NAMES), key=len, reverse=True))
    + r")[ \t]*:",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(
    r"(?<!\b[^\W\d_])(?<!\b\d)(?<!\b\d\d)[.!?]+(?=\s|$)"  # ordinary end, not "a.m." nor "2."
    r"|(?<=[^\W\d_]{3})\.(?=[^\W\d_]{2})"  # "apex.There": a full stop glued to the next word
    r"|\n[ \t]*\n\s*"  # blank line
    r"|\n(?=[ \t]*(?:\d{1,2}[.)]|[-*\u2022])\s)"  # a numbered or bulleted item on a new line
)


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of the report: ``name`` ("" before any heading), ``start``/``end`` offsets of its body."""

    name: str
    start: int
    end: int


def split_sections(text: str) -> list[Section]:
    """Sections of a report in order; a report without headings is one section named ``""``."""
    if ":" not in text:
        return [Section("", 0, len(text))]
    out: list[Section] = []
    name, start = "", 0
    for m in _HEADING.finditer(text):
        if m.start(1) > start or out or name:
            out.append(Section(name, start, m.start(1)))
        name = SECTION_NAMES[" ".join(m.group(1).lower().split())]
        start = m.end()
    out.append(Section(name, start, len(text)))
    return [s for s in out if s.end > s.start and (s.name or text[s.start : s.end].strip())]


def sentence_ends(text: str, start: int = 0, end: int | None = None) -> list[int]:
    """Offsets where sentences of ``text[start:end]`` end (exclusive), the last being ``end``."""
    end = len(text) if end is None else end
    ends = [m.end() for m in _SENTENCE_END.finditer(text, start, end)]
    if not ends or ends[-1] < end:
        ends.append(end)
    return ends


def split_sentences(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each sentence, blanks included: the pieces cover the whole text."""
    out, prev = [], 0
    for e in sentence_ends(text):
        if e > prev:
            out.append((prev, e))
        prev = e
    return out
