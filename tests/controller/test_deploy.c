/* Tests controller/deploy.c: the synchronous pipeline maps every kind of upload to the right
 * outcome (ELF, C source, broken source, garbage, empty, wrong architecture, no shoal_main,
 * oversized, conflicting limits, delete of a missing function), and the asynchronous deployer
 * runs jobs in order on the thread pool, bounds its queue, still commits detached jobs, and
 * ends pending jobs with shutting_down at shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "controller/deploy.h"

static char home[64];
static shoal_registry_t *reg;
static shoal_deploy_opts_t opts;

static const char SRC[] = "typedef struct shoal_ctx shoal_ctx;\n"
                          "int shoal_main(shoal_ctx *ctx) { (void)ctx; return 0; }\n";

static int setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/shoal-test-dep-XXXXXX");
    if (mkdtemp(home) == NULL || shoal_registry_open(home, &reg) < 0)
        return -1;
    memset(&opts, 0, sizeof(opts));
    opts.registry = reg;
    opts.compile.home = home;
    opts.max_artifact = 1u << 20;
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    shoal_registry_close(reg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
    return system(cmd) == 0 ? 0 : -1;
}

/* Compiles SRC through the pipeline once to get real shared-object bytes. */
static void *good_so(size_t *len)
{
    shoal_compile_opts_t co = opts.compile;
    void *so;
    char *diag;
    size_t dl;
    assert_int_equal(shoal_compile_run(&co, "seed", SRC, strlen(SRC), &so, len, &diag, &dl), 0);
    return so;
}

static void expect(const char *name, const void *body, size_t len, const shoal_fn_limits_t *lim,
                   shoal_api_err_t code, const char *needle)
{
    shoal_deploy_result_t res;
    shoal_deploy_run_put(&opts, name, body, len, lim, &res);
    if (res.code != code || (needle && (!res.message || !strstr(res.message, needle))))
        fail_msg("%s: expected %s '%s', got %s '%s'", name, shoal_api_err_code(code),
                 needle ? needle : "", shoal_api_err_code(res.code),
                 res.message ? res.message : "");
    shoal_deploy_result_clear(&res);
}

static void test_pipeline(void **state)
{
    shoal_deploy_result_t res;
    size_t len;
    char *so = good_so(&len);
    (void)state;

    shoal_deploy_run_put(&opts, "fn", SRC, strlen(SRC), NULL, &res);
    assert_int_equal(res.code, SHOAL_API_OK);
    assert_null(res.message);
    assert_int_equal(res.fn.version, 1);
    assert_true(res.created);
    shoal_deploy_result_clear(&res);

    shoal_deploy_run_put(&opts, "fn", so, len, NULL, &res);
    assert_int_equal(res.code, SHOAL_API_OK);
    assert_int_equal(res.fn.version, 2);
    assert_false(res.created);
    assert_int_equal(res.fn.size, len);
    shoal_deploy_result_clear(&res);

    expect("fn", "", 0, NULL, SHOAL_API_EMPTY_ARTIFACT, "empty");
    expect("fn", "\x89PNG\r\n\x1a\n\0\0", 10, NULL, SHOAL_API_BAD_ARTIFACT,
           "neither an ELF shared object nor C source");
    expect("fn", "int shoal_main(void) { return x; }", 34, NULL, SHOAL_API_COMPILE_ERROR,
           "fn.c:1:");
    expect("fn", "int other(void) { return 0; }", 29, NULL, SHOAL_API_BAD_ARTIFACT,
           "does not export shoal_main");
    expect("fn", so, 100, NULL, SHOAL_API_BAD_ARTIFACT, "truncated ELF");
    so[18] = (char)183; /* EM_AARCH64 */
    expect("fn", so, len, NULL, SHOAL_API_WRONG_ARCHITECTURE, "aarch64");
    so[18] = 62;
    shoal_fn_limits_t lim = {.set = SHOAL_LIMIT_MIN_WARM, .min_warm = 64};
    lim.set |= SHOAL_LIMIT_MAX_INSTANCES;
    lim.max_instances = 2;
    expect("fn", so, len, &lim, SHOAL_API_BAD_QUERY, "must not exceed");
    opts.max_artifact = 100;
    expect("fn", so, len, NULL, SHOAL_API_TOO_LARGE, NULL);
    expect("fn", SRC, strlen(SRC), NULL, SHOAL_API_TOO_LARGE, "compiled shared object is larger");
    opts.max_artifact = 1u << 20;

    /* None of the refused uploads created a version. */
    shoal_fn_t fn;
    assert_int_equal(shoal_registry_get(reg, "fn", &fn), 0);
    assert_int_equal(fn.version, 2);

    shoal_deploy_run_delete(&opts, "fn", &res);
    assert_int_equal(res.code, SHOAL_API_OK);
    assert_int_equal(res.fn.version, 2);
    shoal_deploy_result_clear(&res);
    shoal_deploy_run_delete(&opts, "fn", &res);
    assert_int_equal(res.code, SHOAL_API_NOT_FOUND);
    assert_string_equal(res.message, "function 'fn' not found");
    shoal_deploy_result_clear(&res);
    free(so);
}

typedef struct {
    int calls;
    int order[8];
    shoal_api_err_t codes[8];
    uint64_t versions[8];
} seen_t;

static seen_t seen;

static void on_done(void *opaque, const shoal_deploy_result_t *res)
{
    int tag = (int)(intptr_t)opaque;
    seen.order[seen.calls] = tag;
    seen.codes[seen.calls] = res->code;
    seen.versions[seen.calls] = res->fn.version;
    seen.calls++;
}

static void *dup_src(void)
{
    return strdup(SRC);
}

static void test_async(void **state)
{
    uv_loop_t loop;
    shoal_deploy_t *d;
    shoal_deploy_job_t *j1, *j2, *j3, *j4;
    void *body;
    (void)state;

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(shoal_deploy_create(&loop, &opts, 1, 1, &d), 0);
    assert_int_equal(
        shoal_deploy_put(d, "a", dup_src(), strlen(SRC), NULL, on_done, (void *)1, &j1), 0);
    assert_int_equal(
        shoal_deploy_put(d, "a", dup_src(), strlen(SRC), NULL, on_done, (void *)2, &j2), 0);
    /* One running, one pending: the queue is full. The body stays ours on failure. */
    body = dup_src();
    assert_int_equal(shoal_deploy_put(d, "a", body, strlen(SRC), NULL, on_done, (void *)3, &j3),
                     -EAGAIN);
    free(body);
    assert_int_equal(shoal_deploy_busy(d), 2);
    shoal_deploy_detach(j2); /* its client went away */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.order[0], 1);
    assert_int_equal(seen.codes[0], SHOAL_API_OK);
    assert_int_equal(seen.versions[0], 1);
    /* The detached deploy still happened. */
    shoal_fn_t fn;
    assert_int_equal(shoal_registry_get(reg, "a", &fn), 0);
    assert_int_equal(fn.version, 2);

    assert_int_equal(shoal_deploy_delete(d, "a", on_done, (void *)4, &j4), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.order[1], 4);
    assert_int_equal(seen.versions[1], 2);

    /* Shutdown ends pending jobs at once; the running one finishes normally. */
    assert_int_equal(
        shoal_deploy_put(d, "b", dup_src(), strlen(SRC), NULL, on_done, (void *)5, &j1), 0);
    assert_int_equal(
        shoal_deploy_put(d, "c", dup_src(), strlen(SRC), NULL, on_done, (void *)6, &j2), 0);
    shoal_deploy_shutdown(d);
    assert_int_equal(seen.calls, 3);
    assert_int_equal(seen.order[2], 6);
    assert_int_equal(seen.codes[2], SHOAL_API_SHUTTING_DOWN);
    body = dup_src();
    assert_int_equal(shoal_deploy_put(d, "d", body, strlen(SRC), NULL, on_done, (void *)7, &j3),
                     -ESHUTDOWN);
    free(body);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(seen.calls, 4);
    assert_int_equal(seen.order[3], 5);
    /* A compile running at shutdown is cancelled: a clean compile_error, or done if it won. */
    assert_true(seen.codes[3] == SHOAL_API_OK || seen.codes[3] == SHOAL_API_COMPILE_ERROR);
    assert_int_equal(shoal_deploy_busy(d), 0);
    shoal_deploy_destroy(d);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pipeline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
