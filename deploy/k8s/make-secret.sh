#!/usr/bin/env bash
# Prints the lora-sweep Namespace and the lora-tokens Secret (fresh random
# tokens) for the Kubernetes manifests, once per cluster:
#
#   deploy/k8s/make-secret.sh | kubectl apply -f -
#
# Keys: tokens (lorad's --tokens_file), worker-token (the workers'
# --token_file), client-token and admin-token (for loractl: LORACTL_TOKEN),
# loractl.yaml. Tokens come from deploy/docker/make-tokens.sh, the same
# generator the compose stack uses. Keep the printed manifest out of git.
#
# Usage: deploy/k8s/make-secret.sh [NAMESPACE]    (default lora-sweep)
set -euo pipefail
namespace=${1:-lora-sweep}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
"$here/../docker/make-tokens.sh" "$scratch/tokens" 2>/dev/null
sed -i 's/^server: .*/server: lorad.'"$namespace"'.svc:7070/' \
  "$scratch/tokens/loractl.yaml"
# The namespace first, so that the Secret can be applied before the overlay.
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\n' "$namespace"
kubectl create secret generic lora-tokens --namespace "$namespace" \
  --dry-run=client -o yaml \
  --from-file=tokens="$scratch/tokens/tokens" \
  --from-file=worker-token="$scratch/tokens/worker-token" \
  --from-file=client-token="$scratch/tokens/client-token" \
  --from-file=admin-token="$scratch/tokens/admin-token" \
  --from-file=loractl.yaml="$scratch/tokens/loractl.yaml"
