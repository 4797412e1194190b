"""Activation sparsity of gated MLPs by PPL-p% (Sparsing Law).

A gated MLP computes a = act(W_gate x) * (W_up x) and outputs W_down a. Neuron i contributes
n_i = a_i W_down[:, i], of norm |a_i| ||W_down[:, i]||. For a threshold eps,
CETT(eps) = || sum_{i: ||n_i|| <= eps} n_i || / || sum_i n_i ||, averaged over tokens. Per layer the
largest eps_l with CETT <= c is chosen and every neuron with ||n_i|| <= eps_l is zeroed; c is bisected
so that the perplexity rises by p% (exp(loss_sparse - loss_dense) = 1 + p/100). The activation ratio
is the fraction of neurons left active, over tokens and layers.

The thresholds are fitted on a random subsample of the tokens (`max_tokens` per layer) from one dense
pass, with CETT computed exactly at every observed neuron norm (`CettCurve`), so eps_l(c) is monotone
in c; each bisection step is then one masked pass over all batches. How closely 1 + p/100 can be hit
depends on the evaluation set: every (token, neuron) masked changes the mean loss in steps of about
1 / tokens.

The model needs no code change: a forward pre-hook on each MLP's `down` projection sees (and masks)
its input a. The MLPs are found through `model.gated_mlps()` when the model has it (a list of `down`
Linears, or of modules with a `.down` Linear), else as every submodule with a `down` Linear next to a
`gate_up` (or `gate` and `up`) Linear - the layout of dataengine.validate.vlm.Block.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[nn.Module, Any], Any]


def gated_activation(
    x: torch.Tensor, gate: nn.Linear, up: nn.Linear | None = None, act: Callable[[torch.Tensor], torch.Tensor] = F.silu
) -> torch.Tensor:
    """a = act(W_gate x) * (W_up x); with `up` None, `gate` is a fused gate_up Linear chunked as [gate, up]."""
    if up is None:
        g, u = gate(x).chunk(2, dim=-1)
    else:
        g, u = gate(x), up(x)
    return act(g) * u


def neuron_norms(a: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    """||n_i|| = |a_i| ||W_down[:, i]|| for activations a (..., hidden) and W_down (dim, hidden)."""
    return a.abs() * w_down.norm(dim=0)


def cett(a: torch.Tensor, w_down: torch.Tensor, eps: float) -> float:
    """CETT(eps), the mean over tokens (rows of `a`, shape (..., hidden)) of
    ||W_down (a * [||n_i|| <= eps])|| / ||W_down a||; tokens whose output is exactly zero are left out."""
    a = a.reshape(-1, a.shape[-1])
    small = neuron_norms(a, w_down) <= eps
    total = (a @ w_down.T).norm(dim=-1)
    part = ((a * small) @ w_down.T).norm(dim=-1)
    valid = total > 0
    return float((part[valid] / total[valid]).mean()) if bool(valid.any()) else 0.0


class CettCurve:
    """CETT(eps) of a set of tokens, exact at every observed neuron norm.

    Per token, masking its k smallest contributions gives ||sum of those n_i|| / ||sum_i n_i||; as eps
    passes a norm the token's value steps. Sorting every (token, neuron) step by its norm and summing the
    steps gives the token-averaged CETT at every candidate eps in one pass (cumulative sums over
    neurons, in float64, chunked over tokens). CETT need not grow monotonically with eps (contributions
    can cancel), so the threshold is taken literally: the largest observed eps with CETT(eps) <= c."""

    def __init__(self, a: torch.Tensor, w_down: torch.Tensor, chunk_elements: int = 1 << 22):
        a = a.detach().reshape(-1, a.shape[-1]).double()
        w = w_down.detach().double().to(a.device)
        hidden, dim = a.shape[1], w.shape[0]
        norms = neuron_norms(a, w)
        totals = (a @ w.T).norm(dim=-1)
        valid = totals > 0
        a, norms, totals = a[valid], norms[valid], totals[valid]
        self.tokens = int(a.shape[0])
        eps, steps = [], []
        chunk = max(1, chunk_elements // (hidden * dim))
        for lo in range(0, self.tokens, chunk):
            order = norms[lo : lo + chunk].argsort(dim=1)
            ordered = a[lo : lo + chunk].gather(1, order)
            partial = (ordered[..., None] * w.T[order]).cumsum(dim=1).norm(dim=-1) / totals[lo : lo + chunk, None]
            partial[:, -1] = 1.0  # everything masked: exactly 1
            steps.append(torch.diff(partial, dim=1, prepend=torch.zeros_like(partial[:, :1])).flatten())
            eps.append(norms[lo : lo + chunk].gather(1, order).flatten())
        if self.tokens:
            values, order = torch.cat(eps).sort()
            curve = torch.cat(steps)[order].cumsum(0) / self.tokens
            last = torch.searchsorted(values, values, right=True) - 1  # ties: after every equal norm
            self.eps, self.cett = values, curve[last]
        else:
            self.eps = self.cett = torch.zeros(0, dtype=torch.float64)

    def threshold(self, c: float) -> float:
        """The largest observed eps with CETT(eps) <= c; 0.0 when there is none (only exact zeros masked)."""
        below = (self.cett <= c).nonzero()
        return float(self.eps[below.max()]) if below.numel() else 0.0


def cett_threshold(a: torch.Tensor, w_down: torch.Tensor, c: float) -> float:
    """The largest eps among the observed neuron norms of `a` (..., hidden) with CETT(eps) <= c (`CettCurve`)."""
    return CettCurve(a, w_down).threshold(c)


def gated_mlps(model: nn.Module) -> list[nn.Linear]:
    """The `down` projections of the model's gated MLPs, in order (see the module docstring)."""
    if hasattr(model, "gated_mlps"):
        items = list(model.gated_mlps())
    else:
        items = [
            m
            for m in model.modules()
            if isinstance(getattr(m, "down", None), nn.Linear)
            and (isinstance(getattr(m, "gate_up", None), nn.Linear) or (hasattr(m, "gate") and hasattr(m, "up")))
        ]
    downs = [item if isinstance(item, nn.Linear) else item.down for item in items]
    if not downs:
        raise ValueError("the model has no gated MLPs (give it gated_mlps() or name them gate_up/down)")
    return downs


class NeuronMask:
    """Forward pre-hooks on the `down` Linears: capture their inputs (a random subsample of at most
    `max_tokens` token rows per layer) and/or zero the neurons with ||n_i|| <= eps_l, counting the active
    ones. Use as a context manager; the hooks are removed on exit."""

    def __init__(
        self, downs: Sequence[nn.Linear], eps: Sequence[float] | None = None, capture: int = 0, generator: torch.Generator | None = None
    ):
        self.downs, self.eps, self.capture = list(downs), eps, capture
        self.generator = generator or torch.Generator().manual_seed(0)
        self.active = [0] * len(self.downs)
        self.total = [0] * len(self.downs)
        self.samples: list[torch.Tensor | None] = [None] * len(self.downs)
        self._keys: list[torch.Tensor | None] = [None] * len(self.downs)
        self._handles: list[Any] = []

    def __enter__(self) -> NeuronMask:
        for index, down in enumerate(self.downs):
            self._handles.append(down.register_forward_pre_hook(self._hook(index)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _hook(self, index: int) -> Callable[[nn.Module, tuple[Any, ...]], tuple[Any, ...] | None]:
        def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            a = args[0]
            if self.capture:
                self._keep(index, a.detach().reshape(-1, a.shape[-1]))
            if self.eps is None:
                self.active[index] += int((a != 0).sum())
                self.total[index] += a.numel()
                return None
            keep = neuron_norms(a, module.weight) > self.eps[index]
            self.active[index] += int(keep.sum())
            self.total[index] += keep.numel()
            return (a * keep, *args[1:])

        return hook

    def _keep(self, index: int, rows: torch.Tensor) -> None:
        keys = torch.rand(rows.shape[0], generator=self.generator).to(rows.device)
        if self.samples[index] is not None:
            rows = torch.cat([self.samples[index], rows])
            keys = torch.cat([self._keys[index], keys])
        if rows.shape[0] > self.capture:
            order = keys.argsort()[: self.capture]
            rows, keys = rows[order], keys[order]
        self.samples[index], self._keys[index] = rows, keys

    def ratios(self) -> list[float]:
        """Fraction of active neurons per layer over every token seen."""
        return [a / t if t else float("nan") for a, t in zip(self.active, self.total)]

    def overall(self) -> float:
        """Fraction of active neurons over every token and layer."""
        total = sum(self.total)
        return sum(self.active) / total if total else float("nan")


def default_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """`model.lm_loss(batch)` when the model has it, else `batch` = (inputs, targets) and the mean token
    cross-entropy of `model(inputs)` logits (targets -100 ignored)."""
    if hasattr(model, "lm_loss"):
        return model.lm_loss(batch)
    inputs, targets = batch
    logits = model(inputs)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1), ignore_index=-100)


def _mean_loss(model: nn.Module, batches: Sequence[Any], loss_fn: LossFn) -> float:
    """Mean token loss: each batch's loss_fn gives a mean (weight 1) or a (sum, count) pair."""
    total, count = 0.0, 0.0
    for batch in batches:
        value = loss_fn(model, batch)
        if isinstance(value, tuple):
            total += float(value[0])
            count += float(value[1])
        else:
            total += float(value)
            count += 1.0
    return total / count


def _dense(model: nn.Module, batches: Sequence[Any], loss_fn: LossFn, downs: list[nn.Linear], max_tokens: int, seed: int):
    with torch.no_grad(), NeuronMask(downs, capture=max_tokens, generator=torch.Generator().manual_seed(seed)) as probe:
        loss = _mean_loss(model, batches, loss_fn)
    return loss, probe


def _at(
    model: nn.Module, batches: Sequence[Any], loss_fn: LossFn, downs: list[nn.Linear], curves: list[CettCurve], c: float, dense_loss: float
) -> dict[str, Any]:
    eps = [curve.threshold(c) for curve in curves]
    with torch.no_grad(), NeuronMask(downs, eps=eps) as probe:
        loss = _mean_loss(model, batches, loss_fn)
    ratio = probe.overall()
    return {
        "c": c,
        "eps": eps,
        "layers": probe.ratios(),
        "ratio": ratio,
        "sparsity": 1.0 - ratio,
        "loss_dense": dense_loss,
        "loss_sparse": loss,
        "ppl_ratio": math.exp(loss - dense_loss),
    }


def _curves(probe: NeuronMask, downs: list[nn.Linear]) -> list[CettCurve]:
    return [CettCurve(a, down.weight) for a, down in zip(probe.samples, downs)]


def sparsify(
    model: nn.Module, batches: Iterable[Any], c: float, *, loss_fn: LossFn | None = None, max_tokens: int = 8192, seed: int = 0
) -> dict[str, Any]:
    """The activation ratio at a fixed CETT target c: per-layer thresholds eps_l fitted on a subsample of
    at most `max_tokens` tokens per layer, then a masked pass over every batch. Keys: c, eps (per layer),
    layers (active fraction per layer), ratio (overall), sparsity, loss_dense, loss_sparse, ppl_ratio.
    Ratios count every position the MLPs see (padding included). Thresholds are monotone in c."""
    batches = list(batches)
    loss_fn = loss_fn or default_loss
    downs = gated_mlps(model)
    dense_loss, probe = _dense(model, batches, loss_fn, downs, max_tokens, seed)
    return _at(model, batches, loss_fn, downs, _curves(probe, downs), c, dense_loss)


def activation_ratio(
    model: nn.Module,
    batches: Iterable[Any],
    p: float = 1.0,
    *,
    loss_fn: LossFn | None = None,
    rtol: float = 1e-4,
    max_iter: int = 30,
    max_tokens: int = 8192,
    seed: int = 0,
) -> dict[str, Any]:
    """PPL-p% activation ratio: bisect c in [0, 1] until exp(loss_sparse - loss_dense) is within `rtol`
    (relative) of 1 + p/100, and report the result there (the keys of `sparsify`, plus p, target and
    iterations, and bracketed: whether c = 0 and c = 1 bracket the target). The bisection stops at rtol,
    after max_iter steps or when c is resolved to 1e-7; the closest result seen is returned. `batches` is
    re-iterated on every pass (it is materialised as a list); `loss_fn(model, batch)` returns the mean
    token loss (or a (sum, count) pair), `default_loss` when None. Call it with the model in eval mode;
    it runs under torch.no_grad. When no c in [0, 1] reaches the target (e.g. an untrained model whose
    loss does not rise when its MLPs are masked), the end closest to it is returned, bracketed False."""
    batches = list(batches)
    loss_fn = loss_fn or default_loss
    downs = gated_mlps(model)
    dense_loss, probe = _dense(model, batches, loss_fn, downs, max_tokens, seed)
    target = 1.0 + p / 100.0
    curves = _curves(probe, downs)

    def evaluate(c: float) -> dict[str, Any]:
        return _at(model, batches, loss_fn, downs, curves, c, dense_loss)

    def close(result: dict[str, Any]) -> bool:
        return abs(result["ppl_ratio"] / target - 1.0) <= rtol

    lo, hi = 0.0, 1.0
    low, high = evaluate(lo), evaluate(hi)
    best, iterations = (low if abs(low["ppl_ratio"] - target) <= abs(high["ppl_ratio"] - target) else high), 0
    bracketed = low["ppl_ratio"] < target < high["ppl_ratio"]
    if bracketed:
        while iterations < max_iter and not close(best) and hi - lo > 1e-7:
            iterations += 1
            mid = evaluate((lo + hi) / 2)
            if abs(mid["ppl_ratio"] - target) < abs(best["ppl_ratio"] - target):
                best = mid
            if mid["ppl_ratio"] < target:
                lo = mid["c"]
            else:
                hi = mid["c"]
    return {**best, "p": p, "target": target, "iterations": iterations, "bracketed": bracketed}
