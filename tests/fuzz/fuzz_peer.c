/*
 * libFuzzer target for what a worker reads from another worker's peer connection before it trusts
 * anything: the 40-byte peer header (worker/peer.h), fed arbitrary bytes as a hostile or broken
 * peer could send them. A header that decodes must encode back to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "worker/peer.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    for (size_t off = 0; off + SHOAL_PEER_HDR_SIZE <= len; off += SHOAL_PEER_HDR_SIZE) {
        shoal_peer_hdr_t h;
        uint8_t again[SHOAL_PEER_HDR_SIZE];
        if (shoal_peer_hdr_decode(buf + off, &h) < 0)
            continue;
        shoal_peer_hdr_encode(again, &h);
        if (memcmp(again, buf + off, SHOAL_PEER_HDR_SIZE) != 0)
            abort();
    }
    return 0;
}
