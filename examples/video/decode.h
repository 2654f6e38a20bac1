/*
 * decode.h - decodes the video stream of a media file held in memory into raw YUV420P frames.
 *
 * Any container and codec libavformat/libavcodec read; other streams (audio, subtitles, cover
 * art) are ignored. Frames keep the source's size (odd sizes too) and are converted to planar
 * 8-bit YUV420P with libswscale when the codec delivers another pixel format. Frames are stored
 * back to back, each laid out tightly: Y (w*h), then U and V (ceil(w/2)*ceil(h/2) each).
 */
#ifndef VID_DECODE_H
#define VID_DECODE_H

#include <stddef.h>
#include <stdint.h>

#define VID_MAX_SOURCE_DIM 16383 /* VP8's limit */

typedef struct {
    int width, height;    /* source size in pixels */
    int fps_num, fps_den; /* frame rate fps_num / fps_den (25/1 when the file does not say) */
    int nframes;          /* decoded frames */
    size_t frame_size;    /* bytes per frame: vid_frame_size(width, height) */
    uint8_t *frames;      /* nframes * frame_size bytes, owned; free with vid_video_free */
    char codec[32];       /* the source's codec name, e.g. "h264" */
    char container[64];   /* the container's name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
} vid_video;

/* Bytes of one tightly packed w x h YUV420P frame. */
size_t vid_frame_size(int w, int h);

/* Plane pointers and strides of frame i of a tightly packed YUV420P buffer. */
void vid_frame_planes(const uint8_t *frame, int w, int h, const uint8_t *planes[3], int strides[3]);

/* Decodes data[0..len) into *out (zeroed first) with up to threads decoder threads (0: one per
 * core). The decoded frames may take at most max_raw bytes. Returns 0; -EINVAL when the input is
 * not a video libav can decode (not a media file, no video stream, no decoder, a decoding error,
 * zero frames); -EFBIG when the frames would exceed max_raw or the size exceeds VID_MAX_SOURCE_DIM;
 * -ENOMEM. On error err holds a message for the user and *out holds nothing. Thread-compatible:
 * calls on different vid_videos may run at once. */
int vid_decode(const void *data, size_t len, size_t max_raw, int threads, vid_video *out, char *err,
               size_t errlen);

/* Called by vid_decode_cb after each frame is stored: v->nframes counts it, v->width, height,
 * frame_size, fps and codec are set, and v->frames holds every frame so far (it may move between
 * calls, so keep offsets, not pointers). Returns 0 to go on, or a negative errno (message in err)
 * that stops decoding: vid_decode_cb then fails with that value. */
typedef int (*vid_frame_cb)(void *arg, const vid_video *v, char *err, size_t errlen);
/* vid_decode, calling cb(cb_arg, ...) after every frame (cb may be NULL), so that a caller can
 * pass frames on while later ones are still being decoded. */
int vid_decode_cb(const void *data, size_t len, size_t max_raw, int threads, vid_video *out,
                  vid_frame_cb cb, void *cb_arg, char *err, size_t errlen);
/* Frees what vid_decode allocated and zeroes *v; safe on a zeroed or freed vid_video. */
void vid_video_free(vid_video *v);

#endif
