#!/bin/bash
# What `make demo` runs after building: the video-abr pipeline (examples/video) on real footage.
# Fetches the sample clip (examples/video/fetch-sample.sh), starts its own platform (`shoal up` on
# a free loopback port, in a temporary home), deploys video-abr, encodes the clip once with a
# single instance and once with a group, writes the group's renditions and manifest to out/video/
# (git-ignored), prints a table, and stops the platform it started.
# Usage: scripts/demo.sh BUILD_DIR
# Environment: DEMO_GROUP (group size, default: the number of cores, at least 2),
# DEMO_QUERY (extra query parameters, e.g. "chunk_frames=12&cq=30").
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "demo: no build directory ${1:-build}" >&2; exit 1; }
SHOAL="$BUILD/shoal"
cd "$SRC"
GROUP=${DEMO_GROUP:-$(nproc)}
[ "$GROUP" -ge 2 ] 2>/dev/null || GROUP=2
EXTRA=${DEMO_QUERY:-}
OUT="$SRC/out/video"
CLIP="$SRC/examples/video/cockatoo.mp4"

for t in "$SHOAL" "$BUILD/shoal-controller" "$BUILD/shoal-worker" "$BUILD/examples/video-abr.so"; do
    [ -e "$t" ] || { echo "demo: $t is missing; run make first" >&2; exit 1; }
done
for t in tar jq; do
    command -v "$t" >/dev/null || { echo "demo: $t is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

echo "== fetching the sample clip"
"$SRC/examples/video/fetch-sample.sh" "$CLIP" || {
    echo "demo: could not fetch the sample clip (see above)" >&2
    exit 1
}

HOME_DIR=$(mktemp -d /tmp/shoal-demo.XXXXXX)
UP=""
cleanup() {
    if [ -n "$UP" ] && kill -0 "$UP" 2>/dev/null; then
        kill -TERM "$UP" 2>/dev/null || true
        wait "$UP" 2>/dev/null || true
    fi
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A loopback port nothing listens on, and the next one for the workers.
while :; do
    PORT=$((20000 + RANDOM % 30000))
    (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || (echo >"/dev/tcp/127.0.0.1/$((PORT + 1))") 2>/dev/null || break
done
export SHOAL_URL="http://127.0.0.1:$PORT"
echo "== starting the platform: shoal up --listen 127.0.0.1:$PORT --home $HOME_DIR"
"$SHOAL" up --listen "127.0.0.1:$PORT" --home "$HOME_DIR" --slots 16 >"$HOME_DIR/up.log" 2>&1 &
UP=$!
cli() { "$SHOAL" --home "$HOME_DIR" "$@"; }
for _ in $(seq 1 150); do
    kill -0 "$UP" 2>/dev/null || break
    cli ls >/dev/null 2>&1 && break
    sleep 0.1
done
cli ls >/dev/null 2>&1 || { echo "demo: the platform did not start:" >&2; tail -20 "$HOME_DIR/up.log" >&2; exit 1; }
# Rank 0 holds the whole decoded clip (387 MB) and, when the transport copies, the scattered
# frames once more.
cli deploy video-abr "$BUILD/examples/video-abr.so" --memory-mb 2048 --timeout-ms 600000 >/dev/null

# Runs the pipeline with query $1 into $2 (a tar), twice, keeping the faster run (an instance's
# first large decode is slower than the ones after it); prints its wall time in seconds.
run() {
    local t0 t1 w best=""
    for _ in 1 2; do
        t0=$(date +%s.%N)
        cli invoke video-abr @"$CLIP" -q "$1" -o "$2.try" >/dev/null || {
            echo "demo: invoke ?$1 failed" >&2
            return 1
        }
        t1=$(date +%s.%N)
        w=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
        if [ -z "$best" ] || awk -v a="$w" -v b="$best" 'BEGIN { exit !(a < b) }'; then
            best=$w
            mv "$2.try" "$2"
        fi
    done
    echo "$best"
}
q() { echo "group=$1${EXTRA:+&$EXTRA}"; }
# Warm the instances (alone and as a group) with a short synthetic clip of the sample's size and
# codec, so the timings below are of the work, not of an instance's first decode and encode.
if command -v ffmpeg >/dev/null &&
    ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=1280x720:rate=20 -frames:v 6 \
        -c:v libx264 -pix_fmt yuv444p "$HOME_DIR/warm.mp4"; then
    for g in 1 "$GROUP"; do
        cli invoke video-abr @"$HOME_DIR/warm.mp4" -q "group=$g&chunk_frames=3" \
            -o "$HOME_DIR/warm.tar" >/dev/null || true
    done
fi
echo "== encoding $(basename "$CLIP") with one instance (?$(q 1)), best of two runs"
W1=$(run "$(q 1)" "$HOME_DIR/g1.tar")
echo "== encoding with a group of $GROUP (?$(q "$GROUP")), best of two runs"
WG=$(run "$(q "$GROUP")" "$HOME_DIR/g.tar")

rm -rf "$OUT"
mkdir -p "$OUT"
tar -xf "$HOME_DIR/g.tar" -C "$OUT"
M="$OUT/manifest.json"
src=$(jq -r '.source | "\(.width)x\(.height), \(.frames) frames at \(.fps) fps, \(.codec)"' "$M")
params=$(jq -r '.params | "VP8 cq \(.cq), cpu_used \(.cpu_used), \(.chunk_frames)-frame chunks"' "$M")
echo
echo "$(basename "$CLIP"): $src -> $params, $(jq .chunks "$M") chunks"
printf '%-10s %7s %10s %10s %8s  %s\n' rendition frames kbps bytes PSNR_dB file
jq -r '.renditions[] | [.width, .height, .frames, .bitrate_kbps, .bytes, .psnr, .file] | @tsv' "$M" |
    awk -F'\t' '{ printf "%-10s %7d %10.1f %10d %8.2f  out/video/%s\n", $1 "x" $2, $3, $4, $5, $6, $7 }'
echo
printf '%-8s %8s %9s   %s\n' group wall_s speed-up stages
for g in 1 "$GROUP"; do
    f="$HOME_DIR/g1.tar" w=$W1
    [ "$g" = 1 ] || { f="$HOME_DIR/g.tar"; w=$WG; }
    stages=$(tar -xOf "$f" manifest.json | jq -r '.stages_ms | "decode \(.decode | round) ms, scatter \(.scatter | round) ms, encode \(.encode | round) ms, shuffle \(.shuffle | round) ms, gather \(.gather | round) ms"')
    printf '%-8s %8.2f %8.2fx   %s\n' "$g" "$w" "$(awk -v a="$W1" -v b="$w" 'BEGIN { print a / b }')" "$stages"
done
echo
echo "The renditions and manifest.json are in out/video/ (play one: ffplay out/video/$(jq -r '.renditions[0].file' "$M"))."
echo "Stopping the platform."
