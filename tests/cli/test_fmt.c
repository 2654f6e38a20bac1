/* Tests cli/fmt.c: sizes, durations, the progress bar, and one-line sanitising of server text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli/fmt.h"

static void test_bytes(void **state)
{
    char b[32];
    (void)state;
    assert_string_equal(shoal_cli_fmt_bytes(0, b, sizeof(b)), "0 B");
    assert_string_equal(shoal_cli_fmt_bytes(1023, b, sizeof(b)), "1023 B");
    assert_string_equal(shoal_cli_fmt_bytes(1024, b, sizeof(b)), "1.0 KiB");
    assert_string_equal(shoal_cli_fmt_bytes(15872, b, sizeof(b)), "15.5 KiB");
    assert_string_equal(shoal_cli_fmt_bytes(64u << 20, b, sizeof(b)), "64.0 MiB");
    /* Just under 1 MiB must not print as "1024.0 KiB". */
    assert_string_equal(shoal_cli_fmt_bytes((1u << 20) - 1, b, sizeof(b)), "1.0 MiB");
    assert_string_equal(shoal_cli_fmt_bytes(UINT64_MAX, b, sizeof(b)), "16.0 EiB");
}

static void test_ms(void **state)
{
    char b[32];
    (void)state;
    assert_string_equal(shoal_cli_fmt_ms(1, b, sizeof(b)), "1ms");
    assert_string_equal(shoal_cli_fmt_ms(1500, b, sizeof(b)), "1500ms");
    assert_string_equal(shoal_cli_fmt_ms(30000, b, sizeof(b)), "30s");
    assert_string_equal(shoal_cli_fmt_ms(60000, b, sizeof(b)), "1m");
    assert_string_equal(shoal_cli_fmt_ms(90000, b, sizeof(b)), "90s");
    assert_string_equal(shoal_cli_fmt_ms(900000, b, sizeof(b)), "15m");
}

static void test_progress(void **state)
{
    char b[128];
    (void)state;
    assert_string_equal(shoal_cli_fmt_progress(0, 2u << 20, 10, b, sizeof(b)),
                        "[..........]   0%  0 B / 2.0 MiB");
    assert_string_equal(shoal_cli_fmt_progress(1u << 20, 2u << 20, 10, b, sizeof(b)),
                        "[#####.....]  50%  1.0 MiB / 2.0 MiB");
    assert_string_equal(shoal_cli_fmt_progress(3u << 20, 2u << 20, 4, b, sizeof(b)),
                        "[####] 100%  2.0 MiB / 2.0 MiB");
    assert_string_equal(shoal_cli_fmt_progress(5, 0, 3, b, sizeof(b)), "[...]  5 B");
}

static void test_line(void **state)
{
    char b[16];
    const char *s;
    (void)state;

    s = "  two\nlines\r\n\x1b[31mred ";
    assert_string_equal(shoal_cli_fmt_line(s, strlen(s), b, sizeof(b)), "two lines [3...");
    s = "a\tb";
    assert_string_equal(shoal_cli_fmt_line(s, strlen(s), b, sizeof(b)), "a b");
    s = "exactly 15 char";
    assert_string_equal(shoal_cli_fmt_line(s, strlen(s), b, sizeof(b)), "exactly 15 char");
    s = "exactly 16 chars";
    assert_string_equal(shoal_cli_fmt_line(s, strlen(s), b, sizeof(b)), "exactly 16 c...");
    /* A cut never splits a UTF-8 sequence: "é" is two bytes at offsets 11-12. */
    s = "aaaaaaaaaaa\xc3\xa9zzzzzz";
    assert_string_equal(shoal_cli_fmt_line(s, strlen(s), b, sizeof(b)), "aaaaaaaaaaa...");
    s = "aaaaaaaaaa\xc3\xa9zzzzzz";
    assert_string_equal(shoal_cli_fmt_line(s, strlen(s), b, sizeof(b)), "aaaaaaaaaa\xc3\xa9...");
    /* NUL bytes inside the length are control characters too. */
    assert_string_equal(shoal_cli_fmt_line("x\0y", 3, b, sizeof(b)), "x y");
    assert_string_equal(shoal_cli_fmt_line("\n\n", 2, b, sizeof(b)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_ms),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
