/* Tests examples/video/encode.c with ivf.c and psnr.c: chunks of a testsrc2 clip are encoded at
 * several renditions and stitched; the stitched stream must decode (libavcodec through
 * libavformat's IVF demuxer, and libvpx) to exactly the source's frame count at the rendition's
 * size, with key frames exactly at chunk starts, and a PSNR against the scaled source above
 * 30 dB that matches an independent measurement. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libswscale/swscale.h>
#include <vpx/vp8dx.h>
#include <vpx/vpx_decoder.h>

#include "clip.h"
#include "examples/video/decode.h"
#include "examples/video/encode.h"
#include "examples/video/ivf.h"
#include "examples/video/psnr.h"

static char err[512];

/* Decodes a clip made with libx264 (.mp4) or, for odd sizes, lossless ffv1 (.mkv). */
static vid_video load(const char *name, int w, int h, int frames)
{
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make(name, w, h, frames, 0,
                            strstr(name, ".mkv") ? "-c:v ffv1 -pix_fmt yuv420p"
                                                 : "-c:v libx264 -pix_fmt yuv420p",
                            &len, path);
    vid_video v;
    assert_non_null(in);
    assert_int_equal(vid_decode(in, len, 256u << 20, 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v.nframes, frames);
    free(in);
    return v;
}

/* Encodes v in chunks of chunk_frames at size out and stitches them; *st gets the totals. */
static uint8_t *encode_stitched(const vid_video *v, int chunk_frames, vid_size out, size_t *len,
                                vid_stats *st)
{
    int nchunks = (v->nframes + chunk_frames - 1) / chunk_frames;
    vid_span *spans = calloc((size_t)nchunks, sizeof(*spans));
    vid_enc_cfg cfg = {VID_DEFAULT_CQ, VID_DEFAULT_CPU_USED, 1, v->fps_num, v->fps_den};
    memset(st, 0, sizeof(*st));
    for (int c = 0; c < nchunks; c++) {
        int first = c * chunk_frames;
        int n = v->nframes - first < chunk_frames ? v->nframes - first : chunk_frames;
        uint8_t *ivf;
        size_t ivf_len;
        vid_stats cs;
        int rc = vid_encode_chunk(v->frames + (size_t)first * v->frame_size, n, v->width, v->height,
                                  out, &cfg, &ivf, &ivf_len, &cs, err, sizeof(err));
        if (rc != 0)
            fail_msg("encode chunk %d: %s", c, err);
        assert_int_equal(cs.frames, n);
        assert_int_equal(cs.keyframes, 1);
        spans[c] = (vid_span){ivf, ivf_len};
        vid_stats_add(st, &cs);
    }
    uint8_t *stitched;
    uint32_t frames, keys;
    assert_int_equal(
        vid_ivf_stitch(spans, nchunks, &stitched, len, &frames, &keys, err, sizeof(err)), 0);
    assert_int_equal(frames, v->nframes);
    assert_int_equal(keys, nchunks);
    for (int c = 0; c < nchunks; c++)
        free((void *)spans[c].data);
    free(spans);
    return stitched;
}

/* Scales source frame i to out the way the encoder does, into a tight YUV420P buffer. */
static void scale_frame(const vid_video *v, int i, vid_size out, uint8_t *dst)
{
    const uint8_t *sp[3];
    int ss[3];
    const uint8_t *dp[3];
    int ds[3];
    vid_frame_planes(v->frames + (size_t)i * v->frame_size, v->width, v->height, sp, ss);
    vid_frame_planes(dst, out.width, out.height, dp, ds);
    if (out.width == v->width && out.height == v->height) {
        memcpy(dst, sp[0], v->frame_size);
        return;
    }
    struct SwsContext *sws =
        sws_getContext(v->width, v->height, AV_PIX_FMT_YUV420P, out.width, out.height,
                       AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
    assert_non_null(sws);
    uint8_t *dpw[3] = {(uint8_t *)dp[0], (uint8_t *)dp[1], (uint8_t *)dp[2]};
    sws_scale(sws, sp, ss, 0, v->height, dpw, ds);
    sws_freeContext(sws);
}

/* Everything a stitched rendition must satisfy. */
static void check_stream(const vid_video *src, const uint8_t *ivf, size_t len, vid_size out,
                         int chunk_frames, const vid_stats *st)
{
    /* 1. libavformat + libavcodec read it as a video of the right size and length. */
    vid_video d;
    if (vid_decode(ivf, len, 256u << 20, 1, &d, err, sizeof(err)) != 0)
        fail_msg("stitched %dx%d does not decode: %s", out.width, out.height, err);
    assert_int_equal(d.nframes, src->nframes);
    assert_int_equal(d.width, out.width);
    assert_int_equal(d.height, out.height);
    assert_string_equal(d.codec, "vp8");
    assert_int_equal(d.fps_num * src->fps_den, src->fps_num * d.fps_den);

    /* 2. The IVF header and every frame: pts in order, key frames exactly at chunk starts, and
     * libvpx decodes each frame without error. */
    vid_ivf_reader r;
    const uint8_t *f;
    uint32_t sz;
    uint64_t pts;
    vpx_codec_ctx_t dec;
    assert_int_equal(vid_ivf_reader_init(&r, ivf, len), 0);
    assert_int_equal(r.info.nframes, src->nframes);
    assert_int_equal(r.info.fourcc, VID_IVF_VP8);
    assert_int_equal(vpx_codec_dec_init(&dec, vpx_codec_vp8_dx(), NULL, 0), VPX_CODEC_OK);
    int i = 0;
    while (vid_ivf_next(&r, &f, &sz, &pts) == 1) {
        assert_int_equal(pts, i);
        if (vid_vp8_is_keyframe(f, sz) != (i % chunk_frames == 0))
            fail_msg("%dx%d frame %d: key frame %d, chunks of %d", out.width, out.height, i,
                     vid_vp8_is_keyframe(f, sz), chunk_frames);
        assert_int_equal(vpx_codec_decode(&dec, f, sz, NULL, 0), VPX_CODEC_OK);
        vpx_codec_iter_t it = NULL;
        assert_non_null(vpx_codec_get_frame(&dec, &it));
        i++;
    }
    assert_int_equal(i, src->nframes);
    vpx_codec_destroy(&dec);

    /* 3. PSNR against the scaled source, measured independently on libavcodec's output, agrees
     * with the encoder's own figure and clears 30 dB. */
    uint8_t *ref = malloc(vid_frame_size(out.width, out.height));
    double sum = 0;
    for (int k = 0; k < src->nframes; k++) {
        const uint8_t *a[3], *b[3];
        int as[3], bs[3];
        uint64_t sse[3];
        scale_frame(src, k, out, ref);
        vid_frame_planes(ref, out.width, out.height, a, as);
        vid_frame_planes(d.frames + (size_t)k * d.frame_size, out.width, out.height, b, bs);
        uint64_t n = vid_psnr_frame(a, as, b, bs, out.width, out.height, sse);
        sum += vid_psnr_db(sse[0] + sse[1] + sse[2], n);
    }
    double psnr = sum / src->nframes;
    assert_int_equal(st->frames, src->nframes);
    if (fabs(psnr - vid_stats_psnr(st)) > 0.01 || psnr < 30.0)
        fail_msg("%dx%d: PSNR %.3f dB measured, %.3f dB reported", out.width, out.height, psnr,
                 vid_stats_psnr(st));
    free(ref);
    vid_video_free(&d);
}

static void run(const vid_video *v, int chunk_frames, const vid_size *rend, int nrend)
{
    for (int r = 0; r < nrend; r++) {
        size_t len = 0;
        vid_stats st;
        uint8_t *ivf = encode_stitched(v, chunk_frames, rend[r], &len, &st);
        check_stream(v, ivf, len, rend[r], chunk_frames, &st);
        free(ivf);
    }
}

static void test_chunks_uneven(void **state)
{
    (void)state;
    vid_video v = load("src.mp4", 320, 240, 30);
    const vid_size rend[] = {{320, 240}, {160, 120}, {96, 54}};
    run(&v, 8, rend, 3); /* 8 + 8 + 8 + 6 */
    vid_video_free(&v);
}

static void test_continuous_and_chunk_of_one(void **state)
{
    (void)state;
    vid_video v = load("short.mp4", 160, 120, 12);
    const vid_size rend[] = {{160, 120}};
    run(&v, 12, rend, 1);  /* one continuous stream: one key frame */
    run(&v, 100, rend, 1); /* chunk longer than the video */
    run(&v, 1, rend, 1);   /* every frame a key frame */
    vid_video_free(&v);
}

static void test_odd_size(void **state)
{
    (void)state;
    vid_video v = load("odd.mkv", 321, 241, 10);
    assert_int_equal(v.width, 321);
    const vid_size rend[] = {{320, 240}, {160, 90}};
    run(&v, 4, rend, 2);
    vid_video_free(&v);
}

static void test_single_frame(void **state)
{
    (void)state;
    vid_video v = load("one.mp4", 320, 240, 1);
    const vid_size rend[] = {{320, 240}, {160, 120}};
    run(&v, 24, rend, 2);
    vid_video_free(&v);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    uint8_t frame[64 * 48 * 3 / 2] = {0};
    vid_enc_cfg cfg = {10, 5, 1, 20, 1};
    uint8_t *ivf = NULL;
    size_t len = 0;
    vid_stats st;
    /* Upscaling, odd sizes and no frames are refused. */
    assert_int_equal(vid_encode_chunk(frame, 1, 64, 48, (vid_size){128, 96}, &cfg, &ivf, &len, &st,
                                      err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(vid_encode_chunk(frame, 1, 64, 48, (vid_size){33, 24}, &cfg, &ivf, &len, &st,
                                      err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(vid_encode_chunk(frame, 0, 64, 48, (vid_size){64, 48}, &cfg, &ivf, &len, &st,
                                      err, sizeof(err)),
                     -EINVAL);
    assert_null(ivf);
    /* A flat grey frame encodes (and decodes back) perfectly. */
    memset(frame, 128, sizeof(frame));
    assert_int_equal(vid_encode_chunk(frame, 1, 64, 48, (vid_size){64, 48}, &cfg, &ivf, &len, &st,
                                      err, sizeof(err)),
                     0);
    assert_true(vid_stats_psnr(&st) > 50);
    free(ivf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chunks_uneven), cmocka_unit_test(test_continuous_and_chunk_of_one),
        cmocka_unit_test(test_odd_size),      cmocka_unit_test(test_single_frame),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
