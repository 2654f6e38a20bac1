/*
 * coll - see coll.h for the algorithms, sequencing and lifetime rules.
 *
 * Progress word of a rank (shoal_arena_ctl.state): bits 0..29 hold seq << 2 | phase modulo 2^30,
 * with phase ARRIVED (descriptor published), MID (reduce: own slice reduced) or DONE (finished
 * reading peers' descriptors and data of this collective); DONE of s is below ARRIVED of s + 1, so
 * the word only grows. Comparisons are modulo 2^30 (a peer is never more than SLOTS collectives
 * away). Bit 30 (GONE) is set when the rank leaves, bit 31 (KICK) by aborts.
 *
 * Memory order: a rank writes its descriptor, part table, data or message plainly, then updates
 * its progress word (or a mailbox head) with a release (sequentially consistent) atomic; a reader
 * loads that word with acquire before it reads what it guards. Values read from shared memory
 * are read once through volatile into private copies and checked before use: a peer can make this
 * rank fail, never read or write outside the arena.
 */
#include "coll.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CNT_MASK SHOAL_COLL_PROGRESS_MASK
#define CNT_HALF 0x20000000u
#define SLOTS SHOAL_ARENA_SLOTS
#define MBOX SHOAL_ARENA_MBOX_SLOTS
#define PAGE 4096u
/* Bytes of the private accumulator the reduction works through (stays in L1). */
#define CHUNK_BYTES 8192
/* From this size on, copies into the arena map their pages with one system call first. */
#define PREFAULT_MIN (256u * 1024)

enum { PH_ARRIVED = SHOAL_COLL_ARRIVED, PH_MID = SHOAL_COLL_MID, PH_DONE = SHOAL_COLL_DONE };

struct shoal_coll {
    shoal_arena_t *arena;
    shoal_arena_ctl *me;
    uint8_t *data;
    int rank, n;
    uint32_t seq;              /* last collective sequence number used */
    int blame;                 /* the peer a failed wait was waiting for */
    uint32_t *seen;            /* per peer: the last progress observed (a cache of acquire loads) */
    uint32_t *heads;           /* per destination: messages this rank posted */
    uint32_t *tails;           /* per source: messages this rank consumed */
    const uint8_t **src;       /* reduce: each rank's staging area, validated */
    uint64_t scr_off, scr_cap; /* reduce staging area */
    uint32_t scr_seq;          /* the collective that last used it, 0 if none */
};

static uint32_t prog(uint32_t seq, unsigned phase)
{
    return SHOAL_COLL_PROGRESS(seq, phase);
}

static int reached(uint32_t v, uint32_t target)
{
    return ((v - target) & CNT_MASK) < CNT_HALF;
}

static shoal_arena_ctl *ctl(const shoal_coll_t *c, int r)
{
    return shoal_arena_ctl_of(c->arena, r);
}

/* Records why the group cannot go on, so that no peer waits for this rank in vain. */
static int fail(shoal_coll_t *c, int err)
{
    switch (err) {
    case -EINVAL:
    case -EPROTO:
    case -EBADMSG:
        shoal_arena_abort(c->arena, c->rank, SHOAL_ARENA_FAIL_PROTOCOL);
        break;
    case -ENOMEM:
        shoal_arena_abort(c->arena, c->rank, SHOAL_ARENA_FAIL_NOSPACE);
        break;
    case -EPIPE:
        shoal_arena_abort(c->arena, c->blame, SHOAL_ARENA_FAIL_LEFT);
        break;
    default: /* -ECONNABORTED: recorded already; -ETIMEDOUT: every rank has the same deadline */
        break;
    }
    return err;
}

static void set_state(shoal_coll_t *c, uint32_t p)
{
    uint32_t v = atomic_load_explicit(&c->me->state, memory_order_relaxed), nv;

    do
        nv = (v & ~CNT_MASK) | p;
    while (!atomic_compare_exchange_weak(&c->me->state, &v, nv));
    shoal_arena_wake(&c->me->state, &c->me->state_waiters);
}

struct peer_wait {
    shoal_coll_t *c;
    int peer;
    uint32_t target;
    int must; /* 1: the peer must reach target (a departed peer is an error); 0: or have left */
};

static int peer_ready(void *arg)
{
    struct peer_wait *w = arg;
    uint32_t v = atomic_load_explicit(&ctl(w->c, w->peer)->state, memory_order_acquire);

    if (reached(v & CNT_MASK, w->target)) {
        w->c->seen[w->peer] = v & CNT_MASK;
        return 1;
    }
    if (v & SHOAL_ARENA_GONE) {
        if (!w->must)
            return 1;
        /* A group that failed already says so, rather than naming the peer that left. */
        if (shoal_arena_failed(w->c->arena))
            return -ECONNABORTED;
        w->c->blame = w->peer;
        return -EPIPE;
    }
    return 0;
}

static int wait_peer(shoal_coll_t *c, int peer, uint32_t target, int must)
{
    struct peer_wait w = {c, peer, target, must};
    shoal_arena_ctl *p = ctl(c, peer);

    if (reached(c->seen[peer], target))
        return 0;
    return shoal_arena_wait(c->arena, &p->state, &p->state_waiters, peer_ready, &w);
}

static int wait_all(shoal_coll_t *c, uint32_t target, int must)
{
    int r;

    for (int p = 0; p < c->n; p++)
        if (p != c->rank && (r = wait_peer(c, p, target, must)) < 0)
            return r;
    return 0;
}

/* Starts a collective: takes the next sequence number into want->seq and waits until the
 * descriptor slot it will use is free. */
static int begin(shoal_coll_t *c, shoal_arena_slot *want)
{
    uint32_t s = c->seq + 1;

    if (shoal_arena_failed(c->arena))
        return -ECONNABORTED;
    c->seq = s;
    want->seq = s;
    if (s > SLOTS)
        return wait_all(c, prog(s - SLOTS, PH_DONE), 0);
    return 0;
}

static void publish(shoal_coll_t *c, const shoal_arena_slot *d, unsigned phase)
{
    c->me->slot[d->seq % SLOTS] = *d;
    set_state(c, prog(d->seq, phase));
}

/* Reads peer's descriptor of collective want->seq into *got and checks that it is the same
 * collective. Call only once the peer's progress reached (seq, ARRIVED). */
static int check_slot(shoal_coll_t *c, int peer, const shoal_arena_slot *want,
                      shoal_arena_slot *got)
{
    const volatile shoal_arena_slot *v = &ctl(c, peer)->slot[want->seq % SLOTS];

    got->seq = v->seq;
    got->kind = v->kind;
    got->root = v->root;
    got->dtype = v->dtype;
    got->count = v->count;
    got->off = v->off;
    got->len = v->len;
    if (got->seq != want->seq || got->kind != want->kind || got->root != want->root ||
        got->dtype != want->dtype || got->count != want->count)
        return -EPROTO;
    return 0;
}

/* A checked view of [off, off+len) into *out. */
static int view(shoal_coll_t *c, uint64_t off, uint64_t len, shoal_buf *out)
{
    const void *p = shoal_arena_view(c->arena, off, len);

    if (p == NULL)
        return -EBADMSG;
    out->data = p;
    out->len = (size_t)len;
    return 0;
}

/* Reads a part table entry once and checks it. */
static int view_part(shoal_coll_t *c, const shoal_arena_part *e, shoal_buf *out)
{
    const volatile shoal_arena_part *v = e;
    uint64_t off = v->off, len = v->len;

    return view(c, off, len, out);
}

/* Copies len bytes into the data area at off, mapping the pages first when that is cheaper than
 * taking a page fault for each. */
static void copy_in(shoal_coll_t *c, uint64_t off, const void *data, size_t len)
{
    if (len >= PREFAULT_MIN)
        shoal_arena_prefault(c->arena, off, len);
    memcpy(c->data + off, data, len);
}

/* Puts len bytes at data into the data area (no copy if they are there already). */
static int place(shoal_coll_t *c, const void *data, size_t len, uint64_t *off)
{
    int r;

    *off = 0;
    if (len == 0 || shoal_arena_contains(c->arena, data, len, off))
        return 0;
    if ((r = shoal_arena_alloc(c->arena, len, off)) < 0)
        return r;
    copy_in(c, *off, data, len);
    return 0;
}

/* Puts n buffers into the data area with one allocation and writes their entries to table. */
static int place_many(shoal_coll_t *c, const shoal_buf *bufs, shoal_arena_part *table)
{
    uint64_t total = 0, base = 0, off, limit = shoal_arena_data_size(c->arena);
    int r;

    for (int i = 0; i < c->n; i++) {
        if (bufs[i].len == 0 || shoal_arena_contains(c->arena, bufs[i].data, bufs[i].len, &off))
            continue;
        total = (total + shoal_coll_part_align(bufs[i].len) - 1) &
                ~(shoal_coll_part_align(bufs[i].len) - 1);
        if (bufs[i].len > limit || total > limit - bufs[i].len)
            return -ENOMEM;
        total += bufs[i].len;
    }
    if (total > 0 && (r = shoal_arena_alloc(c->arena, total, &base)) < 0)
        return r;
    if (total >= PREFAULT_MIN)
        shoal_arena_prefault(c->arena, base, total);
    off = base = total > 0 ? base : 0;
    for (int i = 0; i < c->n; i++) {
        uint64_t at = 0, len = bufs[i].len;

        if (len != 0 && !shoal_arena_contains(c->arena, bufs[i].data, len, &at)) {
            off = (off + shoal_coll_part_align(len) - 1) & ~(shoal_coll_part_align(len) - 1);
            at = off;
            memcpy(c->data + at, bufs[i].data, len);
            off += len;
        }
        table[i].off = at;
        table[i].len = len;
    }
    return 0;
}

/* Unmaps the arena and frees the handle: the end of both a failed create and a destroy. */
static void release(shoal_coll_t *c)
{
    shoal_arena_destroy(c->arena);
    free(c->seen);
    free(c->heads);
    free(c->tails);
    free(c->src);
    free(c);
}

int shoal_coll_create(shoal_coll_t **out, int fd, int rank, int nranks, uint64_t deadline_ns)
{
    shoal_coll_t *c;
    size_t n;
    int err;

    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return -ENOMEM;
    if ((err = shoal_arena_map(&c->arena, fd, rank, nranks)) < 0)
        goto fail;
    n = (size_t)nranks;
    c->seen = calloc(n, sizeof(*c->seen));
    c->heads = calloc(n, sizeof(*c->heads));
    c->tails = calloc(n, sizeof(*c->tails));
    c->src = calloc(n, sizeof(*c->src));
    if (c->seen == NULL || c->heads == NULL || c->tails == NULL || c->src == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    shoal_arena_set_own_deadline(c->arena, deadline_ns);
    c->rank = rank;
    c->n = nranks;
    c->me = ctl(c, rank);
    c->data = shoal_arena_data(c->arena);
    *out = c;
    return 0;
fail:
    release(c);
    return err;
}

void shoal_coll_destroy(shoal_coll_t *c)
{
    uint32_t v;

    if (c == NULL)
        return;
    /* Leave: peers waiting for this rank's progress see GONE; peers blocked in recv from it or
     * send to it re-check their rings and see it too. */
    v = atomic_load_explicit(&c->me->state, memory_order_relaxed);
    while (!atomic_compare_exchange_weak(&c->me->state, &v, v | SHOAL_ARENA_GONE))
        ;
    shoal_arena_wake(&c->me->state, &c->me->state_waiters);
    for (int p = 0; p < c->n; p++) {
        if (p == c->rank)
            continue;
        shoal_arena_ring(&ctl(c, p)->inbox, &ctl(c, p)->inbox_waiters);
        shoal_arena_ring(&ctl(c, p)->space, &ctl(c, p)->space_waiters);
    }
    release(c);
}

int shoal_coll_rank(const shoal_coll_t *c)
{
    return c->rank;
}

int shoal_coll_size(const shoal_coll_t *c)
{
    return c->n;
}

shoal_arena_t *shoal_coll_arena(const shoal_coll_t *c)
{
    return c->arena;
}

void *shoal_coll_alloc(shoal_coll_t *c, size_t len)
{
    uint64_t off = 0;

    if (len != 0 && shoal_arena_alloc(c->arena, len, &off) < 0)
        return NULL;
    return c->data + off;
}

int shoal_coll_barrier(shoal_coll_t *c)
{
    shoal_arena_slot want = {.kind = SHOAL_COLL_BARRIER, .root = -1}, got;
    int r;

    if ((r = begin(c, &want)) < 0)
        return fail(c, r);
    publish(c, &want, PH_ARRIVED);
    for (int p = 0; p < c->n; p++) {
        if (p == c->rank)
            continue;
        if ((r = wait_peer(c, p, prog(want.seq, PH_ARRIVED), 1)) < 0 ||
            (r = check_slot(c, p, &want, &got)) < 0)
            return fail(c, r);
    }
    set_state(c, prog(want.seq, PH_DONE));
    return 0;
}

int shoal_coll_bcast(shoal_coll_t *c, int root, const void *data, size_t len, shoal_buf *out)
{
    shoal_arena_slot want = {.kind = SHOAL_COLL_BCAST, .root = root}, got;
    int r;

    if (out == NULL || root < 0 || root >= c->n || (c->rank == root && data == NULL && len != 0))
        return fail(c, -EINVAL);
    if ((r = begin(c, &want)) < 0)
        return fail(c, r);
    if (c->rank == root) {
        if ((r = place(c, data, len, &want.off)) < 0)
            return fail(c, r);
        want.len = len;
        /* The root reads nothing of this collective: it is done as soon as it has published. */
        publish(c, &want, PH_DONE);
        return view(c, want.off, want.len, out);
    }
    if ((r = wait_peer(c, root, prog(want.seq, PH_ARRIVED), 1)) < 0 ||
        (r = check_slot(c, root, &want, &got)) < 0 || (r = view(c, got.off, got.len, out)) < 0)
        return fail(c, r);
    publish(c, &want, PH_DONE);
    return 0;
}

int shoal_coll_scatter(shoal_coll_t *c, int root, const shoal_buf *parts, shoal_buf *out)
{
    shoal_arena_slot want = {.kind = SHOAL_COLL_SCATTER, .root = root}, got;
    int r;

    if (out == NULL || root < 0 || root >= c->n ||
        (c->rank == root && !shoal_coll_bufs_valid(parts, c->n)))
        return fail(c, -EINVAL);
    if ((r = begin(c, &want)) < 0)
        return fail(c, r);
    if (c->rank == root) {
        shoal_arena_part *table = shoal_arena_parts(c->arena, c->rank, want.seq);

        if ((r = place_many(c, parts, table)) < 0)
            return fail(c, r);
        publish(c, &want, PH_DONE);
        if ((r = view_part(c, &table[c->rank], out)) < 0)
            return fail(c, r);
        return 0;
    }
    if ((r = wait_peer(c, root, prog(want.seq, PH_ARRIVED), 1)) < 0 ||
        (r = check_slot(c, root, &want, &got)) < 0 ||
        (r = view_part(c, &shoal_arena_parts(c->arena, root, want.seq)[c->rank], out)) < 0)
        return fail(c, r);
    publish(c, &want, PH_DONE);
    return 0;
}

int shoal_coll_gather(shoal_coll_t *c, int root, const void *data, size_t len, shoal_buf *parts)
{
    shoal_arena_slot want = {.kind = SHOAL_COLL_GATHER, .root = root}, got;
    int r;

    if (root < 0 || root >= c->n || (data == NULL && len != 0) ||
        (c->rank == root && parts == NULL))
        return fail(c, -EINVAL);
    if ((r = begin(c, &want)) < 0)
        return fail(c, r);
    if ((r = place(c, data, len, &want.off)) < 0)
        return fail(c, r);
    want.len = len;
    if (c->rank != root) {
        /* A non-root needs nothing from the root; it checks the root's descriptor only if it is
         * already there (cheap), to catch mismatched collectives early. It must do so before it
         * declares itself done: from then on the root may reuse the slot. */
        if (reached(atomic_load_explicit(&ctl(c, root)->state, memory_order_acquire) & CNT_MASK,
                    prog(want.seq, PH_ARRIVED)) &&
            (r = check_slot(c, root, &want, &got)) < 0)
            return fail(c, r);
        publish(c, &want, PH_DONE);
        return 0;
    }
    publish(c, &want, PH_ARRIVED);
    for (int p = 0; p < c->n; p++) {
        if (p == c->rank)
            r = view(c, want.off, want.len, &parts[p]);
        else if ((r = wait_peer(c, p, prog(want.seq, PH_ARRIVED), 1)) == 0 &&
                 (r = check_slot(c, p, &want, &got)) == 0)
            r = view(c, got.off, got.len, &parts[p]);
        if (r < 0)
            return fail(c, r);
    }
    set_state(c, prog(want.seq, PH_DONE));
    return 0;
}

int shoal_coll_shuffle(shoal_coll_t *c, const shoal_buf *send, shoal_buf *recv)
{
    shoal_arena_slot want = {.kind = SHOAL_COLL_SHUFFLE, .root = -1}, got;
    shoal_arena_part *mine;
    int r;

    if (recv == NULL || !shoal_coll_bufs_valid(send, c->n))
        return fail(c, -EINVAL);
    if ((r = begin(c, &want)) < 0)
        return fail(c, r);
    mine = shoal_arena_parts(c->arena, c->rank, want.seq);
    if ((r = place_many(c, send, mine)) < 0)
        return fail(c, r);
    publish(c, &want, PH_ARRIVED);
    for (int p = 0; p < c->n; p++) {
        if (p == c->rank)
            r = view_part(c, &mine[p], &recv[p]);
        else if ((r = wait_peer(c, p, prog(want.seq, PH_ARRIVED), 1)) == 0 &&
                 (r = check_slot(c, p, &want, &got)) == 0)
            r = view_part(c, &shoal_arena_parts(c->arena, p, want.seq)[c->rank], &recv[p]);
        if (r < 0)
            return fail(c, r);
    }
    set_state(c, prog(want.seq, PH_DONE));
    return 0;
}

/* ---- reduce ---- */

size_t shoal_coll_dtype_size(int type)
{
    switch (type) {
    case SHOAL_INT32:
    case SHOAL_FLOAT:
        return 4;
    case SHOAL_INT64:
    case SHOAL_UINT64:
    case SHOAL_DOUBLE:
        return 8;
    default:
        return 0;
    }
}

typedef void (*combine_fn)(void *restrict acc, const void *restrict src, size_t n);

/* clang-format off */
/* Integer sums and products go through the unsigned type so that they wrap instead of
 * overflowing; floating MIN/MAX take the other operand when the accumulator is NaN (fmin). */
#define COMBINE(name, T, expr)                                                                     \
    static void name(void *restrict acc_, const void *restrict src_, size_t n)                     \
    {                                                                                              \
        T *restrict a = acc_;                                                                      \
        const T *restrict b = src_;                                                                \
        for (size_t i = 0; i < n; i++) {                                                           \
            T x = a[i], y = b[i];                                                                  \
            a[i] = (expr);                                                                         \
        }                                                                                          \
    }
#define COMBINE_INT(tag, T, U)                                                                     \
    COMBINE(sum_##tag, T, (T)((U)x + (U)y))                                                        \
    COMBINE(prod_##tag, T, (T)((U)x * (U)y))                                                       \
    COMBINE(min_##tag, T, y < x ? y : x)                                                           \
    COMBINE(max_##tag, T, y > x ? y : x)
#define COMBINE_FP(tag, T)                                                                         \
    COMBINE(sum_##tag, T, x + y)                                                                   \
    COMBINE(prod_##tag, T, x * y)                                                                  \
    COMBINE(min_##tag, T, (y < x || x != x) ? y : x)                                               \
    COMBINE(max_##tag, T, (y > x || x != x) ? y : x)

COMBINE_INT(i32, int32_t, uint32_t)
COMBINE_INT(i64, int64_t, uint64_t)
COMBINE_INT(u64, uint64_t, uint64_t)
COMBINE_FP(f32, float)
COMBINE_FP(f64, double)
/* clang-format on */

/* Indexed by shoal_dtype, then shoal_op. */
static const combine_fn combiners[5][4] = {
    [SHOAL_INT32] = {sum_i32, prod_i32, min_i32, max_i32},
    [SHOAL_INT64] = {sum_i64, prod_i64, min_i64, max_i64},
    [SHOAL_UINT64] = {sum_u64, prod_u64, min_u64, max_u64},
    [SHOAL_FLOAT] = {sum_f32, prod_f32, min_f32, max_f32},
    [SHOAL_DOUBLE] = {sum_f64, prod_f64, min_f64, max_f64},
};

int shoal_coll_combine(void *acc, const void *src, size_t n, shoal_dtype type, shoal_op op)
{
    if (shoal_coll_dtype_size((int)type) == 0 || (unsigned)op > SHOAL_MAX)
        return -EINVAL;
    if (n > 0)
        combiners[type][op](acc, src, n);
    return 0;
}

/* Rank r's slice [lo, hi) of count elements: equal shares rounded up to whole cache lines. */
static void slice(size_t count, size_t esz, int n, int r, size_t *lo, size_t *hi)
{
    size_t line = 64 / esz, per = (count + (size_t)n - 1) / (size_t)n;

    per = (per + line - 1) / line * line;
    *lo = per * (size_t)r < count ? per * (size_t)r : count;
    *hi = count - *lo < per ? count : *lo + per;
}

/* Reduces elements [lo, hi) of the n staging areas in rank order into dst (which may be one of
 * them: each chunk is read whole before it is written). */
static void reduce_range(const uint8_t *const *src, int n, size_t lo, size_t hi, size_t esz,
                         combine_fn combine, uint8_t *dst)
{
    _Alignas(64) uint8_t acc[CHUNK_BYTES];
    size_t per = CHUNK_BYTES / esz;

    for (size_t i = lo; i < hi; i += per) {
        size_t m = hi - i < per ? hi - i : per;

        memcpy(acc, src[0] + i * esz, m * esz);
        for (int p = 1; p < n; p++)
            combine(acc, src[p] + i * esz, m);
        memcpy(dst + i * esz, acc, m * esz);
    }
}

/* Makes the staging area hold at least len bytes, once every peer is done reading it. */
static int staging(shoal_coll_t *c, uint64_t len)
{
    uint64_t cap, off;
    int r;

    if (c->scr_seq != 0 && (r = wait_all(c, prog(c->scr_seq, PH_DONE), 0)) < 0)
        return r;
    if (len <= c->scr_cap)
        return 0;
    /* Grow geometrically so that a rising series of sizes does not eat the data area. */
    cap = (len + PAGE - 1) & ~(uint64_t)(PAGE - 1);
    if (cap < 2 * c->scr_cap && shoal_arena_alloc(c->arena, 2 * c->scr_cap, &off) == 0)
        cap = 2 * c->scr_cap;
    else if ((r = shoal_arena_alloc(c->arena, cap, &off)) < 0)
        return r;
    if (c->scr_cap != 0)
        shoal_arena_release(c->arena, c->scr_off, c->scr_cap);
    c->scr_off = off;
    c->scr_cap = cap;
    /* Map it once: later reductions reuse it without faults. */
    if (len >= PREFAULT_MIN)
        shoal_arena_prefault(c->arena, off, len);
    return 0;
}

static int reduce(shoal_coll_t *c, unsigned kind, int root, const void *in, void *out, size_t count,
                  shoal_dtype type, shoal_op op)
{
    shoal_arena_slot want = {.kind = kind, .root = root, .count = count}, got;
    size_t esz = shoal_coll_dtype_size((int)type), lo, hi;
    int wants_result = kind == SHOAL_COLL_ALLREDUCE || c->rank == root;
    uint64_t len;
    int r;

    if (esz == 0 || (unsigned)op > SHOAL_MAX ||
        (kind == SHOAL_COLL_REDUCE && (root < 0 || root >= c->n)))
        return fail(c, -EINVAL);
    if (count > shoal_arena_data_size(c->arena) / esz)
        return fail(c, -ENOMEM);
    len = (uint64_t)count * esz;
    if (len != 0 && (in == NULL || (wants_result && out == NULL)))
        return fail(c, -EINVAL);
    want.dtype = (uint32_t)type | (uint32_t)op << 8;
    want.len = len;
    if ((r = begin(c, &want)) < 0)
        return fail(c, r);
    if (len != 0) {
        if ((r = staging(c, len)) < 0)
            return fail(c, r);
        want.off = c->scr_off;
        memcpy(c->data + want.off, in, len);
        c->scr_seq = want.seq;
    }
    publish(c, &want, PH_ARRIVED);
    for (int p = 0; p < c->n; p++) {
        shoal_buf b;

        if (p == c->rank) {
            c->src[p] = c->data + want.off;
            continue;
        }
        if ((r = wait_peer(c, p, prog(want.seq, PH_ARRIVED), 1)) < 0 ||
            (r = check_slot(c, p, &want, &got)) < 0 || (r = view(c, got.off, len, &b)) < 0)
            return fail(c, r);
        c->src[p] = b.data;
    }
    slice(count, esz, c->n, c->rank, &lo, &hi);
    reduce_range(c->src, c->n, lo, hi, esz, combiners[type][op], c->data + want.off);
    set_state(c, prog(want.seq, PH_MID));
    if (wants_result) {
        for (int p = 0; p < c->n; p++) {
            if (p != c->rank && (r = wait_peer(c, p, prog(want.seq, PH_MID), 1)) < 0)
                return fail(c, r);
            slice(count, esz, c->n, p, &lo, &hi);
            if (hi > lo)
                memcpy((uint8_t *)out + lo * esz, c->src[p] + lo * esz, (hi - lo) * esz);
        }
    }
    set_state(c, prog(want.seq, PH_DONE));
    return 0;
}

int shoal_coll_reduce(shoal_coll_t *c, int root, const void *in, void *out, size_t count,
                      shoal_dtype type, shoal_op op)
{
    return reduce(c, SHOAL_COLL_REDUCE, root, in, out, count, type, op);
}

int shoal_coll_allreduce(shoal_coll_t *c, const void *in, void *out, size_t count, shoal_dtype type,
                         shoal_op op)
{
    return reduce(c, SHOAL_COLL_ALLREDUCE, -1, in, out, count, type, op);
}

/* ---- send/recv ---- */

struct ring_wait {
    shoal_coll_t *c;
    shoal_arena_mbox *mb;
    uint32_t mine; /* the sender's head or the receiver's tail */
    int peer;
};

/* Sender: room in the ring to peer? */
static int room_ready(void *arg)
{
    struct ring_wait *w = arg;
    uint32_t used = w->mine - atomic_load_explicit(&w->mb->tail, memory_order_acquire);

    if (used > MBOX)
        return -EBADMSG;
    if (used < MBOX)
        return 1;
    if (atomic_load_explicit(&ctl(w->c, w->peer)->state, memory_order_acquire) & SHOAL_ARENA_GONE)
        return shoal_arena_failed(w->c->arena) ? -ECONNABORTED : -EPIPE;
    return 0;
}

/* Receiver: a message from peer? The GONE check re-reads head: the sender posts before it
 * leaves, so a message posted before GONE is seen. */
static int msg_ready(void *arg)
{
    struct ring_wait *w = arg;
    uint32_t avail = atomic_load_explicit(&w->mb->head, memory_order_acquire) - w->mine;

    if (avail == 0 && (atomic_load_explicit(&ctl(w->c, w->peer)->state, memory_order_acquire) &
                       SHOAL_ARENA_GONE)) {
        avail = atomic_load_explicit(&w->mb->head, memory_order_acquire) - w->mine;
        if (avail == 0)
            return shoal_arena_failed(w->c->arena) ? -ECONNABORTED : -EPIPE;
    }
    if (avail > MBOX)
        return -EBADMSG;
    return avail != 0;
}

int shoal_coll_send(shoal_coll_t *c, int dst, const void *data, size_t len)
{
    struct ring_wait w;
    uint64_t off;
    int r;

    if (dst < 0 || dst >= c->n || (data == NULL && len != 0))
        return -EINVAL;
    w = (struct ring_wait){c, shoal_arena_mbox_of(c->arena, c->rank, dst), c->heads[dst], dst};
    if (shoal_arena_failed(c->arena))
        return -ECONNABORTED;
    if ((r = shoal_arena_wait(c->arena, &c->me->space, &c->me->space_waiters, room_ready, &w)) < 0)
        return r == -EBADMSG ? fail(c, r) : r;
    if ((r = place(c, data, len, &off)) < 0)
        return r;
    w.mb->slot[w.mine % MBOX].off = off;
    w.mb->slot[w.mine % MBOX].len = len;
    atomic_store_explicit(&w.mb->head, w.mine + 1, memory_order_release);
    c->heads[dst] = w.mine + 1;
    shoal_arena_ring(&ctl(c, dst)->inbox, &ctl(c, dst)->inbox_waiters);
    return 0;
}

int shoal_coll_recv(shoal_coll_t *c, int src, shoal_buf *out)
{
    struct ring_wait w;
    int r;

    if (src < 0 || src >= c->n || out == NULL)
        return -EINVAL;
    w = (struct ring_wait){c, shoal_arena_mbox_of(c->arena, src, c->rank), c->tails[src], src};
    if (shoal_arena_failed(c->arena))
        return -ECONNABORTED;
    if ((r = shoal_arena_wait(c->arena, &c->me->inbox, &c->me->inbox_waiters, msg_ready, &w)) < 0)
        return r == -EBADMSG ? fail(c, r) : r;
    if ((r = view_part(c, &w.mb->slot[w.mine % MBOX], out)) < 0)
        return fail(c, r);
    atomic_store_explicit(&w.mb->tail, w.mine + 1, memory_order_release);
    c->tails[src] = w.mine + 1;
    shoal_arena_ring(&ctl(c, src)->space, &ctl(c, src)->space_waiters);
    return 0;
}
