"""``cxrlab dicom``: read DICOM headers: a summary of one file, a patient-identity check of a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cxrlab.cli.common import console, err_console, new_app, print_json

app = new_app("DICOM headers: inspect one file, check a folder for tags that could identify a patient.")


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="A DICOM file (.dcm, .dicom).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise the tags that decide decoding and display (syntax, bits, photometric, rescale, VOI)."""
    from cxrlab.imaging.tags import inspect_dicom

    summary = inspect_dicom(file)
    if json_out:
        print_json(summary)
        return
    table = Table(title=escape(str(file)), title_justify="left", show_header=False)
    table.add_column("tag", style="bold")
    table.add_column("value")
    for key, value in summary.items():
        if key == "file" or value is None:
            continue
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        table.add_row(key.replace("_", " "), escape(shown))
    console.print(table)


@app.command("phi-check")
def phi_check_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder of DICOMs (searched recursively) or one file.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """List every tag that could identify a patient (names, ids, dates, institution, burned-in text,
    private tags); exit 1 when any is found or a file cannot be read, 2 when there is nothing to check."""
    from cxrlab.imaging.tags import finding_dict, phi_check

    if not folder.exists():
        err_console.print(f"[red]error:[/red] {escape(str(folder))}: no such file or folder")
        raise typer.Exit(2)
    findings, unreadable, checked = phi_check(folder)
    if checked == 0 and not unreadable:
        err_console.print(f"[red]error:[/red] {escape(str(folder))}: no .dcm or .dicom file to check")
        raise typer.Exit(2)
    for problem in unreadable:
        err_console.print(f"[yellow]warning:[/yellow] {escape(problem)}")
    if json_out:
        print_json({"files_checked": checked, "unreadable": unreadable,
                    "findings": [finding_dict(f) for f in findings]})  # fmt: skip
    elif findings:
        table = Table(title="Tags that could identify a patient", title_justify="left")
        for column in ("file", "tag", "keyword", "reason", "value"):
            table.add_column(column)
        for f in findings:
            table.add_row(escape(Path(f.file).name), f.tag, escape(f.keyword), f.reason, escape(f.value))
        console.print(table)
        files = len({f.file for f in findings})
        console.print(f"{len(findings)} identifying tag(s) in {files} of {checked} file(s)")
    else:
        console.print(f"No identifying tag in {checked} file(s)")
    if findings or unreadable:  # a file that could not be read cannot be vouched for
        raise typer.Exit(1)
