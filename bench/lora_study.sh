#!/usr/bin/env bash
# The LoRA study in miniature (issue "Offline pretraining and the seed's
# claim in miniature"), end to end with lora-train:
#   1. pretrain roberta-mini with masked-LM on the offline corpora;
#   2. on Pang & Lee polarity, 3 seeds each: the head only, LoRA on query
#      and value with r = 1, 2, 4, 8 (alpha 16), full fine-tuning, and the
#      same architecture from random initialisation;
#   3. pretrain gpt2-mini with causal LM;
#   4. LoRA (q, v inside c_attn) on generated E2E data with r = 1, 2, 4, 8,
#      BLEU by rank; then, on the same data, LoRA r = 8 on every linear
#      layer, full fine-tuning and training from random initialisation;
# then writes report.md with the tables (bench/study_report.py).
#
# Usage: bench/lora_study.sh [--quick] [--skip-gpt2] [--long-pretrain] [OUT_DIR]
#   --quick: tiny models and a few steps, one seed (the test suite runs it).
#   --long-pretrain: pretrain RoBERTa with study/pretrain_roberta_long.yaml
#     (6,000 steps, about an hour) and GPT-2 with study/pretrain_gpt2_long.yaml
#     (1,500 steps, about 30 minutes) instead of the 15-minute budgets.
# Default OUT_DIR: runs/study. Runs resume where they stopped when re-run.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
study="$repo_root/bench/study"
quick=0
skip_gpt2=0
long_pretrain=0
out="$repo_root/runs/study"
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    --skip-gpt2) skip_gpt2=1 ;;
    --long-pretrain) long_pretrain=1 ;;
    -*) echo "usage: $0 [--quick] [--skip-gpt2] [--long-pretrain] [OUT_DIR]" >&2; exit 2 ;;
    *) out="$arg" ;;
  esac
done
mkdir -p "$out"
bin="${LORA_TRAIN:-$repo_root/bazel-bin/lora_core/lora-train}"
if [ ! -x "$bin" ]; then
  (cd "$repo_root" && bazel build //lora_core:lora-train)
fi

# job BASE_YAML OUT_YAML KEY=VALUE...: the template with top-level keys set
# (replaced where the template has them, appended otherwise).
job() {
  local base=$1 target=$2
  shift 2
  cp "$base" "$target"
  for pair in "$@"; do
    local key=${pair%%=*} value=${pair#*=}
    if grep -q "^$key:" "$target"; then
      KEY="$key" VALUE="$value" /usr/bin/python3 - "$target" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
line = f"{os.environ['KEY']}: {os.environ['VALUE']}"
text = re.sub(rf"^{re.escape(os.environ['KEY'])}:.*$", lambda m: line, text,
              count=1, flags=re.M)
open(path, "w").write(text)
PY
    else
      printf '%s: %s\n' "$key" "$value" >> "$target"
    fi
  done
}

seeds="0 1 2"
ranks="1 2 4 8"
roberta_model=roberta-mini
gpt2_model=gpt2-mini
pretrain_overrides=()
finetune_overrides=()
e2e_overrides=()
if [ "$quick" -eq 1 ]; then
  seeds="0"
  ranks="1 4"
  roberta_model=roberta-tiny
  gpt2_model=gpt2-tiny
  pretrain_overrides=("max_steps=6")
  finetune_overrides=("max_steps=8")
  e2e_overrides=("max_steps=4"
    "generation={beam_size: 2, max_new_tokens: 8, eval_examples: 3}")
fi

# 1. Pretrain RoBERTa.
pretrain_config="$study/pretrain_roberta.yaml"
gpt2_pretrain_config="$study/pretrain_gpt2.yaml"
if [ "$long_pretrain" -eq 1 ]; then
  pretrain_config="$study/pretrain_roberta_long.yaml"
  gpt2_pretrain_config="$study/pretrain_gpt2_long.yaml"
fi
job "$pretrain_config" "$out/pretrain_roberta.yaml" \
  "model=$roberta_model" "${pretrain_overrides[@]}"
"$bin" pretrain "$out/pretrain_roberta.yaml" --output-dir "$out/roberta_pretrain" > /dev/null
base="$out/roberta_pretrain/model"

# 2. Fine-tune on polarity.
variant() {  # variant NAME SEED KEY=VALUE...
  local name=$1 seed=$2
  shift 2
  local dir="$out/polarity/$name/seed$seed"
  mkdir -p "$dir"
  job "$study/finetune_polarity.yaml" "$dir.yaml" "seed=$seed" "$@" \
    "${finetune_overrides[@]}"
  if [ ! -e "$dir/results.json" ] || ! grep -q '"completed"' "$dir/results.json"; then
    "$bin" train "$dir.yaml" --output-dir "$dir" > /dev/null
  fi
  echo "polarity $name seed $seed done"
}
for seed in $seeds; do
  variant head_only "$seed" "model=$base" "trainable=head_only" "lr=5.0e-3"
  for r in $ranks; do
    variant "lora_r$r" "$seed" "model=$base" "trainable=lora" "lr=2.0e-3" \
      "lora={rank: $r, alpha: 16, target_modules: [query, value]}"
  done
  variant full "$seed" "model=$base" "trainable=full" "lr=1.0e-4"
  variant scratch "$seed" "model=$roberta_model" "trainable=full" "lr=5.0e-4"
done

# 3 and 4. GPT-2.
if [ "$skip_gpt2" -eq 0 ]; then
  job "$gpt2_pretrain_config" "$out/pretrain_gpt2.yaml" \
    "model=$gpt2_model" "${pretrain_overrides[@]}"
  "$bin" pretrain "$out/pretrain_gpt2.yaml" --output-dir "$out/gpt2_pretrain" > /dev/null
  for r in $ranks; do
    dir="$out/e2e/lora_r$r"
    mkdir -p "$dir"
    job "$study/e2e_lora.yaml" "$dir.yaml" "model=$out/gpt2_pretrain/model" \
      "seed=0" "lora={rank: $r, alpha: 16, target_modules: [query, value]}" \
      "${e2e_overrides[@]}"
    if [ ! -e "$dir/results.json" ] || ! grep -q '"completed"' "$dir/results.json"; then
      "$bin" train "$dir.yaml" --output-dir "$dir" > /dev/null
    fi
    echo "e2e r=$r done"
  done
  # The same task against the other ways to adapt (seed 0): LoRA at the
  # largest rank on every linear layer, full fine-tuning, and the same
  # architecture trained from random initialisation.
  top_rank=${ranks##* }
  e2e_variant() {  # e2e_variant NAME KEY=VALUE...
    local name=$1
    shift
    local dir="$out/e2e/$name"
    mkdir -p "$dir"
    job "$study/e2e_lora.yaml" "$dir.yaml" "seed=0" "$@" "${e2e_overrides[@]}"
    if [ ! -e "$dir/results.json" ] || ! grep -q '"completed"' "$dir/results.json"; then
      "$bin" train "$dir.yaml" --output-dir "$dir" > /dev/null
    fi
    echo "e2e $name done"
  }
  e2e_variant "lora_all_r$top_rank" "model=$out/gpt2_pretrain/model" \
    "lora={rank: $top_rank, alpha: 16, target_modules: [c_attn, c_proj, c_fc]}"
  e2e_variant full "model=$out/gpt2_pretrain/model" "trainable=full" "lr=5.0e-4"
  e2e_variant scratch "model=$gpt2_model" "trainable=full" "lr=1.0e-3"
fi

/usr/bin/python3 "$repo_root/bench/study_report.py" "$out" > "$out/report.md"
echo "report: $out/report.md"
