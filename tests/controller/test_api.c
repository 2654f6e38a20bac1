/* Tests controller/json.c and controller/api.c: string escaping (checked by decoding the output
 * with jansson), error and function object shapes, RFC 3339 times, query parsing for deploy and
 * invoke, and invocation ids. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "controller/api.h"
#include "controller/json.h"

/* Encodes s[0..n) as a JSON string, decodes it with jansson, returns the decoded bytes. */
static json_t *roundtrip(const char *s, size_t n, shoal_json_t *j)
{
    json_error_t e;
    json_t *v;

    shoal_json_reset(j);
    shoal_json_str(j, s, n);
    assert_int_equal(shoal_json_error(j), 0);
    v = json_loadb(j->buf, j->len, JSON_DECODE_ANY, &e);
    if (v == NULL)
        fail_msg("jansson refused %.*s: %s", (int)j->len, j->buf, e.text);
    assert_true(json_is_string(v));
    return v;
}

static void test_json_strings(void **state)
{
    shoal_json_t j;
    json_t *v;
    (void)state;

    shoal_json_init(&j);
    v = roundtrip("a\"b\\c\n\t\x01/", 9, &j);
    assert_string_equal(json_string_value(v), "a\"b\\c\n\t\x01/");
    json_decref(v);
    /* Valid multi-byte UTF-8 passes through unchanged. */
    v = roundtrip("\xc3\xa9\xe2\x82\xac\xf0\x9f\x90\x9f", 9, &j);
    assert_string_equal(json_string_value(v), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x90\x9f");
    json_decref(v);
    /* Invalid bytes, overlongs, surrogates, truncated sequences and NUL become U+FFFD. */
    v = roundtrip("x\xff"
                  "y\xc0\xaf"
                  "z\xed\xa0\x80"
                  "w\0v\xe2\x82",
                  14, &j);
    assert_string_equal(json_string_value(v), "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbdz"
                                              "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdw"
                                              "\xef\xbf\xbdv\xef\xbf\xbd\xef\xbf\xbd");
    json_decref(v);
    /* A long string grows the buffer several times. */
    char big[5000];
    memset(big, 'q', sizeof(big));
    v = roundtrip(big, sizeof(big), &j);
    assert_int_equal(json_string_length(v), sizeof(big));
    json_decref(v);

    shoal_json_reset(&j);
    shoal_json_u64(&j, UINT64_MAX);
    shoal_json_lit(&j, " ");
    shoal_json_i64(&j, INT64_MIN);
    assert_int_equal(j.len, strlen("18446744073709551615 -9223372036854775808"));
    assert_memory_equal(j.buf, "18446744073709551615 -9223372036854775808", j.len);
    shoal_json_trim(&j, 16); /* larger than 16: released */
    assert_null(j.buf);
    shoal_json_free(&j);
}

static void test_error_and_fn_shapes(void **state)
{
    shoal_json_t j;
    json_t *v;
    shoal_fn_t fn = {.name = "hello",
                     .version = 7,
                     .size = 123,
                     .timeout_ms = 1000,
                     .memory_mb = 64,
                     .min_warm = 1,
                     .max_instances = 9,
                     .created_ms = 1700000000123ull,
                     .updated_ms = 1700000001000ull};
    (void)state;

    memset(fn.sha256, 'a', 64);
    fn.sha256[64] = '\0';
    shoal_json_init(&j);
    shoal_api_error_json(&j, SHOAL_API_WRONG_ARCHITECTURE, "ELF for aarch64", 15);
    v = json_loadb(j.buf, j.len, 0, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "code")),
                        "wrong_architecture");
    assert_string_equal(json_string_value(json_object_get(json_object_get(v, "error"), "message")),
                        "ELF for aarch64");
    json_decref(v);

    shoal_json_reset(&j);
    shoal_api_fn_json(&j, &fn, 1);
    v = json_loadb(j.buf, j.len, 0, NULL);
    assert_non_null(v);
    assert_int_equal(json_object_size(v), 11);
    assert_true(json_is_false(json_object_get(v, "public")));
    assert_int_equal(json_integer_value(json_object_get(v, "version")), 7);
    assert_int_equal(json_integer_value(json_object_get(v, "max_instances")), 9);
    assert_string_equal(json_string_value(json_object_get(v, "created")),
                        "2023-11-14T22:13:20.123Z");
    assert_string_equal(json_string_value(json_object_get(v, "updated")),
                        "2023-11-14T22:13:21.000Z");
    json_decref(v);
    shoal_json_reset(&j);
    shoal_api_fn_json(&j, &fn, 0);
    v = json_loadb(j.buf, j.len, 0, NULL);
    assert_int_equal(json_object_size(v), 9);
    assert_null(json_object_get(v, "created"));
    json_decref(v);
    shoal_json_free(&j);

    assert_string_equal(shoal_api_err_code(SHOAL_API_OVERLOADED), "overloaded");
    assert_int_equal(shoal_api_err_status(SHOAL_API_OVERLOADED), 429);
    assert_int_equal(shoal_api_err_status(SHOAL_API_NO_WORKERS), 503);
    assert_int_equal(shoal_api_err_status(SHOAL_API_TIMEOUT), 504);
    assert_int_equal(shoal_api_err_status(SHOAL_API_FUNCTION_CRASHED), 502);
    assert_int_equal(shoal_api_err_status(SHOAL_API_TOO_LARGE), 413);
    assert_string_equal(shoal_api_err_code((shoal_api_err_t)999), "internal");
}

static void test_rfc3339(void **state)
{
    char t[32];
    (void)state;

    shoal_api_rfc3339(0, t);
    assert_string_equal(t, "1970-01-01T00:00:00.000Z");
    shoal_api_rfc3339(951782400999ull, t); /* 2000-02-29, a leap day */
    assert_string_equal(t, "2000-02-29T00:00:00.999Z");
}

#define Q(s) s, strlen(s)

static void test_deploy_query(void **state)
{
    shoal_fn_limits_t l;
    char err[256];
    (void)state;

    assert_int_equal(shoal_api_parse_deploy_query(Q(""), &l, err, sizeof(err)), 0);
    assert_int_equal(l.set, 0);
    assert_int_equal(
        shoal_api_parse_deploy_query(Q("timeout_ms=5&memory_mb=16&&min_warm=0&max_instances=1024"),
                                     &l, err, sizeof(err)),
        0);
    assert_int_equal(l.set, SHOAL_LIMIT_TIMEOUT | SHOAL_LIMIT_MEMORY | SHOAL_LIMIT_MIN_WARM |
                                SHOAL_LIMIT_MAX_INSTANCES);
    assert_int_equal(l.timeout_ms, 5);
    assert_int_equal(l.memory_mb, 16);
    assert_int_equal(l.max_instances, 1024);

    assert_int_equal(shoal_api_parse_deploy_query(Q("timeout_ms=900001"), &l, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "timeout_ms must be an integer in 1..900000");
    assert_int_equal(shoal_api_parse_deploy_query(Q("memory_mb=15"), &l, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "memory_mb must be an integer in 16..16384");
    assert_int_equal(shoal_api_parse_deploy_query(Q("min_warm=-1"), &l, err, sizeof(err)), -EINVAL);
    assert_int_equal(shoal_api_parse_deploy_query(Q("max_instances"), &l, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "max_instances must be an integer in 1..1024");
    assert_int_equal(shoal_api_parse_deploy_query(Q("timeout_ms=1e3"), &l, err, sizeof(err)),
                     -EINVAL);
    assert_int_equal(
        shoal_api_parse_deploy_query(Q("timeout_ms=1&timeout_ms=2"), &l, err, sizeof(err)),
        -EINVAL);
    assert_non_null(strstr(err, "more than once"));
    assert_int_equal(shoal_api_parse_deploy_query(Q("timeout=5"), &l, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "unknown parameter 'timeout'"));
    assert_int_equal(
        shoal_api_parse_deploy_query(Q("min_warm=3&max_instances=2"), &l, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err, "min_warm (3) must not exceed max_instances (2)");

    /* public: a boolean, like invoke's async. */
    assert_int_equal(shoal_api_parse_deploy_query(Q("public=1"), &l, err, sizeof(err)), 0);
    assert_int_equal(l.set, SHOAL_LIMIT_PUBLIC);
    assert_int_equal(l.is_public, 1);
    assert_int_equal(
        shoal_api_parse_deploy_query(Q("public=false&timeout_ms=9"), &l, err, sizeof(err)), 0);
    assert_int_equal(l.set, SHOAL_LIMIT_PUBLIC | SHOAL_LIMIT_TIMEOUT);
    assert_int_equal(l.is_public, 0);
    assert_int_equal(shoal_api_parse_deploy_query(Q("public"), &l, err, sizeof(err)), 0);
    assert_int_equal(l.is_public, 1);
    assert_int_equal(shoal_api_parse_deploy_query(Q("public=yes"), &l, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "public must be true or false (or 1 or 0)");
    assert_int_equal(shoal_api_parse_deploy_query(Q("public=1&public=0"), &l, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "more than once"));
}

static void test_invoke_query(void **state)
{
    shoal_api_invoke_params_t p;
    char err[256];
    (void)state;

    assert_int_equal(shoal_api_parse_invoke_query(Q("x=1&group=1&mine"), &p, err, sizeof(err)), 0);
    assert_int_equal(p.group, 1);
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("transport=shm&spread=false"), &p, err, sizeof(err)), 0);
    assert_string_equal(p.transport, "shm");
    assert_int_equal(p.spread, 0);
    assert_int_equal(shoal_api_parse_invoke_query(Q("group=4"), &p, err, sizeof(err)), 0);
    assert_int_equal(p.group, 4);
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("group=1024&transport=auto"), &p, err, sizeof(err)), 0);
    assert_int_equal(p.group, 1024);
    assert_int_equal(shoal_api_parse_invoke_query(Q("group=1025"), &p, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "group must be an integer in 1..1024");
    /* Groups spread over nodes: spread=1, or transport=tcp; not with shm or redis. */
    assert_int_equal(shoal_api_parse_invoke_query(Q("group=4&spread=1"), &p, err, sizeof(err)), 0);
    assert_int_equal(p.spread, 1);
    assert_int_equal(shoal_api_parse_invoke_query(Q("group=2&transport=tcp"), &p, err, sizeof(err)),
                     0);
    assert_string_equal(p.transport, "tcp");
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("group=4&spread=1&transport=shm"), &p, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err, "spread=true needs transport=tcp or auto, not shm");
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("group=4&spread=1&transport=redis"), &p, err, sizeof(err)),
        -EINVAL);
    /* transport=redis parses; whether the controller has a Redis is http.c's to check. */
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("group=4&transport=redis"), &p, err, sizeof(err)), 0);
    assert_string_equal(p.transport, "redis");
    assert_int_equal(p.group, 4);
    assert_int_equal(shoal_api_parse_invoke_query(Q("transport=redis"), &p, err, sizeof(err)), 0);
    /* A group of one is a plain invocation: nothing to spread. */
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("spread=1&transport=tcp"), &p, err, sizeof(err)), 0);
    assert_int_equal(p.spread, 1);
    assert_int_equal(shoal_api_parse_invoke_query(Q("group=0"), &p, err, sizeof(err)), -EINVAL);
    assert_string_equal(err, "group must be an integer in 1..1024");
    assert_int_equal(shoal_api_parse_invoke_query(Q("async=true"), &p, err, sizeof(err)), 0);
    assert_int_equal(p.async, 1);
    assert_int_equal(shoal_api_parse_invoke_query(Q("async=0"), &p, err, sizeof(err)), 0);
    assert_int_equal(shoal_api_parse_invoke_query(Q("async=maybe"), &p, err, sizeof(err)), -EINVAL);
    assert_int_equal(
        shoal_api_parse_invoke_query(Q("transport=carrier-pigeon"), &p, err, sizeof(err)), -EINVAL);
    assert_int_equal(shoal_api_parse_invoke_query(Q("group=1&group=1"), &p, err, sizeof(err)),
                     -EINVAL);
}

static void test_query_iteration(void **state)
{
    shoal_api_param_t p;
    size_t pos = 0;
    const char *q = "&a=1&&b&=x&c=";
    (void)state;

    assert_int_equal(shoal_api_query_next(q, strlen(q), &pos, &p), 1);
    assert_memory_equal(p.key, "a", 1);
    assert_int_equal(p.val_len, 1);
    assert_int_equal(shoal_api_query_next(q, strlen(q), &pos, &p), 1);
    assert_int_equal(p.key_len, 1);
    assert_null(p.val);
    assert_int_equal(shoal_api_query_next(q, strlen(q), &pos, &p), 1);
    assert_int_equal(p.key_len, 0);
    assert_int_equal(shoal_api_query_next(q, strlen(q), &pos, &p), 1);
    assert_memory_equal(p.key, "c", 1);
    assert_non_null(p.val);
    assert_int_equal(p.val_len, 0);
    assert_int_equal(shoal_api_query_next(q, strlen(q), &pos, &p), 0);
}

static void test_ids(void **state)
{
    static char ids[2000][33];
    shoal_api_idgen_t g;
    (void)state;

    shoal_api_idgen_init(&g);
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(shoal_api_new_id(&g, ids[i]), 0);
        assert_int_equal(strlen(ids[i]), 32);
        assert_int_equal(strspn(ids[i], "0123456789abcdef"), 32);
        for (int k = 0; k < i; k++)
            assert_string_not_equal(ids[i], ids[k]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_strings), cmocka_unit_test(test_error_and_fn_shapes),
        cmocka_unit_test(test_rfc3339),      cmocka_unit_test(test_deploy_query),
        cmocka_unit_test(test_invoke_query), cmocka_unit_test(test_query_iteration),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
