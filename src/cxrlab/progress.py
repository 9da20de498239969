"""Progress bars on stderr (rich), silent when stderr is not a terminal unless forced.

Long work in the library takes ``progress: bool``; the CLI turns it on. Bars go to stderr so that
stdout stays clean for tables and ``--json``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

T = TypeVar("T")

stderr_console = Console(stderr=True)


def _enabled(progress: bool) -> bool:
    return progress and os.environ.get("CXRLAB_NO_PROGRESS") is None


def make_progress(*, bytes_: bool = False, transient: bool = False) -> Progress:
    """A rich Progress on stderr; ``bytes_`` shows sizes and speed instead of counts."""
    columns = [TextColumn("[progress.description]{task.description}"), BarColumn()]
    if bytes_:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    return Progress(*columns, console=stderr_console, transient=transient)


def track(
    items: Iterable[T], *, total: int | None = None, description: str = "working", progress: bool = True
) -> Iterator[T]:
    """Iterate with a bar when ``progress`` is on; otherwise a plain pass-through."""
    if not _enabled(progress):
        yield from items
        return
    with make_progress() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


@contextmanager
def maybe_progress(progress: bool, *, bytes_: bool = False) -> Iterator[Progress | None]:
    """A Progress to add tasks to, or None when progress is off."""
    if not _enabled(progress):
        yield None
        return
    with make_progress(bytes_=bytes_) as bar:
        yield bar
