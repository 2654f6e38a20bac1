/*
 * The collectives suite: tests/e2e/fn_colls.c (BUILD/tests/e2e/fn_colls.so) runs every collective
 * of include/shoal.h, checked byte for byte, as groups of 1, 2, 3, 8 and 17 ranks, plus once with
 * parts of 64 MiB (big=1, a group of 3), in three variants, each on its own real cluster:
 *  - shm: one worker, every rank on one node (the shared arena);
 *  - spread: two workers, ranks placed round-robin over both nodes (?spread=1, the io_uring
 *    path between workers);
 *  - redis: one worker and a redis-server this test starts on a free loopback port, the
 *    controller started with --redis (?transport=redis, the object-store baseline).
 * A variant whose backend this build does not have yet (the invocation answers
 * 501 not_implemented, or the controller has no --redis flag) is reported as skipped with the
 * reason; everything else must answer "ok". A negative control checks that the checker itself
 * reports a corrupted byte, naming the rank and the collective.
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

#include "tests/e2e/harness.h"

static const int SIZES[] = {1, 2, 3, 8, 17};

/* The variant's cluster and Redis, stopped by teardown even when an assertion ended the test. */
static cluster_t C;
static int C_started;
static pid_t REDIS;

static int teardown(void **state)
{
    int err = 0;
    (void)state;

    if (C_started && cluster_stop(&C) < 0)
        err = -1;
    C_started = 0;
    if (harness_redis_stop(REDIS) < 0)
        err = -1;
    REDIS = 0;
    return err;
}

/* Deploys fn_colls.so as "colls"; big parts need room: 2 GiB per rank. */
static int deploy_colls(cluster_t *c)
{
    char so[512];
    int st;

    snprintf(so, sizeof(so), "%s/tests/e2e/fn_colls.so", c->build);
    st = deploy_file(c, "colls", so, "timeout_ms=60000&memory_mb=2048", NULL);
    if (st != 201) {
        fprintf(stderr, "deploy %s: status %d\n", so, st);
        cluster_dump_logs(c);
        return -1;
    }
    return 0;
}

/* Invokes colls as a group of n with the variant's query; returns the status (the body in r). */
static long run_group(cluster_t *c, int n, const char *variant, const char *extra, http_resp_t *r)
{
    char path[256];
    struct timespec t0, t1;

    snprintf(path, sizeof(path), "/v1/functions/colls/invoke?group=%d%s%s%s%s", n,
             *variant ? "&" : "", variant, *extra ? "&" : "", extra);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (http_request(c, "POST", path, "", 0, NULL, r) < 0) {
        fprintf(stderr, "%s: no answer\n", path);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "  %-60s %ld %.60s (%.2f s)\n", path, r->status, r->body,
            (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    return r->status;
}

/* Runs the whole suite on a started cluster: every group size, then the big parts. Returns 1 when
 * the backend answered 501 not_implemented (the variant is not in this build yet), else 0; fails
 * the test on any other answer than 200 "ok". */
static int suite(cluster_t *c, const char *variant)
{
    http_resp_t r;
    long st;
    int ok;

    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        st = run_group(c, SIZES[i], variant, "", &r);
        if (st == 501 && strstr(r.body, "not_implemented") != NULL) {
            fprintf(stderr, "variant '%s' is not implemented in this build: %s\n", variant, r.body);
            http_resp_free(&r);
            return 1;
        }
        ok = st == 200 && strcmp(r.body, "ok") == 0;
        if (!ok) {
            fprintf(stderr, "group of %d (%s): status %ld: %s\n", SIZES[i], variant, st, r.body);
            cluster_dump_logs(c);
        }
        http_resp_free(&r);
        assert_true(ok);
    }
    st = run_group(c, 3, variant, "big=1", &r);
    ok = st == 200 && strcmp(r.body, "ok") == 0;
    if (!ok) {
        fprintf(stderr, "big parts (%s): status %ld: %s\n", variant, st, r.body);
        cluster_dump_logs(c);
    }
    http_resp_free(&r);
    assert_true(ok);
    return 0;
}

static void start(int nworkers, const char *worker_args, const char *controller_args)
{
    C_started = 1;
    assert_int_equal(cluster_start_with(&C, nworkers, worker_args, controller_args), 0);
    assert_int_equal(deploy_colls(&C), 0);
}

static void test_shm(void **state)
{
    http_resp_t r;
    (void)state;

    start(1, "--slots 17", NULL);
    assert_int_equal(suite(&C, "transport=shm"), 0);
    /* The negative control: rank 2 corrupts one byte of its odd-sized gather part; the answer
     * must say which rank saw what, in which collective. */
    assert_int_equal(run_group(&C, 4, "", "lie=2", &r), 502);
    assert_non_null(strstr(r.body, "rank 0 of 4: gather root 0 size odd: part of rank 2: byte "
                                   "2049 of 4099"));
    http_resp_free(&r);
}

static void test_spread(void **state)
{
    (void)state;

    /* 17 ranks round-robin over two nodes: 9 and 8. */
    start(2, "--slots 9", NULL);
    if (suite(&C, "spread=1"))
        skip();
    /* The ranks really ran on both nodes: each worker reports a pool of colls instances (they
     * stay warm after the groups; pools come with the workers' periodic reports). */
    int pools = 0;
    for (int i = 0; i < 100 && pools < 2; i++) {
        http_resp_t r;
        pools = 0;
        assert_int_equal(http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r), 0);
        for (const char *p = r.body; (p = strstr(p, "{\"function\":\"colls\"")) != NULL; p++)
            pools++;
        http_resp_free(&r);
        if (pools < 2)
            usleep(50000);
    }
    assert_int_equal(pools, 2);
}

/* Whether the controller in this build takes --redis (its --help lists it). */
static int controller_has_redis(const char *build)
{
    char cmd[600];

    snprintf(cmd, sizeof(cmd), "'%s/shoal-controller' --help 2>&1 | grep -q -- --redis", build);
    return system(cmd) == 0;
}

/* Redis's total_commands_processed (INFO stats, through redis-cli), or -1. */
static long redis_commands(int port)
{
    char cmd[128], line[256];
    long n = -1;
    FILE *f;

    snprintf(cmd, sizeof(cmd), "redis-cli -h 127.0.0.1 -p %d info stats", port);
    if ((f = popen(cmd, "r")) == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "total_commands_processed:%ld", &n) == 1)
            break;
    pclose(f);
    return n;
}

static void test_redis(void **state)
{
    char args[128];
    int port;
    (void)state;

    if (!controller_has_redis(getenv("SHOAL_BUILD") ? getenv("SHOAL_BUILD") : "build")) {
        fprintf(stderr, "the controller in this build has no --redis flag yet\n");
        skip();
    }
    REDIS = harness_redis_start(&port);
    assert_true(REDIS > 0);
    snprintf(args, sizeof(args), "--redis redis://127.0.0.1:%d", port);
    start(1, "--slots 17", args);
    long before = redis_commands(port);
    if (suite(&C, "transport=redis"))
        skip();
    /* The data really went through Redis: the suite's collectives are thousands of commands. */
    long after = redis_commands(port);
    fprintf(stderr, "redis: %ld commands during the suite\n", after - before);
    assert_true(before >= 0 && after - before > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_shm, teardown),
        cmocka_unit_test_teardown(test_spread, teardown),
        cmocka_unit_test_teardown(test_redis, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
