/* Tests cli/cli.c and the commands' argument handling: the command table, --help everywhere,
 * and that every usage error exits 2 before any request is made (the URL below is never
 * contacted: nothing listens on port 9 of a documentation address). Function names are not
 * usage errors: the server judges them (test_http shows the request going out). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define RUN(...)                                                                                   \
    shoal_cli_main((int)(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)), (char *[]){__VA_ARGS__})

static void test_table(void **state)
{
    static const char *const names[] = {"up", "deploy",  "invoke", "ls",
                                        "rm", "workers", "logs",   "help"};
    (void)state;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const shoal_cli_cmd_t *c = shoal_cli_find(names[i]);
        assert_non_null(c);
        assert_string_equal(c->name, names[i]);
        /* Each command's help starts with its usage line and is listed in the overview. */
        char want[64];
        snprintf(want, sizeof(want), "Usage: shoal %s", names[i]);
        assert_memory_equal(c->usage, want, strlen(want));
        snprintf(want, sizeof(want), "\n  %-9s %s\n", names[i], c->summary);
        assert_non_null(strstr(shoal_cli_usage, want));
    }
    assert_null(shoal_cli_find("nosuch"));
}

static void test_usage_mentions_options(void **state)
{
    (void)state;
    const char *d = shoal_cli_cmd_deploy.usage, *i = shoal_cli_cmd_invoke.usage;
    const char *u = shoal_cli_cmd_up.usage;
    assert_non_null(strstr(d, "--timeout-ms N"));
    assert_non_null(strstr(d, "--memory-mb N"));
    assert_non_null(strstr(d, "--min-warm N"));
    assert_non_null(strstr(d, "--max-instances N"));
    assert_non_null(strstr(i, "-d, --data"));
    assert_non_null(strstr(i, "-o, --output"));
    assert_non_null(strstr(i, "-H, --header"));
    assert_non_null(strstr(i, "-q, --query"));
    assert_non_null(strstr(u, "--listen ADDR:PORT"));
    assert_non_null(strstr(u, "--worker-listen ADDR:PORT"));
    assert_non_null(strstr(u, "--home DIR"));
    assert_non_null(strstr(u, "--slots N"));
    assert_non_null(strstr(u, "--node NAME"));
    assert_non_null(
        strstr(shoal_cli_cmd_ls.usage, "NAME VERSION SIZE TIMEOUT MEMORY MIN_WARM MAX UPDATED"));
    assert_non_null(strstr(shoal_cli_cmd_workers.usage, "NODE SLOTS BUSY STEMS POOLS"));
}

static void test_help(void **state)
{
    (void)state;
    assert_int_equal(RUN("shoal", "--help"), 0);
    assert_int_equal(RUN("shoal", "-h"), 0);
    assert_int_equal(RUN("shoal", "help"), 0);
    assert_int_equal(RUN("shoal", "help", "invoke"), 0);
    const char *cmds[] = {"up", "deploy", "invoke", "ls", "rm", "workers", "help"};
    for (size_t k = 0; k < sizeof(cmds) / sizeof(cmds[0]); k++) {
        assert_int_equal(RUN("shoal", (char *)cmds[k], "--help"), 0);
        assert_int_equal(RUN("shoal", (char *)cmds[k], "-h"), 0);
    }
}

static void test_usage_errors(void **state)
{
    (void)state;
    setenv("SHOAL_URL", "http://192.0.2.1:9", 1);
    assert_int_equal(RUN("shoal"), 2);
    assert_int_equal(RUN("shoal", "bogus"), 2);
    assert_int_equal(RUN("shoal", "--bogus", "ls"), 2);
    assert_int_equal(RUN("shoal", "help", "bogus"), 2);
    assert_int_equal(RUN("shoal", "--url", "ftp://x", "ls"), 2);
    assert_int_equal(RUN("shoal", "ls", "--url", ""), 2);
    assert_int_equal(RUN("shoal", "ls", "extra"), 2);
    assert_int_equal(RUN("shoal", "workers", "--bogus"), 2);
    assert_int_equal(RUN("shoal", "deploy"), 2);
    assert_int_equal(RUN("shoal", "deploy", "hello"), 2);
    assert_int_equal(RUN("shoal", "deploy", "hello", "f.so", "extra"), 2);
    assert_int_equal(RUN("shoal", "deploy", "hello", "f.so", "--timeout-ms"), 2);
    assert_int_equal(RUN("shoal", "deploy", "hello", "f.so", "--timeout-ms", "-1"), 2);
    assert_int_equal(RUN("shoal", "deploy", "", "f.so"), 2);
    assert_int_equal(RUN("shoal", "invoke"), 2);
    assert_int_equal(RUN("shoal", "invoke", ""), 2);
    assert_int_equal(RUN("shoal", "invoke", "hello", "-d", "x", "-d", "y"), 2);
    assert_int_equal(RUN("shoal", "invoke", "hello", "-d", "x", "@f"), 2);
    assert_int_equal(RUN("shoal", "invoke", "hello", "-H", ":v"), 2);
    assert_int_equal(RUN("shoal", "invoke", "hello", "-H", "a b:v"), 2);
    assert_int_equal(RUN("shoal", "invoke", "hello", "-q", "a b"), 2);
    assert_int_equal(RUN("shoal", "rm"), 2);
    assert_int_equal(RUN("shoal", "up", "--listen", "8080"), 2);
    assert_int_equal(RUN("shoal", "up", "--listen", "127.0.0.1:65535"), 2);
    assert_int_equal(RUN("shoal", "up", "--worker-listen", "x"), 2);
    assert_int_equal(RUN("shoal", "up", "--slots", "0"), 2);
    assert_int_equal(RUN("shoal", "up", "--node", "a b"), 2);
    assert_int_equal(RUN("shoal", "up", "--node", "Local"), 2);
    assert_int_equal(RUN("shoal", "up", "--url", "http://x"), 2); /* up serves, it has no --url */
    setenv("SHOAL_URL", "not a url", 1);
    assert_int_equal(RUN("shoal", "ls"), 2);
    unsetenv("SHOAL_URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_usage_mentions_options),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
