/*
 * group - same-node groups in the worker: N instances of one function that run one invocation
 * together as ranks 0..N-1 and exchange data through one shared arena (transport/arena.h).
 *
 * Life of a group: an INVOKE with "group" meta (frame.h) or a shoal_call_group (a CALL record
 * with group = N) -> all N instances are acquired or none (all-or-nothing, so that no group holds
 * half the node while it waits for the rest) -> one arena is created for the group, sized by
 * shoal_channel_group_data -> each rank gets the same input and meta; when an instance is READY
 * and the input is in, the worker sends it SHOAL_CTL_GROUP with the arena fd and then the INVOKE
 * record -> ranks end one by one: a rank other than 0 that succeeds goes back to its pool at once,
 * rank 0 keeps its output in its channel until every rank succeeded, then the group answers with
 * it (RESULT, or CALL_DONE for a local caller).
 *
 * Failure: the first failure (a rank's error, crash, too-large output, the group's deadline, a
 * lost controller connection) aborts the arena at once, so every rank blocked in a collective
 * returns an error; ranks that have not started are released; ranks still running get about a
 * second to return and are then killed. The answer is sent when no rank runs any more: the
 * failure of the rank that caused it, named ("rank 3 crashed: ..."). At the deadline the rank
 * named is the one that holds the others up: one that never started, else the one whose
 * collective progress (read from the arena, only as a hint for this message) is furthest behind.
 * When the group ends its arena is destroyed: nothing of it outlives it.
 *
 * Used from the worker's loop thread only.
 */
#ifndef SHOAL_WORKER_GROUP_H
#define SHOAL_WORKER_GROUP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/worker.h"

/* After a failure, how long running ranks get to return before they are killed. */
#define SHOAL_GROUP_GRACE_MS 1000
/* The arena's deadline (and each rank's own) comes this long after the worker's timeout, so that
 * at the timeout the worker, not a rank's wait, decides which rank to blame. */
#define SHOAL_GROUP_DEADLINE_SLACK_MS 1000
/* The longest group id kept (hex digits). */
#define SHOAL_GROUP_ID_MAX 64

/* An INVOKE whose meta j carries "group" (gj) for a function whose pool is pool: validates it,
 * takes the instances and creates the arena; then *dst is where the input goes and w->rx_inst is
 * rank 0, whose on_frame calls shoal_group_input_ready. On any failure the RESULT is sent here. */
void shoal_group_invoke(shoal_worker_t *w, const shoal_frame_hdr *hdr, const json_t *j,
                        const json_t *gj, shoal_pool_t *pool, size_t data_len, uint8_t **dst);
/* The INVOKE's input is in rank 0's input area: gives it to every rank and starts the ready ones.
 * NULL is a no-op. */
void shoal_group_input_ready(shoal_group_t *g);

/* shoal_call_group of n ranks from caller (input in its call area): runs here when this node can
 * host all n ranks of the current version now, else forwards a CALL with "group" to the
 * controller. The answer reaches the caller as CALL_DONE. */
void shoal_group_dispatch_call(shoal_worker_t *w, shoal_inst_t *caller, const char *function,
                               unsigned n, uint64_t in_off, uint64_t in_len);

/* Hooks for instance.c, for an instance whose inv.kind is SHOAL_INV_GROUP: */
/* Right before the INVOKE record with seq: sends the rank its arena. 0 or -errno. */
int shoal_group_start_rank(shoal_inst_t *inst, uint64_t seq);
/* The rank's DONE: ok, else kind and message. The group decides what becomes of the instance. */
void shoal_group_rank_done(shoal_inst_t *inst, int ok, const char *kind, const char *msg,
                           size_t msg_len, uint32_t status, const char *hdrs, size_t hdrs_len,
                           uint64_t out_len);
/* The rank failed without a DONE (crash, protocol violation, cannot start...); the caller kills
 * the instance right after. */
void shoal_group_rank_failed(shoal_inst_t *inst, const char *kind, const char *msg, size_t len);

/* The controller connection was lost: the groups it started are cancelled (their answers could
 * not be delivered). */
void shoal_group_conn_lost(shoal_worker_t *w);

#endif
