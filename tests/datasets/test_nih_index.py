"""cxrlab.datasets.nih: the real label files (all three revisions), the shipped excerpt, and the problems."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, realdata_path
from cxrlab.datasets.nih import index_nih, parse_ages, read_entry_table, write_index
from cxrlab.errors import CxrlabError
from cxrlab.tables import load_tables

FIXTURE = REPO / "tests" / "fixtures" / "nih"

# The released table's per-label image counts (the NIH paper / Kaggle page; the acceptance).
RELEASED_COUNTS = {
    "Infiltration": 19_894,
    "Effusion": 13_317,
    "Atelectasis": 11_559,
    "Nodule": 6_331,
    "Mass": 5_782,
    "Pneumothorax": 5_302,
    "Consolidation": 4_667,
    "Pleural_Thickening": 3_385,
    "Cardiomegaly": 2_776,
    "Emphysema": 2_516,
    "Edema": 2_303,
    "Fibrosis": 1_686,
    "Pneumonia": 1_431,
    "Hernia": 227,
    "No finding": 60_361,
}


def _real_folder(
    tmp_path: Path, entry_text: str | None = None, entry_name: str = "Data_Entry_2017.csv"
) -> Path:
    """A folder with the real BBox list and split lists, and the given (transformed) entry table."""
    nih = realdata_path("nih")
    folder = tmp_path / "nih"
    folder.mkdir()
    for name in ("BBox_List_2017.csv.gz", "train_val_list.txt", "test_list.txt"):
        shutil.copy(nih / name, folder / name)
    if entry_text is None:
        shutil.copy(nih / "Data_Entry_2017_v2020.csv.gz", folder / "Data_Entry_2017_v2020.csv.gz")
    else:
        (folder / entry_name).write_text(entry_text)
    return folder


def _v2020_text() -> str:
    with gzip.open(realdata_path("nih", "Data_Entry_2017_v2020.csv.gz"), "rt") as fh:
        return fh.read()


def _as_2017(text: str, implausible: dict[int, int]) -> str:
    """The 2017 CSV: a trailing empty column on every line, and a few implausible ages (rows by number)."""
    lines = text.splitlines()
    out = [lines[0] + ","]
    for i, line in enumerate(lines[1:], 1):
        if i in implausible:
            f = line.split(",")
            f[4] = str(implausible[i])
            line = ",".join(f)
        out.append(line + ",")
    return "\n".join(out) + "\n"


def _as_first_release(text: str) -> str:
    """The first release: ages as ``058Y``, zero-padded patient ids, short spacings, trailing column."""
    lines = text.splitlines()
    out = [lines[0] + ","]
    for line in lines[1:]:
        f = line.split(",")
        f[3] = f[3].zfill(8)
        f[4] = f"{int(f[4]):03d}Y"
        f[9], f[10] = (repr(round(float(v), 6)) for v in (f[9], f[10]))
        out.append(",".join(f) + ",")
    return "\r\n".join(out) + "\r\n"


def _reference_counts(text: str) -> dict[str, int]:
    """Per-label image counts by plain string handling, independent of the code under test."""
    counts: dict[str, int] = {}
    for line in text.splitlines()[1:]:
        for label in set(line.split(",")[1].split("|")):
            counts[label] = counts.get(label, 0) + 1
    return counts


def _label_counts(findings: pd.DataFrame) -> dict[str, int]:
    nlp = findings[findings["source"] == "nlp"]
    return {
        str(k): int(v) for k, v in nlp.drop_duplicates(["image_id", "label"])["label"].value_counts().items()
    }


# ------------------------------------------------------------------------------------------- real files
@pytest.fixture(scope="module")
def real_index():  # type: ignore[no-untyped-def]
    return index_nih(realdata_path("nih"))


def test_real_label_counts_are_the_released_ones(real_index) -> None:  # type: ignore[no-untyped-def]
    assert real_index.revision == "v2020"
    assert len(real_index.images) == 112_120
    assert real_index.images["patient_id"].nunique() == 30_805
    assert _label_counts(real_index.findings) == RELEASED_COUNTS


def test_real_boxes_984_on_880_images_in_the_png_grid(real_index) -> None:  # type: ignore[no-untyped-def]
    boxes = real_index.findings[real_index.findings["source"] == "bbox"]
    assert len(boxes) == 984
    assert boxes["image_id"].nunique() == 880
    box_labels = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia"]
    assert set(boxes["label"]) == {*box_labels, "Pneumothorax"}
    assert (boxes["reader"] == "nih").all() and (boxes["score"] == 1.0).all()
    assert (boxes[["x_min", "y_min"]] >= 0).all().all() and (boxes[["x_max", "y_max"]] <= 1024).all().all()
    # The first box row as released: 00013118_008.png Atelectasis 225.08,547.02 w 86.78 h 79.19.
    first = boxes[boxes["image_id"] == "00013118_008"].iloc[0]
    assert first["label"] == "Atelectasis"
    assert first[["x_min", "y_min"]].tolist() == pytest.approx([225.084745762712, 547.019216763771])
    assert first["x_max"] == pytest.approx(225.084745762712 + 86.7796610169491)
    assert first["y_max"] == pytest.approx(547.019216763771 + 79.1864406779661)


def test_real_official_split_has_no_patient_on_both_sides(real_index) -> None:  # type: ignore[no-untyped-def]
    images = real_index.images
    assert images["split"].value_counts().to_dict() == {"train_val": 86_524, "test": 25_596}
    sides = images.groupby("patient_id")["split"].nunique()
    assert (sides == 1).all()
    assert images.loc[images["split"] == "train_val", "patient_id"].nunique() == 28_008
    assert images.loc[images["split"] == "test", "patient_id"].nunique() == 2_797
    # Every box image is in the test list (PROVENANCE.md).
    box_ids = real_index.findings.loc[real_index.findings["source"] == "bbox", "image_id"].unique()
    assert set(images.set_index("image_id").loc[box_ids, "split"]) == {"test"}


def test_real_image_columns(real_index) -> None:  # type: ignore[no-untyped-def]
    first = real_index.images.set_index("image_id").loc["00000001_000"]
    # 00000001_000.png,Cardiomegaly,0,1,57,M,PA,2682,2749,0.14300000000000002,0.14300000000000002
    assert first["patient_id"] == "00000001" and first["path"] == "images/00000001_000.png"
    assert (first["width"], first["height"]) == (1024, 1024)
    assert (first["original_width"], first["original_height"]) == (2682, 2749)
    assert first["pixel_spacing_x"] == 0.143 and first["pixel_spacing_y"] == 0.143
    assert (first["age"], first["sex"], first["view"], first["follow_up"]) == (57, "M", "PA", 0)
    assert real_index.images["view"].value_counts().to_dict() == {"PA": 67_310, "AP": 44_810}
    # The only note on v2020: follow-up numbers that differ from the file names', nothing dropped.
    assert [p.kind for p in real_index.problems] == ["follow-up-differs"]


def test_real_tables_round_trip(real_index, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_index(real_index, tmp_path / "tables")
    loaded = load_tables(tmp_path / "tables")
    assert len(loaded.images) == 112_120
    assert len(loaded.findings) == len(real_index.findings)
    assert (tmp_path / "tables" / "nih_index_report.json").is_file()


def test_real_2017_revision_gives_the_same_tables_and_flags_implausible_ages(tmp_path: Path) -> None:
    text = _v2020_text()
    implausible = {10: 412, 500: 148}
    folder = _real_folder(tmp_path, _as_2017(text, implausible))
    index = index_nih(folder)
    assert index.revision == "2017"
    assert _label_counts(index.findings) == RELEASED_COUNTS
    assert index.images["split"].value_counts().to_dict() == {"train_val": 86_524, "test": 25_596}
    flagged = index.images[index.images["age_implausible"]]
    assert len(flagged) == 2 and flagged["age"].isna().all()
    assert sorted(flagged["age_raw"]) == ["148", "412"]
    problem = next(p for p in index.problems if p.kind == "implausible-age")
    assert problem.count == 2 and any("412" in e for e in problem.examples)


def test_2017_header_with_trailing_comma_over_rows_without_one(tmp_path: Path) -> None:
    """The 2017 header ends in a comma (12 fields); rows of 11 fields, with or without that trailing empty
    field, are all data (pandas pads the short rows): none may be dropped."""
    text = _v2020_text()
    lines = text.splitlines()
    index = index_nih(_real_folder(tmp_path, lines[0] + ",\n" + "\n".join(lines[1:]) + "\n"))
    assert index.revision == "2017"
    assert len(index.images) == 112_120
    assert not [p for p in index.problems if p.kind == "bad-row"]
    assert _label_counts(index.findings) == RELEASED_COUNTS


def test_real_first_release_revision(tmp_path: Path) -> None:
    v2020 = index_nih(realdata_path("nih"))
    folder = _real_folder(tmp_path, _as_first_release(_v2020_text()))
    index = index_nih(folder)
    assert index.revision == "first-release"
    assert _label_counts(index.findings) == RELEASED_COUNTS
    a = index.images.set_index("image_id")
    b = v2020.images.set_index("image_id")
    assert (a["patient_id"] == b["patient_id"]).all()
    assert np.allclose(a["age"].to_numpy(dtype=float), b["age"].to_numpy(dtype=float))
    assert np.allclose(a["pixel_spacing_x"], b["pixel_spacing_x"])
    assert a.loc["00000001_000", "age_raw"] == "057Y"


def test_gz_and_plain_entry_give_the_same_tables(tmp_path: Path) -> None:
    text = _v2020_text()
    plain = index_nih(_real_folder(tmp_path, text, "Data_Entry_2017_v2020.csv"))
    assert plain.sources["entry"] == "Data_Entry_2017_v2020.csv"
    assert _reference_counts(text)["Infiltration"] == RELEASED_COUNTS["Infiltration"]
    assert _label_counts(plain.findings) == RELEASED_COUNTS


# ------------------------------------------------------------------------------------- shipped excerpt
def test_fixture_excerpt_matches_a_plain_reading() -> None:
    index = index_nih(FIXTURE)
    text = (FIXTURE / "Data_Entry_2017_v2020.csv").read_text()
    reference = _reference_counts(text)
    reference["No finding"] = reference.pop("No Finding")
    assert _label_counts(index.findings) == reference
    assert len(index.images) == len(text.splitlines()) - 1
    n_boxes = len((FIXTURE / "BBox_List_2017.csv").read_text().splitlines()) - 1
    assert (index.findings["source"] == "bbox").sum() == n_boxes
    assert index.images["split"].notna().all()
    assert (index.images.groupby("patient_id")["split"].nunique() == 1).all()


def _copy_fixture(tmp_path: Path) -> Path:
    folder = tmp_path / "nih"
    shutil.copytree(FIXTURE, folder)
    (folder / "README.md").unlink()
    return folder


def test_problems_are_counted_with_examples_never_dropped_silently(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    entry = folder / "Data_Entry_2017_v2020.csv"
    lines = entry.read_text().splitlines()
    f = lines[5].split(",")
    f[1] = "Cardiomegaly|Pneumomediastinum"  # unknown label
    lines[5] = ",".join(f)
    lines.append(lines[7])  # a duplicate row
    g = lines[9].split(",")
    g[4] = "414"
    lines[9] = ",".join(g)
    entry.write_text("\n".join(lines) + "\n")
    with open(folder / "test_list.txt", "a") as fh:
        fh.write("\n99999999_000.png")  # in a list, not in the entry table
    with open(folder / "BBox_List_2017.csv", "a") as fh:
        fh.write("99999998_000.png,Mass,10,10,20,20\n")  # a box on an unknown image
    index = index_nih(folder)
    kinds = {p.kind: p for p in index.problems}
    assert kinds["unknown-label"].count == 1 and "Pneumomediastinum" in kinds["unknown-label"].examples[0]
    assert kinds["duplicate-row"].count == 1
    assert kinds["implausible-age"].count == 1
    assert kinds["not-in-entry"].count == 1 and kinds["not-in-entry"].examples == ["99999999_000.png"]
    assert kinds["box-image-unknown"].count == 1
    # The row with the unknown label keeps its known label.
    image_id = f[0].removesuffix(".png")
    assert "Cardiomegaly" in set(index.findings.loc[index.findings["image_id"] == image_id, "label"])
    assert len(index.images) == len(lines) - 2  # header and the duplicate


def test_missing_files_and_wrong_files(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    (folder / "BBox_List_2017.csv").unlink()
    (folder / "test_list.txt").unlink()
    index = index_nih(folder)
    missing = next(p for p in index.problems if p.kind == "missing-file")
    assert "test_list.txt" in missing.message and "BBox_List_2017.csv" in missing.message
    assert (index.findings["source"] == "bbox").sum() == 0
    assert index.images["split"].isna().sum() > 0
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CxrlabError, match="no Data_Entry table"):
        index_nih(empty)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(CxrlabError, match=re.escape("not an NIH Data_Entry table")):
        read_entry_table(bad)


@pytest.mark.parametrize(
    ("raw", "years"),
    [
        pytest.param("58", 58.0, id="integer"),
        pytest.param("058Y", 58.0, id="first-release-years"),
        pytest.param("006M", 0.5, id="months"),
        pytest.param("", np.nan, id="empty"),
        pytest.param("abc", np.nan, id="garbage"),
    ],
)
def test_parse_ages(raw: str, years: float) -> None:
    got = parse_ages(pd.Series([raw], dtype="string")).iloc[0]
    assert (np.isnan(got) and np.isnan(years)) or got == pytest.approx(years)


def test_duplicate_entry_rows_identical_and_conflicting_are_told_apart(tmp_path: Path) -> None:
    folder = _copy_fixture(tmp_path)
    entry = folder / "Data_Entry_2017_v2020.csv"
    lines = entry.read_text().splitlines()
    lines.append(lines[7])  # an exact repeat
    conflict = lines[9].split(",")
    conflict[4] = str(int(conflict[4]) + 3)  # same image, another age
    conflict[6] = "AP" if conflict[6] == "PA" else "PA"
    lines.append(",".join(conflict))
    entry.write_text("\n".join(lines) + "\n")
    index = index_nih(folder)
    kinds = {p.kind: p for p in index.problems}
    assert kinds["duplicate-row"].count == 1 and "exactly" in kinds["duplicate-row"].message
    assert kinds["conflicting-duplicate"].count == 1
    example = kinds["conflicting-duplicate"].examples[0]
    original = lines[9].split(",")
    assert example.startswith(original[0]) and f"Patient Age {original[4]} vs {conflict[4]}" in example
    assert "View Position" in example and "identical" not in kinds["conflicting-duplicate"].message
    kept = index.images.set_index("image_id").loc[original[0].removesuffix(".png")]
    assert kept["age"] == float(original[4])  # the first row wins
    assert len(index.images) == len(lines) - 3


def test_bad_box_rows_are_skipped_with_file_and_line_never_an_abort(tmp_path: Path) -> None:
    """An infinite coordinate or a box entirely outside the image used to reach the table validation and
    abort with internal wording; every bad box row is now skipped and named by line."""
    folder = _copy_fixture(tmp_path)
    bbox = folder / "BBox_List_2017.csv"
    n_lines = len(bbox.read_text().splitlines())
    image = bbox.read_text().splitlines()[1].split(",")[0]
    with open(bbox, "a") as fh:
        fh.write(f"{image},Atelectasis,1e400,2,30,40\n")  # infinite x
        fh.write(f"{image},Atelectasis,1100,20,30,40\n")  # entirely right of the 1024 px image
        fh.write(f"{image},Atelectasis,-50,-60,20,20\n")  # entirely above-left
        fh.write(f"{image},Atelectasis,1000,1000,100,100\n")  # partly outside: clipped, kept
        fh.write(f"{image},Atelectasis,x,2,3\n")  # 5 fields
    index = index_nih(folder)
    write_index(index, tmp_path / "tables")  # no abort in validation
    kinds = {p.kind: p for p in index.problems}
    assert kinds["bad-box"].examples == [f"line {n_lines + 1}: {image}"]
    assert kinds["box-off-image"].count == 2
    assert [e.split(" ")[:3] for e in kinds["box-off-image"].examples] == [
        ["line", f"{n_lines + 2}:", image],
        ["line", f"{n_lines + 3}:", image],
    ]
    assert kinds["box-outside"].count == 1 and kinds["box-outside"].examples == [
        f"line {n_lines + 4}: {image}"
    ]
    assert kinds["bad-row"].examples[0].startswith(f"line {n_lines + 5}:")
    assert all(p.file == "BBox_List_2017.csv" for k, p in kinds.items() if k.startswith(("bad-", "box-")))


def test_fast_numeric_parse_matches_pandas() -> None:
    """The pyarrow cast used for the numeric columns, against ``pd.to_numeric`` (its fallback included)."""
    from cxrlab.datasets.nih import _numeric

    for raw in (["1", "2.5", "-3", "1e3", "0.14300000000000002"], ["1", "", "x", "2.0", "inf", " 7 "]):
        values = pd.Series(raw, dtype="string")
        expected = pd.to_numeric(values, errors="coerce").astype("float64")
        got = _numeric(values)
        assert got.index.equals(values.index)
        np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())


def test_cells_that_are_not_whole_numbers_are_reported_by_image_not_a_crash(tmp_path: Path) -> None:
    """``1.5`` in Follow-up # used to crash the Int64 cast; ``inf`` in a width passed as a number."""
    folder = _copy_fixture(tmp_path)
    entry = folder / "Data_Entry_2017_v2020.csv"
    lines = entry.read_text().splitlines()
    fields = lines[3].split(",")
    fields[2], fields[7] = "1.5", "inf"
    lines[3] = ",".join(fields)
    entry.write_text("\n".join(lines) + "\n")
    index = index_nih(folder)
    kinds = {p.kind: p for p in index.problems}
    assert kinds["bad-follow_up"].examples == [f"{fields[0]} follow_up=1.5"]
    assert kinds["bad-original_width"].examples == [f"{fields[0]} original_width=inf"]
    row = index.images.set_index("image_id").loc[fields[0].removesuffix(".png")]
    assert pd.isna(row["follow_up"]) and pd.isna(row["original_width"])
    write_index(index, tmp_path / "tables")
