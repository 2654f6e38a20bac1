/*
 * peer - the worker-to-worker transport of groups spread over several nodes (issue 3): TCP
 * connections between workers, driven by io_uring (liburing), that move group data straight from
 * one node's arena into another node's arena. Functions never see a socket: their worker sends
 * and receives on their behalf (transport/channel.h, SHOAL_MSG_XSEND / SHOAL_MSG_XRECV).
 *
 * Connections. Every worker listens on one peer address (--peer-listen, announced to the
 * controller in HELLO). A connection is opened on demand, the first time a group needs to reach
 * a node, and then shared by every group between that pair of nodes (at most one per direction
 * of opening, when both open at once). The opener speaks first: a HELLO message whose payload is
 * its own peer address and the cluster key; the acceptor checks the key (constant time,
 * common/secret.h) and drops a connection that does not present it within
 * SHOAL_PEER_HELLO_TIMEOUT_MS. Sockets are TCP_NODELAY with large buffers.
 *
 * Wire format: every message is a 40-byte little-endian header and len payload bytes:
 *
 *   offset 0  u32 magic     SHOAL_PEER_MAGIC ("SHPR")
 *   offset 4  u8  version   SHOAL_PEER_VERSION; anything else closes the connection
 *   offset 5  u8  type      HELLO, DATA or ABORT
 *   offset 6  u16 flags     0
 *   offset 8  u64 group_id  the group (the controller's "group_id", the same on every node)
 *   offset 16 u64 tag       DATA: chosen by the runtime; a (src, dst, tag) triple is used once
 *   offset 24 u32 src       the sender's node index in the group
 *   offset 28 u32 dst       the receiver's node index in the group
 *   offset 32 u64 len       payload bytes
 *
 * DATA's payload is the bytes; ABORT's is the failure's message (at most SHOAL_PEER_ABORT_MAX
 * bytes, UTF-8): the group failed on the sender's node and every node ends it.
 *
 * io_uring. One ring per worker, used from the loop thread only: its completions are signalled
 * on an eventfd (io_uring_register_eventfd) that the libuv loop polls (uv_poll), so all state
 * lives on one thread and needs no lock, and the kernel does the I/O asynchronously. A connection
 * has at most one receive and one send in flight. Headers are read and written with READ_FIXED /
 * WRITE_FIXED from one registered buffer (a 64-byte slot per connection and direction); payloads
 * are received (RECV, MSG_WAITALL) straight into the destination arena, and sent from the arena
 * with SEND_ZC when they are at least SHOAL_PEER_ZC_MIN bytes and go to another machine (plain
 * SEND below that size, where the notification costs more than the copy, and to loopback
 * addresses, where the kernel copies zero-copy pages once more on local delivery). The peer keeps
 * its own mapping of every open group's arena, and keeps it until the last zero-copy notification
 * of the group came back, so that the pages the kernel still sends from stay mapped however the
 * group ends.
 *
 * Data for a group this worker does not know yet. The controller sends a spread group's INVOKEs
 * to all its nodes at once, but a fast node can send data before a slow node's INVOKE arrives.
 * Such DATA is buffered in malloc'd memory, at most early_max bytes for all unknown groups
 * together; a message that does not fit is held back: the connection stops reading (TCP flow
 * control then holds the sender) until the group opens or space frees up. Early messages are
 * dropped after SHOAL_PEER_EARLY_TTL_MS (the group was refused on this node, which then also
 * told the others with ABORT). An ABORT for an unknown group is kept (as a small record, at most
 * SHOAL_PEER_TOMBSTONES of them) and fails the group as soon as it opens. Data for a group that
 * ended here is read and discarded.
 *
 * Failure. shoal_peer_abort sends ABORT to every other node of the group and fails its pending
 * operations with -ECONNABORTED. An ABORT received, or a lost connection to a node of the group,
 * calls the group's on_abort (the worker then aborts the arena, which wakes the ranks).
 *
 * Every call is for the loop thread only.
 */
#ifndef SHOAL_WORKER_PEER_H
#define SHOAL_WORKER_PEER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "transport/arena.h"

#define SHOAL_PEER_MAGIC 0x52504853u /* "SHPR" as little-endian bytes */
#define SHOAL_PEER_VERSION 1
#define SHOAL_PEER_HDR_SIZE 40
#define SHOAL_PEER_ADDR_MAX 63           /* "ADDR:PORT" */
#define SHOAL_PEER_ABORT_MAX 1024u       /* ABORT message bytes */
#define SHOAL_PEER_HELLO_MAX 512u        /* HELLO payload bytes */
#define SHOAL_PEER_HELLO_TIMEOUT_MS 5000 /* an accepted connection's HELLO must come by then */
#define SHOAL_PEER_EARLY_DEFAULT (64ull << 20) /* buffered bytes for unknown groups */
#define SHOAL_PEER_EARLY_TTL_MS 10000
#define SHOAL_PEER_TOMBSTONES 256
#define SHOAL_PEER_ZC_MIN (64u << 10)
#define SHOAL_PEER_CONN_MAX 256
/* Accepted connections that have not said a valid HELLO yet, at most (the rest of
 * SHOAL_PEER_CONN_MAX stays for connections to peers and authenticated ones). */
#define SHOAL_PEER_UNAUTH_MAX 32
/* Messages received for one group and not asked for yet (each may be empty). */
#define SHOAL_PEER_UNCLAIMED_MAX 65536u

enum { SHOAL_PEER_HELLO = 1, SHOAL_PEER_DATA = 2, SHOAL_PEER_ABORT = 3 };

typedef struct {
    uint8_t type;
    uint64_t group_id, tag;
    uint32_t src, dst;
    uint64_t len;
} shoal_peer_hdr_t;

/* Writes h as the 40-byte wire header. */
void shoal_peer_hdr_encode(uint8_t out[SHOAL_PEER_HDR_SIZE], const shoal_peer_hdr_t *h);
/* Decodes and checks a header: -EPROTO for a bad magic, type or flags, -EPROTONOSUPPORT for
 * another version. Pure (a fuzzing entry point). */
int shoal_peer_hdr_decode(const uint8_t *buf, shoal_peer_hdr_t *h);

typedef struct shoal_peer shoal_peer_t;
typedef struct shoal_peer_group shoal_peer_group_t;

typedef struct {
    const char *listen; /* ADDR:PORT to listen on (port 0: any free one) */
    const char *key;    /* the cluster key peers must present; NULL or "": none checked */
    const char *node;   /* this worker's node name, for logs */
    uint64_t early_max; /* bytes buffered for unknown groups; 0 = SHOAL_PEER_EARLY_DEFAULT */
    int force_zc;       /* use SEND_ZC to loopback addresses too (tests) */
} shoal_peer_config_t;

/* Sets up the ring, the listener and the loop hooks. 0 or -errno (-ENOSYS when io_uring is not
 * available: cross-node groups are then refused, everything else works). */
int shoal_peer_create(uv_loop_t *loop, const shoal_peer_config_t *cfg, shoal_peer_t **out);
/* The address actually listened on ("127.0.0.1:40123"). */
const char *shoal_peer_address(const shoal_peer_t *p);
/* Closes every connection and group (their pending callbacks do not run) and frees the peer once
 * the loop has run its close callbacks. NULL is a no-op. */
void shoal_peer_destroy(shoal_peer_t *p);

/* Counters for tests and the status report. */
typedef struct {
    uint32_t conns;       /* open connections */
    uint32_t groups;      /* open groups, plus closed ones whose sends are still in flight */
    uint64_t early_bytes; /* buffered for unknown groups */
    uint32_t held;        /* connections holding back a message that does not fit */
    uint64_t bytes_in, bytes_out;
} shoal_peer_stats_t;
void shoal_peer_stats(const shoal_peer_t *p, shoal_peer_stats_t *st);

/* The group failed elsewhere (src is the node that said so, or whose connection was lost):
 * msg says why. Called at most once per group, never from inside a shoal_peer_* call. */
typedef void (*shoal_peer_abort_cb)(void *opaque, uint32_t src, const char *msg, size_t len);
/* A send or receive ended: err 0 or -errno; for a receive, where the bytes lie (offset from the
 * start of the arena memfd) and how many. */
typedef void (*shoal_peer_done_cb)(void *arg, int err, uint64_t off, uint64_t len);

typedef struct {
    uint64_t group_id;        /* nonzero */
    shoal_arena_t *arena;     /* the worker's own mapping; must stay until shoal_peer_group_close */
    uint32_t me, nnodes;      /* this node's index, and how many nodes (2..SHOAL_PEER_CONN_MAX) */
    const char *const *addrs; /* nnodes peer addresses; addrs[me] is not used */
    shoal_peer_abort_cb on_abort;
    void *opaque;
} shoal_peer_group_spec_t;

/* Registers a group: data that arrived early is moved into its arena now, an early ABORT fails
 * it (on_abort runs from the loop, soon). -EEXIST for an open group id, -EINVAL for bad specs. */
int shoal_peer_group_open(shoal_peer_t *p, const shoal_peer_group_spec_t *s,
                          shoal_peer_group_t **out);
/* Sends [off, off + len) of the arena memfd (inside its data area) to node with tag; cb runs once
 * the bytes are handed to the kernel or the send failed. 0 (cb will run) or -errno (it will not):
 * -EINVAL for a range outside the data area or a bad node, -ECONNABORTED after an abort. */
int shoal_peer_send(shoal_peer_group_t *g, uint32_t node, uint64_t tag, uint64_t off, uint64_t len,
                    shoal_peer_done_cb cb, void *arg);
/* Asks for the message node sent with tag; cb runs when it is in the arena (at once, from the
 * loop, if it is already), or with -ECONNABORTED when the group fails. 0 or -errno as above. */
int shoal_peer_recv(shoal_peer_group_t *g, uint32_t node, uint64_t tag, shoal_peer_done_cb cb,
                    void *arg);
/* The group failed here: ABORT with msg goes to every other node, pending operations end with
 * -ECONNABORTED (their callbacks run from the loop), later ones are refused. Idempotent. */
void shoal_peer_abort(shoal_peer_group_t *g, const char *msg, size_t len);
/* A group that could not be opened here (refused): sends ABORT with msg to every other node of it
 * (addrs as in the spec) and discards whatever data of it arrived or still arrives. */
void shoal_peer_tell_abort(shoal_peer_t *p, uint64_t group_id, uint32_t me, uint32_t nnodes,
                           const char *const *addrs, const char *msg, size_t len);
/* Whether no transfer of g is in flight (nothing reads from or writes into its arena): then the
 * arena may be re-armed for another group once g is closed. */
int shoal_peer_group_idle(const shoal_peer_group_t *g);

/* Forgets the group: pending callbacks do not run any more; its arena mapping is released once
 * the kernel no longer reads from it. Data that still arrives for it is discarded. */
void shoal_peer_group_close(shoal_peer_group_t *g);

#endif
