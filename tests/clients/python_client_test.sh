#!/usr/bin/env bash
# clients/python/lora_client.py against a real lorad (SQLite store, bearer
# tokens): submit (new, again, invalid, unauthenticated), results before and
# after a Python fake worker (tests/clients/fake_worker.py) ran all four
# runs, and watch following the sweep to SUCCEEDED across a lorad restart,
# resuming from its last sequence without gaps or repeats. Uses only
# /usr/bin/python3 with Debian's python3-grpcio and python3-protobuf, and
# the stubs of //clients/python:lora_v1_py.
set -uo pipefail

root="$TEST_SRCDIR/$TEST_WORKSPACE"
lorad="$root/coordinator/lorad"
stubs="$root/clients/python"
tmp="$TEST_TMPDIR"
client=(timeout 60 /usr/bin/python3 "$root/clients/python/lora_client.py")
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
show() { echo "--- $1"; cat "$1"; }

lorad_pid=""
watch_pid=""
cleanup() {
  for pid in $watch_pid $lorad_pid; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT

# Auth on: a client token for lora_client.py, a worker token for the fake
# worker. lorad refuses a tokens file others may read.
client_token="client-token-0123456789abcdef"
worker_token="worker-token-0123456789abcdef"
printf 'client %s tester\nworker %s fake-worker\n' "$client_token" \
  "$worker_token" > "$tmp/tokens"
chmod 600 "$tmp/tokens"

# start_lorad [PORT]: starts lorad (port 0: a free one) and waits until it
# serves; sets lorad_pid and port.
start_lorad() {
  rm -f "$tmp/ports"
  "$lorad" --listen="127.0.0.1:${1:-0}" --http=127.0.0.1:0 \
    --db="$tmp/lorad.db" --artifact_root="$tmp/artifacts" \
    --tokens_file="$tmp/tokens" --ports_file="$tmp/ports" \
    >> "$tmp/lorad.log" 2>&1 &
  lorad_pid=$!
  for _ in $(seq 300); do
    [ -s "$tmp/ports" ] && break
    kill -0 "$lorad_pid" 2>/dev/null || break
    sleep 0.1
  done
  port="$(sed -n 's/^grpc=//p' "$tmp/ports" 2>/dev/null)"
  if [ -z "$port" ]; then
    echo "FAIL: lorad did not start"; tail -30 "$tmp/lorad.log"; exit 1
  fi
}

# wait_for PATTERN FILE: up to 30 s for FILE to hold PATTERN.
wait_for() {
  for _ in $(seq 300); do
    grep -q -- "$1" "$2" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start_lorad 0
server="127.0.0.1:$port"
export LORA_STUBS="$stubs"
cd "$tmp" || exit 1  # sweep files are named relative to here in messages

cat > sweep.yaml <<'EOF'
name: python-client-test
model: roberta-tiny
task: polarity
method: grid
parameters:
  lora.rank: [1, 2]
  seed: [0, 1]
fixed:
  epochs: 1
  max_seq_len: 32
metric: {name: val_accuracy, goal: maximize}
EOF

# --- No token: UNAUTHENTICATED, exit 1, with a hint.
"${client[@]}" submit sweep.yaml --server "$server" > out.txt 2> err.txt
rc=$?
[ "$rc" -eq 1 ] || fail "submit without a token exited $rc, want 1"
grep -q "UNAUTHENTICATED" err.txt || { fail "no UNAUTHENTICATED"; show err.txt; }
grep -q "LORACTL_TOKEN" err.txt || fail "no hint about LORACTL_TOKEN"

# --- First submission: a sweep id and 4 runs (token from the environment).
LORACTL_TOKEN="$client_token" "${client[@]}" submit sweep.yaml \
  --server "$server" > submit.txt 2> err.txt
rc=$?
[ "$rc" -eq 0 ] || { fail "submit exited $rc"; show err.txt; }
sweep_id="$(sed -n 's/^sweep \([^ ]*\) submitted$/\1/p' submit.txt)"
[ -n "$sweep_id" ] || { fail "submit printed no sweep id"; show submit.txt; }
grep -q "4 runs" submit.txt || { fail "submit does not say 4 runs"; show submit.txt; }
for params in "lora.rank=1 seed=0" "lora.rank=1 seed=1" "lora.rank=2 seed=0" \
              "lora.rank=2 seed=1"; do
  grep -q "$params  *PENDING" submit.txt || fail "submit lacks run '$params'"
done
[ "$(grep -c '^#[0-3] ' submit.txt)" -eq 4 ] || fail "submit lists != 4 runs"

# --- Again (token as a flag): the same sweep, already existing.
env -u LORACTL_TOKEN "${client[@]}" submit sweep.yaml --server "$server" \
  --token "$client_token" > again.txt 2> err.txt
rc=$?
[ "$rc" -eq 0 ] || { fail "resubmit exited $rc"; show err.txt; }
grep -q "^sweep $sweep_id already existed" again.txt ||
  { fail "resubmit does not say the sweep already existed"; show again.txt; }

export LORACTL_TOKEN="$client_token"

# --- Results before any run finished: both ranks, nothing aggregated.
"${client[@]}" results "$sweep_id" --server "$server" > results0.txt 2> err.txt
rc=$?
[ "$rc" -eq 0 ] || { fail "results exited $rc"; show err.txt; }
for rank in 1 2; do
  grep -Eq "^$rank +0 +- +[0-9,]+ +[0-9.]+%$" results0.txt ||
    { fail "results lack an empty row for rank $rank"; show results0.txt; }
done

# --- Invalid sweep: INVALID_ARGUMENT, exit 2, file:line in the message.
cat > bad.yaml <<'EOF'
name: python-client-test-bad
model: roberta-tiny
task: polarity
parameters:
  lora.rank: [0, 1]
EOF
"${client[@]}" submit bad.yaml --server "$server" > out.txt 2> err.txt
rc=$?
[ "$rc" -eq 2 ] || fail "invalid sweep exited $rc, want 2"
grep -q "bad.yaml:5:.*lora.rank" err.txt ||
  { fail "invalid sweep message lacks bad.yaml:5 and lora.rank"; show err.txt; }
"${client[@]}" submit missing.yaml --server "$server" > out.txt 2> err.txt
rc=$?
[ "$rc" -eq 2 ] || fail "missing sweep file exited $rc, want 2"
"${client[@]}" results no-such-sweep --server "$server" > out.txt 2> err.txt
rc=$?
[ "$rc" -eq 1 ] || fail "results of an unknown sweep exited $rc, want 1"
grep -q "NOT_FOUND" err.txt || { fail "unknown sweep: no NOT_FOUND"; show err.txt; }

# --- Watch while a fake worker runs the sweep, with a lorad restart in the
# middle: the watcher resumes from its last sequence.
timeout 120 /usr/bin/python3 "$root/clients/python/lora_client.py" watch "$sweep_id" --server "$server" \
  > watch.txt 2> watch_err.txt &
watch_pid=$!
worker=(timeout 60 /usr/bin/python3 "$root/tests/clients/fake_worker.py"
        --stubs "$stubs" --server "$server" --token "$worker_token")
"${worker[@]}" --runs 2 > worker1.txt 2>&1 || { fail "fake worker (runs 1-2)"; show worker1.txt; }
wait_for "sweep RUNNING" watch.txt || fail "watch did not print the sweep RUNNING"
for _ in $(seq 300); do
  [ "$(grep -c ': SUCCEEDED (attempt' watch.txt)" -ge 2 ] && break
  sleep 0.1
done
[ "$(grep -c ': SUCCEEDED (attempt' watch.txt)" -eq 2 ] ||
  { fail "watch did not print 2 succeeded runs before the restart"; show watch.txt; }

kill -TERM "$lorad_pid"
wait "$lorad_pid"
start_lorad "$port"
wait_for "resuming after sequence" watch_err.txt ||
  { fail "watch did not say it resumes"; show watch_err.txt; }
"${worker[@]}" --runs 2 > worker2.txt 2>&1 || { fail "fake worker (runs 3-4)"; show worker2.txt; }

wait "$watch_pid"
rc=$?
watch_pid=""
[ "$rc" -eq 0 ] || { fail "watch exited $rc, want 0"; show watch.txt; show watch_err.txt; }
grep -q "sweep SUCCEEDED$" watch.txt || { fail "watch lacks the SUCCEEDED sweep state"; show watch.txt; }
tail -1 watch.txt | grep -q "^sweep $sweep_id ended SUCCEEDED$" ||
  { fail "watch's last line is not the sweep's end"; show watch.txt; }
[ "$(grep -c ': SUCCEEDED (attempt' watch.txt)" -eq 4 ] ||
  { fail "watch did not print 4 succeeded runs once each"; show watch.txt; }
grep -q "run #3 lora.rank=2 seed=1: val_accuracy = 0.84 (step 20, epoch 2)" watch.txt ||
  { fail "watch lacks run #3's metric"; show watch.txt; }
grep -o '^\[[0-9]*\]' watch.txt | tr -d '[]' |
  awk 'NR > 1 && $1 <= prev { bad = 1 } { prev = $1 } END { exit bad }' ||
  { fail "watch sequences not strictly increasing"; show watch.txt; }

# --- Results: two succeeded runs per rank, mean ± std of the best metric.
"${client[@]}" results "$sweep_id" --server "$server" --runs > results.txt 2> err.txt
rc=$?
[ "$rc" -eq 0 ] || { fail "results exited $rc"; show err.txt; }
grep -Eq "^1 +2 +0\.7200 ± 0\.0283 +[0-9,]+ +[0-9.]+%$" results.txt ||
  { fail "results lack rank 1: 0.7200 ± 0.0283"; show results.txt; }
grep -Eq "^2 +2 +0\.8200 ± 0\.0283 +[0-9,]+ +[0-9.]+%$" results.txt ||
  { fail "results lack rank 2: 0.8200 ± 0.0283"; show results.txt; }
grep -q "SUCCEEDED, 4 runs" results.txt || { fail "results header"; show results.txt; }
[ "$(grep -Ec 'lora.rank=[12] seed=[01] +SUCCEEDED +0\.[78]' results.txt)" -eq 4 ] ||
  { fail "results --runs lacks 4 succeeded runs"; show results.txt; }

# --- submit --wait on the finished sweep: replays it and exits 0.
"${client[@]}" submit sweep.yaml --server "$server" --wait > wait.txt 2> err.txt
rc=$?
[ "$rc" -eq 0 ] || { fail "submit --wait exited $rc"; show err.txt; }
tail -1 wait.txt | grep -q "ended SUCCEEDED$" || { fail "submit --wait"; show wait.txt; }

if [ "$failures" -ne 0 ]; then
  echo "--- lorad log (tail)"; tail -20 "$tmp/lorad.log"
  exit 1
fi
echo "PASS: python_client_test"
