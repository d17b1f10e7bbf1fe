#!/usr/bin/env bash
# Feeds scripts/count_test_results.sh a synthetic Bazel log and test.xml files
# and checks the "N passed, N failed" line CI reads.
set -uo pipefail

count="$TEST_SRCDIR/$TEST_WORKSPACE/scripts/count_test_results.sh"
dir="$TEST_TMPDIR"
failures=0
expect() {  # expect WANT GOT CONTEXT
  if [ "$1" != "$2" ]; then
    echo "FAIL ($3): want '$1', got '$2'"
    failures=$((failures + 1))
  fi
}

mkdir -p "$dir/logs/tests/a/gtest_ok" "$dir/logs/tests/a/gtest_bad" \
  "$dir/logs/tests/b/shell_ok" "$dir/logs/tests/b/crashed"
cat > "$dir/logs/tests/a/gtest_ok/test.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="7" failures="0" disabled="1" errors="0" time="0.1" name="AllTests">
  <testsuite name="S" tests="7" failures="0" disabled="1" skipped="0" errors="0">
XML
cat > "$dir/logs/tests/a/gtest_bad/test.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" failures="2" disabled="0" errors="0" time="0.1" name="AllTests">
XML
cat > "$dir/logs/tests/b/shell_ok/test.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="tests/b/shell_ok" tests="1" failures="0" errors="0">
XML
cat > "$dir/logs/tests/b/crashed/test.xml" <<'XML'
<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="3" failures="0" disabled="0" errors="0" name="AllTests">
XML
cat > "$dir/bazel.log" <<'LOG'
INFO: Build completed, 2 tests FAILED, 40 total actions
//tests/a:gtest_ok                                                PASSED in 0.1s
//tests/a:gtest_bad                                               FAILED in 0.2s
  /root/.cache/bazel/.../tests/a/gtest_bad/test.log
//tests/b:shell_ok                                                PASSED in 1.3s
//tests/b:crashed                                                 TIMEOUT in 60.0s
//tests/c:never_built                                    FAILED TO BUILD
//tests/c:no_status                                            NO STATUS

Executed 5 out of 6 tests: 2 tests pass and 3 fail locally.
LOG

# Passed: 6 (one of 7 disabled) + 3 (two of 5 failed) + 1 (shell test); the
# timed-out target's XML says nothing failed, so it counts one failure and no
# passes. Failed: 2 cases, plus one each for the timeout, the build failure
# and the missing status.
expect "10 passed, 5 failed" "$(bash "$count" "$dir/bazel.log" "$dir/logs" 3)" mixed

printf '//tests/a:gtest_ok   PASSED in 0.1s\n' > "$dir/ok.log"
expect "6 passed, 0 failed" "$(bash "$count" "$dir/ok.log" "$dir/logs" 0)" all-pass
expect "6 passed, 1 failed" "$(bash "$count" "$dir/ok.log" "$dir/logs" 1)" bazel-error
: > "$dir/empty.log"
expect "0 passed, 1 failed" "$(bash "$count" "$dir/empty.log" "$dir/logs" 1)" nothing-ran

[ "$failures" -eq 0 ] && echo "PASS: count_test_results_test"
exit "$failures"
