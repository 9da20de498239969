"""Exports: COCO loads in pycocotools, YOLO has the layout detectors read, the release CSVs round-trip."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlab.cli.main import app
from cxrlab.datasets.vindr import index_vindr
from cxrlab.errors import CxrlabError
from cxrlab.labels.consensus import consensus
from cxrlab.labels.export import export
from cxrlab.tables import BOX_COLUMNS, conform_findings, conform_images, save_tables
from cxrlab.taxonomy import VINDR_CHALLENGE

A, B, C = "a" * 32, "b" * 32, "c" * 32


def tables(width: float | None = 1000, height: float | None = 800):
    images = conform_images(
        pd.DataFrame(
            {
                "image_id": [A, B, C],
                "dataset": "vindr",
                "split": ["train", "train", "test"],
                "patient_id": None,
                "path": [f"train/{A}.dicom", f"train/{B}.dicom", f"test/{C}.dicom"],
                "width": width,
                "height": height,
                "sex": None,
                "age": None,
                "view": "PA",
            }
        )
    )
    rows = [
        (A, "consensus", "Cardiomegaly", 100.0, 200.0, 500.0, 600.0),
        (A, "consensus", "Nodule/Mass", 10.5, 20.25, 30.0, 60.0),
        (A, "consensus", "COPD", np.nan, np.nan, np.nan, np.nan),
        (B, "consensus", "No finding", np.nan, np.nan, np.nan, np.nan),
        (C, "consensus", "Aortic enlargement", 300.0, 100.0, 400.0, 300.0),
        (A, "R1", "Cardiomegaly", 90.0, 190.0, 510.0, 610.0),
    ]
    f = pd.DataFrame(rows, columns=["image_id", "reader", "label", *BOX_COLUMNS]).assign(score=1.0)
    return images, conform_findings(f)


def test_coco_loads_in_pycocotools_and_scores_itself_perfectly(tmp_path: Path) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, findings = tables()
    res = export(images, findings, "coco", tmp_path)
    coco = COCO(str(tmp_path / "annotations.json"))
    assert len(coco.getImgIds()) == 3
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == 3  # consensus boxes only (default reader), image-level rows left out
    cats = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert cats[VINDR_CHALLENGE.class_ids["Cardiomegaly"] + 1] == "Cardiomegaly"
    cardio = next(a for a in anns if cats[a["category_id"]] == "Cardiomegaly")
    assert cardio["bbox"] == [100.0, 200.0, 400.0, 400.0] and cardio["area"] == 160000.0
    assert cardio["iscrowd"] == 0
    img = coco.loadImgs(cardio["image_id"])[0]
    assert (img["width"], img["height"], img["file_name"]) == (1000, 800, f"train/{A}.dicom")
    # The annotations as detections score AP 1 against themselves: the bbox convention is what COCO expects.
    dets = coco.loadRes([{**a, "score": 1.0} for a in anns])
    ev = COCOeval(coco, dets, "bbox")
    ev.params.areaRng = [[0, 1e10]] * 4
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    assert ev.stats[0] == pytest.approx(1.0)
    classes = json.loads((tmp_path / "classes.json").read_text())
    assert classes["class_set"] == "vindr-challenge" and classes["id_offset"] == 1
    assert (tmp_path / "classes.txt").read_text().splitlines()[0] == "Aortic enlargement"
    assert res.counts["boxes"] == 3


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc", "vindr-csv", "challenge-csv"])
def test_images_without_a_split_export(tmp_path: Path, fmt: str) -> None:
    """The schema allows a missing split (an NIH image in neither list): every format still exports it,
    as a training image where the format needs a split."""
    images, findings = tables()
    images["split"] = pd.Series([pd.NA, "train", "test"], dtype="string")
    result = export(images, findings, fmt, tmp_path / fmt)
    assert result.files
    if fmt == "coco":
        coco = json.loads((tmp_path / fmt / "annotations.json").read_text())
        first = next(i for i in coco["images"] if i["image_id"] == A)
        assert first["split"] is None
        assert len([a for a in coco["annotations"] if a["image_id"] == first["id"]]) == 2
    if fmt == "vindr-csv":
        train = pd.read_csv(tmp_path / fmt / "annotations" / "annotations_train.csv")
        assert A in set(train["image_id"])
    if fmt == "challenge-csv":
        train = pd.read_csv(tmp_path / fmt / "train.csv")
        assert A in set(train["image_id"])


def test_coco_with_unknown_sizes_says_so(tmp_path: Path) -> None:
    images, findings = tables(width=None, height=None)
    res = export(images, findings, "coco", tmp_path)
    assert any("sizes unknown" in n for n in res.notes)
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert data["images"][0]["width"] is None


def test_yolo_layout_and_normalised_coordinates(tmp_path: Path) -> None:
    images, findings = tables()
    export(images, findings, "yolo", tmp_path)
    label_a = tmp_path / "labels" / "train" / f"{A}.txt"
    assert label_a.is_file() and (tmp_path / "labels" / "test" / f"{C}.txt").is_file()
    assert (tmp_path / "labels" / "train" / f"{B}.txt").read_text() == ""  # a negative image: empty file
    assert (tmp_path / "images" / "train").is_dir()
    lines = [line.split() for line in label_a.read_text().splitlines()]
    assert all(len(p) == 5 for p in lines)
    by_class = {int(p[0]): [float(x) for x in p[1:]] for p in lines}
    cid = VINDR_CHALLENGE.class_ids["Cardiomegaly"]
    xc, yc, w, h = by_class[cid]
    assert (xc, yc, w, h) == pytest.approx((300 / 1000, 400 / 800, 400 / 1000, 400 / 800))
    assert all(0 <= v <= 1 for p in by_class.values() for v in p)
    import yaml  # dask's dependency; what detection libraries parse data.yaml with

    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["train"] == "images/train" and data["val"] == "images/test"
    assert data["names"][cid] == "Cardiomegaly" and data["nc"] == 14
    assert Path(data["path"]).is_absolute()


def test_yolo_needs_sizes(tmp_path: Path) -> None:
    images, findings = tables(width=None, height=None)
    with pytest.raises(CxrlabError, match=r"^converted is needed: YOLO normalises boxes by the image size"):
        export(images, findings, "yolo", tmp_path)


def test_voc_xml(tmp_path: Path) -> None:
    images, findings = tables()
    export(images, findings, "voc", tmp_path)
    root = ET.parse(tmp_path / "Annotations" / f"{A}.xml").getroot()
    assert root.findtext("size/width") == "1000" and root.findtext("size/height") == "800"
    objs = {o.findtext("name"): o for o in root.iter("object")}
    assert set(objs) == {"Cardiomegaly", "Nodule/Mass"}
    box = objs["Cardiomegaly"].find("bndbox")
    assert [box.findtext(t) for t in ("xmin", "ymin", "xmax", "ymax")] == ["100", "200", "500", "600"]
    assert (tmp_path / "ImageSets" / "Main" / "train.txt").read_text().split() == [A, B]


def test_manifest_coordinates(tmp_path: Path) -> None:
    images, findings = tables()
    conv = tmp_path / "conv"
    conv.mkdir()
    pd.DataFrame(
        {
            "image_id": [A, B, C],
            "width": [500, 500, 256],
            "height": [400, 400, 256],
            "scale_x": [0.5, 0.5, 0.256],
            "scale_y": [0.5, 0.5, 0.32],
            "pad_x": [0, 0, 0],
            "pad_y": [0, 0, 0],
            "output": [f"{A}.png", f"{B}.png", f"{C}.png"],
        }
    ).to_csv(conv / "manifest.csv", index=False)
    for i in (A, B, C):
        (conv / f"{i}.png").write_bytes(b"png")
    export(images, findings, "coco", tmp_path / "coco", converted=conv)
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    img = next(i for i in data["images"] if i["image_id"] == A)
    assert (img["width"], img["height"], img["file_name"]) == (500, 400, f"{A}.png")
    cardio = next(a for a in data["annotations"] if a["image_id"] == img["id"] and a["category_id"] == 4)
    assert cardio["bbox"] == [50.0, 100.0, 200.0, 200.0]
    export(images, findings, "yolo", tmp_path / "yolo", converted=conv)
    link = tmp_path / "yolo" / "images" / "train" / f"{A}.png"
    assert link.is_symlink() and link.read_bytes() == b"png"


def _physionet_labels(root: Path) -> Path:
    ann = root / "annotations"
    ann.mkdir(parents=True)
    (ann / "annotations_train.csv").write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        f"{A},R1,Cardiomegaly,100.25,200,300.5,400\n{A},R2,Cardiomegaly,110,210,310,395\n"
        f"{A},R3,Nodule/Mass,0.1,30,40,60\n{A},R3,Emphysema,,,,\n{B},R1,No finding,,,,\n"
        f"{B},R2,No finding,,,,\n"
        f"{B},R4,No finding,,,,\n"
    )
    (ann / "image_labels_train.csv").write_text(
        f"image_id,rad_id,Cardiomegaly,COPD,Other diseases,No finding\n{A},R1,1,1,0,0\n{A},R2,1,0,1,0\n"
    )
    (ann / "annotations_test.csv").write_text(
        f"image_id,class_name,x_min,y_min,x_max,y_max\n{C},Aortic enlargement,1,2,30,40\n"
    )
    (ann / "image_labels_test.csv").write_text(f"image_id,Aortic enlargement,Other disease\n{C},1,1\n")
    return root


def test_vindr_csv_round_trip(tmp_path: Path) -> None:
    first = index_vindr(_physionet_labels(tmp_path / "v"))
    export(first.images, first.findings, "vindr-csv", tmp_path / "out")
    header = (tmp_path / "out" / "annotations" / "image_labels_test.csv").read_text().splitlines()[0]
    assert "Other disease," in header + "," and "Other diseases" not in header
    again = index_vindr(tmp_path / "out")
    pd.testing.assert_frame_equal(first.images, again.images)
    pd.testing.assert_frame_equal(first.findings, again.findings)


def test_vindr_csv_round_trip_with_consensus(tmp_path: Path) -> None:
    first = index_vindr(_physionet_labels(tmp_path / "v"))
    fused = consensus(first.images, first.findings).findings.drop(columns="n_readers")
    export(first.images, fused, "vindr-csv", tmp_path / "out")
    again = index_vindr(tmp_path / "out")
    # The release files carry no score: the consensus's support fraction comes back as 1.0.
    assert (fused["score"] < 1).any()
    pd.testing.assert_frame_equal(fused.assign(score=1.0), again.findings)


def test_challenge_csv_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "c"
    root.mkdir()
    (root / "train.csv").write_text(
        "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
        f"{A},Aortic enlargement,0,R9,691,1375,1653,1831\n{A},Aortic enlargement,0,R10,700,1380,1650,1840\n"
        f"{A},Cardiomegaly,3,R10,500,1600,1800,2000\n{A},No finding,14,R8,,,,\n{B},No finding,14,R1,,,,\n"
        f"{B},No finding,14,R2,,,,\n{B},No finding,14,R3,,,,\n"
    )
    first = index_vindr(root)
    export(first.images, first.findings, "challenge-csv", tmp_path / "out")
    again = index_vindr(tmp_path / "out")
    pd.testing.assert_frame_equal(first.images, again.images)
    pd.testing.assert_frame_equal(first.findings, again.findings)


def test_challenge_csv_leaves_out_other_labels_and_fills_no_finding(tmp_path: Path) -> None:
    first = index_vindr(_physionet_labels(tmp_path / "v"))
    res = export(first.images, first.findings, "challenge-csv", tmp_path / "out")
    out = pd.read_csv(tmp_path / "out" / "train.csv")
    assert set(out["class_name"]) <= set(VINDR_CHALLENGE.labels)
    assert "Emphysema" not in set(out["class_name"]) and any("left out" in n for n in res.notes)
    assert (out["class_id"] == out["class_name"].map(VINDR_CHALLENGE.class_ids)).all()
    assert len(out[(out["image_id"] == B)]) == 3


def test_cli_export_json(tmp_path: Path) -> None:
    images, findings = tables()
    save_tables(tmp_path / "t", images, findings)
    res = CliRunner().invoke(
        app,
        [
            "export",
            str(tmp_path / "t"),
            "--format",
            "coco",
            "--out",
            str(tmp_path / "o"),
            "--reader",
            "R1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    payload = json.loads(res.output)
    assert payload["counts"]["boxes"] == 1


def test_export_agrees_with_cxrlab_convert(vindr_phantom: Path, tmp_path: Path) -> None:
    """--images with a real `cxrlab convert` folder: the same boxes as convert's own rescaled findings."""
    from cxrlab.imaging.convert import ConvertOptions, convert

    idx = index_vindr(vindr_phantom)
    save_tables(tmp_path / "t", idx.images, idx.findings)
    convert(tmp_path / "t", tmp_path / "conv", ConvertOptions(size=64), root=vindr_phantom)
    export(
        idx.images, idx.findings, "coco", tmp_path / "coco", converted=tmp_path / "conv", readers=["R9", "R8"]
    )
    data = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    assert data["annotations"] and all((i["width"], i["height"]) == (64, 64) for i in data["images"])
    assert all((tmp_path / "conv" / i["file_name"]).is_file() for i in data["images"])
    ids = {i["id"]: i["image_id"] for i in data["images"]}
    ours = sorted((ids[a["image_id"]], a["reader"], *np.round(a["bbox"], 4)) for a in data["annotations"])
    theirs = pd.read_parquet(tmp_path / "conv" / "findings.parquet")
    theirs = theirs[theirs["reader"].isin(["R9", "R8"])].dropna(subset=["x_min"])
    expected = sorted(
        (r.image_id, r.reader, *np.round([r.x_min, r.y_min, r.x_max - r.x_min, r.y_max - r.y_min], 4))
        for r in theirs.itertuples()
    )
    assert ours == expected
