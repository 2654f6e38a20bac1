/* Tests controller/fntable.c: insertion and lookup (through several rehashes), version ordering
 * of updates and deletes, tombstones, the live count and the sorted listing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/fntable.h"

static shoal_fn_t fn(const char *name, uint64_t version)
{
    shoal_fn_t f;
    memset(&f, 0, sizeof(f));
    snprintf(f.name, sizeof(f.name), "%s", name);
    f.version = version;
    memset(f.sha256, 'b', 64);
    f.timeout_ms = 1000;
    f.max_instances = 4;
    return f;
}

static void test_versions_and_tombstones(void **state)
{
    shoal_fntable_t *t = shoal_fntable_create();
    shoal_fnent_t *e, *e2;
    shoal_fn_t f;
    (void)state;

    f = fn("alpha", 2);
    assert_int_equal(shoal_fntable_apply(t, &f, 0, &e), 1);
    assert_int_equal(shoal_fntable_live(t), 1);
    assert_ptr_equal(shoal_fntable_find(t, "alpha", 5), e);
    /* Lookups take a length: the name need not be NUL-terminated. */
    assert_ptr_equal(shoal_fntable_find(t, "alphabet", 5), e);
    assert_null(shoal_fntable_find(t, "alph", 4));
    /* The rendered object is not NUL-terminated: search by length. */
    assert_non_null(memmem(e->json.buf, e->json.len, "\"version\":2", 11));
    assert_null(memmem(e->json.buf, e->json.len, "created", 7));

    f = fn("alpha", 1); /* an older deploy finishing late */
    assert_int_equal(shoal_fntable_apply(t, &f, 0, &e2), 0);
    assert_ptr_equal(e2, e);
    assert_int_equal(e->fn.version, 2);

    f = fn("alpha", 2);
    assert_int_equal(shoal_fntable_apply(t, &f, 1, &e2), 1);
    assert_true(e->deleted);
    assert_int_equal(e->json.len, 0);
    assert_int_equal(shoal_fntable_live(t), 0);
    assert_int_equal(shoal_fntable_apply(t, &f, 1, &e2), 0); /* deleting twice changes nothing */
    f = fn("alpha", 2);
    assert_int_equal(shoal_fntable_apply(t, &f, 0, &e2), 0); /* the delete wins over its version */
    assert_true(e->deleted);

    f = fn("alpha", 3);
    assert_int_equal(shoal_fntable_apply(t, &f, 0, &e2), 1);
    assert_ptr_equal(e2, e); /* the entry never moves */
    assert_false(e->deleted);
    assert_int_equal(shoal_fntable_live(t), 1);
    assert_int_equal(shoal_fntable_count(t), 1);
    shoal_fntable_destroy(t);
}

static void test_many_and_sorted(void **state)
{
    shoal_fntable_t *t = shoal_fntable_create();
    shoal_fnent_t *e, **v, *first = NULL;
    shoal_fn_t f;
    char name[16];
    size_t n;
    (void)state;

    for (int i = 999; i >= 0; i--) {
        snprintf(name, sizeof(name), "fn-%03d", i);
        f = fn(name, 1);
        assert_int_equal(shoal_fntable_apply(t, &f, i % 10 == 0, &e), 1);
        if (i == 999)
            first = e;
    }
    assert_int_equal(shoal_fntable_count(t), 1000);
    assert_int_equal(shoal_fntable_live(t), 900);
    assert_ptr_equal(shoal_fntable_at(t, 0), first);
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof(name), "fn-%03d", i);
        e = shoal_fntable_find(t, name, strlen(name));
        assert_non_null(e);
        assert_string_equal(e->fn.name, name);
    }
    assert_int_equal(shoal_fntable_sorted(t, &v, &n), 0);
    assert_int_equal(n, 900);
    for (size_t i = 1; i < n; i++)
        assert_true(strcmp(v[i - 1]->fn.name, v[i]->fn.name) < 0);
    for (size_t i = 0; i < n; i++)
        assert_false(v[i]->deleted);
    free(v);
    shoal_fntable_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions_and_tombstones),
        cmocka_unit_test(test_many_and_sorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
