/*
 * encode.c - one chunk at one rendition: scale, encode with VP8, decode back, measure.
 *
 * Encoder settings, and why:
 * - rc_end_usage VPX_CQ with VP8E_SET_CQ_LEVEL = cq and a target bitrate far above what the
 *   quality needs (1 bit per pixel), so the quantizer settles at the cq level: constant quality,
 *   the bitrate follows the content.
 * - kf_mode VPX_KF_DISABLED plus VPX_EFLAG_FORCE_KF on the chunk's first frame: exactly one key
 *   frame per chunk, at its start, which is what lets chunks be encoded independently.
 * - g_lag_in_frames 0 (no alt-ref look-ahead): one packet per input frame, every frame shown, so
 *   frame counts and pts stay one to one with the source across stitching.
 * - g_error_resilient 0 and rc_dropframe_thresh 0: no resilience overhead, no dropped frames.
 * - deadline VPX_DL_GOOD_QUALITY with cpu_used as the speed knob.
 * The packets are decoded back at once with libvpx's VP8 decoder; with no lag the reconstructed
 * frame always belongs to the frame just submitted, so only that one scaled frame is kept.
 */
#include "encode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libswscale/swscale.h>
#include <vpx/vp8cx.h>
#include <vpx/vp8dx.h>
#include <vpx/vpx_decoder.h>
#include <vpx/vpx_encoder.h>

#include "decode.h"
#include "ivf.h"
#include "psnr.h"

void vid_stats_add(vid_stats *a, const vid_stats *b)
{
    a->frames += b->frames;
    a->keyframes += b->keyframes;
    a->bytes += b->bytes;
    a->sse += b->sse;
    a->samples += b->samples;
    a->psnr_sum += b->psnr_sum;
    a->psnr_y_sum += b->psnr_y_sum;
    a->scale_ms += b->scale_ms;
    a->encode_ms += b->encode_ms;
    a->check_ms += b->check_ms;
}

double vid_stats_psnr(const vid_stats *s)
{
    return s->frames ? s->psnr_sum / (double)s->frames : 0.0;
}

/* CPU time of the process, not wall time: the statistics measure the work, which must not
 * count the time a rank waited for a core when more ranks than cores share a machine. (A rank
 * runs libvpx with one thread; where libvpx runs several, this counts all of them.) */
static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A growing byte buffer for the chunk's IVF stream. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} bytes;

static int bytes_reserve(bytes *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 65536;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

typedef struct {
    vpx_codec_ctx_t enc, dec;
    int enc_open, dec_open;
    vpx_image_t *scaled; /* the frame handed to the encoder (owned when scaling) */
    struct SwsContext *sws;
    bytes out;
    vid_stats *st;
    int w, h;
    char *err;
    size_t errlen;
} chunk_ctx;

static int vpx_fail(chunk_ctx *c, vpx_codec_ctx_t *codec, const char *what)
{
    const char *detail = vpx_codec_error_detail(codec);
    snprintf(c->err, c->errlen, "%s: %s%s%s", what, vpx_codec_error(codec), detail ? ": " : "",
             detail ? detail : "");
    return -EINVAL;
}

/* Decodes one packet back and adds the reconstruction's error against c->scaled. */
static int check_packet(chunk_ctx *c, const void *buf, size_t len)
{
    double t0 = now_ms();
    if (vpx_codec_decode(&c->dec, buf, (unsigned)len, NULL, 0) != VPX_CODEC_OK)
        return vpx_fail(c, &c->dec, "libvpx could not decode its own VP8 frame");
    vpx_codec_iter_t it = NULL;
    vpx_image_t *img;
    while ((img = vpx_codec_get_frame(&c->dec, &it)) != NULL) {
        const uint8_t *a[3] = {img->planes[0], img->planes[1], img->planes[2]};
        const uint8_t *b[3] = {c->scaled->planes[0], c->scaled->planes[1], c->scaled->planes[2]};
        uint64_t sse[3];
        uint64_t n = vid_psnr_frame(a, img->stride, b, c->scaled->stride, c->w, c->h, sse);
        uint64_t total = sse[0] + sse[1] + sse[2];
        c->st->sse += total;
        c->st->samples += n;
        c->st->psnr_sum += vid_psnr_db(total, n);
        c->st->psnr_y_sum += vid_psnr_db(sse[0], (uint64_t)c->w * c->h);
    }
    c->st->check_ms += now_ms() - t0;
    return 0;
}

/* Appends the packets the encoder has ready to the IVF stream. */
static int drain(chunk_ctx *c)
{
    vpx_codec_iter_t it = NULL;
    const vpx_codec_cx_pkt_t *pkt;
    while ((pkt = vpx_codec_get_cx_data(&c->enc, &it)) != NULL) {
        if (pkt->kind != VPX_CODEC_CX_FRAME_PKT)
            continue;
        size_t sz = pkt->data.frame.sz;
        if (bytes_reserve(&c->out, VID_IVF_FRAME_HEADER + sz) < 0) {
            snprintf(c->err, c->errlen, "out of memory for the encoded chunk");
            return -ENOMEM;
        }
        vid_ivf_put_frame_header(c->out.data + c->out.len, (uint32_t)sz,
                                 (uint64_t)pkt->data.frame.pts);
        memcpy(c->out.data + c->out.len + VID_IVF_FRAME_HEADER, pkt->data.frame.buf, sz);
        c->out.len += VID_IVF_FRAME_HEADER + sz;
        c->st->frames++;
        c->st->bytes += sz;
        c->st->keyframes += (pkt->data.frame.flags & VPX_FRAME_IS_KEY) ? 1 : 0;
        int r = check_packet(c, pkt->data.frame.buf, sz);
        if (r < 0)
            return r;
    }
    return 0;
}

int vid_encode_chunk(const uint8_t *frames, int nframes, int src_w, int src_h, vid_size out,
                     const vid_enc_cfg *cfg, uint8_t **ivf, size_t *ivf_len, vid_stats *st,
                     char *err, size_t errlen)
{
    chunk_ctx c = {.st = st, .w = out.width, .h = out.height, .err = err, .errlen = errlen};
    vpx_codec_enc_cfg_t ec;
    vpx_image_t wrapped;
    size_t fsize = vid_frame_size(src_w, src_h);
    int rc = -EINVAL, scaling = out.width != src_w || out.height != src_h;

    memset(st, 0, sizeof(*st));
    if (nframes < 1 || out.width < 2 || out.height < 2 || out.width % 2 || out.height % 2 ||
        out.width > src_w || out.height > src_h || cfg->fps_num < 1 || cfg->fps_den < 1) {
        snprintf(err, errlen, "encode: bad chunk (%d frames, %dx%d from %dx%d)", nframes, out.width,
                 out.height, src_w, src_h);
        return -EINVAL;
    }
    if (vpx_codec_enc_config_default(vpx_codec_vp8_cx(), &ec, 0) != VPX_CODEC_OK) {
        snprintf(err, errlen, "encode: libvpx has no VP8 encoder defaults");
        return -EINVAL;
    }
    ec.g_w = (unsigned)out.width;
    ec.g_h = (unsigned)out.height;
    ec.g_timebase.num = cfg->fps_den;
    ec.g_timebase.den = cfg->fps_num;
    ec.g_threads = (unsigned)(cfg->threads > 0 ? cfg->threads : 1);
    ec.g_lag_in_frames = 0;
    ec.g_error_resilient = 0;
    ec.g_pass = VPX_RC_ONE_PASS;
    ec.rc_end_usage = VPX_CQ;
    ec.rc_min_quantizer = 0;
    ec.rc_max_quantizer = 63;
    ec.rc_dropframe_thresh = 0;
    ec.rc_resize_allowed = 0;
    double kbps = (double)out.width * out.height * cfg->fps_num / cfg->fps_den / 1000.0;
    ec.rc_target_bitrate = kbps < 100 ? 100 : kbps > 1000000 ? 1000000 : (unsigned)kbps;
    ec.kf_mode = VPX_KF_DISABLED;
    ec.kf_min_dist = 0;
    ec.kf_max_dist = (unsigned)nframes;

    if (vpx_codec_enc_init(&c.enc, vpx_codec_vp8_cx(), &ec, 0) != VPX_CODEC_OK) {
        rc = vpx_fail(&c, &c.enc, "encode: cannot start the VP8 encoder");
        goto done;
    }
    c.enc_open = 1;
    if (vpx_codec_control(&c.enc, VP8E_SET_CPUUSED, cfg->cpu_used) != VPX_CODEC_OK ||
        vpx_codec_control(&c.enc, VP8E_SET_CQ_LEVEL, cfg->cq) != VPX_CODEC_OK ||
        vpx_codec_control(&c.enc, VP8E_SET_NOISE_SENSITIVITY, 0) != VPX_CODEC_OK) {
        rc = vpx_fail(&c, &c.enc, "encode: cannot configure the VP8 encoder");
        goto done;
    }
    vpx_codec_dec_cfg_t dc = {.threads = 1, .w = (unsigned)out.width, .h = (unsigned)out.height};
    if (vpx_codec_dec_init(&c.dec, vpx_codec_vp8_dx(), &dc, 0) != VPX_CODEC_OK) {
        rc = vpx_fail(&c, &c.dec, "encode: cannot start the VP8 decoder");
        goto done;
    }
    c.dec_open = 1;
    if (scaling) {
        c.scaled =
            vpx_img_alloc(NULL, VPX_IMG_FMT_I420, (unsigned)out.width, (unsigned)out.height, 32);
        c.sws = sws_getContext(src_w, src_h, AV_PIX_FMT_YUV420P, out.width, out.height,
                               AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
        if (!c.scaled || !c.sws) {
            snprintf(err, errlen, "encode: cannot set up scaling %dx%d -> %dx%d", src_w, src_h,
                     out.width, out.height);
            rc = c.scaled ? -EINVAL : -ENOMEM;
            goto done;
        }
    }
    if (bytes_reserve(&c.out, VID_IVF_HEADER) < 0) {
        rc = -ENOMEM;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    c.out.len = VID_IVF_HEADER;

    for (int i = 0; i < nframes; i++) {
        const uint8_t *f = frames + (size_t)i * fsize;
        double t0 = now_ms();
        if (scaling) {
            const uint8_t *sp[3];
            int ss[3];
            vid_frame_planes(f, src_w, src_h, sp, ss);
            sws_scale(c.sws, sp, ss, 0, src_h, c.scaled->planes, c.scaled->stride);
        } else {
            /* Same size: encode straight from the caller's frame (its layout is I420, align 1). */
            c.scaled = vpx_img_wrap(&wrapped, VPX_IMG_FMT_I420, (unsigned)out.width,
                                    (unsigned)out.height, 1, (unsigned char *)f);
        }
        double t1 = now_ms();
        st->scale_ms += t1 - t0;
        vpx_enc_frame_flags_t flags = i == 0 ? VPX_EFLAG_FORCE_KF : 0;
        if (vpx_codec_encode(&c.enc, c.scaled, i, 1, flags, VPX_DL_GOOD_QUALITY) != VPX_CODEC_OK) {
            rc = vpx_fail(&c, &c.enc, "encode: VP8 encoding failed");
            goto done;
        }
        st->encode_ms += now_ms() - t1;
        if ((rc = drain(&c)) < 0)
            goto done;
    }
    /* Flush: with no lag nothing should be pending, but a well-behaved caller asks. */
    if (vpx_codec_encode(&c.enc, NULL, -1, 1, 0, VPX_DL_GOOD_QUALITY) != VPX_CODEC_OK) {
        rc = vpx_fail(&c, &c.enc, "encode: flushing the VP8 encoder failed");
        goto done;
    }
    if ((rc = drain(&c)) < 0)
        goto done;
    if (st->frames != (uint64_t)nframes) {
        snprintf(err, errlen, "encode: libvpx returned %llu frames for %d",
                 (unsigned long long)st->frames, nframes);
        rc = -EINVAL;
        goto done;
    }
    vid_ivf_info info = {
        VID_IVF_VP8,      out.width, out.height, (uint32_t)cfg->fps_num, (uint32_t)cfg->fps_den,
        (uint32_t)nframes};
    vid_ivf_put_header(c.out.data, &info);
    *ivf = c.out.data;
    *ivf_len = c.out.len;
    c.out.data = NULL;
    rc = 0;
done:
    if (c.enc_open)
        vpx_codec_destroy(&c.enc);
    if (c.dec_open)
        vpx_codec_destroy(&c.dec);
    if (scaling && c.scaled)
        vpx_img_free(c.scaled);
    sws_freeContext(c.sws);
    free(c.out.data);
    return rc;
}
