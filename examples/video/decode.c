/*
 * decode.c - libavformat demuxing from a memory buffer and libavcodec decoding to YUV420P.
 *
 * The input is read through a custom AVIOContext over the caller's buffer (with seeking, which
 * MP4 files whose index is at the end need). The first video stream that is not cover art is
 * decoded; each frame is copied (or converted with libswscale) into one growing buffer of tightly
 * packed frames, bounded by the caller's max_raw before anything is allocated.
 */
#include "decode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>

#define AVIO_BUF 65536

typedef struct {
    const uint8_t *data;
    size_t len, pos;
} membuf;

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    membuf *m = opaque;
    size_t left = m->len - m->pos;
    if (left == 0)
        return AVERROR_EOF;
    if ((size_t)size > left)
        size = (int)left;
    memcpy(buf, m->data + m->pos, (size_t)size);
    m->pos += (size_t)size;
    return size;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence)
{
    membuf *m = opaque;
    int64_t base;
    switch (whence & ~AVSEEK_FORCE) {
    case AVSEEK_SIZE:
        return (int64_t)m->len;
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = (int64_t)m->pos;
        break;
    case SEEK_END:
        base = (int64_t)m->len;
        break;
    default:
        return AVERROR(EINVAL);
    }
    if (offset < -base || base + offset > (int64_t)m->len)
        return AVERROR(EINVAL);
    m->pos = (size_t)(base + offset);
    return (int64_t)m->pos;
}

size_t vid_frame_size(int w, int h)
{
    size_t cw = (size_t)(w + 1) / 2, ch = (size_t)(h + 1) / 2;
    return (size_t)w * (size_t)h + 2 * cw * ch;
}

void vid_frame_planes(const uint8_t *frame, int w, int h, const uint8_t *planes[3], int strides[3])
{
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    planes[0] = frame;
    planes[1] = frame + (size_t)w * h;
    planes[2] = planes[1] + (size_t)cw * ch;
    strides[0] = w;
    strides[1] = strides[2] = cw;
}

void vid_video_free(vid_video *v)
{
    free(v->frames);
    memset(v, 0, sizeof(*v));
}

static void averr(char *err, size_t errlen, const char *what, int code)
{
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(code, msg, sizeof(msg));
    snprintf(err, errlen, "%s: %s", what, msg);
}

typedef struct {
    vid_video *v;
    size_t cap;  /* frames the buffer has room for */
    size_t hint; /* frames the container announces (0: unknown) */
    size_t max_raw;
    struct SwsContext *sws;
    char *err;
    size_t errlen;
    vid_frame_cb cb; /* NULL: none */
    void *cb_arg;
} sink;

/* Asks for transparent huge pages on the whole 2 MiB pages of a large frame buffer: a 720p clip
 * is hundreds of MB written once, and faulting it in 4 KiB pages costs a tenth of the decode
 * time. Only advice: where THP is off (or the call is refused) nothing changes. */
static void advise_huge(void *p, size_t len)
{
    const uintptr_t huge = 2u << 20;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + len) & ~(huge - 1);
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
}

/* Appends one decoded frame to the video, converting it to YUV420P at the source size. */
static int sink_frame(sink *s, const AVFrame *f)
{
    vid_video *v = s->v;
    if ((size_t)v->nframes == s->cap) {
        size_t max_frames = s->max_raw / v->frame_size;
        if ((size_t)v->nframes >= max_frames) {
            snprintf(s->err, s->errlen,
                     "video too long: more than %zu frames of %dx%d exceed the %zu MiB limit on "
                     "decoded frames",
                     max_frames, v->width, v->height, s->max_raw >> 20);
            return -EFBIG;
        }
        /* Start at the announced count (exactly right for most files); grow by half. */
        size_t cap = s->cap                             ? s->cap + s->cap / 2 + 1
                     : s->hint && s->hint <= max_frames ? s->hint
                                                        : 64;
        if (cap > max_frames)
            cap = max_frames;
        uint8_t *p = realloc(v->frames, cap * v->frame_size);
        if (!p) {
            snprintf(s->err, s->errlen, "out of memory holding %zu decoded frames", cap);
            return -ENOMEM;
        }
        v->frames = p;
        s->cap = cap;
        advise_huge(p, cap * v->frame_size);
    }
    uint8_t *dst = v->frames + (size_t)v->nframes * v->frame_size;
    if (f->format == AV_PIX_FMT_YUV420P && f->width == v->width && f->height == v->height) {
        int r = av_image_copy_to_buffer(dst, (int)v->frame_size, (const uint8_t *const *)f->data,
                                        f->linesize, AV_PIX_FMT_YUV420P, v->width, v->height, 1);
        if (r < 0) {
            averr(s->err, s->errlen, "copying a decoded frame", r);
            return -EINVAL;
        }
    } else {
        /* Another pixel format, or a mid-stream size change: convert to the first frame's size. */
        s->sws = sws_getCachedContext(s->sws, f->width, f->height, f->format, v->width, v->height,
                                      AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
        if (!s->sws) {
            snprintf(s->err, s->errlen, "cannot convert %s frames to yuv420p",
                     av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "unknown");
            return -EINVAL;
        }
        const uint8_t *planes[3];
        int strides[3];
        vid_frame_planes(dst, v->width, v->height, planes, strides);
        uint8_t *dplanes[4] = {(uint8_t *)planes[0], (uint8_t *)planes[1], (uint8_t *)planes[2],
                               NULL};
        int dstrides[4] = {strides[0], strides[1], strides[2], 0};
        sws_scale(s->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dplanes,
                  dstrides);
    }
    v->nframes++;
    return s->cb ? s->cb(s->cb_arg, v, s->err, s->errlen) : 0;
}

/* Sends one packet (NULL: flush) and drains the frames it produced into the sink. */
static int decode_packet(AVCodecContext *dec, const AVPacket *pkt, AVFrame *frame, sink *s)
{
    int r = avcodec_send_packet(dec, pkt);
    if (r < 0 && r != AVERROR_EOF) {
        char what[96];
        snprintf(what, sizeof(what), "decoding %s video failed after %d frames",
                 avcodec_get_name(dec->codec_id), s->v->nframes);
        averr(s->err, s->errlen, what, r);
        return -EINVAL;
    }
    for (;;) {
        r = avcodec_receive_frame(dec, frame);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF)
            return 0;
        if (r < 0) {
            char what[96];
            snprintf(what, sizeof(what), "decoding %s video failed after %d frames",
                     avcodec_get_name(dec->codec_id), s->v->nframes);
            averr(s->err, s->errlen, what, r);
            return -EINVAL;
        }
        if (s->v->width == 0) {
            /* The first frame fixes the output size. */
            if (frame->width < 1 || frame->height < 1 || frame->width > VID_MAX_SOURCE_DIM ||
                frame->height > VID_MAX_SOURCE_DIM) {
                snprintf(s->err, s->errlen, "video size %dx%d is outside 1x1..%dx%d", frame->width,
                         frame->height, VID_MAX_SOURCE_DIM, VID_MAX_SOURCE_DIM);
                av_frame_unref(frame);
                return -EFBIG;
            }
            s->v->width = frame->width;
            s->v->height = frame->height;
            s->v->frame_size = vid_frame_size(frame->width, frame->height);
        }
        r = sink_frame(s, frame);
        av_frame_unref(frame);
        if (r < 0)
            return r;
    }
}

int vid_decode(const void *data, size_t len, size_t max_raw, int threads, vid_video *out, char *err,
               size_t errlen)
{
    return vid_decode_cb(data, len, max_raw, threads, out, NULL, NULL, err, errlen);
}

int vid_decode_cb(const void *data, size_t len, size_t max_raw, int threads, vid_video *out,
                  vid_frame_cb cb, void *cb_arg, char *err, size_t errlen)
{
    membuf mem = {data, len, 0};
    AVFormatContext *fmt = NULL;
    AVIOContext *avio = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = NULL;
    AVFrame *frame = NULL;
    uint8_t *iobuf = NULL;
    sink s = {out, 0, 0, max_raw, NULL, err, errlen, cb, cb_arg};
    int rc = -ENOMEM, r;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        snprintf(err, errlen, "input is empty; send a video file as the request body");
        return -EINVAL;
    }
    if (len > INT64_MAX / 2) {
        snprintf(err, errlen, "input too large");
        return -EFBIG;
    }
    if (!(fmt = avformat_alloc_context()) || !(iobuf = av_malloc(AVIO_BUF)) ||
        !(avio = avio_alloc_context(iobuf, AVIO_BUF, 0, &mem, mem_read, NULL, mem_seek))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    iobuf = NULL; /* owned by avio now */
    fmt->pb = avio;
    fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    if ((r = avformat_open_input(&fmt, NULL, NULL, NULL)) < 0) {
        /* avformat_open_input frees fmt on failure. */
        averr(err, errlen, "input is not a video file libavformat can read", r);
        rc = -EINVAL;
        goto fail;
    }
    if ((r = avformat_find_stream_info(fmt, NULL)) < 0) {
        averr(err, errlen, "input is not a readable media file", r);
        rc = -EINVAL;
        goto fail;
    }
    int vs = -1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        const AVStream *st = fmt->streams[i];
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
            !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
            vs = (int)i;
            break;
        }
    }
    if (vs < 0) {
        snprintf(err, errlen, "input has no video stream (%s file with %u stream%s)",
                 fmt->iformat->name, fmt->nb_streams, fmt->nb_streams == 1 ? "" : "s");
        rc = -EINVAL;
        goto fail;
    }
    AVStream *st = fmt->streams[vs];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec) {
        snprintf(err, errlen, "no decoder for the input's video codec %s",
                 avcodec_get_name(st->codecpar->codec_id));
        rc = -EINVAL;
        goto fail;
    }
    if (!(dec = avcodec_alloc_context3(codec)) || !(pkt = av_packet_alloc()) ||
        !(frame = av_frame_alloc())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((r = avcodec_parameters_to_context(dec, st->codecpar)) < 0 ||
        (dec->thread_count = threads < 0 ? 1 : threads, r = avcodec_open2(dec, codec, NULL)) < 0) {
        averr(err, errlen, "cannot open the video decoder", r);
        rc = -EINVAL;
        goto fail;
    }
    for (unsigned i = 0; i < fmt->nb_streams; i++)
        if ((int)i != vs)
            fmt->streams[i]->discard = AVDISCARD_ALL;
    AVRational fps = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    if (fps.num <= 0 || fps.den <= 0)
        fps = (AVRational){25, 1};
    av_reduce(&fps.num, &fps.den, fps.num, fps.den, 1 << 16);
    snprintf(out->codec, sizeof(out->codec), "%s", avcodec_get_name(st->codecpar->codec_id));
    snprintf(out->container, sizeof(out->container), "%s", fmt->iformat->name);
    out->fps_num = fps.num;
    out->fps_den = fps.den;
    if (st->nb_frames > 0 && st->nb_frames < INT32_MAX)
        s.hint = (size_t)st->nb_frames;

    for (;;) {
        r = av_read_frame(fmt, pkt);
        if (r == AVERROR_EOF)
            break;
        if (r < 0) {
            /* A truncated file: keep what decoded so far, as players do. */
            break;
        }
        if (pkt->stream_index == vs)
            rc = decode_packet(dec, pkt, frame, &s);
        else
            rc = 0;
        av_packet_unref(pkt);
        if (rc < 0)
            goto fail;
    }
    if ((rc = decode_packet(dec, NULL, frame, &s)) < 0)
        goto fail;
    if (out->nframes == 0) {
        snprintf(err, errlen, "input's %s video stream has no decodable frames",
                 avcodec_get_name(st->codecpar->codec_id));
        rc = -EINVAL;
        goto fail;
    }
    if ((size_t)out->nframes < s.cap) {
        /* Give back what an overestimate reserved; keep the old block if shrinking fails. */
        uint8_t *p = realloc(out->frames, (size_t)out->nframes * out->frame_size);
        if (p)
            out->frames = p;
    }
    rc = 0;
    goto done;
fail:
    free(out->frames);
    memset(out, 0, sizeof(*out));
done:
    sws_freeContext(s.sws);
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    if (avio) {
        av_freep(&avio->buffer);
        avio_context_free(&avio);
    }
    av_free(iobuf);
    return rc;
}
