"""Problems found in a user's data: one type, one collector, one JSON shape for every reader of raw files.

A dataset index never drops or changes a row silently: each kind of oddity (duplicate rows, unknown labels,
boxes outside the image, ...) becomes one :class:`Problem` saying where it was found, how many rows show it,
what was done about it, and a few examples a user can look up. ``severity`` separates what a user should
look at (``warning``: data dropped, changed or kept doubtfully) from the known quirks of a release
(``note``). :class:`ProblemLog` collects them; an empty mask or an empty list adds nothing, so callers
report every check unconditionally.

A problem of one row (a line of a submission CSV, a row of a predictions table) says ``where`` it is: a
file that must be fixed before it is used lists each such row, one line each.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

MAX_EXAMPLES = 5
"""Examples kept per problem: enough to find the rows, few enough to read."""

SEVERITIES = ("warning", "note")


@dataclass
class Problem:
    """One kind of oddity: where it was found, how many rows show it, what was done, a few examples."""

    file: str  # the file (or folder) it was found in, as a user names it
    kind: str  # a short stable key: "duplicate-row", "box-outside", ...
    count: int
    message: str  # what the rows show and the rule applied to them
    examples: list[str] = field(default_factory=list)
    severity: str = "warning"
    where: str = ""  # the one row it is about ("line 4 image 1a2b...", "row 7"), if it is about one row

    def __str__(self) -> str:
        if self.where:
            return f"{self.file}: {self.where}: {self.message}"
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.file}: {self.count:,} {self.message}{ex}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if not self.where:
            del data["where"]
        return data

    @classmethod
    def at(cls, file: str, where: str, kind: str, message: str, image_id: str | None = None) -> Problem:
        """A problem of the one row ``where`` (about ``image_id`` when given)."""
        place = f"{where} image {image_id}" if image_id else where
        return cls(file, kind, 1, message, [image_id] if image_id else [], where=place)


def examples(values: Iterable[Any], n: int = MAX_EXAMPLES) -> list[str]:
    """The first ``n`` values as strings."""
    out: list[str] = []
    for value in values:
        if len(out) == n:
            break
        out.append(str(value))
    return out


class ProblemLog:
    """Collects :class:`Problem` s in the order found; ``file`` is where they are found unless a call
    names another file."""

    def __init__(self, file: str = "") -> None:
        self.file = file
        self.items: list[Problem] = []

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add(
        self,
        kind: str,
        message: str,
        found: Iterable[Any],
        *,
        count: int | None = None,
        file: str | None = None,
        severity: str = "warning",
    ) -> None:
        """Report ``found`` (every offending value, or examples of the ``count`` ones); nothing when none."""
        listed = list(found) if count is None else examples(found)
        n = len(listed) if count is None else int(count)
        if n:
            self.append(
                Problem(self.file if file is None else file, kind, n, message, examples(listed), severity)
            )

    def where(
        self,
        kind: str,
        mask: Any,
        values: Any,
        message: str,
        *,
        file: str | None = None,
        severity: str = "warning",
    ) -> None:
        """Report the ``values`` where the boolean ``mask`` holds (arrays or Series of equal length)."""
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n:
            chosen = np.asarray(values, dtype=object)[mask]
            self.append(
                Problem(self.file if file is None else file, kind, n, message, examples(chosen), severity)
            )

    def append(self, problem: Problem) -> None:
        if problem.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {problem.severity!r}")
        self.items.append(problem)

    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]

    def to_json(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in self.items]
