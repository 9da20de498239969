"""Bringing images into a project: a folder of DICOMs, a folder of PNGs (NIH), or a tables folder.

Originals stay where they are: a row stores the absolute path, size and split. The split is given, or read
from a parent folder named like a split (``train/``, ``test/``), else ``train``. A tables folder brings its
images (paths relative to ``images_root``, by default the tables folder) and, with ``proposals``, its findings
as proposals (their reader or model name kept as provenance). A file that cannot be read is reported by name
and skipped; the others are imported. Re-importing skips images already there (by image id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cxrlab.annotate.audit import record
from cxrlab.annotate.errors import InvalidInput
from cxrlab.annotate.marks import add_proposal
from cxrlab.annotate.models import Image, Project
from cxrlab.annotate.renditions import ImageRef
from cxrlab.annotate.workflow import assign
from cxrlab.datasets.nih import png_header
from cxrlab.datasets.vindr import read_header
from cxrlab.tables import IMAGES_FILE, load_tables
from cxrlab.taxonomy import NO_FINDING

DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
SPLITS = {"train", "test", "val", "validation", "dev"}


@dataclass
class ImportReport:
    added: int = 0
    skipped: int = 0
    proposals: int = 0
    assignments: int = 0
    problems: list[str] = field(default_factory=list)
    new_images: list[ImageRef] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "added": self.added,
            "already_there": self.skipped,
            "proposals": self.proposals,
            "assignments": self.assignments,
            "problems": len(self.problems),
        }


def _files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        if path.is_file() and (path.suffix.lower() in DICOM_SUFFIXES or path.suffix.lower() == ".png"):
            yield path


def _split_of(path: Path, given: str | None) -> str:
    if given:
        return given
    for parent in path.parents:
        if parent.name.lower() in SPLITS:
            return parent.name.lower()
    return "train"


Probe = tuple[str, int, int]


def probe(path: Path) -> Probe:
    """(kind, width, height) from the header alone; raises :class:`InvalidInput` naming the file."""
    if path.suffix.lower() == ".png":
        head = png_header(path)
        if head is None:
            raise InvalidInput(f"{path}: not a readable PNG file")
        return "png", head[0], head[1]
    header = read_header(path)
    if header.get("error"):
        raise InvalidInput(f"{path}: not a readable DICOM image ({header['error']})")
    return "dicom", int(header["width"]), int(header["height"])


def source_files(src: Path, images_root: Path | None = None) -> list[Path]:
    """The image files an import of ``src`` would read: a folder's DICOMs and PNGs, or the existing image
    files of a tables folder (paths relative to ``images_root``, by default the tables folder)."""
    if (src / IMAGES_FILE).is_file():
        root = images_root or src
        paths = (root / str(p) for p in load_tables(src).images["path"])
        return [p for p in paths if p.is_file()]
    return list(_files(src))


def probe_all(
    paths: list[Path], progress: Callable[[int, int], None] | None = None
) -> dict[Path, Probe | InvalidInput]:
    """Each file's header read ahead (the slow part of an import), outside any transaction; a broken file
    maps to its error. ``progress(done, total)`` after each file."""
    found: dict[Path, Probe | InvalidInput] = {}
    for done, path in enumerate(paths, 1):
        try:
            found[path] = probe(path)
        except InvalidInput as exc:
            found[path] = exc
        if progress is not None:
            progress(done, len(paths))
    return found


class ImageAdder:
    def __init__(
        self,
        db: Session,
        project: Project,
        report: ImportReport,
        probed: dict[Path, Probe | InvalidInput] | None = None,
    ) -> None:
        self.db, self.project, self.report = db, project, report
        self.probed = probed or {}
        self.known = dict(
            db.execute(select(Image.image_key, Image.id).where(Image.project_id == project.id)).all()
        )
        self.position = int(
            db.scalar(select(func.max(Image.position)).where(Image.project_id == project.id)) or 0
        )

    def add(
        self, key: str, path: Path, split: str, origin: str, size: tuple[int, int] | None = None
    ) -> Image | None:
        if key in self.known:
            self.report.skipped += 1
            return None
        try:
            kind, width, height = self._probe(path)
        except InvalidInput as exc:
            self.report.problems.append(str(exc))
            return None
        if size is not None and all(pd.notna(v) for v in size):
            width, height = int(size[0]), int(size[1])
        self.position += 1
        image = Image(
            project_id=self.project.id,
            image_key=key[:128],
            split=split[:16],
            source=str(path.resolve()),
            origin=origin,
            kind=kind,
            width=width,
            height=height,
            position=self.position,
        )
        self.db.add(image)
        self.db.flush()
        self.known[key] = image.id
        self.report.added += 1
        self.report.new_images.append(ImageRef(image.id, self.project.id, kind, image.source))
        return image

    def _probe(self, path: Path) -> Probe:
        found = self.probed.get(path)
        if isinstance(found, InvalidInput):
            raise found
        return found if found is not None else probe(path)


def import_folder(
    db: Session,
    project: Project,
    folder: Path,
    split: str | None,
    report: ImportReport,
    probed: dict[Path, Probe | InvalidInput] | None = None,
) -> None:
    adder = ImageAdder(db, project, report, probed)
    for path in _files(folder):
        key = path.stem if path.suffix.lower() in DICOM_SUFFIXES else path.name
        adder.add(key, path, _split_of(path, split), "folder")


def import_tables(
    db: Session,
    project: Project,
    folder: Path,
    images_root: Path | None,
    split: str | None,
    proposals: bool,
    report: ImportReport,
    probed: dict[Path, Probe | InvalidInput] | None = None,
) -> None:
    tables = load_tables(folder)
    root = images_root or folder
    adder = ImageAdder(db, project, report, probed)
    images: dict[str, Image] = {}
    for row in tables.images.itertuples():
        path = root / str(row.path)
        if not path.is_file():
            report.problems.append(f"{path}: image {row.image_id} of {folder / IMAGES_FILE} not found")
            continue
        image = adder.add(
            str(row.image_id),
            path,
            split or (row.split if pd.notna(row.split) else "train"),
            "tables",
            (row.width, row.height),
        )
        if image is not None:
            images[image.image_key] = image
    if proposals:
        _add_proposals(db, project, tables.findings, images, report)


def _add_proposals(
    db: Session, project: Project, findings: pd.DataFrame, images: dict[str, Image], report: ImportReport
) -> None:
    from cxrlab.annotate.marks import check_mark

    for row in findings[findings["image_id"].isin(list(images))].itertuples():
        if row.label == NO_FINDING:
            continue
        image = images[str(row.image_id)]
        box = None if np.isnan(row.x_min) else [row.x_min, row.y_min, row.x_max, row.y_max]
        try:
            label, checked = check_mark(project, image, row.label, box)
        except InvalidInput as exc:
            report.problems.append(f"proposal for image {row.image_id} by {row.reader}: {exc}")
            continue
        add_proposal(db, image, label, checked, str(row.reader), float(row.score))
        report.proposals += 1


def import_source(
    db: Session,
    project: Project,
    source: str | Path,
    *,
    split: str | None = None,
    images_root: str | Path | None = None,
    proposals: bool = False,
    actor_id: int | None = None,
    probed: dict[Path, Probe | InvalidInput] | None = None,
) -> ImportReport:
    """Import a folder or a tables folder into ``project`` and top up the assignments; commits. ``probed``
    (:func:`probe_all`) holds headers read ahead, so the write transaction stays short."""
    src = Path(source)
    if not src.is_dir():
        raise InvalidInput(f"{src}: not a folder (a folder of DICOMs or PNGs, or a tables folder)")
    report = ImportReport()
    if (src / IMAGES_FILE).is_file():
        root = Path(images_root) if images_root else None
        import_tables(db, project, src, root, split, proposals, report, probed)
    else:
        if proposals:
            raise InvalidInput("proposals needs a tables folder (with findings.parquet)")
        import_folder(db, project, src, split, report, probed)
    finish_import(db, project, report, actor_id, "folder" if not (src / IMAGES_FILE).is_file() else "tables")
    return report


def finish_import(
    db: Session, project: Project, report: ImportReport, actor_id: int | None, kind: str
) -> None:
    report.assignments = assign(db, project)
    record(
        db,
        "import",
        user_id=actor_id,
        project_id=project.id,
        subject=f"project:{project.id}",
        after={"source_kind": kind, **report.summary()},
    )
    db.commit()
