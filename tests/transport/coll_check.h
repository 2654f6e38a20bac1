/* Helpers shared by the collective tests (test_coll.c, test_hcoll.c), which run each rank in a
 * fork()ed child: the rank-side CHECK/OK macros and exit codes, a deterministic byte stream to
 * fill and check parts with, and an element-wise reference for reduce that is written
 * independently of transport/coll.c. Everything is static: each test program is one translation
 * unit and gets its own copy, including g_rank. */
#ifndef SHOAL_TESTS_TRANSPORT_COLL_CHECK_H
#define SHOAL_TESTS_TRANSPORT_COLL_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "transport/coll.h"

#define MAXR 32
#define MiB (1024ull * 1024)
/* Exit codes of a rank: 0 = all good; an errno value = the error the scenario expects; these
 * two = a check failed / the rank could not attach. */
#define BAD 200
#define NOATTACH 201

/* The rank of this process (set in the child after fork), for the messages of failed checks. */
static int g_rank = -1;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", g_rank, __FILE__, __LINE__,      \
                    #cond);                                                                        \
            return BAD;                                                                            \
        }                                                                                          \
    } while (0)
#define OK(call)                                                                                   \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "rank %d: %s:%d: %s = %d (%s)\n", g_rank, __FILE__, __LINE__, #call,   \
                    rc_, strerror(-rc_));                                                          \
            return BAD;                                                                            \
        }                                                                                          \
    } while (0)

/* Seeds of the streams each collective's parts are filled from. */
enum { T_BCAST = 1, T_SCATTER, T_GATHER, T_SHUFFLE, T_P2P, T_REDUCE };

static uint64_t in_ms(uint64_t ms)
{
    return shoal_util_now_ns() + ms * 1000000u;
}

/* ---- deterministic data ---- */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t seed_of(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    return mix(mix(mix(mix(a) ^ b) ^ c) ^ d);
}

/* Bytes [pos, pos + len) of the stream named seed; pos is a multiple of 8. */
static void fill_at(uint8_t *p, size_t len, uint64_t seed, size_t pos)
{
    size_t i = 0;
    uint64_t v;

    for (; i + 8 <= len; i += 8) {
        v = mix(seed + pos + i);
        memcpy(p + i, &v, 8);
    }
    if (i < len) {
        v = mix(seed + pos + i);
        memcpy(p + i, &v, len - i);
    }
}

static void fill(void *p, size_t len, uint64_t seed)
{
    fill_at(p, len, seed, 0);
}

/* Whether p holds exactly the first len bytes of stream seed. */
static int same(const void *p, size_t len, uint64_t seed)
{
    static uint8_t buf[1 << 16];
    const uint8_t *q = p;

    if (len != 0 && p == NULL)
        return 0;
    for (size_t pos = 0; pos < len; pos += sizeof(buf)) {
        size_t m = len - pos < sizeof(buf) ? len - pos : sizeof(buf);

        fill_at(buf, m, seed, pos);
        if (memcmp(q + pos, buf, m) != 0) {
            fprintf(stderr, "rank %d: bytes differ in [%zu, %zu) of %zu\n", g_rank, pos, pos + m,
                    len);
            return 0;
        }
    }
    return 1;
}

/* A malloc'ed copy of the first len bytes of stream seed (one spare byte, so never malloc(0)). */
static uint8_t *make(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len + 1);

    if (p != NULL)
        fill(p, len, seed);
    return p;
}

/* Part length from a to b in the "varied" pattern (mode 1): some zero, others odd and uneven;
 * mode 0 is `base` for every pair. */
static size_t part_len(int mode, size_t base, int a, int b)
{
    if (mode == 0)
        return base;
    return (a * 31 + b * 17) % 5 == 0 ? 0 : (size_t)((a * 131 + b * 71 + 1) % 5000);
}

/* ---- reduce reference ---- */

static size_t esz_of(shoal_dtype t)
{
    return t == SHOAL_INT32 || t == SHOAL_FLOAT ? 4 : 8;
}

/* Rank p's element i for a reduce of type and op: random-looking values (so that floating sums
 * depend on the order), floating products near 1, and MIN/MAX inputs with a NaN at some positions
 * (one rank at a time) to pin down the fmin-like rule. */
static void value(shoal_dtype t, shoal_op op, int p, size_t i, void *out)
{
    uint64_t r = mix(seed_of(T_REDUCE, (uint64_t)t * 16 + (uint64_t)op, (uint64_t)p, i));
    int nan = (op == SHOAL_MIN || op == SHOAL_MAX) && i % 97 == (size_t)p;
    double d = op == SHOAL_PROD ? 0.5 + (double)(r % 1000) / 1000.0
                                : ((double)(int64_t)(r % 2000001) - 1000000.0) / 64.0;

    switch (t) {
    case SHOAL_INT32: {
        int32_t v = (int32_t)(uint32_t)r;
        memcpy(out, &v, 4);
        break;
    }
    case SHOAL_INT64:
    case SHOAL_UINT64:
        memcpy(out, &r, 8);
        break;
    case SHOAL_FLOAT: {
        float v = nan ? NAN : (float)d;
        memcpy(out, &v, 4);
        break;
    }
    case SHOAL_DOUBLE: {
        double v = nan ? NAN : d;
        memcpy(out, &v, 8);
        break;
    }
    }
}

/* acc = acc op v, written independently of coll.c: wrapping integer arithmetic, fmin/fmax. */
static void combine(shoal_dtype t, shoal_op op, void *acc, const void *v)
{
    switch (t) {
    case SHOAL_INT32: {
        int32_t a, b;
        memcpy(&a, acc, 4);
        memcpy(&b, v, 4);
        a = op == SHOAL_SUM    ? (int32_t)((uint32_t)a + (uint32_t)b)
            : op == SHOAL_PROD ? (int32_t)((uint32_t)a * (uint32_t)b)
            : op == SHOAL_MIN  ? (b < a ? b : a)
                               : (b > a ? b : a);
        memcpy(acc, &a, 4);
        break;
    }
    case SHOAL_INT64: {
        int64_t a, b;
        memcpy(&a, acc, 8);
        memcpy(&b, v, 8);
        a = op == SHOAL_SUM    ? (int64_t)((uint64_t)a + (uint64_t)b)
            : op == SHOAL_PROD ? (int64_t)((uint64_t)a * (uint64_t)b)
            : op == SHOAL_MIN  ? (b < a ? b : a)
                               : (b > a ? b : a);
        memcpy(acc, &a, 8);
        break;
    }
    case SHOAL_UINT64: {
        uint64_t a, b;
        memcpy(&a, acc, 8);
        memcpy(&b, v, 8);
        a = op == SHOAL_SUM    ? a + b
            : op == SHOAL_PROD ? a * b
            : op == SHOAL_MIN  ? (b < a ? b : a)
                               : (b > a ? b : a);
        memcpy(acc, &a, 8);
        break;
    }
    case SHOAL_FLOAT: {
        float a, b;
        memcpy(&a, acc, 4);
        memcpy(&b, v, 4);
        a = op == SHOAL_SUM    ? a + b
            : op == SHOAL_PROD ? a * b
            : op == SHOAL_MIN  ? fminf(a, b)
                               : fmaxf(a, b);
        memcpy(acc, &a, 4);
        break;
    }
    case SHOAL_DOUBLE: {
        double a, b;
        memcpy(&a, acc, 8);
        memcpy(&b, v, 8);
        a = op == SHOAL_SUM    ? a + b
            : op == SHOAL_PROD ? a * b
            : op == SHOAL_MIN  ? fmin(a, b)
                               : fmax(a, b);
        memcpy(acc, &a, 8);
        break;
    }
    }
}

#endif
