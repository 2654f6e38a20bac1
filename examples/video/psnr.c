/*
 * psnr.c - squared error and PSNR of 8-bit YUV420P planes (chroma planes are ceil(w/2) x
 * ceil(h/2), so odd sizes are covered).
 */
#include "psnr.h"

#include <math.h>

uint64_t vid_psnr_sse(const uint8_t *a, ptrdiff_t astride, const uint8_t *b, ptrdiff_t bstride,
                      int w, int h)
{
    uint64_t sse = 0;
    for (int y = 0; y < h; y++) {
        const uint8_t *pa = a + y * astride, *pb = b + y * bstride;
        uint32_t row = 0; /* 8192 * 255^2 fits in 32 bits */
        for (int x = 0; x < w; x++) {
            int d = pa[x] - pb[x];
            row += (uint32_t)(d * d);
        }
        sse += row;
    }
    return sse;
}

double vid_psnr_db(uint64_t sse, uint64_t samples)
{
    if (samples == 0)
        return 0.0;
    if (sse == 0)
        return VID_PSNR_MAX;
    double db = 10.0 * log10(255.0 * 255.0 * (double)samples / (double)sse);
    return db > VID_PSNR_MAX ? VID_PSNR_MAX : db;
}

uint64_t vid_psnr_frame(const uint8_t *const a[3], const int astride[3], const uint8_t *const b[3],
                        const int bstride[3], int w, int h, uint64_t sse[3])
{
    int cw = (w + 1) / 2, ch = (h + 1) / 2;
    sse[0] = vid_psnr_sse(a[0], astride[0], b[0], bstride[0], w, h);
    sse[1] = vid_psnr_sse(a[1], astride[1], b[1], bstride[1], cw, ch);
    sse[2] = vid_psnr_sse(a[2], astride[2], b[2], bstride[2], cw, ch);
    return (uint64_t)w * h + 2 * (uint64_t)cw * ch;
}
