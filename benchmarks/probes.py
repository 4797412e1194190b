"""The four probes of the spatial reference trainer on the scenes SSR-CoT demo release, each on and off.

    python -m benchmarks.probes [--release PATH] [--epochs N] [--device cpu|cuda] [--keep]

Two `dataengine validate` runs of the same release and recipe (the demo catalog's, or the default):

- run A, default init, `mod=true`: the dense `qa` model vs `qa_mod` (p-MoD over the vision tokens:
  accuracy, prefill FLOPs and KV-cache entries, training time), `qa` generating with and without
  MiniCache (accuracy, answer perplexity, stored elements, memory, generation tokens/s), and the
  PPL-1% activation ratio of the trained `qa` model per layer;
- run B, `init=critical`: accuracy with criticality at initialisation vs run A's default init, and the
  criticality report of the projector and MLPs.

The alternative a user would pick is each idea switched off, in the same run on the same input.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path
from typing import Any

from dataengine.api import build
from dataengine.core.resources import resolve_catalog
from dataengine.validate.run import validate_release


def _demo(work: Path) -> Path:
    result = build(resolve_catalog("demo-ssr"), work / "demo-ssr", progress=False)
    return result.out


def _run(release: Path, overrides: list[str], epochs: int | None, device: str | None) -> dict[str, Any]:
    shutil.rmtree(release / ".validate", ignore_errors=True)
    return validate_release(release, overrides=overrides, epochs=epochs, device=device, progress=False, echo=lambda _: None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", type=Path, help="an SSR-CoT release (default: build the demo-ssr release)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--device")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-probes-"))
    try:
        release = args.release or _demo(work)
        a = _run(release, ["validate.recipe.mod=true"], args.epochs, args.device)
        b = _run(release, ["validate.recipe.init=critical"], args.epochs, args.device)
        pa, pb = a["probes"], b["probes"]
        mc, mod, sp = pa["minicache"], pa["mod"], pa["sparsity"]
        print(f"release {release}  ({a['train_samples']} train samples, eval split {a['eval_split']}, {a['device']})")
        print(f"{'idea':<34}{'off':>14}{'on':>14}{'on/off':>10}")

        def row(name: str, off: float, on: float) -> None:
            ratio = on / off if off else float("nan")
            print(f"{name:<34}{off:>14.6g}{on:>14.6g}{ratio:>10.3f}")

        row("criticality: accuracy", a["metrics"]["accuracy"], b["metrics"]["accuracy"])
        row("criticality: train qa s", a["timings"]["train_qa_s"], b["timings"]["train_qa_s"])
        row("minicache: accuracy", mc["accuracy"], mc["merged_accuracy"])
        row("minicache: answer perplexity", mc["perplexity"], mc["merged_perplexity"])
        row("minicache: KV elements stored", mc["dense_elements"], mc["stored_elements"])
        row("minicache: generation tokens/s", mc["generate_tokens_per_s"]["dense"], mc["generate_tokens_per_s"]["merged"])
        row("p-MoD: accuracy", mod["dense_accuracy"], mod["accuracy"])
        row("p-MoD: prefill FLOPs (rel.)", 1.0, mod["flops_ratio"])
        row("p-MoD: KV-cache entries (rel.)", 1.0, mod["kv_cache_ratio"])
        row("p-MoD: training s", mod["dense_train_s"], mod["train_s"])
        print(f"minicache: compression {mc['compression']}x, memory saved {mc['memory_saved']:.1%} (t {mc['t']}, gamma {mc['gamma']})")
        print(f"p-MoD ratios per layer: {mod['ratios']}")
        print(
            f"PPL-{sp['p']}% sparsity: activation ratio {sp['ratio']:.4f} (sparsity {sp['sparsity']:.4f}), per layer {sp['layers']}, "
            f"perplexity ratio {sp['ppl_ratio']:.5f}"
        )
        for label, section in (("default init", pa["criticality"]), ("critical init", pb["criticality"])):
            mlp = ", ".join(f"{row['output_variance']:.3f}" for row in section["mlp"])
            projector = ", ".join(f"K {row['kernel']:.3f} chi_perp {row['chi_perp']}" for row in section.get("projector", []))
            print(f"criticality ({label}): MLP output variance per layer {mlp}; projector {projector}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
