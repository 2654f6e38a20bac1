/* Tests examples/video/pipeline.c: the video-abr function's stages run for every rank of a
 * simulated group in one process, with the messages between them handed over as the collectives
 * would (scatter, shuffle, gather). Covers the plan, partitioning, group sizes from 1 to larger
 * than the number of chunks (outputs must be byte-identical), the manifest and tar, and failures
 * travelling to rank 0. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "clip.h"
#include "examples/video/pipeline.h"

static char err[1024];

static vid_video load(const char *name, int w, int h, int frames)
{
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make(name, w, h, frames, 1, "-c:v libx264 -pix_fmt yuv420p", &len, path);
    vid_video v;
    assert_non_null(in);
    assert_int_equal(vid_decode(in, len, 256u << 20, 0, &v, err, sizeof(err)), 0);
    free(in);
    return v;
}

static vid_job make_job(const vid_video *v, const char *query)
{
    vid_params p;
    vid_size rend[VID_MAX_RENDITIONS];
    vid_job j, got;
    assert_int_equal(vid_params_parse(query, &p, err, sizeof(err)), 0);
    int n = vid_params_fit(&p, v->width, v->height, rend, err, sizeof(err));
    assert_true(n > 0);
    vid_job_init(&j, &p, v, rend, n, 12345, 1.0);
    /* What the other ranks read after the bcast. */
    assert_int_equal(vid_job_read(&j, sizeof(j), &got), 0);
    assert_memory_equal(&j, &got, sizeof(j));
    return j;
}

/* A group's outcome: the gathered messages and the package built from them. */
typedef struct {
    int size, rc;
    vid_buf *gmsg;
    vid_package pkg;
} run_result;

/* Runs every stage for every rank of a group of `size`. corrupt: if >= 0, the rank whose part
 * arrives one frame short (a failing rank). */
static run_result run_group(const vid_job *j, const vid_video *v, int size, int short_rank)
{
    run_result res = {size, 0, calloc((size_t)size, sizeof(vid_buf)), {0}};
    vid_buf *send = calloc((size_t)size * size, sizeof(vid_buf));
    vid_rank_info *info = calloc((size_t)size, sizeof(*info));
    vid_span *recv = calloc((size_t)size, sizeof(*recv));
    vid_root_info root = {.start_ms = vid_now_ms()};
    size_t fsize = vid_frame_size(j->width, j->height);
    int covered = 0;

    for (int k = 0; k < size; k++) {
        vid_part p = vid_job_part(j, size, k);
        size_t len = (size_t)p.nframes * fsize;
        if (k == short_rank)
            len -= fsize;
        assert_int_equal(p.first_frame, covered);
        covered += p.nframes;
        info[k].rank = k;
        int rc = vid_stage_encode(j, size, k, v->frames + (size_t)p.first_frame * fsize, len, 1,
                                  &send[k * size], &info[k], err, sizeof(err));
        assert_int_equal(rc, k == short_rank ? -EBADMSG : 0);
    }
    assert_int_equal(covered, j->nframes);
    for (int d = 0; d < size; d++) {
        for (int k = 0; k < size; k++)
            recv[k] = (vid_span){send[k * size + d].data, send[k * size + d].len};
        int rc = vid_stage_stitch(j, size, d, recv, &res.gmsg[d], &info[d], err, sizeof(err));
        assert_int_equal(rc, short_rank >= 0 ? -ECANCELED : 0);
    }
    for (int k = 0; k < size * size; k++)
        vid_buf_free(&send[k]);
    for (int k = 0; k < size; k++)
        recv[k] = (vid_span){res.gmsg[k].data, res.gmsg[k].len};
    res.rc = vid_stage_package(j, size, recv, &root, &res.pkg, err, sizeof(err));
    free(recv);
    free(info);
    free(send);
    return res;
}

static void free_result(run_result *r)
{
    vid_package_free(&r->pkg);
    for (int k = 0; k < r->size; k++)
        vid_buf_free(&r->gmsg[k]);
    free(r->gmsg);
}

static void test_partition(void **state)
{
    (void)state;
    vid_job j = {0};
    for (int nframes = 1; nframes <= 40; nframes += 3)
        for (int cf = 1; cf <= 13; cf += 4)
            for (int size = 1; size <= 9; size++) {
                j.nframes = nframes;
                j.chunk_frames = cf;
                int nchunks = vid_job_nchunks(&j), next_chunk = 0, next_frame = 0, lo = 1 << 30,
                    hi = 0;
                for (int k = 0; k < size; k++) {
                    vid_part p = vid_job_part(&j, size, k);
                    assert_int_equal(p.first_chunk, next_chunk);
                    assert_int_equal(p.first_frame, next_frame);
                    assert_true(p.nchunks >= 0 && p.nframes >= 0);
                    assert_true(p.nframes <= p.nchunks * cf);
                    next_chunk += p.nchunks;
                    next_frame += p.nframes;
                    lo = p.nchunks < lo ? p.nchunks : lo;
                    hi = p.nchunks > hi ? p.nchunks : hi;
                }
                assert_int_equal(next_chunk, nchunks);
                assert_int_equal(next_frame, nframes);
                assert_true(hi - lo <= 1);
                assert_int_equal(vid_job_part(&j, size, 0).nchunks, lo);
            }
}

static void test_job_messages(void **state)
{
    (void)state;
    vid_job j, got;
    vid_job_fail(&j, "input is not a video file libavformat can read: Invalid data");
    assert_int_equal(vid_job_read(&j, sizeof(j), &got), 0);
    assert_int_not_equal(got.status, 0);
    assert_string_equal(got.msg, "input is not a video file libavformat can read: Invalid data");
    assert_int_equal(vid_job_read(&j, sizeof(j) - 1, &got), -EBADMSG);
    j.magic ^= 1;
    assert_int_equal(vid_job_read(&j, sizeof(j), &got), -EBADMSG);
    /* A plan with an upscaling rendition is refused. */
    memset(&j, 0, sizeof(j));
    j.magic = VID_JOB_MAGIC;
    j.version = VID_WIRE_VERSION;
    j.width = 320;
    j.height = 240;
    j.fps_num = j.fps_den = 1;
    j.nframes = j.chunk_frames = j.nrend = 1;
    j.rend_w[0] = 320;
    j.rend_h[0] = 240;
    assert_int_equal(vid_job_read(&j, sizeof(j), &got), 0);
    j.rend_w[0] = 640;
    assert_int_equal(vid_job_read(&j, sizeof(j), &got), -EBADMSG);
}

/* Writes the package as a tar, extracts it with the system's tar and checks the manifest against
 * the files. */
static void check_tar(const vid_job *j, const vid_package *pkg, int size)
{
    size_t tlen = vid_tar_size(pkg->entries, pkg->n);
    uint8_t *tar = malloc(tlen);
    char path[300], dir[300], cmd[1024];
    assert_int_equal(vid_tar_write(tar, tlen, pkg->entries, pkg->n, 0), (long long)tlen);
    snprintf(path, sizeof(path), "%s/out-%d.tar", clip_tmpdir(), size);
    snprintf(dir, sizeof(dir), "%s/out-%d", clip_tmpdir(), size);
    assert_int_equal(clip_write(path, tar, tlen), 0);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && tar -xf '%s' -C '%s'", dir, path, dir);
    assert_int_equal(system(cmd), 0);
    free(tar);

    char mpath[400];
    snprintf(mpath, sizeof(mpath), "%s/manifest.json", dir);
    json_error_t jerr;
    json_t *m = json_load_file(mpath, 0, &jerr);
    if (!m)
        fail_msg("manifest.json: %s", jerr.text);
    json_t *rends = json_object_get(m, "renditions");
    assert_int_equal(json_array_size(rends), j->nrend);
    assert_int_equal(json_integer_value(json_object_get(m, "group_size")), size);
    assert_int_equal(json_integer_value(json_object_get(m, "chunks")), vid_job_nchunks(j));
    assert_true(json_is_object(json_object_get(m, "stages_ms")));
    assert_true(json_is_object(json_object_get(m, "collectives")));
    assert_int_equal(json_array_size(json_object_get(m, "ranks")), size);
    for (int r = 0; r < j->nrend; r++) {
        json_t *o = json_array_get(rends, (size_t)r);
        assert_int_equal(json_integer_value(json_object_get(o, "width")), j->rend_w[r]);
        assert_int_equal(json_integer_value(json_object_get(o, "height")), j->rend_h[r]);
        assert_int_equal(json_integer_value(json_object_get(o, "frames")), j->nframes);
        assert_int_equal(json_integer_value(json_object_get(o, "keyframes")), vid_job_nchunks(j));
        assert_int_equal(json_integer_value(json_object_get(o, "stitched_by")), r % size);
        double psnr = json_real_value(json_object_get(o, "psnr"));
        assert_true(psnr > 30.0 && psnr <= 100.0);
        assert_true(json_real_value(json_object_get(o, "bitrate_kbps")) > 0);
        const char *file = json_string_value(json_object_get(o, "file"));
        assert_non_null(file);
        char fpath[400];
        size_t flen = 0;
        snprintf(fpath, sizeof(fpath), "%s/%s", dir, file);
        uint8_t *ivf = clip_read(fpath, &flen);
        assert_non_null(ivf);
        assert_int_equal(flen, json_integer_value(json_object_get(o, "bytes")));
        vid_video d;
        assert_int_equal(vid_decode(ivf, flen, 64u << 20, 1, &d, err, sizeof(err)), 0);
        assert_int_equal(d.nframes, j->nframes);
        assert_int_equal(d.width, j->rend_w[r]);
        assert_int_equal(d.height, j->rend_h[r]);
        vid_video_free(&d);
        free(ivf);
    }
    json_decref(m);
}

static void test_group_sizes(void **state)
{
    (void)state;
    vid_video v = load("g.mp4", 320, 240, 30);
    /* 4 chunks (8 + 8 + 8 + 6), 3 renditions. */
    vid_job j = make_job(&v, "chunk_frames=8&renditions=320x240,160x120,128x72");
    assert_int_equal(vid_job_nchunks(&j), 4);
    run_result one = run_group(&j, &v, 1, -1);
    assert_int_equal(one.rc, 0);
    assert_int_equal(one.pkg.n, 4);
    assert_string_equal(one.pkg.entries[0].name, "manifest.json");
    assert_string_equal(one.pkg.entries[1].name, "320x240.ivf");
    check_tar(&j, &one.pkg, 1);
    /* 2 and 3 ranks, and 7: more ranks than chunks (3 idle) and than renditions. */
    const int sizes[] = {2, 3, 7};
    for (int s = 0; s < 3; s++) {
        run_result g = run_group(&j, &v, sizes[s], -1);
        if (g.rc != 0)
            fail_msg("group of %d: %s", sizes[s], err);
        check_tar(&j, &g.pkg, sizes[s]);
        for (int r = 1; r < g.pkg.n; r++) {
            assert_int_equal(g.pkg.entries[r].len, one.pkg.entries[r].len);
            assert_memory_equal(g.pkg.entries[r].data, one.pkg.entries[r].data,
                                one.pkg.entries[r].len);
        }
        free_result(&g);
    }
    free_result(&one);
    vid_video_free(&v);
}

static void test_single_frame_odd_source(void **state)
{
    (void)state;
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make("o.mkv", 321, 241, 1, 0, "-c:v ffv1 -pix_fmt yuv420p", &len, path);
    vid_video v;
    assert_non_null(in);
    assert_int_equal(vid_decode(in, len, 64u << 20, 0, &v, err, sizeof(err)), 0);
    free(in);
    /* Default renditions are all larger than the source: one at 320x240. */
    vid_job j = make_job(&v, NULL);
    assert_int_equal(j.nrend, 1);
    assert_int_equal(j.rend_w[0], 320);
    assert_int_equal(j.rend_h[0], 240);
    run_result g = run_group(&j, &v, 3, -1);
    assert_int_equal(g.rc, 0);
    check_tar(&j, &g.pkg, 3);
    free_result(&g);
    vid_video_free(&v);
}

static void test_failed_rank(void **state)
{
    (void)state;
    vid_video v = load("f.mp4", 160, 120, 20);
    vid_job j = make_job(&v, "chunk_frames=5&renditions=160x120,80x60");
    run_result g = run_group(&j, &v, 3, 1);
    assert_int_equal(g.rc, -ECANCELED);
    if (!strstr(err, "rank 1: received"))
        fail_msg("message \"%s\" does not name rank 1's failure", err);
    assert_int_equal(g.pkg.n, 0);
    assert_null(g.pkg.manifest);
    free_result(&g);
    vid_video_free(&v);
}

static void test_corrupt_messages(void **state)
{
    (void)state;
    vid_video v = load("c.mp4", 160, 120, 10);
    vid_job j = make_job(&v, "chunk_frames=5&renditions=160x120");
    vid_buf send[2];
    vid_rank_info info = {.rank = 0};
    size_t fsize = vid_frame_size(v.width, v.height);
    vid_part p = vid_job_part(&j, 2, 0);
    assert_int_equal(vid_stage_encode(&j, 2, 0, v.frames, (size_t)p.nframes * fsize, 1, send, &info,
                                      err, sizeof(err)),
                     0);
    /* Rank 0 owns rendition 0; rank 1's message is cut short and garbage. */
    vid_span recv[2] = {{send[0].data, send[0].len}, {send[0].data, send[0].len - 10}};
    vid_buf out;
    assert_int_equal(vid_stage_stitch(&j, 2, 0, recv, &out, &info, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "rank 0: malformed message from rank 1"));
    vid_buf_free(&out);
    /* Only half the chunks arrive. */
    vid_buf empty[2];
    vid_rank_info info1 = {.rank = 1};
    assert_int_equal(vid_stage_encode(&j, 2, 1, NULL, 0, 1, empty, &info1, err, sizeof(err)),
                     -EBADMSG); /* rank 1 has one chunk: zero bytes is wrong */
    vid_buf_free(&empty[0]);
    vid_buf_free(&empty[1]);
    /* A well-formed message from rank 1 that carries no chunk: rank 1 of 3 in a one-chunk job. */
    vid_job one = j;
    vid_buf none[3];
    one.nframes = 5;
    assert_int_equal(vid_stage_encode(&one, 3, 1, NULL, 0, 1, none, &info1, err, sizeof(err)), 0);
    recv[1] = (vid_span){none[0].data, none[0].len};
    assert_int_equal(vid_stage_stitch(&j, 2, 0, recv, &out, &info, err, sizeof(err)), -EBADMSG);
    assert_non_null(strstr(err, "chunk 1 of rendition 160x120 never arrived"));
    vid_buf_free(&out);
    for (int k = 0; k < 3; k++)
        vid_buf_free(&none[k]);
    /* Garbage at the gather. */
    vid_span parts[1] = {{"nonsense", 8}};
    vid_package pkg;
    vid_root_info root = {0};
    assert_int_equal(vid_stage_package(&j, 1, parts, &root, &pkg, err, sizeof(err)), -EBADMSG);
    for (int k = 0; k < 2; k++) {
        vid_buf_free(&send[k]);
        vid_buf_free(&empty[k]);
    }
    vid_video_free(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_partition),   cmocka_unit_test(test_job_messages),
        cmocka_unit_test(test_group_sizes), cmocka_unit_test(test_single_frame_odd_source),
        cmocka_unit_test(test_failed_rank), cmocka_unit_test(test_corrupt_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
