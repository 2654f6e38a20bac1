#!/bin/bash
# bench/invoke - Shoal's invoke path against the floor it sits on, in one run on this machine:
#  1. warm sync invoke of a 1 KiB echo function under 1, 8 and 64 keep-alive clients (wrk), against
#     a bare h2o echo server built from the same libraries (targets: p50 <= 1.5x, rps >= 0.5x);
#  2. shoal_call round trip between two warm functions on one node, against a bare two-process
#     futex ping-pong over shared memory (targets: p50 <= 20 us and <= 3x the ping-pong);
#  3. first invocation of a freshly deployed function (stem specialisation) vs a warm one
#     (target: <= 5 ms).
# Writes bench/results/invoke.json and bench/results/invoke.png.
# Usage: bench/invoke/run.sh BUILD_DIR [SECONDS_PER_WRK_RUN]
set -euo pipefail
NAME=invoke
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
DUR=${2:-5}

cat >"$WORK/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
LUA

# run_wrk URL CONNS -> "p50_us p99_us rps errors"
run_wrk() {
    local out
    out=$(wrk -t1 -c"$2" -d"${DUR}s" --latency -H "$(auth_header)" -s "$WORK/post.lua" "$1" 2>&1)
    local p50 p99 rps err
    p50=$(echo "$out" | awk '$1 == "50%" { print $2 }')
    p99=$(echo "$out" | awk '$1 == "99%" { print $2 }')
    rps=$(echo "$out" | awk '/^Requests\/sec:/ { print $2 }')
    err=$(echo "$out" | awk '/Non-2xx/ { print $NF } /Socket errors/ { print "sock" }' | head -1)
    echo "$(to_us "$p50") $(to_us "$p99") $rps ${err:-0}"
}

echo "== bench/invoke ($(nproc) cores, wrk ${DUR}s per point)"
# 1. The bare h2o server.
HP=$(free_port)
"$BUILD/bench/invoke/h2o_echo" "$HP" & PIDS+=($!)
wait_http "http://127.0.0.1:$HP/"

# Shoal: a controller and one worker, state in a scratch home.
CP=$(free_port); WP=$(free_port)
"$BUILD/shoal-controller" --listen "127.0.0.1:$CP" --worker-listen "127.0.0.1:$WP" --home "$WORK/home" \
    2>"$WORK/controller.log" & PIDS+=($!)
wait_http "http://127.0.0.1:$CP/healthz"
"$BUILD/shoal-worker" --controller "127.0.0.1:$WP" --home "$WORK/home/worker" --node bench \
    2>"$WORK/worker.log" & PIDS+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$CP/v1/workers" | grep -q '"bench"' && break; sleep 0.05; done
URL="http://127.0.0.1:$CP"
curl -fs -o /dev/null -T "$BUILD/examples/echo.so" "$URL/v1/functions/echo?min_warm=2"
curl -fs -o /dev/null -T "$BUILD/bench/invoke/fn/callbench.so" "$URL/v1/functions/callbench"
curl -fs -o /dev/null --data-binary warm "$URL/v1/functions/echo/invoke"

declare -A R
printf '%-8s %-6s %10s %10s %12s   %s\n' system conns p50_us p99_us req_per_s errors
for c in 1 8 64; do
    read -r p50 p99 rps err <<<"$(run_wrk "http://127.0.0.1:$HP/" "$c")"
    R[h2o_$c]="$p50 $p99 $rps"
    printf '%-8s %-6s %10s %10s %12s   %s\n' h2o "$c" "$p50" "$p99" "$rps" "$err"
    read -r p50 p99 rps err <<<"$(run_wrk "$URL/v1/functions/echo/invoke" "$c")"
    R[shoal_$c]="$p50 $p99 $rps"
    printf '%-8s %-6s %10s %10s %12s   %s\n' shoal "$c" "$p50" "$p99" "$rps" "$err"
done

# 2. shoal_call round trip vs a futex ping-pong.
# Three runs of each, keeping the one with the median p50: on a small VM a single run swings with
# where the scheduler happens to place the two sides.
median_run() { sort -t: -k3 -g | sed -n 2p; }
PP=$(for _ in 1 2 3; do "$BUILD/bench/invoke/pingpong" 20000; done | median_run)
CB=$(for _ in 1 2 3; do curl -fs --data-binary 20000 "$URL/v1/functions/callbench/invoke"; echo; done | grep p50 | median_run)
pp50=$(echo "$PP" | sed 's/.*"p50_us": \([0-9.]*\).*/\1/'); pp99=$(echo "$PP" | sed 's/.*"p99_us": \([0-9.]*\).*/\1/')
cb50=$(echo "$CB" | sed 's/.*"p50_us": \([0-9.]*\).*/\1/'); cb99=$(echo "$CB" | sed 's/.*"p99_us": \([0-9.]*\).*/\1/')
echo "shoal_call round trip: p50 ${cb50} us p99 ${cb99} us; futex ping-pong: p50 ${pp50} us p99 ${pp99} us"

# 3. Cold (first invocation after deploy) vs warm.
COLD=() WARM=()
for i in $(seq 1 20); do
    curl -fs -o /dev/null -T "$BUILD/examples/echo.so" "$URL/v1/functions/cold$i"
    COLD+=("$(curl -fs -o /dev/null -w '%{time_total}' --data-binary x "$URL/v1/functions/cold$i/invoke")")
    WARM+=("$(curl -fs -o /dev/null -w '%{time_total}' --data-binary x "$URL/v1/functions/cold$i/invoke")")
    curl -fs -o /dev/null -X DELETE "$URL/v1/functions/cold$i"
done
median_ms() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { printf "%.3f", a[int((NR + 1) / 2)] * 1000 }'; }
cold=$(median_ms "${COLD[@]}"); warm=$(median_ms "${WARM[@]}")
echo "first invocation after deploy: median ${cold} ms; warm: median ${warm} ms (curl, end to end)"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo
echo "ratios (shoal / h2o):"
for c in 1 8 64; do
    read -r sp50 sp99 srps <<<"${R[shoal_$c]}"; read -r hp50 hp99 hrps <<<"${R[h2o_$c]}"
    echo "  conns=$c: p50 $(ratio "$sp50" "$hp50")x (target <= 1.5)   throughput $(ratio "$srps" "$hrps")x (target >= 0.5)"
done
echo "  shoal_call p50 / ping-pong p50: $(ratio "$cb50" "$pp50")x (target <= 3, and p50 <= 20 us: ${cb50} us)"
echo "  cold start: ${cold} ms (target <= 5 ms)"

{
    echo "{"
    echo "  \"machine\": {\"cores\": $(nproc), \"kernel\": \"$(uname -r)\"},"
    echo "  \"wrk_seconds\": $DUR, \"body_bytes\": 1024,"
    echo "  \"invoke\": ["
    first=1
    for c in 1 8 64; do
        for s in h2o shoal; do
            read -r p50 p99 rps <<<"${R[${s}_$c]}"
            [ $first -eq 1 ] || echo ","
            first=0
            printf '    {"system": "%s", "conns": %s, "p50_us": %s, "p99_us": %s, "rps": %s}' "$s" "$c" "$p50" "$p99" "$rps"
        done
    done
    echo
    echo "  ],"
    echo "  \"shoal_call\": $CB,"
    echo "  \"futex_pingpong\": $PP,"
    echo "  \"cold_start_ms\": {\"first_invoke_median\": $cold, \"warm_invoke_median\": $warm}"
    echo "}"
} >"$RES/invoke.json"

# Plot: p50 latency and throughput per concurrency, both systems.
for c in 1 8 64; do
    read -r hp50 _ hrps <<<"${R[h2o_$c]}"; read -r sp50 _ srps <<<"${R[shoal_$c]}"
    echo "$c $hp50 $sp50 $hrps $srps"
done >"$WORK/plot.dat"
gnuplot <<GP
set terminal pngcairo size 1000,420 font ",10"
set output "$RES/invoke.png"
set multiplot layout 1,2 title "Warm invoke of a 1 KiB echo: Shoal vs bare h2o ($(nproc) cores)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set xlabel "concurrent keep-alive clients"
set ylabel "p50 latency (us)"
set key top left
plot "$WORK/plot.dat" using 2:xtic(1) title "h2o echo", "" using 3 title "Shoal invoke"
set ylabel "requests per second"
plot "$WORK/plot.dat" using 4:xtic(1) title "h2o echo", "" using 5 title "Shoal invoke"
unset multiplot
GP
echo "results: $RES/invoke.json $RES/invoke.png"
