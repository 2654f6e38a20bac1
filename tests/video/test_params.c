/* Tests examples/video/params.c: query parsing, strict validation and fitting renditions. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "examples/video/params.h"

static char err[512];

static void test_defaults(void **state)
{
    (void)state;
    vid_params p;
    assert_int_equal(vid_params_parse(NULL, &p, err, sizeof(err)), 0);
    assert_int_equal(p.chunk_frames, 24);
    assert_int_equal(p.nrend, 3);
    assert_int_equal(p.rend[0].width, 1280);
    assert_int_equal(p.rend[0].height, 720);
    assert_int_equal(p.rend[1].width, 854);
    assert_int_equal(p.rend[1].height, 480);
    assert_int_equal(p.rend[2].width, 640);
    assert_int_equal(p.rend[2].height, 360);
    assert_int_equal(p.cq, VID_DEFAULT_CQ);
    assert_int_equal(p.cpu_used, VID_DEFAULT_CPU_USED);
    assert_int_equal(vid_params_parse("", &p, err, sizeof(err)), 0);
    assert_int_equal(p.chunk_frames, 24);
}

static void test_parse(void **state)
{
    (void)state;
    vid_params p;
    /* group is the platform's; unknown keys and empty items are ignored. */
    assert_int_equal(vid_params_parse("group=4&chunk_frames=6&renditions=640x360%2C320X180&cq=33"
                                      "&cpu_used=0&&backend=redis",
                                      &p, err, sizeof(err)),
                     0);
    assert_int_equal(p.chunk_frames, 6);
    assert_int_equal(p.nrend, 2);
    assert_int_equal(p.rend[0].width, 640);
    assert_int_equal(p.rend[1].width, 320);
    assert_int_equal(p.rend[1].height, 180);
    assert_int_equal(p.cq, 33);
    assert_int_equal(p.cpu_used, 0);
}

static void expect_error(const char *query, const char *fragment)
{
    vid_params p;
    err[0] = '\0';
    assert_int_equal(vid_params_parse(query, &p, err, sizeof(err)), -EINVAL);
    if (!strstr(err, fragment))
        fail_msg("query \"%s\": message \"%s\" lacks \"%s\"", query, err, fragment);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("chunk_frames=0", "chunk_frames must be an integer 1..10000");
    expect_error("chunk_frames=10001", "chunk_frames must be an integer 1..10000");
    expect_error("chunk_frames=abc", "\"abc\"");
    expect_error("chunk_frames=", "chunk_frames");
    expect_error("chunk_frames=12x", "chunk_frames");
    expect_error("chunk_frames=-3", "chunk_frames");
    expect_error("chunk_frames=99999999999999999999", "chunk_frames");
    expect_error("cq=64", "cq must be an integer 0..63");
    expect_error("cq=1.5", "cq must be");
    expect_error("cpu_used=6", "cpu_used must be an integer 0..5");
    expect_error("cpu_used=-1", "cpu_used");
    expect_error("renditions=1280", "is not WIDTHxHEIGHT");
    expect_error("renditions=1280x", "renditions");
    expect_error("renditions=641x360", "odd side");
    expect_error("renditions=0x0", "renditions");
    expect_error("renditions=9000x100", "2..8192");
    expect_error("renditions=640x360,,320x180", "empty");
    expect_error("renditions=", "empty");
    expect_error("renditions=2x2,4x4,6x6,8x8,10x10,12x12,14x14,16x16,18x18", "at most 8");
    expect_error("cq=10&cq=20", "cq given more than once");
    expect_error("cq=%zz", "percent-escape");
    expect_error("cq=1%00", "percent-escape");
}

static void test_fit(void **state)
{
    (void)state;
    vid_params p;
    vid_size out[VID_MAX_RENDITIONS];
    vid_params_default(&p);
    /* The sample's size: all three. */
    assert_int_equal(vid_params_fit(&p, 1280, 720, out, err, sizeof(err)), 3);
    /* 854x480 source: 1280x720 would upscale and is skipped. */
    assert_int_equal(vid_params_fit(&p, 854, 480, out, err, sizeof(err)), 2);
    assert_int_equal(out[0].width, 854);
    assert_int_equal(out[1].width, 640);
    /* Larger than the source in one dimension only: skipped too. */
    assert_int_equal(vid_params_fit(&p, 1000, 400, out, err, sizeof(err)), 1);
    assert_int_equal(out[0].width, 640);
    assert_int_equal(out[0].height, 360);
    assert_int_equal(vid_params_fit(&p, 2000, 300, out, err, sizeof(err)), 1);
    assert_int_equal(out[0].width, 2000);
    assert_int_equal(out[0].height, 300);
    /* Nothing fits: one rendition at the source size, rounded down to even. */
    assert_int_equal(vid_params_fit(&p, 321, 241, out, err, sizeof(err)), 1);
    assert_int_equal(out[0].width, 320);
    assert_int_equal(out[0].height, 240);
    assert_int_equal(vid_params_fit(&p, 3, 2, out, err, sizeof(err)), 1);
    assert_int_equal(out[0].width, 2);
    assert_int_equal(out[0].height, 2);
    assert_int_equal(vid_params_fit(&p, 1, 100, out, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "at least 2x2"));
    /* Duplicates are dropped, order kept. */
    assert_int_equal(vid_params_parse("renditions=320x240,160x120,320x240", &p, err, sizeof(err)),
                     0);
    assert_int_equal(vid_params_fit(&p, 320, 240, out, err, sizeof(err)), 2);
    assert_int_equal(out[0].width, 320);
    assert_int_equal(out[1].width, 160);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
