#!/bin/bash
# loractl links no LibTorch: neither its dynamic dependencies nor its
# undefined symbols mention torch, c10 or gloo (only lora_core/ and worker/
# may).
set -euo pipefail
binary="$1"
if [[ ! -x "$binary" ]]; then
  echo "FAIL: $binary is not an executable" >&2
  exit 1
fi
# Library names only (the addresses ldd prints are hex and may read "c10").
libraries="$(ldd "$binary" | awk '{print $1}')"
symbols="$(nm -C --undefined-only "$binary" 2>/dev/null || true)"
# The checks must be able to see dependencies at all.
if ! grep -q '^libgrpc++' <<<"$libraries"; then
  echo "FAIL: ldd shows no libgrpc++; the check is not looking" >&2
  exit 1
fi
if grep -E '^lib(torch|c10|gloo)' <<<"$libraries"; then
  echo "FAIL: $binary links LibTorch" >&2
  exit 1
fi
if grep -E ' (at|c10|torch)::' <<<"$symbols"; then
  echo "FAIL: $binary refers to LibTorch symbols" >&2
  exit 1
fi
echo "PASS: $binary links no LibTorch"
