/*
 * End-to-end tests of events (issue 6) against real processes: async invocations and their
 * results, retries and dead invocations, a controller killed with async invocations queued and
 * running, a timer's period, a burst of topic events to two subscribers, and an HTTP route.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;

/* Sleeps for a while then echoes its input. */
#define FN_SLOW                                                                                    \
    "#define _GNU_SOURCE\n" FN_HEAD                                                                \
    "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c);\n"                              \
    " usleep(300000);\n"                                                                           \
    " return shoal_output(c, in.data, in.len); }\n"

/* Echoes its input together with the topic it came from. */
#define FN_TOPIC                                                                                   \
    FN_HEAD "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c); char b[256];\n"         \
            " const char *t = shoal_meta(c, \"topic\");\n"                                         \
            " int n = snprintf(b, sizeof(b), \"%s:%.*s\", t ? t : \"-\", (int)in.len,\n"           \
            "  (const char *)in.data); return shoal_output(c, b, (size_t)n); }\n"

static int setup(void **state)
{
    (void)state;
    return cluster_start(&C, 1, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void deploy_src(const char *name, const char *src, const char *query)
{
    char so[512];
    assert_int_equal(build_function(&C, name, src, so, sizeof(so)), 0);
    int st = deploy_file(&C, name, so, query, NULL);
    assert_true(st == 200 || st == 201);
}

/* Starts an async invocation; returns its id in id. */
static void invoke_async(const char *name, const char *in, char id[33])
{
    char path[256];
    http_resp_t r;
    json_t *root;

    snprintf(path, sizeof(path), "/v1/functions/%s/invoke?async=1", name);
    assert_int_equal(http_request(&C, "POST", path, in, strlen(in), NULL, &r), 0);
    if (r.status != 202)
        fprintf(stderr, "async invoke: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 202);
    root = json_loads(r.body, 0, NULL);
    assert_non_null(root);
    assert_int_equal(json_string_length(json_object_get(root, "id")), 32);
    memcpy(id, json_string_value(json_object_get(root, "id")), 33);
    assert_string_equal(r.invocation_id, id);
    json_decref(root);
    http_resp_free(&r);
}

/* Polls an invocation until it is final; returns the object (caller decrefs). */
static json_t *wait_final(const char *id, int timeout_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/invocations/%s", id);
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        http_resp_t r;
        assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        json_t *o = json_loads(r.body, 0, NULL);
        http_resp_free(&r);
        assert_non_null(o);
        const char *st = json_string_value(json_object_get(o, "state"));
        if (strcmp(st, "queued") != 0 && strcmp(st, "running") != 0)
            return o;
        json_decref(o);
        sleep_ms(50);
    }
    cluster_dump_logs(&C);
    fail_msg("invocation %s not final within %d ms", id, timeout_ms);
    return NULL;
}

static json_t *list(const char *query)
{
    char path[256];
    http_resp_t r;
    snprintf(path, sizeof(path), "/v1/invocations?%s", query);
    assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    assert_non_null(o);
    return o;
}

/* Milliseconds of an RFC 3339 time with milliseconds (UTC). */
static int64_t ms_of(const char *t)
{
    struct tm tm = {0};
    int ms = 0;
    sscanf(t, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
           &tm.tm_min, &tm.tm_sec, &ms);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static void test_async_round_trip(void **state)
{
    char id[33], path[128];
    http_resp_t r;
    (void)state;

    deploy_src("echo", FN_ECHO, NULL);
    invoke_async("echo", "async hello", id);
    json_t *o = wait_final(id, 10000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "succeeded");
    assert_string_equal(json_string_value(json_object_get(o, "function")), "echo");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
    assert_true(json_is_string(json_object_get(o, "finished")));
    assert_true(json_is_null(json_object_get(o, "error")));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/invocations/%s/output", id);
    assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, strlen("async hello"));
    assert_memory_equal(r.body, "async hello", r.len);
    http_resp_free(&r);
    /* Unknown ids and functions. */
    assert_int_equal(http_request(&C, "GET", "/v1/invocations/0123456789abcdef0123456789abcdef",
                                  NULL, 0, NULL, &r),
                     0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    assert_int_equal(
        http_request(&C, "POST", "/v1/functions/nope/invoke?async=1", "x", 1, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    /* The listing has it, filtered by function and state. */
    o = list("function=echo&state=succeeded&limit=10");
    json_t *arr = json_object_get(o, "invocations");
    assert_true(json_array_size(arr) >= 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "id")), id);
    json_decref(o);
    assert_int_equal(http_request(&C, "GET", "/v1/invocations?state=bogus", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "state"));
    http_resp_free(&r);
}

static void test_retries_then_dead(void **state)
{
    char id1[33], id2[33], id3[33];
    (void)state;

    deploy_src("moody", FN_MOODY, NULL);
    deploy_src("moody3", FN_MOODY, "retries=2");
    /* A function error without retries: failed after one attempt. */
    invoke_async("moody", "fail", id1);
    /* With retries=2: three attempts, then dead. */
    invoke_async("moody3", "fail", id2);
    /* A crash is the platform's to retry: twice, then dead. */
    invoke_async("moody", "crash", id3);
    json_t *o = wait_final(id1, 10000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "failed");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "on purpose"));
    json_decref(o);
    o = wait_final(id2, 15000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "dead");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 3);
    json_decref(o);
    o = wait_final(id3, 15000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "dead");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "crash"));
    json_decref(o);
    /* Dead invocations stay listed. */
    o = list("state=dead");
    assert_true(json_array_size(json_object_get(o, "invocations")) >= 2);
    json_decref(o);
    /* A bad retries value is refused naming it. */
    http_resp_t r;
    assert_int_equal(deploy_bytes(&C, "moody4", "x", 1, "retries=99", &r), 400);
    assert_non_null(strstr(r.body, "retries"));
    http_resp_free(&r);
}

static void test_controller_restart(void **state)
{
    enum { N = 12 };
    char ids[N][33], in[16];
    (void)state;

    deploy_src("slow", FN_SLOW, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(in, sizeof(in), "n%d", i);
        invoke_async("slow", in, ids[i]);
    }
    sleep_ms(150); /* some are running now, the rest queued */
    cluster_kill_controller(&C, SIGKILL);
    assert_int_equal(cluster_start_controller(&C), 0);
    assert_int_equal(cluster_wait_workers(&C, 1, 15000), 0);
    for (int i = 0; i < N; i++) {
        json_t *o = wait_final(ids[i], 30000);
        assert_string_equal(json_string_value(json_object_get(o, "state")), "succeeded");
        json_decref(o);
        char path[512];
        http_resp_t r;
        snprintf(path, sizeof(path), "/v1/invocations/%s/output", ids[i]);
        snprintf(in, sizeof(in), "n%d", i);
        assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, in);
        http_resp_free(&r);
    }
    /* Exactly one row, and one final state, per accepted invocation. */
    json_t *o = list("function=slow&limit=1000");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), N);
    json_decref(o);
    o = list("function=slow&state=succeeded&limit=1000");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), N);
    json_decref(o);
}

static void put_trigger(const char *name, const char *doc, long want, const char *want_in_body)
{
    char path[512];
    http_resp_t r;
    const char *hdr[] = {"Content-Type: application/json", NULL};
    snprintf(path, sizeof(path), "/v1/triggers/%s", name);
    assert_int_equal(http_request(&C, "PUT", path, doc, strlen(doc), hdr, &r), 0);
    if (r.status != want)
        fprintf(stderr, "PUT trigger %s: %ld %s\n", name, r.status, r.body);
    assert_int_equal(r.status, want);
    if (want_in_body)
        assert_non_null(strstr(r.body, want_in_body));
    http_resp_free(&r);
}

static void del_trigger(const char *name)
{
    char path[512];
    http_resp_t r;
    snprintf(path, sizeof(path), "/v1/triggers/%s", name);
    assert_int_equal(http_request(&C, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

static void test_timer_interval(void **state)
{
    (void)state;
    deploy_src("tick", FN_ECHO, NULL);
    put_trigger("ticker", "{\"function\":\"tick\",\"type\":\"timer\",\"every_ms\":400}", 201, NULL);
    sleep_ms(2700);
    del_trigger("ticker");
    json_t *o = list("function=tick&limit=100");
    json_t *arr = json_object_get(o, "invocations");
    size_t n = json_array_size(arr);
    assert_true(n >= 5 && n <= 8);
    /* Newest first: consecutive firings are 400 ms apart, within 10%. */
    for (size_t i = 0; i + 1 < n; i++) {
        int64_t a = ms_of(json_string_value(json_object_get(json_array_get(arr, i), "created")));
        int64_t b =
            ms_of(json_string_value(json_object_get(json_array_get(arr, i + 1), "created")));
        if (a - b < 360 || a - b > 440)
            fprintf(stderr, "timer interval %lld ms\n", (long long)(a - b));
        assert_true(a - b >= 360 && a - b <= 440);
        assert_string_equal(json_string_value(json_object_get(json_array_get(arr, i), "trigger")),
                            "ticker");
    }
    json_decref(o);
}

static void test_topic_burst(void **state)
{
    enum { N = 1000 };
    char body[32];
    (void)state;

    deploy_src("suba", FN_TOPIC, NULL);
    deploy_src("subb", FN_TOPIC, NULL);
    put_trigger("ta", "{\"function\":\"suba\",\"type\":\"topic\",\"topic\":\"burst\"}", 201, NULL);
    put_trigger("tb", "{\"function\":\"subb\",\"type\":\"topic\",\"topic\":\"burst\"}", 201, NULL);
    for (int i = 0; i < N; i++) {
        http_resp_t r;
        int n = snprintf(body, sizeof(body), "%d", i);
        assert_int_equal(http_request(&C, "POST", "/v1/topics/burst", body, (size_t)n, NULL, &r),
                         0);
        if (r.status != 202)
            fprintf(stderr, "publish: %ld %s\n", r.status, r.body);
        assert_int_equal(r.status, 202);
        assert_non_null(strstr(r.body, "\"deliveries\":2"));
        http_resp_free(&r);
    }
    /* No subscriber: still 202, no delivery. */
    http_resp_t r;
    assert_int_equal(http_request(&C, "POST", "/v1/topics/quiet", "x", 1, NULL, &r), 0);
    assert_int_equal(r.status, 202);
    assert_non_null(strstr(r.body, "\"deliveries\":0"));
    http_resp_free(&r);
    const char *fns[] = {"suba", "subb"};
    for (int f = 0; f < 2; f++) {
        char q[128];
        json_t *o = NULL;
        snprintf(q, sizeof(q), "function=%s&state=succeeded&limit=1000", fns[f]);
        for (int waited = 0; waited < 60000; waited += 200) {
            o = list(q);
            if (json_array_size(json_object_get(o, "invocations")) == N)
                break;
            json_decref(o);
            o = NULL;
            sleep_ms(200);
        }
        assert_non_null(o);
        json_t *arr = json_object_get(o, "invocations");
        /* Oldest is last. Deliveries in one lane run one at a time in publication order, so
         * their finishing times never go backwards; and each output carries its event. */
        int64_t prev = 0;
        for (size_t i = N; i-- > 0;) {
            json_t *inv = json_array_get(arr, i);
            int64_t fin = ms_of(json_string_value(json_object_get(inv, "finished")));
            assert_true(fin >= prev);
            prev = fin;
            if (i % 97 == 0) {
                char path[512], want[32];
                http_resp_t out;
                snprintf(path, sizeof(path), "/v1/invocations/%s/output",
                         json_string_value(json_object_get(inv, "id")));
                snprintf(want, sizeof(want), "burst:%zu", N - 1 - i);
                assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &out), 0);
                assert_string_equal(out.body, want);
                http_resp_free(&out);
            }
        }
        json_decref(o);
    }
    del_trigger("ta");
    del_trigger("tb");
}

static void test_http_route(void **state)
{
    http_resp_t r;
    const char *hdr[] = {"X-Test: from-client", NULL};
    (void)state;

    deploy_src("meta", FN_META, NULL);
    put_trigger("build",
                "{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/hooks/build\","
                "\"methods\":[\"POST\"]}",
                201, "\"/hooks/build\"");
    assert_int_equal(http_request(&C, "POST", "/hooks/build?x=1", "in", 2, hdr, &r), 0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.custom_header, "from-function");
    assert_non_null(strstr(r.body, "method=POST"));
    assert_non_null(strstr(r.body, "path=/hooks/build"));
    assert_non_null(strstr(r.body, "query=x=1"));
    assert_non_null(strstr(r.body, "header:x-test=from-client"));
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/hooks/build", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 405);
    http_resp_free(&r);
    /* Reserved and taken paths, missing functions, bad documents. */
    put_trigger("bad", "{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/v1/functions\"}", 409,
                NULL);
    put_trigger("bad", "{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/healthz\"}", 409,
                NULL);
    put_trigger("other", "{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/hooks/build\"}", 409,
                NULL);
    put_trigger("bad", "{\"function\":\"ghost\",\"type\":\"topic\",\"topic\":\"t\"}", 404, NULL);
    put_trigger("bad", "{\"function\":\"meta\",\"type\":\"timer\",\"cron\":\"61 * * * *\"}", 400,
                "cron");
    put_trigger("bad", "{\"function\":\"meta\",\"type\":\"timer\",\"every_ms\":\"x\"}", 400,
                "every_ms");
    put_trigger("bad", "{\"function\":\"meta\",\"type\":\"carrier-pigeon\"}", 400, "type");
    put_trigger("bad", "{\"type\":\"topic\",\"topic\":\"t\"}", 400, "function");
    put_trigger("bad", "not json", 400, "body");
    del_trigger("build");
    assert_int_equal(http_request(&C, "POST", "/hooks/build", "in", 2, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_round_trip), cmocka_unit_test(test_retries_then_dead),
        cmocka_unit_test(test_http_route),       cmocka_unit_test(test_timer_interval),
        cmocka_unit_test(test_topic_burst),      cmocka_unit_test(test_controller_restart),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
