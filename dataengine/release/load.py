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

Batching: `batch_size=` makes every reader yield batches of its own samples (`collate`: tensors and
arrays stacked, records as lists), so `DataLoader(ds, batch_size=None, num_workers=K)` passes them
on; or leave the dataset unbatched and give the DataLoader `batch_size=` (torch's default collate
keeps records as lists).
"""

from __future__ import annotations

import logging
import math
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dataengine.core.rejects import POLICIES
from dataengine.core.rng import sample_rng
from dataengine.io.tar import ShardError, read_samples
from dataengine.release.batch import RAGGED, Record, collate, register_with_torch
from dataengine.release.reader import Release, decode_sample

log = logging.getLogger("dataengine.release.load")

try:  # a torch IterableDataset when torch is there, so DataLoader shards work across workers
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - torch is optional
    _Base = object
else:
    register_with_torch()

DECODE = ("numpy", "torch", None)


def check_decode(decode: str | None) -> None:
    """A `decode` choice that can run here: one of DECODE, and torch installed for "torch"."""
    if decode not in DECODE:
        raise ValueError(f"decode must be 'numpy', 'torch' or None (raw bytes), got {decode!r}")
    if decode == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise ImportError(
                "decode='torch' needs torch: pip install torch (or pip install -e '.[models]'), or use decode='numpy'"
            ) from None


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
        batch_size: int | None = None,
        drop_last: bool = False,
        ragged: str = "error",
    ):
        if errors not in POLICIES:
            raise ValueError(f"errors must be one of {', '.join(POLICIES)}, got {errors!r}")
        decode = "numpy" if decode is True else (None if decode is False else decode)
        check_decode(decode)
        if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer or None (single samples), got {batch_size!r}")
        if ragged not in RAGGED:
            raise ValueError(f"ragged must be one of {', '.join(RAGGED)}, got {ragged!r}")
        self.batch_size, self.drop_last, self.ragged = batch_size, drop_last, ragged
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
        """Samples one rank sees per epoch (exact with `equal_epochs`, else the rank's share); with
        `batch_size`, the batches those samples make when one reader batches them all. With K DataLoader
        workers each worker batches its own part, so up to K - 1 more batches are partial
        (`drop_last=True` drops them instead)."""
        rank, world, _, _ = self._distribution()
        total = sum(n for _, n in self.shards)
        samples = total // world if self.equal_epochs else len(range(rank, total, world))
        if self.batch_size is None:
            return samples
        return samples // self.batch_size if self.drop_last else math.ceil(samples / self.batch_size)

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
        seen: set[str] = set()
        for url, expected in selected:
            count = 0
            try:
                for key, members in read_samples(url):
                    position += 1
                    count += 1
                    if not by_shard:
                        # Rank r takes global positions r, r + W, ...; its workers take turns within
                        # that sequence; with equal epochs every rank stops after the same count.
                        rank_index, owner = divmod(position, world)
                        if owner != rank or (per_rank is not None and rank_index >= per_rank) or rank_index % workers != worker:
                            continue
                    problem = self._problem(key, members, seen)
                    seen.add(key)
                    if problem is not None:
                        if self.errors == "raise":
                            raise ShardError(f"{url}: {problem}; `dataengine verify` lists every problem of the release")
                        log.warning("skipping a sample of shard %s: %s", url, problem)
                        continue
                    yield {"__key__": key, "__url__": url, **members}
                if count != expected:
                    raise ShardError(
                        f"{url} holds {count} samples, the manifest says {expected}: the shard was truncated or replaced; "
                        "rebuild the release (a rerun of `dataengine build` rewrites missing or damaged shards)"
                    )
            except GeneratorExit:
                raise  # closed by the consumer (or at interpreter exit, when module globals are gone)
            except (tarfile.TarError, ShardError, OSError, EOFError) as exc:
                if self.errors == "raise":
                    raise
                # Every reader meets the same error at the same place, so positions stay aligned.
                log.warning("skipping the rest of shard %s after a read error: %s", url, exc)

    def _problem(self, key: str, members: dict[str, bytes], seen: set[str]) -> str | None:
        """Why a raw sample cannot be handed out (a key met before, members other than the manifest's), or None."""
        if key in seen:
            return f"sample key {key!r} appears twice"
        if members.keys() != self.kinds.keys():
            missing, extra = sorted(self.kinds.keys() - members.keys()), sorted(members.keys() - self.kinds.keys())
            return f"sample {key!r} is incomplete: " + "; ".join(
                part
                for part in (f"missing {', '.join(missing)}" if missing else "", f"unexpected {', '.join(extra)}" if extra else "")
                if part
            )
        return None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        samples = self._samples()
        if self.batch_size is None:
            yield from samples
            return
        batch: list[dict[str, Any]] = []
        for sample in samples:
            batch.append(sample)
            if len(batch) == self.batch_size:
                yield collate(batch, self.ragged)
                batch = []
        if batch and not self.drop_last:
            yield collate(batch, self.ragged)

    def _samples(self) -> Iterator[dict[str, Any]]:
        stream = self._raw()
        if self.shuffle and self.buffer > 1:
            stream = self._buffered(stream)
        for raw in stream:
            if self.decode is None:
                yield raw
                continue
            try:
                sample = decode_sample(raw, self.kinds, self.decode, self.float_images)
            except (ImportError, MemoryError):
                raise  # the environment, not the data: skipping would silently yield nothing
            except Exception as exc:
                if self.errors == "raise":
                    raise ValueError(f"{raw['__url__']}: sample {raw['__key__']!r} does not decode: {exc}") from exc
                log.warning("skipping sample %s of shard %s: %s", raw["__key__"], raw["__url__"], exc)
                continue
            for name, kind in self.kinds.items():
                if kind == "json" and type(sample.get(name)) is dict:
                    sample[name] = Record(sample[name])
            yield sample

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
    """Iterate a split (of a config) as dicts: images uint8 arrays (HxWx3; CxHxW tensors with
    decode="torch"), depth float32 metres, JSON records as dicts.

    Options: `shuffle`, `seed`, `buffer`, `decode` ("numpy" | "torch" | None), `float_images`,
    `errors` ("raise" | "skip"), `equal_epochs`, `rank`, `world_size`, `batch_size` (yield batches:
    tensors stacked, records as lists), `drop_last`, `ragged` ("error" | "list"); see `ReleaseDataset`.
    """
    return ReleaseDataset(release, split, config, **options)
