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

/* The zygote's sandbox state (stems inherit it), and a stem's state, for the life of the
 * process. */
static shoal_sandbox_t sandbox;
static shoal_channel_t stem_channel;
static shoal_rt_ctx stem_ctx;

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

/* The stem: step 1 of the sandbox, the channel, then SPECIALIZE: step 2 and the function. */
static int stem_main(shoal_sandbox_t *sb, int go_fd, int chan_fd, int ctl_fd, pid_t worker_pid)
{
    shoal_ctl_specialize_t spec;
    shoal_sandbox_limits_t limits;
    char path[64], title[16], msg[256];
    int keep[2] = {chan_fd, ctl_fd}, fd = -1, nfds, err;
    const char *why = NULL;
    shoal_main_fn fn;
    void *handle;
    ssize_t n;

    if ((err = shoal_sandbox_stem_init(sb, go_fd, worker_pid, keep, 2, ctl_fd)) < 0) {
        /* stderr may be /dev/null already; READY is how the worker hears of it. */
        snprintf(msg, sizeof(msg), "sandbox setup failed: %s", strerror(-err));
        SHOAL_ERROR("stem: %s", msg);
        send_ready(ctl_fd, err, msg);
        return 1;
    }
    prctl(PR_SET_NAME, "shoal-stem");
    if ((err = shoal_channel_open(&stem_channel, chan_fd)) < 0) {
        send_ready(ctl_fd, err, "cannot map the channel");
        return 1;
    }
    /* Before the lockdown scrubs the environment the tuning knobs come from. */
    shoal_rt_init(&stem_ctx, &stem_channel, ctl_fd);
    n = shoal_channel_ctl_recv(ctl_fd, &spec, sizeof(spec), &fd, 1, &nfds);
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
    limits.artifact_fd = fd;
    if ((err = shoal_sandbox_lockdown(sb, &limits, &why)) < 0) {
        snprintf(msg, sizeof(msg), "sandbox lockdown failed (%s): %s", why, strerror(-err));
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
    shoal_rt_serve(&stem_ctx, fn);
    return 1;
}

/* Forks a stem for a FORK request; its pid or -errno. */
static int32_t fork_stem(shoal_sandbox_t *sb, int sock, uint64_t req, const int *fds,
                         pid_t worker_pid)
{
    int go_fd, err;
    pid_t pid;

    pid = shoal_sandbox_fork(sb, req, &go_fd);
    if (pid == 0) {
        close(sock);
        _exit(stem_main(sb, go_fd, fds[0], fds[1], worker_pid));
    }
    if (pid < 0)
        return pid;
    if ((err = shoal_sandbox_release(sb, pid, req, go_fd)) < 0) {
        SHOAL_ERROR("zygote: cannot confine stem %d: %s", (int)pid, strerror(-err));
        return err;
    }
    return (int32_t)pid;
}

int shoal_zygote_main(int sock, pid_t worker_pid)
{
    union {
        shoal_ctl_fork_t fork;
        shoal_sandbox_config_t config;
    } req;
    shoal_ctl_forked_t rep;
    int fds[SHOAL_SANDBOX_CGROUPS_MAX], nfds, status = 1;
    ssize_t n;

    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != worker_pid)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    if (shoal_sandbox_init(&sandbox) < 0)
        return 1;
    for (;;) {
        n = shoal_channel_ctl_recv(sock, &req, sizeof(req), fds, SHOAL_SANDBOX_CGROUPS_MAX, &nfds);
        if (n == 0) {
            status = 0;
            break;
        }
        if (n < 0 && n != -EMSGSIZE) {
            SHOAL_ERROR("zygote: recvmsg: %s", strerror((int)-n));
            close_fds(fds, nfds);
            break;
        }
        if (n == (ssize_t)sizeof(req.config) && req.config.magic == SHOAL_CTL_MAGIC &&
            req.config.type == SHOAL_CTL_CONFIG) {
            /* No answer: the worker sends it first and the socket keeps the order. */
            if (shoal_sandbox_configure(&sandbox, &req.config, fds, nfds) < 0)
                SHOAL_ERROR("zygote: ignoring a bad sandbox configuration");
            continue;
        }
        memset(&rep, 0, sizeof(rep));
        rep.magic = SHOAL_CTL_MAGIC;
        rep.type = SHOAL_CTL_FORKED;
        rep.req = n == (ssize_t)sizeof(req.fork) ? req.fork.req : 0;
        if (n != (ssize_t)sizeof(req.fork) || nfds != 2 || req.fork.magic != SHOAL_CTL_MAGIC ||
            req.fork.type != SHOAL_CTL_FORK)
            rep.pid = -EPROTO;
        else
            rep.pid = fork_stem(&sandbox, sock, req.fork.req, fds, worker_pid);
        close_fds(fds, nfds);
        while (send(sock, &rep, sizeof(rep), MSG_NOSIGNAL) < 0) {
            if (errno != EINTR) {
                status = errno == EPIPE ? 0 : 1;
                goto out;
            }
        }
    }
out:
    shoal_sandbox_free(&sandbox);
    return status;
}
