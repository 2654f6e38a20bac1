/*
 * coll - the same-node collective engine: barrier, send/recv, bcast, scatter, gather, reduce,
 * allreduce and shuffle among the ranks of one group, over the group's arena (transport/arena.h).
 * The runtime puts it behind the group half of include/shoal.h; it knows nothing of the worker.
 *
 * How data moves (each part is written once, by its producer, and read in place):
 *  - bcast: the root copies its bytes into the data area once (not at all if they already lie
 *    there, e.g. from shoal_coll_alloc or an earlier receive) and publishes (offset, length);
 *    every other rank gets a read-only view of those same bytes. The cost does not depend on the
 *    number of receivers: they only read a descriptor.
 *  - scatter, gather, shuffle: each producer copies its parts into one allocation and publishes a
 *    table of (offset, length) per destination; each consumer reads its entries and gets views.
 *  - reduce, allreduce: each rank copies its input into a staging area (reused from one reduce to
 *    the next), then reduces its own slice of the vector across all ranks' staging areas (slices
 *    are cache-line aligned, combined in rank order 0..N-1, so every rank sees bit-identical
 *    floating-point results), writes the slice back in place, and whoever needs the result copies
 *    every rank's finished slice into its `out`: a parallel reduce-scatter plus an all-gather
 *    read in place.
 *  - send/recv: the sender copies the message into the data area and posts (offset, length) in
 *    the ring of its (src, dst) pair: messages of one pair are received in send order; a send
 *    does not wait for the receiver unless SHOAL_ARENA_MBOX_SLOTS of its messages are unreceived.
 *
 * Sequencing: every collective call takes the rank's next sequence number s. A rank publishes a
 * descriptor (kind, root, dtype, op, count, offset, length) in descriptor slot s % SLOTS of its
 * control block and then advances its progress word to (s, ARRIVED), (s, MID) or (s, DONE) with
 * a release compare-and-swap; a rank that needs a peer waits (acquire) until the peer's progress
 * reaches the phase it needs, then reads the peer's descriptor once into private memory and
 * checks that it describes the same collective (else -EPROTO). A rank reuses a slot only after
 * every peer's progress has passed (s - SLOTS, DONE), i.e. after every peer is done reading it,
 * so no rank runs more than SLOTS collectives ahead of the slowest one. Mismatches are caught by
 * the ranks that read a peer's descriptor anyway: all ranks of barrier, reduce, allreduce and
 * shuffle, the receivers of bcast and scatter, the root of gather (and a gather non-root if the
 * root is already there); a root that reads nothing learns of it through the abort.
 *
 * Lifetime: every shoal_buf returned points into the arena and stays valid until this rank calls
 * shoal_coll_destroy (the runtime does that after shoal_main returns). Data space is never reused
 * within a group; only the reduce staging area is reused (and released when it grows). A group
 * that needs more than the arena's capacity gets -ENOMEM.
 *
 * Errors: 0 or -errno. -EINVAL (bad arguments), -EPROTO (ranks are in different collectives or
 * disagree on root, count, dtype or op), -EBADMSG (a peer published an offset or length outside
 * the arena), -ENOMEM (data area full) and -EPIPE (a peer this rank waited for left the group)
 * also record the failure in the arena (shoal_arena_abort), so that no other rank waits for a
 * collective that cannot complete: they return -ECONNABORTED, as does every wait once the worker
 * (or a rank) aborted the group. -ETIMEDOUT at the group deadline. After an error the group is
 * unusable; send and recv errors other than -EBADMSG do not abort the group.
 *
 * A handle is used from one thread (the one that runs shoal_main).
 */
#ifndef SHOAL_TRANSPORT_COLL_H
#define SHOAL_TRANSPORT_COLL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"
#include "transport/arena.h"

typedef struct shoal_coll shoal_coll_t;

/* Collective kinds as written in descriptors (shoal_arena_slot.kind): part of the arena format. */
enum {
    SHOAL_COLL_BARRIER = 1,
    SHOAL_COLL_BCAST,
    SHOAL_COLL_SCATTER,
    SHOAL_COLL_GATHER,
    SHOAL_COLL_REDUCE,
    SHOAL_COLL_ALLREDUCE,
    SHOAL_COLL_SHUFFLE
};
/* A rank's progress word (shoal_arena_ctl.state, bits 0..29) after it published its descriptor
 * of collective seq (ARRIVED), reduced its slice (MID) or finished reading peers (DONE): also
 * part of the arena format. */
enum { SHOAL_COLL_ARRIVED = 1, SHOAL_COLL_MID = 2, SHOAL_COLL_DONE = 3 };
#define SHOAL_COLL_PROGRESS_MASK 0x3fffffffu
#define SHOAL_COLL_PROGRESS(seq, phase)                                                            \
    ((((uint32_t)(seq) << 2) | (uint32_t)(phase)) & SHOAL_COLL_PROGRESS_MASK)

/* Maps the group's arena memfd (received from the worker) as rank of a group of nranks and returns
 * the engine for it. fd is not kept: the caller may close it at once. deadline_ns is this rank's
 * own deadline (absolute CLOCK_MONOTONIC, 0 = none; the runtime passes the invocation's): waits
 * end at the earlier of it and the group deadline in the arena, so that a peer that corrupts the
 * arena cannot keep this rank waiting past it. */
int shoal_coll_create(shoal_coll_t **out, int fd, int rank, int nranks, uint64_t deadline_ns);

/* Leaves the group (peers waiting for this rank return -EPIPE at once instead of at the deadline;
 * a departed rank counts as done with anything it was sent) and unmaps the arena: every buffer
 * this rank received becomes invalid. NULL is a no-op. */
void shoal_coll_destroy(shoal_coll_t *c);

/* Bytes per element of a shoal_dtype; 0 for a value that is none. Pure; any thread. */
size_t shoal_coll_dtype_size(int type);
/* acc[i] = acc[i] op src[i] for n elements of type: the kernels of reduce, for other engines
 * (runtime/redis.c) that must produce bit-identical results. -EINVAL for a bad type or op. Pure. */
int shoal_coll_combine(void *acc, const void *src, size_t n, shoal_dtype type, shoal_op op);

int shoal_coll_rank(const shoal_coll_t *c);
int shoal_coll_size(const shoal_coll_t *c);
/* The rank's mapping of the arena (e.g. for shoal_arena_abort when the function fails). */
shoal_arena_t *shoal_coll_arena(const shoal_coll_t *c);

/* len bytes of arena memory owned by this rank until the group ends; passing (a part of) it to
 * bcast, scatter, gather, shuffle or send shares it without a copy (do not write it afterwards).
 * NULL if the arena is full. */
void *shoal_coll_alloc(shoal_coll_t *c, size_t len);

/* Returns once every rank of the group has entered the barrier. */
int shoal_coll_barrier(shoal_coll_t *c);

/* Posts len bytes to rank dst (may be this rank); blocks only while SHOAL_ARENA_MBOX_SLOTS earlier
 * messages to dst are unreceived. -EPIPE if dst left with the ring full. */
int shoal_coll_send(shoal_coll_t *c, int dst, const void *data, size_t len);
/* Receives the next message from src, in send order, into *out (a view). -EPIPE if src left
 * without sending one. */
int shoal_coll_recv(shoal_coll_t *c, int src, shoal_buf *out);

/* data/len matter at root only; every rank (root included) gets *out = a view of root's bytes. */
int shoal_coll_bcast(shoal_coll_t *c, int root, const void *data, size_t len, shoal_buf *out);
/* parts (nranks entries) matters at root only; rank i gets *out = a view of parts[i]. */
int shoal_coll_scatter(shoal_coll_t *c, int root, const shoal_buf *parts, shoal_buf *out);
/* At root, parts[j] (nranks entries, filled in) = a view of rank j's data; parts is unused
 * elsewhere and may be NULL. */
int shoal_coll_gather(shoal_coll_t *c, int root, const void *data, size_t len, shoal_buf *parts);
/* Element-wise op over every rank's in (count elements of type); the result goes to out at root
 * (out is unused elsewhere and may be NULL). Every rank must pass the same root, count, type and
 * op. Integer sums and products wrap; MIN and MAX of floating values ignore NaNs (like fmin) unless
 * all are NaN. in and out may be the same buffer. */
int shoal_coll_reduce(shoal_coll_t *c, int root, const void *in, void *out, size_t count,
                      shoal_dtype type, shoal_op op);
/* Like reduce, with the result in every rank's out. */
int shoal_coll_allreduce(shoal_coll_t *c, const void *in, void *out, size_t count, shoal_dtype type,
                         shoal_op op);
/* send[i] (nranks entries) goes to rank i; recv[j] (nranks entries, filled in) = a view of what
 * rank j sent to this rank. Lengths may differ per pair and be zero. */
int shoal_coll_shuffle(shoal_coll_t *c, const shoal_buf *send, shoal_buf *recv);

/* Helpers for this module and transport/hcoll.c, which lays out its bundles the same way. */

/* The alignment of a part of len bytes in the data area: a page from one page up (a large part
 * occupies whole pages of its own), else a cache line. */
static inline uint64_t shoal_coll_part_align(uint64_t len)
{
    return len >= 4096u ? 4096u : 64u;
}

/* Whether b is an array of n valid buffers: not NULL, and no NULL data with a length. The check
 * of every collective argument that takes one buffer per rank. */
static inline int shoal_coll_bufs_valid(const shoal_buf *b, int n)
{
    if (b == NULL)
        return 0;
    for (int i = 0; i < n; i++)
        if (b[i].data == NULL && b[i].len != 0)
            return 0;
    return 1;
}

#endif
