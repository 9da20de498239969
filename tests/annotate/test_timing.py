"""The per-route timing log: one line per request, the route's template (never the ids, the query or the
body), the status and the server time."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.annotate.conftest import Api, add_users

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.timing import ENV


def test_timing_log_names_routes_not_ids(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "timing.log"
    monkeypatch.setenv(ENV, str(log))
    add_users(sqlite_db, {"boss": "admin"})
    api = Api(create_app(sqlite_db)).login("boss")
    pid = api.post("/api/projects", {"name": "secret-study", "labels": "vindr"}).json()["id"]
    assert api.get(f"/api/projects/{pid}/progress?x=Jane+Doe").status_code == 200
    assert api.get("/api/images/987654").status_code == 404
    lines = [line.split() for line in log.read_text().splitlines()]
    assert [(m, r, s) for m, r, s, *_ in lines] == [
        ("POST", "/api/login", "200"),
        ("POST", "/api/projects", "201"),
        ("GET", "/api/projects/{project_id}/progress", "200"),
        ("GET", "/api/images/{image_id}", "404"),
    ]
    assert all(float(ms) >= 0 and float(cpu) >= 0 for _, _, _, ms, cpu, _ in lines)
    text = log.read_text()
    assert "987654" not in text and "Jane" not in text and "secret" not in text and "boss" not in text


def test_no_timing_log_unless_asked(sqlite_db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    app = create_app(sqlite_db)
    assert not any(m.cls.__name__ == "RouteTiming" for m in app.user_middleware)
