/*
 * conn - one framed TCP connection between the controller and a worker (transport/frame.h), on
 * the controller's libuv loop.
 *
 * Reading: a fixed 64 KiB buffer per connection feeds a shoal_frame_reader, which hands whole
 * frames to on_frame (in place when a frame arrives within one read, so small frames cost no
 * copy); frames are bounded by max_payload before anything is allocated for them.
 *
 * Writing: shoal_conn_send copies a frame of at most 64 KiB (prefix, meta pieces, data) into the
 * connection's cork buffer, and a check handle sends the cork once per loop iteration with one
 * uv_try_write: every INVOKE of an iteration shares one system call and one wakeup of the
 * worker. Larger frames go after the cork at once: prefix, meta pieces and data with one
 * uv_try_write (one writev). Only what the socket did not take is copied into a single heap block
 * and queued with uv_write - except data the caller hands over with a free function (large
 * artifacts), which is queued without a copy. A warm invocation therefore costs no allocation in
 * the steady state and a share of one system call.
 *
 * Closing: whatever the cause (peer EOF, I/O error, a frame the owner rejects, or
 * shoal_conn_close), on_close runs exactly once, then the handle is closed and the memory freed
 * asynchronously; on_released (optional) runs after that, so an owner can wait for every
 * connection to be gone at shutdown. Errors found while writing are reported through the same
 * path from the write callback, never from inside shoal_conn_send, so a caller is never
 * re-entered.
 *
 * Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_CONN_H
#define SHOAL_CONTROLLER_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "transport/frame.h"

typedef struct shoal_conn shoal_conn_t;

typedef struct {
    /* A whole frame; payload is valid during the call only. Return 0 to go on, or a negative
     * errno to close the connection with that reason. May call shoal_conn_close itself. */
    int (*on_frame)(shoal_conn_t *c, void *opaque, const shoal_frame_hdr *hdr,
                    const uint8_t *payload);
    /* The connection is closing; reason is 0 for shoal_conn_close, UV_EOF when the peer closed,
     * a frame decode error, on_frame's return, or a libuv I/O error. Do not use c afterwards. */
    void (*on_close)(shoal_conn_t *c, void *opaque, int reason);
    /* Optional: the connection's memory is gone. */
    void (*on_released)(void *opaque);
} shoal_conn_cbs_t;

/* Accepts a pending connection on server, sets TCP_NODELAY and starts reading. cbs must outlive
 * the connection. Returns 0 or a libuv error (the pending connection is then dropped). */
int shoal_conn_accept(uv_stream_t *server, uint32_t max_payload, const shoal_conn_cbs_t *cbs,
                      void *opaque, shoal_conn_t **out);

/* Changes the largest frame payload accepted from now on (see shoal_frame_reader_set_max). */
void shoal_conn_set_max_payload(shoal_conn_t *c, uint32_t max_payload);

/* Sends one frame: meta is the concatenation of the nmeta pieces (at most 6), data follows. When
 * data_free is not NULL the connection owns data from now on and frees it with data_free once it
 * is sent (or at once if the send fails). Returns 0 (the frame is written or queued), -EMSGSIZE,
 * -EPIPE when the connection is closing, or -ENOMEM. */
int shoal_conn_send(shoal_conn_t *c, uint8_t type, uint32_t id, const uv_buf_t *meta,
                    unsigned nmeta, const void *data, size_t len, void (*data_free)(void *));
/* Best-effort ERROR frame {"error": msg} (when msg is not NULL), then closes (see above). Safe to
 * call more than once and from inside on_frame. */
void shoal_conn_close(shoal_conn_t *c, const char *msg);

/* Bytes queued for writing (corked or in libuv's queue) that the kernel has not taken yet. */
size_t shoal_conn_queued(const shoal_conn_t *c);
/* The peer as "address:port". */
const char *shoal_conn_peer(const shoal_conn_t *c);
/* uv_now() of the last bytes received (or of the accept). */
uint64_t shoal_conn_last_rx(const shoal_conn_t *c);
/* Whether the connection is closing. */
int shoal_conn_closing(const shoal_conn_t *c);

/* The local port a bound TCP handle (a listener: the HTTP server's, the scheduler's) is on,
 * which is how a caller that bound port 0 learns the one the kernel chose; -1 if unknown. */
int shoal_conn_local_port(const uv_tcp_t *tcp);

#endif
