#!/bin/sh
# For rp-devops's own tag job (.gitlab-ci.yml, tag-rp-devops): which
# `tag-library --bump` makes the next tag equal the version in Cargo.toml,
# printed as shell assignments to eval:
#
#   eval "$(scripts/release-bump.sh)"   # sets RP_TAG_BUMP and RP_TAG_FLAGS
#
# A release is made by raising `version` in Cargo.toml (and RP_DEVOPS_VERSION
# in ci-templates/, which a test keeps equal). When v<version> is already
# tagged, the tag job only shows what it would do (--dry-run): a commit that
# does not raise the version is not a release.
set -eu

version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ]; then
  echo "no version in Cargo.toml" >&2
  exit 1
fi
next_tag() {
  rp-devops --json tag-library --dry-run --no-release --bump "$1" |
    sed -n 's/^ *"tag": "\([^"]*\)",*$/\1/p'
}
for bump in patch minor major; do
  if [ "$(next_tag "$bump")" = "v$version" ]; then
    echo "RP_TAG_BUMP=$bump"
    echo "RP_TAG_FLAGS="
    exit 0
  fi
done
if git ls-remote --exit-code --tags origin "refs/tags/v$version" >/dev/null 2>&1; then
  echo "v$version is tagged already: raise the version in Cargo.toml to release" >&2
  echo "RP_TAG_BUMP=patch"
  echo "RP_TAG_FLAGS=--dry-run"
  exit 0
fi
echo "Cargo.toml's version $version is not the next patch, minor or major version after the latest tag" >&2
exit 1
