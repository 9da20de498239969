"""OS errors in ``nih index``, ``vindr index`` and ``splits make``: one line naming the path, exit 1, and
nothing partial (a full disk on the last file leaves the previous tables as they were)."""

from __future__ import annotations

import errno
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from cxrlab.cli.main import main

NIH_FIXTURE = REPO / "tests" / "fixtures" / "nih"


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The CLI in-process through its real entry point (so a monkeypatched write applies)."""
    monkeypatch.setattr(sys, "argv", ["cxrlab", *args])
    with pytest.raises(SystemExit) as caught:
        main()
    code = caught.value.code
    return (code if isinstance(code, int) else 0 if code is None else 1), capsys.readouterr().err


def _digests(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _commands(tmp_path: Path, vindr: Path) -> dict[str, Callable[[Path], list[str]]]:
    tables = tmp_path / "nih-tables"
    return {
        "nih index": lambda out: ["nih", "index", str(NIH_FIXTURE), "--out", str(out), "--json"],
        "vindr index": lambda out: ["vindr", "index", str(vindr), "--out", str(out), "--no-dicom", "--json"],
        "splits make": lambda out: ["splits", "make", str(tables), "--out", str(out), "--json"],
    }


def _nih_tables(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run(
        monkeypatch, capsys, "nih", "index", str(NIH_FIXTURE), "--out", str(tmp_path / "nih-tables")
    )
    assert code == 0, err


@pytest.fixture(params=["nih index", "vindr index", "splits make"])
def make(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    vindr_phantom: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[[Path], list[str]]:
    """The command line of one writing command, given its output folder (its inputs made ready)."""
    _nih_tables(monkeypatch, capsys, tmp_path)
    return _commands(tmp_path, vindr_phantom)[request.param]


def test_output_is_a_file_or_under_a_file(
    make: Callable[[Path], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("keep me")
    for out in (blocker, blocker / "tables"):
        code, err = _run(monkeypatch, capsys, *make(out))
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1, err
        assert len(lines) == 1 and str(blocker) in lines[0] and "Traceback" not in err, err
    assert blocker.read_text() == "keep me"


def test_disk_full_on_the_last_write_keeps_the_previous_tables_whole(
    make: Callable[[Path], list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "out"
    code, err = _run(monkeypatch, capsys, *make(out))
    assert code == 0, err
    before = _digests(out)
    real = pd.DataFrame.to_parquet
    calls = {"n": 0}

    def full_disk(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the second table file of the run
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_disk)
    code, err = _run(monkeypatch, capsys, *make(out))
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert "No space left on device" in lines[0] and str(out) in lines[0]
    assert _digests(out) == before, "a failed run leaves the previous tables, report included, as they were"


@pytest.mark.parametrize(
    "fractions", ["0.7,0.7,0.2", "0.5,0.1,0.2", "0.7,0.1,0.3", "1.5,-0.3,-0.2", "nan,0.5,0.5"]
)
def test_fractions_that_do_not_sum_to_one_are_a_usage_error(
    fractions: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _nih_tables(monkeypatch, capsys, tmp_path)
    out = tmp_path / "new"
    code, err = _run(
        monkeypatch,
        capsys,
        "splits",
        "make",
        str(tmp_path / "nih-tables"),
        "--out",
        str(out),
        "--fractions",
        fractions,
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert "fractions" in lines[0] and ("sum to" in lines[0] or "between 0 and 1" in lines[0])
    assert not out.exists()


def test_fractions_rounded_to_three_decimals_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _nih_tables(monkeypatch, capsys, tmp_path)
    code, err = _run(
        monkeypatch,
        capsys,
        *["splits", "make", str(tmp_path / "nih-tables"), "--out", str(tmp_path / "new"), "--json"],
        *["--fractions", "0.333,0.333,0.333"],
    )
    assert code == 0, err
