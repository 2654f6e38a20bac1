/*
 * fn_colls - the function the collectives suite (tests/e2e/test_collectives.c) runs as a group:
 * every collective of include/shoal.h for the group's size, checked byte for byte against
 * deterministic patterns, so that one invocation answers "ok" or names exactly what went wrong
 * ("rank 2: scatter root 16 size odd: part byte 17 is 0x3a, expected 0x45").
 *
 * Every rank runs the same sequence of collectives (a group must), roots 0 and the last rank:
 *  - barriers;
 *  - send/recv around a ring (two messages per rank, received in send order);
 *  - bcast, scatter and gather;
 *  - shuffle with a different size for every (source, destination) pair;
 *  - reduce and allreduce over every dtype and op, with values whose results are exact in every
 *    dtype (small integers), so that the order in which a backend combines does not matter.
 * Sizes come in classes: 0 B, 1 B, odd (4099 B; 1001 elements for reductions) and mixed (a
 * different size per pair, zero for a third of the pairs). With the query parameter big=1 the
 * function instead runs each collective once with one part of 64 MiB + 1 B (reductions: 8 Mi
 * doubles), the others small, which checks the large-payload path without multiplying the memory
 * by the number of ranks or the run time by the number of size classes.
 * Every received buffer is checked when it arrives and once more after the last collective: the
 * API promises that they stay valid until shoal_main returns.
 * The query parameter lie=R is the suite's negative control: rank R flips one byte of its odd-sized
 * gather part to root 0, which the root must report.
 *
 * Built as a shared object by the Makefile (BUILD/tests/e2e/fn_colls.so) against include/shoal.h
 * only, like any user function.
 */
#include <shoal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BIG_PART ((size_t)(64u << 20) + 1) /* >= 64 MiB, odd */
#define BIG_COUNT ((size_t)8 << 20)        /* doubles: 64 MiB */
#define MAX_KEPT 8192                      /* received buffers re-checked at the end */

enum { K_RING = 1, K_BCAST, K_SCATTER, K_GATHER, K_SHUFFLE };
enum { C_ZERO, C_ONE, C_ODD, C_MIXED, C_BIG, NCLASSES };
static const char *const CLASS_NAME[NCLASSES] = {"0 B", "1 B", "odd", "mixed", "big"};
static const char *const DTYPE_NAME[] = {"int32", "int64", "uint64", "float", "double"};
static const char *const OP_NAME[] = {"sum", "prod", "min", "max"};

/* A received buffer and the pattern it must hold until shoal_main returns. */
struct kept {
    const uint8_t *data;
    size_t len;
    uint32_t tag;
};

struct run {
    shoal_ctx *ctx;
    int rank, n, big;
    double lap;        /* big parts: when the previous collective ended (ms) */
    int lie;           /* the rank that corrupts one byte of its odd gather part to root 0, or -1 */
    int ncoll;         /* collectives completed */
    uint64_t checked;  /* bytes compared */
    struct kept *kept; /* MAX_KEPT entries */
    int nkept;
};

/* The pattern of one part: a tag that names who sent it to whom in which collective, and a byte
 * per offset that differs from its neighbours, so that a part mixed up with another, shifted or
 * cut is caught. */
static uint32_t tag_of(int kind, int seq, int src, int dst)
{
    uint32_t x = (uint32_t)kind * 0x9e3779b1u ^ (uint32_t)seq * 0x85ebca6bu ^
                 (uint32_t)src * 0xc2b2ae35u ^ (uint32_t)dst * 0x27d4eb2fu;
    x ^= x >> 15;
    x *= 0x2c1b3c6du;
    return x ^ (x >> 12);
}

/* The pattern is made of 64-bit words (one multiply per 8 bytes, so that checking hundreds of MiB
 * stays cheap); byte i is byte i % 8 (little-endian) of word i / 8. */
static inline uint64_t pat_word(uint32_t tag, size_t w)
{
    uint64_t x = ((uint64_t)w + tag) * 0x9e3779b97f4a7c15ull;
    return x ^ (x >> 29);
}

static inline uint8_t pat(uint32_t tag, size_t i)
{
    return (uint8_t)(pat_word(tag, i >> 3) >> ((i & 7) * 8));
}

static void fill(uint8_t *p, size_t len, uint32_t tag)
{
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w = pat_word(tag, i >> 3);
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] = pat(tag, i);
}

/* The offset of the first byte of p that differs from the pattern, or len. */
static size_t first_bad(const uint8_t *p, size_t len, uint32_t tag)
{
    size_t i = 0;

    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w != pat_word(tag, i >> 3))
            break;
    }
    for (; i < len; i++)
        if (p[i] != pat(tag, i))
            return i;
    return len;
}

/* Fails the invocation with "rank R: what: ..." (printf-style what). */
static int fail(struct run *r, const char *fmt, ...)
{
    char what[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return shoal_error(r->ctx, "rank %d of %d: %s", r->rank, r->n, what);
}

/* Checks a received part: its length, then every byte; remembers it for the final re-check. */
static int check(struct run *r, const shoal_buf *b, size_t want, uint32_t tag, const char *what)
{
    const uint8_t *p = b->data;

    if (b->len != want)
        return fail(r, "%s: got %zu bytes, expected %zu", what, b->len, want);
    if (want > 0 && p == NULL)
        return fail(r, "%s: NULL data for %zu bytes", what, want);
    size_t i = first_bad(p, want, tag);
    if (i < want)
        return fail(r, "%s: byte %zu of %zu is 0x%02x, expected 0x%02x", what, i, want, p[i],
                    pat(tag, i));
    r->checked += want;
    if (r->nkept < MAX_KEPT)
        r->kept[r->nkept++] = (struct kept){p, want, tag};
    return 0;
}

static double now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int coll_rc(struct run *r, int rc, const char *what)
{
    if (rc < 0)
        return fail(r, "%s returned %d (%s)", what, rc, strerror(-rc));
    r->ncoll++;
    /* With big parts, each step's time (since the previous one, checks included) goes to the
     * log: that is where a slow backend shows. */
    if (r->big && r->rank == 0) {
        double t = now_ms();
        shoal_log(r->ctx, "colls: %s done after %.1f ms", what, t - r->lap);
        r->lap = t;
    }
    return 0;
}

/* The size of the part src sends dst in a size class, in a collective rooted at root (-1: ring
 * and shuffle). */
static size_t part_len(const struct run *r, int cls, int root, int src, int dst)
{
    int big;

    switch (cls) {
    case C_ZERO:
        return 0;
    case C_ONE:
        return 1;
    case C_ODD:
        return 4099;
    case C_MIXED:
        return (src + 2 * dst) % 3 == 0 ? 0 : 1 + (size_t)(src * 977 + dst * 131) % 5003;
    default:
        /* One big part, the others small and odd: from the last rank to rank 0 in a ring or a
         * shuffle, between the root and the rank after it in scatter and gather (a rank to
         * itself in a group of one). */
        if (root < 0)
            big = src == r->n - 1 && dst == 0;
        else
            big = (src == root && dst == (root + 1) % r->n) ||
                  (dst == root && src == (root + 1) % r->n);
        return big ? BIG_PART : 3 + (size_t)(src + dst) % 5;
    }
}

static int ring(struct run *r, int cls, int seq)
{
    int next = (r->rank + 1) % r->n, prev = (r->rank + r->n - 1) % r->n, rc;
    size_t lens[2] = {part_len(r, cls, -1, r->rank, next),
                      part_len(r, cls, -1, r->rank, next) / 2 + 1};
    char what[128];

    for (int m = 0; m < 2; m++) {
        uint8_t *p = malloc(lens[m]);
        if (p == NULL)
            return fail(r, "ring: cannot allocate %zu bytes", lens[m]);
        fill(p, lens[m], tag_of(K_RING, seq * 2 + m, r->rank, next));
        rc = shoal_send(r->ctx, next, p, lens[m]);
        free(p);
        snprintf(what, sizeof(what), "send to %d size %s message %d", next, CLASS_NAME[cls], m);
        if (coll_rc(r, rc, what) < 0)
            return -1;
    }
    for (int m = 0; m < 2; m++) {
        shoal_buf b = {0};
        size_t plen = part_len(r, cls, -1, prev, r->rank);
        size_t want = m == 0 ? plen : plen / 2 + 1;
        snprintf(what, sizeof(what), "recv from %d size %s message %d", prev, CLASS_NAME[cls], m);
        if (coll_rc(r, shoal_recv(r->ctx, prev, &b), what) < 0 ||
            check(r, &b, want, tag_of(K_RING, seq * 2 + m, prev, r->rank), what) < 0)
            return -1;
    }
    return 0;
}

static int bcast(struct run *r, int cls, int root, int seq)
{
    size_t len = cls == C_BIG     ? BIG_PART
                 : cls == C_MIXED ? (size_t)(777 + 2 * root) /* a size per root */
                                  : part_len(r, cls, root, root, root);
    uint32_t tag = tag_of(K_BCAST, seq, root, -1);
    uint8_t *p = NULL;
    shoal_buf b = {0};
    char what[128];
    int rc;

    snprintf(what, sizeof(what), "bcast root %d size %s", root, CLASS_NAME[cls]);
    if (r->rank == root) {
        if ((p = malloc(len ? len : 1)) == NULL)
            return fail(r, "%s: cannot allocate %zu bytes", what, len);
        fill(p, len, tag);
    }
    /* Non-roots pass no data, as the API allows. */
    rc = shoal_bcast(r->ctx, root, p, r->rank == root ? len : 0, &b);
    free(p);
    if (coll_rc(r, rc, what) < 0)
        return -1;
    return check(r, &b, len, tag, what);
}

static int scatter(struct run *r, int cls, int root, int seq)
{
    shoal_buf *parts = calloc((size_t)r->n, sizeof(*parts)), b = {0};
    char what[128];
    int rc = 0;

    if (parts == NULL)
        return fail(r, "scatter: out of memory");
    snprintf(what, sizeof(what), "scatter root %d size %s", root, CLASS_NAME[cls]);
    for (int i = 0; r->rank == root && i < r->n; i++) {
        size_t len = part_len(r, cls, root, root, i);
        uint8_t *p = malloc(len ? len : 1);
        if (p == NULL) {
            rc = fail(r, "%s: cannot allocate %zu bytes", what, len);
            goto out;
        }
        fill(p, len, tag_of(K_SCATTER, seq, root, i));
        parts[i] = (shoal_buf){p, len};
    }
    /* Non-roots pass a zeroed array, as the API allows. */
    if ((rc = coll_rc(r, shoal_scatter(r->ctx, root, parts, &b), what)) < 0)
        goto out;
    rc = check(r, &b, part_len(r, cls, root, root, r->rank), tag_of(K_SCATTER, seq, root, r->rank),
               what);
out:
    for (int i = 0; i < r->n; i++)
        free((void *)parts[i].data);
    free(parts);
    return rc;
}

static int gather(struct run *r, int cls, int root, int seq)
{
    size_t len = part_len(r, cls, root, r->rank, root);
    shoal_buf *parts = calloc((size_t)r->n, sizeof(*parts));
    uint8_t *p = malloc(len ? len : 1);
    char what[160];
    int rc = 0;

    if (parts == NULL || p == NULL) {
        rc = fail(r, "gather: out of memory");
        goto out;
    }
    fill(p, len, tag_of(K_GATHER, seq, r->rank, root));
    if (r->lie == r->rank && cls == C_ODD && root == 0)
        p[len / 2] ^= 0x10; /* the negative control: this must be reported */
    snprintf(what, sizeof(what), "gather root %d size %s", root, CLASS_NAME[cls]);
    if ((rc = coll_rc(r, shoal_gather(r->ctx, root, p, len, parts), what)) < 0)
        goto out;
    for (int i = 0; r->rank == root && i < r->n && rc == 0; i++) {
        snprintf(what, sizeof(what), "gather root %d size %s: part of rank %d", root,
                 CLASS_NAME[cls], i);
        rc = check(r, &parts[i], part_len(r, cls, root, i, root), tag_of(K_GATHER, seq, i, root),
                   what);
    }
out:
    free(p);
    free(parts);
    return rc;
}

static int shuffle(struct run *r, int cls, int seq)
{
    shoal_buf *send = calloc((size_t)r->n, sizeof(*send));
    shoal_buf *recv = calloc((size_t)r->n, sizeof(*recv));
    char what[160];
    int rc = 0;

    if (send == NULL || recv == NULL) {
        rc = fail(r, "shuffle: out of memory");
        goto out;
    }
    for (int i = 0; i < r->n; i++) {
        size_t len = part_len(r, cls, -1, r->rank, i);
        uint8_t *p = malloc(len ? len : 1);
        if (p == NULL) {
            rc = fail(r, "shuffle: cannot allocate %zu bytes", len);
            goto out;
        }
        fill(p, len, tag_of(K_SHUFFLE, seq, r->rank, i));
        send[i] = (shoal_buf){p, len};
    }
    snprintf(what, sizeof(what), "shuffle size %s", CLASS_NAME[cls]);
    if ((rc = coll_rc(r, shoal_shuffle(r->ctx, send, recv), what)) < 0)
        goto out;
    for (int i = 0; i < r->n && rc == 0; i++) {
        snprintf(what, sizeof(what), "shuffle size %s: part from rank %d", CLASS_NAME[cls], i);
        rc = check(r, &recv[i], part_len(r, cls, -1, i, r->rank),
                   tag_of(K_SHUFFLE, seq, i, r->rank), what);
    }
out:
    for (int i = 0; send != NULL && i < r->n; i++)
        free((void *)send[i].data);
    free(send);
    free(recv);
    return rc;
}

/* Reductions. Values are small integers chosen per op so that every result is exact in every
 * dtype (products of at most 17 factors in {-1, 1, 2}; sums within +-17000; unsigned values are
 * shifted to be non-negative): the expected result does not depend on the order of combination. */
static int64_t value(int type, int op, int rank, size_t i)
{
    int64_t v;

    if (op == SHOAL_PROD) {
        v = (rank + (int64_t)i) % 3 == 0 ? 2 : ((rank * 5 + (int64_t)i) % 4 == 0 ? -1 : 1);
        return type == SHOAL_UINT64 && v < 0 ? 3 : v;
    }
    v = (int64_t)((rank * 7919 + (int64_t)(i % 100003) * 104729) % 2001) - 1000;
    return type == SHOAL_UINT64 ? v + 1000 : v;
}

static size_t dtype_size(int type)
{
    return type == SHOAL_INT32 || type == SHOAL_FLOAT ? 4 : 8;
}

static void store(void *base, int type, size_t i, int64_t v)
{
    switch (type) {
    case SHOAL_INT32:
        ((int32_t *)base)[i] = (int32_t)v;
        break;
    case SHOAL_INT64:
        ((int64_t *)base)[i] = v;
        break;
    case SHOAL_UINT64:
        ((uint64_t *)base)[i] = (uint64_t)v;
        break;
    case SHOAL_FLOAT:
        ((float *)base)[i] = (float)v;
        break;
    default:
        ((double *)base)[i] = (double)v;
        break;
    }
}

/* Element i of the result, as an integer (exact for the values above), and whether it equals
 * what the element holds. */
static int64_t expect(int type, int op, int n, size_t i)
{
    int64_t acc = value(type, op, 0, i);

    for (int k = 1; k < n; k++) {
        int64_t v = value(type, op, k, i);
        acc = op == SHOAL_SUM    ? acc + v
              : op == SHOAL_PROD ? acc * v
              : op == SHOAL_MIN  ? (v < acc ? v : acc)
                                 : (v > acc ? v : acc);
    }
    return acc;
}

static int holds(const void *base, int type, size_t i, int64_t want, char *got, size_t gotlen)
{
    switch (type) {
    case SHOAL_INT32:
        snprintf(got, gotlen, "%d", ((const int32_t *)base)[i]);
        return ((const int32_t *)base)[i] == (int32_t)want;
    case SHOAL_INT64:
        snprintf(got, gotlen, "%lld", (long long)((const int64_t *)base)[i]);
        return ((const int64_t *)base)[i] == want;
    case SHOAL_UINT64:
        snprintf(got, gotlen, "%llu", (unsigned long long)((const uint64_t *)base)[i]);
        return ((const uint64_t *)base)[i] == (uint64_t)want;
    case SHOAL_FLOAT:
        snprintf(got, gotlen, "%.9g", (double)((const float *)base)[i]);
        return ((const float *)base)[i] == (float)want;
    default:
        snprintf(got, gotlen, "%.17g", ((const double *)base)[i]);
        return ((const double *)base)[i] == (double)want;
    }
}

/* One reduce (root >= 0) or allreduce (root < 0) of count elements. */
static int reduction(struct run *r, int type, int op, size_t count, int root)
{
    size_t esz = dtype_size(type);
    int wants = root < 0 || r->rank == root, rc = 0;
    /* +1 element: malloc(0) may return NULL, and the results must not be written past count. */
    uint8_t *in = malloc((count + 1) * esz), *out = malloc((count + 2) * esz);
    char what[160], got[64];
    int64_t canary;

    snprintf(what, sizeof(what), "%s root %d %s %s count %zu", root < 0 ? "allreduce" : "reduce",
             root, DTYPE_NAME[type], OP_NAME[op], count);
    if (in == NULL || out == NULL) {
        rc = fail(r, "%s: out of memory", what);
        goto out;
    }
    for (size_t i = 0; i < count; i++)
        store(in, type, i, value(type, op, r->rank, i));
    /* out starts with a pattern that no result has, including one element past the end. */
    canary = 0x5a5a5a5a;
    for (size_t i = 0; i < count + 1; i++)
        store(out, type, i, canary);
    rc = root < 0 ? shoal_allreduce(r->ctx, in, out, count, (shoal_dtype)type, (shoal_op)op)
                  : shoal_reduce(r->ctx, root, in, wants ? out : NULL, count, (shoal_dtype)type,
                                 (shoal_op)op);
    if ((rc = coll_rc(r, rc, what)) < 0)
        goto out;
    for (size_t i = 0; wants && i < count; i++) {
        int64_t want = expect(type, op, r->n, i);
        if (!holds(out, type, i, want, got, sizeof(got))) {
            rc = fail(r, "%s: element %zu is %s, expected %lld", what, i, got, (long long)want);
            goto out;
        }
    }
    if (!holds(out, type, count, canary, got, sizeof(got))) {
        rc = fail(r, "%s: wrote past the end of out (element %zu is %s)", what, count, got);
        goto out;
    }
    /* The input is the caller's: a backend must not have changed it. */
    for (size_t i = 0; i < count; i++)
        if (!holds(in, type, i, value(type, op, r->rank, i), got, sizeof(got))) {
            rc = fail(r, "%s: the input changed at element %zu (%s)", what, i, got);
            goto out;
        }
    r->checked += wants ? count * esz : 0;
out:
    free(in);
    free(out);
    return rc;
}

/* The big reduction: 8 Mi doubles whose sums are exact, checked in bulk. */
static int big_reduction(struct run *r, int root)
{
    double *in = malloc(BIG_COUNT * sizeof(double)), *out = malloc(BIG_COUNT * sizeof(double));
    int wants = root < 0 || r->rank == root, rc = 0;
    double tri = (double)r->n * (r->n - 1) / 2;
    char what[96];

    snprintf(what, sizeof(what), "%s root %d double sum count %zu (big)",
             root < 0 ? "allreduce" : "reduce", root, BIG_COUNT);
    if (in == NULL || out == NULL) {
        rc = fail(r, "%s: out of memory", what);
        goto out;
    }
    /* Element i of rank k is k * 1024 + (i % 1021): the sum is n * (i % 1021) + 1024 * tri. */
    for (size_t i = 0; i < BIG_COUNT; i++)
        in[i] = (double)r->rank * 1024 + (double)(i % 1021);
    memset(out, 0xff, BIG_COUNT * sizeof(double));
    rc = root < 0 ? shoal_allreduce(r->ctx, in, out, BIG_COUNT, SHOAL_DOUBLE, SHOAL_SUM)
                  : shoal_reduce(r->ctx, root, in, wants ? out : NULL, BIG_COUNT, SHOAL_DOUBLE,
                                 SHOAL_SUM);
    if ((rc = coll_rc(r, rc, what)) < 0)
        goto out;
    for (size_t i = 0; wants && i < BIG_COUNT; i++) {
        double want = (double)r->n * (double)(i % 1021) + 1024 * tri;
        if (out[i] != want) {
            rc = fail(r, "%s: element %zu is %.17g, expected %.17g", what, i, out[i], want);
            goto out;
        }
    }
    r->checked += wants ? BIG_COUNT * sizeof(double) : 0;
out:
    free(in);
    free(out);
    return rc;
}

static int barriers(struct run *r, int count)
{
    for (int i = 0; i < count; i++)
        if (coll_rc(r, shoal_barrier(r->ctx), "barrier") < 0)
            return -1;
    return 0;
}

static int run_small(struct run *r)
{
    static const size_t COUNTS[] = {0, 1, 1001};
    int roots[2] = {0, r->n - 1}, seq = 0;

    for (int cls = C_ZERO; cls <= C_MIXED; cls++) {
        if (barriers(r, 1) < 0 || ring(r, cls, seq++) < 0 || shuffle(r, cls, seq++) < 0)
            return -1;
        for (int k = 0; k < 2; k++)
            if (bcast(r, cls, roots[k], seq++) < 0 || scatter(r, cls, roots[k], seq++) < 0 ||
                gather(r, cls, roots[k], seq++) < 0)
                return -1;
    }
    for (int type = SHOAL_INT32; type <= SHOAL_DOUBLE; type++)
        for (int op = SHOAL_SUM; op <= SHOAL_MAX; op++)
            for (size_t c = 0; c < sizeof(COUNTS) / sizeof(COUNTS[0]); c++)
                if (reduction(r, type, op, COUNTS[c], roots[0]) < 0 ||
                    reduction(r, type, op, COUNTS[c], roots[1]) < 0 ||
                    reduction(r, type, op, COUNTS[c], -1) < 0)
                    return -1;
    return barriers(r, 2);
}

static int run_big(struct run *r)
{
    int roots[2] = {0, r->n - 1}, seq = 100;

    if (barriers(r, 1) < 0 || ring(r, C_BIG, seq++) < 0 || shuffle(r, C_BIG, seq++) < 0)
        return -1;
    for (int k = 0; k < 2; k++)
        if (bcast(r, C_BIG, roots[k], seq++) < 0 || scatter(r, C_BIG, roots[k], seq++) < 0 ||
            gather(r, C_BIG, roots[k], seq++) < 0 || big_reduction(r, roots[k]) < 0)
            return -1;
    if (big_reduction(r, -1) < 0)
        return -1;
    return barriers(r, 1);
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

int shoal_main(shoal_ctx *ctx)
{
    struct run r = {.ctx = ctx, .rank = shoal_rank(ctx), .n = shoal_size(ctx)};
    struct timespec t0, t1;
    int rc;

    if ((r.kept = malloc(MAX_KEPT * sizeof(*r.kept))) == NULL)
        return shoal_error(ctx, "rank %d: out of memory", r.rank);
    const char *big = query_value(ctx, "big"), *lie = query_value(ctx, "lie");
    r.big = big != NULL && (big[0] == '1' || strncmp(big, "true", 4) == 0);
    r.lie = lie != NULL ? atoi(lie) : -1;
    r.lap = now_ms();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = r.big ? run_big(&r) : run_small(&r);
    /* Everything handed out must still hold what it held on arrival. */
    for (int i = 0; rc == 0 && i < r.nkept; i++) {
        const struct kept *k = &r.kept[i];
        size_t j = first_bad(k->data, k->len, k->tag);
        if (j < k->len)
            rc = fail(&r,
                      "received buffer %d (%zu bytes) changed before shoal_main returned: "
                      "byte %zu is 0x%02x, expected 0x%02x",
                      i, k->len, j, k->data[j], pat(k->tag, j));
    }
    free(r.kept);
    if (rc < 0)
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (r.rank == 0)
        shoal_log(ctx, "colls: %d ranks%s: %d collectives, %llu bytes checked in %.1f ms", r.n,
                  r.big ? " (big)" : "", r.ncoll, (unsigned long long)r.checked,
                  (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    return shoal_output(ctx, "ok", 2);
}
