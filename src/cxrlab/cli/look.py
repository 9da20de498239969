"""``cxrlab show`` (annotated figures) and ``cxrlab report`` (the self-contained HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlab.cli.common import console

TablesArg = Annotated[Path, typer.Argument(help="Tables folder (images.parquet, findings.parquet).")]


def show_cmd(
    tables: TablesArg,
    image_ids: Annotated[list[str], typer.Argument(help="Image id(s) to show.", show_default=False)],
    images: Annotated[
        Path,
        typer.Option(
            "--images", help="Dataset root (the tables' paths are relative to it) or a convert output."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Figure to write: .png or .svg.")],
    readers: Annotated[
        str, typer.Option(help="Whose boxes: all, consensus, or a comma list such as R8,R9.")
    ] = "all",
    pred: Annotated[
        Path | None, typer.Option(help="Predictions (findings table or challenge submission) to draw too.")
    ] = None,
    min_score: Annotated[float, typer.Option(help="Draw predicted boxes scoring at least this.")] = 0.5,
    grid: Annotated[
        bool, typer.Option("--grid", help="All images in one figure (else one file each).")
    ] = False,
    max_side: Annotated[int, typer.Option(help="Longer side of each shown image, in pixels.")] = 1024,
) -> None:
    """Draw images with their boxes (colour = label, line = reader or model) and global labels in bold."""
    from cxrlab.tables import load_tables
    from cxrlab.viz.figures import show_figure
    from cxrlab.viz.predictions import read_predictions
    from cxrlab.viz.source import ImageSource

    loaded = load_tables(tables, validate=False)
    preds = read_predictions(pred, loaded.images) if pred is not None else None
    source = ImageSource(images, loaded.images)
    written = show_figure(loaded.images, loaded.findings, image_ids, source, out, readers=readers,
                          predictions=preds, min_score=min_score, grid=grid, max_side=max_side)  # fmt: skip
    for path in written:
        console.print(f"wrote {path}")
