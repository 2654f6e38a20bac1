/*
 * pipeline.h - the stages of the video-abr function, separated from the collectives that connect
 * them so that each stage can be tested (and a whole group simulated) in one process.
 *
 *   rank 0: decode, then bcast a vid_job (or its failure) to every rank;
 *   scatter: rank k receives the raw frames of its chunks;
 *   vid_encoder_*: every rank encodes each of its chunks at every rendition, producing one
 *       shuffle message per destination rank (rendition r goes to rank vid_job_owner(r)).
 *       video_abr.c streams: rank 0 sends each chunk as soon as it is decoded, round robin, and
 *       the ranks encode chunks as they arrive; vid_stage_encode is the same stage for a
 *       contiguous run of chunks (vid_job_part) received all at once (the tests, the baseline);
 *   vid_stage_stitch: every rank stitches the renditions it owns from the messages it received,
 *       producing its gather message (statistics, timings and the stitched streams);
 *   vid_stage_package: rank 0 turns the gathered messages into manifest.json plus one .ivf per
 *       rendition, ready for vid_tar_write.
 * A rank that fails still takes part in the remaining collectives with an error message in place
 * of its data, so every rank stops cleanly and rank 0 reports which rank failed and why.
 *
 * Messages are plain little-endian structs of fixed-width fields (the platform only runs ranks of
 * one architecture, x86-64) behind a magic, a version and lengths that are checked on receipt.
 */
#ifndef VID_PIPELINE_H
#define VID_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "encode.h"
#include "ivf.h"
#include "params.h"
#include "tar.h"

#define VID_JOB_MAGIC 0x424f4a56u /* "VJOB" */
#define VID_WIRE_VERSION 1

/* What rank 0 broadcasts after decoding: the whole plan of the invocation. */
typedef struct {
    uint32_t magic, version;
    int32_t status;        /* 0, or nonzero: rank 0 failed and msg says why */
    int32_t width, height; /* source size */
    int32_t fps_num, fps_den;
    int32_t nframes, chunk_frames;
    int32_t cq, cpu_used;
    int32_t nrend; /* renditions actually produced (after vid_params_fit) */
    int32_t rend_w[VID_MAX_RENDITIONS], rend_h[VID_MAX_RENDITIONS];
    uint64_t input_bytes; /* size of the file rank 0 decoded */
    double decode_ms;
    char codec[32], container[64];
    char msg[256]; /* NUL-terminated */
} vid_job;

/* The frames of one rank: chunks [first_chunk, first_chunk + nchunks) = frames [first_frame,
 * first_frame + nframes). */
typedef struct {
    int first_chunk, nchunks, first_frame, nframes;
} vid_part;

/* An owned, growable byte buffer (a message being built). */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} vid_buf;

/* What one rank measured, carried to rank 0 in its gather message. Filled by the caller except
 * where noted. */
typedef struct {
    int32_t rank, chunks, frames, reserved;              /* reserved: 0 */
    double scatter_ms, encode_ms, shuffle_ms, stitch_ms; /* encode/stitch: set by the stages */
    uint64_t scatter_bytes;                              /* raw frame bytes this rank received */
    uint64_t shuffle_sent, shuffle_recv;                 /* bytes to/from other ranks */
    vid_stats enc;                                       /* all its chunks, all renditions */
} vid_rank_info;

/* What rank 0 measured outside the stages, for the manifest. */
typedef struct {
    double scatter_ms, gather_ms, start_ms; /* start_ms: invocation start on the CLOCK_MONOTONIC
                                               millisecond scale of vid_now_ms */
    uint64_t scatter_bytes;                 /* raw frame bytes scattered to other ranks */
    uint64_t bcast_bytes;                   /* job bytes broadcast to other ranks */
} vid_root_info;

/* manifest.json and the rendition streams; entries point into the manifest and into the gathered
 * messages, so those must outlive the package. */
typedef struct {
    char *manifest;
    vid_tar_entry entries[1 + VID_MAX_RENDITIONS];
    char names[VID_MAX_RENDITIONS][32];
    int n;
} vid_package;

/* CLOCK_MONOTONIC in milliseconds. */
double vid_now_ms(void);

void vid_buf_free(vid_buf *b);

/* Fills j for a successful decode of v with renditions rend[0..nrend). */
void vid_job_init(vid_job *j, const vid_params *p, const vid_video *v, const vid_size *rend,
                  int nrend, uint64_t input_bytes, double decode_ms);
/* Fills j as a failure with message msg. */
void vid_job_fail(vid_job *j, const char *msg);
/* Checks a received job (magic, version, ranges) and copies it to j. Returns 0 or -EBADMSG. */
int vid_job_read(const void *data, size_t len, vid_job *j);

int vid_job_nchunks(const vid_job *j);
/* The contiguous run of chunks of rank `rank` in a group of `size`: chunks are dealt out as evenly
 * as possible, earlier ranks getting the smaller share; ranks beyond the chunk count get none. */
vid_part vid_job_part(const vid_job *j, int size, int rank);
/* The rank that stitches rendition r. */
int vid_job_owner(int r, int size);

/* Encodes the part's frames (frames[0..len), exactly part.nframes frames) at every rendition with
 * `threads` libvpx threads, and builds send[0..size): the shuffle message for each rank. Sets
 * info->chunks, frames, encode_ms and enc. On failure send[] holds error messages instead (still
 * one per rank, ready to shuffle) and the error is returned with its text in err; when not even
 * those could be built, every send[] is empty (data NULL) and -ENOMEM is returned. */
int vid_stage_encode(const vid_job *j, int size, int rank, const void *frames, size_t len,
                     int threads, vid_buf *send, vid_rank_info *info, char *err, size_t errlen);

/* An encode stage fed one chunk at a time, in any order (as chunks arrive while rank 0 is still
 * decoding): begin, add each chunk, end. The job is read at every add; only its frame count may
 * change in between (it is not needed to encode a chunk). */
typedef struct {
    const vid_job *job;
    int size, rank, threads;
    vid_buf *send;  /* send[0..size): the shuffle messages being built */
    uint32_t *nrec; /* records per message */
    vid_rank_info *info;
    double t0;
} vid_encoder;

/* Starts the shuffle messages send[0..size) and zeroes info's chunk, frame and encoding counts.
 * Returns 0 or -ENOMEM (then call vid_encoder_end all the same). */
int vid_encoder_begin(vid_encoder *e, const vid_job *j, int size, int rank, int threads,
                      vid_buf *send, vid_rank_info *info, char *err, size_t errlen);
/* Encodes chunk `chunk` (nframes tightly packed frames at the job's size) at every rendition and
 * appends the records to the shuffle messages; counts it in info. 0 or an error (text in err). */
int vid_encoder_add(vid_encoder *e, int chunk, const void *frames, int nframes, char *err,
                    size_t errlen);
/* Ends the stage with status rc (0, or the error that stopped it, text in err): sets
 * info->encode_ms and the messages' record counts, or on error replaces send[] with error
 * messages. Returns rc, or -ENOMEM when not even the error messages could be built (send[] then
 * empty). */
int vid_encoder_end(vid_encoder *e, int rc, const char *err);

/* Builds the error message a failed rank shuffles or gathers in place of its data. */
int vid_msg_error(vid_buf *out, int rank, const char *msg);

/* Stitches the renditions this rank owns from recv[0..size) (recv[k] came from rank k) and builds
 * its gather message in *out, embedding *info (whose stitch_ms it sets). If a peer failed, or
 * stitching fails, *out is an error message naming the failing rank and that error is returned
 * (-ECANCELED for a peer's failure); when not even that could be built, out->data is NULL and
 * -ENOMEM is returned. */
int vid_stage_stitch(const vid_job *j, int size, int rank, const vid_span *recv, vid_buf *out,
                     vid_rank_info *info, char *err, size_t errlen);

/* At rank 0: checks the gathered messages parts[0..size) and builds manifest.json and the tar
 * entries in *pkg. Returns 0; -ECANCELED when a rank reported a failure (err: "rank k: ...");
 * -EBADMSG for a malformed message; -ENOMEM. */
int vid_stage_package(const vid_job *j, int size, const vid_span *parts, const vid_root_info *root,
                      vid_package *pkg, char *err, size_t errlen);
void vid_package_free(vid_package *pkg);

#endif
