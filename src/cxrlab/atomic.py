"""Atomic file writes: a reader never sees a half-written file under its final name.

The data goes to a temporary file in the same folder (so the rename stays on one file system); on success
``os.replace`` moves it over the final name in one step, and on any exception it is removed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cxrlab.errors import CxrlabError, ParameterError


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


# ------------------------------------------------------------------------------------ outputs vs inputs

OUTPUT_MARKER = ".cxrlab-output.json"
"""The file that marks a folder as one whole output of a cxrlab command (what wrote it, with which settings):
a later run may replace such a folder whole; any other non-empty folder is the user's."""


def refuse_inputs(out: str | Path, inputs: Iterable[str | Path | None], *, parameter: str = "out") -> None:
    """Raise :class:`ParameterError` (naming ``parameter``) when writing ``out`` would touch an input.

    ``out`` may be an input itself (``reports label reps.csv --out reps.csv``), or a folder an input lies in
    (an export that replaces its folder would delete it). Paths are compared resolved, symlinks followed.
    """
    target = Path(out).resolve()
    for item in inputs:
        if item is None:
            continue
        source = Path(item).resolve()
        if target == source or (source.exists() and target.exists() and os.path.samefile(source, target)):
            raise ParameterError(parameter, f"{out} is also an input ({item}); write somewhere else")
        if target in source.parents:
            raise ParameterError(parameter, f"{out} holds the input {item}; write somewhere else")


def read_output_marker(folder: str | Path) -> dict[str, object] | None:
    """The marker of a folder written whole by cxrlab, or None (absent or unreadable)."""
    try:
        data = json.loads((Path(folder) / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@dataclass
class OutputFolder:
    """Where a command writes a folder output: ``work`` while it runs, ``final`` once it succeeded.

    ``whole`` is False when ``--force`` lets it write into a folder that is not a cxrlab output: then only the
    files it writes are replaced and the others stay (and no marker claims the folder).
    """

    final: Path
    work: Path
    whole: bool

    def final_path(self, path: Path) -> Path:
        """Where a file written under ``work`` ends up."""
        return self.final / path.relative_to(self.work)


def _check_output_folder(out: Path, force: bool) -> bool:
    """Whether ``out`` may be replaced whole (absent, empty, or marked); raise when it must not be touched."""
    if out.exists() and not out.is_dir():
        raise CxrlabError(f"{out}: exists and is not a folder")
    if not out.exists() or not any(out.iterdir()) or read_output_marker(out) is not None:
        return True
    if force:
        return False
    raise ParameterError(
        "force",
        f"is off and {out} is not empty and not a cxrlab output: choose a new or empty folder, or turn it "
        "on to write into it (only the files written are replaced)",
    )


@contextmanager
def output_folder(
    out: str | Path,
    settings: dict[str, object],
    *,
    inputs: Iterable[str | Path | None] = (),
    force: bool = False,
) -> Iterator[OutputFolder]:
    """Build a folder output in a temporary folder beside ``out`` and put it in place only when it is whole.

    ``out`` absent, empty or an earlier cxrlab output: the new folder (with a marker holding ``settings``)
    replaces it by two renames, so no file of the earlier output survives (a stale label file of another
    class map), and an error leaves the earlier output as it was. A non-empty folder that is not a cxrlab
    output is refused unless ``force``; with ``force`` the files are moved in one by one, each replacing its
    namesake, and the folder's other files stay. Inputs (and folders holding them) are always refused.
    """
    out = Path(out)
    refuse_inputs(out, inputs)
    whole = _check_output_folder(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        os.chmod(work, 0o777 & ~_umask())
        yield OutputFolder(out, work, whole)
        if whole:
            marker = {"written_by": "cxrlab", **settings}
            (work / OUTPUT_MARKER).write_text(json.dumps(marker, indent=2, default=str) + "\n", "utf-8")
            _swap_in(work, out)
        else:
            _move_files_into(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _swap_in(work: Path, out: Path) -> None:
    """Replace ``out`` (absent, or a folder to discard) with ``work``."""
    if not out.exists():
        os.rename(work, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    os.rename(out, old / out.name)
    try:
        os.rename(work, out)
    except BaseException:
        os.rename(old / out.name, out)  # put the earlier output back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _move_files_into(work: Path, out: Path) -> None:
    for path in sorted(work.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            continue
        target = out / path.relative_to(work)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            raise CxrlabError(f"{target}: a folder is where the output's file goes")
        os.replace(path, target)
