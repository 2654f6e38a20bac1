/* Tests common/trace.c's nonblocking mode: with stderr a pipe nobody reads, trace lines never make
 * the writer wait (an alarm fails the test if one does); what did not fit is counted and said
 * with the next line that fits, in the same write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/trace.h"

static char drained[1 << 20];

/* Reads what is in the pipe now (its read end is non-blocking). */
static size_t drain(int fd)
{
    size_t n = 0;
    ssize_t r;

    while (n < sizeof(drained) - 1 && (r = read(fd, drained + n, sizeof(drained) - 1 - n)) > 0)
        n += (size_t)r;
    drained[n] = '\0';
    return n;
}

static void test_full_stderr_never_waits(void **state)
{
    int p[2], saved = dup(STDERR_FILENO);
    size_t n;
    (void)state;

    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    assert_true(dup2(p[1], STDERR_FILENO) >= 0);
    shoal_trace_init("tracetest");
    shoal_trace_nonblocking();
    /* Far more than a pipe holds (64 KiB): a blocking write would stop here for good. */
    alarm(20);
    for (int i = 0; i < 20000; i++)
        SHOAL_WARN("line %d of a trace that nobody reads yet", i);
    alarm(0);
    n = drain(p[0]);
    assert_true(n > 0 && n <= 65536);
    assert_null(strstr(drained, "line 19999 "));
    /* Room again: the next line says how many were dropped, then itself. */
    SHOAL_WARN("after the drain");
    drain(p[0]);
    assert_non_null(strstr(drained, "trace lines dropped: stderr was full\n"));
    assert_non_null(strstr(drained, "warn: after the drain\n"));
    assert_true(strstr(drained, "dropped") < strstr(drained, "after the drain"));
    /* ... once: the count was reset. */
    SHOAL_WARN("and one more");
    drain(p[0]);
    assert_null(strstr(drained, "dropped"));
    assert_non_null(strstr(drained, "and one more"));
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_stderr_never_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
