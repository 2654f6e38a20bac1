# Shared shell helpers for the benchmarks; source it after setting NAME (the benchmark's name).
# Sets BUILD (absolute), SRC, RES (bench/results) and WORK (a scratch directory removed on exit,
# together with every process whose pid was added to PIDS).
# shellcheck shell=bash
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RES="$SRC/bench/results"
mkdir -p "$RES"
WORK=$(mktemp -d "/tmp/shoal-bench-$NAME.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# Authentication (docs/security.md). The controllers and workers a benchmark starts share an API
# token and a cluster key made here and passed through the environment (a controller takes
# SHOAL_TOKEN and SHOAL_CLUSTER_KEY, a worker SHOAL_CLUSTER_KEY), so start commands need no
# flags. Every curl sends the token (a .curlrc in WORK, found through CURL_HOME); wrk needs
# -H "$(auth_header)"; C clients read SHOAL_TOKEN.
random_hex() { head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
export SHOAL_TOKEN=${SHOAL_TOKEN:-$(random_hex)}
export SHOAL_CLUSTER_KEY=${SHOAL_CLUSTER_KEY:-$(random_hex)}
# The header line for curl -H or wrk -H.
auth_header() { printf 'Authorization: Bearer %s' "$SHOAL_TOKEN"; }
printf 'header = "%s"\n' "$(auth_header)" >"$WORK/.curlrc"
chmod 600 "$WORK/.curlrc"
export CURL_HOME="$WORK"

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 30000))
        (echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
}

# Waits up to 10 s for URL to answer 2xx.
wait_http() {
    for _ in $(seq 1 200); do curl -fs -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "bench: $1 did not come up" >&2
    return 1
}

# wrk's "38.12us" | "1.20ms" | "1.00s" -> microseconds.
to_us() {
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /ms$/) n *= 1000; else if (v ~ /[0-9]s$/) n *= 1000000; printf "%.1f", n }'
}
