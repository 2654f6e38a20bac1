/*
 * libFuzzer target for the controller<->worker frame decoder (transport/frame.c): arbitrary bytes
 * fed to the incremental reader in arbitrary pieces, every delivered payload split into meta and
 * data, and every meta also decoded as a binary INVOKE and RESULT meta (transport/invmeta.c)
 * whatever the frame's type, with each key/value entry read back. Nothing may read out of bounds,
 * leak, or allocate beyond the bound; what decodes must re-encode to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/frame.h"
#include "transport/invmeta.h"

static uint8_t touch_kv(const uint8_t *p, size_t len)
{
    shoal_invmeta_kv_t kv;
    size_t off = 0;
    uint8_t x = 0;

    while (shoal_invmeta_kv_next(p, len, &off, &kv) == 1) {
        x ^= (uint8_t)kv.key[kv.key_len - 1];
        if (kv.val_len > 0)
            x ^= (uint8_t)kv.val[kv.val_len - 1];
    }
    return x;
}

static uint8_t metas(const uint8_t *meta, size_t ml)
{
    shoal_invmeta_invoke_t inv;
    shoal_invmeta_result_t res;
    uint8_t head[SHOAL_INVMETA_INVOKE_HEAD_MAX], x = 0;

    if (shoal_invmeta_invoke_decode(meta, ml, &inv) == 0) {
        int n = shoal_invmeta_invoke_head(head, &inv);
        if (n < 0 || memcmp(head, meta, (size_t)n) != 0)
            __builtin_trap();
        x ^= touch_kv(inv.kv, inv.kv_len);
        if (inv.ext_len > 0)
            x ^= (uint8_t)inv.ext[inv.ext_len - 1];
    }
    if (shoal_invmeta_result_decode(meta, ml, &res) == 0) {
        if (shoal_invmeta_result_head(head, &res) < 0 ||
            memcmp(head, meta, SHOAL_INVMETA_RESULT_FIXED) != 0)
            __builtin_trap();
        x ^= touch_kv(res.headers, res.headers_len);
        if (res.error_len > 0)
            x ^= (uint8_t)res.error[res.error_len - 1];
    }
    return x;
}

static int on_frame(void *opaque, const shoal_frame_hdr *hdr, const uint8_t *payload)
{
    const char *meta;
    const uint8_t *data;
    size_t ml, dl;
    volatile uint8_t sink = 0;

    (void)opaque;
    if (shoal_frame_split(payload, hdr->len, &meta, &ml, &data, &dl) == 0) {
        if (ml > 0)
            sink ^= (uint8_t)meta[ml - 1];
        sink ^= metas((const uint8_t *)meta, ml);
        if (dl > 0)
            sink ^= data[dl - 1];
    }
    (void)sink;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    shoal_frame_reader_t *r;
    size_t step, off = 0;

    if (len < 1)
        return 0;
    /* The whole input as a meta too: the decoders get every byte pattern directly. */
    (void)metas(buf, len);
    /* The first byte picks the piece size, so splits across headers get explored too. */
    step = (size_t)buf[0] % 37 + 1;
    buf++;
    len--;
    if ((r = shoal_frame_reader_create(1 << 16, on_frame, NULL)) == NULL)
        return 0;
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        if (shoal_frame_reader_feed(r, buf + off, n) != 0)
            break;
        off += n;
    }
    shoal_frame_reader_destroy(r);
    return 0;
}
