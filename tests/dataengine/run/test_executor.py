"""Executors: in this process, a local Dask cluster, an existing scheduler; the same releases."""

import pytest

from dataengine.api import build
from dataengine.core.catalog import load_catalog
from dataengine.release.reader import Release
from dataengine.run.executor import DaskExecutor, InProcessExecutor, create_executor


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
        assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "7"
    finally:
        executor.close()
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "7"
