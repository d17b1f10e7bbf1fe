#!/usr/bin/env bash
# The study pipeline (bench/lora_study.sh) in its quick variant: tiny models,
# a few steps, one seed. Checks that every stage runs and the report has
# every table and row; the numbers themselves mean nothing at this size.
set -uo pipefail

export LORA_TRAIN="$TEST_SRCDIR/$TEST_WORKSPACE/lora_core/lora-train"
export LORA_SWEEP_CACHE="$TEST_TMPDIR/cache"
study="$TEST_SRCDIR/$TEST_WORKSPACE/bench/lora_study.sh"
out="$TEST_TMPDIR/study"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

bash "$study" --quick "$out" > "$TEST_TMPDIR/log.txt" 2>&1 || {
  fail "lora_study.sh --quick exited $?"; tail -30 "$TEST_TMPDIR/log.txt"; }
report="$out/report.md"
[ -s "$report" ] || fail "no report"
for row in "### Pretraining (masked LM)" "| Head only (linear probe) |" \
           "| LoRA r=1 (q, v) |" "| LoRA r=4 (q, v) |" "| Full fine-tuning |" \
           "| Random init, full training |" "### Per-epoch, LoRA r=4" \
           "### GPT-2 pretraining (causal LM)" "| 1 | 256 |" "| 4 | 1,024 |" \
           "### GPT-2 on generated E2E data, LoRA against the other ways to adapt" \
           "| LoRA r=4 (q, v) | 1,024 |" "| LoRA r=4 (c_attn, c_proj, c_fc) |"; do
  grep -qF -- "$row" "$report" || fail "report lacks '$row'"
done
for f in roberta_pretrain/model/config.json roberta_pretrain/model/model.safetensors \
         roberta_pretrain/model/vocab.json roberta_pretrain/model/merges.txt \
         gpt2_pretrain/model/model.safetensors; do
  [ -s "$out/$f" ] || fail "$f missing"
done
# E2E full fine-tuning starts from the pretrained GPT-2, training from
# scratch does not.
grep -q "gpt2_pretrain/model" "$out/e2e/full/config.yaml" ||
  fail "E2E full fine-tuning did not use the pretrained model"
grep -q "^model: gpt2-tiny" "$out/e2e/scratch/config.yaml" ||
  fail "E2E scratch run is not the random-init architecture"
grep -q "c_fc" "$out/e2e/lora_all_r4/config.yaml" ||
  fail "E2E all-linear LoRA run does not target c_fc"
# The fine-tuning runs start from the pretrained checkpoint.
grep -q "roberta_pretrain/model" "$out/polarity/lora_r4/seed0/config.yaml" ||
  fail "LoRA run did not use the pretrained model"
[ "$failures" -eq 0 ] && echo "PASS: lora_study_quick_test"
exit "$failures"
