"""The FastAPI application: wiring, the session and CSRF dependency, the body-size limit, error answers.

Routes live in :mod:`cxrlab.annotate.routes` (reading, adjudication) and :mod:`cxrlab.annotate.routes_admin`.
Every route but login needs a session cookie; every write also needs the CSRF header. Errors of the service
answer ``{"detail": message}`` with their status; nothing about the request body or the files is logged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from cxrlab.annotate import auth
from cxrlab.annotate.db import Database
from cxrlab.annotate.errors import AnnotateError, Unauthenticated
from cxrlab.annotate.models import User
from cxrlab.annotate.renditions import RenditionCache
from cxrlab.annotate.timing import RouteTiming, timing_file
from cxrlab.annotate.workflow import caller_with_access
from cxrlab.errors import CxrlabError

MAX_BODY = 256 * 1024
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC_ROUTES = {"/api/login"}
"""Routes open without a session (their bad input answers 422 at once)."""


class BodyLimit:
    """Refuse a request body over ``limit`` bytes with 413 before any route sees it (declared length or
    counted while it streams in)."""

    def __init__(self, app: Any, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        seen, refused = 0, False

        async def counted() -> dict[str, Any]:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit and not refused:
                refused = True
                await _too_large(send, self.limit)
                return {"type": "http.disconnect"}  # the route stops reading; its answer is dropped
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded_send)


async def _too_large(send: Any, limit: int) -> None:
    body = f'{{"detail":"request body over {limit} bytes"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def get_db(request: Request) -> AsyncIterator[Session]:
    """One session per request; a route commits its change, anything unfinished is rolled back on close.

    Async on purpose: making a session does no I/O, so FastAPI need not hop to a worker thread and back for
    it (a sync generator costs two hops per request); the routes themselves run in the thread pool."""
    db = request.app.state.database.session()
    try:
        yield db
    finally:
        db.close()


def caller(request: Request, db: Session = Depends(get_db)) -> User:
    """The logged-in user; for a write, only with the session's CSRF token in the header."""
    user, session = auth.session_of(db, request.cookies.get(auth.COOKIE))
    if request.method not in SAFE_METHODS:
        auth.check_csrf(session, request.headers.get(auth.CSRF_HEADER))
    return user


T = TypeVar("T")


def check_caller(database: Database, request: Request) -> None:
    """:func:`caller`'s checks on their own (session, and CSRF token for a write), for a request that no
    route ran: :class:`Unauthenticated` or :class:`Forbidden` if they fail."""
    with database.session() as db:
        _, session = auth.session_of(db, request.cookies.get(auth.COOKIE))
        if request.method not in SAFE_METHODS:
            auth.check_csrf(session, request.headers.get(auth.CSRF_HEADER))


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request whose body, query or path FastAPI refused before any route code ran (nothing was read or
    written): 401 / 403 when the caller is not logged in or sent no CSRF token, as any valid request would
    get, so that a stranger learns nothing from the shape of the answers; else the usual 422. Only bad
    requests pay for this check: the checks of valid ones stay in the route's own database round trip."""
    route = getattr(request.scope.get("route"), "path", None)
    if route not in PUBLIC_ROUTES:
        try:
            await run_in_threadpool(check_caller, request.app.state.database, request)
        except AnnotateError as refused:
            return JSONResponse({"detail": str(refused)}, status_code=refused.status)
    return await request_validation_exception_handler(request, exc)


async def signed_in(request: Request) -> None:
    """No session cookie at all: 401 before the body is even validated (no database, no thread hop). The
    cookie itself is checked by :func:`as_caller`."""
    if not request.cookies.get(auth.COOKIE):
        raise Unauthenticated("log in first")


async def as_caller(
    request: Request,
    work: Callable[[Session, User], T],
    *,
    image_id: int | None = None,
    mark_id: int | None = None,
) -> T:
    """Check the session cookie (and, for a write, the CSRF token), then ``work(db, user)``, all in ONE
    worker-thread hop with its own database session (closed after): the path of what every reader does
    many times (open an image, save, move or delete a box, finish a read). The same checks as
    :func:`caller`, without a thread hop of its own: under 20 readers each hop waits for a thread, then for
    the event loop again. With ``image_id`` (or ``mark_id``), the image's (the mark's) access rows come with
    the session lookup in the same statement (:func:`cxrlab.annotate.workflow.caller_with_access`); ``work``
    checks them as always."""
    database: Database = request.app.state.database
    token, sent = request.cookies.get(auth.COOKIE), request.headers.get(auth.CSRF_HEADER)
    write = request.method not in SAFE_METHODS

    def authenticated_work() -> T:
        with database.session() as db:
            if image_id is None and mark_id is None:
                user, session = auth.session_of(db, token)
            else:
                user, session = caller_with_access(db, token, image_id=image_id, mark_id=mark_id)
            if write:
                auth.check_csrf(session, sent)
            return work(db, user)

    return await run_in_threadpool(authenticated_work)


def create_app(database: Database, *, secure_cookies: bool = False) -> FastAPI:
    """The service on ``database``; renditions cached under ``database.cache_dir``."""
    from cxrlab.annotate.routes import router
    from cxrlab.annotate.routes_admin import admin_router
    from cxrlab.annotate.ui import mount_ui

    cache = RenditionCache(database.cache_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        yield
        cache.close()

    app = FastAPI(
        title="cxrlab annotate",
        version="1",
        lifespan=lifespan,
        description="Blind multi-reader chest X-ray reading: queues, marks, adjudication, export.",
    )
    app.state.database = database
    app.state.cache = cache
    app.state.secure_cookies = secure_cookies
    app.add_middleware(BodyLimit)
    if (timing := timing_file()) is not None:
        app.add_middleware(RouteTiming, path=timing)
    app.include_router(router)
    app.include_router(admin_router)
    mount_ui(app)

    app.add_exception_handler(RequestValidationError, invalid_request)  # type: ignore[arg-type]

    @app.exception_handler(AnnotateError)
    async def _service_error(_: Request, exc: AnnotateError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(CxrlabError)
    async def _data_error(_: Request, exc: CxrlabError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app
