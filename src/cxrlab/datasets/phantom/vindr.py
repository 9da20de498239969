"""A phantom VinDr-CXR: DICOMs with the real release's variety, three disagreeing readers, both layouts.

Boxes: ``x_min, y_min, x_max, y_max``, pixels of the DICOM, origin top-left (docs/formats.md). Every image is
decided by ``(seed, image number)`` alone, so a run is byte-identical for a seed and the two layouts show the
same images. DICOM attributes (syntax, photometric, bits, windows, ...) are dealt from seed-shuffled cycles,
so even a dozen images cover each variant. ``phantom_truth.csv`` holds the boxes as drawn, before the
readers' noise.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.datasets.phantom.anatomy import (
    ChestGeometry,
    Lesion,
    enlarge_heart,
    place_lesion,
    render_chest,
    sample_geometry,
)
from cxrlab.datasets.phantom.common import (
    TRUTH_FILE,
    TRUTH_HEADER,
    PhantomResult,
    check_images_and_size,
    finish_output,
    flattened_weights,
    fmt_coord,
    prepare_output,
    truth_rows,
    write_csv,
)
from cxrlab.datasets.phantom.dicom_writer import TRANSFER_SYNTAXES, DicomSpec, make_uid, write_dicom
from cxrlab.errors import ParameterError
from cxrlab.params import check_choice
from cxrlab.progress import track
from cxrlab.taxonomy import CHALLENGE_NO_FINDING_ID, NO_FINDING, VINDR, VINDR_CHALLENGE

__all__ = ["LABEL_COLUMNS_TEST", "LABEL_COLUMNS_TRAIN", "make_vindr"]

Box = tuple[float, float, float, float]

LABEL_COLUMNS_TRAIN: list[str] = list(VINDR.labels)
"""The 28 columns of ``image_labels_train.csv`` in release order (22 local, then 6 global)."""
LABEL_COLUMNS_TEST: list[str] = ["Other disease" if c == "Other diseases" else c for c in LABEL_COLUMNS_TRAIN]

KIND: dict[str, str] = {
    "Aortic enlargement": "aortic_enlargement",
    "Atelectasis": "atelectasis",
    "Cardiomegaly": "cardiomegaly",
    "Calcification": "calcification",
    "Clavicle fracture": "clavicle_fracture",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "emphysema",
    "Enlarged PA": "enlarged_pa",
    "ILD": "ild",
    "Infiltration": "infiltration",
    "Lung cavity": "cavity",
    "Lung cyst": "cyst",
    "Lung Opacity": "opacity",
    "Mediastinal shift": "mediastinal_shift",
    "Nodule/Mass": "nodule",
    "Pleural effusion": "effusion",
    "Pleural thickening": "pleural_thickening",
    "Pneumothorax": "pneumothorax",
    "Pulmonary fibrosis": "fibrosis",
    "Rib fracture": "rib_fracture",
    "Other lesion": "other",
}

# Box counts of the real training set, flattened (square root) so that rare classes still appear.
_REAL_COUNTS = {
    "Aortic enlargement": 7162,
    "Cardiomegaly": 5427,
    "Pleural thickening": 4842,
    "Pulmonary fibrosis": 4655,
    "Nodule/Mass": 2580,
    "Lung Opacity": 2483,
    "Pleural effusion": 2476,
    "Other lesion": 2203,
    "Infiltration": 1247,
    "ILD": 1000,
    "Calcification": 960,
    "Consolidation": 556,
    "Atelectasis": 279,
    "Pneumothorax": 226,
    "Rib fracture": 120,
    "Mediastinal shift": 100,
    "Emphysema": 90,
    "Enlarged PA": 90,
    "Lung cavity": 60,
    "Lung cyst": 40,
    "Edema": 40,
    "Clavicle fracture": 30,
}
_LOCAL_LABELS, _LOCAL_WEIGHTS = flattened_weights(_REAL_COUNTS)

# Labels readers confuse with each other (a reader may name a finding by its neighbour).
_CONFUSABLE = {
    "Lung Opacity": ("Consolidation", "Infiltration"),
    "Consolidation": ("Lung Opacity", "Infiltration"),
    "Infiltration": ("Lung Opacity", "Consolidation"),
    "ILD": ("Pulmonary fibrosis",),
    "Pulmonary fibrosis": ("ILD",),
    "Nodule/Mass": ("Other lesion", "Calcification"),
}
# Real readers: a few read most images.
_READERS = [f"R{i}" for i in range(1, 18)]
_READER_WEIGHTS = np.array([1, 2, 1, 1, 1, 1, 1, 8, 9, 8, 1, 1, 1, 1, 1, 1, 1], dtype=float)
_READER_WEIGHTS /= _READER_WEIGHTS.sum()


@dataclass
class _Finding:
    label: str
    box: Box | None


@dataclass
class _Image:
    index: int
    image_id: str
    split: str
    shape: tuple[int, int]
    truth: list[_Finding]
    spec: DicomSpec
    syntax_name: str
    readers: dict[str, list[_Finding]] = field(default_factory=dict)


LAYOUTS = ("physionet", "challenge")
"""How VinDr-CXR is distributed: PhysioNet's annotations/ folder, or the Kaggle challenge's train.csv."""


def make_vindr(
    out: Path,
    *,
    images: int = 20,
    seed: int = 0,
    size: int = 1024,
    layout: str = "physionet",
    test_fraction: float = 0.2,
    progress: bool = False,
    missing_pixel_data: int = 0,
) -> PhantomResult:
    """Write a phantom VinDr-CXR of ``images`` DICOMs (about ``size`` px a side) into ``out``.

    ``layout`` is ``physionet`` (annotations/ + train/ + test/) or ``challenge`` (train.csv, train/, test/,
    sample_submission.csv). ``missing_pixel_data`` training files are written without Pixel Data, as a few
    real ones are. ``out`` must be empty, new, or a previous VinDr phantom (which is replaced).
    """
    check_choice(layout, LAYOUTS, "layout")
    check_images_and_size(images, size)
    if not 0 <= test_fraction < 1:
        raise ParameterError("test_fraction", f"must be in [0, 1) (got {test_fraction})")
    out = Path(out)
    kind = f"vindr-{layout}"
    prepare_output(out, kind)

    plan = _plan(images, seed, size, test_fraction, missing_pixel_data)
    files: list[Path] = []
    for item in track(plan, total=len(plan), description="VinDr phantom", progress=progress):
        files.append(_write_image(out, item, seed, layout))
    if layout == "physionet":
        files += _write_physionet_csvs(out, plan)
    else:
        files += _write_challenge_csvs(out, plan)
    truth = [
        row for item in plan for row in truth_rows(item.image_id, [(f.label, f.box) for f in item.truth])
    ]
    files.append(write_csv(out / TRUTH_FILE, TRUTH_HEADER, truth))
    finish_output(out, kind, files, seed, images)
    return PhantomResult(root=out, n_images=images, files=files, summary=_summary(plan, layout, files))


# ------------------------------------------------------------------------------------------------ planning
def _cycle(rng: np.random.Generator, options: list[Any], n: int) -> list[Any]:
    """``n`` values dealt from seed-shuffled copies of ``options``: every option appears once per lap."""
    dealt: list[Any] = []
    while len(dealt) < n:
        dealt += [options[i] for i in rng.permutation(len(options))]
    return dealt[:n]


def _plan(images: int, seed: int, size: int, test_fraction: float, missing_pixel_data: int) -> list[_Image]:
    rng = np.random.default_rng([seed, 0])
    n_test = round(images * test_fraction)
    if test_fraction > 0 and images >= 2:
        n_test = min(max(n_test, 1), images - 1)
    test_set = set(rng.permutation(images)[:n_test].tolist())

    syntaxes = [s for s in _SYNTAX_CYCLE if s in TRANSFER_SYNTAXES]
    dealt_syntax = _cycle(rng, syntaxes, images)
    dealt_photo = _cycle(rng, ["MONOCHROME2", "MONOCHROME2", "MONOCHROME1"], images)
    dealt_bits = _cycle(rng, [10, 12, 12, 14, 15, 16], images)
    dealt_rescale = _cycle(rng, [None, None, (1.0, 0.0), (0.5, -512.0), (2.0, -1024.0)], images)
    dealt_windows = _cycle(rng, [1, 1, 2, 3, 0], images)
    dealt_voilut = _cycle(rng, [False, False, False, True], images)
    dealt_func = _cycle(rng, [None, None, None, "LINEAR", "SIGMOID", "LINEAR_EXACT"], images)
    dealt_demo = _cycle(rng, ["both", "both", "both", "sex", "none"], images)
    dealt_sop = _cycle(rng, ["DX", "DX", "CR"], images)
    train_idx = [i for i in range(images) if i not in test_set]
    no_ts = set(_pick_quirk(rng, train_idx, dealt_syntax, images))
    no_pixels = set(rng.permutation(train_idx)[:missing_pixel_data].tolist()) if missing_pixel_data else set()

    plan = []
    for i in range(images):
        irng = np.random.default_rng([seed, 1, i])
        rows = round(size * irng.uniform(1.0, 1.18))
        cols = round(size * irng.uniform(0.86, 1.02))
        sop_uid = make_uid("vindr-phantom", seed, i)
        image_id = hashlib.md5(sop_uid.encode()).hexdigest()
        syntax_name = dealt_syntax[i]
        bits = dealt_bits[i]
        rescale = dealt_rescale[i]
        if dealt_voilut[i] and bits > 14:  # keep the LUT (one entry per value) over the whole window
            bits = 12
        spec = DicomSpec(
            transfer_syntax=TRANSFER_SYNTAXES[syntax_name],
            photometric=dealt_photo[i],
            bits_stored=bits,
            rescale_slope=None if rescale is None else rescale[0],
            rescale_intercept=None if rescale is None else rescale[1],
            voi_lut=dealt_voilut[i],
            voi_lut_function=dealt_func[i] if dealt_windows[i] else None,
            sop_class=dealt_sop[i],
            sop_instance_uid=sop_uid,
            study_instance_uid=make_uid("vindr-phantom-study", seed, i),
            series_instance_uid=make_uid("vindr-phantom-series", seed, i),
            pixel_spacing=(round(0.14 * 2500 / rows, 4), round(0.14 * 2500 / rows, 4)),
            omit_transfer_syntax_in_meta=i in no_ts,
            omit_pixel_data=i in no_pixels,
        )
        spec.windows = _windows(spec, dealt_windows[i], irng)
        if dealt_demo[i] in ("both", "sex"):
            spec.sex = "M" if irng.random() < 0.55 else "F"
        if dealt_demo[i] == "both":
            spec.age = f"{int(irng.integers(18, 90)):03d}Y"
        item = _Image(i, image_id, "test" if i in test_set else "train", (rows, cols), [], spec, syntax_name)
        plan.append(item)
    return plan


_SYNTAX_CYCLE = [
    "explicit_le",
    "explicit_le",
    "explicit_le",
    "j2k_lossless",
    "j2k_lossless",
    "jpeg_lossless_sv1",
    "jpeg_lossless_sv1",
    "rle",
    "jpegls_lossless",
    "implicit_le",
    "explicit_be",
    "deflated_le",
    "j2k",
    "jpeg_lossless",
    "htj2k_lossless",
]


def _pick_quirk(rng: np.random.Generator, train_idx: list[int], syntax: list[str], images: int) -> list[int]:
    """Training images written without Transfer Syntax UID in their meta: about 1 in 20 explicit-LE files."""
    candidates = [i for i in train_idx if syntax[i] == "explicit_le"]
    if not candidates or images < 10:
        return []
    k = max(1, round(len(candidates) / 7))
    return sorted(int(i) for i in rng.permutation(candidates)[:k])


def _windows(spec: DicomSpec, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Window (center, width) pairs over the range the image occupies, in modality-LUT output units."""
    hi = (1 << spec.bits_stored) - 1
    slope = spec.rescale_slope if spec.rescale_slope is not None else 1.0
    intercept = spec.rescale_intercept if spec.rescale_intercept is not None else 0.0
    out = []
    for k in range(n):
        lo_frac, hi_frac = (0.08, 0.82) if k == 0 else (rng.uniform(0.05, 0.3), rng.uniform(0.6, 0.95))
        a, b = lo_frac * hi * slope + intercept, hi_frac * hi * slope + intercept
        out.append((round((a + b) / 2, 1), round(abs(b - a), 1)))
    return out


# ------------------------------------------------------------------------------------------------- images
def _findings_for(
    rng: np.random.Generator, g: ChestGeometry
) -> tuple[ChestGeometry, list[_Finding], list[Lesion]]:
    """Sample the true findings of one image and the lesions that draw them."""
    if rng.random() < 0.35:
        return g, [], []
    n = int(rng.choice([1, 1, 1, 2, 2, 3, 4]))
    labels = list(dict.fromkeys(rng.choice(_LOCAL_LABELS, size=n, p=_LOCAL_WEIGHTS).tolist()))
    findings: list[_Finding] = []
    lesions: list[Lesion] = []
    if "Cardiomegaly" in labels:
        g, lesion = enlarge_heart(g, rng)
        lesions.append(lesion)
        findings.append(_Finding("Cardiomegaly", lesion.box))
    for label in labels:
        if label == "Cardiomegaly":
            continue
        copies = 1
        if label in ("Nodule/Mass", "Calcification", "Pleural thickening", "Pulmonary fibrosis"):
            copies = int(rng.choice([1, 1, 2, 3]))
        for _ in range(copies):
            kind = "mass" if label == "Nodule/Mass" and rng.random() < 0.3 else KIND[label]
            lesion = place_lesion(kind, g, rng)
            lesions.append(lesion)
            findings.append(_Finding(label, lesion.box))
    present = {f.label for f in findings}
    extra: list[str] = []
    if "Nodule/Mass" in present and rng.random() < 0.5:
        extra.append("Lung tumor")
    if present & {"Consolidation", "Infiltration", "Lung Opacity"} and rng.random() < 0.6:
        extra.append("Pneumonia")
    if present & {"Pulmonary fibrosis", "Calcification", "Lung cavity"} and rng.random() < 0.4:
        extra.append("Tuberculosis")
    if "Emphysema" in present and rng.random() < 0.7:
        extra.append("COPD")
    if rng.random() < 0.12:
        extra.append("Other diseases")
    findings += [_Finding(label, None) for label in extra]
    return g, findings, lesions


def _write_image(out: Path, item: _Image, seed: int, layout: str) -> Path:
    rng = np.random.default_rng([seed, 1, item.index, 1])
    g = sample_geometry(rng, item.shape)
    g, item.truth, lesions = _findings_for(rng, g)
    img = render_chest(rng, item.shape, lesions, geometry=g)
    spec = item.spec
    hi = (1 << spec.bits_stored) - 1
    # attenuation [0, 1] -> stored range with a little head room, inverted for MONOCHROME1
    stored = np.rint((0.04 + 0.92 * img) * hi).astype(np.uint16)
    if spec.photometric == "MONOCHROME1":
        stored = (hi - stored).astype(np.uint16)
    if item.split == "train":
        item.readers = _read(item, np.random.default_rng([seed, 2, item.index]))
    else:
        item.readers = {"consensus": _consensus(item, np.random.default_rng([seed, 2, item.index]))}
    path = out / item.split / f"{item.image_id}.dicom"
    write_dicom(path, stored, spec)
    return path


# ------------------------------------------------------------------------------------------------ readers
def _jitter(box: Box, rng: np.random.Generator, amount: float) -> Box:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2 + rng.normal(0, amount * w)
    cy = (y0 + y1) / 2 + rng.normal(0, amount * h)
    w *= math.exp(rng.normal(0, amount * 1.5))
    h *= math.exp(rng.normal(0, amount * 1.5))
    return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)


def _past_edge(box: Box, shape: tuple[int, int], rng: np.random.Generator) -> Box:
    """Stretch a box near the image border slightly past it, as real readers' boxes sometimes are."""
    rows, cols = shape
    x0, y0, x1, y1 = box
    if x0 < 0.2 * cols:
        x0 = -rng.uniform(0.5, 6.0)
    elif x1 > 0.8 * cols:
        x1 = cols + rng.uniform(0.5, 6.0)
    elif y0 < 0.2 * rows:
        y0 = -rng.uniform(0.5, 6.0)
    return (x0, y0, x1, y1)


def _read(item: _Image, rng: np.random.Generator) -> dict[str, list[_Finding]]:
    """Three readers' findings: the truth jittered, sometimes missed, renamed, split, or with an extra box."""
    names = rng.choice(_READERS, size=3, replace=False, p=_READER_WEIGHTS).tolist()
    local = [f for f in item.truth if f.box is not None]
    glob = [f for f in item.truth if f.box is None]
    out: dict[str, list[_Finding]] = {}
    for name in names:
        found: list[_Finding] = []
        misses_all = bool(local) and rng.random() < 0.08
        for f in local:
            if misses_all or rng.random() < 0.12:
                continue
            assert f.box is not None
            label = f.label
            if label in _CONFUSABLE and rng.random() < 0.1:
                label = str(rng.choice(_CONFUSABLE[label]))
            box = _jitter(f.box, rng, 0.06)
            if rng.random() < 0.03:
                box = _past_edge(box, item.shape, rng)
            if rng.random() < 0.08 and box[2] - box[0] > 40:  # split one finding into two boxes
                mid = (box[0] + box[2]) / 2
                found += [
                    _Finding(label, (box[0], box[1], mid, box[3])),
                    _Finding(label, (mid, box[1], *box[2:])),
                ]
            else:
                found.append(_Finding(label, box))
        if rng.random() < 0.07:  # a false positive
            g = sample_geometry(rng, item.shape)
            label = str(rng.choice(["Nodule/Mass", "Lung Opacity", "Pleural thickening", "Other lesion"]))
            found.append(_Finding(label, place_lesion(KIND[label], g, rng).box))
        if not misses_all:
            found += [f for f in glob if rng.random() < 0.8]
        out[name] = found or [_Finding(NO_FINDING, None)]
    return out


def _consensus(item: _Image, rng: np.random.Generator) -> list[_Finding]:
    """The test set's consensus of five: close to the truth, box edges averaged (small jitter)."""
    found = [_Finding(f.label, None if f.box is None else _jitter(f.box, rng, 0.02)) for f in item.truth]
    return found or [_Finding(NO_FINDING, None)]


# --------------------------------------------------------------------------------------------------- CSVs
def _coords(box: Box | None) -> list[str]:
    return ["", "", "", ""] if box is None else [fmt_coord(v) for v in box]


def _label_row(findings: list[_Finding]) -> list[int]:
    present = {f.label for f in findings}
    return [int(label in present) for label in LABEL_COLUMNS_TRAIN]


def _write_physionet_csvs(out: Path, plan: list[_Image]) -> list[Path]:
    ann = out / "annotations"
    train = [p for p in plan if p.split == "train"]
    test = [p for p in plan if p.split == "test"]
    rows_train = [
        [p.image_id, reader, f.label, *_coords(f.box)]
        for p in train
        for reader, findings in p.readers.items()
        for f in findings
    ]
    rows_test = [[p.image_id, f.label, *_coords(f.box)] for p in test for f in p.readers["consensus"]]
    labels_train = [[p.image_id, reader, *_label_row(fs)] for p in train for reader, fs in p.readers.items()]
    labels_test = [[p.image_id, *_label_row(p.readers["consensus"])] for p in test]
    return [
        write_csv(
            ann / "annotations_train.csv", "image_id,rad_id,class_name,x_min,y_min,x_max,y_max", rows_train
        ),
        write_csv(ann / "annotations_test.csv", "image_id,class_name,x_min,y_min,x_max,y_max", rows_test),
        write_csv(ann / "image_labels_train.csv", ["image_id", "rad_id", *LABEL_COLUMNS_TRAIN], labels_train),
        write_csv(ann / "image_labels_test.csv", ["image_id", *LABEL_COLUMNS_TEST], labels_test),
    ]


def _write_challenge_csvs(out: Path, plan: list[_Image]) -> list[Path]:
    rows = []
    for p in plan:
        if p.split != "train":
            continue
        for reader, findings in p.readers.items():
            kept = [f for f in findings if f.box is not None and f.label in VINDR_CHALLENGE.class_ids]
            if not kept:
                rows.append([p.image_id, NO_FINDING, CHALLENGE_NO_FINDING_ID, reader, "", "", "", ""])
                continue
            for f in kept:
                assert f.box is not None
                coords = [max(0, int(v)) for v in f.box]
                rows.append([p.image_id, f.label, VINDR_CHALLENGE.class_ids[f.label], reader, *coords])
    header = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"
    submission = [[p.image_id, "14 1 0 0 1 1"] for p in plan if p.split == "test"]
    return [
        write_csv(out / "train.csv", header, rows),
        write_csv(out / "sample_submission.csv", "image_id,PredictionString", submission),
    ]


def _summary(plan: list[_Image], layout: str, files: list[Path]) -> dict[str, Any]:
    boxes = Counter(f.label for p in plan for f in p.truth)
    readers = Counter(r for p in plan if p.split == "train" for r in p.readers)
    return {
        "dataset": "vindr",
        "layout": layout,
        "images": len(plan),
        "train": sum(p.split == "train" for p in plan),
        "test": sum(p.split == "test" for p in plan),
        "normal images": sum(not p.truth for p in plan),
        "readers": len(readers),
        "reader rows": sum(len(fs) for p in plan for fs in p.readers.values()),
        "findings": dict(sorted(boxes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "transfer syntaxes": dict(sorted(Counter(p.syntax_name for p in plan).items())),
        "photometric": dict(sorted(Counter(p.spec.photometric for p in plan).items())),
        "bits stored": dict(sorted(Counter(p.spec.bits_stored for p in plan).items())),
        "without transfer syntax in meta": sum(p.spec.omit_transfer_syntax_in_meta for p in plan),
        "without pixel data": sum(p.spec.omit_pixel_data for p in plan),
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
    }
