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
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cxrlab.reports.patterns import (
    CompiledPhrases,
    PhraseFileError,
    checked_phrase,
    compile_phrases,
    read_phrase_file,
)

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
            roles.setdefault(checked_phrase(line.phrase, name, line.line), []).append(Role(line.section, w))
        return cls(compile_phrases([(p, tuple(r)) for p, r in roles.items()]), name)

    def find(self, text: str) -> list[Trigger]:
        """Every trigger in ``text`` (already lower-cased), left to right."""
        return [Trigger(s, e, p, r) for s, e, p, r in self.compiled.finditer(text)]  # type: ignore[arg-type]


@lru_cache(maxsize=8)
def default_rules() -> Rules:
    return Rules.load()


class TriggerIndex:
    """The triggers of one report, indexed so that deciding a mention costs about the same anywhere.

    Deciding a mention by walking every trigger of its sentence is quadratic on a long report without
    sentence breaks (a 1 MB dictation took minutes). Here each kind keeps the sorted positions of its
    triggers, and word counts come from the word spans by bisection, so each rule looks only at the few
    triggers that can decide it: the nearest ones, and past a windowed role's reach only those whose role
    reaches the whole clause. The decisions are those of walking the sentence trigger by trigger.
    """

    def __init__(self, text: str, triggers: list[Trigger]) -> None:
        self.text = text
        self.triggers = triggers
        self.starts = [t.start for t in triggers]
        spans = [m.span() for m in _WORD.finditer(text)]
        self._word_starts = [s for s, _ in spans]
        self._word_ends = [e for _, e in spans]
        self._of_kind: dict[str, list[int]] = {}
        self._unbounded: dict[str, list[int]] = {}
        self._reach: dict[str, int] = {}
        for i, t in enumerate(triggers):
            for role in t.roles:
                kinds = [role.kind] + (["pre"] if role.kind in PRE_KINDS else [])
                for kind in kinds:
                    _append_once(self._of_kind.setdefault(kind, []), i)
                    if role.window is None:
                        _append_once(self._unbounded.setdefault(kind, []), i)
                    else:
                        self._reach[kind] = max(self._reach.get(kind, 0), role.window)
        self._sentence_stop: dict[tuple[int, int], int] = {}
        self.max_end: list[int] = []
        """``max_end[i]``: the furthest end of triggers ``0..i`` (gapped triggers may overlap)."""
        furthest = 0
        for t in triggers:
            furthest = max(furthest, t.end)
            self.max_end.append(furthest)
        self.crossing = [i for i in range(len(triggers) - 1) if triggers[i].end > triggers[i + 1].start]
        """Triggers that run into the next one: the only ones that can reach past a termination."""

    def words_between(self, start: int, end: int) -> int:
        """How many runs of word characters touch ``text[start:end]`` (``len(_WORD.findall(...))``)."""
        if end <= start:
            return 0
        return bisect_left(self._word_starts, end) - bisect_right(self._word_ends, start)

    def applies(self, role: Role, start: int, end: int) -> bool:
        return role.window is None or self.words_between(start, end) <= role.window

    def of_kind(self, kind: str) -> list[int]:
        return self._of_kind.get(kind, [])

    def unbounded(self, kind: str) -> list[int]:
        return self._unbounded.get(kind, [])

    def reach(self, kind: str) -> int:
        """The widest window of a windowed role of ``kind``: farther, only clause-wide roles apply."""
        return self._reach.get(kind, 0)

    def sentence_range(self, s_start: int, s_end: int) -> tuple[int, int]:
        """Trigger indices ``[lo, stop)`` of a sentence, ``stop`` at the first trigger that runs past it."""
        lo = bisect_left(self.starts, s_start)
        key = (s_start, s_end)
        stop = self._sentence_stop.get(key)
        if stop is None:
            stop = bisect_left(self.starts, s_end, lo)
            for i in range(lo, stop):
                if self.triggers[i].end > s_end:
                    stop = i
                    break
            self._sentence_stop[key] = stop
        return lo, stop


def _append_once(indices: list[int], i: int) -> None:
    if not indices or indices[-1] != i:
        indices.append(i)


@dataclass(frozen=True, slots=True)
class _Scope:
    """Where a mention's clause lies among the trigger indices.

    Pre-triggers are the indices in ``(pre_lo, pre_hi)`` that end before the mention; post-triggers those in
    ``[post_lo, post_hi)`` that start after it; ``scope_end`` is where the clause ends (the next termination
    or the sentence end).
    """

    start: int
    end: int
    pre_lo: int
    pre_hi: int
    post_lo: int
    post_hi: int
    scope_end: int
    cut: bool
    """True when a termination ends the clause before the sentence does."""


def _clause(index: TriggerIndex, start: int, end: int, sentence: tuple[int, int]) -> _Scope | None:
    """The mention's clause, or None when a termination lies inside the mention (not a mention after all)."""
    triggers = index.triggers
    lo, stop = index.sentence_range(*sentence)
    first_after = min(bisect_left(index.starts, start, lo, stop), stop)
    terms = index.of_kind("termination")
    k = bisect_left(terms, first_after) - 1
    while k >= 0 and terms[k] >= lo and triggers[terms[k]].end > start:
        k -= 1  # a termination overlapping the mention's start ends no clause before it
    pre_lo = terms[k] if k >= 0 and terms[k] >= lo else lo - 1
    i = first_after
    while i < stop and triggers[i].start < end:  # triggers inside the mention's span come first
        if triggers[i].end <= end and triggers[i].has("termination"):
            return None
        i += 1
    post_hi, scope_end, cut = stop, sentence[1], False
    for k in range(bisect_left(terms, i), len(terms)):
        if terms[k] >= stop:
            break
        if triggers[terms[k]].start >= end:
            post_hi, scope_end, cut = terms[k], triggers[terms[k]].start, True
            break
    return _Scope(start, end, pre_lo, first_after, first_after, post_hi, scope_end, cut)


def _in_pre(index: TriggerIndex, scope: _Scope, i: int) -> bool:
    t = index.triggers[i]
    return scope.pre_lo < i < scope.pre_hi and t.end <= scope.start and not t.has("termination")


def _in_post(index: TriggerIndex, scope: _Scope, i: int) -> bool:
    return scope.post_lo <= i < scope.post_hi and index.triggers[i].start >= scope.end


def _post_stop(index: TriggerIndex, scope: _Scope) -> int:
    """The post-trigger index where steps 1 and 4 stop: the first one reaching past the clause's end.

    No trigger of the sentence reaches past its end, and one reaching past a termination runs into the next
    trigger, so only the clause's crossing triggers need a look.
    """
    if not scope.cut:
        return scope.post_hi
    crossing = index.crossing
    for k in range(bisect_left(crossing, scope.post_lo), len(crossing)):
        i = crossing[k]
        if i >= scope.post_hi:
            break
        t = index.triggers[i]
        if t.start >= scope.end and t.end > scope.scope_end:
            return i
    return scope.post_hi


def _pre_candidates(index: TriggerIndex, scope: _Scope, kind: str):  # type: ignore[no-untyped-def]
    """Pre-triggers having a ``kind`` role, nearest first; past the widest window only clause-wide ones."""
    indices, reach = index.of_kind(kind), index.reach(kind)
    k = bisect_left(indices, scope.pre_hi) - 1
    while k >= 0 and indices[k] > scope.pre_lo:
        i = indices[k]
        if _in_pre(index, scope, i):
            yield i
        if index.words_between(index.max_end[i], scope.start) > reach:
            break  # every earlier trigger is at least this far: only clause-wide roles still reach
        k -= 1
    else:
        return
    wide = index.unbounded(kind)
    for k in range(bisect_left(wide, i) - 1, -1, -1):
        if wide[k] <= scope.pre_lo:
            return
        if _in_pre(index, scope, wide[k]):
            yield wide[k]


def _post_candidates(index: TriggerIndex, scope: _Scope, kind: str, stop: int):  # type: ignore[no-untyped-def]
    """Post-triggers before ``stop`` having a ``kind`` role, nearest first, as far as a role can reach."""
    indices, reach, wide = index.of_kind(kind), index.reach(kind), bool(index.unbounded(kind))
    for k in range(bisect_left(indices, scope.post_lo), len(indices)):
        i = indices[k]
        if i >= stop:
            return
        if not _in_post(index, scope, i):
            continue
        if not wide and index.words_between(scope.end, index.triggers[i].start) > reach:
            return
        yield i


def _phrase(index: TriggerIndex, t: Trigger) -> str:
    return index.text[t.start : t.end]


def _post_rule(index: TriggerIndex, scope: _Scope, kind: str, stop: int) -> Trigger | None:
    for i in _post_candidates(index, scope, kind, stop):
        t = index.triggers[i]
        if any(r.kind == kind and index.applies(r, scope.end, t.start) for r in t.roles):
            return t
    return None


def _inside_rule(index: TriggerIndex, scope: _Scope) -> Decision | bool | None:
    """Step 2: a trigger inside a gapped phrase; False when there is none."""
    for i in range(scope.post_lo, scope.post_hi):
        t = index.triggers[i]
        if t.start >= scope.end:
            break
        if t.end > scope.end:
            continue
        for role in t.roles:
            if role.kind in _NEGATION_KINDS:
                return Decision(NEGATIVE, "negation inside the phrase", _phrase(index, t))
            if role.kind in ("pre_uncertainty", "post_uncertainty", "pre_evidence"):
                return Decision(UNCERTAIN, "uncertainty inside the phrase", _phrase(index, t))
            if role.kind == DIFFERENTIAL:
                return None  # "effusion versus pleural thickening" is two mentions, not one
    return False


def _pre_rule(index: TriggerIndex, scope: _Scope) -> Decision | None:
    """Step 3: the nearest pre-trigger whose role reaches the mention."""
    for i in _pre_candidates(index, scope, "pre"):
        t = index.triggers[i]
        for role in t.roles:
            if role.kind not in PRE_KINDS or not index.applies(role, t.end, scope.start):
                continue
            if role.kind == "pre_negation":
                return Decision(NEGATIVE, "pre-negation", _phrase(index, t))
            if role.kind == "pre_uncertainty":
                return Decision(UNCERTAIN, "pre-uncertainty", _phrase(index, t))
            negations = index.of_kind("pre_negation")
            for k in range(bisect_right(negations, scope.pre_lo), len(negations)):
                if negations[k] >= i:
                    break
                if _in_pre(index, scope, negations[k]):
                    earlier = index.triggers[negations[k]]
                    return Decision(
                        NEGATIVE, "negated evidence", f"{_phrase(index, earlier)} ... {_phrase(index, t)}"
                    )
            return Decision(UNCERTAIN, "pre-uncertainty", _phrase(index, t))
    return None


def _differential_rule(index: TriggerIndex, scope: _Scope) -> Decision | None:
    """Step 5: a differential trigger before the mention (nearest first), else after it in the clause."""
    for i in _pre_candidates(index, scope, DIFFERENTIAL):
        t = index.triggers[i]
        if any(r.kind == DIFFERENTIAL and index.applies(r, t.end, scope.start) for r in t.roles):
            return Decision(UNCERTAIN, DIFFERENTIAL, _phrase(index, t))
    for i in _post_candidates(index, scope, DIFFERENTIAL, scope.post_hi):
        t = index.triggers[i]
        if t.end <= scope.scope_end and any(
            r.kind == DIFFERENTIAL and index.applies(r, scope.end, t.start) for r in t.roles
        ):
            return Decision(UNCERTAIN, DIFFERENTIAL, _phrase(index, t))
    return None


def classify(
    text: str, start: int, end: int, sentence: tuple[int, int], index: TriggerIndex
) -> Decision | None:
    """Decide the mention ``text[start:end]`` within ``sentence`` (offsets) from the report's ``index``.

    Returns None when the mention is not a mention after all (a termination trigger inside a gapped phrase:
    "heart is normal but aorta enlarged"). The steps are those of the module docstring, in order.
    """
    scope = _clause(index, start, end, sentence)
    if scope is None:
        return None
    stop = _post_stop(index, scope)
    if (t := _post_rule(index, scope, "post_uncertainty", stop)) is not None:
        return Decision(UNCERTAIN, "post-uncertainty", text[t.start : t.end])
    inside = _inside_rule(index, scope)
    if inside is not False:
        return inside  # type: ignore[return-value]
    if (decision := _pre_rule(index, scope)) is not None:
        return decision
    if (t := _post_rule(index, scope, "post_negation", stop)) is not None:
        return Decision(NEGATIVE, "post-negation", text[t.start : t.end])
    if (decision := _differential_rule(index, scope)) is not None:
        return decision
    return Decision(POSITIVE, "affirmed")
