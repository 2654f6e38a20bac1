/*
 * worker - see worker.h. This file: the loop, the controller connection and its frames, the
 * zygote, artifacts, pools and status. instance.c: one instance and its channel.
 */
#include "worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "worker/group.h"
#include "worker/lease.h"
#include "worker/peer.h"
#include "runtime/sandbox.h"
#include "worker/cgroup.h"
#include "worker/proc.h"
#include "transport/invmeta.h"

#define TICK_MS 100
#define STATUS_HEARTBEAT_MS 1000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define ZYGOTE_BACKOFF_MAX_MS 5000
#define FORKS_INFLIGHT_MAX 8
/* Besides the body: the meta and its length field, with room to spare. */
#define PAYLOAD_SLACK (SHOAL_FRAME_META_MAX + (64u << 10))

static void connect_now(shoal_worker_t *w);
static void conn_close(shoal_worker_t *w);
static void reconnect_later(shoal_worker_t *w);
static void send_status(shoal_worker_t *w);

/* ---- frames to the controller ---- */

static void on_write(uv_write_t *req, int status)
{
    shoal_wreq_t *wr = (shoal_wreq_t *)req;
    shoal_inst_t *inst = wr->inst;

    (void)status;
    if (wr->kind == 1) {
        inst->writes--;
        if (inst->result_writing) {
            inst->result_writing = 0;
            shoal_inst_finish(inst);
        } else {
            shoal_inst_maybe_free(inst);
        }
        return;
    }
    if (inst != NULL) {
        inst->writes--;
        shoal_inst_maybe_free(inst);
    }
    free(wr->meta);
    free(wr);
}

/*
 * Output batching. Every frame is queued and the queue goes out once per loop iteration, from a
 * check handle (after the poll phase has run every ready callback; a prepare handle catches
 * frames queued after the check, by close callbacks, before the loop blocks), as one uv_write of
 * all the queued frames' pieces: one writev, one TCP segment train, one wakeup of the controller
 * instead of one per frame. Frames keep their order. Nothing is copied: a frame's pieces stay where
 * they are (a RESULT's output in the instance's channel) until the batch's write completes, and
 * then each frame completes as a single write would have (on_write).
 */
#define WBATCH_MAX 32

typedef struct shoal_wbatch {
    uv_write_t req;
    shoal_worker_t *w;
    shoal_wreq_t *frames;
    struct shoal_wbatch *next; /* in w->wbatch_free */
    uv_buf_t bufs[WBATCH_MAX * 3];
} shoal_wbatch_t;

/* Completes a list of frames (status < 0: they were not sent). */
static void complete_frames(shoal_wreq_t *wr, int status)
{
    while (wr != NULL) {
        shoal_wreq_t *next = wr->next;
        on_write(&wr->req, status);
        wr = next;
    }
}

static void on_batch_write(uv_write_t *req, int status)
{
    shoal_wbatch_t *b = (shoal_wbatch_t *)req;
    shoal_worker_t *w = b->w;
    shoal_wreq_t *frames = b->frames;

    b->frames = NULL;
    b->next = w->wbatch_free;
    w->wbatch_free = b;
    complete_frames(frames, status);
}

/* Sends what is queued, in one write. */
static void flush_frames(shoal_worker_t *w)
{
    shoal_wreq_t *frames = w->outq, *wr;
    shoal_wbatch_t *b;
    unsigned n = 0;
    int err;

    if (frames == NULL)
        return;
    w->outq = w->outq_tail = NULL;
    w->outq_n = 0;
    if (w->conn == NULL || !w->conn->up) {
        complete_frames(frames, UV_ECANCELED);
        return;
    }
    if ((b = w->wbatch_free) != NULL) {
        w->wbatch_free = b->next;
    } else if ((b = malloc(sizeof(*b))) == NULL) {
        SHOAL_WARN("out of memory writing to the controller; dropping the connection");
        complete_frames(frames, UV_ENOMEM);
        conn_close(w);
        reconnect_later(w);
        return;
    }
    b->w = w;
    b->frames = frames;
    for (wr = frames; wr != NULL; wr = wr->next)
        for (unsigned i = 0; i < wr->nbufs; i++)
            b->bufs[n++] = wr->bufs[i];
    if ((err = uv_write(&b->req, (uv_stream_t *)&w->conn->tcp, b->bufs, n, on_batch_write)) < 0)
        on_batch_write(&b->req, err);
}

static void on_flush_check(uv_check_t *h)
{
    shoal_worker_t *w = h->data;

    uv_check_stop(h);
    uv_prepare_stop(&w->flush_prepare);
    flush_frames(w);
}

static void on_flush_prepare(uv_prepare_t *h)
{
    shoal_worker_t *w = h->data;

    uv_prepare_stop(h);
    uv_check_stop(&w->flush_check);
    flush_frames(w);
}

/* Frees the spare batches (at shutdown). */
static void free_batches(shoal_worker_t *w)
{
    while (w->wbatch_free != NULL) {
        shoal_wbatch_t *b = w->wbatch_free;
        w->wbatch_free = b->next;
        free(b);
    }
}

/* Queues prefix + meta + data for this iteration's batch; from then on wr belongs to the write
 * until on_write, which never runs from inside this call. */
static int write_frame(shoal_worker_t *w, shoal_wreq_t *wr, uint8_t type, uint32_t id,
                       const char *meta, size_t meta_len, const void *data, size_t data_len)
{
    int err;

    if (w->conn == NULL || !w->conn->up)
        return -ENOTCONN;
    if ((err = shoal_frame_encode(wr->prefix, type, id, meta_len, data_len)) < 0)
        return err;
    /* A full batch goes out first: every frame in it belongs to a caller that has returned. */
    if (w->outq_n == WBATCH_MAX)
        flush_frames(w);
    if (w->conn == NULL || !w->conn->up)
        return -ENOTCONN;
    wr->bufs[0] = uv_buf_init((char *)wr->prefix, sizeof(wr->prefix));
    wr->bufs[1] = uv_buf_init((char *)meta, (unsigned)meta_len);
    wr->bufs[2] = uv_buf_init((char *)data, (unsigned)data_len);
    wr->nbufs = data_len > 0 ? 3 : 2;
    wr->w = w;
    wr->next = NULL;
    if (w->outq_tail != NULL)
        w->outq_tail->next = wr;
    else
        w->outq = wr;
    w->outq_tail = wr;
    if (w->outq_n++ == 0) {
        uv_check_start(&w->flush_check, on_flush_check);
        uv_prepare_start(&w->flush_prepare, on_flush_prepare);
    }
    if (wr->inst != NULL)
        wr->inst->writes++;
    return 0;
}

/* Sends a frame whose meta is a malloc'd string (taken over, freed in every case). data, if any,
 * lies in inst's channel (or is static). */
static int send_frame(shoal_worker_t *w, uint8_t type, uint32_t id, char *meta, const void *data,
                      size_t data_len, shoal_inst_t *inst)
{
    shoal_wreq_t *wr;
    int err;

    if (meta == NULL)
        return -ENOMEM;
    if ((wr = calloc(1, sizeof(*wr))) == NULL) {
        free(meta);
        return -ENOMEM;
    }
    wr->meta = meta;
    wr->inst = inst;
    if ((err = write_frame(w, wr, type, id, meta, strlen(meta), data, data_len)) < 0) {
        free(meta);
        free(wr);
    }
    return err;
}

static int send_json(shoal_worker_t *w, uint8_t type, uint32_t id, json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    return send_frame(w, type, id, s, NULL, 0, NULL);
}

/* Sends a frame whose meta (meta_len bytes, binary or not) is copied into the request. */
static int send_frame_copy(shoal_worker_t *w, uint8_t type, uint32_t id, const char *meta,
                           size_t meta_len)
{
    shoal_wreq_t *wr;
    char *copy;
    int err;

    if ((wr = calloc(1, sizeof(*wr))) == NULL || (copy = malloc(meta_len ? meta_len : 1)) == NULL) {
        free(wr);
        return -ENOMEM;
    }
    memcpy(copy, meta, meta_len);
    wr->meta = copy;
    if ((err = write_frame(w, wr, type, id, copy, meta_len, NULL, 0)) < 0) {
        free(copy);
        free(wr);
    }
    return err;
}

/* Renders the binary RESULT meta (transport/invmeta.h) into b. hdrs is the instance's channel
 * list of "header:<name>" entries, validated when it was read. */
static void result_meta(shoal_strbuf_t *b, int ok, const char *kind, const char *err,
                        size_t err_len, uint32_t status, const char *hdrs, size_t hdrs_len,
                        uint64_t duration_us)
{
    shoal_invmeta_result_t m = {.ok = ok != 0, .duration_us = duration_us};
    uint8_t head[SHOAL_INVMETA_RESULT_FIXED] = {0}, kvh[SHOAL_INVMETA_KV_HDR];
    const char *k, *v;
    size_t off = 0, start;

    shoal_strbuf_reset(b);
    shoal_strbuf_append(b, (const char *)head, sizeof(head)); /* filled in below */
    if (ok) {
        m.status = status <= 599 ? status : 0;
        while (shoal_kv_next(hdrs, hdrs_len, &off, &k, &v) == 1) {
            size_t kl = strlen(k + 7), vl = strlen(v);
            if (shoal_invmeta_kv_hdr(kvh, kl, vl) < 0)
                continue;
            shoal_strbuf_append(b, (const char *)kvh, sizeof(kvh));
            shoal_strbuf_append(b, k + 7, kl);
            shoal_strbuf_append(b, v, vl);
        }
    } else {
        const char *nul = err_len ? memchr(err, '\0', err_len) : NULL;
        m.kind = shoal_invmeta_kind_parse(kind);
        /* The controller refuses a message with a NUL or beyond the bound: cut it instead. */
        if (nul != NULL)
            err_len = (size_t)(nul - err);
        if (err_len > SHOAL_INVMETA_ERR_MAX)
            err_len = SHOAL_INVMETA_ERR_MAX;
        m.error_len = err_len;
        shoal_strbuf_append(b, err, err_len);
    }
    start = sizeof(head) + m.error_len;
    m.headers_len = b->len >= start ? b->len - start : 0;
    if (!b->oom && shoal_invmeta_result_head(head, &m) == 0)
        memcpy(b->p, head, sizeof(head));
    else
        b->oom = 1;
}

int shoal_worker_send_result(shoal_worker_t *w, shoal_inst_t *inst, int ok, const char *kind,
                             const char *err, size_t err_len, uint32_t status, const char *hdrs,
                             size_t hdrs_len, uint64_t out_len)
{
    uint64_t dur = (shoal_util_now_ns() - inst->inv.start_ns) / 1000;
    int r;

    /* One invocation per instance, so its embedded write request is free: the previous RESULT
     * completed before the instance could take another invocation. */
    result_meta(&inst->rmeta, ok, kind, err, err_len, status, hdrs, hdrs_len, dur);
    if (inst->rmeta.oom)
        return -ENOMEM;
    if (out_len == 0 && !ok) {
        /* A failure carries no data from the channel: send it on its own request so that the
         * instance's embedded one is never shared by two writes. */
        return send_frame_copy(w, SHOAL_FRAME_RESULT, inst->inv.frame_id, inst->rmeta.p,
                               inst->rmeta.len);
    }
    memset(&inst->res, 0, sizeof(inst->res));
    inst->res.kind = 1;
    inst->res.inst = inst;
    r = write_frame(w, &inst->res, SHOAL_FRAME_RESULT, inst->inv.frame_id, inst->rmeta.p,
                    inst->rmeta.len, inst->ch.out, out_len);
    return r;
}

void shoal_worker_send_failure(shoal_worker_t *w, uint32_t id, const char *kind, const char *msg,
                               size_t len, uint64_t duration_us)
{
    result_meta(&w->tmp, 0, kind, msg, len, 0, NULL, 0, duration_us);
    if (!w->tmp.oom)
        send_frame_copy(w, SHOAL_FRAME_RESULT, id, w->tmp.p, w->tmp.len);
}

/* A RESULT for an INVOKE that got no instance. */
static void send_error_result(shoal_worker_t *w, uint32_t id, const char *kind, const char *fmt,
                              ...) __attribute__((format(printf, 4, 5)));
static void send_error_result(shoal_worker_t *w, uint32_t id, const char *kind, const char *fmt,
                              ...)
{
    char msg[512];
    va_list ap;
    size_t n;

    va_start(ap, fmt);
    n = shoal_util_vfmt(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    shoal_worker_send_failure(w, id, kind, msg, n, 0);
}

int shoal_worker_send_call(shoal_worker_t *w, shoal_inst_t *caller, const char *function,
                           unsigned group, uint64_t in_off, uint64_t in_len)
{
    uint64_t elapsed = (shoal_util_now_ns() - caller->inv.start_ns) / 1000000;
    uint64_t left = caller->inv.deadline_ms > elapsed ? caller->inv.deadline_ms - elapsed : 1;
    json_t *j;
    char *s;
    int err;

    j = json_pack("{s:s,s:s,s:i,s:I}", "function", function, "invocation_id",
                  caller->inv.invocation_id, "depth", (int)caller->inv.depth + 1, "timeout_ms",
                  (json_int_t)left);
    if (j != NULL && group > 0)
        json_object_set_new(j, "group", json_integer(group));
    s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    caller->call_frame_id = ++w->next_id ? w->next_id : ++w->next_id;
    err = send_frame(w, SHOAL_FRAME_CALL, caller->call_frame_id, s, caller->ch.call + in_off,
                     in_len, caller);
    if (err < 0)
        caller->call_frame_id = 0;
    return err;
}

static void send_hello(shoal_worker_t *w)
{
    json_t *j = json_pack("{s:s,s:i,s:i,s:i}", "node", w->cfg.node, "slots", (int)w->cfg.slots,
                          "pid", (int)getpid(), "protocol", SHOAL_FRAME_VERSION);

    /* The cluster key authenticates us; it is sent on every (re)connection, never logged. */
    if (j != NULL && w->cfg.cluster_key[0] != '\0')
        json_object_set_new(j, "key", json_string(w->cfg.cluster_key));
    /* Where other workers reach us for groups spread over nodes. */
    if (j != NULL && w->peer != NULL)
        json_object_set_new(j, "peer", json_string(shoal_peer_address(w->peer)));
    send_json(w, SHOAL_FRAME_HELLO, 0, j);
}

static unsigned free_stems(shoal_worker_t *w)
{
    shoal_inst_t *inst;
    unsigned n = 0;

    for (inst = w->insts; inst != NULL; inst = inst->next)
        if (inst->phase == SHOAL_PH_STEM && inst->pe.pool == NULL)
            n++;
    return n;
}

static void send_status(shoal_worker_t *w)
{
    shoal_strbuf_t *b = &w->tmp;
    shoal_pool_t *pool;
    unsigned busy = 0;
    int first = 1;

    for (pool = w->pools.pools; pool != NULL; pool = pool->next)
        busy += pool->busy;
    shoal_strbuf_reset(b);
    shoal_strbuf_printf(b, "{\"slots\":%u,\"busy\":%u,\"stems\":%u,\"pools\":[", w->cfg.slots, busy,
                        free_stems(w));
    for (pool = w->pools.pools; pool != NULL; pool = pool->next) {
        if (shoal_pool_size(pool) == 0 && !pool->current)
            continue;
        shoal_strbuf_printf(b,
                            "%s{\"function\":\"%s\",\"version\":%llu,\"warm\":%u,\"idle\":%u,"
                            "\"busy\":%u}",
                            first ? "" : ",", pool->fn.name, (unsigned long long)pool->fn.version,
                            pool->idle + pool->busy, pool->idle, pool->busy);
        first = 0;
    }
    shoal_strbuf_append(b, "]}", 2);
    if (b->oom)
        return;
    if (send_frame(w, SHOAL_FRAME_STATUS, 0, strdup(b->p), NULL, 0, NULL) == 0) {
        w->status_dirty = 0;
        w->status_last_ms = shoal_util_now_ms();
    }
}

void shoal_worker_changed(shoal_worker_t *w)
{
    w->status_dirty = 1;
}

/* Writes what it can without waiting: the event loop must never stall on a slow reader of the
 * worker's stderr. What does not fit now is dropped and counted. */
static void log_write(shoal_worker_t *w, const char *p, size_t len)
{
    if (!w->errout_ready) {
        shoal_util_errout_open(&w->errout);
        w->errout_ready = 1;
    }
    if (w->log_dropped > 0) {
        char note[96];
        int n = snprintf(note, sizeof(note),
                         "shoal-worker: %llu bytes of function logs dropped: stderr is slow\n",
                         (unsigned long long)w->log_dropped);
        if (shoal_util_errout_put(&w->errout, note, (size_t)n) != n)
            goto drop; /* still full (or the note went out in part: the count stays) */
        w->log_dropped = 0;
    }
    while (len > 0) {
        ssize_t n = shoal_util_errout_put(&w->errout, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        len -= (size_t)n;
    }
drop:
    w->log_dropped += len;
}

/* Sends the queued log records to the controller in one LOG frame. Without a connection they
 * are dropped: stderr has them. */
static void logq_flush(shoal_worker_t *w)
{
    char meta[48];
    size_t mlen = 2;
    shoal_wreq_t *wr;
    uint8_t *block;

    if (w->logq_len == 0 && w->logq_dropped == 0)
        return;
    if (w->conn == NULL || !w->conn->up || !w->welcomed)
        goto out;
    memcpy(meta, "{}", 2);
    if (w->logq_dropped > 0)
        mlen = (size_t)snprintf(meta, sizeof(meta), "{\"dropped\":%llu}",
                                (unsigned long long)w->logq_dropped);
    /* One allocation for meta and records, freed with the write (on_write frees wr->meta). */
    if ((block = malloc(mlen + w->logq_len)) == NULL || (wr = calloc(1, sizeof(*wr))) == NULL) {
        free(block);
        w->logq_dropped += w->logq_len;
        w->logq_len = 0;
        return;
    }
    memcpy(block, meta, mlen);
    memcpy(block + mlen, w->logq, w->logq_len);
    wr->meta = (char *)block;
    if (write_frame(w, wr, SHOAL_FRAME_LOG, 0, (char *)block, mlen, block + mlen, w->logq_len) <
        0) {
        free(block);
        free(wr);
    }
out:
    w->logq_len = 0;
    w->logq_dropped = 0;
}

static void on_log_timer(uv_timer_t *t)
{
    logq_flush(t->data);
}

/* Queues text (one or more lines) of inst's invocation for the controller. */
static void logq_put(shoal_worker_t *w, shoal_inst_t *inst, const char *text, size_t len)
{
    shoal_frame_log_rec_t rec = {.ts_ms = shoal_util_wall_ms(),
                                 .rank = inst->group != NULL ? inst->rank : -1,
                                 .function = inst->fn.name,
                                 .function_len = strlen(inst->fn.name),
                                 .invocation_id = inst->inv.invocation_id,
                                 .invocation_id_len = strlen(inst->inv.invocation_id),
                                 .text = text,
                                 .text_len = len};
    int err;

    if (w->conn == NULL || !w->conn->up)
        return;
    if (w->logq == NULL && (w->logq = malloc(SHOAL_FRAME_LOG_MAX)) == NULL)
        return;
    if ((err = shoal_frame_log_put(w->logq, SHOAL_FRAME_LOG_MAX, &w->logq_len, &rec)) == -ENOSPC) {
        logq_flush(w);
        /* A record larger than a whole frame is cut (the stderr copy is whole). */
        if (rec.text_len > SHOAL_FRAME_LOG_MAX / 2)
            rec.text_len = SHOAL_FRAME_LOG_MAX / 2;
        err = shoal_frame_log_put(w->logq, SHOAL_FRAME_LOG_MAX, &w->logq_len, &rec);
    }
    if (err < 0) {
        w->logq_dropped += len;
        return;
    }
    /* Lines reach the controller within SHOAL_FRAME_LOG_INTERVAL_MS, in frames of a useful size
     * when a function logs a lot. */
    if (w->logq_len >= SHOAL_FRAME_LOG_MAX / 2)
        logq_flush(w);
    else if (!uv_is_active((uv_handle_t *)&w->log_timer))
        uv_timer_start(&w->log_timer, on_log_timer, SHOAL_FRAME_LOG_INTERVAL_MS, 0);
}

void shoal_worker_log(shoal_worker_t *w, shoal_inst_t *inst, const char *text, size_t len)
{
    static const char cut[] = "[log cut off: an invocation's logs, prefixes included, are at most "
                              "10 MB]\n";
    shoal_strbuf_t *b = &w->tmp;
    size_t start = 0, i;

    if (inst->inv.log_bytes >= SHOAL_CHANNEL_LOG_TOTAL_MAX)
        return; /* cut off: the runtime bounds logs too, but a hostile one is stopped here */
    shoal_strbuf_reset(b);
    for (i = 0; i <= len; i++) {
        if (i < len && text[i] != '\n')
            continue;
        if (i > start || i == len) {
            if (inst->group != NULL) /* a rank of a group: say which */
                shoal_strbuf_printf(b, "%s[%s#%d] ", inst->fn.name, inst->inv.invocation_id,
                                    inst->rank);
            else
                shoal_strbuf_printf(b, "%s[%s] ", inst->fn.name, inst->inv.invocation_id);
            shoal_strbuf_append(b, text + start, i - start);
            shoal_strbuf_append(b, "\n", 1);
        }
        start = i + 1;
    }
    if (b->oom)
        return;
    /* The budget counts what reaches stderr, the prefix of every line included: otherwise a
     * function logging empty lines (which cost it nothing) would write ~50 bytes each, without
     * end. The line that crosses the budget is cut and followed by a notice. */
    if (inst->inv.log_bytes + b->len > SHOAL_CHANNEL_LOG_TOTAL_MAX) {
        size_t keep = SHOAL_CHANNEL_LOG_TOTAL_MAX - inst->inv.log_bytes;
        while (keep > 0 && b->p[keep - 1] != '\n')
            keep--;
        b->len = keep;
        shoal_strbuf_printf(b, "%s[%s] %s", inst->fn.name, inst->inv.invocation_id, cut);
        inst->inv.log_bytes = SHOAL_CHANNEL_LOG_TOTAL_MAX;
        if (!b->oom)
            log_write(w, b->p, b->len);
        logq_put(w, inst, cut, sizeof(cut) - 2); /* without its newline */
        return;
    }
    inst->inv.log_bytes += b->len;
    log_write(w, b->p, b->len);
    logq_put(w, inst, text, len);
}

/* ---- zygote ---- */

static void on_zygote_timer(uv_timer_t *t);

static void zygote_restart_later(shoal_worker_t *w)
{
    if (w->stopping)
        return;
    uv_timer_start(&w->zygote_timer, on_zygote_timer, w->zygote_backoff_ms, 0);
    w->zygote_backoff_ms = w->zygote_backoff_ms == 0 ? 100 : w->zygote_backoff_ms * 2;
    if (w->zygote_backoff_ms > ZYGOTE_BACKOFF_MAX_MS)
        w->zygote_backoff_ms = ZYGOTE_BACKOFF_MAX_MS;
}

static shoal_inst_t *inst_by_uid_any(shoal_worker_t *w, uint64_t uid)
{
    shoal_inst_t *inst;

    for (inst = w->insts; inst != NULL; inst = inst->next)
        if (inst->uid == uid)
            return inst;
    return NULL;
}

static void on_forked(shoal_worker_t *w, const shoal_ctl_forked_t *f)
{
    shoal_inst_t *inst = inst_by_uid_any(w, f->req);
    unsigned i;

    if (w->forks_inflight > 0)
        w->forks_inflight--;
    if (inst == NULL || inst->fork_state != 1) {
        if (f->pid > 0)
            kill(f->pid, SIGKILL);
        return;
    }
    inst->fork_state = 2;
    if (inst->stem_ctl_fd >= 0) {
        close(inst->stem_ctl_fd);
        inst->stem_ctl_fd = -1;
    }
    if (f->pid <= 0) {
        SHOAL_ERROR("the zygote could not fork a stem: %s", strerror(-f->pid));
        inst->reaped = 1;
        shoal_inst_kill(inst);
        shoal_inst_maybe_free(inst);
        return;
    }
    w->zygote_backoff_ms = 0;
    inst->pid = f->pid;
    if (inst->kill_pending)
        kill(inst->pid, SIGKILL);
    /* It may have died before we learnt its pid. */
    for (i = 0; i < sizeof(w->orphans) / sizeof(w->orphans[0]); i++) {
        if (w->orphans[i] == inst->pid) {
            w->orphans[i] = 0;
            shoal_inst_exited(inst, w->orphan_status[i]);
            break;
        }
    }
}

static void on_zygote(uv_poll_t *h, int status, int events)
{
    shoal_worker_t *w = h->data;
    shoal_ctl_forked_t f;
    ssize_t n;

    (void)status;
    (void)events;
    for (;;) {
        n = recv(w->zygote_fd, &f, sizeof(f), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            /* The zygote is gone; SIGCHLD restarts it. */
            uv_poll_stop(&w->zygote_poll);
            return;
        }
        if (n == (ssize_t)sizeof(f) && f.magic == SHOAL_CTL_MAGIC && f.type == SHOAL_CTL_FORKED)
            on_forked(w, &f);
        else
            SHOAL_WARN("malformed message from the zygote");
    }
    shoal_worker_send_fork(w);
}

static void zygote_watch(shoal_worker_t *w)
{
    uv_poll_init(&w->loop, &w->zygote_poll, w->zygote_fd);
    w->zygote_poll.data = w;
    w->zygote_poll_open = 1;
    uv_poll_start(&w->zygote_poll, UV_READABLE, on_zygote);
    shoal_worker_send_fork(w);
}

static void on_zygote_poll_closed(uv_handle_t *h)
{
    shoal_worker_t *w = h->data;

    close(w->zygote_fd);
    w->zygote_fd = -1;
    w->zygote_poll_open = 0;
}

static void zygote_close(shoal_worker_t *w)
{
    if (w->zygote_poll_open == 1) {
        w->zygote_poll_open = 2; /* closing */
        uv_close((uv_handle_t *)&w->zygote_poll, on_zygote_poll_closed);
    }
}

/* The sandbox's CONFIG, the zygote's first message (runtime/sandbox.h): the worker-wide limits
 * and the cgroup directories the stems go into. */
static int send_sandbox_config(shoal_worker_t *w, int fd)
{
    int fds[SHOAL_SANDBOX_CGROUPS_MAX], n = 0;
    shoal_sandbox_config_t c;

    memset(&c, 0, sizeof(c));
    c.magic = SHOAL_CTL_MAGIC;
    c.type = SHOAL_CTL_CONFIG;
    c.uid_base = w->cfg.uid_base ? w->cfg.uid_base : SHOAL_SANDBOX_UID_BASE;
    c.uid_count = SHOAL_SANDBOX_UID_COUNT;
    c.tasks = w->cfg.tasks ? w->cfg.tasks : SHOAL_SANDBOX_TASKS;
    c.nofile = w->cfg.fds ? w->cfg.fds : SHOAL_SANDBOX_NOFILE;
    if (w->cg != NULL)
        n = shoal_cgroup_dirs(w->cg, fds, SHOAL_SANDBOX_CGROUPS_MAX);
    c.ncgroups = (uint32_t)n;
    return shoal_proc_send_fds(fd, &c, sizeof(c), fds, n);
}

/* Forks the zygote; watch: also watch its socket (not before the loop exists). */
static int zygote_start(shoal_worker_t *w, int watch)
{
    int sv[2], err;
    pid_t pid;

    if (w->zygote_poll_open != 0)
        return -EBUSY;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    err = shoal_proc_spawn_zygote(w->cfg.runtime, sv[1], &pid);
    close(sv[1]);
    if (err < 0) {
        close(sv[0]);
        return err;
    }
    if ((err = send_sandbox_config(w, sv[0])) < 0) {
        kill(pid, SIGKILL); /* reaped by the SIGCHLD handler as an unknown child */
        close(sv[0]);
        return err;
    }
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    w->zygote_fd = sv[0];
    w->zygote_pid = pid;
    SHOAL_DEBUG("zygote started (pid %d)", (int)pid);
    if (watch)
        zygote_watch(w);
    return 0;
}

static void on_zygote_timer(uv_timer_t *t)
{
    shoal_worker_t *w = t->data;
    int err;

    if (w->stopping || w->zygote_pid > 0)
        return;
    if (w->zygote_poll_open != 0) {
        zygote_restart_later(w);
        return;
    }
    if ((err = zygote_start(w, 1)) < 0) {
        SHOAL_ERROR("cannot start the zygote %s: %s", w->cfg.runtime, strerror(-err));
        zygote_restart_later(w);
    }
}

static void zygote_died(shoal_worker_t *w, int status)
{
    shoal_inst_t *inst, *next;
    char how[96];

    SHOAL_WARN("zygote (pid %d) %s; restarting it", (int)w->zygote_pid,
               shoal_proc_describe_exit(status, how, sizeof(how)));
    w->zygote_pid = 0;
    w->forks_inflight = 0;
    zygote_close(w);
    /* A stem requested from it may or may not exist: give up on those instances (a stem that
     * does exist exits when its control socket closes). Queued requests go to the new one. */
    for (inst = w->insts; inst != NULL; inst = next) {
        next = inst->next;
        if (inst->fork_state == 1 && inst->pid == 0) {
            inst->fork_state = 2;
            inst->reaped = 1;
            shoal_inst_fail(inst, "internal", "the zygote died while forking this instance");
            shoal_inst_kill(inst);
            shoal_inst_maybe_free(inst);
        }
    }
    zygote_restart_later(w);
    shoal_worker_replenish(w);
}

void shoal_worker_send_fork(shoal_worker_t *w)
{
    shoal_inst_t *inst;
    shoal_ctl_fork_t msg;
    int fds[2], err;

    if (w->zygote_poll_open != 1 || w->stopping)
        return;
    for (inst = w->insts; inst != NULL && w->forks_inflight < FORKS_INFLIGHT_MAX;
         inst = inst->next) {
        if (inst->fork_state != 0 || inst->phase == SHOAL_PH_DEAD)
            continue;
        msg.magic = SHOAL_CTL_MAGIC;
        msg.type = SHOAL_CTL_FORK;
        msg.req = inst->uid;
        fds[0] = inst->ch.fd;
        fds[1] = inst->stem_ctl_fd;
        if ((err = shoal_proc_send_fds(w->zygote_fd, &msg, sizeof(msg), fds, 2)) < 0) {
            if (err != -EAGAIN)
                SHOAL_WARN("cannot send a fork request to the zygote: %s", strerror(-err));
            return;
        }
        inst->fork_state = 1;
        w->forks_inflight++;
    }
}

/* ---- artifacts ---- */

static void art_fetch(shoal_worker_t *w, shoal_artifact_t *a)
{
    if (a->state != SHOAL_ART_UNKNOWN || w->conn == NULL || !w->conn->up || !w->welcomed)
        return;
    a->fetch_id = ++w->next_id ? w->next_id : ++w->next_id;
    if (send_json(w, SHOAL_FRAME_FETCH, a->fetch_id, json_pack("{s:s}", "sha256", a->sha256)) == 0)
        a->state = SHOAL_ART_FETCHING;
}

shoal_artifact_t *shoal_worker_artifact(shoal_worker_t *w, const char *sha256)
{
    shoal_artifact_t *a;

    for (a = w->arts; a != NULL; a = a->next)
        if (strcmp(a->sha256, sha256) == 0)
            break;
    if (a == NULL) {
        if ((a = calloc(1, sizeof(*a))) == NULL)
            return NULL;
        a->w = w;
        snprintf(a->sha256, sizeof(a->sha256), "%s", sha256);
        snprintf(a->path, sizeof(a->path), "%s/%s.so", w->artdir, sha256);
        a->state = access(a->path, R_OK) == 0 ? SHOAL_ART_READY : SHOAL_ART_UNKNOWN;
        a->work.data = a;
        a->next = w->arts;
        w->arts = a;
    }
    art_fetch(w, a);
    return a;
}

static void art_waiters(shoal_worker_t *w, shoal_artifact_t *a, const char *error)
{
    shoal_inst_t *inst, *next;

    for (inst = w->insts; inst != NULL; inst = next) {
        next = inst->next;
        if (!inst->waiting_artifact || strcmp(inst->fn.sha256, a->sha256) != 0)
            continue;
        if (error == NULL) {
            shoal_inst_specialize(inst);
        } else {
            shoal_inst_fail(inst, "internal", "cannot fetch the artifact of %s: %s", inst->fn.name,
                            error);
            shoal_inst_kill(inst);
        }
    }
}

static void art_work(uv_work_t *req)
{
    shoal_artifact_t *a = req->data;
    char hex[65];

    shoal_util_sha256_hex(a->data, a->len, hex);
    if (strcmp(hex, a->sha256) != 0) {
        a->work_err = -EBADMSG;
        return;
    }
    a->work_err = shoal_util_write_file_durable(a->path, a->data, a->len, 0644);
}

static void art_work_done(uv_work_t *req, int status)
{
    shoal_artifact_t *a = req->data;
    shoal_worker_t *w = a->w;
    char msg[128];

    free(a->data);
    a->data = NULL;
    if (status < 0 && a->work_err == 0)
        a->work_err = status;
    if (a->work_err == 0) {
        a->state = SHOAL_ART_READY;
        SHOAL_DEBUG("cached artifact %s (%zu bytes)", a->sha256, a->len);
        if (!w->stopping)
            art_waiters(w, a, NULL);
        return;
    }
    a->state = SHOAL_ART_UNKNOWN;
    snprintf(msg, sizeof(msg), "%s",
             a->work_err == -EBADMSG ? "its sha256 does not match" : strerror(-a->work_err));
    SHOAL_ERROR("artifact %s: %s", a->sha256, msg);
    if (!w->stopping)
        art_waiters(w, a, msg);
}

/* ---- function table and pools ---- */

static void retire_stale(shoal_worker_t *w)
{
    shoal_inst_t *inst, *next;

    for (inst = w->insts; inst != NULL; inst = next) {
        next = inst->next;
        if (inst->phase == SHOAL_PH_DEAD || inst->pe.pool == NULL || inst->pe.pool->current)
            continue;
        /* Busy ones retire when they finish (shoal_inst_finish); a leased one once its lease
         * ends, which starts now so that its caller's next calls reach the new version. */
        if (inst->inv.kind == SHOAL_INV_LINK)
            shoal_lease_revoke(inst);
        else if (inst->pe.state == SHOAL_ENTRY_IDLE ||
                 (inst->pe.state == SHOAL_ENTRY_STARTING && inst->inv.kind == SHOAL_INV_NONE))
            shoal_inst_kill(inst);
    }
}

static shoal_inst_t *take_stem(shoal_worker_t *w)
{
    shoal_inst_t *inst, *queued = NULL;

    for (inst = w->insts; inst != NULL; inst = inst->next) {
        if (inst->phase != SHOAL_PH_STEM || inst->pe.pool != NULL)
            continue;
        if (inst->fork_state == 2)
            return inst;
        if (queued == NULL)
            queued = inst;
    }
    return queued != NULL ? queued : shoal_inst_create(w);
}

void shoal_worker_replenish(shoal_worker_t *w)
{
    shoal_pool_t *pool;
    unsigned n;

    if (w->stopping)
        return;
    for (pool = w->pools.pools; pool != NULL; pool = pool->next) {
        if (!pool->current || pool->failures > 0)
            continue;
        for (n = shoal_pool_deficit(&w->pools, pool); n > 0; n--) {
            shoal_inst_t *inst = take_stem(w);
            if (inst == NULL)
                break;
            shoal_inst_assign(inst, pool, SHOAL_ENTRY_STARTING);
        }
    }
    for (n = free_stems(w); n < w->cfg.stems; n++)
        if (shoal_inst_create(w) == NULL)
            break;
}

/* Installs fn in the table (a newer version supersedes; an older one is ignored). */
static shoal_pool_t *apply_fn(shoal_worker_t *w, const shoal_fn_t *fn)
{
    shoal_pool_t *cur = shoal_pools_current(&w->pools, fn->name), *pool;

    if (cur != NULL && cur->fn.version > fn->version)
        return shoal_pools_find(&w->pools, fn->name, fn->version);
    if ((pool = shoal_pools_update(&w->pools, fn)) == NULL)
        return NULL;
    pool->failures = 0;
    if (cur != pool)
        retire_stale(w);
    shoal_worker_artifact(w, fn->sha256); /* fetch it ahead of the first invocation */
    shoal_worker_changed(w);
    return pool;
}

shoal_inst_t *shoal_worker_acquire(shoal_worker_t *w, shoal_pool_t *pool, int replenish)
{
    shoal_pool_entry_t *e;
    shoal_inst_t *inst;

    switch (shoal_pool_acquire(&w->pools, pool, &e)) {
    case SHOAL_ACQ_IDLE:
        shoal_worker_changed(w);
        shoal_lease_pool_taken(w, pool); /* its last free instance: leases give way */
        return (shoal_inst_t *)e;
    case SHOAL_ACQ_EVICT:
        shoal_inst_kill((shoal_inst_t *)e);
        /* fall through */
    case SHOAL_ACQ_NEW:
        if ((inst = take_stem(w)) == NULL)
            return NULL;
        shoal_inst_assign(inst, pool, SHOAL_ENTRY_BUSY);
        if (inst->phase == SHOAL_PH_DEAD)
            return NULL;
        if (replenish)
            shoal_worker_replenish(w);
        shoal_lease_pool_taken(w, pool);
        return inst;
    case SHOAL_ACQ_FULL:
        /* Leased instances must not starve invocations: give one back for the next try. */
        shoal_lease_reclaim(w, pool);
        break;
    }
    return NULL;
}

void shoal_worker_dispatch_call(shoal_worker_t *w, shoal_inst_t *caller, const char *function,
                                uint64_t in_off, uint64_t in_len)
{
    shoal_pool_t *pool = shoal_pools_current(&w->pools, function);
    shoal_inst_t *callee;
    char msg[256];
    int n, err;

    /* A warm idle instance here: no round trip to the controller. */
    if (pool != NULL && shoal_pool_first_idle(pool) != NULL &&
        in_len <= ((shoal_inst_t *)shoal_pool_first_idle(pool))->ch.lay.in_cap) {
        callee = shoal_worker_acquire(w, pool, 1);
        memset(&callee->inv, 0, sizeof(callee->inv));
        callee->inv.kind = SHOAL_INV_LOCAL;
        callee->inv.caller_uid = caller->uid;
        callee->inv.caller_seq = caller->call_seq;
        callee->inv.caller_out_off = caller->call_out_off;
        callee->inv.caller_out_cap = caller->call_out_cap;
        memcpy(callee->inv.invocation_id, caller->inv.invocation_id,
               sizeof(callee->inv.invocation_id));
        callee->inv.fn_timeout_ms = pool->fn.timeout_ms;
        callee->inv.deadline_ms = pool->fn.timeout_ms;
        callee->inv.depth = caller->inv.depth + 1;
        callee->inv.start_ns = shoal_util_now_ns();
        callee->inv.input_len = in_len;
        callee->inv.input_ready = 1;
        if (shoal_inst_build_meta(callee, NULL, function) < 0) {
            shoal_inst_fail(callee, "internal", "cannot build the call's metadata");
            shoal_inst_finish(callee);
            return;
        }
        if (in_len > 0)
            memcpy(callee->ch.in, caller->ch.call + in_off, in_len);
        shoal_inst_start_timer(callee, pool->fn.timeout_ms);
        shoal_inst_run(callee);
        return;
    }
    if ((err = shoal_worker_send_call(w, caller, function, 0, in_off, in_len)) < 0) {
        n = snprintf(msg, sizeof(msg), "cannot call %s: %s", function,
                     err == -ENOTCONN ? "no connection to the controller" : strerror(-err));
        shoal_inst_call_done(caller, err == -ENOTCONN ? -ECONNREFUSED : err, msg, (size_t)n, 0);
    }
}

/* ---- frames from the controller ---- */

/* The JSON view worker/group.c reads of a group INVOKE: the extension's "group" plus the binary
 * fields under their JSON names of protocol version 1, the request meta as an object. Groups are
 * not the hot path; this keeps one group parser. */
static json_t *group_view(const shoal_invmeta_invoke_t *m, json_t *ext)
{
    json_t *j = json_object(), *meta = json_object();
    shoal_invmeta_kv_t kv;
    size_t off = 0;
    char key[SHOAL_INVMETA_KEY_MAX + 1];

    if (j == NULL || meta == NULL) {
        json_decref(j);
        json_decref(meta);
        return NULL;
    }
    while (shoal_invmeta_kv_next(m->kv, m->kv_len, &off, &kv) == 1) {
        memcpy(key, kv.key, kv.key_len);
        key[kv.key_len] = '\0';
        json_object_set_new(meta, key, json_stringn_nocheck(kv.val, kv.val_len));
    }
    json_object_set(j, "group", json_object_get(ext, "group"));
    json_object_set_new(j, "meta", meta);
    json_object_set_new(j, "invocation_id", json_stringn_nocheck(m->id, m->id_len));
    json_object_set_new(j, "timeout_ms", json_integer(m->timeout_ms));
    json_object_set_new(j, "depth", json_integer(m->depth));
    return j;
}

/* An INVOKE's binary meta (transport/invmeta.h) is in: pick the instance (or the group) and tell
 * the reader to put the input straight into its channel. The meta's lengths were all checked by
 * the decoder; the function is looked up by name and version in our own table. */
static int invoke_meta(shoal_worker_t *w, const shoal_frame_hdr *hdr, const char *meta,
                       size_t meta_len, size_t data_len, uint8_t **dst)
{
    shoal_invmeta_invoke_t m;
    json_t *ext = NULL, *j, *v;
    char name[SHOAL_INVMETA_NAME_MAX + 1];
    shoal_pool_t *pool;
    shoal_inst_t *inst;
    shoal_fn_t fn;
    uint64_t left;

    /* (json_is_object evaluates its argument twice: parse first.) */
    int bad = shoal_invmeta_invoke_decode((const uint8_t *)meta, meta_len, &m) < 0;
    if (!bad && m.ext_len > 0) {
        ext = json_loadb(m.ext, m.ext_len, 0, NULL);
        bad = !json_is_object(ext);
    }
    if (bad) {
        send_error_result(w, hdr->id, "internal", "worker %s: malformed INVOKE", w->cfg.node);
        goto out;
    }
    memcpy(name, m.function, m.function_len);
    name[m.function_len] = '\0';
    if (data_len > w->body_max) {
        send_error_result(w, hdr->id, "too_large",
                          "input of %zu bytes exceeds the limit of %llu bytes", data_len,
                          (unsigned long long)w->body_max);
        goto out;
    }
    pool = shoal_pools_find(&w->pools, name, m.version);
    if (pool == NULL && (v = json_object_get(ext, "fn")) != NULL) {
        /* The controller may name a version together with its object (tests, and any version
         * this worker cannot have heard of). */
        if (shoal_fn_from_json(v, &fn) == 0 && strcmp(fn.name, name) == 0 &&
            fn.version == m.version)
            pool = apply_fn(w, &fn);
    } else if (pool != NULL && !pool->current && shoal_pools_current(&w->pools, name) == NULL) {
        /* Deleted here but invoked there: the controller's table wins, as it does in WELCOME. */
        fn = pool->fn;
        pool = apply_fn(w, &fn);
    }
    if (pool == NULL) {
        send_error_result(w, hdr->id, "not_found", "node %s does not know %s version %u",
                          w->cfg.node, name, m.version);
        goto out;
    }
    if ((v = json_object_get(ext, "group")) != NULL) {
        if ((j = group_view(&m, ext)) == NULL) {
            send_error_result(w, hdr->id, "internal", "out of memory");
            goto out;
        }
        shoal_group_invoke(w, hdr, j, json_object_get(j, "group"), pool, data_len, dst);
        json_decref(j);
        goto out;
    }
    if ((inst = shoal_worker_acquire(w, pool, 1)) == NULL) {
        send_error_result(w, hdr->id, "overload",
                          "node %s has no free instance for %s (max_instances %u, slots %u)",
                          w->cfg.node, name, pool->fn.max_instances, w->cfg.slots);
        goto out;
    }
    memset(&inst->inv, 0, sizeof(inst->inv));
    inst->inv.kind = SHOAL_INV_REMOTE;
    inst->inv.frame_id = hdr->id;
    inst->inv.conn_gen = w->conn_gen;
    inst->inv.start_ns = shoal_util_now_ns();
    inst->inv.fn_timeout_ms = pool->fn.timeout_ms;
    inst->inv.depth = m.depth;
    _Static_assert(sizeof(inst->inv.invocation_id) > SHOAL_INVMETA_ID_MAX, "id");
    memcpy(inst->inv.invocation_id, m.id, m.id_len);
    inst->inv.invocation_id[m.id_len] = '\0';
    left = m.timeout_ms < pool->fn.timeout_ms ? m.timeout_ms : pool->fn.timeout_ms;
    inst->inv.deadline_ms = left;
    inst->inv.input_len = data_len;
    if (data_len > inst->ch.lay.in_cap ||
        shoal_inst_build_meta_kv(inst, m.kv, m.kv_len, pool->fn.name) < 0) {
        shoal_inst_fail(inst, data_len > inst->ch.lay.in_cap ? "too_large" : "internal",
                        "the request does not fit the instance's channel");
        if (inst->phase == SHOAL_PH_READY)
            shoal_inst_finish(inst);
        goto out;
    }
    shoal_inst_start_timer(inst, left);
    w->rx_inst = inst;
    if (data_len > 0)
        *dst = inst->ch.in;
out:
    json_decref(ext);
    return 0;
}

static int on_meta(void *opaque, const shoal_frame_hdr *hdr, const char *meta, size_t meta_len,
                   size_t data_len, uint8_t **dst)
{
    shoal_worker_t *w = opaque;
    shoal_artifact_t *a;
    shoal_inst_t *inst;

    switch (hdr->type) {
    case SHOAL_FRAME_INVOKE:
        return invoke_meta(w, hdr, meta, meta_len, data_len, dst);
    case SHOAL_FRAME_ARTIFACT:
        for (a = w->arts; a != NULL; a = a->next)
            if (a->state == SHOAL_ART_FETCHING && a->fetch_id == hdr->id)
                break;
        if (a == NULL || data_len == 0 || data_len > w->body_max + (64u << 20))
            return 0;
        if ((a->data = malloc(data_len)) == NULL)
            return 0;
        a->len = data_len;
        w->rx_art = a;
        *dst = a->data;
        return 0;
    case SHOAL_FRAME_CALL_RESULT:
        for (inst = w->insts; inst != NULL; inst = inst->next)
            if (inst->phase != SHOAL_PH_DEAD && inst->calling && inst->call_frame_id == hdr->id)
                break;
        if (inst == NULL)
            return 0;
        w->rx_caller = inst;
        if (data_len > 0 && data_len <= inst->call_out_cap)
            *dst = inst->ch.call + inst->call_out_off;
        return 0;
    }
    return 0;
}

static void on_welcome(shoal_worker_t *w, json_t *j)
{
    json_t *fns = json_object_get(j, "functions"), *o, *mb;
    shoal_pool_t *pool;
    shoal_inst_t *inst;
    shoal_fn_t fn;
    size_t i;
    int found;

    mb = json_object_get(j, "max_body");
    if (json_is_integer(mb) && json_integer_value(mb) >= (1 << 20) &&
        json_integer_value(mb) <= (1ll << 30)) {
        w->body_max = (uint64_t)json_integer_value(mb);
        w->rd->max_payload = (uint32_t)(w->body_max + PAYLOAD_SLACK);
    }
    /* The table replaces ours: names it lacks were deleted while we were away. */
    for (pool = w->pools.pools; pool != NULL; pool = pool->next) {
        if (!pool->current)
            continue;
        found = 0;
        json_array_foreach(fns, i, o)
        {
            const char *name = json_string_value(json_object_get(o, "name"));
            if (name != NULL && strcmp(name, pool->fn.name) == 0)
                found = 1;
        }
        if (!found)
            pool->current = 0;
    }
    json_array_foreach(fns, i, o)
    {
        if (shoal_fn_from_json(o, &fn) == 0)
            apply_fn(w, &fn);
        else
            SHOAL_WARN("ignoring a malformed function in WELCOME");
    }
    retire_stale(w);
    w->welcomed = 1;
    w->backoff_ms = BACKOFF_MIN_MS;
    /* Fetches that a lost connection interrupted. */
    for (inst = w->insts; inst != NULL; inst = inst->next)
        if (inst->waiting_artifact)
            shoal_worker_artifact(w, inst->fn.sha256);
    shoal_worker_replenish(w);
    send_status(w);
}

static void on_func(shoal_worker_t *w, uint32_t id, json_t *j)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    shoal_fn_t fn;

    if (json_is_true(json_object_get(j, "deleted"))) {
        if (name != NULL) {
            shoal_pools_delete(&w->pools, name);
            retire_stale(w);
            shoal_worker_changed(w);
        }
    } else if (shoal_fn_from_json(j, &fn) == 0) {
        apply_fn(w, &fn);
    } else {
        SHOAL_WARN("ignoring a malformed FUNC");
    }
    send_json(w, SHOAL_FRAME_FUNC_ACK, id, json_object());
    shoal_worker_replenish(w);
}

/* A CALL_RESULT: the same binary meta as RESULT (transport/invmeta.h), decoded with every length
 * checked. A malformed one fails the call rather than the connection. */
static void on_call_result(shoal_worker_t *w, const char *meta, size_t meta_len, uint8_t *data,
                           size_t data_len)
{
    shoal_inst_t *caller = w->rx_caller;
    shoal_invmeta_result_t rm;
    char msg[128];
    int n;

    w->rx_caller = NULL;
    if (caller == NULL || !caller->calling)
        return;
    if (shoal_invmeta_result_decode((const uint8_t *)meta, meta_len, &rm) < 0) {
        static const char bad[] = "the controller sent a malformed CALL_RESULT";
        shoal_inst_call_done(caller, -EPROTO, bad, sizeof(bad) - 1, 0);
        return;
    }
    if (rm.ok) {
        if (data_len > 0 && data == NULL) {
            n = snprintf(msg, sizeof(msg), "the callee's output of %zu bytes is too large",
                         data_len);
            shoal_inst_call_done(caller, -EFBIG, msg, (size_t)n, 0);
        } else {
            shoal_inst_call_done(caller, 0, NULL, 0, data_len);
        }
        return;
    }
    /* The message is NUL-free and bounded (the decoder checked); call_done bounds it again. */
    if (rm.error_len == 0) {
        rm.error = "the call failed";
        rm.error_len = strlen(rm.error);
    }
    shoal_inst_call_done(caller, shoal_kind_errno(shoal_invmeta_kind_name(rm.kind)), rm.error,
                         rm.error_len, 0);
}

static int on_frame(void *opaque, const shoal_frame_hdr *hdr, const char *meta, size_t meta_len,
                    uint8_t *data, size_t data_len)
{
    shoal_worker_t *w = opaque;
    shoal_artifact_t *a;
    shoal_inst_t *inst;
    json_t *j = NULL;
    const char *e;
    int err = 0;

    if (hdr->type == SHOAL_FRAME_INVOKE) {
        /* Hot path: everything was decided from the meta. */
        inst = w->rx_inst;
        w->rx_inst = NULL;
        if (inst != NULL && inst->inv.kind == SHOAL_INV_GROUP && !inst->inv.running) {
            shoal_group_input_ready(inst->group);
        } else if (inst != NULL && inst->inv.kind == SHOAL_INV_REMOTE && !inst->inv.running) {
            inst->inv.input_ready = 1;
            if (inst->phase == SHOAL_PH_READY)
                shoal_inst_run(inst);
        }
        return 0;
    }
    if (hdr->type == SHOAL_FRAME_CALL_RESULT) {
        on_call_result(w, meta, meta_len, data, data_len);
        return 0;
    }
    j = json_loadb(meta, meta_len, 0, NULL);
    if (!json_is_object(j)) {
        SHOAL_WARN("controller sent a frame (type %d) with malformed meta", hdr->type);
        err = -EPROTO;
        goto out;
    }
    switch (hdr->type) {
    case SHOAL_FRAME_WELCOME:
        SHOAL_INFO("connected to the controller at %s as node %s", w->cfg.controller, w->cfg.node);
        on_welcome(w, j);
        break;
    case SHOAL_FRAME_FUNC:
        on_func(w, hdr->id, j);
        break;
    case SHOAL_FRAME_ARTIFACT:
        a = w->rx_art;
        w->rx_art = NULL;
        if (a == NULL) {
            for (a = w->arts; a != NULL; a = a->next)
                if (a->state == SHOAL_ART_FETCHING && a->fetch_id == hdr->id)
                    break;
            if (a == NULL)
                break;
        }
        if ((e = json_string_value(json_object_get(j, "error"))) != NULL || data == NULL) {
            free(a->data);
            a->data = NULL;
            a->state = SHOAL_ART_UNKNOWN;
            art_waiters(w, a, e != NULL ? e : "empty or unreadable artifact");
            break;
        }
        a->state = SHOAL_ART_WRITING;
        a->len = data_len;
        a->work_err = 0;
        if ((err = uv_queue_work(&w->loop, &a->work, art_work, art_work_done)) < 0) {
            free(a->data);
            a->data = NULL;
            a->state = SHOAL_ART_UNKNOWN;
            art_waiters(w, a, uv_strerror(err));
            err = 0;
        }
        break;
    case SHOAL_FRAME_ERROR:
        SHOAL_ERROR("the controller refused us: %s",
                    json_string_value(json_object_get(j, "error")) ?: "(no message)");
        err = -ECONNABORTED;
        break;
    default:
        SHOAL_WARN("controller sent an unexpected frame type %d", hdr->type);
        err = -EPROTO;
        break;
    }
out:
    json_decref(j);
    return err;
}

/* ---- the connection ---- */

static void on_reconnect_timer(uv_timer_t *t)
{
    connect_now(t->data);
}

static void reconnect_later(shoal_worker_t *w)
{
    if (w->stopping)
        return;
    uv_timer_start(&w->reconnect_timer, on_reconnect_timer, w->backoff_ms, 0);
    w->backoff_ms *= 2;
    if (w->backoff_ms > BACKOFF_MAX_MS)
        w->backoff_ms = BACKOFF_MAX_MS;
}

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_close(shoal_worker_t *w)
{
    shoal_conn_t *c = w->conn;
    shoal_inst_t *inst, *next;
    shoal_artifact_t *a;
    static const char lost[] = "lost the connection to the controller";

    if (c == NULL)
        return;
    w->conn = NULL;
    c->up = 0;
    w->conn_gen++;
    w->welcomed = 0;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    /* In-flight invocations from the controller are abandoned (it failed them already): those
     * that run finish and their answer is dropped; those still waiting for input go idle. */
    if (w->rx_inst != NULL) {
        shoal_wire_drop_dst(w->rd);
        w->rx_inst = NULL;
    }
    w->rx_caller = NULL;
    if (w->rx_art != NULL) {
        free(w->rx_art->data);
        w->rx_art->data = NULL;
        w->rx_art = NULL;
    }
    /* Groups from the controller are cancelled: their ranks may wait on each other for long. */
    shoal_group_conn_lost(w);
    for (inst = w->insts; inst != NULL; inst = next) {
        next = inst->next;
        if (inst->phase == SHOAL_PH_DEAD)
            continue;
        shoal_inst_abandon(inst);
        if (inst->calling && inst->call_frame_id != 0)
            shoal_inst_call_done(inst, -ECONNRESET, lost, sizeof(lost) - 1, 0);
    }
    for (a = w->arts; a != NULL; a = a->next)
        if (a->state == SHOAL_ART_FETCHING)
            a->state = SHOAL_ART_UNKNOWN;
    shoal_wire_free(w->rd);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    shoal_conn_t *c = h->data;
    uint8_t *p;
    size_t len;

    (void)suggested;
    shoal_wire_buf(c->w->rd, &p, &len);
    buf->base = (char *)p;
    buf->len = len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    shoal_conn_t *c = s->data;
    shoal_worker_t *w = c->w;
    int err;

    (void)buf;
    if (c != w->conn)
        return;
    if (nread < 0) {
        SHOAL_WARN("lost the controller connection: %s", uv_strerror((int)nread));
        conn_close(w);
        reconnect_later(w);
        return;
    }
    if ((err = shoal_wire_commit(w->rd, (size_t)nread)) != 0) {
        if (err != -ECONNABORTED)
            SHOAL_WARN("dropping the controller connection: %s", strerror(-err));
        conn_close(w);
        reconnect_later(w);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    shoal_conn_t *c = req->data;
    shoal_worker_t *w = c->w;
    static const shoal_wire_cbs_t cbs = {on_meta, on_frame};
    int err;

    if (c != w->conn)
        return; /* closed meanwhile */
    if (status < 0) {
        SHOAL_DEBUG("cannot connect to %s: %s", w->cfg.controller, uv_strerror(status));
        conn_close(w);
        reconnect_later(w);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 10);
    c->up = 1;
    shoal_wire_init(w->rd, (uint32_t)(w->body_max + PAYLOAD_SLACK), &cbs, w);
    if ((err = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read)) < 0) {
        conn_close(w);
        reconnect_later(w);
        return;
    }
    send_hello(w);
}

/* Resolves "ADDR:PORT" ("[v6]:PORT" too). */
static int resolve(const char *spec, struct sockaddr_storage *ss)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    size_t hlen;

    if (colon == NULL || colon == spec || colon[1] == '\0')
        return -EINVAL;
    hlen = (size_t)(colon - spec);
    if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']') {
        spec++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, spec, hlen);
    host[hlen] = '\0';
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -EHOSTUNREACH;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static void connect_now(shoal_worker_t *w)
{
    struct sockaddr_storage ss;
    shoal_conn_t *c;
    int err;

    if (w->stopping || w->conn != NULL)
        return;
    if ((err = resolve(w->cfg.controller, &ss)) < 0) {
        SHOAL_WARN("cannot resolve the controller address %s", w->cfg.controller);
        reconnect_later(w);
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        reconnect_later(w);
        return;
    }
    c->w = w;
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    w->conn = c;
    if ((err = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&ss, on_connect)) < 0) {
        SHOAL_DEBUG("cannot connect to %s: %s", w->cfg.controller, uv_strerror(err));
        conn_close(w);
        reconnect_later(w);
    }
}

/* ---- signals and the tick ---- */

static void on_sigchld(uv_signal_t *h, int sig)
{
    shoal_worker_t *w = h->data;
    shoal_inst_t *inst;
    pid_t pid;
    int status;

    (void)sig;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == w->zygote_pid) {
            zygote_died(w, status);
            continue;
        }
        for (inst = w->insts; inst != NULL; inst = inst->next)
            if (inst->pid == pid)
                break;
        if (inst != NULL) {
            shoal_inst_exited(inst, status);
            shoal_worker_replenish(w);
        } else {
            /* A stem whose pid the zygote has not told us yet (or one we gave up on). */
            w->orphans[w->orphan_next] = pid;
            w->orphan_status[w->orphan_next] = status;
            w->orphan_next = (w->orphan_next + 1) % (sizeof(w->orphans) / sizeof(w->orphans[0]));
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    shoal_worker_t *w = t->data;
    uint64_t now = shoal_util_now_ms();
    shoal_pool_entry_t *e;

    while ((e = shoal_pools_expired(&w->pools, now, w->cfg.keep_alive_ms)) != NULL)
        shoal_inst_kill((shoal_inst_t *)e);
    shoal_lease_tick(w); /* direct calls past their function's timeout */
    shoal_pools_gc(&w->pools);
    shoal_group_spares_expire(w, now, w->cfg.keep_alive_ms ? w->cfg.keep_alive_ms : 1);
    if (w->conn != NULL && w->conn->up && w->welcomed &&
        (w->status_dirty || now - w->status_last_ms >= STATUS_HEARTBEAT_MS))
        send_status(w);
}

static void on_drain_idle(uv_idle_t *h)
{
    shoal_worker_t *w = h->data;
    shoal_inst_t *inst, *next;
    int more = 0;

    for (inst = w->insts; inst != NULL; inst = next) {
        next = inst->next;
        if (inst->drain_more) {
            shoal_inst_drain(inst);
            more |= inst->drain_more;
        }
    }
    if (!more)
        uv_idle_stop(h);
}

void shoal_worker_drain_later(shoal_worker_t *w)
{
    if (!w->stopping)
        uv_idle_start(&w->drain_idle, on_drain_idle);
}

static void stop(shoal_worker_t *w)
{
    shoal_inst_t *inst, *next;

    if (w->stopping)
        return;
    SHOAL_INFO("shutting down");
    w->stopping = 1;
    conn_close(w);
    flush_frames(w); /* what was still queued is cancelled now, not left behind */
    shoal_group_peer_gone(w);
    shoal_peer_destroy(w->peer);
    w->peer = NULL;
    for (inst = w->insts; inst != NULL; inst = next) {
        next = inst->next;
        shoal_inst_kill(inst);
        shoal_inst_maybe_free(inst);
    }
    if (w->zygote_pid > 0)
        kill(w->zygote_pid, SIGKILL);
    zygote_close(w);
    uv_close((uv_handle_t *)&w->sigchld, NULL);
    uv_close((uv_handle_t *)&w->sigterm, NULL);
    uv_close((uv_handle_t *)&w->sigint, NULL);
    uv_close((uv_handle_t *)&w->reconnect_timer, NULL);
    uv_close((uv_handle_t *)&w->tick_timer, NULL);
    uv_close((uv_handle_t *)&w->zygote_timer, NULL);
    uv_close((uv_handle_t *)&w->log_timer, NULL);
    uv_close((uv_handle_t *)&w->drain_idle, NULL);
    uv_close((uv_handle_t *)&w->flush_check, NULL);
    uv_close((uv_handle_t *)&w->flush_prepare, NULL);
}

static void on_sigterm(uv_signal_t *h, int sig)
{
    (void)sig;
    stop(h->data);
}

/* Reaps every child: they were all SIGKILLed, or exit when their control socket closed. */
static void reap_all(void)
{
    struct timespec ms = {0, 1000000};
    int i;

    for (i = 0; i < 5000; i++) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid < 0)
            return;
        if (pid == 0)
            nanosleep(&ms, NULL);
    }
}

int shoal_worker_run(const shoal_worker_config_t *cfg)
{
    shoal_worker_t *w = calloc(1, sizeof(*w));
    shoal_artifact_t *a;
    int err, status = 1;

    if (w == NULL)
        return 1;
    w->cfg = *cfg;
    w->zygote_fd = -1;
    w->body_max = SHOAL_CHANNEL_BODY_DEFAULT;
    w->backoff_ms = BACKOFF_MIN_MS;
    snprintf(w->artdir, sizeof(w->artdir), "%s/artifacts", cfg->home);
    if ((err = shoal_util_mkdir_p(w->artdir, 0755)) < 0) {
        SHOAL_ERROR("cannot create %s: %s", w->artdir, strerror(-err));
        free(w);
        return 1;
    }
    if ((w->rd = calloc(1, sizeof(*w->rd))) == NULL) {
        free(w);
        return 1;
    }
    shoal_pools_init(&w->pools, cfg->slots);
    if (strcmp(cfg->cgroup_parent, "none") != 0) {
        shoal_cgroup_opts_t co = {.parent = cfg->cgroup_parent[0] ? cfg->cgroup_parent
                                                                  : SHOAL_CGROUP_PARENT,
                                  .tasks = cfg->tasks ? cfg->tasks : SHOAL_SANDBOX_TASKS,
                                  .cpu_percent = cfg->cpu_percent,
                                  .id = (unsigned long)getpid()};
        char why[512];
        if ((w->cg = shoal_cgroup_open(&co, why, sizeof(why))) == NULL)
            SHOAL_WARN("no cgroups for instances (%s): their memory, tasks and CPU are bounded by "
                       "rlimits only",
                       why);
    }
    signal(SIGPIPE, SIG_IGN);
    /* The zygote is forked before the loop (and its thread pool) exists. */
    if ((err = zygote_start(w, 0)) < 0)
        SHOAL_ERROR("cannot start the zygote %s: %s", cfg->runtime, strerror(-err));
    uv_loop_init(&w->loop);
    if (w->zygote_fd >= 0)
        zygote_watch(w);
    uv_signal_init(&w->loop, &w->sigchld);
    uv_signal_init(&w->loop, &w->sigterm);
    uv_signal_init(&w->loop, &w->sigint);
    w->sigchld.data = w->sigterm.data = w->sigint.data = w;
    uv_signal_start(&w->sigchld, on_sigchld, SIGCHLD);
    uv_signal_start(&w->sigterm, on_sigterm, SIGTERM);
    uv_signal_start(&w->sigint, on_sigterm, SIGINT);
    uv_timer_init(&w->loop, &w->reconnect_timer);
    uv_timer_init(&w->loop, &w->tick_timer);
    uv_timer_init(&w->loop, &w->zygote_timer);
    uv_timer_init(&w->loop, &w->log_timer);
    w->reconnect_timer.data = w->tick_timer.data = w->zygote_timer.data = w->log_timer.data = w;
    uv_idle_init(&w->loop, &w->drain_idle);
    w->drain_idle.data = w;
    uv_check_init(&w->loop, &w->flush_check);
    uv_prepare_init(&w->loop, &w->flush_prepare);
    w->flush_check.data = w->flush_prepare.data = w;
    uv_timer_start(&w->tick_timer, on_tick, TICK_MS, TICK_MS);
    if (w->zygote_pid == 0)
        zygote_restart_later(w);
    shoal_worker_replenish(w);
    {
        shoal_peer_config_t pc = {.listen = cfg->peer_listen[0] ? cfg->peer_listen : NULL,
                                  .key = cfg->cluster_key,
                                  .node = cfg->node};
        if ((err = shoal_peer_create(&w->loop, &pc, &w->peer)) < 0) {
            w->peer = NULL;
            SHOAL_WARN("no peer transport on %s (%s): groups cannot span this node and others",
                       cfg->peer_listen[0] ? cfg->peer_listen : "127.0.0.1:0", strerror(-err));
        } else {
            SHOAL_INFO("peer transport listening on %s", shoal_peer_address(w->peer));
        }
    }
    /* A zygote that died before the SIGCHLD watcher existed. */
    on_sigchld(&w->sigchld, SIGCHLD);
    connect_now(w);

    uv_run(&w->loop, UV_RUN_DEFAULT);

    free_batches(w);
    status = w->exit_status;
    shoal_group_spares_expire(w, 0, 0);
    reap_all();
    shoal_cgroup_close(w->cg);
    while (w->arts != NULL) {
        a = w->arts->next;
        free(w->arts->data);
        free(w->arts);
        w->arts = a;
    }
    shoal_wire_free(w->rd);
    free(w->rd);
    shoal_pools_destroy(&w->pools);
    shoal_strbuf_free(&w->tmp);
    free(w->logq);
    if (w->errout_ready)
        shoal_util_errout_close(&w->errout);
    if (uv_loop_close(&w->loop) != 0)
        SHOAL_WARN("the loop still had handles at exit");
    free(w);
    return status;
}
