/* bench/soak: sleeps for the number of milliseconds in its input (100 when there is none), then
 * answers "ok". Slow on purpose: a few of these fill a function's max_instances and the queue. */
#include <shoal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int shoal_main(shoal_ctx *ctx)
{
    shoal_buf in = shoal_input(ctx);
    char num[16] = {0};
    long ms = 100;

    if (in.len > 0 && in.len < sizeof(num)) {
        memcpy(num, in.data, in.len);
        ms = strtol(num, NULL, 10);
        if (ms <= 0 || ms > 10000)
            ms = 100;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    return shoal_output(ctx, "ok", 2);
}
