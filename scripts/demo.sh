#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds everything
# and runs the embedded demo.
#
# The embedded demo (a rank-ablation sweep through the coordinator and a
# worker, issue "loractl CLI and the embedded demo") does not exist yet. Until
# it does, this builds every target and runs the smallest real thing there
# is: torch_info, which shows what the LoRA core runs on (LibTorch version,
# threads, which BLAS serves float32 products) and measures the float32 and
# bfloat16 matrix-product rates that bound a training step on this machine.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

scripts/setup.sh
bazel build //...
exec bazel-bin/lora_core/torch_info --threads="${LORA_SWEEP_THREADS:-2}" "$@"
