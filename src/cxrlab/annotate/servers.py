"""Throwaway servers for tests, benchmarks and trials: Debian's PostgreSQL in a temporary folder, and the
service itself as a real ``uvicorn`` process on a free loopback port.

PostgreSQL listens on a Unix socket only (no TCP port at all). As root it runs as the ``postgres`` system
user (the server refuses root), in a folder that user owns; everything is removed on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from cxrlab.errors import CxrlabError


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL binaries (newest version), or None where it is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextmanager
def temporary_postgres(durable: bool = False) -> Iterator[str]:
    """Start a PostgreSQL cluster in a new temporary folder; yields a URL to create databases through.

    Tests run it with ``fsync=off`` (a throwaway cluster); ``durable`` keeps PostgreSQL's own default, every
    commit flushed to disk, which is what a benchmark of saves must measure."""
    bindir = postgres_bin()
    if bindir is None:
        raise CxrlabError("PostgreSQL is not installed (Debian package postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="cxrlab-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        os.chmod(folder, 0o755)
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(sock, "postgres", "postgres")
    run = {"check": True, "capture_output": True, "text": True}
    try:
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            **run,
        )  # type: ignore[call-overload]
        fsync = "on" if durable else "off"
        options = f"-k {sock} -c listen_addresses='' -c fsync={fsync} -c max_connections=100"
        subprocess.run(
            _as_postgres(
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(folder / "log"),
                    "start",
                ]
            ),
            **run,
        )  # type: ignore[call-overload]
        yield f"postgresql+psycopg://postgres@/postgres?host={sock}"
    except subprocess.CalledProcessError as exc:
        raise CxrlabError(f"PostgreSQL did not start: {exc.stderr.strip()[-500:]}") from None
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]),
                capture_output=True,
            )
        shutil.rmtree(folder, ignore_errors=True)


def restart_postgres(server_url: str) -> None:
    """Restart the server of :func:`temporary_postgres` (its URL): every open connection to it is cut, as when
    a real server is restarted for an upgrade."""
    bindir = postgres_bin()
    assert bindir is not None
    folder = Path(server_url.split("host=", 1)[1].split("&")[0]).parent
    restart = [str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-m", "fast", "-w", "-t", "60"]
    # The server's output to its log file as at start: a pipe would be held open by the new server.
    subprocess.run(
        _as_postgres([*restart, "-l", str(folder / "log"), "restart"]),
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def new_database(server_url: str) -> str:
    """Create an empty database on the server; returns its URL."""
    import psycopg

    name = f"cxrlab_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.replace("/postgres?", f"/{name}?")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_process(
    db: str, cache: str | Path, *, port: int | None = None, log: Path | None = None, workers: int = 1
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``cxrlab annotate serve`` as a child process on 127.0.0.1 in its own process group (with its workers,
    all killed at the end); yields (base URL, process)."""
    port = port or free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    cmd = [
        sys.executable,
        "-m",
        "cxrlab.cli.main",
        "annotate",
        "serve",
        "--db",
        db,
        "--cache",
        str(cache),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base, proc)
        yield base, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group this function started: server and workers
        proc.wait(timeout=30)
        if log:
            out.close()  # type: ignore[union-attr]


def wait_until_up(base: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CxrlabError(f"the service exited with code {proc.returncode} before answering")
        try:
            if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise CxrlabError(f"the service did not answer on {base} within {timeout:.0f} s")
