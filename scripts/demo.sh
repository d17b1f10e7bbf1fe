#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds everything
# and runs the embedded demo, `loractl demo`: lorad and a local lora-worker
# as child processes, a base model pretrained once on the offline corpora
# (cached), the default rank-ablation sweep (head only, LoRA r = 1, 2, 4, 8
# on query+value, full fine-tuning) watched live, then the results tables and
# an SVG plot. About 10 minutes on 2 cores the first time; a re-run reuses
# the base model and the finished sweep.
#
# LORA_SWEEP_DEMO_DIR: the demo's folder (default ~/.cache/lora-sweep/demo).
# Extra arguments go to `loractl demo` (e.g. --quick: about a minute).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

scripts/setup.sh
bazel build //...
bazel-bin/lora_core/torch_info --threads="${LORA_SWEEP_THREADS:-2}"
bazel-bin/loractl/demo \
  --dir "${LORA_SWEEP_DEMO_DIR:-$HOME/.cache/lora-sweep/demo}" "$@"
