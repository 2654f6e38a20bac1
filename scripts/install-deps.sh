#!/bin/sh
# Installs the Debian packages Shoal builds, tests and benchmarks with, if any is missing.
# As root it runs apt-get itself; otherwise it prints the command to run and fails.
set -eu

PKGS="build-essential pkg-config clang libuv1-dev libh2o-dev libssl-dev libjansson-dev
liburing-dev libsqlite3-dev libcurl4-openssl-dev libseccomp-dev libcmocka-dev libvpx-dev
libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libhiredis-dev redis-server
gnuplot-nox wrk ffmpeg curl jq libclang-rt-14-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: missing:$missing"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root: apt-get update && apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
