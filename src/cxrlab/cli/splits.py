"""``cxrlab splits``: check that no patient crosses a split; make new patient-level stratified splits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from cxrlab.cli.common import console, flags, new_app, print_json

app = new_app("Patient-level splits: check for patients on both sides, make new stratified splits.")


def _print_check(result: object, title: str) -> None:
    from cxrlab.datasets.splits import SplitCheck

    assert isinstance(result, SplitCheck)
    table = Table(title=title, title_justify="left")
    for col in ("split", "images", "patients"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for name, row in result.counts.iterrows():
        table.add_row(str(name), f"{int(row['images']):,}", f"{int(row['patients']):,}")
    console.print(table)
    if result.no_split_images:
        console.print(f"{result.no_split_images:,} image(s) have no split")
    if result.no_patient_images:
        console.print(f"{result.no_patient_images:,} image(s) have no patient id (not checked)")
    if result.ok and int(result.counts["patients"].sum()) == 0:
        console.print("[yellow]No patient ids: leakage between splits cannot be checked.[/yellow]")
    elif result.ok:
        console.print("[green]No patient is in more than one split.[/green]")
    else:
        console.print(
            f"[red]{result.leaked_patients:,} patient(s) ({result.leaked_images:,} images) are in more "
            f"than one split[/red]: {escape('; '.join(result.examples))}"
        )


@app.command()
def check(
    tables: Annotated[Path, typer.Argument(help="Tables folder (images.parquet, findings.parquet).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print the numbers as JSON.")] = False,
) -> None:
    """Count images and patients per split; exit 1 if a patient is in more than one split."""
    from cxrlab.datasets.splits import check_splits
    from cxrlab.tables import load_tables

    result = check_splits(load_tables(tables, validate=False).images)
    if json_out:
        print_json(result.to_json())
    else:
        _print_check(result, f"Splits of {tables}")
    if not result.ok:
        raise typer.Exit(code=1)


@app.command()
def make(
    tables: Annotated[
        Path, typer.Argument(help="Tables folder to read (left untouched unless --out is it).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Tables folder to write (images with the new split).")],
    fractions: Annotated[str, typer.Option(help="Fractions of the images, comma-separated.")] = "0.7,0.1,0.2",
    names: Annotated[
        str, typer.Option(help="Split names, comma-separated, one per fraction.")
    ] = "train,val,test",
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same split.")] = 0,
    within: Annotated[
        str | None,
        typer.Option(help="Re-split only the images of this split (e.g. train_val), keep the others' split."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the resulting numbers as JSON.")] = False,
) -> None:
    """New patient-level splits, stratified by label frequencies as far as patients allow."""
    from cxrlab.datasets.splits import (
        check_splits,
        label_balance,
        make_splits,
        parse_fractions,
        write_split_tables,
    )
    from cxrlab.tables import load_tables

    with flags(fractions="--fractions", names="--names", within="--within"):
        wanted = parse_fractions(fractions, names)
        loaded = load_tables(tables, validate=False)
        images = make_splits(loaded.images, loaded.findings, wanted, seed=seed, within=within)
    write_split_tables(tables, out, images)
    result = check_splits(images)
    balance = label_balance(images, loaded.findings)
    if json_out:
        print_json({**result.to_json(), "label_share": balance.round(4).to_dict(orient="index")})
        return
    _print_check(result, f"New splits (seed {seed}) -> {out}")
    table = Table(title="Share of each label's positive images per split", title_justify="left")
    table.add_column("label")
    for col in balance.columns:
        table.add_column(str(col), justify="right")
    for label, row in balance.iterrows():
        table.add_row(str(label), *(f"{100 * v:.1f}%" for v in row))
    console.print(table)
