/* Tests the real shoal-worker (and shoal-runtime) against a fake controller that speaks the
 * frame protocol with transport/frame.c: HELLO/WELCOME, FETCH/ARTIFACT, FUNC/FUNC_ACK,
 * INVOKE/RESULT (echo, meta, errors, crash, timeout, too large, overload, 32 MiB), shoal_call
 * served locally and forwarded as CALL, logs, STATUS, and a clean SIGTERM exit. */
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
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "transport/frame.h"

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

static void send_frame(uint8_t type, uint32_t id, json_t *meta, const void *data, size_t len)
{
    char *m = json_dumps(meta, JSON_COMPACT);
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];

    json_decref(meta);
    assert_int_equal(shoal_frame_encode(pre, type, id, strlen(m), len), 0);
    assert_int_equal(shoal_util_write_all(T.fd, pre, sizeof(pre)), 0);
    assert_int_equal(shoal_util_write_all(T.fd, m, strlen(m)), 0);
    if (len > 0)
        assert_int_equal(shoal_util_write_all(T.fd, data, len), 0);
    free(m);
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
    f->meta = json_loadb(meta, mlen, 0, NULL);
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
        } else if (f->hdr.type == SHOAL_FRAME_STATUS) {
            T.statuses_seen++;
            json_decref(T.last_status);
            T.last_status = json_incref(f->meta);
        } else if (f->hdr.type == SHOAL_FRAME_CALL) {
            /* The fake controller runs the callee itself: "remote:" + input. */
            char out[256];
            int n = snprintf(out, sizeof(out), "remote:%.*s", (int)f->len, f->data);
            T.calls_seen++;
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
        snprintf(path, sizeof(path), "%s/%s.c", T.dir, functions[i][0]);
        fp = fopen(path, "w");
        fputs(functions[i][1], fp);
        fclose(fp);
        snprintf(cmd, sizeof(cmd), "cc -shared -fPIC -O1 -I%s/include %s -o %s/%s.so 2>/dev/null",
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
        execl(bin, bin, "--controller", port, "--node", "testnode", "--home", path, "--slots", "8",
              "--stems", "1", "--keep-alive-ms", "60000", (char *)NULL);
        _exit(127);
    }
    T.fd = accept4(T.lfd, NULL, NULL, SOCK_CLOEXEC);
    assert_true(T.fd >= 0);
    setsockopt(T.fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
    expect(SHOAL_FRAME_HELLO, &f);
    assert_string_equal(json_string_value(json_object_get(f.meta, "node")), "testnode");
    assert_int_equal(json_integer_value(json_object_get(f.meta, "slots")), 8);
    assert_int_equal(json_integer_value(json_object_get(f.meta, "protocol")), 1);
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
        assert_int_equal(json_integer_value(json_object_get(f.meta, "slots")), 8);
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

/* Pids of the worker's children whose command name is comm. */
static int children_named(const char *comm, pid_t *out, int max)
{
    char path[64], buf[512], *p;
    int n = 0;
    FILE *f;

    for (pid_t pid = 1; pid < 4194304 && n < max; pid++) {
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if ((f = fopen(path, "r")) == NULL) {
            if (pid > 200000)
                break;
            continue;
        }
        if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL) {
            int ppid = 0;
            char *name = strchr(buf, '(');
            *p = 0;
            sscanf(p + 2, "%*c %d", &ppid);
            if (ppid == T.worker && strcmp(name + 1, comm) == 0)
                out[n++] = pid;
        }
        fclose(f);
    }
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),     cmocka_unit_test(test_meta),
        cmocka_unit_test(test_errors),   cmocka_unit_test(test_crash_and_timeout),
        cmocka_unit_test(test_overload), cmocka_unit_test(test_calls),
        cmocka_unit_test(test_update),   cmocka_unit_test(test_large),
        cmocka_unit_test(test_status),   cmocka_unit_test(test_zygote_restart),
        cmocka_unit_test(test_min_warm), cmocka_unit_test(test_reconnect),
    };
    signal(SIGPIPE, SIG_IGN);
    T.fd = -1;
    return cmocka_run_group_tests(tests, setup, teardown);
}
