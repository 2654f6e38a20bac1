/*
 * A group function for tests/worker/test_worker.c, compiled at test time against include/shoal.h
 * like any user function. The input is a command:
 *
 *   coll N ROOT BASE BIG  every collective among N ranks (ROOT -1 = the last rank), parts of BASE
 *                         bytes (shuffle varies them per pair when BASE > 1) and, if BIG is 1, one
 *                         part per collective of 64 MiB + 3 bytes; each rank checks what it
 *                         received byte for byte against a deterministic pattern, and again at the
 *                         end (buffers stay valid until shoal_main returns). Rank 0 answers "ok".
 *   crash R | sleep R | fail R | leave R
 *                         rank R segfaults after a barrier / never arrives / fails / returns at
 *                         once; the others wait in a collective and report what it returned.
 *   trivial               rank 0 answers "ok" (no collective); barrier: one barrier, then "ok".
 *   bench LEN ITERS       times bcast of LEN bytes from rank 0 until every rank has it (bcast and
 *                         a barrier), the root's bcast call alone, and a memcpy of LEN bytes
 *                         into touched memory, over ITERS rounds; rank 0 answers the best
 *                         rounds.
 *   call N CMD...         shoal_call_group(self, N, "CMD...") and answers its output.
 *   whoami                every rank answers "size=N" with status 203 (rank 0) or 500 and a
 *                         header x-group-size: N (rank 0) or "wrong".
 */
#include <shoal.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BIG ((64u << 20) + 3)
#define HOLD 16 /* received buffers re-checked at the end */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static uint64_t seed(int kind, int src, int dst)
{
    return (uint64_t)kind * 1000003u + (uint64_t)src * 1009u + (uint64_t)dst;
}

static void fill(uint8_t *p, size_t len, uint64_t s)
{
    size_t i;
    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t v = mix(s * 0x9e3779b97f4a7c15ull + i);
        memcpy(p + i, &v, 8);
    }
    if (i < len) {
        uint64_t v = mix(s * 0x9e3779b97f4a7c15ull + i);
        memcpy(p + i, &v, len - i);
    }
}

/* The first byte of b that differs from the pattern, or -1. */
static long check(const shoal_buf *b, size_t len, uint64_t s)
{
    const uint8_t *p = b->data;
    size_t i;

    if (b->len != len)
        return -2;
    if (len > 0 && p == NULL)
        return 0;
    for (i = 0; i + 8 <= len; i += 8) {
        uint64_t v = mix(s * 0x9e3779b97f4a7c15ull + i);
        if (memcmp(p + i, &v, 8) != 0)
            return (long)i;
    }
    if (i < len) {
        uint64_t v = mix(s * 0x9e3779b97f4a7c15ull + i);
        if (memcmp(p + i, &v, len - i) != 0)
            return (long)i;
    }
    return -1;
}

static uint8_t *pattern(size_t len, uint64_t s)
{
    uint8_t *p = malloc(len ? len : 1);
    if (p != NULL)
        fill(p, len, s);
    return p;
}

struct held {
    shoal_buf b;
    size_t len;
    uint64_t s;
};

struct run {
    shoal_ctx *c;
    int rank, n, root, big;
    size_t base;
    struct held held[HOLD];
    int nheld;
};

/* Size of the part of collective kind from src to dst. */
static size_t part(const struct run *r, int kind, int src, int dst)
{
    int target = (r->root + 1) % r->n;

    if (r->big) {
        if ((kind == 1) || (kind == 2 && dst == target) || (kind == 3 && src == target) ||
            (kind == 4 && src == 0) || (kind == 6 && src == 0 && dst == r->n - 1))
            return BIG;
    }
    if (kind == 6 && r->base > 1)
        return r->base + (size_t)((src + 2 * dst) % 3);
    return r->base;
}

/* Checks a received buffer and keeps it for the final re-check. */
static int got(struct run *r, const char *what, int from, const shoal_buf *b, size_t len,
               uint64_t s)
{
    long at = check(b, len, s);

    if (at != -1)
        return shoal_error(r->c, "rank %d: %s from %d: %s %ld (len %zu, want %zu)", r->rank, what,
                           from, at == -2 ? "wrong length" : "mismatch at byte", at, b->len, len);
    if (r->nheld < HOLD)
        r->held[r->nheld++] = (struct held){*b, len, s};
    return 0;
}

static int coll(shoal_ctx *c, int want_n, int root, size_t base, int big)
{
    struct run r = {.c = c, .rank = shoal_rank(c), .n = shoal_size(c), .base = base, .big = big};
    shoal_buf out, *parts, *recv;
    uint8_t *mine;
    size_t len, count;
    int n = r.n, rank = r.rank, e, i;

    if (n != want_n)
        return shoal_error(c, "rank %d: size %d, expected %d", rank, n, want_n);
    r.root = root = root < 0 ? n - 1 : root;
    parts = calloc((size_t)n, sizeof(*parts));
    recv = calloc((size_t)n, sizeof(*recv));
    if (parts == NULL || recv == NULL)
        return shoal_error(c, "out of memory");
    if ((e = shoal_barrier(c)) < 0)
        return shoal_error(c, "rank %d: barrier: %d", rank, e);

    /* bcast: non-roots pass nothing. */
    len = part(&r, 1, root, 0);
    mine = rank == root ? pattern(len, seed(1, root, 0)) : NULL;
    e = shoal_bcast(c, root, mine, rank == root ? len : 0, &out);
    free(mine);
    if (e < 0)
        return shoal_error(c, "rank %d: bcast: %d", rank, e);
    if (got(&r, "bcast", root, &out, len, seed(1, root, 0)) < 0)
        return -1;

    /* scatter: non-roots pass a zeroed array. */
    memset(parts, 0, (size_t)n * sizeof(*parts));
    if (rank == root)
        for (i = 0; i < n; i++) {
            size_t l = part(&r, 2, root, i);
            parts[i] = (shoal_buf){pattern(l, seed(2, root, i)), l};
        }
    e = shoal_scatter(c, root, parts, &out);
    if (rank == root)
        for (i = 0; i < n; i++)
            free((void *)parts[i].data);
    if (e < 0)
        return shoal_error(c, "rank %d: scatter: %d", rank, e);
    if (got(&r, "scatter", root, &out, part(&r, 2, root, rank), seed(2, root, rank)) < 0)
        return -1;

    /* gather */
    memset(parts, 0, (size_t)n * sizeof(*parts));
    len = part(&r, 3, rank, root);
    mine = pattern(len, seed(3, rank, root));
    e = shoal_gather(c, root, mine, len, parts);
    free(mine);
    if (e < 0)
        return shoal_error(c, "rank %d: gather: %d", rank, e);
    if (rank == root)
        for (i = 0; i < n; i++)
            if (got(&r, "gather", i, &parts[i], part(&r, 3, i, root), seed(3, i, root)) < 0)
                return -1;

    /* send/recv: one message to the next rank and one to oneself, in order. */
    {
        int next = (rank + 1) % n, prev = (rank + n - 1) % n;
        len = part(&r, 4, rank, next);
        mine = pattern(len, seed(4, rank, next));
        e = shoal_send(c, next, mine, len);
        free(mine);
        if (e < 0)
            return shoal_error(c, "rank %d: send: %d", rank, e);
        mine = pattern(r.base, seed(5, rank, rank));
        e = shoal_send(c, rank, mine, r.base);
        free(mine);
        if (e < 0)
            return shoal_error(c, "rank %d: send to self: %d", rank, e);
        if ((e = shoal_recv(c, prev, &out)) < 0)
            return shoal_error(c, "rank %d: recv: %d", rank, e);
        if (got(&r, "recv", prev, &out, part(&r, 4, prev, rank), seed(4, prev, rank)) < 0)
            return -1;
        if ((e = shoal_recv(c, rank, &out)) < 0)
            return shoal_error(c, "rank %d: recv from self: %d", rank, e);
        if (got(&r, "recv self", rank, &out, r.base, seed(5, rank, rank)) < 0)
            return -1;
        if ((e = shoal_recv(c, rank, &out)) != -EDEADLK)
            return shoal_error(c, "rank %d: recv from self with nothing sent: %d", rank, e);
    }

    /* reductions: exact results (integers, and doubles that are small integers or halves). */
    count = big ? (1u << 20) + 3 : base;
    {
        int64_t *a = malloc((count ? count : 1) * 8), *b = malloc((count ? count : 1) * 8);
        double *x = malloc((count ? count : 1) * 8), *y = malloc((count ? count : 1) * 8);
        int32_t *u = malloc((count ? count : 1) * 4), *v = malloc((count ? count : 1) * 4);
        if (!a || !b || !x || !y || !u || !v)
            return shoal_error(c, "out of memory");
        for (size_t k = 0; k < count; k++) {
            a[k] = (int64_t)rank * 1000 + (int64_t)k;
            x[k] = (rank + 1) * 0.5 + (double)(k % 1000);
            u[k] = (int32_t)((rank * 7 + (int)k) % 13) - 6;
        }
        memset(b, 0, (count ? count : 1) * 8);
        if ((e = shoal_reduce(c, root, a, b, count, SHOAL_INT64, SHOAL_SUM)) < 0)
            return shoal_error(c, "rank %d: reduce: %d", rank, e);
        if (rank == root)
            for (size_t k = 0; k < count; k++)
                if (b[k] != 1000 * (int64_t)n * (n - 1) / 2 + (int64_t)n * (int64_t)k)
                    return shoal_error(c, "rank %d: reduce sum wrong at %zu", rank, k);
        if ((e = shoal_allreduce(c, x, y, count, SHOAL_DOUBLE, SHOAL_SUM)) < 0)
            return shoal_error(c, "rank %d: allreduce: %d", rank, e);
        for (size_t k = 0; k < count; k++)
            if (y[k] != 0.25 * n * (n + 1) + (double)n * (double)(k % 1000))
                return shoal_error(c, "rank %d: allreduce sum wrong at %zu", rank, k);
        if ((e = shoal_allreduce(c, u, v, count, SHOAL_INT32, SHOAL_MAX)) < 0)
            return shoal_error(c, "rank %d: allreduce max: %d", rank, e);
        for (size_t k = 0; k < count; k++) {
            int32_t want = -100;
            for (int q = 0; q < n; q++) {
                int32_t t = (int32_t)((q * 7 + (int)k) % 13) - 6;
                want = t > want ? t : want;
            }
            if (v[k] != want)
                return shoal_error(c, "rank %d: allreduce max wrong at %zu", rank, k);
        }
        /* In place, and MIN. */
        if ((e = shoal_allreduce(c, u, u, count, SHOAL_INT32, SHOAL_MIN)) < 0)
            return shoal_error(c, "rank %d: allreduce min: %d", rank, e);
        for (size_t k = 0; k < count && k < 4096; k++) {
            int32_t want = 100;
            for (int q = 0; q < n; q++) {
                int32_t t = (int32_t)((q * 7 + (int)k) % 13) - 6;
                want = t < want ? t : want;
            }
            if (u[k] != want)
                return shoal_error(c, "rank %d: allreduce min wrong at %zu", rank, k);
        }
        free(a), free(b), free(x), free(y), free(u), free(v);
    }

    /* shuffle: a different size per pair. */
    for (i = 0; i < n; i++) {
        size_t l = part(&r, 6, rank, i);
        parts[i] = (shoal_buf){pattern(l, seed(6, rank, i)), l};
    }
    memset(recv, 0, (size_t)n * sizeof(*recv));
    e = shoal_shuffle(c, parts, recv);
    for (i = 0; i < n; i++)
        free((void *)parts[i].data);
    if (e < 0)
        return shoal_error(c, "rank %d: shuffle: %d", rank, e);
    for (i = 0; i < n; i++)
        if (got(&r, "shuffle", i, &recv[i], part(&r, 6, i, rank), seed(6, i, rank)) < 0)
            return -1;

    if ((e = shoal_barrier(c)) < 0)
        return shoal_error(c, "rank %d: final barrier: %d", rank, e);
    /* Everything received is still there. */
    for (i = 0; i < r.nheld; i++)
        if (check(&r.held[i].b, r.held[i].len, r.held[i].s) != -1)
            return shoal_error(c, "rank %d: buffer %d changed before shoal_main returned", rank, i);
    free(parts);
    free(recv);
    return rank == 0 ? shoal_output(c, "ok", 2) : 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int bench(shoal_ctx *c, size_t len, int iters)
{
    int rank = shoal_rank(c), e;
    uint8_t *src = pattern(len, 1), *dst = malloc(len ? len : 1);
    uint64_t best_b = UINT64_MAX, best_r = UINT64_MAX, best_m = UINT64_MAX, t, tr;
    shoal_buf out;
    char msg[128];

    if (src == NULL || dst == NULL)
        return shoal_error(c, "out of memory");
    memset(dst, 0, len);
    for (int i = 0; i < iters; i++) {
        t = now_us();
        memcpy(dst, src, len);
        t = now_us() - t;
        best_m = t < best_m ? t : best_m;
    }
    for (int i = 0; i < iters; i++) {
        if ((e = shoal_barrier(c)) < 0)
            return shoal_error(c, "barrier: %d", e);
        t = now_us();
        e = shoal_bcast(c, 0, rank == 0 ? src : NULL, rank == 0 ? len : 0, &out);
        tr = now_us() - t;
        if (e == 0)
            e = shoal_barrier(c); /* every rank holds its view */
        t = now_us() - t;
        if (e < 0)
            return shoal_error(c, "bcast: %d", e);
        if (out.len != len || (len > 0 && ((const uint8_t *)out.data)[len - 1] != src[len - 1]))
            return shoal_error(c, "bcast: wrong data");
        best_b = t < best_b ? t : best_b;
        best_r = tr < best_r ? tr : best_r;
    }
    free(src);
    free(dst);
    if (rank != 0)
        return 0;
    snprintf(msg, sizeof(msg), "bcast_us=%llu (root's own call %llu) memcpy_us=%llu",
             (unsigned long long)best_b, (unsigned long long)best_r, (unsigned long long)best_m);
    return shoal_output(c, msg, strlen(msg));
}

int shoal_main(shoal_ctx *c)
{
    shoal_buf in = shoal_input(c), out;
    char cmd[256], what[16] = "";
    int rank = shoal_rank(c), a = 0, b = 0, d = 0, e, off = 0;
    long base = 0;

    snprintf(cmd, sizeof(cmd), "%.*s", (int)(in.len < 255 ? in.len : 255), (const char *)in.data);
    sscanf(cmd, "%15s %n", what, &off);
    if (strcmp(what, "coll") == 0) {
        if (sscanf(cmd + off, "%d %d %ld %d", &a, &b, &base, &d) != 4)
            return shoal_error(c, "bad coll command");
        return coll(c, a, b, (size_t)base, d);
    }
    if (strcmp(what, "crash") == 0 || strcmp(what, "sleep") == 0 || strcmp(what, "fail") == 0 ||
        strcmp(what, "leave") == 0) {
        a = atoi(cmd + off);
        if (rank == a) {
            if (what[0] == 's')
                for (;;)
                    pause();
            if (what[0] == 'f')
                return shoal_error(c, "rank %d says no", rank);
            if (what[0] == 'l')
                return 0;
            shoal_barrier(c);
            *(volatile int *)0 = 1;
        }
        e = shoal_barrier(c);
        if (e == 0 && what[0] == 'c')
            e = shoal_bcast(c, a, NULL, 0, &out);
        return shoal_error(c, "rank %d: the collective returned %d", rank, e);
    }
    if (strcmp(what, "trivial") == 0)
        return rank == 0 ? shoal_output(c, "ok", 2) : 0;
    if (strcmp(what, "barrier") == 0) {
        if ((e = shoal_barrier(c)) < 0)
            return shoal_error(c, "barrier: %d", e);
        return rank == 0 ? shoal_output(c, "ok", 2) : 0;
    }
    if (strcmp(what, "whoami") == 0) {
        /* Only rank 0's answer counts: its status and headers, not the others'. */
        snprintf(cmd, sizeof(cmd), "%d", shoal_size(c));
        shoal_set_meta(c, "status", rank == 0 ? "203" : "500");
        shoal_set_meta(c, "header:x-group-size", rank == 0 ? cmd : "wrong");
        snprintf(cmd, sizeof(cmd), "size=%d", shoal_size(c));
        return shoal_output(c, cmd, strlen(cmd));
    }
    if (strcmp(what, "bench") == 0) {
        if (sscanf(cmd + off, "%ld %d", &base, &a) != 2)
            return shoal_error(c, "bad bench command");
        return bench(c, (size_t)base, a);
    }
    if (strcmp(what, "call") == 0) {
        if (sscanf(cmd + off, "%d %n", &a, &b) != 1)
            return shoal_error(c, "bad call command");
        e = shoal_call_group(c, "group", a, cmd + off + b, strlen(cmd + off + b), &out);
        if (e < 0)
            return shoal_error(c, "call_group: %d: %.*s", e, (int)out.len, (const char *)out.data);
        return shoal_output(c, out.data, out.len);
    }
    return shoal_error(c, "unknown command %s", what);
}
