"""The service's own SQLite write lock: writers of several threads and processes all get through, a failed
write gives the lock back, readers never wait for it."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from cxrlab.annotate import Database
from cxrlab.annotate.sqlite_writer import LockingConnection

THREADS, WRITES = 4, 25


def _write_many(path: str, tag: int) -> None:
    db = Database(path)

    def writer(t: int) -> None:
        for i in range(WRITES):
            with db.session() as s:
                s.execute(text("SELECT count(*) FROM counted")).scalar()
                s.execute(text("INSERT INTO counted (who, i) VALUES (:w, :i)"), {"w": tag * 100 + t, "i": i})
                s.execute(text("UPDATE counted SET i = i WHERE who = :w"), {"w": tag * 100 + t})
                s.commit()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.dispose()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(str(tmp_path / "w.db"))
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE counted (id INTEGER PRIMARY KEY, who INT, i INT, UNIQUE (who, i))"))
    return database


def test_writers_of_two_processes_and_many_threads_all_commit(db: Database) -> None:
    path = db.url.removeprefix("sqlite:///")
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_write_many, args=(path, tag)) for tag in (1, 2)]
    for w in workers:
        w.start()
    _write_many(path, 0)
    for w in workers:
        w.join(timeout=120)
        assert w.exitcode == 0
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM counted")).scalar() == 3 * THREADS * WRITES
    assert Path(path + "-writelock").is_file()


def test_a_failed_write_gives_the_lock_back_and_reads_never_wait(db: Database) -> None:
    with db.session() as s:
        s.execute(text("INSERT INTO counted (who, i) VALUES (1, 1)"))
        s.commit()
    with db.session() as s:
        assert isinstance(s.connection().connection.dbapi_connection, LockingConnection)
        with pytest.raises(IntegrityError):
            s.execute(text("INSERT INTO counted (who, i) VALUES (1, 1)"))
        s.rollback()
    done = threading.Event()

    def other_writer() -> None:
        with db.session() as s:
            s.execute(text("INSERT INTO counted (who, i) VALUES (2, 1)"))
            s.commit()
        done.set()

    with db.session() as reader:  # a read in progress holds nothing
        assert reader.execute(text("SELECT count(*) FROM counted")).scalar() == 1
        thread = threading.Thread(target=other_writer)
        thread.start()
        assert done.wait(timeout=20), "a writer waited behind a failed write or a reader"
        thread.join()
    with db.session() as s, pytest.raises(IntegrityError):  # a writer in progress: the next one waits
        s.execute(text("INSERT INTO counted (who, i) VALUES (3, 1)"))
        holder = s.connection().connection.dbapi_connection
        assert holder.holding
        s.execute(text("INSERT INTO counted (who, i) VALUES (3, 1)"))
    assert not holder.holding  # closed without commit: given back
    db.dispose()


def test_a_write_waits_at_most_the_timeout_then_fails_as_sqlite_would(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import os

    from sqlalchemy.exc import OperationalError

    from cxrlab.annotate import sqlite_writer

    monkeypatch.setattr(sqlite_writer, "TIMEOUT", 0.3)
    path = db.url.removeprefix("sqlite:///") + "-writelock"
    with db.session() as s:  # make sure the lock file exists
        s.execute(text("INSERT INTO counted (who, i) VALUES (9, 9)"))
        s.commit()
    other = os.open(path, os.O_RDWR)  # another open of the file: as another process would hold it
    fcntl.flock(other, fcntl.LOCK_EX)
    try:
        with db.session() as s, pytest.raises(OperationalError, match="database is locked"):
            s.execute(text("INSERT INTO counted (who, i) VALUES (9, 10)"))
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    with db.session() as s:  # the lock is free again: the write goes through
        s.execute(text("INSERT INTO counted (who, i) VALUES (9, 11)"))
        s.commit()
        assert s.execute(text("SELECT count(*) FROM counted WHERE who = 9")).scalar() == 2
    db.dispose()
