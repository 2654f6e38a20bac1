/*
 * fn_linker - the caller of the direct-link suite (tests/e2e/test_links.c). Its input is a
 * command; it answers "ok ..." or says exactly what went wrong. The callee is "linkee"
 * (tests/e2e/fn_linkee.c), which XORs every byte with 0x5a.
 *  "echo N"   N calls with inputs of 0, 1, 4096, 100 and (every 50th call) 2 MiB + 3 bytes (more
 *             than a link carries: the worker's path), every output checked byte for byte;
 *  "fail"     the callee's error (rc and message) is the same through the worker and the link;
 *  "crash K"  K good calls, then one that crashes the callee: -ECONNRESET, "function crashed...";
 *             then good calls again;
 *  "hang"     good calls, then one past the callee's timeout: -ETIMEDOUT; then good calls;
 *  "ver S"    calls "ver" until the answer changes from V1 to V2 (the suite redeploys the callee
 *             meanwhile), at most S seconds;
 *  "loop S"   good calls for S seconds (overloaded ones, -EBUSY, are counted and retried);
 *  "meta"     the callee's meta on a direct call (function, invocation_id = ours);
 *  "self D"   recursion: calls itself with "self D-1" down to 0, twice per level.
 * Built by the Makefile (BUILD/tests/e2e/fn_linker.so) against include/shoal.h only.
 */
#include <errno.h>
#include <shoal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BIG ((2u << 20) + 3)

static unsigned char *buf;

static int check_call(shoal_ctx *c, int i, size_t len)
{
    shoal_buf out;
    int rc;

    for (size_t k = 0; k < len; k++)
        buf[k] = (unsigned char)(i * 31 + k * 7 + (k >> 8));
    if ((rc = shoal_call(c, "linkee", buf, len, &out)) != 0)
        return shoal_error(c, "call %d (%zu bytes) failed: %d %.*s", i, len, rc, (int)out.len,
                           (const char *)out.data);
    if (out.len != len)
        return shoal_error(c, "call %d: %zu bytes back for %zu", i, out.len, len);
    for (size_t k = 0; k < len; k++)
        if (((const unsigned char *)out.data)[k] != (buf[k] ^ 0x5a))
            return shoal_error(c, "call %d (%zu bytes): byte %zu is 0x%02x, expected 0x%02x", i,
                               len, k, ((const unsigned char *)out.data)[k], buf[k] ^ 0x5a);
    return 0;
}

static int good_calls(shoal_ctx *c, int n)
{
    for (int i = 0; i < n; i++)
        if (check_call(c, i, (size_t)(i % 200)) != 0)
            return -1;
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Calls "linkee" with cmd; *rc and the message/output (NUL-terminated) in msg. */
static void call_cmd(shoal_ctx *c, const char *cmd, int *rc, char *msg, size_t cap)
{
    shoal_buf out;
    size_t n;

    *rc = shoal_call(c, "linkee", cmd, strlen(cmd), &out);
    n = out.len < cap - 1 ? out.len : cap - 1;
    memcpy(msg, out.data, n);
    msg[n] = '\0';
}

int shoal_main(shoal_ctx *c)
{
    shoal_buf in = shoal_input(c);
    char cmd[64] = {0}, m1[512], m2[512], ans[128];
    int rc1, rc2, n;
    static const size_t sizes[] = {0, 1, 4096, 100};

    memcpy(cmd, in.data, in.len < 63 ? in.len : 63);
    if (buf == NULL && (buf = malloc(BIG)) == NULL)
        return shoal_error(c, "out of memory");
    if (strncmp(cmd, "echo ", 5) == 0) {
        int calls = atoi(cmd + 5);
        for (int i = 0; i < calls; i++)
            if (check_call(c, i, i % 50 == 49 ? BIG : sizes[i % 4]) != 0)
                return -1;
        n = snprintf(ans, sizeof(ans), "ok %d", calls);
        return shoal_output(c, ans, (size_t)n);
    }
    if (strcmp(cmd, "fail") == 0) {
        /* The first goes through the worker, the second (after a lease) through the link. */
        call_cmd(c, "fail", &rc1, m1, sizeof(m1));
        if (good_calls(c, 3) != 0)
            return -1;
        call_cmd(c, "fail", &rc2, m2, sizeof(m2));
        if (rc1 != -EREMOTEIO || rc2 != rc1 || strcmp(m1, m2) != 0 ||
            strcmp(m1, "linkee failed on purpose (42)") != 0)
            return shoal_error(c, "errors differ: %d '%s' / %d '%s'", rc1, m1, rc2, m2);
        if (good_calls(c, 3) != 0)
            return -1;
        return shoal_output(c, "ok", 2);
    }
    if (strncmp(cmd, "crash ", 6) == 0) {
        if (good_calls(c, atoi(cmd + 6)) != 0)
            return -1;
        call_cmd(c, "crash", &rc1, m1, sizeof(m1));
        if (rc1 != -ECONNRESET || strncmp(m1, "function crashed: ", 18) != 0)
            return shoal_error(c, "crash through the link: %d '%s'", rc1, m1);
        /* The same through the worker (the link is gone): the same answer. */
        call_cmd(c, "crash", &rc2, m2, sizeof(m2));
        if (rc2 != rc1 || strcmp(m1, m2) != 0)
            return shoal_error(c, "crashes differ: %d '%s' / %d '%s'", rc1, m1, rc2, m2);
        if (good_calls(c, 20) != 0)
            return -1;
        n = snprintf(ans, sizeof(ans), "ok %s", m1);
        return shoal_output(c, ans, (size_t)n);
    }
    if (strcmp(cmd, "hang") == 0) {
        if (good_calls(c, 10) != 0)
            return -1;
        double t0 = now_s();
        call_cmd(c, "hang", &rc1, m1, sizeof(m1));
        double dt = now_s() - t0;
        if (rc1 != -ETIMEDOUT || strstr(m1, "exceeded its timeout") == NULL)
            return shoal_error(c, "hang through the link: %d '%s'", rc1, m1);
        if (good_calls(c, 10) != 0)
            return -1;
        n = snprintf(ans, sizeof(ans), "ok %.1f s", dt);
        return shoal_output(c, ans, (size_t)n);
    }
    if (strncmp(cmd, "ver ", 4) == 0) {
        double end = now_s() + atoi(cmd + 4);
        int calls = 0;
        char first[8] = "";
        while (now_s() < end) {
            call_cmd(c, "ver", &rc1, m1, sizeof(m1));
            if (rc1 != 0)
                return shoal_error(c, "ver call %d failed: %d %s", calls, rc1, m1);
            if (calls++ == 0)
                snprintf(first, sizeof(first), "%.4s", m1);
            if (strcmp(m1, "V2") == 0)
                break;
        }
        n = snprintf(ans, sizeof(ans), "first %s last %s", first, m1);
        return shoal_output(c, ans, (size_t)n);
    }
    if (strncmp(cmd, "loop ", 5) == 0) {
        double end = now_s() + atoi(cmd + 5);
        int calls = 0, busy = 0;
        while (now_s() < end) {
            shoal_buf out;
            int rc;
            for (size_t k = 0; k < 64; k++)
                buf[k] = (unsigned char)(calls + k);
            rc = shoal_call(c, "linkee", buf, 64, &out);
            calls++;
            /* Every result stays valid until we return, so each takes call-area space (2 x
             * the largest body): a few thousand calls a second keep a 6 s loop far from its
             * end (-ENOBUFS), however fast direct calls are. */
            usleep(200);
            /* The suite saturates linkee's pool meanwhile: an overloaded call is fair. */
            if (rc == -EBUSY) {
                busy++;
                usleep(10000);
                continue;
            }
            if (rc != 0)
                return shoal_error(c, "loop call %d failed: %d %.*s", calls, rc, (int)out.len,
                                   (const char *)out.data);
            for (size_t k = 0; k < 64; k++)
                if (out.len != 64 || ((const unsigned char *)out.data)[k] != (buf[k] ^ 0x5a))
                    return shoal_error(c, "loop call %d: wrong answer", calls);
        }
        n = snprintf(ans, sizeof(ans), "ok %d calls, %d overloaded", calls, busy);
        return shoal_output(c, ans, (size_t)n);
    }
    if (strcmp(cmd, "meta") == 0) {
        /* Twice: the second is a direct call. */
        call_cmd(c, "meta", &rc1, m1, sizeof(m1));
        call_cmd(c, "meta", &rc2, m2, sizeof(m2));
        if (rc1 != 0 || rc2 != 0 || strcmp(m1, m2) != 0)
            return shoal_error(c, "meta differs: %d '%s' / %d '%s'", rc1, m1, rc2, m2);
        return shoal_output(c, m2, strlen(m2));
    }
    if (strncmp(cmd, "self ", 5) == 0) {
        int d = atoi(cmd + 5);
        const char *me = shoal_meta(c, "function");
        shoal_buf out;
        if (d <= 0)
            return shoal_output(c, "0", 1);
        for (int k = 0; k < 2; k++) {
            char sub[32];
            int rc;
            snprintf(sub, sizeof(sub), "self %d", d - 1);
            if ((rc = shoal_call(c, me, sub, strlen(sub), &out)) != 0)
                return shoal_error(c, "depth %d: %d %.*s", d, rc, (int)out.len,
                                   (const char *)out.data);
            if (out.len != (size_t)snprintf(ans, sizeof(ans), "%d", d - 1) ||
                memcmp(out.data, ans, out.len) != 0)
                return shoal_error(c, "depth %d: got %.*s", d, (int)out.len,
                                   (const char *)out.data);
        }
        n = snprintf(ans, sizeof(ans), "%d", d);
        return shoal_output(c, ans, (size_t)n);
    }
    return shoal_error(c, "unknown command %s", cmd);
}
