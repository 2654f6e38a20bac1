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
#include <sys/pidfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"

extern char **environ;

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

/* Builds the compiler's environment: ours minus TMPDIR and the locale, plus our own. */
static char **child_env(const char *tmpdir_var)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ && environ[n])
        n++;
    if ((env = calloc(n + 3, sizeof(*env))) == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "TMPDIR=", 7) == 0 || strncmp(environ[i], "LC_", 3) == 0 ||
            strncmp(environ[i], "LANG=", 5) == 0 || strncmp(environ[i], "LANGUAGE=", 9) == 0)
            continue;
        env[k++] = environ[i];
    }
    env[k++] = (char *)tmpdir_var;
    env[k++] = "LC_ALL=C";
    env[k] = NULL;
    return env;
}

static void set_limit(int res, uint64_t v)
{
    struct rlimit rl = {v, v};
    setrlimit(res, &rl);
}

/* Runs in the forked child: only async-signal-safe calls until exec. */
static void __attribute__((noreturn))
child(const shoal_compile_opts_t *o, const char *dir, char *const argv[], char *const envp[])
{
    struct sigaction sa;
    sigset_t none;
    int fd;

    setpgid(0, 0);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &sa, NULL);
    if (chdir(dir) < 0)
        _exit(126);
    set_limit(RLIMIT_CPU, o->cpu_s ? o->cpu_s : 30);
    set_limit(RLIMIT_AS, o->as_bytes ? o->as_bytes : (2ull << 30));
    set_limit(RLIMIT_FSIZE, o->fsize_bytes ? o->fsize_bytes : (256ull << 20));
    set_limit(RLIMIT_CORE, 0);
    if ((fd = open("/dev/null", O_RDONLY)) >= 0 && fd != 0) {
        dup2(fd, 0);
        close(fd);
    }
    if ((fd = open("diagnostics.txt", O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
        _exit(126);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
    /* libuv and SQLite open everything close-on-exec; make sure nothing else leaks into cc. */
    syscall(SYS_close_range, 3u, ~0u, 4u /* CLOSE_RANGE_CLOEXEC */);
    execvpe(argv[0], argv, envp);
    _exit(127);
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
    char include[PATH_MAX], tmpvar[PATH_MAX + 8], diagpath[PATH_MAX], sopath[PATH_MAX];
    char **envp = NULL;
    int have_dir = 0, err, status = 0, waited;
    pid_t pid;

    *so = NULL;
    *diag = NULL;
    *so_len = *diag_len = 0;
    if (!shoal_util_name_valid(name))
        return -EINVAL;
    snprintf(srcname, sizeof(srcname), "%s.c", name);
    snprintf(soname, sizeof(soname), "%s.so", name);
    if (snprintf(dir, sizeof(dir), "%s/tmp/cc-XXXXXX", o->home) >= (int)sizeof(dir) ||
        snprintf(include, sizeof(include), "%s/include", o->home) >= (int)sizeof(include))
        return -ENAMETOOLONG;
    if ((err = shoal_util_mkdir_p(include, 0755)) < 0)
        return err;
    if (snprintf(path, sizeof(path), "%s/tmp", o->home) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if ((err = shoal_util_mkdir_p(path, 0700)) < 0)
        return err;
    if (mkdtemp(dir) == NULL)
        return -errno;
    have_dir = 1;
    if (snprintf(path, sizeof(path), "%s/%s", dir, srcname) >= (int)sizeof(path) ||
        snprintf(diagpath, sizeof(diagpath), "%s/diagnostics.txt", dir) >= (int)sizeof(diagpath) ||
        snprintf(sopath, sizeof(sopath), "%s/%s", dir, soname) >= (int)sizeof(sopath) ||
        snprintf(tmpvar, sizeof(tmpvar), "TMPDIR=%s", dir) >= (int)sizeof(tmpvar)) {
        err = -ENAMETOOLONG;
        goto done;
    }
    if ((err = write_source(path, src, len)) < 0)
        goto done;
    if ((envp = child_env(tmpvar)) == NULL) {
        err = -ENOMEM;
        goto done;
    }

    const char *cc = o->cc ? o->cc : "cc";
    char *const argv[] = {(char *)cc, "-shared", "-fPIC", "-O2",   "-I",
                          include,    "-o",      soname,  srcname, NULL};
    if ((pid = fork()) < 0) {
        err = -errno;
        goto done;
    }
    if (pid == 0)
        child(o, dir, argv, envp);
    setpgid(pid, pid); /* also in the child: whichever runs first wins the race */

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
    free(envp);
    if (have_dir)
        remove_tree(dir);
    return err;
}
