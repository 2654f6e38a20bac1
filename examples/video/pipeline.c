/*
 * pipeline.c - the stages of the video-abr function and the messages between them; see
 * pipeline.h for the flow.
 *
 * Every message starts with msg_hdr. A shuffle message (kind MSG_SHUFFLE) then holds nrec
 * shuf_rec records, each followed by one chunk's IVF stream; a gather message (MSG_GATHER) holds
 * the sender's vid_rank_info and then nrec gath_rec records, each followed by one stitched
 * rendition. An error message (MSG_ERROR, status 1) holds only its text, and stands in for either
 * kind. Structs are read with memcpy, so their position in a buffer needs no alignment.
 */
#include "pipeline.h"
#include "psnr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#define MSG_MAGIC 0x47534d56u /* "VMSG" */
enum { MSG_ERROR = 0, MSG_SHUFFLE = 1, MSG_GATHER = 2 };

typedef struct {
    uint32_t magic, version, kind;
    int32_t rank, status;
    uint32_t nrec, msg_len, reserved;
} msg_hdr;

typedef struct {
    int32_t rend, chunk;
    uint64_t ivf_len;
    vid_stats st;
} shuf_rec;

typedef struct {
    int32_t rend, chunks;
    uint32_t frames, keyframes;
    uint64_t ivf_len;
    double stitch_ms;
    vid_stats st;
} gath_rec;

_Static_assert(sizeof(msg_hdr) == 32, "wire");
_Static_assert(sizeof(vid_stats) == 80, "wire");
_Static_assert(sizeof(shuf_rec) == 96, "wire");
_Static_assert(sizeof(gath_rec) == 112, "wire");
_Static_assert(sizeof(vid_rank_info) == 152, "wire");
_Static_assert(sizeof(vid_job) == 480, "wire");

double vid_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* ---- buffers and readers ---- */

void vid_buf_free(vid_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int buf_put(vid_buf *b, const void *data, size_t len)
{
    if (b->cap - b->len < len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < len)
            cap *= 2;
        uint8_t *p = realloc(b->data, cap);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

typedef struct {
    const uint8_t *p;
    size_t len, off;
} reader;

/* Copies the next n bytes to dst (if non-NULL) and returns where they are; NULL past the end. */
static const uint8_t *take(reader *r, void *dst, size_t n)
{
    if (r->len - r->off < n)
        return NULL;
    const uint8_t *at = r->p + r->off;
    if (dst)
        memcpy(dst, at, n);
    r->off += n;
    return at;
}

static int msg_begin(vid_buf *b, uint32_t kind, int rank, int status, const char *msg)
{
    size_t mlen = msg ? strlen(msg) : 0;
    msg_hdr h = {MSG_MAGIC, VID_WIRE_VERSION, kind, rank, status, 0, (uint32_t)mlen, 0};
    b->len = 0;
    if (buf_put(b, &h, sizeof(h)) < 0 || buf_put(b, msg, mlen) < 0)
        return -ENOMEM;
    return 0;
}

static void msg_set_nrec(vid_buf *b, uint32_t nrec)
{
    memcpy(b->data + offsetof(msg_hdr, nrec), &nrec, sizeof(nrec));
}

int vid_msg_error(vid_buf *out, int rank, const char *msg)
{
    return msg_begin(out, MSG_ERROR, rank, 1, msg);
}

/* Reads a message header of the expected kind. Returns 0; -ECANCELED for an error message (its
 * text in err); -EBADMSG for anything malformed. */
static int msg_open(reader *r, const void *data, size_t len, uint32_t kind, int from, msg_hdr *h,
                    char *err, size_t errlen)
{
    *r = (reader){data, len, 0};
    if (!take(r, h, sizeof(*h)) || h->magic != MSG_MAGIC || h->version != VID_WIRE_VERSION ||
        h->rank != from || h->msg_len > len - sizeof(*h)) {
        snprintf(err, errlen, "malformed message from rank %d (%zu bytes)", from, len);
        return -EBADMSG;
    }
    const uint8_t *text = take(r, NULL, h->msg_len);
    if (h->status != 0 || h->kind == MSG_ERROR) {
        snprintf(err, errlen, "%.*s", (int)h->msg_len, (const char *)text);
        if (h->msg_len == 0)
            snprintf(err, errlen, "rank %d failed", from);
        return -ECANCELED;
    }
    if (h->kind != kind) {
        snprintf(err, errlen, "message of kind %u from rank %d, expected %u", h->kind, from, kind);
        return -EBADMSG;
    }
    return 0;
}

/* ---- the job ---- */

void vid_job_init(vid_job *j, const vid_params *p, const vid_video *v, const vid_size *rend,
                  int nrend, uint64_t input_bytes, double decode_ms)
{
    memset(j, 0, sizeof(*j));
    j->magic = VID_JOB_MAGIC;
    j->version = VID_WIRE_VERSION;
    j->width = v->width;
    j->height = v->height;
    j->fps_num = v->fps_num;
    j->fps_den = v->fps_den;
    j->nframes = v->nframes;
    j->chunk_frames = p->chunk_frames;
    j->cq = p->cq;
    j->cpu_used = p->cpu_used;
    j->nrend = nrend;
    for (int i = 0; i < nrend; i++) {
        j->rend_w[i] = rend[i].width;
        j->rend_h[i] = rend[i].height;
    }
    j->input_bytes = input_bytes;
    j->decode_ms = decode_ms;
    snprintf(j->codec, sizeof(j->codec), "%s", v->codec);
    snprintf(j->container, sizeof(j->container), "%s", v->container);
}

void vid_job_fail(vid_job *j, const char *msg)
{
    memset(j, 0, sizeof(*j));
    j->magic = VID_JOB_MAGIC;
    j->version = VID_WIRE_VERSION;
    j->status = 1;
    snprintf(j->msg, sizeof(j->msg), "%s", msg);
}

int vid_job_read(const void *data, size_t len, vid_job *j)
{
    if (len != sizeof(*j))
        return -EBADMSG;
    memcpy(j, data, sizeof(*j));
    j->msg[sizeof(j->msg) - 1] = '\0';
    j->codec[sizeof(j->codec) - 1] = '\0';
    j->container[sizeof(j->container) - 1] = '\0';
    if (j->magic != VID_JOB_MAGIC || j->version != VID_WIRE_VERSION)
        return -EBADMSG;
    if (j->status != 0)
        return 0;
    if (j->width < 2 || j->height < 2 || j->width > VID_MAX_SOURCE_DIM ||
        j->height > VID_MAX_SOURCE_DIM || j->fps_num < 1 || j->fps_den < 1 || j->nframes < 1 ||
        j->chunk_frames < 1 || j->nrend < 1 || j->nrend > VID_MAX_RENDITIONS)
        return -EBADMSG;
    for (int i = 0; i < j->nrend; i++)
        if (j->rend_w[i] < 2 || j->rend_h[i] < 2 || j->rend_w[i] > j->width ||
            j->rend_h[i] > j->height || j->rend_w[i] % 2 || j->rend_h[i] % 2)
            return -EBADMSG;
    return 0;
}

int vid_job_nchunks(const vid_job *j)
{
    return (j->nframes + j->chunk_frames - 1) / j->chunk_frames;
}

vid_part vid_job_part(const vid_job *j, int size, int rank)
{
    long long nchunks = vid_job_nchunks(j);
    int lo = (int)(nchunks * rank / size), hi = (int)(nchunks * (rank + 1) / size);
    long long first = (long long)lo * j->chunk_frames, end = (long long)hi * j->chunk_frames;
    if (first > j->nframes)
        first = j->nframes;
    if (end > j->nframes)
        end = j->nframes;
    return (vid_part){lo, hi - lo, (int)first, (int)(end - first)};
}

int vid_job_owner(int r, int size)
{
    return r % size;
}

/* ---- encode ---- */

/* Replaces send[0..size) with error messages carrying "rank R: err". */
static int fail_all(vid_buf *send, int size, int rank, const char *err)
{
    char msg[600];
    snprintf(msg, sizeof(msg), "rank %d: %s", rank, err);
    for (int d = 0; d < size; d++)
        if (vid_msg_error(&send[d], rank, msg) < 0) {
            for (int k = 0; k < size; k++)
                vid_buf_free(&send[k]);
            return -ENOMEM;
        }
    return 0;
}

int vid_encoder_begin(vid_encoder *e, const vid_job *j, int size, int rank, int threads,
                      vid_buf *send, vid_rank_info *info, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    *e = (vid_encoder){j, size, rank, threads, send, NULL, info, vid_now_ms()};
    memset(send, 0, (size_t)size * sizeof(*send));
    memset(&info->enc, 0, sizeof(info->enc));
    info->chunks = info->frames = 0;
    if (!(e->nrec = calloc((size_t)size, sizeof(*e->nrec)))) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (int d = 0; d < size; d++)
        if (msg_begin(&send[d], MSG_SHUFFLE, rank, 0, NULL) < 0) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    return 0;
}

int vid_encoder_add(vid_encoder *e, int chunk, const void *frames, int nframes, char *err,
                    size_t errlen)
{
    const vid_job *j = e->job;
    vid_enc_cfg cfg = {j->cq, j->cpu_used, e->threads, j->fps_num, j->fps_den};

    for (int r = 0; r < j->nrend; r++) {
        vid_size out = {j->rend_w[r], j->rend_h[r]};
        uint8_t *ivf = NULL;
        size_t ivf_len = 0;
        shuf_rec rec = {r, chunk, 0, {0}};
        char why[400];
        int rc = vid_encode_chunk(frames, nframes, j->width, j->height, out, &cfg, &ivf, &ivf_len,
                                  &rec.st, why, sizeof(why));
        if (rc < 0) {
            snprintf(err, errlen, "chunk %d at %dx%d: %s", chunk, out.width, out.height,
                     rc == -ENOMEM ? "out of memory" : why);
            return rc;
        }
        rec.ivf_len = ivf_len;
        int owner = vid_job_owner(r, e->size);
        vid_buf *b = &e->send[owner];
        rc = buf_put(b, &rec, sizeof(rec));
        if (rc == 0)
            rc = buf_put(b, ivf, ivf_len);
        free(ivf);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory building the shuffle message");
            return rc;
        }
        e->nrec[owner]++;
        vid_stats_add(&e->info->enc, &rec.st);
    }
    e->info->chunks++;
    e->info->frames += nframes;
    return 0;
}

int vid_encoder_end(vid_encoder *e, int rc, const char *err)
{
    e->info->encode_ms = vid_now_ms() - e->t0;
    if (rc == 0 && e->nrec)
        for (int d = 0; d < e->size; d++)
            msg_set_nrec(&e->send[d], e->nrec[d]);
    free(e->nrec);
    e->nrec = NULL;
    if (rc == 0)
        return 0;
    if (fail_all(e->send, e->size, e->rank, err) < 0)
        return -ENOMEM;
    return rc;
}

int vid_stage_encode(const vid_job *j, int size, int rank, const void *frames, size_t len,
                     int threads, vid_buf *send, vid_rank_info *info, char *err, size_t errlen)
{
    vid_part part = vid_job_part(j, size, rank);
    size_t fsize = vid_frame_size(j->width, j->height);
    vid_encoder e;
    int rc = vid_encoder_begin(&e, j, size, rank, threads, send, info, err, errlen);

    if (rc == 0 && len != (size_t)part.nframes * fsize) {
        snprintf(err, errlen, "received %zu bytes of frames, expected %d frames of %zu bytes", len,
                 part.nframes, fsize);
        rc = -EBADMSG;
    }
    for (int c = part.first_chunk; rc == 0 && c < part.first_chunk + part.nchunks; c++) {
        int first = c * j->chunk_frames;
        int n = j->nframes - first < j->chunk_frames ? j->nframes - first : j->chunk_frames;
        const uint8_t *src = (const uint8_t *)frames + (size_t)(first - part.first_frame) * fsize;
        rc = vid_encoder_add(&e, c, src, n, err, errlen);
    }
    return vid_encoder_end(&e, rc, err);
}

/* ---- stitch ---- */

int vid_stage_stitch(const vid_job *j, int size, int rank, const vid_span *recv, vid_buf *out,
                     vid_rank_info *info, char *err, size_t errlen)
{
    int nchunks = vid_job_nchunks(j), rc = 0;
    vid_span *spans = calloc((size_t)nchunks, sizeof(*spans));
    uint8_t *stitched = NULL;
    double t0 = vid_now_ms();
    uint32_t owned = 0;

    memset(out, 0, sizeof(*out));
    if (!spans) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    /* Check every message first: a peer's failure ends the invocation. */
    for (int k = 0; k < size; k++) {
        reader it;
        msg_hdr h;
        if ((rc = msg_open(&it, recv[k].data, recv[k].len, MSG_SHUFFLE, k, &h, err, errlen)) < 0)
            goto fail;
    }
    if ((rc = msg_begin(out, MSG_GATHER, rank, 0, NULL)) < 0 ||
        (rc = buf_put(out, info, sizeof(*info))) < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int r = rank; r < j->nrend; r += size) {
        gath_rec g = {r, nchunks, 0, 0, 0, 0, {0}};
        size_t stitched_len = 0;
        double s0 = vid_now_ms();
        memset(spans, 0, (size_t)nchunks * sizeof(*spans));
        for (int k = 0; k < size; k++) {
            msg_hdr h;
            reader it;
            msg_open(&it, recv[k].data, recv[k].len, MSG_SHUFFLE, k, &h, err, errlen);
            for (uint32_t i = 0; i < h.nrec; i++) {
                shuf_rec s;
                const uint8_t *ivf;
                if (!take(&it, &s, sizeof(s)) || !(ivf = take(&it, NULL, s.ivf_len)) ||
                    s.rend < 0 || s.rend >= j->nrend || vid_job_owner(s.rend, size) != rank ||
                    s.chunk < 0 || s.chunk >= nchunks) {
                    snprintf(err, errlen, "malformed shuffle record %u from rank %d", i, k);
                    rc = -EBADMSG;
                    goto fail;
                }
                if (s.rend != r)
                    continue;
                if (spans[s.chunk].data) {
                    snprintf(err, errlen, "chunk %d of rendition %d arrived twice", s.chunk, r);
                    rc = -EBADMSG;
                    goto fail;
                }
                spans[s.chunk] = (vid_span){ivf, s.ivf_len};
                vid_stats_add(&g.st, &s.st);
            }
        }
        for (int c = 0; c < nchunks; c++)
            if (!spans[c].data) {
                snprintf(err, errlen, "chunk %d of rendition %dx%d never arrived", c, j->rend_w[r],
                         j->rend_h[r]);
                rc = -EBADMSG;
                goto fail;
            }
        rc = vid_ivf_stitch(spans, nchunks, &stitched, &stitched_len, &g.frames, &g.keyframes, err,
                            errlen);
        if (rc < 0)
            goto fail;
        if (g.frames != (uint32_t)j->nframes) {
            snprintf(err, errlen, "rendition %dx%d has %u frames, the source %d", j->rend_w[r],
                     j->rend_h[r], g.frames, j->nframes);
            rc = -EBADMSG;
            goto fail;
        }
        g.ivf_len = stitched_len;
        g.stitch_ms = vid_now_ms() - s0;
        if ((rc = buf_put(out, &g, sizeof(g))) < 0 ||
            (rc = buf_put(out, stitched, stitched_len)) < 0) {
            snprintf(err, errlen, "out of memory building the gather message");
            goto fail;
        }
        free(stitched);
        stitched = NULL;
        owned++;
    }
    msg_set_nrec(out, owned);
    info->stitch_ms = vid_now_ms() - t0;
    memcpy(out->data + sizeof(msg_hdr) + offsetof(vid_rank_info, stitch_ms), &info->stitch_ms,
           sizeof(info->stitch_ms));
    free(spans);
    return 0;
fail:
    free(stitched);
    free(spans);
    info->stitch_ms = vid_now_ms() - t0;
    {
        char msg[600];
        /* A peer's message already names its rank; our own failure gets our name. */
        if (rc == -ECANCELED)
            snprintf(msg, sizeof(msg), "%s", err);
        else
            snprintf(msg, sizeof(msg), "rank %d: %s", rank, err);
        snprintf(err, errlen, "%s", msg);
        if (vid_msg_error(out, rank, msg) < 0) {
            vid_buf_free(out);
            return -ENOMEM;
        }
    }
    return rc;
}

/* ---- package ---- */

void vid_package_free(vid_package *pkg)
{
    free(pkg->manifest);
    memset(pkg, 0, sizeof(*pkg));
}

static json_t *stats_json(const vid_stats *s)
{
    return json_pack("{s:I, s:f, s:f, s:f}", "frames", (json_int_t)s->frames, "scale_ms",
                     s->scale_ms, "encode_ms", s->encode_ms, "check_ms", s->check_ms);
}

int vid_stage_package(const vid_job *j, int size, const vid_span *parts, const vid_root_info *root,
                      vid_package *pkg, char *err, size_t errlen)
{
    gath_rec recs[VID_MAX_RENDITIONS];
    const uint8_t *streams[VID_MAX_RENDITIONS] = {0};
    int owner[VID_MAX_RENDITIONS];
    vid_rank_info *ranks = calloc((size_t)size, sizeof(*ranks));
    json_t *doc = NULL, *jr, *jranks;
    double dur_s = (double)j->nframes * j->fps_den / j->fps_num;
    double encode_max = 0, shuffle_max = 0, stitch_max = 0, scatter_max = 0;
    uint64_t shuffle_bytes = 0, gather_bytes = 0;
    vid_stats all = {0};
    int rc;

    memset(pkg, 0, sizeof(*pkg));
    if (!ranks) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* An error from any rank wins over everything else: report the first one. */
    for (int k = 0; k < size; k++) {
        reader r;
        msg_hdr h;
        if ((rc = msg_open(&r, parts[k].data, parts[k].len, MSG_GATHER, k, &h, err, errlen)) ==
            -ECANCELED)
            goto done;
    }
    for (int k = 0; k < size; k++) {
        reader r;
        msg_hdr h;
        if ((rc = msg_open(&r, parts[k].data, parts[k].len, MSG_GATHER, k, &h, err, errlen)) < 0)
            goto done;
        if (!take(&r, &ranks[k], sizeof(ranks[k])) || ranks[k].rank != k) {
            snprintf(err, errlen, "malformed gather message from rank %d", k);
            rc = -EBADMSG;
            goto done;
        }
        for (uint32_t i = 0; i < h.nrec; i++) {
            gath_rec g;
            const uint8_t *ivf;
            if (!take(&r, &g, sizeof(g)) || !(ivf = take(&r, NULL, g.ivf_len)) || g.rend < 0 ||
                g.rend >= j->nrend || vid_job_owner(g.rend, size) != k || streams[g.rend]) {
                snprintf(err, errlen, "malformed gather record %u from rank %d", i, k);
                rc = -EBADMSG;
                goto done;
            }
            recs[g.rend] = g;
            streams[g.rend] = ivf;
            owner[g.rend] = k;
        }
        if (k != 0)
            gather_bytes += parts[k].len;
        shuffle_bytes += ranks[k].shuffle_sent;
        encode_max = ranks[k].encode_ms > encode_max ? ranks[k].encode_ms : encode_max;
        shuffle_max = ranks[k].shuffle_ms > shuffle_max ? ranks[k].shuffle_ms : shuffle_max;
        stitch_max = ranks[k].stitch_ms > stitch_max ? ranks[k].stitch_ms : stitch_max;
        scatter_max = ranks[k].scatter_ms > scatter_max ? ranks[k].scatter_ms : scatter_max;
        vid_stats_add(&all, &ranks[k].enc);
    }
    for (int i = 0; i < j->nrend; i++)
        if (!streams[i]) {
            snprintf(err, errlen, "rendition %dx%d missing from the gathered results", j->rend_w[i],
                     j->rend_h[i]);
            rc = -EBADMSG;
            goto done;
        }

    rc = -ENOMEM;
    snprintf(err, errlen, "out of memory building the manifest");
    jr = json_array();
    jranks = json_array();
    doc = json_object();
    if (!jr || !jranks || !doc) {
        json_decref(jr);
        json_decref(jranks);
        goto done;
    }
    json_object_set_new(doc, "renditions", jr);
    for (int i = 0; i < j->nrend; i++) {
        const gath_rec *g = &recs[i];
        snprintf(pkg->names[i], sizeof(pkg->names[i]), "%dx%d.ivf", j->rend_w[i], j->rend_h[i]);
        json_t *o = json_pack(
            "{s:i, s:i, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:I, s:i, s:i, s:f, s:f, s:f, s:f, s:f}",
            "width", j->rend_w[i], "height", j->rend_h[i], "file", pkg->names[i], "frames",
            (json_int_t)g->frames, "bytes", (json_int_t)g->ivf_len, "psnr", vid_stats_psnr(&g->st),
            "psnr_y", g->st.frames ? g->st.psnr_y_sum / (double)g->st.frames : 0.0, "psnr_global",
            vid_psnr_db(g->st.sse, g->st.samples), "bitrate_kbps",
            (double)g->ivf_len * 8 / dur_s / 1000, "keyframes", (json_int_t)g->keyframes, "chunks",
            g->chunks, "stitched_by", owner[i], "encode_cpu_ms", g->st.encode_ms, "scale_cpu_ms",
            g->st.scale_ms, "check_cpu_ms", g->st.check_ms, "stitch_ms", g->stitch_ms, "encode_fps",
            g->st.encode_ms > 0 ? (double)g->frames * 1e3 / g->st.encode_ms : 0.0);
        if (!o || json_array_append_new(jr, o) < 0)
            goto done;
        pkg->entries[1 + i] = (vid_tar_entry){pkg->names[i], streams[i], g->ivf_len};
    }
    for (int k = 0; k < size; k++) {
        const vid_rank_info *ri = &ranks[k];
        json_t *o =
            json_pack("{s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:o}", "rank", k,
                      "chunks", ri->chunks, "frames", ri->frames, "scatter_ms", ri->scatter_ms,
                      "encode_ms", ri->encode_ms, "shuffle_ms", ri->shuffle_ms, "stitch_ms",
                      ri->stitch_ms, "scatter_bytes", (json_int_t)ri->scatter_bytes,
                      "shuffle_sent_bytes", (json_int_t)ri->shuffle_sent, "shuffle_recv_bytes",
                      (json_int_t)ri->shuffle_recv, "encoder", stats_json(&ri->enc));
        if (!o || json_array_append_new(jranks, o) < 0) {
            json_decref(jranks);
            goto done;
        }
    }
    double total_ms = vid_now_ms() - root->start_ms;
    json_t *src =
        json_pack("{s:i, s:i, s:i, s:f, s:i, s:i, s:s, s:s, s:I, s:f}", "width", j->width, "height",
                  j->height, "frames", j->nframes, "fps", (double)j->fps_num / j->fps_den,
                  "fps_num", j->fps_num, "fps_den", j->fps_den, "codec", j->codec, "container",
                  j->container, "bytes", (json_int_t)j->input_bytes, "duration_s", dur_s);
    json_t *par = json_pack("{s:i, s:i, s:i, s:s}", "chunk_frames", j->chunk_frames, "cq", j->cq,
                            "cpu_used", j->cpu_used, "codec", "vp8");
    json_t *stages =
        json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "decode", j->decode_ms, "scatter",
                  root->scatter_ms, "encode", encode_max, "shuffle", shuffle_max, "stitch",
                  stitch_max, "gather", root->gather_ms, "total", total_ms, "encode_cpu",
                  all.scale_ms + all.encode_ms + all.check_ms);
    json_t *coll = json_pack("{s:{s:I}, s:{s:I, s:f}, s:{s:I, s:f}, s:{s:I, s:f}}", "bcast",
                             "bytes", (json_int_t)root->bcast_bytes, "scatter", "bytes",
                             (json_int_t)root->scatter_bytes, "ms", root->scatter_ms, "shuffle",
                             "bytes", (json_int_t)shuffle_bytes, "ms", shuffle_max, "gather",
                             "bytes", (json_int_t)gather_bytes, "ms", root->gather_ms);
    if (!src || !par || !stages || !coll) {
        json_decref(src);
        json_decref(par);
        json_decref(stages);
        json_decref(coll);
        json_decref(jranks);
        goto done;
    }
    json_object_set_new(doc, "source", src);
    json_object_set_new(doc, "params", par);
    json_object_set_new(doc, "group_size", json_integer(size));
    json_object_set_new(doc, "chunks", json_integer(vid_job_nchunks(j)));
    json_object_set_new(doc, "stages_ms", stages);
    json_object_set_new(doc, "collectives", coll);
    json_object_set_new(doc, "ranks", jranks);
    pkg->manifest = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (!pkg->manifest)
        goto done;
    pkg->entries[0] = (vid_tar_entry){"manifest.json", pkg->manifest, strlen(pkg->manifest)};
    pkg->n = 1 + j->nrend;
    rc = 0;
done:
    json_decref(doc);
    free(ranks);
    if (rc < 0)
        vid_package_free(pkg);
    return rc;
}
