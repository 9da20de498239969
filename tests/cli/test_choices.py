"""Options with a fixed set of values: plain strings in the CLI and the library, checked in one place.

An unknown value is a usage error (exit 2) whose one line names the flag and every allowed value, found
before any file is read or written; the library raises a ParameterError naming its parameter, so a Python
caller reads the same sentence with the parameter's name.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from cli_helpers import run_cli
from cxrlab.errors import ParameterError


def _allowed(module: str, name: str) -> Callable[[], tuple[str, ...]]:
    """The library's own list of values (imported when the case runs: the model's pulls in torch)."""

    def get() -> tuple[str, ...]:
        import importlib

        return tuple(getattr(importlib.import_module(module), name))

    return get


# (command line with BAD in place of the value, flag, where the allowed values live)
CASES: list[tuple[str, str, Callable[[], Iterable[str]]]] = [
    (
        "reports label R.csv --out O.csv --labels BAD",
        "--labels",
        _allowed("cxrlab.reports", "LABEL_SET_NAMES"),
    ),
    (
        "reports label R.csv --out O.csv --uncertain BAD",
        "--uncertain",
        _allowed("cxrlab.reports", "UNCERTAIN_POLICIES"),
    ),
    (
        "reports label R.csv --out O.csv --differential BAD",
        "--differential",
        _allowed("cxrlab.reports.labeler", "DIFFERENTIAL_POLICIES"),
    ),
    ("reports evaluate R.csv G.csv --split BAD", "--split", _allowed("cxrlab.reports.evaluate", "SPLITS")),
    ("labels consensus T --out O --method BAD", "--method", _allowed("cxrlab.labels", "METHODS")),
    ("export T --out O --format BAD", "--format", _allowed("cxrlab.labels.export", "FORMATS")),
    ("convert S O --format BAD", "--format", _allowed("cxrlab.imaging.pipeline", "FORMATS")),
    ("convert S O --full-range BAD", "--full-range", lambda: ("minmax", "percentile")),
    ("deid S O --profile BAD", "--profile", _allowed("cxrlab.imaging.deid_profile", "PROFILES")),
    ("score --truth T --pred P.csv --metric BAD", "--metric", _allowed("cxrlab.metrics.scoring", "METRICS")),
    ("phantom vindr O --layout BAD", "--layout", _allowed("cxrlab.datasets.phantom.vindr", "LAYOUTS")),
    ("nih verify S --check BAD", "--check", _allowed("cxrlab.datasets.nih_archives", "CHECK_MODES")),
    ("train T --images S --out O --labels BAD", "--labels", _allowed("cxrlab.model.data", "LABEL_SETS")),
    ("train T --images S --out O --arch BAD", "--arch", _allowed("cxrlab.model.network", "ARCHITECTURES")),
    (
        "train T --images S --out O --targets BAD",
        "--targets",
        _allowed("cxrlab.model.config", "TARGET_MODES"),
    ),
    ("train T --images S --out O --pool BAD", "--pool", _allowed("cxrlab.model.config", "POOL_CHOICES")),
    (
        "predict R S --out O --checkpoint BAD",
        "--checkpoint",
        _allowed("cxrlab.model.checkpoint", "CHECKPOINTS"),
    ),
    (
        "evaluate R T --images S --out O --checkpoint BAD",
        "--checkpoint",
        _allowed("cxrlab.model.checkpoint", "CHECKPOINTS"),
    ),
    (
        "predict R S --out O --cam-method BAD",
        "--cam-method",
        _allowed("cxrlab.model.predict", "CAM_METHODS"),
    ),
    (
        "evaluate R T --images S --out O --cam-method BAD",
        "--cam-method",
        _allowed("cxrlab.model.predict", "CAM_METHODS"),
    ),
    ("annotate user add R1 --role BAD --db D.db", "--role", _allowed("cxrlab.annotate.models", "ROLES")),
]


@pytest.mark.parametrize(
    ("line", "flag", "allowed"), CASES, ids=[c[0].split(" --")[0] + " " + c[1] for c in CASES]
)
def test_an_unknown_choice_is_a_usage_error_naming_the_flag_and_the_values(
    line: str,
    flag: str,
    allowed: Callable[[], Iterable[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # every file named on the line is relative: none exists, none may appear
    monkeypatch.setattr("sys.stdin", io.StringIO("a password\n"))  # a prompt would read this, not block
    code, out, err = run_cli(line.replace("BAD", "no-such-value").split(), monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {flag} must be one of "), err
    listed = re.search(r"must be one of (.*) \(got 'no-such-value'\)$", lines[0])
    assert listed is not None, err
    assert listed.group(1).split(", ") == [str(v) for v in allowed()]
    assert list(tmp_path.iterdir()) == [], "nothing is written for a usage error"
    assert out == ""


@pytest.mark.parametrize(
    ("line", "flag", "allowed"), CASES, ids=[c[0].split(" --")[0] + " " + c[1] for c in CASES]
)
def test_the_help_lists_every_value(
    line: str,
    flag: str,
    allowed: Callable[[], Iterable[str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The help's own words for an option name the values the check accepts (a new value shows up)."""
    words = line.split()
    command = words[: next(k for k, w in enumerate(words) if w[0].isupper() or w.startswith("--"))]
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run_cli([*command, "-h"], monkeypatch, capsys)
    assert code == 0, err
    text = " ".join(out.split())
    assert flag in text
    for value in allowed():
        assert re.search(rf"(?<![\w-]){re.escape(str(value))}(?![\w-])", text), (
            f"{value} not in the help of {flag}"
        )


def _library_calls() -> list[tuple[str, Callable[[], Any]]]:
    """Each library entry point with a fixed-choice parameter, given an unknown value."""
    from cxrlab.datasets.nih_archives import verify_folder
    from cxrlab.datasets.phantom import make_vindr
    from cxrlab.imaging.deid_profile import ProfileOptions
    from cxrlab.imaging.dicom import DisplayOptions
    from cxrlab.imaging.pipeline import ConvertOptions
    from cxrlab.labels.consensus import consensus
    from cxrlab.labels.export import export
    from cxrlab.metrics.detection import localization_accuracy
    from cxrlab.metrics.scoring import score
    from cxrlab.reports import ReportLabeler, evaluate_openi
    from cxrlab.taxonomy import get_label_set

    empty: Any = None
    return [
        ("label_set", lambda: ReportLabeler("no-such-value")),
        ("differential", lambda: ReportLabeler("nih", differential="no-such-value")),  # type: ignore[arg-type]
        ("uncertain", lambda: ReportLabeler("nih").label("x", uncertain="no-such-value")),  # type: ignore[arg-type]
        ("split", lambda: evaluate_openi("r.csv", "g.csv", split="no-such-value")),
        ("label_set", lambda: get_label_set("no-such-value")),
        ("method", lambda: consensus(empty, empty, method="no-such-value")),
        ("fmt", lambda: export(empty, empty, "no-such-value", "out")),
        ("metric", lambda: score("t", "p", metric="no-such-value")),
        ("format", lambda: ConvertOptions(format="no-such-value")),
        ("full_range", lambda: DisplayOptions(full_range="no-such-value")),  # type: ignore[arg-type]
        ("profile", lambda: ProfileOptions("no-such-value")),
        ("layout", lambda: make_vindr("out", layout="no-such-value")),
        ("mode", lambda: verify_folder("folder", mode="no-such-value")),
        ("overlap", lambda: localization_accuracy(empty, empty, overlap="no-such-value")),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("k", range(len(_library_calls())))
def test_the_library_names_its_parameter(k: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parameter, call = _library_calls()[k]
    with pytest.raises(ParameterError) as raised:
        call()
    assert raised.value.parameter == parameter
    assert raised.value.exit_code == 2
    assert str(raised.value).startswith(f"{parameter} must be one of ")
    assert "--" not in str(raised.value), "the library names parameters, not flags"
    assert list(tmp_path.iterdir()) == []
