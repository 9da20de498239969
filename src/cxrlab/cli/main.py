"""The ``cxrlab`` command: each group lives in its own module; this file only wires them together."""

from __future__ import annotations

import atexit
import copy
import gc
import sys
import warnings
from typing import Annotated

import typer
from rich.markup import escape

import cxrlab
from cxrlab.cli import annotate as _annotate_cli
from cxrlab.cli import convert as _convert_cli
from cxrlab.cli import deid as _deid_cli
from cxrlab.cli import dicom as _dicom_cli
from cxrlab.cli import export as _export_cli
from cxrlab.cli import labels as _labels_cli
from cxrlab.cli import look as _look_cli
from cxrlab.cli import model as _model_cli
from cxrlab.cli import nih as _nih_cli
from cxrlab.cli import phantom as _phantom_cli
from cxrlab.cli import reports as _reports_cli
from cxrlab.cli import score as _score_cli
from cxrlab.cli import splits as _splits_cli
from cxrlab.cli import stats as _stats_cli
from cxrlab.cli import vindr as _vindr_cli
from cxrlab.cli.common import err_console, new_app
from cxrlab.errors import CxrlabError

app = new_app("cxrlab: chest X-ray datasets with radiologist annotations, from archives to metrics.")
# In pipeline order, in panels: datasets -> imaging -> labels -> evaluation -> reports.
_DATA, _IMAGING, _LABELS, _EVAL, _REPORTS = (
    "1. Datasets",
    "2. Imaging",
    "3. Labels",
    "4. Evaluation",
    "5. Reports",
)
app.add_typer(_phantom_cli.app, name="phantom", rich_help_panel=_DATA)
app.add_typer(_nih_cli.app, name="nih", rich_help_panel=_DATA)
app.add_typer(_vindr_cli.app, name="vindr", rich_help_panel=_DATA)
app.add_typer(_splits_cli.app, name="splits", rich_help_panel=_DATA)
app.command("stats", rich_help_panel=_DATA)(_stats_cli.stats_cmd)
app.add_typer(_dicom_cli.app, name="dicom", rich_help_panel=_IMAGING)
app.command("convert", rich_help_panel=_IMAGING)(_convert_cli.convert_cmd)
app.command("deid", rich_help_panel=_IMAGING)(_deid_cli.deid_cmd)
app.add_typer(_labels_cli.app, name="labels", rich_help_panel=_LABELS)
app.command("export", rich_help_panel=_LABELS)(_export_cli.export_cmd)
app.command("score", rich_help_panel=_EVAL)(_score_cli.score)
app.add_typer(_score_cli.submission_app, name="submission", rich_help_panel=_EVAL)
app.add_typer(_reports_cli.app, name="reports", rich_help_panel=_REPORTS)
_MODEL = "6. Model"
app.command("train", rich_help_panel=_MODEL)(_model_cli.train_cmd)
app.command("predict", rich_help_panel=_MODEL)(_model_cli.predict_cmd)
app.command("evaluate", rich_help_panel=_MODEL)(_model_cli.evaluate_cmd)
app.add_typer(_annotate_cli.app, name="annotate", rich_help_panel="7. Annotate")
app.command("show", rich_help_panel="9. Look")(_look_cli.show_cmd)
app.command("report", rich_help_panel="9. Look")(_look_cli.report_cmd)


def _version(value: bool) -> None:
    if value:
        print(f"cxrlab {cxrlab.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """cxrlab: chest X-ray datasets with radiologist annotations, from archives to metrics."""


@app.command()
def cite() -> None:
    """Print the BibTeX of VinDr-CXR and ChestX-ray8, as the datasets' providers ask."""
    from cxrlab.cite import citations

    print(citations())


@app.command()
def demo(
    work: Annotated[str, typer.Option(help="Folder for the demo's data and outputs.")] = "demo-output",
    images: Annotated[int, typer.Option(help="Phantom images per dataset.")] = 40,
    seed: Annotated[int, typer.Option(help="Seed of the phantom data.")] = 0,
) -> None:
    """Walk the whole pipeline on phantom data and print what each step made."""
    from cxrlab.cli.demo import run_demo

    run_demo(work, images=images, seed=seed)


def _show_warning(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
    """A library warning (an undefined AUROC, a missing fast decoder) is one line on stderr, not a trace."""
    err_console.print(f"[yellow]warning:[/yellow] {escape(str(message))}", markup=True, highlight=False)


def app_for(args: list[str]) -> typer.Typer:
    """The app with only the command named by ``args[0]`` registered: typer builds the parameters of every
    registered command before it runs one (~30 ms of each start-up). Anything else (help, --version, a
    mistyped name) gets the whole app."""
    name = args[0] if args else ""
    commands = [c for c in app.registered_commands if (c.name or _command_name(c)) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return app
    only = copy.copy(app)
    only.registered_commands, only.registered_groups = commands, groups
    return only


def _command_name(info: typer.models.CommandInfo) -> str:
    return typer.main.get_command_name(info.callback.__name__) if info.callback else ""


def main() -> None:
    """Entry point: a :class:`CxrlabError` or an OS error becomes one line on stderr and an exit code."""
    warnings.showwarning = _show_warning
    # at exit, the interpreter's collections would walk the ~10^6 objects the imports made: ~0.1 s of CPU
    # at every command's end. Registered before the command imports its libraries, so it runs after their
    # cleanup handlers; atexit handlers, flushes and closes all run as usual, only the collections skip.
    atexit.register(gc.freeze)
    try:
        app_for(sys.argv[1:])()
    except CxrlabError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
        sys.exit(exc.exit_code)
    except OSError as exc:  # read-only folder, disk full, a file where a folder should be: one line, exit 1
        err_console.print(f"[red]error:[/red] {escape(describe_os_error(exc))}", markup=True, highlight=False)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted", markup=False)
        sys.exit(130)


def describe_os_error(exc: OSError) -> str:
    """``path: cause`` (both paths for a rename), the wording a user can act on, without the errno prefix."""
    cause = exc.strerror or type(exc).__name__
    if exc.filename is None:
        return f"{cause} ({exc})" if str(exc) and str(exc) != cause else cause
    where = str(exc.filename)
    if exc.filename2 is not None:
        where = f"{where} -> {exc.filename2}"
    return f"{where}: {cause}"


if __name__ == "__main__":
    main()
