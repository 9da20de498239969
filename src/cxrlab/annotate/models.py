"""The reading service's tables (SQLAlchemy 2 ORM); the schema itself is created by the Alembic migrations.

Images are referenced by ``source`` (a path or a DICOMweb instance URL), never copied or modified. Each
reader's marks are rows of ``annotations`` (``kind='read'``); the adjudicated labels are ``kind='consensus'``
rows of the adjudicator; model or table findings shown as suggestions are ``kind='proposal'`` rows without a
user. ``version`` on annotations and assignments is the optimistic lock: a write names the version it read.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ROLES = ("admin", "radiologist", "adjudicator")
KINDS = ("read", "consensus", "proposal")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    label_set: Mapped[str] = mapped_column(String(64))
    labels: Mapped[str] = mapped_column(Text)
    """JSON list of the allowed labels, in display order."""
    box_labels: Mapped[str] = mapped_column(Text)
    """JSON list of the labels that may carry a box (all of them when the label set has no local labels)."""
    readers: Mapped[int] = mapped_column(Integer, default=3)
    test_readers: Mapped[int] = mapped_column(Integer, default=5)
    allow_proposals: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Member(Base):
    """A user's place in a project; ``pseudonym`` (R1..Rn) is the reader id written by the export."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("project_id", "user_id"),
        UniqueConstraint("project_id", "pseudonym"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    pseudonym: Mapped[str] = mapped_column(String(16))


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "image_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    image_key: Mapped[str] = mapped_column(String(128))
    """The dataset's image id (file stem, NIH file name, SOP Instance UID): the export's ``image_id``."""
    split: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(Text)
    """Absolute path of the original file (a PACS import keeps its retrieved copy here)."""
    origin: Mapped[str] = mapped_column(Text, default="")
    """Where it came from: ``folder``, ``tables``, or the DICOMweb URL of the study."""
    kind: Mapped[str] = mapped_column(String(8))
    """``dicom`` or ``png``."""
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Assignment(Base):
    """One reading task: ``kind='read'`` (a radiologist's blind read) or ``'adjudicate'``."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("image_id", "user_id", "kind"),
        Index("ix_assignments_user_status", "user_id", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Annotation(Base):
    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_image_user", "image_id", "user_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(64))
    x_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    y_min: Mapped[float | None] = mapped_column(Float, nullable=True)
    x_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    y_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    score: Mapped[float] = mapped_column(Float, default=1.0)
    provenance: Mapped[str] = mapped_column(String(128), default="reader")
    """``reader``; ``proposal:NAME`` for a mark that started as a proposal; ``fusion`` / ``edited`` for
    consensus rows; for a proposal row, ``proposal:NAME`` (the model or reader it came from)."""
    origin_id: Mapped[int | None] = mapped_column(ForeignKey("annotations.id"), nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AuthSession(Base):
    """A login: the cookie holds the token, the table only its SHA-256 (a database copy logs no one in)."""

    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(Base):
    """Who did what, when, with the row before and after (JSON); login failures feed the throttle."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_action_subject_at", "action", "subject", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128), default="")
    """What was acted on: ``annotation:12``, ``image:3``, a user name for logins."""
    before: Mapped[str | None] = mapped_column(Text, nullable=True)
    after: Mapped[str | None] = mapped_column(Text, nullable=True)


class Job(Base):
    """Long work started through the API (an import) and run by a process of its own: ``status`` is
    ``queued``, ``running``, ``done`` or ``failed``; ``done`` of ``total`` counts the current ``stage``."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    params: Mapped[str] = mapped_column(Text)
    """JSON of the request (paths on the server's disk, split, options)."""
    status: Mapped[str] = mapped_column(String(16), default="queued")
    stage: Mapped[str] = mapped_column(String(32), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[str | None] = mapped_column(Text, nullable=True)
    """JSON summary when done."""
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it failed, in one line."""
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
