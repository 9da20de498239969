"""DICOM -> 1024 px PNG: cxrlab against the challenge-notebook pipeline, on real-size phantoms in every
transfer syntax, all measured in this run.

Figures (ratios; absolute times on this shared machine move from run to run):
- per syntax: cxrlab images/s over the notebook's (pydicom's default decoder, ``apply_voi_lut``, invert,
  PIL LANCZOS, PNG level 6); targets >= 4x uncompressed, >= 2x compressed;
- single worker: the sum of the unavoidable parts measured alone (fastest decode, resize, display table,
  encode) over the whole per-file pipeline; target >= 0.85;
- 2 workers over 1 (target >= 1.7x; needs 2 idle cores) and the peak RSS of each worker (< 1 GiB).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROWS, COLS = 2560, 2100  # the real size: VinDr images are 2000-3000 px a side
PER_SYNTAX = 3
SIZE = 1024


def _make_files(folder: Path) -> dict[str, list[Path]]:
    from cxrlab.datasets.phantom import TRANSFER_SYNTAXES, DicomSpec, write_dicom
    from cxrlab.datasets.phantom.anatomy import render_chest

    rng = np.random.default_rng(0)
    files: dict[str, list[Path]] = {}
    for name, uid in TRANSFER_SYNTAXES.items():
        for i in range(PER_SYNTAX):
            chest = render_chest(rng, (ROWS, COLS), [])
            eight = name == "jpeg_baseline"
            bits = 8 if eight else 12
            stored = np.rint(chest * (2**bits - 1)).astype(np.uint8 if eight else np.uint16)
            photometric = "MONOCHROME1" if i % 2 else "MONOCHROME2"
            if photometric == "MONOCHROME1":
                stored = (2**bits - 1) - stored
            spec = DicomSpec(transfer_syntax=uid, bits_stored=bits, bits_allocated=8 if eight else 16,
                             photometric=photometric, windows=[(2**bits / 2, 2**bits * 0.8)])  # fmt: skip
            path = folder / name / f"{name}_{i}.dicom"
            write_dicom(path, stored, spec)
            files.setdefault(name, []).append(path)
    return files


def notebook_pipeline(path: Path) -> bytes:
    """What VinBigData notebooks do: the slow, obvious baseline."""
    import pydicom
    from PIL import Image
    from pydicom.pixels import apply_voi_lut

    ds = pydicom.dcmread(path)
    data = apply_voi_lut(ds.pixel_array, ds)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        data = np.amax(data) - data
    data = data - np.min(data)
    data = data / np.max(data)
    data = (data * 255).astype(np.uint8)
    img = Image.fromarray(data).resize((SIZE, SIZE), Image.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="PNG")  # Pillow's default compression level 6
    return buf.getvalue()


def _time(fn, *args) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _parts(path: Path) -> float:
    """The unavoidable work of one file, each part timed alone: decode, resize, table, encode."""
    from cxrlab.imaging.convert import encode_image
    from cxrlab.imaging.decoders import decode_pixels, read_dataset
    from cxrlab.imaging.dicom import DisplayOptions, apply_table, display_table
    from cxrlab.imaging.transform import resize_image

    t0 = time.perf_counter()
    ds = read_dataset(path)
    pixels = decode_pixels(ds, target=(SIZE, SIZE)).pixels
    t1 = time.perf_counter()
    small = resize_image(pixels, SIZE, SIZE)
    t2 = time.perf_counter()
    table, _ = display_table(ds, DisplayOptions(), stats_of=small)
    img = apply_table(small, table)
    t3 = time.perf_counter()
    encode_image(img, "png", 1)
    t4 = time.perf_counter()
    return (t1 - t0) + (t2 - t1) + (t3 - t2) + (t4 - t3)


def main() -> None:
    from cxrlab.imaging.convert import ConvertOptions, Task, convert, convert_file

    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        files = _make_files(folder / "src")
        print(f"{sum(map(len, files.values()))} phantom DICOMs of {COLS} x {ROWS} written in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        options = ConvertOptions(size=SIZE)
        out = folder / "single"
        out.mkdir()
        convert_file(Task("warm", str(files["explicit_le"][0]), str(out / "warm.png")), options)

        print(f"\n{'transfer syntax':24s} {'notebook img/s':>14s} {'cxrlab img/s':>13s} {'speed-up':>9s} "
              f"{'parts/pipeline':>15s}  target")  # fmt: skip
        total_pipe = total_parts = 0.0
        shortfalls = []
        for name, paths in files.items():
            base = sum(_time(notebook_pipeline, p) for p in paths)
            pipe = sum(
                _time(convert_file, Task(f"{name}{i}", str(p), str(out / f"{name}{i}.png")), options)
                for i, p in enumerate(paths)
            )
            parts = sum(_parts(p) for p in paths)
            total_pipe += pipe
            total_parts += parts
            speedup = base / pipe
            target = 4.0 if name in ("explicit_le", "implicit_le", "explicit_be") else 2.0
            if speedup < target:
                shortfalls.append(name)
            print(f"{name:24s} {len(paths) / base:14.2f} {len(paths) / pipe:13.2f} {speedup:8.1f}x "
                  f"{parts / pipe:15.2f}  >= {target:.0f}x", flush=True)  # fmt: skip
        print(f"\nsingle worker: unavoidable parts / whole pipeline = {total_parts / total_pipe:.2f} "
              "(target >= 0.85)")  # fmt: skip
        print("below the speed-up target: " + (", ".join(shortfalls) if shortfalls else "none"))

        # throughput over a longer run (each file listed 4 times in an images table), so that the per-run
        # start (the forkserver, forking the workers, writing the manifest) weighs as little as on a dataset
        import pandas as pd

        every = folder / "every.csv"
        sources = [p for paths in files.values() for p in paths]
        pd.DataFrame(
            {"image_id": [f"{p.stem}_{k}" for k in range(4) for p in sources],
             "path": [str(p) for _ in range(4) for p in sources]}
        ).to_csv(every, index=False)  # fmt: skip
        n = 4 * len(sources)
        convert(files["explicit_le"][0].parent, folder / "warm2", options, workers=2)  # start the forkserver
        one = two = 0.0
        for rep in range(2):  # alternate, so that a change in the machine's load hits both
            t1 = time.perf_counter()
            convert(every, folder / f"w1_{rep}", options, workers=1)
            one += time.perf_counter() - t1
            t2 = time.perf_counter()
            convert(every, folder / f"w2_{rep}", options, workers=2)
            two += time.perf_counter() - t2
        n *= 2
        manifest = pd.read_parquet(folder / "w2_1" / "manifest.parquet")
        rss = manifest.groupby("worker_pid")["worker_peak_rss_mb"].max()
        print(f"\n{n} files: 1 worker {n / one:.2f} img/s, 2 workers {n / two:.2f} img/s -> "
              f"{one / two:.2f}x (target >= 1.7x; load average now {os.getloadavg()[0]:.2f})")  # fmt: skip
        print("peak RSS per worker (MiB): " + ", ".join(f"{v:.0f}" for v in rss.to_numpy())
              + " (target < 1024)")  # fmt: skip


if __name__ == "__main__":
    main()
