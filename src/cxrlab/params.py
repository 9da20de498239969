"""Validators of the parameters several functions share, so that each is checked once, the same way.

They raise :class:`cxrlab.errors.ParameterError` naming the parameter; the CLI names its flag instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from cxrlab.errors import ParameterError


def check_choice(value: str, choices: Iterable[str], parameter: str) -> str:
    """One of a fixed set of names (a label set, a format, a method): the message lists them all.

    Options with a fixed set of values are plain strings in the CLI and the library alike; this check is
    the one place they are validated, so a Python caller and a command-line user get the same sentence
    (the CLI puts its flag in place of ``parameter``).
    """
    allowed = tuple(choices)
    if value not in allowed:
        raise ParameterError(parameter, f"must be one of {', '.join(allowed)} (got {value!r})")
    return value


def check_iou(value: float, parameter: str = "iou") -> float:
    """An IoU threshold: a finite number strictly between 0 and 1 (0 matches anything, 1 nothing)."""
    number = _number(value, parameter)
    if not 0 < number < 1:
        raise ParameterError(parameter, f"must be between 0 and 1, exclusive (got {value})")
    return number


def check_probability(value: float, parameter: str) -> float:
    """A score threshold or probability: a finite number in [0, 1]."""
    number = _number(value, parameter)
    if not 0 <= number <= 1:
        raise ParameterError(parameter, f"must be between 0 and 1 (got {value})")
    return number


def check_count(value: int, parameter: str, *, minimum: int = 0) -> int:
    """A whole number of at least ``minimum`` (bootstrap resamples, readers of a quorum)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ParameterError(parameter, f"must be a whole number >= {minimum} (got {value})")
    return value


def _number(value: float, parameter: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(parameter, f"must be a number (got {value!r})") from None
    if not math.isfinite(number):
        raise ParameterError(parameter, f"must be a finite number (got {value})")
    return number
