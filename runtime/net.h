/*
 * net - the runtime side of groups spread over several nodes (issue 3): joins the hierarchical
 * engine (transport/hcoll.h) and implements its transfer interface with channel messages to the
 * worker, which does the network I/O: XSEND/XRECV on the up ring, answered by XDONE on the down
 * ring (transport/channel.h, "Cross-node transfers"). Functions themselves get no sockets.
 *
 * A transfer is synchronous like shoal_call: one up record, then the rank waits for the XDONE
 * with the same xseq. The wait spins briefly, then sleeps on the down ring's doorbell in slices
 * of SHOAL_RT_NET_SLICE_MS; between slices it checks the arena's failure word (the worker aborts
 * the arena when a rank on any node fails) and the rank's deadline, so a rank never waits past
 * either even if the worker's answer is late. An answer that comes after the rank gave up (a
 * smaller xseq) is skipped here and by the runtime's other down-ring readers.
 *
 * Offsets: hcoll speaks in data-area offsets, the channel messages in offsets from the start of
 * the arena memfd; this module converts with the rank's private layout, never trusting the
 * arena's header, and hcoll checks every received range against the arena.
 */
#ifndef SHOAL_RUNTIME_NET_H
#define SHOAL_RUNTIME_NET_H

#include <stddef.h>
#include <stdint.h>

#include "transport/channel.h"
#include "transport/coll.h"
#include "transport/hcoll.h"

/* How often a rank waiting for a transfer checks the arena's failure word and its deadline. */
#define SHOAL_RT_NET_SLICE_MS 10

struct shoal_ctx;

/* A spread group's engine and transfer state; group.c uses hc (read-only for it). */
typedef struct shoal_rt_net {
    shoal_hcoll_t *hc;
    struct shoal_ctx *ctx;
    shoal_arena_t *arena;
    uint64_t base;        /* memfd offset of the arena's data area */
    uint64_t xseq;        /* transfers asked for, per instance */
    uint64_t deadline_ns; /* the rank's own deadline (absolute CLOCK_MONOTONIC, 0 = none) */
} shoal_rt_net_t;

/* The exact size a SHOAL_CTL_GROUP message with header g must have (the node map follows the
 * struct when nnodes > 1), or 0 if its global fields (grank, gsize, nnodes, node) are out of range
 * or inconsistent with rank and size. Pure; any thread. */
size_t shoal_rt_net_group_size(const shoal_ctl_group_t *g);

/* Joins the spread group described by g and its node map (g->gsize entries, already checked by
 * shoal_rt_net_group_size) over local, this node's engine (not owned: destroy it after *out).
 * -EPROTO if the map does not match the arena, or -errno. */
int shoal_rt_net_create(shoal_rt_net_t **out, struct shoal_ctx *ctx, shoal_coll_t *local,
                        const shoal_ctl_group_t *g, const uint16_t *node_of);
/* Frees the handle; NULL is a no-op. */
void shoal_rt_net_destroy(shoal_rt_net_t *n);

#endif
