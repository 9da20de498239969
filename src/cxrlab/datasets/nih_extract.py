"""Extract the NIH image archives, streaming, so that no damaged PNG ever gets its final name.

An archive is one gzip stream whose CRC covers every member: a byte flipped in member 5,000 of 10,000 may
inflate without complaint into a wrong PNG, and only the CRC at the very end of the stream says so. So
extraction inflates with zlib in gzip mode (CRC and length checked), walks the tar headers as they pass
(:class:`~cxrlab.datasets.nih_archives.TarWalker`: a damaged header is an error, not the end of the
archive, as :mod:`tarfile` would take it), writes each PNG to ``name.part`` and gives the archive's PNGs
their final names only once the whole stream has proved sound. A damaged archive leaves no new file under
a final name, exit 1, and its ``.part`` files are removed.

"Already present" means verified: ``OUT/.cxrlab-extract/<archive>.json`` records, for each member given its
final name, its size, the CRC-32 of its bytes (computed from the verified stream) and the file's mtime. A
re-run skips a member only when the file on disk still has that size and mtime and the archive's member
has that CRC; anything else (a file written by another tool or an older version, a file changed since)
is written again, so a later extract with a good archive repairs a bad file. A whole archive whose record
matches it and its files is skipped without reading it. An interrupted run resumes archive by archive.

One run per output folder (:func:`cxrlab.locking.lock_folder`): a second extract into the same folder is
refused, naming the run that holds it.
"""

from __future__ import annotations

import json
import os
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from cxrlab.atomic import write_text_atomic
from cxrlab.datasets.nih_archives import ARCHIVE_PATTERN, BLOCK, TarWalker, _is_plain_tar, archive_key
from cxrlab.errors import CxrlabError
from cxrlab.locking import lock_folder
from cxrlab.progress import maybe_progress

STATE_DIR = ".cxrlab-extract"
READ_SIZE = 1 << 20  # compressed bytes per read: zlib and the tar walker run at full speed
TAR_BUFFER = 64 << 10  # the pieces tarfile asks for (see CheckedStream.read)
COPY_SIZE = 1 << 20
RECHECK_LIMIT = 64 << 20  # a present member up to this size is read into memory to compare its CRC
_RECORD_VERSION = 2


class ArchiveDamaged(CxrlabError):
    """The archive's gzip stream or tar structure is broken; nothing of it got a final name."""

    def __init__(self, archive: Path, reason: str) -> None:
        super().__init__(f"{archive}: {reason}")
        self.archive, self.reason = archive, reason


@dataclass
class ExtractSummary:
    archives: int = 0
    archives_skipped: int = 0
    written: int = 0
    skipped: int = 0
    redone: int = 0
    ignored: list[str] = field(default_factory=list)
    bytes_written: int = 0


class CheckedStream:
    """A read-only stream of an archive's tar bytes, checked as they pass.

    Gzip is inflated by zlib with its CRC-32 and length check (concatenated gzip members allowed); a plain
    tar kept under the ``.tar.gz`` name passes through. Every tar header is validated by a
    :class:`TarWalker`. ``finish()`` drains what :mod:`tarfile` left unread and raises
    :class:`ArchiveDamaged` unless the stream as a whole is sound.
    """

    def __init__(self, raw: IO[bytes], path: Path, on_bytes: Callable[[int], None] | None = None) -> None:
        self.raw, self.path, self.on_bytes = raw, path, on_bytes
        head = raw.read(BLOCK)
        self._count(len(head))
        self.plain = _is_plain_tar(head)
        self.pending = head  # compressed bytes not yet inflated
        self.inflater: Any = None if self.plain else zlib.decompressobj(wbits=31)
        self.walker = TarWalker()
        self.raw_offset = len(head)
        self.out, self.out_pos = b"", 0  # inflated bytes not yet handed out

    def _count(self, n: int) -> None:
        if self.on_bytes and n:
            self.on_bytes(n)

    def _damaged(self, why: str) -> ArchiveDamaged:
        return ArchiveDamaged(self.path, why)

    def _inflate(self, data: bytes) -> bytes:
        if self.plain:
            return data
        if self.inflater.eof:  # after a gzip member: zero padding, or another member (concatenated gzip)
            if not data.strip(b"\0"):
                return b""
            self.inflater = zlib.decompressobj(wbits=31)
        try:
            out: bytes = self.inflater.decompress(data)
        except zlib.error as exc:
            raise self._damaged(f"gzip data corrupt near byte {self.raw_offset:,} ({exc})") from None
        if self.inflater.eof and self.inflater.unused_data:
            self.pending = self.inflater.unused_data
        return out

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes of tar stream (all that is inflated for ``n`` < 0); ``b""`` at the end.

        Handing out pieces of about tarfile's buffer size keeps its buffer small (it copies the rest of
        its buffer on every read, which costs more than inflating when the pieces are large).
        """
        if self.out_pos >= len(self.out):
            self.out, self.out_pos = self._next_inflated(), 0
        end = len(self.out) if n < 0 else self.out_pos + n
        piece = self.out[self.out_pos : end]
        self.out_pos += len(piece)
        return piece

    def _next_inflated(self) -> bytes:
        while True:
            data, self.pending = self.pending, b""
            if not data:
                data = self.raw.read(READ_SIZE)
                self._count(len(data))
                self.raw_offset += len(data)
                if not data:
                    return b""
            out = self._inflate(data)
            if out:
                self.walker.feed(out)
                if self.walker.error:
                    raise self._damaged(self.walker.error)
                return out

    def finish(self) -> None:
        """Read to the end and raise :class:`ArchiveDamaged` unless gzip and tar both ended soundly."""
        while self.read():
            pass
        if not self.plain and not self.inflater.eof:
            raise self._damaged(f"gzip stream ends early at byte {self.raw_offset:,} (download cut short?)")
        problem = self.walker.finish()
        if problem:
            raise self._damaged(problem)


# ------------------------------------------------------------------------------------ record of members
@dataclass
class MemberRecord:
    """A member given its final name after its archive proved sound."""

    size: int
    crc32: int
    mtime_ns: int


def _record_path(out: Path, archive: Path) -> Path:
    return out / STATE_DIR / f"{archive.name}.json"


def read_record(out: Path, archive: Path) -> tuple[dict[str, Any], dict[str, MemberRecord]]:
    """The archive identity and the verified members recorded by an earlier run (empty when none)."""
    try:
        data = json.loads(_record_path(out, archive).read_text(encoding="utf-8"))
        if data.get("version") != _RECORD_VERSION:
            return {}, {}
        members = {str(k): MemberRecord(**v) for k, v in data["members"].items()}
        return dict(data["archive"]), members
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}, {}


def _archive_identity(archive: Path) -> dict[str, int]:
    st = archive.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_record(out: Path, archive: Path, members: dict[str, MemberRecord]) -> None:
    path = _record_path(out, archive)
    text = json.dumps(
        {
            "version": _RECORD_VERSION,
            "archive": _archive_identity(archive),
            "members": {k: vars(v) for k, v in sorted(members.items())},
        }
    )
    write_text_atomic(path, text + "\n", temp_name=path.name + ".part")


def _on_disk_matches(path: Path, record: MemberRecord | None) -> bool:
    if record is None:
        return False
    try:
        st = path.stat()
    except OSError:
        return False
    return st.st_size == record.size and st.st_mtime_ns == record.mtime_ns


def _already_complete(out: Path, archive: Path) -> bool:
    identity, members = read_record(out, archive)
    if not members or identity != _archive_identity(archive):
        return False
    images = out / "images"
    return all(_on_disk_matches(images / name, rec) for name, rec in members.items())


# ----------------------------------------------------------------------------------------- extraction
def _safe_member_name(name: str) -> str | None:
    """``images/<file>`` -> ``<file>``; None for anything else (other folders, traversal, absolute)."""
    p = PurePosixPath(name)
    parts = [x for x in p.parts if x not in ("", ".")]
    if p.is_absolute() or ".." in parts or len(parts) != 2 or parts[0] != "images":
        return None
    return parts[1]


@dataclass
class _Pending:
    part: Path
    dest: Path
    size: int
    crc32: int
    mtime: int
    existed: bool


def _copy_to_part(src: IO[bytes], part: Path, head: bytes = b"") -> int:
    """Write ``head`` then the rest of ``src`` to ``part``; the CRC-32 of everything written."""
    crc = zlib.crc32(head)
    with open(part, "wb") as fh:
        fh.write(head)
        while chunk := src.read(COPY_SIZE):
            crc = zlib.crc32(chunk, crc)
            fh.write(chunk)
    return crc


class _ArchiveExtraction:
    """One archive's pass: members to ``.part`` (or skipped when verified), final names at the end."""

    def __init__(self, archive: Path, out: Path, summary: ExtractSummary) -> None:
        self.archive, self.images, self.summary = archive, out / "images", summary
        _, self.known = read_record(out, archive)
        self.pending: list[_Pending] = []
        self.kept: dict[str, MemberRecord] = {}

    def member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = _safe_member_name(member.name)
        if member.isdir() and member.name.strip("/") in ("images", "./images"):
            return
        if name is None or not member.isfile():
            self.summary.ignored.append(f"{self.archive.name}:{member.name}")
            return
        src = tar.extractfile(member)
        assert src is not None
        dest = self.images / name
        record = self.known.get(name)
        head = b""
        if _on_disk_matches(dest, record) and member.size <= RECHECK_LIMIT:
            assert record is not None
            head = src.read()
            if zlib.crc32(head) == record.crc32:
                self.kept[name] = record
                self.summary.skipped += 1
                return
        part = dest.with_name(dest.name + ".part")
        self.pending.append(_Pending(part, dest, member.size, 0, int(member.mtime), dest.exists()))
        self.pending[-1].crc32 = _copy_to_part(src, part, head)

    def commit(self) -> dict[str, MemberRecord]:
        """Give every written member its final name (the archive has proved sound); the new record."""
        records = dict(self.kept)
        for p in self.pending:
            os.replace(p.part, p.dest)
            os.utime(p.dest, (p.mtime, p.mtime))
            records[p.dest.name] = MemberRecord(p.size, p.crc32, p.dest.stat().st_mtime_ns)
            self.summary.written += 1
            self.summary.redone += p.existed
            self.summary.bytes_written += p.size
        self.pending.clear()
        return records

    def discard(self) -> None:
        for p in self.pending:
            p.part.unlink(missing_ok=True)
        self.pending.clear()


def extract_archive(
    archive: str | Path,
    out: str | Path,
    summary: ExtractSummary,
    *,
    on_bytes: Callable[[int], None] | None = None,
) -> None:
    """Stream one archive into ``out/images/``: regular files under ``images/`` only, each via ``.part``,
    renamed only after the whole archive proved sound (gzip CRC and length, every tar header).

    ``on_bytes`` is called with the number of compressed bytes read, for a progress bar over the archives.
    Raises :class:`ArchiveDamaged` (nothing of this archive renamed) or ``OSError`` from the writes.
    """
    archive, out = Path(archive), Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    summary.archives += 1
    if _already_complete(out, archive):
        summary.archives_skipped += 1
        if on_bytes:
            on_bytes(archive.stat().st_size)
        return
    job = _ArchiveExtraction(archive, out, summary)
    try:
        with open(archive, "rb") as raw:
            stream = CheckedStream(raw, archive, on_bytes)
            try:
                with tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFFER) as tar:  # type: ignore[call-overload]
                    for member in tar:
                        job.member(tar, member)
            except (tarfile.TarError, EOFError) as exc:
                stream.finish()  # a gzip stream cut short or corrupt says more than tarfile's wording
                raise ArchiveDamaged(archive, f"tar structure broken ({exc})") from None
            stream.finish()
        records = job.commit()
    finally:
        job.discard()
    _write_record(out, archive, records)


def _archives_of(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CxrlabError(f"{folder}: no such folder")
    archives = sorted(
        (p for p in folder.iterdir() if ARCHIVE_PATTERN.match(p.name)),
        key=lambda p: (archive_key(p.name), p.name),
    )
    if not archives:
        raise CxrlabError(f"{folder}: no images_NNN.tar.gz archive")
    return archives


def extract_folder(folder: str | Path, out: str | Path, *, progress: bool = False) -> ExtractSummary:
    """Extract every ``images_NNN.tar.gz`` of ``folder`` into ``out/images/`` (resumable, one run at a time).

    A damaged archive does not stop the others; the first damage is raised at the end as
    :class:`ArchiveDamaged` (exit 1), after every sound archive has been extracted.
    """
    folder, out = Path(folder), Path(out)
    archives = _archives_of(folder)
    summary = ExtractSummary()
    damaged: list[ArchiveDamaged] = []
    total = sum(p.stat().st_size for p in archives)
    with lock_folder(out, "nih extract"), maybe_progress(progress, bytes_=True) as bar:
        task = bar.add_task("extracting", total=total) if bar is not None else None
        for archive in archives:
            if bar is not None and task is not None:
                bar.update(task, description=archive.name)
            step = (lambda n: bar.advance(task, n)) if bar is not None and task is not None else None
            try:
                extract_archive(archive, out, summary, on_bytes=step)
            except ArchiveDamaged as exc:
                damaged.append(exc)
    if damaged:
        first = damaged[0]
        others = f"; {len(damaged) - 1} more damaged archive(s)" if len(damaged) > 1 else ""
        raise ArchiveDamaged(
            first.archive,
            f"extraction stopped ({first.reason}): none of its files was given a final name{others}; "
            "run `cxrlab nih verify` on the folder, replace the archive, then re-run extract "
            "(verified files are kept)",
        )
    return summary
