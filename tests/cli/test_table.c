/* Tests cli/table.c and cli/view.c: column layout, sanitised cells, and the ls/workers tables
 * built from API JSON, including missing fields and unexpected shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "cli/table.h"
#include "cli/view.h"

static void test_layout(void **state)
{
    static const char *const hdr[] = {"NAME", "V", "NOTE"};
    shoal_cli_table_t *t;
    char *s;
    (void)state;

    assert_non_null(t = shoal_cli_table_create(3, hdr));
    assert_int_equal(shoal_cli_table_add(t, (const char *const[]){"hello", "12", "a"}), 0);
    assert_int_equal(shoal_cli_table_add(t, (const char *const[]){"x", NULL, "two\nlines"}), 0);
    assert_int_equal(shoal_cli_table_add(t, (const char *const[]){"caf\xc3\xa9", "", "\x1b[2J"}),
                     0);
    assert_int_equal(shoal_cli_table_rows(t), 3);
    assert_non_null(s = shoal_cli_table_render(t));
    /* Widths count characters, not bytes; NULL and empty cells show "-"; no trailing blanks. */
    assert_string_equal(s, "NAME   V   NOTE\n"
                           "hello  12  a\n"
                           "x      -   two lines\n"
                           "caf\xc3\xa9   -   [2J\n");
    free(s);
    shoal_cli_table_destroy(t);
}

static void test_empty(void **state)
{
    static const char *const hdr[] = {"A", "B"};
    shoal_cli_table_t *t;
    char *s;
    (void)state;

    assert_non_null(t = shoal_cli_table_create(2, hdr));
    assert_non_null(s = shoal_cli_table_render(t));
    assert_string_equal(s, "A  B\n");
    free(s);
    shoal_cli_table_destroy(t);
    assert_null(shoal_cli_table_create(0, hdr));
}

static char *view(char *(*fn)(json_t *), const char *text)
{
    json_t *root = json_loads(text, 0, NULL);
    char *s;

    assert_non_null(root);
    s = fn(root);
    json_decref(root);
    return s;
}

static void test_functions(void **state)
{
    char *s;
    (void)state;

    s = view(shoal_cli_view_functions,
             "{\"functions\":[{\"name\":\"hello\",\"version\":3,\"sha256\":\"ab\",\"size\":15872,"
             "\"timeout_ms\":60000,\"memory_mb\":256,\"min_warm\":0,\"max_instances\":64,"
             "\"created\":\"2024-05-01T12:00:00Z\",\"updated\":\"2024-05-02T08:30:00Z\"},"
             "{\"name\":\"upper\",\"version\":1,\"timeout_ms\":1500}]}");
    assert_non_null(s);
    assert_string_equal(
        s, "NAME   VERSION  SIZE      TIMEOUT  MEMORY   MIN_WARM  MAX  UPDATED\n"
           "hello  3        15.5 KiB  1m       256 MiB  0         64   2024-05-02T08:30:00Z\n"
           "upper  1        -         1500ms   -        -         -    -\n");
    free(s);
    /* A bare array is accepted too; an object without the list is not. */
    s = view(shoal_cli_view_functions, "[]");
    assert_string_equal(s, "NAME  VERSION  SIZE  TIMEOUT  MEMORY  MIN_WARM  MAX  UPDATED\n");
    free(s);
    assert_null(view(shoal_cli_view_functions, "{\"error\":{\"code\":\"x\"}}"));
    assert_null(view(shoal_cli_view_functions, "{\"functions\":3}"));
}

static void test_workers(void **state)
{
    char *s;
    (void)state;

    s = view(shoal_cli_view_workers,
             "{\"workers\":[{\"node\":\"local\",\"slots\":64,\"busy\":1,\"stems\":2,\"pools\":["
             "{\"function\":\"hello\",\"version\":3,\"warm\":2,\"idle\":1,\"busy\":1},"
             "{\"function\":\"upper\",\"version\":1,\"warm\":1,\"idle\":1,\"busy\":0}]},"
             "{\"node\":\"n2\",\"slots\":8,\"busy\":0,\"stems\":0,\"pools\":[]}]}");
    assert_non_null(s);
    assert_string_equal(s,
                        "NODE   SLOTS  BUSY  STEMS  POOLS\n"
                        "local  64     1     2      hello v3 (2 warm, 1 busy), upper v1 (1 warm)\n"
                        "n2     8      0     0      -\n");
    free(s);
}

static void test_triggers(void **state)
{
    char *s;
    (void)state;

    s = view(
        shoal_cli_view_triggers,
        "{\"triggers\":[{\"name\":\"build\",\"function\":\"f\",\"type\":\"http\","
        "\"path\":\"/hooks/build\",\"methods\":[\"POST\",\"PUT\"]},"
        "{\"name\":\"any\",\"function\":\"f\",\"type\":\"http\",\"path\":\"/x\","
        "\"methods\":[]},"
        "{\"name\":\"tick\",\"function\":\"g\",\"type\":\"timer\",\"every_ms\":1000,"
        "\"last_fired\":null,\"next_fire\":\"2026-11-24T10:00:01.000Z\"},"
        "{\"name\":\"nightly\",\"function\":\"g\",\"type\":\"timer\",\"cron\":\"0 3 * * *\","
        "\"last_fired\":\"2026-11-24T03:00:00.000Z\",\"next_fire\":\"2026-11-25T03:00:00.000Z\"},"
        "{\"name\":\"up\",\"function\":\"h\",\"type\":\"topic\",\"topic\":\"uploads\"}]}");
    assert_non_null(s);
    assert_string_equal(s, "NAME     FUNCTION  TYPE   ON                     LAST_FIRED        "
                           "        NEXT_FIRE\n"
                           "build    f         http   POST,PUT /hooks/build  -                 "
                           "        -\n"
                           "any      f         http   * /x                   -                 "
                           "        -\n"
                           "tick     g         timer  every 1000ms           -                 "
                           "        2026-11-24T10:00:01.000Z\n"
                           "nightly  g         timer  cron 0 3 * * *         2026-11-24T03:00:0"
                           "0.000Z  2026-11-25T03:00:00.000Z\n"
                           "up       h         topic  topic uploads          -                 "
                           "        -\n");
    free(s);
    assert_null(view(shoal_cli_view_triggers, "{\"functions\":[]}"));
}

static void test_invocations(void **state)
{
    char *s;
    (void)state;

    /* An error with a line break and an escape sequence stays on one printable line. */
    s = view(shoal_cli_view_invocations,
             "{\"invocations\":[{\"id\":\"0123456789abcdef0123456789abcdef\",\"function\":\"f\","
             "\"state\":\"dead\",\"attempts\":3,\"created\":\"2026-11-24T10:00:00.000Z\","
             "\"finished\":\"2026-11-24T10:00:01.000Z\",\"error\":\"crash:\\n\\u001b[2Jboom\"},"
             "{\"id\":\"fedcba9876543210fedcba9876543210\",\"function\":\"g\",\"state\":\"queued\","
             "\"attempts\":0,\"created\":\"2026-11-24T10:00:02.000Z\",\"finished\":null,"
             "\"error\":null}]}");
    assert_non_null(s);
    assert_string_equal(s, "ID                                FUNCTION  STATE   ATTEMPTS  CREATED"
                           "                   FINISHED                  ERROR\n"
                           "0123456789abcdef0123456789abcdef  f         dead    3         "
                           "2026-11-24T10:00:00.000Z  2026-11-24T10:00:01.000Z  crash: [2Jboom\n"
                           "fedcba9876543210fedcba9876543210  g         queued  0         "
                           "2026-11-24T10:00:02.000Z  -                         -\n");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),    cmocka_unit_test(test_empty),
        cmocka_unit_test(test_functions), cmocka_unit_test(test_workers),
        cmocka_unit_test(test_triggers),  cmocka_unit_test(test_invocations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
