/* Tests controller/cron.c against a table of expressions and their next firing times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "controller/cron.h"

static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static void test_next_table(void **state)
{
    (void)state;
    /* 2026-11-24 is a Tuesday. */
    const int64_t base = utc(2026, 11, 24, 10, 7);
    const struct {
        const char *expr;
        int64_t after, want;
    } cases[] = {
        {"* * * * *", base, utc(2026, 11, 24, 10, 8)},
        {"*/5 * * * *", base, utc(2026, 11, 24, 10, 10)},
        {"*/5 * * * *", utc(2026, 11, 24, 10, 10), utc(2026, 11, 24, 10, 15)},
        {"0 * * * *", base, utc(2026, 11, 24, 11, 0)},
        {"30 9 * * *", base, utc(2026, 11, 25, 9, 30)},
        {"0 0 1 * *", base, utc(2026, 12, 1, 0, 0)},
        {"0 0 1 1 *", base, utc(2027, 1, 1, 0, 0)},
        {"15 14 1 * *", base, utc(2026, 12, 1, 14, 15)},
        {"0 22 * * 1-5", base, utc(2026, 11, 24, 22, 0)},
        {"0 22 * * 1-5", utc(2026, 11, 27, 22, 0), utc(2026, 11, 30, 22, 0)}, /* Fri -> Mon */
        {"23 0-20/2 * * *", base, utc(2026, 11, 24, 10, 23)},
        {"5 4 * * sun", base, utc(2026, 11, 29, 4, 5)},
        {"5 4 * * 7", base, utc(2026, 11, 29, 4, 5)},
        {"0 0 * * SAT,sun", base, utc(2026, 11, 28, 0, 0)},
        {"0 12 * JAN,jul *", base, utc(2027, 1, 1, 12, 0)},
        {"0 0 29 2 *", base, utc(2028, 2, 29, 0, 0)}, /* the next leap day */
        /* Both day fields restricted: either matches (the 1st, or any Monday). */
        {"0 0 1 * mon", base, utc(2026, 11, 30, 0, 0)},
        {"0 0 1 * mon", utc(2026, 11, 30, 0, 0), utc(2026, 12, 1, 0, 0)},
        /* Day-of-week starred: the day-of-month alone decides. */
        {"0 0 13 * *", base, utc(2026, 12, 13, 0, 0)},
        {"0 0 31 * *", base, utc(2026, 12, 31, 0, 0)},
        {"10/20 * * * *", base, utc(2026, 11, 24, 10, 10)},
        {"1,2,3 5 * * *", base, utc(2026, 11, 25, 5, 1)},
        {"59 23 31 12 *", base, utc(2026, 12, 31, 23, 59)},
        {"@hourly", base, utc(2026, 11, 24, 11, 0)},
        {"@daily", base, utc(2026, 11, 25, 0, 0)},
        {"@weekly", base, utc(2026, 11, 29, 0, 0)},
        {"@monthly", base, utc(2026, 12, 1, 0, 0)},
        {"@yearly", base, utc(2027, 1, 1, 0, 0)},
        {"  0   0  *  *  * ", base, utc(2026, 11, 25, 0, 0)},
        /* After a time inside a minute: the next whole matching minute. */
        {"* * * * *", base + 59, utc(2026, 11, 24, 10, 8)},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        shoal_cron_t c;
        char err[200];
        assert_int_equal(shoal_cron_parse(cases[i].expr, &c, err, sizeof(err)), 0);
        int64_t got = shoal_cron_next(&c, cases[i].after);
        if (got != cases[i].want)
            fprintf(stderr, "%s: got %lld want %lld\n", cases[i].expr, (long long)got,
                    (long long)cases[i].want);
        assert_true(got == cases[i].want);
    }
}

static void test_errors(void **state)
{
    (void)state;
    const struct {
        const char *expr, *mentions;
    } bad[] = {
        {"", "minute"},
        {"* * * *", "day-of-week"},
        {"* * * * * *", "more than 5"},
        {"60 * * * *", "minute"},
        {"* 24 * * *", "hour"},
        {"* * 0 * *", "day-of-month"},
        {"* * 32 * *", "day-of-month"},
        {"* * * 13 *", "month"},
        {"* * * * 8", "day-of-week"},
        {"*/0 * * * *", "minute"},
        {"5-1 * * * *", "minute"},
        {"a * * * *", "minute"},
        {"1,,2 * * * *", "minute"},
        {"* * * foo *", "month"},
        {"0 0 31 2 *", "never fires"},
        {"0 0 30 2 *", "never fires"},
        {"@often", "macro"},
        {"-1 * * * *", "minute"},
        {"1- * * * *", "minute"},
        {"*/ * * * *", "minute"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        shoal_cron_t c;
        char err[200] = "";
        assert_int_equal(shoal_cron_parse(bad[i].expr, &c, err, sizeof(err)), -22);
        if (strstr(err, bad[i].mentions) == NULL)
            fprintf(stderr, "\"%s\": message \"%s\" lacks \"%s\"\n", bad[i].expr, err,
                    bad[i].mentions);
        assert_non_null(strstr(err, bad[i].mentions));
    }
    assert_int_equal(shoal_cron_parse(NULL, NULL, NULL, 0), -22);
}

/* Every minute of a day in steps: next() is strictly after and matches. */
static void test_next_is_strictly_after(void **state)
{
    shoal_cron_t c;
    (void)state;
    assert_int_equal(shoal_cron_parse("*/7 */3 * * *", &c, NULL, 0), 0);
    int64_t t = utc(2026, 1, 1, 0, 0) - 1;
    for (int i = 0; i < 500; i++) {
        int64_t n = shoal_cron_next(&c, t);
        assert_true(n > t);
        struct tm tm;
        time_t tt = (time_t)n;
        gmtime_r(&tt, &tm);
        assert_int_equal(tm.tm_min % 7, 0);
        assert_int_equal(tm.tm_hour % 3, 0);
        assert_int_equal(tm.tm_sec, 0);
        t = n;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_table),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_next_is_strictly_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
