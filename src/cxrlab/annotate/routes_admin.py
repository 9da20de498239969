"""Admin routes: users, projects, members, import, progress, live agreement, export, audit log.

Only admins reach them; to anyone else a project answers "not found" as if it did not exist.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from cxrlab.annotate import admin, audit, jobs, tables, workflow
from cxrlab.annotate.app import caller, get_db
from cxrlab.annotate.errors import Forbidden
from cxrlab.annotate.models import Member, User
from cxrlab.annotate.schemas import ImportIn, MemberIn, ProjectIn, UserIn

admin_router = APIRouter(prefix="/api")


def admin_user(user: User = Depends(caller)) -> User:
    if user.role != "admin":
        raise Forbidden("admins only")
    return user


@admin_router.get("/users")
def list_users(_: User = Depends(admin_user), db: Session = Depends(get_db)) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "name": u.name, "role": u.role, "active": u.active}
        for u in db.scalars(select(User).order_by(User.id))
    ]


@admin_router.post("/users", status_code=201)
def add_user(body: UserIn, me: User = Depends(admin_user), db: Session = Depends(get_db)) -> dict[str, Any]:
    user = admin.create_user(db, body.name, body.role, body.password, actor_id=me.id)
    db.commit()
    return {"id": user.id, "name": user.name, "role": user.role}


@admin_router.post("/projects", status_code=201)
def add_project(
    body: ProjectIn, me: User = Depends(admin_user), db: Session = Depends(get_db)
) -> dict[str, Any]:
    project = admin.create_project(
        db,
        body.name,
        body.labels,
        readers=body.readers,
        test_readers=body.test_readers,
        allow_proposals=body.allow_proposals,
        actor_id=me.id,
    )
    admin.add_member(db, project, me, actor_id=me.id)
    db.commit()
    return admin.project_dict(project)


@admin_router.get("/projects/{project_id}/members")
def members(
    project_id: int, me: User = Depends(admin_user), db: Session = Depends(get_db)
) -> list[dict[str, Any]]:
    project = workflow.admin_project(db, me, project_id)
    rows = db.execute(
        select(Member, User)
        .join(User, User.id == Member.user_id)
        .where(Member.project_id == project.id)
        .order_by(Member.id)
    )
    return [{"user": u.name, "role": u.role, "pseudonym": m.pseudonym} for m, u in rows]


@admin_router.post("/projects/{project_id}/members", status_code=201)
def add_member(
    project_id: int, body: MemberIn, me: User = Depends(admin_user), db: Session = Depends(get_db)
) -> dict[str, Any]:
    project = workflow.admin_project(db, me, project_id)
    member = admin.add_member(db, project, admin.find_user(db, body.user), actor_id=me.id)
    db.commit()
    return {"user": body.user, "pseudonym": member.pseudonym}


@admin_router.post("/projects/{project_id}/import", status_code=202)
def import_images(
    project_id: int,
    body: ImportIn,
    request: Request,
    me: User = Depends(admin_user),
    db: Session = Depends(get_db),
) -> dict[str, Any]:
    """Import a folder on the server's disk (the CLI's ``annotate import``) as a job in a process of its own:
    the answer is at once, with the job's ``status_url`` (stage, ``done`` of ``total``, then the summary)."""
    project = workflow.admin_project(db, me, project_id)
    job = jobs.start_import(db, request.app.state.database, project, me, body.model_dump())
    return jobs.job_dict(job)


@admin_router.get("/jobs/{job_id}")
def job_status(job_id: int, _: User = Depends(admin_user), db: Session = Depends(get_db)) -> dict[str, Any]:
    """A job's status, stage and progress; its summary once done, its error in one line if it failed."""
    return jobs.job_dict(jobs.job_for(db, job_id))


@admin_router.get("/projects/{project_id}/progress")
def progress(
    project_id: int, me: User = Depends(admin_user), db: Session = Depends(get_db)
) -> dict[str, Any]:
    return workflow.progress(db, workflow.admin_project(db, me, project_id))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


@admin_router.get("/projects/{project_id}/agreement")
def agreement(
    project_id: int, me: User = Depends(admin_user), db: Session = Depends(get_db)
) -> dict[str, Any]:
    """Live agreement of the finished reads: Fleiss kappa per label, pairwise box F1 and IoU."""
    return _clean(tables.project_agreement(db, workflow.admin_project(db, me, project_id)))


@admin_router.get("/projects/{project_id}/export")
def export(project_id: int, me: User = Depends(admin_user), db: Session = Depends(get_db)) -> dict[str, Any]:
    """The two tables as JSON records (the CLI writes them as Parquet); audited."""
    project = workflow.admin_project(db, me, project_id)
    t = tables.project_tables(db, project)
    audit.record(
        db,
        "export",
        user_id=me.id,
        project_id=project.id,
        subject=f"project:{project.id}",
        after={"images": len(t.images), "findings": len(t.findings), "via": "api"},
    )
    db.commit()
    records = {
        name: df.astype(object).where(df.notna(), None).to_dict(orient="records")
        for name, df in (("images", t.images), ("findings", t.findings))
    }
    return _clean(records)


@admin_router.get("/projects/{project_id}/audit")
def audit_log(
    project_id: int, me: User = Depends(admin_user), db: Session = Depends(get_db)
) -> list[dict[str, Any]]:
    return audit.entries(db, workflow.admin_project(db, me, project_id).id)
