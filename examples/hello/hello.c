/*
 * hello - answers "hello, <input>", or "hello, world" when the input is empty, as text/plain.
 *
 *   cc -shared -fPIC -I include examples/hello/hello.c -o hello.so
 *   shoal deploy hello hello.so
 *   echo -n hi | shoal invoke hello          # hello, hi
 */
#include <shoal.h>
#include <string.h>

int shoal_main(shoal_ctx *ctx)
{
    static const char prefix[] = "hello, ";
    shoal_buf in = shoal_input(ctx);
    const char *name = in.len > 0 ? in.data : "world";
    size_t name_len = in.len > 0 ? in.len : strlen("world");
    size_t len = sizeof(prefix) - 1 + name_len;
    char *out;

    if (name_len > (size_t)-1 - sizeof(prefix))
        return shoal_error(ctx, "input too large");
    /* Written in place: the output buffer is the response, so nothing is copied again. */
    if ((out = shoal_output_alloc(ctx, len)) == NULL)
        return shoal_error(ctx, "cannot allocate %zu bytes of output", len);
    memcpy(out, prefix, sizeof(prefix) - 1);
    memcpy(out + sizeof(prefix) - 1, name, name_len);
    shoal_set_meta(ctx, "header:content-type", "text/plain; charset=utf-8");
    return 0;
}
