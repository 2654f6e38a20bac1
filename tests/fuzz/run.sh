#!/bin/bash
# Runs each libFuzzer target for a fixed time from its seed corpus and prints, per target, the
# executions done and whether it found a crash. Findings (crash-*, leak-*, timeout-*) are kept
# in the target's work directory, which is printed.
# Usage: tests/fuzz/run.sh FUZZ_BUILD SECONDS TARGET...
set -u
BUILD=$1 SECS=$2
shift 2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$(mktemp -d /tmp/shoal-fuzz.XXXXXX)
found=0
printf '%-10s %12s %10s  %s\n' target executions exec/s result
for t in "$@"; do
    mkdir -p "$WORK/$t/corpus"
    cp -r "$SRC/tests/fuzz/corpus/$t/." "$WORK/$t/corpus/" 2>/dev/null || true
    (cd "$WORK/$t" && "$SRC/$BUILD/fuzz_$t" -max_total_time="$SECS" -print_final_stats=1 \
        -rss_limit_mb=2048 corpus >log 2>&1)
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$t/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$WORK/$t/log" | tail -1)
    if [ $rc -eq 0 ]; then res="no findings"; else res="FINDING (exit $rc): see $WORK/$t"; found=1; fi
    printf '%-10s %12s %10s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$res"
done
echo "fuzz work directory: $WORK"
exit $found
