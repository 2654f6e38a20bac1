/*
 * runtime - see runtime.h. The single-invocation part of shoal.h and shoal_call; the group part
 * is in group.c.
 *
 * The instance trusts the worker (it created the channel and can kill us anyway) but still
 * bounds what it reads from it, so that a worker bug shows as an error rather than a stray write.
 */
#include "runtime.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/link.h"

#define ALIGN64(x) (((uint64_t)(x) + 63u) & ~(uint64_t)63u)

static uint64_t env_ns(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    uint64_t v;

    if (s == NULL || shoal_util_parse_u64(s, strlen(s), 0, 1000000000ull, &v) < 0)
        return def;
    return v;
}

void shoal_rt_init(shoal_rt_ctx *ctx, shoal_channel_t *ch, int ctl_fd)
{
    memset(ctx, 0, offsetof(shoal_rt_ctx, rxbuf));
    ctx->ch = ch;
    ctx->ctl_fd = ctl_fd;
    ctx->spin_idle_ns =
        env_ns("SHOAL_SPIN_IDLE_NS",
               sysconf(_SC_NPROCESSORS_ONLN) > SHOAL_RT_SPIN_MIN_CPUS ? SHOAL_RT_SPIN_IDLE_NS : 0);
    ctx->spin_call_ns = env_ns("SHOAL_SPIN_CALL_NS", SHOAL_RT_SPIN_CALL_NS);
    ctx->spin_link_ns = env_ns("SHOAL_SPIN_LINK_NS", SHOAL_RT_SPIN_LINK_NS);
}

static void free_list(shoal_rt_selfmsg_t *m)
{
    while (m != NULL) {
        shoal_rt_selfmsg_t *next = m->next;
        free(m);
        m = next;
    }
}

/* Lets go of the group's Redis connection, cross-node state and arena, in that order. */
static void group_drop(shoal_rt_ctx *ctx)
{
    shoal_rt_redis_destroy(ctx->redis);
    ctx->redis = NULL;
    shoal_rt_net_destroy(ctx->net);
    ctx->net = NULL;
    shoal_coll_destroy(ctx->coll);
    ctx->coll = NULL;
}

void shoal_rt_reset(shoal_rt_ctx *ctx)
{
    /* Left when its invocation ends (shoal_rt_run); this only covers an abandoned group. */
    group_drop(ctx);
    free_list(ctx->selfq_head);
    free_list(ctx->selfq_done);
    ctx->selfq_head = ctx->selfq_tail = ctx->selfq_done = NULL;
    ctx->seq = 0;
    ctx->meta = NULL;
    ctx->meta_len = 0;
    ctx->input_len = 0;
    ctx->depth = 0;
    ctx->out_len = ctx->out_hw = ctx->too_large = 0;
    ctx->status = 0;
    ctx->err_len = 0;
    ctx->hdrs_len = 0;
    ctx->log_bytes = 0;
    ctx->log_capped = 0;
    ctx->call_bump = ctx->call_hw = 0;
}

/* Sends one up record (waiting for ring space) and rings the worker's doorbell if it asked. */
static int send_up(shoal_rt_ctx *ctx, uint16_t type, const struct iovec *iov, int n)
{
    int err;

    if ((err = shoal_channel_send_wait(ctx->ch, ctx->ctl_fd, type, iov, n)) < 0)
        return err;
    return shoal_channel_notify(ctx->ch, ctx->ctl_fd, 0);
}

/* Takes the SHOAL_CTL_GROUP message the worker sent before the INVOKE record inv and maps the
 * group's arena. 0, -ECONNRESET (the worker closed the socket: the process should end) or
 * another -errno (this invocation cannot run). */
static int group_join(shoal_rt_ctx *ctx, const shoal_msg_invoke_t *inv)
{
    /* A group spread over nodes: the node map (gsize uint16_t) follows the struct. */
    union {
        shoal_ctl_group_t g;
        uint8_t b[sizeof(shoal_ctl_group_t) + 2 * SHOAL_CHANNEL_GROUP_MAX];
    } msg;
    uint16_t node_of[SHOAL_CHANNEL_GROUP_MAX];
    shoal_ctl_group_t g;
    int fds[2] = {-1, -1}, nfds, err, want;
    ssize_t n;

    n = shoal_channel_ctl_recv(ctx->ctl_fd, &msg, sizeof(msg), fds, 2, &nfds);
    if (n == 0)
        return -ECONNRESET;
    memset(&g, 0, sizeof(g));
    if (n >= (ssize_t)sizeof(g))
        memcpy(&g, &msg, sizeof(g));
    /* With SHOAL_GROUP_REDIS, the socket to Redis follows the arena. */
    want = n >= (ssize_t)sizeof(g) && (g.flags & SHOAL_GROUP_REDIS) ? 2 : 1;
    if (n < 0) {
        err = (int)n;
    } else if ((size_t)n != shoal_rt_net_group_size(&g) || nfds != want ||
               g.magic != SHOAL_CTL_MAGIC || g.type != SHOAL_CTL_GROUP || g.seq != inv->seq ||
               g.size < 1 || g.size > SHOAL_ARENA_MAX_RANKS || g.rank < 0 || g.rank >= g.size) {
        err = -EPROTO;
    } else {
        err = shoal_coll_create(&ctx->coll, fds[0], g.rank, g.size, g.deadline_ns);
        if (err == 0 && want == 1 && g.nnodes > 1) {
            memcpy(node_of, msg.b + sizeof(g), 2 * (size_t)g.gsize);
            err = shoal_rt_net_create(&ctx->net, ctx, ctx->coll, &g, node_of);
        }
        if (err == 0 && want == 2) {
            shoal_rt_redis_opts_t o = {.fd = fds[1],
                                       .rank = g.grank,
                                       .size = g.gsize,
                                       .group_id = g.group_id,
                                       .deadline_ns = g.deadline_ns,
                                       .arena = shoal_coll_arena(ctx->coll),
                                       .arena_rank = g.rank,
                                       .local = g.nnodes <= 1};
            fds[1] = -1; /* taken, also on failure */
            if (g.gsize < 1 || (unsigned)g.gsize > SHOAL_CHANNEL_GROUP_MAX || g.grank < 0 ||
                g.grank >= g.gsize) {
                close(o.fd);
                err = -EPROTO;
            } else {
                err = shoal_rt_redis_create(&ctx->redis, &o);
            }
        }
    }
    for (int i = 0; i < nfds && i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return err;
}

/* Leaves the group after shoal_main returned. A rank that failed says so first, so that peers
 * blocked in a collective that needs it return at once rather than when it is gone. */
static void group_leave(shoal_rt_ctx *ctx, int failed)
{
    if (ctx->coll == NULL)
        return;
    if (failed)
        shoal_arena_abort(shoal_coll_arena(ctx->coll), shoal_coll_rank(ctx->coll),
                          SHOAL_ARENA_FAIL_LEFT);
    group_drop(ctx);
}

int shoal_rt_run(shoal_rt_ctx *ctx, shoal_main_fn fn, const shoal_msg_invoke_t *inv)
{
    shoal_msg_done_t done;
    struct iovec iov[3];
    uint32_t flags = 0;
    int rc, err;

    shoal_rt_reset(ctx);
    if (inv->meta_len > ctx->ch->lay.meta_cap || inv->input_len > ctx->ch->lay.in_cap)
        return -EPROTO;
    ctx->seq = inv->seq;
    ctx->meta = (const char *)ctx->ch->meta;
    ctx->meta_len = inv->meta_len;
    ctx->input_len = inv->input_len;
    ctx->depth = inv->depth;

    if ((inv->flags & SHOAL_INVOKE_GROUP) && (err = group_join(ctx, inv)) < 0) {
        if (err == -ECONNRESET)
            return err;
        rc = shoal_error(ctx, "cannot join the group: %s", strerror(-err));
        flags = SHOAL_DONE_NO_GROUP;
    } else {
        rc = fn(ctx);
        group_leave(ctx, rc != 0 || ctx->too_large != 0);
    }
    /* The worker ends their leases when it sees our DONE. */
    shoal_rt_link_drop_calls(ctx);

    memset(&done, 0, sizeof(done));
    done.seq = ctx->seq;
    done.rc = rc;
    done.status = rc == 0 ? (uint32_t)ctx->status : 0;
    done.out_len = ctx->too_large ? ctx->too_large : ctx->out_len;
    done.flags = (ctx->too_large ? SHOAL_DONE_TOO_LARGE : 0) | flags;
    done.out_hw = ctx->out_hw;
    done.call_hw = ctx->call_hw;
    done.err_len = rc != 0 ? ctx->err_len : 0;
    done.hdr_len = rc == 0 ? (uint32_t)ctx->hdrs_len : 0;
    iov[0] = (struct iovec){&done, sizeof(done)};
    iov[1] = (struct iovec){ctx->err, done.err_len};
    iov[2] = (struct iovec){ctx->hdrs, done.hdr_len};
    return send_up(ctx, SHOAL_MSG_DONE, iov, 3);
}

int shoal_rt_serve(shoal_rt_ctx *ctx, shoal_main_fn fn)
{
    shoal_ring_rec_t rec;
    shoal_msg_invoke_t inv;
    int r;

    for (;;) {
        /* Leased to a caller (runtime/link.h): serve its direct calls until a record comes. */
        if (shoal_rt_link_leased(ctx) && (r = shoal_rt_link_serve(ctx, fn)) < 0)
            return r;
        if (shoal_rt_link_leased(ctx) && !shoal_ring_readable(&ctx->ch->rx))
            continue;
        shoal_channel_wait_down(ctx->ch, ctx->spin_idle_ns);
        if ((r = shoal_channel_recv(ctx->ch, &rec, ctx->rxbuf, sizeof(ctx->rxbuf))) < 0)
            return r;
        if (r == 0)
            continue;
        /* The answer to a cross-node transfer a rank gave up on (runtime/net.c): nobody waits. */
        if (rec.type == SHOAL_MSG_XDONE)
            continue;
        if (rec.type == SHOAL_MSG_LINK || rec.type == SHOAL_MSG_UNLINK) {
            if ((r = shoal_rt_link_record(ctx, rec.type, ctx->rxbuf, rec.len)) < 0)
                return r;
            continue;
        }
        if (rec.type != SHOAL_MSG_INVOKE || rec.len != sizeof(inv))
            return -EPROTO;
        memcpy(&inv, ctx->rxbuf, sizeof(inv));
        if ((r = shoal_rt_run(ctx, fn, &inv)) < 0)
            return r;
    }
}

/* ---- shoal.h: the single-invocation API ---- */

shoal_buf shoal_input(shoal_ctx *ctx)
{
    shoal_buf b = {ctx->ch->in, ctx->input_len};
    return b;
}

static int output_fits(shoal_ctx *ctx, size_t len)
{
    if (len > ctx->ch->lay.out_cap) {
        /* Remembered: unless a later output fits, the invocation answers too_large. */
        ctx->too_large = len;
        ctx->out_len = 0;
        return 0;
    }
    ctx->too_large = 0;
    ctx->out_len = len;
    if (len > ctx->out_hw)
        ctx->out_hw = len;
    return 1;
}

int shoal_output(shoal_ctx *ctx, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return -EINVAL;
    if (!output_fits(ctx, len))
        return -EFBIG;
    /* memmove: data may already lie in the output area (from shoal_output_alloc). */
    if (len > 0)
        memmove(ctx->ch->out, data, len);
    return 0;
}

void *shoal_output_alloc(shoal_ctx *ctx, size_t len)
{
    if (!output_fits(ctx, len))
        return NULL;
    return ctx->ch->out;
}

int shoal_error(shoal_ctx *ctx, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctx->err_len = (uint32_t)shoal_util_vfmt(ctx->err, sizeof(ctx->err), fmt, ap);
    va_end(ap);
    return -1;
}

void shoal_log(shoal_ctx *ctx, const char *fmt, ...)
{
    static const char capped[] =
        "log limit of 10 MB per invocation reached; dropping further lines";
    shoal_msg_log_t hdr = {ctx->seq};
    struct iovec iov[2];
    va_list ap;
    size_t len;
    int n;

    if (ctx->log_capped)
        return;
    va_start(ap, fmt);
    n = vsnprintf(ctx->logbuf, sizeof(ctx->logbuf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    len = (size_t)n < sizeof(ctx->logbuf) ? (size_t)n : sizeof(ctx->logbuf) - 1;
    iov[0] = (struct iovec){&hdr, sizeof(hdr)};
    if (ctx->log_bytes + len > SHOAL_CHANNEL_LOG_TOTAL_MAX) {
        ctx->log_capped = 1;
        iov[1] = (struct iovec){(void *)capped, sizeof(capped) - 1};
    } else {
        ctx->log_bytes += len;
        iov[1] = (struct iovec){ctx->logbuf, len};
    }
    /* A broken channel means the worker is going to kill us; nothing to report to. */
    (void)send_up(ctx, SHOAL_MSG_LOG, iov, 2);
}

const char *shoal_meta(shoal_ctx *ctx, const char *key)
{
    if (key == NULL || ctx->meta == NULL)
        return NULL;
    return shoal_kv_get(ctx->meta, ctx->meta_len, key);
}

/* Response headers the platform owns: framing and connection management. */
static int header_reserved(const char *name)
{
    static const char *const reserved[] = {"content-length",   "transfer-encoding",
                                           "connection",       "keep-alive",
                                           "upgrade",          "te",
                                           "trailer",          "host",
                                           "proxy-connection", "date",
                                           "server",           "shoal-invocation-id"};
    size_t i;

    for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strcmp(name, reserved[i]) == 0)
            return 1;
    return 0;
}

/* Removes key from the headers blob if present. */
static void hdrs_remove(shoal_ctx *ctx, const char *key)
{
    const char *k, *v;
    size_t off = 0, start;

    for (;;) {
        start = off;
        if (shoal_kv_next(ctx->hdrs, ctx->hdrs_len, &off, &k, &v) != 1)
            return;
        if (strcmp(k, key) == 0) {
            memmove(ctx->hdrs + start, ctx->hdrs + off, ctx->hdrs_len - off);
            ctx->hdrs_len -= off - start;
            return;
        }
    }
}

static size_t hdrs_count(shoal_ctx *ctx)
{
    const char *k, *v;
    size_t off = 0, n = 0;

    while (shoal_kv_next(ctx->hdrs, ctx->hdrs_len, &off, &k, &v) == 1)
        n++;
    return n;
}

int shoal_set_meta(shoal_ctx *ctx, const char *key, const char *value)
{
    char name[7 + 129];
    size_t nlen, vlen, i;
    uint64_t status;

    if (key == NULL)
        return -EINVAL;
    if (strcmp(key, "status") == 0) {
        if (value == NULL || shoal_util_parse_u64(value, strlen(value), 100, 599, &status) < 0)
            return -EINVAL;
        ctx->status = (int32_t)status;
        return 0;
    }
    if (strncmp(key, "header:", 7) != 0)
        return -EINVAL;
    nlen = strlen(key + 7);
    if (!shoal_header_name_valid(key + 7, nlen))
        return -EINVAL;
    memcpy(name, "header:", 7);
    for (i = 0; i <= nlen; i++) {
        char c = key[7 + i];
        name[7 + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    if (header_reserved(name + 7))
        return -EINVAL;
    if (value == NULL) {
        hdrs_remove(ctx, name);
        return 0;
    }
    vlen = strlen(value);
    if (!shoal_header_value_valid(value, vlen))
        return -EINVAL;
    hdrs_remove(ctx, name);
    if (hdrs_count(ctx) >= SHOAL_CHANNEL_HDRS_COUNT)
        return -ENOSPC;
    return shoal_kv_append(ctx->hdrs, sizeof(ctx->hdrs), &ctx->hdrs_len, name, 7 + nlen, value,
                           vlen);
}

/* ---- shoal_call ---- */

int shoal_call(shoal_ctx *ctx, const char *function, const void *in, size_t len, shoal_buf *out)
{
    return shoal_rt_call(ctx, function, 0, in, len, out);
}

int shoal_rt_call(shoal_rt_ctx *ctx, const char *function, uint32_t group, const void *in,
                  size_t len, shoal_buf *out)
{
    const shoal_channel_layout_t *lay = &ctx->ch->lay;
    shoal_msg_call_t call;
    shoal_msg_call_done_t done;
    shoal_ring_rec_t rec;
    struct iovec iov[2];
    size_t nlen;
    int r;

    if (out != NULL) /* shoal.h: on failure *out is the error message, empty when there is none */
        *out = (shoal_buf){NULL, 0};
    if (function == NULL || out == NULL || (in == NULL && len > 0))
        return -EINVAL;
    nlen = strlen(function);
    if (!shoal_util_name_valid(function))
        return -EINVAL;
    if (len > lay->body_max)
        return -EFBIG;
    /* A leased callee of this function: straight to it (runtime/link.h). */
    if (group == 0 && (r = shoal_rt_link_call(ctx, function, in, len, out)) != -EAGAIN)
        return r;
    memset(&call, 0, sizeof(call));
    call.seq = ++ctx->call_seq;
    call.in_off = ALIGN64(ctx->call_bump);
    if (call.in_off > lay->call_cap || len > lay->call_cap - call.in_off)
        return -ENOBUFS;
    call.in_len = len;
    call.out_off = ALIGN64(call.in_off + len);
    if (call.out_off >= lay->call_cap)
        return -ENOBUFS;
    call.out_cap = lay->call_cap - call.out_off;
    if (call.out_cap > lay->body_max)
        call.out_cap = lay->body_max;
    call.name_len = (uint32_t)nlen;
    call.group = group;
    if (len > 0)
        memcpy(ctx->ch->call + call.in_off, in, len);
    if (call.in_off + len > ctx->call_hw)
        ctx->call_hw = call.in_off + len;
    iov[0] = (struct iovec){&call, sizeof(call)};
    iov[1] = (struct iovec){(void *)function, nlen};
    if ((r = send_up(ctx, SHOAL_MSG_CALL, iov, 2)) < 0)
        return r;

    for (;;) {
        shoal_channel_wait_down(ctx->ch, ctx->spin_call_ns);
        if ((r = shoal_channel_recv(ctx->ch, &rec, ctx->rxbuf, sizeof(ctx->rxbuf))) < 0)
            return r;
        if (r == 0 || rec.type == SHOAL_MSG_XDONE) /* XDONE: see shoal_rt_serve */
            continue;
        /* LINK: the worker leases us this call's callee; UNLINK: our own lease ends once the
         * direct call we are running (which made this call) returns. */
        if (rec.type == SHOAL_MSG_LINK || rec.type == SHOAL_MSG_UNLINK) {
            if ((r = shoal_rt_link_record(ctx, rec.type, ctx->rxbuf, rec.len)) < 0)
                return r;
            continue;
        }
        if (rec.type != SHOAL_MSG_CALL_DONE || rec.len < sizeof(done))
            return -EPROTO;
        memcpy(&done, ctx->rxbuf, sizeof(done));
        if (done.seq == call.seq)
            break;
        /* An answer to an earlier call we no longer wait for cannot happen: calls are
         * synchronous. Treat it as the broken channel it is. */
        return -EPROTO;
    }
    if (done.err == 0) {
        if (done.out_len > call.out_cap)
            return -EPROTO;
        out->data = ctx->ch->call + call.out_off;
        out->len = done.out_len;
    } else {
        /* The callee's error message, in the space the result would have taken. */
        size_t elen = rec.len - sizeof(done);
        if (elen > done.err_len)
            elen = done.err_len;
        if (elen > call.out_cap)
            elen = call.out_cap;
        memcpy(ctx->ch->call + call.out_off, ctx->rxbuf + sizeof(done), elen);
        out->data = ctx->ch->call + call.out_off;
        out->len = elen;
    }
    ctx->call_bump = call.out_off + out->len;
    if (ctx->call_bump > ctx->call_hw)
        ctx->call_hw = ctx->call_bump;
    return done.err == 0 ? 0 : (done.err < 0 ? done.err : -EIO);
}
