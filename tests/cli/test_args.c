/* Tests cli/args.c: long and short options with and without values, positionals among options,
 * "--", "-" and every usage error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli/args.h"

enum { O_TIMEOUT = 1, O_DATA, O_VERBOSE, O_JSON };

static const shoal_cli_opt_t opts[] = {
    {"timeout-ms", 0, 1, O_TIMEOUT},
    {"data", 'd', 1, O_DATA},
    {"verbose", 'v', 0, O_VERBOSE},
    {"json", 0, 0, O_JSON},
};

#define INIT(a, ...)                                                                               \
    char *argv_[] = {__VA_ARGS__};                                                                 \
    shoal_cli_args_init((a), (int)(sizeof(argv_) / sizeof(argv_[0])), argv_, opts,                 \
                        sizeof(opts) / sizeof(opts[0]))

static void test_mixed(void **state)
{
    shoal_cli_args_t a;
    (void)state;
    INIT(&a, "hello", "--timeout-ms", "100", "hello.so", "--timeout-ms=200", "-v", "-d", "x",
         "-dyz", "--data=", "-", "--json");

    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_POSITIONAL);
    assert_string_equal(a.arg, "hello");
    assert_int_equal(shoal_cli_args_next(&a), O_TIMEOUT);
    assert_string_equal(a.arg, "100");
    assert_string_equal(a.opt, "--timeout-ms");
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_POSITIONAL);
    assert_string_equal(a.arg, "hello.so");
    assert_int_equal(shoal_cli_args_next(&a), O_TIMEOUT);
    assert_string_equal(a.arg, "200");
    assert_string_equal(a.opt, "--timeout-ms"); /* without the "=200" */
    assert_int_equal(shoal_cli_args_next(&a), O_VERBOSE);
    assert_null(a.arg);
    assert_int_equal(shoal_cli_args_next(&a), O_DATA);
    assert_string_equal(a.arg, "x");
    assert_string_equal(a.opt, "-d");
    assert_int_equal(shoal_cli_args_next(&a), O_DATA);
    assert_string_equal(a.arg, "yz");
    assert_int_equal(shoal_cli_args_next(&a), O_DATA);
    assert_string_equal(a.arg, ""); /* an explicitly empty value */
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_POSITIONAL);
    assert_string_equal(a.arg, "-");
    assert_int_equal(shoal_cli_args_next(&a), O_JSON);
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_END);
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_END);
}

static void test_double_dash(void **state)
{
    shoal_cli_args_t a;
    (void)state;
    INIT(&a, "-v", "--", "--json", "-d");

    assert_int_equal(shoal_cli_args_next(&a), O_VERBOSE);
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_POSITIONAL);
    assert_string_equal(a.arg, "--json");
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_POSITIONAL);
    assert_string_equal(a.arg, "-d");
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_END);
}

static void expect_error(const char *arg, const char *msg)
{
    shoal_cli_args_t a;
    char *argv[] = {(char *)arg};

    shoal_cli_args_init(&a, 1, argv, opts, sizeof(opts) / sizeof(opts[0]));
    assert_int_equal(shoal_cli_args_next(&a), SHOAL_CLI_ARGS_ERROR);
    assert_string_equal(a.err, msg);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("--bogus", "unknown option --bogus");
    expect_error("--bogus=1", "unknown option --bogus");
    expect_error("-x", "unknown option -x");
    expect_error("-vx", "unknown option -vx"); /* no grouping of short flags */
    expect_error("--json=1", "--json takes no value");
    expect_error("--timeout-ms", "--timeout-ms needs a value");
    expect_error("-d", "-d needs a value");
    expect_error("--verb", "unknown option --verb"); /* no abbreviations */
}

static void test_u64(void **state)
{
    char err[128];
    uint64_t v = 0;
    (void)state;

    assert_int_equal(shoal_cli_args_u64("--slots", "64", 1, 100, &v, err, sizeof(err)), 0);
    assert_int_equal(v, 64);
    assert_int_equal(shoal_cli_args_u64("--slots", "0", 1, 100, &v, err, sizeof(err)), -1);
    assert_string_equal(err, "--slots needs a number from 1 to 100, not \"0\"");
    assert_int_equal(shoal_cli_args_u64("--slots", "12x", 1, 100, &v, err, sizeof(err)), -1);
    assert_int_equal(shoal_cli_args_u64("--slots", "", 1, 100, &v, err, sizeof(err)), -1);
    assert_int_equal(shoal_cli_args_u64("--slots", "-1", 0, 100, &v, err, sizeof(err)), -1);
    assert_int_equal(v, 64);
    assert_int_equal(shoal_cli_args_u64("--memory-mb", "x", 0, UINT64_MAX, &v, err, sizeof(err)),
                     -1);
    assert_string_equal(err, "--memory-mb needs a whole number, not \"x\"");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_double_dash),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_u64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
