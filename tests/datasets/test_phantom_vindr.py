"""The phantom VinDr-CXR follows docs/formats.md: CSV headers, DICOMs, 3 readers, both layouts, stability."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom import uid

from cxrlab.datasets.phantom import (
    DEIDENTIFIED_KEYWORDS,
    LOSSLESS_SYNTAXES,
    MARKER,
    TRANSFER_SYNTAXES,
    make_vindr,
)
from cxrlab.errors import CxrlabError
from cxrlab.taxonomy import VINDR, VINDR_CHALLENGE

# Headers as docs/formats.md writes them (typed here, not taken from the code under test).
LOCAL_AND_GLOBAL = (
    "Aortic enlargement,Atelectasis,Cardiomegaly,Calcification,Clavicle fracture,Consolidation,Edema,"
    "Emphysema,Enlarged PA,ILD,Infiltration,Lung cavity,Lung cyst,Lung Opacity,Mediastinal shift,"
    "Nodule/Mass,Pleural effusion,Pleural thickening,Pneumothorax,Pulmonary fibrosis,Rib fracture,"
    "Other lesion,COPD,Lung tumor,Pneumonia,Tuberculosis"
)
HEADERS = {
    "annotations/annotations_train.csv": "image_id,rad_id,class_name,x_min,y_min,x_max,y_max",
    "annotations/annotations_test.csv": "image_id,class_name,x_min,y_min,x_max,y_max",
    "annotations/image_labels_train.csv": f"image_id,rad_id,{LOCAL_AND_GLOBAL},Other diseases,No finding",
    "annotations/image_labels_test.csv": f"image_id,{LOCAL_AND_GLOBAL},Other disease,No finding",
}
CHALLENGE_HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max"


def _first_line(path: Path) -> str:
    return path.read_bytes().split(b"\n", 1)[0].decode()


@pytest.mark.parametrize("rel", list(HEADERS), ids=lambda r: Path(r).stem)
def test_csv_headers_match_formats_exactly(vindr_phantom: Path, rel: str) -> None:
    assert _first_line(vindr_phantom / rel) == HEADERS[rel]
    df = pd.read_csv(vindr_phantom / rel)
    assert len(df) > 0 and list(df.columns) == HEADERS[rel].split(",")


def test_layout_ids_and_readers(vindr_phantom: Path) -> None:
    train_files = sorted((vindr_phantom / "train").glob("*.dicom"))
    test_files = sorted((vindr_phantom / "test").glob("*.dicom"))
    assert len(train_files) + len(test_files) == 12 and test_files and train_files
    ann = pd.read_csv(vindr_phantom / "annotations/annotations_train.csv")
    labels = pd.read_csv(vindr_phantom / "annotations/image_labels_train.csv")
    assert set(ann.image_id) == {p.stem for p in train_files}
    assert all(re.fullmatch(r"[0-9a-f]{32}", p.stem) for p in train_files + test_files)
    readers = ann.groupby("image_id").rad_id.nunique()
    assert (readers == 3).all()
    assert ann.rad_id.str.fullmatch(r"R([1-9]|1[0-7])").all()
    assert (labels.groupby("image_id").size() == 3).all()
    # image labels agree with the boxes: every (image, reader, class) of the annotations is flagged 1
    for row in ann.itertuples():
        flagged = labels[(labels.image_id == row.image_id) & (labels.rad_id == row.rad_id)][row.class_name]
        assert flagged.item() == 1
    assert set(ann.class_name) <= set(VINDR.labels)
    # readers disagree somewhere: not every image has identical label sets across its readers
    sets = ann.groupby(["image_id", "rad_id"]).class_name.apply(frozenset).groupby("image_id").nunique()
    assert (sets > 1).any()


def test_boxes_and_image_level_rows(vindr_phantom: Path) -> None:
    ann = pd.read_csv(vindr_phantom / "annotations/annotations_train.csv")
    boxed = ann.dropna(subset=["x_min"])
    unboxed = ann[ann.x_min.isna()]
    assert (boxed.x_max > boxed.x_min).all() and (boxed.y_max > boxed.y_min).all()
    assert set(unboxed.class_name) <= set(VINDR.global_labels)
    assert set(boxed.class_name) <= set(VINDR.local)
    assert unboxed[["y_min", "x_max", "y_max"]].isna().all().all()
    test = pd.read_csv(vindr_phantom / "annotations/annotations_test.csv")
    assert "rad_id" not in test.columns
    test_ids = {p.stem for p in (vindr_phantom / "test").glob("*.dicom")}
    assert set(test.image_id) == test_ids
    test_labels = pd.read_csv(vindr_phantom / "annotations/image_labels_test.csv")
    assert sorted(test_labels.image_id) == sorted(test_ids)


def test_dicoms_open_decode_and_vary(vindr_phantom: Path) -> None:
    seen = {"syntax": set(), "photometric": set(), "bits": set(), "multiwindow": 0, "voilut": 0, "sex": 0}
    for path in sorted(vindr_phantom.glob("*/*.dicom")):
        ds = pydicom.dcmread(path)
        image_id = hashlib.md5(str(ds.SOPInstanceUID).encode()).hexdigest()
        assert image_id == path.stem
        assert {e.keyword for e in ds} <= DEIDENTIFIED_KEYWORDS
        assert "PatientName" not in ds and "PatientID" not in ds and "StudyDate" not in ds
        if "TransferSyntaxUID" not in ds.file_meta:  # the real release's quirk: infer it
            ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
        arr = ds.pixel_array
        assert arr.shape == (ds.Rows, ds.Columns)
        assert int(arr.max()) < (1 << ds.BitsStored)
        assert 0.75 < ds.Rows / 256 < 1.3 and 0.75 < ds.Columns / 256 < 1.3
        seen["syntax"].add(ds.file_meta.TransferSyntaxUID)
        seen["photometric"].add(ds.PhotometricInterpretation)
        seen["bits"].add(int(ds.BitsStored))
        seen["multiwindow"] += "WindowCenter" in ds and ds["WindowCenter"].VM > 1
        seen["voilut"] += "VOILUTSequence" in ds
        seen["sex"] += "PatientSex" in ds
    assert {uid.ExplicitVRLittleEndian, uid.JPEG2000Lossless} <= seen["syntax"]
    assert seen["syntax"] & {uid.RLELossless, uid.JPEGLSLossless, uid.JPEGLosslessSV1}
    assert seen["photometric"] == {"MONOCHROME1", "MONOCHROME2"}
    assert min(seen["bits"]) <= 12 and max(seen["bits"]) >= 14
    assert seen["multiwindow"] and seen["voilut"] and 0 < seen["sex"] < 12


def test_monochrome1_stores_inverted_values(vindr_phantom: Path) -> None:
    """Lungs are dark on screen: stored low in MONOCHROME2 and high in MONOCHROME1."""
    for path in sorted(vindr_phantom.glob("*/*.dicom")):
        ds = pydicom.dcmread(path)
        if "TransferSyntaxUID" not in ds.file_meta or ds.file_meta.TransferSyntaxUID not in LOSSLESS_SYNTAXES:
            continue
        arr = ds.pixel_array.astype(float) / ((1 << ds.BitsStored) - 1)
        r, c = arr.shape
        lung = arr[int(0.35 * r) : int(0.5 * r), int(0.22 * c) : int(0.32 * c)].mean()
        spine = arr[int(0.35 * r) : int(0.5 * r), int(0.48 * c) : int(0.52 * c)].mean()
        if ds.PhotometricInterpretation == "MONOCHROME2":
            assert lung < spine, path.name
        else:
            assert lung > spine, path.name


def test_truth_boxes_lie_on_bright_lesions(vindr_phantom: Path) -> None:
    """A true nodule/calcification box is clearly brighter on screen than the ring around it."""
    truth = pd.read_csv(vindr_phantom / "phantom_truth.csv")
    checked = 0
    for row in truth.dropna(subset=["x_min"]).itertuples():
        if row.label not in ("Nodule/Mass", "Calcification"):
            continue
        path = next(vindr_phantom.glob(f"*/{row.image_id}.dicom"))
        ds = pydicom.dcmread(path)
        if "TransferSyntaxUID" not in ds.file_meta:
            ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
        arr = ds.pixel_array.astype(float)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            arr = ((1 << ds.BitsStored) - 1) - arr
        x0, y0, x1, y1 = (round(v) for v in (row.x_min, row.y_min, row.x_max, row.y_max))
        w, h = x1 - x0, y1 - y0
        cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
        inner = arr[cy - h // 4 : cy + h // 4 + 1, cx - w // 4 : cx + w // 4 + 1].mean()
        ring = np.concatenate(
            [arr[max(0, y0 - h // 2) : y0, x0:x1].ravel(), arr[y1 : y1 + h // 2, x0:x1].ravel()]
        ).mean()
        scale = (1 << ds.BitsStored) - 1
        assert (inner - ring) / scale > 0.04, (row.label, path.name)
        checked += 1
    assert checked > 0


def test_challenge_layout(vindr_phantom_challenge: Path, vindr_phantom: Path) -> None:
    root = vindr_phantom_challenge
    assert _first_line(root / "train.csv") == CHALLENGE_HEADER
    assert _first_line(root / "sample_submission.csv") == "image_id,PredictionString"
    assert not (root / "annotations").exists()
    df = pd.read_csv(root / "train.csv")
    assert (df.groupby("image_id").rad_id.nunique() == 3).all()
    for row in df.itertuples():
        assert VINDR_CHALLENGE.class_id(row.class_name) == row.class_id
    normal = df[df.class_id == 14]
    assert (normal.class_name == "No finding").all() and normal.x_min.isna().all()
    boxed = df[df.class_id != 14]
    assert (boxed[["x_min", "y_min", "x_max", "y_max"]] >= 0).all().all()
    assert (boxed.x_min == boxed.x_min.round()).all()
    sub = pd.read_csv(root / "sample_submission.csv")
    assert set(sub.image_id) == {p.stem for p in (root / "test").glob("*.dicom")}
    assert (sub.PredictionString == "14 1 0 0 1 1").all()
    # the same seed draws the same images in both layouts
    assert sorted(p.name for p in (root / "train").iterdir()) == sorted(
        p.name for p in (vindr_phantom / "train").iterdir()
    )


def test_consensus_is_closer_to_truth_than_readers(vindr_phantom: Path) -> None:
    truth = pd.read_csv(vindr_phantom / "phantom_truth.csv").dropna(subset=["x_min"])
    test = pd.read_csv(vindr_phantom / "annotations/annotations_test.csv").dropna(subset=["x_min"])
    train = pd.read_csv(vindr_phantom / "annotations/annotations_train.csv").dropna(subset=["x_min"])
    cols = ["x_min", "y_min", "x_max", "y_max"]

    def error(df: pd.DataFrame) -> float:
        errs = []
        for row in df.itertuples():
            cand = truth[truth.image_id == row.image_id][cols].to_numpy()
            if len(cand):
                errs.append(np.abs(cand - np.array([getattr(row, c) for c in cols])).sum(axis=1).min())
        return float(np.median(errs))

    assert len(test) and error(test) < error(train)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = make_vindr(tmp_path / "a", images=4, seed=5, size=96)
    b = make_vindr(tmp_path / "b", images=4, seed=5, size=96)
    c = make_vindr(tmp_path / "c", images=4, seed=6, size=96)

    def digest(root: Path) -> dict[str, str]:
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    assert digest(a.root) == digest(b.root)
    assert set(digest(a.root).values()).isdisjoint(
        v for k, v in digest(c.root).items() if k.endswith(".dicom")
    )
    assert len(a.files) == len(json.loads((a.root / MARKER).read_text())["files"])


def test_refuses_foreign_folder_and_replaces_own(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(CxrlabError, match="not empty"):
        make_vindr(tmp_path, images=2, size=96)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    out = tmp_path / "v"
    make_vindr(out, images=5, size=96)
    make_vindr(out, images=2, size=96)  # a previous phantom of the same kind is replaced
    assert len(list(out.glob("*/*.dicom"))) == 2
    with pytest.raises(CxrlabError, match="vindr-physionet phantom"):
        make_vindr(out, images=2, size=96, layout="challenge")


def test_missing_pixel_data_option(tmp_path: Path) -> None:
    res = make_vindr(tmp_path / "v", images=4, size=96, missing_pixel_data=1, test_fraction=0.25)
    lacking = [p for p in res.root.glob("train/*.dicom") if "PixelData" not in pydicom.dcmread(p)]
    assert len(lacking) == 1


def test_every_listed_syntax_is_used_over_enough_images(tmp_path: Path) -> None:
    res = make_vindr(tmp_path / "v", images=16, size=64, test_fraction=0.0)
    used = set(res.summary["transfer syntaxes"])
    assert {"explicit_le", "j2k_lossless", "rle", "jpegls_lossless", "jpeg_lossless_sv1"} <= used
    assert used <= set(TRANSFER_SYNTAXES)
