/* Tests worker/wire.c: frames fed in every split, data landing in the destination on_meta
 * chooses (directly, for large parts), skipped data, a destination dropped mid-frame, and decode
 * errors. Also worker/jsonw.c and worker/proc.c (exit descriptions). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "worker/jsonw.h"
#include "worker/proc.h"
#include "worker/wire.h"

typedef struct {
    int metas, frames;
    uint8_t *dst; /* where data should go (NULL: skip) */
    char meta[256];
    uint8_t got[1 << 20];
    size_t got_len;
    int got_null;
    int stop_at;
} sink_t;

static int cb_meta(void *o, const shoal_frame_hdr *h, const char *m, size_t ml, size_t dl,
                   uint8_t **dst)
{
    sink_t *s = o;
    (void)h;
    (void)dl;
    s->metas++;
    memcpy(s->meta, m, ml);
    s->meta[ml] = 0;
    *dst = s->dst;
    return 0;
}

static int cb_frame(void *o, const shoal_frame_hdr *h, const char *m, size_t ml, uint8_t *d,
                    size_t dl)
{
    sink_t *s = o;
    (void)h;
    (void)m;
    (void)ml;
    s->frames++;
    s->got_null = d == NULL;
    if (d != NULL) {
        memcpy(s->got, d, dl);
        s->got_len = dl;
    }
    return s->stop_at == s->frames ? -ECANCELED : 0;
}

static const shoal_wire_cbs_t cbs = {cb_meta, cb_frame};

static size_t make(uint8_t *out, uint8_t type, const char *meta, const uint8_t *data, size_t len)
{
    size_t ml = strlen(meta);
    shoal_frame_encode(out, type, 5, ml, len);
    memcpy(out + SHOAL_FRAME_PREFIX_SIZE, meta, ml);
    if (len > 0)
        memcpy(out + SHOAL_FRAME_PREFIX_SIZE + ml, data, len);
    return SHOAL_FRAME_PREFIX_SIZE + ml + len;
}

static void test_every_split(void **state)
{
    static uint8_t stream[1024], dst[64];
    static shoal_wire_reader_t r;
    static sink_t s;
    size_t n, a;
    (void)state;

    n = make(stream, SHOAL_FRAME_INVOKE, "{\"a\":1}", (const uint8_t *)"payload", 7);
    n += make(stream + n, SHOAL_FRAME_FUNC, "{}", NULL, 0);
    for (a = 0; a <= n; a++) {
        memset(&s, 0, sizeof(s));
        memset(dst, 0, sizeof(dst));
        s.dst = dst;
        shoal_wire_init(&r, 1 << 20, &cbs, &s);
        assert_int_equal(shoal_wire_feed(&r, stream, a), 0);
        assert_int_equal(shoal_wire_feed(&r, stream + a, n - a), 0);
        assert_int_equal(s.metas, 2);
        assert_int_equal(s.frames, 2);
        assert_string_equal(s.meta, "{}");
        assert_memory_equal(dst, "payload", 7);
        shoal_wire_free(&r);
    }
    /* Byte by byte. */
    memset(&s, 0, sizeof(s));
    s.dst = dst;
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    for (a = 0; a < n; a++)
        assert_int_equal(shoal_wire_feed(&r, stream + a, 1), 0);
    assert_int_equal(s.frames, 2);
    shoal_wire_free(&r);
}

static void test_direct_and_skip(void **state)
{
    static shoal_wire_reader_t r;
    static sink_t s;
    static uint8_t dst[300000], frame[300100], src[300000];
    uint8_t *buf;
    size_t len, n, off = 0, i;
    int direct = 0;
    (void)state;

    for (i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 13);
    n = make(frame, SHOAL_FRAME_INVOKE, "{}", src, sizeof(src));
    memset(&s, 0, sizeof(s));
    s.dst = dst;
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    /* Simulate socket reads of at most 70000 bytes into whatever buffer the reader names. */
    while (off < n) {
        shoal_wire_buf(&r, &buf, &len);
        if (buf >= dst && buf < dst + sizeof(dst))
            direct++;
        if (len > 70000)
            len = 70000;
        if (len > n - off)
            len = n - off;
        memcpy(buf, frame + off, len);
        off += len;
        assert_int_equal(shoal_wire_commit(&r, len), 0);
    }
    assert_int_equal(s.frames, 1);
    assert_false(s.got_null);
    assert_memory_equal(dst, src, sizeof(src));
    assert_true(direct >= 3); /* most of it went straight into place */
    /* Skipped data: on_frame sees NULL. */
    memset(&s, 0, sizeof(s));
    shoal_wire_free(&r);
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    assert_int_equal(shoal_wire_feed(&r, frame, n), 0);
    assert_int_equal(s.frames, 1);
    assert_true(s.got_null);
    /* A destination dropped in the middle: the rest is skipped, the frame still ends. */
    memset(&s, 0, sizeof(s));
    s.dst = dst;
    shoal_wire_free(&r);
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    assert_int_equal(shoal_wire_feed(&r, frame, 1000), 0);
    shoal_wire_drop_dst(&r);
    shoal_wire_buf(&r, &buf, &len);
    assert_false(buf >= dst && buf < dst + sizeof(dst));
    assert_int_equal(shoal_wire_feed(&r, frame + 1000, n - 1000), 0);
    assert_int_equal(s.frames, 1);
    assert_true(s.got_null);
    shoal_wire_free(&r);
}

static void test_errors(void **state)
{
    static shoal_wire_reader_t r;
    static sink_t s;
    uint8_t f[256];
    size_t n;
    (void)state;

    memset(&s, 0, sizeof(s));
    n = make(f, SHOAL_FRAME_INVOKE, "{}", (const uint8_t *)"x", 1);
    f[0] ^= 1;
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    assert_int_equal(shoal_wire_feed(&r, f, n), -EPROTO);
    assert_int_equal(shoal_wire_feed(&r, f, n), -EPROTO); /* stays failed */
    shoal_wire_free(&r);
    /* Too large for max_payload. */
    n = make(f, SHOAL_FRAME_INVOKE, "{}", (const uint8_t *)"xxxxxxxxxx", 10);
    shoal_wire_init(&r, 8, &cbs, &s);
    assert_int_equal(shoal_wire_feed(&r, f, n), -EMSGSIZE);
    shoal_wire_free(&r);
    /* A meta length beyond the payload. */
    n = make(f, SHOAL_FRAME_INVOKE, "{}", NULL, 0);
    f[16] = 200;
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    assert_int_equal(shoal_wire_feed(&r, f, n), -EPROTO);
    shoal_wire_free(&r);
    /* A callback's error stops the reader. */
    memset(&s, 0, sizeof(s));
    s.stop_at = 1;
    n = make(f, SHOAL_FRAME_FUNC, "{}", NULL, 0);
    memcpy(f + n, f, n);
    shoal_wire_init(&r, 1 << 20, &cbs, &s);
    assert_int_equal(shoal_wire_feed(&r, f, 2 * n), -ECANCELED);
    assert_int_equal(s.frames, 1);
    shoal_wire_free(&r);
}

static void test_jsonw(void **state)
{
    shoal_strbuf_t b = {0};
    json_t *j;
    (void)state;

    static const char in[] = "a\"b\\c\n\x01 \xc3\xa9 \xff \xed\xa0\x80 ok";
    shoal_strbuf_json(&b, in, sizeof(in) - 1);
    j = json_loads(b.p, JSON_DECODE_ANY, NULL);
    assert_non_null(j); /* always valid JSON, even from invalid UTF-8 */
    assert_string_equal(
        json_string_value(j),
        "a\"b\\c\n\x01 \xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd ok");
    json_decref(j);
    shoal_strbuf_reset(&b);
    assert_int_equal(b.len, 0);
    shoal_strbuf_printf(&b, "{\"n\":%d}", 42);
    assert_string_equal(b.p, "{\"n\":42}");
    shoal_strbuf_free(&b);
}

static void test_exit_descriptions(void **state)
{
    char buf[96];
    int status;
    pid_t pid;
    (void)state;

    assert_string_equal(shoal_proc_signame(SIGSEGV, buf, sizeof(buf)), "SIGSEGV");
    assert_string_equal(shoal_proc_signame(SIGKILL, buf, sizeof(buf)), "SIGKILL");
    assert_string_equal(shoal_proc_signame(SIGABRT, buf, sizeof(buf)), "SIGABRT");
    assert_string_equal(shoal_proc_signame(200, buf, sizeof(buf)), "SIG200");
    pid = fork();
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        raise(SIGSEGV);
        _exit(0);
    }
    waitpid(pid, &status, 0);
    assert_string_equal(shoal_proc_describe_exit(status, buf, sizeof(buf)),
                        "killed by signal 11 (SIGSEGV)");
    pid = fork();
    if (pid == 0)
        _exit(3);
    waitpid(pid, &status, 0);
    assert_string_equal(shoal_proc_describe_exit(status, buf, sizeof(buf)), "exited with status 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_direct_and_skip),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_jsonw),
        cmocka_unit_test(test_exit_descriptions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
