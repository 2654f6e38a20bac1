/*
 * callbench - a benchmark function: makes N shoal_call round trips (N = its input as a decimal,
 * default 2000) to the function "echo" with a 64-byte input, timing each one, and answers JSON
 * with the p50/p99 round trip in µs. The first 50 calls warm up and are not counted.
 */
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int shoal_main(shoal_ctx *ctx)
{
    shoal_buf in = shoal_input(ctx);
    char num[16] = {0}, msg[64], out[160];
    int n = 2000, len;
    uint64_t *lat;

    memcpy(num, in.data, in.len < 15 ? in.len : 15);
    if (in.len > 0)
        n = atoi(num);
    if (n < 10 || n > 1000000)
        return shoal_error(ctx, "rounds must be 10..1000000");
    if ((lat = malloc(sizeof(*lat) * (size_t)n)) == NULL)
        return shoal_error(ctx, "out of memory");
    memset(msg, 'x', sizeof(msg));
    for (int i = -50; i < n; i++) {
        shoal_buf r;
        uint64_t t0 = now_ns();
        int rc = shoal_call(ctx, "echo", msg, sizeof(msg), &r);
        uint64_t dt = now_ns() - t0;
        if (rc < 0 || r.len != sizeof(msg)) {
            free(lat);
            return shoal_error(ctx, "call %d failed: %d", i, rc);
        }
        if (i >= 0)
            lat[i] = dt;
    }
    qsort(lat, (size_t)n, sizeof(*lat), cmp);
    len = snprintf(out, sizeof(out), "{\"rounds\": %d, \"p50_us\": %.2f, \"p99_us\": %.2f}\n", n,
                   lat[n / 2] / 1000.0, lat[n * 99 / 100] / 1000.0);
    free(lat);
    shoal_set_meta(ctx, "header:content-type", "application/json");
    return shoal_output(ctx, out, (size_t)len);
}
