/* Tests transport/link.c: the layout and its check, create/open and seals, the request and
 * response records with every kind of garbage a hostile peer can write (lengths past the areas,
 * sequence numbers out of step, errnos out of range), the worker's close and verdict, and real
 * round trips between two processes with futex doorbells (both sleeping and spinning). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "transport/link.h"

#define OUT_CAP (1u << 20)

static void test_layout(void **state)
{
    shoal_link_layout_t l, bad;
    (void)state;

    shoal_link_layout(1000, 5000, &l);
    assert_int_equal(l.in_off, SHOAL_LINK_PAGE);
    assert_int_equal(l.in_cap, 4096);
    assert_int_equal(l.out_off, l.in_off + l.in_cap);
    assert_int_equal(l.out_cap, 8192);
    assert_int_equal(l.size, l.out_off + l.out_cap);
    assert_int_equal(shoal_link_layout_check(&l, OUT_CAP, l.size), 0);
    /* The file must be exactly as large as the layout says. */
    assert_int_equal(shoal_link_layout_check(&l, OUT_CAP, l.size - 1), -EPROTO);
    assert_int_equal(shoal_link_layout_check(&l, OUT_CAP, l.size + 4096), -EPROTO);
    /* A response area larger than the reader accepts. */
    assert_int_equal(shoal_link_layout_check(&l, 4096, l.size), -EPROTO);
    /* Offsets that overlap or point past the end. */
    bad = l;
    bad.out_off = l.in_off;
    assert_int_equal(shoal_link_layout_check(&bad, OUT_CAP, l.size), -EPROTO);
    bad = l;
    bad.out_off = l.size;
    assert_int_equal(shoal_link_layout_check(&bad, OUT_CAP, l.size), -EPROTO);
    bad = l;
    bad.in_cap = SHOAL_LINK_IN_CAP * 2;
    assert_int_equal(shoal_link_layout_check(&bad, OUT_CAP, l.size), -EPROTO);
    bad = l;
    bad.in_cap = 0;
    assert_int_equal(shoal_link_layout_check(&bad, OUT_CAP, l.size), -EPROTO);
}

static void test_create_open_seal(void **state)
{
    shoal_link_t *w, *a;
    shoal_link_layout_t lay;
    (void)state;

    assert_int_equal(shoal_link_create(&w, 0, OUT_CAP), -EINVAL);
    assert_int_equal(shoal_link_create(&w, SHOAL_LINK_IN_CAP + 1, OUT_CAP), -EINVAL);
    assert_int_equal(shoal_link_create(&w, 4096, OUT_CAP), 0);
    lay = *shoal_link_get_layout(w);
    /* Sealed: a peer can neither shrink nor grow it. */
    assert_int_equal(ftruncate(shoal_link_fd(w), 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(shoal_link_fd(w), (off_t)lay.size * 2), -1);
    assert_int_equal(shoal_link_hdr(w)->magic, SHOAL_LINK_MAGIC);
    assert_int_equal(shoal_link_open(&a, dup(shoal_link_fd(w)), &lay, OUT_CAP), 0);
    shoal_link_destroy(a);
    /* A layout that does not match the file is refused (and the fd closed). */
    lay.out_cap *= 2;
    lay.size += lay.out_cap / 2;
    assert_int_equal(shoal_link_open(&a, dup(shoal_link_fd(w)), &lay, OUT_CAP * 4), -EPROTO);
    assert_null(a);
    shoal_link_destroy(w);
    shoal_link_destroy(NULL);
}

static void test_check_records(void **state)
{
    shoal_link_layout_t l;
    shoal_link_req_t rq;
    shoal_link_resp_t rs;
    (void)state;

    shoal_link_layout(4096, 8192, &l);
    rq = (shoal_link_req_t){.seq = 3, .in_len = 4096};
    assert_int_equal(shoal_link_check_req(&l, &rq, 3), 0);
    assert_int_equal(shoal_link_check_req(&l, &rq, 4), -EPROTO); /* seq out of step */
    rq.in_len = 4097;
    assert_int_equal(shoal_link_check_req(&l, &rq, 3), -EPROTO); /* past the request area */
    rq.in_len = UINT64_MAX;
    assert_int_equal(shoal_link_check_req(&l, &rq, 3), -EPROTO);

    rs = (shoal_link_resp_t){.seq = 9, .err = 0, .err_len = 0, .out_len = 8192};
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), 0);
    assert_int_equal(shoal_link_check_resp(&l, &rs, 8), -EPROTO);
    rs.out_len = 8193;
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO);
    rs.out_len = UINT64_MAX;
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO);
    rs = (shoal_link_resp_t){.seq = 9, .err = 0, .err_len = 5, .out_len = 0};
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO); /* success with error text */
    rs = (shoal_link_resp_t){.seq = 9, .err = -EREMOTEIO, .err_len = 100};
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), 0);
    rs.err = 5; /* not a -errno */
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO);
    rs.err = -100000;
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO);
    rs.err = -EIO;
    rs.err_len = UINT32_MAX;
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO);
    rs.err_len = 10;
    rs.out_len = 1; /* an error with output */
    assert_int_equal(shoal_link_check_resp(&l, &rs, 9), -EPROTO);
}

/* A worker's link and a caller's and a callee's view of it, in one process. */
typedef struct {
    shoal_link_t *w, *a, *b;
} trio_t;

static void trio_open(trio_t *t, uint64_t in_cap, uint64_t out_cap)
{
    shoal_link_layout_t lay;

    assert_int_equal(shoal_link_create(&t->w, in_cap, out_cap), 0);
    lay = *shoal_link_get_layout(t->w);
    assert_int_equal(shoal_link_open(&t->a, dup(shoal_link_fd(t->w)), &lay, out_cap), 0);
    assert_int_equal(shoal_link_open(&t->b, dup(shoal_link_fd(t->w)), &lay, out_cap), 0);
}

static void trio_close(trio_t *t)
{
    shoal_link_destroy(t->a);
    shoal_link_destroy(t->b);
    shoal_link_destroy(t->w);
}

static void test_request_response(void **state)
{
    shoal_link_req_t rq;
    shoal_link_resp_t rs;
    uint32_t req;
    uint64_t seq, start;
    trio_t t;
    (void)state;

    trio_open(&t, 4096, 8192);
    assert_int_equal(shoal_link_poll_req(t.b, &rq), 0);
    assert_int_equal(shoal_link_pending(t.w, &req, &start), 0);
    assert_int_equal(shoal_link_request(t.a, "x", 4097, &seq), -EMSGSIZE);
    assert_int_equal(shoal_link_request(t.a, "hello", 5, &seq), 0);
    assert_int_equal(seq, 1);
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), 0);
    assert_int_equal(shoal_link_poll_req(t.b, &rq), 1);
    assert_int_equal(rq.in_len, 5);
    assert_memory_equal(shoal_link_in(t.b), "hello", 5);
    assert_int_equal(shoal_link_pending(t.w, &req, &start), 1);
    assert_int_equal(req, 1);
    assert_true(start > 0);
    assert_int_equal(shoal_link_respond(t.b, 0, "x", 8193, NULL, 0), -EMSGSIZE);
    assert_int_equal(shoal_link_respond(t.b, 0, "HELLO", 5, NULL, 0), 0);
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), 1);
    assert_int_equal(rs.err, 0);
    assert_int_equal(rs.out_len, 5);
    assert_memory_equal(shoal_link_out(t.a), "HELLO", 5);
    assert_int_equal(shoal_link_pending(t.w, &req, &start), 0);
    /* An error answer, text clamped to what fits. */
    assert_int_equal(shoal_link_request(t.a, NULL, 0, &seq), 0);
    assert_int_equal(seq, 2);
    assert_int_equal(shoal_link_poll_req(t.b, &rq), 1);
    assert_int_equal(rq.in_len, 0);
    assert_int_equal(shoal_link_respond(t.b, -EREMOTEIO, NULL, 0, "boom", 4), 0);
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), 1);
    assert_int_equal(rs.err, -EREMOTEIO);
    assert_int_equal(rs.err_len, 4);
    assert_memory_equal(shoal_link_out(t.a), "boom", 4);
    trio_close(&t);
}

/* What a hostile peer can write into the shared header, and that each reader refuses it. */
static void test_hostile_peer(void **state)
{
    shoal_link_req_t rq;
    shoal_link_resp_t rs;
    shoal_link_hdr_t *h;
    uint64_t seq;
    trio_t t;
    (void)state;

    trio_open(&t, 4096, 8192);
    h = shoal_link_hdr(t.w);
    /* A request word that jumps ahead: the callee sees a violation. */
    atomic_store(&h->req, 5);
    assert_int_equal(shoal_link_poll_req(t.b, &rq), -EPROTO);
    /* The right word but a record with another seq. */
    atomic_store(&h->req, 1);
    h->rq.seq = 7;
    h->rq.in_len = 1;
    assert_int_equal(shoal_link_poll_req(t.b, &rq), -EPROTO);
    /* The right seq but a length past the request area. */
    h->rq.seq = 1;
    h->rq.in_len = 1ull << 40;
    assert_int_equal(shoal_link_poll_req(t.b, &rq), -EPROTO);
    trio_close(&t);

    trio_open(&t, 4096, 8192);
    h = shoal_link_hdr(t.w);
    assert_int_equal(shoal_link_request(t.a, "a", 1, &seq), 0);
    /* An answer word that skips: the caller sees a violation. */
    atomic_store(&h->resp, 3);
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), -EPROTO);
    atomic_store(&h->resp, 1);
    h->rs = (shoal_link_resp_t){.seq = 2, .out_len = 1};
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), -EPROTO);
    h->rs = (shoal_link_resp_t){.seq = 1, .out_len = 8193};
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), -EPROTO);
    h->rs = (shoal_link_resp_t){.seq = 1, .err = -EIO, .err_len = 100000};
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), -EPROTO);
    h->rs = (shoal_link_resp_t){.seq = 1, .err = 42};
    assert_int_equal(shoal_link_poll_resp(t.a, seq, &rs), -EPROTO);
    trio_close(&t);
}

static void test_close_verdict(void **state)
{
    shoal_link_hdr_t *h;
    char msg[64];
    size_t len;
    int v;
    trio_t t;
    (void)state;

    trio_open(&t, 4096, 8192);
    assert_int_equal(shoal_link_closed(t.a, &v, msg, sizeof(msg), &len), 0);
    shoal_link_close(t.w, -ETIMEDOUT, "too slow", 8);
    /* The first verdict stays. */
    shoal_link_close(t.w, 0, NULL, 0);
    assert_int_equal(shoal_link_closed(t.a, &v, msg, sizeof(msg), &len), 1);
    assert_int_equal(v, -ETIMEDOUT);
    assert_int_equal(len, 8);
    assert_memory_equal(msg, "too slow", 8);
    /* A peer scribbling over the verdict gets a bounded message and a generic failure. */
    h = shoal_link_hdr(t.w);
    h->verdict = 77;
    h->msg_len = UINT32_MAX;
    assert_int_equal(shoal_link_closed(t.a, &v, msg, sizeof(msg), &len), 1);
    assert_int_equal(v, -EPROTO);
    assert_int_equal(len, sizeof(msg));
    trio_close(&t);
}

/* Round trips between two processes: the child is the callee and echoes its input reversed; it
 * sleeps on the request word (spin 0) or spins, as the runtime does. */
static void callee_loop(shoal_link_t *b, int rounds, int spin)
{
    shoal_link_hdr_t *h = shoal_link_hdr(b);
    shoal_link_req_t rq;
    uint8_t buf[4096];

    for (int i = 0; i < rounds;) {
        uint32_t w = atomic_load(&h->req);
        int r = shoal_link_poll_req(b, &rq);
        if (r < 0)
            _exit(2);
        if (r == 0) {
            if (spin)
                continue;
            atomic_store(&h->callee_sleeping, 1);
            atomic_thread_fence(memory_order_seq_cst);
            if (atomic_load(&h->req) == w)
                shoal_link_futex_wait2(&h->req, w, NULL, 0);
            atomic_store(&h->callee_sleeping, 0);
            continue;
        }
        for (uint64_t k = 0; k < rq.in_len; k++)
            buf[k] = shoal_link_in(b)[rq.in_len - 1 - k];
        shoal_link_respond(b, 0, buf, rq.in_len, NULL, 0);
        i++;
    }
    _exit(0);
}

static void round_trips(int spin)
{
    enum { ROUNDS = 2000 };
    shoal_link_resp_t rs;
    uint8_t in[256];
    uint64_t seq;
    int status;
    pid_t kid;
    trio_t t;

    trio_open(&t, 4096, 8192);
    if ((kid = fork()) == 0)
        callee_loop(t.b, ROUNDS, spin);
    for (int i = 0; i < ROUNDS; i++) {
        shoal_link_hdr_t *h = shoal_link_hdr(t.a);
        size_t len = (size_t)(i % 256);
        for (size_t k = 0; k < len; k++)
            in[k] = (uint8_t)(i + k);
        assert_int_equal(shoal_link_request(t.a, in, len, &seq), 0);
        for (;;) {
            int r = shoal_link_poll_resp(t.a, seq, &rs);
            assert_true(r >= 0);
            if (r == 1)
                break;
            /* Sleep like the runtime's caller: announce, re-check, wait on resp and closed. */
            atomic_store(&h->caller_sleeping, 1);
            atomic_thread_fence(memory_order_seq_cst);
            uint32_t w = atomic_load(&h->resp);
            if (w == (uint32_t)(seq - 1))
                shoal_link_futex_wait2(&h->resp, w, &h->closed, 0);
            atomic_store(&h->caller_sleeping, 0);
        }
        assert_int_equal(rs.err, 0);
        assert_int_equal(rs.out_len, len);
        for (size_t k = 0; k < len; k++)
            assert_int_equal(shoal_link_out(t.a)[k], in[len - 1 - k]);
    }
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    trio_close(&t);
}

static void test_round_trips_sleeping(void **state)
{
    (void)state;
    round_trips(0);
}

static void test_round_trips_spinning(void **state)
{
    (void)state;
    round_trips(1);
}

/* The worker's close wakes a caller asleep on its answer (the lost-wake-up case: it must wait on
 * the closed word too, since close does not change resp). */
static void test_close_wakes_caller(void **state)
{
    shoal_link_hdr_t *h;
    uint64_t seq;
    int status;
    pid_t kid;
    trio_t t;
    (void)state;

    trio_open(&t, 4096, 8192);
    assert_int_equal(shoal_link_request(t.a, "q", 1, &seq), 0);
    if ((kid = fork()) == 0) {
        h = shoal_link_hdr(t.a);
        atomic_store(&h->caller_sleeping, 1);
        atomic_thread_fence(memory_order_seq_cst);
        while (atomic_load(&h->closed) == 0)
            shoal_link_futex_wait2(&h->resp, 0, &h->closed, 0);
        _exit(0);
    }
    usleep(50000);
    shoal_link_close(t.w, -ECONNRESET, "crashed", 7);
    assert_int_equal(waitpid(kid, &status, 0), kid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    trio_close(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_create_open_seal),
        cmocka_unit_test(test_check_records),
        cmocka_unit_test(test_request_response),
        cmocka_unit_test(test_hostile_peer),
        cmocka_unit_test(test_close_verdict),
        cmocka_unit_test(test_round_trips_sleeping),
        cmocka_unit_test(test_round_trips_spinning),
        cmocka_unit_test(test_close_wakes_caller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
