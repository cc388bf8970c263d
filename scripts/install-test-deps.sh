#!/usr/bin/env bash
# Install the Debian packages the tests use, if missing: GNU time (peak
# memory), git (git daemon and http-backend for real remotes), lighttpd (the
# smart-HTTP remote), curl (a plain client of the release API), procps
# (kill), and pkg-config + OpenSSL headers for git2's https support.
# Feature areas add theirs in .ci/apt-packages.d/*.txt, one package a line.
# Then gitlab-emulator into a virtual environment (install-gitlab-emulator.sh).
# Then the npm packages of the browser test (tests/browser, playwright-core
# driving Debian's chromium; it never downloads a browser of its own).
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
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing test dependencies: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci only when the lock file changed since the last install.
browser=tests/browser
if [ -f "$browser/package-lock.json" ]; then
  stamp="$browser/node_modules/.package-lock.json"
  if [ ! -f "$stamp" ] || [ "$browser/package-lock.json" -nt "$stamp" ]; then
    echo "installing browser test packages (npm ci in $browser)" >&2
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$browser" --no-audit --no-fund --loglevel=error >/dev/null
  fi
fi

# gitlab-emulator (PyPI) for the CI template tests, in a virtual environment.
scripts/install-gitlab-emulator.sh
