"""One conversion per output folder at a time: :func:`cxrlab.locking.lock_folder` on ``OUT/.convert.lock``.

Two runs into one folder would redo each other's work and race on the manifest. The lock records who holds
it (pid, host, start time), so the second run can say so; the kernel releases it when its holder dies
(``kill -9`` included), so a stale lock file never blocks a later run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cxrlab.locking import FolderLockedError, lock_folder

__all__ = ["LOCK_NAME", "FolderBusy", "folder_lock"]

LOCK_NAME = ".convert.lock"
FolderBusy = FolderLockedError
"""Another process holds the folder's lock; the message names it."""


@contextmanager
def folder_lock(folder: str | Path, what: str = "convert") -> Iterator[Path]:
    """Hold ``folder/.convert.lock`` for the block, or raise :class:`FolderBusy` naming the holder."""
    with lock_folder(folder, what, name=LOCK_NAME) as path:
        yield path
