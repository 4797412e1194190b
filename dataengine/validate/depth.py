"""The depth reference trainer: a timm encoder + the learned depth source's decoder, trained on a release.

Recipe: scale-invariant log loss, AdamW, linear warm-up then cosine decay, seeded. Images and depth
come through `dataengine.load` (DataLoader workers, the real loader) and are resized to the recipe's
input size on the workers. The checkpoint it writes is a depth source (`model:<dir>`: config.json +
model.safetensors). Evaluation uses the family's protocol (`Builder.depth_protocol`: metric, kitti or
nyu) on the full-resolution ground truth, beside a prior baseline that sees no image: the train
split's per-pixel mean depth. A robustness release (splits `clean/test` + `<corruption>/severity_k`)
trains on the clean frames outside a seeded hold-out and evaluates the hold-out under every split.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dataengine.core.builder import create_builder
from dataengine.metrics.depth import Protocol, depth_metrics, mean_metrics, protocol, robodepth_dee
from dataengine.release.load import load
from dataengine.release.reader import Manifest, Release
from dataengine.validate.checkpoints import EpochCheckpoints, lr_schedule
from dataengine.validate.registry import Trainer, register_trainer

CLEAN_SPLIT = "clean/test"
LOWER_IS_BETTER = {"abs_rel": True, "sq_rel": True, "rmse": True, "rmse_log": True, "a1": False, "a2": False, "a3": False}
RECIPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer", "minimum": 0, "default": 0},
        "epochs": {"type": "integer", "minimum": 1, "default": 12},
        "batch_size": {"type": "integer", "minimum": 1, "default": 8},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 1e-3},
        "weight_decay": {"type": "number", "minimum": 0, "default": 1e-4},
        "warmup": {"type": "number", "minimum": 0, "maximum": 0.5, "default": 0.1, "description": "share of steps with a linear warm-up"},
        "backbone": {"type": "string", "default": "resnet18", "description": "any timm model with features_only"},
        "checkpoint": {"type": ["string", "null"], "default": None, "description": "a local dataengine depth checkpoint to start from"},
        "input_size": {"type": "array", "items": {"type": "integer", "minimum": 32}, "minItems": 2, "maxItems": 2, "default": [96, 128]},
        "si_lambda": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.85, "description": "variance weight of the SI log loss"},
        "workers": {"type": "integer", "minimum": 0, "default": 2, "description": "DataLoader workers"},
        "buffer": {"type": "integer", "minimum": 1, "default": 64, "description": "shuffle buffer of the loader"},
        "holdout": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "default": 0.2, "description": "robustness releases"},
        "least_learnable": {"type": "integer", "minimum": 0, "default": 8},
    },
}


@dataclass(frozen=True)
class HoldOut:
    """Keeps the samples whose frame falls in (or out of) a seeded hold-out; picklable for workers."""

    fraction: float
    seed: int
    held_out: bool

    def __call__(self, sample: dict[str, Any]) -> bool:
        frame = str(sample["json"].get("frame", sample["__key__"]))
        draw = int.from_bytes(hashlib.sha256(f"{self.seed}\x00{frame}".encode()).digest()[:8], "little") / 2**64
        return (draw < self.fraction) == self.held_out


@dataclass(frozen=True)
class Layout:
    """Which split trains, which evaluate, and which samples of them count."""

    train: str
    evaluate: tuple[str, ...]
    train_filter: HoldOut | None = None
    eval_filter: HoldOut | None = None

    @classmethod
    def of(cls, release: Release, recipe: dict[str, Any]) -> Layout:
        splits = release.splits
        if "train" in splits:
            held = next((s for s in ("validation", "test", "val") if s in splits), None)
            if held is None:
                raise ValueError(
                    f"{release.root} has a train split but no validation or test split to evaluate on; splits: {', '.join(splits)}"
                )
            return cls("train", (held,))
        if CLEAN_SPLIT in splits:
            return cls(
                CLEAN_SPLIT,
                tuple(splits),
                HoldOut(recipe["holdout"], recipe["seed"], False),
                HoldOut(recipe["holdout"], recipe["seed"], True),
            )
        raise ValueError(f"{release.root} has no train split (nor a robustness layout with {CLEAN_SPLIT}); splits: {', '.join(splits)}")


def _members(manifest: Manifest) -> tuple[str, str]:
    images, depths = manifest.members("image"), manifest.members("depth")
    if not images or not depths:
        raise ValueError(f"the depth trainer needs an image and a depth member; this release has {manifest.fields}")
    return images[0], depths[0]


def _pairs_dataset(
    release: str, split: str, members: tuple[str, str], size: tuple[int, int], shuffle: bool, seed: int, buffer: int, keep: HoldOut | None
) -> Any:
    """A torch IterableDataset stage over `dataengine.load`: resized (image, depth, key) triples."""
    from torch.utils.data import IterableDataset

    class DepthPairs(IterableDataset):
        def __init__(self) -> None:
            self.source = load(release, split, shuffle=shuffle, seed=seed, buffer=buffer)
            self.epoch, self._since_set = 0, 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch, self._since_set = epoch, 0

        def __iter__(self) -> Iterator[dict[str, Any]]:
            import cv2
            import torch

            # A persistent worker's copy never sees set_epoch again: it counts the epochs it iterated.
            self.source.set_epoch(self.epoch + self._since_set)
            self._since_set += 1
            height, width = size
            for sample in self.source:
                if keep is not None and not keep(sample):
                    continue
                image = cv2.resize(sample[members[0]], (width, height), interpolation=cv2.INTER_AREA)
                depth = cv2.resize(sample[members[1]], (width, height), interpolation=cv2.INTER_NEAREST)
                yield {
                    "image": torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1),
                    "depth": torch.from_numpy(depth)[None],
                    "key": sample["__key__"],
                }

    return DepthPairs()


def train_step(
    model: Any, optimizer: Any, scheduler: Any, images: Any, target: Any, mean: Any, std: Any, si_lambda: float, cuda: bool
) -> float:
    """One optimisation step on uint8 (B, 3, H, W) images and metric depth targets; returns the loss
    (reading it synchronises, as a training loop that logs every loss does). bf16 autocast and
    channels-last on CUDA."""
    import torch

    x = (images.float() / 255 - mean) / std
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
        pred = model(x)
    loss = si_log_loss(pred.float(), target, si_lambda)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    scheduler.step()
    return float(loss.detach())


def si_log_loss(pred: Any, target: Any, si_lambda: float, per_sample: bool = False) -> Any:
    """Scale-invariant log loss (Eigen et al.) over valid pixels, x10 as in AdaBins / BTS."""
    import torch

    valid = target > 0
    diff = torch.where(valid, torch.log(pred.clamp_min(1e-6)) - torch.log(target.clamp_min(1e-6)), torch.zeros_like(pred))
    dims = tuple(range(1, diff.ndim)) if per_sample else tuple(range(diff.ndim))
    count = valid.sum(dim=dims).clamp_min(1)
    mean = diff.sum(dim=dims) / count
    mean_sq = (diff**2).sum(dim=dims) / count
    return 10 * torch.sqrt((mean_sq - si_lambda * mean**2).clamp_min(1e-12))


@register_trainer("depth")
class DepthTrainer(Trainer):
    params_schema = RECIPE_SCHEMA
    lower_is_better = LOWER_IS_BETTER
    primary = "abs_rel"
    sample_kinds = ("scene", "depth_c")

    @classmethod
    def accepts(cls, manifest: Manifest) -> bool:
        return bool(manifest.members("image")) and bool(manifest.members("depth"))

    def run(self, job: Any) -> dict[str, Any]:
        import torch

        recipe, release = job.config.recipe, job.release
        layout = Layout.of(release, recipe)
        members = _members(release.manifest)
        proto = protocol(create_builder(release.manifest.builder).depth_protocol)
        size = tuple(recipe["input_size"])
        torch.manual_seed(recipe["seed"])
        started = time.perf_counter()
        prior, n_train = self._prior(release.root, layout.train, members, size, layout.train_filter)
        model, config = self._model(recipe, proto, job.device)
        self.config = config
        training = self._train(job, model, config, layout, members, n_train)
        model.eval()
        result: dict[str, Any] = {
            "protocol": proto.name,
            "train_split": layout.train,
            "train_samples": n_train,
            "history": training["history"],
        }
        per_split = {
            split: self._evaluate(model, prior, release.root, split, members, proto, size, layout.eval_filter, job.device)
            for split in layout.evaluate
        }
        headline = layout.evaluate[0] if layout.train != CLEAN_SPLIT else CLEAN_SPLIT
        result["metrics"], result["prior"] = per_split[headline]["model"], per_split[headline]["prior"]
        result["eval_split"] = headline
        if len(per_split) > 1:
            result["splits"] = {split: values["model"] for split, values in per_split.items()}
            result["robustness"] = robustness(result["splits"])
        if job.reference is not None:
            result["reference"] = self._on_reference(model, job.reference, recipe, proto, size, job.device)
        result["least_learnable"] = self._least_learnable(
            model, release.root, layout.train, members, size, layout.train_filter, recipe, job.device
        )
        result["checkpoint"] = str(training["checkpoint"])
        result["timings"] = {**training["timings"], "total_s": round(time.perf_counter() - started, 2)}
        return result

    # -- pieces --------------------------------------------------------------------------------

    @staticmethod
    def _model(recipe: dict[str, Any], proto: Protocol, device: str) -> tuple[Any, dict[str, Any]]:
        from dataengine.depth.learned import TimmDepthModel, build_model, model_config

        if recipe["checkpoint"]:  # a local checkpoint: its backbone and head, trained further at this input size
            start = TimmDepthModel.from_checkpoint(recipe["checkpoint"])
            return start.net.to(device), {**start.config, "input_size": list(recipe["input_size"])}
        config = model_config(recipe["backbone"], input_size=list(recipe["input_size"]), min_depth=0.1, max_depth=proto.max_depth)
        return build_model(config).to(device), config

    @staticmethod
    def _prior(release: str, split: str, members: tuple[str, str], size: tuple[int, int], keep: HoldOut | None) -> tuple[np.ndarray, int]:
        """The per-pixel mean of the train split's valid depth at the input size (global mean where none)."""
        total, count, n = np.zeros(size), np.zeros(size), 0
        for item in _pairs_dataset(release, split, members, size, False, 0, 1, keep):
            depth = item["depth"][0].numpy().astype(np.float64)
            total += np.where(depth > 0, depth, 0)
            count += depth > 0
            n += 1
        if n == 0:
            raise ValueError(f"no training samples in {split}")
        fallback = total.sum() / max(count.sum(), 1)
        return np.where(count > 0, total / np.maximum(count, 1), fallback).astype(np.float32), n

    def _train(
        self, job: Any, model: Any, config: dict[str, Any], layout: Layout, members: tuple[str, str], n_train: int
    ) -> dict[str, Any]:
        import torch
        from torch.utils.data import DataLoader
        from tqdm import tqdm

        from dataengine.depth.learned import save_depth_model

        recipe, device = job.config.recipe, job.device
        cuda = device.startswith("cuda")
        steps_per_epoch = math.ceil(n_train / recipe["batch_size"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(recipe["epochs"] * steps_per_epoch, recipe["warmup"]))
        state = EpochCheckpoints(job.workdir, recipe, lambda net, folder: save_depth_model(net, config, folder))
        start, history = state.resume(model, optimizer, scheduler, job.echo)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        dataset = _pairs_dataset(
            job.release.root,
            layout.train,
            members,
            tuple(recipe["input_size"]),
            True,
            recipe["seed"],
            recipe["buffer"],
            layout.train_filter,
        )
        loader = DataLoader(
            dataset,
            batch_size=recipe["batch_size"],
            num_workers=recipe["workers"],
            pin_memory=cuda,
            persistent_workers=cuda and recipe["workers"] > 0,
        )
        mean, std = self._norm(device)
        wait = compute = 0.0
        for epoch in range(start, recipe["epochs"]):
            model.train()
            dataset.set_epoch(epoch)
            bar = tqdm(
                total=n_train,
                desc=f"epoch {epoch + 1}/{recipe['epochs']}",
                unit="sample",
                disable=not job.progress,
                file=sys.stderr,
                dynamic_ncols=True,
            )
            losses, seen, epoch_started = [], 0, time.perf_counter()
            fetched = time.perf_counter()
            for batch in loader:
                t0 = time.perf_counter()
                wait += t0 - fetched
                target = batch["depth"].to(device, non_blocking=True)
                images = batch["image"].to(device, non_blocking=True)
                losses.append(train_step(model, optimizer, scheduler, images, target, mean, std, recipe["si_lambda"], cuda))
                seen += len(target)
                fetched = time.perf_counter()
                compute += fetched - t0
                bar.update(len(target))
                bar.set_postfix(loss=f"{losses[-1]:.3f}", samples_s=f"{seen / (fetched - epoch_started):.1f}", refresh=False)
            bar.close()
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": round(float(np.mean(losses)), 5),
                    "lr": optimizer.param_groups[0]["lr"],
                    "samples_per_s": round(seen / max(time.perf_counter() - epoch_started, 1e-9), 2),
                }
            )
            state.save(model, optimizer, scheduler, epoch + 1, history)
        final = state.publish(model)
        steps = wait + compute
        return {
            "history": history,
            "checkpoint": final,
            "timings": {"train_s": round(steps, 2), "data_wait_share": round(wait / steps, 4) if steps else 0.0},
        }

    @staticmethod
    def _predict(model: Any, images: Any, norm: tuple[Any, Any], device: str) -> np.ndarray:
        """Depth (metres) at the input size for a uint8 (B, 3, H, W) batch."""
        import torch

        with torch.inference_mode():
            mean, std = norm
            x = ((images.to(device).float() / 255) - mean) / std
            return model(x).float().cpu().numpy()[:, 0]

    def _evaluate(
        self,
        model: Any,
        prior: np.ndarray,
        release: str,
        split: str,
        members: tuple[str, str],
        proto: Protocol,
        size: tuple[int, int],
        keep: HoldOut | None,
        device: str,
    ) -> dict[str, dict[str, float]]:
        """Model and prior metrics on `split`, on the full-resolution ground truth."""
        import cv2
        import torch

        norm = self._norm(device)
        rows, prior_rows = [], []
        for sample in load(release, split):
            if keep is not None and not keep(sample):
                continue
            gt = sample[members[1]]
            image = cv2.resize(sample[members[0]], (size[1], size[0]), interpolation=cv2.INTER_AREA)
            pred = self._predict(model, torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None], norm, device)[0]
            full = cv2.resize(pred, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR)
            rows.append(depth_metrics(gt, full, proto))
            prior_rows.append(depth_metrics(gt, cv2.resize(prior, (gt.shape[1], gt.shape[0]), interpolation=cv2.INTER_LINEAR), proto))
        if not rows:
            raise ValueError(f"no samples to evaluate in {split}")
        return {"model": _rounded(mean_metrics(rows)), "prior": _rounded(mean_metrics(prior_rows))}

    def _norm(self, device: str) -> tuple[Any, Any]:
        """The backbone's input normalisation, as the checkpoint's config records it."""
        import torch

        mean = torch.tensor(self.config["mean"], device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.config["std"], device=device).view(1, 3, 1, 1)
        return mean, std

    def _on_reference(
        self, model: Any, reference: Release, recipe: dict[str, Any], proto: Protocol, size: tuple[int, int], device: str
    ) -> dict[str, Any]:
        """The same model on a trusted release's evaluation split, beside that release's own prior."""
        layout = Layout.of(reference, recipe)
        members = _members(reference.manifest)
        prior, _ = self._prior(reference.root, layout.train, members, size, layout.train_filter)
        split = layout.evaluate[0] if layout.train != CLEAN_SPLIT else CLEAN_SPLIT
        scores = self._evaluate(model, prior, reference.root, split, members, proto, size, layout.eval_filter, device)
        return {"release": reference.root, "split": split, "metrics": scores["model"], "prior": scores["prior"]}

    def _least_learnable(
        self,
        model: Any,
        release: str,
        split: str,
        members: tuple[str, str],
        size: tuple[int, int],
        keep: HoldOut | None,
        recipe: dict[str, Any],
        device: str,
    ) -> list[dict[str, Any]]:
        """The training samples with the highest loss under the trained model: where to look for label errors."""
        import torch

        if not recipe["least_learnable"]:
            return []
        norm = self._norm(device)
        scored = []
        for item in _pairs_dataset(release, split, members, size, False, 0, 1, keep):
            pred = torch.from_numpy(self._predict(model, item["image"][None], norm, device))[:, None]
            loss = float(si_log_loss(pred, item["depth"][None].float(), recipe["si_lambda"], per_sample=True)[0])
            scored.append({"key": item["key"], "split": split, "loss": round(loss, 4)})
        return sorted(scored, key=lambda row: (-row["loss"], row["key"]))[: recipe["least_learnable"]]


def robustness(per_split: dict[str, dict[str, float]]) -> dict[str, Any]:
    """DEE per corruption (RoboDepth's rounding), then mCE and mRR against the model's own clean DEE."""
    by_corruption: dict[str, list[dict[str, float]]] = {}
    for split, metrics in per_split.items():
        by_corruption.setdefault(split.split("/")[0], []).append(metrics)
    dee = robodepth_dee(by_corruption)
    clean = dee.pop("clean")["dee2"]
    corruptions = {name: values["dee2"] for name, values in dee.items()}
    if not corruptions:
        return {"clean_dee2": clean}
    ce = {name: value / clean for name, value in corruptions.items()} if clean else {}
    rr = {name: (1 - value) / (1 - clean) for name, value in corruptions.items()}
    return {
        "clean_dee2": clean,
        "dee2": corruptions,
        "mCE": round(100 * float(np.mean(list(ce.values()))), 2) if ce else None,
        "mRR": round(100 * float(np.mean(list(rr.values()))), 2),
        "reference": "the model's own clean DEE2",
    }


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {name: round(float(value), 6) for name, value in metrics.items()}
