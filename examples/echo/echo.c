/*
 * echo - answers its input unchanged. The output is written in place with shoal_output_alloc
 * and one memcpy, so the bytes are copied once inside the instance; the benchmarks and tests use
 * it to measure the platform itself.
 *
 *   shoal deploy echo build/examples/echo.so
 *   shoal invoke echo -d 'same bytes back'
 */
#include <shoal.h>
#include <string.h>

int shoal_main(shoal_ctx *ctx)
{
    shoal_buf in = shoal_input(ctx);
    void *out;

    if (in.len == 0)
        return shoal_output(ctx, "", 0);
    if ((out = shoal_output_alloc(ctx, in.len)) == NULL)
        return shoal_error(ctx, "cannot allocate %zu bytes of output", in.len);
    memcpy(out, in.data, in.len);
    return 0;
}
