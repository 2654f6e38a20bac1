/*
 * pool - the bookkeeping of warm instances per function version, without any process work.
 *
 * A pool exists per (function, version). Exactly one pool per name is current: the version the
 * controller's table holds; older pools only drain (their idle instances retire at once, busy
 * ones when they finish) and are freed when empty. An instance is a pool entry in one of three
 * states: STARTING (a stem being specialised), IDLE (warm, waiting) or BUSY (running an
 * invocation). Every entry occupies one of the node's slots; stems that are not yet given to a
 * function do not.
 *
 * Choosing an instance for an invocation (shoal_pool_acquire): the most recently used idle entry
 * of the pool (its caches are warmest); else a new one if the pool is below max_instances and a
 * slot is free; else, if the node is full, the least recently used idle entry of any pool is
 * evicted to make room; else the node is overloaded and the controller queues the invocation.
 * Idle entries beyond a pool's min_warm retire after the keep-alive, oldest first.
 *
 * Used from the worker's loop thread only. The caller owns the entries (they are embedded in its
 * instances); the pools own nothing but themselves.
 */
#ifndef SHOAL_WORKER_POOL_H
#define SHOAL_WORKER_POOL_H

#include <jansson.h>
#include <stdint.h>

#include "common/util.h"

/* A function version as the controller describes it (frame.h's "function object"). */
typedef struct {
    char name[SHOAL_NAME_MAX + 1];
    uint64_t version;
    char sha256[65];
    uint64_t size;
    uint32_t timeout_ms;
    uint32_t memory_mb;
    uint32_t min_warm;
    uint32_t max_instances;
} shoal_fn_t;

/* Parses and validates a function object; -EINVAL naming nothing (the caller logs the JSON). */
int shoal_fn_from_json(const json_t *o, shoal_fn_t *fn);

typedef enum { SHOAL_ENTRY_STARTING = 1, SHOAL_ENTRY_IDLE, SHOAL_ENTRY_BUSY } shoal_entry_state;

typedef struct shoal_pool shoal_pool_t;
typedef struct shoal_pool_entry shoal_pool_entry_t;

struct shoal_pool_entry {
    shoal_pool_t *pool; /* NULL when in no pool */
    shoal_entry_state state;
    uint64_t last_used_ms;                     /* when it last became idle */
    shoal_pool_entry_t *prev, *next;           /* pool's members */
    shoal_pool_entry_t *idle_prev, *idle_next; /* pool's idle entries, most recent first */
    shoal_pool_entry_t *lru_prev, *lru_next;   /* node's idle entries, most recent first */
};

struct shoal_pool {
    shoal_fn_t fn;
    int current; /* the name's version in the table */
    unsigned starting, idle, busy;
    unsigned failures; /* failed specialisations since the last update: the worker does
                          not pre-warm a pool that cannot load */
    shoal_pool_entry_t *members;
    shoal_pool_entry_t *idle_head;
    shoal_pool_t *prev, *next;
};

typedef struct {
    unsigned slots; /* the node's limit on entries */
    unsigned used;  /* entries in all pools */
    shoal_pool_t *pools;
    shoal_pool_entry_t *lru_head, *lru_tail;
} shoal_pools_t;

typedef enum {
    SHOAL_ACQ_IDLE = 1, /* *e is an idle entry, now BUSY */
    SHOAL_ACQ_NEW,      /* start a new entry (shoal_pool_add) */
    SHOAL_ACQ_EVICT,    /* retire *e (an idle entry of another pool: shoal_pool_remove), then
                           start a new entry */
    SHOAL_ACQ_FULL      /* overloaded: no instance can be had now */
} shoal_acq_result;

void shoal_pools_init(shoal_pools_t *p, unsigned slots);
/* Frees every pool. Entries must have been removed (or are abandoned with their pool). */
void shoal_pools_destroy(shoal_pools_t *p);

/* The current pool of a name, or NULL. */
shoal_pool_t *shoal_pools_current(shoal_pools_t *p, const char *name);
/* The pool of one version (current or draining), or NULL. */
shoal_pool_t *shoal_pools_find(shoal_pools_t *p, const char *name, uint64_t version);
/* Makes fn the current version of its name, creating its pool; the name's other pools stop being
 * current (the caller retires their idle entries: shoal_pool_first_idle). For the current version
 * the limits are updated in place. A version older than the current one gets a draining pool.
 * NULL on allocation failure. */
shoal_pool_t *shoal_pools_update(shoal_pools_t *p, const shoal_fn_t *fn);
/* No version of name is current any more. */
void shoal_pools_delete(shoal_pools_t *p, const char *name);
/* Frees pools that are not current and have no entries. */
void shoal_pools_gc(shoal_pools_t *p);

/* Chooses an instance for one invocation of pool (see the file comment). */
shoal_acq_result shoal_pool_acquire(shoal_pools_t *p, shoal_pool_t *pool, shoal_pool_entry_t **e);
/* The pool's most recently used idle entry, without taking it; NULL if none. */
shoal_pool_entry_t *shoal_pool_first_idle(shoal_pool_t *pool);
/* Whether the node has a free slot and the pool is below max_instances. */
int shoal_pool_can_grow(shoal_pools_t *p, shoal_pool_t *pool);
/* Adds e to pool in state (uses a slot even past the limit: the caller checked). */
void shoal_pool_add(shoal_pools_t *p, shoal_pool_t *pool, shoal_pool_entry_t *e,
                    shoal_entry_state state);
/* Moves e to state; now_ms stamps an entry that becomes idle. */
void shoal_pool_set_state(shoal_pools_t *p, shoal_pool_entry_t *e, shoal_entry_state state,
                          uint64_t now_ms);
/* Takes e out of its pool and frees its slot; no-op for an entry in no pool. */
void shoal_pool_remove(shoal_pools_t *p, shoal_pool_entry_t *e);
/* The oldest idle entry that has been idle for keep_alive_ms or longer and may retire (its pool
 * is draining or keeps min_warm without it); NULL if none. */
shoal_pool_entry_t *shoal_pools_expired(shoal_pools_t *p, uint64_t now_ms, uint64_t keep_alive_ms);
/* How many entries to start so that pool holds min_warm, bounded by free slots and
 * max_instances; 0 for a draining pool. */
unsigned shoal_pool_deficit(shoal_pools_t *p, shoal_pool_t *pool);
/* Entries in the pool. */
unsigned shoal_pool_size(const shoal_pool_t *pool);

#endif
