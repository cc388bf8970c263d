#!/bin/sh
# Publish an rp-devops binary to this project's generic package registry and
# link it from the tag's GitLab release. Run by the publish-binary job of
# .gitlab-ci.yml on release tags, with GitLab's CI variables:
#
#   scripts/publish-binary.sh BINARY VERSION
#
# Uploads rp-devops-x86_64-linux-gnu and rp-devops-x86_64-linux-gnu.sha256
# (sha256sum's format) to the package "rp-devops", version VERSION, with the
# job's CI_JOB_TOKEN; then adds both as links of the release of
# $CI_COMMIT_TAG, which rp-devops's own tag job created (never a second
# release). Re-running is safe: uploads replace nothing that differs (the
# same bytes again), and links already there are left alone.
set -eu

binary=$1
version=$2
file=rp-devops-x86_64-linux-gnu
api="$CI_API_V4_URL/projects/$CI_PROJECT_ID"
package="$api/packages/generic/rp-devops/$version"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

digest=$(sha256sum "$binary" | cut -d ' ' -f 1)
printf '%s  %s\n' "$digest" "$file" > "$work/$file.sha256"

put() {
  curl --fail-with-body --silent --show-error --retry 3 \
    --header "JOB-TOKEN: $CI_JOB_TOKEN" --upload-file "$1" "$2"
  echo
}
put "$binary" "$package/$file"
put "$work/$file.sha256" "$package/$file.sha256"
echo "published $file $version (sha256 $digest)"

# The release is made by the tag job of the default-branch pipeline, which
# pushed this tag: it may still be on its way.
links="$api/releases/$CI_COMMIT_TAG/assets/links"
tries=0
until curl --fail --silent --show-error --header "JOB-TOKEN: $CI_JOB_TOKEN" \
    --output "$work/links.json" "$links"; do
  tries=$((tries + 1))
  if [ "$tries" -ge "${RP_PUBLISH_RELEASE_TRIES:-10}" ]; then
    echo "no GitLab release for $CI_COMMIT_TAG yet: the package is published; re-run this job once the tag job has made the release" >&2
    exit 1
  fi
  sleep "${RP_PUBLISH_RELEASE_WAIT:-6}"
done
for name in "$file" "$file.sha256"; do
  if grep -q "\"name\": *\"$name\"" "$work/links.json"; then
    echo "release $CI_COMMIT_TAG already links $name"
    continue
  fi
  curl --fail-with-body --silent --show-error --header "JOB-TOKEN: $CI_JOB_TOKEN" \
    --data-urlencode "name=$name" --data-urlencode "url=$package/$name" \
    --data-urlencode "link_type=package" "$links" > /dev/null
  echo "linked $name from release $CI_COMMIT_TAG"
done
