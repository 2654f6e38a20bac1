/*
 * trace - see trace.h. The state is process-wide values written once by shoal_trace_init (and
 * shoal_trace_nonblocking) before any thread starts, so reading them later needs no lock; the
 * count of dropped lines is atomic.
 */
#include "trace.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

static const char *trace_program = "shoal";
static int trace_level = SHOAL_TRACE_INFO;
static int trace_nonblocking;
static shoal_util_errout_t trace_out;
static _Atomic unsigned long trace_dropped; /* lines stderr did not take (nonblocking only) */

void shoal_trace_nonblocking(void)
{
    shoal_util_errout_open(&trace_out);
    trace_nonblocking = 1;
}

void shoal_trace_init(const char *program)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    const char *env = getenv("SHOAL_LOG");

    trace_program = program;
    if (env == NULL)
        return;
    for (int i = 0; i < 4; i++)
        if (strcmp(env, names[i]) == 0)
            trace_level = i;
}

void shoal_trace_printf(int level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    unsigned long dropped = 0;
    int n = 0, m;

    if (level > trace_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    /* What a full stderr made us drop is said first, in the same write. */
    if (trace_nonblocking && (dropped = atomic_load(&trace_dropped)) > 0)
        n = snprintf(line, sizeof(line), "%s[%d] warn: %lu trace lines dropped: stderr was full\n",
                     trace_program, (int)getpid(), dropped);
    n += snprintf(line + n, sizeof(line) - n, "%02d:%02d:%02d.%03ld %s[%d] %s: ", tm.tm_hour,
                  tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, trace_program, (int)getpid(),
                  names[level]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if (n > (int)sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line keeps lines from concurrent processes sharing stderr whole. */
    if (!trace_nonblocking) {
        if (write(STDERR_FILENO, line, n) < 0) {
            /* Nowhere left to report a failing stderr. */
        }
        return;
    }
    /* A process whose loop must not stall on a stuck reader (the worker) drops the line instead
     * of waiting, and says so with the next one that fits. */
    if (shoal_util_errout_put(&trace_out, line, (size_t)n) == n) {
        if (dropped > 0)
            atomic_fetch_sub(&trace_dropped, dropped);
    } else {
        atomic_fetch_add(&trace_dropped, 1);
    }
}
