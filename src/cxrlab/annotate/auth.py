"""Passwords (argon2), login sessions, CSRF tokens and the login throttle.

A login gives two secrets: the session token, only in an HttpOnly SameSite=Strict cookie (scripts cannot read
it, other sites' requests do not carry it), and a CSRF token that the page keeps and sends back in the
``X-CSRF-Token`` header of every write. The database stores the session token's SHA-256 only.
Failed logins are audit entries; more than ``MAX_FAILURES`` for one name within ``THROTTLE_WINDOW`` answer 429
until the window passes, which survives a restart and holds across worker processes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Row, Select, bindparam, delete, func, select
from sqlalchemy.orm import Session

from cxrlab.annotate.audit import record
from cxrlab.annotate.db import reconnecting
from cxrlab.annotate.errors import Forbidden, Throttled, Unauthenticated
from cxrlab.annotate.models import AuditEntry, AuthSession, User, utcnow

COOKIE = "cxrlab_session"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=12)
MAX_FAILURES = 5
THROTTLE_WINDOW = timedelta(minutes=5)
MIN_PASSWORD = 8

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password of anyone")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _recent_failures(db: Session, name: str) -> int:
    since = utcnow() - THROTTLE_WINDOW
    query = select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "login_failed", AuditEntry.subject == name[:128], AuditEntry.at >= since
    )
    return int(db.scalar(query) or 0)


def login(db: Session, name: str, password: str) -> tuple[User, str, str]:
    """Check the password; returns (user, session token, CSRF token). Commits (a failure is recorded too)."""
    if reconnecting(db, lambda: _recent_failures(db, name)) >= MAX_FAILURES:
        raise Throttled("too many failed logins for this name: try again in a few minutes")
    user = db.scalar(select(User).where(User.name == name))
    # Verify against a dummy hash for unknown names, so timing does not tell which names exist.
    ok = verify_password(user.password_hash if user else _DUMMY_HASH, password)
    if not ok or user is None or not user.active:
        record(db, "login_failed", user_id=None, subject=name[:128])
        db.commit()
        raise Unauthenticated("wrong name or password")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    db.add(
        AuthSession(
            token_hash=token_hash(token),
            csrf_token=csrf,
            user_id=user.id,
            expires_at=utcnow() + SESSION_LIFETIME,
        )
    )
    record(db, "login", user_id=user.id, subject=f"user:{user.id}")
    db.commit()
    return user, token, csrf


@cache
def session_query() -> Select:
    """The user and the session row behind the session token whose hash is the ``token_hash`` parameter.
    Built once (making a statement costs more than running it): extended by
    :func:`cxrlab.annotate.workflow.caller_with_access` with what the request touches."""
    return (
        select(User, AuthSession)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(AuthSession.token_hash == bindparam("token_hash"))
    )


def token_hash(token: str) -> str:
    """What the ``sessions`` table stores of a session token: its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()


def valid_session(found: Row | None) -> tuple[User, AuthSession]:
    """(user, session) of a row of :func:`session_query`, or :class:`Unauthenticated` when there is none, the
    session expired or the user was deactivated."""
    if found is None or found[1].expires_at < utcnow() or not found[0].active:
        raise Unauthenticated("session expired or unknown: log in again")
    return found[0], found[1]


def session_of(db: Session, token: str | None) -> tuple[User, AuthSession]:
    """The user behind a session cookie, or :class:`Unauthenticated`. The first statement of a request, so it
    is where a connection that died with a restarted database server shows up: see
    :func:`cxrlab.annotate.db.reconnecting`."""
    if not token:
        raise Unauthenticated("log in first")
    found = reconnecting(db, lambda: db.execute(session_query(), {"token_hash": token_hash(token)}).first())
    return valid_session(found)


def check_csrf(session: AuthSession, sent: str | None) -> None:
    if not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise Forbidden(f"missing or wrong {CSRF_HEADER} header: the write was refused (reload the page)")


def logout(db: Session, token: str) -> None:
    db.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash(token)))
    db.commit()
