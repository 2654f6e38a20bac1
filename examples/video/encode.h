/*
 * encode.h - encodes one chunk of raw frames at one rendition: libswscale to scale, libvpx VP8 in
 * constant-quality mode, a key frame at the chunk's first frame and nowhere else.
 *
 * The output is an IVF stream of its own (pts 0..n-1) that decodes without any other chunk, so
 * chunks can be encoded anywhere and stitched with vid_ivf_stitch. While encoding, every frame is
 * decoded back with libvpx and compared with the scaled source it was made from, so the PSNR is
 * that of the encoding alone ("against the scaled source").
 */
#ifndef VID_ENCODE_H
#define VID_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "params.h"

typedef struct {
    int cq;               /* VP8E_SET_CQ_LEVEL, 0..63 */
    int cpu_used;         /* VP8E_SET_CPUUSED, 0..5 in good-quality mode */
    int threads;          /* libvpx g_threads (1 in a function: one core per rank) */
    int fps_num, fps_den; /* frame rate of the source */
} vid_enc_cfg;

/* Statistics of an encoded run of frames; they add up across chunks with vid_stats_add. */
typedef struct {
    uint64_t frames, keyframes, bytes;    /* bytes: encoded payload, without IVF framing */
    uint64_t sse, samples;                /* squared error and sample count over all planes */
    double psnr_sum, psnr_y_sum;          /* sums of per-frame combined and luma PSNR */
    double scale_ms, encode_ms, check_ms; /* CPU time scaling, in libvpx encoding, decoding back
                                             (CLOCK_PROCESS_CPUTIME_ID) */
} vid_stats;

/* Adds b into a. */
void vid_stats_add(vid_stats *a, const vid_stats *b);
/* Mean per-frame combined PSNR in dB (0 for no frames). */
double vid_stats_psnr(const vid_stats *s);

/* Encodes nframes tightly packed YUV420P frames of src_w x src_h (frames[0..nframes*
 * vid_frame_size)) at size out (even sides, not larger than the source). On success *ivf and
 * *ivf_len hold the chunk's IVF stream (free() it) and *st its statistics. Returns 0, -EINVAL
 * (bad arguments or a libvpx/libswscale failure; message in err) or -ENOMEM. */
int vid_encode_chunk(const uint8_t *frames, int nframes, int src_w, int src_h, vid_size out,
                     const vid_enc_cfg *cfg, uint8_t **ivf, size_t *ivf_len, vid_stats *st,
                     char *err, size_t errlen);

#endif
