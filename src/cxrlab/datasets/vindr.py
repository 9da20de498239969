"""VinDr-CXR: index both releases (PhysioNet and the VinBigData challenge) into the images and findings
tables.

Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the original DICOM, origin top-left.

Layouts: PhysioNet has ``annotations/annotations_{train,test}.csv`` and
``annotations/image_labels_{train,test}.csv``; the challenge has ``train.csv`` (14 classes with ids). Both
have ``train/<image_id>.dicom`` (and ``test/``). The DICOMs are optional: only their headers are read (no
pixels, in a thread pool) for the size, sex, age and a few technical columns. Without them (many users hold
only the label files) the sizes are unknown, the result says so, and everything downstream still works.

Tables made here:

- images: ``dataset`` "vindr", ``split`` train/test, ``patient_id`` NA (VinDr-CXR publishes no patient ids;
  the image_id is not a patient id, so patient-level splits cannot be made), ``path``
  ``<split>/<image_id>.dicom`` relative to DIR (the expected place even where the file is absent;
  ``has_dicom`` says whether it is there), ``width``/``height`` from (0028,0011) Columns/(0028,0010) Rows,
  ``sex`` M/F/O from (0010,0040), ``age`` in years from (0010,1010) (``045Y``, ``006M``, ``010W``, ``020D``),
  ``view`` "PA", and ``photometric``, ``bits_stored``, ``transfer_syntax``.
- findings: train readers ``R1``..``R17``; the test labels (a consensus of 5 radiologists) as reader
  ``consensus``; a ``rad_id`` of ``consensus`` in a training file (written by ``cxrlab export`` after ``labels
  consensus``) is read back as that reader. ``score`` 1.0.

Rules, each reported with a count and examples (:class:`~cxrlab.problems.Problem`):

- Local findings come from the box files (``annotations_*.csv`` / ``train.csv``); global labels (and local
  ones ticked without a box) from ``image_labels_*.csv``: a label a reader ticked there and has no row for in
  the box file becomes an image-level row (NaN box). Disagreements between the two files are reported.
- A box partly outside the image is clipped to it (to x, y >= 0 only when the size is unknown) and counted. A
  box entirely outside, with some coordinates missing, or with ``x_max <= x_min`` / ``y_max <= y_min`` after
  clipping loses its coordinates: the reader's label stays as an image-level finding (the vote is kept).
- ``No finding`` from a reader who also reports a finding on the same image: the findings are kept and that
  reader's ``No finding`` row is dropped.
- Unknown labels are an error listing them with near matches; ``allow_unknown`` keeps them as written.
- A 32-digit hex ``image_id`` written in upper case (a label row or a DICOM file name) is lower-cased, so
  that the files still meet; other ids that are not lowercase hex are kept as written. Both are reported.
- Exact duplicate rows are kept once. A challenge ``class_id`` that disagrees with its ``class_name`` is
  reported (the name wins).
- A training image with a number of readers other than 3, an image in the labels without its DICOM (when the
  split's DICOM folder exists), and a DICOM without labels (indexed, with no findings) are reported.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from cxrlab.datasets.index import DatasetIndex
from cxrlab.datasets.vindr_labels import (
    _HEX_ID,
    _box_rows,
    _canonical_labels,
    _check_class_ids,
    _clean_boxes,
    _duplicates,
    _empty_raw,
    _image_label_rows,
    _lower_hex_ids,
    _merge_image_labels,
    _no_finding_conflicts,
    sort_findings,
)
from cxrlab.errors import CxrlabError
from cxrlab.imaging.headers import (  # noqa: F401 - parse_age, parse_sex, read_header stay importable here
    HEADER_FIELDS,
    HEADER_TAGS,
    MAX_PLAUSIBLE_AGE,
    implausible_age,
    parse_age,
    parse_sex,
    read_header,
    read_headers,
)
from cxrlab.problems import MAX_EXAMPLES, ProblemLog
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, conform_findings, conform_images

DATASET = "vindr"
SPLITS = ("train", "test")
PHYSIONET = "physionet"
CHALLENGE = "challenge"
REPORT_FILE = "vindr_index_report.json"
_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class VindrIndex(DatasetIndex):
    """The VinDr tables with the problems found; ``layout`` is the release's folder layout."""

    layout: str = PHYSIONET
    sizes_known: bool = False

    dataset: ClassVar[str] = DATASET
    report_file: ClassVar[str] = REPORT_FILE

    def details(self) -> dict[str, Any]:
        return {"layout": self.layout, "sizes_known": self.sizes_known}


def detect_layout(root: str | Path) -> str:
    """``physionet`` when ``annotations/`` holds the box files, ``challenge`` when ``train.csv`` is there."""
    root = Path(root)
    if not root.is_dir():
        raise CxrlabError(f"{root}: no such folder")
    if (root / "annotations" / "annotations_train.csv").is_file() or (
        root / "annotations" / "annotations_test.csv"
    ).is_file():
        return PHYSIONET
    if (root / "train.csv").is_file():
        return CHALLENGE
    raise CxrlabError(
        f"{root}: not a VinDr-CXR folder (expected annotations/annotations_train.csv of the PhysioNet "
        "release or train.csv of the VinBigData challenge)"
    )


@dataclass
class _Labels:
    """The label rows of a release as read: boxes (one row per box-file line), image-label ticks."""

    boxes: pd.DataFrame
    ticks: pd.DataFrame
    splits: list[str]  # the splits that have label files
    sources: dict[str, str]


def _read_labels(root: Path, layout: str, upper: list[str]) -> _Labels:
    """Every label file of the layout; upper-case hex ids lower-cased (each noted in ``upper``)."""
    boxes: list[pd.DataFrame] = []
    ticks: list[pd.DataFrame] = []
    splits: list[str] = []
    sources: dict[str, str] = {}
    if layout == CHALLENGE:
        boxes.append(_box_rows(root / "train.csv", "train", has_reader=True, challenge=True))
        splits.append("train")
        sources["train_boxes"] = "train.csv"
    for split in SPLITS if layout == PHYSIONET else ():
        path = root / "annotations" / f"annotations_{split}.csv"
        if path.is_file():
            boxes.append(_box_rows(path, split, has_reader=split == "train", challenge=False))
            sources[f"{split}_boxes"] = f"annotations/{path.name}"
        labels_path = root / "annotations" / f"image_labels_{split}.csv"
        if labels_path.is_file():
            ticks.append(_image_label_rows(labels_path, split, has_reader=split == "train"))
            sources[f"{split}_labels"] = f"annotations/{labels_path.name}"
        if path.is_file() or labels_path.is_file():
            splits.append(split)
    box_rows = (
        pd.concat([_lower_hex_ids(p, upper) for p in boxes], ignore_index=True) if boxes else _empty_raw()
    )
    no_ticks = _empty_raw()[["image_id", "split", "reader", "label"]].assign(ticked=False)
    tick_rows = pd.concat([_lower_hex_ids(p, upper) for p in ticks], ignore_index=True) if ticks else no_ticks
    return _Labels(box_rows, tick_rows, splits, sources)


def _canonical(labels: _Labels, layout: str, allow_unknown: bool, where: str, problems: ProblemLog) -> None:
    """Labels mapped to the VinDr names (unknown ones refused or kept); challenge class ids checked."""
    if labels.boxes["image_id"].isna().any():
        raise CxrlabError(f"{where}: {int(labels.boxes['image_id'].isna().sum())} row(s) without image_id")
    labels.boxes = _canonical_labels(labels.boxes, problems, allow_unknown, where)
    if layout == CHALLENGE:
        _check_class_ids(labels.boxes, problems)
        labels.boxes = labels.boxes.drop(columns="class_id")
    if not labels.ticks.empty:
        labels.ticks = _canonical_labels(labels.ticks, problems, allow_unknown, where)


def _split_of(labels: _Labels, where: str) -> pd.DataFrame:
    """One row per labelled image with its split; an image in both train and test is an error."""
    split_of = pd.concat([labels.boxes[["image_id", "split"]], labels.ticks[["image_id", "split"]]])
    split_of = split_of.drop_duplicates()
    both = split_of[split_of["image_id"].duplicated(keep=False)]
    if not both.empty:
        raise CxrlabError(
            f"{where}: {both['image_id'].nunique()} image(s) appear in both train and test labels "
            f"(e.g. {both['image_id'].iloc[0]})"
        )
    return split_of


@dataclass
class _Dicoms:
    split: dict[str, str]  # image id -> split folder holding its file
    stem: dict[str, str]  # image id -> the file name's own spelling (case kept for the path)
    folders: list[str]  # split folders present


def _scan_dicoms(root: Path, upper: list[str]) -> _Dicoms:
    """The ``<split>/*.dicom`` files present, by image id (upper-case hex names noted in ``upper``)."""
    found = _Dicoms({}, {}, [])
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        found.folders.append(split)
        for entry in os.scandir(folder):
            if entry.name.endswith(".dicom") and entry.is_file():
                stem = entry.name[: -len(".dicom")]
                image_id = stem.lower() if _HEX_ID.fullmatch(stem) else stem
                if image_id != stem:
                    upper.append(f"{split}/{entry.name}")
                found.split[image_id] = split
                found.stem[image_id] = stem
    return found


def _image_rows(
    split_of: pd.DataFrame, dicoms: _Dicoms, labels: _Labels, problems: ProblemLog
) -> pd.DataFrame:
    """Labelled images and unlabelled DICOMs, with ``has_dicom`` and ``path``; mismatches reported."""
    images = pd.DataFrame(
        {"image_id": split_of["image_id"].to_numpy(), "split": split_of["split"].to_numpy()}
    )
    extra = sorted(set(dicoms.split) - set(images["image_id"]))
    problems.add(
        "dicom-without-labels",
        "DICOM without labels: indexed as an image without findings",
        [i for i in extra if dicoms.split[i] in labels.splits],
    )
    if extra:
        extra_rows = pd.DataFrame({"image_id": extra, "split": [dicoms.split[i] for i in extra]})
        images = pd.concat([images, extra_rows], ignore_index=True)
    images = images.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    images["has_dicom"] = images["image_id"].map(lambda i: i in dicoms.split).astype(bool)
    images["path"] = (
        images["split"] + "/" + images["image_id"].map(lambda i: dicoms.stem.get(i, i)) + ".dicom"
    )
    missing = images[~images["has_dicom"] & images["split"].isin(dicoms.folders)]
    problems.add(
        "dicom-missing",
        "image in the labels without its DICOM: indexed without size, sex and age",
        missing["image_id"].tolist(),
    )
    bad_ids = images.loc[~images["image_id"].str.fullmatch(_ID.pattern), "image_id"].tolist()
    problems.add("odd-image-id", "image_id not a 32-character lowercase hex string: kept as written", bad_ids)
    return images


def _headers(images: pd.DataFrame, root: Path, read_dicom: bool, workers: int | None, progress: bool,
             problems: ProblemLog) -> pd.DataFrame:  # fmt: skip
    """The header fields of every image with a DICOM (object columns, None where unknown)."""
    headers = pd.DataFrame(index=images.index, columns=HEADER_FIELDS, dtype=object)
    with_file = images.index[images["has_dicom"]] if read_dicom else images.index[:0]
    if not len(with_file):
        return headers
    got = read_headers([root / p for p in images.loc[with_file, "path"]], workers=workers, progress=progress)
    table = pd.DataFrame(got, index=with_file)
    errors = table["error"].notna() if "error" in table else pd.Series(False, index=with_file)
    problems.add(
        "unreadable-header",
        "unreadable DICOM header: indexed without size, sex and age",
        [f"{images.at[i, 'path']}: {table.at[i, 'error']}" for i in table.index[errors][:MAX_EXAMPLES]],
        count=int(errors.sum()),
    )
    for c in HEADER_FIELDS:
        if c in table:
            headers.loc[with_file, c] = table[c]
    return headers


def _add_header_columns(images: pd.DataFrame, headers: pd.DataFrame, problems: ProblemLog) -> pd.DataFrame:
    """Size, sex, age (unreadable and implausible ages reported, left unknown) and technical columns."""
    images = images.copy()
    images["width"] = pd.to_numeric(headers["width"]).astype("Int64")
    images["height"] = pd.to_numeric(headers["height"]).astype("Int64")
    images["sex"] = headers["sex"].astype("string")
    age = headers["age_raw"].map(parse_age).astype("float64")
    bad_age = (headers["age_raw"].notna() & age.isna()).to_numpy()
    described = images["image_id"] + ": " + headers["age_raw"].astype("string")
    problems.where("bad-age", bad_age, described, "PatientAge not readable as an age: age left unknown")
    implausible = implausible_age(age)
    message = f"PatientAge over {MAX_PLAUSIBLE_AGE:g} years: age left unknown"
    problems.where("implausible-age", implausible, described, message)
    images["age"] = age.mask(implausible).astype("Float64")
    images["photometric"] = headers["photometric"].astype("string")
    images["bits_stored"] = pd.to_numeric(headers["bits_stored"]).astype("Int64")
    images["transfer_syntax"] = headers["transfer_syntax"].astype("string")
    images["dataset"] = DATASET
    images["patient_id"] = pd.Series(pd.NA, index=images.index, dtype="string")
    images["view"] = "PA"
    return conform_images(images)


def _findings(labels: _Labels, images: pd.DataFrame, problems: ProblemLog) -> pd.DataFrame:
    """Boxes cleaned, image-label ticks merged, conflicts and duplicates resolved, canonical order."""
    sizes = images[["image_id", "width", "height"]].astype({"width": float, "height": float})
    findings = _merge_image_labels(_clean_boxes(labels.boxes, sizes, problems), labels.ticks, problems)
    findings = _duplicates(_no_finding_conflicts(findings, problems), problems)
    findings = findings.assign(score=1.0)[["image_id", "reader", "label", *BOX_COLUMNS, "score"]]
    findings = sort_findings(conform_findings(findings))
    train_ids = images.loc[images["split"] == "train", "image_id"]
    human = findings[(findings["reader"] != CONSENSUS) & findings["image_id"].isin(train_ids)]
    per_image = human.groupby("image_id")["reader"].nunique()
    odd = per_image[per_image != 3]
    problems.add(
        "reader-count",
        "training image with a number of readers other than 3: kept; consensus uses the readers present",
        [f"{i}: {n} reader(s)" for i, n in odd.head(MAX_EXAMPLES).items()],
        count=len(odd),
    )
    return findings


def _notes(images: pd.DataFrame, dicoms: _Dicoms, labels: _Labels) -> list[str]:
    notes = [
        f"{split}: DICOMs without label files, indexed without findings"
        for split in SPLITS
        if split in dicoms.split.values() and split not in labels.splits
    ]
    n_unknown = int(images["width"].isna().sum())
    if n_unknown:
        notes.append(
            f"image sizes unknown for {n_unknown} of {len(images)} images (no readable DICOM): boxes are "
            "clipped at 0 only, consensus normalises by the largest coordinate per image, "
            "YOLO export needs sizes"
        )
    notes.append("patient_id is unknown: VinDr-CXR publishes no patient ids")
    return notes


def index_vindr(
    root: str | Path,
    *,
    allow_unknown: bool = False,
    read_dicom: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> VindrIndex:
    """Index a VinDr-CXR folder of either release; see the module docstring for every rule."""
    root = Path(root)
    layout = detect_layout(root)
    where = str(root)
    problems = ProblemLog(file=root.name or where)
    upper: list[str] = []  # ids written in upper case (rows of label files, DICOM file names)
    labels = _read_labels(root, layout, upper)
    _canonical(labels, layout, allow_unknown, where, problems)
    split_of = _split_of(labels, where)
    dicoms = _scan_dicoms(root, upper)
    problems.add(
        "upper-case-id",
        "image_id in upper case: lower-cased, a hex id means the same in any case "
        "(label rows and DICOM file names then match)",
        upper,
    )
    images = _image_rows(split_of, dicoms, labels, problems)
    headers = _headers(images, root, read_dicom, workers, progress, problems)
    images = _add_header_columns(images, headers, problems)
    findings = _findings(labels, images, problems)
    sizes_known = bool(len(images)) and bool(images["width"].notna().all())
    notes = _notes(images, dicoms, labels)
    return VindrIndex(
        images, findings, problems.items, notes, labels.sources, layout=layout, sizes_known=sizes_known
    )


def write_report(index: VindrIndex, folder: str | Path) -> Path:
    """Write the index report as JSON beside tables written separately (atomically)."""
    import json

    from cxrlab.atomic import write_text_atomic

    return write_text_atomic(Path(folder) / REPORT_FILE, json.dumps(index.report(), indent=2) + "\n")
