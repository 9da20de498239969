"""The reading pages: plain HTML, CSS and JavaScript modules under ``static/``, served by the same app as the
API (no build step, nothing fetched from another site).

Every page answer carries a Content-Security-Policy that only allows this origin, so a page cannot load
or send anything elsewhere even by mistake, and is never framed by another site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static"
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class PageHeaders:
    """Add :data:`PAGE_HEADERS` to the answers under ``/ui`` (ASGI middleware, the body untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/ui"):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def mount_ui(app: FastAPI) -> None:
    """Serve the pages at ``/ui/`` (and the display data they read, :mod:`cxrlab.annotate.pixels`), and send
    ``/`` to the home page (which sends to login when needed)."""
    from cxrlab.annotate.pixels import pixels_router

    app.include_router(pixels_router)
    app.add_middleware(PageHeaders)
    app.mount("/ui", StaticFiles(directory=STATIC, html=True), name="ui")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui/home.html")
