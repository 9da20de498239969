"""``cxrlab vindr``: index a VinDr-CXR folder (either release) into the images and findings tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cxrlab.cli.common import TablesOut, console, err_console, new_app, print_json, problems_table

app = new_app("VinDr-CXR: index the PhysioNet or VinBigData-challenge release (DICOMs optional).")


@app.command()
def index(
    folder: Annotated[
        Path, typer.Argument(help="The dataset folder (annotations/ or train.csv, train/, test/).")
    ],
    out: TablesOut,
    allow_unknown: Annotated[
        bool,
        typer.Option("--allow-unknown", help="Keep labels that are not VinDr labels instead of failing."),
    ] = False,
    no_dicom: Annotated[
        bool, typer.Option("--no-dicom", help="Do not read DICOM headers even where the files are present.")
    ] = False,
    workers: Annotated[int, typer.Option(help="Threads reading DICOM headers (0: automatic).")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the index report as JSON.")] = False,
) -> None:
    """Read labels and DICOM headers, report every inconsistency and the rule applied, write the tables."""
    from cxrlab.datasets.vindr import index_vindr

    result = index_vindr(
        folder,
        allow_unknown=allow_unknown,
        read_dicom=not no_dicom,
        workers=workers or None,
        progress=not json_out,
    )
    result.write(out)
    report = result.report()
    if json_out:
        print_json(report)
        return
    per_split = ", ".join(f"{k} {v}" for k, v in report["splits"].items())
    console.print(
        f"Indexed {report['images']} images ({per_split})"
        f", {report['findings']} findings, {report['boxes']} boxes, {report['readers']} readers "
        f"[dim]({result.layout} layout)[/dim] -> {escape(str(out))}"
    )
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    if result.problems:
        console.print(problems_table(result.problems, "Inconsistencies and the rule applied"))
        err_console.print(f"all examples: {out / result.report_file}", markup=False)
    else:
        console.print("No inconsistencies found.")
