/* Tests common/secret.c: the comparison, the secret syntax, generation, and the files: mode 0600
 * from the first byte, a trailing newline, malformed content, loose modes narrowed, and the
 * start-up choice between a given secret, the stored one and a new one. */
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

#include "common/secret.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/shoal-test-secret-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_raw(const char *path, const char *content, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_equal(void **state)
{
    const char *a = "0123456789abcdef0123456789abcdef";
    char b[64];
    (void)state;

    strcpy(b, a);
    assert_true(shoal_secret_equal(a, strlen(a), b, strlen(b)));
    b[0] = '1';
    assert_false(shoal_secret_equal(a, strlen(a), b, strlen(b)));
    strcpy(b, a);
    b[31] = 'e';
    assert_false(shoal_secret_equal(a, strlen(a), b, strlen(b)));
    /* A prefix, an extension, and empty inputs are not equal to the whole. */
    assert_false(shoal_secret_equal(a, strlen(a), a, strlen(a) - 1));
    strcpy(b, a);
    strcat(b, "0");
    assert_false(shoal_secret_equal(a, strlen(a), b, strlen(b)));
    assert_false(shoal_secret_equal(a, strlen(a), "", 0));
    assert_true(shoal_secret_equal("", 0, "", 0));
    /* Bytes, not strings: a NUL inside counts. */
    assert_false(shoal_secret_equal("ab\0c", 4, "ab\0d", 4));
}

static void test_valid_and_generate(void **state)
{
    char s[65], t[65], big[300];
    (void)state;

    assert_true(shoal_secret_valid("abcdefghijklmnop", 16));
    assert_true(shoal_secret_valid("A-._~+/0123456789==", 19));
    assert_false(shoal_secret_valid("abcdefghijklmno", 15)); /* too short */
    assert_false(shoal_secret_valid("abcdefgh ijklmnop", 17));
    assert_false(shoal_secret_valid("abcdefghijklmnop\n", 17));
    assert_false(shoal_secret_valid("abcdefgh\"ijklmnop", 17));
    assert_false(shoal_secret_valid("abcdefgh=ijklmnop", 17)); /* '=' only at the end */
    assert_false(shoal_secret_valid("================", 16));
    assert_false(shoal_secret_valid(NULL, 0));
    memset(big, 'a', sizeof(big));
    assert_true(shoal_secret_valid(big, SHOAL_SECRET_MAX));
    assert_false(shoal_secret_valid(big, SHOAL_SECRET_MAX + 1));

    assert_int_equal(shoal_secret_generate(s), 0);
    assert_int_equal(shoal_secret_generate(t), 0);
    assert_int_equal(strlen(s), 64);
    assert_int_equal(strspn(s, "0123456789abcdef"), 64);
    assert_true(shoal_secret_valid(s, 64));
    assert_string_not_equal(s, t);
}

static void test_files(void **state)
{
    char path[128], out[SHOAL_SECRET_MAX + 1];
    struct stat st;
    int loose;
    (void)state;

    snprintf(path, sizeof(path), "%s/token", dir);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), NULL), -ENOENT);
    /* Even with a permissive umask, and over a leftover temporary file of a crash. */
    mode_t old = umask(0);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    write_raw(tmp, "leftover", 0644);
    assert_int_equal(shoal_secret_store(path, "stored-secret-0123456789"), 0);
    umask(old);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_not_equal(access(tmp, F_OK), 0);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), &loose), 0);
    assert_string_equal(out, "stored-secret-0123456789");
    assert_int_equal(loose, 0);
    assert_int_equal(shoal_secret_store(path, "short"), -EINVAL);

    /* Written by hand: CRLF is trimmed, a loose mode is narrowed. */
    write_raw(path, "hand-written-secret-value\r\n", 0644);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), &loose), 0);
    assert_string_equal(out, "hand-written-secret-value");
    assert_int_equal(loose, 1);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Malformed: two lines, spaces, too short, too long, empty. */
    write_raw(path, "hand-written-secret\nsecond-line-here\n", 0600);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), NULL), -EINVAL);
    write_raw(path, "with a space in it ok", 0600);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), NULL), -EINVAL);
    write_raw(path, "short\n", 0600);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), NULL), -EINVAL);
    write_raw(path, "", 0600);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), NULL), -EINVAL);
    char big[SHOAL_SECRET_MAX + 10];
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    write_raw(path, big, 0600);
    assert_int_equal(shoal_secret_load(path, out, sizeof(out), NULL), -EINVAL);
    /* A directory is not a secret file; a buffer too small is refused up front. */
    assert_int_equal(shoal_secret_load(dir, out, sizeof(out), NULL), -EINVAL);
    assert_int_equal(shoal_secret_load(path, out, 16, NULL), -ENOBUFS);
}

static void test_init(void **state)
{
    char path[128], a[SHOAL_SECRET_MAX + 1], b[SHOAL_SECRET_MAX + 1];
    shoal_secret_origin_t o;
    struct stat st;
    (void)state;

    snprintf(path, sizeof(path), "%s/cluster.key", dir);
    /* First start: a new one, stored 0600. */
    assert_int_equal(shoal_secret_init(path, NULL, a, sizeof(a), &o), 0);
    assert_int_equal(o, SHOAL_SECRET_CREATED);
    assert_int_equal(strlen(a), 64);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* Restart: the same one. */
    assert_int_equal(shoal_secret_init(path, "", b, sizeof(b), &o), 0);
    assert_int_equal(o, SHOAL_SECRET_LOADED);
    assert_string_equal(a, b);
    /* Given: used, and it replaces the stored one (rotation). */
    assert_int_equal(shoal_secret_init(path, "rotated-secret-value-1", b, sizeof(b), &o), 0);
    assert_int_equal(o, SHOAL_SECRET_GIVEN);
    assert_string_equal(b, "rotated-secret-value-1");
    assert_int_equal(shoal_secret_init(path, NULL, b, sizeof(b), &o), 0);
    assert_int_equal(o, SHOAL_SECRET_LOADED);
    assert_string_equal(b, "rotated-secret-value-1");
    /* A malformed given value is refused and changes nothing. */
    assert_int_equal(shoal_secret_init(path, "bad value", b, sizeof(b), &o), -EINVAL);
    assert_int_equal(shoal_secret_init(path, NULL, b, sizeof(b), &o), 0);
    assert_string_equal(b, "rotated-secret-value-1");
    /* A damaged file is an error without a given value, and replaced with one. */
    write_raw(path, "x\n", 0600);
    assert_int_equal(shoal_secret_init(path, NULL, b, sizeof(b), &o), -EINVAL);
    assert_int_equal(shoal_secret_init(path, "repaired-secret-value", b, sizeof(b), &o), 0);
    assert_int_equal(shoal_secret_init(path, NULL, b, sizeof(b), &o), 0);
    assert_string_equal(b, "repaired-secret-value");
    /* Deleting the file rotates to a new random one. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(shoal_secret_init(path, NULL, b, sizeof(b), &o), 0);
    assert_int_equal(o, SHOAL_SECRET_CREATED);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_valid_and_generate),
        cmocka_unit_test_setup_teardown(test_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
