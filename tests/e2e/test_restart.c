/*
 * End-to-end recovery tests: kill -9 of the controller (state survives, workers reconnect within
 * 5 s), also under a load of invoking clients (errors only during the outage, no request hangs
 * past the function's timeout) and of a worker in the middle of an invocation (the caller gets an
 * error at once, the worker's instances die with it, a restarted worker serves again).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "tests/e2e/fns.h"
#include "tests/e2e/harness.h"

static cluster_t C;

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

static long invoke_status(const char *name, const char *in, char *out, size_t outlen)
{
    char path[256];
    http_resp_t r;
    long st;

    snprintf(path, sizeof(path), "/v1/functions/%s/invoke", name);
    if (http_request(&C, "POST", path, in, strlen(in), NULL, &r) < 0)
        return -1;
    st = r.status;
    if (out)
        snprintf(out, outlen, "%s", r.body);
    http_resp_free(&r);
    return st;
}

static void test_controller_kill9(void **state)
{
    char so[512], out[256];
    http_resp_t r;
    (void)state;

    assert_int_equal(build_function(&C, "keep1", FN_VERSION("kept-1"), so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "keep1", so, NULL, NULL), 201);
    assert_int_equal(build_function(&C, "keep2", FN_ECHO, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "keep2", so, "timeout_ms=5000&memory_mb=128", NULL), 201);
    assert_int_equal(invoke_status("keep1", "", out, sizeof(out)), 200);

    for (int round = 0; round < 2; round++) {
        int st = cluster_kill_controller(&C, SIGKILL);
        assert_true(WIFSIGNALED(st));
        uint64_t t0 = shoal_util_now_ms();
        assert_int_equal(cluster_start_controller(&C), 0);
        assert_int_equal(cluster_wait_workers(&C, 1, 5000), 0);
        uint64_t reconnect = shoal_util_now_ms() - t0;
        fprintf(stderr, "worker reconnected %llu ms after the controller restarted\n",
                (unsigned long long)reconnect);
        assert_true(reconnect <= 5000);
        assert_int_equal(http_request(&C, "GET", "/v1/functions", NULL, 0, NULL, &r), 0);
        assert_non_null(strstr(r.body, "keep1"));
        assert_non_null(strstr(r.body, "keep2"));
        http_resp_free(&r);
        assert_int_equal(http_request(&C, "GET", "/v1/functions/keep2", NULL, 0, NULL, &r), 0);
        assert_non_null(strstr(r.body, "5000"));
        http_resp_free(&r);
        assert_int_equal(invoke_status("keep1", "", out, sizeof(out)), 200);
        assert_string_equal(out, "kept-1");
        assert_int_equal(invoke_status("keep2", "still here", out, sizeof(out)), 200);
        assert_string_equal(out, "still here");
    }
}

/* One finished request of a load client: when it started and ended, and how (HTTP status, or -1
 * for a transport error such as a refused or reset connection). */
typedef struct {
    uint64_t t0, t1;
    int32_t status;
    int32_t pad;
} load_rec_t;

static volatile sig_atomic_t load_stop;

static void on_load_stop(int sig)
{
    (void)sig;
    load_stop = 1;
}

/* A load client (a forked process: the harness's HTTP client is one per process): invokes in a
 * loop until SIGTERM, writing a record per request to fd (records are smaller than PIPE_BUF, so
 * clients' writes do not interleave). */
static void __attribute__((noreturn)) load_client(int fd, int id)
{
    struct sigaction sa;
    char in[32], path[64];

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_load_stop;
    sigaction(SIGTERM, &sa, NULL);
    snprintf(path, sizeof(path), "/v1/functions/loaded/invoke");
    for (unsigned n = 0; !load_stop; n++) {
        http_resp_t r;
        load_rec_t rec = {0};
        int len = snprintf(in, sizeof(in), "c%d-%u", id, n);
        rec.t0 = shoal_util_now_ms();
        if (http_request(&C, "POST", path, in, (size_t)len, NULL, &r) < 0) {
            rec.status = -1;
        } else {
            rec.status = (int32_t)r.status;
            if (r.status == 200 && (r.len != (size_t)len || memcmp(r.body, in, r.len) != 0))
                rec.status = 0; /* a wrong answer */
            http_resp_free(&r);
        }
        rec.t1 = shoal_util_now_ms();
        if (write(fd, &rec, sizeof(rec)) != (ssize_t)sizeof(rec))
            _exit(1);
        /* About 100 requests a second per client: a steady load, and the records of the whole
         * test fit in the pipe, which the parent only drains at the end. */
        usleep(rec.status != 200 ? 20 * 1000 : 10 * 1000);
    }
    _exit(0);
}

/* kill -9 of the controller while clients invoke: they see errors only during the outage, never
 * a request that hangs past the function's timeout, and are served again once the worker is
 * back; the worker reconnects within 5 s and the function is still there. */
static void test_controller_kill9_under_load(void **state)
{
    enum { CLIENTS = 3, LIMIT_MS = 5000 + 2000 };
    char so[512];
    pid_t kids[CLIENTS];
    int p[2], st;
    (void)state;

    assert_int_equal(build_function(&C, "loaded", FN_ECHO, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "loaded", so, "timeout_ms=5000", NULL), 201);
    assert_int_equal(invoke_status("loaded", "warm", NULL, 0), 200);
    assert_int_equal(pipe(p), 0);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    for (int i = 0; i < CLIENTS; i++) {
        if ((kids[i] = fork()) == 0) {
            close(p[0]);
            load_client(p[1], i);
        }
        assert_true(kids[i] > 0);
    }
    close(p[1]);

    usleep(1000 * 1000);
    uint64_t t_kill = shoal_util_now_ms();
    st = cluster_kill_controller(&C, SIGKILL);
    assert_true(WIFSIGNALED(st));
    usleep(300 * 1000); /* a real outage: clients meet a closed port */
    uint64_t t_start = shoal_util_now_ms();
    assert_int_equal(cluster_start_controller(&C), 0);
    assert_int_equal(cluster_wait_workers(&C, 1, 5000), 0);
    uint64_t t_ready = shoal_util_now_ms();
    usleep(1500 * 1000);
    for (int i = 0; i < CLIENTS; i++)
        kill(kids[i], SIGTERM);

    /* Read every record while the clients finish (they block on a full pipe otherwise). */
    load_rec_t rec;
    int total = 0, before_ok = 0, after_ok = 0, outage_err = 0, bad = 0;
    uint64_t slowest = 0;
    while (read(p[0], &rec, sizeof(rec)) == (ssize_t)sizeof(rec)) {
        uint64_t took = rec.t1 - rec.t0;
        total++;
        if (took > slowest)
            slowest = took;
        if (took > LIMIT_MS) {
            fprintf(stderr, "a request took %llu ms (status %d)\n", (unsigned long long)took,
                    rec.status);
            bad++;
        }
        if (rec.t1 < t_kill) {
            if (rec.status == 200)
                before_ok++;
            else {
                fprintf(stderr, "status %d before the kill\n", rec.status);
                bad++;
            }
        } else if (rec.t0 >= t_ready) {
            if (rec.status == 200)
                after_ok++;
            else {
                fprintf(stderr, "status %d %llu ms after the worker was back\n", rec.status,
                        (unsigned long long)(rec.t0 - t_ready));
                bad++;
            }
        } else if (rec.status != 200) {
            outage_err++;
        }
    }
    close(p[0]);
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "load client %d ended with %s %d\n", i,
                    WIFEXITED(st) ? "status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    fprintf(stderr,
            "under load (%d clients): %d requests, %d ok before the kill, %d errors in the %llu ms "
            "outage, %d ok after; worker back %llu ms after the restart; slowest request %llu ms\n",
            CLIENTS, total, before_ok, outage_err, (unsigned long long)(t_ready - t_kill), after_ok,
            (unsigned long long)(t_ready - t_start), (unsigned long long)slowest);
    assert_int_equal(bad, 0);
    assert_true(before_ok > 0);
    assert_true(after_ok > 0);
    assert_true(outage_err > 0); /* the clients did run into the outage */
    assert_true(t_ready - t_start <= 5000);
    assert_int_equal(invoke_status("loaded", "done", NULL, 0), 200);
    assert_int_equal(invoke_status("keep1", "", NULL, 0), 200);
}

static void test_worker_kill9_mid_invocation(void **state)
{
    char so[512], out[256];
    pid_t before[64], kid;
    int nbefore, st;
    (void)state;

    assert_int_equal(build_function(&C, "sleepy", FN_MOODY, so, sizeof(so)), 0);
    assert_int_equal(deploy_file(&C, "sleepy", so, "timeout_ms=20000", NULL), 201);
    assert_int_equal(invoke_status("sleepy", "warm", out, sizeof(out)), 200);

    /* A caller blocked on an invocation that will never finish by itself. */
    if ((kid = fork()) == 0) {
        char body[256];
        uint64_t t0 = shoal_util_now_ms();
        long s = invoke_status("sleepy", "hang", body, sizeof(body));
        uint64_t took = shoal_util_now_ms() - t0;
        fprintf(stderr, "caller got %ld after %llu ms: %s\n", s, (unsigned long long)took, body);
        /* The worker dies 500 ms in; the error must arrive long before the 20 s timeout. */
        _exit(s == 502 && strstr(body, "worker_lost") && took < 3000 ? 0 : 1);
    }
    usleep(500 * 1000);
    nbefore = children_of(C.workers[0], before, 64);
    assert_true(nbefore >= 2); /* at least the zygote and the busy instance */
    cluster_kill_worker(&C, 0, SIGKILL);
    assert_int_equal(waitpid(kid, &st, 0), kid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);

    /* Nothing the worker started outlives it. */
    for (int i = 0; i < nbefore; i++) {
        int gone = 0;
        for (int t = 0; t < 100 && !gone; t++) {
            /* The test is a subreaper, so orphans come to it and must be reaped here. */
            if (waitpid(before[i], NULL, WNOHANG) == before[i] || kill(before[i], 0) < 0)
                gone = 1;
            else
                usleep(10 * 1000);
        }
        if (!gone)
            fprintf(stderr, "pid %d survived its worker\n", (int)before[i]);
        assert_true(gone);
    }

    assert_int_equal(cluster_start_worker(&C, 0), 0);
    assert_int_equal(cluster_wait_workers(&C, 1, 5000), 0);
    assert_int_equal(invoke_status("sleepy", "back", out, sizeof(out)), 200);
    assert_string_equal(out, "back");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_controller_kill9),
        cmocka_unit_test(test_controller_kill9_under_load),
        cmocka_unit_test(test_worker_kill9_mid_invocation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
