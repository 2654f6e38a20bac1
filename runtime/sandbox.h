/*
 * sandbox - confinement of a stem, in two steps, both before any function code is loaded (a
 * shared object's constructors run inside dlopen):
 *
 *  1. shoal_sandbox_stem_init, right after the zygote forked the stem: parent-death signal,
 *     every inherited fd closed but the ones the stem needs, rlimits that do not depend on the
 *     function, no_new_privs.
 *  2. shoal_sandbox_lockdown, when the stem specialises (it knows the function's limits then),
 *     right before dlopen: the address-space limit, and the place where namespaces, the seccomp
 *     filter and Landlock go (issue 5).
 *
 * Both run in the stem's single thread. A failure means the stem must not run code: it exits.
 */
#ifndef SHOAL_RUNTIME_SANDBOX_H
#define SHOAL_RUNTIME_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>

/* Address space granted beyond the function's memory_mb and the channel mapping: the runtime,
 * libc, the function's own code, thread stacks and malloc's reservations. */
#define SHOAL_SANDBOX_AS_BASE (512ull << 20)
#define SHOAL_SANDBOX_NOFILE 1024

typedef struct {
    uint32_t memory_mb;    /* the function's memory limit */
    uint64_t channel_size; /* bytes of shared channel mapped into the stem */
} shoal_sandbox_limits_t;

/* Step 1. worker_pid is the expected parent (the stem is the worker's child by CLONE_PARENT);
 * keep/nkeep are the fds to keep besides 0, 1 and 2. 0 or -errno (-ESRCH: the worker is gone). */
int shoal_sandbox_stem_init(pid_t worker_pid, const int *keep, int nkeep);

/* Step 2. 0 or -errno. */
int shoal_sandbox_lockdown(const shoal_sandbox_limits_t *limits);

/* Whether this build runs under AddressSanitizer (which needs a huge address space, so the
 * RLIMIT_AS step is skipped). */
int shoal_sandbox_asan(void);

#endif
