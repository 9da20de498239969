"""The VinDr phantom (real formats, DICOM quirks) through index, stats, consensus and the round trips."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cxrlab.cli.main import app
from cxrlab.datasets.vindr import index_vindr
from cxrlab.labels.export import export
from cxrlab.tables import BOX_COLUMNS, validate_findings, validate_images


@pytest.fixture(scope="module")
def indexed(vindr_phantom: Path):
    return index_vindr(vindr_phantom, workers=2)


def test_phantom_index_reads_every_header(indexed, vindr_phantom: Path) -> None:
    im = indexed.images
    validate_images(im)
    validate_findings(indexed.findings, im)
    n_files = len(list((vindr_phantom / "train").glob("*.dicom"))) + len(
        list((vindr_phantom / "test").glob("*.dicom"))
    )
    assert len(im) == n_files and im["has_dicom"].all()
    assert indexed.sizes_known and im["width"].notna().all()
    # Sizes agree with the pixel data's shape as written (Rows/Columns), including the file without
    # a Transfer Syntax UID in its meta.
    import pydicom

    for row in im.head(4).itertuples():
        ds = pydicom.dcmread(vindr_phantom / row.path, force=True)
        assert (row.width, row.height) == (ds.Columns, ds.Rows)
    assert set(im["sex"].dropna()) <= {"M", "F"} and im["age"].notna().any()
    assert set(im["split"]) == {"train", "test"}
    f = indexed.findings
    assert set(f.loc[f["image_id"].isin(im.loc[im["split"] == "test", "image_id"]), "reader"]) == {
        "consensus"
    }
    # Every training image has 3 readers in the phantom; the clipped boxes are counted, none silently lost.
    assert "reader-count" not in {p.kind for p in indexed.problems}
    boxes = f[f[BOX_COLUMNS].notna().all(axis=1)].merge(im[["image_id", "width", "height"]], on="image_id")
    assert (boxes["x_min"] >= 0).all() and (boxes["x_max"] <= boxes["width"]).all()
    assert (boxes["y_max"] <= boxes["height"]).all()


def test_challenge_layout_of_the_same_phantom(indexed, vindr_phantom_challenge: Path) -> None:
    ch = index_vindr(vindr_phantom_challenge)
    assert ch.layout == "challenge"
    train = indexed.images[indexed.images["split"] == "train"]
    got = ch.images.set_index("image_id")
    assert set(train["image_id"]) <= set(got.index)
    assert (got.loc[train["image_id"], "width"].to_numpy() == train["width"].to_numpy()).all()


def test_round_trip_with_dicoms(indexed, vindr_phantom: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    export(indexed.images, indexed.findings, "vindr-csv", out)
    for split in ("train", "test"):  # the DICOMs beside the exported labels, as a user's folder has them
        shutil.copytree(vindr_phantom / split, out / split)
    again = index_vindr(out)
    pd.testing.assert_frame_equal(indexed.images, again.images)
    pd.testing.assert_frame_equal(indexed.findings, again.findings)


def test_stats_on_vindr_tables(vindr_phantom: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    tables = tmp_path / "t"
    res = runner.invoke(app, ["vindr", "index", str(vindr_phantom), "--out", str(tables)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["stats", str(tables), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    text = json.dumps(data)
    assert "majority" in text.lower()  # three readers, no consensus yet: the majority rule is stated
    assert "sex" in text and "age" in text
    fused = tmp_path / "c"
    res = runner.invoke(app, ["labels", "consensus", str(tables), "--out", str(fused)])
    assert res.exit_code == 0, res.output
    # After consensus every image has a `consensus` reader: counted by naming it.
    res = runner.invoke(app, ["stats", str(fused), "--reader", "consensus", "--json"])
    assert res.exit_code == 0, res.output
    assert "consensus" in json.dumps(json.loads(res.output)).lower()
    res = runner.invoke(app, ["stats", str(fused), "--reader", "consensus"])
    assert res.exit_code == 0 and "sex" in res.output.lower()
