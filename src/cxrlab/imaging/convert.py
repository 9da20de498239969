"""Convert a folder or a table of radiographs to a training size: resumable, in parallel, memory-bounded.

The orchestration: which files, what is already done, the journal, the manifest, the rescaled tables. Each
image goes through :func:`cxrlab.imaging.pipeline.convert_file` in a worker of
:mod:`cxrlab.imaging.runner` (a local process pool, or a Dask cluster when an address is given).

Output folder::

    OUT/<image_id>.png|.npy   one file per image, written to a temporary name then renamed
    OUT/manifest.parquet      one row per source image (and manifest.csv): sizes, scale factors, decoder,
                              what the display pipeline applied, or the reason the file failed
    OUT/images.parquet        with findings: the images table at the new size (width/height = output)
    OUT/findings.parquet      with findings: every box multiplied by its image's scale factors
    OUT/convert.json          the settings; a re-run with other settings is refused
    OUT/.manifest.journal.jsonl  one line per finished image, flushed at once: a crash loses nothing
    OUT/.convert.lock         held (flock) by the run writing the folder: one run per folder

A re-run skips images whose output exists with an ``ok`` journal line for an unchanged source (same size
and modification time) and retries the failed ones; when a redone image fails, its earlier output is
removed. An output whose source has disappeared since is kept and listed with status ``removed``. Sources
are only ever opened for reading.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.errors import ParameterError, UsageError
from cxrlab.imaging.journal import changed_settings, read_journal, source_unchanged, write_settings
from cxrlab.imaging.lock import folder_lock
from cxrlab.imaging.manifest import manifest_frame, write_manifest
from cxrlab.imaging.pipeline import FORMATS, ConvertOptions, convert_file, encode_image
from cxrlab.imaging.runner import Task, failure_record, run_tasks
from cxrlab.imaging.transform import scale_findings
from cxrlab.progress import maybe_progress
from cxrlab.tables import (
    FINDINGS_FILE,
    IMAGES_FILE,
    conform_findings,
    conform_images,
    load_tables,
    read_parquet,
    save_tables,
)

__all__ = [
    "FORMATS",
    "ConvertOptions",
    "ConvertResult",
    "Task",
    "collect_tasks",
    "convert",
    "convert_file",
    "encode_image",
]

SUFFIXES = (".dicom", ".dcm", ".png")
JOURNAL = ".manifest.journal.jsonl"
SETTINGS = "convert.json"


@dataclass
class ConvertResult:
    total: int = 0
    converted: int = 0
    skipped: int = 0
    failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    manifest: Path | None = None
    tables: Path | None = None
    seconds: float = 0.0


# ---------------------------------------------------------------- what to convert


def _find_images(folder: Path, exclude: Path) -> Iterator[Path]:
    """Images under ``folder`` (sorted), leaving out ``exclude`` (an output folder inside the source)."""
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() not in SUFFIXES or path.name.startswith("."):
            continue
        if exclude in path.resolve().parents or not path.is_file():
            continue
        yield path


def collect_tasks(src: str | Path, out: str | Path, fmt: str = "png", root: str | Path | None = None
                  ) -> tuple[list[Task], pd.DataFrame | None, pd.DataFrame | None]:  # fmt: skip
    """The images to convert and, for a tables folder, its images and findings tables.

    ``src``: a folder of images (recursive ``*.dicom``, ``*.dcm``, ``*.png``; id = file stem), a tables
    folder (``images.parquet`` + ``findings.parquet``; ``path`` relative to ``root``, default the folder),
    or an images table file (.parquet/.csv with ``image_id`` and ``path``; ``root`` default its folder).
    """
    src, out = Path(src), Path(out).resolve()
    images = findings = None
    if src.is_dir() and (src / IMAGES_FILE).is_file():
        tables = load_tables(src)
        images, findings = tables.images, tables.findings
        pairs = _table_pairs(images, Path(root) if root else src, src)
    elif src.is_file() and src.suffix.lower() in (".parquet", ".csv"):
        table = read_parquet(src) if src.suffix.lower() == ".parquet" else _read_csv(src)
        pairs = _table_pairs(table, Path(root) if root else src.parent, src)
        images = conform_images(_with_image_columns(table))
    elif src.is_dir():
        pairs = [(p.stem, p) for p in _find_images(src, out)]
    else:
        raise UsageError(f"{src}: not a folder of images, a tables folder or an images table")
    if not pairs:
        raise UsageError(f"{src}: no images to convert (looked for {', '.join('*' + s for s in SUFFIXES)})")
    seen: dict[str, Path] = {}
    for image_id, path in pairs:
        if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
            raise UsageError(f"{path}: image id {image_id!r} cannot name an output file")
        if image_id in seen:
            raise UsageError(f"two images share the id {image_id!r}: {seen[image_id]} and {path}")
        seen[image_id] = path
    ext = FORMATS[fmt]
    tasks = [Task(i, str(p.resolve()), str(out / f"{i}{ext}")) for i, p in pairs]
    return tasks, images, findings


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype={"image_id": str, "path": str})
    except Exception as exc:
        raise UsageError(f"{path}: not a readable CSV table ({exc})") from None


def _table_pairs(table: pd.DataFrame, root: Path, what: Path) -> list[tuple[str, Path]]:
    missing = [c for c in ("image_id", "path") if c not in table.columns]
    if missing:
        raise UsageError(f"{what}: the images table lacks column(s) {', '.join(missing)}")
    no_path = table["path"].isna()
    if no_path.any():
        first = table["image_id"][no_path].iloc[0]
        raise UsageError(f"{what}: {int(no_path.sum())} image(s) have no path (first: {first})")
    return [(str(i), root / str(p)) for i, p in zip(table["image_id"], table["path"], strict=True)]


def _with_image_columns(table: pd.DataFrame) -> pd.DataFrame:
    table = table.copy()
    for column in ("dataset", "split", "patient_id", "width", "height", "sex", "age", "view"):
        if column not in table.columns:
            table[column] = pd.NA
    return table


# ---------------------------------------------------------------- journal and settings


def _check_settings(out: Path, options: ConvertOptions) -> None:
    settings = options.settings()
    changed = changed_settings(out / SETTINGS, settings)
    if changed:
        raise UsageError(
            f"{out} holds a conversion made with other settings ({', '.join(changed)} differ); "
            "convert into a new folder, or delete it first"
        )
    write_settings(out / SETTINGS, settings)


def _is_done(task: Task, record: dict[str, Any] | None) -> bool:
    if not record or record.get("status") != "ok" or not Path(task.output).is_file():
        return False
    return source_unchanged(record, task.source)


# ---------------------------------------------------------------- the whole conversion


def convert(
    src: str | Path,
    out: str | Path,
    options: ConvertOptions | None = None,
    *,
    workers: int = 1,
    cluster: str | None = None,
    root: str | Path | None = None,
    findings: str | Path | None = None,
    progress: bool = False,
    on_failure: Callable[[dict[str, Any]], None] | None = None,
) -> ConvertResult:
    """Convert every image of ``src`` into ``out`` (see the module docstring); resumable and idempotent.

    ``findings``: a tables folder or a findings .parquet whose boxes are rescaled into ``out`` (a tables
    folder as ``src`` brings its own). ``on_failure`` is called with each failed record as it happens.
    Raises :class:`~cxrlab.imaging.lock.FolderBusy` when another run writes into ``out``, ``OSError`` when
    the output folder cannot be written (the journal keeps what was done: a re-run resumes).
    """
    started = time.perf_counter()
    options = options or ConvertOptions()
    out = Path(out)
    _check_folders(Path(src), out)
    tasks, images, table_findings = collect_tasks(src, out, options.format, root)
    if findings is not None:
        images, table_findings = _load_findings(Path(findings), images)
    clash = next((t for t in tasks if t.output == t.source), None)
    if clash is not None:
        raise UsageError(f"{out}: converting {clash.source} would overwrite it; choose another output folder")
    out.mkdir(parents=True, exist_ok=True)
    with folder_lock(out):
        _check_settings(out, options)
        result = _run(tasks, out, options, workers, cluster, progress, on_failure)
        manifest = _manifest(tasks, read_journal(out / JOURNAL), out)
        result.manifest = write_manifest(manifest, out)
        if table_findings is not None:
            result.tables = _write_tables(out, manifest, images, table_findings)
    result.seconds = time.perf_counter() - started
    return result


def _check_folders(src: Path, out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: the output exists and is not a folder")
    if src.is_dir() and out.resolve() == src.resolve():
        raise UsageError(f"{out}: the output folder is the source folder; choose another output folder")


def _run(tasks: list[Task], out: Path, options: ConvertOptions, workers: int, cluster: str | None,
         progress: bool, on_failure: Callable[[dict[str, Any]], None] | None) -> ConvertResult:  # fmt: skip
    """Convert the tasks not done yet, journaling each record as it arrives."""
    journal_path = out / JOURNAL
    previous = read_journal(journal_path)
    pending = [t for t in tasks if not _is_done(t, previous.get(t.image_id))]
    result = ConvertResult(total=len(tasks), skipped=len(tasks) - len(pending))
    with open(journal_path, "a", encoding="utf-8") as journal, maybe_progress(progress) as bar:
        task_id = bar.add_task("converting", total=len(pending)) if bar is not None else None

        def on_result(record: dict[str, Any]) -> None:
            journal.write(json.dumps(record, default=_json_default) + "\n")
            journal.flush()
            if record.get("status") == "ok":
                result.converted += 1
            else:
                # an output left by an earlier run is stale now (only a changed or previously failed
                # source is redone): remove it, so the folder never shows an image its source no longer gives
                Path(record["output"]).unlink(missing_ok=True)
                result.failed += 1
                result.failures.append(record)
                if on_failure is not None:
                    on_failure(record)
            if bar is not None and task_id is not None:
                bar.advance(task_id)

        run_tasks(convert_file, pending, options, workers=workers, cluster=cluster, on_result=on_result)
    return result


def _missing_record(task: Task) -> dict[str, Any]:
    return failure_record(task, f"{task.source}: not converted (the run was interrupted)")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return str(value)


def _manifest(tasks: list[Task], records: dict[str, dict[str, Any]], out: Path) -> pd.DataFrame:
    """One row per task, then a ``removed`` row per earlier output whose source is no longer converted."""
    rows = []
    current = set()
    for task in tasks:
        record = dict(records.get(task.image_id) or _missing_record(task))
        record["output"] = Path(task.output).name if record.get("status") == "ok" else ""
        rows.append(record)
        current.add(task.image_id)
    for image_id, record in sorted(records.items()):
        output = Path(str(record.get("output") or ""))
        if image_id in current or record.get("status") != "ok" or not output.name:
            continue
        if (out / output.name).is_file():
            rows.append({**record, "status": "removed", "output": output.name,
                         "error": f"{record.get('source')}: the source is gone since it was converted; "
                                  "its output is kept"})  # fmt: skip
    return manifest_frame(rows)


def _load_findings(path: Path, images: pd.DataFrame | None) -> tuple[pd.DataFrame | None, pd.DataFrame]:
    if path.is_dir():
        if (path / IMAGES_FILE).is_file():
            tables = load_tables(path)
            return tables.images, tables.findings
        return images, conform_findings(read_parquet(path / FINDINGS_FILE))
    if path.suffix.lower() == ".parquet":
        return images, conform_findings(read_parquet(path))
    raise ParameterError("findings", f"must be a tables folder or a findings .parquet file (got {path})")


def _write_tables(out: Path, manifest: pd.DataFrame, images: pd.DataFrame | None,
                  findings: pd.DataFrame) -> Path:  # fmt: skip
    ok = manifest[manifest["status"] == "ok"]
    sizes = pd.DataFrame(
        {
            "image_id": ok["image_id"].astype("string"),
            "new_path": ok["output"].astype("string"),
            "new_width": ok["width"],
            "new_height": ok["height"],
            "source_width": ok["orig_width"],
            "source_height": ok["orig_height"],
            "scale_x": ok["scale_x"],
            "scale_y": ok["scale_y"],
        }
    )
    if images is None:
        images = _with_image_columns(sizes[["image_id"]].assign(path=sizes["new_path"]))
    base = images.copy()
    base["image_id"] = base["image_id"].astype("string")
    merged = base.merge(sizes, on="image_id", how="inner")
    if "path" in merged.columns:
        merged = merged.rename(columns={"path": "source_path"})
    merged["path"] = merged.pop("new_path")
    merged["width"] = merged.pop("new_width")
    merged["height"] = merged.pop("new_height")
    new_images = conform_images(merged)
    findings = conform_findings(findings)
    known = findings["image_id"].isin(new_images["image_id"])
    new_findings = scale_findings(findings[known], sizes[["image_id", "scale_x", "scale_y"]])
    save_tables(out, new_images, new_findings)
    return out
