"""Atomic file writes: a reader never sees a half-written file under its final name.

The data goes to a temporary file in the same folder (so the rename stays on one file system); on success
``os.replace`` moves it over the final name in one step, and on any exception it is removed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""The permissions ``open()`` would give a new file; ``mkstemp`` makes its files private (0600)."""


@contextmanager
def atomic_path(path: str | Path, suffix: str = ".tmp", *, temp_name: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; it replaces ``path`` when the block succeeds.

    By default the temporary file is made by :func:`tempfile.mkstemp` (``.<name>.<random><suffix>``, so
    concurrent writers never collide) and given the usual permissions before the rename. ``temp_name`` fixes
    the name instead (a file name in the same folder), for callers whose resume logic knows it: a leftover
    from an interrupted run is then simply overwritten. The parent folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if temp_name is None:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    else:
        if Path(temp_name).name != temp_name:
            raise ValueError(f"temp_name must be a plain file name, not {temp_name!r}")
        tmp = path.with_name(temp_name)
    try:
        yield tmp
        if temp_name is None:
            os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, temp_name: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path, temp_name=temp_name) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return path


def write_text_atomic(path: str | Path, text: str, *, temp_name: str | None = None) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically, line ends kept as given; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"), temp_name=temp_name)


@contextmanager
def atomic_paths(paths: Sequence[str | Path]) -> Iterator[list[Path]]:
    """Temporary paths for several files that belong together (two tables and their report).

    Every file is written to its temporary path first; only when the block succeeds do they replace their
    final names, one rename after another, so a failed write (disk full on the last file) leaves every
    final name as it was. Parent folders are created when missing.
    """
    finals = [Path(p) for p in paths]
    temps: list[Path] = []
    try:
        for path in finals:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            os.close(fd)
            temps.append(Path(name))
        yield temps
        for tmp, path in zip(temps, finals, strict=True):
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    except BaseException:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise
