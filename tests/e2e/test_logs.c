/*
 * End-to-end: function logs reach the API. A function's shoal_log lines travel from its worker
 * to the controller (LOG frames) and come back from GET /v1/functions/{name}/logs and `shoal
 * logs`: with their invocation id, node and rank, in order, filtered by ?since=, ?tail= and
 * ?invocation=, bounded by the controller's --log-kib (oldest dropped and counted), gone with the
 * function; bad queries are 400s naming the parameter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

/* Input "N:TAG": logs "line I of TAG" for I in 0..N-1, then one two-line record, answers TAG. */
#define FN_TALKER                                                                                  \
    FN_HEAD "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c); char s[64] = {0};\n"    \
            " memcpy(s, in.data, in.len < 63 ? in.len : 63); char *tag = strchr(s, ':');\n"        \
            " if (!tag) return shoal_error(c, \"want N:TAG\"); *tag++ = 0;\n"                      \
            " for (int i = 0; i < atoi(s); i++) shoal_log(c, \"line %d of %s\", i, tag);\n"        \
            " shoal_log(c, \"first half\\nsecond half\");\n"                                       \
            " return shoal_output(c, tag, strlen(tag)); }\n"

#define LOG_KIB 16

static cluster_t C;

static int setup(void **state)
{
    char args[64];
    (void)state;
    snprintf(args, sizeof(args), "--log-kib %d", LOG_KIB);
    return cluster_start_with(&C, 1, NULL, args);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

static void deploy_talker(const char *name)
{
    assert_in_range(deploy_bytes(&C, name, FN_TALKER, strlen(FN_TALKER), "", NULL), 200, 201);
}

/* GET path; the JSON answer (status 200 asserted). */
static json_t *get_json(const char *path)
{
    http_resp_t r;
    json_t *j;

    assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    if ((j = json_loads(r.body, 0, NULL)) == NULL)
        fprintf(stderr, "GET %s: not JSON: %s\n", path, r.body);
    assert_non_null(j);
    http_resp_free(&r);
    return j;
}

/* Polls GET path until it holds at least want lines (the worker forwards every 50 ms). */
static json_t *wait_lines(const char *path, size_t want)
{
    for (int i = 0; i < 200; i++) {
        json_t *j = get_json(path);
        if (json_array_size(json_object_get(j, "lines")) >= want)
            return j;
        json_decref(j);
        usleep(20000);
    }
    fail_msg("%s never had %zu lines", path, want);
    return NULL;
}

static const char *text_of(json_t *lines, size_t i)
{
    return json_string_value(json_object_get(json_array_get(lines, i), "text"));
}

static void invoke_ok(const char *name, const char *query, const char *in, char *id)
{
    http_resp_t r;

    assert_int_equal(http_invoke(&C, name, query, in, strlen(in), &r), 0);
    assert_int_equal(r.status, 200);
    if (id != NULL)
        snprintf(id, 80, "%s", r.invocation_id);
    http_resp_free(&r);
}

static void test_lines_and_filters(void **state)
{
    char id1[80], id2[80], path[256];
    json_t *j, *lines, *l;
    uint64_t next;
    (void)state;

    deploy_talker("talker");
    invoke_ok("talker", NULL, "3:one", id1);
    invoke_ok("talker", NULL, "2:two", id2);
    /* 3 + 2 lines + the two-line record twice. */
    j = wait_lines("/v1/functions/talker/logs", 9);
    lines = json_object_get(j, "lines");
    assert_int_equal(json_array_size(lines), 9);
    assert_string_equal(text_of(lines, 0), "line 0 of one");
    assert_string_equal(text_of(lines, 2), "line 2 of one");
    assert_string_equal(text_of(lines, 3), "first half");
    assert_string_equal(text_of(lines, 4), "second half");
    assert_string_equal(text_of(lines, 5), "line 0 of two");
    l = json_array_get(lines, 0);
    assert_string_equal(json_string_value(json_object_get(l, "invocation_id")), id1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(lines, 5), "invocation_id")), id2);
    assert_non_null(json_string_value(json_object_get(l, "node")));
    assert_int_equal(strlen(json_string_value(json_object_get(l, "time"))), 24);
    assert_null(json_object_get(l, "rank"));
    for (size_t i = 1; i < 9; i++)
        assert_true(json_integer_value(json_object_get(json_array_get(lines, i), "seq")) >
                    json_integer_value(json_object_get(json_array_get(lines, i - 1), "seq")));
    next = (uint64_t)json_integer_value(json_object_get(j, "next"));
    assert_int_equal(next, json_integer_value(json_object_get(json_array_get(lines, 8), "seq")));
    assert_int_equal(json_integer_value(json_object_get(j, "dropped")), 0);
    json_decref(j);

    /* ?tail= */
    j = get_json("/v1/functions/talker/logs?tail=2");
    lines = json_object_get(j, "lines");
    assert_int_equal(json_array_size(lines), 2);
    assert_string_equal(text_of(lines, 0), "first half");
    assert_string_equal(text_of(lines, 1), "second half");
    json_decref(j);
    /* ?invocation= */
    snprintf(path, sizeof(path), "/v1/functions/talker/logs?invocation=%s", id1);
    j = get_json(path);
    assert_int_equal(json_array_size(json_object_get(j, "lines")), 5);
    json_decref(j);
    /* ?since= the last line: nothing new, and "next" stays. */
    snprintf(path, sizeof(path), "/v1/functions/talker/logs?since=%llu", (unsigned long long)next);
    j = get_json(path);
    assert_int_equal(json_array_size(json_object_get(j, "lines")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "next")), next);
    json_decref(j);
    invoke_ok("talker", NULL, "1:three", NULL);
    j = wait_lines(path, 3);
    lines = json_object_get(j, "lines");
    assert_int_equal(json_array_size(lines), 3);
    assert_string_equal(text_of(lines, 0), "line 0 of three");
    json_decref(j);
}

static void test_group_ranks(void **state)
{
    json_t *j, *lines;
    int seen[2] = {0, 0};
    (void)state;

    deploy_talker("grouptalk");
    invoke_ok("grouptalk", "group=2", "1:g", NULL);
    j = wait_lines("/v1/functions/grouptalk/logs", 6);
    lines = json_object_get(j, "lines");
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *rank = json_object_get(json_array_get(lines, i), "rank");
        assert_true(json_is_integer(rank));
        assert_in_range(json_integer_value(rank), 0, 1);
        seen[json_integer_value(rank)]++;
    }
    assert_int_equal(seen[0], 3);
    assert_int_equal(seen[1], 3);
    json_decref(j);
}

static void test_budget(void **state)
{
    json_t *j, *lines;
    size_t n;
    (void)state;

    deploy_talker("flood");
    /* 2000 lines of ~20 bytes, each charged 64 more: far beyond 16 KiB. */
    invoke_ok("flood", NULL, "2000:flood", NULL);
    for (int i = 0;; i++) {
        j = get_json("/v1/functions/flood/logs?tail=10000");
        lines = json_object_get(j, "lines");
        n = json_array_size(lines);
        if (n > 0 && strcmp(text_of(lines, n - 1), "second half") == 0)
            break;
        json_decref(j);
        assert_true(i < 200);
        usleep(20000);
    }
    /* Only the newest lines, within the budget; the rest counted as dropped. */
    assert_true(n * (20 + 64) <= LOG_KIB * 1024 + 64 * 20);
    assert_true(n >= (LOG_KIB * 1024) / (30 + 64));
    assert_int_equal(json_integer_value(json_object_get(j, "dropped")) + (json_int_t)n, 2002);
    assert_string_equal(text_of(lines, n - 3), "line 1999 of flood");
    json_decref(j);
}

/* method path -> status and (when code is not NULL) that JSON error code. */
static void expect(const char *method, const char *path, long status, const char *code)
{
    http_resp_t r;

    assert_int_equal(http_request(&C, method, path, "x", strcmp(method, "POST") == 0, NULL, &r), 0);
    if (code != NULL)
        assert_true(http_is_error(&r, status, code));
    else
        assert_int_equal(r.status, status);
    http_resp_free(&r);
}

static void test_bad_requests_and_delete(void **state)
{
    static const char *bad[] = {"tail=0", "tail=10001",    "tail=x",    "since=-1",
                                "since=", "invocation=zz", "color=red", "tail=1&tail=2"};
    char path[256];
    json_t *j;
    (void)state;

    deploy_talker("gone");
    invoke_ok("gone", NULL, "1:x", NULL);
    j = wait_lines("/v1/functions/gone/logs", 3);
    json_decref(j);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(path, sizeof(path), "/v1/functions/gone/logs?%s", bad[i]);
        expect("GET", path, 400, "bad_query");
    }
    expect("GET", "/v1/functions/nosuch/logs", 404, "not_found");
    expect("GET", "/v1/functions/Bad!/logs", 400, "bad_name");
    expect("POST", "/v1/functions/gone/logs", 405, NULL);
    /* The logs go with the function; a new function of the same name starts empty. */
    expect("DELETE", "/v1/functions/gone", 200, NULL);
    expect("GET", "/v1/functions/gone/logs", 404, "not_found");
    deploy_talker("gone");
    j = get_json("/v1/functions/gone/logs");
    assert_int_equal(json_array_size(json_object_get(j, "lines")), 0);
    json_decref(j);
}

/* `shoal logs` prints TIME ID TEXT lines; a missing function is one line and exit 1. */
static void test_cli(void **state)
{
    char out[4096], id[80];
    json_t *j;
    (void)state;

    deploy_talker("clitalk");
    invoke_ok("clitalk", NULL, "2:cli", id);
    j = wait_lines("/v1/functions/clitalk/logs", 4);
    json_decref(j);
    assert_int_equal(cluster_shoal(&C, out, sizeof(out), "logs clitalk -n 3"), 0);
    /* The last three lines, each "TIME ID TEXT". */
    assert_null(strstr(out, "line 0 of cli"));
    assert_non_null(strstr(out, "line 1 of cli\n"));
    assert_non_null(strstr(out, "second half\n"));
    assert_non_null(strstr(out, id));
    assert_int_equal(out[4], '-');
    assert_int_equal(cluster_shoal(&C, out, sizeof(out), "logs nosuch"), 1);
    assert_non_null(strstr(out, "shoal: logs nosuch: 404"));
    assert_int_equal(cluster_shoal(&C, out, sizeof(out), "logs clitalk --tail 0"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_filters),
        cmocka_unit_test(test_group_ranks),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_bad_requests_and_delete),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
