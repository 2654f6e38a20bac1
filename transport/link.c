/*
 * link - see link.h for the layout, the doorbell protocol and the trust model.
 */
#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

#define PAGE_ALIGN(x) (((uint64_t)(x) + SHOAL_LINK_PAGE - 1) & ~(uint64_t)(SHOAL_LINK_PAGE - 1))
/* The largest response area anyone makes: a body's worth beyond the default is refused. */
#define OUT_CAP_LIMIT (1ull << 40)

struct shoal_link {
    int fd;
    uint8_t *base;
    shoal_link_layout_t lay; /* this side's own copy */
    shoal_link_hdr_t *hdr;
    uint64_t seq; /* caller: last request sent; callee: last request answered */
};

void shoal_link_layout(uint64_t in_cap, uint64_t out_cap, shoal_link_layout_t *lay)
{
    memset(lay, 0, sizeof(*lay));
    lay->in_off = SHOAL_LINK_PAGE;
    lay->in_cap = PAGE_ALIGN(in_cap);
    lay->out_off = lay->in_off + lay->in_cap;
    lay->out_cap = PAGE_ALIGN(out_cap);
    lay->size = lay->out_off + lay->out_cap;
}

int shoal_link_layout_check(const shoal_link_layout_t *lay, uint64_t out_max, uint64_t file_size)
{
    shoal_link_layout_t want;

    if (lay->in_cap == 0 || lay->in_cap > SHOAL_LINK_IN_CAP || lay->out_cap == 0 ||
        lay->out_cap > out_max || lay->out_cap > OUT_CAP_LIMIT)
        return -EPROTO;
    shoal_link_layout(lay->in_cap, lay->out_cap, &want);
    if (memcmp(&want, lay, sizeof(want)) != 0 || lay->size != file_size)
        return -EPROTO;
    return 0;
}

static int map(shoal_link_t *l)
{
    void *base =
        mmap(NULL, l->lay.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, l->fd, 0);

    if (base == MAP_FAILED)
        return -errno;
    l->base = base;
    l->hdr = (shoal_link_hdr_t *)l->base;
    return 0;
}

int shoal_link_create(shoal_link_t **lp, uint64_t in_cap, uint64_t out_cap)
{
    shoal_link_t *l;
    int err;

    *lp = NULL;
    if (in_cap == 0 || in_cap > SHOAL_LINK_IN_CAP || out_cap == 0 || out_cap > OUT_CAP_LIMIT)
        return -EINVAL;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return -ENOMEM;
    shoal_link_layout(in_cap, out_cap, &l->lay);
    if ((l->fd = memfd_create("shoal-link", MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
        goto fail_errno;
    if (ftruncate(l->fd, (off_t)l->lay.size) < 0)
        goto fail_errno;
    /* Neither peer may shrink the file under the other's mapping (SIGBUS) or grow it. */
    if (fcntl(l->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
        goto fail_errno;
    if ((err = map(l)) < 0)
        goto fail;
    l->hdr->magic = SHOAL_LINK_MAGIC;
    l->hdr->version = SHOAL_LINK_VERSION;
    l->hdr->layout = l->lay;
    *lp = l;
    return 0;
fail_errno:
    err = -errno;
fail:
    shoal_link_destroy(l);
    return err;
}

int shoal_link_open(shoal_link_t **lp, int fd, const shoal_link_layout_t *lay, uint64_t out_max)
{
    shoal_link_t *l = NULL;
    struct stat st;
    int err;

    *lp = NULL;
    if (fstat(fd, &st) < 0) {
        err = -errno;
        goto fail;
    }
    /* The worker sealed the size, so what fstat says now stays true for the mapping's life. */
    if ((err = shoal_link_layout_check(lay, out_max, (uint64_t)st.st_size)) < 0)
        goto fail;
    if ((l = calloc(1, sizeof(*l))) == NULL) {
        err = -ENOMEM;
        goto fail;
    }
    l->fd = fd;
    fd = -1;
    l->lay = *lay;
    if ((err = map(l)) < 0)
        goto fail;
    /* Both sides start at seq 0; the words may already be nonzero only if a peer wrote early,
     * which the first poll catches. */
    *lp = l;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    shoal_link_destroy(l);
    return err;
}

void shoal_link_destroy(shoal_link_t *l)
{
    if (l == NULL)
        return;
    if (l->base != NULL)
        munmap(l->base, l->lay.size);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}

int shoal_link_fd(const shoal_link_t *l)
{
    return l->fd;
}

const shoal_link_layout_t *shoal_link_get_layout(const shoal_link_t *l)
{
    return &l->lay;
}

shoal_link_hdr_t *shoal_link_hdr(shoal_link_t *l)
{
    return l->hdr;
}

uint8_t *shoal_link_in(shoal_link_t *l)
{
    return l->base + l->lay.in_off;
}

uint8_t *shoal_link_out(shoal_link_t *l)
{
    return l->base + l->lay.out_off;
}

/* ---- futexes (shared, not private: the words live in a memfd mapped by several processes) ---- */

void shoal_link_futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

#ifndef __NR_futex_waitv
#define __NR_futex_waitv 449
#endif

void shoal_link_futex_wait2(_Atomic uint32_t *w1, uint32_t v1, _Atomic uint32_t *w2, uint32_t v2)
{
    static int no_waitv;
    struct timespec ms = {0, 1000000};

    if (w2 != NULL && !no_waitv) {
        struct futex_waitv wv[2];
        memset(wv, 0, sizeof(wv));
        wv[0].val = v1;
        wv[0].uaddr = (uint64_t)(uintptr_t)w1;
        wv[0].flags = FUTEX_32;
        wv[1].val = v2;
        wv[1].uaddr = (uint64_t)(uintptr_t)w2;
        wv[1].flags = FUTEX_32;
        if (syscall(__NR_futex_waitv, wv, 2, 0, NULL, CLOCK_MONOTONIC) >= 0 || errno != ENOSYS)
            return;
        no_waitv = 1;
    }
    syscall(SYS_futex, (uint32_t *)w1, FUTEX_WAIT, v1, w2 != NULL ? &ms : NULL, NULL, 0);
}

/* ---- records ---- */

/* One copy of each field with an atomic load: the peer may change the record while we read it,
 * and we must act on exactly the values we checked. */
static void load_req(const shoal_link_req_t *p, shoal_link_req_t *r)
{
    r->seq = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
    r->in_len = __atomic_load_n(&p->in_len, __ATOMIC_RELAXED);
}

static void load_resp(const shoal_link_resp_t *p, shoal_link_resp_t *r)
{
    r->seq = __atomic_load_n(&p->seq, __ATOMIC_RELAXED);
    r->err = __atomic_load_n(&p->err, __ATOMIC_RELAXED);
    r->err_len = __atomic_load_n(&p->err_len, __ATOMIC_RELAXED);
    r->out_len = __atomic_load_n(&p->out_len, __ATOMIC_RELAXED);
}

int shoal_link_check_req(const shoal_link_layout_t *lay, const shoal_link_req_t *rq,
                         uint64_t expect_seq)
{
    if (rq->seq != expect_seq || rq->in_len > lay->in_cap)
        return -EPROTO;
    return 0;
}

int shoal_link_check_resp(const shoal_link_layout_t *lay, const shoal_link_resp_t *rs,
                          uint64_t expect_seq)
{
    if (rs->seq != expect_seq)
        return -EPROTO;
    if (rs->err == 0)
        return rs->err_len == 0 && rs->out_len <= lay->out_cap ? 0 : -EPROTO;
    if (rs->err > 0 || rs->err < -4095 || rs->out_len != 0 ||
        rs->err_len > SHOAL_LINK_MSG_MAX * 4 || rs->err_len > lay->out_cap)
        return -EPROTO;
    return 0;
}

int shoal_link_closed(shoal_link_t *l, int *verdict, char *msg, size_t cap, size_t *len)
{
    shoal_link_hdr_t *h = l->hdr;
    uint32_t n;
    int v;

    if (atomic_load_explicit(&h->closed, memory_order_acquire) == 0)
        return 0;
    v = __atomic_load_n(&h->verdict, __ATOMIC_RELAXED);
    n = __atomic_load_n(&h->msg_len, __ATOMIC_RELAXED);
    /* The worker writes a -errno; anything else came from a peer and means "failed". */
    if (v > 0 || v < -4095)
        v = -EPROTO;
    if (n > SHOAL_LINK_MSG_MAX)
        n = SHOAL_LINK_MSG_MAX;
    if (n > cap)
        n = (uint32_t)cap;
    if (n > 0)
        memcpy(msg, h->msg, n);
    *verdict = v;
    *len = n;
    return 1;
}

int shoal_link_request(shoal_link_t *l, const void *in, size_t len, uint64_t *seq)
{
    shoal_link_hdr_t *h = l->hdr;
    uint64_t s = l->seq + 1;

    if (len > l->lay.in_cap)
        return -EMSGSIZE;
    if (len > 0)
        memcpy(shoal_link_in(l), in, len);
    __atomic_store_n(&h->rq.seq, s, __ATOMIC_RELAXED);
    __atomic_store_n(&h->rq.in_len, (uint64_t)len, __ATOMIC_RELAXED);
    atomic_store_explicit(&h->req, (uint32_t)s, memory_order_release);
    l->seq = s;
    *seq = s;
    /* Pairs with the callee's fence between announcing sleep and re-checking req. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&h->callee_sleeping, memory_order_relaxed))
        shoal_link_futex_wake(&h->req);
    return 0;
}

int shoal_link_poll_resp(shoal_link_t *l, uint64_t seq, shoal_link_resp_t *rs)
{
    shoal_link_hdr_t *h = l->hdr;
    uint32_t w = atomic_load_explicit(&h->resp, memory_order_acquire);

    if (w == (uint32_t)(seq - 1))
        return 0;
    if (w != (uint32_t)seq)
        return -EPROTO;
    load_resp(&h->rs, rs);
    return shoal_link_check_resp(&l->lay, rs, seq) < 0 ? -EPROTO : 1;
}

int shoal_link_poll_req(shoal_link_t *l, shoal_link_req_t *rq)
{
    shoal_link_hdr_t *h = l->hdr;
    uint32_t w = atomic_load_explicit(&h->req, memory_order_acquire);

    if (w == (uint32_t)l->seq)
        return 0;
    if (w != (uint32_t)(l->seq + 1))
        return -EPROTO;
    load_req(&h->rq, rq);
    if (shoal_link_check_req(&l->lay, rq, l->seq + 1) < 0)
        return -EPROTO;
    __atomic_store_n(&h->start_ns, shoal_util_now_ns(), __ATOMIC_RELAXED);
    return 1;
}

int shoal_link_respond(shoal_link_t *l, int err, const void *out, size_t out_len, const char *msg,
                       size_t msg_len)
{
    shoal_link_hdr_t *h = l->hdr;
    uint64_t s = l->seq + 1;

    if (err == 0 && out_len > l->lay.out_cap)
        return -EMSGSIZE;
    if (err != 0) {
        out_len = 0;
        if (msg_len > SHOAL_LINK_MSG_MAX * 4)
            msg_len = SHOAL_LINK_MSG_MAX * 4;
        if (msg_len > l->lay.out_cap)
            msg_len = l->lay.out_cap;
        if (msg_len > 0)
            memcpy(shoal_link_out(l), msg, msg_len);
    } else {
        msg_len = 0;
        if (out_len > 0)
            memcpy(shoal_link_out(l), out, out_len);
    }
    __atomic_store_n(&h->rs.seq, s, __ATOMIC_RELAXED);
    __atomic_store_n(&h->rs.err, (int32_t)err, __ATOMIC_RELAXED);
    __atomic_store_n(&h->rs.err_len, (uint32_t)msg_len, __ATOMIC_RELAXED);
    __atomic_store_n(&h->rs.out_len, (uint64_t)out_len, __ATOMIC_RELAXED);
    atomic_store_explicit(&h->resp, (uint32_t)s, memory_order_release);
    l->seq = s;
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&h->caller_sleeping, memory_order_relaxed))
        shoal_link_futex_wake(&h->resp);
    return 0;
}

/* ---- worker ---- */

int shoal_link_pending(shoal_link_t *l, uint32_t *req, uint64_t *start_ns)
{
    shoal_link_hdr_t *h = l->hdr;
    uint32_t q = atomic_load_explicit(&h->req, memory_order_relaxed);
    uint32_t r = atomic_load_explicit(&h->resp, memory_order_relaxed);

    if (q == r)
        return 0;
    *req = q;
    *start_ns = __atomic_load_n(&h->start_ns, __ATOMIC_RELAXED);
    return 1;
}

void shoal_link_close(shoal_link_t *l, int verdict, const char *msg, size_t len)
{
    shoal_link_hdr_t *h = l->hdr;

    if (atomic_load_explicit(&h->closed, memory_order_relaxed) == 0) {
        if (len > SHOAL_LINK_MSG_MAX)
            len = SHOAL_LINK_MSG_MAX;
        h->verdict = verdict;
        h->msg_len = (uint32_t)len;
        if (len > 0)
            memcpy(h->msg, msg, len);
        atomic_store_explicit(&h->closed, 1, memory_order_release);
    }
    /* Whether or not they announced sleep: a FUTEX_WAKE costs nothing when nobody waits. */
    shoal_link_futex_wake(&h->resp);
    shoal_link_futex_wake(&h->req);
}
