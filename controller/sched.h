/*
 * sched - the scheduler: worker connections, the in-memory function table, and every invocation
 * from the moment it is accepted until it is answered.
 *
 * Workers. A worker connects to --worker-listen and speaks transport/frame.h. After HELLO it gets
 * WELCOME with the whole function table and becomes ready; from then on it is sent FUNC for every
 * deploy and delete, INVOKE for work; it answers RESULT, asks FETCH for artifacts it lacks, CALL
 * for shoal_call targets it cannot serve locally, and sends STATUS at least every second. A worker
 * silent for 10 s, one that sends a malformed frame (answered with ERROR), or one that does not
 * acknowledge a FUNC within 2 s is disconnected; every invocation in flight on a lost worker is
 * answered worker_lost at once.
 *
 * Placement of an invocation of function F, first match wins:
 *   1. a ready worker with an idle warm instance of F's current version: its last STATUS said it
 *      had `warm` instances of F and we have fewer than that in flight there;
 *   2. the least-loaded ready worker (in-flight / slots) with a free slot;
 *   in both cases only where F has fewer than max_instances in flight (max_instances bounds
 *   instances per worker, like the worker's pool), and not behind a write backlog;
 *   3. else the FIFO queue (at most queue_max; beyond it the invocation is refused: HTTP 429).
 * Whenever capacity appears (a result, a new worker, a STATUS) the queue is drained in order,
 * skipping entries that still cannot be placed. A worker that refuses an invocation as overloaded
 * (its count of free instances and ours can differ for a moment) gets it back at the head of the
 * queue, to be sent again (at most 16 times, within its deadline), and is given nothing more
 * until it answers something else or sends STATUS. For that, an invocation's input stays
 * referenced until it ends. With no ready worker at all, an invocation waits
 * at most no_worker_wait_ms (5 s) for one and then fails no_workers.
 *
 * Groups. An invocation with group = N > 1 (HTTP ?group=N, or a CALL with "group") runs as N
 * instances, ranks 0..N-1, and is scheduled as one unit, all or nothing: it is dispatched only when
 * one worker has N free ranks right now (slots minus busy, where busy counts every rank of every
 * group in flight until its single RESULT, and fewer than max_instances of the function after
 * them), as one INVOKE carrying "group" (frame.h); the worker with the most free slots is
 * filled first. A group invoked with spread (?spread=1) or one that no single worker can ever
 * hold is split over several workers that announced a peer address instead (place_split): all its
 * ranks are placed at once on the workers that can take them now (round-robin with spread, else
 * the ones with the most room first), and it runs as one part per node, each an INVOKE of that
 * node's ranks with the node map (frame.h); it answers when every part did (rank 0's output, or
 * the most telling failure).
 * Nothing is ever reserved rank by rank, so no group can hold part of the cluster while it waits
 * for the rest. A waiting group is kept from starving by a soft reservation: the oldest queued
 * group that some worker could ever host claims the worker closest to having room for it, and no
 * invocation queued or arriving after it is placed there until it has been; the claim moves only
 * to a worker with strictly more room, so that room only grows. A group larger than the ready
 * workers can ever hold (each contributing min(slots, max_instances, SHOAL_ARENA_MAX_RANKS), summed
 * over the workers with a peer address when there are two or more, else the largest one) is
 * refused at once (-E2BIG: HTTP 400 group_too_large); with no worker ready it waits for one as
 * any invocation does. The worker's RESULT (rank 0's output, or the first failing rank's error)
 * answers the group like a plain invocation; a lost worker fails it worker_lost.
 *
 * Deadlines. An invocation's deadline is its arrival plus its timeout (the function's, or less
 * for a shoal_call whose caller has less left). The worker is told the time left and answers
 * timeout itself; the controller's own timer fires grace_ms (2 s) after the deadline as a
 * backstop. A queued invocation still waiting at its deadline fails timeout.
 *
 * Deploys. shoal_sched_publish updates the table and sends FUNC to every ready worker; its
 * callback runs once all of them acknowledged (or were disconnected for not doing so), so that the
 * HTTP answer to a deploy comes after every worker knows the new version. INVOKE frames name the
 * version (transport/invmeta.h), so a worker can never run a version other than the one
 * scheduled; FUNC precedes them on the same connection, so the worker's table has it.
 *
 * Costs. Invocation records are pooled with their timers and meta buffers, dispatch ids index the
 * pool directly (index plus a generation), and frames go out through conn.h's single-writev
 * path; INVOKE and RESULT metas are binary (transport/invmeta.h): a warm invocation allocates
 * nothing and parses no JSON in the steady state.
 *
 * Everything here runs on the loop thread.
 */
#ifndef SHOAL_CONTROLLER_SCHED_H
#define SHOAL_CONTROLLER_SCHED_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/api.h"
#include "controller/fntable.h"
#include "controller/json.h"
#include "controller/registry.h"

/* The most ranks a group may have (HTTP ?group=N and CALL "group"). */
#define SHOAL_SCHED_GROUP_MAX 1024

typedef struct shoal_sched shoal_sched_t;
typedef struct shoal_inv shoal_inv_t;
typedef struct shoal_sched_pub shoal_sched_pub_t;

typedef struct {
    uint32_t queue_max;         /* invocations waiting for capacity (--queue-max) */
    uint32_t max_payload;       /* largest frame payload accepted from a worker */
    size_t max_artifact;        /* largest artifact served to FETCH */
    uint64_t max_body;          /* largest input/output (--max-body), told to workers in WELCOME;
                                   0 leaves it out (workers then assume 64 MiB) */
    uint32_t no_worker_wait_ms; /* 0 means 5000 */
    uint32_t ack_timeout_ms;    /* 0 means 2000 */
    uint32_t heartbeat_ms;      /* silence after which a worker is dropped; 0 means 10000 */
    uint32_t grace_ms;          /* backstop after an invocation's deadline; 0 means 2000 */
    uint32_t max_depth;         /* shoal_call nesting; 0 means 16 */
    shoal_registry_t *registry; /* artifacts for FETCH; must outlive the scheduler */
    const char *cluster_key;    /* workers must send it as HELLO's "key" (frame.h), compared in
                                   constant time; must outlive the scheduler. NULL: no check
                                   (unit tests only) */
    const char *redis;          /* --redis as "IP:PORT" (resolved), or NULL: groups may ask for
                                   ?transport=redis only with it; must outlive the scheduler */
    size_t log_cap;             /* bytes of log lines kept per function (logs.h); 0 means
                                   SHOAL_LOGS_DEFAULT_CAP */
} shoal_sched_opts_t;

/* How an invocation ended, for its callback. Pointers are valid during the callback only. */
typedef struct {
    shoal_api_err_t code; /* SHOAL_API_OK when the function succeeded */
    int status;           /* the HTTP status to answer with */
    const char *message;  /* error message (not NUL-terminated); NULL when ok */
    size_t message_len;
    const uint8_t *data; /* the function's output when ok */
    size_t len;
    const uint8_t *headers;  /* the function's response headers when ok: a key/value list of */
    size_t headers_len;      /* names and values (transport/invmeta.h), unfiltered */
    const char *worker_meta; /* the worker's RESULT meta verbatim, NULL for our own errors */
    size_t worker_meta_len;
} shoal_inv_result_t;

typedef void (*shoal_inv_cb)(void *opaque, const shoal_inv_result_t *res);

typedef struct {
    shoal_fnent_t *fn; /* a live entry of shoal_sched_functions() */
    const char *id;    /* invocation id, 32 hex digits */
    const char *meta;  /* the request meta, copied: a JSON object of strings, or with meta_kv a */
    size_t meta_len;   /* transport/invmeta.h key/value list, as INVOKE carries it */
    int meta_kv;
    const void *input; /* borrowed: must stay valid until the callback or shoal_sched_cancel */
    size_t input_len;
    uint32_t depth;      /* shoal_call nesting; 0 for HTTP */
    uint32_t group;      /* ranks, 1..SHOAL_SCHED_GROUP_MAX; 0 or 1 is a plain invocation */
    uint32_t timeout_ms; /* 0: the function's timeout */
    int redis;           /* a group's collectives go through Redis (needs opts.redis) */
    int spread;          /* ?spread=1: a group's ranks round-robin over the nodes */
    shoal_inv_cb cb;
    void *opaque;
} shoal_inv_req_t;

typedef struct {
    uint32_t workers;                      /* ready workers */
    uint32_t slots;                        /* their slots in total */
    uint32_t queued;                       /* invocations waiting */
    uint32_t inflight;                     /* invocations dispatched (a group counts once) */
    uint32_t group_ranks;                  /* ranks of the groups dispatched */
    uint64_t groups;                       /* group invocations (N > 1) accepted, ever */
    uint32_t functions;                    /* live functions */
    uint64_t results[SHOAL_API_ERR_COUNT]; /* invocations answered, by outcome */
} shoal_sched_stats_t;

/* Appends one entry (key klen bytes, value vlen bytes) to a request meta key/value list as
 * shoal_inv_req_t.meta with meta_kv carries it (transport/invmeta.h); an entry holding a NUL or an
 * oversized key is left out. Any thread; j is the caller's. */
void shoal_sched_meta_put(shoal_json_t *j, const char *k, size_t klen, const char *v, size_t vlen);

/* Creates a scheduler on loop with an empty function table. */
int shoal_sched_create(uv_loop_t *loop, const shoal_sched_opts_t *o, shoal_sched_t **out);
/* Frees it; call after shoal_sched_shutdown once shoal_sched_idle() is true. */
void shoal_sched_destroy(shoal_sched_t *s);
/* Listens for workers on addr; 0 or a libuv error. */
int shoal_sched_listen(shoal_sched_t *s, const struct sockaddr *addr);
/* The port actually bound (useful with port 0), or -1. */
int shoal_sched_port(const shoal_sched_t *s);

/* Loads the registry's functions at start-up (before any worker connects). */
int shoal_sched_load(shoal_sched_t *s, const shoal_fn_t *fns, size_t n);
/* The function table (read-only for callers). */
shoal_fntable_t *shoal_sched_functions(shoal_sched_t *s);

/* Called once every ready worker acknowledged a published change. */
typedef void (*shoal_sched_pub_cb)(void *opaque);
/* Applies a deploy (deleted = 0) or delete to the table and tells every worker. Returns 1 when
 * there is nothing to wait for (no ready worker, or the change is older than the table's: cb will
 * not run), 0 when cb will run once all acknowledged (*out can cancel that), or -ENOMEM. */
int shoal_sched_publish(shoal_sched_t *s, const shoal_fn_t *fn, int deleted, shoal_sched_pub_cb cb,
                        void *opaque, shoal_sched_pub_t **out);
/* The publish callback will not run. */
void shoal_sched_publish_cancel(shoal_sched_pub_t *p);

/* Starts an invocation. On success *out identifies it and cb runs exactly once, later (never
 * from inside this call), unless cancelled. Errors (cb never runs): -ENOENT (function deleted),
 * -EAGAIN (queue full), -E2BIG (a group larger than the cluster can ever hold: see
 * shoal_sched_group_check), -EINVAL (group beyond SHOAL_SCHED_GROUP_MAX), -ESHUTDOWN, -ENOMEM. */
int shoal_sched_invoke(shoal_sched_t *s, const shoal_inv_req_t *r, shoal_inv_t **out);
/* The Redis server groups may use (opts.redis), or NULL when the controller has none. */
const char *shoal_sched_redis(const shoal_sched_t *s);
/* Whether the ready workers could ever hold a group of n ranks of fn: 0 when they can (or when no
 * worker is ready, as the group then waits for one), else -E2BIG with a message naming n and the
 * capacity in msg (when msg is not NULL). */
int shoal_sched_group_check(shoal_sched_t *s, shoal_fnent_t *fn, uint32_t n, char *msg, size_t len);
/* The caller lost interest (its client went away): cb will not run; a queued invocation is
 * dropped, a dispatched one runs to the end and its result is discarded. */
void shoal_sched_cancel(shoal_inv_t *inv);
/* Counts an invoke answered without reaching the scheduler (not found, bad query, ...). */
void shoal_sched_count(shoal_sched_t *s, shoal_api_err_t code);
/* A fresh invocation id (32 hex digits and a NUL). */
int shoal_sched_new_id(shoal_sched_t *s, char out[33]);

void shoal_sched_stats(const shoal_sched_t *s, shoal_sched_stats_t *st);
/* Appends {"workers":[...]}: every ready worker with its node, address, slots, load (group ranks
 * included, and apart) and the pools of its last STATUS. */
void shoal_sched_workers_json(const shoal_sched_t *s, shoal_json_t *j);

/* Begins shutdown: stops listening, answers every invocation shutting_down, completes pending
 * publishes, closes every worker connection and timer. */
void shoal_sched_shutdown(shoal_sched_t *s);
/* Whether, after shoal_sched_shutdown, every handle and artifact read has finished. */
int shoal_sched_idle(const shoal_sched_t *s);

#endif
