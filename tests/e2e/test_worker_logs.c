/*
 * End-to-end: a worker whose stderr is a pipe or a socket (journald's) nobody reads (a stuck log
 * collector). Functions'
 * logs must not stall it: invocations that log megabytes still answer at once, because the
 * worker writes function logs without blocking and drops what does not fit; once the pipe is
 * drained, the next log line comes with a note of how many bytes were dropped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

/* Logs as many 1 kB lines as its input says, then answers "logged". */
#define FN_LOGGER                                                                                  \
    FN_HEAD "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c); char n[16] = {0};\n"    \
            " memcpy(n, in.data, in.len < 15 ? in.len : 15); static char line[1001];\n"            \
            " memset(line, 'L', 1000); for (int i = 0; i < atoi(n); i++)\n"                        \
            "   shoal_log(c, \"%05d %s\", i, line);\n"                                             \
            " return shoal_output(c, \"logged\", 6); }\n"

static cluster_t C;
static pid_t worker = -1;
static int err_rd = -1; /* the read end of the worker's stderr */

/* The worker's stderr: a pipe (a shell, a supervisor) or a socket (journald). */
static int start(int sock)
{
    char bin[600], ctl[64], home[300], key[300];
    int p[2];

    if (cluster_start(&C, 0, NULL) < 0)
        return -1;
    snprintf(bin, sizeof(bin), "%s/shoal-worker", C.build);
    snprintf(ctl, sizeof(ctl), "127.0.0.1:%d", C.worker_port);
    snprintf(home, sizeof(home), "%s/worker-pipe", C.home);
    snprintf(key, sizeof(key), "%s/cluster.key", C.home);
    if ((sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) : pipe2(p, O_CLOEXEC)) < 0)
        return -1;
    if ((worker = fork()) == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        execl(bin, bin, "--controller", ctl, "--home", home, "--node", "piped",
              "--cluster-key-file", key, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    err_rd = p[0];
    fcntl(err_rd, F_SETFL, O_NONBLOCK);
    return worker > 0 ? cluster_wait_workers(&C, 1, 10000) : -1;
}

static int setup_pipe(void **state)
{
    (void)state;
    return start(0);
}

static int setup_socket(void **state)
{
    (void)state;
    return start(1);
}

static int teardown(void **state)
{
    int st;
    (void)state;
    if (worker > 0) {
        kill(worker, SIGTERM);
        /* A worker blocked on its full stderr would never see the signal through: drain. */
        for (int i = 0; i < 500 && waitpid(worker, &st, WNOHANG) == 0; i++) {
            char sink[65536];
            while (read(err_rd, sink, sizeof(sink)) > 0)
                ;
            usleep(10000);
        }
    }
    close(err_rd);
    worker = -1;
    return cluster_stop(&C);
}

/* Reads what is in the pipe now (at most cap - 1 bytes kept); returns the bytes read in all. */
static size_t drain(char *keep, size_t cap)
{
    size_t total = 0, kept = 0;
    char buf[65536];
    ssize_t n;

    while ((n = read(err_rd, buf, sizeof(buf))) > 0) {
        if (keep != NULL) {
            size_t k = kept + (size_t)n < cap - 1 ? (size_t)n : cap - 1 - kept;
            memcpy(keep + kept, buf, k);
            kept += k;
            keep[kept] = '\0';
        }
        total += (size_t)n;
    }
    return total;
}

static void stuck_stderr(void)
{
    char so[512];
    http_resp_t r;

    assert_int_equal(build_function(&C, "logger", FN_LOGGER, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "logger", so, "timeout_ms=20000", NULL), 201);
    drain(NULL, 0);
    /* 3 x 2 MB of logs into a 64 KiB pipe nobody reads. */
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = shoal_util_now_ms();
        assert_int_equal(
            http_request(&C, "POST", "/v1/functions/logger/invoke", "2000", 4, NULL, &r), 0);
        uint64_t took = shoal_util_now_ms() - t0;
        fprintf(stderr, "invocation %d logging 2 MB into a stuck stderr: %ld in %llu ms\n", i,
                r.status, (unsigned long long)took);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "logged");
        http_resp_free(&r);
        assert_true(took < 5000);
    }
    /* The collector catches up: the next line tells what was lost. */
    size_t got = drain(NULL, 0);
    assert_true(got <= (1u << 20)); /* what fit in the pipe, not the 6 MB */
    assert_int_equal(http_request(&C, "POST", "/v1/functions/logger/invoke", "1", 1, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    char *text = calloc(1, 1 << 16);
    assert_non_null(text);
    for (int i = 0; i < 100 && strstr(text, "logger[") == NULL; i++) {
        usleep(20000);
        size_t have = strlen(text);
        drain(text + have, (1 << 16) - have);
    }
    assert_non_null(strstr(text, "bytes of function logs dropped: stderr is slow"));
    assert_non_null(strstr(text, "logger["));
    free(text);
}

static void test_stuck_pipe(void **state)
{
    (void)state;
    stuck_stderr();
}

static void test_stuck_socket(void **state)
{
    (void)state;
    stuck_stderr();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stuck_pipe, setup_pipe, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_socket, setup_socket, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
