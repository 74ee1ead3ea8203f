#!/bin/sh
# Prints the path of a uv installed from uv-requirements.txt (beside this script; pinned by
# hash) under /root/.cache/uv-bin, a build cache mount of the Dockerfile, installing it there
# first when that uv is not there yet. Keyed by the requirements' hash, so a new pin gets a new
# uv. Installed in a fresh directory and renamed into place: concurrent builds sharing the
# cache never see half an install.
set -eu
here=$(dirname "$0")
cache=/root/.cache/uv-bin
key=$(sha256sum "$here/uv-requirements.txt" | cut -c1-16)
if [ ! -x "$cache/$key/bin/uv" ]; then
    mkdir -p "$cache"
    new=$(mktemp -d "$cache/new.XXXXXX")
    python3 -m venv "$new" >&2
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CACHE_DIR=/root/.cache/pip "$new/bin/pip" install -q --require-hashes --no-deps \
        -r "$here/uv-requirements.txt" >&2
    mv -T "$new" "$cache/$key" 2>/dev/null || rm -rf "$new"
fi
echo "$cache/$key/bin/uv"
