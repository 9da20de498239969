"""A phantom NIH ChestX-ray14: PNGs in ``images_NNN.tar.gz`` archives, the 2017 CSVs with their quirks, lists.

Boxes in ``BBox_List_2017.csv`` are ``x, y, w, h`` (top-left corner, then size) in PNG pixels, as in the
real file; ``phantom_truth.csv`` uses ``x_min, y_min, x_max, y_max`` like every cxrlab table. Archives are
byte-stable: fixed gzip header (no name, mtime 0) and tar members with fixed owner, mode and time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cxrlab.atomic import atomic_path, write_bytes_atomic
from cxrlab.datasets.phantom.anatomy import Lesion, enlarge_heart, place_lesion, render_chest, sample_geometry
from cxrlab.datasets.phantom.common import (
    TRUTH_FILE,
    TRUTH_HEADER,
    PhantomResult,
    check_images_and_size,
    finish_output,
    flattened_weights,
    prepare_output,
    truth_rows,
    write_csv,
)
from cxrlab.errors import ParameterError
from cxrlab.progress import track

__all__ = ["BBOX_HEADER", "BBOX_LABELS", "DATA_ENTRY_HEADER", "make_nih"]

DATA_ENTRY_HEADER = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
"""The 2017 header, trailing comma included: pandas reads 12 columns, the last one empty."""
BBOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,"
BBOX_LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltrate",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
)
"""The 8 labels of ``BBox_List_2017.csv`` as it spells them (``Infiltrate``)."""
ARCHIVE_MTIME = 1_506_000_000  # September 2017, fixed so that archives are byte-identical
_REAL_COUNTS = {
    "Infiltration": 19894,
    "Effusion": 13317,
    "Atelectasis": 11559,
    "Nodule": 6331,
    "Mass": 5782,
    "Pneumothorax": 5302,
    "Consolidation": 4667,
    "Pleural_Thickening": 3385,
    "Cardiomegaly": 2776,
    "Emphysema": 2516,
    "Edema": 2303,
    "Fibrosis": 1686,
    "Pneumonia": 1431,
    "Hernia": 227,
}
_LABELS, _WEIGHTS = flattened_weights(_REAL_COUNTS)
KIND = {
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Effusion": "effusion",
    "Emphysema": "emphysema",
    "Fibrosis": "fibrosis",
    "Hernia": "other",
    "Infiltration": "infiltration",
    "Mass": "mass",
    "Nodule": "nodule",
    "Pleural_Thickening": "pleural_thickening",
    "Pneumonia": "consolidation",
    "Pneumothorax": "pneumothorax",
}
_ORIGINAL_SIZES = [(2500, 2048), (2048, 2500), (3056, 2544), (2992, 2991), (2682, 2749), (2021, 2021)]
_SPACINGS = ["0.143", "0.139", "0.168", "0.171", "0.194311"]


@dataclass
class _Image:
    name: str
    patient: int
    follow_up: int
    age: int
    sex: str
    view: str
    split: str
    labels: list[str]
    original: tuple[int, int]
    spacing: str
    rgba: bool
    truth: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


def make_nih(
    out: Path,
    *,
    images: int = 20,
    seed: int = 0,
    size: int = 1024,
    archives: int | None = None,
    progress: bool = False,
) -> PhantomResult:
    """Write a phantom NIH ChestX-ray14 of ``images`` PNGs (``size`` px square) into ``out``.

    ``archives`` defaults to one per 10 images, at most 12 (the real count). ``out`` must be empty, new,
    or a previous NIH phantom (which is replaced).
    """
    check_images_and_size(images, size)
    n_archives = archives if archives is not None else min(12, max(1, math.ceil(images / 10)))
    if not 1 <= n_archives <= images:
        raise ParameterError(
            "archives", f"must be between 1 and the number of images ({images}) (got {n_archives})"
        )
    out = Path(out)
    prepare_output(out, "nih")

    plan = _plan(images, seed)
    chunks = np.array_split(np.arange(images), n_archives)
    files: list[Path] = []
    bar = track(range(images), total=images, description="NIH phantom", progress=progress)
    for k, chunk in enumerate(chunks, 1):
        files.append(
            _write_archive(out / f"images_{k:03d}.tar.gz", [plan[i] for i in chunk], seed, size, bar)
        )
    for _ in bar:  # drain the bar when progress is off (a plain range)
        pass
    files += _write_tables(out, plan, seed, size)
    md5_lines = "".join(f"{_md5(f)}  {f.name}\n" for f in files if f.name.endswith(".tar.gz"))
    files.append(write_bytes_atomic(out / "images_md5.txt", md5_lines.encode()))
    truth = [row for p in plan for row in truth_rows(p.name, [(lab, box) for lab, box in p.truth])]
    files.append(write_csv(out / TRUTH_FILE, TRUTH_HEADER, truth))
    finish_output(out, "nih", files, seed, images)
    return PhantomResult(root=out, n_images=images, files=files, summary=_summary(plan, files, n_archives))


def _plan(images: int, seed: int) -> list[_Image]:
    """Patients with follow-ups, labels, the patient-level split and the few RGBA images."""
    rng = np.random.default_rng([seed, 10])
    visits: list[int] = []
    while sum(visits) < images:
        visits.append(int(min(rng.geometric(0.45), 8)))
    visits[-1] -= sum(visits) - images
    n_patients = len(visits)
    ids = np.sort(rng.choice(np.arange(1, 30806), size=n_patients, replace=False))
    n_test = max(1, round(0.23 * n_patients)) if n_patients >= 2 else 0
    test_patients = set(rng.permutation(n_patients)[:n_test].tolist())
    plan: list[_Image] = []
    for p, (pid, count) in enumerate(zip(ids.tolist(), visits, strict=True)):
        age0 = int(rng.integers(12, 88))
        sex = "M" if rng.random() < 0.56 else "F"
        for f in range(count):
            labels: list[str] = []
            if rng.random() >= 0.45:
                n = int(rng.choice([1, 1, 1, 2, 2, 3]))
                labels = sorted(set(rng.choice(_LABELS, size=n, p=_WEIGHTS).tolist()))
            original = _ORIGINAL_SIZES[int(rng.integers(len(_ORIGINAL_SIZES)))]
            plan.append(
                _Image(
                    name=f"{pid:08d}_{f:03d}.png",
                    patient=pid,
                    follow_up=f,
                    age=age0 + f // 3,
                    sex=sex,
                    view="PA" if rng.random() < 0.6 else "AP",
                    split="test" if p in test_patients else "train_val",
                    labels=labels,
                    original=original,
                    spacing=_SPACINGS[int(rng.integers(len(_SPACINGS)))],
                    rgba=False,
                )
            )
    # a few RGBA PNGs and (as in the 2017 CSV) an implausible age
    if images >= 10:
        for i in rng.permutation(images)[: max(1, images // 25)].tolist():
            plan[i].rgba = True
    if images >= 20:
        plan[int(rng.integers(images))].age = int(rng.integers(148, 414))
    return plan


def _lesions(p: _Image, rng: np.random.Generator, size: int) -> tuple[Any, list[Lesion]]:
    g = sample_geometry(rng, (size, size))
    lesions: list[Lesion] = []
    for label in p.labels:
        if label == "Cardiomegaly":
            g, lesion = enlarge_heart(g, rng)
        else:
            lesion = place_lesion(KIND[label], g, rng)
        lesions.append(lesion)
        p.truth.append((label, lesion.box))
    return g, lesions


def _png(p: _Image, seed: int, index: int, size: int) -> bytes:
    rng = np.random.default_rng([seed, 11, index])
    g, lesions = _lesions(p, rng, size)
    img = render_chest(rng, (size, size), lesions, geometry=g)
    gray = np.rint(img * 255).astype(np.uint8)
    if p.rgba:
        gray = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
    ok, buf = cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:  # pragma: no cover
        raise RuntimeError(f"PNG encoding failed for {p.name}")
    return buf.tobytes()


def _write_archive(path: Path, items: list[_Image], seed: int, size: int, bar: Any) -> Path:
    """One ``images_NNN.tar.gz`` extracting into ``images/``, written atomically, byte-stable."""
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar,
    ):
        folder = tarfile.TarInfo("images")
        folder.type, folder.mode, folder.mtime = tarfile.DIRTYPE, 0o755, ARCHIVE_MTIME
        tar.addfile(folder)
        for p in items:
            data = _png(p, seed, _index(p), size)
            info = tarfile.TarInfo(f"images/{p.name}")
            info.size, info.mode, info.mtime = len(data), 0o644, ARCHIVE_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
            next(bar, None)
    return path


def _index(p: _Image) -> int:
    """A per-image stream number from the name, so an image does not depend on the archive split."""
    return p.patient * 1000 + p.follow_up


def _write_tables(out: Path, plan: list[_Image], seed: int, size: int) -> list[Path]:
    entries = []
    for p in plan:
        finding = "|".join(p.labels) if p.labels else "No Finding"
        w, h = p.original
        entries.append(
            [p.name, finding, p.follow_up, p.patient, p.age, p.sex, p.view, w, h, p.spacing, p.spacing, ""]
        )
    rng = np.random.default_rng([seed, 12])
    boxes = []
    for p in plan:
        if p.split != "test":
            continue
        for label, (x0, y0, x1, y1) in p.truth:
            spelled = "Infiltrate" if label == "Infiltration" else label
            if spelled not in BBOX_LABELS or rng.random() < 0.3:
                continue
            jx, jy = rng.normal(0, 0.03 * (x1 - x0)), rng.normal(0, 0.03 * (y1 - y0))
            left, top = x0 + jx, y0 + jy
            width = (x1 - x0) * math.exp(rng.normal(0, 0.04))
            height = (y1 - y0) * math.exp(rng.normal(0, 0.04))
            boxes.append([p.name, spelled, *(f"{v:.12g}" for v in (left, top, width, height))])
    train_val = "\n".join(p.name for p in plan if p.split == "train_val")
    test = "\n".join(p.name for p in plan if p.split == "test")
    return [
        write_csv(out / "Data_Entry_2017.csv", DATA_ENTRY_HEADER, entries),
        write_csv(out / "BBox_List_2017.csv", BBOX_HEADER, boxes),
        # no trailing newline, as the real lists
        write_bytes_atomic(out / "train_val_list.txt", train_val.encode()),
        write_bytes_atomic(out / "test_list.txt", test.encode()),
    ]


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _summary(plan: list[_Image], files: list[Path], n_archives: int) -> dict[str, Any]:
    labels = Counter(label for p in plan for label in p.labels)
    return {
        "dataset": "nih",
        "images": len(plan),
        "patients": len({p.patient for p in plan}),
        "train_val": sum(p.split == "train_val" for p in plan),
        "test": sum(p.split == "test" for p in plan),
        "archives": n_archives,
        "no finding": sum(not p.labels for p in plan),
        "findings": dict(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0]))),
        "rgba images": sum(p.rgba for p in plan),
        "views": dict(sorted(Counter(p.view for p in plan).items())),
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
    }
