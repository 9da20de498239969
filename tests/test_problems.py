"""cxrlab.problems: one problem type and collector for every dataset reader."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlab.problems import MAX_EXAMPLES, Problem, ProblemLog, examples


def test_add_counts_what_it_is_given_or_the_count_it_is_told() -> None:
    log = ProblemLog("labels.csv")
    log.add("dup", "duplicate row(s), kept once", [f"row {i}" for i in range(12)])
    log.add("none", "nothing wrong", [])
    log.add("big", "many rows", ["a", "b"], count=1_000, file="other.csv", severity="note")
    assert [p.kind for p in log] == ["dup", "big"]
    dup, big = log.items
    assert dup.count == 12 and dup.examples == [f"row {i}" for i in range(MAX_EXAMPLES)]
    assert dup.file == "labels.csv" and big.file == "other.csv" and big.count == 1_000
    assert [p.kind for p in log.warnings()] == ["dup"]
    assert str(big) == "other.csv: 1,000 many rows (e.g. a, b)"
    assert log.to_json()[1] == {
        "file": "other.csv",
        "kind": "big",
        "count": 1000,
        "message": "many rows",
        "examples": ["a", "b"],
        "severity": "note",
    }


def test_where_reports_the_values_under_a_mask() -> None:
    log = ProblemLog("t")
    values = pd.Series([f"img{i}" for i in range(10)], dtype="string")
    mask = np.zeros(10, dtype=bool)
    log.where("empty", mask, values, "never")
    mask[[2, 5, 7]] = True
    log.where("odd", pd.Series(mask), values, "odd ones")
    assert len(log) == 1 and log.items[0].count == 3 and log.items[0].examples == ["img2", "img5", "img7"]


def test_a_severity_outside_the_two_is_refused() -> None:
    with pytest.raises(ValueError, match="severity"):
        ProblemLog().append(Problem("f", "k", 1, "m", severity="fatal"))


def test_examples_stops_early_on_a_generator() -> None:
    seen = []

    def numbers():  # type: ignore[no-untyped-def]
        for i in range(1_000_000):
            seen.append(i)
            yield i

    assert examples(numbers(), 3) == ["0", "1", "2"]
    assert len(seen) <= 4
