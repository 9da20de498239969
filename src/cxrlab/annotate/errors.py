"""Errors of the reading service, each with the HTTP status the API answers with (the CLI exits 1 or 2)."""

from __future__ import annotations

from cxrlab.errors import CxrlabError


class AnnotateError(CxrlabError):
    status: int = 400


class InvalidInput(AnnotateError):
    """A write that breaks a rule (box outside the image, unknown label): nothing is changed."""

    status = 422


class NotFound(AnnotateError):
    """Absent, or present but not the caller's to see: the two answer alike so ids cannot be probed."""

    status = 404


class Forbidden(AnnotateError):
    status = 403


class Unauthenticated(AnnotateError):
    status = 401


class Conflict(AnnotateError):
    """A stale write (the version read is not the stored one) or a duplicate name."""

    status = 409


class Throttled(AnnotateError):
    status = 429
