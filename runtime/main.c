/*
 * shoal-runtime - not run by users: shoal-worker starts it as its zygote with
 * `shoal-runtime --zygote [--fd N]`, N (default 3) being the worker's SOCK_SEQPACKET socket.
 * The stems it forks load functions and serve their invocations (see zygote.h, runtime.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "runtime/zygote.h"

/* Under AddressSanitizer, a function's crash must still end its stem with the real signal (the
 * worker reports it by name), so ASan leaves fatal signals alone in this program. */
#if defined(__SANITIZE_ADDRESS__)
#define SHOAL_RT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHOAL_RT_ASAN 1
#endif
#endif
#ifdef SHOAL_RT_ASAN
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "handle_segv=0:handle_sigbus=0:handle_abort=0:handle_sigfpe=0:handle_sigill=0";
}
#endif

static void usage(FILE *f)
{
    fprintf(f, "usage: shoal-runtime --zygote [--fd N]\n"
               "Started by shoal-worker as the zygote that forks function sandboxes; not meant to\n"
               "be run by hand. N is the worker's control socket (default 3).\n");
}

int main(int argc, char **argv)
{
    uint64_t fd = 3;
    int zygote = 0, i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--zygote") == 0) {
            zygote = 1;
        } else if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc) {
            if (shoal_util_parse_u64(argv[i + 1], strlen(argv[i + 1]), 0, 1 << 20, &fd) < 0) {
                usage(stderr);
                return 2;
            }
            i++;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (!zygote) {
        usage(stderr);
        return 2;
    }
    shoal_trace_init("shoal-runtime");
    return shoal_zygote_main((int)fd, getppid());
}
