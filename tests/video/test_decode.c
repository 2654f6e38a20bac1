/* Tests examples/video/decode.c on clips made with ffmpeg at test time: frame counts, sizes,
 * exact pixels, odd sizes, a single frame, audio ignored, and clear errors for what is not a
 * video. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clip.h"
#include "examples/video/decode.h"

#define MAX_RAW (256u << 20)

static char err[512];

static void test_mp4_with_audio(void **state)
{
    (void)state;
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make("a.mp4", 320, 240, 30, 1, "-c:v libx264 -pix_fmt yuv420p", &len, path);
    assert_non_null(in);
    vid_video v;
    assert_int_equal(vid_decode(in, len, MAX_RAW, 1, &v, err, sizeof(err)), 0);
    assert_int_equal(v.nframes, 30);
    assert_int_equal(v.width, 320);
    assert_int_equal(v.height, 240);
    assert_int_equal(v.fps_num, 20);
    assert_int_equal(v.fps_den, 1);
    assert_int_equal(v.frame_size, 320 * 240 * 3 / 2);
    assert_string_equal(v.codec, "h264");
    assert_non_null(strstr(v.container, "mp4"));
    vid_video_free(&v);
    assert_null(v.frames);
    free(in);
}

/* A lossless source decodes to exactly the pixels ffmpeg itself produces, odd size included. */
static void test_exact_pixels_odd_size(void **state)
{
    (void)state;
    char path[512], raw_path[512];
    size_t len = 0, raw_len = 0;
    uint8_t *in = clip_make("odd.mkv", 321, 241, 7, 0, "-c:v ffv1 -pix_fmt yuv420p", &len, path);
    uint8_t *raw =
        clip_make("odd.yuv", 321, 241, 7, 0, "-f rawvideo -pix_fmt yuv420p", &raw_len, raw_path);
    assert_non_null(in);
    assert_non_null(raw);
    vid_video v;
    assert_int_equal(vid_decode(in, len, MAX_RAW, 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v.width, 321);
    assert_int_equal(v.height, 241);
    assert_int_equal(v.frame_size, 321 * 241 + 2 * 161 * 121);
    assert_int_equal(v.nframes, 7);
    assert_int_equal(raw_len, 7 * v.frame_size);
    assert_memory_equal(v.frames, raw, raw_len);
    vid_video_free(&v);
    free(in);
    free(raw);
}

/* Another pixel format (4:4:4, like the cockatoo sample) is converted to 4:2:0. */
static void test_converts_yuv444(void **state)
{
    (void)state;
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make("444.mp4", 160, 120, 5, 0, "-c:v libx264 -pix_fmt yuv444p", &len, path);
    assert_non_null(in);
    vid_video v;
    assert_int_equal(vid_decode(in, len, MAX_RAW, 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v.nframes, 5);
    assert_int_equal(v.frame_size, 160 * 120 * 3 / 2);
    /* testsrc2 is colourful: the chroma planes are not flat. */
    const uint8_t *u = v.frames + 160 * 120;
    int distinct = 0;
    for (int i = 1; i < 80 * 60; i++)
        distinct += u[i] != u[0];
    assert_true(distinct > 100);
    vid_video_free(&v);
    free(in);
}

static void test_single_frame(void **state)
{
    (void)state;
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make("one.webm", 64, 48, 1, 0, "-c:v libvpx", &len, path);
    assert_non_null(in);
    vid_video v;
    assert_int_equal(vid_decode(in, len, MAX_RAW, 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v.nframes, 1);
    assert_int_equal(v.width, 64);
    vid_video_free(&v);
    free(in);
}

static void expect_not_video(const void *data, size_t len, const char *fragment)
{
    vid_video v;
    err[0] = '\0';
    assert_int_equal(vid_decode(data, len, MAX_RAW, 0, &v, err, sizeof(err)), -EINVAL);
    assert_null(v.frames);
    assert_int_equal(v.nframes, 0);
    if (!strstr(err, fragment))
        fail_msg("message \"%s\" lacks \"%s\"", err, fragment);
}

static void test_not_video(void **state)
{
    (void)state;
    const char *text = "Hello, this is a plain text file and certainly not a video.\n";
    expect_not_video(text, strlen(text), "not a video file");
    expect_not_video("", 0, "empty");
    uint8_t noise[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245 + 12345;
        noise[i] = (uint8_t)(x >> 16);
    }
    expect_not_video(noise, sizeof(noise), "not a video file");

    /* Audio only: a media file, but with no video stream. */
    char path[512], cmd[1024];
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/tone.wav", clip_tmpdir());
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -loglevel error -y -f lavfi -i sine=frequency=440:duration=0.5 '%s'",
             path);
    assert_int_equal(system(cmd), 0);
    uint8_t *wav = clip_read(path, &len);
    assert_non_null(wav);
    expect_not_video(wav, len, "no video stream");
    /* A truncated video: the container's header is cut off. */
    uint8_t *mp4 = clip_make("t.mp4", 64, 48, 10, 0, "-c:v libx264", &len, path);
    assert_non_null(mp4);
    expect_not_video(mp4 + 100, len - 100, "not a video file");
    free(mp4);
    free(wav);
}

static void test_too_large(void **state)
{
    (void)state;
    char path[512];
    size_t len = 0;
    uint8_t *in = clip_make("long.mkv", 64, 48, 40, 0, "-c:v ffv1", &len, path);
    assert_non_null(in);
    vid_video v;
    /* Room for 20 frames of 64x48 (4608 bytes each), not 40. */
    assert_int_equal(vid_decode(in, len, 20 * 4608, 0, &v, err, sizeof(err)), -EFBIG);
    assert_non_null(strstr(err, "video too long"));
    assert_null(v.frames);
    assert_int_equal(vid_decode(in, len, 40 * 4608, 0, &v, err, sizeof(err)), 0);
    assert_int_equal(v.nframes, 40);
    vid_video_free(&v);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mp4_with_audio),  cmocka_unit_test(test_exact_pixels_odd_size),
        cmocka_unit_test(test_converts_yuv444), cmocka_unit_test(test_single_frame),
        cmocka_unit_test(test_not_video),       cmocka_unit_test(test_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
