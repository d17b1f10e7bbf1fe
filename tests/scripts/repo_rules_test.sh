#!/usr/bin/env bash
# Repository rules that hold for every commit, checked on the real source tree
# (found through the runfile symlink of README.md):
#   - the build is offline: no download rule in WORKSPACE, BUILD or .bzl files;
#   - only lora_core/, worker/ and their tests and benchmarks include LibTorch;
#   - C++ sources are clang-format clean (Google base, .clang-format).
set -uo pipefail

root=$(dirname "$(readlink -f "$TEST_SRCDIR/$TEST_WORKSPACE/README.md")")
cd "$root" || exit 1
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

build_files=$(git ls-files 'WORKSPACE' '*BUILD' '*.BUILD' '*.bzl' 'third_party/stubs/*')
downloads=$(grep -nE '^[^#]*(http_archive|http_file|git_repository|http_jar|urls? *=)' $build_files)
[ -n "$downloads" ] && fail "the build must stay offline; found download rules:
$downloads"

torch_users=$(git ls-files '*.cc' '*.h' |
  grep -vE '^(lora_core|worker|tests/lora_core|tests/worker|bench)/' |
  xargs grep -lE '#include [<"](torch|ATen|c10)/' 2>/dev/null)
[ -n "$torch_users" ] && fail "LibTorch headers outside lora_core/ and worker/:
$torch_users"

unformatted=$(git ls-files '*.cc' '*.h' | while read -r file; do
  clang-format --dry-run "$file" 2>&1 | grep -q warning && echo "$file"
done)
[ -n "$unformatted" ] && fail "not clang-format clean (run clang-format -i):
$unformatted"

[ "$failures" -eq 0 ] && echo "PASS: repo_rules_test"
exit "$failures"
