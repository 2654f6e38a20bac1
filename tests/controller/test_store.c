/*
 * Unit tests of controller/store.c: group-committed writes reach the database before their
 * callbacks run, a final state is written once, listing order and filters, pending rows survive
 * a reopen, prune, triggers and retries round trips, and reads on the reader threads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/store.h"

typedef struct {
    int calls, err, changed;
} seen_t;

static void on_done(shoal_store_op_t *op, int err)
{
    seen_t *s = op->opaque;
    s->calls++;
    if (err < 0)
        s->err = err;
    s->changed += op->changed;
}

static void run_until(uv_loop_t *loop, seen_t *s, int calls)
{
    for (int i = 0; i < 5000 && s->calls < calls; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(s->calls, calls);
}

static char home[64];

static int setup(void **state)
{
    (void)state;
    snprintf(home, sizeof(home), "/tmp/shoal-store.XXXXXX");
    return mkdtemp(home) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
    return system(cmd) == 0 ? 0 : -1;
}

static void insert(shoal_store_op_t *op, const char *id, const char *fn, seen_t *s, uint64_t t)
{
    memset(op, 0, sizeof(*op));
    op->kind = SHOAL_STORE_INSERT;
    op->id = id;
    op->name = fn;
    op->meta = "{}";
    op->meta_len = 2;
    op->data = "input";
    op->len = 5;
    op->created_ms = t;
    op->cb = on_done;
    op->opaque = s;
}

static void test_group_commit_and_states(void **state)
{
    uv_loop_t loop;
    shoal_store_t *st;
    shoal_store_op_t ops[100], fin[2];
    char ids[100][33];
    seen_t s = {0};
    shoal_store_inv_t inv;
    (void)state;

    uv_loop_init(&loop);
    assert_int_equal(shoal_store_open(&loop, home, 1000, &st), 0);
    for (int i = 0; i < 100; i++) {
        snprintf(ids[i], sizeof(ids[i]), "%032x", i + 1);
        insert(&ops[i], ids[i], i % 2 ? "odd" : "even", &s, 1000 + (uint64_t)i);
        shoal_store_submit(st, &ops[i]);
    }
    assert_int_equal(shoal_store_pending(st), 100);
    run_until(&loop, &s, 100);
    assert_int_equal(s.err, 0);
    shoal_store_stats_t ss;
    shoal_store_stats(st, &ss);
    assert_int_equal(ss.ops, 100);
    assert_true(ss.commits < 100); /* batched */

    /* Committed before the callback: the reading connection sees it. */
    assert_int_equal(shoal_store_get(st, ids[7], 1, &inv), 0);
    assert_string_equal(inv.function, "odd");
    assert_int_equal(inv.state, SHOAL_INV_QUEUED);
    assert_int_equal(inv.input_len, 5);
    assert_memory_equal(inv.input, "input", 5);
    shoal_store_inv_free(&inv);

    /* A final state is written once: the second FINISH changes nothing. */
    for (int k = 0; k < 2; k++) {
        memset(&fin[k], 0, sizeof(fin[k]));
        fin[k].kind = SHOAL_STORE_FINISH;
        fin[k].id = ids[7];
        fin[k].state = k == 0 ? SHOAL_INV_SUCCEEDED : SHOAL_INV_DEAD;
        fin[k].value = 1;
        fin[k].finished_ms = 5000;
        fin[k].data = "out";
        fin[k].len = 3;
        fin[k].cb = on_done;
        fin[k].opaque = &s;
        shoal_store_submit(st, &fin[k]);
    }
    s.changed = 0;
    run_until(&loop, &s, 102);
    assert_int_equal(s.changed, 1);
    int stt;
    void *data;
    size_t len;
    char *hdrs;
    assert_int_equal(shoal_store_output(st, ids[7], &stt, &data, &len, &hdrs), 0);
    assert_int_equal(stt, SHOAL_INV_SUCCEEDED);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "out", 3);
    free(data);
    free(hdrs);

    /* Listing: newest first, filtered. */
    shoal_json_t j;
    shoal_json_init(&j);
    assert_int_equal(shoal_store_list_json(st, "odd", -1, 2, &j), 0);
    shoal_json_raw(&j, "", 1);
    assert_non_null(strstr(j.buf, ids[99]));
    assert_non_null(strstr(j.buf, ids[97]));
    assert_true(strstr(j.buf, ids[99]) < strstr(j.buf, ids[97]));
    assert_null(strstr(j.buf, ids[98]));
    shoal_json_reset(&j);
    assert_int_equal(shoal_store_list_json(st, NULL, SHOAL_INV_SUCCEEDED, 10, &j), 0);
    shoal_json_raw(&j, "", 1);
    assert_non_null(strstr(j.buf, ids[7]));
    assert_non_null(strstr(j.buf, "\"state\":\"succeeded\""));
    shoal_json_free(&j);
    shoal_store_close(st);

    /* Reopened: 99 still pending, oldest first; prune removes the final one past retention. */
    assert_int_equal(shoal_store_open(&loop, home, 0, &st), 0);
    shoal_store_inv_t *v;
    size_t n;
    assert_int_equal(shoal_store_load_pending(st, &v, &n), 0);
    assert_int_equal(n, 99);
    assert_string_equal(v[0].id, ids[0]);
    for (size_t i = 0; i < n; i++)
        shoal_store_inv_free(&v[i]);
    free(v);
    shoal_store_op_t prune = {
        .kind = SHOAL_STORE_PRUNE, .finished_ms = 6000, .cb = on_done, .opaque = &s};
    s.changed = 0;
    shoal_store_submit(st, &prune);
    run_until(&loop, &s, 103);
    assert_int_equal(s.changed, 1);
    assert_int_equal(shoal_store_get(st, ids[7], 0, &inv), -ENOENT);
    shoal_store_close(st);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_trigger(void *opaque, const char *name, const char *doc, uint64_t fired,
                       uint64_t created)
{
    int *n = opaque;
    assert_string_equal(name, "t1");
    assert_string_equal(doc, "{\"x\":1}");
    assert_int_equal(fired, 77);
    assert_int_equal(created, 5);
    (*n)++;
}

static void on_retry(void *opaque, const char *name, int retries)
{
    int *n = opaque;
    assert_string_equal(name, "f");
    assert_int_equal(retries, 3);
    (*n)++;
}

static void test_triggers_and_retries(void **state)
{
    uv_loop_t loop;
    shoal_store_t *st;
    seen_t s = {0};
    int nt = 0, nr = 0;
    (void)state;

    uv_loop_init(&loop);
    assert_int_equal(shoal_store_open(&loop, home, 0, &st), 0);
    shoal_store_op_t put = {.kind = SHOAL_STORE_TRIGGER_PUT,
                            .name = "t1",
                            .data = "{\"x\":1}",
                            .len = 7,
                            .created_ms = 5,
                            .cb = on_done,
                            .opaque = &s};
    shoal_store_op_t fired = {
        .kind = SHOAL_STORE_FIRED, .name = "t1", .fired_ms = 77, .cb = on_done, .opaque = &s};
    shoal_store_op_t ret = {
        .kind = SHOAL_STORE_RETRIES, .name = "f", .value = 3, .cb = on_done, .opaque = &s};
    shoal_store_submit(st, &put);
    shoal_store_submit(st, &fired);
    shoal_store_submit(st, &ret);
    run_until(&loop, &s, 3);
    assert_int_equal(shoal_store_load_triggers(st, on_trigger, &nt), 0);
    assert_int_equal(nt, 1);
    assert_int_equal(shoal_store_load_retries(st, on_retry, &nr), 0);
    assert_int_equal(nr, 1);
    assert_int_equal(shoal_store_state_parse("dead", 4), SHOAL_INV_DEAD);
    assert_int_equal(shoal_store_state_parse("nope", 4), -1);
    shoal_store_close(st);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct {
    int calls;
    int errs[8];
} rseen_t;

static void on_read(shoal_store_read_t *r, int err)
{
    rseen_t *s = r->opaque;
    s->errs[s->calls++] = err;
}

static void read_init(shoal_store_read_t *r, shoal_store_read_kind_t kind, const char *id,
                      rseen_t *s)
{
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    snprintf(r->id, sizeof(r->id), "%s", id ? id : "");
    r->state = -1;
    r->limit = 10;
    shoal_json_init(&r->json);
    r->cb = on_read;
    r->opaque = s;
}

/* Reads on the reader threads see committed writes, answer on the loop thread (never inside the
 * submitting call), report unknown ids, and every read queued before a close completes in it. */
static void test_async_reads(void **state)
{
    uv_loop_t loop;
    shoal_store_t *st;
    seen_t s = {0};
    rseen_t rs = {0};
    shoal_store_op_t ins[3], fin;
    shoal_store_read_t get, miss, out, lst, lst2;
    static const char *const ids[] = {"00000000000000000000000000000001",
                                      "00000000000000000000000000000002",
                                      "00000000000000000000000000000003"};
    (void)state;

    uv_loop_init(&loop);
    assert_int_equal(shoal_store_open(&loop, home, 0, &st), 0);
    for (int i = 0; i < 3; i++) {
        insert(&ins[i], ids[i], i == 1 ? "b" : "a", &s, 1000 + (uint64_t)i);
        shoal_store_submit(st, &ins[i]);
    }
    memset(&fin, 0, sizeof(fin));
    fin.kind = SHOAL_STORE_FINISH;
    fin.id = ids[0];
    fin.state = SHOAL_INV_SUCCEEDED;
    fin.value = 1;
    fin.finished_ms = 2000;
    fin.data = "out!";
    fin.len = 4;
    fin.headers = "{\"content-type\":\"text/plain\"}";
    fin.cb = on_done;
    fin.opaque = &s;
    shoal_store_submit(st, &fin);
    run_until(&loop, &s, 4);

    read_init(&get, SHOAL_STORE_READ_GET, ids[0], &rs);
    read_init(&miss, SHOAL_STORE_READ_GET, "0000000000000000000000000000ffff", &rs);
    read_init(&out, SHOAL_STORE_READ_OUTPUT, ids[0], &rs);
    read_init(&lst, SHOAL_STORE_READ_LIST, NULL, &rs);
    snprintf(lst.function, sizeof(lst.function), "a");
    read_init(&lst2, SHOAL_STORE_READ_LIST, NULL, &rs);
    lst2.state = SHOAL_INV_QUEUED;
    shoal_store_read(st, &get);
    shoal_store_read(st, &miss);
    shoal_store_read(st, &out);
    shoal_store_read(st, &lst);
    shoal_store_read(st, &lst2);
    assert_int_equal(rs.calls, 0);
    for (int i = 0; i < 5000 && rs.calls < 5; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(rs.calls, 5);
    assert_int_equal(rs.errs[0] + rs.errs[2] + rs.errs[3] + rs.errs[4] + rs.errs[1], -ENOENT);
    assert_non_null(memmem(get.json.buf, get.json.len, "\"state\":\"succeeded\"", 19));
    assert_non_null(memmem(get.json.buf, get.json.len, ids[0], 32));
    assert_int_equal(out.state, SHOAL_INV_SUCCEEDED);
    assert_int_equal(out.len, 4);
    assert_memory_equal(out.data, "out!", 4);
    assert_string_equal(out.headers, "{\"content-type\":\"text/plain\"}");
    /* Function a: ids 3 then 1 (newest first); queued: 3 then 2. */
    char *p3 = memmem(lst.json.buf, lst.json.len, ids[2], 32);
    char *p1 = memmem(lst.json.buf, lst.json.len, ids[0], 32);
    assert_true(p3 != NULL && p1 != NULL && p3 < p1);
    assert_null(memmem(lst.json.buf, lst.json.len, ids[1], 32));
    p3 = memmem(lst2.json.buf, lst2.json.len, ids[2], 32);
    char *p2 = memmem(lst2.json.buf, lst2.json.len, ids[1], 32);
    assert_true(p3 != NULL && p2 != NULL && p3 < p2);
    assert_null(memmem(lst2.json.buf, lst2.json.len, ids[0], 32));
    shoal_json_free(&get.json);
    shoal_json_free(&miss.json);
    shoal_json_free(&lst.json);
    shoal_json_free(&lst2.json);
    free(out.data);
    free(out.headers);
    shoal_json_free(&out.json);

    /* Reads still queued at close are done in it, callbacks included. */
    rs.calls = 0;
    read_init(&get, SHOAL_STORE_READ_GET, ids[1], &rs);
    read_init(&lst, SHOAL_STORE_READ_LIST, NULL, &rs);
    shoal_store_read(st, &get);
    shoal_store_read(st, &lst);
    shoal_store_close(st);
    assert_int_equal(rs.calls, 2);
    assert_int_equal(rs.errs[0], 0);
    assert_int_equal(rs.errs[1], 0);
    shoal_json_free(&get.json);
    shoal_json_free(&lst.json);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_group_commit_and_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_triggers_and_retries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_reads, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
