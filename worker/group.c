/*
 * group - see group.h for the life of a group.
 *
 * A group is freed only from its timer's close callback, so that every entry point may end it
 * (answer, destroy the arena, unlink it) and still read its fields until it returns: ending it
 * from inside a loop over its ranks (killing a rank re-enters shoal_group_rank_failed) is safe.
 * A rank's instance is linked to the group (inst->group) exactly while the rank has not ended.
 */
#include "group.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "transport/arena.h"
#include "transport/coll.h"
#include "worker/proc.h"

enum {
    RANK_PENDING, /* has an instance, no INVOKE posted yet */
    RANK_RUNNING, /* its INVOKE is posted */
    RANK_HOLD,    /* rank 0 succeeded: its output waits in its channel for the others */
    RANK_OK,      /* ended well; the instance went back to its pool */
    RANK_FAILED,  /* ended badly, or was released unstarted after another rank failed */
};

enum { G_RUNNING, G_FAILING, G_ENDED };

typedef struct {
    shoal_inst_t *inst; /* while the rank has not ended */
    int state;
    uint64_t fail_seq; /* order in which failures were seen; 0 = none */
    char kind[16];
    char *msg;
} shoal_group_rank_t;

struct shoal_group {
    shoal_worker_t *w;
    shoal_group_t *prev, *next; /* w->groups */
    char id[SHOAL_GROUP_ID_MAX + 1];
    char fn[SHOAL_NAME_MAX + 1];
    int size;
    int kind; /* SHOAL_INV_REMOTE (answer a RESULT) or SHOAL_INV_LOCAL (answer a caller) */
    uint32_t frame_id;
    uint64_t conn_gen;
    uint64_t caller_uid, caller_seq, caller_out_off, caller_out_cap;
    uint32_t timeout_ms; /* the function's, for messages */
    uint64_t start_ns;
    uint64_t deadline_ns; /* the arena's, kept here: the copy in the arena is writable by ranks */
    uint64_t input_len;
    shoal_arena_t *arena;
    uv_timer_t timer; /* the deadline, then the grace period after a failure */
    int phase;
    uint64_t fail_count;
    /* a failure that is no rank's (the connection was lost) */
    char gkind[16];
    char gmsg[128];
    /* rank 0's answer, while RANK_HOLD */
    uint32_t status;
    char *hdrs;
    size_t hdrs_len;
    uint64_t out_len;
    shoal_group_rank_t ranks[];
};

static void on_timer(uv_timer_t *t);

/* ---- ending ---- */

static void on_closed(uv_handle_t *h)
{
    shoal_group_t *g = h->data;

    for (int r = 0; r < g->size; r++)
        free(g->ranks[r].msg);
    free(g->hdrs);
    free(g);
}

/* Lets go of rank r's instance: back to its pool (or, if it is still starting, idle once it is
 * ready: it finds no invocation then). Only for a rank that is not running. */
static void release(shoal_group_t *g, int r)
{
    shoal_inst_t *inst = g->ranks[r].inst;
    shoal_worker_t *w = g->w;

    g->ranks[r].inst = NULL;
    if (inst == NULL)
        return;
    inst->group = NULL;
    if (w->rx_inst == inst) {
        /* Its input is still arriving: the rest of it goes nowhere. */
        shoal_wire_drop_dst(w->rd);
        w->rx_inst = NULL;
    }
    memset(&inst->inv, 0, sizeof(inst->inv));
    if (inst->phase == SHOAL_PH_READY)
        shoal_inst_finish(inst);
}

static void answer_ok(shoal_group_t *g)
{
    shoal_worker_t *w = g->w;
    shoal_inst_t *inst = g->ranks[0].inst, *caller;
    char msg[160];
    int n;

    g->ranks[0].inst = NULL;
    g->ranks[0].state = RANK_OK;
    inst->group = NULL;
    if (g->kind == SHOAL_INV_REMOTE) {
        if (w->conn != NULL && w->conn->up && g->conn_gen == w->conn_gen) {
            inst->inv.kind = SHOAL_INV_REMOTE;
            if (shoal_worker_send_result(w, inst, 1, NULL, NULL, 0, g->status, g->hdrs, g->hdrs_len,
                                         g->out_len) == 0) {
                /* As for a single invocation: busy until the write of its output completes. */
                inst->result_writing = 1;
                inst->inv.kind = SHOAL_INV_NONE;
                return;
            }
        }
    } else {
        caller = shoal_inst_by_uid(w, g->caller_uid);
        if (caller != NULL && caller->calling && caller->call_seq == g->caller_seq) {
            if (g->out_len > g->caller_out_cap) {
                n = snprintf(msg, sizeof(msg), "output of %s too large for the caller", g->fn);
                shoal_inst_call_done(caller, -EFBIG, msg, (size_t)n, 0);
            } else {
                memcpy(caller->ch.call + g->caller_out_off, inst->ch.out, g->out_len);
                shoal_inst_call_done(caller, 0, NULL, 0, g->out_len);
            }
        }
    }
    shoal_inst_finish(inst);
}

/* who/why: the failure recorded in the arena (who -1 if none). */
static void answer_failure(shoal_group_t *g, int who, int why)
{
    shoal_worker_t *w = g->w;
    shoal_inst_t *caller;
    const char *kind = g->gkind, *msg = g->gmsg;
    char left[128];
    int pick = -1;

    /* The arena says which rank the group failed because of, when a rank or the worker recorded
     * it: more telling than the order in which the ranks' answers reached us (a rank that
     * returned an error makes every peer's collective fail too). It is a hint from shared
     * memory, so it is followed only to a failure the worker saw itself. */
    if (who >= 0 && who < g->size) {
        if (g->ranks[who].fail_seq != 0) {
            pick = who;
        } else if (why == SHOAL_ARENA_FAIL_LEFT && g->ranks[who].state == RANK_OK) {
            snprintf(left, sizeof(left),
                     "rank %d returned from shoal_main while other ranks still waited for it", who);
            kind = "function";
            msg = left;
        }
    }
    if (pick < 0 && msg != left) {
        for (int r = 0; r < g->size; r++)
            if (g->ranks[r].fail_seq != 0 &&
                (pick < 0 || g->ranks[r].fail_seq < g->ranks[pick].fail_seq))
                pick = r;
    }
    if (pick >= 0) {
        kind = g->ranks[pick].kind;
        msg = g->ranks[pick].msg != NULL ? g->ranks[pick].msg : "a rank failed";
    }
    if (kind[0] == '\0') {
        kind = "internal";
        msg = "the group failed";
    }
    if (g->kind == SHOAL_INV_REMOTE) {
        if (w->conn != NULL && w->conn->up && g->conn_gen == w->conn_gen)
            shoal_worker_send_failure(w, g->frame_id, kind, msg, strlen(msg),
                                      (shoal_util_now_ns() - g->start_ns) / 1000);
    } else {
        caller = shoal_inst_by_uid(w, g->caller_uid);
        if (caller != NULL && caller->calling && caller->call_seq == g->caller_seq)
            shoal_inst_call_done(caller, shoal_kind_errno(kind), msg, strlen(msg), 0);
    }
}

static void end(shoal_group_t *g)
{
    shoal_worker_t *w = g->w;
    int who = -1, why = 0;

    g->phase = G_ENDED;
    uv_timer_stop(&g->timer);
    /* The arena goes first: once the answer is out, nothing of the group is left. */
    if (!shoal_arena_failure(g->arena, &who, &why))
        who = -1;
    shoal_arena_destroy(g->arena);
    g->arena = NULL;
    if (g->fail_count == 0 && g->gkind[0] == '\0' && g->ranks[0].state == RANK_HOLD)
        answer_ok(g);
    else
        answer_failure(g, who, why);
    for (int r = 0; r < g->size; r++)
        release(g, r);
    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        w->groups = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    g->prev = g->next = NULL;
    uv_close((uv_handle_t *)&g->timer, on_closed);
    shoal_worker_changed(w);
}

/* Ends the group once no rank is starting or running. */
static void check_end(shoal_group_t *g)
{
    if (g->phase == G_ENDED)
        return;
    for (int r = 0; r < g->size; r++)
        if (g->ranks[r].state == RANK_PENDING || g->ranks[r].state == RANK_RUNNING)
            return;
    end(g);
}

/* The first failure aborts the arena: every rank blocked in (or entering) a collective returns
 * -ECONNABORTED. Ranks that have not started are let go; running ones get a grace period. */
static void fail_group(shoal_group_t *g, int rank, int reason)
{
    int running = 0;

    if (g->phase != G_RUNNING)
        return;
    g->phase = G_FAILING;
    shoal_arena_abort(g->arena, rank, reason);
    for (int r = 0; r < g->size; r++) {
        switch (g->ranks[r].state) {
        case RANK_PENDING:
            g->ranks[r].state = RANK_FAILED;
            release(g, r);
            break;
        case RANK_HOLD:
            g->ranks[r].state = RANK_OK;
            release(g, r);
            break;
        case RANK_RUNNING:
            running++;
            break;
        }
    }
    if (running > 0)
        uv_timer_start(&g->timer, on_timer, SHOAL_GROUP_GRACE_MS, 0);
}

static int reason_of(const char *kind)
{
    if (strcmp(kind, "crash") == 0)
        return SHOAL_ARENA_FAIL_CRASHED;
    if (strcmp(kind, "timeout") == 0)
        return SHOAL_ARENA_FAIL_TIMEOUT;
    if (strcmp(kind, "function") == 0 || strcmp(kind, "too_large") == 0)
        return SHOAL_ARENA_FAIL_LEFT;
    return SHOAL_ARENA_FAIL_CANCELLED;
}

/* Records rank r's failure (its first only) and fails the group. */
static void record(shoal_group_t *g, int r, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void record(shoal_group_t *g, int r, const char *kind, const char *fmt, ...)
{
    shoal_group_rank_t *k = &g->ranks[r];
    va_list ap;

    if (k->fail_seq == 0 && g->phase != G_ENDED) {
        k->fail_seq = ++g->fail_count;
        snprintf(k->kind, sizeof(k->kind), "%s", kind);
        va_start(ap, fmt);
        if (vasprintf(&k->msg, fmt, ap) < 0)
            k->msg = NULL;
        va_end(ap);
    }
    fail_group(g, r, reason_of(kind));
}

/* The rank holding the group up at its deadline: one that never started, else the one whose
 * collective progress is furthest behind (lowest rank on ties). */
static int laggard(shoal_group_t *g)
{
    const uint32_t half = (SHOAL_COLL_PROGRESS_MASK + 1u) / 2;
    uint32_t best_p = 0, p;
    int best = -1;

    for (int r = 0; r < g->size; r++)
        if (g->ranks[r].state == RANK_PENDING)
            return r;
    for (int r = 0; r < g->size; r++) {
        if (g->ranks[r].state != RANK_RUNNING)
            continue;
        p = atomic_load_explicit(&shoal_arena_ctl_of(g->arena, r)->state, memory_order_relaxed) &
            SHOAL_COLL_PROGRESS_MASK;
        /* p is behind best_p (progress words wrap). */
        if (best < 0 || (p != best_p && ((p - best_p) & SHOAL_COLL_PROGRESS_MASK) >= half)) {
            best = r;
            best_p = p;
        }
    }
    return best >= 0 ? best : 0;
}

static void on_timer(uv_timer_t *t)
{
    shoal_group_t *g = t->data;
    shoal_worker_t *w = g->w;
    int r;

    if (g->phase == G_RUNNING) {
        r = laggard(g);
        record(g, r, "timeout", "rank %d exceeded the timeout of %u ms", r, g->timeout_ms);
    } else if (g->phase == G_FAILING) {
        /* The grace period is over. Killing a rank ends it (shoal_group_rank_failed). */
        for (r = 0; r < g->size; r++)
            if (g->ranks[r].state == RANK_RUNNING && g->ranks[r].inst != NULL)
                shoal_inst_kill(g->ranks[r].inst);
        shoal_worker_replenish(w);
    }
    check_end(g);
}

/* ---- hooks from instance.c ---- */

int shoal_group_start_rank(shoal_inst_t *inst, uint64_t seq)
{
    shoal_group_t *g = inst->group;
    shoal_ctl_group_t m;
    int fd, err;

    if (g == NULL || g->arena == NULL || g->phase != G_RUNNING)
        return -ECANCELED;
    memset(&m, 0, sizeof(m));
    m.magic = SHOAL_CTL_MAGIC;
    m.type = SHOAL_CTL_GROUP;
    m.seq = seq;
    m.rank = inst->rank;
    m.size = g->size;
    m.deadline_ns = g->deadline_ns;
    m.grank = inst->rank;
    m.gsize = g->size;
    m.nnodes = 1;
    fd = shoal_arena_fd(g->arena);
    if ((err = shoal_proc_send_fds(inst->ctl_fd, &m, sizeof(m), &fd, 1)) < 0)
        return err;
    g->ranks[inst->rank].state = RANK_RUNNING;
    return 0;
}

void shoal_group_rank_done(shoal_inst_t *inst, int ok, const char *kind, const char *msg,
                           size_t msg_len, uint32_t status, const char *hdrs, size_t hdrs_len,
                           uint64_t out_len)
{
    shoal_group_t *g = inst->group;
    int r = inst->rank;

    if (g == NULL) {
        shoal_inst_finish(inst);
        return;
    }
    if (ok && r == 0 && g->phase == G_RUNNING) {
        /* The answer, kept until every rank is done; the instance stays busy meanwhile. */
        free(g->hdrs);
        g->hdrs = NULL;
        g->hdrs_len = 0;
        if (hdrs_len > 0 && (g->hdrs = malloc(hdrs_len)) != NULL) {
            memcpy(g->hdrs, hdrs, hdrs_len);
            g->hdrs_len = hdrs_len;
        }
        g->status = status;
        g->out_len = out_len;
        g->ranks[0].state = RANK_HOLD;
    } else if (ok) {
        g->ranks[r].state = RANK_OK;
        release(g, r);
    } else {
        g->ranks[r].state = RANK_FAILED;
        release(g, r);
        record(g, r, kind, "rank %d failed: %.*s", r, (int)msg_len, msg);
    }
    check_end(g);
}

void shoal_group_rank_failed(shoal_inst_t *inst, const char *kind, const char *msg, size_t len)
{
    static const char fn[] = "function ";
    shoal_group_t *g = inst->group;
    int r = inst->rank;

    if (g == NULL)
        return;
    inst->group = NULL;
    g->ranks[r].inst = NULL;
    g->ranks[r].state = RANK_FAILED;
    /* The instance's own words with the rank as subject: "function crashed: killed by signal 11
     * (SIGSEGV)" becomes "rank 3 crashed: killed by signal 11 (SIGSEGV)". */
    if (len > sizeof(fn) - 1 && memcmp(msg, fn, sizeof(fn) - 1) == 0)
        record(g, r, kind, "rank %d %.*s", r, (int)(len - (sizeof(fn) - 1)), msg + sizeof(fn) - 1);
    else
        record(g, r, kind, "rank %d failed: %.*s", r, (int)len, msg);
    check_end(g);
}

/* ---- starting ---- */

/* Whether n instances of pool can be had at once now; if not, why (in why). Mirrors
 * shoal_pool_acquire: idle ones first, then new ones within max_instances and the node's free
 * slots, counting the idle instances of other pools that could be evicted for room. */
static int can_host(shoal_worker_t *w, shoal_pool_t *pool, unsigned n, char *why, size_t len)
{
    shoal_pools_t *p = &w->pools;
    unsigned need, free_slots, evictable = 0;
    shoal_pool_entry_t *e;

    if (n > SHOAL_ARENA_MAX_RANKS || n > p->slots) {
        snprintf(why, len,
                 "a group of %u exceeds what node %s can host (%u slots, at most %d "
                 "ranks per node)",
                 n, w->cfg.node, p->slots, SHOAL_ARENA_MAX_RANKS);
        return 0;
    }
    need = n > pool->idle ? n - pool->idle : 0;
    if (need == 0)
        return 1;
    if (shoal_pool_size(pool) + need > pool->fn.max_instances) {
        snprintf(why, len,
                 "node %s cannot start %u more instances of %s for a group of %u "
                 "(max_instances %u, %u running)",
                 w->cfg.node, need, pool->fn.name, n, pool->fn.max_instances,
                 shoal_pool_size(pool));
        return 0;
    }
    free_slots = p->slots > p->used ? p->slots - p->used : 0;
    for (e = p->lru_tail; e != NULL && free_slots + evictable < need; e = e->lru_prev)
        if (e->pool != pool)
            evictable++;
    if (free_slots + evictable < need) {
        snprintf(why, len,
                 "node %s has no room for a group of %u of %s now (%u of %u slots "
                 "in use)",
                 w->cfg.node, n, pool->fn.name, p->used, p->slots);
        return 0;
    }
    return 1;
}

/* What a new group is for: the answer's destination and the invocation's parameters. */
typedef struct {
    int kind;
    uint32_t frame_id;
    shoal_inst_t *caller;
    const char *id;
    const char *invocation_id;
    const json_t *meta;
    uint32_t depth;
    uint64_t left_ms;
    uint64_t input_len;
} group_spec_t;

/* Takes n instances of pool and creates the group, linked in w->groups with its timer running.
 * NULL on failure with the answer's kind and message in kind/why (nothing taken). */
static shoal_group_t *create(shoal_worker_t *w, shoal_pool_t *pool, unsigned n,
                             const group_spec_t *s, const char **kind, char *why, size_t len)
{
    shoal_group_t *g;
    shoal_inst_t *inst;
    unsigned got = 0;
    int err;

    *kind = "overload";
    if (!can_host(w, pool, n, why, len))
        return NULL;
    *kind = "internal";
    if ((g = calloc(1, sizeof(*g) + n * sizeof(g->ranks[0]))) == NULL) {
        snprintf(why, len, "out of memory");
        return NULL;
    }
    g->w = w;
    g->size = (int)n;
    g->kind = s->kind;
    g->frame_id = s->frame_id;
    g->conn_gen = w->conn_gen;
    if (s->caller != NULL) {
        g->caller_uid = s->caller->uid;
        g->caller_seq = s->caller->call_seq;
        g->caller_out_off = s->caller->call_out_off;
        g->caller_out_cap = s->caller->call_out_cap;
    }
    snprintf(g->id, sizeof(g->id), "%s", s->id);
    snprintf(g->fn, sizeof(g->fn), "%s", pool->fn.name);
    g->timeout_ms = pool->fn.timeout_ms;
    g->start_ns = shoal_util_now_ns();
    g->input_len = s->input_len;
    g->deadline_ns = g->start_ns + (s->left_ms + SHOAL_GROUP_DEADLINE_SLACK_MS) * 1000000u;
    if ((err = shoal_arena_create(&g->arena, (int)n,
                                  shoal_channel_group_data((int)n, pool->fn.memory_mb),
                                  g->deadline_ns)) < 0) {
        snprintf(why, len, "cannot create the group's shared memory: %s", strerror(-err));
        free(g);
        return NULL;
    }
    /* All or nothing: the check above makes every acquire succeed unless the node misbehaves
     * (no memory for a stem); then those taken go back. The pools are topped up once, at the
     * end, so that no pre-warming takes the slots counted on in between. */
    for (got = 0; got < n; got++) {
        if ((inst = shoal_worker_acquire(w, pool, 0)) == NULL)
            break;
        g->ranks[got].inst = inst;
        memset(&inst->inv, 0, sizeof(inst->inv));
        inst->inv.kind = SHOAL_INV_GROUP;
        inst->inv.frame_id = s->frame_id;
        inst->inv.conn_gen = w->conn_gen;
        inst->inv.start_ns = g->start_ns;
        inst->inv.fn_timeout_ms = pool->fn.timeout_ms;
        inst->inv.deadline_ms = s->left_ms;
        inst->inv.depth = s->depth;
        inst->inv.input_len = s->input_len;
        snprintf(inst->inv.invocation_id, sizeof(inst->inv.invocation_id), "%s", s->invocation_id);
        inst->group = g;
        inst->rank = (int)got;
        if (s->input_len > inst->ch.lay.in_cap) {
            *kind = "too_large";
            snprintf(why, len, "the input of %llu bytes does not fit the instances' channels",
                     (unsigned long long)s->input_len);
            got++;
            goto undo;
        }
        if (shoal_inst_build_meta(inst, s->meta, pool->fn.name) < 0) {
            snprintf(why, len, "the request's metadata does not fit the instances' channels");
            got++;
            goto undo;
        }
    }
    if (got < n) {
        *kind = "overload";
        snprintf(why, len, "node %s could not start %u instances of %s", w->cfg.node, n,
                 pool->fn.name);
        goto undo;
    }
    shoal_worker_replenish(w);
    g->next = w->groups;
    if (w->groups != NULL)
        w->groups->prev = g;
    w->groups = g;
    uv_timer_init(&w->loop, &g->timer);
    g->timer.data = g;
    uv_timer_start(&g->timer, on_timer, s->left_ms, 0);
    shoal_worker_changed(w);
    SHOAL_DEBUG("group %s: %u ranks of %s", g->id, n, g->fn);
    return g;
undo:
    for (unsigned r = 0; r < got; r++)
        release(g, (int)r);
    shoal_worker_replenish(w);
    shoal_arena_destroy(g->arena);
    free(g);
    return NULL;
}

/* Posts the invocation to every rank that is ready (the others start from on_ready). */
static void start(shoal_group_t *g)
{
    for (int r = 0; r < g->size && g->phase == G_RUNNING; r++) {
        shoal_inst_t *inst = g->ranks[r].inst;

        if (g->ranks[r].state != RANK_PENDING || inst == NULL)
            continue;
        inst->inv.input_ready = 1;
        if (inst->phase == SHOAL_PH_READY)
            shoal_inst_run(inst);
    }
}

void shoal_group_input_ready(shoal_group_t *g)
{
    shoal_inst_t *first;

    if (g == NULL || g->phase != G_RUNNING || (first = g->ranks[0].inst) == NULL)
        return;
    for (int r = 1; r < g->size; r++)
        if (g->ranks[r].inst != NULL && g->input_len > 0)
            memcpy(g->ranks[r].inst->ch.in, first->ch.in, g->input_len);
    start(g);
}

/* Parses the "group" of an INVOKE: 0, or -1 with the answer in kind/why. */
static int parse_group(shoal_worker_t *w, const json_t *gj, unsigned *size, const char **id,
                       const char **kind, char *why, size_t len)
{
    const json_t *ranks = json_object_get(gj, "ranks"), *v, *sz = json_object_get(gj, "size");
    const char *transport = json_string_value(json_object_get(gj, "transport"));
    uint8_t *seen;
    size_t i, n;

    *kind = "internal";
    *id = json_string_value(json_object_get(gj, "id"));
    if (!json_is_object(gj) || !json_is_integer(sz) || json_integer_value(sz) < 1 ||
        json_integer_value(sz) > SHOAL_CHANNEL_GROUP_MAX || (*id != NULL && strlen(*id) == 0) ||
        (json_object_get(gj, "id") != NULL && *id == NULL) ||
        (*id != NULL && (strlen(*id) > SHOAL_GROUP_ID_MAX ||
                         strspn(*id, "0123456789abcdefABCDEF") != strlen(*id))) ||
        (json_object_get(gj, "transport") != NULL && transport == NULL) ||
        (ranks != NULL && !json_is_array(ranks))) {
        snprintf(why, len, "worker %s: malformed group in INVOKE", w->cfg.node);
        return -1;
    }
    if (*id == NULL)
        *id = "";
    *size = (unsigned)json_integer_value(sz);
    if (transport != NULL && strcmp(transport, "shm") != 0) {
        snprintf(why, len, "worker %s: group transport \"%.32s\" is not supported", w->cfg.node,
                 transport);
        return -1;
    }
    if (ranks == NULL)
        return 0; /* all of them */
    /* This worker hosts whole groups: exactly the ranks 0..size-1. */
    n = json_array_size(ranks);
    if (n != *size || (seen = calloc(n, 1)) == NULL) {
        snprintf(why, len, "worker %s hosts whole groups only (ranks 0..%u), not %zu of them",
                 w->cfg.node, *size - 1, n);
        return -1;
    }
    json_array_foreach(ranks, i, v)
    {
        json_int_t r = json_integer_value(v);
        if (!json_is_integer(v) || r < 0 || (size_t)r >= n || seen[r]) {
            free(seen);
            snprintf(why, len, "worker %s: malformed group ranks in INVOKE", w->cfg.node);
            return -1;
        }
        seen[r] = 1;
    }
    free(seen);
    return 0;
}

void shoal_group_invoke(shoal_worker_t *w, const shoal_frame_hdr *hdr, const json_t *j,
                        const json_t *gj, shoal_pool_t *pool, size_t data_len, uint8_t **dst)
{
    const char *kind, *id, *inv_id = json_string_value(json_object_get(j, "invocation_id"));
    const json_t *v = json_object_get(j, "timeout_ms");
    shoal_group_t *g;
    unsigned size;
    char why[256];

    if (parse_group(w, gj, &size, &id, &kind, why, sizeof(why)) < 0 ||
        (g = create(w, pool, size,
                    &(group_spec_t){
                        .kind = SHOAL_INV_REMOTE,
                        .frame_id = hdr->id,
                        .id = id,
                        .invocation_id = inv_id != NULL ? inv_id : "",
                        .meta = json_object_get(j, "meta"),
                        .depth = (uint32_t)json_integer_value(json_object_get(j, "depth")),
                        .left_ms = json_is_integer(v) && json_integer_value(v) > 0 &&
                                           (uint64_t)json_integer_value(v) < pool->fn.timeout_ms
                                       ? (uint64_t)json_integer_value(v)
                                       : pool->fn.timeout_ms,
                        .input_len = data_len,
                    },
                    &kind, why, sizeof(why))) == NULL) {
        shoal_worker_send_failure(w, hdr->id, kind, why, strlen(why), 0);
        return;
    }
    w->rx_inst = g->ranks[0].inst;
    if (data_len > 0)
        *dst = g->ranks[0].inst->ch.in;
}

void shoal_group_dispatch_call(shoal_worker_t *w, shoal_inst_t *caller, const char *function,
                               unsigned n, uint64_t in_off, uint64_t in_len)
{
    shoal_pool_t *pool = shoal_pools_current(&w->pools, function);
    const char *kind;
    shoal_group_t *g;
    char why[256], id[40];
    int err, len;

    if (pool != NULL && pool->failures == 0 && can_host(w, pool, n, why, sizeof(why))) {
        snprintf(id, sizeof(id), "%x%08llx", (unsigned)getpid(),
                 (unsigned long long)++w->next_group);
        g = create(w, pool, n,
                   &(group_spec_t){.kind = SHOAL_INV_LOCAL,
                                   .caller = caller,
                                   .id = id,
                                   .invocation_id = caller->inv.invocation_id,
                                   .depth = caller->inv.depth + 1,
                                   .left_ms = pool->fn.timeout_ms,
                                   .input_len = in_len},
                   &kind, why, sizeof(why));
        if (g == NULL) {
            shoal_inst_call_done(caller, shoal_kind_errno(kind), why, strlen(why), 0);
            return;
        }
        for (int r = 0; r < g->size; r++)
            if (in_len > 0)
                memcpy(g->ranks[r].inst->ch.in, caller->ch.call + in_off, in_len);
        start(g);
        return;
    }
    if ((err = shoal_worker_send_call(w, caller, function, n, in_off, in_len)) < 0) {
        len = snprintf(why, sizeof(why), "cannot call a group of %s: %s", function,
                       err == -ENOTCONN ? "no connection to the controller" : strerror(-err));
        shoal_inst_call_done(caller, err == -ENOTCONN ? -ECONNREFUSED : err, why, (size_t)len, 0);
    }
}

void shoal_group_conn_lost(shoal_worker_t *w)
{
    shoal_group_t *g, *next;

    for (g = w->groups; g != NULL; g = next) {
        next = g->next;
        if (g->kind != SHOAL_INV_REMOTE || g->phase != G_RUNNING)
            continue;
        snprintf(g->gkind, sizeof(g->gkind), "internal");
        snprintf(g->gmsg, sizeof(g->gmsg), "lost the connection to the controller");
        fail_group(g, -1, SHOAL_ARENA_FAIL_CANCELLED);
        check_end(g);
    }
}
