/*
 * End-to-end tests of the video-abr example (examples/video) through the platform: a controller
 * and one worker with 10 slots, the function deployed from BUILD/examples/video-abr.so and invoked
 * over HTTP with ?group=N, on short clips made at test time with ffmpeg's testsrc2 in the cluster's
 * home. The answer (a tar) is checked independently of the function's own statistics: every
 * rendition is decoded with libavcodec's VP8 decoder (not libvpx, which the function uses) to
 * exactly the source's frame count at its size; PSNR against the source decoded here and scaled
 * with libswscale is above a threshold and agrees with the manifest; the IVF frame headers show a
 * key frame at every chunk start and nowhere else; streams are identical for every group size.
 * Odd cases: uneven chunks, a group larger than the number of chunks, a single frame, odd
 * dimensions, non-video input and bad parameters (400 bad_input). And a rank killed with SIGKILL
 * while the group encodes ends the invocation with an error naming it, in bounded time, after
 * which the function works again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libavutil/log.h>
#include <libavutil/pixfmt.h>
#include <libswscale/swscale.h>

#include "examples/video/decode.h"
#include "examples/video/ivf.h"
#include "examples/video/psnr.h"
#include "tests/e2e/harness.h"

#define MAX_MEMBERS 16
#define MIN_PSNR 30.0 /* dB; testsrc2 at cq 20 lands near 40 */

static cluster_t C;

/* ---- helpers ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Makes <home>/name from testsrc2 (w x h, 20 fps, frames frames) with ffmpeg; codec args between
 * the input and the output. Odd sizes are rendered as RGB so testsrc2 does not round them down. */
static char *make_clip(const char *name, int w, int h, int frames, const char *args, size_t *len)
{
    char path[512], cmd[1536];
    snprintf(path, sizeof(path), "%s/%s", C.home, name);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i "
             "testsrc2=size=%dx%d:rate=20%s -frames:v %d %s '%s'",
             w, h, (w | h) & 1 ? ",format=rgb24" : "", frames, args, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "ffmpeg failed: %s\n", cmd);
        return NULL;
    }
    return read_whole(path, len);
}

static void invoke(const char *query, const void *body, size_t len, http_resp_t *r)
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/functions/video-abr/invoke%s%s", query ? "?" : "",
             query ? query : "");
    assert_int_equal(http_request(&C, "POST", path, body, len, NULL, r), 0);
}

typedef struct {
    char name[101];
    const uint8_t *data;
    size_t len;
} member_t;

/* Splits a ustar archive into its members; returns their number or -1 when malformed. */
static int untar(const char *buf, size_t len, member_t *m, int max)
{
    size_t off = 0;
    int n = 0;
    while (off + 512 <= len) {
        const char *h = buf + off;
        if (h[0] == '\0')
            return n; /* the end-of-archive blocks */
        if (n == max || memcmp(h + 257, "ustar", 5) != 0)
            return -1;
        char size[13] = {0};
        memcpy(size, h + 124, 12);
        char *end;
        unsigned long long sz = strtoull(size, &end, 8);
        if (end == size || off + 512 + sz > len)
            return -1;
        snprintf(m[n].name, sizeof(m[n].name), "%.100s", h);
        m[n].data = (const uint8_t *)h + 512;
        m[n].len = (size_t)sz;
        n++;
        off += 512 + ((sz + 511) / 512) * 512;
    }
    return -1;
}

static const member_t *find_member(const member_t *m, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(m[i].name, name) == 0)
            return &m[i];
    return NULL;
}

/* Mean per-frame combined PSNR of decoded frames `got` (w x h) against the source frames scaled
 * to w x h with bicubic libswscale, as the function scales them. */
static double psnr_against_source(const vid_video *src, const vid_video *got)
{
    struct SwsContext *sws =
        sws_getContext(src->width, src->height, AV_PIX_FMT_YUV420P, got->width, got->height,
                       AV_PIX_FMT_YUV420P, SWS_BICUBIC, NULL, NULL, NULL);
    size_t fs = vid_frame_size(got->width, got->height);
    uint8_t *scaled = malloc(fs);
    double sum = 0;

    assert_non_null(sws);
    assert_non_null(scaled);
    for (int i = 0; i < got->nframes; i++) {
        const uint8_t *sp[3], *dp[3], *gp[3];
        int ss[3], ds[3], gs[3];
        uint64_t sse[3];
        vid_frame_planes(src->frames + (size_t)i * src->frame_size, src->width, src->height, sp,
                         ss);
        vid_frame_planes(scaled, got->width, got->height, dp, ds);
        uint8_t *dst[4] = {(uint8_t *)dp[0], (uint8_t *)dp[1], (uint8_t *)dp[2], NULL};
        int dstride[4] = {ds[0], ds[1], ds[2], 0};
        sws_scale(sws, sp, ss, 0, src->height, dst, dstride);
        vid_frame_planes(got->frames + (size_t)i * got->frame_size, got->width, got->height, gp,
                         gs);
        uint64_t samples = vid_psnr_frame(dp, ds, gp, gs, got->width, got->height, sse);
        sum += vid_psnr_db(sse[0] + sse[1] + sse[2], samples);
    }
    sws_freeContext(sws);
    free(scaled);
    return got->nframes ? sum / got->nframes : 0;
}

/* Checks the key frames of an IVF stream: exactly at multiples of chunk (frame 0 included). */
static void check_keyframes(const member_t *m, int nframes, int chunk)
{
    vid_ivf_reader rd;
    const uint8_t *f;
    uint32_t sz;
    uint64_t pts;
    int i = 0, r, keys = 0;

    assert_int_equal(vid_ivf_reader_init(&rd, m->data, m->len), 0);
    assert_int_equal(rd.info.fourcc, VID_IVF_VP8);
    assert_int_equal((int)rd.info.nframes, nframes);
    while ((r = vid_ivf_next(&rd, &f, &sz, &pts)) == 1) {
        int key = vid_vp8_is_keyframe(f, sz);
        if (key != (i % chunk == 0))
            fprintf(stderr, "%s: frame %d key=%d, chunks of %d\n", m->name, i, key, chunk);
        assert_int_equal(key, i % chunk == 0);
        assert_int_equal((int)pts, i);
        keys += key;
        i++;
    }
    assert_int_equal(r, 0);
    assert_int_equal(i, nframes);
    assert_int_equal(keys, (nframes + chunk - 1) / chunk);
}

/* Expected rendition sizes, in order. */
typedef struct {
    int w, h;
} size2_t;

/* Invokes video-abr on clip (decoded as src) with query and checks the whole answer: the tar, the
 * manifest, every rendition stream. Returns the tar (free()) so callers can compare answers. */
static char *run_and_check(const char *clip, size_t clip_len, const vid_video *src,
                           const char *query, int group, int chunk, const size2_t *want, int nwant,
                           size_t *tar_len)
{
    http_resp_t r;
    member_t m[MAX_MEMBERS];
    json_error_t jerr;
    char err[512];

    invoke(query, clip, clip_len, &r);
    if (r.status != 200) {
        fprintf(stderr, "%s: status %ld: %.500s\n", query, r.status, r.body);
        cluster_dump_logs(&C);
    }
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/x-tar");
    int n = untar(r.body, r.len, m, MAX_MEMBERS);
    assert_int_equal(n, 1 + nwant);
    assert_string_equal(m[0].name, "manifest.json");
    json_t *man = json_loadb((const char *)m[0].data, m[0].len, 0, &jerr);
    if (!man)
        fprintf(stderr, "manifest: %s\n", jerr.text);
    assert_non_null(man);
    assert_int_equal(json_integer_value(json_object_get(man, "group_size")), group);
    assert_int_equal(json_integer_value(json_object_get(man, "chunks")),
                     (src->nframes + chunk - 1) / chunk);
    json_t *rends = json_object_get(man, "renditions");
    assert_int_equal(json_array_size(rends), nwant);
    for (int i = 0; i < nwant; i++) {
        json_t *e = json_array_get(rends, (size_t)i);
        const char *file = json_string_value(json_object_get(e, "file"));
        assert_int_equal(json_integer_value(json_object_get(e, "width")), want[i].w);
        assert_int_equal(json_integer_value(json_object_get(e, "height")), want[i].h);
        assert_int_equal(json_integer_value(json_object_get(e, "frames")), src->nframes);
        assert_non_null(file);
        const member_t *s = find_member(m, n, file);
        assert_non_null(s);
        assert_int_equal(json_integer_value(json_object_get(e, "bytes")), s->len);
        check_keyframes(s, src->nframes, chunk);

        /* Decoded by libavcodec (its own VP8 decoder) from the IVF container. */
        vid_video got = {0};
        int rc = vid_decode(s->data, s->len, 1ULL << 30, 1, &got, err, sizeof(err));
        if (rc < 0)
            fprintf(stderr, "%s: %s\n", file, err);
        assert_int_equal(rc, 0);
        assert_string_equal(got.codec, "vp8");
        assert_int_equal(got.nframes, src->nframes);
        assert_int_equal(got.width, want[i].w);
        assert_int_equal(got.height, want[i].h);
        double psnr = psnr_against_source(src, &got);
        double claimed = json_real_value(json_object_get(e, "psnr"));
        if (psnr < MIN_PSNR || psnr > claimed + 0.5 || psnr < claimed - 0.5)
            fprintf(stderr, "%s: PSNR %.3f measured here, %.3f in the manifest\n", file, psnr,
                    claimed);
        assert_true(psnr >= MIN_PSNR);
        assert_true(psnr <= claimed + 0.5 && psnr >= claimed - 0.5);
        vid_video_free(&got);
    }
    json_decref(man);
    char *tar = malloc(r.len);
    assert_non_null(tar);
    memcpy(tar, r.body, r.len);
    *tar_len = r.len;
    http_resp_free(&r);
    return tar;
}

/* The rendition streams of two answers are byte-for-byte equal (the tars differ in the manifest's
 * timings and group size). */
static void assert_same_streams(const char *a, size_t alen, const char *b, size_t blen)
{
    member_t ma[MAX_MEMBERS], mb[MAX_MEMBERS];
    int na = untar(a, alen, ma, MAX_MEMBERS), nb = untar(b, blen, mb, MAX_MEMBERS);
    assert_true(na > 1);
    assert_int_equal(na, nb);
    for (int i = 1; i < na; i++) {
        assert_string_equal(ma[i].name, mb[i].name);
        assert_int_equal(ma[i].len, mb[i].len);
        assert_memory_equal(ma[i].data, mb[i].data, ma[i].len);
    }
}

static int setup(void **state)
{
    char so[512];
    (void)state;
    av_log_set_level(AV_LOG_ERROR);
    if (system("command -v ffmpeg >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_video: ffmpeg is needed to make the clips "
                        "(scripts/install-deps.sh installs it)\n");
        return -1;
    }
    if (cluster_start(&C, 1, "--slots 10") < 0)
        return -1;
    snprintf(so, sizeof(so), "%s/examples/video-abr.so", C.build);
    if (deploy_file(&C, "video-abr", so, "memory_mb=512&timeout_ms=60000", NULL) != 201) {
        cluster_dump_logs(&C);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* 50 frames in chunks of 12: four whole chunks and one of 2 frames, at two renditions (one of
 * them the source size). Groups of 1, 2, 3 and 8 (more ranks than chunks) answer the same
 * streams. */
static void test_groups_uneven_chunks(void **state)
{
    static const size2_t want[] = {{192, 144}, {96, 72}};
    vid_video src = {0};
    char err[512], q[160];
    size_t len, t1len, tlen;
    (void)state;

    char *clip = make_clip("a.mp4", 192, 144, 50, "-c:v libx264 -pix_fmt yuv420p", &len);
    assert_non_null(clip);
    assert_int_equal(vid_decode(clip, len, 1ULL << 30, 1, &src, err, sizeof(err)), 0);
    assert_int_equal(src.nframes, 50);
    char *t1 = run_and_check(clip, len, &src, "renditions=192x144,96x72&chunk_frames=12", 1, 12,
                             want, 2, &t1len);
    static const int groups[] = {2, 3, 8};
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        snprintf(q, sizeof(q), "group=%d&renditions=192x144,96x72&chunk_frames=12", groups[i]);
        char *t = run_and_check(clip, len, &src, q, groups[i], 12, want, 2, &tlen);
        assert_same_streams(t1, t1len, t, tlen);
        free(t);
    }
    free(t1);
    vid_video_free(&src);
    free(clip);
}

/* A single-frame video in a group of 2 (the second rank has no chunk), and odd dimensions with
 * the default renditions, none of which fits 161x121: one rendition of 160x120 is made. */
static void test_single_frame_and_odd_size(void **state)
{
    static const size2_t one[] = {{64, 48}};
    static const size2_t odd[] = {{160, 120}};
    vid_video src = {0};
    char err[512];
    size_t len, tlen;
    (void)state;

    char *clip = make_clip("one.mkv", 64, 48, 1, "-c:v ffv1 -pix_fmt yuv420p", &len);
    assert_non_null(clip);
    assert_int_equal(vid_decode(clip, len, 1ULL << 30, 1, &src, err, sizeof(err)), 0);
    assert_int_equal(src.nframes, 1);
    free(run_and_check(clip, len, &src, "group=2&renditions=64x48", 2, 24, one, 1, &tlen));
    vid_video_free(&src);
    free(clip);

    clip = make_clip("odd.mkv", 161, 121, 9, "-c:v ffv1 -pix_fmt yuv420p", &len);
    assert_non_null(clip);
    assert_int_equal(vid_decode(clip, len, 1ULL << 30, 1, &src, err, sizeof(err)), 0);
    assert_int_equal(src.width, 161);
    assert_int_equal(src.height, 121);
    free(run_and_check(clip, len, &src, "group=2&chunk_frames=4", 2, 4, odd, 1, &tlen));
    vid_video_free(&src);
    free(clip);
}

static void expect_bad_input(const char *query, const void *body, size_t len, const char *what)
{
    http_resp_t r;
    invoke(query, body, len, &r);
    if (r.status != 400 || !strstr(r.body, what))
        fprintf(stderr, "%s: status %ld: %.400s\n", query, r.status, r.body);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "\"code\":\"bad_input\""));
    assert_non_null(strstr(r.body, what));
    assert_true(strlen(r.invocation_id) >= 32);
    http_resp_free(&r);
}

/* Input that is not a video, and bad parameters, are the request's fault: 400 with a message,
 * in a group as well as alone; the function keeps working afterwards. */
static void test_bad_input(void **state)
{
    static const char text[] = "this is a text file, not a video, although it is long enough to "
                               "be probed by libavformat as one";
    size_t len;
    (void)state;

    expect_bad_input("group=2", text, sizeof(text) - 1, "not a video");
    expect_bad_input(NULL, "", 0, "video");
    char path[512], cmd[700];
    snprintf(path, sizeof(path), "%s/tone.wav", C.home);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i sine=duration=0.2 '%s'", path);
    assert_int_equal(system(cmd), 0);
    char *wav = read_whole(path, &len);
    assert_non_null(wav);
    expect_bad_input("group=2", wav, len, "no video stream");
    free(wav);
    char *clip = make_clip("ok.mkv", 64, 48, 3, "-c:v ffv1 -pix_fmt yuv420p", &len);
    assert_non_null(clip);
    expect_bad_input("group=2&cq=99", clip, len, "cq");
    expect_bad_input("chunk_frames=0", clip, len, "chunk_frames");
    /* Truncated: the first 300 bytes of a real file. */
    expect_bad_input("group=3", clip, 300, "video");
    free(clip);
    /* A decoding error in the middle (ffv1 slices with CRCs, 200 bytes flipped at 60%): rank 0
     * has already streamed the first chunks to the other ranks when it finds out, and must stop
     * them all. */
    char *good = make_clip("mid.mkv", 64, 48, 20, "-c:v ffv1 -level 3 -slicecrc 1", &len);
    assert_non_null(good);
    for (size_t i = len * 6 / 10; i < len * 6 / 10 + 200 && i < len; i++)
        good[i] ^= 0x55;
    expect_bad_input("group=3&chunk_frames=2&renditions=64x48", good, len, "decoding ffv1");
    free(good);
    assert_non_null(clip = make_clip("ok.mkv", 64, 48, 3, "-c:v ffv1 -pix_fmt yuv420p", &len));
    http_resp_t r;
    invoke("group=2&renditions=64x48", clip, len, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    free(clip);
}

/* CPU ticks (utime + stime) and the command name of a process; -1 if it is gone. */
static long cpu_ticks(pid_t pid, char comm[32])
{
    char path[64], buf[1024];
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
    if (!lp || !rp)
        return -1;
    snprintf(comm, 32, "%.*s", (int)(rp - lp - 1), lp + 1);
    unsigned long ut, st;
    /* After ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     */
    if (sscanf(rp + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

/* The video-abr instances below pid (their comm is "shoal:video-abr"). */
static int instances(pid_t pid, pid_t *out, int n, int max)
{
    pid_t kids[256];
    int k = children_of(pid, kids, 256);
    for (int i = 0; i < k && n < max; i++) {
        char comm[32];
        if (cpu_ticks(kids[i], comm) >= 0 && strcmp(comm, "shoal:video-abr") == 0)
            out[n++] = kids[i];
        n = instances(kids[i], out, n, max);
    }
    return n;
}

/* A group of 2 encodes a longer clip slowly. Once both ranks burn CPU (rank 1 encodes the chunks
 * rank 0 streams to it while rank 0 still decodes), the one with less private memory is killed
 * with SIGKILL: rank 1, since rank 0 holds every decoded frame (39 MB). The invocation ends with
 * an error naming rank 1, well before the encode could have finished, and the next invocation
 * succeeds. */
static void test_rank_killed(void **state)
{
    char out[512];
    size_t len;
    (void)state;

    char *clip = make_clip("long.mp4", 480, 360, 150, "-c:v libx264 -pix_fmt yuv420p", &len);
    assert_non_null(clip);
    snprintf(out, sizeof(out), "%s/killed.out", C.home);
    double t0 = now_s();
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        http_resp_t r;
        FILE *f = fopen(out, "w");
        if (!f || http_request(&C, "POST",
                               "/v1/functions/video-abr/invoke?group=2&renditions=480x360,"
                               "240x180&cpu_used=0&cq=10&chunk_frames=10",
                               clip, len, NULL, &r) < 0)
            _exit(1);
        fprintf(f, "%ld %.3f\n%s", r.status, r.total_s, r.body);
        _exit(fclose(f) == 0 ? 0 : 1);
    }

    /* Watch the instances' CPU time every 100 ms until two were busy in the same interval. */
    pid_t victim = 0, pids[16], busy[2] = {0, 0};
    long last[16] = {0}, anon[2] = {0, 0};
    pid_t lastpid[16] = {0};
    double t_kill = 0;
    while (now_s() - t0 < 30 && !busy[1]) {
        int n = instances(C.workers[0], pids, 0, 16), nbusy = 0;
        for (int i = 0; i < n && nbusy < 2; i++) {
            char comm[32];
            long t = cpu_ticks(pids[i], comm), before = -1;
            for (int j = 0; j < 16; j++)
                if (lastpid[j] == pids[i])
                    before = last[j];
            if (before >= 0 && t > before)
                busy[nbusy++] = pids[i];
        }
        if (nbusy < 2)
            busy[0] = busy[1] = 0;
        for (int i = 0; i < 16; i++) {
            char comm[32];
            lastpid[i] = i < n ? pids[i] : 0;
            last[i] = i < n ? cpu_ticks(pids[i], comm) : 0;
        }
        if (!busy[1])
            usleep(100000);
    }
    if (busy[1]) {
        usleep(300000); /* well inside the encode; rank 0 has decoded more */
        anon[0] = proc_status_kib(busy[0], "RssAnon");
        anon[1] = proc_status_kib(busy[1], "RssAnon");
        victim = anon[0] < anon[1] ? busy[0] : busy[1];
    }
    if (victim) {
        assert_int_equal(kill(victim, SIGKILL), 0);
        t_kill = now_s();
    }
    int st;
    assert_int_equal(waitpid(child, &st, 0), child);
    double t_end = now_s();
    if (!victim)
        cluster_dump_logs(&C);
    assert_true(victim != 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char *body = read_whole(out, &len);
    assert_non_null(body);
    long status = strtol(body, NULL, 10);
    fprintf(stderr,
            "killed pid %d (private memory %ld KiB; the other rank %ld KiB) %.2f s after the "
            "start; answer %.2f s later: %.300s\n",
            (int)victim, anon[0] < anon[1] ? anon[0] : anon[1],
            anon[0] < anon[1] ? anon[1] : anon[0], t_kill - t0, t_end - t_kill, body);
    assert_true(status >= 500 && status < 600);
    assert_non_null(strstr(body, "rank 1"));
    assert_true(strstr(body, "SIGKILL") || strstr(body, "killed"));
    assert_true(t_end - t_kill < 10.0);
    free(body);

    /* The platform replaced the instance: the same group works again (a short clip). */
    vid_video src = {0};
    char err[256];
    size_t tlen;
    static const size2_t want[] = {{64, 48}};
    free(clip);
    clip = make_clip("after.mkv", 64, 48, 5, "-c:v ffv1 -pix_fmt yuv420p", &len);
    assert_non_null(clip);
    assert_int_equal(vid_decode(clip, len, 1ULL << 30, 1, &src, err, sizeof(err)), 0);
    free(run_and_check(clip, len, &src, "group=2&renditions=64x48&chunk_frames=2", 2, 2, want, 1,
                       &tlen));
    vid_video_free(&src);
    free(clip);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_uneven_chunks),
        cmocka_unit_test(test_single_frame_and_odd_size),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_rank_killed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
