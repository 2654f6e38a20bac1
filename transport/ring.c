/*
 * ring - see ring.h for the layout, the memory order and the trust model.
 */
#include "ring.h"

#include <errno.h>
#include <string.h>

#define ALIGN8(x) (((uint64_t)(x) + 7u) & ~(uint64_t)7u)

static uint16_t hdr_check(uint32_t len, uint16_t type)
{
    return (uint16_t)((len ^ (len >> 16) ^ type ^ 0x5a5au) & 0xffffu);
}

void shoal_ring_encode_hdr(uint8_t hdr[SHOAL_RING_HDR_SIZE], uint16_t type, uint32_t len)
{
    uint16_t check = hdr_check(len, type);

    /* Host byte order: both sides run on the same machine. */
    memcpy(hdr, &len, 4);
    memcpy(hdr + 4, &type, 2);
    memcpy(hdr + 6, &check, 2);
}

int64_t shoal_ring_check_hdr(const uint8_t hdr[SHOAL_RING_HDR_SIZE], uint64_t avail,
                             uint32_t max_len, shoal_ring_rec_t *rec)
{
    uint32_t len;
    uint16_t type, check;
    uint64_t total;

    if (avail < SHOAL_RING_HDR_SIZE)
        return -EPROTO;
    memcpy(&len, hdr, 4);
    memcpy(&type, hdr + 4, 2);
    memcpy(&check, hdr + 6, 2);
    if (type == 0 || check != hdr_check(len, type) || len > max_len)
        return -EPROTO;
    total = SHOAL_RING_HDR_SIZE + ALIGN8(len);
    if (total > avail)
        return -EPROTO;
    rec->type = type;
    rec->len = len;
    return (int64_t)total;
}

int64_t shoal_ring_decode(const uint8_t *buf, size_t len, uint32_t max_len, shoal_ring_rec_t *rec,
                          const uint8_t **payload)
{
    int64_t total;

    if (buf == NULL || len < SHOAL_RING_HDR_SIZE)
        return -EPROTO;
    if ((total = shoal_ring_check_hdr(buf, len, max_len, rec)) < 0)
        return total;
    *payload = buf + SHOAL_RING_HDR_SIZE;
    return total;
}

static int attach(shoal_ring_t *r, shoal_ring_ctrl_t *ctrl, void *data, uint64_t cap)
{
    if (ctrl == NULL || data == NULL || cap < SHOAL_RING_MIN_CAP || (cap & (cap - 1)) != 0 ||
        cap > (1ull << 31))
        return -EINVAL;
    r->ctrl = ctrl;
    r->data = data;
    r->cap = cap;
    return 0;
}

int shoal_ring_attach_producer(shoal_ring_t *r, shoal_ring_ctrl_t *ctrl, void *data, uint64_t cap)
{
    int err;

    if ((err = attach(r, ctrl, data, cap)) < 0)
        return err;
    r->pos = atomic_load_explicit(&ctrl->head, memory_order_relaxed);
    r->other = atomic_load_explicit(&ctrl->tail, memory_order_acquire);
    if (r->pos - r->other > cap || (r->pos & 7) != 0)
        return -EPROTO;
    return 0;
}

int shoal_ring_attach_consumer(shoal_ring_t *r, shoal_ring_ctrl_t *ctrl, void *data, uint64_t cap)
{
    int err;

    if ((err = attach(r, ctrl, data, cap)) < 0)
        return err;
    r->pos = atomic_load_explicit(&ctrl->tail, memory_order_relaxed);
    r->other = r->pos;
    if ((r->pos & 7) != 0)
        return -EPROTO;
    return 0;
}

uint32_t shoal_ring_max_payload(const shoal_ring_t *r)
{
    return (uint32_t)(r->cap - SHOAL_RING_HDR_SIZE);
}

/* Reloads the consumer's tail and validates it: it may not be ahead of what we published nor
 * more than cap behind it. */
static int reload_tail(shoal_ring_t *r)
{
    uint64_t tail = atomic_load_explicit(&r->ctrl->tail, memory_order_acquire);

    if (r->pos - tail > r->cap || (tail & 7) != 0)
        return -EPROTO;
    r->other = tail;
    return 0;
}

int64_t shoal_ring_space(shoal_ring_t *r)
{
    int err;

    if ((err = reload_tail(r)) < 0)
        return err;
    return (int64_t)(r->cap - (r->pos - r->other));
}

static void copy_in(shoal_ring_t *r, uint64_t pos, const void *src, size_t len)
{
    uint64_t off = pos & (r->cap - 1);
    uint64_t first = r->cap - off;

    if (first >= len) {
        memcpy(r->data + off, src, len);
    } else {
        memcpy(r->data + off, src, first);
        memcpy(r->data, (const uint8_t *)src + first, len - first);
    }
}

static void copy_out(const shoal_ring_t *r, uint64_t pos, void *dst, size_t len)
{
    uint64_t off = pos & (r->cap - 1);
    uint64_t first = r->cap - off;

    if (first >= len) {
        memcpy(dst, r->data + off, len);
    } else {
        memcpy(dst, r->data + off, first);
        memcpy((uint8_t *)dst + first, r->data, len - first);
    }
}

int shoal_ring_pushv(shoal_ring_t *r, uint16_t type, const struct iovec *iov, int n)
{
    uint8_t hdr[SHOAL_RING_HDR_SIZE];
    uint64_t len = 0, need, pos;
    int err, i;

    if (type == 0)
        return -EINVAL;
    for (i = 0; i < n; i++)
        len += iov[i].iov_len;
    if (len > shoal_ring_max_payload(r))
        return -EMSGSIZE;
    need = SHOAL_RING_HDR_SIZE + ALIGN8(len);
    if (r->cap - (r->pos - r->other) < need) {
        if ((err = reload_tail(r)) < 0)
            return err;
        if (r->cap - (r->pos - r->other) < need)
            return -EAGAIN;
    }
    shoal_ring_encode_hdr(hdr, type, (uint32_t)len);
    pos = r->pos;
    copy_in(r, pos, hdr, sizeof(hdr));
    pos += SHOAL_RING_HDR_SIZE;
    for (i = 0; i < n; i++) {
        if (iov[i].iov_len == 0)
            continue;
        copy_in(r, pos, iov[i].iov_base, iov[i].iov_len);
        pos += iov[i].iov_len;
    }
    r->pos += need;
    atomic_store_explicit(&r->ctrl->head, r->pos, memory_order_release);
    return 0;
}

int shoal_ring_push(shoal_ring_t *r, uint16_t type, const void *payload, uint32_t len)
{
    struct iovec iov = {.iov_base = (void *)payload, .iov_len = len};

    return shoal_ring_pushv(r, type, &iov, len > 0 ? 1 : 0);
}

int shoal_ring_readable(shoal_ring_t *r)
{
    return atomic_load_explicit(&r->ctrl->head, memory_order_acquire) != r->pos;
}

int shoal_ring_pop(shoal_ring_t *r, shoal_ring_rec_t *rec, void *buf, size_t size)
{
    uint8_t hdr[SHOAL_RING_HDR_SIZE];
    uint64_t head, avail;
    uint32_t max_len;
    int64_t total;

    head = atomic_load_explicit(&r->ctrl->head, memory_order_acquire);
    avail = head - r->pos;
    if (avail == 0)
        return 0;
    if (avail > r->cap || (avail & 7) != 0)
        return -EPROTO;
    /* Copy the header out before checking it: the producer may rewrite it under us. */
    copy_out(r, r->pos, hdr, sizeof(hdr));
    max_len = shoal_ring_max_payload(r);
    if (size < max_len)
        max_len = (uint32_t)size;
    if ((total = shoal_ring_check_hdr(hdr, avail, max_len, rec)) < 0)
        return (int)total;
    if (rec->len > 0)
        copy_out(r, r->pos + SHOAL_RING_HDR_SIZE, buf, rec->len);
    r->pos += (uint64_t)total;
    r->other = head;
    atomic_store_explicit(&r->ctrl->tail, r->pos, memory_order_release);
    return 1;
}
