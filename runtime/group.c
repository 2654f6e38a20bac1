/*
 * group - the group and collective part of shoal.h.
 *
 * Inside a group (the invocation came with SHOAL_INVOKE_GROUP and runtime.c joined the group's
 * arena before shoal_main), every call maps 1:1 onto the same-node collective engine
 * (transport/coll.h): buffers it hands out are views into the arena and stay valid until
 * shoal_main returns, when runtime.c leaves the group. The engine ignores what does not matter on
 * a rank (parts of scatter and gather, bcast's data and reduce's out away from the root), so a
 * non-root may pass NULL or zeroed arrays there.
 *
 * Outside a group the invocation is rank 0 of a group of size 1: every collective completes at
 * once with its size-1 meaning (the root's data is everyone's data), messages to oneself queue in
 * order, and anything that names another rank is -EINVAL.
 *
 * In both cases a recv from oneself with nothing sent can never complete (one thread per rank):
 * it fails with -EDEADLK instead of waiting for the deadline.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static int op_valid(shoal_op op)
{
    return op == SHOAL_SUM || op == SHOAL_PROD || op == SHOAL_MIN || op == SHOAL_MAX;
}

int shoal_call_group(shoal_ctx *ctx, const char *function, int n, const void *in, size_t len,
                     shoal_buf *out)
{
    if (n < 1 || (unsigned)n > SHOAL_CHANNEL_GROUP_MAX)
        return -EINVAL;
    return shoal_rt_call(ctx, function, (uint32_t)n, in, len, out);
}

int shoal_rank(const shoal_ctx *ctx)
{
    return ctx->coll != NULL ? shoal_coll_rank(ctx->coll) : 0;
}

int shoal_size(const shoal_ctx *ctx)
{
    return ctx->coll != NULL ? shoal_coll_size(ctx->coll) : 1;
}

int shoal_barrier(shoal_ctx *ctx)
{
    return ctx->coll != NULL ? shoal_coll_barrier(ctx->coll) : 0;
}

int shoal_send(shoal_ctx *ctx, int dst, const void *data, size_t len)
{
    shoal_rt_selfmsg_t *m;

    if (ctx->coll != NULL)
        return shoal_coll_send(ctx->coll, dst, data, len);
    if (dst != 0 || (data == NULL && len > 0))
        return -EINVAL;
    if (len > ctx->ch->lay.body_max)
        return -EFBIG;
    if ((m = malloc(sizeof(*m) + len)) == NULL)
        return -ENOMEM;
    m->next = NULL;
    m->len = len;
    if (len > 0)
        memcpy(m->data, data, len);
    if (ctx->selfq_tail != NULL)
        ctx->selfq_tail->next = m;
    else
        ctx->selfq_head = m;
    ctx->selfq_tail = m;
    return 0;
}

int shoal_recv(shoal_ctx *ctx, int src, shoal_buf *out)
{
    shoal_rt_selfmsg_t *m;

    if (ctx->coll != NULL) {
        int me = shoal_coll_rank(ctx->coll);

        if (src == me && out != NULL) {
            /* Only this rank writes both counters of its ring to itself. */
            shoal_arena_mbox *mb = shoal_arena_mbox_of(shoal_coll_arena(ctx->coll), me, me);
            if (atomic_load_explicit(&mb->head, memory_order_relaxed) ==
                atomic_load_explicit(&mb->tail, memory_order_relaxed))
                return -EDEADLK;
        }
        return shoal_coll_recv(ctx->coll, src, out);
    }
    if (src != 0 || out == NULL)
        return -EINVAL;
    /* Nobody else can ever send to us: waiting would never end. */
    if ((m = ctx->selfq_head) == NULL)
        return -EDEADLK;
    ctx->selfq_head = m->next;
    if (ctx->selfq_head == NULL)
        ctx->selfq_tail = NULL;
    /* Kept until the invocation ends: the buffer stays valid until shoal_main returns. */
    m->next = ctx->selfq_done;
    ctx->selfq_done = m;
    out->data = m->data;
    out->len = m->len;
    return 0;
}

int shoal_bcast(shoal_ctx *ctx, int root, const void *data, size_t len, shoal_buf *out)
{
    if (ctx->coll != NULL)
        return shoal_coll_bcast(ctx->coll, root, data, len, out);
    if (root != 0 || out == NULL || (data == NULL && len > 0))
        return -EINVAL;
    out->data = data;
    out->len = len;
    return 0;
}

int shoal_scatter(shoal_ctx *ctx, int root, const shoal_buf *parts, shoal_buf *out)
{
    if (ctx->coll != NULL)
        return shoal_coll_scatter(ctx->coll, root, parts, out);
    if (root != 0 || parts == NULL || out == NULL)
        return -EINVAL;
    *out = parts[0];
    return 0;
}

int shoal_gather(shoal_ctx *ctx, int root, const void *data, size_t len, shoal_buf *parts)
{
    if (ctx->coll != NULL)
        return shoal_coll_gather(ctx->coll, root, data, len, parts);
    if (root != 0 || parts == NULL || (data == NULL && len > 0))
        return -EINVAL;
    parts[0].data = data;
    parts[0].len = len;
    return 0;
}

int shoal_reduce(shoal_ctx *ctx, int root, const void *in, void *out, size_t count,
                 shoal_dtype type, shoal_op op)
{
    size_t size = shoal_coll_dtype_size((int)type);

    if (ctx->coll != NULL)
        return shoal_coll_reduce(ctx->coll, root, in, out, count, type, op);
    if (root != 0 || size == 0 || !op_valid(op) || (count > 0 && (in == NULL || out == NULL)))
        return -EINVAL;
    if (count > SIZE_MAX / size)
        return -EOVERFLOW;
    /* The reduction of one contribution is that contribution. */
    if (count > 0 && in != out)
        memmove(out, in, count * size);
    return 0;
}

int shoal_allreduce(shoal_ctx *ctx, const void *in, void *out, size_t count, shoal_dtype type,
                    shoal_op op)
{
    if (ctx->coll != NULL)
        return shoal_coll_allreduce(ctx->coll, in, out, count, type, op);
    return shoal_reduce(ctx, 0, in, out, count, type, op);
}

int shoal_shuffle(shoal_ctx *ctx, const shoal_buf *send, shoal_buf *recv)
{
    if (ctx->coll != NULL)
        return shoal_coll_shuffle(ctx->coll, send, recv);
    if (send == NULL || recv == NULL)
        return -EINVAL;
    recv[0] = send[0];
    return 0;
}
