#!/usr/bin/env bash
# Usage: count_test_results.sh BAZEL_LOG TESTLOGS_DIR [BAZEL_EXIT_STATUS]
#
# Reads the per-target summary lines of a `bazel test` log and each target's
# TESTLOGS_DIR/<package>/<target>/test.xml, and prints one line
# "N passed, N failed" counting test cases: GoogleTest cases from their XML,
# one case per shell test. A target that crashed, timed out or failed to
# build counts at least one failure, and so does a non-zero Bazel exit status
# with no failed case (an analysis error, say).
set -uo pipefail

log=$1
testlogs=$2
bazel_status=${3:-0}

# attribute NAME XML_FILE: NAME="N" of the first <testsuites> or <testsuite>
# element that has it (GoogleTest puts totals on the root; Bazel's own XML for
# shell tests only on the <testsuite>). Prints nothing when absent.
attribute() {
  grep -o -E "<testsuites? [^>]*" "$2" 2>/dev/null | grep -o -m1 "$1=\"[0-9]*\"" |
    head -1 | tr -dc '0-9'
}

passed=0
failed=0
while read -r target status; do
  xml="$testlogs/${target#//}"
  xml="${xml/://}/test.xml"
  tests=$(attribute tests "$xml")
  failures=$(( $(attribute failures "$xml") + $(attribute errors "$xml") + 0 ))
  disabled=$(( $(attribute disabled "$xml") + $(attribute skipped "$xml") + 0 ))
  tests=${tests:-0}
  if [ "$status" != PASSED ] && [ "$failures" -eq 0 ]; then
    # Crashed, timed out or did not build: no case told us why, and its XML
    # (if any) cannot be trusted to count passes.
    tests=1 failures=1 disabled=0
  fi
  if [ "$tests" -gt $((failures + disabled)) ]; then
    passed=$((passed + tests - failures - disabled))
  fi
  failed=$((failed + failures))
done < <(sed -nE 's#^(//[^ ]+) +(PASSED|FLAKY|FAILED TO BUILD|FAILED|TIMEOUT|NO STATUS|INCOMPLETE).*#\1 \2#p' "$log" |
  sed -E 's/ (NO STATUS|FAILED TO BUILD)$/ FAILED/')

if [ "$bazel_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1
fi
echo "$passed passed, $failed failed"
