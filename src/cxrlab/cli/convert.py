"""``cxrlab convert``: DICOM/PNG -> training-size PNG or .npy, with a manifest and rescaled boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cxrlab.cli.common import collector_paused, console, err_console, flags, print_json


def convert_cmd(
    src: Annotated[
        Path,
        typer.Argument(
            help="A folder of images (.dicom/.dcm/.png, recursive), a tables "
            "folder, or an images table (.parquet/.csv with image_id, path)."
        ),
    ],
    out: Annotated[Path, typer.Argument(help="Output folder (outputs, manifest, rescaled tables).")],
    size: Annotated[
        int, typer.Option(help="Output size in pixels (the longer side with --keep-aspect).")
    ] = 1024,
    keep_aspect: Annotated[
        bool,
        typer.Option(
            "--keep-aspect", help="Keep the aspect ratio: fit the longer side to --size, no padding."
        ),
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="png (8-bit), png16 (16-bit) or npy.")] = "png",
    bits: Annotated[int, typer.Option(help="Bits of the .npy output (8 or 16; png is 8, png16 is 16).")] = 8,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://host:8786): run the conversion there instead of locally. "
            "The cluster's workers must see SRC and OUT at the same paths (a shared filesystem)."
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(help="Folder the images table's paths are relative to (default: the tables folder)."),
    ] = None,
    findings: Annotated[
        Path | None,
        typer.Option(
            help="Tables folder or findings .parquet whose boxes "
            "are rescaled into OUT (a tables folder as SRC brings "
            "its own)."
        ),
    ] = None,
    no_voi: Annotated[
        bool, typer.Option("--no-voi", help="Skip the VOI step (window / VOI LUT) and keep the full range.")
    ] = False,
    full_range: Annotated[
        str, typer.Option(help="Full range when there is no VOI step: minmax or percentile.")
    ] = "minmax",
    percentiles: Annotated[
        tuple[float, float], typer.Option(help="Low and high percentiles of --full-range percentile.")
    ] = (0.5, 99.5),
    window: Annotated[
        int, typer.Option(help="Which window / VOI LUT to apply when a file has several (1 = the first).")
    ] = 1,
    j2k_full: Annotated[
        bool,
        typer.Option(
            "--j2k-full",
            help="Decode JPEG 2000 at full resolution (default: skip the wavelet levels finer than the "
            "output, 2.6-3.9x faster, a few grey levels off).",
        ),
    ] = False,
    exact_voi: Annotated[
        bool,
        typer.Option(
            "--exact-voi",
            help="Apply the window / VOI LUT to the full image, then resize (the viewer's order). Default: "
            "resize the stored values first: faster, up to ~127 levels off on sharp edges in narrow windows.",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Convert images to a training size; resumable (a re-run skips finished files) and idempotent.

    Each failed file is named on stderr and in the manifest; the others still convert; exit 1 at the end.
    """
    from cxrlab.errors import UsageError

    with collector_paused():  # the conversion's libraries: numpy, pydicom, OpenCV, Pillow, pyarrow
        import pyarrow.json  # the manifest's writer: imported here rather than at the end
        import pyarrow.parquet  # noqa: F401

        from cxrlab.imaging.convert import ConvertOptions, convert
        from cxrlab.imaging.dicom import DisplayOptions

    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if window < 1:
        raise UsageError(f"--window must be >= 1 (1 = the file's first window), got {window}")
    with flags(format="--format", size="--size", full_range="--full-range", percentiles="--percentiles",
               bits="--bits"):  # fmt: skip
        display = DisplayOptions(
            voi="none" if no_voi else "auto",
            window_index=window - 1,
            full_range=full_range,  # type: ignore[arg-type]
            percentiles=percentiles,
            bits=bits,
        )
        options = ConvertOptions(
            size=size,
            keep_aspect=keep_aspect,
            format=fmt,
            display=display,
            j2k_full=j2k_full,
            exact_voi=exact_voi,
        )

    def report(record: dict[str, Any]) -> None:
        err_console.print(f"[red]failed:[/red] {escape(str(record.get('error')))}")

    with flags(cluster="--cluster", findings="--findings"):
        result = convert(src, out, options, workers=workers, cluster=cluster, root=root, findings=findings,
                         progress=not json_out, on_failure=report)  # fmt: skip
    manifest = result.summary
    if json_out:
        print_json({"total": result.total, "converted": result.converted, "skipped": result.skipped,
                    "failed": result.failed, "seconds": round(result.seconds, 2), "out": str(out),
                    "tables_written": result.tables is not None, **manifest})  # fmt: skip
    else:
        print_summary(result, manifest, out)
    if result.failed:
        raise typer.Exit(1)


def print_summary(result: Any, manifest: dict[str, Any], out: Path, console: Console = console) -> None:
    """The manifest summary as rich tables (also used by the demo)."""
    console.print(
        f"Converted {result.converted}, skipped {result.skipped} already done, failed {result.failed} "
        f"of {result.total} in {result.seconds:.1f} s -> {escape(str(out))}"
    )
    for key, title in (("by_transfer_syntax", "transfer syntax"), ("by_decoder", "decoder"),
                       ("by_voi", "VOI step")):  # fmt: skip
        counts = manifest.get(key) or {}
        if counts:
            table = Table(title_justify="left")
            table.add_column(title)
            table.add_column("images", justify="right")
            for name, n in counts.items():
                table.add_row(escape(str(name)), str(n))
            console.print(table)
    console.print(
        f"MONOCHROME1 inverted: {manifest.get('inverted_monochrome1', 0)}; JPEG 2000 decoded at a reduced "
        f"resolution level: {manifest.get('j2k_reduced', 0)}; transfer syntax inferred: "
        f"{manifest.get('syntax_inferred', 0)}; with a note (odd header, padding, ...): "
        f"{manifest.get('with_notes', 0)}; outputs of removed sources kept: "
        f"{manifest.get('removed_sources', 0)}"
    )
    if result.tables is not None:
        console.print(f"Rescaled tables: {escape(str(out))}/images.parquet, findings.parquet")
