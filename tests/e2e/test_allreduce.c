/*
 * End-to-end test of examples/allreduce against real processes: a controller and one worker run
 * BUILD/examples/allreduce.so as groups of 1, 2 and 4 over an odd-sized vector for two steps; the
 * checksums rank 0 answers must equal the ones this test computes itself, and no element may
 * differ from the closed form. Bad parameters are refused with a clear message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

static cluster_t C;

static int setup(void **state)
{
    char so[512];
    (void)state;

    if (cluster_start(&C, 1, "--slots 4") < 0)
        return -1;
    snprintf(so, sizeof(so), "%s/examples/allreduce.so", C.build);
    if (deploy_file(&C, "allreduce", so, "timeout_ms=60000&memory_mb=512", NULL) != 201) {
        cluster_dump_logs(&C);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return cluster_stop(&C);
}

/* The number after "key": in a JSON answer. */
static double field(const char *body, const char *key)
{
    char k[64];
    const char *p;

    snprintf(k, sizeof(k), "\"%s\": ", key);
    p = strstr(body, k);
    assert_non_null(p);
    return strtod(p + strlen(k), NULL);
}

static void test_sums(void **state)
{
    static const int SIZES[] = {1, 2, 4};
    const size_t n = ((size_t)1 << 20) + 3, steps = 2;
    (void)state;

    for (size_t k = 0; k < sizeof(SIZES) / sizeof(SIZES[0]); k++) {
        int N = SIZES[k];
        http_resp_t r;
        char path[160];
        /* The last step (s = 1) sums (r + 2) over the ranks. */
        double coef = (double)N * (N + 1) / 2 + N, plain = 0, weighted = 0;
        /* Closed form of sum over i of (i % 1024) / 1024: whole periods plus the rest. */
        size_t q = n / 1024, rem = n % 1024;
        double closed = coef * ((double)q * 1023 * 1024 / 2 + (double)rem * (rem - 1) / 2) / 1024;

        for (size_t i = 0; i < n; i++) {
            double v = coef * ((double)(i % 1024) / 1024.0);
            plain += v;
            weighted += v * (double)(i % 7 + 1);
        }
        assert_true(plain == closed);
        snprintf(path, sizeof(path), "/v1/functions/allreduce/invoke?group=%d&n=%zu&steps=%zu", N,
                 n, steps);
        assert_int_equal(http_request(&C, "POST", path, "", 0, NULL, &r), 0);
        fprintf(stderr, "  group=%d: %ld %s", N, r.status, r.body);
        assert_int_equal(r.status, 200);
        assert_int_equal((int)field(r.body, "ranks"), N);
        assert_true(field(r.body, "n") == (double)n);
        assert_true(field(r.body, "mismatches") == 0);
        assert_true(field(r.body, "sum") == closed);
        assert_true(field(r.body, "weighted") == weighted);
        assert_true(field(r.body, "allreduce_ms") > 0);
        http_resp_free(&r);
    }
}

static void test_bad_parameters(void **state)
{
    static const char *const BAD[] = {"n=0", "n=abc", "n=-5", "n=99999999999", "steps=0"};
    (void)state;

    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        http_resp_t r;
        char path[160];
        snprintf(path, sizeof(path), "/v1/functions/allreduce/invoke?group=2&%s", BAD[i]);
        assert_int_equal(http_request(&C, "POST", path, "", 0, NULL, &r), 0);
        if (r.status != 502)
            fprintf(stderr, "%s: %ld %s\n", BAD[i], r.status, r.body);
        assert_int_equal(r.status, 502);
        assert_non_null(strstr(r.body, "must be 1.."));
        http_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sums),
        cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
