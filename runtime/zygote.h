/*
 * zygote - the process shoal-worker starts as `shoal-runtime --zygote` and the stems it forks.
 *
 * The zygote is small and single-threaded, with the runtime (and so libc and the shoal.h API)
 * loaded. It reads FORK requests from the worker on a SOCK_SEQPACKET socket, each carrying a
 * channel memfd and the stem's end of a control socketpair, and forks a stem with
 * clone(CLONE_PARENT | SIGCHLD) so that the stem is the worker's child: the worker reaps it and
 * gets its exit status. It answers FORKED with the pid. It exits when the worker's socket closes.
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

/* The life of a stem; returns only on failure, with an exit status. */
int shoal_stem_main(int chan_fd, int ctl_fd, pid_t worker_pid);

#endif
