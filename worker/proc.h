/*
 * proc - process plumbing of the worker: starting the zygote, passing fds, describing how a
 * process ended. No state; loop thread only (the zygote start forks).
 */
#ifndef SHOAL_WORKER_PROC_H
#define SHOAL_WORKER_PROC_H

#include <stddef.h>
#include <sys/types.h>

/* "SIGSEGV" for 11: the signal's abbreviation, or "SIG<n>" for an unknown number. Returns buf. */
const char *shoal_proc_signame(int sig, char *buf, size_t size);

/* How a wait status ended a process: "killed by signal 11 (SIGSEGV)" or "exited with status 3".
 * Returns buf. */
const char *shoal_proc_describe_exit(int status, char *buf, size_t size);

/* Sends one message with fds (SCM_RIGHTS) on a SOCK_SEQPACKET socket; 0 or -errno (-EAGAIN when
 * the socket is full). */
int shoal_proc_send_fds(int sock, const void *msg, size_t len, const int *fds, int nfds);

/* Starts `runtime --zygote --fd 3` with child_sock as its fd 3, stdin from /dev/null and the
 * worker's stdout/stderr. fork + exec: only async-signal-safe calls run in the child. */
int shoal_proc_spawn_zygote(const char *runtime, int child_sock, pid_t *pid);

#endif
