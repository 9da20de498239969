"""Start-up stays light: the command line imports the heavy libraries only in the command that uses them,
so that ``cxrlab --help`` and a short command do not pay ~0.5 s of imports (pandas, torch, OpenCV...)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import realdata_path

HEAVY = ("pandas", "pyarrow", "numpy", "torch", "torchvision", "cv2", "pydicom", "matplotlib", "scipy",
         "distributed", "sklearn")  # fmt: skip

PROBE = """
import sys
sys.argv = ["cxrlab", *{args!r}]
from cxrlab.cli.main import main
try:
    main()
except SystemExit:
    pass
print("LOADED", ",".join(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(args=list(args), heavy=HEAVY)],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED"))
    return {m for m in line.removeprefix("LOADED").strip().split(",") if m}


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("convert", "--help"), ("reports", "--help")])
def test_help_and_version_import_no_heavy_library(args: tuple[str, ...]) -> None:
    assert _loaded(*args) == set()


def test_the_probe_sees_an_import() -> None:
    """The probe itself works: a command that reads a DICOM shows pydicom and numpy loaded."""
    dicom = realdata_path("images/dicom/Fake_MONOHR1.dcm")
    assert {"pydicom", "numpy"} <= _loaded("dicom", "inspect", str(dicom))


@pytest.mark.parametrize("args", [["convert", "--help"], ["labels", "--help"], ["cite"], ["demo", "--help"]])
def test_the_one_command_app_behaves_as_the_whole_app(args: list[str]) -> None:
    """main builds only the command being run; its output is the whole app's, and any other first word
    (an option, a mistyped name) gets the whole app."""
    from typer.testing import CliRunner

    from cxrlab.cli.main import app, app_for

    only = app_for(args)
    assert only is not app and len(only.registered_commands) + len(only.registered_groups) == 1
    runner = CliRunner()
    whole, single = runner.invoke(app, args), runner.invoke(only, args)
    assert (single.exit_code, single.output) == (whole.exit_code, whole.output)
    assert app_for(["--version"]) is app and app_for(["convrt"]) is app and app_for([]) is app


def test_collector_paused_restores_the_collector() -> None:
    import gc

    from cxrlab.cli.common import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()
