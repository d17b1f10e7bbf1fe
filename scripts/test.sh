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

scripts/count_test_results.sh "$log" bazel-testlogs "$bazel_status"
exit "$bazel_status"
