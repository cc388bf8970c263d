#!/usr/bin/env bash
# Install gitlab-emulator (`gle`, from PyPI), the local GitLab CI runner that
# tests/ci_templates.rs runs the CI templates with, into a virtual
# environment: $RP_GLE_VENV, default /tmp/rp-devops-gle (the tests look for
# /tmp/rp-devops-gle/bin/gle, or the gle named by RP_GLE). Needs python3 with
# venv (Debian: python3-venv, listed in .ci/apt-packages.d/ci-templates.txt).
set -euo pipefail

venv=${RP_GLE_VENV:-/tmp/rp-devops-gle}
version=16.3.4

if [ "$("$venv/bin/gle" --version 2>/dev/null || true)" = "$version" ]; then
  exit 0
fi
echo "installing gitlab-emulator $version into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "gitlab-emulator==$version"
"$venv/bin/gle" --version >/dev/null
