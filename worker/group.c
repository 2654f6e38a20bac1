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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "transport/arena.h"
#include "transport/coll.h"
#include "worker/peer.h"
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
    unsigned xfers;    /* its cross-node transfers in flight */
    uint64_t fail_seq; /* order in which failures were seen; 0 = none */
    char kind[16];
    char *msg;
    int redis_fd1; /* ?transport=redis: the rank's socket to Redis + 1 until it is sent; 0 = none */
} shoal_group_rank_t;

/* A cross-node transfer of a rank in flight: its XDONE is owed once the peer calls back. */
typedef struct xfer {
    struct xfer *prev, *next;
    shoal_group_t *g;
    uint64_t inst_uid, inv_seq, xseq;
} xfer_t;

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
    uint64_t data_size; /* the arena's data capacity */
    uint32_t memory_mb; /* the function's */
    shoal_arena_t *arena;
    uv_timer_t timer; /* the deadline, then the grace period after a failure */
    int phase;
    uint64_t fail_count;
    /* a failure that is no rank's (the connection was lost) */
    char gkind[16];
    char gmsg[SHOAL_PEER_ABORT_MAX + 1];
    int remote_failed; /* gkind/gmsg came from another node of a spread group */
    /* A group spread over several nodes (peer.h); granks is NULL for a group on this node only.
     * The arena's ranks (0..size-1) are this node's global ranks in increasing order. */
    int gsize;
    int *granks;       /* local rank -> global rank */
    uint16_t *node_of; /* gsize entries */
    uint32_t nnodes, me;
    uint64_t group_id;
    shoal_peer_group_t *pg;
    xfer_t *xfers;
    int deadline_deferred; /* the deadline came while ranks here waited for other nodes */
    /* rank 0's answer, while RANK_HOLD */
    uint32_t status;
    char *hdrs;
    size_t hdrs_len;
    uint64_t out_len;
    shoal_group_rank_t ranks[];
};

static void on_timer(uv_timer_t *t);

/* ---- warm arenas (see SHOAL_GROUP_SPARES) ---- */

typedef struct shoal_group_spare {
    struct shoal_group_spare *next; /* most recently kept first */
    char fn[SHOAL_NAME_MAX + 1];
    int nranks;
    uint64_t data_size;
    uint64_t since_ms;
    shoal_arena_t *arena;
} spare_t;

void shoal_group_spares_expire(shoal_worker_t *w, uint64_t now_ms, uint64_t keep_ms)
{
    spare_t **pp = &w->spares, *s;

    while ((s = *pp) != NULL) {
        if (keep_ms != 0 && now_ms < s->since_ms + keep_ms) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        shoal_arena_destroy(s->arena);
        free(s);
    }
}

/* A kept arena for n ranks of fn with data_size bytes, re-armed with deadline_ns; NULL if none. */
static shoal_arena_t *spare_take(shoal_worker_t *w, const char *fn, int n, uint64_t data_size,
                                 uint64_t deadline_ns)
{
    for (spare_t **pp = &w->spares, *s; (s = *pp) != NULL; pp = &s->next) {
        shoal_arena_t *a = s->arena;
        if (s->nranks != n || s->data_size != data_size || strcmp(s->fn, fn) != 0)
            continue;
        *pp = s->next;
        free(s);
        shoal_arena_set_deadline(a, deadline_ns);
        return a;
    }
    return NULL;
}

/* Keeps the arena of group g, which ended well, for the next group of its
 * function (replacing any arena kept for that function before); destroys it when it cannot be
 * kept. Every rank has unmapped it (they do before their DONE) and no transfer uses it. The pages
 * kept stay charged to the cgroups of the instances that first wrote them, so at most a quarter
 * of the function's memory limit is kept: its instances keep the rest of their budget. */
static void spare_keep(shoal_group_t *g)
{
    shoal_worker_t *w = g->w;
    uint64_t keep = ((uint64_t)g->memory_mb << 20) / 4;
    spare_t *fresh, *s, **pp;
    int kept = 1;

    if (keep > SHOAL_GROUP_SPARE_KEEP)
        keep = SHOAL_GROUP_SPARE_KEEP;
    if ((fresh = calloc(1, sizeof(*fresh))) == NULL || shoal_arena_reset(g->arena, 0, keep) < 0) {
        free(fresh);
        shoal_arena_destroy(g->arena);
        return;
    }
    snprintf(fresh->fn, sizeof(fresh->fn), "%s", g->fn);
    fresh->nranks = g->size;
    fresh->data_size = g->data_size;
    fresh->since_ms = shoal_util_now_ms();
    fresh->arena = g->arena;
    /* One per function, SHOAL_GROUP_SPARES in all: the oldest go. */
    for (pp = &w->spares; (s = *pp) != NULL;) {
        if (strcmp(s->fn, g->fn) != 0 && ++kept <= SHOAL_GROUP_SPARES) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        shoal_arena_destroy(s->arena);
        free(s);
    }
    fresh->next = w->spares;
    w->spares = fresh;
}

/* The global rank of local rank r: what every message names. */
static int gr(const shoal_group_t *g, int r)
{
    return g->granks != NULL && r >= 0 && r < g->size ? g->granks[r] : r;
}

/* ---- ending ---- */

static void on_closed(uv_handle_t *h)
{
    shoal_group_t *g = h->data;

    for (int r = 0; r < g->size; r++)
        free(g->ranks[r].msg);
    free(g->hdrs);
    free(g->granks);
    free(g->node_of);
    free(g);
}

/* Lets go of rank r's instance: back to its pool (or, if it is still starting, idle once it is
 * ready: it finds no invocation then). Only for a rank that is not running. */
static void release(shoal_group_t *g, int r)
{
    shoal_inst_t *inst = g->ranks[r].inst;
    shoal_worker_t *w = g->w;

    if (g->ranks[r].redis_fd1 > 0)
        close(g->ranks[r].redis_fd1 - 1);
    g->ranks[r].redis_fd1 = 0;
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
                     "rank %d returned from shoal_main while other ranks still waited for it",
                     gr(g, who));
            kind = "function";
            msg = left;
        }
    }
    /* Another node failed first: its message names the rank (the ranks here merely saw their
     * collectives aborted). */
    if (g->remote_failed)
        msg = left;
    if (pick < 0 && msg != left) {
        for (int r = 0; r < g->size; r++)
            if (g->ranks[r].fail_seq != 0 &&
                (pick < 0 || g->ranks[r].fail_seq < g->ranks[pick].fail_seq))
                pick = r;
    }
    if (g->remote_failed) {
        kind = g->gkind;
        msg = g->gmsg;
    } else if (pick >= 0) {
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

/* Closes the group's peer group, if any: the peer's callbacks stop, and the transfers that were
 * waiting for them are dropped. */
static void close_peer(shoal_group_t *g)
{
    if (g->pg != NULL)
        shoal_peer_group_close(g->pg);
    g->pg = NULL;
    while (g->xfers != NULL) {
        xfer_t *x = g->xfers;
        g->xfers = x->next;
        free(x);
    }
}

static void end(shoal_group_t *g)
{
    shoal_worker_t *w = g->w;
    int who = -1, why = 0, ok, idle;

    g->phase = G_ENDED;
    uv_timer_stop(&g->timer);
    /* Its arena may serve the next group of the function only if no transfer still uses it. */
    idle = g->pg == NULL || shoal_peer_group_idle(g->pg);
    /* The peer's callbacks stop here; what the kernel still sends from the arena keeps the
     * peer's own mapping until it is done. */
    close_peer(g);
    /* The arena goes first: once the answer is out, nothing of the group is left (but a warm
     * arena of this function, re-armed, which only its next group can see). */
    if (!shoal_arena_failure(g->arena, &who, &why))
        who = -1;
    ok = g->fail_count == 0 && g->gkind[0] == '\0' && g->ranks[0].state == RANK_HOLD;
    if (ok && who < 0 && idle)
        spare_keep(g);
    else
        shoal_arena_destroy(g->arena);
    g->arena = NULL;
    if (ok)
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

/* A spread group failed here: every other node is told why ("kind\0message"), so that its ranks
 * stop waiting and its answer names the same rank. Pending transfers end -ECONNABORTED. */
static void tell_peers(shoal_group_t *g, int rank)
{
    char buf[SHOAL_PEER_ABORT_MAX];
    const char *kind = g->gkind, *msg = g->gmsg;
    int n;

    if (g->pg == NULL)
        return;
    if (!g->remote_failed && rank >= 0 && rank < g->size && g->ranks[rank].fail_seq != 0) {
        kind = g->ranks[rank].kind;
        msg = g->ranks[rank].msg != NULL ? g->ranks[rank].msg : "a rank failed";
    }
    if (kind[0] == '\0') {
        kind = "internal";
        msg = "the group failed";
    }
    n = snprintf(buf, sizeof(buf), "%s%c%s", kind, 0, msg);
    shoal_peer_abort(g->pg, buf, n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
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
    tell_peers(g, rank);
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

    if (g->phase == G_RUNNING && g->xfers != NULL && !g->deadline_deferred) {
        /* A spread group whose ranks here wait for another node's data is not held up here: the
         * node that holds it up (none of its ranks waits for a transfer) names the laggard and
         * tells us. We only step in if it does not, shortly after. */
        g->deadline_deferred = 1;
        uv_timer_start(&g->timer, on_timer, SHOAL_GROUP_DEFER_MS, 0);
        return;
    }
    if (g->phase == G_RUNNING) {
        r = laggard(g);
        record(g, r, "timeout", "rank %d exceeded the timeout of %u ms", gr(g, r), g->timeout_ms);
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

/* The group's 64-bit id for the ranks (it namespaces their Redis keys): the first 16 hex digits
 * of its id, which the controller draws at random per invocation. */
static uint64_t group_id(const shoal_group_t *g)
{
    char hex[17] = {0};

    if (g->group_id != 0)
        return g->group_id; /* a spread group's, the same on every node */
    memcpy(hex, g->id, strnlen(g->id, 16));
    return strtoull(hex, NULL, 16);
}

/* Sends the GROUP message with the arena fd and, with ?transport=redis, the rank's socket to
 * Redis, which the rank owns from then on. */
static int send_group(shoal_group_t *g, shoal_inst_t *inst, shoal_ctl_group_t *m, int arena_fd)
{
    shoal_group_rank_t *k = &g->ranks[inst->rank];
    int fds[2] = {arena_fd, k->redis_fd1 - 1}, err;
    union {
        shoal_ctl_group_t m;
        uint8_t b[sizeof(shoal_ctl_group_t) + SHOAL_CHANNEL_GROUP_MAX * sizeof(uint16_t)];
    } u;
    size_t len = sizeof(*m);

    _Static_assert(sizeof(u) <= SHOAL_CTL_MSG_MAX, "GROUP with its node map fits a message");
    if (k->redis_fd1 > 0)
        m->flags |= SHOAL_GROUP_REDIS;
    if (g->granks != NULL) {
        /* Spread over nodes: the whole group and the node of every global rank follow. */
        m->grank = g->granks[inst->rank];
        m->gsize = g->gsize;
        m->nnodes = g->nnodes;
        m->node = g->me;
        memcpy(u.b + sizeof(*m), g->node_of, (size_t)g->gsize * sizeof(uint16_t));
        len += (size_t)g->gsize * sizeof(uint16_t);
    }
    memcpy(u.b, m, sizeof(*m));
    if ((err = shoal_proc_send_fds(inst->ctl_fd, u.b, len, fds, k->redis_fd1 > 0 ? 2 : 1)) < 0)
        return err;
    if (k->redis_fd1 > 0)
        close(k->redis_fd1 - 1);
    k->redis_fd1 = 0;
    return 0;
}

/* A TCP socket connecting (non-blocking: the loop never waits for Redis) to addr, "IPV4:PORT" or
 * "[IPV6]:PORT" as the controller renders it; the rank finishes the connect. 0 or -errno. */
static int redis_socket(const char *addr, int *out)
{
    struct sockaddr_storage ss;
    const char *colon = strrchr(addr, ':');
    char host[64];
    size_t hlen = colon != NULL ? (size_t)(colon - addr) : 0;
    uint64_t port;
    int fd, one = 1;

    memset(&ss, 0, sizeof(ss));
    if (colon == NULL || hlen == 0 || hlen >= sizeof(host) ||
        shoal_util_parse_u64(colon + 1, strlen(colon + 1), 1, 65535, &port) < 0)
        return -EINVAL;
    if (addr[0] == '[' && hlen >= 2 && addr[hlen - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        memcpy(host, addr + 1, hlen - 2);
        host[hlen - 2] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        memcpy(host, addr, hlen);
        host[hlen] = '\0';
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
    }
    if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return -errno;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&ss,
                ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                        : sizeof(struct sockaddr_in6)) < 0 &&
        errno != EINPROGRESS) {
        int err = -errno;
        close(fd);
        return err;
    }
    *out = fd;
    return 0;
}

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
    m.group_id = group_id(g);
    fd = shoal_arena_fd(g->arena);
    if ((err = send_group(g, inst, &m, fd)) < 0)
        return err;
    g->ranks[inst->rank].state = RANK_RUNNING;
    return 0;
}

/* Answers a rank's XSEND or XRECV (XDONE on its down ring, like CALL_DONE). */
static void xdone(shoal_inst_t *inst, uint64_t xseq, int err, uint64_t off, uint64_t len)
{
    shoal_msg_xdone_t d = {.xseq = xseq, .err = err, .off = off, .len = len};
    struct iovec iov = {&d, sizeof(d)};
    int r;

    if ((r = shoal_channel_send(&inst->ch, SHOAL_MSG_XDONE, &iov, 1)) < 0) {
        /* The down ring is full: the rank ignores its own answers. */
        shoal_inst_fail(inst, "internal", "instance channel broken: %s", strerror(-r));
        shoal_inst_kill(inst);
        return;
    }
    shoal_channel_wake_instance(&inst->ch);
}

static void xfer_unlink(shoal_group_t *g, xfer_t *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        g->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
}

static void on_xfer_done(void *arg, int err, uint64_t off, uint64_t len)
{
    xfer_t *x = arg;
    shoal_group_t *g = x->g;
    shoal_inst_t *inst = shoal_inst_by_uid(g->w, x->inst_uid);

    xfer_unlink(g, x);
    /* Only to the same rank in the same invocation: an instance may have moved on. */
    if (inst != NULL && inst->group == g && inst->seq == x->inv_seq &&
        inst->phase == SHOAL_PH_READY) {
        g->ranks[inst->rank].xfers--;
        xdone(inst, x->xseq, err, off, len);
    }
    free(x);
}

void shoal_group_xfer(shoal_inst_t *inst, int type, const shoal_msg_xfer_t *m)
{
    shoal_group_t *g = inst->group;
    xfer_t *x;
    int err;

    if (g == NULL || g->pg == NULL) {
        xdone(inst, m->xseq, -EINVAL, 0, 0); /* not a rank of a spread group */
        return;
    }
    if (g->phase != G_RUNNING) {
        xdone(inst, m->xseq, -ECONNABORTED, 0, 0);
        return;
    }
    /* Each costs a record and, answered, a slot of the down ring: bounded per rank. */
    if (g->ranks[inst->rank].xfers >= SHOAL_GROUP_XFERS_MAX ||
        (x = calloc(1, sizeof(*x))) == NULL) {
        xdone(inst, m->xseq, -ENOBUFS, 0, 0);
        return;
    }
    x->g = g;
    x->inst_uid = inst->uid;
    x->inv_seq = inst->seq;
    x->xseq = m->xseq;
    /* Linked before the call: the peer may answer from inside it (a receive whose data is
     * there already, when it cannot defer the callback). */
    x->next = g->xfers;
    if (g->xfers != NULL)
        g->xfers->prev = x;
    g->xfers = x;
    g->ranks[inst->rank].xfers++;
    err = type == SHOAL_MSG_XSEND
              ? shoal_peer_send(g->pg, m->node, m->tag, m->off, m->len, on_xfer_done, x)
              : shoal_peer_recv(g->pg, m->node, m->tag, on_xfer_done, x);
    if (err < 0) {
        xfer_unlink(g, x);
        g->ranks[inst->rank].xfers--;
        free(x);
        xdone(inst, m->xseq, err, 0, 0);
    }
}

void shoal_group_peer_gone(shoal_worker_t *w)
{
    for (shoal_group_t *g = w->groups; g != NULL; g = g->next) {
        if (g->pg == NULL)
            continue;
        snprintf(g->gkind, sizeof(g->gkind), "internal");
        snprintf(g->gmsg, sizeof(g->gmsg), "worker %s is shutting down", w->cfg.node);
        fail_group(g, -1, SHOAL_ARENA_FAIL_CANCELLED);
        close_peer(g);
    }
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
        /* Only the part that holds global rank 0 answers with an output. */
        g->out_len = g->granks == NULL || g->granks[0] == 0 ? out_len : 0;
        g->ranks[0].state = RANK_HOLD;
    } else if (ok) {
        g->ranks[r].state = RANK_OK;
        release(g, r);
    } else {
        g->ranks[r].state = RANK_FAILED;
        release(g, r);
        record(g, r, kind, "rank %d failed: %.*s", gr(g, r), (int)msg_len, msg);
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
        record(g, r, kind, "rank %d %.*s", gr(g, r), (int)(len - (sizeof(fn) - 1)),
               msg + sizeof(fn) - 1);
    else
        record(g, r, kind, "rank %d failed: %.*s", gr(g, r), (int)len, msg);
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

/* A group spread over several nodes, as its INVOKE describes it (frame.h). */
typedef struct spread {
    unsigned gsize;
    uint32_t nnodes, me;
    uint64_t group_id;
    int *granks;       /* this node's global ranks, increasing; malloc'd, taken by create */
    uint16_t *node_of; /* gsize entries; malloc'd, taken by create */
    const char *addrs[SHOAL_PEER_CONN_MAX];
} spread_t;

static void spread_free(spread_t *sp)
{
    free(sp->granks);
    free(sp->node_of);
    sp->granks = NULL;
    sp->node_of = NULL;
}

/* Another node failed the group, or the connection to one was lost: msg is "kind\0message"
 * from its ABORT, or the peer's own words. */
static void on_peer_abort(void *opaque, uint32_t src, const char *msg, size_t len)
{
    shoal_group_t *g = opaque;
    size_t klen = strnlen(msg, len);

    if (g->phase != G_RUNNING)
        return;
    g->remote_failed = 1;
    if (klen < len && klen < sizeof(g->gkind) && klen > 0) {
        snprintf(g->gkind, sizeof(g->gkind), "%.*s", (int)klen, msg);
        snprintf(g->gmsg, sizeof(g->gmsg), "%.*s", (int)(len - klen - 1), msg + klen + 1);
    } else {
        snprintf(g->gkind, sizeof(g->gkind), "internal");
        snprintf(g->gmsg, sizeof(g->gmsg), "node %u: %.*s", src, (int)len, msg);
    }
    SHOAL_INFO("group %s: failed on node %u: %s", g->id, src, g->gmsg);
    fail_group(g, -1, SHOAL_ARENA_FAIL_CANCELLED);
    check_end(g);
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
    const char *redis;     /* ?transport=redis: the Redis server's "IP:PORT", else NULL */
    struct spread *spread; /* a group spread over several nodes, else NULL */
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
    g->memory_mb = pool->fn.memory_mb;
    g->data_size = shoal_channel_group_data((int)n, pool->fn.memory_mb);
    if ((g->arena = spare_take(w, g->fn, (int)n, g->data_size, g->deadline_ns)) != NULL)
        err = 0;
    else if ((err = shoal_arena_create(&g->arena, (int)n, g->data_size, g->deadline_ns)) < 0) {
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
    /* ?transport=redis: functions may not open sockets, so each rank gets one from us. */
    for (unsigned r = 0; s->redis != NULL && r < n; r++) {
        int fd = -1;
        if ((err = redis_socket(s->redis, &fd)) < 0) {
            snprintf(why, len, "cannot connect to Redis at %s: %s", s->redis, strerror(-err));
            goto undo;
        }
        g->ranks[r].redis_fd1 = fd + 1;
    }
    if (s->spread != NULL) {
        spread_t *sp = s->spread;
        if (w->peer == NULL) {
            snprintf(why, len,
                     "worker %s has no peer transport (io_uring) for groups spread over "
                     "nodes",
                     w->cfg.node);
            goto undo;
        }
        err = shoal_peer_group_open(w->peer,
                                    &(shoal_peer_group_spec_t){.group_id = sp->group_id,
                                                               .arena = g->arena,
                                                               .me = sp->me,
                                                               .nnodes = sp->nnodes,
                                                               .addrs = sp->addrs,
                                                               .on_abort = on_peer_abort,
                                                               .opaque = g},
                                    &g->pg);
        if (err < 0) {
            snprintf(why, len, "worker %s cannot join the group's transfers: %s", w->cfg.node,
                     strerror(-err));
            goto undo;
        }
        g->gsize = (int)sp->gsize;
        g->nnodes = sp->nnodes;
        g->me = sp->me;
        g->group_id = sp->group_id;
        g->granks = sp->granks;
        g->node_of = sp->node_of;
        sp->granks = NULL;
        sp->node_of = NULL;
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
    if (g->pg != NULL)
        shoal_peer_group_close(g->pg);
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
    if (transport != NULL && strcmp(transport, "shm") != 0 &&
        (strcmp(transport, "redis") != 0 || !json_is_string(json_object_get(gj, "redis")))) {
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

/* Whether s is 1..max hex digits. */
static int is_hex(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n > 0 && n <= max && strspn(s, "0123456789abcdefABCDEF") == n;
}

/* Parses the "group" of an INVOKE for a group spread over several nodes (it has "nodes"): 0 with
 * sp filled and *n this node's ranks, or -1 with the answer in kind/why (sp then holds nothing to
 * free). */
static int parse_spread(shoal_worker_t *w, const json_t *gj, spread_t *sp, unsigned *n,
                        const char **id, const char **kind, char *why, size_t len)
{
    const json_t *sz = json_object_get(gj, "size"), *nodes = json_object_get(gj, "nodes");
    const json_t *nof = json_object_get(gj, "node_of"), *me = json_object_get(gj, "me");
    const json_t *ranks = json_object_get(gj, "ranks"), *v;
    const char *gid = json_string_value(json_object_get(gj, "group_id"));
    const char *transport = json_string_value(json_object_get(gj, "transport"));
    const char *bad = NULL;
    unsigned local = 0, *count = NULL;
    size_t i;

    *kind = "internal";
    *id = json_string_value(json_object_get(gj, "id"));
    memset(sp, 0, sizeof(*sp));
    if (!is_hex(*id, SHOAL_GROUP_ID_MAX))
        bad = "id";
    else if (!json_is_integer(sz) || json_integer_value(sz) < 2 ||
             json_integer_value(sz) > SHOAL_CHANNEL_GROUP_MAX)
        bad = "size";
    else if (json_object_get(gj, "transport") != NULL &&
             (transport == NULL || strcmp(transport, "tcp") != 0))
        bad = "transport (only \"tcp\" spans nodes)";
    else if (!json_is_array(nodes) || json_array_size(nodes) < 2 ||
             json_array_size(nodes) > SHOAL_PEER_CONN_MAX)
        bad = "nodes";
    else if (!json_is_integer(me) || json_integer_value(me) < 0 ||
             (size_t)json_integer_value(me) >= json_array_size(nodes))
        bad = "me";
    else if (!is_hex(gid, 16) || strtoull(gid, NULL, 16) == 0)
        bad = "group_id";
    else if (!json_is_array(nof) || json_array_size(nof) != (size_t)json_integer_value(sz))
        bad = "node_of";
    if (bad != NULL)
        goto fail;
    sp->gsize = (unsigned)json_integer_value(sz);
    sp->nnodes = (uint32_t)json_array_size(nodes);
    sp->me = (uint32_t)json_integer_value(me);
    sp->group_id = strtoull(gid, NULL, 16);
    json_array_foreach(nodes, i, v)
    {
        const char *peer = json_string_value(json_object_get(v, "peer"));
        if (peer == NULL || strlen(peer) > SHOAL_PEER_ADDR_MAX) {
            bad = "nodes[].peer";
            goto fail;
        }
        sp->addrs[i] = peer;
    }
    if ((sp->node_of = malloc(sp->gsize * sizeof(uint16_t))) == NULL ||
        (count = calloc(sp->nnodes, sizeof(unsigned))) == NULL) {
        bad = "out of memory";
        goto fail;
    }
    json_array_foreach(nof, i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= (json_int_t)sp->nnodes) {
            bad = "node_of[]";
            goto fail;
        }
        sp->node_of[i] = (uint16_t)json_integer_value(v);
        count[sp->node_of[i]]++;
    }
    for (uint32_t k = 0; k < sp->nnodes; k++)
        if (count[k] == 0) {
            bad = "node_of (a node without ranks)";
            goto fail;
        }
    local = count[sp->me];
    if ((sp->granks = malloc(local * sizeof(int))) == NULL) {
        bad = "out of memory";
        goto fail;
    }
    for (unsigned r = 0, k = 0; r < sp->gsize; r++)
        if (sp->node_of[r] == sp->me)
            sp->granks[k++] = (int)r;
    /* "ranks", if given, must say the same as node_of. */
    if (ranks != NULL) {
        if (!json_is_array(ranks) || json_array_size(ranks) != local) {
            bad = "ranks";
            goto fail;
        }
        for (i = 0; i < local; i++) {
            v = json_array_get(ranks, i);
            if (!json_is_integer(v) || json_integer_value(v) != sp->granks[i]) {
                bad = "ranks";
                goto fail;
            }
        }
    }
    free(count);
    *n = local;
    return 0;
fail:
    free(count);
    spread_free(sp);
    snprintf(why, len, "worker %s: malformed spread group in INVOKE: bad %s", w->cfg.node, bad);
    return -1;
}

/* A spread group this node cannot take: the other nodes are told at once, so that their ranks
 * do not wait for ours until the deadline. */
static void refuse_spread(shoal_worker_t *w, const spread_t *sp, const char *kind, const char *why)
{
    char buf[SHOAL_PEER_ABORT_MAX];
    int n;

    if (w->peer == NULL)
        return;
    n = snprintf(buf, sizeof(buf), "%s%cnode %u (%s) could not start its ranks: %s", kind, 0,
                 sp->me, w->cfg.node, why);
    shoal_peer_tell_abort(w->peer, sp->group_id, sp->me, sp->nnodes, sp->addrs, buf,
                          n < (int)sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

void shoal_group_invoke(shoal_worker_t *w, const shoal_frame_hdr *hdr, const json_t *j,
                        const json_t *gj, shoal_pool_t *pool, size_t data_len, uint8_t **dst)
{
    const char *kind, *id, *inv_id = json_string_value(json_object_get(j, "invocation_id"));
    const char *transport = json_string_value(json_object_get(gj, "transport"));
    const json_t *v = json_object_get(j, "timeout_ms");
    shoal_group_t *g;
    unsigned size;
    char why[256];
    int spread = json_object_get(gj, "nodes") != NULL, parsed;
    spread_t sp;

    memset(&sp, 0, sizeof(sp));
    parsed = spread ? parse_spread(w, gj, &sp, &size, &id, &kind, why, sizeof(why))
                    : parse_group(w, gj, &size, &id, &kind, why, sizeof(why));
    if (parsed < 0 ||
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
                        .redis = transport != NULL && strcmp(transport, "redis") == 0
                                     ? json_string_value(json_object_get(gj, "redis"))
                                     : NULL,
                        .spread = spread ? &sp : NULL,
                    },
                    &kind, why, sizeof(why))) == NULL) {
        if (spread && parsed == 0)
            refuse_spread(w, &sp, kind, why);
        spread_free(&sp);
        shoal_worker_send_failure(w, hdr->id, kind, why, strlen(why), 0);
        return;
    }
    spread_free(&sp);
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
