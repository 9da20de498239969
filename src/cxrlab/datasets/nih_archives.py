"""The NIH image archives (``images_001.tar.gz`` ... ``images_012.tar.gz``): verify and extract, streaming.

Verification hashes each archive (MD5, large reads, as fast as ``md5sum``) and explains a failure with a
structure walk: a zlib ``decompressobj`` inflates the stream and a tar header walker checks every member
header. A download cut short (FAQ Q01) shows as "gzip stream ends early at byte N"; a flipped byte as an
MD5 mismatch and usually a gzip CRC or deflate error; a damaged tar header as "tar member broken". By default
(``auto``) the walk runs only when the MD5 does not match or none is known (a matching published MD5 already
proves the archive intact), so a good archive costs one read at hashing speed; ``full`` walks every archive
in a second thread during the same pass (zlib and hashlib release the GIL); inflating costs more CPU than
hashing, so that pass runs at inflate speed.

Extraction (:mod:`cxrlab.datasets.nih_extract`) streams each archive through the same checks and gives
its PNGs their final names only once the whole archive has proved sound.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.params import check_choice
from cxrlab.progress import maybe_progress

# The MD5s published in the NIH FAQ (Q07, contributed by Utku Ozbulak).
PUBLISHED_MD5: dict[str, str] = {
    "images_001.tar.gz": "fe8ed0a6961412fddcbb3603c11b3698",
    "images_002.tar.gz": "ab07a2d7cbe6f65ddd97b4ed7bde10bf",
    "images_003.tar.gz": "2301d03bde4c246388bad3876965d574",
    "images_004.tar.gz": "9f1b7f5aae01b13f4bc8e2c44a4b8ef6",
    "images_005.tar.gz": "1861f3cd0ef7734df8104f2b0309023b",
    "images_006.tar.gz": "456b53a8b351afd92a35bc41444c58c8",
    "images_007.tar.gz": "1075121ea20a137b87f290d6a4a5965e",
    "images_008.tar.gz": "b61f34cec3aa69f295fbb593cbd9d443",
    "images_009.tar.gz": "442a3caa61ae9b64e61c561294d1e183",
    "images_010.tar.gz": "09ec81c4c31e32858ad8cf965c494b74",
    "images_011.tar.gz": "499aefc67207a5a97692424cf5dbeed5",
    "images_012.tar.gz": "dc9fda1757c2de0032b63347a7d2895c",
}
ARCHIVE_PATTERN = re.compile(r"^images_(\d{2,3})\.tar\.gz$")
"""``images_001.tar.gz`` as the FAQ names them, or ``images_01.tar.gz`` as NIH's batch_download_zips.py
saves them."""
CHUNK = 8 << 20  # 8 MiB reads: large enough that hashlib/zlib run at full speed, small enough for memory
BLOCK = tarfile.BLOCKSIZE
_MD5_LINE = re.compile(r"^\s*([0-9a-fA-F]{32})\s+\*?(.+?)\s*$")


# ----------------------------------------------------------------------------------------------- verify
@dataclass
class ArchiveCheck:
    """The outcome for one archive: ``ok`` is False with the reasons when anything is wrong."""

    name: str
    ok: bool
    reasons: list[str] = field(default_factory=list)
    size: int | None = None
    md5: str | None = None
    expected_md5: str | None = None
    members: int | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.ok:
            return "ok"
        return "missing" if self.size is None else "failed"


def archive_key(name: str) -> str:
    """The FAQ's name of an archive (``images_01.tar.gz`` -> ``images_001.tar.gz``); other names as given."""
    m = ARCHIVE_PATTERN.match(name)
    return f"images_{int(m.group(1)):03d}.tar.gz" if m else name


def read_md5_file(path: str | Path) -> dict[str, str]:
    """An ``md5sum``-style list (``<md5>  <name>``, ``*`` for binary mode allowed); names by basename."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path}: cannot be read ({exc})") from None
    out: dict[str, str] = {}
    seen: dict[str, tuple[int, str]] = {}  # archive_key -> (line, md5): one archive, one MD5
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _MD5_LINE.match(line)
        if not m:
            raise CxrlabError(f"{path}: line {number} is not '<32 hex digits>  <file name>': {line[:60]!r}")
        name, md5 = PurePosixPath(m.group(2)).name, m.group(1).lower()
        earlier = seen.setdefault(archive_key(name), (number, md5))
        if earlier[1] != md5:
            raise CxrlabError(
                f"{path}: two different MD5s for {archive_key(name)} (line {earlier[0]}: {earlier[1]}, "
                f"line {number}: {md5}); keep the one that belongs to your download"
            )
        out[name] = md5
    if not out:
        raise CxrlabError(f"{path}: no MD5 lines")
    return out


class TarWalker:
    """Checks the tar structure of a decompressed byte stream fed in pieces, without keeping member data.

    Validates each 512-byte header (checksum, size field) and skips member data; knows the end-of-archive
    zero blocks. ``error`` holds the first structural problem found.
    """

    def __init__(self) -> None:
        self.offset = 0  # bytes of tar stream consumed
        self.skip = 0  # member data (+ padding) still to skip
        self.header = bytearray()
        self.members = 0
        self.ended = False  # saw the zero block(s) that end an archive
        self.error: str | None = None
        self.last_member: str | None = None

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        pos, n = 0, len(view)
        while pos < n and self.error is None:
            if self.skip:
                step = min(self.skip, n - pos)
                self.skip -= step
                pos += step
                continue
            if self.ended:  # after the end marker only zero padding is allowed
                rest = bytes(view[pos:])
                if rest.strip(b"\0"):
                    self.error = (
                        f"non-zero data after the end-of-archive marker at tar offset {self.offset + pos}"
                    )
                return self._advance(n)
            need = BLOCK - len(self.header)
            self.header += view[pos : pos + need]
            pos += min(need, n - pos)
            if len(self.header) == BLOCK:
                self._header_block(self.offset + pos - BLOCK)
                self.header.clear()
        self._advance(n)

    def _advance(self, n: int) -> None:
        self.offset += n

    def _header_block(self, at: int) -> None:
        block = bytes(self.header)
        if not block.strip(b"\0"):
            self.ended = True
            return
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            after = f" after member {self.last_member}" if self.last_member else ""
            self.error = f"tar member broken: bad header at tar offset {at}{after} ({exc})"
            return
        self.members += info.type in tarfile.REGULAR_TYPES
        self.last_member = info.name
        if info.type not in (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE):
            self.skip = -(-info.size // BLOCK) * BLOCK

    def finish(self) -> str | None:
        """The structural problem of the stream as a whole, or None."""
        if self.error:
            return self.error
        if self.header:
            return f"tar member broken: the tar stream ends inside a header (after member {self.last_member})"
        if self.skip:
            return f"tar member broken: the tar stream ends inside member {self.last_member}"
        if not self.ended:
            return "tar member broken: no end-of-archive marker"
        return None


class GzipTarChecker:
    """Inflates a gzip stream fed in raw pieces and walks the tar inside; gzip CRC and length are checked."""

    def __init__(self) -> None:
        self.inflater = zlib.decompressobj(wbits=31)
        self.walker = TarWalker()
        self.raw = 0
        self.error: str | None = None
        self.done = False  # the gzip stream ended properly
        self.trailing = 0

    def feed(self, data: bytes) -> None:
        if self.error:
            self.raw += len(data)
            return
        start = self.raw
        self.raw += len(data)
        if self.done:  # bytes after the gzip stream: another member (concatenated gzip) or garbage
            if not data.strip(b"\0"):
                self.trailing += len(data)
                return
            self.inflater = zlib.decompressobj(wbits=31)
            self.done = False
        try:
            out = self.inflater.decompress(data)
        except zlib.error as exc:
            if "incorrect data check" in str(exc) or "incorrect length check" in str(exc):
                self.error = (
                    f"gzip CRC/length check failed at the end of the stream, byte {self.raw:,} ({exc})"
                )
            else:
                self.error = f"gzip data corrupt within bytes {start:,}-{self.raw:,} ({exc})"
            return
        self.walker.feed(out)
        if self.inflater.eof:
            self.done = True
            rest = self.inflater.unused_data
            if rest:
                self.feed_rest(rest)

    def feed_rest(self, rest: bytes) -> None:
        self.raw -= len(rest)
        self.feed(rest)

    def finish(self) -> list[str]:
        """Reasons the stream is broken; a tar problem is reported on its own only for a sound gzip."""
        reasons = []
        if self.error:
            reasons.append(self.error)
        elif not self.done:
            reasons.append(f"gzip stream ends early at byte {self.raw:,}")
        if reasons:
            if self.walker.error:
                reasons.append(self.walker.error)
        else:
            tar = self.walker.finish()
            if tar:
                reasons.append(tar)
        return reasons


class PlainTarChecker:
    """Walks an uncompressed tar kept under a ``.tar.gz`` name (a download decompressed on the way, as some
    browsers and proxies do): not the published file, but its members may well be intact."""

    def __init__(self) -> None:
        self.walker = TarWalker()

    def feed(self, data: bytes) -> None:
        self.walker.feed(data)

    def finish(self) -> list[str]:
        reasons = [
            "not gzip-compressed: a plain tar under a .tar.gz name (decompressed on the way?); "
            "extract still reads it"
        ]
        tar = self.walker.finish()
        return [*reasons, tar] if tar else reasons


def _is_plain_tar(head: bytes) -> bool:
    """No gzip magic, and a POSIX/GNU tar header (``ustar`` at offset 257) at the start."""
    return not head.startswith(b"\x1f\x8b") and head[257:262] == b"ustar"


CHECK_MODES = ("auto", "full", "md5")


def check_structure(path: Path) -> GzipTarChecker | PlainTarChecker:
    """Inflate and walk one archive (its own read of the file); ``finish()`` gives the reasons."""
    with open(path, "rb", buffering=0) as fh:
        head = fh.read(BLOCK)
        checker = PlainTarChecker() if _is_plain_tar(head) else GzipTarChecker()
        checker.feed(head)
        while chunk := fh.read(CHUNK):
            checker.feed(chunk)
    return checker


def hash_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """MD5 hex digest of a file, read in large chunks into one reused buffer."""
    md5 = hashlib.md5()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            md5.update(view[:n])
            if on_bytes:
                on_bytes(n)
    return md5.hexdigest()


def verify_archive(
    path: str | Path,
    expected_md5: str | None,
    *,
    mode: str = "auto",
    on_bytes: Callable[[int], None] | None = None,
) -> ArchiveCheck:
    """Check one archive: MD5 against ``expected_md5`` and the gzip + tar structure.

    ``mode``: ``md5`` hashes only; ``full`` also inflates and walks the whole tar in a second thread during
    the same pass; ``auto`` (default) hashes, then walks the structure only when the MD5 does not match or
    none is known, to say why (truncated at byte N, corrupt deflate data, broken tar header).
    """
    check_choice(mode, CHECK_MODES, "mode")
    path = Path(path)
    check = ArchiveCheck(name=path.name, ok=False, expected_md5=expected_md5)
    if not path.is_file():
        check.reasons.append("missing")
        return check
    t0 = time.perf_counter()
    check.size = path.stat().st_size
    if check.size == 0:
        check.reasons.append("size: the file is empty (0 bytes)")
        check.md5 = hashlib.md5(b"").hexdigest()
        return check
    checker: GzipTarChecker | PlainTarChecker | None = None
    if mode == "full":
        with ThreadPoolExecutor(max_workers=1) as pool:
            walk = pool.submit(check_structure, path)
            check.md5 = hash_file(path, on_bytes)
            checker = walk.result()
    else:
        check.md5 = hash_file(path, on_bytes)
    matched = expected_md5 is not None and check.md5 == expected_md5.lower()
    if mode == "auto" and not matched:
        checker = check_structure(path)
    if expected_md5 is None and checker is not None:
        check.notes.append("no MD5 to compare with: the gzip and tar structure alone decide")
    elif expected_md5 is not None and not matched:
        check.reasons.append(f"MD5 mismatch (expected {expected_md5}, got {check.md5})")
    if checker is not None:
        check.reasons.extend(checker.finish())
        check.members = checker.walker.members
    elif expected_md5 is None:
        check.reasons.append("no MD5 to compare with and the structure was not checked (check mode md5)")
    check.ok = not check.reasons
    check.seconds = time.perf_counter() - t0
    return check


def verify_folder(
    folder: str | Path,
    md5s: dict[str, str] | None = None,
    *,
    mode: str = "auto",
    progress: bool = False,
) -> list[ArchiveCheck]:
    """Check every archive named in ``md5s`` (default: the FAQ's list) plus any other ``images_NNN.tar.gz``
    present (``images_NN.tar.gz``, the download script's names, stand for the FAQ's ``images_0NN.tar.gz``);
    a missing or failing archive does not stop the others."""
    check_choice(mode, CHECK_MODES, "mode")
    folder = Path(folder)
    if not folder.is_dir():
        raise CxrlabError(f"{folder}: no such folder")
    md5s = {archive_key(k): v for k, v in (PUBLISHED_MD5 if md5s is None else md5s).items()}
    present = sorted(p.name for p in folder.iterdir() if ARCHIVE_PATTERN.match(p.name))
    covered = {archive_key(n) for n in present}
    names = sorted([*present, *(k for k in md5s if k not in covered)], key=lambda n: (archive_key(n), n))
    total = sum((folder / n).stat().st_size for n in names if (folder / n).is_file())
    results: list[ArchiveCheck] = []
    with maybe_progress(progress, bytes_=True) as bar:
        task = bar.add_task("verifying", total=total) if bar is not None else None
        for name in names:
            if bar is not None and task is not None:
                bar.update(task, description=name)
            advance = (lambda n: bar.advance(task, n)) if bar is not None and task is not None else None
            expected = md5s.get(archive_key(name))
            results.append(verify_archive(folder / name, expected, mode=mode, on_bytes=advance))
    return results


def checks_to_json(checks: list[ArchiveCheck]) -> dict[str, object]:
    return {
        "ok": all(c.ok for c in checks),
        "archives": [{**asdict(c), "status": c.status} for c in checks],
    }


_MOVED = ("ExtractSummary", "extract_archive", "extract_folder")


def __getattr__(name: str) -> Any:
    """Extraction moved to :mod:`cxrlab.datasets.nih_extract`; its names stay importable from here."""
    if name in _MOVED:
        from cxrlab.datasets import nih_extract

        return getattr(nih_extract, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PUBLISHED_MD5",
    "ArchiveCheck",
    "archive_key",
    "checks_to_json",
    "read_md5_file",
    "verify_archive",
    "verify_folder",
]
