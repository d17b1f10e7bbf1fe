#!/usr/bin/env bash
# bench/train_loop_compare.sh on roberta-tiny for one epoch: lora-train and
# the PyTorch eager loop (bench/train_loop_python.py) both train on
# lora-train's dataset cache, so they must see the same examples and tokens;
# the report must have every row.
set -uo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
work="$TEST_TMPDIR/work"
export LORA_TRAIN="$root/lora_core/lora-train"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

MODEL=roberta-tiny EPOCHS=1 bash "$root/bench/train_loop_compare.sh" "$work" 1 > "$TEST_TMPDIR/log.txt" 2>&1 || {
  fail "train_loop_compare.sh exited $?"; tail -30 "$TEST_TMPDIR/log.txt"; }
report="$work/report.md"
[ -s "$report" ] || fail "no report"
for row in "| end-to-end tokens/s |" "| tokens/s inside the training steps |" \
           "| end to end / inside the steps |" "| the same without evaluation time |" \
           "| share of wall time: evaluation (every epoch) |" \
           "| final validation accuracy |"; do
  grep -qF -- "$row" "$report" || fail "report lacks '$row'"
done
/usr/bin/python3 - "$work/results.jsonl" <<'PY' || fail "the two runs differ in data or shape"
import json, sys
rows = {r["impl"]: r for r in map(json.loads, open(sys.argv[1]))}
cpp, python = rows["cpp"], rows["python"]
# Polarity: 3,000 training sentences in batches of 32, one epoch.
assert cpp["steps"] == python["steps"] == 94, (cpp["steps"], python["steps"])
# The same tokenised examples: the same number of real tokens trained.
assert cpp["tokens"] == python["tokens"] > 3000, (cpp["tokens"], python["tokens"])
for r in (cpp, python):
    assert 0 < r["steps_seconds"] < r["process_seconds"], r
    assert 0 < r["evaluation_seconds"] < r["process_seconds"], r
    assert 0.0 <= r["val_accuracy"] <= 1.0, r
PY
[ "$failures" -eq 0 ] && echo "PASS: train_loop_quick_test"
exit "$failures"
