"""NIH ChestX-ray14 label files -> the images and findings tables.

Reads the Data_Entry table in any of its revisions, the BBox list and the official split lists
(:mod:`cxrlab.datasets.nih_files` reads them as written; this module applies the rules).

Box convention: ``x_min, y_min, x_max, y_max`` in pixels of the released 1024 x 1024 PNG, origin top-left
(``BBox_List_2017.csv`` gives ``x, y, w, h`` on that grid). The images table's ``width``/``height`` are
therefore the PNG's size (1024), the frame every box and every model sees; the size of the original
radiograph before NIH resized it is kept in ``original_width``/``original_height`` with its
``pixel_spacing_x``/``pixel_spacing_y`` (mm per pixel of the original).

Findings: one image-level row per NLP label of ``Finding Labels`` (``source`` = ``nlp``) and one row per
box (``source`` = ``bbox``), all with reader ``nih`` and score 1. ``image_id`` is the file name without
``.png`` (``00000001_000``); ``path`` is ``images/00000001_000.png``.

Nothing is dropped silently: every oddity (unknown labels, list names absent from the entry table,
duplicate or conflicting rows, implausible ages, boxes outside the image, ...) becomes a
:class:`~cxrlab.problems.Problem` with a count and examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from cxrlab.datasets.index import DatasetIndex
from cxrlab.datasets.nih_files import (
    BBOX_NAMES,
    ENTRY_NAMES,
    LIST_SPLITS,
    _extract,
    _has_duplicates,
    _numeric,
    find_file,
    png_header,
    read_bbox_list,
    read_entry_table,
    read_list,
)
from cxrlab.errors import CxrlabError
from cxrlab.imaging.headers import MAX_PLAUSIBLE_AGE, implausible_age, parse_ages  # noqa: F401
from cxrlab.problems import MAX_EXAMPLES, Problem, ProblemLog
from cxrlab.tables import BOX_COLUMNS, conform_findings, conform_images, isin_strings, positions_in
from cxrlab.taxonomy import NIH

DATASET = "nih"
READER = "nih"
PNG_SIZE = 1024
REPORT_FILE = "nih_index_report.json"
_IMAGE_NAME = r"^(?P<g0>\d{8})_(?P<g1>\d{3})\.png$"


@dataclass
class NihIndex(DatasetIndex):
    """The NIH tables with the problems found; ``revision`` is the Data_Entry revision read."""

    revision: str = ""

    dataset: ClassVar[str] = DATASET
    report_file: ClassVar[str] = REPORT_FILE

    def details(self) -> dict[str, Any]:
        return {"revision": self.revision}

    def summary(self) -> dict[str, Any]:
        """The report (the name this method had before the NIH and VinDr indexes shared one)."""
        return self.report()


def _isin(values: pd.Series, allowed: Any) -> pd.Series:
    """``values.isin(allowed)`` through pyarrow (pandas 3's Arrow strings loop in Python for that)."""
    return pd.Series(isin_strings(values, allowed), index=values.index)


def _canonical_labels(labels: pd.Series, file: str, problems: ProblemLog, what: str) -> pd.Series:
    """Map each distinct spelling through taxonomy.NIH once; unknown ones become NA and a problem."""
    mapping = {}
    for name in labels.dropna().unique():
        mapping[name] = NIH.match(str(name))
    out = labels.map(mapping).astype("string")
    unknown = out.isna() & labels.notna()
    if unknown.any():
        counts = labels[unknown].value_counts()
        examples = [f"{k!r} x{v}" for k, v in counts.head(MAX_EXAMPLES).items()]
        problems.append(
            Problem(
                file,
                "unknown-label",
                int(unknown.sum()),
                f"{what} with a label not in the NIH set, left out of the findings",
                examples,
            )
        )
    return out


def _coded(
    problems: ProblemLog,
    file: str,
    entry: pd.DataFrame,
    column: str,
    allowed: list[str],
    kind: str,
    message: str,
) -> tuple[pd.Series, pd.Series]:
    """A coded column upper-cased, and where it holds an ``allowed`` code; the other rows are reported."""
    upper = entry[column].str.upper()
    valid = _isin(upper, allowed).fillna(False)
    names = entry["image_index"] + " " + entry[column].fillna("")
    problems.where(kind, ~valid, names, message, file=file)
    return upper, valid


_ENTRY_COLUMN_NAMES = {
    "finding_labels": "Finding Labels",
    "follow_up": "Follow-up #",
    "patient_id": "Patient ID",
    "age_raw": "Patient Age",
    "sex": "Patient Gender",
    "view": "View Position",
    "original_width": "OriginalImage Width",
    "original_height": "OriginalImage Height",
    "pixel_spacing_x": "Pixel Spacing x",
    "pixel_spacing_y": "Pixel Spacing y",
}


def _differences(first: pd.Series, other: pd.Series) -> str:
    """``Patient Age 58 vs 60; View Position PA vs AP``: the columns in which two rows differ."""
    parts = []
    for column, title in _ENTRY_COLUMN_NAMES.items():
        a, b = first.get(column), other.get(column)
        if not (pd.isna(a) and pd.isna(b)) and (pd.isna(a) or pd.isna(b) or a != b):
            parts.append(f"{title} {a} vs {b}")
    return "; ".join(parts)


def _dedupe_entry(entry: pd.DataFrame, file: str, problems: ProblemLog) -> pd.DataFrame:
    """Keep the first row of each Image Index: exact repeats and conflicting rows reported apart."""
    if not _has_duplicates(entry["image_index"]):
        return entry
    columns = [c for c in entry.columns if c != "age"]  # age is derived from age_raw (NaN != NaN)
    identical = entry.duplicated(columns, keep="first").to_numpy()
    problems.where(
        "duplicate-row",
        identical,
        entry["image_index"],
        "row(s) repeating an earlier row exactly, kept once",
        file=file,
    )
    entry = entry[~identical]
    names = entry["image_index"]
    conflicting = (names.duplicated(keep="first") & names.notna() & (names != "")).to_numpy()
    if conflicting.any():
        first = entry.drop_duplicates("image_index").set_index("image_index")
        examples = [
            f"{row['image_index']}: {_differences(first.loc[row['image_index']], row)}"
            for _, row in entry[conflicting].head(MAX_EXAMPLES).iterrows()
        ]
        problems.append(
            Problem(
                file,
                "conflicting-duplicate",
                int(conflicting.sum()),
                "row(s) with the Image Index of an earlier row but other values: the first row is kept",
                examples,
            )
        )
    return entry[~names.duplicated(keep="first").to_numpy()].reset_index(drop=True)


def attach_png_sizes(images: pd.DataFrame, images_dir: Path, problems: ProblemLog) -> pd.DataFrame:
    """Take ``width``/``height`` from the extracted PNGs (and their mode: a few NIH PNGs are RGBA)."""
    folder = images_dir / "images" if (images_dir / "images").is_dir() else images_dir
    if not folder.is_dir():
        raise CxrlabError(f"{images_dir}: no such images folder")
    headers = [png_header(folder / name) for name in images["path"].str.removeprefix("images/")]
    found = np.array([h is not None for h in headers])
    out = images.copy()
    out["width"] = pd.array([h[0] if h else PNG_SIZE for h in headers], dtype="Int64")
    out["height"] = pd.array([h[1] if h else PNG_SIZE for h in headers], dtype="Int64")
    out["png_mode"] = pd.array([h[2] if h else None for h in headers], dtype="string")
    out["has_png"] = found
    where = str(folder)
    problems.where(
        "png-missing",
        ~found,
        images["path"],
        f"image(s) without a readable PNG (size assumed {PNG_SIZE})",
        file=where,
    )
    odd = found & ((out["width"] != PNG_SIZE) | (out["height"] != PNG_SIZE)).to_numpy(dtype=bool)
    problems.where(
        "png-size",
        odd,
        images["path"] + " " + out["width"].astype("string") + "x" + out["height"].astype("string"),
        f"PNG(s) not {PNG_SIZE} x {PNG_SIZE} (their size is used)",
        file=where,
        severity="note",
    )
    rgba = (out["png_mode"] == "RGBA").fillna(False).to_numpy(dtype=bool)
    problems.where(
        "png-rgba",
        rgba,
        images["path"],
        "PNG(s) stored as RGBA (read them as gray)",
        file=where,
        severity="note",
    )
    return out


def nlp_findings(entry: pd.DataFrame, file: str, problems: ProblemLog) -> pd.DataFrame:
    """One image-level row per label of ``Finding Labels`` (``source`` nlp); unknown labels reported."""
    entry = entry.drop_duplicates("image_index")
    labels = pa.array(entry["finding_labels"].fillna(""), type=pa.string())
    split = pc.split_pattern(labels, "|")
    parents = pc.list_parent_indices(split).to_numpy()
    flat = pd.Series(pc.utf8_trim_whitespace(pc.list_flatten(split)).to_pandas(), dtype="string")
    keep = (flat != "").to_numpy()
    ids = entry["image_index"].str.removesuffix(".png").to_numpy(dtype=object)[parents]
    empty = np.ones(len(entry), dtype=bool)
    empty[parents[keep]] = False
    problems.where(
        "no-labels",
        empty,
        entry["image_index"],
        "row(s) with an empty Finding Labels (no finding rows)",
        file=file,
    )
    flat, ids = flat[keep].reset_index(drop=True), ids[keep]
    canon = _canonical_labels(flat, file, problems, "label(s)")
    ok = canon.notna().to_numpy()
    nlp = pd.DataFrame({"image_id": ids[ok], "reader": READER, "label": canon[ok].to_numpy()})
    for c in BOX_COLUMNS:
        nlp[c] = np.nan
    return nlp.assign(score=1.0, source="nlp")


def _clip_boxes(b: pd.DataFrame, images: pd.DataFrame, file: str, problems: ProblemLog) -> pd.DataFrame:
    """Clip boxes reaching past their image; boxes with nothing left inside it are skipped, by line."""
    size = images.set_index("image_id")[["width", "height"]].astype("float64")
    w = b["image_id"].map(size["width"]).to_numpy(dtype=float)
    h = b["image_id"].map(size["height"]).to_numpy(dtype=float)
    where = "line " + b["line"].astype("string") + ": " + b["image_index"]
    outside = ((b["x_min"] < 0) | (b["y_min"] < 0) | (b["x_max"] > w) | (b["y_max"] > h)).to_numpy()
    b = b.assign(
        x_min=b["x_min"].clip(0, w),
        x_max=b["x_max"].clip(0, w),
        y_min=b["y_min"].clip(0, h),
        y_max=b["y_max"].clip(0, h),
    )
    empty = ((b["x_max"] <= b["x_min"]) | (b["y_max"] <= b["y_min"])).to_numpy()
    problems.where(
        "box-outside",
        outside & ~empty,
        where,
        "box(es) reaching past the image (1024 x 1024, or the PNG's size), clipped",
        file=file,
    )
    problems.where(
        "box-off-image",
        empty,
        where + " " + b["x_min"].astype("string") + "," + b["y_min"].astype("string"),
        "box(es) entirely outside the image, skipped",
        file=file,
    )
    return b[~empty]


def box_findings(
    boxes: pd.DataFrame,
    images: pd.DataFrame,
    nlp: pd.DataFrame,
    files: dict[str, str],
    problems: ProblemLog,
) -> pd.DataFrame:
    """One row per box of the BBox list (``source`` bbox) on a known image, clipped to it."""
    file = files["bbox"]
    b = boxes.assign(image_id=boxes["image_index"].str.removesuffix(".png"))
    known = _isin(b["image_id"], images["image_id"]).to_numpy()
    problems.where(
        "box-image-unknown",
        ~known,
        b["image_index"],
        f"box(es) on an image absent from {files['entry']}, left out",
        file=file,
    )
    b = b[known]
    dup = b.duplicated(["image_id", "label", *BOX_COLUMNS])
    problems.where("duplicate-box", dup, b["image_index"], "identical box row(s) (kept)", file=file)
    b = _clip_boxes(b, images, file, problems)
    b = b.assign(label=_canonical_labels(b["label"], file, problems, "box(es)"))
    b = b[b["label"].notna()]
    unlabelled = ~isin_strings(b["image_id"] + "|" + b["label"], nlp["image_id"] + "|" + nlp["label"])
    problems.where(
        "box-label-not-in-entry",
        unlabelled,
        b["image_index"] + " " + b["label"],
        f"box(es) whose label is not among the image's labels in {files['entry']} (kept)",
        file=file,
        severity="note",
    )
    return b[["image_id", *BOX_COLUMNS]].assign(reader=READER, label=b["label"], score=1.0, source="bbox")


def build_findings(
    entry: pd.DataFrame,
    boxes: pd.DataFrame | None,
    images: pd.DataFrame,
    files: dict[str, str],
    problems: ProblemLog,
) -> pd.DataFrame:
    """Image-level rows from ``Finding Labels`` and box rows from the BBox list, reader ``nih``."""
    nlp = nlp_findings(entry, files["entry"], problems)
    parts = [nlp]
    if boxes is not None and len(boxes):
        parts.append(box_findings(boxes, images, nlp, files, problems))
    return conform_findings(pd.concat(parts, ignore_index=True))


def _check_names(entry: pd.DataFrame, file: str, problems: ProblemLog) -> tuple[pd.DataFrame, pd.Series]:
    """Rows with an Image Index, and the patient id (zero-padded); odd names and mismatches reported."""
    names = entry["image_index"]
    empty = (names.isna() | (names == "")).to_numpy()
    problems.where("empty-name", empty, names, "row(s) without an Image Index, skipped", file=file)
    entry = entry[~empty].reset_index(drop=True)
    names = entry["image_index"]
    parts = _extract(names, _IMAGE_NAME)
    problems.where(
        "odd-name",
        parts[0].isna(),
        names,
        "Image Index value(s) not of the form PPPPPPPP_FFF.png (kept)",
        file=file,
    )
    pid = entry["patient_id"]
    digits = pid.str.fullmatch(r"\d+").fillna(False)
    patient = pid.where(~digits, pid.str.zfill(8))
    problems.where(
        "patient-mismatch",
        (parts[0].notna() & (parts[0] != patient)).fillna(False),
        names + " vs Patient ID " + pid,
        "row(s) whose Patient ID differs from the file name's (kept)",
        file=file,
    )
    problems.where(
        "follow-up-differs",
        (_numeric(parts[1]).astype("Int64") != entry["follow_up"]).fillna(False),
        names + " has Follow-up # " + entry["follow_up"].astype("string"),
        "row(s) whose Follow-up # differs from the file name's number (the column is kept)",
        file=file,
        severity="note",
    )
    return entry, patient


def _demographics(entry: pd.DataFrame, file: str, problems: ProblemLog) -> dict[str, pd.Series]:
    """Age (implausible ones masked and flagged), sex and view, each oddity reported."""
    names, age = entry["image_index"], entry["age"]
    implausible = implausible_age(age)
    problems.where(
        "implausible-age",
        implausible,
        names + " age " + entry["age_raw"],
        f"implausible age(s) over {MAX_PLAUSIBLE_AGE:g} years: row kept, age set to NA, "
        "the value kept in age_raw and flagged in age_implausible",
        file=file,
    )
    problems.where(
        "missing-age",
        age.isna() & ~implausible,
        names + " age " + entry["age_raw"].fillna(""),
        "row(s) with an unreadable age (age NA)",
        file=file,
    )
    sex, known_sex = _coded(
        problems, file, entry, "sex", ["M", "F"], "bad-sex", "row(s) with Patient Gender not M or F (sex NA)"
    )
    view, _ = _coded(
        problems, file, entry, "view", ["PA", "AP"], "odd-view",
        "row(s) with a View Position other than PA or AP (kept as written)",
    )  # fmt: skip
    return {
        "age": age.mask(implausible),
        "age_implausible": implausible,
        "sex": sex.where(known_sex),
        "view": view,
    }


def _assign_splits(
    names: pd.Series, splits: dict[str, pd.Series], file: str, problems: ProblemLog
) -> pd.Series:
    """The split of each image from the official lists (the first list naming it wins), NA for none."""
    split = np.full(len(names), None, dtype=object)
    seen: dict[str, pd.Series] = {}
    for list_name, listed in splits.items():
        dup = listed.duplicated()
        problems.where("duplicate-list-line", dup, listed, "name(s) listed twice", file=list_name)
        listed = listed[~dup]
        positions = positions_in(listed, names)
        absent = positions < 0
        message = f"name(s) absent from {file}: no metadata, left out of the tables"
        problems.where("not-in-entry", absent, listed, message, file=list_name)
        listed, positions = listed[~absent], positions[~absent]
        for other, other_names in seen.items():
            both = isin_strings(listed, other_names)
            problems.where(
                "in-two-lists", both, listed, f"name(s) also in {other}: the first list wins", file=list_name
            )
            listed, positions = listed[~both], positions[~both]
        seen[list_name] = listed
        split[positions] = LIST_SPLITS.get(list_name, list_name)
    split = pd.Series(split, index=names.index, dtype="string")
    if not splits:
        return split
    problems.where("no-split", split.isna(), names, "image(s) in no split list (split NA)", file=file)
    return split


def build_images(
    entry: pd.DataFrame, splits: dict[str, pd.Series], file: str, problems: ProblemLog
) -> pd.DataFrame:
    """The images table from the entry rows (deduplicated) and the split lists."""
    entry, patient = _check_names(_dedupe_entry(entry, file, problems), file, problems)
    names = entry["image_index"]
    person = _demographics(entry, file, problems)
    images = pd.DataFrame(
        {
            "image_id": names.str.removesuffix(".png"),
            "dataset": DATASET,
            "split": _assign_splits(names, splits, file, problems),
            "patient_id": patient,
            "path": "images/" + names,
            "width": PNG_SIZE,
            "height": PNG_SIZE,
            "sex": person["sex"],
            "age": person["age"],
            "view": person["view"],
            **{c: entry[c] for c in ("follow_up", "original_width", "original_height")},
            **{c: entry[c] for c in ("pixel_spacing_x", "pixel_spacing_y", "age_raw")},
            "age_implausible": person["age_implausible"],
        }
    )
    return conform_images(images)


def _label_files(folder: Path, entry: str | Path | None, problems: ProblemLog) -> dict[str, Path]:
    """The files to read, by role (``entry``, ``bbox``, ``train_val``, ``test``); absent ones reported."""
    entry_path = Path(entry) if entry else find_file(folder, ENTRY_NAMES, "Data_Entry table")
    assert entry_path is not None
    if not entry_path.is_file():
        raise CxrlabError(f"{entry_path}: no such file")
    files = {"entry": entry_path}
    bbox_path = find_file(folder, BBOX_NAMES, "BBox list", required=False)
    if bbox_path:
        files["bbox"] = bbox_path
    files.update({LIST_SPLITS[n]: folder / n for n in LIST_SPLITS if (folder / n).is_file()})
    missing = [n for n, role in (*LIST_SPLITS.items(), ("BBox_List_2017.csv", "bbox")) if role not in files]
    problems.add(
        "missing-file",
        "label file(s) absent: " + ", ".join(missing),
        missing,
        file=folder.name or str(folder),
    )
    return files


def index_nih(
    folder: str | Path, *, entry: str | Path | None = None, images_dir: str | Path | None = None
) -> NihIndex:
    """Read the label files of an NIH folder into the two tables, collecting every problem found.

    ``entry`` names the Data_Entry file when the folder holds several revisions (default: v2020 first).
    ``images_dir`` (the output of ``extract``, or its ``images/``): read each PNG's size and mode from its
    header and name the images that have no PNG; without it every image is taken as 1024 x 1024.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CxrlabError(f"{folder}: no such folder")
    problems = ProblemLog()
    files = _label_files(folder, entry, problems)
    table, revision = read_entry_table(files["entry"], problems)
    lists = {files[role].name: read_list(files[role]) for role in LIST_SPLITS.values() if role in files}
    sources = {role: path.name for role, path in files.items()}
    images = build_images(table, lists, files["entry"].name, problems)
    if images_dir is not None:
        images = conform_images(attach_png_sizes(images, Path(images_dir), problems))
        sources["images"] = str(images_dir)
    boxes = read_bbox_list(files["bbox"], problems) if "bbox" in files else None
    findings = build_findings(table, boxes, images, sources, problems)
    return NihIndex(images, findings, problems.items, [], sources, revision=revision)


def write_index(index: NihIndex, out: str | Path) -> Path:
    """Validate and write ``images.parquet``, ``findings.parquet`` and the report to ``out`` (all or none)."""
    return index.write(out)
