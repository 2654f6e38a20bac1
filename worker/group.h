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
/* A spread group's deadline on a node whose ranks wait for other nodes' transfers is put off this
 * long, so that the node that holds the group up names the rank (within the arena's slack). */
#define SHOAL_GROUP_DEFER_MS 500
/* Cross-node transfers one rank may have in flight. */
#define SHOAL_GROUP_XFERS_MAX 256
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

/* A rank's XSEND or XRECV (type SHOAL_MSG_XSEND or SHOAL_MSG_XRECV), decoded: started on the
 * peer transport; the XDONE answer follows on the rank's down ring (at once for a bad request:
 * -EINVAL outside a spread group or for a bad node or range, -ECONNABORTED once the group failed,
 * -ENOBUFS past SHOAL_GROUP_XFERS_MAX in flight). */
void shoal_group_xfer(shoal_inst_t *inst, int type, const shoal_msg_xfer_t *m);
/* The peer transport is about to go away (the worker stops): spread groups fail and let go of
 * it. */
void shoal_group_peer_gone(shoal_worker_t *w);

/* The controller connection was lost: the groups it started are cancelled (their answers could
 * not be delivered). */
void shoal_group_conn_lost(shoal_worker_t *w);

/* The arena of a group that ended well is kept warm for the next group of the same function
 * and size on this node (fresh shared-memory pages cost a fault and a zeroing each, which
 * dominated large collectives): one per function, at most SHOAL_GROUP_SPARES in all, each keeping
 * at most SHOAL_GROUP_SPARE_KEEP bytes of data pages and a quarter of the function's memory limit
 * (kept pages stay charged to the instances that wrote them), for the worker's keep-alive. A kept
 * arena still holds the old group's bytes, so it is only handed to the same function (the same
 * tenant, whose warm instances keep their memory between invocations anyway). */
#define SHOAL_GROUP_SPARES 4
#define SHOAL_GROUP_SPARE_KEEP (512ull << 20)
/* Frees the kept arenas idle for longer than keep_ms (all of them when keep_ms is 0). */
void shoal_group_spares_expire(shoal_worker_t *w, uint64_t now_ms, uint64_t keep_ms);

#endif
