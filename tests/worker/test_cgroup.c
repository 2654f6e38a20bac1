/* Tests worker/cgroup.c: choosing hierarchies from mount tables (v1 split and combined, v2, a v2
 * without memory, none), and against the kernel's own cgroups: the layout, the task, CPU and
 * memory limits written, an OOM kill and a refused fork counted, removal of every directory
 * (instances, the worker's, the parent) and of a dead worker's leftovers. The kernel part skips,
 * with the reason, where no cgroup hierarchy with these controllers can be used. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/cgroup.h"

static char tmpdir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/shoal-cgtest.XXXXXX");
    return mkdtemp(tmpdir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_pick_v1(void **state)
{
    const char *mi =
        "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
        "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
        "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
        "99 31 0:32 / /elsewhere/memory rw,relatime - cgroup cgroup rw,memory\n";
    shoal_cgroup_mount_t m[SHOAL_CGROUP_MAX];
    (void)state;

    /* The unified mount cannot be read here (no cgroup.controllers): v1 it is. */
    assert_int_equal(shoal_cgroup_pick(mi, strlen(mi), m, SHOAL_CGROUP_MAX), 3);
    assert_string_equal(m[0].path, "/sys/fs/cgroup/cpu");
    assert_int_equal(m[0].controls, SHOAL_CGROUP_CPU);
    assert_string_equal(m[1].path, "/sys/fs/cgroup/memory");
    assert_int_equal(m[1].controls, SHOAL_CGROUP_MEMORY);
    assert_string_equal(m[2].path, "/sys/fs/cgroup/pids");
    assert_int_equal(m[2].version, 1);
}

static void test_pick_v1_combined(void **state)
{
    const char *mi = "1 0 0:1 / /cg/cpu\\040and\\040acct rw - cgroup cgroup rw,cpu,cpuacct\n"
                     "2 0 0:2 / /cg/mem rw - cgroup none rw,memory,pids\n";
    shoal_cgroup_mount_t m[SHOAL_CGROUP_MAX];
    (void)state;

    assert_int_equal(shoal_cgroup_pick(mi, strlen(mi), m, SHOAL_CGROUP_MAX), 2);
    assert_string_equal(m[0].path, "/cg/cpu and acct");
    assert_int_equal(m[0].controls, SHOAL_CGROUP_CPU);
    assert_int_equal(m[1].controls, SHOAL_CGROUP_MEMORY | SHOAL_CGROUP_PIDS);
}

static void write_controllers(const char *dir, const char *list)
{
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", tmpdir, dir);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/%s/cgroup.controllers", tmpdir, dir);
    assert_non_null(f = fopen(path, "w"));
    fputs(list, f);
    fclose(f);
}

static void test_pick_v2(void **state)
{
    shoal_cgroup_mount_t m[SHOAL_CGROUP_MAX];
    char mi[1024];
    (void)state;

    /* Pure v2 with the controllers: one hierarchy. */
    write_controllers("full", "cpuset cpu io memory hugetlb pids rdma\n");
    snprintf(mi, sizeof(mi), "30 1 0:26 / %s/full rw - cgroup2 cgroup2 rw,nsdelegate\n", tmpdir);
    assert_int_equal(shoal_cgroup_pick(mi, strlen(mi), m, SHOAL_CGROUP_MAX), 1);
    assert_int_equal(m[0].version, 2);
    assert_int_equal(m[0].controls, SHOAL_CGROUP_MEMORY | SHOAL_CGROUP_PIDS | SHOAL_CGROUP_CPU);
    /* Hybrid: the unified hierarchy has none of them (they are bound to v1): v1. */
    write_controllers("hybrid", "hugetlb\n");
    snprintf(mi, sizeof(mi),
             "41 31 0:38 / %s/hybrid rw - cgroup2 cgroup2 rw\n"
             "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
             tmpdir);
    assert_int_equal(shoal_cgroup_pick(mi, strlen(mi), m, SHOAL_CGROUP_MAX), 1);
    assert_int_equal(m[0].version, 1);
    /* v2 with pids only and no v1: better than nothing. */
    write_controllers("partial", "pids\n");
    snprintf(mi, sizeof(mi), "41 31 0:38 / %s/partial rw - cgroup2 cgroup2 rw\n", tmpdir);
    assert_int_equal(shoal_cgroup_pick(mi, strlen(mi), m, SHOAL_CGROUP_MAX), 1);
    assert_int_equal(m[0].controls, SHOAL_CGROUP_PIDS);
    /* Nothing. */
    snprintf(mi, sizeof(mi), "22 27 0:21 / /proc rw,relatime - proc proc rw\nbroken line\n");
    assert_int_equal(shoal_cgroup_pick(mi, strlen(mi), m, SHOAL_CGROUP_MAX), 0);
    assert_int_equal(shoal_cgroup_pick("", 0, m, SHOAL_CGROUP_MAX), 0);
}

/* ---- against the kernel ---- */

static shoal_cgroup_t *open_real(unsigned long id, const char *parent)
{
    shoal_cgroup_opts_t o = {.parent = parent, .tasks = 8, .cpu_percent = 50, .id = id};
    char why[512];
    shoal_cgroup_t *cg = shoal_cgroup_open(&o, why, sizeof(why));

    if (cg == NULL)
        fprintf(stderr, "cgroups cannot be used here: %s\n", why);
    return cg;
}

/* The directory of instance id in the hierarchy of dir fd k. */
static int inst_dir(shoal_cgroup_t *cg, int k, uint64_t id)
{
    int fds[SHOAL_CGROUP_MAX];
    char name[32];

    assert_true(k < shoal_cgroup_dirs(cg, fds, SHOAL_CGROUP_MAX));
    snprintf(name, sizeof(name), "i%llu", (unsigned long long)id);
    return openat(fds[k], name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int read_int_at(int dirfd, const char *file, long long *v)
{
    char buf[64];
    int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    *v = strtoll(buf, NULL, 10);
    return 0;
}

/* Starts a child in instance id's groups (as the zygote would put a stem there), running fn. */
static pid_t child_in(shoal_cgroup_t *cg, uint64_t id, void (*fn)(void))
{
    int fds[SHOAL_CGROUP_MAX], n = shoal_cgroup_dirs(cg, fds, SHOAL_CGROUP_MAX), go[2];
    char path[64], pid_s[16];
    pid_t pid;
    char c;

    assert_int_equal(pipe(go), 0);
    if ((pid = fork()) == 0) {
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        fn();
        _exit(0);
    }
    close(go[0]);
    snprintf(path, sizeof(path), "i%llu/cgroup.procs", (unsigned long long)id);
    snprintf(pid_s, sizeof(pid_s), "%d", (int)pid);
    for (int k = 0; k < n; k++) {
        int fd = openat(fds[k], path, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, pid_s, strlen(pid_s)), (ssize_t)strlen(pid_s));
        close(fd);
    }
    assert_int_equal(write(go[1], "g", 1), 1);
    close(go[1]);
    return pid;
}

static void hog_memory(void)
{
    /* Touches 64 MiB, four times the limit set below. */
    for (int i = 0; i < 64; i++) {
        char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            _exit(4);
        memset(p, 1, 1 << 20);
    }
    _exit(5);
}

static void fork_many(void)
{
    int refused = 0;

    setpgid(0, 0); /* kill(0) below must reach this one's children only */
    for (int i = 0; i < 20; i++) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0 && errno == EAGAIN)
            refused++;
    }
    kill(0, SIGKILL); /* the children (and this one) go */
    _exit(refused > 0 ? 0 : 6);
}

static void test_real_limits_and_cleanup(void **state)
{
    char parent[64], path[256];
    shoal_cgroup_t *cg;
    long long v;
    int fd, st, k, n, fds[SHOAL_CGROUP_MAX], mem = -1, pids = -1;
    pid_t pid;
    (void)state;

    snprintf(parent, sizeof(parent), "shoal-test-%d", (int)getpid());
    if ((cg = open_real((unsigned long)getpid(), parent)) == NULL)
        skip();
    n = shoal_cgroup_dirs(cg, fds, SHOAL_CGROUP_MAX);
    assert_true(n >= 1);
    assert_int_equal(shoal_cgroup_create(cg, 1), 0);
    assert_int_equal(shoal_cgroup_create(cg, 2), 0);
    /* Find which dir holds which controller by its files. */
    for (k = 0; k < n; k++) {
        assert_true((fd = inst_dir(cg, k, 1)) >= 0);
        if (faccessat(fd, "pids.max", F_OK, 0) == 0) {
            assert_int_equal(read_int_at(fd, "pids.max", &v), 0);
            assert_int_equal(v, 8);
            pids = k;
        }
        if (faccessat(fd, "memory.limit_in_bytes", F_OK, 0) == 0 ||
            faccessat(fd, "memory.max", F_OK, 0) == 0)
            mem = k;
        if (faccessat(fd, "cpu.cfs_quota_us", F_OK, 0) == 0) {
            assert_int_equal(read_int_at(fd, "cpu.cfs_quota_us", &v), 0);
            assert_int_equal(v, 50000);
        }
        close(fd);
    }
    if (mem >= 0) {
        assert_int_equal(shoal_cgroup_set_memory(cg, 1, 16 << 20), 0);
        assert_true((fd = inst_dir(cg, mem, 1)) >= 0);
        assert_int_equal(
            read_int_at(fd, shoal_cgroup_version(cg) == 1 ? "memory.limit_in_bytes" : "memory.max",
                        &v),
            0);
        assert_int_equal(v, 16 << 20);
        close(fd);
        /* An instance that outgrows its limit: the OOM killer ends it, and the group says so. */
        assert_int_equal(shoal_cgroup_oom_kills(cg, 1), 0);
        pid = child_in(cg, 1, hog_memory);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        assert_true(shoal_cgroup_oom_kills(cg, 1) >= 1);
    } else {
        fprintf(stderr, "no memory controller: OOM part skipped\n");
    }
    if (pids >= 0) {
        assert_int_equal(shoal_cgroup_task_limit_hits(cg, 2), 0);
        pid = child_in(cg, 2, fork_many);
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0));
        assert_true(shoal_cgroup_task_limit_hits(cg, 2) >= 1);
    }
    /* Removal: instance 1 is empty; instance 2's forked children may still be exiting, which
     * the pending list covers. */
    shoal_cgroup_remove(cg, 1);
    shoal_cgroup_remove(cg, 2);
    for (int i = 0; i < 200 && shoal_cgroup_pending(cg) > 0; i++) {
        usleep(10000);
        shoal_cgroup_remove(cg, 999); /* retries the pending ones */
    }
    assert_int_equal(shoal_cgroup_pending(cg), 0);
    for (k = 0; k < n; k++) {
        assert_int_equal(inst_dir(cg, k, 1), -1);
        assert_int_equal(inst_dir(cg, k, 2), -1);
    }
    /* A directory left behind by the worker is removed at close, with the worker's and the
     * parent. */
    assert_int_equal(shoal_cgroup_create(cg, 3), 0);
    shoal_cgroup_close(cg);
    for (const char *const *c = (const char *const[]){"memory", "pids", "cpu", NULL}; *c; c++) {
        snprintf(path, sizeof(path), "/sys/fs/cgroup/%s/%s", *c, parent);
        assert_int_equal(access(path, F_OK), -1);
    }
    snprintf(path, sizeof(path), "/sys/fs/cgroup/%s", parent);
    assert_int_equal(access(path, F_OK), -1);
}

static void test_leftovers_of_a_dead_worker(void **state)
{
    shoal_cgroup_mount_t m[SHOAL_CGROUP_MAX];
    char parent[64], path[1200], mi[16384];
    shoal_cgroup_t *cg;
    ssize_t len;
    pid_t dead;
    int fd, n;
    (void)state;

    snprintf(parent, sizeof(parent), "shoal-test-%d", (int)getpid());
    if ((cg = open_real((unsigned long)getpid(), parent)) == NULL)
        skip();
    /* What a worker killed with SIGKILL leaves: its directory and an instance's, under a pid
     * that is surely gone (a reaped child's). */
    if ((dead = fork()) == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    assert_true((fd = open("/proc/self/mountinfo", O_RDONLY)) >= 0);
    len = read(fd, mi, sizeof(mi));
    close(fd);
    assert_true(len > 0);
    n = shoal_cgroup_pick(mi, (size_t)len, m, SHOAL_CGROUP_MAX);
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%s/w%d", m[k].path, parent, (int)dead);
        assert_int_equal(mkdir(path, 0755), 0);
        snprintf(path, sizeof(path), "%s/%s/w%d/i7", m[k].path, parent, (int)dead);
        assert_int_equal(mkdir(path, 0755), 0);
    }
    shoal_cgroup_close(cg); /* the parent stays: the dead worker's directory is in it */
    /* The next worker to start removes them. */
    assert_non_null(cg = open_real((unsigned long)getpid(), parent));
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%s/w%d", m[k].path, parent, (int)dead);
        assert_int_equal(access(path, F_OK), -1);
    }
    shoal_cgroup_close(cg);
    for (int k = 0; k < n; k++) {
        snprintf(path, sizeof(path), "%s/%s", m[k].path, parent);
        assert_int_equal(access(path, F_OK), -1);
    }
}

static void test_bad_parent(void **state)
{
    shoal_cgroup_opts_t o = {.parent = "../escape", .tasks = 8, .id = 1};
    char why[256];
    (void)state;

    assert_null(shoal_cgroup_open(&o, why, sizeof(why)));
    assert_non_null(strstr(why, "parent"));
    o.parent = "/abs";
    assert_null(shoal_cgroup_open(&o, why, sizeof(why)));
    assert_null(shoal_cgroup_open(
        &(shoal_cgroup_opts_t){.parent = "x", .mountinfo = "/nonexistent"}, why, sizeof(why)));
    assert_non_null(strstr(why, "/nonexistent"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_v1),
        cmocka_unit_test(test_pick_v1_combined),
        cmocka_unit_test(test_pick_v2),
        cmocka_unit_test(test_real_limits_and_cleanup),
        cmocka_unit_test(test_leftovers_of_a_dead_worker),
        cmocka_unit_test(test_bad_parent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
