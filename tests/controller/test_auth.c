/* Tests controller/auth.c: parsing the Authorization header and the outcome of a check (ok,
 * missing, malformed, wrong), and that the messages never contain a token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "controller/auth.h"

#define S(s) s, strlen(s)

static const char TOKEN[] = "0123456789abcdef0123456789abcdef";

static void test_parse(void **state)
{
    const char *t;
    size_t n;
    (void)state;

    assert_int_equal(shoal_auth_parse_bearer(S("Bearer abc"), &t, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(t, "abc", 3);
    /* The scheme in any case, several spaces, trailing blanks, token68 padding. */
    assert_int_equal(shoal_auth_parse_bearer(S("bEaReR    a-._~+/9== \t"), &t, &n), 0);
    assert_int_equal(n, 10);
    assert_memory_equal(t, "a-._~+/9==", 10);
    /* Malformed. */
    const char *bad[] = {"",
                         "Bearer",
                         "Bearer ",
                         "Bearer  ",
                         "Basic dXNlcjpwYXNz",
                         "Bearerabc",
                         "Bearer\tabc",
                         "Bearer abc def",
                         "Bearer abc=def",
                         "Bearer ===",
                         "Bearer a\"b",
                         "Bearer abc,",
                         "Token abc",
                         " Bearer abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(shoal_auth_parse_bearer(S(bad[i]), &t, &n), -EINVAL);
    assert_int_equal(shoal_auth_parse_bearer(NULL, 0, &t, &n), -EINVAL);
    /* A NUL inside the value ends nothing: the whole length counts. */
    assert_int_equal(shoal_auth_parse_bearer("Bearer ab\0cd", 12, &t, &n), -EINVAL);
    /* Bounded: a token longer than any secret is malformed, not compared. */
    char big[300 + 8];
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', 300);
    assert_int_equal(shoal_auth_parse_bearer(big, 307, &t, &n), -EINVAL);
    assert_int_equal(shoal_auth_parse_bearer(big, 7 + 256, &t, &n), 0);
}

static void test_check(void **state)
{
    char hdr[128];
    (void)state;

    snprintf(hdr, sizeof(hdr), "Bearer %s", TOKEN);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_OK);
    snprintf(hdr, sizeof(hdr), "bearer %s  ", TOKEN);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_OK);
    assert_int_equal(shoal_auth_check(TOKEN, NULL, 0), SHOAL_AUTH_MISSING);
    assert_int_equal(shoal_auth_check(TOKEN, S("")), SHOAL_AUTH_MALFORMED);
    assert_int_equal(shoal_auth_check(TOKEN, S(TOKEN)), SHOAL_AUTH_MALFORMED);
    snprintf(hdr, sizeof(hdr), "Basic %s", TOKEN);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_MALFORMED);
    /* Wrong: another token, one character off at either end, a prefix, an extension. */
    assert_int_equal(shoal_auth_check(TOKEN, S("Bearer wrongwrongwrongwrong")), SHOAL_AUTH_WRONG);
    snprintf(hdr, sizeof(hdr), "Bearer 1%s", TOKEN + 1);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_WRONG);
    snprintf(hdr, sizeof(hdr), "Bearer %.31se", TOKEN);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_WRONG);
    snprintf(hdr, sizeof(hdr), "Bearer %.31s", TOKEN);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_WRONG);
    snprintf(hdr, sizeof(hdr), "Bearer %sx", TOKEN);
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_WRONG);
    /* Case matters in the token (only the scheme is case-insensitive). */
    snprintf(hdr, sizeof(hdr), "Bearer 0123456789ABCDEF0123456789abcdef");
    assert_int_equal(shoal_auth_check(TOKEN, S(hdr)), SHOAL_AUTH_WRONG);
}

static void test_messages(void **state)
{
    (void)state;
    for (int r = SHOAL_AUTH_OK; r <= SHOAL_AUTH_WRONG; r++) {
        const char *m = shoal_auth_message((shoal_auth_result_t)r);
        assert_non_null(m);
        assert_null(strstr(m, TOKEN));
        assert_null(strchr(m, '\n'));
    }
    assert_non_null(strstr(shoal_auth_message(SHOAL_AUTH_MISSING), "Bearer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
