"""One conversion per output folder at a time: an exclusive ``flock`` on ``OUT/.convert.lock``.

Two runs into one folder would redo each other's work and race on the manifest. The lock file records who
holds it (pid, host, start time), so the second run can say so; the kernel releases a ``flock`` when its
holder dies (``kill -9`` included), so a stale lock file never blocks a later run.
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

from cxrlab.errors import CxrlabError

__all__ = ["LOCK_NAME", "FolderBusy", "folder_lock"]

LOCK_NAME = ".convert.lock"


class FolderBusy(CxrlabError):
    """Another process holds the folder's lock; the message says which."""


def _holder(fd: int) -> str:
    text = b""
    for _ in range(50):  # the holder stamps the file just after taking the lock: give it a moment
        text = os.pread(fd, 4096, 0)
        if text:
            break
        time.sleep(0.01)
    try:
        info = json.loads(text.decode("utf-8") or "{}")
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"pid {info['pid']} on {info['host']}, started {started}"
    except (ValueError, KeyError, OSError, TypeError):
        return "another process"


@contextmanager
def folder_lock(folder: str | Path, what: str = "convert") -> Iterator[Path]:
    """Hold ``folder/.convert.lock`` for the block, or raise :class:`FolderBusy` naming the holder."""
    path = Path(folder) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(
                f"{folder}: another {what} is writing into this folder ({_holder(fd)}); wait for it to end, "
                "or choose another output folder"
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(), "what": what}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        yield path
    finally:
        os.close(fd)  # closing releases the lock; the file stays (unlinking it would race with a waiter)
