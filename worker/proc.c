/*
 * proc - see proc.h.
 */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

const char *shoal_proc_signame(int sig, char *buf, size_t size)
{
    const char *abbrev = sigabbrev_np(sig);

    if (abbrev != NULL)
        snprintf(buf, size, "SIG%s", abbrev);
    else
        snprintf(buf, size, "SIG%d", sig);
    return buf;
}

const char *shoal_proc_describe_exit(int status, char *buf, size_t size)
{
    char name[32];

    if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 shoal_proc_signame(WTERMSIG(status), name, sizeof(name)));
    else if (WIFEXITED(status))
        snprintf(buf, size, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, size, "ended with wait status %d", status);
    return buf;
}

int shoal_proc_send_fds(int sock, const void *msg, size_t len, const int *fds, int nfds)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {(void *)msg, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;

    if (nfds < 0 || nfds > 4)
        return -EINVAL;
    if (nfds > 0) {
        memset(&cbuf, 0, sizeof(cbuf));
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    for (;;) {
        if (sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

int shoal_proc_spawn_zygote(const char *runtime, int child_sock, pid_t *pid)
{
    char *argv[] = {(char *)runtime, "--zygote", "--fd", "3", NULL};
    int devnull, p;
    sigset_t all, old;

    if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
        return -errno;
    /* No signal handler may run in the child between fork and exec. */
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, &old);
    p = fork();
    if (p == 0) {
        int i;
        if (dup2(devnull, 0) < 0 || dup2(child_sock, 3) < 0)
            _exit(127);
        for (i = 1; i < NSIG; i++)
            signal(i, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        execv(runtime, argv);
        _exit(127);
    }
    if (p < 0) {
        int err = -errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(devnull);
        return err;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(devnull);
    *pid = p;
    return 0;
}
