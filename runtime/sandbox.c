/*
 * sandbox - see sandbox.h.
 */
#include "sandbox.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define SHOAL_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHOAL_ASAN_BUILD 1
#endif
#endif
#ifndef SHOAL_ASAN_BUILD
#define SHOAL_ASAN_BUILD 0
#endif

int shoal_sandbox_asan(void)
{
    return SHOAL_ASAN_BUILD;
}

static int set_limit(int resource, rlim_t v)
{
    struct rlimit rl = {.rlim_cur = v, .rlim_max = v};

    return setrlimit(resource, &rl) < 0 ? -errno : 0;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

/* Closes every fd >= 3 that is not in keep. */
static int close_others(const int *keep, int nkeep)
{
    int sorted[8], i, n = 0;
    unsigned from = 3;

    if (nkeep > 8)
        return -EINVAL;
    for (i = 0; i < nkeep; i++)
        if (keep[i] >= 3)
            sorted[n++] = keep[i];
    qsort(sorted, (size_t)n, sizeof(int), cmp_int);
    for (i = 0; i < n; i++) {
        if ((unsigned)sorted[i] > from &&
            syscall(SYS_close_range, from, (unsigned)sorted[i] - 1, 0) < 0)
            return -errno;
        from = (unsigned)sorted[i] + 1;
    }
    if (syscall(SYS_close_range, from, ~0u, 0) < 0)
        return -errno;
    return 0;
}

int shoal_sandbox_stem_init(pid_t worker_pid, const int *keep, int nkeep)
{
    int err;

    /* Die with the worker; and if it already died (we were reparented), stop here. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
        return -errno;
    if (getppid() != worker_pid)
        return -ESRCH;
    if ((err = close_others(keep, nkeep)) < 0)
        return err;
    if ((err = set_limit(RLIMIT_CORE, 0)) < 0)
        return err;
    if ((err = set_limit(RLIMIT_NOFILE, SHOAL_SANDBOX_NOFILE)) < 0)
        return err;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

int shoal_sandbox_lockdown(const shoal_sandbox_limits_t *limits)
{
    int err;

    if (!SHOAL_ASAN_BUILD) {
        rlim_t as = (rlim_t)limits->memory_mb << 20;
        as += limits->channel_size + SHOAL_SANDBOX_AS_BASE;
        if ((err = set_limit(RLIMIT_AS, as)) < 0)
            return err;
    }
    /* Issue 5 adds here, in this order: user/pid/mount/net/ipc/uts namespaces and the
     * unprivileged uid, Landlock, then the seccomp allowlist (last, so that the steps before it
     * may use what it forbids). Everything after this call runs function code. */
    return 0;
}
