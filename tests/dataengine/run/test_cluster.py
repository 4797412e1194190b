"""A real Dask cluster on loopback: `dask scheduler` and two `dask worker` processes, built through `--scheduler`.

The workers run from a folder outside the repository, so they import the project as a remote machine
would (the installed package), and get the environment the README's "Many machines" asks for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dataengine.api import build
from dataengine.core.builder import create_builder
from dataengine.core.catalog import load_catalog
from dataengine.release.verify import verify_release
from dataengine.run.executor import WORKER_ENVIRON
from tests.conftest import write_catalog

pytestmark = pytest.mark.timeout(240)


def shard_sha256(release: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(release)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(release.glob("*/*.tar"))}


@dataclass
class Cluster:
    address: str
    folder: Path
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=30)


def _spawn(args: list[str], folder: Path, log: str) -> subprocess.Popen:
    """A Dask CLI process in its own session (so that killing it kills the nanny and its worker), logging to a file."""
    env = {**os.environ, **WORKER_ENVIRON}
    with open(folder / log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", *args], cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    """A scheduler and two single-threaded workers on 127.0.0.1; every process is killed at the end, pass or fail."""
    folder = tmp_path / "cluster"
    folder.mkdir()
    scheduler_file = folder / "scheduler.json"
    processes: list[subprocess.Popen] = []
    try:
        loopback = ["--host", "127.0.0.1", "--no-dashboard"]
        scheduler = _spawn(
            ["distributed.cli.dask_scheduler", *loopback, "--port", "0", "--scheduler-file", str(scheduler_file)], folder, "scheduler.log"
        )
        processes.append(scheduler)
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() or not scheduler_file.read_text().strip():
            assert scheduler.poll() is None, (folder / "scheduler.log").read_text()
            assert time.monotonic() < deadline, "the scheduler did not start within 60 s"
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written whole, but give a partial write a moment
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        running = Cluster(address, folder, scheduler)
        for i in range(2):
            worker = _spawn(
                ["distributed.cli.dask_worker", address, *loopback, "--nworkers", "1", "--nthreads", "1"],
                folder,
                f"worker-{i}.log",
            )
            processes.append(worker)
            running.workers.append(worker)
        with running.client() as client:
            client.wait_for_workers(2, timeout=60)
        yield running
    finally:
        for process in reversed(processes):
            _stop(process)


def _partitions(catalog: Path) -> int:
    spec = load_catalog(catalog)
    return len(create_builder(spec.builder).plan(spec))


def _cli_build(catalog: Path, out: Path, address: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dataengine.cli", "build", str(catalog), "--out", str(out), "--scheduler", address, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_workers_through_scheduler_match_the_local_build(tmp_path, cluster, tiny_catalog, tiny_release):
    with cluster.client() as client:  # the workers got the environment the engine gives its local ones
        environs = client.run(lambda: {name: os.environ.get(name) for name in WORKER_ENVIRON})
    assert len(environs) == 2 and all(environ == WORKER_ENVIRON for environ in environs.values()), environs

    out = tmp_path / "remote"
    process = _cli_build(tiny_catalog, out, cluster.address)
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()  # a no-op once it has exited
        process.wait()
    assert process.returncode == 0, stderr
    with cluster.client() as client:  # the partitions ran on the cluster's workers, not in a local one
        executed = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(executed) == 2 and sum(executed.values()) >= _partitions(tiny_catalog), executed
    assert shard_sha256(out) and shard_sha256(out) == shard_sha256(tiny_release)
    assert verify_release(out) == []


def test_a_worker_killed_mid_build_is_replaced_by_the_other(tmp_path, cluster):
    catalog = write_catalog(
        tmp_path, name="killed", params={"width": 320, "height": 240}, splits={"train": {"num_samples": 48}}, shards={"max_samples": 3}
    )
    out = tmp_path / "killed"
    process = _cli_build(catalog, out, cluster.address)
    try:
        done = out / ".work" / "done"
        with cluster.client() as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not list(done.glob("*.json")) and process.poll() is None:
                time.sleep(0.02)
            busy = {address for address, keys in client.processing().items() if keys}
            pids = client.run(os.getpid)
            finished_before = len(list(done.glob("*.json")))
            assert not (out / "manifest.json").exists() and busy, "the build finished before a worker could be killed; make it longer"
            assert 1 <= finished_before < _partitions(catalog) == 16
            group = os.getpgid(pids[sorted(busy)[0]])  # its `dask worker` process: a session of its own
            (victim,) = [w for w in cluster.workers if w.pid == group]
            os.killpg(group, signal.SIGKILL)  # nanny and worker at once: the machine is gone, mid-partition
            done_at_kill = len(list(done.glob("*.json")))  # the rest is the survivor's work, redone partitions included
            _, stderr = process.communicate(timeout=180)
            assert process.returncode == 0, stderr
            assert len(client.scheduler_info()["workers"]) == 1  # nothing came back in its place
            (survivor_executed,) = client.run(lambda dask_worker: dask_worker.state.executed_count).values()
        assert survivor_executed >= 16 - done_at_kill  # it took over whatever the killed worker held
        assert victim.wait(timeout=10) == -signal.SIGKILL
        assert [w.poll() for w in cluster.workers if w is not victim] == [None]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert verify_release(out) == []

    local = tmp_path / "local"
    assert build(load_catalog(catalog), local, workers=2, progress=False).status == "built"
    assert shard_sha256(out) and shard_sha256(out) == shard_sha256(local)
