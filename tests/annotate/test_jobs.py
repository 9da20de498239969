"""Imports through the API run as jobs in a process of their own: an answer at once, progress to poll, the
display data made ahead, the service answering meanwhile; bad sources refused at once; a job whose process
died is reported failed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import select
from tests.annotate.conftest import Api, add_users, wait_job

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.models import Image, Job


def _project(db: Database) -> tuple[Api, int]:
    add_users(db, {"boss": "admin", "r1": "radiologist"})
    boss = Api(create_app(db)).login("boss")
    pid = boss.post(
        "/api/projects", {"name": "p", "labels": "vindr", "readers": 1, "test_readers": 1}
    ).json()["id"]
    boss.post(f"/api/projects/{pid}/members", {"user": "r1"})
    return boss, pid


def test_import_job_answers_at_once_then_reports_progress_and_makes_display_data(
    database: Database, vindr_phantom: Path
) -> None:
    boss, pid = _project(database)
    r = boss.post(f"/api/projects/{pid}/import", {"source": str(vindr_phantom)})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued" and job["status_url"] == f"/api/jobs/{job['id']}"
    # The service goes on answering while the job works in its own process.
    assert boss.get(f"/api/projects/{pid}/progress").status_code == 200
    seen = []
    while job["status"] in ("queued", "running"):
        job = boss.get(job["status_url"]).json()
        seen.append((job["stage"], job["done"], job["total"]))
    job = wait_job(boss.client, job)
    assert job["result"]["added"] == 12 and job["result"]["problems"] == 0, job
    assert job["result"]["rendition_failures"] == []
    assert all(done <= total for _, done, total in seen), seen
    # Every new image's display data is ready before anyone opens it: rendition, pyramid, raw rows.
    with database.session() as s:
        images = list(s.scalars(select(Image).where(Image.project_id == pid)))
    assert len(images) == 12
    for image in images:
        base = database.cache_dir / str(pid) / str(image.id)
        meta = json.loads(base.with_suffix(".json").read_text())
        png = cv2.imread(str(base.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        raw = np.fromfile(base.with_suffix(".u16"), dtype="<u2").reshape(image.height, image.width)
        assert (meta["width"], meta["height"]) == (image.width, image.height)
        assert np.array_equal(raw, png)
        assert (
            base.with_suffix(".l1.u16").stat().st_size
            == ((image.width + 1) // 2) * ((image.height + 1) // 2) * 2
        )
    audit = [e["action"] for e in boss.get(f"/api/projects/{pid}/audit").json()]
    assert "import_start" in audit and "import" in audit


def test_import_job_refuses_bad_sources_at_once_and_names_failures(
    sqlite_db: Database, tmp_path: Path
) -> None:
    boss, pid = _project(sqlite_db)
    r = boss.post(f"/api/projects/{pid}/import", {"source": str(tmp_path / "absent")})
    assert r.status_code == 422 and "not a folder" in r.json()["detail"]
    r = boss.post(f"/api/projects/{pid}/import", {"source": str(tmp_path), "proposals": True})
    assert r.status_code == 422 and "tables folder" in r.json()["detail"]
    with sqlite_db.session() as s:
        assert s.scalar(select(Job.id)) is None  # nothing recorded for a refused request
    # A broken file is named in the summary; the others are imported.
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.dcm").write_bytes(b"not a dicom file")
    cv2.imwrite(str(folder / "fine.png"), np.full((64, 80), 700, np.uint16))
    r = boss.post(f"/api/projects/{pid}/import", {"source": str(folder)})
    result = wait_job(boss.client, r.json())["result"]
    assert result["added"] == 1 and result["problems"] == 1
    assert "broken.dcm" in result["problem_list"][0]
    # Only admins see jobs.
    assert Api(boss.client.app).login("r1").get(r.json()["status_url"]).status_code == 403


def test_a_job_whose_process_died_is_reported_failed(sqlite_db: Database) -> None:
    boss, pid = _project(sqlite_db)
    with sqlite_db.session() as s:
        job = Job(kind="import", project_id=pid, params="{}", status="running", stage="reading headers")
        job.pid = 2**22 + 12345  # above the kernel's pid_max default: no such process
        s.add(job)
        s.commit()
        job_id = job.id
    job = boss.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "failed" and "ended before finishing" in job["message"]
