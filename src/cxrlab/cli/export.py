"""``cxrlab export``: the tables as COCO, YOLO, VOC, or the VinDr-CXR releases' own CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlab.cli.common import console, flags, print_json, table_inputs


def export_cmd(
    tables: Annotated[Path, typer.Argument(help="Tables folder to export.")],
    fmt: Annotated[str, typer.Option("--format", help="coco, yolo, voc, vindr-csv or challenge-csv.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write into.")],
    images: Annotated[
        Path | None,
        typer.Option(
            "--images", help="Folder of converted images with its manifest: boxes in its coordinates."
        ),
    ] = None,
    reader: Annotated[
        list[str] | None,
        typer.Option(
            "--reader", help="Reader(s) to export (repeatable); default: consensus if present, else all."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Write into a non-empty folder that is not a cxrlab output (only the files written are "
            "replaced). A cxrlab output folder is replaced whole without it.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Write the findings in a detection or release format; class maps are written beside."""
    from cxrlab.labels.export import FORMATS, export
    from cxrlab.params import check_choice
    from cxrlab.tables import load_tables

    check_choice(fmt, FORMATS, "--format")  # usage before reading the tables
    t = load_tables(tables)
    with flags(fmt="--format", out="--out", converted="--images", readers="--reader", force="--force"):
        result = export(
            t.images,
            t.findings,
            fmt,
            out,
            converted=images,
            readers=reader,
            force=force,
            inputs=table_inputs(tables),
        )
    if json_out:
        print_json(
            {
                "out": str(result.out),
                "files": [str(f) for f in result.files],
                "counts": result.counts,
                "notes": result.notes,
            }
        )
        return
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items())
    console.print(f"Exported {fmt} ({counts}) -> {out}")
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
