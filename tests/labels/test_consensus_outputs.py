"""`labels consensus` writes its tables folder whole or not at all; `labels agreement` checks its IoU."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import fingerprint, random_tables, run_cli


@pytest.mark.parametrize("seed", [0, 1])
def test_disk_full_on_the_findings_leaves_no_half_tables_folder(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables, out = tmp_path / "tables", tmp_path / "fused"
    random_tables(tables, np.random.default_rng(seed))
    assert run_cli(["labels", "consensus", str(tables), "--out", str(out)], monkeypatch, capsys)[0] == 0
    before_out, before_in = fingerprint(out), fingerprint(tables)
    real = pd.DataFrame.to_parquet

    def full_on_findings(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> None:
        if "reader" in self.columns:  # the findings table, written after the images table
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(self, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full_on_findings)
    code, _, err = run_cli(
        ["labels", "consensus", str(tables), "--out", str(out), "--iou", "0.5"], monkeypatch, capsys
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "No space left on device" in lines[0]
    assert fingerprint(out) == before_out and fingerprint(tables) == before_in
    fresh = tmp_path / "fresh"
    code, _, err = run_cli(["labels", "consensus", str(tables), "--out", str(fresh)], monkeypatch, capsys)
    assert code == 1 and not fresh.exists()  # not an images table without its findings
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_consensus_never_writes_over_its_tables_nor_a_foreign_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = tmp_path / "tables"
    random_tables(tables, np.random.default_rng(2))
    before = fingerprint(tables)
    for out in (tables, tmp_path):
        code, _, err = run_cli(["labels", "consensus", str(tables), "--out", str(out)], monkeypatch, capsys)
        assert code == 2 and "--out" in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("x")
    code, _, err = run_cli(["labels", "consensus", str(tables), "--out", str(foreign)], monkeypatch, capsys)
    assert (
        code == 2
        and "--force" in err
        and fingerprint(foreign) == {"mine.txt": fingerprint(foreign)["mine.txt"]}
    )
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for out in (blocker, blocker / "sub"):
        code, _, err = run_cli(["labels", "consensus", str(tables), "--out", str(out)], monkeypatch, capsys)
        assert code == 1 and str(blocker) in err and len(err.strip().splitlines()) == 1
    assert fingerprint(tables) == before


@pytest.mark.parametrize("iou", ["2", "-1", "nan", "0", "1", "inf"])
def test_agreement_refuses_an_iou_outside_0_1(
    tmp_path: Path, iou: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = tmp_path / "tables"
    random_tables(tables, np.random.default_rng(3))
    code, out, err = run_cli(["labels", "agreement", str(tables), "--iou", iou], monkeypatch, capsys)
    assert code == 2 and err.strip().startswith("error: --iou") and out == ""
    code, _, err = run_cli(
        ["labels", "consensus", str(tables), "--out", str(tmp_path / "c"), "--iou", iou], monkeypatch, capsys
    )
    assert code == 2 and "--iou" in err and not (tmp_path / "c").exists()
