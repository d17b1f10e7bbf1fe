#!/usr/bin/env bash
# The dashboards against real data: Debian's Prometheus (/usr/bin/prometheus)
# on 127.0.0.1 scrapes a running lorad and lora-worker through a tiny sweep
# (roberta-tiny, lora.rank [1, 2] x seed [0, 1], 6 steps), then every
# dashboard panel's PromQL is evaluated through /api/v1/query by
# prometheus_integration_test.py (no errors, every metric name has series,
# the core panels hold the expected values).
set -euo pipefail

fail() { echo "FAIL: $*" >&2; exit 1; }

ws="${TEST_SRCDIR:?}/${TEST_WORKSPACE:-lora_sweep}"
lorad="$ws/coordinator/lorad"
worker="$ws/worker/lora-worker"
train="$ws/lora_core/lora-train"
loractl="$ws/loractl/loractl"
helper="$ws/tests/dashboards/prometheus_integration_test.py"
dashboards=("$ws"/dashboards/*.json)
python=/usr/bin/python3
prometheus=/usr/bin/prometheus
for f in "$lorad" "$worker" "$train" "$loractl" "$helper" "$python" \
  "$prometheus" "${dashboards[@]}"; do
  [ -e "$f" ] || fail "missing $f"
done

tmp="${TEST_TMPDIR:?}/prom-it"
rm -rf "$tmp"
mkdir -p "$tmp"/lorad "$tmp"/worker/work "$tmp"/worker/cache "$tmp"/prometheus

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2> /dev/null || true
    wait "$pid" 2> /dev/null || true
  done
}
logs() {
  local log
  for log in "$tmp"/lorad.log "$tmp"/worker.log "$tmp"/prometheus.log; do
    echo "== $log" >&2
    tail -30 "$log" >&2 || true
  done
}
trap 'rc=$?; [ "$rc" -eq 0 ] || logs; cleanup; exit $rc' EXIT

free_port() {
  "$python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

# Waits up to $2 seconds for URL $1 to answer 200.
wait_http() {
  local deadline=$((SECONDS + $2))
  until "$python" -c 'import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2> /dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$1 did not answer within $2 s"
    sleep 0.5
  done
}

# lorad.
"$lorad" --listen=127.0.0.1:0 --http=127.0.0.1:0 --db="$tmp/lorad/lorad.db" \
  --artifact_root="$tmp/lorad/artifacts" --ports_file="$tmp/lorad/ports" \
  > "$tmp/lorad.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do
  grep -q '^http=' "$tmp/lorad/ports" 2> /dev/null && break
  kill -0 "${pids[0]}" 2> /dev/null || fail "lorad exited"
  sleep 0.1
done
grpc_port=$(sed -n 's/^grpc=//p' "$tmp/lorad/ports")
lorad_http=$(sed -n 's/^http=//p' "$tmp/lorad/ports")
[ -n "$grpc_port" ] && [ -n "$lorad_http" ] || fail "no ports from lorad"
wait_http "http://127.0.0.1:$lorad_http/metrics" 30

# lora-worker.
worker_http=$(free_port)
LORA_SWEEP_CACHE="$tmp/worker/dataset-cache" "$worker" \
  --coordinator="127.0.0.1:$grpc_port" --name=prom-it-worker --max_jobs=1 \
  --threads_per_job=1 --work_dir="$tmp/worker/work" \
  --cache_dir="$tmp/worker/cache" --http="127.0.0.1:$worker_http" \
  --lora_train="$train" > "$tmp/worker.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$worker_http/metrics" 60

# Prometheus scraping both every second.
prom_port=$(free_port)
cat > "$tmp/prometheus.yml" << EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lorad
    static_configs:
      - targets: ["127.0.0.1:$lorad_http"]
  - job_name: lora-worker
    static_configs:
      - targets: ["127.0.0.1:$worker_http"]
EOF
"$prometheus" --config.file="$tmp/prometheus.yml" \
  --storage.tsdb.path="$tmp/prometheus/data" \
  --web.listen-address="127.0.0.1:$prom_port" > "$tmp/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prom_port"
wait_http "$prom/-/ready" 60

# The tiny sweep, through loractl as a user would.
cat > "$tmp/sweep.yaml" << 'EOF'
name: prometheus-integration
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [1, 2]
  seed: [0, 1]
fixed:
  epochs: 1
  max_steps: 6
  batch_size: 8
  max_seq_len: 32
  log_every_steps: 1
EOF
export LORACTL_SERVER="127.0.0.1:$grpc_port"
rc=0
timeout 600 "$loractl" submit "$tmp/sweep.yaml" --wait > "$tmp/submit.out" 2>&1 \
  || rc=$?
cat "$tmp/submit.out"
[ "$rc" -eq 0 ] || fail "loractl submit --wait exited $rc"
sweep=$(sed -n 's/^sweep \(sw-[0-9a-f]*\) submitted.*/\1/p' "$tmp/submit.out" \
  | head -1)
[ -n "$sweep" ] || fail "no sweep id in loractl's output"
grep -q "ended .*SUCCEEDED" "$tmp/submit.out" || fail "the sweep did not succeed"
"$loractl" results "$sweep" --format json > "$tmp/results.json" \
  || fail "loractl results exited $?"

# A few more scrapes of the finished state (the worker keeps running), and
# enough for rate() over the dashboards' windows.
sleep 5

# lorad labels the sweep's series with its name.
"$python" "$helper" "$prom" prometheus-integration "$tmp/results.json" "${dashboards[@]}"
