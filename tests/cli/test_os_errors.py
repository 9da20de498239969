"""OS errors (a file where a folder should be, a missing folder) become one line on stderr and exit 1."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

from cxrlab.cli.main import describe_os_error


def test_describe_os_error_names_the_path_and_the_cause() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/data/out/x.png")
    assert describe_os_error(exc) == "/data/out/x.png: No space left on device"
    renamed = OSError(errno.EXDEV, "Invalid cross-device link", "/a/tmp", None, "/b/final")
    assert describe_os_error(renamed) == "/a/tmp -> /b/final: Invalid cross-device link"


def test_output_under_a_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    run = subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", "phantom", "nih", str(blocker / "out"), "--images", "2"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, run.stderr
    assert str(blocker) in lines[0] and "Traceback" not in run.stderr
