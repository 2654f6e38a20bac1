/*
 * End-to-end: 1000 malformed HTTP requests and uploads over raw TCP sockets - garbage request
 * lines, bad methods and versions, bad names, bad query values, bad JSON where JSON is expected,
 * broken artifacts, truncated bodies (a Content-Length larger than what is sent, then the client
 * closes), bad Content-Length and chunked encoding, huge and many headers, missing and wrong
 * tokens. Each one gets a 4xx answer; the few that h2o cannot parse as HTTP at all may instead be
 * answered by closing the connection (the table below says which: "close ok"), and a truncated
 * body gets no answer (the client is gone). Nothing may hang past 5 s. Afterwards the controller
 * is the same process, its RSS has grown by at most 2 MiB over a warm-up round, and the function
 * deployed before is listed and answers. A second test checks the caps on triggers (count per
 * function, document size, cron and path length).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif

#define TOTAL 1000
#define RSS_SLACK_KIB 2048
#define READ_TIMEOUT_MS 5000

static cluster_t C;
static char auth[256]; /* "Authorization: Bearer <token>\r\n", or "" without a token file */
static char *so_bytes; /* the echo function's shared object, for broken uploads */
static size_t so_len;

/* How a request may end. */
enum {
    CLOSE_OK = 1 << 0,  /* closing the connection without an answer is fine (unparsable) */
    NO_ANSWER = 1 << 1, /* the client closes first (truncated body): only no hang is checked */
};

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void putf(buf_t *b, const char *fmt, ...)
{
    static char tmp[32768];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    put(b, tmp, (size_t)n);
}

/* A request with a body: the usual headers, our token, Connection: close. */
static void request(buf_t *b, const char *method, const char *target, const void *body, size_t len)
{
    putf(b,
         "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%sContent-Length: %zu\r\n\r\n",
         method, target, auth, len);
    put(b, body, len);
}

/* One malformed request; fills b, returns the expected status (0: any 4xx) and *flags. */
typedef int (*gen_fn)(buf_t *b, int i, int *flags);

static int g_garbage_line(buf_t *b, int i, int *flags)
{
    *flags = CLOSE_OK;
    putf(b, "GARBAGE %d\r\n\r\n", i);
    return 400;
}

static int g_binary(buf_t *b, int i, int *flags)
{
    unsigned char junk[64];
    *flags = CLOSE_OK;
    for (size_t k = 0; k < sizeof(junk); k++)
        junk[k] = (unsigned char)(0x16 + 31 * (k + (size_t)i));
    put(b, junk, sizeof(junk));
    put(b, "\r\n\r\n", 4);
    return 0;
}

static int g_bad_version(buf_t *b, int i, int *flags)
{
    *flags = CLOSE_OK;
    putf(b, "GET /v1/functions HTTP/%d.%d\r\nHost: x\r\n%s\r\n", 3 + i % 5, i % 10, auth);
    return 0;
}

static int g_bad_method(buf_t *b, int i, int *flags)
{
    static const char *const m[] = {"BREW", "PATCH", "TRACE", "OPTIONS", "CONNECT"};
    *flags = CLOSE_OK; /* h2o itself refuses CONNECT on HTTP/1 */
    putf(b, "%s /v1/functions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s\r\n", m[i % 5], auth);
    return 0;
}

static int g_wrong_method_on_path(buf_t *b, int i, int *flags)
{
    (void)i;
    *flags = 0;
    request(b, "DELETE", "/v1/functions", "", 0);
    return 405;
}

static int g_bad_name(buf_t *b, int i, int *flags)
{
    static const char *const names[] = {
        "Bad%20Name", "-lead",  "UPPER",
        "x%00y",      "%2e%2e", "a234567890123456789012345678901234567890123456789012345678901234",
        "sp%20ace",   "%ff%fe"};
    char target[256];
    *flags = 0;
    snprintf(target, sizeof(target), "/v1/functions/%s", names[i % 8]);
    request(b, "PUT", target, "int x;\n", 7);
    return i % 8 == 4 ? 404 : 400; /* h2o normalises /v1/functions/.. to /v1/, no such path */
}

static int g_bad_query(buf_t *b, int i, int *flags)
{
    static const char *const q[] = {
        "timeout_ms=abc",    "timeout_ms=0", "memory_mb=99999999", "min_warm=-1",
        "max_instances=1e9", "timeout_ms=",  "nosuch=1",           "timeout_ms=1&timeout_ms=2",
        "memory_mb=%zz",     "retries=11"};
    char target[256];
    *flags = 0;
    snprintf(target, sizeof(target), "/v1/functions/m%d?%s", i % 3, q[i % 10]);
    request(b, "PUT", target, so_bytes, so_len);
    return 400;
}

static int g_bad_invoke_query(buf_t *b, int i, int *flags)
{
    static const char *const q[] = {
        "group=abc", "group=0", "group=100000", "async=maybe", "transport=carrier-pigeon",
        "spread=2"};
    char target[256];
    *flags = 0;
    snprintf(target, sizeof(target), "/v1/functions/echo/invoke?%s", q[i % 6]);
    request(b, "POST", target, "x", 1);
    return 400;
}

static int g_bad_json(buf_t *b, int i, int *flags)
{
    static const char *const docs[] = {
        "{bad}",
        "",
        "[1,2,3]",
        "{\"function\":\"echo\"}",
        "{\"function\":\"echo\",\"type\":\"http\",\"path\":\"no-slash\"}",
        "{\"function\":\"echo\",\"type\":\"timer\",\"every_ms\":-5}",
        "{\"function\":\"echo\",\"type\":\"timer\",\"cron\":\"99 * * * * * *\"}",
        "{\"function\":\"echo\",\"type\":\"warp\"}",
        "{\"function\":17,\"type\":\"http\"}",
        "{\"function\":\"echo\",\"type\":\"topic\",\"topic\":\"\"}",
        "\"just a string\"",
        "{\"function\":\"echo\",\"type\":\"http\",\"path\":\"/h\",\"methods\":\"POST\"}"};
    char target[64];
    const char *d = docs[i % 12];
    *flags = 0;
    snprintf(target, sizeof(target), "/v1/triggers/t%d", i % 7);
    request(b, "PUT", target, d, strlen(d));
    return 400;
}

static int g_bad_artifact(buf_t *b, int i, int *flags)
{
    char target[64];
    *flags = 0;
    snprintf(target, sizeof(target), "/v1/functions/art%d", i % 5);
    switch (i % 5) {
    case 0: { /* binary that is neither ELF nor text */
        unsigned char z[300];
        for (size_t k = 0; k < sizeof(z); k++)
            z[k] = (unsigned char)(k * 7 + (size_t)i);
        z[0] = 0;
        request(b, "PUT", target, z, sizeof(z));
        return 400;
    }
    case 1: /* a truncated ELF */
        request(b, "PUT", target, so_bytes, 200 + (size_t)i % 300);
        return 400;
    case 2: { /* an ELF for another machine */
        char *copy = malloc(so_len);
        assert_non_null(copy);
        memcpy(copy, so_bytes, so_len);
        copy[18] = (char)0xb7; /* e_machine = aarch64 */
        copy[19] = 0;
        request(b, "PUT", target, copy, so_len);
        free(copy);
        return 400;
    }
    case 3: /* empty */
        request(b, "PUT", target, "", 0);
        return 400;
    default: /* C source that does not compile */
        request(b, "PUT", target, "int shoal_main( { syntax\n", 25);
        return 400;
    }
}

static int g_truncated(buf_t *b, int i, int *flags)
{
    char target[64];
    *flags = NO_ANSWER;
    snprintf(target, sizeof(target), i % 2 ? "/v1/functions/trunc" : "/v1/functions/echo/invoke");
    putf(b, "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %d\r\n\r\n", i % 2 ? "PUT" : "POST",
         target, auth, 100000 + i);
    put(b, so_bytes, 1000);
    return 0;
}

static int g_huge_header(buf_t *b, int i, int *flags)
{
    size_t n = (size_t)(1 << 20) + (size_t)i;
    char *v = malloc(n);
    assert_non_null(v);
    memset(v, 'h', n);
    *flags = CLOSE_OK;
    putf(b, "GET /v1/functions HTTP/1.1\r\nHost: x\r\n%sX-Huge: ", auth);
    put(b, v, n);
    put(b, "\r\n\r\n", 4);
    free(v);
    return 400;
}

static int g_many_headers(buf_t *b, int i, int *flags)
{
    *flags = CLOSE_OK;
    putf(b, "GET /v1/functions HTTP/1.1\r\nHost: x\r\n%s", auth);
    for (int k = 0; k < 300; k++)
        putf(b, "X-H%d-%d: v\r\n", k, i);
    put(b, "\r\n", 2);
    return 400;
}

static int g_bad_content_length(buf_t *b, int i, int *flags)
{
    static const char *const cl[] = {"-1", "abc", "1, 2", "99999999999999999999999", "0x10"};
    *flags = CLOSE_OK;
    putf(b,
         "POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
         "Content-Length: %s\r\n\r\nabc",
         auth, cl[i % 5]);
    return 400;
}

static int g_too_large(buf_t *b, int i, int *flags)
{
    *flags = CLOSE_OK;
    putf(b,
         "PUT /v1/functions/big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
         "Content-Length: %llu\r\n\r\nxx",
         auth, (1ull << 40) + (unsigned long long)i);
    return 413;
}

static int g_bad_chunked(buf_t *b, int i, int *flags)
{
    static const char *const bodies[] = {
        "zz\r\nabc\r\n0\r\n\r\n", "ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        "3\r\nabcdef\r\n0\r\n\r\n", "-3\r\nabc\r\n0\r\n\r\n", "\r\n\r\n"};
    *flags = CLOSE_OK;
    putf(b,
         "POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
         "Transfer-Encoding: chunked\r\n\r\n%s",
         auth, bodies[i % 5]);
    return 400;
}

static int g_no_token(buf_t *b, int i, int *flags)
{
    *flags = 0;
    putf(b,
         "POST /v1/functions/echo/invoke HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s"
         "Content-Length: 1\r\n\r\nx",
         i % 2 ? "Authorization: Bearer wrong-token\r\n" : "");
    return auth[0] ? (i % 2 ? 403 : 401) : 0;
}

static int g_unknown(buf_t *b, int i, int *flags)
{
    char target[128];
    *flags = 0;
    snprintf(target, sizeof(target), i % 2 ? "/v1/functions/nosuch%d/invoke" : "/v1/nowhere/%d", i);
    request(b, "POST", target, "x", 1);
    return 404;
}

static int g_long_path(buf_t *b, int i, int *flags)
{
    char *p = malloc(20001);
    assert_non_null(p);
    memcpy(p, "/v1/functions/", 14);
    memset(p + 14, 'a' + i % 26, 20000 - 14);
    p[20000] = '\0';
    *flags = CLOSE_OK;
    request(b, "GET", p, "", 0);
    free(p);
    return 0;
}

static int g_bad_percent(buf_t *b, int i, int *flags)
{
    *flags = 0;
    (void)i;
    request(b, "GET", "/v1/functions/ec%zzho", "", 0);
    return 0;
}

static const struct {
    const char *name;
    gen_fn fn;
} gens[] = {
    {"garbage request line", g_garbage_line},
    {"binary junk", g_binary},
    {"bad HTTP version", g_bad_version},
    {"bad method", g_bad_method},
    {"method not allowed", g_wrong_method_on_path},
    {"bad function name", g_bad_name},
    {"bad deploy query", g_bad_query},
    {"bad invoke query", g_bad_invoke_query},
    {"bad trigger JSON", g_bad_json},
    {"bad artifact", g_bad_artifact},
    {"truncated body", g_truncated},
    {"huge header", g_huge_header},
    {"300 headers", g_many_headers},
    {"bad Content-Length", g_bad_content_length},
    {"body over --max-body", g_too_large},
    {"bad chunked encoding", g_bad_chunked},
    {"missing or wrong token", g_no_token},
    {"unknown function or path", g_unknown},
    {"20 kB path", g_long_path},
    {"bad percent-encoding", g_bad_percent},
};
#define NGENS ((int)(sizeof(gens) / sizeof(gens[0])))

/* Sends b on a fresh connection and reads the answer's status: >0 a status, 0 the server closed
 * without an answer, -1 a hang (nothing within READ_TIMEOUT_MS) or a local error. */
static int exchange(const buf_t *b, int flags)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)C.http_port)};
    char resp[512];
    size_t got = 0;
    int fd, status = 0;

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        return -1;
    }
    /* The server may answer and close before it has read everything (a huge header): a failed
     * send is then expected, and the answer (if any) is still read below. */
    for (size_t off = 0; off < b->len;) {
        ssize_t n = send(fd, b->data + off, b->len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (flags & NO_ANSWER) {
        /* The client gives up mid-body: half-close and check that the server lets go. */
        shutdown(fd, SHUT_WR);
    }
    uint64_t deadline = shoal_util_now_ms() + READ_TIMEOUT_MS;
    for (;;) {
        int left = (int)(deadline - shoal_util_now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) <= 0) {
            status = -1; /* a hang */
            break;
        }
        ssize_t n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0);
        if (n <= 0)
            break; /* closed (or reset) */
        got += (size_t)n;
        resp[got] = '\0';
        if (got >= 12 || got == sizeof(resp) - 1)
            break;
    }
    close(fd);
    if (status < 0)
        return -1;
    if (got >= 12 && memcmp(resp, "HTTP/1.", 7) == 0)
        return atoi(resp + 9);
    return 0;
}

/* Per kind: answers seen (index: status - 400, 100 for a close without an answer). */
static int seen[32][101];

/* Runs request i of the sequence and checks its answer; returns 0 or 1 (a failure, printed). */
static int one(int i)
{
    buf_t b = {0};
    int flags = 0, g = i % NGENS;
    int want = gens[g].fn(&b, i / NGENS, &flags); /* the variant: every one comes round */
    int st = exchange(&b, flags);
    int ok;

    free(b.data);
    if (st == 0)
        seen[g][100]++;
    else if (st >= 400 && st < 500)
        seen[g][st - 400]++;
    if (flags & NO_ANSWER)
        ok = st >= 0 && (st == 0 || (st >= 400 && st < 500));
    else if (st == 0)
        ok = (flags & CLOSE_OK) != 0;
    else
        ok = st > 0 && (want ? st == want : (st >= 400 && st < 500));
    if (!ok)
        fprintf(stderr, "request %d (%s): got %s %d, want %d%s\n", i, gens[g].name,
                st < 0 ? "a hang or error" : "status", st, want,
                flags & CLOSE_OK ? " or a close" : "");
    return !ok;
}

static int controller_alive(void)
{
    return waitpid(C.controller, NULL, WNOHANG) == 0 && kill(C.controller, 0) == 0;
}

static int setup(void **state)
{
    char path[512];
    char *tok;
    size_t n;
    (void)state;

    if (cluster_start(&C, 1, NULL) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/token", C.home);
    auth[0] = '\0';
    if ((tok = read_whole(path, &n)) != NULL) {
        while (n > 0 && (tok[n - 1] == '\n' || tok[n - 1] == '\r'))
            tok[--n] = '\0';
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", tok);
        free(tok);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(so_bytes);
    return cluster_stop(&C);
}

static void test_malformed_requests(void **state)
{
    char so[512], path[64];
    http_resp_t r;
    int bad = 0;
    pid_t pid = C.controller;
    (void)state;

    /* A stored function that must survive everything below. */
    assert_int_equal(build_function(&C, "echo", FN_ECHO, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "echo", so, NULL, NULL), 201);
    assert_non_null(so_bytes = read_whole(so, &so_len));
    assert_true(so_len > 1000);
    assert_int_equal(http_request(&C, "POST", "/v1/functions/echo/invoke", "before", 6, NULL, &r),
                     0);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);

    /* Warm-up: every kind twice, so that allocator pools, SQLite's cache and h2o's buffers have
     * reached their working size before the measurement. */
    for (int i = 0; i < 2 * NGENS; i++)
        bad += one(i);
    assert_int_equal(bad, 0);
    long rss0 = rss_kib(pid);
    assert_true(rss0 > 0);

    uint64_t t0 = shoal_util_now_ms();
    for (int i = 0; i < TOTAL; i++) {
        bad += one(i);
        if (!controller_alive()) {
            fprintf(stderr, "the controller died at request %d (%s)\n", i, gens[i % NGENS].name);
            cluster_dump_logs(&C);
            fail();
        }
    }
    long rss1 = rss_kib(pid);
    fprintf(stderr,
            "%d malformed requests of %d kinds in %llu ms; %d wrong answers; controller RSS "
            "%ld KiB after warm-up, %ld KiB after (%+ld KiB)\n",
            TOTAL, NGENS, (unsigned long long)(shoal_util_now_ms() - t0), bad, rss0, rss1,
            rss1 - rss0);
    for (int g = 0; g < NGENS; g++) {
        fprintf(stderr, "  %-26s", gens[g].name);
        for (int k = 0; k <= 100; k++)
            if (seen[g][k])
                fprintf(stderr, k == 100 ? " closed x%d" : " %d x%d",
                        k == 100 ? seen[g][k] : 400 + k, seen[g][k]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(bad, 0);
    assert_int_equal(C.controller, pid);
    assert_true(controller_alive());
    /* AddressSanitizer keeps freed memory in quarantine (up to 256 MiB) on purpose: its RSS says
     * nothing about leaks, which LeakSanitizer checks at the controller's exit instead. */
    if (!ASAN_BUILD)
        assert_true(rss1 - rss0 <= RSS_SLACK_KIB);

    /* Nothing stored was lost, nothing malformed was stored. */
    assert_int_equal(http_request(&C, "GET", "/v1/functions", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"echo\""));
    assert_null(strstr(r.body, "\"art"));
    assert_null(strstr(r.body, "\"trunc\""));
    assert_null(strstr(r.body, "\"m0\""));
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "GET", "/v1/triggers", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "\"t0\""));
    http_resp_free(&r);
    snprintf(path, sizeof(path), "/v1/functions/echo/invoke");
    assert_int_equal(http_request(&C, "POST", path, "after", 5, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "after");
    http_resp_free(&r);
}

static long put_trigger(const char *name, const char *doc, http_resp_t *r)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/triggers/%s", name);
    if (http_request(&C, "PUT", path, doc, strlen(doc), NULL, r) < 0)
        return -1;
    return r->status;
}

/* The caps on what triggers can make the controller hold: triggers per function (409), a
 * document's size (413), a cron expression's length and an HTTP path's (400); each with a message
 * that says which limit. Replacing a trigger at the cap is still allowed. */
static void test_trigger_caps(void **state)
{
    char doc[512], name[32];
    http_resp_t r;
    (void)state;

    for (int i = 0; i < 64; i++) {
        snprintf(name, sizeof(name), "cap%d", i);
        snprintf(doc, sizeof(doc), "{\"function\":\"echo\",\"type\":\"topic\",\"topic\":\"cap%d\"}",
                 i);
        assert_int_equal(put_trigger(name, doc, &r), 201);
        http_resp_free(&r);
    }
    assert_int_equal(
        put_trigger("cap64", "{\"function\":\"echo\",\"type\":\"topic\",\"topic\":\"x\"}", &r),
        409);
    assert_non_null(strstr(r.body, "maximum of 64 triggers"));
    http_resp_free(&r);
    /* A replacement does not add one. */
    assert_int_equal(
        put_trigger("cap7", "{\"function\":\"echo\",\"type\":\"topic\",\"topic\":\"y\"}", &r), 200);
    http_resp_free(&r);

    char *big = malloc(20000);
    assert_non_null(big);
    int n = snprintf(big, 20000,
                     "{\"function\":\"echo\",\"type\":\"topic\",\"topic\":\"t\",\"pad\":\"");
    memset(big + n, 'p', 19000 - (size_t)n);
    strcpy(big + 19000, "\"}");
    assert_int_equal(put_trigger("big", big, &r), 413);
    assert_non_null(strstr(r.body, "too_large"));
    assert_non_null(strstr(r.body, "at most 16384 bytes"));
    http_resp_free(&r);

    n = snprintf(big, 20000, "{\"function\":\"echo\",\"type\":\"timer\",\"cron\":\"");
    for (int i = 0; i < 200; i++) /* 400 bytes: a valid list, but too long */
        n += snprintf(big + n, 20000 - (size_t)n, "%s", "1,");
    snprintf(big + n, 20000 - (size_t)n, "1 * * * *\"}");
    assert_int_equal(put_trigger("cronlong", big, &r), 400);
    assert_non_null(strstr(r.body, "cron: an expression is at most 256 bytes"));
    http_resp_free(&r);

    n = snprintf(big, 20000, "{\"function\":\"echo\",\"type\":\"http\",\"path\":\"/");
    memset(big + n, 'a', 1100);
    strcpy(big + n + 1100, "\"}");
    assert_int_equal(put_trigger("pathlong", big, &r), 400);
    assert_non_null(strstr(r.body, "at most 1024"));
    http_resp_free(&r);
    free(big);

    assert_int_equal(http_request(&C, "GET", "/v1/triggers", NULL, 0, NULL, &r), 0);
    assert_null(strstr(r.body, "\"cap64\""));
    assert_null(strstr(r.body, "\"big\""));
    assert_non_null(strstr(r.body, "\"cap63\""));
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed_requests),
        cmocka_unit_test(test_trigger_caps),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
