"""Per-sample random generators: seeded by (release seed, sample key, purpose), never a global stream."""

from __future__ import annotations

import hashlib

import numpy as np


def sample_rng(seed: int, key: str, purpose: str) -> np.random.Generator:
    """A generator that depends only on its three arguments, on any worker, in any order.

    `purpose` separates independent streams of one sample (layout, noise, wording...), so adding a
    new use of randomness never shifts the numbers an existing one draws.
    """
    digest = hashlib.sha256(f"{int(seed)}\x00{key}\x00{purpose}".encode()).digest()
    entropy = [int(word) for word in np.frombuffer(digest, dtype="<u4")]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
