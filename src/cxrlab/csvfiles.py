"""CSV text read strictly and fast, whatever a user's file holds.

pandas guesses where a CSV is odd: a row wider than the header silently becomes a many-level index (60,000
extra commas took minutes) or loses its extra fields, and naming thousands of unnamed header fields takes
minutes too. The csv module reads rows as they are, in linear time; its field limit (128 KiB, process-wide)
is lifted while reading, since a submission row of 20,000 boxes is larger.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from cxrlab.errors import CxrlabError

MAX_COLUMNS = 1000
"""More header fields than any table cxrlab reads has: such a first line is damage, not a header."""


@contextmanager
def no_field_limit() -> Iterator[None]:
    """Lift the csv module's field limit for the block, then restore the previous one."""
    previous = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(previous)


def csv_rows(text: str, path: str | Path) -> list[list[str]]:
    """Every row of the CSV ``text`` (blank lines skipped, as pandas does); a syntax error names the line."""
    rows: list[list[str]] = []
    with no_field_limit():
        reader = csv.reader(io.StringIO(text))
        try:
            rows = [row for row in reader if len(row) > 1 or (row and row[0].strip())]
        except csv.Error as exc:
            raise CxrlabError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    return rows


def strict_frame(text: str, path: str | Path, *, header: bool = True) -> pd.DataFrame:
    """A frame of strings (an empty cell is ''), each row as wide as the header, or an error naming the row.

    Without ``header`` the columns are numbered from 0. An empty text gives an empty frame.
    """
    rows = csv_rows(text, path)
    if not rows:
        return pd.DataFrame()
    width = len(rows[0])
    if width > MAX_COLUMNS:
        raise CxrlabError(f"{path}: {width} fields in its first line: not a table")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != width:
            raise CxrlabError(f"{path}: row {number}: {len(row)} fields where the first row has {width}")
    if not header:
        return pd.DataFrame(rows, columns=range(width), dtype=str)
    names = rows[0]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CxrlabError(f"{path}: column(s) {', '.join(map(repr, repeated))} appear more than once")
    return pd.DataFrame(rows[1:], columns=names, dtype=str)
