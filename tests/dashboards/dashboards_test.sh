#!/bin/bash
# Runs the dashboards' structure test with Debian's python3 (stdlib only).
set -euo pipefail
exec python3 tests/dashboards/dashboards_test.py
