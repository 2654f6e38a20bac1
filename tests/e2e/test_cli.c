/*
 * End-to-end tests of the `shoal` command: every subcommand against a real cluster, its exit
 * codes and one-line errors, and `shoal up` starting and stopping a whole platform.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/e2e/harness.h"

static cluster_t C;
static char out[1 << 16];

static int setup(void **state)
{
    (void)state;
    return cluster_start(&C, 1, NULL);
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

/* Runs `sh -c "<env> shoal <args>"` and returns its exit code; stdout+stderr land in out. */
static int shoal(const char *fmt, ...)
{
    char args[2048], cmd[4096];
    va_list ap;
    FILE *p;
    size_t n;
    int st;

    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    /* The token comes from the cluster's home, as `shoal` finds it after `shoal up --home`. */
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && SHOAL_URL=%s SHOAL_TOKEN= '%s/shoal' --home '%s' %s 2>&1", C.src, C.url,
             C.build, C.home, args);
    assert_non_null(p = popen(cmd, "r"));
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_commands(void **state)
{
    (void)state;

    assert_int_equal(shoal("deploy hello %s/examples/hello.so", C.build), 0);
    assert_non_null(strstr(out, "hello"));
    assert_int_equal(shoal("deploy upper examples/upper/upper.c --timeout-ms 5000"), 0);
    assert_int_equal(shoal("invoke hello < /dev/null"), 0);
    assert_int_equal(system("true"), 0);
    /* Input from stdin, -d and @file; output to stdout and -o. */
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "printf hi | SHOAL_URL=%s SHOAL_TOKEN=%s '%s/shoal' invoke hello",
             C.url, C.token, C.build);
    FILE *p = popen(cmd, "r");
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    assert_string_equal(out, "hello, hi");
    assert_int_equal(shoal("invoke upper -d quiet"), 0);
    assert_string_equal(out, "QUIET");
    char file[400];
    snprintf(file, sizeof(file), "%s/in.txt", C.home);
    FILE *f = fopen(file, "w");
    fputs("from a file", f);
    fclose(f);
    assert_int_equal(shoal("invoke upper @%s -o %s/out.txt", file, C.home), 0);
    snprintf(file, sizeof(file), "%s/out.txt", C.home);
    size_t len;
    char *got = read_whole(file, &len);
    assert_non_null(got);
    assert_string_equal(got, "FROM A FILE");
    free(got);

    assert_int_equal(shoal("ls"), 0);
    assert_non_null(strstr(out, "hello"));
    assert_non_null(strstr(out, "upper"));
    assert_int_equal(shoal("workers"), 0);
    assert_non_null(strstr(out, "node0"));
    assert_int_equal(shoal("rm hello"), 0);
    assert_int_equal(shoal("ls"), 0);
    assert_null(strstr(out, "hello"));

    /* Failures: a non-zero exit and one line naming the problem. */
    assert_int_equal(shoal("invoke hello -d x"), 1);
    assert_non_null(strstr(out, "404"));
    assert_null(strchr(out, '\n') == NULL ? NULL : strchr(strchr(out, '\n') + 1, '\n'));
    assert_int_equal(shoal("deploy Bad-Name examples/upper/upper.c"), 1);
    assert_non_null(strstr(out, "bad_name"));
    assert_int_equal(shoal("deploy x /nonexistent/file.so"), 1);
    assert_int_equal(shoal("no-such-command"), 2);
    assert_int_equal(shoal("--url http://127.0.0.1:1 ls"), 1);
    assert_non_null(strstr(out, "127.0.0.1:1"));
    const char *cmds[] = {"up", "deploy", "invoke", "ls", "rm", "workers"};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_int_equal(shoal("%s --help", cmds[i]), 0);
        assert_non_null(strstr(out, cmds[i]));
    }
    assert_int_equal(shoal("--help"), 0);
    assert_non_null(strstr(out, "SHOAL_TOKEN"));

    /* Authentication: a wrong token, and none at all, each give one line saying how to give the
     * right one; --token beats SHOAL_TOKEN, which beats the home's file. */
    assert_int_equal(shoal("--token wrong-token-0123456789abcdef ls"), 1);
    assert_non_null(strstr(out, "403"));
    assert_non_null(strstr(out, "--token"));
    assert_non_null(strchr(out, '\n'));
    assert_null(strchr(strchr(out, '\n') + 1, '\n'));
    assert_int_equal(shoal("--home /nonexistent ls"), 1);
    assert_non_null(strstr(out, "401"));
    assert_non_null(strstr(out, "SHOAL_TOKEN"));
    assert_null(strchr(strchr(out, '\n') + 1, '\n'));
    assert_int_equal(shoal("--home /nonexistent --token %s ls", C.token), 0);
    assert_int_equal(shoal("--token bad ls"), 2);
    assert_non_null(strstr(out, "16..256"));
    snprintf(cmd, sizeof(cmd),
             "SHOAL_URL=%s SHOAL_TOKEN=wrong-token-0123456789abcdef '%s/shoal' --home '%s' ls "
             ">/dev/null 2>&1",
             C.url, C.build, C.home);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    /* A function deployed --public is invoked without any token; --private closes it again. */
    assert_int_equal(shoal("deploy open examples/upper/upper.c --public"), 0);
    assert_int_equal(shoal("--home /nonexistent invoke open -d quiet"), 0);
    assert_string_equal(out, "QUIET");
    assert_int_equal(shoal("deploy open examples/upper/upper.c --private"), 0);
    assert_int_equal(shoal("--home /nonexistent invoke open -d quiet"), 1);
    assert_non_null(strstr(out, "401"));
}

static pid_t up_pid;
static int up_ok;

/* After test_up: if it failed, stop its `shoal up` and show why from its log. */
static int up_teardown(void **state)
{
    char log[400], line[512];
    FILE *f;
    (void)state;

    if (up_ok)
        return 0;
    if (up_pid > 0) {
        kill(up_pid, SIGTERM);
        waitpid(up_pid, NULL, 0);
    }
    snprintf(log, sizeof(log), "%s/up.log", C.home);
    if ((f = fopen(log, "r")) != NULL) {
        fprintf(stderr, "harness: shoal up's log:\n");
        while (fgets(line, sizeof(line), f) != NULL)
            fprintf(stderr, "harness: | %s", line);
        fclose(f);
    }
    return 0;
}

/* `shoal up` runs a controller and a worker, and Ctrl-C stops both cleanly. */
static void test_up(void **state)
{
    char listen[64], wlisten[64], home[300], bin[300];
    cluster_t U;
    pid_t up;
    int st;
    (void)state;

    memset(&U, 0, sizeof(U));
    snprintf(U.build, sizeof(U.build), "%s", C.build);
    /* Two fresh ports: shoal up's worker port is the next one unless --worker-listen says. */
    U.http_port = cluster_free_port();
    do
        U.worker_port = cluster_free_port();
    while (U.worker_port == U.http_port);
    snprintf(U.url, sizeof(U.url), "http://127.0.0.1:%d", U.http_port);
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", U.http_port);
    snprintf(wlisten, sizeof(wlisten), "127.0.0.1:%d", U.worker_port);
    snprintf(home, sizeof(home), "%s/up-home", C.home);
    snprintf(bin, sizeof(bin), "%s/shoal", C.build);
    if ((up = fork()) == 0) {
        char log[400];
        snprintf(log, sizeof(log), "%s/up.log", C.home);
        if (freopen(log, "a", stderr) == NULL || freopen(log, "a", stdout) == NULL)
            _exit(126);
        execl(bin, bin, "up", "--listen", listen, "--worker-listen", wlisten, "--home", home,
              (char *)NULL);
        _exit(127);
    }
    up_pid = up;
    /* The controller writes its token into the home before it answers; the API needs it. */
    snprintf(U.home, sizeof(U.home), "%.200s", home);
    for (int i = 0; i < 150 && cluster_read_token(&U) < 0; i++)
        usleep(100000);
    assert_int_equal(strlen(U.token), 64);
    assert_int_equal(cluster_wait_workers(&U, 1, 15000), 0);
    /* shoal up printed it once, with where it is kept. */
    char log[400], expect[400];
    snprintf(log, sizeof(log), "%s/up.log", C.home);
    snprintf(expect, sizeof(expect), "token: %s (also in %s/token)", U.token, home);
    size_t loglen;
    char *text = read_whole(log, &loglen);
    assert_non_null(text);
    assert_non_null(strstr(text, expect));
    free(text);
    char so[400];
    snprintf(so, sizeof(so), "%s/examples/hello.so", C.build);
    assert_int_equal(deploy_file(&U, "hello", so, NULL, NULL), 201);
    http_resp_t r;
    assert_int_equal(http_request(&U, "POST", "/v1/functions/hello/invoke", "up", 2, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "hello, up");
    http_resp_free(&r);
    kill(up, SIGINT);
    assert_int_equal(waitpid(up, &st, 0), up);
    up_pid = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "harness: shoal up ended with wait status %d\n", st);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The platform is gone with it. */
    assert_int_not_equal(http_request(&U, "GET", "/healthz", NULL, 0, NULL, &r), 0);
    up_ok = 1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),
        cmocka_unit_test_teardown(test_up, up_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
