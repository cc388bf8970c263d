#!/usr/bin/env bash
# Install the Debian packages the tests use, if missing: GNU time (peak
# memory), git (git daemon and http-backend for real remotes), lighttpd (the
# smart-HTTP remote), curl (a plain client of the release API), procps
# (kill), and pkg-config + OpenSSL headers for git2's https support.
# Feature areas add theirs in .ci/apt-packages.d/*.txt, one package a line.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkg-config libssl-dev time git curl)
for list in .ci/apt-packages.d/*.txt; do
  [ -f "$list" ] || continue
  while read -r pkg; do
    pkg=${pkg%%#*}; pkg=${pkg//[[:space:]]/}
    [ -n "$pkg" ] && packages+=("$pkg")
  done < "$list"
done

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing test dependencies: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
