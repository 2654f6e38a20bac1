/*
 * video_abr.c - the video-abr function: ExCamera-style adaptive-bitrate encoding by a group.
 *
 * POST /v1/functions/video-abr/invoke?group=N with a video file as the body answers a tar
 * (application/x-tar) of manifest.json and one VP8 IVF stream per rendition. Query parameters:
 * chunk_frames, renditions, cq, cpu_used (see params.h). The flow (see pipeline.h):
 *
 *   rank 0   decode the input (libavcodec) -> bcast the plan -> scatter raw frame chunks
 *   all      encode each of its chunks at every rendition (libswscale + libvpx, 1 thread)
 *   all      shuffle: every chunk of rendition r to rank r mod N, which stitches them
 *   all      gather the stitched renditions and statistics to rank 0, which writes the tar
 *
 * Outside a group (N = 1) every collective hands a rank its own data and the same code runs in
 * one process. Bad input (not a video, bad parameters) answers HTTP 400 with a JSON error body
 * {"error":{"code":"bad_input","message":...}}; any other failure, including a failed rank, is a
 * shoal_error naming the rank.
 *
 * Memory: rank 0 holds the input, all decoded frames (w*h*1.5 bytes each, at most
 * VIDEO_MAX_RAW) and, if the transport copies, the scattered frames once more; other ranks hold
 * their share of frames and a few MB of encoder state. The 280-frame 1280x720 sample decodes to
 * 387 MB: deploy with memory_mb=2048 (1024 fits the sample with a copying scatter).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <libavutil/log.h>
#include <shoal.h>

#include "pipeline.h"

#define VIDEO_MAX_RAW (1ULL << 30) /* decoded frames, bytes */

/* Answers 400 with a JSON error body: the request was at fault, not the function. */
static int answer_bad_input(shoal_ctx *ctx, const char *msg)
{
    json_t *o = json_pack("{s:{s:s, s:s}}", "error", "code", "bad_input", "message", msg);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    shoal_log(ctx, "video-abr: bad input: %s", msg);
    if (!body)
        return shoal_error(ctx, "bad input: %s", msg);
    int r = shoal_output(ctx, body, strlen(body));
    free(body);
    if (r < 0 || shoal_set_meta(ctx, "status", "400") < 0 ||
        shoal_set_meta(ctx, "header:content-type", "application/json") < 0)
        return shoal_error(ctx, "bad input: %s", msg);
    return 0;
}

/* Rank 0: parses the parameters and decodes the input into *v, and fills *job with the plan or
 * the failure (job->status); *bad_input says whether a failure was the request's fault. */
static void plan(shoal_ctx *ctx, vid_job *job, vid_video *v, int *bad_input)
{
    char err[1024];
    vid_params p;
    vid_size rend[VID_MAX_RENDITIONS];
    shoal_buf in = shoal_input(ctx);
    int r;

    *bad_input = 1;
    if (vid_params_parse(shoal_meta(ctx, "query"), &p, err, sizeof(err)) < 0) {
        vid_job_fail(job, err);
        return;
    }
    double t0 = vid_now_ms();
    if ((r = vid_decode(in.data, in.len, VIDEO_MAX_RAW, 0, v, err, sizeof(err))) < 0) {
        *bad_input = r == -EINVAL || r == -EFBIG;
        vid_job_fail(job, err);
        return;
    }
    double decode_ms = vid_now_ms() - t0;
    int nrend = vid_params_fit(&p, v->width, v->height, rend, err, sizeof(err));
    if (nrend < 0) {
        vid_job_fail(job, err);
        return;
    }
    vid_job_init(job, &p, v, rend, nrend, in.len, decode_ms);
    *bad_input = 0;
}

__attribute__((visibility("default"))) int shoal_main(shoal_ctx *ctx)
{
    vid_root_info root = {.start_ms = vid_now_ms()};
    int rank = shoal_rank(ctx), size = shoal_size(ctx), bad_input = 0, r, ret = -1;
    vid_rank_info info = {.rank = rank};
    vid_video v = {0};
    vid_job job;
    vid_package pkg = {0};
    vid_buf *send = NULL, gmsg = {0};
    shoal_buf *bufs = NULL, *recv = NULL, *gparts = NULL, jb, mine;
    vid_span *spans = NULL;
    char err[1024];
    double t0;

    if (size < 1 || rank < 0 || rank >= size)
        return shoal_error(ctx, "video-abr: rank %d in a group of %d", rank, size);
    /* libav's own warnings (e.g. probing guesses on non-video input) would only repeat, less
     * clearly, what the answer says. */
    av_log_set_level(AV_LOG_FATAL);
    if (!(send = calloc((size_t)size, sizeof(*send))) ||
        !(bufs = calloc((size_t)size, sizeof(*bufs))) ||
        !(recv = calloc((size_t)size, sizeof(*recv))) ||
        !(spans = calloc((size_t)size, sizeof(*spans))) ||
        !(gparts = calloc((size_t)size, sizeof(*gparts)))) {
        ret = shoal_error(ctx, "video-abr: out of memory");
        goto out;
    }

    /* 1. Rank 0 decodes and broadcasts the plan, or its failure so that every rank stops. */
    if (rank == 0)
        plan(ctx, &job, &v, &bad_input);
    if ((r = shoal_bcast(ctx, 0, rank == 0 ? &job : NULL, rank == 0 ? sizeof(job) : 0, &jb)) < 0) {
        ret = shoal_error(ctx, "video-abr: rank %d: bcast failed: %s", rank, strerror(-r));
        goto out;
    }
    if (rank != 0 && vid_job_read(jb.data, jb.len, &job) < 0) {
        ret = shoal_error(ctx, "video-abr: rank %d: malformed plan from rank 0", rank);
        goto out;
    }
    if (job.status != 0) {
        if (rank == 0)
            ret = bad_input ? answer_bad_input(ctx, job.msg)
                            : shoal_error(ctx, "video-abr: %s", job.msg);
        else
            ret = 0; /* rank 0 answers */
        goto out;
    }
    root.bcast_bytes = sizeof(job) * (uint64_t)(size - 1);
    size_t fsize = vid_frame_size(job.width, job.height);

    /* 2. Scatter: rank k gets the frames of its contiguous run of chunks, straight out of the
     * decoded buffer. */
    if (rank == 0) {
        for (int k = 0; k < size; k++) {
            vid_part p = vid_job_part(&job, size, k);
            bufs[k] =
                (shoal_buf){v.frames + (size_t)p.first_frame * fsize, (size_t)p.nframes * fsize};
            if (k != 0)
                root.scatter_bytes += bufs[k].len;
        }
    }
    t0 = vid_now_ms();
    /* parts matter at the root only; the others pass their (zeroed) array all the same. */
    if ((r = shoal_scatter(ctx, 0, bufs, &mine)) < 0) {
        ret = shoal_error(ctx, "video-abr: rank %d: scatter failed: %s", rank, strerror(-r));
        goto out;
    }
    info.scatter_ms = root.scatter_ms = vid_now_ms() - t0;
    info.scatter_bytes = mine.len;

    /* 3. Encode every chunk at every rendition; a failure travels on as error messages. */
    r = vid_stage_encode(&job, size, rank, mine.data, mine.len, 1, send, &info, err, sizeof(err));
    if (r == -ENOMEM && !send[0].data) {
        /* Not even an error message to pass on; the collectives will fail the peers. */
        ret = shoal_error(ctx, "video-abr: rank %d: out of memory", rank);
        goto out;
    }
    if (r < 0)
        shoal_log(ctx, "video-abr: rank %d: %s", rank, err);
    vid_video_free(&v); /* mine pointed into it (or into a copy); it is no longer read */

    /* 4. Shuffle: chunks of rendition r to rank r mod size. */
    for (int d = 0; d < size; d++) {
        bufs[d] = (shoal_buf){send[d].data, send[d].len};
        if (d != rank)
            info.shuffle_sent += send[d].len;
    }
    t0 = vid_now_ms();
    if ((r = shoal_shuffle(ctx, bufs, recv)) < 0) {
        ret = shoal_error(ctx, "video-abr: rank %d: shuffle failed: %s", rank, strerror(-r));
        goto out;
    }
    info.shuffle_ms = vid_now_ms() - t0;
    for (int k = 0; k < size; k++) {
        spans[k] = (vid_span){recv[k].data, recv[k].len};
        if (k != rank)
            info.shuffle_recv += recv[k].len;
    }

    /* 5. Stitch the renditions this rank owns; build its gather message. */
    r = vid_stage_stitch(&job, size, rank, spans, &gmsg, &info, err, sizeof(err));
    if (r == -ENOMEM && !gmsg.data) {
        ret = shoal_error(ctx, "video-abr: rank %d: out of memory", rank);
        goto out;
    }
    if (r < 0 && r != -ECANCELED)
        shoal_log(ctx, "video-abr: %s", err);

    /* 6. Gather to rank 0, which writes the manifest and the tar. */
    t0 = vid_now_ms();
    if ((r = shoal_gather(ctx, 0, gmsg.data, gmsg.len, gparts)) < 0) {
        ret = shoal_error(ctx, "video-abr: rank %d: gather failed: %s", rank, strerror(-r));
        goto out;
    }
    root.gather_ms = vid_now_ms() - t0;
    if (rank != 0) {
        ret = 0; /* rank 0 reports any failure */
        goto out;
    }
    for (int k = 0; k < size; k++)
        spans[k] = (vid_span){gparts[k].data, gparts[k].len};
    if ((r = vid_stage_package(&job, size, spans, &root, &pkg, err, sizeof(err))) < 0) {
        ret = shoal_error(ctx, "video-abr: %s", err);
        goto out;
    }
    size_t tar_len = vid_tar_size(pkg.entries, pkg.n);
    uint8_t *tar = shoal_output_alloc(ctx, tar_len);
    if (!tar) {
        ret = shoal_error(ctx, "video-abr: cannot allocate %zu bytes of output", tar_len);
        goto out;
    }
    if (vid_tar_write(tar, tar_len, pkg.entries, pkg.n, (long long)time(NULL)) < 0) {
        ret = shoal_error(ctx, "video-abr: writing the tar failed");
        goto out;
    }
    shoal_set_meta(ctx, "header:content-type", "application/x-tar");
    ret = 0;
out:
    vid_package_free(&pkg);
    vid_video_free(&v);
    for (int d = 0; send && d < size; d++)
        vid_buf_free(&send[d]);
    vid_buf_free(&gmsg);
    free(send);
    free(bufs);
    free(recv);
    free(gparts);
    free(spans);
    return ret;
}
