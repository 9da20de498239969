"""Export folders: one export, whole, or a refusal; inputs and foreign files never written over."""

from __future__ import annotations

import errno
import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import fingerprint, random_tables, run_cli
from cxrlab.atomic import OUTPUT_MARKER

export_module = importlib.import_module(
    "cxrlab.labels.export"
)  # the module; cxrlab.labels.export is the function


def _tables(tmp_path: Path, seed: int, **kwargs: object) -> Path:
    folder = tmp_path / f"tables-{seed}"
    random_tables(folder, np.random.default_rng(seed), **kwargs)  # type: ignore[arg-type]
    return folder


def _dataset_dir(tmp_path: Path, rng: np.random.Generator) -> Path:
    """A VinDr-like release folder: its own annotation CSVs (random content) and an image."""
    root = tmp_path / "vindr-dataset"
    (root / "annotations").mkdir(parents=True)
    for name in ("annotations_train.csv", "image_labels_train.csv", "annotations_test.csv"):
        rows = "\n".join(
            ",".join(str(v) for v in rng.integers(0, 1000, 5)) for _ in range(rng.integers(1, 20))
        )
        (root / "annotations" / name).write_text("image_id,rad_id,class_name,x_min,y_min\n" + rows + "\n")
    (root / "train").mkdir()
    (root / "train" / "x.dicom").write_bytes(rng.bytes(300))
    return root


@pytest.mark.parametrize("seed", [0, 1])
def test_vindr_csv_into_the_dataset_folder_is_refused(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(seed)
    tables, dataset = _tables(tmp_path, seed), _dataset_dir(tmp_path, rng)
    before = fingerprint(dataset)
    code, _, err = run_cli(
        ["export", str(tables), "--format", "vindr-csv", "--out", str(dataset)], monkeypatch, capsys
    )
    assert code == 2 and str(dataset) in err and "--force" in err and "Traceback" not in err
    assert fingerprint(dataset) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left
    code, _, err = run_cli(
        ["export", str(tables), "--format", "vindr-csv", "--out", str(dataset), "--force"],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    after = fingerprint(dataset)
    assert after["train/x.dicom"] == before["train/x.dicom"]  # files the export does not write stay
    assert OUTPUT_MARKER not in after  # a forced write into a foreign folder does not claim it


def test_an_input_is_never_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = _tables(tmp_path, 3)
    before = fingerprint(tables)
    for out in (tables, tmp_path, tables / "images.parquet"):  # the folder, a folder holding it, a file in it
        for force in ([], ["--force"]):
            code, _, err = run_cli(
                ["export", str(tables), "--format", "coco", "--out", str(out), *force], monkeypatch, capsys
            )
            assert code == 2 and "--out" in err and "input" in err, err
    assert fingerprint(tables) == before


@pytest.mark.parametrize("fmt", ["yolo", "voc", "coco"])
def test_reexport_replaces_the_earlier_export_whole(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another class map and other images the second time: no label file of the first may survive."""
    first = _tables(tmp_path, 10, images=9, labels=["Cardiomegaly", "Aortic enlargement"])
    second = _tables(tmp_path, 11, images=5, labels=["Nodule/Mass", "Other lesion", "Calcification"])
    out, clean = tmp_path / "export", tmp_path / "clean"
    for tables, target in ((first, out), (second, out), (second, clean)):
        code, _, err = run_cli(
            ["export", str(tables), "--format", fmt, "--out", str(target), "--reader", "R1"],
            monkeypatch,
            capsys,
        )
        assert code == 0, err
    assert set(fingerprint(out)) == set(fingerprint(clean))
    marker = json.loads((out / OUTPUT_MARKER).read_text())
    assert marker["format"] == fmt and marker["readers"] == ["R1"]


def test_a_foreign_non_empty_folder_is_refused_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables, out = _tables(tmp_path, 4), tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my own notes")
    code, _, err = run_cli(
        ["export", str(tables), "--format", "yolo", "--out", str(out)], monkeypatch, capsys
    )
    assert code == 2 and str(out) in err
    assert fingerprint(out) == {"notes.txt": fingerprint(out)["notes.txt"]}


def test_disk_full_on_the_last_write_leaves_the_earlier_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables, out = _tables(tmp_path, 5), tmp_path / "export"
    assert run_cli(["export", str(tables), "--format", "voc", "--out", str(out)], monkeypatch, capsys)[0] == 0
    before = fingerprint(out)
    real = export_module.write_text_atomic

    def full_at_the_class_list(path: Path, text: str, **kwargs: object) -> Path:
        if Path(path).name == "classes.txt":
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, text, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(export_module, "write_text_atomic", full_at_the_class_list)
    other = _tables(tmp_path, 6)
    code, _, err = run_cli(["export", str(other), "--format", "voc", "--out", str(out)], monkeypatch, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1 and "classes.txt: No space left on device" in lines[0]
    assert fingerprint(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_output_path_an_existing_file_or_under_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = _tables(tmp_path, 7)
    blocker = tmp_path / "afile"
    blocker.write_bytes(b"\x00keep")
    for out in (blocker, blocker / "sub"):
        code, _, err = run_cli(
            ["export", str(tables), "--format", "coco", "--out", str(out)], monkeypatch, capsys
        )
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 1 and len(lines) == 1 and str(blocker) in lines[0] and "Traceback" not in err
    assert blocker.read_bytes() == b"\x00keep"


def test_images_folder_matching_no_image_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tables = _tables(tmp_path, 8)
    conv = tmp_path / "converted"
    conv.mkdir()
    ids = [f"{k:032x}" for k in range(3)]  # none of the tables' images
    pd.DataFrame(
        {"image_id": ids, "width": 256, "height": 256, "scale_x": 0.1, "scale_y": 0.1,
         "output": [f"{i}.png" for i in ids]}
    ).to_csv(conv / "manifest.csv", index=False)  # fmt: skip
    code, _, err = run_cli(
        ["export", str(tables), "--format", "coco", "--out", str(tmp_path / "c"), "--images", str(conv)],
        monkeypatch,
        capsys,
    )
    assert code == 1 and str(conv) in err and "none of the" in err
    assert not (tmp_path / "c").exists()


def test_yolo_validates_on_val_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with_val = _tables(tmp_path, 9, splits=("train", "val", "test"))
    code, _, err = run_cli(
        ["export", str(with_val), "--format", "yolo", "--out", str(tmp_path / "y")], monkeypatch, capsys
    )
    data = (tmp_path / "y" / "data.yaml").read_text()
    assert code == 0 and "val: images/val\n" in data and "test: images/test\n" in data
    without = _tables(tmp_path, 12, splits=("train", "test"))
    code, out, err = run_cli(
        ["export", str(without), "--format", "yolo", "--out", str(tmp_path / "z")], monkeypatch, capsys
    )
    assert "val: images/test\n" in (tmp_path / "z" / "data.yaml").read_text()
    assert "no val split" in out + err
