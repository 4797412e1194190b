"""The spatial VQA reference trainer: question -> (rationale ->) answer releases (SSR-CoT, knowledge VQA).

It asks four questions of a release, each answered by a model trained here from scratch (`vlm`,
`text`) and scored on the held-out split(s):

- can a model learn the answers from the images?   `qa`: image + depth map (where the release has one);
- are the answers guessable from the question?      `question_only`: the same decoder, no image, and
  `majority`: the train split's most common answer per question kind. The better of the two (overall
  and per kind) is the gate's prior: the image model must beat it by the margin;
- does depth help?                                  `no_depth`: image only;
- do the rationales help (SSR's claim)?             `qra`: image + depth, trained on rationale then answer;
plus `shuffled_images`: the `qa` model with images permuted between the evaluated samples, and the
probes (`measures`): `minicache` is `qa` generating with its KV cache merged across depth, `qa_mod`
(with `recipe.mod`) is `qa` with p-MoD over its vision tokens.

Scores: SSR-CoT kinds by exact match after normalisation (case, articles, final period), `distance`
and `size` within a relative tolerance (`numeric_tolerance`, 25% by default, SpatialRGPT-Bench's
success threshold); knowledge VQA by the record's benchmark (`vqa_accuracy` for OK-VQA,
`aokvqa_direct_accuracy` for A-OKVQA, `infoseek_accuracy` for InfoSeek). Rationales are read back
with the family's `Builder.parse_rationale` and matched against the facts stored in each record:
`rationale_facts` for the generated ones, `reference_rationale_facts` for the release's own (the
gate's `limits` catch rationales swapped between samples).

Images and depth come through `dataengine.load` once (a DataLoader over an IterableDataset stage),
resized and kept in memory: every model trains on the same few thousand small tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dataengine.core.builder import create_builder
from dataengine.io.atomic import write_json_atomic
from dataengine.metrics.vqa import aokvqa_direct_accuracy, infoseek_accuracy, vqa_accuracy
from dataengine.release.load import load
from dataengine.release.reader import Manifest, Release
from dataengine.validate.checkpoints import EpochCheckpoints, lr_schedule
from dataengine.validate.registry import Trainer, register_trainer

KINDS = ("ssr_cot", "vqa")
NUMERIC_KINDS = ("distance", "size")
PROBE_SAMPLES = 256  # evaluation samples the sparsity and MiniCache perplexity probes run over
DEPTH_RANGE_M = (0.5, 80.0)  # the colourised depth's fixed log range: the colour says metres in every image
RECIPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": {"type": "integer", "minimum": 0, "default": 0},
        "epochs": {"type": "integer", "minimum": 1, "default": 12},
        "qra_epochs": {"type": ["integer", "null"], "minimum": 1, "default": None, "description": "default: epochs"},
        "batch_size": {"type": "integer", "minimum": 1, "default": 16},
        "lr": {"type": "number", "exclusiveMinimum": 0, "default": 2e-3},
        "weight_decay": {"type": "number", "minimum": 0, "default": 0.01},
        "warmup": {"type": "number", "minimum": 0, "maximum": 0.5, "default": 0.1},
        "vision": {"type": "string", "default": "vit_tiny_patch16_224", "description": "any timm model name (random init)"},
        "vision_kwargs": {"type": "object", "default": {"patch_size": 8, "depth": 4}, "description": "passed to timm.create_model"},
        "input_size": {"type": "array", "items": {"type": "integer", "minimum": 16}, "minItems": 2, "maxItems": 2, "default": [48, 64]},
        "dim": {"type": "integer", "minimum": 16, "default": 128},
        "layers": {"type": "integer", "minimum": 1, "default": 3},
        "heads": {"type": "integer", "minimum": 1, "default": 4},
        "vocab_size": {"type": "integer", "minimum": 64, "default": 1024},
        "dropout": {"type": "number", "minimum": 0, "maximum": 0.9, "default": 0.0},
        "tie_embeddings": {"type": "boolean", "default": False},
        "max_answer_tokens": {"type": "integer", "minimum": 1, "default": 16},
        "max_rationale_tokens": {"type": "integer", "minimum": 1, "default": 320},
        "numeric_tolerance": {"type": "number", "exclusiveMinimum": 0, "default": 0.25, "description": "relative, distance and size"},
        "eval_batch": {"type": "integer", "minimum": 1, "default": 64},
        "workers": {"type": "integer", "minimum": 0, "default": 2, "description": "DataLoader workers (decoding)"},
        "least_learnable": {"type": "integer", "minimum": 0, "default": 8},
        "init": {
            "enum": ["default", "critical"],
            "default": "default",
            "description": "critical: PDLT criticality for the projector and MLPs",
        },
        "mod": {"type": "boolean", "default": False, "description": "also train qa_mod: p-MoD over the vision tokens, vs the dense qa"},
        "sparsity_p": {
            "type": ["number", "null"],
            "exclusiveMinimum": 0,
            "default": 1.0,
            "description": "PPL-p% activation sparsity of the trained qa model (null: skip)",
        },
        "minicache": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "required": ["t", "gamma"],
            "properties": {"t": {"type": "number", "minimum": 0, "maximum": 1}, "gamma": {"type": "number", "minimum": 0, "maximum": 1}},
            "default": {"t": 0.6, "gamma": 0.05},
            "description": "qa also generates with its KV cache merged across depth (null: skip)",
        },
    },
}


class HigherIsBetter(dict):
    """Every score of this trainer (accuracy overall and per kind, fact agreement): higher is better."""

    def __missing__(self, key: str) -> bool:
        return False

    def get(self, key: str, default: Any = None) -> bool:
        return False


@dataclass(frozen=True)
class Variant:
    """One model of the run: what it sees and what it is trained to say."""

    name: str
    image: bool
    depth: bool
    rationale: bool
    mod: bool = False


@dataclass
class Split:
    """A split in memory: records, token ids and the resized images / colourised depth maps."""

    name: str
    keys: list[str]
    records: list[dict[str, Any]]
    images: Any  # uint8 (N, 3, H, W)
    depths: Any | None


def question_answer(record: dict[str, Any], sample_kind: str) -> tuple[str, str, str | None, str]:
    """(question, training answer, rationale or None, kind) of a record of either schema."""
    if sample_kind == "ssr_cot":
        return record["question"], record["answer"], record.get("rationale"), record.get("kind") or "open"
    answers = [a for a in record["answers"] if a.strip()]
    answer = Counter(answers).most_common(1)[0][0] if answers else ""
    rationales = record.get("rationales") or []
    return record["question"], answer, (rationales[0] if rationales else None), record["source"]


_ARTICLE = re.compile(r"^(the|a|an)\s+")
_NUMBER = re.compile(r"[-+]?\d*\.?\d+")


def normalise(text: str) -> str:
    """Lower case, no final period, no leading article, single spaces."""
    text = " ".join(text.lower().strip().rstrip(".").split())
    return _ARTICLE.sub("", text)


def _number(text: str) -> float | None:
    found = _NUMBER.search(text)
    return float(found.group()) if found else None


def score(prediction: str, record: dict[str, Any], sample_kind: str, tolerance: float) -> float:
    """The answer's score in [0, 1] by the release's metric (see the module docstring)."""
    if sample_kind == "vqa":
        if record["source"] == "infoseek":
            aliases = record.get("answer_aliases") or record["answers"]
            answer_eval = [*aliases, *([{"range": record["answer_range"]}] if record.get("answer_range") else [])]
            return infoseek_accuracy(prediction, answer_eval, record.get("question_type"))
        if record["source"] == "aokvqa":
            return aokvqa_direct_accuracy(prediction, record["answers"])
        return vqa_accuracy(prediction, record["answers"])
    if record.get("kind") in NUMERIC_KINDS:
        ours, truth = _number(prediction), _number(record["answer"])
        if ours is None or truth is None:
            return float(normalise(prediction) == normalise(record["answer"]))
        return float(abs(ours - truth) <= tolerance * abs(truth))
    return float(normalise(prediction) == normalise(record["answer"]))


# -- rationale facts -------------------------------------------------------------------------------


def _iou(a: list[float], b: list[float]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _relation(facts: dict[str, Any], a: str, b: str) -> dict[str, Any] | None:
    """The stored relation of (a, b), inverted when it is stored as (b, a)."""
    for rel in facts.get("relations", []):
        if rel["a"] == a and rel["b"] == b:
            return rel
        if rel["a"] == b and rel["b"] == a:
            return {
                "distance_m": rel["distance_m"],
                "left_of": not rel["left_of"],
                "above": not rel["above"],
                "nearer": not rel["nearer"],
                "clock": (rel["clock"] + 5) % 12 + 1,
            }
    return None


def fact_agreement(stated: list[dict[str, Any]], facts: dict[str, Any], tolerance: float) -> tuple[int, int]:
    """(agreeing, stated) values of parsed rationale facts against an SSR-CoT record's measured facts.

    Each stated value counts once: a box (IoU >= 0.5), a height, width, depth or distance (within the
    relative `tolerance`), a side, order, vertical relation or clock hour (equal). A value about an
    object or pair the record does not hold disagrees."""
    objects = {o["name"]: o for o in facts.get("objects", [])}
    close = lambda ours, truth: abs(ours - truth) <= tolerance * max(abs(truth), 1e-6)  # noqa: E731
    agree = total = 0
    for fact in stated:
        kind = fact["kind"]
        checks: list[bool] = []
        if kind in ("object", "located"):
            o = objects.get(fact["name"])
            slots = ["box", "height", "width"] if kind == "object" else ["box", "depth"]
            truth = {"height": "height_m", "width": "width_m", "depth": "nearest_m"}
            for slot in slots:
                if o is None:
                    checks.append(False)
                elif slot == "box":
                    checks.append(_iou(fact["box"], o["box"]) >= 0.5)
                else:
                    checks.append(close(fact[slot], o[truth[slot]]))
        elif kind in ("distance", "side", "depth_order", "vertical", "clock"):
            rel = _relation(facts, fact["a"], fact["b"])
            if rel is None:
                checks.append(False)
            elif kind == "distance":
                checks.append(close(fact["distance"], rel["distance_m"]))
            elif kind == "side":
                checks.append((fact["side"] == "left") == rel["left_of"])
            elif kind == "depth_order":
                checks.append((fact["order"] == "closer to") == rel["nearer"])
            elif kind == "vertical":
                checks.append((fact["vertical"] == "above") == rel["above"])
            else:
                checks.append(fact["clock"] == rel["clock"])
        agree += sum(checks)
        total += len(checks)
    return agree, total


# -- data -------------------------------------------------------------------------------------------


def colourise_depth(depth: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A depth map (metres, 0 = none) as SSR's colour image: log depth over a fixed range, turbo colours, black where none."""
    import cv2

    low, high = math.log(DEPTH_RANGE_M[0]), math.log(DEPTH_RANGE_M[1])
    valid = depth > 0
    scaled = np.zeros(depth.shape, np.uint8)
    scaled[valid] = np.clip((np.log(np.maximum(depth[valid], 1e-6)) - low) / (high - low) * 255, 0, 255).astype(np.uint8)
    coloured = cv2.applyColorMap(scaled, cv2.COLORMAP_TURBO)[..., ::-1]
    coloured[~valid] = 0
    return cv2.resize(coloured, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def _stage(release: str, split: str, image: str, depth: str | None, size: tuple[int, int]) -> Any:
    """A torch IterableDataset stage over `dataengine.load`: resized image, colourised depth, record."""
    from torch.utils.data import IterableDataset

    class Resized(IterableDataset):
        def __init__(self) -> None:
            self.source = load(release, split)

        def __iter__(self) -> Iterator[dict[str, Any]]:
            import cv2

            for sample in self.source:
                item = {
                    "key": sample["__key__"],
                    "json": json.dumps(sample["json"]),
                    "image": np.ascontiguousarray(cv2.resize(sample[image], (size[1], size[0]), interpolation=cv2.INTER_AREA)),
                }
                if depth is not None:
                    item["depth"] = colourise_depth(sample[depth], size)
                yield item

    return Resized()


def read_split(release: Release, split: str, size: tuple[int, int], workers: int) -> Split:
    """A whole split in memory, in a fixed (key) order whatever the number of workers."""
    import torch
    from torch.utils.data import DataLoader

    manifest = release.manifest
    image = manifest.members("image")[0]
    depths = manifest.members("depth")
    depth = depths[0] if depths else None
    loader = DataLoader(_stage(release.root, split, image, depth, size), batch_size=None, num_workers=workers)
    items = sorted(loader, key=lambda item: item["key"])
    if not items:
        raise ValueError(f"{release.root}: split {split} holds no samples")

    def stack(name: str) -> Any:
        return torch.from_numpy(np.stack([np.asarray(item[name]) for item in items])).permute(0, 3, 1, 2).contiguous()

    return Split(
        split,
        [item["key"] for item in items],
        [json.loads(item["json"]) for item in items],
        stack("image"),
        stack("depth") if depth is not None else None,
    )


# -- the trainer ------------------------------------------------------------------------------------


@register_trainer("spatial")
class SpatialTrainer(Trainer):
    params_schema = RECIPE_SCHEMA
    primary = "accuracy"
    lower_is_better = HigherIsBetter()
    sample_kinds = KINDS
    gate_defaults = {"learnability_gain": 0.05}

    @classmethod
    def accepts(cls, manifest: Manifest) -> bool:
        return manifest.sample_kind in KINDS and bool(manifest.members("image")) and bool(manifest.members("json"))

    def run(self, job: Any) -> dict[str, Any]:
        recipe, release = job.config.recipe, job.release
        started = time.perf_counter()
        self.kind = release.manifest.sample_kind
        train_name, evaluate = _layout(release)
        size = (recipe["input_size"][0], recipe["input_size"][1])
        train = read_split(release, train_name, size, recipe["workers"])
        evals = [read_split(release, split, size, recipe["workers"]) for split in evaluate]
        read_s = time.perf_counter() - started
        formatter = self._formatter(job.workdir, train, recipe)
        has_depth = train.depths is not None
        has_rationale = any(question_answer(r, self.kind)[2] for r in train.records)
        variants = [Variant("qa", True, has_depth, False), Variant("question_only", False, False, False)]
        variants += [Variant("no_depth", True, False, False)] if has_depth else []
        variants += [Variant("qra", True, has_depth, True)] if has_rationale else []
        variants += [Variant("qa_mod", True, has_depth, False, mod=True)] if recipe["mod"] else []
        parse = create_builder(release.manifest.builder).parse_rationale
        answers: dict[str, Counter] = {}
        for record in train.records:
            _, answer, _, kind = question_answer(record, self.kind)
            answers.setdefault(kind, Counter())[answer] += 1
        self.majority = {kind: counter.most_common(1)[0][0] for kind, counter in answers.items()}
        models, history, timings = {}, {}, {"read_s": round(read_s, 2)}
        for variant in variants:
            t0 = time.perf_counter()
            models[variant.name], history[variant.name], speed = self._train(job, variant, formatter, train)
            timings[f"train_{variant.name}_s"] = round(time.perf_counter() - t0, 2)
            timings[f"train_{variant.name}_tokens_per_s"] = speed
        per_split: dict[str, dict[str, Any]] = {}
        generation = {"tokens": 0, "seconds": 0.0}
        for split in evals:
            per_split[split.name] = self._evaluate(models, variants, split, formatter, recipe, parse, generation)
        head = per_split[evals[0].name]
        timings["generate_tokens_per_s"] = round(generation["tokens"] / max(generation["seconds"], 1e-9), 1)
        result: dict[str, Any] = {
            "metrics": head["metrics"],
            "prior": head["prior"],
            "eval_split": evals[0].name,
            "train_split": train_name,
            "train_samples": len(train.keys),
            "variants": {v.name: {"image": v.image, "depth": v.depth, "rationale": v.rationale} for v in variants},
            "history": history["qa"],
            "histories": history,
            "explain": {
                "reference_rationale_facts": "the release's own rationales state facts that its records' measurements contradict "
                "(rationales swapped between samples, or written for another image?)"
            },
        }
        if head.get("examples"):
            result["examples"] = head["examples"]
        if len(per_split) > 1:
            result["splits"] = {name: values["metrics"] for name, values in per_split.items()}
        if job.reference is not None:
            result["reference"] = self._on_reference(models, variants, job.reference, formatter, recipe, parse)
        result["probes"] = self._probes(job, models, variants, train, evals[0], formatter, head, timings)
        result["least_learnable"] = self._least_learnable(models["qa"], train, formatter, recipe)
        result["checkpoint"] = str(Path(job.workdir) / "qa" / "model")
        result["timings"] = {**timings, "total_s": round(time.perf_counter() - started, 2)}
        return result

    # -- pieces --------------------------------------------------------------------------------

    def _formatter(self, workdir: Path, train: Split, recipe: dict[str, Any]) -> Any:
        """The BPE tokenizer of the train split's text (kept in the workdir, so a resumed run reuses it)."""
        from dataengine.validate.text import TOKENIZER, Formatter, load_tokenizer, train_tokenizer

        path = Path(workdir) / TOKENIZER
        texts = [t for r in train.records for t in question_answer(r, self.kind)[:3] if t]
        digest = hashlib.sha256(json.dumps([recipe["vocab_size"], texts]).encode()).hexdigest()
        stamp = Path(workdir) / "tokenizer.sha256"
        if path.exists() and stamp.exists() and stamp.read_text() == digest:
            return Formatter(load_tokenizer(path))
        tokenizer = train_tokenizer(texts, recipe["vocab_size"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(path))
        stamp.write_text(digest)
        return Formatter(tokenizer)

    def _config(self, variant: Variant, formatter: Any, recipe: dict[str, Any]) -> Any:
        from dataengine.validate.vlm import VLMConfig

        dim = recipe["dim"]
        return VLMConfig(
            vocab_size=formatter.vocab_size,
            dim=dim,
            layers=recipe["layers"],
            heads=recipe["heads"],
            hidden=int(math.ceil(dim * 8 / 3 / 32) * 32),
            vision=recipe["vision"] if variant.image else None,
            vision_kwargs=dict(recipe["vision_kwargs"]),
            input_size=list(recipe["input_size"]),
            depth=variant.depth,
            pad_id=formatter.pad,
            dropout=recipe["dropout"],
            tie_embeddings=recipe["tie_embeddings"],
            init=recipe["init"],
            mod=variant.mod,
        )

    def _sequences(self, variant: Variant, formatter: Any, split: Split, indices: list[int]) -> tuple[Any, Any, Any]:
        """Left-padded inputs, their real-token flags, and labels (-100 except where a target token is predicted)."""
        import torch

        from dataengine.validate.vlm import left_pad

        rows, labels = [], []
        for i in indices:
            question, answer, rationale, _ = question_answer(split.records[i], self.kind)
            prompt = formatter.prompt(question, variant.rationale)
            target = formatter.target(answer, (rationale or "") if variant.rationale else None)
            sequence = prompt + target
            rows.append(sequence[:-1])
            labels.append([-100] * (len(prompt) - 1) + target)
        ids, valid = left_pad(rows, formatter.pad)
        label = torch.full(ids.shape, -100, dtype=torch.long)
        for row, values in enumerate(labels):
            label[row, ids.shape[1] - len(values) :] = torch.tensor(values)
        return ids, valid, label

    def _views(self, variant: Variant, split: Split, indices: Any) -> tuple[Any, Any]:
        if not variant.image:
            return None, None
        return split.images[indices], (split.depths[indices] if variant.depth and split.depths is not None else None)

    def _train(self, job: Any, variant: Variant, formatter: Any, train: Split) -> tuple[Any, list[dict[str, Any]], float]:
        """Train one variant (resuming from its last epoch checkpoint); returns the model, its curve and tokens/s."""
        import torch
        import torch.nn.functional as F
        from tqdm import tqdm

        from dataengine.validate.vlm import VLM, load_model, save_model

        recipe = job.config.recipe
        epochs = (recipe["qra_epochs"] or recipe["epochs"]) if variant.rationale else recipe["epochs"]
        state = VariantCheckpoints(Path(job.workdir) / variant.name, recipe)
        final = state.done()
        if final is not None:
            return final
        torch.manual_seed(recipe["seed"])
        model = VLM(self._config(variant, formatter, recipe)).to(job.device)
        n = len(train.keys)
        steps_per_epoch = math.ceil(n / recipe["batch_size"])
        optimizer = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"], betas=(0.9, 0.98))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(epochs * steps_per_epoch, recipe["warmup"]))
        start, history = state.resume(model, optimizer, scheduler, job.echo)
        tokens = 0
        seconds = 0.0
        for epoch in range(start, epochs):
            model.train()
            order = np.random.default_rng([recipe["seed"], epoch]).permutation(n)
            losses, epoch_started = [], time.perf_counter()
            bar = tqdm(total=n, desc=f"{variant.name} {epoch + 1}/{epochs}", unit="sample", disable=not job.progress, file=sys.stderr)
            for begin in range(0, n, recipe["batch_size"]):
                batch = order[begin : begin + recipe["batch_size"]]
                ids, valid, labels = (t.to(job.device) for t in self._sequences(variant, formatter, train, batch.tolist()))
                images, depths = self._views(variant, train, torch.from_numpy(batch))
                visual = model.visual_tokens(
                    images.to(job.device) if images is not None else None, depths.to(job.device) if depths is not None else None
                )
                logits = model(ids, valid, visual)[:, -ids.shape[1] :]
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                losses.append(float(loss.detach()))
                tokens += int(valid.sum()) + (visual.shape[0] * visual.shape[1] if visual is not None else 0)
                bar.update(len(batch))
            bar.close()
            seconds += time.perf_counter() - epoch_started
            history.append({"epoch": epoch + 1, "loss": round(float(np.mean(losses)), 5), "lr": optimizer.param_groups[0]["lr"]})
            state.save(model, optimizer, scheduler, epoch + 1, history)
        speed = round(tokens / seconds, 1) if seconds else 0.0
        model.eval()
        target = save_model(model, Path(job.workdir) / variant.name / "model", {"variant": variant.name, "tokens_per_s": speed})
        shutil.copyfile(Path(job.workdir) / "tokenizer.json", target / "tokenizer.json")
        write_json_atomic(
            Path(job.workdir) / variant.name / "done.json", {"recipe_sha256": state.recipe_sha, "history": history, "speed": speed}
        )
        return load_model(target).to(job.device), history, speed

    def _answers(
        self,
        model: Any,
        variant: Variant,
        split: Split,
        formatter: Any,
        recipe: dict[str, Any],
        permutation: Any,
        generation: dict[str, Any],
        minicache: tuple[float, float] | None = None,
        cache_stats: dict[str, Any] | None = None,
    ) -> list[tuple[str | None, str]]:
        """(rationale, answer) generated for every sample of `split` (images taken from `permutation`)."""
        import torch

        limit = recipe["max_answer_tokens"] + (recipe["max_rationale_tokens"] if variant.rationale else 0)
        out: list[tuple[str | None, str]] = []
        device = model.embed.weight.device
        for begin in range(0, len(split.keys), recipe["eval_batch"]):
            indices = list(range(begin, min(begin + recipe["eval_batch"], len(split.keys))))
            prompts = [formatter.prompt(question_answer(split.records[i], self.kind)[0], variant.rationale) for i in indices]
            images, depths = self._views(variant, split, torch.as_tensor(permutation[indices]))
            t0 = time.perf_counter()
            generated = model.generate(
                prompts,
                images.to(device) if images is not None else None,
                depths.to(device) if depths is not None else None,
                limit,
                formatter.eos,
                minicache=minicache,
                cache_stats=cache_stats,
            )
            generation["seconds"] += time.perf_counter() - t0
            generation["tokens"] += sum(len(g) + 1 for g in generated)
            out += [formatter.split(g, variant.rationale) for g in generated]
        return out

    def _evaluate(
        self,
        models: dict[str, Any],
        variants: list[Variant],
        split: Split,
        formatter: Any,
        recipe: dict[str, Any],
        parse: Callable[[str], Any],
        generation: dict[str, Any],
    ) -> dict[str, Any]:
        """Per variant (and the shuffled-images control), accuracy overall and per question kind."""
        n = len(split.keys)
        identity = np.arange(n)
        order = np.random.default_rng([recipe["seed"], 1]).permutation(n)
        shuffled = np.empty(n, dtype=np.int64)
        shuffled[order] = np.roll(order, -1)  # every sample gets another sample's image (a derangement)
        runs = [(v.name, v, identity, None) for v in variants] + [("shuffled_images", variants[0], shuffled, None)]
        if recipe["minicache"] is not None:
            runs.append(("minicache", variants[0], identity, (recipe["minicache"]["t"], recipe["minicache"]["gamma"])))
        kinds = [question_answer(r, self.kind)[3] for r in split.records]
        scores: dict[str, list[float]] = {}
        outputs: dict[str, list[tuple[str | None, str]]] = {}
        cache_stats: dict[str, Any] = {}
        speeds: dict[str, float] = {}
        for name, variant, permutation, minicache in runs:
            clock = {"tokens": 0, "seconds": 0.0}
            outputs[name] = self._answers(
                models[variant.name], variant, split, formatter, recipe, permutation, clock, minicache, cache_stats if minicache else None
            )
            speeds[name] = round(clock["tokens"] / max(clock["seconds"], 1e-9), 1)
            generation["tokens"] += clock["tokens"]
            generation["seconds"] += clock["seconds"]
            scores[name] = [score(a, r, self.kind, recipe["numeric_tolerance"]) for (_, a), r in zip(outputs[name], split.records)]
        scores["majority"] = [
            score(self.majority.get(k, ""), r, self.kind, recipe["numeric_tolerance"]) for k, r in zip(kinds, split.records)
        ]
        metrics: dict[str, float] = {}
        for name, values in scores.items():
            key = "accuracy" if name == "qa" else f"{name}_accuracy"
            metrics[key] = round(float(np.mean(values)), 4)
            for kind in sorted(set(kinds)):
                metrics[f"{key}/{kind}"] = round(float(np.mean([v for v, k in zip(values, kinds) if k == kind])), 4)
        # the prior: the better of the question-only model and the train split's most common answer per kind
        prior = {
            key.replace("question_only_", ""): max(value, metrics[key.replace("question_only_", "majority_")])
            for key, value in metrics.items()
            if key.startswith("question_only_accuracy")
        }
        counts = Counter(kinds)
        facts = self._rationale_facts(outputs.get("qra"), split, parse, recipe["numeric_tolerance"])
        metrics.update(facts)
        examples = [
            {"key": split.keys[i], "question": split.records[i]["question"], "answer": question_answer(split.records[i], self.kind)[1]}
            | {name: outputs[name][i][1] for name in outputs}
            | ({"qra_rationale": outputs["qra"][i][0]} if "qra" in outputs else {})
            for i in range(min(n, 4))
        ]
        return {
            "metrics": metrics,
            "prior": prior,
            "counts": dict(counts),
            "examples": examples,
            "cache_stats": cache_stats,
            "generate_tokens_per_s": speeds,
        }

    def _rationale_facts(
        self, generated: list[tuple[str | None, str]] | None, split: Split, parse: Callable[[str], Any], tolerance: float
    ) -> dict[str, float]:
        """Share of stated facts that agree with the record's measured facts: generated and the release's own."""
        if self.kind != "ssr_cot":
            return {}
        found: dict[str, float] = {}
        sources = {"reference_rationale_facts": [r.get("rationale") or "" for r in split.records]}
        if generated is not None:
            sources["rationale_facts"] = [text or "" for text, _ in generated]
        for name, texts in sources.items():
            agree = total = 0
            for text, record in zip(texts, split.records):
                stated = parse(text)
                if stated is None:  # the family reads no rationale back
                    return {}
                a, t = fact_agreement(stated, record.get("facts") or {}, tolerance)
                agree, total = agree + a, total + t
            found[name] = round(agree / total, 4) if total else 0.0
        return found

    def _on_reference(
        self, models: dict[str, Any], variants: list[Variant], reference: Release, formatter: Any, recipe: dict[str, Any], parse: Callable
    ) -> dict[str, Any]:
        """The same models on a trusted release's evaluation split (its question-only accuracy is its prior)."""
        if reference.manifest.sample_kind != self.kind:
            raise ValueError(f"--reference {reference.root}: a '{reference.manifest.sample_kind}' release, not '{self.kind}'")
        _, evaluate = _layout(reference)
        size = (recipe["input_size"][0], recipe["input_size"][1])
        split = read_split(reference, evaluate[0], size, recipe["workers"])
        usable = [v for v in variants if not v.depth or split.depths is not None]
        scores = self._evaluate(models, usable, split, formatter, recipe, parse, {"tokens": 0, "seconds": 0.0})
        return {"release": reference.root, "split": split.name, "metrics": scores["metrics"], "prior": scores["prior"]}

    def _probes(
        self,
        job: Any,
        models: dict[str, Any],
        variants: list[Variant],
        train: Split,
        split: Split,
        formatter: Any,
        head: dict[str, Any],
        timings: dict[str, Any],
    ) -> dict[str, Any]:
        """The sections of the four probes (`measures`): criticality of a fresh qa model, the trained qa
        model's PPL-p% sparsity and MiniCache generation, qa_mod vs qa."""
        import torch

        from dataengine.validate.measures import criticality_section, minicache_section, mod_section, sparsity_section
        from dataengine.validate.vlm import VLM

        recipe = job.config.recipe
        qa = variants[0]
        torch.manual_seed(recipe["seed"])
        fresh = VLM(self._config(qa, formatter, recipe))
        images, depths = self._views(qa, train, torch.arange(min(64, len(train.keys))))
        probes: dict[str, Any] = {"criticality": criticality_section(fresh, images, depths, recipe["init"] == "critical")}
        sample = list(range(min(PROBE_SAMPLES, len(split.keys))))
        if recipe["sparsity_p"] is not None:
            batches = list(self._loss_batches(models["qa"], qa, split, formatter, recipe, sample))
            probes["sparsity"] = sparsity_section(models["qa"], batches, recipe["sparsity_p"])
        if recipe["minicache"] is not None:
            t, gamma = recipe["minicache"]["t"], recipe["minicache"]["gamma"]
            losses = {
                name: self._target_loss(models["qa"], qa, split, formatter, recipe, sample, merge)
                for name, merge in (("dense", None), ("merged", (t, gamma)))
            }
            speed = {"dense": head["generate_tokens_per_s"]["qa"], "merged": head["generate_tokens_per_s"]["minicache"]}
            metrics = head["metrics"]
            probes["minicache"] = minicache_section(
                metrics["accuracy"], metrics["minicache_accuracy"], head["cache_stats"], losses, speed, t, gamma
            )
        if "qa_mod" in models:
            n_vision = models["qa_mod"].visual_tokens(*self._views(qa, train, torch.arange(1))).shape[1]
            n_text = round(float(np.mean([len(formatter.prompt(question_answer(r, self.kind)[0], False)) for r in split.records])))
            train_s = {"mod": timings.get("train_qa_mod_s"), "dense": timings.get("train_qa_s")}
            probes["mod"] = mod_section(
                models["qa_mod"], n_vision, n_text, head["metrics"]["accuracy"], head["metrics"]["qa_mod_accuracy"], train_s
            )
        return probes

    def _loss_batches(
        self, model: Any, variant: Variant, split: Split, formatter: Any, recipe: dict[str, Any], indices: list[int]
    ) -> Iterator[Any]:
        """(ids, valid, labels, visual tokens) of `indices` in eval batches, for losses over the answers."""
        import torch

        device = model.embed.weight.device
        with torch.inference_mode():
            for begin in range(0, len(indices), recipe["eval_batch"]):
                chunk = indices[begin : begin + recipe["eval_batch"]]
                ids, valid, labels = (t.to(device) for t in self._sequences(variant, formatter, split, chunk))
                images, depths = self._views(variant, split, torch.as_tensor(chunk))
                visual = model.visual_tokens(
                    images.to(device) if images is not None else None, depths.to(device) if depths is not None else None
                )
                yield ids, valid, labels, visual

    def _target_loss(
        self, model: Any, variant: Variant, split: Split, formatter: Any, recipe: dict[str, Any], indices: list[int], minicache: Any
    ) -> tuple[float, int]:
        """Summed answer cross-entropy and token count, teacher-forced through the (merged) KV cache."""
        import torch

        device = model.embed.weight.device
        total, count = 0.0, 0
        for begin in range(0, len(indices), recipe["eval_batch"]):
            chunk = indices[begin : begin + recipe["eval_batch"]]
            pairs = [question_answer(split.records[i], self.kind) for i in chunk]
            prompts = [formatter.prompt(question, False) for question, *_ in pairs]
            targets = [formatter.target(answer, None) for _, answer, *_ in pairs]
            images, depths = self._views(variant, split, torch.as_tensor(chunk))
            loss, tokens = model.target_loss(
                prompts,
                targets,
                images.to(device) if images is not None else None,
                depths.to(device) if depths is not None else None,
                minicache,
            )
            total, count = total + loss, count + tokens
        return total, count

    def _least_learnable(self, model: Any, train: Split, formatter: Any, recipe: dict[str, Any]) -> list[dict[str, Any]]:
        """The training samples whose answer the `qa` model finds least likely: where to look for label errors."""
        import torch
        import torch.nn.functional as F

        if not recipe["least_learnable"]:
            return []
        variant = Variant("qa", True, train.depths is not None, False)
        device = model.embed.weight.device
        scored = []
        with torch.inference_mode():
            for begin in range(0, len(train.keys), recipe["eval_batch"]):
                indices = list(range(begin, min(begin + recipe["eval_batch"], len(train.keys))))
                ids, valid, labels = (t.to(device) for t in self._sequences(variant, formatter, train, indices))
                images, depths = self._views(variant, train, torch.as_tensor(indices))
                visual = model.visual_tokens(
                    images.to(device) if images is not None else None, depths.to(device) if depths is not None else None
                )
                logits = model(ids, valid, visual)[:, -ids.shape[1] :]
                loss = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")
                per_sample = loss.sum(1) / (labels != -100).sum(1).clamp_min(1)
                scored += [{"key": train.keys[i], "split": train.name, "loss": round(float(v), 4)} for i, v in zip(indices, per_sample)]
        return sorted(scored, key=lambda row: (-row["loss"], row["key"]))[: recipe["least_learnable"]]


def _layout(release: Release) -> tuple[str, list[str]]:
    """The train split and the splits to evaluate (validation / test / val first, then the rest)."""
    splits = release.splits
    if "train" not in splits:
        raise ValueError(f"{release.root}: the spatial trainer needs a train split; splits: {', '.join(splits)}")
    held = [s for s in ("validation", "test", "val") if s in splits] + [
        s for s in splits if s not in ("train", "validation", "test", "val")
    ]
    if not held:
        raise ValueError(f"{release.root} has a train split but nothing to evaluate on; splits: {', '.join(splits)}")
    return "train", held


class VariantCheckpoints(EpochCheckpoints):
    """Per-epoch checkpoints of one variant in `<workdir>/<variant>/last` (safetensors + JSON), resumable."""

    def __init__(self, folder: Path, recipe: dict[str, Any]):
        from dataengine.validate.vlm import save_model

        super().__init__(folder, recipe, save_model)

    def done(self) -> tuple[Any, list[dict[str, Any]], float] | None:
        """The finished model of this recipe, if a previous run trained it."""
        from dataengine.validate.vlm import load_model

        marker = self.folder / "done.json"
        if not marker.exists():
            return None
        state = json.loads(marker.read_text())
        if state.get("recipe_sha256") != self.recipe_sha:
            shutil.rmtree(self.folder)
            return None
        return load_model(self.folder / "model"), state["history"], state["speed"]
