"""``cxrlab deid``: hospital DICOMs -> a shareable folder (VinDr-CXR whitelist or PS3.15 Basic Profile)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cxrlab.cli.common import console, err_console, flags, print_json

KIND_NAMES = {
    "removed": "attributes removed",
    "private": "private attributes removed",
    "emptied": "attributes emptied",
    "dummy": "dummy values written",
    "uids": "UIDs replaced by pseudonyms",
    "patient_id": "Patient IDs replaced by pseudonyms",
    "dates_shifted": "dates shifted",
}


def deid_cmd(
    src: Annotated[Path, typer.Argument(help="A folder of DICOMs (recursive, any file name) or one file.")],
    out: Annotated[Path, typer.Argument(help="Output folder: <32 hex>.dicom files, deid.json, a journal.")],
    profile: Annotated[
        str, typer.Option(help="vindr (the VinDr-CXR whitelist) or basic (PS3.15 Annex E Basic Profile).")
    ] = "vindr",
    secret_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the pseudonym key (default: OUT.deid-secret, made on the first run)."
        ),
    ] = None,
    map_csv: Annotated[
        Path | None,
        typer.Option(
            "--map", help="Write the original -> new mapping CSV here (outside OUT; keep it private)."
        ),
    ] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
    cluster: Annotated[
        str | None, typer.Option(help="Dask scheduler address (tcp://host:8786): run there instead.")
    ] = None,
    allow_burned_in: Annotated[
        bool,
        typer.Option("--allow-burned-in", help="Also write files with burned-in text or screen saves."),
    ] = False,
    retain_patient_characteristics: Annotated[
        bool,
        typer.Option(
            "--retain-patient-characteristics", help="basic: keep sex, age, size, weight (the PS3.15 option)."
        ),
    ] = False,
    retain_dates_shifted: Annotated[
        bool,
        typer.Option(
            "--retain-dates-shifted",
            help="basic: keep dates, moved back by one keyed shift per patient (PS3.15 option).",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """De-identify DICOMs: pixels copied byte for byte, UIDs and Patient ID keyed pseudonyms, grouping kept.

    Resumable (a re-run skips finished files) and never partial. Files with burned-in text are listed and
    left out; unreadable files are named on stderr and left out (exit 1); the others still go through.
    """
    from cxrlab.errors import UsageError
    from cxrlab.imaging.deid import deid
    from cxrlab.imaging.deid_profile import ProfileOptions

    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    with flags(profile="--profile"):
        options = ProfileOptions(profile, retain_patient_characteristics, retain_dates_shifted)

    def report(held: dict[str, Any]) -> None:
        label = "held back" if held["kind"] == "burned-in" else "failed"
        err_console.print(f"[yellow]{label}:[/yellow] {escape(str(held['error']))}")

    with flags(cluster="--cluster"):
        result = deid(src, out, options, secret_file=secret_file, map_path=map_csv,
                      allow_burned_in=allow_burned_in, workers=workers, cluster=cluster,
                      progress=not json_out, on_problem=report)  # fmt: skip
    if result.secret_created:
        err_console.print(
            f"secret: generated {escape(str(result.secret_path))}; keep it private, outside what you "
            "share (the same secret gives the same pseudonyms on the next run)"
        )
    if result.map_path is not None:
        err_console.print(
            f"[bold red]private:[/bold red] {escape(str(result.map_path))} links every output to its "
            "patient: keep it private, never share it with the data"
        )
    if json_out:
        print_json({"out": str(out), "total": result.total, "written": result.written,
                    "skipped": result.skipped, "held_back": result.held, "changes": dict(result.counts),
                    "secret_file": str(result.secret_path), "seconds": round(result.seconds, 2)})  # fmt: skip
    else:
        print_summary(result)
    if result.bad_input:
        raise typer.Exit(1)


def print_summary(result: Any, out: Console = console) -> None:
    """Files, changes by kind, files held back and why (also used by the demo)."""
    out.print(
        f"De-identified {result.written}, skipped {result.skipped} already done, held back "
        f"{len(result.held)} of {result.total} file(s) in {result.seconds:.1f} s -> {escape(str(result.out))}"
    )
    if result.counts:
        table = Table(title="Changes (every file in the output)", title_justify="left")
        table.add_column("kind")
        table.add_column("count", justify="right")
        for key, name in KIND_NAMES.items():
            if result.counts.get(key):
                table.add_row(name, str(result.counts[key]))
        out.print(table)
    if result.held:
        table = Table(title="Held back", title_justify="left")
        table.add_column("why")
        table.add_column("file and problem", overflow="fold")
        for held in result.held:
            table.add_row(held["kind"], escape(str(held["error"])))
        out.print(table)
