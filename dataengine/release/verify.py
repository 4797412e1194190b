"""`dataengine verify`: re-check a release against its manifest, shard by shard, sample by sample."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

from dataengine.core.fields import decode_member
from dataengine.core.schema import SampleSchema, SchemaError
from dataengine.io.tar import ShardError, check_regular, read_samples, sha256_file
from dataengine.release.reader import MANIFEST, Release, ReleaseError, ShardEntry


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def verify_release(release: str | Path, decode: bool = True) -> list[Problem]:
    """Every problem found: hashes, sizes, counts, missing and extra shards, keys, schema, decoding."""
    root = Path(release)
    if not (root / MANIFEST).exists():
        return [Problem(str(root), "no manifest.json: not a release, or its build did not finish (rerun the build to resume)")]
    try:
        manifest = Release.open(root).manifest
    except ReleaseError as exc:
        return [Problem(MANIFEST, f"unreadable: {exc}")]
    fields = manifest.fields
    problems: list[Problem] = []
    try:
        schema = SampleSchema(json.loads((root / "schema.json").read_text()))
    except (OSError, ValueError) as exc:
        problems.append(Problem("schema.json", f"missing or invalid ({exc}); samples are not schema-checked"))
        schema = None

    if (root / ".work").exists():
        problems.append(Problem(".work", "leftover build folder: a build of this folder was interrupted"))
    keys_seen: dict[str, str] = {}
    for split, entry in manifest.splits.items():
        listed = {shard.path for shard in entry.shards}
        on_disk = {str(p.relative_to(root)) for p in (root / split).glob("*.tar")} if (root / split).is_dir() else set()
        for extra in sorted(on_disk - listed):
            problems.append(Problem(extra, "extra shard not listed in manifest.json"))
        if sum(s.num_samples for s in entry.shards) != entry.num_samples:
            problems.append(Problem(split, "num_samples differs from the sum over its shards"))
        for shard in entry.shards:
            problems.extend(_verify_shard(root, shard, fields, schema, keys_seen, decode))
    return problems


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
    digest = sha256_file(path)
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
