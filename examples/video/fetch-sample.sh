#!/bin/sh
# Fetches the real footage the video pipeline is demonstrated and benchmarked on: cockatoo.mp4
# (1280x720, 20 fps, 280 frames, H.264 + MP3 audio, BSD-2-Clause), shipped as a test resource in
# Debian's python3-imageio package. The package is downloaded with `apt-get download` and unpacked
# with `dpkg -x` into a temporary directory: it is never installed, and the video is never
# committed (examples/video/*.mp4 is git-ignored).
#
# Usage: examples/video/fetch-sample.sh [DEST]   (default: examples/video/cockatoo.mp4)
# Prints the clip's properties (ffprobe) and exits 0; an existing DEST that decodes is reused.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dest=${1:-"$here/cockatoo.mp4"}
pkg=python3-imageio
member=usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4

say() { echo "fetch-sample: $*" >&2; }

# Decodes every frame of the video stream (no output) and prints width, height, frame rate, frame
# count and codec; fails if the file is not a decodable video.
probe() {
    command -v ffprobe >/dev/null 2>&1 || { say "ffprobe not found (apt-get install ffmpeg)"; return 1; }
    ffprobe -v error -select_streams v:0 -count_frames \
        -show_entries stream=codec_name,width,height,r_frame_rate,nb_read_frames,pix_fmt \
        -show_entries format=format_name,duration,size -of default=noprint_wrappers=1 "$1"
}

if [ -s "$dest" ] && probe "$dest" >/dev/null 2>&1; then
    say "using cached $dest"
    probe "$dest"
    exit 0
fi

tmp=$(mktemp -d /tmp/shoal-fetch-sample.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

download() { (cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>&1); }
if ! download; then
    # apt-get download needs the package lists; fetch them if we may.
    if [ "$(id -u)" -eq 0 ]; then
        say "apt-get download failed; running apt-get update and retrying"
        apt-get update -q >/dev/null
        download || { say "apt-get download $pkg failed"; exit 1; }
    else
        say "apt-get download $pkg failed; as root run: apt-get update"
        exit 1
    fi
fi
deb=$(ls "$tmp"/"$pkg"_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { say "no $pkg .deb downloaded"; exit 1; }

# Check that the package really ships the clip before unpacking it.
dpkg -c "$deb" >"$tmp/contents"
if ! grep -q "/$member\$" "$tmp/contents"; then
    say "$(basename "$deb") does not contain $member"
    exit 1
fi
dpkg -x "$deb" "$tmp/root"
src="$tmp/root/$member"
[ -s "$src" ] || { say "$member missing after dpkg -x"; exit 1; }

mkdir -p "$(dirname "$dest")"
cp "$src" "$dest.tmp"
mv "$dest.tmp" "$dest"
if ! probe "$dest" >/dev/null; then
    say "$dest does not decode"
    exit 1
fi
say "fetched $dest from $(basename "$deb") ($(wc -c <"$dest") bytes)"
probe "$dest"
