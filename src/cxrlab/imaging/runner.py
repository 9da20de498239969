"""Run one function over many files: in this process, in a local process pool, or on a Dask cluster.

The per-file work (convert one image, de-identify one DICOM) is a picklable module-level function
``work(task, options) -> record``, where a record is a JSON-able dict with at least ``image_id``, ``source``,
``output`` and ``status`` (``ok`` or ``failed``). The runner keeps at most ``2 x workers`` tasks in flight, so
memory does not grow with the dataset; it turns a worker that died (a decoder crash, out of memory) into a
``failed`` record for the files it held and goes on with a fresh pool; and it hands every record to
``on_result`` as it arrives, in the parent process, so that the caller can journal it at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import islice
from typing import Any

import cv2

from cxrlab.errors import CxrlabError

__all__ = ["Task", "Work", "failure_record", "run_tasks"]


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
        # a worker died: name the files it may have held, go on with a fresh pool
        for task in crashed:
            on_result(crash_record(task))


def _pool_round(
    work: Work, remaining: Iterable[Task], options: Any, workers: int, ctx: Any, on_result: OnResult
) -> list[Task]:
    """Run tasks in one pool until they are done or a worker dies; return the tasks lost with it."""
    crashed: list[Task] = []
    source = iter(remaining)
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
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


def _init_worker() -> None:
    """Each worker process uses one core: OpenCV's own thread pool would oversubscribe the machine."""
    cv2.setNumThreads(1)


def _run_dask(work: Work, tasks: list[Task], options: Any, address: str, on_result: OnResult) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(address, timeout="20s", set_as_default=False)
    except Exception as exc:
        raise CxrlabError(f"cannot reach the Dask scheduler at {address} ({exc})") from None
    with client:
        slots = max(1, sum(client.nthreads().values()))
        client.run(_init_worker)
        remaining = iter(tasks)
        owner: dict[str, Task] = {}

        def submit(task: Task) -> Any:
            future = client.submit(work, task, options, pure=False)
            owner[future.key] = task
            return future

        stream = as_completed([submit(t) for t in islice(remaining, 2 * slots)], loop=client.loop)
        for future in stream:
            task = owner.pop(future.key)
            try:
                record = future.result()
            except Exception as exc:  # a worker lost: the task is reported, the others go on
                reason = f"the Dask task failed ({type(exc).__name__}: {exc})"
                record = failure_record(task, f"{task.source}: {reason}")
            future.release()
            on_result(record)
            nxt = next(remaining, None)
            if nxt is not None:
                stream.add(submit(nxt))
