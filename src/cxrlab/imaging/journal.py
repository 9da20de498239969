"""What makes a long run over many files resumable: its journal and its settings file.

A run appends one JSON line per finished file to its journal and flushes it at once, so a crash or a
``kill -9`` loses nothing; a re-run reads the journal, skips each file whose record says ``ok`` for an
unchanged source (same size and modification time), and does the rest. The settings file records the
options of the run: a re-run into the same folder with other options is refused instead of mixing two kinds
of output.
Used by ``convert`` and ``deid``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cxrlab.atomic import write_text_atomic

__all__ = ["changed_settings", "read_journal", "source_unchanged", "write_settings"]

Record = dict[str, Any]


def read_journal(path: Path) -> dict[str, Record]:
    """The latest record per task id (``image_id``); a line cut short by a crash is ignored."""
    records: dict[str, Record] = {}
    if not path.is_file():
        return records
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and "image_id" in record:
                records[str(record["image_id"])] = record
    return records


def source_unchanged(record: Record, source: str | Path) -> bool:
    """Whether ``source`` still has the size and modification time its journal record saw."""
    try:
        stat = Path(source).stat()
    except OSError:
        return False
    return record.get("source_bytes") == stat.st_size and record.get("source_mtime_ns") == stat.st_mtime_ns


def changed_settings(path: Path, settings: dict[str, Any]) -> list[str]:
    """The keys whose values differ from the settings recorded at ``path``; [] when none are recorded (or the
    file is unreadable, as after a crash while writing it) or when they are the same."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(previous, dict) or previous == settings:
        return []
    return sorted(k for k in settings if previous.get(k) != settings[k])


def write_settings(path: Path, settings: dict[str, Any]) -> None:
    write_text_atomic(
        path, json.dumps(settings, indent=2, sort_keys=True) + "\n", temp_name=f".{path.name}.tmp"
    )
