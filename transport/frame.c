/*
 * frame - see frame.h. The reader keeps one buffer that grows to the size of the largest frame
 * seen (bounded by max_payload) so that a steady stream of frames allocates nothing; frames that
 * arrive whole inside one feed are delivered straight from the caller's buffer without a copy.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int shoal_frame_encode(uint8_t out[SHOAL_FRAME_PREFIX_SIZE], uint8_t type, uint32_t id,
                       size_t meta_len, size_t data_len)
{
    uint64_t len = 4 + (uint64_t)meta_len + (uint64_t)data_len;

    if (len > UINT32_MAX || meta_len > SHOAL_FRAME_META_MAX)
        return -EMSGSIZE;
    put_u32(out, SHOAL_FRAME_MAGIC);
    out[4] = SHOAL_FRAME_VERSION;
    out[5] = type;
    out[6] = out[7] = 0;
    put_u32(out + 8, (uint32_t)len);
    put_u32(out + 12, id);
    put_u32(out + 16, (uint32_t)meta_len);
    return 0;
}

int shoal_frame_decode_hdr(const uint8_t *buf, uint32_t max_payload, shoal_frame_hdr *hdr)
{
    hdr->magic = get_u32(buf);
    hdr->version = buf[4];
    hdr->type = buf[5];
    hdr->flags = (uint16_t)(buf[6] | buf[7] << 8);
    hdr->len = get_u32(buf + 8);
    hdr->id = get_u32(buf + 12);
    if (hdr->magic != SHOAL_FRAME_MAGIC)
        return -EPROTO;
    if (hdr->version != SHOAL_FRAME_VERSION)
        return -EPROTONOSUPPORT;
    if (hdr->flags != 0 || hdr->type == 0 || hdr->type > SHOAL_FRAME_TYPE_MAX)
        return -EPROTO;
    if (hdr->len > max_payload)
        return -EMSGSIZE;
    if (hdr->len < 4)
        return -EPROTO;
    return 0;
}

int shoal_frame_split(const uint8_t *payload, size_t len, const char **meta, size_t *meta_len,
                      const uint8_t **data, size_t *data_len)
{
    uint32_t mlen;

    if (len < 4)
        return -EPROTO;
    mlen = get_u32(payload);
    if (mlen > SHOAL_FRAME_META_MAX || mlen > len - 4)
        return -EPROTO;
    *meta = (const char *)payload + 4;
    *meta_len = mlen;
    *data = payload + 4 + mlen;
    *data_len = len - 4 - mlen;
    return 0;
}

struct shoal_frame_reader {
    uint32_t max_payload;
    shoal_frame_cb cb;
    void *opaque;
    uint8_t hdrbuf[SHOAL_FRAME_HDR_SIZE];
    size_t hdr_have; /* bytes of the header gathered so far */
    shoal_frame_hdr hdr;
    uint8_t *buf; /* payload being gathered */
    size_t cap;
    size_t have; /* payload bytes gathered; valid once hdr_have == HDR_SIZE */
};

shoal_frame_reader_t *shoal_frame_reader_create(uint32_t max_payload, shoal_frame_cb cb,
                                                void *opaque)
{
    shoal_frame_reader_t *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->max_payload = max_payload;
    r->cb = cb;
    r->opaque = opaque;
    return r;
}

void shoal_frame_reader_destroy(shoal_frame_reader_t *r)
{
    if (r == NULL)
        return;
    free(r->buf);
    free(r);
}

void shoal_frame_reader_set_max(shoal_frame_reader_t *r, uint32_t max_payload)
{
    r->max_payload = max_payload;
}

int shoal_frame_reader_feed(shoal_frame_reader_t *r, const uint8_t *buf, size_t len)
{
    int err;

    while (len > 0) {
        if (r->hdr_have < SHOAL_FRAME_HDR_SIZE) {
            size_t n = SHOAL_FRAME_HDR_SIZE - r->hdr_have;
            if (n > len)
                n = len;
            memcpy(r->hdrbuf + r->hdr_have, buf, n);
            r->hdr_have += n;
            buf += n;
            len -= n;
            if (r->hdr_have < SHOAL_FRAME_HDR_SIZE)
                return 0;
            if ((err = shoal_frame_decode_hdr(r->hdrbuf, r->max_payload, &r->hdr)) < 0)
                return err;
            r->have = 0;
            /* The common case: the whole payload is already here, deliver it in place. */
            if (len >= r->hdr.len) {
                err = r->cb(r->opaque, &r->hdr, buf);
                buf += r->hdr.len;
                len -= r->hdr.len;
                r->hdr_have = 0;
                if (err != 0)
                    return err;
                continue;
            }
            if (r->cap < r->hdr.len) {
                uint8_t *nb = realloc(r->buf, r->hdr.len);
                if (nb == NULL)
                    return -ENOMEM;
                r->buf = nb;
                r->cap = r->hdr.len;
            }
        }
        size_t n = r->hdr.len - r->have;
        if (n > len)
            n = len;
        memcpy(r->buf + r->have, buf, n);
        r->have += n;
        buf += n;
        len -= n;
        if (r->have == r->hdr.len) {
            r->hdr_have = 0;
            if ((err = r->cb(r->opaque, &r->hdr, r->buf)) != 0)
                return err;
            /* A large frame's buffer is not kept around once it has been delivered. */
            if (r->cap > (1u << 20)) {
                free(r->buf);
                r->buf = NULL;
                r->cap = 0;
            }
        }
    }
    return 0;
}

/* ---- LOG records ---- */

static void log_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t log_get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

int shoal_frame_log_put(uint8_t *buf, size_t cap, size_t *off, const shoal_frame_log_rec_t *rec)
{
    size_t need;
    uint8_t *p;

    if (rec->function_len > UINT16_MAX || rec->invocation_id_len > UINT16_MAX ||
        rec->text_len > UINT32_MAX)
        return -EINVAL;
    need = SHOAL_FRAME_LOG_REC_HDR + rec->function_len + rec->invocation_id_len + rec->text_len;
    if (*off > cap || cap - *off < need)
        return -ENOSPC;
    p = buf + *off;
    put_u32(p, (uint32_t)rec->ts_ms);
    put_u32(p + 4, (uint32_t)(rec->ts_ms >> 32));
    put_u32(p + 8, (uint32_t)rec->rank);
    log_put_u16(p + 12, (uint16_t)rec->function_len);
    log_put_u16(p + 14, (uint16_t)rec->invocation_id_len);
    put_u32(p + 16, (uint32_t)rec->text_len);
    p += SHOAL_FRAME_LOG_REC_HDR;
    memcpy(p, rec->function, rec->function_len);
    memcpy(p + rec->function_len, rec->invocation_id, rec->invocation_id_len);
    memcpy(p + rec->function_len + rec->invocation_id_len, rec->text, rec->text_len);
    *off += need;
    return 0;
}

int shoal_frame_log_next(const uint8_t *data, size_t len, size_t *off, shoal_frame_log_rec_t *rec)
{
    const uint8_t *p = data + *off;
    size_t left, body;

    if (*off >= len)
        return 0;
    left = len - *off;
    if (left < SHOAL_FRAME_LOG_REC_HDR)
        return -EPROTO;
    rec->ts_ms = get_u32(p) | ((uint64_t)get_u32(p + 4) << 32);
    rec->rank = (int32_t)get_u32(p + 8);
    rec->function_len = log_get_u16(p + 12);
    rec->invocation_id_len = log_get_u16(p + 14);
    rec->text_len = get_u32(p + 16);
    /* In 64 bits: the three lengths cannot overflow the sum. */
    body = rec->function_len + rec->invocation_id_len + (size_t)rec->text_len;
    if (left - SHOAL_FRAME_LOG_REC_HDR < body)
        return -EPROTO;
    p += SHOAL_FRAME_LOG_REC_HDR;
    rec->function = (const char *)p;
    rec->invocation_id = (const char *)p + rec->function_len;
    rec->text = (const char *)p + rec->function_len + rec->invocation_id_len;
    *off += SHOAL_FRAME_LOG_REC_HDR + body;
    return 1;
}
