/*
 * ivf.c - IVF writing, parsing and stitching; see ivf.h for the format.
 */
#include "ivf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get32(const uint8_t *p)
{
    return get16(p) | get16(p + 2) << 16;
}

static uint64_t get64(const uint8_t *p)
{
    return get32(p) | (uint64_t)get32(p + 4) << 32;
}

void vid_ivf_put_header(uint8_t dst[VID_IVF_HEADER], const vid_ivf_info *info)
{
    memcpy(dst, "DKIF", 4);
    put16(dst + 4, 0);
    put16(dst + 6, VID_IVF_HEADER);
    put32(dst + 8, info->fourcc);
    put16(dst + 12, (uint32_t)info->width);
    put16(dst + 14, (uint32_t)info->height);
    put32(dst + 16, info->rate);
    put32(dst + 20, info->scale);
    put32(dst + 24, info->nframes);
    put32(dst + 28, 0);
}

void vid_ivf_put_frame_header(uint8_t dst[VID_IVF_FRAME_HEADER], uint32_t size, uint64_t pts)
{
    put32(dst, size);
    put64(dst + 4, pts);
}

int vid_ivf_parse_header(const void *data, size_t len, vid_ivf_info *info)
{
    const uint8_t *p = data;
    if (len < VID_IVF_HEADER || memcmp(p, "DKIF", 4) != 0 || get16(p + 4) != 0 ||
        get16(p + 6) != VID_IVF_HEADER)
        return -EBADMSG;
    info->fourcc = get32(p + 8);
    info->width = (int)get16(p + 12);
    info->height = (int)get16(p + 14);
    info->rate = get32(p + 16);
    info->scale = get32(p + 20);
    info->nframes = get32(p + 24);
    return 0;
}

int vid_ivf_reader_init(vid_ivf_reader *r, const void *data, size_t len)
{
    int err = vid_ivf_parse_header(data, len, &r->info);
    r->data = data;
    r->len = len;
    r->off = VID_IVF_HEADER;
    return err;
}

int vid_ivf_next(vid_ivf_reader *r, const uint8_t **frame, uint32_t *size, uint64_t *pts)
{
    if (r->off == r->len)
        return 0;
    if (r->len - r->off < VID_IVF_FRAME_HEADER)
        return -EBADMSG;
    const uint8_t *h = r->data + r->off;
    uint32_t sz = get32(h);
    if (r->len - r->off - VID_IVF_FRAME_HEADER < sz)
        return -EBADMSG;
    *frame = h + VID_IVF_FRAME_HEADER;
    *size = sz;
    *pts = get64(h + 4);
    r->off += VID_IVF_FRAME_HEADER + (size_t)sz;
    return 1;
}

int vid_vp8_is_keyframe(const uint8_t *frame, size_t len)
{
    return len >= 3 && (frame[0] & 1) == 0;
}

int vid_ivf_stitch(const vid_span *chunks, int n, uint8_t **out, size_t *out_len, uint32_t *nframes,
                   uint32_t *nkey, char *err, size_t errlen)
{
    vid_ivf_info first = {0};
    size_t total = VID_IVF_HEADER;
    vid_ivf_reader r;
    const uint8_t *f;
    uint32_t sz;
    uint64_t pts;
    int rc;

    if (n < 1) {
        snprintf(err, errlen, "stitch: no chunks");
        return -EBADMSG;
    }
    /* First pass: validate every chunk and size the output. */
    for (int i = 0; i < n; i++) {
        if (vid_ivf_reader_init(&r, chunks[i].data, chunks[i].len) < 0) {
            snprintf(err, errlen, "stitch: chunk %d is not an IVF stream", i);
            return -EBADMSG;
        }
        if (i == 0)
            first = r.info;
        else if (r.info.fourcc != first.fourcc || r.info.width != first.width ||
                 r.info.height != first.height || r.info.rate != first.rate ||
                 r.info.scale != first.scale) {
            snprintf(err, errlen, "stitch: chunk %d (%dx%d) does not match chunk 0 (%dx%d)", i,
                     r.info.width, r.info.height, first.width, first.height);
            return -EBADMSG;
        }
        while ((rc = vid_ivf_next(&r, &f, &sz, &pts)) > 0)
            ;
        if (rc < 0) {
            snprintf(err, errlen, "stitch: chunk %d is truncated", i);
            return -EBADMSG;
        }
        total += chunks[i].len - VID_IVF_HEADER;
    }
    uint8_t *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    size_t o = VID_IVF_HEADER;
    uint32_t count = 0, keys = 0;
    for (int i = 0; i < n; i++) {
        vid_ivf_reader_init(&r, chunks[i].data, chunks[i].len);
        while (vid_ivf_next(&r, &f, &sz, &pts) > 0) {
            vid_ivf_put_frame_header(buf + o, sz, count++);
            memcpy(buf + o + VID_IVF_FRAME_HEADER, f, sz);
            o += VID_IVF_FRAME_HEADER + sz;
            keys += (uint32_t)vid_vp8_is_keyframe(f, sz);
        }
    }
    first.nframes = count;
    vid_ivf_put_header(buf, &first);
    *out = buf;
    *out_len = o;
    if (nframes)
        *nframes = count;
    if (nkey)
        *nkey = keys;
    return 0;
}
