/*
 * End-to-end tests of authentication (docs/security.md): the API token (401 without, 403 wrong,
 * 200 right; /healthz open; public functions and their routes; the token file's mode, reuse
 * across restarts, --token and SHOAL_TOKEN; never logged, never shown to a function) and the
 * cluster key (a worker without it or with a wrong one is refused; strangers on the worker port
 * may send at most 64 KiB before HELLO and must say HELLO within 5 s).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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
#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"
#include "transport/frame.h"

static cluster_t C;

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* the worker-port tests write to connections the peer closes */
    return cluster_start(&C, 1, NULL);
}

/* Every test starts with the cluster's token (a failed one may have left another setting). */
static int reset_auth(void **state)
{
    (void)state;
    cluster_set_auth(&C, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cluster_set_auth(&C, NULL);
    return cluster_stop(&C);
}

/* Reports each function's metadata that matters here. */
#define FN_WHO                                                                                     \
    FN_HEAD                                                                                        \
    "int shoal_main(shoal_ctx *c) { const char *a = shoal_meta(c, "                                \
    "\"header:authorization\");\n"                                                                 \
    " char out[512]; int n = snprintf(out, sizeof(out), \"auth=%s\", a ? a : \"(none)\");\n"       \
    " return shoal_output(c, out, (size_t)n); }\n"

static void deploy_src(const char *name, const char *src, const char *query, int want)
{
    char so[512];
    assert_int_equal(build_function(&C, name, src, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, name, so, query, NULL), want);
}

/* One request with the current auth setting; returns the status, body copied to body. */
static long req(const char *method, const char *path, const char *in, char *body, size_t size)
{
    http_resp_t r;
    long st;

    assert_int_equal(http_request(&C, method, path, in, in ? strlen(in) : 0, NULL, &r), 0);
    st = r.status;
    if (body != NULL)
        snprintf(body, size, "%s", r.body);
    http_resp_free(&r);
    return st;
}

static int file_has(const char *file, const char *needle)
{
    char path[512];
    size_t len;
    char *s;
    int found;

    snprintf(path, sizeof(path), "%s/%s", C.home, file);
    if ((s = read_whole(path, &len)) == NULL)
        return 0;
    found = strstr(s, needle) != NULL;
    free(s);
    return found;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* 401 without a token (with WWW-Authenticate), 401 for a malformed header, 403 for a wrong one,
 * 200 with the right one; /healthz and /metrics are open; every /v1/ endpoint is covered, the
 * event endpoints included. */
static void test_token_required(void **state)
{
    static const char *const V1[][2] = {
        {"GET", "/v1/functions"},
        {"GET", "/v1/functions/x"},
        {"PUT", "/v1/functions/x"},
        {"DELETE", "/v1/functions/x"},
        {"GET", "/v1/workers"},
        {"POST", "/v1/functions/x/invoke"},
        {"GET", "/v1/invocations"},
        {"GET", "/v1/triggers"},
        {"POST", "/v1/topics/t"},
        {"GET", "/v1/nothing-here"},
        {"GET", "/v1"},
    };
    char body[4096], hdr[400];
    http_resp_t r;
    (void)state;

    cluster_set_auth(&C, "");
    for (size_t i = 0; i < sizeof(V1) / sizeof(V1[0]); i++) {
        assert_int_equal(http_request(&C, V1[i][0], V1[i][1], NULL, 0, NULL, &r), 0);
        if (r.status != 401)
            fprintf(stderr, "%s %s: %ld %s\n", V1[i][0], V1[i][1], r.status, r.body);
        assert_int_equal(r.status, 401);
        assert_non_null(strstr(r.www_authenticate, "Bearer"));
        assert_non_null(strstr(r.body, "\"code\":\"unauthorized\""));
        http_resp_free(&r);
    }
    assert_int_equal(req("GET", "/healthz", NULL, body, sizeof(body)), 200);
    assert_int_equal(req("GET", "/metrics", NULL, NULL, 0), 200);

    const char *malformed[] = {"Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Bearer",
                               "Authorization: Bearer a b",
                               "Authorization: bearer \"quoted-token-value\""};
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
        cluster_set_auth(&C, malformed[i]);
        assert_int_equal(req("GET", "/v1/functions", NULL, body, sizeof(body)), 401);
        assert_non_null(strstr(body, "unauthorized"));
    }
    cluster_set_auth(&C, "Authorization: Bearer wrong-token-0123456789abcdef");
    assert_int_equal(req("GET", "/v1/functions", NULL, body, sizeof(body)), 403);
    assert_non_null(strstr(body, "\"code\":\"forbidden\""));
    /* One character off, and a prefix of the right token. */
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %.*sX", (int)strlen(C.token) - 1, C.token);
    cluster_set_auth(&C, hdr);
    assert_int_equal(req("GET", "/v1/workers", NULL, NULL, 0), 403);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %.20s", C.token);
    cluster_set_auth(&C, hdr);
    assert_int_equal(req("GET", "/v1/workers", NULL, NULL, 0), 403);
    /* The scheme in another case is still the right token. */
    snprintf(hdr, sizeof(hdr), "Authorization: bearer %s", C.token);
    cluster_set_auth(&C, hdr);
    assert_int_equal(req("GET", "/v1/functions", NULL, NULL, 0), 200);
    cluster_set_auth(&C, NULL);
    assert_int_equal(req("GET", "/v1/functions", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"functions\""));
}

/* ?public=1: invoking needs no token (sync and async), everything else still does; the flag
 * shows in the JSON, survives updates that do not mention it, and public=0 takes it back. A
 * function never sees the API token; a public one sees its own callers' credentials. */
static void test_public_functions(void **state)
{
    char body[4096], hdr[400];
    (void)state;

    deploy_src("pub", FN_WHO, "public=1", 201);
    deploy_src("priv", FN_WHO, NULL, 201);
    assert_int_equal(req("GET", "/v1/functions/pub", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"public\":true"));
    assert_int_equal(req("GET", "/v1/functions/priv", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"public\":false"));

    /* With the token: neither function sees it. */
    assert_int_equal(req("POST", "/v1/functions/priv/invoke", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=(none)");
    assert_int_equal(req("POST", "/v1/functions/pub/invoke", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=(none)");
    /* Nor does it see the token beside another credential: in a second Authorization header
     * (they would be joined) or inside a header that is not a plain Bearer token. */
    {
        char tok[sizeof(C.token) + 64];
        const char *two[] = {"Authorization: Basic eDp5", tok, NULL}, *one[] = {tok, NULL};
        http_resp_t r;

        snprintf(tok, sizeof(tok), "Authorization: Bearer %s", C.token);
        assert_int_equal(http_request(&C, "POST", "/v1/functions/pub/invoke", "", 0, two, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "auth=(none)");
        http_resp_free(&r);
        snprintf(tok, sizeof(tok), "Authorization: Bearer %s, Basic eDp5", C.token);
        assert_int_equal(http_request(&C, "POST", "/v1/functions/pub/invoke", "", 0, one, &r), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "auth=(none)");
        http_resp_free(&r);
    }

    cluster_set_auth(&C, "");
    assert_int_equal(req("POST", "/v1/functions/pub/invoke", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=(none)");
    assert_int_equal(req("POST", "/v1/functions/pub/invoke?async=1", "x", NULL, 0), 202);
    assert_int_equal(req("POST", "/v1/functions/priv/invoke", "", NULL, 0), 401);
    assert_int_equal(req("POST", "/v1/functions/ghost/invoke", "", NULL, 0), 401);
    assert_int_equal(req("GET", "/v1/functions/pub", NULL, NULL, 0), 401);
    assert_int_equal(req("GET", "/v1/functions", NULL, NULL, 0), 401);
    assert_int_equal(req("PUT", "/v1/functions/pub?public=1", "x", NULL, 0), 401);
    assert_int_equal(req("DELETE", "/v1/functions/pub", NULL, NULL, 0), 401);
    assert_int_equal(req("GET", "/v1/functions/pub/invoke", NULL, NULL, 0), 401);
    /* A public function's own callers' credentials reach it; a wrong API token is not refused
     * there (the function decides), but the right API token is still hidden from it. */
    cluster_set_auth(&C, "Authorization: Bearer callers-own-credential-42");
    assert_int_equal(req("POST", "/v1/functions/pub/invoke", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=Bearer callers-own-credential-42");
    assert_int_equal(req("POST", "/v1/functions/priv/invoke", "", NULL, 0), 403);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", C.token);
    cluster_set_auth(&C, hdr);
    assert_int_equal(req("POST", "/v1/functions/pub/invoke", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=(none)");

    /* An update that does not mention it keeps it; public=0 takes it back. */
    cluster_set_auth(&C, NULL);
    deploy_src("pub", FN_WHO, "timeout_ms=5000", 200);
    cluster_set_auth(&C, "");
    assert_int_equal(req("POST", "/v1/functions/pub/invoke", "", NULL, 0), 200);
    cluster_set_auth(&C, NULL);
    deploy_src("pub", FN_WHO, "public=0", 200);
    assert_int_equal(req("GET", "/v1/functions/pub", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"public\":false"));
    cluster_set_auth(&C, "");
    assert_int_equal(req("POST", "/v1/functions/pub/invoke", "", NULL, 0), 401);
    cluster_set_auth(&C, NULL);
    assert_int_equal(req("PUT", "/v1/functions/pub?public=maybe", "x", body, sizeof(body)), 400);
    assert_non_null(strstr(body, "public"));
}

/* HTTP trigger routes are as open as their function. */
static void test_routes(void **state)
{
    const char *json = "Content-Type: application/json";
    const char *hdrs[] = {json, NULL};
    http_resp_t r;
    char body[256];
    (void)state;

    deploy_src("rpub", FN_WHO, "public=true", 201);
    deploy_src("rpriv", FN_WHO, NULL, 201);
    const char *t1 = "{\"function\":\"rpub\",\"type\":\"http\",\"path\":\"/hooks/open\"}";
    const char *t2 = "{\"function\":\"rpriv\",\"type\":\"http\",\"path\":\"/hooks/closed\","
                     "\"methods\":[\"POST\"]}";
    assert_int_equal(http_request(&C, "PUT", "/v1/triggers/open", t1, strlen(t1), hdrs, &r), 0);
    assert_int_equal(r.status, 201);
    http_resp_free(&r);
    assert_int_equal(http_request(&C, "PUT", "/v1/triggers/closed", t2, strlen(t2), hdrs, &r), 0);
    assert_int_equal(r.status, 201);
    http_resp_free(&r);

    cluster_set_auth(&C, "");
    assert_int_equal(req("POST", "/hooks/open", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=(none)");
    assert_int_equal(req("POST", "/hooks/closed", "", NULL, 0), 401);
    /* Not even the allowed methods are told without the token. */
    assert_int_equal(req("GET", "/hooks/closed", NULL, NULL, 0), 401);
    assert_int_equal(req("GET", "/hooks/nowhere", NULL, NULL, 0), 404);
    cluster_set_auth(&C, "Authorization: Bearer wrong-token-0123456789abcdef");
    assert_int_equal(req("POST", "/hooks/closed", "", NULL, 0), 403);
    cluster_set_auth(&C, NULL);
    assert_int_equal(req("POST", "/hooks/closed", "", body, sizeof(body)), 200);
    assert_string_equal(body, "auth=(none)");
    assert_int_equal(req("GET", "/hooks/closed", NULL, NULL, 0), 405);
}

/* The token file: 64 hex digits, mode 0600, the same after a restart; the token and the cluster
 * key never appear in any log. */
static void test_token_file(void **state)
{
    char path[512], before[300];
    struct stat st;
    (void)state;

    snprintf(path, sizeof(path), "%s/token", C.home);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(strlen(C.token), 64);
    assert_int_equal(strspn(C.token, "0123456789abcdef"), 64);
    snprintf(path, sizeof(path), "%s/cluster.key", C.home);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    snprintf(before, sizeof(before), "%s", C.token);
    assert_int_equal(cluster_kill_controller(&C, SIGTERM) >= 0, 1);
    assert_int_equal(cluster_start_controller(&C), 0);
    assert_string_equal(C.token, before);
    assert_int_equal(cluster_wait_workers(&C, 1, 10000), 0);
    assert_int_equal(req("GET", "/v1/functions", NULL, NULL, 0), 200);

    size_t klen;
    char *key = read_whole(path, &klen);
    assert_non_null(key);
    key[strcspn(key, "\n")] = '\0';
    /* Requests with the token (right and wrong) have been made: none of it is in a log. */
    assert_false(file_has("controller.log", C.token));
    assert_false(file_has("controller.log", key));
    assert_false(file_has("worker0.log", C.token));
    assert_false(file_has("worker0.log", key));
    assert_true(file_has("controller.log", "API token read from"));
    free(key);
}

/* --token and SHOAL_TOKEN are honoured (the flag first), replace the stored token, and the
 * flag's value is not left in the process's visible arguments. */
static void test_token_given(void **state)
{
    static const char FLAG[] = "flag-token-0123456789ABCDEF";
    static const char ENV[] = "env-token-0123456789abcdef";
    char old[300], path[128], *cmdline;
    size_t len;
    (void)state;

    snprintf(old, sizeof(old), "%s", C.token);
    assert_true(cluster_kill_controller(&C, SIGTERM) >= 0);
    snprintf(C.controller_args, sizeof(C.controller_args), "--token %s", FLAG);
    setenv("SHOAL_TOKEN", ENV, 1);
    assert_int_equal(cluster_start_controller(&C), 0);
    assert_string_equal(C.token, FLAG); /* the harness read the file: the flag's value */
    assert_int_equal(req("GET", "/v1/functions", NULL, NULL, 0), 200);
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)C.controller);
    assert_non_null(cmdline = read_whole(path, &len));
    assert_null(memmem(cmdline, len, FLAG, strlen(FLAG)));
    free(cmdline);
    char hdr[400];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", old);
    cluster_set_auth(&C, hdr);
    assert_int_equal(req("GET", "/v1/functions", NULL, NULL, 0), 403);
    cluster_set_auth(&C, NULL);

    assert_true(cluster_kill_controller(&C, SIGTERM) >= 0);
    C.controller_args[0] = '\0';
    assert_int_equal(cluster_start_controller(&C), 0);
    unsetenv("SHOAL_TOKEN");
    assert_string_equal(C.token, ENV);
    assert_int_equal(req("GET", "/v1/functions", NULL, NULL, 0), 200);

    /* Without either, the stored one (now the environment's) stays. */
    assert_true(cluster_kill_controller(&C, SIGTERM) >= 0);
    assert_int_equal(cluster_start_controller(&C), 0);
    assert_string_equal(C.token, ENV);
    assert_int_equal(cluster_wait_workers(&C, 1, 10000), 0);
    /* A malformed given token stops the start at once with a clear message (exit 2). */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "'%s/shoal-controller' --listen 127.0.0.1:0 --home '%s/other' --token 'a b' 2>&1 | "
             "grep -q -- '--token must be 16..256 characters'",
             C.build, C.home);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             "SHOAL_TOKEN=short '%s/shoal-controller' --listen 127.0.0.1:0 --home '%s/other' "
             ">/dev/null 2>&1",
             C.build, C.home);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 2);
}

/* Workers with a wrong key, or none, are refused and never listed; the refusal is logged without
 * the key. */
static void test_worker_key(void **state)
{
    char path[280], body[8192];
    FILE *f;
    (void)state;

    assert_int_equal(cluster_wait_workers(&C, 1, 10000), 0);
    snprintf(path, sizeof(path), "%s/wrong.key", C.home);
    assert_non_null(f = fopen(path, "w"));
    fputs("wrong-cluster-key-0123456789\n", f);
    fclose(f);
    snprintf(C.worker_key_file, sizeof(C.worker_key_file), "%s", path);
    C.nworkers = 3;
    assert_int_equal(cluster_start_worker(&C, 1), 0);
    snprintf(C.worker_key_file, sizeof(C.worker_key_file), "none");
    assert_int_equal(cluster_start_worker(&C, 2), 0);
    C.worker_key_file[0] = '\0';
    /* Give them time to connect (and be refused) a few times. */
    for (int i = 0; i < 40 && !(file_has("controller.log", "refused: wrong cluster key") &&
                                file_has("controller.log", "refused: no cluster key"));
         i++)
        sleep_ms(100);
    assert_true(file_has("controller.log", "refused: wrong cluster key"));
    assert_true(file_has("controller.log", "refused: no cluster key"));
    assert_false(file_has("controller.log", "wrong-cluster-key-0123456789"));
    /* The refused workers were told why. */
    assert_true(file_has("worker1.log", "wrong cluster key"));
    assert_true(file_has("worker2.log", "no cluster key"));
    assert_int_equal(req("GET", "/v1/workers", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"node0\""));
    assert_null(strstr(body, "\"node1\""));
    assert_null(strstr(body, "\"node2\""));
    assert_int_equal(cluster_kill_worker(&C, 1, SIGKILL) != -1, 1);
    assert_int_equal(cluster_kill_worker(&C, 2, SIGKILL) != -1, 1);
    C.nworkers = 1;
}

static int connect_workers_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)C.worker_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* Waits up to ms for the peer to close; returns the milliseconds it took, or -1. What arrived
 * before the close goes to got (NUL-terminated). */
static long wait_closed(int fd, int ms, char *got, size_t size)
{
    uint64_t start = shoal_util_now_ms();
    size_t have = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = ms - (long)(shoal_util_now_ms() - start);
        char buf[4096];
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        if (got != NULL && have + 1 < size) {
            size_t k = (size_t)n < size - 1 - have ? (size_t)n : size - 1 - have;
            memcpy(got + have, buf, k);
            have += k;
        }
    }
    if (got != NULL) {
        got[have] = '\0';
        /* The ERROR frame's JSON follows a binary prefix: make it searchable. */
        for (size_t i = 0; i < have; i++)
            if (got[i] == '\0')
                got[i] = ' ';
    }
    return (long)(shoal_util_now_ms() - start);
}

/* Before HELLO: a frame over 64 KiB, garbage, a HELLO without the key, and silence all end the
 * connection; silence after 5 s (not much earlier, not much later). */
static void test_pre_hello(void **state)
{
    uint8_t prefix[SHOAL_FRAME_PREFIX_SIZE];
    char got[1024];
    char *big = calloc(1, 100 << 10);
    long ms;
    int fd;
    (void)state;

    /* A well-formed HELLO header announcing 100 KiB: refused from the header alone, before a
     * byte of it is buffered. (Only the prefix is sent, so that the close is orderly and the
     * ERROR frame can be read; the garbage below tests the same with all 100 KiB.) */
    fd = connect_workers_port();
    assert_int_equal(shoal_frame_encode(prefix, SHOAL_FRAME_HELLO, 0, 2, (100 << 10) - 2), 0);
    assert_int_equal(shoal_util_write_all(fd, prefix, sizeof(prefix)), 0);
    assert_true((ms = wait_closed(fd, 3000, got, sizeof(got))) >= 0);
    assert_non_null(strstr(got, "frame too large"));
    close(fd);
    /* The same header and its 100 KiB in one go. */
    fd = connect_workers_port();
    assert_int_equal(shoal_util_write_all(fd, prefix, sizeof(prefix)), 0);
    (void)shoal_util_write_all(fd, big, 100 << 10);
    assert_true(wait_closed(fd, 3000, NULL, 0) >= 0);
    close(fd);

    /* 100 KiB of garbage. */
    fd = connect_workers_port();
    memset(big, 'G', 100 << 10);
    (void)shoal_util_write_all(fd, big, 100 << 10);
    assert_true(wait_closed(fd, 3000, NULL, 0) >= 0);
    close(fd);
    free(big);

    /* A HELLO without the key. */
    const char *meta = "{\"node\":\"intruder\",\"slots\":4,\"pid\":1,\"protocol\":2}";
    fd = connect_workers_port();
    assert_int_equal(shoal_frame_encode(prefix, SHOAL_FRAME_HELLO, 0, strlen(meta), 0), 0);
    assert_int_equal(shoal_util_write_all(fd, prefix, sizeof(prefix)), 0);
    assert_int_equal(shoal_util_write_all(fd, meta, strlen(meta)), 0);
    assert_true(wait_closed(fd, 3000, got, sizeof(got)) >= 0);
    assert_non_null(strstr(got, "no cluster key"));
    close(fd);

    /* Silence: dropped after 5 s. */
    fd = connect_workers_port();
    ms = wait_closed(fd, 9000, NULL, 0);
    close(fd);
    fprintf(stderr, "silent connection closed after %ld ms\n", ms);
    assert_true(ms >= 4500 && ms <= 7000);
    assert_true(file_has("controller.log", "no HELLO within 5000 ms"));

    /* The real worker was never disturbed. */
    char body[4096];
    assert_int_equal(req("GET", "/v1/workers", NULL, body, sizeof(body)), 200);
    assert_non_null(strstr(body, "\"node0\""));
    assert_null(strstr(body, "intruder"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_token_required, reset_auth),
        cmocka_unit_test_setup(test_public_functions, reset_auth),
        cmocka_unit_test_setup(test_routes, reset_auth),
        cmocka_unit_test_setup(test_token_file, reset_auth),
        cmocka_unit_test_setup(test_token_given, reset_auth),
        cmocka_unit_test_setup(test_worker_key, reset_auth),
        cmocka_unit_test_setup(test_pre_hello, reset_auth),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
