/*
 * psnr.h - peak signal-to-noise ratio of 8-bit planes, as vpxenc and ffmpeg report it.
 *
 * A frame's combined PSNR pools the squared error of its Y, U and V planes over all their samples;
 * a stream's "psnr" is the mean of its frames' combined PSNR. Identical planes give
 * VID_PSNR_MAX dB rather than infinity.
 */
#ifndef VID_PSNR_H
#define VID_PSNR_H

#include <stddef.h>
#include <stdint.h>

#define VID_PSNR_MAX 100.0

/* Sum of squared differences of two w x h 8-bit planes with the given row strides. */
uint64_t vid_psnr_sse(const uint8_t *a, ptrdiff_t astride, const uint8_t *b, ptrdiff_t bstride,
                      int w, int h);

/* PSNR in dB of a total squared error over a number of 8-bit samples, capped at VID_PSNR_MAX. */
double vid_psnr_db(uint64_t sse, uint64_t samples);

/* Squared error of one YUV420P frame against another, each given as three plane pointers and
 * strides; sse[0..2] receives the per-plane errors. Returns the sample count (all planes). */
uint64_t vid_psnr_frame(const uint8_t *const a[3], const int astride[3], const uint8_t *const b[3],
                        const int bstride[3], int w, int h, uint64_t sse[3]);

#endif
