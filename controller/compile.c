/*
 * compile - see compile.h.
 *
 * Waiting: the parent holds a pidfd for the compiler and polls it in 100 ms steps so that it can
 * notice cancellation and the wall-clock limit. When the compiler has exited it is still a zombie
 * (pidfd readiness does not reap), so its pid - which is also the process group id - cannot have
 * been reused when we kill the group to take stragglers with it; only then do we reap it.
 */
#include "compile.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sched.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "common/view.h"

shoal_artifact_kind_t shoal_compile_classify(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    if (len >= 4 && memcmp(p, "\177ELF", 4) == 0)
        return SHOAL_ARTIFACT_ELF;
    if (len == 0)
        return SHOAL_ARTIFACT_UNKNOWN;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        /* C source is text: any encoding of letters is fine (bytes >= 0x80 pass), but NUL and
         * control characters other than whitespace do not occur in it. DEL (0x7f) neither. */
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\v' && c != '\f' && c != '\r') ||
            c == 0x7f)
            return SHOAL_ARTIFACT_UNKNOWN;
    }
    return SHOAL_ARTIFACT_SOURCE;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
        SHOAL_WARN("compile: cannot remove %s: %s", path, strerror(errno));
    return 0;
}

/* rm -rf path (without following symlinks or crossing mounts). */
static void remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

int shoal_compile_clean(const char *home)
{
    char path[PATH_MAX];

    if (snprintf(path, sizeof(path), "%s/tmp", home) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    remove_tree(path);
    return shoal_util_mkdir_p(path, 0700);
}

/* Reads at most max bytes of the diagnostics file, noting when there was more. */
static int read_diag(const char *path, char **out, size_t *len)
{
    static const char CUT[] = "\n[diagnostics truncated]";
    size_t cap = SHOAL_COMPILE_DIAG_MAX, n = 0;
    char *buf;
    int fd;

    if ((buf = malloc(cap + 1)) == NULL)
        return -ENOMEM;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        while (n < cap) {
            ssize_t r = read(fd, buf + n, cap - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        char extra;
        if (n == cap && read(fd, &extra, 1) == 1) {
            n = cap - (sizeof(CUT) - 1);
            memcpy(buf + n, CUT, sizeof(CUT) - 1);
            n += sizeof(CUT) - 1;
        }
        close(fd);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Appends a line to a diagnostics buffer from read_diag, staying within its bound. */
static void append_diag(char **diag, size_t *len, const char *line)
{
    size_t add = strlen(line), sep = *len > 0;
    char *nb;

    if (*len + sep + add > SHOAL_COMPILE_DIAG_MAX)
        return;
    if ((nb = realloc(*diag, *len + sep + add + 1)) == NULL)
        return;
    if (sep)
        nb[(*len)++] = '\n';
    memcpy(nb + *len, line, add + 1);
    *len += add;
    *diag = nb;
}

/* The source only has to outlive the compile, so no fsync (unlike anything we keep). */
static int write_source(const char *path, const void *src, size_t len)
{
    int fd, err;

    if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
        return -errno;
    err = shoal_util_write_all(fd, src, len);
    if (close(fd) < 0 && err == 0)
        err = -errno;
    return err;
}

/* The jail of one compile: everything the child needs, computed by the parent (the child of a
 * multithreaded process must not allocate or take locks). */
typedef struct {
    char root[PATH_MAX];    /* <dir>/root: mount points made by the parent, the child's root */
    char build[PATH_MAX];   /* <dir>/build: source in, shared object and diagnostics out */
    char include[PATH_MAX]; /* <home>/include, seen as /include */
    const char *cc_host;    /* an absolute compiler path, bound at /cc; NULL: cc is found in PATH */
    const char *cc;         /* the compiler's name in the view */
    uid_t uid;              /* what the compiler runs as */
    gid_t gid;
    int privileged; /* the controller is root: the compiler gets SHOAL_COMPILE_UID */
} jail_t;

/* What the child reports on its error pipe when it cannot build its jail. */
typedef struct {
    int step, err;
} jail_err_t;

enum { STEP_VIEW = 1, STEP_ENTER, STEP_IDS, STEP_NNP, STEP_FILES };

static const char *const step_names[] = {"?",
                                         "build its file system view",
                                         "pivot_root",
                                         "change its uid",
                                         "set no_new_privs",
                                         "open its files"};

/* The compiler's whole environment: the controller's (which may hold SHOAL_TOKEN and other
 * secrets) never reaches it, so /proc/self/environ or getenv in a plugin learn nothing. */
static char *const jail_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "TMPDIR=/build",
                                 "HOME=/build", "LC_ALL=C", NULL};

static void set_limit(int res, uint64_t v)
{
    struct rlimit rl = {v, v};
    setrlimit(res, &rl);
}

static void __attribute__((noreturn)) jail_fail(int err_fd, int step, int err)
{
    jail_err_t e = {step, err < 0 ? -err : err};
    if (write(err_fd, &e, sizeof(e)) < 0) {
        /* nothing more to tell: the exit status says it */
    }
    _exit(125);
}

/* The host paths of the compiler's view: the system's tools and libraries read-only, /dev/null;
 * no /proc, no /etc but the loader's cache and the alternatives links. */
static const char *const jail_ro[] = {"/usr",
                                      "/lib",
                                      "/lib64",
                                      "/lib32",
                                      "/libx32",
                                      "/bin",
                                      "/sbin",
                                      "/etc/alternatives",
                                      "/etc/ld.so.cache"};

/* Walks the view: with bind 0 the parent creates the mount points under j->root on the host (the
 * child's fs uid, root's, is not mapped in its user namespace, so it cannot create any); with
 * bind 1 the child mounts them. Besides jail_ro: <home>/include as /include, the build directory
 * as /build (read-write, noexec) and an absolute compiler as /cc. */
static int jail_view(const jail_t *j, int bind)
{
    int err;
    size_t i;

#define STEP(src, dst, fl)                                                                         \
    if ((err = bind ? shoal_view_bind(j->root, src, dst, fl)                                       \
                    : shoal_view_point(j->root, src, dst)) < 0)                                    \
        return err;
    if (!bind && ((err = shoal_view_mkdir(j->root, "/etc", 0755)) < 0 ||
                  (err = shoal_view_mkdir(j->root, "/dev", 0755)) < 0))
        return err;
    if (bind && (err = shoal_view_stage(j->root, 0)) < 0)
        return err;
    for (i = 0; i < sizeof(jail_ro) / sizeof(jail_ro[0]); i++) {
        STEP(jail_ro[i], NULL, 0)
    }
    STEP("/dev/null", NULL, SHOAL_VIEW_DEV)
    STEP(j->include, "/include", 0)
    STEP(j->build, "/build", SHOAL_VIEW_RW)
    if (j->cc_host != NULL) {
        STEP(j->cc_host, "/cc", 0)
    }
#undef STEP
    return 0;
}

/* Runs in the cloned child (PID 1 of its namespaces) until exec: syscalls only. Failures to build
 * the jail go to err_fd and exit 125; a compiler that cannot be run exits 127. */
static void __attribute__((noreturn))
child(const shoal_compile_opts_t *o, const jail_t *j, int go_fd, int err_fd, char *const argv[])
{
    struct sigaction sa;
    sigset_t none;
    char go, path[64];
    int fd, err;
    ssize_t n;

    setpgid(0, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    /* Wait for the parent to map our uid and gid. */
    do
        n = read(go_fd, &go, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(125);
    close(go_fd);
    if ((err = jail_view(j, 1)) < 0)
        jail_fail(err_fd, STEP_VIEW, err);
    if ((err = shoal_view_enter(j->root)) < 0)
        jail_fail(err_fd, STEP_ENTER, err);
    if (chdir("/build") < 0)
        jail_fail(err_fd, STEP_ENTER, errno);
    /* A root controller's child is still root (kuid 0) until here; it drops root's groups and
     * becomes the compile uid, losing every capability. An unprivileged controller's child keeps
     * its uid, whose capabilities in the new user namespace execve clears (the uid is not 0). */
    if (j->privileged && (setgroups(0, NULL) < 0 || setresgid(j->gid, j->gid, j->gid) < 0 ||
                          setresuid(j->uid, j->uid, j->uid) < 0))
        jail_fail(err_fd, STEP_IDS, errno);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        jail_fail(err_fd, STEP_NNP, errno);
    set_limit(RLIMIT_CPU, o->cpu_s ? o->cpu_s : 30);
    set_limit(RLIMIT_AS, o->as_bytes ? o->as_bytes : (2ull << 30));
    set_limit(RLIMIT_FSIZE, o->fsize_bytes ? o->fsize_bytes : (256ull << 20));
    set_limit(RLIMIT_CORE, 0);
    if ((fd = open("/dev/null", O_RDONLY)) < 0)
        jail_fail(err_fd, STEP_FILES, errno);
    if (fd != 0) {
        dup2(fd, 0);
        close(fd);
    }
    if ((fd = open("diagnostics.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
        jail_fail(err_fd, STEP_FILES, errno);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
    /* libuv and SQLite open everything close-on-exec; make sure nothing else leaks into cc (the
     * error pipe closes at exec, which tells the parent the jail is complete). */
    syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
    if (strchr(j->cc, '/') != NULL) {
        execve(j->cc, argv, jail_env);
    } else {
        static const char *const dirs[] = {"/usr/local/bin/", "/usr/bin/", "/bin/"};
        size_t len = strlen(j->cc);
        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
            size_t dl = strlen(dirs[i]);
            if (dl + len + 1 > sizeof(path))
                break;
            memcpy(path, dirs[i], dl);
            memcpy(path + dl, j->cc, len + 1);
            execve(path, argv, jail_env);
        }
    }
    _exit(127);
}

/* Maps the child's one uid and gid into its user namespace, the same inside and out. A root
 * controller leaves setgroups allowed so that the child can drop root's supplementary groups; an
 * unprivileged one must deny it to map a gid at all. */
static int map_ids(const jail_t *j, pid_t pid)
{
    char path[64], map[64];
    int err;

    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)j->uid, (unsigned)j->uid);
    snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
    if ((err = shoal_util_write_at(AT_FDCWD, path, map)) < 0)
        return err;
    if (!j->privileged) {
        snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
        if ((err = shoal_util_write_at(AT_FDCWD, path, "deny")) < 0)
            return err;
    }
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)j->gid, (unsigned)j->gid);
    snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
    return shoal_util_write_at(AT_FDCWD, path, map);
}

/* Starts the compiler in its jail: new user, mount, PID, network, IPC and UTS namespaces. Returns
 * its pid (in our namespace; it is PID 1 of its own), or -EOPNOTSUPP when the kernel refuses the
 * namespaces or the jail cannot be built (logged), or another -errno. */
static pid_t jail_start(const shoal_compile_opts_t *o, const jail_t *j, char *const argv[])
{
    const long ns =
        CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    int go[2] = {-1, -1}, ep[2] = {-1, -1}, status, err;
    jail_err_t je;
    ssize_t n;
    long pid;

    if (pipe2(go, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(ep, O_CLOEXEC) < 0) {
        err = -errno;
        goto fail_pipes;
    }
    /* A raw clone: fork() cannot make namespaces. CLONE_NEWUSER is allowed to clone from a
     * multithreaded process (unlike unshare); the child only makes syscalls until exec. */
    pid = syscall(SYS_clone, SIGCHLD | ns, 0, NULL, NULL, 0);
    if (pid == 0) {
        close(go[1]);
        close(ep[0]);
        child(o, j, go[0], ep[1], argv);
    }
    if (pid < 0) {
        err = -errno;
        if (err == -EPERM || err == -EINVAL || err == -ENOSPC || err == -EUSERS || err == -ENOSYS) {
            SHOAL_ERROR("compile: the kernel refuses the compiler's namespaces (%s); C source "
                        "cannot be compiled safely here, only ELF uploads are accepted",
                        strerror(-err));
            err = -EOPNOTSUPP;
        }
        goto fail_pipes;
    }
    close(go[0]);
    close(ep[1]);
    go[0] = ep[1] = -1;
    setpgid((pid_t)pid, (pid_t)pid); /* also in the child: whichever runs first wins the race */
    if ((err = map_ids(j, (pid_t)pid)) < 0) {
        SHOAL_ERROR("compile: cannot map the compiler's uid: %s", strerror(-err));
        err = -EOPNOTSUPP;
        goto fail_child;
    }
    if (write(go[1], "g", 1) != 1) {
        err = -errno;
        goto fail_child;
    }
    close(go[1]);
    go[1] = -1;
    /* End of file: the jail is complete and exec happened (or the compiler was not found). */
    do
        n = read(ep[0], &je, sizeof(je));
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    ep[0] = -1;
    if (n == (ssize_t)sizeof(je)) {
        int step = je.step > 0 && je.step <= STEP_FILES ? je.step : 0;
        SHOAL_ERROR("compile: the compiler's sandbox cannot %s: %s", step_names[step],
                    strerror(je.err));
        err = -EOPNOTSUPP;
        goto fail_child;
    }
    return (pid_t)pid;
fail_child:
    kill((pid_t)pid, SIGKILL);
    while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
        ;
fail_pipes:
    for (int i = 0; i < 2; i++) {
        if (go[i] >= 0)
            close(go[i]);
        if (ep[i] >= 0)
            close(ep[i]);
    }
    return err;
}

/* Waits for pid to exit without reaping it, killing its group at the deadline or on cancel.
 * Returns 0 when it exited by itself, -ETIMEDOUT or -ECANCELED when we killed it. */
static int wait_exit(pid_t pid, const shoal_compile_opts_t *o)
{
    uint64_t deadline = shoal_util_now_ms() + (o->wall_ms ? o->wall_ms : 60000);
    int pidfd = (int)pidfd_open(pid, 0), ret = 0;

    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        if (pidfd >= 0) {
            struct pollfd pfd = {pidfd, POLLIN, 0};
            if (poll(&pfd, 1, 100) > 0)
                break;
        } else {
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
                break;
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (o->cancel != NULL && atomic_load(o->cancel)) {
            ret = -ECANCELED;
            break;
        }
        if (shoal_util_now_ms() >= deadline) {
            ret = -ETIMEDOUT;
            break;
        }
    }
    if (pidfd >= 0)
        close(pidfd);
    return ret;
}

int shoal_compile_run(const shoal_compile_opts_t *o, const char *name, const void *src, size_t len,
                      void **so, size_t *so_len, char **diag, size_t *diag_len)
{
    char dir[PATH_MAX], path[PATH_MAX], srcname[SHOAL_NAME_MAX + 8], soname[SHOAL_NAME_MAX + 8];
    char diagpath[PATH_MAX], sopath[PATH_MAX];
    jail_t *j = NULL;
    int have_dir = 0, err, status = 0, waited;
    pid_t pid;

    *so = NULL;
    *diag = NULL;
    *so_len = *diag_len = 0;
    if (!shoal_util_name_valid(name))
        return -EINVAL;
    if ((j = calloc(1, sizeof(*j))) == NULL)
        return -ENOMEM;
    snprintf(srcname, sizeof(srcname), "%s.c", name);
    snprintf(soname, sizeof(soname), "%s.so", name);
    err = -ENAMETOOLONG;
    if (snprintf(dir, sizeof(dir), "%s/tmp/cc-XXXXXX", o->home) >= (int)sizeof(dir) ||
        snprintf(j->include, sizeof(j->include), "%s/include", o->home) >= (int)sizeof(j->include))
        goto done;
    if ((err = shoal_util_mkdir_p(j->include, 0755)) < 0)
        goto done;
    err = -ENAMETOOLONG;
    if (snprintf(path, sizeof(path), "%s/tmp", o->home) >= (int)sizeof(path))
        goto done;
    if ((err = shoal_util_mkdir_p(path, 0700)) < 0)
        goto done;
    if (mkdtemp(dir) == NULL) {
        err = -errno;
        goto done;
    }
    have_dir = 1;
    err = -ENAMETOOLONG;
    if (snprintf(j->root, sizeof(j->root), "%s/root", dir) >= (int)sizeof(j->root) ||
        snprintf(j->build, sizeof(j->build), "%s/build", dir) >= (int)sizeof(j->build) ||
        strlen(j->root) + 32 > SHOAL_VIEW_PATH_MAX ||
        snprintf(path, sizeof(path), "%s/%s", j->build, srcname) >= (int)sizeof(path) ||
        snprintf(diagpath, sizeof(diagpath), "%s/diagnostics.txt", j->build) >=
            (int)sizeof(diagpath) ||
        snprintf(sopath, sizeof(sopath), "%s/%s", j->build, soname) >= (int)sizeof(sopath))
        goto done;
    j->privileged = geteuid() == 0;
    j->uid = j->privileged ? SHOAL_COMPILE_UID : geteuid();
    j->gid = j->privileged ? SHOAL_COMPILE_UID : getegid();
    if (mkdir(j->root, 0755) < 0 || mkdir(j->build, 0700) < 0) {
        err = -errno;
        goto done;
    }
    if ((err = write_source(path, src, len)) < 0)
        goto done;
    /* The compile uid owns the build directory and the source; nothing else of the host. */
    if (j->privileged && (chown(j->build, j->uid, j->gid) < 0 || chown(path, j->uid, j->gid) < 0)) {
        err = -errno;
        goto done;
    }
    const char *cc = o->cc ? o->cc : "cc";
    j->cc_host = cc[0] == '/' ? cc : NULL;
    j->cc = cc[0] == '/' ? "/cc" : cc;
    if ((err = jail_view(j, 0)) < 0)
        goto done;
    char *const argv[] = {(char *)cc, "-shared", "-fPIC", "-O2",   "-I",
                          "/include", "-o",      soname,  srcname, NULL};
    if ((pid = jail_start(o, j, argv)) < 0) {
        err = pid;
        goto done;
    }

    waited = wait_exit(pid, o);
    kill(-pid, SIGKILL); /* stragglers (cc1, as, ld) of a killed or exited cc */
    if (waited < 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;

    if ((err = read_diag(diagpath, diag, diag_len)) < 0)
        goto done;
    if (waited == -ETIMEDOUT || waited == -ECANCELED) {
        char line[128];
        snprintf(line, sizeof(line),
                 waited == -ETIMEDOUT ? "compilation killed: exceeded the %u ms time limit"
                                      : "compilation cancelled: the controller is shutting down",
                 o->wall_ms ? o->wall_ms : 60000);
        append_diag(diag, diag_len, line);
        err = -ENOEXEC;
        goto done;
    }
    if (WIFSIGNALED(status)) {
        char line[128];
        const char *sig = sigabbrev_np(WTERMSIG(status));
        snprintf(line, sizeof(line), "compiler killed by signal %d (SIG%s)%s", WTERMSIG(status),
                 sig ? sig : "?",
                 WTERMSIG(status) == SIGXCPU || WTERMSIG(status) == SIGKILL
                     ? ": it exceeded its CPU time limit"
                     : "");
        append_diag(diag, diag_len, line);
        err = -ENOEXEC;
        goto done;
    }
    if (WEXITSTATUS(status) != 0) {
        char line[96];
        if (WEXITSTATUS(status) == 127 && *diag_len == 0)
            snprintf(line, sizeof(line), "cannot run the compiler '%s'", cc);
        else
            snprintf(line, sizeof(line), "compiler exited with status %d", WEXITSTATUS(status));
        if (*diag_len == 0 || WEXITSTATUS(status) >= 126)
            append_diag(diag, diag_len, line);
        err = -ENOEXEC;
        goto done;
    }
    char *out;
    err = shoal_util_read_file(sopath, o->max_output ? o->max_output : (256u << 20), &out, so_len);
    if (err < 0) /* -EFBIG: larger than max_output */
        goto done;
    *so = out;
done:
    if (err != -ENOEXEC) {
        free(*diag);
        *diag = NULL;
        *diag_len = 0;
    }
    free(j);
    if (have_dir)
        remove_tree(dir);
    return err;
}
