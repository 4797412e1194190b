"""Shared fixtures: small catalogs and releases built once per session with a real Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dataengine.api import build
from dataengine.core.catalog import load_catalog


def write_catalog(directory: Path, name: str = "tiny", **changes) -> Path:
    """A small scenes catalog; `changes` replace top-level keys (params are merged)."""
    document = {
        "name": name,
        "version": "0.0.1",
        "builder": "scenes",
        "description": "test release",
        "license": "cc-by-4.0",
        "seed": 11,
        "params": {"width": 96, "height": 72, "objects": [1, 4], "min_visible_pixels": 4},
        "splits": {"train": {"num_samples": 20}, "validation": {"num_samples": 6}},
        "shards": {"max_samples": 4, "max_bytes": "64MB"},
    }
    params = changes.pop("params", {})
    document["params"].update(params)
    document.update(changes)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("catalogs"))


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory, tiny_catalog) -> Path:
    """The tiny catalog built once with two worker processes."""
    out = tmp_path_factory.mktemp("releases") / "tiny"
    result = build(load_catalog(tiny_catalog), out, workers=2, progress=False)
    assert result.status == "built"
    return out


@pytest.fixture(scope="session")
def s3_endpoint():
    """A local S3-compatible server (moto) on a free loopback port, with dummy credentials in the
    environment (AWS_ENDPOINT_URL points s3fs at it; worker processes and subprocesses inherit it)."""
    import os
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    names = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "dummy-secret-for-moto", "AWS_DEFAULT_REGION": "us-east-1"}
    names["AWS_ENDPOINT_URL"] = endpoint
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(names)
    try:
        yield endpoint
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_bucket(s3_endpoint) -> str:
    """A new, empty bucket on the local S3 server; returns `s3://<bucket>`."""
    import uuid

    import fsspec

    name = f"test-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return f"s3://{name}"
