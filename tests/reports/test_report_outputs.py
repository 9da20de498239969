"""`reports label` / `reports evaluate` on bad inputs and outputs: refused, one line, nothing written."""

from __future__ import annotations

import errno
import random
import zlib
from pathlib import Path

import pandas as pd
import pytest

from cli_helpers import fingerprint, run_cli

REPORTS = [
    "No pneumothorax. Small left pleural effusion.",
    "Heart size is normal. Possible pneumonia in the left lower lobe.",
    "Lungs are clear.",
]


def _reports_csv(path: Path, rng: random.Random) -> Path:
    texts = [rng.choice(REPORTS) + " " + rng.choice(REPORTS) for _ in range(rng.randint(2, 6))]
    pd.DataFrame({"report_id": range(len(texts)), "report": texts}).to_csv(path, index=False)
    return path


def _png(width: int, rng: random.Random) -> bytes:
    raw = b"".join(b"\x00" + rng.randbytes(width) for _ in range(4))
    header = (width).to_bytes(4, "big") + (4).to_bytes(4, "big") + b"\x08\x00\x00\x00\x00"

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_output_that_is_an_input_is_refused(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reps = _reports_csv(tmp_path / "reps.csv", random.Random(seed))
    before = reps.read_bytes()
    for out in (reps, tmp_path / "." / "reps.csv"):
        code, _, err = run_cli(["reports", "label", str(reps), "--out", str(out)], monkeypatch, capsys)
        assert code == 2 and "--out" in err and "input" in err
    link = tmp_path / "link.csv"
    link.symlink_to(reps)
    code, _, err = run_cli(["reports", "label", str(reps), "--out", str(link)], monkeypatch, capsys)
    assert code == 2 and reps.read_bytes() == before


@pytest.mark.parametrize("seed", range(4))
def test_binary_files_are_not_reports(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Random bytes, or a PNG renamed .txt, used to come out as 'No finding'."""
    rng = random.Random(seed)
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "fine.txt").write_text(rng.choice(REPORTS))
    bad = folder / ("image.txt" if seed % 2 else "noise.txt")
    bad.write_bytes(_png(rng.randint(8, 300), rng) if seed % 2 else rng.randbytes(rng.randint(50, 5000)))
    out = tmp_path / "labels.csv"
    code, _, err = run_cli(["reports", "label", str(folder), "--out", str(out)], monkeypatch, capsys)
    assert code == 1 and str(bad) in err and "not a text file" in err and not out.exists()
    code, _, err = run_cli(["reports", "label", str(bad), "--out", str(out)], monkeypatch, capsys)
    assert code == 1 and str(bad) in err and not out.exists()


@pytest.mark.parametrize("content", ["", "report_id,report\n", "\n\n"])
def test_an_empty_reports_csv_is_an_error(
    tmp_path: Path, content: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text(content)
    code, _, err = run_cli(
        ["reports", "label", str(empty), "--out", str(tmp_path / "o.csv")], monkeypatch, capsys
    )
    assert code == 1 and str(empty) in err and "no report" in err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("bad_value", ["maybe", "", "2", "-1", "yes"])
def test_gold_cells_other_than_0_1_name_file_row_and_column(
    tmp_path: Path, bad_value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(bad_value)
    n = rng.randint(3, 8)
    reports = pd.DataFrame(
        {"uid": range(1, n + 1), "findings": [rng.choice(REPORTS) for _ in range(n)], "impression": ""}
    )
    reports.to_csv(tmp_path / "reports.csv", index=False)
    gold = pd.DataFrame(
        {"filename": [f"CXR{i}" for i in range(1, n + 1)], "Effusion": "1", "Pneumothorax": "0"}
    )
    row = rng.randrange(n)
    gold.loc[row, "Effusion"] = bad_value
    gold.to_csv(tmp_path / "gold.csv", index=False)
    code, _, err = run_cli(
        ["reports", "evaluate", str(tmp_path / "reports.csv"), str(tmp_path / "gold.csv")],
        monkeypatch,
        capsys,
    )
    assert code == 1 and str(tmp_path / "gold.csv") in err
    assert f"row {row + 2}, column Effusion" in err


def test_output_errors_are_one_line_and_leave_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reps = _reports_csv(tmp_path / "reps.csv", random.Random(5))
    blocker = tmp_path / "afile"
    blocker.write_text("keep")
    (tmp_path / "folder.csv").mkdir()
    for out, wanted in ((blocker / "labels.csv", 1), (tmp_path / "folder.csv", 2)):
        code, _, err = run_cli(["reports", "label", str(reps), "--out", str(out)], monkeypatch, capsys)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == wanted and len(lines) == 1 and str(out.parent if wanted == 1 else out) in lines[0], err
    assert blocker.read_text() == "keep"
    before = fingerprint(tmp_path)

    def disk_full(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> None:
        Path(str(path)).write_bytes(b"half a tab")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    code, _, err = run_cli(
        ["reports", "label", str(reps), "--out", str(tmp_path / "labels.csv")], monkeypatch, capsys
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "No space left on device" in lines[0]
    assert fingerprint(tmp_path) == before  # no partial file, no temporary


@pytest.mark.parametrize("seed", [0, 1])
def test_a_row_wider_than_the_header_is_an_error_not_an_index(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """pandas made 20,000 extra commas a 20,000-level index (a minute), or dropped the extra fields."""
    rng = random.Random(seed)
    reps = _reports_csv(tmp_path / "reps.csv", rng)
    lines = reps.read_text().splitlines()
    row = rng.randrange(1, len(lines))
    lines[row] += "," * rng.randint(1, 20_000)
    reps.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(
        ["reports", "label", str(reps), "--out", str(tmp_path / "o.csv")], monkeypatch, capsys
    )
    assert code == 1 and f"{reps}: row {row + 1}:" in err and not (tmp_path / "o.csv").exists()
