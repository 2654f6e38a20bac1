/*
 * group - the group and collective part of shoal.h for an invocation that is not part of a group:
 * rank 0 of a group of size 1. Every collective completes at once with its size-1 meaning (the
 * root's data is everyone's data); messages to oneself queue in order; anything that names
 * another rank is -EINVAL. Issue 3 replaces this file with groups over shared arenas.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime.h"

static size_t dtype_size(shoal_dtype type)
{
    switch (type) {
    case SHOAL_INT32:
    case SHOAL_FLOAT:
        return 4;
    case SHOAL_INT64:
    case SHOAL_UINT64:
    case SHOAL_DOUBLE:
        return 8;
    }
    return 0;
}

static int op_valid(shoal_op op)
{
    return op == SHOAL_SUM || op == SHOAL_PROD || op == SHOAL_MIN || op == SHOAL_MAX;
}

int shoal_call_group(shoal_ctx *ctx, const char *function, int n, const void *in, size_t len,
                     shoal_buf *out)
{
    (void)ctx;
    (void)function;
    (void)n;
    (void)in;
    (void)len;
    (void)out;
    return -ENOSYS;
}

int shoal_rank(const shoal_ctx *ctx)
{
    (void)ctx;
    return 0;
}

int shoal_size(const shoal_ctx *ctx)
{
    (void)ctx;
    return 1;
}

int shoal_barrier(shoal_ctx *ctx)
{
    (void)ctx;
    return 0;
}

int shoal_send(shoal_ctx *ctx, int dst, const void *data, size_t len)
{
    shoal_rt_selfmsg_t *m;

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
    (void)ctx;
    if (root != 0 || out == NULL || (data == NULL && len > 0))
        return -EINVAL;
    out->data = data;
    out->len = len;
    return 0;
}

int shoal_scatter(shoal_ctx *ctx, int root, const shoal_buf *parts, shoal_buf *out)
{
    (void)ctx;
    if (root != 0 || parts == NULL || out == NULL)
        return -EINVAL;
    *out = parts[0];
    return 0;
}

int shoal_gather(shoal_ctx *ctx, int root, const void *data, size_t len, shoal_buf *parts)
{
    (void)ctx;
    if (root != 0 || parts == NULL || (data == NULL && len > 0))
        return -EINVAL;
    parts[0].data = data;
    parts[0].len = len;
    return 0;
}

int shoal_reduce(shoal_ctx *ctx, int root, const void *in, void *out, size_t count,
                 shoal_dtype type, shoal_op op)
{
    size_t size = dtype_size(type);

    (void)ctx;
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
    return shoal_reduce(ctx, 0, in, out, count, type, op);
}

int shoal_shuffle(shoal_ctx *ctx, const shoal_buf *send, shoal_buf *recv)
{
    (void)ctx;
    if (send == NULL || recv == NULL)
        return -EINVAL;
    recv[0] = send[0];
    return 0;
}
