#!/usr/bin/env bash
# GPU check of `dataengine validate` end to end, on a machine with an NVIDIA GPU, in under 5 minutes:
#   1. a virtual environment ($VENV if set and present, else .venv, created when missing) with
#      `pip install -e ".[test]"` (torch==2.14.1 is pinned in pyproject.toml);
#   2. nvidia-smi, and that torch sees CUDA (stops here when it does not);
#   3. a small scenes release (320x240, 192 train / 32 validation) built into ./bench-gpu-*;
#   4. `dataengine validate RELEASE --device cuda` with a few epochs and a larger input size (192x256),
#      then validation.json's verdict, reasons, metrics vs the prior, timings (samples/s per epoch,
#      data_wait_share) and device;
#   5. `python -m benchmarks.validate --skip-demo --device cuda` (loader 0 vs 2 workers vs in-memory).
# Every step prints its wall time. Run from the repository root:
#   bash benchmarks/gpu_check.sh              # EPOCHS=4 SIZE=192,256 KEEP=1 VENV=/path/to/venv to change
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCHS="${EPOCHS:-4}"
SIZE="${SIZE:-192,256}"
VENV="${VENV:-.venv}"
started_all=$(date +%s.%N)

timed() { # timed "what" command...: runs the command, then prints how long it took
  local what="$1" start end
  shift
  echo "=== $what"
  start=$(date +%s.%N)
  "$@"
  end=$(date +%s.%N)
  awk -v w="$what" -v s="$start" -v e="$end" 'BEGIN { printf "=== %s: %.1f s\n\n", w, e - s }'
}

setup_venv() {
  if [[ ! -f "$VENV/bin/activate" ]]; then
    python3 -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -e ".[test]"
  python -c "import dataengine, timm, torch; print('torch', torch.__version__, '| timm', timm.__version__)"
}

show_gpu() {
  nvidia-smi
  python - <<'EOF'
import sys

import torch

print("torch", torch.__version__, "| CUDA build", torch.version.cuda, "| cuda available:", torch.cuda.is_available())
if not torch.cuda.is_available():
    sys.exit("torch sees no CUDA device: nothing to check on the GPU")
print("device 0:", torch.cuda.get_device_name(0), "| bf16:", torch.cuda.is_bf16_supported())
EOF
}

WORK="$(mktemp -d ./bench-gpu-XXXXXX)"
cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
RELEASE="$WORK/scenes"

build_release() {
  dataengine build scenes --out "$RELEASE" --no-progress \
    --set params.width=320 --set params.height=240 \
    --set splits.train.num_samples=192 --set splits.validation.num_samples=32 --set splits.test.num_samples=0 \
    --set shards.max_samples=32
}

validate_on_cuda() {
  local rc=0
  dataengine validate "$RELEASE" --device cuda --epochs "$EPOCHS" --no-progress \
    --set "validate.recipe.input_size=[$SIZE]" || rc=$?
  if ((rc > 1)); then # 0 pass, 1 fail (a verdict, reported below), 2+ an error
    echo "dataengine validate exited $rc" >&2
    return "$rc"
  fi
}

show_validation() {
  python - "$RELEASE/validation.json" <<'EOF'
import json
import sys

doc = json.load(open(sys.argv[1]))
print("verdict:", doc["verdict"], "| device:", doc["device"], "| trainer:", doc["trainer"])
for reason in doc["reasons"]:
    print("  reason:", reason)
print("recipe: epochs", doc["recipe"]["epochs"], "| input", doc["recipe"]["input_size"], "| batch", doc["recipe"]["batch_size"],
      "| workers", doc["recipe"]["workers"])
for name, value in doc["metrics"].items():
    print(f"  {name:9} model {value:9.4f}   prior {doc['prior'][name]:9.4f}")
print("per epoch: " + ", ".join(f"{row['epoch']}: loss {row['loss']:.3f} {row['samples_per_s']:.1f}/s" for row in doc["history"]))
timings = doc["timings"]
print(f"timings: train_s {timings['train_s']}, data_wait_share {timings['data_wait_share']:.1%}, total_s {timings['total_s']}")
EOF
}

benchmark() {
  if python -m benchmarks.validate --help | grep -q -- "--device"; then
    python -m benchmarks.validate --skip-demo --device cuda
  else
    echo "benchmarks.validate has no --device option: running it on the CPU"
    python -m benchmarks.validate --skip-demo
  fi
}

timed "virtual environment ($VENV) and pip install -e .[test]" setup_venv
timed "nvidia-smi and torch CUDA" show_gpu
timed "build a small scenes release (320x240, 192 train / 32 validation)" build_release
timed "dataengine validate --device cuda ($EPOCHS epochs, input $SIZE)" validate_on_cuda
timed "validation.json" show_validation
timed "python -m benchmarks.validate --skip-demo (cuda)" benchmark
awk -v s="$started_all" -v e="$(date +%s.%N)" 'BEGIN { printf "total: %.1f s\n", e - s }'
