#!/bin/bash
# Runs one of the deployment tests (tests/deploy/*_test.py) with Debian's
# python3 from the runfiles root, where the repository's files and the
# built daemons (coordinator/lorad, worker/lora-worker, ...) lie at their
# workspace paths.
set -euo pipefail
exec /usr/bin/python3 "tests/deploy/$1" "${@:2}"
