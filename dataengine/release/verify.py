"""`dataengine verify`: re-check a release against its manifest, shard by shard, sample by sample.

A release in a folder or in an object store (`s3://...`): the store's is listed once, and each shard
is read twice (its sha256, then its samples), as locally.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from dataengine.core.fields import decode_member
from dataengine.core.schema import SampleSchema, SchemaError
from dataengine.io.store import Store, StoreError, is_store_url
from dataengine.io.tar import ShardError, check_regular, read_samples, sha256_file
from dataengine.release.reader import MANIFEST, Release, ReleaseError, ShardEntry


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class _StoreFiles:
    """What verify asks of a release, answered from one listing of an object store prefix."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.store = Store(self.url)
        self.files = self.store.files()

    def exists(self, relative: str) -> bool:
        return relative in self.files or any(name.startswith(f"{relative}/") for name in self.files)

    def read_text(self, relative: str) -> str:
        return self.store.read_bytes(relative).decode("utf-8")

    def shards_in(self, split: str) -> set[str]:
        return {name for name in self.files if name.startswith(f"{split}/") and "/" not in name[len(split) + 1 :] and name.endswith(".tar")}


def verify_release(release: str | Path, decode: bool = True) -> list[Problem]:
    """Every problem found: hashes, sizes, counts, missing and extra shards, keys, schema, decoding."""
    if is_store_url(release):
        try:
            return _verify(_StoreFiles(str(release)), str(release).rstrip("/"), decode)
        except StoreError as exc:
            return [Problem(str(release), str(exc))]
        except OSError as exc:
            return [Problem(str(release), f"cannot be listed or read ({type(exc).__name__}: {exc}); check the URL and credentials")]
    return _verify(None, Path(release), decode)


def _verify(remote: _StoreFiles | None, root: Path | str, decode: bool) -> list[Problem]:
    local = Path(root)
    if not (remote.exists(MANIFEST) if remote else (local / MANIFEST).exists()):
        return [Problem(str(root), "no manifest.json: not a release, or its build did not finish (rerun the build to resume)")]
    try:
        manifest = Release.open(root).manifest
    except ReleaseError as exc:
        return [Problem(MANIFEST, f"unreadable: {exc}")]
    fields = manifest.fields
    problems: list[Problem] = []
    try:
        schema = SampleSchema(json.loads(remote.read_text("schema.json") if remote else (local / "schema.json").read_text()))
    except (OSError, ValueError) as exc:
        problems.append(Problem("schema.json", f"missing or invalid ({exc}); samples are not schema-checked"))
        schema = None

    if remote.exists(".work") if remote else (local / ".work").exists():
        problems.append(Problem(".work", "leftover build folder: a build of this folder was interrupted"))
    keys_seen: dict[str, str] = {}
    for split, entry in manifest.splits.items():
        listed = {shard.path for shard in entry.shards}
        if remote:
            on_disk = remote.shards_in(split)
        else:
            on_disk = {str(p.relative_to(local)) for p in (local / split).glob("*.tar")} if (local / split).is_dir() else set()
        for extra in sorted(on_disk - listed):
            problems.append(Problem(extra, "extra shard not listed in manifest.json"))
        if sum(s.num_samples for s in entry.shards) != entry.num_samples:
            problems.append(Problem(split, "num_samples differs from the sum over its shards"))
        for shard in entry.shards:
            if remote:
                problems.extend(_verify_stored_shard(remote, shard, fields, schema, keys_seen, decode))
            else:
                problems.extend(_verify_shard(local, shard, fields, schema, keys_seen, decode))
    return problems


def _verify_stored_shard(
    remote: _StoreFiles, shard: ShardEntry, fields: dict[str, str], schema: SampleSchema | None, keys_seen: dict[str, str], decode: bool
) -> list[Problem]:
    """`_verify_shard` for a shard in an object store."""
    where = shard.path
    size = remote.files.get(where)
    if size is None:
        return [Problem(where, "missing shard")]
    problems: list[Problem] = []
    if size != shard.num_bytes:
        problems.append(Problem(where, f"size {size} bytes, manifest says {shard.num_bytes} (truncated or modified)"))
    try:
        digest = remote.store.sha256(where)
    except OSError as exc:
        return [*problems, Problem(where, f"unreadable: {type(exc).__name__}: {exc}")]
    return problems + _check_samples(remote.store.url_of(where), shard, digest, fields, schema, keys_seen, decode)


def _verify_shard(
    root: Path, shard: ShardEntry, fields: dict[str, str], schema: SampleSchema | None, keys_seen: dict[str, str], decode: bool
) -> list[Problem]:
    where = shard.path
    path = root / where
    if not path.exists():
        return [Problem(where, "missing shard")]
    try:
        check_regular(path)
    except ShardError as exc:
        return [Problem(where, str(exc))]
    problems: list[Problem] = []
    size = path.stat().st_size
    if size != shard.num_bytes:
        problems.append(Problem(where, f"size {size} bytes, manifest says {shard.num_bytes} (truncated or modified)"))
    return problems + _check_samples(path, shard, sha256_file(path), fields, schema, keys_seen, decode)


def _check_samples(
    path: Path | str,
    shard: ShardEntry,
    digest: str,
    fields: dict[str, str],
    schema: SampleSchema | None,
    keys_seen: dict[str, str],
    decode: bool,
) -> list[Problem]:
    """The hash against the manifest's, then every sample: keys, members, decoding, schema, count."""
    where = shard.path
    problems: list[Problem] = []
    if digest != shard.sha256:
        problems.append(Problem(where, f"sha256 {digest[:12]}... differs from the manifest's {shard.sha256[:12]}... (content changed)"))
    count = 0
    try:
        for key, members in read_samples(path):
            count += 1
            if key in keys_seen:
                problems.append(Problem(where, f"key {key!r} also appears in {keys_seen[key]}"))
            keys_seen[key] = where
            if set(members) != set(fields):
                problems.append(Problem(where, f"sample {key!r} has members {sorted(members)}, expected {sorted(fields)}"))
                continue
            decoded = {}
            if decode or schema is not None:
                for name, kind in fields.items():
                    if decode or kind == "json":
                        try:
                            decoded[name] = decode_member(kind, members[name])
                        except Exception as exc:  # noqa: BLE001 - any decoder failure is a finding
                            problems.append(Problem(where, f"sample {key!r} member {name!r} does not decode as {kind}: {exc}"))
            if schema is not None and "json" in decoded:
                try:
                    schema.check(key, members, decoded["json"])
                except SchemaError as exc:
                    problems.append(Problem(where, f"sample {key!r} fails the schema: {exc}"))
    except (ShardError, tarfile.TarError, OSError, EOFError) as exc:
        problems.append(Problem(where, f"unreadable after {count} samples: {type(exc).__name__}: {exc}"))
        return problems
    if count != shard.num_samples:
        problems.append(Problem(where, f"holds {count} samples, manifest says {shard.num_samples}"))
    return problems
