/*
 * End-to-end tests of the platform core against real processes: a controller and one worker on
 * free loopback ports. Deploy (.so and C source), invoke, update, delete, every bad upload, a
 * crashing, failing and hanging function, request metadata, shoal_call, concurrency and a
 * 32 MiB round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;

static int setup(void **state)
{
    (void)state;
    if (cluster_start(&C, 1, NULL) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

static int deploy_src(const char *name, const char *src, const char *query)
{
    char so[512];
    if (build_function(&C, name, src, so, sizeof(so)) < 0)
        return -1;
    return deploy_file(&C, name, so, query, NULL);
}

static void invoke(const char *name, const char *query, const void *in, size_t len, http_resp_t *r)
{
    assert_int_equal(http_invoke(&C, name, query, in, len, r), 0);
}

static void expect_error(const http_resp_t *r, long status, const char *code)
{
    char want[128];
    if (r->status != status)
        fprintf(stderr, "status %ld, body: %.400s\n", r->status, r->body);
    assert_int_equal(r->status, status);
    snprintf(want, sizeof(want), "\"code\":\"%s\"", code);
    if (strstr(r->body, want) == NULL) {
        /* Allow a space after the colon. */
        snprintf(want, sizeof(want), "\"code\": \"%s\"", code);
        if (strstr(r->body, want) == NULL)
            fprintf(stderr, "expected code %s in: %.400s\n", code, r->body);
        assert_non_null(strstr(r->body, want));
    }
}

static void test_deploy_so_and_invoke(void **state)
{
    char so[512];
    http_resp_t r;
    (void)state;

    snprintf(so, sizeof(so), "%s/examples/hello.so", C.build);
    assert_int_equal(deploy_file(&C, "hello", so, NULL, &r), 201);
    assert_non_null(strstr(r.body, "\"name\""));
    assert_non_null(strstr(r.body, "\"version\""));
    assert_non_null(strstr(r.body, "\"sha256\""));
    http_resp_free(&r);
    invoke("hello", NULL, "hi", 2, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello, hi");
    assert_true(strlen(r.invocation_id) >= 8);
    http_resp_free(&r);
    /* Read back. */
    assert_int_equal(http_request(&C, "GET", "/v1/functions/hello", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "hello"));
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/functions", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"hello\""));
    http_resp_free(&r);
}

static void test_deploy_source(void **state)
{
    char path[512];
    size_t len;
    http_resp_t r;
    char *src;
    (void)state;

    snprintf(path, sizeof(path), "%s/examples/upper/upper.c", C.src);
    assert_non_null(src = read_whole(path, &len));
    assert_int_equal(deploy_bytes(&C, "upper", src, len, NULL, NULL), 201);
    free(src);
    invoke("upper", NULL, "Shoal rocks", 11, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "SHOAL ROCKS");
    http_resp_free(&r);
}

static void test_update_serves_new_code(void **state)
{
    char so[512];
    http_resp_t r;
    (void)state;

    assert_int_equal(deploy_src("ver", FN_VERSION("one"), NULL), 201);
    for (int round = 0; round < 3; round++) {
        char marker[16];
        snprintf(marker, sizeof(marker), "v%d", round + 2);
        invoke("ver", NULL, "", 0, &r);
        assert_int_equal(r.status, 200);
        http_resp_free(&r);
        /* A new version replaces the warm instance's code for every later invocation. */
        char src[1024];
        snprintf(src, sizeof(src),
                 FN_HEAD "int shoal_main(shoal_ctx *c) { return shoal_output(c, \"%s\", %zu); }\n",
                 marker, strlen(marker));
        assert_int_equal(build_function(&C, "ver", src, so, sizeof(so)), 0);
        assert_int_equal(deploy_file(&C, "ver", so, NULL, &r), 200);
        char want[32];
        snprintf(want, sizeof(want), "\"version\":%d", round + 2);
        if (strstr(r.body, want) == NULL) {
            snprintf(want, sizeof(want), "\"version\": %d", round + 2);
            assert_non_null(strstr(r.body, want));
        }
        http_resp_free(&r);
        for (int i = 0; i < 5; i++) {
            invoke("ver", NULL, "", 0, &r);
            assert_int_equal(r.status, 200);
            assert_string_equal(r.body, marker);
            http_resp_free(&r);
        }
    }
}

static void test_delete_and_404(void **state)
{
    http_resp_t r;
    (void)state;

    assert_int_equal(deploy_src("doomed", FN_VERSION("here"), NULL), 201);
    assert_int_equal(http_request(&C, "DELETE", "/v1/functions/doomed", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    invoke("doomed", NULL, "", 0, &r);
    expect_error(&r, 404, "not_found");
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/functions/doomed", NULL, 0, NULL, &r), 0);
    expect_error(&r, 404, "not_found");
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "DELETE", "/v1/functions/doomed", NULL, 0, NULL, &r), 0);
    expect_error(&r, 404, "not_found");
    http_resp_free(&r);
    invoke("never-deployed", NULL, "", 0, &r);
    expect_error(&r, 404, "not_found");
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/nothing-here", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    /* Re-creating a deleted name is a create, and its version goes on increasing. */
    assert_int_equal(deploy_src("doomed", FN_VERSION("back"), NULL), 201);
    invoke("doomed", NULL, "", 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "back");
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "POST", "/v1/functions/doomed", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    http_resp_free(&r);
}

static void test_bad_uploads(void **state)
{
    char so[512];
    size_t len;
    http_resp_t r;
    char *elf;
    (void)state;

    assert_int_equal(deploy_bytes(&C, "bad", "", 0, NULL, &r), 400);
    expect_error(&r, 400, "empty_artifact");
    http_resp_free(&r);

    snprintf(so, sizeof(so), "%s/examples/hello.so", C.build);
    assert_non_null(elf = read_whole(so, &len));
    /* Truncated at several points: inside the header, inside the tables, near the end. */
    size_t cuts[] = {10, 63, 64, 200, len / 2, len - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        assert_int_equal(deploy_bytes(&C, "bad", elf, cuts[i], NULL, &r), 400);
        expect_error(&r, 400, "bad_artifact");
        http_resp_free(&r);
    }
    /* Another architecture: e_machine = EM_AARCH64 (183). */
    elf[18] = (char)183;
    elf[19] = 0;
    assert_int_equal(deploy_bytes(&C, "bad", elf, len, NULL, &r), 400);
    expect_error(&r, 400, "wrong_architecture");
    http_resp_free(&r);
    /* 32-bit class. */
    elf[18] = 62;
    elf[4] = 1;
    assert_int_equal(deploy_bytes(&C, "bad", elf, len, NULL, &r), 400);
    expect_error(&r, 400, "wrong_architecture");
    http_resp_free(&r);
    free(elf);

    /* A binary that is no ELF. */
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 7919u >> 3);
    assert_int_equal(deploy_bytes(&C, "bad", junk, sizeof(junk), NULL, &r), 400);
    expect_error(&r, 400, "bad_artifact");
    http_resp_free(&r);

    /* An ELF shared object that does not export shoal_main. */
    assert_int_equal(
        build_function(&C, "nomain", "int not_main(void) { return 1; }\n", so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "bad", so, NULL, &r), 400);
    expect_error(&r, 400, "bad_artifact");
    assert_non_null(strstr(r.body, "shoal_main"));
    http_resp_free(&r);

    /* C source that does not compile: the compiler's diagnostics come back. */
    const char *broken =
        "#include <shoal.h>\nint shoal_main(shoal_ctx *c) { return undefined_thing; }\n";
    assert_int_equal(deploy_bytes(&C, "bad", broken, strlen(broken), NULL, &r), 400);
    expect_error(&r, 400, "compile_error");
    assert_non_null(strstr(r.body, "undefined_thing"));
    http_resp_free(&r);

    /* Bad names. */
    const char *names[] = {
        "Hello", "-dash", "_under",
        "a.b",   "x%20y", "a123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        assert_int_equal(deploy_bytes(&C, names[i], "x", 1, NULL, &r), 400);
        expect_error(&r, 400, "bad_name");
        http_resp_free(&r);
    }
    /* Bad query values name the parameter. */
    const char *queries[] = {
        "timeout_ms=0",       "timeout_ms=abc", "timeout_ms=900001", "memory_mb=1",
        "memory_mb=99999999", "min_warm=-1",    "max_instances=0",   "min_warm=5&max_instances=2"};
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        assert_int_equal(deploy_src("okname", FN_VERSION("q"), queries[i]), 400);
    }
    assert_int_equal(deploy_src("okname", FN_VERSION("q"), "timeout_ms=0"), 400);
    assert_int_equal(deploy_bytes(&C, "okname", "x", 1, "memory_mb=zzz", &r), 400);
    expect_error(&r, 400, "bad_query");
    assert_non_null(strstr(r.body, "memory_mb"));
    http_resp_free(&r);

    /* Oversized: above the default 64 MiB limit. */
    size_t big = (64u << 20) + 1024;
    char *huge = calloc(1, big);
    assert_non_null(huge);
    assert_int_equal(deploy_bytes(&C, "bad", huge, big, NULL, &r), 413);
    http_resp_free(&r);
    free(huge);

    /* None of it was stored, and nothing half-written is left behind. */
    assert_int_equal(http_request(&C, "GET", "/v1/functions/bad", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/functions/okname", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/artifacts", C.home);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        assert_null(strstr(e->d_name, ".tmp"));
    closedir(d);
    /* The controller survived all of it. */
    assert_int_equal(http_request(&C, "GET", "/healthz", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void test_failures_are_reported_and_survived(void **state)
{
    http_resp_t r;
    (void)state;

    assert_int_equal(deploy_src("moody", FN_MOODY, "timeout_ms=700"), 201);
    invoke("moody", NULL, "fine", 4, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "fine");
    http_resp_free(&r);

    invoke("moody", NULL, "crash", 5, &r);
    expect_error(&r, 502, "function_crashed");
    assert_non_null(strstr(r.body, "SIGSEGV"));
    assert_true(strlen(r.invocation_id) >= 8);
    http_resp_free(&r);
    invoke("moody", NULL, "abort", 5, &r);
    expect_error(&r, 502, "function_crashed");
    assert_non_null(strstr(r.body, "SIGABRT"));
    http_resp_free(&r);
    invoke("moody", NULL, "fail", 4, &r);
    expect_error(&r, 502, "function_error");
    assert_non_null(strstr(r.body, "moody failed on purpose (42)"));
    http_resp_free(&r);
    invoke("moody", NULL, "rc", 2, &r);
    expect_error(&r, 502, "function_error");
    http_resp_free(&r);
    /* A NUL byte in the message must not cost the worker its link to the controller. */
    invoke("moody", NULL, "nul", 3, &r);
    expect_error(&r, 502, "function_error");
    assert_non_null(strstr(r.body, "nul"));
    http_resp_free(&r);
    invoke("moody", NULL, "still", 5, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    const char *stuck[] = {"hang", "spin"};
    for (int i = 0; i < 2; i++) {
        invoke("moody", NULL, stuck[i], strlen(stuck[i]), &r);
        expect_error(&r, 504, "timeout");
        /* The worker enforces the timeout: well before the controller's backstop. */
        assert_true(r.total_s >= 0.6 && r.total_s < 2.5);
        http_resp_free(&r);
    }
    /* The next invocation succeeds on a replaced instance. */
    for (int i = 0; i < 3; i++) {
        invoke("moody", NULL, "again", 5, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "again");
        http_resp_free(&r);
    }
}

static void test_meta_status_headers(void **state)
{
    const char *hdrs[] = {"X-Test: sent-by-test", NULL};
    http_resp_t r;
    (void)state;

    assert_int_equal(deploy_src("meta", FN_META, NULL), 201);
    assert_int_equal(
        http_request(&C, "POST", "/v1/functions/meta/invoke?a=1&b=two", "x", 1, hdrs, &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.custom_header, "from-function");
    assert_non_null(strstr(r.content_type, "text/plain"));
    assert_non_null(strstr(r.body, "method=POST\n"));
    assert_non_null(strstr(r.body, "path=/v1/functions/meta/invoke\n"));
    assert_non_null(strstr(r.body, "query=a=1&b=two\n"));
    assert_non_null(strstr(r.body, "header:x-test=sent-by-test\n"));
    assert_non_null(strstr(r.body, "function=meta\n"));
    assert_non_null(strstr(r.body, "nope=(null)\n"));
    char want[128];
    snprintf(want, sizeof(want), "invocation_id=%s\n", r.invocation_id);
    assert_non_null(strstr(r.body, want));
    http_resp_free(&r);
}

static void test_shoal_call(void **state)
{
    char so[512];
    http_resp_t r;
    (void)state;

    snprintf(so, sizeof(so), "%s/examples/chain.so", C.build);
    assert_true(deploy_file(&C, "chain", so, NULL, NULL) / 100 == 2);
    snprintf(so, sizeof(so), "%s/examples/hello.so", C.build);
    assert_true(deploy_file(&C, "hello", so, NULL, NULL) / 100 == 2);
    char path[512];
    size_t len;
    snprintf(path, sizeof(path), "%s/examples/upper/upper.c", C.src);
    char *src = read_whole(path, &len);
    assert_true(deploy_bytes(&C, "upper", src, len, NULL, NULL) / 100 == 2);
    free(src);
    invoke("chain", NULL, "fish", 4, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello, FISH");
    http_resp_free(&r);

    assert_int_equal(deploy_src("caller", FN_CALLER, NULL), 201);
    for (int i = 0; i < 20; i++) {
        invoke("caller", NULL, "upper\nabc", 9, &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "ABC");
        http_resp_free(&r);
    }
    /* A call to a missing function fails cleanly in the caller. */
    invoke("caller", NULL, "missing-fn\nabc", 14, &r);
    expect_error(&r, 502, "function_error");
    assert_non_null(strstr(r.body, "call missing-fn failed"));
    http_resp_free(&r);
}

static void test_big_round_trip(void **state)
{
    size_t n = 32u << 20;
    unsigned char *in = malloc(n);
    http_resp_t r;
    (void)state;

    assert_non_null(in);
    for (size_t i = 0; i < n; i++)
        in[i] = (unsigned char)((i * 2654435761u) >> 13);
    assert_int_equal(deploy_src("echo", FN_ECHO, NULL), 201);
    invoke("echo", NULL, in, n, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, n);
    assert_memory_equal(r.body, in, n);
    http_resp_free(&r);
    free(in);
}

/* Several processes invoke several functions at once; every answer is the right one. */
static void test_concurrent(void **state)
{
    enum { PROCS = 6, ROUNDS = 40 };
    pid_t kids[PROCS];
    (void)state;

    assert_int_equal(deploy_src("conc-a", FN_VERSION("AAA"), NULL) / 100, 2);
    assert_int_equal(deploy_src("conc-b", FN_ECHO, NULL) / 100, 2);
    for (int k = 0; k < PROCS; k++) {
        if ((kids[k] = fork()) == 0) {
            int bad = 0;
            for (int i = 0; i < ROUNDS; i++) {
                http_resp_t r;
                char in[64];
                int n = snprintf(in, sizeof(in), "proc %d round %d", k, i);
                const char *fn = (i + k) % 2 ? "conc-a" : "conc-b";
                char path[128];
                snprintf(path, sizeof(path), "/v1/functions/%s/invoke", fn);
                if (http_request(&C, "POST", path, in, (size_t)n, NULL, &r) < 0) {
                    bad++;
                    continue;
                }
                const char *want = (i + k) % 2 ? "AAA" : in;
                if (r.status != 200 || strcmp(r.body, want) != 0) {
                    fprintf(stderr, "proc %d round %d: %ld %s\n", k, i, r.status, r.body);
                    bad++;
                }
                http_resp_free(&r);
            }
            _exit(bad ? 1 : 0);
        }
    }
    for (int k = 0; k < PROCS; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

static void test_cluster_endpoints(void **state)
{
    http_resp_t r;
    (void)state;

    assert_int_equal(http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "node0"));
    assert_non_null(strstr(r.body, "slots"));
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/metrics", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "shoal_invocations_total"));
    assert_non_null(strstr(r.body, "shoal_workers 1"));
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/healthz", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_so_and_invoke),
        cmocka_unit_test(test_deploy_source),
        cmocka_unit_test(test_update_serves_new_code),
        cmocka_unit_test(test_delete_and_404),
        cmocka_unit_test(test_bad_uploads),
        cmocka_unit_test(test_failures_are_reported_and_survived),
        cmocka_unit_test(test_meta_status_headers),
        cmocka_unit_test(test_shoal_call),
        cmocka_unit_test(test_big_round_trip),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_cluster_endpoints),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
