/*
 * sched - see sched.h for the protocol, placement and deadline rules.
 *
 * Data structures:
 *   worker_t     one per connection (ready after HELLO), in s->workers.
 *   placement_t  one per (function, worker) pair that has work in flight or warm instances;
 *                linked into both the function's list (fnent->sched) and the worker's list.
 *   shoal_inv    pooled invocation records; s->invs[index] never moves, a freed record keeps
 *                its timer and buffers for the next invocation. A dispatch id is
 *                (generation << 20 | index); the 12-bit generation changes on every reuse and
 *                a RESULT must also come from the worker the record is dispatched to, so a late
 *                RESULT for a finished invocation does not match its slot's next occupant.
 *   the queue    a doubly linked FIFO of QUEUED invocations; a DISPATCHED invocation is linked
 *                into its worker's in-flight list instead (same link fields).
 *   groups       an invocation of N ranks weighs N wherever instances are counted (worker and
 *                placement busy counts) and 1 where invocations are (inflight). s->reserved is
 *                the worker claimed by s->reserved_for, the oldest queued group some worker
 *                could host (see sched.h); it is recomputed by every drain, set when a group is
 *                queued with no claim standing, and dropped when its holder leaves the queue or
 *                its worker goes away.
 *
 * Re-entrancy: completing an invocation calls its owner's callback, which may answer HTTP but
 * never calls back into the scheduler except shoal_sched_invoke/cancel of other invocations;
 * closing a worker happens synchronously (conn.h calls on_close at once), so every loop over
 * workers that may close one restarts or saves its next pointer first.
 */
#include "sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"
#include "common/trace.h"
#include "common/util.h"
#include "controller/conn.h"
#include "controller/logs.h"
#include "transport/arena.h"
#include "transport/frame.h"
#include "transport/invmeta.h"

#define INV_INDEX_BITS 20
#define INV_INDEX_MASK ((1u << INV_INDEX_BITS) - 1)
#define INV_MAX (1u << INV_INDEX_BITS)
#define MAX_POOLS 4096
#define MAX_FETCHES 4
/* A worker with this much unsent data is not given more work until it catches up. */
#define BACKLOG_MAX (64u << 20)
#define SLOTS_MAX 65536
/* How often one invocation may be put back in the queue after a worker refused it as overloaded. */
#define MAX_REQUEUES 16
/* Worker connections (ready or not) beyond this are refused: each costs a 64 KiB read buffer. */
#define MAX_CONNS 1024
/* Until a connection has sent a valid HELLO (with the cluster key) it is a stranger: its frames
 * are bounded to PRE_HELLO_PAYLOAD and its HELLO must come within HELLO_TIMEOUT_MS, so that
 * unauthenticated peers can hold neither memory nor connection slots for long. */
#define PRE_HELLO_PAYLOAD (64u << 10)
#define HELLO_TIMEOUT_MS 5000

typedef struct worker worker_t;
typedef struct placement placement_t;

struct placement {
    shoal_fnent_t *fn;
    worker_t *w;
    uint32_t busy; /* our invocations of fn in flight on w */
    uint32_t warm; /* warm instances of fn's current version at w's last STATUS */
    uint32_t seen; /* STATUS sequence that last mentioned it */
    placement_t *fn_prev, *fn_next;
    placement_t *w_prev, *w_next;
};

typedef struct {
    char function[SHOAL_NAME_MAX + 1];
    uint64_t version;
    uint32_t warm, idle, busy;
} pool_t;

struct worker {
    shoal_sched_t *s;
    shoal_conn_t *conn; /* NULL once closed */
    uint32_t id;        /* assigned at HELLO; 0 before */
    int ready;
    char node[SHOAL_NAME_MAX + 1];
    int64_t pid;
    char peer[64]; /* HELLO "peer": where other workers reach it; "" = no cross-node groups */
    uint32_t slots;
    uint32_t busy;          /* instances our invocations in flight here use (N per group) */
    uint32_t groups;        /* groups in flight here */
    uint32_t group_ranks;   /* their ranks (included in busy) */
    uint32_t reported_busy; /* from STATUS */
    uint32_t stems;
    uint64_t connected_ms; /* wall clock */
    uint64_t accepted_at;  /* now_ms() of the accept: the HELLO deadline runs from here */
    uint64_t func_acked;   /* highest FUNC sequence acknowledged (WELCOME counts as all) */
    uint32_t status_seq;
    int saturated; /* refused work as overloaded; no more until it answers or reports */
    unsigned fetches;
    pool_t *pools;
    size_t npools;
    placement_t *placements;
    shoal_inv_t *inflight;
    worker_t *prev, *next;
};

/* INV_SPLIT: a group placed over several nodes; its parts (one invocation per node, each
 * dispatched to its worker) carry it, and it ends when the last part answers. */
enum { INV_FREE, INV_QUEUED, INV_DISPATCHED, INV_SPLIT };

struct shoal_inv {
    shoal_sched_t *s;
    uint32_t index, gen;
    int state;
    shoal_fnent_t *fn;
    char id[33];
    shoal_json_t meta;
    const void *input; /* kept until the end, for a retry after an overloaded worker refused */
    size_t input_len;
    void *input_owned; /* input copied from a CALL frame */
    uint32_t requeues;
    uint32_t group; /* ranks: 1 for a plain invocation */
    int redis;      /* the group's collectives go through Redis (s->o.redis) */
    int spread;     /* ?spread=1: ranks round-robin over the nodes */
    /* A part of a group spread over nodes: the whole, its generation, this part's node index. */
    shoal_inv_t *parent;
    uint32_t parent_gen, part;
    /* The whole (INV_SPLIT): parts not answered yet, and the answer so far. */
    uint32_t parts_left;
    int fail_set;
    shoal_api_err_t fail_code;
    char *fail_msg;
    size_t fail_msg_len;
    int out_status;
    uint8_t *out;
    size_t out_len;
    char *out_meta;
    size_t out_meta_len;
    uint32_t depth;
    uint32_t timeout_ms;
    uint64_t deadline;    /* loop ms */
    uint64_t nw_deadline; /* loop ms when waiting for any worker ends; 0 if not waiting */
    shoal_inv_cb cb;
    void *opaque;
    uint32_t call_worker; /* a CALL's origin: worker id and frame id; 0 for HTTP */
    uint32_t call_id;
    worker_t *w;
    placement_t *pl;
    shoal_inv_t *prev, *next;
    uv_timer_t timer;
};

struct shoal_sched_pub {
    shoal_sched_t *s;
    uint64_t seq;
    uint64_t deadline;
    shoal_sched_pub_cb cb;
    void *opaque;
    shoal_sched_pub_t *prev, *next;
};

typedef struct {
    uv_work_t work;
    shoal_sched_t *s;
    uint32_t worker_id;
    uint32_t frame_id;
    char sha[65];
    void *data;
    size_t len;
    int err;
} fetch_t;

struct shoal_sched {
    uv_loop_t *loop;
    shoal_sched_opts_t o;
    shoal_fntable_t *fns;
    shoal_api_idgen_t idgen;
    uv_tcp_t listener;
    int listening;
    uv_timer_t heartbeat; /* every second: silent workers */
    uv_timer_t ack_timer; /* the oldest pending publish's deadline */
    int open_handles;     /* listener, timers, inv timers: closed at shutdown */
    unsigned conns;       /* worker connections not yet released */
    unsigned fetches;     /* artifact reads on the thread pool */
    worker_t *workers;
    uint32_t nready;
    uint32_t next_worker_id;
    uint64_t func_seq;
    shoal_inv_t **invs;
    uint32_t ninvs, invs_cap;
    uint32_t *free_idx;
    uint32_t nfree;
    shoal_inv_t *qhead, *qtail;
    uint32_t queued;
    uint32_t queued_groups;
    uint32_t inflight;
    uint32_t group_ranks; /* ranks of the groups in flight */
    uint64_t groups;      /* groups accepted, ever */
    worker_t *reserved;   /* claimed by reserved_for (a queued group), or NULL */
    shoal_inv_t *reserved_for;
    shoal_sched_pub_t *pubs, *pubs_tail;
    uint64_t results[SHOAL_API_ERR_COUNT];
    int draining;
    int shutdown;
    shoal_json_t scratch;     /* frame metas built on the loop thread */
    shoal_json_t gmeta;       /* the "group" part of an INVOKE */
    shoal_json_t spread_meta; /* while a split group's parts are sent: the keys they share */
    shoal_conn_cbs_t conn_cbs;
    uint64_t log_seq; /* the last log line's sequence number (logs.h) */
};

static void drain(shoal_sched_t *s);
static void check_pubs(shoal_sched_t *s);
static void inv_timer_cb(uv_timer_t *t);
static void ack_timer_cb(uv_timer_t *t);

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t now_ms(const shoal_sched_t *s)
{
    return uv_now(s->loop);
}

static uint32_t opt_or(uint32_t v, uint32_t def)
{
    return v ? v : def;
}

static void handle_closed(uv_handle_t *h)
{
    shoal_sched_t *s = h->data;
    s->open_handles--;
}

static void close_handle(shoal_sched_t *s, uv_handle_t *h)
{
    if (uv_is_closing(h))
        return;
    h->data = s;
    uv_close(h, handle_closed);
}

/* ---- placements --------------------------------------------------------------------------- */

static placement_t *placement_find(shoal_fnent_t *fn, const worker_t *w)
{
    for (placement_t *p = fn->sched; p; p = p->fn_next)
        if (p->w == w)
            return p;
    return NULL;
}

static placement_t *placement_get(shoal_fnent_t *fn, worker_t *w)
{
    placement_t *p = placement_find(fn, w);

    if (p != NULL)
        return p;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return NULL;
    p->fn = fn;
    p->w = w;
    p->fn_next = fn->sched;
    if (p->fn_next)
        p->fn_next->fn_prev = p;
    fn->sched = p;
    p->w_next = w->placements;
    if (p->w_next)
        p->w_next->w_prev = p;
    w->placements = p;
    return p;
}

static void placement_free(placement_t *p)
{
    if (p->fn_prev)
        p->fn_prev->fn_next = p->fn_next;
    else
        p->fn->sched = p->fn_next;
    if (p->fn_next)
        p->fn_next->fn_prev = p->fn_prev;
    if (p->w_prev)
        p->w_prev->w_next = p->w_next;
    else
        p->w->placements = p->w_next;
    if (p->w_next)
        p->w_next->w_prev = p->w_prev;
    free(p);
}

static void placement_maybe_free(placement_t *p)
{
    if (p->busy == 0 && p->warm == 0)
        placement_free(p);
}

/* ---- invocation records ------------------------------------------------------------------- */

static shoal_inv_t *inv_alloc(shoal_sched_t *s)
{
    shoal_inv_t *inv;

    if (s->nfree > 0) {
        inv = s->invs[s->free_idx[--s->nfree]];
        return inv;
    }
    if (s->ninvs == INV_MAX)
        return NULL;
    if (s->ninvs == s->invs_cap) {
        uint32_t cap = s->invs_cap ? s->invs_cap * 2 : 64;
        shoal_inv_t **ni = realloc(s->invs, cap * sizeof(*ni));
        if (ni == NULL)
            return NULL;
        s->invs = ni;
        uint32_t *nf = realloc(s->free_idx, cap * sizeof(*nf));
        if (nf == NULL)
            return NULL;
        s->free_idx = nf;
        s->invs_cap = cap;
    }
    if ((inv = calloc(1, sizeof(*inv))) == NULL)
        return NULL;
    inv->s = s;
    inv->index = s->ninvs;
    shoal_json_init(&inv->meta);
    uv_timer_init(s->loop, &inv->timer);
    inv->timer.data = inv;
    s->invs[s->ninvs++] = inv;
    s->open_handles++;
    return inv;
}

static void inv_release(shoal_inv_t *inv)
{
    shoal_sched_t *s = inv->s;

    inv->state = INV_FREE;
    inv->gen = (inv->gen + 1) & ((1u << (32 - INV_INDEX_BITS)) - 1);
    inv->cb = NULL;
    inv->opaque = NULL;
    inv->fn = NULL;
    inv->w = NULL;
    inv->pl = NULL;
    inv->input = NULL;
    free(inv->input_owned);
    inv->input_owned = NULL;
    inv->call_worker = 0;
    inv->requeues = 0;
    inv->group = 1;
    inv->redis = 0;
    inv->spread = 0;
    inv->parent = NULL;
    inv->parts_left = 0;
    inv->fail_set = 0;
    free(inv->fail_msg);
    inv->fail_msg = NULL;
    free(inv->out);
    inv->out = NULL;
    inv->out_len = 0;
    free(inv->out_meta);
    inv->out_meta = NULL;
    shoal_json_trim(&inv->meta, 16384);
    s->free_idx[s->nfree++] = inv->index;
}

static uint32_t dispatch_id(const shoal_inv_t *inv)
{
    return inv->gen << INV_INDEX_BITS | inv->index;
}

static shoal_inv_t *inv_by_dispatch_id(shoal_sched_t *s, uint32_t id, const worker_t *w)
{
    uint32_t idx = id & INV_INDEX_MASK;
    shoal_inv_t *inv;

    if (idx >= s->ninvs)
        return NULL;
    inv = s->invs[idx];
    if (inv->state != INV_DISPATCHED || inv->w != w || dispatch_id(inv) != id)
        return NULL;
    return inv;
}

static void list_push(shoal_inv_t **head, shoal_inv_t **tail, shoal_inv_t *inv)
{
    inv->next = NULL;
    inv->prev = tail ? *tail : NULL;
    if (tail) {
        if (*tail)
            (*tail)->next = inv;
        else
            *head = inv;
        *tail = inv;
    } else {
        inv->prev = NULL;
        inv->next = *head;
        if (*head)
            (*head)->prev = inv;
        *head = inv;
    }
}

static void list_remove(shoal_inv_t **head, shoal_inv_t **tail, shoal_inv_t *inv)
{
    if (inv->prev)
        inv->prev->next = inv->next;
    else
        *head = inv->next;
    if (inv->next)
        inv->next->prev = inv->prev;
    else if (tail)
        *tail = inv->prev;
    inv->prev = inv->next = NULL;
}

/* Takes inv out of the queue or off its worker, undoing the accounting. Returns whether that
 * may let queued work run: it freed instances, or it let go of a worker it had claimed. */
static int inv_detach(shoal_inv_t *inv)
{
    shoal_sched_t *s = inv->s;
    int freed = 0;

    if (inv->state == INV_QUEUED) {
        list_remove(&s->qhead, &s->qtail, inv);
        s->queued--;
        if (inv->group > 1)
            s->queued_groups--;
        if (s->reserved_for == inv) {
            s->reserved = NULL;
            s->reserved_for = NULL;
            freed = 1;
        }
    } else if (inv->state == INV_DISPATCHED) {
        worker_t *w = inv->w;
        list_remove(&w->inflight, NULL, inv);
        w->busy -= inv->group;
        inv->pl->busy -= inv->group;
        if (inv->group > 1) {
            w->groups--;
            w->group_ranks -= inv->group;
            s->group_ranks -= inv->group;
        }
        inv->fn->inflight--;
        s->inflight--;
        placement_maybe_free(inv->pl);
        freed = 1;
    }
    uv_timer_stop(&inv->timer);
    return freed;
}

/* ---- completion --------------------------------------------------------------------------- */

static const char *kind_of(shoal_api_err_t code)
{
    switch (code) {
    case SHOAL_API_FUNCTION_ERROR:
        return "function";
    case SHOAL_API_FUNCTION_CRASHED:
        return "crash";
    case SHOAL_API_TIMEOUT:
        return "timeout";
    case SHOAL_API_OVERLOADED:
    case SHOAL_API_NO_WORKERS:
    case SHOAL_API_SHUTTING_DOWN:
        return "overload";
    case SHOAL_API_NOT_FOUND:
        return "not_found";
    case SHOAL_API_TOO_LARGE:
    case SHOAL_API_GROUP_TOO_LARGE:
        return "too_large";
    default:
        return "internal";
    }
}

static worker_t *worker_by_id(shoal_sched_t *s, uint32_t id)
{
    for (worker_t *w = s->workers; w; w = w->next)
        if (w->id == id)
            return w;
    return NULL;
}

/* Answers a CALL: the worker's own RESULT meta and data verbatim, or our error as a RESULT-shaped
 * meta. A caller that has gone away meanwhile gets nothing. */
static void send_call_result(shoal_sched_t *s, uint32_t worker_id, uint32_t call_id,
                             const shoal_inv_result_t *res)
{
    worker_t *w = worker_by_id(s, worker_id);
    uv_buf_t meta;

    if (w == NULL || w->conn == NULL)
        return;
    if (res->worker_meta != NULL) {
        meta = uv_buf_init((char *)res->worker_meta, (unsigned)res->worker_meta_len);
        shoal_conn_send(w->conn, SHOAL_FRAME_CALL_RESULT, call_id, &meta, 1, res->data, res->len,
                        NULL);
        return;
    }
    /* Our own messages never hold a NUL; the bound keeps the meta valid whatever they say. */
    shoal_invmeta_result_t rm = {.kind = shoal_invmeta_kind_parse(kind_of(res->code)),
                                 .error = res->message ? res->message : "",
                                 .error_len = res->message ? res->message_len : 0};
    uint8_t head[SHOAL_INVMETA_RESULT_FIXED];
    if (rm.error_len > SHOAL_INVMETA_ERR_MAX)
        rm.error_len = SHOAL_INVMETA_ERR_MAX;
    if (shoal_invmeta_result_head(head, &rm) < 0)
        return;
    uv_buf_t parts[2] = {uv_buf_init((char *)head, sizeof(head)),
                         uv_buf_init((char *)rm.error, (unsigned)rm.error_len)};
    shoal_conn_send(w->conn, SHOAL_FRAME_CALL_RESULT, call_id, parts, 2, NULL, 0, NULL);
}

static void complete(shoal_inv_t *inv, const shoal_inv_result_t *res);

/* How telling a part's failure is for the whole group's answer: the node where a rank failed
 * (its error, crash or timeout, named) outranks a lost worker, which outranks what the other
 * nodes saw of either (their peer connection broke, the group was aborted). */
static int fail_weight(shoal_api_err_t code)
{
    if (code == SHOAL_API_FUNCTION_ERROR || code == SHOAL_API_FUNCTION_CRASHED ||
        code == SHOAL_API_TIMEOUT)
        return 3;
    return code == SHOAL_API_WORKER_LOST ? 2 : 1;
}

/* Part `part` of the split group whole (generation gen) ended with res. The whole answers once
 * every part did: rank 0's output (part 0 holds rank 0) when all succeeded, else the most telling
 * failure. */
static void part_done(shoal_inv_t *whole, uint32_t gen, uint32_t part,
                      const shoal_inv_result_t *res)
{
    shoal_inv_result_t fin;

    if (whole->state != INV_SPLIT || whole->gen != gen)
        return;
    if (res->code == SHOAL_API_OK) {
        if (part == 0 && whole->out_meta == NULL) {
            whole->out = malloc(res->len ? res->len : 1);
            whole->out_meta = malloc(res->worker_meta_len ? res->worker_meta_len : 1);
            if (whole->out != NULL && whole->out_meta != NULL) {
                memcpy(whole->out, res->data, res->len);
                whole->out_len = res->len;
                memcpy(whole->out_meta, res->worker_meta, res->worker_meta_len);
                whole->out_meta_len = res->worker_meta_len;
                whole->out_status = res->status;
            } else if (!whole->fail_set) {
                whole->fail_set = 1;
                whole->fail_code = SHOAL_API_INTERNAL;
                whole->fail_msg = strdup("out of memory for the group's answer");
                whole->fail_msg_len = whole->fail_msg ? strlen(whole->fail_msg) : 0;
            }
        }
    } else if (!whole->fail_set || fail_weight(res->code) > fail_weight(whole->fail_code)) {
        free(whole->fail_msg);
        whole->fail_set = 1;
        whole->fail_code = res->code;
        whole->fail_msg = malloc(res->message_len + 1);
        whole->fail_msg_len = 0;
        if (whole->fail_msg != NULL) {
            memcpy(whole->fail_msg, res->message ? res->message : "", res->message_len);
            whole->fail_msg[res->message_len] = '\0';
            whole->fail_msg_len = res->message_len;
        }
    }
    if (--whole->parts_left > 0)
        return;
    memset(&fin, 0, sizeof(fin));
    if (!whole->fail_set && whole->out_meta == NULL) {
        whole->fail_set = 1;
        whole->fail_code = SHOAL_API_INTERNAL;
    }
    if (whole->fail_set) {
        fin.code = whole->fail_code;
        fin.status = shoal_api_err_status(fin.code);
        fin.message = whole->fail_msg != NULL ? whole->fail_msg : "the group failed";
        fin.message_len = whole->fail_msg != NULL ? whole->fail_msg_len : 16;
    } else {
        fin.code = SHOAL_API_OK;
        fin.status = whole->out_status;
        fin.data = whole->out;
        fin.len = whole->out_len;
        shoal_invmeta_result_t rm;
        /* The headers lie in the copied meta, which decoded once already. */
        if (shoal_invmeta_result_decode((const uint8_t *)whole->out_meta, whole->out_meta_len,
                                        &rm) == 0) {
            fin.headers = rm.headers;
            fin.headers_len = rm.headers_len;
        }
        fin.worker_meta = whole->out_meta;
        fin.worker_meta_len = whole->out_meta_len;
    }
    complete(whole, &fin);
}

/* Ends an invocation: detach, count, call back, recycle, and let queued work use the capacity. */
static void complete(shoal_inv_t *inv, const shoal_inv_result_t *res)
{
    shoal_sched_t *s = inv->s;
    shoal_inv_cb cb = inv->cb;
    void *opaque = inv->opaque;
    int freed = inv_detach(inv);

    if (inv->parent != NULL) {
        /* A part of a group over several nodes answers to its whole, not to a client. */
        shoal_inv_t *whole = inv->parent;
        uint32_t gen = inv->parent_gen, part = inv->part;
        inv_release(inv);
        part_done(whole, gen, part, res);
        if (freed)
            drain(s);
        return;
    }

    s->results[res->code < SHOAL_API_ERR_COUNT ? res->code : SHOAL_API_INTERNAL]++;
    if (inv->call_worker != 0)
        send_call_result(s, inv->call_worker, inv->call_id, res);
    else if (cb != NULL)
        cb(opaque, res);
    inv_release(inv);
    if (freed)
        drain(s);
}

static void fail(shoal_inv_t *inv, shoal_api_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(shoal_inv_t *inv, shoal_api_err_t code, const char *fmt, ...)
{
    shoal_inv_result_t res;
    char msg[256];
    va_list ap;

    memset(&res, 0, sizeof(res));
    va_start(ap, fmt);
    res.message_len = shoal_util_vfmt(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    res.code = code;
    res.status = shoal_api_err_status(code);
    res.message = msg;
    complete(inv, &res);
}

/* ---- placement and dispatch --------------------------------------------------------------- */

static int worker_usable(const worker_t *w)
{
    return w->ready && !w->saturated && w->conn != NULL && w->busy < w->slots &&
           shoal_conn_queued(w->conn) < BACKLOG_MAX;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* Chooses a worker for a plain invocation of fn (see sched.h), never avoid, or NULL. */
static worker_t *place(shoal_sched_t *s, shoal_fnent_t *fn, const worker_t *avoid)
{
    worker_t *best = NULL;
    uint32_t best_spare = 0;

    for (placement_t *p = fn->sched; p; p = p->fn_next) {
        if (p->warm > p->busy && p->busy < fn->fn.max_instances && p->w != avoid &&
            worker_usable(p->w) && p->warm - p->busy > best_spare) {
            best = p->w;
            best_spare = p->warm - p->busy;
        }
    }
    if (best != NULL)
        return best;
    for (worker_t *w = s->workers; w; w = w->next) {
        if (w == avoid || !worker_usable(w))
            continue;
        placement_t *p = placement_find(fn, w);
        if (p != NULL && p->busy >= fn->fn.max_instances)
            continue;
        /* busy/slots < best->busy/best->slots, without division */
        if (best == NULL || (uint64_t)w->busy * best->slots < (uint64_t)best->busy * w->slots)
            best = w;
    }
    return best;
}

/* The most ranks of fn that w could ever host at once: one group lives on one worker, within its
 * slots, the function's max_instances and the ranks one arena serves. */
static uint32_t group_cap(const worker_t *w, const shoal_fnent_t *fn)
{
    return min_u32(min_u32(w->slots, fn->fn.max_instances), SHOAL_ARENA_MAX_RANKS);
}

/* How many more instances of fn w can take right now: its free slots, and what max_instances
 * leaves beside fn's instances already in flight there. */
static uint32_t group_room(const worker_t *w, shoal_fnent_t *fn)
{
    const placement_t *p = placement_find(fn, w);
    uint32_t used = p != NULL ? p->busy : 0;
    uint32_t free_slots = w->slots > w->busy ? w->slots - w->busy : 0;

    return min_u32(free_slots, fn->fn.max_instances > used ? fn->fn.max_instances - used : 0);
}

/* Chooses one worker with room for all n ranks of a group of fn now, never avoid, or NULL. The
 * worker with the most free slots is filled first (ties: the one with more idle warm instances
 * of fn, which start at once). */
static worker_t *place_group(shoal_sched_t *s, shoal_fnent_t *fn, uint32_t n, const worker_t *avoid)
{
    worker_t *best = NULL;
    uint32_t best_free = 0, best_warm = 0;

    for (worker_t *w = s->workers; w; w = w->next) {
        if (w == avoid || !worker_usable(w) || group_cap(w, fn) < n || group_room(w, fn) < n)
            continue;
        const placement_t *p = placement_find(fn, w);
        uint32_t free_slots = w->slots - w->busy;
        uint32_t warm = p != NULL && p->warm > p->busy ? p->warm - p->busy : 0;
        if (best == NULL || free_slots > best_free ||
            (free_slots == best_free && warm > best_warm)) {
            best = w;
            best_free = free_slots;
            best_warm = warm;
        }
    }
    return best;
}

/* The worker a waiting group of n ranks of fn claims: among those that could ever host it, the
 * one with the most room now; prev keeps the claim unless another has strictly more, so that the
 * claimed worker's room only grows and the group cannot starve. NULL when none could host it. */
static worker_t *claim_for(shoal_sched_t *s, shoal_fnent_t *fn, uint32_t n, worker_t *prev)
{
    worker_t *best = NULL;
    uint32_t best_room = 0;

    for (worker_t *w = s->workers; w; w = w->next) {
        if (!w->ready || w->conn == NULL || group_cap(w, fn) < n)
            continue;
        uint32_t room = group_room(w, fn);
        if (best == NULL || room > best_room || (room == best_room && w == prev)) {
            best = w;
            best_room = room;
        }
    }
    return best;
}

int shoal_sched_group_check(shoal_sched_t *s, shoal_fnent_t *fn, uint32_t n, char *msg, size_t len)
{
    uint64_t cap = 0, one = 0, peers = 0;
    uint32_t workers = 0, npeers = 0;

    /* A group lives on one worker, or over several that have a peer transport. */
    for (const worker_t *w = s->workers; w; w = w->next) {
        if (!w->ready)
            continue;
        workers++;
        if (group_cap(w, fn) > one)
            one = group_cap(w, fn);
        if (w->peer[0] != '\0') {
            npeers++;
            peers += group_cap(w, fn);
        }
    }
    cap = npeers >= 2 && peers > one ? peers : one;
    if (workers == 0 || n <= cap)
        return 0;
    if (msg != NULL)
        snprintf(msg, len,
                 "a group of %u ranks is more than this cluster can ever hold: %llu instances of "
                 "'%s' on %u worker%s (per worker: its slots, at most max_instances=%u and %d "
                 "ranks)",
                 n, (unsigned long long)cap, fn->fn.name, workers, workers == 1 ? "" : "s",
                 fn->fn.max_instances, SHOAL_ARENA_MAX_RANKS);
    return -E2BIG;
}

static int any_capacity(const shoal_sched_t *s)
{
    for (const worker_t *w = s->workers; w; w = w->next)
        if (worker_usable(w))
            return 1;
    return 0;
}

static int dispatch(shoal_inv_t *inv, worker_t *w);

/* The most nodes one group spans (worker/peer.h's SHOAL_PEER_CONN_MAX). */
#define SPLIT_NODES_MAX 256

/* Whether a group of n ranks of fn goes over several nodes: asked to (spread), or no single
 * worker could ever hold it (the Redis baseline stays on one node). */
static int wants_split(shoal_sched_t *s, shoal_fnent_t *fn, uint32_t n, int spread, int redis)
{
    uint32_t npeers = 0;

    if (n <= 1 || redis)
        return 0;
    /* With fewer than two workers that can exchange group data, there is nothing to spread
     * over: the group runs on one node. */
    for (const worker_t *w = s->workers; w; w = w->next)
        npeers += w->ready && w->conn != NULL && w->peer[0] != '\0';
    if (npeers < 2)
        return 0;
    if (spread)
        return 1;
    for (const worker_t *w = s->workers; w; w = w->next)
        if (w->ready && w->conn != NULL && group_cap(w, fn) >= n)
            return 0;
    return 1;
}

/* Places every rank of a split group now, all or nothing, on the workers that can take ranks
 * now and have a peer address: spread, rank i goes to the i-th of them in turn (skipping full
 * ones); packed, the ones with the most room are filled first, so the group spans as few nodes
 * as it can. The nodes are numbered in the order of their first rank (node 0 holds rank 0).
 * 0 with nodes[0..*nn) and node_of[0..n), or -EAGAIN when they cannot take all ranks now. */
static int place_split(shoal_sched_t *s, const shoal_inv_t *inv, worker_t **nodes, uint32_t *nn,
                       uint16_t *node_of)
{
    worker_t *cand[SPLIT_NODES_MAX];
    uint32_t room[SPLIT_NODES_MAX], used[SPLIT_NODES_MAX], nc = 0, total = 0, k = 0;
    int map[SPLIT_NODES_MAX];
    uint32_t n = inv->group;

    for (worker_t *w = s->workers; w && nc < SPLIT_NODES_MAX; w = w->next) {
        if (!worker_usable(w) || w->peer[0] == '\0')
            continue;
        uint32_t r = min_u32(group_room(w, inv->fn), group_cap(w, inv->fn));
        if (r == 0)
            continue;
        cand[nc] = w;
        room[nc] = r;
        used[nc] = 0;
        map[nc] = -1;
        nc++;
        total += r;
    }
    if (nc == 0 || total < n)
        return -EAGAIN;
    if (!inv->spread) {
        /* Most room first (a selection sort: at most SPLIT_NODES_MAX nodes). */
        for (uint32_t i = 0; i < nc; i++)
            for (uint32_t j = i + 1; j < nc; j++)
                if (room[j] > room[i]) {
                    worker_t *tw = cand[i];
                    uint32_t tr = room[i];
                    cand[i] = cand[j], room[i] = room[j];
                    cand[j] = tw, room[j] = tr;
                }
    }
    *nn = 0;
    for (uint32_t r = 0; r < n; r++) {
        if (inv->spread) {
            while (used[k] >= room[k])
                k = (k + 1) % nc;
        } else {
            while (used[k] >= room[k])
                k++;
        }
        if (map[k] < 0) {
            map[k] = (int)*nn;
            nodes[(*nn)++] = cand[k];
        }
        node_of[r] = (uint16_t)map[k];
        used[k]++;
        if (inv->spread)
            k = (k + 1) % nc;
    }
    return 0;
}

/* Sends one part per node of a split group (state INV_SPLIT from then on): each an INVOKE with
 * the whole group's size, the node list, node_of, this node's index and one group_id for all.
 * 0, or -errno when no part could be sent (inv is then to be failed). */
static int split_dispatch(shoal_inv_t *inv, worker_t **nodes, uint32_t nn, const uint16_t *node_of)
{
    shoal_sched_t *s = inv->s;
    shoal_json_t *j = &s->spread_meta;
    uint32_t counts[SPLIT_NODES_MAX] = {0}, k;
    char gid[33];

    if (shoal_api_new_id(&s->idgen, gid) < 0)
        return -EIO;
    gid[16] = '\0';
    if (strspn(gid, "0") == 16)
        gid[15] = '1'; /* group ids are nonzero */
    shoal_json_reset(j);
    shoal_json_lit(j, ",\"group_id\":\"");
    shoal_json_raw(j, gid, 16);
    shoal_json_lit(j, "\",\"nodes\":[");
    for (k = 0; k < nn; k++) {
        if (k > 0)
            shoal_json_lit(j, ",");
        shoal_json_lit(j, "{\"node\":");
        shoal_json_cstr(j, nodes[k]->node);
        shoal_json_lit(j, ",\"peer\":");
        shoal_json_cstr(j, nodes[k]->peer);
        shoal_json_lit(j, "}");
    }
    shoal_json_lit(j, "],\"node_of\":[");
    for (uint32_t r = 0; r < inv->group; r++) {
        if (r > 0)
            shoal_json_lit(j, ",");
        shoal_json_u64(j, node_of[r]);
        counts[node_of[r]]++;
    }
    shoal_json_lit(j, "]");
    if (shoal_json_error(j) < 0)
        return -ENOMEM;
    inv->state = INV_SPLIT;
    inv->parts_left = 0;
    for (k = 0; k < nn; k++) {
        shoal_inv_t *part = inv_alloc(s);
        if (part == NULL)
            break;
        part->fn = inv->fn;
        memcpy(part->id, inv->id, sizeof(part->id));
        shoal_json_reset(&part->meta);
        shoal_json_raw(&part->meta, inv->meta.buf, inv->meta.len);
        part->input = inv->input;
        part->input_len = inv->input_len;
        part->group = counts[k];
        part->depth = inv->depth;
        part->timeout_ms = inv->timeout_ms;
        part->deadline = inv->deadline;
        part->nw_deadline = 0;
        part->cb = NULL;
        part->opaque = NULL;
        part->call_worker = 0;
        part->parent = inv;
        part->parent_gen = inv->gen;
        part->part = k;
        if (shoal_json_error(&part->meta) < 0 || dispatch(part, nodes[k]) < 0) {
            inv_release(part);
            break;
        }
        inv->parts_left++;
    }
    SHOAL_DEBUG("invocation %s: a group of %u ranks of %s over %u nodes (group %s)", inv->id,
                inv->group, inv->fn->fn.name, nn, gid);
    if (k < nn) {
        /* The parts sent end at their deadline at the latest (their peers never come). */
        inv->fail_set = 1;
        inv->fail_code = SHOAL_API_INTERNAL;
        inv->fail_msg = strdup("cannot dispatch every node's part of the group");
        inv->fail_msg_len = inv->fail_msg != NULL ? strlen(inv->fail_msg) : 0;
        if (inv->parts_left == 0)
            return -EIO;
    }
    return 0;
}

/* Dispatches a group that goes over several nodes, if it can be placed now (queued: it is taken
 * out of the queue first). 0, -EAGAIN (nothing done), or another -errno: inv must be failed. */
static int try_split(shoal_inv_t *inv, int queued)
{
    worker_t *nodes[SPLIT_NODES_MAX];
    uint16_t node_of[SHOAL_SCHED_GROUP_MAX];
    uint32_t nn;

    if (place_split(inv->s, inv, nodes, &nn, node_of) < 0)
        return -EAGAIN;
    if (queued) {
        inv_detach(inv);
        inv->state = INV_FREE;
    }
    /* Only one node can take ranks now and it takes them all: a group on one node. */
    if (nn == 1)
        return dispatch(inv, nodes[0]);
    return split_dispatch(inv, nodes, nn, node_of);
}

/* Renders a group's INVOKE extension (transport/invmeta.h): {"group":{...}}. The worker hosts
 * every rank. */
static int group_meta(shoal_sched_t *s, const shoal_inv_t *inv)
{
    shoal_json_t *j = &s->gmeta;

    shoal_json_reset(j);
    shoal_json_lit(j, "{\"group\":{\"id\":\"");
    shoal_json_raw(j, inv->id, 32);
    if (inv->parent != NULL) {
        /* A part of a group over several nodes: the whole group's size, this node's index and
         * what every part shares (nodes, node_of, group_id; see split_dispatch). */
        shoal_json_lit(j, "\",\"size\":");
        shoal_json_u64(j, inv->parent->group);
        shoal_json_lit(j, ",\"transport\":\"tcp\",\"me\":");
        shoal_json_u64(j, inv->part);
        shoal_json_raw(j, s->spread_meta.buf, s->spread_meta.len);
        shoal_json_lit(j, "}}");
        return shoal_json_error(j);
    }
    shoal_json_lit(j, "\",\"size\":");
    shoal_json_u64(j, inv->group);
    shoal_json_lit(j, ",\"ranks\":[");
    for (uint32_t r = 0; r < inv->group; r++) {
        if (r > 0)
            shoal_json_lit(j, ",");
        shoal_json_u64(j, r);
    }
    if (inv->redis && s->o.redis != NULL) {
        shoal_json_lit(j, "],\"transport\":\"redis\",\"redis\":");
        shoal_json_cstr(j, s->o.redis);
        shoal_json_lit(j, "}}");
    } else {
        shoal_json_lit(j, "],\"transport\":\"shm\"}}");
    }
    return shoal_json_error(j);
}

/* Sends INVOKE for inv to w. 0, or -errno with inv untouched. */
static int dispatch(shoal_inv_t *inv, worker_t *w)
{
    shoal_sched_t *s = inv->s;
    shoal_fnent_t *fn = inv->fn;
    placement_t *pl;
    uint64_t now = now_ms(s);
    uint64_t left = inv->deadline > now ? inv->deadline - now : 1;
    uint8_t head[SHOAL_INVMETA_INVOKE_HEAD_MAX];
    shoal_invmeta_invoke_t m = {.function = fn->fn.name,
                                .function_len = strlen(fn->fn.name),
                                .id = inv->id,
                                .id_len = 32,
                                .version = (uint32_t)fn->fn.version,
                                .timeout_ms = left < UINT32_MAX ? (uint32_t)left : UINT32_MAX,
                                .depth = inv->depth,
                                .kv_len = inv->meta.len};
    int n, err;

    if (inv->group > 1 || inv->parent != NULL) {
        if (group_meta(s, inv) < 0)
            return -ENOMEM;
        m.ext_len = s->gmeta.len;
    }
    /* The worker knows the function from WELCOME/FUNC, sent on this connection before: the INVOKE
     * names it by name and version only. */
    if ((n = shoal_invmeta_invoke_head(head, &m)) < 0)
        return n;
    if ((pl = placement_get(fn, w)) == NULL)
        return -ENOMEM;
    uv_buf_t meta[3] = {
        uv_buf_init((char *)head, (unsigned)n),
        uv_buf_init(inv->meta.buf, (unsigned)inv->meta.len),
        uv_buf_init(m.ext_len ? s->gmeta.buf : NULL, (unsigned)m.ext_len),
    };
    if ((err = shoal_conn_send(w->conn, SHOAL_FRAME_INVOKE, dispatch_id(inv), meta, 3, inv->input,
                               inv->input_len, NULL)) < 0) {
        placement_maybe_free(pl);
        return err;
    }
    /* The frame holds its own copy of whatever it still needs; the input stays referenced only
     * in case the worker refuses the invocation and it has to be sent again. */
    inv->state = INV_DISPATCHED;
    inv->w = w;
    inv->pl = pl;
    list_push(&w->inflight, NULL, inv);
    /* A group's ranks are busy until its one RESULT comes back. */
    w->busy += inv->group;
    pl->busy += inv->group;
    if (inv->group > 1) {
        w->groups++;
        w->group_ranks += inv->group;
        s->group_ranks += inv->group;
    }
    fn->inflight++;
    s->inflight++;
    uv_timer_start(&inv->timer, inv_timer_cb, left + opt_or(s->o.grace_ms, 2000), 0);
    return 0;
}

/* Arms a queued invocation's timer for the earlier of its deadline and, while no worker is
 * ready, the end of its wait for one. */
static void arm_queued(shoal_inv_t *inv)
{
    uint64_t now = now_ms(inv->s), due = inv->deadline;

    if (inv->nw_deadline != 0 && inv->nw_deadline < due)
        due = inv->nw_deadline;
    uv_timer_start(&inv->timer, inv_timer_cb, due > now ? due - now : 0, 0);
}

/* Links inv into the queue, at its tail or (a refused invocation going back) its head. */
static void queue_link(shoal_inv_t *inv, int at_head)
{
    shoal_sched_t *s = inv->s;

    inv->state = INV_QUEUED;
    if (at_head) {
        list_push(&s->qhead, NULL, inv);
        if (s->qtail == NULL)
            s->qtail = inv;
    } else {
        list_push(&s->qhead, &s->qtail, inv);
    }
    s->queued++;
    if (inv->group > 1)
        s->queued_groups++;
    arm_queued(inv);
}

static void enqueue(shoal_inv_t *inv)
{
    shoal_sched_t *s = inv->s;

    inv->nw_deadline = s->nready == 0 ? now_ms(s) + opt_or(s->o.no_worker_wait_ms, 5000) : 0;
    queue_link(inv, 0);
    /* The oldest waiting group claims a worker; with no claim standing, every group queued
     * before this one has no worker that could ever host it. */
    if (inv->group > 1 && s->reserved_for == NULL &&
        !wants_split(s, inv->fn, inv->group, inv->spread, inv->redis) &&
        (s->reserved = claim_for(s, inv->fn, inv->group, NULL)) != NULL)
        s->reserved_for = inv;
}

/* Puts an invocation a worker refused as overloaded back at the head of the queue: it never
 * started, and it keeps its place ahead of newer work. */
static void requeue(shoal_inv_t *inv)
{
    inv->requeues++;
    inv_detach(inv);
    inv->nw_deadline = 0;
    queue_link(inv, 1);
}

/* Places what it can of the queue, in order, and renews the claim of the oldest waiting group:
 * work queued after that group is kept off the worker it claimed. */
static void drain(shoal_sched_t *s)
{
    shoal_inv_t *inv, *next, *holder = NULL;
    worker_t *claimed = NULL, *prev = s->reserved;
    uint32_t holder_gen = 0;

    if (s->draining || s->qhead == NULL)
        return;
    s->draining = 1;
    for (inv = s->qhead; inv != NULL && any_capacity(s); inv = next) {
        next = inv->next;
        if (inv->fn->deleted) {
            fail(inv, SHOAL_API_NOT_FOUND, "function '%s' was deleted", inv->fn->fn.name);
            continue;
        }
        if (wants_split(s, inv->fn, inv->group, inv->spread, inv->redis)) {
            int e = try_split(inv, 1);
            if (e < 0 && e != -EAGAIN)
                fail(inv, SHOAL_API_INTERNAL, "cannot dispatch the group");
            continue;
        }
        worker_t *w = inv->group > 1 ? place_group(s, inv->fn, inv->group, claimed)
                                     : place(s, inv->fn, claimed);
        if (w == NULL) {
            if (inv->group > 1 && holder == NULL &&
                (claimed = claim_for(s, inv->fn, inv->group, prev)) != NULL) {
                holder = inv;
                holder_gen = inv->gen;
            }
            continue;
        }
        inv_detach(inv);
        inv->state = INV_FREE; /* neither queued nor dispatched while we try */
        if (dispatch(inv, w) < 0)
            fail(inv, SHOAL_API_INTERNAL, "cannot dispatch the invocation");
    }
    /* Stopped early for want of capacity: the oldest group that can claim a worker may be among
     * those not looked at. */
    if (holder == NULL && s->queued_groups > 0) {
        for (inv = s->qhead; inv != NULL; inv = inv->next) {
            if (inv->group > 1 && !inv->fn->deleted &&
                !wants_split(s, inv->fn, inv->group, inv->spread, inv->redis) &&
                (claimed = claim_for(s, inv->fn, inv->group, prev)) != NULL) {
                holder = inv;
                holder_gen = inv->gen;
                break;
            }
        }
    }
    /* A callback run by fail() may have ended the holder meanwhile (and its record been reused). */
    if (holder != NULL && (holder->state != INV_QUEUED || holder->gen != holder_gen))
        holder = NULL, claimed = NULL;
    s->reserved = claimed;
    s->reserved_for = holder;
    s->draining = 0;
}

static void inv_timer_cb(uv_timer_t *t)
{
    shoal_inv_t *inv = t->data;
    shoal_sched_t *s = inv->s;

    if (inv->state == INV_DISPATCHED) {
        SHOAL_WARN("invocation %s of %s: worker %s did not answer in time", inv->id,
                   inv->fn->fn.name, inv->w->node);
        fail(inv, SHOAL_API_TIMEOUT, "function exceeded its timeout of %u ms", inv->timeout_ms);
        return;
    }
    if (inv->state != INV_QUEUED)
        return;
    if (s->nready == 0) {
        fail(inv, SHOAL_API_NO_WORKERS, "no worker connected within %u ms",
             opt_or(s->o.no_worker_wait_ms, 5000));
        return;
    }
    inv->nw_deadline = 0;
    if (now_ms(s) >= inv->deadline) {
        if (inv->group > 1) {
            uint32_t largest = 0;
            for (const worker_t *w = s->workers; w; w = w->next)
                if (w->ready && group_cap(w, inv->fn) > largest)
                    largest = group_cap(w, inv->fn);
            if (largest < inv->group)
                fail(inv, SHOAL_API_TIMEOUT,
                     "timed out after %u ms waiting for room for a group of %u ranks over several "
                     "workers (the largest can host %u)",
                     inv->timeout_ms, inv->group, largest);
            else
                fail(inv, SHOAL_API_TIMEOUT,
                     "timed out after %u ms waiting for one worker with %u free slots for the "
                     "group",
                     inv->timeout_ms, inv->group);
            return;
        }
        fail(inv, SHOAL_API_TIMEOUT, "timed out after %u ms waiting for a free instance",
             inv->timeout_ms);
        return;
    }
    arm_queued(inv);
}

/* Appends one request meta entry to an INVOKE's key/value list; entries that cannot be carried
 * (a NUL inside, an oversized key) are left out, as the worker would drop them. */
static void kv_append(shoal_json_t *j, const char *k, size_t klen, const char *v, size_t vlen)
{
    uint8_t hdr[SHOAL_INVMETA_KV_HDR];

    if (memchr(k, '\0', klen) != NULL || memchr(v, '\0', vlen) != NULL ||
        shoal_invmeta_kv_hdr(hdr, klen, vlen) < 0)
        return;
    shoal_json_raw(j, hdr, sizeof(hdr));
    shoal_json_raw(j, k, klen);
    shoal_json_raw(j, v, vlen);
}

/* Converts a JSON request meta (events and triggers store and pass them so) to the key/value
 * list INVOKE carries. Not on the HTTP hot path, which renders the list directly. Strings only,
 * as the worker always did; the worker names the invocation and the function itself. */
static void meta_to_kv(shoal_json_t *out, const char *meta, size_t len)
{
    json_t *o = len > 0 ? json_loadb(meta, len, 0, NULL) : NULL, *v;
    const char *k;

    json_object_foreach(o, k, v)
    {
        if (!json_is_string(v) || strcmp(k, "invocation_id") == 0 || strcmp(k, "function") == 0)
            continue;
        kv_append(out, k, strlen(k), json_string_value(v), json_string_length(v));
    }
    json_decref(o);
}

void shoal_sched_meta_put(shoal_json_t *j, const char *k, size_t klen, const char *v, size_t vlen)
{
    kv_append(j, k, klen, v, vlen);
}

const char *shoal_sched_redis(const shoal_sched_t *s)
{
    return s->o.redis;
}

int shoal_sched_invoke(shoal_sched_t *s, const shoal_inv_req_t *r, shoal_inv_t **out)
{
    uint32_t group = r->group > 1 ? r->group : 1;
    shoal_inv_t *inv;
    worker_t *w;
    int split, e;

    if (s->shutdown)
        return -ESHUTDOWN;
    if (r->fn == NULL || r->fn->deleted)
        return -ENOENT;
    if (group > SHOAL_SCHED_GROUP_MAX)
        return -EINVAL;
    if (group > 1 && shoal_sched_group_check(s, r->fn, group, NULL, 0) < 0)
        return -E2BIG;
    /* New work never lands on the worker a waiting group has claimed. */
    split = wants_split(s, r->fn, group, r->spread, r->redis && s->o.redis != NULL);
    w = split       ? NULL
        : group > 1 ? place_group(s, r->fn, group, s->reserved)
                    : place(s, r->fn, s->reserved);
    if (w == NULL && s->queued >= s->o.queue_max)
        return -EAGAIN;
    if ((inv = inv_alloc(s)) == NULL)
        return s->ninvs == INV_MAX ? -EAGAIN : -ENOMEM;
    inv->fn = r->fn;
    memcpy(inv->id, r->id, 32);
    inv->id[32] = '\0';
    shoal_json_reset(&inv->meta);
    if (r->meta_kv)
        shoal_json_raw(&inv->meta, r->meta, r->meta_len);
    else
        meta_to_kv(&inv->meta, r->meta, r->meta_len);
    if (shoal_json_error(&inv->meta) < 0) {
        inv_release(inv);
        return -ENOMEM;
    }
    inv->input = r->input;
    inv->input_len = r->input_len;
    inv->redis = r->redis && s->o.redis != NULL;
    inv->spread = r->spread != 0;
    inv->group = group;
    inv->depth = r->depth;
    inv->timeout_ms = r->timeout_ms && r->timeout_ms < r->fn->fn.timeout_ms ? r->timeout_ms
                                                                            : r->fn->fn.timeout_ms;
    inv->deadline = now_ms(s) + inv->timeout_ms;
    inv->nw_deadline = 0;
    inv->cb = r->cb;
    inv->opaque = r->opaque;
    inv->call_worker = 0;
    if (group > 1)
        s->groups++;
    if (w != NULL && dispatch(inv, w) == 0) {
        *out = inv;
        return 0;
    }
    if (split && (e = try_split(inv, 0)) != -EAGAIN) {
        *out = inv;
        if (e < 0) {
            /* Nothing was sent: answer through the callback, as for any failure. */
            inv->cb = NULL;
            inv_release(inv);
            return -EIO;
        }
        return 0;
    }
    enqueue(inv);
    *out = inv;
    return 0;
}

void shoal_sched_cancel(shoal_inv_t *inv)
{
    if (inv->state == INV_QUEUED) {
        shoal_sched_t *s = inv->s;
        int freed = inv_detach(inv);
        inv_release(inv);
        /* A group that gave up lets others onto the worker it had claimed. */
        if (freed)
            drain(s);
        return;
    }
    inv->cb = NULL;
    inv->opaque = NULL;
    /* A borrowed input dies with its owner: it can no longer be sent again. */
    if (inv->input_owned == NULL)
        inv->input = NULL;
}

void shoal_sched_count(shoal_sched_t *s, shoal_api_err_t code)
{
    s->results[code < SHOAL_API_ERR_COUNT ? code : SHOAL_API_INTERNAL]++;
}

int shoal_sched_new_id(shoal_sched_t *s, char out[33])
{
    return shoal_api_new_id(&s->idgen, out);
}

/* ---- publishing --------------------------------------------------------------------------- */

/* Publishes are appended with the same timeout, so the list head always expires first. */
static void arm_ack_timer(shoal_sched_t *s)
{
    uint64_t now = now_ms(s);

    if (s->pubs == NULL || s->shutdown) {
        uv_timer_stop(&s->ack_timer);
        return;
    }
    uv_timer_start(&s->ack_timer, ack_timer_cb,
                   s->pubs->deadline > now ? s->pubs->deadline - now : 0, 0);
}

static void pub_unlink(shoal_sched_pub_t *p)
{
    shoal_sched_t *s = p->s;

    if (p->prev)
        p->prev->next = p->next;
    else
        s->pubs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        s->pubs_tail = p->prev;
}

static int pub_done(const shoal_sched_t *s, const shoal_sched_pub_t *p)
{
    for (const worker_t *w = s->workers; w; w = w->next)
        if (w->ready && w->func_acked < p->seq)
            return 0;
    return 1;
}

static void check_pubs(shoal_sched_t *s)
{
    shoal_sched_pub_t *p, *next;

    for (p = s->pubs; p; p = next) {
        next = p->next;
        if (!pub_done(s, p))
            continue;
        pub_unlink(p);
        shoal_sched_pub_cb cb = p->cb;
        void *opaque = p->opaque;
        free(p);
        if (cb)
            cb(opaque);
        /* The callback may have cancelled other publishes: start over. */
        next = s->pubs;
    }
    arm_ack_timer(s);
}

static void worker_drop(worker_t *w, const char *why);

static void ack_timer_cb(uv_timer_t *t)
{
    shoal_sched_t *s = t->data;
    uint64_t now = now_ms(s);
    worker_t *w;

    /* Drop every worker that has not acknowledged an expired publish. Dropping one changes the
     * worker list (and may complete publishes), so rescan from the start each time. */
again:
    for (w = s->workers; w; w = w->next) {
        if (!w->ready)
            continue;
        for (shoal_sched_pub_t *p = s->pubs; p && p->deadline <= now; p = p->next) {
            if (w->func_acked < p->seq) {
                char why[96];
                snprintf(why, sizeof(why), "did not acknowledge a function update within %u ms",
                         opt_or(s->o.ack_timeout_ms, 2000));
                worker_drop(w, why);
                goto again;
            }
        }
    }
    check_pubs(s);
}

int shoal_sched_publish(shoal_sched_t *s, const shoal_fn_t *fn, int deleted, shoal_sched_pub_cb cb,
                        void *opaque, shoal_sched_pub_t **out)
{
    shoal_fnent_t *e;
    shoal_sched_pub_t *p;
    uv_buf_t meta;
    int r;

    if ((r = shoal_fntable_apply(s->fns, fn, deleted, &e)) < 0)
        return r;
    if (r == 0)
        return 1; /* superseded by a newer change that was already published */
    s->func_seq++;
    if (deleted) {
        shoal_json_reset(&s->scratch);
        shoal_json_lit(&s->scratch, "{\"name\":");
        shoal_json_cstr(&s->scratch, e->fn.name);
        shoal_json_lit(&s->scratch, ",\"deleted\":true}");
        if (shoal_json_error(&s->scratch) < 0)
            return -ENOMEM;
        meta = uv_buf_init(s->scratch.buf, (unsigned)s->scratch.len);
    } else {
        if (e->json.len == 0)
            return -ENOMEM;
        meta = uv_buf_init(e->json.buf, (unsigned)e->json.len);
    }
    for (worker_t *w = s->workers; w; w = w->next)
        if (w->ready)
            shoal_conn_send(w->conn, SHOAL_FRAME_FUNC, (uint32_t)s->func_seq, &meta, 1, NULL, 0,
                            NULL);
    /* Queued invocations of a deleted function will not find it any more. */
    if (deleted)
        drain(s);
    if (s->nready == 0 || cb == NULL)
        return 1;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return -ENOMEM;
    p->s = s;
    p->seq = s->func_seq;
    p->deadline = now_ms(s) + opt_or(s->o.ack_timeout_ms, 2000);
    p->cb = cb;
    p->opaque = opaque;
    p->prev = s->pubs_tail;
    if (s->pubs_tail)
        s->pubs_tail->next = p;
    else
        s->pubs = p;
    s->pubs_tail = p;
    if (p == s->pubs)
        arm_ack_timer(s);
    *out = p;
    return 0;
}

void shoal_sched_publish_cancel(shoal_sched_pub_t *p)
{
    shoal_sched_t *s = p->s;

    pub_unlink(p);
    free(p);
    arm_ack_timer(s);
}

/* ---- worker protocol ---------------------------------------------------------------------- */

/* Parses a frame's meta as a JSON object. NULL when it is not one. */
static json_t *parse_meta(const uint8_t *payload, size_t len, const uint8_t **data, size_t *dlen,
                          const char **raw, size_t *raw_len)
{
    const char *meta;
    size_t mlen;
    json_t *j;

    if (shoal_frame_split(payload, len, &meta, &mlen, data, dlen) < 0)
        return NULL;
    if ((j = json_loadb(meta, mlen, 0, NULL)) == NULL)
        return NULL;
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    if (raw) {
        *raw = meta;
        *raw_len = mlen;
    }
    return j;
}

/* Reads an integer member in [min, max]; def when absent; -1 when present but malformed. */
static int get_uint(const json_t *o, const char *key, uint64_t min, uint64_t max, uint64_t def,
                    uint64_t *out)
{
    json_t *v = json_object_get(o, key);

    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) < min ||
        (uint64_t)json_integer_value(v) > max)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static void send_welcome(shoal_sched_t *s, worker_t *w)
{
    shoal_json_t *j = &s->scratch;
    size_t n = shoal_fntable_count(s->fns);
    int first = 1;
    uv_buf_t meta;

    shoal_json_reset(j);
    shoal_json_lit(j, "{\"worker_id\":");
    shoal_json_u64(j, w->id);
    if (s->o.max_body != 0) {
        shoal_json_lit(j, ",\"max_body\":");
        shoal_json_u64(j, s->o.max_body);
    }
    shoal_json_lit(j, ",\"functions\":[");
    for (size_t i = 0; i < n; i++) {
        shoal_fnent_t *e = shoal_fntable_at(s->fns, i);
        if (e->deleted || e->json.len == 0)
            continue;
        if (!first)
            shoal_json_lit(j, ",");
        shoal_json_raw(j, e->json.buf, e->json.len);
        first = 0;
    }
    shoal_json_lit(j, "]}");
    if (shoal_json_error(j) < 0) {
        worker_drop(w, "out of memory");
        return;
    }
    meta = uv_buf_init(j->buf, (unsigned)j->len);
    if (shoal_conn_send(w->conn, SHOAL_FRAME_WELCOME, 0, &meta, 1, NULL, 0, NULL) < 0) {
        /* The only way this fails on a fresh connection: a table beyond SHOAL_FRAME_META_MAX. */
        SHOAL_ERROR("the function table (%zu bytes) does not fit in one WELCOME frame", j->len);
        worker_drop(w, "the function table is too large for one WELCOME frame");
    }
}

static int on_hello(worker_t *w, const uint8_t *payload, size_t len)
{
    shoal_sched_t *s = w->s;
    const uint8_t *data;
    size_t dlen;
    uint64_t slots, protocol, pid;
    json_t *m = parse_meta(payload, len, &data, &dlen, NULL, NULL);
    const char *node;
    char why[128];

    if (m == NULL) {
        SHOAL_WARN("worker connection %s refused: HELLO meta is not a JSON object",
                   shoal_conn_peer(w->conn));
        shoal_conn_close(w->conn, "HELLO meta is not a JSON object");
        return 0;
    }
    /* The key first: a peer without it learns nothing more about what we expect. */
    if (s->o.cluster_key != NULL) {
        json_t *key = json_object_get(m, "key");
        if (!json_is_string(key)) {
            snprintf(why, sizeof(why),
                     "no cluster key in HELLO: start the worker with --cluster-key-file "
                     "(the controller's HOME/cluster.key) or SHOAL_CLUSTER_KEY");
            goto bad;
        }
        if (!shoal_secret_equal(json_string_value(key), json_string_length(key), s->o.cluster_key,
                                strlen(s->o.cluster_key))) {
            snprintf(why, sizeof(why), "wrong cluster key");
            goto bad;
        }
    }
    node = json_string_value(json_object_get(m, "node"));
    /* The frame header carried our version already; "protocol" may only confirm it. */
    if (get_uint(m, "protocol", 0, UINT32_MAX, SHOAL_FRAME_VERSION, &protocol) < 0 ||
        protocol != SHOAL_FRAME_VERSION) {
        snprintf(why, sizeof(why), "unsupported protocol (this controller speaks %d)",
                 SHOAL_FRAME_VERSION);
        goto bad;
    }
    if (get_uint(m, "slots", 1, SLOTS_MAX, 0, &slots) < 0 || slots == 0) {
        snprintf(why, sizeof(why), "HELLO needs \"slots\" in 1..%u", SLOTS_MAX);
        goto bad;
    }
    if (node == NULL || node[0] == '\0') {
        snprintf(why, sizeof(why), "HELLO needs a non-empty \"node\" string");
        goto bad;
    }
    if (get_uint(m, "pid", 0, INT64_MAX, 0, &pid) < 0)
        pid = 0;
    /* Optional: where other workers reach it ("IPV4:PORT"); without it, no cross-node groups. */
    {
        const char *peer = json_string_value(json_object_get(m, "peer"));
        w->peer[0] = '\0';
        if (peer != NULL && strlen(peer) < sizeof(w->peer) && strchr(peer, ':') != NULL &&
            strspn(peer, "0123456789.:") == strlen(peer))
            snprintf(w->peer, sizeof(w->peer), "%s", peer);
    }
    snprintf(w->node, sizeof(w->node), "%s", node);
    /* Authenticated: from now on frames up to the full size (artifacts, inputs, outputs). */
    shoal_conn_set_max_payload(w->conn, s->o.max_payload);
    w->pid = (int64_t)pid;
    w->slots = (uint32_t)slots;
    json_decref(m);

    w->id = ++s->next_worker_id;
    w->ready = 1;
    w->connected_ms = shoal_util_wall_ms();
    /* WELCOME carries the whole current table: this worker is up to date with every FUNC. */
    w->func_acked = s->func_seq;
    s->nready++;
    send_welcome(s, w);
    if (w->conn == NULL)
        return 0;
    SHOAL_INFO("worker %u (%s) connected from %s with %u slots", w->id, w->node,
               shoal_conn_peer(w->conn), w->slots);
    drain(s);
    return 0;
bad:
    json_decref(m);
    SHOAL_WARN("worker connection %s refused: %s", shoal_conn_peer(w->conn), why);
    shoal_conn_close(w->conn, why);
    return 0;
}

/* Maps a worker's RESULT (kind) to our answer. */
static shoal_api_err_t code_of_kind(const char *kind)
{
    static const struct {
        const char *kind;
        shoal_api_err_t code;
    } KINDS[] = {
        {"function", SHOAL_API_FUNCTION_ERROR}, {"crash", SHOAL_API_FUNCTION_CRASHED},
        {"timeout", SHOAL_API_TIMEOUT},         {"overload", SHOAL_API_OVERLOADED},
        {"not_found", SHOAL_API_NOT_FOUND},     {"too_large", SHOAL_API_TOO_LARGE},
        {"internal", SHOAL_API_INTERNAL},
    };
    if (kind != NULL)
        for (size_t i = 0; i < sizeof(KINDS) / sizeof(KINDS[0]); i++)
            if (strcmp(kind, KINDS[i].kind) == 0)
                return KINDS[i].code;
    return SHOAL_API_INTERNAL;
}

static int on_result(worker_t *w, const shoal_frame_hdr *h, const uint8_t *payload)
{
    shoal_inv_result_t res;
    shoal_invmeta_result_t rm;
    const uint8_t *data;
    const char *raw;
    size_t dlen, raw_len;
    shoal_inv_t *inv;
    char msg[96];

    /* The worker is not trusted: the decoder checks every length, the message is NUL-free, and
     * the headers are filtered again before they reach an HTTP answer (http.c). */
    if (shoal_frame_split(payload, h->len, &raw, &raw_len, &data, &dlen) < 0 ||
        shoal_invmeta_result_decode((const uint8_t *)raw, raw_len, &rm) < 0) {
        shoal_conn_close(w->conn, "malformed RESULT meta");
        return 0;
    }
    if ((inv = inv_by_dispatch_id(w->s, h->id, w)) == NULL) {
        /* The backstop timer answered it already; the worker was merely late. */
        SHOAL_DEBUG("worker %s: RESULT for unknown dispatch id %u", w->node, h->id);
        return 0;
    }
    if (!rm.ok && rm.kind == SHOAL_KIND_OVERLOAD && inv->parent == NULL &&
        inv->requeues < MAX_REQUEUES && (inv->input != NULL || inv->input_len == 0) &&
        now_ms(w->s) < inv->deadline && !w->s->shutdown) {
        /* Its instances are momentarily all taken (our count and its own can briefly differ):
         * give it nothing more until it answers something else or reports its status. */
        w->saturated = 1;
        SHOAL_DEBUG("worker %s is full; invocation %s goes back in the queue", w->node, inv->id);
        requeue(inv);
        drain(w->s);
        return 0;
    }
    w->saturated = 0;
    memset(&res, 0, sizeof(res));
    res.worker_meta = raw;
    res.worker_meta_len = raw_len;
    if (rm.ok) {
        res.code = SHOAL_API_OK;
        res.status = rm.status >= 200 && rm.status <= 599 ? (int)rm.status : 200;
        res.headers = rm.headers;
        res.headers_len = rm.headers_len;
        res.data = data;
        res.len = dlen;
    } else {
        res.code = code_of_kind(shoal_invmeta_kind_name(rm.kind));
        res.status = shoal_api_err_status(res.code);
        res.message = rm.error;
        res.message_len = rm.error_len;
        if (rm.error_len == 0) {
            if (res.code == SHOAL_API_TIMEOUT)
                snprintf(msg, sizeof(msg), "function exceeded its timeout of %u ms",
                         inv->timeout_ms);
            else
                snprintf(msg, sizeof(msg), "the invocation failed (%s)",
                         shoal_invmeta_kind_name(rm.kind));
            res.message = msg;
            res.message_len = strlen(msg);
        }
    }
    complete(inv, &res);
    return 0;
}

static void fetch_work(uv_work_t *req)
{
    fetch_t *f = (fetch_t *)req;
    f->err = shoal_registry_read_artifact(f->s->o.registry, f->sha, f->s->o.max_artifact, &f->data,
                                          &f->len);
}

static void fetch_done(uv_work_t *req, int status)
{
    fetch_t *f = (fetch_t *)req;
    shoal_sched_t *s = f->s;
    worker_t *w = worker_by_id(s, f->worker_id);
    shoal_json_t j;
    uv_buf_t meta;

    s->fetches--;
    if (w != NULL) {
        w->fetches--;
        shoal_json_init(&j);
        shoal_json_lit(&j, "{\"sha256\":");
        shoal_json_cstr(&j, f->sha);
        if (status < 0 || f->err < 0) {
            const char *why = status < 0          ? "cancelled"
                              : f->err == -ENOENT ? "no such artifact"
                                                  : strerror(-f->err);
            shoal_json_lit(&j, ",\"error\":");
            shoal_json_cstr(&j, why);
        }
        shoal_json_lit(&j, "}");
        if (shoal_json_error(&j) == 0 && w->conn != NULL) {
            meta = uv_buf_init(j.buf, (unsigned)j.len);
            if (status >= 0 && f->err == 0) {
                shoal_conn_send(w->conn, SHOAL_FRAME_ARTIFACT, f->frame_id, &meta, 1, f->data,
                                f->len, free);
                f->data = NULL; /* the connection owns it now */
            } else {
                shoal_conn_send(w->conn, SHOAL_FRAME_ARTIFACT, f->frame_id, &meta, 1, NULL, 0,
                                NULL);
            }
        }
        shoal_json_free(&j);
    }
    free(f->data);
    free(f);
}

static int on_fetch(worker_t *w, const shoal_frame_hdr *h, const uint8_t *payload)
{
    shoal_sched_t *s = w->s;
    const uint8_t *data;
    size_t dlen;
    json_t *m = parse_meta(payload, h->len, &data, &dlen, NULL, NULL);
    const char *sha;
    fetch_t *f;
    int err;

    if (m == NULL) {
        shoal_conn_close(w->conn, "FETCH meta is not a JSON object");
        return 0;
    }
    sha = json_string_value(json_object_get(m, "sha256"));
    if (!shoal_registry_sha_valid(sha) || w->fetches >= MAX_FETCHES || s->shutdown) {
        const char *why = !shoal_registry_sha_valid(sha) ? "sha256 must be 64 lower-case hex digits"
                          : s->shutdown                  ? "the controller is shutting down"
                                                         : "too many concurrent fetches";
        shoal_json_reset(&s->scratch);
        shoal_json_lit(&s->scratch, "{\"sha256\":");
        shoal_json_cstr(&s->scratch, sha ? sha : "");
        shoal_json_lit(&s->scratch, ",\"error\":");
        shoal_json_cstr(&s->scratch, why);
        shoal_json_lit(&s->scratch, "}");
        json_decref(m);
        if (shoal_json_error(&s->scratch) == 0) {
            uv_buf_t meta = uv_buf_init(s->scratch.buf, (unsigned)s->scratch.len);
            shoal_conn_send(w->conn, SHOAL_FRAME_ARTIFACT, h->id, &meta, 1, NULL, 0, NULL);
        }
        return 0;
    }
    if ((f = calloc(1, sizeof(*f))) == NULL) {
        json_decref(m);
        return -ENOMEM;
    }
    f->s = s;
    f->worker_id = w->id;
    f->frame_id = h->id;
    memcpy(f->sha, sha, 65);
    json_decref(m);
    if ((err = uv_queue_work(s->loop, &f->work, fetch_work, fetch_done)) < 0) {
        free(f);
        return err;
    }
    s->fetches++;
    w->fetches++;
    return 0;
}

static int on_call(worker_t *w, const shoal_frame_hdr *h, const uint8_t *payload)
{
    shoal_sched_t *s = w->s;
    const uint8_t *data;
    size_t dlen;
    json_t *m = parse_meta(payload, h->len, &data, &dlen, NULL, NULL);
    const char *name;
    uint64_t depth, timeout;
    json_int_t group = 1;
    json_t *gv;
    shoal_fnent_t *fn;
    shoal_inv_result_t res;
    shoal_inv_t *inv = NULL;
    char id[33], msg[256];
    int err;

    if (m == NULL || (name = json_string_value(json_object_get(m, "function"))) == NULL ||
        get_uint(m, "depth", 0, UINT32_MAX, 0, &depth) < 0 ||
        get_uint(m, "timeout_ms", 0, UINT32_MAX, 0, &timeout) < 0) {
        json_decref(m);
        shoal_conn_close(w->conn, "CALL meta needs \"function\" and numeric depth and timeout_ms");
        return 0;
    }
    if ((gv = json_object_get(m, "group")) != NULL) {
        if (!json_is_integer(gv)) {
            json_decref(m);
            shoal_conn_close(w->conn, "CALL \"group\" must be an integer");
            return 0;
        }
        group = json_integer_value(gv);
    }
    memset(&res, 0, sizeof(res));
    fn = shoal_fntable_find(s->fns, name, strlen(name));
    if (depth + 1 > opt_or(s->o.max_depth, 16)) {
        res.code = SHOAL_API_INTERNAL;
        snprintf(msg, sizeof(msg), "shoal_call nesting exceeds %u levels",
                 opt_or(s->o.max_depth, 16));
    } else if (fn == NULL || fn->deleted) {
        res.code = SHOAL_API_NOT_FOUND;
        snprintf(msg, sizeof(msg), "function '%.64s' not found", name);
    } else if (group < 1 || group > SHOAL_SCHED_GROUP_MAX) {
        res.code = SHOAL_API_BAD_QUERY;
        snprintf(msg, sizeof(msg), "a group has 1..%d ranks, not %lld", SHOAL_SCHED_GROUP_MAX,
                 (long long)group);
    } else if (shoal_sched_group_check(s, fn, (uint32_t)group, msg, sizeof(msg)) < 0) {
        res.code = SHOAL_API_GROUP_TOO_LARGE;
    }
    json_decref(m);
    if (res.code == SHOAL_API_OK) {
        shoal_inv_req_t r;
        shoal_json_t *j = &s->scratch;
        void *copy = NULL;

        if ((err = shoal_sched_new_id(s, id)) < 0)
            return err;
        /* The frame's payload is gone after this callback: the input must be copied. */
        if (dlen > 0 && (copy = malloc(dlen)) == NULL)
            return -ENOMEM;
        if (dlen > 0)
            memcpy(copy, data, dlen);
        shoal_json_reset(j);
        shoal_json_lit(j, "{\"function\":");
        shoal_json_cstr(j, fn->fn.name);
        shoal_json_lit(j, ",\"invocation_id\":\"");
        shoal_json_raw(j, id, 32);
        shoal_json_lit(j, "\"}");
        memset(&r, 0, sizeof(r));
        r.fn = fn;
        r.id = id;
        r.meta = j->buf;
        r.meta_len = j->len;
        r.input = copy;
        r.input_len = dlen;
        r.depth = (uint32_t)depth + 1;
        r.group = (uint32_t)group;
        r.timeout_ms = (uint32_t)timeout;
        err = shoal_json_error(j) < 0 ? -ENOMEM : shoal_sched_invoke(s, &r, &inv);
        if (err == 0) {
            inv->input_owned = copy; /* freed when the invocation ends */
            inv->call_worker = w->id;
            inv->call_id = h->id;
            return 0;
        }
        free(copy);
        res.code = err == -EAGAIN      ? SHOAL_API_OVERLOADED
                   : err == -ESHUTDOWN ? SHOAL_API_SHUTTING_DOWN
                                       : SHOAL_API_INTERNAL;
        snprintf(msg, sizeof(msg), "%s",
                 err == -EAGAIN ? "the controller's queue is full" : "cannot schedule the call");
    }
    s->results[res.code]++;
    res.status = shoal_api_err_status(res.code);
    res.message = msg;
    res.message_len = strlen(msg);
    send_call_result(s, w->id, h->id, &res);
    return 0;
}

static int on_status(worker_t *w, const shoal_frame_hdr *h, const uint8_t *payload)
{
    shoal_sched_t *s = w->s;
    const uint8_t *data;
    size_t dlen, n;
    json_t *m = parse_meta(payload, h->len, &data, &dlen, NULL, NULL);
    json_t *pools;
    uint64_t v;
    placement_t *p, *next;

    if (m == NULL) {
        shoal_conn_close(w->conn, "STATUS meta is not a JSON object");
        return 0;
    }
    w->saturated = 0; /* a fresh account of its capacity */
    if (get_uint(m, "slots", 1, SLOTS_MAX, w->slots, &v) == 0)
        w->slots = (uint32_t)v;
    if (get_uint(m, "busy", 0, UINT32_MAX, w->reported_busy, &v) == 0)
        w->reported_busy = (uint32_t)v;
    if (get_uint(m, "stems", 0, UINT32_MAX, w->stems, &v) == 0)
        w->stems = (uint32_t)v;
    pools = json_object_get(m, "pools");
    n = json_is_array(pools) ? json_array_size(pools) : 0;
    if (n > MAX_POOLS)
        n = MAX_POOLS;
    if (n > w->npools || w->pools == NULL) {
        pool_t *np = realloc(w->pools, (n ? n : 1) * sizeof(*np));
        if (np == NULL) {
            json_decref(m);
            return -ENOMEM;
        }
        w->pools = np;
    }
    w->npools = 0;
    w->status_seq++;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(pools, i);
        const char *fname = json_string_value(json_object_get(e, "function"));
        uint64_t version, warm, idle, busy;
        if (!json_is_object(e) || fname == NULL || strlen(fname) > SHOAL_NAME_MAX ||
            get_uint(e, "version", 0, INT64_MAX, 0, &version) < 0 ||
            get_uint(e, "warm", 0, UINT32_MAX, 0, &warm) < 0 ||
            get_uint(e, "idle", 0, UINT32_MAX, 0, &idle) < 0 ||
            get_uint(e, "busy", 0, UINT32_MAX, 0, &busy) < 0)
            continue;
        pool_t *pool = &w->pools[w->npools++];
        snprintf(pool->function, sizeof(pool->function), "%s", fname);
        pool->version = version;
        pool->warm = (uint32_t)warm;
        pool->idle = (uint32_t)idle;
        pool->busy = (uint32_t)busy;
        shoal_fnent_t *fn = shoal_fntable_find(s->fns, fname, strlen(fname));
        if (fn == NULL || fn->deleted || fn->fn.version != version || warm == 0)
            continue;
        if ((p = placement_get(fn, w)) == NULL)
            continue;
        p->warm = (uint32_t)warm;
        p->seen = w->status_seq;
    }
    json_decref(m);
    /* Warm instances the worker no longer mentions are gone (retired or of an older version). */
    for (p = w->placements; p; p = next) {
        next = p->w_next;
        if (p->seen != w->status_seq) {
            p->warm = 0;
            placement_maybe_free(p);
        }
    }
    drain(s);
    return 0;
}

/* A function's log line is kept only if its invocation id is what we hand out (hex) or empty:
 * it goes into JSON and terminals later. */
static int log_id_ok(const char *id, size_t len)
{
    return len <= SHOAL_LOGS_ID_MAX && shoal_util_lower_hex(id, len);
}

/* LOG: functions' log records, split into lines and kept with their functions (logs.h). Lines
 * of functions that no longer exist, or with an invocation id we never hand out, are dropped;
 * a truncated record is a protocol error. */
static int on_log(worker_t *w, const shoal_frame_hdr *h, const uint8_t *payload)
{
    shoal_sched_t *s = w->s;
    const uint8_t *data;
    size_t dlen, off = 0;
    json_t *m = parse_meta(payload, h->len, &data, &dlen, NULL, NULL);
    shoal_frame_log_rec_t rec;
    uint64_t dropped;
    char id[SHOAL_LOGS_ID_MAX + 1];
    int r;

    if (m == NULL || dlen > SHOAL_FRAME_LOG_MAX) {
        json_decref(m);
        shoal_conn_close(w->conn, "malformed LOG frame");
        return 0;
    }
    if (get_uint(m, "dropped", 0, UINT64_MAX, 0, &dropped) == 0 && dropped > 0)
        SHOAL_WARN("worker %s dropped %llu bytes of function logs (its queue to us was full)",
                   w->node, (unsigned long long)dropped);
    json_decref(m);
    while ((r = shoal_frame_log_next(data, dlen, &off, &rec)) > 0) {
        shoal_fnent_t *e = shoal_fntable_find(s->fns, rec.function, rec.function_len);
        shoal_log_line_t line = {.ts_ms = rec.ts_ms,
                                 .rank = rec.rank < 0 ? -1 : rec.rank,
                                 .invocation_id = id,
                                 .node = w->node};
        const char *p = rec.text, *end = rec.text + rec.text_len;

        /* A line we cannot file is dropped; it is no reason to lose the worker. */
        if (e == NULL || e->deleted || !log_id_ok(rec.invocation_id, rec.invocation_id_len))
            continue;
        if (e->logs == NULL && (e->logs = shoal_logs_create(
                                    s->o.log_cap ? s->o.log_cap : SHOAL_LOGS_DEFAULT_CAP)) == NULL)
            continue;
        memcpy(id, rec.invocation_id, rec.invocation_id_len);
        id[rec.invocation_id_len] = '\0';
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            line.text = p;
            line.text_len = (size_t)((nl ? nl : end) - p);
            line.seq = ++s->log_seq;
            shoal_logs_add(e->logs, &line);
            p = nl ? nl + 1 : end;
        }
    }
    if (r < 0)
        shoal_conn_close(w->conn, "truncated LOG record");
    return 0;
}

static int on_frame(shoal_conn_t *c, void *opaque, const shoal_frame_hdr *h, const uint8_t *payload)
{
    worker_t *w = opaque;
    char why[64];
    (void)c;

    if (!w->ready && h->type != SHOAL_FRAME_HELLO && h->type != SHOAL_FRAME_ERROR) {
        shoal_conn_close(w->conn, "the first frame must be HELLO");
        return 0;
    }
    switch (h->type) {
    case SHOAL_FRAME_HELLO:
        if (w->ready) {
            shoal_conn_close(w->conn, "HELLO sent twice");
            return 0;
        }
        return on_hello(w, payload, h->len);
    case SHOAL_FRAME_FUNC_ACK:
        if (h->id > w->func_acked && h->id <= w->s->func_seq) {
            w->func_acked = h->id;
            check_pubs(w->s);
        }
        return 0;
    case SHOAL_FRAME_RESULT:
        return on_result(w, h, payload);
    case SHOAL_FRAME_FETCH:
        return on_fetch(w, h, payload);
    case SHOAL_FRAME_CALL:
        return on_call(w, h, payload);
    case SHOAL_FRAME_STATUS:
        return on_status(w, h, payload);
    case SHOAL_FRAME_LOG:
        return on_log(w, h, payload);
    case SHOAL_FRAME_ERROR: {
        const uint8_t *data;
        size_t dlen;
        json_t *m = parse_meta(payload, h->len, &data, &dlen, NULL, NULL);
        const char *msg = m ? json_string_value(json_object_get(m, "error")) : NULL;
        SHOAL_WARN("worker %s (%s) reported an error: %s", w->node[0] ? w->node : "?",
                   shoal_conn_peer(w->conn), msg ? msg : "(no message)");
        json_decref(m);
        shoal_conn_close(w->conn, NULL);
        return 0;
    }
    default:
        snprintf(why, sizeof(why), "unexpected frame type %u from a worker", h->type);
        shoal_conn_close(w->conn, why);
        return 0;
    }
}

/* The connection is closing: take the worker out of service and answer its invocations. */
static void on_conn_close(shoal_conn_t *c, void *opaque, int reason)
{
    worker_t *w = opaque;
    shoal_sched_t *s = w->s;
    shoal_inv_t *inv;
    placement_t *p;
    (void)c;

    if (w->ready) {
        s->nready--;
        w->ready = 0;
        if (reason == 0 || reason == UV_EOF)
            SHOAL_INFO("worker %u (%s) disconnected", w->id, w->node);
        else
            SHOAL_WARN("worker %u (%s) lost: %s", w->id, w->node,
                       reason < 0 && reason > -4096 ? uv_strerror(reason) : "protocol error");
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        s->workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->conn = NULL;

    if (s->reserved == w) {
        /* The group that claimed it claims another at the next drain (below at the latest). */
        s->reserved = NULL;
        s->reserved_for = NULL;
    }
    while ((inv = w->inflight) != NULL) {
        shoal_api_err_t code = s->shutdown ? SHOAL_API_SHUTTING_DOWN : SHOAL_API_WORKER_LOST;
        /* The callee's caller may be this very worker: its CALL_RESULT goes nowhere. */
        if (inv->group > 1)
            fail(inv, code, "worker %s was lost while running a group of %u ranks", w->node,
                 inv->group);
        else
            fail(inv, code, "worker %s was lost while running the function", w->node);
    }
    while ((p = w->placements) != NULL)
        placement_free(p);
    if (s->nready == 0 && !s->shutdown) {
        /* Nobody left to run queued work: start their wait for a worker. */
        uint64_t nw = now_ms(s) + opt_or(s->o.no_worker_wait_ms, 5000);
        for (inv = s->qhead; inv; inv = inv->next) {
            inv->nw_deadline = nw;
            arm_queued(inv);
        }
    }
    if (!s->shutdown)
        drain(s);
    check_pubs(s);
}

static void on_conn_released(void *opaque)
{
    worker_t *w = opaque;

    w->s->conns--;
    free(w->pools);
    free(w);
}

static void worker_drop(worker_t *w, const char *why)
{
    SHOAL_WARN("dropping worker %u (%s): %s", w->id, w->node, why);
    shoal_conn_close(w->conn, why);
}

static void on_worker_connect(uv_stream_t *server, int status)
{
    shoal_sched_t *s = server->data;
    worker_t *w;
    int err;

    if (status < 0) {
        SHOAL_WARN("worker listener: %s", uv_strerror(status));
        return;
    }
    if (s->conns >= MAX_CONNS) {
        uv_tcp_t *t = malloc(sizeof(*t));
        SHOAL_WARN("refusing a worker connection: %u already open", s->conns);
        if (t == NULL || uv_tcp_init(server->loop, t) < 0) {
            free(t);
            return;
        }
        (void)uv_accept(server, (uv_stream_t *)t); /* taken only to be closed */
        uv_close((uv_handle_t *)t, (uv_close_cb)free);
        return;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return;
    w->s = s;
    w->accepted_at = now_ms(s);
    if ((err = shoal_conn_accept(
             server, s->o.max_payload < PRE_HELLO_PAYLOAD ? s->o.max_payload : PRE_HELLO_PAYLOAD,
             &s->conn_cbs, w, &w->conn)) < 0) {
        SHOAL_WARN("cannot accept a worker connection: %s", uv_strerror(err));
        free(w);
        return;
    }
    s->conns++;
    w->next = s->workers;
    if (w->next)
        w->next->prev = w;
    s->workers = w;
}

static void heartbeat_cb(uv_timer_t *t)
{
    shoal_sched_t *s = t->data;
    uint64_t now = now_ms(s), limit = opt_or(s->o.heartbeat_ms, 10000);
    worker_t *w, *next;

    for (w = s->workers; w; w = next) {
        next = w->next;
        if (!w->ready && now - w->accepted_at >= HELLO_TIMEOUT_MS) {
            SHOAL_WARN("worker connection %s dropped: no HELLO within %d ms",
                       shoal_conn_peer(w->conn), HELLO_TIMEOUT_MS);
            shoal_conn_close(w->conn, "no HELLO within 5 s");
            continue;
        }
        if (now - shoal_conn_last_rx(w->conn) > limit) {
            char why[64];
            snprintf(why, sizeof(why), "silent for more than %llu ms", (unsigned long long)limit);
            worker_drop(w, why);
        }
    }
}

/* ---- life cycle --------------------------------------------------------------------------- */

int shoal_sched_create(uv_loop_t *loop, const shoal_sched_opts_t *o, shoal_sched_t **out)
{
    shoal_sched_t *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->o = *o;
    if (s->o.queue_max > INV_MAX / 2)
        s->o.queue_max = INV_MAX / 2;
    if ((s->fns = shoal_fntable_create()) == NULL) {
        free(s);
        return -ENOMEM;
    }
    shoal_api_idgen_init(&s->idgen);
    /* Log sequence numbers keep increasing across restarts (logs.h): a reader following with
     * ?since= sees the new controller's lines. 2^20 lines per ms of uptime before they could
     * overtake a later start. */
    s->log_seq = shoal_util_wall_ms() << 20;
    shoal_json_init(&s->scratch);
    shoal_json_init(&s->gmeta);
    shoal_json_init(&s->spread_meta);
    s->conn_cbs.on_frame = on_frame;
    s->conn_cbs.on_close = on_conn_close;
    s->conn_cbs.on_released = on_conn_released;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(loop, &s->heartbeat);
    s->heartbeat.data = s;
    uv_timer_init(loop, &s->ack_timer);
    s->ack_timer.data = s;
    s->open_handles = 3;
    uv_timer_start(&s->heartbeat, heartbeat_cb, 1000, 1000);
    /* Housekeeping alone must not keep the loop alive. */
    uv_unref((uv_handle_t *)&s->heartbeat);
    *out = s;
    return 0;
}

int shoal_sched_listen(shoal_sched_t *s, const struct sockaddr *addr)
{
    int err;

    if ((err = uv_tcp_bind(&s->listener, addr, 0)) < 0)
        return err;
    if ((err = uv_listen((uv_stream_t *)&s->listener, 128, on_worker_connect)) < 0)
        return err;
    s->listening = 1;
    return 0;
}

int shoal_sched_port(const shoal_sched_t *s)
{
    return shoal_conn_local_port(&s->listener);
}

int shoal_sched_load(shoal_sched_t *s, const shoal_fn_t *fns, size_t n)
{
    shoal_fnent_t *e;

    for (size_t i = 0; i < n; i++)
        if (shoal_fntable_apply(s->fns, &fns[i], 0, &e) < 0)
            return -ENOMEM;
    return 0;
}

shoal_fntable_t *shoal_sched_functions(shoal_sched_t *s)
{
    return s->fns;
}

void shoal_sched_shutdown(shoal_sched_t *s)
{
    worker_t *w;
    shoal_sched_pub_t *p;

    if (s->shutdown)
        return;
    s->shutdown = 1;
    close_handle(s, (uv_handle_t *)&s->listener);
    close_handle(s, (uv_handle_t *)&s->heartbeat);
    close_handle(s, (uv_handle_t *)&s->ack_timer);
    while (s->qhead != NULL)
        fail(s->qhead, SHOAL_API_SHUTTING_DOWN, "the controller is shutting down");
    /* Closing a worker answers what runs on it. */
    while ((w = s->workers) != NULL) {
        if (w->conn != NULL)
            shoal_conn_close(w->conn, "the controller is shutting down");
        else
            break;
    }
    /* Deploys were committed before they were published: report them done. */
    while ((p = s->pubs) != NULL) {
        shoal_sched_pub_cb cb = p->cb;
        void *opaque = p->opaque;
        pub_unlink(p);
        free(p);
        if (cb)
            cb(opaque);
    }
    for (uint32_t i = 0; i < s->ninvs; i++)
        close_handle(s, (uv_handle_t *)&s->invs[i]->timer);
}

int shoal_sched_idle(const shoal_sched_t *s)
{
    return s->shutdown && s->open_handles == 0 && s->conns == 0 && s->fetches == 0;
}

void shoal_sched_destroy(shoal_sched_t *s)
{
    if (s == NULL)
        return;
    for (uint32_t i = 0; i < s->ninvs; i++) {
        free(s->invs[i]->input_owned);
        shoal_json_free(&s->invs[i]->meta);
        free(s->invs[i]);
    }
    free(s->invs);
    free(s->free_idx);
    /* Placements died with their workers; nothing else points into the table. */
    shoal_fntable_destroy(s->fns);
    shoal_json_free(&s->scratch);
    shoal_json_free(&s->gmeta);
    shoal_json_free(&s->spread_meta);
    free(s);
}

/* ---- introspection ------------------------------------------------------------------------ */

void shoal_sched_stats(const shoal_sched_t *s, shoal_sched_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    for (const worker_t *w = s->workers; w; w = w->next) {
        if (!w->ready)
            continue;
        st->workers++;
        st->slots += w->slots;
    }
    st->queued = s->queued;
    st->inflight = s->inflight;
    st->group_ranks = s->group_ranks;
    st->groups = s->groups;
    st->functions = (uint32_t)shoal_fntable_live(s->fns);
    memcpy(st->results, s->results, sizeof(st->results));
}

void shoal_sched_workers_json(const shoal_sched_t *s, shoal_json_t *j)
{
    int first = 1;

    shoal_json_lit(j, "{\"workers\":[");
    for (const worker_t *w = s->workers; w; w = w->next) {
        char t[32];
        if (!w->ready)
            continue;
        if (!first)
            shoal_json_lit(j, ",");
        first = 0;
        shoal_json_lit(j, "{\"id\":");
        shoal_json_u64(j, w->id);
        shoal_json_lit(j, ",\"node\":");
        shoal_json_cstr(j, w->node);
        shoal_json_lit(j, ",\"address\":");
        shoal_json_cstr(j, shoal_conn_peer(w->conn));
        shoal_json_lit(j, ",\"peer\":");
        shoal_json_cstr(j, w->peer);
        shoal_json_lit(j, ",\"pid\":");
        shoal_json_i64(j, w->pid);
        shoal_json_lit(j, ",\"slots\":");
        shoal_json_u64(j, w->slots);
        shoal_json_lit(j, ",\"busy\":");
        shoal_json_u64(j, w->reported_busy);
        shoal_json_lit(j, ",\"inflight\":");
        shoal_json_u64(j, w->busy);
        shoal_json_lit(j, ",\"groups\":");
        shoal_json_u64(j, w->groups);
        shoal_json_lit(j, ",\"group_ranks\":");
        shoal_json_u64(j, w->group_ranks);
        shoal_json_lit(j, ",\"stems\":");
        shoal_json_u64(j, w->stems);
        shoal_api_rfc3339(w->connected_ms, t);
        shoal_json_lit(j, ",\"connected\":");
        shoal_json_cstr(j, t);
        shoal_json_lit(j, ",\"pools\":[");
        for (size_t i = 0; i < w->npools; i++) {
            const pool_t *p = &w->pools[i];
            if (i > 0)
                shoal_json_lit(j, ",");
            shoal_json_lit(j, "{\"function\":");
            shoal_json_cstr(j, p->function);
            shoal_json_lit(j, ",\"version\":");
            shoal_json_u64(j, p->version);
            shoal_json_lit(j, ",\"warm\":");
            shoal_json_u64(j, p->warm);
            shoal_json_lit(j, ",\"idle\":");
            shoal_json_u64(j, p->idle);
            shoal_json_lit(j, ",\"busy\":");
            shoal_json_u64(j, p->busy);
            shoal_json_lit(j, "}");
        }
        shoal_json_lit(j, "]}");
    }
    shoal_json_lit(j, "]}");
}
