"""`dataengine validate`: run a release's reference trainer, gate it, write validation.json.

validation.json holds at least `verdict` ("pass" | "fail"), `reasons` (empty on pass), `trainer` and
`metrics`; beside them the prior baseline, the reference and regression comparisons, the recipe and
seed, package versions, timings, the learning curve and the least learnable samples.
"""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from dataengine.io.atomic import write_json_atomic
from dataengine.release.reader import Release, ReleaseError
from dataengine.validate.config import ValidateConfig, resolve_config
from dataengine.validate.gate import gate
from dataengine.validate.registry import trainer_class

VALIDATION = "validation.json"
WORKDIR = ".validate"
PACKAGES = ("dataengine", "torch", "timm", "numpy", "webdataset")


@dataclass
class Job:
    """What a trainer gets: the release, its settings, where to keep checkpoints, how to report."""

    release: Release
    config: ValidateConfig
    device: str
    reference: Release | None
    workdir: Path
    progress: bool
    echo: Callable[[str], None]


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def pick_device(device: str | None) -> str:
    """`cuda` when asked for (and present), `cpu` when asked for, else whichever is there."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA device here; use --device cpu")
    return device


def validate_release(
    release: str | Path,
    *,
    trainer: str | None = None,
    overrides: Iterable[str] = (),
    epochs: int | None = None,
    device: str | None = None,
    reference: str | Path | None = None,
    against: str | Path | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
) -> dict[str, Any]:
    """Train the reference recipe on `release`, gate it, and write `RELEASE/validation.json`."""
    source = Release.open(release)
    block = source.manifest.document.get("catalog", {}).get("validate")
    overrides = [*overrides, *([f"validate.recipe.epochs={epochs}"] if epochs is not None else [])]
    shape = resolve_config(block, overrides, trainer=trainer)
    cls = trainer_class(shape.trainer, source.manifest)
    config = resolve_config(block, overrides, cls.params_schema, trainer=cls.name, gate_defaults=cls.gate_defaults)
    previous = _previous(against)
    trusted = Release.open(reference) if reference is not None else None
    job = Job(source, config, pick_device(device), trusted, source.path / WORKDIR / cls.name, progress, echo)
    echo(f"validating {source.root} with the '{cls.name}' trainer on {job.device}")
    result = cls().run(job)
    reasons = gate(result, config.gate, cls.lower_is_better, cls.primary, previous)
    document = {
        "verdict": "fail" if reasons else "pass",
        "reasons": reasons,
        "trainer": cls.name,
        "metrics": result.pop("metrics"),
        "prior": result.pop("prior"),
        **{k: v for k, v in result.items() if k != "explain"},
        **({"against": {"release": str(against), "metrics": previous["metrics"]}} if previous else {}),
        "recipe": config.recipe,
        "gate": config.gate,
        "seed": config.recipe.get("seed"),
        "device": job.device,
        "release": {"name": source.manifest.name, "version": source.manifest.version, "catalog_sha256": source.manifest.catalog_sha256},
        "packages": _versions(),
    }
    write_json_atomic(source.path / VALIDATION, document, sort_keys=False, indent=1)
    return document


def _previous(against: str | Path | None) -> dict[str, Any] | None:
    """The validation.json of a previous release (or the file itself)."""
    if against is None:
        return None
    path = Path(against)
    path = path / VALIDATION if path.is_dir() else path
    if not path.is_file():
        raise ReleaseError(f"--against {against}: no {VALIDATION} there; validate that release first")
    try:
        previous = json.loads(path.read_text())
        previous["metrics"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ReleaseError(f"--against {path}: not a dataengine {VALIDATION} ({type(exc).__name__}: {exc})") from None
    return previous
