"""Imports started through the API run as jobs, each in a process of its own, so that reading the headers of
thousands of files and making their display data neither blocks the service's other requests nor competes
with them for the interpreter of a worker.

``POST /api/projects/{id}/import`` checks the request, records a ``jobs`` row and starts
``python -m cxrlab.annotate.jobs JOB_ID``; ``GET /api/jobs/{id}`` reads its stage and progress (``done`` of
``total``) from the database, so any worker answers it. The job reads every header first, outside any
transaction, then adds the images and tops up the assignments in one short transaction (readers' saves wait
only for that), then makes the display data of each new image. A job whose process has gone without finishing
is reported failed. The job's own output goes nowhere (file names may carry patient data): its one-line error
is in the row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from cxrlab.annotate.audit import record
from cxrlab.annotate.db import Database
from cxrlab.annotate.errors import InvalidInput, NotFound
from cxrlab.annotate.importer import import_source, probe_all, source_files
from cxrlab.annotate.models import Job, Project, User, utcnow
from cxrlab.annotate.renditions import RenditionCache
from cxrlab.tables import IMAGES_FILE

ACTIVE = ("queued", "running")
PROGRESS_EVERY = 0.25  # seconds between progress commits


def start_import(
    db: Session, database: Database, project: Project, user: User, params: dict[str, Any]
) -> Job:
    """Record the job and start its process; a source that is not a folder is refused at once (4xx)."""
    src = Path(params["source"])
    if not src.is_dir():
        raise InvalidInput(f"{src}: not a folder (a folder of DICOMs or PNGs, or a tables folder)")
    if params.get("proposals") and not (src / IMAGES_FILE).is_file():
        raise InvalidInput("proposals need a tables folder (with findings.parquet)")
    job = Job(
        kind="import",
        project_id=project.id,
        user_id=user.id,
        params=json.dumps(params),
        status="queued",
        stage="queued",
        done=0,
        total=0,
    )
    db.add(job)
    db.flush()
    record(db, "import_start", user_id=user.id, project_id=project.id, subject=f"job:{job.id}")
    db.commit()
    env = {
        **os.environ,
        "CXRLAB_DB": database.url,
        "CXRLAB_ANNOTATE_CACHE": str(database.cache_dir),
        "CXRLAB_NO_PROGRESS": "1",
    }
    quiet = subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxrlab.annotate.jobs", str(job.id)],
        env=env,
        stdin=quiet,
        stdout=quiet,
        stderr=quiet,
        start_new_session=True,
    )
    threading.Thread(target=proc.wait, daemon=True, name=f"job-{job.id}").start()  # reaps it, no GIL held
    return job


def job_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "project_id": job.project_id,
        "status": job.status,
        "stage": job.stage,
        "done": job.done,
        "total": job.total,
        "result": None if job.result is None else json.loads(job.result),
        "message": job.message,
        "status_url": f"/api/jobs/{job.id}",
    }


def job_for(db: Session, job_id: int) -> Job:
    """The job, marked failed first if its process is gone while the row says it is active."""
    job = db.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status in ACTIVE and job.pid is not None and not _alive(job.pid):
        db.refresh(job)  # it may have finished between the two reads
        if job.status in ACTIVE:
            _set(db, job, status="failed", message="the job's process ended before finishing")
    return job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _set(db: Session, job: Job, **values: Any) -> None:
    """Update the row and commit at once (a short transaction of its own: the progress others read)."""
    db.execute(update(Job).where(Job.id == job.id).values(updated_at=utcnow(), **values))
    db.commit()
    db.refresh(job)


class Progress:
    """``(done, total)`` callbacks committed at most every ``PROGRESS_EVERY`` seconds, and at the end."""

    def __init__(self, db: Session, job: Job, stage: str) -> None:
        self.db, self.job, self.last = db, job, 0.0
        _set(db, job, stage=stage, done=0, total=0)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY or done == total:
            self.last = now
            _set(self.db, self.job, done=done, total=total)


def run_import(database: Database, job_id: int) -> None:
    """The job's work (in its own process): headers, one transaction of rows, then display data."""
    with database.session() as db:
        job = db.get(Job, job_id)
        if job is None or job.status != "queued":
            return
        _set(db, job, status="running", pid=os.getpid())
        try:
            result = _import(db, database, job)
        except Exception as exc:  # reported in the row, in one line; the process exits 1
            db.rollback()
            _set(db, job, status="failed", message=f"{type(exc).__name__}: {exc}".splitlines()[0][:2000])
            raise
        _set(db, job, status="done", stage="done", result=json.dumps(result))


def _import(db: Session, database: Database, job: Job) -> dict[str, Any]:
    from cxrlab.annotate.pixels import make_ahead

    params = json.loads(job.params)
    project = db.get(Project, job.project_id)
    if project is None:
        raise NotFound(f"no project {job.project_id}")
    src, root = Path(params["source"]), Path(params["images_root"]) if params.get("images_root") else None
    probed = probe_all(source_files(src, root), Progress(db, job, "reading headers"))
    _set(db, job, stage="adding images")
    report = import_source(
        db,
        project,
        src,
        split=params.get("split"),
        images_root=root,
        proposals=bool(params.get("proposals")),
        actor_id=job.user_id,
        probed=probed,
    )
    failures: list[str] = []
    if params.get("renditions", True):
        cache, progress = RenditionCache(database.cache_dir), Progress(db, job, "display data")
        for done, ref in enumerate(report.new_images, 1):
            try:
                make_ahead(cache, ref)
            except Exception as exc:  # one broken file is named in the result, the others go on
                failures.append(f"image {ref.id}: {exc}"[:500])
            progress(done, len(report.new_images))
        cache.close()
    return {**report.summary(), "problem_list": report.problems[:50], "rendition_failures": failures[:50]}


def main(argv: list[str]) -> int:
    database = Database(
        os.environ.get("CXRLAB_DB"), cache_dir=os.environ.get("CXRLAB_ANNOTATE_CACHE") or None
    )
    try:
        run_import(database, int(argv[0]))
    except Exception:
        return 1
    finally:
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
