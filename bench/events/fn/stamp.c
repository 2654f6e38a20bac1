/* bench/events function: outputs the wall-clock time (ns) at which it started, then its input
 * (the publisher's send time in ns), so the benchmark can compute event-to-start latency. */
#include <shoal.h>
#include <stdio.h>
#include <time.h>

int shoal_main(shoal_ctx *ctx)
{
    struct timespec ts;
    char out[96];
    shoal_buf in = shoal_input(ctx);

    clock_gettime(CLOCK_REALTIME, &ts);
    int n =
        snprintf(out, sizeof(out), "%lld %.*s", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec,
                 (int)(in.len < 40 ? in.len : 40), (const char *)in.data);
    return shoal_output(ctx, out, (size_t)n);
}
