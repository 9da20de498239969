"""``cxrlab nih``: verify and extract the NIH ChestX-ray14 archives, index its label files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cxrlab.cli.common import TablesOut, console, err_console, new_app, print_json, problems_table

app = new_app("NIH ChestX-ray14: verify the archives (FAQ MD5s), extract them, index the label files.")


@app.command()
def verify(
    folder: Annotated[Path, typer.Argument(help="Folder holding images_001.tar.gz ... images_012.tar.gz.")],
    md5_file: Annotated[
        Path | None,
        typer.Option("--md5-file", help="md5sum-style list to check against instead of the FAQ's MD5s."),
    ] = None,
    check: Annotated[
        str,
        typer.Option(
            help="auto: MD5, with the gzip/tar walk explaining any mismatch; full: always walk every "
            "archive; md5: hash only."
        ),
    ] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Check every archive against its MD5 and its gzip + tar structure; exit 1 if any fails."""
    from cxrlab.datasets.nih_archives import CHECK_MODES, checks_to_json, read_md5_file, verify_folder
    from cxrlab.params import check_choice

    check_choice(check, CHECK_MODES, "--check")  # usage before reading the MD5 list
    md5s = read_md5_file(md5_file) if md5_file else None
    checks = verify_folder(folder, md5s, mode=check, progress=not json_out)
    if json_out:
        print_json(checks_to_json(checks))
    else:
        table = Table(title=f"Archives in {folder}", title_justify="left")
        for col, justify in (("archive", "left"), ("status", "left"), ("size", "right"), ("reason", "left")):
            table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for c in checks:
            colour = {"ok": "green", "missing": "yellow"}.get(c.status, "red")
            size = f"{c.size:,}" if c.size is not None else "-"
            reason = "; ".join(c.reasons) if c.reasons else "; ".join(c.notes) or "MD5 matches"
            table.add_row(c.name, f"[{colour}]{c.status}[/{colour}]", size, escape(reason))
        console.print(table)
        bad = [c for c in checks if not c.ok]
        console.print(f"{len(checks) - len(bad)} of {len(checks)} archive(s) good" + (
            f"; failed: {', '.join(c.name for c in bad)}" if bad else ""))  # fmt: skip
    if not all(c.ok for c in checks):
        raise typer.Exit(code=1)


@app.command()
def extract(
    folder: Annotated[Path, typer.Argument(help="Folder holding the images_NNN.tar.gz archives.")],
    out: Annotated[Path, typer.Argument(help="Output folder; the PNGs go to OUT/images/.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Stream every archive into OUT/images/ (resumable: complete files are skipped, partial ones redone)."""
    from dataclasses import asdict

    from cxrlab.datasets.nih_extract import extract_folder

    summary = extract_folder(folder, out, progress=not json_out)
    if json_out:
        print_json(asdict(summary))
        return
    console.print(
        f"{summary.archives} archive(s) ({summary.archives_skipped} already complete): "
        f"{summary.written:,} PNG(s) written ({summary.redone:,} redone, "
        f"{summary.bytes_written / 1e6:,.1f} MB), "
        f"{summary.skipped:,} already present -> {out / 'images'}"
    )
    if summary.ignored:
        err_console.print(
            f"{len(summary.ignored)} member(s) outside images/ or not regular files were not extracted "
            f"(e.g. {', '.join(summary.ignored[:3])})",
            markup=False,
        )


@app.command()
def index(
    folder: Annotated[
        Path, typer.Argument(help="Folder with Data_Entry_2017*.csv[.gz], BBox_List, the lists.")
    ],
    out: TablesOut,
    entry: Annotated[
        Path | None,
        typer.Option(help="The Data_Entry file to use when the folder holds several revisions."),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Extracted images (extract's OUT): take sizes from the PNGs, name missing ones."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Exit 1 when any warning-level problem is found (tables still written)."
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary and problems as JSON.")] = False,
) -> None:
    """Index the label files: one images row per entry, NLP labels and boxes as findings, problems named."""
    from cxrlab.datasets.nih import index_nih

    result = index_nih(folder, entry=entry, images_dir=images)
    result.write(out)
    summary = result.report()
    if json_out:
        print_json(summary)
    else:
        splits = ", ".join(f"{k} {v:,}" for k, v in summary["splits"].items())
        console.print(
            f"Indexed {summary['images']:,} images of {summary['patients']:,} patients ({splits}), "
            f"{sum(summary['labels'].values()):,} image labels, {summary['boxes']:,} boxes on "
            f"{summary['images_with_boxes']:,} images [dim](revision {result.revision}: "
            f"{escape(summary['sources']['entry'])})[/dim] -> {escape(str(out))}"
        )
        console.print(problems_table(result.problems) if result.problems else "No problems found.")
        err_console.print(f"report: {out / result.report_file}", markup=False)
    if strict and result.warnings():
        raise typer.Exit(code=1)
