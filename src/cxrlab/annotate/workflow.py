"""Who reads what: the assignment policy, each user's queue, blind access, completion and adjudication.

Policy per split: a ``train`` (or any non-test) image is read by ``project.readers`` radiologists, a ``test``
image by ``project.test_readers``; readers are chosen by least load, then joining order, so the shares stay
even and the result is deterministic. When every read of a test image is done, the adjudicator with the least
load gets it. :func:`assign` tops up after each import and each new member, so readers may join late.

Access: an admin sees every project; anyone else sees a project they are a member of, and an image only
through an assignment of their own on it. A reader sees their own marks only; an adjudicator sees all reads of
an image only once it is theirs to adjudicate. Anything else answers "not found", as an absent id does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.orm import Session, aliased

from cxrlab.annotate import auth
from cxrlab.annotate.audit import record
from cxrlab.annotate.db import reconnecting
from cxrlab.annotate.errors import Conflict, NotFound, Unauthenticated
from cxrlab.annotate.models import Annotation, Assignment, AuthSession, Image, Member, Project, User, utcnow

TEST_SPLIT = "test"
ACCESS = "cxrlab.image_access"
"""Key in ``Session.info`` of the access rows loaded with the session lookup (:func:`caller_with_access`)."""
MARK = "cxrlab.mark"
"""Key in ``Session.info`` of the mark loaded with the session lookup: held there, the session's identity map
(weak references) keeps it, and ``Session.get`` finds it without a query."""


def required_readers(project: Project, split: str) -> int:
    return project.test_readers if split == TEST_SPLIT else project.readers


def members_by_role(db: Session, project: Project, role: str) -> list[User]:
    query = (
        select(User)
        .join(Member, Member.user_id == User.id)
        .where(Member.project_id == project.id, User.role == role, User.active.is_(True))
        .order_by(Member.id)
    )
    return list(db.scalars(query))


def _loads(db: Session, project: Project, kind: str) -> Counter[int]:
    rows = db.execute(
        select(Assignment.user_id, func.count(Assignment.id))
        .join(Image, Image.id == Assignment.image_id)
        .where(Image.project_id == project.id, Assignment.kind == kind)
        .group_by(Assignment.user_id)
    )
    return Counter({user_id: n for user_id, n in rows})


def assign(db: Session, project: Project) -> int:
    """Give every image its missing readers (and finished test images an adjudicator); returns how many."""
    readers = members_by_role(db, project, "radiologist")
    load = _loads(db, project, "read")
    taken: dict[int, set[int]] = {}
    for image_id, user_id in db.execute(
        select(Assignment.image_id, Assignment.user_id)
        .join(Image, Image.id == Assignment.image_id)
        .where(Image.project_id == project.id, Assignment.kind == "read")
    ):
        taken.setdefault(image_id, set()).add(user_id)
    order = {u.id: i for i, u in enumerate(readers)}
    added = 0
    images = db.execute(
        select(Image.id, Image.split).where(Image.project_id == project.id).order_by(Image.position, Image.id)
    )
    for image_id, split in images:
        have = taken.get(image_id, set())
        missing = required_readers(project, split) - len(have)
        if missing <= 0:
            continue
        free = sorted((u for u in order if u not in have), key=lambda u: (load[u], order[u]))
        for user_id in free[:missing]:
            db.add(Assignment(image_id=image_id, user_id=user_id, kind="read", status="pending", version=1))
            load[user_id] += 1
            added += 1
    db.flush()
    for image in db.scalars(select(Image).where(Image.project_id == project.id, Image.split == TEST_SPLIT)):
        added += _maybe_adjudicate(db, project, image)
    return added


def _maybe_adjudicate(db: Session, project: Project, image: Image) -> int:
    """An adjudicator for a test image whose required reads are all done (none yet assigned)."""
    if image.split != TEST_SPLIT:
        return 0
    statuses = list(
        db.scalars(
            select(Assignment.status).where(Assignment.image_id == image.id, Assignment.kind == "read")
        )
    )
    if len(statuses) < project.test_readers or any(s != "done" for s in statuses):
        return 0
    exists = db.scalar(
        select(Assignment.id).where(Assignment.image_id == image.id, Assignment.kind == "adjudicate")
    )
    adjudicators = members_by_role(db, project, "adjudicator")
    if exists is not None or not adjudicators:
        return 0
    load = _loads(db, project, "adjudicate")
    chosen = min(adjudicators, key=lambda u: load[u.id])
    db.add(Assignment(image_id=image.id, user_id=chosen.id, kind="adjudicate", status="pending", version=1))
    db.flush()
    return 1


# ------------------------------------------------------------------------------------------ access


def is_member(db: Session, user: User, project_id: int) -> bool:
    query = select(Member.id).where(Member.project_id == project_id, Member.user_id == user.id)
    return db.scalar(query) is not None


def project_for(db: Session, user: User, project_id: int) -> Project:
    """The project if ``user`` may see it (admin, or member), else :class:`NotFound`."""
    project = db.get(Project, project_id)
    if project is None or (user.role != "admin" and not is_member(db, user, project_id)):
        raise NotFound(f"no project {project_id}")
    return project


def admin_project(db: Session, user: User, project_id: int) -> Project:
    if user.role != "admin":
        raise NotFound(f"no project {project_id}")
    return project_for(db, user, project_id)


def assignment_of(db: Session, user: User, image_id: int, kind: str) -> Assignment | None:
    query = select(Assignment).where(
        Assignment.image_id == image_id, Assignment.user_id == user.id, Assignment.kind == kind
    )
    return db.scalar(query)


def _with_access(query: Select, left: Any, image_on: Any) -> Select:
    """``query`` (which selects a ``User``) plus the image (joined to ``left`` on ``image_on``), its project,
    that user's tasks on it, whether the user is a member of the project, and whether the image is in
    adjudication (which locks test reads)."""
    member = (
        select(Member.id).where(Member.project_id == Image.project_id, Member.user_id == User.id).exists()
    )
    adjudication = aliased(Assignment)
    adjudicating = (
        select(adjudication.id)
        .where(adjudication.image_id == Image.id, adjudication.kind == "adjudicate")
        .exists()
    )
    return (
        query.add_columns(Image, Project, Assignment, member.label("member"), adjudicating.label("locked"))
        .outerjoin_from(left, Image, image_on)
        .outerjoin(Project, Project.id == Image.project_id)
        .outerjoin(Assignment, (Assignment.image_id == Image.id) & (Assignment.user_id == User.id))
    )


@cache
def _access_query(by: str) -> Select:
    """The access rows of the image ``image_id`` for the user ``user_id`` (``by="user"``); with the session
    lookup, of the image ``image_id`` (``"image"``) or of the mark ``mark_id`` and its image (``"mark"``).
    Built once per kind: making such a statement costs more than running it."""
    if by == "user":
        return _with_access(
            select(User.id).where(User.id == bindparam("user_id")), User, Image.id == bindparam("image_id")
        )
    if by == "image":
        return _with_access(auth.session_query(), AuthSession, Image.id == bindparam("image_id"))
    query = auth.session_query().add_columns(Annotation)
    query = query.outerjoin_from(AuthSession, Annotation, Annotation.id == bindparam("mark_id"))
    return _with_access(query, Annotation, Image.id == Annotation.image_id)


Access = tuple[Image | None, Project | None, dict[str, Assignment], bool, bool]


def _access(rows: Sequence[Any]) -> Access:
    """(image, project, tasks by kind, member, in adjudication) from the rows of :func:`_with_access`."""
    if not rows or rows[0].Image is None:
        return None, None, {}, False, False
    tasks = {row.Assignment.kind: row.Assignment for row in rows if row.Assignment is not None}
    return rows[0].Image, rows[0].Project, tasks, bool(rows[0].member), bool(rows[0].locked)


def caller_with_access(
    db: Session, token: str | None, *, image_id: int | None = None, mark_id: int | None = None
) -> tuple[User, AuthSession]:
    """:func:`cxrlab.annotate.auth.session_of` and, in the same statement, what the request touches: an image,
    or a mark (any kind, anyone's: checked by the caller) and its image, with the caller's access rows. One
    round trip to the database instead of two or three on the path of every save; the access rows are kept
    in ``db.info`` for the next :func:`image_access` of this user on this image, which checks them."""
    if not token:
        raise Unauthenticated("log in first")
    query = _access_query("image" if mark_id is None else "mark")
    params = {"token_hash": auth.token_hash(token), "image_id": image_id, "mark_id": mark_id}
    rows = reconnecting(db, lambda: db.execute(query, params).all())
    user, session = auth.valid_session(rows[0] if rows else None)
    access = _access(rows)
    if mark_id is not None:
        db.info[MARK] = rows[0].Annotation
    if access[0] is not None:
        db.info[ACCESS] = (user.id, access[0].id, access)
    return user, session


def image_access(db: Session, user: User, image_id: int) -> tuple[Image, Project, dict[str, Assignment]]:
    """The image, its project and the user's tasks on it by kind, in one query (none when
    :func:`caller_with_access` loaded them already); :class:`NotFound` unless the user has a task on it and
    is a member of its project (an admin sees every image)."""
    return checked_access(db, user, image_id)[:3]  # type: ignore[return-value]


def checked_access(db: Session, user: User, image_id: int) -> Access:
    """:func:`image_access` with whether the image is in adjudication (which locks test reads)."""
    kept = db.info.pop(ACCESS, None)
    if kept is not None and kept[:2] == (user.id, image_id):
        access = kept[2]
    else:
        params = {"user_id": user.id, "image_id": image_id}
        access = _access(db.execute(_access_query("user"), params).all())
    image, _, tasks, member, _ = access
    if image is None or (user.role != "admin" and (not tasks or not member)):
        raise NotFound(f"no image {image_id}")
    return access


def image_for(db: Session, user: User, image_id: int) -> Image:
    """The image if ``user`` has an assignment on it (or is an admin), else :class:`NotFound`."""
    return image_access(db, user, image_id)[0]


# ------------------------------------------------------------------------------------------ queues


def queue(db: Session, user: User, project: Project) -> list[dict[str, Any]]:
    """The user's tasks in the project, in image order: pending and done, reads and adjudications."""
    rows = db.execute(
        select(Assignment, Image.image_key, Image.split)
        .join(Image, Image.id == Assignment.image_id)
        .where(Image.project_id == project.id, Assignment.user_id == user.id)
        .order_by(Image.position, Image.id, Assignment.kind)
    )
    return [
        {
            "assignment_id": a.id,
            "image_id": a.image_id,
            "image_key": key,
            "split": split,
            "kind": a.kind,
            "status": a.status,
            "version": a.version,
        }
        for a, key, split in rows
    ]


def complete(db: Session, user: User, image_id: int, kind: str, version: int | None = None) -> Assignment:
    """Mark the user's read (or adjudication) of an image done; a finished test image goes to adjudication."""
    image, project, tasks = image_access(db, user, image_id)
    task = tasks.get(kind)
    if task is None:
        raise NotFound(f"no {kind} task of yours on image {image_id}")
    bump_assignment(db, task, version if version is not None else task.version, status="done")
    record(
        db,
        f"{kind}_complete",
        user_id=user.id,
        project_id=image.project_id,
        subject=f"image:{image_id}",
        before={"status": "pending"},
        after={"status": "done", "version": task.version},
    )
    if kind == "read":
        _maybe_adjudicate(db, project, image)
    return task


def bump_assignment(db: Session, task: Assignment, version: int, *, status: str | None = None) -> None:
    """Compare-and-set on the assignment's version (409 when another write got there first)."""
    values: dict[str, Any] = {}
    if status is not None:
        values["status"] = status
        values["completed_at"] = utcnow() if status == "done" else None
    if not compare_and_set(db, task, version, values):
        db.refresh(task)
        raise Conflict(f"task {task.id} changed meanwhile (now version {task.version}, you sent {version})")


@cache
def _versioned_update(model: type[Assignment | Annotation], columns: tuple[str, ...]) -> Any:
    """UPDATE of ``columns`` (parameters ``new_COLUMN``) and ``version + 1`` where the id and the version are
    the parameters ``row_id`` and ``expected``, RETURNING the row. Built once per kind of change."""
    new_values: dict[str, Any] = {name: bindparam(f"new_{name}") for name in columns}
    return (
        update(model)
        .where(model.id == bindparam("row_id"), model.version == bindparam("expected"))
        .values(version=model.version + 1, **new_values)
        .returning(model)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


def compare_and_set(db: Session, row: Assignment | Annotation, version: int, values: dict[str, Any]) -> bool:
    """Set ``values`` on ``row`` and bump its version, only where its version is still ``version``; False
    when another write got there first. RETURNING refreshes ``row`` in the same round trip."""
    statement = _versioned_update(type(row), tuple(sorted(values)))
    params = {"row_id": row.id, "expected": version, **{f"new_{k}": v for k, v in values.items()}}
    return len(db.scalars(statement, params).all()) == 1


def progress(db: Session, project: Project) -> dict[str, Any]:
    """Counts of tasks by split, kind and status, and images per split."""
    rows = db.execute(
        select(Image.split, Assignment.kind, Assignment.status, func.count(Assignment.id))
        .join(Image, Image.id == Assignment.image_id)
        .where(Image.project_id == project.id)
        .group_by(Image.split, Assignment.kind, Assignment.status)
    )
    tasks: dict[str, dict[str, dict[str, int]]] = {}
    for split, kind, status, n in rows:
        tasks.setdefault(split, {}).setdefault(kind, {})[status] = n
    images = dict(
        db.execute(
            select(Image.split, func.count(Image.id))
            .where(Image.project_id == project.id)
            .group_by(Image.split)
        ).all()
    )
    return {"images": images, "tasks": tasks}
