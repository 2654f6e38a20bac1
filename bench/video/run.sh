#!/bin/bash
# bench/video - the video-abr pipeline (examples/video) on the real sample clip, side by side with
# its baselines, in one run on this machine:
#  1. Shoal, shared-memory transport, groups of 1, 2, 4 and 8 at 24-frame chunks;
#  2. the single-process baseline (build/bench/video/baseline): the same decoding and encoding
#     code in one plain process with libvpx's own threads (one per core), as one continuous stream
#     per rendition and in 24-frame chunks; and once with one libvpx thread as one continuous
#     stream, the reference for the output-size overhead of chunking (each rank encodes with one
#     thread, and libvpx's multithreaded encoder makes different decisions);
#  3. Shoal with a group of CHUNK_GROUP ranks at chunks of 6, 12, 24 and 48 frames, over shared
#     memory and over the Redis backend (?transport=redis; the controller runs with --redis and
#     this script starts redis-server on a free loopback port). When the controller has no
#     --redis option yet, the Redis rows are reported as pending.
# Every point runs once per round, for VIDEO_REPS rounds, and its best (lowest) time is kept: the
# machine is shared, and rounds spread a burst of load from elsewhere over many points.
# It prints end-to-end time (curl's, upload and download included; the baseline's process wall
# time), speed-up against group=1 and against the baseline, efficiency against the ideal (total
# encode CPU time of all ranks / cores, divided by the end-to-end time), the output-size overhead
# of chunking against one continuous stream, and the mean PSNR of the renditions.
# Writes bench/results/video.json and bench/results/video.png.
#
# Usage: bench/video/run.sh BUILD_DIR
# Environment (to shorten a run): VIDEO_REPS (rounds, best of them kept per point; default 3),
# VIDEO_GROUPS ("1 2 4 8"), VIDEO_CHUNKS ("6 12 24 48"), VIDEO_CHUNK_GROUP (2),
# VIDEO_INPUT (default examples/video/cockatoo.mp4, fetched by examples/video/fetch-sample.sh).
set -euo pipefail
NAME=video
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../lib.sh"
REPS=${VIDEO_REPS:-3}
GROUP_SIZES=${VIDEO_GROUPS:-"1 2 4 8"}
CHUNKS=${VIDEO_CHUNKS:-"6 12 24 48"}
CG=${VIDEO_CHUNK_GROUP:-2}
INPUT=${VIDEO_INPUT:-$SRC/examples/video/cockatoo.mp4}
CORES=$(nproc)

for t in jq curl tar; do
    command -v "$t" >/dev/null || { echo "bench/video: $t is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ -z "${VIDEO_INPUT:-}" ]; then
    "$SRC/examples/video/fetch-sample.sh" "$INPUT" >"$WORK/probe.txt" 2>"$WORK/fetch.log" || {
        cat "$WORK/fetch.log" >&2
        echo "bench/video: the sample clip could not be fetched; no benchmark without real footage" >&2
        exit 1
    }
fi
[ -s "$INPUT" ] || { echo "bench/video: no input $INPUT" >&2; exit 1; }

echo "== bench/video ($CORES cores, best of $REPS per point, input $(basename "$INPUT"), $(stat -c %s "$INPUT") bytes)"

# ---- the platform: a controller (with Redis when it supports it) and one worker ----
REDIS_URL=""
if "$BUILD/shoal-controller" --help 2>&1 | grep -q -- '--redis'; then
    if command -v redis-server >/dev/null; then
        RP=$(free_port)
        redis-server --bind 127.0.0.1 --port "$RP" --save "" --appendonly no \
            --protected-mode yes >"$WORK/redis.log" 2>&1 & PIDS+=($!)
        for _ in $(seq 1 100); do
            (echo >"/dev/tcp/127.0.0.1/$RP") 2>/dev/null && break
            sleep 0.05
        done
        REDIS_URL="redis://127.0.0.1:$RP"
    else
        echo "bench/video: redis-server is missing; Redis rows skipped" >&2
    fi
fi
CP=$(free_port); WP=$(free_port)
"$BUILD/shoal-controller" --listen "127.0.0.1:$CP" --worker-listen "127.0.0.1:$WP" \
    --home "$WORK/home" ${REDIS_URL:+--redis "$REDIS_URL"} 2>"$WORK/controller.log" & PIDS+=($!)
URL="http://127.0.0.1:$CP"
wait_http "$URL/healthz" || { cat "$WORK/controller.log" >&2; exit 1; }
# The controller writes its API token and the cluster key into its home before it listens.
AUTH=()
[ -s "$WORK/home/token" ] && AUTH=(-H "Authorization: Bearer $(cat "$WORK/home/token")")
KEYARG=()
[ -s "$WORK/home/cluster.key" ] && KEYARG=(--cluster-key-file "$WORK/home/cluster.key")
"$BUILD/shoal-worker" --controller "127.0.0.1:$WP" --home "$WORK/home/worker" --node bench \
    --slots 16 "${KEYARG[@]}" 2>"$WORK/worker.log" & PIDS+=($!)
for _ in $(seq 1 200); do curl -fs "${AUTH[@]}" "$URL/v1/workers" | grep -q '"bench"' && break; sleep 0.05; done
# Rank 0 holds the whole decoded clip (387 MB) and, when the transport copies, the scattered
# frames again.
curl -fs "${AUTH[@]}" -o /dev/null -T "$BUILD/examples/video-abr.so" \
    "$URL/v1/functions/video-abr?memory_mb=2048&timeout_ms=600000"

# Warm the pool: a tiny clip through the largest group, so that no point pays for starting
# instances.
ffmpeg -nostdin -loglevel error -y -f lavfi -i testsrc2=size=64x48:rate=20 -frames:v 8 \
    -c:v ffv1 "$WORK/warm.mkv"
maxg=$(for g in $GROUP_SIZES $CG; do echo "$g"; done | sort -n | tail -1)
curl -fs "${AUTH[@]}" -o /dev/null --data-binary @"$WORK/warm.mkv" "$URL/v1/functions/video-abr/invoke?group=$maxg"
[ -n "$REDIS_URL" ] && curl -fs "${AUTH[@]}" -o /dev/null --data-binary @"$WORK/warm.mkv" \
    "$URL/v1/functions/video-abr/invoke?group=$CG&transport=redis" 2>/dev/null

# One invocation; prints "wall_s" and leaves the manifest in $WORK/m.json. Fails loudly.
invoke_once() {
    local q=$1 code wall
    read -r code wall < <(curl -s "${AUTH[@]}" -o "$WORK/out.tar" -w '%{http_code} %{time_total}\n' \
        --data-binary @"$INPUT" "$URL/v1/functions/video-abr/invoke?$q")
    if [ "$code" != 200 ]; then
        echo "bench/video: ?$q answered $code: $(head -c 400 "$WORK/out.tar")" >&2
        return 1
    fi
    tar -xOf "$WORK/out.tar" manifest.json >"$WORK/m.json"
    echo "$wall"
}

# One baseline run; prints its process wall time and leaves its JSON in $WORK/b.json.
baseline_once() {
    local t0 t1
    t0=$(date +%s.%N)
    "$BUILD/bench/video/baseline" --json "$WORK/b.json" "$@" "$INPUT" >"$WORK/b.txt"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

# Keeps the best (lowest) wall time per point: BEST[key] and $WORK/best-<key>.json (from $2).
declare -A BEST
keep_best() { # key wall json
    if [ -z "${BEST[$1]:-}" ] || awk -v a="$2" -v b="${BEST[$1]}" 'BEGIN { exit !(a < b) }'; then
        BEST[$1]=$2
        cp "$3" "$WORK/best-$1.json"
    fi
}

# The figures of one Shoal point from $WORK/best.json, as a JSON object.
point_json() { # transport key
    jq -c --arg transport "$1" --argjson wall "${BEST[$2]}" --argjson cores "$CORES" '{
        transport: $transport, group: .group_size, chunk_frames: .params.chunk_frames,
        chunks: .chunks, wall_s: $wall, stages_ms: .stages_ms, collectives: .collectives,
        encode_cpu_ms: .stages_ms.encode_cpu,
        ideal_s: (.stages_ms.encode_cpu / 1000 / $cores),
        efficiency: (.stages_ms.encode_cpu / 1000 / $cores / $wall),
        bytes: ([.renditions[].bytes] | add),
        psnr: ([.renditions[].psnr] | add / length),
        renditions: [.renditions[] | {width, height, frames, bytes, psnr, bitrate_kbps}],
        ranks: [.ranks[] | {rank, chunks, frames, scatter_ms, encode_ms, shuffle_ms}]
    }' "$WORK/best-$2.json"
}

# ---- the runs: every point once per round, REPS rounds, best of each kept ----
# Rounds rather than REPS runs in a row, so that a burst of load from elsewhere on the machine
# hits one run of many points, not every run of one point.
KEYS=() QUERY=() TRANSPORT=()
add_point() { KEYS+=("$1"); TRANSPORT+=("$2"); QUERY+=("$3"); }
for g in $GROUP_SIZES; do add_point "shm-g$g-c24" shm "group=$g&chunk_frames=24"; done
for c in $CHUNKS; do
    [[ " ${KEYS[*]} " == *" shm-g$CG-c$c "* ]] || add_point "shm-g$CG-c$c" shm "group=$CG&chunk_frames=$c"
    [ -n "$REDIS_URL" ] && add_point "redis-g$CG-c$c" redis "group=$CG&chunk_frames=$c&transport=redis"
done
REDIS_STATUS=pending
[ -n "$REDIS_URL" ] && REDIS_STATUS=measured
declare -A FAILED
for round in $(seq 1 "$REPS"); do
    echo "-- round $round of $REPS: baseline, then ${#KEYS[@]} Shoal points"
    keep_best cont "$(baseline_once --mode continuous --threads "$CORES")" "$WORK/b.json"
    keep_best ch24 "$(baseline_once --mode chunked --chunk-frames 24 --threads "$CORES")" "$WORK/b.json"
    [ "$round" = 1 ] && keep_best cont1 "$(baseline_once --mode continuous --threads 1)" "$WORK/b.json"
    for i in "${!KEYS[@]}"; do
        k=${KEYS[$i]}
        [ -n "${FAILED[$k]:-}" ] && continue
        if w=$(invoke_once "${QUERY[$i]}"); then
            keep_best "$k" "$w" "$WORK/m.json"
        elif [ "${TRANSPORT[$i]}" = redis ]; then
            FAILED[$k]=1
            REDIS_STATUS=failed
        else
            exit 1
        fi
    done
done
BASE_CONT=${BEST[cont]} BASE_CH24=${BEST[ch24]} BASE_CONT1=${BEST[cont1]}
for t in cont ch24 cont1; do cp "$WORK/best-$t.json" "$WORK/base-$t.json"; done
bytes_of() { jq '[.runs[].bytes] | add' "$WORK/base-$1.json"; }
psnr_of() { jq '[.runs[].psnr] | add / length' "$WORK/base-$1.json"; }
REF_BYTES=$(bytes_of cont1)
echo
printf '%-40s %8s %10s %7s\n' "baseline (one process)" wall_s bytes psnr
printf '%-40s %8.2f %10s %7.2f\n' "continuous, $CORES libvpx threads" "$BASE_CONT" "$(bytes_of cont)" "$(psnr_of cont)"
printf '%-40s %8.2f %10s %7.2f\n' "24-frame chunks, $CORES libvpx threads" "$BASE_CH24" "$(bytes_of ch24)" "$(psnr_of ch24)"
printf '%-40s %8.2f %10s %7.2f\n' "continuous, 1 thread (size reference)" "$BASE_CONT1" "$REF_BYTES" "$(psnr_of cont1)"

: >"$WORK/points.jsonl"
for i in "${!KEYS[@]}"; do
    k=${KEYS[$i]}
    [ -n "${BEST[$k]:-}" ] && point_json "${TRANSPORT[$i]}" "$k" >>"$WORK/points.jsonl"
done
[ -z "$REDIS_URL" ] && echo "-- redis: pending (this controller has no --redis option yet)"

# ---- the table ----
G1=$(jq -s 'map(select(.transport == "shm" and .group == 1 and .chunk_frames == 24)) | .[0].wall_s // empty' "$WORK/points.jsonl")
jq -s --argjson g1 "${G1:-null}" --argjson base "$BASE_CONT" --argjson ref "$REF_BYTES" '
    map(. + {speedup_vs_group1: (if $g1 then $g1 / .wall_s else null end),
             speedup_vs_baseline: ($base / .wall_s),
             size_overhead: (.bytes / $ref - 1)})' "$WORK/points.jsonl" >"$WORK/points.json"
echo
printf '%-6s %5s %6s %8s %8s %8s %6s %9s %7s %9s %9s %9s\n' transport group chunk wall_s vs_g1 vs_base effic bytes size+ psnr decode_ms encode_ms
jq -r '.[] | [.transport, .group, .chunk_frames, .wall_s, (.speedup_vs_group1 // 0), .speedup_vs_baseline,
              .efficiency, .bytes, .size_overhead * 100, .psnr, .stages_ms.decode, .stages_ms.encode] | @tsv' \
    "$WORK/points.json" |
    awk -F'\t' '{ g1 = $5 > 0 ? sprintf("%7.2fx", $5) : "       -"
                  printf "%-9s %5d %6d %8.2f %s %7.2fx %5.0f%% %9d %6.1f%% %9.2f %9.0f %9.0f\n",
                  $1, $2, $3, $4, g1, $6, $7 * 100, $8, $9, $10, $11, $12 }'
[ "$REDIS_STATUS" = pending ] && printf '%-9s %5d %6s %8s\n' redis "$CG" all pending

# Targets.
S2=$(jq -r '.[] | select(.transport == "shm" and .group == 2 and .chunk_frames == 24) | .speedup_vs_group1 // empty' "$WORK/points.json")
W24=$(jq -r --argjson g "$CG" '.[] | select(.transport == "shm" and .group == $g and .chunk_frames == 24) | .wall_s' "$WORK/points.json")
echo
[ -n "$S2" ] && echo "group=2 vs group=1: $(printf '%.2f' "$S2")x (target >= 1.7)"
[ -n "$W24" ] && echo "Shoal group=$CG at 24-frame chunks vs baseline continuous: $(awk -v a="$W24" -v b="$BASE_CONT" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }') time (target within +10%); vs baseline 24-frame chunks: $(awk -v a="$W24" -v b="$BASE_CH24" 'BEGIN { printf "%+.1f%%", (a / b - 1) * 100 }')"
if [ "$REDIS_STATUS" != pending ]; then
    jq -r --argjson g "$CG" '
        [.[] | select(.group == $g)] | group_by(.chunk_frames)[] |
        (map(select(.transport == "shm"))[0]) as $s | (map(select(.transport == "redis"))[0]) as $r |
        if $s and $r then "chunk \($s.chunk_frames): redis \($r.wall_s)s, shm \($s.wall_s)s: shm ahead by \((($r.wall_s / $s.wall_s - 1) * 100 * 10 | round) / 10)%" else empty end' \
        "$WORK/points.json"
fi

# ---- JSON and the plot ----
jq -n --slurpfile pts "$WORK/points.json" \
    --slurpfile bc "$WORK/base-cont.json" --slurpfile b24 "$WORK/base-ch24.json" \
    --slurpfile b1 "$WORK/base-cont1.json" --arg input "$(basename "$INPUT")" \
    --argjson cores "$CORES" --argjson reps "$REPS" --argjson cg "$CG" \
    --argjson bcw "$BASE_CONT" --argjson b24w "$BASE_CH24" --argjson b1w "$BASE_CONT1" \
    --arg redis "$REDIS_STATUS" '{
    benchmark: "video", input: $input, cores: $cores, best_of: $reps, chunk_sweep_group: $cg,
    source: $bc[0].source, cq: $bc[0].cq, cpu_used: $bc[0].cpu_used,
    baseline: {
        continuous: {threads: $bc[0].threads, wall_s: $bcw, decode_ms: $bc[0].decode_ms,
                     bytes: ([$bc[0].runs[].bytes] | add), psnr: ([$bc[0].runs[].psnr] | add / length),
                     runs: $bc[0].runs},
        chunked_24: {threads: $b24[0].threads, wall_s: $b24w, bytes: ([$b24[0].runs[].bytes] | add),
                     psnr: ([$b24[0].runs[].psnr] | add / length), runs: $b24[0].runs},
        continuous_1_thread: {threads: 1, wall_s: $b1w, bytes: ([$b1[0].runs[].bytes] | add),
                     psnr: ([$b1[0].runs[].psnr] | add / length)}
    },
    redis: $redis,
    points: $pts[0],
    notes: "wall_s: curl time_total (upload, decode, encode, collectives, tar, download) for Shoal; process wall time for the baseline. efficiency = (encode_cpu / cores) / wall_s. size_overhead: all renditions bytes vs the 1-thread continuous baseline."
}' >"$RES/video.json"

jq -r '.[] | select(.transport == "shm" and .chunk_frames == 24) | "\(.group) \(.wall_s)"' "$WORK/points.json" | sort -n >"$WORK/groups.dat"
jq -r --argjson g "$CG" '.[] | select(.transport == "shm" and .group == $g) | "\(.chunk_frames) \(.wall_s) \(.size_overhead * 100)"' "$WORK/points.json" | sort -n >"$WORK/shm.dat"
jq -r --argjson g "$CG" '.[] | select(.transport == "redis" and .group == $g) | "\(.chunk_frames) \(.wall_s)"' "$WORK/points.json" | sort -n >"$WORK/redis.dat"
if command -v gnuplot >/dev/null; then
    redis_plot=""
    [ -s "$WORK/redis.dat" ] && redis_plot=", \"$WORK/redis.dat\" using 1:2 with linespoints lw 2 title \"Shoal, Redis backend, group $CG\""
    gnuplot <<GP
set terminal pngcairo size 1100,480 noenhanced
set output "$RES/video.png"
set key bottom left
set multiplot layout 1,2 title "video-abr on $(basename "$INPUT") (3 renditions, VP8 cq 20), $CORES cores"
set grid
set xlabel "group size (24-frame chunks)"; set ylabel "end-to-end seconds"; set yrange [0:*]
set logscale x 2; set xrange [0.8:10]
plot "$WORK/groups.dat" using 1:2 with linespoints lw 2 title "Shoal, shared memory", \
     $BASE_CONT title "baseline, 1 process, $CORES libvpx threads" lw 2 dt 2
unset logscale x; set logscale x 2; set xrange [5:56]
set xlabel "chunk frames (group $CG)"; set ylabel "end-to-end seconds"
set y2label "output size vs one continuous stream (%)"; set y2tics; set y2range [*:*]
plot "$WORK/shm.dat" using 1:2 with linespoints lw 2 title "Shoal, shared memory"$redis_plot, \
     $BASE_CONT title "baseline (continuous)" lw 2 dt 2, \
     "$WORK/shm.dat" using 1:3 axes x1y2 with linespoints dt 3 title "size overhead (%)"
unset multiplot
GP
fi
echo "wrote $RES/video.json${REDIS_STATUS:+ (redis: $REDIS_STATUS)}"
