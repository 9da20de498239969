"""Fuzzing the ingest commands with damaged inputs: phantom NIH archives, NIH and VinDr label CSVs, tables.

A seeded loop, bounded in time (``CXRLAB_FUZZ_SECONDS``, default 4 s; ``CXRLAB_FUZZ_SEED`` picks another
sequence), mutates one input at a time (truncation, flipped bytes, garbage tar headers; dropped columns,
garbage cells, wrong types, empty files, BOMs, duplicate rows) and runs the CLI through its real entry point
(in-process, so a run costs milliseconds, not an interpreter start). Every run must:

- end without a traceback, with exit 0, 1 (data problem) or 2 (usage);
- leave its inputs byte for byte as they were;
- write nothing wrong under a final name: an extracted PNG equals the clean archive's; tables written with
  exit 0 load and validate; a failed run leaves its output folder as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cxrlab.cli.main import main
from cxrlab.tables import load_tables

SECONDS = float(os.environ.get("CXRLAB_FUZZ_SECONDS", "4"))
SEED = int(os.environ.get("CXRLAB_FUZZ_SEED", "20261129"))
MIN_RUNS = 12


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    crash: str | None  # a traceback, when the command raised instead of exiting


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]) -> Outcome:
    monkeypatch.setattr(sys, "argv", ["cxrlab", *args])
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err, None)
    except BaseException:  # exactly what the fuzz test looks for
        captured = capsys.readouterr()
        return Outcome(-1, captured.out, captured.err, traceback.format_exc())
    captured = capsys.readouterr()
    return Outcome(0, captured.out, captured.err, None)


def digests(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------ mutations
def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Truncate, flip bytes, append garbage, empty: the damage a download or a disk does."""
    choice = rng.choice(["truncate", "flip", "flip-many", "garbage-tail", "empty"])
    if choice == "empty" or not data:
        return "empty", b""
    if choice == "truncate":
        cut = rng.randrange(0, len(data))
        return f"truncate at {cut}", data[:cut]
    if choice == "garbage-tail":
        return "garbage tail", data + rng.randbytes(rng.randrange(1, 2048))
    out = bytearray(data)
    flips = 1 if choice == "flip" else rng.randrange(2, 12)
    offsets = [rng.randrange(0, len(out)) for _ in range(flips)]
    for offset in offsets:
        out[offset] ^= rng.randrange(1, 256)
    return f"flip at {offsets}", bytes(out)


def garbage_tar_header(archive: bytes, rng: random.Random) -> tuple[str, bytes]:
    """Overwrite one member header of the tar inside a sound gzip stream (the CRC then matches)."""
    tar = bytearray(gzip.decompress(archive))
    headers = [o for o in range(0, len(tar) - 512, 512) if tar[o + 257 : o + 262] == b"ustar"]
    offset = rng.choice(headers)
    start = offset + rng.randrange(0, 500)
    tar[start : start + 12] = rng.randbytes(12)
    return f"tar header at {offset}", gzip.compress(bytes(tar), mtime=0)


GARBAGE_CELLS = ["", "NaN", "-1", "1e400", "abc", '"', "0x1F", "∞", "\x00", "9" * 40, " ", "00013118_008.png"]


def mutate_csv(text: str, rng: random.Random) -> tuple[str, str]:
    """Damage a CSV the way hand edits and spreadsheets do."""
    lines = text.splitlines()
    choice = rng.choice(
        ["drop-column", "garbage-cells", "wrong-types", "empty", "bom", "duplicates", "header-only"]
    )
    if choice == "empty" or len(lines) < 2:
        return "empty", ""
    if choice == "bom":
        return "BOM", "\ufeff" + text
    if choice == "header-only":
        return "header only", lines[0] + "\n"
    if choice == "duplicates":
        extra = [rng.choice(lines[1:]) for _ in range(rng.randrange(1, 5))]
        return "duplicate rows", "\n".join([*lines, *extra]) + "\n"
    rows = [line.split(",") for line in lines]
    width = max(len(r) for r in rows)
    if choice == "drop-column":
        col = rng.randrange(0, width)
        return f"drop column {col}", "\n".join(",".join(r[:col] + r[col + 1 :]) for r in rows) + "\n"
    for _ in range(rng.randrange(1, 6)):
        r = rng.randrange(1 if choice == "wrong-types" else 0, len(rows))
        c = rng.randrange(0, len(rows[r]))
        rows[r][c] = (
            rng.choice(GARBAGE_CELLS)
            if choice == "garbage-cells"
            else rng.choice(["x", "1.5.2", "-", "yes", "1.5", "2.0", "-3"])
        )
    return choice, "\n".join(",".join(r) for r in rows) + "\n"


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small phantom NIH and VinDr folders, and the clean run's outputs to compare with."""
    from cxrlab.datasets.nih import index_nih, write_index
    from cxrlab.datasets.nih_extract import extract_folder
    from cxrlab.datasets.phantom import make_nih, make_vindr

    base = tmp_path_factory.mktemp("fuzz-clean")
    nih = make_nih(base / "nih", images=6, seed=1, size=64, archives=2).root
    vindr = make_vindr(base / "vindr", images=6, seed=1, size=64).root
    extract_folder(nih, base / "nih-extracted")
    write_index(index_nih(nih), base / "nih-tables")
    return {
        "nih": nih,
        "vindr": vindr,
        "extracted": base / "nih-extracted" / "images",
        "tables": base / "nih-tables",
    }


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------------ cases
Case = Callable[[random.Random, Path, dict[str, Path]], tuple[str, list[list[str]], Path, Path]]
"""-> (what was mutated, the commands to run, the input folder to keep unchanged, the output folder)."""


def case_archive(
    rng: random.Random, work: Path, clean: dict[str, Path]
) -> tuple[str, list[list[str]], Path, Path]:
    raw = _copy(clean["nih"], work / "nih")
    archive = rng.choice(sorted(raw.glob("images_*.tar.gz")))
    data = archive.read_bytes()
    how, bad = garbage_tar_header(data, rng) if rng.random() < 0.3 else mutate_bytes(data, rng)
    archive.write_bytes(bad)
    out = work / "out"
    commands = [
        ["nih", "verify", str(raw), "--md5-file", str(raw / "images_md5.txt"), "--json"],
        ["nih", "extract", str(raw), str(out), "--json"],
    ]
    return f"{archive.name}: {how}", commands, raw, out


def case_nih_csv(
    rng: random.Random, work: Path, clean: dict[str, Path]
) -> tuple[str, list[list[str]], Path, Path]:
    raw = _copy(clean["nih"], work / "nih")
    target = raw / rng.choice(["Data_Entry_2017.csv", "BBox_List_2017.csv", "train_val_list.txt"])
    how, text = mutate_csv(target.read_text(encoding="utf-8"), rng)
    target.write_text(text, encoding="utf-8")
    out = work / "tables"
    return f"{target.name}: {how}", [["nih", "index", str(raw), "--out", str(out), "--json"]], raw, out


def case_vindr_csv(
    rng: random.Random, work: Path, clean: dict[str, Path]
) -> tuple[str, list[list[str]], Path, Path]:
    raw = _copy(clean["vindr"], work / "vindr")
    target = rng.choice(sorted((raw / "annotations").glob("*.csv")))
    how, text = mutate_csv(target.read_text(encoding="utf-8"), rng)
    target.write_text(text, encoding="utf-8")
    out = work / "tables"
    extra = ["--allow-unknown"] if rng.random() < 0.5 else []
    command = ["vindr", "index", str(raw), "--out", str(out), "--no-dicom", "--json", *extra]
    return f"{target.name}: {how}", [command], raw, out


def case_tables(
    rng: random.Random, work: Path, clean: dict[str, Path]
) -> tuple[str, list[list[str]], Path, Path]:
    tables = _copy(clean["tables"], work / "tables")
    how = "clean tables"
    if rng.random() < 0.6:
        target = tables / rng.choice(["images.parquet", "findings.parquet"])
        how, bad = mutate_bytes(target.read_bytes(), rng)
        target.write_bytes(bad)
        how = f"{target.name}: {how}"
    fractions = rng.choice(["0.7,0.1,0.2", "0.7,0.7,0.2", "0.5,0.1,0.2", "a,b,c", "1,0,0", "0.5,0.5", ""])
    out = work / "new"
    commands = [
        ["splits", "check", str(tables), "--json"],
        ["splits", "make", str(tables), "--out", str(out), "--fractions", fractions, "--json"],
    ]
    return f"{how}; fractions {fractions!r}", commands, tables, out


CASES: list[Case] = [case_archive, case_nih_csv, case_vindr_csv, case_tables]


def check_outputs(
    command: list[str], outcome: Outcome, out: Path, before: dict[str, str], clean: dict[str, Path]
) -> str | None:
    """What is wrong with the output folder after ``command``, or None."""
    if command[:2] == ["nih", "extract"]:
        images = out / "images"
        for png in images.glob("*.png") if images.is_dir() else []:
            reference = clean["extracted"] / png.name
            if not reference.is_file() or png.read_bytes() != reference.read_bytes():
                return f"{png.name} under its final name differs from the clean run's"
        return None
    if command[0] == "splits" and command[1] == "check":
        return None
    if outcome.code == 0:
        try:
            load_tables(out)
        except Exception as exc:
            return f"exit 0 but the tables do not load: {exc}"
    elif digests(out) != before:
        return f"exit {outcome.code} but the output folder changed"
    return None


def test_fuzz_ingest_commands(
    clean: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rng = random.Random(SEED)
    failures: list[str] = []
    runs = 0
    deadline = time.monotonic() + SECONDS
    iteration = 0
    while (time.monotonic() < deadline or iteration < MIN_RUNS) and len(failures) < 5:
        case = CASES[iteration % len(CASES)]
        work = tmp_path / f"i{iteration}"
        work.mkdir()
        what, commands, inputs, out = case(rng, work, clean)
        inputs_before = digests(inputs)
        for command in commands:
            before = digests(out)
            outcome = run_cli(monkeypatch, capsys, command)
            runs += 1
            label = f"[{iteration}] {what}: cxrlab {' '.join(command[:2])}"
            if outcome.crash:
                failures.append(f"{label}: raised\n{outcome.crash}")
            elif outcome.code not in (0, 1, 2):
                failures.append(f"{label}: exit {outcome.code}")
            elif "Traceback" in outcome.err:
                failures.append(f"{label}: traceback on stderr\n{outcome.err}")
            elif outcome.code and not (outcome.err.strip() or '"ok": false' in outcome.out):
                failures.append(f"{label}: exit {outcome.code} without a message")
            elif (problem := check_outputs(command, outcome, out, before, clean)) is not None:
                failures.append(f"{label}: {problem}")
        if digests(inputs) != inputs_before:
            failures.append(f"[{iteration}] {what}: the inputs changed")
        shutil.rmtree(work, ignore_errors=True)
        iteration += 1
    assert not failures, f"{len(failures)} failure(s) in {runs} runs (seed {SEED}):\n" + "\n\n".join(failures)
    assert runs >= MIN_RUNS
