#!/bin/sh
# Example release script for `rp-devops serve` (release.products.NAME.script).
#
# The receiver calls it after the artifact is stored and verified:
#     release.sh ARTIFACT ENV_FILE
# with the working directory set to the version directory, the metadata both
# in ENV_FILE and in the environment, and a timeout (release.products.NAME.
# timeout) after which the whole process group is killed. Its exit code and
# the last 4 KiB of its output go back to the uploader; a non-zero exit makes
# the upload answer 500, and an identical re-upload runs the script again.
#
# This one publishes the artifact into a download tree:
#     $RELEASE_PUBLISH_DIR/PRODUCT/CHANNEL/FILE   plus a `latest` symlink and
#     a LATEST file ("VERSION MD5"), both switched atomically.
set -eu

artifact=$1
env_file=$2

# The .env file only assigns single-quoted literals (KEY='value', with ' as
# '\''): sourcing it runs nothing from the uploader, whatever the values.
# shellcheck disable=SC1090
. "$env_file"

# Metadata is data from the uploader: never put it in a path, a command or an
# eval before checking it. RELEASE_PRODUCT/VERSION/FILE are already checked
# by the receiver ([A-Za-z0-9][A-Za-z0-9._-]*, no '..').
channel=${channel:-stable}
case $channel in
    '' | .* | *[!A-Za-z0-9._-]*)
        echo "refusing channel '$channel': letters, digits, '.', '_', '-' only" >&2
        exit 2
        ;;
esac

publish_root=${RELEASE_PUBLISH_DIR:-/srv/updates}
dest=$publish_root/$RELEASE_PRODUCT/$channel
mkdir -p "$dest"

# Cheap insurance against a disk that lies: check the bytes once more.
echo "$RELEASE_MD5  $artifact" | md5sum -c --quiet -

# Copy under a hidden name, then rename: downloaders never see half a file.
cp "$artifact" "$dest/.$RELEASE_FILE.tmp"
mv -f "$dest/.$RELEASE_FILE.tmp" "$dest/$RELEASE_FILE"
ln -sfn "$RELEASE_FILE" "$dest/.latest.tmp"
mv -Tf "$dest/.latest.tmp" "$dest/latest"
printf '%s %s\n' "$RELEASE_VERSION" "$RELEASE_MD5" > "$dest/.LATEST.tmp"
mv -f "$dest/.LATEST.tmp" "$dest/LATEST"

echo "published $RELEASE_PRODUCT $RELEASE_VERSION ($channel${commit:+, commit $commit}) to $dest"
