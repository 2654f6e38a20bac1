/*
 * lease - the worker's side of direct links (transport/link.h): which callee is leased to which
 * caller, and when the lease ends.
 *
 * Rules. A lease is offered when the worker served a shoal_call locally (instance B of function
 * F for caller A) and B finished it normally, so that A's later calls to F skip the worker. It is
 * made only if A's invocation is still running, A holds fewer than SHOAL_LEASE_PER_CALLER leases
 * and none for F, F's pool is current, and the pool can spare B (another idle instance, or room
 * to start one). A leased B is BUSY in its pool (STATUS stays truthful, nothing else is given to
 * it) and runs only A's direct calls.
 *
 * A lease ends, and B returns to its pool: when A's invocation ends (DONE, crash, timeout, kill),
 * when F gets a new version or is deleted, when an invocation cannot get an instance because the
 * pool or the node is full (one lease of that pool, else any, is given up: the next try finds
 * the instance idle), or when B reports that A broke the protocol. The worker sends B UNLINK and
 * waits for its UNLINKED before B is idle again; only then is the link marked closed for A. If B
 * dies, is killed for exceeding F's timeout on a direct call (checked every tick from the link's
 * words: a request pending with the same seq for timeout_ms) or is retired, the link is closed at
 * once with the error the worker path would have given A's call ("crash" -> -ECONNRESET and
 * "function crashed: ...", "timeout" -> -ETIMEDOUT ...).
 *
 * Loop thread only. Leases are owned by the worker (w->leases); a callee points at its lease.
 */
#ifndef SHOAL_WORKER_LEASE_H
#define SHOAL_WORKER_LEASE_H

#include <stddef.h>
#include <stdint.h>

#include "worker/worker.h"

#define SHOAL_LEASE_PER_CALLER 4

typedef struct shoal_lease shoal_lease_t;

/* callee just answered caller's local call (before its CALL_DONE is sent): leases it to caller
 * if the rules allow. 1: leased (the callee stays busy; do not finish it), 0: not. */
int shoal_lease_offer(shoal_worker_t *w, shoal_inst_t *caller, shoal_inst_t *callee);
/* caller's invocation ended: its leases end (their callees return to their pools). */
void shoal_lease_caller_ended(shoal_inst_t *caller);
/* A leased callee failed (kind and message as for shoal_inst_fail): A's pending direct call, if
 * any, fails with that error; the lease is gone. The caller kills the callee. */
void shoal_lease_callee_failed(shoal_inst_t *callee, const char *kind, const char *msg, size_t len);
/* The worker wants a leased callee back (its function has a new version): the lease ends. */
void shoal_lease_revoke(shoal_inst_t *callee);
/* A leased callee sent UNLINKED. */
void shoal_lease_unlinked(shoal_inst_t *callee, const shoal_msg_unlink_t *u);
/* An invocation of pool found no instance: gives up one lease of pool (else of any pool when
 * the node is full). 1 if one is ending. */
int shoal_lease_reclaim(shoal_worker_t *w, shoal_pool_t *pool);
/* An instance of pool was just taken: if that left the pool no idle instance and no room to
 * grow, one lease of it (else of any pool, when the node is full) ends, so that leases never make
 * the next invocation wait or the controller queue it. */
void shoal_lease_pool_taken(shoal_worker_t *w, shoal_pool_t *pool);
/* Every tick: kills leased callees past their function's timeout on a direct call. */
void shoal_lease_tick(shoal_worker_t *w);
/* inst is going away (shoal_inst_kill): ends the leases it holds as a caller and drops its own. */
void shoal_lease_inst_gone(shoal_inst_t *inst);
/* Leases in force (for tests and status). */
unsigned shoal_lease_count(const shoal_worker_t *w);

#endif
