"""The audit log: every change and every export, with who, when, and the row before and after.

Entries hold ids, labels, coordinates and user names, never file paths or DICOM header values, so the log
carries no patient information even when file names do.
"""

from __future__ import annotations

import json
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from cxrlab.annotate.models import AuditEntry, utcnow


def record(
    db: Session,
    action: str,
    *,
    user_id: int | None,
    project_id: int | None = None,
    subject: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Write one entry in the caller's transaction: it commits, or rolls back, with the change it describes.

    Sent at once as a plain INSERT (a change audited is one whose ids are known, so nothing pending is
    needed first): the ORM's unit of work for one new row costs more than the statement itself."""
    db.connection().execute(
        insert(cast(Table, AuditEntry.__table__)),
        {
            "at": utcnow(),
            "action": action,
            "user_id": user_id,
            "project_id": project_id,
            "subject": subject,
            "before": None if before is None else json.dumps(before, sort_keys=True, default=str),
            "after": None if after is None else json.dumps(after, sort_keys=True, default=str),
        },
    )


def entries(db: Session, project_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Newest first; ``project_id`` narrows to one project's entries."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(AuditEntry.project_id == project_id)
    return [
        {
            "id": e.id,
            "at": e.at.isoformat() + "Z",
            "user_id": e.user_id,
            "project_id": e.project_id,
            "action": e.action,
            "subject": e.subject,
            "before": None if e.before is None else json.loads(e.before),
            "after": None if e.after is None else json.loads(e.after),
        }
        for e in db.scalars(query)
    ]
