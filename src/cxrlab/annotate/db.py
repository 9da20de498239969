"""Opening the service's database: a SQLite file by default (WAL), PostgreSQL by URL; migrations on open.

The URL comes from ``--db``, else the ``CXRLAB_DB`` environment variable, else ``cxrlab-annotate.db`` in the
current folder. A plain path is taken as a SQLite file; ``postgresql://`` URLs use psycopg 3.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cxrlab.annotate import sqlite_writer
from cxrlab.errors import CxrlabError, ParameterError

DEFAULT_DB_FILE = "cxrlab-annotate.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def resolve_url(db: str | None = None) -> str:
    """The SQLAlchemy URL for ``db`` (a URL or a file path), ``CXRLAB_DB``, or the default SQLite file."""
    raw = db or os.environ.get("CXRLAB_DB") or DEFAULT_DB_FILE
    if "://" not in raw:
        return f"sqlite:///{Path(raw).resolve()}"
    if raw.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + raw.split("://", 1)[1]
    try:
        make_url(raw)
    except ArgumentError as exc:
        raise ParameterError("db", f"is not a database URL or file: {raw} ({exc})") from None
    return raw


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers go on while one writer commits; NORMAL sync keeps every commit across a crash of the
    process (not of the machine's power); foreign keys are off in SQLite unless asked for."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        args: dict[str, Any] = {"check_same_thread": False, "timeout": 10}
        if path and path != ":memory:":
            args["factory"] = sqlite_writer.LockingConnection
            lock = sqlite_writer.WriteLock(str(Path(path).resolve()))
            event.listen(engine := create_engine(url, connect_args=args), "connect", _sqlite_pragmas)
            event.listen(engine, "connect", lambda conn, _record: sqlite_writer.attach(conn, lock))
            event.listen(engine, "before_cursor_execute", sqlite_writer.before_cursor_execute)
            return engine
        engine = create_engine(url, connect_args=args)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No pool_pre_ping: it costs a round trip to the server on every checkout, i.e. on every request. A
    # connection that died meanwhile (server restarted) shows up at the request's first statement, a read,
    # which :func:`reconnecting` runs again once on a new connection. Recycling after an hour keeps idle
    # connections from being cut by timeouts on the way to the server.
    return create_engine(url, pool_size=10, max_overflow=20, pool_recycle=3600)


T = TypeVar("T")


def reconnecting(db: Session, first_read: Callable[[], T]) -> T:
    """Run the first statement of ``db``'s transaction, a read; if the pooled connection under it turned out
    dead (the database server restarted since it was opened), once more on a new connection.

    Safe because nothing was sent in this transaction before (the caller's promise) and the statement
    writes nothing. SQLAlchemy marks every connection of the pool older than the failure stale on the first
    one found dead, so the retry and the requests after it get fresh connections."""
    try:
        return first_read()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        db.rollback()
        return first_read()


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a no-op when it is there already)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Database:
    """An engine, its session factory, and where display renditions are cached."""

    def __init__(self, db: str | None = None, *, cache_dir: str | Path | None = None) -> None:
        self.url = resolve_url(db)
        shown = make_url(self.url).render_as_string(hide_password=True)
        try:
            self.engine = make_engine(self.url)
        except NoSuchModuleError:
            raise ParameterError("db", f"names a database this install cannot open: {shown}") from None
        try:
            migrate(self.engine)
        except OperationalError as exc:
            cause = " ".join(str(exc.orig).split())  # one line: libpq's messages span several
            raise CxrlabError(f"{shown}: cannot open the database ({cause})") from None
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.url)

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()


def default_cache_dir(url: str) -> Path:
    """Beside a SQLite file (``NAME.renditions``); for a server database, ``cxrlab-annotate-cache`` here."""
    if url.startswith("sqlite"):
        path = make_url(url).database
        if path and path != ":memory:":
            return Path(path).with_suffix(".renditions")
    return Path("cxrlab-annotate-cache").resolve()
