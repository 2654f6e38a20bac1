/*
 * End-to-end tests of groups against real processes: a controller and two workers with 8 slots
 * each. A group function compiled at test time (deployed as "gang", and as "gang-short" with a
 * 1500 ms timeout) uses shoal_rank/shoal_size and collectives
 * (allreduce, bcast from the last rank, gather at rank 0); the answer is rank 0's output, status
 * and headers. Also: a rank that crashes, fails or hangs ends the whole group with an error naming
 * it, in bounded time; groups that wait whole for room; shoal_call_group (run by the worker, or
 * forwarded to the controller when the caller's node cannot host it); refusals (too large,
 * contradicting transport); a group larger than one node packed over both, ?spread=1; metrics and
 * the workers listing.
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

/* clang-format off */
/* The "gang" of fns.h; "sleep" holds every rank 300 ms first. Only rank 0's status (201; the
 * others set 500), header and output may reach the client. */
static const char FN_GANG[] = FN_GANG_START
    " if (!strcmp(cmd, \"sleep\")) usleep(300000);\n"
    FN_GANG_COLLECTIVES
    " char st[8], hv[16]; snprintf(st, sizeof(st), \"%d\", rank == 0 ? 201 : 500);\n"
    " snprintf(hv, sizeof(hv), \"rank%d\", rank);\n"
    " shoal_set_meta(c, \"status\", st); shoal_set_meta(c, \"header:x-test\", hv);\n"
    FN_GANG_ANSWER;

/* Calls a group of "gang" with the size its input names and answers rank 0's output. */
static const char FN_GANG_CALLER[] =
    FN_HEAD
    "int shoal_main(shoal_ctx *c) {\n"
    " shoal_buf in = shoal_input(c); char num[16] = {0};\n"
    " memcpy(num, in.data, in.len < 15 ? in.len : 15);\n"
    " shoal_buf out; int rc = shoal_call_group(c, \"gang\", atoi(num), \"\", 0, &out);\n"
    " if (rc < 0) return shoal_error(c, \"call_group: %d\", rc);\n"
    " return shoal_output(c, out.data, out.len); }\n";
/* clang-format on */

static int setup(void **state)
{
    char so[512];
    (void)state;
    if (cluster_start(&C, 2, "--slots 8") < 0)
        return -1;
    if (build_function(&C, "gang", FN_GANG, so, sizeof(so)) < 0 ||
        deploy_file(&C, "gang", so, "timeout_ms=20000", NULL) != 201 ||
        deploy_file(&C, "gang-short", so, "timeout_ms=1500", NULL) != 201 ||
        build_function(&C, "gang-caller", FN_GANG_CALLER, so, sizeof(so)) < 0 ||
        deploy_file(&C, "gang-caller", so, NULL, NULL) != 201) {
        cluster_dump_logs(&C);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

static void invoke(const char *name, const char *query, const char *in, http_resp_t *r)
{
    assert_int_equal(http_invoke(&C, name, query, in, strlen(in), r), 0);
}

static void expect_error(const http_resp_t *r, long status, const char *code)
{
    assert_true(http_is_error(r, status, code));
}

static void expect_group_ok(const http_resp_t *r, int n)
{
    char want[512];
    fn_gang_expected(n, want, sizeof(want));
    if (r->status != 201)
        fprintf(stderr, "group of %d: status %ld, body: %.400s\n", n, r->status, r->body);
    assert_int_equal(r->status, 201);
    assert_string_equal(r->body, want);
    assert_string_equal(r->custom_header, "rank0");
    assert_true(strlen(r->invocation_id) >= 32);
}

static void test_group_of_four(void **state)
{
    http_resp_t r;
    (void)state;

    invoke("gang", "group=4", "", &r);
    expect_group_ok(&r, 4);
    http_resp_free(&r);
}

static void test_group_sizes(void **state)
{
    static const int SIZES[] = {2, 3, 8, 5};
    http_resp_t r;
    (void)state;

    /* group=1 is a plain invocation: rank 0 of a group of one. */
    invoke("gang", "group=1", "", &r);
    expect_group_ok(&r, 1);
    http_resp_free(&r);
    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        char q[32];
        snprintf(q, sizeof(q), "group=%d&transport=shm", SIZES[i]);
        invoke("gang", q, "", &r);
        expect_group_ok(&r, SIZES[i]);
        http_resp_free(&r);
    }
}

/* One failing rank fails the group, promptly, named in the message; the platform goes on. */
static void test_group_failures(void **state)
{
    http_resp_t r;
    (void)state;

    invoke("gang", "group=4", "crash2", &r);
    expect_error(&r, 502, "function_crashed");
    assert_non_null(strstr(r.body, "rank 2"));
    assert_non_null(strstr(r.body, "SIGSEGV"));
    assert_true(r.total_s < 5.0);
    assert_true(strlen(r.invocation_id) >= 32);
    http_resp_free(&r);

    invoke("gang", "group=3", "fail1", &r);
    expect_error(&r, 502, "function_error");
    assert_non_null(strstr(r.body, "rank 1"));
    assert_non_null(strstr(r.body, "rank 1 says no"));
    assert_true(r.total_s < 5.0);
    http_resp_free(&r);

    /* A rank that never arrives at the collective: the group's deadline (1500 ms) ends it. */
    invoke("gang-short", "group=4", "hang3", &r);
    expect_error(&r, 504, "timeout");
    assert_non_null(strstr(r.body, "rank 3"));
    assert_true(r.total_s >= 1.4 && r.total_s < 6.0);
    http_resp_free(&r);

    for (int i = 0; i < 3; i++) {
        invoke("gang", "group=4", "", &r);
        expect_group_ok(&r, 4);
        http_resp_free(&r);
    }
}

/* Groups that do not fit at once wait whole and all finish: 4 clients each want 6 of the 16
 * slots, so at most two groups run at a time. */
static void test_groups_wait_whole(void **state)
{
    enum { PROCS = 4 };
    pid_t kids[PROCS];
    (void)state;

    for (int k = 0; k < PROCS; k++) {
        if ((kids[k] = fork()) == 0) {
            http_resp_t r;
            char want[512];
            fn_gang_expected(6, want, sizeof(want));
            if (http_request(&C, "POST", "/v1/functions/gang/invoke?group=6", "sleep", 5, NULL,
                             &r) < 0)
                _exit(2);
            int ok = r.status == 201 && strcmp(r.body, want) == 0;
            if (!ok)
                fprintf(stderr, "proc %d: %ld %s\n", k, r.status, r.body);
            http_resp_free(&r);
            _exit(ok ? 0 : 1);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

/* The value of a metric line "name value" in /metrics, or -1. */
static long metric(const char *name)
{
    http_resp_t r;
    char key[160];
    long v = -1;

    snprintf(key, sizeof(key), "\n%s ", name);
    if (http_request(&C, "GET", "/metrics", NULL, 0, NULL, &r) == 0) {
        const char *p = strstr(r.body, key);
        if (p != NULL)
            v = atol(p + strlen(key));
        http_resp_free(&r);
    }
    return v;
}

static void test_call_group(void **state)
{
    http_resp_t r;
    char want[512];
    long before;
    (void)state;

    /* The caller's worker has room for 4 more ranks: it runs the group itself. */
    invoke("gang-caller", NULL, "4", &r);
    fn_gang_expected(4, want, sizeof(want));
    if (r.status != 200)
        fprintf(stderr, "status %ld, body: %.400s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
    http_resp_free(&r);
    /* 8 ranks: the caller holds one of its worker's 8 slots, so the worker forwards the group to
     * the controller, which places it on the other worker. */
    before = metric("shoal_groups_total");
    invoke("gang-caller", NULL, "8", &r);
    fn_gang_expected(8, want, sizeof(want));
    if (r.status != 200)
        fprintf(stderr, "status %ld, body: %.400s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, want);
    http_resp_free(&r);
    assert_int_equal(metric("shoal_groups_total"), before + 1);
    /* More than the cluster holds: the call fails in the caller. */
    invoke("gang-caller", NULL, "17", &r);
    expect_error(&r, 502, "function_error");
    assert_non_null(strstr(r.body, "call_group"));
    http_resp_free(&r);
}

static void test_refusals(void **state)
{
    http_resp_t r;
    (void)state;

    /* Two workers of 8 slots hold 16 ranks at most. */
    invoke("gang", "group=17", "", &r);
    expect_error(&r, 400, "group_too_large");
    assert_non_null(strstr(r.body, "group of 17"));
    assert_non_null(strstr(r.body, "16 instances"));
    assert_true(strlen(r.invocation_id) >= 32);
    http_resp_free(&r);
    /* 9 ranks fit only split over the two workers: the group is packed over both (one worker
     * holds 8), its data moving between them (tests/e2e/test_spread.c tests that path). */
    invoke("gang", "group=9", "", &r);
    expect_group_ok(&r, 9);
    http_resp_free(&r);
    invoke("gang", "group=4&spread=1", "", &r);
    expect_group_ok(&r, 4);
    http_resp_free(&r);
    invoke("gang", "group=4&spread=1&transport=shm", "", &r);
    expect_error(&r, 400, "bad_query");
    http_resp_free(&r);
    /* This controller was started without --redis. */
    invoke("gang", "group=4&transport=redis", "", &r);
    expect_error(&r, 400, "bad_query");
    assert_non_null(strstr(r.body, "transport=redis needs the controller started with --redis"));
    http_resp_free(&r);
    invoke("gang", "group=0", "", &r);
    expect_error(&r, 400, "bad_query");
    http_resp_free(&r);
    invoke("gang", "group=1025", "", &r);
    expect_error(&r, 400, "bad_query");
    http_resp_free(&r);
}

static void test_metrics_and_workers(void **state)
{
    http_resp_t r;
    (void)state;

    invoke("gang", "group=3", "", &r);
    expect_group_ok(&r, 3);
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    const char *g = strstr(r.body, "\nshoal_groups_total ");
    assert_non_null(g);
    assert_true(atoi(g + strlen("\nshoal_groups_total ")) >= 1);
    assert_non_null(strstr(r.body, "\nshoal_group_ranks_busy 0\n"));
    assert_non_null(strstr(r.body, "shoal_invocations_total{result=\"group_too_large\"}"));
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"group_ranks\":0"));
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_of_four),       cmocka_unit_test(test_group_sizes),
        cmocka_unit_test(test_group_failures),      cmocka_unit_test(test_groups_wait_whole),
        cmocka_unit_test(test_call_group),          cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_metrics_and_workers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
