/*
 * ivf.h - the IVF container (the simple framing vpxenc writes) and stitching of chunk streams.
 *
 * An IVF stream is a 32-byte file header ("DKIF", version 0, header size 32, fourcc, width,
 * height, time base denominator ("rate") and numerator ("scale"), frame count) followed by frames,
 * each a 12-byte header (payload size, 64-bit pts in time-base units) and the payload. All fields
 * are little-endian. Chunks encoded independently each start at pts 0; stitching concatenates
 * their frames in order and renumbers pts and the frame count so the result is one stream that
 * plays from start to end.
 */
#ifndef VID_IVF_H
#define VID_IVF_H

#include <stddef.h>
#include <stdint.h>

#define VID_IVF_HEADER 32
#define VID_IVF_FRAME_HEADER 12
#define VID_IVF_VP8 0x30385056u /* "VP80" */

typedef struct {
    uint32_t fourcc;
    int width, height;
    uint32_t rate, scale; /* frame rate = rate / scale; pts are in units of scale / rate s */
    uint32_t nframes;
} vid_ivf_info;

/* A read-only byte range. */
typedef struct {
    const void *data;
    size_t len;
} vid_span;

/* Writes the 32-byte file header for info to dst. */
void vid_ivf_put_header(uint8_t dst[VID_IVF_HEADER], const vid_ivf_info *info);
/* Writes a 12-byte frame header to dst. */
void vid_ivf_put_frame_header(uint8_t dst[VID_IVF_FRAME_HEADER], uint32_t size, uint64_t pts);
/* Parses the file header of data[0..len). Returns 0 or -EBADMSG. */
int vid_ivf_parse_header(const void *data, size_t len, vid_ivf_info *info);

/* Iterates the frames of an IVF stream; init with vid_ivf_reader_init (which checks the header). */
typedef struct {
    const uint8_t *data;
    size_t len, off;
    vid_ivf_info info;
} vid_ivf_reader;
int vid_ivf_reader_init(vid_ivf_reader *r, const void *data, size_t len);
/* Returns 1 with the next frame, 0 at a clean end, -EBADMSG on a truncated frame. */
int vid_ivf_next(vid_ivf_reader *r, const uint8_t **frame, uint32_t *size, uint64_t *pts);

/* 1 if a VP8 frame is a key frame (bit 0 of its frame tag is clear), else 0. */
int vid_vp8_is_keyframe(const uint8_t *frame, size_t len);

/* Concatenates the frames of n IVF chunk streams (in order; all with the same fourcc, size and
 * time base) into one malloc'd IVF stream whose pts run 0,1,2,... and whose header counts every
 * frame. On success *out and *out_len hold the result (free() it); *nframes and *nkey (key
 * frames) are set if non-NULL. Returns 0, -EBADMSG (a malformed or mismatched chunk; message in
 * err) or -ENOMEM. */
int vid_ivf_stitch(const vid_span *chunks, int n, uint8_t **out, size_t *out_len, uint32_t *nframes,
                   uint32_t *nkey, char *err, size_t errlen);

#endif
