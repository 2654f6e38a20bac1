/*
 * channel - the shared-memory channel between shoal-worker and one instance (a sandboxed
 * shoal-runtime process).
 *
 * One memfd per instance, created and sealed (no shrink, no grow) by the worker, mapped by both:
 *
 *   [header page][down ring][up ring][meta area][input area][output area][call area]
 *
 * - header page: magic, version, the layout (read once by the instance; the worker keeps its own
 *   copy and never trusts this one), the two rings' counters and the doorbell words.
 * - down ring (worker -> instance, 64 KiB) and up ring (instance -> worker, 256 KiB): SPSC rings
 *   of small records (see ring.h); payloads never go through them.
 * - meta area: the invocation's request metadata as a key/value blob (see shoal_kv_*).
 * - input area: the invocation's input, written once by the worker (straight from the socket).
 * - output area: the function's output, written once by the function (shoal_output_alloc) and
 *   sent from here by the worker with writev.
 * - call area: per-invocation bump space for shoal_call inputs and results.
 * The data areas are sized for the largest body and are sparse: pages cost memory only once
 * touched, and the worker punches large touched ranges out again after each invocation.
 *
 * Doorbells. Worker -> instance: the instance spins briefly on the down ring, then announces that
 * it sleeps (down_sleeping = 1), re-checks the ring and FUTEX_WAITs on down_bell; the worker
 * bumps down_bell after each push and FUTEX_WAKEs only when down_sleeping is set. Both sides put
 * a sequentially consistent fence between their store and their load (the store-buffering
 * pattern), so either the worker sees the sleeper or the sleeper sees the record. Instance ->
 * worker: the worker sets up_armed before it drains the up ring; after a push the instance clears
 * up_armed and, if it was set, sends one byte on the control socket (which the worker polls).
 * When the up ring is full, the instance sends a byte regardless and waits on up_space, which the
 * worker bumps (and wakes when up_space_waiting is set) after draining.
 *
 * Messages on the rings are fixed-layout structs in host byte order (both sides share the
 * machine) followed by variable parts. Everything the instance writes is untrusted: the worker
 * decodes up-ring records with shoal_channel_decode_up, a pure function that bounds every length
 * and offset against the worker's own layout.
 */
#ifndef SHOAL_TRANSPORT_CHANNEL_H
#define SHOAL_TRANSPORT_CHANNEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "ring.h"

#define SHOAL_CHANNEL_MAGIC 0x4e414843u /* "CHAN" */
#define SHOAL_CHANNEL_VERSION 1
#define SHOAL_CHANNEL_PAGE 4096u
#define SHOAL_CHANNEL_DOWN_CAP (64u << 10)
#define SHOAL_CHANNEL_UP_CAP (256u << 10)
/* Room for the largest INVOKE meta (SHOAL_FRAME_META_MAX) turned into a key/value blob. */
#define SHOAL_CHANNEL_META_CAP ((1u << 20) + (64u << 10))
/* The default largest input or output: the controller's default --max-body. */
#define SHOAL_CHANNEL_BODY_DEFAULT (64ull << 20)

/* Bounds on the variable parts of messages. */
#define SHOAL_CHANNEL_ERR_MAX 4096u        /* shoal_error message, bytes */
#define SHOAL_CHANNEL_HDRS_MAX (64u << 10) /* response headers blob, bytes */
#define SHOAL_CHANNEL_HDRS_COUNT 64u       /* response headers, count */
#define SHOAL_CHANNEL_LOG_LINE_MAX (64u << 10)
#define SHOAL_CHANNEL_LOG_TOTAL_MAX (10u << 20) /* per invocation */
#define SHOAL_CHANNEL_NAME_MAX 63u

/* Where everything is, in bytes from the start of the memfd. Offsets are page-aligned. */
typedef struct {
    uint64_t size;
    uint64_t body_max;
    uint64_t down_off, down_cap;
    uint64_t up_off, up_cap;
    uint64_t meta_off, meta_cap;
    uint64_t in_off, in_cap;
    uint64_t out_off, out_cap;
    uint64_t call_off, call_cap;
} shoal_channel_layout_t;

/* The header page. */
typedef struct {
    uint32_t magic;
    uint32_t version;
    shoal_channel_layout_t layout;
    shoal_ring_ctrl_t down;
    shoal_ring_ctrl_t up;
    _Alignas(64) _Atomic uint32_t down_bell; /* futex word: bumped by the worker per push */
    _Atomic uint32_t down_sleeping;          /* instance: 1 while (about to be) in FUTEX_WAIT */
    _Alignas(64) _Atomic uint32_t up_armed;  /* worker: 1 = send me a doorbell byte */
    _Alignas(64) _Atomic uint32_t up_space;  /* futex word: bumped by the worker after draining */
    _Atomic uint32_t up_space_waiting;       /* instance: 1 while waiting for up-ring space */
} shoal_channel_hdr_t;
_Static_assert(sizeof(shoal_channel_hdr_t) <= SHOAL_CHANNEL_PAGE, "header page");

enum { SHOAL_CHANNEL_WORKER, SHOAL_CHANNEL_INSTANCE };

/* One side's view of a channel. Caller-allocated; fields are read-only for users. */
typedef struct {
    int fd;
    int role;
    uint8_t *base;
    shoal_channel_layout_t lay; /* private copy: the worker's is authoritative */
    shoal_channel_hdr_t *hdr;
    shoal_ring_t tx; /* worker: down producer; instance: up producer */
    shoal_ring_t rx; /* worker: up consumer; instance: down consumer */
    uint8_t *meta, *in, *out, *call;
} shoal_channel_t;

/* Message types. Down: worker -> instance. Up: instance -> worker. */
enum {
    SHOAL_MSG_INVOKE = 1,    /* down: shoal_msg_invoke_t; meta blob in the meta area, input in
                                the input area */
    SHOAL_MSG_CALL_DONE = 2, /* down: shoal_msg_call_done_t + error text */
    SHOAL_MSG_XDONE = 3,     /* down: shoal_msg_xdone_t, the answer to an XSEND or XRECV */
    SHOAL_MSG_LINK = 4,      /* down: shoal_msg_link_t + function name; the link's memfd came
                                with SHOAL_CTL_LINK (see "Direct links" below) */
    SHOAL_MSG_UNLINK = 5,    /* down, to a leased callee: shoal_msg_unlink_t, the lease ends */
    SHOAL_MSG_DONE = 16,     /* up: shoal_msg_done_t + error text + headers blob */
    SHOAL_MSG_LOG = 17,      /* up: shoal_msg_log_t + text */
    SHOAL_MSG_CALL = 18,     /* up: shoal_msg_call_t + function name */
    SHOAL_MSG_XSEND = 19,    /* up: shoal_msg_xfer_t: send arena bytes to another node */
    SHOAL_MSG_XRECV = 20,    /* up: shoal_msg_xfer_t: take the bytes another node sent */
    SHOAL_MSG_UNLINKED = 21, /* up, from a leased callee: shoal_msg_unlink_t, it let go */
};

/*
 * Direct links (transport/link.h, worker/lease.h). After the worker served a shoal_call from
 * instance A locally with instance B, it may lease B to A for the rest of A's invocation: it
 * sends each of them SHOAL_CTL_LINK with the link's memfd on the control socket, then a LINK
 * record on the down ring (B first; A's comes right before the call's CALL_DONE, while A waits
 * for it). role says which end the instance is. The callee serves direct calls from then on with
 * meta_len bytes of its meta area (written by the worker for the first call) as their meta, at
 * depth `depth`; its logs carry `seq`. The lease ends with UNLINK to the callee, which stops at a
 * request boundary and answers UNLINKED (or sends UNLINKED by itself when the caller broke the
 * protocol); the caller learns through the link (closed word). The caller drops its links when
 * its invocation ends; it never answers.
 */
enum { SHOAL_LINK_CALLER = 1, SHOAL_LINK_CALLEE = 2 };

typedef struct {
    uint64_t id;   /* the lease, echoed in UNLINK/UNLINKED */
    uint32_t role; /* SHOAL_LINK_CALLER or SHOAL_LINK_CALLEE */
    uint32_t depth;
    uint64_t seq;                   /* callee: the INVOKE seq its direct calls' logs carry */
    uint64_t in_cap, out_cap, size; /* the link's layout (link.h shoal_link_layout) */
    uint32_t meta_len;
    uint32_t name_len; /* the function's name that follows */
} shoal_msg_link_t;

typedef struct {
    uint64_t id;
    uint32_t flags; /* UNLINKED: SHOAL_UNLINKED_* */
    uint32_t pad;
} shoal_msg_unlink_t;

/* UNLINKED: the callee saw garbage from the caller (the lease ends; nobody is killed, since
 * the worker cannot tell who is lying). */
#define SHOAL_UNLINKED_VIOLATION 1u

typedef struct {
    uint32_t magic;
    uint32_t type; /* SHOAL_CTL_LINK */
    uint64_t id;
} shoal_ctl_link_t;

/* The invocation runs as one rank of a group: a SHOAL_CTL_GROUP message with the group's arena
 * was sent on the control socket before this record (see "Groups" below). */
#define SHOAL_INVOKE_GROUP 1u

typedef struct {
    uint64_t seq;       /* invocation sequence number, echoed in DONE and LOG */
    uint64_t input_len; /* bytes at the start of the input area */
    uint32_t meta_len;  /* bytes at the start of the meta area */
    uint32_t depth;     /* shoal_call nesting of this invocation */
    uint32_t timeout_ms;
    uint32_t flags; /* SHOAL_INVOKE_* */
} shoal_msg_invoke_t;

typedef struct {
    uint64_t seq;     /* the CALL's seq */
    int32_t err;      /* 0 or -errno */
    uint32_t err_len; /* error text that follows */
    uint64_t out_off; /* result in the call area (the CALL's out_off) */
    uint64_t out_len;
} shoal_msg_call_done_t;

#define SHOAL_DONE_TOO_LARGE 1u /* out_len is the size of an output that did not fit */
/* The instance could not join its group (the error text says why); the function did not run. */
#define SHOAL_DONE_NO_GROUP 2u

typedef struct {
    uint64_t seq;
    int32_t rc;      /* shoal_main's return value */
    uint32_t status; /* 0 or 100..599 from shoal_set_meta("status") */
    uint64_t out_len;
    uint64_t out_hw;  /* highest output-area byte touched, so the worker can punch it out */
    uint64_t call_hw; /* highest call-area byte touched */
    uint32_t flags;
    uint32_t err_len; /* error text that follows */
    uint32_t hdr_len; /* headers blob that follows the error text */
    uint32_t pad;
} shoal_msg_done_t;

typedef struct {
    uint64_t seq;
} shoal_msg_log_t;

typedef struct {
    uint64_t seq; /* per instance, echoed in CALL_DONE */
    uint64_t in_off, in_len;
    uint64_t out_off, out_cap; /* where the result goes in the call area */
    uint32_t name_len;         /* function name that follows */
    uint32_t group;            /* 0: shoal_call; N (1..SHOAL_CHANNEL_GROUP_MAX): shoal_call_group
                                  of N ranks, the result being rank 0's output */
} shoal_msg_call_t;

/*
 * Cross-node transfers (issue 3): a rank of a group spread over several nodes asks its worker to
 * move bytes of its node's arena to the arena of another node of the same group. Functions get no
 * sockets; the worker does the network I/O (io_uring) on their behalf.
 *
 * XSEND: the bytes at [off, off + len) of this node's arena (offsets from the start of the memfd,
 * inside the data area) go to node `node` (an index into the group's node list, never this
 * node), labelled with tag. The rank must not write them afterwards (arena data is never reused
 * within a group anyway). The worker answers XDONE (same xseq) once they are on their way or
 * failed; err -EPIPE/-ECONNRESET when the peer node is unreachable.
 * XRECV: the next bytes node `node` sent this group with this tag. The worker places them in this
 * node's arena (space from the arena's bump allocator) and answers XDONE with off and len, at
 * once if they arrived already. off/len of the request are ignored.
 * Tags are chosen by the runtime; a (source node, destination node, tag) triple is used once per
 * group, so the worker matches by exact equality and keeps arrivals nobody asked for yet.
 * If the group fails (a rank on any node crashed, timed out or the deadline passed) the worker
 * aborts the arena (transport/arena.h), which wakes the rank; pending transfers then answer
 * XDONE with -ECONNABORTED.
 * XDONE is one down-ring record, the struct alone, followed by the instance's doorbell as for
 * CALL_DONE; its off is an offset from the start of the memfd, like XSEND's. Answered at once:
 * -EINVAL outside a spread group, for a bad node or a range outside the data area; -ENOBUFS
 * with 256 transfers of the rank already in flight (worker/group.h SHOAL_GROUP_XFERS_MAX).
 * The worker's side: worker/group.c (shoal_group_xfer) over worker/peer.h.
 */
typedef struct {
    uint64_t xseq; /* per instance, echoed in XDONE */
    uint64_t tag;
    uint64_t off, len;
    uint32_t node;
    uint32_t pad;
} shoal_msg_xfer_t;

typedef struct {
    uint64_t xseq;
    int32_t err; /* 0 or -errno */
    uint32_t pad;
    uint64_t off, len; /* XRECV: where the bytes now lie in the arena */
} shoal_msg_xdone_t;

/* A decoded up-ring record; pointers point into the decoded payload. */
typedef struct {
    uint16_t type;
    union {
        struct {
            shoal_msg_done_t m;
            const char *err;  /* err_len bytes, not NUL-terminated */
            const char *hdrs; /* hdr_len bytes of a validated headers blob */
        } done;
        struct {
            uint64_t seq;
            const char *text;
            size_t len;
        } log;
        struct {
            shoal_msg_call_t m;
            char name[SHOAL_CHANNEL_NAME_MAX + 1];
        } call;
        shoal_msg_xfer_t xfer;     /* XSEND, XRECV */
        shoal_msg_unlink_t unlink; /* UNLINKED */
    } u;
} shoal_up_msg_t;

/*
 * Control-socket messages (SOCK_SEQPACKET, one message per send, fds by SCM_RIGHTS).
 * worker -> zygote: FORK + fds [channel memfd, stem's end of its control socketpair].
 * zygote -> worker: FORKED with the stem's pid or -errno.
 * worker -> stem:   SPECIALIZE + fd [artifact, read-only].
 * stem -> worker:   READY (err 0, or -errno and the dlerror text after the struct), and
 *                   single-byte doorbells (SHOAL_CTL_DOORBELL) after up-ring pushes.
 * worker -> instance: GROUP + fd [the group's arena memfd], right before an INVOKE record flagged
 *                   SHOAL_INVOKE_GROUP (never before SPECIALIZE: the worker posts invocations only
 *                   to READY instances). The instance reads it when it takes that record.
 * worker -> instance: LINK + fd [a direct link's memfd], right before a LINK record (see "Direct
 *                   links" above); read when the instance takes that record.
 */
#define SHOAL_CTL_MAGIC 0x4c544353u /* "SCTL" */
#define SHOAL_CTL_DOORBELL 'D'
#define SHOAL_CTL_MSG_MAX 4096u
enum {
    SHOAL_CTL_FORK = 1,
    SHOAL_CTL_FORKED,
    SHOAL_CTL_SPECIALIZE,
    SHOAL_CTL_READY,
    SHOAL_CTL_GROUP,
    SHOAL_CTL_LINK /* worker -> instance: fd [a link's memfd], right before a LINK record */
};

typedef struct {
    uint32_t magic;
    uint32_t type;
    uint64_t req; /* chosen by the worker, echoed in FORKED */
} shoal_ctl_fork_t;

typedef struct {
    uint32_t magic;
    uint32_t type;
    uint64_t req;
    int32_t pid; /* > 0, or -errno */
    uint32_t pad;
} shoal_ctl_forked_t;

typedef struct {
    uint32_t magic;
    uint32_t type;
    uint64_t version;
    uint32_t memory_mb;
    uint32_t timeout_ms;
    char name[SHOAL_CHANNEL_NAME_MAX + 1];
} shoal_ctl_specialize_t;

typedef struct {
    uint32_t magic;
    uint32_t type;
    int32_t err;      /* 0 or -errno */
    uint32_t msg_len; /* error text that follows */
} shoal_ctl_ready_t;

/* shoal_ctl_group_t.flags */
#define SHOAL_GROUP_REDIS                                                                          \
    1u /* collectives go through Redis (the object-store baseline): a                              \
          second fd, a socket connected to the Redis server, follows the                           \
          arena's */

typedef struct {
    uint32_t magic;
    uint32_t type;
    uint64_t seq;         /* the seq of the INVOKE record this belongs to */
    int32_t rank;         /* this instance's rank in the arena, 0..size-1 */
    int32_t size;         /* ranks in the arena (1..SHOAL_ARENA_MAX_RANKS) */
    uint64_t deadline_ns; /* absolute CLOCK_MONOTONIC: the rank's own bound on every wait (the
                             copy in the arena could be overwritten by a peer) */
    uint32_t flags;       /* SHOAL_GROUP_* */
    /* The whole group, over all nodes. On a group that lives on one node: grank = rank,
     * gsize = size, nnodes = 1, node = 0. Otherwise node_of follows the struct: gsize uint16_t,
     * the node index (0..nnodes-1) of every global rank; the arena's ranks are this node's global
     * ranks in increasing order. */
    int32_t grank, gsize;
    uint32_t nnodes;   /* nodes the group spans (1..SHOAL_CHANNEL_GROUP_MAX) */
    uint32_t node;     /* this node's index */
    uint64_t group_id; /* the same on every node and rank of the group */
    uint32_t pad;
} shoal_ctl_group_t;

/*
 * Groups (issue 3). A group of N ranks on one node shares one arena (transport/arena.h) that the
 * worker creates per group and passes to every rank with SHOAL_CTL_GROUP; the rank maps it with
 * shoal_coll_create and leaves it (shoal_coll_destroy) after shoal_main returns, before its DONE.
 * The arena's data capacity is shoal_channel_group_data(N, memory_mb): the group's memory (N times
 * the function's memory_mb, since every byte in the arena was put there by a rank), at least
 * SHOAL_CHANNEL_GROUP_DATA_MIN so that small functions can still move large payloads, and at most
 * SHOAL_CHANNEL_GROUP_DATA_MAX. It is virtual space: pages cost memory only once written, and
 * cgroups bound what a rank really uses. The sandbox's RLIMIT_AS leaves room for the largest
 * arena an instance can be given, shoal_channel_group_map_max(memory_mb).
 */
#define SHOAL_CHANNEL_GROUP_MAX 1024u /* ranks in a group, over all nodes */
#define SHOAL_CHANNEL_GROUP_DATA_MIN (1ull << 30)
#define SHOAL_CHANNEL_GROUP_DATA_MAX (64ull << 30)

/* The data capacity of the arena of a group with nranks ranks on this node, for a function whose
 * memory limit is memory_mb. */
uint64_t shoal_channel_group_data(int nranks, uint32_t memory_mb);
/* The largest arena mapping (bytes) an instance of a function with memory_mb can be given. */
uint64_t shoal_channel_group_map_max(uint32_t memory_mb);

/* Receives one control message of at most size bytes and up to maxfds fds (close-on-exec; extra
 * fds are closed). Returns the byte count (0 = the peer closed) or -errno (-EMSGSIZE for a
 * truncated message); *nfds is the number of fds received, also on errors (the caller closes
 * them). Blocks unless the socket is non-blocking. */
ssize_t shoal_channel_ctl_recv(int sock, void *buf, size_t size, int *fds, int maxfds, int *nfds);

/* Computes the layout for a channel whose input and output may be body_max bytes. */
void shoal_channel_layout(uint64_t body_max, shoal_channel_layout_t *lay);

/* Worker: creates, sizes, seals and maps a new channel memfd (close-on-exec). 0 or -errno. */
int shoal_channel_create(shoal_channel_t *ch, uint64_t body_max);
/* Instance: maps the channel in fd (taking ownership of fd) and checks its header. */
int shoal_channel_open(shoal_channel_t *ch, int fd);
/* Unmaps and closes; safe on a zeroed or failed channel. */
void shoal_channel_close(shoal_channel_t *ch);

/* Either side: sends one record on its tx ring (-EAGAIN when full). */
int shoal_channel_send(shoal_channel_t *ch, uint16_t type, const struct iovec *iov, int n);
/* Either side: pops one record from its rx ring into buf: 1, 0 (empty) or -EPROTO. */
int shoal_channel_recv(shoal_channel_t *ch, shoal_ring_rec_t *rec, void *buf, size_t size);

/* Worker: rings the instance's doorbell after sends: FUTEX_WAKE only if it sleeps. */
void shoal_channel_wake_instance(shoal_channel_t *ch);
/* Worker: asks for a doorbell byte on the next up-ring push; call before draining the up ring. */
void shoal_channel_arm(shoal_channel_t *ch);
/* Worker: after draining the up ring, lets an instance blocked on a full ring go on. */
void shoal_channel_release_space(shoal_channel_t *ch);

/* Instance: waits until the down ring has a record: spins for about spin_ns, then sleeps. */
void shoal_channel_wait_down(shoal_channel_t *ch, uint64_t spin_ns);
/* Instance: after up-ring pushes, sends a doorbell byte on ctl_fd if the worker asked for one
 * (force: always). 0 or -errno (a full socket counts as delivered). */
int shoal_channel_notify(shoal_channel_t *ch, int ctl_fd, int force);
/* Instance: sends one up record, waiting for space when the ring is full. */
int shoal_channel_send_wait(shoal_channel_t *ch, int ctl_fd, uint16_t type, const struct iovec *iov,
                            int n);

/* Worker: gives the pages of [off, off + len) of the memfd back to the system (they read as
 * zeros afterwards). */
int shoal_channel_punch(shoal_channel_t *ch, uint64_t off, uint64_t len);

/* Pure: decodes and validates an up-ring record against the worker's layout. 0 or -EPROTO. Safe
 * for arbitrary bytes (a fuzzing entry point). */
int shoal_channel_decode_up(const shoal_channel_layout_t *lay, uint16_t type, const uint8_t *p,
                            size_t len, shoal_up_msg_t *m);

/*
 * Key/value blobs: "key\0value\0" repeated. Used for the invocation's meta (worker -> instance)
 * and the response headers (instance -> worker).
 */
/* Appends a pair; -ENOSPC when it does not fit in cap, -EINVAL for NUL-containing lengths. */
int shoal_kv_append(char *blob, size_t cap, size_t *len, const char *key, size_t klen,
                    const char *val, size_t vlen);
/* Iterates: *off starts at 0. 1 with *key and *val (NUL-terminated inside blob), 0 at the end,
 * -EPROTO for a malformed blob. */
int shoal_kv_next(const char *blob, size_t len, size_t *off, const char **key, const char **val);
/* Finds key (header names compared case-insensitively after "header:"); NULL when absent. */
const char *shoal_kv_get(const char *blob, size_t len, const char *key);

/* The negative errno shoal_call returns for a failed callee, by the RESULT "kind" of its failure
 * ("timeout" -> -ETIMEDOUT, "crash" -> -ECONNRESET, "function" -> -EREMOTEIO, "not_found" ->
 * -ENOENT, "overload" -> -EBUSY, "too_large" -> -EFBIG, anything else -> -EIO). */
int shoal_kind_errno(const char *kind);

/* Whether name is an HTTP header field name (token characters, 1..128 bytes). */
int shoal_header_name_valid(const char *name, size_t len);
/* Whether value is a safe HTTP header value (no control characters but tab, <= 8 KiB). */
int shoal_header_value_valid(const char *value, size_t len);
/* Validates a response headers blob: keys "header:<name>" with lower-case valid names, valid
 * values, at most SHOAL_CHANNEL_HDRS_COUNT pairs. 0 or -EPROTO. */
int shoal_kv_validate_headers(const char *blob, size_t len);

#endif
