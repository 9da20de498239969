"""De-identify a folder of hospital DICOMs into a folder that can be shared, as VinDr-CXR's were.

Each file is read with pydicom, checked (readable, not truncated, has pixel data, no burned-in text), cleaned
by a profile (:mod:`cxrlab.imaging.deid_profile`: the VinDr-CXR whitelist or the PS3.15 Annex E Basic
Profile, both tables in ``imaging/profiles/``) and written with its Pixel Data bytes untouched: nothing is
decoded or re-encoded, a JPEG 2000 file stays the same JPEG 2000 codestream. Files run on the conversion's
worker machinery (:func:`cxrlab.imaging.runner.run_tasks`: in process, a local pool, or a Dask cluster).

Why not a library for the profile engine. pydicom/deid (0.4.13) does header recipes (``REMOVE ALL`` plus
``KEEP``, ``BLANK``, ``REPLACE`` with functions), and it installs here; but it reads every file twice
(``get_identifiers`` then ``replace_identifiers``), measured 2.3-5x a plain pydicom read + write on one
2000 x 2000 file (the benchmark's target is 2x), and its ``REMOVE ALL`` also removed the file meta's Media
Storage SOP Instance UID. dicognito (0.19.0) is fast, but by design fills names, addresses and institutions
with realistic fake values, keeps private tags and has no whitelist: its output fails a PHI check and is not
Annex E. Both would still need the Annex E table turned into their own configuration. So the profiles are
data files and one short walk over pydicom's Dataset applies them; the tests check every attribute of the
table on the output, and the vindr output against deid's own ``REMOVE ALL`` + ``KEEP`` run of the same list
(the same elements at every depth, the same values).

Output folder (shareable: it holds no source path, original UID or secret)::

    OUT/<md5 of the pseudonymous SOP Instance UID>.dicom   as VinDr-CXR's image ids
    OUT/deid.json                  the profile, options, table edition and a fingerprint of the secret;
                                   a re-run with other settings or another secret is refused
    OUT/.deid.journal.jsonl        one line per finished file (keyed hash of its path, output, counts)

The secret (``--secret-file``, or ``OUT.deid-secret`` beside OUT, generated on the first run) never goes
into OUT; the optional mapping CSV (original -> new UIDs, Patient IDs) must not either, and must be kept
private. A re-run skips files whose output exists with an ``ok`` journal line for an unchanged source (size
and modification time) and retries the rest; outputs appear under their final name only when complete.
"""

from __future__ import annotations

import filecmp
import hashlib
import json
import os
import secrets
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from cxrlab.atomic import atomic_path
from cxrlab.errors import CxrlabError, UsageError
from cxrlab.imaging.decoders import infer_transfer_syntax
from cxrlab.imaging.deid_profile import (
    ProfileOptions,
    Pseudonymizer,
    apply_profile,
    burned_in_reason,
    table_digest,
    table_edition,
)
from cxrlab.imaging.journal import changed_settings, read_journal, source_unchanged, write_settings
from cxrlab.imaging.runner import Task, run_tasks
from cxrlab.progress import maybe_progress

__all__ = [
    "DeidInputError",
    "DeidOptions",
    "DeidResult",
    "collect_tasks",
    "deid",
    "deid_file",
    "output_name",
    "prepare_secret",
    "read_secret",
]

JOURNAL = ".deid.journal.jsonl"
SETTINGS = "deid.json"
SECRET_SUFFIX = ".deid-secret"
OUTPUT_SUFFIX = ".dicom"
MAP_COLUMNS = [
    "source", "output", "patient_id", "patient_pseudonym", "study_uid", "study_pseudonym",
    "series_uid", "series_pseudonym", "sop_uid", "sop_pseudonym", "day_shift",
]  # fmt: skip
Record = dict[str, Any]


class DeidInputError(CxrlabError):
    """A source file that cannot be de-identified (not DICOM, truncated, no pixel data); names the file."""


@dataclass(frozen=True)
class DeidOptions:
    """Everything a worker needs for one file; the secret travels with it (to Dask workers too)."""

    profile: ProfileOptions
    secret: bytes = field(repr=False)
    allow_burned_in: bool = False

    def settings(self) -> dict[str, Any]:
        return {
            "profile": self.profile.profile,
            "retain_patient_characteristics": self.profile.retain_patient_characteristics,
            "retain_dates_shifted": self.profile.retain_dates_shifted,
            "table": table_edition(self.profile.profile),
            "table_sha256": table_digest(self.profile.profile),
            "secret_fingerprint": Pseudonymizer(self.secret).fingerprint(),
        }


@dataclass
class DeidResult:
    out: Path
    total: int = 0
    written: int = 0
    skipped: int = 0
    held: list[Record] = field(default_factory=list)
    """Files left out: ``source``, ``kind`` (burned-in, unreadable, collision, crash) and ``error``."""
    counts: Counter[str] = field(default_factory=Counter)
    """What was changed, by kind, over every file in OUT (removed, emptied, dummy, uids, private, ...)."""
    secret_path: Path | None = None
    secret_created: bool = False
    map_path: Path | None = None
    seconds: float = 0.0

    @property
    def bad_input(self) -> list[Record]:
        return [h for h in self.held if h["kind"] != "burned-in"]


# ---------------------------------------------------------------- the secret


def read_secret(path: str | Path) -> bytes:
    """The secret's bytes (surrounding whitespace stripped); an unreadable or empty file is an error."""
    path = Path(path)
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise CxrlabError(f"{path}: cannot read the secret file ({exc.strerror or exc})") from None
    if not data:
        raise CxrlabError(f"{path}: the secret file is empty")
    return data


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def prepare_secret(secret_file: str | Path | None, out: str | Path) -> tuple[bytes, Path, bool]:
    """(secret, its file, whether it was just created). Without ``secret_file``: ``OUT.deid-secret``
    beside OUT, made on the first run (0600, 32 random bytes as hex) and reused by the next ones."""
    out = Path(out)
    path = Path(secret_file) if secret_file is not None else out.parent / f"{out.name}{SECRET_SUFFIX}"
    if _inside(path, out):
        raise UsageError(f"{path}: the secret file must be outside the output folder {out}")
    if secret_file is not None or path.exists():
        return read_secret(path), path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token.encode(), path, True


# ---------------------------------------------------------------- one file (runs in a worker)


def output_name(sop_instance_uid: str) -> str:
    """The output file name: the pseudonymous SOP Instance UID as 32 hex characters (md5), as VinDr's ids."""
    return hashlib.md5(sop_instance_uid.encode()).hexdigest() + OUTPUT_SUFFIX


def read_source(path: Path) -> Dataset:
    """Read a whole DICOM file; raise :class:`DeidInputError` naming it when it cannot be de-identified."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:  # pydicom raises many types on garbage
            raise DeidInputError(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc})") from None
    messages = " ".join(str(w.message) for w in caught)
    if "End of file" in messages or "end of file" in messages:
        raise DeidInputError(f"{path}: truncated (the file ends before its data set does)")
    if len(ds) == 0 or ("SOPClassUID" not in ds and "PixelData" not in ds):
        raise DeidInputError(f"{path}: not a DICOM file (no DICOM image attributes found)")
    if "PixelData" not in ds:
        raise DeidInputError(f"{path}: the file has no Pixel Data (7FE0,0010); there is no image to share")
    _check_complete(ds, path)
    if not ds.file_meta.get("TransferSyntaxUID"):
        ds.file_meta.TransferSyntaxUID = UID(infer_transfer_syntax(ds, path))
    if "SOPInstanceUID" not in ds and ds.file_meta.get("MediaStorageSOPInstanceUID"):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    if "SOPClassUID" not in ds and ds.file_meta.get("MediaStorageSOPClassUID"):
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    for keyword in ("SOPInstanceUID", "SOPClassUID"):
        if not ds.get(keyword):
            raise DeidInputError(f"{path}: the file has no {keyword}, needed to name and describe the output")
    return ds


def _check_complete(ds: Dataset, path: Path) -> None:
    """Native pixel data shorter than Rows x Columns x frames x samples x bits says the file was cut."""
    element = ds["PixelData"]
    if element.is_undefined_length or not all(k in ds for k in ("Rows", "Columns", "BitsAllocated")):
        return
    frames = int(ds.get("NumberOfFrames") or 1)
    bits = (
        int(ds.Rows) * int(ds.Columns) * frames * int(ds.get("SamplesPerPixel") or 1) * int(ds.BitsAllocated)
    )
    have, need = len(element.value or b""), (bits + 7) // 8
    if have < need:
        raise DeidInputError(f"{path}: truncated Pixel Data ({have} bytes, the image needs {need})")


def deid_file(task: Task, options: DeidOptions) -> Record:
    """De-identify one file into the folder ``task.output``; the record says what happened (never raises)."""
    source = Path(task.source)
    record: Record = {"image_id": task.image_id, "source": task.source, "output": ""}
    try:
        stat = source.stat()
        record.update(source_bytes=stat.st_size, source_mtime_ns=stat.st_mtime_ns)
        ds = read_source(source)
        reason = None if options.allow_burned_in else burned_in_reason(ds)
        if reason is not None:
            return {**record, "status": "held", "kind": "burned-in", "error": f"{source}: {reason}"}
        counts = apply_profile(ds, options.profile, Pseudonymizer(options.secret))
        name = output_name(str(ds.SOPInstanceUID))
        if not _write(ds, Path(task.output) / name):
            return {**record, "status": "held", "kind": "collision",
                    "error": f"{source}: another source has the same SOP Instance UID but other content "
                             f"(output {name} kept from the first)"}  # fmt: skip
        record.update(status="ok", kind="", error="", output=name, counts=dict(counts))
    except CxrlabError as exc:
        record.update(status="held", kind="unreadable", error=str(exc))
    except Exception as exc:  # one odd file must not stop the others
        record.update(status="held", kind="unreadable", error=f"{source}: {type(exc).__name__}: {exc}")
    return record


def _write(ds: Dataset, path: Path) -> bool:
    """Write ``ds`` to ``path`` atomically; False when another file already holds that name with other bytes.

    The temporary file is linked to the final name (which fails if it exists), so two sources that share a
    SOP Instance UID never overwrite each other; a leftover from an interrupted run is identical and passes.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ds.preamble = b"\x00" * 128  # a preamble may carry a TIFF header or anything else of the sender's
    try:
        ds.save_as(tmp, enforce_file_format=True)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return filecmp.cmp(tmp, path, shallow=False)
        except OSError:  # a file system without hard links: rename (last writer wins)
            os.replace(tmp, path)
        return True
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- what to de-identify


def _find_files(src: Path, exclude: list[Path]) -> Iterator[Path]:
    """Every file under ``src`` (any name: hospital exports often have none); hidden ones, DICOMDIR (a media
    index, not an image: never copied), OUT, the secret and the map left out (they may lie inside SRC)."""
    if src.is_file():
        yield src
        return
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part.startswith(".") for part in rel.parts) or path.name == "DICOMDIR" or not path.is_file():
            continue
        if any(path == e or path.is_relative_to(e) for e in exclude):
            continue
        yield path


def collect_tasks(src: str | Path, out: str | Path, keys: Pseudonymizer, exclude: tuple[Path, ...] = ()
                  ) -> list[Task]:  # fmt: skip
    """One task per file; its id is a keyed hash of the relative path (so the journal names no source)."""
    src, out = Path(src).resolve(), Path(out).resolve()  # resolved once: the paths below are absolute
    tasks = []
    base = src if src.is_dir() else src.parent
    for path in _find_files(src, [out, *(Path(e).resolve() for e in exclude)]):
        rel = path.relative_to(base).as_posix()
        key = hashlib.sha256(keys.uid("path:" + rel).encode()).hexdigest()[:24]
        tasks.append(Task(key, str(path), str(out)))
    if not tasks:
        raise UsageError(f"{src}: no files to de-identify")
    return tasks


# ---------------------------------------------------------------- journal and settings


def _check_settings(out: Path, options: DeidOptions) -> None:
    settings = options.settings()
    changed = changed_settings(out / SETTINGS, settings)
    if changed:
        what = (
            "another secret"
            if changed == ["secret_fingerprint"]
            else f"other settings ({', '.join(changed)})"
        )
        raise UsageError(
            f"{out} holds files de-identified with {what}; use a new output folder, or the same settings"
        )
    write_settings(out / SETTINGS, settings)


def _journal_line(record: Record) -> str:
    """What the journal keeps of a record: nothing that names the source or its patient."""
    keep = ("image_id", "status", "kind", "output", "source_bytes", "source_mtime_ns", "counts")
    return json.dumps({k: record[k] for k in keep if k in record}, sort_keys=True) + "\n"


def _is_done(task: Task, record: Record | None, out: Path) -> bool:
    if not record or record.get("status") != "ok" or not (out / str(record.get("output", ""))).is_file():
        return False
    return source_unchanged(record, task.source)


# ---------------------------------------------------------------- the whole run


def _check_paths(src: Path, out: Path, map_path: Path | None) -> None:
    if not src.exists():
        raise UsageError(f"{src}: no such file or folder")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: exists and is not a folder")
    if src.is_dir() and out.resolve() == src.resolve():
        raise UsageError(f"{out}: the output folder must not be the source folder")
    if map_path is not None and _inside(map_path, out):
        raise UsageError(
            f"{map_path}: the mapping file must be outside the output folder {out} (keep it private)"
        )


def deid(
    src: str | Path,
    out: str | Path,
    profile: ProfileOptions,
    *,
    secret_file: str | Path | None = None,
    map_path: str | Path | None = None,
    allow_burned_in: bool = False,
    workers: int = 1,
    cluster: str | None = None,
    progress: bool = False,
    on_problem: Callable[[Record], None] | None = None,
) -> DeidResult:
    """De-identify every file under ``src`` into ``out`` (see the module docstring); resumable, idempotent.

    ``on_problem`` is called with each held-back record (its ``error`` names the source) as it happens.
    """
    started = time.perf_counter()
    src, out = Path(src), Path(out)
    map_file = Path(map_path) if map_path is not None else None
    _check_paths(src, out, map_file)
    secret, secret_path, created = prepare_secret(secret_file, out)
    options = DeidOptions(profile, secret, allow_burned_in)
    extra = (secret_path,) if map_file is None else (secret_path, map_file)
    tasks = collect_tasks(src, out, Pseudonymizer(secret), exclude=extra)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, options)

    for stray in out.glob(f".*{OUTPUT_SUFFIX}.*.tmp"):  # left by a killed run (their names hold its pid)
        stray.unlink(missing_ok=True)
    journal_path = out / JOURNAL
    previous = read_journal(journal_path)
    pending = [t for t in tasks if not _is_done(t, previous.get(t.image_id), out)]
    for task in pending:  # a redone file's earlier output is stale: it goes, and comes back if still valid
        earlier = previous.get(task.image_id) or {}
        if earlier.get("status") == "ok" and earlier.get("output"):
            (out / str(earlier["output"])).unlink(missing_ok=True)
    result = DeidResult(out=out, total=len(tasks), skipped=len(tasks) - len(pending),
                        secret_path=secret_path, secret_created=created)  # fmt: skip

    with open(journal_path, "a", encoding="utf-8") as journal, maybe_progress(progress) as bar:
        bar_task = bar.add_task("de-identifying", total=len(pending)) if bar is not None else None

        def on_result(record: Record) -> None:
            if record.get("status") not in ("ok", "held"):  # the runner's record of a worker that died
                record = {**record, "status": "held", "kind": "crash"}
            journal.write(_journal_line(record))
            journal.flush()
            if record["status"] == "ok":
                result.written += 1
            else:
                held = {"source": record["source"], "kind": record["kind"], "error": record["error"]}
                result.held.append(held)
                if on_problem is not None:
                    on_problem(held)
            if bar is not None and bar_task is not None:
                bar.advance(bar_task)

        run_tasks(deid_file, pending, options, workers=workers, cluster=cluster, on_result=on_result)

    final = read_journal(journal_path)
    done = [t for t in tasks if (final.get(t.image_id) or {}).get("status") == "ok"]
    for task in done:
        result.counts.update(final[task.image_id].get("counts") or {})
    if map_file is not None:
        result.map_path = write_map(map_file, src, done, final, options)
    result.seconds = time.perf_counter() - started
    return result


# ---------------------------------------------------------------- the private mapping


def map_row(ds: Dataset, keys: Pseudonymizer) -> dict[str, Any]:
    """Original and pseudonymous identifiers of one source header, as :func:`apply_profile` makes them."""
    patient = str(ds.get("PatientID", "") or "").strip()
    study = str(ds.get("StudyInstanceUID", "") or "").strip()
    sop = str(ds.get("SOPInstanceUID", "") or ds.file_meta.get("MediaStorageSOPInstanceUID", "")).strip()
    series = str(ds.get("SeriesInstanceUID", "") or "").strip()
    return {
        "patient_id": patient,
        "patient_pseudonym": keys.patient_id(patient) if patient else "",
        "study_uid": study,
        "study_pseudonym": keys.uid(study) if study else "",
        "series_uid": series,
        "series_pseudonym": keys.uid(series) if series else "",
        "sop_uid": sop,
        "sop_pseudonym": keys.uid(sop),
        "day_shift": keys.day_shift(patient or study),
    }


def write_map(
    path: Path, src: Path, done: list[Task], records: dict[str, Record], options: DeidOptions
) -> Path:
    """The original -> new mapping of every file in OUT (headers re-read, ~1 ms each), private (0600)."""
    import csv
    import io

    keys = Pseudonymizer(options.secret)
    base = src if src.is_dir() else src.parent
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=MAP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for task in done:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(task.source, force=True, stop_before_pixels=True)
        rel = Path(task.source).relative_to(base.resolve()).as_posix()
        writer.writerow({"source": rel, "output": records[task.image_id]["output"], **map_row(ds, keys)})
    with atomic_path(path, temp_name=f".{path.name}.tmp") as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
        os.chmod(tmp, 0o600)
    return path
