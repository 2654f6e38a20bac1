/*
 * zygote - the process shoal-worker starts as `shoal-runtime --zygote` and the stems it forks.
 *
 * The zygote is small and single-threaded, with the runtime (and so libc and the shoal.h API)
 * loaded. It reads requests from the worker on a SOCK_SEQPACKET socket: first the sandbox's
 * CONFIG (sandbox.h), then FORKs, each carrying a channel memfd and the stem's end of a control
 * socketpair. It forks a stem with clone(CLONE_PARENT | SIGCHLD | namespaces) so that the stem is
 * the worker's child (the worker reaps it and gets its exit status), maps the stem's uid and puts
 * it in its cgroups before letting it run (sandbox.h step 0), and answers FORKED with the pid. It
 * exits when the worker's socket closes.
 *
 * A stem confines itself (sandbox.h step 1), maps its channel and blocks on its control socket
 * for SPECIALIZE: then it applies the function's limits and the lockdown (step 2), dlopens the
 * artifact from the passed fd, answers READY and serves invocations until it is killed.
 */
#ifndef SHOAL_RUNTIME_ZYGOTE_H
#define SHOAL_RUNTIME_ZYGOTE_H

#include <sys/types.h>

/* Serves FORK requests on sock until it closes; returns the process exit status. worker_pid is
 * the expected parent. */
int shoal_zygote_main(int sock, pid_t worker_pid);

#endif
