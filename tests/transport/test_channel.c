/* Tests transport/channel.c: the layout, create/open and seals, messages both ways, the futex
 * and socket doorbells between two processes, punching, key/value blobs and the validation of
 * every up-ring message a hostile instance could send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "transport/channel.h"

/* A small body keeps the test's memfd small (the layout scales with it). */
#define BODY (1u << 20)

static void test_layout(void **state)
{
    shoal_channel_layout_t l;
    (void)state;

    shoal_channel_layout(SHOAL_CHANNEL_BODY_DEFAULT, &l);
    uint64_t offs[] = {l.down_off, l.up_off, l.meta_off, l.in_off, l.out_off, l.call_off, l.size};
    uint64_t caps[] = {l.down_cap, l.up_cap, l.meta_cap, l.in_cap, l.out_cap, l.call_cap};
    assert_int_equal(l.down_off, SHOAL_CHANNEL_PAGE);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(offs[i] % SHOAL_CHANNEL_PAGE, 0);
        assert_int_equal(offs[i] + caps[i], offs[i + 1]); /* contiguous, no overlap */
    }
    assert_int_equal(l.in_cap, 64u << 20);
    assert_int_equal(l.out_cap, 64u << 20);
    assert_true(l.call_cap >= 2 * l.body_max);
    /* An odd body is rounded up to pages. */
    shoal_channel_layout(1000, &l);
    assert_int_equal(l.in_cap, SHOAL_CHANNEL_PAGE);
}

static void test_create_open_seal(void **state)
{
    shoal_channel_t w, i;
    shoal_ring_rec_t rec;
    shoal_msg_invoke_t inv = {.seq = 7, .input_len = 3, .meta_len = 0}, got;
    struct iovec iov = {&inv, sizeof(inv)};
    uint8_t buf[256];
    (void)state;

    assert_int_equal(shoal_channel_create(&w, BODY), 0);
    /* The instance cannot shrink (or grow) the file under the worker's mapping. */
    assert_int_equal(ftruncate(w.fd, 4096), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(w.fd, (off_t)w.lay.size * 2), -1);
    assert_int_equal(shoal_channel_open(&i, dup(w.fd)), 0);
    assert_memory_equal(&i.lay, &w.lay, sizeof(w.lay));
    memcpy(w.in, "abc", 3);
    assert_int_equal(shoal_channel_send(&w, SHOAL_MSG_INVOKE, &iov, 1), 0);
    assert_int_equal(shoal_channel_recv(&i, &rec, buf, sizeof(buf)), 1);
    assert_int_equal(rec.type, SHOAL_MSG_INVOKE);
    memcpy(&got, buf, sizeof(got));
    assert_int_equal(got.seq, 7);
    assert_memory_equal(i.in, "abc", 3);
    /* Up: instance -> worker. */
    shoal_msg_log_t lg = {7};
    struct iovec up[2] = {{&lg, sizeof(lg)}, {"hi", 2}};
    assert_int_equal(shoal_channel_send(&i, SHOAL_MSG_LOG, up, 2), 0);
    assert_int_equal(shoal_channel_recv(&w, &rec, buf, sizeof(buf)), 1);
    shoal_up_msg_t m;
    assert_int_equal(shoal_channel_decode_up(&w.lay, rec.type, buf, rec.len, &m), 0);
    assert_int_equal(m.u.log.seq, 7);
    assert_int_equal(m.u.log.len, 2);
    assert_memory_equal(m.u.log.text, "hi", 2);
    /* Punching gives pages back: they read as zeros. */
    memset(w.out, 0xab, 3 * SHOAL_CHANNEL_PAGE);
    assert_int_equal(shoal_channel_punch(&w, w.lay.out_off, 2 * SHOAL_CHANNEL_PAGE), 0);
    assert_int_equal(i.out[0], 0);
    assert_int_equal(i.out[2 * SHOAL_CHANNEL_PAGE - 1], 0);
    assert_int_equal(i.out[2 * SHOAL_CHANNEL_PAGE], 0xab);
    assert_int_equal(shoal_channel_punch(&w, w.lay.size, 1), -EINVAL);
    shoal_channel_close(&i);
    shoal_channel_close(&w);
    /* A file that is not a channel is refused. */
    int fd = memfd_create("x", MFD_CLOEXEC);
    assert_int_equal(ftruncate(fd, 1 << 20), 0);
    assert_int_equal(shoal_channel_open(&i, fd), -EPROTO);
}

static void test_doorbells_across_fork(void **state)
{
    shoal_channel_t w;
    shoal_ring_rec_t rec;
    uint8_t buf[256];
    int sv[2], status;
    pid_t pid;
    (void)state;

    assert_int_equal(shoal_channel_create(&w, BODY), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    shoal_channel_arm(&w);
    pid = fork();
    if (pid == 0) {
        shoal_channel_t i;
        close(sv[0]);
        if (shoal_channel_open(&i, dup(w.fd)) < 0)
            _exit(2);
        /* Echo every record back, 1000 times, sleeping on the futex between them. */
        for (int k = 0; k < 1000; k++) {
            shoal_channel_wait_down(&i, k < 500 ? 0 : 20000);
            if (shoal_channel_recv(&i, &rec, buf, sizeof(buf)) != 1)
                _exit(3);
            struct iovec iov = {buf, rec.len};
            if (shoal_channel_send_wait(&i, sv[1], SHOAL_MSG_LOG, &iov, 1) < 0 ||
                shoal_channel_notify(&i, sv[1], 0) < 0)
                _exit(4);
        }
        _exit(0);
    }
    close(sv[1]);
    for (int k = 0; k < 1000; k++) {
        shoal_msg_log_t lg = {(uint64_t)k};
        struct iovec iov = {&lg, sizeof(lg)};
        struct pollfd p = {sv[0], POLLIN, 0};
        char b;
        if (k % 100 == 0) {
            /* Let the child fall asleep in FUTEX_WAIT first. */
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        assert_int_equal(shoal_channel_send(&w, SHOAL_MSG_INVOKE, &iov, 1), 0);
        shoal_channel_wake_instance(&w);
        for (;;) {
            assert_int_equal(poll(&p, 1, 5000), 1); /* the doorbell byte comes */
            assert_int_equal(recv(sv[0], &b, 1, 0), 1);
            assert_int_equal(b, SHOAL_CTL_DOORBELL);
            shoal_channel_arm(&w);
            if (shoal_channel_recv(&w, &rec, buf, sizeof(buf)) == 1)
                break;
        }
        uint64_t seq;
        memcpy(&seq, buf, 8);
        assert_int_equal(seq, (uint64_t)k);
        shoal_channel_release_space(&w);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(sv[0]);
    shoal_channel_close(&w);
}

static size_t done_msg(uint8_t *buf, shoal_msg_done_t d, const char *err, const char *hdrs,
                       size_t hlen)
{
    d.err_len = err ? (uint32_t)strlen(err) : 0;
    d.hdr_len = (uint32_t)hlen;
    memcpy(buf, &d, sizeof(d));
    if (d.err_len)
        memcpy(buf + sizeof(d), err, d.err_len);
    if (hlen)
        memcpy(buf + sizeof(d) + d.err_len, hdrs, hlen);
    return sizeof(d) + d.err_len + hlen;
}

static void test_decode_up(void **state)
{
    shoal_channel_layout_t l;
    shoal_up_msg_t m;
    uint8_t buf[1024];
    shoal_msg_done_t d = {.seq = 1, .out_len = 10};
    shoal_msg_call_t c = {.seq = 1, .in_off = 0, .in_len = 10, .out_off = 64, .out_cap = 100};
    size_t n;
    (void)state;

    shoal_channel_layout(BODY, &l);
    static const char hdrs[] = "header:content-type\0text/plain\0";
    n = done_msg(buf, d, NULL, hdrs, sizeof(hdrs) - 1);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), 0);
    assert_int_equal(m.u.done.m.out_len, 10);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n - 1, &m), -EPROTO);
    assert_int_equal(shoal_channel_decode_up(&l, 99, buf, n, &m), -EPROTO);
    n = done_msg(buf, d, "oops", NULL, 0);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), 0);
    assert_memory_equal(m.u.done.err, "oops", 4);
    /* Each field a hostile instance controls. */
    shoal_msg_done_t bad = d;
    bad.status = 99;
    n = done_msg(buf, bad, NULL, NULL, 0);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);
    bad = d;
    bad.out_len = l.out_cap + 1;
    n = done_msg(buf, bad, NULL, NULL, 0);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);
    bad.flags = SHOAL_DONE_TOO_LARGE; /* then out_len is just the size that did not fit */
    n = done_msg(buf, bad, NULL, NULL, 0);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), 0);
    bad = d;
    bad.flags = 0x80;
    n = done_msg(buf, bad, NULL, NULL, 0);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);
    bad = d;
    bad.out_hw = UINT64_MAX;
    n = done_msg(buf, bad, NULL, NULL, 0);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), 0);
    assert_int_equal(m.u.done.m.out_hw, l.out_cap); /* clamped */
    /* Lengths that lie about the payload. */
    memcpy(buf, &d, sizeof(d));
    ((shoal_msg_done_t *)buf)->err_len = 1000;
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, sizeof(d), &m), -EPROTO);
    ((shoal_msg_done_t *)buf)->err_len = 0xffffffffu;
    ((shoal_msg_done_t *)buf)->hdr_len = 1;
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, sizeof(d), &m), -EPROTO);
    /* Headers: upper case, CRLF injection, no terminating NUL, not a header key. */
    static const char h1[] = "header:Content-Type\0x\0", h2[] = "header:x\0a\r\nb: c\0",
                      h3[] = "header:x\0abc", h4[] = "status\0200\0";
    n = done_msg(buf, d, NULL, h1, sizeof(h1) - 1);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);
    n = done_msg(buf, d, NULL, h2, sizeof(h2) - 1);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);
    n = done_msg(buf, d, NULL, h3, sizeof(h3) - 1);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);
    n = done_msg(buf, d, NULL, h4, sizeof(h4) - 1);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_DONE, buf, n, &m), -EPROTO);

    /* CALL. */
    c.name_len = 4;
    memcpy(buf, &c, sizeof(c));
    memcpy(buf + sizeof(c), "echo", 4);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), 0);
    assert_string_equal(m.u.call.name, "echo");
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 3, &m), -EPROTO);
    buf[sizeof(c) + 1] = 0;
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), -EPROTO);
    shoal_msg_call_t bc = c;
    bc.in_off = UINT64_MAX - 5; /* overflow */
    memcpy(buf, &bc, sizeof(bc));
    memcpy(buf + sizeof(c), "echo", 4);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), -EPROTO);
    bc = c;
    bc.out_off = 5; /* overlaps the input the worker reads */
    memcpy(buf, &bc, sizeof(bc));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), -EPROTO);
    bc = c;
    bc.out_cap = l.call_cap;
    memcpy(buf, &bc, sizeof(bc));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), -EPROTO);
    /* An input larger than a body fits the call area but could never be forwarded. */
    bc = c;
    bc.in_off = 0;
    bc.in_len = l.body_max + 1;
    bc.out_off = l.call_cap - 16;
    bc.out_cap = 16;
    memcpy(buf, &bc, sizeof(bc));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), -EPROTO);
    bc.in_len = l.body_max;
    memcpy(buf, &bc, sizeof(bc));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_CALL, buf, sizeof(c) + 4, &m), 0);
    /* LOG bounds. */
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_LOG, buf, 4, &m), -EPROTO);
    assert_int_equal(
        shoal_channel_decode_up(&l, SHOAL_MSG_LOG, buf, 8 + SHOAL_CHANNEL_LOG_LINE_MAX + 1, &m),
        -EPROTO);

    /* XSEND / XRECV: exact size, a node index below the largest group, no wrapping range, pad
     * zero; XRECV's off/len are ignored (zeroed). */
    shoal_msg_xfer_t x = {.xseq = 7, .tag = 1ull << 63, .off = 4096, .len = 100, .node = 1};
    memcpy(buf, &x, sizeof(x));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XSEND, buf, sizeof(x), &m), 0);
    assert_int_equal(m.u.xfer.xseq, 7);
    assert_int_equal(m.u.xfer.off, 4096);
    assert_int_equal(m.u.xfer.len, 100);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XRECV, buf, sizeof(x), &m), 0);
    assert_int_equal(m.u.xfer.off, 0);
    assert_int_equal(m.u.xfer.len, 0);
    assert_int_equal(m.u.xfer.tag, 1ull << 63);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XSEND, buf, sizeof(x) - 1, &m), -EPROTO);
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XSEND, buf, sizeof(x) + 1, &m), -EPROTO);
    shoal_msg_xfer_t bx = x;
    bx.node = SHOAL_CHANNEL_GROUP_MAX;
    memcpy(buf, &bx, sizeof(bx));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XRECV, buf, sizeof(bx), &m), -EPROTO);
    bx = x;
    bx.off = UINT64_MAX - 10; /* wraps */
    memcpy(buf, &bx, sizeof(bx));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XSEND, buf, sizeof(bx), &m), -EPROTO);
    bx = x;
    bx.pad = 1;
    memcpy(buf, &bx, sizeof(bx));
    assert_int_equal(shoal_channel_decode_up(&l, SHOAL_MSG_XSEND, buf, sizeof(bx), &m), -EPROTO);

    /* Random payloads never decode to anything out of bounds. */
    srand(2);
    for (int k = 0; k < 200000; k++) {
        size_t len = (size_t)rand() % 200;
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rand();
        if (shoal_channel_decode_up(&l, (uint16_t)(16 + k % 3), buf, len, &m) == 0 &&
            m.type == SHOAL_MSG_CALL) {
            assert_true(m.u.call.m.in_off + m.u.call.m.in_len <= l.call_cap);
            assert_true(m.u.call.m.out_off + m.u.call.m.out_cap <= l.call_cap);
        }
    }
}

static void test_kv(void **state)
{
    char blob[64];
    size_t len = 0, off = 0;
    const char *k, *v;
    (void)state;

    assert_int_equal(shoal_kv_append(blob, sizeof(blob), &len, "method", 6, "POST", 4), 0);
    assert_int_equal(shoal_kv_append(blob, sizeof(blob), &len, "header:x-a", 10, "1", 1), 0);
    assert_int_equal(shoal_kv_append(blob, sizeof(blob), &len, "k\0", 2, "v", 1), -EINVAL);
    assert_int_equal(shoal_kv_append(blob, sizeof(blob), &len, "big", 3,
                                     "0123456789012345678901234567890123456789", 40),
                     -ENOSPC);
    assert_string_equal(shoal_kv_get(blob, len, "method"), "POST");
    assert_string_equal(shoal_kv_get(blob, len, "header:X-A"), "1");
    assert_null(shoal_kv_get(blob, len, "Method"));
    assert_null(shoal_kv_get(blob, len, "path"));
    assert_int_equal(shoal_kv_next(blob, len, &off, &k, &v), 1);
    assert_int_equal(shoal_kv_next(blob, len, &off, &k, &v), 1);
    assert_string_equal(k, "header:x-a");
    assert_int_equal(shoal_kv_next(blob, len, &off, &k, &v), 0);
    off = 0;
    assert_int_equal(shoal_kv_next(blob, len - 1, &off, &k, &v), 1);
    assert_int_equal(shoal_kv_next(blob, len - 1, &off, &k, &v), -EPROTO);
    assert_true(shoal_header_name_valid("x-my_header.1", 13));
    assert_false(shoal_header_name_valid("bad name", 8));
    assert_false(shoal_header_name_valid("", 0));
    assert_false(shoal_header_name_valid("a:b", 3));
    assert_true(shoal_header_value_valid("text/plain; q=1\t", 16));
    assert_false(shoal_header_value_valid("a\nb", 3));
    assert_false(shoal_header_value_valid("a\x7f", 2));
}

static void test_kind_errno(void **state)
{
    (void)state;
    assert_int_equal(shoal_kind_errno("timeout"), -ETIMEDOUT);
    assert_int_equal(shoal_kind_errno("crash"), -ECONNRESET);
    assert_int_equal(shoal_kind_errno("function"), -EREMOTEIO);
    assert_int_equal(shoal_kind_errno("overload"), -EBUSY);
    assert_int_equal(shoal_kind_errno("weird"), -EIO);
    assert_int_equal(shoal_kind_errno(NULL), -EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_create_open_seal),
        cmocka_unit_test(test_doorbells_across_fork),
        cmocka_unit_test(test_decode_up),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_kind_errno),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
