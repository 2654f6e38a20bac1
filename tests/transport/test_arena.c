/* Tests transport/arena.c: the memfd's size, sparseness and seals, the layout, attach checks, data
 * allocation and bounds, page release, failure recording and its wake-ups across processes,
 * deadlines, reset, and the worker-side calls on an arena full of garbage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "transport/arena.h"

#define MiB (1024ull * 1024)

static uint64_t in_ms(uint64_t ms)
{
    return shoal_util_now_ns() + ms * 1000000u;
}

static void test_create_args(void **state)
{
    shoal_arena_t *a = (shoal_arena_t *)1;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 0, 0, 0), -EINVAL);
    assert_null(a);
    assert_int_equal(shoal_arena_create(&a, SHOAL_ARENA_MAX_RANKS + 1, 0, 0), -EINVAL);
    assert_int_equal(shoal_arena_create(&a, 2, SHOAL_ARENA_MAX_DATA + 1, 0), -EINVAL);
    assert_int_equal(shoal_arena_create(&a, SHOAL_ARENA_MAX_RANKS, 0, 0), 0);
    shoal_arena_destroy(a);
    shoal_arena_destroy(NULL);
}

/* A 64 GiB arena is cheap: the memfd is sparse and only written pages are allocated. It is sealed
 * against resizing, close-on-exec, and its header describes the layout. */
static void test_sparse_and_sealed(void **state)
{
    shoal_arena_t *a, *r;
    struct stat st;
    int fd, seals;
    shoal_arena_hdr *h;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 5, 64ull << 30, 0), 0);
    fd = shoal_arena_fd(a);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(fstat(fd, &st), 0);
    h = shoal_arena_header(a);
    assert_int_equal(h->magic, SHOAL_ARENA_MAGIC);
    assert_int_equal(h->nranks, 5);
    assert_int_equal(h->data_size, 64ull << 30);
    assert_int_equal((uint64_t)st.st_size, h->data_off + (64ull << 30));
    assert_int_equal(shoal_arena_size(5, 64ull << 30), (uint64_t)st.st_size);
    assert_int_equal(shoal_arena_size(5, (64ull << 30) - 5), (uint64_t)st.st_size);
    assert_int_equal(shoal_arena_size(0, 1), 0);
    assert_int_equal(shoal_arena_size(2, SHOAL_ARENA_MAX_DATA + 1), 0);
    assert_true(shoal_arena_size(SHOAL_ARENA_MAX_RANKS, 0) > SHOAL_ARENA_DEFAULT_DATA);
    assert_int_equal(h->data_off % SHOAL_ARENA_DATA_ALIGN, 0);
    assert_true((uint64_t)st.st_blocks * 512 < MiB);

    seals = fcntl(fd, F_GET_SEALS);
    assert_true(seals & F_SEAL_SHRINK);
    assert_true(seals & F_SEAL_GROW);
    assert_true(seals & F_SEAL_SEAL);
    assert_int_equal(ftruncate(fd, 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(fd, st.st_size + 4096), -1);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE), -1);

    /* A rank writes one page far into the data area; only it gets allocated, and the worker's
     * mapping sees the same bytes. */
    assert_int_equal(shoal_arena_map(&r, fd, 3, 5), 0);
    assert_int_equal(shoal_arena_rank(r), 3);
    assert_int_equal(shoal_arena_nranks(r), 5);
    assert_int_equal(shoal_arena_rank(a), -1);
    assert_int_equal(shoal_arena_fd(r), -1);
    assert_int_equal(shoal_arena_data_size(r), 64ull << 30);
    memset(shoal_arena_data(r) + (60ull << 30), 0x5a, 4096);
    assert_int_equal(shoal_arena_data(a)[(60ull << 30) + 100], 0x5a);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 < 2 * MiB);

    /* The fixed places are where the header says, and inside the header area. */
    assert_ptr_equal((uint8_t *)shoal_arena_ctl_of(r, 0),
                     (uint8_t *)shoal_arena_header(r) + h->ctl_off);
    assert_ptr_equal(shoal_arena_ctl_of(r, 4), shoal_arena_ctl_of(r, 0) + 4);
    assert_ptr_equal((uint8_t *)shoal_arena_parts(r, 0, 0),
                     (uint8_t *)shoal_arena_header(r) + h->parts_off);
    assert_ptr_equal(shoal_arena_parts(r, 1, 2),
                     shoal_arena_parts(r, 0, 0) + (SHOAL_ARENA_SLOTS + 2) * 5);
    assert_ptr_equal((uint8_t *)shoal_arena_mbox_of(r, 0, 0),
                     (uint8_t *)shoal_arena_header(r) + h->mbox_off);
    assert_ptr_equal(shoal_arena_mbox_of(r, 2, 3), shoal_arena_mbox_of(r, 0, 0) + 13);
    assert_true((uint8_t *)(shoal_arena_mbox_of(r, 4, 4) + 1) <= shoal_arena_data(r));
    assert_ptr_equal(shoal_arena_data(r), (uint8_t *)shoal_arena_header(r) + h->data_off);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

static void test_map_checks(void **state)
{
    shoal_arena_t *a, *r = (shoal_arena_t *)1;
    int fd, p[2];

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 4, 8 * MiB, 0), 0);
    fd = shoal_arena_fd(a);
    assert_int_equal(shoal_arena_map(&r, fd, 4, 4), -EINVAL);
    assert_null(r);
    assert_int_equal(shoal_arena_map(&r, fd, -1, 4), -EINVAL);
    assert_int_equal(shoal_arena_map(&r, fd, 0, 0), -EINVAL);
    /* Another group size: the layout disagrees with the header. */
    assert_int_equal(shoal_arena_map(&r, fd, 0, 3), -EBADMSG);
    assert_int_equal(shoal_arena_map(&r, fd, 0, 40), -EBADMSG);
    /* A header that is not an arena's. */
    shoal_arena_header(a)->magic = 0;
    assert_int_equal(shoal_arena_map(&r, fd, 0, 4), -EBADMSG);
    shoal_arena_header(a)->magic = SHOAL_ARENA_MAGIC;
    shoal_arena_header(a)->data_size++;
    assert_int_equal(shoal_arena_map(&r, fd, 0, 4), -EBADMSG);
    shoal_arena_header(a)->data_size--;
    assert_int_equal(shoal_arena_map(&r, fd, 0, 4), 0);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);

    /* Not sealed: someone could shrink it under the mapping. */
    fd = memfd_create("plain", MFD_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 64 * MiB), 0);
    assert_int_equal(shoal_arena_map(&r, fd, 0, 1), -EPERM);
    close(fd);
    /* Sealed but not an arena (all zeros), and too small. */
    fd = memfd_create("zeros", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_int_equal(ftruncate(fd, 64 * MiB), 0);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    assert_int_equal(shoal_arena_map(&r, fd, 0, 1), -EBADMSG);
    close(fd);
    fd = memfd_create("small", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    assert_int_equal(shoal_arena_map(&r, fd, 0, 1), -EBADMSG);
    close(fd);
    /* Not a memfd at all. */
    assert_int_equal(pipe(p), 0);
    assert_true(shoal_arena_map(&r, p[0], 0, 1) < 0);
    close(p[0]);
    close(p[1]);
}

static void test_alloc_and_bounds(void **state)
{
    shoal_arena_t *a, *r;
    uint64_t off, off2, size, n = 0;
    uint8_t *d;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 2, 4 * MiB, 0), 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 1, 2), 0);
    size = shoal_arena_data_size(r);
    d = shoal_arena_data(r);
    assert_int_equal(size, 4 * MiB);

    assert_int_equal(shoal_arena_alloc(r, 1, &off), 0);
    assert_int_equal(off, 0);
    assert_int_equal(shoal_arena_alloc(r, 1, &off), 0);
    assert_int_equal(off, 64);
    assert_int_equal(shoal_arena_alloc(r, 5000, &off), 0);
    assert_int_equal(off, 4096);
    assert_int_equal(shoal_arena_alloc(r, 100, &off2), 0);
    assert_int_equal(off2, 4096 + 8192);
    assert_int_equal(shoal_arena_alloc(r, size, &off), -ENOMEM);
    while (shoal_arena_alloc(r, 64 * 1024, &off) == 0) {
        assert_true(off + 64 * 1024 <= size);
        n++;
    }
    assert_true(n > 50);
    /* The tail left is smaller than 64 KiB; take it in small pieces until none is left. */
    while (shoal_arena_alloc(r, 64, &off) == 0)
        assert_true(off + 64 <= size && off + 64 * 1024 > size);
    assert_int_equal(shoal_arena_alloc(r, 1, &off), -ENOMEM);
    /* A peer sets the shared bump pointer to garbage: allocation fails, nothing else. */
    atomic_store(&shoal_arena_header(r)->bump, UINT64_MAX - 10);
    assert_int_equal(shoal_arena_alloc(r, 1, &off), -ENOMEM);
    atomic_store(&shoal_arena_header(r)->bump, size - 10);
    assert_int_equal(shoal_arena_alloc(r, 5, &off), -ENOMEM); /* rounded up to 64, past the end */
    atomic_store(&shoal_arena_header(r)->bump, 0);
    assert_int_equal(shoal_arena_alloc(r, size, &off), 0);
    assert_int_equal(off, 0);

    assert_ptr_equal(shoal_arena_view(r, 0, size), d);
    assert_ptr_equal(shoal_arena_view(r, size, 0), d + size);
    assert_ptr_equal(shoal_arena_view(r, 10, size - 10), d + 10);
    assert_null(shoal_arena_view(r, 1, size));
    assert_null(shoal_arena_view(r, size, 1));
    assert_null(shoal_arena_view(r, size + 1, 0));
    assert_null(shoal_arena_view(r, UINT64_MAX, 2));
    assert_null(shoal_arena_view(r, 2, UINT64_MAX));

    assert_int_equal(shoal_arena_contains(r, d + 100, 50, &off), 1);
    assert_int_equal(off, 100);
    assert_int_equal(shoal_arena_contains(r, d, size, &off), 1);
    assert_int_equal(shoal_arena_contains(r, d + size - 1, 2, &off), 0);
    assert_int_equal(shoal_arena_contains(r, d - 1, 1, &off), 0);
    assert_int_equal(shoal_arena_contains(r, &off, 8, &off2), 0);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

static void test_release(void **state)
{
    shoal_arena_t *a, *r;
    uint8_t *d;
    struct stat st0, st1;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 1, 8 * MiB, 0), 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 0, 1), 0);
    d = shoal_arena_data(r);
    memset(d, 7, 4 * MiB);
    assert_int_equal(fstat(shoal_arena_fd(a), &st0), 0);
    /* Only whole pages inside the range go: [100, 5100) holds none. */
    shoal_arena_release(r, 100, 5000);
    assert_int_equal(d[100], 7);
    assert_int_equal(d[5000], 7);
    shoal_arena_release(r, 100, 3 * MiB);
    assert_int_equal(d[4095], 7);
    assert_int_equal(d[4096], 0);
    assert_int_equal(d[3 * MiB - 4096], 0);
    assert_int_equal(d[3 * MiB + 99], 7);
    assert_int_equal(d[3 * MiB + 100], 7);
    assert_int_equal(fstat(shoal_arena_fd(a), &st1), 0);
    assert_true((uint64_t)st1.st_blocks + 2 * MiB / 512 < (uint64_t)st0.st_blocks);
    /* Out of range: ignored. */
    shoal_arena_release(r, UINT64_MAX - 1, 100);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

/* Under AddressSanitizer every store also touches shadow memory, whose pages fault too. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN 1
#endif
#endif
#ifndef ASAN
#define ASAN 0
#endif

/* Whether the kernel has MADV_POPULATE_WRITE (5.14) and faults can be counted here. */
static int can_count_faults(void *p)
{
    return !ASAN && madvise(p, 4096, 23 /* MADV_POPULATE_WRITE */) == 0;
}

static long minor_faults(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* Prefaulting maps pages without changing them: writing the range afterwards takes (almost) no
 * page faults, both on fresh pages and on pages kept warm by a reset; a garbage warm hint or a
 * range outside the arena does no harm. */
static void test_prefault(void **state)
{
    shoal_arena_t *a, *r;
    uint8_t *d;
    long f;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 2, 64 * MiB, 0), 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 0, 2), 0);
    d = shoal_arena_data(r);
    memset(d + 100, 0x3c, 1000);
    shoal_arena_prefault(r, 0, 16 * MiB);
    assert_int_equal(d[99], 0);
    assert_int_equal(d[100], 0x3c);
    assert_int_equal(d[1099], 0x3c);
    f = minor_faults();
    memset(d + 4096, 1, 16 * MiB - 8192);
    if (can_count_faults(d))
        assert_true(minor_faults() - f < 64);
    shoal_arena_destroy(r);

    /* Warm pages: kept by a reset, mapped by a new rank. */
    /* 16 MiB have pages: that is the warm part, whatever the rank says the bump pointer is. */
    atomic_store(&shoal_arena_header(a)->bump, 60 * MiB);
    assert_int_equal(shoal_arena_reset(a, 0, 32 * MiB), 0);
    assert_int_equal(atomic_load(&shoal_arena_header(a)->warm_bytes), 16 * MiB);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 1, 2), 0);
    d = shoal_arena_data(r);
    shoal_arena_prefault(r, 4096, 20 * MiB);
    f = minor_faults();
    memset(d + 4096, 2, 20 * MiB);
    if (can_count_faults(d))
        assert_true(minor_faults() - f < 64);
    atomic_store(&shoal_arena_header(r)->warm_bytes, UINT64_MAX);
    shoal_arena_prefault(r, 30 * MiB, 10);
    atomic_store(&shoal_arena_header(r)->warm_bytes, 12345);
    shoal_arena_prefault(r, 0, 64 * MiB);
    shoal_arena_prefault(r, 64 * MiB, 1);
    shoal_arena_prefault(r, UINT64_MAX, 1);
    assert_int_equal(d[4096], 2);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

static void test_abort_and_failure(void **state)
{
    shoal_arena_t *a, *r;
    int rank = 99, reason = 99;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 4, 2 * MiB, 0), 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 0, 4), 0);
    assert_int_equal(shoal_arena_failure(a, &rank, &reason), 0);
    assert_int_equal(shoal_arena_failed(r), 0);
    assert_int_equal(shoal_arena_abort(a, -2, SHOAL_ARENA_FAIL_CRASHED), -EINVAL);
    assert_int_equal(shoal_arena_abort(a, 4, SHOAL_ARENA_FAIL_CRASHED), -EINVAL);
    assert_int_equal(shoal_arena_abort(a, 1, 0), -EINVAL);
    assert_int_equal(shoal_arena_abort(a, 1, SHOAL_ARENA_FAIL_MAX + 1), -EINVAL);
    assert_int_equal(shoal_arena_failure(a, NULL, NULL), 0);

    assert_int_equal(shoal_arena_abort(a, 2, SHOAL_ARENA_FAIL_CRASHED), 0);
    assert_int_equal(shoal_arena_failure(a, &rank, &reason), 1);
    assert_int_equal(rank, 2);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_CRASHED);
    assert_int_equal(shoal_arena_failed(r), 1);
    /* The first failure wins. */
    assert_int_equal(shoal_arena_abort(r, 0, SHOAL_ARENA_FAIL_PROTOCOL), -EALREADY);
    assert_int_equal(shoal_arena_failure(r, &rank, &reason), 1);
    assert_int_equal(rank, 2);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_CRASHED);
    /* Every futex word of every rank carries the kick. */
    for (int i = 0; i < 4; i++) {
        shoal_arena_ctl *c = shoal_arena_ctl_of(r, i);
        assert_true(atomic_load(&c->state) & SHOAL_ARENA_KICK);
        assert_true(atomic_load(&c->inbox) & SHOAL_ARENA_KICK);
        assert_true(atomic_load(&c->space) & SHOAL_ARENA_KICK);
    }
    /* A failure "for no rank in particular", on a fresh word. */
    atomic_store(&shoal_arena_header(a)->failure, 0);
    assert_int_equal(shoal_arena_abort(a, -1, SHOAL_ARENA_FAIL_CANCELLED), 0);
    assert_int_equal(shoal_arena_failure(a, &rank, &reason), 1);
    assert_int_equal(rank, -1);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_CANCELLED);
    /* Garbage written by a rank is reported as such, with no rank. */
    atomic_store(&shoal_arena_header(r)->failure, (uint64_t)77 << 32 | 1234);
    assert_int_equal(shoal_arena_failure(a, &rank, &reason), 1);
    assert_int_equal(rank, -1);
    assert_int_equal(reason, SHOAL_ARENA_FAIL_UNKNOWN);
    /* A rank that saw the failure keeps seeing it even if a peer clears the word. */
    atomic_store(&shoal_arena_header(r)->failure, 0);
    assert_int_equal(shoal_arena_failed(r), 1);

    for (int i = 0; i <= SHOAL_ARENA_FAIL_MAX + 1; i++) {
        assert_non_null(shoal_arena_reason_str(i));
        assert_true(strlen(shoal_arena_reason_str(i)) > 0);
    }
    assert_string_equal(shoal_arena_reason_str(SHOAL_ARENA_FAIL_CRASHED), "crashed");
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

/* ---- waits ---- */

struct cond {
    _Atomic uint32_t *word;
    uint32_t initial;
    int result; /* returned while the word is unchanged */
};

static int word_changed(void *arg)
{
    struct cond *c = arg;

    return (atomic_load(c->word) & ~SHOAL_ARENA_KICK) != c->initial ? 1 : c->result;
}

static void test_wait_local(void **state)
{
    shoal_arena_t *a, *r;
    shoal_arena_ctl *c;
    struct cond cd;
    uint64_t t0, dl;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 2, 2 * MiB, 0), 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 0, 2), 0);
    c = shoal_arena_ctl_of(r, 1);
    cd = (struct cond){&c->state, 0, 0};

    /* Ready at once, or an error from the predicate. */
    atomic_store(&c->state, 5);
    assert_int_equal(shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd), 0);
    atomic_store(&c->state, 0);
    cd.result = -EIO;
    assert_int_equal(shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd), -EIO);
    cd.result = 0;

    /* The group deadline. */
    dl = in_ms(100);
    shoal_arena_set_deadline(a, dl);
    assert_int_equal(atomic_load(&shoal_arena_header(r)->deadline_ns), dl);
    assert_int_equal(shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd),
                     -ETIMEDOUT);
    t0 = shoal_util_now_ns();
    assert_true(t0 >= dl && t0 < dl + 500000000ull);
    assert_int_equal(atomic_load(&c->state_waiters), 0);

    /* The rank's own deadline, when earlier, or when a peer erased the group's. */
    shoal_arena_set_deadline(a, in_ms(60000));
    dl = in_ms(100);
    shoal_arena_set_own_deadline(r, dl);
    assert_int_equal(shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd),
                     -ETIMEDOUT);
    t0 = shoal_util_now_ns();
    assert_true(t0 >= dl && t0 < dl + 500000000ull);
    shoal_arena_set_deadline(a, 0);
    dl = in_ms(50);
    shoal_arena_set_own_deadline(r, dl);
    assert_int_equal(shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd),
                     -ETIMEDOUT);
    assert_true(shoal_util_now_ns() >= dl);

    /* A recorded failure ends every wait. */
    shoal_arena_set_own_deadline(r, 0);
    assert_int_equal(shoal_arena_abort(a, 1, SHOAL_ARENA_FAIL_TIMEOUT), 0);
    cd.initial = atomic_load(&c->state) & ~SHOAL_ARENA_KICK;
    assert_int_equal(shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd),
                     -ECONNABORTED);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

/* A child maps the arena as rank 0 and waits for rank 1's state word to change; exits with the
 * wait's result as a positive errno. */
static pid_t spawn_waiter(shoal_arena_t *a)
{
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) == 0) {
        shoal_arena_t *r;
        shoal_arena_ctl *c;
        struct cond cd;
        int rc;

        if (shoal_arena_map(&r, shoal_arena_fd(a), 0, 2) < 0)
            _exit(200);
        shoal_arena_destroy(a);
        c = shoal_arena_ctl_of(r, 1);
        cd = (struct cond){&c->state, 0, 0};
        rc = shoal_arena_wait(r, &c->state, &c->state_waiters, word_changed, &cd);
        shoal_arena_destroy(r);
        exit(-rc);
    }
    return pid;
}

static int reap(pid_t pid)
{
    int st;

    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Sleepers in other processes wake when the word changes (and its writer wakes them) and when
 * the group is aborted, promptly: here with the abort racing the waiter going to sleep. */
static void test_wait_cross_process(void **state)
{
    (void)state;
    for (int i = 0; i < 60; i++) {
        shoal_arena_t *a;
        shoal_arena_ctl *c;
        pid_t pid;
        uint64_t t0;
        int code;

        assert_int_equal(shoal_arena_create(&a, 2, 2 * MiB, in_ms(30000)), 0);
        c = shoal_arena_ctl_of(a, 1);
        pid = spawn_waiter(a);
        /* Let some of the waiters be asleep, others still spinning or not there yet. */
        if (i % 3 == 0)
            usleep(20000);
        else if (i % 3 == 1)
            usleep((useconds_t)(i * 37 % 200));
        t0 = shoal_util_now_ns();
        if (i % 2 == 0) {
            atomic_store(&c->state, 9);
            shoal_arena_wake(&c->state, &c->state_waiters);
        } else {
            assert_int_equal(shoal_arena_abort(a, 1, SHOAL_ARENA_FAIL_CRASHED), 0);
        }
        code = reap(pid);
        assert_int_equal(code, i % 2 == 0 ? 0 : ECONNABORTED);
        assert_true(shoal_util_now_ns() - t0 < 2000000000ull);
        shoal_arena_destroy(a);
    }
}

/* ---- reset and a hostile arena ---- */

static void test_reset(void **state)
{
    shoal_arena_t *a, *r;
    uint64_t off, dl = in_ms(5000);
    uint8_t *d;

    (void)state;
    assert_int_equal(shoal_arena_create(&a, 3, 16 * MiB, 0), 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 2, 3), 0);
    assert_int_equal(shoal_arena_reset(r, 0, 0), -EPERM);
    d = shoal_arena_data(r);
    assert_int_equal(shoal_arena_alloc(r, 2 * MiB, &off), 0);
    memset(d, 0x11, 2 * MiB);
    memset(d + 8 * MiB, 0x22, 4096);
    atomic_store(&shoal_arena_ctl_of(r, 2)->state, 1234);
    atomic_store(&shoal_arena_mbox_of(r, 1, 2)->head, 7);
    assert_int_equal(shoal_arena_abort(r, 2, SHOAL_ARENA_FAIL_LEFT), 0);
    assert_int_equal(shoal_arena_header(a)->generation, 1);
    shoal_arena_destroy(r);

    assert_int_equal(shoal_arena_reset(a, dl, 1 * MiB), 0);
    assert_int_equal(shoal_arena_failure(a, NULL, NULL), 0);
    assert_int_equal(shoal_arena_header(a)->generation, 2);
    assert_int_equal(atomic_load(&shoal_arena_header(a)->deadline_ns), dl);
    assert_int_equal(atomic_load(&shoal_arena_header(a)->bump), 0);
    assert_int_equal(shoal_arena_header(a)->magic, SHOAL_ARENA_MAGIC);
    assert_int_equal(atomic_load(&shoal_arena_ctl_of(a, 2)->state), 0);
    assert_int_equal(atomic_load(&shoal_arena_mbox_of(a, 1, 2)->head), 0);
    /* The first MiB kept its pages (warm, old bytes); the rest was released (zeros). */
    d = shoal_arena_data(a);
    assert_int_equal(d[0], 0x11);
    assert_int_equal(d[MiB - 1], 0x11);
    assert_int_equal(d[MiB], 0);
    assert_int_equal(d[8 * MiB], 0);
    assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 0, 3), 0);
    assert_int_equal(shoal_arena_failed(r), 0);
    assert_int_equal(shoal_arena_alloc(r, 10, &off), 0);
    assert_int_equal(off, 0);
    shoal_arena_destroy(r);
    shoal_arena_destroy(a);
}

/* The worker-side calls on an arena whose every header byte a rank overwrote, and whose header
 * pages a rank punched out of the memfd: no crash, sane answers, and reset repairs it. */
static void test_worker_hostile(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 3; seed++) {
        shoal_arena_t *a, *r;
        uint8_t *h;
        uint64_t x = seed * 0x9e3779b97f4a7c15ull;
        int rank, reason, rc;

        assert_int_equal(shoal_arena_create(&a, 7, 2 * MiB, 0), 0);
        assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 6, 7), 0);
        h = (uint8_t *)shoal_arena_header(r);
        for (uint8_t *p = h; p < shoal_arena_data(r); p++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            *p = (uint8_t)x;
        }
        if (seed == 3)
            assert_int_equal(fallocate(shoal_arena_fd(a),
                                       FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                                       (off_t)(shoal_arena_data(r) - h)),
                             0);
        assert_int_equal(shoal_arena_failure(a, &rank, &reason), seed == 3 ? 0 : 1);
        if (seed != 3) {
            assert_true(rank >= -1 && rank < 7);
            assert_true(reason >= 1 && reason <= SHOAL_ARENA_FAIL_MAX);
        }
        shoal_arena_set_deadline(a, 1);
        rc = shoal_arena_abort(a, 3, SHOAL_ARENA_FAIL_CRASHED);
        assert_true(rc == (seed == 3 ? 0 : -EALREADY));
        assert_int_equal(shoal_arena_reset(a, 0, 0), 0);
        assert_int_equal(shoal_arena_failure(a, NULL, NULL), 0);
        shoal_arena_destroy(r);
        assert_int_equal(shoal_arena_map(&r, shoal_arena_fd(a), 6, 7), 0);
        shoal_arena_destroy(r);
        shoal_arena_destroy(a);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_args),
        cmocka_unit_test(test_sparse_and_sealed),
        cmocka_unit_test(test_map_checks),
        cmocka_unit_test(test_alloc_and_bounds),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_prefault),
        cmocka_unit_test(test_abort_and_failure),
        cmocka_unit_test(test_wait_local),
        cmocka_unit_test(test_wait_cross_process),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_worker_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
