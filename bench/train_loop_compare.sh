#!/usr/bin/env bash
# A whole LoRA fine-tuning run end to end, `lora-train train` against the
# same run written as a plain PyTorch eager loop (bench/train_loop_python.py),
# side by side: every repetition runs both back to back, alternating which
# goes first, on the same tokenised data (lora-train's dataset cache, which
# the Python loop reads), the same model and schedule, batched the same way
# (the shuffles differ), with evaluation and a checkpoint every epoch. Each process is timed from outside,
# start to exit; both also report the seconds spent in training steps,
# evaluation and checkpoint writes (lora-train in results.json's
# time_breakdown). bench/train_loop_report.py writes the table.
#
# The run: roberta-mini (4 x 256) from random initialisation, LoRA r = 4
# on query and value, Hugging Face's classification head, Pang & Lee
# polarity (3,000 train / 1,000 validation sentences), 4 epochs of batch 32,
# bf16 autocast, 2 threads.
#
# Usage: [MODEL=...] [EPOCHS=...] [LORA_TRAIN=...] bench/train_loop_compare.sh [OUT_DIR] [REPETITIONS]
#   OUT_DIR default runs/train_loop; REPETITIONS default 5 (~4 min).
#   MODEL (default roberta-mini; roberta-tiny for the test suite) and EPOCHS
#   (default 4) change the run.
set -euo pipefail
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$repo_root/runs/train_loop}
repetitions=${2:-5}
model=${MODEL:-roberta-mini}
epochs=${EPOCHS:-4}
mkdir -p "$out"
out=$(cd "$out" && pwd)
# LORA_TRAIN: a built lora-train to use instead of building one.
bin=${LORA_TRAIN:-}
if [ -z "$bin" ]; then
  (cd "$repo_root" && bazel build //lora_core:lora-train >&2)
  bin="$repo_root/bazel-bin/lora_core/lora-train"
fi
export LORA_SWEEP_CACHE="$out/cache"
results="$out/results.jsonl"
: > "$results"

cat > "$out/run.yaml" <<YAML
model: $model
task: polarity
head: roberta_classification
trainable: lora
lora: {rank: 4, alpha: 16, target_modules: [query, value]}
epochs: $epochs
batch_size: 32
eval_batch_size: 64
lr: 2.0e-3
warmup_ratio: 0.06
max_seq_len: 64
amp: bf16
threads: 2
seed: 0
log_every_steps: 50
YAML

now() { date +%s.%N; }

# A first run fills a fresh dataset cache (tokenisation is then off the
# clock for both, as it is for any run after the first on a worker), so the
# cache holds exactly this run's dataset.
rm -rf "$out/warmup" "$LORA_SWEEP_CACHE"
"$bin" train "$out/run.yaml" --output-dir "$out/warmup" > /dev/null 2> "$out/warmup.log" ||
  { cat "$out/warmup.log" >&2; exit 1; }
cache=$(ls "$LORA_SWEEP_CACHE"/datasets/*.bin)
if [ "$(wc -w <<< "$cache")" -ne 1 ]; then
  echo "expected one dataset cache file in $LORA_SWEEP_CACHE/datasets" >&2
  exit 1
fi

run_cpp() {  # run_cpp REP
  local dir="$out/cpp"
  rm -rf "$dir"
  local start end
  start=$(now)
  "$bin" train "$out/run.yaml" --output-dir "$dir" > /dev/null 2> "$out/cpp.log" ||
    { cat "$out/cpp.log" >&2; exit 1; }
  end=$(now)
  /usr/bin/python3 - "$1" "$start" "$end" "$dir/results.json" >> "$results" <<'PY'
import json, sys
rep, start, end, path = sys.argv[1:]
r = json.load(open(path))
t = r["time_breakdown"]
print(json.dumps({"rep": int(rep), "impl": "cpp",
                  "tokens": round(r["tokens_per_second"] * r["train_seconds"]),
                  "steps": r["steps"], "process_seconds": float(end) - float(start),
                  **{k: t[k] for k in ("steps_seconds", "evaluation_seconds",
                                       "checkpoint_seconds")},
                  "val_accuracy": r["final_metrics"]["val_accuracy"]}))
PY
}

run_python() {  # run_python REP
  local dir="$out/python"
  rm -rf "$dir"
  local start end line
  start=$(now)
  line=$(/usr/bin/python3 "$repo_root/bench/train_loop_python.py" --cache "$cache" \
         --out "$dir" --model "$model" --epochs "$epochs" --batch 32 --eval-batch 64 \
         --lr 2e-3 --warmup-ratio 0.06 --rank 4 --threads 2 --amp bf16)
  end=$(now)
  /usr/bin/python3 - "$1" "$start" "$end" "$line" >> "$results" <<'PY'
import json, sys
rep, start, end, line = sys.argv[1:]
r = json.loads(line)
r.update(rep=int(rep), process_seconds=float(end) - float(start))
print(json.dumps(r))
PY
}

for rep in $(seq 1 "$repetitions"); do
  if [ $((rep % 2)) -eq 1 ]; then run_cpp "$rep"; run_python "$rep"
  else run_python "$rep"; run_cpp "$rep"; fi
  tail -n 2 "$results" >&2
done
/usr/bin/python3 "$repo_root/bench/train_loop_report.py" "$results" > "$out/report.md"
cat "$out/report.md"
