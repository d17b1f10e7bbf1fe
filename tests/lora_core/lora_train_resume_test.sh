#!/usr/bin/env bash
# Exact resume: a run interrupted at a step — by --stop-after-steps, by
# SIGTERM (checkpoint and stop, as a draining worker asks) and by SIGKILL
# in the middle of training — and then resumed produces exactly the loss
# sequence, epoch metrics and adapter of an uninterrupted run (CPU, same
# threads, bf16 autocast, dropout on, so the generator state matters).
set -uo pipefail

bin="$TEST_SRCDIR/$TEST_WORKSPACE/lora_core/lora-train"
work="$TEST_TMPDIR/work"
mkdir -p "$work"
export LORA_SWEEP_CACHE="$TEST_TMPDIR/cache"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

cat > "$work/job.yaml" <<'YAML'
model: roberta-mini
task: polarity
lora: {rank: 4, alpha: 16, dropout: 0.1, target_modules: [query, value]}
epochs: 2
batch_size: 32
grad_accum_steps: 2
lr: 2.0e-3
max_seq_len: 40
amp: bf16
seed: 11
threads: 2
log_every_steps: 1
checkpoint_every_steps: 3
YAML

run() { "$bin" train "$work/job.yaml" --output-dir "$@" > /dev/null 2>> "$work/stderr.txt"; }

# A: uninterrupted.
run "$work/a" || fail "uninterrupted run exited $?"

# B: stopped by --stop-after-steps at step 7 (between checkpoints), then
# resumed.
run "$work/b" --stop-after-steps 7 || fail "interrupted run exited $?"
grep -q '"status": "stopped"' "$work/b/results.json" || fail "run B did not stop"
run "$work/b" || fail "resumed run B exited $?"

# C: killed with SIGKILL once training is under way, then resumed.
"$bin" train "$work/job.yaml" --output-dir "$work/c" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  steps=$(grep -c '"type":"step"' "$work/c/metrics.jsonl" 2>/dev/null || echo 0)
  [ "$steps" -ge 20 ] && break
  sleep 0.05
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
[ -e "$work/c/results.json" ] && fail "run C finished before it could be killed"
[ -e "$work/c/checkpoint/training_state.safetensors" ] || fail "run C left no checkpoint"
ls "$work/c/checkpoint" | grep -q tmp && echo "note: a temporary file from the killed write remains (ignored)"
run "$work/c" || fail "resumed run C exited $?"

# D: SIGTERM once training is under way: checkpoint, "stopped", exit 0,
# with a checkpoint record written after the checkpoint; then resumed.
"$bin" train "$work/job.yaml" --output-dir "$work/d" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 1 1200); do
  steps=$(grep -c '"type":"step"' "$work/d/metrics.jsonl" 2>/dev/null || echo 0)
  [ "$steps" -ge 10 ] && break
  sleep 0.05
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
status=$?
[ "$status" -eq 0 ] || fail "run D exited $status after SIGTERM"
grep -q '"status": "stopped"' "$work/d/results.json" 2>/dev/null ||
  fail "run D did not stop with status stopped"
tail -n 1 "$work/d/metrics.jsonl" | grep -q '"type":"checkpoint"' ||
  fail "run D's last record is not its checkpoint"
run "$work/d" || fail "resumed run D exited $?"

/usr/bin/python3 - "$work" <<'PY' || fail "resumed runs differ from the uninterrupted run"
import json, sys
work = sys.argv[1]
def records(run):
    steps, epochs = {}, {}
    for line in open(f"{work}/{run}/metrics.jsonl"):
        r = json.loads(line)
        if r["type"] == "step":
            # A step recomputed after a kill must equal its first record.
            if r["step"] in steps:
                assert steps[r["step"]] == r["loss"], (run, r["step"])
            steps[r["step"]] = r["loss"]
        elif r["type"] == "epoch":
            epochs[r["epoch"]] = {k: v for k, v in r.items() if k != "type"}
    return steps, epochs
a_steps, a_epochs = records("a")
assert len(a_steps) == 2 * 47, len(a_steps)
for run in ("b", "c", "d"):
    steps, epochs = records(run)
    assert sorted(steps) == sorted(a_steps), (run, len(steps))
    for step, loss in a_steps.items():
        assert steps[step] == loss, (run, step, steps[step], loss)
    assert epochs == a_epochs, (run, epochs, a_epochs)
    assert json.load(open(f"{work}/{run}/results.json"))["final_metrics"] == \
           json.load(open(f"{work}/a/results.json"))["final_metrics"]
    for f in ("adapter_model.safetensors", "lora_sweep_head.safetensors"):
        assert open(f"{work}/{run}/adapter/{f}", "rb").read() == \
               open(f"{work}/a/adapter/{f}", "rb").read(), (run, f)
print("losses, epoch metrics and adapters identical")
PY
[ "$failures" -eq 0 ] || cat "$work/stderr.txt"
[ "$failures" -eq 0 ] && echo "PASS: lora_train_resume_test"
exit "$failures"
