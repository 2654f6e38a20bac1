/* Tests transport/coll.c: every collective among fork()ed ranks that map one arena, for group
 * sizes 1, 2, 3, 8 and 17, roots 0 and last, parts of 0 B, 1 B, 4099 B and varied sizes, and
 * once with parts of 64 MiB and more, each checked byte for byte (every dtype and op for reduce
 * and allreduce); then the failures: a rank killed mid-collective (the test plays the worker and
 * aborts the group), a rank that never arrives (deadline), a rank that leaves early, mismatched
 * collectives, a corrupt arena, and 1000 groups without an fd or mapping leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "transport/arena.h"
#include "transport/coll.h"
#include "coll_check.h"

/* The own deadline ranks of the next group pass to shoal_coll_create (a backstop behind the
 * group deadline, which the corruption tests overwrite). */
static uint64_t g_own_deadline;

/* ---- groups of forked ranks; the test process plays the worker ---- */

typedef int (*rank_fn)(shoal_coll_t *c, void *arg);

struct group {
    shoal_arena_t *a;
    int n;
    pid_t pid[MAXR];
    int code[MAXR];
};

static void rank_main(shoal_arena_t *a, int r, int n, rank_fn fn, void *arg)
{
    shoal_coll_t *c;
    int err = shoal_coll_create(&c, shoal_arena_fd(a), r, n, g_own_deadline), rc;

    /* Drop the worker's mapping and fd that fork copied: a rank has only its own. */
    shoal_arena_destroy(a);
    g_rank = r;
    if (err < 0) {
        fprintf(stderr, "rank %d: attach: %s\n", r, strerror(-err));
        exit(NOATTACH);
    }
    rc = fn(c, arg);
    shoal_coll_destroy(c);
    exit(rc);
}

/* Forks n ranks on arena a (created here when *a is NULL). */
static void group_fork(struct group *g, int n, rank_fn fn, void *arg)
{
    g->n = n;
    fflush(stdout);
    fflush(stderr);
    for (int r = 0; r < n; r++) {
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
            rank_main(g->a, r, n, fn, arg);
        g->pid[r] = pid;
        g->code[r] = -1;
    }
}

static void group_start(struct group *g, int n, uint64_t data, uint64_t deadline_ns, rank_fn fn,
                        void *arg)
{
    assert_int_equal(shoal_arena_create(&g->a, n, data, deadline_ns), 0);
    g_own_deadline = deadline_ns + 2000000000ull;
    group_fork(g, n, fn, arg);
}

/* The exit code of pid, or 128 + the signal that killed it. */
static int reap(pid_t pid)
{
    int st;

    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void group_reap(struct group *g)
{
    for (int r = 0; r < g->n; r++)
        if (g->code[r] < 0)
            g->code[r] = reap(g->pid[r]);
}

static void group_end(struct group *g)
{
    group_reap(g);
    shoal_arena_destroy(g->a);
    g->a = NULL;
}

static void assert_codes(const struct group *g, int want)
{
    for (int r = 0; r < g->n; r++) {
        if (g->code[r] != want)
            print_error("rank %d of %d exited with %d, want %d\n", r, g->n, g->code[r], want);
        assert_int_equal(g->code[r], want);
    }
}

static void run_group(int n, uint64_t data, rank_fn fn, void *arg)
{
    struct group g;

    group_start(&g, n, data, in_ms(120000), fn, arg);
    group_end(&g);
    assert_codes(&g, 0);
}

/* ---- one collective at a time, checked in every rank ---- */

static int do_bcast(shoal_coll_t *c, int root, size_t len)
{
    uint64_t seed = seed_of(T_BCAST, (uint64_t)root, len, 0);
    uint8_t *buf = NULL;
    shoal_buf out = {NULL, 12345};
    int rc;

    if (shoal_coll_rank(c) == root)
        CHECK((buf = make(len, seed)) != NULL);
    rc = shoal_coll_bcast(c, root, buf, len, &out);
    /* The root's buffer is gone: the views must not depend on it. */
    free(buf);
    OK(rc);
    CHECK(out.len == len && out.data != NULL);
    CHECK(same(out.data, len, seed));
    return 0;
}

static int do_scatter(shoal_coll_t *c, int root, int mode, size_t base)
{
    int n = shoal_coll_size(c), me = shoal_coll_rank(c), rc;
    shoal_buf parts[MAXR], out = {NULL, 12345};
    size_t want = part_len(mode, base, root, me);

    if (me == root) {
        for (int i = 0; i < n; i++) {
            size_t l = part_len(mode, base, root, i);

            parts[i].len = l;
            CHECK((parts[i].data = make(l, seed_of(T_SCATTER, (uint64_t)root, (uint64_t)i, l))));
        }
    }
    rc = shoal_coll_scatter(c, root, me == root ? parts : NULL, &out);
    if (me == root)
        for (int i = 0; i < n; i++)
            free((void *)parts[i].data);
    OK(rc);
    CHECK(out.len == want && out.data != NULL);
    CHECK(same(out.data, want, seed_of(T_SCATTER, (uint64_t)root, (uint64_t)me, want)));
    return 0;
}

static int do_gather(shoal_coll_t *c, int root, int mode, size_t base)
{
    int n = shoal_coll_size(c), me = shoal_coll_rank(c), rc;
    size_t len = part_len(mode, base, me, root);
    uint8_t *mine;
    shoal_buf parts[MAXR];

    CHECK((mine = make(len, seed_of(T_GATHER, (uint64_t)me, (uint64_t)root, len))) != NULL);
    memset(parts, 0, sizeof(parts));
    rc = shoal_coll_gather(c, root, mine, len, me == root ? parts : NULL);
    free(mine);
    OK(rc);
    if (me != root)
        return 0;
    for (int p = 0; p < n; p++) {
        size_t l = part_len(mode, base, p, root);

        CHECK(parts[p].len == l && parts[p].data != NULL);
        CHECK(same(parts[p].data, l, seed_of(T_GATHER, (uint64_t)p, (uint64_t)root, l)));
    }
    return 0;
}

static int do_shuffle(shoal_coll_t *c, int mode, size_t base)
{
    int n = shoal_coll_size(c), me = shoal_coll_rank(c), rc;
    shoal_buf send[MAXR], recv[MAXR];

    for (int i = 0; i < n; i++) {
        size_t l = part_len(mode, base, me, i);

        send[i].len = l;
        CHECK((send[i].data = make(l, seed_of(T_SHUFFLE, (uint64_t)me, (uint64_t)i, l))));
    }
    memset(recv, 0, sizeof(recv));
    rc = shoal_coll_shuffle(c, send, recv);
    for (int i = 0; i < n; i++)
        free((void *)send[i].data);
    OK(rc);
    for (int p = 0; p < n; p++) {
        size_t l = part_len(mode, base, p, me);

        CHECK(recv[p].len == l && recv[p].data != NULL);
        CHECK(same(recv[p].data, l, seed_of(T_SHUFFLE, (uint64_t)p, (uint64_t)me, l)));
    }
    return 0;
}

/* Every rank sends three messages (0 B, 1 B, 4099 B) to every rank including itself before it
 * receives anything, then receives them all, checking the order per pair. */
static int do_p2p(shoal_coll_t *c)
{
    static const size_t sizes[3] = {0, 1, 4099};
    int n = shoal_coll_size(c), me = shoal_coll_rank(c);

    for (int d = 0; d < n; d++) {
        for (int m = 0; m < 3; m++) {
            uint8_t *b = make(sizes[m], seed_of(T_P2P, (uint64_t)me, (uint64_t)d, (uint64_t)m));
            int rc;

            CHECK(b != NULL);
            rc = shoal_coll_send(c, (me + d) % n, b, sizes[m]);
            free(b);
            /* Sent to (me + d) % n so that ranks do not all post to rank 0 first. */
            OK(rc);
        }
    }
    for (int s = 0; s < n; s++) {
        int src = (me - s + n) % n;

        for (int m = 0; m < 3; m++) {
            shoal_buf out = {NULL, 1};

            OK(shoal_coll_recv(c, src, &out));
            CHECK(out.len == sizes[m] && out.data != NULL);
            CHECK(
                same(out.data, sizes[m], seed_of(T_P2P, (uint64_t)src, (uint64_t)s, (uint64_t)m)));
        }
    }
    return 0;
}

/* all: 0 = reduce to root, 1 = allreduce, 2 = allreduce in place (in == out). */
static int do_reduce(shoal_coll_t *c, int all, int root, shoal_dtype t, shoal_op op, size_t count)
{
    int n = shoal_coll_size(c), me = shoal_coll_rank(c), rc;
    size_t esz = esz_of(t);
    uint8_t *in = malloc(count * esz + 1), *out = malloc(count * esz + 1), acc[8], v[8];

    CHECK(in != NULL && out != NULL);
    for (size_t i = 0; i < count; i++)
        value(t, op, me, i, in + i * esz);
    memset(out, 0xa5, count * esz + 1);
    if (all == 2)
        rc = shoal_coll_allreduce(c, in, in, count, t, op);
    else if (all == 1)
        rc = shoal_coll_allreduce(c, in, out, count, t, op);
    else
        rc = shoal_coll_reduce(c, root, in, out, count, t, op);
    OK(rc);
    if (all == 2)
        memcpy(out, in, count * esz);
    if (all || me == root) {
        for (size_t i = 0; i < count; i++) {
            value(t, op, 0, i, acc);
            for (int p = 1; p < n; p++) {
                value(t, op, p, i, v);
                combine(t, op, acc, v);
            }
            if (memcmp(out + i * esz, acc, esz) != 0) {
                fprintf(stderr, "rank %d: reduce type %d op %d count %zu: element %zu differs\n",
                        me, t, op, count, i);
                return BAD;
            }
        }
    } else {
        /* out is not the non-root's business: untouched. */
        for (size_t i = 0; i < count * esz; i++)
            CHECK(out[i] == 0xa5);
    }
    if (all != 2) {
        for (size_t i = 0; i < count; i++) {
            value(t, op, me, i, v);
            CHECK(memcmp(in + i * esz, v, esz) == 0);
        }
    }
    free(in);
    free(out);
    return 0;
}

/* ---- the full matrix: every collective, roots 0 and last, every size ---- */

static int script_all(shoal_coll_t *c, void *arg)
{
    static const size_t sizes[3] = {0, 1, 4099};
    int n = shoal_coll_size(c), roots[2] = {0, n - 1}, rc;

    (void)arg;
    CHECK(shoal_coll_rank(c) == g_rank);
    for (int ri = 0; ri < (n > 1 ? 2 : 1); ri++) {
        int root = roots[ri];

        for (int si = 0; si < 3; si++) {
            OK(shoal_coll_barrier(c));
            if ((rc = do_bcast(c, root, sizes[si])) || (rc = do_scatter(c, root, 0, sizes[si])) ||
                (rc = do_gather(c, root, 0, sizes[si])))
                return rc;
        }
        if ((rc = do_scatter(c, root, 1, 0)) || (rc = do_gather(c, root, 1, 0)))
            return rc;
        for (int t = SHOAL_INT32; t <= SHOAL_DOUBLE; t++)
            for (int op = SHOAL_SUM; op <= SHOAL_MAX; op++)
                for (int si = 0; si < 3; si++)
                    if ((rc = do_reduce(c, 0, root, t, op, sizes[si])))
                        return rc;
    }
    for (int si = 0; si < 3; si++)
        if ((rc = do_shuffle(c, 0, sizes[si])))
            return rc;
    if ((rc = do_shuffle(c, 1, 0)))
        return rc;
    for (int t = SHOAL_INT32; t <= SHOAL_DOUBLE; t++) {
        for (int op = SHOAL_SUM; op <= SHOAL_MAX; op++)
            for (int si = 0; si < 3; si++)
                if ((rc = do_reduce(c, 1, -1, t, op, sizes[si])))
                    return rc;
        if ((rc = do_reduce(c, 2, -1, t, SHOAL_SUM, 4099)))
            return rc;
    }
    if ((rc = do_p2p(c)))
        return rc;
    OK(shoal_coll_barrier(c));
    return 0;
}

static void test_all_1(void **state)
{
    (void)state;
    run_group(1, 0, script_all, NULL);
}

static void test_all_2(void **state)
{
    (void)state;
    run_group(2, 0, script_all, NULL);
}

static void test_all_3(void **state)
{
    (void)state;
    run_group(3, 0, script_all, NULL);
}

static void test_all_8(void **state)
{
    (void)state;
    run_group(8, 0, script_all, NULL);
}

static void test_all_17(void **state)
{
    (void)state;
    run_group(17, 0, script_all, NULL);
}

/* ---- large parts: 64 MiB and odd sizes above it, more than 1 GiB through one group ---- */

static int script_large(shoal_coll_t *c, void *arg)
{
    int n = shoal_coll_size(c), me = shoal_coll_rank(c), rc, last = n - 1;
    size_t big = 64 * MiB;

    (void)arg;
    if ((rc = do_bcast(c, last, big + 1)) || (rc = do_scatter(c, 0, 0, big + 3)) ||
        (rc = do_gather(c, last, 0, big + 5)) || (rc = do_shuffle(c, 0, big + 7)))
        return rc;
    /* 64 MiB + 8 of doubles to the last rank, 64 MiB + 24 of int64 to all. */
    if ((rc = do_reduce(c, 0, last, SHOAL_DOUBLE, SHOAL_SUM, big / 8 + 1)) ||
        (rc = do_reduce(c, 1, -1, SHOAL_INT64, SHOAL_SUM, big / 8 + 3)))
        return rc;
    /* A 64 MiB message from each rank to the next. */
    {
        uint8_t *b = make(big + 9, seed_of(T_P2P, (uint64_t)me, 99, 0));
        shoal_buf out;

        CHECK(b != NULL);
        rc = shoal_coll_send(c, (me + 1) % n, b, big + 9);
        free(b);
        OK(rc);
        OK(shoal_coll_recv(c, (me + n - 1) % n, &out));
        CHECK(out.len == big + 9);
        CHECK(same(out.data, out.len, seed_of(T_P2P, (uint64_t)((me + n - 1) % n), 99, 0)));
    }
    OK(shoal_coll_barrier(c));
    return 0;
}

static void test_large(void **state)
{
    (void)state;
    run_group(3, 0, script_large, NULL);
}

/* One bcast of a whole GiB (root last). */
static int script_gib(shoal_coll_t *c, void *arg)
{
    (void)arg;
    return do_bcast(c, shoal_coll_size(c) - 1, 1024 * MiB + 1);
}

static void test_gib(void **state)
{
    (void)state;
    run_group(2, 0, script_gib, NULL);
}

/* ---- zero-copy paths ---- */

/* A buffer from shoal_coll_alloc, and a received buffer passed on, are shared without a copy. */
static int script_zero_copy(shoal_coll_t *c, void *arg)
{
    int n = shoal_coll_size(c), me = shoal_coll_rank(c);
    uint64_t seed = seed_of(T_BCAST, 7, 7, 7);
    shoal_buf out, again, parts[MAXR];
    uint8_t *mine = NULL;

    (void)arg;
    if (me == 0) {
        CHECK((mine = shoal_coll_alloc(c, 100000)) != NULL);
        fill(mine, 100000, seed);
    }
    OK(shoal_coll_bcast(c, 0, mine, 100000, &out));
    CHECK(out.len == 100000 && same(out.data, out.len, seed));
    if (me == 0)
        CHECK(out.data == mine);
    /* Every rank sees the same bytes at the same arena offset: re-broadcasting a view from the
     * last rank hands out the very same bytes again. */
    OK(shoal_coll_bcast(c, n - 1, out.data, out.len, &again));
    CHECK(again.data == out.data && again.len == out.len);
    OK(shoal_coll_gather(c, 0, out.data, out.len, me == 0 ? parts : NULL));
    if (me == 0)
        for (int p = 0; p < n; p++)
            CHECK(parts[p].data == out.data);
    return 0;
}

static void test_zero_copy(void **state)
{
    (void)state;
    run_group(3, 0, script_zero_copy, NULL);
}

/* ---- send/recv: order and back-pressure ---- */

/* Rank 0 sends 200 messages to rank 1, which starts receiving late: the first
 * SHOAL_ARENA_MBOX_SLOTS are buffered, then send waits for room. */
static int script_backpressure(shoal_coll_t *c, void *arg)
{
    (void)arg;
    if (shoal_coll_rank(c) == 0) {
        for (uint64_t m = 0; m < 200; m++) {
            size_t l = (size_t)(m * 37 % 300);
            uint8_t *b = make(l, seed_of(T_P2P, 0, 1, m));
            int rc;

            CHECK(b != NULL);
            rc = shoal_coll_send(c, 1, b, l);
            free(b);
            OK(rc);
        }
    } else if (shoal_coll_rank(c) == 1) {
        usleep(50000);
        for (uint64_t m = 0; m < 200; m++) {
            shoal_buf out;

            OK(shoal_coll_recv(c, 0, &out));
            CHECK(out.len == (size_t)(m * 37 % 300));
            CHECK(same(out.data, out.len, seed_of(T_P2P, 0, 1, m)));
        }
    }
    OK(shoal_coll_barrier(c));
    return 0;
}

static void test_backpressure(void **state)
{
    (void)state;
    run_group(3, 0, script_backpressure, NULL);
}

/* ---- failures ---- */

/* Shared between the test (the worker) and its ranks. */
struct ctl_page {
    _Atomic int go;
};

struct crash_arg {
    int kind;
    int victim;
    struct ctl_page *page;
};

enum { C_BARRIER, C_ALLREDUCE, C_GATHER, C_BCAST, C_RECV, C_SEND, C_KINDS };

/* The survivors' part: the collective (then a barrier); returns the first error as a positive
 * errno (0 if none). The victim enters the same collective and gets killed in it; the last rank
 * enters only once the group has been aborted. */
static int crash_rank(shoal_coll_t *c, void *arg)
{
    struct crash_arg *a = arg;
    int me = shoal_coll_rank(c), rc = 0;
    static double in[1 << 20], out[1 << 20];
    shoal_buf b, parts[MAXR];

    if (me == shoal_coll_size(c) - 1)
        while (!atomic_load(&a->page->go))
            usleep(1000);
    if (me == a->victim && (a->kind == C_BCAST || a->kind == C_RECV || a->kind == C_SEND))
        pause(); /* killed here */
    switch (a->kind) {
    case C_BARRIER:
        rc = shoal_coll_barrier(c);
        break;
    case C_ALLREDUCE:
        rc = shoal_coll_allreduce(c, in, out, 1 << 20, SHOAL_DOUBLE, SHOAL_SUM);
        break;
    case C_GATHER:
        rc = shoal_coll_gather(c, a->victim, in, sizeof(in), parts);
        break;
    case C_BCAST:
        rc = shoal_coll_bcast(c, a->victim, NULL, 0, &b);
        break;
    case C_RECV:
        rc = shoal_coll_recv(c, a->victim, &b);
        break;
    case C_SEND:
        for (int i = 0; i < SHOAL_ARENA_MBOX_SLOTS + 5 && rc == 0; i++)
            rc = shoal_coll_send(c, a->victim, in, 1000);
        break;
    }
    if (rc == 0)
        rc = shoal_coll_barrier(c);
    if (me == a->victim)
        pause();
    return -rc;
}

static void crash_case(int n, int kind)
{
    struct ctl_page *page =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct crash_arg arg = {kind, 1, page};
    struct group g;
    uint64_t t0, t1;
    int rank, reason;

    assert_true(page != MAP_FAILED);
    atomic_store(&page->go, 0);
    group_start(&g, n, 0, in_ms(60000), crash_rank, &arg);
    if (kind == C_BARRIER || kind == C_ALLREDUCE || kind == C_GATHER) {
        /* Wait until the victim is inside the collective: it published its arrival. */
        shoal_arena_ctl *v = shoal_arena_ctl_of(g.a, arg.victim);
        uint64_t until = in_ms(10000);

        while ((atomic_load(&v->state) & SHOAL_COLL_PROGRESS_MASK) <
                   SHOAL_COLL_PROGRESS(1, SHOAL_COLL_ARRIVED) &&
               shoal_util_now_ns() < until)
            usleep(1000);
    }
    usleep(50000); /* the survivors are asleep in their waits by now */
    kill(g.pid[arg.victim], SIGKILL);
    g.code[arg.victim] = reap(g.pid[arg.victim]);
    assert_int_equal(g.code[arg.victim], 128 + SIGKILL);
    /* What the worker does when it sees a rank die. */
    t0 = shoal_util_now_ns();
    assert_int_equal(shoal_arena_abort(g.a, arg.victim, SHOAL_ARENA_FAIL_CRASHED), 0);
    atomic_store(&page->go, 1);
    group_reap(&g);
    t1 = shoal_util_now_ns();
    for (int r = 0; r < n; r++)
        if (r != arg.victim)
            assert_int_equal(g.code[r], ECONNABORTED);
    /* Promptly: well under the deadline, bounded by wake-up and exit of the ranks. */
    assert_true(t1 - t0 < 2000000000ull);
    assert_int_equal(shoal_arena_failure(g.a, &rank, &reason), 1);
    assert_int_equal(rank, arg.victim);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_CRASHED);
    shoal_arena_destroy(g.a);
    munmap(page, 4096);
}

static void test_crash(void **state)
{
    (void)state;
    for (int k = 0; k < C_KINDS; k++) {
        crash_case(4, k);
        crash_case(8, k);
    }
}

/* Ranks 0 and 1 wait for rank 2, which never arrives: -ETIMEDOUT at the deadline. */
static int never_rank(shoal_coll_t *c, void *arg)
{
    int kind = *(int *)arg, rc = 0;
    uint64_t deadline = atomic_load(&shoal_arena_header(shoal_coll_arena(c))->deadline_ns), now;
    shoal_buf b;
    double x[4] = {0};

    if (shoal_coll_rank(c) == 2)
        pause();
    switch (kind) {
    case C_BARRIER:
        rc = shoal_coll_barrier(c);
        break;
    case C_ALLREDUCE:
        rc = shoal_coll_allreduce(c, x, x, 4, SHOAL_DOUBLE, SHOAL_SUM);
        break;
    case C_BCAST:
        rc = shoal_coll_bcast(c, 2, NULL, 0, &b);
        break;
    default:
        rc = shoal_coll_recv(c, 2, &b);
        break;
    }
    now = shoal_util_now_ns();
    CHECK(now >= deadline);
    CHECK(now < deadline + 1000000000ull);
    return -rc;
}

static void test_never_arrives(void **state)
{
    static int kinds[] = {C_BARRIER, C_ALLREDUCE, C_BCAST, C_RECV};

    (void)state;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        struct group g;

        group_start(&g, 3, 0, in_ms(300), never_rank, &kinds[k]);
        g.code[0] = reap(g.pid[0]);
        g.code[1] = reap(g.pid[1]);
        kill(g.pid[2], SIGKILL);
        group_end(&g);
        assert_int_equal(g.code[0], ETIMEDOUT);
        assert_int_equal(g.code[1], ETIMEDOUT);
    }
}

/* Rank 2 posts one message to rank 0 and leaves without entering the barrier. */
static int leave_rank(shoal_coll_t *c, void *arg)
{
    int me = shoal_coll_rank(c), rc;
    shoal_buf b;

    (void)arg;
    if (me == 2) {
        OK(shoal_coll_send(c, 0, "bye", 3));
        return 0;
    }
    if (me == 0) {
        OK(shoal_coll_recv(c, 2, &b));
        CHECK(b.len == 3 && memcmp(b.data, "bye", 3) == 0);
        CHECK(shoal_coll_recv(c, 2, &b) == -EPIPE);
    }
    rc = shoal_coll_barrier(c);
    CHECK(rc == -EPIPE || rc == -ECONNABORTED);
    return 0;
}

static void test_leave_early(void **state)
{
    struct group g;
    int rank, reason;

    (void)state;
    group_start(&g, 3, 0, in_ms(60000), leave_rank, NULL);
    group_reap(&g);
    assert_codes(&g, 0);
    assert_int_equal(shoal_arena_failure(g.a, &rank, &reason), 1);
    assert_int_equal(rank, 2);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_LEFT);
    group_end(&g);
}

/* Rank 0 broadcasts while rank 1 takes part in a scatter from rank 0: rank 1 detects it (-EPROTO),
 * which aborts the group. */
static int mismatch_rank(shoal_coll_t *c, void *arg)
{
    shoal_buf b;
    int rc;

    (void)arg;
    if (shoal_coll_rank(c) == 0) {
        OK(shoal_coll_bcast(c, 0, "x", 1, &b));
        rc = shoal_coll_barrier(c);
    } else {
        rc = shoal_coll_scatter(c, 0, NULL, &b);
    }
    return -rc;
}

/* Ranks disagree on the count of an allreduce. */
static int mismatch_count_rank(shoal_coll_t *c, void *arg)
{
    double x[8] = {0};
    int rc;

    (void)arg;
    rc = shoal_coll_allreduce(c, x, x, shoal_coll_rank(c) == 1 ? 8 : 4, SHOAL_DOUBLE, SHOAL_SUM);
    CHECK(rc == -EPROTO || rc == -ECONNABORTED);
    return 0;
}

static void test_mismatch(void **state)
{
    struct group g;
    int rank, reason;

    (void)state;
    group_start(&g, 2, 0, in_ms(60000), mismatch_rank, NULL);
    group_reap(&g);
    assert_int_equal(g.code[0], ECONNABORTED);
    assert_int_equal(g.code[1], EPROTO);
    assert_int_equal(shoal_arena_failure(g.a, &rank, &reason), 1);
    assert_int_equal(rank, 1);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_PROTOCOL);
    group_end(&g);
    run_group(3, 0, mismatch_count_rank, NULL);
}

/* ---- a corrupt arena: errors, never a crash ---- */

/* Rank 0 plays a malicious peer: it publishes descriptors, part tables and messages that point
 * outside the arena; the others must refuse them (-EBADMSG) and abort the group. */
static int evil_rank(shoal_coll_t *c, void *arg)
{
    int me = shoal_coll_rank(c), scenario = *(int *)arg, rc;
    shoal_arena_t *a = shoal_coll_arena(c);
    uint64_t size = shoal_arena_data_size(a);
    shoal_buf b, recv[MAXR], send[MAXR];

    if (me == 0) {
        shoal_arena_ctl *mine = shoal_arena_ctl_of(a, 0);
        shoal_arena_slot *s = &mine->slot[1 % SHOAL_ARENA_SLOTS];
        shoal_arena_mbox *mb = shoal_arena_mbox_of(a, 0, 1);
        shoal_arena_part *t = shoal_arena_parts(a, 0, 1);

        s->seq = 1;
        s->root = scenario == 1 ? -1 : 0;
        s->kind = scenario == 0 ? SHOAL_COLL_BCAST : SHOAL_COLL_SHUFFLE;
        s->off = size - 8;
        s->len = 100;
        for (int i = 0; i < shoal_coll_size(c); i++) {
            t[i].off = UINT64_MAX - 5;
            t[i].len = 10;
        }
        mb->slot[0].off = size;
        mb->slot[0].len = 1;
        atomic_store(&mb->head, scenario == 2 ? 1u : 1000u);
        atomic_store(&mine->state, SHOAL_COLL_PROGRESS(1, SHOAL_COLL_DONE));
        pause();
    }
    memset(send, 0, sizeof(send));
    if (scenario == 0)
        rc = shoal_coll_bcast(c, 0, NULL, 0, &b);
    else if (scenario == 1)
        rc = shoal_coll_shuffle(c, send, recv);
    else
        rc = me == 1 ? shoal_coll_recv(c, 0, &b) : -EBADMSG;
    return -rc;
}

static void test_corrupt_offsets(void **state)
{
    (void)state;
    for (int scenario = 0; scenario < 4; scenario++) {
        struct group g;

        group_start(&g, 3, 0, in_ms(20000), evil_rank, &scenario);
        g.code[1] = reap(g.pid[1]);
        g.code[2] = reap(g.pid[2]);
        kill(g.pid[0], SIGKILL);
        group_end(&g);
        /* Whoever reads the bad offset first refuses it and aborts the group; in scenarios 0 and
         * 1 the other reader may be aborted before it reads. */
        assert_true(g.code[1] == EBADMSG || g.code[1] == ECONNABORTED);
        assert_true(g.code[2] == EBADMSG || g.code[2] == ECONNABORTED);
        assert_true(g.code[1] == EBADMSG || g.code[2] == EBADMSG);
    }
}

/* Rank 0 scribbles random bytes over the whole control area while the others run collectives:
 * they may fail (any error) but must exit normally, and the worker's calls must be unaffected. */
static int scribble_rank(shoal_coll_t *c, void *arg)
{
    shoal_arena_t *a = shoal_coll_arena(c);
    uint64_t seed = *(uint64_t *)arg;
    uint8_t *lo = (uint8_t *)shoal_arena_header(a), *hi = shoal_arena_data(a);

    /* Once rank 0 is through this barrier everyone has attached (a rank that maps a scribbled
     * arena refuses it with -EBADMSG); the others may already see the scribbles in it. */
    if (shoal_coll_barrier(c) < 0)
        return shoal_coll_rank(c) == 0 ? BAD : 0;
    if (shoal_coll_rank(c) == 0) {
        /* Everything from the control blocks up to the data area, in random order and values. */
        uint8_t *from = (uint8_t *)shoal_arena_ctl_of(a, 0);
        for (uint64_t i = 0; i < 200000; i++) {
            uint64_t r = mix(seed + i);
            from[r % (uint64_t)(hi - from)] = (uint8_t)(r >> 56);
        }
        /* And the header page, bump pointer and all. */
        for (uint64_t i = 0; i < 4096; i++)
            lo[i] = (uint8_t)mix(seed ^ i);
        return 0;
    }
    for (int i = 0; i < 50; i++) {
        shoal_buf b, parts[MAXR], send[MAXR];
        double x[64] = {0};
        int rc;

        memset(send, 0, sizeof(send));
        switch (i % 6) {
        case 0:
            rc = shoal_coll_barrier(c);
            break;
        case 1:
            rc = shoal_coll_bcast(c, i % 3, "abc", 3, &b);
            break;
        case 2:
            rc = shoal_coll_gather(c, 1, "abc", 3, parts);
            break;
        case 3:
            rc = shoal_coll_allreduce(c, x, x, 64, SHOAL_DOUBLE, SHOAL_MAX);
            break;
        case 4:
            rc = shoal_coll_shuffle(c, send, parts);
            break;
        default:
            rc = shoal_coll_send(c, 0, "m", 1);
            if (rc == 0)
                rc = shoal_coll_recv(c, 0, &b);
            break;
        }
        if (rc < 0)
            return 0;
    }
    return 0;
}

static void test_corrupt_scribble(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        struct group g;
        int rank = 0, reason = 0;

        group_start(&g, 3, 64 * MiB, in_ms(300), scribble_rank, &seed);
        group_reap(&g);
        assert_codes(&g, 0);
        /* The worker side reads nothing it could be steered by: these must just work. */
        shoal_arena_set_deadline(g.a, in_ms(1000));
        int r = shoal_arena_abort(g.a, 1, SHOAL_ARENA_FAIL_CANCELLED);
        assert_true(r == 0 || r == -EALREADY);
        assert_int_equal(shoal_arena_failure(g.a, &rank, &reason), 1);
        assert_true(rank >= -1 && rank < 3);
        assert_true(reason >= 1 && reason <= SHOAL_ARENA_FAIL_MAX);
        assert_non_null(shoal_arena_reason_str(reason));
        /* A reset makes it a clean arena again. */
        assert_int_equal(shoal_arena_reset(g.a, in_ms(60000), 0), 0);
        assert_int_equal(shoal_arena_failure(g.a, NULL, NULL), 0);
        group_fork(&g, 3, script_zero_copy, NULL);
        group_end(&g);
        assert_codes(&g, 0);
    }
}

/* ---- reuse and leaks ---- */

/* The worker resets an arena between two groups of the same function; the second group works
 * and finds the pages the first one touched still allocated (warm). */
static void test_reset_reuse(void **state)
{
    struct group g;

    (void)state;
    group_start(&g, 3, 0, in_ms(60000), script_zero_copy, NULL);
    group_reap(&g);
    assert_codes(&g, 0);
    assert_true(atomic_load(&shoal_arena_header(g.a)->bump) > 0);
    assert_int_equal(shoal_arena_reset(g.a, in_ms(60000), 64 * MiB), 0);
    assert_int_equal(atomic_load(&shoal_arena_header(g.a)->bump), 0);
    group_fork(&g, 3, script_backpressure, NULL);
    group_end(&g);
    assert_codes(&g, 0);
}

static int count_dir(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;

    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    int n = 0, ch;

    assert_non_null(f);
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* 1000 groups created, attached, used and destroyed: no fd and no mapping survives. */
static void test_no_leak(void **state)
{
    int fds, maps;

    (void)state;
    /* Warm up libc and the allocator so that their own first-use mappings do not count. */
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            fds = count_dir("/proc/self/fd");
            maps = count_maps();
        }
        for (int i = 0; i < (round ? 1000 : 10); i++) {
            shoal_arena_t *a;
            shoal_coll_t *c, *c2;
            shoal_buf b;
            double x = i, y;

            assert_int_equal(shoal_arena_create(&a, i % 3 == 0 ? 1 : 2, 0, 0), 0);
            if (i % 3 == 0) {
                assert_int_equal(shoal_coll_create(&c, shoal_arena_fd(a), 0, 1, 0), 0);
                assert_int_equal(shoal_coll_bcast(c, 0, "abc", 3, &b), 0);
                assert_int_equal(shoal_coll_allreduce(c, &x, &y, 1, SHOAL_DOUBLE, SHOAL_SUM), 0);
                assert_true(y == x);
                assert_int_equal(shoal_coll_send(c, 0, "z", 1), 0);
                assert_int_equal(shoal_coll_recv(c, 0, &b), 0);
                shoal_coll_destroy(c);
            } else {
                /* Two ranks attached from one process: only what does not block. */
                assert_int_equal(shoal_coll_create(&c, shoal_arena_fd(a), 0, 2, 0), 0);
                assert_int_equal(shoal_coll_create(&c2, shoal_arena_fd(a), 1, 2, 0), 0);
                assert_int_equal(shoal_coll_send(c, 1, "hello", 5), 0);
                assert_int_equal(shoal_coll_recv(c2, 0, &b), 0);
                assert_int_equal(b.len, 5);
                assert_memory_equal(b.data, "hello", 5);
                shoal_coll_destroy(c2);
                shoal_coll_destroy(c);
            }
            shoal_arena_destroy(a);
        }
    }
    assert_int_equal(count_dir("/proc/self/fd"), fds);
    assert_int_equal(count_maps(), maps);
}

/* Forked groups too, with the worker's abort in between: no fd left in the worker. */
static void test_no_leak_forked(void **state)
{
    int fds = count_dir("/proc/self/fd");

    (void)state;
    for (int i = 0; i < 50; i++)
        run_group(2, 0, script_zero_copy, NULL);
    assert_int_equal(count_dir("/proc/self/fd"), fds);
}

/* Bad arguments: -EINVAL, which also fails the group for every rank. */
static void test_bad_args(void **state)
{
    shoal_arena_t *a;
    shoal_coll_t *c;
    shoal_buf b;
    double x = 1;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 1, 0, 0), 0);
    assert_int_equal(shoal_coll_create(&c, shoal_arena_fd(a), 1, 1, 0), -EINVAL);
    assert_int_equal(shoal_coll_create(&c, shoal_arena_fd(a), 0, 2, 0), -EBADMSG);
    assert_int_equal(shoal_coll_create(&c, shoal_arena_fd(a), 0, 1, 0), 0);
    assert_int_equal(shoal_coll_send(c, 1, "x", 1), -EINVAL);
    assert_int_equal(shoal_coll_send(c, 0, NULL, 1), -EINVAL);
    assert_int_equal(shoal_coll_recv(c, -1, &b), -EINVAL);
    assert_int_equal(shoal_arena_failure(a, NULL, NULL), 0);
    assert_int_equal(shoal_coll_allreduce(c, &x, &x, 1, (shoal_dtype)9, SHOAL_SUM), -EINVAL);
    assert_int_equal(shoal_arena_failure(a, NULL, NULL), 1);
    assert_int_equal(shoal_coll_barrier(c), -ECONNABORTED);
    assert_int_equal(shoal_coll_send(c, 0, "x", 1), -ECONNABORTED);
    shoal_coll_destroy(c);
    shoal_arena_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_1),
        cmocka_unit_test(test_all_2),
        cmocka_unit_test(test_all_3),
        cmocka_unit_test(test_all_8),
        cmocka_unit_test(test_all_17),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_gib),
        cmocka_unit_test(test_zero_copy),
        cmocka_unit_test(test_backpressure),
        cmocka_unit_test(test_crash),
        cmocka_unit_test(test_never_arrives),
        cmocka_unit_test(test_leave_early),
        cmocka_unit_test(test_mismatch),
        cmocka_unit_test(test_corrupt_offsets),
        cmocka_unit_test(test_corrupt_scribble),
        cmocka_unit_test(test_reset_reuse),
        cmocka_unit_test(test_no_leak),
        cmocka_unit_test(test_no_leak_forked),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
