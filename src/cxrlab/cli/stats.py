"""``cxrlab stats``: positives per label overall, per split, by sex, by age band; label co-occurrence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlab.cli.common import console, flags, print_json


def stats_cmd(
    tables: Annotated[Path, typer.Argument(help="Tables folder (images.parquet, findings.parquet).")],
    reader: Annotated[
        str | None,
        typer.Option(
            help="Count only this reader's findings (default: consensus where present, else majority)."
        ),
    ] = None,
    no_cooccurrence: Annotated[
        bool, typer.Option("--no-cooccurrence", help="Leave out the co-occurrence matrix.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Label statistics of a tables folder (any dataset); the rule that makes an image positive is stated."""
    from cxrlab.tables import load_tables
    from cxrlab.viz.statistics import label_statistics, render

    loaded = load_tables(tables, validate=False)
    with flags(reader="--reader"):
        result = label_statistics(loaded.images, loaded.findings, reader=reader)
    if json_out:
        print_json(result.to_json())
        return
    render(result, console, cooccurrence=not no_cooccurrence)
