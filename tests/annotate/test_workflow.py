"""The whole reading workflow through the real app, on SQLite and on a real PostgreSQL: projects, users,
imports (VinDr DICOMs, NIH PNGs), three blind readers, adjudication of a fusion, export read by the
labels, export and score commands."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
from tests.annotate.conftest import Api, add_users, truth_boxes
from typer.testing import CliRunner

from cxrlab.annotate import Database, create_app
from cxrlab.annotate.admin import find_project
from cxrlab.annotate.tables import export_project
from cxrlab.cli.main import app as cli
from cxrlab.tables import CONSENSUS, load_tables

READERS = ("r1", "r2", "r3")


def _setup(api, admin_name: str, source: Path, labels: str, test_readers: int = 3) -> int:
    r = api.post(
        "/api/projects", {"name": f"p-{labels}", "labels": labels, "readers": 3, "test_readers": test_readers}
    )
    assert r.status_code == 201, r.text
    pid = r.json()["id"]
    for name in (*READERS, "adj"):
        assert api.post(f"/api/projects/{pid}/members", {"user": name}).status_code == 201
    summary = api.import_source(pid, {"source": str(source)})
    assert summary["added"] > 0 and summary["problems"] == 0, summary
    return pid


def _read(api, image_id: int, marks: list[tuple[str, list[float] | None]], shift: float) -> list[int]:
    info = api.get(f"/api/images/{image_id}").json()
    ids = []
    for label, box in marks or [("No finding", None)]:
        if box is not None:
            box = [
                max(0.0, box[0] + shift),
                max(0.0, box[1] + shift),
                min(info["width"], box[2] + shift),
                min(info["height"], box[3] + shift),
            ]
        r = api.post(f"/api/images/{image_id}/annotations", {"label": label, "box": box})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert api.post(f"/api/images/{image_id}/complete").status_code == 200
    return ids


def _blind_reads(readers: dict, pid: int, truth: dict) -> dict[str, list[int]]:
    """Each reader reads every image of their queue (3 per image, test ones too); r3 misses findings."""
    mine: dict[str, list[int]] = {}
    for k, (name, api) in enumerate(readers.items()):
        queue = api.get(f"/api/projects/{pid}/queue").json()
        assert queue["pending"] == len(queue["tasks"]) > 0
        mine[name] = []
        for task in queue["tasks"]:
            marks = truth.get(task["image_key"], [])
            if name == "r3" and len(marks) > 1:
                marks = marks[:-1]
            mine[name] += _read(api, task["image_id"], marks, shift=2.0 * k)
        assert api.get(f"/api/projects/{pid}/queue").json()["pending"] == 0
    return mine


def _adjudicate(adj, pid: int, test_images: int) -> None:
    """The adjudicator gets exactly the test images and accepts each proposed fusion."""
    tasks = adj.get(f"/api/projects/{pid}/queue").json()["tasks"]
    assert len(tasks) == test_images > 0 and all(t["kind"] == "adjudicate" for t in tasks)
    for task in tasks:
        view = adj.get(f"/api/images/{task['image_id']}/adjudication").json()
        assert view["readers"] == ["R2", "R3", "R4"]  # the admin who created the project is R1
        assert {r["reader"] for r in view["reads"]} == {"R2", "R3", "R4"}
        marks = [{"label": m["label"], "box": m["box"], "provenance": "fusion"} for m in view["proposed"]]
        body = {"version": view["version"], "marks": marks, "complete": True}
        r = adj.put(f"/api/images/{task['image_id']}/consensus", body)
        assert r.status_code == 200, r.text
        assert len(r.json()["consensus"]) == len(marks)


def _cli_json(*args: str) -> dict:
    res = CliRunner().invoke(cli, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _commands_read_the_export(tables: Path, findings, tmp_path: Path) -> None:
    """labels agreement / consensus, export and score read the exported tables as they are."""
    assert 0 < _cli_json("labels", "agreement", str(tables))["overall"]["box_f1"] <= 1
    _cli_json("labels", "consensus", str(tables), "--out", str(tmp_path / "fused"))
    _cli_json("export", str(tables), "--format", "coco", "--out", str(tmp_path / "coco"))
    # The consensus scored against itself is perfect; a reader's own read scores in [0, 1].
    for reader, name in ((CONSENSUS, "cons"), ("R4", "r3")):
        findings[findings["reader"] == reader].assign(reader="model").to_parquet(tmp_path / f"{name}.parquet")
    score = ["score", "--truth", str(tables), "--split", "test", "--pred"]
    assert _cli_json(*score, str(tmp_path / "cons.parquet"))["mAP"] == 1.0
    assert 0 <= _cli_json(*score, str(tmp_path / "r3.parquet"))["mAP"] <= 1.0


def test_whole_workflow(
    database: Database, make_api, vindr_phantom: Path, nih_pngs: Path, tmp_path: Path
) -> None:
    roles = {
        "boss": "admin",
        "r1": "radiologist",
        "r2": "radiologist",
        "r3": "radiologist",
        "adj": "adjudicator",
    }
    add_users(database, roles)
    admin = make_api("boss")
    pid = _setup(admin, "boss", vindr_phantom, "vindr")
    nih_pid = _setup(admin, "boss", nih_pngs, "nih")
    readers = {name: make_api(name) for name in READERS}
    mine = _blind_reads(readers, pid, truth_boxes(vindr_phantom))
    # Blind: r2 sees only r2's marks on an image all three read, and cannot touch r1's.
    first = readers["r1"].get(f"/api/projects/{pid}/queue").json()["tasks"][0]["image_id"]
    seen = readers["r2"].get(f"/api/images/{first}/annotations").json()
    assert seen and all(m["id"] in mine["r2"] for m in seen)
    r = readers["r2"].patch(f"/api/annotations/{mine['r1'][0]}", {"version": 1, "label": "Nodule/Mass"})
    assert r.status_code == 404
    # NIH PNGs: the readers read the first two images of their queue.
    for api in readers.values():
        for task in api.get(f"/api/projects/{nih_pid}/queue").json()["tasks"][:2]:
            _read(api, task["image_id"], [("Effusion", [10, 10, 60, 80])], shift=1.0)
    splits = {
        t["image_key"]: t["split"] for t in readers["r1"].get(f"/api/projects/{pid}/queue").json()["tasks"]
    }
    _adjudicate(make_api("adj"), pid, sum(s == "test" for s in splits.values()))
    agreement = admin.get(f"/api/projects/{pid}/agreement").json()
    assert agreement["available"] and agreement["labels"]

    # Export: readers are pseudonyms, the adjudicated labels are reader 'consensus'.
    with database.session() as s:
        summary = export_project(s, find_project(s, "p-vindr"), tmp_path / "tables", actor_id=None)
    assert summary["readers"] == ["R2", "R3", "R4"]
    f = load_tables(tmp_path / "tables").findings
    assert not set(f["reader"]) & set(READERS)
    assert set(f.loc[f["reader"] == CONSENSUS, "image_id"]) == {k for k, s in splits.items() if s == "test"}
    assert f[f["reader"] != CONSENSUS].groupby("image_id")["reader"].nunique().eq(3).all()
    _commands_read_the_export(tmp_path / "tables", f, tmp_path)


def test_display_data_is_the_imaging_pipeline_at_full_resolution(
    sqlite_db: Database, vindr_phantom: Path
) -> None:
    """The rendition has the original's size; MONOCHROME1 comes out inverted; windows become presets."""
    api, images = _admin_with_phantom(sqlite_db, vindr_phantom)
    checked = set()
    for row in images:
        ds = pydicom.dcmread(row["path"])
        photometric = str(ds.PhotometricInterpretation)
        image_id = _image_id(sqlite_db, row["image_id"])
        info = api.get(f"/api/images/{image_id}").json()
        png = api.get(f"/api/images/{image_id}/display")
        img = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_UNCHANGED)
        assert img.dtype == np.uint16 and img.shape == (ds.Rows, ds.Columns)
        raw = api.get(f"/api/images/{image_id}/display?format=raw")
        assert np.array_equal(np.frombuffer(raw.content, "<u2").reshape(img.shape), img)
        levels = info["display"]["levels"]
        assert levels[0]["width"] == ds.Columns and all(
            max(v["width"], v["height"]) > 128 for v in levels[:-1]
        )
        assert api.get(f"/api/images/{image_id}/display?level={len(levels)}").status_code == 404
        names = [p["name"] for p in info["display"]["presets"]]
        assert {"auto", "lung", "mediastinum", "full"} <= set(names)
        if "WindowCenter" in ds and "VOILUTSequence" not in ds:
            assert names[0] == "DICOM window 1"
        # Air (the image border) is darker than the body centre, whatever the photometric interpretation.
        h, w = img.shape
        border = np.concatenate([img[:, : w // 20].ravel(), img[:, -w // 20 :].ravel()])
        assert np.median(border) < np.median(img[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]), photometric
        checked.add(photometric)
    assert checked == {"MONOCHROME1", "MONOCHROME2"}


def _admin_with_phantom(db: Database, phantom: Path) -> tuple[Api, list[dict]]:
    """An admin's client on a project holding the phantom; its images as the export lists them."""
    add_users(db, {"boss": "admin"})
    api = Api(create_app(db)).login("boss")
    pid = api.post("/api/projects", {"name": "p", "labels": "vindr"}).json()["id"]
    api.import_source(pid, {"source": str(phantom), "renditions": False})
    return api, api.get(f"/api/projects/{pid}/export").json()["images"]


def _image_id(db: Database, key: str) -> int:
    from sqlalchemy import select

    from cxrlab.annotate.models import Image

    with db.session() as s:
        return int(s.scalar(select(Image.id).where(Image.image_key == key)))


def test_originals_are_never_modified(sqlite_db: Database, vindr_phantom: Path, tmp_path: Path) -> None:
    import hashlib

    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(vindr_phantom.rglob("*.dicom"))}
    api, images = _admin_with_phantom(sqlite_db, vindr_phantom)
    for row in images:
        api.get(f"/api/images/{_image_id(sqlite_db, row['image_id'])}/display")
    assert digest == {
        p: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(vindr_phantom.rglob("*.dicom"))
    }
    assert pd.Series(list(digest)).map(lambda p: p.stat().st_size > 0).all()
