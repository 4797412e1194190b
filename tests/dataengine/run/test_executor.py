"""Executors: in this process, a local Dask cluster, an existing scheduler; the same releases."""

import time

import pytest

from dataengine.api import build
from dataengine.core.catalog import load_catalog
from dataengine.release.reader import Release
from dataengine.run.executor import DaskExecutor, InProcessExecutor, Progress, create_executor, report_progress


def _flaky(state: dict, task: int) -> int:
    state[task] = state.get(task, 0) + 1
    if task == 3 and state[task] < 2:
        raise RuntimeError("first try fails")
    if task == 5:
        raise ValueError("always fails")
    return task * task


def test_in_process_executor_retries_and_reports_failures():
    state: dict = {}
    outcomes = list(InProcessExecutor().run(lambda t: _flaky(state, t), range(7), name=str, retries=1))
    assert {o.task: o.result for o in outcomes if o.error is None} == {0: 0, 1: 1, 2: 4, 3: 9, 4: 16, 6: 36}
    assert [(o.task, o.error) for o in outcomes if o.error] == [(5, "ValueError: always fails")]
    assert state[3] == 2 and state[5] == 2


def test_create_executor_picks_by_arguments():
    assert isinstance(create_executor(0), InProcessExecutor)
    with pytest.raises(ValueError, match="give 0"):
        create_executor(-2)


def test_an_unreachable_scheduler_is_one_clear_error():
    with pytest.raises(ConnectionError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9 within 1 s"):
        DaskExecutor(scheduler="tcp://127.0.0.1:9", connect_timeout=1)
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="within 5 s"):  # the default: seconds, not a minute
        DaskExecutor(scheduler="tcp://127.0.0.1:9")
    assert time.monotonic() - started < 10


def test_in_process_build_is_byte_identical_to_a_dask_build(tmp_path, tiny_catalog, tiny_release):
    result = build(load_catalog(tiny_catalog), tmp_path / "inprocess", workers=0, progress=False)
    assert result.status == "built"
    ours, theirs = Release.open(result.out), Release.open(tiny_release)
    for split in theirs.splits:
        assert [s.sha256 for s in ours.shards(split)] == [s.sha256 for s in theirs.shards(split)]
    assert (result.out / "rejects.jsonl").read_bytes() == (tiny_release / "rejects.jsonl").read_bytes()


def test_a_local_cluster_sets_the_worker_environment_only_in_the_workers(monkeypatch):
    """Workers get one BLAS/OpenMP thread; the calling process keeps its own (training after a build)."""
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "7")
    executor = DaskExecutor(workers=1)
    try:
        seen = executor.client.run(lambda: (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MKL_NUM_THREADS")))
        assert list(seen.values()) == [("1", "7")]  # unset: one thread; set by the user: kept
        assert list(executor.client.run(lambda: __import__("cv2").getNumThreads()).values()) == [1]
        assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "7"
    finally:
        executor.close()
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "7"


def _reporting_task(task: int) -> int:
    """Reports three steps of progress, then returns."""
    for step in range(1, 4):
        report_progress(items=step, written=step * task)
        time.sleep(0.05)
    return task


@pytest.mark.parametrize("kind", ["in process", "dask"])
def test_tasks_report_progress_while_they_run(kind):
    executor = InProcessExecutor() if kind == "in process" else DaskExecutor(workers=1, processes=False)
    seen: list[tuple[int, dict]] = []
    finished: set[int] = set()
    running_while_reported: list[bool] = []

    def progress(task, counts):
        seen.append((task, counts))
        running_while_reported.append(task not in finished)

    try:
        for outcome in executor.run(_reporting_task, [1, 2], name=lambda t: f"reporting-{t}-{kind}", retries=0, progress=progress):
            finished.add(outcome.task)
            if kind == "dask":
                time.sleep(0.2)  # events travel through the scheduler
    finally:
        executor.close()
    assert {task for task, _ in seen} == {1, 2}
    assert [counts for task, counts in seen if task == 2][:3] == [
        {"items": 1, "written": 2},
        {"items": 2, "written": 4},
        {"items": 3, "written": 6},
    ]
    assert any(running_while_reported)  # reports arrive before the task's outcome
    report_progress(items=1)  # outside any task: nothing happens


def test_progress_counts_reports_once_whatever_their_order():
    bar = Progress(10, "item", enabled=False, counters={"written": 5, "rejected": 1, "shards": 0})
    bar.report("a", 2, written=3)
    bar.report("a", 2, written=3)  # repeated
    bar.report("a", 1, written=1)  # a retry starting again: items never go back, counters follow the task
    assert bar.done == 2 and bar.counters == {"written": 6, "rejected": 1, "shards": 0}
    bar.report("a", 4, final=True, written=4, rejected=1, shards=1)
    bar.report("a", 3, written=9)  # late, after the final word: ignored
    bar.advance(6, written=6)
    assert bar.done == 10 and bar.counters == {"written": 15, "rejected": 2, "shards": 1}
