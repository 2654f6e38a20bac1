/*
 * chain - calls two other functions in a row with shoal_call: "upper" on its input, then
 * "hello" on upper's output, and answers hello's output. Needs both deployed:
 *
 *   shoal deploy hello build/examples/hello.so
 *   shoal deploy upper examples/upper/upper.c
 *   shoal deploy chain build/examples/chain.so
 *   echo -n fish | shoal invoke chain       # hello, FISH
 *
 * When a call fails, the invocation fails with a message naming the callee, so the caller's
 * client sees e.g. "502 function_error: chain: call upper failed: ...".
 */
#include <shoal.h>
#include <string.h>

/* Calls function with (in, len) into *out; on failure sets the error and returns -1. */
static int call(shoal_ctx *ctx, const char *function, const void *in, size_t len, shoal_buf *out)
{
    int rc;

    out->data = NULL;
    out->len = 0;
    if ((rc = shoal_call(ctx, function, in, len, out)) == 0)
        return 0;
    /* The runtime leaves the callee's error message in *out when it has one. */
    if (out->data != NULL && out->len > 0)
        return shoal_error(ctx, "chain: call %s failed: %.*s", function, (int)out->len,
                           (const char *)out->data);
    return shoal_error(ctx, "chain: call %s failed: %s", function, strerror(-rc));
}

int shoal_main(shoal_ctx *ctx)
{
    shoal_buf in = shoal_input(ctx), up, greeting;

    if (call(ctx, "upper", in.data, in.len, &up) < 0)
        return -1;
    if (call(ctx, "hello", up.data, up.len, &greeting) < 0)
        return -1;
    /* shoal_output copies, which is needed here: greeting belongs to the runtime's call. */
    return shoal_output(ctx, greeting.data, greeting.len);
}
