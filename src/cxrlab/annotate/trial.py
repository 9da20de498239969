"""A ready reading project on a folder of images, for browser tests, the viewer benchmark and trials: one
admin, radiologists, an adjudicator, one project, the folder imported (and its queues assigned).

Everything goes through the service's own functions (the same checks and audit as the CLI); the caller
serves the database afterwards (e.g. :func:`cxrlab.annotate.servers.serve_process`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cxrlab.annotate.admin import add_member, create_project, create_user
from cxrlab.annotate.db import Database
from cxrlab.annotate.importer import import_source


@dataclass(frozen=True)
class Trial:
    project_id: int
    admin: str
    readers: tuple[str, ...]
    adjudicator: str
    password: str
    images: int


def reading_trial(
    db: str,
    cache: str | Path,
    source: str | Path,
    password: str,
    *,
    readers: int = 2,
    test_readers: int = 2,
    split: str | None = None,
    labels: str = "vindr",
) -> Trial:
    """Create the users (``boss`` admin, ``r1``.. radiologists, ``adj`` adjudicator) and a project
    ``trial`` with ``source`` imported (``split`` forces one split on every image)."""
    database = Database(db, cache_dir=cache)
    names = tuple(f"r{i + 1}" for i in range(readers))
    try:
        with database.session() as s:
            boss = create_user(s, "boss", "admin", password)
            users = [create_user(s, n, "radiologist", password) for n in names]
            adj = create_user(s, "adj", "adjudicator", password)
            project = create_project(
                s, "trial", labels, readers=1, test_readers=test_readers, actor_id=boss.id
            )
            for user in (*users, adj):
                add_member(s, project, user, actor_id=boss.id)
            s.commit()
            report = import_source(s, project, source, split=split, actor_id=boss.id)
            return Trial(project.id, "boss", names, "adj", password, report.added)
    finally:
        database.dispose()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (no Debian chromium, no playwright), or None."""
    if not Path(CHROMIUM).is_file():
        return f"Debian chromium is not installed ({CHROMIUM}): browser tests skipped"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed (pip install -e '.[test]'): browser tests skipped"
    return None
