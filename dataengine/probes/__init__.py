"""Model-side probes from the source papers, pure and closed-form tested: criticality at initialisation
(PDLT), PPL-p% activation sparsity (Sparsing Law), KV-cache merging across depth (MiniCache) and
mixture-of-depths with progressive ratio decay (p-MoD). Only numpy, scipy and torch are used."""

from dataengine.probes.criticality import (
    critical_parameters,
    criticality_report,
    finite_width_kurtosis,
    finite_width_nu,
    init_critical_,
    kernel_recursion,
    preactivations,
    susceptibilities,
)
from dataengine.probes.kvmerge import (
    MergedCache,
    compress_cache_,
    compression_ratio,
    merge_cache,
    merge_pair,
    restore,
    slerp_merge,
    stored_elements,
)
from dataengine.probes.mod import (
    MoDBlock,
    TanhNormRouter,
    kv_cache_tokens,
    mod_flops,
    mod_forward,
    prd_schedule,
    prenorm_branches,
)
from dataengine.probes.sparsity import activation_ratio, cett, cett_threshold, gated_mlps, neuron_norms, sparsify

__all__ = [
    "MergedCache",
    "MoDBlock",
    "TanhNormRouter",
    "activation_ratio",
    "cett",
    "cett_threshold",
    "compress_cache_",
    "compression_ratio",
    "critical_parameters",
    "criticality_report",
    "finite_width_kurtosis",
    "finite_width_nu",
    "gated_mlps",
    "init_critical_",
    "kernel_recursion",
    "kv_cache_tokens",
    "merge_cache",
    "merge_pair",
    "mod_flops",
    "mod_forward",
    "neuron_norms",
    "prd_schedule",
    "preactivations",
    "prenorm_branches",
    "restore",
    "slerp_merge",
    "sparsify",
    "stored_elements",
    "susceptibilities",
]
