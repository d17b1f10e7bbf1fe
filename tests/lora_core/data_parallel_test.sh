#!/usr/bin/env bash
# Data parallel on CPU (world_size: 2, Gloo over 127.0.0.1) against one
# process with the same global batch: the same loss at every step (within
# float rounding), ranks that end with bitwise identical LoRA weights, close
# to the single process's; rank 0 alone writes the output folder. Then the
# same job under an external (torchrun-style) launcher, stopped at a step
# and resumed by lora-train's own launcher, reproduces the uninterrupted
# data-parallel run exactly; and the errors a user sees for a bad
# environment or batch size.
set -uo pipefail

bin="$TEST_SRCDIR/$TEST_WORKSPACE/lora_core/lora-train"
work="$TEST_TMPDIR/work"
mkdir -p "$work"
export LORA_SWEEP_CACHE="$TEST_TMPDIR/cache"
unset RANK LOCAL_RANK WORLD_SIZE MASTER_ADDR MASTER_PORT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
py() { /usr/bin/python3 - "$@"; }

# --- A base model without dropout -----------------------------------------
# The built-in configs have dropout 0.1 in the backbone, and two ranks draw
# other masks than one process does. One step of full fine-tuning exports a
# roberta-tiny checkpoint folder; its config then gets dropout 0.
cat > "$work/base.yaml" <<'YAML'
model: roberta-tiny
task: polarity
trainable: full
epochs: 1
batch_size: 8
max_steps: 1
max_seq_len: 48
seed: 5
threads: 1
YAML
"$bin" train "$work/base.yaml" --output-dir "$work/base" \
  > /dev/null 2> "$work/base.err" || { fail "base model run exited $?"; cat "$work/base.err"; }
py "$work/base/model/config.json" <<'PY' || fail "cannot edit the base config"
import json, sys
config = json.load(open(sys.argv[1]))
config["hidden_dropout_prob"] = 0.0
config["attention_probs_dropout_prob"] = 0.0
json.dump(config, open(sys.argv[1], "w"))
PY

job() {  # job WORLD_SIZE BATCH_SIZE > file
  cat <<YAML
model: $work/base/model
task: polarity
head: linear_pooled
lora: {rank: 4, alpha: 16, dropout: 0.0, target_modules: [query, value]}
epochs: 1
batch_size: $2
max_steps: 8
lr: 1.0e-2
max_seq_len: 48
amp: off
seed: 3
threads: 1
log_every_steps: 1
world_size: $1
YAML
}
job 1 8 > "$work/single.yaml"
job 2 8 > "$work/dp.yaml"

# --- One process, then two ranks started by lora-train itself -------------
LORA_TRAIN_DEBUG_DUMP="$work/dump_single" "$bin" train "$work/single.yaml" \
  --output-dir "$work/single" > /dev/null 2> "$work/single.err" ||
  { fail "single-process run exited $?"; cat "$work/single.err"; }
LORA_TRAIN_DEBUG_DUMP="$work/dump_dp" "$bin" train "$work/dp.yaml" \
  --output-dir "$work/dp" > "$work/dp.out" 2> "$work/dp.err" ||
  { fail "data-parallel run exited $?"; cat "$work/dp.err"; }
"$bin" eval --adapter "$work/dp/adapter" > "$work/dp_eval.json" \
  2> "$work/dp_eval.err" || { fail "eval --adapter exited $?"; cat "$work/dp_eval.err"; }

py "$work" <<'PY' || fail "data-parallel run differs from the single process"
import json, os, struct, sys
work = sys.argv[1]

def steps(run):
    records = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
    out = [r for r in records if r["type"] == "step"]
    # One record per step: rank 1 wrote nothing.
    assert [r["step"] for r in out] == list(range(1, 9)), (run, [r["step"] for r in out])
    return out, [r for r in records if r["type"] == "epoch"]

def weights(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        begin, end = info["data_offsets"]
        raw = data[8 + n + begin:8 + n + end]
        out[name] = struct.unpack(f"<{len(raw) // 4}f", raw)
    return out

single, single_epochs = steps("single")
dp, dp_epochs = steps("dp")
for a, b in zip(single, dp):
    assert abs(a["loss"] - b["loss"]) <= 1e-4 * abs(a["loss"]), ("loss", a["step"], a["loss"], b["loss"])
    assert abs(a["grad_norm"] - b["grad_norm"]) <= 1e-3 * abs(a["grad_norm"]) + 1e-7, ("grad_norm", a["step"], a["grad_norm"], b["grad_norm"])
    assert a["lr"] == b["lr"], (a["lr"], b["lr"])
print("losses:", [round(r["loss"], 6) for r in dp])

# Ranks end bitwise equal, and close to the single process.
rank0 = open(f"{work}/dump_dp/trainable_rank0.safetensors", "rb").read()
rank1 = open(f"{work}/dump_dp/trainable_rank1.safetensors", "rb").read()
assert rank0 == rank1, "ranks 0 and 1 end with different weights"
dp_weights = weights(f"{work}/dump_dp/trainable_rank0.safetensors")
single_weights = weights(f"{work}/dump_single/trainable_rank0.safetensors")
assert sorted(dp_weights) == sorted(single_weights)
assert any("lora_B" in name for name in dp_weights), sorted(dp_weights)
worst = 0.0
for name, values in single_weights.items():
    for x, y in zip(values, dp_weights[name]):
        worst = max(worst, abs(x - y))
        assert abs(x - y) <= 1e-4 + 1e-3 * abs(x), (name, x, y)
print("largest weight difference from one process:", worst)
assert sorted(os.listdir(f"{work}/dump_dp")) == ["trainable_rank0.safetensors", "trainable_rank1.safetensors"]

# Validation metrics: close to the single process's; eval --adapter
# reproduces the run's bit for bit (evaluation was split across the ranks).
assert len(dp_epochs) == 1 and len(single_epochs) == 1
for key in ("val_loss", "val_accuracy"):
    assert abs(dp_epochs[0][key] - single_epochs[0][key]) <= 1e-3, (key, dp_epochs, single_epochs)
again = json.load(open(f"{work}/dp_eval.json"))
for key in ("val_loss", "val_accuracy"):
    assert again[key] == dp_epochs[0][key], (key, again[key], dp_epochs[0][key])

results = json.load(open(f"{work}/dp/results.json"))
assert results["status"] == "completed" and results["steps"] == 8, results
assert results["world_size"] == 2, results
# stdout: rank 0's results only.
assert json.loads(open(f"{work}/dp.out").read())["world_size"] == 2
for f in ("config.yaml", "metrics.jsonl", "results.json",
          "checkpoint/training_state.safetensors", "adapter/adapter_model.safetensors"):
    assert os.path.exists(f"{work}/dp/{f}"), f
print("data parallel agrees with one process")
PY

# --- An external launcher, stopped at step 4, resumed by lora-train -------
port=$(py <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
)
for rank in 0 1; do
  RANK=$rank WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=$port \
    "$bin" train "$work/dp.yaml" --output-dir "$work/ext" --stop-after-steps 4 \
    > "$work/ext_$rank.out" 2> "$work/ext_$rank.err" &
  pids[$rank]=$!
done
for rank in 0 1; do
  wait "${pids[$rank]}" || { fail "external rank $rank exited $?"; cat "$work/ext_$rank.err"; }
done
grep -q '"status": "stopped"' "$work/ext/results.json" 2>/dev/null || fail "external run did not stop"
[ -s "$work/ext_1.out" ] && fail "rank 1 printed to stdout"
"$bin" train "$work/dp.yaml" --output-dir "$work/ext" > /dev/null 2> "$work/ext_resume.err" ||
  { fail "resumed data-parallel run exited $?"; cat "$work/ext_resume.err"; }
py "$work" <<'PY' || fail "stopped and resumed data-parallel run differs from the uninterrupted one"
import json, sys
work = sys.argv[1]
def losses(run):
    out = {}
    for line in open(f"{work}/{run}/metrics.jsonl"):
        r = json.loads(line)
        if r["type"] == "step":
            out[r["step"]] = r["loss"]
    return out
assert losses("ext") == losses("dp"), (losses("ext"), losses("dp"))
assert any(json.loads(l)["type"] == "resume" for l in open(f"{work}/ext/metrics.jsonl"))
for f in ("adapter_model.safetensors", "lora_sweep_head.safetensors"):
    assert open(f"{work}/ext/adapter/{f}", "rb").read() == \
           open(f"{work}/dp/adapter/{f}", "rb").read(), f
print("external launcher, stop and resume: identical")
PY

# --- Errors ---------------------------------------------------------------
expect_error() {  # expect_error MESSAGE COMMAND...
  local message=$1; shift
  "$@" > /dev/null 2> "$work/error.err"
  local status=$?
  [ "$status" -eq 2 ] || fail "exit $status, expected 2, for: $message"
  grep -qF "$message" "$work/error.err" || { fail "no \"$message\" in:"; cat "$work/error.err"; }
}
expect_error "WORLD_SIZE=3 does not match the job's world_size 2" \
  env RANK=0 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 \
  "$bin" train "$work/dp.yaml" --output-dir "$work/bad"
expect_error "RANK=2 is out of range for world_size 2" \
  env RANK=2 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 \
  "$bin" train "$work/dp.yaml" --output-dir "$work/bad"
expect_error "MASTER_PORT=(unset) must be a port number" \
  env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 \
  "$bin" train "$work/dp.yaml" --output-dir "$work/bad"
job 2 9 > "$work/odd.yaml"
expect_error "odd.yaml:6: batch_size: 9 is not divisible by world_size 2" \
  "$bin" train "$work/odd.yaml" --output-dir "$work/bad"
[ -e "$work/bad" ] && fail "a refused job wrote $work/bad"

[ "$failures" -eq 0 ] && echo "PASS: data_parallel_test"
exit "$failures"
