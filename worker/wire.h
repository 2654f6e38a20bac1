/*
 * wire - the worker's incremental reader of controller frames (transport/frame.h) that lets a
 * frame's data land where it is finally needed: an INVOKE's input straight in the instance's
 * input area, a CALL_RESULT's output in the caller's call area, an ARTIFACT in its own buffer.
 *
 * The reader gathers the 20-byte prefix and the meta (bounded by SHOAL_FRAME_META_MAX) in its
 * own buffers, then asks on_meta where the frame's data goes; on_frame runs when the data is in.
 * The socket reads into the buffer shoal_wire_buf names: the reader's scratch while it parses,
 * and the destination itself while a large data part is outstanding, so big payloads are read
 * from the socket once, into place.
 *
 * Used from one thread; the struct is caller-allocated and its fields are private.
 */
#ifndef SHOAL_WORKER_WIRE_H
#define SHOAL_WORKER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "transport/frame.h"

#define SHOAL_WIRE_SCRATCH (64u << 10)

typedef struct {
    /* The header and meta of a frame are in; data_len bytes of data follow. Set *dst to where
     * they go (data_len writable bytes) or leave it NULL to skip them. Nonzero stops the reader
     * and is returned from shoal_wire_feed/commit. */
    int (*on_meta)(void *opaque, const shoal_frame_hdr *hdr, const char *meta, size_t meta_len,
                   size_t data_len, uint8_t **dst);
    /* The frame is complete; data is the *dst given (NULL if skipped). Nonzero stops. */
    int (*on_frame)(void *opaque, const shoal_frame_hdr *hdr, const char *meta, size_t meta_len,
                    uint8_t *data, size_t data_len);
} shoal_wire_cbs_t;

typedef struct {
    shoal_wire_cbs_t cbs;
    void *opaque;
    uint32_t max_payload;
    int state;
    uint8_t prefix[SHOAL_FRAME_PREFIX_SIZE];
    size_t have; /* bytes of the current part gathered */
    shoal_frame_hdr hdr;
    char *meta;
    size_t meta_len, meta_cap;
    size_t data_len;
    uint8_t *dst;
    int direct; /* the last buffer handed out was dst itself */
    int failed;
    uint8_t scratch[SHOAL_WIRE_SCRATCH];
} shoal_wire_reader_t;

void shoal_wire_init(shoal_wire_reader_t *r, uint32_t max_payload, const shoal_wire_cbs_t *cbs,
                     void *opaque);
/* Frees the meta buffer; the reader may be re-initialised afterwards. */
void shoal_wire_free(shoal_wire_reader_t *r);
/* Where the next socket read should go, and at most how many bytes. */
void shoal_wire_buf(shoal_wire_reader_t *r, uint8_t **buf, size_t *len);
/* n bytes were read into the buffer from shoal_wire_buf. 0 or an error: a frame decode error
 * (-EPROTO, -EPROTONOSUPPORT, -EMSGSIZE), -ENOMEM, or a callback's nonzero return. */
int shoal_wire_commit(shoal_wire_reader_t *r, size_t n);
/* Consumes bytes from any buffer (not one from shoal_wire_buf with direct data). Same returns. */
int shoal_wire_feed(shoal_wire_reader_t *r, const uint8_t *buf, size_t n);
/* The current frame's destination is going away: skip the rest of its data. on_frame still runs,
 * with data NULL. */
void shoal_wire_drop_dst(shoal_wire_reader_t *r);

#endif
