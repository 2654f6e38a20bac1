/*
 * wire - see wire.h.
 */
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum { ST_PREFIX, ST_META, ST_DATA };

/* A data part at least this large left is read straight into its destination. */
#define DIRECT_MIN (16u << 10)
/* A meta buffer larger than this is not kept between frames. */
#define META_KEEP (64u << 10)

void shoal_wire_init(shoal_wire_reader_t *r, uint32_t max_payload, const shoal_wire_cbs_t *cbs,
                     void *opaque)
{
    memset(r, 0, offsetof(shoal_wire_reader_t, scratch));
    r->cbs = *cbs;
    r->opaque = opaque;
    r->max_payload = max_payload;
    r->state = ST_PREFIX;
}

void shoal_wire_free(shoal_wire_reader_t *r)
{
    free(r->meta);
    r->meta = NULL;
    r->meta_cap = 0;
}

void shoal_wire_drop_dst(shoal_wire_reader_t *r)
{
    r->dst = NULL;
}

void shoal_wire_buf(shoal_wire_reader_t *r, uint8_t **buf, size_t *len)
{
    if (r->state == ST_DATA && r->dst != NULL && r->data_len - r->have >= DIRECT_MIN) {
        r->direct = 1;
        *buf = r->dst + r->have;
        *len = r->data_len - r->have;
        return;
    }
    r->direct = 0;
    *buf = r->scratch;
    *len = sizeof(r->scratch);
}

static int frame_done(shoal_wire_reader_t *r)
{
    int err = r->cbs.on_frame(r->opaque, &r->hdr, r->meta, r->meta_len, r->dst, r->data_len);

    r->state = ST_PREFIX;
    r->have = 0;
    r->dst = NULL;
    if (r->meta_cap > META_KEEP) {
        free(r->meta);
        r->meta = NULL;
        r->meta_cap = 0;
    }
    return err;
}

static int meta_done(shoal_wire_reader_t *r)
{
    int err;

    r->dst = NULL;
    r->have = 0;
    r->state = ST_DATA;
    if ((err = r->cbs.on_meta(r->opaque, &r->hdr, r->meta, r->meta_len, r->data_len, &r->dst)) != 0)
        return err;
    if (r->data_len == 0)
        return frame_done(r);
    return 0;
}

static int prefix_done(shoal_wire_reader_t *r)
{
    uint32_t mlen;
    int err;

    if ((err = shoal_frame_decode_hdr(r->prefix, r->max_payload, &r->hdr)) < 0)
        return err;
    mlen = (uint32_t)r->prefix[16] | (uint32_t)r->prefix[17] << 8 | (uint32_t)r->prefix[18] << 16 |
           (uint32_t)r->prefix[19] << 24;
    if (mlen > SHOAL_FRAME_META_MAX || mlen > r->hdr.len - 4)
        return -EPROTO;
    r->meta_len = mlen;
    r->data_len = r->hdr.len - 4 - mlen;
    r->have = 0;
    if (r->meta_cap < mlen + 1) {
        char *m = realloc(r->meta, mlen + 1);
        if (m == NULL)
            return -ENOMEM;
        r->meta = m;
        r->meta_cap = mlen + 1;
    }
    r->meta[mlen] = '\0';
    r->state = ST_META;
    if (mlen == 0)
        return meta_done(r);
    return 0;
}

int shoal_wire_feed(shoal_wire_reader_t *r, const uint8_t *buf, size_t n)
{
    int err;

    if (r->failed)
        return -EPROTO;
    while (n > 0) {
        size_t want, take;
        switch (r->state) {
        case ST_PREFIX:
            want = SHOAL_FRAME_PREFIX_SIZE - r->have;
            take = n < want ? n : want;
            memcpy(r->prefix + r->have, buf, take);
            r->have += take;
            if (r->have == SHOAL_FRAME_PREFIX_SIZE && (err = prefix_done(r)) != 0)
                goto fail;
            break;
        case ST_META:
            want = r->meta_len - r->have;
            take = n < want ? n : want;
            memcpy(r->meta + r->have, buf, take);
            r->have += take;
            if (r->have == r->meta_len && (err = meta_done(r)) != 0)
                goto fail;
            break;
        default:
            want = r->data_len - r->have;
            take = n < want ? n : want;
            if (r->dst != NULL)
                memcpy(r->dst + r->have, buf, take);
            r->have += take;
            if (r->have == r->data_len && (err = frame_done(r)) != 0)
                goto fail;
            break;
        }
        buf += take;
        n -= take;
    }
    return 0;
fail:
    r->failed = 1;
    return err;
}

int shoal_wire_commit(shoal_wire_reader_t *r, size_t n)
{
    int err;

    if (!r->direct)
        return shoal_wire_feed(r, r->scratch, n);
    r->direct = 0;
    if (r->failed)
        return -EPROTO;
    /* The bytes are already in place (or, if the destination was dropped meanwhile, the data
     * went to memory that is now gone from our view: skip them either way). */
    r->have += n;
    if (r->have == r->data_len && (err = frame_done(r)) != 0) {
        r->failed = 1;
        return err;
    }
    return 0;
}
