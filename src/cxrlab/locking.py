"""One run per output folder: an advisory lock file that says who holds it.

Two runs writing into one folder at once (two ``nih extract``, two ``convert``) redo each other's work and
race on temporary names. :func:`lock_folder` takes an exclusive, non-blocking ``fcntl.flock`` on a lock
file inside the folder and writes the holder into it (pid, host, start time, what it runs); a second run
gets :class:`FolderLockedError` naming that holder instead of waiting or corrupting anything.

``flock`` locks belong to the open file: the kernel releases them when the holder exits, even on
``kill -9``, so a lock file left behind by a crashed run never blocks the next one (its text is stale
but the lock is free). The file is removed on a clean release; an acquirer checks after locking that the
file it locked is still the one on disk, so a release racing with an acquire cannot give two holders.
Local file systems only: ``flock`` over NFS depends on the server.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError

LOCK_NAME = ".cxrlab.lock"


class FolderLockedError(CxrlabError):
    """Another run holds the folder's lock; ``holder`` is what it wrote (empty when unreadable)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


def read_holder(lock_file: str | Path) -> dict[str, Any]:
    """What the holder of a lock wrote about itself; ``{}`` when the file is absent or unreadable."""
    try:
        data = json.loads(Path(lock_file).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    """``nih extract, pid 123 on host h since 2026-01-01 10:00:00 UTC`` (the parts that are known)."""
    parts = []
    if holder.get("purpose"):
        parts.append(str(holder["purpose"]))
    who = f"pid {holder['pid']}" if holder.get("pid") is not None else "an unknown process"
    if holder.get("host"):
        who += f" on host {holder['host']}"
    if holder.get("started"):
        who += f" since {holder['started']}"
    parts.append(who)
    return ", ".join(parts)


def _holder_record(purpose: str) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "purpose": purpose,
    }


def _wait_for_holder(path: Path, tries: int = 50) -> dict[str, Any]:
    """The holder's record; it stamps the file just after taking the lock, so an empty file is retried."""
    holder: dict[str, Any] = {}
    for _ in range(tries):
        holder = read_holder(path)
        if holder:
            break
        time.sleep(0.01)
    return holder


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _acquire(path: Path, purpose: str) -> int:
    """Open, lock and stamp the lock file; retried when a releasing holder removed it under us."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _wait_for_holder(path)
            raise FolderLockedError(
                f"{path.parent}: in use by another cxrlab run ({describe_holder(holder)}); "
                f"wait for it to finish (the lock is {path.name}, freed when that process exits)",
                holder,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # the previous holder removed the file between our open and our lock: retry
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(_holder_record(purpose)) + "\n").encode("utf-8"))
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def lock_folder(folder: str | Path, purpose: str, *, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (created when missing) for the block; yields the lock file.

    Raises :class:`FolderLockedError` at once, naming the holder, when another process holds it.
    ``purpose`` (``"nih extract"``) tells a second run what it is waiting for.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = _acquire(path, purpose)
    try:
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)  # removed while still locked: a waiting opener retries
        finally:
            os.close(fd)
