#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), builds everything
# and runs the demo.
#
# The embedded demo of the finished product (a rank-ablation sweep through
# the coordinator and workers) does not exist yet. Until it does, this runs
# the smallest real things there are:
#   1. torch_info: LibTorch version, threads, which BLAS serves float32
#      products, and the float32 / bfloat16 matrix-product rates;
#   2. one LoRA training job end to end with lora-train (the seed's setup in
#      miniature, examples/roberta_polarity_lora.yaml), then `eval --adapter`
#      reloading the saved adapter and reproducing its validation metrics.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

scripts/setup.sh
bazel build //...
bazel-bin/lora_core/torch_info --threads="${LORA_SWEEP_THREADS:-2}"
out="${LORA_SWEEP_DEMO_DIR:-$repo_root/runs/demo}"
rm -rf "$out"
bazel-bin/lora_core/lora-train train examples/roberta_polarity_lora.yaml \
  --output-dir "$out" > /dev/null
echo "results: $out/results.json (metrics.jsonl, adapter/ beside it)"
/usr/bin/python3 -c 'import json, sys; r = json.load(open(sys.argv[1])); print(json.dumps({k: r[k] for k in ("final_metrics", "best", "parameters", "train_seconds")}, indent=2))' "$out/results.json"
echo "reloading the adapter and re-evaluating:"
bazel-bin/lora_core/lora-train eval --adapter "$out/adapter"
