/*
 * arena - see arena.h for the layout, the trust model and how waits work.
 *
 * Memory order: the failure word, the bump pointer and every futex word are C11 atomics. A
 * waiter registers in the word's waiter count and then re-reads the word (both sequentially
 * consistent); a writer updates the word and then reads the waiter count (both sequentially
 * consistent), so either the waiter sees the new value or the writer sees the waiter and issues
 * FUTEX_WAKE. The kernel's compare in FUTEX_WAIT closes the remaining window.
 */
#include "arena.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "shared-memory atomics must be lock-free");

/* How long a waiter spins before it sleeps. */
#define SPIN_NS 4000
#define PAGE 4096ull

struct shoal_arena {
    uint8_t *base;
    uint64_t map_len;
    int fd;   /* owned memfd (worker side) or -1 */
    int rank; /* -1 on the worker side */
    int nranks;
    uint32_t generation;   /* worker side: kept here, not read back from the arena */
    uint64_t own_deadline; /* rank side: this rank's own deadline, 0 = none */
    int failed; /* rank side: a failure was seen (sticky, whatever the word says later) */
    uint64_t ctl_off, parts_off, mbox_off, data_off, data_size;
};

static uint64_t align_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* The layout of a group of nranks with data_size bytes of data, into a. */
static void layout(struct shoal_arena *a, int nranks, uint64_t data_size)
{
    uint64_t n = (uint64_t)nranks;

    a->nranks = nranks;
    a->ctl_off = PAGE;
    a->parts_off = align_up(a->ctl_off + n * sizeof(shoal_arena_ctl), PAGE);
    a->mbox_off =
        align_up(a->parts_off + n * SHOAL_ARENA_SLOTS * n * sizeof(shoal_arena_part), PAGE);
    a->data_off = align_up(a->mbox_off + n * n * sizeof(shoal_arena_mbox), SHOAL_ARENA_DATA_ALIGN);
    a->data_size = data_size;
    a->map_len = a->data_off + data_size;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static void futex_wake_all(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Sleeps while *w == v, until deadline_ns (absolute CLOCK_MONOTONIC, 0 = none). Spurious
 * returns are fine: the caller re-checks. */
static void futex_wait_until(_Atomic uint32_t *w, uint32_t v, uint64_t deadline_ns)
{
    struct timespec ts, *tsp = NULL;

    if (deadline_ns != 0) {
        ts.tv_sec = (time_t)(deadline_ns / 1000000000u);
        ts.tv_nsec = (long)(deadline_ns % 1000000000u);
        tsp = &ts;
    }
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_BITSET, v, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
}

static shoal_arena_hdr *hdr(const struct shoal_arena *a)
{
    return (shoal_arena_hdr *)a->base;
}

/* Writes a fresh header (the rest of the header area must read as zeros). */
static void init_header(struct shoal_arena *a, uint32_t generation, uint64_t deadline_ns,
                        uint64_t warm_bytes)
{
    shoal_arena_hdr *h = hdr(a);

    h->version = SHOAL_ARENA_VERSION;
    h->nranks = (uint32_t)a->nranks;
    h->generation = generation;
    h->ctl_off = a->ctl_off;
    h->parts_off = a->parts_off;
    h->mbox_off = a->mbox_off;
    h->data_off = a->data_off;
    h->data_size = a->data_size;
    h->total_size = a->map_len;
    atomic_store(&h->deadline_ns, deadline_ns);
    atomic_store(&h->warm_bytes, warm_bytes);
    atomic_store(&h->failure, 0);
    atomic_store(&h->bump, 0);
    /* Ranks map only after they receive the fd, which orders them after these stores; the
     * fence is for a rank that maps a reset arena early and checks the magic. */
    atomic_thread_fence(memory_order_release);
    h->magic = SHOAL_ARENA_MAGIC;
}

int shoal_arena_create(shoal_arena_t **out, int nranks, uint64_t data_size, uint64_t deadline_ns)
{
    struct shoal_arena *a = NULL;
    int err;

    *out = NULL;
    if (nranks < 1 || nranks > SHOAL_ARENA_MAX_RANKS || data_size > SHOAL_ARENA_MAX_DATA)
        return -EINVAL;
    if (data_size == 0)
        data_size = SHOAL_ARENA_DEFAULT_DATA;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return -ENOMEM;
    a->base = MAP_FAILED;
    a->rank = -1;
    layout(a, nranks, align_up(data_size, SHOAL_ARENA_DATA_ALIGN));
    if ((a->fd = memfd_create("shoal-arena", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0) {
        err = -errno;
        goto fail;
    }
    if (ftruncate(a->fd, (off_t)a->map_len) < 0 ||
        fcntl(a->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
        err = -errno;
        goto fail;
    }
    a->base = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, a->fd, 0);
    if (a->base == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    /* A core dump of the worker should not hold the data area (best effort). */
    madvise(a->base + a->data_off, a->data_size, MADV_DONTDUMP);
    a->generation = 1;
    init_header(a, a->generation, deadline_ns, 0);
    *out = a;
    return 0;
fail:
    shoal_arena_destroy(a);
    return err;
}

uint64_t shoal_arena_size(int nranks, uint64_t data_size)
{
    struct shoal_arena a;

    if (nranks < 1 || nranks > SHOAL_ARENA_MAX_RANKS || data_size > SHOAL_ARENA_MAX_DATA)
        return 0;
    layout(&a, nranks,
           align_up(data_size ? data_size : SHOAL_ARENA_DEFAULT_DATA, SHOAL_ARENA_DATA_ALIGN));
    return a.map_len;
}

int shoal_arena_fd(const shoal_arena_t *a)
{
    return a->fd;
}

int shoal_arena_reset(shoal_arena_t *a, uint64_t deadline_ns, uint64_t keep_bytes)
{
    off_t hole;

    if (a->fd < 0)
        return -EPERM;
    hdr(a)->magic = 0;
    /* Punching the header makes every control word, descriptor and mailbox read as zero and
     * frees the pages the old group touched; only the pages written again come back. */
    if (fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)a->data_off) < 0)
        return -errno;
    keep_bytes = align_up(keep_bytes < a->data_size ? keep_bytes : a->data_size, PAGE);
    if (keep_bytes < a->data_size &&
        fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  (off_t)(a->data_off + keep_bytes), (off_t)(a->data_size - keep_bytes)) < 0)
        return -errno;
    /* How much of the start of the data area has pages, from the kernel (not from the arena's
     * bump pointer, which ranks can write): the ranks of the next group prefault it cheaply. */
    hole = lseek(a->fd, (off_t)a->data_off, SEEK_HOLE);
    hole = hole < (off_t)a->data_off ? 0 : hole - (off_t)a->data_off;
    init_header(a, ++a->generation, deadline_ns,
                (uint64_t)hole < keep_bytes ? (uint64_t)hole : keep_bytes);
    return 0;
}

void shoal_arena_set_deadline(shoal_arena_t *a, uint64_t deadline_ns)
{
    atomic_store(&hdr(a)->deadline_ns, deadline_ns);
}

static void kick(_Atomic uint32_t *w)
{
    atomic_fetch_or(w, SHOAL_ARENA_KICK);
    futex_wake_all(w);
}

int shoal_arena_abort(shoal_arena_t *a, int rank, int reason)
{
    uint64_t expect = 0, v;
    int won;

    if (rank < -1 || rank >= a->nranks || reason < 1 || reason > SHOAL_ARENA_FAIL_MAX)
        return -EINVAL;
    v = (uint64_t)(uint32_t)reason | (uint64_t)(uint32_t)rank << 32;
    won = atomic_compare_exchange_strong(&hdr(a)->failure, &expect, v);
    /* Kick every futex word of every rank, whether this call won or not: a rank may have reset
     * a word since, and waking sleepers that have nothing to do costs them one re-check. */
    for (int r = 0; r < a->nranks; r++) {
        shoal_arena_ctl *c = shoal_arena_ctl_of(a, r);
        kick(&c->state);
        kick(&c->inbox);
        kick(&c->space);
    }
    return won ? 0 : -EALREADY;
}

int shoal_arena_failure(const shoal_arena_t *a, int *rank, int *reason)
{
    uint64_t v = atomic_load(&hdr(a)->failure);
    uint32_t why = (uint32_t)v;
    int32_t who = (int32_t)(uint32_t)(v >> 32);

    if (v == 0)
        return 0;
    if (why < 1 || why > SHOAL_ARENA_FAIL_MAX || who < -1 || who >= a->nranks) {
        why = SHOAL_ARENA_FAIL_UNKNOWN;
        who = -1;
    }
    if (rank != NULL)
        *rank = who;
    if (reason != NULL)
        *reason = (int)why;
    return 1;
}

const char *shoal_arena_reason_str(int reason)
{
    switch (reason) {
    case SHOAL_ARENA_FAIL_NONE:
        return "no failure";
    case SHOAL_ARENA_FAIL_CRASHED:
        return "crashed";
    case SHOAL_ARENA_FAIL_TIMEOUT:
        return "timed out";
    case SHOAL_ARENA_FAIL_LEFT:
        return "left the group early";
    case SHOAL_ARENA_FAIL_PROTOCOL:
        return "collective mismatch or corrupt group memory";
    case SHOAL_ARENA_FAIL_NOSPACE:
        return "group memory exhausted";
    case SHOAL_ARENA_FAIL_CANCELLED:
        return "cancelled";
    default:
        return "unknown failure";
    }
}

void shoal_arena_destroy(shoal_arena_t *a)
{
    if (a == NULL)
        return;
    if (a->base != MAP_FAILED && a->base != NULL)
        munmap(a->base, a->map_len);
    if (a->fd >= 0)
        close(a->fd);
    free(a);
}

int shoal_arena_map(shoal_arena_t **out, int fd, int rank, int nranks)
{
    struct shoal_arena *a = NULL;
    const volatile shoal_arena_hdr *h;
    struct stat st;
    uint64_t size;
    int seals, err;

    *out = NULL;
    if (nranks < 1 || nranks > SHOAL_ARENA_MAX_RANKS || rank < 0 || rank >= nranks)
        return -EINVAL;
    if ((seals = fcntl(fd, F_GET_SEALS)) < 0 || fstat(fd, &st) < 0)
        return -errno;
    /* Without the seal anyone holding the fd could shrink it under our mapping. */
    if (!(seals & F_SEAL_SHRINK))
        return -EPERM;
    if ((a = calloc(1, sizeof(*a))) == NULL)
        return -ENOMEM;
    a->base = MAP_FAILED;
    a->fd = -1;
    a->rank = rank;
    layout(a, nranks, 0);
    size = (uint64_t)st.st_size;
    if (st.st_size < 0 || size <= a->data_off || size - a->data_off > SHOAL_ARENA_MAX_DATA ||
        (size - a->data_off) % SHOAL_ARENA_DATA_ALIGN != 0) {
        err = -EBADMSG;
        goto fail;
    }
    layout(a, nranks, size - a->data_off);
    a->base = mmap(NULL, a->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (a->base == MAP_FAILED) {
        err = -errno;
        goto fail;
    }
    madvise(a->base + a->data_off, a->data_size, MADV_DONTDUMP);
    h = (const volatile shoal_arena_hdr *)a->base;
    if (h->magic != SHOAL_ARENA_MAGIC || h->version != SHOAL_ARENA_VERSION ||
        h->nranks != (uint32_t)nranks || h->ctl_off != a->ctl_off || h->parts_off != a->parts_off ||
        h->mbox_off != a->mbox_off || h->data_off != a->data_off || h->data_size != a->data_size ||
        h->total_size != a->map_len) {
        err = -EBADMSG;
        goto fail;
    }
    *out = a;
    return 0;
fail:
    shoal_arena_destroy(a);
    return err;
}

int shoal_arena_rank(const shoal_arena_t *a)
{
    return a->rank;
}

int shoal_arena_nranks(const shoal_arena_t *a)
{
    return a->nranks;
}

shoal_arena_hdr *shoal_arena_header(const shoal_arena_t *a)
{
    return hdr(a);
}

shoal_arena_ctl *shoal_arena_ctl_of(const shoal_arena_t *a, int rank)
{
    return (shoal_arena_ctl *)(a->base + a->ctl_off) + rank;
}

shoal_arena_part *shoal_arena_parts(const shoal_arena_t *a, int owner, unsigned slot)
{
    size_t n = (size_t)a->nranks;

    return (shoal_arena_part *)(a->base + a->parts_off) +
           ((size_t)owner * SHOAL_ARENA_SLOTS + slot % SHOAL_ARENA_SLOTS) * n;
}

shoal_arena_mbox *shoal_arena_mbox_of(const shoal_arena_t *a, int src, int dst)
{
    return (shoal_arena_mbox *)(a->base + a->mbox_off) + (size_t)src * (size_t)a->nranks + dst;
}

uint8_t *shoal_arena_data(const shoal_arena_t *a)
{
    return a->base + a->data_off;
}

uint64_t shoal_arena_data_size(const shoal_arena_t *a)
{
    return a->data_size;
}

int shoal_arena_alloc(shoal_arena_t *a, uint64_t len, uint64_t *off)
{
    _Atomic uint64_t *bump = &hdr(a)->bump;
    uint64_t align = len >= PAGE ? PAGE : 64, b, start, need;

    if (len > a->data_size)
        return -ENOMEM;
    need = align_up(len, align);
    b = atomic_load_explicit(bump, memory_order_relaxed);
    do {
        /* The bump pointer is shared with untrusted ranks: bound it before using it. */
        if (b > a->data_size)
            return -ENOMEM;
        start = align_up(b, align);
        if (start > a->data_size || need > a->data_size - start)
            return -ENOMEM;
    } while (!atomic_compare_exchange_weak_explicit(bump, &b, start + need, memory_order_relaxed,
                                                    memory_order_relaxed));
    *off = start;
    return 0;
}

void *shoal_arena_view(const shoal_arena_t *a, uint64_t off, uint64_t len)
{
    if (off > a->data_size || len > a->data_size - off)
        return NULL;
    return a->base + a->data_off + off;
}

int shoal_arena_contains(const shoal_arena_t *a, const void *p, uint64_t len, uint64_t *off)
{
    uintptr_t lo = (uintptr_t)(a->base + a->data_off), q = (uintptr_t)p;

    if (q < lo || q - lo > a->data_size || len > a->data_size - (q - lo))
        return 0;
    *off = q - lo;
    return 1;
}

void shoal_arena_release(shoal_arena_t *a, uint64_t off, uint64_t len)
{
    uint64_t lo, hi;

    if (off > a->data_size || len > a->data_size - off)
        return;
    lo = align_up(off, PAGE);
    hi = (off + len) & ~(PAGE - 1);
    if (hi > lo)
        madvise(a->base + a->data_off + lo, hi - lo, MADV_REMOVE);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif

void shoal_arena_prefault(shoal_arena_t *a, uint64_t off, uint64_t len)
{
    uint64_t lo, hi, warm = atomic_load_explicit(&hdr(a)->warm_bytes, memory_order_relaxed);
    uint8_t *d = a->base + a->data_off;

    if (off > a->data_size || len > a->data_size - off)
        return;
    lo = off & ~(PAGE - 1);
    hi = align_up(off + len, PAGE);
    /* The hint comes from shared memory: a wrong one only costs time. */
    warm = warm < lo ? lo : warm > hi ? hi : warm & ~(PAGE - 1);
    if (warm > lo)
        madvise(d + lo, warm - lo, MADV_POPULATE_READ);
    if (hi > warm)
        madvise(d + warm, hi - warm, MADV_POPULATE_WRITE);
}

int shoal_arena_failed(shoal_arena_t *a)
{
    if (!a->failed && atomic_load_explicit(&hdr(a)->failure, memory_order_acquire) != 0)
        a->failed = 1;
    return a->failed;
}

void shoal_arena_set_own_deadline(shoal_arena_t *a, uint64_t deadline_ns)
{
    a->own_deadline = deadline_ns;
}

/* The earlier of the group's deadline (which a peer may have overwritten) and this rank's. */
static uint64_t deadline_of(const struct shoal_arena *a)
{
    uint64_t d = atomic_load_explicit(&hdr(a)->deadline_ns, memory_order_relaxed);

    if (a->own_deadline != 0 && (d == 0 || a->own_deadline < d))
        d = a->own_deadline;
    return d;
}

int shoal_arena_wait(shoal_arena_t *a, _Atomic uint32_t *word, _Atomic uint32_t *waiters,
                     shoal_arena_ready_fn ready, void *arg)
{
    uint64_t start = 0, now, deadline;
    int r;

    /* Spin: a peer a few microseconds away is cheaper to wait for awake than through two
     * context switches. */
    for (unsigned i = 0;; i++) {
        if ((r = ready(arg)) != 0)
            return r > 0 ? 0 : r;
        if (shoal_arena_failed(a))
            return -ECONNABORTED;
        if ((i & 15) == 15) {
            now = shoal_util_now_ns();
            if (start == 0)
                start = now;
            else if (now - start > SPIN_NS)
                break;
        }
        cpu_relax();
    }
    atomic_fetch_add(waiters, 1);
    for (;;) {
        uint32_t v = atomic_load(word);

        if ((r = ready(arg)) != 0)
            break;
        if (shoal_arena_failed(a)) {
            r = -ECONNABORTED;
            break;
        }
        deadline = deadline_of(a);
        if (deadline != 0 && shoal_util_now_ns() >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        futex_wait_until(word, v, deadline);
    }
    atomic_fetch_sub(waiters, 1);
    return r > 0 ? 0 : r;
}

void shoal_arena_wake(_Atomic uint32_t *word, _Atomic uint32_t *waiters)
{
    if (atomic_load(waiters) != 0)
        futex_wake_all(word);
}

void shoal_arena_ring(_Atomic uint32_t *word, _Atomic uint32_t *waiters)
{
    uint32_t v = atomic_load_explicit(word, memory_order_relaxed), nv;

    do
        nv = (v & SHOAL_ARENA_KICK) | ((v + 1) & ~SHOAL_ARENA_KICK);
    while (!atomic_compare_exchange_weak(word, &v, nv));
    shoal_arena_wake(word, waiters);
}
