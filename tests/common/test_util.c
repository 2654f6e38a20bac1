/* Tests common/util.c: the name rule, number parsing, SHA-256, durable writes and mkdir -p. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"

static void test_names(void **state)
{
    char max[64], over[65];
    (void)state;

    memset(max, 'a', 63);
    max[63] = '\0';
    memset(over, 'a', 64);
    over[64] = '\0';
    assert_true(shoal_util_name_valid("hello"));
    assert_true(shoal_util_name_valid("0abc_d-e"));
    assert_true(shoal_util_name_valid("a"));
    assert_true(shoal_util_name_valid(max));
    assert_false(shoal_util_name_valid(over));
    assert_false(shoal_util_name_valid(""));
    assert_false(shoal_util_name_valid(NULL));
    assert_false(shoal_util_name_valid("-a"));
    assert_false(shoal_util_name_valid("_a"));
    assert_false(shoal_util_name_valid("Hello"));
    assert_false(shoal_util_name_valid("a.b"));
    assert_false(shoal_util_name_valid("a/b"));
    assert_false(shoal_util_name_valid("a b"));
}

static void test_parse_u64(void **state)
{
    uint64_t v = 0;
    (void)state;

    assert_int_equal(shoal_util_parse_u64("42", 2, 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(shoal_util_parse_u64("0", 1, 1, 100, &v), -ERANGE);
    assert_int_equal(shoal_util_parse_u64("101", 3, 1, 100, &v), -ERANGE);
    assert_int_equal(shoal_util_parse_u64("", 0, 0, 100, &v), -EINVAL);
    assert_int_equal(shoal_util_parse_u64("-1", 2, 0, 100, &v), -EINVAL);
    assert_int_equal(shoal_util_parse_u64("1x", 2, 0, 100, &v), -EINVAL);
    assert_int_equal(shoal_util_parse_u64("18446744073709551615", 20, 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(shoal_util_parse_u64("18446744073709551616", 20, 0, UINT64_MAX, &v), -ERANGE);
    /* Only len bytes count: the rest of the string is not looked at. */
    assert_int_equal(shoal_util_parse_u64("12&x=3", 2, 0, 100, &v), 0);
    assert_int_equal(v, 12);
}

static void test_sha256(void **state)
{
    char hex[65];
    (void)state;

    shoal_util_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    shoal_util_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_files(void **state)
{
    char dir[] = "/tmp/shoal-util.XXXXXX", path[256], *buf;
    size_t len;
    struct stat st;
    (void)state;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    assert_int_equal(shoal_util_mkdir_p(path, 0755), 0);
    assert_int_equal(shoal_util_mkdir_p(path, 0755), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));

    snprintf(path, sizeof(path), "%s/a/file", dir);
    assert_int_equal(shoal_util_write_file_durable(path, "one", 3, 0600), 0);
    assert_int_equal(shoal_util_write_file_durable(path, "second", 6, 0600), 0);
    assert_int_equal(shoal_util_read_file(path, 100, &buf, &len), 0);
    assert_int_equal(len, 6);
    assert_string_equal(buf, "second");
    free(buf);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(shoal_util_read_file(path, 5, &buf, &len), -EFBIG);
    /* A write into a missing directory fails and leaves nothing behind. */
    snprintf(path, sizeof(path), "%s/missing/file", dir);
    assert_true(shoal_util_write_file_durable(path, "x", 1, 0600) < 0);
    assert_int_equal(shoal_util_read_file(path, 5, &buf, &len), -ENOENT);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_exe_dir(void **state)
{
    char dir[4096];
    (void)state;
    assert_int_equal(shoal_util_exe_dir(dir, sizeof(dir)), 0);
    assert_non_null(strstr(dir, "tests/common"));
}

static void test_lower_hex(void **state)
{
    (void)state;
    assert_true(shoal_util_lower_hex("0123456789abcdef", 16));
    assert_true(shoal_util_lower_hex("", 0));
    assert_true(shoal_util_lower_hex("abcX", 3)); /* only the first len bytes count */
    assert_false(shoal_util_lower_hex("abcX", 4));
    assert_false(shoal_util_lower_hex("ABCDEF", 6));
    assert_false(shoal_util_lower_hex("g", 1));
    assert_false(shoal_util_lower_hex("a\0b", 3));
    assert_false(shoal_util_lower_hex("/", 1)); /* the neighbours of the ranges */
    assert_false(shoal_util_lower_hex(":", 1));
    assert_false(shoal_util_lower_hex("`", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),   cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_sha256),  cmocka_unit_test(test_files),
        cmocka_unit_test(test_exe_dir), cmocka_unit_test(test_lower_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
