"""Fuzz: mutated phantom DICOMs (bytes flipped, truncated, element lengths and header values corrupted) in
several transfer syntaxes, through ``convert``, ``dicom inspect`` and ``dicom phi-check`` as a user runs them.

Seeded and bounded in time (``CXRLAB_FUZZ_SECONDS``, default 6 s; ``CXRLAB_FUZZ_SEED``). Asserts: no
traceback, exit codes as documented (0 ok, 1 a data problem, 2 usage), unchanged files converted to exactly
the clean run's bytes, no temporary file left, and every input byte-identical afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import cv2
from imaging_helpers import chest_like, make_dicom

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES

SYNTAXES = [s for s in ("explicit_le", "explicit_be", "deflated_le", "rle", "jpegls_lossless",
                        "j2k_lossless", "htj2k_lossless", "jpeg_lossless_sv1", "jpeg_baseline")
            if s in TRANSFER_SYNTAXES]  # fmt: skip
HEADER_TAGS = [b"\x28\x00\x10\x00", b"\x28\x00\x11\x00", b"\x28\x00\x00\x01", b"\x28\x00\x01\x01",
               b"\x28\x00\x04\x00", b"\x28\x00\x50\x10", b"\x28\x00\x53\x10",
               b"\xe0\x7f\x10\x00"]  # fmt: skip


def _cxrlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True,
                          check=False, env=env, timeout=300)  # fmt: skip


def _originals(folder: Path) -> dict[str, Path]:
    out = {}
    for i, name in enumerate(SYNTAXES):
        eight = name == "jpeg_baseline"
        out[name] = make_dicom(folder, f"{name}.dcm", chest_like(48, 40, bits=8 if eight else 12, seed=i),
                               transfer_syntax=TRANSFER_SYNTAXES[name], bits_stored=8 if eight else 12,
                               bits_allocated=8 if eight else 16, windows=[(2000, 3000)])  # fmt: skip
    return out


def _mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    kind = rng.choice(["flip", "truncate", "length", "value"])
    if kind == "flip":
        for _ in range(rng.randint(1, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
    elif kind == "truncate":
        del buf[rng.randrange(132, len(buf)) :]
    else:
        at = buf.find(rng.choice(HEADER_TAGS), 132)
        if at < 0:
            return _mutate(data, rng)
        if kind == "length":  # explicit VR: 16-bit length at +6 (big endian files keep theirs little here)
            struct.pack_into("<H", buf, at + 6, rng.choice([0, 1, 3, 255, 0xFFFF, rng.randrange(65536)]))
        else:  # an odd value in place: 0, all ones, random
            for k in range(min(2, len(buf) - at - 8)):
                buf[at + 8 + k] = rng.choice([0, 0xFF, rng.randrange(256)])
    return bytes(buf), kind


def _hashes(folder: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_fuzz_commands_on_mutated_dicoms(tmp_path: Path) -> None:
    seconds = float(os.environ.get("CXRLAB_FUZZ_SECONDS", "6"))
    rng = random.Random(int(os.environ.get("CXRLAB_FUZZ_SEED", "20261129")))
    originals = _originals(tmp_path / "orig")
    clean = tmp_path / "clean"
    reference = _cxrlab("convert", str(tmp_path / "orig"), str(clean), "--size", "24", "--json")
    assert reference.returncode == 0, reference.stderr
    deadline = time.monotonic() + seconds
    rounds = 0
    while rounds == 0 or time.monotonic() < deadline:
        rounds += 1
        src = tmp_path / f"src{rounds}"
        kept = rng.sample(SYNTAXES, 2)  # unchanged files beside the mutants
        mutants = {}
        src.mkdir()
        for name in SYNTAXES:
            data = originals[name].read_bytes()
            if name in kept:
                (src / f"{name}.dcm").write_bytes(data)
            else:
                mutated, kind = _mutate(data, rng)
                (src / f"{name}.dcm").write_bytes(mutated)
                mutants[name] = kind
        before = _hashes(src)
        out = tmp_path / f"out{rounds}"
        runs = {"convert": _cxrlab("convert", str(src), str(out), "--size", "24", "--json", "--workers", "2"),
                "phi-check": _cxrlab("dicom", "phi-check", str(src), "--json")}  # fmt: skip
        for name in rng.sample(sorted(mutants), 2):
            runs[f"inspect {name} ({mutants[name]})"] = _cxrlab("dicom", "inspect", str(src / f"{name}.dcm"))
        context = f"round {rounds}, mutants {mutants}"
        for what, run in runs.items():
            assert "Traceback" not in run.stderr and "panicked" not in run.stderr, (what, context, run.stderr)
            assert run.returncode in (0, 1, 2), (what, context, run.returncode)
        assert runs["convert"].returncode in (0, 1) and json.loads(runs["convert"].stdout)["total"] == len(
            SYNTAXES
        )
        for name in kept:
            assert (out / f"{name}.png").read_bytes() == (clean / f"{name}.png").read_bytes(), (name, context)
        for png in out.glob("*.png"):  # whatever converted is a whole image
            assert cv2.imread(str(png), cv2.IMREAD_UNCHANGED).shape == (24, 24), (png.name, context)
        assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
        assert _hashes(src) == before, context
