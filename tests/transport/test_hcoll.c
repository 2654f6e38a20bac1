/* Tests transport/hcoll.c: groups spread over 2 and 3 "nodes", each node a real arena of its own
 * (its own memfd) mapped by that node's fork()ed ranks. The cross-node transfer interface is
 * implemented for real: xsend copies the bytes from the sender's node arena into space allocated
 * in the destination node's arena (the test process created every arena and the ranks inherit
 * its mappings, as a worker's io_uring would write into them) and posts (tag, offset, length) in a
 * shared-memory mailbox per node pair; xrecv waits on that mailbox (futex) for the exact tag,
 * bounded by the deadline and the node arena's failure word. The test process plays the workers:
 * when a rank dies or fails it aborts every node's arena.
 *
 * Every collective for group sizes 2, 3, 8 and 17 over 2 and 3 nodes (round-robin and blocked
 * placements), roots 0 and last, parts of 0 B, 1 B, 4099 B and uneven per-pair sizes, once with
 * parts of 64 MiB and more, each checked byte for byte; reduce results checked bit for bit against
 * the documented combination order (ranks of a node in order, then nodes from the root's); then a
 * rank killed mid-collective and one that never arrives, malformed bundles and partial results
 * from another node, and inconsistent node maps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <linux/futex.h>
#include <math.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "transport/arena.h"
#include "transport/coll.h"
#include "transport/hcoll.h"
#include "coll_check.h"

#define MAXN 3
#define MAXMSG 4096 /* messages per node pair and group */
/* ---- the "network": mailboxes in shared memory, one per ordered node pair ---- */

struct msg {
    _Atomic uint32_t state; /* 0 free, 1 posted, 2 taken */
    uint32_t pad;
    uint64_t tag, off, len;
};

struct net {
    _Atomic uint32_t bell[MAXN][MAXN]; /* futex: bumped per post from [src] to [dst] */
    _Atomic uint32_t count[MAXN][MAXN];
    _Atomic uint32_t go;       /* crash test: the victim may go on */
    _Atomic uint32_t dup_tags; /* a tag posted twice on one pair (must stay 0) */
    /* Corrupts the next message from node corrupt_src: 1 = its first 8 bytes become all ones (a
     * bundle's first length), 2 = 8 bytes shorter. */
    _Atomic uint32_t corrupt;
    uint32_t corrupt_src;
    struct msg m[MAXN][MAXN][MAXMSG];
};

/* What a rank process knows: set in the child after fork. */
static struct net *g_net;
static shoal_arena_t *g_arena[MAXN]; /* the test's (worker-side) mappings, inherited */
static int g_node;
static uint64_t g_deadline;
/* Set into the next group's network before its ranks start (see struct net). */
static uint32_t g_corrupt, g_corrupt_src;

static int x_send(void *arg, int node, uint64_t tag, uint64_t off, uint64_t len)
{
    const void *src = shoal_arena_view(g_arena[g_node], off, len);
    uint64_t doff = 0;
    uint32_t i;
    struct msg *m;
    int r;

    (void)arg;
    if (node < 0 || node >= MAXN || node == g_node || g_arena[node] == NULL || src == NULL)
        return -EINVAL;
    if (len != 0 && (r = shoal_arena_alloc(g_arena[node], len, &doff)) < 0)
        return r;
    if (len != 0)
        memcpy(shoal_arena_view(g_arena[node], doff, len), src, len);
    if ((uint32_t)g_node == g_net->corrupt_src && len >= 8) {
        uint32_t how = atomic_exchange(&g_net->corrupt, 0);

        if (how == 1)
            memset(shoal_arena_view(g_arena[node], doff, 8), 0xff, 8);
        else if (how == 2)
            len -= 8;
    }
    for (i = 0; i < atomic_load(&g_net->count[g_node][node]); i++)
        if (g_net->m[g_node][node][i].tag == tag)
            atomic_fetch_add(&g_net->dup_tags, 1);
    if ((i = atomic_fetch_add(&g_net->count[g_node][node], 1)) >= MAXMSG)
        return -ENOBUFS;
    m = &g_net->m[g_node][node][i];
    m->tag = tag;
    m->off = doff;
    m->len = len;
    atomic_store(&m->state, 1);
    atomic_fetch_add(&g_net->bell[g_node][node], 1);
    syscall(SYS_futex, &g_net->bell[g_node][node], FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
    return 0;
}

static int x_recv(void *arg, int node, uint64_t tag, uint64_t *off, uint64_t *len)
{
    (void)arg;
    if (node < 0 || node >= MAXN || node == g_node)
        return -EINVAL;
    for (;;) {
        _Atomic uint32_t *bell = &g_net->bell[node][g_node];
        uint32_t b = atomic_load(bell), n = atomic_load(&g_net->count[node][g_node]);
        struct timespec ts = {0, 10 * 1000 * 1000};

        for (uint32_t i = 0; i < n && i < MAXMSG; i++) {
            struct msg *m = &g_net->m[node][g_node][i];
            uint32_t posted = 1;

            if (atomic_load(&m->state) == 1 && m->tag == tag &&
                atomic_compare_exchange_strong(&m->state, &posted, 2)) {
                *off = m->off;
                *len = m->len;
                return 0;
            }
        }
        if (shoal_arena_failed(g_arena[g_node]))
            return -ECONNABORTED;
        if (shoal_util_now_ns() >= g_deadline)
            return -ETIMEDOUT;
        syscall(SYS_futex, bell, FUTEX_WAIT, b, &ts, NULL, 0);
    }
}

/* ---- groups: one arena per node, ranks forked per node ---- */

struct spec {
    int gsize, nnodes;
    uint16_t node_of[MAXR];
};

typedef int (*rank_fn)(shoal_hcoll_t *h, const struct spec *s, void *arg);

struct group {
    struct spec s;
    shoal_arena_t *a[MAXN];
    struct net *net;
    pid_t pid[MAXR];
    int code[MAXR];
};

static void spec_rr(struct spec *s, int gsize, int nnodes)
{
    s->gsize = gsize;
    s->nnodes = nnodes;
    for (int g = 0; g < gsize; g++)
        s->node_of[g] = (uint16_t)(g % nnodes);
}

/* Consecutive ranks per node, node k getting the k-th share (the last ones get more). */
static void spec_blocked(struct spec *s, int gsize, int nnodes)
{
    s->gsize = gsize;
    s->nnodes = nnodes;
    for (int g = 0; g < gsize; g++)
        s->node_of[g] = (uint16_t)(g * nnodes / gsize);
}

static int local_count(const struct spec *s, int node, int below)
{
    int n = 0;

    for (int g = 0; g < below; g++)
        n += s->node_of[g] == node;
    return n;
}

static void rank_main(struct group *gr, int g, rank_fn fn, void *arg)
{
    const struct spec *s = &gr->s;
    shoal_hcoll_xfer_t x = {x_send, x_recv, NULL};
    int node = s->node_of[g], lr = local_count(s, node, g), ln = local_count(s, node, s->gsize);
    shoal_coll_t *c;
    shoal_hcoll_t *h;
    int err, rc;

    g_rank = g;
    g_node = node;
    g_net = gr->net;
    for (int k = 0; k < MAXN; k++)
        g_arena[k] = gr->a[k];
    if ((err = shoal_coll_create(&c, shoal_arena_fd(gr->a[node]), lr, ln, g_deadline)) < 0 ||
        (err = shoal_hcoll_create(&h, c, g, s->gsize, s->nnodes, node, s->node_of, &x)) < 0) {
        fprintf(stderr, "rank %d: attach: %s\n", g, strerror(-err));
        exit(NOATTACH);
    }
    rc = fn(h, s, arg);
    shoal_hcoll_destroy(h);
    shoal_coll_destroy(c);
    exit(rc);
}

static void group_start(struct group *gr, const struct spec *s, uint64_t data, uint64_t deadline,
                        rank_fn fn, void *arg)
{
    memset(gr, 0, sizeof(*gr));
    gr->s = *s;
    gr->net =
        mmap(NULL, sizeof(struct net), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(gr->net != MAP_FAILED);
    gr->net->corrupt = g_corrupt;
    gr->net->corrupt_src = g_corrupt_src;
    g_corrupt = 0;
    for (int k = 0; k < s->nnodes; k++)
        assert_int_equal(shoal_arena_create(&gr->a[k], local_count(s, k, s->gsize), data, deadline),
                         0);
    g_deadline = deadline;
    fflush(stdout);
    fflush(stderr);
    for (int g = 0; g < s->gsize; g++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
            rank_main(gr, g, fn, arg);
        gr->pid[g] = pid;
        gr->code[g] = -1;
    }
}

static int reap(pid_t pid, int flags)
{
    int st;
    pid_t r;

    while ((r = waitpid(pid, &st, flags)) < 0)
        if (errno != EINTR)
            return -1;
    if (r == 0)
        return -2;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Reaps every rank; like a worker, aborts every node's arena when a rank dies by a signal or
 * fails, so that the ranks of other nodes stop waiting. Kills everything at limit. */
static void group_reap(struct group *gr, uint64_t limit)
{
    int left = 0;

    for (int g = 0; g < gr->s.gsize; g++)
        left += gr->code[g] < 0;
    while (left > 0) {
        for (int g = 0; g < gr->s.gsize; g++) {
            int code;

            if (gr->code[g] >= 0 || (code = reap(gr->pid[g], WNOHANG)) == -2)
                continue;
            gr->code[g] = code;
            left--;
            if (code != 0)
                for (int k = 0; k < gr->s.nnodes; k++)
                    shoal_arena_abort(gr->a[k], -1,
                                      code >= 128 ? SHOAL_ARENA_FAIL_CRASHED
                                                  : SHOAL_ARENA_FAIL_LEFT);
        }
        if (left > 0 && shoal_util_now_ns() > limit) {
            for (int g = 0; g < gr->s.gsize; g++)
                if (gr->code[g] < 0) {
                    kill(gr->pid[g], SIGKILL);
                    gr->code[g] = reap(gr->pid[g], 0);
                    print_error("rank %d killed at the test's time limit\n", g);
                }
            break;
        }
        usleep(2000);
    }
}

static void group_end(struct group *gr)
{
    for (int k = 0; k < gr->s.nnodes; k++)
        shoal_arena_destroy(gr->a[k]);
    munmap(gr->net, sizeof(struct net));
}

static void run_group(const struct spec *s, uint64_t data, rank_fn fn, void *arg)
{
    struct group gr;

    group_start(&gr, s, data, in_ms(120000), fn, arg);
    group_reap(&gr, in_ms(180000));
    for (int g = 0; g < s->gsize; g++) {
        if (gr.code[g] != 0)
            print_error("rank %d of %d (%d nodes) exited with %d\n", g, s->gsize, s->nnodes,
                        gr.code[g]);
        assert_int_equal(gr.code[g], 0);
    }
    assert_int_equal(atomic_load(&gr.net->dup_tags), 0);
    group_end(&gr);
}

/* ---- the collectives, checked in every rank ---- */

static int do_bcast(shoal_hcoll_t *h, int root, size_t len)
{
    uint64_t seed = seed_of(T_BCAST, (uint64_t)root, len, 0);
    uint8_t *buf = NULL;
    shoal_buf out = {NULL, 12345};
    int rc;

    if (shoal_hcoll_rank(h) == root)
        CHECK((buf = make(len, seed)) != NULL);
    rc = shoal_hcoll_bcast(h, root, buf, len, &out);
    free(buf); /* the views must not depend on the root's buffer */
    OK(rc);
    CHECK(out.len == len && out.data != NULL);
    CHECK(same(out.data, len, seed));
    return 0;
}

static int do_scatter(shoal_hcoll_t *h, int root, int mode, size_t base)
{
    int n = shoal_hcoll_size(h), me = shoal_hcoll_rank(h), rc;
    shoal_buf parts[MAXR], out = {NULL, 12345};
    size_t want = part_len(mode, base, root, me);

    memset(parts, 0, sizeof(parts));
    if (me == root)
        for (int i = 0; i < n; i++) {
            size_t l = part_len(mode, base, root, i);

            parts[i].len = l;
            CHECK((parts[i].data = make(l, seed_of(T_SCATTER, (uint64_t)root, (uint64_t)i, l))));
        }
    rc = shoal_hcoll_scatter(h, root, me == root ? parts : NULL, &out);
    if (me == root)
        for (int i = 0; i < n; i++)
            free((void *)parts[i].data);
    OK(rc);
    CHECK(out.len == want);
    CHECK(same(out.data, want, seed_of(T_SCATTER, (uint64_t)root, (uint64_t)me, want)));
    return 0;
}

static int do_gather(shoal_hcoll_t *h, int root, int mode, size_t base)
{
    int n = shoal_hcoll_size(h), me = shoal_hcoll_rank(h), rc;
    size_t len = part_len(mode, base, me, root);
    uint8_t *buf = make(len, seed_of(T_GATHER, (uint64_t)root, (uint64_t)me, len));
    shoal_buf parts[MAXR];

    CHECK(buf != NULL);
    memset(parts, 0, sizeof(parts));
    rc = shoal_hcoll_gather(h, root, buf, len, me == root ? parts : NULL);
    free(buf);
    OK(rc);
    if (me == root)
        for (int i = 0; i < n; i++) {
            size_t l = part_len(mode, base, i, root);

            CHECK(parts[i].len == l);
            CHECK(same(parts[i].data, l, seed_of(T_GATHER, (uint64_t)root, (uint64_t)i, l)));
        }
    return 0;
}

static int do_shuffle(shoal_hcoll_t *h, int mode, size_t base)
{
    int n = shoal_hcoll_size(h), me = shoal_hcoll_rank(h), rc;
    shoal_buf send[MAXR], recv[MAXR];

    for (int j = 0; j < n; j++) {
        size_t l = part_len(mode, base, me, j);

        send[j].len = l;
        CHECK((send[j].data = make(l, seed_of(T_SHUFFLE, (uint64_t)me, (uint64_t)j, l))));
        recv[j] = (shoal_buf){NULL, 12345};
    }
    rc = shoal_hcoll_shuffle(h, send, recv);
    for (int j = 0; j < n; j++)
        free((void *)send[j].data);
    OK(rc);
    for (int j = 0; j < n; j++) {
        size_t l = part_len(mode, base, j, me);

        CHECK(recv[j].len == l);
        CHECK(same(recv[j].data, l, seed_of(T_SHUFFLE, (uint64_t)j, (uint64_t)me, l)));
    }
    return 0;
}

/* Three messages to each of the next rank, the rank half-way round and oneself, in order. */
static int do_p2p(shoal_hcoll_t *h)
{
    static const size_t lens[3] = {0, 1, 4099};
    int n = shoal_hcoll_size(h), me = shoal_hcoll_rank(h);
    int to[3] = {(me + 1) % n, (me + n / 2) % n, me};
    int from[3] = {(me + n - 1) % n, (me + n - n / 2) % n, me};
    shoal_buf b;

    CHECK(shoal_hcoll_recv(h, me, &b) == -EDEADLK);
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 3; i++) {
            uint8_t *p = make(lens[i], seed_of(T_P2P, (uint64_t)me, (uint64_t)to[d], (uint64_t)i));

            CHECK(p != NULL);
            OK(shoal_hcoll_send(h, to[d], p, lens[i]));
            free(p);
        }
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 3; i++) {
            OK(shoal_hcoll_recv(h, from[d], &b));
            CHECK(b.len == lens[i]);
            CHECK(same(b.data, lens[i],
                       seed_of(T_P2P, (uint64_t)from[d], (uint64_t)me, (uint64_t)i)));
        }
    return 0;
}

/* The documented result: each node's ranks combined in increasing order, then the nodes in the
 * order root's node, root's node + 1, ... */
static void expect(const struct spec *s, int root, shoal_dtype t, shoal_op op, size_t i,
                   uint8_t *acc)
{
    uint8_t part[8], v[8];
    int rn = s->node_of[root];

    for (int j = 0; j < s->nnodes; j++) {
        int k = (rn + j) % s->nnodes, have = 0;

        for (int g = 0; g < s->gsize; g++) {
            if (s->node_of[g] != k)
                continue;
            value(t, op, g, i, v);
            if (have++)
                combine(t, op, part, v);
            else
                memcpy(part, v, 8);
        }
        if (j == 0)
            memcpy(acc, part, 8);
        else
            combine(t, op, acc, part);
    }
}

/* all: 0 = reduce to root, 1 = allreduce, 2 = allreduce in place. */
static int do_reduce(shoal_hcoll_t *h, const struct spec *s, int all, int root, shoal_dtype t,
                     shoal_op op, size_t count)
{
    int me = shoal_hcoll_rank(h);
    size_t esz = esz_of(t);
    uint8_t *in = malloc(count * esz + 1), *out = malloc(count * esz + 1), acc[8];

    CHECK(in != NULL && out != NULL);
    for (size_t i = 0; i < count; i++)
        value(t, op, me, i, in + i * esz);
    memset(out, 0xa5, count * esz + 1);
    if (all == 2)
        OK(shoal_hcoll_allreduce(h, in, in, count, t, op));
    else if (all == 1)
        OK(shoal_hcoll_allreduce(h, in, out, count, t, op));
    else
        OK(shoal_hcoll_reduce(h, root, in, out, count, t, op));
    if (all == 2)
        memcpy(out, in, count * esz);
    if (all || me == root) {
        for (size_t i = 0; i < count; i++) {
            expect(s, all ? 0 : root, t, op, i, acc);
            if (memcmp(out + i * esz, acc, esz) != 0) {
                fprintf(stderr, "rank %d: reduce type %d op %d count %zu: element %zu differs\n",
                        me, t, op, count, i);
                return BAD;
            }
        }
    } else {
        for (size_t i = 0; i < count * esz; i++)
            CHECK(out[i] == 0xa5);
    }
    free(in);
    free(out);
    return 0;
}

static int script_all(shoal_hcoll_t *h, const struct spec *s, void *arg)
{
    static const size_t sizes[3] = {0, 1, 4099};
    int n = shoal_hcoll_size(h), roots[2] = {0, n - 1}, rc;

    (void)arg;
    CHECK(shoal_hcoll_rank(h) == g_rank && n == s->gsize);
    for (int ri = 0; ri < 2; ri++) {
        int root = roots[ri];

        for (int si = 0; si < 3; si++) {
            OK(shoal_hcoll_barrier(h));
            if ((rc = do_bcast(h, root, sizes[si])) || (rc = do_scatter(h, root, 0, sizes[si])) ||
                (rc = do_gather(h, root, 0, sizes[si])))
                return rc;
        }
        if ((rc = do_scatter(h, root, 1, 0)) || (rc = do_gather(h, root, 1, 0)))
            return rc;
        for (int t = SHOAL_INT32; t <= SHOAL_DOUBLE; t++)
            for (int op = SHOAL_SUM; op <= SHOAL_MAX; op++)
                for (int si = 0; si < 3; si++)
                    if ((rc = do_reduce(h, s, 0, root, t, op, sizes[si])))
                        return rc;
    }
    for (int si = 0; si < 3; si++)
        if ((rc = do_shuffle(h, 0, sizes[si])))
            return rc;
    if ((rc = do_shuffle(h, 1, 0)))
        return rc;
    for (int t = SHOAL_INT32; t <= SHOAL_DOUBLE; t++) {
        for (int op = SHOAL_SUM; op <= SHOAL_MAX; op++)
            for (int si = 0; si < 3; si++)
                if ((rc = do_reduce(h, s, 1, -1, t, op, sizes[si])))
                    return rc;
        if ((rc = do_reduce(h, s, 2, -1, t, SHOAL_SUM, 4099)))
            return rc;
    }
    if ((rc = do_p2p(h)))
        return rc;
    OK(shoal_hcoll_barrier(h));
    return 0;
}

static void all_of(int gsize, int nnodes, int blocked)
{
    struct spec s;

    if (blocked)
        spec_blocked(&s, gsize, nnodes);
    else
        spec_rr(&s, gsize, nnodes);
    run_group(&s, 1ull << 30, script_all, NULL);
}

static void test_2_nodes(void **state)
{
    (void)state;
    all_of(2, 2, 0);
    all_of(3, 2, 0);
    all_of(8, 2, 0);
    all_of(8, 2, 1);
    all_of(17, 2, 0);
}

static void test_3_nodes(void **state)
{
    (void)state;
    all_of(3, 3, 0);
    all_of(8, 3, 0);
    all_of(17, 3, 0);
    all_of(17, 3, 1);
}

/* Parts of 64 MiB and more, each crossing nodes (round-robin: ranks 0 and 2 on node 0, rank 1 on
 * node 1). */
static int script_large(shoal_hcoll_t *h, const struct spec *s, void *arg)
{
    int me = shoal_hcoll_rank(h), n = shoal_hcoll_size(h), rc;
    size_t big = 64 * MiB + 3;
    shoal_buf send[MAXR], recv[MAXR], parts[MAXR], out;
    uint8_t *p;

    (void)s;
    (void)arg;
    if ((rc = do_bcast(h, n - 1, big)))
        return rc;
    /* scatter from 0: rank 1 gets the big part */
    for (int i = 0; i < n; i++) {
        size_t l = i == 1 ? big : (size_t)i;

        parts[i].len = l;
        CHECK((parts[i].data = make(l, seed_of(T_SCATTER, 7, (uint64_t)i, l))));
    }
    OK(shoal_hcoll_scatter(h, 0, parts, &out));
    CHECK(out.len == (me == 1 ? big : (size_t)me));
    CHECK(same(out.data, out.len, seed_of(T_SCATTER, 7, (uint64_t)me, out.len)));
    for (int i = 0; i < n; i++)
        free((void *)parts[i].data);
    /* gather to 0: rank 1 sends the big part */
    p = make(me == 1 ? big : 5, seed_of(T_GATHER, 7, (uint64_t)me, 0));
    CHECK(p != NULL);
    OK(shoal_hcoll_gather(h, 0, p, me == 1 ? big : 5, parts));
    free(p);
    if (me == 0)
        for (int i = 0; i < n; i++) {
            CHECK(parts[i].len == (i == 1 ? big : 5));
            CHECK(same(parts[i].data, parts[i].len, seed_of(T_GATHER, 7, (uint64_t)i, 0)));
        }
    /* shuffle: 0 -> 1 big, 1 -> 2 big, the rest small */
    for (int j = 0; j < n; j++) {
        size_t l = (me == 0 && j == 1) || (me == 1 && j == 2) ? big : (size_t)(me + j);

        send[j].len = l;
        CHECK((send[j].data = make(l, seed_of(T_SHUFFLE, (uint64_t)me, (uint64_t)j, 7))));
    }
    OK(shoal_hcoll_shuffle(h, send, recv));
    for (int j = 0; j < n; j++) {
        size_t l = (j == 0 && me == 1) || (j == 1 && me == 2) ? big : (size_t)(me + j);

        free((void *)send[j].data);
        CHECK(recv[j].len == l);
        CHECK(same(recv[j].data, l, seed_of(T_SHUFFLE, (uint64_t)j, (uint64_t)me, 7)));
    }
    /* send/recv 2 -> 1 across nodes */
    if (me == 2) {
        CHECK((p = make(big, seed_of(T_P2P, 2, 1, 7))) != NULL);
        OK(shoal_hcoll_send(h, 1, p, big));
        free(p);
    } else if (me == 1) {
        OK(shoal_hcoll_recv(h, 2, &out));
        CHECK(out.len == big && same(out.data, big, seed_of(T_P2P, 2, 1, 7)));
    }
    OK(shoal_hcoll_barrier(h));
    return 0;
}

static void test_large(void **state)
{
    struct spec s;

    (void)state;
    spec_rr(&s, 3, 2);
    run_group(&s, 2ull << 30, script_large, NULL);
}

/* Bit-identical allreduce results everywhere: each rank gathers everyone's result at rank 0. */
static int script_identical(shoal_hcoll_t *h, const struct spec *s, void *arg)
{
    size_t count = 10007;
    double *in = malloc(count * 8), *out = malloc(count * 8);
    int me = shoal_hcoll_rank(h), n = shoal_hcoll_size(h);
    shoal_buf parts[MAXR];

    (void)s;
    (void)arg;
    CHECK(in != NULL && out != NULL);
    for (size_t i = 0; i < count; i++)
        in[i] = (double)mix(seed_of(99, (uint64_t)me, i, 0)) / 3.0e17;
    OK(shoal_hcoll_allreduce(h, in, out, count, SHOAL_DOUBLE, SHOAL_SUM));
    OK(shoal_hcoll_gather(h, 0, out, count * 8, parts));
    if (me == 0)
        for (int g = 0; g < n; g++)
            CHECK(parts[g].len == count * 8 && memcmp(parts[g].data, out, count * 8) == 0);
    free(in);
    free(out);
    return 0;
}

static void test_identical(void **state)
{
    struct spec s;

    (void)state;
    spec_rr(&s, 17, 3);
    run_group(&s, 1ull << 30, script_identical, NULL);
}

/* ---- failures ---- */

enum { C_BARRIER, C_BCAST, C_ALLREDUCE, C_SHUFFLE, C_GATHER, C_RECV, C_KINDS };

struct fail_arg {
    int kind, victim;
    int never; /* 1: the victim never arrives; 0: it is killed mid-collective */
};

static int fail_rank(shoal_hcoll_t *h, const struct spec *s, void *arg)
{
    struct fail_arg *a = arg;
    int me = shoal_hcoll_rank(h), n = shoal_hcoll_size(h), rc = 0;
    static double in[1 << 16], out[1 << 16];
    shoal_buf b, send[MAXR], recv[MAXR], parts[MAXR];
    uint64_t t0;

    (void)s;
    OK(shoal_hcoll_barrier(h));
    if (me == a->victim) {
        if (a->never)
            pause();
        /* The others are in the collective (asleep) by the time the victim dies in it. */
        usleep(100000);
        if (a->kind == C_RECV || a->kind == C_BCAST)
            raise(SIGKILL);
    }
    for (int j = 0; j < n; j++)
        send[j] = (shoal_buf){in, (size_t)(j * 100)};
    t0 = shoal_util_now_ns();
    switch (a->kind) {
    case C_BARRIER:
        if (me == a->victim)
            raise(SIGKILL);
        rc = shoal_hcoll_barrier(h);
        break;
    case C_BCAST:
        rc = shoal_hcoll_bcast(h, a->victim, NULL, 0, &b);
        break;
    case C_ALLREDUCE:
        if (me == a->victim)
            raise(SIGKILL);
        rc = shoal_hcoll_allreduce(h, in, out, 1 << 16, SHOAL_DOUBLE, SHOAL_SUM);
        break;
    case C_SHUFFLE:
        if (me == a->victim)
            raise(SIGKILL);
        rc = shoal_hcoll_shuffle(h, send, recv);
        break;
    case C_GATHER:
        if (me == a->victim)
            raise(SIGKILL);
        rc = shoal_hcoll_gather(h, 0, in, 1000, parts);
        break;
    default:
        rc = shoal_hcoll_recv(h, a->victim, &b);
        break;
    }
    /* Some ranks finish the collective before the victim dies (e.g. a bcast root's node, or a
     * gather non-root): the next one cannot. */
    if (rc == 0)
        rc = shoal_hcoll_barrier(h);
    if (rc == 0)
        return BAD;
    if (shoal_util_now_ns() - t0 > (a->never ? 4000 : 3000) * 1000000ull) {
        fprintf(stderr, "rank %d: error %d after %llu ms\n", me, rc,
                (unsigned long long)((shoal_util_now_ns() - t0) / 1000000));
        return BAD;
    }
    return -rc;
}

static void fail_case(const struct spec *s, int kind, int victim, int never)
{
    struct fail_arg a = {kind, victim, never};
    struct group gr;

    group_start(&gr, s, 0, in_ms(never ? 1500 : 60000), fail_rank, &a);
    if (never) {
        /* Everyone but the victim returns by itself, at the deadline. */
        for (int g = 0; g < s->gsize; g++)
            if (g != victim)
                gr.code[g] = reap(gr.pid[g], 0);
        kill(gr.pid[victim], SIGKILL);
        gr.code[victim] = reap(gr.pid[victim], 0);
    } else {
        group_reap(&gr, in_ms(20000));
        assert_int_equal(gr.code[victim], 128 + SIGKILL);
    }
    for (int g = 0; g < s->gsize; g++) {
        int c = gr.code[g];

        if (g == victim)
            continue;
        if (c != ECONNABORTED && c != ETIMEDOUT)
            print_error("kind %d never %d victim %d: rank %d exited with %d\n", kind, never, victim,
                        g, c);
        assert_true(c == ECONNABORTED || c == ETIMEDOUT);
        if (!never) /* long before the deadline */
            assert_int_equal(c, ECONNABORTED);
    }
    group_end(&gr);
}

static void test_crash(void **state)
{
    struct spec s;

    (void)state;
    for (int k = 0; k < C_KINDS; k++) {
        spec_rr(&s, 5, 2);
        fail_case(&s, k, 3, 0); /* a non-leader of node 1 */
        spec_rr(&s, 8, 3);
        fail_case(&s, k, 1, 0); /* the leader of node 1 */
    }
}

static void test_never_arrives(void **state)
{
    struct spec s;

    (void)state;
    spec_rr(&s, 5, 2);
    for (int k = 0; k < C_KINDS; k++)
        fail_case(&s, k, k % 2 ? 1 : 2, 1);
}

/* ---- malformed data from another node ---- */

enum { M_SCATTER, M_SHUFFLE, M_REDUCE, M_KINDS };

static int malformed_rank(shoal_hcoll_t *h, const struct spec *s, void *arg)
{
    static uint8_t data[4096];
    int kind = *(int *)arg, rc;
    shoal_buf parts[MAXR], out, recv[MAXR];
    double x[16] = {0}, y[16];

    (void)s;
    for (int i = 0; i < MAXR; i++)
        parts[i] = (shoal_buf){data, 100};
    if (kind == M_SCATTER)
        rc = shoal_hcoll_scatter(h, 0, parts, &out);
    else if (kind == M_SHUFFLE)
        rc = shoal_hcoll_shuffle(h, parts, recv);
    else
        rc = shoal_hcoll_reduce(h, 0, x, y, 16, SHOAL_DOUBLE, SHOAL_SUM);
    if (rc == 0)
        rc = shoal_hcoll_barrier(h);
    return rc == 0 ? BAD : -rc;
}

/* A bundle with an impossible length, or a partial result of the wrong size, from node src: a
 * rank that reads it (bit g of victims for global rank g) fails with -EBADMSG and blames itself
 * (PROTOCOL) in its node's arena; everyone else ends with -ECONNABORTED, including a second
 * reader that the first one's abort reached before it read the bad bytes. */
static void malformed_case(int kind, int how, int src, unsigned victims)
{
    struct spec s;
    struct group gr;
    int rank, reason, detected = 0;

    spec_rr(&s, 4, 2);
    g_corrupt = (uint32_t)how;
    g_corrupt_src = (uint32_t)src;
    group_start(&gr, &s, 0, in_ms(60000), malformed_rank, &kind);
    group_reap(&gr, in_ms(20000));
    for (int g = 0; g < s.gsize; g++) {
        int want = (victims >> g) & 1 ? EBADMSG : ECONNABORTED;

        if (gr.code[g] == ECONNABORTED && want == EBADMSG && (victims & (victims - 1)) != 0)
            want = ECONNABORTED; /* one of several readers: another may have aborted first */
        else
            detected += gr.code[g] == EBADMSG;
        if (gr.code[g] != want)
            print_error("kind %d: rank %d exited with %d\n", kind, g, gr.code[g]);
        assert_int_equal(gr.code[g], want);
    }
    assert_true(detected >= 1);
    /* The failure recorded on the victims' node names one of them. */
    assert_int_equal(shoal_arena_failure(gr.a[s.node_of[__builtin_ctz(victims)]], &rank, &reason),
                     1);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_PROTOCOL);
    assert_true(rank >= 0 && rank < 2);
    group_end(&gr);
}

static void test_malformed(void **state)
{
    (void)state;
    malformed_case(M_SCATTER, 1, 0, 1u << 1); /* node 1's leader parses the root's bundle */
    malformed_case(M_SHUFFLE, 1, 1, 1u << 0 | 1u << 2); /* node 0's ranks read node 1's bundle */
    malformed_case(M_REDUCE, 2, 1, 1u << 0); /* the root gets a short partial from node 1 */
}

/* ---- bad maps and arguments ---- */

static void test_bad_map(void **state)
{
    shoal_hcoll_xfer_t x = {x_send, x_recv, NULL};
    uint16_t map[4] = {0, 1, 0, 1};
    shoal_arena_t *a;
    shoal_coll_t *c;
    shoal_hcoll_t *h;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 2, 0, 0), 0);
    assert_int_equal(shoal_coll_create(&c, shoal_arena_fd(a), 1, 2, 0), 0);
    /* local rank 1 of node 0 is global rank 2 */
    assert_int_equal(shoal_hcoll_create(&h, c, 2, 4, 2, 0, map, &x), 0);
    assert_int_equal(shoal_hcoll_rank(h), 2);
    assert_int_equal(shoal_hcoll_size(h), 4);
    assert_int_equal(shoal_hcoll_send(h, 4, "x", 1), -EINVAL);
    assert_int_equal(shoal_hcoll_recv(h, -1, NULL), -EINVAL);
    shoal_hcoll_destroy(h);
    assert_int_equal(shoal_hcoll_create(&h, c, 0, 4, 2, 0, map, &x), -EINVAL); /* wrong rank */
    assert_int_equal(shoal_hcoll_create(&h, c, 2, 4, 2, 1, map, &x), -EINVAL); /* wrong node */
    assert_int_equal(shoal_hcoll_create(&h, c, 2, 4, 3, 0, map, &x), -EINVAL); /* empty node */
    map[3] = 2;
    assert_int_equal(shoal_hcoll_create(&h, c, 2, 4, 2, 0, map, &x), -EINVAL); /* node >= nnodes */
    map[3] = 0;
    assert_int_equal(shoal_hcoll_create(&h, c, 2, 4, 2, 0, map, &x), -EINVAL); /* 3 on node 0 */
    assert_int_equal(shoal_hcoll_create(&h, c, 2, 4, 2, 0, NULL, &x), -EINVAL);
    assert_int_equal(shoal_hcoll_create(&h, c, 2, SHOAL_HCOLL_MAX_RANKS + 1, 2, 0, map, &x),
                     -EINVAL);
    shoal_coll_destroy(c);
    shoal_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_map),       cmocka_unit_test(test_2_nodes),
        cmocka_unit_test(test_3_nodes),       cmocka_unit_test(test_identical),
        cmocka_unit_test(test_large),         cmocka_unit_test(test_crash),
        cmocka_unit_test(test_never_arrives), cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
