/* Tests the real shoal-worker (and shoal-runtime) against a fake controller that speaks the
 * frame protocol with transport/frame.c: HELLO/WELCOME, FETCH/ARTIFACT, FUNC/FUNC_ACK,
 * INVOKE/RESULT (echo, meta, errors, crash, timeout, too large, overload, 32 MiB), shoal_call
 * served locally and forwarded as CALL, logs, STATUS, and a clean SIGTERM exit. Groups: every
 * collective for sizes 1, 2, 3, 8 and 17, roots 0 and last, parts of 0, 1, odd and 64 MiB bytes
 * checked byte for byte (tests/worker/fn_group.c), failing ranks (crash, never arriving, error,
 * leaving early) named in bounded time, all-or-nothing admission, shoal_call_group served here
 * and forwarded, 1000 groups without an fd or arena leak, and two measurements (a 64-rank group
 * end to end, bcast of 64 MiB among 8 ranks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/transport/invmeta_json.h"
#include "transport/frame.h"
#include "worker/group.h"

static const char *functions[][2] = {
    {"echo",
     "#include <shoal.h>\n#include <string.h>\n"
     "int shoal_main(shoal_ctx *c){shoal_buf in=shoal_input(c);\n"
     " if(in.len>=6&&memcmp(in.data,\"status\",6)==0){shoal_set_meta(c,\"status\",\"201\");\n"
     "  shoal_set_meta(c,\"header:X-Echo\",\"yes\");}\n"
     " shoal_log(c,\"echo %zu bytes\", in.len);\n"
     " return shoal_output(c,in.data,in.len);}\n"},
    {"echo2", "#include <shoal.h>\n#include <string.h>\n"
              "int shoal_main(shoal_ctx *c){shoal_buf in=shoal_input(c);char "
              "*o=shoal_output_alloc(c,in.len+3);\n"
              " if(!o)return 1; memcpy(o,\"v2:\",3); memcpy(o+3,in.data,in.len); return 0;}\n"},
    {"meta",
     "#include <shoal.h>\n#include <stdio.h>\n#include <string.h>\n"
     "int shoal_main(shoal_ctx *c){char b[512];const char*h=shoal_meta(c,\"header:x-test\");\n"
     " int n=snprintf(b,sizeof "
     "b,\"%s|%s|%s|%s|%s|%s\",shoal_meta(c,\"method\"),shoal_meta(c,\"path\"),\n"
     "  "
     "shoal_meta(c,\"query\"),h?h:\"-\",shoal_meta(c,\"invocation_id\"),shoal_meta(c,\"function\"))"
     ";\n"
     " return shoal_output(c,b,(size_t)n);}\n"},
    {"fail", "#include <shoal.h>\n#include <string.h>\n"
             "int shoal_main(shoal_ctx *c){shoal_buf in=shoal_input(c);\n"
             " if(in.len==1) return 3; return shoal_error(c,\"bad thing %d\",42);}\n"},
    {"crash", "#include <shoal.h>\n"
              "int shoal_main(shoal_ctx *c){(void)c; *(volatile int*)0=1; return 0;}\n"},
    {"hang", "#include <shoal.h>\n#include <unistd.h>\n"
             "int shoal_main(shoal_ctx *c){(void)c; for(;;) pause(); return 0;}\n"},
    {"big", "#include <shoal.h>\n#include <stdlib.h>\n"
            "int shoal_main(shoal_ctx *c){char *o=shoal_output_alloc(c,65ul<<20);\n"
            " if(o) return shoal_error(c,\"alloc should fail\"); return 0;}\n"},
    {"chain", "#include <shoal.h>\n#include <string.h>\n#include <stdio.h>\n"
              "int shoal_main(shoal_ctx *c){shoal_buf in=shoal_input(c),out;char name[64];\n"
              " size_t n=in.len<63?in.len:63; memcpy(name,in.data,n); name[n]=0;\n"
              " int r=shoal_call(c,name,\"hello\",5,&out);\n"
              " if(r<0) return shoal_error(c,\"call failed %d: %.*s\",r,(int)out.len,(const "
              "char*)out.data);\n"
              " char *o=shoal_output_alloc(c,out.len+6); memcpy(o,\"chain:\",6); "
              "memcpy(o+6,out.data,out.len);\n"
              " return 0;}\n"},
    {"broken", "this is not C\n"},
    /* "@file": the source is tests/worker/<file>. */
    {"group", "@fn_group.c"},
};
#define NFN (sizeof(functions) / sizeof(functions[0]))

static struct {
    char dir[256];
    char sha[NFN][65];
    char *so[NFN];
    size_t so_len[NFN];
    pid_t worker;
    int lfd, fd;
    uint32_t next_id;
    int calls_seen;
    json_int_t last_call_group;
    int statuses_seen;
    json_t *last_status;
} T;

static int fn_index(const char *name)
{
    for (size_t i = 0; i < NFN; i++)
        if (strcmp(functions[i][0], name) == 0)
            return (int)i;
    return -1;
}

static json_t *fn_json(const char *name, int version, int timeout_ms, int max_instances)
{
    int i = fn_index(name);
    return json_pack("{s:s,s:i,s:s,s:I,s:i,s:i,s:i,s:i}", "name", name, "version", version,
                     "sha256", T.sha[i], "size", (json_int_t)T.so_len[i], "timeout_ms", timeout_ms,
                     "memory_mb", 256, "min_warm", 0, "max_instances", max_instances);
}

/* Sends a frame whose meta is given as v1 JSON; INVOKE and CALL_RESULT metas go out binary
 * (invmeta_json.h; an INVOKE carries its "fn" object in the extension). */
static void send_frame(uint8_t type, uint32_t id, json_t *meta, const void *data, size_t len)
{
    char *m = json_dumps(meta, JSON_COMPACT);
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE], *bin = NULL;
    size_t mlen = strlen(m);

    if (type == SHOAL_FRAME_INVOKE)
        assert_non_null(bin = ij_invoke_from_json(meta, &mlen));
    else if (type == SHOAL_FRAME_CALL_RESULT)
        assert_non_null(bin = ij_result_from_json(m, &mlen));
    json_decref(meta);
    assert_int_equal(shoal_frame_encode(pre, type, id, mlen, len), 0);
    assert_int_equal(shoal_util_write_all(T.fd, pre, sizeof(pre)), 0);
    assert_int_equal(shoal_util_write_all(T.fd, bin ? (char *)bin : m, mlen), 0);
    if (len > 0)
        assert_int_equal(shoal_util_write_all(T.fd, data, len), 0);
    free(m);
    free(bin);
}

typedef struct {
    shoal_frame_hdr hdr;
    json_t *meta;
    uint8_t *data;
    size_t len;
} frame_t;

static void frame_free(frame_t *f)
{
    json_decref(f->meta);
    free(f->data);
    memset(f, 0, sizeof(*f));
}

/* Reads one frame, with a deadline. */
static int read_frame(frame_t *f, int timeout_ms)
{
    uint8_t hdr[SHOAL_FRAME_HDR_SIZE];
    struct pollfd p = {T.fd, POLLIN, 0};
    const char *meta;
    const uint8_t *data;
    uint8_t *payload;
    size_t mlen, dlen;

    memset(f, 0, sizeof(*f));
    if (poll(&p, 1, timeout_ms) != 1)
        return -ETIMEDOUT;
    if (shoal_util_read_all(T.fd, hdr, sizeof(hdr)) < 0)
        return -EIO;
    assert_int_equal(shoal_frame_decode_hdr(hdr, 1u << 30, &f->hdr), 0);
    payload = malloc(f->hdr.len);
    assert_non_null(payload);
    assert_int_equal(shoal_util_read_all(T.fd, payload, f->hdr.len), 0);
    assert_int_equal(shoal_frame_split(payload, f->hdr.len, &meta, &mlen, &data, &dlen), 0);
    f->meta = f->hdr.type == SHOAL_FRAME_RESULT ? ij_result_to_json(meta, mlen)
                                                : json_loadb(meta, mlen, 0, NULL);
    assert_non_null(f->meta);
    f->len = dlen;
    f->data = malloc(dlen + 1);
    memcpy(f->data, data, dlen);
    f->data[dlen] = 0;
    free(payload);
    return 0;
}

/* Next frame of the given type; answers FETCH and records STATUS and CALL on the way. A CALL is
 * answered by calling the named function's source semantics: only echo is supported here. */
static void expect(uint8_t type, frame_t *f)
{
    for (;;) {
        assert_int_equal(read_frame(f, 10000), 0);
        if (f->hdr.type == type)
            return;
        if (f->hdr.type == SHOAL_FRAME_FETCH) {
            const char *sha = json_string_value(json_object_get(f->meta, "sha256"));
            size_t i;
            for (i = 0; i < NFN; i++)
                if (strcmp(T.sha[i], sha) == 0)
                    break;
            assert_true(i < NFN);
            send_frame(SHOAL_FRAME_ARTIFACT, f->hdr.id, json_pack("{s:s}", "sha256", sha), T.so[i],
                       T.so_len[i]);
        } else if (f->hdr.type == SHOAL_FRAME_LOG) {
            /* functions' log lines (frame.h LOG): e2e/test_worker_logs checks them */
        } else if (f->hdr.type == SHOAL_FRAME_STATUS) {
            T.statuses_seen++;
            json_decref(T.last_status);
            T.last_status = json_incref(f->meta);
        } else if (f->hdr.type == SHOAL_FRAME_CALL) {
            /* The fake controller runs the callee itself: "remote:" + input. */
            char out[256];
            int n = snprintf(out, sizeof(out), "remote:%.*s", (int)f->len, f->data);
            T.calls_seen++;
            T.last_call_group = json_integer_value(json_object_get(f->meta, "group"));
            send_frame(SHOAL_FRAME_CALL_RESULT, f->hdr.id, json_pack("{s:b}", "ok", 1), out,
                       (size_t)n);
        } else {
            fail_msg("unexpected frame type %d while waiting for %d", f->hdr.type, type);
        }
        frame_free(f);
    }
}

static void invoke(uint32_t id, json_t *fn, const void *in, size_t len, json_t *meta)
{
    send_frame(SHOAL_FRAME_INVOKE, id,
               json_pack("{s:o,s:s,s:i,s:i,s:o}", "fn", fn, "invocation_id", "inv-1", "timeout_ms",
                         60000, "depth", 0, "meta", meta != NULL ? meta : json_object()),
               in, len);
}

/* Invokes and waits for its RESULT. */
static void call(frame_t *r, json_t *fn, const void *in, size_t len, json_t *meta)
{
    uint32_t id = ++T.next_id;
    invoke(id, fn, in, len, meta);
    expect(SHOAL_FRAME_RESULT, r);
    assert_int_equal(r->hdr.id, id);
}

static const char *kind_of(frame_t *r)
{
    return json_string_value(json_object_get(r->meta, "kind"));
}

static const char *error_of(frame_t *r)
{
    return json_string_value(json_object_get(r->meta, "error"));
}

static int setup(void **state)
{
    const char *build = getenv("SHOAL_BUILD"), *src = getenv("SHOAL_SRC");
    char bin[512], rt[512], path[512], cmd[1024], port[32];
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);
    frame_t f;
    FILE *fp;
    (void)state;

    if (build == NULL)
        build = "build";
    if (src == NULL)
        src = ".";
    snprintf(bin, sizeof(bin), "%s/shoal-worker", build);
    snprintf(rt, sizeof(rt), "%s/shoal-runtime", build);
    if (access(bin, X_OK) != 0 || access(rt, X_OK) != 0)
        return -1;
    snprintf(T.dir, sizeof(T.dir), "/tmp/shoal-test-worker.XXXXXX");
    assert_non_null(mkdtemp(T.dir));
    for (size_t i = 0; i < NFN; i++) {
        if (functions[i][1][0] == '@') {
            snprintf(path, sizeof(path), "%s/tests/worker/%s", src, functions[i][1] + 1);
        } else {
            snprintf(path, sizeof(path), "%s/%s.c", T.dir, functions[i][0]);
            fp = fopen(path, "w");
            fputs(functions[i][1], fp);
            fclose(fp);
        }
        snprintf(cmd, sizeof(cmd), "cc -shared -fPIC -O2 -I%s/include %s -o %s/%s.so 2>/dev/null",
                 src, path, T.dir, functions[i][0]);
        if (system(cmd) != 0) {
            /* "broken" stands for a bad artifact: ship its source text as the .so. */
            T.so[i] = strdup(functions[i][1]);
            T.so_len[i] = strlen(T.so[i]);
        } else {
            snprintf(path, sizeof(path), "%s/%s.so", T.dir, functions[i][0]);
            assert_int_equal(shoal_util_read_file(path, 1 << 26, &T.so[i], &T.so_len[i]), 0);
        }
        shoal_util_sha256_hex(T.so[i], T.so_len[i], T.sha[i]);
    }
    T.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(T.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(T.lfd, 4), 0);
    getsockname(T.lfd, (struct sockaddr *)&a, &alen);
    snprintf(port, sizeof(port), "127.0.0.1:%d", ntohs(a.sin_port));
    snprintf(path, sizeof(path), "%s/home", T.dir);
    T.worker = fork();
    if (T.worker == 0) {
        execl(bin, bin, "--controller", port, "--node", "testnode", "--home", path, "--slots", "64",
              "--stems", "1", "--keep-alive-ms", "60000", (char *)NULL);
        _exit(127);
    }
    T.fd = accept4(T.lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(T.fd >= 0);
    setsockopt(T.fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    expect(SHOAL_FRAME_HELLO, &f);
    assert_string_equal(json_string_value(json_object_get(f.meta, "node")), "testnode");
    assert_int_equal(json_integer_value(json_object_get(f.meta, "slots")), 64);
    assert_int_equal(json_integer_value(json_object_get(f.meta, "protocol")), 2);
    frame_free(&f);
    send_frame(SHOAL_FRAME_WELCOME, 0,
               json_pack("{s:s,s:[o,o]}", "worker_id", "w1", "functions",
                         fn_json("echo", 1, 60000, 4), fn_json("meta", 1, 60000, 4)),
               NULL, 0);
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    int status = -1;
    (void)state;

    if (T.worker > 0) {
        kill(T.worker, SIGTERM);
        waitpid(T.worker, &status, 0);
    }
    if (T.fd >= 0)
        close(T.fd);
    close(T.lfd);
    for (size_t i = 0; i < NFN; i++)
        free(T.so[i]);
    json_decref(T.last_status);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", T.dir);
    if (system(cmd) != 0)
        return -1;
    /* The worker shuts down cleanly (and leak-free under LeakSanitizer). */
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void test_echo(void **state)
{
    frame_t r;
    (void)state;

    call(&r, fn_json("echo", 1, 60000, 4), "hello", 5, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    assert_true(json_is_integer(json_object_get(r.meta, "duration_us")));
    frame_free(&r);
    /* Warm now: the same again, and the status and headers the function sets. */
    call(&r, fn_json("echo", 1, 60000, 4), "status please", 13, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r.meta, "status")), 201);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.meta, "headers"), "x-echo")), "yes");
    assert_memory_equal(r.data, "status please", 13);
    frame_free(&r);
    /* Empty input, empty output. */
    call(&r, fn_json("echo", 1, 60000, 4), NULL, 0, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_int_equal(r.len, 0);
    frame_free(&r);
}

static void test_meta(void **state)
{
    frame_t r;
    (void)state;

    call(&r, fn_json("meta", 1, 60000, 4), NULL, 0,
         json_pack("{s:s,s:s,s:s,s:s}", "method", "POST", "path", "/v1/functions/meta/invoke",
                   "query", "a=1", "header:X-Test", "val"));
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal((char *)r.data, "POST|/v1/functions/meta/invoke|a=1|val|inv-1|meta");
    frame_free(&r);
}

static void test_errors(void **state)
{
    frame_t r;
    (void)state;

    call(&r, fn_json("fail", 1, 60000, 4), "xx", 2, NULL);
    assert_false(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal(kind_of(&r), "function");
    assert_string_equal(error_of(&r), "bad thing 42");
    frame_free(&r);
    call(&r, fn_json("fail", 1, 60000, 4), "x", 1, NULL);
    assert_string_equal(kind_of(&r), "function");
    assert_string_equal(error_of(&r), "function returned 3");
    frame_free(&r);
    call(&r, fn_json("big", 1, 60000, 4), NULL, 0, NULL);
    assert_string_equal(kind_of(&r), "too_large");
    assert_non_null(strstr(error_of(&r), "exceeds the limit"));
    frame_free(&r);
    call(&r, fn_json("broken", 1, 60000, 4), NULL, 0, NULL);
    assert_string_equal(kind_of(&r), "function");
    assert_non_null(strstr(error_of(&r), "cannot load function"));
    frame_free(&r);
}

/* Sends an INVOKE whose binary meta is given as is. */
static void send_raw_invoke(uint32_t id, const uint8_t *meta, size_t len, const char *in)
{
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];
    assert_int_equal(shoal_frame_encode(pre, SHOAL_FRAME_INVOKE, id, len, strlen(in)), 0);
    assert_int_equal(shoal_util_write_all(T.fd, pre, sizeof(pre)), 0);
    assert_int_equal(shoal_util_write_all(T.fd, meta, len), 0);
    assert_int_equal(shoal_util_write_all(T.fd, in, strlen(in)), 0);
}

/* The binary INVOKE meta as the controller sends it (name and version, no function object):
 * served from the worker's own table; a version it lacks is not_found; a malformed meta (a
 * list longer than the meta) is refused without the worker trusting its lengths; and the
 * connection survives all of it. */
static void test_invoke_binary_meta(void **state)
{
    uint8_t kv[128], meta[SHOAL_INVMETA_INVOKE_HEAD_MAX + 128];
    size_t kv_len = 0;
    shoal_invmeta_invoke_t m = {.function = "meta",
                                .function_len = 4,
                                .id = "bin-1",
                                .id_len = 5,
                                .version = 1,
                                .timeout_ms = 60000};
    frame_t r;
    int n;
    (void)state;

    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "method", 6, "GET", 3), 0);
    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "path", 4, "/p", 2), 0);
    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "query", 5, "q", 1), 0);
    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "header:X-Test", 13, "v", 1), 0);
    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "function", 8, "forged", 6), 0);
    m.kv_len = kv_len;
    n = shoal_invmeta_invoke_head(meta, &m);
    assert_true(n > 0);
    memcpy(meta + n, kv, kv_len);
    send_raw_invoke(++T.next_id, meta, (size_t)n + kv_len, "");
    expect(SHOAL_FRAME_RESULT, &r);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    /* The "meta" test function answers method|path|query|header:x-test|invocation_id|function:
     * header names lower-cased, the function and invocation named by the worker, not the list. */
    assert_string_equal((char *)r.data, "GET|/p|q|v|bin-1|meta");
    frame_free(&r);

    m.version = 99;
    m.kv_len = 0;
    n = shoal_invmeta_invoke_head(meta, &m);
    send_raw_invoke(++T.next_id, meta, (size_t)n, "");
    expect(SHOAL_FRAME_RESULT, &r);
    assert_string_equal(kind_of(&r), "not_found");
    assert_non_null(strstr(error_of(&r), "version 99"));
    frame_free(&r);

    m.version = 1;
    m.kv_len = 1000; /* announced, not there */
    n = shoal_invmeta_invoke_head(meta, &m);
    send_raw_invoke(++T.next_id, meta, (size_t)n, "in");
    expect(SHOAL_FRAME_RESULT, &r);
    assert_string_equal(kind_of(&r), "internal");
    assert_non_null(strstr(error_of(&r), "malformed INVOKE"));
    frame_free(&r);

    call(&r, fn_json("echo", 1, 60000, 4), "still up", 8, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_memory_equal(r.data, "still up", 8);
    frame_free(&r);
}

static void test_crash_and_timeout(void **state)
{
    frame_t r;
    int i;
    (void)state;

    for (i = 0; i < 2; i++) {
        call(&r, fn_json("crash", 1, 60000, 4), NULL, 0, NULL);
        assert_string_equal(kind_of(&r), "crash");
        assert_string_equal(error_of(&r), "function crashed: killed by signal 11 (SIGSEGV)");
        frame_free(&r);
    }
    call(&r, fn_json("hang", 1, 300, 4), NULL, 0, NULL);
    assert_string_equal(kind_of(&r), "timeout");
    assert_string_equal(error_of(&r), "function exceeded its timeout of 300 ms");
    frame_free(&r);
    /* The node still serves. */
    call(&r, fn_json("echo", 1, 60000, 4), "after", 5, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    frame_free(&r);
}

static void test_overload(void **state)
{
    frame_t r1, r2;
    uint32_t a = ++T.next_id, b = ++T.next_id;
    (void)state;

    /* max_instances 1: the second concurrent invocation cannot get an instance. */
    invoke(a, fn_json("hang", 2, 500, 1), NULL, 0, NULL);
    invoke(b, fn_json("hang", 2, 500, 1), NULL, 0, NULL);
    expect(SHOAL_FRAME_RESULT, &r1);
    assert_int_equal(r1.hdr.id, b);
    assert_string_equal(kind_of(&r1), "overload");
    expect(SHOAL_FRAME_RESULT, &r2);
    assert_int_equal(r2.hdr.id, a);
    assert_string_equal(kind_of(&r2), "timeout");
    frame_free(&r1);
    frame_free(&r2);
}

static void test_calls(void **state)
{
    frame_t r;
    int before;
    (void)state;

    /* echo is warm: served on the node, no CALL frame. */
    call(&r, fn_json("echo", 1, 60000, 4), "warm", 4, NULL);
    frame_free(&r);
    before = T.calls_seen;
    call(&r, fn_json("chain", 1, 60000, 4), "echo", 4, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal((char *)r.data, "chain:hello");
    assert_int_equal(T.calls_seen, before);
    frame_free(&r);
    /* nothing warm here for "elsewhere": forwarded to the controller. */
    call(&r, fn_json("chain", 1, 60000, 4), "elsewhere", 9, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal((char *)r.data, "chain:remote:hello");
    assert_int_equal(T.calls_seen, before + 1);
    frame_free(&r);
}

static void test_update(void **state)
{
    frame_t r;
    json_t *fn;
    uint32_t id = ++T.next_id;
    (void)state;

    /* echo v2 is other code; after the ack no invocation sees v1. */
    fn = fn_json("echo2", 2, 60000, 4);
    json_object_set_new(fn, "name", json_string("echo"));
    send_frame(SHOAL_FRAME_FUNC, id, json_incref(fn), NULL, 0);
    expect(SHOAL_FRAME_FUNC_ACK, &r);
    assert_int_equal(r.hdr.id, id);
    frame_free(&r);
    call(&r, fn, "x", 1, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal((char *)r.data, "v2:x");
    frame_free(&r);
}

static void test_large(void **state)
{
    size_t len = 32u << 20, i;
    uint8_t *in = malloc(len);
    frame_t r;
    (void)state;

    for (i = 0; i < len; i++)
        in[i] = (uint8_t)(i * 7 + (i >> 13));
    call(&r, fn_json("meta", 1, 60000, 4), NULL, 0, NULL);
    frame_free(&r);
    call(&r, fn_json("echo2", 1, 60000, 4), in, len, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_int_equal(r.len, len + 3);
    assert_memory_equal(r.data + 3, in, len);
    frame_free(&r);
    free(in);
}

static void test_status(void **state)
{
    frame_t f;
    json_t *pools, *p;
    size_t i;
    int tries, settled = 0;
    (void)state;

    /* STATUS comes on change and as a heartbeat; the last invocation's instance settles idle. */
    for (tries = 0; tries < 30 && !settled; tries++) {
        expect(SHOAL_FRAME_STATUS, &f);
        assert_int_equal(json_integer_value(json_object_get(f.meta, "slots")), 64);
        assert_true(json_is_integer(json_object_get(f.meta, "busy")));
        assert_true(json_is_integer(json_object_get(f.meta, "stems")));
        pools = json_object_get(f.meta, "pools");
        assert_true(json_is_array(pools));
        json_array_foreach(pools, i, p)
        {
            if (strcmp(json_string_value(json_object_get(p, "function")), "echo2") == 0 &&
                json_integer_value(json_object_get(p, "version")) == 1 &&
                json_integer_value(json_object_get(p, "warm")) == 1 &&
                json_integer_value(json_object_get(p, "idle")) == 1 &&
                json_integer_value(json_object_get(p, "busy")) == 0)
                settled = 1;
        }
        frame_free(&f);
    }
    assert_true(settled);
}

/* Pids of the worker's children whose command name is comm (NULL: any). */
static int children_named(const char *comm, pid_t *out, int max)
{
    char path[300], buf[512], *p;
    struct dirent *d;
    DIR *proc;
    int n = 0;
    FILE *f;

    assert_non_null(proc = opendir("/proc"));
    while (n < max && (d = readdir(proc)) != NULL) {
        if (d->d_name[0] < '1' || d->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", d->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL) {
            int ppid = 0;
            char *name = strchr(buf, '(');
            *p = 0;
            sscanf(p + 2, "%*c %d", &ppid);
            if (ppid == T.worker && (comm == NULL || strcmp(name + 1, comm) == 0))
                out[n++] = (pid_t)atoi(d->d_name);
        }
        fclose(f);
    }
    closedir(proc);
    return n;
}

static void test_zygote_restart(void **state)
{
    pid_t z[4];
    frame_t r;
    (void)state;

    assert_int_equal(children_named("shoal-runtime", z, 4), 1);
    kill(z[0], SIGKILL);
    usleep(300000);
    assert_int_equal(children_named("shoal-runtime", z, 4), 1); /* a new one */
    /* Fresh instances come from it: a function never run before. */
    call(&r, fn_json("echo", 9, 60000, 4), "again", 5, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_memory_equal(r.data, "again", 5);
    frame_free(&r);
}

static void test_min_warm(void **state)
{
    json_t *fn = fn_json("echo", 1, 60000, 4), *pools, *p;
    frame_t f;
    size_t i;
    int warm = 0, tries;
    (void)state;

    json_object_set_new(fn, "name", json_string("prewarmed"));
    json_object_set_new(fn, "min_warm", json_integer(2));
    send_frame(SHOAL_FRAME_FUNC, 77, fn, NULL, 0);
    expect(SHOAL_FRAME_FUNC_ACK, &f);
    frame_free(&f);
    for (tries = 0; tries < 50 && warm != 2; tries++) {
        expect(SHOAL_FRAME_STATUS, &f);
        pools = json_object_get(f.meta, "pools");
        json_array_foreach(pools, i, p)
        {
            if (strcmp(json_string_value(json_object_get(p, "function")), "prewarmed") == 0)
                warm = (int)json_integer_value(json_object_get(p, "warm"));
        }
        frame_free(&f);
    }
    assert_int_equal(warm, 2);
}

static void test_reconnect(void **state)
{
    struct pollfd p = {0, POLLIN, 0};
    frame_t f;
    (void)state;

    close(T.fd);
    p.fd = T.lfd;
    assert_int_equal(poll(&p, 1, 5000), 1); /* it comes back by itself */
    T.fd = accept4(T.lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(T.fd >= 0);
    setsockopt(T.fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    expect(SHOAL_FRAME_HELLO, &f);
    frame_free(&f);
    send_frame(
        SHOAL_FRAME_WELCOME, 0,
        json_pack("{s:s,s:[o]}", "worker_id", "w2", "functions", fn_json("meta", 1, 60000, 4)),
        NULL, 0);
    call(&f, fn_json("meta", 1, 60000, 4), NULL, 0, NULL);
    assert_true(json_is_true(json_object_get(f.meta, "ok")));
    frame_free(&f);
}

/* ---- groups ---- */

/* The group function under another name. What a rank puts in the arena counts against its own
 * memory limit until the group ends (with cgroups), and the 64 MiB runs put several parts on one
 * rank: 1 GB each. */
static json_t *group_fn(const char *name, int timeout_ms, int max_instances)
{
    json_t *fn = fn_json("group", 1, timeout_ms, max_instances);
    json_object_set_new(fn, "name", json_string(name));
    json_object_set_new(fn, "memory_mb", json_integer(1024));
    return fn;
}

static json_t *group_meta(int n)
{
    json_t *ranks = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(ranks, json_integer(i));
    return json_pack("{s:s,s:i,s:o,s:s}", "id", "00c0ffee", "size", n, "ranks", ranks, "transport",
                     "shm");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs cmd as a group of n (group meta gm, or group_meta(n)) and waits for its RESULT. */
static void run_group(frame_t *r, json_t *fn, json_t *gm, const char *cmd)
{
    uint32_t id = ++T.next_id;

    send_frame(SHOAL_FRAME_INVOKE, id,
               json_pack("{s:o,s:s,s:i,s:i,s:o,s:o}", "fn", fn, "invocation_id", "inv-g",
                         "timeout_ms", 60000, "depth", 0, "meta", json_object(), "group", gm),
               cmd, strlen(cmd));
    expect(SHOAL_FRAME_RESULT, r);
    assert_int_equal(r->hdr.id, id);
}

static void expect_ok(frame_t *r, const char *cmd)
{
    if (!json_is_true(json_object_get(r->meta, "ok")))
        fail_msg("%s: %s: %s", cmd, kind_of(r), error_of(r));
    assert_int_equal(r->len, 2);
    assert_memory_equal(r->data, "ok", 2);
}

static void test_group_collectives(void **state)
{
    static const int sizes[] = {1, 2, 3, 8, 17};
    static const long bases[] = {0, 1, 1001};
    char cmd[128];
    frame_t r;
    (void)state;

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int n = sizes[i];
        for (int root = 0; root < 2; root++) {
            for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
                snprintf(cmd, sizeof(cmd), "coll %d %d %ld 0", n, root ? -1 : 0, bases[b]);
                run_group(&r, group_fn("group", 60000, 64), group_meta(n), cmd);
                expect_ok(&r, cmd);
                frame_free(&r);
            }
            /* One part of 64 MiB + 3 per collective. */
            snprintf(cmd, sizeof(cmd), "coll %d %d 5 1", n, root ? -1 : 0);
            run_group(&r, group_fn("group", 60000, 64), group_meta(n), cmd);
            expect_ok(&r, cmd);
            frame_free(&r);
        }
    }
    /* The checks can fail: a group of 2 told to expect 3 ranks says so. */
    run_group(&r, group_fn("group", 60000, 64), group_meta(2), "coll 3 0 5 0");
    assert_string_equal(kind_of(&r), "function");
    assert_non_null(strstr(error_of(&r), "size 2, expected 3"));
    frame_free(&r);
    /* A group without "ranks" and "transport" is the whole group over shared memory. */
    run_group(&r, group_fn("group", 60000, 64), json_pack("{s:i}", "size", 2), "whoami");
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal((char *)r.data, "size=2");
    /* Rank 0's status and headers. */
    assert_int_equal(json_integer_value(json_object_get(r.meta, "status")), 203);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.meta, "headers"), "x-group-size")),
        "2");
    frame_free(&r);
}

/* A failing rank ends the group with its error, naming it, in bounded time. */
static void expect_group_error(json_t *fn, int n, const char *cmd, const char *kind,
                               const char *error, double max_s)
{
    double t = now_s();
    frame_t r;

    run_group(&r, fn, group_meta(n), cmd);
    t = now_s() - t;
    assert_false(json_is_true(json_object_get(r.meta, "ok")));
    if (strcmp(kind_of(&r), kind) != 0 || strcmp(error_of(&r), error) != 0)
        fail_msg("%s: got %s \"%s\", want %s \"%s\"", cmd, kind_of(&r), error_of(&r), kind, error);
    if (t > max_s)
        fail_msg("%s: took %.2f s", cmd, t);
    frame_free(&r);
}

static void test_group_failures(void **state)
{
    frame_t r;
    (void)state;

    expect_group_error(group_fn("group", 60000, 64), 3, "crash 2", "crash",
                       "rank 2 crashed: killed by signal 11 (SIGSEGV)", 2.5);
    expect_group_error(group_fn("group", 60000, 64), 8, "crash 0", "crash",
                       "rank 0 crashed: killed by signal 11 (SIGSEGV)", 2.5);
    /* The others wait in a barrier for rank 1, which never comes: the deadline names it. */
    expect_group_error(group_fn("gshort", 1000, 64), 3, "sleep 1", "timeout",
                       "rank 1 exceeded the timeout of 1000 ms", 3.5);
    expect_group_error(group_fn("group", 60000, 64), 4, "fail 2", "function",
                       "rank 2 failed: rank 2 says no", 2.5);
    expect_group_error(group_fn("group", 60000, 64), 3, "leave 1", "function",
                       "rank 1 returned from shoal_main while other ranks still waited for it",
                       2.5);
    /* A function that cannot load fails every rank; the first one is answered. */
    run_group(&r, fn_json("broken", 1, 60000, 64), group_meta(3), "trivial");
    assert_string_equal(kind_of(&r), "function");
    assert_non_null(strstr(error_of(&r), "failed: cannot load function"));
    frame_free(&r);
    /* The node still runs groups, on the instances that survived and new ones. */
    run_group(&r, group_fn("group", 60000, 64), group_meta(8), "coll 8 0 33 0");
    expect_ok(&r, "coll after failures");
    frame_free(&r);
}

static void test_group_admission(void **state)
{
    json_t *ranks;
    frame_t r;
    (void)state;

    /* More ranks than slots, or than max_instances: refused whole, nothing started. */
    run_group(&r, group_fn("group", 60000, 64), group_meta(65), "trivial");
    assert_string_equal(kind_of(&r), "overload");
    frame_free(&r);
    run_group(&r, group_fn("gsmall", 60000, 4), group_meta(5), "trivial");
    assert_string_equal(kind_of(&r), "overload");
    assert_non_null(strstr(error_of(&r), "max_instances 4"));
    frame_free(&r);
    run_group(&r, group_fn("gsmall", 60000, 4), group_meta(4), "barrier");
    expect_ok(&r, "gsmall 4");
    frame_free(&r);
    /* Only whole groups, over shared memory. */
    ranks = json_pack("{s:s,s:i,s:[i,i],s:s}", "id", "ab", "size", 3, "ranks", 0, 2, "transport",
                      "shm");
    run_group(&r, group_fn("group", 60000, 64), ranks, "trivial");
    assert_string_equal(kind_of(&r), "internal");
    frame_free(&r);
    run_group(&r, group_fn("group", 60000, 64),
              json_pack("{s:s,s:i,s:s}", "id", "ab", "size", 2, "transport", "redis"), "trivial");
    assert_string_equal(kind_of(&r), "internal");
    assert_non_null(strstr(error_of(&r), "not supported"));
    frame_free(&r);
    run_group(&r, group_fn("group", 60000, 64), json_pack("{s:s,s:i}", "id", "xyz", "size", 2),
              "trivial");
    assert_string_equal(kind_of(&r), "internal");
    frame_free(&r);
}

static void test_group_calls(void **state)
{
    int before = T.calls_seen;
    frame_t r;
    (void)state;

    /* From a plain invocation: the group runs here, no CALL frame. */
    call(&r, group_fn("group", 60000, 64), "call 3 coll 3 -1 77 0", 21, NULL);
    expect_ok(&r, "call 3");
    frame_free(&r);
    assert_int_equal(T.calls_seen, before);
    /* Too big for this node: forwarded with "group". */
    call(&r, group_fn("group", 60000, 64), "call 100 whoami", 15, NULL);
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    assert_string_equal((char *)r.data, "remote:whoami");
    assert_int_equal(T.calls_seen, before + 1);
    assert_int_equal(T.last_call_group, 100);
    frame_free(&r);
    /* A failing group's error reaches the caller. */
    call(&r, group_fn("group", 60000, 64), "call 2 fail 1", 13, NULL);
    assert_string_equal(kind_of(&r), "function");
    assert_non_null(strstr(error_of(&r), "rank 1 failed: rank 1 says no"));
    frame_free(&r);
    call(&r, group_fn("group", 60000, 64), "call 0 whoami", 13, NULL);
    assert_non_null(strstr(error_of(&r), "call_group: -22"));
    frame_free(&r);
}

/* Groups run side by side, each with its own arena: one times out while two others succeed. */
static void test_group_concurrent(void **state)
{
    const char *cmds[3] = {"sleep 2", "coll 8 0 1001 0", "coll 5 -1 0 0"};
    const int sizes[3] = {3, 8, 5};
    uint32_t ids[3];
    int done[3] = {0, 0, 0};
    frame_t r;
    (void)state;

    for (int i = 0; i < 3; i++) {
        ids[i] = ++T.next_id;
        send_frame(SHOAL_FRAME_INVOKE, ids[i],
                   json_pack("{s:o,s:s,s:i,s:i,s:o,s:o}", "fn",
                             group_fn(i == 0 ? "gshort" : "group", i == 0 ? 1000 : 60000, 64),
                             "invocation_id", "inv-c", "timeout_ms", 60000, "depth", 0, "meta",
                             json_object(), "group", group_meta(sizes[i])),
                   cmds[i], strlen(cmds[i]));
    }
    for (int k = 0; k < 3; k++) {
        int i;
        expect(SHOAL_FRAME_RESULT, &r);
        for (i = 0; i < 3 && ids[i] != r.hdr.id; i++)
            ;
        assert_true(i < 3);
        assert_false(done[i]);
        done[i] = 1;
        if (i == 0) {
            assert_string_equal(kind_of(&r), "timeout");
            assert_string_equal(error_of(&r), "rank 2 exceeded the timeout of 1000 ms");
            /* The others finished first. */
            assert_true(done[1] && done[2]);
        } else {
            expect_ok(&r, cmds[i]);
        }
        frame_free(&r);
    }
}

/* fds of pid, and how many of them are group arenas. */
static int count_fds(pid_t pid, int *arenas)
{
    char dir[64], path[400], link[256];
    struct dirent *d;
    ssize_t n;
    DIR *dp;
    int count = 0;

    *arenas = 0;
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    assert_non_null(dp = opendir(dir));
    while ((d = readdir(dp)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        count++;
        snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
        if ((n = readlink(path, link, sizeof(link) - 1)) > 0) {
            link[n] = 0;
            if (strncmp(link, "/memfd:shoal-arena", 18) == 0)
                (*arenas)++;
        }
    }
    closedir(dp);
    return count - 1; /* opendir's own */
}

/* count_fds once the worker is quiet: the same three times in a row, 50 ms apart (a stem whose
 * fork the zygote has not answered yet holds an extra fd in the worker for a moment, longer in
 * sanitized builds). */
static int count_fds_stable(pid_t pid, int *arenas)
{
    int n = count_fds(pid, arenas), prev, same = 0;

    for (int i = 0; i < 60 && same < 2; i++) {
        usleep(50000);
        prev = n;
        n = count_fds(pid, arenas);
        same = n == prev ? same + 1 : 0;
    }
    return n;
}

/* Mappings of group arenas in the worker and its children. */
static int arena_maps(void)
{
    pid_t pids[256];
    char path[64], line[512];
    int n = children_named(NULL, pids, 255), maps = 0;
    FILE *f;

    pids[n++] = T.worker;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pids[i]);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        while (fgets(line, sizeof(line), f) != NULL)
            if (strstr(line, "shoal-arena") != NULL)
                maps++;
        fclose(f);
    }
    return maps;
}

static void test_group_no_leaks(void **state)
{
    int fds_before, fds_after, arenas, arenas_before, maps_before, i;
    double t;
    frame_t r;
    (void)state;

    for (i = 0; i < 6; i++) {
        run_group(&r, group_fn("gleak", 60000, 8), group_meta(2 + i % 2), "barrier");
        expect_ok(&r, "warm-up");
        frame_free(&r);
    }
    /* The worker keeps the last arena of each function warm for its next group
     * (SHOAL_GROUP_SPARES): one memfd per function so far, mapped by the worker alone. */
    fds_before = count_fds_stable(T.worker, &arenas_before);
    assert_in_range(arenas_before, 1, SHOAL_GROUP_SPARES);
    maps_before = arena_maps();
    t = now_s();
    for (i = 0; i < 1000; i++) {
        run_group(&r, group_fn("gleak", 60000, 8), group_meta(2 + i % 2), "barrier");
        if (!json_is_true(json_object_get(r.meta, "ok")))
            fail_msg("group %d: %s", i, error_of(&r));
        frame_free(&r);
    }
    t = now_s() - t;
    fds_after = count_fds_stable(T.worker, &arenas);
    assert_int_equal(arenas, arenas_before);
    assert_int_equal(fds_after, fds_before);
    assert_int_equal(arena_maps(), maps_before);
    print_message("1000 groups of 2-3 ranks (one barrier each): %.1f us per group\n",
                  t * 1e6 / 1000);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void test_group_measure(void **state)
{
    double lat[20], t;
    frame_t r;
    (void)state;

    /* A 64-rank group of a trivial function: the first one starts the instances. */
    t = now_s();
    run_group(&r, group_fn("group", 60000, 64), group_meta(64), "trivial");
    expect_ok(&r, "64 ranks, cold");
    frame_free(&r);
    print_message("64-rank trivial group, cold (64 instances started): %.1f ms\n",
                  (now_s() - t) * 1e3);
    for (int i = 0; i < 20; i++) {
        t = now_s();
        run_group(&r, group_fn("group", 60000, 64), group_meta(64), i % 2 ? "barrier" : "trivial");
        lat[i] = (now_s() - t) * 1e6;
        expect_ok(&r, "64 ranks");
        frame_free(&r);
    }
    qsort(lat, 20, sizeof(double), cmp_double);
    print_message("64-rank group, warm, end to end through the test controller: median %.0f us, "
                  "best %.0f us, worst %.0f us (trivial and one barrier alternately)\n",
                  lat[10], lat[0], lat[19]);
    run_group(&r, group_fn("group", 60000, 64), group_meta(8), "bench 67108864 5");
    assert_true(json_is_true(json_object_get(r.meta, "ok")));
    print_message("bcast of 64 MiB among 8 ranks (best of 5, bcast + barrier) vs one memcpy: %s\n",
                  (char *)r.data);
    frame_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_invoke_binary_meta),
        cmocka_unit_test(test_crash_and_timeout),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_calls),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_zygote_restart),
        cmocka_unit_test(test_min_warm),
        cmocka_unit_test(test_reconnect),
        cmocka_unit_test(test_group_collectives),
        cmocka_unit_test(test_group_failures),
        cmocka_unit_test(test_group_admission),
        cmocka_unit_test(test_group_calls),
        cmocka_unit_test(test_group_concurrent),
        cmocka_unit_test(test_group_no_leaks),
        cmocka_unit_test(test_group_measure),
    };
    signal(SIGPIPE, SIG_IGN);
    T.fd = -1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
