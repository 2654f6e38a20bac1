/* Tests controller/sched.c (and conn.c under it) against fake workers speaking the frame
 * protocol over real TCP: the event loop runs in a thread of its own, the test thread plays the
 * workers with blocking sockets. Covers HELLO/WELCOME, INVOKE/RESULT (success, every error kind,
 * late results), a lost worker, the controller's backstop timeout, waiting for workers, malformed
 * frames, the queue and its bound, max_instances per worker, cancellation, FUNC acknowledgements
 * and the penalty for not giving them, FETCH, CALL relaying and its depth limit, heartbeats, warm
 * placement from STATUS, multi-megabyte frames both ways, shutdown, and groups: the INVOKE's group
 * meta and the one RESULT, all-or-nothing waiting without starvation, packing, too large and
 * split-only groups, a lost worker, CALL with "group" and the backstop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/util.h"
#include "controller/sched.h"
#include "tests/controller/loop_thread.h"
#include "transport/frame.h"
#include "tests/transport/invmeta_json.h"

/* ---- the system under test (its loop runs on loop_thread.h's thread) ---------------------- */

static char home[64];
static shoal_registry_t *reg;
static shoal_sched_t *sched;
static shoal_sched_opts_t sopts;
static int port;

/* ---- invocation results ------------------------------------------------------------------- */

typedef struct {
    int done;
    shoal_api_err_t code;
    int status;
    char msg[256];
    char *data;
    size_t len;
    int has_worker_meta;
    char header_xa[32];
} result_t;

static void on_result(void *opaque, const shoal_inv_result_t *res)
{
    result_t *r = opaque;
    pthread_mutex_lock(&mu);
    r->code = res->code;
    r->status = res->status;
    snprintf(r->msg, sizeof(r->msg), "%.*s", (int)res->message_len,
             res->message ? res->message : "");
    r->len = res->len;
    r->data = malloc(res->len + 1);
    if (res->len)
        memcpy(r->data, res->data, res->len);
    r->data[res->len] = '\0';
    r->has_worker_meta = res->worker_meta != NULL;
    json_t *hd = ij_kv_object(res->headers, res->headers_len);
    if (json_string_value(json_object_get(hd, "x-a")))
        snprintf(r->header_xa, sizeof(r->header_xa), "%s",
                 json_string_value(json_object_get(hd, "x-a")));
    json_decref(hd);
    r->done++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Waits up to ms for r to complete; returns whether it did. */
static int wait_result(result_t *r, int ms)
{
    struct timespec ts;
    int done;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&mu);
    while (!r->done && pthread_cond_timedwait(&cv, &mu, &ts) == 0)
        ;
    done = r->done;
    pthread_mutex_unlock(&mu);
    return done;
}

static void result_free(result_t *r)
{
    free(r->data);
    memset(r, 0, sizeof(*r));
}

typedef struct {
    const char *fn;
    const void *input;
    size_t len;
    result_t *res;
    int ret;
    shoal_inv_t *inv;
    uint32_t group;
} invoke_t;

static void do_invoke(void *a)
{
    invoke_t *iv = a;
    shoal_inv_req_t r;
    char id[33];
    memset(&r, 0, sizeof(r));
    r.fn = shoal_fntable_find(shoal_sched_functions(sched), iv->fn, strlen(iv->fn));
    shoal_sched_new_id(sched, id);
    r.id = id;
    r.meta = "{\"k\":\"v\"}";
    r.meta_len = 9;
    r.input = iv->input;
    r.input_len = iv->len;
    r.cb = on_result;
    r.opaque = iv->res;
    r.group = iv->group;
    iv->ret = shoal_sched_invoke(sched, &r, &iv->inv);
}

/* Starts an invocation of group ranks (1: a plain one); returns shoal_sched_invoke's result. */
static int invoke_group(const char *fn, uint32_t group, const void *in, size_t len, result_t *res,
                        shoal_inv_t **inv)
{
    invoke_t iv = {fn, in, len, res, 0, NULL, group};
    on_loop(do_invoke, &iv);
    if (inv)
        *inv = iv.inv;
    return iv.ret;
}

static int invoke(const char *fn, const void *in, size_t len, result_t *res, shoal_inv_t **inv)
{
    return invoke_group(fn, 1, in, len, res, inv);
}

static void do_cancel(void *a)
{
    shoal_sched_cancel(a);
}

typedef struct {
    shoal_fn_t fn;
    int deleted;
    int ret;
    int cb_called;
} publish_t;

static void on_pub(void *opaque)
{
    publish_t *p = opaque;
    pthread_mutex_lock(&mu);
    p->cb_called++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void do_publish(void *a)
{
    publish_t *p = a;
    shoal_sched_pub_t *h;
    p->ret = shoal_sched_publish(sched, &p->fn, p->deleted, on_pub, p, &h);
}

static int pub_called(publish_t *p, int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        pthread_mutex_lock(&mu);
        int c = p->cb_called;
        pthread_mutex_unlock(&mu);
        if (c)
            return c;
        usleep(10000);
    }
    return 0;
}

static void do_stats(void *a)
{
    shoal_sched_stats(sched, a);
}

static shoal_fn_t make_fn(const char *name, uint64_t version, uint32_t timeout, uint32_t maxi)
{
    shoal_fn_t f;
    memset(&f, 0, sizeof(f));
    snprintf(f.name, sizeof(f.name), "%s", name);
    f.version = version;
    memset(f.sha256, 'c', 64);
    f.size = 10;
    f.timeout_ms = timeout;
    f.memory_mb = 64;
    f.max_instances = maxi;
    return f;
}

/* ---- fake workers ------------------------------------------------------------------------- */

typedef struct {
    shoal_frame_hdr h;
    json_t *meta;
    char *raw;
    size_t raw_len;
    uint8_t *data;
    size_t len;
} frame_t;

static void frame_free(frame_t *f)
{
    json_decref(f->meta);
    free(f->raw);
    free(f->data);
    memset(f, 0, sizeof(*f));
}

static int fw_connect(int timeout_ms)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* Sends a frame; a RESULT's meta is written as v1 JSON here and goes out binary
 * (invmeta_json.h), unless it is not even JSON (malformed-meta tests send it as it is). */
static void fw_send(int fd, uint8_t type, uint32_t id, const char *meta, const void *data,
                    size_t len)
{
    assert_int_equal(ij_send_frame(fd, type, id, meta, data, len), 0);
}

/* Reads one frame; 0, or -1 on timeout or end of stream. */
static int fw_recv(int fd, frame_t *f)
{
    uint8_t hdr[SHOAL_FRAME_HDR_SIZE], *payload;
    const char *meta;
    const uint8_t *data;
    size_t mlen, dlen;

    memset(f, 0, sizeof(*f));
    if (shoal_util_read_all(fd, hdr, sizeof(hdr)) < 0)
        return -1;
    assert_int_equal(shoal_frame_decode_hdr(hdr, 1u << 30, &f->h), 0);
    payload = malloc(f->h.len);
    if (shoal_util_read_all(fd, payload, f->h.len) < 0) {
        free(payload);
        return -1;
    }
    assert_int_equal(shoal_frame_split(payload, f->h.len, &meta, &mlen, &data, &dlen), 0);
    /* Binary metas are checked through their v1 JSON shape (invmeta_json.h). */
    if (f->h.type == SHOAL_FRAME_INVOKE)
        f->meta = ij_invoke_to_json(meta, mlen);
    else if (f->h.type == SHOAL_FRAME_CALL_RESULT || f->h.type == SHOAL_FRAME_RESULT)
        f->meta = ij_result_to_json(meta, mlen);
    else
        f->meta = json_loadb(meta, mlen, 0, NULL);
    assert_non_null(f->meta);
    f->raw = malloc(mlen + 1);
    memcpy(f->raw, meta, mlen);
    f->raw[mlen] = '\0';
    f->raw_len = mlen;
    f->data = malloc(dlen + 1);
    memcpy(f->data, data, dlen);
    f->data[dlen] = 0;
    f->len = dlen;
    free(payload);
    return 0;
}

/* The frame's meta is byte for byte the binary form of the v1 JSON RESULT meta json. */
static void expect_raw_result(const frame_t *f, const char *json)
{
    size_t len;
    uint8_t *bin = ij_result_from_json(json, &len);
    assert_non_null(bin);
    assert_int_equal(f->raw_len, len);
    assert_memory_equal(f->raw, bin, len);
    free(bin);
}

static void fw_expect(int fd, uint8_t type, frame_t *f)
{
    if (fw_recv(fd, f) < 0)
        fail_msg("expected frame type %u, got nothing", type);
    if (f->h.type != type)
        fail_msg("expected frame type %u, got %u: %s", type, f->h.type, f->raw);
}

/* Whether the controller closed the connection (after an optional ERROR frame, whose message is
 * copied into why). */
static int fw_closed(int fd, char *why, size_t n)
{
    frame_t f;
    if (why)
        why[0] = '\0';
    while (fw_recv(fd, &f) == 0) {
        if (f.h.type == SHOAL_FRAME_ERROR && why)
            snprintf(why, n, "%s", json_string_value(json_object_get(f.meta, "error")));
        frame_free(&f);
    }
    char c;
    return recv(fd, &c, 1, 0) == 0;
}

static int fw_hello(const char *node, int slots, frame_t *welcome)
{
    char meta[128];
    int fd = fw_connect(3000);
    snprintf(meta, sizeof(meta), "{\"node\":\"%s\",\"slots\":%d,\"pid\":42,\"protocol\":2}", node,
             slots);
    fw_send(fd, SHOAL_FRAME_HELLO, 0, meta, NULL, 0);
    fw_expect(fd, SHOAL_FRAME_WELCOME, welcome);
    return fd;
}

/* Round trip on a connection: proves every frame sent before it has been processed. */
static void fw_sync(int fd)
{
    frame_t f;
    fw_send(fd, SHOAL_FRAME_FETCH, 777, "{\"sha256\":\"sync\"}", NULL, 0);
    fw_expect(fd, SHOAL_FRAME_ARTIFACT, &f);
    assert_int_equal(f.h.id, 777);
    frame_free(&f);
}

/* ---- fixture ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/shoal-test-sched-XXXXXX");
    if (mkdtemp(home) == NULL || shoal_registry_open(home, &reg) < 0)
        return -1;
    memset(&sopts, 0, sizeof(sopts));
    sopts.queue_max = 2;
    sopts.max_payload = 32u << 20;
    sopts.max_artifact = 16u << 20;
    sopts.max_body = 8u << 20;
    sopts.no_worker_wait_ms = 300;
    sopts.ack_timeout_ms = 300;
    sopts.heartbeat_ms = 600;
    sopts.grace_ms = 200;
    sopts.registry = reg;
    loop_thread_init();
    if (shoal_sched_create(&loop, &sopts, &sched) < 0)
        return -1;
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    if (shoal_sched_listen(sched, (struct sockaddr *)&a) < 0)
        return -1;
    port = shoal_sched_port(sched);
    shoal_fn_t fns[3] = {make_fn("echo", 1, 2000, 64), make_fn("slow", 1, 200, 64),
                         make_fn("one", 1, 2000, 1)};
    if (shoal_sched_load(sched, fns, 3) < 0)
        return -1;
    loop_thread_start(NULL);
    return 0;
}

static void do_shutdown(void *a)
{
    (void)a;
    shoal_sched_shutdown(sched);
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    on_loop(do_shutdown, NULL);
    loop_thread_stop();
    assert_true(shoal_sched_idle(sched));
    shoal_sched_destroy(sched);
    assert_int_equal(uv_loop_close(&loop), 0);
    shoal_registry_close(reg);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_no_workers(void **state)
{
    result_t r = {0};
    uint64_t t0 = shoal_util_now_ms();
    (void)state;

    assert_int_equal(invoke("echo", "x", 1, &r, NULL), 0);
    assert_true(wait_result(&r, 3000));
    assert_int_equal(r.code, SHOAL_API_NO_WORKERS);
    assert_int_equal(r.status, 503);
    assert_true(shoal_util_now_ms() - t0 >= 250);
    result_free(&r);
}

static void test_roundtrip_and_errors(void **state)
{
    frame_t w, f;
    result_t r = {0};
    int fd;
    (void)state;

    fd = fw_hello("n1", 4, &w);
    assert_int_equal(json_integer_value(json_object_get(w.meta, "max_body")), 8u << 20);
    json_t *fns = json_object_get(w.meta, "functions");
    assert_int_equal(json_array_size(fns), 3);
    assert_true(json_integer_value(json_object_get(w.meta, "worker_id")) > 0);
    frame_free(&w);

    assert_int_equal(invoke("echo", "ping", 4, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    json_t *fn = json_object_get(f.meta, "fn");
    assert_string_equal(json_string_value(json_object_get(fn, "name")), "echo");
    assert_int_equal(json_integer_value(json_object_get(fn, "version")), 1);
    assert_int_equal(strlen(json_string_value(json_object_get(f.meta, "invocation_id"))), 32);
    json_int_t left = json_integer_value(json_object_get(f.meta, "timeout_ms"));
    assert_true(left > 1500 && left <= 2000);
    assert_int_equal(json_integer_value(json_object_get(f.meta, "depth")), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f.meta, "meta"), "k")),
                        "v");
    assert_int_equal(f.len, 4);
    assert_memory_equal(f.data, "ping", 4);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id,
            "{\"ok\":true,\"status\":201,\"headers\":{\"x-a\":\"b\"},\"duration_us\":5}", "pong",
            4);
    frame_free(&f);
    assert_true(wait_result(&r, 2000));
    assert_int_equal(r.code, SHOAL_API_OK);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.data, "pong");
    assert_string_equal(r.header_xa, "b");
    assert_true(r.has_worker_meta);
    result_free(&r);

    static const struct {
        const char *meta;
        shoal_api_err_t code;
        int status;
        const char *msg;
    } CASES[] = {
        {"{\"ok\":false,\"kind\":\"crash\",\"error\":\"function crashed: killed by signal 11 "
         "(SIGSEGV)\"}",
         SHOAL_API_FUNCTION_CRASHED, 502, "function crashed: killed by signal 11 (SIGSEGV)"},
        {"{\"ok\":false,\"kind\":\"function\",\"error\":\"bad input\"}", SHOAL_API_FUNCTION_ERROR,
         502, "bad input"},
        {"{\"ok\":false,\"kind\":\"function\"}", SHOAL_API_FUNCTION_ERROR, 502,
         "the invocation failed (function)"},
        {"{\"ok\":false,\"kind\":\"timeout\"}", SHOAL_API_TIMEOUT, 504,
         "function exceeded its timeout of 2000 ms"},
        /* "overload" is not an answer but a retry: see test_overload_requeues. */
        {"{\"ok\":false,\"kind\":\"too_large\",\"error\":\"output too large\"}",
         SHOAL_API_TOO_LARGE, 413, "output too large"},
        {"{\"ok\":false,\"kind\":\"martian\",\"error\":\"?\"}", SHOAL_API_INTERNAL, 500, "?"},
        {"{\"ok\":true,\"status\":99}", SHOAL_API_OK, 200, ""},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        assert_int_equal(invoke("echo", "", 0, &r, NULL), 0);
        fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
        assert_int_equal(f.len, 0);
        fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, CASES[i].meta, NULL, 0);
        frame_free(&f);
        assert_true(wait_result(&r, 2000));
        assert_int_equal(r.code, CASES[i].code);
        assert_int_equal(r.status, CASES[i].status);
        assert_string_equal(r.msg, CASES[i].msg);
        result_free(&r);
    }

    /* A RESULT nobody waits for is ignored, and the worker stays in service. */
    fw_send(fd, SHOAL_FRAME_RESULT, 123456, "{\"ok\":true}", NULL, 0);
    assert_int_equal(invoke("echo", "again", 5, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", "done", 4);
    frame_free(&f);
    assert_true(wait_result(&r, 2000));
    assert_string_equal(r.data, "done");
    result_free(&r);
    close(fd);
}

static void test_worker_lost(void **state)
{
    frame_t w, f;
    result_t r = {0};
    int fd;
    (void)state;

    fd = fw_hello("doomed", 2, &w);
    frame_free(&w);
    assert_int_equal(invoke("echo", "x", 1, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    frame_free(&f);
    uint64_t t0 = shoal_util_now_ms();
    close(fd);
    assert_true(wait_result(&r, 2000));
    assert_true(shoal_util_now_ms() - t0 < 1000);
    assert_int_equal(r.code, SHOAL_API_WORKER_LOST);
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.msg, "doomed"));
    result_free(&r);
}

static void test_backstop_timeout(void **state)
{
    frame_t w, f;
    result_t r = {0};
    int fd;
    uint64_t t0;
    (void)state;

    fd = fw_hello("lazy", 2, &w);
    frame_free(&w);
    t0 = shoal_util_now_ms();
    assert_int_equal(invoke("slow", "x", 1, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    assert_true(json_integer_value(json_object_get(f.meta, "timeout_ms")) <= 200);
    /* The worker says nothing: the controller answers at timeout + grace. */
    assert_true(wait_result(&r, 3000));
    assert_true(shoal_util_now_ms() - t0 >= 380);
    assert_int_equal(r.code, SHOAL_API_TIMEOUT);
    assert_string_equal(r.msg, "function exceeded its timeout of 200 ms");
    result_free(&r);
    /* Its late answer is dropped; the worker still serves. */
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", NULL, 0);
    frame_free(&f);
    assert_int_equal(invoke("echo", "x", 1, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", "ok", 2);
    frame_free(&f);
    assert_true(wait_result(&r, 2000));
    assert_int_equal(r.code, SHOAL_API_OK);
    result_free(&r);
    close(fd);
}

static void test_malformed_frames(void **state)
{
    char why[128];
    frame_t w;
    int fd;
    (void)state;

    fd = fw_connect(2000);
    assert_int_equal(write(fd, "GET / HTTP/1.1\r\n\r\n", 18), 18);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_string_equal(why, "malformed frame header");
    close(fd);

    fd = fw_connect(2000);
    fw_send(fd, SHOAL_FRAME_STATUS, 0, "{}", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_string_equal(why, "the first frame must be HELLO");
    close(fd);

    fd = fw_connect(2000);
    fw_send(fd, SHOAL_FRAME_HELLO, 0, "{\"node\":\"x\",\"slots\":0}", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "slots"));
    close(fd);

    fd = fw_connect(2000);
    fw_send(fd, SHOAL_FRAME_HELLO, 0, "{\"node\":\"x\",\"slots\":1,\"protocol\":1}", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "protocol"));
    close(fd);

    fd = fw_hello("bad-json", 1, &w);
    frame_free(&w);
    fw_send(fd, SHOAL_FRAME_RESULT, 1, "{not json", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "RESULT"));
    close(fd);

    /* A binary RESULT meta one byte short of what its lengths announce: refused, not read. */
    {
        size_t blen;
        uint8_t *bin =
            ij_result_from_json("{\"ok\":false,\"kind\":\"function\",\"error\":\"e\"}", &blen);
        uint8_t p2[SHOAL_FRAME_PREFIX_SIZE];
        assert_non_null(bin);
        fd = fw_hello("short-result", 1, &w);
        frame_free(&w);
        assert_int_equal(shoal_frame_encode(p2, SHOAL_FRAME_RESULT, 1, blen - 1, 0), 0);
        assert_int_equal(shoal_util_write_all(fd, p2, sizeof(p2)), 0);
        assert_int_equal(shoal_util_write_all(fd, bin, blen - 1), 0);
        assert_true(fw_closed(fd, why, sizeof(why)));
        assert_string_equal(why, "malformed RESULT meta");
        close(fd);
        free(bin);
    }

    /* A peer speaking frame protocol version 1 is refused with a message naming ours. */
    fd = fw_connect(2000);
    {
        uint8_t v1[SHOAL_FRAME_PREFIX_SIZE + 2];
        assert_int_equal(shoal_frame_encode(v1, SHOAL_FRAME_HELLO, 0, 2, 0), 0);
        v1[4] = 1;
        memcpy(v1 + SHOAL_FRAME_PREFIX_SIZE, "{}", 2);
        assert_int_equal(shoal_util_write_all(fd, v1, sizeof(v1)), 0);
    }
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "speaks version 2"));
    close(fd);

    fd = fw_hello("oversized", 1, &w);
    frame_free(&w);
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];
    shoal_frame_encode(pre, SHOAL_FRAME_RESULT, 1, 2, (32u << 20));
    assert_int_equal(shoal_util_write_all(fd, pre, sizeof(pre)), 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_string_equal(why, "frame too large");
    close(fd);

    /* Before HELLO a stranger's frames are bounded to 64 KiB, far below max_payload. */
    fd = fw_connect(2000);
    shoal_frame_encode(pre, SHOAL_FRAME_HELLO, 0, 2, 64u << 10);
    assert_int_equal(shoal_util_write_all(fd, pre, sizeof(pre)), 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_string_equal(why, "frame too large");
    close(fd);

    fd = fw_hello("wrong-direction", 1, &w);
    frame_free(&w);
    fw_send(fd, SHOAL_FRAME_INVOKE, 1, "{}", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "unexpected frame type 5"));
    close(fd);

    fd = fw_hello("bad-call", 1, &w);
    frame_free(&w);
    fw_send(fd, SHOAL_FRAME_CALL, 1, "{\"function\":7}", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "CALL"));
    close(fd);

    shoal_sched_stats_t st;
    on_loop(do_stats, &st);
    assert_int_equal(st.workers, 0);
}

static void test_queue_bound_and_cancel(void **state)
{
    frame_t w, a, b, f;
    result_t ra = {0}, rb = {0}, rc = {0}, rd = {0};
    shoal_inv_t *ic;
    shoal_sched_stats_t st;
    int fd;
    (void)state;

    fd = fw_hello("tiny", 1, &w);
    frame_free(&w);
    assert_int_equal(invoke("echo", "a", 1, &ra, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &a);
    assert_int_equal(invoke("echo", "b", 1, &rb, NULL), 0);
    assert_int_equal(invoke("echo", "c", 1, &rc, &ic), 0);
    assert_int_equal(invoke("echo", "d", 1, &rd, NULL), -EAGAIN); /* queue_max is 2 */
    on_loop(do_stats, &st);
    assert_int_equal(st.queued, 2);
    assert_int_equal(st.inflight, 1);

    /* c's client goes away while it waits: it is dropped without an answer. */
    on_loop(do_cancel, ic);
    fw_send(fd, SHOAL_FRAME_RESULT, a.h.id, "{\"ok\":true}", "A", 1);
    assert_true(wait_result(&ra, 2000));
    fw_expect(fd, SHOAL_FRAME_INVOKE, &b); /* FIFO: b is next */
    assert_memory_equal(b.data, "b", 1);
    fw_send(fd, SHOAL_FRAME_RESULT, b.h.id, "{\"ok\":true}", "B", 1);
    assert_true(wait_result(&rb, 2000));
    assert_string_equal(rb.data, "B");
    /* Nothing else arrives: c was cancelled. */
    struct timeval tv = {0, 300000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(fw_recv(fd, &f), -1);
    assert_int_equal(rc.done, 0);
    on_loop(do_stats, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.results[SHOAL_API_OK], 2);
    frame_free(&a);
    frame_free(&b);
    result_free(&ra);
    result_free(&rb);
    close(fd);
}

static void test_max_instances_per_worker(void **state)
{
    frame_t w, a, b;
    result_t ra = {0}, rb = {0};
    shoal_sched_stats_t st;
    int fd;
    (void)state;

    fd = fw_hello("roomy", 8, &w);
    frame_free(&w);
    assert_int_equal(invoke("one", "1", 1, &ra, NULL), 0);
    assert_int_equal(invoke("one", "2", 1, &rb, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &a);
    on_loop(do_stats, &st);
    assert_int_equal(st.inflight, 1); /* the second waits: max_instances is 1 */
    assert_int_equal(st.queued, 1);
    fw_send(fd, SHOAL_FRAME_RESULT, a.h.id, "{\"ok\":true}", NULL, 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &b);
    assert_memory_equal(b.data, "2", 1);
    fw_send(fd, SHOAL_FRAME_RESULT, b.h.id, "{\"ok\":true}", NULL, 0);
    assert_true(wait_result(&ra, 2000));
    assert_true(wait_result(&rb, 2000));
    frame_free(&a);
    frame_free(&b);
    result_free(&ra);
    result_free(&rb);
    close(fd);
}

/* A worker that refuses as overloaded gets the invocation back later, input intact; after 16
 * refusals the client is told overloaded (429). */
static void test_overload_requeues(void **state)
{
    frame_t w, a, b, f;
    result_t ra = {0}, rb = {0};
    shoal_sched_stats_t st;
    int fd;
    (void)state;

    fd = fw_hello("busy", 2, &w);
    frame_free(&w);
    assert_int_equal(invoke("echo", "A", 1, &ra, NULL), 0);
    assert_int_equal(invoke("echo", "B", 1, &rb, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &a);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &b);
    fw_send(fd, SHOAL_FRAME_RESULT, a.h.id,
            "{\"ok\":false,\"kind\":\"overload\",\"error\":\"full\"}", NULL, 0);
    fw_sync(fd);
    assert_int_equal(ra.done, 0); /* not answered: queued again */
    on_loop(do_stats, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.inflight, 1);
    /* B's answer shows the worker has room again: A is sent once more, same input. */
    fw_send(fd, SHOAL_FRAME_RESULT, b.h.id, "{\"ok\":true}", "b", 1);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    assert_int_equal(f.len, 1);
    assert_memory_equal(f.data, "A", 1);
    frame_free(&a);
    a = f;
    for (int i = 1; i < 16; i++) {
        fw_send(fd, SHOAL_FRAME_RESULT, a.h.id,
                "{\"ok\":false,\"kind\":\"overload\",\"error\":\"full\"}", NULL, 0);
        /* A STATUS also clears the worker's saturation. */
        fw_send(fd, SHOAL_FRAME_STATUS, 0, "{\"slots\":2,\"busy\":0,\"stems\":0,\"pools\":[]}",
                NULL, 0);
        frame_free(&a);
        fw_expect(fd, SHOAL_FRAME_INVOKE, &a);
        assert_memory_equal(a.data, "A", 1);
    }
    fw_send(fd, SHOAL_FRAME_RESULT, a.h.id,
            "{\"ok\":false,\"kind\":\"overload\",\"error\":\"full\"}", NULL, 0);
    assert_true(wait_result(&ra, 2000));
    assert_int_equal(ra.code, SHOAL_API_OVERLOADED);
    assert_int_equal(ra.status, 429);
    assert_true(wait_result(&rb, 2000));
    assert_int_equal(rb.code, SHOAL_API_OK);
    frame_free(&a);
    frame_free(&b);
    result_free(&ra);
    result_free(&rb);
    close(fd);
}

static void test_publish_acks(void **state)
{
    frame_t w, f;
    publish_t p = {.fn = make_fn("echo", 2, 1000, 64)};
    char why[128];
    int fd;
    (void)state;

    fd = fw_hello("acker", 2, &w);
    frame_free(&w);
    on_loop(do_publish, &p);
    assert_int_equal(p.ret, 0);
    fw_expect(fd, SHOAL_FRAME_FUNC, &f);
    assert_int_equal(json_integer_value(json_object_get(f.meta, "version")), 2);
    assert_int_equal(p.cb_called, 0); /* not before the acknowledgement */
    fw_send(fd, SHOAL_FRAME_FUNC_ACK, f.h.id, "{}", NULL, 0);
    assert_true(pub_called(&p, 1000));
    frame_free(&f);

    /* An older version finishing late changes nothing and waits for nobody. */
    publish_t old = {.fn = make_fn("echo", 1, 1000, 64)};
    on_loop(do_publish, &old);
    assert_int_equal(old.ret, 1);

    /* Deleting: FUNC {"name","deleted":true}; this time the worker does not acknowledge and is
     * dropped, after which the publish completes. */
    publish_t del = {.fn = make_fn("echo", 2, 1000, 64), .deleted = 1};
    on_loop(do_publish, &del);
    assert_int_equal(del.ret, 0);
    fw_expect(fd, SHOAL_FRAME_FUNC, &f);
    assert_true(json_is_true(json_object_get(f.meta, "deleted")));
    assert_string_equal(json_string_value(json_object_get(f.meta, "name")), "echo");
    frame_free(&f);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "acknowledge"));
    assert_true(pub_called(&del, 1000));
    close(fd);

    /* A deleted function cannot be invoked; a new worker's WELCOME no longer lists it. */
    result_t r = {0};
    assert_int_equal(invoke("echo", "x", 1, &r, NULL), -ENOENT);
    fd = fw_hello("late", 2, &w);
    assert_int_equal(json_array_size(json_object_get(w.meta, "functions")), 2);
    frame_free(&w);
    close(fd);
}

static void test_fetch(void **state)
{
    frame_t w, f;
    shoal_fn_t fn;
    char err[64], meta[128];
    int created, fd;
    size_t big = 6u << 20;
    char *bytes = malloc(big);
    (void)state;

    for (size_t i = 0; i < big; i++)
        bytes[i] = (char)(i * 7);
    assert_int_equal(
        shoal_registry_put(reg, "art", bytes, big, NULL, &fn, &created, err, sizeof(err)), 0);
    fd = fw_hello("fetcher", 1, &w);
    frame_free(&w);
    snprintf(meta, sizeof(meta), "{\"sha256\":\"%s\"}", fn.sha256);
    fw_send(fd, SHOAL_FRAME_FETCH, 9, meta, NULL, 0);
    fw_expect(fd, SHOAL_FRAME_ARTIFACT, &f);
    assert_int_equal(f.h.id, 9);
    assert_null(json_object_get(f.meta, "error"));
    assert_string_equal(json_string_value(json_object_get(f.meta, "sha256")), fn.sha256);
    assert_int_equal(f.len, big);
    assert_memory_equal(f.data, bytes, big);
    frame_free(&f);

    fw_send(fd, SHOAL_FRAME_FETCH, 10, "{\"sha256\":\"../../etc/passwd\"}", NULL, 0);
    fw_expect(fd, SHOAL_FRAME_ARTIFACT, &f);
    assert_int_equal(f.h.id, 10);
    assert_non_null(json_string_value(json_object_get(f.meta, "error")));
    assert_int_equal(f.len, 0);
    frame_free(&f);
    snprintf(meta, sizeof(meta), "{\"sha256\":\"%064d\"}", 0);
    fw_send(fd, SHOAL_FRAME_FETCH, 11, meta, NULL, 0);
    fw_expect(fd, SHOAL_FRAME_ARTIFACT, &f);
    assert_string_equal(json_string_value(json_object_get(f.meta, "error")), "no such artifact");
    frame_free(&f);
    free(bytes);
    close(fd);
}

static void test_call_relay(void **state)
{
    frame_t w, inv, f;
    int fd;
    (void)state;

    fd = fw_hello("caller", 4, &w);
    frame_free(&w);
    fw_send(fd, SHOAL_FRAME_CALL, 55,
            "{\"function\":\"echo\",\"invocation_id\":\"abc\",\"depth\":2,\"timeout_ms\":500}",
            "in", 2);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &inv);
    assert_int_equal(json_integer_value(json_object_get(inv.meta, "depth")), 3);
    assert_true(json_integer_value(json_object_get(inv.meta, "timeout_ms")) <= 500);
    assert_string_equal(json_string_value(json_object_get(json_object_get(inv.meta, "fn"), "name")),
                        "echo");
    /* The worker names the invocation and the function itself: they are not in the list. */
    assert_null(json_object_get(json_object_get(inv.meta, "meta"), "function"));
    assert_memory_equal(inv.data, "in", 2);
    static const char RMETA[] = "{\"ok\":true,\"status\":200,\"headers\":{},\"extra\":[1,2]}";
    fw_send(fd, SHOAL_FRAME_RESULT, inv.h.id, RMETA, "out", 3);
    fw_expect(fd, SHOAL_FRAME_CALL_RESULT, &f);
    assert_int_equal(f.h.id, 55);
    expect_raw_result(&f, RMETA); /* relayed verbatim */
    assert_int_equal(f.len, 3);
    assert_memory_equal(f.data, "out", 3);
    frame_free(&f);
    frame_free(&inv);

    fw_send(fd, SHOAL_FRAME_CALL, 56,
            "{\"function\":\"echo\",\"invocation_id\":\"abc\",\"depth\":16,\"timeout_ms\":500}",
            NULL, 0);
    fw_expect(fd, SHOAL_FRAME_CALL_RESULT, &f);
    assert_int_equal(f.h.id, 56);
    assert_false(json_is_true(json_object_get(f.meta, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(f.meta, "error")), "16"));
    frame_free(&f);
    fw_send(fd, SHOAL_FRAME_CALL, 57, "{\"function\":\"ghost\",\"depth\":0,\"timeout_ms\":0}", NULL,
            0);
    fw_expect(fd, SHOAL_FRAME_CALL_RESULT, &f);
    assert_string_equal(json_string_value(json_object_get(f.meta, "kind")), "not_found");
    frame_free(&f);
    close(fd);
}

static void test_heartbeat(void **state)
{
    frame_t w;
    char why[128];
    int fd;
    uint64_t t0 = shoal_util_now_ms();
    (void)state;

    fd = fw_hello("quiet", 1, &w);
    frame_free(&w);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "silent"));
    assert_true(shoal_util_now_ms() - t0 < 2500);
    close(fd);
}

static void test_warm_placement(void **state)
{
    frame_t w, f;
    result_t r1 = {0}, r2 = {0};
    int a, b;
    struct timeval tv = {0, 300000};
    (void)state;

    /* The newest worker is first in line among equals: make the cold one the newest, so only
     * the warm-instance rule can pick the other. */
    b = fw_hello("warm", 4, &w);
    frame_free(&w);
    a = fw_hello("cold", 4, &w);
    frame_free(&w);
    fw_send(b, SHOAL_FRAME_STATUS, 0,
            "{\"slots\":4,\"busy\":0,\"stems\":2,\"pools\":[{\"function\":\"echo\",\"version\":1,"
            "\"warm\":1,\"idle\":1,\"busy\":0},{\"function\":\"nope\",\"version\":1,\"warm\":3,"
            "\"idle\":3,\"busy\":0}]}",
            NULL, 0);
    fw_sync(b);
    assert_int_equal(invoke("echo", "1", 1, &r1, NULL), 0);
    fw_expect(b, SHOAL_FRAME_INVOKE, &f); /* the warm worker, though both are idle */
    frame_free(&f);
    setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    /* Its only warm instance is busy now: the next goes to the least loaded worker. */
    assert_int_equal(invoke("echo", "2", 1, &r2, NULL), 0);
    fw_expect(a, SHOAL_FRAME_INVOKE, &f);
    fw_send(a, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", NULL, 0);
    frame_free(&f);
    assert_true(wait_result(&r2, 2000));
    close(b); /* r1 is answered worker_lost */
    assert_true(wait_result(&r1, 2000));
    assert_int_equal(r1.code, SHOAL_API_WORKER_LOST);
    result_free(&r1);
    result_free(&r2);
    close(a);
}

static void test_large_frames(void **state)
{
    frame_t w, f;
    result_t r = {0};
    size_t n = 20u << 20;
    char *in = malloc(n), *out = malloc(n);
    int fd;
    (void)state;

    for (size_t i = 0; i < n; i++) {
        in[i] = (char)(i * 31 + 7);
        out[i] = (char)(i * 17 + 3);
    }
    fd = fw_hello("big", 1, &w);
    frame_free(&w);
    assert_int_equal(invoke("echo", in, n, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    assert_int_equal(f.len, n);
    assert_memory_equal(f.data, in, n);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", out, n);
    frame_free(&f);
    assert_true(wait_result(&r, 5000));
    assert_int_equal(r.code, SHOAL_API_OK);
    assert_int_equal(r.len, n);
    assert_memory_equal(r.data, out, n);
    result_free(&r);
    free(in);
    free(out);
    close(fd);
}

/* ---- groups ------------------------------------------------------------------------------- */

/* Asserts that nothing arrives on fd within ms. */
static void fw_silent(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000}, back = {3, 0};
    frame_t f;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (fw_recv(fd, &f) == 0)
        fail_msg("expected no frame, got type %u: %s", f.h.type, f.raw);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &back, sizeof(back));
}

/* Checks that an INVOKE carries a whole group of n ranks named by its invocation id. */
static void expect_group_meta(const frame_t *f, int n)
{
    json_t *g = json_object_get(f->meta, "group");
    json_t *ranks = json_object_get(g, "ranks");
    assert_non_null(g);
    assert_string_equal(json_string_value(json_object_get(g, "id")),
                        json_string_value(json_object_get(f->meta, "invocation_id")));
    assert_int_equal(json_integer_value(json_object_get(g, "size")), n);
    assert_string_equal(json_string_value(json_object_get(g, "transport")), "shm");
    assert_int_equal(json_array_size(ranks), (size_t)n);
    for (int r = 0; r < n; r++)
        assert_int_equal(json_integer_value(json_array_get(ranks, (size_t)r)), r);
}

typedef struct {
    const char *fn;
    uint32_t n;
    int ret;
    char msg[256];
} gcheck_t;

static void do_group_check(void *a)
{
    gcheck_t *g = a;
    shoal_fnent_t *fn = shoal_fntable_find(shoal_sched_functions(sched), g->fn, strlen(g->fn));
    g->msg[0] = '\0';
    g->ret = shoal_sched_group_check(sched, fn, g->n, g->msg, sizeof(g->msg));
}

static void do_workers_json(void *a)
{
    shoal_json_t j;
    shoal_json_init(&j);
    shoal_sched_workers_json(sched, &j);
    *(json_t **)a = json_loadb(j.buf, j.len, 0, NULL);
    shoal_json_free(&j);
}

/* A group is one INVOKE with the group meta and one RESULT: rank 0's output, status and headers,
 * or the failing rank's error mapped like any invocation's. Its ranks count as busy meanwhile. */
static void test_group_dispatch_and_answer(void **state)
{
    frame_t w, f;
    result_t r = {0};
    shoal_sched_stats_t st;
    json_t *wj;
    int fd;
    (void)state;

    fd = fw_hello("gang", 8, &w);
    frame_free(&w);
    assert_int_equal(invoke_group("echo", 4, "in", 2, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    expect_group_meta(&f, 4);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.data, "in", 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(f.meta, "meta"), "k")),
                        "v");
    on_loop(do_stats, &st);
    assert_int_equal(st.inflight, 1);
    assert_int_equal(st.group_ranks, 4);
    assert_int_equal(st.groups, 1);
    on_loop(do_workers_json, &wj);
    json_t *w0 = json_array_get(json_object_get(wj, "workers"), 0);
    assert_int_equal(json_integer_value(json_object_get(w0, "inflight")), 4);
    assert_int_equal(json_integer_value(json_object_get(w0, "groups")), 1);
    assert_int_equal(json_integer_value(json_object_get(w0, "group_ranks")), 4);
    json_decref(wj);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id,
            "{\"ok\":true,\"status\":202,\"headers\":{\"x-a\":\"rank0\"}}", "size=4", 6);
    frame_free(&f);
    assert_true(wait_result(&r, 2000));
    assert_int_equal(r.code, SHOAL_API_OK);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.data, "size=4");
    assert_string_equal(r.header_xa, "rank0");
    result_free(&r);
    on_loop(do_stats, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.group_ranks, 0);

    static const struct {
        const char *meta;
        shoal_api_err_t code;
        int status;
        const char *msg;
    } CASES[] = {
        {"{\"ok\":false,\"kind\":\"crash\",\"error\":\"rank 3 crashed: killed by signal 11 "
         "(SIGSEGV)\"}",
         SHOAL_API_FUNCTION_CRASHED, 502, "rank 3 crashed: killed by signal 11 (SIGSEGV)"},
        {"{\"ok\":false,\"kind\":\"timeout\",\"error\":\"rank 2 exceeded the timeout of 2000 "
         "ms\"}",
         SHOAL_API_TIMEOUT, 504, "rank 2 exceeded the timeout of 2000 ms"},
        {"{\"ok\":false,\"kind\":\"function\",\"error\":\"rank 1 failed: no\"}",
         SHOAL_API_FUNCTION_ERROR, 502, "rank 1 failed: no"},
    };
    for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
        assert_int_equal(invoke_group("echo", 8, "", 0, &r, NULL), 0);
        fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
        expect_group_meta(&f, 8);
        fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, CASES[i].meta, NULL, 0);
        frame_free(&f);
        assert_true(wait_result(&r, 2000));
        assert_int_equal(r.code, CASES[i].code);
        assert_int_equal(r.status, CASES[i].status);
        assert_string_equal(r.msg, CASES[i].msg);
        result_free(&r);
    }

    /* A worker that cannot start all the ranks after all refuses the group as overloaded: it
     * comes back whole once the worker reports again. */
    assert_int_equal(invoke_group("echo", 5, "again", 5, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id,
            "{\"ok\":false,\"kind\":\"overload\",\"error\":\"no room\"}", NULL, 0);
    frame_free(&f);
    fw_silent(fd, 200);
    fw_send(fd, SHOAL_FRAME_STATUS, 0, "{\"slots\":8,\"busy\":0,\"stems\":0,\"pools\":[]}", NULL,
            0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    expect_group_meta(&f, 5);
    assert_memory_equal(f.data, "again", 5);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", "ok", 2);
    frame_free(&f);
    assert_true(wait_result(&r, 2000));
    assert_int_equal(r.code, SHOAL_API_OK);
    result_free(&r);
    close(fd);
}

/* All or nothing: a group waits whole until one worker has room for every rank, and the worker
 * it waits for takes no newer work meanwhile, so that it cannot starve. */
static void test_group_waits_whole(void **state)
{
    frame_t w, a, g, f;
    result_t ra = {0}, rg = {0}, rb = {0};
    shoal_sched_stats_t st;
    int fd;
    (void)state;

    fd = fw_hello("four", 4, &w);
    frame_free(&w);
    assert_int_equal(invoke("echo", "a", 1, &ra, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &a);
    /* 3 slots free, 4 needed: nothing is sent, not even part of it. */
    assert_int_equal(invoke_group("echo", 4, "g", 1, &rg, NULL), 0);
    fw_silent(fd, 200);
    on_loop(do_stats, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.inflight, 1);
    assert_int_equal(st.group_ranks, 0);
    /* Newer work does not take the slots the group waits for (though they are free). */
    assert_int_equal(invoke("echo", "b", 1, &rb, NULL), 0);
    fw_silent(fd, 200);
    on_loop(do_stats, &st);
    assert_int_equal(st.queued, 2);
    /* a ends: the group goes first, then b once the group is done. */
    fw_send(fd, SHOAL_FRAME_RESULT, a.h.id, "{\"ok\":true}", "A", 1);
    assert_true(wait_result(&ra, 2000));
    fw_expect(fd, SHOAL_FRAME_INVOKE, &g);
    expect_group_meta(&g, 4);
    fw_silent(fd, 200); /* b: the worker is full */
    fw_send(fd, SHOAL_FRAME_RESULT, g.h.id, "{\"ok\":true}", "G", 1);
    assert_true(wait_result(&rg, 2000));
    assert_string_equal(rg.data, "G");
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    assert_null(json_object_get(f.meta, "group")); /* a plain invocation has no group meta */
    assert_memory_equal(f.data, "b", 1);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", "B", 1);
    assert_true(wait_result(&rb, 2000));
    frame_free(&a);
    frame_free(&g);
    frame_free(&f);
    result_free(&ra);
    result_free(&rg);
    result_free(&rb);
    close(fd);
}

/* Workers with the most free slots are filled first; a group never straddles workers. */
static void test_group_packing(void **state)
{
    frame_t w, f[4];
    result_t r[5] = {{0}};
    int big, small;
    (void)state;

    big = fw_hello("big8", 8, &w);
    frame_free(&w);
    small = fw_hello("small6", 6, &w);
    frame_free(&w);
    assert_int_equal(invoke_group("echo", 4, "", 0, &r[0], NULL), 0);
    fw_expect(big, SHOAL_FRAME_INVOKE, &f[0]); /* 8 free against 6 */
    assert_int_equal(invoke_group("echo", 4, "", 0, &r[1], NULL), 0);
    fw_expect(small, SHOAL_FRAME_INVOKE, &f[1]); /* 6 against 4 */
    assert_int_equal(invoke_group("echo", 3, "", 0, &r[2], NULL), 0);
    fw_expect(big, SHOAL_FRAME_INVOKE, &f[2]); /* 4 against 2 */
    assert_int_equal(invoke_group("echo", 2, "", 0, &r[3], NULL), 0);
    fw_expect(small, SHOAL_FRAME_INVOKE, &f[3]); /* 1 against 2 */
    expect_group_meta(&f[3], 2);
    /* One slot left in all (on big): a group of 2 waits, though the cluster has 14 slots. */
    assert_int_equal(invoke_group("echo", 2, "", 0, &r[4], NULL), 0);
    fw_silent(big, 150);
    fw_silent(small, 50);
    /* small's group of 4 ends: 4 free there now, and the waiting group goes there. */
    fw_send(small, SHOAL_FRAME_RESULT, f[1].h.id, "{\"ok\":true}", NULL, 0);
    frame_free(&f[1]);
    fw_expect(small, SHOAL_FRAME_INVOKE, &f[1]);
    expect_group_meta(&f[1], 2);
    fw_send(small, SHOAL_FRAME_RESULT, f[1].h.id, "{\"ok\":true}", NULL, 0);
    fw_send(small, SHOAL_FRAME_RESULT, f[3].h.id, "{\"ok\":true}", NULL, 0);
    fw_send(big, SHOAL_FRAME_RESULT, f[0].h.id, "{\"ok\":true}", NULL, 0);
    fw_send(big, SHOAL_FRAME_RESULT, f[2].h.id, "{\"ok\":true}", NULL, 0);
    for (int i = 0; i < 5; i++) {
        assert_true(wait_result(&r[i], 2000));
        assert_int_equal(r[i].code, SHOAL_API_OK);
        result_free(&r[i]);
    }
    for (int i = 0; i < 4; i++)
        frame_free(&f[i]);
    close(big);
    close(small);
}

/* A group lives on one worker unless workers announce a peer transport (HELLO "peer"): these
 * fake workers do not, so the cluster holds what one worker holds, and a larger group is refused
 * at once, naming the limit; one larger than any group is refused too. */
static void test_group_too_large_and_split(void **state)
{
    frame_t w;
    result_t r = {0};
    gcheck_t gc = {"echo", 9, 0, ""};
    int a, b;
    (void)state;

    /* No worker yet: the group waits for one like any invocation, then no_workers. */
    assert_int_equal(invoke_group("echo", 100, "", 0, &r, NULL), 0);
    assert_true(wait_result(&r, 2000));
    assert_int_equal(r.code, SHOAL_API_NO_WORKERS);
    result_free(&r);

    a = fw_hello("a4", 4, &w);
    frame_free(&w);
    b = fw_hello("b4", 4, &w);
    frame_free(&w);
    assert_int_equal(invoke_group("echo", 9, "", 0, &r, NULL), -E2BIG);
    on_loop(do_group_check, &gc);
    assert_int_equal(gc.ret, -E2BIG);
    assert_non_null(strstr(gc.msg, "group of 9 ranks"));
    assert_non_null(strstr(gc.msg, "4 instances of 'echo' on 2 workers"));
    /* 8 would fit only split 4 + 4, which needs peer transports. */
    gc.n = 8;
    on_loop(do_group_check, &gc);
    assert_int_equal(gc.ret, -E2BIG);
    assert_int_equal(invoke_group("echo", 8, "", 0, &r, NULL), -E2BIG);
    gc.n = 4;
    on_loop(do_group_check, &gc);
    assert_int_equal(gc.ret, 0);
    /* max_instances bounds each worker's share: "one" allows 1 instance per worker. */
    gc = (gcheck_t){"one", 3, 0, ""};
    on_loop(do_group_check, &gc);
    assert_int_equal(gc.ret, -E2BIG);
    assert_non_null(strstr(gc.msg, "1 instances of 'one'"));
    assert_int_equal(invoke_group("echo", SHOAL_SCHED_GROUP_MAX + 1, "", 0, &r, NULL), -EINVAL);
    shoal_sched_stats_t st;
    on_loop(do_stats, &st);
    assert_int_equal(st.queued, 0);
    close(a);
    close(b);
}

/* Losing the worker fails the whole group at once; its ranks are free again. */
static void test_group_worker_lost(void **state)
{
    frame_t w, f;
    result_t r = {0}, q = {0};
    shoal_sched_stats_t st;
    int fd;
    (void)state;

    fd = fw_hello("fragile", 3, &w);
    frame_free(&w);
    assert_int_equal(invoke_group("echo", 3, "", 0, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    frame_free(&f);
    assert_int_equal(invoke_group("echo", 2, "", 0, &q, NULL), 0); /* waits: worker full */
    uint64_t t0 = shoal_util_now_ms();
    close(fd);
    assert_true(wait_result(&r, 2000));
    assert_true(shoal_util_now_ms() - t0 < 1000);
    assert_int_equal(r.code, SHOAL_API_WORKER_LOST);
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.msg, "fragile"));
    assert_non_null(strstr(r.msg, "group of 3"));
    on_loop(do_stats, &st);
    assert_int_equal(st.group_ranks, 0);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.queued, 1);
    /* The waiting group gets a new worker that connects in time. */
    fd = fw_hello("fresh", 2, &w);
    frame_free(&w);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    expect_group_meta(&f, 2);
    fw_send(fd, SHOAL_FRAME_RESULT, f.h.id, "{\"ok\":true}", NULL, 0);
    frame_free(&f);
    assert_true(wait_result(&q, 2000));
    assert_int_equal(q.code, SHOAL_API_OK);
    result_free(&r);
    result_free(&q);
    close(fd);
}

/* A worker forwards a shoal_call_group it cannot run itself as CALL with "group". */
static void test_group_call(void **state)
{
    frame_t w, inv, f;
    char why[128];
    int fd;
    (void)state;

    fd = fw_hello("caller4", 4, &w);
    frame_free(&w);
    fw_send(fd, SHOAL_FRAME_CALL, 70,
            "{\"function\":\"echo\",\"invocation_id\":\"abc\",\"depth\":0,\"timeout_ms\":900,"
            "\"group\":3}",
            "in", 2);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &inv);
    expect_group_meta(&inv, 3);
    assert_int_equal(json_integer_value(json_object_get(inv.meta, "depth")), 1);
    assert_memory_equal(inv.data, "in", 2);
    static const char RMETA[] = "{\"ok\":true,\"status\":200,\"headers\":{}}";
    fw_send(fd, SHOAL_FRAME_RESULT, inv.h.id, RMETA, "rank0", 5);
    fw_expect(fd, SHOAL_FRAME_CALL_RESULT, &f);
    assert_int_equal(f.h.id, 70);
    expect_raw_result(&f, RMETA);
    assert_memory_equal(f.data, "rank0", 5);
    frame_free(&f);
    frame_free(&inv);

    /* More ranks than the cluster holds, or a size out of range: answered, not run. */
    fw_send(fd, SHOAL_FRAME_CALL, 71,
            "{\"function\":\"echo\",\"depth\":0,\"timeout_ms\":900,\"group\":5}", NULL, 0);
    fw_expect(fd, SHOAL_FRAME_CALL_RESULT, &f);
    assert_int_equal(f.h.id, 71);
    assert_false(json_is_true(json_object_get(f.meta, "ok")));
    assert_string_equal(json_string_value(json_object_get(f.meta, "kind")), "too_large");
    assert_non_null(strstr(json_string_value(json_object_get(f.meta, "error")), "group of 5"));
    frame_free(&f);
    fw_send(fd, SHOAL_FRAME_CALL, 72,
            "{\"function\":\"echo\",\"depth\":0,\"timeout_ms\":900,\"group\":0}", NULL, 0);
    fw_expect(fd, SHOAL_FRAME_CALL_RESULT, &f);
    assert_int_equal(f.h.id, 72);
    assert_false(json_is_true(json_object_get(f.meta, "ok")));
    assert_non_null(strstr(json_string_value(json_object_get(f.meta, "error")), "1..1024"));
    frame_free(&f);
    /* A group that is not a number is a protocol error. */
    fw_send(fd, SHOAL_FRAME_CALL, 73,
            "{\"function\":\"echo\",\"depth\":0,\"timeout_ms\":900,\"group\":\"3\"}", NULL, 0);
    assert_true(fw_closed(fd, why, sizeof(why)));
    assert_non_null(strstr(why, "group"));
    close(fd);
}

/* The controller's own backstop answers a group whose worker stays silent. */
static void test_group_backstop(void **state)
{
    frame_t w, f;
    result_t r = {0};
    shoal_sched_stats_t st;
    uint64_t t0;
    int fd;
    (void)state;

    fd = fw_hello("mute", 4, &w);
    frame_free(&w);
    t0 = shoal_util_now_ms();
    assert_int_equal(invoke_group("slow", 4, "", 0, &r, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    expect_group_meta(&f, 4);
    assert_true(json_integer_value(json_object_get(f.meta, "timeout_ms")) <= 200);
    frame_free(&f);
    assert_true(wait_result(&r, 3000));
    assert_true(shoal_util_now_ms() - t0 >= 380);
    assert_int_equal(r.code, SHOAL_API_TIMEOUT);
    result_free(&r);
    on_loop(do_stats, &st);
    assert_int_equal(st.group_ranks, 0);
    close(fd);
}

static void do_only_shutdown(void *a)
{
    (void)a;
    shoal_sched_shutdown(sched);
}

static void test_shutdown_answers_everything(void **state)
{
    frame_t w, f;
    result_t ra = {0}, rb = {0};
    int fd;
    (void)state;

    fd = fw_hello("last", 1, &w);
    frame_free(&w);
    assert_int_equal(invoke("echo", "a", 1, &ra, NULL), 0);
    fw_expect(fd, SHOAL_FRAME_INVOKE, &f);
    frame_free(&f);
    assert_int_equal(invoke("echo", "b", 1, &rb, NULL), 0); /* queued */
    on_loop(do_only_shutdown, NULL);
    assert_true(wait_result(&ra, 1000));
    assert_true(wait_result(&rb, 1000));
    assert_int_equal(ra.code, SHOAL_API_SHUTTING_DOWN);
    assert_int_equal(rb.code, SHOAL_API_SHUTTING_DOWN);
    assert_true(fw_closed(fd, NULL, 0));
    result_t rc = {0};
    assert_int_equal(invoke("echo", "c", 1, &rc, NULL), -ESHUTDOWN);
    result_free(&ra);
    result_free(&rb);
    close(fd);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_no_workers),
        T(test_roundtrip_and_errors),
        T(test_worker_lost),
        T(test_backstop_timeout),
        T(test_malformed_frames),
        T(test_queue_bound_and_cancel),
        T(test_max_instances_per_worker),
        T(test_overload_requeues),
        T(test_publish_acks),
        T(test_fetch),
        T(test_call_relay),
        T(test_heartbeat),
        T(test_warm_placement),
        T(test_large_frames),
        T(test_shutdown_answers_everything),
        T(test_group_dispatch_and_answer),
        T(test_group_waits_whole),
        T(test_group_packing),
        T(test_group_too_large_and_split),
        T(test_group_worker_lost),
        T(test_group_call),
        T(test_group_backstop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
