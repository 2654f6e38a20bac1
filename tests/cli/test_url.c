/* Tests cli/url.c: base URL normalisation, query building with encoding, ADDR:PORT pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "cli/url.h"

static void test_base(void **state)
{
    char b[64];
    (void)state;

    assert_int_equal(shoal_cli_url_base("http://127.0.0.1:8080", b, sizeof(b)), 0);
    assert_string_equal(b, "http://127.0.0.1:8080");
    assert_int_equal(shoal_cli_url_base("localhost:9000/", b, sizeof(b)), 0);
    assert_string_equal(b, "http://localhost:9000");
    assert_int_equal(shoal_cli_url_base("HTTPS://h/prefix//", b, sizeof(b)), 0);
    assert_string_equal(b, "HTTPS://h/prefix");
    assert_int_equal(shoal_cli_url_base("", b, sizeof(b)), -1);
    assert_int_equal(shoal_cli_url_base("/", b, sizeof(b)), -1);
    assert_int_equal(shoal_cli_url_base("http://", b, sizeof(b)), -1);
    assert_int_equal(shoal_cli_url_base("ftp://h", b, sizeof(b)), -1);
    assert_int_equal(shoal_cli_url_base("http://a b", b, sizeof(b)), -1);
    assert_int_equal(shoal_cli_url_base("http://a\nb", b, sizeof(b)), -1);
    assert_int_equal(
        shoal_cli_url_base("http://a-rather-long-host-name.example.org:8080/and/a/path", b, 32),
        -1);
}

static void test_query(void **state)
{
    char b[40] = "/v1/functions/x";
    (void)state;

    assert_int_equal(shoal_cli_url_query_add(b, sizeof(b), "a", "1"), 0);
    assert_string_equal(b, "/v1/functions/x?a=1");
    assert_int_equal(shoal_cli_url_query_add(b, sizeof(b), "b", "x y&/"), 0);
    assert_string_equal(b, "/v1/functions/x?a=1&b=x%20y%26%2F");
    /* Does not fit: b is left as it was. */
    assert_int_equal(shoal_cli_url_query_add(b, sizeof(b), "c", "123456"), -1);
    assert_string_equal(b, "/v1/functions/x?a=1&b=x%20y%26%2F");
    assert_int_equal(shoal_cli_url_query_add(b, sizeof(b), "c", "123"), 0);
    assert_int_equal(strlen(b), sizeof(b) - 1);
}

static void test_function_path(void **state)
{
    char b[48];
    (void)state;

    assert_int_equal(shoal_cli_url_function_path(b, sizeof(b), "hello", "/invoke?a=1"), 0);
    assert_string_equal(b, "/v1/functions/hello/invoke?a=1");
    /* Whatever was typed stays one path segment. */
    assert_int_equal(shoal_cli_url_function_path(b, sizeof(b), "../x?y#", ""), 0);
    assert_string_equal(b, "/v1/functions/..%2Fx%3Fy%23");
    assert_int_equal(
        shoal_cli_url_function_path(b, sizeof(b), "a-rather-long-name-here", "/invoke"), 0);
    assert_int_equal(strlen(b), 44);
    assert_int_equal(
        shoal_cli_url_function_path(b, sizeof(b), "a-rather-long-name-here!!", "/invoke"), -1);
}

static void test_hostport(void **state)
{
    char host[64], out[80];
    unsigned port = 0;
    (void)state;

    assert_int_equal(shoal_cli_url_hostport_parse("127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(shoal_cli_url_hostport_parse("[::1]:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1);
    assert_int_equal(shoal_cli_url_hostport_parse("localhost:65535", host, sizeof(host), &port), 0);
    assert_int_equal(port, 65535);
    assert_int_equal(shoal_cli_url_hostport_parse("localhost:65536", host, sizeof(host), &port),
                     -1);
    assert_int_equal(shoal_cli_url_hostport_parse("localhost:0", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse("localhost", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse(":8080", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse("::1:8080", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse("[::1]8080", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse("h:80x", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse("a/b:80", host, sizeof(host), &port), -1);
    assert_int_equal(shoal_cli_url_hostport_parse("abcdef:80", host, 4, &port), -1);

    assert_string_equal(shoal_cli_url_hostport_format("0.0.0.0", 8081, out, sizeof(out)),
                        "0.0.0.0:8081");
    assert_string_equal(shoal_cli_url_hostport_format("::1", 8081, out, sizeof(out)), "[::1]:8081");
    assert_string_equal(shoal_cli_url_connect_host("0.0.0.0"), "127.0.0.1");
    assert_string_equal(shoal_cli_url_connect_host("::"), "::1");
    assert_string_equal(shoal_cli_url_connect_host("10.0.0.5"), "10.0.0.5");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_function_path),
        cmocka_unit_test(test_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
