#!/bin/bash
# Runs every test program under BUILD/tests (unit tests first, then end-to-end), each with a time
# limit, and ends with one summary line: "tests: N passed, N failed, N skipped".
# Usage: tests/run.sh BUILD_DIR [FILTER]   (FILTER: a substring of the test paths to run)
set -u
BUILD=$(cd "${1:-build}" && pwd)
FILTER=${2:-}
export SHOAL_BUILD="$BUILD"
export SHOAL_SRC="$(cd "$(dirname "$0")/.." && pwd)"
# LeakSanitizer reports make a sanitized process exit non-zero, which the tests then see.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0 failed=0 skipped=0 failed_names=""
logdir=$(mktemp -d /tmp/shoal-tests.XXXXXX)
start=$(date +%s)

run_one() {
    local t=$1 name=${1#"$BUILD"/tests/} log
    log="$logdir/$(echo "$name" | tr / _).log"
    printf '== %s\n' "$name"
    timeout -k 10 "${SHOAL_TEST_TIMEOUT:-300}" "$t" >"$log" 2>&1
    local rc=$?
    grep -E '^\[ *(RUN|OK|PASSED|FAILED|SKIPPED|ERROR) *\]|^\[  +SKIPPED' "$log" | sed 's/^/   /'
    local p f s
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
    p=${p:-0} f=${f:-0} s=${s:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        # A crash, a sanitizer report or a time-out after the last test: count the program.
        f=1
        echo "   exit status $rc; last lines of $log:"
        tail -30 "$log" | sed 's/^/   | /'
    elif [ "$f" -ne 0 ]; then
        grep -B2 -A8 -E 'FAILED|error:|Failure' "$log" | head -60 | sed 's/^/   | /'
    fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    if [ "$f" -ne 0 ]; then
        failed_names="$failed_names $name"
        # CI shows only the tail of the run: keep the first few lines that say why, for the end.
        {
            echo "-- $name (exit $rc):"
            grep -m 6 -E '\[  (ERROR|FAILED) +\]|error:|harness:|ERROR: |runtime error' "$log" |
                grep -v '^\[  FAILED  \] [0-9]* test' | cut -c1-200
        } >>"$logdir/why"
    fi
    return 0
}

for kind in common transport controller worker runtime cli video e2e; do
    for t in "$BUILD"/tests/$kind/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.d) continue ;; esac
        [ -n "$FILTER" ] && [[ "$t" != *"$FILTER"* ]] && continue
        run_one "$t"
    done
done

echo
if [ -s "$logdir/why" ]; then
    echo "why they failed (first lines; whole logs in $logdir):"
    head -18 "$logdir/why" | sed 's/^/  /'
fi
echo "logs: $logdir   time: $(( $(date +%s) - start ))s"
[ -n "$failed_names" ] && echo "failed programs:$failed_names"
echo "tests: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
