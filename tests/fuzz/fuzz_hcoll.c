/*
 * libFuzzer target for what transport/hcoll.c reads from other nodes: arbitrary bytes delivered
 * as the received message of every collective (bcast bytes, gather and shuffle bundles with their
 * length tables, reduce partial results, send/recv messages). This rank is global rank 0, alone
 * on node 0; node 1 holds the other 1..31 ranks, so the bundles it receives have up to 31 rows.
 * Nothing may read or write out of the arena or the caller's buffers, leak, or hang: a malformed
 * message is -EBADMSG and aborts the group.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/arena.h"
#include "transport/coll.h"
#include "transport/hcoll.h"

#define MAXG 32

static shoal_arena_t *A; /* the "worker's" mapping, reset per input */
static const uint8_t *IN;
static size_t INLEN;

static int x_send(void *arg, int node, uint64_t tag, uint64_t off, uint64_t len)
{
    (void)arg;
    (void)tag;
    /* What hcoll sends must lie in the arena and go to the other node. */
    if (node != 1 || shoal_arena_view(A, off, len) == NULL)
        abort();
    return 0;
}

/* Every receive gets the fuzz input, placed in fresh arena space as a worker would. */
static int x_recv(void *arg, int node, uint64_t tag, uint64_t *off, uint64_t *len)
{
    (void)arg;
    (void)tag;
    if (node != 1)
        abort();
    *off = 0;
    if (INLEN > 0) {
        int r = shoal_arena_alloc(A, INLEN, off);
        if (r < 0)
            return r;
        memcpy(shoal_arena_view(A, *off, INLEN), IN, INLEN);
    }
    *len = INLEN;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    static double in[64], out[64];
    shoal_hcoll_xfer_t x = {x_send, x_recv, NULL};
    shoal_buf parts[MAXG], recv[MAXG], b;
    uint16_t map[MAXG];
    shoal_coll_t *c;
    shoal_hcoll_t *h;
    int gsize, op;

    if (len < 2)
        return 0;
    if (A == NULL && shoal_arena_create(&A, 1, 64u << 20, 0) < 0)
        abort();
    if (shoal_arena_reset(A, 0, 0) < 0)
        abort();
    op = buf[0] % 7;
    gsize = 2 + buf[1] % (MAXG - 1);
    IN = buf + 2;
    INLEN = len - 2;
    for (int g = 0; g < gsize; g++)
        map[g] = g == 0 ? 0 : 1;
    if (shoal_coll_create(&c, shoal_arena_fd(A), 0, 1, 0) < 0)
        abort();
    if (shoal_hcoll_create(&h, c, 0, gsize, 2, 0, map, &x) < 0)
        abort();
    for (int g = 0; g < gsize; g++)
        parts[g] = (shoal_buf){in, (size_t)g * 3};
    switch (op) {
    case 0:
        shoal_hcoll_bcast(h, 1, NULL, 0, &b);
        break;
    case 1:
        shoal_hcoll_gather(h, 0, in, 8, parts);
        break;
    case 2:
        shoal_hcoll_shuffle(h, parts, recv);
        break;
    case 3:
        shoal_hcoll_reduce(h, 0, in, out, 64, SHOAL_DOUBLE, SHOAL_SUM);
        break;
    case 4:
        shoal_hcoll_allreduce(h, in, out, 64, SHOAL_INT64, SHOAL_MAX);
        break;
    case 5:
        shoal_hcoll_recv(h, 1, &b);
        break;
    default:
        shoal_hcoll_barrier(h);
        shoal_hcoll_scatter(h, 1, NULL, &b);
        break;
    }
    shoal_hcoll_destroy(h);
    shoal_coll_destroy(c);
    return 0;
}
