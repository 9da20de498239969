"""Pieces both phantom writers share: the result, the output-folder guard, atomic and byte-stable writes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.atomic import write_bytes_atomic
from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.params import check_count

MARKER = ".cxrlab-phantom.json"
"""Written last into a phantom folder: its kind and files, so that a re-run may replace it safely."""
TRUTH_FILE = "phantom_truth.csv"
TRUTH_HEADER = ["image_id", "label", "x_min", "y_min", "x_max", "y_max"]


@dataclass
class PhantomResult:
    """What a phantom writer made: the folder, the image count, every file written and a summary to print."""

    root: Path
    n_images: int
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def check_images_and_size(images: int, size: int, count: str = "images") -> None:
    """The limits every phantom writer puts on how many it writes (``count``: images, patients) and on the
    image ``size``: at least one, and 64-4096 pixels (smaller hides the lesions, larger only costs time)."""
    check_count(images, count, minimum=1)
    if size < 64 or size > 4096:
        raise ParameterError("size", f"must be between 64 and 4096 pixels (got {size})")


def prepare_output(out: Path, kind: str) -> None:
    """Create ``out``, or clear it when it holds a previous phantom of the same ``kind``; refuse the rest.

    Only the files the previous phantom listed in its marker are removed: nothing of the user's is touched.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CxrlabError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        marker = out / MARKER
        previous: dict[str, Any] = {}
        if marker.is_file():
            try:
                previous = json.loads(marker.read_text())
            except (OSError, ValueError):
                previous = {}
        if previous.get("kind") != kind:
            what = f"a {previous['kind']} phantom" if previous.get("kind") else "not a phantom folder"
            raise CxrlabError(
                f"{out}: folder is not empty and is {what}; "
                f"choose an empty or new folder for the {kind} phantom"
            )
        for rel in previous.get("files", []):
            path = out / rel
            if path.is_file() and path.resolve().is_relative_to(out.resolve()):
                path.unlink()
        marker.unlink()
        for sub in sorted((p for p in out.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(sub.iterdir()):
                sub.rmdir()
    out.mkdir(parents=True, exist_ok=True)


def finish_output(out: Path, kind: str, files: Sequence[Path], seed: int, images: int) -> None:
    """Write the marker (sorted, relative names; no time stamps so the folder stays byte-identical)."""
    rel = sorted(str(Path(f).relative_to(out)) for f in files)
    text = json.dumps({"kind": kind, "seed": seed, "images": images, "files": rel}, indent=1) + "\n"
    write_bytes_atomic(out / MARKER, text.encode())


def flattened_weights(counts: dict[str, int]) -> tuple[list[str], np.ndarray]:
    """The labels and sampling probabilities proportional to the square root of their real counts.

    The real balance, flattened so that rare labels still appear in a few dozen images.
    """
    labels = list(counts)
    weights = np.sqrt(np.array([counts[k] for k in labels], dtype=float))
    return labels, weights / weights.sum()


def write_csv(path: Path, header: str | Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV with ``\\n`` line ends; ``header`` as a raw line (quirky headers) or a list of names."""
    buf = io.StringIO()
    buf.write((header if isinstance(header, str) else ",".join(header)) + "\n")
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return write_bytes_atomic(path, buf.getvalue().encode())


def fmt_coord(value: float | None, decimals: int = 2) -> str:
    """A box coordinate as the PhysioNet CSVs write it: a float with a decimal point, empty when absent."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return repr(round(float(value), decimals))


def truth_rows(
    image_id: str, truth: Sequence[tuple[str, tuple[float, float, float, float] | None]]
) -> list[list[str]]:
    """Rows of ``phantom_truth.csv`` for one image (``No finding`` when it has none)."""
    if not truth:
        return [[image_id, "No finding", "", "", "", ""]]
    rows = []
    for label, box in truth:
        coords = ["", "", "", ""] if box is None else [fmt_coord(v) for v in box]
        rows.append([image_id, label, *coords])
    return rows
