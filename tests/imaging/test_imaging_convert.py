"""Conversion: outputs and manifest, failures named, resumable and idempotent, originals untouched, boxes
kept on their lesions, local pool and Dask cluster giving the same bytes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from imaging_helpers import chest_like, make_dicom

from conftest import realdata_path
from cxrlab.datasets.phantom import TRANSFER_SYNTAXES
from cxrlab.errors import UsageError
from cxrlab.imaging.convert import ConvertOptions, convert
from cxrlab.tables import save_tables

SYNTAXES = [s for s in ("explicit_le", "explicit_be", "rle", "jpegls_lossless", "j2k_lossless",
                        "jpeg_lossless_sv1", "deflated_le") if s in TRANSFER_SYNTAXES]  # fmt: skip


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    for i, syntax in enumerate(SYNTAXES):
        stored = chest_like(300, 240, bits=12, seed=i)
        photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
        make_dicom(src / ("train" if i % 3 else "test"), f"img{i}_{syntax}.dicom", stored,
                   transfer_syntax=TRANSFER_SYNTAXES[syntax], photometric=photometric,
                   windows=[(2000, 3000), (1000, 800)])  # fmt: skip
    make_dicom(src, "nopixels.dicom", chest_like(20, 20), omit_pixel_data=True)
    (src / "corrupt.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 300)
    return src


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p): (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def test_folder_conversion_reports_failures_and_never_writes_originals(tmp_path: Path) -> None:
    src = _source(tmp_path)
    before = _snapshot(src)
    failed: list[str] = []
    out = tmp_path / "out"
    result = convert(src, out, ConvertOptions(size=128), on_failure=lambda r: failed.append(r["error"]))
    assert (result.total, result.converted, result.failed) == (len(SYNTAXES) + 2, len(SYNTAXES), 2)
    assert any("nopixels.dicom" in e and "no Pixel Data" in e for e in failed)
    assert any("corrupt.dcm" in e for e in failed)

    manifest = pd.read_parquet(out / "manifest.parquet")
    assert len(manifest) == result.total
    assert set(pd.read_csv(out / "manifest.csv")["image_id"]) == set(manifest["image_id"])
    ok = manifest[manifest["status"] == "ok"]
    for row in ok.itertuples():
        img = cv2.imread(str(out / row.output), cv2.IMREAD_UNCHANGED)
        assert img.shape == (128, 128) and img.dtype == np.uint8
        assert row.output == f"{row.image_id}.png"
        assert (row.orig_width, row.orig_height) == (240, 300)
        assert row.scale_x == pytest.approx(128 / 240) and row.scale_y == pytest.approx(128 / 300)
        assert (
            row.voi == "window" and row.window_center == 2000 and row.voi_detail.startswith("window 1 of 2")
        )
    assert ok["inverted"].sum() == sum(i % 2 for i in range(len(SYNTAXES)))
    bad = manifest[manifest["status"] == "failed"]
    assert set(bad["image_id"]) == {"nopixels", "corrupt"} and bad["error"].str.len().min() > 10
    assert not list(out.glob(".*.tmp"))
    assert _snapshot(src) == before  # bytes and modification times of every original


def test_rerun_skips_and_crash_loses_nothing(tmp_path: Path) -> None:
    src = _source(tmp_path)
    out = tmp_path / "out"
    first = convert(src, out, ConvertOptions(size=96))
    outputs = {p.name: p.read_bytes() for p in out.glob("*.png")}
    again = convert(src, out, ConvertOptions(size=96))
    assert (again.converted, again.skipped, again.failed) == (0, first.converted, 2)

    # a crash: one output lost, the journal's last line cut in the middle
    victim = sorted(outputs)[0]
    (out / victim).unlink()
    journal = out / ".manifest.journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    last_ok = max(i for i, line in enumerate(lines) if json.loads(line)["status"] == "ok")
    cut_id = json.loads(lines[last_ok])["image_id"]
    journal.write_text("".join(lines[:last_ok]) + lines[last_ok][:40])
    resumed = convert(src, out, ConvertOptions(size=96))
    assert resumed.converted == len({victim.removesuffix(".png"), cut_id})
    assert {p.name: p.read_bytes() for p in out.glob("*.png")} == outputs  # idempotent bytes

    fresh = convert(src, tmp_path / "fresh", ConvertOptions(size=96))
    assert fresh.converted == first.converted
    assert {p.name: p.read_bytes() for p in (tmp_path / "fresh").glob("*.png")} == outputs


def test_other_settings_are_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dicom(src, "a.dcm", chest_like(50, 40))
    convert(src, tmp_path / "out", ConvertOptions(size=32))
    with pytest.raises(UsageError, match="size"):
        convert(src, tmp_path / "out", ConvertOptions(size=64))


def test_two_workers_give_the_same_bytes(tmp_path: Path) -> None:
    src = _source(tmp_path)
    one = convert(src, tmp_path / "one", ConvertOptions(size=64, format="png16"))
    two = convert(src, tmp_path / "two", ConvertOptions(size=64, format="png16"), workers=2)
    assert (one.converted, one.failed) == (two.converted, two.failed)
    for p in (tmp_path / "one").glob("*.png"):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes()
        assert cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    pids = pd.read_parquet(tmp_path / "two" / "manifest.parquet")["worker_pid"]
    assert os.getpid() not in set(pids.dropna())


def test_dask_cluster_gives_the_same_bytes(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    src = tmp_path / "src"
    for i in range(3):
        make_dicom(src, f"d{i}.dcm", chest_like(120, 100, seed=i), transfer_syntax=TRANSFER_SYNTAXES["rle"])
    local = convert(src, tmp_path / "local", ConvertOptions(size=48))
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        remote = convert(src, tmp_path / "dask", ConvertOptions(size=48), cluster=lc.scheduler_address)
    assert remote.converted == local.converted == 3
    for p in (tmp_path / "local").glob("*.png"):
        assert p.read_bytes() == (tmp_path / "dask" / p.name).read_bytes()


def _lesion_image(rows: int, cols: int, box: tuple[int, int, int, int]) -> np.ndarray:
    img = np.full((rows, cols), 800, dtype=np.uint16)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = 3800  # box convention: pixel i covers [i, i + 1), so the box edges are x0 and x1
    return img


@pytest.mark.parametrize("keep_aspect", [False, True], ids=["square", "keep-aspect"])
def test_boxes_stay_on_their_lesions(tmp_path: Path, keep_aspect: bool) -> None:
    data = tmp_path / "data"
    boxes = {"a": (120, 300, 216, 380), "b": (40, 48, 104, 136)}
    for image_id, box in boxes.items():
        make_dicom(data, f"{image_id}.dicom", _lesion_image(700, 500, box), windows=[(2300, 3000)])
    images = pd.DataFrame({"image_id": list(boxes), "dataset": "phantom", "split": "train", "patient_id": "p",
                           "path": [f"{i}.dicom" for i in boxes], "width": 500, "height": 700, "sex": None,
                           "age": None, "view": "PA"})  # fmt: skip
    findings = pd.DataFrame(
        [
            {"image_id": i, "reader": "R1", "label": "Nodule/Mass", "score": 1.0,
             "x_min": b[0], "y_min": b[1], "x_max": b[2], "y_max": b[3]}
            for i, b in boxes.items()
        ]
    )  # fmt: skip
    tables = tmp_path / "tables"
    save_tables(tables, images, findings)
    out = tmp_path / "out"
    result = convert(tables, out, ConvertOptions(size=256, keep_aspect=keep_aspect), root=data)
    assert result.converted == 2 and result.tables == out
    new_images = pd.read_parquet(out / "images.parquet").set_index("image_id")
    new_findings = pd.read_parquet(out / "findings.parquet").set_index("image_id")
    expected_size = (183, 256) if keep_aspect else (256, 256)
    for image_id, box in boxes.items():
        img = cv2.imread(str(out / f"{image_id}.png"), cv2.IMREAD_UNCHANGED)
        assert (img.shape[1], img.shape[0]) == expected_size
        assert tuple(new_images.loc[image_id, ["width", "height"]]) == expected_size
        assert new_images.loc[image_id, "source_path"] == f"{image_id}.dicom"
        x0, y0, x1, y1 = new_findings.loc[image_id, ["x_min", "y_min", "x_max", "y_max"]].to_numpy(float)
        # the lesion as seen in the output: pixels more than half covered by it
        ys, xs = np.nonzero(img > 127)
        assert xs.min() == pytest.approx(x0, abs=1) and xs.max() + 1 == pytest.approx(x1, abs=1)
        assert ys.min() == pytest.approx(y0, abs=1) and ys.max() + 1 == pytest.approx(y1, abs=1)
        assert img[int(np.ceil(y0)) : int(y1), int(np.ceil(x0)) : int(x1)].min() > 200  # inside: lesion
        sx, sy = expected_size[0] / 500, expected_size[1] / 700
        assert (x0, y0, x1, y1) == pytest.approx((box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy))


def test_png_folder_and_real_nih_png(tmp_path: Path) -> None:
    real = realdata_path("images", "nih_png", "00000001_000.png")
    src = tmp_path / "png"
    src.mkdir()
    shutil.copy(real, src / real.name)
    grey = cv2.imread(str(real), cv2.IMREAD_GRAYSCALE)
    rgba = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGRA)
    cv2.imwrite(str(src / "00000002_000.png"), rgba)  # NIH ships a few RGBA images
    result = convert(src, tmp_path / "out", ConvertOptions(size=256))
    assert result.converted == 2
    a = cv2.imread(str(tmp_path / "out" / "00000001_000.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "out" / "00000002_000.png"), cv2.IMREAD_UNCHANGED)
    assert a.shape == b.shape == (256, 256)
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("image_id")
    assert "4-channel PNG read as grey" in manifest.loc["00000002_000", "notes"]


def test_npy_output_and_j2k_reduction_is_recorded(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dicom(src, "big.dcm", chest_like(1100, 1000), transfer_syntax=TRANSFER_SYNTAXES["j2k_lossless"])
    convert(src, tmp_path / "out", ConvertOptions(size=256, format="npy"))
    arr = np.load(tmp_path / "out" / "big.npy")
    assert arr.shape == (256, 256) and arr.dtype == np.uint8
    row = pd.read_parquet(tmp_path / "out" / "manifest.parquet").iloc[0]
    assert row.j2k_reduce == 1 and "resolution level 1" in row.notes


def test_duplicate_ids_are_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dicom(src / "train", "same.dicom", chest_like(20, 20))
    make_dicom(src / "test", "same.dicom", chest_like(20, 20))
    with pytest.raises(UsageError, match="share the id 'same'"):
        convert(src, tmp_path / "out")


def test_output_inside_the_source_is_not_read_back(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dicom(src, "x.dcm", chest_like(40, 40))
    first = convert(src, src / "converted", ConvertOptions(size=16))
    second = convert(src, src / "converted", ConvertOptions(size=16))
    assert first.total == second.total == 1 and second.skipped == 1


def test_empty_source_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    with pytest.raises(UsageError, match="no images to convert"):
        convert(tmp_path / "src", tmp_path / "out")


def test_unusual_real_files_convert(tmp_path: Path) -> None:
    from pydicom.data import get_testdata_file

    src = tmp_path / "src"
    src.mkdir()
    names = ["SC_rgb_jpeg.dcm", "liver_1frame.dcm", "rtdose.dcm", "examples_ybr_color.dcm"]
    for name in names:  # colour, 1-bit, 32-bit multi-frame, colour multi-frame
        shutil.copy(str(get_testdata_file(name, download=False)), src / name)
    result = convert(src, tmp_path / "out", ConvertOptions(size=32))
    assert (result.converted, result.failed) == (4, 0), result.failures
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("image_id")
    assert manifest.loc["SC_rgb_jpeg", "photometric"] == "RGB"
    assert "frame 1 converted" in manifest.loc["rtdose", "notes"]
    assert cv2.imread(str(tmp_path / "out" / "liver_1frame.png"), cv2.IMREAD_UNCHANGED).max() == 255


def test_changed_source_is_redone_and_a_stale_output_removed(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(3):
        make_dicom(src, f"a{i}.dcm", chest_like(60, 50, seed=i), windows=[(2000, 3000)])
    out = tmp_path / "out"
    convert(src, out, ConvertOptions(size=32))
    before = (out / "a1.png").read_bytes()
    make_dicom(src, "a1.dcm", chest_like(60, 50, seed=99), windows=[(2000, 3000)])
    changed = convert(src, out, ConvertOptions(size=32))
    assert (changed.converted, changed.skipped) == (1, 2)
    assert (out / "a1.png").read_bytes() != before
    # the source now fails: its previous output must not stay behind as if it were current
    (src / "a1.dcm").write_bytes(b"not a dicom file" * 10)
    failed = convert(src, out, ConvertOptions(size=32))
    assert (failed.converted, failed.failed, failed.skipped) == (0, 1, 2)
    assert not (out / "a1.png").exists()
    assert sorted(p.name for p in out.glob("*.png")) == ["a0.png", "a2.png"]
