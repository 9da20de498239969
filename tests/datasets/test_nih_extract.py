"""``nih extract`` never gives a damaged PNG its final name; "already present" means verified; one run
per output folder."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from test_nih_archives import _png_like

from cxrlab.datasets.nih_extract import STATE_DIR, ArchiveDamaged, extract_folder, read_record
from cxrlab.errors import CxrlabError
from cxrlab.locking import FolderLockedError, lock_folder


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"images/{name}")
            info.size, info.mtime = len(data), 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _files(seed: int, n: int = 8) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    return {f"{seed:08d}_{k:03d}.png": _png_like(rng, int(rng.integers(5_000, 30_000))) for k in range(n)}


def _write_gz(path: Path, tar: bytes, level: int = 6) -> None:
    path.write_bytes(gzip.compress(tar, compresslevel=level, mtime=0))


def _final_files(out: Path) -> dict[str, bytes]:
    folder = out / "images"
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.endswith(".part")}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_byte_flipped_mid_stream_never_reaches_a_final_name_and_a_good_archive_repairs(
    tmp_path: Path, seed: int
) -> None:
    """Stored deflate blocks inflate a flipped byte without complaint: only the gzip CRC at the end of
    the stream catches it. Nothing of the archive may get its final name; the good archive then fills in."""
    files = _files(seed)
    tar = _tar_bytes(files)
    raw = tmp_path / "raw"
    raw.mkdir()
    archive = raw / "images_001.tar.gz"
    _write_gz(archive, tar, level=0)
    good = archive.read_bytes()
    rng = np.random.default_rng(seed)
    bad = bytearray(good)
    # A byte inside some member's data (past the first header, before the end blocks).
    offset = int(rng.integers(2_000, len(good) - 3_000))
    bad[offset] ^= 0x5A
    archive.write_bytes(bytes(bad))
    out = tmp_path / "out"
    with pytest.raises(ArchiveDamaged, match=r"images_001\.tar\.gz: extraction stopped \(gzip"):
        extract_folder(raw, out)
    assert _final_files(out) == {}, "nothing of a damaged archive gets a final name"
    assert not list((out / "images").glob("*.part"))
    archive.write_bytes(good)
    summary = extract_folder(raw, out)
    assert summary.written == len(files)
    assert _final_files(out) == files


def test_a_bad_file_under_a_final_name_with_the_right_size_is_repaired(tmp_path: Path) -> None:
    """What an earlier version left behind (a corrupt PNG of the member's size, no verified record) is
    not "already present": the next extract rewrites it."""
    files = _files(4)
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(files))
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    victim = sorted(files)[2]
    corrupt = bytearray(files[victim])
    corrupt[len(corrupt) // 2] ^= 0xFF
    (out / "images" / victim).write_bytes(bytes(corrupt))
    (out / STATE_DIR).mkdir()
    old_record = {"archive_size": 1, "members": {n: len(d) for n, d in files.items()}}
    (out / STATE_DIR / "images_001.tar.gz.json").write_text(json.dumps(old_record))
    summary = extract_folder(raw, out)
    assert summary.written == len(files) and summary.redone == 1
    assert _final_files(out) == files
    _, record = read_record(out, raw / "images_001.tar.gz")
    assert {n: r.size for n, r in record.items()} == {n: len(d) for n, d in files.items()}

    # Verified now: a re-run skips the whole archive; a file changed since is rewritten, others skipped.
    assert extract_folder(raw, out).archives_skipped == 1
    (out / "images" / victim).write_bytes(bytes(corrupt))
    again = extract_folder(raw, out)
    assert again.written == 1 and again.skipped == len(files) - 1
    assert _final_files(out) == files


def test_a_changed_archive_member_is_rewritten_even_when_the_file_looks_verified(tmp_path: Path) -> None:
    """The record is checked against the archive's member (CRC of its bytes), not just the file's size."""
    files = _files(5)
    raw = tmp_path / "raw"
    raw.mkdir()
    archive = raw / "images_001.tar.gz"
    _write_gz(archive, _tar_bytes(files))
    out = tmp_path / "out"
    extract_folder(raw, out)
    name = sorted(files)[0]
    changed = dict(files)
    data = bytearray(files[name])
    data[-1] ^= 1
    changed[name] = bytes(data)  # same size, other bytes
    _write_gz(archive, _tar_bytes(changed), level=1)
    summary = extract_folder(raw, out)
    assert summary.written == 1 and summary.skipped == len(files) - 1
    assert _final_files(out) == changed


def test_a_garbage_tar_header_is_damage_not_the_end_of_the_archive(tmp_path: Path) -> None:
    """tarfile reads an invalid header after the first as the end of the archive (the members after it
    silently missing); extraction names it and gives none of the archive's files a final name."""
    files = _files(6)
    tar = bytearray(_tar_bytes(files))
    # The fourth member's header: skip three headers and their data (padded to 512).
    offset = 0
    for data in list(files.values())[:3]:
        offset += 512 + -(-len(data) // 512) * 512
    tar[offset + 148 : offset + 156] = b"garbage!"  # its checksum field
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_gz(raw / "images_001.tar.gz", bytes(tar))
    out = tmp_path / "out"
    with pytest.raises(ArchiveDamaged, match="tar member broken"):
        extract_folder(raw, out)
    assert _final_files(out) == {}


def test_a_sound_archive_is_extracted_even_when_another_is_damaged(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    first, second = _files(7), _files(8)
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(first))
    data = gzip.compress(_tar_bytes(second), mtime=0)
    (raw / "images_002.tar.gz").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ArchiveDamaged, match=r"images_002\.tar\.gz: extraction stopped \(gzip stream ends"):
        extract_folder(raw, tmp_path / "out")
    assert _final_files(tmp_path / "out") == first


def test_a_second_run_into_the_same_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(_files(9, n=2)))
    out = tmp_path / "out"
    with lock_folder(out, "nih extract"):
        with pytest.raises(
            FolderLockedError, match=rf"in use by another cxrlab run \(nih extract, pid {os.getpid()}"
        ):
            extract_folder(raw, out)
        run = subprocess.run(
            [sys.executable, "-m", "cxrlab.cli.main", "nih", "extract", str(raw), str(out)],
            capture_output=True,
            text=True,
        )
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"pid {os.getpid()}" in lines[0] and "Traceback" not in run.stderr
    assert _final_files(out) == {}
    assert extract_folder(raw, out).written == 2  # the lock is free again


def test_two_extracts_at_once_one_runs_the_other_refuses_or_follows(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    files = {**_files(10, n=30), **_files(11, n=30)}
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(files), level=9)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cxrlab.cli.main", "nih", "extract", str(raw), str(out), "--json"]
    runs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in runs]
    for p in runs:
        for stream in (p.stdout, p.stderr):
            if stream:
                stream.close()
    codes = sorted(code for code, _ in results)
    assert codes in ([0, 0], [0, 1]), results
    for code, err in results:
        assert "Traceback" not in err
        if code == 1:
            assert "in use by another cxrlab run (nih extract, pid" in err
    assert _final_files(out) == files


def test_an_output_path_that_is_a_file_is_one_line_exit_1(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(_files(12, n=2)))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    for out in (blocker, blocker / "out"):
        run = subprocess.run(
            [sys.executable, "-m", "cxrlab.cli.main", "nih", "extract", str(raw), str(out)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 1, run.stderr
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and str(blocker) in lines[0] and "Traceback" not in run.stderr
    assert blocker.read_text() == "x"


def test_disk_full_on_a_write_leaves_no_final_file_and_no_part(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on the fifth member: an OSError naming the .part file, nothing of the archive renamed."""
    import errno

    from cxrlab.datasets import nih_extract

    raw = tmp_path / "raw"
    raw.mkdir()
    files = _files(13)
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(files))
    real = nih_extract._copy_to_part
    calls = {"n": 0}

    def full_disk(src, part, head=b""):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(part))
        return real(src, part, head)

    monkeypatch.setattr(nih_extract, "_copy_to_part", full_disk)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="No space left") as caught:
        extract_folder(raw, out)
    assert str(caught.value.filename).endswith(".part")
    assert os.listdir(out / "images") == []
    assert not (out / STATE_DIR / "images_001.tar.gz.json").exists()
    monkeypatch.undo()
    assert extract_folder(raw, out).written == len(files)
    assert _final_files(out) == files
    assert not isinstance(caught.value, CxrlabError)


def test_kill_9_mid_archive_leaves_no_final_name_and_the_rerun_completes(tmp_path: Path) -> None:
    """A run killed while its archive's PNGs are still .part files: none has a final name, the lock dies
    with the process, and the next run writes every PNG byte for byte."""
    import signal
    import time

    raw = tmp_path / "raw"
    raw.mkdir()
    files = {**_files(20, n=40), **_files(21, n=40)}
    _write_gz(raw / "images_001.tar.gz", _tar_bytes(files), level=1)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cxrlab.cli.main", "nih", "extract", str(raw), str(out), "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "images").is_dir() and any(p.suffix == ".part" for p in (out / "images").iterdir()):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    proc.wait(timeout=60)
    finals = _final_files(out)
    if proc.returncode == -signal.SIGKILL:
        assert finals == {}, "killed mid-archive: no PNG of it may have its final name"
    summary = extract_folder(raw, out)
    assert _final_files(out) == files
    assert not list((out / "images").glob("*.part"))
    assert summary.archives == 1
