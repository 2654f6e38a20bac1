/*
 * peer - see peer.h for the design: connections, the wire format, how io_uring is used and how
 * early data and failures are handled.
 *
 * Ownership. Every object here is freed only when nothing the kernel still works on refers to
 * it: a connection counts its operations in flight (a receive, a send, zero-copy notifications,
 * a connect), a group counts the sends and receives that use its arena mapping and the deferred
 * callbacks that name it. Closing marks an object and lets those counts drain; the last
 * completion frees it. Callbacks to the user run either from the completion handler or from the
 * kick timer (for those decided inside a shoal_peer_* call), never from inside such a call.
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/secret.h"
#include "common/trace.h"
#include "common/util.h"

#define RING_ENTRIES 256
#define CQ_ENTRIES 4096
#define SLOT 64                /* one header slot: rx at 2*i, tx at 2*i + 1 */
#define CHUNK_MAX (256u << 20) /* one RECV/SEND submission at most (sqe->len is 32 bits) */
#define SCRATCH (256u << 10)

enum { OP_ACCEPT = 1, OP_CONNECT, OP_RX, OP_TX };
enum { C_CONNECTING, C_HELLO_WAIT, C_READY, C_CLOSING };
/* What the body being received goes to. */
enum { RX_HDR, RX_ARENA, RX_BUF, RX_DISCARD, RX_HELD };

typedef struct {
    int kind;
    void *obj;
} op_t;

typedef struct conn conn_t;
typedef struct tx_job tx_job_t;

/* A message that arrived for a group nobody opened yet (DATA), in malloc'd memory. */
typedef struct early {
    struct early *next;
    uint64_t group_id, tag;
    uint32_t src, dst;
    uint8_t *data;
    uint64_t len;
    uint64_t t_ms;
} early_t;

/* A group that ended here (aborted = 0) or that another node aborted before it opened here. */
typedef struct {
    uint64_t group_id;
    int aborted;
    uint32_t src;
    char *msg;
    uint64_t t_ms;
} tomb_t;

/* A received message of an open group, in its arena, not asked for yet; or a receive waiting. */
typedef struct item {
    struct item *next;
    uint32_t node;
    uint64_t tag, off, len;
    shoal_peer_done_cb cb;
    void *arg;
} item_t;

/* A callback decided inside a shoal_peer_* call, run from the kick timer. */
typedef struct event {
    struct event *next;
    shoal_peer_group_t *g;
    int is_abort;
    shoal_peer_done_cb cb;
    void *arg;
    int err;
    uint64_t off, len;
    uint32_t src;
    char *msg;
    size_t msg_len;
} event_t;

struct shoal_peer_group {
    shoal_peer_t *p;
    shoal_peer_group_t *prev, *next; /* p->groups while open */
    uint64_t id;
    uint32_t me, nnodes;
    char (*addrs)[SHOAL_PEER_ADDR_MAX + 1];
    shoal_arena_t *arena; /* the worker's mapping, while open: for the bump allocator */
    uint8_t *map;         /* our own mapping of the whole memfd */
    uint64_t map_len, data_lo, data_hi;
    int refs;
    int closed, aborted, abort_told, abort_sent;
    item_t *arrived, *waiting;
    uint32_t unclaimed;
    shoal_peer_abort_cb on_abort;
    void *opaque;
};

struct tx_job {
    tx_job_t *next;
    tx_job_t *all_prev, *all_next; /* p->jobs: every job alive, until the kernel lets go of it */
    conn_t *c;
    op_t op;
    shoal_peer_hdr_t h;
    const uint8_t *payload;
    uint8_t *owned;
    shoal_peer_group_t *g; /* DATA: holds a reference */
    shoal_peer_done_cb cb;
    void *arg;
    int stage; /* 0 header, 1 payload, 2 done */
    uint64_t done;
    int inflight, zc_out;
};

struct conn {
    shoal_peer_t *p;
    conn_t *prev, *next;
    int fd, slot, state, opener, inflight;
    int unauth; /* accepted, no valid HELLO yet: counted in p->unauth */
    int zc;     /* large sends use SEND_ZC (not to loopback addresses, see conn_to) */
    char addr[SHOAL_PEER_ADDR_MAX + 1];
    uint64_t created_ms, held_ms;
    struct sockaddr_in sa;
    op_t cn_op, rx_op;
    /* receive side */
    int rx_state;
    uint32_t rx_hgot;
    shoal_peer_hdr_t rh;
    uint8_t *rx_dst;
    uint64_t rx_done, rx_off;
    shoal_peer_group_t *rx_g;
    uint8_t *rx_buf;
    /* send side */
    tx_job_t *txq, *txq_tail;
    int tx_busy;
};

struct shoal_peer {
    uv_loop_t *loop;
    struct io_uring ring;
    int ring_ok;
    int efd, lfd;
    uv_poll_t poll;
    uv_timer_t tick, kick;
    int handles;
    int destroying;
    op_t accept_op;
    int accept_paused;
    char addr[SHOAL_PEER_ADDR_MAX + 1];
    char key[SHOAL_SECRET_MAX + 1];
    char node[64];
    int force_zc;
    uint64_t early_max, early_bytes;
    early_t *early;
    tomb_t tombs[SHOAL_PEER_TOMBSTONES];
    unsigned tomb_next;
    conn_t *conns;
    uint32_t nconns;
    uint32_t unauth; /* accepted connections that have not said HELLO (SHOAL_PEER_UNAUTH_MAX) */
    uint8_t slots_used[SHOAL_PEER_CONN_MAX];
    uint8_t *regbuf;
    shoal_peer_group_t *groups;
    uint32_t ngroups; /* open and draining */
    event_t *events, *events_tail;
    tx_job_t *jobs;
    uint8_t *scratch;
    uint64_t bytes_in, bytes_out;
};

static void conn_close(conn_t *c, const char *why);
static void rx_next(conn_t *c);
static void tx_next(conn_t *c);
static void group_unref(shoal_peer_group_t *g);

/* ---- wire ---- */

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
    return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void shoal_peer_hdr_encode(uint8_t out[SHOAL_PEER_HDR_SIZE], const shoal_peer_hdr_t *h)
{
    put32(out, SHOAL_PEER_MAGIC);
    out[4] = SHOAL_PEER_VERSION;
    out[5] = h->type;
    out[6] = out[7] = 0;
    put64(out + 8, h->group_id);
    put64(out + 16, h->tag);
    put32(out + 24, h->src);
    put32(out + 28, h->dst);
    put64(out + 32, h->len);
}

int shoal_peer_hdr_decode(const uint8_t *buf, shoal_peer_hdr_t *h)
{
    if (get32(buf) != SHOAL_PEER_MAGIC || buf[6] != 0 || buf[7] != 0)
        return -EPROTO;
    if (buf[4] != SHOAL_PEER_VERSION)
        return -EPROTONOSUPPORT;
    if (buf[5] < SHOAL_PEER_HELLO || buf[5] > SHOAL_PEER_ABORT)
        return -EPROTO;
    h->type = buf[5];
    h->group_id = get64(buf + 8);
    h->tag = get64(buf + 16);
    h->src = get32(buf + 24);
    h->dst = get32(buf + 28);
    h->len = get64(buf + 32);
    return 0;
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    uint64_t port;

    if (colon == NULL || (size_t)(colon - s) >= sizeof(host) ||
        shoal_util_parse_u64(colon + 1, strlen(colon + 1), 0, 65535, &port) < 0)
        return -EINVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host, &sa->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

/* ---- ring ---- */

static struct io_uring_sqe *sqe_get(shoal_peer_t *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

    if (sqe == NULL) {
        io_uring_submit(&p->ring);
        sqe = io_uring_get_sqe(&p->ring);
    }
    return sqe;
}

static uint8_t *rx_slot(conn_t *c)
{
    return c->p->regbuf + (size_t)c->slot * 2 * SLOT;
}

static uint8_t *tx_slot(conn_t *c)
{
    return c->p->regbuf + (size_t)c->slot * 2 * SLOT + SLOT;
}

/* ---- deferred callbacks ---- */

static void conn_maybe_free(conn_t *c);

static void on_kick(uv_timer_t *t)
{
    shoal_peer_t *p = t->data;
    event_t *e = p->events, *next;

    /* Connections closed meanwhile are freed here, never under the caller that closed them. */
    for (conn_t *c = p->conns, *cn; c != NULL; c = cn) {
        cn = c->next;
        conn_maybe_free(c);
    }
    p->events = p->events_tail = NULL;
    for (; e != NULL; e = next) {
        next = e->next;
        if (!e->g->closed) {
            if (e->is_abort)
                e->g->on_abort(e->g->opaque, e->src, e->msg, e->msg_len);
            else
                e->cb(e->arg, e->err, e->off, e->len);
        }
        group_unref(e->g);
        free(e->msg);
        free(e);
    }
}

static void defer(shoal_peer_group_t *g, event_t *e)
{
    shoal_peer_t *p = g->p;

    e->g = g;
    g->refs++;
    e->next = NULL;
    if (p->events_tail != NULL)
        p->events_tail->next = e;
    else
        p->events = e;
    p->events_tail = e;
    if (!p->destroying)
        uv_timer_start(&p->kick, on_kick, 0, 0);
}

static void defer_done(shoal_peer_group_t *g, shoal_peer_done_cb cb, void *arg, int err,
                       uint64_t off, uint64_t len)
{
    event_t *e = calloc(1, sizeof(*e));

    if (e == NULL) {
        /* Out of memory for the record: run it now rather than lose the answer. */
        cb(arg, err, off, len);
        return;
    }
    e->cb = cb;
    e->arg = arg;
    e->err = err;
    e->off = off;
    e->len = len;
    defer(g, e);
}

/* The group failed elsewhere: tell its owner once. */
static void tell_abort(shoal_peer_group_t *g, uint32_t src, const char *msg, size_t len)
{
    event_t *e;

    if (g->abort_told || g->closed)
        return;
    g->abort_told = 1;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return;
    e->is_abort = 1;
    e->src = src;
    if ((e->msg = malloc(len + 1)) != NULL) {
        memcpy(e->msg, msg, len);
        e->msg[len] = '\0';
        e->msg_len = len;
    }
    defer(g, e);
}

/* The group failed here (src = this node) or at node src: ABORT goes to the other nodes and the
 * owner is told. */
static void group_fail(shoal_peer_group_t *g, uint32_t src, const char *msg, size_t len)
{
    shoal_peer_abort(g, msg, len);
    tell_abort(g, src, msg, len);
}
#define GROUP_FAIL_LIT(g, src, lit) group_fail((g), (src), (lit), sizeof(lit) - 1)

/* ---- groups ---- */

static shoal_peer_group_t *group_find(shoal_peer_t *p, uint64_t id)
{
    for (shoal_peer_group_t *g = p->groups; g != NULL; g = g->next)
        if (g->id == id)
            return g;
    return NULL;
}

static void group_unref(shoal_peer_group_t *g)
{
    if (--g->refs > 0 || !g->closed)
        return;
    if (g->map != NULL)
        munmap(g->map, g->map_len);
    free(g->addrs);
    g->p->ngroups--;
    free(g);
}

static void items_free(item_t *it)
{
    while (it != NULL) {
        item_t *next = it->next;
        free(it);
        it = next;
    }
}

static tomb_t *tomb_find(shoal_peer_t *p, uint64_t id)
{
    for (unsigned i = 0; i < SHOAL_PEER_TOMBSTONES; i++)
        if (p->tombs[i].group_id == id && id != 0)
            return &p->tombs[i];
    return NULL;
}

static tomb_t *tomb_add(shoal_peer_t *p, uint64_t id)
{
    tomb_t *t = tomb_find(p, id);

    if (t == NULL) {
        t = &p->tombs[p->tomb_next++ % SHOAL_PEER_TOMBSTONES];
        free(t->msg);
        memset(t, 0, sizeof(*t));
        t->group_id = id;
    }
    t->t_ms = shoal_util_now_ms();
    return t;
}

/* A message of g from node src with tag at arena offset off: hands it to a waiting receive or
 * keeps it. */
static void deliver(shoal_peer_group_t *g, uint32_t src, uint64_t tag, uint64_t off, uint64_t len)
{
    item_t **pp, *it;

    for (pp = &g->waiting; (it = *pp) != NULL; pp = &it->next) {
        if (it->node == src && it->tag == tag) {
            *pp = it->next;
            it->cb(it->arg, 0, off, len);
            free(it);
            return;
        }
    }
    if (g->unclaimed >= SHOAL_PEER_UNCLAIMED_MAX || (it = calloc(1, sizeof(*it))) == NULL) {
        GROUP_FAIL_LIT(g, g->me, "too many transfers nobody asked for");
        return;
    }
    it->node = src;
    it->tag = tag;
    it->off = off;
    it->len = len;
    it->next = g->arrived;
    g->arrived = it;
    g->unclaimed++;
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Maps into the peer's own mapping of g's arena the pages of [doff, doff + len) of the data area
 * that still hold a kept arena's pages (the header's warm_bytes, written by the worker's reset;
 * ranks can overwrite it, so it is clamped, and a wrong value only costs time). */
static void populate_warm(shoal_peer_group_t *g, uint64_t doff, uint64_t len)
{
    uint64_t warm =
        atomic_load_explicit(&shoal_arena_header(g->arena)->warm_bytes, memory_order_relaxed);
    uint64_t lo = doff & ~(uint64_t)4095, hi;

    if (warm > g->data_hi - g->data_lo)
        warm = g->data_hi - g->data_lo;
    hi = doff + len < warm ? doff + len : warm;
    hi &= ~(uint64_t)4095;
    if (hi > lo)
        madvise(g->map + g->data_lo + lo, hi - lo, MADV_POPULATE_READ);
}

/* Moves the early messages of g into its arena. */
static void adopt_early(shoal_peer_group_t *g)
{
    shoal_peer_t *p = g->p;
    early_t **pp = &p->early, *e;
    uint64_t doff;

    /* Oldest first, so that equal tags keep their order: the list is newest first. */
    early_t *mine = NULL;
    while ((e = *pp) != NULL) {
        if (e->group_id == g->id) {
            *pp = e->next;
            e->next = mine;
            mine = e;
        } else {
            pp = &e->next;
        }
    }
    while ((e = mine) != NULL) {
        mine = e->next;
        p->early_bytes -= e->len;
        if (!g->aborted) {
            if (e->dst != g->me || e->src >= g->nnodes || e->src == g->me) {
                GROUP_FAIL_LIT(g, g->me, "a node sent data with wrong node indices");
            } else if (shoal_arena_alloc(g->arena, e->len, &doff) < 0) {
                GROUP_FAIL_LIT(g, g->me, "the group's arena is full");
            } else {
                memcpy(g->map + g->data_lo + doff, e->data, e->len);
                deliver(g, e->src, e->tag, g->data_lo + doff, e->len);
            }
        }
        free(e->data);
        free(e);
    }
}

static void resume_held(shoal_peer_t *p);
static conn_t *conn_to(shoal_peer_t *p, const char *addr);

int shoal_peer_group_open(shoal_peer_t *p, const shoal_peer_group_spec_t *s,
                          shoal_peer_group_t **out)
{
    shoal_peer_group_t *g;
    tomb_t *t;
    void *m;
    int fd;

    if (s->group_id == 0 || s->arena == NULL || s->nnodes < 2 || s->nnodes > SHOAL_PEER_CONN_MAX ||
        s->me >= s->nnodes || s->on_abort == NULL || shoal_arena_fd(s->arena) < 0)
        return -EINVAL;
    if (group_find(p, s->group_id) != NULL)
        return -EEXIST;
    for (uint32_t i = 0; i < s->nnodes; i++) {
        struct sockaddr_in sa;
        if (i != s->me && (s->addrs[i] == NULL || strlen(s->addrs[i]) > SHOAL_PEER_ADDR_MAX ||
                           parse_addr(s->addrs[i], &sa) < 0))
            return -EINVAL;
    }
    if ((g = calloc(1, sizeof(*g))) == NULL ||
        (g->addrs = calloc(s->nnodes, sizeof(*g->addrs))) == NULL) {
        free(g);
        return -ENOMEM;
    }
    fd = shoal_arena_fd(s->arena);
    g->data_lo = (uint64_t)(shoal_arena_data(s->arena) - (uint8_t *)shoal_arena_header(s->arena));
    g->data_hi = g->data_lo + shoal_arena_data_size(s->arena);
    g->map_len = g->data_hi;
    /* Our own mapping: sends in flight read from it however the group's owner ends. */
    if ((m = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        int err = -errno;
        free(g->addrs);
        free(g);
        return err;
    }
    g->map = m;
    g->p = p;
    g->id = s->group_id;
    g->me = s->me;
    g->nnodes = s->nnodes;
    for (uint32_t i = 0; i < s->nnodes; i++)
        if (i != s->me)
            snprintf(g->addrs[i], sizeof(g->addrs[i]), "%s", s->addrs[i]);
    g->arena = s->arena;
    g->on_abort = s->on_abort;
    g->opaque = s->opaque;
    g->refs = 1; /* the owner's, dropped by shoal_peer_group_close */
    g->next = p->groups;
    if (p->groups != NULL)
        p->groups->prev = g;
    p->groups = g;
    p->ngroups++;
    if ((t = tomb_find(p, g->id)) != NULL && t->aborted) {
        g->aborted = 1;
        tell_abort(g, t->src, t->msg != NULL ? t->msg : "the group failed on another node",
                   t->msg != NULL ? strlen(t->msg) : 32);
    }
    adopt_early(g);
    resume_held(p);
    /* Every other node is connected to now, not at the first transfer: a node whose worker is
     * gone (or goes later) fails the group at once through its connection, even while the ranks
     * here only wait for it. */
    for (uint32_t i = 0; i < g->nnodes && !g->aborted; i++) {
        char msg[128];
        int n;
        if (i == g->me || conn_to(p, g->addrs[i]) != NULL)
            continue;
        n = snprintf(msg, sizeof(msg), "cannot connect to node %u (%s)", i, g->addrs[i]);
        group_fail(g, i, msg, (size_t)n);
    }
    *out = g;
    return 0;
}

/* ---- connections ---- */

static conn_t *conn_new(shoal_peer_t *p, int fd, int opener)
{
    conn_t *c;
    int slot = -1, one = 1;

    for (int i = 0; i < SHOAL_PEER_CONN_MAX; i++)
        if (!p->slots_used[i]) {
            slot = i;
            break;
        }
    if (slot < 0 || (c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    p->slots_used[slot] = 1;
    c->p = p;
    c->fd = fd;
    c->slot = slot;
    c->opener = opener;
    c->created_ms = shoal_util_now_ms();
    c->cn_op = (op_t){OP_CONNECT, c};
    c->rx_op = (op_t){OP_RX, c};
    c->next = p->conns;
    if (p->conns != NULL)
        p->conns->prev = c;
    p->conns = c;
    p->nconns++;
    return c;
}

static void conn_maybe_free(conn_t *c)
{
    shoal_peer_t *p = c->p;

    if (c->state != C_CLOSING || c->inflight > 0)
        return;
    if (c->unauth)
        p->unauth--;
    if (c->fd >= 0)
        close(c->fd);
    if (c->rx_g != NULL)
        group_unref(c->rx_g);
    if (c->rx_state == RX_BUF && c->rh.type == SHOAL_PEER_DATA && c->rx_buf != NULL)
        p->early_bytes -= c->rh.len;
    free(c->rx_buf);
    p->slots_used[c->slot] = 0;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    p->nconns--;
    free(c);
}

static void job_track(shoal_peer_t *p, tx_job_t *j)
{
    j->all_prev = NULL;
    j->all_next = p->jobs;
    if (p->jobs != NULL)
        p->jobs->all_prev = j;
    p->jobs = j;
}

static void job_free(tx_job_t *j)
{
    shoal_peer_t *p = j->c->p;

    if (j->inflight > 0 || j->zc_out > 0)
        return;
    if (j->all_prev != NULL)
        j->all_prev->all_next = j->all_next;
    else
        p->jobs = j->all_next;
    if (j->all_next != NULL)
        j->all_next->all_prev = j->all_prev;
    if (j->g != NULL)
        group_unref(j->g);
    free(j->owned);
    free(j);
}

/* Ends job j (taken off its queue) with err; its callback runs from the loop. */
static void job_end(tx_job_t *j, int err)
{
    if (j->cb != NULL && j->g != NULL && !j->g->closed)
        defer_done(j->g, j->cb, j->arg, err, 0, j->h.len);
    j->cb = NULL;
    j->stage = 2;
    job_free(j);
}

static void conn_close(conn_t *c, const char *why)
{
    shoal_peer_t *p = c->p;
    tx_job_t *j, *keep;
    char msg[160];
    int n;

    if (c->state == C_CLOSING)
        return;
    if (!p->destroying)
        SHOAL_WARN("peer %s: connection to %s closed: %s", p->node,
                   c->addr[0] ? c->addr : "an unidentified peer", why);
    c->state = C_CLOSING;
    shutdown(c->fd, SHUT_RDWR);
    /* Jobs not started end now; the one in flight ends with its completion. */
    keep = NULL;
    j = c->txq;
    if (j != NULL && j->inflight > 0) {
        keep = j;
        j = j->next;
        keep->next = NULL;
    }
    while (j != NULL) {
        tx_job_t *next = j->next;
        job_end(j, -ECONNRESET);
        j = next;
    }
    c->txq = c->txq_tail = keep;
    /* Every group that spans the node behind this connection loses its data path. */
    if (c->addr[0] != '\0' && !p->destroying) {
        for (shoal_peer_group_t *g = p->groups; g != NULL; g = g->next) {
            for (uint32_t i = 0; i < g->nnodes; i++) {
                if (i == g->me || strcmp(g->addrs[i], c->addr) != 0)
                    continue;
                n = snprintf(msg, sizeof(msg), "lost the connection to node %u (%s): %s", i,
                             c->addr, why);
                group_fail(g, i, msg, (size_t)n);
                break;
            }
        }
    }
    /* Freed from the kick timer: callers up the stack may still read c. */
    if (!p->destroying)
        uv_timer_start(&p->kick, on_kick, 0, 0);
}

/* The connection that reaches addr, opened if there is none. NULL when it cannot be opened. */
static conn_t *conn_to(shoal_peer_t *p, const char *addr)
{
    struct io_uring_sqe *sqe;
    tx_job_t *hello;
    conn_t *c;
    size_t alen, klen;
    int fd;

    for (c = p->conns; c != NULL; c = c->next)
        if (c->state != C_CLOSING && c->state != C_HELLO_WAIT && strcmp(c->addr, addr) == 0)
            return c;
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return NULL;
    if ((c = conn_new(p, fd, 1)) == NULL) {
        close(fd);
        return NULL;
    }
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->state = C_CONNECTING;
    /* Over loopback the kernel copies zero-copy pages once more when it delivers them to the
     * local receiver (skb_orphan_frags_rx), so SEND_ZC costs a pinning and a notification and
     * saves nothing: plain SEND is faster there (measured: 0.55x against 0.82x of a plain TCP
     * pair). Between machines SEND_ZC spares the copy into socket buffers. */
    /* The HELLO goes first: our own address (so the acceptor knows which node this is) and the
     * cluster key. */
    alen = strlen(p->addr);
    klen = strlen(p->key);
    hello = NULL;
    if (parse_addr(addr, &c->sa) < 0 || (hello = calloc(1, sizeof(*hello))) == NULL ||
        (hello->owned = malloc(alen + 1 + klen)) == NULL) {
        free(hello);
        c->addr[0] = '\0'; /* no group loses anything: the caller learns it at once */
        conn_close(c, "cannot set up");
        return NULL;
    }
    c->zc = p->force_zc || (ntohl(c->sa.sin_addr.s_addr) >> 24) != 127;
    memcpy(hello->owned, p->addr, alen + 1);
    memcpy(hello->owned + alen + 1, p->key, klen);
    hello->payload = hello->owned;
    hello->h = (shoal_peer_hdr_t){.type = SHOAL_PEER_HELLO, .len = alen + 1 + klen};
    hello->c = c;
    hello->op = (op_t){OP_TX, hello};
    job_track(p, hello);
    c->txq = c->txq_tail = hello;
    sqe = sqe_get(p);
    io_uring_prep_connect(sqe, fd, (struct sockaddr *)&c->sa, sizeof(c->sa));
    io_uring_sqe_set_data(sqe, &c->cn_op);
    c->inflight++;
    io_uring_submit(&p->ring);
    return c;
}

static void job_queue(conn_t *c, tx_job_t *j)
{
    job_track(c->p, j);
    j->c = c;
    j->op = (op_t){OP_TX, j};
    j->next = NULL;
    if (c->txq_tail != NULL)
        c->txq_tail->next = j;
    else
        c->txq = j;
    c->txq_tail = j;
    tx_next(c);
}

/* ---- sending ---- */

static void tx_next(conn_t *c)
{
    shoal_peer_t *p = c->p;
    struct io_uring_sqe *sqe;
    tx_job_t *j;
    uint64_t chunk;

    while (!c->tx_busy && c->state != C_CONNECTING && c->state != C_CLOSING &&
           (j = c->txq) != NULL) {
        if (j->h.type == SHOAL_PEER_DATA && j->stage == 0 && (j->g->aborted || j->g->closed)) {
            c->txq = j->next;
            if (c->txq == NULL)
                c->txq_tail = NULL;
            job_end(j, -ECONNABORTED);
            continue;
        }
        if (j->stage == 0 && j->done == 0)
            shoal_peer_hdr_encode(tx_slot(c), &j->h);
        sqe = sqe_get(p);
        if (j->stage == 0) {
            io_uring_prep_write_fixed(sqe, c->fd, tx_slot(c) + j->done,
                                      SHOAL_PEER_HDR_SIZE - (unsigned)j->done, 0, 0);
        } else {
            chunk = j->h.len - j->done;
            if (chunk > CHUNK_MAX)
                chunk = CHUNK_MAX;
            if (j->h.type == SHOAL_PEER_DATA && chunk >= SHOAL_PEER_ZC_MIN && c->zc)
                io_uring_prep_send_zc(sqe, c->fd, j->payload + j->done, (size_t)chunk,
                                      MSG_WAITALL | MSG_NOSIGNAL, 0);
            else
                io_uring_prep_send(sqe, c->fd, j->payload + j->done, (size_t)chunk,
                                   MSG_WAITALL | MSG_NOSIGNAL);
        }
        io_uring_sqe_set_data(sqe, &j->op);
        j->inflight++;
        c->inflight++;
        c->tx_busy = 1;
        io_uring_submit(&p->ring);
    }
}

static void on_tx(tx_job_t *j, struct io_uring_cqe *cqe)
{
    conn_t *c = j->c;
    int res = cqe->res;

    if (cqe->flags & IORING_CQE_F_NOTIF) {
        /* The kernel no longer reads the pages of a zero-copy send. */
        j->zc_out--;
        c->inflight--;
        job_free(j);
        conn_maybe_free(c);
        return;
    }
    if (cqe->flags & IORING_CQE_F_MORE) {
        j->zc_out++;
        c->inflight++;
    }
    j->inflight--;
    c->inflight--;
    c->tx_busy = 0;
    if (c->state == C_CLOSING) {
        c->txq = c->txq_tail = NULL;
        job_end(j, -ECONNRESET);
        conn_maybe_free(c);
        return;
    }
    if (res <= 0) {
        /* This job is at the head of the queue: take it off before closing fails the rest. */
        c->txq = j->next;
        if (c->txq == NULL)
            c->txq_tail = NULL;
        job_end(j, res < 0 ? res : -EPIPE);
        conn_close(c, res < 0 ? strerror(-res) : "send returned 0");
        return;
    }
    j->done += (uint64_t)res;
    if (j->stage == 1)
        c->p->bytes_out += (uint64_t)res;
    if (j->stage == 0 && j->done == SHOAL_PEER_HDR_SIZE) {
        j->stage = 1;
        j->done = 0;
    }
    if (j->stage == 1 && j->done == j->h.len) {
        c->txq = j->next;
        if (c->txq == NULL)
            c->txq_tail = NULL;
        job_end(j, 0);
    }
    tx_next(c);
}

int shoal_peer_send(shoal_peer_group_t *g, uint32_t node, uint64_t tag, uint64_t off, uint64_t len,
                    shoal_peer_done_cb cb, void *arg)
{
    tx_job_t *j;
    conn_t *c;

    if (g->closed || node >= g->nnodes || node == g->me || off < g->data_lo || off > g->data_hi ||
        len > g->data_hi - off || cb == NULL)
        return -EINVAL;
    if (g->aborted)
        return -ECONNABORTED;
    if ((c = conn_to(g->p, g->addrs[node])) == NULL)
        return -ECONNREFUSED;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return -ENOMEM;
    j->h = (shoal_peer_hdr_t){.type = SHOAL_PEER_DATA,
                              .group_id = g->id,
                              .tag = tag,
                              .src = g->me,
                              .dst = node,
                              .len = len};
    j->payload = g->map + off;
    j->g = g;
    g->refs++;
    j->cb = cb;
    j->arg = arg;
    job_queue(c, j);
    return 0;
}

/* ---- receiving ---- */

static void rx_submit(conn_t *c)
{
    shoal_peer_t *p = c->p;
    struct io_uring_sqe *sqe = sqe_get(p);
    uint64_t chunk;

    if (c->rx_state == RX_HDR) {
        io_uring_prep_read_fixed(sqe, c->fd, rx_slot(c) + c->rx_hgot,
                                 SHOAL_PEER_HDR_SIZE - c->rx_hgot, 0, 0);
    } else {
        chunk = c->rh.len - c->rx_done;
        if (c->rx_state == RX_DISCARD) {
            if (chunk > SCRATCH)
                chunk = SCRATCH;
            io_uring_prep_recv(sqe, c->fd, p->scratch, (size_t)chunk, 0);
        } else {
            if (chunk > CHUNK_MAX)
                chunk = CHUNK_MAX;
            io_uring_prep_recv(sqe, c->fd, c->rx_dst + c->rx_done, (size_t)chunk, MSG_WAITALL);
        }
    }
    io_uring_sqe_set_data(sqe, &c->rx_op);
    c->inflight++;
    io_uring_submit(&p->ring);
}

/* A whole message is in: act on it. */
static void rx_complete(conn_t *c)
{
    shoal_peer_t *p = c->p;
    shoal_peer_group_t *g = c->rx_g;
    early_t *e;
    tomb_t *t;

    switch (c->rh.type) {
    case SHOAL_PEER_HELLO: {
        size_t alen = strnlen((char *)c->rx_buf, (size_t)c->rh.len);
        struct sockaddr_in sa;
        if (alen == c->rh.len || alen > SHOAL_PEER_ADDR_MAX) {
            conn_close(c, "malformed HELLO");
            return;
        }
        if (p->key[0] != '\0' &&
            !shoal_secret_equal(c->rx_buf + alen + 1, (size_t)c->rh.len - alen - 1, p->key,
                                strlen(p->key))) {
            conn_close(c, "HELLO without the cluster key");
            return;
        }
        memcpy(c->addr, c->rx_buf, alen + 1);
        if (parse_addr(c->addr, &sa) < 0) {
            c->addr[0] = '\0';
            conn_close(c, "HELLO with a malformed address");
            return;
        }
        c->zc = p->force_zc || (ntohl(sa.sin_addr.s_addr) >> 24) != 127;
        c->state = C_READY;
        if (c->unauth) {
            c->unauth = 0;
            p->unauth--;
        }
        break;
    }
    case SHOAL_PEER_DATA:
        if (g != NULL) {
            /* A group closed or failed meanwhile takes nothing more. */
            if (!g->closed && !g->aborted)
                deliver(g, c->rh.src, c->rh.tag, c->rx_off, c->rh.len);
            c->rx_g = NULL;
            group_unref(g);
        } else if (c->rx_state == RX_BUF) {
            if ((e = calloc(1, sizeof(*e))) == NULL) {
                p->early_bytes -= c->rh.len;
                break;
            }
            e->group_id = c->rh.group_id;
            e->tag = c->rh.tag;
            e->src = c->rh.src;
            e->dst = c->rh.dst;
            e->data = c->rx_buf;
            e->len = c->rh.len;
            e->t_ms = shoal_util_now_ms();
            c->rx_buf = NULL;
            e->next = p->early;
            p->early = e;
            /* The group may have opened (or ended) while the body arrived: adopt_early ran
             * without this message then, so hand it over now, or drop it. */
            if ((g = group_find(p, e->group_id)) != NULL) {
                adopt_early(g);
            } else if (tomb_find(p, e->group_id) != NULL) {
                p->early = e->next;
                p->early_bytes -= e->len;
                free(e->data);
                free(e);
            }
        }
        break;
    case SHOAL_PEER_ABORT: {
        const char *msg = (const char *)c->rx_buf;
        size_t len = (size_t)c->rh.len;
        if ((g = group_find(p, c->rh.group_id)) != NULL) {
            /* A group that failed here already is not told again (the node it told answers
             * with its own ABORT). */
            if (c->rh.src < g->nnodes && c->rh.src != g->me && !g->aborted) {
                group_fail(g, c->rh.src, msg, len);
            }
        } else if ((t = tomb_find(p, c->rh.group_id)) == NULL || t->aborted) {
            /* Before the group opened here: it fails as soon as it does. */
            t = tomb_add(p, c->rh.group_id);
            t->aborted = 1;
            t->src = c->rh.src;
            free(t->msg);
            if ((t->msg = malloc(len + 1)) != NULL) {
                memcpy(t->msg, msg, len);
                t->msg[len] = '\0';
            }
        }
        break;
    }
    }
    free(c->rx_buf);
    c->rx_buf = NULL;
}

/* A header is in: decide where its body goes. 0 to go on, 1 to hold the connection back. */
static int rx_route(conn_t *c)
{
    shoal_peer_t *p = c->p;
    shoal_peer_group_t *g;
    tomb_t *t;
    uint64_t doff;

    int was_held = c->rx_state == RX_HELD;

    c->rx_done = 0;
    c->rx_g = NULL;
    c->rx_state = RX_BUF;
    switch (c->rh.type) {
    case SHOAL_PEER_HELLO:
        if (c->state != C_HELLO_WAIT || c->rh.len > SHOAL_PEER_HELLO_MAX || c->rh.len == 0) {
            conn_close(c, "unexpected HELLO");
            return -1;
        }
        break;
    case SHOAL_PEER_ABORT:
        if (c->state != C_READY || c->rh.len > SHOAL_PEER_ABORT_MAX) {
            conn_close(c, "malformed ABORT");
            return -1;
        }
        break;
    case SHOAL_PEER_DATA:
        if (c->state != C_READY || c->rh.group_id == 0) {
            conn_close(c, "DATA before HELLO");
            return -1;
        }
        /* No arena holds more: a peer that says so is broken. */
        if (c->rh.len > SHOAL_ARENA_MAX_DATA) {
            conn_close(c, "DATA larger than any arena");
            return -1;
        }
        if ((g = group_find(p, c->rh.group_id)) != NULL) {
            if (c->rh.dst != g->me || c->rh.src >= g->nnodes || c->rh.src == g->me) {
                conn_close(c, "DATA with wrong node indices");
                return -1;
            }
            if (g->aborted) {
                c->rx_state = RX_DISCARD;
                return 0;
            }
            if (shoal_arena_alloc(g->arena, c->rh.len, &doff) < 0) {
                GROUP_FAIL_LIT(g, g->me, "the group's arena is full");
                c->rx_state = RX_DISCARD;
                return 0;
            }
            c->rx_state = RX_ARENA;
            c->rx_g = g;
            g->refs++;
            c->rx_off = g->data_lo + doff;
            c->rx_dst = g->map + c->rx_off;
            /* Pages an earlier group of the function left in a kept arena are mapped in one call
             * (cheap: nothing to zero, about 25 us per MiB) instead of one fault per 4 KiB page
             * during the receive. Fresh pages are not: MADV_POPULATE_WRITE of a large range would
             * hold the loop for the whole zeroing; the kernel faults them in as it copies. */
            populate_warm(g, doff, c->rh.len);
            return 0;
        }
        if ((t = tomb_find(p, c->rh.group_id)) != NULL) {
            c->rx_state = RX_DISCARD;
            return 0;
        }
        if (c->rh.len > p->early_max - p->early_bytes) {
            /* Hold the sender back until the group opens or buffered data expires. */
            if (!was_held)
                c->held_ms = shoal_util_now_ms();
            c->rx_state = RX_HELD;
            return 1;
        }
        p->early_bytes += c->rh.len;
        break;
    }
    if ((c->rx_buf = malloc(c->rh.len + 1)) == NULL) {
        conn_close(c, "out of memory");
        return -1;
    }
    c->rx_dst = c->rx_buf;
    return 0;
}

/* Posts the next receive, or completes empty messages at once. */
static void rx_next(conn_t *c)
{
    while (c->state != C_CLOSING && c->rx_state != RX_HELD) {
        if (c->rx_state == RX_HDR || c->rx_done < c->rh.len) {
            rx_submit(c);
            return;
        }
        /* An empty body: nothing to receive. */
        if (c->rx_state != RX_DISCARD)
            rx_complete(c);
        c->rx_state = RX_HDR;
        c->rx_hgot = 0;
    }
}

static void on_rx(conn_t *c, int res)
{
    shoal_peer_t *p = c->p;
    int err;

    c->inflight--;
    if (c->state == C_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    if (res <= 0) {
        conn_close(c, res < 0 ? strerror(-res) : "closed by the peer");
        return;
    }
    if (c->rx_state == RX_HDR) {
        c->rx_hgot += (uint32_t)res;
        if (c->rx_hgot < SHOAL_PEER_HDR_SIZE) {
            rx_submit(c);
            return;
        }
        if ((err = shoal_peer_hdr_decode(rx_slot(c), &c->rh)) < 0) {
            conn_close(c, err == -EPROTONOSUPPORT ? "another protocol version" : "bad header");
            return;
        }
        if (rx_route(c) != 0)
            return;
        rx_next(c);
        return;
    }
    c->rx_done += (uint64_t)res;
    p->bytes_in += (uint64_t)res;
    if (c->rx_done < c->rh.len) {
        rx_submit(c);
        return;
    }
    if (c->rx_state != RX_DISCARD)
        rx_complete(c);
    if (c->state == C_CLOSING)
        return;
    c->rx_state = RX_HDR;
    c->rx_hgot = 0;
    rx_next(c);
}

/* Connections held back by a message that did not fit: try again. */
static void resume_held(shoal_peer_t *p)
{
    for (conn_t *c = p->conns; c != NULL; c = c->next) {
        if (c->rx_state != RX_HELD || c->state == C_CLOSING)
            continue;
        if (rx_route(c) == 0)
            rx_next(c);
    }
}

int shoal_peer_recv(shoal_peer_group_t *g, uint32_t node, uint64_t tag, shoal_peer_done_cb cb,
                    void *arg)
{
    item_t **pp, *it, *match = NULL, **match_pp = NULL;

    if (g->closed || node >= g->nnodes || node == g->me || cb == NULL)
        return -EINVAL;
    if (g->aborted)
        return -ECONNABORTED;
    /* The oldest arrival with this tag: the list is newest first. */
    for (pp = &g->arrived; (it = *pp) != NULL; pp = &it->next)
        if (it->node == node && it->tag == tag) {
            match = it;
            match_pp = pp;
        }
    if (match != NULL) {
        *match_pp = match->next;
        g->unclaimed--;
        defer_done(g, cb, arg, 0, match->off, match->len);
        free(match);
        return 0;
    }
    if ((it = calloc(1, sizeof(*it))) == NULL)
        return -ENOMEM;
    it->node = node;
    it->tag = tag;
    it->cb = cb;
    it->arg = arg;
    /* Waiting receives are answered in arrival order of their messages; appending keeps the
     * oldest request first for a repeated tag. */
    for (pp = &g->waiting; *pp != NULL; pp = &(*pp)->next)
        ;
    *pp = it;
    return 0;
}

/* Queues an ABORT of group_id carrying msg (cut to SHOAL_PEER_ABORT_MAX) from node src to node
 * dst at addr. Best effort: without a connection or memory the peer learns it otherwise (its
 * own deadline). */
static void queue_abort(shoal_peer_t *p, const char *addr, uint64_t group_id, uint32_t src,
                        uint32_t dst, const char *msg, size_t len)
{
    tx_job_t *j;
    conn_t *c;

    if (len > SHOAL_PEER_ABORT_MAX)
        len = SHOAL_PEER_ABORT_MAX;
    if ((c = conn_to(p, addr)) == NULL)
        return;
    if ((j = calloc(1, sizeof(*j))) == NULL || (j->owned = malloc(len + 1)) == NULL) {
        free(j);
        return;
    }
    memcpy(j->owned, msg, len);
    j->payload = j->owned;
    j->h = (shoal_peer_hdr_t){
        .type = SHOAL_PEER_ABORT, .group_id = group_id, .src = src, .dst = dst, .len = len};
    job_queue(c, j);
}

void shoal_peer_abort(shoal_peer_group_t *g, const char *msg, size_t len)
{
    shoal_peer_t *p = g->p;
    item_t *it;

    if (g->closed)
        return;
    g->aborted = 1;
    if (!g->abort_sent) {
        /* Set first: a connection that cannot be opened aborts the group again, re-entering. */
        g->abort_sent = 1;
        for (uint32_t i = 0; i < g->nnodes; i++)
            if (i != g->me)
                queue_abort(p, g->addrs[i], g->id, g->me, i, msg, len);
    }
    while ((it = g->waiting) != NULL) {
        g->waiting = it->next;
        defer_done(g, it->cb, it->arg, -ECONNABORTED, 0, 0);
        free(it);
    }
}

void shoal_peer_tell_abort(shoal_peer_t *p, uint64_t group_id, uint32_t me, uint32_t nnodes,
                           const char *const *addrs, const char *msg, size_t len)
{
    tomb_t *t;

    for (uint32_t i = 0; i < nnodes && i < SHOAL_PEER_CONN_MAX; i++)
        if (i != me && addrs[i] != NULL)
            queue_abort(p, addrs[i], group_id, me, i, msg, len);
    /* Its data may already be buffered, or still come: it is discarded. */
    if (group_find(p, group_id) == NULL) {
        early_t **pp = &p->early, *e;
        while ((e = *pp) != NULL) {
            if (e->group_id == group_id) {
                *pp = e->next;
                p->early_bytes -= e->len;
                free(e->data);
                free(e);
            } else {
                pp = &e->next;
            }
        }
        t = tomb_add(p, group_id);
        t->aborted = 0;
        free(t->msg);
        t->msg = NULL;
        resume_held(p);
    }
}

int shoal_peer_group_idle(const shoal_peer_group_t *g)
{
    return g->refs == 1; /* the owner's only */
}

void shoal_peer_group_close(shoal_peer_group_t *g)
{
    shoal_peer_t *p = g->p;
    tomb_t *t;

    if (g->closed)
        return;
    g->closed = 1;
    items_free(g->arrived);
    items_free(g->waiting);
    g->arrived = g->waiting = NULL;
    g->arena = NULL;
    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        p->groups = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    g->prev = g->next = NULL;
    /* Whatever still arrives for it is discarded. */
    t = tomb_add(p, g->id);
    t->aborted = 0;
    free(t->msg);
    t->msg = NULL;
    group_unref(g);
}

/* ---- the loop ---- */

static void accept_arm(shoal_peer_t *p)
{
    struct io_uring_sqe *sqe = sqe_get(p);

    p->accept_paused = 0;
    io_uring_prep_multishot_accept(sqe, p->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &p->accept_op);
    io_uring_submit(&p->ring);
}

static void on_accept(shoal_peer_t *p, struct io_uring_cqe *cqe)
{
    conn_t *c;

    if (cqe->res >= 0) {
        /* Connections that have not said HELLO get a few slots only, so that strangers cannot
         * take the ones this node needs to reach its peers; past that, the oldest of them makes
         * room (a real peer says HELLO at once, a silent one would hold its slot for seconds). */
        if (!p->destroying && p->unauth >= SHOAL_PEER_UNAUTH_MAX) {
            conn_t *old = NULL;
            for (c = p->conns; c != NULL; c = c->next)
                if (c->unauth && c->state == C_HELLO_WAIT &&
                    (old == NULL || c->created_ms < old->created_ms))
                    old = c;
            if (old != NULL)
                conn_close(old, "too many connections without a HELLO");
        }
        if (p->destroying || (c = conn_new(p, cqe->res, 0)) == NULL) {
            close(cqe->res);
        } else {
            c->unauth = 1;
            p->unauth++;
            c->state = C_HELLO_WAIT;
            c->rx_state = RX_HDR;
            rx_next(c);
        }
    }
    if (!(cqe->flags & IORING_CQE_F_MORE) && !p->destroying) {
        if (cqe->res < 0) {
            /* Out of fds or memory: accepting again at once would fail at once, in a loop.
             * The tick takes it up again. */
            SHOAL_WARN("peer %s: accept: %s", p->node, strerror(-cqe->res));
            p->accept_paused = 1;
            return;
        }
        accept_arm(p);
    }
}

static void on_connect(conn_t *c, int res)
{
    c->inflight--;
    if (c->state == C_CLOSING) {
        conn_maybe_free(c);
        return;
    }
    if (res < 0) {
        conn_close(c, strerror(-res));
        return;
    }
    c->state = C_READY;
    c->rx_state = RX_HDR;
    rx_next(c);
    tx_next(c);
}

static void reap(shoal_peer_t *p)
{
    struct io_uring_cqe *cqe;
    op_t *op;

    while (io_uring_peek_cqe(&p->ring, &cqe) == 0) {
        op = io_uring_cqe_get_data(cqe);
        if (op != NULL) {
            switch (op->kind) {
            case OP_ACCEPT:
                on_accept(p, cqe);
                break;
            case OP_CONNECT:
                on_connect(op->obj, cqe->res);
                break;
            case OP_RX:
                on_rx(op->obj, cqe->res);
                break;
            case OP_TX:
                on_tx(op->obj, cqe);
                break;
            }
        }
        io_uring_cqe_seen(&p->ring, cqe);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    shoal_peer_t *p = h->data;
    uint64_t v;

    (void)status;
    (void)events;
    if (read(p->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        SHOAL_WARN("peer: eventfd read: %s", strerror(errno));
    reap(p);
}

/* Every second: expire early data, drop accepted connections that never said HELLO. */
static void on_tick(uv_timer_t *t)
{
    shoal_peer_t *p = t->data;
    uint64_t now = shoal_util_now_ms();
    early_t **pp = &p->early, *e;
    int freed = 0;

    while ((e = *pp) != NULL) {
        if (now - e->t_ms >= SHOAL_PEER_EARLY_TTL_MS) {
            *pp = e->next;
            p->early_bytes -= e->len;
            free(e->data);
            free(e);
            freed = 1;
        } else {
            pp = &e->next;
        }
    }
    for (conn_t *c = p->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == C_HELLO_WAIT && now - c->created_ms >= SHOAL_PEER_HELLO_TIMEOUT_MS)
            conn_close(c, "no HELLO in time");
        else if (c->rx_state == RX_HELD && c->state == C_READY &&
                 now - c->held_ms >= SHOAL_PEER_EARLY_TTL_MS) {
            /* Its group never opened here (it was refused, and the other nodes were told):
             * drop the message. */
            c->rx_state = RX_DISCARD;
            c->rx_done = 0;
            rx_next(c);
        }
    }
    if (freed)
        resume_held(p);
    if (p->accept_paused)
        accept_arm(p);
}

static void on_handle_closed(uv_handle_t *h)
{
    shoal_peer_t *p = h->data;

    if (--p->handles > 0)
        return;
    free(p->regbuf);
    free(p->scratch);
    free(p);
}

int shoal_peer_create(uv_loop_t *loop, const shoal_peer_config_t *cfg, shoal_peer_t **out)
{
    struct io_uring_params params;
    struct io_uring_sqe *sqe;
    struct sockaddr_in sa;
    socklen_t slen = sizeof(sa);
    struct iovec iov;
    shoal_peer_t *p;
    char ip[INET_ADDRSTRLEN];
    int err, one = 1;

    if (cfg->key != NULL && strlen(cfg->key) > SHOAL_SECRET_MAX)
        return -EINVAL;
    if ((p = calloc(1, sizeof(*p))) == NULL)
        return -ENOMEM;
    p->loop = loop;
    p->efd = p->lfd = -1;
    snprintf(p->key, sizeof(p->key), "%s", cfg->key != NULL ? cfg->key : "");
    snprintf(p->node, sizeof(p->node), "%s", cfg->node != NULL ? cfg->node : "?");
    p->force_zc = cfg->force_zc;
    p->early_max = cfg->early_max ? cfg->early_max : SHOAL_PEER_EARLY_DEFAULT;
    if (parse_addr(cfg->listen != NULL ? cfg->listen : "127.0.0.1:0", &sa) < 0) {
        free(p);
        return -EINVAL;
    }
    if ((p->regbuf = aligned_alloc(4096, SHOAL_PEER_CONN_MAX * 2 * SLOT)) == NULL ||
        (p->scratch = malloc(SCRATCH)) == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    memset(&params, 0, sizeof(params));
    params.flags = IORING_SETUP_CQSIZE;
    params.cq_entries = CQ_ENTRIES;
    if ((err = io_uring_queue_init_params(RING_ENTRIES, &p->ring, &params)) < 0)
        goto fail;
    p->ring_ok = 1;
    /* The header slots are the registered buffer: READ_FIXED / WRITE_FIXED skip the per-call
     * page pinning for the small, frequent control traffic. */
    iov.iov_base = p->regbuf;
    iov.iov_len = SHOAL_PEER_CONN_MAX * 2 * SLOT;
    if ((err = io_uring_register_buffers(&p->ring, &iov, 1)) < 0)
        goto fail;
    if ((p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
        err = -errno;
        goto fail;
    }
    if ((err = io_uring_register_eventfd(&p->ring, p->efd)) < 0)
        goto fail;
    if ((p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        err = -errno;
        goto fail;
    }
    setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(p->lfd, 128) < 0 ||
        getsockname(p->lfd, (struct sockaddr *)&sa, &slen) < 0) {
        err = -errno;
        goto fail;
    }
    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
    snprintf(p->addr, sizeof(p->addr), "%s:%u", ip, (unsigned)ntohs(sa.sin_port));
    p->accept_op = (op_t){OP_ACCEPT, p};
    sqe = io_uring_get_sqe(&p->ring);
    io_uring_prep_multishot_accept(sqe, p->lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, &p->accept_op);
    if ((err = io_uring_submit(&p->ring)) < 0)
        goto fail;
    uv_poll_init(loop, &p->poll, p->efd);
    p->poll.data = p;
    uv_poll_start(&p->poll, UV_READABLE, on_poll);
    uv_timer_init(loop, &p->tick);
    p->tick.data = p;
    uv_timer_start(&p->tick, on_tick, 1000, 1000);
    uv_unref((uv_handle_t *)&p->tick);
    uv_timer_init(loop, &p->kick);
    p->kick.data = p;
    p->handles = 3;
    *out = p;
    return 0;
fail:
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->ring_ok)
        io_uring_queue_exit(&p->ring);
    if (p->efd >= 0)
        close(p->efd);
    free(p->regbuf);
    free(p->scratch);
    free(p);
    return err;
}

const char *shoal_peer_address(const shoal_peer_t *p)
{
    return p->addr;
}

void shoal_peer_stats(const shoal_peer_t *p, shoal_peer_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->conns = p->nconns;
    st->groups = p->ngroups;
    st->early_bytes = p->early_bytes;
    for (const conn_t *c = p->conns; c != NULL; c = c->next)
        if (c->rx_state == RX_HELD)
            st->held++;
    st->bytes_in = p->bytes_in;
    st->bytes_out = p->bytes_out;
}

void shoal_peer_destroy(shoal_peer_t *p)
{
    early_t *e;
    event_t *ev;

    if (p == NULL)
        return;
    p->destroying = 1;
    while (p->groups != NULL)
        shoal_peer_group_close(p->groups);
    for (conn_t *c = p->conns, *next; c != NULL; c = next) {
        next = c->next;
        conn_close(c, "shutting down");
    }
    /* Tearing the ring down cancels what is in flight; the kernel drops its page references. */
    close(p->lfd);
    io_uring_queue_exit(&p->ring);
    close(p->efd);
    /* Nothing completes any more: release what waited for completions (jobs first: freeing
     * one reads its connection). */
    while (p->jobs != NULL) {
        tx_job_t *j = p->jobs;
        j->inflight = j->zc_out = 0;
        j->cb = NULL;
        job_free(j);
    }
    while (p->conns != NULL) {
        conn_t *c = p->conns;
        c->txq = c->txq_tail = NULL;
        c->inflight = 0;
        conn_maybe_free(c);
    }
    while ((ev = p->events) != NULL) {
        p->events = ev->next;
        group_unref(ev->g);
        free(ev->msg);
        free(ev);
    }
    while ((e = p->early) != NULL) {
        p->early = e->next;
        free(e->data);
        free(e);
    }
    for (unsigned i = 0; i < SHOAL_PEER_TOMBSTONES; i++)
        free(p->tombs[i].msg);
    uv_close((uv_handle_t *)&p->poll, on_handle_closed);
    uv_close((uv_handle_t *)&p->tick, on_handle_closed);
    uv_close((uv_handle_t *)&p->kick, on_handle_closed);
}
