/*
 * libFuzzer target for the controller<->worker frame decoder (transport/frame.c): arbitrary bytes
 * fed to the incremental reader in arbitrary pieces, every delivered payload split into meta and
 * data. Nothing may read out of bounds, leak, or allocate beyond the bound.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/frame.h"

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
