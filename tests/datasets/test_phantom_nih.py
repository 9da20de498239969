"""The phantom NIH ChestX-ray14 follows docs/formats.md: archives, quirky CSV headers, patient lists, MD5s."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrlab.datasets.phantom import make_nih
from cxrlab.errors import CxrlabError
from cxrlab.taxonomy import NIH

DATA_ENTRY = (
    "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],"
)
BBOX = "Image Index,Finding Label,Bbox [x,y,w,h],,,"


def _first_line(path: Path) -> str:
    return path.read_bytes().split(b"\n", 1)[0].decode()


def _members(root: Path) -> dict[str, bytes]:
    out = {}
    for archive in sorted(root.glob("images_*.tar.gz")):
        with tarfile.open(archive, "r:gz") as tar:
            for m in tar.getmembers():
                if m.isfile():
                    f = tar.extractfile(m)
                    assert f is not None
                    out[m.name] = f.read()
    return out


def test_files_and_headers(nih_phantom: Path) -> None:
    names = sorted(p.name for p in nih_phantom.iterdir() if not p.name.startswith("."))
    assert names == [
        "BBox_List_2017.csv",
        "Data_Entry_2017.csv",
        "images_001.tar.gz",
        "images_002.tar.gz",
        "images_003.tar.gz",
        "images_md5.txt",
        "phantom_truth.csv",
        "test_list.txt",
        "train_val_list.txt",
    ]
    assert _first_line(nih_phantom / "Data_Entry_2017.csv") == DATA_ENTRY
    assert _first_line(nih_phantom / "BBox_List_2017.csv") == BBOX
    entry = pd.read_csv(nih_phantom / "Data_Entry_2017.csv")
    assert len(entry) == 30
    assert len(entry.columns) == 12 and entry.iloc[:, -1].isna().all()  # the trailing comma's empty column
    assert entry["Image Index"].str.fullmatch(r"\d{8}_\d{3}\.png").all()
    assert (entry["Image Index"].str[:8].astype(int) == entry["Patient ID"]).all()
    assert (entry["Image Index"].str[9:12].astype(int) == entry["Follow-up #"]).all()
    assert set(entry["View Position"]) <= {"PA", "AP"}
    labels = {lab for cell in entry["Finding Labels"] for lab in cell.split("|")}
    assert labels <= set(NIH.findings) | {"No Finding"}
    assert entry.groupby("Patient ID").size().max() > 1  # follow-ups


def test_archives_hold_images_pngs(nih_phantom: Path) -> None:
    members = _members(nih_phantom)
    entry = pd.read_csv(nih_phantom / "Data_Entry_2017.csv")
    assert sorted(members) == sorted(f"images/{n}" for n in entry["Image Index"])
    modes = set()
    for name, data in members.items():
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint8 and img.shape[:2] == (256, 256), name
        modes.add(img.ndim == 3 and img.shape[2] == 4)
    assert modes == {True, False}  # a few RGBA among the grey ones
    with tarfile.open(nih_phantom / "images_001.tar.gz", "r:gz") as tar:
        assert all(m.name.startswith("images") and m.uid == 0 and m.mtime > 0 for m in tar.getmembers())


def test_md5_list_matches_archives(nih_phantom: Path) -> None:
    lines = (nih_phantom / "images_md5.txt").read_text().splitlines()
    assert len(lines) == 3
    for line in lines:
        m = re.fullmatch(r"([0-9a-f]{32})  (images_\d{3}\.tar\.gz)", line)
        assert m, line
        assert hashlib.md5((nih_phantom / m.group(2)).read_bytes()).hexdigest() == m.group(1)


def test_lists_split_by_patient(nih_phantom: Path) -> None:
    train = (nih_phantom / "train_val_list.txt").read_text().split("\n")
    test = (nih_phantom / "test_list.txt").read_text().split("\n")
    assert train and test and all(train) and all(test)
    entry = pd.read_csv(nih_phantom / "Data_Entry_2017.csv")
    assert sorted(train + test) == sorted(entry["Image Index"])
    assert not {n[:8] for n in train} & {n[:8] for n in test}


def test_bbox_list(nih_phantom: Path) -> None:
    boxes = pd.read_csv(nih_phantom / "BBox_List_2017.csv")
    assert list(boxes.columns[:6]) == ["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"]
    assert len(boxes.columns) == 9 and boxes.iloc[:, 6:].isna().all().all()
    assert len(boxes) > 0
    assert set(boxes["Finding Label"]) <= {
        "Atelectasis", "Cardiomegaly", "Effusion", "Infiltrate", "Mass", "Nodule", "Pneumonia", "Pneumothorax"
    }  # fmt: skip
    test = set((nih_phantom / "test_list.txt").read_text().split("\n"))
    assert set(boxes["Image Index"]) <= test
    entry = pd.read_csv(nih_phantom / "Data_Entry_2017.csv").set_index("Image Index")
    for row in boxes.itertuples(index=False):
        spelled = "Infiltration" if row[1] == "Infiltrate" else row[1]
        assert spelled in entry.loc[row[0], "Finding Labels"].split("|")
        assert row[4] > 0 and row[5] > 0


def test_truth_boxes_lie_on_drawn_nodules(nih_phantom: Path) -> None:
    truth = pd.read_csv(nih_phantom / "phantom_truth.csv")
    members = _members(nih_phantom)
    checked = 0
    for row in truth.dropna(subset=["x_min"]).itertuples():
        if row.label not in ("Nodule", "Mass", "Effusion"):
            continue
        img = cv2.imdecode(np.frombuffer(members[f"images/{row.image_id}"], np.uint8), cv2.IMREAD_GRAYSCALE)
        x0, y0, x1, y1 = (round(v) for v in (row.x_min, row.y_min, row.x_max, row.y_max))
        inside = img[y0:y1, x0:x1].astype(float)
        above = img[max(0, y0 - (y1 - y0)) : y0, x0:x1].astype(float)
        assert inside.mean() > above.mean() + 8, (row.image_id, row.label)
        checked += 1
    assert checked > 0


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = make_nih(tmp_path / "a", images=6, seed=3, size=64, archives=2)
    b = make_nih(tmp_path / "b", images=6, seed=3, size=64, archives=2)
    c = make_nih(tmp_path / "c", images=6, seed=4, size=64, archives=2)
    for name in ("images_001.tar.gz", "images_002.tar.gz", "Data_Entry_2017.csv", "images_md5.txt"):
        assert (a.root / name).read_bytes() == (b.root / name).read_bytes(), name
    assert (a.root / "images_001.tar.gz").read_bytes() != (c.root / "images_001.tar.gz").read_bytes()
    # the gzip header carries no file name and no time stamp
    head = (a.root / "images_001.tar.gz").read_bytes()[:10]
    assert head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0"


def test_archive_is_streamable(nih_phantom: Path) -> None:
    data = (nih_phantom / "images_002.tar.gz").read_bytes()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
        assert sum(1 for m in tar if m.isfile()) == 10


def test_refuses_a_vindr_folder(tmp_path: Path, vindr_phantom: Path) -> None:
    with pytest.raises(CxrlabError, match="not empty"):
        make_nih(vindr_phantom, images=2, size=64)
    with pytest.raises(CxrlabError, match="archives"):
        make_nih(tmp_path / "n", images=2, size=64, archives=3)
