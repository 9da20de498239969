"""cxrlab.imaging.headers: one age grammar for DICOM and NIH, one plausible-age limit everywhere."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrlab import tables
from cxrlab.datasets.phantom.dicom_writer import DicomSpec, write_dicom
from cxrlab.imaging.headers import MAX_PLAUSIBLE_AGE, implausible_age, parse_age, parse_ages, read_header

AGES = ["045Y", "045y", "018M", "010W", "014D", "52", "058Y", " 7 ", "3.5", "", "Y", "abc", "-5", "12X", None]


def test_the_column_parser_and_the_value_parser_agree() -> None:
    column = parse_ages(pd.Series(AGES, dtype="string"))
    for raw, got in zip(AGES, column, strict=True):
        one = parse_age(raw)
        assert (math.isnan(one) and math.isnan(got)) or one == pytest.approx(got), raw
    assert parse_age("018M") == pytest.approx(1.5) and parse_age("010W") == pytest.approx(70 / 365.25)


def test_one_limit_in_the_table_schema_the_nih_index_and_the_dicom_index(tmp_path: Path) -> None:
    assert MAX_PLAUSIBLE_AGE == tables.MAX_PLAUSIBLE_AGE
    ages = pd.Series([MAX_PLAUSIBLE_AGE, MAX_PLAUSIBLE_AGE + 1, -1, np.nan])
    assert implausible_age(ages).tolist() == [False, True, True, False]
    images = tables.conform_images(
        pd.DataFrame({c: ["a"] if c in ("image_id",) else [None] for c in tables.IMAGE_COLUMNS})
    )
    images["age"] = pd.array([MAX_PLAUSIBLE_AGE + 1], dtype="Float64")
    with pytest.raises(tables.TableError, match=f"age outside 0-{MAX_PLAUSIBLE_AGE:g}"):
        tables.validate_images(images)
    images["age"] = pd.array([MAX_PLAUSIBLE_AGE], dtype="Float64")
    tables.validate_images(images)


def test_read_header_without_pixels(tmp_path: Path) -> None:
    path = tmp_path / "x.dicom"
    write_dicom(path, np.zeros((40, 30), np.uint16), DicomSpec(sex="F", age="121Y", bits_stored=12))
    header = read_header(path)
    assert header["error"] is None and (header["width"], header["height"]) == (30, 40)
    assert header["sex"] == "F" and parse_age(header["age_raw"]) == 121
    assert implausible_age(pd.Series([parse_age(header["age_raw"])])).tolist() == [True]
    junk = tmp_path / "junk.dicom"
    junk.write_bytes(b"not a dicom at all")
    assert read_header(junk)["error"]
