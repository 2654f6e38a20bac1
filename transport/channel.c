/*
 * channel - see channel.h for the layout, the doorbell protocol and the trust model.
 */
#include "channel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "common/util.h"

#define PAGE_ALIGN(x)                                                                              \
    (((uint64_t)(x) + SHOAL_CHANNEL_PAGE - 1) & ~(uint64_t)(SHOAL_CHANNEL_PAGE - 1))

void shoal_channel_layout(uint64_t body_max, shoal_channel_layout_t *lay)
{
    uint64_t off = SHOAL_CHANNEL_PAGE;

    body_max = PAGE_ALIGN(body_max);
    memset(lay, 0, sizeof(*lay));
    lay->body_max = body_max;
    lay->down_off = off;
    lay->down_cap = SHOAL_CHANNEL_DOWN_CAP;
    off += lay->down_cap;
    lay->up_off = off;
    lay->up_cap = SHOAL_CHANNEL_UP_CAP;
    off += lay->up_cap;
    lay->meta_off = off;
    lay->meta_cap = PAGE_ALIGN(SHOAL_CHANNEL_META_CAP);
    off += lay->meta_cap;
    lay->in_off = off;
    lay->in_cap = body_max;
    off += lay->in_cap;
    lay->out_off = off;
    lay->out_cap = body_max;
    off += lay->out_cap;
    /* A call's input and its result side by side, with room for the padding between them. */
    lay->call_off = off;
    lay->call_cap = 2 * body_max + SHOAL_CHANNEL_PAGE;
    off += lay->call_cap;
    lay->size = off;
}

static void set_pointers(shoal_channel_t *ch)
{
    ch->hdr = (shoal_channel_hdr_t *)ch->base;
    ch->meta = ch->base + ch->lay.meta_off;
    ch->in = ch->base + ch->lay.in_off;
    ch->out = ch->base + ch->lay.out_off;
    ch->call = ch->base + ch->lay.call_off;
}

static int attach_rings(shoal_channel_t *ch)
{
    shoal_channel_hdr_t *h = ch->hdr;
    uint8_t *down = ch->base + ch->lay.down_off, *up = ch->base + ch->lay.up_off;
    int err;

    if (ch->role == SHOAL_CHANNEL_WORKER) {
        if ((err = shoal_ring_attach_producer(&ch->tx, &h->down, down, ch->lay.down_cap)) < 0)
            return err;
        return shoal_ring_attach_consumer(&ch->rx, &h->up, up, ch->lay.up_cap);
    }
    if ((err = shoal_ring_attach_producer(&ch->tx, &h->up, up, ch->lay.up_cap)) < 0)
        return err;
    return shoal_ring_attach_consumer(&ch->rx, &h->down, down, ch->lay.down_cap);
}

int shoal_channel_create(shoal_channel_t *ch, uint64_t body_max)
{
    void *base;
    int err;

    memset(ch, 0, sizeof(*ch));
    ch->fd = -1;
    ch->role = SHOAL_CHANNEL_WORKER;
    shoal_channel_layout(body_max, &ch->lay);
    if ((ch->fd = memfd_create("shoal-channel", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
        return -errno;
    if (ftruncate(ch->fd, (off_t)ch->lay.size) < 0)
        goto fail_errno;
    /* The instance must not be able to shrink the file under the worker's mapping (SIGBUS). */
    if (fcntl(ch->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        goto fail_errno;
    base = mmap(NULL, ch->lay.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, ch->fd, 0);
    if (base == MAP_FAILED)
        goto fail_errno;
    ch->base = base;
    set_pointers(ch);
    ch->hdr->magic = SHOAL_CHANNEL_MAGIC;
    ch->hdr->version = SHOAL_CHANNEL_VERSION;
    ch->hdr->layout = ch->lay;
    if ((err = attach_rings(ch)) < 0)
        goto fail;
    return 0;
fail_errno:
    err = -errno;
fail:
    shoal_channel_close(ch);
    return err;
}

static int layout_valid(const shoal_channel_layout_t *l, uint64_t file_size)
{
    shoal_channel_layout_t want;

    shoal_channel_layout(l->body_max, &want);
    return memcmp(&want, l, sizeof(want)) == 0 && l->size == file_size;
}

int shoal_channel_open(shoal_channel_t *ch, int fd)
{
    shoal_channel_hdr_t *h;
    struct stat st;
    void *base;
    int err;

    memset(ch, 0, sizeof(*ch));
    ch->fd = fd;
    ch->role = SHOAL_CHANNEL_INSTANCE;
    if (fstat(fd, &st) < 0)
        goto fail_errno;
    if ((uint64_t)st.st_size < SHOAL_CHANNEL_PAGE) {
        err = -EPROTO;
        goto fail;
    }
    base =
        mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (base == MAP_FAILED)
        goto fail_errno;
    ch->base = base;
    ch->lay.size = (uint64_t)st.st_size;
    h = (shoal_channel_hdr_t *)base;
    if (h->magic != SHOAL_CHANNEL_MAGIC || h->version != SHOAL_CHANNEL_VERSION ||
        !layout_valid(&h->layout, (uint64_t)st.st_size)) {
        err = -EPROTO;
        goto fail;
    }
    ch->lay = h->layout;
    set_pointers(ch);
    if ((err = attach_rings(ch)) < 0)
        goto fail;
    return 0;
fail_errno:
    err = -errno;
fail:
    shoal_channel_close(ch);
    return err;
}

void shoal_channel_close(shoal_channel_t *ch)
{
    if (ch->base != NULL)
        munmap(ch->base, ch->lay.size);
    if (ch->fd >= 0)
        close(ch->fd);
    ch->base = NULL;
    ch->hdr = NULL;
    ch->fd = -1;
}

int shoal_channel_send(shoal_channel_t *ch, uint16_t type, const struct iovec *iov, int n)
{
    return shoal_ring_pushv(&ch->tx, type, iov, n);
}

int shoal_channel_recv(shoal_channel_t *ch, shoal_ring_rec_t *rec, void *buf, size_t size)
{
    return shoal_ring_pop(&ch->rx, rec, buf, size);
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val)
{
    /* Not FUTEX_PRIVATE_FLAG: the word is shared between processes. */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, NULL, NULL, 0);
}

/* Bumps the futex word bell and wakes its one sleeper if *sleeping says there is one. The fence
 * orders what the caller published (a push, freed space) and the bump before reading *sleeping;
 * it pairs with the sleeper's fence between setting *sleeping and re-checking its condition, so
 * either we see the flag or the sleeper sees our change. */
static void ring_bell(_Atomic uint32_t *bell, _Atomic uint32_t *sleeping)
{
    atomic_fetch_add_explicit(bell, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(sleeping, memory_order_relaxed))
        futex(bell, FUTEX_WAKE, 1);
}

void shoal_channel_wake_instance(shoal_channel_t *ch)
{
    /* Pairs with shoal_channel_wait_down. */
    ring_bell(&ch->hdr->down_bell, &ch->hdr->down_sleeping);
}

void shoal_channel_arm(shoal_channel_t *ch)
{
    atomic_store_explicit(&ch->hdr->up_armed, 1, memory_order_relaxed);
    /* Orders the arming before our reads of the up ring's head; pairs with the fence in
     * shoal_channel_notify between the push and reading up_armed. */
    atomic_thread_fence(memory_order_seq_cst);
}

void shoal_channel_release_space(shoal_channel_t *ch)
{
    /* Pairs with shoal_channel_send_wait. */
    ring_bell(&ch->hdr->up_space, &ch->hdr->up_space_waiting);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

void shoal_channel_wait_down(shoal_channel_t *ch, uint64_t spin_ns)
{
    shoal_channel_hdr_t *h = ch->hdr;
    uint64_t deadline = 0;
    unsigned i;

    for (i = 0;; i++) {
        if (shoal_ring_readable(&ch->rx))
            return;
        if ((i & 63) != 0) {
            cpu_relax();
            continue;
        }
        if (deadline == 0)
            deadline = shoal_util_now_ns() + spin_ns;
        else if (shoal_util_now_ns() >= deadline)
            break;
    }
    for (;;) {
        uint32_t bell = atomic_load_explicit(&h->down_bell, memory_order_relaxed);
        atomic_store_explicit(&h->down_sleeping, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        if (shoal_ring_readable(&ch->rx))
            break;
        /* Returns at once (EAGAIN) if the worker bumped the bell since we read it. */
        futex(&h->down_bell, FUTEX_WAIT, bell);
        if (shoal_ring_readable(&ch->rx))
            break;
    }
    atomic_store_explicit(&h->down_sleeping, 0, memory_order_relaxed);
}

int shoal_channel_notify(shoal_channel_t *ch, int ctl_fd, int force)
{
    shoal_channel_hdr_t *h = ch->hdr;
    char b = 'D';

    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_exchange_explicit(&h->up_armed, 0, memory_order_relaxed) && !force)
        return 0;
    for (;;) {
        if (send(ctl_fd, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1)
            return 0;
        if (errno == EINTR)
            continue;
        /* A full socket already holds doorbells the worker has not read yet. */
        return errno == EAGAIN ? 0 : -errno;
    }
}

int shoal_channel_send_wait(shoal_channel_t *ch, int ctl_fd, uint16_t type, const struct iovec *iov,
                            int n)
{
    shoal_channel_hdr_t *h = ch->hdr;
    int err;

    for (;;) {
        uint32_t space = atomic_load_explicit(&h->up_space, memory_order_relaxed);
        atomic_store_explicit(&h->up_space_waiting, 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_seq_cst);
        err = shoal_ring_pushv(&ch->tx, type, iov, n);
        if (err != -EAGAIN) {
            atomic_store_explicit(&h->up_space_waiting, 0, memory_order_relaxed);
            return err;
        }
        if ((err = shoal_channel_notify(ch, ctl_fd, 1)) < 0)
            return err;
        futex(&h->up_space, FUTEX_WAIT, space);
    }
}

int shoal_channel_punch(shoal_channel_t *ch, uint64_t off, uint64_t len)
{
    if (off > ch->lay.size || len > ch->lay.size - off)
        return -EINVAL;
    if (fallocate(ch->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0)
        return -errno;
    return 0;
}

/* ---- groups ---- */

uint64_t shoal_channel_group_data(int nranks, uint32_t memory_mb)
{
    uint64_t want = (uint64_t)(nranks > 0 ? nranks : 1) * ((uint64_t)memory_mb << 20);

    if (want < SHOAL_CHANNEL_GROUP_DATA_MIN)
        return SHOAL_CHANNEL_GROUP_DATA_MIN;
    return want > SHOAL_CHANNEL_GROUP_DATA_MAX ? SHOAL_CHANNEL_GROUP_DATA_MAX : want;
}

uint64_t shoal_channel_group_map_max(uint32_t memory_mb)
{
    /* Both the data capacity and the control area grow with the number of ranks. */
    return shoal_arena_size(SHOAL_ARENA_MAX_RANKS,
                            shoal_channel_group_data(SHOAL_ARENA_MAX_RANKS, memory_mb));
}

ssize_t shoal_channel_ctl_recv(int sock, void *buf, size_t size, int *fds, int maxfds, int *nfds)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {buf, size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;
    ssize_t n;

    *nfds = 0;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < maxfds)
                fds[(*nfds)++] = fd;
            else
                close(fd);
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -EMSGSIZE;
    return n;
}

/* ---- decoding what the instance sent ---- */

/* off + len <= cap without overflow. */
static int range_ok(uint64_t off, uint64_t len, uint64_t cap)
{
    return off <= cap && len <= cap - off;
}

int shoal_channel_decode_up(const shoal_channel_layout_t *lay, uint16_t type, const uint8_t *p,
                            size_t len, shoal_up_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    switch (type) {
    case SHOAL_MSG_DONE: {
        shoal_msg_done_t *d = &m->u.done.m;
        if (len < sizeof(*d))
            return -EPROTO;
        memcpy(d, p, sizeof(*d));
        if (d->err_len > SHOAL_CHANNEL_ERR_MAX || d->hdr_len > SHOAL_CHANNEL_HDRS_MAX ||
            (uint64_t)sizeof(*d) + d->err_len + d->hdr_len != len)
            return -EPROTO;
        if (d->status != 0 && (d->status < 100 || d->status > 599))
            return -EPROTO;
        if (!(d->flags & SHOAL_DONE_TOO_LARGE) && d->out_len > lay->out_cap)
            return -EPROTO;
        if (d->flags & ~(uint32_t)(SHOAL_DONE_TOO_LARGE | SHOAL_DONE_NO_GROUP))
            return -EPROTO;
        /* High-water marks only steer punching: clamp rather than reject. */
        if (d->out_hw > lay->out_cap)
            d->out_hw = lay->out_cap;
        if (d->call_hw > lay->call_cap)
            d->call_hw = lay->call_cap;
        m->u.done.err = (const char *)p + sizeof(*d);
        m->u.done.hdrs = m->u.done.err + d->err_len;
        if (shoal_kv_validate_headers(m->u.done.hdrs, d->hdr_len) < 0)
            return -EPROTO;
        return 0;
    }
    case SHOAL_MSG_LOG:
        if (len < sizeof(shoal_msg_log_t) ||
            len - sizeof(shoal_msg_log_t) > SHOAL_CHANNEL_LOG_LINE_MAX)
            return -EPROTO;
        memcpy(&m->u.log.seq, p, sizeof(uint64_t));
        m->u.log.text = (const char *)p + sizeof(shoal_msg_log_t);
        m->u.log.len = len - sizeof(shoal_msg_log_t);
        return 0;
    case SHOAL_MSG_CALL: {
        shoal_msg_call_t *c = &m->u.call.m;
        size_t i;
        if (len < sizeof(*c))
            return -EPROTO;
        memcpy(c, p, sizeof(*c));
        if (c->name_len == 0 || c->name_len > SHOAL_CHANNEL_NAME_MAX ||
            len != sizeof(*c) + c->name_len || c->group > SHOAL_CHANNEL_GROUP_MAX)
            return -EPROTO;
        if (!range_ok(c->in_off, c->in_len, lay->call_cap) ||
            !range_ok(c->out_off, c->out_cap, lay->call_cap))
            return -EPROTO;
        /* The runtime never sends more than a body's worth; a larger input would exceed the
         * controller's frame limit if the call were forwarded, and cost the worker its link. */
        if (c->in_len > lay->body_max)
            return -EPROTO;
        /* The result may not overwrite the input the worker still reads. */
        if (c->in_len > 0 && c->out_cap > 0 && c->out_off < c->in_off + c->in_len &&
            c->in_off < c->out_off + c->out_cap)
            return -EPROTO;
        memcpy(m->u.call.name, p + sizeof(*c), c->name_len);
        m->u.call.name[c->name_len] = '\0';
        for (i = 0; i < c->name_len; i++)
            if (m->u.call.name[i] == '\0')
                return -EPROTO;
        return 0;
    }
    case SHOAL_MSG_XSEND:
    case SHOAL_MSG_XRECV: {
        shoal_msg_xfer_t *x = &m->u.xfer;
        if (len != sizeof(*x))
            return -EPROTO;
        memcpy(x, p, sizeof(*x));
        /* The arena's bounds are the worker's group's to check; here only what is wrong in any
         * group: a node index past the largest group, a range that wraps, a nonzero pad. */
        if (x->node >= SHOAL_CHANNEL_GROUP_MAX || x->pad != 0 || x->len > UINT64_MAX - x->off)
            return -EPROTO;
        if (type == SHOAL_MSG_XRECV)
            x->off = x->len = 0; /* ignored, as channel.h says */
        return 0;
    }
    case SHOAL_MSG_UNLINKED: {
        shoal_msg_unlink_t *u = &m->u.unlink;
        if (len != sizeof(*u))
            return -EPROTO;
        memcpy(u, p, sizeof(*u));
        if ((u->flags & ~SHOAL_UNLINKED_VIOLATION) != 0 || u->pad != 0)
            return -EPROTO;
        return 0;
    }
    default:
        return -EPROTO;
    }
}

/* ---- key/value blobs ---- */

int shoal_kv_append(char *blob, size_t cap, size_t *len, const char *key, size_t klen,
                    const char *val, size_t vlen)
{
    if (memchr(key, '\0', klen) != NULL || memchr(val, '\0', vlen) != NULL)
        return -EINVAL;
    if (*len > cap || klen + vlen + 2 > cap - *len)
        return -ENOSPC;
    memcpy(blob + *len, key, klen);
    blob[*len + klen] = '\0';
    memcpy(blob + *len + klen + 1, val, vlen);
    blob[*len + klen + 1 + vlen] = '\0';
    *len += klen + vlen + 2;
    return 0;
}

int shoal_kv_next(const char *blob, size_t len, size_t *off, const char **key, const char **val)
{
    const char *k, *v, *end;

    if (*off >= len)
        return 0;
    k = blob + *off;
    if ((end = memchr(k, '\0', len - *off)) == NULL)
        return -EPROTO;
    v = end + 1;
    if ((size_t)(v - blob) >= len || (end = memchr(v, '\0', len - (size_t)(v - blob))) == NULL)
        return -EPROTO;
    *key = k;
    *val = v;
    *off = (size_t)(end + 1 - blob);
    return 1;
}

const char *shoal_kv_get(const char *blob, size_t len, const char *key)
{
    const char *k, *v;
    size_t off = 0;
    int header = strncmp(key, "header:", 7) == 0;

    while (shoal_kv_next(blob, len, &off, &k, &v) == 1) {
        if (header ? (strncmp(k, "header:", 7) == 0 && strcasecmp(k + 7, key + 7) == 0)
                   : strcmp(k, key) == 0)
            return v;
    }
    return NULL;
}

int shoal_header_name_valid(const char *name, size_t len)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    size_t i;

    if (len == 0 || len > 128)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != '\0' && strchr(tchar, c) != NULL)))
            return 0;
    }
    return 1;
}

int shoal_header_value_valid(const char *value, size_t len)
{
    size_t i;

    if (len > 8192)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return 0;
    }
    return 1;
}

int shoal_kv_validate_headers(const char *blob, size_t len)
{
    const char *k, *v;
    size_t off = 0, n = 0, i, klen;
    int r;

    while ((r = shoal_kv_next(blob, len, &off, &k, &v)) == 1) {
        klen = strlen(k);
        if (++n > SHOAL_CHANNEL_HDRS_COUNT || klen <= 7 || strncmp(k, "header:", 7) != 0 ||
            !shoal_header_name_valid(k + 7, klen - 7) || !shoal_header_value_valid(v, strlen(v)))
            return -EPROTO;
        for (i = 7; i < klen; i++)
            if (k[i] >= 'A' && k[i] <= 'Z')
                return -EPROTO;
    }
    return r < 0 ? -EPROTO : 0;
}

int shoal_kind_errno(const char *kind)
{
    static const struct {
        const char *kind;
        int err;
    } map[] = {{"timeout", -ETIMEDOUT}, {"crash", -ECONNRESET}, {"function", -EREMOTEIO},
               {"not_found", -ENOENT},  {"overload", -EBUSY},   {"too_large", -EFBIG}};
    size_t i;

    for (i = 0; kind != NULL && i < sizeof(map) / sizeof(map[0]); i++)
        if (strcmp(kind, map[i].kind) == 0)
            return map[i].err;
    return -EIO;
}
