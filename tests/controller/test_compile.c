/* Tests controller/compile.c: classification of uploads; a successful compile (checked to be a
 * valid shared object) against the home's shoal.h; diagnostics for a broken source, named after
 * the function and free of temporary paths; the 64 KiB diagnostics bound; the wall-clock limit
 * killing the whole process group; cancellation; a missing compiler; and that no temporary
 * directory is left behind in any case. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
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

/* A "compiler" that hangs, with a child of its own: the wall-clock limit kills both. */
static void test_wall_clock_limit(void **state)
{
    char script[128], pidfile[128];
    FILE *f;
    void *so;
    char *diag;
    size_t so_len, diag_len;
    uint64_t t0;
    shoal_compile_opts_t o = opts;
    (void)state;

    snprintf(script, sizeof(script), "%s/slowcc", home);
    snprintf(pidfile, sizeof(pidfile), "%s/child.pid", home);
    f = fopen(script, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\nsleep 30 &\necho $! > %s\nwait\n", pidfile);
    fclose(f);
    chmod(script, 0755);
    o.cc = script;
    o.wall_ms = 300;
    t0 = shoal_util_now_ms();
    assert_int_equal(
        shoal_compile_run(&o, "slow", HELLO, strlen(HELLO), &so, &so_len, &diag, &diag_len),
        -ENOEXEC);
    assert_true(shoal_util_now_ms() - t0 < 3000);
    assert_non_null(strstr(diag, "exceeded the 300 ms time limit"));
    free(diag);
    /* The grandchild was in the process group and is gone too. */
    char *pidtxt;
    size_t n;
    assert_int_equal(shoal_util_read_file(pidfile, 64, &pidtxt, &n), 0);
    pid_t child = (pid_t)atoi(pidtxt);
    free(pidtxt);
    assert_true(child > 0);
    assert_true(alive(getpid())); /* the probe itself works */
    for (int i = 0; i < 100 && alive(child); i++)
        usleep(10000);
    assert_false(alive(child));
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
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
