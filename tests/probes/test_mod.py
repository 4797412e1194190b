"""p-MoD: the PRD schedule in closed form, TanhNorm routing at initialisation, symmetric token
reweighting, text tokens never skipped, and the wrapping of the reference decoder's Block (RoPE and the
attention mask gathered at the kept tokens, with and without the KV cache)."""

from __future__ import annotations

import math

import pytest
import torch

from dataengine.probes import MoDBlock, kv_cache_tokens, mod_flops, prd_schedule, prenorm_branches
from dataengine.probes.mod import block_flops, mod_layers
from dataengine.validate.vlm import Block, VLMConfig, attention_mask, rope_angles

CONFIG = VLMConfig(vocab_size=8, dim=32, layers=2, heads=4, hidden=48, vision=None)
HEAD_DIM = CONFIG.dim // CONFIG.heads
N_VISION, N_TEXT = 12, 6


def test_prd_schedule_for_32_layers():
    ratios = prd_schedule(32)
    assert len(ratios) == 32 and mod_layers(ratios) == list(range(8, 32))
    assert ratios[:8] == [1.0] * 8
    for l in range(8, 32):  # the shifted cosine, floored at 0.15 from layer 24 on (cos value 0.1206 there)
        assert ratios[l] == pytest.approx(max(math.cos(math.pi * l / 31) / 2 + 0.5, 0.15), abs=0)
    assert ratios[23] > 0.15 and ratios[24] == 0.15
    # R_l + R_(31-l) = 1 pairs layers 8..23 into 8 ones: sum = 8 dense + 8 + 8 x 0.15 = 17.2
    assert sum(ratios) / 32 == pytest.approx(0.5375, abs=1e-12)  # the mean over all 32 layers, dense ones as 1
    assert sum(ratios[8:]) / 24 == pytest.approx(9.2 / 24, abs=1e-12)  # over the 24 MoD layers only
    assert prd_schedule(1) == [1.0]


def sequence(seed: int = 0, batch: int = 2, n_text: int = N_TEXT):
    """x (B, T, dim) = [vision | text] with row 1's first two text slots padding, and what VLM.forward
    builds from it: valid flags, positions (real tokens before), RoPE and the boolean mask."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, N_VISION + n_text, CONFIG.dim, generator=generator)
    valid = torch.ones(batch, N_VISION + n_text, dtype=torch.bool)
    valid[1, N_VISION : N_VISION + 2] = False
    positions = (valid.long().cumsum(1) - 1).clamp_min(0)
    rope = rope_angles(positions, HEAD_DIM, CONFIG.rope_theta)
    vision = torch.zeros(N_VISION + n_text, dtype=torch.bool)
    vision[:N_VISION] = True
    return x, valid, positions, rope, attention_mask(valid, positions), vision


def block(seed: int = 1) -> Block:
    torch.manual_seed(seed)
    return Block(CONFIG)


def test_ratio_one_layer_is_the_plain_layer_at_init():
    layer = block()
    x, _, _, rope, mask, vision = sequence()
    plain = layer(x, rope, mask, None)
    y, index = MoDBlock(CONFIG.dim, ratio=1.0)(x, vision, *prenorm_branches(layer, rope, mask))
    assert index.shape == (2, N_VISION + N_TEXT)
    assert torch.allclose(y, plain, atol=1e-6)


def test_skipped_tokens_are_unchanged_at_init():
    layer = block()
    x, _, _, rope, mask, vision = sequence()
    mod = MoDBlock(CONFIG.dim, ratio=0.5)
    y, index = mod(x, vision, *prenorm_branches(layer, rope, mask))
    assert index.shape == (2, 6 + N_TEXT)  # floor(0.5 * 12) vision tokens and every text token
    skipped = torch.ones(2, N_VISION + N_TEXT, dtype=torch.bool)
    skipped.scatter_(1, index, False)
    assert int(skipped.sum()) == 2 * 6
    assert torch.equal(y[skipped], x[skipped])  # w = 0.2 tanh(0) + 1 = 1 exactly
    assert not torch.allclose(y[~skipped], x[~skipped])


def test_router_learns_from_skipped_tokens():
    """Loss on skipped tokens only, L = sum_t <g_t, w_t x_t>: at init dw/dr = 0.2, so
    dL/dW_router = 0.2 sum_t <g_t, x_t> x_t and dL/db = 0.2 sum_t <g_t, x_t>."""
    layer = block()
    x, _, _, rope, mask, vision = sequence()
    mod = MoDBlock(CONFIG.dim, ratio=0.25)
    y, index = mod(x, vision, *prenorm_branches(layer, rope, mask))
    skipped = torch.ones(2, N_VISION + N_TEXT, dtype=torch.bool)
    skipped.scatter_(1, index, False)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(2))
    (g * y)[skipped].sum().backward()
    inner = (g * x)[skipped].sum(-1)
    expected = 0.2 * (inner[:, None] * x[skipped]).sum(0)
    assert float(mod.router.proj.weight.grad.abs().max()) > 0
    assert torch.allclose(mod.router.proj.weight.grad[0], expected, rtol=1e-5, atol=1e-6)
    assert float(mod.router.proj.bias.grad) == pytest.approx(0.2 * float(inner.sum()), rel=1e-5)
    assert all(p.grad is None or float(p.grad.abs().max()) == 0 for p in layer.parameters())  # skipped: no block gradient


def test_text_tokens_are_never_skipped():
    layer = block()
    x, valid, positions, rope, mask, vision = sequence()
    mod = MoDBlock(CONFIG.dim, ratio=0.5)
    with torch.no_grad():  # score text tokens far below every vision token
        mod.router.proj.weight.copy_(torch.linspace(-1, 1, CONFIG.dim)[None])
        x[:, N_VISION:] -= 50 * mod.router.proj.weight[0]
    _, index = mod(x, vision, *prenorm_branches(layer, rope, mask))
    assert set(range(N_VISION, N_VISION + N_TEXT)) <= set(index[0].tolist()) and set(range(N_VISION, N_VISION + N_TEXT)) <= set(
        index[1].tolist()
    )
    # ratio 0: the text tokens see only each other, exactly the plain block on the text alone
    text = slice(N_VISION, None)
    alone = layer(
        x[:, text], rope_angles(positions[:, text], HEAD_DIM, CONFIG.rope_theta), attention_mask(valid[:, text], positions[:, text]), None
    )
    zero = MoDBlock(CONFIG.dim, ratio=0.0)
    y, index = zero(x, vision, *prenorm_branches(layer, rope, mask))
    assert index.tolist() == [list(range(N_VISION, N_VISION + N_TEXT))] * 2
    assert torch.allclose(y[:, text], alone, atol=1e-6)
    assert torch.equal(y[:, :N_VISION], x[:, :N_VISION])


def test_cached_generation_equals_recomputation():
    """Two MoD layers (ratio 0.5, trained-looking routers): prefill with the KV cache (each layer caching
    only its kept tokens) and a continuation of two tokens at once give those tokens what recomputing the
    whole sequence gives - RoPE, the mask rows and the key slots are gathered consistently (two queries
    make the causal mask between them matter)."""
    layers = [block(3), block(4)]
    mods = [MoDBlock(CONFIG.dim, ratio=0.5) for _ in layers]
    for index, mod in enumerate(mods):
        torch.nn.init.normal_(mod.router.proj.weight, std=0.5, generator=torch.Generator().manual_seed(10 + index))
    x, valid, _, _, _, vision = sequence(n_text=N_TEXT + 2)

    def run(h, all_valid, new_valid, vision_mask, caches):
        positions = (all_valid.long().cumsum(1) - 1).clamp_min(0)[:, -new_valid.shape[1] :]
        rope, mask = rope_angles(positions, HEAD_DIM, CONFIG.rope_theta), attention_mask(all_valid, positions)
        for layer, mod, cache in zip(layers, mods, caches):
            h, _ = mod(h, vision_mask, *prenorm_branches(layer, rope, mask, cache))
        return h

    with torch.no_grad():
        full = run(x, valid, valid, vision, [None, None])
        caches = [{}, {}]
        run(x[:, :-2], valid[:, :-2], valid[:, :-2], vision[:-2], caches)
        assert caches[0]["k"].shape[2] == 6 + N_TEXT  # 6 kept vision tokens + the text
        step = run(x[:, -2:], valid, valid[:, -2:], torch.zeros(2, dtype=torch.bool), caches)
    assert caches[1]["slots"].shape == (2, 6 + N_TEXT + 2)
    assert torch.allclose(step, full[:, -2:], atol=1e-5)


def test_kv_cache_and_flops_accounting():
    ratios = prd_schedule(32)
    kv = kv_cache_tokens(ratios, n_vision=576, n_text=0)
    assert kv["layers"] == [math.floor(r * 576) for r in ratios] and kv["dense"] == 32 * 576
    assert abs(kv["ratio"] - 0.5375) <= 1 / 576  # each layer floors at most one token
    assert kv_cache_tokens([1.0] * 4, 10, 3)["ratio"] == 1.0
    assert kv_cache_tokens([0.5, 0.0], 10, 3)["layers"] == [8, 3]
    # by hand: t tokens, d = 2, hidden 3: 8 t d^2 + 4 t^2 d + 6 t d hidden
    assert block_flops(4, 2, 3) == 128 + 128 + 144 and block_flops(6, 2, 3) == 192 + 288 + 216
    flops = mod_flops([0.5], n_vision=4, n_text=2, dim=2, hidden=3)
    assert flops["layers"] == [400 + 2 * 2 * 6] and flops["dense"] == 696 and flops["ratio"] == pytest.approx(424 / 696)
    assert mod_flops([1.0, 1.0], 4, 2, 2, 3)["ratio"] == 1.0
