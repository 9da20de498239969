"""cxrlab.locking: one holder per folder, the holder named, the lock freed when its process dies."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cxrlab.errors import CxrlabError
from cxrlab.locking import LOCK_NAME, FolderLockedError, describe_holder, lock_folder, read_holder

_HOLD = """
import sys, time
from cxrlab.locking import lock_folder
with lock_folder(sys.argv[1], "test holder"):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder_process(folder: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_the_lock_names_its_holder_and_is_released(tmp_path: Path) -> None:
    folder = tmp_path / "new" / "out"
    with lock_folder(folder, "nih extract") as path:
        assert path == folder / LOCK_NAME
        holder = read_holder(path)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        assert holder["purpose"] == "nih extract" and holder["started"].endswith("UTC")
        with pytest.raises(FolderLockedError) as caught, lock_folder(folder, "convert"):
            pass  # pragma: no cover - must not be reached
        assert isinstance(caught.value, CxrlabError) and caught.value.exit_code == 1
        message = str(caught.value)
        assert message.startswith(f"{folder}: in use by another cxrlab run (nih extract, pid {os.getpid()}")
        assert caught.value.holder == holder
    assert not (folder / LOCK_NAME).exists()
    with lock_folder(folder, "again"):  # free again
        pass


def test_a_lock_held_by_another_process_and_freed_by_kill_9(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path)
    try:
        with (
            pytest.raises(FolderLockedError, match=rf"test holder, pid {proc.pid} on host"),
            lock_folder(tmp_path, "second"),
        ):
            pass  # pragma: no cover
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    # The file is left behind by the killed holder, but its lock died with it.
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == proc.pid
    with lock_folder(tmp_path, "after the crash") as path:
        assert read_holder(path)["purpose"] == "after the crash"


def test_a_stale_or_garbage_lock_file_does_not_block(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("not json at all")
    assert read_holder(tmp_path / LOCK_NAME) == {}
    with lock_folder(tmp_path, "x"):
        pass
    assert describe_holder({}) == "an unknown process"


def test_many_processes_racing_never_hold_it_together(tmp_path: Path) -> None:
    """Eight processes each try 20 times to take the lock and append to a file while holding it: the
    appends never overlap (a held lock is never handed out twice, even while holders unlink the file)."""
    script = """
import os, sys, time
from cxrlab.locking import FolderLockedError, lock_folder
folder, log = sys.argv[1], sys.argv[2]
got = 0
for _ in range(20):
    try:
        with lock_folder(folder, "race"):
            with open(log, "a") as fh:
                fh.write(f"in {os.getpid()}\\n"); fh.flush()
                time.sleep(0.002)
                fh.write(f"out {os.getpid()}\\n")
            got += 1
    except FolderLockedError:
        time.sleep(0.001)
print(got)
"""
    log = tmp_path / "log.txt"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path / "f"), str(log)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    deadline = time.time() + 120
    total = 0
    for p in procs:
        out, _ = p.communicate(timeout=max(1, deadline - time.time()))
        total += int(out.strip())
    lines = log.read_text().splitlines()
    assert total >= 1 and len(lines) == 2 * total
    for enter, leave in zip(lines[::2], lines[1::2], strict=True):
        assert enter.startswith("in ") and leave == "out " + enter.removeprefix("in ")
