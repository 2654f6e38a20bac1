/*
 * collbench - the benchmark function of bench/transport: run as a group (?group=N, with
 * ?spread=1 or ?transport=redis to pick the path), it times one collective the way a user's
 * function would see it: rank 0 takes the time from leaving a barrier to leaving the barrier after
 * the collective (so every rank has its result), best of several rounds.
 *
 * Query: op = bcast | shuffle | allreduce | gather | xfer, bytes = the size (bcast: the message;
 * shuffle: the total over all pairs; allreduce: the vector, in bytes of doubles; gather: per rank;
 * xfer: one message from rank 0 to the last rank), rounds (default 3).
 * Rank 0 also times a memcpy of min(bytes, 64 MiB) between two warm private buffers (best of 9)
 * at the same moment, in the same sandbox, as the yardstick, and answers JSON:
 *   {"op": ..., "ranks": N, "bytes": B, "rounds": R, "best_ms": ..., "median_ms": ...,
 *    "memcpy_ms": ..., "memcpy_cold_ms": ..., "memcpy_bytes": ...}
 * memcpy_cold_ms is the same copy into freshly mapped memory (page faults included).
 * Outside the timed region every receiver checks a sample of what it got (one byte in 4099 and
 * the last), so that a fast path that moved nothing cannot pass for fast.
 */
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROUNDS 20
#define MEMCPY_MAX ((size_t)64 << 20)

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* The value of key in the query string (key=value&...), or NULL. */
static const char *query_value(shoal_ctx *ctx, const char *key)
{
    const char *q = shoal_meta(ctx, "query");
    size_t kl = strlen(key);

    for (const char *p = q; p != NULL && *p != '\0'; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL)
        if (strncmp(p, key, kl) == 0 && p[kl] == '=')
            return p + kl + 1;
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Byte i of what src sends dst. */
static uint8_t val(int src, int dst, size_t i)
{
    return (uint8_t)(i * 7 + (size_t)src * 31 + (size_t)dst * 17);
}

static int sample_ok(const shoal_buf *b, size_t want, int src, int dst)
{
    const uint8_t *p = b->data;

    if (b->len != want)
        return 0;
    for (size_t i = 0; i < want; i += 4099)
        if (p[i] != val(src, dst, i))
            return 0;
    return want == 0 || p[want - 1] == val(src, dst, want - 1);
}

static void fill(uint8_t *p, size_t len, int src, int dst)
{
    for (size_t i = 0; i < len; i++)
        p[i] = val(src, dst, i);
}

/* Best of 3 copies of len bytes from a warm buffer into freshly mapped memory (its page faults
 * included), in ms: what any first write of that much data costs. */
static double memcpy_cold_ms(size_t len)
{
    uint8_t *a = malloc(len);
    double best = -1;

    if (a == NULL)
        return -1;
    memset(a, 1, len);
    for (int i = 0; i < 3; i++) {
        double t0 = now_ms();
        /* Large allocations are fresh mappings (mmap), released again by free. */
        uint8_t *b = malloc(len);
        if (b == NULL)
            break;
        memcpy(b, a, len);
        double t = now_ms() - t0;
        if (b[len - 1] == 1 && (best < 0 || t < best))
            best = t;
        free(b);
    }
    free(a);
    return best;
}

/* Best of 9 copies of len bytes between two warm buffers, in ms. */
static double memcpy_ms(size_t len)
{
    uint8_t *a = malloc(len), *b = malloc(len);
    double best = -1;

    if (a == NULL || b == NULL)
        goto out;
    memset(a, 1, len);
    memset(b, 2, len);
    for (int i = 0; i < 9; i++) {
        double t0 = now_ms();
        memcpy(b, a, len);
        double t = now_ms() - t0;
        if (best < 0 || t < best)
            best = t;
    }
    /* Keep the copies from being optimised away. */
    if (b[len / 2] != 1)
        best = -1;
out:
    free(a);
    free(b);
    return best;
}

int shoal_main(shoal_ctx *ctx)
{
    int rank = shoal_rank(ctx), n = shoal_size(ctx), rc = 0, bad = 0;
    const char *op = query_value(ctx, "op"), *bs = query_value(ctx, "bytes"),
               *rs = query_value(ctx, "rounds");
    size_t bytes = bs ? strtoull(bs, NULL, 10) : 0, per;
    int rounds = rs ? atoi(rs) : 3;
    double t[MAX_ROUNDS], mc = 0, mcc = 0;
    uint8_t *buf = NULL;
    double *dv = NULL, *dout = NULL;
    shoal_buf *parts = calloc((size_t)n, sizeof(*parts)), *send = calloc((size_t)n, sizeof(*send));
    shoal_buf b;
    enum { BCAST, SHUFFLE, ALLREDUCE, GATHER, XFER } kind;

    if (op == NULL || bytes == 0 || bytes > ((size_t)4 << 30) || rounds < 1 || rounds > MAX_ROUNDS)
        return shoal_error(ctx, "collbench: need op=..., bytes=1..4 GiB, rounds=1..%d", MAX_ROUNDS);
    if (!strncmp(op, "bcast", 5))
        kind = BCAST;
    else if (!strncmp(op, "shuffle", 7))
        kind = SHUFFLE;
    else if (!strncmp(op, "allreduce", 9))
        kind = ALLREDUCE;
    else if (!strncmp(op, "gather", 6))
        kind = GATHER;
    else if (!strncmp(op, "xfer", 4))
        kind = XFER;
    else
        return shoal_error(ctx, "collbench: op must be bcast, shuffle, allreduce, gather or xfer");
    if (parts == NULL || send == NULL) {
        rc = shoal_error(ctx, "collbench: out of memory");
        goto out;
    }
    per = kind == SHUFFLE ? bytes / ((size_t)n * (size_t)n) : bytes;
    /* Inputs are made (and their pages touched) before the timed rounds. */
    switch (kind) {
    case BCAST:
    case XFER:
        if (rank == 0 && (buf = malloc(bytes)) != NULL)
            fill(buf, bytes, 0, -1);
        break;
    case GATHER:
        if ((buf = malloc(bytes)) != NULL)
            fill(buf, bytes, rank, 0);
        break;
    case SHUFFLE:
        if ((buf = malloc(per * (size_t)n + 1)) != NULL)
            for (int i = 0; i < n; i++) {
                fill(buf + per * (size_t)i, per, rank, i);
                send[i] = (shoal_buf){buf + per * (size_t)i, per};
            }
        break;
    case ALLREDUCE:
        dv = malloc(bytes);
        dout = malloc(bytes);
        if (dv != NULL && dout != NULL) {
            for (size_t i = 0; i < bytes / 8; i++)
                dv[i] = (double)(i % 1000) + rank;
            memset(dout, 1, bytes);
            buf = (uint8_t *)dv;
        }
        break;
    }
    if (buf == NULL && !((kind == BCAST || kind == XFER) && rank != 0)) {
        rc = shoal_error(ctx, "collbench: rank %d cannot allocate %zu bytes", rank, bytes);
        goto out;
    }
    if (rank == 0) {
        mc = memcpy_ms(bytes < MEMCPY_MAX ? bytes : MEMCPY_MAX);
        mcc = memcpy_cold_ms(bytes < MEMCPY_MAX ? bytes : MEMCPY_MAX);
    }

    for (int r = 0; r < rounds && rc == 0; r++) {
        if ((rc = shoal_barrier(ctx)) < 0)
            break;
        double t0 = now_ms();
        switch (kind) {
        case BCAST:
            rc = shoal_bcast(ctx, 0, rank == 0 ? buf : NULL, rank == 0 ? bytes : 0, &b);
            break;
        case XFER:
            if (rank == 0)
                rc = shoal_send(ctx, n - 1, buf, bytes);
            if (rc == 0 && rank == n - 1)
                rc = shoal_recv(ctx, 0, &b);
            break;
        case GATHER:
            rc = shoal_gather(ctx, 0, buf, bytes, parts);
            break;
        case SHUFFLE:
            rc = shoal_shuffle(ctx, send, parts);
            break;
        case ALLREDUCE:
            rc = shoal_allreduce(ctx, dv, dout, bytes / 8, SHOAL_DOUBLE, SHOAL_SUM);
            break;
        }
        if (rc == 0)
            rc = shoal_barrier(ctx);
        t[r] = now_ms() - t0;
        if (rc < 0)
            break;
        /* Untimed: check a sample of what arrived. */
        switch (kind) {
        case BCAST:
            bad |= !sample_ok(&b, bytes, 0, -1);
            break;
        case XFER:
            bad |= rank == n - 1 && !sample_ok(&b, bytes, 0, -1);
            break;
        case GATHER:
            for (int i = 0; rank == 0 && i < n; i++)
                bad |= !sample_ok(&parts[i], bytes, i, 0);
            break;
        case SHUFFLE:
            for (int i = 0; i < n; i++)
                bad |= !sample_ok(&parts[i], per, i, rank);
            break;
        case ALLREDUCE:
            for (size_t i = 0; i < bytes / 8; i += 4099)
                bad |= dout[i] != (double)(i % 1000) * n + (double)n * (n - 1) / 2;
            break;
        }
    }
    if (rc < 0) {
        rc = shoal_error(ctx, "collbench: rank %d: %s failed: %s", rank, op, strerror(-rc));
        goto out;
    }
    if (bad) {
        rc = shoal_error(ctx, "collbench: rank %d received wrong data in %s", rank, op);
        goto out;
    }
    if (rank == 0) {
        char out[400];
        double best = t[0];
        for (int r = 1; r < rounds; r++)
            best = t[r] < best ? t[r] : best;
        qsort(t, (size_t)rounds, sizeof(t[0]), cmp_double);
        int len = snprintf(out, sizeof(out),
                           "{\"op\": \"%s\", \"ranks\": %d, \"bytes\": %zu, \"rounds\": %d, "
                           "\"best_ms\": %.3f, \"median_ms\": %.3f, \"memcpy_ms\": %.3f, "
                           "\"memcpy_cold_ms\": %.3f, \"memcpy_bytes\": %zu}\n",
                           kind == BCAST       ? "bcast"
                           : kind == SHUFFLE   ? "shuffle"
                           : kind == ALLREDUCE ? "allreduce"
                           : kind == GATHER    ? "gather"
                                               : "xfer",
                           n, bytes, rounds, best, t[rounds / 2], mc, mcc,
                           bytes < MEMCPY_MAX ? bytes : MEMCPY_MAX);
        shoal_set_meta(ctx, "header:content-type", "application/json");
        rc = shoal_output(ctx, out, (size_t)len);
    }
out:
    free(kind == ALLREDUCE ? NULL : buf);
    free(dv);
    free(dout);
    free(parts);
    free(send);
    return rc < 0 ? -1 : 0;
}
