"""The viewer's display data (GET /api/images/{id}/pixels): the same rows as the service's raw display at
level 0, 2 x 2 means at level 1 (odd sizes rounded up), and the same access rule as every image route."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from tests.annotate.conftest import PASSWORD, Api

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.trial import reading_trial


def _pixels(response) -> np.ndarray:
    h, w = int(response.headers["X-Height"]), int(response.headers["X-Width"])
    return np.frombuffer(response.content, dtype="<u2").reshape(h, w)


def test_levels_equal_the_rendition_and_access_is_checked(vindr_phantom: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    trial = reading_trial(
        db, tmp_path / "cache", vindr_phantom / "train", PASSWORD, readers=2, test_readers=1
    )
    database = Database(db, cache_dir=tmp_path / "cache")
    app = create_app(database)
    r1, r2 = Api(app).login("r1"), Api(app).login("r2")
    tasks = r1.get(f"/api/projects/{trial.project_id}/queue").json()["tasks"]
    image = tasks[0]["image_id"]
    full = _pixels(r1.get(f"/api/images/{image}/pixels"))
    raw = _pixels(r1.get(f"/api/images/{image}/display", params={"format": "raw"}))
    assert np.array_equal(full, raw) and full.std() > 0
    half = _pixels(r1.get(f"/api/images/{image}/pixels", params={"level": 1}))
    h, w = full.shape
    assert half.shape == ((h + 1) // 2, (w + 1) // 2)
    even = full[: h // 2 * 2, : w // 2 * 2].astype(float)
    means = (even[0::2, 0::2] + even[1::2, 0::2] + even[0::2, 1::2] + even[1::2, 1::2]) / 4
    assert np.abs(half[: h // 2, : w // 2] - means).max() <= 1
    assert r1.get(f"/api/images/{image}/pixels", params={"level": 2}).status_code == 422
    # Another reader's image (readers=1 on train: each image has one reader) and no login: refused.
    theirs = {t["image_id"] for t in r2.get(f"/api/projects/{trial.project_id}/queue").json()["tasks"]}
    assert image not in theirs
    assert r2.get(f"/api/images/{image}/pixels").status_code == 404
    assert TestClient(app).get(f"/api/images/{image}/pixels").status_code == 401
    database.dispose()
