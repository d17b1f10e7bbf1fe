#!/usr/bin/env bash
# Diagnostics for the polarity study (bench/lora_study.sh), on its
# pretrained base: why does training from random initialisation beat
# fine-tuning? Each variant runs with seeds 0, 1, 2 into OUT/diagnostics/:
#   full_lr5e-4         full fine-tuning at the from-scratch learning rate
#   full_cls            full fine-tuning, RobertaClassificationHead (<s>)
#   lora_r8_cls         LoRA r=8 (q, v), RobertaClassificationHead
#   lora_r8_cls_8ep     the same for 8 epochs
#   head_cls            the head alone, RobertaClassificationHead
#   scratch_cls         random initialisation, RobertaClassificationHead
# and the low-data regime, 300 training sentences (max_train_examples: a
# fixed random subset, the same for every run), 20
# epochs (200 steps), the seed's head:
#   few_lora_r8         LoRA r=8 (q, v), lr 2e-3
#   few_full            full fine-tuning, lr 5e-4
#   few_scratch         random initialisation, lr 5e-4
#   few_head            the head alone, lr 5e-3
#
# Usage: bench/study_diagnostics.sh STUDY_OUT_DIR   (after lora_study.sh)
# Then bench/study_report.py-style means: see BENCHMARKS.md for the table.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:?usage: $0 STUDY_OUT_DIR}
base="$out/roberta_pretrain/model"
template="$repo_root/bench/study/finetune_polarity.yaml"
bin="${LORA_TRAIN:-$repo_root/bazel-bin/lora_core/lora-train}"
[ -d "$base" ] || { echo "$base: run bench/lora_study.sh first" >&2; exit 2; }

run() {  # run NAME SEED KEY: VALUE lines...
  local name=$1 seed=$2 dir="$out/diagnostics/$1/seed$2"
  shift 2
  mkdir -p "$dir"
  if [ -e "$dir/results.json" ] && grep -q '"completed"' "$dir/results.json"; then
    return
  fi
  # The template without the keys this variant sets, then the variant's.
  local keys="seed" line
  for line in "$@"; do keys="$keys|${line%%:*}"; done
  { grep -Ev "^($keys):" "$template"; printf 'seed: %s\n' "$seed"; printf '%s\n' "$@"; } > "$dir.yaml"
  "$bin" train "$dir.yaml" --output-dir "$dir" > /dev/null 2>&1
  echo "$name seed $seed done"
}

lora="lora: {rank: 8, alpha: 16, target_modules: [query, value]}"
for seed in 0 1 2; do
  run full_lr5e-4 "$seed" "model: $base" "trainable: full" "lr: 5.0e-4" "head: linear_pooled"
  run full_cls "$seed" "model: $base" "trainable: full" "lr: 1.0e-4" "head: roberta_classification"
  run lora_r8_cls "$seed" "model: $base" "trainable: lora" "lr: 2.0e-3" "$lora" "head: roberta_classification"
  run lora_r8_cls_8ep "$seed" "model: $base" "trainable: lora" "lr: 2.0e-3" "$lora" "head: roberta_classification" "epochs: 8"
  run head_cls "$seed" "model: $base" "trainable: head_only" "lr: 5.0e-3" "head: roberta_classification"
  run scratch_cls "$seed" "model: roberta-mini" "trainable: full" "lr: 5.0e-4" "head: roberta_classification"
done
few="max_train_examples: 300"
for seed in 0 1 2; do
  run few_lora_r8 "$seed" "model: $base" "trainable: lora" "lr: 2.0e-3" "$lora" "head: linear_pooled" "$few" "epochs: 20"
  run few_full "$seed" "model: $base" "trainable: full" "lr: 5.0e-4" "head: linear_pooled" "$few" "epochs: 20"
  run few_scratch "$seed" "model: roberta-mini" "trainable: full" "lr: 5.0e-4" "head: linear_pooled" "$few" "epochs: 20"
  run few_head "$seed" "model: $base" "trainable: head_only" "lr: 5.0e-3" "head: linear_pooled" "$few" "epochs: 20"
done
