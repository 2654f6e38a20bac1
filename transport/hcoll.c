/*
 * hcoll - see hcoll.h for the algorithms, the tag scheme and the error rules.
 *
 * Every rank of a node makes the same sequence of local collectives for a given hierarchical one
 * (which ones depends only on the arguments all ranks share: the root and the node map), so the
 * local engine's sequencing lines them up. Only leaders (or the root) talk to other nodes.
 *
 * Bundles (scatter, gather, shuffle) are one contiguous range of the arena: a table of rows x cols
 * little-endian uint64 lengths (padded to 64 bytes), then the parts in row-major order, each at
 * the next multiple of 64 bytes (4 KiB for parts of 4 KiB and more) from the bundle's start. Both
 * sides know rows and cols from the node map; the reader reads each table entry once into private
 * memory and checks every part against the bundle's length, so a malformed bundle is -EBADMSG.
 */
#include "hcoll.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define PREFAULT_MIN (256u * 1024)
#define SEND_TAG (1ull << 63)
#define PAIR_BITS 43

struct shoal_hcoll {
    shoal_coll_t *lc;
    shoal_arena_t *arena;
    shoal_hcoll_xfer_t x;
    int grank, gsize, nnodes, node, lrank, lsize;
    int *node_of;   /* gsize: node of each global rank */
    int *lidx;      /* gsize: local rank of each global rank on its node */
    int *first;     /* nnodes + 1: node k's ranks are members[first[k] .. first[k + 1]) */
    int *members;   /* gsize: global ranks grouped by node, increasing */
    uint64_t *sent; /* gsize: messages sent to each global rank on another node */
    uint64_t *rcvd; /* gsize: messages received from each */
    shoal_buf *lb;  /* lsize: scratch for the local engine's arrays */
    shoal_buf *rb;  /* gsize: scratch for parsed bundles */
    uint32_t seq;   /* collectives started */
};

/* ---- helpers ---- */

static int nsize(const shoal_hcoll_t *h, int k)
{
    return h->first[k + 1] - h->first[k];
}

static int member(const shoal_hcoll_t *h, int k, int i)
{
    return h->members[h->first[k] + i];
}

/* Records the failure in this node's arena so that no local rank waits in vain. */
static int fail(shoal_hcoll_t *h, int err)
{
    int reason, rank = h->lrank;

    switch (err) {
    case -ECONNABORTED:
        return err; /* recorded already */
    case -EINVAL:
    case -EPROTO:
    case -EBADMSG:
        reason = SHOAL_ARENA_FAIL_PROTOCOL;
        break;
    case -ENOMEM:
        reason = SHOAL_ARENA_FAIL_NOSPACE;
        break;
    case -ETIMEDOUT:
        reason = SHOAL_ARENA_FAIL_TIMEOUT;
        rank = -1;
        break;
    default: /* -EPIPE, -ECONNRESET, ...: another node is gone */
        reason = SHOAL_ARENA_FAIL_LEFT;
        rank = -1;
        break;
    }
    shoal_arena_abort(h->arena, rank, reason);
    return err;
}

static uint64_t ctag(const shoal_hcoll_t *h, unsigned kind)
{
    return (uint64_t)h->seq << 8 | kind;
}

static int begin(shoal_hcoll_t *h)
{
    if (shoal_arena_failed(h->arena))
        return -ECONNABORTED;
    h->seq++;
    return 0;
}

/* Sends [p, p + len), which must lie in the arena, to node k. */
static int xsend(shoal_hcoll_t *h, int k, uint64_t tag, const void *p, size_t len)
{
    uint64_t off = 0;

    if (len != 0 && !shoal_arena_contains(h->arena, p, len, &off))
        return -EINVAL;
    return h->x.xsend(h->x.arg, k, tag, off, len);
}

/* Receives node k's message with tag as a checked view. */
static int xrecv(shoal_hcoll_t *h, int k, uint64_t tag, shoal_buf *out)
{
    uint64_t off = 0, len = 0;
    const void *p;
    int r;

    if ((r = h->x.xrecv(h->x.arg, k, tag, &off, &len)) < 0)
        return r;
    if ((p = shoal_arena_view(h->arena, off, len)) == NULL)
        return -EBADMSG;
    out->data = p;
    out->len = (size_t)len;
    return 0;
}

/* Copies len bytes into fresh arena space unless they lie there already. */
static int to_arena(shoal_hcoll_t *h, const void *data, size_t len, const void **at)
{
    uint64_t off;
    void *p;

    if (len == 0 || shoal_arena_contains(h->arena, data, len, &off)) {
        *at = data;
        return 0;
    }
    if ((p = shoal_coll_alloc(h->lc, len)) == NULL)
        return -ENOMEM;
    if (len >= PREFAULT_MIN && shoal_arena_contains(h->arena, p, len, &off))
        shoal_arena_prefault(h->arena, off, len);
    memcpy(p, data, len);
    *at = p;
    return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

static uint64_t table_bytes(int rows, int cols)
{
    return align_up((uint64_t)rows * (uint64_t)cols * 8, 64);
}

/* Advances a bundle cursor over a part of len bytes: *pos becomes its offset, the return value
 * the end; UINT64_MAX when it would pass limit. */
static uint64_t advance(uint64_t cur, uint64_t len, uint64_t limit, uint64_t *pos)
{
    uint64_t a = shoal_coll_part_align(len);

    /* limit is at most 2^63 (a data area size, or half the range): align_up cannot wrap. */
    if (cur > limit || (*pos = align_up(cur, a)) > limit || len > limit - *pos)
        return UINT64_MAX;
    return *pos + len;
}

/* Packs n parts into one bundle of 1 row (cols = n) or n rows (cols = 1): same layout. */
static int bundle_pack(shoal_hcoll_t *h, const shoal_buf *parts, int n, shoal_buf *out)
{
    uint64_t limit = shoal_arena_data_size(h->arena), total = table_bytes(n, 1), pos, off;
    uint8_t *b;

    for (int i = 0; i < n; i++)
        if ((total = advance(total, parts[i].len, limit, &pos)) == UINT64_MAX)
            return -ENOMEM;
    if ((b = shoal_coll_alloc(h->lc, total)) == NULL)
        return -ENOMEM;
    if (total >= PREFAULT_MIN && shoal_arena_contains(h->arena, b, total, &off))
        shoal_arena_prefault(h->arena, off, total);
    total = table_bytes(n, 1);
    for (int i = 0; i < n; i++) {
        uint64_t len = parts[i].len;

        memcpy(b + (size_t)i * 8, &len, 8);
        total = advance(total, len, limit, &pos);
        if (len != 0)
            memcpy(b + pos, parts[i].data, len);
    }
    out->data = b;
    out->len = total;
    return 0;
}

/* Reads a bundle of rows x cols parts: out[r * cols + c] for every part (col < 0) or out[r] for
 * the parts of column col. */
static int bundle_parse(const shoal_buf *b, int rows, int cols, int col, shoal_buf *out)
{
    const volatile uint8_t *p = b->data;
    uint64_t cur = table_bytes(rows, cols), pos;

    if (b->len < cur)
        return -EBADMSG;
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            uint64_t len = 0;
            size_t e = ((size_t)r * (size_t)cols + (size_t)c) * 8;

            for (int i = 7; i >= 0; i--)
                len = len << 8 | p[e + (size_t)i];
            if ((cur = advance(cur, len, b->len, &pos)) == UINT64_MAX)
                return -EBADMSG;
            if (col < 0)
                out[(size_t)r * (size_t)cols + (size_t)c] =
                    (shoal_buf){(const uint8_t *)b->data + pos, (size_t)len};
            else if (c == col)
                out[r] = (shoal_buf){(const uint8_t *)b->data + pos, (size_t)len};
        }
    }
    return 0;
}

/* ---- life cycle ---- */

void shoal_hcoll_destroy(shoal_hcoll_t *h)
{
    if (h == NULL)
        return;
    free(h->node_of);
    free(h->lidx);
    free(h->first);
    free(h->members);
    free(h->sent);
    free(h->rcvd);
    free(h->lb);
    free(h->rb);
    free(h);
}

int shoal_hcoll_create(shoal_hcoll_t **out, shoal_coll_t *local, int grank, int gsize, int nnodes,
                       int node, const uint16_t *node_of, const shoal_hcoll_xfer_t *xfer)
{
    shoal_hcoll_t *h;
    size_t n = (size_t)gsize;
    int err = -EINVAL;

    *out = NULL;
    if (local == NULL || node_of == NULL || xfer == NULL || xfer->xsend == NULL ||
        xfer->xrecv == NULL || gsize < 1 || gsize > SHOAL_HCOLL_MAX_RANKS || nnodes < 1 ||
        nnodes > gsize || node < 0 || node >= nnodes || grank < 0 || grank >= gsize)
        return -EINVAL;
    if ((h = calloc(1, sizeof(*h))) == NULL)
        return -ENOMEM;
    h->node_of = calloc(n, sizeof(*h->node_of));
    h->lidx = calloc(n, sizeof(*h->lidx));
    h->first = calloc((size_t)nnodes + 1, sizeof(*h->first));
    h->members = calloc(n, sizeof(*h->members));
    h->sent = calloc(n, sizeof(*h->sent));
    h->rcvd = calloc(n, sizeof(*h->rcvd));
    h->rb = calloc(n, sizeof(*h->rb));
    if (h->node_of == NULL || h->lidx == NULL || h->first == NULL || h->members == NULL ||
        h->sent == NULL || h->rcvd == NULL || h->rb == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    /* Count the ranks per node, then lay the members out node by node in increasing order. */
    for (int g = 0; g < gsize; g++) {
        if (node_of[g] >= nnodes)
            goto fail;
        h->node_of[g] = node_of[g];
        h->lidx[g] = h->first[node_of[g] + 1]++;
    }
    for (int k = 0; k < nnodes; k++) {
        if (h->first[k + 1] == 0)
            goto fail; /* a node without ranks */
        h->first[k + 1] += h->first[k];
    }
    for (int g = 0; g < gsize; g++)
        h->members[h->first[h->node_of[g]] + h->lidx[g]] = g;
    h->lc = local;
    h->arena = shoal_coll_arena(local);
    h->x = *xfer;
    h->grank = grank;
    h->gsize = gsize;
    h->nnodes = nnodes;
    h->node = node;
    h->lrank = h->lidx[grank];
    h->lsize = nsize(h, node);
    if (h->node_of[grank] != node || shoal_coll_size(local) != h->lsize ||
        shoal_coll_rank(local) != h->lrank)
        goto fail;
    if ((h->lb = calloc((size_t)h->lsize, sizeof(*h->lb))) == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    *out = h;
    return 0;
fail:
    shoal_hcoll_destroy(h);
    return err;
}

int shoal_hcoll_rank(const shoal_hcoll_t *h)
{
    return h->grank;
}

int shoal_hcoll_size(const shoal_hcoll_t *h)
{
    return h->gsize;
}

/* ---- collectives ---- */

int shoal_hcoll_barrier(shoal_hcoll_t *h)
{
    shoal_buf b;
    uint64_t tag;
    int r;

    if ((r = begin(h)) < 0)
        return r;
    tag = ctag(h, SHOAL_COLL_BARRIER);
    if ((r = shoal_coll_barrier(h->lc)) < 0)
        return fail(h, r);
    if (h->lrank == 0) {
        if (h->node != 0) {
            if ((r = xsend(h, 0, tag, NULL, 0)) < 0 || (r = xrecv(h, 0, tag, &b)) < 0)
                return fail(h, r);
        } else {
            for (int k = 1; k < h->nnodes; k++)
                if ((r = xrecv(h, k, tag, &b)) < 0)
                    return fail(h, r);
            for (int k = 1; k < h->nnodes; k++)
                if ((r = xsend(h, k, tag, NULL, 0)) < 0)
                    return fail(h, r);
        }
    }
    if ((r = shoal_coll_barrier(h->lc)) < 0)
        return fail(h, r);
    return 0;
}

/* The bcast of collective tag (shared by bcast and allreduce). */
static int bcast(shoal_hcoll_t *h, uint64_t tag, int root, const void *data, size_t len,
                 shoal_buf *out)
{
    int rn = h->node_of[root], r;
    shoal_buf b = {NULL, 0};

    if (h->node == rn) {
        if ((r = shoal_coll_bcast(h->lc, h->lidx[root], data, len, out)) < 0)
            return fail(h, r);
        if (h->grank == root)
            for (int k = 0; k < h->nnodes; k++)
                if (k != rn && (r = xsend(h, k, tag, out->data, out->len)) < 0)
                    return fail(h, r);
        return 0;
    }
    if (h->lrank == 0 && (r = xrecv(h, rn, tag, &b)) < 0)
        return fail(h, r);
    if ((r = shoal_coll_bcast(h->lc, 0, b.data, b.len, out)) < 0)
        return fail(h, r);
    return 0;
}

int shoal_hcoll_bcast(shoal_hcoll_t *h, int root, const void *data, size_t len, shoal_buf *out)
{
    int r;

    if (out == NULL || root < 0 || root >= h->gsize ||
        (h->grank == root && data == NULL && len != 0))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return r;
    return bcast(h, ctag(h, SHOAL_COLL_BCAST), root, data, len, out);
}

int shoal_hcoll_scatter(shoal_hcoll_t *h, int root, const shoal_buf *parts, shoal_buf *out)
{
    int rn, r, me = h->grank == root;
    uint64_t tag;
    shoal_buf b;

    if (out == NULL || root < 0 || root >= h->gsize ||
        (me && !shoal_coll_bufs_valid(parts, h->gsize)))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return r;
    tag = ctag(h, SHOAL_COLL_SCATTER);
    rn = h->node_of[root];
    if (h->node == rn) {
        if (me) {
            for (int k = 0; k < h->nnodes; k++) {
                if (k == rn)
                    continue;
                for (int i = 0; i < nsize(h, k); i++)
                    h->rb[i] = parts[member(h, k, i)];
                if ((r = bundle_pack(h, h->rb, nsize(h, k), &b)) < 0 ||
                    (r = xsend(h, k, tag, b.data, b.len)) < 0)
                    return fail(h, r);
            }
            for (int i = 0; i < h->lsize; i++)
                h->lb[i] = parts[member(h, rn, i)];
        }
        r = shoal_coll_scatter(h->lc, h->lidx[root], me ? h->lb : NULL, out);
        return r < 0 ? fail(h, r) : 0;
    }
    if (h->lrank == 0 &&
        ((r = xrecv(h, rn, tag, &b)) < 0 || (r = bundle_parse(&b, 1, h->lsize, -1, h->lb)) < 0))
        return fail(h, r);
    r = shoal_coll_scatter(h->lc, 0, h->lrank == 0 ? h->lb : NULL, out);
    return r < 0 ? fail(h, r) : 0;
}

int shoal_hcoll_gather(shoal_hcoll_t *h, int root, const void *data, size_t len, shoal_buf *parts)
{
    int rn, r, me = h->grank == root;
    uint64_t tag;
    shoal_buf b;

    if (root < 0 || root >= h->gsize || (data == NULL && len != 0) || (me && parts == NULL))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return r;
    tag = ctag(h, SHOAL_COLL_GATHER);
    rn = h->node_of[root];
    if (h->node == rn) {
        if ((r = shoal_coll_gather(h->lc, h->lidx[root], data, len, me ? h->lb : NULL)) < 0)
            return fail(h, r);
        if (!me)
            return 0;
        for (int i = 0; i < h->lsize; i++)
            parts[member(h, rn, i)] = h->lb[i];
        for (int k = 0; k < h->nnodes; k++) {
            if (k == rn)
                continue;
            if ((r = xrecv(h, k, tag, &b)) < 0 ||
                (r = bundle_parse(&b, nsize(h, k), 1, -1, h->rb)) < 0)
                return fail(h, r);
            for (int i = 0; i < nsize(h, k); i++)
                parts[member(h, k, i)] = h->rb[i];
        }
        return 0;
    }
    if ((r = shoal_coll_gather(h->lc, 0, data, len, h->lrank == 0 ? h->lb : NULL)) < 0)
        return fail(h, r);
    if (h->lrank == 0 && ((r = bundle_pack(h, h->lb, h->lsize, &b)) < 0 ||
                          (r = xsend(h, rn, tag, b.data, b.len)) < 0))
        return fail(h, r);
    return 0;
}

/* The reduce of collective tag to root (shared by reduce and allreduce): the local result goes to
 * root's out, or to arena space at the other nodes' leaders, which send it to root; root combines
 * the partial results in the order rn, rn + 1, ... (mod nnodes), the same in every run. */
static int reduce(shoal_hcoll_t *h, uint64_t tag, int root, const void *in, void *out, size_t count,
                  shoal_dtype type, shoal_op op)
{
    size_t len = count * shoal_coll_dtype_size((int)type);
    int rn = h->node_of[root], r;
    int lroot = h->node == rn ? h->lidx[root] : 0;
    void *acc = NULL;
    shoal_buf b;

    if (h->lrank == lroot) {
        uint64_t off;

        acc = h->grank == root ? out : shoal_coll_alloc(h->lc, len);
        if (acc == NULL && len != 0)
            return fail(h, -ENOMEM);
        /* Fresh arena pages: map them in one call rather than a fault per page. */
        if (acc != out && len >= PREFAULT_MIN && shoal_arena_contains(h->arena, acc, len, &off))
            shoal_arena_prefault(h->arena, off, len);
    }
    if ((r = shoal_coll_reduce(h->lc, lroot, in, acc, count, type, op)) < 0)
        return fail(h, r);
    if (h->lrank != lroot)
        return 0;
    if (h->node != rn) {
        if ((r = xsend(h, rn, tag, acc, len)) < 0)
            return fail(h, r);
        return 0;
    }
    for (int i = 1; i < h->nnodes; i++) {
        if ((r = xrecv(h, (rn + i) % h->nnodes, tag, &b)) < 0)
            return fail(h, r);
        if (b.len != len)
            return fail(h, -EBADMSG);
        if ((r = shoal_coll_combine(out, b.data, count, type, op)) < 0)
            return fail(h, r);
    }
    return 0;
}

static int reduce_args(shoal_hcoll_t *h, int root, const void *in, const void *out, size_t count,
                       shoal_dtype type, shoal_op op, int all)
{
    size_t esz = shoal_coll_dtype_size((int)type);

    if (esz == 0 || (unsigned)op > SHOAL_MAX || root < 0 || root >= h->gsize)
        return -EINVAL;
    if (count > shoal_arena_data_size(h->arena) / esz)
        return -ENOMEM;
    if (count != 0 && (in == NULL || ((all || h->grank == root) && out == NULL)))
        return -EINVAL;
    return 0;
}

int shoal_hcoll_reduce(shoal_hcoll_t *h, int root, const void *in, void *out, size_t count,
                       shoal_dtype type, shoal_op op)
{
    int r;

    if ((r = reduce_args(h, root, in, out, count, type, op, 0)) < 0)
        return fail(h, r);
    if ((r = begin(h)) < 0)
        return r;
    return reduce(h, ctag(h, SHOAL_COLL_REDUCE), root, in, out, count, type, op);
}

int shoal_hcoll_allreduce(shoal_hcoll_t *h, const void *in, void *out, size_t count,
                          shoal_dtype type, shoal_op op)
{
    size_t len = count * shoal_coll_dtype_size((int)type);
    shoal_buf b;
    uint64_t tag;
    int r;

    if ((r = reduce_args(h, 0, in, out, count, type, op, 1)) < 0)
        return fail(h, r);
    if ((r = begin(h)) < 0)
        return r;
    /* Reduce goes node -> node of rank 0, bcast the other way: one tag serves both. */
    tag = ctag(h, SHOAL_COLL_ALLREDUCE);
    if ((r = reduce(h, tag, 0, in, out, count, type, op)) < 0 ||
        (r = bcast(h, tag, 0, out, len, &b)) < 0)
        return r;
    if (h->grank != 0 && len != 0) {
        if (b.len != len)
            return fail(h, -EBADMSG);
        memcpy(out, b.data, len);
    }
    return 0;
}

/* Shuffle, step 2 (the leader): lays out one bundle per other node from the lengths the local
 * ranks sent (lens[r] = rank r's gsize send lengths) and writes the descriptor every local rank
 * needs to copy its parts: desc[k * (lsize + 1)] = bundle k's data offset, then per local rank r
 * the offset (from the bundle's start) where its row begins. sizes[k] = bundle k's length. */
static int shuffle_layout(shoal_hcoll_t *h, const shoal_buf *lens, uint64_t *desc, uint64_t *sizes)
{
    uint64_t limit = shoal_arena_data_size(h->arena), pos, *m;
    size_t row = (size_t)h->gsize;
    int n = h->lsize, w = n + 1, r = 0;

    for (int i = 0; i < n; i++)
        if (lens[i].len != row * 8)
            return -EBADMSG;
    /* Read every length once into private memory: the layout and the tables written into the
     * bundles then agree whatever the ranks do to their copies meanwhile. */
    if ((m = malloc((size_t)n * row * 8)) == NULL)
        return -ENOMEM;
    for (int i = 0; i < n; i++)
        memcpy(m + (size_t)i * row, lens[i].data, row * 8);
    for (int k = 0; k < h->nnodes && r == 0; k++) {
        uint64_t cur = table_bytes(n, nsize(h, k)), off;
        uint8_t *b;

        desc[(size_t)k * (size_t)w] = 0;
        sizes[k] = 0;
        if (k == h->node)
            continue;
        for (int i = 0; i < n && r == 0; i++) {
            desc[(size_t)k * (size_t)w + 1 + (size_t)i] = cur;
            for (int c = 0; c < nsize(h, k) && r == 0; c++)
                if ((cur = advance(cur, m[(size_t)i * row + (size_t)member(h, k, c)], limit,
                                   &pos)) == UINT64_MAX)
                    r = -ENOMEM;
        }
        if (r == 0 && ((b = shoal_coll_alloc(h->lc, cur)) == NULL ||
                       !shoal_arena_contains(h->arena, b, cur, &off)))
            r = -ENOMEM;
        if (r < 0)
            break;
        /* The table: row i, column c = the length local rank i sends to node k's c-th rank. */
        for (int i = 0; i < n; i++)
            for (int c = 0; c < nsize(h, k); c++)
                memcpy(b + ((size_t)i * (size_t)nsize(h, k) + (size_t)c) * 8,
                       &m[(size_t)i * row + (size_t)member(h, k, c)], 8);
        desc[(size_t)k * (size_t)w] = off;
        sizes[k] = cur;
    }
    free(m);
    return r;
}

/* Shuffle, step 3 (every rank): copies this rank's parts for the other nodes into the bundles. */
static int shuffle_fill(shoal_hcoll_t *h, const shoal_buf *send, const shoal_buf *d)
{
    const volatile uint8_t *p = d->data;
    int w = h->lsize + 1;

    if (d->len != (size_t)h->nnodes * (size_t)w * 8)
        return -EBADMSG;
    for (int k = 0; k < h->nnodes; k++) {
        uint64_t base, cur, pos;

        if (k == h->node)
            continue;
        memcpy(&base, (const uint8_t *)p + (size_t)k * (size_t)w * 8, 8);
        memcpy(&cur, (const uint8_t *)p + ((size_t)k * (size_t)w + 1 + (size_t)h->lrank) * 8, 8);
        for (int c = 0; c < nsize(h, k); c++) {
            const shoal_buf *s = &send[member(h, k, c)];
            uint8_t *dst;

            if ((cur = advance(cur, s->len, UINT64_MAX / 2, &pos)) == UINT64_MAX ||
                pos > UINT64_MAX / 4 ||
                (dst = shoal_arena_view(h->arena, base + pos, s->len)) == NULL)
                return -EBADMSG;
            if (s->len >= PREFAULT_MIN)
                shoal_arena_prefault(h->arena, base + pos, s->len);
            if (s->len != 0)
                memcpy(dst, s->data, s->len);
        }
    }
    return 0;
}

int shoal_hcoll_shuffle(shoal_hcoll_t *h, const shoal_buf *send, shoal_buf *recv)
{
    size_t dlen = (size_t)h->nnodes * ((size_t)h->lsize + 1) * 8;
    uint64_t *lens = NULL, *desc = NULL, *sizes = NULL, tag;
    int lead = h->lrank == 0, r;
    shoal_buf d, b;

    if (recv == NULL || !shoal_coll_bufs_valid(send, h->gsize))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return r;
    tag = ctag(h, SHOAL_COLL_SHUFFLE);
    lens = malloc((size_t)h->gsize * 8);
    desc = calloc(1, dlen);
    sizes = calloc((size_t)h->nnodes, 8);
    if (lens == NULL || desc == NULL || sizes == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    /* 1. Parts between ranks of this node: the local engine, as views. */
    for (int i = 0; i < h->lsize; i++)
        h->lb[i] = send[member(h, h->node, i)];
    if ((r = shoal_coll_shuffle(h->lc, h->lb, h->rb)) < 0)
        goto fail;
    for (int i = 0; i < h->lsize; i++)
        recv[member(h, h->node, i)] = h->rb[i];
    /* 2. The leader learns every local rank's lengths and lays out the bundles. */
    for (int g = 0; g < h->gsize; g++)
        lens[g] = send[g].len;
    if ((r = shoal_coll_gather(h->lc, 0, lens, (size_t)h->gsize * 8, lead ? h->lb : NULL)) < 0)
        goto fail;
    if (lead && (r = shuffle_layout(h, h->lb, desc, sizes)) < 0)
        goto fail;
    if ((r = shoal_coll_bcast(h->lc, 0, desc, dlen, &d)) < 0)
        goto fail;
    /* 3. Every rank copies its own parts (in parallel); 4. the leader sends once all are in. */
    if ((r = shuffle_fill(h, send, &d)) < 0 || (r = shoal_coll_barrier(h->lc)) < 0)
        goto fail;
    if (lead) {
        for (int k = 0; k < h->nnodes; k++) {
            const void *p;

            if (k == h->node)
                continue;
            if ((p = shoal_arena_view(h->arena, desc[(size_t)k * (h->lsize + 1)], sizes[k])) ==
                    NULL ||
                (r = xsend(h, k, tag, p, sizes[k])) < 0) {
                r = p == NULL ? -EBADMSG : r;
                goto fail;
            }
        }
        /* 5. ... receives the other nodes' bundles and publishes (offset, length) of each. */
        for (int k = 0; k < h->nnodes; k++) {
            uint64_t off = 0;

            desc[2 * k] = desc[2 * k + 1] = 0;
            if (k == h->node)
                continue;
            if ((r = xrecv(h, k, tag, &b)) < 0)
                goto fail;
            if (b.len != 0)
                shoal_arena_contains(h->arena, b.data, b.len, &off);
            desc[2 * k] = off;
            desc[2 * k + 1] = b.len;
        }
    }
    if ((r = shoal_coll_bcast(h->lc, 0, desc, (size_t)h->nnodes * 16, &d)) < 0)
        goto fail;
    if (d.len != (size_t)h->nnodes * 16) {
        r = -EBADMSG;
        goto fail;
    }
    /* 6. Each rank takes views of its column of every received bundle. */
    for (int k = 0; k < h->nnodes; k++) {
        uint64_t e[2];

        if (k == h->node)
            continue;
        memcpy(e, (const uint8_t *)d.data + (size_t)k * 16, 16);
        if ((b.data = shoal_arena_view(h->arena, e[0], e[1])) == NULL) {
            r = -EBADMSG;
            goto fail;
        }
        b.len = (size_t)e[1];
        if ((r = bundle_parse(&b, nsize(h, k), h->lsize, h->lrank, h->rb)) < 0)
            goto fail;
        for (int i = 0; i < nsize(h, k); i++)
            recv[member(h, k, i)] = h->rb[i];
    }
    free(lens);
    free(desc);
    free(sizes);
    return 0;
fail:
    free(lens);
    free(desc);
    free(sizes);
    return fail(h, r);
}

/* ---- send/recv ---- */

static uint64_t ptag(int src, int dst, uint64_t n)
{
    return SEND_TAG | (uint64_t)src << 53 | (uint64_t)dst << PAIR_BITS |
           (n & ((1ull << PAIR_BITS) - 1));
}

int shoal_hcoll_send(shoal_hcoll_t *h, int dst, const void *data, size_t len)
{
    const void *p;
    int r;

    if (dst < 0 || dst >= h->gsize || (data == NULL && len != 0))
        return -EINVAL;
    if (h->node_of[dst] == h->node)
        return shoal_coll_send(h->lc, h->lidx[dst], data, len);
    if (shoal_arena_failed(h->arena))
        return -ECONNABORTED;
    if ((r = to_arena(h, data, len, &p)) < 0)
        return r;
    if ((r = xsend(h, h->node_of[dst], ptag(h->grank, dst, h->sent[dst]), p, len)) < 0)
        return fail(h, r);
    h->sent[dst]++;
    return 0;
}

int shoal_hcoll_recv(shoal_hcoll_t *h, int src, shoal_buf *out)
{
    int r;

    if (src < 0 || src >= h->gsize || out == NULL)
        return -EINVAL;
    if (src == h->grank) {
        /* One thread per rank: a recv from oneself with nothing sent could never complete. Only
         * this rank writes both counters of its ring to itself. */
        shoal_arena_mbox *mb = shoal_arena_mbox_of(h->arena, h->lrank, h->lrank);

        if (atomic_load_explicit(&mb->head, memory_order_relaxed) ==
            atomic_load_explicit(&mb->tail, memory_order_relaxed))
            return -EDEADLK;
    }
    if (h->node_of[src] == h->node)
        return shoal_coll_recv(h->lc, h->lidx[src], out);
    if (shoal_arena_failed(h->arena))
        return -ECONNABORTED;
    if ((r = xrecv(h, h->node_of[src], ptag(src, h->grank, h->rcvd[src]), out)) < 0)
        return fail(h, r);
    h->rcvd[src]++;
    return 0;
}
