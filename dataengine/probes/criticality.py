"""Criticality at initialisation (The Principles of Deep Learning Theory).

MLP: z(1) = b + W x; z(l+1) = b + W sigma(z(l)); b ~ N(0, Cb), W_ij ~ N(0, Cw / fan_in).
Single-input kernel K(l+1) = Cb + Cw E[sigma(z)^2] with z ~ N(0, K(l)); susceptibilities
chi_par = Cw dE[sigma(z)^2]/dK and chi_perp = Cw E[sigma'(z)^2]. Criticality is a fixed point K* of
the kernel recursion with chi_par = chi_perp = 1.

Gaussian expectations use Gauss-Hermite quadrature (probabilists' weight, `hermite_e`), except for the
scale-invariant activations (ReLU, leaky ReLU, linear) whose expectations are closed forms.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.polynomial.hermite_e import hermegauss
from scipy.optimize import brentq
from scipy.special import erf, expit
from torch import nn

ACTIVATIONS = ("relu", "linear", "leaky_relu", "tanh", "gelu", "silu")
SCALE_INVARIANT = ("relu", "linear", "leaky_relu")
QUADRATURE_NODES = 201

_NODES, _WEIGHTS = hermegauss(QUADRATURE_NODES)
_WEIGHTS = _WEIGHTS / math.sqrt(2 * math.pi)  # E[f(u)], u ~ N(0, 1)  =  sum(w * f(nodes))


def _check(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; expected one of {ACTIVATIONS}")
    return activation


def activation_functions(
    activation: str, slope: float = 0.01
) -> tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """(sigma, sigma') of `activation` as numpy functions; GELU is the exact (erf) GELU."""
    a = slope
    table: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = {
        "relu": (lambda z: np.maximum(z, 0.0), lambda z: (z > 0).astype(float)),
        "linear": (lambda z: z, lambda z: np.ones_like(z)),
        "leaky_relu": (lambda z: np.where(z > 0, z, a * z), lambda z: np.where(z > 0, 1.0, a)),
        "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
        "gelu": (
            lambda z: 0.5 * z * (1.0 + erf(z / math.sqrt(2))),
            lambda z: 0.5 * (1.0 + erf(z / math.sqrt(2))) + z * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
        ),
        "silu": (lambda z: z * expit(z), lambda z: expit(z) * (1.0 + z * (1.0 - expit(z)))),
    }
    return table[_check(activation)]


def _slopes(activation: str, slope: float) -> tuple[float, float]:
    """(a+, a-) of a scale-invariant activation: sigma(z) = a+ z for z > 0, a- z for z < 0."""
    return {"relu": (1.0, 0.0), "linear": (1.0, 1.0), "leaky_relu": (1.0, slope)}[activation]


def gaussian_expectation(f: Callable[[np.ndarray], np.ndarray], K: float) -> float:
    """E[f(z)] for z ~ N(0, K), by Gauss-Hermite quadrature."""
    return float(_WEIGHTS @ f(math.sqrt(max(K, 0.0)) * _NODES))


def second_moment(activation: str, K: float, slope: float = 0.01) -> float:
    """g(K) = E[sigma(z)^2], z ~ N(0, K)."""
    if activation in SCALE_INVARIANT:
        plus, minus = _slopes(activation, slope)
        return K * (plus**2 + minus**2) / 2
    sigma, _ = activation_functions(activation, slope)
    return gaussian_expectation(lambda z: sigma(z) ** 2, K)


def susceptibilities(activation: str, K: float, c_w: float, slope: float = 0.01) -> tuple[float, float]:
    """(chi_par, chi_perp) at kernel K: Cw g'(K) and Cw E[sigma'(z)^2].

    g'(K) = E[sigma(z) sigma'(z) z] / K (Stein's lemma); at K = 0 the limit sigma'(0)^2 is used."""
    _check(activation)
    if activation in SCALE_INVARIANT:
        plus, minus = _slopes(activation, slope)
        value = c_w * (plus**2 + minus**2) / 2
        return value, value
    sigma, dsigma = activation_functions(activation, slope)
    perp = c_w * gaussian_expectation(lambda z: dsigma(z) ** 2, K)
    if K <= 0:
        return float(c_w * dsigma(np.zeros(1))[0] ** 2), perp
    par = c_w * gaussian_expectation(lambda z: sigma(z) * dsigma(z) * z, K) / K
    return par, perp


def kernel_recursion(activation: str, c_b: float, c_w: float, k1: float, layers: int, slope: float = 0.01) -> list[float]:
    """K(1), ..., K(layers) of the single-input kernel recursion K(l+1) = Cb + Cw g(K(l)), from K(1) = k1."""
    kernels = [float(k1)]
    for _ in range(layers - 1):
        kernels.append(c_b + c_w * second_moment(activation, kernels[-1], slope))
    return kernels


def _criticality_gap(activation: str, K: float) -> float:
    """g'(K) - E[sigma'(z)^2]: zero where chi_par = chi_perp for every Cw."""
    sigma, dsigma = activation_functions(activation)
    return gaussian_expectation(lambda z: sigma(z) * dsigma(z) * z, K) / K - gaussian_expectation(lambda z: dsigma(z) ** 2, K)


def critical_parameters(activation: str, slope: float = 0.01) -> tuple[float, float, float]:
    """(c_b, c_w, k_star): bias and weight variances at criticality, and the fixed-point kernel.

    Closed forms: ReLU (0, 2), linear (0, 1), leaky ReLU (0, 2 / (1 + slope^2)); for these every K is a
    fixed point, so k_star is nan (no unique K*). tanh: (0, 1, 0) (K(l) decays to 0 like 1 / (2 l)).
    GELU (erf) and SiLU are solved numerically: chi_perp = 1 fixes Cw = 1 / E[sigma'^2]; chi_par = 1 then
    needs g'(K) = E[sigma'(z)^2], the first nonzero root K*; Cb = K* - Cw g(K*)."""
    _check(activation)
    if activation in SCALE_INVARIANT:
        plus, minus = _slopes(activation, slope)
        return 0.0, 2.0 / (plus**2 + minus**2), math.nan
    if activation == "tanh":
        return 0.0, 1.0, 0.0
    return _numeric_critical(activation)


@functools.cache
def _numeric_critical(activation: str) -> tuple[float, float, float]:
    """The first sign change of the criticality gap on a log grid of K, refined by Brent's method."""
    grid = np.geomspace(0.1, 1000.0, 400)
    gaps = [_criticality_gap(activation, K) for K in grid]
    brackets = [(lo, hi) for lo, hi, a, b in zip(grid[:-1], grid[1:], gaps[:-1], gaps[1:]) if a * b <= 0]
    if not brackets:
        raise RuntimeError(f"no critical point found for {activation}")  # pragma: no cover
    lo, hi = brackets[0]
    k_star = float(brentq(lambda K: _criticality_gap(activation, K), lo, hi, xtol=1e-13, rtol=1e-14))
    _, dsigma = activation_functions(activation)
    c_w = 1.0 / gaussian_expectation(lambda z: dsigma(z) ** 2, k_star)
    c_b = k_star - c_w * second_moment(activation, k_star)
    return float(c_b), float(c_w), k_star


def finite_width_nu(activation: str, slope: float = 0.01) -> float | None:
    """nu of a scale-invariant activation, 3 A4 / A2^2 - 1 with A_p = (a+^p + a-^p) / 2 (ReLU 5, linear 2);
    None for the others (their four-point vertex is not a fixed multiple of the depth)."""
    if activation not in SCALE_INVARIANT:
        return None
    plus, minus = _slopes(activation, slope)
    a2, a4 = (plus**2 + minus**2) / 2, (plus**4 + minus**4) / 2
    return 3 * a4 / a2**2 - 1


def finite_width_kurtosis(nu: float, width: int, layer: int) -> float:
    """E[z^4] / E[z^2]^2 at layer `layer` (1-based) of a zero-bias scale-invariant MLP of hidden width
    `width` at criticality, over the ensemble of initialisations: 3 (1 + nu / n)^(l - 1)."""
    return 3.0 * (1.0 + nu / width) ** (layer - 1)


# --- torch side: initialisation and the empirical report ---------------------------------------------


def _linears(module: nn.Module | Iterable[nn.Module]) -> list[nn.Linear]:
    if isinstance(module, nn.Linear):
        return [module]
    modules = module.modules() if isinstance(module, nn.Module) else (m for item in module for m in item.modules())
    return [m for m in modules if isinstance(m, nn.Linear)]


@torch.no_grad()
def init_critical_(
    module: nn.Module | Iterable[nn.Module],
    activation: str,
    *,
    slope: float = 0.01,
    c_b: float | None = None,
    c_w: float | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Draw every nn.Linear in `module` (or the Linear itself) at criticality: W ~ N(0, Cw / fan_in),
    b ~ N(0, Cb), in place. (Cb, Cw) come from `critical_parameters(activation, slope)` unless given.
    Returns the (Cb, Cw) used."""
    critical_b, critical_w, _ = critical_parameters(activation, slope)
    c_b = critical_b if c_b is None else c_b
    c_w = critical_w if c_w is None else c_w
    for linear in _linears(module):
        linear.weight.normal_(0.0, math.sqrt(c_w / linear.in_features), generator=generator)
        if linear.bias is not None:
            if c_b > 0:
                linear.bias.normal_(0.0, math.sqrt(c_b), generator=generator)
            else:
                linear.bias.zero_()
    return c_b, c_w


def _layer_groups(layers: nn.Module | Sequence[nn.Module]) -> list[tuple[nn.Linear, list[nn.Module]]]:
    """Split a plain stack into (Linear, activations after it) groups: each nn.Linear starts a layer."""
    if isinstance(layers, nn.Linear):
        modules: list[nn.Module] = [layers]
    elif isinstance(layers, nn.Module):  # registration order; a module used twice counts twice (children() would not)
        modules = [m for m in layers._modules.values() if m is not None]
    else:
        modules = list(layers)
    groups: list[tuple[nn.Linear, list[nn.Module]]] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            groups.append((module, []))
        elif not groups:
            raise ValueError("a criticality stack must start with an nn.Linear")
        else:
            groups[-1][1].append(module)
    if not groups:
        raise ValueError("no nn.Linear in the stack")
    return groups


def _preactivations(groups: list[tuple[nn.Linear, list[nn.Module]]], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    out, h = [], x
    for linear, activations in groups:
        z = linear(h)
        out.append(z)
        h = z
        for activation in activations:
            h = activation(h)
    return tuple(out)


def preactivations(layers: nn.Module | Sequence[nn.Module], inputs: torch.Tensor) -> list[torch.Tensor]:
    """The preactivation z(l) (output of the l-th nn.Linear) of a plain stack, for every layer."""
    with torch.no_grad():
        return list(_preactivations(_layer_groups(layers), inputs))


def _module_nu(activations: list[nn.Module]) -> float | None:
    if not activations or all(isinstance(m, nn.Identity) for m in activations):
        return finite_width_nu("linear")
    if len(activations) == 1 and isinstance(activations[0], nn.ReLU):
        return finite_width_nu("relu")
    if len(activations) == 1 and isinstance(activations[0], nn.LeakyReLU):
        return finite_width_nu("leaky_relu", activations[0].negative_slope)
    return None


def criticality_report(
    layers: nn.Module | Sequence[nn.Module],
    inputs: torch.Tensor,
    *,
    rel_step: float = 1e-2,
    nu: float | None = None,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per-layer criticality measurements of a plain stack on `inputs` (S, fan_in) samples.

    `layers` is an nn.Sequential (or a list of modules) in which every nn.Linear starts a layer and the
    modules after it, up to the next Linear, are its activation - e.g. an MLP, or VLM.project
    (Linear, GELU, Linear). Layer l's preactivation z(l) is the l-th Linear's output. Each row:

    - layer (1-based), width n_l, kernel: K(l) = mean over samples and neurons of z^2 (uncentred: the
      ensemble kernel, biases included);
    - chi_perp: the transition z(l) -> z(l+1) from Jacobian-vector products of the whole stack with a
      random input tangent v: (|dz(l+1)|^2 / n_(l+1)) / (|dz(l)|^2 / n_l), summed over samples;
    - chi_par: finite difference in input scale, the inputs scaled by sqrt(1 +- rel_step), so K(1)
      moves by about +-rel_step: (K(l+1)[+] - K(l+1)[-]) / (K(l)[+] - K(l)[-]);
      both are None on the last layer (no next layer);
    - depth_to_width: L / n with L the number of layers and n the mean width of the hidden layers
      (the output width when there is a single layer);
    - kurtosis: E[z^4] / E[z^2]^2 pooled over samples and neurons (uncentred moments);
    - nu_over_n_eff: the per-layer effective nu / n that makes the finite-width law
      3 (1 + nu/n)^(l-1) exact at this layer, (kurtosis / 3)^(1 / (l-1)) - 1 (None at l = 1);
    - r_eff: ln(kurtosis / 3) / nu, which is (l-1) ln(1 + nu/n) / nu ~ (l-1) / n for the finite-width law,
      i.e. the depth-to-width ratio accumulated up to layer l; None when nu is unknown. nu is taken
      from the argument or inferred from the activation module (ReLU 5, no activation 2, LeakyReLU).

    The theory's moments are over initialisations at a fixed input; this one network pooled over many
    inputs gives an estimate (input-to-input variation enters), so read r_eff as a diagnostic."""
    groups = _layer_groups(layers)
    depth = len(groups)
    widths = [linear.out_features for linear, _ in groups]
    hidden = widths[:-1] or widths
    ratio = depth / (sum(hidden) / len(hidden))
    generator = torch.Generator(device="cpu").manual_seed(seed)
    tangent = torch.randn(inputs.shape, generator=generator, dtype=inputs.dtype).to(inputs.device)

    with torch.no_grad():
        zs = _preactivations(groups, inputs)
        plus = _preactivations(groups, inputs * math.sqrt(1 + rel_step))
        minus = _preactivations(groups, inputs * math.sqrt(1 - rel_step))
    with torch.no_grad(), warnings.catch_warnings():
        # forward-mode AD loads torch's jit-scripted decompositions once, which warns inside torch
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        _, tangents = torch.func.jvp(lambda x: _preactivations(groups, x), (inputs,), (tangent,))

    def kernel(z: torch.Tensor) -> float:
        return float(z.double().pow(2).mean())

    rows = []
    for index, ((_, activations), z) in enumerate(zip(groups, zs)):
        layer = index + 1
        second = kernel(z)
        fourth = float(z.double().pow(4).mean())
        kurt = fourth / second**2 if second > 0 else math.nan
        layer_nu = nu if nu is not None else _module_nu(activations)
        chi_perp = chi_par = None
        if index + 1 < depth:
            flow_here = float(tangents[index].double().pow(2).sum()) / widths[index]
            flow_next = float(tangents[index + 1].double().pow(2).sum()) / widths[index + 1]
            chi_perp = flow_next / flow_here if flow_here > 0 else math.nan
            dk_here = kernel(plus[index]) - kernel(minus[index])
            dk_next = kernel(plus[index + 1]) - kernel(minus[index + 1])
            chi_par = dk_next / dk_here if dk_here != 0 else math.nan
        rows.append(
            {
                "layer": layer,
                "width": widths[index],
                "kernel": second,
                "chi_par": chi_par,
                "chi_perp": chi_perp,
                "depth_to_width": ratio,
                "kurtosis": kurt,
                "nu_over_n_eff": (kurt / 3) ** (1 / (layer - 1)) - 1 if layer > 1 and kurt > 0 else None,
                "r_eff": math.log(kurt / 3) / layer_nu if layer_nu and kurt > 0 else None,
            }
        )
    return rows
