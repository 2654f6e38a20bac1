/*
 * view - see view.h.
 */
#include "view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "table.h"

#define POOLS_MAX 1024

static json_t *list_of(json_t *root, const char *key)
{
    if (json_is_array(root))
        return root;
    root = json_object_get(root, key);
    return json_is_array(root) ? root : NULL;
}

/* A non-negative integer field, or -1 when absent. */
static long long num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? (long long)json_integer_value(v) : -1;
}

static const char *num_text(long long v, char *buf, size_t size)
{
    if (v < 0)
        return NULL;
    snprintf(buf, size, "%lld", v);
    return buf;
}

static char *render(shoal_cli_table_t *t)
{
    char *text = t != NULL ? shoal_cli_table_render(t) : NULL;
    shoal_cli_table_destroy(t);
    return text;
}

char *shoal_cli_view_functions(json_t *root)
{
    static const char *const hdr[] = {"NAME",   "VERSION",  "SIZE", "TIMEOUT",
                                      "MEMORY", "MIN_WARM", "MAX",  "UPDATED"};
    json_t *list = list_of(root, "functions"), *fn;
    shoal_cli_table_t *t;
    size_t i;

    if (list == NULL || (t = shoal_cli_table_create(8, hdr)) == NULL)
        return NULL;
    json_array_foreach(list, i, fn)
    {
        char ver[32], size[32], tmo[32], mem[32], mw[32], mx[32];
        long long v;
        const char *cells[8] = {NULL};

        cells[0] = json_string_value(json_object_get(fn, "name"));
        cells[1] = num_text(num(fn, "version"), ver, sizeof(ver));
        if ((v = num(fn, "size")) >= 0)
            cells[2] = shoal_cli_fmt_bytes((uint64_t)v, size, sizeof(size));
        if ((v = num(fn, "timeout_ms")) >= 0)
            cells[3] = shoal_cli_fmt_ms((uint64_t)v, tmo, sizeof(tmo));
        if ((v = num(fn, "memory_mb")) >= 0) {
            snprintf(mem, sizeof(mem), "%lld MiB", v);
            cells[4] = mem;
        }
        cells[5] = num_text(num(fn, "min_warm"), mw, sizeof(mw));
        cells[6] = num_text(num(fn, "max_instances"), mx, sizeof(mx));
        cells[7] = json_string_value(json_object_get(fn, "updated"));
        if (shoal_cli_table_add(t, cells) < 0) {
            shoal_cli_table_destroy(t);
            return NULL;
        }
    }
    return render(t);
}

/* "hello v3 (2 warm, 1 busy), upper v1 (1 warm)", or "-" for no pools. */
static void pools_text(json_t *pools, char *out, size_t size)
{
    size_t o = 0, i;
    json_t *p;

    out[0] = '\0';
    json_array_foreach(pools, i, p)
    {
        const char *fn = json_string_value(json_object_get(p, "function"));
        long long ver = num(p, "version"), warm = num(p, "warm"), busy = num(p, "busy");
        char v[32] = "", b[32] = "";
        int n;

        if (fn == NULL)
            continue;
        if (ver >= 0)
            snprintf(v, sizeof(v), " v%lld", ver);
        if (busy > 0)
            snprintf(b, sizeof(b), ", %lld busy", busy);
        n = snprintf(out + o, size - o, "%s%s%s (%lld warm%s)", o ? ", " : "", fn, v,
                     warm >= 0 ? warm : 0, b);
        if (n < 0 || (size_t)n >= size - o) {
            out[o] = '\0'; /* keep whole entries only */
            break;
        }
        o += (size_t)n;
    }
}

char *shoal_cli_view_workers(json_t *root)
{
    static const char *const hdr[] = {"NODE", "SLOTS", "BUSY", "STEMS", "POOLS"};
    json_t *list = list_of(root, "workers"), *w;
    shoal_cli_table_t *t;
    size_t i;

    if (list == NULL || (t = shoal_cli_table_create(5, hdr)) == NULL)
        return NULL;
    json_array_foreach(list, i, w)
    {
        char slots[32], busy[32], stems[32], pools[POOLS_MAX];
        const char *cells[5];

        pools_text(json_object_get(w, "pools"), pools, sizeof(pools));
        cells[0] = json_string_value(json_object_get(w, "node"));
        cells[1] = num_text(num(w, "slots"), slots, sizeof(slots));
        cells[2] = num_text(num(w, "busy"), busy, sizeof(busy));
        cells[3] = num_text(num(w, "stems"), stems, sizeof(stems));
        cells[4] = pools[0] ? pools : NULL;
        if (shoal_cli_table_add(t, cells) < 0) {
            shoal_cli_table_destroy(t);
            return NULL;
        }
    }
    return render(t);
}

static const char *str_or(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s != NULL ? s : "?";
}

/* What makes a trigger fire, in one cell: "POST,PUT /hooks/build", "every 1000ms",
 * "cron 0 * * * *", "topic uploads". Empty when the type is unknown. */
static void trigger_spec(json_t *tr, char *out, size_t size)
{
    const char *type = json_string_value(json_object_get(tr, "type"));
    json_t *methods = json_object_get(tr, "methods"), *m;
    size_t o = 0, i;

    out[0] = '\0';
    if (type == NULL)
        return;
    if (strcmp(type, "http") == 0) {
        json_array_foreach(methods, i, m)
        {
            int n = snprintf(out + o, size - o, "%s%s", o ? "," : "",
                             json_string_value(m) ? json_string_value(m) : "?");
            if (n < 0 || (size_t)n >= size - o)
                break;
            o += (size_t)n;
        }
        snprintf(out + o, size - o, "%s%s", o ? " " : "* ", str_or(tr, "path"));
    } else if (strcmp(type, "timer") == 0) {
        long long every = num(tr, "every_ms");
        if (every >= 0)
            snprintf(out, size, "every %lldms", every);
        else
            snprintf(out, size, "cron %s", str_or(tr, "cron"));
    } else if (strcmp(type, "topic") == 0) {
        snprintf(out, size, "topic %s", str_or(tr, "topic"));
    }
}

char *shoal_cli_view_triggers(json_t *root)
{
    static const char *const hdr[] = {"NAME", "FUNCTION", "TYPE", "ON", "LAST_FIRED", "NEXT_FIRE"};
    json_t *list = list_of(root, "triggers"), *tr;
    shoal_cli_table_t *t;
    size_t i;

    if (list == NULL || (t = shoal_cli_table_create(6, hdr)) == NULL)
        return NULL;
    json_array_foreach(list, i, tr)
    {
        char spec[1200];
        const char *cells[6];

        trigger_spec(tr, spec, sizeof(spec));
        cells[0] = json_string_value(json_object_get(tr, "name"));
        cells[1] = json_string_value(json_object_get(tr, "function"));
        cells[2] = json_string_value(json_object_get(tr, "type"));
        cells[3] = spec[0] ? spec : NULL;
        cells[4] = json_string_value(json_object_get(tr, "last_fired"));
        cells[5] = json_string_value(json_object_get(tr, "next_fire"));
        if (shoal_cli_table_add(t, cells) < 0) {
            shoal_cli_table_destroy(t);
            return NULL;
        }
    }
    return render(t);
}

char *shoal_cli_view_invocations(json_t *root)
{
    static const char *const hdr[] = {"ID",      "FUNCTION", "STATE", "ATTEMPTS",
                                      "CREATED", "FINISHED", "ERROR"};
    json_t *list = list_of(root, "invocations"), *inv;
    shoal_cli_table_t *t;
    size_t i;

    if (list == NULL || (t = shoal_cli_table_create(7, hdr)) == NULL)
        return NULL;
    json_array_foreach(list, i, inv)
    {
        char att[32], err[96];
        const char *cells[7], *e = json_string_value(json_object_get(inv, "error"));

        cells[0] = json_string_value(json_object_get(inv, "id"));
        cells[1] = json_string_value(json_object_get(inv, "function"));
        cells[2] = json_string_value(json_object_get(inv, "state"));
        cells[3] = num_text(num(inv, "attempts"), att, sizeof(att));
        cells[4] = json_string_value(json_object_get(inv, "created"));
        cells[5] = json_string_value(json_object_get(inv, "finished"));
        /* Errors can be long (a compiler's or a function's text): the table keeps a line. */
        cells[6] = e ? shoal_cli_fmt_line(e, strlen(e), err, sizeof(err)) : NULL;
        if (shoal_cli_table_add(t, cells) < 0) {
            shoal_cli_table_destroy(t);
            return NULL;
        }
    }
    return render(t);
}
