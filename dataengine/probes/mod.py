"""Mixture-of-depths over vision tokens with progressive ratio decay (p-MoD).

In a MoD layer a zero-initialised linear router scores every token, r = router(x), and TanhNorm turns
the score into a weight w = alpha tanh(r) + 1 (alpha = 0.2). Of the N vision tokens the top
k = floor(R N) by score go through the pre-norm block, only the MLP branch being scaled:
h = x + Attn(x) (attention over the kept tokens and all text tokens), y = h + w MLP(h). Skipped vision
tokens get y = w x, so the router learns from them too (symmetric token reweighting). Text tokens are
never skipped and have w = 1. At initialisation r = 0, w = 1: a ratio-1 layer is the plain layer.

Progressive ratio decay: R_l = cos(pi l / (L-1)) / 2 + 0.5 where that is at most 0.85, floored at 0.15;
the earlier layers (R_l > 0.85) stay dense (1.0).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

AttnBranch = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
MlpBranch = Callable[[torch.Tensor], torch.Tensor]


def prd_schedule(L: int, dense_above: float = 0.85, floor: float = 0.15) -> list[float]:
    """Retention ratio of each of the L layers: 1.0 for the dense layers, else
    max(cos(pi l / (L-1)) / 2 + 0.5, floor) for l = 0..L-1 where that cosine value is <= dense_above."""
    if L < 2:
        return [1.0] * L
    ratios = []
    for l in range(L):
        value = math.cos(math.pi * l / (L - 1)) / 2 + 0.5
        ratios.append(1.0 if value > dense_above else max(value, floor))
    return ratios


def mod_layers(ratios: Sequence[float]) -> list[int]:
    """Indices of the MoD layers (ratio below 1) of a schedule."""
    return [l for l, r in enumerate(ratios) if r < 1.0]


def tanh_norm(scores: torch.Tensor, alpha: float = 0.2) -> torch.Tensor:
    """TanhNorm: w = alpha tanh(r) + 1."""
    return alpha * torch.tanh(scores) + 1.0


class TanhNormRouter(nn.Module):
    """Zero-initialised nn.Linear(dim, 1) scoring tokens; forward gives (scores r, weights w), each (B, T)."""

    def __init__(self, dim: int, alpha: float = 0.2):
        super().__init__()
        self.alpha = alpha
        self.proj = nn.Linear(dim, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.proj(x).squeeze(-1)
        return scores, tanh_norm(scores, self.alpha)


def _vision_mask(vision_mask: torch.Tensor, batch: int, length: int) -> tuple[torch.Tensor, int]:
    mask = vision_mask.to(torch.bool)
    mask = mask.expand(batch, length) if mask.ndim == 1 or mask.shape[0] == 1 else mask
    counts = mask.sum(1)
    if bool((counts != counts[0]).any()):
        raise ValueError("every row must hold the same number of vision tokens")
    return mask, int(counts[0]) if batch else 0


def kept_indices(scores: torch.Tensor, vision_mask: torch.Tensor, ratio: float) -> torch.Tensor:
    """(B, K) ascending positions that go through the block: the top floor(ratio * N_vision) vision tokens
    by score (ties to the earlier token) and every text token."""
    batch, length = scores.shape
    mask, n_vision = _vision_mask(vision_mask, batch, length)
    vision = mask.nonzero()[:, 1].view(batch, n_vision)
    text = (~mask).nonzero()[:, 1].view(batch, length - n_vision)
    k = min(n_vision, int(math.floor(ratio * n_vision + 1e-9)))
    if k < n_vision:
        order = torch.sort(scores.gather(1, vision), dim=1, descending=True, stable=True).indices[:, :k]
        vision = vision.gather(1, order)
    return torch.cat([vision, text], dim=1).sort(dim=1).values


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x[b, index[b]] for x (B, T, ...) and index (B, K)."""
    expanded = index.view(*index.shape, *([1] * (x.ndim - 2))).expand(*index.shape, *x.shape[2:])
    return x.gather(1, expanded)


def gather_rope(rope: tuple[torch.Tensor, torch.Tensor], index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE (cos, sin), each (B, 1, T, D/2), at the kept positions: (B, 1, K, D/2)."""
    out = []
    for part in rope:
        part = part.expand(index.shape[0], *part.shape[1:])
        out.append(part.gather(2, index[:, None, :, None].expand(-1, part.shape[1], -1, part.shape[3])))
    return out[0], out[1]


def gather_mask(mask: torch.Tensor, query_index: torch.Tensor, key_index: torch.Tensor) -> torch.Tensor:
    """Rows `query_index` (B, Kq) and columns `key_index` (B, Kk) of an attention mask (B, 1, Tq, Tk)."""
    batch = query_index.shape[0]
    mask = mask.expand(batch, *mask.shape[1:])
    rows = mask.gather(2, query_index[:, None, :, None].expand(-1, mask.shape[1], -1, mask.shape[3]))
    return rows.gather(3, key_index[:, None, None, :].expand(-1, mask.shape[1], rows.shape[2], -1))


def mod_forward(
    x: torch.Tensor, vision_mask: torch.Tensor, ratio: float, router: TanhNormRouter, attn: AttnBranch, mlp: MlpBranch
) -> tuple[torch.Tensor, torch.Tensor]:
    """One MoD layer over x (B, T, dim): (y, kept positions (B, K)).

    `vision_mask` (T,) or (B, T) marks vision tokens (same count in every row); `attn(x_kept, index)`
    returns the attention residual of the gathered tokens (it must gather RoPE and the mask itself, see
    `prenorm_branches`); `mlp(h)` returns the MLP residual (its pre-norm included)."""
    batch, length, dim = x.shape
    mask, _ = _vision_mask(vision_mask.to(x.device), batch, length)
    scores, weights = router(x)
    weights = torch.where(mask, weights, torch.ones_like(weights))
    index = kept_indices(scores.detach(), mask, ratio)
    kept = gather_tokens(x, index)
    h = kept + attn(kept, index)
    y_kept = (h + weights.gather(1, index)[..., None] * mlp(h)).to(x.dtype)
    skipped = (weights[..., None] * x).to(x.dtype)
    return skipped.scatter(1, index[..., None].expand(-1, -1, dim), y_kept), index


class MoDBlock(nn.Module):
    """A router and a retention ratio around a pre-norm block given per call as two branch callables
    (`prenorm_branches` builds them for a block with norm1, attn, norm2, gate_up, down)."""

    def __init__(self, dim: int, ratio: float, alpha: float = 0.2):
        super().__init__()
        self.ratio = ratio
        self.router = TanhNormRouter(dim, alpha)

    def forward(self, x: torch.Tensor, vision_mask: torch.Tensor, attn: AttnBranch, mlp: MlpBranch) -> tuple[torch.Tensor, torch.Tensor]:
        return mod_forward(x, vision_mask, self.ratio, self.router, attn, mlp)


def prenorm_branches(
    block: nn.Module,
    rope: tuple[torch.Tensor, torch.Tensor],
    mask: torch.Tensor,
    cache: dict[str, Any] | None = None,
    act: Callable[[torch.Tensor], torch.Tensor] = F.silu,
) -> tuple[AttnBranch, MlpBranch]:
    """(attn, mlp) branches of a pre-norm SwiGLU block laid out as dataengine.validate.vlm.Block
    (norm1, attn(x, rope, mask, cache), norm2, gate_up chunked [gate, up], down, and an optional `drop`
    applied to both branch outputs), for `mod_forward`.

    RoPE is gathered at the kept positions. The mask (B, 1, Tq, Tk) has one row per token of this call's
    x and one column per key slot of the whole sequence, the queries being the last Tq slots; its rows
    are gathered at the kept tokens and its columns at the slots of the keys this layer holds. With a
    cache the layer keeps only its kept tokens' K/V, so their slots are stored as cache["slots"] and
    extended on every call."""

    drop = getattr(block, "drop", None) or (lambda t: t)

    def attn(kept: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        query_slots = index + (mask.shape[-1] - mask.shape[-2])
        key_slots = query_slots if cache is None or "slots" not in cache else torch.cat([cache["slots"], query_slots], dim=1)
        out = block.attn(block.norm1(kept), gather_rope(rope, index), gather_mask(mask, index, key_slots), cache)
        if cache is not None:
            cache["slots"] = key_slots
        return drop(out)

    def mlp(h: torch.Tensor) -> torch.Tensor:
        gate, up = block.gate_up(block.norm2(h)).chunk(2, dim=-1)
        return drop(block.down(act(gate) * up))

    return attn, mlp


def kept_tokens(ratios: Sequence[float], n_vision: int, n_text: int) -> list[int]:
    """Tokens through each layer: n_text + floor(R_l n_vision)."""
    return [n_text + min(n_vision, int(math.floor(r * n_vision + 1e-9))) for r in ratios]


def kv_cache_tokens(ratios: Sequence[float], n_vision: int, n_text: int) -> dict[str, Any]:
    """KV-cache entries (tokens summed over layers) with MoD vs dense: each layer caches its kept tokens.
    Keys: layers (per layer), mod, dense (L (n_vision + n_text)), ratio."""
    layers = kept_tokens(ratios, n_vision, n_text)
    dense = len(ratios) * (n_vision + n_text)
    return {"layers": layers, "mod": sum(layers), "dense": dense, "ratio": sum(layers) / dense if dense else float("nan")}


def block_flops(tokens: int, dim: int, hidden: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of one pre-norm SwiGLU block over `tokens` tokens attending to each
    other: qkv and out projections 8 t d^2, scores and weighted values 4 t^2 d, gated MLP 6 t d hidden
    (norms, softmax and RoPE left out)."""
    return 8 * tokens * dim * dim + 4 * tokens * tokens * dim + 6 * tokens * dim * hidden


def mod_flops(ratios: Sequence[float], n_vision: int, n_text: int, dim: int, hidden: int) -> dict[str, Any]:
    """Forward FLOPs of the decoder over one prefill of n_vision + n_text tokens, MoD vs dense (`block_flops`
    per layer on its kept tokens, plus the router's 2 dim FLOPs per token in the MoD layers).
    Keys: layers (per layer), mod, dense, ratio."""
    total = n_vision + n_text
    layers = [
        block_flops(kept, dim, hidden) + (2 * dim * total if r < 1.0 else 0)
        for kept, r in zip(kept_tokens(ratios, n_vision, n_text), ratios)
    ]
    dense = len(ratios) * block_flops(total, dim, hidden)
    return {"layers": layers, "mod": sum(layers), "dense": dense, "ratio": sum(layers) / dense if dense else float("nan")}
