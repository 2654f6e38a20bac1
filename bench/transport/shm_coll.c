/*
 * shm_coll - the same-node collectives (transport/coll.c) against memcpy, in one run on this
 * machine. Ranks are fork()ed processes mapping one arena, as the worker's instances would.
 *
 *  1. bcast of 64 MiB to 2, 4, 8 and 16 ranks (root 0), against one memcpy of 64 MiB between two
 *     warm buffers (target: <= 1.5x, flat in the number of ranks). Three ways: from a private
 *     buffer into fresh (never touched) arena pages, from a private buffer into warm pages (an
 *     arena the worker reset for the next group of the same function), and from a buffer that
 *     already lies in the arena (shoal_coll_alloc: no copy at all);
 *  2. shuffle among 8 ranks, 256 MiB in total (4 MiB per pair), as bandwidth against memcpy's
 *     (target: >= 0.5x);
 *  3. allreduce (sum) of 16 Mi doubles over 8 ranks;
 *  4. gather of 8 x 8 MiB to rank 0;
 *  5. for scale, the latency of a barrier among 2, 8 and 16 ranks (mean of 2000).
 * Each collective is timed from the first rank out of a barrier to the last rank out of the
 * barrier after it (so every rank has its result); "cold" is the first group on a fresh arena,
 * "warm" the best of the next groups on the same arena after shoal_arena_reset, and memcpy the best
 * of 9 copies (best-of filters out other load on the machine, which would otherwise dominate on 2
 * cores). Prints a table on stderr and JSON on stdout. Usage: shm_coll [WARM_ROUNDS]
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "transport/arena.h"
#include "transport/coll.h"

#define MiB (1024ull * 1024)
#define MAXROUNDS 32

enum { B_BCAST, B_BCAST_ZC, B_SHUFFLE, B_ALLREDUCE, B_GATHER, B_BARRIER };

struct job {
    int kind, n;
    uint64_t bytes; /* bcast: message; shuffle: per pair; allreduce: doubles; gather: per rank */
};

/* Each rank of a group writes when it left the first barrier ([2r]) and the second ([2r+1]);
 * the collective took from the earliest start to the latest end: with more ranks than cores a
 * rank may be scheduled late and start after others have done their part. */
static volatile uint64_t *g_stamp;

/* The fastest of n runs: the figure least disturbed by whatever else runs on the machine. */
static double best(const double *v, int n)
{
    double b = v[0];

    for (int i = 1; i < n; i++)
        if (v[i] < b)
            b = v[i];
    return b;
}

/* Two warm private buffers for the memcpy baseline. */
static uint8_t *g_src, *g_dst;

/* One memcpy of len bytes between the warm buffers, in ms. */
static double memcpy_once(size_t len)
{
    uint64_t t0 = shoal_util_now_ns();

    memcpy(g_dst, g_src, len);
    return (double)(shoal_util_now_ns() - t0) / 1e6;
}

static double memcpy_ms(size_t len)
{
    double t[9];

    for (int i = 0; i < 9; i++)
        t[i] = memcpy_once(len);
    return best(t, 9);
}

/* One rank's part: prepare (untimed), then barrier, the collective, barrier; stamps both. */
static int run_rank(shoal_coll_t *c, const struct job *j)
{
    int me = shoal_coll_rank(c), n = shoal_coll_size(c), rc = 0;
    uint8_t *buf = NULL;
    void *out = NULL;
    shoal_buf b, parts[64], send[64];
    uint64_t len;

    switch (j->kind) {
    case B_BCAST:
        buf = me == 0 ? malloc(j->bytes) : NULL;
        break;
    case B_BCAST_ZC:
        buf = me == 0 ? shoal_coll_alloc(c, j->bytes) : NULL;
        break;
    case B_SHUFFLE:
        buf = malloc(j->bytes * (size_t)n);
        for (int i = 0; i < n; i++)
            send[i] = (shoal_buf){buf + j->bytes * (size_t)i, j->bytes};
        break;
    case B_ALLREDUCE:
        buf = malloc(j->bytes * sizeof(double));
        out = malloc(j->bytes * sizeof(double));
        if (out == NULL)
            return -ENOMEM;
        /* Not 0: the compiler would turn malloc + memset 0 into calloc and leave the pages
         * unmapped, so that the timed copy-out would pay their faults. */
        memset(out, 1, j->bytes * sizeof(double));
        break;
    case B_GATHER:
        buf = malloc(j->bytes);
        break;
    case B_BARRIER:
        buf = malloc(1);
        break;
    }
    len = j->kind == B_ALLREDUCE ? j->bytes * sizeof(double)
          : j->kind == B_SHUFFLE ? j->bytes * (size_t)n
          : j->kind == B_BARRIER ? 1
                                 : j->bytes;
    if (buf == NULL && (me == 0 || (j->kind != B_BCAST && j->kind != B_BCAST_ZC)))
        return -ENOMEM;
    if (buf != NULL)
        memset(buf, me + 1, len);
    if ((rc = shoal_coll_barrier(c)) < 0)
        goto out;
    g_stamp[2 * me] = shoal_util_now_ns();
    switch (j->kind) {
    case B_BCAST:
    case B_BCAST_ZC:
        rc = shoal_coll_bcast(c, 0, buf, j->bytes, &b);
        break;
    case B_SHUFFLE:
        rc = shoal_coll_shuffle(c, send, parts);
        break;
    case B_ALLREDUCE:
        rc = shoal_coll_allreduce(c, buf, out, j->bytes, SHOAL_DOUBLE, SHOAL_SUM);
        break;
    case B_GATHER:
        rc = shoal_coll_gather(c, 0, buf, j->bytes, parts);
        break;
    case B_BARRIER:
        for (uint64_t i = 0; i < j->bytes && rc == 0; i++)
            rc = shoal_coll_barrier(c);
        break;
    }
    if (rc == 0)
        rc = shoal_coll_barrier(c);
    g_stamp[2 * me + 1] = shoal_util_now_ns();
    /* Sanity: what arrived is what was sent. */
    if (rc == 0 && j->kind == B_ALLREDUCE && ((double *)out)[j->bytes - 1] == 0)
        rc = -EIO;
out:
    if (j->kind != B_BCAST_ZC)
        free(buf);
    free(out);
    return rc;
}

/* Runs rounds + 1 groups of j on one arena: the first on fresh pages, the others after a reset
 * that keeps the pages. Fills cold and warm (ms), and mc with the best of a 64 MiB memcpy done
 * before each round: a baseline taken under the same load as the collective. */
static int run_job(const struct job *j, int rounds, double *cold, double *warm, double *mc)
{
    shoal_arena_t *a;
    uint64_t cap = 64 * MiB + (j->kind == B_ALLREDUCE ? j->bytes * sizeof(double) * (size_t)j->n
                               : j->kind == B_SHUFFLE ? j->bytes * (size_t)j->n * (size_t)j->n
                               : j->kind == B_GATHER  ? j->bytes * (size_t)j->n
                                                      : j->bytes);
    double t[MAXROUNDS], base[MAXROUNDS];
    int rc;

    if ((rc = shoal_arena_create(&a, j->n, cap, 0)) < 0)
        return rc;
    for (int round = 0; round <= rounds; round++) {
        pid_t pids[64];

        if (round > 0 && (rc = shoal_arena_reset(a, shoal_util_now_ns() + 60000000000ull, cap)) < 0)
            break;
        if (round == 0)
            shoal_arena_set_deadline(a, shoal_util_now_ns() + 60000000000ull);
        base[round] = memcpy_once(64 * MiB);
        fflush(stdout);
        fflush(stderr);
        for (int r = 0; r < j->n; r++) {
            if ((pids[r] = fork()) == 0) {
                shoal_coll_t *c;
                int err = shoal_coll_create(&c, shoal_arena_fd(a), r, j->n, 0);

                shoal_arena_destroy(a);
                if (err == 0)
                    err = run_rank(c, j);
                if (err < 0)
                    fprintf(stderr, "shm_coll: rank %d: %s\n", r, strerror(-err));
                shoal_coll_destroy(c);
                _exit(err < 0);
            }
        }
        for (int r = 0; r < j->n; r++) {
            int st;

            waitpid(pids[r], &st, 0);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                rc = -EIO;
        }
        if (rc < 0)
            break;
        {
            uint64_t t0 = UINT64_MAX, t1 = 0;

            for (int r = 0; r < j->n; r++) {
                t0 = g_stamp[2 * r] < t0 ? g_stamp[2 * r] : t0;
                t1 = g_stamp[2 * r + 1] > t1 ? g_stamp[2 * r + 1] : t1;
            }
            t[round] = (double)(t1 - t0) / 1e6;
        }
    }
    shoal_arena_destroy(a);
    if (rc < 0)
        return rc;
    *cold = t[0];
    *warm = best(t + 1, rounds);
    *mc = best(base, rounds + 1);
    return 0;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    static const int bcast_n[4] = {2, 4, 8, 16}, barrier_n[3] = {2, 8, 16};
    double mc64, bc_cold[4], bc_warm[4], bc_mc[4], bc_zc[4], zc_cold, zc_mc, barrier_us[3], unused;
    double sh_cold, sh_warm, sh_mc, ar_cold, ar_warm, ar_mc, ga_cold, ga_warm, ga_mc;
    double flat_min = 1e9, flat_max = 0, worst_bcast = 0;
    struct job j;

    if (rounds < 1 || rounds >= MAXROUNDS) {
        fprintf(stderr, "usage: shm_coll [WARM_ROUNDS 1..%d]\n", MAXROUNDS - 1);
        return 2;
    }
    g_stamp = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    /* Kept out of the forked ranks: after a fork the parent's pages would be copy-on-write and
     * the baseline would pay a fault per page. */
    g_src = mmap(NULL, 128 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    g_dst = mmap(NULL, 128 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g_stamp == MAP_FAILED || g_src == MAP_FAILED || g_dst == MAP_FAILED ||
        madvise(g_src, 128 * MiB, MADV_DONTFORK) < 0 ||
        madvise(g_dst, 128 * MiB, MADV_DONTFORK) < 0)
        return 1;
    memset(g_src, 1, 128 * MiB);
    memset(g_dst, 2, 128 * MiB);
    mc64 = memcpy_ms(64 * MiB);
    fprintf(stderr, "== bench/transport shm_coll (%ld cores, %d warm rounds)\n",
            sysconf(_SC_NPROCESSORS_ONLN), rounds);
    fprintf(stderr,
            "memcpy 64 MiB: %.2f ms (%.2f GB/s); each line's ratio uses the memcpy timed "
            "beside it\n",
            mc64, 64 * MiB / mc64 / 1e6);
    fprintf(stderr, "%-36s %9s %9s %10s %9s\n", "collective", "cold_ms", "warm_ms", "memcpy_ms",
            "ratio");

    for (int i = 0; i < 4; i++) {
        j = (struct job){B_BCAST, bcast_n[i], 64 * MiB};
        if (run_job(&j, rounds, &bc_cold[i], &bc_warm[i], &bc_mc[i]) < 0)
            return 1;
        j.kind = B_BCAST_ZC;
        if (run_job(&j, rounds, &zc_cold, &bc_zc[i], &zc_mc) < 0)
            return 1;
        flat_min = bc_warm[i] < flat_min ? bc_warm[i] : flat_min;
        flat_max = bc_warm[i] > flat_max ? bc_warm[i] : flat_max;
        worst_bcast = bc_warm[i] / bc_mc[i] > worst_bcast ? bc_warm[i] / bc_mc[i] : worst_bcast;
        fprintf(stderr, "bcast 64 MiB to %2d ranks               %9.2f %9.2f %10.2f %8.2fx\n",
                bcast_n[i], bc_cold[i], bc_warm[i], bc_mc[i], bc_warm[i] / bc_mc[i]);
        fprintf(stderr, "bcast 64 MiB to %2d, arena-resident     %9.3f %9.3f %10.2f %8.3fx\n",
                bcast_n[i], zc_cold, bc_zc[i], zc_mc, bc_zc[i] / zc_mc);
    }
    j = (struct job){B_SHUFFLE, 8, 4 * MiB};
    if (run_job(&j, rounds, &sh_cold, &sh_warm, &sh_mc) < 0)
        return 1;
    fprintf(stderr, "shuffle 8 ranks, 256 MiB (bandwidth)   %9.2f %9.2f %10.2f %8.2fx\n", sh_cold,
            sh_warm, sh_mc, (256 * MiB / sh_warm) / (64 * MiB / sh_mc));
    j = (struct job){B_ALLREDUCE, 8, 16 * MiB};
    if (run_job(&j, rounds, &ar_cold, &ar_warm, &ar_mc) < 0)
        return 1;
    fprintf(stderr, "allreduce 16 Mi doubles, 8 ranks       %9.2f %9.2f %10.2f %8.2fx\n", ar_cold,
            ar_warm, 2 * ar_mc, ar_warm / (2 * ar_mc));
    j = (struct job){B_GATHER, 8, 8 * MiB};
    if (run_job(&j, rounds, &ga_cold, &ga_warm, &ga_mc) < 0)
        return 1;
    fprintf(stderr, "gather 8 x 8 MiB                       %9.2f %9.2f %10.2f %8.2fx\n", ga_cold,
            ga_warm, ga_mc, ga_warm / ga_mc);
    for (int i = 0; i < 3; i++) {
        j = (struct job){B_BARRIER, barrier_n[i], 2000};
        if (run_job(&j, 1, &barrier_us[i], &unused, &unused) < 0)
            return 1;
        barrier_us[i] *= 1000.0 / 2000;
        fprintf(stderr, "barrier, %2d ranks: %.2f us\n", barrier_n[i], barrier_us[i]);
    }
    fprintf(stderr,
            "bcast: worst warm ratio %.2fx (target <= 1.5x), flatness max/min over 2..16 ranks "
            "%.2f; shuffle %.2fx memcpy bandwidth (target >= 0.5x)\n",
            worst_bcast, flat_max / flat_min, (256 * MiB / sh_warm) / (64 * MiB / sh_mc));

    printf("{\"cores\": %ld, \"rounds\": %d, \"memcpy_64mib_ms\": %.3f, \"bcast\": [",
           sysconf(_SC_NPROCESSORS_ONLN), rounds, mc64);
    for (int i = 0; i < 4; i++)
        printf("%s{\"ranks\": %d, \"cold_ms\": %.3f, \"warm_ms\": %.3f, \"memcpy_ms\": %.3f, "
               "\"warm_vs_memcpy\": %.3f, \"arena_resident_ms\": %.4f}",
               i ? ", " : "", bcast_n[i], bc_cold[i], bc_warm[i], bc_mc[i], bc_warm[i] / bc_mc[i],
               bc_zc[i]);
    printf("], \"bcast_worst_vs_memcpy\": %.3f, \"bcast_flatness\": %.3f, ", worst_bcast,
           flat_max / flat_min);
    printf("\"shuffle\": {\"ranks\": 8, \"total_mib\": 256, \"cold_ms\": %.3f, \"warm_ms\": %.3f, "
           "\"memcpy_64mib_ms\": %.3f, \"bw_vs_memcpy\": %.3f}, ",
           sh_cold, sh_warm, sh_mc, (256 * MiB / sh_warm) / (64 * MiB / sh_mc));
    printf("\"allreduce\": {\"ranks\": 8, \"doubles\": %llu, \"cold_ms\": %.3f, \"warm_ms\": %.3f, "
           "\"memcpy_128mib_ms\": %.3f}, ",
           16 * MiB, ar_cold, ar_warm, 2 * ar_mc);
    printf("\"gather\": {\"ranks\": 8, \"part_mib\": 8, \"cold_ms\": %.3f, \"warm_ms\": %.3f, "
           "\"memcpy_64mib_ms\": %.3f}, ",
           ga_cold, ga_warm, ga_mc);
    printf("\"barrier_us\": {\"2\": %.2f, \"8\": %.2f, \"16\": %.2f}}\n", barrier_us[0],
           barrier_us[1], barrier_us[2]);
    munmap(g_src, 128 * MiB);
    munmap(g_dst, 128 * MiB);
    return 0;
}
