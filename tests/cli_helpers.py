"""Run the ``cxrlab`` command in-process as a user would (its exit code, stdout, stderr), and fingerprint
folders, so tests can say "nothing changed" and "nothing was left behind"."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlab.cli.main import main
from cxrlab.tables import BOX_COLUMNS, conform_findings, conform_images, save_tables


def run_cli(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    """``cxrlab ARGS`` through the real entry point (error translation included): (exit code, out, err)."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["cxrlab", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def fingerprint(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder`` (symlinks by their target's text)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + str(path.readlink())
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


LABELS = [
    "Aortic enlargement",
    "Cardiomegaly",
    "Nodule/Mass",
    "Pleural effusion",
    "Lung Opacity",
    "Other lesion",
]


def random_tables(
    folder: Path,
    rng: np.random.Generator,
    *,
    images: int = 8,
    splits: tuple[str, ...] = ("train", "test"),
    readers: tuple[str, ...] = ("R1", "R2", "R3"),
    labels: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A tables folder of ``images`` images with boxes by several readers, saved in ``folder``."""
    labels = labels or LABELS
    ids = [f"{rng.integers(16**8):08x}{k:024x}" for k in range(images)]
    width = rng.integers(500, 3000, images).astype(float)
    height = rng.integers(500, 3000, images).astype(float)
    image_table = conform_images(
        pd.DataFrame(
            {"image_id": ids, "dataset": "vindr", "split": [splits[k % len(splits)] for k in range(images)],
             "patient_id": None, "path": [f"train/{i}.dicom" for i in ids], "width": width, "height": height,
             "sex": None, "age": None, "view": "PA"}
        )
    )  # fmt: skip
    rows = []
    for k, image_id in enumerate(ids):
        for reader in readers:
            for _ in range(rng.integers(0, 4)):
                x0, y0 = rng.uniform(0, width[k] * 0.8), rng.uniform(0, height[k] * 0.8)
                w, h = rng.uniform(5, width[k] - x0), rng.uniform(5, height[k] - y0)
                rows.append((image_id, reader, str(rng.choice(labels)), x0, y0, x0 + w, y0 + h))
            if not any(r[0] == image_id and r[1] == reader for r in rows):
                rows.append((image_id, reader, "No finding", np.nan, np.nan, np.nan, np.nan))
    findings = conform_findings(
        pd.DataFrame(rows, columns=["image_id", "reader", "label", *BOX_COLUMNS]).assign(score=1.0)
    )
    save_tables(folder, image_table, findings)
    return image_table, findings
