/*
 * trace - see trace.h. The state is two process-wide values written once by
 * shoal_trace_init before any thread starts, so reading them later needs no lock.
 */
#include "trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *trace_program = "shoal";
static int trace_level = SHOAL_TRACE_INFO;

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
    int n, m;

    if (level > trace_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %s[%d] %s: ", tm.tm_hour, tm.tm_min,
                 tm.tm_sec, ts.tv_nsec / 1000000, trace_program, (int)getpid(), names[level]);
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
    if (write(STDERR_FILENO, line, n) < 0) {
        /* Nowhere left to report a failing stderr. */
    }
}
