"""Run one function over many files: in this process, in a local process pool, or on a Dask cluster.

The per-file work (convert one image, de-identify one DICOM) is a picklable module-level function
``work(task, options) -> record``, where a record is a JSON-able dict with at least ``image_id``, ``source``,
``output`` and ``status`` (``ok`` or ``failed``). The runner keeps at most ``2 x workers`` tasks in flight, so
memory does not grow with the dataset. A worker that dies (a decoder crash, out of memory) costs only the
file that kills a worker when retried alone: it gets a ``failed`` record, the others go on in a fresh pool.
Every record goes to ``on_result`` as it arrives, in the parent process, so that the caller can journal it
at once. An exception raised by ``work`` itself (``OSError``: the output folder is full or read-only) stops
the run. Workers exit when the process that started the run dies; a Dask cluster gets files in batches.
"""

from __future__ import annotations

import os
import re
import select
import socket
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import Any

import cv2

from cxrlab.errors import CxrlabError, ParameterError

__all__ = ["Task", "Work", "check_address", "failure_record", "run_tasks"]


@dataclass(frozen=True)
class Task:
    """One file to process: its id, absolute source path, absolute output path."""

    image_id: str
    source: str
    output: str


Record = dict[str, Any]
Work = Callable[[Task, Any], Record]
OnResult = Callable[[Record], None]


def failure_record(task: Task, error: str) -> Record:
    """The record of a file that produced no output; ``error`` says why, naming the file."""
    return {
        "image_id": task.image_id,
        "source": task.source,
        "output": task.output,
        "status": "failed",
        "error": error,
    }


def crash_record(task: Task) -> Record:
    return failure_record(
        task,
        f"{task.source}: the worker process died while processing this or a neighbouring file "
        "(a decoder crash or out of memory)",
    )


def run_tasks(
    work: Work,
    tasks: list[Task],
    options: Any,
    *,
    workers: int = 1,
    cluster: str | None = None,
    on_result: OnResult,
) -> None:
    """Call ``work(task, options)`` for every task and pass each record to ``on_result``.

    ``cluster`` (a Dask scheduler address) wins over ``workers``; its workers must see the same paths
    (a shared filesystem). With ``workers > 1`` the local pool starts processes by forkserver: a script
    calling this needs the usual ``if __name__ == "__main__":`` guard.
    """
    if cluster:
        _run_dask(work, tasks, options, cluster, on_result)
    elif workers <= 1:
        _run_inline(work, tasks, options, on_result)
    else:
        _run_pool(work, tasks, options, workers, on_result)


def _run_inline(work: Work, tasks: list[Task], options: Any, on_result: OnResult) -> None:
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)  # one core per worker, as in the pool: throughput scales with --workers
    try:
        for task in tasks:
            on_result(work(task, options))
    finally:
        cv2.setNumThreads(threads)


def _run_pool(work: Work, tasks: list[Task], options: Any, workers: int, on_result: OnResult) -> None:
    import multiprocessing

    # forkserver: workers fork from a clean single-threaded server, never from this process, whose threads
    # (thread pools, OpenMP, Arrow) could hold a lock at fork time and hang the child (seen in the demo).
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload([work.__module__])
    remaining = iter(tasks)
    while True:
        crashed = _pool_round(work, remaining, options, workers, ctx, on_result)
        if not crashed:
            return
        # a worker died holding these: retry each alone, so that only the file that kills its worker fails
        for task in crashed:
            if _pool_round(work, iter([task]), options, 1, ctx, on_result):
                on_result(crash_record(task))


def _pool_round(
    work: Work, remaining: Iterable[Task], options: Any, workers: int, ctx: Any, on_result: OnResult
) -> list[Task]:
    """Run tasks in one pool until they are done or a worker dies; return the tasks lost with it."""
    crashed: list[Task] = []
    source = iter(remaining)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(os.getpid(),)
    )
    with pool:
        in_flight: dict[Future[Record], Task] = {}

        def submit(batch: Iterable[Task]) -> None:
            for t in batch:
                in_flight[pool.submit(work, t, options)] = t

        submit(islice(source, 2 * workers))
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                task = in_flight.pop(future)
                try:
                    on_result(future.result())
                except BrokenProcessPool:
                    crashed.append(task)
                    continue
                if not crashed:
                    submit(islice(source, 1))
            if crashed:
                crashed.extend(in_flight.values())
                break
    return crashed


def _init_worker(parent_pid: int | None = None) -> None:
    """Each worker process uses one core (OpenCV's own thread pool would oversubscribe the machine), and
    exits within a second when the process that started the run dies (``kill -9`` included): a worker's
    parent is the forkserver, so nothing else would tell it."""
    cv2.setNumThreads(1)
    if parent_pid is not None and parent_pid != os.getpid():
        threading.Thread(target=_exit_with, args=(parent_pid,), daemon=True, name="cxrlab-parent").start()


def _exit_with(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)  # readable when the process ends; immune to pid reuse
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os._exit(1)
    while True:  # pragma: no cover - kernels without pidfd
        time.sleep(0.5)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass


ADDRESS = re.compile(
    r"^(?:(?P<scheme>tcp|tls)://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(?P<port>\d{1,5})$"
)


def check_address(address: str, timeout: float = 5.0) -> None:
    """A Dask scheduler address must read ``[tcp://|tls://]host:port`` and accept a connection within
    ``timeout`` seconds; anything else is one clear error (not a 40 s hang and a destructor's traceback)."""
    match = ADDRESS.match(address.strip())
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ParameterError(
            "cluster", f"{address!r} is not a Dask scheduler address (expected tcp://host:port)"
        )
    host = match["host"].strip("[]")
    try:
        with socket.create_connection((host, int(match["port"])), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CxrlabError(f"cannot reach the Dask scheduler at {address} ({reason})") from None


def _run_dask(work: Work, tasks: list[Task], options: Any, address: str, on_result: OnResult) -> None:
    from distributed import Client, as_completed

    check_address(address)
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except Exception as exc:
        raise CxrlabError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    with client:
        slots = max(1, sum(client.nthreads().values()))
        client.run(_init_worker)
        size = _batch_size(len(tasks), slots)
        batches = iter([tasks[i : i + size] for i in range(0, len(tasks), size)])
        owner: dict[Any, list[Task]] = {}

        def submit(batch: list[Task]) -> Any:
            future = client.submit(run_batch, work, batch, options, pure=False)
            owner[future.key] = batch
            return future

        stream = as_completed([submit(b) for b in islice(batches, 2 * slots)], loop=client.loop)
        for future in stream:
            batch = owner.pop(future.key)
            try:
                records = future.result()
            except OSError:
                raise  # the output folder's problem: stops the run, as locally
            except Exception as exc:  # a worker lost: its files are reported, the others go on
                reason = f"the Dask task failed ({type(exc).__name__}: {exc})"
                records = [failure_record(t, f"{t.source}: {reason}") for t in batch]
            future.release()
            for record in records:
                on_result(record)
            nxt = next(batches, None)
            if nxt is not None:
                stream.add(submit(nxt))


def _batch_size(n: int, slots: int) -> int:
    """Files per Dask task: few round trips (each costs milliseconds), yet about 4 batches per slot so
    that the slots stay balanced to the end."""
    return max(1, min(32, n // (4 * slots)))


def run_batch(work: Work, batch: list[Task], options: Any) -> list[Record]:
    """Run ``work`` over a batch in one Dask task (a module-level function: Dask pickles it by name)."""
    return [work(task, options) for task in batch]
