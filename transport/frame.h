/*
 * frame - the versioned, length-prefixed binary protocol between shoal-controller and
 * shoal-worker over TCP.
 *
 * Every frame is a 16-byte header followed by `len` payload bytes. All header fields are
 * little-endian:
 *
 *   offset 0  u32 magic    SHOAL_FRAME_MAGIC ("SHL1")
 *   offset 4  u8  version  SHOAL_FRAME_VERSION; a peer speaking another version is refused
 *   offset 5  u8  type     one of shoal_frame_type
 *   offset 6  u16 flags    reserved, must be 0
 *   offset 8  u32 len      payload length, bounded by the receiver before it allocates
 *   offset 12 u32 id       correlates a request with its answer (see each type); 0 if unused
 *
 * Every payload has the same two parts: a u32 little-endian meta length, the meta, and then the
 * data bytes that fill the rest of the payload (often none). The meta of the hot frames, INVOKE,
 * RESULT and CALL_RESULT, is a fixed-layout binary record (transport/invmeta.h: function name and
 * version, invocation id, time left, depth, the request meta as a length-prefixed key/value list;
 * the outcome, status, error and headers), so that a warm invocation is encoded and decoded
 * without a JSON parser or an allocation. Every other meta is a JSON object (UTF-8, not
 * NUL-terminated) whose keys are listed beside its frame type below; receivers ignore keys they
 * do not know, so fields can be added there without a version bump.
 *
 * Version 2 introduced the binary metas; version 1 (JSON everywhere) is refused.
 *
 * A "function object" (fn) is {"name","version","sha256","size","timeout_ms","memory_mb",
 * "min_warm","max_instances"}.
 */
#ifndef SHOAL_TRANSPORT_FRAME_H
#define SHOAL_TRANSPORT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define SHOAL_FRAME_MAGIC 0x314c4853u /* "SHL1" as little-endian bytes */
#define SHOAL_FRAME_VERSION 2
#define SHOAL_FRAME_HDR_SIZE 16
/* Header plus the u32 meta length: what shoal_frame_encode writes. */
#define SHOAL_FRAME_PREFIX_SIZE 20
/* A meta is small by construction; a larger one is a protocol error. */
#define SHOAL_FRAME_META_MAX (1u << 20)

typedef enum {
    /* worker -> controller, first frame. meta {"node","slots","pid","protocol":2,"key"}. "key" is
     * the cluster key (the controller's HOME/cluster.key; common/secret.h): a HELLO without it or
     * with a wrong one is answered with ERROR and the connection closed. Until a valid HELLO, a
     * frame's payload may be at most 64 KiB and the HELLO must come within 5 s of connecting.
     * Optional "peer":"IPV4:PORT": where other workers reach this one for groups spread over
     * nodes (worker/peer.h); a worker without it takes no part in them. */
    SHOAL_FRAME_HELLO = 1,
    /* controller -> worker, answer to HELLO. meta {"worker_id", "functions":[fn...]}: the whole
     * current function table. Optional "max_body": the controller's largest input/output in
     * bytes (default 67108864); the worker sizes new instances' data areas for it. */
    SHOAL_FRAME_WELCOME = 2,
    /* controller -> worker: a function was deployed or updated (meta = fn) or deleted (meta
     * {"name","deleted":true}). id is a sequence number the worker echoes in FUNC_ACK once its
     * table holds the change; the controller answers the deploy after every worker acked. */
    SHOAL_FRAME_FUNC = 3,
    /* worker -> controller. meta {}. id = the FUNC's id. */
    SHOAL_FRAME_FUNC_ACK = 4,
    /* controller -> worker: run one invocation. id = dispatch id chosen by the controller.
     * meta: binary (transport/invmeta.h): function name and version (the worker runs exactly that
     * version, from the table WELCOME and FUNC gave it; one it lacks is answered not_found unless
     * the extension carries its "fn" object), invocation id, time left in ms, depth (shoal_call
     * nesting), the request meta list ("method", "path", "query", "header:<name>"...; every entry
     * reaches the function's shoal_meta, header names lower-cased; the worker adds
     * "invocation_id" and "function" itself and drops entries by those names), and an optional
     * extension JSON object for the cold cases described next; data = the input.
     * Groups: the extension's "group":{"id":"<hex>", "size":N, "ranks":[r,...], "transport":"shm"}
     * runs the invocation as N instances (ranks 0..N-1, 1 <= N <= 1024) that all get the same
     * input and meta. "size" is required; "id" (optional, hex, at most 64 digits) names the group
     * in logs; "ranks" (optional, default all) are the ranks this worker hosts - today it must be
     * all of them, 0..N-1, so N is also bounded by the worker's slots, by the function's
     * max_instances and by 256 (SHOAL_ARENA_MAX_RANKS); "transport" (optional) is how the ranks
     * exchange data: "shm", one shared arena on this node, or "redis" (the object-store
     * baseline, runtime/redis.h), which then comes with "redis":"IP:PORT" (numeric, resolved by
     * the controller from its --redis): the worker gives each rank a socket connecting there and
     * the first 16 hex digits of "id" as the group id that namespaces the keys. The worker takes
     * all N instances or none: RESULT kind "overload" if it cannot now, "internal" for a group it
     * cannot take at all (other ranks, other transport, malformed). It answers with ONE RESULT:
     * rank 0's output, status and headers when every rank succeeded, else the failure of the rank
     * that caused the group to fail, named in the message ("rank 3 crashed: killed by signal 11
     * (SIGSEGV)", "rank 2 exceeded the timeout of 1000 ms", "rank 1 failed: <its error>", "rank 1
     * returned from shoal_main while other ranks still waited for it"), with that failure's kind.
     * The group's deadline is "timeout_ms"; once a rank failed the others get about a second
     * (SHOAL_GROUP_GRACE_MS) to return before they are killed, and the RESULT comes after.
     * Groups spread over several nodes: the controller sends each node its part, an INVOKE whose
     * "group" also has "nodes":[{"node":name,"peer":"IPV4:PORT"},...] (2..256 nodes, in node
     * index order), "node_of":[k,...] (the node index of every global rank, size entries; every
     * node has at least one rank), "me":k (this node's index), "group_id":"<1..16 hex digits>"
     * (nonzero, the same on every node: it labels the group's peer traffic) and "transport":"tcp";
     * "ranks", if present, must be exactly this node's global ranks in increasing order. Each
     * node runs its ranks in a local arena whose ranks are its global ranks in increasing order
     * (SHOAL_CTL_GROUP carries the global view) and its workers move data between the arenas
     * (worker/peer.h). Each node answers its own RESULT: the node holding rank 0 its output, the
     * others an empty one; a failure names the global rank. A node that fails (a rank failed, the
     * deadline, or it cannot start its ranks) tells the other nodes at once (peer ABORT), so that
     * every part ends promptly with the same message. */
    SHOAL_FRAME_INVOKE = 5,
    /* worker -> controller: how an INVOKE ended. id = the INVOKE's id.
     * meta: binary (transport/invmeta.h): ok, kind (function, crash, timeout, overload, internal,
     * not_found, too_large), the status the function set (0: none), duration_us, the error
     * message (NUL-free), the response headers as a key/value list of name and value; data = the
     * output when ok. The controller treats it as untrusted: lengths are checked, header names
     * and values are filtered before they reach an HTTP answer. */
    SHOAL_FRAME_RESULT = 6,
    /* worker -> controller: fetch an artifact the worker lacks. id chosen by the worker.
     * meta {"sha256"}. */
    SHOAL_FRAME_FETCH = 7,
    /* controller -> worker: answer to FETCH. id = the FETCH's id. meta {"sha256"} or
     * {"sha256","error"}; data = the artifact bytes. */
    SHOAL_FRAME_ARTIFACT = 8,
    /* worker -> controller: shoal_call that the worker could not serve from a local warm
     * instance. id chosen by the worker. meta {"function","invocation_id" (the caller's),
     * "depth","timeout_ms"}; data = the input. shoal_call_group adds "group":N (1..1024): run N
     * instances as one group, as an INVOKE with "group" would, and answer rank 0's output (the
     * worker forwards it when it cannot host all N ranks itself). */
    SHOAL_FRAME_CALL = 9,
    /* controller -> worker: answer to CALL, same (binary) meta and data as RESULT. id = the
     * CALL's id. */
    SHOAL_FRAME_CALL_RESULT = 10,
    /* worker -> controller, on change (at most every 100 ms) and every second as a heartbeat.
     * meta {"slots","busy","stems","pools":[{"function","version","warm","idle","busy"}]}. */
    SHOAL_FRAME_STATUS = 11,
    /* either way, then the sender closes. meta {"error":"message"}. */
    SHOAL_FRAME_ERROR = 12,
    /* worker -> controller: what functions wrote with shoal_log, for GET
     * /v1/functions/{name}/logs. meta {} or {"dropped":N} (log bytes the worker could not forward
     * since the last LOG: its queue was full); data = log records (shoal_frame_log_put), at most
     * SHOAL_FRAME_LOG_MAX bytes. Sent at most every SHOAL_FRAME_LOG_INTERVAL_MS, or sooner when
     * half that much is queued. */
    SHOAL_FRAME_LOG = 13,
    SHOAL_FRAME_TYPE_MAX = 13
} shoal_frame_type;

typedef struct {
    uint32_t magic;
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t len;
    uint32_t id;
} shoal_frame_hdr;
_Static_assert(sizeof(shoal_frame_hdr) == SHOAL_FRAME_HDR_SIZE, "wire");

/* Writes the 16-byte header and the u32 meta length for a frame whose meta is meta_len bytes and
 * whose data is data_len bytes into out[SHOAL_FRAME_PREFIX_SIZE]. Send it, then the meta, then the
 * data. -EMSGSIZE if the payload would not fit in 32 bits. */
int shoal_frame_encode(uint8_t out[SHOAL_FRAME_PREFIX_SIZE], uint8_t type, uint32_t id,
                       size_t meta_len, size_t data_len);

/* Decodes and checks a header from 16 bytes: -EPROTO for a bad magic, flags or type,
 * -EPROTONOSUPPORT for another version, -EMSGSIZE when len > max_payload. */
int shoal_frame_decode_hdr(const uint8_t *buf, uint32_t max_payload, shoal_frame_hdr *hdr);

/* ---- LOG records ---- */
#define SHOAL_FRAME_LOG_MAX (256u * 1024u)
#define SHOAL_FRAME_LOG_INTERVAL_MS 50
/* One record: u64 ts_ms, i32 rank (-1: not in a group), u16 function length, u16 invocation id
 * length, u32 text length, then the function name, the invocation id and the text (one or more
 * lines, '\n'-separated, not NUL-terminated). */
#define SHOAL_FRAME_LOG_REC_HDR 20
typedef struct {
    uint64_t ts_ms;
    int32_t rank;
    const char *function;
    size_t function_len;
    const char *invocation_id;
    size_t invocation_id_len;
    const char *text;
    size_t text_len;
} shoal_frame_log_rec_t;

/* Appends one record at buf + *off (cap bytes in all) and advances *off; -ENOSPC if it does not
 * fit (nothing written), -EINVAL for a field too long for its length. */
int shoal_frame_log_put(uint8_t *buf, size_t cap, size_t *off, const shoal_frame_log_rec_t *rec);
/* Decodes the record at data + *off and advances *off past it: 1, 0 at the end of the data, or
 * -EPROTO for a truncated record (pointers in rec point into data). */
int shoal_frame_log_next(const uint8_t *data, size_t len, size_t *off, shoal_frame_log_rec_t *rec);

/* Splits a payload into its meta and data parts (pointers into payload); -EPROTO when the meta
 * length does not fit the payload or exceeds SHOAL_FRAME_META_MAX. */
int shoal_frame_split(const uint8_t *payload, size_t len, const char **meta, size_t *meta_len,
                      const uint8_t **data, size_t *data_len);

/*
 * An incremental reader: feed it the bytes a stream delivers, in any pieces, and it calls back
 * once per complete frame. It buffers at most one frame (bounded by max_payload) and is used from
 * one thread only.
 */
typedef struct shoal_frame_reader shoal_frame_reader_t;
/* Called for each whole frame; payload is valid only during the call. A nonzero return stops the
 * feed and is returned from shoal_frame_reader_feed. */
typedef int (*shoal_frame_cb)(void *opaque, const shoal_frame_hdr *hdr, const uint8_t *payload);

shoal_frame_reader_t *shoal_frame_reader_create(uint32_t max_payload, shoal_frame_cb cb,
                                                void *opaque);
void shoal_frame_reader_destroy(shoal_frame_reader_t *r);
/* Changes the largest payload accepted from the next frame header on (the controller allows
 * small frames only until a worker has authenticated). */
void shoal_frame_reader_set_max(shoal_frame_reader_t *r, uint32_t max_payload);
/* Consumes len bytes; 0, a decode error from shoal_frame_decode_hdr, -ENOMEM, or the callback's
 * nonzero return. After an error the reader must not be fed again. */
int shoal_frame_reader_feed(shoal_frame_reader_t *r, const uint8_t *buf, size_t len);

#endif
