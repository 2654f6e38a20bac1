/* Tests transport/frame.c: header encoding, every decode error, payload splitting, and the
 * incremental reader fed in every possible split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "transport/frame.h"

static void test_roundtrip(void **state)
{
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];
    shoal_frame_hdr h;
    (void)state;

    assert_int_equal(shoal_frame_encode(pre, SHOAL_FRAME_INVOKE, 0xdeadbeef, 5, 100), 0);
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), 0);
    assert_int_equal(h.type, SHOAL_FRAME_INVOKE);
    assert_int_equal(h.id, 0xdeadbeef);
    assert_int_equal(h.len, 4 + 5 + 100);
    /* The wire is little-endian whatever the host. */
    assert_int_equal(pre[0], 'S');
    assert_int_equal(pre[3], '1');
    assert_int_equal(pre[8], 109);
}

static void test_decode_errors(void **state)
{
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];
    shoal_frame_hdr h;
    (void)state;

    shoal_frame_encode(pre, SHOAL_FRAME_HELLO, 1, 0, 0);
    pre[0] ^= 1;
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EPROTO);
    shoal_frame_encode(pre, SHOAL_FRAME_HELLO, 1, 0, 0);
    pre[4] = SHOAL_FRAME_VERSION + 1;
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EPROTONOSUPPORT);
    pre[4] = 1; /* JSON-only metas: refused since version 2 */
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EPROTONOSUPPORT);
    shoal_frame_encode(pre, 0, 1, 0, 0);
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EPROTO);
    shoal_frame_encode(pre, SHOAL_FRAME_TYPE_MAX + 1, 1, 0, 0);
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EPROTO);
    shoal_frame_encode(pre, SHOAL_FRAME_HELLO, 1, 0, 0);
    pre[6] = 1;
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EPROTO);
    shoal_frame_encode(pre, SHOAL_FRAME_HELLO, 1, 10, 991);
    assert_int_equal(shoal_frame_decode_hdr(pre, 1000, &h), -EMSGSIZE);
    assert_int_equal(shoal_frame_encode(pre, SHOAL_FRAME_HELLO, 1, SHOAL_FRAME_META_MAX + 1, 0),
                     -EMSGSIZE);
}

static void test_split(void **state)
{
    uint8_t p[32] = {3, 0, 0, 0, '{', '}', ' ', 'x', 'y'};
    const char *meta;
    const uint8_t *data;
    size_t ml, dl;
    (void)state;

    assert_int_equal(shoal_frame_split(p, 9, &meta, &ml, &data, &dl), 0);
    assert_int_equal(ml, 3);
    assert_memory_equal(meta, "{} ", 3);
    assert_int_equal(dl, 2);
    assert_memory_equal(data, "xy", 2);
    p[0] = 6; /* meta longer than the payload */
    assert_int_equal(shoal_frame_split(p, 9, &meta, &ml, &data, &dl), -EPROTO);
    assert_int_equal(shoal_frame_split(p, 3, &meta, &ml, &data, &dl), -EPROTO);
}

struct seen {
    int frames;
    uint32_t ids[8];
    size_t lens[8];
    uint8_t last_byte[8];
};

static int on_frame(void *opaque, const shoal_frame_hdr *hdr, const uint8_t *payload)
{
    struct seen *s = opaque;
    s->ids[s->frames] = hdr->id;
    s->lens[s->frames] = hdr->len;
    s->last_byte[s->frames] = payload[hdr->len - 1];
    s->frames++;
    return 0;
}

/* Three frames back to back, fed in every split into two pieces and byte by byte. */
static void test_reader_splits(void **state)
{
    uint8_t stream[512];
    size_t n = 0;
    (void)state;

    for (uint32_t i = 0; i < 3; i++) {
        size_t data = 10 + 40 * i;
        shoal_frame_encode(stream + n, SHOAL_FRAME_RESULT, 100 + i, 2, data);
        n += SHOAL_FRAME_PREFIX_SIZE;
        memcpy(stream + n, "{}", 2);
        n += 2;
        memset(stream + n, (int)('a' + i), data);
        n += data;
    }
    for (size_t cut = 0; cut <= n; cut++) {
        struct seen s = {0};
        shoal_frame_reader_t *r = shoal_frame_reader_create(1000, on_frame, &s);
        assert_non_null(r);
        assert_int_equal(shoal_frame_reader_feed(r, stream, cut), 0);
        assert_int_equal(shoal_frame_reader_feed(r, stream + cut, n - cut), 0);
        assert_int_equal(s.frames, 3);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(s.ids[i], 100 + i);
            assert_int_equal(s.lens[i], 4 + 2 + 10 + 40 * i);
            assert_int_equal(s.last_byte[i], 'a' + i);
        }
        shoal_frame_reader_destroy(r);
    }
    struct seen s = {0};
    shoal_frame_reader_t *r = shoal_frame_reader_create(1000, on_frame, &s);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(shoal_frame_reader_feed(r, stream + i, 1), 0);
    assert_int_equal(s.frames, 3);
    shoal_frame_reader_destroy(r);
}

static void test_reader_rejects_oversize(void **state)
{
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE];
    struct seen s = {0};
    shoal_frame_reader_t *r = shoal_frame_reader_create(64, on_frame, &s);
    (void)state;

    shoal_frame_encode(pre, SHOAL_FRAME_INVOKE, 1, 0, 1u << 30);
    assert_int_equal(shoal_frame_reader_feed(r, pre, sizeof(pre)), -EMSGSIZE);
    assert_int_equal(s.frames, 0);
    shoal_frame_reader_destroy(r);
}

/* LOG records: a round trip of several, and every truncation of the last is -EPROTO, never a
 * read past the end. */
static void test_log_records(void **state)
{
    uint8_t buf[256];
    size_t off = 0, n;
    shoal_frame_log_rec_t in = {.ts_ms = 0x0123456789abull,
                                .rank = -1,
                                .function = "hello",
                                .function_len = 5,
                                .invocation_id = "00ff",
                                .invocation_id_len = 4,
                                .text = "one\ntwo",
                                .text_len = 7},
                          out;
    (void)state;

    assert_int_equal(shoal_frame_log_put(buf, sizeof(buf), &off, &in), 0);
    in.rank = 3;
    in.text_len = 0;
    assert_int_equal(shoal_frame_log_put(buf, sizeof(buf), &off, &in), 0);
    n = off;
    assert_int_equal(n, 2 * SHOAL_FRAME_LOG_REC_HDR + 2 * 9 + 7);
    /* Does not fit: nothing written. */
    off = n;
    in.text_len = sizeof(buf);
    assert_int_equal(shoal_frame_log_put(buf, sizeof(buf), &off, &in), -ENOSPC);
    assert_int_equal(off, n);

    off = 0;
    assert_int_equal(shoal_frame_log_next(buf, n, &off, &out), 1);
    assert_int_equal(out.ts_ms, 0x0123456789abull);
    assert_int_equal(out.rank, -1);
    assert_memory_equal(out.function, "hello", 5);
    assert_memory_equal(out.invocation_id, "00ff", 4);
    assert_int_equal(out.text_len, 7);
    assert_memory_equal(out.text, "one\ntwo", 7);
    assert_int_equal(shoal_frame_log_next(buf, n, &off, &out), 1);
    assert_int_equal(out.rank, 3);
    assert_int_equal(out.text_len, 0);
    assert_int_equal(shoal_frame_log_next(buf, n, &off, &out), 0);
    for (size_t cut = n - 1; cut > SHOAL_FRAME_LOG_REC_HDR + 16; cut--) {
        off = 0;
        assert_int_equal(shoal_frame_log_next(buf, cut, &off, &out), 1);
        assert_int_equal(shoal_frame_log_next(buf, cut, &off, &out), -EPROTO);
    }
    /* A text length claiming 4 GiB in a short buffer. */
    memset(buf + 16, 0xff, 4);
    off = 0;
    assert_int_equal(shoal_frame_log_next(buf, n, &off, &out), -EPROTO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_reader_splits),
        cmocka_unit_test(test_reader_rejects_oversize),
        cmocka_unit_test(test_log_records),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
