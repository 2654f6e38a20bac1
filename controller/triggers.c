/*
 * triggers - see triggers.h.
 *
 * Triggers live in a list (there are few; every lookup is a short scan). A trigger with a timer
 * owns a heap uv_timer_t that is closed, and freed in its close callback, when the trigger is
 * replaced or deleted, so a firing can never meet a freed trigger.
 */
#include "triggers.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "common/util.h"
#include "controller/api.h"
#include "controller/cron.h"

#define PATH_MAX_LEN 1024
#define METHODS_MAX 16

enum { T_HTTP, T_TIMER, T_TOPIC };

typedef struct trig trig_t;

typedef struct {
    uv_timer_t timer; /* first: the close callback frees this struct */
    trig_t *t;        /* NULL once the trigger is gone */
} ttimer_t;

struct trig {
    trig_t *next;
    shoal_triggers_t *owner;
    char name[SHOAL_NAME_MAX + 1];
    char function[SHOAL_NAME_MAX + 1];
    int type;
    char *doc; /* the stored JSON document (normalised) */
    char path[PATH_MAX_LEN + 1];
    char methods[METHODS_MAX][16];
    int nmethods; /* 0: any method */
    uint64_t every_ms;
    shoal_cron_t cron;
    int has_cron;
    char topic[SHOAL_NAME_MAX + 1];
    uint64_t created_ms, fired_ms;
    uint64_t due_ms; /* the firing the timer is armed for (wall ms) */
    ttimer_t *timer;
};

struct shoal_triggers {
    uv_loop_t *loop;
    shoal_events_t *ev;
    trig_t *list;
    int shutdown;
    shoal_json_t meta;
};

typedef struct {
    shoal_store_op_t op;
    char *name;
    char *doc;
    shoal_triggers_done_cb done;
    void *opaque;
} twrite_t;

/* ---- helpers ------------------------------------------------------------------------------- */

static trig_t *find(shoal_triggers_t *t, const char *name)
{
    for (trig_t *g = t->list; g != NULL; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    return NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void trig_free(trig_t *g)
{
    if (g->timer != NULL) {
        g->timer->t = NULL;
        uv_close((uv_handle_t *)&g->timer->timer, on_timer_closed);
    }
    free(g->doc);
    free(g);
}

static void on_written(shoal_store_op_t *op, int err)
{
    twrite_t *w = op->opaque;

    if (err < 0)
        SHOAL_WARN("triggers: cannot store trigger %s: %s", w->name, strerror(-err));
    if (w->done)
        w->done(w->opaque, err);
    free(w->name);
    free(w->doc);
    free(w);
}

static int write_op(shoal_triggers_t *t, shoal_store_kind_t kind, const trig_t *g, const char *name,
                    shoal_triggers_done_cb done, void *opaque)
{
    twrite_t *w = calloc(1, sizeof(*w));

    if (w == NULL || (w->name = strdup(name)) == NULL ||
        (g != NULL && kind == SHOAL_STORE_TRIGGER_PUT && (w->doc = strdup(g->doc)) == NULL)) {
        if (w)
            free(w->name);
        free(w);
        return -ENOMEM;
    }
    w->op.kind = kind;
    w->op.name = w->name;
    if (w->doc) {
        w->op.data = w->doc;
        w->op.len = strlen(w->doc);
    }
    if (g != NULL) {
        w->op.fired_ms = g->fired_ms;
        w->op.created_ms = g->created_ms;
    }
    w->op.cb = on_written;
    w->op.opaque = w;
    w->done = done;
    w->opaque = opaque;
    shoal_store_submit(shoal_events_store(t->ev), &w->op);
    return 0;
}

/* The first firing strictly after `after` (wall ms), or 0 if none. */
static uint64_t next_fire(const trig_t *g, uint64_t after)
{
    if (g->every_ms > 0) {
        uint64_t anchor = g->created_ms;
        if (after < anchor)
            return anchor + g->every_ms;
        return anchor + ((after - anchor) / g->every_ms + 1) * g->every_ms;
    }
    int64_t n = shoal_cron_next(&g->cron, (int64_t)(after / 1000));
    return n < 0 ? 0 : (uint64_t)n * 1000;
}

/* ---- firing -------------------------------------------------------------------------------- */

static void on_fired_stored(void *opaque, int err)
{
    (void)opaque;
    if (err < 0 && err != -EAGAIN)
        SHOAL_WARN("triggers: a timer's invocation could not be stored: %s", strerror(-err));
}

static int submit_event(shoal_triggers_t *t, const trig_t *g, const char *topic, const void *body,
                        size_t len, const char *lane, shoal_events_accept_cb cb, void *opaque)
{
    shoal_events_req_t r;
    char id[33];
    int err;

    if ((err = shoal_sched_new_id(shoal_events_sched(t->ev), id)) < 0)
        return err;
    shoal_json_reset(&t->meta);
    shoal_json_lit(&t->meta, "{\"invocation_id\":\"");
    shoal_json_raw(&t->meta, id, 32);
    shoal_json_lit(&t->meta, "\",\"function\":");
    shoal_json_cstr(&t->meta, g->function);
    shoal_json_lit(&t->meta, ",\"trigger\":");
    shoal_json_cstr(&t->meta, g->name);
    if (topic != NULL) {
        shoal_json_lit(&t->meta, ",\"topic\":");
        shoal_json_cstr(&t->meta, topic);
    }
    shoal_json_lit(&t->meta, "}");
    if (shoal_json_error(&t->meta) < 0)
        return -ENOMEM;
    memset(&r, 0, sizeof(r));
    r.function = g->function;
    r.id = id;
    r.meta = t->meta.buf;
    r.meta_len = t->meta.len;
    r.input = body;
    r.input_len = len;
    r.trigger = g->name;
    r.lane = lane;
    r.cb = cb;
    r.opaque = opaque;
    return shoal_events_submit(t->ev, &r);
}

static void arm(trig_t *g, uint64_t now);

static void fire(trig_t *g, uint64_t at)
{
    shoal_triggers_t *t = g->owner;
    int err = submit_event(t, g, NULL, "", 0, NULL, on_fired_stored, NULL);

    if (err < 0)
        SHOAL_WARN("triggers: timer %s could not start %s: %s", g->name, g->function,
                   strerror(-err));
    /* Stored after the invocation, in the same group commit as a rule. */
    g->fired_ms = at;
    if (write_op(t, SHOAL_STORE_FIRED, g, g->name, NULL, NULL) < 0)
        SHOAL_WARN("triggers: cannot record the firing of %s", g->name);
}

static void on_timer(uv_timer_t *h)
{
    ttimer_t *tt = (ttimer_t *)h;
    trig_t *g = tt->t;
    uint64_t now = shoal_util_wall_ms();

    if (g == NULL || g->owner->shutdown)
        return;
    /* libuv times a timer from its loop's cached clock, which can lag the wall clock by the
     * time the loop spent since it last looked: a timer may go off a few ms before the firing
     * it was armed for. A firing never comes before its time (a cron "at the minute" must not
     * run at 59.999 s): wait out the rest, with the loop's clock brought up to date. */
    if (now < g->due_ms) {
        uv_update_time(h->loop);
        uv_timer_start(h, on_timer, g->due_ms - now, 0);
        return;
    }
    fire(g, now);
    arm(g, now);
}

static void arm(trig_t *g, uint64_t now)
{
    uint64_t n = next_fire(g, now);

    if (n == 0 || g->timer == NULL)
        return;
    g->due_ms = n;
    uv_timer_start(&g->timer->timer, on_timer, n > now ? n - now : 0, 0);
}

static int start_timer(shoal_triggers_t *t, trig_t *g, int catch_up)
{
    uint64_t now = shoal_util_wall_ms();

    if ((g->timer = calloc(1, sizeof(*g->timer))) == NULL)
        return -ENOMEM;
    uv_timer_init(t->loop, &g->timer->timer);
    g->timer->t = g;
    if (catch_up) {
        uint64_t base = g->fired_ms ? g->fired_ms : g->created_ms;
        uint64_t n = next_fire(g, base);
        if (n != 0 && n <= now) {
            SHOAL_INFO("triggers: %s missed a firing while the controller was down: running it "
                       "once now",
                       g->name);
            fire(g, now);
        }
    }
    arm(g, now);
    return 0;
}

/* ---- parsing ------------------------------------------------------------------------------- */

static int path_reserved(const char *p)
{
    return strcmp(p, "/v1") == 0 || strncmp(p, "/v1/", 4) == 0 || strcmp(p, "/healthz") == 0 ||
           strncmp(p, "/healthz/", 9) == 0 || strcmp(p, "/metrics") == 0 ||
           strncmp(p, "/metrics/", 9) == 0;
}

#define BAD(status, ...)                                                                           \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        rc = (status);                                                                             \
        goto out;                                                                                  \
    } while (0)

/* Parses doc into *g; returns 0 or an HTTP status with err set. */
static int parse_doc(shoal_triggers_t *t, const char *name, const char *body, size_t len, trig_t *g,
                     int check_function, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = NULL, *v;
    const char *type;
    int rc = 0;

    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    /* Checked on a PUT only, before parsing: what is stored passed it (or predates it, and stays
     * loadable). */
    if (check_function && len > SHOAL_TRIGGER_DOC_MAX)
        BAD(413, "body: a trigger document is at most %d bytes, this one has %zu",
            SHOAL_TRIGGER_DOC_MAX, len);
    if ((root = json_loadb(body, len, 0, &je)) == NULL)
        BAD(400, "body: not valid JSON: %s", je.text);
    if (!json_is_object(root))
        BAD(400, "body: must be a JSON object");
    v = json_object_get(root, "function");
    if (!json_is_string(v))
        BAD(400, "function: required, a function name");
    if (json_string_length(v) > SHOAL_NAME_MAX || !shoal_util_name_valid(json_string_value(v)))
        BAD(400, "function: not a valid function name");
    snprintf(g->function, sizeof(g->function), "%s", json_string_value(v));
    v = json_object_get(root, "type");
    if (!json_is_string(v))
        BAD(400, "type: required, one of http, timer, topic");
    type = json_string_value(v);
    if (strcmp(type, "http") == 0) {
        g->type = T_HTTP;
        v = json_object_get(root, "path");
        if (!json_is_string(v) || json_string_value(v)[0] != '/' ||
            json_string_length(v) > PATH_MAX_LEN || strchr(json_string_value(v), '?') ||
            strlen(json_string_value(v)) != json_string_length(v))
            BAD(400,
                "path: required, an absolute path (starting with /, no query, at most %d "
                "bytes)",
                PATH_MAX_LEN);
        snprintf(g->path, sizeof(g->path), "%s", json_string_value(v));
        v = json_object_get(root, "methods");
        if (v != NULL) {
            size_t i;
            json_t *m;
            if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > METHODS_MAX)
                BAD(400, "methods: must be a non-empty array of at most %d HTTP methods",
                    METHODS_MAX);
            json_array_foreach(v, i, m)
            {
                const char *s = json_string_value(m);
                size_t k;
                if (s == NULL || json_string_length(m) == 0 || json_string_length(m) > 15)
                    BAD(400, "methods: each method must be a string like \"POST\"");
                for (k = 0; s[k]; k++)
                    if (!(s[k] >= 'A' && s[k] <= 'Z'))
                        BAD(400, "methods: '%.15s' is not an upper-case HTTP method", s);
                snprintf(g->methods[g->nmethods++], 16, "%s", s);
            }
        }
    } else if (strcmp(type, "timer") == 0) {
        json_t *every = json_object_get(root, "every_ms"), *cron = json_object_get(root, "cron");
        g->type = T_TIMER;
        if ((every == NULL) == (cron == NULL))
            BAD(400, "every_ms: a timer needs exactly one of every_ms and cron");
        if (every != NULL) {
            if (!json_is_integer(every) || json_integer_value(every) < 10 ||
                json_integer_value(every) > 31ll * 24 * 3600 * 1000)
                BAD(400, "every_ms: must be an integer number of milliseconds in 10..2678400000");
            g->every_ms = (uint64_t)json_integer_value(every);
        } else {
            char cerr[128];
            if (!json_is_string(cron))
                BAD(400, "cron: must be a five-field cron expression string");
            if (json_string_length(cron) > SHOAL_TRIGGER_CRON_MAX)
                BAD(400, "cron: an expression is at most %d bytes", SHOAL_TRIGGER_CRON_MAX);
            if (shoal_cron_parse(json_string_value(cron), &g->cron, cerr, sizeof(cerr)) < 0)
                BAD(400, "cron: %s", cerr);
            g->has_cron = 1;
        }
    } else if (strcmp(type, "topic") == 0) {
        g->type = T_TOPIC;
        v = json_object_get(root, "topic");
        if (!json_is_string(v) || json_string_length(v) > SHOAL_NAME_MAX ||
            !shoal_util_name_valid(json_string_value(v)))
            BAD(400, "topic: required, a name of 1 to 63 characters: [a-z0-9][a-z0-9_-]*");
        snprintf(g->topic, sizeof(g->topic), "%s", json_string_value(v));
    } else {
        BAD(400, "type: must be one of http, timer, topic");
    }
    /* A field the type does not use is refused rather than ignored: {"type":"timer","evry_ms":
     * 1000,"cron":...} is a typo the client should hear about. Checked on a PUT only, like the
     * size, so a stored document stays loadable. */
    if (check_function) {
        static const char *const fields[] = {[T_HTTP] = "function, type, path, methods",
                                             [T_TIMER] = "function, type, every_ms, cron",
                                             [T_TOPIC] = "function, type, topic"};
        const char *key;
        json_t *val;
        json_object_foreach(root, key, val)
        {
            size_t kl = strlen(key);
            int ok = strcmp(key, "function") == 0 || strcmp(key, "type") == 0;
            if (g->type == T_HTTP)
                ok |= strcmp(key, "path") == 0 || strcmp(key, "methods") == 0;
            else if (g->type == T_TIMER)
                ok |= strcmp(key, "every_ms") == 0 || strcmp(key, "cron") == 0;
            else
                ok |= strcmp(key, "topic") == 0;
            if (!ok)
                BAD(400, "%.*s%s: not a field of a %s trigger (its fields: %s)",
                    (int)(kl > 64 ? 64 : kl), key, kl > 64 ? "..." : "", type, fields[g->type]);
        }
    }
    if (check_function) {
        shoal_fnent_t *fe = shoal_fntable_find(shoal_sched_functions(shoal_events_sched(t->ev)),
                                               g->function, strlen(g->function));
        if (fe == NULL || fe->deleted)
            BAD(404, "function '%s' not found", g->function);
        /* Counts without the trigger this one replaces, if any. */
        int total = 0, of_fn = 0;
        for (trig_t *o = t->list; o != NULL; o = o->next) {
            if (strcmp(o->name, name) == 0)
                continue;
            total++;
            of_fn += strcmp(o->function, g->function) == 0;
        }
        if (total >= SHOAL_TRIGGERS_MAX)
            BAD(409, "the controller holds its maximum of %d triggers; delete one first",
                SHOAL_TRIGGERS_MAX);
        if (of_fn >= SHOAL_TRIGGERS_PER_FUNCTION_MAX)
            BAD(409, "function: '%s' already has its maximum of %d triggers; delete one first",
                g->function, SHOAL_TRIGGERS_PER_FUNCTION_MAX);
    }
    if (g->type == T_HTTP) {
        if (path_reserved(g->path))
            BAD(409, "path: %s is reserved by the controller (/v1/, /healthz, /metrics)", g->path);
        for (trig_t *o = t->list; o != NULL; o = o->next)
            if (o->type == T_HTTP && strcmp(o->path, g->path) == 0 && strcmp(o->name, name) != 0)
                BAD(409, "path: %s is already served by trigger %s", g->path, o->name);
    }
out:
    json_decref(root);
    return rc;
}

/* The trigger as JSON: its document plus name and times. */
static void trig_json(const trig_t *g, shoal_json_t *j)
{
    char ts[32];

    shoal_json_lit(j, "{\"name\":");
    shoal_json_cstr(j, g->name);
    shoal_json_lit(j, ",\"function\":");
    shoal_json_cstr(j, g->function);
    if (g->type == T_HTTP) {
        shoal_json_lit(j, ",\"type\":\"http\",\"path\":");
        shoal_json_cstr(j, g->path);
        shoal_json_lit(j, ",\"methods\":[");
        for (int i = 0; i < g->nmethods; i++) {
            if (i)
                shoal_json_lit(j, ",");
            shoal_json_cstr(j, g->methods[i]);
        }
        shoal_json_lit(j, "]");
    } else if (g->type == T_TIMER) {
        shoal_json_lit(j, ",\"type\":\"timer\"");
        if (g->every_ms) {
            shoal_json_lit(j, ",\"every_ms\":");
            shoal_json_u64(j, g->every_ms);
        } else {
            json_t *root = json_loads(g->doc, 0, NULL);
            shoal_json_lit(j, ",\"cron\":");
            shoal_json_cstr(j, root ? json_string_value(json_object_get(root, "cron")) : "");
            json_decref(root);
        }
    } else {
        shoal_json_lit(j, ",\"type\":\"topic\",\"topic\":");
        shoal_json_cstr(j, g->topic);
    }
    shoal_api_rfc3339(g->created_ms, ts);
    shoal_json_lit(j, ",\"created\":");
    shoal_json_cstr(j, ts);
    if (g->type == T_TIMER) {
        shoal_json_lit(j, ",\"last_fired\":");
        if (g->fired_ms) {
            shoal_api_rfc3339(g->fired_ms, ts);
            shoal_json_cstr(j, ts);
        } else {
            shoal_json_lit(j, "null");
        }
        /* The firing the timer is armed for: after a catch-up, the schedule's next point. */
        shoal_json_lit(j, ",\"next_fire\":");
        if (g->timer != NULL && g->due_ms) {
            shoal_api_rfc3339(g->due_ms, ts);
            shoal_json_cstr(j, ts);
        } else {
            shoal_json_lit(j, "null");
        }
    }
    shoal_json_lit(j, "}");
}

/* ---- public -------------------------------------------------------------------------------- */

static void load_one(void *opaque, const char *name, const char *doc, uint64_t fired_ms,
                     uint64_t created_ms)
{
    shoal_triggers_t *t = opaque;
    char err[256];
    trig_t *g = malloc(sizeof(*g));

    if (g == NULL || name == NULL || doc == NULL ||
        parse_doc(t, name, doc, strlen(doc), g, 0, err, sizeof(err)) != 0 ||
        (g->doc = strdup(doc)) == NULL) {
        SHOAL_WARN("triggers: ignoring stored trigger %s", name ? name : "?");
        free(g);
        return;
    }
    g->owner = t;
    g->fired_ms = fired_ms;
    g->created_ms = created_ms;
    g->next = t->list;
    t->list = g;
}

int shoal_triggers_create(uv_loop_t *loop, shoal_events_t *ev, shoal_triggers_t **out)
{
    shoal_triggers_t *t = calloc(1, sizeof(*t));
    int err;

    if (t == NULL)
        return -ENOMEM;
    t->loop = loop;
    t->ev = ev;
    shoal_json_init(&t->meta);
    if ((err = shoal_store_load_triggers(shoal_events_store(ev), load_one, t)) < 0) {
        shoal_triggers_destroy(t);
        return err;
    }
    for (trig_t *g = t->list; g != NULL; g = g->next)
        if (g->type == T_TIMER)
            start_timer(t, g, 1);
    *out = t;
    return 0;
}

void shoal_triggers_shutdown(shoal_triggers_t *t)
{
    if (t->shutdown)
        return;
    t->shutdown = 1;
    for (trig_t *g = t->list; g != NULL; g = g->next)
        if (g->timer != NULL) {
            g->timer->t = NULL;
            uv_close((uv_handle_t *)&g->timer->timer, on_timer_closed);
            g->timer = NULL;
        }
}

void shoal_triggers_destroy(shoal_triggers_t *t)
{
    if (t == NULL)
        return;
    while (t->list != NULL) {
        trig_t *g = t->list;
        t->list = g->next;
        if (g->timer != NULL) { /* never armed on a running loop: plain free is not safe */
            g->timer->t = NULL;
            uv_close((uv_handle_t *)&g->timer->timer, on_timer_closed);
            g->timer = NULL;
        }
        free(g->doc);
        free(g);
    }
    shoal_json_free(&t->meta);
    free(t);
}

int shoal_triggers_put(shoal_triggers_t *t, const char *name, const char *body, size_t len,
                       shoal_json_t *out, char *err, size_t errlen, shoal_triggers_done_cb done,
                       void *opaque)
{
    trig_t *g = malloc(sizeof(*g)), *old, **pp;
    int rc;

    if (g == NULL) {
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    if ((rc = parse_doc(t, name, body, len, g, 1, err, errlen)) != 0) {
        free(g);
        return rc;
    }
    if ((g->doc = malloc(len + 1)) == NULL) {
        free(g);
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    memcpy(g->doc, body, len);
    g->doc[len] = '\0';
    g->owner = t;
    g->created_ms = shoal_util_wall_ms();
    if (write_op(t, SHOAL_STORE_TRIGGER_PUT, g, name, done, opaque) < 0) {
        free(g->doc);
        free(g);
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    old = find(t, name);
    for (pp = &t->list; *pp != NULL; pp = &(*pp)->next)
        if (*pp == old) {
            *pp = old->next;
            trig_free(old);
            break;
        }
    g->next = t->list;
    t->list = g;
    if (g->type == T_TIMER && !t->shutdown)
        start_timer(t, g, 0);
    trig_json(g, out);
    return old ? 200 : 201;
}

int shoal_triggers_delete(shoal_triggers_t *t, const char *name, shoal_triggers_done_cb done,
                          void *opaque)
{
    trig_t *g = find(t, name);

    if (g == NULL)
        return -ENOENT;
    if (write_op(t, SHOAL_STORE_TRIGGER_DEL, NULL, name, done, opaque) < 0)
        return -ENOMEM;
    for (trig_t **pp = &t->list; *pp != NULL; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            break;
        }
    trig_free(g);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(trig_t *const *)a)->name, (*(trig_t *const *)b)->name);
}

void shoal_triggers_list_json(shoal_triggers_t *t, shoal_json_t *out)
{
    size_t n = 0, i = 0;
    trig_t **v;

    for (trig_t *g = t->list; g != NULL; g = g->next)
        n++;
    v = malloc((n ? n : 1) * sizeof(*v));
    shoal_json_lit(out, "{\"triggers\":[");
    if (v != NULL) {
        for (trig_t *g = t->list; g != NULL; g = g->next)
            v[i++] = g;
        qsort(v, n, sizeof(*v), by_name);
        for (i = 0; i < n; i++) {
            if (i)
                shoal_json_lit(out, ",");
            trig_json(v[i], out);
        }
        free(v);
    }
    shoal_json_lit(out, "]}");
}

const char *shoal_triggers_route(shoal_triggers_t *t, const char *path, size_t len,
                                 const char *method, size_t mlen, int *method_ok, char *allow,
                                 size_t allowlen, const char **trigger)
{
    for (trig_t *g = t->list; g != NULL; g = g->next) {
        if (g->type != T_HTTP || strlen(g->path) != len || memcmp(g->path, path, len) != 0)
            continue;
        *method_ok = g->nmethods == 0;
        allow[0] = '\0';
        for (int i = 0; i < g->nmethods; i++) {
            size_t al = strlen(allow);
            if (strlen(g->methods[i]) == mlen && memcmp(g->methods[i], method, mlen) == 0)
                *method_ok = 1;
            snprintf(allow + al, allowlen - al, "%s%s", i ? ", " : "", g->methods[i]);
        }
        *trigger = g->name;
        return g->function;
    }
    return NULL;
}

typedef struct {
    uint32_t remaining;
    int err;
    shoal_triggers_done_cb done;
    void *opaque;
} pub_t;

static void on_delivery_stored(void *opaque, int err)
{
    pub_t *p = opaque;

    if (err < 0 && p->err == 0)
        p->err = err;
    if (--p->remaining == 0) {
        p->done(p->opaque, p->err);
        free(p);
    }
}

int shoal_triggers_publish(shoal_triggers_t *t, const char *topic, const char *id, const void *body,
                           size_t len, uint32_t *deliveries, shoal_triggers_done_cb done,
                           void *opaque)
{
    uint32_t n = 0;
    pub_t *p;
    char lane[160];

    (void)id;
    for (trig_t *g = t->list; g != NULL; g = g->next)
        if (g->type == T_TOPIC && strcmp(g->topic, topic) == 0)
            n++;
    *deliveries = n;
    if (n == 0)
        return 1;
    if (!shoal_events_room(t->ev, n, (size_t)n * len))
        return -EAGAIN;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return -ENOMEM;
    p->remaining = n + 1; /* one for ourselves while submitting */
    p->done = done;
    p->opaque = opaque;
    for (trig_t *g = t->list; g != NULL; g = g->next) {
        if (g->type != T_TOPIC || strcmp(g->topic, topic) != 0)
            continue;
        snprintf(lane, sizeof(lane), "topic:%s/%s", topic, g->name);
        int err = submit_event(t, g, topic, body, len, lane, on_delivery_stored, p);
        if (err < 0) {
            p->err = err;
            p->remaining--;
        }
    }
    if (--p->remaining == 0) {
        int err = p->err;
        free(p);
        return err < 0 ? err : -EIO;
    }
    return 0;
}
