"""PACS import against a real Orthanc (Debian's, with its DICOMweb plugin), run in a private network
namespace because Orthanc 1.10 cannot listen on loopback alone."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.annotate.conftest import missing
from tests.conftest import REPO


def _plugin() -> str | None:
    found = glob.glob("/usr/share/orthanc/plugins/libOrthancDicomWeb.so*") + glob.glob(
        "/usr/lib/orthanc/libOrthancDicomWeb.so*"
    )
    return found[0] if found else None


def test_dicomweb_import_from_orthanc_gives_the_files_pixels(vindr_phantom: Path, tmp_path: Path) -> None:
    plugin = _plugin()
    if shutil.which("Orthanc") is None or plugin is None:
        missing("Orthanc or its DICOMweb plugin is not installed (Debian orthanc, orthanc-dicomweb)")
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        missing("a private network namespace (unshare -n) needs root: PACS test skipped")
    res = subprocess.run(
        [
            "unshare",
            "-n",
            sys.executable,
            "-m",
            "tests.annotate.pacs_helper",
            str(tmp_path),
            str(vindr_phantom),
            plugin,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        env={**os.environ, "CXRLAB_NO_PROGRESS": "1"},
    )
    assert res.returncode == 0, res.stdout + res.stderr[-3000:]
    checks = json.loads(res.stdout.strip().splitlines()[-1])
    assert checks["added"] > 0 and checks["pixels_equal"] == checks["added"] and checks["frame_equal"]
