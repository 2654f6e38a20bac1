/* Tests cli/http.c and the commands built on it against a canned HTTP/1.1 server running in a
 * child process: where answers go (memory, fd, a file created only on success), the spill of a
 * large non-Shoal error answer, bounds, uploads from a file descriptor, the unreachable message,
 * error-text extraction, and whole `shoal deploy/invoke/ls/rm` runs with their exit statuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/http.h"

static pid_t server_pid;
static char base[64];
static char tmpdir[64];

/* ---- the canned server (child process) ---- */

static void send_answer(int fd, int status, const char *extra, const void *body, size_t len)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
                     len, extra);
    if (write(fd, head, (size_t)n) != n)
        return;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, (const char *)body + off, len - off);
        if (w <= 0)
            return;
        off += (size_t)w;
    }
}

static void serve_one(int fd)
{
    static char req[1 << 16];
    size_t got = 0, clen = 0, hlen;
    char method[16], path[1024], *end, *cl, *body;
    char out[4096];

    while ((end = memmem(req, got, "\r\n\r\n", 4)) == NULL) {
        ssize_t r = read(fd, req + got, sizeof(req) - got - 1);
        if (r <= 0)
            return;
        got += (size_t)r;
    }
    req[got] = '\0';
    hlen = (size_t)(end + 4 - req);
    if (sscanf(req, "%15s %1023s", method, path) != 2)
        return;
    for (cl = req; cl < end; cl++)
        if (strncasecmp(cl, "\r\ncontent-length:", 17) == 0)
            clen = strtoul(cl + 17, NULL, 10);
    if (strcasestr(req, "expect: 100-continue") != NULL &&
        write(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25) < 0)
        return;
    {
        /* Log "METHOD PATH CONTENT-TYPE" for the tests to check what was sent. */
        char logpath[128], ct[128] = "-";
        const char *c = strcasestr(req, "\r\ncontent-type: ");
        FILE *log;
        if (c != NULL)
            sscanf(c + 16, "%127[^\r]", ct);
        snprintf(logpath, sizeof(logpath), "%s/requests.log", tmpdir);
        if ((log = fopen(logpath, "a")) != NULL) {
            fprintf(log, "%s %s %s\n", method, path, ct);
            fclose(log);
        }
    }
    body = malloc(clen + 1);
    memcpy(body, req + hlen, got - hlen);
    for (size_t have = got - hlen; have < clen;) {
        ssize_t r = read(fd, body + have, clen - have);
        if (r <= 0)
            break;
        have += (size_t)r;
    }

    const char *json = "Content-Type: application/json\r\n";
    const char *inv = "Shoal-Invocation-Id: inv-42\r\n";
    if (strcmp(path, "/ok") == 0) {
        send_answer(fd, 200, inv, "hello", 5);
    } else if (strcmp(path, "/empty") == 0) {
        send_answer(fd, 200, "", "", 0);
    } else if (strcmp(path, "/err") == 0 || strcmp(path, "/v1/functions/boom/invoke") == 0) {
        const char *e = "{\"error\":{\"code\":\"function_error\",\"message\":\"boom\"}}";
        send_answer(fd, 502, inv, e, strlen(e));
    } else if (strcmp(path, "/v1/functions/teapot/invoke") == 0) {
        send_answer(fd, 418, inv, "short and stout", 15); /* a status the function chose */
    } else if (strcmp(path, "/v1/functions/huge/invoke") == 0) {
        send_answer(fd, 413, "", "request entity is too large", 27); /* h2o's own answer */
    } else if (strcmp(path, "/teapot") == 0) {
        send_answer(fd, 418, "", "short and stout", 15);
    } else if (strcmp(path, "/bigerr") == 0 || strcmp(path, "/big") == 0) {
        size_t n = 3u << 20;
        char *b = malloc(n);
        memset(b, 'e', n);
        send_answer(fd, path[4] == 'e' ? 500 : 200, "", b, n);
        free(b);
    } else if (strcmp(path, "/echo") == 0) {
        send_answer(fd, 200, "", body, clen);
    } else if (strncmp(path, "/v1/functions/hello?", 20) == 0 && strcmp(method, "PUT") == 0) {
        int n = snprintf(out, sizeof(out),
                         "{\"name\":\"hello\",\"version\":3,\"sha256\":\"1a2b3c4d5e6f\","
                         "\"size\":%zu}",
                         clen);
        send_answer(fd, 201, json, out, (size_t)n);
    } else if (strncmp(path, "/v1/functions/hello/invoke", 26) == 0) {
        int n = snprintf(out, sizeof(out), "hello, %.*s|%s", (int)clen, body, path + 26);
        send_answer(fd, 200, inv, out, (size_t)n);
    } else if (strcmp(path, "/v1/functions") == 0) {
        const char *l = "{\"functions\":[{\"name\":\"hello\",\"version\":3,\"size\":10}]}";
        send_answer(fd, 200, json, l, strlen(l));
    } else {
        const char *e = "{\"error\":{\"code\":\"not_found\",\"message\":\"no such function\"}}";
        send_answer(fd, 404, json, e, strlen(e));
    }
    free(body);
}

static int setup(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    (void)state;

    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 64) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) < 0)
        return -1;
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", ntohs(sa.sin_port));
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/shoal-cli-test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    if ((server_pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed test */
        for (;;) {
            int c = accept(ls, NULL, NULL);
            if (c < 0)
                continue;
            serve_one(c);
            close(c);
        }
    }
    close(ls);
    return server_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    kill(server_pid, SIGKILL);
    waitpid(server_pid, NULL, 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- helpers ---- */

static int do_req(shoal_cli_http_req_t *req, shoal_cli_http_resp_t *resp, char *err, size_t n)
{
    shoal_cli_http_t *h = shoal_cli_http_create(base);
    int rc;
    assert_non_null(h);
    rc = shoal_cli_http_do(h, req, resp, err, n);
    shoal_cli_http_destroy(h);
    return rc;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *b;
    long n;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* Runs the CLI with argv, its stdout captured into a file; returns the exit status. */
static int run_cli(char **out, int argc, char **argv)
{
    char path[128];
    size_t len;
    int saved = dup(STDOUT_FILENO), fd, rc;

    snprintf(path, sizeof(path), "%s/stdout", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    fflush(stdout);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    rc = shoal_cli_main(argc, argv);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    *out = slurp(path, &len);
    return rc;
}
#define RUN(out, ...)                                                                              \
    run_cli((out), (int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), (char *[]){__VA_ARGS__})

/* ---- tests ---- */

static void test_memory_answer(void **state)
{
    shoal_cli_http_req_t req = {.method = "GET", .path = "/ok", .max_mem = 100};
    shoal_cli_http_resp_t resp;
    char err[256];
    (void)state;

    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.body, "hello");
    assert_int_equal(resp.len, 5);
    assert_string_equal(resp.invocation_id, "inv-42");
    shoal_cli_http_resp_free(&resp);

    /* A 2xx answer larger than max_mem fails rather than growing without bound. */
    req.path = "/big";
    req.max_mem = 1u << 20;
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_FAILED);
    assert_string_equal(err, "answer larger than 1048576 bytes");
    assert_null(resp.body);
}

static void test_file_only_on_success(void **state)
{
    shoal_cli_http_req_t req = {.method = "POST", .path = "/err"};
    shoal_cli_http_resp_t resp;
    char err[256], path[128], line[256];
    struct stat st;
    size_t len;
    char *b;
    (void)state;

    snprintf(path, sizeof(path), "%s/out", tmpdir);
    req.out_path = path;
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(resp.status, 502);
    assert_int_equal(stat(path, &st), -1); /* not created */
    assert_true(shoal_cli_http_is_api_error(resp.body, resp.len));
    assert_string_equal(
        shoal_cli_http_error_text(resp.status, resp.body, resp.len, 1, line, sizeof(line)),
        "502 function_error: boom");
    shoal_cli_http_resp_free(&resp);

    req.path = "/ok";
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(resp.status, 200);
    assert_null(resp.body); /* streamed, not kept */
    assert_int_equal(resp.written, 5);
    assert_non_null(b = slurp(path, &len));
    assert_string_equal(b, "hello");
    free(b);

    /* An empty successful answer still creates (truncates) the file. */
    req.path = "/empty";
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);

    snprintf(path, sizeof(path), "%s/missing-dir/out", tmpdir);
    req.path = "/ok";
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_FAILED);
    assert_non_null(strstr(err, "cannot write"));
    assert_non_null(strstr(err, "No such file or directory"));
}

static void test_error_status_routing(void **state)
{
    shoal_cli_http_req_t req = {.method = "GET", .path = "/teapot"};
    shoal_cli_http_resp_t resp;
    char err[256], path[128], line[256];
    struct stat st;
    int fd;
    (void)state;

    snprintf(path, sizeof(path), "%s/sink", tmpdir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    req.has_out_fd = 1;
    req.out_fd = fd;
    /* A small non-2xx answer stays in memory, away from the sink. */
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(resp.status, 418);
    assert_string_equal(resp.body, "short and stout");
    assert_int_equal(resp.written, 0);
    assert_false(shoal_cli_http_is_api_error(resp.body, resp.len));
    assert_string_equal(
        shoal_cli_http_error_text(resp.status, resp.body, resp.len, 1, line, sizeof(line)),
        "418: short and stout");
    shoal_cli_http_resp_free(&resp);
    /* A large one cannot be Shoal's: it spills into the sink whole. */
    req.path = "/bigerr";
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(resp.status, 500);
    assert_true(resp.spilled);
    assert_null(resp.body);
    assert_int_equal(resp.written, 3u << 20);
    close(fd);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3u << 20);
    /* Without a sink it is refused instead. */
    req.has_out_fd = 0;
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_FAILED);
}

static void test_upload_from_fd(void **state)
{
    shoal_cli_http_req_t req = {.method = "POST", .path = "/echo", .max_mem = 1u << 20};
    shoal_cli_http_resp_t resp;
    char err[256], path[128], data[100000];
    int fd;
    (void)state;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (char)(i * 7);
    snprintf(path, sizeof(path), "%s/in", tmpdir);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    lseek(fd, 0, SEEK_SET);
    req.has_body_fd = 1;
    req.body_fd = fd;
    req.body_size = sizeof(data);
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.len, sizeof(data));
    assert_memory_equal(resp.body, data, sizeof(data));
    shoal_cli_http_resp_free(&resp);
    /* A file shorter than announced fails cleanly. */
    lseek(fd, 0, SEEK_SET);
    req.body_size = sizeof(data) + 10;
    assert_int_equal(do_req(&req, &resp, err, sizeof(err)), SHOAL_CLI_HTTP_FAILED);
    assert_non_null(strstr(err, "cannot read the input"));
    close(fd);
}

static void test_unreachable(void **state)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    shoal_cli_http_req_t req = {.method = "GET", .path = "/healthz", .max_mem = 100};
    shoal_cli_http_resp_t resp;
    shoal_cli_http_t *h;
    char url[64], err[256], want[160], *out;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    (void)state;

    /* A port that was free a moment ago: nothing listens there. */
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
    close(s);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", ntohs(sa.sin_port));
    assert_non_null(h = shoal_cli_http_create(url));
    assert_int_equal(shoal_cli_http_do(h, &req, &resp, err, sizeof(err)),
                     SHOAL_CLI_HTTP_UNREACHABLE);
    shoal_cli_http_destroy(h);
    snprintf(want, sizeof(want), "cannot reach %s: Connection refused (is `shoal up` running?)",
             url);
    assert_string_equal(err, want);
    assert_int_equal(RUN(&out, "shoal", "--url", url, "ls"), SHOAL_CLI_EXIT_FAIL);
    free(out);
}

static void test_error_text(void **state)
{
    char line[512], *full;
    const char *e;
    (void)state;

    e = "{\"error\":{\"code\":\"compile_error\",\"message\":\"fn.c: In function 'shoal_main':\\n"
        "fn.c:1:40: error: 'x' undeclared\\n    1 | int\\n\"}}";
    assert_string_equal(shoal_cli_http_error_text(400, e, strlen(e), 1, line, sizeof(line)),
                        "400 compile_error: fn.c:1:40: error: 'x' undeclared (2 more lines; -v "
                        "shows them)");
    assert_string_equal(shoal_cli_http_error_text(400, e, strlen(e), 0, line, sizeof(line)),
                        "400 compile_error: fn.c:1:40: error: 'x' undeclared");
    assert_non_null(full = shoal_cli_http_error_message(e, strlen(e)));
    assert_non_null(strstr(full, "In function"));
    assert_non_null(strstr(full, "\n    1 | int"));
    free(full);
    e = "{\"error\":{\"code\":\"timeout\",\"message\":\"function exceeded its timeout of 100 "
        "ms\"}}";
    assert_string_equal(shoal_cli_http_error_text(504, e, strlen(e), 1, line, sizeof(line)),
                        "504 timeout: function exceeded its timeout of 100 ms");
    e = "{\"error\":{\"code\":\"bad\\u001b[2J\",\"message\":\"a\\u0007b\"}}";
    assert_string_equal(shoal_cli_http_error_text(400, e, strlen(e), 1, line, sizeof(line)),
                        "400 bad [2J: a b");
    /* Not Shoal's error shape: the status, its reason and the body's text. */
    e = "Request Entity Too Large";
    assert_string_equal(shoal_cli_http_error_text(413, e, strlen(e), 1, line, sizeof(line)),
                        "413 Payload Too Large: Request Entity Too Large");
    e = "{\"error\":\"plain\"}";
    assert_false(shoal_cli_http_is_api_error(e, strlen(e)));
    assert_null(shoal_cli_http_error_message(e, strlen(e)));
    assert_string_equal(shoal_cli_http_error_text(503, NULL, 0, 1, line, sizeof(line)),
                        "503 Service Unavailable");
    assert_string_equal(shoal_cli_http_error_text(599, "", 0, 1, line, sizeof(line)), "599");
}

static void test_commands(void **state)
{
    char path[128], so[128], *out;
    size_t len;
    char *b;
    int fd;
    (void)state;

    snprintf(so, sizeof(so), "%s/fn.so", tmpdir);
    fd = open(so, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "deploy", "hello", so, "--timeout-ms", "100",
                         "--min-warm=2"),
                     0);
    assert_string_equal(out, "deployed hello version 3 (sha256 1a2b3c4d\xe2\x80\xa6, 10 bytes)\n");
    free(out);

    snprintf(path, sizeof(path), "%s/inv.out", tmpdir);
    assert_int_equal(
        RUN(&out, "shoal", "invoke", "--url", base, "hello", "-d", "hi", "-q", "a=1", "-o", path),
        0);
    assert_string_equal(out, "");
    free(out);
    assert_non_null(b = slurp(path, &len));
    assert_string_equal(b, "hello, hi|?a=1");
    free(b);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "hello", "-d", "x"), 0);
    assert_string_equal(out, "hello, x|");
    free(out);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "boom", "-d", "x"), 1);
    assert_string_equal(out, "");
    free(out);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "ls"), 0);
    assert_string_equal(out, "NAME   VERSION  SIZE  TIMEOUT  MEMORY  MIN_WARM  MAX  UPDATED\n"
                             "hello  3        10 B  -        -       -         -    -\n");
    free(out);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "rm", "gone"), 1);
    free(out);
    /* A status the function set: its body is still the output, and the exit status is 1. */
    snprintf(path, sizeof(path), "%s/tea.out", tmpdir);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "teapot"), 1);
    assert_string_equal(out, "short and stout");
    free(out);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "teapot", "-o", path), 1);
    free(out);
    assert_non_null(b = slurp(path, &len));
    assert_string_equal(b, "short and stout");
    free(b);
    /* An answer without an invocation id is the HTTP layer's: no output, no file. */
    snprintf(path, sizeof(path), "%s/huge.out", tmpdir);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "huge", "-o", path), 1);
    assert_string_equal(out, "");
    free(out);
    assert_null(slurp(path, &len));
    /* A bad name goes to the server, which judges it (here: an unknown path, 404). */
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "Bad/Name"), 1);
    free(out);
    /* What went out: limits as query parameters, bytes typed as bytes. */
    snprintf(path, sizeof(path), "%s/requests.log", tmpdir);
    assert_non_null(b = slurp(path, &len));
    assert_non_null(strstr(b, "PUT /v1/functions/hello?timeout_ms=100&min_warm=2 "
                              "application/octet-stream\n"));
    assert_non_null(strstr(b, "POST /v1/functions/hello/invoke?a=1 application/octet-stream\n"));
    assert_non_null(strstr(b, "DELETE /v1/functions/gone -\n"));
    assert_non_null(strstr(b, "POST /v1/functions/Bad%2FName/invoke application/octet-stream\n"));
    free(b);
    /* Usage errors exit 2 without a request. */
    assert_int_equal(RUN(&out, "shoal", "--url", base, "deploy", "hello", so, "--memory-mb", "x"),
                     2);
    free(out);
    assert_int_equal(RUN(&out, "shoal", "--url", base, "invoke", "hello", "-H", "nocolon"), 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_answer),
        cmocka_unit_test(test_file_only_on_success),
        cmocka_unit_test(test_error_status_routing),
        cmocka_unit_test(test_upload_from_fd),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_commands),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, setup, teardown);
}
