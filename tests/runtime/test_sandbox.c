/* Tests runtime/sandbox.c in real stems: this test plays the worker (the stems are its children,
 * by CLONE_PARENT) and a forked process plays the zygote. Each stem runs a list of checks after
 * its sandbox steps and reports every failed one on its control socket: the namespaces and the
 * file system view, the uid, capabilities, no_new_privs, rlimits, the seccomp allowlist (every
 * named syscall, clone with and without namespace flags, kill of groups, threads), Landlock (the
 * artifact reachable through /proc/self/fd, nothing else), the report of fatal signals, the
 * kill of other architectures, the sealed channel, and the fallback without namespaces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/sandbox.h"
#include "transport/channel.h"

#define REQ 5              /* request id: the stem's uid is base + 5 */
#define NO_VIEW (1u << 31) /* run_stem: namespaces without the private file system view */

static shoal_sandbox_t SB;
static int ART = -1;       /* the "artifact": a file the stem may read through its fd */
static int OTHER = -1;     /* another host file the stem holds an fd of, but may not reopen */
static shoal_channel_t CH; /* a sealed channel, as the worker makes them */

/* ---- running a body in a real stem ---- */

static int rep_fd; /* the stem's end: reports and FATAL messages */

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1)
        n = (int)sizeof(buf) - 1;
    send(rep_fd, buf, (size_t)n, MSG_NOSIGNAL);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            report("FAIL " __VA_ARGS__);                                                           \
    } while (0)

typedef void (*body_fn)(void);

typedef struct {
    char lines[64][512];
    int n;
    int fatal_sig; /* from a FATAL message, else 0 */
    int status;    /* the stem's wait status */
    int ns;        /* it ran in namespaces */
} outcome_t;

/* Forks a zygote that forks a stem (config flags as given) running body after both sandbox
 * steps; collects the stem's reports until it ends (or, after a FATAL, kills it). */
static void run_stem(uint32_t flags, int lockdown, body_fn body, outcome_t *o)
{
    int sv[2], info[2], ns = 0;
    pid_t zyg, stem = 0;

    memset(o, 0, sizeof(*o));
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(pipe2(info, O_CLOEXEC), 0);
    zyg = fork();
    assert_true(zyg >= 0);
    if (zyg == 0) {
        shoal_sandbox_t sb = SB;
        pid_t worker = getppid(), pid;
        int go, msg[2];
        sb.cfg.flags |= flags & ~NO_VIEW;
        if (flags & SHOAL_SANDBOX_NO_NAMESPACES)
            sb.namespaces = sb.view = 0;
        if (flags & NO_VIEW)
            sb.view = 0; /* as if the probe could not build it */
        pid = shoal_sandbox_fork(&sb, REQ, &go);
        if (pid == 0) {
            int keep[4] = {sv[1], ART, OTHER, CH.fd};
            shoal_sandbox_limits_t lim = {
                .memory_mb = 64, .channel_size = CH.lay.size, .artifact_fd = ART};
            const char *why = "";
            int err;
            rep_fd = sv[1];
            if ((err = shoal_sandbox_stem_init(&sb, go, worker, keep, 4, sv[1])) < 0) {
                report("FAIL stem_init: %s", strerror(-err));
                _exit(1);
            }
            if (lockdown && (err = shoal_sandbox_lockdown(&sb, &lim, &why)) < 0) {
                report("FAIL lockdown (%s): %s", why, strerror(-err));
                _exit(1);
            }
            body();
            report("DONE");
            _exit(0);
        }
        msg[0] = pid;
        msg[1] = sb.namespaces;
        if (pid > 0 && shoal_sandbox_release(&sb, pid, REQ, go) < 0)
            msg[0] = -1;
        if (write(info[1], msg, sizeof(msg)) != sizeof(msg))
            _exit(2);
        _exit(0);
    }
    close(sv[1]);
    close(info[1]);
    {
        int msg[2], st;
        assert_int_equal(read(info[0], msg, sizeof(msg)), sizeof(msg));
        assert_int_equal(waitpid(zyg, &st, 0), zyg);
        assert_true(msg[0] > 0);
        stem = msg[0];
        ns = msg[1];
    }
    close(info[0]);
    o->ns = ns;
    for (;;) {
        struct pollfd p = {sv[0], POLLIN, 0};
        char buf[512];
        ssize_t n;
        if (poll(&p, 1, 10000) <= 0) {
            fprintf(stderr, "stem %d: no report within 10 s\n", (int)stem);
            kill(stem, SIGKILL);
            break;
        }
        if ((n = recv(sv[0], buf, sizeof(buf) - 1, 0)) <= 0)
            break;
        if ((size_t)n == sizeof(shoal_ctl_fatal_t)) {
            shoal_ctl_fatal_t f;
            memcpy(&f, buf, sizeof(f));
            if (f.magic == SHOAL_CTL_MAGIC && f.type == SHOAL_CTL_FATAL) {
                o->fatal_sig = f.sig;
                /* It waits to be killed, as the worker would. */
                usleep(20000);
                assert_int_equal(waitpid(stem, &o->status, WNOHANG), 0);
                kill(stem, SIGKILL);
                break;
            }
        }
        buf[n] = '\0';
        if (o->n < 64)
            snprintf(o->lines[o->n++], sizeof(o->lines[0]), "%s", buf);
    }
    close(sv[0]);
    assert_int_equal(waitpid(stem, &o->status, 0), stem);
}

/* Asserts the body ran to its end with no failed check. */
static void expect_clean(const outcome_t *o)
{
    int fails = 0, done = 0;

    for (int i = 0; i < o->n; i++) {
        if (strncmp(o->lines[i], "FAIL", 4) == 0) {
            fprintf(stderr, "  %s\n", o->lines[i]);
            fails++;
        }
        if (strcmp(o->lines[i], "DONE") == 0)
            done = 1;
    }
    if (!done)
        fprintf(stderr, "  the stem did not finish (wait status 0x%x)\n", o->status);
    assert_int_equal(fails, 0);
    assert_true(done);
    assert_true(WIFEXITED(o->status) && WEXITSTATUS(o->status) == 0);
}

static int need_namespaces(const outcome_t *o)
{
    if (o->ns)
        return 1;
    fprintf(stderr, "this kernel refuses user/PID/mount namespaces to the test\n");
    return 0;
}

/* ---- bodies ---- */

static long status_field(const char *name)
{
    char buf[4096], *p;
    int fd = open("/proc/self/status", O_RDONLY);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    if ((p = strstr(buf, name)) == NULL)
        return -1;
    return strtol(p + strlen(name), NULL, 16);
}

static int fails_with(long r, int err)
{
    return r == -1 && errno == err;
}

/* Step 1 alone: identity, namespaces, view, limits. */
static void body_view(void)
{
    struct rlimit rl;
    struct stat st;
    char buf[256];
    int fd, n = 0;
    uid_t want = SHOAL_SANDBOX_UID_BASE + REQ;
    DIR *d;
    struct dirent *e;

    CHECK(getpid() == 1, "pid %d, want 1 (a PID namespace of its own)", (int)getpid());
    CHECK(getppid() == 0, "ppid %d, want 0 (the worker is outside)", (int)getppid());
    CHECK(getuid() == want && geteuid() == want && getgid() == want && getegid() == want,
          "uid %u gid %u, want %u", (unsigned)getuid(), (unsigned)getgid(), (unsigned)want);
    CHECK(getgroups(0, NULL) == 0, "%d supplementary groups", getgroups(0, NULL));
    CHECK(getsid(0) == 1, "session %d", (int)getsid(0));
    CHECK(status_field("CapEff:") == 0 && status_field("CapPrm:") == 0 &&
              status_field("CapInh:") == 0 && status_field("CapBnd:") == 0 &&
              status_field("CapAmb:") == 0,
          "capabilities left: eff %lx bnd %lx", status_field("CapEff:"), status_field("CapBnd:"));
    CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "no_new_privs not set");
    {
        int sig = 0;
        /* Set after the uid changed (which clears it): the stem dies with the worker. */
        CHECK(prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 && sig == SIGKILL,
              "parent-death signal %d", sig);
    }
    CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2, "no seccomp filter");
    CHECK(gethostname(buf, sizeof(buf)) == 0 && strcmp(buf, "shoal") == 0, "hostname %s", buf);
    /* Only itself in /proc. */
    if ((d = opendir("/proc")) != NULL) {
        while ((e = readdir(d)) != NULL)
            if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
                n++;
        closedir(d);
    }
    CHECK(n == 1, "%d processes visible in /proc", n);
    CHECK(access("/proc/sys", F_OK) < 0, "/proc/sys visible");
    /* The view: libraries yes, the rest of the host no. */
    CHECK(access("/usr/lib", R_OK) == 0, "/usr/lib: %s", strerror(errno));
    CHECK(access("/etc/ld.so.cache", R_OK) == 0, "ld.so.cache: %s", strerror(errno));
    CHECK(fails_with(open("/etc/passwd", O_RDONLY), ENOENT), "/etc/passwd: %s", strerror(errno));
    CHECK(fails_with(access("/root", F_OK), ENOENT), "/root visible");
    CHECK(fails_with(access("/home", F_OK), ENOENT), "/home visible");
    CHECK(fails_with(access("/sys", F_OK), ENOENT), "/sys visible");
    CHECK(fails_with(access("/var", F_OK), ENOENT), "/var visible");
    CHECK(fails_with(access("/dev/sda", F_OK), ENOENT), "/dev/sda visible");
    CHECK(fails_with(mkdir("/x", 0755), EROFS), "mkdir /x: %s", strerror(errno));
    CHECK(fails_with(open("/usr/shoal-test", O_CREAT | O_WRONLY, 0644), EROFS), "/usr writable: %s",
          strerror(errno));
    CHECK((fd = open("/tmp/t", O_CREAT | O_RDWR, 0600)) >= 0 && write(fd, "x", 1) == 1,
          "/tmp not writable: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    CHECK((fd = open("/dev/null", O_WRONLY)) >= 0 && write(fd, "x", 1) == 1, "/dev/null: %s",
          strerror(errno));
    if (fd >= 0)
        close(fd);
    CHECK(fstat(1, &st) == 0 && S_ISCHR(st.st_mode), "stdout is not /dev/null");
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max == SHOAL_SANDBOX_NOFILE, "nofile %lu",
          (unsigned long)rl.rlim_max);
    CHECK(getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_max == SHOAL_SANDBOX_TASKS, "nproc %lu",
          (unsigned long)rl.rlim_max);
    CHECK(getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_max == 0, "core %lu",
          (unsigned long)rl.rlim_max);
    /* The fds it did not keep are closed. */
    CHECK(fcntl(ART, F_GETFD) >= 0 && fcntl(rep_fd, F_GETFD) >= 0, "a kept fd was closed");
}

static void *thread_main(void *arg)
{
    return arg;
}

static long raw_clone(unsigned long flags)
{
    long r = syscall(SYS_clone, flags | SIGCHLD, 0, NULL, NULL, 0);
    if (r == 0)
        _exit(0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    return r;
}

/* Both steps: the seccomp allowlist, Landlock, rlimits. */
static void body_locked(void)
{
    static const struct {
        const char *name;
        long nr, a0, a1, a2;
        int err;
    } denied[] = {
        {"socket(AF_INET)", SYS_socket, 2, 1, 0, EPERM},
        {"socket(AF_UNIX)", SYS_socket, 1, 1, 0, EPERM},
        {"socketpair", SYS_socketpair, 1, 1, 0, EPERM},
        {"io_uring_setup", SYS_io_uring_setup, 1, 0, 0, EPERM},
        {"io_uring_enter", SYS_io_uring_enter, 0, 0, 0, EPERM},
        {"io_uring_register", SYS_io_uring_register, 0, 0, 0, EPERM},
        {"ptrace(ATTACH)", SYS_ptrace, 16, 1, 0, EPERM},
        {"mount", SYS_mount, 0, 0, 0, EPERM},
        {"umount2", SYS_umount2, 0, 0, 0, EPERM},
        {"pivot_root", SYS_pivot_root, 0, 0, 0, EPERM},
        {"chroot", SYS_chroot, 0, 0, 0, EPERM},
        {"unshare(NEWUSER)", SYS_unshare, CLONE_NEWUSER, 0, 0, EPERM},
        {"unshare(NEWNS)", SYS_unshare, CLONE_NEWNS, 0, 0, EPERM},
        {"setns", SYS_setns, 0, 0, 0, EPERM},
        {"bpf", SYS_bpf, 0, 0, 0, EPERM},
        {"perf_event_open", SYS_perf_event_open, 0, 0, 0, EPERM},
        {"keyctl", SYS_keyctl, 0, 0, 0, EPERM},
        {"add_key", SYS_add_key, 0, 0, 0, EPERM},
        {"request_key", SYS_request_key, 0, 0, 0, EPERM},
        {"userfaultfd", SYS_userfaultfd, 0, 0, 0, EPERM},
        {"execve", SYS_execve, (long)"/bin/sh", 0, 0, EPERM},
        {"execveat", SYS_execveat, 0, 0, 0, EPERM},
        {"kexec_load", SYS_kexec_load, 0, 0, 0, EPERM},
        {"reboot", SYS_reboot, 0, 0, 0, EPERM},
        {"init_module", SYS_init_module, 0, 0, 0, EPERM},
        {"finit_module", SYS_finit_module, 0, 0, 0, EPERM},
        {"process_vm_readv", SYS_process_vm_readv, 0, 0, 0, EPERM},
        {"pidfd_open", SYS_pidfd_open, 1, 0, 0, EPERM},
        {"setuid(0)", SYS_setuid, 0, 0, 0, EPERM},
        {"kill(0)", SYS_kill, 0, 0, 0, EPERM},
        {"kill(-1)", SYS_kill, -1, 0, 0, EPERM},
        {"kill(group)", SYS_kill, -7, 0, 0, EPERM},
        {"kill(pid with junk above bit 31)", SYS_kill, (1l << 32) | 1, 0, 0, EPERM},
        {"setpriority(PRIO_USER)", SYS_setpriority, PRIO_USER, 0, 10, EPERM},
        {"clone3", SYS_clone3, 0, 0, 0, ENOSYS},
        {"prctl(SET_SECUREBITS)", SYS_prctl, PR_SET_SECUREBITS, 0, 0, ENOSYS},
        {"ioctl(TIOCSTI)", SYS_ioctl, 0, TIOCSTI, 0, ENOSYS},
        {"acct", SYS_acct, 0, 0, 0, EPERM},
        {"a syscall off the list (inotify_init1)", SYS_inotify_init1, 0, 0, 0, ENOSYS},
    };
    static const unsigned long ns_flags[] = {CLONE_NEWUSER,  CLONE_NEWNS,  CLONE_NEWPID,
                                             CLONE_NEWNET,   CLONE_NEWIPC, CLONE_NEWUTS,
                                             CLONE_NEWCGROUP};
    struct rlimit rl;
    pthread_t t;
    char path[64], c;
    void *ret;
    int fd;

    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        long r = syscall(denied[i].nr, denied[i].a0, denied[i].a1, denied[i].a2, 0, 0, 0);
        CHECK(fails_with(r, denied[i].err), "%s returned %ld (%s), want %s", denied[i].name, r,
              r < 0 ? strerror(errno) : "ok", strerror(denied[i].err));
    }
    for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]); i++)
        CHECK(fails_with(raw_clone(ns_flags[i]), EPERM), "clone with 0x%lx: %s", ns_flags[i],
              strerror(errno));
    /* What functions do need. */
    CHECK(raw_clone(0) > 0, "a plain fork failed: %s", strerror(errno));
    CHECK(pthread_create(&t, NULL, thread_main, (void *)7) == 0 && pthread_join(t, &ret) == 0 &&
              ret == (void *)7,
          "threads do not work");
    CHECK(kill(getpid(), 0) == 0, "kill(self, 0): %s", strerror(errno));
    CHECK(prctl(PR_SET_NAME, "renamed") == 0, "PR_SET_NAME: %s", strerror(errno));
    CHECK(setpriority(PRIO_PROCESS, 0, 5) == 0, "setpriority(self): %s", strerror(errno));
    CHECK(syscall(SYS_getrandom, &c, 1, 0) == 1, "getrandom: %s", strerror(errno));
    CHECK(!isatty(0) && errno == ENOTTY, "isatty: %s", strerror(errno));
    {
        void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK(p != MAP_FAILED && mprotect(p, 4096, PROT_READ) == 0 && munmap(p, 1 << 20) == 0,
              "mmap/mprotect/munmap");
    }
    {
        struct timespec ts = {0, 1000};
        CHECK(nanosleep(&ts, NULL) == 0 && clock_gettime(CLOCK_MONOTONIC, &ts) == 0, "time");
    }
    /* Landlock: the artifact through its fd, nothing else. */
    snprintf(path, sizeof(path), "/proc/self/fd/%d", ART);
    CHECK((fd = open(path, O_RDONLY)) >= 0 && read(fd, &c, 1) == 1, "artifact: %s",
          strerror(errno));
    if (fd >= 0)
        close(fd);
    snprintf(path, sizeof(path), "/proc/self/fd/%d", OTHER);
    CHECK(fails_with(open(path, O_RDONLY), EACCES), "another host file reopened: %s",
          strerror(errno));
    CHECK(fails_with(opendir("/") ? 0 : -1, EACCES), "/ listable");
    CHECK(getrlimit(RLIMIT_AS, &rl) == 0 &&
              (shoal_sandbox_asan()
                   ? rl.rlim_max == RLIM_INFINITY
                   : rl.rlim_max == (64ull << 20) + CH.lay.size + SHOAL_SANDBOX_AS_BASE +
                                        shoal_channel_group_map_max(64)),
          "RLIMIT_AS %llu", (unsigned long long)rl.rlim_max);
    CHECK(getenv("PATH") == NULL && getenv("HOME") == NULL, "environment not cleared");
    /* The channel cannot be resized under the worker, nor its seals removed. */
    CHECK(fails_with(ftruncate(CH.fd, 0), EPERM), "channel shrunk: %s", strerror(errno));
    CHECK(fails_with(ftruncate(CH.fd, (off_t)CH.lay.size * 2), EPERM), "channel grown");
    CHECK(fails_with(fcntl(CH.fd, F_ADD_SEALS, F_SEAL_WRITE), EPERM), "seals changed");
}

static void body_abort(void)
{
    abort();
}

static void body_raise_term(void)
{
    raise(SIGTERM);
    report("FAIL survived SIGTERM");
}

static void body_segv(void)
{
    volatile uintptr_t bad = 16;
    *(volatile int *)bad = 1;
}

static void body_x32(void)
{
    /* getpid through the x32 ABI: another architecture for the filter. */
    syscall(0x40000000 | SYS_getpid);
    report("FAIL survived an x32 syscall");
}

static void body_int80(void)
{
    long r = 20; /* i386 getpid */
    __asm__ volatile("int $0x80" : "+a"(r) : : "memory");
    report("FAIL survived an int 0x80 syscall (%ld)", r);
}

static void body_fallback(void)
{
    char path[64];

    CHECK(getpid() != 1, "a PID namespace without namespaces");
    CHECK(getuid() == SHOAL_SANDBOX_UID_BASE + REQ, "uid %u", (unsigned)getuid());
    CHECK(status_field("CapEff:") == 0, "capabilities left");
    {
        int sig = 0;
        CHECK(prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0) == 0 && sig == SIGKILL,
              "parent-death signal %d", sig);
    }
    /* Landlock alone confines files: libraries and its own /proc only. */
    CHECK(access("/usr/lib", R_OK) == 0, "/usr/lib: %s", strerror(errno));
    CHECK(fails_with(open("/etc/passwd", O_RDONLY), EACCES), "/etc/passwd: %s", strerror(errno));
    CHECK(open("/proc/self/status", O_RDONLY) >= 0, "own /proc: %s", strerror(errno));
    CHECK(fails_with(open("/proc/1/status", O_RDONLY), EACCES), "/proc/1: %s", strerror(errno));
    snprintf(path, sizeof(path), "/proc/self/fd/%d", ART);
    CHECK(open(path, O_RDONLY) >= 0, "artifact: %s", strerror(errno));
    /* The worker (getppid) is another uid and outside the Landlock domain. */
    CHECK(fails_with(kill(getppid(), 0), EPERM), "kill(worker): %s", strerror(errno));
}

static void body_no_view(void)
{
    char path[64];

    CHECK(getpid() == 1, "pid %d, want 1", (int)getpid());
    CHECK(getuid() == SHOAL_SANDBOX_UID_BASE + REQ, "uid %u", (unsigned)getuid());
    /* The host's tree, but Landlock lets through the libraries and its own /proc only. */
    CHECK(access("/usr/lib", R_OK) == 0, "/usr/lib: %s", strerror(errno));
    CHECK(fails_with(open("/etc/passwd", O_RDONLY), EACCES), "/etc/passwd: %s", strerror(errno));
    CHECK(open("/proc/self/status", O_RDONLY) >= 0, "own /proc: %s", strerror(errno));
    CHECK(fails_with(open("/proc/1/status", O_RDONLY), EACCES), "/proc/1: %s", strerror(errno));
    snprintf(path, sizeof(path), "/proc/self/fd/%d", ART);
    CHECK(open(path, O_RDONLY) >= 0, "artifact: %s", strerror(errno));
    CHECK(fails_with(open("/tmp/x", O_CREAT | O_WRONLY, 0600), EACCES), "host /tmp: %s",
          strerror(errno));
}

/* ---- tests ---- */

static int setup(void **state)
{
    (void)state;
    if (shoal_sandbox_init(&SB) < 0)
        return -1;
    ART = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    OTHER = open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    if (OTHER < 0)
        OTHER = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
    if (ART < 0 || OTHER < 0 || shoal_channel_create(&CH, 1 << 20) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    shoal_channel_close(&CH);
    close(ART);
    close(OTHER);
    shoal_sandbox_free(&SB);
    return 0;
}

static int need_root(void)
{
    if (geteuid() == 0)
        return 1;
    fprintf(stderr, "the sandbox maps a uid of its own into each stem, which needs root\n");
    return 0;
}

static void test_view_and_identity(void **state)
{
    outcome_t o;
    (void)state;

    if (!need_root())
        skip();
    run_stem(0, 0, body_view, &o);
    if (!need_namespaces(&o))
        skip();
    expect_clean(&o);
}

static void test_lockdown(void **state)
{
    outcome_t o;
    (void)state;

    if (!need_root())
        skip();
    if (SB.landlock_abi == 0)
        fprintf(stderr, "no Landlock in this kernel: its checks will fail\n");
    run_stem(0, 1, body_locked, &o);
    if (!need_namespaces(&o))
        skip();
    expect_clean(&o);
}

static void test_fatal_signals_are_reported(void **state)
{
    const struct {
        body_fn body;
        int sig;
    } cases[] = {{body_abort, SIGABRT}, {body_raise_term, SIGTERM}, {body_segv, SIGSEGV}};
    outcome_t o;
    (void)state;

    if (!need_root())
        skip();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_stem(0, 1, cases[i].body, &o);
        if (!need_namespaces(&o))
            skip();
        /* PID 1 would ignore a signal it raised itself: the handler reports it and waits for
         * the worker's SIGKILL. */
        assert_int_equal(o.fatal_sig, cases[i].sig);
        assert_true(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGKILL);
    }
}

static void test_other_architectures_are_killed(void **state)
{
    outcome_t o;
    (void)state;

    if (!need_root())
        skip();
    run_stem(0, 1, body_x32, &o);
    if (!need_namespaces(&o))
        skip();
    assert_true(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSYS);
    run_stem(0, 1, body_int80, &o);
    assert_true(WIFSIGNALED(o.status) && WTERMSIG(o.status) == SIGSYS);
}

static void test_fallback_without_namespaces(void **state)
{
    outcome_t o;
    (void)state;

    if (!need_root())
        skip();
    if (SB.landlock_abi == 0) {
        fprintf(stderr, "without namespaces only Landlock confines files, and this kernel has "
                        "none\n");
        skip();
    }
    run_stem(SHOAL_SANDBOX_NO_NAMESPACES, 1, body_fallback, &o);
    expect_clean(&o);
}

static void test_namespaces_without_the_view(void **state)
{
    outcome_t o;
    (void)state;

    if (!need_root())
        skip();
    if (SB.landlock_abi == 0) {
        fprintf(stderr, "without the view only Landlock confines files, and this kernel has "
                        "none\n");
        skip();
    }
    run_stem(NO_VIEW, 1, body_no_view, &o);
    if (!need_namespaces(&o))
        skip();
    expect_clean(&o);
}

static void test_config_validation(void **state)
{
    shoal_sandbox_t sb = SB;
    shoal_sandbox_config_t c = SB.cfg;
    int fds[1];
    (void)state;

    sb.bpf = NULL; /* a copy: do not free the shared program */
    c.uid_base = 0;
    fds[0] = dup(0);
    assert_int_equal(shoal_sandbox_configure(&sb, &c, fds, 1), -EINVAL);
    assert_int_equal(fcntl(fds[0], F_GETFD), -1); /* closed on error too */
    c = SB.cfg;
    c.uid_base = 0xfffffff0u;
    assert_int_equal(shoal_sandbox_configure(&sb, &c, NULL, 0), -EINVAL);
    c = SB.cfg;
    c.tasks = 128;
    c.nofile = 256;
    assert_int_equal(shoal_sandbox_configure(&sb, &c, NULL, 0), 0);
    assert_int_equal(sb.cfg.tasks, 128);
    c.ncgroups = 2;
    assert_int_equal(shoal_sandbox_configure(&sb, &c, NULL, 0), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_view_and_identity),
        cmocka_unit_test(test_lockdown),
        cmocka_unit_test(test_fatal_signals_are_reported),
        cmocka_unit_test(test_other_architectures_are_killed),
        cmocka_unit_test(test_fallback_without_namespaces),
        cmocka_unit_test(test_namespaces_without_the_view),
        cmocka_unit_test(test_config_validation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
