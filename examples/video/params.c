/*
 * params.c - query-string parameters of the video pipeline.
 *
 * The query is split on '&' into key=value pairs and both parts are percent-decoded (so that
 * renditions=1280x720%2C640x360 works). Integers are parsed strictly: digits, nothing else, within
 * range. A parameter given twice is an error rather
 * than a silent last-wins.
 */
#include "params.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_QUERY 4096

void vid_params_default(vid_params *p)
{
    memset(p, 0, sizeof(*p));
    p->chunk_frames = VID_DEFAULT_CHUNK_FRAMES;
    p->nrend = 3;
    p->rend[0] = (vid_size){1280, 720};
    p->rend[1] = (vid_size){854, 480};
    p->rend[2] = (vid_size){640, 360};
    p->cq = VID_DEFAULT_CQ;
    p->cpu_used = VID_DEFAULT_CPU_USED;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into dst (room for n + 1 bytes); '+' means a space. Returns -1 on a
 * malformed escape or an encoded NUL. */
static int pct_decode(const char *src, size_t n, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '%') {
            if (n - i < 3)
                return -1;
            int hi = hexval((unsigned char)src[i + 1]), lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0 || (hi | lo) == 0)
                return -1;
            dst[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            dst[o++] = src[i] == '+' ? ' ' : src[i];
        }
    }
    dst[o] = '\0';
    return 0;
}

/* Parses a whole decimal integer in [lo, hi]. Returns -1 when s is anything else. */
static int parse_int(const char *s, long lo, long hi, int *out)
{
    if (*s == '\0' || strlen(s) > 9)
        return -1;
    for (const char *q = s; *q; q++)
        if (*q < '0' || *q > '9')
            return -1;
    long v = strtol(s, NULL, 10);
    if (v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_renditions(const char *s, vid_params *p, char *err, size_t errlen)
{
    int n = 0;
    const char *item = s;
    for (;;) {
        const char *end = strchr(item, ',');
        size_t len = end ? (size_t)(end - item) : strlen(item);
        char buf[32];
        if (len == 0 || len >= sizeof(buf)) {
            snprintf(err, errlen,
                     "renditions: empty or overlong entry in \"%.64s\" (want a comma-separated "
                     "list of WIDTHxHEIGHT, e.g. 1280x720,640x360)",
                     s);
            return -EINVAL;
        }
        memcpy(buf, item, len);
        buf[len] = '\0';
        char *x = strpbrk(buf, "xX");
        int w, h;
        if (!x) {
            snprintf(err, errlen, "renditions: \"%s\" is not WIDTHxHEIGHT (e.g. 1280x720)", buf);
            return -EINVAL;
        }
        *x = '\0';
        if (parse_int(buf, 2, VID_MAX_DIM, &w) < 0 || parse_int(x + 1, 2, VID_MAX_DIM, &h) < 0) {
            *x = 'x';
            snprintf(err, errlen,
                     "renditions: \"%s\" is not WIDTHxHEIGHT with each side an integer 2..%d", buf,
                     VID_MAX_DIM);
            return -EINVAL;
        }
        if (w % 2 || h % 2) {
            snprintf(err, errlen,
                     "renditions: %dx%d has an odd side; width and height must be even", w, h);
            return -EINVAL;
        }
        if (n == VID_MAX_RENDITIONS) {
            snprintf(err, errlen, "renditions: at most %d renditions", VID_MAX_RENDITIONS);
            return -EINVAL;
        }
        p->rend[n++] = (vid_size){w, h};
        if (!end)
            break;
        item = end + 1;
    }
    p->nrend = n;
    return 0;
}

int vid_params_parse(const char *query, vid_params *p, char *err, size_t errlen)
{
    enum { K_CHUNK, K_REND, K_CQ, K_CPU, K_COUNT };
    static const char *const keys[K_COUNT] = {"chunk_frames", "renditions", "cq", "cpu_used"};
    int seen[K_COUNT] = {0};
    char key[MAX_QUERY + 1], val[MAX_QUERY + 1];

    vid_params_default(p);
    if (!query || !*query)
        return 0;
    if (strlen(query) > MAX_QUERY) {
        snprintf(err, errlen, "query string longer than %d bytes", MAX_QUERY);
        return -EINVAL;
    }
    const char *item = query;
    for (;;) {
        const char *end = strchr(item, '&');
        size_t len = end ? (size_t)(end - item) : strlen(item);
        const char *eq = memchr(item, '=', len);
        size_t klen = eq ? (size_t)(eq - item) : len;
        if (len == 0)
            goto next;
        if (pct_decode(item, klen, key) < 0 ||
            (eq && pct_decode(eq + 1, len - klen - 1, val) < 0)) {
            snprintf(err, errlen, "malformed percent-escape in query parameter \"%.*s\"",
                     (int)(len > 64 ? 64 : len), item);
            return -EINVAL;
        }
        if (!eq)
            val[0] = '\0';
        for (int k = 0; k < K_COUNT; k++) {
            if (strcmp(key, keys[k]) != 0)
                continue;
            if (seen[k]++) {
                snprintf(err, errlen, "%s given more than once", keys[k]);
                return -EINVAL;
            }
            int r = 0;
            switch (k) {
            case K_CHUNK:
                r = parse_int(val, 1, VID_MAX_CHUNK_FRAMES, &p->chunk_frames);
                if (r < 0)
                    snprintf(err, errlen, "chunk_frames must be an integer 1..%d, got \"%.32s\"",
                             VID_MAX_CHUNK_FRAMES, val);
                break;
            case K_REND:
                if (parse_renditions(val, p, err, errlen) < 0)
                    return -EINVAL;
                break;
            case K_CQ:
                r = parse_int(val, 0, 63, &p->cq);
                if (r < 0)
                    snprintf(err, errlen, "cq must be an integer 0..63, got \"%.32s\"", val);
                break;
            case K_CPU:
                r = parse_int(val, 0, 5, &p->cpu_used);
                if (r < 0)
                    snprintf(err, errlen, "cpu_used must be an integer 0..5, got \"%.32s\"", val);
                break;
            }
            if (r < 0)
                return -EINVAL;
        }
    next:
        if (!end)
            break;
        item = end + 1;
    }
    return 0;
}

int vid_params_fit(const vid_params *p, int src_w, int src_h, vid_size *out, char *err,
                   size_t errlen)
{
    int n = 0;
    if (src_w < 2 || src_h < 2) {
        snprintf(err, errlen, "video is %dx%d; at least 2x2 is needed", src_w, src_h);
        return -EINVAL;
    }
    for (int i = 0; i < p->nrend; i++) {
        vid_size r = p->rend[i];
        int dup = 0;
        if (r.width > src_w || r.height > src_h)
            continue; /* never upscale */
        for (int j = 0; j < n; j++)
            dup |= out[j].width == r.width && out[j].height == r.height;
        if (!dup)
            out[n++] = r;
    }
    if (n == 0)
        out[n++] = (vid_size){src_w & ~1, src_h & ~1};
    return n;
}
