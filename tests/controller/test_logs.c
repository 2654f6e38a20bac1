/* Tests controller/logs.c: lines kept in order within the byte budget (oldest dropped first,
 * counted), ?since= and ?tail= and the invocation filter, a line longer than the whole budget,
 * and that every line is a copy (the caller's buffers may go away). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/logs.h"

typedef struct {
    uint64_t seqs[4096];
    size_t n;
    size_t stop_after;
} seen_t;

static int collect(void *opaque, const shoal_log_line_t *l)
{
    seen_t *s = opaque;
    s->seqs[s->n++] = l->seq;
    return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

static void add(shoal_logs_t *l, uint64_t seq, const char *id, const char *text)
{
    char buf[256];
    shoal_log_line_t line = {.seq = seq, .ts_ms = 1000 + seq, .rank = -1, .node = "n1"};

    /* From a buffer that is overwritten right after: the module must copy. */
    snprintf(buf, sizeof(buf), "%s", id);
    line.invocation_id = buf;
    line.text = text;
    line.text_len = strlen(text);
    assert_int_equal(shoal_logs_add(l, &line), 0);
    memset(buf, 'x', sizeof(buf) - 1);
}

static void test_budget_drops_oldest(void **state)
{
    /* The smallest budget: 4096 bytes, each 10-byte line charged 10 + 64. */
    shoal_logs_t *l = shoal_logs_create(1);
    seen_t s = {0};
    size_t per = 10 + SHOAL_LOGS_LINE_OVERHEAD, fit = SHOAL_LOGS_MIN_CAP / per;
    (void)state;

    for (uint64_t i = 1; i <= 200; i++)
        add(l, i, "a", "0123456789");
    assert_int_equal(shoal_logs_lines(l), fit);
    assert_true(shoal_logs_bytes(l) <= SHOAL_LOGS_MIN_CAP);
    assert_int_equal(shoal_logs_dropped(l), 200 - fit);
    assert_int_equal(shoal_logs_each(l, 0, NULL, 0, collect, &s), 0);
    assert_int_equal(s.n, fit);
    for (size_t i = 0; i < s.n; i++)
        assert_int_equal(s.seqs[i], 200 - fit + 1 + i); /* the newest, oldest first */
    shoal_logs_destroy(l);
}

static void test_since_tail_invocation(void **state)
{
    shoal_logs_t *l = shoal_logs_create(SHOAL_LOGS_DEFAULT_CAP);
    seen_t s = {0};
    (void)state;

    for (uint64_t i = 1; i <= 100; i++)
        add(l, i, i % 2 ? "odd" : "even", "line");
    assert_int_equal(shoal_logs_each(l, 90, NULL, 0, collect, &s), 0);
    assert_int_equal(s.n, 10);
    assert_int_equal(s.seqs[0], 91);
    memset(&s, 0, sizeof(s));
    assert_int_equal(shoal_logs_each(l, 0, NULL, 3, collect, &s), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.seqs[0], 98);
    assert_int_equal(s.seqs[2], 100);
    /* tail counts matching lines only. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(shoal_logs_each(l, 0, "even", 4, collect, &s), 0);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.seqs[0], 94);
    assert_int_equal(s.seqs[3], 100);
    memset(&s, 0, sizeof(s));
    assert_int_equal(shoal_logs_each(l, 95, "odd", 0, collect, &s), 0);
    assert_int_equal(s.n, 2); /* 97, 99 */
    memset(&s, 0, sizeof(s));
    assert_int_equal(shoal_logs_each(l, 0, "nobody", 5, collect, &s), 0);
    assert_int_equal(s.n, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(shoal_logs_each(l, 200, NULL, 0, collect, &s), 0);
    assert_int_equal(s.n, 0);
    /* The callback can stop the walk. */
    memset(&s, 0, sizeof(s));
    s.stop_after = 5;
    assert_int_equal(shoal_logs_each(l, 0, NULL, 0, collect, &s), 7);
    assert_int_equal(s.n, 5);
    shoal_logs_destroy(l);
}

typedef struct {
    char text[SHOAL_LOGS_MIN_CAP + 16];
    size_t len;
    char id[80];
} last_t;

static int keep_last(void *opaque, const shoal_log_line_t *l)
{
    last_t *o = opaque;
    memcpy(o->text, l->text, l->text_len);
    o->len = l->text_len;
    snprintf(o->id, sizeof(o->id), "%s", l->invocation_id);
    return 0;
}

static void test_huge_line_and_long_id(void **state)
{
    shoal_logs_t *l = shoal_logs_create(SHOAL_LOGS_MIN_CAP);
    char *big = malloc(3 * SHOAL_LOGS_MIN_CAP + 1), id[200];
    last_t o;
    (void)state;

    memset(big, 'z', 3 * SHOAL_LOGS_MIN_CAP);
    big[3 * SHOAL_LOGS_MIN_CAP] = '\0';
    memset(id, 'f', sizeof(id) - 1);
    id[sizeof(id) - 1] = '\0';
    add(l, 1, "a", "small");
    add(l, 2, id, big);
    /* The huge line pushed the small one out and was cut to the budget. */
    assert_int_equal(shoal_logs_lines(l), 1);
    assert_int_equal(shoal_logs_bytes(l), SHOAL_LOGS_MIN_CAP);
    assert_int_equal(shoal_logs_each(l, 0, NULL, 0, keep_last, &o), 0);
    assert_int_equal(o.len, SHOAL_LOGS_MIN_CAP - SHOAL_LOGS_LINE_OVERHEAD);
    assert_int_equal(strlen(o.id), SHOAL_LOGS_ID_MAX);
    /* An empty line costs its overhead and is kept. */
    add(l, 3, "b", "");
    assert_int_equal(shoal_logs_lines(l), 1);
    assert_int_equal(shoal_logs_each(l, 0, NULL, 0, keep_last, &o), 0);
    assert_int_equal(o.len, 0);
    assert_string_equal(o.id, "b");
    free(big);
    shoal_logs_destroy(l);
}

static void test_ring_wraps_and_grows(void **state)
{
    shoal_logs_t *l = shoal_logs_create(64 * 1024);
    seen_t s = {0};
    (void)state;

    /* Enough lines to wrap the ring many times while it also grows. */
    for (uint64_t i = 1; i <= 3000; i++)
        add(l, i, "w", i % 7 ? "x" : "a somewhat longer line of text");
    assert_int_equal(shoal_logs_each(l, 0, NULL, 0, collect, &s), 0);
    assert_int_equal(s.n, shoal_logs_lines(l));
    for (size_t i = 1; i < s.n; i++)
        assert_int_equal(s.seqs[i], s.seqs[i - 1] + 1);
    assert_int_equal(s.seqs[s.n - 1], 3000);
    assert_int_equal(shoal_logs_dropped(l) + shoal_logs_lines(l), 3000);
    shoal_logs_destroy(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_drops_oldest),
        cmocka_unit_test(test_since_tail_invocation),
        cmocka_unit_test(test_huge_line_and_long_id),
        cmocka_unit_test(test_ring_wraps_and_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
