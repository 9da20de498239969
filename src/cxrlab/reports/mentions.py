"""Mentions: where a report names a finding, found with the phrase list of a label set.

The lists are data files, ``phrases/<label set>.txt`` (nih, chexpert, vindr), one ``[Label]`` section per
label of :mod:`cxrlab.taxonomy`'s set, plus ``[ignore]`` for look-alikes ("mass effect"). A user extends a
list by copying the file and passing its path. The whole list compiles into one regex (see
:mod:`cxrlab.reports.patterns`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cxrlab.params import check_choice
from cxrlab.reports.patterns import (
    CompiledPhrases,
    PhraseFileError,
    checked_phrase,
    compile_phrases,
    read_phrase_file,
)
from cxrlab.taxonomy import NO_FINDING, LabelSet, UnknownLabelError, get_label_set

IGNORE = "ignore"
LABEL_SET_NAMES = ("nih", "chexpert", "vindr")


@dataclass(frozen=True, slots=True)
class PhraseMatch:
    start: int
    end: int
    phrase: str
    labels: tuple[str, ...]
    neutral: tuple[bool, ...]
    """Per label: True where the phrase names normal anatomy ("~heart size") and counts only when negated or
    uncertain."""


class MentionFinder:
    """The phrase list of one label set, compiled; :meth:`find` scans a lower-cased report once."""

    def __init__(
        self, label_set: LabelSet, compiled: CompiledPhrases, source: str, phrases: dict[str, list[str]]
    ):
        self.label_set = label_set
        self.compiled = compiled
        self.source = source
        self.phrases = phrases
        """label -> its phrases as written in the file."""

    @classmethod
    def load(cls, label_set: str | LabelSet, path: str | Path | None = None) -> MentionFinder:
        """The list shipped for ``label_set`` (nih, chexpert, vindr) or the file at ``path``."""
        ls = get_label_set(label_set)
        if path is None:  # a shipped list: only some label sets have one
            check_choice(ls.name, LABEL_SET_NAMES, "label_set")
        name, lines = read_phrase_file(path or "", package_name=None if path else ls.name)
        labels_of: dict[str, list[tuple[str, bool]]] = {}
        phrases: dict[str, list[str]] = {}
        for line in lines:
            phrase, neutral = line.phrase, line.phrase.startswith("~")
            if neutral:
                phrase = phrase[1:].strip()
            checked_phrase(phrase, name, line.line)
            if line.section.lower() == IGNORE:
                label = IGNORE
            else:
                try:
                    label = ls.canonical(line.section)
                except UnknownLabelError as exc:
                    raise PhraseFileError(f"{name}, line {line.section_line}: {exc}") from None
                if label == NO_FINDING:
                    raise PhraseFileError(
                        f"{name}, line {line.section_line}: '{NO_FINDING}' is derived from the other labels, "
                        "it takes no phrases"
                    )
            phrases.setdefault(label, []).append(line.phrase)
            found = labels_of.setdefault(phrase, [])
            if label != IGNORE and all(lab != label for lab, _ in found):
                found.append((label, neutral))
        return cls(ls, compile_phrases([(p, tuple(v)) for p, v in labels_of.items()]), name, phrases)

    def find(self, text: str, start: int = 0, end: int | None = None) -> list[PhraseMatch]:
        """Mentions in the lower-cased ``text[start:end]``; ignored look-alikes are dropped."""
        return [
            PhraseMatch(s, e, p, tuple(lab for lab, _ in pairs), tuple(n for _, n in pairs))
            for s, e, p, pairs in self.compiled.finditer(text, start, end)
            if pairs
        ]


@lru_cache(maxsize=16)
def default_finder(label_set: str) -> MentionFinder:
    return MentionFinder.load(label_set)
