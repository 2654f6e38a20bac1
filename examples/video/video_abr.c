/*
 * video_abr.c - the video-abr function: ExCamera-style adaptive-bitrate encoding by a group.
 *
 * POST /v1/functions/video-abr/invoke?group=N with a video file as the body answers a tar
 * (application/x-tar) of manifest.json and one VP8 IVF stream per rendition. Query parameters:
 * chunk_frames, renditions, cq, cpu_used (see params.h). The flow (see pipeline.h):
 *
 *   rank 0   decode the input (libavcodec); at the first frame bcast the plan; as each chunk
 *            of chunk_frames frames is complete, shoal_send its raw frames to the rank that
 *            encodes it (chunk c to rank (c + 1) mod N), then an empty message to every rank;
 *            bcast the final job (frame count or failure); encode its own chunks
 *   others   receive and encode chunks until the empty message, then receive the final job
 *   all      shuffle: every chunk of rendition r to rank r mod N, which stitches them
 *   all      gather the stitched renditions and statistics to rank 0, which writes the tar
 *
 * Streaming the scatter this way lets the other ranks encode while rank 0 is still decoding
 * (a send copies into the group's shared memory and does not wait for the receiver): with a
 * scatter after the whole decode, every rank but 0 sat idle for the ~0.9 s it takes to decode
 * the 720p sample, and group=2 was 1.65x faster than group=1 instead of the 1.76x it is now.
 * Round-robin chunks also spread easy and hard parts of the video evenly, and give rank 0, which
 * decodes, the last turn of every round.
 *
 * Outside a group (N = 1) every collective hands a rank its own data and the same code runs in
 * one process. Bad input (not a video, bad parameters) answers HTTP 400 with a JSON error body
 * {"error":{"code":"bad_input","message":...}}; any other failure, including a failed rank, is a
 * shoal_error naming the rank.
 *
 * Memory: rank 0 holds the input and all decoded frames (w*h*1.5 bytes each, at most
 * VIDEO_MAX_RAW); the frames it sends are copied once into the group's shared memory, where the
 * other ranks read them in place; other ranks hold a few MB of encoder state. The 280-frame
 * 1280x720 sample decodes to 387 MB: deploy with memory_mb=2048 (1024 fits the sample with a
 * copying scatter).
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

/* The rank that encodes chunk c: round robin starting at rank 1, so rank 1 can start as soon as
 * the first chunk is decoded, and rank 0, which decodes, gets the last turn of every round. */
static int chunk_owner(int c, int size)
{
    return (c + 1) % size;
}

/* Rank 0 while decoding: the plan goes out with the first frame, then each chunk's frames go to
 * their rank as soon as the chunk is complete (a send copies them into the group's shared memory
 * and does not wait for the receiver), so the other ranks encode while rank 0 still decodes. */
typedef struct {
    shoal_ctx *ctx;
    vid_job *job;
    vid_params p;
    int size, planned, bad_plan, sent; /* sent: chunks handed on so far */
    uint64_t input_bytes;
    vid_root_info *root;
} streamer;

/* Sends chunk c of v (complete) to its rank unless that is rank 0. */
static int send_chunk(streamer *s, const vid_video *v, int c, char *err, size_t errlen)
{
    int owner = chunk_owner(c, s->size), first = c * s->job->chunk_frames;
    int n = v->nframes - first < s->job->chunk_frames ? v->nframes - first : s->job->chunk_frames;
    if (owner == 0)
        return 0;
    double t0 = vid_now_ms();
    size_t len = (size_t)n * v->frame_size;
    int r = shoal_send(s->ctx, owner, v->frames + (size_t)first * v->frame_size, len);
    s->root->scatter_ms += vid_now_ms() - t0;
    if (r < 0) {
        snprintf(err, errlen, "sending chunk %d to rank %d failed: %s", c, owner, strerror(-r));
        return r;
    }
    s->root->scatter_bytes += len;
    return 0;
}

static int on_frame(void *arg, const vid_video *v, char *err, size_t errlen)
{
    streamer *s = arg;
    int r;
    if (!s->planned) {
        vid_size rend[VID_MAX_RENDITIONS];
        int nrend = vid_params_fit(&s->p, v->width, v->height, rend, err, errlen);
        if (nrend < 0) {
            s->bad_plan = 1;
            return -EINVAL;
        }
        /* nframes is 1 here: the final job, sent once the input is decoded, has the total. */
        vid_job_init(s->job, &s->p, v, rend, nrend, s->input_bytes, 0);
        s->planned = 1;
        shoal_buf jb;
        if ((r = shoal_bcast(s->ctx, 0, s->job, sizeof(*s->job), &jb)) < 0) {
            snprintf(err, errlen, "bcast failed: %s", strerror(-r));
            return r;
        }
    }
    if (v->nframes % s->job->chunk_frames != 0)
        return 0;
    s->sent = v->nframes / s->job->chunk_frames;
    return send_chunk(s, v, s->sent - 1, err, errlen);
}

/* Rank 0: decodes the input, streaming chunks to the other ranks (see streamer), then tells
 * them the stream has ended (an empty message each) and broadcasts the final job or the failure.
 * Encodes its own chunks in between, so that its final broadcast does not hold them up. On
 * return *v holds the decoded frames (or nothing), *job the final job. */
static void stream_from_root(shoal_ctx *ctx, int size, vid_job *job, vid_video *v,
                             vid_root_info *root, vid_encoder *enc, int *bad_input, int *enc_rc,
                             char *err, size_t errlen)
{
    shoal_buf in = shoal_input(ctx), jb;
    streamer s = {ctx, job, {0}, size, 0, 0, 0, in.len, root};
    char why[1024];
    int r;

    *bad_input = 1;
    memset(job, 0, sizeof(*job));
    if (vid_params_parse(shoal_meta(ctx, "query"), &s.p, why, sizeof(why)) < 0) {
        vid_job_fail(job, why);
        goto final;
    }
    double t0 = vid_now_ms();
    r = vid_decode_cb(in.data, in.len, VIDEO_MAX_RAW, 0, v, on_frame, &s, why, sizeof(why));
    if (r < 0) {
        /* A decoding error is the input's fault; a failed send is not. */
        *bad_input = s.bad_plan || (r == -EINVAL || r == -EFBIG);
        vid_job_fail(job, why);
    } else {
        double decode_ms = vid_now_ms() - t0;
        /* The last chunk, if it is shorter than the others. */
        int nchunks = (v->nframes + job->chunk_frames - 1) / job->chunk_frames;
        if (s.sent < nchunks && (r = send_chunk(&s, v, nchunks - 1, why, sizeof(why))) < 0) {
            *bad_input = 0;
            vid_job_fail(job, why);
        } else {
            job->nframes = v->nframes;
            job->decode_ms = decode_ms;
        }
    }
    if (!s.planned)
        goto final; /* nobody has been told anything yet: the one broadcast says it all */
    /* The peers stop receiving at an empty message. */
    for (int k = 1; k < size; k++)
        if ((r = shoal_send(ctx, k, NULL, 0)) < 0 && job->status == 0) {
            snprintf(why, sizeof(why), "ending the stream to rank %d failed: %s", k, strerror(-r));
            *bad_input = 0;
            vid_job_fail(job, why);
        }
    if (job->status == 0) {
        *bad_input = 0;
        /* Rank 0's own chunks, from the decoded frames; its encode stage starts now. */
        enc->t0 = vid_now_ms();
        int nchunks = vid_job_nchunks(job);
        size_t fsize = vid_frame_size(job->width, job->height);
        for (int c = 0; c < nchunks && *enc_rc == 0; c++) {
            if (chunk_owner(c, size) != 0)
                continue;
            int first = c * job->chunk_frames;
            int n =
                job->nframes - first < job->chunk_frames ? job->nframes - first : job->chunk_frames;
            *enc_rc = vid_encoder_add(enc, c, v->frames + (size_t)first * fsize, n, err, errlen);
        }
    }
final:
    if ((r = shoal_bcast(ctx, 0, job, sizeof(*job), &jb)) < 0 && job->status == 0) {
        snprintf(why, sizeof(why), "bcast failed: %s", strerror(-r));
        *bad_input = 0;
        vid_job_fail(job, why);
    }
}

__attribute__((visibility("default"))) int shoal_main(shoal_ctx *ctx)
{
    vid_root_info root = {.start_ms = vid_now_ms()};
    int rank = shoal_rank(ctx), size = shoal_size(ctx), bad_input = 0, r, ret = -1, enc_rc = 0;
    vid_rank_info info = {.rank = rank};
    vid_video v = {0};
    vid_job job;
    vid_package pkg = {0};
    vid_buf *send = NULL, gmsg = {0};
    shoal_buf *bufs = NULL, *recv = NULL, *gparts = NULL, jb;
    vid_span *spans = NULL;
    vid_encoder enc = {0};
    char err[1024] = "";
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

    /* 1-3. Rank 0 decodes and streams chunks; every rank encodes its chunks as they come. The
     * job is broadcast twice when decoding gets as far as a first frame: with it (the plan:
     * size, renditions, settings) and at the end (the frame count, or the failure). */
    if (rank == 0) {
        /* The encoder reads the job it is given at every chunk; rank 0 fills it in as it goes. */
        enc_rc = vid_encoder_begin(&enc, &job, size, rank, 1, send, &info, err, sizeof(err));
        stream_from_root(ctx, size, &job, &v, &root, &enc, &bad_input, &enc_rc, err, sizeof(err));
        if (job.status != 0) {
            vid_encoder_end(&enc, 0, "");
            ret = bad_input ? answer_bad_input(ctx, job.msg)
                            : shoal_error(ctx, "video-abr: %s", job.msg);
            goto out;
        }
    } else {
        if ((r = shoal_bcast(ctx, 0, NULL, 0, &jb)) < 0) {
            ret = shoal_error(ctx, "video-abr: rank %d: bcast failed: %s", rank, strerror(-r));
            goto out;
        }
        if (vid_job_read(jb.data, jb.len, &job) < 0) {
            ret = shoal_error(ctx, "video-abr: rank %d: malformed plan from rank 0", rank);
            goto out;
        }
        if (job.status != 0) {
            ret = 0; /* rank 0 answers */
            goto out;
        }
        size_t fsize = vid_frame_size(job.width, job.height);
        int c = rank - 1, got = 0; /* this rank's chunks: c = rank - 1 (mod size) */
        enc_rc = vid_encoder_begin(&enc, &job, size, rank, 1, send, &info, err, sizeof(err));
        for (;;) {
            shoal_buf m;
            t0 = vid_now_ms();
            r = shoal_recv(ctx, 0, &m);
            info.scatter_ms += vid_now_ms() - t0;
            if (r < 0) {
                ret = shoal_error(ctx, "video-abr: rank %d: receiving frames failed: %s", rank,
                                  strerror(-r));
                vid_encoder_end(&enc, 0, "");
                goto out;
            }
            if (m.len == 0)
                break;
            info.scatter_bytes += m.len;
            if (enc_rc == 0 && (m.len % fsize != 0 || m.len / fsize > (size_t)job.chunk_frames)) {
                snprintf(err, sizeof(err), "received %zu bytes for chunk %d", m.len, c);
                enc_rc = -EBADMSG;
            }
            /* After a failure keep receiving, so that rank 0 is never left waiting. */
            if (enc_rc == 0)
                enc_rc = vid_encoder_add(&enc, c, m.data, (int)(m.len / fsize), err, sizeof(err));
            c += size;
            got++;
        }
        /* The final job: the frame count, or rank 0's failure. */
        if ((r = shoal_bcast(ctx, 0, NULL, 0, &jb)) < 0) {
            vid_encoder_end(&enc, 0, "");
            ret = shoal_error(ctx, "video-abr: rank %d: bcast failed: %s", rank, strerror(-r));
            goto out;
        }
        if (vid_job_read(jb.data, jb.len, &job) < 0 || job.status != 0) {
            vid_encoder_end(&enc, 0, "");
            ret = job.status != 0 ? 0 : shoal_error(ctx, "video-abr: rank %d: malformed job", rank);
            goto out;
        }
        int nchunks = vid_job_nchunks(&job), mine = 0;
        for (int k = 0; k < nchunks; k++)
            mine += chunk_owner(k, size) == rank;
        if (enc_rc == 0 && got != mine) {
            snprintf(err, sizeof(err), "received %d chunks, expected %d", got, mine);
            enc_rc = -EBADMSG;
        }
    }
    root.bcast_bytes = 2 * sizeof(job) * (uint64_t)(size - 1);
    info.scatter_ms = rank == 0 ? root.scatter_ms : info.scatter_ms;
    info.scatter_bytes = rank == 0 ? 0 : info.scatter_bytes;
    if (enc_rc < 0) {
        char msg[1100];
        snprintf(msg, sizeof(msg), "%s", err);
        r = vid_encoder_end(&enc, enc_rc, msg);
        shoal_log(ctx, "video-abr: rank %d: %s", rank, msg);
    } else {
        r = vid_encoder_end(&enc, 0, "");
    }
    if (r == -ENOMEM && !send[0].data) {
        /* Not even an error message to pass on; the collectives will fail the peers. */
        ret = shoal_error(ctx, "video-abr: rank %d: out of memory", rank);
        goto out;
    }
    vid_video_free(&v);

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
