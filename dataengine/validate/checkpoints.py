"""Training state shared by the reference trainers: the learning-rate schedule and per-epoch
checkpoints (model, optimizer, schedule, history) that resume a run to the identical result.

Everything is safetensors and JSON: a checkpoint from someone else can never run code.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataengine.io.atomic import write_json_atomic


def lr_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """LambdaLR factor: linear warm-up over `warmup` of the steps, then cosine decay to 0."""
    warm = max(int(total_steps * warmup), 1)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min((step - warm) / max(total_steps - warm, 1), 1.0)
        return 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def flat_optimizer(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Optimizer state as flat tensors (for safetensors) plus the JSON-able rest."""
    state = optimizer.state_dict()
    tensors = {
        f"{index}.{name}": value.detach().cpu().contiguous() for index, entry in state["state"].items() for name, value in entry.items()
    }
    return tensors, {"param_groups": state["param_groups"], "indices": sorted(int(i) for i in state["state"])}


def load_optimizer(optimizer: Any, tensors: dict[str, Any], layout: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {index: {} for index in layout["indices"]}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state[int(index)][key] = value
    optimizer.load_state_dict({"state": state, "param_groups": layout["param_groups"]})


class EpochCheckpoints:
    """`<folder>/last` after every epoch; `write_model(model, folder)` writes the model's own format
    (its weights in `model.safetensors`). A checkpoint of another recipe is discarded."""

    def __init__(self, folder: Path, recipe: dict[str, Any], write_model: Callable[[Any, Path], Any]):
        self.folder = Path(folder)
        self.recipe_sha = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        self.write_model = write_model

    def resume(self, model: Any, optimizer: Any, scheduler: Any, echo: Callable[[str], None]) -> tuple[int, list[dict[str, Any]]]:
        """(epochs done, history) after loading the last checkpoint into the model, optimizer and schedule."""
        from safetensors.torch import load_file

        last = self.folder / "last"
        if not (last / "state.json").exists():
            return 0, []
        state = json.loads((last / "state.json").read_text())
        if state.get("recipe_sha256") != self.recipe_sha:
            echo(f"{last}: a checkpoint of another recipe; starting over")
            shutil.rmtree(last)
            return 0, []
        model.load_state_dict(load_file(str(last / "model.safetensors")))
        load_optimizer(optimizer, load_file(str(last / "optimizer.safetensors")), state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        echo(f"resuming from epoch {state['epoch']} ({last})")
        return int(state["epoch"]), list(state["history"])

    def save(self, model: Any, optimizer: Any, scheduler: Any, epoch: int, history: list[dict[str, Any]]) -> None:
        """Replace `last` with this epoch's state (written aside first, then renamed)."""
        from safetensors.torch import save_file

        tmp = self.folder / ".last.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        self.write_model(model, tmp)
        tensors, layout = flat_optimizer(optimizer)
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        write_json_atomic(
            tmp / "state.json",
            {
                "epoch": epoch,
                "recipe_sha256": self.recipe_sha,
                "history": history,
                "optimizer": layout,
                "scheduler": scheduler.state_dict(),
            },
        )
        last, old = self.folder / "last", self.folder / ".last.old"
        shutil.rmtree(old, ignore_errors=True)
        if last.exists():
            os.replace(last, old)
        os.replace(tmp, last)
        shutil.rmtree(old, ignore_errors=True)

    def publish(self, model: Any, name: str = "model") -> Path:
        """The trained model in `<folder>/<name>`, replaced atomically."""
        target, tmp = self.folder / name, self.folder / f".{name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        self.write_model(model, tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
        return target
