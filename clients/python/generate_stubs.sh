#!/usr/bin/env bash
# Generates the Python stubs of the lora.v1 API into OUT:
#
#   clients/python/generate_stubs.sh OUT
#
# writes OUT/lora/v1/{common,sweep_service,worker_service}_pb2.py and
# *_pb2_grpc.py, importable as `from lora.v1 import sweep_service_pb2` once
# OUT is on sys.path (lora_client.py --stubs OUT, or LORA_STUBS=OUT).
# Needs Debian's protobuf-compiler (/usr/bin/protoc, whose well-known types
# google/protobuf/*.proto live in /usr/include) and protobuf-compiler-grpc
# (/usr/bin/grpc_python_plugin). The Bazel rule //clients/python:lora_v1_py
# runs this script too.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT" >&2
  exit 2
fi
mkdir -p "$1"
out="$(cd "$1" && pwd)"
# The repository root: the protos' import root is its proto/ folder.
cd "$(dirname "$0")/../.."
PROTOC="${PROTOC:-/usr/bin/protoc}"
PLUGIN="${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}"
"$PROTOC" -I proto -I /usr/include \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$PLUGIN" \
  proto/lora/v1/*.proto
