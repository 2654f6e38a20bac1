/*
 * End-to-end test of examples/wordcount against real processes: a controller and one worker with
 * 8 slots run BUILD/examples/wordcount.so as groups of 1, 2, 3 and 8 over a real text
 * (examples/wordcount/fetch-text.sh: Debian's fortune-cookie collection, cached in
 * BUILD/examples/wordcount-text.txt). Every answer must equal, byte for byte, the count this test
 * makes in one process by a different method (sort every word, count the runs); plus ?top=K, an
 * empty text, and a bad parameter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/e2e/harness.h"

static cluster_t C;
static char *TEXT;
static size_t TEXT_LEN;
static char *WANT; /* the single-process answer, every word */
static size_t WANT_LEN;

struct word {
    const char *w;
    size_t len;
    size_t count;
};

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int cmp_bytes(const struct word *x, const struct word *y)
{
    int c = memcmp(x->w, y->w, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len < y->len ? -1 : x->len > y->len);
}

static int by_word(const void *a, const void *b)
{
    return cmp_bytes(a, b);
}

static int by_count(const void *a, const void *b)
{
    const struct word *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return cmp_bytes(x, y);
}

/* The reference: fold a copy of the text, list every word, sort, count runs, sort by count. */
static char *reference(const char *text, size_t len, size_t *outlen)
{
    char *folded = malloc(len + 1), *out;
    struct word *w = malloc((len / 2 + 1) * sizeof(*w)), *u;
    size_t n = 0, nu = 0, o = 0, cap = 0;

    assert_non_null(folded);
    assert_non_null(w);
    for (size_t i = 0; i < len; i++)
        folded[i] = text[i] >= 'A' && text[i] <= 'Z' ? (char)(text[i] + 32) : text[i];
    for (size_t i = 0; i < len;) {
        size_t s = i;
        while (i < len && is_word_byte((unsigned char)folded[i]))
            i++;
        if (i > s)
            w[n++] = (struct word){folded + s, i - s, 1};
        else
            i++;
    }
    qsort(w, n, sizeof(*w), by_word);
    u = w;
    for (size_t i = 0; i < n; i++) {
        if (nu > 0 && cmp_bytes(&u[nu - 1], &w[i]) == 0)
            u[nu - 1].count++;
        else
            u[nu++] = w[i];
    }
    qsort(u, nu, sizeof(*u), by_count);
    for (size_t i = 0; i < nu; i++)
        cap += u[i].len + 24;
    out = malloc(cap + 1);
    assert_non_null(out);
    for (size_t i = 0; i < nu; i++) {
        o += (size_t)snprintf(out + o, cap + 1 - o, "%zu ", u[i].count);
        memcpy(out + o, u[i].w, u[i].len);
        o += u[i].len;
        out[o++] = '\n';
    }
    out[o] = '\0';
    fprintf(stderr, "reference: %zu bytes of text, %zu words, %zu distinct\n", len, n, nu);
    /* The words point into folded: keep it until the answer is rendered, then free both. */
    free(w);
    free(folded);
    *outlen = o;
    return out;
}

static int setup(void **state)
{
    char path[512], cmd[1400], so[512];
    (void)state;

    if (cluster_start(&C, 1, "--slots 8") < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/examples/wordcount-text.txt", C.build);
    snprintf(cmd, sizeof(cmd), "'%s/examples/wordcount/fetch-text.sh' '%s'", C.src, path);
    if (system(cmd) != 0 || (TEXT = read_whole(path, &TEXT_LEN)) == NULL) {
        fprintf(stderr, "cannot get the text: %s\n", cmd);
        return -1;
    }
    WANT = reference(TEXT, TEXT_LEN, &WANT_LEN);
    snprintf(so, sizeof(so), "%s/examples/wordcount.so", C.build);
    if (deploy_file(&C, "wordcount", so, "timeout_ms=60000&memory_mb=512", NULL) != 201) {
        cluster_dump_logs(&C);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(TEXT);
    free(WANT);
    return cluster_stop(&C);
}

static void invoke(const char *query, const void *in, size_t len, http_resp_t *r)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/functions/wordcount/invoke?%s", query);
    assert_int_equal(http_request(&C, "POST", path, in, len, NULL, r), 0);
    fprintf(stderr, "  %s: %ld, %zu bytes in %.3f s\n", query, r->status, r->len, r->total_s);
}

/* The first line where two answers differ, for the failure message. */
static void show_difference(const char *got, size_t glen, const char *want, size_t wlen)
{
    size_t i = 0, line = 1, start = 0;
    while (i < glen && i < wlen && got[i] == want[i]) {
        if (got[i] == '\n')
            line++, start = i + 1;
        i++;
    }
    fprintf(stderr,
            "answers differ at line %zu: got \"%.60s\", want \"%.60s\" (lengths %zu, %zu)\n", line,
            got + start, want + start, glen, wlen);
}

static void test_groups_match_reference(void **state)
{
    static const int SIZES[] = {1, 2, 3, 8};
    (void)state;

    for (size_t i = 0; i < sizeof(SIZES) / sizeof(SIZES[0]); i++) {
        http_resp_t r;
        char q[32];
        snprintf(q, sizeof(q), "group=%d", SIZES[i]);
        invoke(q, TEXT, TEXT_LEN, &r);
        if (r.status != 200)
            fprintf(stderr, "body: %.400s\n", r.body);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.content_type, "text/plain; charset=utf-8");
        if (r.len != WANT_LEN || memcmp(r.body, WANT, WANT_LEN) != 0)
            show_difference(r.body, r.len, WANT, WANT_LEN);
        assert_int_equal(r.len, WANT_LEN);
        assert_memory_equal(r.body, WANT, WANT_LEN);
        http_resp_free(&r);
    }
}

static void test_top(void **state)
{
    http_resp_t r;
    const char *p = WANT;
    (void)state;

    /* The first 10 lines of the reference. */
    for (int k = 0; k < 10; k++)
        p = strchr(p, '\n') + 1;
    invoke("group=3&top=10", TEXT, TEXT_LEN, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, (size_t)(p - WANT));
    assert_memory_equal(r.body, WANT, r.len);
    /* The fortunes' most frequent word; the fallback text's too. */
    assert_memory_equal(r.body + strcspn(r.body, " "), " the\n", 5);
    http_resp_free(&r);
}

static void test_edges(void **state)
{
    http_resp_t r;
    (void)state;

    invoke("group=3", "", 0, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    http_resp_free(&r);
    /* Fewer words than ranks, split oddly: "b" twice, then "A" and "a" fold together. */
    invoke("group=8", "b  A\tb\na", 8, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "2 a\n2 b\n");
    http_resp_free(&r);
    invoke("group=2&top=x", "a", 1, &r);
    assert_int_equal(r.status, 502);
    assert_non_null(strstr(r.body, "top must be a positive integer"));
    http_resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_groups_match_reference),
        cmocka_unit_test(test_top),
        cmocka_unit_test(test_edges),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
