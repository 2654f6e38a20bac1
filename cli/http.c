/*
 * http - see http.h.
 *
 * The write callback decides where bytes go when the first one arrives, because only then is
 * the status known: a 2xx answer goes to the request's sink (a file descriptor, a file opened
 * at that moment, or bounded memory); anything else is kept in memory to read Shoal's error from
 * it. An error answer that grows past SHOAL_CLI_HTTP_ERROR_MAX cannot be one of Shoal's, so it is
 * passed on to the sink like a function's output.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/secret.h"
#include "common/util.h"
#include "fmt.h"

#define URL_MAX 4096
#define PROGRESS_WIDTH 30
#define PROGRESS_EVERY_NS 100000000ull

struct shoal_cli_http {
    CURL *curl;
    char auth[SHOAL_SECRET_MAX + 32]; /* "Authorization: Bearer ...", or "" */
    char base[URL_MAX];
    char errbuf[CURL_ERROR_SIZE];
};

/* The state of one transfer, shared by the callbacks. */
typedef struct {
    const shoal_cli_http_req_t *req;
    shoal_cli_http_resp_t *resp;
    CURL *curl;
    /* Body source. */
    size_t mem_off;
    uint64_t fd_left;
    int read_errno;
    /* Answer sink. */
    int routed;     /* the first byte has arrived and the route below is chosen */
    int to_sink;    /* bytes go to the sink rather than memory */
    int sink_fd;    /* -1 until known (out_path opens lazily) */
    int sink_owned; /* sink_fd was opened here */
    int write_errno;
    size_t cap;
    int too_big;
    /* Progress bar. */
    uint64_t last_draw_ns;
    int drawn, finished;
    int shown; /* the status was printed */
} xfer_t;

shoal_cli_http_t *shoal_cli_http_create(const char *base_url)
{
    shoal_cli_http_t *h;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return NULL;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        goto fail;
    snprintf(h->base, sizeof(h->base), "%s", base_url);
    if ((h->curl = curl_easy_init()) == NULL)
        goto fail;
    return h;
fail:
    free(h);
    curl_global_cleanup();
    return NULL;
}

int shoal_cli_http_set_token(shoal_cli_http_t *h, const char *token)
{
    if (token == NULL || token[0] == '\0') {
        h->auth[0] = '\0';
        return 0;
    }
    if (!shoal_secret_valid(token, strlen(token)))
        return -EINVAL;
    snprintf(h->auth, sizeof(h->auth), "Authorization: Bearer %s", token);
    return 0;
}

void shoal_cli_http_destroy(shoal_cli_http_t *h)
{
    if (h == NULL)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
    curl_global_cleanup();
}

void shoal_cli_http_resp_free(shoal_cli_http_resp_t *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

static int open_sink(xfer_t *x)
{
    if (x->sink_fd >= 0)
        return 0;
    if (x->req->has_out_fd) {
        x->sink_fd = x->req->out_fd;
        return 0;
    }
    x->sink_fd = open(x->req->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (x->sink_fd < 0) {
        x->write_errno = errno;
        return -1;
    }
    x->sink_owned = 1;
    return 0;
}

static int sink_write(xfer_t *x, const void *p, size_t len)
{
    int err;

    if (open_sink(x) < 0)
        return -1;
    if ((err = shoal_util_write_all(x->sink_fd, p, len)) < 0) {
        x->write_errno = -err;
        return -1;
    }
    x->resp->written += len;
    return 0;
}

static int mem_append(xfer_t *x, const char *p, size_t len)
{
    shoal_cli_http_resp_t *r = x->resp;

    if (r->len + len + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        char *b;
        while (cap < r->len + len + 1)
            cap *= 2;
        if ((b = realloc(r->body, cap)) == NULL) {
            x->write_errno = ENOMEM;
            return -1;
        }
        r->body = b;
        x->cap = cap;
    }
    memcpy(r->body + r->len, p, len);
    r->len += len;
    r->body[r->len] = '\0';
    return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *opaque)
{
    xfer_t *x = opaque;
    shoal_cli_http_resp_t *r = x->resp;
    size_t len = size * n;
    int has_sink = x->req->has_out_fd || x->req->out_path != NULL;

    if (!x->routed) {
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &r->status);
        x->to_sink = r->status / 100 == 2 && has_sink;
        x->routed = 1;
    }
    if (x->to_sink)
        return sink_write(x, p, len) < 0 ? 0 : len;
    if (r->status / 100 == 2) {
        if (r->len + len > x->req->max_mem) {
            x->too_big = 1;
            return 0;
        }
    } else if (r->len + len > SHOAL_CLI_HTTP_ERROR_MAX) {
        /* Too big for one of Shoal's errors: it is a function's answer with an error status. */
        if (!has_sink) {
            x->too_big = 1;
            return 0;
        }
        if (sink_write(x, r->body, r->len) < 0 || sink_write(x, p, len) < 0)
            return 0;
        shoal_cli_http_resp_free(r);
        r->spilled = 1;
        x->to_sink = 1;
        return len;
    }
    return mem_append(x, p, len) < 0 ? 0 : len;
}

/* Takes the invocation id, and with show_status prints the status once the final answer's
 * headers are complete (interim 1xx answers end with a blank line too). */
static size_t on_header(char *p, size_t size, size_t n, void *opaque)
{
    static const char id_name[] = "shoal-invocation-id:";
    xfer_t *x = opaque;
    size_t len = size * n;

    if (len >= sizeof(id_name) - 1 && strncasecmp(p, id_name, sizeof(id_name) - 1) == 0) {
        const char *v = p + sizeof(id_name) - 1;
        shoal_cli_fmt_line(v, len - (sizeof(id_name) - 1), x->resp->invocation_id,
                           sizeof(x->resp->invocation_id));
    } else if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
        long status = 0;
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && x->req->show_status && !x->shown) {
            x->shown = 1;
            fprintf(stderr, "%ld %s\nShoal-Invocation-Id: %s\n", status,
                    shoal_cli_http_reason(status),
                    x->resp->invocation_id[0] ? x->resp->invocation_id : "(none)");
        }
    }
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *opaque)
{
    xfer_t *x = opaque;
    const shoal_cli_http_req_t *q = x->req;
    size_t want = size * n;

    if (!q->has_body_fd) {
        size_t left = q->body_len - x->mem_off;
        if (want > left)
            want = left;
        if (want == 0)
            return 0;
        memcpy(buf, (const char *)q->body + x->mem_off, want);
        x->mem_off += want;
        return want;
    }
    if (want > x->fd_left)
        want = (size_t)x->fd_left;
    if (want == 0)
        return 0;
    for (;;) {
        ssize_t got = read(q->body_fd, buf, want);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            x->read_errno = errno;
            return CURL_READFUNC_ABORT;
        }
        if (got == 0) {
            /* The file shrank while we sent it: the announced length can no longer be met. */
            x->read_errno = EIO;
            return CURL_READFUNC_ABORT;
        }
        x->fd_left -= (uint64_t)got;
        return (size_t)got;
    }
}

static void draw_progress(xfer_t *x, uint64_t done, uint64_t total, int last)
{
    char line[256];

    shoal_cli_fmt_progress(done, total, PROGRESS_WIDTH, line, sizeof(line));
    /* "\033[K" clears what a longer earlier frame left at the end of the line. */
    fprintf(stderr, "\rupload %s\033[K%s", line, last ? "\n" : "");
    fflush(stderr);
    x->drawn = 1;
}

static int on_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    xfer_t *x = opaque;
    uint64_t now = shoal_util_now_ns();
    (void)dltotal;
    (void)dlnow;

    if (x->finished || ultotal <= 0)
        return 0;
    if (ulnow >= ultotal) {
        draw_progress(x, (uint64_t)ulnow, (uint64_t)ultotal, 1);
        x->finished = 1;
    } else if (now - x->last_draw_ns >= PROGRESS_EVERY_NS) {
        draw_progress(x, (uint64_t)ulnow, (uint64_t)ultotal, 0);
        x->last_draw_ns = now;
    }
    return 0;
}

/* The message for a transfer that failed before an answer arrived. */
static int transport_error(shoal_cli_http_t *h, xfer_t *x, CURLcode rc, char *err, size_t size)
{
    const shoal_cli_http_req_t *q = x->req;
    long oserr = 0;
    char why[CURL_ERROR_SIZE + 64];

    curl_easy_getinfo(h->curl, CURLINFO_OS_ERRNO, &oserr);
    if (rc == CURLE_WRITE_ERROR && x->write_errno != 0) {
        snprintf(err, size, "cannot write %s: %s", q->has_out_fd ? "output" : q->out_path,
                 strerror(x->write_errno));
        return SHOAL_CLI_HTTP_FAILED;
    }
    if (rc == CURLE_WRITE_ERROR && x->too_big) {
        snprintf(err, size, "answer larger than %zu bytes",
                 x->resp->status / 100 == 2 ? q->max_mem : (size_t)SHOAL_CLI_HTTP_ERROR_MAX);
        return SHOAL_CLI_HTTP_FAILED;
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK && x->read_errno != 0) {
        snprintf(err, size, "cannot read the input: %s", strerror(x->read_errno));
        return SHOAL_CLI_HTTP_FAILED;
    }
    {
        const char *text = h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc);
        shoal_cli_fmt_line(text, strlen(text), why, sizeof(why));
    }
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        snprintf(err, size, "cannot reach %s: %s (is `shoal up` running?)", h->base,
                 oserr != 0 ? strerror((int)oserr) : why);
        return SHOAL_CLI_HTTP_UNREACHABLE;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(err, size, "cannot reach %s: %s", h->base, why);
        return SHOAL_CLI_HTTP_UNREACHABLE;
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(err, size, "no answer from %s: %s", h->base, why);
        return SHOAL_CLI_HTTP_FAILED;
    default:
        snprintf(err, size, "request to %s failed: %s", h->base, why);
        return SHOAL_CLI_HTTP_FAILED;
    }
}

int shoal_cli_http_do(shoal_cli_http_t *h, const shoal_cli_http_req_t *req,
                      shoal_cli_http_resp_t *resp, char *err, size_t errsize)
{
    CURL *c = h->curl;
    struct curl_slist *hdrs = NULL;
    char url[URL_MAX * 2];
    xfer_t x = {.req = req, .resp = resp, .curl = c, .sink_fd = -1};
    int has_body = req->body != NULL || req->has_body_fd;
    int rc = SHOAL_CLI_HTTP_OK;
    CURLcode cc;

    memset(resp, 0, sizeof(*resp));
    err[0] = '\0';
    h->errbuf[0] = '\0';
    if ((size_t)snprintf(url, sizeof(url), "%s%s", h->base, req->path) >= sizeof(url)) {
        snprintf(err, errsize, "URL too long");
        return SHOAL_CLI_HTTP_FAILED;
    }
    if (h->auth[0] != '\0' && (hdrs = curl_slist_append(NULL, h->auth)) == NULL) {
        snprintf(err, errsize, "out of memory");
        return SHOAL_CLI_HTTP_FAILED;
    }
    for (const char *const *p = req->headers; p != NULL && *p != NULL; p++) {
        struct curl_slist *n = curl_slist_append(hdrs, *p);
        if (n == NULL) {
            curl_slist_free_all(hdrs);
            snprintf(err, errsize, "out of memory");
            return SHOAL_CLI_HTTP_FAILED;
        }
        hdrs = n;
    }
    x.fd_left = req->body_size;

    /* Reset per request; the connection cache survives a reset, so connections are reused. */
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "shoal-cli/1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    if (req->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    if (hdrs != NULL)
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (has_body || strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
        curl_off_t size = req->has_body_fd ? (curl_off_t)req->body_size : (curl_off_t)req->body_len;

        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &x);
        if (strcmp(req->method, "PUT") == 0) {
            curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, size);
        } else {
            curl_easy_setopt(c, CURLOPT_POST, 1L);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, size);
            if (strcmp(req->method, "POST") != 0)
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
        }
    } else if (strcmp(req->method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    }
    if (req->progress) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    }

    cc = curl_easy_perform(c);
    if (x.drawn && !x.finished)
        fputc('\n', stderr); /* leave the bar's line whatever happened */
    if (cc != CURLE_OK) {
        rc = transport_error(h, &x, cc, err, errsize);
        goto done;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    /* A successful empty answer still creates the output file. */
    if (resp->status / 100 == 2 && req->out_path != NULL && !req->has_out_fd && open_sink(&x) < 0) {
        snprintf(err, errsize, "cannot write %s: %s", req->out_path, strerror(x.write_errno));
        rc = SHOAL_CLI_HTTP_FAILED;
    }
done:
    if (x.sink_owned && close(x.sink_fd) < 0 && rc == SHOAL_CLI_HTTP_OK) {
        snprintf(err, errsize, "cannot write %s: %s", req->out_path, strerror(errno));
        rc = SHOAL_CLI_HTTP_FAILED;
    }
    if (rc != SHOAL_CLI_HTTP_OK)
        shoal_cli_http_resp_free(resp);
    curl_slist_free_all(hdrs);
    return rc;
}

/* The code and message of one of Shoal's JSON errors; *root must be released by the caller. */
static int parse_api_error(const char *body, size_t len, json_t **root, const char **code,
                           const char **message)
{
    json_t *e;

    *root = NULL;
    if (body == NULL || len == 0)
        return -1;
    if ((*root = json_loadb(body, len, 0, NULL)) == NULL)
        return -1;
    e = json_object_get(*root, "error");
    *code = json_string_value(json_object_get(e, "code"));
    *message = json_string_value(json_object_get(e, "message"));
    if (*code == NULL) {
        json_decref(*root);
        *root = NULL;
        return -1;
    }
    if (*message == NULL)
        *message = "";
    return 0;
}

int shoal_cli_http_is_api_error(const char *body, size_t len)
{
    json_t *root;
    const char *code, *message;

    if (parse_api_error(body, len, &root, &code, &message) < 0)
        return 0;
    json_decref(root);
    return 1;
}

char *shoal_cli_http_error_message(const char *body, size_t len)
{
    json_t *root;
    const char *code, *message;
    char *copy;

    if (parse_api_error(body, len, &root, &code, &message) < 0)
        return NULL;
    copy = strdup(message);
    json_decref(root);
    return copy;
}

/* Reduces text to one line: its first line that mentions an error (a compiler's "x.c:3:5:
 * error: ..."), else its first non-blank line, noting how many other lines there were. */
static void summarize(const char *text, size_t len, int hint, char *out, size_t size)
{
    const char *pick = NULL, *first = NULL, *p = text, *end = text + len;
    size_t pick_len = 0, first_len = 0, lines = 0;
    char line[1024];

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
        int blank = 1;

        for (size_t i = 0; i < l; i++)
            if ((unsigned char)p[i] > ' ')
                blank = 0;
        if (!blank) {
            lines++;
            if (first == NULL) {
                first = p;
                first_len = l;
            }
            if (pick == NULL && l < 4096 && memmem(p, l, "error", 5) != NULL) {
                pick = p;
                pick_len = l;
            }
        }
        p += l + 1;
    }
    if (pick == NULL) {
        pick = first;
        pick_len = first_len;
    }
    if (pick == NULL) {
        out[0] = '\0';
        return;
    }
    shoal_cli_fmt_line(pick, pick_len, line, sizeof(line));
    if (lines > 1 && hint)
        snprintf(out, size, "%s (%zu more lines; -v shows them)", line, lines - 1);
    else
        snprintf(out, size, "%s", line);
}

char *shoal_cli_http_error_text(long status, const char *body, size_t len, int hint, char *out,
                                size_t size)
{
    json_t *root;
    const char *code, *message;
    char text[1200], safe_code[64];

    if (parse_api_error(body, len, &root, &code, &message) == 0) {
        shoal_cli_fmt_line(code, strlen(code), safe_code, sizeof(safe_code));
        summarize(message, strlen(message), hint, text, sizeof(text));
        if (text[0] != '\0')
            snprintf(out, size, "%ld %s: %s", status, safe_code, text);
        else
            snprintf(out, size, "%ld %s", status, safe_code);
        json_decref(root);
        return out;
    }
    text[0] = '\0';
    if (body != NULL && len > 0)
        summarize(body, len < 4096 ? len : 4096, hint, text, sizeof(text));
    const char *reason = shoal_cli_http_reason(status);
    snprintf(out, size, "%ld%s%s%s%s", status, reason[0] ? " " : "", reason, text[0] ? ": " : "",
             text);
    return out;
}

const char *shoal_cli_http_reason(long status)
{
    static const struct {
        long status;
        const char *reason;
    } reasons[] = {
        {200, "OK"},
        {201, "Created"},
        {204, "No Content"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {411, "Length Required"},
        {413, "Payload Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {417, "Expectation Failed"},
        {429, "Too Many Requests"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
    };

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "";
}
