"""Security of the reading service: login required, ids guessed across readers and projects, CSRF, bad writes
changing nothing, stale writes, throttling, cookies, hashes, and the audit log of every change."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from tests.annotate.conftest import PASSWORD, Api, add_users

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.models import Annotation, AuditEntry, User


@pytest.fixture
def world(sqlite_db: Database, vindr_phantom: Path, nih_pngs: Path) -> dict:
    """Two projects (VinDr, NIH), readers r1 r2 on the first, r3 on the second; r1 has marked an image."""
    add_users(sqlite_db, {"boss": "admin", "r1": "radiologist", "r2": "radiologist", "r3": "radiologist"})
    app = create_app(sqlite_db)
    boss = Api(app).login("boss")
    a = boss.post("/api/projects", {"name": "a", "labels": "vindr", "readers": 1, "test_readers": 1}).json()[
        "id"
    ]
    b = boss.post("/api/projects", {"name": "b", "labels": "nih", "readers": 1}).json()["id"]
    for pid, names in ((a, ("r1", "r2")), (b, ("r3",))):
        for name in names:
            boss.post(f"/api/projects/{pid}/members", {"user": name})
    boss.import_source(a, {"source": str(vindr_phantom), "renditions": False})
    boss.import_source(b, {"source": str(nih_pngs), "renditions": False})
    apis = {n: Api(app).login(n) for n in ("r1", "r2", "r3")}
    own = {
        n: [
            t["image_id"] for t in apis[n].get(f"/api/projects/{a if n != 'r3' else b}/queue").json()["tasks"]
        ]
        for n in apis
    }
    image = own["r1"][0]
    mark = apis["r1"].post(
        f"/api/images/{image}/annotations", {"label": "Cardiomegaly", "box": [10, 10, 60, 60]}
    )
    assert mark.status_code == 201, mark.text
    return {
        "db": sqlite_db,
        "app": app,
        "boss": boss,
        "api": apis,
        "own": own,
        "a": a,
        "b": b,
        "image": image,
        "mark": mark.json(),
    }


def _counts(db: Database) -> tuple[int, int, list]:
    with db.session() as s:
        marks = list(
            s.execute(
                select(
                    Annotation.id, Annotation.label, Annotation.x_min, Annotation.version, Annotation.deleted
                ).order_by(Annotation.id)
            )
        )
        return int(s.scalar(select(func.count(AuditEntry.id)))), len(marks), marks


def test_no_access_without_login(world: dict) -> None:
    anon = Api(world["app"])
    paths = world["app"].openapi()["paths"]
    for path, methods in paths.items():
        if path == "/api/login":
            continue
        url = path.format(
            project_id=world["a"], image_id=world["image"], mark_id=world["mark"]["id"], job_id=1
        )
        for method in methods:
            r = anon.client.request(method.upper(), url, json={}, params={"version": 1})
            assert r.status_code == 401, (method, url, r.status_code)


def test_readers_cannot_reach_other_readers_marks_or_other_projects_images(world: dict) -> None:
    r1, r2, r3 = (world["api"][n] for n in ("r1", "r2", "r3"))
    mark = world["mark"]
    # r2 shares r1's project but not the image (one reader per image): every id guessed answers 404.
    assert world["image"] not in world["own"]["r2"]
    for url in (
        f"/api/images/{world['image']}",
        f"/api/images/{world['image']}/display",
        f"/api/images/{world['image']}/annotations",
        f"/api/images/{world['image']}/adjudication",
    ):
        assert r2.get(url).status_code == 404, url
    assert (
        r2.patch(f"/api/annotations/{mark['id']}", {"version": 1, "label": "Nodule/Mass"}).status_code == 404
    )
    assert r2.delete(f"/api/annotations/{mark['id']}", params={"version": 1}).status_code == 404
    assert r2.post(f"/api/images/{world['image']}/annotations", {"label": "Nodule/Mass"}).status_code == 404
    # r3 (other project): none of project a's images, by any id; not the project either.
    for image_id in world["own"]["r1"] + world["own"]["r2"]:
        assert r3.get(f"/api/images/{image_id}/display").status_code == 404
    for url in (f"/api/projects/{world['a']}", f"/api/projects/{world['a']}/queue"):
        assert r3.get(url).status_code == 404
    assert [p["id"] for p in r3.get("/api/projects").json()] == [world["b"]]
    # r1 never sees r2's marks on a shared image either: the API lists own marks only.
    r2_image = world["own"]["r2"][0]
    r2.post(f"/api/images/{r2_image}/annotations", {"label": "Aortic enlargement", "box": [5, 5, 50, 50]})
    assert r1.get(f"/api/images/{r2_image}/annotations").status_code == 404
    # Readers reach no admin route.
    for url in (
        "/api/users",
        f"/api/projects/{world['a']}/export",
        f"/api/projects/{world['a']}/audit",
        f"/api/projects/{world['a']}/agreement",
    ):
        assert r1.get(url).status_code == 403, url
    assert r1.post("/api/users", {"name": "x", "role": "admin", "password": "12345678"}).status_code == 403


def test_writes_without_the_csrf_token_are_refused_and_change_nothing(world: dict) -> None:
    r1, mark = world["api"]["r1"], world["mark"]
    before = _counts(world["db"])
    assert (
        r1.post(f"/api/images/{world['image']}/annotations", {"label": "Nodule/Mass"}, csrf=False).status_code
        == 403
    )
    assert (
        r1.patch(
            f"/api/annotations/{mark['id']}", {"version": 1, "label": "Nodule/Mass"}, csrf=False
        ).status_code
        == 403
    )
    assert r1.delete(f"/api/annotations/{mark['id']}", csrf=False, params={"version": 1}).status_code == 403
    r1.csrf = "forged" + (r1.csrf or "")
    assert r1.post(f"/api/images/{world['image']}/annotations", {"label": "Nodule/Mass"}).status_code == 403
    # Another user's token is no good either.
    r1.csrf = world["api"]["r2"].csrf
    assert r1.post(f"/api/images/{world['image']}/annotations", {"label": "Nodule/Mass"}).status_code == 403
    assert _counts(world["db"]) == before


BAD_MARKS = [
    {"label": "Nodule/Mass", "box": [-5, 10, 40, 40]},  # negative coordinate
    {"label": "Nodule/Mass", "box": [40, 10, 20, 40]},  # x_max < x_min
    {"label": "Nodule/Mass", "box": [10, 10, 10, 40]},  # zero width
    {"label": "Nodule/Mass", "box": [10, 10, 40, 99999]},  # past the bottom edge
    {"label": "Nodule/Mass", "box": [10, 10, 40]},  # three numbers
    {"label": "Not a finding at all"},  # unknown label
    {"label": "Pneumonia", "box": [10, 10, 40, 40]},  # a global label takes no box
    {"label": "No finding", "box": [10, 10, 40, 40]},
    {"label": "Nodule/Mass", "extra": 1},  # unknown field
]


def test_bad_writes_get_4xx_and_change_nothing(world: dict) -> None:
    r1 = world["api"]["r1"]
    before = _counts(world["db"])
    for body in BAD_MARKS:
        r = r1.post(f"/api/images/{world['image']}/annotations", body)
        assert r.status_code == 422 and r.json()["detail"], (body, r.text)
        r = r1.patch(f"/api/annotations/{world['mark']['id']}", {"version": 1, **body})
        assert r.status_code == 422, (body, r.text)
    consensus = r1.put(f"/api/images/{world['image']}/consensus", {"version": 1, "marks": [BAD_MARKS[0]]})
    assert consensus.status_code in (404, 422)
    assert _counts(world["db"]) == before


def test_a_10_mb_payload_is_refused_and_changes_nothing(world: dict) -> None:
    r1 = world["api"]["r1"]
    before = _counts(world["db"])
    big = {"label": "Nodule/Mass", "box": [10, 10, 40, 40], "pad": "x" * 10_000_000}
    r = r1.post(f"/api/images/{world['image']}/annotations", big)
    assert r.status_code == 413
    # Streamed without a declared length: counted and cut as well.
    chunks = (b"x" * 65536 for _ in range(160))
    r = r1.client.post(
        f"/api/images/{world['image']}/annotations",
        content=chunks,
        headers={"X-CSRF-Token": r1.csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert _counts(world["db"]) == before


def test_stale_writes_get_409_and_the_audit_log_shows_every_change(world: dict) -> None:
    r1, mark = world["api"]["r1"], world["mark"]
    moved = r1.patch(f"/api/annotations/{mark['id']}", {"version": 1, "box": [12, 12, 62, 62]})
    assert moved.status_code == 200 and moved.json()["version"] == 2
    before = _counts(world["db"])
    stale = r1.patch(f"/api/annotations/{mark['id']}", {"version": 1, "label": "Nodule/Mass"})
    assert stale.status_code == 409 and "version 2" in stale.json()["detail"]
    assert r1.delete(f"/api/annotations/{mark['id']}", params={"version": 1}).status_code == 409
    assert _counts(world["db"]) == before
    assert r1.delete(f"/api/annotations/{mark['id']}", params={"version": 2}).status_code == 204
    log = world["boss"].get(f"/api/projects/{world['a']}/audit").json()
    mine = [e for e in log if e["subject"] == f"annotation:{mark['id']}"]
    assert [e["action"] for e in mine] == ["mark_delete", "mark_update", "mark_create"]
    delete, update, create = mine
    assert create["before"] is None and create["after"]["box"] == [10, 10, 60, 60]
    assert update["before"]["box"] == [10, 10, 60, 60] and update["after"]["box"] == [12, 12, 62, 62]
    assert delete["before"]["version"] == 2 and delete["after"] is None
    r1_id = world["api"]["r1"].get("/api/me").json()["user"]["id"]
    assert {e["user_id"] for e in mine} == {r1_id} and all(e["at"] for e in mine)
    actions = {e["action"] for e in log}
    assert {"project_create", "member_add", "import"} <= actions
    world["boss"].get(f"/api/projects/{world['a']}/export")
    assert world["boss"].get(f"/api/projects/{world['a']}/audit").json()[0]["action"] == "export"


def test_login_is_throttled_cookies_are_httponly_samesite_and_passwords_argon2(world: dict) -> None:
    api = Api(world["app"])
    for _ in range(5):
        assert (
            api.client.post("/api/login", json={"name": "r2", "password": "wrong password"}).status_code
            == 401
        )
    assert api.client.post("/api/login", json={"name": "r2", "password": PASSWORD}).status_code == 429
    ok = Api(world["app"]).client.post("/api/login", json={"name": "r1", "password": PASSWORD})
    cookie = ok.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    with world["db"].session() as s:
        hashes = list(s.scalars(select(User.password_hash)))
    assert hashes and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)
    # Logging out ends the session for good.
    r1 = world["api"]["r1"]
    token = r1.client.cookies["cxrlab_session"]
    assert r1.post("/api/logout").status_code == 204
    replay = Api(world["app"])
    replay.client.cookies.set("cxrlab_session", token)
    assert replay.get("/api/me").status_code == 401


def test_bad_writes_of_strangers_get_401_or_403_before_422(world: dict) -> None:
    """The login and CSRF checks come before the body's: a malformed body (bad JSON, wrong fields, a
    missing query parameter) answers 401 without a valid session and 403 without the CSRF token, 422 only
    to its logged-in author; nothing is written in any case."""
    r1, mark = world["api"]["r1"], world["mark"]
    before = _counts(world["db"])
    image_url, mark_url = f"/api/images/{world['image']}/annotations", f"/api/annotations/{mark['id']}"
    malformed = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    anon, stranger = Api(world["app"]), Api(world["app"])
    stranger.client.cookies.set("cxrlab_session", "guessed-or-expired")
    for who in (anon, stranger):
        assert who.client.post(image_url, **malformed).status_code == 401
        assert who.post(image_url, {"label": "Nodule/Mass", "box": [1, 2]}).status_code == 401
        assert who.patch(mark_url, {"box": "x"}).status_code == 401
        assert who.delete(mark_url).status_code == 401  # no version: 401 before the 422
        assert who.put(f"/api/images/{world['image']}/consensus", {"marks": 3}).status_code == 401
        assert who.post("/api/users", {"name": "", "role": "king"}).status_code == 401
    # Logged in, no CSRF token: 403 whatever the body.
    assert r1.client.post(image_url, **malformed).status_code == 403
    assert r1.post(image_url, {"label": "Nodule/Mass", "box": [1, 2]}, csrf=False).status_code == 403
    assert r1.patch(mark_url, {"box": "x"}, csrf=False).status_code == 403
    assert r1.delete(mark_url, csrf=False).status_code == 403
    # Logged in with the token: the body's own 422, with FastAPI's list of problems.
    r = r1.client.post(image_url, headers={"X-CSRF-Token": r1.csrf, **malformed["headers"]}, content=b"{")
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)
    assert r1.patch(mark_url, {"box": "x"}).status_code == 422
    assert r1.delete(mark_url).status_code == 422
    # Login itself is open: its bad bodies answer 422 at once.
    assert anon.client.post("/api/login", json={"name": ""}).status_code == 422
    assert _counts(world["db"]) == before
