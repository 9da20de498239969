"""The service as users run it: set up by the CLI, served by a real uvicorn process that is killed and
restarted mid-session without losing saved work, and no patient information in its logs or its database."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pydicom
import pytest
from tests.annotate.conftest import PASSWORD
from typer.testing import CliRunner

from cxrlab.annotate import Database, audit
from cxrlab.annotate.servers import new_database, serve_process
from cxrlab.cli.main import app as cli
from cxrlab.errors import CxrlabError

PHI = ("DOE^JANE", "MRN-7788123", "19450307")


def _cli(*args: str, stdin: str | None = None) -> SimpleNamespace:
    """An annotate command in this process (imports paid once), with the exit code ``main`` would give."""
    res = CliRunner().invoke(cli, ["annotate", *args], input=stdin)
    code, err = res.exit_code, ""
    if isinstance(res.exception, CxrlabError):
        code, err = res.exception.exit_code, str(res.exception)
    return SimpleNamespace(returncode=code, stdout=res.stdout, stderr=err)


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a child process: one line on stderr and the exit code."""
    return subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", "annotate", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "CXRLAB_NO_PROGRESS": "1"},
    )


def _phi_copy(vindr_phantom: Path, folder: Path) -> Path:
    """Phantom DICOMs with a patient name, id and birth date written into their headers."""
    for i, src in enumerate(sorted((vindr_phantom / "train").glob("*.dicom"))[:3]):
        ds = pydicom.dcmread(src)
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI
        (folder / "train").mkdir(parents=True, exist_ok=True)
        ds.save_as(folder / "train" / f"img{i}.dicom")
    return folder


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_cli_setup_and_a_server_killed_mid_session_loses_no_saved_work(
    backend: str, vindr_phantom: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db, cache, log = str(tmp_path / "reading.db"), tmp_path / "cache", tmp_path / "server.log"
    if backend == "postgresql":
        db = new_database(request.getfixturevalue("postgres_server"))
    src = _phi_copy(vindr_phantom, tmp_path / "incoming")
    assert (
        _cli("project", "create", "study", "--labels", "vindr", "--readers", "1", "--db", db).returncode == 0
    )
    res = _cli(
        "user",
        "add",
        "reader1",
        "--role",
        "radiologist",
        "--project",
        "study",
        "--db",
        db,
        stdin=PASSWORD + "\n",
    )
    assert res.returncode == 0, res.stderr
    assert _cli("user", "add", "x", "--role", "radiologist", "--db", db, stdin="short\n").returncode == 1
    res = _cli("import", "study", str(src), "--db", db, "--cache", str(cache), "--json")
    assert res.returncode == 0, res.stderr
    assert '"added": 3' in res.stdout and len(list(cache.rglob("*.png"))) == 3  # renditions made ahead

    with serve_process(db, cache, log=log) as (base, proc):
        client = httpx.Client(base_url=base)
        csrf = client.post("/api/login", json={"name": "reader1", "password": PASSWORD}).json()["csrf_token"]
        pid = client.get("/api/projects").json()[0]["id"]
        image = client.get(f"/api/projects/{pid}/queue").json()["next"]
        assert client.get(f"/api/images/{image}/display").status_code == 200
        saved = client.post(
            f"/api/images/{image}/annotations",
            headers={"X-CSRF-Token": csrf},
            json={"label": "Aortic enlargement", "box": [20, 30, 80, 90]},
        )
        assert saved.status_code == 201
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    with serve_process(db, cache, log=log) as (base, _):
        again = httpx.Client(base_url=base, cookies=client.cookies)  # the same browser, same session
        marks = again.get(f"/api/images/{image}/annotations").json()
        assert [(m["label"], m["box"]) for m in marks] == [("Aortic enlargement", [20.0, 30.0, 80.0, 90.0])]
        r = again.patch(
            f"/api/annotations/{marks[0]['id']}",
            headers={"X-CSRF-Token": csrf},
            json={"version": 1, "box": [21, 30, 80, 90]},
        )
        assert r.status_code == 200 and r.json()["version"] == 2
        assert again.post(f"/api/images/{image}/complete", headers={"X-CSRF-Token": csrf}).status_code == 200

    res = _cli("export", "study", "--out", str(tmp_path / "tables"), "--db", db)
    assert res.returncode == 0, res.stderr
    import pandas as pd

    f = pd.read_parquet(tmp_path / "tables" / "findings.parquet")
    assert f[["reader", "label", "x_min"]].values.tolist() == [
        ["R1", "Aortic enlargement", 21.0]
    ]  # finished reads
    # No patient information anywhere the service writes: logs, audit, database file (SQLite + its WAL).
    written = log.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("reading.db*"))
    written += json.dumps(_audit(db)).encode()
    for value in PHI:
        assert value.encode() not in written, value


def _audit(db: str) -> list[dict]:
    database = Database(db)
    with database.session() as s:
        entries = audit.entries(s)
    database.dispose()
    assert {e["action"] for e in entries} >= {"import", "login", "mark_create", "mark_update", "export"}
    return entries


def test_cli_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    db = str(tmp_path / "x.db")
    res = _main("import", "nothere", str(tmp_path), "--db", db)
    assert res.returncode == 1 and res.stderr.strip() == "error: no project 'nothere'"
    assert _cli("project", "create", "p", "--labels", "no-such-set", "--db", db).returncode == 1
    assert _cli("import", "p", "--db", db).returncode == 2


def test_a_database_that_cannot_be_opened_is_one_line_without_its_password(tmp_path: Path) -> None:
    unknown = _main("project", "create", "p", "--labels", "vindr", "--db", "nosuchdb://x")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "error: --db names a database this install cannot open: nosuchdb://x"
    refused = _main(
        "project", "create", "p", "--labels", "vindr", "--db", "postgresql://u:secret@127.0.0.1:1/x"
    )
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "cannot open the database" in refused.stderr and "secret" not in refused.stderr
    assert "Traceback" not in unknown.stderr + refused.stderr


@pytest.fixture(autouse=True)
def _cleanup(tmp_path: Path):
    yield
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def test_two_worker_processes_share_sessions_and_stop_together(tmp_path: Path) -> None:
    """Sessions, throttle and marks live in the database, so any worker answers any request."""
    db = str(tmp_path / "w.db")
    assert _cli("user", "add", "boss", "--role", "admin", "--db", db, stdin=PASSWORD + "\n").returncode == 0
    with serve_process(db, tmp_path / "cache", workers=2) as (base, proc):
        client = httpx.Client(base_url=base)
        csrf = client.post("/api/login", json={"name": "boss", "password": PASSWORD}).json()["csrf_token"]
        for i in range(8):  # spread over both workers
            r = client.post("/api/projects", headers={"X-CSRF-Token": csrf}, json={"name": f"p{i}"})
            assert r.status_code == 201, r.text
        assert len(client.get("/api/projects").json()) == 8
        group = proc.pid
        assert len(_alive(group)) >= 3  # the supervisor and its two workers
    deadline = time.monotonic() + 15
    while _alive(group) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(group) == []  # nothing of the group is left running


def _alive(group: int) -> list[int]:
    """Processes of a process group that are not zombies (from /proc: state and group of each)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found
