from __future__ import annotations

import subprocess
import sys

from cxrlab import __version__


def _cxrlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True, check=False
    )


def test_version_and_help() -> None:
    out = _cxrlab("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"cxrlab {__version__}"
    helped = _cxrlab("-h")
    assert helped.returncode == 0
    assert "cite" in helped.stdout and "demo" in helped.stdout
    assert "phantom" in helped.stdout


def test_cite_prints_both_bibtex_entries() -> None:
    out = _cxrlab("cite")
    assert out.returncode == 0
    assert "@misc{nguyen2020vindrcxr" in out.stdout
    assert "@inproceedings{wang2017chestxray8" in out.stdout
    assert "arXiv" in out.stdout


def test_unknown_command_is_a_usage_error() -> None:
    out = _cxrlab("no-such-verb")
    assert out.returncode == 2
