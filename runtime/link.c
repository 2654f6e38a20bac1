/*
 * runtime/link - see link.h. The protocol itself (records, words, checks) is transport/link.c;
 * this file is the instance's use of it: which link a call takes, the waits, and running a
 * direct call like a local invocation.
 */
#include "runtime/link.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "transport/link.h"

#define ALIGN64(x) (((uint64_t)(x) + 63u) & ~(uint64_t)63u)

typedef struct {
    shoal_link_t *l;
    char fn[SHOAL_CHANNEL_NAME_MAX + 1];
} caller_link_t;

struct shoal_rt_links {
    caller_link_t calls[SHOAL_RT_LINKS];
    /* the lease, as a callee */
    shoal_link_t *lease;
    uint64_t lease_id, lease_seq;
    uint32_t lease_depth, lease_meta_len;
    char lease_fn[SHOAL_CHANNEL_NAME_MAX + 1];
    int unlink_pending; /* UNLINK came while we were busy in a call */
    uint64_t unlink_id;
};

/* Allocated when the first LINK arrives; lives as long as the process. */
static shoal_rt_links_t *links_get(shoal_rt_ctx *ctx)
{
    if (ctx->links == NULL)
        ctx->links = calloc(1, sizeof(*ctx->links));
    return ctx->links;
}

int shoal_rt_link_leased(const shoal_rt_ctx *ctx)
{
    return ctx->links != NULL && ctx->links->lease != NULL;
}

void shoal_rt_link_drop_calls(shoal_rt_ctx *ctx)
{
    int i;

    if (ctx->links == NULL)
        return;
    for (i = 0; i < SHOAL_RT_LINKS; i++) {
        shoal_link_destroy(ctx->links->calls[i].l);
        memset(&ctx->links->calls[i], 0, sizeof(ctx->links->calls[i]));
    }
}

static void drop_call(caller_link_t *c)
{
    /* The slot is free again: a link the worker closed is gone on its side too, and one we gave up
     * on (garbage) keeps its lease until our invocation ends, so no new link for this function
     * comes before then. */
    shoal_link_destroy(c->l);
    memset(c, 0, sizeof(*c));
}

/* ---- caller ---- */

/* Sleeps until the answer or the worker's close could be there. */
static void caller_wait(shoal_rt_ctx *ctx, shoal_link_t *l, uint64_t seq)
{
    shoal_link_hdr_t *h = shoal_link_hdr(l);
    uint64_t deadline = shoal_util_now_ns() + ctx->spin_call_ns;
    uint32_t w;
    unsigned i;

    for (i = 1;; i++) {
        w = atomic_load_explicit(&h->resp, memory_order_acquire);
        if (w != (uint32_t)(seq - 1) || atomic_load_explicit(&h->closed, memory_order_acquire))
            return;
        if ((i & 63) == 0) {
            if (shoal_util_now_ns() >= deadline)
                break;
            /* The callee may share our CPU (2 CPUs, busy machine): let it run. Cheap when
             * nothing else is runnable here. */
            sched_yield();
        }
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    atomic_store_explicit(&h->caller_sleeping, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    w = atomic_load_explicit(&h->resp, memory_order_acquire);
    if (w == (uint32_t)(seq - 1) && atomic_load_explicit(&h->closed, memory_order_acquire) == 0)
        shoal_link_futex_wait2(&h->resp, w, &h->closed, 0);
    atomic_store_explicit(&h->caller_sleeping, 0, memory_order_relaxed);
}

/* The call's result (or error text) in the call area, as the worker path leaves it. */
static int deliver(shoal_rt_ctx *ctx, uint64_t out_off, int err, const void *p, size_t len,
                   shoal_buf *out)
{
    if (len > 0)
        memcpy(ctx->ch->call + out_off, p, len);
    out->data = ctx->ch->call + out_off;
    out->len = len;
    ctx->call_bump = out_off + len;
    if (ctx->call_bump > ctx->call_hw)
        ctx->call_hw = ctx->call_bump;
    return err;
}

int shoal_rt_link_call(shoal_rt_ctx *ctx, const char *function, const void *in, size_t len,
                       shoal_buf *out)
{
    const shoal_channel_layout_t *chl = &ctx->ch->lay;
    char msg[SHOAL_LINK_MSG_MAX + 128];
    caller_link_t *c = NULL;
    shoal_link_resp_t rs;
    uint64_t seq, out_off, out_cap;
    size_t mlen;
    int i, r, verdict;

    if (ctx->links == NULL)
        return -EAGAIN;
    for (i = 0; i < SHOAL_RT_LINKS && c == NULL; i++)
        if (ctx->links->calls[i].l != NULL && strcmp(ctx->links->calls[i].fn, function) == 0)
            c = &ctx->links->calls[i];
    if (c == NULL || len > shoal_link_get_layout(c->l)->in_cap)
        return -EAGAIN;
    if (shoal_link_closed(c->l, &verdict, msg, sizeof(msg), &mlen)) {
        drop_call(c);
        return -EAGAIN;
    }
    /* Room for the result in the call area, exactly as the worker path would give it. */
    out_off = ALIGN64(ctx->call_bump);
    if (out_off >= chl->call_cap)
        return -ENOBUFS;
    out_cap = chl->call_cap - out_off;
    if (out_cap > chl->body_max)
        out_cap = chl->body_max;
    if ((r = shoal_link_request(c->l, in, len, &seq)) < 0)
        return r == -EMSGSIZE ? -EAGAIN : r;

    for (;;) {
        if ((r = shoal_link_poll_resp(c->l, seq, &rs)) != 0)
            break;
        if (shoal_link_closed(c->l, &verdict, msg, sizeof(msg), &mlen)) {
            /* The callee may have answered right before it let go of the link. */
            if ((r = shoal_link_poll_resp(c->l, seq, &rs)) != 0)
                break;
            drop_call(c);
            if (verdict == 0)
                return -EAGAIN; /* it never took the request: the worker path runs it */
            if (mlen > out_cap)
                mlen = out_cap;
            return deliver(ctx, out_off, verdict, msg, mlen, out);
        }
        caller_wait(ctx, c->l, seq);
    }
    if (r < 0) {
        /* Garbage from the callee: this call fails, and the link is not used again. */
        drop_call(c);
        mlen = (size_t)snprintf(msg, sizeof(msg), "function %s broke the call protocol", function);
        return deliver(ctx, out_off, -EPROTO, msg, mlen < out_cap ? mlen : out_cap, out);
    }
    if (rs.err != 0) {
        size_t elen = rs.err_len;
        if (elen > SHOAL_CHANNEL_ERR_MAX)
            elen = SHOAL_CHANNEL_ERR_MAX;
        if (elen > out_cap)
            elen = out_cap;
        return deliver(ctx, out_off, rs.err, shoal_link_out(c->l), elen, out);
    }
    if (rs.out_len > out_cap) {
        mlen =
            (size_t)snprintf(msg, sizeof(msg), "output of %s too large for the caller", function);
        return deliver(ctx, out_off, -EFBIG, msg, mlen < out_cap ? mlen : out_cap, out);
    }
    return deliver(ctx, out_off, 0, shoal_link_out(c->l), rs.out_len, out);
}

/* ---- records from the worker ---- */

/* Takes the SHOAL_CTL_LINK message that came before LINK record id and maps the link. */
static int take_link(shoal_rt_ctx *ctx, const shoal_msg_link_t *m, shoal_link_t **lp)
{
    shoal_ctl_link_t c;
    shoal_link_layout_t lay;
    int fd = -1, nfds = 0, err;
    ssize_t n;

    *lp = NULL;
    n = shoal_channel_ctl_recv(ctx->ctl_fd, &c, sizeof(c), &fd, 1, &nfds);
    if (n == 0)
        return -ECONNRESET;
    if (n < 0) {
        err = (int)n;
    } else if ((size_t)n != sizeof(c) || nfds != 1 || c.magic != SHOAL_CTL_MAGIC ||
               c.type != SHOAL_CTL_LINK || c.id != m->id) {
        err = -EPROTO;
    } else {
        shoal_link_layout(m->in_cap, m->out_cap, &lay);
        if (lay.size != m->size)
            err = -EPROTO;
        else
            err = shoal_link_open(lp, fd, &lay, ctx->ch->lay.body_max);
        fd = -1; /* taken by shoal_link_open, also on failure */
    }
    if (nfds > 0 && fd >= 0)
        close(fd);
    return err;
}

static int send_unlinked(shoal_rt_ctx *ctx, uint64_t id, uint32_t flags)
{
    shoal_msg_unlink_t u = {.id = id, .flags = flags};
    struct iovec iov = {&u, sizeof(u)};
    int err;

    if ((err = shoal_channel_send_wait(ctx->ch, ctx->ctl_fd, SHOAL_MSG_UNLINKED, &iov, 1)) < 0)
        return err;
    return shoal_channel_notify(ctx->ch, ctx->ctl_fd, 0);
}

/* Callee: lets go of the lease (and of the links it made as a caller while leased: the worker
 * ends those leases together with ours), then tells the worker. */
static int end_lease(shoal_rt_ctx *ctx, uint32_t flags)
{
    shoal_rt_links_t *k = ctx->links;
    uint64_t id = k->lease_id;

    shoal_link_destroy(k->lease);
    k->lease = NULL;
    k->unlink_pending = 0;
    shoal_rt_link_drop_calls(ctx);
    return send_unlinked(ctx, id, flags);
}

int shoal_rt_link_record(shoal_rt_ctx *ctx, uint16_t type, const void *p, size_t len)
{
    shoal_rt_links_t *k = links_get(ctx);
    shoal_msg_link_t m;
    shoal_msg_unlink_t u;
    shoal_link_t *l;
    int err, i;

    if (type == SHOAL_MSG_UNLINK) {
        if (len != sizeof(u))
            return -EPROTO;
        memcpy(&u, p, sizeof(u));
        /* Not ours any more (we ended it ourselves after a violation): nothing to do. */
        if (k == NULL || k->lease == NULL || u.id != k->lease_id)
            return 0;
        k->unlink_pending = 1;
        k->unlink_id = u.id;
        return 0;
    }
    if (len < sizeof(m))
        return -EPROTO;
    memcpy(&m, p, sizeof(m));
    if (m.name_len == 0 || m.name_len > SHOAL_CHANNEL_NAME_MAX || len != sizeof(m) + m.name_len ||
        (m.role != SHOAL_LINK_CALLER && m.role != SHOAL_LINK_CALLEE))
        return -EPROTO;
    if ((err = take_link(ctx, &m, &l)) == 0 && k == NULL) {
        shoal_link_destroy(l);
        err = -ENOMEM;
    }
    if (err < 0) {
        if (err == -ECONNRESET || err == -EPROTO)
            return err;
        /* Without the link the worker path still works; a callee says so, or the lease would
         * hold it until its caller's invocation ends. */
        SHOAL_WARN("cannot map a direct link: %s", strerror(-err));
        return m.role == SHOAL_LINK_CALLEE ? send_unlinked(ctx, m.id, 0) : 0;
    }
    if (m.role == SHOAL_LINK_CALLEE) {
        if (k->lease != NULL || m.meta_len > ctx->ch->lay.meta_cap) {
            shoal_link_destroy(l);
            return -EPROTO;
        }
        k->lease = l;
        k->lease_id = m.id;
        k->lease_seq = m.seq;
        k->lease_depth = m.depth;
        k->lease_meta_len = m.meta_len;
        memcpy(k->lease_fn, (const uint8_t *)p + sizeof(m), m.name_len);
        k->lease_fn[m.name_len] = '\0';
        return 0;
    }
    for (i = 0; i < SHOAL_RT_LINKS; i++) {
        if (k->calls[i].l == NULL) {
            k->calls[i].l = l;
            memcpy(k->calls[i].fn, (const uint8_t *)p + sizeof(m), m.name_len);
            k->calls[i].fn[m.name_len] = '\0';
            return 0;
        }
    }
    /* More than we keep: the worker bounds this too; the call still works through it. */
    shoal_link_destroy(l);
    return 0;
}

/* ---- callee ---- */

/* Runs one direct call like a local invocation and answers it through the link. */
static int run_direct(shoal_rt_ctx *ctx, shoal_main_fn fn, const shoal_link_req_t *rq)
{
    shoal_rt_links_t *k = ctx->links;
    char msg[SHOAL_CHANNEL_ERR_MAX + 128];
    size_t mlen = 0;
    int rc, err = 0;

    shoal_rt_reset(ctx);
    ctx->seq = k->lease_seq;
    ctx->meta = (const char *)ctx->ch->meta;
    ctx->meta_len = k->lease_meta_len;
    ctx->depth = k->lease_depth;
    /* Our own copy: the caller could change the request area under the function. */
    ctx->input_len = rq->in_len;
    if (rq->in_len > 0)
        memcpy(ctx->ch->in, shoal_link_in(k->lease), rq->in_len);
    rc = fn(ctx);
    /* The same errors the worker reports for a local call (worker/instance.c handle_done). */
    if (ctx->too_large) {
        err = -EFBIG;
        mlen = (size_t)snprintf(
            msg, sizeof(msg), "output of %llu bytes exceeds the limit of %llu bytes",
            (unsigned long long)ctx->too_large, (unsigned long long)ctx->ch->lay.out_cap);
    } else if (rc != 0) {
        err = -EREMOTEIO;
        if (ctx->err_len > 0) {
            mlen = ctx->err_len;
            memcpy(msg, ctx->err, mlen);
        } else {
            mlen = (size_t)snprintf(msg, sizeof(msg), "function returned %d", rc);
        }
    }
    if (err == 0 &&
        shoal_link_respond(k->lease, 0, ctx->ch->out, ctx->out_len, NULL, 0) == -EMSGSIZE) {
        err = -EFBIG;
        mlen = (size_t)snprintf(msg, sizeof(msg), "output of %s too large for the caller",
                                k->lease_fn);
    }
    if (err != 0)
        shoal_link_respond(k->lease, err, NULL, 0, msg, mlen < sizeof(msg) ? mlen : sizeof(msg));
    return 0;
}

int shoal_rt_link_serve(shoal_rt_ctx *ctx, shoal_main_fn fn)
{
    shoal_rt_links_t *k = ctx->links;
    shoal_channel_hdr_t *ch = ctx->ch->hdr;
    shoal_link_req_t rq;
    uint64_t deadline = 0;
    uint32_t rw, bell;
    unsigned i = 0;
    int r;

    while (k != NULL && k->lease != NULL) {
        if (k->unlink_pending)
            return end_lease(ctx, 0);
        if (shoal_ring_readable(&ctx->ch->rx))
            return 0;
        shoal_link_hdr_t *h = shoal_link_hdr(k->lease);
        rw = atomic_load_explicit(&h->req, memory_order_acquire);
        if ((r = shoal_link_poll_req(k->lease, &rq)) < 0)
            return end_lease(ctx, SHOAL_UNLINKED_VIOLATION);
        if (r == 1) {
            run_direct(ctx, fn, &rq);
            deadline = 0;
            i = 0;
            continue;
        }
        if (deadline == 0)
            deadline = shoal_util_now_ns() + ctx->spin_link_ns;
        if ((++i & 63) != 0) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
            continue;
        }
        if (shoal_util_now_ns() < deadline) {
            sched_yield(); /* as in caller_wait: the caller may share our CPU */
            continue;
        }
        /* Sleep on both words: the caller bumps req, the worker down_bell. Each side's fence
         * pairs with the one after the other's store (link.h, channel.h). */
        bell = atomic_load_explicit(&ch->down_bell, memory_order_relaxed);
        atomic_store_explicit(&h->callee_sleeping, 1, memory_order_relaxed);
        atomic_store_explicit(&ch->down_sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (!shoal_ring_readable(&ctx->ch->rx) &&
            atomic_load_explicit(&h->req, memory_order_acquire) == rw)
            shoal_link_futex_wait2(&h->req, rw, &ch->down_bell, bell);
        atomic_store_explicit(&ch->down_sleeping, 0, memory_order_relaxed);
        atomic_store_explicit(&h->callee_sleeping, 0, memory_order_relaxed);
        deadline = 0;
    }
    return 0;
}
