"""The first negation engine, kept as the slow reference of :func:`cxrlab.reports.negation.classify`.

It walks every trigger of the mention's sentence for each mention, which is quadratic on a long report
without sentence breaks; the indexed engine must decide exactly as it does.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from cxrlab.reports.negation import (
    _NEGATION_KINDS,
    DIFFERENTIAL,
    NEGATIVE,
    POSITIVE,
    PRE_KINDS,
    UNCERTAIN,
    Decision,
    Role,
    Trigger,
)

_WORD = re.compile(r"\w+")


def _words_between(text: str, start: int, end: int) -> int:
    if end <= start:
        return 0
    return len(_WORD.findall(text, start, end))


def _applies(role: Role, text: str, start: int, end: int) -> bool:
    return role.window is None or _words_between(text, start, end) <= role.window


def classify_by_walking(
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
