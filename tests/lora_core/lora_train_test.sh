#!/usr/bin/env bash
# Runs lora-train as a user would, on tiny models: RoBERTa classification on
# the Pang & Lee polarity data and GPT-2 on generated E2E data; checks every
# output file, that `eval --adapter` reproduces the recorded validation
# metrics exactly, generation, bf16 training lowering the loss, and the
# errors users see for bad input.
set -uo pipefail

bin="$TEST_SRCDIR/$TEST_WORKSPACE/lora_core/lora-train"
work="$TEST_TMPDIR/work"
mkdir -p "$work"
export LORA_SWEEP_CACHE="$TEST_TMPDIR/cache"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
py() { /usr/bin/python3 - "$@"; }

# --- RoBERTa classification (the seed's setup in miniature) ---------------
cat > "$work/roberta.yaml" <<'YAML'
model: roberta-tiny
task: polarity
head: linear_pooled
lora: {rank: 4, alpha: 16, target_modules: [query, value]}
epochs: 2
batch_size: 32
lr: 1.0e-2
max_seq_len: 48
amp: bf16
seed: 3
threads: 2
log_every_steps: 5
YAML
"$bin" train "$work/roberta.yaml" --output-dir "$work/roberta" \
  > "$work/roberta.out" 2> "$work/roberta.err" || {
  fail "roberta train exited $?"; cat "$work/roberta.err"; }
for f in config.yaml metrics.jsonl results.json \
         checkpoint/training_state.safetensors adapter/adapter_config.json \
         adapter/adapter_model.safetensors adapter/lora_sweep_head.safetensors \
         adapter/lora_sweep_run.yaml; do
  [ -s "$work/roberta/$f" ] || fail "roberta: $f missing or empty"
done
py "$work/roberta" <<'PY' || fail "roberta outputs"
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
assert r["status"] == "completed", r["status"]
assert r["epochs_completed"] == 2 and r["steps"] == 2 * 94, r["steps"]
p = r["parameters"]
# roberta-tiny: hidden 32, 2 layers; LoRA r=4 on q,v: 2*2*4*(32+32); head 32*2+2.
assert p["lora"] == 1024 and p["head"] == 66 and p["trainable"] == 1090, p
assert p["total"] == p["base"] + p["lora"] + p["head"], p
assert set(r["final_metrics"]) >= {"val_accuracy", "val_loss", "train_loss"}
assert r["best"]["epoch"] in (1, 2)
assert [h["epoch"] for h in r["history"]] == [1, 2]
steps = [json.loads(l) for l in open(d + "/metrics.jsonl")]
step_records = [s for s in steps if s["type"] == "step"]
assert len(step_records) >= 2 * 94 // 5
# Where the time went: every phase measured, and they add up to the wall time.
t = r["time_breakdown"]
assert set(t) == {"setup_seconds", "steps_seconds", "evaluation_seconds",
                  "checkpoint_seconds", "other_seconds"}, t
assert all(t[k] > 0 for k in ("setup_seconds", "steps_seconds", "evaluation_seconds",
                               "checkpoint_seconds")), t
assert abs(sum(t.values()) - r["wall_seconds"]) < 1e-6 * max(1.0, r["wall_seconds"]) + 1e-9, (t, r["wall_seconds"])
# The logged step records are a subset of the steps timed.
assert sum(s["step_seconds"] for s in step_records) <= t["steps_seconds"] * (1 + 1e-9), t
for s in step_records:
    for key in ("step", "epoch", "loss", "lr", "grad_norm", "tokens_per_second", "loss_scale"):
        assert key in s, (key, s)
assert [s["epoch"] for s in steps if s["type"] == "epoch"] == [1, 2]
a = json.load(open(d + "/adapter/adapter_config.json"))
assert a["peft_type"] == "LORA" and a["r"] == 4 and a["lora_alpha"] == 16
assert sorted(a["target_modules"]) == ["query", "value"]
PY
"$bin" eval --adapter "$work/roberta/adapter" > "$work/roberta_eval.json" \
  2> "$work/roberta_eval.err" || { fail "eval exited $?"; cat "$work/roberta_eval.err"; }
py "$work/roberta/results.json" "$work/roberta_eval.json" <<'PY' || fail "eval --adapter does not reproduce the run's metrics"
import json, sys
final = json.load(open(sys.argv[1]))["final_metrics"]
again = json.load(open(sys.argv[2]))
for key in ("val_accuracy", "val_loss"):
    assert again[key] == final[key], (key, again[key], final[key])
PY

# --- GPT-2 on generated E2E data, bf16 -------------------------------------
cat > "$work/gpt2.yaml" <<'YAML'
model: gpt2-tiny
task: e2e
lora: {rank: 4, alpha: 16, target_modules: [query, value]}
epochs: 1
batch_size: 8
lr: 2.0e-2
max_seq_len: 80
amp: bf16
e2e: {train_mrs: 60, validation_mrs: 6}
generation: {beam_size: 2, max_new_tokens: 12, no_repeat_ngram_size: 3}
log_every_steps: 1
threads: 2
YAML
"$bin" train "$work/gpt2.yaml" --output-dir "$work/gpt2" \
  > "$work/gpt2.out" 2> "$work/gpt2.err" || { fail "gpt2 train exited $?"; cat "$work/gpt2.err"; }
for f in metrics.jsonl results.json adapter/adapter_config.json \
         adapter/adapter_model.safetensors adapter/lora_sweep_run.yaml; do
  [ -s "$work/gpt2/$f" ] || fail "gpt2: $f missing or empty"
done
py "$work/gpt2" <<'PY' || fail "gpt2 outputs"
import json, sys
d = sys.argv[1]
r = json.load(open(d + "/results.json"))
m = r["final_metrics"]
assert 0.0 <= m["val_bleu"] <= 1.0 and m["val_perplexity"] > 1.0, m
a = json.load(open(d + "/adapter/adapter_config.json"))
# q,v inside the fused c_attn export as a rank-2r c_attn adapter.
assert a["task_type"] == "CAUSAL_LM" and a["target_modules"] == ["c_attn"], a
assert a["r"] == 8 and a["lora_alpha"] == 32 and a["fan_in_fan_out"] is True, a
PY
"$bin" eval --adapter "$work/gpt2/adapter" > "$work/gpt2_eval.json" 2>/dev/null ||
  fail "gpt2 eval exited $?"
py "$work/gpt2/results.json" "$work/gpt2_eval.json" <<'PY' || fail "gpt2 eval --adapter does not reproduce"
import json, sys
final = json.load(open(sys.argv[1]))["final_metrics"]
again = json.load(open(sys.argv[2]))
for key in ("val_loss", "val_bleu"):
    assert again[key] == final[key], (key, again[key], final[key])
PY
"$bin" generate --adapter "$work/gpt2/adapter" \
  --mr "name[The Eagle], eatType[pub], area[riverside]" > "$work/generated.txt" \
  2> "$work/generate.err" || { fail "generate exited $?"; cat "$work/generate.err"; }
[ "$(wc -l < "$work/generated.txt")" -eq 1 ] || fail "generate printed no line"
"$bin" generate --adapter "$work/roberta/adapter" --mr "name[X]" > /dev/null 2>&1
[ $? -eq 2 ] || fail "generate on a RoBERTa run must exit 2"

# --- bf16 autocast on CPU trains: the loss falls -------------------------
sed -e 's/^lora: .*/trainable: full/' -e 's/^lr: .*/lr: 1.0e-2/' \
  "$work/gpt2.yaml" > "$work/gpt2_full.yaml"
"$bin" train "$work/gpt2_full.yaml" --output-dir "$work/gpt2_full" \
  > /dev/null 2> "$work/gpt2_full.err" || { fail "bf16 full train exited $?"; cat "$work/gpt2_full.err"; }
py "$work/gpt2_full" <<'PY' || fail "bf16 training did not lower the loss"
import json, sys
records = [json.loads(l) for l in open(sys.argv[1] + "/metrics.jsonl")]
losses = [r["loss"] for r in records if r["type"] == "step"]
first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
assert last < first - 1.0, (first, last)
assert json.load(open(sys.argv[1] + "/results.json"))["status"] == "completed"
PY
[ -s "$work/gpt2_full/model/model.safetensors" ] || fail "full fine-tune: model/ not exported"

# --- Errors users see --------------------------------------------------------
expect_error() {  # expect_error STATUS PATTERN ARGS...
  local status=$1 pattern=$2
  shift 2
  "$bin" "$@" > /dev/null 2> "$work/err.txt"
  local got=$?
  [ "$got" -eq "$status" ] || fail "lora-train $* exited $got, want $status"
  grep -q -- "$pattern" "$work/err.txt" || {
    fail "lora-train $*: stderr lacks '$pattern'"; cat "$work/err.txt"; }
}
printf 'model: roberta-tiny\ntask: polarity\nlr: -1\n' > "$work/bad_lr.yaml"
expect_error 2 "bad_lr.yaml:3: lr: expected a number in (0," train "$work/bad_lr.yaml" --output-dir "$work/x"
printf 'model: roberta-tiny\ntask: polarity\nlora:\n  rnak: 4\n' > "$work/bad_key.yaml"
expect_error 2 "bad_key.yaml:4: lora.rnak: unknown key" train "$work/bad_key.yaml" --output-dir "$work/x"
printf 'model: roberta-huge\ntask: polarity\n' > "$work/bad_model.yaml"
expect_error 2 'model: unknown model "roberta-huge"' train "$work/bad_model.yaml" --output-dir "$work/x"
printf 'model: roberta-tiny\ntask: polarity\nmax_seq_len: 600\n' > "$work/long.yaml"
expect_error 2 "max_seq_len: 600 exceeds the longest sequence roberta-tiny takes (128)" train "$work/long.yaml" --output-dir "$work/x"
expect_error 1 "no-such.yaml" train "$work/no-such.yaml" --output-dir "$work/x"
expect_error 2 "unknown subcommand" fly
expect_error 2 "eval needs --adapter" eval
"$bin" --help | grep -q "lora-train train CONFIG" || fail "--help lacks usage"

[ "$failures" -eq 0 ] && echo "PASS: lora_train_test"
exit "$failures"
