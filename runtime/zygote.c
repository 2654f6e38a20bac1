/*
 * zygote - see zygote.h.
 */
#include "zygote.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/trace.h"
#include "runtime.h"
#include "sandbox.h"

/* The stem's state lives for the life of the process. */
static shoal_channel_t stem_channel;
static shoal_rt_ctx stem_ctx;

/* Receives one message and up to maxfds fds (close-on-exec). Returns the byte count (0 = the
 * peer closed) or -errno; *nfds is the number of fds received (also on errors, for closing). */
static ssize_t recv_fds(int sock, void *buf, size_t size, int *fds, int maxfds, int *nfds)
{
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {buf, size};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *c;
    ssize_t n;

    *nfds = 0;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof(cbuf.buf);
    do
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)), i;
            for (i = 0; i < k; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (*nfds < maxfds)
                    fds[(*nfds)++] = fd;
                else
                    close(fd);
            }
        }
    }
    if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        return -EMSGSIZE;
    return n;
}

static void close_fds(int *fds, int n)
{
    while (n-- > 0)
        close(fds[n]);
}

static int send_ready(int ctl, int err, const char *text)
{
    char buf[SHOAL_CTL_MSG_MAX];
    shoal_ctl_ready_t r = {SHOAL_CTL_MAGIC, SHOAL_CTL_READY, err, 0};
    size_t tlen = text != NULL ? strlen(text) : 0;

    if (tlen > sizeof(buf) - sizeof(r))
        tlen = sizeof(buf) - sizeof(r);
    r.msg_len = (uint32_t)tlen;
    memcpy(buf, &r, sizeof(r));
    if (tlen > 0)
        memcpy(buf + sizeof(r), text, tlen);
    while (send(ctl, buf, sizeof(r) + tlen, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

int shoal_stem_main(int chan_fd, int ctl_fd, pid_t worker_pid)
{
    shoal_ctl_specialize_t spec;
    shoal_sandbox_limits_t limits;
    char path[64], title[16], msg[256];
    int keep[2] = {chan_fd, ctl_fd}, fd = -1, nfds, err;
    shoal_main_fn fn;
    void *handle;
    ssize_t n;

    if (shoal_sandbox_stem_init(worker_pid, keep, 2) < 0)
        return 1;
    prctl(PR_SET_NAME, "shoal-stem");
    if ((err = shoal_channel_open(&stem_channel, chan_fd)) < 0) {
        send_ready(ctl_fd, err, "cannot map the channel");
        return 1;
    }
    n = recv_fds(ctl_fd, &spec, sizeof(spec), &fd, 1, &nfds);
    if (n == 0)
        return 0; /* the worker let us go before we were used */
    if (n != (ssize_t)sizeof(spec) || nfds != 1 || spec.magic != SHOAL_CTL_MAGIC ||
        spec.type != SHOAL_CTL_SPECIALIZE || memchr(spec.name, '\0', sizeof(spec.name)) == NULL) {
        send_ready(ctl_fd, -EPROTO, "bad SPECIALIZE message");
        return 1;
    }
    snprintf(title, sizeof(title), "shoal:%.9s", spec.name);
    prctl(PR_SET_NAME, title);
    limits.memory_mb = spec.memory_mb;
    limits.channel_size = stem_channel.lay.size;
    if ((err = shoal_sandbox_lockdown(&limits)) < 0) {
        snprintf(msg, sizeof(msg), "sandbox lockdown failed: %s", strerror(-err));
        send_ready(ctl_fd, err, msg);
        return 1;
    }
    /* From here on the function's code runs (its constructors, inside dlopen). */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    if ((handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
        const char *e = dlerror();
        send_ready(ctl_fd, -ENOEXEC, e != NULL ? e : "dlopen failed");
        return 1;
    }
    close(fd);
    if ((fn = (shoal_main_fn)dlsym(handle, "shoal_main")) == NULL) {
        const char *e = dlerror();
        send_ready(ctl_fd, -ENOEXEC, e != NULL ? e : "no shoal_main");
        return 1;
    }
    if (send_ready(ctl_fd, 0, NULL) < 0)
        return 1;
    shoal_rt_init(&stem_ctx, &stem_channel, ctl_fd);
    shoal_rt_serve(&stem_ctx, fn);
    return 1;
}

int shoal_zygote_main(int sock, pid_t worker_pid)
{
    shoal_ctl_fork_t req;
    shoal_ctl_forked_t rep;
    int fds[2], nfds;
    ssize_t n;
    long pid;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != worker_pid)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        n = recv_fds(sock, &req, sizeof(req), fds, 2, &nfds);
        if (n == 0)
            return 0;
        if (n < 0 && n != -EMSGSIZE) {
            SHOAL_ERROR("zygote: recvmsg: %s", strerror((int)-n));
            close_fds(fds, nfds);
            return 1;
        }
        memset(&rep, 0, sizeof(rep));
        rep.magic = SHOAL_CTL_MAGIC;
        rep.type = SHOAL_CTL_FORKED;
        rep.req = n == (ssize_t)sizeof(req) ? req.req : 0;
        if (n != (ssize_t)sizeof(req) || nfds != 2 || req.magic != SHOAL_CTL_MAGIC ||
            req.type != SHOAL_CTL_FORK) {
            rep.pid = -EPROTO;
        } else {
            /* Raw clone: glibc's fork() has no CLONE_PARENT. We are single-threaded, so no lock
             * is held and the child's copy of the process is consistent. */
            pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
            if (pid == 0) {
                close(sock);
                _exit(shoal_stem_main(fds[0], fds[1], worker_pid));
            }
            rep.pid = pid < 0 ? -errno : (int32_t)pid;
        }
        close_fds(fds, nfds);
        while (send(sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0) {
            if (errno != EINTR)
                return errno == EPIPE ? 0 : 1;
        }
    }
}
