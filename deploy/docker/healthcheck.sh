#!/usr/bin/env bash
# Container health check without curl: GET http://127.0.0.1:PORT/PATH over
# bash's /dev/tcp and succeed on HTTP 200. The images carry no HTTP client
# (they install only the runtime libraries the daemons load).
#
# Usage: healthcheck.sh PORT [PATH]    (PATH default /healthz)
set -euo pipefail
port=${1:?usage: healthcheck.sh PORT [PATH]}
path=${2:-/healthz}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
read -r -t 5 _ status _ <&3
[ "$status" = 200 ]
