/*
 * worker - the node agent: one libuv loop that talks to the controller, keeps the zygote, the
 * stems and the per-function pools of instances, and moves invocations between the controller's
 * socket and the instances' shared-memory channels.
 *
 * Life of an instance (instance.c): created as a stem (a channel memfd and a control socketpair,
 * a FORK request queued to the zygote) -> given to a pool (SPECIALIZE with the artifact fd, once
 * the artifact is cached) -> READY -> idle / busy with one invocation at a time -> retired
 * (keep-alive, eviction, newer version), killed (timeout, protocol violation) or dead (crash). It
 * is freed only when its process has been reaped, no socket write still reads its channel, and
 * its libuv handles are closed.
 *
 * Life of an invocation: an INVOKE's meta picks the instance (pool.h) and its input is read from
 * the socket into the instance's input area; the INVOKE record goes on the down ring; the DONE
 * record comes back on the up ring and the RESULT is written from the output area with writev.
 * A shoal_call goes to an idle instance of the callee on this node, else to the controller as a
 * CALL frame; after one served here, the callee may be leased to the caller, whose later calls
 * then go to it directly through a shared link without the worker (lease.h).
 *
 * Everything runs on the loop thread, except artifact verification and durable writes, which
 * run on libuv's thread pool and touch only their own buffer.
 */
#ifndef SHOAL_WORKER_WORKER_H
#define SHOAL_WORKER_WORKER_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/util.h"
#include "transport/channel.h"
#include "worker/jsonw.h"
#include "worker/pool.h"
#include "worker/wire.h"

typedef struct {
    char controller[256]; /* ADDR:PORT */
    char node[SHOAL_NAME_MAX + 1];
    unsigned slots;
    char home[PATH_MAX];
    unsigned stems;
    uint64_t keep_alive_ms;
    char runtime[PATH_MAX];
    /* the sandbox's worker-wide limits (runtime/sandbox.h, worker/cgroup.h) */
    unsigned fds, tasks, cpu_percent;
    uint32_t uid_base;
    char cgroup_parent[128]; /* "none": no cgroups */
    char cluster_key[257];   /* sent in HELLO (frame.h, common/secret.h); "" when none */
    char peer_listen[64];    /* --peer-listen IPV4:PORT; "" = 127.0.0.1:0 (worker/peer.h) */
} shoal_worker_config_t;

/* Runs the worker until SIGTERM/SIGINT; returns the process exit status. */
int shoal_worker_run(const shoal_worker_config_t *cfg);

/* ---- internals shared by worker.c and instance.c ---- */

typedef struct shoal_worker shoal_worker_t;
typedef struct shoal_inst shoal_inst_t;
typedef struct shoal_group shoal_group_t;

/* Where an invocation's answer goes: a RESULT frame, a local caller's CALL_DONE, or (a rank of a
 * group) the group, which answers once all its ranks ended (group.h). */
enum { SHOAL_INV_NONE, SHOAL_INV_REMOTE, SHOAL_INV_LOCAL, SHOAL_INV_GROUP, SHOAL_INV_LINK };
/* SHOAL_INV_LINK: the instance is leased to a caller and serves its direct calls (lease.h). */

/* The invocation an instance is running (or about to). */
typedef struct {
    int kind;
    uint32_t frame_id;   /* REMOTE: the INVOKE's id */
    uint64_t conn_gen;   /* REMOTE: the connection it came on */
    uint64_t caller_uid; /* LOCAL: the calling instance */
    uint64_t caller_seq, caller_out_off, caller_out_cap;
    char invocation_id[96];
    uint32_t fn_timeout_ms, depth;
    uint64_t start_ns, deadline_ms;
    uint64_t input_len;
    uint32_t meta_len;
    int input_ready; /* the input is all in the input area */
    int running;     /* the INVOKE record was sent */
    uint64_t log_bytes;
} shoal_inv_t;

typedef enum { SHOAL_PH_STEM, SHOAL_PH_SPECIALIZING, SHOAL_PH_READY, SHOAL_PH_DEAD } shoal_phase;

/* A frame to the controller; embedded in an instance for RESULTs, else malloc'd. Frames queued
 * during one loop iteration go out together in one writev (worker.c, write_frame). */
typedef struct shoal_wreq {
    uv_write_t req;
    shoal_worker_t *w;
    shoal_inst_t *inst; /* whose channel the data lies in, or NULL */
    int kind;           /* 0 plain (free me), 1 an instance's RESULT */
    uint8_t prefix[SHOAL_FRAME_PREFIX_SIZE];
    char *meta;       /* owned when kind 0 */
    uv_buf_t bufs[3]; /* prefix, meta, data: until the batch is written */
    unsigned nbufs;
    struct shoal_wreq *next; /* in the worker's output queue or a batch */
} shoal_wreq_t;

struct shoal_inst {
    shoal_pool_entry_t pe; /* pool membership; pe.pool NULL for a free stem */
    shoal_worker_t *w;
    shoal_inst_t *prev, *next; /* w->insts */
    uint64_t uid;
    shoal_phase phase;
    pid_t pid;      /* 0 until the zygote answers */
    int fork_state; /* 0 queued, 1 requested, 2 forked */
    int reaped, kill_pending;
    int ctl_fd, stem_ctl_fd;
    shoal_channel_t ch;
    uv_poll_t poll;
    uv_timer_t timer;
    int handles_open;
    int freeing;    /* unlinked, handles closing */
    int drain_more; /* the up ring was not drained completely */
    shoal_fn_t fn;
    int waiting_artifact;
    shoal_inv_t inv;
    uint64_t seq;
    int writes; /* socket writes still reading the channel */
    int result_writing;
    shoal_wreq_t res;
    shoal_strbuf_t rmeta;
    uint64_t in_hw, out_hw, call_hw;
    /* this instance's own shoal_call in flight */
    int calling;
    uint64_t call_seq, call_out_off, call_out_cap;
    uint32_t call_frame_id; /* nonzero when forwarded to the controller */
    /* the group this instance is a rank of (inv.kind SHOAL_INV_GROUP), else NULL */
    shoal_group_t *group;
    /* the lease this instance serves as a callee (inv.kind SHOAL_INV_LINK), else NULL */
    struct shoal_lease *lease;
    int rank;
};

typedef struct shoal_artifact {
    struct shoal_artifact *next;
    shoal_worker_t *w;
    char sha256[65];
    int state;
    uint32_t fetch_id;
    uint8_t *data;
    size_t len;
    uv_work_t work;
    int work_err;
    char path[PATH_MAX + 96];
} shoal_artifact_t;

enum { SHOAL_ART_UNKNOWN, SHOAL_ART_FETCHING, SHOAL_ART_WRITING, SHOAL_ART_READY };

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    shoal_worker_t *w;
    int up; /* connected and reading */
} shoal_conn_t;

struct shoal_worker {
    shoal_worker_config_t cfg;
    uv_loop_t loop;
    uv_signal_t sigchld, sigterm, sigint;
    uv_timer_t reconnect_timer, tick_timer, zygote_timer;
    uv_idle_t drain_idle;
    int stopping, exit_status;
    /* controller */
    shoal_conn_t *conn;
    uint64_t conn_gen;
    int welcomed;
    uint64_t backoff_ms;
    shoal_wire_reader_t *rd;
    /* frames written during this loop iteration, sent in one writev by flush_check (after the
     * poll phase) or flush_prepare (before the next one, for frames queued after the check) */
    uv_check_t flush_check;
    uv_prepare_t flush_prepare;
    shoal_wreq_t *outq, *outq_tail;
    unsigned outq_n;
    struct shoal_wbatch *wbatch_free; /* spare batch write requests */
    shoal_inst_t *rx_inst;            /* receiving the current INVOKE's input */
    shoal_inst_t *rx_caller;          /* receiving the current CALL_RESULT's output */
    shoal_artifact_t *rx_art;         /* receiving the current ARTIFACT */
    uint32_t next_id;
    /* zygote */
    pid_t zygote_pid;
    int zygote_fd;
    uv_poll_t zygote_poll;
    int zygote_poll_open;
    uint64_t zygote_backoff_ms;
    unsigned forks_inflight;
    /* instances and pools */
    shoal_inst_t *insts;
    uint64_t next_uid;
    shoal_pools_t pools;
    shoal_artifact_t *arts;
    uint64_t body_max;
    shoal_group_t *groups;            /* groups running on this node (group.c) */
    struct shoal_group_spare *spares; /* warm arenas of ended groups (group.c) */
    struct shoal_peer *peer; /* transfers of groups spread over nodes (peer.h); NULL without
                                io_uring */
    uint64_t next_group;
    struct shoal_lease *leases; /* direct links between instances (lease.h) */
    pid_t orphans[64];
    int orphan_status[64];
    unsigned orphan_next;
    struct shoal_cgroup *cg; /* instances' cgroups, NULL when unavailable */
    /* status */
    int status_dirty;
    uint64_t status_last_ms;
    char artdir[PATH_MAX + 16];
    shoal_strbuf_t tmp;
    uint8_t upbuf[SHOAL_CHANNEL_UP_CAP];
    /* functions' logs: a non-blocking fd of our own onto stderr (see shoal_worker_log), and the
     * bytes dropped because stderr did not keep up, reported with the next line that fits */
    shoal_util_errout_t errout; /* stderr, written without waiting (util.h) */
    int errout_ready;
    uint64_t log_dropped;
    /* ... and the same lines queued for the controller as LOG records (frame.h), sent by
     * log_timer; what does not fit the queue is counted in logq_dropped */
    uv_timer_t log_timer;
    uint8_t *logq;
    size_t logq_len;
    uint64_t logq_dropped;
};

/* instance.c */
shoal_inst_t *shoal_inst_create(shoal_worker_t *w);
void shoal_inst_assign(shoal_inst_t *inst, shoal_pool_t *pool, shoal_entry_state state);
void shoal_inst_specialize(shoal_inst_t *inst);
void shoal_inst_run(shoal_inst_t *inst);
void shoal_inst_fail(shoal_inst_t *inst, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void shoal_inst_kill(shoal_inst_t *inst);
void shoal_inst_exited(shoal_inst_t *inst, int status);
void shoal_inst_finish(shoal_inst_t *inst);
void shoal_inst_abandon(shoal_inst_t *inst);
void shoal_inst_drain(shoal_inst_t *inst);
void shoal_inst_maybe_free(shoal_inst_t *inst);
void shoal_inst_call_done(shoal_inst_t *caller, int err, const char *msg, size_t msg_len,
                          uint64_t out_len);
shoal_inst_t *shoal_inst_by_uid(shoal_worker_t *w, uint64_t uid);
void shoal_inst_start_timer(shoal_inst_t *inst, uint64_t ms);
int shoal_inst_build_meta(shoal_inst_t *inst, const json_t *meta, const char *function);
/* The same from an INVOKE's binary request meta list (transport/invmeta.h, validated). */
int shoal_inst_build_meta_kv(shoal_inst_t *inst, const uint8_t *kv, size_t kv_len,
                             const char *function);

/* worker.c */
void shoal_worker_send_fork(shoal_worker_t *w);
int shoal_worker_send_result(shoal_worker_t *w, shoal_inst_t *inst, int ok, const char *kind,
                             const char *err, size_t err_len, uint32_t status, const char *hdrs,
                             size_t hdrs_len, uint64_t out_len);
int shoal_worker_send_call(shoal_worker_t *w, shoal_inst_t *caller, const char *function,
                           unsigned group, uint64_t in_off, uint64_t in_len);
/* A failed RESULT for INVOKE id, not tied to an instance. */
void shoal_worker_send_failure(shoal_worker_t *w, uint32_t id, const char *kind, const char *msg,
                               size_t len, uint64_t duration_us);
/* Takes an instance of pool for one invocation (idle, else a new one, evicting an idle instance
 * of another pool if the node is full); NULL when overloaded. replenish: also restore the stems
 * and min_warm pools afterwards (a caller taking several at once does that itself at the end). */
shoal_inst_t *shoal_worker_acquire(shoal_worker_t *w, shoal_pool_t *pool, int replenish);
void shoal_worker_log(shoal_worker_t *w, shoal_inst_t *inst, const char *text, size_t len);
shoal_artifact_t *shoal_worker_artifact(shoal_worker_t *w, const char *sha256);
void shoal_worker_changed(shoal_worker_t *w);
void shoal_worker_replenish(shoal_worker_t *w);
void shoal_worker_drain_later(shoal_worker_t *w);
void shoal_worker_dispatch_call(shoal_worker_t *w, shoal_inst_t *caller, const char *function,
                                uint64_t in_off, uint64_t in_len);

#endif
