/*
 * store - the durable store of asynchronous invocations, triggers and per-function retry counts:
 * <home>/events.db (SQLite, WAL, synchronous=FULL, so a commit returns after the WAL is fsynced).
 *
 * Writes are group-committed. The loop thread submits write operations; one writer thread takes
 * every operation pending, waits at most a short window (--group-commit-us) for more while the
 * batch is small, runs them all in one transaction and commits (one fsync for the lot), then hands
 * the batch back to the loop through a uv_async, where each operation's callback runs with 0 or a
 * negative errno. So an operation's callback never runs before its data is durable: the 202 of an
 * async invocation is sent from that callback.
 *
 * Reads (one invocation, a listing, an output, start-up loading) use a second connection on the
 * loop thread; in WAL mode they never wait for the writer and see every committed batch.
 *
 * A final state is written with "... WHERE state IN (queued, running)", so a row reaches at most
 * one final state whatever happens around it; shoal_store_op_t.changed tells whether it did.
 *
 * Loop thread only, except the writer thread inside.
 */
#ifndef SHOAL_CONTROLLER_STORE_H
#define SHOAL_CONTROLLER_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/json.h"

typedef enum {
    SHOAL_INV_QUEUED = 0,
    SHOAL_INV_RUNNING = 1,
    SHOAL_INV_SUCCEEDED = 2,
    SHOAL_INV_FAILED = 3,
    SHOAL_INV_DEAD = 4,
} shoal_inv_state_t;

/* "queued", "running", ...; and back (-1 when unknown). */
const char *shoal_store_state_name(int state);
int shoal_store_state_parse(const char *s, size_t len);

typedef enum {
    SHOAL_STORE_INSERT,      /* a new queued invocation */
    SHOAL_STORE_START,       /* state running, attempts */
    SHOAL_STORE_REQUEUE,     /* state queued, attempts, not_before_ms, error */
    SHOAL_STORE_FINISH,      /* final state, attempts, finished_ms, error, output, headers */
    SHOAL_STORE_TRIGGER_PUT, /* name, doc (JSON), fired_ms */
    SHOAL_STORE_TRIGGER_DEL, /* name */
    SHOAL_STORE_FIRED,       /* trigger name fired at fired_ms */
    SHOAL_STORE_RETRIES,     /* function name's retries (-1 deletes) */
    SHOAL_STORE_PRUNE,       /* remove final invocations finished before finished_ms */
} shoal_store_kind_t;

typedef struct shoal_store_op shoal_store_op_t;
typedef void (*shoal_store_cb)(shoal_store_op_t *op, int err);

/* One write. The submitter owns the op and every buffer it points to until cb runs (on the loop
 * thread); cb may free it. */
struct shoal_store_op {
    shoal_store_kind_t kind;
    const char *id;   /* invocation id (INSERT .. FINISH) */
    const char *name; /* function (INSERT), trigger (TRIGGER_*, FIRED) or function (RETRIES) */
    const char *lane; /* INSERT: ordering lane ("" none) */
    const char *trigger;
    const char *meta; /* INSERT: the invocation meta JSON */
    size_t meta_len;
    const void *data; /* INSERT input, FINISH output, TRIGGER_PUT doc */
    size_t len;
    const char *headers; /* FINISH: output headers JSON or NULL */
    const char *error;   /* REQUEUE/FINISH: error message or NULL */
    int state;           /* FINISH */
    int64_t value;       /* START/REQUEUE/FINISH attempts; RETRIES count */
    uint64_t created_ms, finished_ms, not_before_ms, fired_ms;
    int changed; /* set before cb: rows the statement changed */
    shoal_store_cb cb;
    void *opaque;
    shoal_store_op_t *next; /* private */
    int err;                /* private */
};

/* A stored invocation as read back. Strings are malloc'd; free with shoal_store_inv_free. */
typedef struct {
    char id[33];
    char function[64];
    char lane[160];
    char trigger[64];
    int state;
    uint32_t attempts;
    uint64_t seq, created_ms, finished_ms, not_before_ms;
    char *error;
    char *meta;
    size_t meta_len;
    void *input;
    size_t input_len;
} shoal_store_inv_t;
void shoal_store_inv_free(shoal_store_inv_t *inv);

typedef struct {
    uint64_t commits;   /* transactions committed */
    uint64_t ops;       /* operations in them */
    uint64_t commit_ns; /* time spent in COMMIT (the WAL fsync) */
    uint64_t max_batch; /* largest batch */
} shoal_store_stats_t;

typedef struct shoal_store shoal_store_t;

/* Opens <home>/events.db (creating it), starts the writer thread. window_us: group-commit
 * window (0: none). */
int shoal_store_open(uv_loop_t *loop, const char *home, uint32_t window_us, shoal_store_t **out);
/* Waits for every submitted op to be committed and its callback run, stops the writer and
 * closes. Runs the loop's pending callbacks itself, so call it when the loop is not running. */
void shoal_store_close(shoal_store_t *s);
/* Queues a write; its callback runs later on the loop thread (never inside this call). */
void shoal_store_submit(shoal_store_t *s, shoal_store_op_t *op);
/* Operations submitted whose callbacks have not run yet. */
size_t shoal_store_pending(const shoal_store_t *s);
void shoal_store_stats(shoal_store_t *s, shoal_store_stats_t *st);

/* Reads one invocation (without input unless with_input); -ENOENT if unknown. */
int shoal_store_get(shoal_store_t *s, const char *id, int with_input, shoal_store_inv_t *out);
/* The output, its headers JSON and error of a final invocation: malloc'd (NULL when none), or
 * -ENOENT. *state is its state. */
int shoal_store_output(shoal_store_t *s, const char *id, int *state, void **data, size_t *len,
                       char **headers);
/* Appends {"invocations":[...]} newest first; function/state filters when not NULL/-1. */
int shoal_store_list_json(shoal_store_t *s, const char *function, int state, uint32_t limit,
                          shoal_json_t *j);
/* Appends one invocation object. */
void shoal_store_inv_json(const shoal_store_inv_t *inv, shoal_json_t *j);
/* Every invocation not in a final state, oldest first, with input: malloc'd array. */
int shoal_store_load_pending(shoal_store_t *s, shoal_store_inv_t **out, size_t *n);

typedef void (*shoal_store_trigger_fn)(void *opaque, const char *name, const char *doc,
                                       uint64_t fired_ms, uint64_t created_ms);
typedef void (*shoal_store_retries_fn)(void *opaque, const char *name, int retries);
/* Calls fn for every stored trigger / retry count. */
int shoal_store_load_triggers(shoal_store_t *s, shoal_store_trigger_fn fn, void *opaque);
int shoal_store_load_retries(shoal_store_t *s, shoal_store_retries_fn fn, void *opaque);

#endif
