/*
 * net - see net.h. The transfer functions hcoll calls, over the instance's channel.
 */
#include "net.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime.h"

size_t shoal_rt_net_group_size(const shoal_ctl_group_t *g)
{
    if (g->nnodes == 1)
        return g->node == 0 && g->grank == g->rank && g->gsize == g->size ? sizeof(*g) : 0;
    if (g->nnodes < 2 || g->gsize < 2 || g->gsize > SHOAL_HCOLL_MAX_RANKS ||
        (unsigned)g->gsize > SHOAL_CHANNEL_GROUP_MAX || g->nnodes > (unsigned)g->gsize ||
        g->node >= g->nnodes || g->grank < 0 || g->grank >= g->gsize || g->size > g->gsize)
        return 0;
    return sizeof(*g) + 2 * (size_t)g->gsize;
}

/* Waits until the down ring has a record or until_ns passes: spins for spin_ns, then sleeps on
 * the doorbell (the protocol of shoal_channel_wait_down, with a time limit). */
static void wait_down_until(shoal_channel_t *ch, uint64_t spin_ns, uint64_t until_ns)
{
    shoal_channel_hdr_t *h = ch->hdr;
    uint64_t now = shoal_util_now_ns(), spin_end = now + spin_ns;
    struct timespec ts;
    uint32_t bell;

    while (now < spin_end && now < until_ns) {
        for (int i = 0; i < 64; i++)
            if (shoal_ring_readable(&ch->rx))
                return;
        now = shoal_util_now_ns();
    }
    if (now >= until_ns)
        return;
    bell = atomic_load_explicit(&h->down_bell, memory_order_relaxed);
    atomic_store_explicit(&h->down_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (!shoal_ring_readable(&ch->rx)) {
        ts.tv_sec = (time_t)((until_ns - now) / 1000000000u);
        ts.tv_nsec = (long)((until_ns - now) % 1000000000u);
        /* Not FUTEX_PRIVATE_FLAG: the word is shared with the worker. */
        syscall(SYS_futex, (uint32_t *)&h->down_bell, FUTEX_WAIT, bell, &ts, NULL, 0);
    }
    atomic_store_explicit(&h->down_sleeping, 0, memory_order_relaxed);
}

/* Sends one XSEND or XRECV and waits for its XDONE. */
static int xfer(shoal_rt_net_t *n, uint16_t type, int node, uint64_t tag, uint64_t off,
                uint64_t len, shoal_msg_xdone_t *done)
{
    shoal_rt_ctx *ctx = n->ctx;
    shoal_msg_xfer_t m;
    shoal_ring_rec_t rec;
    struct iovec iov;
    int r;

    memset(&m, 0, sizeof(m));
    m.xseq = ++n->xseq;
    m.tag = tag;
    m.off = off;
    m.len = len;
    m.node = (uint32_t)node;
    iov = (struct iovec){&m, sizeof(m)};
    if ((r = shoal_channel_send_wait(ctx->ch, ctx->ctl_fd, type, &iov, 1)) < 0 ||
        (r = shoal_channel_notify(ctx->ch, ctx->ctl_fd, 0)) < 0)
        return r;
    for (;;) {
        uint64_t now, until;

        if ((r = shoal_channel_recv(ctx->ch, &rec, ctx->rxbuf, sizeof(ctx->rxbuf))) < 0)
            return r;
        if (r == 1) {
            if (rec.type != SHOAL_MSG_XDONE || rec.len < sizeof(*done))
                return -EPROTO;
            memcpy(done, ctx->rxbuf, sizeof(*done));
            if (done->xseq == m.xseq)
                return 0;
            if (done->xseq < m.xseq)
                continue; /* the answer to a transfer abandoned earlier */
            return -EPROTO;
        }
        if (shoal_arena_failed(n->arena))
            return -ECONNABORTED;
        now = shoal_util_now_ns();
        if (n->deadline_ns != 0 && now >= n->deadline_ns)
            return -ETIMEDOUT;
        until = now + SHOAL_RT_NET_SLICE_MS * 1000000ull;
        if (n->deadline_ns != 0 && until > n->deadline_ns)
            until = n->deadline_ns;
        wait_down_until(ctx->ch, ctx->spin_call_ns, until);
    }
}

static int net_xsend(void *arg, int node, uint64_t tag, uint64_t off, uint64_t len)
{
    shoal_rt_net_t *n = arg;
    shoal_msg_xdone_t d;
    int r;

    if ((r = xfer(n, SHOAL_MSG_XSEND, node, tag, n->base + off, len, &d)) < 0)
        return r;
    return d.err < 0 ? d.err : (d.err == 0 ? 0 : -EPROTO);
}

static int net_xrecv(void *arg, int node, uint64_t tag, uint64_t *off, uint64_t *len)
{
    shoal_rt_net_t *n = arg;
    shoal_msg_xdone_t d;
    int r;

    if ((r = xfer(n, SHOAL_MSG_XRECV, node, tag, 0, 0, &d)) < 0)
        return r;
    if (d.err != 0)
        return d.err < 0 ? d.err : -EPROTO;
    /* hcoll checks the range against the data area; below its start is garbage, not a view. An
     * empty message has no place, whatever offset came with it. */
    if (d.len != 0 && d.off < n->base)
        return -EBADMSG;
    *off = d.len != 0 ? d.off - n->base : 0;
    *len = d.len;
    return 0;
}

int shoal_rt_net_create(shoal_rt_net_t **out, struct shoal_ctx *ctx, shoal_coll_t *local,
                        const shoal_ctl_group_t *g, const uint16_t *node_of)
{
    shoal_rt_net_t *n;
    shoal_hcoll_xfer_t x;
    int err;

    *out = NULL;
    if ((n = calloc(1, sizeof(*n))) == NULL)
        return -ENOMEM;
    n->ctx = ctx;
    n->arena = shoal_coll_arena(local);
    n->base = (uint64_t)(shoal_arena_data(n->arena) - (uint8_t *)shoal_arena_header(n->arena));
    n->deadline_ns = g->deadline_ns;
    x = (shoal_hcoll_xfer_t){net_xsend, net_xrecv, n};
    if ((err = shoal_hcoll_create(&n->hc, local, g->grank, g->gsize, (int)g->nnodes, (int)g->node,
                                  node_of, &x)) < 0) {
        free(n);
        return err == -EINVAL ? -EPROTO : err;
    }
    *out = n;
    return 0;
}

void shoal_rt_net_destroy(shoal_rt_net_t *n)
{
    if (n == NULL)
        return;
    shoal_hcoll_destroy(n->hc);
    free(n);
}
