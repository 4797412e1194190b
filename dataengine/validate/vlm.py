"""The spatial trainer's model: a timm ViT over the image (and the colourised depth map) feeding a
small causal decoder (RoPE, SwiGLU, RMSNorm), trained from scratch; greedy generation with a KV cache.

Three of the probes (`dataengine.probes`) are switches of the model: `init="critical"` draws the
projector and the MLPs at criticality (PDLT), `mod=True` routes the vision tokens of the layers that
the PRD schedule makes sparse through a TanhNorm router (p-MoD), and `generate(minicache=(t, gamma))`
merges adjacent layers' KV cache from L/2 on with SLERP (MiniCache).

Sequences are [vision tokens | left padding | prompt | target]. Every token's position is
the count of real tokens before it, so padding never shifts RoPE, and a key mask keeps pads out of
attention. That makes a batch of prompts of different lengths generate exactly what each prompt
generates alone, and generation with the cache exactly what recomputing the whole sequence gives.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dataengine.probes import MoDBlock, compress_cache_, critical_parameters, init_critical_, prd_schedule, prenorm_branches
from dataengine.probes.criticality import second_moment

CONFIG = "config.json"
WEIGHTS = "model.safetensors"


@dataclass
class VLMConfig:
    """Everything that rebuilds the model (saved as config.json beside the safetensors weights)."""

    vocab_size: int
    dim: int = 128
    layers: int = 3
    heads: int = 4
    hidden: int = 352  # SwiGLU width (about 8/3 x dim, as LLaMA)
    max_len: int = 512
    rope_theta: float = 10000.0
    vision: str | None = "vit_tiny_patch16_224"  # None: a question-only model (no image)
    vision_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: list[int] = field(default_factory=lambda: [48, 64])
    depth: bool = False  # the colourised depth map as a second image through the same ViT
    pad_id: int = 0
    dropout: float = 0.0  # on the attention and MLP branches while training
    tie_embeddings: bool = False  # the output head shares the input embedding (helps copying names from the question)
    init: str = "default"  # or "critical": the projector and the MLPs at criticality (see `VLM.init_critical`)
    mod: bool = False  # p-MoD: vision tokens routed in the layers whose PRD ratio is below 1


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_angles(positions: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of RoPE's angles for integer positions (B, T): (B, 1, T, head_dim / 2)."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim)
    angles = positions.float()[:, None, :, None] * inv
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (even, odd) pair of `x` (B, H, T, D) by its position's angle."""
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, config: VLMConfig):
        super().__init__()
        self.heads, self.head_dim = config.heads, config.dim // config.heads
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.out = nn.Linear(config.dim, config.dim, bias=False)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor, cache: dict[str, Any] | None
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)
            cache["k"], cache["v"] = k, v
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    """Pre-norm decoder block: RMSNorm -> attention, RMSNorm -> SwiGLU MLP."""

    def __init__(self, config: VLMConfig):
        super().__init__()
        self.norm1, self.norm2 = RMSNorm(config.dim), RMSNorm(config.dim)
        self.attn = Attention(config)
        self.drop = nn.Dropout(config.dropout)
        self.gate_up = nn.Linear(config.dim, 2 * config.hidden, bias=False)
        self.down = nn.Linear(config.hidden, config.dim, bias=False)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor, cache: dict[str, Any] | None
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), rope, mask, cache))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.drop(self.down(F.silu(gate) * up))


def attention_mask(valid_keys: torch.Tensor, query_positions: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, Tq, Tk) mask: a query sees real keys at or before its own slot, and always itself.

    `valid_keys` (B, Tk) marks real tokens; the queries are the last Tq slots of the keys."""
    tk, tq = valid_keys.shape[1], query_positions.shape[1]
    slots = torch.arange(tk, device=valid_keys.device)
    query_slots = slots[tk - tq :]
    causal = slots[None, :] <= query_slots[:, None]  # (Tq, Tk)
    own = slots[None, :] == query_slots[:, None]
    return ((causal[None] & valid_keys[:, None, :]) | own[None])[:, None]


class VLM(nn.Module):
    """Vision tokens (projected ViT patches of the image, then of the depth map) prefix a causal decoder."""

    def __init__(self, config: VLMConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = RMSNorm(config.dim)
        self.head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight
        self.ratios = prd_schedule(config.layers) if config.mod else [1.0] * config.layers
        self.mods = nn.ModuleDict({str(i): MoDBlock(config.dim, r) for i, r in enumerate(self.ratios) if r < 1.0})
        self.vision = None
        if config.vision:
            import timm

            self.vision = timm.create_model(
                config.vision, pretrained=False, num_classes=0, img_size=tuple(config.input_size), **config.vision_kwargs
            )
            width = self.vision.num_features
            self.project = nn.Sequential(nn.Linear(width, config.dim), nn.GELU(), nn.Linear(config.dim, config.dim))
            self.kind = nn.Parameter(torch.zeros(2, config.dim))  # tells image tokens from depth tokens
            nn.init.normal_(self.kind, std=0.02)
            cfg = self.vision.pretrained_cfg
            self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(cfg.get("std", (0.5, 0.5, 0.5))).view(1, 3, 1, 1), persistent=False)
        if config.init == "critical":
            self.init_critical()
        elif config.init != "default":
            raise ValueError(f"init {config.init!r}: use 'default' or 'critical'")

    @torch.no_grad()
    def init_critical(self) -> dict[str, float]:
        """PDLT criticality at initialisation: the projector (Linear -> GELU -> Linear) at GELU's critical
        (Cb, Cw); in each SwiGLU MLP (no biases) the gate at SiLU's critical Cw, the up projection at the
        linear one (Cw = 1), and the down projection at Cw = 1 / E[silu(z)^2] (z ~ N(0, K_gate)), so the
        MLP branch keeps the variance of its RMS-normalised input. Returns the weight variances used."""
        hidden, dim = self.config.hidden, self.config.dim
        used: dict[str, float] = {}
        if self.vision is not None:
            used["projector_cb"], used["projector_cw"] = init_critical_(self.project, "gelu")
        _, cw_silu, _ = critical_parameters("silu")
        cw_down = 1.0 / second_moment("silu", cw_silu)  # the gate's preactivation variance is Cw for unit-variance inputs
        for block in self.blocks:
            block.gate_up.weight[:hidden].normal_(0.0, math.sqrt(cw_silu / dim))
            block.gate_up.weight[hidden:].normal_(0.0, math.sqrt(1.0 / dim))
            block.down.weight.normal_(0.0, math.sqrt(cw_down / hidden))
        used.update(gate_cw=cw_silu, up_cw=1.0, down_cw=cw_down)
        return used

    def visual_tokens(self, images: torch.Tensor | None, depths: torch.Tensor | None) -> torch.Tensor | None:
        """(B, P, dim) tokens of uint8 (B, 3, H, W) images (and colourised depth maps), None without vision."""
        if self.vision is None or images is None:
            return None
        views = [images] + ([depths] if self.config.depth else [])
        tokens = []
        for index, view in enumerate(views):
            x = (view.float() / 255 - self.mean) / self.std
            features = self.vision.forward_features(x)
            features = (
                features[:, getattr(self.vision, "num_prefix_tokens", 0) :] if features.ndim == 3 else features.flatten(2).transpose(1, 2)
            )
            tokens.append(self.project(features) + self.kind[index])
        return torch.cat(tokens, dim=1)

    def forward(
        self,
        ids: torch.Tensor,
        valid: torch.Tensor,
        visual: torch.Tensor | None = None,
        cache: list[dict[str, Any]] | None = None,
        past_valid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, T, vocab) for the text `ids` (B, T), after the `visual` prefix (or after the cached
        tokens whose real/pad flags are `past_valid`). `valid` marks real text tokens (False: padding)."""
        x = self.embed(ids)
        new_valid = valid
        if visual is not None:  # [vision | pads | text]: positions skip the pads, the mask hides them
            x = torch.cat([visual, x], dim=1)
            new_valid = torch.cat([torch.ones(visual.shape[:2], dtype=torch.bool, device=ids.device), valid], dim=1)
        all_valid = new_valid if past_valid is None else torch.cat([past_valid, new_valid], dim=1)
        positions = (all_valid.long().cumsum(1) - 1).clamp_min(0)[:, -new_valid.shape[1] :]
        rope = rope_angles(positions, self.config.dim // self.config.heads, self.config.rope_theta)
        mask = attention_mask(all_valid, positions)
        vision_mask = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
        if visual is not None:
            vision_mask[: visual.shape[1]] = True
        for index, block in enumerate(self.blocks):
            layer_cache = cache[index] if cache is not None else None
            if str(index) in self.mods:
                x, _ = self.mods[str(index)](x, vision_mask, *prenorm_branches(block, rope, mask, layer_cache))
            else:
                x = block(x, rope, mask, layer_cache)
        return self.head(self.norm(x))

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[list[int]],
        images: torch.Tensor | None,
        depths: torch.Tensor | None,
        max_new: int,
        eos_id: int,
        use_cache: bool = True,
        minicache: tuple[float, float] | None = None,
        cache_stats: dict[str, Any] | None = None,
    ) -> list[list[int]]:
        """Greedy continuations of `prompts` (token ids), batched; each stops at `eos_id` (not included).

        `minicache=(t, gamma)` merges the prompt's KV cache across depth after the prefill (MiniCache);
        its stored / dense element counts are added to `cache_stats`."""
        device = self.embed.weight.device
        ids, valid = left_pad(prompts, self.config.pad_id, device)
        visual = self.visual_tokens(images, depths)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
        out: list[list[int]] = [[] for _ in prompts]
        cache = [{} for _ in self.blocks] if use_cache else None
        logits = self.forward(ids, valid, visual, cache)
        if minicache is not None and cache is not None:
            self._compress(cache, minicache, cache_stats)
        past = valid if visual is None else torch.cat([torch.ones(visual.shape[:2], dtype=torch.bool, device=device), valid], 1)
        for _ in range(max_new):
            token = logits[:, -1].argmax(-1)
            for row in (~done).nonzero().flatten().tolist():
                if int(token[row]) != eos_id:
                    out[row].append(int(token[row]))
            done |= token == eos_id
            if bool(done.all()):
                break
            step_valid = torch.ones(len(prompts), 1, dtype=torch.bool, device=device)
            if use_cache:
                logits = self.forward(token[:, None], step_valid, None, cache, past)
                past = torch.cat([past, step_valid], 1)
            else:
                ids, valid = torch.cat([ids, token[:, None]], 1), torch.cat([valid, step_valid], 1)
                logits = self.forward(ids, valid, visual)
        return out

    def _compress(self, cache: list[dict[str, Any]], minicache: tuple[float, float], stats: dict[str, Any] | None) -> None:
        if self.mods:
            raise ValueError("MiniCache merges layers of equal length: it does not combine with mod=True")
        merged = compress_cache_(cache, *minicache)
        if stats is not None:
            stats["stored"] = stats.get("stored", 0) + merged["stored"]
            stats["dense"] = stats.get("dense", 0) + merged["dense"]
            stats["retained"] = stats.get("retained", 0) + sum(merged["retained"])

    @torch.inference_mode()
    def target_loss(
        self,
        prompts: list[list[int]],
        targets: list[list[int]],
        images: torch.Tensor | None,
        depths: torch.Tensor | None,
        minicache: tuple[float, float] | None = None,
    ) -> tuple[float, int]:
        """(summed cross-entropy, token count) of `targets` teacher-forced after `prompts` through the KV
        cache, merged by MiniCache after the prefill when `minicache` is given: its perplexity cost."""
        device = self.embed.weight.device
        ids, valid = left_pad(prompts, self.config.pad_id, device)
        visual = self.visual_tokens(images, depths)
        cache: list[dict[str, Any]] = [{} for _ in self.blocks]
        first = self.forward(ids, valid, visual, cache)[:, -1:]
        if minicache is not None:
            self._compress(cache, minicache, None)
        past = valid if visual is None else torch.cat([torch.ones(visual.shape[:2], dtype=torch.bool, device=device), valid], 1)
        width = max(len(t) for t in targets)
        target = torch.full((len(targets), width), -100, dtype=torch.long, device=device)
        for row, values in enumerate(targets):
            target[row, : len(values)] = torch.tensor(values, device=device)
        logits = first
        if width > 1:
            step = target[:, :-1].clamp_min(0)
            step_valid = target[:, :-1] >= 0
            logits = torch.cat([first, self.forward(step, step_valid, None, cache, past)], 1)
        loss = F.cross_entropy(logits.transpose(1, 2).float(), target, ignore_index=-100, reduction="sum")
        return float(loss), int((target >= 0).sum())


def left_pad(rows: list[list[int]], pad_id: int, device: Any = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, valid) of token rows, left-padded to the longest."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    valid = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row)
            valid[i, width - len(row) :] = True
    return ids.to(device), valid.to(device)


def save_model(model: VLM, target: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """config.json + model.safetensors (no pickle), written to a sibling and renamed into place."""
    from safetensors.torch import save_model as save_weights

    target = Path(target)
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_weights(model, str(tmp / WEIGHTS))  # tied weights are stored once
    (tmp / CONFIG).write_text(json.dumps({**asdict(model.config), **(extra or {})}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def load_model(path: str | Path) -> VLM:
    """A model saved by `save_model`."""
    from safetensors.torch import load_model as load_weights

    path = Path(path)
    document = json.loads((path / CONFIG).read_text())
    config = VLMConfig(**{k: v for k, v in document.items() if k in VLMConfig.__dataclass_fields__})
    model = VLM(config)
    load_weights(model, str(path / WEIGHTS))
    return model.eval()
