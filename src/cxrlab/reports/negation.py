"""Negation and uncertainty: the rules that turn a mention into positive (1), negative (0) or uncertain (-1).

The triggers live in ``phrases/rules.txt`` (one list per kind, see its header). For a mention, the scope is
its sentence cut at the nearest termination triggers on either side ("but", "however", ";"). Triggers in
scope decide, in this order:

1. a post-uncertainty trigger after the mention ("pneumonia cannot be excluded") -> uncertain;
2. a trigger inside a mention with a gap ("heart is *not* enlarged") -> its kind;
3. the nearest pre-trigger: negation -> negative; uncertainty -> uncertain; an evidence trigger
   ("suggestive of") -> uncertain, unless a negation comes before it in scope ("no opacity to suggest
   pneumonia") -> negative;
4. a post-negation trigger ("effusion has resolved") -> negative;
5. a differential trigger either side ("atelectasis versus scarring", "either atelectasis or
   infiltrate") -> uncertain with the rule ``differential``;
6. otherwise positive.

A differential names the candidates for something the radiologist does see (an opacity that is
atelectasis or scar). Unlike a hedge ("may represent atelectasis versus infiltrate", which step 1 or 3
decides first), it does not doubt the finding itself: human MeSH indexers coded both candidates of an
unhedged differential (Open-i), while the CheXpert labeler calls them uncertain. The labeler's
``differential`` option chooses; a differential trigger is skipped while looking for the other kinds.

Pseudo-triggers ("no change", "not only") are found with the others and decide nothing: because the
longest trigger wins where they overlap, they hide the "no" inside them.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cxrlab.reports.patterns import CompiledPhrases, PhraseFileError, compile_phrases, read_phrase_file

POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1

PRE_KINDS = ("pre_negation", "pre_uncertainty", "pre_evidence")
POST_KINDS = ("post_negation", "post_uncertainty")
DIFFERENTIAL = "differential"
KINDS = (*PRE_KINDS, *POST_KINDS, DIFFERENTIAL, "pseudo", "termination")
_NEGATION_KINDS = ("pre_negation", "post_negation")

_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class Role:
    """What a trigger does: its kind and how many words may separate it from the mention (None: clause)."""

    kind: str
    window: int | None


@dataclass(frozen=True, slots=True)
class Trigger:
    start: int
    end: int
    phrase: str
    roles: tuple[Role, ...]

    def has(self, kind: str) -> bool:
        return any(r.kind == kind for r in self.roles)


@dataclass(frozen=True, slots=True)
class Decision:
    """The status of one mention and the rule that set it, for ``--explain``."""

    status: int
    rule: str
    trigger: str = ""


class Rules:
    """The compiled triggers of a rules file."""

    def __init__(self, compiled: CompiledPhrases, source: str) -> None:
        self.compiled = compiled
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> Rules:
        """The rules shipped with cxrlab, or those of a file written in the same format."""
        name, lines = read_phrase_file(path or "", package_name=None if path else "rules")
        roles: dict[str, list[Role]] = {}
        for line in lines:
            if line.section not in KINDS:
                raise PhraseFileError(
                    f"{name}, line {line.section_line}: unknown section [{line.section}]; expected one of "
                    + ", ".join(KINDS)
                )
            window = line.params.get("window")
            try:
                w = None if window is None else int(window)
            except ValueError:
                raise PhraseFileError(f"{name}, line {line.line}: window must be an integer") from None
            roles.setdefault(line.phrase, []).append(Role(line.section, w))
        return cls(compile_phrases([(p, tuple(r)) for p, r in roles.items()]), name)

    def find(self, text: str) -> list[Trigger]:
        """Every trigger in ``text`` (already lower-cased), left to right."""
        return [Trigger(s, e, p, r) for s, e, p, r in self.compiled.finditer(text)]  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def default_rules() -> Rules:
    return Rules.load()


def _words_between(text: str, start: int, end: int) -> int:
    if end <= start:
        return 0
    return len(_WORD.findall(text, start, end))


def _applies(role: Role, text: str, start: int, end: int) -> bool:
    return role.window is None or _words_between(text, start, end) <= role.window


def classify(
    text: str, start: int, end: int, sentence: tuple[int, int], triggers: list[Trigger], starts: list[int]
) -> Decision | None:
    """Decide the mention ``text[start:end]`` within ``sentence`` (offsets) from the sorted ``triggers``.

    ``starts`` is ``[t.start for t in triggers]`` (for bisection). Returns None when the mention is not a
    mention after all (a termination trigger inside a gapped phrase: "heart is normal but aorta enlarged").
    """
    s_start, s_end = sentence
    lo = bisect_left(starts, s_start)
    hi = bisect_left(starts, s_end)
    scope_start, scope_end = s_start, s_end
    pre: list[Trigger] = []
    post: list[Trigger] = []
    inside: list[Trigger] = []
    for t in triggers[lo:hi]:
        if t.end > s_end:
            break
        if t.end <= start:
            if t.has("termination"):
                scope_start = t.end
                pre.clear()
            else:
                pre.append(t)
        elif t.start >= end:
            if t.has("termination"):
                scope_end = t.start
                break
            post.append(t)
        elif t.start >= start and t.end <= end:
            if t.has("termination"):
                return None
            inside.append(t)
    del scope_start  # pre is cleared at each termination, so it holds only in-scope triggers
    # 1. post-uncertainty
    for t in post:
        if t.end > scope_end:
            break
        for role in t.roles:
            if role.kind == "post_uncertainty" and _applies(role, text, end, t.start):
                return Decision(UNCERTAIN, "post-uncertainty", text[t.start : t.end])
    # 2. inside a gapped phrase
    for t in inside:
        for role in t.roles:
            if role.kind in _NEGATION_KINDS:
                return Decision(NEGATIVE, "negation inside the phrase", text[t.start : t.end])
            if role.kind in ("pre_uncertainty", "post_uncertainty", "pre_evidence"):
                return Decision(UNCERTAIN, "uncertainty inside the phrase", text[t.start : t.end])
            if role.kind == DIFFERENTIAL:
                return None  # "effusion versus pleural thickening" is two mentions, not one
    # 3. the nearest pre-trigger
    for i in range(len(pre) - 1, -1, -1):
        t = pre[i]
        for role in t.roles:
            if role.kind not in PRE_KINDS or not _applies(role, text, t.end, start):
                continue
            if role.kind == "pre_negation":
                return Decision(NEGATIVE, "pre-negation", text[t.start : t.end])
            if role.kind == "pre_uncertainty":
                return Decision(UNCERTAIN, "pre-uncertainty", text[t.start : t.end])
            for earlier in pre[:i]:
                if earlier.has("pre_negation"):
                    return Decision(
                        NEGATIVE,
                        "negated evidence",
                        f"{text[earlier.start : earlier.end]} ... {text[t.start : t.end]}",
                    )
            return Decision(UNCERTAIN, "pre-uncertainty", text[t.start : t.end])
    # 4. post-negation
    for t in post:
        if t.end > scope_end:
            break
        for role in t.roles:
            if role.kind == "post_negation" and _applies(role, text, end, t.start):
                return Decision(NEGATIVE, "post-negation", text[t.start : t.end])
    # 5. a differential either side
    for t in (*reversed(pre), *(t for t in post if t.end <= scope_end)):
        for role in t.roles:
            if role.kind == DIFFERENTIAL and (
                _applies(role, text, t.end, start) if t.end <= start else _applies(role, text, end, t.start)
            ):
                return Decision(UNCERTAIN, DIFFERENTIAL, text[t.start : t.end])
    return Decision(POSITIVE, "affirmed")
