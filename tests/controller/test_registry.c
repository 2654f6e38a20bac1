/* Tests controller/registry.c: put/get/list/delete, versions that only increase (across updates,
 * deletes and reopening), limits merging and validation, the history table, artifact storage and
 * reading (including hostile ids), the home lock, survival of a process that dies without
 * closing, garbage collection of crash leftovers and orphans, and concurrent deploys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "controller/registry.h"

static char home[64];

static int exists(const char *fmt, const char *arg)
{
    char path[512];
    struct stat sb;
    snprintf(path, sizeof(path), fmt, home, arg);
    return stat(path, &sb) == 0;
}

static void touch(const char *name, const char *content)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof(path), "%s/artifacts/%s", home, name);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/shoal-test-reg-XXXXXX");
    return mkdtemp(home) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_crud_and_versions(void **state)
{
    shoal_registry_t *r;
    shoal_fn_t fn, fn2, *list;
    size_t n;
    int created;
    char err[256];
    (void)state;

    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_list(r, &list, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(shoal_registry_get(r, "a", &fn), -ENOENT);

    assert_int_equal(shoal_registry_put(r, "a", "one", 3, NULL, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 1);
    assert_true(created);
    assert_int_equal(fn.size, 3);
    assert_int_equal(fn.timeout_ms, SHOAL_FN_TIMEOUT_DEFAULT);
    assert_int_equal(fn.memory_mb, SHOAL_FN_MEMORY_DEFAULT);
    assert_int_equal(fn.max_instances, SHOAL_FN_MAX_INSTANCES_DEFAULT);
    /* sha256("one") */
    assert_string_equal(fn.sha256,
                        "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed");
    assert_true(exists("%s/artifacts/%s.so", fn.sha256));

    shoal_fn_limits_t lim = {.set = SHOAL_LIMIT_TIMEOUT | SHOAL_LIMIT_MAX_INSTANCES,
                             .timeout_ms = 500,
                             .max_instances = 3};
    usleep(2000);
    assert_int_equal(shoal_registry_put(r, "a", "two", 3, &lim, &fn2, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn2.version, 2);
    assert_false(created);
    assert_int_equal(fn2.created_ms, fn.created_ms);
    assert_true(fn2.updated_ms > fn.updated_ms);
    assert_int_equal(fn2.timeout_ms, 500);
    assert_int_equal(fn2.max_instances, 3);

    /* Limits not given keep their values; a conflict is refused and changes nothing. */
    shoal_fn_limits_t warm = {.set = SHOAL_LIMIT_MIN_WARM, .min_warm = 4};
    assert_int_equal(shoal_registry_put(r, "a", "xxx", 3, &warm, &fn, &created, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "min_warm (4) must not exceed max_instances (3)");
    shoal_fn_limits_t big = {.set = SHOAL_LIMIT_MEMORY, .memory_mb = 99999};
    assert_int_equal(shoal_registry_put(r, "a", "xxx", 3, &big, &fn, &created, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "memory_mb must be an integer in 16..16384");
    assert_int_equal(shoal_registry_get(r, "a", &fn), 0);
    assert_int_equal(fn.version, 2);
    assert_int_equal(fn.timeout_ms, 500);
    assert_int_equal(shoal_registry_put(r, "a", "three", 5, NULL, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 3);
    assert_int_equal(fn.timeout_ms, 500);
    assert_int_equal(fn.max_instances, 3);

    assert_int_equal(shoal_registry_put(r, "b", "bee", 3, NULL, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 1);
    assert_int_equal(shoal_registry_put(r, "Bad!", "x", 1, NULL, &fn, &created, err, sizeof(err)),
                     -EINVAL);

    assert_int_equal(shoal_registry_list(r, &list, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a");
    assert_int_equal(list[0].version, 3);
    assert_string_equal(list[1].name, "b");
    free(list);

    /* Delete keeps a tombstone: the next deploy of the name goes on from version 3, as a
     * creation with default limits. */
    assert_int_equal(shoal_registry_delete(r, "a", &fn), 0);
    assert_int_equal(fn.version, 3);
    assert_int_equal(shoal_registry_delete(r, "a", NULL), -ENOENT);
    assert_int_equal(shoal_registry_delete(r, "zzz", NULL), -ENOENT);
    assert_int_equal(shoal_registry_get(r, "a", &fn), -ENOENT);
    assert_int_equal(shoal_registry_list(r, &list, &n), 0);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(shoal_registry_put(r, "a", "four", 4, NULL, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 4);
    assert_true(created);
    assert_int_equal(fn.timeout_ms, SHOAL_FN_TIMEOUT_DEFAULT);

    shoal_fn_t *hist;
    assert_int_equal(shoal_registry_history(r, "a", &hist, &n), 0);
    assert_int_equal(n, 4);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hist[i].version, i + 1);
    assert_int_equal(hist[1].timeout_ms, 500);
    free(hist);
    assert_int_equal(shoal_registry_history(r, "nobody", &hist, &n), -ENOENT);
    shoal_registry_close(r);

    /* Reopening keeps everything, and versions go on. */
    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_get(r, "a", &fn), 0);
    assert_int_equal(fn.version, 4);
    assert_int_equal(shoal_registry_put(r, "a", "five", 4, NULL, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 5);
    assert_int_equal(shoal_registry_delete(r, "a", NULL), 0);
    shoal_registry_close(r);
    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_put(r, "a", "six", 3, NULL, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 6);
    shoal_registry_close(r);
}

/* The public flag: set by a deploy, kept by later deploys that do not mention it, cleared by a
 * delete (a redeployed name starts private), and stored durably. */
static void test_public_flag(void **state)
{
    shoal_registry_t *r;
    shoal_fn_t fn, *list;
    size_t n;
    int created;
    char err[128];
    shoal_fn_limits_t pub = {.set = SHOAL_LIMIT_PUBLIC, .is_public = 1};
    shoal_fn_limits_t priv = {.set = SHOAL_LIMIT_PUBLIC, .is_public = 0};
    shoal_fn_limits_t none = {.set = 0};
    (void)state;

    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_put(r, "p", "a", 1, &none, &fn, &created, err, sizeof(err)), 0);
    assert_int_equal(fn.is_public, 0);
    assert_int_equal(shoal_registry_put(r, "p", "b", 1, &pub, &fn, &created, err, sizeof(err)), 0);
    assert_int_equal(fn.is_public, 1);
    assert_int_equal(shoal_registry_put(r, "p", "c", 1, &none, &fn, &created, err, sizeof(err)), 0);
    assert_int_equal(fn.is_public, 1);
    shoal_registry_close(r);
    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_get(r, "p", &fn), 0);
    assert_int_equal(fn.is_public, 1);
    assert_int_equal(shoal_registry_list(r, &list, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].is_public, 1);
    free(list);
    assert_int_equal(shoal_registry_history(r, "p", &list, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(list[0].is_public, 0);
    assert_int_equal(list[1].is_public, 1);
    free(list);
    assert_int_equal(shoal_registry_put(r, "p", "d", 1, &priv, &fn, &created, err, sizeof(err)), 0);
    assert_int_equal(fn.is_public, 0);
    assert_int_equal(shoal_registry_put(r, "p", "e", 1, &pub, &fn, &created, err, sizeof(err)), 0);
    assert_int_equal(shoal_registry_delete(r, "p", NULL), 0);
    assert_int_equal(shoal_registry_put(r, "p", "f", 1, &none, &fn, &created, err, sizeof(err)), 0);
    assert_int_equal(created, 1);
    assert_int_equal(fn.is_public, 0);
    shoal_registry_close(r);
}

/* A database made by a schema-1 controller (no public column) opens, keeps its rows (private),
 * and takes public deploys. */
static void test_migrates_schema1(void **state)
{
    static const char OLD[] =
        "CREATE TABLE functions(name TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL,"
        " sha256 TEXT NOT NULL, size INTEGER NOT NULL, timeout_ms INTEGER NOT NULL,"
        " memory_mb INTEGER NOT NULL, min_warm INTEGER NOT NULL, max_instances INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL,"
        " deleted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
        "CREATE TABLE versions(name TEXT NOT NULL, version INTEGER NOT NULL,"
        " sha256 TEXT NOT NULL, size INTEGER NOT NULL, timeout_ms INTEGER NOT NULL,"
        " memory_mb INTEGER NOT NULL, min_warm INTEGER NOT NULL, max_instances INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL, PRIMARY KEY(name, version)) WITHOUT ROWID;"
        "INSERT INTO functions VALUES('old',3,'%s',1,60000,256,0,64,1,2,0);"
        "INSERT INTO versions VALUES('old',3,'%s',1,60000,256,0,64,1);"
        "PRAGMA user_version=1;";
    char path[128], sha[65], sql[2048], apath[256], err[128];
    shoal_registry_t *r;
    shoal_fn_t fn;
    sqlite3 *db;
    FILE *f;
    int created;
    shoal_fn_limits_t pub = {.set = SHOAL_LIMIT_PUBLIC, .is_public = 1};
    (void)state;

    shoal_util_sha256_hex("x", 1, sha);
    snprintf(apath, sizeof(apath), "%s/artifacts", home);
    assert_int_equal(shoal_util_mkdir_p(apath, 0755), 0);
    snprintf(apath, sizeof(apath), "%s/artifacts/%s.so", home, sha);
    assert_non_null(f = fopen(apath, "w"));
    fputs("x", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/shoal.db", home);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(sql, sizeof(sql), OLD, sha, sha);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_get(r, "old", &fn), 0);
    assert_int_equal(fn.version, 3);
    assert_int_equal(fn.is_public, 0);
    assert_int_equal(shoal_registry_put(r, "old", "y", 1, &pub, &fn, &created, err, sizeof(err)),
                     0);
    assert_int_equal(fn.version, 4);
    assert_int_equal(fn.is_public, 1);
    shoal_registry_close(r);
    /* And again: the migration happens once. */
    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_get(r, "old", &fn), 0);
    assert_int_equal(fn.is_public, 1);
    shoal_registry_close(r);
}

static void test_artifacts_and_gc(void **state)
{
    shoal_registry_t *r;
    shoal_fn_t keep, old, gone;
    char err[256], orphan[80];
    void *buf;
    size_t len;
    int created;
    (void)state;

    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(
        shoal_registry_put(r, "gc-old", "old bytes", 9, NULL, &old, &created, err, sizeof(err)), 0);
    assert_int_equal(
        shoal_registry_put(r, "gc-old", "new bytes", 9, NULL, &keep, &created, err, sizeof(err)),
        0);
    assert_int_equal(
        shoal_registry_put(r, "gc-gone", "gone bytes", 10, NULL, &gone, &created, err, sizeof(err)),
        0);
    assert_int_equal(shoal_registry_delete(r, "gc-gone", NULL), 0);

    assert_int_equal(shoal_registry_read_artifact(r, keep.sha256, 100, &buf, &len), 0);
    assert_int_equal(len, 9);
    assert_memory_equal(buf, "new bytes", 9);
    free(buf);
    assert_int_equal(shoal_registry_read_artifact(r, keep.sha256, 4, &buf, &len), -EFBIG);
    assert_int_equal(shoal_registry_read_artifact(r, "../../../../etc/passwd", 100, &buf, &len),
                     -EINVAL);
    assert_int_equal(shoal_registry_read_artifact(r, NULL, 100, &buf, &len), -EINVAL);
    char upper[65];
    memcpy(upper, keep.sha256, 65);
    upper[0] = 'A';
    assert_int_equal(shoal_registry_read_artifact(r, upper, 100, &buf, &len), -EINVAL);
    char unknown[65];
    memset(unknown, '0', 64);
    unknown[64] = '\0';
    assert_int_equal(shoal_registry_read_artifact(r, unknown, 100, &buf, &len), -ENOENT);

    /* While open, the home is locked against a second controller. */
    shoal_registry_t *r2;
    assert_int_equal(shoal_registry_open(home, &r2), -EBUSY);
    shoal_registry_close(r);

    /* What a crash can leave: a temporary file, and an artifact whose transaction never
     * committed. Plus a file that is none of our business. */
    touch("abc.so.tmp.1234", "half");
    snprintf(orphan, sizeof(orphan), "%064d.so", 7);
    touch(orphan, "never committed");
    touch("README", "not ours");
    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_false(exists("%s/artifacts/%s", "abc.so.tmp.1234"));
    assert_false(exists("%s/artifacts/%s", orphan));
    assert_true(exists("%s/artifacts/%s", "README"));
    assert_true(exists("%s/artifacts/%s.so", keep.sha256));
    assert_false(exists("%s/artifacts/%s.so", old.sha256));  /* replaced version */
    assert_false(exists("%s/artifacts/%s.so", gone.sha256)); /* deleted function */
    assert_int_equal(shoal_registry_read_artifact(r, keep.sha256, 100, &buf, &len), 0);
    free(buf);
    shoal_registry_close(r);
}

/* A controller killed without closing anything: what it committed is there after a restart. */
static void test_survives_abrupt_exit(void **state)
{
    shoal_registry_t *r;
    shoal_fn_t fn;
    pid_t pid;
    int st;
    (void)state;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[64];
        int created;
        if (shoal_registry_open(home, &r) < 0 ||
            shoal_registry_put(r, "crashy", "bytes", 5, NULL, &fn, &created, err, sizeof(err)) < 0)
            _exit(1);
        _exit(0); /* no close, no checkpoint, no atexit */
    }
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(shoal_registry_open(home, &r), 0);
    assert_int_equal(shoal_registry_get(r, "crashy", &fn), 0);
    assert_true(exists("%s/artifacts/%s.so", fn.sha256));
    shoal_registry_close(r);
}

static shoal_registry_t *shared;

static void *deployer(void *arg)
{
    char body[32], err[128];
    shoal_fn_t fn;
    int created;

    for (int i = 0; i < 40; i++) {
        snprintf(body, sizeof(body), "%s-%d", (const char *)arg, i);
        if (shoal_registry_put(shared, "race", body, strlen(body), NULL, &fn, &created, err,
                               sizeof(err)) < 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent_deploys(void **state)
{
    pthread_t a, b;
    void *ra, *rb;
    shoal_fn_t *hist;
    size_t n;
    (void)state;

    assert_int_equal(shoal_registry_open(home, &shared), 0);
    pthread_create(&a, NULL, deployer, "a");
    pthread_create(&b, NULL, deployer, "b");
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    assert_null(ra);
    assert_null(rb);
    /* Every deploy got its own version: 1..80 without gaps or repeats. */
    assert_int_equal(shoal_registry_history(shared, "race", &hist, &n), 0);
    assert_int_equal(n, 80);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(hist[i].version, i + 1);
    free(hist);
    shoal_registry_close(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crud_and_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_artifacts_and_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_public_flag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_schema1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_abrupt_exit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_deploys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
