/*
 * redis - see redis.h for the design.
 *
 * Wire vocabulary (all keys start with "shoal:<group id, 16 hex digits>:"):
 *   n:<rank>                  the rank's notification list (RPUSH by producers, BLPOP by it)
 *   c:<seq>:<src>:<dst>:<k>   chunk k of the part src sends dst in collective seq
 *   c:<seq>:<root>:b:<k>      chunk k of a broadcast part (bcast, allreduce's result)
 *   c:<seq>:<root>:r          its reference count: consumers that have not read it yet
 *   c:<seq>:bar               a barrier's arrival counter
 *   m:<src>:<dst>:<n>:<k>     chunk k of message n from src to dst (send/recv)
 * A notification is text: "C seq kind phase src root len count dtype|op<<8" for a collective,
 * "M n src len" for a message. The sequence number seq is the rank's count of collectives: every
 * rank calls them in the same order, so equal numbers name the same collective; a notification
 * whose seq and source match but whose kind, root, count, dtype or op do not is -EPROTO.
 *
 * Commands are pipelined: a collective appends its commands to an output list, writes them with
 * writev (values over INLINE_MAX straight from the caller's memory) and then reads one reply per
 * command, so a producer's SETs and RPUSHes, or a consumer's GETs, cost one round trip.
 */
#include "redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "transport/coll.h"

#define RBUF_SIZE (1u << 20)
#define INLINE_MAX (16u << 10) /* longer arguments are written from the caller's memory */
#define PART_MAX (1ull << 40)  /* the largest part a notification may announce */
#define NOTE_MAX 128
#define KEY_MAX 96
#define CKEY_MAX (KEY_MAX + 24) /* a key with its chunk number */
#define IOV_BATCH 256

enum { NOTE_COLL = 'C', NOTE_MSG = 'M' };

typedef struct note {
    struct note *next;
    int type; /* NOTE_COLL or NOTE_MSG */
    uint32_t seq;
    uint32_t kind, phase;
    int src, root;
    uint64_t len, count;
    uint32_t dtop;
} note_t;

/* A buffer handed to the function; freed at destroy. The header keeps data 16-byte aligned. */
typedef struct block {
    struct block *next;
    uint64_t pad;
    _Alignas(16) uint8_t data[];
} block_t;

/* One piece of pending output: bytes of ob (ext == NULL) or of the caller's memory. */
typedef struct {
    const void *ext;
    size_t off, len;
} seg_t;

struct shoal_rt_redis {
    redisContext *rc;
    int fd;
    int rank, size, arena_rank;
    int local; /* every rank is in the arena, at its global rank (see peer_gone) */
    int blame; /* the peer that left while this rank waited for it */
    shoal_arena_t *arena;
    uint64_t deadline_ns;
    char expire[24]; /* PXAT / PEXPIREAT argument: the deadline in Unix milliseconds */
    uint64_t chunk;
    int connected;
    int err; /* sticky: the connection is out of step or broken */
    uint32_t seq;
    uint32_t *sent, *rcvd; /* messages per destination / source */
    note_t *stash;         /* notifications received before they were asked for */
    block_t *blocks;
    char *rbuf; /* bytes read from the socket; rbuf[rpos, rlen) are not parsed yet */
    size_t rpos, rlen;
    char *ob;
    size_t oblen, obcap;
    seg_t *segs;
    size_t nsegs, segcap;
    size_t nreplies; /* commands written or appended whose replies are unread */
    char prefix[32];
    uint8_t empty[16]; /* what zero-length parts point to */
};

/* ---- errors ---- */

/* The connection can no longer be trusted to be in step: every later call fails with err. */
static int io_fail(shoal_rt_redis_t *h, int err)
{
    if (h->err == 0)
        h->err = err;
    return err;
}

/* Records why the group cannot go on, so that no rank waits for this one in vain (as coll.c). */
static int fail(shoal_rt_redis_t *h, int err)
{
    if (h->arena == NULL)
        return err;
    if (err == -EPIPE && h->blame >= 0) {
        shoal_arena_abort(h->arena, h->blame, SHOAL_ARENA_FAIL_LEFT);
        return err;
    }
    switch (err) {
    case -ECONNABORTED: /* recorded already */
    case -ETIMEDOUT:    /* every rank has the same deadline */
        break;
    case -ENOMEM:
        shoal_arena_abort(h->arena, h->arena_rank, SHOAL_ARENA_FAIL_NOSPACE);
        break;
    default: /* including -EPIPE from a broken connection to Redis */
        shoal_arena_abort(h->arena, h->arena_rank, SHOAL_ARENA_FAIL_PROTOCOL);
        break;
    }
    return err;
}

/* ---- I/O ---- */

/* Waits until the socket is ready for events, in slices between which it checks the group's
 * failure word and the deadline. 0 or -ECONNABORTED, -ETIMEDOUT, -errno. */
static int wait_io(shoal_rt_redis_t *h, short events)
{
    for (;;) {
        struct pollfd p = {.fd = h->fd, .events = events};
        uint64_t now = shoal_util_now_ns(), left;
        int n;

        if (h->arena != NULL && shoal_arena_failed(h->arena))
            return -ECONNABORTED;
        if (now >= h->deadline_ns)
            return -ETIMEDOUT;
        left = (h->deadline_ns - now + 999999) / 1000000;
        n = poll(&p, 1, left < SHOAL_RT_REDIS_SLICE_MS ? (int)left : SHOAL_RT_REDIS_SLICE_MS);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            return (p.revents & POLLNVAL) ? -EBADF : 0;
    }
}

/* Finishes the worker's non-blocking connect. */
static int connected(shoal_rt_redis_t *h)
{
    int soerr = 0, r;
    socklen_t sl = sizeof(soerr);

    if (h->err != 0)
        return h->err;
    if (h->connected)
        return 0;
    if ((r = wait_io(h, POLLOUT)) < 0)
        return r; /* not sticky: nothing was sent */
    if (getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return io_fail(h, -errno);
    if (soerr != 0)
        return io_fail(h, -soerr);
    h->connected = 1;
    return 0;
}

static int seg_add(shoal_rt_redis_t *h, const void *ext, size_t off, size_t len)
{
    if (h->nsegs == h->segcap) {
        size_t cap = h->segcap ? 2 * h->segcap : 64;
        seg_t *s = realloc(h->segs, cap * sizeof(*s));
        if (s == NULL)
            return -ENOMEM;
        h->segs = s;
        h->segcap = cap;
    }
    h->segs[h->nsegs++] = (seg_t){ext, off, len};
    return 0;
}

static int ob_put(shoal_rt_redis_t *h, const void *p, size_t len)
{
    seg_t *last = h->nsegs ? &h->segs[h->nsegs - 1] : NULL;

    if (h->oblen + len > h->obcap) {
        size_t cap = h->obcap ? h->obcap : 4096;
        char *b;
        while (cap < h->oblen + len)
            cap *= 2;
        if ((b = realloc(h->ob, cap)) == NULL)
            return -ENOMEM;
        h->ob = b;
        h->obcap = cap;
    }
    memcpy(h->ob + h->oblen, p, len);
    if (last != NULL && last->ext == NULL && last->off + last->len == h->oblen)
        last->len += len;
    else if (seg_add(h, NULL, h->oblen, len) < 0)
        return -ENOMEM;
    h->oblen += len;
    return 0;
}

static int cmd_append(shoal_rt_redis_t *h, int argc, const void *const *argv, const size_t *lens);

/* Appends one command of argc binary-safe arguments. A failure leaves a partial command in the
 * output: the connection can no longer be used. */
static int cmd(shoal_rt_redis_t *h, int argc, const void *const *argv, const size_t *lens)
{
    return cmd_append(h, argc, argv, lens) < 0 ? io_fail(h, -ENOMEM) : 0;
}

static int cmd_append(shoal_rt_redis_t *h, int argc, const void *const *argv, const size_t *lens)
{
    char num[32];
    int n;

    n = snprintf(num, sizeof(num), "*%d\r\n", argc);
    if (ob_put(h, num, (size_t)n) < 0)
        return -ENOMEM;
    for (int i = 0; i < argc; i++) {
        n = snprintf(num, sizeof(num), "$%zu\r\n", lens[i]);
        if (ob_put(h, num, (size_t)n) < 0)
            return -ENOMEM;
        if (lens[i] > INLINE_MAX) {
            if (seg_add(h, argv[i], 0, lens[i]) < 0)
                return -ENOMEM;
        } else if (ob_put(h, argv[i], lens[i]) < 0) {
            return -ENOMEM;
        }
        if (ob_put(h, "\r\n", 2) < 0)
            return -ENOMEM;
    }
    h->nreplies++;
    return 0;
}

/* Appends a command of C-string arguments. */
static int cmds(shoal_rt_redis_t *h, int argc, ...)
{
    const void *argv[6];
    size_t lens[6];
    va_list ap;

    if (argc > 6)
        return -EINVAL;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    return cmd(h, argc, argv, lens);
}

/* Writes the pending output. */
static int flush(shoal_rt_redis_t *h)
{
    size_t i = 0, done = 0;
    int r;

    while (i < h->nsegs) {
        struct iovec iov[IOV_BATCH];
        int n = 0;
        ssize_t w;

        for (size_t j = i; j < h->nsegs && n < IOV_BATCH; j++, n++) {
            const seg_t *s = &h->segs[j];
            const char *base = s->ext != NULL ? s->ext : h->ob + s->off;
            size_t skip = j == i ? done : 0;
            iov[n] = (struct iovec){(void *)(base + skip), s->len - skip};
        }
        /* MSG_NOSIGNAL: a closed connection is -EPIPE, not a SIGPIPE that kills the rank. */
        w = sendmsg(h->fd, &(struct msghdr){.msg_iov = iov, .msg_iovlen = (size_t)n}, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return io_fail(h, -errno);
            if ((r = wait_io(h, POLLOUT)) < 0)
                return io_fail(h, r);
            continue;
        }
        while (w > 0) {
            size_t rem = h->segs[i].len - done;
            if ((size_t)w >= rem) {
                w -= (ssize_t)rem;
                i++;
                done = 0;
            } else {
                done += (size_t)w;
                w = 0;
            }
        }
        while (i < h->nsegs && h->segs[i].len == 0)
            i++;
    }
    h->nsegs = 0;
    h->oblen = 0;
    return 0;
}

/* Reads more bytes into rbuf (compacting it first). Reading does not wait beyond the slices of
 * wait_io. */
static int fill(shoal_rt_redis_t *h)
{
    ssize_t n;
    int r;

    if (h->rpos > 0) {
        memmove(h->rbuf, h->rbuf + h->rpos, h->rlen - h->rpos);
        h->rlen -= h->rpos;
        h->rpos = 0;
    }
    for (;;) {
        n = read(h->fd, h->rbuf + h->rlen, RBUF_SIZE - h->rlen);
        if (n > 0) {
            h->rlen += (size_t)n;
            return 0;
        }
        if (n == 0)
            return io_fail(h, -ECONNRESET);
        if (errno == EAGAIN) {
            if ((r = wait_io(h, POLLIN)) < 0)
                return io_fail(h, r);
        } else if (errno != EINTR) {
            return io_fail(h, -errno);
        }
    }
}

/* The next reply, parsed by hiredis's reader. Bytes are fed to the reader as they come; bytes it
 * holds beyond a reply stay there for the next call (or for read_bulk to take back). */
static int get_reply(shoal_rt_redis_t *h, redisReply **out)
{
    void *rep = NULL;
    int r;

    for (;;) {
        if (redisReaderGetReply(h->rc->reader, &rep) != REDIS_OK)
            return io_fail(h, -EPROTO);
        if (rep != NULL) {
            *out = rep;
            h->nreplies--;
            return 0;
        }
        if (h->rpos == h->rlen && (r = fill(h)) < 0)
            return r;
        if (redisReaderFeed(h->rc->reader, h->rbuf + h->rpos, h->rlen - h->rpos) != REDIS_OK)
            return io_fail(h, -ENOMEM);
        h->rpos = h->rlen = 0;
    }
}

/* The next reply, which must be a bulk string of exactly len bytes, read straight into dst: a
 * part's bytes are copied once, from the socket to where the function reads them (hiredis would
 * buffer the whole value, then copy it into a reply object). Any failure leaves the connection out
 * of step, so it is sticky. -EBADMSG for a missing key or another length, -EPROTO for an error
 * reply. */
static int read_bulk(shoal_rt_redis_t *h, uint8_t *dst, uint64_t len)
{
    redisReader *rd = h->rc->reader;
    char line[48], *nl;
    uint64_t got = 0, n;
    size_t take;
    int r;

    /* Bytes the reader was fed beyond the last reply come first (then rbuf is empty). */
    if (rd->len > rd->pos) {
        if (h->rpos != h->rlen || rd->len - rd->pos > RBUF_SIZE)
            return io_fail(h, -EPROTO);
        memcpy(h->rbuf, rd->buf + rd->pos, rd->len - rd->pos);
        h->rpos = 0;
        h->rlen = rd->len - rd->pos;
        rd->pos = rd->len;
    }
    while ((nl = memchr(h->rbuf + h->rpos, '\n', h->rlen - h->rpos)) == NULL) {
        if (h->rlen - h->rpos >= sizeof(line))
            return io_fail(h, -EPROTO);
        if ((r = fill(h)) < 0)
            return r;
    }
    take = (size_t)(nl - (h->rbuf + h->rpos)) + 1;
    if (take >= sizeof(line) || take < 3 || nl[-1] != '\r')
        return io_fail(h, -EPROTO);
    memcpy(line, h->rbuf + h->rpos, take - 2);
    line[take - 2] = '\0';
    h->rpos += take;
    h->nreplies--;
    if (line[0] == '-')
        return io_fail(h, -EPROTO);
    if (line[0] != '$' || shoal_util_parse_u64(line + 1, take - 3, 0, PART_MAX, &n) < 0 || n != len)
        return io_fail(h, -EBADMSG); /* "$-1": the key is missing */
    take = h->rlen - h->rpos < len ? h->rlen - h->rpos : (size_t)len;
    memcpy(dst, h->rbuf + h->rpos, take);
    h->rpos += take;
    got = take;
    while (got < len) {
        ssize_t k = read(h->fd, dst + got, (size_t)(len - got));
        if (k > 0) {
            got += (uint64_t)k;
        } else if (k == 0) {
            return io_fail(h, -ECONNRESET);
        } else if (errno == EAGAIN) {
            if ((r = wait_io(h, POLLIN)) < 0)
                return io_fail(h, r);
        } else if (errno != EINTR) {
            return io_fail(h, -errno);
        }
    }
    while (h->rlen - h->rpos < 2)
        if ((r = fill(h)) < 0)
            return r;
    if (h->rbuf[h->rpos] != '\r' || h->rbuf[h->rpos + 1] != '\n')
        return io_fail(h, -EPROTO);
    h->rpos += 2;
    return 0;
}

/* What run() reads a part into: the first n replies are its chunks. */
struct fetch {
    uint8_t *dst;
    uint64_t len, n; /* bytes and chunks expected */
    long long after; /* the integer reply right after the chunks (bcast's DECR), or -1 */
};

/* Writes the pending commands and reads every reply in order. With f, the first f->n replies are
 * the chunks of a part, read with read_bulk straight into f->dst, and an integer reply right
 * after them is kept in f->after. An error reply makes the result -EPROTO; the other replies are
 * still read, so the connection stays in step. */
static int run(shoal_rt_redis_t *h, struct fetch *f)
{
    size_t n = h->nreplies;
    redisReply *rep;
    int err = 0, r;

    if (h->err != 0)
        return h->err;
    if ((r = flush(h)) < 0)
        return r;
    for (size_t i = 0; i < n; i++) {
        if (f != NULL && i < f->n) {
            uint64_t off = (uint64_t)i * h->chunk;
            if ((r = read_bulk(h, f->dst + off,
                               f->len - off < h->chunk ? f->len - off : h->chunk)) < 0)
                return r;
            continue;
        }
        if ((r = get_reply(h, &rep)) < 0)
            return r;
        if (rep->type == REDIS_REPLY_ERROR)
            r = -EPROTO;
        else if (f != NULL && i == f->n && rep->type == REDIS_REPLY_INTEGER)
            f->after = rep->integer;
        if (r < 0 && err == 0)
            err = r;
        freeReplyObject(rep);
    }
    return err;
}

/* ---- keys, parts, notifications ---- */

static void key(shoal_rt_redis_t *h, char *out, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void key(shoal_rt_redis_t *h, char *out, const char *fmt, ...)
{
    size_t n = strlen(h->prefix);
    va_list ap;

    memcpy(out, h->prefix, n);
    va_start(ap, fmt);
    vsnprintf(out + n, KEY_MAX - n, fmt, ap);
    va_end(ap);
}

static uint64_t nchunks(const shoal_rt_redis_t *h, uint64_t len)
{
    return (len + h->chunk - 1) / h->chunk;
}

/* Appends the SETs of a part under base:<k>, expiring at the deadline. */
static int put(shoal_rt_redis_t *h, const char *base, const void *data, uint64_t len)
{
    static const char set[] = "SET", pxat[] = "PXAT";
    char k[CKEY_MAX];

    for (uint64_t i = 0, off = 0; off < len; i++, off += h->chunk) {
        size_t clen = len - off < h->chunk ? (size_t)(len - off) : (size_t)h->chunk;
        snprintf(k, sizeof(k), "%s:%" PRIu64, base, i);
        const void *argv[5] = {set, k, (const uint8_t *)data + off, pxat, h->expire};
        size_t lens[5] = {3, strlen(k), clen, 4, strlen(h->expire)};
        if (cmd(h, 5, argv, lens) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Appends the GETs (GETDEL when del) of the part under base:<k>. */
static int get(shoal_rt_redis_t *h, const char *base, uint64_t len, int del)
{
    char k[CKEY_MAX];

    for (uint64_t i = 0; i < nchunks(h, len); i++) {
        snprintf(k, sizeof(k), "%s:%" PRIu64, base, i);
        if (cmds(h, 2, del ? "GETDEL" : "GET", k) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* Appends RPUSH of note to rank dst's list and its expiry. */
static int notify(shoal_rt_redis_t *h, int dst, const char *note)
{
    char k[KEY_MAX];

    key(h, k, "n:%d", dst);
    if (cmds(h, 3, "RPUSH", k, note) < 0 || cmds(h, 3, "PEXPIREAT", k, h->expire) < 0)
        return -ENOMEM;
    return 0;
}

static void coll_note(char *out, uint32_t seq, unsigned kind, unsigned phase, int src, int root,
                      uint64_t len, uint64_t count, uint32_t dtop)
{
    snprintf(out, NOTE_MAX, "C %u %u %u %d %d %" PRIu64 " %" PRIu64 " %u", seq, kind, phase, src,
             root, len, count, dtop);
}

static int note_parse(const shoal_rt_redis_t *h, const char *s, size_t len, note_t *n)
{
    char buf[NOTE_MAX];
    unsigned long long a, b;
    int end = -1;

    if (len == 0 || len >= sizeof(buf))
        return -EBADMSG;
    memcpy(buf, s, len);
    buf[len] = '\0';
    memset(n, 0, sizeof(*n));
    n->type = buf[0];
    if (n->type == NOTE_COLL) {
        if (sscanf(buf, "C %u %u %u %d %d %llu %llu %u%n", &n->seq, &n->kind, &n->phase, &n->src,
                   &n->root, &a, &b, &n->dtop, &end) != 8)
            return -EBADMSG;
        n->count = b;
    } else if (n->type == NOTE_MSG) {
        if (sscanf(buf, "M %u %d %llu%n", &n->seq, &n->src, &a, &end) != 3)
            return -EBADMSG;
    } else {
        return -EBADMSG;
    }
    n->len = a;
    if (end != (int)len || n->src < 0 || n->src >= h->size || n->len > PART_MAX)
        return -EBADMSG;
    return 0;
}

/* The wanted notification: type, seq (collective or message number), src (-1 = any), phase. */
typedef struct {
    int type;
    uint32_t seq, kind, phase;
    int src;
} want_t;

/* 1: n is the wanted one; 0: another; -EPROTO: it is the same collective's but says otherwise. */
static int note_match(const note_t *n, const want_t *w)
{
    if (n->type != w->type || n->seq != w->seq || (w->src >= 0 && n->src != w->src))
        return 0;
    if (n->type == NOTE_MSG)
        return 1;
    if (n->phase != w->phase)
        return 0;
    return n->kind == w->kind ? 1 : -EPROTO;
}

/* Whether a peer this rank waits for (src, or any for -1) has left the group (the arena's GONE
 * bit, set when a rank leaves; only known when every rank is in this arena at its global rank).
 * Everything a peer pushed, it pushed before it left. */
static int peer_gone(shoal_rt_redis_t *h, int src)
{
    if (!h->local || h->arena == NULL)
        return 0;
    for (int p = src >= 0 ? src : 0; p < (src >= 0 ? src + 1 : h->size); p++) {
        if (p != h->rank &&
            (atomic_load_explicit(&shoal_arena_ctl_of(h->arena, p)->state, memory_order_acquire) &
             SHOAL_ARENA_GONE)) {
            h->blame = p;
            return 1;
        }
    }
    return 0;
}

/* Pops one notification from this rank's list: BLPOP with timeout tmo, or LPOP when tmo is NULL.
 * 1 with *n, 0 when there was none, or -errno. */
static int pop(shoal_rt_redis_t *h, const char *list, const char *tmo, note_t *n)
{
    redisReply *rep, *v;
    int r;

    if ((tmo != NULL ? cmds(h, 3, "BLPOP", list, tmo) : cmds(h, 2, "LPOP", list)) < 0)
        return -ENOMEM;
    if ((r = flush(h)) < 0 || (r = get_reply(h, &rep)) < 0)
        return r;
    v = tmo != NULL && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 ? rep->element[1] : rep;
    if (rep->type == REDIS_REPLY_NIL)
        r = 0;
    else if (rep->type == REDIS_REPLY_ERROR)
        r = -EPROTO;
    else if (v->type != REDIS_REPLY_STRING)
        r = -EBADMSG;
    else if ((r = note_parse(h, v->str, v->len, n)) == 0)
        r = 1;
    freeReplyObject(rep);
    return r;
}

/* Takes the wanted notification: from the stash, else from the rank's list with BLPOP, stashing
 * the others. BLPOP waits at most SHOAL_RT_REDIS_POP_MS at a time, so that a peer that left
 * without sending what this rank waits for is noticed (-EPIPE) long before the deadline: after
 * an empty BLPOP, if the peer is gone, whatever it pushed is in the list and one LPOP pass over
 * the list settles it. */
static int wait_note(shoal_rt_redis_t *h, const want_t *w, note_t *out)
{
    char list[KEY_MAX], tmo[32];
    int r, gone = 0;
    note_t n, *s;

    for (note_t **pp = &h->stash; *pp != NULL; pp = &(*pp)->next) {
        if ((r = note_match(*pp, w)) == 0)
            continue;
        if (r < 0)
            return r;
        s = *pp;
        *pp = s->next;
        *out = *s;
        free(s);
        return 0;
    }
    key(h, list, "n:%d", h->rank);
    h->blame = -1;
    for (;;) {
        uint64_t now = shoal_util_now_ns(), left;

        if (h->arena != NULL && shoal_arena_failed(h->arena))
            return -ECONNABORTED;
        if (now + 1000000 >= h->deadline_ns)
            return -ETIMEDOUT;
        left = h->deadline_ns - now;
        if (left > SHOAL_RT_REDIS_POP_MS * 1000000ull)
            left = SHOAL_RT_REDIS_POP_MS * 1000000ull;
        snprintf(tmo, sizeof(tmo), "%.3f", (double)left / 1e9);
        if ((r = pop(h, list, gone ? NULL : tmo, &n)) < 0)
            return r;
        if (r == 0) {
            if (gone)
                return -EPIPE; /* the list is drained: what we wait for never came */
            gone = peer_gone(h, w->src);
            continue;
        }
        if ((r = note_match(&n, w)) < 0)
            return r;
        if (r == 1) {
            *out = n;
            h->blame = -1;
            return 0;
        }
        if ((s = malloc(sizeof(*s))) == NULL)
            return -ENOMEM;
        *s = n;
        s->next = h->stash;
        h->stash = s;
    }
}

/* len bytes that stay valid until destroy (a static byte for 0). */
static uint8_t *keep(shoal_rt_redis_t *h, uint64_t len)
{
    block_t *b;

    if (len == 0)
        return h->empty;
    if (len > SIZE_MAX - sizeof(*b) || (b = malloc(sizeof(*b) + (size_t)len)) == NULL)
        return NULL;
    b->next = h->blocks;
    h->blocks = b;
    return b->data;
}

static int keep_copy(shoal_rt_redis_t *h, const void *data, size_t len, shoal_buf *out)
{
    uint8_t *p = keep(h, len);

    if (p == NULL)
        return -ENOMEM;
    if (len > 0)
        memcpy(p, data, len);
    out->data = p;
    out->len = len;
    return 0;
}

/* GETs (GETDEL when del) the part under base into dst (len bytes). */
static int fetch(shoal_rt_redis_t *h, const char *base, uint64_t len, uint8_t *dst, int del)
{
    struct fetch f = {dst, len, nchunks(h, len), -1};

    if (len == 0)
        return 0;
    if (get(h, base, len, del) < 0)
        return -ENOMEM;
    return run(h, &f);
}

/* Starts a collective: its sequence number. */
static int begin(shoal_rt_redis_t *h)
{
    int r;

    h->blame = -1;
    if ((r = connected(h)) < 0)
        return r;
    if (h->arena != NULL && shoal_arena_failed(h->arena))
        return -ECONNABORTED;
    h->seq++;
    return 0;
}

static int bufs_valid(const shoal_buf *b, int n)
{
    if (b == NULL)
        return 0;
    for (int i = 0; i < n; i++)
        if ((b[i].data == NULL && b[i].len != 0) || b[i].len > PART_MAX)
            return 0;
    return 1;
}

/* ---- create / destroy ---- */

int shoal_rt_redis_create(shoal_rt_redis_t **out, const shoal_rt_redis_opts_t *o)
{
    shoal_rt_redis_t *h;
    uint64_t now = shoal_util_now_ns();

    *out = NULL;
    if (o->size < 1 || o->rank < 0 || o->rank >= o->size || o->fd < 0) {
        if (o->fd >= 0)
            close(o->fd);
        return -EINVAL;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL)
        goto nomem;
    h->fd = o->fd;
    h->rank = o->rank;
    h->size = o->size;
    h->arena = o->arena;
    h->arena_rank = o->arena_rank;
    h->local = o->local;
    h->blame = -1;
    h->chunk = o->chunk != 0 ? o->chunk : SHOAL_RT_REDIS_CHUNK;
    h->deadline_ns = o->deadline_ns != 0 ? o->deadline_ns : now + 3600ull * 1000000000u;
    snprintf(h->expire, sizeof(h->expire), "%" PRIu64,
             shoal_util_wall_ms() + (h->deadline_ns > now ? (h->deadline_ns - now) / 1000000 : 0) +
                 1);
    snprintf(h->prefix, sizeof(h->prefix), "shoal:%016" PRIx64 ":", o->group_id);
    h->sent = calloc((size_t)o->size, sizeof(*h->sent));
    h->rcvd = calloc((size_t)o->size, sizeof(*h->rcvd));
    h->rbuf = malloc(RBUF_SIZE);
    /* Wraps the socket without any system call: the context only holds the fd and the reader. */
    h->rc = redisConnectFd(o->fd);
    if (h->sent == NULL || h->rcvd == NULL || h->rbuf == NULL || h->rc == NULL)
        goto nomem;
    *out = h;
    return 0;
nomem:
    if (h != NULL && h->rc != NULL)
        h->fd = -1; /* redisFree closes it */
    shoal_rt_redis_destroy(h);
    if (h == NULL)
        close(o->fd);
    return -ENOMEM;
}

void shoal_rt_redis_destroy(shoal_rt_redis_t *h)
{
    if (h == NULL)
        return;
    if (h->rc != NULL)
        redisFree(h->rc);
    else if (h->fd >= 0)
        close(h->fd);
    while (h->stash != NULL) {
        note_t *n = h->stash;
        h->stash = n->next;
        free(n);
    }
    while (h->blocks != NULL) {
        block_t *b = h->blocks;
        h->blocks = b->next;
        free(b);
    }
    free(h->sent);
    free(h->rcvd);
    free(h->rbuf);
    free(h->ob);
    free(h->segs);
    free(h);
}

int shoal_rt_redis_rank(const shoal_rt_redis_t *h)
{
    return h->rank;
}

int shoal_rt_redis_size(const shoal_rt_redis_t *h)
{
    return h->size;
}

/* ---- collectives ---- */

int shoal_rt_redis_barrier(shoal_rt_redis_t *h)
{
    char k[KEY_MAX], note[NOTE_MAX];
    struct fetch f = {NULL, 0, 0, -1};
    note_t n;
    int r;

    if ((r = begin(h)) < 0)
        return fail(h, r);
    if (h->size == 1)
        return 0;
    /* Every rank counts itself in; the last one to arrive wakes the others. */
    key(h, k, "c:%u:bar", h->seq);
    if (cmds(h, 2, "INCR", k) < 0 || cmds(h, 3, "PEXPIREAT", k, h->expire) < 0)
        return fail(h, -ENOMEM);
    if ((r = run(h, &f)) < 0)
        return fail(h, r);
    if (f.after < 1 || f.after > h->size)
        return fail(h, -EPROTO);
    if (f.after < h->size) {
        r = wait_note(h, &(want_t){NOTE_COLL, h->seq, SHOAL_COLL_BARRIER, 0, -1}, &n);
        return r < 0 ? fail(h, r) : 0;
    }
    coll_note(note, h->seq, SHOAL_COLL_BARRIER, 0, h->rank, -1, 0, 0, 0);
    if (cmds(h, 2, "UNLINK", k) < 0)
        return fail(h, -ENOMEM);
    for (int p = 0; p < h->size; p++)
        if (p != h->rank && notify(h, p, note) < 0)
            return fail(h, -ENOMEM);
    return (r = run(h, NULL)) < 0 ? fail(h, r) : 0;
}

/* The root's half of a broadcast of collective seq: the part once, a reference count for the
 * size - 1 consumers, a notification to each. */
static int bc_send(shoal_rt_redis_t *h, unsigned kind, unsigned phase, int root, const void *data,
                   uint64_t len)
{
    char base[KEY_MAX], refs[KEY_MAX], cnt[24], note[NOTE_MAX];

    if (h->size == 1)
        return 0;
    key(h, base, "c:%u:%d:b", h->seq, root);
    key(h, refs, "c:%u:%d:r", h->seq, root);
    snprintf(cnt, sizeof(cnt), "%d", h->size - 1);
    if (len > 0 &&
        (put(h, base, data, len) < 0 || cmds(h, 5, "SET", refs, cnt, "PXAT", h->expire) < 0))
        return -ENOMEM;
    coll_note(note, h->seq, kind, phase, root, root, len, 0, 0);
    for (int p = 0; p < h->size; p++)
        if (p != root && notify(h, p, note) < 0)
            return -ENOMEM;
    return run(h, NULL);
}

/* A consumer's half: waits for the root's notification (of kind and phase), reads the part into
 * dst (NULL: runtime-owned memory; else it must be exactly want bytes) and counts itself out of
 * the reference count, deleting the part when it is the last reader. */
static int bc_recv(shoal_rt_redis_t *h, unsigned kind, unsigned phase, int root, uint8_t *dst,
                   uint64_t want, shoal_buf *out)
{
    char base[KEY_MAX], refs[KEY_MAX], k[CKEY_MAX];
    struct fetch f;
    note_t n;
    int r;

    if ((r = wait_note(h, &(want_t){NOTE_COLL, h->seq, kind, phase, root}, &n)) < 0)
        return r;
    if (n.root != root || (dst != NULL && n.len != want))
        return -EPROTO;
    if (dst == NULL && (dst = keep(h, n.len)) == NULL)
        return -ENOMEM;
    if (out != NULL)
        *out = (shoal_buf){dst, (size_t)n.len};
    if (n.len == 0)
        return 0;
    key(h, base, "c:%u:%d:b", h->seq, root);
    key(h, refs, "c:%u:%d:r", h->seq, root);
    f = (struct fetch){dst, n.len, nchunks(h, n.len), -1};
    if (get(h, base, n.len, 0) < 0 || cmds(h, 2, "DECR", refs) < 0)
        return -ENOMEM;
    if ((r = run(h, &f)) < 0)
        return r;
    if (f.after != 0)
        return f.after > 0 && f.after < h->size ? 0 : -EPROTO;
    if (cmds(h, 2, "UNLINK", refs) < 0)
        return -ENOMEM;
    for (uint64_t i = 0; i < f.n; i++) {
        snprintf(k, sizeof(k), "%s:%" PRIu64, base, i);
        if (cmds(h, 2, "UNLINK", k) < 0)
            return -ENOMEM;
    }
    return run(h, NULL);
}

int shoal_rt_redis_bcast(shoal_rt_redis_t *h, int root, const void *data, size_t len,
                         shoal_buf *out)
{
    int r;

    if (out == NULL || root < 0 || root >= h->size ||
        (h->rank == root && ((data == NULL && len != 0) || len > PART_MAX)))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return fail(h, r);
    if (h->rank == root) {
        if ((r = bc_send(h, SHOAL_COLL_BCAST, 0, root, data, len)) < 0 ||
            (r = keep_copy(h, data, len, out)) < 0)
            return fail(h, r);
        return 0;
    }
    if ((r = bc_recv(h, SHOAL_COLL_BCAST, 0, root, NULL, 0, out)) < 0)
        return fail(h, r);
    return 0;
}

/* Reads the part src sent this rank in the current collective (single consumer: GETDEL). */
static int p2p_recv(shoal_rt_redis_t *h, const note_t *n, shoal_buf *out)
{
    char base[KEY_MAX];
    uint8_t *dst = keep(h, n->len);
    int r;

    if (dst == NULL)
        return -ENOMEM;
    key(h, base, "c:%u:%d:%d", h->seq, n->src, h->rank);
    if ((r = fetch(h, base, n->len, dst, 1)) < 0)
        return r;
    *out = (shoal_buf){dst, (size_t)n->len};
    return 0;
}

/* Appends the part for dst of the current collective and its notification. */
static int p2p_send(shoal_rt_redis_t *h, unsigned kind, int dst, int root, const void *data,
                    uint64_t len, uint64_t count, uint32_t dtop)
{
    char base[KEY_MAX], note[NOTE_MAX];

    key(h, base, "c:%u:%d:%d", h->seq, h->rank, dst);
    coll_note(note, h->seq, kind, 0, h->rank, root, len, count, dtop);
    if (put(h, base, data, len) < 0 || notify(h, dst, note) < 0)
        return -ENOMEM;
    return 0;
}

int shoal_rt_redis_scatter(shoal_rt_redis_t *h, int root, const shoal_buf *parts, shoal_buf *out)
{
    note_t n;
    int r;

    if (out == NULL || root < 0 || root >= h->size ||
        (h->rank == root && !bufs_valid(parts, h->size)))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return fail(h, r);
    if (h->rank == root) {
        for (int p = 0; p < h->size; p++)
            if (p != root &&
                p2p_send(h, SHOAL_COLL_SCATTER, p, root, parts[p].data, parts[p].len, 0, 0) < 0)
                return fail(h, -ENOMEM);
        if ((r = run(h, NULL)) < 0 ||
            (r = keep_copy(h, parts[root].data, parts[root].len, out)) < 0)
            return fail(h, r);
        return 0;
    }
    if ((r = wait_note(h, &(want_t){NOTE_COLL, h->seq, SHOAL_COLL_SCATTER, 0, root}, &n)) < 0 ||
        (r = n.root == root ? 0 : -EPROTO) < 0 || (r = p2p_recv(h, &n, out)) < 0)
        return fail(h, r);
    return 0;
}

int shoal_rt_redis_gather(shoal_rt_redis_t *h, int root, const void *data, size_t len,
                          shoal_buf *parts)
{
    note_t n;
    int r;

    if (root < 0 || root >= h->size || (data == NULL && len != 0) || len > PART_MAX ||
        (h->rank == root && parts == NULL))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return fail(h, r);
    if (h->rank != root) {
        if (p2p_send(h, SHOAL_COLL_GATHER, root, root, data, len, 0, 0) < 0)
            return fail(h, -ENOMEM);
        return (r = run(h, NULL)) < 0 ? fail(h, r) : 0;
    }
    for (int p = 0; p < h->size; p++) {
        if (p == root)
            r = keep_copy(h, data, len, &parts[p]);
        else if ((r = wait_note(h, &(want_t){NOTE_COLL, h->seq, SHOAL_COLL_GATHER, 0, p}, &n)) == 0)
            r = n.root != root ? -EPROTO : p2p_recv(h, &n, &parts[p]);
        if (r < 0)
            return fail(h, r);
    }
    return 0;
}

int shoal_rt_redis_shuffle(shoal_rt_redis_t *h, const shoal_buf *send, shoal_buf *recv)
{
    note_t n;
    int r;

    if (recv == NULL || !bufs_valid(send, h->size))
        return fail(h, -EINVAL);
    if ((r = begin(h)) < 0)
        return fail(h, r);
    for (int p = 0; p < h->size; p++)
        if (p != h->rank &&
            p2p_send(h, SHOAL_COLL_SHUFFLE, p, -1, send[p].data, send[p].len, 0, 0) < 0)
            return fail(h, -ENOMEM);
    if ((r = run(h, NULL)) < 0)
        return fail(h, r);
    for (int p = 0; p < h->size; p++) {
        if (p == h->rank)
            r = keep_copy(h, send[p].data, send[p].len, &recv[p]);
        else if ((r = wait_note(h, &(want_t){NOTE_COLL, h->seq, SHOAL_COLL_SHUFFLE, 0, p}, &n)) ==
                 0)
            r = p2p_recv(h, &n, &recv[p]);
        if (r < 0)
            return fail(h, r);
    }
    return 0;
}

/* reduce and allreduce: every rank's vector to root (rank 0 for allreduce), combined there in
 * rank order; allreduce then broadcasts the result (phase 1). */
static int reduce(shoal_rt_redis_t *h, unsigned kind, int root, const void *in, void *out,
                  size_t count, shoal_dtype type, shoal_op op)
{
    size_t esz = shoal_coll_dtype_size((int)type);
    int wants_result = kind == SHOAL_COLL_ALLREDUCE || h->rank == root;
    int to = kind == SHOAL_COLL_ALLREDUCE ? 0 : root;
    uint8_t *acc = NULL, *tmp = NULL;
    uint32_t dtop;
    uint64_t len;
    int r;

    if (esz == 0 || (unsigned)op > SHOAL_MAX ||
        (kind == SHOAL_COLL_REDUCE && (root < 0 || root >= h->size)))
        return fail(h, -EINVAL);
    if (count > PART_MAX / esz)
        return fail(h, -ENOMEM);
    len = (uint64_t)count * esz;
    if (len != 0 && (in == NULL || (wants_result && out == NULL)))
        return fail(h, -EINVAL);
    dtop = (uint32_t)type | (uint32_t)op << 8;
    if ((r = begin(h)) < 0)
        return fail(h, r);
    if (h->rank != to) {
        if (p2p_send(h, kind, to, root, in, len, count, dtop) < 0)
            return fail(h, -ENOMEM);
        if ((r = run(h, NULL)) < 0)
            return fail(h, r);
    } else {
        if (len != 0 && ((acc = malloc(len)) == NULL || (tmp = malloc(len)) == NULL)) {
            r = -ENOMEM;
            goto out;
        }
        for (int p = 0; p < h->size; p++) {
            const uint8_t *src = in;
            char base[KEY_MAX];
            note_t n;

            if (p != h->rank) {
                if ((r = wait_note(h, &(want_t){NOTE_COLL, h->seq, kind, 0, p}, &n)) < 0)
                    goto out;
                if (n.root != root || n.count != count || n.dtop != dtop || n.len != len) {
                    r = -EPROTO;
                    goto out;
                }
                key(h, base, "c:%u:%d:%d", h->seq, p, h->rank);
                if ((r = fetch(h, base, len, tmp, 1)) < 0)
                    goto out;
                src = tmp;
            }
            if (len == 0)
                continue;
            if (p == 0)
                memcpy(acc, src, len);
            else
                shoal_coll_combine(acc, src, count, type, op);
        }
        if (len != 0)
            memcpy(out, acc, len);
    }
    r = 0;
    if (kind == SHOAL_COLL_ALLREDUCE)
        r = h->rank == 0 ? bc_send(h, kind, 1, 0, out, len)
                         : bc_recv(h, kind, 1, 0, out, len, NULL);
out:
    free(acc);
    free(tmp);
    return r < 0 ? fail(h, r) : 0;
}

int shoal_rt_redis_reduce(shoal_rt_redis_t *h, int root, const void *in, void *out, size_t count,
                          shoal_dtype type, shoal_op op)
{
    return reduce(h, SHOAL_COLL_REDUCE, root, in, out, count, type, op);
}

int shoal_rt_redis_allreduce(shoal_rt_redis_t *h, const void *in, void *out, size_t count,
                             shoal_dtype type, shoal_op op)
{
    return reduce(h, SHOAL_COLL_ALLREDUCE, -1, in, out, count, type, op);
}

/* ---- send / recv ---- */

int shoal_rt_redis_send(shoal_rt_redis_t *h, int dst, const void *data, size_t len)
{
    char base[KEY_MAX], note[NOTE_MAX];
    int r;

    if (dst < 0 || dst >= h->size || (data == NULL && len != 0) || len > PART_MAX)
        return -EINVAL;
    if ((r = connected(h)) < 0)
        return r;
    if (h->arena != NULL && shoal_arena_failed(h->arena))
        return -ECONNABORTED;
    key(h, base, "m:%d:%d:%u", h->rank, dst, h->sent[dst]);
    snprintf(note, sizeof(note), "M %u %d %zu", h->sent[dst], h->rank, len);
    if (put(h, base, data, len) < 0 || notify(h, dst, note) < 0)
        return -ENOMEM;
    if ((r = run(h, NULL)) < 0)
        return r;
    h->sent[dst]++;
    return 0;
}

int shoal_rt_redis_recv(shoal_rt_redis_t *h, int src, shoal_buf *out)
{
    char base[KEY_MAX];
    uint8_t *dst;
    note_t n;
    int r;

    if (src < 0 || src >= h->size || out == NULL)
        return -EINVAL;
    /* Nobody else sends as this rank: waiting would never end. */
    if (src == h->rank && h->sent[src] == h->rcvd[src])
        return -EDEADLK;
    if ((r = connected(h)) < 0)
        return r;
    if (h->arena != NULL && shoal_arena_failed(h->arena))
        return -ECONNABORTED;
    if ((r = wait_note(h, &(want_t){NOTE_MSG, h->rcvd[src], 0, 0, src}, &n)) < 0)
        return r == -EBADMSG ? fail(h, r) : r;
    if ((dst = keep(h, n.len)) == NULL)
        return -ENOMEM;
    key(h, base, "m:%d:%d:%u", src, h->rank, h->rcvd[src]);
    if ((r = fetch(h, base, n.len, dst, 1)) < 0)
        return r == -EBADMSG ? fail(h, r) : r;
    h->rcvd[src]++;
    *out = (shoal_buf){dst, (size_t)n.len};
    return 0;
}
