"""``cxrlab show`` (annotated figures) and ``cxrlab report`` (the self-contained HTML page)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cxrlab.cli.common import console, flags

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
    with flags(root="--images", readers="--readers", out="--out"):
        source = ImageSource(images, loaded.images)
        written = show_figure(loaded.images, loaded.findings, image_ids, source, out, readers=readers,
                              predictions=preds, min_score=min_score, grid=grid,
                              max_side=max_side)  # fmt: skip
    for path in written:
        console.print(f"wrote {path}")


def report_cmd(
    tables: TablesArg,
    out: Annotated[Path, typer.Option("--out", help="The HTML page to write.")],
    images: Annotated[
        Path | None,
        typer.Option("--images", help="Dataset root or convert output: adds sample images with their boxes."),
    ] = None,
    pred: Annotated[
        list[Path] | None, typer.Option(help="Predictions to evaluate (repeat for several models).")
    ] = None,
    samples: Annotated[int, typer.Option(help="Sample images per label (with --images).")] = 4,
    seed: Annotated[int, typer.Option(help="Seed of the sample choice and the bootstrap.")] = 0,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples for the CIs and ROC bands.")] = 200,
    title: Annotated[str, typer.Option(help="Title of the page.")] = "cxrlab dataset report",
) -> None:
    """One self-contained HTML page: labels, sex, age, co-occurrence, boxes, agreement, samples, models."""
    from cxrlab.tables import load_tables
    from cxrlab.viz.report import build_report
    from cxrlab.viz.source import ImageSource

    loaded = load_tables(tables, validate=False)
    with flags(root="--images"):
        source = ImageSource(images, loaded.images) if images is not None else None
    with flags(samples_per_label="--samples", n_boot="--n-boot"):
        summary = build_report(
            loaded,
            out,
            source=source,
            predictions=pred or [],
            samples_per_label=samples,
            seed=seed,
            n_boot=n_boot,
            title=title,
            progress=True,
        )
    for note in summary.notes:
        console.print(f"[yellow]note:[/yellow] {note}", markup=True, highlight=False)
    console.print(
        f"Report of {summary.images:,} images: {len(summary.sections)} sections, {summary.figures} plots, "
        f"{summary.thumbnails} images, {summary.bytes / 1e6:.1f} MB in {summary.seconds:.1f} s "
        f"-> {summary.path}"
    )
