/*
 * The Redis baseline end to end (?transport=redis): a real cluster whose controller is started
 * with --redis pointing at a redis-server this test starts on a free loopback port.
 *  - tests/e2e/fn_colls.c (shared with the collectives suite) checks every collective byte for
 *    byte as groups of 1, 2, 3 and 8 ranks (roots 0 and last, parts of 0 B, 1 B, odd and mixed
 *    sizes), and once with parts of 64 MiB + 1 B; each must answer "ok";
 *  - the groups really went through Redis (its command statistics count SETs and BLPOPs), and
 *    after each group no key of it is left;
 *  - a rank that crashes while its peers wait for it in a collective ends the group with 502
 *    naming it, long before the function's timeout, and leaves no key behind; so does a rank
 *    that returns from shoal_main while a peer still waits for it;
 *  - bad --redis values are refused at start with a clear message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/e2e/harness.h"

static cluster_t C;
static int C_started;
static pid_t REDIS;
static int PORT;

static int teardown(void **state)
{
    int err = 0;
    (void)state;

    if (C_started && cluster_stop(&C) < 0)
        err = -1;
    C_started = 0;
    harness_redis_stop(REDIS);
    REDIS = 0;
    return err;
}

/* The two-word command "a b" on a fresh connection to the test's Redis; the reply (free it) or
 * NULL. */
static redisReply *redis_cmd(const char *a, const char *b)
{
    redisContext *c = redisConnect("127.0.0.1", PORT);
    redisReply *r = NULL;

    if (c != NULL && c->err == 0)
        r = redisCommand(c, "%s %s", a, b);
    redisFree(c);
    return r;
}

/* Keys of any group still in Redis (all of them start with "shoal:"). */
static long keys_left(void)
{
    redisReply *r = redis_cmd("KEYS", "shoal:*");
    long n = -1;

    if (r != NULL && r->type == REDIS_REPLY_ARRAY) {
        n = (long)r->elements;
        for (size_t i = 0; i < r->elements && i < 10; i++)
            fprintf(stderr, "  key left: %s\n", r->element[i]->str);
    }
    freeReplyObject(r);
    return n;
}

/* How often Redis ran command name since the last CONFIG RESETSTAT. */
static long calls_of(const char *name)
{
    redisReply *r = redis_cmd("INFO", "commandstats");
    char pat[64];
    const char *p;
    long n = 0;

    snprintf(pat, sizeof(pat), "cmdstat_%s:calls=", name);
    if (r != NULL && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, pat)) != NULL)
        n = strtol(p + strlen(pat), NULL, 10);
    freeReplyObject(r);
    return n;
}

/* A counter of INFO stats (e.g. total_net_input_bytes), -1 if absent. */
static long long stat_of(const char *name)
{
    redisReply *r = redis_cmd("INFO", "stats");
    char pat[64];
    const char *p;
    long long n = -1;

    snprintf(pat, sizeof(pat), "\n%s:", name);
    if (r != NULL && r->type == REDIS_REPLY_STRING && (p = strstr(r->str, pat)) != NULL)
        n = strtoll(p + strlen(pat), NULL, 10);
    freeReplyObject(r);
    return n;
}

static void start_cluster(void)
{
    char args[128], so[512];
    int st;

    REDIS = harness_redis_start(&PORT);
    assert_true(REDIS > 0);
    snprintf(args, sizeof(args), "--redis redis://localhost:%d/", PORT);
    C_started = 1;
    assert_int_equal(cluster_start_with(&C, 1, "--slots 9", args), 0);
    snprintf(so, sizeof(so), "%s/tests/e2e/fn_colls.so", C.build);
    st = deploy_file(&C, "colls", so, "timeout_ms=60000&memory_mb=2048", NULL);
    if (st != 201)
        cluster_dump_logs(&C);
    assert_int_equal(st, 201);
}

static long invoke(const char *fn, const char *query, http_resp_t *r, double *secs)
{
    char path[256];
    struct timespec t0, t1;

    snprintf(path, sizeof(path), "/v1/functions/%s/invoke?%s", fn, query);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (http_request(&C, "POST", path, "", 0, NULL, r) < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (secs != NULL)
        *secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    fprintf(stderr, "  %-50s %ld %.80s\n", path, r->status, r->body);
    return r->status;
}

static void test_collectives(void **state)
{
    static const int SIZES[] = {1, 2, 3, 8};
    char q[64];
    http_resp_t r;
    (void)state;

    start_cluster();
    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        freeReplyObject(redis_cmd("CONFIG", "RESETSTAT"));
        snprintf(q, sizeof(q), "group=%d&transport=redis", SIZES[i]);
        if (invoke("colls", q, &r, NULL) != 200 || strcmp(r.body, "ok") != 0)
            cluster_dump_logs(&C);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "ok");
        http_resp_free(&r);
        if (SIZES[i] > 1) {
            /* The data went through Redis: parts were SET and waited for with BLPOP. */
            assert_true(calls_of("set") > 0);
            assert_true(calls_of("blpop") > 0);
        }
        assert_int_equal(keys_left(), 0);
    }
    /* The worker hands every rank's socket over and keeps none: its fd count stays flat. */
    {
        int before = fd_count(C.workers[0]), after;
        for (int i = 0; i < 30; i++) {
            assert_int_equal(invoke("colls", "group=3&transport=redis", &r, NULL), 200);
            http_resp_free(&r);
        }
        after = fd_count(C.workers[0]);
        fprintf(stderr, "  worker fds: %d before, %d after 30 groups\n", before, after);
        assert_true(before > 0);
        assert_int_equal(after, before);
    }
    /* Parts of 64 MiB + 1 B, several chunks each; they really crossed Redis. */
    freeReplyObject(redis_cmd("CONFIG", "RESETSTAT"));
    if (invoke("colls", "group=3&transport=redis&big=1", &r, NULL) != 200)
        cluster_dump_logs(&C);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    http_resp_free(&r);
    fprintf(stderr, "  Redis received %lld and sent %lld bytes\n", stat_of("total_net_input_bytes"),
            stat_of("total_net_output_bytes"));
    assert_true(stat_of("total_net_input_bytes") > (64ll << 20));
    assert_true(stat_of("total_net_output_bytes") > (64ll << 20));
    assert_int_equal(keys_left(), 0);
}

/* Rank 1 crashes; the others wait for its broadcast. */
#define FN_CRASHER                                                                                 \
    "#include <shoal.h>\n"                                                                         \
    "int shoal_main(shoal_ctx *c) {\n"                                                             \
    "  shoal_buf b; int r;\n"                                                                      \
    "  if (shoal_barrier(c) < 0) return shoal_error(c, \"barrier\");\n"                            \
    "  if (shoal_rank(c) == 1) { volatile int *p = (int *)16; *p = 1; }\n"                         \
    "  r = shoal_bcast(c, 1, \"x\", 1, &b);\n"                                                     \
    "  return r < 0 ? shoal_error(c, \"bcast failed: %d\", r) : 0;\n"                              \
    "}\n"

/* Rank 1 returns at once; rank 0 waits for its broadcast. */
#define FN_LEAVER                                                                                  \
    "#include <shoal.h>\n"                                                                         \
    "int shoal_main(shoal_ctx *c) {\n"                                                             \
    "  shoal_buf b; int r;\n"                                                                      \
    "  if (shoal_rank(c) == 1) return 0;\n"                                                        \
    "  r = shoal_bcast(c, 1, \"x\", 1, &b);\n"                                                     \
    "  return r < 0 ? shoal_error(c, \"bcast failed: %d\", r) : 0;\n"                              \
    "}\n"

static void test_crash(void **state)
{
    char so[512];
    http_resp_t r;
    double secs = 0;
    (void)state;

    start_cluster();
    assert_int_equal(build_function(&C, "crasher", FN_CRASHER, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "crasher", so, "timeout_ms=30000", NULL), 201);
    assert_int_equal(invoke("crasher", "group=3&transport=redis", &r, &secs), 502);
    assert_non_null(strstr(r.body, "rank 1"));
    assert_non_null(strstr(r.body, "crash"));
    http_resp_free(&r);
    /* Bounded: the waiting ranks saw the abort, not the 30 s deadline. */
    assert_true(secs < 5.0);
    assert_int_equal(keys_left(), 0);
    /* A rank that returns while its peer waits for it: named, again long before the deadline. */
    assert_int_equal(build_function(&C, "leaver", FN_LEAVER, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "leaver", so, "timeout_ms=30000", NULL), 201);
    assert_int_equal(invoke("leaver", "group=2&transport=redis", &r, &secs), 502);
    assert_non_null(
        strstr(r.body, "rank 1 returned from shoal_main while other ranks still waited"));
    http_resp_free(&r);
    assert_true(secs < 5.0);
    assert_int_equal(keys_left(), 0);
    /* The node is fine afterwards. */
    assert_int_equal(invoke("colls", "group=3&transport=redis", &r, NULL), 200);
    http_resp_free(&r);
}

/* shoal-controller --redis with a bad value exits 2 naming the problem. */
static int controller_refuses(const char *build, const char *value, const char *words)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd),
             "'%s/shoal-controller' --home /nonexistent/x --redis '%s' 2>&1 | grep -q -- '%s'",
             build, value, words);
    return system(cmd) == 0;
}

static void test_bad_url(void **state)
{
    const char *b = getenv("SHOAL_BUILD") ? getenv("SHOAL_BUILD") : "build";
    (void)state;

    assert_true(controller_refuses(b, "redis://127.0.0.1", "is not redis://HOST:PORT"));
    assert_true(controller_refuses(b, "rediss://127.0.0.1:6379", "only redis:// URLs"));
    assert_true(controller_refuses(b, "redis://u:p@127.0.0.1:6379", "no password"));
    assert_true(controller_refuses(b, "127.0.0.1:70000", "port 1..65535"));
    assert_true(controller_refuses(b, "no-such-host.invalid:6379", "cannot resolve"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_collectives, teardown),
        cmocka_unit_test_teardown(test_crash, teardown),
        cmocka_unit_test(test_bad_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
