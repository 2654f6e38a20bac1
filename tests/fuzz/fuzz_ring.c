/*
 * libFuzzer target for what the worker reads from an instance's shared memory: the up-ring record
 * decoder (transport/ring.c) and the up-message validator (transport/channel.c), fed arbitrary
 * bytes as a hostile instance could write them.
 */
#include <stddef.h>
#include <stdint.h>

#include "transport/channel.h"
#include "transport/ring.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    static shoal_channel_layout_t lay;
    static int ready;
    size_t off = 0;

    if (!ready) {
        shoal_channel_layout(1u << 20, &lay);
        ready = 1;
    }
    /* Walk the buffer as a run of records, validating each payload as an up message. */
    while (off < len) {
        shoal_ring_rec_t rec;
        const uint8_t *payload;
        shoal_up_msg_t m;
        int64_t n = shoal_ring_decode(buf + off, len - off, 1u << 16, &rec, &payload);
        if (n <= 0)
            break;
        shoal_channel_decode_up(&lay, rec.type, payload, rec.len, &m);
        off += (size_t)n;
    }
    return 0;
}
