"""The spatial trainer's model: a timm ViT over the image (and the colourised depth map) feeding a
small causal decoder (RoPE, SwiGLU, RMSNorm), trained from scratch; greedy generation with a KV cache.

Sequences are [vision tokens | left padding | prompt | target]. Every token's position is
the count of real tokens before it, so padding never shifts RoPE, and a key mask keeps pads out of
attention. That makes a batch of prompts of different lengths generate exactly what each prompt
generates alone, and generation with the cache exactly what recomputing the whole sequence gives.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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
        self.gate_up = nn.Linear(config.dim, 2 * config.hidden, bias=False)
        self.down = nn.Linear(config.hidden, config.dim, bias=False)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor, cache: dict[str, Any] | None
    ) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), rope, mask, cache)
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


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
        for index, block in enumerate(self.blocks):
            x = block(x, rope, mask, cache[index] if cache is not None else None)
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
    ) -> list[list[int]]:
        """Greedy continuations of `prompts` (token ids), batched; each stops at `eos_id` (not included)."""
        device = self.embed.weight.device
        ids, valid = left_pad(prompts, self.config.pad_id, device)
        visual = self.visual_tokens(images, depths)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=device)
        out: list[list[int]] = [[] for _ in prompts]
        cache = [{} for _ in self.blocks] if use_cache else None
        logits = self.forward(ids, valid, visual, cache)
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
    from safetensors.torch import save_file

    target = Path(target)
    tmp = target.with_name(f".{target.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp / WEIGHTS))
    (tmp / CONFIG).write_text(json.dumps({**asdict(model.config), **(extra or {})}, indent=1))
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def load_model(path: str | Path) -> VLM:
    """A model saved by `save_model`."""
    from safetensors.torch import load_file

    path = Path(path)
    document = json.loads((path / CONFIG).read_text())
    config = VLMConfig(**{k: v for k, v in document.items() if k in VLMConfig.__dataclass_fields__})
    model = VLM(config)
    model.load_state_dict(load_file(str(path / WEIGHTS)))
    return model.eval()
