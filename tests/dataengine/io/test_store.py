"""Object store URLs: local or remote, redaction, one-line errors, and whole-object operations on a local S3 server."""

from pathlib import Path

import pytest

from dataengine.io.store import Store, StoreError, describe_error, is_store_url, local_or_url, redact


def test_a_file_url_or_a_path_is_local_and_a_store_url_stays_a_string():
    assert local_or_url("file:///data/releases/x") == Path("/data/releases/x")
    assert local_or_url("releases/x") == Path("releases/x") and local_or_url(Path("/a")) == Path("/a")
    assert local_or_url("s3://bucket/releases/x/") == "s3://bucket/releases/x"
    assert is_store_url("gs://b/x") and not is_store_url("file:///x") and not is_store_url(Path("s3:/b"))


def test_credentials_in_a_url_are_never_shown():
    assert redact("s3://AKIAKEY:secret@bucket/x") == "s3://bucket/x"
    assert redact("https://user:pw@host/path") == "https://host/path" and redact("s3://bucket/a@b") == "s3://bucket/a@b"
    message = describe_error(PermissionError("Access Denied"), "s3://key:secret@bucket/x")
    assert "secret" not in message and message.startswith("s3://bucket/x: access denied") and "AWS_ACCESS_KEY_ID" in message


def test_a_store_without_its_fsspec_package_says_what_is_missing():
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        with pytest.raises(StoreError, match=r"^gs://bucket/x: gs:// URLs need an fsspec implementation that is not installed"):
            Store("gs://bucket/x")


def test_whole_objects_listings_moves_and_removal(s3_bucket):
    store = Store(f"{s3_bucket}/prefix")
    store.probe()
    assert store.files() == {}
    store.put_bytes("a/one.json", b"{}")
    local = Path(__file__)
    store.put_file(local, "b/file.py")
    assert store.files() == {"a/one.json": 2, "b/file.py": local.stat().st_size}
    assert store.read_many(["a/one.json", "b/file.py"]) == {"a/one.json": b"{}", "b/file.py": local.read_bytes()}
    store.move("a/one.json", "c/two.json")
    assert store.size("a/one.json") is None and store.size("c/two.json") == 2
    import hashlib

    assert store.sha256("b/file.py") == hashlib.sha256(local.read_bytes()).hexdigest()
    store.remove_tree("b")
    assert list(store.files()) == ["c/two.json"]
    store.remove_tree()
    assert store.files() == {}
