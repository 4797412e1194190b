"""Executors: where the tasks of a job run. The job says what to do; the executor only runs it.

Three executors share one protocol: a local Dask cluster (the default), an existing Dask scheduler
(many machines), and this process (no Dask: debugging, or a GPU model that must stay in one process).
`build`, `corrupt` and `depth` are all jobs: a function and a list of tasks, run with retries, a
bounded number in flight, and one progress bar.

A task tells how far it got with `report_progress(...)` (cumulative counts); the executor hands
that to the client's `progress` callback while the task runs: directly in this process, as Dask
worker events (`Worker.log_event`, `Client.subscribe_topic`) on a cluster.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol

log = logging.getLogger("dataengine")

PROGRESS_TOPIC = "dataengine-progress"
ProgressCallback = Callable[[Any, dict[str, int]], None]  # (task, cumulative counts)
_in_process: dict[str, Any] = {}  # the running task and the callback of InProcessExecutor.run


def report_progress(**counts: int) -> None:
    """From inside a running task: its cumulative counts so far (e.g. items=12, written=20). Reaches
    the client's progress bar through whichever executor runs the task; a no-op anywhere else."""
    if _in_process:
        _in_process["callback"](_in_process["task"], counts)
        return
    if "distributed" not in sys.modules:
        return
    from distributed import get_worker

    try:
        worker = get_worker()
        key = worker.get_current_task()
    except (ValueError, AttributeError, KeyError):
        return
    worker.log_event(PROGRESS_TOPIC, {"key": key, "counts": counts})


# Dask's default MALLOC_TRIM_THRESHOLD_=64KiB turns every large numpy temporary into an mmap/munmap
# pair with fresh page faults (2x slower rendering here). Large thresholds keep arrays in the heap,
# and one worker thread per process keeps BLAS/OpenMP and OpenCV's own thread pool (one thread per
# core by default: two workers on two cores ran four) from oversubscribing the cores.
WORKER_ENVIRON = {
    "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    "MALLOC_MMAP_THRESHOLD_": str(64 << 20),
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
}


@dataclass(frozen=True)
class Outcome:
    """One finished task: its result, or the error it ended with after its retries."""

    task: Any
    result: Any = None
    error: str | None = None


class Executor(Protocol):
    """Runs `fn(task)` for every task; yields outcomes in completion order."""

    description: str

    def run(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        *,
        name: Callable[[Any], str],
        retries: int,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Outcome]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """Every task in this process, one after another (no Dask)."""

    description = "in this process"

    def run(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        *,
        name: Callable[[Any], str],
        retries: int,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Outcome]:
        for task in tasks:
            for attempt in range(retries + 1):
                if progress is not None:
                    _in_process.update(task=task, callback=progress)
                try:
                    result = fn(task)
                except Exception as exc:  # noqa: BLE001 - reported like a failed Dask task
                    if attempt == retries:
                        yield Outcome(task, error=f"{type(exc).__name__}: {exc}")
                    continue
                finally:
                    _in_process.clear()
                yield Outcome(task, result)
                break

    def close(self) -> None:
        pass


def quiet_dask_logs() -> None:
    """Unless INFO logging was asked for, keep Dask's start-up and shut-down chatter off the terminal.

    `distributed` sets its loggers' levels when imported, so this runs after that import.
    """
    import distributed  # noqa: F401

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("distributed").setLevel(logging.ERROR)
        logging.getLogger("distributed.batched").setLevel(logging.CRITICAL)


class DaskExecutor:
    """A local cluster of single-threaded worker processes, or an existing scheduler's workers."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, processes: bool = True, connect_timeout: float = 5.0):
        import dask
        from distributed import Client, LocalCluster

        quiet_dask_logs()
        self.cluster = None
        if scheduler:
            try:
                self.client = Client(scheduler, timeout=connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(
                    f"cannot reach the Dask scheduler at {scheduler} within {connect_timeout:.0f} s ({exc}); "
                    "check the address and that `dask scheduler` runs there"
                ) from None
            self.description = f"Dask scheduler {scheduler}"
        else:
            workers = workers or os.cpu_count() or 1
            # The nanny writes the worker environment into this process's os.environ before each spawn;
            # put ours back, or torch and BLAS here would run on one thread after a build.
            self._environ = {name: os.environ.get(name) for name in WORKER_ENVIRON}
            with dask.config.set({"distributed.nanny.pre-spawn-environ": WORKER_ENVIRON}):
                try:
                    self.cluster = LocalCluster(
                        n_workers=workers, threads_per_worker=1, processes=processes, dashboard_address=":0", silence_logs=logging.ERROR
                    )
                finally:
                    self._restore_environ()
            self.client = Client(self.cluster)
            self.description = f"local Dask cluster of {workers} worker{'s' * (workers > 1)}"
        self.dashboard = self.client.dashboard_link

    @property
    def workers(self) -> int:
        return max(len(self.client.scheduler_info().get("workers", {})), 1)

    def run(
        self,
        fn: Callable[[Any], Any],
        tasks: Iterable[Any],
        *,
        name: Callable[[Any], str],
        retries: int,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Outcome]:
        from distributed import as_completed

        queue = iter(tasks)
        window = 4 * self.workers  # bounded in-flight work keeps client and scheduler memory flat
        owner: dict[Any, Any] = {}
        by_key: dict[str, Any] = {}

        def submit(task: Any) -> Any:
            key = name(task)
            future = self.client.submit(fn, task, key=key, retries=retries, pure=False)
            owner[future], by_key[key] = task, task
            return future

        def on_event(event: tuple[float, Any]) -> None:  # runs on the client's event loop thread
            message = event[1]
            if isinstance(message, dict) and message.get("key") in by_key:
                progress(by_key[message["key"]], message["counts"])

        if progress is not None:
            self.client.subscribe_topic(PROGRESS_TOPIC, on_event)
        try:
            running = as_completed([submit(task) for task in islice(queue, window)])
            for future in running:
                task = owner.pop(future)
                if future.status == "error":
                    error = future.exception()
                    yield Outcome(task, error=f"{type(error).__name__}: {error}")
                else:
                    yield Outcome(task, future.result())
                following = next(queue, None)
                if following is not None:
                    running.add(submit(following))
        finally:
            if progress is not None:
                self.client.unsubscribe_topic(PROGRESS_TOPIC)

    def _restore_environ(self) -> None:
        for name, value in getattr(self, "_environ", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self._restore_environ()  # a restarted worker's spawn writes it again


def create_executor(workers: int | None = None, scheduler: str | None = None, processes: bool = True) -> Executor:
    """`workers=0`: this process; a `scheduler` address: that cluster; else a local cluster of `workers`."""
    if workers is not None and workers < 0:
        raise ValueError(f"workers={workers}: give 0 (this process) or more")
    if workers == 0 and not scheduler:
        return InProcessExecutor()
    return DaskExecutor(workers, scheduler, processes)


class Progress:
    """One progress bar for every job: units done, named counters, an ETA; off for logs.

    `advance` adds finished work; `report` sets where one running task stands (cumulative counts, so
    repeated, late or out-of-order reports cannot count anything twice), from any thread.
    """

    def __init__(self, total: int, unit: str, initial: int = 0, enabled: bool = True, counters: dict[str, int] | None = None):
        from tqdm import tqdm

        self.counters: dict[str, int] = dict(counters or {})
        self._tasks: dict[Any, dict[str, int]] = {}
        self._finished: set[Any] = set()
        self._lock = threading.Lock()
        self._done = initial
        self._bar = tqdm(total=total, initial=initial, unit=unit, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
        if self.counters:
            self._bar.set_postfix(self.counters, refresh=False)

    @property
    def done(self) -> int:
        """Units counted so far."""
        return self._done

    def advance(self, units: int, **counters: int) -> None:
        with self._lock:
            for key, value in counters.items():
                self.counters[key] = self.counters.get(key, 0) + value
            self._bar.set_postfix(self.counters, refresh=False)  # shown by the update's refresh
            self._bar.update(units)
            self._done += units

    def report(self, task: Any, units: int, final: bool = False, **counters: int) -> None:
        """Task `task` has done `units` and these counter values so far; `final`: its last word."""
        with self._lock:
            if task in self._finished:
                return
            before = self._tasks.setdefault(task, {"units": 0})
            step = max(units - before["units"], 0)
            before["units"] += step
            for key, value in counters.items():
                self.counters[key] = self.counters.get(key, 0) + value - before.get(key, 0)
                before[key] = value
            if final:
                self._finished.add(task)
                del self._tasks[task]
            self._bar.set_postfix(self.counters, refresh=False)
            self._bar.update(step)
            self._done += step

    def close(self) -> None:
        self._bar.close()
