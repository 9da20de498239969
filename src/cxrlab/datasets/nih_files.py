"""Reading the NIH ChestX-ray14 label files as written: ``Data_Entry_2017*.csv[.gz]`` in its three revisions,
``BBox_List_2017.csv[.gz]`` and the official split lists.

The Data_Entry revisions: the first release writes ages as ``058Y`` and zero-padded patient ids; the 2017
CSV ends its header (and sometimes its rows) with an empty column; ``Data_Entry_2017_v2020.csv`` has
neither. Headers are read by position because their bracketed names (``OriginalImage[Width,Height]``)
contain commas. Every field is read as a string first and parsed here, so that an unreadable cell becomes
a reported problem naming the file, not an exception.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from cxrlab.errors import CxrlabError
from cxrlab.imaging.headers import parse_ages
from cxrlab.problems import MAX_EXAMPLES, Problem, ProblemLog

ENTRY_NAMES = (
    "Data_Entry_2017_v2020.csv",
    "Data_Entry_2017_v2020.csv.gz",
    "Data_Entry_2017.csv",
    "Data_Entry_2017.csv.gz",
)


BBOX_NAMES = ("BBox_List_2017.csv", "BBox_List_2017.csv.gz")


LIST_SPLITS = {"train_val_list.txt": "train_val", "test_list.txt": "test"}


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


def _read_csv_strings(path: Path, n_fields: int, problems: ProblemLog) -> pa.Table:
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


def read_entry_table(path: str | Path, problems: ProblemLog | None = None) -> tuple[pd.DataFrame, str]:
    """Read any revision of ``Data_Entry_2017*.csv[.gz]``: columns of ``_ENTRY_FIELDS`` typed, plus the
    raw age string (``age_raw``); returns the frame and the detected revision."""
    path = Path(path)
    problems = problems if problems is not None else ProblemLog()
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
        problems.where(
            f"bad-{column}",
            bad & (df[column] != ""),
            df["image_index"] + " " + column + "=" + df[column],
            f"row(s) with a {column} that is not a{' whole' if whole else ''} number (set to NA)",
            file=name,
        )
        values = values.mask(bad)
        # v2020 writes 0.14300000000000002: round away the float noise of its writer.
        df[column] = values.astype("Int64") if whole else values.round(9)
    df["age_raw"] = df["age"]
    df["age"] = parse_ages(df["age"])
    return df, revision


def _bbox_rows(path: Path, problems: ProblemLog) -> tuple[list[list[str]], list[int]]:
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


def read_bbox_list(path: str | Path, problems: ProblemLog | None = None) -> pd.DataFrame:
    """``BBox_List_2017.csv[.gz]`` -> image_index, label (as written), x_min, y_min, x_max, y_max, line.

    A row that is not a box (a field missing, a non-numeric, infinite or non-positive x, y, w, h) is
    skipped and reported with its line number, as are rows without 6 fields.
    """
    path = Path(path)
    problems = problems if problems is not None else ProblemLog()
    header = _open_text_head(path)
    if not header.startswith("Image Index,Finding Label"):
        raise CxrlabError(f"{path}: not an NIH BBox list (header starts {header[:40]!r})")
    rows, numbers = _bbox_rows(path, problems)
    df = pd.DataFrame(rows, columns=list(_BBOX_FIELDS), dtype="string")
    df["line"] = pd.Series(numbers, dtype="int64")
    xywh = pd.DataFrame({c: _numeric(df[c]) for c in ("x", "y", "w", "h")}, index=df.index)
    unreadable = ~np.isfinite(xywh.to_numpy(dtype=float)).all(axis=1) | (xywh["w"] <= 0) | (xywh["h"] <= 0)
    problems.where(
        "bad-box",
        unreadable,
        "line " + df["line"].astype("string") + ": " + df["image_index"].fillna(""),
        "box row(s) with missing, non-numeric, infinite or non-positive x, y, w, h, skipped",
        file=path.name,
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
