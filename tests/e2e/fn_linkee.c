/*
 * fn_linkee - the callee of the direct-link suite (tests/e2e/test_links.c): answers its input
 * with every byte XORed with 0x5a (so that the caller can tell that it ran), and misbehaves on
 * request: "nap" sleeps 1 s, "fail" returns an error message, "crash" segfaults, "hang" sleeps
 * forever, "ver" answers "V1" (the suite redeploys it as a function answering "V2"), "meta" answers
 * its depth and function meta. Built by the Makefile (BUILD/tests/e2e/fn_linkee.so) against
 * include/shoal.h only.
 */
#include <shoal.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int is(shoal_buf in, const char *cmd)
{
    return in.len == strlen(cmd) && memcmp(in.data, cmd, in.len) == 0;
}

int shoal_main(shoal_ctx *c)
{
    shoal_buf in = shoal_input(c);
    unsigned char *out;

    if (is(in, "fail"))
        return shoal_error(c, "linkee failed on purpose (%d)", 42);
    if (is(in, "crash"))
        raise(SIGSEGV);
    if (is(in, "hang"))
        for (;;)
            pause();
    if (is(in, "nap")) {
        usleep(1000000);
        return shoal_output(c, "napped", 6);
    }
    if (is(in, "ver"))
        return shoal_output(c, "V1", 2);
    if (is(in, "meta")) {
        char buf[256];
        const char *f = shoal_meta(c, "function"), *id = shoal_meta(c, "invocation_id");
        int n = snprintf(buf, sizeof(buf), "function=%s id=%s", f ? f : "-", id ? id : "-");
        return shoal_output(c, buf, (size_t)n);
    }
    if ((out = shoal_output_alloc(c, in.len)) == NULL && in.len > 0)
        return shoal_error(c, "no room for %zu bytes", in.len);
    for (size_t i = 0; i < in.len; i++)
        out[i] = ((const unsigned char *)in.data)[i] ^ 0x5a;
    return 0;
}
