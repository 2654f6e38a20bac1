/*
 * hcoll - hierarchical collectives for a group whose ranks are spread over several nodes (issue
 * 3): every collective of include/shoal.h over gsize global ranks, built from the same-node engine
 * (transport/coll.h) over this node's arena and an abstract cross-node transfer interface
 * (shoal_hcoll_xfer_t) that the runtime implements with channel messages to its worker
 * (SHOAL_MSG_XSEND/XRECV, see transport/channel.h) and the unit test with shared memory.
 *
 * Shape: at most one transfer per node pair and direction per collective, then fan-out and fan-in
 * inside each node through the arena. The leader of a node is its lowest global rank (local rank
 * 0). Per collective:
 *  - barrier: local barrier; leaders send an empty message to node 0's leader, which answers each
 *    once it heard from all; local barrier.
 *  - bcast: local bcast on the root's node; the root sends its bytes once to each other node's
 *    leader, which bcasts them locally (views of the received bytes, no copy).
 *  - scatter: the root sends each other node one bundle (length table + that node's parts); its
 *    leader scatters the parts locally as views into the bundle.
 *  - gather: local gather to the root (on its node) or the leader (elsewhere); each leader packs
 *    its node's parts into one bundle for the root, which hands out views into the bundles.
 *  - reduce: local reduce to the root or the leader; leaders send their node's partial result to
 *    the root, which combines them in the fixed node order root's node, root's node + 1, ...
 *  - allreduce: reduce to global rank 0, then bcast of its result: every rank gets the same bytes.
 *  - shuffle: a local shuffle for the parts between ranks of this node; for every other node the
 *    leader lays out one bundle (a rows x columns length table + the parts) from the gathered
 *    lengths, every local rank copies its own parts into it in parallel, the leader sends it,
 *    receives the other nodes' bundles and publishes them with one local bcast; each rank takes
 *    views of its column.
 *  - send/recv between nodes: one direct transfer per message.
 *
 * Tags: a (source node, destination node, tag) triple is used at most once per group. Collectives
 * use tag = seq << 8 | kind (bit 63 clear), seq being the group-wide collective sequence number
 * (every rank calls the same collectives in the same order) — each collective moves at most one
 * message per node pair and direction. send/recv use bit 63 | src << 53 | dst << 43 | n, with the
 * global ranks and n the number of earlier messages from src to dst (43 bits).
 *
 * Errors: 0 or -errno, as in coll.h. Any transfer error, local error or malformed bundle records
 * the failure in this node's arena (shoal_arena_abort), so that the other local ranks stop
 * waiting; the worker (or the test) propagates it to the other nodes. After an error the group is
 * unusable.
 *
 * Buffers returned are views into this node's arena, valid until the local engine is destroyed.
 * A handle is used from one thread (the one that runs shoal_main).
 */
#ifndef SHOAL_TRANSPORT_HCOLL_H
#define SHOAL_TRANSPORT_HCOLL_H

#include <stddef.h>
#include <stdint.h>

#include "shoal.h"
#include "transport/coll.h"

/* Largest group (global ranks): the send/recv tag holds two ranks in 10 bits each. */
#define SHOAL_HCOLL_MAX_RANKS 1024

/* Moves bytes between nodes of the group. Offsets are offsets in this node's arena data area (as
 * shoal_arena_alloc returns them). Both return 0 or -errno; they block until done (xsend: until
 * the bytes are on their way) or the group failed. */
typedef struct {
    /* Sends [off, off + len) of the data area to node, labelled tag. */
    int (*xsend)(void *arg, int node, uint64_t tag, uint64_t off, uint64_t len);
    /* Receives the message node sent with tag; it lies at [*off, *off + *len) of the data area. */
    int (*xrecv)(void *arg, int node, uint64_t tag, uint64_t *off, uint64_t *len);
    void *arg;
} shoal_hcoll_xfer_t;

typedef struct shoal_hcoll shoal_hcoll_t;

/* Creates the engine of global rank grank of a group of gsize ranks over nnodes nodes; this is
 * node `node`; node_of[g] (gsize entries, copied) is the node of global rank g. local is this
 * node's engine (not owned: destroy it after this handle), whose ranks are this node's global
 * ranks in increasing order. -EINVAL if the map is inconsistent (a node without ranks, local's
 * size or rank not matching it). */
int shoal_hcoll_create(shoal_hcoll_t **out, shoal_coll_t *local, int grank, int gsize, int nnodes,
                       int node, const uint16_t *node_of, const shoal_hcoll_xfer_t *xfer);
/* Frees the handle (not the local engine). NULL is a no-op. */
void shoal_hcoll_destroy(shoal_hcoll_t *h);

int shoal_hcoll_rank(const shoal_hcoll_t *h);
int shoal_hcoll_size(const shoal_hcoll_t *h);

/* The collectives of include/shoal.h with global ranks; same arguments and meaning as there. */
int shoal_hcoll_barrier(shoal_hcoll_t *h);
int shoal_hcoll_send(shoal_hcoll_t *h, int dst, const void *data, size_t len);
int shoal_hcoll_recv(shoal_hcoll_t *h, int src, shoal_buf *out);
int shoal_hcoll_bcast(shoal_hcoll_t *h, int root, const void *data, size_t len, shoal_buf *out);
int shoal_hcoll_scatter(shoal_hcoll_t *h, int root, const shoal_buf *parts, shoal_buf *out);
int shoal_hcoll_gather(shoal_hcoll_t *h, int root, const void *data, size_t len, shoal_buf *parts);
int shoal_hcoll_reduce(shoal_hcoll_t *h, int root, const void *in, void *out, size_t count,
                       shoal_dtype type, shoal_op op);
int shoal_hcoll_allreduce(shoal_hcoll_t *h, const void *in, void *out, size_t count,
                          shoal_dtype type, shoal_op op);
int shoal_hcoll_shuffle(shoal_hcoll_t *h, const shoal_buf *send, shoal_buf *recv);

#endif
