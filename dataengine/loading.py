"""Reading a release back in training code: seeded shuffling, worker and rank splitting, decoding.

`load(...)` returns a `ReleaseDataset`: an iterable (a torch `IterableDataset` when torch is
installed) over decoded samples. Shards are read as plain tar streams through fsspec (local paths
and URLs such as `hf://datasets/...`), members are decoded by the kind the manifest declares, and
nothing is ever unpickled.

Splitting: with W ranks x K DataLoader workers = N readers, whole shards go round-robin to
readers when there are at least N shards; otherwise (or with `equal_epochs=True`) every reader
walks all shards and keeps every N-th sample. Either way each sample is read exactly once per
epoch. `equal_epochs` also trims every rank to the same length (the remainder of N is dropped), as
distributed training needs.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.fields import decode_member
from dataengine.rng import sample_rng
from dataengine.shards import ShardError, split_member

log = logging.getLogger("dataengine.loading")

try:  # a torch IterableDataset when torch is there, so DataLoader shards work across workers
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - torch is optional
    _Base = object


def _join(release: str | Path, relative: str) -> str:
    return f"{str(release).rstrip('/')}/{relative}"


def read_manifest(release: str | Path) -> dict[str, Any]:
    """The release's manifest.json, from a local folder or any fsspec URL."""
    import fsspec

    try:
        with fsspec.open(_join(release, "manifest.json"), "rt") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"{release} is not a dataengine release (no manifest.json); build one with `dataengine build`") from None


def split_path(split: str, config: str | None = None) -> str:
    """Where a split lives: `severity_3` of config `fog` is `fog/severity_3`."""
    return f"{config}/{split}" if config and config != "default" else split


def shard_paths(release: str | Path, split: str, manifest: dict[str, Any] | None = None, config: str | None = None) -> list[str]:
    manifest = manifest or read_manifest(release)
    split = split_path(split, config)
    if split not in manifest["splits"]:
        raise ValueError(f"split '{split}' is not in {release}; splits: {', '.join(manifest['splits'])}")
    return [_join(release, shard["path"]) for shard in manifest["splits"][split]["shards"]]


def decode_sample(raw: dict[str, Any], kinds: dict[str, str], to: str = "numpy", float_images: bool = False) -> dict[str, Any]:
    """Decode every member by its declared kind; unknown members stay bytes (never unpickled).

    `float_images` turns images into float32 in [0, 1] (depth is always float32 metres).
    """
    sample: dict[str, Any] = {}
    for name, value in raw.items():
        if name.startswith("__") or name not in kinds:
            sample[name] = value
            continue
        decoded = decode_member(kinds[name], value)
        if float_images and kinds[name] == "image":
            decoded = decoded.astype(np.float32) / np.float32(255)
        if to == "torch" and isinstance(decoded, np.ndarray):
            import torch

            decoded = torch.from_numpy(np.ascontiguousarray(decoded))
        sample[name] = decoded
    return sample


def stream_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, members) from a tar read as a stream, so remote shards need no seeking."""
    import fsspec

    with fsspec.open(url, "rb") as handle, tarfile.open(fileobj=handle, mode="r|") as archive:
        current, members = None, {}
        for info in archive:
            if not info.isreg():
                raise ShardError(f"{url}: member {info.name!r} is not a regular file")
            key, field = split_member(info.name)
            if key != current and current is not None:
                yield current, members
                members = {}
            current = key
            members[field] = archive.extractfile(info).read()
        if current is not None:
            yield current, members


class ReleaseDataset(_Base):
    """One split (of one config) of a release, ready for a training loop."""

    def __init__(
        self,
        release: str | Path,
        split: str = "train",
        config: str | None = None,
        shuffle: bool = False,
        seed: int = 0,
        buffer: int = 1000,
        decode: str | bool | None = "numpy",
        errors: str = "raise",
        equal_epochs: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        float_images: bool = False,
    ):
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        decode = "numpy" if decode is True else (None if decode is False else decode)
        if decode not in ("numpy", "torch", None):
            raise ValueError(f"decode must be 'numpy', 'torch' or None (raw bytes), got {decode!r}")
        self.release, self.shuffle, self.seed, self.buffer = str(release), shuffle, seed, buffer
        self.decode, self.errors, self.equal_epochs, self.float_images = decode, errors, equal_epochs, float_images
        self.manifest = read_manifest(release)
        self.split = split_path(split, config)
        if self.split not in self.manifest["splits"]:
            raise ValueError(f"split '{self.split}' is not in {release}; splits: {', '.join(self.manifest['splits'])}")
        self.shards = [(_join(release, s["path"]), s["num_samples"]) for s in self.manifest["splits"][self.split]["shards"]]
        self.kinds = self.manifest["fields"]
        self._rank, self._world = rank, world_size
        self._worker: tuple[int, int] | None = None
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for a new epoch (same seed and epoch -> same order)."""
        self.epoch = epoch

    def set_worker(self, worker: int, num_workers: int) -> None:
        """Pin the DataLoader worker (normally read from torch's worker info)."""
        self._worker = (worker, num_workers)

    def _distribution(self) -> tuple[int, int, int, int]:
        rank, world = self._rank, self._world
        if rank is None or world is None:
            try:
                import torch.distributed as dist

                if dist.is_available() and dist.is_initialized():
                    rank, world = dist.get_rank(), dist.get_world_size()
            except ImportError:
                pass
        if rank is None or world is None:
            rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        worker, workers = self._worker or (0, 1)
        if self._worker is None:
            try:
                from torch.utils.data import get_worker_info

                info = get_worker_info()
                if info is not None:
                    worker, workers = info.id, info.num_workers
            except ImportError:
                pass
        return rank, world, worker, workers

    def __len__(self) -> int:
        """Samples one rank sees per epoch (exact with `equal_epochs`, else the rank's share)."""
        rank, world, _, _ = self._distribution()
        total = sum(n for _, n in self.shards)
        return total // world if self.equal_epochs else len(range(rank, total, world))

    def _shard_order(self) -> list[tuple[str, int]]:
        shards = list(self.shards)
        if self.shuffle:
            order = sample_rng(self.seed, self.split, f"shards/{self.epoch}").permutation(len(shards))
            shards = [shards[i] for i in order]
        return shards

    def _raw(self) -> Iterator[dict[str, Any]]:
        rank, world, worker, workers = self._distribution()
        readers = world * workers
        shards = self._shard_order()
        by_shard = len(shards) >= readers and not self.equal_epochs
        per_rank = sum(n for _, n in shards) // world if self.equal_epochs else None
        selected = shards[rank * workers + worker :: readers] if by_shard else shards
        position = -1
        for url, _ in selected:
            try:
                for key, members in stream_samples(url):
                    position += 1
                    if not by_shard:
                        # Rank r takes global positions r, r + W, ...; its workers take turns within
                        # that sequence; with equal epochs every rank stops after the same count.
                        rank_index, owner = divmod(position, world)
                        if owner != rank or (per_rank is not None and rank_index >= per_rank) or rank_index % workers != worker:
                            continue
                    yield {"__key__": key, "__url__": url, **members}
            except (tarfile.TarError, ShardError, OSError, EOFError) as exc:
                if self.errors == "raise":
                    raise
                # Every reader meets the same error at the same place, so positions stay aligned.
                log.warning("skipping the rest of shard %s after a read error: %s", url, exc)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        stream = self._raw()
        if self.shuffle and self.buffer > 1:
            stream = self._buffered(stream)
        for raw in stream:
            if self.decode is None:
                yield raw
                continue
            try:
                yield decode_sample(raw, self.kinds, self.decode, self.float_images)
            except Exception as exc:  # noqa: BLE001 - any decoder failure falls under the error policy
                if self.errors == "raise":
                    raise ValueError(f"{raw['__url__']}: sample {raw['__key__']!r} does not decode: {exc}") from exc
                log.warning("skipping sample %s of shard %s: %s", raw["__key__"], raw["__url__"], exc)

    def _buffered(self, stream: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        rank, _, worker, _ = self._distribution()
        rng = sample_rng(self.seed, self.split, f"buffer/{self.epoch}/{rank}/{worker}")
        pool: list[dict[str, Any]] = []
        for item in stream:
            pool.append(item)
            if len(pool) >= self.buffer:
                yield pool.pop(int(rng.integers(len(pool))))
        while pool:
            yield pool.pop(int(rng.integers(len(pool))))


def load(release: str | Path, split: str = "train", config: str | None = None, **options: Any) -> ReleaseDataset:
    """Iterate a split (of a config) as dicts: images uint8 arrays, depth float32 metres, JSON as dicts.

    Options: `shuffle`, `seed`, `buffer`, `decode` ("numpy" | "torch" | None), `float_images`,
    `errors` ("raise" | "skip"), `equal_epochs`, `rank`, `world_size`; see `ReleaseDataset`.
    """
    return ReleaseDataset(release, split, config, **options)
