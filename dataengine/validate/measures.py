"""The four probes of `dataengine.probes`, measured on the spatial trainer's models: each returns one
section of validation.json (`probes.criticality`, `probes.sparsity`, `probes.minicache`, `probes.mod`).

- criticality: the `qa` model's projector and MLPs at initialisation (`recipe.init` says whether they
  were drawn at criticality): kernel, susceptibilities, depth-to-width and kurtosis per layer;
- sparsity: the trained `qa` model's PPL-p% activation ratio per decoder layer and overall;
- minicache: the `qa` model generating with its KV cache merged across depth vs unmerged: accuracy,
  answer perplexity, stored elements, compression and generation tokens/s;
- mod: the `qa_mod` model (p-MoD over the vision tokens) vs the dense `qa` model: accuracy, FLOPs and
  KV-cache entries of a prefill, training time.
"""

from __future__ import annotations

import math
from typing import Any


def criticality_section(model: Any, images: Any, depths: Any, critical: bool) -> dict[str, Any]:
    """Per-layer criticality of a freshly initialised model: the projector (on its ViT features of
    `images`) and each decoder MLP (the variance its branch passes on at unit-variance input)."""
    import torch

    from dataengine.probes import criticality_report

    section: dict[str, Any] = {"init": "critical" if critical else "default", "layers": model.config.layers, "dim": model.config.dim}
    section["depth_to_width"] = round(model.config.layers / model.config.dim, 5)
    with torch.no_grad():
        if model.vision is not None:
            x = (images.float() / 255 - model.mean) / model.std
            features = model.vision.forward_features(x)
            features = (
                features[:, getattr(model.vision, "num_prefix_tokens", 0) :] if features.ndim == 3 else features.flatten(2).transpose(1, 2)
            )
            rows = features.reshape(-1, features.shape[-1])
            rows = (rows - rows.mean(0)) / rows.std(0).clamp_min(1e-6)  # unit-variance inputs, as the kernel recursion assumes
            section["projector"] = _rounded(criticality_report(model.project, rows[:4096]))
        generator = torch.Generator().manual_seed(0)
        z = torch.randn(2048, model.config.dim, generator=generator)
        mlps = []
        for index, block in enumerate(model.blocks):
            gate, up = block.gate_up(z).chunk(2, dim=-1)
            out = block.down(torch.nn.functional.silu(gate) * up)
            mlps.append({"layer": index, "gate_kernel": round(float(gate.var()), 4), "output_variance": round(float(out.var()), 4)})
        section["mlp"] = mlps
    return section


def _rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (round(v, 5) if isinstance(v, float) and math.isfinite(v) else v) for k, v in row.items()} for row in rows]


def sparsity_section(model: Any, batches: list[Any], p: float) -> dict[str, Any]:
    """PPL-p% activation ratio of the trained model over `batches` of (ids, valid, labels, visual)."""
    import torch.nn.functional as F

    from dataengine.probes import activation_ratio

    def loss(net: Any, batch: Any) -> tuple[float, int]:
        ids, valid, labels, visual = batch
        logits = net(ids, valid, visual)[:, -ids.shape[1] :]
        total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100, reduction="sum")
        return float(total), int((labels != -100).sum())

    found = activation_ratio(model, batches, p=p, loss_fn=loss)
    keep = ("p", "c", "ratio", "sparsity", "ppl_ratio", "loss_dense", "loss_sparse", "bracketed")
    section = {k: (round(found[k], 6) if isinstance(found[k], float) else found[k]) for k in keep}
    section["layers"] = [round(r, 5) for r in found["layers"]]
    return section


def minicache_section(
    accuracy: float,
    merged_accuracy: float,
    stats: dict[str, Any],
    losses: dict[str, tuple[float, int]],
    speed: dict[str, float],
    t: float,
    gamma: float,
) -> dict[str, Any]:
    """MiniCache's effect: accuracy and answer perplexity with vs without, stored elements, compression."""
    perplexity = {name: math.exp(total / max(count, 1)) for name, (total, count) in losses.items()}
    return {
        "t": t,
        "gamma": gamma,
        "accuracy": accuracy,
        "merged_accuracy": merged_accuracy,
        "perplexity": round(perplexity["dense"], 5),
        "merged_perplexity": round(perplexity["merged"], 5),
        "stored_elements": int(stats.get("stored", 0)),
        "dense_elements": int(stats.get("dense", 0)),
        "retained_tokens": int(stats.get("retained", 0)),
        "compression": round(stats["dense"] / stats["stored"], 4) if stats.get("stored") else 1.0,
        "memory_saved": round(1 - stats["stored"] / stats["dense"], 4) if stats.get("dense") else 0.0,
        "generate_tokens_per_s": speed,
    }


def mod_section(
    model: Any, n_vision: int, n_text: int, dense_accuracy: float, mod_accuracy: float, train_s: dict[str, float]
) -> dict[str, Any]:
    """p-MoD vs dense: the PRD ratios, FLOPs and KV-cache entries of one prefill, accuracy, training time."""
    from dataengine.probes import kv_cache_tokens, mod_flops

    ratios = list(model.ratios)
    flops = mod_flops(ratios, n_vision, n_text, model.config.dim, model.config.hidden)
    kv = kv_cache_tokens(ratios, n_vision, n_text)
    return {
        "ratios": [round(r, 5) for r in ratios],
        "vision_tokens": n_vision,
        "text_tokens": n_text,
        "flops_ratio": round(flops["ratio"], 5),
        "kv_cache_ratio": round(kv["ratio"], 5),
        "accuracy": mod_accuracy,
        "dense_accuracy": dense_accuracy,
        "train_s": train_s.get("mod"),
        "dense_train_s": train_s.get("dense"),
    }
