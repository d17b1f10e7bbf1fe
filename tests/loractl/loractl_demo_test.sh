#!/usr/bin/env bash
# `loractl demo --quick`: real lorad, lora-worker and lora-train children;
# the results name ranks 1, 2, 4, 8 and both baselines, the SVG is written,
# and a second run reuses the base model and the sweep (trains nothing).
set -euo pipefail
loractl=$1
dir="$TEST_TMPDIR/demo"
fail() { echo "FAIL: $*" >&2; exit 1; }

run() {  # run N: loractl demo --quick, outputs in $TEST_TMPDIR/runN.{out,err}
  local rc=0
  timeout 600 "$loractl" demo --quick --dir "$dir" \
    > "$TEST_TMPDIR/run$1.out" 2> "$TEST_TMPDIR/run$1.err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    cat "$TEST_TMPDIR/run$1.out" "$TEST_TMPDIR/run$1.err" >&2
    for log in "$dir"/logs/*.log; do echo "== $log" >&2; tail -20 "$log" >&2; done
    fail "run $1 exited $rc"
  fi
}

run 1
out1="$TEST_TMPDIR/run1.out"
cat "$out1"
grep -q "masked-LM pretraining" "$out1" || fail "run 1 did not pretrain"
grep -q "this takes roughly" "$out1" || fail "no time estimate"
grep -q "submitted, 6 runs" "$out1" || fail "run 1 did not submit 6 runs"
grep -q "SUCCEEDED: 6/6 done" "$out1" || fail "the sweep did not succeed"
for r in 1 2 4 8; do
  grep -Eq "^$r +1 +" "$out1" || fail "no ablation row for rank $r"
  grep -q "lora.rank=$r " "$out1" || fail "no run with rank $r"
done
grep -q "trainable=head_only" "$out1" || fail "no head-only baseline"
grep -q "trainable=full" "$out1" || fail "no full fine-tuning baseline"
grep -Eq "^head_only +1 +" "$out1" || fail "no head_only row by trainable"
grep -Eq "^full +1 +" "$out1" || fail "no full row by trainable"
[ -s "$dir/ablation.svg" ] || fail "no $dir/ablation.svg"
grep -q "<svg" "$dir/ablation.svg" || fail "ablation.svg is not an SVG"
[ -f "$dir/base/model/config.json" ] || fail "no base model"
sweep=$(sed -n 's/^sweep \(sw-[0-9a-f]*\) (submitted.*/\1/p' "$out1")
[ -n "$sweep" ] || fail "no sweep id in run 1"

# The children are gone.
if pgrep -f "$dir/lorad.db" > /dev/null; then fail "lorad still runs"; fi
if pgrep -f "$dir/worker/work" > /dev/null; then fail "the worker still runs"; fi

run 2
out2="$TEST_TMPDIR/run2.out"
cat "$out2"
grep -q "already pretrained (reused)" "$out2" || fail "run 2 did not reuse the base"
if grep -q "^pretraining " "$out2"; then fail "run 2 pretrained again"; fi
grep -q "^sweep $sweep (already submitted: reused" "$out2" \
  || fail "run 2 did not reuse sweep $sweep"
grep -q "the sweep already ended (SWEEP_STATE_SUCCEEDED)" "$out2" \
  || fail "run 2 did not find the sweep finished"
if grep -q "LEASED" "$out2"; then fail "run 2 trained something"; fi
for r in 1 2 4 8; do
  grep -Eq "^$r +1 +" "$out2" || fail "run 2: no ablation row for rank $r"
done
[ -s "$dir/ablation.svg" ] || fail "run 2: no ablation.svg"
echo PASS
