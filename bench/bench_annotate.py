"""20 simulated radiologists reading at once over HTTP on loopback, against a real ``uvicorn`` process of the
reading service, on SQLite and on PostgreSQL (Debian's, started in a temporary folder).

Each reader (an asyncio httpx client with its own session, on uvloop) logs in; when all 20 have (twenty argon2
logins in the same second are a start-up cost, not reading), each starts after a pause of up to ``THINK`` s
(people do not open their first image in the same millisecond) and walks its queue: opens the image (image
data + the 16-bit display rendition of a 2,500 px DICOM at screen level, 1,250 px), zooms to the full
resolution on every ``ZOOM_EVERY``-th image, draws two boxes, moves one, marks the read done, thinks ``THINK``
s, and goes on. Timed: the next image's display data after the first view, the full resolution, and each
save (create or move a box). Baseline measured beside them in the same run: one reader alone on the same
server (and a bare INSERT + COMMIT through SQLAlchemy on the same database). Targets: p95 display < 200 ms,
p95 save < 50 ms, zero errors. Bounded: IMAGES images, each read by READS_PER_IMAGE readers.
Printed beside the client's figures: the server side p95 per route (the workers' own timing log,
:mod:`cxrlab.annotate.timing`) and the CPU seconds used by the service, PostgreSQL and the client while the
readers read, with the machine's load average: the 2 cores are shared, and a client on them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import statistics
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import uvloop

from cxrlab.annotate import Database
from cxrlab.annotate.admin import add_member, create_project, create_user
from cxrlab.annotate.importer import import_source
from cxrlab.annotate.pixels import make_ahead
from cxrlab.annotate.renditions import RenditionCache
from cxrlab.annotate.servers import new_database, postgres_bin, serve_process, temporary_postgres
from cxrlab.annotate.timing import ENV as TIMING_ENV
from cxrlab.datasets.phantom import make_vindr

READERS = 20
IMAGES = 24
READS_PER_IMAGE = 3
SIZE = 2500
THINK = 0.5
ZOOM_EVERY = 2
WORKERS = 1
"""``annotate serve``'s default. On this 2-core machine, with the client on the same cores, two uvicorn
workers gave worse saves (quiet machine, save p95 SQLite 67-88 ms, PostgreSQL 44-76 ms) than one
(SQLite 42-48 ms, PostgreSQL 50-56 ms): a second worker competes with the client and with the first."""
PASSWORD = "bench password 1"
TIME_LIMIT = 300.0
TLS = ssl.create_default_context()  # unused on http://, but httpx would load the CA list once per client


def setup(db: Database, phantom: Path) -> None:
    """Project, readers, import (renditions made ahead, as `annotate import` does)."""
    with db.session() as s:
        project = create_project(s, "bench", "vindr", readers=READS_PER_IMAGE, test_readers=READS_PER_IMAGE)
        for i in range(READERS):
            add_member(s, project, create_user(s, f"reader{i:02d}", "radiologist", PASSWORD))
        s.commit()
        report = import_source(s, project, phantom, split="train")
    cache = RenditionCache(db.cache_dir)
    for ref in report.new_images:
        make_ahead(cache, ref)
    cache.close()


async def reader(
    base: str,
    name: str,
    start: asyncio.Barrier,
    marks: dict[str, Any],
    times: dict[str, list[float]],
    errors: list[str],
) -> None:
    """Log in and open the queue, wait until every reader has (the argon2 logins of 20 people arriving in the
    same second are not part of reading), then read the queue."""
    async with httpx.AsyncClient(base_url=base, timeout=60, verify=TLS) as client:
        r = await client.post("/api/login", json={"name": name, "password": PASSWORD})
        ok = r.status_code == 200
        errors.extend([] if ok else [f"login {r.status_code}"])
        if ok:
            headers = {"X-CSRF-Token": r.json()["csrf_token"]}
            pid = (await client.get("/api/projects")).json()[0]["id"]
            tasks = (await client.get(f"/api/projects/{pid}/queue")).json()["tasks"]
        if await start.wait() == 0:
            marks["reading"] = marks["snapshot"]()  # once, as the reading starts
        if ok:
            await read_queue(client, name, tasks, headers, times, errors)


async def read_queue(
    client: httpx.AsyncClient,
    name: str,
    tasks: list[dict],
    headers: dict[str, str],
    times: dict[str, list[float]],
    errors: list[str],
) -> None:
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    await asyncio.sleep(THINK * rng.random())  # 20 people do not open their first image in the same ms
    for k, task in enumerate(tasks):
        t0 = time.perf_counter()
        info = await client.get(f"/api/images/{task['image_id']}")
        screen = info.json()["display"]["levels"][-1] if info.status_code == 200 else {"png": "/missing"}
        png_status, png_bytes = await fetch(client, screen["png"])
        if k > 0:
            times["display"].append((time.perf_counter() - t0) * 1000)
        if png_status != 200 or png_bytes < 1000:
            errors.append(f"display {info.status_code} {png_status}")
            continue
        if k % ZOOM_EVERY == ZOOM_EVERY - 1:  # the reader zooms in: the full resolution
            t0 = time.perf_counter()
            full_status, _ = await fetch(client, f"/api/images/{task['image_id']}/display?level=0")
            times["full"].append((time.perf_counter() - t0) * 1000)
            errors.extend([f"full {full_status}"] if full_status != 200 else [])
        await save_marks(client, task["image_id"], headers, times["save"], errors)
        await asyncio.sleep(THINK * (0.5 + rng.random()))


async def fetch(client: httpx.AsyncClient, url: str) -> tuple[int, int]:
    """GET a large body as a viewer does, all of it received, counted and dropped as it streams in (not
    joined into one bytes object: that copy is the client's cost, not the service's)."""
    async with client.stream("GET", url) as response:
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
        return response.status_code, size


async def save_marks(
    client: httpx.AsyncClient, image_id: int, headers: dict[str, str], save_ms: list[float], errors: list[str]
) -> None:
    """Two boxes drawn, one moved, the read marked done."""
    ids = []
    for box in ([100, 120, 600, 700], [900, 400, 1400, 1100]):
        t0 = time.perf_counter()
        r = await client.post(
            f"/api/images/{image_id}/annotations", headers=headers, json={"label": "Nodule/Mass", "box": box}
        )
        save_ms.append((time.perf_counter() - t0) * 1000)
        errors.extend([f"save {r.status_code}"] if r.status_code != 201 else [])
        ids.append(r.json().get("id"))
    t0 = time.perf_counter()
    r = await client.patch(
        f"/api/annotations/{ids[0]}", headers=headers, json={"version": 1, "box": [110, 130, 610, 710]}
    )
    save_ms.append((time.perf_counter() - t0) * 1000)
    errors.extend([f"move {r.status_code}"] if r.status_code != 200 else [])
    r = await client.post(f"/api/images/{image_id}/complete", headers=headers)
    errors.extend([f"complete {r.status_code}"] if r.status_code != 200 else [])


async def load(base: str, readers: int, marks: dict[str, Any]) -> tuple[dict[str, list[float]], list[str]]:
    """``marks["snapshot"]()`` is called when the reading starts (all logged in), its result kept as
    ``marks["reading"]``."""
    times: dict[str, list[float]] = {"display": [], "full": [], "save": []}
    errors: list[str] = []
    start = asyncio.Barrier(readers)
    jobs = [reader(base, f"reader{i:02d}", start, marks, times, errors) for i in range(readers)]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=TIME_LIMIT)
    return times, errors


def baseline_insert(db: Database) -> float:
    """Median ms of one bare INSERT + COMMIT through SQLAlchemy on the same database."""
    from sqlalchemy import text

    insert = []
    with db.engine.connect() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_baseline (id INTEGER PRIMARY KEY, v FLOAT)"))
        conn.commit()
        for i in range(50):
            t0 = time.perf_counter()
            conn.execute(text("INSERT INTO bench_baseline (id, v) VALUES (:i, 1.0)"), {"i": i})
            conn.commit()
            insert.append((time.perf_counter() - t0) * 1000)
    return statistics.median(insert)


def group_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and all its descendants (live, and those already reaped)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
    return total


def postmaster_pid(url: str) -> int | None:
    """The PostgreSQL server's pid (its data folder beside the socket folder of ``url``), or None."""
    if "host=" not in url:
        return None
    pidfile = Path(url.split("host=", 1)[1].split("&")[0]).parent / "data" / "postmaster.pid"
    return int(pidfile.read_text().split()[0]) if pidfile.is_file() else None


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


def run(kind: str, url: str, phantom: Path, work: Path) -> None:
    db = Database(url, cache_dir=work / f"cache-{kind}")
    setup(db, phantom)
    insert_ms = baseline_insert(db)
    timing = work / f"timing-{kind}.log"
    os.environ[TIMING_ENV] = str(timing)  # the workers log each request's server time there
    pg = postmaster_pid(url)
    with serve_process(url, db.cache_dir, workers=WORKERS) as (base, proc):

        def snapshot() -> tuple[float, ...]:  # wall, client, service and database CPU seconds so far
            db_cpu = group_cpu(pg) if pg else 0.0
            return time.perf_counter(), time.process_time(), group_cpu(proc.pid), db_cpu

        solo, solo_errors = uvloop.run(load(base, 1, {"snapshot": snapshot}))  # one reader alone
        marks: dict[str, Any] = {"snapshot": snapshot}
        times, errors = uvloop.run(load(base, READERS, marks))
        spent = [b - a for a, b in zip(marks["reading"], snapshot(), strict=True)]
        wall, client_cpu, server_cpu, db_cpu = spent
    del os.environ[TIMING_ENV]
    db.dispose()
    errors += solo_errors
    print(
        f"{kind}: {READERS} readers, {len(times['display'])} views {len(times['save'])} saves, {wall:.0f} s, "
        f"{len(errors)} errors {sorted(set(errors))[:3]}"
    )
    rows = (
        ("next-image display data (screen level, 16-bit)", "display", 200.0),
        ("full resolution on zoom (2,500 px, 16-bit)", "full", None),
        ("save", "save", 50.0),
    )
    for what, key, target in rows:
        got, alone = p95(times[key]), p95(solo[key])
        verdict = (
            "" if target is None else f" (target < {target:.0f}) -> {'ok' if got < target else 'MISSED'}"
        )
        print(f"  p95 {what}: {got:.0f} ms = {got / alone:.1f}x one reader alone ({alone:.0f} ms){verdict}")
    server = server_times(timing)
    print(
        "  server side p95 (ms): "
        + ", ".join(f"{key} {p95(v):.0f} (n={len(v)})" for key, v in sorted(server.items()))
    )
    print(
        f"  CPU over the {wall:.1f} s of reading: service {server_cpu:.1f} s"
        + (f", PostgreSQL {db_cpu:.1f} s" if pg else "")
        + f", load client {client_cpu:.1f} s; machine load average {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores (a bare INSERT + COMMIT on this database: {insert_ms:.2f} ms)"
    )


SAVE_ROUTES = {("POST", "/api/images/{image_id}/annotations"), ("PATCH", "/api/annotations/{mark_id}")}


def server_times(timing: Path) -> dict[str, list[float]]:
    """Server-side ms per request kind (from the workers' timing log), to tell queueing in the server from
    time spent in the client and the loopback."""
    out: dict[str, list[float]] = {}
    for line in timing.read_text().splitlines():
        method, route, _status, ms, *_ = line.split()
        key = "save" if (method, route) in SAVE_ROUTES else f"{method} {route}"
        out.setdefault(key, []).append(float(ms))
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="cxrlab-bench-annotate-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        phantom = make_vindr(work / "vindr", images=IMAGES, seed=0, size=SIZE, test_fraction=0.0).root
        print(f"phantom: {IMAGES} DICOMs of {SIZE} px in {time.perf_counter() - t0:.0f} s")
        run("sqlite", str(work / "bench.db"), phantom, work)
        if postgres_bin() is None:
            print("postgresql: not installed (Debian package postgresql): skipped")
            return
        with temporary_postgres(durable=True) as server:
            run("postgresql", new_database(server), phantom, work)


if __name__ == "__main__":
    main()
