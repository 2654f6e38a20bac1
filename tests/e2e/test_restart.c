/*
 * End-to-end recovery tests: kill -9 of the controller (state survives, workers reconnect within
 * 5 s) and of a worker in the middle of an invocation (the caller gets an error at once, the
 * worker's instances die with it, a restarted worker serves again).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;

static int setup(void **state)
{
    (void)state;
    return cluster_start(&C, 1, NULL);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

static long invoke_status(const char *name, const char *in, char *out, size_t outlen)
{
    char path[256];
    http_resp_t r;
    long st;

    snprintf(path, sizeof(path), "/v1/functions/%s/invoke", name);
    if (http_request(&C, "POST", path, in, strlen(in), NULL, &r) < 0)
        return -1;
    st = r.status;
    if (out)
        snprintf(out, outlen, "%s", r.body);
    http_resp_free(&r);
    return st;
}

static void test_controller_kill9(void **state)
{
    char so[512], out[256];
    http_resp_t r;
    (void)state;

    assert_int_equal(build_function(&C, "keep1", FN_VERSION("kept-1"), so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "keep1", so, NULL, NULL), 201);
    assert_int_equal(build_function(&C, "keep2", FN_ECHO, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "keep2", so, "timeout_ms=5000&memory_mb=128", NULL), 201);
    assert_int_equal(invoke_status("keep1", "", out, sizeof(out)), 200);

    for (int round = 0; round < 2; round++) {
        int st = cluster_kill_controller(&C, SIGKILL);
        assert_true(WIFSIGNALED(st));
        uint64_t t0 = shoal_util_now_ms();
        assert_int_equal(cluster_start_controller(&C), 0);
        assert_int_equal(cluster_wait_workers(&C, 1, 5000), 0);
        uint64_t reconnect = shoal_util_now_ms() - t0;
        fprintf(stderr, "worker reconnected %llu ms after the controller restarted\n",
                (unsigned long long)reconnect);
        assert_true(reconnect <= 5000);
        assert_int_equal(http_request(&C, "GET", "/v1/functions", NULL, 0, NULL, &r), 0);
        assert_non_null(strstr(r.body, "keep1"));
        assert_non_null(strstr(r.body, "keep2"));
        http_resp_free(&r);
        assert_int_equal(http_request(&C, "GET", "/v1/functions/keep2", NULL, 0, NULL, &r), 0);
        assert_non_null(strstr(r.body, "5000"));
        http_resp_free(&r);
        assert_int_equal(invoke_status("keep1", "", out, sizeof(out)), 200);
        assert_string_equal(out, "kept-1");
        assert_int_equal(invoke_status("keep2", "still here", out, sizeof(out)), 200);
        assert_string_equal(out, "still here");
    }
}

static void test_worker_kill9_mid_invocation(void **state)
{
    char so[512], out[256];
    pid_t before[64], kid;
    int nbefore, st;
    (void)state;

    assert_int_equal(build_function(&C, "sleepy", FN_MOODY, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "sleepy", so, "timeout_ms=20000", NULL), 201);
    assert_int_equal(invoke_status("sleepy", "warm", out, sizeof(out)), 200);

    /* A caller blocked on an invocation that will never finish by itself. */
    if ((kid = fork()) == 0) {
        char body[256];
        uint64_t t0 = shoal_util_now_ms();
        long s = invoke_status("sleepy", "hang", body, sizeof(body));
        uint64_t took = shoal_util_now_ms() - t0;
        fprintf(stderr, "caller got %ld after %llu ms: %s\n", s, (unsigned long long)took, body);
        /* The worker dies 500 ms in; the error must arrive long before the 20 s timeout. */
        _exit(s == 502 && strstr(body, "worker_lost") && took < 3000 ? 0 : 1);
    }
    usleep(500 * 1000);
    nbefore = children_of(C.workers[0], before, 64);
    assert_true(nbefore >= 2); /* at least the zygote and the busy instance */
    cluster_kill_worker(&C, 0, SIGKILL);
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* Nothing the worker started outlives it. */
    for (int i = 0; i < nbefore; i++) {
        int gone = 0;
        for (int t = 0; t < 100 && !gone; t++) {
            /* The test is a subreaper, so orphans come to it and must be reaped here. */
            if (waitpid(before[i], NULL, WNOHANG) == before[i] || kill(before[i], 0) < 0)
                gone = 1;
            else
                usleep(10 * 1000);
        }
        if (!gone)
            fprintf(stderr, "pid %d survived its worker\n", (int)before[i]);
        assert_true(gone);
    }

    assert_int_equal(cluster_start_worker(&C, 0), 0);
    assert_int_equal(cluster_wait_workers(&C, 1, 5000), 0);
    assert_int_equal(invoke_status("sleepy", "back", out, sizeof(out)), 200);
    assert_string_equal(out, "back");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_controller_kill9),
        cmocka_unit_test(test_worker_kill9_mid_invocation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
