"""One writer at a time on a SQLite file, queued on a lock of the service's own instead of in SQLite's
busy handler.

SQLite lets one connection write at a time. A connection that finds the file locked retries in its busy
handler, which sleeps 1, 2, 5, 10, 15, 20... ms between tries: under 20 readers saving at once (threads of two
worker processes), the saves that collide sleep far longer than the write they wait for. Here every write
transaction first takes a lock of the service's own (a thread lock, then ``flock`` on ``FILE-writelock``
across processes, tried every half millisecond), from its first INSERT / UPDATE / DELETE until its commit or
rollback: a waiting save goes on as soon as the previous one commits. Reads never take it (WAL: they go on
beside the writer). Programs that do not take it (the ``sqlite3`` shell) still meet SQLite's own lock and
busy timeout, as before; a write waits at most ``TIMEOUT`` s here too, then fails as "database is locked".
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")
TIMEOUT = 10.0  # seconds, as the busy timeout of the engine's connections
POLL = 0.0005  # seconds between tries for the lock of another process


class WriteLock:
    """A thread lock, then an exclusive ``flock`` on a file shared by every process on the database."""

    def __init__(self, database_file: str) -> None:
        self.path = Path(database_file + "-writelock")
        self._threads = threading.Lock()
        self._fd: int | None = None
        self._pid = 0

    def _file(self) -> int:
        if self._fd is None or self._pid != os.getpid():  # a forked child opens its own (flock is per open)
            self._fd, self._pid = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600), os.getpid()
        return self._fd

    def acquire(self) -> None:
        """Wait at most ``TIMEOUT`` s, as SQLite's own busy timeout did, then fail the write the same way
        ("database is locked"): a long writer elsewhere must not pile up every worker thread behind it."""
        deadline = time.monotonic() + TIMEOUT
        if not self._threads.acquire(timeout=TIMEOUT):
            raise sqlite3.OperationalError("database is locked (another write of this process)")
        try:
            while True:
                try:
                    fcntl.flock(self._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise sqlite3.OperationalError(
                            "database is locked (a write of another process)"
                        ) from None
                    time.sleep(POLL)  # the GIL released; at most POLL s later than the holder's commit
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            fcntl.flock(self._file(), fcntl.LOCK_UN)
        finally:
            self._threads.release()


class LockingConnection(sqlite3.Connection):
    """A sqlite3 connection that gives its :class:`WriteLock` back when its transaction ends."""

    write_lock: WriteLock | None = None
    holding = False

    def before_write(self) -> None:
        if self.write_lock is not None and not self.holding:
            self.write_lock.acquire()
            self.holding = True

    def _give_back(self) -> None:
        if self.holding and self.write_lock is not None:
            self.holding = False
            self.write_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._give_back()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._give_back()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._give_back()


def attach(dbapi_connection: Any, lock: WriteLock) -> None:
    """Give a new connection (made with ``factory=LockingConnection``) the database's lock."""
    if isinstance(dbapi_connection, LockingConnection):
        dbapi_connection.write_lock = lock


def before_cursor_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
    """SQLAlchemy hook: take the lock before the first write statement of a transaction."""
    if statement.lstrip()[:6].upper() in WRITES:
        dbapi = conn.connection.dbapi_connection
        if isinstance(dbapi, LockingConnection):
            dbapi.before_write()
