"""Decoders for the other readers of a release, so that webdataset and Hugging Face `datasets` give
the same values as `dataengine.load`: images uint8 (CxHxW tensors with decode="torch"), depth
float32 metres whatever its PNG unit, masks as decoded, records as dicts.

- webdataset: `wds.WebDataset(urls).decode(dataengine.wds_decoder(release))`: a decode handler
  (webdataset calls it per member; members it does not know are left to the next handler).
  webdataset's stock `.decode("rgb8")` reads a 16-bit depth PNG as 8 bits, which destroys it.
- datasets: `load_dataset(release, ...).with_transform(dataengine.hf_decoder(release))` (or
  `.map(...)` on a streaming dataset): the card's `Image` features arrive as PIL images, depth in
  its PNG unit; the transform turns them into what `dataengine.load` gives.

Kinds come from the release's manifest (a local folder or any fsspec URL), or a mapping
member -> kind; nothing is guessed from file extensions.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.core.depth_png import UNITS_PER_M
from dataengine.release.load import check_decode
from dataengine.release.reader import Release, decode_value, output_value


def release_kinds(release: str | Path | Release | Mapping[str, str]) -> dict[str, str]:
    """Member name -> kind: from a release (path, URL or opened) or given as a mapping."""
    if isinstance(release, Mapping):
        return dict(release)
    source = release if isinstance(release, Release) else Release.open(release)
    return dict(source.manifest.fields)


class WdsDecoder:
    """A webdataset decode handler: `handler(".depth.png", data)` -> the member decoded by its kind, or
    None for a member the release does not declare."""

    def __init__(self, kinds: Mapping[str, str], decode: str = "numpy", float_images: bool = False):
        if decode is None:
            raise ValueError("decode must be 'numpy' or 'torch' (webdataset keeps bytes when no decoder is given)")
        check_decode(decode)
        self.kinds, self.decode, self.float_images = dict(kinds), decode, float_images

    def __call__(self, key: str, data: bytes) -> Any:
        kind = self.kinds.get(key.removeprefix("."))
        return None if kind is None else decode_value(kind, data, self.decode, self.float_images)


def wds_decoder(release: str | Path | Release | Mapping[str, str], decode: str = "numpy", float_images: bool = False) -> WdsDecoder:
    """A handler for `wds.WebDataset(urls).decode(handler)` that decodes members as `dataengine.load`
    does (`decode` "numpy" | "torch", `float_images`)."""
    return WdsDecoder(release_kinds(release), decode, float_images)


class HFDecoder:
    """A `datasets` transform: members of a row (or of a batch of rows) as `dataengine.load` gives them."""

    def __init__(self, kinds: Mapping[str, str], decode: str = "numpy", float_images: bool = False):
        if decode is None:
            raise ValueError("decode must be 'numpy' or 'torch'")
        check_decode(decode)
        self.kinds, self.decode, self.float_images = dict(kinds), decode, float_images

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        """A row (`IterableDataset.map`) or a batch of rows, columns as lists (`Dataset.with_transform`)."""
        out = dict(row)
        for name, kind in self.kinds.items():
            if name in out:
                value = out[name]
                out[name] = [self._member(kind, v) for v in value] if isinstance(value, list) else self._member(kind, value)
        return out

    def _member(self, kind: str, value: Any) -> Any:
        if value is None or kind in ("json", "text"):
            return value
        if isinstance(value, Mapping) and isinstance(value.get("bytes"), bytes):  # an Image feature with decode=False
            return decode_value(kind, value["bytes"], self.decode, self.float_images)
        if hasattr(value, "mode"):  # a PIL image, as datasets decodes the card's Image features
            if kind == "image" and value.mode not in ("RGB", "L"):
                value = value.convert("RGB")
            value = np.asarray(value)
        if kind in UNITS_PER_M:
            value = np.asarray(value).astype(np.float32) / np.float32(UNITS_PER_M[kind])
        return output_value(kind, value, self.decode, self.float_images)


def hf_decoder(release: str | Path | Release | Mapping[str, str], decode: str = "numpy", float_images: bool = False) -> HFDecoder:
    """A transform for `Dataset.with_transform` / `IterableDataset.map` that gives depth in float32 metres
    (and images as arrays) exactly as `dataengine.load` does."""
    return HFDecoder(release_kinds(release), decode, float_images)
