"""Shared pieces of the CLI: consoles, JSON output, the error-to-exit-code rule."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cxrlab.errors import ParameterError

if TYPE_CHECKING:
    from cxrlab.problems import Problem

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"]}

TablesOut = Annotated[
    Path, typer.Option("--out", help="Tables folder to write (images.parquet, findings.parquet).")
]
"""The ``--out`` of the index commands: where ``save_tables`` writes the two tables."""


def new_app(help_text: str) -> typer.Typer:
    """A typer group with the project's settings (``-h``, no pretty tracebacks, no completion)."""
    return typer.Typer(
        help=help_text,
        context_settings=CONTEXT_SETTINGS,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )


def print_json(data: Any) -> None:
    """Machine-readable output on stdout, never colourised."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default, allow_nan=False) + "\n")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def folded_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table whose long cells wrap instead of being cut: lists of problems with their rule and examples."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def problems_table(
    problems: Sequence[Problem], title: str = "Problems found (nothing dropped silently)"
) -> Table:
    """The problems of an index, one row each: file, kind (notes marked), count, what happened, examples."""
    rows = [
        (
            escape(p.file),
            p.kind if p.severity == "warning" else f"{p.kind} (note)",
            f"{p.count:,}",
            escape(p.message),
            escape(", ".join(p.examples[:3])),
        )
        for p in problems
    ]
    return folded_table(title, ("file", "problem", "count", "what happened", "examples"), rows)


@contextmanager
def flags(**names: str) -> Iterator[None]:
    """Name the command's flags in the library's parameter errors: ``with flags(iou="--iou"): ...``."""
    try:
        yield
    except ParameterError as exc:
        flag = names.get(exc.parameter)
        if flag is None:
            raise
        raise exc.for_flag(flag) from None


def table_inputs(folder: Path) -> list[Path]:
    """A tables folder and its two files: what a command reading it must never write over."""
    from cxrlab.tables import FINDINGS_FILE, IMAGES_FILE

    return [folder, folder / IMAGES_FILE, folder / FINDINGS_FILE]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a block of imports: importing numpy, pydicom, OpenCV and
    pyarrow allocates ~10^6 long-lived objects and makes no garbage cycles, and the collections those
    allocations trigger cost ~30-40 ms of CPU (medians of 8 processes here). Back on after the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
