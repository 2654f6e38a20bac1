/* Tests examples/video/ivf.c: header round trip, frame iteration, key frame detection and
 * stitching chunk streams into one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "examples/video/ivf.h"

static char err[512];

/* Builds an IVF stream of n frames of 3 + i bytes whose first byte marks key (even) or inter
 * (odd) frames: key frames at the indices in keymask's set bits. pts start at pts0. */
static uint8_t *make_ivf(int w, int h, uint32_t rate, int n, uint32_t keymask, uint64_t pts0,
                         size_t *len)
{
    size_t total = VID_IVF_HEADER;
    for (int i = 0; i < n; i++)
        total += VID_IVF_FRAME_HEADER + 3 + (size_t)i;
    uint8_t *b = calloc(1, total), *p = b + VID_IVF_HEADER;
    vid_ivf_info info = {VID_IVF_VP8, w, h, rate, 1, (uint32_t)n};
    vid_ivf_put_header(b, &info);
    for (int i = 0; i < n; i++) {
        vid_ivf_put_frame_header(p, 3 + (uint32_t)i, pts0 + (uint64_t)i);
        p[VID_IVF_FRAME_HEADER] = (keymask >> i) & 1 ? 0x10 : 0x11;
        memset(p + VID_IVF_FRAME_HEADER + 1, 0xa0 + i, 2 + (size_t)i);
        p += VID_IVF_FRAME_HEADER + 3 + i;
    }
    *len = total;
    return b;
}

static void test_header(void **state)
{
    (void)state;
    uint8_t b[VID_IVF_HEADER];
    vid_ivf_info in = {VID_IVF_VP8, 854, 480, 30000, 1001, 280}, out;
    vid_ivf_put_header(b, &in);
    assert_memory_equal(b, "DKIF\0\0\x20\0VP80", 12);
    assert_int_equal(b[12], 854 & 0xff);
    assert_int_equal(b[13], 854 >> 8);
    assert_int_equal(vid_ivf_parse_header(b, sizeof(b), &out), 0);
    assert_int_equal(out.fourcc, VID_IVF_VP8);
    assert_int_equal(out.width, 854);
    assert_int_equal(out.height, 480);
    assert_int_equal(out.rate, 30000);
    assert_int_equal(out.scale, 1001);
    assert_int_equal(out.nframes, 280);
    assert_int_equal(vid_ivf_parse_header(b, sizeof(b) - 1, &out), -EBADMSG);
    b[0] = 'X';
    assert_int_equal(vid_ivf_parse_header(b, sizeof(b), &out), -EBADMSG);
}

static void test_reader(void **state)
{
    (void)state;
    size_t len = 0;
    uint8_t *b = make_ivf(64, 48, 20, 4, 0x1, 7, &len);
    vid_ivf_reader r;
    const uint8_t *f;
    uint32_t sz;
    uint64_t pts;
    assert_int_equal(vid_ivf_reader_init(&r, b, len), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), 1);
        assert_int_equal(sz, 3 + i);
        assert_int_equal(pts, 7 + i);
        assert_int_equal(vid_vp8_is_keyframe(f, sz), i == 0);
    }
    assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), 0);
    /* Truncated in a frame's payload, and in a frame header. */
    assert_int_equal(vid_ivf_reader_init(&r, b, len - 1), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), 1);
    assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), -EBADMSG);
    assert_int_equal(vid_ivf_reader_init(&r, b, VID_IVF_HEADER + 5), 0);
    assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), -EBADMSG);
    free(b);
}

static void test_stitch(void **state)
{
    (void)state;
    size_t l0, l1, l2, out_len;
    uint8_t *c0 = make_ivf(64, 48, 20, 3, 0x1, 0, &l0);
    uint8_t *c1 = make_ivf(64, 48, 20, 3, 0x1, 0, &l1);
    uint8_t *c2 = make_ivf(64, 48, 20, 1, 0x1, 0, &l2); /* an uneven last chunk */
    vid_span spans[3] = {{c0, l0}, {c1, l1}, {c2, l2}};
    uint8_t *out;
    uint32_t n, keys;
    assert_int_equal(vid_ivf_stitch(spans, 3, &out, &out_len, &n, &keys, err, sizeof(err)), 0);
    assert_int_equal(n, 7);
    assert_int_equal(keys, 3);
    assert_int_equal(out_len, l0 + l1 + l2 - 2 * VID_IVF_HEADER);

    vid_ivf_reader r;
    const uint8_t *f;
    uint32_t sz;
    uint64_t pts;
    assert_int_equal(vid_ivf_reader_init(&r, out, out_len), 0);
    assert_int_equal(r.info.nframes, 7);
    assert_int_equal(r.info.width, 64);
    int sizes[7] = {3, 4, 5, 3, 4, 5, 3};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), 1);
        assert_int_equal(pts, i); /* renumbered */
        assert_int_equal(sz, sizes[i]);
        assert_int_equal(vid_vp8_is_keyframe(f, sz), i == 0 || i == 3 || i == 6);
    }
    assert_int_equal(vid_ivf_next(&r, &f, &sz, &pts), 0);
    free(out);

    /* A chunk of another size, a truncated chunk, garbage, and no chunks are refused. */
    uint8_t *other = make_ivf(32, 48, 20, 2, 0x1, 0, &l2);
    spans[2] = (vid_span){other, l2};
    assert_int_equal(vid_ivf_stitch(spans, 3, &out, &out_len, &n, &keys, err, sizeof(err)),
                     -EBADMSG);
    assert_non_null(strstr(err, "chunk 2"));
    spans[2] = (vid_span){c1, l1 - 2};
    assert_int_equal(vid_ivf_stitch(spans, 3, &out, &out_len, &n, &keys, err, sizeof(err)),
                     -EBADMSG);
    assert_non_null(strstr(err, "truncated"));
    spans[2] = (vid_span){"not an ivf stream at all, really", 32};
    assert_int_equal(vid_ivf_stitch(spans, 3, &out, &out_len, &n, &keys, err, sizeof(err)),
                     -EBADMSG);
    assert_int_equal(vid_ivf_stitch(spans, 0, &out, &out_len, &n, &keys, err, sizeof(err)),
                     -EBADMSG);
    free(other);
    free(c0);
    free(c1);
    free(c2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_stitch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
