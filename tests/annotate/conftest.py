"""Fixtures of the reading service: a database on SQLite and on a real PostgreSQL, API clients, phantoms."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.conftest import IN_CI

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.admin import create_user
from cxrlab.annotate.servers import new_database, postgres_bin, temporary_postgres

PASSWORD = "correct horse battery"


def missing(what: str) -> None:
    """Skip with the reason, or fail under CI=true, where every system package must be installed."""
    if IN_CI:
        pytest.fail(f"{what} (required under CI=true)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    if postgres_bin() is None:
        missing("PostgreSQL is not installed (Debian package postgresql): PostgreSQL tests skipped")
    with temporary_postgres() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A migrated, empty database of either kind, renditions cached under tmp_path."""
    if request.param == "sqlite":
        db = Database(str(tmp_path / "annotate.db"), cache_dir=tmp_path / "cache")
    else:
        server = request.getfixturevalue("postgres_server")
        db = Database(new_database(server), cache_dir=tmp_path / "cache")
    yield db
    db.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(str(tmp_path / "annotate.db"), cache_dir=tmp_path / "cache")
    yield db
    db.dispose()


class Api:
    """One logged-in browser: its own cookie jar, and the CSRF token sent on every write."""

    def __init__(self, app: Any) -> None:
        self.client = TestClient(app)
        self.csrf: str | None = None

    def login(self, name: str, password: str = PASSWORD) -> Api:
        r = self.client.post("/api/login", json={"name": name, "password": password})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]
        return self

    def _headers(self, csrf: bool) -> dict[str, str]:
        return {"X-CSRF-Token": self.csrf} if csrf and self.csrf else {}

    def get(self, path: str, **kw: Any) -> Any:
        return self.client.get(path, **kw)

    def post(self, path: str, json: Any = None, csrf: bool = True, **kw: Any) -> Any:
        return self.client.post(path, json=json, headers=self._headers(csrf), **kw)

    def patch(self, path: str, json: Any = None, csrf: bool = True) -> Any:
        return self.client.patch(path, json=json, headers=self._headers(csrf))

    def put(self, path: str, json: Any = None, csrf: bool = True) -> Any:
        return self.client.put(path, json=json, headers=self._headers(csrf))

    def delete(self, path: str, csrf: bool = True, **kw: Any) -> Any:
        return self.client.delete(path, headers=self._headers(csrf), **kw)

    def import_source(self, project_id: int, body: dict[str, Any]) -> dict[str, Any]:
        """Start an import job and wait for it; its summary (the job's ``result``)."""
        r = self.post(f"/api/projects/{project_id}/import", body)
        assert r.status_code == 202, r.text
        return wait_job(self.client, r.json())["result"]


def wait_job(client: Any, job: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """Poll a job's status URL until it is no longer queued or running; asserts it finished."""
    deadline = time.monotonic() + timeout
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(job["status_url"]).json()
    assert job["status"] == "done", job
    return job


def add_users(db: Database, names: dict[str, str]) -> None:
    with db.session() as s:
        for name, role in names.items():
            create_user(s, name, role, PASSWORD)
        s.commit()


@pytest.fixture
def make_api(database: Database) -> Any:
    app = create_app(database)

    def login(name: str) -> Api:
        return Api(app).login(name)

    return login


def truth_boxes(root: Path) -> dict[str, list[tuple[str, list[float] | None]]]:
    """The phantom's ground truth per image: (label, box or None)."""
    out: dict[str, list[tuple[str, list[float] | None]]] = {}
    with open(root / "phantom_truth.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            box = None if not row["x_min"] else [float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max")]
            out.setdefault(row["image_id"], []).append((row["label"], box))
    return out


@pytest.fixture(scope="session")
def nih_pngs(nih_phantom: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cxrlab.datasets.nih_archives import extract_folder

    out = tmp_path_factory.mktemp("nih-png")
    extract_folder(nih_phantom, out)
    return out
