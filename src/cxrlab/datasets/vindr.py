"""VinDr-CXR: index both releases (PhysioNet and the VinBigData challenge) into the images and findings
tables.

Boxes are ``x_min, y_min, x_max, y_max`` in pixels of the original DICOM, origin top-left (DESIGN.md).

Layouts (../shared/FORMATS.md): PhysioNet has ``annotations/annotations_{train,test}.csv`` and
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

Rules, each reported with a count and examples (:class:`Issue`):

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

import json
import os
import re
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.atomic import write_text_atomic
from cxrlab.errors import CxrlabError
from cxrlab.progress import track
from cxrlab.tables import BOX_COLUMNS, CONSENSUS, conform_findings, conform_images, save_tables
from cxrlab.taxonomy import NO_FINDING, VINDR, VINDR_CHALLENGE, UnknownLabelError

DATASET = "vindr"
SPLITS = ("train", "test")
PHYSIONET = "physionet"
CHALLENGE = "challenge"
MAX_EXAMPLES = 5
REPORT_FILE = "vindr_index_report.json"
HEADER_TAGS = [
    "Rows",
    "Columns",
    "PatientSex",
    "PatientAge",
    "PhotometricInterpretation",
    "BitsStored",
]
_AGE = re.compile(r"^\s*(\d{1,3})\s*([YMWD]?)\s*$", re.IGNORECASE)
_AGE_UNIT_YEARS = {"Y": 1.0, "": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}
_ID = re.compile(r"^[0-9a-f]{32}$")
_HEX_ID = re.compile(r"[0-9a-fA-F]{32}")


def _lower_hex_ids(df: pd.DataFrame, upper: list[str]) -> pd.DataFrame:
    """Lower-case the 32-digit hex ids written with upper-case letters; note each such row in ``upper``."""
    ids = df["image_id"].astype("string")
    hexed = ids.str.fullmatch(_HEX_ID.pattern).fillna(False).to_numpy(dtype=bool)
    changed = hexed & (ids != ids.str.lower()).fillna(False).to_numpy(dtype=bool)
    if not changed.any():
        return df
    if "source" in df:  # a box file: one row per line
        upper.extend(f"{s}: {i}" for s, i in zip(df["source"][changed], ids[changed], strict=True))
    else:  # image labels, one row per cell: count the lines (image, reader)
        lines = df.loc[changed, ["image_id", "reader"]].drop_duplicates()
        upper.extend(
            f"image_labels: {i} {r}" for i, r in zip(lines["image_id"], lines["reader"], strict=True)
        )
    out = df.copy()
    out.loc[changed, "image_id"] = ids[changed].str.lower().to_numpy(dtype=object)
    return out


@dataclass
class Issue:
    """One kind of inconsistency: how many, what cxrlab did about it, a few examples."""

    kind: str
    count: int
    rule: str
    examples: list[str] = field(default_factory=list)


@dataclass
class VindrIndex:
    images: pd.DataFrame
    findings: pd.DataFrame
    layout: str
    sizes_known: bool
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def write(self, out: str | Path) -> Path:
        """Validate and write the two tables and the report (JSON) to ``out``, all or none."""
        report = (json.dumps(self.report(), indent=2) + "\n").encode("utf-8")
        return save_tables(out, self.images, self.findings, extra={REPORT_FILE: report})

    def report(self) -> dict[str, Any]:
        """A JSON-ready summary: counts per split and reader, the notes, and every issue."""
        f = self.findings
        return {
            "layout": self.layout,
            "images": len(self.images),
            "images_per_split": {str(k): int(v) for k, v in self.images["split"].value_counts().items()},
            "findings": len(f),
            "boxes": int(f[BOX_COLUMNS].notna().all(axis=1).sum()),
            "readers": int(f["reader"].nunique()),
            "sizes_known": self.sizes_known,
            "notes": list(self.notes),
            "issues": [asdict(i) for i in self.issues],
        }


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


# --------------------------------------------------------------------------------------------- CSV reading


def _read_csv(path: Path, required: Sequence[str]) -> pd.DataFrame:
    """Read a label CSV with ids as strings and header names matched case-insensitively (``rad_ID``)."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise CxrlabError(f"{path}: cannot read as CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    lower = {c.lower(): c for c in df.columns}
    missing = [c for c in required if c.lower() not in lower]
    if missing:
        raise CxrlabError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(df.columns)}")
    return df.rename(columns={lower[c.lower()]: c for c in required})


def _coords(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for c in BOX_COLUMNS:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            raise CxrlabError(
                f"{path}: column {c} has non-numeric value(s) {df.loc[bad, c].head(3).tolist()}"
            )
        out[c] = values.astype(float)
    return out


def _box_rows(path: Path, split: str, *, has_reader: bool, challenge: bool) -> pd.DataFrame:
    required = ["image_id", "class_name", *BOX_COLUMNS]
    if has_reader:
        required.insert(1, "rad_id")
    if challenge:
        required.append("class_id")
    df = _read_csv(path, required)
    out = pd.DataFrame(
        {
            "image_id": df["image_id"].str.strip(),
            "split": split,
            "reader": df["rad_id"].str.strip() if has_reader else CONSENSUS,
            "label": df["class_name"].str.strip(),
        }
    )
    out = pd.concat([out, _coords(df, path)], axis=1)
    out["source"] = path.name
    if challenge:
        out["class_id"] = pd.to_numeric(df["class_id"], errors="coerce")
    return out


def _image_label_rows(path: Path, split: str, *, has_reader: bool) -> pd.DataFrame:
    """Every cell of an image_labels CSV as (image_id, reader, label, ticked) rows, labels as written."""
    df = _read_csv(path, ["image_id", "rad_id"] if has_reader else ["image_id"])
    label_columns = [c for c in df.columns if c not in ("image_id", "rad_id")]
    long = df.melt(id_vars=["image_id", "rad_id"] if has_reader else ["image_id"], value_vars=label_columns)
    value = pd.to_numeric(long["value"], errors="coerce")
    bad = value.isna() & long["value"].notna()
    if bad.any():
        raise CxrlabError(
            f"{path}: label cells must be 0 or 1; found {long.loc[bad, 'value'].head(3).tolist()}"
        )
    return pd.DataFrame(
        {
            "image_id": long["image_id"].str.strip().to_numpy(),
            "split": split,
            "reader": long["rad_id"].str.strip().to_numpy() if has_reader else CONSENSUS,
            "label": long["variable"].to_numpy(),
            "ticked": (value.fillna(0) > 0).to_numpy(),
        }
    )


# -------------------------------------------------------------------------------------------- DICOM headers


def parse_age(value: object) -> float:
    """Age in years from a DICOM Age String (``045Y``, ``006M``, ``010W``, ``020D``; a bare number: years)."""
    if value is None:
        return float("nan")
    m = _AGE.match(str(value))
    if not m:
        return float("nan")
    return int(m.group(1)) * _AGE_UNIT_YEARS[m.group(2).upper()]


def parse_sex(value: object) -> str | None:
    text = str(value or "").strip().upper()
    return text if text in ("M", "F", "O") else None


def read_header(path: str | Path) -> dict[str, Any]:
    """Size, sex, age and technical tags of one DICOM, without reading its pixels.

    Files that lack a DICOM preamble or a Transfer Syntax UID in their file meta are read with
    ``force=True``; a file whose header still gives no Rows/Columns comes back with an ``error``.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS)
        except InvalidDicomError:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=HEADER_TAGS, force=True)
        rows, cols = ds.get("Rows"), ds.get("Columns")
        meta = getattr(ds, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        out: dict[str, Any] = {
            "width": int(cols) if cols is not None else None,
            "height": int(rows) if rows is not None else None,
            "sex": parse_sex(ds.get("PatientSex")),
            "age_raw": str(ds.get("PatientAge")) if ds.get("PatientAge") not in (None, "") else None,
            "photometric": str(ds.get("PhotometricInterpretation") or "") or None,
            "bits_stored": int(ds.BitsStored) if ds.get("BitsStored") is not None else None,
            "transfer_syntax": str(syntax) if syntax else None,
            "error": None,
        }
        if rows is None or cols is None:
            out["error"] = "no Rows/Columns in the header"
        return out
    except Exception as exc:  # a damaged file must not stop the index; it is reported by name
        return {"error": f"{type(exc).__name__}: {exc}"}


def read_headers(paths: Sequence[Path], *, workers: int | None = None, progress: bool = False) -> list[dict]:
    """Headers of many DICOMs in a thread pool (reads are small and I/O bound: threads suffice)."""
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    if workers <= 1 or len(paths) < 16:
        return [
            read_header(p) for p in track(paths, total=len(paths), description="headers", progress=progress)
        ]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(
            track(
                pool.map(read_header, paths, chunksize=32),
                total=len(paths),
                description="DICOM headers",
                progress=progress,
            )
        )


# ----------------------------------------------------------------------------------------------- the index


class _Issues:
    def __init__(self) -> None:
        self.items: list[Issue] = []

    def add(self, kind: str, rule: str, examples: Iterable[str], count: int | None = None) -> None:
        ex = list(examples)
        n = len(ex) if count is None else count
        if n:
            self.items.append(Issue(kind, int(n), rule, [str(e) for e in ex[:MAX_EXAMPLES]]))


def _row_examples(df: pd.DataFrame, mask: np.ndarray | pd.Series, with_box: bool = True) -> list[str]:
    cols = ["image_id", "reader", "label"] + (BOX_COLUMNS if with_box else [])
    rows = df.loc[np.asarray(mask, dtype=bool), cols].head(MAX_EXAMPLES)
    return [" ".join(f"{c}={r[c]}" for c in cols) for _, r in rows.iterrows()]


def _canonical_labels(df: pd.DataFrame, issues: _Issues, allow_unknown: bool, where: str) -> pd.DataFrame:
    names = df["label"].dropna().unique()
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for name in names:
        found = VINDR.match(name)
        if found is None:
            unknown.append(name)
            mapping[name] = name
        else:
            mapping[name] = found
    if unknown:
        hints = []
        for name in sorted(unknown):
            try:
                VINDR.canonical(name)
            except UnknownLabelError as exc:
                hints.append(str(exc).removeprefix("unknown vindr label "))
        if not allow_unknown:
            raise CxrlabError(
                f"{where}: {len(unknown)} unknown label(s): {'; '.join(hints[:10])} "
                "(--allow-unknown keeps them)"
            )
        mask = df["label"].isin(unknown)
        issues.add(
            "unknown label",
            "kept as written (--allow-unknown)",
            [f"{n} ({int((df['label'] == n).sum())} rows)" for n in sorted(unknown)],
            count=int(mask.sum()),
        )
    out = df.copy()
    out["label"] = out["label"].map(mapping)
    if out["label"].isna().any():
        raise CxrlabError(f"{where}: {int(out['label'].isna().sum())} row(s) without a class name")
    return out


def _check_class_ids(df: pd.DataFrame, issues: _Issues) -> None:
    expected = df["label"].map(lambda n: VINDR_CHALLENGE.class_ids.get(n, np.nan))
    bad = expected.notna() & (expected != df["class_id"])
    issues.add(
        "class_id disagrees with class_name",
        "the class_name is used",
        [f"{r.image_id} {r.label} class_id={r.class_id}" for r in df[bad].head(MAX_EXAMPLES).itertuples()],
        count=int(bad.sum()),
    )


def _merge_image_labels(boxes: pd.DataFrame, ticks: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    """Add image-label ticks that the box file lacks as image-level rows; report both disagreements."""
    if ticks.empty:
        return boxes
    key = ["image_id", "reader", "label"]
    in_boxes = boxes[key].drop_duplicates()
    images_with_ticks = ticks[["image_id", "reader"]].drop_duplicates()  # rows of the file, ticked or not
    ticks = ticks[ticks["ticked"].to_numpy(dtype=bool)]
    merged = ticks.drop_duplicates(key).merge(in_boxes, on=key, how="left", indicator=True)
    only_ticks = merged[merged["_merge"] == "left_only"][[*key, "split"]]
    local_only = only_ticks[only_ticks["label"].isin(VINDR.local)]
    issues.add(
        "local label ticked in image_labels without a row in the box file",
        "kept as an image-level finding (no box)",
        [f"{r.image_id} {r.reader} {r.label}" for r in local_only.head(MAX_EXAMPLES).itertuples()],
        count=len(local_only),
    )
    # Box-file labels of (image, reader) pairs that appear in image_labels but are not ticked there.
    covered = in_boxes.merge(images_with_ticks, on=["image_id", "reader"])
    missing = covered.merge(ticks[key].drop_duplicates(), on=key, how="left", indicator=True)
    missing = missing[missing["_merge"] == "left_only"]
    issues.add(
        "label in the box file not ticked in image_labels",
        "kept (the box file wins)",
        [f"{r.image_id} {r.reader} {r.label}" for r in missing.head(MAX_EXAMPLES).itertuples()],
        count=len(missing),
    )
    added = only_ticks.assign(**{c: np.nan for c in BOX_COLUMNS}, source="image_labels")
    return pd.concat([boxes, added], ignore_index=True)


def _clean_boxes(df: pd.DataFrame, sizes: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    """Clip boxes to the image, strip the coordinates of boxes that are not boxes (kept as labels)."""
    df = df.copy()
    xy = np.array(df[BOX_COLUMNS].to_numpy(dtype=float), copy=True)
    nan = np.isnan(xy)
    partial = nan.any(axis=1) & ~nan.all(axis=1)
    issues.add(
        "box with some coordinates missing",
        "coordinates dropped; the label is kept as an image-level finding",
        _row_examples(df, partial),
        count=int(partial.sum()),
    )
    xy[partial] = np.nan
    boxed = ~np.isnan(xy).any(axis=1)
    size = df[["image_id"]].merge(sizes, on="image_id", how="left")
    w = size["width"].to_numpy(dtype=float)
    h = size["height"].to_numpy(dtype=float)
    inverted = boxed & ((xy[:, 2] <= xy[:, 0]) | (xy[:, 3] <= xy[:, 1]))
    upper_x = np.where(np.isnan(w), np.inf, w)
    upper_y = np.where(np.isnan(h), np.inf, h)
    outside = (
        boxed
        & ~inverted
        & ((xy[:, 2] <= 0) | (xy[:, 3] <= 0) | (xy[:, 0] >= upper_x) | (xy[:, 1] >= upper_y))
    )
    clipped = xy.copy()
    clipped[:, [0, 2]] = np.clip(xy[:, [0, 2]], 0, upper_x[:, None])
    clipped[:, [1, 3]] = np.clip(xy[:, [1, 3]], 0, upper_y[:, None])
    changed = boxed & ~inverted & ~outside & (np.abs(clipped - xy) > 0).any(axis=1)
    degenerate = (
        boxed & ~inverted & ~outside & ((clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1]))
    )
    issues.add(
        "box partly outside the image",
        "clipped to the image"
        + ("" if np.isfinite(upper_x).all() else " (to x, y >= 0 where the size is unknown)"),
        _row_examples(df, changed & ~degenerate),
        count=int((changed & ~degenerate).sum()),
    )
    issues.add(
        "box with x_max <= x_min or y_max <= y_min",
        "coordinates dropped; the label is kept as an image-level finding",
        _row_examples(df, inverted | degenerate),
        count=int((inverted | degenerate).sum()),
    )
    issues.add(
        "box entirely outside the image",
        "coordinates dropped; the label is kept as an image-level finding",
        _row_examples(df, outside),
        count=int(outside.sum()),
    )
    clipped[inverted | degenerate | outside] = np.nan
    df[BOX_COLUMNS] = clipped
    return df


def _no_finding_conflicts(df: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    is_nf = (df["label"] == NO_FINDING).to_numpy()
    positive = df.loc[~is_nf, ["image_id", "reader"]].drop_duplicates()
    boxed = df.loc[~is_nf & df[BOX_COLUMNS].notna().all(axis=1).to_numpy(), ["image_id", "reader"]]
    nf = df.loc[is_nf, ["image_id", "reader"]].reset_index()
    conflict_idx = nf.merge(positive, on=["image_id", "reader"])["index"].to_numpy()
    with_box = set(map(tuple, boxed.drop_duplicates().to_numpy()))
    examples = [
        f"{df.at[i, 'image_id']} {df.at[i, 'reader']}"
        + (
            " (with boxes)"
            if (df.at[i, "image_id"], df.at[i, "reader"]) in with_box
            else " (image-level labels)"
        )
        for i in conflict_idx[:MAX_EXAMPLES]
    ]
    issues.add(
        "'No finding' from a reader who reports findings on the same image",
        "the findings are kept, that reader's 'No finding' is dropped",
        examples,
        count=len(conflict_idx),
    )
    return df.drop(index=conflict_idx)


def _duplicates(df: pd.DataFrame, issues: _Issues) -> pd.DataFrame:
    key = ["image_id", "reader", "label", *BOX_COLUMNS]
    dup = df.duplicated(key, keep="first").to_numpy()
    issues.add("duplicate row", "kept once", _row_examples(df, dup), count=int(dup.sum()))
    return df[~dup]


def sort_findings(findings: pd.DataFrame) -> pd.DataFrame:
    """The canonical row order: image, reader, label, then the box (image-level rows last)."""
    return findings.sort_values(
        ["image_id", "reader", "label", *BOX_COLUMNS], na_position="last", kind="stable"
    ).reset_index(drop=True)


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
    issues = _Issues()
    notes: list[str] = []
    boxes_parts: list[pd.DataFrame] = []
    ticks_parts: list[pd.DataFrame] = []
    labelled_splits: list[str] = []
    if layout == PHYSIONET:
        ann = root / "annotations"
        for split in SPLITS:
            path = ann / f"annotations_{split}.csv"
            if path.is_file():
                boxes_parts.append(_box_rows(path, split, has_reader=split == "train", challenge=False))
                labelled_splits.append(split)
            labels_path = ann / f"image_labels_{split}.csv"
            if labels_path.is_file():
                ticks_parts.append(_image_label_rows(labels_path, split, has_reader=split == "train"))
                if split not in labelled_splits:
                    labelled_splits.append(split)
    else:
        path = root / "train.csv"
        part = _box_rows(path, "train", has_reader=True, challenge=True)
        boxes_parts.append(part)
        labelled_splits.append("train")
    where = str(root)
    upper: list[str] = []  # ids written in upper case (rows of label files, DICOM file names)
    boxes_parts = [_lower_hex_ids(p, upper) for p in boxes_parts]
    ticks_parts = [_lower_hex_ids(p, upper) for p in ticks_parts]
    boxes = pd.concat(boxes_parts, ignore_index=True) if boxes_parts else _empty_raw()
    if boxes["image_id"].isna().any():
        raise CxrlabError(f"{where}: {int(boxes['image_id'].isna().sum())} row(s) without image_id")
    boxes = _canonical_labels(boxes, issues, allow_unknown, where)
    if layout == CHALLENGE:
        _check_class_ids(boxes, issues)
        boxes = boxes.drop(columns="class_id")
    ticks = (
        pd.concat(ticks_parts, ignore_index=True)
        if ticks_parts
        else _empty_raw()[["image_id", "split", "reader", "label"]].assign(ticked=False)
    )
    if not ticks.empty:
        ticks = _canonical_labels(ticks, issues, allow_unknown, where)

    # Which split each image belongs to.
    split_of = pd.concat([boxes[["image_id", "split"]], ticks[["image_id", "split"]]]).drop_duplicates()
    both = split_of[split_of["image_id"].duplicated(keep=False)]
    if not both.empty:
        raise CxrlabError(
            f"{where}: {both['image_id'].nunique()} image(s) appear in both train and test labels "
            f"(e.g. {both['image_id'].iloc[0]})"
        )

    # DICOMs present on disk (by image id; ``stems`` keeps a file name's own case for the path).
    dicoms: dict[str, str] = {}
    stems: dict[str, str] = {}
    present_splits = []
    for split in SPLITS:
        folder = root / split
        if folder.is_dir():
            present_splits.append(split)
            for entry in os.scandir(folder):
                if entry.name.endswith(".dicom") and entry.is_file():
                    stem = entry.name[: -len(".dicom")]
                    image_id = stem.lower() if _HEX_ID.fullmatch(stem) else stem
                    if image_id != stem:
                        upper.append(f"{split}/{entry.name}")
                    dicoms[image_id] = split
                    stems[image_id] = stem
    issues.add(
        "image_id in upper case",
        "lower-cased: a hex id means the same in any case (label rows and DICOM file names then match)",
        upper,
    )
    images = pd.DataFrame(
        {"image_id": split_of["image_id"].to_numpy(), "split": split_of["split"].to_numpy()}
    )
    extra_ids = sorted(set(dicoms) - set(images["image_id"]))
    labelled_extra = [i for i in extra_ids if dicoms[i] in labelled_splits]
    issues.add(
        "DICOM without labels",
        "indexed as an image without findings",
        labelled_extra,
    )
    if extra_ids:
        images = pd.concat(
            [images, pd.DataFrame({"image_id": extra_ids, "split": [dicoms[i] for i in extra_ids]})],
            ignore_index=True,
        )
    for split in SPLITS:
        if split in dicoms.values() and split not in labelled_splits:
            notes.append(f"{split}: DICOMs without label files, indexed without findings")
    images = images.sort_values(["split", "image_id"], kind="stable").reset_index(drop=True)
    images["has_dicom"] = images["image_id"].map(lambda i: i in dicoms).astype(bool)
    images["path"] = images["split"] + "/" + images["image_id"].map(lambda i: stems.get(i, i)) + ".dicom"
    missing = images[~images["has_dicom"] & images["split"].isin(present_splits)]
    issues.add(
        "image in the labels without its DICOM",
        "indexed without size, sex and age",
        missing["image_id"].tolist(),
    )
    bad_ids = images.loc[~images["image_id"].str.fullmatch(_ID), "image_id"].tolist()
    issues.add("image_id not a 32-character lowercase hex string", "kept as written", bad_ids)

    # Headers.
    header_cols = ["width", "height", "sex", "age_raw", "photometric", "bits_stored", "transfer_syntax"]
    headers = pd.DataFrame(index=images.index, columns=header_cols, dtype=object)
    with_file = images.index[images["has_dicom"]] if read_dicom else images.index[:0]
    if len(with_file):
        got = read_headers(
            [root / p for p in images.loc[with_file, "path"]], workers=workers, progress=progress
        )
        table = pd.DataFrame(got, index=with_file)
        errors = table["error"].notna() if "error" in table else pd.Series(False, index=with_file)
        issues.add(
            "unreadable DICOM header",
            "indexed without size, sex and age",
            [f"{images.at[i, 'path']}: {table.at[i, 'error']}" for i in table.index[errors][:MAX_EXAMPLES]],
            count=int(errors.sum()),
        )
        for c in header_cols:
            if c in table:
                headers.loc[with_file, c] = table[c]
    images["width"] = pd.to_numeric(headers["width"]).astype("Int64")
    images["height"] = pd.to_numeric(headers["height"]).astype("Int64")
    images["sex"] = headers["sex"].astype("string")
    images["age"] = headers["age_raw"].map(parse_age).astype("Float64")
    bad_age = headers["age_raw"].notna() & images["age"].isna()
    issues.add(
        "PatientAge not readable as an age",
        "age left unknown",
        [f"{images.at[i, 'image_id']}: {headers.at[i, 'age_raw']!r}" for i in images.index[bad_age][:5]],
        count=int(bad_age.sum()),
    )
    implausible = (images["age"] > 120).fillna(False)
    issues.add(
        "PatientAge over 120 years",
        "age left unknown",
        [f"{images.at[i, 'image_id']}: {headers.at[i, 'age_raw']}" for i in images.index[implausible][:5]],
        count=int(implausible.sum()),
    )
    images.loc[implausible, "age"] = pd.NA
    images["photometric"] = headers["photometric"].astype("string")
    images["bits_stored"] = pd.to_numeric(headers["bits_stored"]).astype("Int64")
    images["transfer_syntax"] = headers["transfer_syntax"].astype("string")
    images["dataset"] = DATASET
    images["patient_id"] = pd.Series(pd.NA, index=images.index, dtype="string")
    images["view"] = "PA"
    sizes_known = bool(len(images)) and bool(images["width"].notna().all())
    n_unknown = int(images["width"].isna().sum())
    if n_unknown:
        notes.append(
            f"image sizes unknown for {n_unknown} of {len(images)} images (no readable DICOM): boxes are "
            "clipped at 0 only, consensus normalises by the largest coordinate per image, "
            "YOLO export needs sizes"
        )
    notes.append("patient_id is unknown: VinDr-CXR publishes no patient ids")
    images = conform_images(images)

    # Findings.
    sizes = images[["image_id", "width", "height"]].astype({"width": float, "height": float})
    boxes = _clean_boxes(boxes, sizes, issues)
    findings = _merge_image_labels(boxes, ticks, issues)
    findings = _no_finding_conflicts(findings, issues)
    findings = _duplicates(findings, issues)
    findings = findings.assign(score=1.0)[["image_id", "reader", "label", *BOX_COLUMNS, "score"]]
    findings = sort_findings(conform_findings(findings))

    # Readers per training image.
    train_ids = images.loc[images["split"] == "train", "image_id"]
    human = findings[(findings["reader"] != CONSENSUS) & findings["image_id"].isin(train_ids)]
    per_image = human.groupby("image_id")["reader"].nunique()
    odd = per_image[per_image != 3]
    issues.add(
        "training image with a number of readers other than 3",
        "kept; consensus uses the readers present",
        [f"{i}: {n} reader(s)" for i, n in odd.head(MAX_EXAMPLES).items()],
        count=len(odd),
    )
    return VindrIndex(images, findings, layout, sizes_known, issues.items, notes)


def _empty_raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_id": pd.Series(dtype=str),
            "split": pd.Series(dtype=str),
            "reader": pd.Series(dtype=str),
            "label": pd.Series(dtype=str),
            **{c: pd.Series(dtype=float) for c in BOX_COLUMNS},
        }
    )


def write_report(index: VindrIndex, folder: str | Path) -> Path:
    """Write the index report as JSON beside the tables (atomically)."""
    return write_text_atomic(Path(folder) / REPORT_FILE, json.dumps(index.report(), indent=2) + "\n")
