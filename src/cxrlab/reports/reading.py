"""Reading reports: a CSV (one report a row) or a folder of text files (one report a file), any encoding.

Hospital exports come in every encoding: UTF-8 with or without a byte-order mark, UTF-16 from Windows tools,
cp1252 or Latin-1 from older systems. :func:`decode_bytes` reads them all without failing: a byte-order mark
decides, then NUL bytes betray UTF-16 without one, then strict UTF-8, then cp1252, then Latin-1 (which
accepts any byte).

A CSV's report text comes from the columns named with ``text_columns``; otherwise from FINDINGS and
IMPRESSION columns when present (each kept under its heading, so the labeler sees the sections), otherwise
from a column named report/reports/text, otherwise from the only column. A one-column file whose first
line reads like a report, not a header, is read as headerless (the CheXpert labeler's sample input).
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd

from cxrlab.csvfiles import strict_frame
from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.reports.sections import SECTION_NAMES

TEXT_COLUMN_NAMES = ("report", "reports", "text", "report_text", "reporttext", "note", "narrative")
ID_COLUMN_NAMES = ("report_id", "id", "uid", "study_id", "filename", "accession", "image_id")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def decode_bytes(data: bytes) -> tuple[str, str]:
    """Text of ``data`` and the encoding used; never raises."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(encoding, errors="replace"), encoding
    head = data[:4096]
    if len(head) >= 2 and head.count(0) > len(head) // 4:
        even, odd = head[0::2].count(0), head[1::2].count(0)
        encoding = "utf-16-be" if even > odd else "utf-16-le"
        return data.decode(encoding, errors="replace"), encoding
    for encoding in ("utf-8", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            pass
    return data.decode("latin-1"), "latin-1"


_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PAR1", "a Parquet file"),
)
MAX_CONTROL_SHARE = 0.02
"""Text has almost no control characters (tabs and line ends aside); random bytes decode to about 25%."""


def binary_kind(data: bytes, text: str) -> str | None:
    """What ``data`` is when it is not text (its format, or "binary data"), else None.

    A report labelled from a PNG renamed ``.txt`` would come out ``No finding``: an answer about a file that
    says nothing. Known signatures decide first, then the share of control characters in the decoded text.
    """
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if len(data) >= 132 and data[128:132] == b"DICM":
        return "a DICOM file"
    head = text[:65536]
    if not head:
        return None
    controls = sum(1 for ch in head if (ch < " " and ch not in "\t\n\r\f\v") or "\x7f" <= ch <= "\x9f")
    controls += head.count("\ufffd")
    return "binary data" if controls > MAX_CONTROL_SHARE * len(head) else None


def read_text_file(path: str | Path) -> str:
    """One report file, whatever its encoding, with NUL bytes and line-end differences removed.

    A file that is not text (an image, an archive, random bytes) is an error naming it.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CxrlabError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text, _ = decode_bytes(data)
    kind = binary_kind(data, text)
    if kind is not None:
        raise CxrlabError(f"{path}: not a text file ({kind})")
    return text.replace("\x00", "").replace("\r\n", "\n")


def read_csv_text(path: str | Path, *, header: bool = True) -> pd.DataFrame:
    """A CSV of strings (no NA guessing: an empty cell is ''), decoded like :func:`decode_bytes`; a row
    wider or narrower than the header is an error naming it (:func:`cxrlab.csvfiles.strict_frame`)."""
    return strict_frame(read_text_file(path), path, header=header)


def _looks_like_text(cell: str) -> bool:
    return len(cell) > 40 or len(cell.split()) > 4 or "." in cell.strip()[:-1]


def read_reports(
    source: str | Path,
    *,
    text_columns: list[str] | None = None,
    id_column: str | None = None,
) -> pd.DataFrame:
    """``report_id`` and ``text`` for every report of a CSV file or a folder of ``.txt`` files."""
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".text"))
        if not files:
            raise CxrlabError(f"{path}: no .txt files in this folder")
        ids = [str(p.relative_to(path).with_suffix("")) for p in files]
        return pd.DataFrame({"report_id": ids, "text": [read_text_file(p) for p in files]})
    if not path.exists():
        raise CxrlabError(f"{path}: no such file or folder")
    frame = read_csv_text(path)
    if not len(frame.columns):
        raise CxrlabError(f"{path}: no report in this CSV (the file is empty)")
    lower = {c.strip().lower(): c for c in frame.columns}
    if text_columns:
        missing = [c for c in text_columns if c not in frame.columns and c.lower() not in lower]
        if missing:
            raise ParameterError(
                "text_columns",
                f"names no column of {path}: {', '.join(repr(m) for m in missing)}; "
                f"columns are {', '.join(frame.columns)}",
            )
        chosen = [c if c in frame.columns else lower[c.lower()] for c in text_columns]
    else:
        chosen = [lower[n] for n in ("findings", "impression") if n in lower]
        if not chosen:
            chosen = [lower[n] for n in TEXT_COLUMN_NAMES if n in lower][:1]
        if not chosen and len(frame.columns) == 1:
            if _looks_like_text(str(frame.columns[0])):
                frame = read_csv_text(path, header=False)
                frame.columns = ["text"]
            chosen = [frame.columns[0]]
        if not chosen:
            raise ParameterError(
                "text_columns",
                f"is needed: which column of {path} holds the report? Columns are {', '.join(frame.columns)}",
            )
    if frame.empty:
        raise CxrlabError(f"{path}: no report in this CSV (a header without rows)")
    text = _join_columns(frame, chosen)
    if id_column is not None:
        key = id_column if id_column in frame.columns else lower.get(id_column.lower())
        if key is None:
            raise ParameterError(
                "id_column", f"{id_column!r} is no column of {path}; columns are {', '.join(frame.columns)}"
            )
        ids = frame[key].astype(str)
    else:
        key = next((lower[n] for n in ID_COLUMN_NAMES if n in lower), None)
        ids = frame[key].astype(str) if key is not None else pd.Series([str(i) for i in range(len(frame))])
    return pd.DataFrame({"report_id": ids.to_numpy(), "text": text.to_numpy()})


def _join_columns(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One text per row; a column named like a section keeps its heading ("FINDINGS: ...")."""
    if len(columns) == 1 and columns[0].strip().lower() not in SECTION_NAMES:
        return frame[columns[0]].astype(str)
    parts = []
    for c in columns:
        name = c.strip().lower()
        head = f"{name.upper()}: " if name in SECTION_NAMES else ""
        parts.append(head + frame[c].astype(str))
    out = parts[0]
    for p in parts[1:]:
        out = out + "\n" + p
    return out
