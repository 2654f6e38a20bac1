/*
 * events - see events.h.
 *
 * Memory: an entry (ent_t) exists from submit until its final state is committed (or the runner
 * is destroyed). It sits on the `all` list, in acceptance order, while it is accepted and not
 * finished; a pump walks that list from the oldest and dispatches what may run. Each write to the
 * store is a separately allocated wop_t that holds a reference on its entry, so an entry is freed
 * only when nothing refers to it: no write pending and no scheduler invocation.
 */
#include "events.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "common/util.h"
#include "transport/invmeta.h"

#define PUMP_MS 50
#define PLATFORM_RETRIES 2

enum { E_ACCEPTING, E_QUEUED, E_RUNNING, E_FINISHING, E_ABANDONED };

typedef struct lane {
    struct lane *next;
    char key[160];
    unsigned refs;    /* entries of this lane not finished */
    int busy;         /* one of them is running or finishing its attempt */
    uint64_t blocked; /* pump generation in which an earlier entry blocked the lane */
} lane_t;

typedef struct ent {
    struct ent *prev, *next; /* `all` list while accepted and not finished */
    shoal_events_t *ev;
    unsigned refs;
    int state;
    int listed;
    char id[33];
    char function[64];
    char trigger[64];
    lane_t *lane;
    char *meta;
    size_t meta_len;
    void *input;
    size_t input_len;
    uint32_t attempts;
    uint64_t created_ms;
    uint64_t not_before; /* loop time (ms) */
    shoal_inv_t *inv;
    shoal_events_accept_cb cb;
    void *opaque;
} ent_t;

typedef struct {
    shoal_store_op_t op;
    ent_t *e;
    char *error;
    void *output;
    char *headers;
    int final_state;
} wop_t;

typedef struct {
    char name[64];
    int retries;
} retry_t;

struct shoal_events {
    uv_loop_t *loop;
    shoal_events_opts_t o;
    ent_t *head, *tail;
    lane_t *lanes;
    uint32_t count; /* entries not finished (accepting, queued, running) */
    uint64_t bytes;
    uint32_t running;
    uint64_t gen;
    int shutdown;
    uv_timer_t pump_timer, prune_timer;
    retry_t *retries;
    size_t nretries, capretries;
    shoal_events_stats_t st;
    shoal_store_op_t prune_op;
    int pruning;
};

static void pump(shoal_events_t *ev);
static void on_pump_timer(uv_timer_t *t);

/* ---- entries and lanes --------------------------------------------------------------------- */

static lane_t *lane_get(shoal_events_t *ev, const char *key)
{
    lane_t *l;

    for (l = ev->lanes; l != NULL; l = l->next)
        if (strcmp(l->key, key) == 0)
            break;
    if (l == NULL) {
        if ((l = calloc(1, sizeof(*l))) == NULL)
            return NULL;
        snprintf(l->key, sizeof(l->key), "%s", key);
        l->next = ev->lanes;
        ev->lanes = l;
    }
    l->refs++;
    return l;
}

static void lane_put(shoal_events_t *ev, lane_t *l)
{
    if (l == NULL || --l->refs > 0)
        return;
    for (lane_t **p = &ev->lanes; *p != NULL; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
    free(l);
}

static void list_add(shoal_events_t *ev, ent_t *e)
{
    e->prev = ev->tail;
    e->next = NULL;
    if (ev->tail)
        ev->tail->next = e;
    else
        ev->head = e;
    ev->tail = e;
    e->listed = 1;
}

/* Takes an entry off the list and out of the counts: it is finished as far as admission goes. */
static void list_remove(shoal_events_t *ev, ent_t *e)
{
    if (!e->listed)
        return;
    if (e->prev)
        e->prev->next = e->next;
    else
        ev->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        ev->tail = e->prev;
    e->listed = 0;
    ev->count--;
    ev->bytes -= e->input_len;
    lane_put(ev, e->lane);
    e->lane = NULL;
}

static void ent_unref(ent_t *e)
{
    if (--e->refs > 0)
        return;
    list_remove(e->ev, e);
    free(e->meta);
    free(e->input);
    free(e);
}

/* Takes e off the list and drops the reference the list held. */
static void unlist(shoal_events_t *ev, ent_t *e)
{
    if (!e->listed)
        return;
    list_remove(ev, e);
    ent_unref(e);
}

static ent_t *ent_new(shoal_events_t *ev, const char *id, const char *function, const char *trigger,
                      const char *lane, const char *meta, size_t meta_len, const void *input,
                      size_t input_len)
{
    ent_t *e = calloc(1, sizeof(*e));

    if (e == NULL)
        return NULL;
    e->ev = ev;
    e->refs = 1;
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->function, sizeof(e->function), "%s", function);
    snprintf(e->trigger, sizeof(e->trigger), "%s", trigger ? trigger : "");
    e->meta = malloc(meta_len + 1);
    e->input = malloc(input_len ? input_len : 1);
    if (e->meta == NULL || e->input == NULL ||
        (lane && lane[0] && !(e->lane = lane_get(ev, lane)))) {
        free(e->meta);
        free(e->input);
        free(e);
        return NULL;
    }
    memcpy(e->meta, meta, meta_len);
    e->meta[meta_len] = '\0';
    e->meta_len = meta_len;
    if (input_len)
        memcpy(e->input, input, input_len);
    e->input_len = input_len;
    ev->count++;
    ev->bytes += input_len;
    list_add(ev, e);
    return e;
}

/* ---- store writes -------------------------------------------------------------------------- */

static void wop_done(shoal_store_op_t *op, int err);

static wop_t *wop_new(ent_t *e, shoal_store_kind_t kind)
{
    wop_t *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->e = e;
    e->refs++;
    w->op.kind = kind;
    w->op.id = e->id;
    w->op.name = e->function;
    w->op.cb = wop_done;
    w->op.opaque = w;
    return w;
}

static void wop_done(shoal_store_op_t *op, int err)
{
    wop_t *w = op->opaque;
    ent_t *e = w->e;
    shoal_events_t *ev = e->ev;

    switch (op->kind) {
    case SHOAL_STORE_INSERT:
        if (e->cb)
            e->cb(e->opaque, err);
        e->cb = NULL;
        if (err < 0) {
            e->state = E_ABANDONED;
            unlist(ev, e);
        } else if (e->state == E_ACCEPTING) {
            e->state = E_QUEUED;
            ev->st.accepted++;
        }
        break;
    case SHOAL_STORE_FINISH:
        if (err < 0)
            SHOAL_ERROR("events: cannot record the end of %s: %s (it will run again after a "
                        "restart)",
                        e->id, strerror(-err));
        else if (op->changed == 0)
            SHOAL_WARN("events: %s was already final", e->id);
        else if (w->final_state == SHOAL_INV_SUCCEEDED)
            ev->st.succeeded++;
        else if (w->final_state == SHOAL_INV_FAILED)
            ev->st.failed++;
        else
            ev->st.dead++;
        break;
    default:
        if (err < 0)
            SHOAL_WARN("events: store write for %s failed: %s", e->id, strerror(-err));
        break;
    }
    free(w->error);
    free(w->output);
    free(w->headers);
    free(w);
    ent_unref(e);
    if (!ev->shutdown)
        pump(ev);
}

/* ---- running ------------------------------------------------------------------------------- */

static int is_platform_failure(shoal_api_err_t code)
{
    return code == SHOAL_API_WORKER_LOST || code == SHOAL_API_FUNCTION_CRASHED ||
           code == SHOAL_API_NO_WORKERS || code == SHOAL_API_INTERNAL ||
           code == SHOAL_API_OVERLOADED;
}

static char *error_text(const shoal_inv_result_t *res)
{
    char *s;
    const char *code = shoal_api_err_code(res->code);
    size_t ml = res->message ? res->message_len : 0, cl = strlen(code);

    if (ml > 4096)
        ml = 4096;
    if ((s = malloc(cl + 2 + ml + 1)) == NULL)
        return NULL;
    memcpy(s, code, cl);
    memcpy(s + cl, ": ", 2);
    if (ml)
        memcpy(s + cl + 2, res->message, ml);
    s[cl + 2 + ml] = '\0';
    /* The message is the function's text: keep the stored string a valid C string. */
    for (size_t i = 0; i < cl + 2 + ml; i++)
        if (s[i] == '\0')
            s[i] = '?';
    return s;
}

/* The function's response headers (a transport/invmeta.h list) as the JSON object the store
 * keeps; NULL when there are none. Later entries of a name win, as in the synchronous answer's
 * JSON of old; names and values are filtered when they are served (evhttp.c). */
static char *headers_json(const uint8_t *list, size_t len)
{
    json_t *o = len > 0 ? json_object() : NULL;
    shoal_invmeta_kv_t kv;
    size_t off = 0;
    char *s = NULL, name[SHOAL_INVMETA_KEY_MAX + 1];

    if (o == NULL)
        return NULL;
    while (shoal_invmeta_kv_next(list, len, &off, &kv) == 1) {
        memcpy(name, kv.key, kv.key_len);
        name[kv.key_len] = '\0';
        json_object_set_new(o, name, json_stringn(kv.val, kv.val_len));
    }
    if (json_object_size(o) > 0)
        s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void finish(ent_t *e, int state, char *error, void *output, size_t len, char *headers)
{
    shoal_events_t *ev = e->ev;
    wop_t *w = wop_new(e, SHOAL_STORE_FINISH);

    if (w == NULL) {
        /* Left not final in the store: it runs again after a restart rather than being lost. */
        SHOAL_ERROR("events: out of memory finishing %s", e->id);
        free(error);
        free(output);
        free(headers);
        e->state = E_ABANDONED;
        unlist(ev, e);
        return;
    }
    w->error = error;
    w->output = output;
    w->headers = headers;
    w->final_state = state;
    w->op.state = state;
    w->op.value = e->attempts;
    w->op.finished_ms = shoal_util_wall_ms();
    w->op.error = error;
    w->op.data = output ? output : (state == SHOAL_INV_SUCCEEDED ? "" : NULL);
    w->op.len = len;
    w->op.headers = headers;
    e->state = E_FINISHING;
    shoal_store_submit(shoal_events_store(ev), &w->op);
    unlist(ev, e);
}

static void on_result(void *opaque, const shoal_inv_result_t *res)
{
    ent_t *e = opaque;
    shoal_events_t *ev = e->ev;
    int retries;
    uint32_t allowed;

    e->inv = NULL;
    ev->running--;
    if (e->lane)
        e->lane->busy = 0;
    if (res->code == SHOAL_API_SHUTTING_DOWN || ev->shutdown) {
        /* Not final: the stored row stays queued or running and runs again at the next start. */
        e->state = E_ABANDONED;
        unlist(ev, e);
        ent_unref(e);
        return;
    }
    if (res->code == SHOAL_API_OK) {
        void *out = malloc(res->len ? res->len : 1);
        char *hdrs = headers_json(res->headers, res->headers_len);
        if (out != NULL && res->len)
            memcpy(out, res->data, res->len);
        if (out == NULL) {
            free(hdrs);
            finish(e, SHOAL_INV_FAILED, strdup("internal: out of memory storing the output"), NULL,
                   0, NULL);
        } else {
            finish(e, SHOAL_INV_SUCCEEDED, NULL, out, res->len, hdrs);
        }
        ent_unref(e);
        return;
    }
    if (res->code == SHOAL_API_NOT_FOUND) {
        finish(e, SHOAL_INV_FAILED, error_text(res), NULL, 0, NULL);
        ent_unref(e);
        return;
    }
    retries =
        is_platform_failure(res->code) ? PLATFORM_RETRIES : shoal_events_retries(ev, e->function);
    allowed = 1u + (uint32_t)retries;
    if (e->attempts < allowed) {
        wop_t *w = wop_new(e, SHOAL_STORE_REQUEUE);
        uint64_t delay = (uint64_t)ev->o.backoff_ms << (e->attempts > 10 ? 10 : e->attempts - 1);
        e->state = E_QUEUED;
        e->not_before = uv_now(ev->loop) + delay;
        ev->st.retried++;
        if (w != NULL) {
            w->error = error_text(res);
            w->op.error = w->error;
            w->op.value = e->attempts;
            w->op.not_before_ms = shoal_util_wall_ms() + delay;
            shoal_store_submit(shoal_events_store(ev), &w->op);
        }
        if (!uv_is_active((uv_handle_t *)&ev->pump_timer))
            uv_timer_start(&ev->pump_timer, on_pump_timer, delay, 0);
    } else {
        finish(e, retries > 0 ? SHOAL_INV_DEAD : SHOAL_INV_FAILED, error_text(res), NULL, 0, NULL);
    }
    ent_unref(e);
}

/* Starts e; returns 0, or -EAGAIN when the scheduler has no room now. */
static int dispatch(shoal_events_t *ev, ent_t *e)
{
    shoal_sched_t *s = ev->o.sched;
    shoal_fnent_t *fn =
        shoal_fntable_find(shoal_sched_functions(s), e->function, strlen(e->function));
    shoal_inv_req_t r;
    int err;

    if (fn == NULL || fn->deleted) {
        char msg[128];
        int n = snprintf(msg, sizeof(msg), "not_found: function '%s' not found", e->function);
        (void)n;
        e->refs++;
        finish(e, SHOAL_INV_FAILED, strdup(msg), NULL, 0, NULL);
        ent_unref(e);
        return 0;
    }
    memset(&r, 0, sizeof(r));
    r.fn = fn;
    r.id = e->id;
    r.meta = e->meta;
    r.meta_len = e->meta_len;
    r.input = e->input;
    r.input_len = e->input_len;
    r.cb = on_result;
    r.opaque = e;
    e->refs++;
    if ((err = shoal_sched_invoke(s, &r, &e->inv)) < 0) {
        e->refs--;
        e->inv = NULL;
        if (err == -ENOENT) {
            e->refs++;
            finish(e, SHOAL_INV_FAILED, strdup("not_found: function deleted"), NULL, 0, NULL);
            ent_unref(e);
            return 0;
        }
        return -EAGAIN;
    }
    e->state = E_RUNNING;
    e->attempts++;
    ev->running++;
    if (e->lane)
        e->lane->busy = 1;
    wop_t *w = wop_new(e, SHOAL_STORE_START);
    if (w != NULL) {
        w->op.value = e->attempts;
        shoal_store_submit(shoal_events_store(ev), &w->op);
    }
    return 0;
}

static void pump(shoal_events_t *ev)
{
    shoal_sched_stats_t st;
    uint64_t now = uv_now(ev->loop), wake = 0;
    ent_t *e, *next;

    if (ev->shutdown)
        return;
    ev->gen++;
    for (e = ev->head; e != NULL && ev->running < ev->o.concurrency; e = next) {
        next = e->next;
        if (e->state != E_QUEUED) {
            if (e->lane)
                e->lane->blocked = ev->gen; /* later entries of its lane wait for it */
            continue;
        }
        if (e->lane && (e->lane->busy || e->lane->blocked == ev->gen))
            continue;
        if (e->not_before > now) {
            if (wake == 0 || e->not_before < wake)
                wake = e->not_before;
            if (e->lane)
                e->lane->blocked = ev->gen;
            continue;
        }
        /* Synchronous invocations waiting for capacity go first. */
        shoal_sched_stats(ev->o.sched, &st);
        if (st.queued > 0 || st.workers == 0) {
            wake = now + PUMP_MS;
            break;
        }
        if (dispatch(ev, e) < 0) {
            wake = now + PUMP_MS;
            break;
        }
    }
    if (wake != 0) {
        uint64_t d = wake > now ? wake - now : 1;
        if (!uv_is_active((uv_handle_t *)&ev->pump_timer) ||
            uv_timer_get_due_in(&ev->pump_timer) > d)
            uv_timer_start(&ev->pump_timer, on_pump_timer, d, 0);
    }
}

static void on_pump_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* ---- retention ----------------------------------------------------------------------------- */

static void on_pruned(shoal_store_op_t *op, int err)
{
    shoal_events_t *ev = op->opaque;

    ev->pruning = 0;
    if (err == 0 && op->changed > 0)
        SHOAL_INFO("events: removed %d invocation(s) past the retention time", op->changed);
}

static void on_prune_timer(uv_timer_t *t)
{
    shoal_events_t *ev = t->data;
    uint64_t now = shoal_util_wall_ms();

    if (ev->pruning || ev->shutdown)
        return;
    memset(&ev->prune_op, 0, sizeof(ev->prune_op));
    ev->prune_op.kind = SHOAL_STORE_PRUNE;
    ev->prune_op.finished_ms = now > ev->o.retention_ms ? now - ev->o.retention_ms : 0;
    ev->prune_op.cb = on_pruned;
    ev->prune_op.opaque = ev;
    ev->pruning = 1;
    shoal_store_submit(ev->o.store, &ev->prune_op);
}

/* ---- public -------------------------------------------------------------------------------- */

/* Sets a function's retries in memory; -1 forgets it. */
static void retries_put(shoal_events_t *ev, const char *function, int retries)
{
    size_t i;

    for (i = 0; i < ev->nretries; i++)
        if (strcmp(ev->retries[i].name, function) == 0)
            break;
    if (retries < 0) {
        if (i < ev->nretries)
            ev->retries[i] = ev->retries[--ev->nretries];
        return;
    }
    if (i == ev->nretries) {
        if (ev->nretries == ev->capretries) {
            size_t nc = ev->capretries ? ev->capretries * 2 : 16;
            retry_t *nr = realloc(ev->retries, nc * sizeof(*nr));
            if (nr == NULL)
                return;
            ev->retries = nr;
            ev->capretries = nc;
        }
        snprintf(ev->retries[i].name, sizeof(ev->retries[i].name), "%s", function);
        ev->nretries++;
    }
    ev->retries[i].retries = retries;
}

static void load_retry(void *opaque, const char *name, int retries)
{
    if (name != NULL)
        retries_put(opaque, name, retries);
}

int shoal_events_create(uv_loop_t *loop, const shoal_events_opts_t *o, shoal_events_t **out)
{
    shoal_events_t *ev = calloc(1, sizeof(*ev));
    shoal_store_inv_t *v = NULL;
    size_t n = 0;
    int err;

    if (ev == NULL)
        return -ENOMEM;
    ev->loop = loop;
    ev->o = *o;
    if (ev->o.concurrency == 0)
        ev->o.concurrency = 32;
    if (ev->o.max_queued == 0)
        ev->o.max_queued = 100000;
    if (ev->o.max_bytes == 0)
        ev->o.max_bytes = 1ull << 30;
    if (ev->o.retention_ms == 0)
        ev->o.retention_ms = 24ull * 3600 * 1000;
    if (ev->o.backoff_ms == 0)
        ev->o.backoff_ms = 200;
    if ((err = shoal_store_load_retries(o->store, load_retry, ev)) < 0 ||
        (err = shoal_store_load_pending(o->store, &v, &n)) < 0) {
        free(ev->retries);
        free(ev);
        return err;
    }
    for (size_t i = 0; i < n; i++) {
        ent_t *e = ent_new(ev, v[i].id, v[i].function, v[i].trigger, v[i].lane, v[i].meta,
                           v[i].meta_len, v[i].input, v[i].input_len);
        if (e != NULL) {
            e->state = E_QUEUED;
            e->attempts = v[i].attempts;
            e->created_ms = v[i].created_ms;
        }
        shoal_store_inv_free(&v[i]);
    }
    free(v);
    if (n > 0)
        SHOAL_INFO("events: %zu async invocation(s) to run from before the restart", n);
    uv_timer_init(loop, &ev->pump_timer);
    ev->pump_timer.data = ev;
    uv_timer_init(loop, &ev->prune_timer);
    ev->prune_timer.data = ev;
    uint64_t every = ev->o.retention_ms / 4;
    if (every > 60000)
        every = 60000;
    if (every < 100)
        every = 100;
    uv_timer_start(&ev->prune_timer, on_prune_timer, every, every);
    uv_timer_start(&ev->pump_timer, on_pump_timer, 0, 0);
    *out = ev;
    return 0;
}

int shoal_events_room(const shoal_events_t *ev, size_t n, size_t bytes)
{
    return ev->count + n <= ev->o.max_queued && ev->bytes + bytes <= ev->o.max_bytes;
}

int shoal_events_submit(shoal_events_t *ev, const shoal_events_req_t *r)
{
    ent_t *e;
    wop_t *w;

    if (ev->shutdown)
        return -ESHUTDOWN;
    if (!shoal_events_room(ev, 1, r->input_len))
        return -EAGAIN;
    if ((e = ent_new(ev, r->id, r->function, r->trigger, r->lane, r->meta, r->meta_len, r->input,
                     r->input_len)) == NULL)
        return -ENOMEM;
    e->state = E_ACCEPTING;
    e->cb = r->cb;
    e->opaque = r->opaque;
    e->created_ms = shoal_util_wall_ms();
    if ((w = wop_new(e, SHOAL_STORE_INSERT)) == NULL) {
        unlist(ev, e);
        return -ENOMEM;
    }
    w->op.lane = e->lane ? e->lane->key : "";
    w->op.trigger = e->trigger;
    w->op.meta = e->meta;
    w->op.meta_len = e->meta_len;
    w->op.data = e->input;
    w->op.len = e->input_len;
    w->op.created_ms = e->created_ms;
    shoal_store_submit(ev->o.store, &w->op);
    return 0;
}

int shoal_events_retries(const shoal_events_t *ev, const char *function)
{
    for (size_t i = 0; i < ev->nretries; i++)
        if (strcmp(ev->retries[i].name, function) == 0)
            return ev->retries[i].retries;
    return 0;
}

static void on_retries_written(shoal_store_op_t *op, int err)
{
    if (err < 0)
        SHOAL_WARN("events: cannot store the retries of %s: %s", op->name, strerror(-err));
    free((char *)op->name);
    free(op);
}

void shoal_events_set_retries(shoal_events_t *ev, const char *function, int retries)
{
    retries_put(ev, function, retries);
    shoal_store_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->name = strdup(function)) == NULL) {
        free(op);
        return;
    }
    op->kind = SHOAL_STORE_RETRIES;
    op->value = retries;
    op->cb = on_retries_written;
    shoal_store_submit(ev->o.store, op);
}

void shoal_events_stats(const shoal_events_t *ev, shoal_events_stats_t *st)
{
    *st = ev->st;
    st->running = ev->running;
    st->queued = ev->count - ev->running;
}

void shoal_events_metrics(shoal_events_t *ev, shoal_json_t *j)
{
    shoal_store_stats_t ss;
    shoal_events_stats_t es;
    char buf[1024];
    int n;

    shoal_store_stats(ev->o.store, &ss);
    shoal_events_stats(ev, &es);
    n = snprintf(
        buf, sizeof(buf),
        "# TYPE shoal_async_queued gauge\nshoal_async_queued %u\n"
        "# TYPE shoal_async_running gauge\nshoal_async_running %u\n"
        "# TYPE shoal_async_total counter\n"
        "shoal_async_total{state=\"accepted\"} %llu\n"
        "shoal_async_total{state=\"succeeded\"} %llu\n"
        "shoal_async_total{state=\"failed\"} %llu\n"
        "shoal_async_total{state=\"dead\"} %llu\n"
        "shoal_async_total{state=\"retried\"} %llu\n"
        "# TYPE shoal_store_commits_total counter\nshoal_store_commits_total %llu\n"
        "# TYPE shoal_store_ops_total counter\nshoal_store_ops_total %llu\n"
        "# HELP shoal_store_fsync_seconds_total Time spent committing (WAL fsync).\n"
        "# TYPE shoal_store_fsync_seconds_total counter\n"
        "shoal_store_fsync_seconds_total %.6f\n",
        es.queued, es.running, (unsigned long long)es.accepted, (unsigned long long)es.succeeded,
        (unsigned long long)es.failed, (unsigned long long)es.dead, (unsigned long long)es.retried,
        (unsigned long long)ss.commits, (unsigned long long)ss.ops, (double)ss.commit_ns / 1e9);
    shoal_json_raw(j, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

shoal_store_t *shoal_events_store(const shoal_events_t *ev)
{
    return ev->o.store;
}

shoal_sched_t *shoal_events_sched(const shoal_events_t *ev)
{
    return ev->o.sched;
}

void shoal_events_shutdown(shoal_events_t *ev)
{
    if (ev->shutdown)
        return;
    ev->shutdown = 1;
    uv_close((uv_handle_t *)&ev->pump_timer, NULL);
    uv_close((uv_handle_t *)&ev->prune_timer, NULL);
}

void shoal_events_destroy(shoal_events_t *ev)
{
    if (ev == NULL)
        return;
    /* Whatever is left never reached a final state here; the store still has it. */
    while (ev->head != NULL) {
        ent_t *e = ev->head;
        list_remove(ev, e);
        free(e->meta);
        free(e->input);
        free(e);
    }
    while (ev->lanes != NULL) {
        lane_t *l = ev->lanes;
        ev->lanes = l->next;
        free(l);
    }
    free(ev->retries);
    free(ev);
}
