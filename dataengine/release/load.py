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

import logging
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataengine.core.rejects import POLICIES
from dataengine.core.rng import sample_rng
from dataengine.io.tar import ShardError, read_samples
from dataengine.release.reader import Release, decode_sample

log = logging.getLogger("dataengine.release.load")

try:  # a torch IterableDataset when torch is there, so DataLoader shards work across workers
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - torch is optional
    _Base = object


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
        if errors not in POLICIES:
            raise ValueError(f"errors must be one of {', '.join(POLICIES)}, got {errors!r}")
        decode = "numpy" if decode is True else (None if decode is False else decode)
        if decode not in ("numpy", "torch", None):
            raise ValueError(f"decode must be 'numpy', 'torch' or None (raw bytes), got {decode!r}")
        self.release, self.shuffle, self.seed, self.buffer = str(release), shuffle, seed, buffer
        self.decode, self.errors, self.equal_epochs, self.float_images = decode, errors, equal_epochs, float_images
        self.source = Release.open(release)
        self.manifest = self.source.manifest
        self.split = self.source.split_path(split, config)
        self.shards = [(self.source.url(s.path), s.num_samples) for s in self.source.shards(self.split)]
        self.kinds = self.manifest.fields
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
                for key, members in read_samples(url):
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
            except Exception as exc:
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
