#!/usr/bin/env bash
# `bazel run //loractl:demo -- [--quick] [--dir DIR]`: runs `loractl demo`
# from this target's runfiles, where lorad, lora-worker and lora-train are
# too (loractl finds them through RUNFILES_DIR).
set -euo pipefail
if [ -z "${RUNFILES_DIR:-}" ]; then
  if [ -d "$0.runfiles" ]; then
    RUNFILES_DIR=$(cd "$0.runfiles" && pwd)
  else
    RUNFILES_DIR=$(cd "$(dirname "$0")/.." && pwd)/..  # inside runfiles
  fi
  export RUNFILES_DIR
fi
exec "$RUNFILES_DIR/lora_sweep/loractl/loractl" demo "$@"
