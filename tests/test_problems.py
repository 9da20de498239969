"""cxrlab.problems: one problem type and collector for every dataset reader."""

from __future__ import annotations

from pathlib import Path

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


def test_a_problem_of_one_row_says_where_and_keeps_its_image(tmp_path: Path) -> None:
    """Submission checks report per row with the same type as the index readers (one JSON shape)."""
    from cxrlab.metrics.submission import read_submission

    row = Problem.at("sub.csv", "line 4", "confidence", "confidence 1.5 outside [0, 1]", "ab12")
    assert str(row) == "sub.csv: line 4 image ab12: confidence 1.5 outside [0, 1]"
    assert row.count == 1 and row.examples == ["ab12"]
    assert row.to_json()["where"] == "line 4 image ab12"
    assert "where" not in Problem("labels.csv", "dup", 2, "duplicate rows").to_json()
    path = tmp_path / "sub.csv"
    path.write_text("image_id,PredictionString\nab12,0 1.5 0 0 10 10\n")
    _, problems = read_submission(path)
    assert [type(p) for p in problems] == [Problem]
    assert [(p.file, p.kind, p.where) for p in problems] == [(str(path), "confidence", "line 2 image ab12")]
