/*
 * ring - a single-producer single-consumer ring of length-prefixed records in shared memory.
 *
 * The shared part is two 64-bit byte counters, `head` (written only by the producer) and `tail`
 * (written only by the consumer), and a data array of `cap` bytes (a power of two, at least 64).
 * Counters only ever grow; a position p lives at data[p & (cap - 1)]. A record is an 8-byte
 * header - u32 payload length, u16 type (nonzero), u16 check = (len ^ (len >> 16) ^ type ^
 * 0x5a5a) & 0xffff - followed by the payload, padded to a multiple of 8 bytes. Headers sit at
 * 8-byte aligned positions and cap is a multiple of 8, so a header never wraps; a payload may wrap
 * and is copied in two pieces.
 *
 * Memory order: the producer writes the record bytes and then publishes them with a release
 * store of head; the consumer reads head with an acquire load, so the bytes are visible before it
 * reads them, copies the record out and then frees the space with a release store of tail; the
 * producer's acquire load of tail orders its reuse of the space after the consumer's reads.
 *
 * Trust: each side keeps its own position privately (`pos`) and never re-reads it from shared
 * memory, and it validates the other side's counter before using it: the peer may be hostile and
 * may change anything in shared memory at any time. A consumer copies a record header out before
 * checking it and checks it against the bytes actually published; anything inconsistent is
 * -EPROTO, after which the ring must not be used again (the peer is killed). Nothing a peer
 * writes can make these functions read or write outside the ring.
 *
 * A ring handle is used by one thread of one process.
 */
#ifndef SHOAL_TRANSPORT_RING_H
#define SHOAL_TRANSPORT_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define SHOAL_RING_HDR_SIZE 8
#define SHOAL_RING_MIN_CAP 64

/* The shared counters of one ring: each on its own cache line so that producer and consumer do
 * not false-share. Place it in shared memory and zero it before either side uses it. */
typedef struct {
    _Alignas(64) _Atomic uint64_t head; /* bytes published by the producer */
    _Alignas(64) _Atomic uint64_t tail; /* bytes released by the consumer */
} shoal_ring_ctrl_t;

/* One side's handle on a ring. Caller-allocated; fields are private. */
typedef struct {
    shoal_ring_ctrl_t *ctrl;
    uint8_t *data;
    uint64_t cap;
    uint64_t pos;   /* producer: next write position; consumer: next read position */
    uint64_t other; /* the other side's counter as last seen (validated) */
} shoal_ring_t;

/* A record as decoded: type and payload length. */
typedef struct {
    uint16_t type;
    uint32_t len;
} shoal_ring_rec_t;

/* Attaches a handle to a ring whose counters are ctrl and whose data is cap bytes at data.
 * cap must be a power of two >= SHOAL_RING_MIN_CAP (-EINVAL otherwise). The handle starts at the
 * position the ring is at: a producer at the current head, a consumer at the current tail, both
 * read once here (so attach before the peer starts). */
int shoal_ring_attach_producer(shoal_ring_t *r, shoal_ring_ctrl_t *ctrl, void *data, uint64_t cap);
int shoal_ring_attach_consumer(shoal_ring_t *r, shoal_ring_ctrl_t *ctrl, void *data, uint64_t cap);

/* The largest payload a ring of this capacity can carry in one record. */
uint32_t shoal_ring_max_payload(const shoal_ring_t *r);

/* Producer: appends one record made of the concatenation of n iovecs and publishes it.
 * -EAGAIN when there is not room for it now, -EMSGSIZE when it can never fit, -EINVAL for type 0,
 * -EPROTO when the consumer's tail is impossible (corrupt peer). */
int shoal_ring_pushv(shoal_ring_t *r, uint16_t type, const struct iovec *iov, int n);
int shoal_ring_push(shoal_ring_t *r, uint16_t type, const void *payload, uint32_t len);

/* Producer: bytes free right now (reloads tail); -EPROTO for a corrupt tail. */
int64_t shoal_ring_space(shoal_ring_t *r);

/* Consumer: copies the next record's payload into buf (size bytes) and releases it. Returns 1
 * with *rec filled, 0 when the ring is empty, -EPROTO when the published bytes are not a valid
 * record or the record is larger than size (a corrupt or hostile producer). */
int shoal_ring_pop(shoal_ring_t *r, shoal_ring_rec_t *rec, void *buf, size_t size);

/* Consumer: whether a record is published and not yet popped (an acquire load of head). */
int shoal_ring_readable(shoal_ring_t *r);

/* Pure: checks the 8-byte record header hdr given that avail bytes are published from its start
 * and that payloads may be at most max_len bytes. Returns the record's total size in the ring
 * (header + padded payload) and fills *rec, or -EPROTO. */
int64_t shoal_ring_check_hdr(const uint8_t hdr[SHOAL_RING_HDR_SIZE], uint64_t avail,
                             uint32_t max_len, shoal_ring_rec_t *rec);

/* Pure: decodes the first record of a linear byte buffer holding ring contents (what a consumer
 * sees between tail and head, unwrapped). Returns the bytes it occupies and points *payload at its
 * payload inside buf, or -EPROTO. Safe for arbitrary input (the fuzzing entry point). */
int64_t shoal_ring_decode(const uint8_t *buf, size_t len, uint32_t max_len, shoal_ring_rec_t *rec,
                          const uint8_t **payload);

/* Encodes a record header (used by push; exposed for tests and fuzz corpora). */
void shoal_ring_encode_hdr(uint8_t hdr[SHOAL_RING_HDR_SIZE], uint16_t type, uint32_t len);

#endif
