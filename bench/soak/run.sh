#!/bin/bash
# bench/soak - a steady invoke load against a controller and a worker (what `shoal up` runs) for
# SOAK_SECONDS (default 600), sampling the RSS and open fds of both every SOAK_SAMPLE seconds
# (default 5), with an overload burst in the middle: SOAK_OVERLOAD_CONNS (48) callers of a slow
# function limited to 2 instances, against a controller whose queue holds 16, so most of them
# must get 429 with Retry-After. Then:
#  - flat: the average over the last window must be within max(2 MiB, 5%) of the average over
#    the first window for RSS and within 2 for fds, where a window is min(60 s, duration/4) and the
#    first starts after a warm-up of min(30 s, duration/10). The overload burst lies between the
#    two windows, so what it leaves behind counts;
#  - every overloaded caller got 200 or 429, every 429 had Retry-After, no transport error, and
#    the controller and the worker are the processes they were at the start.
# Writes bench/results/soak.json and bench/results/soak.png. Exits 1 when a check fails.
# Usage: bench/soak/run.sh BUILD_DIR          (env: SOAK_SECONDS, SOAK_SAMPLE, SOAK_RATE,
#                                                SOAK_CONNS, SOAK_OVERLOAD_CONNS)
# `make bench` runs it with the default 600 s; SOAK_SECONDS=60 make bench shortens it.
set -euo pipefail
NAME=soak
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
DUR=${SOAK_SECONDS:-600}
SAMPLE=${SOAK_SAMPLE:-5}
RATE=${SOAK_RATE:-200}
CONNS=${SOAK_CONNS:-4}
OCONNS=${SOAK_OVERLOAD_CONNS:-48}
QUEUE=16
if [ "$DUR" -lt 20 ]; then echo "bench/soak: SOAK_SECONDS must be at least 20" >&2; exit 2; fi
OVER=$((DUR / 6 < 20 ? DUR / 6 : 20))
WARM=$((DUR / 10 < 30 ? DUR / 10 : 30))
WIN=$((DUR / 4 < 60 ? DUR / 4 : 60))

echo "== bench/soak ($(nproc) cores, ${DUR}s at ${RATE} invocations/s over $CONNS connections," \
    "${OVER}s of overload by $OCONNS callers in the middle)"
CP=$(free_port); WP=$(free_port)
"$BUILD/shoal-controller" --listen "127.0.0.1:$CP" --worker-listen "127.0.0.1:$WP" \
    --home "$WORK/home" --queue-max "$QUEUE" 2>"$WORK/controller.log" & CPID=$!; PIDS+=("$CPID")
URL="http://127.0.0.1:$CP"
wait_http "$URL/healthz"
TOKEN=""
[ -f "$WORK/home/token" ] && TOKEN=$(tr -d '\r\n' <"$WORK/home/token")
AUTH=(); [ -n "$TOKEN" ] && AUTH=(-H "Authorization: Bearer $TOKEN")
KEY=(); [ -f "$WORK/home/cluster.key" ] && KEY=(--cluster-key-file "$WORK/home/cluster.key")
"$BUILD/shoal-worker" --controller "127.0.0.1:$WP" --home "$WORK/home/worker" --node soak \
    "${KEY[@]}" 2>"$WORK/worker.log" & WPID=$!; PIDS+=("$WPID")
for _ in $(seq 1 100); do curl -fs "${AUTH[@]}" "$URL/v1/workers" | grep -q '"soak"' && break; sleep 0.05; done
curl -fs -o /dev/null "${AUTH[@]}" -T "$BUILD/examples/echo.so" "$URL/v1/functions/echo?min_warm=2"
curl -fs -o /dev/null "${AUTH[@]}" -T "$BUILD/bench/soak/fn/nap.so" \
    "$URL/v1/functions/nap?min_warm=2&max_instances=2&timeout_ms=10000"
# Both pools are warm before the first sample: instances the load starts later would count as
# the worker's growth (each holds a few fds), and min_warm = max_instances keeps nap's constant.
for _ in $(seq 1 100); do
    [ "$(curl -fs "${AUTH[@]}" "$URL/v1/workers" | grep -o '"warm":[2-9]' | wc -l)" -ge 2 ] && break
    sleep 0.1
done

sample() { # t pid -> "rss_kib fds"
    local rss fds
    rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0)
    fds=$(find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    echo "${rss:-0} $fds"
}

export SHOAL_TOKEN="$TOKEN" # the load client's token (not in its argv)
"$BUILD/bench/soak/load" 127.0.0.1 "$CP" /v1/functions/echo/invoke "$CONNS" "$DUR" \
    "$RATE" 1024 0 >"$WORK/steady.json" 2>"$WORK/steady.err" & LPID=$!; PIDS+=("$LPID")
T0=$(date +%s.%N)
OSTART=$(((DUR - OVER) / 2))
OPID=""
: >"$WORK/samples.dat"
while kill -0 "$LPID" 2>/dev/null; do
    t=$(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    if [ -z "$OPID" ] && awk -v t="$t" -v s="$OSTART" 'BEGIN { exit !(t >= s) }'; then
        # The overload callers retry 20 ms after a 429, keeping the queue full.
        "$BUILD/bench/soak/load" 127.0.0.1 "$CP" /v1/functions/nap/invoke "$OCONNS" \
            "$OVER" 0 0 20 >"$WORK/overload.json" 2>"$WORK/overload.err" & OPID=$!; PIDS+=("$OPID")
        OT=$t
    fi
    kill -0 "$CPID" 2>/dev/null || { echo "bench/soak: the controller died" >&2; tail "$WORK/controller.log" >&2; exit 1; }
    kill -0 "$WPID" 2>/dev/null || { echo "bench/soak: the worker died" >&2; tail "$WORK/worker.log" >&2; exit 1; }
    echo "$t $(sample "$CPID") $(sample "$WPID")" >>"$WORK/samples.dat"
    sleep "$SAMPLE"
done
wait "$LPID"
[ -n "$OPID" ] && wait "$OPID"

# Flatness: first window after the warm-up against the last window.
read -r C_RSS0 C_FD0 W_RSS0 W_FD0 C_RSS1 C_FD1 W_RSS1 W_FD1 < <(awk -v w0="$WARM" -v win="$WIN" -v d="$DUR" '
    $1 >= w0 && $1 < w0 + win { n0++; a[2] += $2; a[3] += $3; a[4] += $4; a[5] += $5 }
    $1 >= d - win { n1++; b[2] += $2; b[3] += $3; b[4] += $4; b[5] += $5 }
    END { if (!n0) n0 = 1; if (!n1) n1 = 1
          printf "%.0f %.1f %.0f %.1f %.0f %.1f %.0f %.1f\n", a[2]/n0, a[3]/n0, a[4]/n0, a[5]/n0,
                 b[2]/n1, b[3]/n1, b[4]/n1, b[5]/n1 }' "$WORK/samples.dat")
flat_rss() { awk -v a="$1" -v b="$2" 'BEGIN { s = a * 0.05; if (s < 2048) s = 2048; exit !(b - a <= s) }'; }
flat_fd() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b - a <= 2) }'; }
verdict=flat
flat_rss "$C_RSS0" "$C_RSS1" || verdict="controller RSS grew"
flat_rss "$W_RSS0" "$W_RSS1" || verdict="worker RSS grew"
flat_fd "$C_FD0" "$C_FD1" || verdict="controller fds grew"
flat_fd "$W_FD0" "$W_FD1" || verdict="worker fds grew"

STEADY=$(cat "$WORK/steady.json")
OVERLOAD=$(cat "$WORK/overload.json" 2>/dev/null || echo '{}')
field() { echo "$1" | sed -n "s/.*\"$2\":\([0-9.]*\).*/\1/p"; }
o429=$(field "$OVERLOAD" s429); ora=$(field "$OVERLOAD" s429_retry_after)
oother=$(field "$OVERLOAD" other); oerr=$(field "$OVERLOAD" errors)
sother=$(field "$STEADY" other); serr=$(field "$STEADY" errors)
overload_ok=yes
if [ "${o429:-0}" -eq 0 ] || [ "$o429" != "$ora" ] || [ "${oother:-1}" -ne 0 ] || [ "${oerr:-1}" -ne 0 ]; then
    overload_ok=no
fi
steady_ok=yes
if [ "${sother:-1}" -ne 0 ] || [ "${serr:-1}" -ne 0 ]; then steady_ok=no; fi

echo "steady:   $STEADY"
echo "overload: $OVERLOAD"
printf 'controller RSS %s -> %s KiB, fds %s -> %s; worker RSS %s -> %s KiB, fds %s -> %s (first %ss window after %ss vs last %ss)\n' \
    "$C_RSS0" "$C_RSS1" "$C_FD0" "$C_FD1" "$W_RSS0" "$W_RSS1" "$W_FD0" "$W_FD1" "$WIN" "$WARM" "$WIN"
echo "verdict: $verdict; overload answered 200/429+Retry-After only: $overload_ok; steady load without errors: $steady_ok"

SAMPLES=$(awk '{ printf "%s[%s,%s,%s,%s,%s]", (NR > 1 ? "," : ""), $1, $2, $3, $4, $5 }' "$WORK/samples.dat")
cat >"$RES/soak.json" <<JSON
{"benchmark":"soak","cores":$(nproc),"seconds":$DUR,"sample_s":$SAMPLE,"rate_per_s":$RATE,"conns":$CONNS,
 "steady":$STEADY,
 "overload":{"callers":$OCONNS,"start_s":${OT:-0},"seconds":$OVER,"queue_max":$QUEUE,"max_instances":2,"result":$OVERLOAD},
 "windows":{"warmup_s":$WARM,"window_s":$WIN,
   "controller":{"rss_kib_first":$C_RSS0,"rss_kib_last":$C_RSS1,"fds_first":$C_FD0,"fds_last":$C_FD1},
   "worker":{"rss_kib_first":$W_RSS0,"rss_kib_last":$W_RSS1,"fds_first":$W_FD0,"fds_last":$W_FD1}},
 "bound":"last-window average <= first-window average + max(2 MiB, 5%) for RSS, + 2 for fds",
 "verdict":"$verdict","overload_ok":"$overload_ok","steady_ok":"$steady_ok",
 "samples_columns":["t_s","controller_rss_kib","controller_fds","worker_rss_kib","worker_fds"],
 "samples":[$SAMPLES]}
JSON
if command -v gnuplot >/dev/null; then
    gnuplot <<GP
set terminal pngcairo size 900,520 noenhanced
set output "$RES/soak.png"
set title "Soak: ${RATE} invocations/s for ${DUR} s, overload burst at ${OT:-0} s"
set xlabel "seconds"; set ylabel "RSS (MiB)"; set y2label "open fds"; set y2tics; set grid
set yrange [0:*]; set y2range [0:*]
set object 1 rect from ${OT:-0}, graph 0 to $(( ${OT%.*} + OVER )), graph 1 fc rgb "#eeeeee" behind
plot "$WORK/samples.dat" using 1:(\$2/1024) with lines lw 2 title "controller RSS", \
     "" using 1:(\$4/1024) with lines lw 2 title "worker RSS", \
     "" using 1:3 axes x1y2 with lines dt 2 title "controller fds", \
     "" using 1:5 axes x1y2 with lines dt 2 title "worker fds"
GP
fi
echo "wrote $RES/soak.json"
[ "$verdict" = flat ] && [ "$overload_ok" = yes ] && [ "$steady_ok" = yes ]
