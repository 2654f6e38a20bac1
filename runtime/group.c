/*
 * group - the group and collective part of shoal.h.
 *
 * Inside a group (the invocation came with SHOAL_INVOKE_GROUP and runtime.c joined the group's
 * arena before shoal_main), every call maps 1:1 onto the same-node collective engine
 * (transport/coll.h): buffers it hands out are views into the arena and stay valid until
 * shoal_main returns, when runtime.c leaves the group. The engine ignores what does not matter on
 * a rank (parts of scatter and gather, bcast's data and reduce's out away from the root), so a
 * non-root may pass NULL or zeroed arrays there. With ?transport=redis (ctx->redis set) every
 * call goes to the Redis baseline instead (runtime/redis.h), with global ranks. A group spread
 * over several nodes (ctx->net set) goes through the hierarchical engine (transport/hcoll.h,
 * runtime/net.h), also with global ranks.
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

/* Outside a group, what a collective hands out is a copy of the caller's bytes kept until the
 * invocation ends (like a received self-message), not a view of the caller's buffer: as in a
 * group, the caller may free or reuse its buffer at once and the shoal_buf stays valid. */
static int keep_copy(shoal_ctx *ctx, const void *data, size_t len, shoal_buf *out)
{
    shoal_rt_selfmsg_t *m;

    /* Bounded by the instance's memory limit, like any allocation of the function's. */
    if ((m = malloc(sizeof(*m) + len)) == NULL)
        return -ENOMEM;
    m->len = len;
    if (len > 0)
        memcpy(m->data, data, len);
    m->next = ctx->selfq_done;
    ctx->selfq_done = m;
    out->data = m->data;
    out->len = len;
    return 0;
}

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
    if (ctx->redis != NULL)
        return shoal_rt_redis_rank(ctx->redis);
    if (ctx->net != NULL)
        return shoal_hcoll_rank(ctx->net->hc);
    return ctx->coll != NULL ? shoal_coll_rank(ctx->coll) : 0;
}

int shoal_size(const shoal_ctx *ctx)
{
    if (ctx->redis != NULL)
        return shoal_rt_redis_size(ctx->redis);
    if (ctx->net != NULL)
        return shoal_hcoll_size(ctx->net->hc);
    return ctx->coll != NULL ? shoal_coll_size(ctx->coll) : 1;
}

int shoal_barrier(shoal_ctx *ctx)
{
    if (ctx->redis != NULL)
        return shoal_rt_redis_barrier(ctx->redis);
    if (ctx->net != NULL)
        return shoal_hcoll_barrier(ctx->net->hc);
    return ctx->coll != NULL ? shoal_coll_barrier(ctx->coll) : 0;
}

int shoal_send(shoal_ctx *ctx, int dst, const void *data, size_t len)
{
    shoal_rt_selfmsg_t *m;

    if (ctx->redis != NULL)
        return shoal_rt_redis_send(ctx->redis, dst, data, len);
    if (ctx->net != NULL)
        return shoal_hcoll_send(ctx->net->hc, dst, data, len);
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

    if (ctx->redis != NULL)
        return shoal_rt_redis_recv(ctx->redis, src, out);
    if (ctx->net != NULL)
        return shoal_hcoll_recv(ctx->net->hc, src, out);
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
    if (ctx->redis != NULL)
        return shoal_rt_redis_bcast(ctx->redis, root, data, len, out);
    if (ctx->net != NULL)
        return shoal_hcoll_bcast(ctx->net->hc, root, data, len, out);
    if (ctx->coll != NULL)
        return shoal_coll_bcast(ctx->coll, root, data, len, out);
    if (root != 0 || out == NULL || (data == NULL && len > 0))
        return -EINVAL;
    return keep_copy(ctx, data, len, out);
}

int shoal_scatter(shoal_ctx *ctx, int root, const shoal_buf *parts, shoal_buf *out)
{
    if (ctx->redis != NULL)
        return shoal_rt_redis_scatter(ctx->redis, root, parts, out);
    if (ctx->net != NULL)
        return shoal_hcoll_scatter(ctx->net->hc, root, parts, out);
    if (ctx->coll != NULL)
        return shoal_coll_scatter(ctx->coll, root, parts, out);
    if (root != 0 || parts == NULL || out == NULL || (parts[0].data == NULL && parts[0].len > 0))
        return -EINVAL;
    return keep_copy(ctx, parts[0].data, parts[0].len, out);
}

int shoal_gather(shoal_ctx *ctx, int root, const void *data, size_t len, shoal_buf *parts)
{
    if (ctx->redis != NULL)
        return shoal_rt_redis_gather(ctx->redis, root, data, len, parts);
    if (ctx->net != NULL)
        return shoal_hcoll_gather(ctx->net->hc, root, data, len, parts);
    if (ctx->coll != NULL)
        return shoal_coll_gather(ctx->coll, root, data, len, parts);
    if (root != 0 || parts == NULL || (data == NULL && len > 0))
        return -EINVAL;
    return keep_copy(ctx, data, len, &parts[0]);
}

int shoal_reduce(shoal_ctx *ctx, int root, const void *in, void *out, size_t count,
                 shoal_dtype type, shoal_op op)
{
    size_t size = shoal_coll_dtype_size((int)type);

    if (ctx->redis != NULL)
        return shoal_rt_redis_reduce(ctx->redis, root, in, out, count, type, op);
    if (ctx->net != NULL)
        return shoal_hcoll_reduce(ctx->net->hc, root, in, out, count, type, op);
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
    if (ctx->redis != NULL)
        return shoal_rt_redis_allreduce(ctx->redis, in, out, count, type, op);
    if (ctx->net != NULL)
        return shoal_hcoll_allreduce(ctx->net->hc, in, out, count, type, op);
    if (ctx->coll != NULL)
        return shoal_coll_allreduce(ctx->coll, in, out, count, type, op);
    return shoal_reduce(ctx, 0, in, out, count, type, op);
}

int shoal_shuffle(shoal_ctx *ctx, const shoal_buf *send, shoal_buf *recv)
{
    if (ctx->redis != NULL)
        return shoal_rt_redis_shuffle(ctx->redis, send, recv);
    if (ctx->net != NULL)
        return shoal_hcoll_shuffle(ctx->net->hc, send, recv);
    if (ctx->coll != NULL)
        return shoal_coll_shuffle(ctx->coll, send, recv);
    if (send == NULL || recv == NULL || (send[0].data == NULL && send[0].len > 0))
        return -EINVAL;
    return keep_copy(ctx, send[0].data, send[0].len, &recv[0]);
}
