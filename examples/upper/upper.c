/*
 * upper - answers its input with the ASCII letters upper-cased; other bytes pass unchanged.
 *
 * Meant to be deployed as C source, which the platform compiles:
 *   shoal deploy upper examples/upper/upper.c
 *   echo -n 'Shoal rocks' | shoal invoke upper     # SHOAL ROCKS
 */
#include <shoal.h>

int shoal_main(shoal_ctx *ctx)
{
    shoal_buf in = shoal_input(ctx);
    const unsigned char *src = in.data;
    unsigned char *dst;

    if (in.len == 0)
        return shoal_output(ctx, "", 0);
    if ((dst = shoal_output_alloc(ctx, in.len)) == NULL)
        return shoal_error(ctx, "cannot allocate %zu bytes of output", in.len);
    /* ASCII only, on purpose: toupper() would depend on the locale and mangle UTF-8. */
    for (size_t i = 0; i < in.len; i++)
        dst[i] = src[i] >= 'a' && src[i] <= 'z' ? (unsigned char)(src[i] - 'a' + 'A') : src[i];
    return 0;
}
