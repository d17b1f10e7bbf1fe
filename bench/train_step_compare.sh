#!/usr/bin/env bash
# Training-step throughput, lora-sweep's C++ core against the same step in
# plain PyTorch eager (bench/train_step_python.py), side by side: every
# repetition runs each configuration in both implementations back to back
# (alternating which goes first) and measures the GEMM ceiling on the
# step's own shapes, so machine noise hits both alike. Then
# bench/train_step_report.py writes the tables (medians over repetitions).
#
# The C++ step runs twice: with the core's speed measures (all on, as
# lora-train uses it) and with all of them off (LORA_CORE_DISABLE_SPEEDUPS=
# all, see lora_core/speedups.h); with ABLATION=1 also once with each
# measure off alone (roberta-base bf16), to show what each one buys.
#
# Usage: [ABLATION=1] bench/train_step_compare.sh [OUT_DIR] [REPETITIONS]
#   OUT_DIR default runs/train_step; REPETITIONS default 5.
# Writes OUT_DIR/results.jsonl (one JSON line per measurement) and
# OUT_DIR/report.md.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo_root/runs/train_step}
repetitions=${2:-5}
threads=2
mkdir -p "$out"
bench="$repo_root/bazel-bin/bench/train_step_bench"
(cd "$repo_root" && bazel build //bench:train_step_bench >&2)
python=(/usr/bin/python3 "$repo_root/bench/train_step_python.py")
results="$out/results.jsonl"
: > "$results"

# name model amp batch steps
configs=(
  "base-fp32 roberta-base fp32 16 4"
  "base-bf16 roberta-base bf16 16 8"
  "small-bf16 roberta-mini bf16 32 30"
)
gemm_shapes=("1024 768 768" "1024 768 3072" "1024 3072 768")

record() {  # record REP NAME JSON
  printf '{"rep": %s, "config": "%s", "result": %s}\n' "$1" "$2" "$3" >> "$results"
}

for rep in $(seq 1 "$repetitions"); do
  for config in "${configs[@]}"; do
    read -r name model amp batch steps <<< "$config"
    args=(--model="$model" --amp="$amp" --batch="$batch" --seq=64 --rank=4
          --threads="$threads" --steps="$steps" --warmup=2)
    if [ $((rep % 2)) -eq 1 ]; then order="cpp python cpp-off"; else order="cpp-off python cpp"; fi
    if [ "${ABLATION:-0}" = 1 ] && [ "$name" = base-bf16 ]; then
      order="$order off:frozen_bf16_weights off:inplace_lora_add off:fast_dropout off:shared_bf16_input"
    fi
    for impl in $order; do
      case "$impl" in
        cpp) line=$(env -u LORA_CORE_DISABLE_SPEEDUPS "$bench" step "${args[@]}") ;;
        cpp-off) line=$(LORA_CORE_DISABLE_SPEEDUPS=all "$bench" step "${args[@]}") ;;
        off:*) line=$(LORA_CORE_DISABLE_SPEEDUPS="${impl#off:}" "$bench" step "${args[@]}") ;;
        python) line=$("${python[@]}" "${args[@]}") ;;
      esac
      record "$rep" "$name" "$line"
      echo "rep $rep $name $impl: $line" >&2
    done
  done
  for dtype in bf16 fp32; do
    for shape in "${gemm_shapes[@]}"; do
      read -r m k n <<< "$shape"
      line=$("$bench" gemm --dtype="$dtype" --m="$m" --k="$k" --n="$n" \
             --threads="$threads" --reps=10)
      record "$rep" "gemm" "$line"
    done
  done
done
/usr/bin/python3 "$repo_root/bench/train_step_report.py" "$results" > "$out/report.md"
cat "$out/report.md"
