"""Atomic writes: the final name holds either the old file or the whole new one, and no temporary is left."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cxrlab.atomic import atomic_path, write_bytes_atomic, write_text_atomic


def test_success_writes_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.bin"  # the parent folder is created
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target
        assert not target.exists()  # nothing under the final name while writing
        tmp.write_bytes(b"payload")
    assert target.read_bytes() == b"payload"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]


def test_exception_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_exception_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old and longer")
    write_text_atomic(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_suffix_and_hidden_temporary_name(tmp_path: Path) -> None:
    target = tmp_path / "table.csv"
    with atomic_path(target, suffix=".part") as tmp:
        seen = tmp.name
        tmp.write_text("a\n")
    assert seen.startswith(".table.csv.") and seen.endswith(".part")


def test_fixed_temporary_name_overwrites_a_leftover(tmp_path: Path) -> None:
    target = tmp_path / "img.png"
    leftover = tmp_path / "img.png.part"
    leftover.write_bytes(b"junk from an interrupted run")
    with atomic_path(target, temp_name="img.png.part") as tmp, open(tmp, "wb") as fh:
        assert tmp == leftover
        fh.write(b"png")
    assert target.read_bytes() == b"png"
    assert not leftover.exists()


def test_fixed_temporary_name_is_removed_on_error(tmp_path: Path) -> None:
    target = tmp_path / "img.png"
    with pytest.raises(OSError), atomic_path(target, temp_name="img.png.part") as tmp:
        tmp.write_bytes(b"half")
        raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_fixed_temporary_name_must_stay_in_the_folder(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="plain file name"),
        atomic_path(tmp_path / "a", temp_name="../a.tmp"),
    ):
        pass


def test_usual_permissions_not_mkstemp_private(tmp_path: Path) -> None:
    mask = os.umask(0o022)
    os.umask(mask)
    path = write_bytes_atomic(tmp_path / "x.bin", b"\x00\x01")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
    assert path.read_bytes() == b"\x00\x01"


def test_text_is_utf8_and_line_ends_are_kept(tmp_path: Path) -> None:
    path = write_text_atomic(tmp_path / "x.txt", "Phổi\r\nb\n")
    assert path.read_bytes() == "Phổi\r\nb\n".encode()
