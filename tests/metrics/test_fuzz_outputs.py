"""Fuzz the commands that read user files: mutated submissions, prediction tables, reports, label tables.

A seeded loop, bounded in time (``CXRLAB_FUZZ_SECONDS``, a few seconds by default; ``CXRLAB_FUZZ_SEED``
to replay), mutates one input at a time (random bytes, another encoding, truncation, a huge cell, an
empty file, lines dropped or repeated, bytes flipped) and runs the command on it in-process. Each run must:
exit 0, 1 or 2 with no traceback (an exception escaping the command fails the test with its case); leave
every input unchanged; and leave every output either as the clean run wrote it (on failure) or whole (on
success), with no temporary file beside it.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import fingerprint, random_tables, run_cli

SECONDS = float(os.environ.get("CXRLAB_FUZZ_SECONDS", "6"))
SEED = int(os.environ.get("CXRLAB_FUZZ_SEED", "0"))

REPORT_TEXTS = [
    "FINDINGS: No pneumothorax. Small left pleural effusion.\nIMPRESSION: Possible pneumonia.",
    "Heart size is normal; no focal consolidation but mild atelectasis.",
    "Stable cardiomegaly. Pneumonia cannot be excluded.",
]


# -------------------------------------------------------------------------------------------- mutations
def _mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One random mutation of a file's bytes, and its name (for the failure message)."""
    kind = rng.choice(
        ["random", "utf16", "latin1", "truncate", "huge", "empty", "drop", "repeat", "flip", "nul"]
    )
    lines = data.split(b"\n")
    if kind == "random":
        return rng.randbytes(rng.randint(1, 4000)), kind
    if kind == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16"), kind
    if kind == "latin1":
        return data.decode("utf-8", "replace").replace("e", "\u00e9").encode("latin-1", "replace"), kind
    if kind == "truncate":
        return data[: rng.randint(0, max(len(data) - 1, 0))], kind
    if kind == "huge":
        k = rng.randrange(len(lines))
        filler = rng.choice([b"x", b"1 ", b"0.5 ", b'"', b",", b" ; "]) * rng.randint(1000, 300_000)
        lines[k] = lines[k] + filler
        return b"\n".join(lines), kind
    if kind == "empty":
        return b"", kind
    if kind == "drop" and len(lines) > 1:
        del lines[rng.randrange(len(lines))]
        return b"\n".join(lines), kind
    if kind == "repeat":
        k = rng.randrange(len(lines))
        return b"\n".join(lines[: k + 1] + [lines[k]] * rng.randint(1, 3) + lines[k + 1 :]), kind
    if kind == "nul":
        pos = rng.randint(0, len(data))
        return data[:pos] + b"\x00" * rng.randint(1, 20) + data[pos:], kind
    out = bytearray(data or b"?")
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out), "flip"


# ----------------------------------------------------------------------------------------------- cases
class Workspace:
    """Clean inputs, and each command's outputs from a clean run (what a failed run must leave)."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
        self.root, self.monkeypatch, self.capsys = root, monkeypatch, capsys
        self.clean = root / "clean"
        rng = np.random.default_rng(SEED)
        random_tables(self.clean / "tables", rng, images=10, readers=("R1", "R2", "consensus"))
        self.run(["submission", "make", str(self.clean / "tables"), "--reader", "R1",
                  "--out", str(self.clean / "sub.csv")])  # fmt: skip
        images = pd.read_parquet(self.clean / "tables" / "images.parquet")
        labels = ["Cardiomegaly", "Nodule/Mass", "Aortic enlargement"]
        rows = [(i, "model", lab, *[np.nan] * 4, round(float(rng.random()), 3))
                for i in images["image_id"] for lab in labels]  # fmt: skip
        columns = ["image_id", "reader", "label", "x_min", "y_min", "x_max", "y_max", "score"]
        pd.DataFrame(rows, columns=columns).to_csv(self.clean / "pred.csv", index=False)
        pd.DataFrame({"report_id": range(6), "report": [REPORT_TEXTS[k % 3] for k in range(6)]}).to_csv(
            self.clean / "reports.csv", index=False
        )
        (self.clean / "report.txt").write_text(REPORT_TEXTS[0])
        findings = [REPORT_TEXTS[k % 3] for k in range(6)]
        openi = pd.DataFrame({"uid": range(1, 7), "findings": findings, "impression": ""})
        openi.to_csv(self.clean / "openi.csv", index=False)
        gold = pd.DataFrame(
            {"filename": [f"CXR{i}" for i in range(1, 7)], "Effusion": [1, 0] * 3, "Pneumonia": 0}
        )
        gold.to_csv(self.clean / "gold.csv", index=False)

    def run(self, args: list[str]) -> tuple[int, str, str]:
        return run_cli(args, self.monkeypatch, self.capsys)


COMMANDS = {
    # name: (the input file mutated, the command ({c}: the case folder, {o}: the outputs), its output)
    "score map": ("sub.csv", "score --truth {c}/tables --pred {c}/sub.csv", None),
    "submission check": ("sub.csv", "submission check {c}/sub.csv --truth {c}/tables", None),
    "score auroc": (
        "pred.csv",
        "score --truth {c}/tables --pred {c}/pred.csv --metric auroc --bootstrap 20",
        None,
    ),
    "reports label csv": ("reports.csv", "reports label {c}/reports.csv --out {o}/labels.csv", "labels.csv"),
    "reports label txt": ("report.txt", "reports label {c}/report.txt --out {o}/one.parquet", "one.parquet"),
    "reports evaluate reports": ("openi.csv", "reports evaluate {c}/openi.csv {c}/gold.csv", None),
    "reports evaluate gold": ("gold.csv", "reports evaluate {c}/openi.csv {c}/gold.csv", None),
    "labels consensus": ("tables/findings.parquet", "labels consensus {c}/tables --out {o}/fused", "fused"),
    "export yolo": ("tables/findings.parquet", "export {c}/tables --format yolo --out {o}/yolo", "yolo"),
    "export vindr-csv": (
        "tables/images.parquet",
        "export {c}/tables --format vindr-csv --out {o}/csv",
        "csv",
    ),
}


def _args(command: str, case: Path, out: Path) -> list[str]:
    return [part.format(c=case, o=out) for part in command.split()]


def _state(path: Path | None) -> dict[str, str] | None:
    if path is None or not path.exists():
        return None
    return fingerprint(path) if path.is_dir() else fingerprint(path.parent)


def test_fuzzed_inputs_never_traceback_change_inputs_or_leave_partial_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    w = Workspace(tmp_path, monkeypatch, capsys)
    out = tmp_path / "out"
    out.mkdir()
    commands = COMMANDS
    for name, (_, command, _) in commands.items():  # the clean runs: the outputs a failed run must leave
        code, _, err = w.run(_args(command, w.clean, out))
        assert code == 0, (name, err)
    rng = random.Random(SEED)
    deadline, runs, codes = time.monotonic() + SECONDS, 0, {0: 0, 1: 0, 2: 0}
    while time.monotonic() < deadline or runs < len(commands):
        name = list(commands)[runs % len(commands)] if runs < len(commands) else rng.choice(list(commands))
        target, command, output_name = commands[name]
        output = out / output_name if output_name else None
        case = tmp_path / "case"
        shutil.rmtree(case, ignore_errors=True)
        shutil.copytree(w.clean, case)
        data, mutation = _mutate((case / target).read_bytes(), rng)
        (case / target).write_bytes(data)
        inputs, before = fingerprint(case), _state(output)
        where = f"{name}, mutation {mutation}, run {runs}, seed {SEED}"
        started = time.monotonic()
        try:
            code, _, err = w.run(_args(command, case, out))
            if os.environ.get("CXRLAB_FUZZ_SLOW") and time.monotonic() - started > 3:
                print(f"SLOW {time.monotonic() - started:.1f}s {where} size {len(data)}")
        except Exception as exc:  # an exception escaping the command is the failure looked for
            pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
        assert code in (0, 1, 2), (where, code, err)
        assert "Traceback" not in err, (where, err)
        assert fingerprint(case) == inputs, f"{where}: an input changed"
        after = _state(output)
        if code != 0:
            assert after == before, f"{where}: a failed run changed its output"
            assert err.strip(), f"{where}: exit {code} without a message"
        if output is not None:
            assert not [p for p in output.parent.iterdir() if p.name.startswith(".")], (
                f"{where}: temporary left"
            )
        codes[code] += 1
        runs += 1
    assert runs >= len(commands) and codes[1] + codes[2] > 0
