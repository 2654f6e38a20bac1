/*
 * End-to-end tests of direct links (transport/link.h, worker/lease.h): shoal_call between two
 * warm functions on one node past the worker, against a real controller, worker and sandboxes.
 * The caller is tests/e2e/fn_linker.c, the callee tests/e2e/fn_linkee.c; each caller command
 * checks what it gets inside the invocation and answers "ok ..." or what went wrong.
 * Covered: 1000 calls checked byte for byte with inputs of 0, 1, 4096 bytes and more than a link
 * carries; the callee's meta on a direct call; its error, crash and timeout reported as the
 * worker's path reports them, and the pool recovering; the callee back in its pool (STATUS busy
 * 0) once the caller ends, serving HTTP; a redeploy mid-lease reaching the caller; recursion; a
 * pool that cannot spare an instance (no lease, still correct).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;

static int deploy_fn(const char *name, const char *file, const char *query)
{
    char so[512];

    snprintf(so, sizeof(so), "%s/tests/e2e/%s.so", C.build, file);
    return deploy_file(&C, name, so, query, NULL);
}

static int setup(void **state)
{
    (void)state;
    if (cluster_start(&C, 1, NULL) < 0)
        return -1;
    if (deploy_fn("linkee", "fn_linkee", "timeout_ms=1500&min_warm=2") / 100 != 2 ||
        deploy_fn("linker", "fn_linker", "timeout_ms=30000") / 100 != 2) {
        cluster_stop(&C);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

/* Invokes fn with cmd and expects 200 and an answer starting with want. */
static void expect_ok(const char *fn, const char *cmd, const char *want, http_resp_t *r)
{
    assert_int_equal(http_invoke(&C, fn, NULL, cmd, strlen(cmd), r), 0);
    if (r->status != 200 || strncmp(r->body, want, strlen(want)) != 0) {
        fprintf(stderr, "%s '%s': %ld %.600s\n", fn, cmd, r->status, r->body);
        cluster_dump_logs(&C);
    }
    assert_int_equal(r->status, 200);
    assert_memory_equal(r->body, want, strlen(want));
}

/* The callee answers an HTTP invoke (XOR 0x5a). */
static void callee_serves_http(void)
{
    http_resp_t r;

    assert_int_equal(http_invoke(&C, "linkee", NULL, "\x3b\x38\x39", 3, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 3);
    assert_memory_equal(r.body, "abc", 3);
    http_resp_free(&r);
}

/* linkee's "busy" in GET /v1/workers (the worker's STATUS), -1 when not listed. */
static int callee_busy(void)
{
    http_resp_t r;
    const char *p;
    int busy = -1;

    if (http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r) < 0)
        return -1;
    if ((p = strstr(r.body, "\"function\":\"linkee\"")) != NULL &&
        (p = strstr(p, "\"busy\":")) != NULL)
        busy = atoi(p + 7);
    http_resp_free(&r);
    return busy;
}

static int wait_callee_busy(int want, int ms)
{
    for (int i = 0; i < ms / 50; i++) {
        if (callee_busy() == want)
            return 0;
        usleep(50000);
    }
    return -1;
}

static void test_many_calls(void **state)
{
    http_resp_t r;
    (void)state;

    expect_ok("linker", "echo 1000", "ok 1000", &r);
    http_resp_free(&r);
    /* Again: a new invocation gets a new lease. */
    expect_ok("linker", "echo 300", "ok 300", &r);
    http_resp_free(&r);
}

static void test_caller_ends_callee_returns(void **state)
{
    http_resp_t r;
    (void)state;

    expect_ok("linker", "echo 20", "ok 20", &r);
    http_resp_free(&r);
    /* The lease ended with the caller's invocation: nothing of linkee is busy any more. */
    assert_int_equal(wait_callee_busy(0, 5000), 0);
    callee_serves_http();
}

static void test_meta(void **state)
{
    http_resp_t r;
    char want[160];
    (void)state;

    assert_int_equal(http_invoke(&C, "linker", NULL, "meta", 4, &r), 0);
    assert_int_equal(r.status, 200);
    snprintf(want, sizeof(want), "function=linkee id=%s", r.invocation_id);
    assert_string_equal(r.body, want);
    http_resp_free(&r);
}

static void test_callee_error(void **state)
{
    http_resp_t r;
    (void)state;

    expect_ok("linker", "fail", "ok", &r);
    http_resp_free(&r);
}

static void test_callee_crash(void **state)
{
    http_resp_t r;
    (void)state;

    expect_ok("linker", "crash 7", "ok function crashed: ", &r);
    assert_non_null(strstr(r.body, "SIGSEGV"));
    http_resp_free(&r);
    /* The pool replaced what crashed; the next invocations work. */
    callee_serves_http();
    expect_ok("linker", "echo 100", "ok 100", &r);
    http_resp_free(&r);
}

static void test_callee_timeout(void **state)
{
    http_resp_t r;
    double s;
    (void)state;

    expect_ok("linker", "hang", "ok ", &r);
    /* linkee's timeout is 1.5 s; the worker checks direct calls every tick (100 ms). */
    s = atof(r.body + 3);
    if (s < 1.4 || s > 4.0)
        fprintf(stderr, "hang took %.2f s\n", s);
    assert_true(s >= 1.4 && s <= 4.0);
    http_resp_free(&r);
    callee_serves_http();
    expect_ok("linker", "echo 50", "ok 50", &r);
    http_resp_free(&r);
}

static void test_recursion(void **state)
{
    http_resp_t r;
    (void)state;

    expect_ok("linker", "self 4", "4", &r);
    http_resp_free(&r);
    expect_ok("linker", "self 4", "4", &r);
    http_resp_free(&r);
}

/* With max_instances=1 the pool cannot spare its instance: no lease, the worker's path, still
 * right; and it is free again right after each invocation. */
static void test_no_spare_instance(void **state)
{
    http_resp_t r;
    (void)state;

    char so[512];
    snprintf(so, sizeof(so), "%s/tests/e2e/fn_linkee.so", C.build);
    assert_int_equal(
        deploy_file(&C, "linkee", so, "timeout_ms=1500&min_warm=1&max_instances=1", &r), 200);
    if (r.status != 200)
        fprintf(stderr, "deploy: %.300s\n", r.body);
    http_resp_free(&r);
    expect_ok("linker", "echo 120", "ok 120", &r);
    http_resp_free(&r);
    callee_serves_http();
    assert_int_equal(
        deploy_fn("linkee", "fn_linkee", "timeout_ms=1500&min_warm=2&max_instances=64") / 100, 2);
}

/* A lease gives way when the callee's pool runs out: with max_instances=2, one instance leased
 * to a caller in a 6 s loop of calls and one idle, two 1 s invocations of the callee at once must
 * run side by side (the second on the instance the lease gave back), not one after the other or
 * after the caller ended. */
static void test_lease_gives_way(void **state)
{
    enum { N = 2 };
    pid_t loop, kids[N];
    http_resp_t r;
    int st;
    (void)state;

    assert_int_equal(
        deploy_fn("linkee", "fn_linkee", "timeout_ms=1500&min_warm=2&max_instances=2") / 100, 2);
    if ((loop = fork()) == 0) {
        if (http_invoke(&C, "linker", NULL, "loop 6", 6, &r) < 0 || r.status != 200 ||
            strncmp(r.body, "ok ", 3) != 0) {
            fprintf(stderr, "loop: %ld %.300s\n", r.status, r.body);
            _exit(1);
        }
        _exit(0);
    }
    assert_int_equal(wait_callee_busy(1, 5000), 0); /* leased */
    for (int k = 0; k < N; k++) {
        if ((kids[k] = fork()) == 0) {
            if (http_invoke(&C, "linkee", NULL, "nap", 3, &r) < 0 || r.status != 200 ||
                strcmp(r.body, "napped") != 0) {
                fprintf(stderr, "nap %d: %ld %.300s\n", k, r.status, r.body);
                _exit(1);
            }
            /* Both naps at once (about 1 s), not one after the other (2 s or more). */
            if (r.total_s >= 1.8)
                fprintf(stderr, "nap %d took %.2f s\n", k, r.total_s);
            _exit(r.total_s < 1.8 ? 0 : 2);
        }
    }
    for (int k = 0; k < N; k++) {
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "nap %d exited %d\n", k, WEXITSTATUS(st));
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(waitpid(loop, &st, 0), loop);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(
        deploy_fn("linkee", "fn_linkee", "timeout_ms=1500&min_warm=2&max_instances=64") / 100, 2);
}

/* Last: it replaces linkee with a function that only answers "V2". */
static void test_redeploy_mid_lease(void **state)
{
    char so[512], out[256];
    int fds[2], st;
    ssize_t n;
    pid_t kid;
    (void)state;

    assert_int_equal(pipe(fds), 0);
    if ((kid = fork()) == 0) {
        http_resp_t r;
        close(fds[0]);
        if (http_invoke(&C, "linker", NULL, "ver 15", 6, &r) < 0)
            _exit(1);
        dprintf(fds[1], "%ld %s", r.status, r.body);
        _exit(0);
    }
    close(fds[1]);
    /* The caller is in its loop of calls: linkee is leased to it, so busy. */
    assert_int_equal(wait_callee_busy(1, 5000), 0);
    assert_true(build_function(&C, "linkee2", FN_VERSION("V2"), so, sizeof(so)) == 0);
    assert_int_equal(deploy_file(&C, "linkee", so, "timeout_ms=1500", NULL), 200);
    n = read(fds[0], out, sizeof(out) - 1);
    assert_true(n > 0);
    out[n] = '\0';
    close(fds[0]);
    assert_int_equal(waitpid(kid, &st, 0), kid);
    if (strcmp(out, "200 first V1 last V2") != 0)
        fprintf(stderr, "got: %s\n", out);
    assert_string_equal(out, "200 first V1 last V2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_calls),
        cmocka_unit_test(test_caller_ends_callee_returns),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_callee_error),
        cmocka_unit_test(test_callee_crash),
        cmocka_unit_test(test_callee_timeout),
        cmocka_unit_test(test_recursion),
        cmocka_unit_test(test_no_spare_instance),
        cmocka_unit_test(test_lease_gives_way),
        cmocka_unit_test(test_redeploy_mid_lease),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
