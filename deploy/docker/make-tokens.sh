#!/usr/bin/env bash
# Writes fresh bearer tokens into DIR, once: keeps what is already there.
#   DIR/tokens        lorad's --tokens_file ('<role> <token> <name>' lines)
#   DIR/worker-token  the workers' --token_file
#   DIR/client-token  for loractl ($LORACTL_TOKEN) and other clients
#   DIR/admin-token   for admin calls
#   DIR/loractl.yaml  a loractl config (LORACTL_CONFIG) for 127.0.0.1:7070
#                     with the client token
# Every file is mode 0600 (lorad refuses a tokens file others can read).
# Tokens are 32 random bytes from /dev/urandom, hex-encoded.
#
# Usage: make-tokens.sh DIR
set -euo pipefail
dir=${1:?usage: make-tokens.sh DIR}
umask 077
mkdir -p "$dir"
if [ -s "$dir/tokens" ]; then
  echo "make-tokens: $dir/tokens exists; keeping it" >&2
  exit 0
fi
new_token() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }
admin=$(new_token) client=$(new_token) worker=$(new_token)
printf '%s\n' "$admin" > "$dir/admin-token.tmp"
printf '%s\n' "$client" > "$dir/client-token.tmp"
printf '%s\n' "$worker" > "$dir/worker-token.tmp"
printf 'server: 127.0.0.1:7070\ntoken: %s\n' "$client" > "$dir/loractl.yaml.tmp"
printf 'admin %s admin\nclient %s client\nworker %s workers\n' \
  "$admin" "$client" "$worker" > "$dir/tokens.tmp"
# The tokens file last: its presence means the set is complete.
for name in admin-token client-token worker-token loractl.yaml tokens; do
  mv -f "$dir/$name.tmp" "$dir/$name"
done
echo "make-tokens: wrote $dir/tokens, worker-token, client-token, admin-token, loractl.yaml" >&2
