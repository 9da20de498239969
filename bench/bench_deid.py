"""De-identification throughput against copying the same files with pydicom alone, measured in this run.

The baseline reads each file with ``pydicom.dcmread`` and writes it back unchanged with ``save_as``: the
least any pydicom-based de-identifier can do. ``cxrlab deid`` (one worker, in process) adds the checks, the
profile walk, the keyed pseudonyms, the journal and the atomic publish. Files: phantom hospital exports at a
real size (2048 px, full PHI headers with sequences and private tags), split into uncompressed and JPEG 2000
ones; the pixel data is never decoded, so the ratio measures header work plus bookkeeping.
Each is the best of REPEATS interleaved runs (the machine is shared: the minimum is the least disturbed).
Target: deid time / baseline time <= 2.0 for both profiles on both groups.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

SIZE = 2048
PATIENTS = 8
REPEATS = 5
GROUPS = {"uncompressed": ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1"),
          "JPEG 2000": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91")}  # fmt: skip


def _split(hospital: Path, root: Path) -> dict[str, list[Path]]:
    import pydicom

    groups: dict[str, list[Path]] = {name: [] for name in GROUPS}
    for path in sorted(hospital.rglob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.get("BurnedInAnnotation") == "YES" or "SCREEN SAVE" in list(ds.get("ImageType", [])):
            continue  # held back by deid: not a like-for-like copy
        for name, syntaxes in GROUPS.items():
            if ds.file_meta.TransferSyntaxUID in syntaxes:
                target = root / name / path.relative_to(hospital)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                groups[name].append(target)
    return groups


def _baseline(files: list[Path], out: Path) -> float:
    import pydicom

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for i, path in enumerate(files):
        ds = pydicom.dcmread(path)
        ds.save_as(out / f"{i}.dcm")
    return time.perf_counter() - started


def _deid(src: Path, out: Path, profile: str, secret: Path) -> float:
    from cxrlab.imaging.deid import deid
    from cxrlab.imaging.deid_profile import ProfileOptions

    started = time.perf_counter()
    result = deid(src, out, ProfileOptions(profile), secret_file=secret)
    seconds = time.perf_counter() - started
    if result.held:
        raise RuntimeError(f"deid held back files in the benchmark: {result.held}")
    return seconds


def main() -> None:
    from cxrlab.datasets.phantom import make_hospital

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        hospital = make_hospital(root / "hospital", patients=PATIENTS, seed=0, size=SIZE).root
        groups = _split(hospital, root / "groups")
        secret = root / "secret"
        secret.write_text("benchmark secret")
        print(f"phantom hospital at {SIZE} px in {time.perf_counter() - t0:.0f} s")
        header = ("files", "n", "MB", "pydicom r+w s", "profile", "deid s", "ratio")
        print("{:<14} {:>3} {:>6} {:>14} {:>8} {:>8} {:>6}".format(*header))
        for name, files in groups.items():
            megabytes = sum(p.stat().st_size for p in files) / 1e6
            _baseline(files, root / "warm")  # page cache and imports warm for both
            times: dict[str, list[float]] = {"base": [], "vindr": [], "basic": []}
            for i in range(REPEATS):  # interleaved, each on a synced disk, outputs removed after
                for what in times:
                    out = root / f"{what}{i}"
                    os.sync()
                    if what == "base":
                        times[what].append(_baseline(files, out))
                    else:
                        times[what].append(_deid(root / "groups" / name, out, what, secret))
                    shutil.rmtree(out)
            base = min(times["base"])
            for profile in ("vindr", "basic"):
                best = min(times[profile])
                ratio = best / base
                verdict = "ok" if ratio <= 2.0 else "OVER TARGET"
                print(f"{name:<14} {len(files):>3} {megabytes:>6.1f} {base:>14.3f} {profile:>8} "
                      f"{best:>8.3f} {ratio:>5.2f}x {verdict}")  # fmt: skip
        print("target: deid / (pydicom read + write unchanged) <= 2.0x")


if __name__ == "__main__":
    main()
