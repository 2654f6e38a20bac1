/*
 * pingpong - the floor under shoal_call: two processes passing a token back and forth through a
 * word of shared memory with futex wait/wake, the least a cross-process round trip on one node
 * can cost when each side sleeps while it waits. Prints JSON: round-trip p50/p99 in µs.
 *
 * Both sides are pinned to one CPU: that is the floor's best case on a VM, where a wake-up on the
 * same CPU costs a context switch (~0.9 us) but one on another, idle CPU an IPI and a halt exit
 * (~29 us on the 2-vCPU machine of docs/benchmarks.md). Left to the scheduler the two land
 * either way from run to run (1.7 or ~55 us), which would make any ratio to it noise.
 * Usage: pingpong [ROUNDS]
 */
#include <linux/futex.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

static void fwait(_Atomic uint32_t *w, uint32_t v)
{
    while (atomic_load_explicit(w, memory_order_acquire) == v)
        syscall(SYS_futex, w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void fwake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set); /* best effort: unpinned still measures */
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 20000;
    _Atomic uint32_t *w =
        mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint64_t *lat = malloc(sizeof(*lat) * (size_t)rounds);
    pid_t kid;

    if (w == MAP_FAILED || lat == NULL || rounds < 10)
        return 1;
    /* w[0]: ping count written by the parent; w[16]: pong count written by the child. */
    if ((kid = fork()) == 0) {
        pin(0);
        for (uint32_t i = 1; i <= (uint32_t)rounds; i++) {
            fwait(&w[0], i - 1);
            atomic_store_explicit(&w[16], i, memory_order_release);
            fwake(&w[16]);
        }
        _exit(0);
    }
    pin(0);
    for (uint32_t i = 1; i <= (uint32_t)rounds; i++) {
        uint64_t t0 = shoal_util_now_ns();
        atomic_store_explicit(&w[0], i, memory_order_release);
        fwake(&w[0]);
        fwait(&w[16], i - 1);
        lat[i - 1] = shoal_util_now_ns() - t0;
    }
    waitpid(kid, NULL, 0);
    qsort(lat, (size_t)rounds, sizeof(*lat), cmp);
    printf("{\"rounds\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f}\n", rounds,
           lat[rounds / 2] / 1000.0, lat[rounds * 99 / 100] / 1000.0);
    free(lat);
    return 0;
}
