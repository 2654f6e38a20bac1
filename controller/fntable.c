/*
 * fntable - see fntable.h. `slots` is the hash index (pointers into `ents`, NULL when empty);
 * `ents` keeps every entry in insertion order for iteration. Nothing is ever removed, so the
 * probing needs no tombstone markers of its own.
 */
#include "fntable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controller/api.h"
#include "controller/logs.h"

struct shoal_fntable {
    shoal_fnent_t **slots;
    size_t nslots; /* power of two */
    shoal_fnent_t **ents;
    size_t n, cap;
    size_t live;
};

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

shoal_fntable_t *shoal_fntable_create(void)
{
    shoal_fntable_t *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return NULL;
    t->nslots = 64;
    if ((t->slots = calloc(t->nslots, sizeof(*t->slots))) == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void shoal_fntable_destroy(shoal_fntable_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++) {
        shoal_json_free(&t->ents[i]->json);
        shoal_logs_destroy(t->ents[i]->logs);
        free(t->ents[i]);
    }
    free(t->ents);
    free(t->slots);
    free(t);
}

shoal_fnent_t *shoal_fntable_find(shoal_fntable_t *t, const char *name, size_t len)
{
    size_t mask = t->nslots - 1, i = hash(name, len) & mask;
    shoal_fnent_t *e;

    if (len > SHOAL_NAME_MAX)
        return NULL;
    while ((e = t->slots[i]) != NULL) {
        if (strncmp(e->fn.name, name, len) == 0 && e->fn.name[len] == '\0')
            return e;
        i = (i + 1) & mask;
    }
    return NULL;
}

static void place(shoal_fnent_t **slots, size_t nslots, shoal_fnent_t *e)
{
    size_t mask = nslots - 1, i = hash(e->fn.name, strlen(e->fn.name)) & mask;
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = e;
}

static int insert(shoal_fntable_t *t, shoal_fnent_t *e)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        shoal_fnent_t **ne = realloc(t->ents, cap * sizeof(*ne));
        if (ne == NULL)
            return -ENOMEM;
        t->ents = ne;
        t->cap = cap;
    }
    if ((t->n + 1) * 2 > t->nslots) {
        size_t nslots = t->nslots * 2;
        shoal_fnent_t **ns = calloc(nslots, sizeof(*ns));
        if (ns == NULL)
            return -ENOMEM;
        for (size_t i = 0; i < t->n; i++)
            place(ns, nslots, t->ents[i]);
        free(t->slots);
        t->slots = ns;
        t->nslots = nslots;
    }
    t->ents[t->n++] = e;
    place(t->slots, t->nslots, e);
    return 0;
}

/* Re-renders the frames' function object; on allocation failure the json is left empty, which
 * the scheduler treats as "cannot dispatch" rather than sending a broken frame. */
static void render(shoal_fnent_t *e)
{
    shoal_json_reset(&e->json);
    if (!e->deleted)
        shoal_api_fn_json(&e->json, &e->fn, 0);
    if (shoal_json_error(&e->json) < 0)
        shoal_json_free(&e->json);
}

int shoal_fntable_apply(shoal_fntable_t *t, const shoal_fn_t *fn, int deleted, shoal_fnent_t **out)
{
    shoal_fnent_t *e = shoal_fntable_find(t, fn->name, strlen(fn->name));

    if (e == NULL) {
        if ((e = calloc(1, sizeof(*e))) == NULL)
            return -ENOMEM;
        e->fn = *fn;
        e->deleted = deleted;
        shoal_json_init(&e->json);
        if (insert(t, e) < 0) {
            free(e);
            return -ENOMEM;
        }
        if (!deleted)
            t->live++;
        render(e);
        *out = e;
        return 1;
    }
    *out = e;
    if (fn->version > e->fn.version) {
        if (e->deleted && !deleted)
            t->live++;
        else if (!e->deleted && deleted)
            t->live--;
        e->fn = *fn;
        e->deleted = deleted;
    } else if (fn->version == e->fn.version && deleted && !e->deleted) {
        e->deleted = 1;
        e->fn.updated_ms = fn->updated_ms;
        t->live--;
    } else {
        return 0;
    }
    if (e->deleted) {
        /* A name deployed again later starts with no logs of the deleted function's. */
        shoal_logs_destroy(e->logs);
        e->logs = NULL;
    }
    render(e);
    return 1;
}

size_t shoal_fntable_count(const shoal_fntable_t *t)
{
    return t->n;
}

shoal_fnent_t *shoal_fntable_at(const shoal_fntable_t *t, size_t i)
{
    return i < t->n ? t->ents[i] : NULL;
}

size_t shoal_fntable_live(const shoal_fntable_t *t)
{
    return t->live;
}

static int by_name(const void *a, const void *b)
{
    const shoal_fnent_t *x = *(shoal_fnent_t *const *)a, *y = *(shoal_fnent_t *const *)b;
    return strcmp(x->fn.name, y->fn.name);
}

int shoal_fntable_sorted(const shoal_fntable_t *t, shoal_fnent_t ***out, size_t *n)
{
    shoal_fnent_t **v = NULL;
    size_t k = 0;

    if (t->live > 0 && (v = malloc(t->live * sizeof(*v))) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->n; i++)
        if (!t->ents[i]->deleted)
            v[k++] = t->ents[i];
    if (k > 1)
        qsort(v, k, sizeof(*v), by_name);
    *out = v;
    *n = k;
    return 0;
}
