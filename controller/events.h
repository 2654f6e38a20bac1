/*
 * events - the asynchronous invocation runner: accepting, running, retrying, dead-lettering and
 * expiring async invocations, on top of store.h (durability) and sched.h (execution).
 *
 * Life of an async invocation:
 *   accepted   shoal_events_submit hands an INSERT to the store; its callback (the 202) runs only
 *              once the row is committed. Past max_queued invocations (or max_bytes of inputs
 *              held in memory) it is refused with -EAGAIN (HTTP 429) without touching the store.
 *   queued     in memory, oldest first. At most `concurrency` async invocations are dispatched to
 *              the scheduler at once, and none while the scheduler has synchronous invocations
 *              waiting for capacity: async work fills idle capacity and never starves sync calls.
 *   running    dispatched; a START (state running, attempts) is written without waiting for it.
 *   final      succeeded (output kept, bounded by the body limit like any answer), failed (the
 *              function's own error, retries not configured), dead (every attempt allowed was
 *              used: platform failures - worker lost, instance crashed, no workers - are retried
 *              twice, a function's error or timeout `retries` times when deployed with retries=N;
 *              the backoff doubles from backoff_ms). The FINISH write is conditional on the row
 *              not being final yet, so a row is finalised at most once.
 * Lanes: an invocation may name a lane (topic deliveries use "topic/function"); within a lane one
 * invocation runs at a time, in acceptance order, retries included, so a topic's events reach each
 * subscriber in publication order.
 *
 * Restarts: at create, every stored invocation that is not final (queued, or running when the
 * controller stopped or crashed) is queued again in its original order, and will reach exactly one
 * final state. An invocation answered shutting_down while the controller stops is left as it is in
 * the store for the same reason.
 *
 * Retention: final invocations older than retention_ms are deleted by a periodic prune.
 *
 * Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_EVENTS_H
#define SHOAL_CONTROLLER_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "controller/sched.h"
#include "controller/store.h"

typedef struct shoal_events shoal_events_t;

typedef struct {
    shoal_sched_t *sched;  /* must outlive the runner */
    shoal_store_t *store;  /* must outlive the runner */
    uint32_t concurrency;  /* async invocations dispatched at once; 0 means 32 */
    uint32_t max_queued;   /* accepted and not final; 0 means 100000 */
    uint64_t max_bytes;    /* inputs held in memory; 0 means 1 GiB */
    uint64_t retention_ms; /* keep final invocations this long; 0 means 24 h */
    uint32_t backoff_ms;   /* first retry delay, doubling; 0 means 200 */
} shoal_events_opts_t;

/* Called once the invocation is durably stored (err 0) or could not be (-errno). */
typedef void (*shoal_events_accept_cb)(void *opaque, int err);

typedef struct {
    const char *function; /* name of a live function */
    const char *id;       /* 32 hex digits */
    const char *meta;     /* meta JSON object; copied */
    size_t meta_len;
    const void *input; /* copied */
    size_t input_len;
    const char *trigger; /* NULL or the trigger that caused it */
    const char *lane;    /* NULL or an ordering lane */
    shoal_events_accept_cb cb;
    void *opaque;
} shoal_events_req_t;

/* Creates the runner and queues again every stored invocation that is not final. */
int shoal_events_create(uv_loop_t *loop, const shoal_events_opts_t *o, shoal_events_t **out);
/* Accepts an invocation: 0 (cb will run once), -EAGAIN (too many queued), -ENOMEM,
 * -ESHUTDOWN. */
int shoal_events_submit(shoal_events_t *ev, const shoal_events_req_t *r);
/* Room for n more invocations? */
int shoal_events_room(const shoal_events_t *ev, size_t n, size_t bytes);

/* The retries a function was deployed with (0 by default). set: from a deploy with retries=N, or
 * -1 when the function is deleted; stored durably. */
int shoal_events_retries(const shoal_events_t *ev, const char *function);
void shoal_events_set_retries(shoal_events_t *ev, const char *function, int retries);

typedef struct {
    uint32_t queued, running;
    uint64_t accepted, succeeded, failed, dead, retried;
} shoal_events_stats_t;
void shoal_events_stats(const shoal_events_t *ev, shoal_events_stats_t *st);
/* Appends Prometheus lines for the runner and the store (commits, fsync seconds). */
void shoal_events_metrics(shoal_events_t *ev, shoal_json_t *j);

shoal_store_t *shoal_events_store(const shoal_events_t *ev);
shoal_sched_t *shoal_events_sched(const shoal_events_t *ev);

/* Stops dispatching and the timers; invocations in flight are left to the scheduler's shutdown
 * (their rows stay not final and run again at the next start). */
void shoal_events_shutdown(shoal_events_t *ev);
/* Frees everything; call after the loop stopped and shoal_store_close ran. */
void shoal_events_destroy(shoal_events_t *ev);

#endif
