"""cxrlab.datasets.nih_archives: verification names each broken archive and why; extraction resumes."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cxrlab.datasets.nih_archives import (
    PUBLISHED_MD5,
    read_md5_file,
    verify_archive,
    verify_folder,
)
from cxrlab.datasets.nih_extract import extract_folder
from cxrlab.errors import CxrlabError


def _png_like(rng: np.random.Generator, size: int) -> bytes:
    """Bytes that compress a little, like PNGs inside gzip: a PNG signature, then mostly noise."""
    body = rng.integers(0, 256, size, dtype=np.uint8)
    body[::7] = 0
    return b"\x89PNG\r\n\x1a\n" + body.tobytes()


def _make_archive(
    path: Path, names: list[str], seed: int, extra: list[tuple[str, bytes]] = ()
) -> dict[str, bytes]:  # type: ignore[assignment]
    rng = np.random.default_rng(seed)
    files = {name: _png_like(rng, int(rng.integers(20_000, 60_000))) for name in names}
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar:
        info = tarfile.TarInfo("images")
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
        for name, data in [*((f"images/{n}", d) for n, d in files.items()), *extra]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    return files


@pytest.fixture
def archives(tmp_path: Path) -> tuple[Path, dict[str, str], dict[str, bytes]]:
    folder = tmp_path / "raw"
    folder.mkdir()
    everything: dict[str, bytes] = {}
    for i in range(1, 4):
        names = [f"{i:08d}_{k:03d}.png" for k in range(6)]
        everything.update(_make_archive(folder / f"images_{i:03d}.tar.gz", names, seed=i))
    md5s = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("images_*.tar.gz"))}
    (folder / "images_md5.txt").write_text("".join(f"{v}  {k}\n" for k, v in md5s.items()))
    return folder, md5s, everything


@pytest.mark.parametrize("mode", ["auto", "full", "md5"])
def test_good_archives_pass(archives, mode: str) -> None:  # type: ignore[no-untyped-def]
    folder, md5s, _ = archives
    checks = verify_folder(folder, read_md5_file(folder / "images_md5.txt"), mode=mode)
    assert [c.name for c in checks] == sorted(md5s)
    assert all(c.ok for c in checks), [c.reasons for c in checks]
    assert [c.md5 for c in checks] == [md5s[c.name] for c in checks]
    if mode == "full":
        assert [c.members for c in checks] == [6, 6, 6]


def test_two_digit_names_of_the_nih_download_script(archives, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """NIH's batch_download_zips.py saves the archives as images_01.tar.gz ... images_12.tar.gz: they are
    the FAQ's images_001 ... images_012 (same MD5s), not missing archives beside unknown files."""
    folder, md5s, files = archives
    for name in md5s:
        (folder / name).rename(folder / name.replace("images_0", "images_"))
    checks = verify_folder(folder, read_md5_file(folder / "images_md5.txt"))
    assert [c.name for c in checks] == ["images_01.tar.gz", "images_02.tar.gz", "images_03.tar.gz"]
    assert all(c.ok for c in checks), [c.reasons for c in checks]
    builtin = verify_folder(folder)  # the FAQ's list: the three present are checked (and fail their MD5)
    assert len(builtin) == 12 and sum(c.status == "missing" for c in builtin) == 9
    assert {c.name for c in builtin if c.status != "missing"} == {c.name for c in checks}
    summary = extract_folder(folder, tmp_path / "out")
    assert summary.written == len(files)


def test_truncated_flipped_and_missing_archives_are_each_named(archives) -> None:  # type: ignore[no-untyped-def]
    folder, md5s, _ = archives
    one, two, three = (folder / n for n in sorted(md5s))
    cut = one.stat().st_size * 2 // 3
    with open(one, "r+b") as fh:  # a download cut short
        fh.truncate(cut)
    data = bytearray(two.read_bytes())  # one flipped byte in the middle
    data[len(data) // 2] ^= 0x01
    two.write_bytes(bytes(data))
    three.unlink()
    checks = {c.name: c for c in verify_folder(folder, md5s)}
    assert not checks[one.name].ok
    assert f"gzip stream ends early at byte {cut:,}" in checks[one.name].reasons
    assert any(r.startswith("MD5 mismatch") for r in checks[one.name].reasons)
    assert not checks[two.name].ok
    assert any(r.startswith("MD5 mismatch") for r in checks[two.name].reasons)
    assert any("gzip" in r for r in checks[two.name].reasons), checks[two.name].reasons
    assert checks[three.name].status == "missing" and checks[three.name].reasons == ["missing"]


def test_broken_tar_header_inside_a_sound_gzip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for k, size in enumerate((100, 700, 300)):
            info = tarfile.TarInfo(f"images/0000000{k}_000.png")
            info.size = size
            tar.addfile(info, io.BytesIO(bytes(size)))
    raw = bytearray(buf.getvalue())
    second_header = 512 + 512  # header + one data block of the first member
    raw[second_header + 140] ^= 0x20  # inside the mode field: the header checksum no longer matches
    path = tmp_path / "images_001.tar.gz"
    path.write_bytes(gzip.compress(bytes(raw)))
    check = verify_archive(path, None)
    assert not check.ok
    assert any("tar member broken" in r and f"offset {second_header}" in r for r in check.reasons), (
        check.reasons
    )


def test_empty_archive_and_builtin_list(tmp_path: Path) -> None:
    (tmp_path / "images_001.tar.gz").write_bytes(b"")
    checks = {c.name: c for c in verify_folder(tmp_path)}
    assert set(checks) == set(PUBLISHED_MD5)  # the FAQ's twelve, all named
    assert checks["images_001.tar.gz"].reasons == ["size: the file is empty (0 bytes)"]
    assert sum(c.status == "missing" for c in checks.values()) == 11


def test_md5_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "md5.txt"
    bad.write_text("not a checksum line\n")
    with pytest.raises(CxrlabError, match="line 1"):
        read_md5_file(bad)
    good = tmp_path / "md5b.txt"
    good.write_text("FE8ED0A6961412FDDCBB3603C11B3698 *dir/images_001.tar.gz\n")
    assert read_md5_file(good) == {"images_001.tar.gz": "fe8ed0a6961412fddcbb3603c11b3698"}


def test_md5_file_with_two_hashes_for_one_archive_is_an_error(tmp_path: Path) -> None:
    """Taking the last of two MD5s silently could pass a corrupt archive or fail a good one."""
    a, b = "ab" * 16, "cd" * 16
    same = tmp_path / "same.txt"
    same.write_text(f"{a}  images_002.tar.gz\n{a}  images_002.tar.gz\n")
    assert read_md5_file(same) == {"images_002.tar.gz": a}
    for second in ("images_002.tar.gz", "images_02.tar.gz"):  # the download script's name is the same archive
        two = tmp_path / f"two-{second}.txt"
        two.write_text(f"{a}  images_001.tar.gz\n{a}  images_002.tar.gz\n\n{b}  {second}\n")
        with pytest.raises(CxrlabError) as caught:
            read_md5_file(two)
        message = str(caught.value)
        assert message.startswith(f"{two}: two different MD5s for images_002.tar.gz")
        assert f"line 2: {a}" in message and f"line 4: {b}" in message


def test_extract_writes_all_then_resumes(archives, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _, files = archives
    out = tmp_path / "out"
    first = extract_folder(folder, out)
    assert first.written == len(files)
    for name, data in files.items():
        assert (out / "images" / name).read_bytes() == data
    assert not list((out / "images").glob("*.part"))
    again = extract_folder(folder, out)
    assert again.written == 0 and again.archives_skipped == 3

    # A PNG cut short (an interrupted run) and a leftover .part are redone; the rest skipped.
    victim = out / "images" / sorted(files)[4]
    with open(victim, "r+b") as fh:
        fh.truncate(100)
    (out / "images" / (victim.name + ".part")).write_bytes(b"junk")
    third = extract_folder(folder, out)
    assert third.written == 1 and third.redone == 1
    assert third.skipped == 5 and third.archives_skipped == 2
    assert victim.read_bytes() == files[victim.name]


def test_extract_refuses_path_traversal_and_other_folders(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    evil = [
        ("../evil.png", b"x"),
        ("/abs.png", b"y"),
        ("other/readme.txt", b"z"),
        ("images/../../up.png", b"w"),
    ]
    files = _make_archive(raw / "images_001.tar.gz", ["00000001_000.png"], seed=5, extra=evil)
    out = tmp_path / "deep" / "out"
    summary = extract_folder(raw, out)
    assert summary.written == 1
    assert sorted(os.listdir(out / "images")) == list(files)
    assert len(summary.ignored) == 4
    assert not (tmp_path / "deep" / "evil.png").exists() and not (tmp_path / "up.png").exists()


def test_extract_names_a_truncated_archive(archives, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder, _, _ = archives
    path = folder / "images_002.tar.gz"
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size // 2)
    with pytest.raises(CxrlabError, match=r"images_002\.tar\.gz: extraction stopped"):
        extract_folder(folder, tmp_path / "out")
    assert not list((tmp_path / "out" / "images").glob("*.part"))


def test_plain_tar_under_a_tar_gz_name_is_named_and_still_extracts(tmp_path: Path) -> None:
    """A download decompressed on the way (a plain tar kept under the .tar.gz name) is said to be that,
    not 'gzip data corrupt'; its members are intact, so extract reads it."""
    raw = tmp_path / "raw"
    raw.mkdir()
    files = _make_archive(raw / "images_001.tar.gz", ["00000001_000.png", "00000001_001.png"], seed=9)
    plain = gzip.decompress((raw / "images_001.tar.gz").read_bytes())
    (raw / "images_001.tar.gz").write_bytes(plain)
    check = verify_archive(raw / "images_001.tar.gz", None)
    assert not check.ok
    assert any("not gzip-compressed" in r and "plain tar" in r for r in check.reasons), check.reasons
    assert not any("corrupt" in r for r in check.reasons)
    assert check.members == 2
    (raw / "images_001.tar.gz").write_bytes(plain[: len(plain) // 2])
    cut = verify_archive(raw / "images_001.tar.gz", None)
    assert any("tar stream ends inside" in r for r in cut.reasons), cut.reasons
    (raw / "images_001.tar.gz").write_bytes(plain)
    summary = extract_folder(raw, tmp_path / "out")
    assert summary.written == 2
    for name, data in files.items():
        assert (tmp_path / "out" / "images" / name).read_bytes() == data


# ------------------------------------------------------------------------------- the NIH phantom
def _phantom_copy(nih_phantom: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "phantom"
    shutil.copytree(nih_phantom, folder)
    return folder


def test_phantom_archives_verify_against_its_md5_list(nih_phantom: Path) -> None:
    md5s = read_md5_file(nih_phantom / "images_md5.txt")
    checks = verify_folder(nih_phantom, md5s, mode="full")
    assert len(checks) == 3 and all(c.ok for c in checks), [c.reasons for c in checks]
    assert sum(c.members or 0 for c in checks) == 30


def test_phantom_truncated_archive_and_flipped_byte_are_each_named(nih_phantom: Path, tmp_path: Path) -> None:
    folder = _phantom_copy(nih_phantom, tmp_path)
    md5s = read_md5_file(folder / "images_md5.txt")
    cut_path, flip_path, good_path = (folder / n for n in sorted(md5s))
    cut = cut_path.stat().st_size - 4096
    with open(cut_path, "r+b") as fh:
        fh.truncate(cut)
    data = bytearray(flip_path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    flip_path.write_bytes(bytes(data))
    checks = {c.name: c for c in verify_folder(folder, md5s)}
    assert checks[good_path.name].ok
    truncated = checks[cut_path.name]
    assert not truncated.ok and f"gzip stream ends early at byte {cut:,}" in truncated.reasons
    flipped = checks[flip_path.name]
    assert not flipped.ok
    assert flipped.reasons[0] == f"MD5 mismatch (expected {md5s[flip_path.name]}, got {flipped.md5})"
    assert len(flipped.reasons) >= 2 and "gzip" in flipped.reasons[1]  # the walk says where it broke


def test_phantom_extract_then_index_reads_png_sizes(nih_phantom: Path, tmp_path: Path) -> None:
    from cxrlab.datasets.nih import index_nih

    out = tmp_path / "out"
    summary = extract_folder(nih_phantom, out)
    assert summary.written == 30
    (out / "images" / sorted(os.listdir(out / "images"))[0]).unlink()
    index = index_nih(nih_phantom, images_dir=out)
    assert index.images["has_png"].sum() == 29
    assert set(index.images.loc[index.images["has_png"], "width"]) == {256}  # the phantom's PNG size
    kinds = {p.kind: p for p in index.problems}
    assert kinds["png-missing"].count == 1
    assert kinds["png-size"].severity == "note"
