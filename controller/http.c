/*
 * http - see http.h.
 *
 * Ownership of asynchronous work:
 *   invoke   pending_t (in the request's pool) <-> shoal_inv_t. The token's dispose callback
 *            cancels the invocation; the invocation's callback clears the token's pointer first
 *            and then answers. Whichever happens first wins, the other finds nothing to do.
 *   deploy,  op_t (heap, owned by this module) lives until the deploy/delete has been published
 *   delete   to the workers; pending_t points at it while the client is still there. The job and
 *            the publish always run to the end, so the function table never misses a commit.
 *
 * Shutdown: the listener closes, h2o is asked to wind down (HTTP/2 GOAWAY), and keep-alive
 * HTTP/1 connections waiting for their next request - which h2o 2.2 leaves open until their idle
 * timeout - are closed by running the context's request-read timeout with a zero duration.
 */
#include "http.h"

#include <errno.h>
#include <h2o.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/trace.h"
#include "common/util.h"
#include "controller/auth.h"
#include "controller/conn.h"
#include "controller/logs.h"
#include "controller/reply.h"
#include "transport/invmeta.h"

/* Bounds on what an invocation sees of its request's headers. */
#define META_HEADERS_MAX 64
#define META_HEADER_BYTES_MAX 8192
/* Bounds on the headers a function may set. */
#define RES_HEADERS_MAX 64
#define RES_HEADER_NAME_MAX 256

struct shoal_http {
    uv_loop_t *loop;
    shoal_http_opts_t o;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    int listener_closed;
    unsigned conns; /* accepted sockets not yet closed */
    int shutdown;
    shoal_json_t out;          /* answer bodies */
    shoal_json_t meta;         /* invoke metas */
    shoal_auth_key_t auth_key; /* o.token's digest, when there is a token */
};

typedef struct {
    h2o_handler_t super;
    shoal_http_t *h;
} handler_t;

typedef struct {
    uv_tcp_t tcp; /* first: h2o's close callback gets the handle */
    shoal_http_t *h;
} hconn_t;

typedef struct op op_t;

typedef struct {
    shoal_http_t *h;
    h2o_req_t *req;
    shoal_inv_t *inv; /* invoke in progress */
    op_t *op;         /* deploy or delete in progress */
    char id[33];
} pending_t;

struct op {
    shoal_http_t *h;
    pending_t *pending; /* NULL once the client is gone */
    shoal_deploy_job_t *job;
    shoal_sched_pub_t *pub;
    int is_delete;
    int retries; /* retries=N of the deploy, or -1 when not given */
    int failed_publish;
    shoal_fn_t fn;
    int created;
};

/* ---- answers ------------------------------------------------------------------------------ */

static void send_json(shoal_http_t *h, h2o_req_t *req, int status)
{
    shoal_reply_json(req, status, &h->out);
}

static void add_id_header(h2o_req_t *req, const char *id)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("shoal-invocation-id"), 0, NULL,
                          h2o_strdup(&req->pool, id, 32).base, 32);
}

/* Answers an error: JSON body, and the headers some codes need. */
static void send_error(shoal_http_t *h, h2o_req_t *req, shoal_api_err_t code, const char *msg,
                       size_t len, const char *inv_id, const char *allow)
{
    shoal_json_reset(&h->out);
    shoal_api_error_json(&h->out, code, msg, len);
    if (inv_id != NULL)
        add_id_header(req, inv_id);
    if (code == SHOAL_API_OVERLOADED)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    if (allow != NULL)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL, allow,
                              strlen(allow));
    send_json(h, req, shoal_api_err_status(code));
}

static void send_errorf(shoal_http_t *h, h2o_req_t *req, shoal_api_err_t code, const char *inv_id,
                        const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_errorf(shoal_http_t *h, h2o_req_t *req, shoal_api_err_t code, const char *inv_id,
                        const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = shoal_util_vfmt(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    send_error(h, req, code, msg, n, inv_id, NULL);
}

/* ---- request tokens ----------------------------------------------------------------------- */

static void pending_dispose(void *p)
{
    pending_t *pd = p;

    pd->req = NULL;
    if (pd->inv != NULL) {
        shoal_sched_cancel(pd->inv);
        pd->inv = NULL;
    }
    if (pd->op != NULL) {
        pd->op->pending = NULL;
        pd->op = NULL;
    }
}

static pending_t *pending_new(shoal_http_t *h, h2o_req_t *req)
{
    pending_t *pd = h2o_mem_alloc_shared(&req->pool, sizeof(*pd), pending_dispose);
    memset(pd, 0, sizeof(*pd));
    pd->h = h;
    pd->req = req;
    return pd;
}

/* ---- small parsing helpers ---------------------------------------------------------------- */

static int method_is(const h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int is_get(const h2o_req_t *req)
{
    return method_is(req, "GET") || method_is(req, "HEAD");
}

static void query_of(const h2o_req_t *req, const char **q, size_t *len)
{
    if (req->query_at == SIZE_MAX) {
        *q = "";
        *len = 0;
    } else {
        *q = req->path.base + req->query_at + 1;
        *len = req->path.len - req->query_at - 1;
    }
}

/* Copies a path segment into name if it is a valid function name. */
static int take_name(const char *s, size_t len, char name[SHOAL_NAME_MAX + 1])
{
    if (len == 0 || len > SHOAL_NAME_MAX)
        return 0;
    memcpy(name, s, len);
    name[len] = '\0';
    return shoal_util_name_valid(name);
}

static int tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* ---- simple GET endpoints ----------------------------------------------------------------- */

static void handle_healthz(shoal_http_t *h, h2o_req_t *req)
{
    shoal_sched_stats_t st;

    shoal_sched_stats(h->o.sched, &st);
    shoal_json_reset(&h->out);
    shoal_json_lit(&h->out, "{\"status\":\"ok\",\"workers\":");
    shoal_json_u64(&h->out, st.workers);
    shoal_json_lit(&h->out, "}");
    send_json(h, req, 200);
}

static void metric(shoal_json_t *j, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    char line[256];
    int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
                     type, name, (unsigned long long)v);
    shoal_json_raw(j, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static void handle_metrics(shoal_http_t *h, h2o_req_t *req)
{
    /* Every outcome an invocation can have, so that each series exists from the start. */
    static const shoal_api_err_t RESULTS[] = {
        SHOAL_API_OK,         SHOAL_API_FUNCTION_ERROR, SHOAL_API_FUNCTION_CRASHED,
        SHOAL_API_TIMEOUT,    SHOAL_API_WORKER_LOST,    SHOAL_API_OVERLOADED,
        SHOAL_API_NO_WORKERS, SHOAL_API_NOT_FOUND,      SHOAL_API_BAD_NAME,
        SHOAL_API_BAD_QUERY,  SHOAL_API_TOO_LARGE,      SHOAL_API_NOT_IMPLEMENTED,
        SHOAL_API_INTERNAL,   SHOAL_API_SHUTTING_DOWN,  SHOAL_API_GROUP_TOO_LARGE,
    };
    shoal_sched_stats_t st;
    shoal_json_t *j = &h->out;
    char line[160];

    shoal_sched_stats(h->o.sched, &st);
    shoal_json_reset(j);
    shoal_json_lit(j, "# HELP shoal_invocations_total Invocations answered, by result.\n"
                      "# TYPE shoal_invocations_total counter\n");
    for (size_t i = 0; i < sizeof(RESULTS) / sizeof(RESULTS[0]); i++) {
        int n =
            snprintf(line, sizeof(line), "shoal_invocations_total{result=\"%s\"} %llu\n",
                     shoal_api_err_code(RESULTS[i]), (unsigned long long)st.results[RESULTS[i]]);
        shoal_json_raw(j, line, (size_t)n);
    }
    metric(j, "shoal_workers", "gauge", "Connected workers.", st.workers);
    metric(j, "shoal_slots", "gauge", "Instance slots of the connected workers.", st.slots);
    metric(j, "shoal_queue_length", "gauge", "Invocations waiting for capacity.", st.queued);
    metric(j, "shoal_inflight", "gauge", "Invocations running on workers.", st.inflight);
    metric(j, "shoal_functions", "gauge", "Deployed functions.", st.functions);
    if (h->o.events != NULL)
        shoal_evhttp_metrics(h->o.events, j);
    metric(j, "shoal_groups_total", "counter", "Group invocations (group=N > 1) accepted.",
           st.groups);
    metric(j, "shoal_group_ranks_busy", "gauge",
           "Instances held by groups running on workers (N per group).", st.group_ranks);
    if (shoal_json_error(j) < 0) {
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("out of memory"), NULL, NULL);
        return;
    }
    shoal_reply_send(req, 200, H2O_STRLIT("text/plain; version=0.0.4"), j->buf, j->len);
}

static void handle_workers(shoal_http_t *h, h2o_req_t *req)
{
    shoal_json_reset(&h->out);
    shoal_sched_workers_json(h->o.sched, &h->out);
    send_json(h, req, 200);
}

static void handle_list(shoal_http_t *h, h2o_req_t *req)
{
    shoal_fnent_t **v;
    size_t n;

    if (shoal_fntable_sorted(shoal_sched_functions(h->o.sched), &v, &n) < 0) {
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("out of memory"), NULL, NULL);
        return;
    }
    shoal_json_reset(&h->out);
    shoal_json_lit(&h->out, "{\"functions\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            shoal_json_lit(&h->out, ",");
        shoal_api_fn_json(&h->out, &v[i]->fn, 1);
    }
    shoal_json_lit(&h->out, "]}");
    free(v);
    send_json(h, req, 200);
}

static void handle_get(shoal_http_t *h, h2o_req_t *req, const char *name)
{
    shoal_fnent_t *e = shoal_fntable_find(shoal_sched_functions(h->o.sched), name, strlen(name));

    if (e == NULL || e->deleted) {
        send_errorf(h, req, SHOAL_API_NOT_FOUND, NULL, "function '%s' not found", name);
        return;
    }
    shoal_json_reset(&h->out);
    shoal_api_fn_json(&h->out, &e->fn, 1);
    send_json(h, req, 200);
}

typedef struct {
    shoal_json_t *j;
    size_t n;
    uint64_t last;
} logs_out_t;

static int log_line_json(void *opaque, const shoal_log_line_t *l)
{
    logs_out_t *o = opaque;
    char when[32];

    shoal_api_rfc3339(l->ts_ms, when);
    if (o->n++ > 0)
        shoal_json_lit(o->j, ",");
    shoal_json_lit(o->j, "{\"seq\":");
    shoal_json_u64(o->j, l->seq);
    shoal_json_lit(o->j, ",\"time\":");
    shoal_json_cstr(o->j, when);
    shoal_json_lit(o->j, ",\"node\":");
    shoal_json_cstr(o->j, l->node);
    shoal_json_lit(o->j, ",\"invocation_id\":");
    shoal_json_cstr(o->j, l->invocation_id);
    if (l->rank >= 0) {
        shoal_json_lit(o->j, ",\"rank\":");
        shoal_json_i64(o->j, l->rank);
    }
    shoal_json_lit(o->j, ",\"text\":");
    shoal_json_str(o->j, l->text, l->text_len);
    shoal_json_lit(o->j, "}");
    o->last = l->seq;
    return 0;
}

/* GET /v1/functions/{name}/logs: the function's recent log lines (logs.h), oldest first, and
 * "next", the sequence number to pass as ?since= to get only newer ones. */
static void handle_logs(shoal_http_t *h, h2o_req_t *req, const char *seg, size_t seglen)
{
    char name[SHOAL_NAME_MAX + 1], err[160];
    shoal_api_logs_params_t params;
    shoal_fnent_t *e;
    const char *q;
    size_t qlen;
    logs_out_t o = {.j = &h->out};

    if (!take_name(seg, seglen, name)) {
        send_error(h, req, SHOAL_API_BAD_NAME,
                   H2O_STRLIT("function names are 1 to 63 characters: [a-z0-9][a-z0-9_-]*"), NULL,
                   NULL);
        return;
    }
    query_of(req, &q, &qlen);
    if (shoal_api_parse_logs_query(q, qlen, &params, err, sizeof(err)) < 0) {
        send_error(h, req, SHOAL_API_BAD_QUERY, err, strlen(err), NULL, NULL);
        return;
    }
    e = shoal_fntable_find(shoal_sched_functions(h->o.sched), name, strlen(name));
    if (e == NULL || e->deleted) {
        send_errorf(h, req, SHOAL_API_NOT_FOUND, NULL, "function '%s' not found", name);
        return;
    }
    o.last = params.since;
    shoal_json_reset(&h->out);
    shoal_json_lit(&h->out, "{\"function\":");
    shoal_json_cstr(&h->out, name);
    shoal_json_lit(&h->out, ",\"lines\":[");
    if (e->logs != NULL)
        shoal_logs_each(e->logs, params.since,
                        params.invocation_id[0] ? params.invocation_id : NULL, params.tail,
                        log_line_json, &o);
    shoal_json_lit(&h->out, "],\"next\":");
    shoal_json_u64(&h->out, o.last);
    shoal_json_lit(&h->out, ",\"dropped\":");
    shoal_json_u64(&h->out, e->logs != NULL ? shoal_logs_dropped(e->logs) : 0);
    shoal_json_lit(&h->out, "}");
    send_json(h, req, 200);
}

/* ---- deploy and delete -------------------------------------------------------------------- */

/* Answers a finished deploy or delete (if its client is still there) and frees it. */
static void op_finish(op_t *op, const shoal_deploy_result_t *err)
{
    shoal_http_t *h = op->h;
    pending_t *pd = op->pending;

    if (pd != NULL && pd->req != NULL) {
        h2o_req_t *req = pd->req;
        pd->op = NULL;
        if (err != NULL && err->code != SHOAL_API_OK) {
            const char *msg = err->message ? err->message : "failed";
            send_error(h, req, err->code, msg, strlen(msg), NULL, NULL);
        } else if (op->failed_publish) {
            send_errorf(h, req, SHOAL_API_INTERNAL, NULL,
                        "stored as version %llu but could not be activated (out of memory)",
                        (unsigned long long)op->fn.version);
        } else {
            shoal_json_reset(&h->out);
            shoal_api_fn_json(&h->out, &op->fn, 1);
            if (op->is_delete && h->out.len > 0) {
                h->out.len--; /* reopen the object */
                shoal_json_lit(&h->out, ",\"deleted\":true}");
            }
            send_json(h, req, op->is_delete ? 200 : op->created ? 201 : 200);
        }
    }
    free(op);
}

static void on_published(void *opaque)
{
    op_t *op = opaque;
    op->pub = NULL;
    op_finish(op, NULL);
}

static void on_deploy_done(void *opaque, const shoal_deploy_result_t *res)
{
    op_t *op = opaque;
    int r;

    op->job = NULL;
    if (res->code != SHOAL_API_OK) {
        op_finish(op, res);
        return;
    }
    op->fn = res->fn;
    op->created = res->created;
    if (op->h->o.events != NULL && (op->is_delete || op->retries >= 0))
        shoal_evhttp_deployed(op->h->o.events, res->fn.name, op->is_delete ? -1 : op->retries);
    if (op->is_delete)
        SHOAL_INFO("deleted %s (last version %llu)", res->fn.name,
                   (unsigned long long)res->fn.version);
    else
        SHOAL_INFO("deployed %s version %llu (%llu bytes, sha256 %.12s)", res->fn.name,
                   (unsigned long long)res->fn.version, (unsigned long long)res->fn.size,
                   res->fn.sha256);
    /* Answer only once every worker knows: no invocation starting after the answer can meet
     * the old code. */
    r = shoal_sched_publish(op->h->o.sched, &op->fn, op->is_delete, on_published, op, &op->pub);
    if (r == 0)
        return;
    if (r < 0) {
        SHOAL_ERROR("cannot publish %s version %llu: %s", op->fn.name,
                    (unsigned long long)op->fn.version, strerror(-r));
        op->failed_publish = 1;
    }
    op_finish(op, NULL);
}

static void start_op(shoal_http_t *h, h2o_req_t *req, const char *name, int is_delete)
{
    shoal_fn_limits_t limits;
    op_t *op;
    void *body = NULL;
    char err[256];
    int e;

    if (!is_delete) {
        const char *q;
        size_t qlen;
        query_of(req, &q, &qlen);
        if (shoal_api_parse_deploy_query(q, qlen, &limits, err, sizeof(err)) < 0) {
            send_error(h, req, SHOAL_API_BAD_QUERY, err, strlen(err), NULL, NULL);
            return;
        }
        if (req->entity.base == NULL || req->entity.len == 0) {
            send_error(h, req, SHOAL_API_EMPTY_ARTIFACT, H2O_STRLIT("the artifact is empty"), NULL,
                       NULL);
            return;
        }
        /* The deploy outlives the request: it gets its own copy. */
        if ((body = malloc(req->entity.len)) == NULL) {
            send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("out of memory"), NULL, NULL);
            return;
        }
        memcpy(body, req->entity.base, req->entity.len);
    }
    if ((op = calloc(1, sizeof(*op))) == NULL) {
        free(body);
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("out of memory"), NULL, NULL);
        return;
    }
    op->h = h;
    op->is_delete = is_delete;
    op->retries = !is_delete && (limits.set & SHOAL_LIMIT_RETRIES) ? (int)limits.retries : -1;
    if (is_delete)
        e = shoal_deploy_delete(h->o.deploy, name, on_deploy_done, op, &op->job);
    else
        e = shoal_deploy_put(h->o.deploy, name, body, req->entity.len, &limits, on_deploy_done, op,
                             &op->job);
    if (e < 0) {
        free(body);
        free(op);
        if (e == -EAGAIN)
            send_error(h, req, SHOAL_API_OVERLOADED, H2O_STRLIT("too many deploys in progress"),
                       NULL, NULL);
        else if (e == -ESHUTDOWN)
            send_error(h, req, SHOAL_API_SHUTTING_DOWN,
                       H2O_STRLIT("the controller is shutting down"), NULL, NULL);
        else
            send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("cannot start the deploy"), NULL,
                       NULL);
        return;
    }
    pending_t *pd = pending_new(h, req);
    pd->op = op;
    op->pending = pd;
}

/* ---- invoke ------------------------------------------------------------------------------- */

static int same_name(const h2o_header_t *a, const h2o_header_t *b)
{
    return a->name->len == b->name->len &&
           h2o_lcstris(a->name->base, a->name->len, b->name->base, b->name->len);
}

/* ---- authentication ----------------------------------------------------------------------- */

static shoal_auth_result_t check_token(shoal_http_t *h, h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);

    if (h->o.token == NULL)
        return SHOAL_AUTH_OK;
    if (i < 0)
        return shoal_auth_check_key(&h->auth_key, NULL, 0);
    return shoal_auth_check_key(&h->auth_key, req->headers.entries[i].value.base,
                                req->headers.entries[i].value.len);
}

/* Whether req may go on; if not, it has been answered 401 or 403. */
static int authorized(shoal_http_t *h, h2o_req_t *req)
{
    shoal_auth_result_t r = check_token(h, req);
    const char *msg = shoal_auth_message(r);

    if (r == SHOAL_AUTH_OK)
        return 1;
    if (r == SHOAL_AUTH_WRONG) {
        send_error(h, req, SHOAL_API_FORBIDDEN, msg, strlen(msg), NULL, NULL);
        return 0;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                   H2O_STRLIT("Bearer realm=\"shoal\""));
    send_error(h, req, SHOAL_API_UNAUTHORIZED, msg, strlen(msg), NULL, NULL);
    return 0;
}

/* Whether the function a request reaches is public: then it needs no token. */
static int fn_public(shoal_http_t *h, const char *name, size_t len)
{
    shoal_fnent_t *e = shoal_fntable_find(shoal_sched_functions(h->o.sched), name, len);
    return e != NULL && !e->deleted && e->fn.is_public;
}

/* Whether value holds the token anywhere (in a malformed header, a list, another scheme). Every
 * window is compared in constant time, so the time depends on the lengths only; a value longer
 * than AUTH_SHOWN_MAX counts as holding it (it is not shown). */
#define AUTH_SHOWN_MAX 4096
static int holds_token(const char *token, const char *value, size_t len)
{
    size_t tl = strlen(token);
    int found = len > AUTH_SHOWN_MAX;

    for (size_t i = 0; len <= AUTH_SHOWN_MAX && i + tl <= len; i++)
        found |= CRYPTO_memcmp(value + i, token, tl) == 0;
    return found;
}

/* Whether the function may see the request's Authorization header: only a public function
 * (which may check its own callers' credentials), only one such header (a later one would be
 * joined into what the function sees), and never one that holds the API token in any form. */
static int show_auth(shoal_http_t *h, h2o_req_t *req, const shoal_fnent_t *fn)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);

    if (h->o.token == NULL)
        return 1;
    if (!fn->fn.is_public || i < 0)
        return 0;
    if (h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, i) >= 0)
        return 0;
    return !holds_token(h->o.token, req->headers.entries[i].value.base,
                        req->headers.entries[i].value.len);
}

/* Where render_meta writes: a JSON object (how async invocations are stored, events.h) or, for
 * a synchronous one, the binary key/value list INVOKE carries (sched.h meta_kv), which costs the
 * controller no JSON and the worker no parser. */
typedef struct {
    shoal_json_t *j;
    int kv;
    unsigned n;
} meta_out_t;

static void meta_put(meta_out_t *o, const char *k, size_t klen, const char *v, size_t vlen)
{
    if (o->kv) {
        shoal_sched_meta_put(o->j, k, klen, v, vlen);
        return;
    }
    if (o->n++ > 0)
        shoal_json_lit(o->j, ",");
    else
        shoal_json_lit(o->j, "{");
    shoal_json_str(o->j, k, klen);
    shoal_json_lit(o->j, ":");
    shoal_json_str(o->j, v, vlen);
}

static void meta_end(meta_out_t *o)
{
    if (!o->kv) {
        if (o->n > 0)
            shoal_json_lit(o->j, "}");
        else
            shoal_json_lit(o->j, "{}");
    }
}

/* Renders the invocation's meta: method, path, query, header:<name> (lower-case; repeated
 * headers joined with ", "; at most META_HEADERS_MAX names and META_HEADER_BYTES_MAX bytes),
 * and in JSON invocation_id and function (the worker adds those two itself). The Authorization
 * header is left out unless with_auth. meta_end closes it. */
static void render_meta(meta_out_t *o, h2o_req_t *req, const char *id, const char *name,
                        int with_auth)
{
    const char *q;
    size_t qlen, plen, bytes = 0;
    unsigned emitted = 0;

    query_of(req, &q, &qlen);
    plen = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;
    meta_put(o, "method", 6, req->method.base, req->method.len);
    meta_put(o, "path", 4, req->input.path.base, plen);
    meta_put(o, "query", 5, q, qlen);
    for (size_t i = 0; i < req->headers.size && emitted < META_HEADERS_MAX; i++) {
        const h2o_header_t *hd = &req->headers.entries[i];
        size_t k, need = hd->name->len + hd->value.len;
        char lname[7 + 256];
        for (k = 0; k < i; k++)
            if (same_name(&req->headers.entries[k], hd))
                break;
        if (k < i)
            continue; /* merged into the first occurrence */
        if (hd->name->len > 256 || bytes + need > META_HEADER_BYTES_MAX)
            continue;
        if (!with_auth && h2o_lcstris(hd->name->base, hd->name->len, H2O_STRLIT("authorization")))
            continue;
        memcpy(lname, "header:", 7);
        for (k = 0; k < hd->name->len; k++)
            lname[7 + k] = h2o_tolower(hd->name->base[k]);
        /* Join later repetitions into one value, within the byte budget. */
        size_t vcount = 0;
        for (k = i; k < req->headers.size; k++)
            if (k == i || same_name(&req->headers.entries[k], hd))
                vcount++;
        if (vcount == 1) {
            meta_put(o, lname, 7 + hd->name->len, hd->value.base, hd->value.len);
            bytes += need;
        } else {
            char joined[META_HEADER_BYTES_MAX];
            size_t jl = 0;
            for (k = i; k < req->headers.size; k++) {
                const h2o_header_t *o = &req->headers.entries[k];
                if (k != i && !same_name(o, hd))
                    continue;
                size_t add = o->value.len + (jl ? 2 : 0);
                if (bytes + hd->name->len + jl + add > META_HEADER_BYTES_MAX)
                    break;
                if (jl) {
                    joined[jl++] = ',';
                    joined[jl++] = ' ';
                }
                memcpy(joined + jl, o->value.base, o->value.len);
                jl += o->value.len;
            }
            meta_put(o, lname, 7 + hd->name->len, joined, jl);
            bytes += hd->name->len + jl;
        }
        emitted++;
    }
    if (!o->kv) {
        meta_put(o, "invocation_id", 13, id, 32);
        meta_put(o, "function", 8, name, strlen(name));
    }
}

/* Whether a function may set this response header (lower-case name). */
static int header_allowed(const char *n, size_t len)
{
    static const char *RESERVED[] = {"content-length",
                                     "transfer-encoding",
                                     "connection",
                                     "keep-alive",
                                     "upgrade",
                                     "te",
                                     "trailer",
                                     "proxy-connection",
                                     "date",
                                     "server",
                                     "shoal-invocation-id",
                                     "http2-settings"};
    if (len == 0 || len > RES_HEADER_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!tchar((unsigned char)n[i]))
            return 0;
    for (size_t i = 0; i < sizeof(RESERVED) / sizeof(RESERVED[0]); i++)
        if (strlen(RESERVED[i]) == len && memcmp(RESERVED[i], n, len) == 0)
            return 0;
    return 1;
}

static void send_output(h2o_req_t *req, const char *id, const shoal_inv_result_t *res)
{
    int has_ctype = 0, count = 0;
    size_t len = res->len;

    add_id_header(req, id);
    if (res->headers_len > 0) {
        shoal_invmeta_kv_t kv;
        size_t off = 0;
        /* The list decoded whole (sched.c); names and values are the function's and are filtered
         * here as they always were. */
        while (count < RES_HEADERS_MAX &&
               shoal_invmeta_kv_next(res->headers, res->headers_len, &off, &kv) == 1) {
            const char *key = kv.key, *v = kv.val;
            size_t klen = kv.key_len, vlen = kv.val_len;
            char *name;
            name = h2o_mem_alloc_pool(&req->pool, klen + 1);
            for (size_t i = 0; i < klen; i++)
                name[i] = h2o_tolower(key[i]);
            name[klen] = '\0';
            if (!header_allowed(name, klen) || !shoal_reply_value_allowed(v, vlen))
                continue;
            if (klen == 12 && memcmp(name, "content-type", 12) == 0)
                has_ctype = 1;
            h2o_add_header_by_str(&req->pool, &req->res.headers, name, klen, 1, NULL,
                                  h2o_strdup(&req->pool, v, vlen).base, vlen);
            count++;
        }
    }
    /* These statuses have no body by definition. */
    if (res->status == 204 || res->status == 304 || (res->status >= 100 && res->status < 200))
        len = 0;
    shoal_reply_send(req, res->status, has_ctype ? NULL : "application/octet-stream",
                     has_ctype ? 0 : strlen("application/octet-stream"), (const char *)res->data,
                     len);
}

static void on_inv_done(void *opaque, const shoal_inv_result_t *res)
{
    pending_t *pd = opaque;
    h2o_req_t *req = pd->req;
    shoal_http_t *h = pd->h;
    char id[33];

    pd->inv = NULL;
    if (req == NULL)
        return;
    memcpy(id, pd->id, sizeof(id));
    /* From here on pd may be freed (h2o can dispose the request inside the send). */
    if (res->code == SHOAL_API_OK)
        send_output(req, id, res);
    else
        send_error(h, req, res->code, res->message ? res->message : "", res->message_len, id, NULL);
}

/* Runs fn on req's body, with h->meta as its metadata, as invocation id (33 bytes with the NUL)
 * of group ranks; on_inv_done answers it. 0, or the scheduler's -errno, and then the caller
 * answers: the pending token stays in the request's pool with nothing to cancel. */
static int start_invoke(shoal_http_t *h, h2o_req_t *req, shoal_fnent_t *fn, const char *id,
                        uint32_t group, int redis, int spread)
{
    pending_t *pd = pending_new(h, req);
    shoal_inv_req_t r;
    int e;

    memcpy(pd->id, id, sizeof(pd->id));
    memset(&r, 0, sizeof(r));
    r.fn = fn;
    r.id = id;
    r.meta = h->meta.buf;
    r.meta_len = h->meta.len;
    r.meta_kv = 1;
    r.input = req->entity.base;
    r.input_len = req->entity.base ? req->entity.len : 0;
    r.group = group;
    r.redis = redis;
    r.spread = spread;
    r.cb = on_inv_done;
    r.opaque = pd;
    if ((e = shoal_sched_invoke(h->o.sched, &r, &pd->inv)) != 0)
        pd->inv = NULL;
    return e;
}

static void handle_invoke(shoal_http_t *h, h2o_req_t *req, const char *seg, size_t seglen)
{
    shoal_api_invoke_params_t params;
    shoal_fnent_t *fn;
    char name[SHOAL_NAME_MAX + 1], id[33], err[256];
    const char *q;
    size_t qlen;
    int e;

    if (shoal_sched_new_id(h->o.sched, id) < 0) {
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("no randomness for an invocation id"),
                   NULL, NULL);
        return;
    }
    if (!take_name(seg, seglen, name)) {
        shoal_sched_count(h->o.sched, SHOAL_API_BAD_NAME);
        send_error(h, req, SHOAL_API_BAD_NAME,
                   H2O_STRLIT("function names are 1 to 63 characters: [a-z0-9][a-z0-9_-]*"), id,
                   NULL);
        return;
    }
    query_of(req, &q, &qlen);
    if ((e = shoal_api_parse_invoke_query(q, qlen, &params, err, sizeof(err))) < 0) {
        shoal_api_err_t code = e == -ENOTSUP ? SHOAL_API_NOT_IMPLEMENTED : SHOAL_API_BAD_QUERY;
        shoal_sched_count(h->o.sched, code);
        send_error(h, req, code, err, strlen(err), id, NULL);
        return;
    }
    if (strcmp(params.transport, "redis") == 0 && shoal_sched_redis(h->o.sched) == NULL) {
        shoal_sched_count(h->o.sched, SHOAL_API_BAD_QUERY);
        send_error(h, req, SHOAL_API_BAD_QUERY,
                   H2O_STRLIT("transport=redis needs the controller started with --redis URL"), id,
                   NULL);
        return;
    }
    fn = shoal_fntable_find(shoal_sched_functions(h->o.sched), name, strlen(name));
    if (fn == NULL || fn->deleted) {
        shoal_sched_count(h->o.sched, SHOAL_API_NOT_FOUND);
        send_errorf(h, req, SHOAL_API_NOT_FOUND, id, "function '%s' not found", name);
        return;
    }
    meta_out_t mo = {&h->meta, !params.async, 0};
    shoal_json_reset(&h->meta);
    render_meta(&mo, req, id, name, show_auth(h, req, fn));
    meta_end(&mo);
    if (shoal_json_error(&h->meta) < 0) {
        shoal_sched_count(h->o.sched, SHOAL_API_INTERNAL);
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("out of memory"), id, NULL);
        return;
    }
    if (params.async) {
        /* Stored durably, answered 202, run later by events.h. */
        if (params.group > 1 || h->o.events == NULL)
            send_error(h, req, SHOAL_API_NOT_IMPLEMENTED,
                       H2O_STRLIT("async=true is not available for groups"), id, NULL);
        else
            shoal_evhttp_async(h->o.events, req, name, id, h->meta.buf, h->meta.len);
        return;
    }
    if ((e = start_invoke(h, req, fn, id, params.group, strcmp(params.transport, "redis") == 0,
                          params.spread || strcmp(params.transport, "tcp") == 0)) == 0)
        return;
    switch (e) {
    case -E2BIG:
        shoal_sched_count(h->o.sched, SHOAL_API_GROUP_TOO_LARGE);
        shoal_sched_group_check(h->o.sched, fn, params.group, err, sizeof(err));
        send_error(h, req, SHOAL_API_GROUP_TOO_LARGE, err, strlen(err), id, NULL);
        break;
    case -EAGAIN:
        shoal_sched_count(h->o.sched, SHOAL_API_OVERLOADED);
        send_error(h, req, SHOAL_API_OVERLOADED,
                   H2O_STRLIT("the controller's invocation queue is full"), id, NULL);
        break;
    case -ENOENT:
        shoal_sched_count(h->o.sched, SHOAL_API_NOT_FOUND);
        send_errorf(h, req, SHOAL_API_NOT_FOUND, id, "function '%s' not found", name);
        break;
    case -ESHUTDOWN:
        shoal_sched_count(h->o.sched, SHOAL_API_SHUTTING_DOWN);
        send_error(h, req, SHOAL_API_SHUTTING_DOWN, H2O_STRLIT("the controller is shutting down"),
                   id, NULL);
        break;
    default:
        shoal_sched_count(h->o.sched, SHOAL_API_INTERNAL);
        send_errorf(h, req, SHOAL_API_INTERNAL, id, "cannot schedule the invocation: %s",
                    strerror(-e));
        break;
    }
}

/* An HTTP route trigger (triggers.h): a synchronous invoke of its function, answered like one. */
static void invoke_route(shoal_http_t *h, h2o_req_t *req, const char *name, const char *trigger)
{
    shoal_fnent_t *fn = shoal_fntable_find(shoal_sched_functions(h->o.sched), name, strlen(name));
    char id[33];
    int e;

    if (shoal_sched_new_id(h->o.sched, id) < 0) {
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("no randomness for an invocation id"),
                   NULL, NULL);
        return;
    }
    if (fn == NULL || fn->deleted) {
        send_errorf(h, req, SHOAL_API_NOT_FOUND, id, "function '%s' not found", name);
        return;
    }
    meta_out_t mo = {&h->meta, 1, 0};
    shoal_json_reset(&h->meta);
    render_meta(&mo, req, id, name, show_auth(h, req, fn));
    meta_put(&mo, "trigger", 7, trigger, strlen(trigger));
    meta_end(&mo);
    if (shoal_json_error(&h->meta) < 0) {
        send_error(h, req, SHOAL_API_INTERNAL, H2O_STRLIT("out of memory"), id, NULL);
        return;
    }
    if ((e = start_invoke(h, req, fn, id, 0, 0, 0)) == 0)
        return;
    shoal_api_err_t code = e == -EAGAIN      ? SHOAL_API_OVERLOADED
                           : e == -ENOENT    ? SHOAL_API_NOT_FOUND
                           : e == -ESHUTDOWN ? SHOAL_API_SHUTTING_DOWN
                                             : SHOAL_API_INTERNAL;
    shoal_sched_count(h->o.sched, code);
    send_errorf(h, req, code, id, "cannot invoke '%s': %s", name, strerror(-e));
}

/* ---- routing ------------------------------------------------------------------------------ */

static int path_is(const h2o_iovec_t *p, const char *s)
{
    return h2o_memis(p->base, p->len, s, strlen(s));
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    shoal_http_t *h = ((handler_t *)self)->h;
    h2o_iovec_t p = req->path_normalized;
    static const char FNS[] = "/v1/functions";
    char name[SHOAL_NAME_MAX + 1];

    /* Authentication first, before any handler (evhttp's too) sees the request. Invoking a
     * public function is the one /v1/ exception; an unknown function needs the token as well, so
     * that the answer says nothing about which names exist. */
    if (h->o.token != NULL && p.len >= 3 && memcmp(p.base, "/v1", 3) == 0 &&
        (p.len == 3 || p.base[3] == '/')) {
        static const char INV[] = "/invoke";
        size_t pre = sizeof(FNS), inv = sizeof(INV) - 1;
        int public_invoke = method_is(req, "POST") && p.len > pre + inv &&
                            memcmp(p.base, FNS, pre - 1) == 0 && p.base[pre - 1] == '/' &&
                            memcmp(p.base + p.len - inv, INV, inv) == 0 &&
                            memchr(p.base + pre, '/', p.len - pre - inv) == NULL &&
                            fn_public(h, p.base + pre, p.len - pre - inv);
        if (!public_invoke && !authorized(h, req))
            return 0;
    }
    if (h->o.events != NULL && shoal_evhttp_handle(h->o.events, req))
        return 0;
    if (path_is(&p, "/healthz") || path_is(&p, "/metrics") || path_is(&p, "/v1/workers") ||
        path_is(&p, FNS) || path_is(&p, "/v1/functions/")) {
        if (!is_get(req)) {
            char msg[64];
            int n = snprintf(msg, sizeof(msg), "%.*s allows GET and HEAD", (int)p.len, p.base);
            send_error(h, req, SHOAL_API_METHOD_NOT_ALLOWED, msg, (size_t)n, NULL, "GET, HEAD");
            return 0;
        }
        if (path_is(&p, "/healthz"))
            handle_healthz(h, req);
        else if (path_is(&p, "/metrics"))
            handle_metrics(h, req);
        else if (path_is(&p, "/v1/workers"))
            handle_workers(h, req);
        else
            handle_list(h, req);
        return 0;
    }
    if (p.len > sizeof(FNS) && memcmp(p.base, FNS, sizeof(FNS) - 1) == 0 &&
        p.base[sizeof(FNS) - 1] == '/') {
        const char *seg = p.base + sizeof(FNS), *end = p.base + p.len;
        const char *slash = memchr(seg, '/', (size_t)(end - seg));
        size_t seglen = (size_t)((slash ? slash : end) - seg);

        if (slash == NULL) {
            int get = is_get(req), put = method_is(req, "PUT"), del = method_is(req, "DELETE");
            if (!get && !put && !del) {
                send_error(h, req, SHOAL_API_METHOD_NOT_ALLOWED,
                           H2O_STRLIT("a function allows GET, HEAD, PUT and DELETE"), NULL,
                           "GET, HEAD, PUT, DELETE");
                return 0;
            }
            if (!take_name(seg, seglen, name)) {
                send_error(h, req, SHOAL_API_BAD_NAME,
                           H2O_STRLIT("function names are 1 to 63 characters: [a-z0-9][a-z0-9_-]*"),
                           NULL, NULL);
                return 0;
            }
            if (get)
                handle_get(h, req, name);
            else
                start_op(h, req, name, del);
            return 0;
        }
        if (path_is(&(h2o_iovec_t){(char *)slash, (size_t)(end - slash)}, "/invoke")) {
            if (!method_is(req, "POST")) {
                send_error(h, req, SHOAL_API_METHOD_NOT_ALLOWED, H2O_STRLIT("invoke allows POST"),
                           NULL, "POST");
                return 0;
            }
            handle_invoke(h, req, seg, seglen);
            return 0;
        }
        if (path_is(&(h2o_iovec_t){(char *)slash, (size_t)(end - slash)}, "/logs")) {
            if (!is_get(req)) {
                send_error(h, req, SHOAL_API_METHOD_NOT_ALLOWED,
                           H2O_STRLIT("logs allow GET and HEAD"), NULL, "GET, HEAD");
                return 0;
            }
            handle_logs(h, req, seg, seglen);
            return 0;
        }
    }
    if (h->o.events != NULL) {
        char allow[256];
        const char *trigger;
        int method_ok;
        const char *fname =
            shoal_evhttp_route(h->o.events, req, &method_ok, allow, sizeof(allow), &trigger);
        /* A route is as open as its function: public ones need no token, and without the
         * token nothing (not even the methods allowed) is said about the others. */
        if (fname != NULL && h->o.token != NULL && !fn_public(h, fname, strlen(fname)) &&
            !authorized(h, req))
            return 0;
        if (fname != NULL && !method_ok) {
            send_error(h, req, SHOAL_API_METHOD_NOT_ALLOWED, H2O_STRLIT("method not allowed here"),
                       NULL, allow);
            return 0;
        }
        if (fname != NULL) {
            invoke_route(h, req, fname, trigger);
            return 0;
        }
    }
    send_errorf(h, req, SHOAL_API_NOT_FOUND, NULL, "no such endpoint: %.*s",
                (int)(p.len > 200 ? 200 : p.len), p.base);
    return 0;
}

/* ---- connections and life cycle ----------------------------------------------------------- */

static void on_conn_closed(uv_handle_t *handle)
{
    hconn_t *c = (hconn_t *)handle;
    c->h->conns--;
    free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    shoal_http_t *h = listener->data;
    hconn_t *c;
    h2o_socket_t *sock;

    if (status < 0) {
        SHOAL_WARN("http listener: %s", uv_strerror(status));
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return;
    c->h = h;
    uv_tcp_init(listener->loop, &c->tcp);
    h->conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&h->accept_ctx, sock);
}

int shoal_http_create(uv_loop_t *loop, const shoal_http_opts_t *o, shoal_http_t **out)
{
    shoal_http_t *h = calloc(1, sizeof(*h));
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    handler_t *handler;

    if (h == NULL)
        return -ENOMEM;
    h->loop = loop;
    h->o = *o;
    if (h->o.token != NULL)
        shoal_auth_key_init(&h->auth_key, h->o.token);
    shoal_json_init(&h->out);
    shoal_json_init(&h->meta);
    h2o_config_init(&h->config);
    h->config.server_name = h2o_iovec_init(H2O_STRLIT("shoal"));
    h->config.max_request_entity_size = o->max_body;
    h->config.http2.graceful_shutdown_timeout = 2000;
    host = h2o_config_register_host(&h->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = (handler_t *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->h = h;
    h2o_context_init(&h->ctx, loop, &h->config);
    h->accept_ctx.ctx = &h->ctx;
    h->accept_ctx.hosts = h->config.hosts;
    uv_tcp_init(loop, &h->listener);
    h->listener.data = h;
    *out = h;
    return 0;
}

int shoal_http_listen(shoal_http_t *h, const struct sockaddr *addr)
{
    int err;

    if ((err = uv_tcp_bind(&h->listener, addr, 0)) < 0)
        return err;
    return uv_listen((uv_stream_t *)&h->listener, 1024, on_accept);
}

int shoal_http_port(const shoal_http_t *h)
{
    return shoal_conn_local_port(&h->listener);
}

static void on_listener_closed(uv_handle_t *handle)
{
    shoal_http_t *h = handle->data;
    h->listener_closed = 1;
}

void shoal_http_shutdown(shoal_http_t *h)
{
    if (h->shutdown)
        return;
    h->shutdown = 1;
    uv_close((uv_handle_t *)&h->listener, on_listener_closed);
    h2o_context_request_shutdown(&h->ctx);
    /* Idle keep-alive connections wait on the request-read timeout; make it zero and run it, so
     * they close now (and any that go idle later close at once). */
    h->ctx.http1.req_timeout.timeout = 0;
    h2o_timeout_run(h->loop, &h->ctx.http1.req_timeout, h2o_now(h->loop));
}

int shoal_http_idle(const shoal_http_t *h)
{
    return h->shutdown && h->listener_closed && h->conns == 0;
}

void shoal_http_destroy(shoal_http_t *h)
{
    if (h == NULL)
        return;
    /* h2o_context_request_shutdown armed a one-second HTTP/2 GOAWAY timer; disposing the context
     * with it still linked trips an assertion in h2o. */
    if (h2o_timeout_is_linked(&h->ctx.http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&h->ctx.http2._graceful_shutdown_timeout);
    h2o_context_dispose(&h->ctx);
    h2o_config_dispose(&h->config);
    shoal_json_free(&h->out);
    shoal_json_free(&h->meta);
    free(h);
}
