#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), builds everything and runs the
# whole test suite with Bazel, re-running every test (no cached results).
# Extra arguments go to `bazel test`, e.g. `scripts/test.sh --test_tag_filters=-exclusive`.
#
# Ends with one line "N passed, N failed" counting test cases (GoogleTest
# cases; one per shell test); a test target that crashed, timed out or failed
# to build counts at least one failure. Exit status: Bazel's.
set -uo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
bazel test //... --keep_going --cache_test_results=no "$@" 2>&1 | tee "$log"
bazel_status=${PIPESTATUS[0]}

# attribute NAME XML_FILE: NAME="N" of the first <testsuites> or <testsuite>
# element that has it (GoogleTest totals on the root; Bazel's own XML for
# shell tests only on the <testsuite>).
attribute() {
  grep -o -E "<testsuites? [^>]*" "$2" 2>/dev/null | grep -o -m1 "$1=\"[0-9]*\"" |
    head -1 | tr -dc '0-9'
}

passed=0
failed=0
while read -r target status; do
  xml="bazel-testlogs/${target#//}"
  xml="${xml/://}/test.xml"
  tests=$(attribute tests "$xml")
  failures=$(( $(attribute failures "$xml" || true) + $(attribute errors "$xml" || true) + 0 ))
  disabled=$(( $(attribute disabled "$xml" || true) + 0 ))
  tests=${tests:-0}
  if [ "$status" != PASSED ] && [ "$failures" -eq 0 ]; then
    failures=1  # Crashed, timed out or did not build: no case told us why.
  fi
  passed=$(( passed + (tests > failures + disabled ? tests - failures - disabled : 0) ))
  failed=$(( failed + failures ))
done < <(sed -nE 's#^(//[^ ]+) +(PASSED|FAILED|TIMEOUT|FLAKY|NO STATUS|INCOMPLETE|FAILED TO BUILD).*#\1 \2#p' "$log" |
  sed -E 's/ (NO STATUS|FAILED TO BUILD)$/ FAILED/')

if [ "$bazel_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  failed=1  # Bazel itself failed (analysis error, no tests found, ...).
fi
echo "$passed passed, $failed failed"
exit "$bazel_status"
