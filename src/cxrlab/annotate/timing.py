"""Per-route server time, for the benchmark and for anyone profiling a slow service: off unless the
``CXRLAB_ANNOTATE_TIMING`` environment variable names a file.

Each answered request appends one line ``METHOD ROUTE STATUS MS CPU_MS START`` (the route's template such as
``/api/images/{image_id}/annotations``, never the ids, the query or the body: no patient data, no tokens).
``MS`` runs from the request's arrival in the worker to the last byte handed to the server; ``CPU_MS`` is the
worker's process CPU time over the same span (all of its threads: a hint of contention, not an exact
attribution); ``START`` is the arrival as a Unix time. Lines are written whole (line buffering, append mode),
so several worker processes can share one file.
"""

from __future__ import annotations

import os
import time
from typing import Any, TextIO

ENV = "CXRLAB_ANNOTATE_TIMING"


class RouteTiming:
    """ASGI middleware writing one timing line per HTTP request to ``path``."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self._out: TextIO = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the worker

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, cpu0, wall0 = time.perf_counter(), time.process_time(), time.time()
        status = 0

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal status
            await send(message)
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                route = getattr(scope.get("route"), "path", "?")
                ms, cpu = (time.perf_counter() - t0) * 1000, (time.process_time() - cpu0) * 1000
                self._out.write(f"{scope['method']} {route} {status} {ms:.2f} {cpu:.2f} {wall0:.3f}\n")

        await self.app(scope, receive, timed_send)


def timing_file() -> str | None:
    return os.environ.get(ENV) or None
