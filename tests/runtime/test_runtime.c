/* Tests runtime/: the shoal.h API as a function sees it, driven through a real channel with this
 * test playing the worker: input, output (in place, replaced, too large), errors, logs and their
 * limits, request meta, response meta validation, shoal_call (result and error), the size-1
 * collectives, and joining a group's arena (with a forked process as the other rank). The sandbox
 * has its own tests (test_sandbox.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "runtime/runtime.h"
#include "runtime/sandbox.h"

#define BODY (1u << 20)

static shoal_channel_t W, I; /* the worker's and the instance's views */
static shoal_rt_ctx *CTX;
static int SV[2];
static uint8_t upbuf[SHOAL_CHANNEL_UP_CAP];
static char logs[1 << 18];
static size_t logs_len;
static uint64_t seq;
static uint32_t run_flags; /* SHOAL_INVOKE_* of the next run() */

static int setup(void **state)
{
    (void)state;
    if (shoal_channel_create(&W, BODY) < 0 || shoal_channel_open(&I, dup(W.fd)) < 0)
        return -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, SV) < 0)
        return -1;
    fcntl(SV[0], F_SETFL, O_NONBLOCK);
    CTX = malloc(sizeof(*CTX));
    shoal_rt_init(CTX, &I, SV[1]);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    shoal_rt_reset(CTX);
    free(CTX);
    shoal_channel_close(&I);
    shoal_channel_close(&W);
    close(SV[0]);
    close(SV[1]);
    return 0;
}

/* Runs fn on input with meta blob; returns its DONE (decoded; pointers into upbuf). */
static shoal_up_msg_t run(shoal_main_fn fn, const void *in, size_t len, const char *meta,
                          size_t meta_len)
{
    shoal_msg_invoke_t inv = {
        .seq = ++seq, .input_len = len, .meta_len = (uint32_t)meta_len, .flags = run_flags};
    shoal_ring_rec_t rec;
    shoal_up_msg_t m;
    int r;

    if (len > 0)
        memcpy(W.in, in, len);
    if (meta_len > 0)
        memcpy(W.meta, meta, meta_len);
    logs_len = 0;
    assert_int_equal(shoal_rt_run(CTX, fn, &inv), 0);
    for (;;) {
        r = shoal_channel_recv(&W, &rec, upbuf, sizeof(upbuf));
        assert_int_equal(r, 1);
        assert_int_equal(shoal_channel_decode_up(&W.lay, rec.type, upbuf, rec.len, &m), 0);
        if (m.type == SHOAL_MSG_DONE)
            break;
        assert_int_equal(m.type, SHOAL_MSG_LOG);
        assert_int_equal(m.u.log.seq, seq);
        memcpy(logs + logs_len, m.u.log.text, m.u.log.len);
        logs_len += m.u.log.len;
        logs[logs_len++] = '\n';
    }
    assert_int_equal(m.u.done.m.seq, seq);
    assert_int_equal(shoal_channel_recv(&W, &rec, upbuf + 65536, 1024), 0);
    return m;
}

static int fn_echo(shoal_ctx *c)
{
    shoal_buf in = shoal_input(c);
    return shoal_output(c, in.data, in.len);
}

static int fn_replace(shoal_ctx *c)
{
    char *o = shoal_output_alloc(c, 10);
    memcpy(o, "0123456789", 10);
    /* Output from the output area itself, shorter: replaces. */
    assert_int_equal(shoal_output(c, o + 5, 3), 0);
    return 0;
}

static int fn_too_large(shoal_ctx *c)
{
    assert_null(shoal_output_alloc(c, BODY + 1));
    assert_int_equal(shoal_output(c, "x", BODY + 1), -EFBIG);
    return 0;
}

static int fn_too_large_then_fits(shoal_ctx *c)
{
    assert_null(shoal_output_alloc(c, BODY + 1));
    return shoal_output(c, "ok", 2);
}

static int fn_error(shoal_ctx *c)
{
    shoal_output(c, "ignored", 7);
    return shoal_error(c, "failed: %s=%d", "x", 7);
}

static int fn_long_error(shoal_ctx *c)
{
    static char big[10000];
    memset(big, 'e', sizeof(big) - 1);
    return shoal_error(c, "%s", big);
}

static int fn_return7(shoal_ctx *c)
{
    (void)c;
    return 7;
}

static void test_io(void **state)
{
    shoal_up_msg_t m;
    (void)state;

    m = run(fn_echo, "hello", 5, NULL, 0);
    assert_int_equal(m.u.done.m.rc, 0);
    assert_int_equal(m.u.done.m.out_len, 5);
    assert_memory_equal(W.out, "hello", 5);
    assert_int_equal(m.u.done.m.flags, 0);
    assert_int_equal(m.u.done.m.err_len, 0);

    m = run(fn_replace, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.out_len, 3);
    assert_memory_equal(W.out, "567", 3);
    assert_true(m.u.done.m.out_hw >= 10);

    m = run(fn_too_large, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.flags, SHOAL_DONE_TOO_LARGE);
    assert_int_equal(m.u.done.m.out_len, BODY + 1);
    m = run(fn_too_large_then_fits, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.flags, 0);
    assert_int_equal(m.u.done.m.out_len, 2);

    m = run(fn_error, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.rc, -1);
    assert_int_equal(m.u.done.m.err_len, strlen("failed: x=7"));
    assert_memory_equal(m.u.done.err, "failed: x=7", m.u.done.m.err_len);
    m = run(fn_long_error, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.err_len, SHOAL_CHANNEL_ERR_MAX - 1);
    m = run(fn_return7, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.rc, 7);
    assert_int_equal(m.u.done.m.err_len, 0); /* no stale message from an earlier invocation */
}

static int fn_meta(shoal_ctx *c)
{
    assert_string_equal(shoal_meta(c, "method"), "GET");
    assert_string_equal(shoal_meta(c, "header:x-a"), "1");
    assert_string_equal(shoal_meta(c, "header:X-A"), "1");
    assert_string_equal(shoal_meta(c, "invocation_id"), "abc");
    assert_null(shoal_meta(c, "path"));
    assert_null(shoal_meta(c, NULL));
    /* Response meta. */
    assert_int_equal(shoal_set_meta(c, "status", "99"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "status", "600"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "status", "20x"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "status", NULL), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "status", "404"), 0);
    assert_int_equal(shoal_set_meta(c, "header:Content-Type", "text/plain"), 0);
    assert_int_equal(shoal_set_meta(c, "header:content-type", "text/html"), 0); /* replaces */
    assert_int_equal(shoal_set_meta(c, "header:x-gone", "1"), 0);
    assert_int_equal(shoal_set_meta(c, "header:x-gone", NULL), 0); /* removes */
    assert_int_equal(shoal_set_meta(c, "header:x-inject", "a\r\nset-cookie: b"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "header:bad name", "v"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "header:", "v"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "header:Content-Length", "5"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "header:transfer-encoding", "chunked"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, "method", "x"), -EINVAL);
    assert_int_equal(shoal_set_meta(c, NULL, "x"), -EINVAL);
    return 0;
}

static int fn_status_then_fail(shoal_ctx *c)
{
    shoal_set_meta(c, "status", "201");
    shoal_set_meta(c, "header:x-a", "1");
    return 1;
}

static int fn_many_headers(shoal_ctx *c)
{
    char name[32];
    int i;
    for (i = 0; i < (int)SHOAL_CHANNEL_HDRS_COUNT; i++) {
        snprintf(name, sizeof(name), "header:x-%d", i);
        assert_int_equal(shoal_set_meta(c, name, "v"), 0);
    }
    assert_int_equal(shoal_set_meta(c, "header:x-one-more", "v"), -ENOSPC);
    return 0;
}

static void test_meta(void **state)
{
    static const char meta[] = "method\0GET\0header:x-a\0"
                               "1\0invocation_id\0abc\0";
    shoal_up_msg_t m;
    const char *k, *v;
    size_t off = 0;
    (void)state;

    m = run(fn_meta, NULL, 0, meta, sizeof(meta) - 1);
    assert_int_equal(m.u.done.m.rc, 0);
    assert_int_equal(m.u.done.m.status, 404);
    assert_int_equal(shoal_kv_next(m.u.done.hdrs, m.u.done.m.hdr_len, &off, &k, &v), 1);
    assert_string_equal(k, "header:content-type");
    assert_string_equal(v, "text/html");
    assert_int_equal(shoal_kv_next(m.u.done.hdrs, m.u.done.m.hdr_len, &off, &k, &v), 0);
    /* A failed invocation carries no status or headers. */
    m = run(fn_status_then_fail, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.status, 0);
    assert_int_equal(m.u.done.m.hdr_len, 0);
    m = run(fn_many_headers, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.rc, 0);
    /* Each invocation starts without the previous one's headers. */
    m = run(fn_echo, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.hdr_len, 0);
    assert_int_equal(m.u.done.m.status, 0);
}

static int fn_log(shoal_ctx *c)
{
    static char big[100000];
    shoal_log(c, "line %d", 1);
    shoal_log(c, "two\nparts");
    memset(big, 'l', sizeof(big) - 1);
    shoal_log(c, "%s", big);
    return 0;
}

static int fn_log_cap(shoal_ctx *c)
{
    c->log_bytes = SHOAL_CHANNEL_LOG_TOTAL_MAX - 4;
    shoal_log(c, "fits");
    shoal_log(c, "over");
    shoal_log(c, "dropped");
    return 0;
}

static void test_log(void **state)
{
    (void)state;
    run(fn_log, NULL, 0, NULL, 0);
    assert_true(logs_len > 16);
    assert_memory_equal(logs, "line 1\ntwo\nparts\n", 17);
    /* The long line is cut at 64 KiB. */
    assert_int_equal(logs_len, 17 + SHOAL_CHANNEL_LOG_LINE_MAX + 1);
    run(fn_log_cap, NULL, 0, NULL, 0);
    logs[logs_len] = 0;
    assert_non_null(strstr(logs, "fits\n"));
    assert_non_null(strstr(logs, "log limit"));
    assert_null(strstr(logs, "dropped"));
}

static int call_rc;
static shoal_buf call_out;

static int fn_call(shoal_ctx *c)
{
    shoal_buf in = shoal_input(c);
    call_rc = shoal_call(c, "callee", in.data, in.len, &call_out);
    if (call_rc == 0)
        return shoal_output(c, call_out.data, call_out.len);
    return 0;
}

static int fn_call_bad(shoal_ctx *c)
{
    shoal_buf out;
    assert_int_equal(shoal_call(c, "Bad Name", "x", 1, &out), -EINVAL);
    assert_int_equal(shoal_call(c, "ok", "x", 1, NULL), -EINVAL);
    assert_int_equal(shoal_call(c, "ok", NULL, 1, &out), -EINVAL);
    assert_int_equal(shoal_call(c, "ok", "x", (size_t)BODY + 1, &out), -EFBIG);
    return 0;
}

/* Queues the worker's answer to the next CALL before the function makes it. */
static void queue_call_done(int err, const char *msg, const char *result, size_t in_len)
{
    shoal_msg_call_done_t d = {.seq = CTX->call_seq + 1, .err = err};
    struct iovec iov[2] = {{&d, sizeof(d)}, {(void *)msg, msg ? strlen(msg) : 0}};

    d.out_off = (in_len + 63) & ~(uint64_t)63;
    d.err_len = (uint32_t)iov[1].iov_len;
    if (result != NULL) {
        d.out_len = strlen(result);
        memcpy(W.call + d.out_off, result, d.out_len);
    }
    assert_int_equal(shoal_channel_send(&W, SHOAL_MSG_CALL_DONE, iov, 2), 0);
}

static void test_call(void **state)
{
    shoal_ring_rec_t rec;
    shoal_up_msg_t m, c;
    uint8_t buf[512];
    (void)state;

    queue_call_done(0, NULL, "result!", 5);
    memcpy(W.in, "input", 5);
    {
        shoal_msg_invoke_t inv = {.seq = ++seq, .input_len = 5};
        assert_int_equal(shoal_rt_run(CTX, fn_call, &inv), 0);
    }
    /* The CALL record, then the DONE. */
    assert_int_equal(shoal_channel_recv(&W, &rec, buf, sizeof(buf)), 1);
    assert_int_equal(shoal_channel_decode_up(&W.lay, rec.type, buf, rec.len, &c), 0);
    assert_int_equal(c.type, SHOAL_MSG_CALL);
    assert_string_equal(c.u.call.name, "callee");
    assert_int_equal(c.u.call.m.in_len, 5);
    assert_memory_equal(W.call + c.u.call.m.in_off, "input", 5);
    assert_true(c.u.call.m.out_off >= c.u.call.m.in_off + 5);
    assert_int_equal(shoal_channel_recv(&W, &rec, upbuf, sizeof(upbuf)), 1);
    assert_int_equal(shoal_channel_decode_up(&W.lay, rec.type, upbuf, rec.len, &m), 0);
    assert_int_equal(m.type, SHOAL_MSG_DONE);
    assert_int_equal(call_rc, 0);
    assert_int_equal(m.u.done.m.out_len, 7);
    assert_memory_equal(W.out, "result!", 7);
    assert_true(m.u.done.m.call_hw >= c.u.call.m.out_off + 7);

    /* A failed callee: its errno and message. */
    queue_call_done(-ETIMEDOUT, "function exceeded its timeout of 5 ms", NULL, 2);
    memcpy(W.in, "in", 2);
    {
        shoal_msg_invoke_t inv = {.seq = ++seq, .input_len = 2};
        assert_int_equal(shoal_rt_run(CTX, fn_call, &inv), 0);
    }
    assert_int_equal(call_rc, -ETIMEDOUT);
    assert_int_equal(call_out.len, strlen("function exceeded its timeout of 5 ms"));
    assert_memory_equal(call_out.data, "function exceeded its timeout of 5 ms", call_out.len);
    while (shoal_channel_recv(&W, &rec, upbuf, sizeof(upbuf)) == 1)
        ;
    run(fn_call_bad, NULL, 0, NULL, 0);
}

static int fn_group(shoal_ctx *c)
{
    shoal_buf b, parts[1], recv[1];
    int32_t in[3] = {1, 2, 3}, out[3] = {0};

    assert_int_equal(shoal_rank(c), 0);
    assert_int_equal(shoal_size(c), 1);
    assert_int_equal(shoal_barrier(c), 0);
    assert_int_equal(shoal_call_group(c, "x", 0, "a", 1, &b), -EINVAL);
    assert_int_equal(shoal_call_group(c, "x", SHOAL_CHANNEL_GROUP_MAX + 1, "a", 1, &b), -EINVAL);
    assert_int_equal(shoal_send(c, 1, "a", 1), -EINVAL);
    assert_int_equal(shoal_recv(c, 1, &b), -EINVAL);
    assert_int_equal(shoal_recv(c, 0, &b), -EDEADLK);
    assert_int_equal(shoal_send(c, 0, "first", 5), 0);
    assert_int_equal(shoal_send(c, 0, "second", 6), 0);
    assert_int_equal(shoal_recv(c, 0, &b), 0);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "first", 5);
    assert_int_equal(shoal_recv(c, 0, &b), 0);
    assert_memory_equal(b.data, "second", 6);
    assert_int_equal(shoal_bcast(c, 0, "data", 4, &b), 0);
    assert_memory_equal(b.data, "data", 4);
    assert_int_equal(shoal_bcast(c, 1, "data", 4, &b), -EINVAL);
    parts[0] = (shoal_buf){"part", 4};
    assert_int_equal(shoal_scatter(c, 0, parts, &b), 0);
    assert_memory_equal(b.data, "part", 4);
    assert_int_equal(shoal_gather(c, 0, "g", 1, parts), 0);
    assert_memory_equal(parts[0].data, "g", 1);
    assert_int_equal(shoal_reduce(c, 0, in, out, 3, SHOAL_INT32, SHOAL_SUM), 0);
    assert_memory_equal(out, in, sizeof(in));
    assert_int_equal(shoal_reduce(c, 0, in, out, 3, (shoal_dtype)99, SHOAL_SUM), -EINVAL);
    assert_int_equal(shoal_reduce(c, 0, in, out, 3, SHOAL_INT32, (shoal_op)99), -EINVAL);
    assert_int_equal(shoal_allreduce(c, out, out, 3, SHOAL_DOUBLE, SHOAL_MAX), 0);
    assert_int_equal(shoal_shuffle(c, parts, recv), 0);
    assert_memory_equal(recv[0].data, "g", 1);
    /* Left queued: freed when the invocation ends (LeakSanitizer checks). */
    assert_int_equal(shoal_send(c, 0, "leftover", 8), 0);
    return 0;
}

static void test_group(void **state)
{
    shoal_up_msg_t m;
    (void)state;
    m = run(fn_group, NULL, 0, NULL, 0);
    assert_int_equal(m.u.done.m.rc, 0);
}

static int fn_call_group(shoal_ctx *c)
{
    call_rc = shoal_call_group(c, "callee", 3, "in", 2, &call_out);
    return call_rc == 0 ? shoal_output(c, call_out.data, call_out.len) : 0;
}

static void test_call_group(void **state)
{
    shoal_ring_rec_t rec;
    shoal_up_msg_t m, c;
    uint8_t buf[512];
    (void)state;

    /* The CALL record carries the group size; the answer is rank 0's output. */
    queue_call_done(0, NULL, "rank0", 2);
    {
        shoal_msg_invoke_t inv = {.seq = ++seq};
        assert_int_equal(shoal_rt_run(CTX, fn_call_group, &inv), 0);
    }
    assert_int_equal(shoal_channel_recv(&W, &rec, buf, sizeof(buf)), 1);
    assert_int_equal(shoal_channel_decode_up(&W.lay, rec.type, buf, rec.len, &c), 0);
    assert_int_equal(c.type, SHOAL_MSG_CALL);
    assert_int_equal(c.u.call.m.group, 3);
    assert_string_equal(c.u.call.name, "callee");
    assert_int_equal(shoal_channel_recv(&W, &rec, upbuf, sizeof(upbuf)), 1);
    assert_int_equal(shoal_channel_decode_up(&W.lay, rec.type, upbuf, rec.len, &m), 0);
    assert_int_equal(call_rc, 0);
    assert_memory_equal(W.out, "rank0", 5);
    /* A CALL claiming a group beyond the limit does not decode. */
    c.u.call.m.group = SHOAL_CHANNEL_GROUP_MAX + 1;
    memcpy(buf, &c.u.call.m, sizeof(c.u.call.m));
    assert_int_equal(shoal_channel_decode_up(&W.lay, SHOAL_MSG_CALL, buf, rec.len, &m), -EPROTO);
}

/* Sends a GROUP message g followed by maplen bytes of node map, with the arena fd, on sock. */
static void send_group_msg(int sock, shoal_arena_t *a, const shoal_ctl_group_t *g, const void *map,
                           size_t maplen)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov[2] = {{(void *)g, sizeof(*g)}, {(void *)map, maplen}};
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = maplen > 0 ? 2 : 1};
    struct cmsghdr *cm;
    int fd = shoal_arena_fd(a);

    memset(&cbuf, 0, sizeof(cbuf));
    mh.msg_control = cbuf.buf;
    mh.msg_controllen = sizeof(cbuf.buf);
    cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)(sizeof(*g) + maplen));
}

/* Plays the worker's part of a group invocation: SHOAL_CTL_GROUP with the arena fd. */
static void send_group(shoal_arena_t *a, uint64_t for_seq, int rank, int size)
{
    shoal_ctl_group_t g = {.magic = SHOAL_CTL_MAGIC,
                           .type = SHOAL_CTL_GROUP,
                           .seq = for_seq,
                           .rank = rank,
                           .size = size,
                           .deadline_ns = shoal_arena_header(a)->deadline_ns,
                           .grank = rank,
                           .gsize = size,
                           .nnodes = 1};

    send_group_msg(SV[0], a, &g, NULL, 0);
}

static uint64_t in_10s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)(ts.tv_sec + 10) * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fn_rank0(shoal_ctx *c)
{
    int64_t x = 5, y = 0;
    shoal_buf b, parts[2];

    if (shoal_rank(c) != 0 || shoal_size(c) != 2)
        return shoal_error(c, "rank %d size %d", shoal_rank(c), shoal_size(c));
    /* One node: the same-node engine only, no hierarchical layer. */
    if (c->net != NULL)
        return shoal_error(c, "net on a one-node group");
    if (shoal_bcast(c, 0, "hello", 5, &b) != 0 || b.len != 5)
        return shoal_error(c, "bcast");
    if (shoal_recv(c, 1, &b) != 0 || b.len != 5 || memcmp(b.data, "from1", 5) != 0)
        return shoal_error(c, "recv");
    if (shoal_recv(c, 0, &b) != -EDEADLK)
        return shoal_error(c, "recv from self");
    if (shoal_allreduce(c, &x, &y, 1, SHOAL_INT64, SHOAL_SUM) != 0 || y != 12)
        return shoal_error(c, "allreduce");
    /* Not the root: parts may be NULL. */
    if (shoal_gather(c, 1, "g0", 2, NULL) != 0)
        return shoal_error(c, "gather");
    parts[0] = parts[1] = (shoal_buf){NULL, 0};
    if (shoal_scatter(c, 1, parts, &b) != 0 || b.len != 3 || memcmp(b.data, "to0", 3) != 0)
        return shoal_error(c, "scatter");
    return shoal_output(c, "done", 4);
}

/* Rank 1, in a child process, straight on the engine. */
static int rank1(int fd)
{
    shoal_coll_t *c;
    shoal_buf b, parts[2] = {{"to0", 3}, {"to1", 3}};
    int64_t x = 7, y = 0;

    if (shoal_coll_create(&c, fd, 1, 2, in_10s()) < 0)
        return 1;
    if (shoal_coll_bcast(c, 0, NULL, 0, &b) != 0 || b.len != 5 || memcmp(b.data, "hello", 5) != 0)
        return 2;
    if (shoal_coll_send(c, 0, "from1", 5) != 0)
        return 3;
    if (shoal_coll_allreduce(c, &x, &y, 1, SHOAL_INT64, SHOAL_SUM) != 0 || y != 12)
        return 4;
    if (shoal_coll_gather(c, 1, "g1", 2, parts) != 0 || parts[0].len != 2 ||
        memcmp(parts[0].data, "g0", 2) != 0)
        return 5;
    parts[0] = (shoal_buf){"to0", 3};
    parts[1] = (shoal_buf){"to1", 3};
    if (shoal_coll_scatter(c, 1, parts, &b) != 0 || b.len != 3)
        return 6;
    shoal_coll_destroy(c);
    return 0;
}

static void test_group_join(void **state)
{
    shoal_arena_t *a;
    shoal_up_msg_t m;
    int status, who, why;
    pid_t pid;
    (void)state;

    assert_int_equal(shoal_arena_create(&a, 2, 64u << 20, in_10s()), 0);
    pid = fork();
    if (pid == 0)
        _exit(rank1(shoal_arena_fd(a)));
    send_group(a, seq + 1, 0, 2);
    run_flags = SHOAL_INVOKE_GROUP;
    m = run(fn_rank0, NULL, 0, NULL, 0);
    run_flags = 0;
    if (m.u.done.m.rc != 0)
        fail_msg("rank 0: %.*s", (int)m.u.done.m.err_len, m.u.done.err);
    assert_int_equal(m.u.done.m.out_len, 4);
    assert_memory_equal(W.out, "done", 4);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* Rank 0 left the group after shoal_main, without blaming anyone. */
    assert_null(CTX->coll);
    assert_true(atomic_load(&shoal_arena_ctl_of(a, 0)->state) & SHOAL_ARENA_GONE);
    assert_int_equal(shoal_arena_failure(a, &who, &why), 0);
    shoal_arena_destroy(a);
}

static int fn_fails_in_group(shoal_ctx *c)
{
    if (shoal_size(c) != 1)
        return 0;
    return shoal_error(c, "no");
}

static void test_group_join_errors(void **state)
{
    shoal_arena_t *a;
    shoal_up_msg_t m;
    int who, why;
    (void)state;

    assert_int_equal(shoal_arena_create(&a, 1, 0, in_10s()), 0);
    /* A GROUP message for another invocation: the function does not run. */
    send_group(a, seq + 7, 0, 1);
    run_flags = SHOAL_INVOKE_GROUP;
    m = run(fn_echo, "x", 1, NULL, 0);
    assert_true(m.u.done.m.rc != 0);
    assert_true(m.u.done.m.flags & SHOAL_DONE_NO_GROUP);
    assert_int_equal(m.u.done.m.out_len, 0);
    assert_non_null(memmem(m.u.done.err, m.u.done.m.err_len, "cannot join the group", 21));
    /* A rank that fails records it in the arena, so that its peers stop waiting for it. */
    send_group(a, seq + 1, 0, 1);
    m = run(fn_fails_in_group, NULL, 0, NULL, 0);
    run_flags = 0;
    assert_true(m.u.done.m.rc != 0);
    assert_false(m.u.done.m.flags & SHOAL_DONE_NO_GROUP);
    assert_int_equal(shoal_arena_failure(a, &who, &why), 1);
    assert_int_equal(who, 0);
    assert_int_equal(why, SHOAL_ARENA_FAIL_LEFT);
    shoal_arena_destroy(a);
}

/* ---- groups spread over nodes (runtime/net.c) ---- */

/* A GROUP message of a spread group: global rank grank of gsize over nnodes, this node `node`. */
static shoal_ctl_group_t spread_msg(shoal_arena_t *a, uint64_t for_seq, int rank, int size,
                                    int grank, int gsize, uint32_t nnodes, uint32_t node)
{
    shoal_ctl_group_t g = {.magic = SHOAL_CTL_MAGIC,
                           .type = SHOAL_CTL_GROUP,
                           .seq = for_seq,
                           .rank = rank,
                           .size = size,
                           .deadline_ns = shoal_arena_header(a)->deadline_ns,
                           .grank = grank,
                           .gsize = gsize,
                           .nnodes = nnodes,
                           .node = node,
                           .group_id = 42};
    return g;
}

/* Sends g (+ map) and runs fn_echo: the join must fail with a clear error, the function must not
 * run and nothing of the group may be left. */
static void join_fails(shoal_arena_t *a, const shoal_ctl_group_t *g, const uint16_t *map,
                       size_t maplen)
{
    shoal_up_msg_t m;

    send_group_msg(SV[0], a, g, map, maplen);
    run_flags = SHOAL_INVOKE_GROUP;
    m = run(fn_echo, "x", 1, NULL, 0);
    run_flags = 0;
    assert_true(m.u.done.m.rc != 0);
    assert_true(m.u.done.m.flags & SHOAL_DONE_NO_GROUP);
    assert_int_equal(m.u.done.m.out_len, 0);
    assert_non_null(memmem(m.u.done.err, m.u.done.m.err_len, "cannot join the group", 21));
    assert_null(CTX->net);
}

static void test_group_spread_errors(void **state)
{
    uint16_t map[8] = {0, 1, 0, 1, 0, 1, 0, 1}, bad[8];
    shoal_arena_t *a;
    shoal_ctl_group_t g;
    (void)state;

    /* Node 0 of a group of 4 over 2 nodes holds global ranks 0 and 2; this is rank 1 of it. */
    assert_int_equal(shoal_arena_create(&a, 2, 0, in_10s()), 0);
    g = spread_msg(a, seq + 1, 1, 2, 2, 4, 2, 0);
    join_fails(a, &g, NULL, 0); /* the map is missing */
    g.seq = seq + 1;
    join_fails(a, &g, map, 6); /* cut short */
    g.seq = seq + 1;
    join_fails(a, &g, map, 10); /* bytes after the map */
    memcpy(bad, map, sizeof(bad));
    bad[3] = 2; /* a node index >= nnodes */
    g.seq = seq + 1;
    join_fails(a, &g, bad, 8);
    bad[3] = 0; /* three ranks on node 0, whose arena has two */
    g.seq = seq + 1;
    join_fails(a, &g, bad, 8);
    memset(bad, 0, sizeof(bad)); /* node 1 without ranks */
    bad[2] = 0;
    g.seq = seq + 1;
    join_fails(a, &g, bad, 8);
    g = spread_msg(a, seq + 1, 1, 2, 1, 4, 2, 0); /* global rank 1 is on node 1 */
    join_fails(a, &g, map, 8);
    g = spread_msg(a, seq + 1, 0, 2, 2, 4, 2, 0); /* global rank 2 is local rank 1, not 0 */
    join_fails(a, &g, map, 8);
    g = spread_msg(a, seq + 1, 1, 2, 2, 4, 2, 2); /* node >= nnodes */
    join_fails(a, &g, map, 8);
    g = spread_msg(a, seq + 1, 1, 2, 4, 4, 2, 0); /* grank >= gsize */
    join_fails(a, &g, map, 8);
    g = spread_msg(a, seq + 1, 1, 2, 2, -4, 2, 0); /* negative gsize */
    join_fails(a, &g, map, 8);
    g = spread_msg(a, seq + 1, 1, 2, 2, 4, 5, 0); /* more nodes than ranks */
    join_fails(a, &g, map, 8);
    g = spread_msg(a, seq + 1, 1, 2, 2, 4, 0, 0); /* no node at all */
    join_fails(a, &g, NULL, 0);
    g = spread_msg(a, seq + 1, 1, 2, 0, 2, 1, 0); /* one node, but grank != rank */
    join_fails(a, &g, NULL, 0);
    g = spread_msg(a, seq + 1, 1, 2, 1, 3, 1, 0); /* one node, but gsize != size */
    join_fails(a, &g, NULL, 0);
    g = spread_msg(a, seq + 1, 1, 2, 2, SHOAL_CHANNEL_GROUP_MAX + 1, 2, 0); /* too large */
    join_fails(a, &g, map, 8);
    shoal_arena_destroy(a);
}

#define SP_N 3 /* instances: global ranks 0 and 2 on node 0, 1 on node 1 */

/* Every collective across the two nodes, checked in each rank. */
static int fn_spread(shoal_ctx *c)
{
    static const char scat[] = "to-0to-1to-2";
    int me = shoal_rank(c), n = shoal_size(c);
    char msg[32], want[32];
    shoal_buf b, parts[SP_N], send[SP_N], recv[SP_N];
    int64_t x = me + 1, y = 0;
    double d = 0.5 * me, dy = 0;

    if (n != SP_N || me < 0 || me >= n || c->net == NULL)
        return shoal_error(c, "rank %d size %d net %p", me, n, (void *)c->net);
    if (shoal_barrier(c) != 0)
        return shoal_error(c, "barrier");
    if (shoal_bcast(c, 2, "from-rank-2", me == 2 ? 11 : 0, &b) != 0 || b.len != 11 ||
        memcmp(b.data, "from-rank-2", 11) != 0)
        return shoal_error(c, "bcast");
    if (shoal_allreduce(c, &x, &y, 1, SHOAL_INT64, SHOAL_SUM) != 0 || y != 6)
        return shoal_error(c, "allreduce %lld", (long long)y);
    if (shoal_reduce(c, 1, &d, &dy, 1, SHOAL_DOUBLE, SHOAL_SUM) != 0 || (me == 1 && dy != 1.5))
        return shoal_error(c, "reduce");
    snprintf(msg, sizeof(msg), "gather-%d", me);
    if (shoal_gather(c, 1, msg, strlen(msg), parts) != 0)
        return shoal_error(c, "gather");
    for (int i = 0; me == 1 && i < n; i++) {
        snprintf(want, sizeof(want), "gather-%d", i);
        if (parts[i].len != strlen(want) || memcmp(parts[i].data, want, parts[i].len) != 0)
            return shoal_error(c, "gather part %d", i);
    }
    for (int i = 0; i < n; i++)
        parts[i] = (shoal_buf){&scat[4 * i], (size_t)(i == 1 ? 0 : 4)};
    if (shoal_scatter(c, 0, parts, &b) != 0 || b.len != (me == 1 ? 0u : 4u) ||
        (me != 1 && memcmp(b.data, &scat[4 * me], 4) != 0))
        return shoal_error(c, "scatter");
    for (int j = 0; j < n; j++)
        send[j] = (shoal_buf){"abcdefghij", (size_t)((me * 3 + j) % 4)};
    if (shoal_shuffle(c, send, recv) != 0)
        return shoal_error(c, "shuffle");
    for (int j = 0; j < n; j++)
        if (recv[j].len != (size_t)((j * 3 + me) % 4) ||
            memcmp(recv[j].data, "abcdefghij", recv[j].len) != 0)
            return shoal_error(c, "shuffle part %d", j);
    snprintf(msg, sizeof(msg), "p2p-%d", me);
    if (shoal_send(c, (me + 1) % n, msg, strlen(msg)) != 0)
        return shoal_error(c, "send");
    snprintf(want, sizeof(want), "p2p-%d", (me + n - 1) % n);
    if (shoal_recv(c, (me + n - 1) % n, &b) != 0 || b.len != strlen(want) ||
        memcmp(b.data, want, b.len) != 0)
        return shoal_error(c, "recv");
    if (shoal_recv(c, me, &b) != -EDEADLK)
        return shoal_error(c, "recv from self");
    if (shoal_barrier(c) != 0)
        return shoal_error(c, "last barrier");
    snprintf(msg, sizeof(msg), "ok-%d", me);
    return shoal_output(c, msg, strlen(msg));
}

/* Rank 1 of the spread group returns at once with an error: the others must fail promptly. */
static int fn_spread_fail(shoal_ctx *c)
{
    int64_t x = 1, y;
    int r;

    if (shoal_rank(c) == 1)
        return shoal_error(c, "rank 1 gives up");
    r = shoal_allreduce(c, &x, &y, 1, SHOAL_INT64, SHOAL_SUM);
    return shoal_error(c, "allreduce: %d", r);
}

struct sp_inst {
    shoal_channel_t W, I;
    int sv[2];
    pid_t pid;
    int node, done, rc;
    char out[64];
};

struct sp_msg {
    int src, dst, taken;
    uint64_t tag, off, len;
};

struct sp_pending {
    int active, src;
    uint64_t xseq, tag;
};

static uint64_t data_base(shoal_arena_t *a)
{
    return (uint64_t)(shoal_arena_data(a) - (uint8_t *)shoal_arena_header(a));
}

static void answer(struct sp_inst *in, uint64_t xseq, int err, uint64_t off, uint64_t len)
{
    shoal_msg_xdone_t d = {.xseq = xseq, .err = err, .off = off, .len = len};
    struct iovec iov = {&d, sizeof(d)};

    assert_int_equal(shoal_channel_send(&in->W, SHOAL_MSG_XDONE, &iov, 1), 0);
    shoal_channel_wake_instance(&in->W);
}

/* Runs fn as the 3 ranks, the test playing both nodes' workers: it moves XSEND bytes from one
 * node's arena into space allocated in the other's and answers XRECVs with them. With
 * abort_on_fail, a rank's failed DONE aborts every arena (as the workers propagate a failure). */
static void run_spread(shoal_main_fn fn, int abort_on_fail, struct sp_inst *in)
{
    static const uint16_t map[SP_N] = {0, 1, 0};
    static struct sp_msg msgs[256];
    struct sp_pending pend[SP_N];
    shoal_arena_t *a[2];
    uint64_t limit = in_10s(), inv_seq = 1000;
    int nmsg = 0, left = SP_N;

    memset(pend, 0, sizeof(pend));
    assert_int_equal(shoal_arena_create(&a[0], 2, 64u << 20, in_10s()), 0);
    assert_int_equal(shoal_arena_create(&a[1], 1, 64u << 20, in_10s()), 0);
    for (int g = 0; g < SP_N; g++) {
        shoal_rt_ctx *ctx = malloc(sizeof(*ctx));
        shoal_msg_invoke_t inv = {.seq = inv_seq, .flags = SHOAL_INVOKE_GROUP};
        int node = map[g], lr = g == 2 ? 1 : 0;
        shoal_ctl_group_t m =
            spread_msg(a[node], inv_seq, lr, node == 0 ? 2 : 1, g, SP_N, 2, (uint32_t)node);

        assert_non_null(ctx);
        memset(&in[g], 0, sizeof(in[g]));
        in[g].node = node;
        assert_int_equal(shoal_channel_create(&in[g].W, BODY), 0);
        assert_int_equal(shoal_channel_open(&in[g].I, dup(in[g].W.fd)), 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, in[g].sv), 0);
        fcntl(in[g].sv[0], F_SETFL, O_NONBLOCK);
        send_group_msg(in[g].sv[0], a[node], &m, map, sizeof(map));
        shoal_rt_init(ctx, &in[g].I, in[g].sv[1]);
        fflush(NULL);
        if ((in[g].pid = fork()) == 0)
            _exit(shoal_rt_run(ctx, fn, &inv) == 0 ? 0 : 3);
        free(ctx);
    }
    while (left > 0) {
        assert_true(shoal_util_now_ns() < limit);
        for (int g = 0; g < SP_N; g++) {
            struct sp_inst *p = &in[g];
            shoal_ring_rec_t rec;
            shoal_msg_xfer_t x;
            shoal_up_msg_t m;

            while (shoal_channel_recv(&p->W, &rec, upbuf, sizeof(upbuf)) == 1) {
                if (rec.type == SHOAL_MSG_XSEND || rec.type == SHOAL_MSG_XRECV) {
                    assert_int_equal(rec.len, sizeof(x));
                    memcpy(&x, upbuf, sizeof(x));
                    assert_true(x.node < 2 && (int)x.node != p->node);
                }
                if (rec.type == SHOAL_MSG_XSEND) {
                    shoal_arena_t *from = a[p->node], *to = a[x.node];
                    uint64_t base = data_base(from), doff = 0;
                    const void *src =
                        x.off >= base ? shoal_arena_view(from, x.off - base, x.len) : NULL;

                    assert_non_null(src);
                    for (int i = 0; i < nmsg; i++) /* each (src, dst, tag) once */
                        assert_false(msgs[i].src == p->node && msgs[i].dst == (int)x.node &&
                                     msgs[i].tag == x.tag);
                    if (x.len > 0) {
                        assert_int_equal(shoal_arena_alloc(to, x.len, &doff), 0);
                        memcpy(shoal_arena_view(to, doff, x.len), src, x.len);
                    }
                    assert_true(nmsg < 256);
                    msgs[nmsg++] = (struct sp_msg){p->node, (int)x.node, 0, x.tag, doff, x.len};
                    answer(p, x.xseq, 0, 0, 0);
                } else if (rec.type == SHOAL_MSG_XRECV) {
                    assert_false(pend[g].active);
                    pend[g] = (struct sp_pending){1, (int)x.node, x.xseq, x.tag};
                } else {
                    assert_int_equal(
                        shoal_channel_decode_up(&p->W.lay, rec.type, upbuf, rec.len, &m), 0);
                    if (m.type != SHOAL_MSG_DONE)
                        continue;
                    p->done = 1;
                    p->rc = m.u.done.m.rc;
                    if (m.u.done.m.rc == 0 && m.u.done.m.out_len < sizeof(p->out))
                        memcpy(p->out, p->W.out, m.u.done.m.out_len);
                    else
                        snprintf(p->out, sizeof(p->out), "%.*s", (int)m.u.done.m.err_len,
                                 m.u.done.err);
                    if (m.u.done.m.rc != 0 && abort_on_fail)
                        for (int k = 0; k < 2; k++)
                            shoal_arena_abort(a[k], -1, SHOAL_ARENA_FAIL_LEFT);
                    left--;
                }
            }
            /* Match waiting XRECVs with arrived bytes. */
            for (int i = 0; pend[g].active && i < nmsg; i++) {
                struct sp_msg *s = &msgs[i];

                if (!s->taken && s->src == pend[g].src && s->dst == p->node &&
                    s->tag == pend[g].tag) {
                    s->taken = 1;
                    pend[g].active = 0;
                    answer(p, pend[g].xseq, 0, data_base(a[p->node]) + s->off, s->len);
                }
            }
        }
        usleep(100);
    }
    for (int g = 0; g < SP_N; g++) {
        int status;

        assert_int_equal(waitpid(in[g].pid, &status, 0), in[g].pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        shoal_channel_close(&in[g].I);
        shoal_channel_close(&in[g].W);
        close(in[g].sv[0]);
        close(in[g].sv[1]);
    }
    shoal_arena_destroy(a[0]);
    shoal_arena_destroy(a[1]);
}

static void test_group_spread(void **state)
{
    struct sp_inst in[SP_N];
    char want[16];
    (void)state;

    run_spread(fn_spread, 0, in);
    for (int g = 0; g < SP_N; g++) {
        if (in[g].rc != 0)
            fail_msg("rank %d: %s", g, in[g].out);
        snprintf(want, sizeof(want), "ok-%d", g);
        assert_string_equal(in[g].out, want);
    }
}

static void test_group_spread_fail(void **state)
{
    struct sp_inst in[SP_N];
    uint64_t t0 = shoal_util_now_ns();
    (void)state;

    /* Ranks 0 and 2 wait in an allreduce for rank 1 on the other node, which fails: they end
     * with -ECONNABORTED long before the 10 s deadline. */
    run_spread(fn_spread_fail, 1, in);
    assert_true(shoal_util_now_ns() - t0 < 3000000000ull);
    for (int g = 0; g < SP_N; g++)
        assert_true(in[g].rc != 0);
    assert_non_null(strstr(in[0].out, "allreduce: -103"));
    assert_non_null(strstr(in[2].out, "allreduce: -103"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io),
        cmocka_unit_test(test_meta),
        cmocka_unit_test(test_log),
        cmocka_unit_test(test_call),
        cmocka_unit_test(test_group),
        cmocka_unit_test(test_call_group),
        cmocka_unit_test(test_group_join),
        cmocka_unit_test(test_group_join_errors),
        cmocka_unit_test(test_group_spread_errors),
        cmocka_unit_test(test_group_spread),
        cmocka_unit_test(test_group_spread_fail),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
