/* Tests worker/pool.c: function objects, acquiring (idle first, most recent first; new; evict the
 * node's least recently used idle instance of another pool; full), max_instances and slots,
 * versions superseding each other, keep-alive expiry that keeps min_warm, deficits, gc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "worker/pool.h"

static shoal_fn_t fn(const char *name, uint64_t version, unsigned min_warm, unsigned max)
{
    shoal_fn_t f;
    memset(&f, 0, sizeof(f));
    strcpy(f.name, name);
    f.version = version;
    memset(f.sha256, 'a' + (int)version % 6, 64);
    f.timeout_ms = 1000;
    f.memory_mb = 128;
    f.min_warm = min_warm;
    f.max_instances = max;
    return f;
}

static void test_fn_json(void **state)
{
    shoal_fn_t f;
    json_t *o;
    (void)state;

    o = json_pack("{s:s,s:i,s:s,s:i,s:i,s:i,s:i,s:i}", "name", "hello", "version", 3, "sha256",
                  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "size", 10,
                  "timeout_ms", 500, "memory_mb", 64, "min_warm", 2, "max_instances", 5);
    assert_int_equal(shoal_fn_from_json(o, &f), 0);
    assert_string_equal(f.name, "hello");
    assert_int_equal(f.version, 3);
    assert_int_equal(f.timeout_ms, 500);
    assert_int_equal(f.min_warm, 2);
    assert_int_equal(f.max_instances, 5);
    json_object_set_new(o, "name", json_string("Bad Name"));
    assert_int_equal(shoal_fn_from_json(o, &f), -EINVAL);
    json_object_set_new(o, "name", json_string("ok"));
    json_object_set_new(o, "sha256", json_string("XYZ"));
    assert_int_equal(shoal_fn_from_json(o, &f), -EINVAL);
    json_object_set_new(
        o, "sha256",
        json_string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeF"));
    assert_int_equal(shoal_fn_from_json(o, &f), -EINVAL);
    json_object_set_new(
        o, "sha256",
        json_string("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
    json_object_set_new(o, "timeout_ms", json_integer(0));
    assert_int_equal(shoal_fn_from_json(o, &f), -EINVAL);
    json_object_set_new(o, "timeout_ms", json_integer(100));
    json_object_set_new(o, "memory_mb", json_integer(1 << 20));
    assert_int_equal(shoal_fn_from_json(o, &f), -EINVAL);
    json_decref(o);
    assert_int_equal(shoal_fn_from_json(NULL, &f), -EINVAL);
}

static void test_acquire_and_release(void **state)
{
    shoal_pools_t p;
    shoal_pool_entry_t e[4], *got;
    shoal_fn_t f = fn("a", 1, 0, 3);
    shoal_pool_t *pool;
    (void)state;

    shoal_pools_init(&p, 10);
    pool = shoal_pools_update(&p, &f);
    assert_non_null(pool);
    assert_ptr_equal(shoal_pools_current(&p, "a"), pool);
    assert_null(shoal_pools_current(&p, "b"));
    /* Empty pool: start a new one. */
    assert_int_equal(shoal_pool_acquire(&p, pool, &got), SHOAL_ACQ_NEW);
    shoal_pool_add(&p, pool, &e[0], SHOAL_ENTRY_BUSY);
    shoal_pool_add(&p, pool, &e[1], SHOAL_ENTRY_STARTING);
    assert_int_equal(p.used, 2);
    assert_int_equal(pool->busy, 1);
    assert_int_equal(pool->starting, 1);
    shoal_pool_set_state(&p, &e[1], SHOAL_ENTRY_IDLE, 100);
    shoal_pool_set_state(&p, &e[0], SHOAL_ENTRY_IDLE, 200);
    assert_int_equal(pool->idle, 2);
    /* The most recently idle first. */
    assert_int_equal(shoal_pool_acquire(&p, pool, &got), SHOAL_ACQ_IDLE);
    assert_ptr_equal(got, &e[0]);
    assert_int_equal(got->state, SHOAL_ENTRY_BUSY);
    assert_int_equal(shoal_pool_acquire(&p, pool, &got), SHOAL_ACQ_IDLE);
    assert_ptr_equal(got, &e[1]);
    assert_int_equal(shoal_pool_acquire(&p, pool, &got), SHOAL_ACQ_NEW);
    shoal_pool_add(&p, pool, &e[2], SHOAL_ENTRY_BUSY);
    /* max_instances 3 reached, all busy. */
    assert_int_equal(shoal_pool_acquire(&p, pool, &got), SHOAL_ACQ_FULL);
    assert_false(shoal_pool_can_grow(&p, pool));
    shoal_pool_remove(&p, &e[2]);
    assert_null(e[2].pool);
    assert_int_equal(p.used, 2);
    assert_true(shoal_pool_can_grow(&p, pool));
    shoal_pool_remove(&p, &e[2]); /* no-op */
    assert_int_equal(p.used, 2);
    shoal_pool_remove(&p, &e[0]);
    shoal_pool_remove(&p, &e[1]);
    assert_int_equal(shoal_pool_size(pool), 0);
    shoal_pools_destroy(&p);
}

static void test_evict_lru(void **state)
{
    shoal_pools_t p;
    shoal_pool_entry_t a[2], b[1], *got;
    shoal_fn_t fa = fn("a", 1, 0, 8), fb = fn("b", 1, 0, 8), fc = fn("c", 1, 0, 8);
    shoal_pool_t *pa, *pb, *pc;
    (void)state;

    shoal_pools_init(&p, 3);
    pa = shoal_pools_update(&p, &fa);
    pb = shoal_pools_update(&p, &fb);
    pc = shoal_pools_update(&p, &fc);
    shoal_pool_add(&p, pa, &a[0], SHOAL_ENTRY_BUSY);
    shoal_pool_add(&p, pa, &a[1], SHOAL_ENTRY_BUSY);
    shoal_pool_add(&p, pb, &b[0], SHOAL_ENTRY_BUSY);
    shoal_pool_set_state(&p, &b[0], SHOAL_ENTRY_IDLE, 10); /* oldest idle */
    shoal_pool_set_state(&p, &a[0], SHOAL_ENTRY_IDLE, 20);
    /* Node full: c evicts the least recently used idle instance, b's. */
    assert_int_equal(shoal_pool_acquire(&p, pc, &got), SHOAL_ACQ_EVICT);
    assert_ptr_equal(got, &b[0]);
    shoal_pool_remove(&p, got);
    assert_int_equal(p.used, 2);
    /* With only its own pool's idle instance... it would use that rather than evict. */
    assert_int_equal(shoal_pool_acquire(&p, pa, &got), SHOAL_ACQ_IDLE);
    assert_ptr_equal(got, &a[0]);
    shoal_pool_add(&p, pc, &b[0], SHOAL_ENTRY_BUSY);
    /* Everything busy and full: overload. */
    assert_int_equal(shoal_pool_acquire(&p, pb, &got), SHOAL_ACQ_FULL);
    shoal_pools_destroy(&p);
}

static void test_versions(void **state)
{
    shoal_pools_t p;
    shoal_pool_entry_t e[2];
    shoal_fn_t v1 = fn("a", 1, 0, 8), v2 = fn("a", 2, 1, 8), v1b = fn("a", 1, 0, 8);
    shoal_pool_t *p1, *p2, *again;
    (void)state;

    shoal_pools_init(&p, 8);
    p1 = shoal_pools_update(&p, &v1);
    shoal_pool_add(&p, p1, &e[0], SHOAL_ENTRY_BUSY);
    p2 = shoal_pools_update(&p, &v2);
    assert_ptr_not_equal(p1, p2);
    assert_false(p1->current);
    assert_true(p2->current);
    assert_ptr_equal(shoal_pools_current(&p, "a"), p2);
    assert_ptr_equal(shoal_pools_find(&p, "a", 1), p1);
    /* An older version arriving late does not become current. */
    again = shoal_pools_update(&p, &v1b);
    assert_ptr_equal(again, p1);
    assert_false(p1->current);
    /* The same version with new limits updates in place. */
    v2.max_instances = 2;
    assert_ptr_equal(shoal_pools_update(&p, &v2), p2);
    assert_int_equal(p2->fn.max_instances, 2);
    /* The same version with other code gets a fresh pool. */
    memset(v2.sha256, 'f', 64);
    again = shoal_pools_update(&p, &v2);
    assert_ptr_not_equal(again, p2);
    assert_true(again->current);
    assert_false(p2->current);
    /* gc frees drained pools only. */
    shoal_pools_gc(&p);
    assert_ptr_equal(shoal_pools_find(&p, "a", 1), p1); /* still has a member */
    shoal_pool_remove(&p, &e[0]);
    shoal_pools_gc(&p);
    assert_null(shoal_pools_find(&p, "a", 1));
    shoal_pools_delete(&p, "a");
    assert_null(shoal_pools_current(&p, "a"));
    shoal_pools_gc(&p);
    assert_null(p.pools);
    shoal_pools_destroy(&p);
}

static void test_expiry_and_deficit(void **state)
{
    shoal_pools_t p;
    shoal_pool_entry_t e[3];
    shoal_fn_t f = fn("a", 1, 1, 8), g = fn("g", 1, 5, 2);
    shoal_pool_t *pool, *pg;
    (void)state;

    shoal_pools_init(&p, 4);
    pool = shoal_pools_update(&p, &f);
    assert_int_equal(shoal_pool_deficit(&p, pool), 1);
    for (int i = 0; i < 3; i++) {
        shoal_pool_add(&p, pool, &e[i], SHOAL_ENTRY_BUSY);
        shoal_pool_set_state(&p, &e[i], SHOAL_ENTRY_IDLE, 1000 + (uint64_t)i * 100);
    }
    assert_int_equal(shoal_pool_deficit(&p, pool), 0);
    /* Nothing has been idle for the keep-alive yet. */
    assert_null(shoal_pools_expired(&p, 1500, 1000));
    /* The oldest goes first... */
    assert_ptr_equal(shoal_pools_expired(&p, 2000, 1000), &e[0]);
    shoal_pool_remove(&p, &e[0]);
    assert_ptr_equal(shoal_pools_expired(&p, 5000, 1000), &e[1]);
    shoal_pool_remove(&p, &e[1]);
    /* ...but min_warm 1 keeps the last one. */
    assert_null(shoal_pools_expired(&p, 5000, 1000));
    /* A superseded pool's idle instances all expire. */
    shoal_pools_delete(&p, "a");
    assert_ptr_equal(shoal_pools_expired(&p, 5000, 1000), &e[2]);
    assert_int_equal(shoal_pool_deficit(&p, pool), 0);
    shoal_pool_remove(&p, &e[2]);
    /* Deficit bounded by max_instances and the free slots. */
    pg = shoal_pools_update(&p, &g);
    assert_int_equal(pg->fn.min_warm, 5); /* (from_json would clamp; here raw) */
    assert_int_equal(shoal_pool_deficit(&p, pg), 2);
    p.slots = 1;
    assert_int_equal(shoal_pool_deficit(&p, pg), 1);
    shoal_pools_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fn_json),
        cmocka_unit_test(test_acquire_and_release),
        cmocka_unit_test(test_evict_lru),
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_expiry_and_deficit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
