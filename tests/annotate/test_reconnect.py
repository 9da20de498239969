"""The service survives a restart of its PostgreSQL server: pooled connections are not pinged on every
request (a round trip each), so the first request after the restart meets a dead connection, and must still
be answered, on a new one, with nothing lost or written twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.annotate.conftest import Api, add_users, missing

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.admin import add_member, create_project
from cxrlab.annotate.importer import import_source
from cxrlab.annotate.models import Annotation, User
from cxrlab.annotate.servers import new_database, postgres_bin, restart_postgres, temporary_postgres


@pytest.fixture
def own_postgres() -> Iterator[str]:
    """A server of this test's own: restarting the shared one would cut the other tests' connections."""
    if postgres_bin() is None:
        missing("PostgreSQL is not installed (Debian package postgresql): PostgreSQL tests skipped")
    with temporary_postgres() as url:
        yield url


def test_a_restarted_postgresql_is_survived_without_an_error(
    own_postgres: str, vindr_phantom: Path, tmp_path: Path
) -> None:
    db = Database(new_database(own_postgres), cache_dir=tmp_path / "cache")
    add_users(db, {"r1": "radiologist", "r2": "radiologist"})
    with db.session() as s:
        project = create_project(s, "p", "vindr", readers=2, test_readers=2)
        for name in ("r1", "r2"):
            add_member(s, project, s.scalars(select(User).where(User.name == name)).one())
        s.commit()
        import_source(s, project, vindr_phantom, split="train")
    app = create_app(db)
    r1, r2 = Api(app).login("r1"), Api(app).login("r2")
    image = r1.get(f"/api/projects/{project.id}/queue").json()["next"]
    first = r1.post(f"/api/images/{image}/annotations", {"label": "Cardiomegaly", "box": [10, 10, 60, 60]})
    assert first.status_code == 201, first.text
    assert db.engine.pool.checkedin() >= 1  # the connection that served it waits in the pool

    restart_postgres(own_postgres)  # every pooled connection is now dead

    # A write (its session lookup meets the dead connection first), a read, and a login: all answered.
    second = r1.patch(f"/api/annotations/{first.json()['id']}", {"version": 1, "box": [12, 10, 60, 60]})
    assert second.status_code == 200, second.text
    assert [m["box"] for m in r1.get(f"/api/images/{image}/annotations").json()] == [[12.0, 10.0, 60.0, 60.0]]
    Api(app).login("r2")
    assert r2.get(f"/api/projects/{project.id}/queue").status_code == 200
    with db.session() as s:  # exactly one mark, at version 2: the retried request wrote once
        assert s.scalar(select(func.count(Annotation.id)).where(Annotation.kind == "read")) == 1
        assert s.scalar(select(Annotation.version).where(Annotation.kind == "read")) == 2
    db.dispose()
