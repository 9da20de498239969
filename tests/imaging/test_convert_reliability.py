"""Convert as a hostile user runs it: crashing decoders, headers that lie, odd headers, a full disk, two
runs into one folder, a killed parent, a bad cluster address, removed sources. Inputs are made here."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
import pytest
from imaging_helpers import chest_like, make_dicom

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES
from cxrlab.errors import CxrlabError, UsageError
from cxrlab.imaging import manifest, pipeline
from cxrlab.imaging.convert import ConvertOptions, convert
from cxrlab.imaging.lock import FolderBusy, folder_lock

RLE = TRANSFER_SYNTAXES["rle"]


def _cxrlab(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    return subprocess.run([sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True,
                          check=False, env=env, **kwargs)  # type: ignore[call-overload]  # fmt: skip


def _edit(path: Path, out: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=False)
    return out


def _good_and_panicking(src: Path, n_good: int = 2) -> Path:
    """``n_good`` RLE files and one whose header says fewer columns than its RLE stream holds: the Rust RLE
    decoder panics on it (a ``BaseException``)."""
    for i in range(n_good):
        make_dicom(src, f"good{i}.dcm", chest_like(64, 48, seed=i), transfer_syntax=RLE)
    make_dicom(src, "base.tmpdcm", chest_like(64, 48, seed=9), transfer_syntax=RLE)
    bad = _edit(src / "base.tmpdcm", src / "panics.dcm", Columns=40)
    (src / "base.tmpdcm").unlink()
    return bad


@pytest.mark.parametrize("workers", [1, 2])
def test_a_panicking_decoder_fails_its_file_only(tmp_path: Path, workers: int) -> None:
    from rle.utils import decode_pixel_data

    bad = _good_and_panicking(tmp_path / "src")
    frame = next(pydicom.encaps.generate_frames(pydicom.dcmread(bad).PixelData, number_of_frames=1))
    with pytest.raises(BaseException) as info:  # the premise: the codec really panics on this file
        decode_pixel_data(frame, version=2, rows=64, columns=40, bits_allocated=16)
    assert not isinstance(info.value, Exception)

    result = convert(tmp_path / "src", tmp_path / "out", ConvertOptions(size=32), workers=workers)
    assert (result.converted, result.failed) == (2, 1)
    error = result.failures[0]["error"]
    assert "panics.dcm" in error and "Columns 40" in error
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet")
    assert manifest.set_index("image_id")["status"].to_dict() == {
        "good0": "ok",
        "good1": "ok",
        "panics": "failed",
    }


def test_cli_on_a_panicking_file_prints_one_line_per_failure(tmp_path: Path) -> None:
    _good_and_panicking(tmp_path / "src")
    run = _cxrlab("convert", str(tmp_path / "src"), str(tmp_path / "out"), "--size", "32", "--workers", "2")
    assert run.returncode == 1
    assert "Traceback" not in run.stderr and "panicked" not in run.stderr
    assert [line for line in run.stderr.splitlines() if "panics.dcm" in line]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == ["good0.png", "good1.png"]


def _abort_on_victim(task: object, options: object) -> dict[str, object]:
    """A work function that kills its process hard (as a C decoder's abort would) on one file."""
    from cxrlab.imaging.runner import Task

    assert isinstance(task, Task)
    if task.image_id == "victim":
        os.abort()
    return {"image_id": task.image_id, "source": task.source, "output": task.output, "status": "ok"}


def test_a_worker_killed_by_one_file_costs_only_that_file(tmp_path: Path) -> None:
    from cxrlab.imaging.runner import Task, run_tasks

    ids = ["a", "b", "victim", "c", "d", "e"]
    tasks = [Task(i, str(tmp_path / i), str(tmp_path / f"{i}.out")) for i in ids]
    records: list[dict[str, object]] = []
    run_tasks(_abort_on_victim, tasks, None, workers=2, on_result=records.append)
    status = {r["image_id"]: r["status"] for r in records}
    assert status == {**dict.fromkeys(ids, "ok"), "victim": "failed"}
    assert "victim" in str(next(r["error"] for r in records if r["image_id"] == "victim"))


def test_header_disagreeing_with_the_pixels_fails_the_file(tmp_path: Path) -> None:
    """Uncompressed and RLE data carry no size of their own: Rows and Columns exchanged (same pixel count)
    cannot be told from the data, nor an RLE header understating Rows (pylibjpeg-rle then keeps the top rows
    without complaint, checking it would double the RLE decode time); every other disagreement fails."""
    src, out = tmp_path / "src", tmp_path / "out"
    sizeless = ("explicit_le", "explicit_be", "deflated_le", "rle")
    cases = {}
    for name in ("explicit_le", "explicit_be", "deflated_le", "rle", "jpegls_lossless", "j2k_lossless",
                 "jpeg_lossless_sv1", "htj2k_lossless"):  # fmt: skip
        if name not in TRANSFER_SYNTAXES:
            continue
        path = make_dicom(
            tmp_path / "gen", f"{name}.dcm", chest_like(64, 48), transfer_syntax=TRANSFER_SYNTAXES[name]
        )
        for change in ({"Rows": 60}, {"Columns": 40}, {"Rows": 48, "Columns": 64}, {"Rows": 70}):
            if (name in sizeless and change.get("Columns") == 64) or (
                name == "rle" and change == {"Rows": 60}
            ):
                continue
            label = f"{name}_" + "_".join(f"{k}{v}" for k, v in change.items())
            _edit(path, src / f"{label}.dcm", **change)
            cases[label] = change
    result = convert(src, out, ConvertOptions(size=32))
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("image_id")
    ok = manifest[manifest["status"] == "ok"]
    assert ok.empty, f"converted despite a header that disagrees: {list(ok.index)}"
    assert result.failed == len(cases)
    for label, row in manifest.iterrows():
        assert f"{label}.dcm" in row["error"]
    assert not list(out.glob("*.png"))


def test_odd_headers_are_noted_or_failed(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    base = make_dicom(tmp_path / "gen", "base.dcm", chest_like(64, 48), windows=[(2000, 3000)])
    _edit(base, src / "slope0.dcm", RescaleSlope="0", RescaleIntercept="0")
    _edit(base, src / "ybr.dcm", PhotometricInterpretation="YBR_FULL")
    _edit(base, src / "bits.dcm", BitsStored=17, HighBit=16)
    _edit(base, src / "zero.dcm", Rows=0, Columns=0)
    palette = _edit(base, src / "palette.dcm", PhotometricInterpretation="PALETTE COLOR")
    ds = pydicom.dcmread(palette)
    ramp = np.arange(0, 65536, 16, dtype=np.uint16)  # 4096 entries, grey: red = green = blue
    for i in range(3):  # red, green, blue
        ds.add_new(0x00281101 + i, "US", [4096, 0, 16])
        ds.add_new(0x00281201 + i, "OW", ramp.tobytes())
    ds.save_as(palette, enforce_file_format=False)
    convert(src, out, ConvertOptions(size=32))
    m = pd.read_parquet(out / "manifest.parquet").set_index("image_id")
    assert m.loc["slope0", "status"] == "failed" and "Rescale Slope is 0" in m.loc["slope0", "error"]
    assert m.loc["zero", "status"] == "failed" and "zero.dcm" in m.loc["zero", "error"]
    assert m.loc["ybr", "status"] == "ok" and "YBR_FULL with one sample" in m.loc["ybr", "notes"]
    assert m.loc["bits", "status"] == "ok" and "Bits Stored 17 > Bits Allocated 16" in m.loc["bits", "notes"]
    assert m.loc["palette", "status"] == "ok" and "PALETTE COLOR" in m.loc["palette", "notes"]
    # a grey palette: luminance of the palette = the stored values spread over 8 bits, so brighter = brighter
    grey = cv2.imread(str(out / "palette.png"), cv2.IMREAD_UNCHANGED)
    reference = cv2.resize(chest_like(64, 48).astype(np.float64), (32, 32), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(grey.ravel(), reference.ravel())[0, 1] > 0.99


def test_truncated_compressed_file_says_truncated(tmp_path: Path) -> None:
    src = tmp_path / "src"
    rng = np.random.default_rng(3)
    for name in ("jpegls_lossless", "rle", "j2k_lossless"):
        path = make_dicom(
            tmp_path / "gen", f"{name}.dcm", chest_like(64, 64), transfer_syntax=TRANSFER_SYNTAXES[name]
        )
        data = path.read_bytes()
        start = data.find(b"\xe0\x7f\x10\x00")
        cut = int(rng.integers(start + 40, len(data) - 8))  # somewhere inside the compressed frame
        (src / f"cut_{name}.dcm").parent.mkdir(parents=True, exist_ok=True)
        (src / f"cut_{name}.dcm").write_bytes(data[:cut])
    result = convert(src, tmp_path / "out", ConvertOptions(size=32))
    assert result.failed == 3
    for record in result.failures:
        assert "truncated" in record["error"] and "not a DICOM file" not in record["error"], record["error"]


def _three_files(src: Path) -> None:
    for i in range(3):
        make_dicom(src, f"f{i}.dcm", chest_like(48, 40, seed=i))


def _main_exits_1(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], src: Path,
                  out: Path) -> list[str]:  # fmt: skip
    """Run ``cxrlab convert src out`` in this process (so a monkeypatch applies); its stderr lines."""
    from cxrlab.cli.main import main

    monkeypatch.setattr(sys, "argv", ["cxrlab", "convert", str(src), str(out), "--size", "16"])
    monkeypatch.setenv("CXRLAB_NO_PROGRESS", "1")
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 1
    return capfd.readouterr().err.strip().splitlines()


def test_disk_full_on_the_last_output_stops_cleanly_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _three_files(src)
    real = pipeline.write_bytes_atomic

    def full_on_f2(path: Path, data: bytes, **kw: object) -> Path:
        if Path(path).name == "f2.png":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "write_bytes_atomic", full_on_f2)
    err = _main_exits_1(monkeypatch, capfd, src, out)
    assert err == [f"error: {out / 'f2.png'}: No space left on device"]
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == ["f0.png", "f1.png"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

    monkeypatch.setattr(pipeline, "write_bytes_atomic", real)
    again = convert(src, out, ConvertOptions(size=16))
    assert (again.skipped, again.converted) == (2, 1)
    fresh = convert(src, tmp_path / "fresh", ConvertOptions(size=16))
    assert fresh.converted == 3
    for p in (tmp_path / "fresh").glob("*.png"):
        assert p.read_bytes() == (out / p.name).read_bytes()


def test_disk_full_on_the_manifest_keeps_the_previous_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _three_files(src)
    convert(src, out, ConvertOptions(size=16))
    before = {n: (out / n).read_bytes() for n in ("manifest.parquet", "manifest.csv")}
    make_dicom(src, "f3.dcm", chest_like(48, 40, seed=3))

    def full(rows: object, path: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(manifest, "_write_csv", full)  # the csv is the second, last, file of the pair
    err = _main_exits_1(monkeypatch, capfd, src, out)
    assert len(err) == 1 and "No space left on device" in err[0]
    assert {n: (out / n).read_bytes() for n in before} == before  # the pair agrees: both the previous
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.undo()
    again = convert(src, out, ConvertOptions(size=16))
    assert (again.skipped, again.converted) == (4, 0)  # f3 was converted and journaled before the failure
    assert set(pd.read_csv(out / "manifest.csv")["image_id"]) == {"f0", "f1", "f2", "f3"}


def test_output_path_that_is_a_file_and_output_equal_to_source(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _three_files(src)
    (tmp_path / "afile").write_text("x")
    run = _cxrlab("convert", str(src), str(tmp_path / "afile"))
    assert run.returncode == 2 and "afile" in run.stderr and "not a folder" in run.stderr
    assert "Traceback" not in run.stderr
    same = _cxrlab("convert", str(src), str(src))
    assert same.returncode == 2 and "output folder is the source folder" in same.stderr


def test_window_out_of_range_names_the_file(tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_dicom(src, "one_window.dcm", chest_like(48, 40), windows=[(2000, 3000)])
    run = _cxrlab("convert", str(src), str(tmp_path / "out"), "--window", "3", "--size", "16")
    assert run.returncode == 1 and "one_window.dcm" in run.stderr
    bad = _cxrlab("convert", str(src), str(tmp_path / "out2"), "--window", "0")
    assert bad.returncode == 2 and "--window" in bad.stderr


def test_one_run_per_output_folder(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _three_files(src)
    out.mkdir()
    with folder_lock(out), pytest.raises(FolderBusy, match=rf"pid {os.getpid()} on "):
        convert(src, out, ConvertOptions(size=16))
    assert not (out / "manifest.parquet").exists()
    assert convert(src, out, ConvertOptions(size=16)).converted == 3  # released: a later run goes ahead


def test_two_concurrent_runs_one_waits_out_nothing_redone(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    for i in range(12):
        make_dicom(
            src, f"f{i}.dcm", chest_like(200, 160, seed=i), transfer_syntax=TRANSFER_SYNTAXES["j2k_lossless"]
        )
    args = [sys.executable, "-m", "cxrlab.cli.main", "convert", str(src), str(out), "--size", "64", "--json"]
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(2)]  # fmt: skip
    outcomes = [(p.wait(120), *p.communicate()) for p in runs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes in ([0, 0], [0, 1]), outcomes
    for code, _stdout, stderr in outcomes:
        assert "Traceback" not in stderr
        if code == 1:
            assert "in use by another cxrlab run (convert, pid" in stderr
    converted = sum(json.loads(stdout)["converted"] for code, stdout, _ in outcomes if code == 0)
    assert converted == 12  # never twice
    assert len(pd.read_parquet(out / "manifest.parquet")) == 12


def test_removed_source_stays_listed_with_its_output(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    _three_files(src)
    convert(src, out, ConvertOptions(size=16))
    (src / "f1.dcm").unlink()
    convert(src, out, ConvertOptions(size=16))
    m = pd.read_parquet(out / "manifest.parquet").set_index("image_id")
    assert m["status"].to_dict() == {"f0": "ok", "f2": "ok", "f1": "removed"}
    assert m.loc["f1", "output"] == "f1.png" and (out / "f1.png").is_file()
    assert "source is gone" in m.loc["f1", "error"]
    assert set(pd.read_csv(out / "manifest.csv")["image_id"]) == {"f0", "f1", "f2"}


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (forkserver, resource tracker, workers), from /proc."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_9_of_the_main_process_ends_its_workers_and_a_rerun_resumes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for i in range(30):
        make_dicom(
            src,
            f"f{i:02d}.dcm",
            chest_like(600, 500, seed=i),
            transfer_syntax=TRANSFER_SYNTAXES["j2k_lossless"],
        )
    args = [sys.executable, "-m", "cxrlab.cli.main", "convert", str(src), str(tmp_path / "out"),
            "--size", "256", "--workers", "2", "--j2k-full"]  # fmt: skip
    proc = subprocess.Popen(args, env={**os.environ, "CXRLAB_NO_PROGRESS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    journal = tmp_path / "out" / ".manifest.journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (journal.is_file() and journal.stat().st_size > 0):
        time.sleep(0.05)
    descendants = _children(proc.pid)
    assert descendants, "the run started no worker processes"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in descendants):
        time.sleep(0.1)
    assert not [p for p in descendants if _alive(p)], "workers outlived the killed parent by 10 s"

    resumed = _cxrlab("convert", str(src), str(tmp_path / "out"), "--size", "256", "--j2k-full")
    assert resumed.returncode == 0, resumed.stderr
    fresh = convert(src, tmp_path / "fresh", ConvertOptions(size=256, j2k_full=True))
    assert fresh.converted == 30
    for p in (tmp_path / "fresh").glob("*.png"):
        assert p.read_bytes() == (tmp_path / "out" / p.name).read_bytes()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("address", ["garbage", "tcp://", "tcp://host:99999", "http://x:1"])
def test_malformed_cluster_address_is_a_usage_error(address: str) -> None:
    from cxrlab.imaging.runner import check_address

    with pytest.raises(UsageError, match="not a Dask scheduler address"):
        check_address(address)


def test_unreachable_cluster_is_one_line_quickly(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _three_files(src)
    started = time.monotonic()
    garbage = _cxrlab("convert", str(src), str(tmp_path / "out"), "--cluster", "garbage")
    assert garbage.returncode == 2 and "not a Dask scheduler address" in garbage.stderr
    closed = _cxrlab("convert", str(src), str(tmp_path / "out"), "--cluster", "tcp://127.0.0.1:9")
    assert closed.returncode == 1 and "cannot reach the Dask scheduler" in closed.stderr
    for run in (garbage, closed):
        assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 30


def test_library_errors_are_cxrlab_errors(tmp_path: Path) -> None:
    with pytest.raises(CxrlabError):
        convert(tmp_path / "absent", tmp_path / "out")
