/*
 * pool - see pool.h for the life cycle.
 */
#include "pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int get_u64(const json_t *o, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -EINVAL;
    *out = (uint64_t)json_integer_value(v);
    return *out >= min && *out <= max ? 0 : -EINVAL;
}

int shoal_fn_from_json(const json_t *o, shoal_fn_t *fn)
{
    const char *name, *sha;
    uint64_t v;

    memset(fn, 0, sizeof(*fn));
    if (!json_is_object(o))
        return -EINVAL;
    name = json_string_value(json_object_get(o, "name"));
    sha = json_string_value(json_object_get(o, "sha256"));
    if (name == NULL || !shoal_util_name_valid(name) || sha == NULL || strlen(sha) != 64 ||
        !shoal_util_lower_hex(sha, 64))
        return -EINVAL;
    strcpy(fn->name, name);
    strcpy(fn->sha256, sha);
    if (get_u64(o, "version", 1, INT64_MAX, &fn->version) < 0)
        return -EINVAL;
    if (get_u64(o, "size", 0, UINT64_MAX, &fn->size) < 0)
        fn->size = 0;
    if (get_u64(o, "timeout_ms", 1, 900000, &v) < 0)
        return -EINVAL;
    fn->timeout_ms = (uint32_t)v;
    if (get_u64(o, "memory_mb", 16, 16384, &v) < 0)
        return -EINVAL;
    fn->memory_mb = (uint32_t)v;
    if (get_u64(o, "min_warm", 0, 64, &v) < 0)
        v = 0;
    fn->min_warm = (uint32_t)v;
    if (get_u64(o, "max_instances", 1, 1024, &v) < 0)
        v = 64;
    fn->max_instances = (uint32_t)v;
    if (fn->min_warm > fn->max_instances)
        fn->min_warm = fn->max_instances;
    return 0;
}

void shoal_pools_init(shoal_pools_t *p, unsigned slots)
{
    memset(p, 0, sizeof(*p));
    p->slots = slots;
}

void shoal_pools_destroy(shoal_pools_t *p)
{
    while (p->pools != NULL) {
        shoal_pool_t *next = p->pools->next;
        free(p->pools);
        p->pools = next;
    }
    memset(p, 0, sizeof(*p));
}

shoal_pool_t *shoal_pools_current(shoal_pools_t *p, const char *name)
{
    shoal_pool_t *pool;

    for (pool = p->pools; pool != NULL; pool = pool->next)
        if (pool->current && strcmp(pool->fn.name, name) == 0)
            return pool;
    return NULL;
}

shoal_pool_t *shoal_pools_find(shoal_pools_t *p, const char *name, uint64_t version)
{
    shoal_pool_t *pool;

    for (pool = p->pools; pool != NULL; pool = pool->next)
        if (pool->fn.version == version && strcmp(pool->fn.name, name) == 0)
            return pool;
    return NULL;
}

shoal_pool_t *shoal_pools_update(shoal_pools_t *p, const shoal_fn_t *fn)
{
    shoal_pool_t *cur = shoal_pools_current(p, fn->name), *pool;

    pool = shoal_pools_find(p, fn->name, fn->version);
    if (pool != NULL && strcmp(pool->fn.sha256, fn->sha256) != 0) {
        /* Same version, other code: the old pool can never serve again. */
        pool->current = 0;
        pool->fn.version = 0;
        pool = NULL;
        cur = shoal_pools_current(p, fn->name);
    }
    if (pool == NULL) {
        if ((pool = calloc(1, sizeof(*pool))) == NULL)
            return NULL;
        pool->next = p->pools;
        if (p->pools != NULL)
            p->pools->prev = pool;
        p->pools = pool;
    }
    pool->fn = *fn;
    if (cur == NULL || cur == pool || cur->fn.version < fn->version) {
        if (cur != NULL && cur != pool)
            cur->current = 0;
        pool->current = 1;
    }
    return pool;
}

void shoal_pools_delete(shoal_pools_t *p, const char *name)
{
    shoal_pool_t *pool;

    for (pool = p->pools; pool != NULL; pool = pool->next)
        if (strcmp(pool->fn.name, name) == 0)
            pool->current = 0;
}

unsigned shoal_pool_size(const shoal_pool_t *pool)
{
    return pool->starting + pool->idle + pool->busy;
}

void shoal_pools_gc(shoal_pools_t *p)
{
    shoal_pool_t *pool = p->pools, *next;

    for (; pool != NULL; pool = next) {
        next = pool->next;
        if (pool->current || pool->members != NULL)
            continue;
        if (pool->prev != NULL)
            pool->prev->next = pool->next;
        else
            p->pools = pool->next;
        if (pool->next != NULL)
            pool->next->prev = pool->prev;
        free(pool);
    }
}

/* ---- the idle lists ---- */

static void idle_link(shoal_pools_t *p, shoal_pool_entry_t *e)
{
    shoal_pool_t *pool = e->pool;

    e->idle_prev = NULL;
    e->idle_next = pool->idle_head;
    if (pool->idle_head != NULL)
        pool->idle_head->idle_prev = e;
    pool->idle_head = e;
    e->lru_prev = NULL;
    e->lru_next = p->lru_head;
    if (p->lru_head != NULL)
        p->lru_head->lru_prev = e;
    else
        p->lru_tail = e;
    p->lru_head = e;
}

static void idle_unlink(shoal_pools_t *p, shoal_pool_entry_t *e)
{
    shoal_pool_t *pool = e->pool;

    if (e->idle_prev != NULL)
        e->idle_prev->idle_next = e->idle_next;
    else
        pool->idle_head = e->idle_next;
    if (e->idle_next != NULL)
        e->idle_next->idle_prev = e->idle_prev;
    if (e->lru_prev != NULL)
        e->lru_prev->lru_next = e->lru_next;
    else
        p->lru_head = e->lru_next;
    if (e->lru_next != NULL)
        e->lru_next->lru_prev = e->lru_prev;
    else
        p->lru_tail = e->lru_prev;
    e->idle_prev = e->idle_next = e->lru_prev = e->lru_next = NULL;
}

static unsigned *counter(shoal_pool_t *pool, shoal_entry_state s)
{
    switch (s) {
    case SHOAL_ENTRY_STARTING:
        return &pool->starting;
    case SHOAL_ENTRY_IDLE:
        return &pool->idle;
    case SHOAL_ENTRY_BUSY:
        break;
    }
    return &pool->busy;
}

void shoal_pool_add(shoal_pools_t *p, shoal_pool_t *pool, shoal_pool_entry_t *e,
                    shoal_entry_state state)
{
    memset(e, 0, sizeof(*e));
    e->pool = pool;
    e->state = state;
    e->next = pool->members;
    if (pool->members != NULL)
        pool->members->prev = e;
    pool->members = e;
    (*counter(pool, state))++;
    p->used++;
    if (state == SHOAL_ENTRY_IDLE)
        idle_link(p, e);
}

void shoal_pool_set_state(shoal_pools_t *p, shoal_pool_entry_t *e, shoal_entry_state state,
                          uint64_t now_ms)
{
    if (e->pool == NULL || e->state == state)
        return;
    if (e->state == SHOAL_ENTRY_IDLE)
        idle_unlink(p, e);
    (*counter(e->pool, e->state))--;
    e->state = state;
    (*counter(e->pool, state))++;
    if (state == SHOAL_ENTRY_IDLE) {
        e->last_used_ms = now_ms;
        idle_link(p, e);
    }
}

void shoal_pool_remove(shoal_pools_t *p, shoal_pool_entry_t *e)
{
    shoal_pool_t *pool = e->pool;

    if (pool == NULL)
        return;
    if (e->state == SHOAL_ENTRY_IDLE)
        idle_unlink(p, e);
    (*counter(pool, e->state))--;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        pool->members = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    p->used--;
    memset(e, 0, sizeof(*e));
}

shoal_pool_entry_t *shoal_pool_first_idle(shoal_pool_t *pool)
{
    return pool->idle_head;
}

int shoal_pool_can_grow(shoal_pools_t *p, shoal_pool_t *pool)
{
    return p->used < p->slots && shoal_pool_size(pool) < pool->fn.max_instances;
}

shoal_acq_result shoal_pool_acquire(shoal_pools_t *p, shoal_pool_t *pool, shoal_pool_entry_t **e)
{
    shoal_pool_entry_t *victim;

    *e = NULL;
    if (pool->idle_head != NULL) {
        *e = pool->idle_head;
        shoal_pool_set_state(p, *e, SHOAL_ENTRY_BUSY, 0);
        return SHOAL_ACQ_IDLE;
    }
    if (shoal_pool_size(pool) >= pool->fn.max_instances)
        return SHOAL_ACQ_FULL;
    if (p->used < p->slots)
        return SHOAL_ACQ_NEW;
    /* The node is full: the least recently used idle instance (of another pool, since ours has
     * none) makes room. */
    for (victim = p->lru_tail; victim != NULL; victim = victim->lru_prev) {
        if (victim->pool != pool) {
            *e = victim;
            return SHOAL_ACQ_EVICT;
        }
    }
    return SHOAL_ACQ_FULL;
}

shoal_pool_entry_t *shoal_pools_expired(shoal_pools_t *p, uint64_t now_ms, uint64_t keep_alive_ms)
{
    shoal_pool_entry_t *e;

    for (e = p->lru_tail; e != NULL; e = e->lru_prev) {
        if (now_ms - e->last_used_ms < keep_alive_ms)
            return NULL; /* the rest are younger */
        if (!e->pool->current || shoal_pool_size(e->pool) > e->pool->fn.min_warm)
            return e;
    }
    return NULL;
}

unsigned shoal_pool_deficit(shoal_pools_t *p, shoal_pool_t *pool)
{
    unsigned have = shoal_pool_size(pool), want, room;

    if (!pool->current || have >= pool->fn.min_warm)
        return 0;
    want = pool->fn.min_warm - have;
    room = p->used < p->slots ? p->slots - p->used : 0;
    if (want > room)
        want = room;
    if (have + want > pool->fn.max_instances)
        want = pool->fn.max_instances > have ? pool->fn.max_instances - have : 0;
    return want;
}
