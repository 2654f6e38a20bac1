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
 * Reads that answer HTTP requests (one invocation, its output, a listing) run on reader threads,
 * each with its own connection (shoal_store_read), so the event loop never waits for SQLite:
 * a listing of 1000 rows or a cold page cache delays only that request. Start-up loading and the
 * synchronous getters use a further connection on the calling thread. In WAL mode readers never
 * wait for the writer and see every committed batch.
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
/* Waits for every submitted op to be committed and every read to be done, their callbacks run,
 * stops the writer and the readers and closes. Runs the loop's pending callbacks itself, so call it
 * when the loop is not running. */
void shoal_store_close(shoal_store_t *s);
/* Queues a write; its callback runs later on the loop thread (never inside this call). */
void shoal_store_submit(shoal_store_t *s, shoal_store_op_t *op);
/* Operations submitted whose callbacks have not run yet. */
size_t shoal_store_pending(const shoal_store_t *s);
void shoal_store_stats(shoal_store_t *s, shoal_store_stats_t *st);

/* Synchronous reads on the calling thread (start-up, tests): they block it on SQLite, so the
 * HTTP paths use shoal_store_read instead.
 * Reads one invocation (without input unless with_input); -ENOENT if unknown. */
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

typedef enum {
    SHOAL_STORE_READ_GET,    /* one invocation as JSON (shoal_store_inv_json) into json */
    SHOAL_STORE_READ_OUTPUT, /* the output, headers and state of one invocation */
    SHOAL_STORE_READ_LIST,   /* {"invocations":[...]} newest first into json */
} shoal_store_read_kind_t;

typedef struct shoal_store_read shoal_store_read_t;
typedef void (*shoal_store_read_cb)(shoal_store_read_t *r, int err);

/* One read, run on a reader thread. The submitter owns the struct until cb runs on the loop
 * thread (err 0, -ENOENT for an unknown id, or another -errno); what the read produced (json,
 * data, headers) belongs to the submitter then. Initialise json with shoal_json_init first. */
struct shoal_store_read {
    shoal_store_read_kind_t kind;
    char id[33];       /* GET, OUTPUT */
    char function[64]; /* LIST: "" for every function */
    int state;         /* LIST: the state filter, -1 for any; OUTPUT: set to the state */
    uint32_t limit;    /* LIST */
    shoal_json_t json; /* GET, LIST: the answer */
    void *data;        /* OUTPUT: malloc'd output (NULL when none) */
    size_t len;
    char *headers; /* OUTPUT: malloc'd headers JSON or NULL */
    shoal_store_read_cb cb;
    void *opaque;
    shoal_store_read_t *next; /* private */
    int err;                  /* private */
};
/* Queues a read for a reader thread; cb runs later on the loop thread (never inside this call).
 * Loop thread only. */
void shoal_store_read(shoal_store_t *s, shoal_store_read_t *r);

typedef void (*shoal_store_trigger_fn)(void *opaque, const char *name, const char *doc,
                                       uint64_t fired_ms, uint64_t created_ms);
typedef void (*shoal_store_retries_fn)(void *opaque, const char *name, int retries);
/* Calls fn for every stored trigger / retry count. */
int shoal_store_load_triggers(shoal_store_t *s, shoal_store_trigger_fn fn, void *opaque);
int shoal_store_load_retries(shoal_store_t *s, shoal_store_retries_fn fn, void *opaque);

#endif
