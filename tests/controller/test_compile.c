/* Tests controller/compile.c: classification of uploads; a successful compile (checked to be a
 * valid shared object) against the home's shoal.h; diagnostics for a broken source, named after
 * the function and free of temporary paths; the 64 KiB diagnostics bound; the wall-clock limit
 * killing the whole process group; cancellation; a missing compiler; the jail (host files, the
 * controller's token, /proc/self/environ and .incbin out of reach, while what the view holds
 * stays usable), as root and as an unprivileged user; a kernel that refuses the namespaces
 * (no unconfined fallback); and that no temporary directory is left behind in any case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "controller/compile.h"
#include "controller/elf.h"

static char home[64];
static shoal_compile_opts_t opts;

static const char HELLO[] =
    "#include <shoal.h>\n"
    "int shoal_main(shoal_ctx *ctx) { return shoal_output(ctx, \"hi\", 2); }\n";

/* Number of entries in <home>/tmp (compile directories left behind). */
static int tmp_entries(void)
{
    char path[128];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "%s/tmp", home);
    if ((d = opendir(path)) == NULL)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Whether pid runs: a killed process may linger as a zombie until init reaps it. */
static int alive(pid_t pid)
{
    char path[64], stat[512];
    FILE *f;
    int r = 0;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    if (fgets(stat, sizeof(stat), f) != NULL) {
        const char *close = strrchr(stat, ')');
        r = close != NULL && close[1] == ' ' && close[2] != 'Z' && close[2] != 'X';
    }
    fclose(f);
    return r;
}

static int setup(void **state)
{
    char path[128];
    static const char HEADER[] = "typedef struct shoal_ctx shoal_ctx;\n"
                                 "int shoal_output(shoal_ctx *, const void *, unsigned long);\n";
    (void)state;
    snprintf(home, sizeof(home), "/tmp/shoal-test-cc-XXXXXX");
    if (mkdtemp(home) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/include", home);
    shoal_util_mkdir_p(path, 0755);
    snprintf(path, sizeof(path), "%s/include/shoal.h", home);
    if (shoal_util_write_file_durable(path, HEADER, sizeof(HEADER) - 1, 0644) < 0)
        return -1;
    memset(&opts, 0, sizeof(opts));
    opts.home = home;
    return shoal_compile_clean(home);
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(shoal_compile_classify("\177ELF\2\1", 6), SHOAL_ARTIFACT_ELF);
    assert_int_equal(shoal_compile_classify("\177ELF", 4), SHOAL_ARTIFACT_ELF);
    assert_int_equal(shoal_compile_classify(HELLO, strlen(HELLO)), SHOAL_ARTIFACT_SOURCE);
    assert_int_equal(shoal_compile_classify("int x;\r\n\f\v\t// caf\xc3\xa9\n", 20),
                     SHOAL_ARTIFACT_SOURCE);
    assert_int_equal(shoal_compile_classify("int x;\0", 7), SHOAL_ARTIFACT_UNKNOWN);
    assert_int_equal(shoal_compile_classify("PK\3\4zip", 7), SHOAL_ARTIFACT_UNKNOWN);
    assert_int_equal(shoal_compile_classify("abc\x7f", 4), SHOAL_ARTIFACT_UNKNOWN);
    assert_int_equal(shoal_compile_classify("\177EL", 3), SHOAL_ARTIFACT_UNKNOWN);
    assert_int_equal(shoal_compile_classify("", 0), SHOAL_ARTIFACT_UNKNOWN);
}

static void test_compile_success(void **state)
{
    void *so;
    char *diag;
    size_t so_len, diag_len;
    char err[128];
    (void)state;

    assert_int_equal(
        shoal_compile_run(&opts, "hello", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len), 0);
    assert_null(diag);
    assert_true(so_len > 1000);
    assert_int_equal(shoal_elf_validate(so, so_len, err, sizeof(err)), 0);
    free(so);
    assert_int_equal(tmp_entries(), 0);
}

static void test_compile_error(void **state)
{
    static const char BAD[] = "#include <shoal.h>\n"
                              "int shoal_main(shoal_ctx *ctx) { return not_declared + 1; }\n";
    void *so;
    char *diag;
    size_t so_len, diag_len;
    (void)state;

    assert_int_equal(
        shoal_compile_run(&opts, "broken", BAD, strlen(BAD), &so, &so_len, &diag, &diag_len),
        -ENOEXEC);
    assert_null(so);
    assert_non_null(diag);
    assert_int_equal(strlen(diag), diag_len);
    assert_non_null(strstr(diag, "broken.c:2:"));
    assert_non_null(strstr(diag, "not_declared"));
    assert_null(strstr(diag, "/tmp/cc-")); /* no temporary path in what the user sees */
    free(diag);
    assert_int_equal(tmp_entries(), 0);
}

static void test_diagnostics_are_bounded(void **state)
{
    void *so;
    char *diag, *src;
    size_t so_len, diag_len, len = 0, cap = 4000 * 40;
    (void)state;

    src = malloc(cap);
    for (int i = 0; i < 4000; i++)
        len += (size_t)snprintf(src + len, cap - len, "int v%d = undefined_%d;\n", i, i);
    assert_int_equal(shoal_compile_run(&opts, "noisy", src, len, &so, &so_len, &diag, &diag_len),
                     -ENOEXEC);
    assert_true(diag_len <= SHOAL_COMPILE_DIAG_MAX);
    assert_true(diag_len > SHOAL_COMPILE_DIAG_MAX / 2);
    assert_non_null(strstr(diag, "[diagnostics truncated]"));
    free(diag);
    free(src);
}

/* Processes whose command line is exactly "sleep <arg>". */
static int count_sleepers(const char *arg)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        char path[300], cmd[128];
        FILE *f;
        size_t len;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
        if ((f = fopen(path, "r")) == NULL)
            continue;
        len = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        cmd[len] = '\0';
        if (len > 6 && strcmp(cmd, "sleep") == 0 && strcmp(cmd + 6, arg) == 0 &&
            alive((pid_t)atoi(de->d_name)))
            n++;
    }
    closedir(d);
    return n;
}

/* A "compiler" that hangs, with a child of its own: the wall-clock limit kills both. The script
 * is bound into the jail as /cc and says which pid it has there (1: its own PID namespace). */
static void test_wall_clock_limit(void **state)
{
    char script[128];
    FILE *f;
    void *so;
    char *diag;
    size_t so_len, diag_len;
    uint64_t t0;
    shoal_compile_opts_t o = opts;
    (void)state;

    snprintf(script, sizeof(script), "%s/slowcc", home);
    f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\necho \"started as pid $$\" >&2\nsleep 31.75 &\nwait\n");
    fclose(f);
    chmod(script, 0755);
    o.cc = script;
    o.wall_ms = 300;
    t0 = shoal_util_now_ms();
    assert_int_equal(
        shoal_compile_run(&o, "slow", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len),
        -ENOEXEC);
    assert_true(shoal_util_now_ms() - t0 < 3000);
    assert_non_null(strstr(diag, "started as pid 1\n"));
    assert_non_null(strstr(diag, "exceeded the 300 ms time limit"));
    free(diag);
    /* The grandchild was in the process group (and the PID namespace) and is gone too. */
    for (int i = 0; i < 100 && count_sleepers("31.75") > 0; i++)
        usleep(10000);
    assert_int_equal(count_sleepers("31.75"), 0);
    assert_int_equal(tmp_entries(), 0);

    /* Cancellation (controller shutdown) ends a compile the same way. */
    atomic_int cancel;
    atomic_init(&cancel, 1);
    o.wall_ms = 0;
    o.cancel = &cancel;
    t0 = shoal_util_now_ms();
    assert_int_equal(
        shoal_compile_run(&o, "slow", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len),
        -ENOEXEC);
    assert_true(shoal_util_now_ms() - t0 < 3000);
    assert_non_null(strstr(diag, "cancelled"));
    free(diag);
}

static void test_missing_compiler(void **state)
{
    void *so;
    char *diag;
    size_t so_len, diag_len;
    shoal_compile_opts_t o = opts;
    (void)state;

    o.cc = "/nonexistent/cc";
    assert_int_equal(
        shoal_compile_run(&o, "x", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len), -ENOEXEC);
    assert_non_null(strstr(diag, "cannot run the compiler"));
    free(diag);
    assert_int_equal(
        shoal_compile_run(&opts, "Bad Name", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len),
        -EINVAL);
}

#define SECRET "shoal-secret-7f3a9c1e"

/* Compiles src as "spy": 0 when it fails without the secret anywhere in the diagnostics (and,
 * when want is not NULL, with want in them), else 1 with the reason printed. No cmocka asserts:
 * this also runs in a forked child. */
static int refused(const shoal_compile_opts_t *o, const char *src, const char *want)
{
    void *so = NULL;
    char *diag = NULL;
    size_t so_len, diag_len;
    int err = shoal_compile_run(o, "spy", src, strlen(src), &so, &so_len, &diag, &diag_len), bad;

    if (err != -ENOEXEC) {
        fprintf(stderr, "source\n%s\ngave %d instead of a compile error\n", src, err);
        free(so);
        return 1;
    }
    bad = diag == NULL || strstr(diag, SECRET) != NULL || (want && !strstr(diag, want));
    if (bad)
        fprintf(stderr, "source\n%s\ngave the diagnostics\n%s\n", src, diag ? diag : "(none)");
    free(diag);
    return bad;
}

/* The attacks of a source on the files the controller can read, and the control that shows they
 * would have worked: the same construct on a file inside the view. Returns the failures. */
static int check_jail(const shoal_compile_opts_t *o)
{
    static const char NOENT[] = "No such file or directory";
    char src[512], token[160];
    char *diag = NULL;
    void *so = NULL;
    size_t so_len, diag_len;
    int bad = 0;

    snprintf(token, sizeof(token), "%s/token", o->home);
    /* Host files outside the view. */
    bad += refused(o, "#include \"/etc/passwd\"\n", NOENT);
    bad += refused(o, "#include \"/etc/hostname\"\n", NOENT);
    bad += refused(o, "#include \"/root/.bashrc\"\n", NOENT);
    /* The controller's own secret, by absolute path, relative to the compile directory, and
     * through its process (its environment holds SHOAL_TOKEN here). */
    snprintf(src, sizeof(src), "#include \"%s\"\n", token);
    bad += refused(o, src, NOENT);
    bad += refused(o, "#include \"../../token\"\n", NOENT);
    bad += refused(o, "#include \"../../../token\"\n", NOENT);
    bad += refused(o, "#include \"/proc/self/environ\"\n", NOENT);
    bad += refused(o, "#include \"/proc/1/environ\"\n", NOENT);
    /* The assembler reads files too. */
    snprintf(src, sizeof(src),
             "__asm__(\".section .rodata\\n.incbin \\\"%s\\\"\\n\");\n"
             "int shoal_main(void *c) { (void)c; return 0; }\n",
             token);
    bad += refused(o, src, "file not found");
    bad += refused(o, "__asm__(\".incbin \\\"/proc/self/environ\\\"\");\n", "file not found");
    /* Control: the same .incbin of a file in the view works and lands in the object. */
    static const char OK[] =
        "__asm__(\".section .rodata\\n.incbin \\\"/include/shoal.h\\\"\\n\");\n"
        "int shoal_main(void *c) { (void)c; return 0; }\n";
    if (shoal_compile_run(o, "ok", OK, strlen(OK), &so, &so_len, &diag, &diag_len) != 0 ||
        memmem(so, so_len, "shoal_output", 12) == NULL) {
        fprintf(stderr, "the control compile failed: %s\n", diag ? diag : "");
        bad++;
    }
    free(so);
    free(diag);
    if (tmp_entries() != 0) {
        fprintf(stderr, "compile directories left behind\n");
        bad++;
    }
    return bad;
}

static void test_jail(void **state)
{
    char token[160];
    (void)state;

    snprintf(token, sizeof(token), "%s/token", home);
    assert_int_equal(shoal_util_write_file_durable(token, SECRET "\n", strlen(SECRET) + 1, 0600),
                     0);
    assert_int_equal(setenv("SHOAL_TOKEN", SECRET, 1), 0);
    assert_int_equal(check_jail(&opts), 0);
    unsetenv("SHOAL_TOKEN");
}

/* The same as an unprivileged user (CI runs as root; a developer's controller does not): a child
 * process becomes uid 65534 and compiles in a home of its own. Skipped when not root. */
static void test_jail_unprivileged(void **state)
{
    char cmd[200];
    int status;
    pid_t pid;
    (void)state;

    if (geteuid() != 0)
        skip();
    snprintf(cmd, sizeof(cmd), "chown -R 65534:65534 %s", home);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(chmod(home, 0700), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char token[160];
        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
            _exit(2);
        /* Changing uid made us non-dumpable, which makes /proc/<pid>/uid_map of our children
         * root's; a controller started as the user (exec) is dumpable. */
        prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        snprintf(token, sizeof(token), "%s/token", home);
        if (shoal_util_write_file_durable(token, SECRET "\n", strlen(SECRET) + 1, 0600) < 0)
            _exit(3);
        setenv("SHOAL_TOKEN", SECRET, 1);
        void *so;
        char *diag;
        size_t so_len, diag_len;
        int err =
            shoal_compile_run(&opts, "hello", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len);
        if (err == -EOPNOTSUPP)
            _exit(77); /* this kernel refuses unprivileged user namespaces */
        if (err != 0)
            _exit(4);
        free(so);
        _exit(check_jail(&opts) == 0 ? 0 : 5);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    snprintf(cmd, sizeof(cmd), "chown -R 0:0 %s", home);
    assert_int_equal(system(cmd), 0);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A kernel that refuses the namespaces (here: a seccomp filter that fails clone with
 * CLONE_NEWUSER, as a kernel without user namespaces would): the compile fails with -EOPNOTSUPP
 * and nothing is compiled unconfined. In a child, because the filter cannot be removed. */
static void test_jail_refused(void **state)
{
    int status;
    pid_t pid;
    (void)state;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (ctx == NULL ||
            seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER)) < 0 ||
            prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_load(ctx) < 0)
            _exit(2);
        void *so = NULL;
        char *diag = NULL;
        size_t so_len, diag_len;
        int err =
            shoal_compile_run(&opts, "hello", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len);
        _exit(err == -EOPNOTSUPP && so == NULL && diag == NULL && tmp_entries() == 0 ? 0 : 1);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_clean(void **state)
{
    char path[160];
    (void)state;
    snprintf(path, sizeof(path), "%s/tmp/cc-leftover/sub", home);
    assert_int_equal(shoal_util_mkdir_p(path, 0700), 0);
    assert_true(tmp_entries() > 0);
    assert_int_equal(shoal_compile_clean(home), 0);
    assert_int_equal(tmp_entries(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_compile_success),
        cmocka_unit_test(test_compile_error),
        cmocka_unit_test(test_diagnostics_are_bounded),
        cmocka_unit_test(test_wall_clock_limit),
        cmocka_unit_test(test_missing_compiler),
        cmocka_unit_test(test_jail),
        cmocka_unit_test(test_jail_unprivileged),
        cmocka_unit_test(test_jail_refused),
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
