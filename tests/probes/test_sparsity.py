"""PPL-p% activation sparsity (Sparsing Law): CETT in closed form, the ReLU zero count at c = 0,
monotonicity in c, and the bisection hitting 1 + p/100."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dataengine.probes import activation_ratio, cett, cett_threshold, gated_mlps, neuron_norms, sparsify
from dataengine.probes.sparsity import CettCurve


class GatedBlock(nn.Module):
    """The decoder block's MLP half as in dataengine.validate.vlm.Block: gate_up chunked [gate, up], down."""

    def __init__(self, dim: int, hidden: int, act):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(self.norm(x)).chunk(2, dim=-1)
        return x + self.down(self.act(gate) * up)


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 16, dim: int = 32, hidden: int = 64, layers: int = 2, act=F.silu):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(GatedBlock(dim, hidden, act) for _ in range(layers))
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def markov_batches(
    count: int, generator: torch.Generator, vocab: int = 16, rows: int = 16, length: int = 33
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, next tokens) of a fixed random Markov chain with peaked transitions."""
    probs = torch.rand(vocab, vocab, generator=torch.Generator().manual_seed(99)) ** 6
    probs = probs / probs.sum(1, keepdim=True)
    batches = []
    for _ in range(count):
        seq = torch.empty(rows, length, dtype=torch.long)
        seq[:, 0] = torch.randint(vocab, (rows,), generator=generator)
        for t in range(1, length):
            seq[:, t] = torch.multinomial(probs[seq[:, t - 1]], 1, generator=generator).squeeze(1)
        batches.append((seq[:, :-1], seq[:, 1:]))
    return batches


def trained(act, seed: int = 0, steps: int = 120) -> tuple[TinyLM, list]:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = TinyLM(act=act)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    train = markov_batches(8, generator)
    for step in range(steps):
        inputs, targets = train[step % len(train)]
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval(), markov_batches(8, generator)


def orthonormal(dim: int, hidden: int, seed: int = 0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(dim, hidden, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q


def test_cett_with_orthogonal_down_columns_is_a_norm_ratio():
    """Orthogonal columns of norms s_i: the n_i are orthogonal, ||sum n_i||^2 = sum (a_i s_i)^2, so
    CETT(eps) = sqrt(sum_{|a_i| s_i <= eps} (a_i s_i)^2) / sqrt(sum (a_i s_i)^2) per token."""
    scales = torch.tensor([2.0, 1.0, 0.5, 1.0], dtype=torch.float64)
    w_down = orthonormal(6, 4) * scales
    a = torch.tensor([[0.3, -0.4, 2.0, 5.0], [1.0, 1.0, 1.0, 0.1]], dtype=torch.float64)
    # norms by hand: token 1 [0.6, 0.4, 1.0, 5.0], token 2 [2.0, 1.0, 0.5, 0.1]
    assert torch.allclose(neuron_norms(a, w_down), torch.tensor([[0.6, 0.4, 1.0, 5.0], [2.0, 1.0, 0.5, 0.1]], dtype=torch.float64))
    first = math.sqrt(0.36 + 0.16) / math.sqrt(0.36 + 0.16 + 1.0 + 25.0)  # eps = 0.7 masks 0.6 and 0.4
    second = math.sqrt(0.25 + 0.01) / math.sqrt(4.0 + 1.0 + 0.25 + 0.01)  # ... and 0.5 and 0.1
    assert cett(a, w_down, 0.7) == pytest.approx((first + second) / 2, rel=1e-12)
    assert cett(a, w_down, 0.0) == 0.0 and cett(a, w_down, 5.0) == pytest.approx(1.0, rel=1e-12)
    # single token: CETT steps at 0.4, 0.6, 1.0, 5.0; c = 0.2 lies between CETT(0.6) = 0.140 and CETT(1.0) = 0.239
    one = a[:1]
    assert math.sqrt(0.52 / 26.52) < 0.2 < math.sqrt(1.52 / 26.52)
    eps = cett_threshold(one, w_down, 0.2)
    assert 0.6 <= eps < 1.0
    assert cett_threshold(one, w_down, 0.0) == 0.0 and cett_threshold(one, w_down, 1.0) == pytest.approx(5.0, rel=1e-12)


def test_cett_curve_is_cett_at_every_observed_norm():
    """The one-pass curve (sorted per-token steps) equals the direct definition at every candidate eps,
    and the threshold is the literal largest eps with CETT <= c."""
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(40, 12, generator=generator, dtype=torch.float64) * (torch.rand(40, 12, generator=generator) < 0.6)
    w_down = torch.randn(5, 12, generator=generator, dtype=torch.float64)
    curve = CettCurve(a, w_down)
    for index in range(0, len(curve.eps), 23):
        assert float(curve.cett[index]) == pytest.approx(cett(a, w_down, float(curve.eps[index])), abs=1e-12)
    for c in (0.0, 0.05, 0.3, 0.7):
        eps = curve.threshold(c)
        assert cett(a, w_down, eps) <= c + 1e-12
        assert all(cett(a, w_down, float(e)) > c for e in curve.eps[curve.eps > eps])


def test_relu_at_c_zero_is_the_plain_zero_count():
    model, batches = trained(F.relu)
    result = sparsify(model, batches, 0.0)
    active = [0, 0]
    total = [0, 0]
    with torch.no_grad():
        for inputs, _ in batches:
            x = model.embed(inputs)
            for index, block in enumerate(model.blocks):
                gate, up = block.gate_up(block.norm(x)).chunk(2, dim=-1)
                a = F.relu(gate) * up
                active[index] += int((a != 0).sum())
                total[index] += a.numel()
                x = block(x)
    assert result["eps"] == [0.0, 0.0]
    assert result["layers"] == [active[0] / total[0], active[1] / total[1]]
    assert result["ratio"] == sum(active) / sum(total) < 0.9
    assert result["loss_sparse"] == pytest.approx(result["loss_dense"], abs=1e-6)


def test_ratio_falls_monotonically_with_c():
    model, batches = trained(F.silu)
    ratios = [sparsify(model, batches, c)["ratio"] for c in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)]
    assert ratios[0] == 1.0  # SiLU has no exact zeros
    assert all(later <= earlier for earlier, later in zip(ratios, ratios[1:])), ratios
    assert ratios[-1] < 0.5


@pytest.mark.parametrize("p", [1.0, 3.0])
def test_bisection_hits_the_perplexity_target(p):
    model, batches = trained(F.silu)
    before = [model(inputs) for inputs, _ in batches[:1]]
    result = activation_ratio(model, batches, p=p)
    assert result["ppl_ratio"] == pytest.approx(1 + p / 100, rel=1e-3) and result["bracketed"]
    assert math.exp(result["loss_sparse"] - result["loss_dense"]) == pytest.approx(result["ppl_ratio"], rel=1e-9)
    assert 0.0 < result["ratio"] < 1.0 and len(result["layers"]) == 2 and len(result["eps"]) == 2
    assert result["sparsity"] == pytest.approx(1 - result["ratio"])
    assert torch.equal(model(batches[0][0]), before[0])  # the hooks are gone


def test_gated_mlps_protocol_and_discovery():
    model, _ = trained(F.silu, steps=1)
    assert gated_mlps(model) == [block.down for block in model.blocks]

    class Named(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = TinyLM()

        def gated_mlps(self):
            return [self.inner.blocks[1]]

    named = Named()
    assert gated_mlps(named) == [named.inner.blocks[1].down]
    with pytest.raises(ValueError):
        gated_mlps(nn.Sequential(nn.Linear(2, 2)))
