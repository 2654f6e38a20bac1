/*
 * params.h - the video pipeline's parameters, parsed from the invocation's query string.
 *
 * Keys: chunk_frames (1..10000, default 24), renditions (comma-separated WIDTHxHEIGHT, even,
 * 2..8192, at most VID_MAX_RENDITIONS, default 1280x720,854x480,640x360), cq (0..63, default
 * VID_DEFAULT_CQ) and cpu_used (0..5, default VID_DEFAULT_CPU_USED: libvpx's good-quality mode
 * clamps anything faster to 5, so larger values are refused). Values are checked strictly
 * and a bad one is reported with the parameter's name and its allowed range. Keys this module does
 * not know (group=N and the platform's own keys) are left alone.
 */
#ifndef VID_PARAMS_H
#define VID_PARAMS_H

#include <stddef.h>

#define VID_MAX_RENDITIONS 8
#define VID_DEFAULT_CHUNK_FRAMES 24
#define VID_DEFAULT_CQ 20
#define VID_DEFAULT_CPU_USED 5
#define VID_MAX_CHUNK_FRAMES 10000
#define VID_MAX_DIM 8192

typedef struct {
    int width, height;
} vid_size;

typedef struct {
    int chunk_frames; /* frames per chunk; every chunk starts with a key frame */
    int nrend;        /* entries used in rend[] */
    vid_size rend[VID_MAX_RENDITIONS];
    int cq;       /* libvpx constant-quality level, 0 (best) .. 63 */
    int cpu_used; /* libvpx speed/quality trade-off, 0 (slow) .. 5 */
} vid_params;

/* Fills p with the defaults. */
void vid_params_default(vid_params *p);

/* Parses a query string (without the '?'; NULL or "" means all defaults) into p, starting from the
 * defaults. Returns 0, or -EINVAL with a message naming the parameter in err. */
int vid_params_parse(const char *query, vid_params *p, char *err, size_t errlen);

/* The renditions actually produced for a src_w x src_h source: those of p that do not upscale the
 * source in either dimension, duplicates dropped, in the order given; if none fits, one rendition
 * of the source's size rounded down to even. Returns the count (>= 1) written to out (room for
 * VID_MAX_RENDITIONS), or -EINVAL with a message in err when the source is smaller than 2x2. */
int vid_params_fit(const vid_params *p, int src_w, int src_h, vid_size *out, char *err,
                   size_t errlen);

#endif
