/* Tests transport/ring.c: records in and out, full and empty, wraparound, a million records
 * between two processes through shared memory, and rejection of everything a hostile peer can
 * put in the ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transport/ring.h"

typedef struct {
    shoal_ring_ctrl_t ctrl;
    uint8_t data[];
} shm_ring_t;

static shm_ring_t *ring_new(uint64_t cap)
{
    shm_ring_t *r =
        mmap(NULL, sizeof(*r) + cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(r != MAP_FAILED);
    memset(r, 0, sizeof(*r));
    return r;
}

static void ring_free(shm_ring_t *r, uint64_t cap)
{
    munmap(r, sizeof(*r) + cap);
}

static void fill(uint8_t *p, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 31 + i * 7);
}

static void test_attach(void **state)
{
    shm_ring_t *s = ring_new(1024);
    shoal_ring_t r;
    (void)state;

    assert_int_equal(shoal_ring_attach_producer(&r, &s->ctrl, s->data, 1000), -EINVAL);
    assert_int_equal(shoal_ring_attach_producer(&r, &s->ctrl, s->data, 32), -EINVAL);
    assert_int_equal(shoal_ring_attach_producer(&r, &s->ctrl, s->data, 1024), 0);
    assert_int_equal(shoal_ring_max_payload(&r), 1016);
    /* A producer that finds an impossible state refuses it. */
    atomic_store(&s->ctrl.head, 5000);
    assert_int_equal(shoal_ring_attach_producer(&r, &s->ctrl, s->data, 1024), -EPROTO);
    ring_free(s, 1024);
}

static void test_roundtrip_full_empty(void **state)
{
    shm_ring_t *s = ring_new(256);
    shoal_ring_t p, c;
    shoal_ring_rec_t rec;
    uint8_t buf[256], want[256];
    int n = 0;
    (void)state;

    assert_int_equal(shoal_ring_attach_producer(&p, &s->ctrl, s->data, 256), 0);
    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, 256), 0);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 0);
    assert_false(shoal_ring_readable(&c));
    assert_int_equal(shoal_ring_push(&p, 0, "x", 1), -EINVAL);
    assert_int_equal(shoal_ring_push(&p, 1, buf, 249), -EMSGSIZE);
    /* 13-byte payloads take 8 + 16 bytes: 10 fit in 256, the 11th does not. */
    for (;;) {
        fill(want, 13, (uint32_t)n);
        int r = shoal_ring_push(&p, (uint16_t)(n + 1), want, 13);
        if (r == -EAGAIN)
            break;
        assert_int_equal(r, 0);
        n++;
    }
    assert_int_equal(n, 10);
    assert_int_equal(shoal_ring_space(&p), 256 - 240);
    assert_true(shoal_ring_readable(&c));
    for (int i = 0; i < n; i++) {
        assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 1);
        assert_int_equal(rec.type, i + 1);
        assert_int_equal(rec.len, 13);
        fill(want, 13, (uint32_t)i);
        assert_memory_equal(buf, want, 13);
    }
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 0);
    assert_int_equal(shoal_ring_space(&p), 256);
    /* Zero-length records and gathered iovecs. */
    assert_int_equal(shoal_ring_push(&p, 7, NULL, 0), 0);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    assert_int_equal(shoal_ring_pushv(&p, 8, iov, 3), 0);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 1);
    assert_int_equal(rec.type, 7);
    assert_int_equal(rec.len, 0);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 1);
    assert_int_equal(rec.len, 5);
    assert_memory_equal(buf, "abcde", 5);
    ring_free(s, 256);
}

static void test_wraparound(void **state)
{
    shm_ring_t *s = ring_new(128);
    shoal_ring_t p, c;
    shoal_ring_rec_t rec;
    uint8_t buf[128], want[128];
    (void)state;

    assert_int_equal(shoal_ring_attach_producer(&p, &s->ctrl, s->data, 128), 0);
    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, 128), 0);
    /* Sizes that do not divide the ring, so payloads straddle its end in every way. */
    for (uint32_t i = 0; i < 5000; i++) {
        uint32_t len = (i * 13) % 97;
        fill(want, len, i);
        assert_int_equal(shoal_ring_push(&p, 3, want, len), 0);
        assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 1);
        assert_int_equal(rec.len, len);
        assert_memory_equal(buf, want, len);
    }
    assert_true(atomic_load(&s->ctrl.head) > 100000);
    ring_free(s, 128);
}

static void test_hostile(void **state)
{
    shm_ring_t *s = ring_new(256);
    shoal_ring_t p, c;
    shoal_ring_rec_t rec;
    uint8_t buf[256];
    (void)state;

    assert_int_equal(shoal_ring_attach_producer(&p, &s->ctrl, s->data, 256), 0);
    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, 256), 0);
    /* A garbled header (check field wrong). */
    assert_int_equal(shoal_ring_push(&p, 5, "hello", 5), 0);
    s->data[6] ^= 0x40;
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), -EPROTO);

    /* A head further than the ring can hold, or misaligned. */
    memset(s, 0, sizeof(*s) + 256);
    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, 256), 0);
    atomic_store(&s->ctrl.head, 264);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), -EPROTO);
    atomic_store(&s->ctrl.head, 12);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), -EPROTO);

    /* A consistent header whose length exceeds what was published. */
    memset(s, 0, sizeof(*s) + 256);
    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, 256), 0);
    shoal_ring_encode_hdr(s->data, 1, 100);
    atomic_store(&s->ctrl.head, 16);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), -EPROTO);

    /* A record larger than the consumer's buffer. */
    memset(s, 0, sizeof(*s) + 256);
    assert_int_equal(shoal_ring_attach_producer(&p, &s->ctrl, s->data, 256), 0);
    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, 256), 0);
    assert_int_equal(shoal_ring_push(&p, 1, buf, 100), 0);
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, 50), -EPROTO);

    /* A consumer tail ahead of the producer, or too far behind. */
    memset(s, 0, sizeof(*s) + 256);
    assert_int_equal(shoal_ring_attach_producer(&p, &s->ctrl, s->data, 256), 0);
    atomic_store(&s->ctrl.tail, 64);
    assert_int_equal(shoal_ring_space(&p), -EPROTO);
    /* The producer only re-reads tail when it needs room: make it need some. */
    p.pos = 200;
    p.other = 0;
    atomic_store(&s->ctrl.tail, 304);
    assert_int_equal(shoal_ring_push(&p, 1, buf, 100), -EPROTO);
    atomic_store(&s->ctrl.tail, 196);
    assert_int_equal(shoal_ring_push(&p, 1, buf, 100), -EPROTO); /* misaligned */
    atomic_store(&s->ctrl.tail, 192);
    assert_int_equal(shoal_ring_push(&p, 1, buf, 100), 0);
    ring_free(s, 256);
}

static void test_decode(void **state)
{
    uint8_t buf[64];
    const uint8_t *payload;
    shoal_ring_rec_t rec;
    (void)state;

    shoal_ring_encode_hdr(buf, 9, 5);
    memcpy(buf + 8, "hello", 5);
    assert_int_equal(shoal_ring_decode(buf, 16, 100, &rec, &payload), 16);
    assert_int_equal(rec.type, 9);
    assert_ptr_equal(payload, buf + 8);
    assert_int_equal(shoal_ring_decode(buf, 15, 100, &rec, &payload), -EPROTO);
    assert_int_equal(shoal_ring_decode(buf, 16, 4, &rec, &payload), -EPROTO);
    assert_int_equal(shoal_ring_decode(buf, 7, 100, &rec, &payload), -EPROTO);
    assert_int_equal(shoal_ring_decode(NULL, 0, 100, &rec, &payload), -EPROTO);
    shoal_ring_encode_hdr(buf, 0, 5);
    assert_int_equal(shoal_ring_decode(buf, 16, 100, &rec, &payload), -EPROTO);
    /* Random bytes: never accepted as anything out of bounds. */
    srand(1);
    for (int i = 0; i < 100000; i++) {
        int64_t r;
        for (size_t k = 0; k < sizeof(buf); k++)
            buf[k] = (uint8_t)rand();
        if (i & 1)
            buf[0] &= 0x3f, buf[1] = buf[2] = buf[3] = 0;
        r = shoal_ring_decode(buf, sizeof(buf), 1u << 20, &rec, &payload);
        if (r > 0)
            assert_true((size_t)r <= sizeof(buf) && 8 + rec.len <= (size_t)r);
    }
}

#define MILLION 1000000u

static void test_million_across_fork(void **state)
{
    const uint64_t cap = 4096;
    shm_ring_t *s = ring_new(cap);
    shoal_ring_t c;
    shoal_ring_rec_t rec;
    uint8_t buf[4096], want[64];
    uint32_t i = 0;
    int status, r;
    pid_t pid;
    (void)state;

    assert_int_equal(shoal_ring_attach_consumer(&c, &s->ctrl, s->data, cap), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        shoal_ring_t p;
        if (shoal_ring_attach_producer(&p, &s->ctrl, s->data, cap) < 0)
            _exit(2);
        for (uint32_t k = 0; k < MILLION; k++) {
            uint8_t rec_buf[64];
            uint32_t len = 4 + k % 53;
            memcpy(rec_buf, &k, 4);
            fill(rec_buf + 4, len - 4, k);
            while ((r = shoal_ring_push(&p, (uint16_t)(1 + k % 100), rec_buf, len)) == -EAGAIN)
                sched_yield();
            if (r < 0)
                _exit(3);
        }
        _exit(0);
    }
    while (i < MILLION) {
        r = shoal_ring_pop(&c, &rec, buf, sizeof(buf));
        assert_true(r >= 0);
        if (r == 0) {
            sched_yield();
            continue;
        }
        uint32_t k;
        memcpy(&k, buf, 4);
        assert_int_equal(k, i);
        assert_int_equal(rec.type, 1 + i % 100);
        assert_int_equal(rec.len, 4 + i % 53);
        fill(want, rec.len - 4, i);
        assert_memory_equal(buf + 4, want, rec.len - 4);
        i++;
    }
    assert_int_equal(shoal_ring_pop(&c, &rec, buf, sizeof(buf)), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ring_free(s, cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attach),     cmocka_unit_test(test_roundtrip_full_empty),
        cmocka_unit_test(test_wraparound), cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_decode),     cmocka_unit_test(test_million_across_fork),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
