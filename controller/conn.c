/*
 * conn - see conn.h.
 *
 * Memory: the shoal_conn_t embeds its uv_tcp_t and its uv_check_t and is freed once both
 * handles' close callbacks ran. libuv runs the callbacks of cancelled writes before the TCP
 * handle's close callback, so a queued write request may point back at its connection for its
 * whole life.
 *
 * Corking: small frames (all but large artifacts) are copied into a per-connection buffer and
 * sent by a check handle once per loop iteration, in one write: INVOKEs that h2o produced for
 * several requests in one iteration cost the kernel one send and the worker one wakeup. A copy
 * of a few hundred bytes of meta and a small input is far cheaper than a system call each.
 */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/trace.h"
#include "controller/json.h"

#define READ_BUF 65536
#define MAX_META_PIECES 6
/* Frames up to this size are corked; the cork is flushed before it would grow beyond CORK_MAX. */
#define CORK_FRAME_MAX (64u << 10)
#define CORK_MAX (512u << 10)

struct shoal_conn {
    uv_tcp_t tcp;         /* first: the handle pointer is the connection pointer */
    uv_check_t check;     /* flushes the cork after the poll phase... */
    uv_prepare_t prepare; /* ...or, for frames corked after it (close callbacks), before the next */
    int open_handles;
    const shoal_conn_cbs_t *cbs;
    void *opaque;
    shoal_frame_reader_t *reader;
    int closing;
    int write_err; /* a flush outside the check callback failed: reported from there */
    uint64_t last_rx;
    uint8_t *cork;
    size_t cork_len, cork_cap;
    char peer[64];
    char rbuf[READ_BUF];
};

/* A queued remainder of one frame: `copy` holds what had to be copied, `owned` (if any) is the
 * caller's data buffer handed over to us and sent after it. */
typedef struct {
    uv_write_t req;
    shoal_conn_t *c;
    void *owned;
    void (*owned_free)(void *);
    size_t copy_len;
    uint8_t copy[];
} wreq_t;

static void start_close(shoal_conn_t *c, int reason);

static void on_closed(uv_handle_t *h)
{
    shoal_conn_t *c = h->data;
    void (*released)(void *) = c->cbs->on_released;
    void *opaque = c->opaque;

    if (--c->open_handles > 0)
        return;
    shoal_frame_reader_destroy(c->reader);
    free(c->cork);
    free(c);
    if (released)
        released(opaque);
}

static void start_close(shoal_conn_t *c, int reason)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->cbs->on_close(c, c->opaque, reason);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    uv_close((uv_handle_t *)&c->check, on_closed);
    uv_close((uv_handle_t *)&c->prepare, on_closed);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    shoal_conn_t *c = (shoal_conn_t *)h;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static int frame_cb(void *opaque, const shoal_frame_hdr *hdr, const uint8_t *payload)
{
    shoal_conn_t *c = opaque;
    int err;

    if (c->closing)
        return -ECANCELED;
    if ((err = c->cbs->on_frame(c, c->opaque, hdr, payload)) != 0)
        return err;
    /* on_frame may have closed us; stop delivering the rest of this read. */
    return c->closing ? -ECANCELED : 0;
}

_Static_assert(SHOAL_FRAME_VERSION == 2, "update decode_error's version message");

static const char *decode_error(int err)
{
    switch (err) {
    case -EPROTO:
        return "malformed frame header";
    case -EPROTONOSUPPORT:
        /* The number matters to whoever reads the log on either side (asserted above). */
        return "unsupported frame protocol version (this controller speaks version 2)";
    case -EMSGSIZE:
        return "frame too large";
    case -ENOMEM:
        return "out of memory";
    default:
        return NULL;
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    shoal_conn_t *c = (shoal_conn_t *)s;
    int err;

    if (nread < 0) {
        start_close(c, (int)nread);
        return;
    }
    if (nread == 0 || c->closing)
        return;
    c->last_rx = uv_now(s->loop);
    err = shoal_frame_reader_feed(c->reader, (const uint8_t *)buf->base, (size_t)nread);
    if (err == 0 || c->closing)
        return;
    /* A decode error is the peer's fault: tell it why before hanging up. */
    if (decode_error(err) != NULL) {
        SHOAL_WARN("worker connection %s: %s", c->peer, decode_error(err));
        shoal_conn_close(c, decode_error(err));
        return;
    }
    start_close(c, err);
}

int shoal_conn_accept(uv_stream_t *server, uint32_t max_payload, const shoal_conn_cbs_t *cbs,
                      void *opaque, shoal_conn_t **out)
{
    shoal_conn_t *c = calloc(1, sizeof(*c));
    struct sockaddr_storage ss;
    int err, sslen = sizeof(ss);

    if (c == NULL)
        return UV_ENOMEM;
    c->cbs = cbs;
    c->opaque = opaque;
    if ((err = uv_tcp_init(server->loop, &c->tcp)) < 0) {
        free(c);
        return err;
    }
    if ((c->reader = shoal_frame_reader_create(max_payload, frame_cb, c)) == NULL) {
        err = UV_ENOMEM;
        goto fail;
    }
    if ((err = uv_accept(server, (uv_stream_t *)&c->tcp)) < 0)
        goto fail;
    uv_tcp_nodelay(&c->tcp, 1);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
            snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
            snprintf(c->peer, sizeof(c->peer), "[%s]:%d", ip, port);
        }
    }
    c->last_rx = uv_now(server->loop);
    if ((err = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb)) < 0)
        goto fail;
    uv_check_init(server->loop, &c->check);
    uv_prepare_init(server->loop, &c->prepare);
    c->tcp.data = c->check.data = c->prepare.data = c;
    c->open_handles = 3;
    *out = c;
    return 0;
fail:
    /* Not yet announced to the owner: close quietly (no on_close, no on_released). */
    shoal_frame_reader_destroy(c->reader);
    c->reader = NULL;
    uv_close((uv_handle_t *)&c->tcp, (uv_close_cb)free);
    return err;
}

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;

    if (w->owned_free)
        w->owned_free(w->owned);
    if (status < 0 && status != UV_ECANCELED && !w->c->closing) {
        SHOAL_WARN("worker connection %s: write failed: %s", w->c->peer, uv_strerror(status));
        start_close(w->c, status);
    }
    free(w);
}

/* Copies the n buffers into dst, less their first skip bytes (what the socket already took). */
static void copy_after(uint8_t *dst, const uv_buf_t *bufs, unsigned n, size_t skip)
{
    for (unsigned i = 0; i < n; i++) {
        size_t blen = bufs[i].len;
        if (skip >= blen) {
            skip -= blen;
            continue;
        }
        memcpy(dst, bufs[i].base + skip, blen - skip);
        dst += blen - skip;
        skip = 0;
    }
}

/* Queues what the socket did not take (skip bytes of the n buffers were written) as one copied
 * write; 0 or -errno (then the stream is unusable if part of it was written). */
static int queue_rest(shoal_conn_t *c, const uv_buf_t *bufs, unsigned n, size_t skip);

static void arm_flush(shoal_conn_t *c);

/* Sends the cork: one try_write, the rest queued. Errors are left for the check callback. */
static void cork_flush(shoal_conn_t *c)
{
    size_t written = 0;
    int err;

    if (c->cork_len == 0 || c->closing)
        return;
    uv_buf_t b = uv_buf_init((char *)c->cork, (unsigned)c->cork_len);
    if (c->tcp.write_queue_size == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (r > 0)
            written = (size_t)r;
    }
    if (written < c->cork_len && (err = queue_rest(c, &b, 1, written)) < 0) {
        c->write_err = err;
        arm_flush(c);
    }
    c->cork_len = 0;
    /* A burst's buffer is not kept around. */
    if (c->cork_cap > CORK_FRAME_MAX * 2) {
        free(c->cork);
        c->cork = NULL;
        c->cork_cap = 0;
    }
}

static void flush_now(shoal_conn_t *c)
{
    uv_check_stop(&c->check);
    uv_prepare_stop(&c->prepare);
    cork_flush(c);
    if (c->write_err != 0 && !c->closing) {
        SHOAL_WARN("worker connection %s: write failed: %s", c->peer, uv_strerror(c->write_err));
        start_close(c, c->write_err);
    }
}

static void on_check(uv_check_t *h)
{
    flush_now(h->data);
}

static void on_prepare(uv_prepare_t *h)
{
    flush_now(h->data);
}

static void arm_flush(shoal_conn_t *c)
{
    uv_check_start(&c->check, on_check);
    uv_prepare_start(&c->prepare, on_prepare);
}

/* Appends a frame to the cork; -ENOMEM when it cannot grow. */
static int cork_frame(shoal_conn_t *c, const uv_buf_t *bufs, unsigned n, size_t total)
{
    if (c->cork_len + total > CORK_MAX)
        cork_flush(c);
    if (c->cork_cap - c->cork_len < total) {
        size_t cap = c->cork_cap ? c->cork_cap : 16384;
        uint8_t *nb;
        while (cap - c->cork_len < total)
            cap *= 2;
        if ((nb = realloc(c->cork, cap)) == NULL)
            return -ENOMEM;
        c->cork = nb;
        c->cork_cap = cap;
    }
    for (unsigned i = 0; i < n; i++) {
        memcpy(c->cork + c->cork_len, bufs[i].base, bufs[i].len);
        c->cork_len += bufs[i].len;
    }
    arm_flush(c);
    return 0;
}

int shoal_conn_send(shoal_conn_t *c, uint8_t type, uint32_t id, const uv_buf_t *meta,
                    unsigned nmeta, const void *data, size_t len, void (*data_free)(void *))
{
    uint8_t prefix[SHOAL_FRAME_PREFIX_SIZE];
    uv_buf_t bufs[MAX_META_PIECES + 2];
    size_t meta_len = 0, head_len, written = 0;
    unsigned n = 0;
    int err;

    if (c->closing || nmeta > MAX_META_PIECES) {
        err = c->closing ? -EPIPE : -EINVAL;
        goto fail;
    }
    for (unsigned i = 0; i < nmeta; i++)
        meta_len += meta[i].len;
    if ((err = shoal_frame_encode(prefix, type, id, meta_len, len)) < 0)
        goto fail;
    bufs[n++] = uv_buf_init((char *)prefix, sizeof(prefix));
    for (unsigned i = 0; i < nmeta; i++)
        if (meta[i].len > 0)
            bufs[n++] = meta[i];
    if (len > 0)
        bufs[n++] = uv_buf_init((char *)data, (unsigned)len);
    head_len = sizeof(prefix) + meta_len;

    /* uv_buf_t lengths are unsigned int: a larger data part goes through the copy path below in
     * pieces of its own. Frames are bounded far below 4 GiB, so this never happens in practice. */
    if (len > UINT32_MAX) {
        err = -EMSGSIZE;
        goto fail;
    }
    if (data_free == NULL && head_len + len <= CORK_FRAME_MAX &&
        cork_frame(c, bufs, n, head_len + len) == 0)
        return 0;
    /* A large frame (or one that could not be corked) goes after what is corked. */
    cork_flush(c);
    if (c->tcp.write_queue_size == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        /* Any error other than "would block" will surface again from uv_write below, through
         * the write callback, so the caller is never re-entered from here. */
        if (r > 0)
            written = (size_t)r;
    }
    if (written == head_len + len) {
        if (data_free)
            data_free((void *)data);
        return 0;
    }

    /* Queue the rest: the unwritten part of prefix+meta always by copy; the data by reference
     * when we own it, else by copy. */
    size_t head_left = written < head_len ? head_len - written : 0;
    size_t data_done = written > head_len ? written - head_len : 0;
    size_t data_left = len - data_done;
    size_t copy_len = head_left + (data_free ? 0 : data_left);
    wreq_t *w = malloc(sizeof(*w) + copy_len);
    if (w == NULL) {
        /* Part of the frame may be on the wire already: the stream is unusable. */
        err = -ENOMEM;
        if (written > 0)
            shoal_conn_close(c, NULL);
        goto fail;
    }
    w->c = c;
    w->owned = data_free ? (void *)data : NULL;
    w->owned_free = data_free;
    w->copy_len = copy_len;
    /* The owned data part (the last buffer) is not copied. */
    copy_after(w->copy, bufs, data_free && len > 0 ? n - 1 : n, written);
    uv_buf_t out[2];
    unsigned nout = 0;
    if (copy_len > 0)
        out[nout++] = uv_buf_init((char *)w->copy, (unsigned)copy_len);
    if (data_free && data_left > 0)
        out[nout++] = uv_buf_init((char *)data + data_done, (unsigned)data_left);
    if ((err = uv_write(&w->req, (uv_stream_t *)&c->tcp, out, nout, write_cb)) < 0) {
        free(w);
        if (written > 0)
            shoal_conn_close(c, NULL);
        err = -EPIPE;
        goto fail;
    }
    return 0;
fail:
    if (data_free)
        data_free((void *)data);
    return err;
}

static int queue_rest(shoal_conn_t *c, const uv_buf_t *bufs, unsigned n, size_t skip)
{
    size_t total = 0;
    wreq_t *w;
    int err;

    for (unsigned i = 0; i < n; i++)
        total += bufs[i].len;
    if ((w = malloc(sizeof(*w) + (total - skip))) == NULL)
        return -ENOMEM;
    w->c = c;
    w->owned = NULL;
    w->owned_free = NULL;
    w->copy_len = total - skip;
    copy_after(w->copy, bufs, n, skip);
    uv_buf_t out = uv_buf_init((char *)w->copy, (unsigned)w->copy_len);
    if ((err = uv_write(&w->req, (uv_stream_t *)&c->tcp, &out, 1, write_cb)) < 0) {
        free(w);
        return err;
    }
    return 0;
}

void shoal_conn_close(shoal_conn_t *c, const char *msg)
{
    if (c->closing)
        return;
    /* Frames sent before the error go before it (best effort, as the error itself). */
    cork_flush(c);
    if (msg != NULL && c->tcp.write_queue_size == 0) {
        /* Best effort, never blocking: if the socket cannot take it whole now, the peer learns
         * of the problem from the closed connection alone. */
        shoal_json_t j;
        uint8_t prefix[SHOAL_FRAME_PREFIX_SIZE];
        shoal_json_init(&j);
        shoal_json_lit(&j, "{\"error\":");
        shoal_json_cstr(&j, msg);
        shoal_json_lit(&j, "}");
        if (shoal_json_error(&j) == 0 &&
            shoal_frame_encode(prefix, SHOAL_FRAME_ERROR, 0, j.len, 0) == 0) {
            uv_buf_t b[2] = {uv_buf_init((char *)prefix, sizeof(prefix)),
                             uv_buf_init(j.buf, (unsigned)j.len)};
            (void)uv_try_write((uv_stream_t *)&c->tcp, b, 2);
        }
        shoal_json_free(&j);
    }
    start_close(c, 0);
}

void shoal_conn_set_max_payload(shoal_conn_t *c, uint32_t max_payload)
{
    shoal_frame_reader_set_max(c->reader, max_payload);
}

size_t shoal_conn_queued(const shoal_conn_t *c)
{
    return c->tcp.write_queue_size + c->cork_len;
}

const char *shoal_conn_peer(const shoal_conn_t *c)
{
    return c->peer;
}

uint64_t shoal_conn_last_rx(const shoal_conn_t *c)
{
    return c->last_rx;
}

int shoal_conn_closing(const shoal_conn_t *c)
{
    return c->closing;
}

int shoal_conn_local_port(const uv_tcp_t *tcp)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (uv_tcp_getsockname(tcp, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}
