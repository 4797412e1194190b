"""Object stores behind fsspec URLs (`s3://bucket/releases/x`, `gs://...`): whole-object writes and listings.

An object store has no rename and no partial files: a PUT makes an object appear whole or not at
all, so a write needs no temporary sibling, and the writer commits by writing a marker object last.
Credentials and endpoints come from the store's usual environment (`AWS_*`, `AWS_ENDPOINT_URL`,
`GOOGLE_APPLICATION_CREDENTIALS`, fsspec's `FSSPEC_<PROTOCOL>_<OPTION>` variables); none is ever
written or echoed. A `file://` URL is a local folder (`local_or_url`), written through `io.atomic`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

# Short timeouts and one attempt for the probe only, so a wrong endpoint answers in seconds.
PROBE_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"config_kwargs": {"connect_timeout": 5, "read_timeout": 20, "retries": {"max_attempts": 1}}},
}
CREDENTIAL_HINTS = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), and AWS_ENDPOINT_URL for a non-AWS store",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`",
}
_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError", "ServerTimeoutError")
_NO_CREDENTIALS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError", "RefreshError")


class StoreError(OSError):
    """An object store URL that cannot be used; the message says how to fix it."""


def is_store_url(location: str | Path) -> bool:
    """A URL of a remote store (`s3://`, `gs://`, ...); local paths and `file://` URLs are not."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def local_or_url(location: str | Path) -> Path | str:
    """A local folder as a Path (`file:///data/x` -> /data/x), a store URL as a string without a trailing '/'."""
    if is_store_url(location):
        return str(location).rstrip("/")
    return Path(str(location).removeprefix("file://"))


def redact(url: str) -> str:
    """The URL without any `user:password@` part, for messages."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def protocol_of(url: str) -> str:
    return url.split("://", 1)[0].lower()


def describe_error(exc: BaseException, url: str, doing: str = "write to") -> str:
    """One line saying why `url` cannot be used and what to do about it."""
    where, protocol = redact(url), protocol_of(url)
    names = {cls.__name__ for cls in type(exc).__mro__}
    hint = CREDENTIAL_HINTS.get(protocol, "check the store's credentials")
    first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    if isinstance(exc, ImportError):
        return f"{where}: {protocol}:// URLs need an fsspec implementation that is not installed ({first})"
    if names & set(_NO_CREDENTIALS):
        return f"{where}: no credentials for {protocol}:// were found; {hint}"
    if names & set(_UNREACHABLE) or isinstance(exc, (ConnectionError, TimeoutError)):
        endpoint = " and AWS_ENDPOINT_URL" if protocol == "s3" else ""
        return f"cannot reach the store of {where} ({first}); check the network{endpoint}"
    if isinstance(exc, FileNotFoundError):
        return f"{where}: the bucket does not exist ({first}); create it first or fix the URL"
    if isinstance(exc, PermissionError):
        return f"{where}: access denied ({first}); {hint}, with permission to {doing} it"
    if isinstance(exc, ValueError) and "protocol" in first.lower():
        return f"{where}: unknown storage scheme {protocol}:// ({first}); use s3://, gs:// or a local folder"
    return f"cannot {doing} {where} ({type(exc).__name__}: {first}); check the URL and the store's credentials"


class Store:
    """The objects under one URL prefix, by paths relative to it ('' is the prefix itself)."""

    def __init__(self, url: str, **options: Any):
        import fsspec.core

        self.url = url.rstrip("/")
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **options)
        except (ImportError, ValueError) as exc:
            raise StoreError(describe_error(exc, self.url)) from None
        self.root = self.root.rstrip("/")

    def __repr__(self) -> str:
        return f"Store({redact(self.url)!r})"

    def path(self, relative: str = "") -> str:
        return f"{self.root}/{relative}" if relative else self.root

    def url_of(self, relative: str) -> str:
        return f"{self.url}/{relative}"

    def probe(self) -> None:
        """Write and remove one empty object, on a connection with short timeouts: a StoreError naming
        the fix when the bucket is missing, credentials are absent or refused, or the endpoint is down."""
        import fsspec.core

        protocol = protocol_of(self.url)
        options = {} if protocol in fsspec.config.conf else PROBE_OPTIONS.get(protocol, {})
        probe = f".dataengine-write-check-{uuid.uuid4().hex[:12]}"
        try:
            fs, root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **options)
            fs.pipe_file(f"{root.rstrip('/')}/{probe}", b"")
            fs.rm_file(f"{root.rstrip('/')}/{probe}")
        except Exception as exc:  # noqa: BLE001 - every failure becomes the one line that names its fix
            raise StoreError(describe_error(exc, self.url)) from None

    def files(self, relative: str = "") -> dict[str, int]:
        """Relative path -> size of every object under `relative` (fresh: listings are never cached)."""
        self.fs.invalidate_cache()
        base = self.path(relative)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        prefix = f"{self.root}/"
        return {
            name.removeprefix(prefix): int(info.get("size") or 0)
            for name, info in found.items()
            if info.get("type", "file") == "file" and name.startswith(prefix)
        }

    def size(self, relative: str) -> int | None:
        """Bytes of one object, None when it does not exist."""
        self.fs.invalidate_cache(self.path(relative))
        try:
            info = self.fs.info(self.path(relative))
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type", "file") == "file" else None

    def read_bytes(self, relative: str) -> bytes:
        return self.fs.cat_file(self.path(relative))

    def read_many(self, relatives: list[str]) -> dict[str, bytes]:
        """Several objects at once (concurrently where the store allows)."""
        if not relatives:
            return {}
        found = self.fs.cat([self.path(r) for r in relatives], on_error="raise")
        return {relative: found[self.path(relative)] for relative in relatives}

    def put_bytes(self, relative: str, data: bytes) -> None:
        """One whole object (a PUT: readers see the old object or the new one)."""
        self.fs.pipe_file(self.path(relative), data)

    def put_file(self, local: str | Path, relative: str) -> None:
        self.fs.put_file(str(local), self.path(relative))

    def download(self, relatives: list[str], folder: Path) -> None:
        """Copy objects into a local folder, keeping their relative paths (concurrently where the store allows)."""
        for relative in relatives:
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        if relatives:
            self.fs.get([self.path(r) for r in relatives], [str(folder / r) for r in relatives])

    def move(self, source: str, target: str) -> None:
        """Copy then delete (a store has no rename): rerun after an interruption, it finishes the move."""
        self.fs.copy(self.path(source), self.path(target))
        self.fs.rm_file(self.path(source))

    def remove(self, relative: str) -> None:
        try:
            self.fs.rm_file(self.path(relative))
        except FileNotFoundError:
            pass

    def remove_tree(self, relative: str = "") -> None:
        """Every object under `relative` ('' removes the whole prefix)."""
        names = list(self.files(relative))
        if names:
            self.fs.rm([self.path(name) for name in names])

    def sha256(self, relative: str, chunk: int = 1 << 22) -> str:
        digest = hashlib.sha256()
        with self.fs.open(self.path(relative), "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
        return digest.hexdigest()
