"""Reading and adjudication routes (JSON). Every id in a path is checked against the caller: an image only
through an assignment of the caller's, a mark only the caller's own (see :mod:`cxrlab.annotate.workflow`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from cxrlab.annotate import auth, marks, tables, workflow
from cxrlab.annotate.app import as_caller, caller, get_db, signed_in
from cxrlab.annotate.errors import NotFound
from cxrlab.annotate.models import Image, Member, Project, User
from cxrlab.annotate.renditions import ImageRef
from cxrlab.annotate.schemas import ConsensusIn, LoginIn, MarkIn, MarkPatch

router = APIRouter(prefix="/api")
PREFETCH = 3


IN_MEMORY = 8 * 1024 * 1024
"""Renditions up to this size (every screen level) are read by the worker thread that checked the caller and
sent from memory; larger ones (full resolutions) stream from the file. Bounds the memory per request."""


class RenditionFile(FileResponse):
    """A rendition over ``IN_MEMORY`` sent in 4 MiB chunks: 60x fewer round trips through the event loop than
    the default 64 KiB, which is what costs under 20 concurrent readers."""

    chunk_size = 4 * 1024 * 1024


def user_dict(user: User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "role": user.role}


@router.post("/login")
def login(
    body: LoginIn, response: Response, request: Request, db: Session = Depends(get_db)
) -> dict[str, Any]:
    user, token, csrf = auth.login(db, body.name, body.password)
    response.set_cookie(
        auth.COOKIE,
        token,
        httponly=True,
        samesite="strict",
        path="/",
        secure=request.app.state.secure_cookies,
        max_age=int(auth.SESSION_LIFETIME.total_seconds()),
    )
    return {"user": user_dict(user), "csrf_token": csrf}


@router.post("/logout", status_code=204)
def logout(
    request: Request, response: Response, user: User = Depends(caller), db: Session = Depends(get_db)
) -> None:
    auth.logout(db, request.cookies[auth.COOKIE])
    response.delete_cookie(auth.COOKIE, path="/")


@router.get("/me")
def me(request: Request, db: Session = Depends(get_db)) -> dict[str, Any]:
    """The user and the CSRF token of this session (a reloaded page gets its token back here)."""
    user, session = auth.session_of(db, request.cookies.get(auth.COOKIE))
    return {"user": user_dict(user), "csrf_token": session.csrf_token}


@router.get("/projects")
def my_projects(user: User = Depends(caller), db: Session = Depends(get_db)) -> list[dict[str, Any]]:
    query = select(Project).order_by(Project.id)
    if user.role != "admin":
        query = query.join(Member, Member.project_id == Project.id).where(Member.user_id == user.id)
    out = []
    for project in db.scalars(query):
        tasks = workflow.queue(db, user, project)
        out.append(
            {
                "id": project.id,
                "name": project.name,
                "label_set": project.label_set,
                "pending": sum(t["status"] == "pending" for t in tasks),
                "done": sum(t["status"] == "done" for t in tasks),
            }
        )
    return out


@router.get("/projects/{project_id}")
def project_info(
    project_id: int, user: User = Depends(caller), db: Session = Depends(get_db)
) -> dict[str, Any]:
    from cxrlab.annotate.admin import project_dict

    return project_dict(workflow.project_for(db, user, project_id))


def _ref(image: Image) -> ImageRef:
    return ImageRef(image.id, image.project_id, image.kind, image.source)


def _prefetch_after(
    request: Request, db: Session, project_id: int, tasks: list[dict[str, Any]], image_id: int | None
) -> None:
    """Start making the renditions of the next ``PREFETCH`` pending images after ``image_id``; their rows
    are read only for those not cached yet (usually none: an import makes them ahead)."""
    pending = [t["image_id"] for t in tasks if t["status"] == "pending" and t["image_id"] != image_id]
    if image_id is not None:
        ids = [t["image_id"] for t in tasks]
        later = ids[ids.index(image_id) + 1 :] if image_id in ids else []
        pending = [i for i in later if i in set(pending)] + pending
    cache = request.app.state.cache
    upcoming = [i for i in list(dict.fromkeys(pending))[:PREFETCH] if not cache.ready(project_id, i)]
    if upcoming:
        cache.prefetch([_ref(i) for i in db.scalars(select(Image).where(Image.id.in_(upcoming)))])


@router.get("/projects/{project_id}/queue")
def my_queue(
    project_id: int, request: Request, user: User = Depends(caller), db: Session = Depends(get_db)
) -> dict[str, Any]:
    """The caller's tasks in image order and the next pending one; its renditions start being made."""
    project = workflow.project_for(db, user, project_id)
    tasks = workflow.queue(db, user, project)
    _prefetch_after(request, db, project.id, tasks, None)
    pending = [t for t in tasks if t["status"] == "pending"]
    return {
        "tasks": tasks,
        "next": pending[0]["image_id"] if pending else None,
        "pending": len(pending),
        "done": len(tasks) - len(pending),
    }


@router.get("/images/{image_id}", dependencies=[Depends(signed_in)])
async def image_info(image_id: int, request: Request) -> dict[str, Any]:
    """Size, split, the caller's tasks, and the display data: presets in rendition units and its URLs."""
    return await as_caller(
        request, lambda db, user: _image_info(db, user, image_id, request), image_id=image_id
    )


def _image_info(db: Session, user: User, image_id: int, request: Request) -> dict[str, Any]:
    image, project, _ = workflow.image_access(db, user, image_id)
    _, meta = request.app.state.cache.ensure(_ref(image))
    tasks = workflow.queue(db, user, project)
    _prefetch_after(request, db, project.id, tasks, image.id)
    mine = [t for t in tasks if t["image_id"] == image.id]
    return {
        "id": image.id,
        "image_key": image.image_key,
        "project_id": image.project_id,
        "split": image.split,
        "width": image.width,
        "height": image.height,
        "tasks": mine,
        "display": {
            **meta,
            "png": f"/api/images/{image.id}/display?format=png",
            "raw": f"/api/images/{image.id}/display?format=raw",
            "levels": [
                {**lv, "png": f"/api/images/{image.id}/display?format=png&level={lv['level']}"}
                for lv in meta.get("levels", [])
            ],
        },
    }


@router.get("/images/{image_id}/display", dependencies=[Depends(signed_in)])
async def display(
    image_id: int,
    request: Request,
    format: str = Query("png", pattern="^(png|raw)$"),
    level: int = Query(0, ge=0, le=8),
) -> Response:
    """The 16-bit rendition, level 0 (full resolution) or a smaller pyramid level: a grey PNG, or ``raw``
    little-endian uint16 rows (X-Width / X-Height headers)."""
    cache = request.app.state.cache

    def find(db: Session, user: User) -> tuple[Path, dict[str, Any], bytes | None]:
        ref = _ref(workflow.image_for(db, user, image_id))
        db.close()  # the files are read without holding a database connection
        try:
            png, meta = cache.level(ref, level)
        except KeyError:
            raise NotFound(f"image {image_id} has no display level {level}") from None
        if format == "raw":
            return png, meta, cache.raw(ref, level)[0]
        # Read here, in the thread already running: streaming it would take four more thread hops (stat,
        # open, read, close), each a wait for a thread and then for the event loop under 20 readers.
        return png, meta, png.read_bytes() if png.stat().st_size <= IN_MEMORY else None

    png, meta, data = await as_caller(request, find, image_id=image_id)
    headers = {
        "Cache-Control": "private, max-age=3600",
        "X-Width": str(meta["width"]),
        "X-Height": str(meta["height"]),
    }
    if data is not None:
        media = "application/octet-stream" if format == "raw" else "image/png"
        return Response(data, media_type=media, headers=headers)
    return RenditionFile(png, media_type="image/png", headers=headers)


@router.get("/images/{image_id}/annotations")
def list_marks(
    image_id: int, user: User = Depends(caller), db: Session = Depends(get_db)
) -> list[dict[str, Any]]:
    """The caller's own marks on the image: never another reader's."""
    return marks.own_marks(db, user, image_id)


@router.post("/images/{image_id}/annotations", status_code=201, dependencies=[Depends(signed_in)])
async def add_mark(image_id: int, body: MarkIn, request: Request) -> dict[str, Any]:
    def save(db: Session, user: User) -> dict[str, Any]:
        mark = marks.create_mark(db, user, image_id, body.label, body.box, body.proposal_id)
        db.commit()
        return marks.mark_dict(mark)

    return await as_caller(request, save, image_id=image_id)


@router.patch("/annotations/{mark_id}", dependencies=[Depends(signed_in)])
async def change_mark(mark_id: int, body: MarkPatch, request: Request) -> dict[str, Any]:
    sent = body.model_fields_set

    def save(db: Session, user: User) -> dict[str, Any]:
        mark = marks.update_mark(
            db,
            user,
            mark_id,
            body.version,
            body.label if "label" in sent else marks.UNSET,
            body.box if "box" in sent else marks.UNSET,
        )
        db.commit()
        return marks.mark_dict(mark)

    return await as_caller(request, save, mark_id=mark_id)


@router.delete("/annotations/{mark_id}", status_code=204, dependencies=[Depends(signed_in)])
async def remove_mark(mark_id: int, request: Request, version: int = Query(...)) -> None:
    def save(db: Session, user: User) -> None:
        marks.delete_mark(db, user, mark_id, version)
        db.commit()

    await as_caller(request, save, mark_id=mark_id)


@router.get("/images/{image_id}/proposals")
def list_proposals(
    image_id: int, user: User = Depends(caller), db: Session = Depends(get_db)
) -> list[dict[str, Any]]:
    """Proposals on the image, where the project shows them (never on test images)."""
    return marks.proposals(db, user, image_id)


@router.post("/images/{image_id}/complete", dependencies=[Depends(signed_in)])
async def complete(
    image_id: int, request: Request, kind: str = Query("read", pattern="^(read|adjudicate)$")
) -> dict[str, Any]:
    def save(db: Session, user: User) -> dict[str, Any]:
        task = workflow.complete(db, user, image_id, kind)
        db.commit()
        return {"image_id": image_id, "kind": kind, "status": task.status, "version": task.version}

    return await as_caller(request, save, image_id=image_id)


@router.get("/images/{image_id}/adjudication")
def adjudication(
    image_id: int, user: User = Depends(caller), db: Session = Depends(get_db)
) -> dict[str, Any]:
    """For the image's adjudicator: every reader's marks, the proposed fusion, the current consensus."""
    image = workflow.image_for(db, user, image_id)
    task = workflow.assignment_of(db, user, image_id, "adjudicate")
    if task is None and user.role != "admin":
        raise NotFound(f"no adjudication of yours on image {image_id}")
    project = db.get(Project, image.project_id)
    assert project is not None
    fused = tables.fusion(db, project, image)
    return {
        "image_id": image_id,
        "reads": tables.reads_of(db, project, image),
        **fused,
        "consensus": [marks.mark_dict(a) for a in marks.consensus_marks(db, image_id)],
        "version": None if task is None else task.version,
        "status": None if task is None else task.status,
    }


@router.put("/images/{image_id}/consensus")
def put_consensus(
    image_id: int, body: ConsensusIn, user: User = Depends(caller), db: Session = Depends(get_db)
) -> dict[str, Any]:
    """Accept, edit or reject: the adjudicator sends the whole consensus set of the image."""
    task = marks.save_consensus(
        db, user, image_id, body.version, [m.model_dump() for m in body.marks], body.complete
    )
    db.commit()
    return {
        "image_id": image_id,
        "version": task.version,
        "status": task.status,
        "consensus": [marks.mark_dict(a) for a in marks.consensus_marks(db, image_id)],
    }
