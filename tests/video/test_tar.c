/* Tests examples/video/tar.c: the archive is checked by the system's tar, member by member. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "clip.h"
#include "examples/video/tar.h"

static void test_roundtrip(void **state)
{
    (void)state;
    size_t big_len = 70000;
    uint8_t *big = malloc(big_len);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (uint8_t)(i * 7 + (i >> 9));
    const char *json = "{\"renditions\": []}\n";
    vid_tar_entry e[3] = {{"manifest.json", json, strlen(json)},
                          {"1280x720.ivf", big, big_len},
                          {"empty.ivf", "", 0}};
    size_t need = vid_tar_size(e, 3);
    assert_int_equal(need, 512 + 512 + 512 + 137 * 512 + 512 + 1024);
    uint8_t *buf = malloc(need);
    assert_int_equal(vid_tar_write(buf, need - 1, e, 3, 1700000000), -ENOSPC);
    assert_int_equal(vid_tar_write(buf, need, e, 3, 1700000000), (long long)need);

    char path[600], cmd[2048], out[300];
    snprintf(path, sizeof(path), "%s/t.tar", clip_tmpdir());
    snprintf(out, sizeof(out), "%s/x", clip_tmpdir());
    assert_int_equal(clip_write(path, buf, need), 0);
    /* GNU tar verifies header checksums and complains about anything malformed. */
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && tar -xf '%s' -C '%s' 2>&1", out, path, out);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof(cmd),
             "tar -tf '%s' | tr '\\n' ' ' | grep -qx 'manifest.json 1280x720.ivf empty.ivf '",
             path);
    assert_int_equal(system(cmd), 0);
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/1280x720.ivf", out);
    uint8_t *got = clip_read(path, &len);
    assert_non_null(got);
    assert_int_equal(len, big_len);
    assert_memory_equal(got, big, big_len);
    free(got);
    snprintf(path, sizeof(path), "%s/manifest.json", out);
    got = clip_read(path, &len);
    assert_non_null(got);
    assert_int_equal(len, strlen(json));
    assert_memory_equal(got, json, len);
    free(got);
    free(buf);
    free(big);
}

static void test_bad_names(void **state)
{
    (void)state;
    uint8_t buf[4096];
    char longname[120];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    vid_tar_entry e[1] = {{"/etc/passwd", "x", 1}};
    assert_int_equal(vid_tar_write(buf, sizeof(buf), e, 1, 0), -EINVAL);
    e[0].name = "";
    assert_int_equal(vid_tar_write(buf, sizeof(buf), e, 1, 0), -EINVAL);
    e[0].name = longname;
    assert_int_equal(vid_tar_write(buf, sizeof(buf), e, 1, 0), -EINVAL);
    /* An empty archive is two zero blocks. */
    assert_int_equal(vid_tar_write(buf, sizeof(buf), e, 0, 0), 1024);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bad_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
