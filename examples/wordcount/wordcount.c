/*
 * wordcount - word counts by map, shuffle and reduce in a group of N instances (?group=N), the
 * shape of a MapReduce job moved onto Shoal's direct transport instead of an object store.
 *
 *   shoal deploy wordcount build/examples/wordcount.so
 *   examples/wordcount/fetch-text.sh /tmp/fortunes.txt
 *   curl --data-binary @/tmp/fortunes.txt
 * 'localhost:8080/v1/functions/wordcount/invoke?group=4&top=10'
 *
 * Every rank gets the whole text as its input; rank 0 splits it into N byte ranges cut at
 * whitespace and scatters them (each rank reads its range in place, in the group's arena). Each
 * rank counts the words of its range in a hash table (map), sends every word with its count to
 * the rank that owns it, hash(word) % N (shuffle), adds up what it receives (reduce), and sends
 * its share to rank 0 (gather), which answers the words sorted by count, most frequent first (ties
 * by byte order of the word), as "count word" lines: all of them, or the first K with ?top=K.
 *
 * A word is a maximal run of ASCII letters and digits and of bytes >= 0x80 (so UTF-8 letters stay
 * inside words); ASCII letters are folded to lower case; every other byte separates words
 * ("don't" is "don" and "t"). Timings of each phase go to the function's log.
 */
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A word in a table: its bytes lie in the table's pool at off. */
struct entry {
    uint64_t hash, count;
    size_t off, len;
};

/* Open addressing with linear probing; cap is a power of two, at most 70 % full. */
struct table {
    struct entry *slot;
    size_t cap, used;
    char *pool;
    size_t pool_len, pool_cap;
};

/* FNV-1a, 64 bits: small and good enough to spread words over slots and ranks. */
static uint64_t hash_word(const char *w, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)w[i]) * 0x100000001b3ull;
    return h;
}

static int is_word_byte(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int table_init(struct table *t, size_t cap)
{
    memset(t, 0, sizeof(*t));
    t->cap = cap;
    t->slot = calloc(cap, sizeof(*t->slot));
    return t->slot != NULL ? 0 : -1;
}

static void table_free(struct table *t)
{
    free(t->slot);
    free(t->pool);
    memset(t, 0, sizeof(*t));
}

static int table_grow(struct table *t)
{
    struct table bigger = *t;

    bigger.cap = t->cap * 2;
    if ((bigger.slot = calloc(bigger.cap, sizeof(*bigger.slot))) == NULL)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slot[i].count == 0)
            continue;
        size_t j = t->slot[i].hash & (bigger.cap - 1);
        while (bigger.slot[j].count != 0)
            j = (j + 1) & (bigger.cap - 1);
        bigger.slot[j] = t->slot[i];
    }
    free(t->slot);
    *t = bigger;
    return 0;
}

/* Adds count to word (already folded), inserting it if new. */
static int table_add(struct table *t, const char *w, size_t len, uint64_t count)
{
    uint64_t h = hash_word(w, len);
    size_t i;

    if ((t->used + 1) * 10 > t->cap * 7 && table_grow(t) < 0)
        return -1;
    for (i = h & (t->cap - 1); t->slot[i].count != 0; i = (i + 1) & (t->cap - 1)) {
        struct entry *e = &t->slot[i];
        if (e->hash == h && e->len == len && memcmp(t->pool + e->off, w, len) == 0) {
            e->count += count;
            return 0;
        }
    }
    if (t->pool_len + len > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_len + len)
            cap *= 2;
        char *p = realloc(t->pool, cap);
        if (p == NULL)
            return -1;
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, w, len);
    t->slot[i] = (struct entry){h, count, t->pool_len, len};
    t->pool_len += len;
    t->used++;
    return 0;
}

/* Map: counts the words of text into t. scratch holds one folded word at a time. */
static int count_words(struct table *t, const uint8_t *text, size_t len, uint64_t *words)
{
    char *scratch = NULL;
    size_t scap = 0;
    int rc = 0;

    for (size_t i = 0; i < len && rc == 0;) {
        if (!is_word_byte(text[i])) {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && is_word_byte(text[i]))
            i++;
        if (i - start > scap) {
            char *s = realloc(scratch, i - start);
            if (s == NULL) {
                rc = -1;
                break;
            }
            scratch = s;
            scap = i - start;
        }
        for (size_t k = start; k < i; k++)
            scratch[k - start] =
                text[k] >= 'A' && text[k] <= 'Z' ? (char)(text[k] + 32) : (char)text[k];
        rc = table_add(t, scratch, i - start, 1);
        (*words)++;
    }
    free(scratch);
    return rc;
}

/* Entries on the wire: u64 count, u32 length, the word's bytes (unaligned, native byte order:
 * every rank of a group runs on the same kind of machine). */
#define REC_HDR 12

static uint8_t *put_entry(uint8_t *p, const struct table *t, const struct entry *e)
{
    uint32_t len = (uint32_t)e->len;

    memcpy(p, &e->count, 8);
    memcpy(p + 8, &len, 4);
    memcpy(p + REC_HDR, t->pool + e->off, e->len);
    return p + REC_HDR + e->len;
}

/* Calls fn(arg, word, len, count) for every entry of a received buffer; -1 if it is malformed. */
static int each_entry(const shoal_buf *b, int (*fn)(void *, const char *, size_t, uint64_t),
                      void *arg)
{
    const uint8_t *p = b->data, *end = p + b->len;

    while (p < end) {
        uint64_t count;
        uint32_t len;
        if ((size_t)(end - p) < REC_HDR)
            return -1;
        memcpy(&count, p, 8);
        memcpy(&len, p + 8, 4);
        if ((size_t)(end - p - REC_HDR) < len || fn(arg, (const char *)p + REC_HDR, len, count) < 0)
            return -1;
        p += REC_HDR + len;
    }
    return 0;
}

static int add_to_table(void *arg, const char *w, size_t len, uint64_t count)
{
    return table_add(arg, w, len, count);
}

/* A word of the final answer: its bytes lie in a gathered part. */
struct result {
    const char *w;
    size_t len;
    uint64_t count;
};

struct results {
    struct result *r;
    size_t n, cap;
};

static int add_result(void *arg, const char *w, size_t len, uint64_t count)
{
    struct results *rs = arg;

    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 1024;
        struct result *r = realloc(rs->r, cap * sizeof(*r));
        if (r == NULL)
            return -1;
        rs->r = r;
        rs->cap = cap;
    }
    rs->r[rs->n++] = (struct result){w, len, count};
    return 0;
}

/* Most frequent first; equal counts by the word's bytes, a prefix before the longer word. */
static int by_count(const void *a, const void *b)
{
    const struct result *x = a, *y = b;
    int c;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    c = memcmp(x->w, y->w, x->len < y->len ? x->len : y->len);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;

    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* ?top=K: K >= 1, or 0 (all) when absent. -1 when malformed. */
static long top_param(shoal_ctx *ctx)
{
    const char *q = shoal_meta(ctx, "query");

    for (const char *p = q; p != NULL && *p != '\0';
         p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, "top=", 4) != 0)
            continue;
        char *end;
        long k = strtol(p + 4, &end, 10);
        return end == p + 4 || (*end != '\0' && *end != '&') || k < 1 ? -1 : k;
    }
    return 0;
}

/* Rank 0: renders the sorted results as "count word" lines. */
static int answer(shoal_ctx *ctx, struct results *rs, long top)
{
    size_t n = top > 0 && (size_t)top < rs->n ? (size_t)top : rs->n, len = 0, o = 0;
    char *out;

    qsort(rs->r, rs->n, sizeof(*rs->r), by_count);
    for (size_t i = 0; i < n; i++)
        len += 22 + rs->r[i].len;
    if ((out = shoal_output_alloc(ctx, len)) == NULL && len > 0)
        return shoal_error(ctx, "wordcount: an answer of %zu bytes does not fit", len);
    for (size_t i = 0; i < n; i++) {
        o += (size_t)snprintf(out + o, len - o, "%llu ", (unsigned long long)rs->r[i].count);
        memcpy(out + o, rs->r[i].w, rs->r[i].len);
        o += rs->r[i].len;
        out[o++] = '\n';
    }
    /* The allocation was an upper bound: set the output to what was written. */
    shoal_output(ctx, out, o);
    shoal_set_meta(ctx, "header:content-type", "text/plain; charset=utf-8");
    return 0;
}

int shoal_main(shoal_ctx *ctx)
{
    int rank = shoal_rank(ctx), n = shoal_size(ctx), rc;
    long top = top_param(ctx);
    shoal_buf in = shoal_input(ctx), mine = {0};
    shoal_buf *parts = calloc((size_t)n, sizeof(*parts));
    shoal_buf *send = calloc((size_t)n, sizeof(*send)), *recv = calloc((size_t)n, sizeof(*recv));
    uint8_t *sendbuf = NULL, *gathered = NULL;
    size_t *sizes = calloc((size_t)n, sizeof(*sizes));
    struct table local = {0}, owned = {0};
    struct results rs = {0};
    struct timespec t0;
    uint64_t words = 0;
    double t_scatter, t_map, t_shuffle, t_reduce, t_gather;

    if (top < 0) {
        rc = shoal_error(ctx, "wordcount: top must be a positive integer");
        goto out;
    }
    if (parts == NULL || send == NULL || recv == NULL || sizes == NULL ||
        table_init(&local, 1024) < 0 || table_init(&owned, 1024) < 0) {
        rc = shoal_error(ctx, "wordcount: out of memory");
        goto out;
    }

    /* Scatter: rank 0 cuts the text into n ranges at whitespace. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rank == 0) {
        const uint8_t *text = in.data;
        size_t start = 0;
        for (int i = 0; i < n; i++) {
            size_t end = i == n - 1 ? in.len : in.len / (size_t)n * (size_t)(i + 1);
            if (end < start)
                end = start;
            while (end < in.len && !is_space(text[end]))
                end++;
            parts[i] = (shoal_buf){text + start, end - start};
            start = end;
        }
    }
    if ((rc = shoal_scatter(ctx, 0, parts, &mine)) < 0) {
        rc = shoal_error(ctx, "wordcount: scatter: %s", strerror(-rc));
        goto out;
    }
    t_scatter = ms_since(&t0);

    /* Map. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (count_words(&local, mine.data, mine.len, &words) < 0) {
        rc = shoal_error(ctx, "wordcount: out of memory counting words");
        goto out;
    }
    t_map = ms_since(&t0);

    /* Shuffle: every word to rank hash % n, in one buffer cut into n parts. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t total = 0;
    for (size_t i = 0; i < local.cap; i++)
        if (local.slot[i].count != 0) {
            sizes[local.slot[i].hash % (uint64_t)n] += REC_HDR + local.slot[i].len;
            total += REC_HDR + local.slot[i].len;
        }
    if ((sendbuf = malloc(total + 1)) == NULL) {
        rc = shoal_error(ctx, "wordcount: out of memory");
        goto out;
    }
    for (size_t i = 0, off = 0; i < (size_t)n; off += sizes[i], i++)
        send[i] = (shoal_buf){sendbuf + off, 0};
    for (size_t i = 0; i < local.cap; i++) {
        const struct entry *e = &local.slot[i];
        if (e->count == 0)
            continue;
        shoal_buf *b = &send[e->hash % (uint64_t)n];
        uint8_t *p = (uint8_t *)b->data + b->len;
        b->len = (size_t)(put_entry(p, &local, e) - (uint8_t *)b->data);
    }
    if ((rc = shoal_shuffle(ctx, send, recv)) < 0) {
        rc = shoal_error(ctx, "wordcount: shuffle: %s", strerror(-rc));
        goto out;
    }
    t_shuffle = ms_since(&t0);

    /* Reduce: add up the counts of the words this rank owns. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < n; i++)
        if (each_entry(&recv[i], add_to_table, &owned) < 0) {
            rc = shoal_error(ctx, "wordcount: bad shuffle part from rank %d", i);
            goto out;
        }
    t_reduce = ms_since(&t0);

    /* Gather: every rank's words at rank 0; they are disjoint, so rank 0 only sorts. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    total = 0;
    for (size_t i = 0; i < owned.cap; i++)
        if (owned.slot[i].count != 0)
            total += REC_HDR + owned.slot[i].len;
    if ((gathered = malloc(total + 1)) == NULL) {
        rc = shoal_error(ctx, "wordcount: out of memory");
        goto out;
    }
    uint8_t *p = gathered;
    for (size_t i = 0; i < owned.cap; i++)
        if (owned.slot[i].count != 0)
            p = put_entry(p, &owned, &owned.slot[i]);
    memset(parts, 0, (size_t)n * sizeof(*parts));
    if ((rc = shoal_gather(ctx, 0, gathered, total, parts)) < 0) {
        rc = shoal_error(ctx, "wordcount: gather: %s", strerror(-rc));
        goto out;
    }
    t_gather = ms_since(&t0);
    shoal_log(ctx,
              "rank %d/%d: %zu bytes, %llu words, %zu distinct here, %zu owned; scatter %.2f ms, "
              "map %.2f ms, shuffle %.2f ms, reduce %.2f ms, gather %.2f ms",
              rank, n, mine.len, (unsigned long long)words, local.used, owned.used, t_scatter,
              t_map, t_shuffle, t_reduce, t_gather);
    if (rank != 0) {
        rc = 0;
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (each_entry(&parts[i], add_result, &rs) < 0) {
            rc = shoal_error(ctx, "wordcount: bad gathered part from rank %d", i);
            goto out;
        }
    rc = answer(ctx, &rs, top);
out:
    free(rs.r);
    table_free(&local);
    table_free(&owned);
    free(sendbuf);
    free(gathered);
    free(parts);
    free(send);
    free(recv);
    free(sizes);
    return rc < 0 ? -1 : 0;
}
