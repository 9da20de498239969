"""One colour per label and one line style per reader, the same in every figure and every report.

A label's colour depends only on its name, never on which labels happen to be in a figure: the labels of
the known label sets (VinDr-CXR, NIH ChestX-ray14, CheXpert) get fixed places in a palette (Kelly's colours
of maximum contrast, then matplotlib's tab10, Dark2, tab20b); names that are spellings of one finding share
a colour ("Effusion" and "Pleural effusion"); ``No finding`` is grey; any other name is hashed into the
palette.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cache

from matplotlib import colormaps
from matplotlib.colors import to_hex

from cxrlab.taxonomy import CHEXPERT, NIH, NO_FINDING, VINDR, VINDR_CHALLENGE, LabelSet, map_label, normalize

__all__ = ["NO_FINDING_COLOR", "label_color", "label_colors", "reader_order", "reader_styles", "style_name"]

NO_FINDING_COLOR = "#7f7f7f"
LineStyle = str | tuple[int, tuple[int, ...]]
"""A matplotlib line style: a name or an (offset, on-off pattern) tuple."""
LINE_STYLES: tuple[LineStyle, ...] = (
    "-",
    (0, (6, 3)),
    (0, (1, 2)),
    (0, (6, 2, 1, 2)),
    (0, (5, 2, 1, 2, 1, 2)),
    (0, (2, 1)),
)
"""Solid, dashed, dotted, dash-dot, long dash-dot-dot, dense dashes: told apart at thumbnail size."""


# Kelly's colours of maximum contrast, in his order (each next one most distinct from those before), without
# white, black and grey, and his orange yellow moved last (too close to his yellow); the most frequent labels
# take the first ones.
_KELLY = (
    "#f3c300", "#875692", "#f38400", "#a1caf1", "#be0032", "#c2b280", "#008856", "#e68fac", "#0067a5",
    "#f99379", "#604e97", "#b3446c", "#8db600", "#882d17", "#dcd300", "#654522", "#e25822", "#2b3d26",
    "#f6a600",
)  # fmt: skip


@cache
def _palette() -> tuple[str, ...]:
    """Kelly's 19, then matplotlib's tab10, Dark2 and the darker tab20b shades; greys left out (they look
    like ``No finding``)."""
    colours = list(_KELLY)
    for name, indices in (("tab10", range(10)), ("Dark2", range(8)), ("tab20b", (0, 4, 8, 12, 16))):
        cmap = colormaps[name]
        for i in indices:
            colour = to_hex(cmap(i))
            r, g, b = (int(colour[k : k + 2], 16) for k in (1, 3, 5))
            if max(r, g, b) - min(r, g, b) >= 24 and colour not in colours:
                colours.append(colour)
    return tuple(colours)


def _twins(label_set: LabelSet) -> dict[str, str]:
    """Names of ``label_set`` that are one VinDr-CXR finding, and only they (Mass and Nodule both map to
    Nodule/Mass, so neither borrows its colour: they must stay apart in an NIH figure)."""
    if label_set is VINDR or label_set is VINDR_CHALLENGE:
        return {}
    targets = {name: map_label(name, label_set, VINDR) for name in label_set.labels}
    taken = Counter(t[0] for t in targets.values() if len(t) == 1)
    return {name: t[0] for name, t in targets.items() if len(t) == 1 and taken[t[0]] == 1}


@cache
def _known() -> dict[str, int]:
    """Normalised label name -> palette slot; spellings of one finding map to the same slot."""
    slots: dict[str, int] = {}
    for label_set in (VINDR_CHALLENGE, VINDR, NIH, CHEXPERT):  # the challenge's frequent classes first
        twins = _twins(label_set)
        for name in label_set.labels:
            key = normalize(name)
            if name == NO_FINDING or key in slots:
                continue
            twin = twins.get(name)
            slots[key] = slots[normalize(twin)] if twin is not None else len(set(slots.values()))
    return slots


def label_color(label: str) -> str:
    """The hex colour of ``label`` (a fixed slot for known labels, a stable hash for others)."""
    if label == NO_FINDING or normalize(label) == normalize(NO_FINDING):
        return NO_FINDING_COLOR
    palette = _palette()
    slot = _known().get(normalize(label))
    if slot is None:
        digest = hashlib.sha1(normalize(label).encode()).digest()
        slot = int.from_bytes(digest[:4], "big")
    return palette[slot % len(palette)]


def label_colors(labels: Iterable[str]) -> dict[str, str]:
    """``{label: colour}`` for every label given (the colours of :func:`label_color`)."""
    return {str(label): label_color(str(label)) for label in labels}


STYLE_NAMES = ("solid", "dashed", "dotted", "dash-dot", "dash-dot-dot", "dense dashes")


def reader_order(readers: Iterable[str]) -> list[str]:
    """Readers in natural order (R2 before R10), the consensus and models (non-R names) after them."""

    def key(name: str) -> tuple[int, int, str]:
        digits = "".join(ch for ch in name if ch.isdigit())
        return (name == "consensus", int(digits) if digits else 10**9, name)

    return sorted({str(r) for r in readers}, key=key)


def reader_styles(readers: Sequence[str]) -> dict[str, LineStyle]:
    """One line style per reader or model, in the order given (cycled after six)."""
    return {r: LINE_STYLES[i % len(LINE_STYLES)] for i, r in enumerate(readers)}


def style_name(style: object) -> str:
    """The words for a line style of :data:`LINE_STYLES`."""
    for known, name in zip(LINE_STYLES, STYLE_NAMES, strict=True):
        if str(known) == str(style):
            return name
    return str(style)
