"""Marks on images: a reader's blind read, an adjudicator's consensus, proposals; checked, versioned, audited.

Rules of a write (a broken one raises :class:`InvalidInput` before anything changes):
- the label is one of the project's (tolerant spelling through the project's label set);
- a box is four finite numbers inside the image, ``0 <= x_min < x_max <= width`` and likewise for y, on a
  label that may carry a box; ``No finding`` never has one;
- a change names the version it read: the update is a compare-and-set, a stale one gets :class:`Conflict`.
A reader's read is locked once its test image went to adjudication. Proposals are shown only where the project
allows them, never on test images (the blind multi-reader reads); a mark adopted from a proposal keeps the
proposal's provenance and id.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cxrlab.annotate.audit import record
from cxrlab.annotate.errors import Conflict, InvalidInput, NotFound
from cxrlab.annotate.models import Annotation, Assignment, Image, Project, User, utcnow
from cxrlab.annotate.workflow import TEST_SPLIT, assignment_of, checked_access, compare_and_set, image_for
from cxrlab.taxonomy import LABEL_SETS

Box = tuple[float, float, float, float]
UNSET: Any = object()


def canonical_label(project: Project, label: str | None) -> str:
    labels = json.loads(project.labels)
    if label is not None and label in labels:
        return label
    if label is not None and project.label_set in LABEL_SETS:
        found = LABEL_SETS[project.label_set].match(label)
        if found is not None and found in labels:
            return found
    raise InvalidInput(f"unknown label '{label}' for project {project.name}")


def check_mark(
    project: Project, image: Image, label: str | None, box: list[float] | None
) -> tuple[str, Box | None]:
    """The canonical label and the box as floats, or :class:`InvalidInput` naming the problem."""
    name = canonical_label(project, label)
    if box is None:
        return name, None
    if len(box) != 4 or not all(isinstance(v, int | float) and math.isfinite(v) for v in box):
        raise InvalidInput("a box is four finite numbers [x_min, y_min, x_max, y_max]")
    x0, y0, x1, y1 = (float(v) for v in box)
    if name not in json.loads(project.box_labels):
        raise InvalidInput(f"'{name}' is an image-level label: it takes no box")
    if not (x1 > x0 and y1 > y0):
        raise InvalidInput(f"box {box}: needs x_max > x_min and y_max > y_min (positive size)")
    if x0 < 0 or y0 < 0 or x1 > image.width or y1 > image.height:
        raise InvalidInput(f"box {box} is not inside the image ({image.width} x {image.height} px)")
    return name, (x0, y0, x1, y1)


def mark_dict(a: Annotation) -> dict[str, Any]:
    box = None if a.x_min is None else [a.x_min, a.y_min, a.x_max, a.y_max]
    return {
        "id": a.id,
        "image_id": a.image_id,
        "kind": a.kind,
        "label": a.label,
        "box": box,
        "score": a.score,
        "provenance": a.provenance,
        "origin_id": a.origin_id,
        "version": a.version,
    }


def _box_values(box: Box | None) -> dict[str, float | None]:
    x0, y0, x1, y1 = box if box is not None else (None, None, None, None)
    return {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}


def proposals_visible(project: Project, image: Image) -> bool:
    return bool(project.allow_proposals) and image.split != TEST_SPLIT


def _read_task(db: Session, user: User, image_id: int) -> tuple[Image, Project, Assignment]:
    """The image, its project and the user's read of it, which may still change: a test image's reads are
    locked once it went to adjudication."""
    image, project, tasks, _, in_adjudication = checked_access(db, user, image_id)
    task = tasks.get("read")
    if task is None:
        raise NotFound(f"no read of yours on image {image_id}")
    if image.split == TEST_SPLIT and in_adjudication:  # type: ignore[union-attr]
        raise Conflict(f"image {image_id} is in adjudication: reads are locked")
    return image, project, task  # type: ignore[return-value]


def own_marks(db: Session, user: User, image_id: int) -> list[dict[str, Any]]:
    image = image_for(db, user, image_id)
    query = select(Annotation).where(
        Annotation.image_id == image.id,
        Annotation.user_id == user.id,
        Annotation.kind == "read",
        Annotation.deleted.is_(False),
    )
    return [mark_dict(a) for a in db.scalars(query.order_by(Annotation.id))]


def proposals(db: Session, user: User, image_id: int) -> list[dict[str, Any]]:
    image = image_for(db, user, image_id)
    project = db.get(Project, image.project_id)
    assert project is not None
    if user.role != "admin" and not proposals_visible(project, image):
        return []
    query = select(Annotation).where(
        Annotation.image_id == image.id, Annotation.kind == "proposal", Annotation.deleted.is_(False)
    )
    return [mark_dict(a) for a in db.scalars(query.order_by(Annotation.id))]


def create_mark(
    db: Session,
    user: User,
    image_id: int,
    label: str | None,
    box: list[float] | None,
    proposal_id: int | None = None,
) -> Annotation:
    image, project, _ = _read_task(db, user, image_id)
    provenance, origin_id = "reader", None
    if proposal_id is not None:
        source = db.get(Annotation, proposal_id)
        if (
            source is None
            or source.kind != "proposal"
            or source.image_id != image.id
            or source.deleted
            or not proposals_visible(project, image)
        ):
            raise NotFound(f"no proposal {proposal_id} on image {image.id}")
        provenance, origin_id = source.provenance, source.id
        if label is None:
            label = source.label
            box = None if source.x_min is None else [source.x_min, source.y_min, source.x_max, source.y_max]  # type: ignore[list-item]
    name, checked = check_mark(project, image, label, box)
    mark = Annotation(
        image_id=image.id,
        user_id=user.id,
        kind="read",
        label=name,
        score=1.0,
        provenance=provenance,
        origin_id=origin_id,
        version=1,
        deleted=False,
        **_box_values(checked),
    )
    db.add(mark)
    db.flush()
    record(
        db,
        "mark_create",
        user_id=user.id,
        project_id=project.id,
        subject=f"annotation:{mark.id}",
        after=mark_dict(mark),
    )
    return mark


def _own_mark(db: Session, user: User, mark_id: int) -> tuple[Annotation, Image, Project]:
    mark = db.get(Annotation, mark_id)
    if mark is None or mark.deleted or mark.kind != "read" or mark.user_id != user.id:
        raise NotFound(f"no annotation {mark_id}")
    image, project, _ = _read_task(db, user, mark.image_id)
    return mark, image, project


def _compare_and_set(db: Session, mark: Annotation, version: int, values: dict[str, Any]) -> None:
    """The update only where the version is still ``version`` (else :class:`Conflict`)."""
    if not compare_and_set(db, mark, version, {**values, "updated_at": utcnow()}):
        db.refresh(mark)
        raise Conflict(
            f"annotation {mark.id} changed meanwhile (now version {mark.version}, you sent {version})"
        )


def update_mark(
    db: Session,
    user: User,
    mark_id: int,
    version: int,
    label: str | None = UNSET,
    box: list[float] | None = UNSET,
) -> Annotation:
    mark, image, project = _own_mark(db, user, mark_id)
    before = mark_dict(mark)
    new_label = mark.label if label is UNSET or label is None else label
    old_box = None if mark.x_min is None else [mark.x_min, mark.y_min, mark.x_max, mark.y_max]
    new_box = old_box if box is UNSET else box
    name, checked = check_mark(project, image, new_label, new_box)  # type: ignore[arg-type]
    _compare_and_set(db, mark, version, {"label": name, **_box_values(checked)})
    record(
        db,
        "mark_update",
        user_id=user.id,
        project_id=project.id,
        subject=f"annotation:{mark.id}",
        before=before,
        after=mark_dict(mark),
    )
    return mark


def delete_mark(db: Session, user: User, mark_id: int, version: int) -> None:
    mark, _, project = _own_mark(db, user, mark_id)
    before = mark_dict(mark)
    _compare_and_set(db, mark, version, {"deleted": True})
    record(
        db,
        "mark_delete",
        user_id=user.id,
        project_id=project.id,
        subject=f"annotation:{mark.id}",
        before=before,
        after=None,
    )


def add_proposal(db: Session, image: Image, label: str, box: Box | None, source: str, score: float) -> None:
    """A suggestion from a model or a table (import only; shown per :func:`proposals_visible`)."""
    db.add(
        Annotation(
            image_id=image.id,
            user_id=None,
            kind="proposal",
            label=label,
            score=score,
            provenance=f"proposal:{source}"[:128],
            version=1,
            deleted=False,
            **_box_values(box),
        )
    )


def consensus_marks(db: Session, image_id: int) -> list[Annotation]:
    query = select(Annotation).where(
        Annotation.image_id == image_id, Annotation.kind == "consensus", Annotation.deleted.is_(False)
    )
    return list(db.scalars(query.order_by(Annotation.id)))


def save_consensus(
    db: Session, user: User, image_id: int, version: int, marks: list[dict[str, Any]], complete: bool = False
) -> Assignment:
    """Replace the image's consensus set in one transaction (a compare-and-set on the adjudication task)."""
    from cxrlab.annotate.workflow import bump_assignment

    image = image_for(db, user, image_id)
    project = db.get(Project, image.project_id)
    assert project is not None
    task = assignment_of(db, user, image_id, "adjudicate")
    if task is None:
        raise NotFound(f"no adjudication of yours on image {image_id}")
    checked = [
        (*check_mark(project, image, m["label"], m.get("box")), m.get("provenance", "adjudicator"))
        for m in marks
    ]
    before = [mark_dict(a) for a in consensus_marks(db, image_id)]
    bump_assignment(db, task, version, status="done" if complete else None)
    db.execute(
        update(Annotation)
        .where(Annotation.image_id == image_id, Annotation.kind == "consensus", Annotation.deleted.is_(False))
        .values(deleted=True, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    for name, box, provenance in checked:
        db.add(
            Annotation(
                image_id=image_id,
                user_id=user.id,
                kind="consensus",
                label=name,
                score=1.0,
                provenance=provenance,
                version=1,
                deleted=False,
                **_box_values(box),
            )
        )
    db.flush()
    after = [mark_dict(a) for a in consensus_marks(db, image_id)]
    record(
        db,
        "consensus_save",
        user_id=user.id,
        project_id=project.id,
        subject=f"image:{image_id}",
        before={"marks": before},
        after={"marks": after, "complete": complete},
    )
    return task
