/*
 * Tests for transport/invmeta.c, the binary INVOKE and RESULT metas: round trips, every
 * truncation and extension of a valid meta, lengths that point past the end or wrap, names, ids,
 * NULs, kinds, and the frame header's version check that makes a version-1 peer fail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transport/frame.h"
#include "transport/invmeta.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* A valid INVOKE meta with a two-entry list and a group extension; returns its length. */
static size_t make_invoke(uint8_t *buf, size_t cap, shoal_invmeta_invoke_t *m)
{
    static uint8_t kv[256];
    size_t kv_len = 0;
    static const char ext[] = "{\"group\":{\"size\":2}}";
    int n;

    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "method", 6, "POST", 4), 0);
    assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "header:x-a", 10, "v a l", 5),
                     0);
    memset(m, 0, sizeof(*m));
    m->function = "echo-2";
    m->function_len = 6;
    m->id = "0123456789abcdef0123456789abcdef";
    m->id_len = 32;
    m->version = 7;
    m->timeout_ms = 1500;
    m->depth = 3;
    m->kv = kv;
    m->kv_len = kv_len;
    m->ext = ext;
    m->ext_len = sizeof(ext) - 1;
    n = shoal_invmeta_invoke_head(buf, m);
    assert_int_equal(n, SHOAL_INVMETA_INVOKE_FIXED + 6 + 32);
    assert_true((size_t)n + kv_len + m->ext_len <= cap);
    memcpy(buf + n, kv, kv_len);
    memcpy(buf + n + kv_len, ext, m->ext_len);
    return (size_t)n + kv_len + m->ext_len;
}

static void test_invoke_round_trip(void **state)
{
    uint8_t buf[512];
    shoal_invmeta_invoke_t in, out;
    shoal_invmeta_kv_t kv;
    size_t off = 0, len = make_invoke(buf, sizeof(buf), &in);
    (void)state;

    assert_int_equal(shoal_invmeta_invoke_decode(buf, len, &out), 0);
    assert_int_equal(out.function_len, 6);
    assert_memory_equal(out.function, "echo-2", 6);
    assert_int_equal(out.id_len, 32);
    assert_memory_equal(out.id, in.id, 32);
    assert_int_equal(out.version, 7);
    assert_int_equal(out.timeout_ms, 1500);
    assert_int_equal(out.depth, 3);
    assert_int_equal(out.kv_len, in.kv_len);
    assert_int_equal(out.ext_len, in.ext_len);
    assert_memory_equal(out.ext, in.ext, in.ext_len);
    assert_int_equal(shoal_invmeta_kv_next(out.kv, out.kv_len, &off, &kv), 1);
    assert_int_equal(kv.key_len, 6);
    assert_memory_equal(kv.key, "method", 6);
    assert_int_equal(kv.val_len, 4);
    assert_memory_equal(kv.val, "POST", 4);
    assert_int_equal(shoal_invmeta_kv_next(out.kv, out.kv_len, &off, &kv), 1);
    assert_memory_equal(kv.key, "header:x-a", 10);
    assert_memory_equal(kv.val, "v a l", 5);
    assert_int_equal(shoal_invmeta_kv_next(out.kv, out.kv_len, &off, &kv), 0);

    /* No list and no extension: the smallest valid meta. */
    in.kv_len = 0;
    in.ext_len = 0;
    len = (size_t)shoal_invmeta_invoke_head(buf, &in);
    assert_int_equal(shoal_invmeta_invoke_decode(buf, len, &out), 0);
    assert_null(out.ext);
    assert_int_equal(out.kv_len, 0);
}

/* Every prefix of a valid meta and every one-byte extension of it is refused. */
static void test_invoke_truncations(void **state)
{
    uint8_t buf[512];
    shoal_invmeta_invoke_t in, out;
    size_t len = make_invoke(buf, sizeof(buf), &in);
    (void)state;

    for (size_t i = 0; i < len; i++)
        assert_int_equal(shoal_invmeta_invoke_decode(buf, i, &out), -EPROTO);
    buf[len] = 'x';
    assert_int_equal(shoal_invmeta_invoke_decode(buf, len + 1, &out), -EPROTO);
}

static void test_invoke_bad_fields(void **state)
{
    uint8_t buf[512], bad[512];
    shoal_invmeta_invoke_t in, out;
    size_t len = make_invoke(buf, sizeof(buf), &in);
    (void)state;

#define MUTATE(stmt)                                                                               \
    do {                                                                                           \
        memcpy(bad, buf, len);                                                                     \
        stmt;                                                                                      \
        assert_int_equal(shoal_invmeta_invoke_decode(bad, len, &out), -EPROTO);                    \
    } while (0)
    /* Lengths that point past the end, or that would wrap a 32-bit sum. */
    MUTATE(put32(bad + 12, 0xffffffffu));
    MUTATE(put32(bad + 16, 0xffffffffu));
    MUTATE(put32(bad + 12, (uint32_t)in.kv_len + 1));
    MUTATE(put32(bad + 16, 0xffffffffu - 40));
    MUTATE(bad[0] = 200);                              /* name longer than the meta and the limit */
    MUTATE(bad[1] = 0);                                /* empty id */
    MUTATE(bad[0] = 0);                                /* empty name */
    MUTATE(put32(bad + 20, 1));                        /* reserved */
    MUTATE(put32(bad + 8, 0));                         /* no time left */
    MUTATE(bad[SHOAL_INVMETA_INVOKE_FIXED] = 'E');     /* upper case in the name */
    MUTATE(bad[SHOAL_INVMETA_INVOKE_FIXED + 6] = ' '); /* a space in the id */
    MUTATE(bad[len - in.ext_len] = '[');               /* the extension is not an object */
    /* A list entry whose value length runs past the list into the extension. */
    MUTATE(put32(bad + SHOAL_INVMETA_INVOKE_FIXED + 6 + 32 + 2, 200));
    /* A NUL inside a key or a value of the list. */
    MUTATE(bad[SHOAL_INVMETA_INVOKE_FIXED + 6 + 32 + SHOAL_INVMETA_KV_HDR] = '\0');
    MUTATE(bad[SHOAL_INVMETA_INVOKE_FIXED + 6 + 32 + SHOAL_INVMETA_KV_HDR + 6] = '\0');
#undef MUTATE

    /* The encoder refuses what the decoder would. */
    shoal_invmeta_invoke_t m = in;
    m.function = "Bad";
    m.function_len = 3;
    assert_int_equal(shoal_invmeta_invoke_head(bad, &m), -EINVAL);
    m = in;
    m.id_len = SHOAL_INVMETA_ID_MAX + 1;
    assert_int_equal(shoal_invmeta_invoke_head(bad, &m), -EINVAL);
    m = in;
    m.depth = 70000;
    assert_int_equal(shoal_invmeta_invoke_head(bad, &m), -EINVAL);
    m = in;
    m.kv_len = SHOAL_FRAME_META_MAX + 1;
    assert_int_equal(shoal_invmeta_invoke_head(bad, &m), -EINVAL);
}

static size_t make_result(uint8_t *buf, shoal_invmeta_result_t *m, int ok)
{
    uint8_t kv[128];
    size_t kv_len = 0;

    memset(m, 0, sizeof(*m));
    m->ok = ok;
    m->kind = ok ? SHOAL_KIND_NONE : SHOAL_KIND_TIMEOUT;
    m->status = ok ? 201 : 0;
    m->duration_us = 0x123456789ull;
    m->error = ok ? "" : "it took too long";
    m->error_len = strlen(m->error);
    if (ok) {
        assert_int_equal(
            shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "content-type", 12, "text/plain", 10), 0);
        assert_int_equal(shoal_invmeta_kv_put(kv, sizeof(kv), &kv_len, "x-empty", 7, "", 0), 0);
    }
    m->headers_len = kv_len;
    assert_int_equal(shoal_invmeta_result_head(buf, m), 0);
    memcpy(buf + SHOAL_INVMETA_RESULT_FIXED, m->error, m->error_len);
    memcpy(buf + SHOAL_INVMETA_RESULT_FIXED + m->error_len, kv, kv_len);
    return SHOAL_INVMETA_RESULT_FIXED + m->error_len + kv_len;
}

static void test_result_round_trip(void **state)
{
    uint8_t buf[256];
    shoal_invmeta_result_t in, out;
    shoal_invmeta_kv_t kv;
    size_t off = 0, len;
    (void)state;

    len = make_result(buf, &in, 1);
    assert_int_equal(shoal_invmeta_result_decode(buf, len, &out), 0);
    assert_true(out.ok);
    assert_int_equal(out.kind, SHOAL_KIND_NONE);
    assert_int_equal(out.status, 201);
    assert_int_equal(out.duration_us, 0x123456789ull);
    assert_int_equal(out.error_len, 0);
    assert_int_equal(shoal_invmeta_kv_next(out.headers, out.headers_len, &off, &kv), 1);
    assert_memory_equal(kv.key, "content-type", 12);
    assert_memory_equal(kv.val, "text/plain", 10);
    assert_int_equal(shoal_invmeta_kv_next(out.headers, out.headers_len, &off, &kv), 1);
    assert_int_equal(kv.val_len, 0);
    assert_int_equal(shoal_invmeta_kv_next(out.headers, out.headers_len, &off, &kv), 0);

    len = make_result(buf, &in, 0);
    assert_int_equal(shoal_invmeta_result_decode(buf, len, &out), 0);
    assert_false(out.ok);
    assert_int_equal(out.kind, SHOAL_KIND_TIMEOUT);
    assert_int_equal(out.error_len, 16);
    assert_memory_equal(out.error, "it took too long", 16);
    assert_int_equal(out.headers_len, 0);
}

static void test_result_truncations_and_bad_fields(void **state)
{
    uint8_t buf[256], bad[256];
    shoal_invmeta_result_t in, out;
    (void)state;

    for (int ok = 0; ok <= 1; ok++) {
        size_t len = make_result(buf, &in, ok);
        for (size_t i = 0; i < len; i++)
            assert_int_equal(shoal_invmeta_result_decode(buf, i, &out), -EPROTO);
        buf[len] = 0;
        assert_int_equal(shoal_invmeta_result_decode(buf, len + 1, &out), -EPROTO);
    }
    size_t len = make_result(buf, &in, 0);
#define MUTATE(stmt)                                                                               \
    do {                                                                                           \
        memcpy(bad, buf, len);                                                                     \
        stmt;                                                                                      \
        assert_int_equal(shoal_invmeta_result_decode(bad, len, &out), -EPROTO);                    \
    } while (0)
    MUTATE(bad[0] = 2);                                 /* ok is a boolean */
    MUTATE(bad[1] = SHOAL_KIND_MAX + 1);                /* unknown kind */
    MUTATE(bad[1] = 0);                                 /* a failure without a kind */
    MUTATE(put32(bad + 4, 0xffffffffu));                /* error past the end */
    MUTATE(put32(bad + 4, SHOAL_INVMETA_ERR_MAX + 1));  /* error beyond its bound */
    MUTATE(put32(bad + 8, 0xffffffffu - 10));           /* headers wrap */
    MUTATE(put32(bad + 12, 5));                         /* reserved */
    MUTATE(bad[SHOAL_INVMETA_RESULT_FIXED + 3] = '\0'); /* NUL in the message */
#undef MUTATE
    len = make_result(buf, &in, 1);
    memcpy(bad, buf, len);
    bad[1] = SHOAL_KIND_FUNCTION; /* success with a kind */
    assert_int_equal(shoal_invmeta_result_decode(bad, len, &out), -EPROTO);
    memcpy(bad, buf, len);
    bad[SHOAL_INVMETA_RESULT_FIXED + 1] = 0; /* header key length 0 */
    bad[SHOAL_INVMETA_RESULT_FIXED] = 0;
    assert_int_equal(shoal_invmeta_result_decode(bad, len, &out), -EPROTO);

    in.ok = 1;
    in.kind = SHOAL_KIND_CRASH;
    assert_int_equal(shoal_invmeta_result_head(bad, &in), -EINVAL);
    in.ok = 0;
    in.kind = SHOAL_KIND_NONE;
    assert_int_equal(shoal_invmeta_result_head(bad, &in), -EINVAL);
    in.kind = SHOAL_KIND_FUNCTION;
    in.error_len = SHOAL_INVMETA_ERR_MAX + 1;
    assert_int_equal(shoal_invmeta_result_head(bad, &in), -EINVAL);
}

static void test_kv(void **state)
{
    uint8_t buf[32], big[8];
    size_t len = 0;
    char key[SHOAL_INVMETA_KEY_MAX + 1];
    (void)state;

    assert_int_equal(shoal_invmeta_kv_put(buf, sizeof(buf), &len, "a\0b", 3, "v", 1), -EINVAL);
    assert_int_equal(shoal_invmeta_kv_put(buf, sizeof(buf), &len, "a", 1, "v\0", 2), -EINVAL);
    assert_int_equal(shoal_invmeta_kv_put(buf, sizeof(buf), &len, "", 0, "v", 1), -EINVAL);
    memset(key, 'k', sizeof(key));
    assert_int_equal(shoal_invmeta_kv_hdr(big, sizeof(key), 0), -EINVAL);
    assert_int_equal(
        shoal_invmeta_kv_put(buf, sizeof(buf), &len, "k", 1, "0123456789012345678901234", 25), 0);
    assert_int_equal(len, 32);
    assert_int_equal(shoal_invmeta_kv_put(buf, sizeof(buf), &len, "k", 1, "", 0), -ENOSPC);
    assert_int_equal(len, 32);
    assert_int_equal(shoal_invmeta_kv_validate(buf, len), 0);
    for (size_t i = 1; i < len; i++)
        assert_int_equal(shoal_invmeta_kv_validate(buf, i), -EPROTO);
    /* A key length beyond the bound is refused even when the bytes are there. */
    uint8_t huge[SHOAL_INVMETA_KV_HDR + SHOAL_INVMETA_KEY_MAX + 1];
    memset(huge, 'k', sizeof(huge));
    huge[0] = (uint8_t)((SHOAL_INVMETA_KEY_MAX + 1) & 0xff);
    huge[1] = (uint8_t)((SHOAL_INVMETA_KEY_MAX + 1) >> 8);
    put32(huge + 2, 0);
    assert_int_equal(shoal_invmeta_kv_validate(huge, sizeof(huge)), -EPROTO);
}

static void test_kinds(void **state)
{
    (void)state;
    for (int k = 1; k <= SHOAL_KIND_MAX; k++)
        assert_int_equal(shoal_invmeta_kind_parse(shoal_invmeta_kind_name((shoal_invmeta_kind)k)),
                         k);
    assert_string_equal(shoal_invmeta_kind_name(SHOAL_KIND_OVERLOAD), "overload");
    assert_int_equal(shoal_invmeta_kind_parse("martian"), SHOAL_KIND_INTERNAL);
    assert_int_equal(shoal_invmeta_kind_parse(NULL), SHOAL_KIND_INTERNAL);
    assert_string_equal(shoal_invmeta_kind_name((shoal_invmeta_kind)99), "");
}

/* A frame from a peer of another protocol version never reaches a meta decoder. */
static void test_bad_version(void **state)
{
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];
    shoal_frame_hdr h;
    (void)state;

    assert_int_equal(shoal_frame_encode(pre, SHOAL_FRAME_INVOKE, 1, 30, 0), 0);
    assert_int_equal(pre[4], SHOAL_FRAME_VERSION);
    assert_int_equal(SHOAL_FRAME_VERSION, 2);
    assert_int_equal(shoal_frame_decode_hdr(pre, 1024, &h), 0);
    pre[4] = 1;
    assert_int_equal(shoal_frame_decode_hdr(pre, 1024, &h), -EPROTONOSUPPORT);
    pre[4] = 3;
    assert_int_equal(shoal_frame_decode_hdr(pre, 1024, &h), -EPROTONOSUPPORT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invoke_round_trip),
        cmocka_unit_test(test_invoke_truncations),
        cmocka_unit_test(test_invoke_bad_fields),
        cmocka_unit_test(test_result_round_trip),
        cmocka_unit_test(test_result_truncations_and_bad_fields),
        cmocka_unit_test(test_kv),
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_bad_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
