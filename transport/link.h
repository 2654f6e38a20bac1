/*
 * link - a direct shoal_call path between two warm instances on one node, past the worker.
 *
 * The worker still pairs instances: the first shoal_call from instance A to function F goes
 * through it as always (channel.h). When it served that call locally with instance B, it may
 * *lease* B to A for the rest of A's invocation and give both a link: a small memfd that the
 * worker creates, sizes and seals (no shrink, no grow: neither peer can SIGBUS the other by
 * truncating it) and passes to both over their control sockets (SHOAL_CTL_LINK). A's later calls
 * to F whose input fits the link go straight to B through it:
 *
 *   [header page][request area: in_cap][response area: out_cap]
 *
 * - A (the caller) writes the input at the start of the request area and the request record
 *   (seq, in_len) into the header, then bumps the `req` futex word to the low 32 bits of seq
 *   (release) and FUTEX_WAKEs it only if B announced that it sleeps (callee_sleeping): the same
 *   store-buffering protocol as the channel's down ring (shoal_channel_wait_down), a sequentially
 *   consistent fence on both sides between the store and the load.
 * - B (the callee, leased) waits on `req` and on its channel's down ring at once (futex_waitv),
 *   copies the input into its own channel's input area (so that A cannot change it under the
 *   function), runs shoal_main, writes the output or the error text into the response area and
 *   the response record (seq, err, lengths), bumps `resp` and wakes A if A sleeps (A spins first).
 * - One request is in flight at a time: seq goes 1, 2, 3... on both sides, each side keeping its
 *   own count; a record whose seq or word is not the one expected is a protocol violation.
 *
 * Trust: A and B may belong to different tenants, so each treats the whole mapping as hostile.
 * Every record is read once, field by field with atomic loads, into a local, and checked against
 * the reader's own copy of the layout (shoal_link_layout_t, received from the worker), never
 * against anything in shared memory. A violation fails the call with -EPROTO and the reader
 * drops the link; nothing a peer writes can make the other crash or read outside the mapping.
 *
 * Ending a lease (worker/lease.h): the worker tells B with an UNLINK record on B's down ring; B
 * stops at a request boundary and answers UNLINKED, after which it never touches the link again.
 * Only then does the worker mark the link closed (shoal_link_close: the `closed` word plus a
 * verdict) and wake A, so A can tell, by whether `resp` caught up, if B ran its last request. A
 * closed link with a pending request and verdict 0 means "not run: call through the worker";
 * a nonzero verdict (B crashed, was killed for its timeout, the lease was revoked mid-call) fails
 * the call with that errno and the verdict's message, as the worker path would have. The worker
 * reads only the two futex words and the start stamp (for the callee's timeout), and trusts none.
 */
#ifndef SHOAL_TRANSPORT_LINK_H
#define SHOAL_TRANSPORT_LINK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHOAL_LINK_MAGIC 0x4b4e494cu /* "LINK" */
#define SHOAL_LINK_VERSION 1
#define SHOAL_LINK_PAGE 4096u
/* The largest input a direct call carries; larger ones go through the worker. */
#define SHOAL_LINK_IN_CAP (1u << 20)
/* The verdict's message, bytes. */
#define SHOAL_LINK_MSG_MAX 1024u

/* Where everything is, in bytes from the start of the memfd. Each side keeps its own copy. */
typedef struct {
    uint64_t size;
    uint64_t in_off, in_cap;   /* request area */
    uint64_t out_off, out_cap; /* response area: output, or error text */
} shoal_link_layout_t;

/* The records. Written by one side, copied out field by field by the other. */
typedef struct {
    uint64_t seq;
    uint64_t in_len;
} shoal_link_req_t;

typedef struct {
    uint64_t seq;
    int32_t err;      /* 0 or -errno (-EREMOTEIO: the function failed, -EFBIG: output too large) */
    uint32_t err_len; /* error text at the start of the response area */
    uint64_t out_len; /* output at the start of the response area (err == 0) */
} shoal_link_resp_t;

typedef struct {
    uint32_t magic;
    uint32_t version;
    shoal_link_layout_t layout;        /* for debugging only: nobody reads it back */
    _Alignas(64) _Atomic uint32_t req; /* futex word: low 32 bits of the last request's seq */
    _Atomic uint32_t callee_sleeping;  /* B: 1 while (about to be) asleep */
    shoal_link_req_t rq;
    _Alignas(64) _Atomic uint32_t resp; /* futex word: low 32 bits of the last answered seq */
    _Atomic uint32_t caller_sleeping;   /* A: 1 while (about to be) asleep */
    shoal_link_resp_t rs;
    uint64_t start_ns; /* B: CLOCK_MONOTONIC when it took the current request (advisory) */
    _Alignas(64) _Atomic uint32_t closed; /* worker: 1 = the lease ended, see the verdict */
    int32_t verdict;                      /* worker: 0, or the errno a pending call fails with */
    uint32_t msg_len;
    char msg[SHOAL_LINK_MSG_MAX];
} shoal_link_hdr_t;
_Static_assert(sizeof(shoal_link_hdr_t) <= SHOAL_LINK_PAGE, "header page");

typedef struct shoal_link shoal_link_t;

/* The layout of a link whose request area holds in_cap bytes and response area out_cap (both
 * rounded up to pages). */
void shoal_link_layout(uint64_t in_cap, uint64_t out_cap, shoal_link_layout_t *lay);
/* Pure: whether lay is a layout shoal_link_layout makes, with in_cap <= SHOAL_LINK_IN_CAP and
 * out_cap <= out_max, for a file of file_size bytes. 0 or -EPROTO. */
int shoal_link_layout_check(const shoal_link_layout_t *lay, uint64_t out_max, uint64_t file_size);

/* Worker: creates, sizes, seals and maps a new link (close-on-exec memfd, kept by the handle).
 * 0 or -errno. */
int shoal_link_create(shoal_link_t **lp, uint64_t in_cap, uint64_t out_cap);
/* Either peer: maps the link in fd (taking ownership of fd) after checking lay against the
 * file's size; out_max bounds the response area the peer accepts. 0 or -errno. */
int shoal_link_open(shoal_link_t **lp, int fd, const shoal_link_layout_t *lay, uint64_t out_max);
/* Unmaps and closes; NULL is fine. */
void shoal_link_destroy(shoal_link_t *l);

/* Worker: the memfd, to pass to the peers (still owned by the handle). */
int shoal_link_fd(const shoal_link_t *l);
const shoal_link_layout_t *shoal_link_get_layout(const shoal_link_t *l);
/* The shared header, for the wait loops in the runtime (runtime/link.c) and tests. */
shoal_link_hdr_t *shoal_link_hdr(shoal_link_t *l);
uint8_t *shoal_link_in(shoal_link_t *l);
uint8_t *shoal_link_out(shoal_link_t *l);

/* Worker: whether a request is in flight (req != resp) and, if so, its word and B's start stamp
 * (untrusted: the caller bounds it). */
int shoal_link_pending(shoal_link_t *l, uint32_t *req, uint64_t *start_ns);
/* Worker: marks the link closed with a verdict (0, or -errno and a message) and wakes both
 * peers. Idempotent: the first verdict stays. */
void shoal_link_close(shoal_link_t *l, int verdict, const char *msg, size_t len);

/* Caller: whether the worker closed the link; *verdict and the message (copied into msg, at most
 * cap bytes, *len) when it did. */
int shoal_link_closed(shoal_link_t *l, int *verdict, char *msg, size_t cap, size_t *len);
/* Caller: writes the input and the next request, then rings B. -EMSGSIZE if len > in_cap. The
 * new request's seq is returned in *seq. */
int shoal_link_request(shoal_link_t *l, const void *in, size_t len, uint64_t *seq);
/* Caller: 1 with *rs when the answer to seq is there (validated), 0 when not yet, -EPROTO for a
 * violation. */
int shoal_link_poll_resp(shoal_link_t *l, uint64_t seq, shoal_link_resp_t *rs);

/* Callee: 1 with *rq when the next request is there (validated), 0 when not yet, -EPROTO. */
int shoal_link_poll_req(shoal_link_t *l, shoal_link_req_t *rq);
/* Callee: answers the current request: err 0 with out/out_len, or -errno with msg/msg_len
 * (clamped to the response area). -EMSGSIZE if the output does not fit (nothing answered). */
int shoal_link_respond(shoal_link_t *l, int err, const void *out, size_t out_len, const char *msg,
                       size_t msg_len);

/* Pure validators (the decoders' core, exposed for the unit tests and fuzzing): a request or
 * response record as read, against the reader's layout and the seq it expects. 0 or -EPROTO. */
int shoal_link_check_req(const shoal_link_layout_t *lay, const shoal_link_req_t *rq,
                         uint64_t expect_seq);
int shoal_link_check_resp(const shoal_link_layout_t *lay, const shoal_link_resp_t *rs,
                          uint64_t expect_seq);

/* Sleeps until *word != val or another waker; up to two words (futex_waitv when there are two
 * and the kernel has it, else the first word with a 1 ms timeout so the second is polled). */
void shoal_link_futex_wait2(_Atomic uint32_t *w1, uint32_t v1, _Atomic uint32_t *w2, uint32_t v2);
void shoal_link_futex_wake(_Atomic uint32_t *w);

#endif
