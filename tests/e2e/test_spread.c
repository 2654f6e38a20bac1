/*
 * End-to-end tests of groups spread over two nodes (issue 3): a controller and two workers (two
 * nodes on one machine) with 8 slots each, the workers moving group data between them over their
 * io_uring peer transport.
 *
 * - ?spread=1 places ranks round-robin over both nodes (seen in /v1/workers while a group runs)
 *   and the collectives of the "gang" function give the same answer as on one node;
 * - a group larger than one node (9..16 ranks on 8 + 8 slots) is packed over both without
 *   spread, and one larger than the cluster is refused;
 * - a rank that crashes, fails or hangs on either node fails the whole group promptly, naming
 *   the global rank;
 * - afterwards no arena is left mapped and no fd leaked in either worker.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;
/* The workers have no peer transport (io_uring refused here): nothing of this can run. */
static int no_peer;

#define NEED_PEER()                                                                                \
    do {                                                                                           \
        if (no_peer)                                                                               \
            skip();                                                                                \
    } while (0)

/* clang-format off */
/* The "gang" of fns.h; "sleep<ms>" holds every rank that long before a barrier. */
static const char FN_GANG[] = FN_GANG_START
    " if (!strncmp(cmd, \"sleep\", 5)) { usleep((useconds_t)atoi(cmd + 5) * 1000);\n"
    "  if ((rc = shoal_barrier(c)) < 0) return shoal_error(c, \"barrier: %d\", rc); }\n"
    FN_GANG_COLLECTIVES FN_GANG_ANSWER;
/* clang-format on */

static int setup(void **state)
{
    char so[512];
    (void)state;
    if (cluster_start(&C, 2, "--slots 8") < 0)
        return -1;
    if (build_function(&C, "gang", FN_GANG, so, sizeof(so)) < 0 ||
        deploy_file(&C, "gang", so, "timeout_ms=20000&max_instances=16", NULL) != 201 ||
        deploy_file(&C, "gang-short", so, "timeout_ms=1500", NULL) != 201) {
        cluster_dump_logs(&C);
        return -1;
    }
    http_resp_t r;
    if (http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r) == 0) {
        const char *p = strstr(r.body, "\"peer\":\"1");
        no_peer = p == NULL || strstr(p + 1, "\"peer\":\"1") == NULL;
        http_resp_free(&r);
    }
    if (no_peer)
        fprintf(stderr, "the workers have no peer transport (io_uring unavailable?): skipping\n");
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
    if (r->status != 200 || strcmp(r->body, want) != 0) {
        fprintf(stderr, "group of %d: status %ld, body: %.400s\n", n, r->status, r->body);
        cluster_dump_logs(&C);
    }
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, want);
}

/* The "group_ranks" of every worker in /v1/workers, in listing order; how many were found. */
static int group_ranks(long out[2])
{
    http_resp_t r;
    int n = 0;
    if (http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r) != 0)
        return 0;
    for (const char *p = r.body; n < 2 && (p = strstr(p, "\"group_ranks\":")) != NULL; p++)
        out[n++] = atol(p + strlen("\"group_ranks\":"));
    http_resp_free(&r);
    return n;
}

/* Mappings of group arenas in a process (the worker's own and its peer transport's). */
static int arena_maps(pid_t pid)
{
    char path[64], line[512];
    int n = 0;
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, "shoal-arena") != NULL;
    fclose(f);
    return n;
}

static void test_spread_collectives(void **state)
{
    static const int SIZES[] = {2, 3, 4, 8, 16};
    http_resp_t r;
    (void)state;
    NEED_PEER();
    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        char q[48];
        snprintf(q, sizeof(q), "group=%d&spread=1", SIZES[i]);
        invoke("gang", q, "", &r);
        expect_group_ok(&r, SIZES[i]);
        http_resp_free(&r);
    }
    /* transport=tcp asks for the same. */
    invoke("gang", "group=5&transport=tcp", "", &r);
    expect_group_ok(&r, 5);
    http_resp_free(&r);
}

/* While a spread group of 4 runs, each node holds 2 of its ranks. */
static void test_spread_placement(void **state)
{
    long ranks[2] = {0, 0};
    int both = 0, st;
    pid_t kid;
    (void)state;
    NEED_PEER();
    if ((kid = fork()) == 0) {
        http_resp_t r;
        if (http_request(&C, "POST", "/v1/functions/gang/invoke?group=4&spread=1", "sleep1500", 9,
                         NULL, &r) < 0)
            _exit(2);
        int ok = r.status == 200;
        if (!ok)
            fprintf(stderr, "sleeping group: %ld %s\n", r.status, r.body);
        http_resp_free(&r);
        _exit(ok ? 0 : 1);
    }
    for (int i = 0; i < 100 && !both; i++) {
        usleep(20000);
        both = group_ranks(ranks) == 2 && ranks[0] == 2 && ranks[1] == 2;
    }
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    if (!both)
        fprintf(stderr, "group_ranks seen: %ld %ld\n", ranks[0], ranks[1]);
    assert_true(both);
}

/* Without spread a group stays on one node when one can hold it, and is packed over both when
 * none can; past the cluster it is refused. */
static void test_pack_over_nodes(void **state)
{
    http_resp_t r;
    (void)state;
    NEED_PEER();
    invoke("gang", "group=12", "", &r);
    expect_group_ok(&r, 12);
    http_resp_free(&r);
    invoke("gang", "group=17&spread=1", "", &r);
    expect_error(&r, 400, "group_too_large");
    http_resp_free(&r);
    invoke("gang", "group=4&spread=1&transport=shm", "", &r);
    expect_error(&r, 400, "bad_query");
    http_resp_free(&r);
}

/* A failing rank on either node ends the whole group promptly, named by its global rank. */
static void test_spread_failures(void **state)
{
    http_resp_t r;
    (void)state;
    NEED_PEER();
    /* Round-robin: rank 3 lives on node 1, rank 2 on node 0. */
    invoke("gang", "group=4&spread=1", "crash3", &r);
    expect_error(&r, 502, "function_crashed");
    assert_non_null(strstr(r.body, "rank 3"));
    assert_non_null(strstr(r.body, "SIGSEGV"));
    assert_true(r.total_s < 5.0);
    http_resp_free(&r);
    invoke("gang", "group=4&spread=1", "fail2", &r);
    expect_error(&r, 502, "function_error");
    assert_non_null(strstr(r.body, "rank 2 says no"));
    assert_true(r.total_s < 5.0);
    http_resp_free(&r);
    invoke("gang-short", "group=4&spread=1", "hang1", &r);
    expect_error(&r, 504, "timeout");
    assert_non_null(strstr(r.body, "rank 1"));
    assert_true(r.total_s >= 1.4 && r.total_s < 7.0);
    http_resp_free(&r);
    /* And the platform goes on. */
    invoke("gang", "group=4&spread=1", "", &r);
    expect_group_ok(&r, 4);
    http_resp_free(&r);
}

/* Nothing of a group outlives it: no arena mapped, no fd left, after many groups, good and bad. */
static void test_no_leaks(void **state)
{
    http_resp_t r;
    int fds[2];
    (void)state;
    NEED_PEER();
    invoke("gang", "group=6&spread=1", "", &r);
    expect_group_ok(&r, 6);
    http_resp_free(&r);
    for (int w = 0; w < 2; w++)
        fds[w] = fd_count(C.workers[w]);
    for (int i = 0; i < 30; i++) {
        const char *in = i % 10 == 9 ? "fail3" : "";
        invoke("gang", "group=6&spread=1", in, &r);
        if (in[0] == '\0')
            expect_group_ok(&r, 6);
        else
            expect_error(&r, 502, "function_error");
        http_resp_free(&r);
    }
    usleep(300000);
    for (int w = 0; w < 2; w++) {
        assert_int_equal(arena_maps(C.workers[w]), 0);
        int now = fd_count(C.workers[w]);
        if (now > fds[w] + 2)
            fprintf(stderr, "worker %d: %d fds before, %d after\n", w, fds[w], now);
        assert_true(now <= fds[w] + 2);
    }
}

/* A node's worker dies while its ranks run: the group fails promptly on the other node too (its
 * peer connection breaks), and once the worker is back spread groups run again. */
static void test_worker_lost(void **state)
{
    http_resp_t r;
    int st;
    pid_t kid;
    long ranks[2] = {0, 0};
    (void)state;
    NEED_PEER();
    if ((kid = fork()) == 0) {
        http_resp_t rr;
        if (http_request(&C, "POST", "/v1/functions/gang/invoke?group=4&spread=1", "sleep10000", 10,
                         NULL, &rr) < 0)
            _exit(2);
        int ok = rr.status == 502 && strstr(rr.body, "worker_lost") != NULL && rr.total_s < 5.0;
        if (!ok)
            fprintf(stderr, "group on a lost worker: %ld %s (%.1f s)\n", rr.status, rr.body,
                    rr.total_s);
        http_resp_free(&rr);
        _exit(ok ? 0 : 1);
    }
    for (int i = 0; i < 200 && !(ranks[0] == 2 && ranks[1] == 2); i++) {
        usleep(20000);
        group_ranks(ranks);
    }
    assert_true(ranks[0] == 2 && ranks[1] == 2);
    cluster_kill_worker(&C, 1, SIGKILL);
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* Node 0 let go of its ranks at once (not at the 20 s deadline): its arena is gone. */
    for (int i = 0; i < 100 && arena_maps(C.workers[0]) != 0; i++)
        usleep(20000);
    assert_int_equal(arena_maps(C.workers[0]), 0);
    assert_int_equal(cluster_start_worker(&C, 1), 0);
    assert_int_equal(cluster_wait_workers(&C, 2, 10000), 0);
    invoke("gang", "group=4&spread=1", "", &r);
    expect_group_ok(&r, 4);
    http_resp_free(&r);
}

/* `shoal up --workers 2` runs two nodes (local0, local1) with peer ports of their own, a spread
 * group runs over them, and Ctrl-C stops everything cleanly. */
static void test_up_workers(void **state)
{
    char listen[64], wlisten[64], home[300], bin[300], so[512], log[400];
    cluster_t U;
    http_resp_t r;
    pid_t up;
    int st;
    (void)state;
    NEED_PEER();

    memset(&U, 0, sizeof(U));
    snprintf(U.build, sizeof(U.build), "%s", C.build);
    U.http_port = cluster_free_port();
    do
        U.worker_port = cluster_free_port();
    while (U.worker_port == U.http_port);
    snprintf(U.url, sizeof(U.url), "http://127.0.0.1:%d", U.http_port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", U.http_port);
    snprintf(wlisten, sizeof(wlisten), "127.0.0.1:%d", U.worker_port);
    snprintf(home, sizeof(home), "%s/up-home", C.home);
    snprintf(bin, sizeof(bin), "%s/shoal", C.build);
    snprintf(log, sizeof(log), "%s/up.log", C.home);
    if ((up = fork()) == 0) {
        if (freopen(log, "a", stderr) == NULL || freopen(log, "a", stdout) == NULL)
            _exit(126);
        execl(bin, bin, "up", "--listen", listen, "--worker-listen", wlisten, "--home", home,
              "--workers", "2", "--slots", "4", (char *)NULL);
        _exit(127);
    }
    snprintf(U.home, sizeof(U.home), "%.200s", home);
    for (int i = 0; i < 150 && cluster_read_token(&U) < 0; i++)
        usleep(100000);
    assert_int_equal(cluster_wait_workers(&U, 2, 15000), 0);
    assert_int_equal(http_request(&U, "GET", "/v1/workers", NULL, 0, NULL, &r), 0);
    assert_non_null(strstr(r.body, "\"node\":\"local0\""));
    assert_non_null(strstr(r.body, "\"node\":\"local1\""));
    /* Each announced a peer address of its own. */
    const char *p0 = strstr(r.body, "\"peer\":\"127.0.0.1:");
    assert_non_null(p0);
    const char *p1 = strstr(p0 + 1, "\"peer\":\"127.0.0.1:");
    assert_non_null(p1);
    assert_true(strncmp(p0, p1, strcspn(p0 + 8, "\"") + 8) != 0);
    http_resp_free(&r);
    assert_int_equal(build_function(&C, "gang", FN_GANG, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&U, "gang", so, "timeout_ms=20000", NULL), 201);
    assert_int_equal(
        http_request(&U, "POST", "/v1/functions/gang/invoke?group=6&spread=1", "", 0, NULL, &r), 0);
    expect_group_ok(&r, 6);
    http_resp_free(&r);
    kill(up, SIGINT);
    assert_int_equal(waitpid(up, &st, 0), up);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        size_t len;
        char *text = read_whole(log, &len);
        fprintf(stderr, "shoal up ended with wait status %d; its log:\n%s\n", st, text ? text : "");
        free(text);
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_collectives), cmocka_unit_test(test_spread_placement),
        cmocka_unit_test(test_pack_over_nodes),    cmocka_unit_test(test_spread_failures),
        cmocka_unit_test(test_no_leaks),           cmocka_unit_test(test_worker_lost),
        cmocka_unit_test(test_up_workers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
