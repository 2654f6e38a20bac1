/*
 * End-to-end tests of the sandbox (issue 5) against real processes: a controller and one worker.
 *
 * Faults: a function that segfaults, aborts, loops, sleeps, allocates without bound, fork-bombs,
 * exhausts its fds, floods its log or returns more than the output limit gets its own clear
 * error, its pool is back to its size within a second, and the worker is left with exactly the
 * processes, fds, channel memfds and cgroups it had before. Escapes: a function tries to read the
 * host's files, the controller's home and another function's artifact, to make sockets and
 * io_uring rings, to ptrace or kill the worker, to mount, unshare, exec a shell, to reach the
 * worker's memfds through /proc and to resize its own channel - every attempt fails. And the video
 * example (libavcodec, libvpx, threads) still works inside the box.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;

/* Misbehaves as its input says. */
#define FN_FAULTY                                                                                  \
    "#define _GNU_SOURCE\n" FN_HEAD "#include <fcntl.h>\n#include <errno.h>\n"                     \
    "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c);\n"                              \
    " char cmd[16] = {0}; memcpy(cmd, in.data, in.len < 15 ? in.len : 15);\n"                      \
    " if (!strcmp(cmd, \"segv\")) { volatile char *p = (char *)(long)in.len; *p = 1; }\n"          \
    " if (!strcmp(cmd, \"abort\")) abort();\n"                                                     \
    " if (!strcmp(cmd, \"spin\")) for (volatile unsigned long i = 0;; i++) ;\n"                    \
    " if (!strcmp(cmd, \"sleep\")) for (;;) sleep(1000);\n"                                        \
    " if (!strcmp(cmd, \"alloc\")) for (;;) { char *p = malloc(1 << 20);\n"                        \
    "   if (!p) return shoal_error(c, \"malloc failed: out of memory\"); memset(p, 7, 1 << 20); "  \
    "}\n"                                                                                          \
    " if (!strcmp(cmd, \"forkbomb\")) for (;;) fork();\n"                                          \
    " if (!strcmp(cmd, \"fds\")) { int n = 0; for (;;) { if (open(\"/dev/null\", O_RDONLY) < 0)\n" \
    "   return shoal_error(c, \"open failed after %d fds: %s\", n, strerror(errno)); n++; } }\n"   \
    " if (!strcmp(cmd, \"log\")) { static char line[1001]; memset(line, 'L', 1000);\n"             \
    "   for (int i = 0; i < 25000; i++) { shoal_log(c, \"%05d %s\", i, line);\n"                   \
    "     write(2, line, 1000); write(1, line, 1000); }\n"                                         \
    "   return shoal_output(c, \"logged\", 6); }\n"                                                \
    " if (!strcmp(cmd, \"logempty\")) { for (int i = 0; i < 400000; i++) shoal_log(c, \"\");\n"    \
    "   return shoal_output(c, \"logged\", 6); }\n"                                                \
    " if (!strcmp(cmd, \"bigout\")) { void *p = shoal_output_alloc(c, (65u << 20));\n"             \
    "   return p ? shoal_error(c, \"65 MiB fit?\") : 0; }\n"                                       \
    " return shoal_output(c, \"ok\", 2); }\n"

/* Tries to get out; answers one line per attempt: "<name> <return value> <errno>". */
#define FN_ESCAPE                                                                                  \
    "#define _GNU_SOURCE\n" FN_HEAD                                                                \
    "#include <fcntl.h>\n#include <errno.h>\n#include <sched.h>\n#include <dirent.h>\n"            \
    "#include <sys/mount.h>\n#include <sys/ptrace.h>\n#include <sys/socket.h>\n"                   \
    "#include <sys/syscall.h>\n#include <sys/stat.h>\n"                                            \
    "static char out[16384]; static size_t n;\n"                                                   \
    "static void rep(const char *what, long r) {\n"                                                \
    " n += snprintf(out + n, sizeof(out) - n, \"%s %ld %d\\n\", what, r, r < 0 ? errno : 0); }\n"  \
    "static const char *arg(shoal_buf in, const char *key, char *buf, size_t size) {\n"            \
    " const char *p = in.data, *end = p + in.len; size_t k = strlen(key);\n"                       \
    " while (p < end) { const char *nl = memchr(p, '\\n', (size_t)(end - p)); if (!nl) nl = "      \
    "end;\n"                                                                                       \
    "  if ((size_t)(nl - p) > k && !memcmp(p, key, k) && p[k] == '=') {\n"                         \
    "   snprintf(buf, size, \"%.*s\", (int)(nl - p - k - 1), p + k + 1); return buf; }\n"          \
    "  p = nl + 1; } buf[0] = 0; return buf; }\n"                                                  \
    "int shoal_main(shoal_ctx *c) { shoal_buf in = shoal_input(c); char home[512], art[1024], "    \
    "w[32], path[1200];\n"                                                                         \
    " arg(in, \"home\", home, sizeof home); arg(in, \"art\", art, sizeof art); pid_t wpid = "      \
    "atoi(arg(in, \"wpid\", w, sizeof w));\n"                                                      \
    " rep(\"open_etc_passwd\", open(\"/etc/passwd\", O_RDONLY));\n"                                \
    " rep(\"open_home\", open(home, O_RDONLY | O_DIRECTORY));\n"                                   \
    " snprintf(path, sizeof path, \"%s/shoal.db\", home); rep(\"open_home_db\", open(path, "       \
    "O_RDONLY));\n"                                                                                \
    " rep(\"open_other_artifact\", open(art, O_RDONLY));\n"                                        \
    " rep(\"socket_inet\", socket(AF_INET, SOCK_STREAM, 0));\n"                                    \
    " rep(\"socket_unix\", socket(AF_UNIX, SOCK_STREAM, 0));\n"                                    \
    " int sv[2]; rep(\"socketpair\", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));\n"                  \
    " char params[120] = {0}; rep(\"io_uring_setup\", syscall(SYS_io_uring_setup, 4, params));\n"  \
    " rep(\"ptrace_attach_worker\", ptrace(PTRACE_ATTACH, wpid, 0, 0));\n"                         \
    " rep(\"ptrace_traceme\", ptrace(PTRACE_TRACEME, 0, 0, 0));\n"                                 \
    " rep(\"kill_parent\", kill(getppid(), SIGKILL));\n"                                           \
    " rep(\"kill_worker\", kill(wpid, SIGKILL));\n"                                                \
    " rep(\"kill_everyone\", kill(-1, SIGKILL));\n"                                                \
    " rep(\"mount_tmpfs\", mount(\"none\", \"/tmp\", \"tmpfs\", 0, \"\"));\n"                      \
    " rep(\"umount_proc\", umount2(\"/proc\", MNT_DETACH));\n"                                     \
    " rep(\"unshare_user\", unshare(CLONE_NEWUSER));\n"                                            \
    " rep(\"unshare_mount\", unshare(CLONE_NEWNS));\n"                                             \
    " char *argv[] = {\"/bin/sh\", \"-c\", \"id\", NULL};\n"                                       \
    " rep(\"execve_sh\", execve(\"/bin/sh\", argv, NULL));\n"                                      \
    " rep(\"execve_usr_bin_sh\", execve(\"/usr/bin/sh\", argv, NULL));\n"                          \
    " rep(\"setuid_root\", setuid(0));\n"                                                          \
    " rep(\"chroot\", chroot(\"/tmp\"));\n"                                                        \
    " rep(\"bpf\", syscall(SYS_bpf, 0, 0, 0));\n"                                                  \
    " rep(\"perf_event_open\", syscall(SYS_perf_event_open, 0, 0, -1, -1, 0));\n"                  \
    " rep(\"keyctl\", syscall(SYS_keyctl, 0, 0, 0));\n"                                            \
    " rep(\"userfaultfd\", syscall(SYS_userfaultfd, 0));\n"                                        \
    " snprintf(path, sizeof path, \"/proc/%d/mem\", (int)wpid); rep(\"open_worker_mem\", "         \
    "open(path, O_RDONLY));\n"                                                                     \
    " int got = 0; for (int k = 0; k < 256; k++) { snprintf(path, sizeof path, "                   \
    "\"/proc/%d/fd/%d\", (int)wpid, k);\n"                                                         \
    "  int fd = open(path, O_RDWR); if (fd >= 0) { got++; close(fd); } }\n"                        \
    " rep(\"open_worker_fds\", got ? got : -1);\n"                                                 \
    " got = 0; DIR *d = opendir(\"/proc\"); struct dirent *e; if (d) { while ((e = readdir(d)))\n" \
    "  if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && atoi(e->d_name) != getpid()) {\n"         \
    "   for (int k = 0; k < 64; k++) { snprintf(path, sizeof path, \"/proc/%s/fd/%d\", "           \
    "e->d_name, k);\n"                                                                             \
    "    int fd = open(path, O_RDONLY); if (fd >= 0) { got++; close(fd); } } }\n"                  \
    "  closedir(d); }\n"                                                                           \
    " rep(\"open_other_processes_fds\", got ? got : -1);\n"                                        \
    " int chan = -1; for (int k = 0; k < 64; k++) { char l[128]; snprintf(path, sizeof path, "     \
    "\"/proc/self/fd/%d\", k);\n"                                                                  \
    "  ssize_t r = readlink(path, l, sizeof l - 1); if (r > 0) { l[r] = 0; if (strstr(l, "         \
    "\"shoal-channel\")) chan = k; } }\n"                                                          \
    " rep(\"found_channel\", chan >= 0 ? 0 : -1);\n"                                               \
    " rep(\"shrink_channel\", chan >= 0 ? ftruncate(chan, 4096) : 0);\n"                           \
    " rep(\"open_dev_mem\", open(\"/dev/mem\", O_RDONLY));\n"                                      \
    " rep(\"open_sysrq\", open(\"/proc/sysrq-trigger\", O_WRONLY));\n"                             \
    " rep(\"open_sys\", open(\"/sys/kernel/notes\", O_RDONLY));\n"                                 \
    " rep(\"create_in_root\", open(\"/evil\", O_CREAT | O_WRONLY, 0644));\n"                       \
    " rep(\"write_usr\", open(\"/usr/lib/evil\", O_CREAT | O_WRONLY, 0644));\n"                    \
    " return shoal_output(c, out, n); }\n"

static int setup(void **state)
{
    (void)state;
    return cluster_start(&C, 1, NULL) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

static int deploy_src(const char *name, const char *src, const char *query)
{
    char so[512];
    if (build_function(&C, name, src, so, sizeof(so)) < 0)
        return -1;
    return deploy_file(&C, name, so, query, NULL);
}

static void invoke(const char *name, const void *in, size_t len, http_resp_t *r)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/functions/%s/invoke", name);
    assert_int_equal(http_request(&C, "POST", path, in, len, NULL, r), 0);
}

static void expect_error(const http_resp_t *r, long status, const char *code, const char *text)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    const char *got = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));

    if (r->status != status || got == NULL || strcmp(got, code) != 0 || msg == NULL ||
        strstr(msg, text) == NULL)
        fprintf(stderr, "want %ld %s \"...%s...\", got %ld: %.500s\n", status, code, text,
                r->status, r->body);
    assert_int_equal(r->status, status);
    assert_non_null(got);
    assert_string_equal(got, code);
    assert_non_null(msg);
    assert_non_null(strstr(msg, text));
    json_decref(j);
}

/* ---- what the worker holds ---- */

static pid_t worker(void)
{
    return C.workers[0];
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* All processes below pid (children, theirs, ...). */
static int descendants(pid_t pid)
{
    pid_t kids[256];
    int n = children_of(pid, kids, 256), total = n;
    for (int i = 0; i < n; i++)
        total += descendants(kids[i]);
    return total;
}

/* The worker's fds that are channel memfds. */
static int memfds(pid_t pid)
{
    char dir[64], path[320], link[256];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
    if ((d = opendir(dir)) == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        ssize_t k;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((k = readlink(path, link, sizeof(link) - 1)) > 0) {
            link[k] = '\0';
            if (strstr(link, "memfd:shoal") != NULL)
                n++;
        }
    }
    closedir(d);
    return n;
}

/* The worker's cgroup directories: its own in each hierarchy it uses, and the instances' in
 * them. -1 when it has none (cgroups unavailable). */
static int cgroup_dirs(pid_t pid, int *hierarchies)
{
    static const char *const ctl[] = {"memory", "pids", "cpu", ""};
    char dir[256];
    struct dirent *e;
    int n = 0, h = 0;
    DIR *d;

    for (size_t i = 0; i < sizeof(ctl) / sizeof(ctl[0]); i++) {
        snprintf(dir, sizeof(dir), "/sys/fs/cgroup/%s%sshoal/w%d", ctl[i], ctl[i][0] ? "/" : "",
                 (int)pid);
        if ((d = opendir(dir)) == NULL)
            continue;
        h++;
        while ((e = readdir(d)) != NULL)
            if (e->d_type == DT_DIR && e->d_name[0] == 'i')
                n++;
        closedir(d);
    }
    if (hierarchies != NULL)
        *hierarchies = h;
    return h > 0 ? n : -1;
}

typedef struct {
    int procs, fds, memfds, cgroups;
} held_t;

static held_t held(void)
{
    held_t h = {descendants(worker()), fd_count(worker()), memfds(worker()),
                cgroup_dirs(worker(), NULL)};
    return h;
}

/* What the worker holds once it is quiet: the same three times in a row, 50 ms apart (a stem
 * whose fork is still being answered holds an extra fd for a moment). */
static held_t held_stable(void)
{
    held_t h = held(), prev;
    int same = 0;

    for (int i = 0; i < 60 && same < 2; i++) {
        usleep(50000);
        prev = h;
        h = held();
        same = memcmp(&prev, &h, sizeof(h)) == 0 ? same + 1 : 0;
    }
    return h;
}

/* warm/idle of fn's pool and the free stems, from GET /v1/workers. */
static void pool_state(const char *fn, int *warm, int *idle, int *stems)
{
    http_resp_t r;
    json_t *j, *w, *p;
    size_t i;

    *warm = *idle = *stems = -1;
    if (http_request(&C, "GET", "/v1/workers", NULL, 0, NULL, &r) < 0)
        return;
    j = json_loadb(r.body, r.len, 0, NULL);
    w = json_array_get(json_object_get(j, "workers"), 0);
    *stems = (int)json_integer_value(json_object_get(w, "stems"));
    json_array_foreach(json_object_get(w, "pools"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "function")) ?: "", fn) == 0) {
            *warm = (int)json_integer_value(json_object_get(p, "warm"));
            *idle = (int)json_integer_value(json_object_get(p, "idle"));
        }
    }
    json_decref(j);
    http_resp_free(&r);
}

/* Waits until fn's pool has `size` idle warm instances and the stems are back; returns the
 * milliseconds it took, or -1 after timeout_ms. */
static long wait_pool(const char *fn, int size, int timeout_ms)
{
    long long t0 = now_ms();
    int warm, idle, stems;

    do {
        pool_state(fn, &warm, &idle, &stems);
        if (warm == size && idle == size && stems == 2)
            return (long)(now_ms() - t0);
        usleep(10000);
    } while (now_ms() - t0 < timeout_ms);
    fprintf(stderr, "pool %s: warm %d idle %d stems %d after %d ms\n", fn, warm, idle, stems,
            timeout_ms);
    return -1;
}

/* Waits until the worker holds what it held before (a dead instance's fds and cgroups go when
 * its process is reaped, a moment after its replacement is ready). */
static void expect_nothing_left(const held_t *before, const char *what)
{
    long long t0 = now_ms();
    held_t now;

    do {
        now = held();
        if (now.procs == before->procs && now.fds == before->fds && now.memfds == before->memfds &&
            now.cgroups == before->cgroups)
            return;
        usleep(20000);
    } while (now_ms() - t0 < 3000);
    fprintf(stderr,
            "after %s: processes %d (before %d), fds %d (%d), memfds %d (%d), cgroups %d (%d)\n",
            what, now.procs, before->procs, now.fds, before->fds, now.memfds, before->memfds,
            now.cgroups, before->cgroups);
    assert_int_equal(now.procs, before->procs);
    assert_int_equal(now.fds, before->fds);
    assert_int_equal(now.memfds, before->memfds);
    assert_int_equal(now.cgroups, before->cgroups);
}

static int have_memory_cgroup(void)
{
    char dir[128];
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory/shoal/w%d", (int)worker());
    if (access(dir, F_OK) == 0)
        return 1;
    snprintf(dir, sizeof(dir), "/sys/fs/cgroup/shoal/w%d/cgroup.subtree_control", (int)worker());
    return access(dir, F_OK) == 0;
}

/* ---- faults ---- */

static void fault(const char *cmd, long status, const char *code, const char *text)
{
    held_t before;
    http_resp_t r;
    long ms;

    assert_true(wait_pool("faulty", 1, 3000) >= 0);
    before = held_stable();
    invoke("faulty", cmd, strlen(cmd), &r);
    expect_error(&r, status, code, text);
    assert_true(strlen(r.invocation_id) >= 8);
    http_resp_free(&r);
    /* Back to its size within a second, with nothing left of the dead instance. */
    ms = wait_pool("faulty", 1, 1000);
    assert_true(ms >= 0);
    expect_nothing_left(&before, cmd);
    /* And it serves. */
    invoke("faulty", "fine", 4, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    http_resp_free(&r);
    assert_int_equal(kill(worker(), 0), 0);
}

static void test_deploy_faulty(void **state)
{
    int h = 0;
    (void)state;

    assert_int_equal(deploy_src("faulty", FN_FAULTY, "timeout_ms=1500&memory_mb=64&min_warm=1"),
                     201);
    assert_true(wait_pool("faulty", 1, 5000) >= 0);
    /* One cgroup per instance and stem (min_warm 1 + 2 stems), in every hierarchy used. */
    if (cgroup_dirs(worker(), &h) < 0)
        fprintf(stderr, "note: this worker has no cgroups\n");
    else
        assert_int_equal(cgroup_dirs(worker(), NULL), 3 * h);
}

static void test_segfault(void **state)
{
    (void)state;
    fault("segv", 502, "function_crashed", "killed by signal 11 (SIGSEGV)");
}

static void test_abort(void **state)
{
    (void)state;
    /* Raised by the function itself: reported by the sandbox's handler (the stem is PID 1). */
    fault("abort", 502, "function_crashed", "killed by signal 6 (SIGABRT)");
}

static void test_loop_forever(void **state)
{
    (void)state;
    fault("spin", 504, "timeout", "timeout of 1500 ms");
}

static void test_sleep_forever(void **state)
{
    (void)state;
    fault("sleep", 504, "timeout", "timeout of 1500 ms");
}

static void test_out_of_memory(void **state)
{
    (void)state;
    if (!have_memory_cgroup()) {
        fprintf(stderr, "no memory cgroup on this machine: an unbounded allocation ends in "
                        "malloc failing (RLIMIT_AS), not in the OOM killer\n");
        skip();
    }
    fault("alloc", 502, "function_crashed", "ran out of memory: it exceeded its limit of 64 MB");
}

static void test_fork_bomb(void **state)
{
    (void)state;
    if (cgroup_dirs(worker(), NULL) < 0) {
        fprintf(stderr, "no cgroups: the bomb is bounded by RLIMIT_NPROC and ends in a plain "
                        "timeout\n");
        fault("forkbomb", 504, "timeout", "timeout of 1500 ms");
        return;
    }
    /* Bounded at 64 tasks, killed at its timeout with all its processes (its PID namespace
     * goes with it). */
    fault("forkbomb", 504, "timeout", "it reached its limit of 64 tasks");
}

static void test_exhaust_fds(void **state)
{
    (void)state;
    /* The limit is the function's own problem: it sees EMFILE near 1024 and reports it. */
    fault("fds", 502, "function_error", "Too many open files");
}

static void test_output_too_large(void **state)
{
    (void)state;
    fault("bigout", 413, "too_large", "exceeds the limit");
}

static void test_log_flood(void **state)
{
    char path[320];
    struct stat a, b;
    http_resp_t r;
    held_t before;
    char *log;
    size_t len;
    (void)state;

    snprintf(path, sizeof(path), "%s/worker0.log", C.home);
    assert_true(wait_pool("faulty", 1, 3000) >= 0);
    before = held_stable();
    assert_int_equal(stat(path, &a), 0);
    /* 25 MB through shoal_log and 25 MB each to stdout and stderr. */
    invoke("faulty", "log", 3, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "logged");
    http_resp_free(&r);
    usleep(200000);
    assert_int_equal(stat(path, &b), 0);
    /* The worker's log took at most the 10 MB limit (with its line prefixes), and said so;
     * stdout and stderr of a function go nowhere. */
    fprintf(stderr, "worker log grew by %lld bytes\n", (long long)(b.st_size - a.st_size));
    assert_true(b.st_size - a.st_size > (9 << 20));
    assert_true(b.st_size - a.st_size < (12 << 20));
    assert_non_null(log = read_whole(path, &len));
    /* Whichever limit comes first says so: the runtime's (10 MB of text) or the worker's (10 MB
     * written, its line prefixes included; with these 1 kB lines, the worker's). */
    assert_true(strstr(log + a.st_size, "log limit of 10 MB per invocation reached") != NULL ||
                strstr(log + a.st_size, "[log cut off: an invocation's logs") != NULL);
    free(log);
    assert_true(wait_pool("faulty", 1, 1000) >= 0);
    expect_nothing_left(&before, "log");

    /* Empty lines cost the function nothing of its budget, but each is a line with the worker's
     * prefix (~40 bytes): 400000 of them would be 16 MB. The worker counts what it writes. */
    assert_int_equal(stat(path, &a), 0);
    invoke("faulty", "logempty", 8, &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    usleep(200000);
    assert_int_equal(stat(path, &b), 0);
    fprintf(stderr, "worker log grew by %lld bytes for 400000 empty lines\n",
            (long long)(b.st_size - a.st_size));
    assert_true(b.st_size - a.st_size > (9 << 20));
    assert_true(b.st_size - a.st_size <= (10 << 20) + 4096);
    assert_non_null(log = read_whole(path, &len));
    assert_non_null(strstr(log + a.st_size, "[log cut off: an invocation's logs"));
    free(log);
}

/* ---- escapes ---- */

static void test_escape_attempts(void **state)
{
    static const char *const attempts[] = {"open_etc_passwd",
                                           "open_home",
                                           "open_home_db",
                                           "open_other_artifact",
                                           "socket_inet",
                                           "socket_unix",
                                           "socketpair",
                                           "io_uring_setup",
                                           "ptrace_attach_worker",
                                           "ptrace_traceme",
                                           "kill_parent",
                                           "kill_worker",
                                           "kill_everyone",
                                           "mount_tmpfs",
                                           "umount_proc",
                                           "unshare_user",
                                           "unshare_mount",
                                           "execve_sh",
                                           "execve_usr_bin_sh",
                                           "setuid_root",
                                           "chroot",
                                           "bpf",
                                           "perf_event_open",
                                           "keyctl",
                                           "userfaultfd",
                                           "open_worker_mem",
                                           "open_worker_fds",
                                           "open_other_processes_fds",
                                           "shrink_channel",
                                           "open_dev_mem",
                                           "open_sysrq",
                                           "open_sys",
                                           "create_in_root",
                                           "write_usr"};
    char in[2048], art[1024], so[512], line[128], *report;
    http_resp_t r;
    (void)state;

    /* Another function's artifact in the worker's cache. */
    snprintf(so, sizeof(so), "%s/examples/hello.so", C.build);
    assert_true(deploy_file(&C, "hello", so, NULL, &r) / 100 == 2);
    {
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        snprintf(art, sizeof(art), "%s/worker0/artifacts/%s.so", C.home,
                 json_string_value(json_object_get(j, "sha256")));
        json_decref(j);
    }
    http_resp_free(&r);
    invoke("hello", "x", 1, &r); /* now it is cached */
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
    assert_int_equal(access(art, R_OK), 0);

    assert_int_equal(deploy_src("escape", FN_ESCAPE, NULL), 201);
    snprintf(in, sizeof(in), "home=%s\nwpid=%d\nart=%s\n", C.home, (int)worker(), art);
    invoke("escape", in, strlen(in), &r);
    if (r.status != 200)
        fprintf(stderr, "escape: %ld %s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    fprintf(stderr, "%s", r.body);
    /* Every attempt is reported, and failed (returned -1). */
    assert_non_null(report = malloc(r.len + 2));
    report[0] = '\n';
    memcpy(report + 1, r.body, r.len + 1);
    for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
        long rv;
        int err;
        char *p;
        snprintf(line, sizeof(line), "\n%s ", attempts[i]);
        if ((p = strstr(report, line)) == NULL)
            fprintf(stderr, "no report of %s\n", attempts[i]);
        assert_non_null(p);
        assert_int_equal(sscanf(p + strlen(line), "%ld %d", &rv, &err), 2);
        if (rv != -1)
            fprintf(stderr, "%s succeeded (%ld)\n", attempts[i], rv);
        assert_int_equal(rv, -1);
    }
    free(report);
    assert_non_null(strstr(r.body, "found_channel 0 0"));
    http_resp_free(&r);
    /* The worker is alive and well. */
    assert_int_equal(kill(worker(), 0), 0);
    invoke("escape", in, strlen(in), &r);
    assert_int_equal(r.status, 200);
    http_resp_free(&r);
}

/* ---- the video example in the box ---- */

static void test_video_in_the_box(void **state)
{
    char clip[320], cmd[1024], so[512];
    http_resp_t r;
    size_t len;
    char *body;
    (void)state;

    if (system("command -v ffmpeg >/dev/null 2>&1") != 0) {
        fprintf(stderr, "no ffmpeg to make a clip\n");
        skip();
    }
    snprintf(clip, sizeof(clip), "%s/clip.mp4", C.home);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -loglevel error -y -f lavfi -i testsrc2=size=160x120:rate=10 -frames:v 12 "
             "-f mp4 '%s'",
             clip);
    assert_int_equal(system(cmd), 0);
    snprintf(so, sizeof(so), "%s/examples/video-abr.so", C.build);
    assert_int_equal(deploy_file(&C, "video-abr", so, "memory_mb=512", NULL), 201);
    assert_non_null(body = read_whole(clip, &len));
    invoke("video-abr", body, len, &r);
    free(body);
    if (r.status != 200)
        fprintf(stderr, "video-abr: %ld %.500s\n", r.status, r.body);
    assert_int_equal(r.status, 200);
    /* A tar: "ustar" at offset 257 of its first header, which is the manifest's. */
    assert_true(r.len > 1024);
    assert_memory_equal(r.body + 257, "ustar", 5);
    assert_non_null(strstr(r.body, "manifest.json"));
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_faulty),
        cmocka_unit_test(test_segfault),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_loop_forever),
        cmocka_unit_test(test_sleep_forever),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_fork_bomb),
        cmocka_unit_test(test_exhaust_fds),
        cmocka_unit_test(test_output_too_large),
        cmocka_unit_test(test_log_flood),
        cmocka_unit_test(test_escape_attempts),
        cmocka_unit_test(test_video_in_the_box),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
