"""NIH ChestX-ray14 label files -> the images and findings tables.

Reads ``Data_Entry_2017.csv`` in its three revisions (FORMATS.md: the first release with ``058Y`` ages and
zero-padded patient ids; the 2017 CSV with a trailing empty column; ``Data_Entry_2017_v2020.csv``), plain
or gzip-compressed, ``BBox_List_2017.csv`` and the official lists ``train_val_list.txt`` / ``test_list.txt``.
Headers are read by position because their bracketed names (``OriginalImage[Width,Height]``) contain commas.

Box convention: ``x_min, y_min, x_max, y_max`` in pixels of the released 1024 x 1024 PNG, origin top-left
(``BBox_List_2017.csv`` gives ``x, y, w, h`` on that grid). The images table's ``width``/``height`` are
therefore the PNG's size (1024), the frame every box and every model sees; the size of the original
radiograph before NIH resized it is kept in ``original_width``/``original_height`` with its
``pixel_spacing_x``/``pixel_spacing_y`` (mm per pixel of the original).

Findings: one image-level row per NLP label of ``Finding Labels`` (``source`` = ``nlp``) and one row per
box (``source`` = ``bbox``), all with reader ``nih`` and score 1. ``image_id`` is the file name without
``.png`` (``00000001_000``); ``path`` is ``images/00000001_000.png``.

Nothing is dropped silently: every oddity (unknown labels, list names absent from the entry table,
duplicate rows, implausible ages, ...) becomes a :class:`Problem` with a count and examples.
"""

from __future__ import annotations

import csv
import gzip
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cxrlab.errors import CxrlabError
from cxrlab.tables import BOX_COLUMNS, conform_findings, conform_images, isin_strings, save_tables
from cxrlab.taxonomy import NIH

DATASET = "nih"
READER = "nih"
PNG_SIZE = 1024
MAX_PLAUSIBLE_AGE = 110.0
MAX_EXAMPLES = 5

ENTRY_NAMES = (
    "Data_Entry_2017_v2020.csv",
    "Data_Entry_2017_v2020.csv.gz",
    "Data_Entry_2017.csv",
    "Data_Entry_2017.csv.gz",
)
BBOX_NAMES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")
LIST_SPLITS = {"train_val_list.txt": "train_val", "test_list.txt": "test"}

# The first 11 fields of Data_Entry, by position (the bracketed headers split into two fields each).
_ENTRY_FIELDS = (
    "image_index",
    "finding_labels",
    "follow_up",
    "patient_id",
    "age",
    "sex",
    "view",
    "original_width",
    "original_height",
    "pixel_spacing_x",
    "pixel_spacing_y",
)
_ENTRY_HEADER_START = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age"
_BBOX_FIELDS = ("image_index", "label", "x", "y", "w", "h")
_IMAGE_NAME = r"^(?P<g0>\d{8})_(?P<g1>\d{3})\.png$"
_AGE = r"^\s*(?P<g0>\d+(?:\.\d+)?)\s*(?P<g1>[YyMmWwDd]?)\s*$"
_AGE_UNIT_YEARS = {"": 1.0, "Y": 1.0, "M": 1 / 12, "W": 7 / 365.25, "D": 1 / 365.25}


@dataclass
class Problem:
    """One kind of oddity in the label files, with how many rows show it and a few of them."""

    file: str
    kind: str
    count: int
    message: str
    examples: list[str] = field(default_factory=list)
    severity: str = "warning"  # "warning": data kept or dropped as said; "note": a known quirk

    def __str__(self) -> str:
        ex = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        return f"{self.file}: {self.count:,} {self.message}{ex}"


@dataclass
class NihIndex:
    images: pd.DataFrame
    findings: pd.DataFrame
    problems: list[Problem]
    revision: str
    sources: dict[str, str]

    def summary(self) -> dict[str, Any]:
        """Counts a user checks first, JSON-ready."""
        f = self.findings
        nlp = f[f["source"] == "nlp"]
        boxes = f[f["source"] == "bbox"]
        splits = self.images["split"].fillna("(none)").value_counts()
        return {
            "revision": self.revision,
            "sources": self.sources,
            "images": len(self.images),
            "patients": int(self.images["patient_id"].nunique()),
            "labels": {str(k): int(v) for k, v in nlp["label"].value_counts().sort_index().items()},
            "boxes": len(boxes),
            "images_with_boxes": int(boxes["image_id"].nunique()),
            "splits": {str(k): int(v) for k, v in splits.items()},
            "problems": [asdict(p) for p in self.problems],
        }


def _examples(values: Any, n: int = MAX_EXAMPLES) -> list[str]:
    return [str(v) for v in list(values)[:n]]


def _problem(
    problems: list[Problem],
    file: str,
    kind: str,
    mask: Any,
    values: Any,
    message: str,
    severity: str = "warning",
) -> None:
    mask = np.asarray(mask, dtype=bool)
    n = int(mask.sum())
    if n:
        chosen = np.asarray(values, dtype=object)[mask]
        problems.append(Problem(file, kind, n, message, _examples(chosen), severity))


def _open_text_head(path: Path, n: int = 1) -> str:
    """The first line (``n`` = 1) or the ``n``-th line of a text file, plain or gzip, BOM and CR removed."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            line = ""
            for _ in range(n):
                line = fh.readline()
            return line.rstrip("\r\n")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path}: cannot be read ({exc})") from None


def _read_csv_strings(path: Path, n_fields: int, problems: list[Problem]) -> pa.Table:
    """Every field as a string, header skipped; rows with the wrong number of fields become a problem."""
    names = [f"f{i}" for i in range(n_fields)]
    bad: list[str] = []

    def on_invalid(row: Any) -> str:
        bad.append(f"line {row.number}: {row.text[:60]!r}" if row.number is not None else repr(row.text[:60]))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(skip_rows=1, column_names=names, encoding="utf8"),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise CxrlabError(f"{path}: not a readable CSV ({exc})") from None
    if bad:
        problems.append(
            Problem(
                path.name,
                "bad-row",
                len(bad),
                f"row(s) without {n_fields} fields, skipped",
                bad[:MAX_EXAMPLES],
            )
        )
    return table


def _strings(table: pa.Table, column: str) -> pd.Series:
    return pd.Series(pc.utf8_trim_whitespace(table[column]).to_pandas(), dtype="string")


def _isin(values: pd.Series, allowed: Any) -> pd.Series:
    """``values.isin(allowed)`` through pyarrow (pandas 3's Arrow strings loop in Python for that)."""
    return pd.Series(isin_strings(values, allowed), index=values.index)


def _extract(values: pd.Series, pattern: str) -> pd.DataFrame:
    """Regex groups (named g0, g1, ...) as string columns through pyarrow; NA where no match."""
    arr = pa.array(values.astype("string").to_numpy(dtype=object, na_value=None), type=pa.string())
    found = pc.extract_regex(arr, pattern)
    names = [f.name for f in found.type]
    return pd.DataFrame(
        {i: pd.Series(pc.struct_field(found, n).to_pandas(), dtype="string") for i, n in enumerate(names)},
        index=values.index,
    )


def _numeric(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")`` as float64: a pyarrow cast when every value parses
    (the usual case, about 20x faster on Arrow strings), pandas' per-value parse otherwise."""
    try:
        arr = pa.array(values.array).cast(pa.float64())
        return pd.Series(arr.to_numpy(zero_copy_only=False), index=values.index, dtype="float64")
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pd.to_numeric(values, errors="coerce").astype("float64")


def _has_duplicates(values: pd.Series) -> bool:
    """Whether any value repeats: one pyarrow hash pass instead of pandas' factorize of Arrow strings."""
    return len(pc.unique(pa.array(values.array))) < len(values)


def find_file(folder: Path, candidates: tuple[str, ...], what: str, *, required: bool = True) -> Path | None:
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    if required:
        raise CxrlabError(f"{folder}: no {what} ({' or '.join(candidates)})")
    return None


def detect_revision(header: str, ages: pd.Series) -> str:
    """``first-release`` (``058Y`` ages), ``2017`` (trailing empty column) or ``v2020``."""
    if ages.str.contains(r"[A-Za-z]", regex=True).fillna(False).any():
        return "first-release"
    return "2017" if header.rstrip().endswith(",") else "v2020"


def parse_ages(raw: pd.Series) -> pd.Series:
    """Ages in years: ``58``, ``058Y``, ``003M`` (months), ``012D`` (days); NaN where unreadable."""
    parts = _extract(raw, _AGE)
    number = _numeric(parts[0])
    unit = parts[1].fillna("").str.upper().map(_AGE_UNIT_YEARS).astype("float64")
    return number * unit


def read_entry_table(path: str | Path, problems: list[Problem] | None = None) -> tuple[pd.DataFrame, str]:
    """Read any revision of ``Data_Entry_2017*.csv[.gz]``: columns of ``_ENTRY_FIELDS`` typed, plus the
    raw age string (``age_raw``); returns the frame and the detected revision."""
    path = Path(path)
    problems = problems if problems is not None else []
    header = _open_text_head(path)
    if not header.startswith(_ENTRY_HEADER_START):
        raise CxrlabError(
            f"{path}: not an NIH Data_Entry table (header starts {header[:60]!r}, "
            f"expected {_ENTRY_HEADER_START!r})"
        )
    n_fields = header.count(",") + 1
    if n_fields < len(_ENTRY_FIELDS):
        raise CxrlabError(f"{path}: header has {n_fields} fields, expected at least {len(_ENTRY_FIELDS)}")
    # The 2017 header ends in a comma (12 fields) whether or not its rows carry the empty 12th field: the
    # rows' own count (from the first data row; at least the 11 named fields) decides how rows are read.
    first_row = _open_text_head(path, 2)
    if first_row.strip():
        n_fields = max(len(_ENTRY_FIELDS), first_row.count(",") + 1)
    table = _read_csv_strings(path, n_fields, problems)
    cols = {name: _strings(table, f"f{i}") for i, name in enumerate(_ENTRY_FIELDS)}
    df = pd.DataFrame(cols)
    revision = detect_revision(header, df["age"])
    name = path.name

    for column in ("follow_up", "original_width", "original_height", "pixel_spacing_x", "pixel_spacing_y"):
        values = _numeric(df[column])
        whole = not column.startswith("pixel_spacing")
        bad = ~np.isfinite(values) | ((values % 1 != 0) if whole else False)
        _problem(
            problems,
            name,
            f"bad-{column}",
            bad & (df[column] != ""),
            df[column],
            f"row(s) with a {column} that is not a{' whole' if whole else ''} number (set to NA)",
        )
        values = values.mask(bad)
        # v2020 writes 0.14300000000000002: round away the float noise of its writer.
        df[column] = values.astype("Int64") if whole else values.round(9)
    df["age_raw"] = df["age"]
    df["age"] = parse_ages(df["age"])
    return df, revision


def _bbox_rows(path: Path, problems: list[Problem]) -> tuple[list[list[str]], list[int]]:
    """The data rows of a BBox list as 6 stripped strings, with their line numbers; others reported."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            text = fh.read().decode("utf-8-sig")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path}: cannot be read ({exc})") from None
    rows: list[list[str]] = []
    numbers: list[int] = []
    bad: list[str] = []
    # Data rows have 6 fields; the header 9 (its bracket splits, then trailing commas). Read rows by content.
    lines = text.splitlines()
    for number, fields in enumerate(csv.reader(lines[1:]), start=2):
        while fields and not fields[-1].strip():
            fields.pop()
        if not fields:
            continue
        if len(fields) != len(_BBOX_FIELDS):
            bad.append(f"line {number}: {lines[number - 1][:60]!r}")
            continue
        rows.append([f.strip() for f in fields])
        numbers.append(number)
    if bad:
        problems.append(
            Problem(
                path.name, "bad-row", len(bad), f"row(s) without {len(_BBOX_FIELDS)} fields, skipped", bad[:5]
            )
        )
    return rows, numbers


def read_bbox_list(path: str | Path, problems: list[Problem] | None = None) -> pd.DataFrame:
    """``BBox_List_2017.csv[.gz]`` -> image_index, label (as written), x_min, y_min, x_max, y_max, line.

    A row that is not a box (a field missing, a non-numeric, infinite or non-positive x, y, w, h) is
    skipped and reported with its line number, as are rows without 6 fields.
    """
    path = Path(path)
    problems = problems if problems is not None else []
    header = _open_text_head(path)
    if not header.startswith("Image Index,Finding Label"):
        raise CxrlabError(f"{path}: not an NIH BBox list (header starts {header[:40]!r})")
    rows, numbers = _bbox_rows(path, problems)
    df = pd.DataFrame(rows, columns=list(_BBOX_FIELDS), dtype="string")
    df["line"] = pd.Series(numbers, dtype="int64")
    xywh = pd.DataFrame({c: _numeric(df[c]) for c in ("x", "y", "w", "h")}, index=df.index)
    unreadable = ~np.isfinite(xywh.to_numpy(dtype=float)).all(axis=1) | (xywh["w"] <= 0) | (xywh["h"] <= 0)
    _problem(
        problems,
        path.name,
        "bad-box",
        unreadable,
        "line " + df["line"].astype("string") + ": " + df["image_index"].fillna(""),
        "box row(s) with missing, non-numeric, infinite or non-positive x, y, w, h, skipped",
    )
    out = pd.DataFrame(
        {
            "image_index": df["image_index"],
            "label": df["label"],
            "x_min": xywh["x"],
            "y_min": xywh["y"],
            "x_max": xywh["x"] + xywh["w"],
            "y_max": xywh["y"] + xywh["h"],
            "line": df["line"],
        }
    )[~np.asarray(unreadable)]
    return out.reset_index(drop=True)


def read_list(path: str | Path) -> pd.Series:
    """One PNG name a line (the official lists have no trailing newline); blank lines ignored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path}: cannot be read ({exc})") from None
    names = [line.strip() for line in text.splitlines()]
    return pd.Series([n for n in names if n], dtype="string")


def _canonical_labels(labels: pd.Series, file: str, problems: list[Problem], what: str) -> pd.Series:
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
    problems: list[Problem],
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
    _problem(problems, file, kind, ~valid, names, message)
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


def _dedupe_entry(entry: pd.DataFrame, file: str, problems: list[Problem]) -> pd.DataFrame:
    """Keep the first row of each Image Index: exact repeats and conflicting rows reported apart."""
    if not _has_duplicates(entry["image_index"]):
        return entry
    columns = [c for c in entry.columns if c != "age"]  # age is derived from age_raw (NaN != NaN)
    identical = entry.duplicated(columns, keep="first").to_numpy()
    _problem(
        problems,
        file,
        "duplicate-row",
        identical,
        entry["image_index"],
        "row(s) repeating an earlier row exactly, kept once",
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


def build_images(
    entry: pd.DataFrame, splits: dict[str, pd.Series], file: str, problems: list[Problem]
) -> pd.DataFrame:
    """The images table from the entry rows (deduplicated) and the split lists."""
    entry = _dedupe_entry(entry, file, problems)
    names = entry["image_index"]
    _problem(
        problems,
        file,
        "empty-name",
        names.isna() | (names == ""),
        names,
        "row(s) without an Image Index, skipped",
    )
    entry = entry[names.notna() & (names != "")].reset_index(drop=True)
    names = entry["image_index"]

    parts = _extract(names, _IMAGE_NAME)
    _problem(
        problems,
        file,
        "odd-name",
        parts[0].isna(),
        names,
        "Image Index value(s) not of the form PPPPPPPP_FFF.png (kept)",
    )
    pid = entry["patient_id"]
    digits = pid.str.fullmatch(r"\d+").fillna(False)
    patient = pid.where(~digits, pid.str.zfill(8))
    _problem(
        problems,
        file,
        "patient-mismatch",
        (parts[0].notna() & (parts[0] != patient)).fillna(False),
        names + " vs Patient ID " + pid,
        "row(s) whose Patient ID differs from the file name's (kept)",
    )
    name_fu = _numeric(parts[1]).astype("Int64")
    _problem(
        problems,
        file,
        "follow-up-differs",
        (name_fu != entry["follow_up"]).fillna(False),
        names + " has Follow-up # " + entry["follow_up"].astype("string"),
        "row(s) whose Follow-up # differs from the file name's number (the column is kept)",
        "note",
    )

    age = entry["age"]
    implausible = (age > MAX_PLAUSIBLE_AGE) | (age < 0)
    _problem(
        problems,
        file,
        "implausible-age",
        implausible.fillna(False),
        names + " age " + entry["age_raw"],
        f"implausible age(s) over {MAX_PLAUSIBLE_AGE:g} years: row kept, age set to NA, "
        "the value kept in age_raw and flagged in age_implausible",
    )
    _problem(
        problems,
        file,
        "missing-age",
        age.isna() & ~implausible.fillna(False),
        names + " age " + entry["age_raw"].fillna(""),
        "row(s) with an unreadable age (age NA)",
    )
    sex, known_sex = _coded(
        problems, file, entry, "sex", ["M", "F"], "bad-sex", "row(s) with Patient Gender not M or F (sex NA)"
    )
    view, _ = _coded(
        problems,
        file,
        entry,
        "view",
        ["PA", "AP"],
        "odd-view",
        "row(s) with a View Position other than PA or AP (kept as written)",
    )

    split = pd.Series(pd.NA, index=entry.index, dtype="string")
    if splits:
        name_index = pd.Index(names)
        seen: dict[str, pd.Series] = {}
        for list_name, listed in splits.items():
            split_name = LIST_SPLITS.get(list_name, list_name)
            dup = listed.duplicated()
            _problem(problems, list_name, "duplicate-list-line", dup, listed, "name(s) listed twice")
            listed = listed[~dup]
            absent = ~_isin(listed, names)
            _problem(
                problems,
                list_name,
                "not-in-entry",
                absent,
                listed,
                f"name(s) absent from {file}: no metadata, left out of the tables",
            )
            listed = listed[~absent]
            for other, other_names in seen.items():
                both = _isin(listed, other_names)
                _problem(
                    problems,
                    list_name,
                    "in-two-lists",
                    both,
                    listed,
                    f"name(s) also in {other}: the first list wins",
                )
                listed = listed[~both]
            seen[list_name] = listed
            positions = name_index.get_indexer(listed)
            split.iloc[positions] = split_name
        _problem(problems, file, "no-split", split.isna(), names, "image(s) in no split list (split NA)")

    images = pd.DataFrame(
        {
            "image_id": names.str.removesuffix(".png"),
            "dataset": DATASET,
            "split": split,
            "patient_id": patient,
            "path": "images/" + names,
            "width": PNG_SIZE,
            "height": PNG_SIZE,
            "sex": sex.where(known_sex),
            "age": age.mask(implausible),
            "view": view,
            "follow_up": entry["follow_up"],
            "original_width": entry["original_width"],
            "original_height": entry["original_height"],
            "pixel_spacing_x": entry["pixel_spacing_x"],
            "pixel_spacing_y": entry["pixel_spacing_y"],
            "age_raw": entry["age_raw"],
            "age_implausible": implausible.fillna(False).astype(bool),
        }
    )
    return conform_images(images)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}


def png_header(path: Path) -> tuple[int, int, str] | None:
    """Width, height and colour mode from a PNG's IHDR (24 bytes read); None if not a PNG."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(26)
    except OSError:
        return None
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return width, height, _PNG_MODES.get(head[25], f"type{head[25]}")


def attach_png_sizes(images: pd.DataFrame, images_dir: Path, problems: list[Problem]) -> pd.DataFrame:
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
    _problem(
        problems,
        where,
        "png-missing",
        ~found,
        images["path"],
        f"image(s) without a readable PNG (size assumed {PNG_SIZE})",
    )
    odd = found & ((out["width"] != PNG_SIZE) | (out["height"] != PNG_SIZE)).to_numpy(dtype=bool)
    _problem(
        problems,
        where,
        "png-size",
        odd,
        images["path"] + " " + out["width"].astype("string") + "x" + out["height"].astype("string"),
        f"PNG(s) not {PNG_SIZE} x {PNG_SIZE} (their size is used)",
        "note",
    )
    rgba = (out["png_mode"] == "RGBA").fillna(False).to_numpy(dtype=bool)
    _problem(
        problems, where, "png-rgba", rgba, images["path"], "PNG(s) stored as RGBA (read them as gray)", "note"
    )
    return out


def nlp_findings(entry: pd.DataFrame, file: str, problems: list[Problem]) -> pd.DataFrame:
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
    _problem(
        problems,
        file,
        "no-labels",
        empty,
        entry["image_index"],
        "row(s) with an empty Finding Labels (no finding rows)",
    )
    flat, ids = flat[keep].reset_index(drop=True), ids[keep]
    canon = _canonical_labels(flat, file, problems, "label(s)")
    ok = canon.notna().to_numpy()
    nlp = pd.DataFrame({"image_id": ids[ok], "reader": READER, "label": canon[ok].to_numpy()})
    for c in BOX_COLUMNS:
        nlp[c] = np.nan
    return nlp.assign(score=1.0, source="nlp")


def _clip_boxes(b: pd.DataFrame, images: pd.DataFrame, file: str, problems: list[Problem]) -> pd.DataFrame:
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
    _problem(
        problems,
        file,
        "box-outside",
        outside & ~empty,
        where,
        "box(es) reaching past the image (1024 x 1024, or the PNG's size), clipped",
    )
    _problem(
        problems,
        file,
        "box-off-image",
        empty,
        where + " " + b["x_min"].astype("string") + "," + b["y_min"].astype("string"),
        "box(es) entirely outside the image, skipped",
    )
    return b[~empty]


def box_findings(
    boxes: pd.DataFrame,
    images: pd.DataFrame,
    nlp: pd.DataFrame,
    files: dict[str, str],
    problems: list[Problem],
) -> pd.DataFrame:
    """One row per box of the BBox list (``source`` bbox) on a known image, clipped to it."""
    file = files["bbox"]
    b = boxes.assign(image_id=boxes["image_index"].str.removesuffix(".png"))
    known = _isin(b["image_id"], images["image_id"]).to_numpy()
    _problem(
        problems,
        file,
        "box-image-unknown",
        ~known,
        b["image_index"],
        f"box(es) on an image absent from {files['entry']}, left out",
    )
    b = b[known]
    dup = b.duplicated(["image_id", "label", *BOX_COLUMNS])
    _problem(problems, file, "duplicate-box", dup, b["image_index"], "identical box row(s) (kept)")
    b = _clip_boxes(b, images, file, problems)
    b = b.assign(label=_canonical_labels(b["label"], file, problems, "box(es)"))
    b = b[b["label"].notna()]
    unlabelled = ~isin_strings(b["image_id"] + "|" + b["label"], nlp["image_id"] + "|" + nlp["label"])
    _problem(
        problems,
        file,
        "box-label-not-in-entry",
        unlabelled,
        b["image_index"] + " " + b["label"],
        f"box(es) whose label is not among the image's labels in {files['entry']} (kept)",
        "note",
    )
    return b[["image_id", *BOX_COLUMNS]].assign(reader=READER, label=b["label"], score=1.0, source="bbox")


def build_findings(
    entry: pd.DataFrame,
    boxes: pd.DataFrame | None,
    images: pd.DataFrame,
    files: dict[str, str],
    problems: list[Problem],
) -> pd.DataFrame:
    """Image-level rows from ``Finding Labels`` and box rows from the BBox list, reader ``nih``."""
    nlp = nlp_findings(entry, files["entry"], problems)
    parts = [nlp]
    if boxes is not None and len(boxes):
        parts.append(box_findings(boxes, images, nlp, files, problems))
    return conform_findings(pd.concat(parts, ignore_index=True))


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
    problems: list[Problem] = []
    entry_path = Path(entry) if entry else find_file(folder, ENTRY_NAMES, "Data_Entry table")
    assert entry_path is not None
    if not entry_path.is_file():
        raise CxrlabError(f"{entry_path}: no such file")
    bbox_path = find_file(folder, BBOX_NAMES, "BBox list", required=False)
    table, revision = read_entry_table(entry_path, problems)
    lists = {name: read_list(folder / name) for name in LIST_SPLITS if (folder / name).is_file()}
    sources = {"entry": entry_path.name}
    if bbox_path:
        sources["bbox"] = bbox_path.name
    for name in lists:
        sources[LIST_SPLITS[name]] = name
    missing = [
        n
        for n in (*LIST_SPLITS, "BBox_List_2017.csv")
        if n not in sources.values() and not (n.startswith("BBox") and bbox_path)
    ]
    if missing:
        problems.append(
            Problem(
                folder.name or str(folder),
                "missing-file",
                len(missing),
                "label file(s) absent: " + ", ".join(missing),
            )
        )
    images = build_images(table, lists, entry_path.name, problems)
    if images_dir is not None:
        images = conform_images(attach_png_sizes(images, Path(images_dir), problems))
        sources["images"] = str(images_dir)
    boxes = read_bbox_list(bbox_path, problems) if bbox_path else None
    findings = build_findings(table, boxes, images, sources, problems)
    return NihIndex(images=images, findings=findings, problems=problems, revision=revision, sources=sources)


REPORT_FILE = "nih_index_report.json"


def write_index(index: NihIndex, out: str | Path) -> Path:
    """Validate and write ``images.parquet``, ``findings.parquet`` and the report to ``out`` (all or none)."""
    report = (json.dumps(index.summary(), indent=2) + "\n").encode("utf-8")
    return save_tables(out, index.images, index.findings, extra={REPORT_FILE: report})
