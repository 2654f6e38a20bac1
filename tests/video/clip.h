/*
 * clip.h - test clips for the video tests, made at test time with ffmpeg's testsrc2 source in a
 * temporary directory (so nothing binary is committed and the clips stay small and fast).
 */
#ifndef TESTS_VIDEO_CLIP_H
#define TESTS_VIDEO_CLIP_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A temporary directory, created once per test program and removed at exit. */
static char clip_dir[256];

static void clip_cleanup(void)
{
    char cmd[300];
    if (clip_dir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", clip_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "clip: cannot remove %s\n", clip_dir);
    }
}

static __attribute__((unused)) const char *clip_tmpdir(void)
{
    if (!clip_dir[0]) {
        snprintf(clip_dir, sizeof(clip_dir), "/tmp/shoal-video-test.XXXXXX");
        if (!mkdtemp(clip_dir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(clip_cleanup);
    }
    return clip_dir;
}

/* Reads a whole file; NULL on failure. */
static __attribute__((unused)) uint8_t *clip_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    uint8_t *buf = NULL;
    if (!f)
        return NULL;
    if (fstat(fileno(f), &sb) == 0 && (buf = malloc((size_t)sb.st_size + 1)) != NULL &&
        fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        *len = (size_t)sb.st_size;
    fclose(f);
    return buf;
}

static __attribute__((unused)) int clip_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

/* Makes <tmpdir>/name with ffmpeg (args: what goes between the inputs and the output name,
 * e.g. "-c:v libx264") from testsrc2 of w x h at 20 fps, `frames` frames, with a sine audio track
 * when audio is set. (testsrc2 rounds odd sizes down when it renders YUV420P itself, so odd sizes
 * are rendered as RGB and converted by the encoder's side.) Returns the file's contents (free()) or
 * NULL; *path gets its path. */
static __attribute__((unused)) uint8_t *clip_make(const char *name, int w, int h, int frames,
                                                  int audio, const char *args, size_t *len,
                                                  char path[512])
{
    char cmd[2048];
    snprintf(path, 512, "%s/%s", clip_tmpdir(), name);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi "
             "-i testsrc2=size=%dx%d:rate=20%s %s -frames:v %d %s %s '%s'",
             w, h, (w | h) & 1 ? ",format=rgb24" : "",
             audio ? "-f lavfi -i sine=frequency=440:sample_rate=44100" : "", frames,
             audio ? "-c:a aac -shortest" : "", args, path);
    if (system(cmd) != 0) {
        fprintf(stderr, "clip: failed: %s\n", cmd);
        return NULL;
    }
    return clip_read(path, len);
}

#endif
