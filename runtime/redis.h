/*
 * redis - the object-store baseline: every collective of include/shoal.h over a Redis server
 * (hiredis), chosen per invocation with ?transport=redis. It exists so that benchmarks can show
 * what passing data through storage costs (ExCamera, Locus, Starling), so it works the way they
 * did with S3, only with a faster store:
 *
 *  - A producer PUTs each part once: SET key value PXAT <group deadline>, so that nothing can
 *    outlive the group even if no one deletes it. Parts larger than the handle's chunk size
 *    (SHOAL_RT_REDIS_CHUNK; Redis strings hold at most 512 MiB) go as several keys.
 *  - It then tells each consumer with an RPUSH of a small notification to the consumer's list;
 *    consumers wait with BLPOP (timeout bounded by the deadline) instead of polling the store.
 *    Notifications that arrive for a later collective or another message are kept aside until
 *    asked for.
 *  - Consumers GET the part into runtime-owned memory. A part with one consumer is read with
 *    GETDEL; a broadcast part has a reference count (N - 1 consumers) and whoever brings it to 0
 *    deletes it. Barrier counters are deleted by the last arriver, lists vanish once popped: after
 *    a successful group no key is left. After a failure what is left expires at the deadline.
 *  - Keys are "shoal:<group id>:..." with the group's 64-bit id (the same on every rank and node)
 *    and, for collectives, the rank's collective sequence number; messages of send/recv are
 *    numbered per (source, destination) pair and received in send order.
 *  - reduce: every rank PUTs its vector for the root, which GETs them and combines them in rank
 *    order 0..N-1 with the same kernels as the shared-memory engine (bit-identical results);
 *    allreduce is reduce to rank 0 followed by a broadcast of the result.
 *
 * The rank cannot open sockets (seccomp): the worker connects a TCP socket to Redis (non-blocking
 * connect) and passes it with the group's arena; this module finishes the connect (poll, then
 * SO_ERROR), wraps it with redisConnectFd and does its own non-blocking I/O on it: writev for
 * commands (large values straight from the caller's memory, no copy), replies parsed by the
 * context's hiredis reader, except the values of GETs, which are read straight from the socket
 * into the memory handed to the function (one copy, as a careful S3 client would do). Every wait
 * polls the socket in slices of SHOAL_RT_REDIS_SLICE_MS and between them checks the arena's failure
 * word and the deadline: when the worker aborts the group (a rank crashed or timed out), a rank
 * blocked in BLPOP returns -ECONNABORTED within a slice, without a connection of the worker's own
 * to Redis and without waiting for the deadline.
 *
 * Semantics and argument checks are those of transport/coll.h (roots other than 0, zero-length
 * parts, every dtype and op). Every buffer handed out stays valid until shoal_rt_redis_destroy
 * (the runtime calls it after shoal_main returns). Errors are 0 or -errno: -EINVAL (bad arguments),
 * -EPROTO (ranks in different collectives, or Redis answered an error), -EBADMSG (a malformed
 * notification or part), -ENOMEM, -ECONNABORTED (the group was aborted), -ETIMEDOUT (deadline),
 * -EPIPE (a peer this rank waited for returned from shoal_main without sending it, seen within
 * SHOAL_RT_REDIS_POP_MS on a one-node group; or the connection to Redis broke), -ECONNRESET
 * (the connection broke). Collective errors other than -ECONNABORTED
 * and -ETIMEDOUT abort the arena, so that ranks waiting in the shared-memory world learn of it;
 * after an I/O error the handle is unusable (every later call fails the same way).
 *
 * A handle is used from one thread (the one that runs shoal_main).
 */
#ifndef SHOAL_RUNTIME_REDIS_H
#define SHOAL_RUNTIME_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "include/shoal.h"
#include "transport/arena.h"

typedef struct shoal_rt_redis shoal_rt_redis_t;

/* The largest value written under one key (Redis allows 512 MiB), like the part size of an S3
 * multipart upload: a large part is several keys, written and read in one pipeline each. */
#define SHOAL_RT_REDIS_CHUNK (8ull << 20)
/* How often a wait checks the arena's failure word and the deadline. */
#define SHOAL_RT_REDIS_SLICE_MS 10
/* The longest BLPOP: after it, a wait checks whether the peer it waits for left the group. */
#define SHOAL_RT_REDIS_POP_MS 500

typedef struct {
    int fd;               /* a TCP socket to Redis, connected or connecting; always taken */
    int rank, size;       /* the global rank and size of the group */
    uint64_t group_id;    /* the same on every rank: namespaces the keys */
    uint64_t deadline_ns; /* absolute CLOCK_MONOTONIC; 0 = an hour from now */
    shoal_arena_t *arena; /* the rank's arena mapping (failure word), or NULL; borrowed */
    int arena_rank;       /* this rank in the arena, for shoal_arena_abort */
    int local;            /* 1: every rank is in the arena at its global rank (a one-node group),
                             so a peer that left can be seen there (-EPIPE instead of waiting) */
    uint64_t chunk;       /* 0 = SHOAL_RT_REDIS_CHUNK; smaller values are for tests */
} shoal_rt_redis_opts_t;

/* Takes o->fd (closed on failure too) and returns the handle. No I/O happens yet. 0 or -errno. */
int shoal_rt_redis_create(shoal_rt_redis_t **out, const shoal_rt_redis_opts_t *o);
/* Closes the connection and frees every buffer handed out. NULL is a no-op. */
void shoal_rt_redis_destroy(shoal_rt_redis_t *h);

int shoal_rt_redis_rank(const shoal_rt_redis_t *h);
int shoal_rt_redis_size(const shoal_rt_redis_t *h);

/* The collectives, with the arguments and meaning of shoal.h and transport/coll.h. */
int shoal_rt_redis_barrier(shoal_rt_redis_t *h);
int shoal_rt_redis_send(shoal_rt_redis_t *h, int dst, const void *data, size_t len);
/* -EDEADLK for a recv from oneself with nothing sent (it could never complete). */
int shoal_rt_redis_recv(shoal_rt_redis_t *h, int src, shoal_buf *out);
int shoal_rt_redis_bcast(shoal_rt_redis_t *h, int root, const void *data, size_t len,
                         shoal_buf *out);
int shoal_rt_redis_scatter(shoal_rt_redis_t *h, int root, const shoal_buf *parts, shoal_buf *out);
int shoal_rt_redis_gather(shoal_rt_redis_t *h, int root, const void *data, size_t len,
                          shoal_buf *parts);
int shoal_rt_redis_reduce(shoal_rt_redis_t *h, int root, const void *in, void *out, size_t count,
                          shoal_dtype type, shoal_op op);
int shoal_rt_redis_allreduce(shoal_rt_redis_t *h, const void *in, void *out, size_t count,
                             shoal_dtype type, shoal_op op);
int shoal_rt_redis_shuffle(shoal_rt_redis_t *h, const shoal_buf *send, shoal_buf *recv);

#endif
