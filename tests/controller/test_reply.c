/* Tests controller/reply.c: which header values from a function may be sent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "controller/reply.h"

static void test_value_allowed(void **state)
{
    static char big[SHOAL_REPLY_HEADER_VALUE_MAX + 1];
    (void)state;

    assert_true(shoal_reply_value_allowed("text/html; charset=utf-8", 24));
    assert_true(shoal_reply_value_allowed("", 0));
    /* Anything that could end the header line and start another is refused. */
    assert_false(shoal_reply_value_allowed("text/html\r\nSet-Cookie: a=b", 26));
    assert_false(shoal_reply_value_allowed("a\nb", 3));
    assert_false(shoal_reply_value_allowed("a\0b", 3));
    memset(big, 'x', sizeof(big));
    assert_true(shoal_reply_value_allowed(big, SHOAL_REPLY_HEADER_VALUE_MAX));
    assert_false(shoal_reply_value_allowed(big, SHOAL_REPLY_HEADER_VALUE_MAX + 1));
}

static void test_reasons(void **state)
{
    (void)state;
    assert_string_equal(shoal_reply_reason(200), "OK");
    assert_string_equal(shoal_reply_reason(404), "Not Found");
    assert_non_null(shoal_reply_reason(599));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_allowed),
        cmocka_unit_test(test_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
