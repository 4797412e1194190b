"""Batches of samples: arrays and tensors stacked, records, keys and text kept as lists.

`collate` is the collate function of a release (`DataLoader(ds, batch_size=8, collate_fn=dataengine.collate)`,
or `dataengine.load(..., batch_size=8)`). The JSON record of a sample comes out of the loader as a
`Record`, a dict that torch's default collate keeps whole (a list of records per batch) instead of
merging its fields, so `DataLoader(dataengine.load(...), batch_size=8)` works as it is.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

RAGGED = ("error", "list")


class Record(dict):
    """A sample's JSON record: a plain dict that batches as a list of records."""

    __slots__ = ()


def collate(samples: Sequence[Mapping[str, Any]], ragged: str = "error") -> dict[str, Any]:
    """One batch from samples of one release: tensors stacked (`torch.stack`), numpy arrays stacked
    (`np.stack`), everything else (records, keys, text, bytes) as a list in sample order.

    Arrays of different shapes (images of different sizes) cannot be stacked: `ragged="error"`
    says so, `ragged="list"` keeps them as a list.
    """
    if ragged not in RAGGED:
        raise ValueError(f"ragged must be one of {', '.join(RAGGED)}, got {ragged!r}")
    if not samples:
        raise ValueError("collate needs at least one sample")
    names = list(samples[0])
    for sample in samples[1:]:
        if sample.keys() != samples[0].keys():
            raise ValueError(
                f"samples {samples[0].get('__key__')!r} and {sample.get('__key__')!r} have different members "
                f"({sorted(samples[0])} vs {sorted(sample)}); batch samples of one release and one decode setting"
            )
    return {name: _stack(name, [sample[name] for sample in samples], ragged) for name in names}


def _stack(name: str, values: list[Any], ragged: str) -> Any:
    torch = sys.modules.get("torch")  # a tensor can only be here when torch is imported
    first = values[0]
    if torch is not None and isinstance(first, torch.Tensor):
        stack: Callable[[list[Any]], Any] = torch.stack
    elif isinstance(first, np.ndarray):
        stack = np.stack
    else:
        return values
    shapes = {tuple(value.shape) for value in values}
    if len(shapes) > 1:
        if ragged == "list":
            return values
        raise ValueError(
            f"member {name!r} has {len(shapes)} shapes in one batch ({', '.join(map(str, sorted(shapes)[:3]))}): resize it to one "
            "size before batching, or keep such members as lists with ragged='list' (dataengine.load(..., ragged='list'))"
        )
    return stack(values)


def _records_as_lists(batch: list[Record], *, collate_fn_map: Any = None) -> list[Record]:
    return list(batch)


def register_with_torch() -> None:
    """Teach torch's default collate to keep a batch's records as a list (its documented extension point)."""
    try:
        from torch.utils.data._utils.collate import default_collate_fn_map
    except ImportError:  # pragma: no cover - torch is optional
        return
    default_collate_fn_map.setdefault(Record, _records_as_lists)
