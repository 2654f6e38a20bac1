/*
 * evhttp - see evhttp.h.
 */
#include "evhttp.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "common/util.h"
#include "controller/api.h"
#include "controller/reply.h"

#define LIST_DEFAULT 100
#define LIST_MAX 1000

struct shoal_evhttp {
    shoal_events_t *ev;
    shoal_triggers_t *tr;
    shoal_json_t out;
};

/* What a delayed answer needs; heap-allocated, linked both ways with a token in the request's
 * pool. */
typedef struct wait wait_t;
typedef struct {
    wait_t *w;
} token_t;

struct wait {
    shoal_evhttp_t *eh;
    h2o_req_t *req; /* NULL once the client is gone */
    token_t *token;
    int kind; /* 0 async invoke, 1 publish, 2 trigger put, 3 trigger delete, 4 read */
    char id[33];
    uint32_t deliveries;
    char *body; /* trigger object to answer with */
    size_t body_len;
    int status;
    shoal_store_read_t rd; /* kind 4: a read on the store's reader threads */
};

/* ---- answers ------------------------------------------------------------------------------- */

static void send_json(shoal_evhttp_t *eh, h2o_req_t *req, int status)
{
    shoal_reply_json(req, status, &eh->out);
}

static void send_err(shoal_evhttp_t *eh, h2o_req_t *req, int status, const char *code,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void send_err(shoal_evhttp_t *eh, h2o_req_t *req, int status, const char *code,
                     const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    shoal_json_reset(&eh->out);
    shoal_json_lit(&eh->out, "{\"error\":{\"code\":");
    shoal_json_cstr(&eh->out, code);
    shoal_json_lit(&eh->out, ",\"message\":");
    shoal_json_cstr(&eh->out, msg);
    shoal_json_lit(&eh->out, "}}");
    if (status == 429)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
    send_json(eh, req, status);
}

static void send_store_err(shoal_evhttp_t *eh, h2o_req_t *req, int err)
{
    if (err == -EAGAIN)
        send_err(eh, req, 429, "overloaded", "too many async invocations are waiting");
    else if (err == -ESHUTDOWN)
        send_err(eh, req, 503, "shutting_down", "the controller is shutting down");
    else
        send_err(eh, req, 500, "internal", "cannot store: %s", strerror(-err));
}

/* ---- delayed answers ----------------------------------------------------------------------- */

static void token_dispose(void *p)
{
    token_t *t = p;
    if (t->w != NULL) {
        t->w->req = NULL;
        t->w->token = NULL;
    }
}

static wait_t *wait_new(shoal_evhttp_t *eh, h2o_req_t *req, int kind)
{
    wait_t *w = calloc(1, sizeof(*w));
    token_t *t;

    if (w == NULL)
        return NULL;
    t = h2o_mem_alloc_shared(&req->pool, sizeof(*t), token_dispose);
    t->w = w;
    w->eh = eh;
    w->req = req;
    w->token = t;
    w->kind = kind;
    return w;
}

static void wait_free(wait_t *w)
{
    if (w->token != NULL)
        w->token->w = NULL;
    free(w->body);
    shoal_json_free(&w->rd.json);
    free(w->rd.data);
    free(w->rd.headers);
    free(w);
}

static void on_stored(void *opaque, int err)
{
    wait_t *w = opaque;
    shoal_evhttp_t *eh = w->eh;
    h2o_req_t *req = w->req;

    if (w->token != NULL)
        w->token->w = NULL;
    w->token = NULL;
    if (req != NULL) {
        if (err < 0) {
            send_store_err(eh, req, err);
        } else if (w->kind == 0) {
            char loc[64];
            int n = snprintf(loc, sizeof(loc), "/v1/invocations/%s", w->id);
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL,
                           h2o_strdup(&req->pool, loc, (size_t)n).base, (size_t)n);
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("shoal-invocation-id"),
                                  0, NULL, h2o_strdup(&req->pool, w->id, 32).base, 32);
            shoal_json_reset(&eh->out);
            shoal_json_lit(&eh->out, "{\"id\":\"");
            shoal_json_raw(&eh->out, w->id, 32);
            shoal_json_lit(&eh->out, "\"}");
            send_json(eh, req, 202);
        } else if (w->kind == 1) {
            shoal_json_reset(&eh->out);
            shoal_json_lit(&eh->out, "{\"id\":\"");
            shoal_json_raw(&eh->out, w->id, 32);
            shoal_json_lit(&eh->out, "\",\"deliveries\":");
            shoal_json_u64(&eh->out, w->deliveries);
            shoal_json_lit(&eh->out, "}");
            send_json(eh, req, 202);
        } else {
            shoal_json_reset(&eh->out);
            shoal_json_raw(&eh->out, w->body, w->body_len);
            send_json(eh, req, w->status);
        }
    }
    wait_free(w);
}

/* ---- async invoke -------------------------------------------------------------------------- */

void shoal_evhttp_async(shoal_evhttp_t *eh, h2o_req_t *req, const char *function, const char *id,
                        const char *meta, size_t meta_len)
{
    shoal_events_req_t r;
    wait_t *w = wait_new(eh, req, 0);
    int err;

    if (w == NULL) {
        send_store_err(eh, req, -ENOMEM);
        return;
    }
    memcpy(w->id, id, 33);
    memset(&r, 0, sizeof(r));
    r.function = function;
    r.id = id;
    r.meta = meta;
    r.meta_len = meta_len;
    r.input = req->entity.base;
    r.input_len = req->entity.base ? req->entity.len : 0;
    r.cb = on_stored;
    r.opaque = w;
    if ((err = shoal_events_submit(eh->ev, &r)) < 0) {
        wait_free(w);
        send_store_err(eh, req, err);
    }
}

/* ---- invocations --------------------------------------------------------------------------- */

static int id_valid(const char *s, size_t len)
{
    return len == 32 && shoal_util_lower_hex(s, len);
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

static void on_read(shoal_store_read_t *rd, int err);

/* Hands w's read to the store's reader threads: the loop does not wait for SQLite. */
static void start_read(shoal_evhttp_t *eh, wait_t *w)
{
    shoal_json_init(&w->rd.json);
    w->rd.cb = on_read;
    w->rd.opaque = w;
    shoal_store_read(shoal_events_store(eh->ev), &w->rd);
}

static void handle_list(shoal_evhttp_t *eh, h2o_req_t *req)
{
    const char *q;
    size_t qlen, pos = 0;
    shoal_api_param_t p;
    char function[SHOAL_NAME_MAX + 1] = "";
    int state = -1;
    uint64_t limit = LIST_DEFAULT;

    query_of(req, &q, &qlen);
    while (shoal_api_query_next(q, qlen, &pos, &p)) {
        if (p.key_len == 8 && memcmp(p.key, "function", 8) == 0) {
            if (p.val == NULL || p.val_len == 0 || p.val_len > SHOAL_NAME_MAX) {
                send_err(eh, req, 400, "bad_query", "function must be a function name");
                return;
            }
            memcpy(function, p.val, p.val_len);
            function[p.val_len] = '\0';
        } else if (p.key_len == 5 && memcmp(p.key, "state", 5) == 0) {
            if (p.val == NULL || (state = shoal_store_state_parse(p.val, p.val_len)) < 0) {
                send_err(eh, req, 400, "bad_query",
                         "state must be one of queued, running, succeeded, failed, dead");
                return;
            }
        } else if (p.key_len == 5 && memcmp(p.key, "limit", 5) == 0) {
            if (p.val == NULL || shoal_util_parse_u64(p.val, p.val_len, 1, LIST_MAX, &limit) < 0) {
                send_err(eh, req, 400, "bad_query", "limit must be an integer in 1..%d", LIST_MAX);
                return;
            }
        } else {
            send_err(eh, req, 400, "bad_query",
                     "unknown parameter '%.*s' (known: function, state, limit)",
                     (int)(p.key_len > 40 ? 40 : p.key_len), p.key);
            return;
        }
    }
    wait_t *w = wait_new(eh, req, 4);
    if (w == NULL) {
        send_store_err(eh, req, -ENOMEM);
        return;
    }
    w->rd.kind = SHOAL_STORE_READ_LIST;
    _Static_assert(sizeof(w->rd.function) == sizeof(function), "function name buffers");
    memcpy(w->rd.function, function, sizeof(function));
    w->rd.state = state;
    w->rd.limit = (uint32_t)limit;
    start_read(eh, w);
}

static void handle_one(shoal_evhttp_t *eh, h2o_req_t *req, const char *seg, size_t len, int output)
{
    wait_t *w;

    if (!id_valid(seg, len)) {
        send_err(eh, req, 404, "not_found", "no invocation '%.*s'", (int)(len > 40 ? 40 : len),
                 seg);
        return;
    }
    if ((w = wait_new(eh, req, 4)) == NULL) {
        send_store_err(eh, req, -ENOMEM);
        return;
    }
    w->rd.kind = output ? SHOAL_STORE_READ_OUTPUT : SHOAL_STORE_READ_GET;
    memcpy(w->rd.id, seg, 32);
    w->rd.id[32] = '\0';
    start_read(eh, w);
}

/* Answers an invocation's output (the read's result). */
static void send_output(shoal_evhttp_t *eh, h2o_req_t *req, shoal_store_read_t *rd)
{
    int has_ctype = 0;

    if (rd->state != SHOAL_INV_SUCCEEDED) {
        send_err(eh, req, 409, "not_ready", "invocation %s is %s: it has no output", rd->id,
                 shoal_store_state_name(rd->state));
        return;
    }
    if (rd->headers != NULL) {
        json_t *h = json_loads(rd->headers, 0, NULL);
        json_t *ct = h ? json_object_get(h, "content-type") : NULL;
        /* Stored headers came from the function: check them as the synchronous path does. */
        if (json_is_string(ct) &&
            shoal_reply_value_allowed(json_string_value(ct), strlen(json_string_value(ct)))) {
            has_ctype = 1;
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                           h2o_strdup(&req->pool, json_string_value(ct), SIZE_MAX).base,
                           strlen(json_string_value(ct)));
        }
        json_decref(h);
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("shoal-invocation-id"), 0, NULL,
                          h2o_strdup(&req->pool, rd->id, 32).base, 32);
    /* h2o_send_inline copies into the pool. */
    shoal_reply_send(req, 200, has_ctype ? NULL : "application/octet-stream",
                     has_ctype ? 0 : strlen("application/octet-stream"), rd->data, rd->len);
}

/* A read finished on a reader thread: answer the request if its client is still there. */
static void on_read(shoal_store_read_t *rd, int err)
{
    wait_t *w = rd->opaque;
    shoal_evhttp_t *eh = w->eh;
    h2o_req_t *req = w->req;

    if (w->token != NULL)
        w->token->w = NULL;
    w->token = NULL;
    if (req == NULL) {
        /* The client went away. */
    } else if (err == -ENOENT) {
        send_err(eh, req, 404, "not_found", "no invocation '%s'", rd->id);
    } else if (err < 0) {
        send_err(eh, req, 500, "internal", "cannot read the store: %s", strerror(-err));
    } else if (rd->kind == SHOAL_STORE_READ_OUTPUT) {
        send_output(eh, req, rd);
    } else {
        shoal_json_reset(&eh->out);
        shoal_json_raw(&eh->out, rd->json.buf, rd->json.len);
        send_json(eh, req, 200);
    }
    wait_free(w);
}

/* ---- triggers and topics ------------------------------------------------------------------- */

static int take_name(const char *s, size_t len, char out[SHOAL_NAME_MAX + 1])
{
    if (len == 0 || len > SHOAL_NAME_MAX)
        return 0;
    memcpy(out, s, len);
    out[len] = '\0';
    return shoal_util_name_valid(out);
}

static void handle_trigger(shoal_evhttp_t *eh, h2o_req_t *req, const char *seg, size_t len)
{
    char name[SHOAL_NAME_MAX + 1], err[512];
    int is_put = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PUT"));
    int is_del = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    int is_get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                 h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));

    if (!is_put && !is_del && !is_get) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL,
                              H2O_STRLIT("GET, HEAD, PUT, DELETE"));
        send_err(eh, req, 405, "method_not_allowed", "a trigger allows GET, PUT and DELETE");
        return;
    }
    if (!take_name(seg, len, name)) {
        send_err(eh, req, 400, "bad_name",
                 "trigger names are 1 to 63 characters: [a-z0-9][a-z0-9_-]*");
        return;
    }
    if (is_get) {
        /* A listing filtered to one: cheap enough with few triggers. */
        shoal_json_t all;
        json_t *root, *arr, *v;
        size_t i;
        shoal_json_init(&all);
        shoal_triggers_list_json(eh->tr, &all);
        root = json_loadb(all.buf, all.len, 0, NULL);
        shoal_json_free(&all);
        arr = root ? json_object_get(root, "triggers") : NULL;
        json_array_foreach(arr, i, v)
        {
            if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0) {
                char *s = json_dumps(v, JSON_COMPACT);
                shoal_json_reset(&eh->out);
                shoal_json_raw(&eh->out, s, strlen(s));
                free(s);
                json_decref(root);
                send_json(eh, req, 200);
                return;
            }
        }
        json_decref(root);
        send_err(eh, req, 404, "not_found", "trigger '%s' not found", name);
        return;
    }
    wait_t *w = wait_new(eh, req, is_put ? 2 : 3);
    if (w == NULL) {
        send_store_err(eh, req, -ENOMEM);
        return;
    }
    if (is_del) {
        int e = shoal_triggers_delete(eh->tr, name, on_stored, w);
        if (e < 0) {
            wait_free(w);
            if (e == -ENOENT)
                send_err(eh, req, 404, "not_found", "trigger '%s' not found", name);
            else
                send_store_err(eh, req, e);
            return;
        }
        shoal_json_reset(&eh->out);
        shoal_json_lit(&eh->out, "{\"name\":");
        shoal_json_cstr(&eh->out, name);
        shoal_json_lit(&eh->out, ",\"deleted\":true}");
        w->status = 200;
    } else {
        shoal_json_reset(&eh->out);
        int st = shoal_triggers_put(eh->tr, name, req->entity.base ? req->entity.base : "",
                                    req->entity.base ? req->entity.len : 0, &eh->out, err,
                                    sizeof(err), on_stored, w);
        if (st >= 400) {
            wait_free(w);
            send_err(eh, req, st,
                     st == 404   ? "not_found"
                     : st == 409 ? "conflict"
                     : st == 413 ? "too_large"
                     : st == 400 ? "bad_trigger"
                                 : "internal",
                     "%s", err);
            return;
        }
        w->status = st;
    }
    if ((w->body = malloc(eh->out.len ? eh->out.len : 1)) != NULL) {
        memcpy(w->body, eh->out.buf, eh->out.len);
        w->body_len = eh->out.len;
    }
}

static void handle_publish(shoal_evhttp_t *eh, h2o_req_t *req, const char *seg, size_t len)
{
    char topic[SHOAL_NAME_MAX + 1], id[33];
    wait_t *w;
    uint32_t n;
    int e;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL,
                              H2O_STRLIT("POST"));
        send_err(eh, req, 405, "method_not_allowed", "a topic allows POST");
        return;
    }
    if (!take_name(seg, len, topic)) {
        send_err(eh, req, 400, "bad_name",
                 "topic names are 1 to 63 characters: [a-z0-9][a-z0-9_-]*");
        return;
    }
    if (shoal_sched_new_id(shoal_events_sched(eh->ev), id) < 0 ||
        (w = wait_new(eh, req, 1)) == NULL) {
        send_store_err(eh, req, -ENOMEM);
        return;
    }
    memcpy(w->id, id, sizeof(id));
    e = shoal_triggers_publish(eh->tr, topic, id, req->entity.base ? req->entity.base : "",
                               req->entity.base ? req->entity.len : 0, &n, on_stored, w);
    w->deliveries = n;
    if (e == 1) {
        on_stored(w, 0);
    } else if (e < 0) {
        wait_free(w);
        send_store_err(eh, req, e);
    }
}

static int prefix(const h2o_iovec_t *p, const char *s, const char **rest, size_t *rlen)
{
    size_t n = strlen(s);
    if (p->len < n || memcmp(p->base, s, n) != 0)
        return 0;
    *rest = p->base + n;
    *rlen = p->len - n;
    return 1;
}

int shoal_evhttp_handle(shoal_evhttp_t *eh, h2o_req_t *req)
{
    h2o_iovec_t p = req->path_normalized;
    const char *rest;
    size_t rlen;
    int get = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
              h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));

    if (h2o_memis(p.base, p.len, H2O_STRLIT("/v1/invocations")) ||
        h2o_memis(p.base, p.len, H2O_STRLIT("/v1/triggers"))) {
        if (!get) {
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL,
                                  H2O_STRLIT("GET, HEAD"));
            send_err(eh, req, 405, "method_not_allowed", "%.*s allows GET and HEAD", (int)p.len,
                     p.base);
        } else if (p.len == strlen("/v1/triggers")) {
            shoal_json_reset(&eh->out);
            shoal_triggers_list_json(eh->tr, &eh->out);
            send_json(eh, req, 200);
        } else {
            handle_list(eh, req);
        }
        return 1;
    }
    if (prefix(&p, "/v1/invocations/", &rest, &rlen)) {
        const char *slash = memchr(rest, '/', rlen);
        int output = 0;
        size_t seglen = slash ? (size_t)(slash - rest) : rlen;
        if (slash != NULL) {
            if (!h2o_memis(slash, rlen - seglen, H2O_STRLIT("/output")))
                return 0;
            output = 1;
        }
        if (!get) {
            h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("allow"), 0, NULL,
                                  H2O_STRLIT("GET, HEAD"));
            send_err(eh, req, 405, "method_not_allowed", "an invocation allows GET and HEAD");
            return 1;
        }
        handle_one(eh, req, rest, seglen, output);
        return 1;
    }
    if (prefix(&p, "/v1/triggers/", &rest, &rlen) && memchr(rest, '/', rlen) == NULL) {
        handle_trigger(eh, req, rest, rlen);
        return 1;
    }
    if (prefix(&p, "/v1/topics/", &rest, &rlen) && memchr(rest, '/', rlen) == NULL) {
        handle_publish(eh, req, rest, rlen);
        return 1;
    }
    return 0;
}

const char *shoal_evhttp_route(shoal_evhttp_t *eh, h2o_req_t *req, int *method_ok, char *allow,
                               size_t allowlen, const char **trigger)
{
    size_t plen = req->input.query_at != SIZE_MAX ? req->input.query_at : req->input.path.len;
    return shoal_triggers_route(eh->tr, req->input.path.base, plen, req->method.base,
                                req->method.len, method_ok, allow, allowlen, trigger);
}

void shoal_evhttp_deployed(shoal_evhttp_t *eh, const char *function, int retries)
{
    shoal_events_set_retries(eh->ev, function, retries);
}

void shoal_evhttp_metrics(shoal_evhttp_t *eh, shoal_json_t *j)
{
    shoal_events_metrics(eh->ev, j);
}

int shoal_evhttp_create(shoal_events_t *ev, shoal_triggers_t *tr, shoal_evhttp_t **out)
{
    shoal_evhttp_t *eh = calloc(1, sizeof(*eh));
    if (eh == NULL)
        return -ENOMEM;
    eh->ev = ev;
    eh->tr = tr;
    shoal_json_init(&eh->out);
    *out = eh;
    return 0;
}

void shoal_evhttp_destroy(shoal_evhttp_t *eh)
{
    if (eh == NULL)
        return;
    shoal_json_free(&eh->out);
    free(eh);
}
