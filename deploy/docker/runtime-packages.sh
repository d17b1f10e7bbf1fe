#!/usr/bin/env bash
# Prints the Debian packages that provide the shared libraries BINARY...
# load (ldd, then dpkg -S), one per line, sorted. The images' build stage
# installs scripts/debian-packages.txt with scripts/setup.sh, builds the
# daemons, and runs this on them; the runtime stage installs exactly these
# packages. So the package list lives in one file: the runtime libraries
# are whatever that list's -dev packages made the binaries link against.
#
# Usage: deploy/docker/runtime-packages.sh BINARY...
# Fails, naming the library, when a library is not found or belongs to no
# package (a runtime image without it would not start).
set -euo pipefail

if [ "$#" -eq 0 ]; then
  echo "usage: $0 BINARY..." >&2
  exit 2
fi

# Every library path the binaries load, once (they share most of them).
declare -A library_of=()
for binary in "$@"; do
  [ -f "$binary" ] || { echo "$0: $binary: no such file" >&2; exit 1; }
  # Lines look like "libfoo.so.1 => /usr/lib/.../libfoo.so.1 (0x...)";
  # "not found" in place of the path is an error; the vDSO has no path.
  while read -r library arrow path _; do
    [ "$arrow" = "=>" ] || continue
    if [ "$path" = "not" ]; then
      echo "$0: $binary: $library not found" >&2
      exit 1
    fi
    library_of[$path]="$binary: $library"
  done < <(ldd "$binary")
done

# Which package owns each path: one pass over dpkg's file lists (dpkg-query
# -S per library takes seconds each). Debian 12 merges /lib into /usr/lib,
# but dpkg records some files under the unmerged name, so each library is
# looked up as loaded, resolved through its symbolic links, and with or
# without the /usr prefix.
candidates=$(for path in "${!library_of[@]}"; do
  for name in "$path" "$(readlink -f "$path")"; do
    printf '%s\t%s\n%s\t%s\n%s\t%s\n' "$name" "$path" \
      "${name#/usr}" "$path" "/usr$name" "$path"
  done
done)
owners=$(awk -F'\t' '
  NR == FNR { wanted[$1] = wanted[$1] " " $2; next }
  ($0 in wanted) {
    package = FILENAME
    sub(/.*\//, "", package); sub(/\.list$/, "", package); sub(/:.*/, "", package)
    n = split(wanted[$0], paths, " ")
    for (i = 1; i <= n; i++) print paths[i] "\t" package
  }' <(printf '%s\n' "$candidates") /var/lib/dpkg/info/*.list)

declare -A packages=() owned=()
while IFS=$'\t' read -r path package; do
  [ -n "$path" ] || continue
  packages[$package]=1
  owned[$path]=1
done <<< "$owners"
for path in "${!library_of[@]}"; do
  if [ -z "${owned[$path]:-}" ]; then
    echo "$0: ${library_of[$path]} ($path) belongs to no Debian package" >&2
    exit 1
  fi
done
printf '%s\n' "${!packages[@]}" | sort
