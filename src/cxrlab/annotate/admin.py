"""Users, projects and memberships: what an admin sets up before anyone reads.

A project's labels come from a built-in label set (``vindr``, ``nih``, ...; :mod:`cxrlab.taxonomy`) or from a
text file with one label per line. Boxes are allowed on a set's local labels (VinDr's 22 findings) or on every
label when the set has none marked local. Each member gets a pseudonym R1..Rn in joining order: the reader id
the export writes, so the tables carry no user names.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cxrlab.annotate.audit import record
from cxrlab.annotate.auth import MIN_PASSWORD, hash_password
from cxrlab.annotate.errors import Conflict, InvalidInput, NotFound
from cxrlab.annotate.models import ROLES, Member, Project, User
from cxrlab.taxonomy import LABEL_SETS, NO_FINDING, get_label_set

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


def _check_name(name: str, what: str) -> None:
    if not NAME_RE.match(name):
        raise InvalidInput(f"{what} name '{name}': use 1-64 letters, digits, '_', '.', '@' or '-'")


def create_user(db: Session, name: str, role: str, password: str, *, actor_id: int | None = None) -> User:
    _check_name(name, "user")
    if role not in ROLES:
        raise InvalidInput(f"role '{role}' is unknown: choose {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"the password needs at least {MIN_PASSWORD} characters")
    if db.scalar(select(User).where(User.name == name)) is not None:
        raise Conflict(f"user '{name}' exists already")
    user = User(name=name, role=role, password_hash=hash_password(password), active=True)
    db.add(user)
    db.flush()
    record(db, "user_create", user_id=actor_id, subject=f"user:{user.id}", after={"name": name, "role": role})
    return user


def resolve_labels(spec: str | list[str]) -> tuple[str, list[str], list[str]]:
    """(label set name, labels, labels that may carry a box) for ``vindr|nih|...``, a file, or a list."""
    if isinstance(spec, list):
        name, labels, local = "custom", [s.strip() for s in spec if s.strip()], []
    elif spec.lower() in LABEL_SETS or spec.lower().replace("_", "-") in LABEL_SETS:
        label_set = get_label_set(spec)
        name, labels, local = label_set.name, list(label_set.labels), list(label_set.local)
    else:
        path = Path(spec)
        if not path.is_file():
            raise InvalidInput(f"labels {spec}: neither a label set ({', '.join(LABEL_SETS)}) nor a file")
        lines = path.read_text(encoding="utf-8").splitlines()
        name, labels, local = path.stem, [s.strip() for s in lines if s.strip() and not s.startswith("#")], []
    if not labels or len(set(labels)) != len(labels):
        raise InvalidInput("the label list is empty or names a label twice")
    if any(len(label) > 64 for label in labels):
        raise InvalidInput("a label is longer than 64 characters")
    if NO_FINDING not in labels:
        labels.append(NO_FINDING)
    box_labels = local or [label for label in labels if label != NO_FINDING]
    return name, labels, box_labels


def create_project(
    db: Session,
    name: str,
    labels: str | list[str] = "vindr",
    *,
    readers: int = 3,
    test_readers: int = 5,
    allow_proposals: bool = False,
    actor_id: int | None = None,
) -> Project:
    _check_name(name, "project")
    if not (1 <= readers <= 20 and 1 <= test_readers <= 20):
        raise InvalidInput("readers and test_readers must be between 1 and 20")
    if db.scalar(select(Project).where(Project.name == name)) is not None:
        raise Conflict(f"project '{name}' exists already")
    set_name, label_list, box_labels = resolve_labels(labels)
    project = Project(
        name=name,
        label_set=set_name,
        labels=json.dumps(label_list),
        box_labels=json.dumps(box_labels),
        readers=readers,
        test_readers=test_readers,
        allow_proposals=allow_proposals,
    )
    db.add(project)
    db.flush()
    record(
        db,
        "project_create",
        user_id=actor_id,
        project_id=project.id,
        subject=f"project:{project.id}",
        after=project_dict(project),
    )
    return project


def project_dict(project: Project) -> dict[str, object]:
    return {
        "id": project.id,
        "name": project.name,
        "label_set": project.label_set,
        "labels": json.loads(project.labels),
        "box_labels": json.loads(project.box_labels),
        "readers": project.readers,
        "test_readers": project.test_readers,
        "allow_proposals": project.allow_proposals,
    }


def find_project(db: Session, name_or_id: str | int) -> Project:
    query = select(Project).where(Project.name == str(name_or_id))
    project = db.scalar(query)
    if project is None and str(name_or_id).isdigit():
        project = db.get(Project, int(name_or_id))
    if project is None:
        raise NotFound(f"no project '{name_or_id}'")
    return project


def find_user(db: Session, name: str) -> User:
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user '{name}'")
    return user


def add_member(db: Session, project: Project, user: User, *, actor_id: int | None = None) -> Member:
    """Join ``user`` to ``project`` (idempotent) and give readers their share of the images."""
    from cxrlab.annotate.workflow import assign

    member = db.scalar(select(Member).where(Member.project_id == project.id, Member.user_id == user.id))
    if member is not None:
        return member
    count = db.scalar(select(func.count(Member.id)).where(Member.project_id == project.id)) or 0
    member = Member(project_id=project.id, user_id=user.id, pseudonym=f"R{count + 1}")
    db.add(member)
    db.flush()
    record(
        db,
        "member_add",
        user_id=actor_id,
        project_id=project.id,
        subject=f"user:{user.id}",
        after={"pseudonym": member.pseudonym, "role": user.role},
    )
    assign(db, project)
    return member
