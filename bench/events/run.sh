#!/bin/bash
# bench/events - events with durable storage, on this machine:
#  1. async invocations accepted per second (POST ...?async=1 answered 202 only after the group
#     commit is fsynced), with 1, 16 and 64 keep-alive clients (wrk), and the time the store spent
#     committing (fsync) over the run, from /metrics;
#  2. event-to-start latency: publish to a topic -> the subscriber function starts, p50/p99
#     (events sent one at a time, every 5 ms), and the mean fsync (COMMIT) time per commit over
#     that run: the part of the latency spent making the event durable.
# Writes bench/results/events.json and bench/results/events.png.
# Usage: bench/events/run.sh BUILD_DIR [SECONDS_PER_WRK_RUN]
set -euo pipefail
NAME=events
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
DUR=${2:-5}

metric() { curl -fs "$URL/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

echo "== bench/events ($(nproc) cores, wrk ${DUR}s per point)"
CP=$(free_port); WP=$(free_port)
"$BUILD/shoal-controller" --listen "127.0.0.1:$CP" --worker-listen "127.0.0.1:$WP" --home "$WORK/home" \
    --async-max 10000000 2>"$WORK/controller.log" & PIDS+=($!)
URL="http://127.0.0.1:$CP"
wait_http "$URL/healthz"
"$BUILD/shoal-worker" --controller "127.0.0.1:$WP" --home "$WORK/home/worker" --node bench \
    2>"$WORK/worker.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "$URL/v1/workers" | grep -q '"bench"' && break; sleep 0.05; done
curl -fs -o /dev/null -T "$BUILD/examples/echo.so" "$URL/v1/functions/echo"
curl -fs -o /dev/null -T "$BUILD/bench/events/fn/stamp.so" "$URL/v1/functions/stamp?min_warm=1"
curl -fs -o /dev/null -X PUT -d '{"function":"stamp","type":"topic","topic":"bench"}' "$URL/v1/triggers/stampsub"

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 256)
LUA
printf '%-6s %12s %10s %10s %10s %12s %12s %14s\n' conns accepted/s p50_us p99_us commits ops/commit fsync_ms/s fsync_us/commit
ROWS=""
for c in 1 16 64; do
    c0=$(metric shoal_store_commits_total); o0=$(metric shoal_store_ops_total); f0=$(metric shoal_store_fsync_seconds_total)
    out=$(wrk -t1 -c"$c" -d"${DUR}s" --latency -H "$(auth_header)" -s "$WORK/post.lua" \
        "$URL/v1/functions/echo/invoke?async=1" 2>&1)
    c1=$(metric shoal_store_commits_total); o1=$(metric shoal_store_ops_total); f1=$(metric shoal_store_fsync_seconds_total)
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
    p50=$(to_us "$(echo "$out" | awk '$1 == "50%" { print $2 }')")
    p99=$(to_us "$(echo "$out" | awk '$1 == "99%" { print $2 }')")
    commits=$((c1 - c0)); ops=$((o1 - o0))
    opc=$(awk -v o="$ops" -v c="$commits" 'BEGIN { printf "%.1f", c ? o / c : 0 }')
    fs=$(awk -v a="$f0" -v b="$f1" -v d="$DUR" 'BEGIN { printf "%.1f", (b - a) * 1000 / d }')
    fpc=$(awk -v a="$f0" -v b="$f1" -v c="$commits" 'BEGIN { printf "%.1f", c ? (b - a) * 1e6 / c : 0 }')
    printf '%-6s %12s %10s %10s %10s %12s %12s %14s\n' "$c" "$rps" "$p50" "$p99" "$commits" "$opc" "$fs" "$fpc"
    echo "$c $rps $p50 $p99" >>"$WORK/accept.dat"
    ROWS="$ROWS${ROWS:+,}{\"conns\":$c,\"accepted_per_s\":$rps,\"p50_us\":$p50,\"p99_us\":$p99,\"commits\":$commits,\"ops_per_commit\":$opc,\"fsync_ms_per_s\":$fs,\"fsync_us_per_commit\":$fpc}"
done
# Let the accepted backlog drain before measuring latency (the runner is busy until then).
for _ in $(seq 1 600); do
    q=$(metric shoal_async_queued); r=$(metric shoal_async_running)
    [ "${q:-0}" = 0 ] && [ "${r:-0}" = 0 ] && break
    sleep 0.5
done
c0=$(metric shoal_store_commits_total); f0=$(metric shoal_store_fsync_seconds_total)
read -r L50 L99 LMAX LN < <("$BUILD/bench/events/latency" "$URL" bench stamp 500 5000)
c1=$(metric shoal_store_commits_total); f1=$(metric shoal_store_fsync_seconds_total)
# A publication's 202 waits for one commit (the event's deliveries); the start of the subscriber
# does not wait for another. So the fsync share of event-to-start is about one commit's time.
LFPC=$(awk -v a="$f0" -v b="$f1" -v c0="$c0" -v c1="$c1" 'BEGIN { printf "%.1f", (c1 > c0) ? (b - a) * 1e6 / (c1 - c0) : 0 }')
echo "event-to-start (publish -> function start, $LN events): p50 ${L50} us, p99 ${L99} us, max ${LMAX} us"
echo "  of which fsync: ${LFPC} us per commit (mean over the $((c1 - c0)) commits of this run)"
cat >"$RES/events.json" <<JSON
{"benchmark":"events","cores":$(nproc),"seconds_per_point":$DUR,
 "async_accept":[$ROWS],
 "event_to_start":{"events":$LN,"p50_us":$L50,"p99_us":$L99,"max_us":$LMAX,"fsync_us_per_commit":$LFPC},
 "notes":"202 is sent after the group commit (SQLite WAL, synchronous=FULL) returns; fsync time is the time spent in COMMIT"}
JSON
if command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal pngcairo size 800,480 noenhanced
set output "$RES/events.png"
set title "Async invocations accepted per second (durable, group commit)"
set xlabel "keep-alive clients"; set ylabel "accepted/s"; set y2label "p99 us"; set y2tics
set logscale x 2; set grid
plot "$WORK/accept.dat" using 1:2 with linespoints title "accepted/s", \
     "" using 1:4 axes x1y2 with linespoints title "p99 latency of the 202 (us)"
GP
fi
echo "wrote $RES/events.json"
