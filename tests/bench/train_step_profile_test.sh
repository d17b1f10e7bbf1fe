#!/usr/bin/env bash
# train_step_bench step --profile writes a LibTorch profiler trace of the
# timed steps, and bench/profile_report.py turns it into per-operator shares
# that account for the matrix products and add up to at most the wall time.
set -uo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
bench="$root/bench/train_step_bench"
trace="$TEST_TMPDIR/trace.json"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

line=$("$bench" step --model=roberta-tiny --amp=bf16 --batch=4 --seq=16 --rank=4 \
       --threads=1 --steps=2 --warmup=1 --profile="$trace") ||
  fail "train_step_bench exited $?"
grep -q '"tokens_per_second"' <<< "$line" || fail "no step result: $line"
[ -s "$trace" ] || fail "no trace written"
report=$(/usr/bin/python3 "$root/bench/profile_report.py" "$trace" 40) ||
  fail "profile_report.py exited $?"
echo "$report"
grep -q "^Matrix products" <<< "$report" || fail "no matrix-product share"
grep -qE '^\| `aten::(mm|addmm|bmm)`' <<< "$report" || fail "no matrix product in the table"
grep -qE '^\| `aten::native_layer_norm' <<< "$report" || fail "no layer norm in the table"
/usr/bin/python3 - "$report" <<'PY' || fail "shares do not add up"
import re, sys
shares = [float(m) for m in re.findall(r"\| ([0-9.]+)% \|$", sys.argv[1], re.M)]
assert shares and all(s >= 0 for s in shares), shares
assert sum(shares) <= 100.5, sum(shares)
PY
[ "$failures" -eq 0 ] && echo "PASS: train_step_profile_test"
exit "$failures"
