"""The one way to read a release: `Release.open(path_or_url)`, a typed manifest, splits and samples.

Every reader of releases (the training loader, verify, inspect, export, scoring, report, the
corruption set of a release) goes through this module and the streaming tar reader of
`dataengine.io.tar`, so the rules (contiguous members, regular files only, names inside the archive,
decoding by the kind the manifest declares, never unpickling) hold everywhere.
"""

from __future__ import annotations

import difflib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.core.fields import decode_member
from dataengine.io.tar import member_offsets, read_member, read_samples

MANIFEST = "manifest.json"


class ReleaseError(ValueError):
    """The folder or URL is not a readable release, or a split asked for is not in it."""


@dataclass(frozen=True)
class ShardEntry:
    path: str  # relative to the release root
    num_samples: int
    num_bytes: int
    sha256: str


@dataclass(frozen=True)
class SplitEntry:
    num_samples: int
    num_bytes: int
    shards: tuple[ShardEntry, ...]


@dataclass(frozen=True)
class Manifest:
    """What `manifest.json` says; `document` keeps the whole file for the card and the report."""

    name: str
    version: str
    builder: str
    sample_kind: str
    seed: int
    catalog_sha256: str
    fields: dict[str, str]
    splits: dict[str, SplitEntry]
    rejects_total: int
    document: dict[str, Any]

    @classmethod
    def parse(cls, document: Any, where: str = MANIFEST) -> Manifest:
        if not isinstance(document, dict):
            raise ReleaseError(f"{where} holds a JSON {_json_type(document)}, not the object a dataengine manifest is; rebuild the release")
        try:
            splits = {
                name: SplitEntry(
                    int(entry["num_samples"]),
                    int(entry["num_bytes"]),
                    tuple(
                        ShardEntry(str(s["path"]), int(s["num_samples"]), int(s["num_bytes"]), str(s["sha256"])) for s in entry["shards"]
                    ),
                )
                for name, entry in document["splits"].items()
            }
            return cls(
                name=str(document["name"]),
                version=str(document["version"]),
                builder=str(document["builder"]),
                sample_kind=str(document["sample_kind"]),
                seed=int(document["seed"]),
                catalog_sha256=str(document["catalog_sha256"]),
                fields=dict(document["fields"]),
                splits=splits,
                rejects_total=int(document.get("rejects", {}).get("total", 0)),
                document=document,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReleaseError(f"{where} is not a dataengine manifest ({type(exc).__name__}: {exc}); rebuild the release") from None

    def __getitem__(self, key: str) -> Any:
        """`manifest["splits"]`: the document as written (plain dicts and lists)."""
        return self.document[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.document.get(key, default)

    def members(self, *kinds: str) -> list[str]:
        """Member names whose kind is one of `kinds` (a kind `depth` also matches `depth_kitti`)."""
        return [name for name, kind in self.fields.items() if any(kind == k or kind.startswith(f"{k}_") for k in kinds)]


def _json_type(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}.get(type(value), "value")


def configs_of(splits: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Group split paths into configs: `fog/severity_3` -> config `fog`, split `severity_3`.

    Plain split names (no `/`) all belong to the config `default`.
    """
    configs: dict[str, list[tuple[str, str]]] = {}
    for path in splits:
        config, _, split = path.rpartition("/")
        configs.setdefault(config or "default", []).append((split, path))
    return configs


def output_value(kind: str, value: Any, to: str | None = "numpy", float_images: bool = False) -> Any:
    """A decoded member as every reader hands it out: images uint8 HxWx3 (numpy) or CxHxW (torch, as
    torchvision and timm expect; float32 in [0, 1] with `float_images`), depth float32 metres, masks
    as decoded, records and text as they are."""
    if kind == "image" and isinstance(value, np.ndarray):
        if to == "torch":
            value = value[None] if value.ndim == 2 else value.transpose(2, 0, 1)
        if float_images:
            value = value.astype(np.float32, order="C")
            value /= np.float32(255)
        elif to == "torch":
            value = np.ascontiguousarray(value)
    if to == "torch" and isinstance(value, np.ndarray):
        import torch

        value = torch.from_numpy(np.ascontiguousarray(value))
    return value


def decode_value(kind: str, data: bytes, to: str | None = "numpy", float_images: bool = False) -> Any:
    """One member's bytes decoded by its declared kind, then shaped by `output_value`."""
    return output_value(kind, decode_member(kind, data), to, float_images)


def decode_sample(raw: Mapping[str, Any], kinds: Mapping[str, str], to: str = "numpy", float_images: bool = False) -> dict[str, Any]:
    """Decode every member by its declared kind; unknown members stay bytes (never unpickled).

    `to="torch"` gives tensors, images channels first; `float_images` turns images into float32 in
    [0, 1] (depth is always float32 metres).
    """
    return {
        name: value if name.startswith("__") or name not in kinds else decode_value(kinds[name], value, to, float_images)
        for name, value in raw.items()
    }


def _did_you_mean(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _listed(choices: Any, limit: int = 12) -> str:
    names = list(choices)
    return ", ".join(names[:limit]) + (f" ... ({len(names)} in all)" if len(names) > limit else "")


class Release:
    """A finished release, local or remote (any fsspec URL: `hf://datasets/...`, `s3://...`)."""

    def __init__(self, root: str, manifest: Manifest):
        self.root = root
        self.manifest = manifest

    @classmethod
    def open(cls, location: str | Path) -> Release:
        """Read the manifest of the release at `location`; a clear ReleaseError when there is none."""
        import fsspec

        root = str(location).rstrip("/")
        missing = (
            f"{root} is not a dataengine release (no {MANIFEST}); build one with `dataengine build`, "
            "or finish an interrupted build by rerunning it"
        )
        if "://" not in root:  # a local manifest that is a folder or a FIFO would fail late or block
            try:
                mode = os.stat(f"{root}/{MANIFEST}").st_mode
            except FileNotFoundError:
                raise ReleaseError(missing) from None
            except OSError as exc:
                raise ReleaseError(f"{root}/{MANIFEST} cannot be read ({exc.strerror}); check the path and its permissions") from None
            if not stat.S_ISREG(mode):
                raise ReleaseError(f"{root}/{MANIFEST} is not a regular file; a release's manifest is a JSON file, rebuild the release")
        try:
            with fsspec.open(f"{root}/{MANIFEST}", "rt", encoding="utf-8") as handle:
                document = json.load(handle)
        except FileNotFoundError:
            raise ReleaseError(missing) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReleaseError(f"{root}/{MANIFEST} is not valid JSON ({exc}); rebuild the release") from None
        except RecursionError:
            raise ReleaseError(f"{root}/{MANIFEST} nests too deeply to be a dataengine manifest; rebuild the release") from None
        except OSError as exc:
            raise ReleaseError(f"{root}/{MANIFEST} cannot be read ({exc.strerror or exc}); check the path and its permissions") from None
        return cls(root, Manifest.parse(document, f"{root}/{MANIFEST}"))

    @classmethod
    def containing(cls, path: str | Path) -> Release | None:
        """The local release a file (a shard, perhaps of a config split) belongs to, if any."""
        for folder in Path(path).resolve().parents:
            if (folder / MANIFEST).is_file():
                return cls.open(folder)
        return None

    @property
    def path(self) -> Path:
        """The release folder; only for local releases."""
        if "://" in self.root:
            raise ReleaseError(f"{self.root} is remote; this operation needs a local release folder")
        return Path(self.root)

    @property
    def splits(self) -> list[str]:
        return list(self.manifest.splits)

    @property
    def configs(self) -> dict[str, list[str]]:
        """Config -> its split names (`default` for releases without configs)."""
        return {config: [split for split, _ in pairs] for config, pairs in configs_of(self.splits).items()}

    @property
    def lengths(self) -> dict[str, int]:
        """Samples per split path (`train`, or `fog/severity_3` in a release with configs)."""
        return {name: entry.num_samples for name, entry in self.manifest.splits.items()}

    def __len__(self) -> int:
        """Samples in the whole release."""
        return sum(self.lengths.values())

    def load(self, split: str = "train", config: str | None = None, **options: Any) -> Any:
        """`dataengine.load` on this release: a `ReleaseDataset` over one split (of one config)."""
        from dataengine.release.load import ReleaseDataset

        return ReleaseDataset(self.root, split, config, **options)

    def split_path(self, split: str, config: str | None = None) -> str:
        """Where a split lives (`severity_3` of config `fog` is `fog/severity_3`), checked to exist; a
        mistaken config or split names the closest one and lists the choices."""
        path = f"{config}/{split}" if config and config != "default" else split
        if path in self.manifest.splits:
            return path
        configs = self.configs
        if config and config not in configs:
            raise ReleaseError(f"config '{config}' is not in {self.root}{_did_you_mean(config, configs)}; configs: {_listed(configs)}")
        if config:
            splits = configs[config]
            raise ReleaseError(
                f"split '{split}' is not in config '{config}' of {self.root}{_did_you_mean(split, splits)}; its splits: {_listed(splits)}"
            )
        holders = [name for name, splits in configs.items() if split in splits and name != "default"]
        if holders:
            raise ReleaseError(
                f"split '{split}' belongs to a config of {self.root}: give one, e.g. config='{holders[0]}' "
                f"(dataengine.load) or load_dataset(path, '{holders[0]}', split='{split}'); configs: {_listed(configs)}"
            )
        hint = _did_you_mean(path, self.splits)
        listed = f"splits: {_listed(self.splits)}" if set(configs) == {"default"} else f"configs: {_listed(configs)}"
        raise ReleaseError(f"split '{path}' is not in {self.root}{hint}; {listed}")

    def url(self, relative: str) -> str:
        return f"{self.root}/{relative}"

    def shards(self, split: str) -> tuple[ShardEntry, ...]:
        return self.manifest.splits[self.split_path(split)].shards

    def raw_samples(self, split: str | None = None) -> Iterator[dict[str, Any]]:
        """Undecoded samples (`__key__`, `__url__`, member bytes) of one split, or of all in order."""
        for name in [self.split_path(split)] if split is not None else self.splits:
            for shard in self.manifest.splits[name].shards:
                url = self.url(shard.path)
                for key, members in read_samples(url):
                    yield {"__key__": key, "__url__": url, **members}

    def samples(self, split: str | None = None, decode: str | None = "numpy", float_images: bool = False) -> Iterator[dict[str, Any]]:
        """Samples decoded by kind ("numpy" | "torch"; None keeps bytes), of one split or of all."""
        for raw in self.raw_samples(split):
            yield raw if decode is None else decode_sample(raw, self.manifest.fields, decode, float_images)

    def records(self, split: str | None = None) -> Iterator[dict[str, Any]]:
        """The JSON record of every sample (the `json` member), without decoding images."""
        for raw in self.raw_samples(split):
            yield decode_member("json", raw["json"])

    def locate(self, split: str) -> dict[str, dict[str, tuple[str, tuple[int, int]]]]:
        """key -> member -> (shard path, (offset, size)) of a local split, for reading members one at a time."""
        located: dict[str, dict[str, tuple[str, tuple[int, int]]]] = {}
        for shard in self.shards(split):
            path = str(self.path / shard.path)
            for key, members in member_offsets(path).items():
                located[key] = {name: (path, where) for name, where in members.items()}
        return located

    @staticmethod
    def read_located(location: tuple[str, tuple[int, int]]) -> bytes:
        return read_member(*location)
