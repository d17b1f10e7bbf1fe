#!/bin/bash
# Runs Debian's promtool on deploy/prometheus/:
#   promtool_test.sh check-config   promtool check config (both scrape configs)
#   promtool_test.sh check-rules    promtool check rules alerts.yml
#   promtool_test.sh test-rules     promtool test rules alerts_test.yml
# Debian's promtool is built without Kubernetes service discovery, so it
# rejects kubernetes_sd_configs; the Kubernetes file is then checked with the
# kubernetes_sd_configs block swapped for a static target (everything else,
# relabelling included, is still checked).
set -euo pipefail
PROMTOOL=${PROMTOOL:-/usr/bin/promtool}
if [[ ! -x $PROMTOOL ]]; then
  echo "FAIL: $PROMTOOL not found (apt-get install prometheus)" >&2
  exit 1
fi
src=deploy/prometheus
work=$(mktemp -d "${TEST_TMPDIR:-/tmp}/promtool.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$src/alerts.yml" "$src/prometheus.yml" "$src/prometheus-kubernetes.yml" \
  tests/dashboards/alerts_test.yml "$work/"
cd "$work"

case "${1:?mode}" in
  check-config)
    "$PROMTOOL" check config prometheus.yml
    grep -q 'kubernetes_sd_configs:' prometheus-kubernetes.yml
    grep -q 'role: pod' prometheus-kubernetes.yml
    if out=$("$PROMTOOL" check config prometheus-kubernetes.yml 2>&1); then
      echo "$out"
    elif grep -q 'field kubernetes_sd_configs not found' <<<"$out"; then
      echo "promtool lacks Kubernetes SD; checking with a static target"
      sed -e 's/^\(\s*\)kubernetes_sd_configs:$/\1static_configs:/' \
          -e 's/^\(\s*\)- role: pod$/\1- targets: ["pod:9464"]/' \
          prometheus-kubernetes.yml >k8s-static.yml
      ! grep -q kubernetes_sd_configs k8s-static.yml
      "$PROMTOOL" check config k8s-static.yml
    else
      echo "$out" >&2
      exit 1
    fi
    ;;
  check-rules)
    "$PROMTOOL" check rules alerts.yml
    # Every alert has a unit test.
    for alert in $(sed -n 's/^\s*- alert: \(\w*\)$/\1/p' alerts.yml); do
      grep -q "alertname: $alert\b" alerts_test.yml ||
        { echo "FAIL: no unit test for $alert" >&2; exit 1; }
    done
    ;;
  test-rules)
    "$PROMTOOL" test rules alerts_test.yml
    ;;
  *)
    echo "unknown mode $1" >&2
    exit 2
    ;;
esac
echo PASS
