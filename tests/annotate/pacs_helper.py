"""Run inside a private network namespace (``unshare -n``) by test_pacs: starts Orthanc with its DICOMweb
plugin on loopback, stores phantom DICOMs by STOW-RS, imports them through DICOMweb with a study-date filter,
and checks the pixels against the files. Prints one JSON line; exit 0 when every check passed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom

from cxrlab.annotate import Database
from cxrlab.annotate.admin import create_project
from cxrlab.annotate.pacs import client_for, import_pacs
from cxrlab.imaging.decoders import decode_pixels, read_dataset, transfer_syntax

PORT = 48042
EXPLICIT_LE = "1.2.840.10008.1.2.1"


def start_orthanc(work: Path, plugin: str) -> subprocess.Popen:
    config = {
        "Name": "cxrlab-test",
        "StorageDirectory": str(work / "storage"),
        "IndexDirectory": str(work / "index"),
        "HttpPort": PORT,
        "DicomServerEnabled": False,
        "WebDavEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }
    (work / "orthanc.json").write_text(json.dumps(config))
    log = open(work / "orthanc.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(["Orthanc", str(work / "orthanc.json")], stdout=log, stderr=log)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/system", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"Orthanc did not start: {(work / 'orthanc.log').read_text()[-2000:]}")


def _pixels(ds: pydicom.Dataset, path: Path) -> np.ndarray:
    """Stored values through cxrlab's decoders, which infer a transfer syntax the file meta lacks."""
    return decode_pixels(ds, path=path).pixels


def main(work: Path, phantom: Path, plugin: str) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    proc = start_orthanc(work, plugin)
    try:
        url = f"http://127.0.0.1:{PORT}/dicom-web"
        originals, files = {}, {}
        for path in sorted(phantom.rglob("*.dicom")):
            ds = pydicom.dcmread(path)
            ds.StudyDate = "20240105" if path.parent.name == "train" else "20240220"
            originals[str(ds.SOPInstanceUID)] = ds
            files[str(ds.SOPInstanceUID)] = path
        client_for(url).store_instances(list(originals.values()))
        db = Database(str(work / "reading.db"), cache_dir=work / "cache")
        with db.session() as s:
            project = create_project(s, "pacs", "vindr", readers=1)
            report = import_pacs(s, project, url, work / "pacs", study_date="20240101-20240131")
        train = {uid for uid, ds in originals.items() if ds.StudyDate == "20240105"}
        imported = {p.stem: p for p in (work / "pacs").rglob("*.dcm")}
        checks = {
            "stored": len(originals),
            "added": report.added,
            "problems": report.problems,
            "filter_ok": set(imported) == train,
            "pixels_equal": 0,
            "syntax_kept": 0,
        }
        for uid, path in imported.items():
            got, want = read_dataset(path), read_dataset(files[uid])  # a missing syntax UID is inferred
            checks["pixels_equal"] += int(np.array_equal(_pixels(got, path), _pixels(want, files[uid])))
            same_syntax = transfer_syntax(got, path)[0] == transfer_syntax(want, files[uid])[0]
            checks["syntax_kept"] += int(same_syntax)
        # A frame over WADO-RS with an explicit transfer syntax: the same pixels, uncompressed.
        uid = sorted(train)[0]
        want = read_dataset(files[uid])
        frame = client_for(url).retrieve_instance_frames(
            str(want.StudyInstanceUID),
            str(want.SeriesInstanceUID),
            uid,
            frame_numbers=[1],
            media_types=(("application/octet-stream", EXPLICIT_LE),),
        )[0]
        arr = _pixels(want, files[uid])
        checks["frame_equal"] = bool(
            np.array_equal(np.frombuffer(frame, arr.dtype.newbyteorder("<")).reshape(arr.shape), arr)
        )
        ok = (
            checks["filter_ok"]
            and checks["added"] == len(train) == checks["pixels_equal"] == checks["syntax_kept"]
            and not checks["problems"]
            and checks["frame_equal"]
        )
        print(json.dumps(checks))
        return 0 if ok else 1
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
