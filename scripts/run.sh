#!/bin/bash
# What `make run` executes after building: starts the platform (`shoal up`) with the examples
# deployed, prints what to try, and keeps it in the foreground until Ctrl-C.
# Usage: scripts/run.sh BUILD_DIR
# Environment: SHOAL_LISTEN (ADDR:PORT of the API, default 127.0.0.1:8080) and SHOAL_HOME (state
# directory, default ./.shoal), passed to `shoal up --listen/--home`. The API token is the one
# `shoal up` prints (kept in STATE/token); the shoal commands below find it there.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd) || { echo "run: no build directory ${1:-build}" >&2; exit 1; }
SHOAL="$BUILD/shoal"
cd "$SRC" || exit 1

LISTEN=${SHOAL_LISTEN:-127.0.0.1:8080}
STATE=${SHOAL_HOME:-.shoal}
host=${LISTEN%:*}
port=${LISTEN##*:}
case "$host" in
0.0.0.0) host=127.0.0.1 ;;
"[::]") host="[::1]" ;;
esac
export SHOAL_URL="http://$host:$port"

for f in "$SHOAL" "$BUILD/shoal-controller" "$BUILD/shoal-worker" "$BUILD/shoal-runtime"; do
    [ -x "$f" ] || { echo "run: $f is missing; run make first" >&2; exit 1; }
done

"$SHOAL" up --listen "$LISTEN" --home "$STATE" &
pid=$!
# Ctrl-C reaches `shoal up` directly too (same process group); forwarding makes sure it also
# stops when only this script is signalled. `shoal up` stops its children once either way.
trap 'kill -INT "$pid" 2>/dev/null' INT TERM

# Wait for the API (shoal up gives up by itself after 10 s and exits).
ready=0
for _ in $(seq 1 150); do
    if ! kill -0 "$pid" 2>/dev/null; then
        break
    fi
    if "$SHOAL" --home "$STATE" ls >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ "$ready" -ne 1 ]; then
    wait "$pid"
    rc=$?
    echo "run: the platform did not start (exit status $rc); see the messages above" >&2
    exit $(( rc == 0 ? 1 : rc ))
fi

deploy() {
    "$SHOAL" --home "$STATE" deploy "$@" || echo "run: could not deploy $1 (see above)" >&2
}
deploy hello "$BUILD/examples/hello.so"
deploy upper examples/upper/upper.c
deploy chain "$BUILD/examples/chain.so"
deploy echo "$BUILD/examples/echo.so"
deploy wordcount "$BUILD/examples/wordcount.so"
deploy allreduce "$BUILD/examples/allreduce.so" --memory-mb 1024
# The video pipeline decodes a whole clip in rank 0: 1 GiB holds the 280-frame 720p sample.
deploy video-abr "$BUILD/examples/video-abr.so" --memory-mb 1024 --timeout-ms 600000

# How the printed commands find the token: the shoal command reads ./.shoal/token by itself;
# curl is given the header explicitly.
if [ "$STATE" = ".shoal" ]; then
    homenote=""
else
    homenote="  export SHOAL_TOKEN=\$(cat $STATE/token)
"
fi
auth="-H \"Authorization: Bearer \$(cat $STATE/token)\""
if [ "$SHOAL_URL" = "http://127.0.0.1:8080" ]; then
    api=localhost:8080
    urlnote=""
else
    api=$SHOAL_URL
    urlnote="  export SHOAL_URL=$SHOAL_URL
"
fi
cat <<TRY

Shoal is running with hello, upper, chain, echo, wordcount, allreduce and video-abr deployed.
Try, in another terminal:

  cd $SRC
  export PATH=$BUILD:\$PATH
${urlnote}${homenote}  cc -shared -fPIC -I include examples/hello/hello.c -o hello.so
  shoal deploy hello hello.so            # or: curl $auth -T hello.so $api/v1/functions/hello
  shoal deploy upper examples/upper/upper.c   # C source is compiled by the platform
  echo -n hi | shoal invoke hello        # or: curl $auth --data-binary hi $api/v1/functions/hello/invoke
  echo -n fish | shoal invoke chain      # shoal_call: upper, then hello
  shoal ls ; shoal workers ; shoal rm hello
  shoal logs wordcount -f                # what functions shoal_log (Ctrl-C stops following)
  examples/video/fetch-sample.sh          # a real 720p clip, then encode it with a group of 2:
  curl -s $auth --data-binary @examples/video/cockatoo.mp4 -o abr.tar "$api/v1/functions/video-abr/invoke?group=2"
  examples/wordcount/fetch-text.sh /tmp/fortunes.txt   # a real text, then count its words with 4 ranks:
  curl -s $auth --data-binary @/tmp/fortunes.txt "$api/v1/functions/wordcount/invoke?group=4&top=10"
  curl -s $auth -X POST "$api/v1/functions/allreduce/invoke?group=2&n=16777216&steps=3"

The API wants the token printed above (also in $STATE/token): the shoal command finds it there by
itself (or set SHOAL_TOKEN); curl sends it with $auth.
Ctrl-C here stops the platform; its state stays in $STATE.
TRY

# Wait for `shoal up` to finish: a trapped Ctrl-C interrupts `wait`, so wait again until it has
# gone, then once more for its exit status (bash keeps it).
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid"
done
wait "$pid"
exit $?
