/*
 * End-to-end tests of events (issue 6) against real processes: async invocations and their
 * results, listing filters and their validation, retries with backoff and dead invocations,
 * retention, a controller and a worker killed with async invocations queued and running, a timer's
 * period, a timer's and a cron trigger's single catch-up after the controller was down, a cron
 * trigger firing at its minute, a burst of topic events to two subscribers, an HTTP route (custom
 * status and header, 405 with Allow), every invalid trigger field, and the CLI commands.
 *
 * test_cron_fires_and_catches_up waits for the next minute boundary: it takes up to ~70 s.
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
#include <sys/time.h>
#include <sys/wait.h>
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

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Sleeps until the wall clock reads at least t (ms). */
static void sleep_until(int64_t t)
{
    int64_t now = wall_ms();
    if (t > now)
        sleep_ms((int)(t - now));
}

static void deploy_src_on(cluster_t *c, const char *name, const char *src, const char *query)
{
    char so[512];
    assert_int_equal(build_function(c, name, src, so, sizeof(so)), 0);
    int st = deploy_file(c, name, so, query, NULL);
    assert_true(st == 200 || st == 201);
}

static void deploy_src(const char *name, const char *src, const char *query)
{
    deploy_src_on(&C, name, src, query);
}

/* Starts an async invocation; returns its id in id. */
static void invoke_async_on(cluster_t *c, const char *name, const char *in, char id[33])
{
    char path[256];
    http_resp_t r;
    json_t *root;

    snprintf(path, sizeof(path), "/v1/functions/%s/invoke?async=1", name);
    assert_int_equal(http_request(c, "POST", path, in, strlen(in), NULL, &r), 0);
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

static void invoke_async(const char *name, const char *in, char id[33])
{
    invoke_async_on(&C, name, in, id);
}

/* Polls an invocation until it is final; returns the object (caller decrefs). */
static json_t *wait_final_on(cluster_t *c, const char *id, int timeout_ms)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/invocations/%s", id);
    for (int waited = 0; waited < timeout_ms; waited += 50) {
        http_resp_t r;
        assert_int_equal(http_request(c, "GET", path, NULL, 0, NULL, &r), 0);
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
    cluster_dump_logs(c);
    fail_msg("invocation %s not final within %d ms", id, timeout_ms);
    return NULL;
}

static json_t *wait_final(const char *id, int timeout_ms)
{
    return wait_final_on(&C, id, timeout_ms);
}

static json_t *list_on(cluster_t *c, const char *query)
{
    char path[256];
    http_resp_t r;
    snprintf(path, sizeof(path), "/v1/invocations?%s", query);
    assert_int_equal(http_request(c, "GET", path, NULL, 0, NULL, &r), 0);
    if (r.status != 200)
        fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
    assert_non_null(o);
    return o;
}

static json_t *list(const char *query)
{
    return list_on(&C, query);
}

/* GET path: asserts the status, returns the parsed JSON body (NULL when not JSON). */
static json_t *get_json(cluster_t *c, const char *path, long want)
{
    http_resp_t r;
    assert_int_equal(http_request(c, "GET", path, NULL, 0, NULL, &r), 0);
    if (r.status != want)
        fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
    assert_int_equal(r.status, want);
    json_t *o = json_loads(r.body, 0, NULL);
    http_resp_free(&r);
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
    /* With backoff: 200 ms before the second attempt, 400 ms before the third. */
    int64_t took = ms_of(json_string_value(json_object_get(o, "finished"))) -
                   ms_of(json_string_value(json_object_get(o, "created")));
    assert_true(took >= 600);
    json_decref(o);
    o = wait_final(id3, 15000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "dead");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 3);
    assert_non_null(strstr(json_string_value(json_object_get(o, "error")), "crash"));
    took = ms_of(json_string_value(json_object_get(o, "finished"))) -
           ms_of(json_string_value(json_object_get(o, "created")));
    assert_true(took >= 600);
    json_decref(o);
    /* Dead invocations stay listed, and readable. */
    o = list("state=dead");
    assert_true(json_array_size(json_object_get(o, "invocations")) >= 2);
    json_decref(o);
    o = list("function=moody3&state=dead");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 1);
    json_decref(o);
    /* A function error with retries that then succeeds is not retried again: "ok" with
     * retries=2 runs once. */
    char id4[33];
    invoke_async("moody3", "ok", id4);
    o = wait_final(id4, 10000);
    assert_string_equal(json_string_value(json_object_get(o, "state")), "succeeded");
    assert_int_equal(json_integer_value(json_object_get(o, "attempts")), 1);
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

/* PUT a trigger, asserting the status and, when given, a piece of the body; returns the parsed
 * body (the caller decrefs) when out is set. */
static void put_trigger_on(cluster_t *c, const char *name, const char *doc, long want,
                           const char *want_in_body, json_t **out)
{
    char path[512];
    http_resp_t r;
    const char *hdr[] = {"Content-Type: application/json", NULL};
    snprintf(path, sizeof(path), "/v1/triggers/%s", name);
    assert_int_equal(http_request(c, "PUT", path, doc, strlen(doc), hdr, &r), 0);
    if (r.status != want || (want_in_body && !strstr(r.body, want_in_body)))
        fprintf(stderr, "PUT trigger %s %s: %ld %s\n", name, doc, r.status, r.body);
    assert_int_equal(r.status, want);
    if (want_in_body)
        assert_non_null(strstr(r.body, want_in_body));
    if (out != NULL)
        assert_non_null(*out = json_loads(r.body, 0, NULL));
    http_resp_free(&r);
}

static void put_trigger(const char *name, const char *doc, long want, const char *want_in_body)
{
    put_trigger_on(&C, name, doc, want, want_in_body, NULL);
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
    assert_string_equal(r.allow, "POST");
    http_resp_free(&r);
    /* The route is the exact path: a longer one is not it. */
    assert_int_equal(http_request(&C, "POST", "/hooks/build/x", "in", 2, NULL, &r), 0);
    assert_int_equal(r.status, 404);
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

/* ---- listing filters and validation ------------------------------------------------------- */

static void test_invocations_query(void **state)
{
    char a[33], b[33];
    http_resp_t r;
    (void)state;

    deploy_src("lister", FN_ECHO, NULL);
    invoke_async("lister", "first", a);
    json_decref(wait_final(a, 10000));
    invoke_async("lister", "second", b);
    json_decref(wait_final(b, 10000));
    /* Newest first; limit cuts the list. */
    json_t *o = list("function=lister");
    json_t *arr = json_object_get(o, "invocations");
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "id")), b);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "id")), a);
    json_decref(o);
    o = list("function=lister&limit=1");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 1);
    json_decref(o);
    o = list("function=lister&state=failed");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 0);
    json_decref(o);
    o = list("function=nobody-here");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 0);
    json_decref(o);
    /* Each bad parameter is a 400 naming it. */
    static const struct {
        const char *q, *field;
    } bad[] = {
        {"limit=0", "limit"},      {"limit=1001", "limit"},  {"limit=abc", "limit"},
        {"limit=", "limit"},       {"state=bogus", "state"}, {"state=", "state"},
        {"function=", "function"}, {"colour=red", "colour"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[128];
        snprintf(path, sizeof(path), "/v1/invocations?%s", bad[i].q);
        assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
        if (r.status != 400 || strstr(r.body, bad[i].field) == NULL)
            fprintf(stderr, "GET %s: %ld %s\n", path, r.status, r.body);
        assert_true(http_is_error(&r, 400, "bad_query"));
        assert_non_null(strstr(r.body, bad[i].field));
        http_resp_free(&r);
    }
    /* Output of an unknown invocation, and of one that did not succeed. */
    assert_int_equal(http_request(&C, "GET",
                                  "/v1/invocations/0123456789abcdef0123456789abcdef/output", NULL,
                                  0, NULL, &r),
                     0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/invocations/not-an-id", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 404);
    http_resp_free(&r);
}

/* ---- retention ---------------------------------------------------------------------------- */

/* A controller with --retention 1: a finished invocation is there, then (within the prune
 * period, a quarter of the retention) gone: GET answers 404 and the listing no longer has it. */
static void test_retention(void **state)
{
    static cluster_t R;
    char id[33], path[128];
    (void)state;

    assert_int_equal(cluster_start_with(&R, 1, NULL, "--retention 1"), 0);
    deploy_src_on(&R, "short", FN_ECHO, NULL);
    invoke_async_on(&R, "short", "kept a second", id);
    json_t *o = wait_final_on(&R, id, 10000);
    int64_t finished = ms_of(json_string_value(json_object_get(o, "finished")));
    json_decref(o);
    snprintf(path, sizeof(path), "/v1/invocations/%s", id);
    int64_t gone = 0;
    for (int waited = 0; waited < 6000; waited += 50) {
        http_resp_t r;
        assert_int_equal(http_request(&R, "GET", path, NULL, 0, NULL, &r), 0);
        long st = r.status;
        http_resp_free(&r);
        if (st == 404) {
            gone = wall_ms();
            break;
        }
        assert_int_equal(st, 200);
        sleep_ms(50);
    }
    if (gone == 0)
        cluster_dump_logs(&R);
    assert_true(gone != 0);
    /* Not before its time: kept at least the retention (1 s), removed within 1 s + a prune
     * period (250 ms) + slack. */
    assert_true(gone - finished >= 1000);
    assert_true(gone - finished <= 3000);
    snprintf(path, sizeof(path), "/v1/invocations/%s/output", id);
    json_decref(get_json(&R, path, 404));
    o = list_on(&R, "function=short");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 0);
    json_decref(o);
    assert_int_equal(cluster_stop(&R), 0);
}

/* ---- a worker killed with async invocations running --------------------------------------- */

static void test_worker_killed(void **state)
{
    enum { N = 8 };
    char ids[N][33], in[16];
    (void)state;

    deploy_src("slowk", FN_SLOW, NULL);
    for (int i = 0; i < N; i++) {
        snprintf(in, sizeof(in), "k%d", i);
        invoke_async("slowk", in, ids[i]);
    }
    /* Wait until some are running on the worker, then kill it outright. */
    int running = 0;
    for (int waited = 0; waited < 10000 && !running; waited += 20) {
        json_t *o = list("function=slowk&state=running");
        running = json_array_size(json_object_get(o, "invocations")) > 0;
        json_decref(o);
        if (!running)
            sleep_ms(20);
    }
    assert_true(running);
    cluster_kill_worker(&C, 0, SIGKILL);
    assert_int_equal(cluster_start_worker(&C, 0), 0);
    assert_int_equal(cluster_wait_workers(&C, 1, 15000), 0);
    uint64_t attempts = 0;
    for (int i = 0; i < N; i++) {
        json_t *o = wait_final(ids[i], 30000);
        assert_string_equal(json_string_value(json_object_get(o, "state")), "succeeded");
        attempts += (uint64_t)json_integer_value(json_object_get(o, "attempts"));
        json_decref(o);
        char path[512];
        http_resp_t r;
        snprintf(path, sizeof(path), "/v1/invocations/%s/output", ids[i]);
        snprintf(in, sizeof(in), "k%d", i);
        assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, in);
        http_resp_free(&r);
    }
    /* The ones running when the worker died were retried (worker lost is the platform's). */
    assert_true(attempts > N);
    /* Exactly one row and one final state each. */
    json_t *o = list("function=slowk&limit=1000");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), N);
    json_decref(o);
    o = list("function=slowk&state=succeeded&limit=1000");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), N);
    json_decref(o);
}

/* ---- timers: catch-up after downtime, cron ------------------------------------------------ */

/* An every_ms timer whose controller is killed for three periods: on restart it fires once (not
 * three times), then keeps its schedule (creation + k * period). */
static void test_timer_catch_up(void **state)
{
    enum { P = 1500 };
    json_t *t;
    (void)state;

    deploy_src("catch", FN_ECHO, NULL);
    put_trigger_on(&C, "catchup", "{\"function\":\"catch\",\"type\":\"timer\",\"every_ms\":1500}",
                   201, NULL, &t);
    const int64_t a = ms_of(json_string_value(json_object_get(t, "created")));
    assert_int_equal(ms_of(json_string_value(json_object_get(t, "next_fire"))), a + P);
    json_decref(t);
    sleep_until(a + 2 * P + 500); /* firings 1 and 2 */
    json_t *o = list("function=catch");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 2);
    json_decref(o);
    int64_t killed = wall_ms();
    cluster_kill_controller(&C, SIGKILL);
    sleep_until(a + 5 * P + 500); /* firings 3, 4 and 5 are missed */
    int64_t restarted = wall_ms();
    assert_int_equal(cluster_start_controller(&C), 0);
    assert_int_equal(cluster_wait_workers(&C, 1, 15000), 0);
    sleep_until(a + 7 * P + 700); /* firings 6 and 7 on schedule */
    assert_true(wall_ms() < a + 8 * P - 200);
    o = list("function=catch");
    json_t *arr = json_object_get(o, "invocations"), *inv;
    size_t i;
    int on[16] = {0}, off = 0;
    json_array_foreach(arr, i, inv)
    {
        int64_t c = ms_of(json_string_value(json_object_get(inv, "created")));
        int64_t k = (c - a + P / 2) / P;
        assert_false(c > killed && c < restarted); /* nothing while it was down */
        if (llabs(c - (a + k * P)) <= P / 10) {
            assert_true(k >= 0 && k < 16);
            on[k]++;
        } else {
            /* The catch-up: once, soon after the restart, before firing 6. */
            off++;
            assert_true(c >= restarted && c < a + 6 * P - P / 10);
        }
        assert_string_equal(json_string_value(json_object_get(inv, "trigger")), "catchup");
    }
    if (json_array_size(arr) != 5 || off != 1)
        for (i = 0; i < json_array_size(arr); i++)
            fprintf(stderr, "firing at +%lld ms\n",
                    (long long)(ms_of(json_string_value(
                                    json_object_get(json_array_get(arr, i), "created"))) -
                                a));
    assert_int_equal(off, 1);
    assert_int_equal(json_array_size(arr), 5);
    for (int k = 1; k <= 7; k++)
        assert_int_equal(on[k], k >= 3 && k <= 5 ? 0 : 1);
    json_decref(o);
    t = get_json(&C, "/v1/triggers/catchup", 200);
    assert_int_equal(ms_of(json_string_value(json_object_get(t, "next_fire"))), a + 8 * P);
    json_decref(t);
    del_trigger("catchup");
}

/* Cron, at a real minute boundary B (this test waits for it: up to ~70 s in all). Two clusters
 * hold the same "* * * * *" trigger: C stays up and fires at B; D's controller is killed 3 s
 * before B and restarted 2 s after it, and fires once on restart for the firing it missed. Both
 * then wait for B + 60 s, the normal schedule. */
static void test_cron_fires_and_catches_up(void **state)
{
    static cluster_t D;
    static const char doc[] = "{\"function\":\"cronfn\",\"type\":\"timer\",\"cron\":\"* * * * *\"}";
    json_t *t, *o;
    (void)state;

    assert_int_equal(cluster_start(&D, 1, NULL), 0);
    deploy_src("cronfn", FN_ECHO, NULL);
    deploy_src_on(&D, "cronfn", FN_ECHO, NULL);
    int64_t b = (wall_ms() / 60000 + 1) * 60000;
    if (b - wall_ms() < 8000) { /* too close to set things up: take the next one */
        sleep_until(b + 200);
        b += 60000;
    }
    put_trigger_on(&C, "cronc", doc, 201, NULL, &t);
    assert_int_equal(ms_of(json_string_value(json_object_get(t, "next_fire"))), b);
    json_decref(t);
    put_trigger_on(&D, "crond", doc, 201, NULL, &t);
    assert_int_equal(ms_of(json_string_value(json_object_get(t, "next_fire"))), b);
    json_decref(t);
    sleep_until(b - 3000);
    o = list_on(&D, "function=cronfn");
    assert_int_equal(json_array_size(json_object_get(o, "invocations")), 0);
    json_decref(o);
    cluster_kill_controller(&D, SIGKILL);
    sleep_until(b + 2000);
    int64_t restarted = wall_ms();
    assert_int_equal(cluster_start_controller(&D), 0);
    sleep_until(b + 3500);

    /* C fired at B, once. */
    o = list_on(&C, "function=cronfn");
    json_t *arr = json_object_get(o, "invocations");
    assert_int_equal(json_array_size(arr), 1);
    int64_t c = ms_of(json_string_value(json_object_get(json_array_get(arr, 0), "created")));
    if (c < b || c >= b + 1000)
        fprintf(stderr, "cron fired at B%+lld ms\n", (long long)(c - b));
    assert_true(c >= b && c < b + 1000);
    json_t *f =
        wait_final_on(&C, json_string_value(json_object_get(json_array_get(arr, 0), "id")), 10000);
    assert_string_equal(json_string_value(json_object_get(f, "state")), "succeeded");
    json_decref(f);
    json_decref(o);
    t = get_json(&C, "/v1/triggers/cronc", 200);
    int64_t last = ms_of(json_string_value(json_object_get(t, "last_fired")));
    assert_true(last >= b && last < b + 1000);
    assert_int_equal(ms_of(json_string_value(json_object_get(t, "next_fire"))), b + 60000);
    json_decref(t);

    /* D fired once, on restart, for the firing it missed; not at B (it was down). */
    o = list_on(&D, "function=cronfn");
    arr = json_object_get(o, "invocations");
    assert_int_equal(json_array_size(arr), 1);
    c = ms_of(json_string_value(json_object_get(json_array_get(arr, 0), "created")));
    assert_true(c >= restarted && c < b + 3500);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "trigger")),
                        "crond");
    json_decref(o);
    /* ... and then keeps the schedule: its next firing is B + 60 s, not another catch-up. */
    t = get_json(&D, "/v1/triggers/crond", 200);
    assert_int_equal(ms_of(json_string_value(json_object_get(t, "next_fire"))), b + 60000);
    json_decref(t);
    assert_int_equal(cluster_stop(&D), 0);
    del_trigger("cronc");
}

/* ---- trigger documents -------------------------------------------------------------------- */

static void test_trigger_validation(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *field;
    } bad[] = {
        {"[]", "body"},
        {"{\"type\":\"topic\",\"topic\":\"t\"}", "function"},
        {"{\"function\":7,\"type\":\"topic\",\"topic\":\"t\"}", "function"},
        {"{\"function\":\"Not A Name\",\"type\":\"topic\",\"topic\":\"t\"}", "function"},
        {"{\"function\":\"meta\"}", "type"},
        {"{\"function\":\"meta\",\"type\":\"sms\"}", "type"},
        {"{\"function\":\"meta\",\"type\":\"http\"}", "path"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"hooks\"}", "path"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/a?b=1\"}", "path"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/a\",\"methods\":\"POST\"}",
         "methods"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/a\",\"methods\":[]}", "methods"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/a\",\"methods\":[\"post\"]}",
         "methods"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/a\",\"methods\":[1]}", "methods"},
        {"{\"function\":\"meta\",\"type\":\"timer\"}", "every_ms"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"every_ms\":1000,\"cron\":\"* * * * *\"}",
         "every_ms"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"every_ms\":5}", "every_ms"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"every_ms\":-1}", "every_ms"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"every_ms\":1.5}", "every_ms"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"cron\":\"* * * *\"}", "cron"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"cron\":\"* * * * * *\"}", "cron"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"cron\":\"0 0 31 2 *\"}", "cron"},
        {"{\"function\":\"meta\",\"type\":\"timer\",\"cron\":5}", "cron"},
        {"{\"function\":\"meta\",\"type\":\"topic\"}", "topic"},
        {"{\"function\":\"meta\",\"type\":\"topic\",\"topic\":\"Up Loads\"}", "topic"},
        /* A field its type does not use. */
        {"{\"function\":\"meta\",\"type\":\"timer\",\"every_ms\":1000,\"path\":\"/x\"}", "path"},
        {"{\"function\":\"meta\",\"type\":\"topic\",\"topic\":\"t\",\"evry_ms\":1}", "evry_ms"},
        {"{\"function\":\"meta\",\"type\":\"http\",\"path\":\"/a\",\"topic\":\"t\"}", "topic"},
    };
    char want[64];

    deploy_src("meta", FN_META, NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* The message starts with the field's name. */
        snprintf(want, sizeof(want), "\"message\":\"%s:", bad[i].field);
        put_trigger("bad", bad[i].doc, 400, want);
    }
    /* Reserved paths: 409. */
    static const char *const reserved[] = {"/v1/functions", "/v1",      "/v1/x/y",
                                           "/healthz",      "/metrics", "/metrics/x"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        char doc[256];
        snprintf(doc, sizeof(doc), "{\"function\":\"meta\",\"type\":\"http\",\"path\":\"%s\"}",
                 reserved[i]);
        put_trigger("bad", doc, 409, "\"message\":\"path:");
    }
    /* A function that does not exist: 404, for every type. */
    put_trigger("bad", "{\"function\":\"ghost\",\"type\":\"timer\",\"every_ms\":1000}", 404,
                "ghost");
    put_trigger("bad", "{\"function\":\"ghost\",\"type\":\"http\",\"path\":\"/g\"}", 404, "ghost");
    /* Too large, and a bad trigger name. */
    size_t big = 20000;
    char *doc = malloc(big + 1);
    assert_non_null(doc);
    memset(doc, ' ', big);
    memcpy(doc, "{\"function\":\"meta\",\"type\":\"topic\",\"topic\":\"t\"}", 46);
    doc[big] = '\0';
    put_trigger("bad", doc, 413, NULL);
    free(doc);
    put_trigger("Bad_Name", "{\"function\":\"meta\",\"type\":\"topic\",\"topic\":\"t\"}", 400,
                "bad_name");
    /* None of them was stored. */
    json_t *o = get_json(&C, "/v1/triggers", 200);
    json_t *arr = json_object_get(o, "triggers"), *v;
    size_t i;
    json_array_foreach(arr, i, v)
        assert_string_not_equal(json_string_value(json_object_get(v, "name")), "bad");
    json_decref(o);
    json_decref(get_json(&C, "/v1/triggers/bad", 404));
}

/* ---- the CLI ------------------------------------------------------------------------------ */

static char out[1 << 16];

/* Runs `shoal ARGS` against C; returns its exit code, stdout+stderr in out. */
#define shoal(...) cluster_shoal(&C, out, sizeof(out), __VA_ARGS__)

/* The 32-hex id in an {"id":"..."} answer. */
static void id_of(const char *text, char id[33])
{
    const char *p = strstr(text, "\"id\"");
    assert_non_null(p);
    p = strchr(p + 4, '"');
    assert_non_null(p);
    memcpy(id, p + 1, 32);
    id[32] = '\0';
    assert_int_equal(strspn(id, "0123456789abcdef"), 32);
}

static void test_cli(void **state)
{
    char id[33], fid[33], nid[33], file[400];
    (void)state;

    deploy_src("cliecho", FN_ECHO, NULL);
    deploy_src("moody", FN_MOODY, NULL);
    /* invoke --async, result, result --wait. */
    assert_int_equal(shoal("invoke cliecho --async -d 'from the cli'"), 0);
    id_of(out, id);
    assert_int_equal(shoal("result %s --wait", id), 0);
    assert_string_equal(out, "from the cli");
    assert_int_equal(shoal("result %s", id), 0);
    assert_non_null(strstr(out, "\"succeeded\""));
    assert_int_equal(shoal("invoke moody --async -d fail"), 0);
    id_of(out, fid);
    assert_int_equal(shoal("result %s --wait", fid), 1);
    assert_non_null(strstr(out, "\"failed\""));
    assert_int_not_equal(shoal("result nonsense"), 0);
    /* --wait gives up after --timeout (the invocation hangs, paused, until its own 3 s). */
    deploy_src("clinap", FN_MOODY, "timeout_ms=3000");
    assert_int_equal(shoal("invoke clinap --async -d hang"), 0);
    id_of(out, nid);
    assert_int_equal(shoal("result %s --wait --timeout 1", nid), 1);
    assert_non_null(strstr(out, "after 1 s (--timeout)"));
    assert_int_equal(shoal("result %s --wait --timeout 0", nid), 2);
    /* invocations: a table, filtered. */
    assert_int_equal(shoal("invocations --function cliecho --state succeeded"), 0);
    assert_int_equal(strncmp(out, "ID ", 3), 0);
    assert_non_null(strstr(out, "FUNCTION"));
    assert_non_null(strstr(out, id));
    assert_null(strstr(out, fid));
    assert_int_equal(shoal("invocations --function moody --json"), 0);
    assert_int_equal(out[0], '{');
    assert_non_null(strstr(out, fid));
    assert_int_not_equal(shoal("invocations --state bogus"), 0);
    assert_non_null(strstr(out, "state"));
    /* trigger add | ls | rm. */
    assert_int_equal(
        shoal("trigger add clitopic '{\"function\":\"cliecho\",\"type\":\"topic\",\"topic\":"
              "\"news\"}'"),
        0);
    assert_int_equal(
        shoal("trigger add clitick '{\"function\":\"cliecho\",\"type\":\"timer\",\"every_ms\":"
              "3600000}'"),
        0);
    assert_int_equal(shoal("trigger add clihook '{\"function\":\"cliecho\",\"type\":\"http\","
                           "\"path\":\"/cli/hook\",\"methods\":[\"POST\",\"PUT\"]}'"),
                     0);
    assert_int_equal(shoal("trigger ls"), 0);
    /* A table like `shoal ls`: a header, then one line per trigger, by name. */
    assert_int_equal(strncmp(out, "NAME ", 5), 0);
    assert_non_null(strstr(out, "NEXT_FIRE"));
    char *hook = strstr(out, "\nclihook "), *tick = strstr(out, "\nclitick "),
         *top = strstr(out, "\nclitopic ");
    assert_true(hook != NULL && tick != NULL && top != NULL && hook < tick && tick < top);
    assert_non_null(strstr(hook, "POST,PUT /cli/hook"));
    assert_non_null(strstr(tick, "every 3600000ms"));
    assert_non_null(strstr(top, "topic news"));
    assert_null(strchr(out, '{'));
    assert_int_equal(shoal("trigger ls --json"), 0);
    assert_int_equal(out[0], '{');
    assert_non_null(strstr(out, "\"clitick\""));
    assert_int_not_equal(
        shoal("trigger add clibad '{\"function\":\"cliecho\",\"type\":\"timer\"}'"), 0);
    assert_non_null(strstr(out, "every_ms"));
    /* publish: -d, then standard input. */
    assert_int_equal(shoal("publish news -d 'event one'"), 0);
    assert_non_null(strstr(out, "\"deliveries\":1"));
    snprintf(file, sizeof(file), "%s/event.txt", C.home);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("event two", f);
    fclose(f);
    assert_int_equal(shoal("publish news < '%s'", file), 0);
    id_of(out, id);
    assert_int_equal(shoal("publish nobody -d x"), 0);
    assert_non_null(strstr(out, "\"deliveries\":0"));
    /* Both events reached the subscriber, in order. */
    json_t *o = NULL;
    for (int waited = 0; waited < 10000; waited += 100) {
        o = list("function=cliecho&state=succeeded");
        size_t n = 0, i;
        json_t *v;
        json_array_foreach(json_object_get(o, "invocations"), i, v) n +=
            json_object_get(v, "trigger") != NULL;
        if (n == 2)
            break;
        json_decref(o);
        o = NULL;
        sleep_ms(100);
    }
    assert_non_null(o);
    json_t *newest = json_array_get(json_object_get(o, "invocations"), 0);
    char path[128];
    snprintf(path, sizeof(path), "/v1/invocations/%s/output",
             json_string_value(json_object_get(newest, "id")));
    http_resp_t r;
    assert_int_equal(http_request(&C, "GET", path, NULL, 0, NULL, &r), 0);
    assert_string_equal(r.body, "event two");
    http_resp_free(&r);
    json_decref(o);
    assert_int_equal(shoal("trigger rm clitopic"), 0);
    assert_int_equal(shoal("trigger rm clitick"), 0);
    assert_int_equal(shoal("trigger rm clihook"), 0);
    assert_int_not_equal(shoal("trigger rm clitopic"), 0);
    assert_non_null(strstr(out, "not found"));
    assert_int_equal(shoal("trigger ls"), 0);
    assert_null(strstr(out, "cli"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_round_trip),
        cmocka_unit_test(test_invocations_query),
        cmocka_unit_test(test_retries_then_dead),
        cmocka_unit_test(test_http_route),
        cmocka_unit_test(test_trigger_validation),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_timer_interval),
        cmocka_unit_test(test_topic_burst),
        cmocka_unit_test(test_controller_restart),
        cmocka_unit_test(test_worker_killed),
        cmocka_unit_test(test_timer_catch_up),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_cron_fires_and_catches_up),
    };
    /* SHOAL_TEST_FILTER=test_timer_* runs only the matching tests (cmocka's glob). */
    if (getenv("SHOAL_TEST_FILTER") != NULL)
        cmocka_set_test_filter(getenv("SHOAL_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
