"""NihIndex and VindrIndex: one API (``report()``, ``write()``) and one JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import REPO
from cxrlab.datasets.index import DatasetIndex
from cxrlab.datasets.nih import index_nih
from cxrlab.datasets.vindr import index_vindr
from cxrlab.tables import load_tables

COMMON = {
    "dataset", "sources", "images", "patients", "splits", "findings", "boxes", "images_with_boxes", "readers",
    "labels", "notes", "problems",
}  # fmt: skip


def test_one_shape_for_both_datasets(vindr_phantom: Path, tmp_path: Path) -> None:
    nih = index_nih(REPO / "tests" / "fixtures" / "nih")
    vindr = index_vindr(vindr_phantom)
    for index, own in ((nih, {"revision"}), (vindr, {"layout", "sizes_known"})):
        assert isinstance(index, DatasetIndex)
        report = index.report()
        assert set(report) == COMMON | own
        assert report["dataset"] in ("nih", "vindr") and report["images"] == len(index.images)
        assert report["boxes"] == int(index.findings["x_min"].notna().sum())
        for problem in report["problems"]:
            assert set(problem) == {"file", "kind", "count", "message", "examples", "severity"}
        out = index.write(tmp_path / report["dataset"])
        assert json.loads((out / index.report_file).read_text()) == json.loads(json.dumps(report))
        assert len(load_tables(out).images) == len(index.images)
    assert nih.report()["sources"]["entry"] == "Data_Entry_2017_v2020.csv"
    assert vindr.report()["sources"]["train_boxes"] == "annotations/annotations_train.csv"
    assert vindr.report()["patients"] == 0  # VinDr publishes no patient ids
