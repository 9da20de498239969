"""Indexing VinDr-CXR: both layouts, label files alone or with DICOM headers, every reported inconsistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlab.cli.main import app
from cxrlab.datasets.phantom.dicom_writer import DicomSpec, write_dicom
from cxrlab.datasets.vindr import detect_layout, index_vindr, parse_age, read_header
from cxrlab.errors import CxrlabError
from cxrlab.tables import load_tables, validate_findings, validate_images

A = "a" * 32
B = "b" * 32
C = "c" * 32
T = "d" * 32
HEADER_TRAIN = "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
LABELS_28 = [
    "Aortic enlargement",
    "Atelectasis",
    "Cardiomegaly",
    "Calcification",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung cavity",
    "Lung cyst",
    "Lung Opacity",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
    "Other lesion",
    "COPD",
    "Lung tumor",
    "Pneumonia",
    "Tuberculosis",
    "Other diseases",
    "No finding",
]


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def label_row(image_id: str, reader: str | None, positives: set[str], columns: list[str]) -> str:
    cells = ["1" if c in positives else "0" for c in columns]
    return ",".join([image_id, *([reader] if reader else []), *cells]) + "\n"


def physionet(root: Path, *, dicoms: dict[str, tuple[int, int]] | None = None, sex_age=None) -> Path:
    """A hand-written PhysioNet release: 3 training images, 1 test image, quirks on purpose."""
    write(
        root / "annotations" / "annotations_train.csv",
        HEADER_TRAIN
        + f"{A},R1,Cardiomegaly,100.5,200,300,400\n"
        + f"{A},R2,Cardiomegaly,110,210,310,395\n"
        + f"{A},R3,No finding,,,,\n"
        + f"{A},R3,Nodule/Mass,-4.2,30,40,60\n"  # partly outside: clipped
        + f"{B},R1,No finding,,,,\n"
        + f"{B},R2,No finding,,,,\n"
        + f"{B},R4,no finding,,,,\n"  # 4 readers; lower-case spelling
        + f"{B},R5,Pleural effusion,50,50,40,60\n"  # x_max <= x_min
        + f"{C},R1,Lung Opacity,10,10,20,20\n"
        + f"{C},R1,Lung Opacity,10,10,20,20\n"  # exact duplicate
        + f"{C},R2,Other lesion,5000,10,5100,20\n"  # outside a 600-wide image
        + f"{C},R3,No finding,,,,\n",
    )
    cols = LABELS_28
    write(
        root / "annotations" / "image_labels_train.csv",
        "image_id,rad_ID,"
        + ",".join(cols)
        + "\n"  # the real file's rad_ID spelling
        + label_row(A, "R1", {"Cardiomegaly", "COPD"}, cols)
        + label_row(A, "R2", {"Cardiomegaly"}, cols)
        + label_row(A, "R3", {"Nodule/Mass", "No finding"}, cols)
        + label_row(C, "R1", {"Lung Opacity", "Emphysema"}, cols)  # Emphysema ticked without a box
        + label_row(C, "R2", set(), cols)  # Other lesion not ticked
        + label_row(C, "R3", {"No finding"}, cols),
    )
    test_cols = ["Other disease" if c == "Other diseases" else c for c in cols]
    write(
        root / "annotations" / "annotations_test.csv",
        "image_id,class_name,x_min,y_min,x_max,y_max\n" + f"{T},Aortic enlargement,1,2,30,40\n",
    )
    write(
        root / "annotations" / "image_labels_test.csv",
        "image_id,"
        + ",".join(test_cols)
        + "\n"
        + label_row(T, None, {"Aortic enlargement", "Other disease"}, test_cols),
    )
    for image_id, (rows, cols_) in (dicoms or {}).items():
        split = "test" if image_id == T else "train"
        sex, age = (sex_age or {}).get(image_id, (None, None))
        spec = DicomSpec(sex=sex, age=age, bits_stored=12)
        write_dicom(root / split / f"{image_id}.dicom", np.zeros((rows, cols_), np.uint16), spec)
    return root


def kinds(result) -> dict[str, int]:
    return {p.kind: p.count for p in result.problems}


def rows_of(f: pd.DataFrame, image_id: str, reader: str | None = None) -> pd.DataFrame:
    m = f["image_id"] == image_id
    if reader:
        m &= f["reader"] == reader
    return f[m]


def test_physionet_labels_alone(tmp_path: Path) -> None:
    root = physionet(tmp_path / "v")
    assert detect_layout(root) == "physionet"
    r = index_vindr(root)
    validate_images(r.images)
    validate_findings(r.findings, r.images)
    assert set(r.images["image_id"]) == {A, B, C, T}
    assert r.images.set_index("image_id")["split"].to_dict() == {
        A: "train",
        B: "train",
        C: "train",
        T: "test",
    }
    assert not r.sizes_known and r.images["width"].isna().all()
    assert any("sizes unknown" in n for n in r.notes)
    assert r.images["patient_id"].isna().all() and (r.images["view"] == "PA").all()
    f = r.findings
    k = kinds(r)
    # R3 on A: Nodule box and No finding -> No finding dropped, reported.
    assert set(rows_of(f, A, "R3")["label"]) == {"Nodule/Mass"}
    assert k["no-finding-conflict"] == 1
    # clipped at 0 (size unknown), reported.
    assert rows_of(f, A, "R3")["x_min"].iloc[0] == 0.0
    assert k["box-outside"] == 1
    # inverted box: label kept as image-level.
    eff = rows_of(f, B, "R5")
    assert eff["label"].tolist() == ["Pleural effusion"] and eff["x_min"].isna().all()
    assert k["box-inverted"] == 1
    # COPD from image labels as an image-level row of R1.
    copd = rows_of(f, A, "R1")
    assert set(copd["label"]) == {"Cardiomegaly", "COPD"}
    assert copd.loc[copd["label"] == "COPD", "x_min"].isna().all()
    # duplicate kept once; Emphysema ticked without box reported and kept; Other lesion not ticked reported.
    assert len(rows_of(f, C, "R1").query("label == 'Lung Opacity'")) == 1
    assert k["duplicate-row"] == 1
    assert k["tick-without-box-row"] == 1
    assert "Emphysema" in set(rows_of(f, C, "R1")["label"])
    assert k["box-label-not-ticked"] == 1
    # No size known: the box at x=5000 cannot be judged outside, it stays.
    assert rows_of(f, C, "R2")["x_min"].iloc[0] == 5000
    # 4 readers on B.
    assert k["reader-count"] == 1
    # test split: consensus reader, both spellings of Other disease(s).
    t = rows_of(f, T)
    assert set(t["reader"]) == {"consensus"}
    assert set(t["label"]) == {"Aortic enlargement", "Other diseases"}
    assert (f["score"] == 1.0).all()


def test_physionet_with_dicom_headers(tmp_path: Path) -> None:
    sizes = {A: (500, 400), C: (300, 600), T: (256, 256)}  # rows, cols; B has no DICOM
    root = physionet(tmp_path / "v", dicoms=sizes, sex_age={A: ("F", "045Y"), C: ("M", "006M")})
    r = index_vindr(root, workers=2)
    im = r.images.set_index("image_id")
    assert im.loc[A, "width"] == 400 and im.loc[A, "height"] == 500
    assert im.loc[C, "width"] == 600 and im.loc[T, "width"] == 256
    assert im.loc[A, "sex"] == "F" and im.loc[A, "age"] == 45
    assert im.loc[C, "age"] == pytest.approx(0.5)
    assert pd.isna(im.loc[T, "sex"]) and pd.isna(im.loc[B, "width"])
    assert im.loc[A, "has_dicom"] and not im.loc[B, "has_dicom"]
    assert im.loc[A, "bits_stored"] == 12 and im.loc[A, "photometric"] == "MONOCHROME2"
    k = kinds(r)
    assert k["dicom-missing"] == 1
    # C is 600 wide: the Other lesion box at x 5000 is entirely outside -> coordinates dropped, label kept.
    ol = rows_of(r.findings, C, "R2")
    assert ol["label"].tolist() == ["Other lesion"] and ol["x_min"].isna().all()
    assert k["box-off-image"] == 1


def test_upper_case_ids_are_one_image_with_its_dicom(tmp_path: Path) -> None:
    """An MD5 hex id means the same in any case: ids written in upper case in one label file (or a DICOM file
    name in upper case) must not split one image into a labelled image without its DICOM and a DICOM without
    labels; the id is lower-cased, the case change reported, and the path names the file as it is."""
    root = physionet(tmp_path / "v", dicoms={A: (64, 48), C: (70, 60)})
    labels = root / "annotations" / "image_labels_train.csv"
    labels.write_text(labels.read_text().replace(A, A.upper()))  # the box file keeps A in lower case
    (root / "train" / f"{C}.dicom").rename(root / "train" / f"{C.upper()}.dicom")
    r = index_vindr(root)
    assert sorted(r.images["image_id"]) == sorted([A, B, C, T])
    im = r.images.set_index("image_id")
    assert im.loc[A, "has_dicom"] and im.loc[A, "width"] == 48
    assert (
        im.loc[C, "has_dicom"]
        and im.loc[C, "width"] == 60
        and im.loc[C, "path"] == f"train/{C.upper()}.dicom"
    )
    assert set(r.findings["image_id"]) == {A, B, C, T}
    assert set(rows_of(r.findings, A, "R1")["label"]) == {"Cardiomegaly", "COPD"}
    k = kinds(r)
    assert "dicom-without-labels" not in k and "odd-image-id" not in k
    assert k["upper-case-id"] == 4  # the 3 label rows of A and the file name of C


def test_dicom_without_labels_and_header_quirks(tmp_path: Path) -> None:
    root = physionet(tmp_path / "v", dicoms={A: (64, 64)})
    extra = "e" * 32
    write_dicom(
        root / "train" / f"{extra}.dicom",
        np.zeros((70, 50), np.uint16),
        DicomSpec(omit_transfer_syntax_in_meta=True),
    )
    (root / "train" / f"{'f' * 32}.dicom").write_bytes(b"not a dicom at all")
    r = index_vindr(root)
    im = r.images.set_index("image_id")
    assert im.loc[extra, "width"] == 50 and im.loc[extra, "height"] == 70
    assert extra not in set(r.findings["image_id"])
    k = kinds(r)
    assert k["dicom-without-labels"] == 2
    assert k["unreadable-header"] == 1


def test_read_header_without_transfer_syntax(tmp_path: Path) -> None:
    path = tmp_path / "x.dicom"
    write_dicom(
        path, np.zeros((40, 30), np.uint16), DicomSpec(omit_transfer_syntax_in_meta=True, sex="M", age="010W")
    )
    h = read_header(path)
    assert h["error"] is None and (h["width"], h["height"]) == (30, 40) and h["sex"] == "M"
    assert parse_age(h["age_raw"]) == pytest.approx(70 / 365.25)


@pytest.mark.parametrize(
    ("text", "years"),
    [
        pytest.param("045Y", 45.0, id="years"),
        pytest.param("018M", 1.5, id="months"),
        pytest.param("014D", 14 / 365.25, id="days"),
        pytest.param("52", 52.0, id="bare-number"),
        pytest.param("", None, id="empty"),
        pytest.param("Y", None, id="unit-only"),
    ],
)
def test_parse_age(text: str, years: float | None) -> None:
    got = parse_age(text)
    assert np.isnan(got) if years is None else got == pytest.approx(years)


def test_unknown_label_is_an_error_with_a_near_match(tmp_path: Path) -> None:
    root = tmp_path / "v"
    write(root / "annotations" / "annotations_train.csv", HEADER_TRAIN + f"{A},R1,Cardiomegally,1,1,5,5\n")
    with pytest.raises(CxrlabError, match=r"Cardiomegally.*did you mean 'Cardiomegaly'"):
        index_vindr(root)
    r = index_vindr(root, allow_unknown=True)
    assert r.findings["label"].tolist() == ["Cardiomegally"]
    assert kinds(r)["unknown-label"] == 1


def challenge(root: Path) -> Path:
    write(
        root / "train.csv",
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        f"{A},Aortic enlargement,0,R9,691,1375,1653,1831\n"
        f"{A},Aortic enlargement,0,R10,700,1380,1650,1840\n"
        f"{A},Cardiomegaly,3,R10,500,1600,1800,2000\n"
        f"{A},No finding,14,R8,,,,\n"
        f"{B},No finding,14,R1,,,,\n"
        f"{B},No finding,14,R2,,,,\n"
        f"{B},Nodule/Mass,9,R3,10,10,50,50\n",  # class_id 9 is Other lesion: name wins
    )
    return root


def test_challenge_layout(tmp_path: Path) -> None:
    root = challenge(tmp_path / "c")
    assert detect_layout(root) == "challenge"
    r = index_vindr(root)
    assert r.layout == "challenge"
    assert (r.images["split"] == "train").all() and len(r.images) == 2
    assert kinds(r)["class-id-mismatch"] == 1
    assert rows_of(r.findings, B, "R3")["label"].tolist() == ["Nodule/Mass"]
    assert len(r.findings) == 7 and int(r.findings["x_min"].notna().sum()) == 4
    assert "reader-count" not in kinds(r)


def test_not_a_vindr_folder(tmp_path: Path) -> None:
    with pytest.raises(CxrlabError, match="not a VinDr-CXR folder"):
        index_vindr(tmp_path)


def test_missing_column_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "train.csv", "image_id,class_name,rad_id\nx,No finding,R1\n")
    with pytest.raises(CxrlabError, match=r"train.csv: missing column\(s\) x_min"):
        index_vindr(tmp_path)


def test_cli_index_writes_tables_and_report(tmp_path: Path) -> None:
    root = physionet(tmp_path / "v")
    out = tmp_path / "tables"
    res = CliRunner().invoke(app, ["vindr", "index", str(root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "Indexed 4 images" in res.output and "sizes unknown" in res.output
    assert "No finding" in res.output  # the conflict rule is listed
    t = load_tables(out)
    assert len(t.images) == 4
    assert (out / "vindr_index_report.json").is_file()
    res = CliRunner().invoke(app, ["vindr", "index", str(root), "--out", str(out), "--json"])
    assert res.exit_code == 0 and '"sizes_known": false' in res.output


def test_cli_unknown_label_exits_1_with_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "v"
    write(root / "annotations" / "annotations_train.csv", HEADER_TRAIN + f"{A},R1,Pneumonitis,1,1,5,5\n")
    proc = subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", "vindr", "index", str(root), "--out", str(tmp_path / "t")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "Pneumonitis" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "t").exists()
