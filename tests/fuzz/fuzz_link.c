/*
 * libFuzzer target for what a runtime reads from a direct link's shared header (transport/link.h):
 * arbitrary bytes as a hostile peer could write them over the header page, then the callee's
 * request poll, the caller's response poll (for a seq taken from the input) and the close check;
 * plus the layout check on arbitrary layouts. Nothing may crash or read outside the mapping.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "transport/link.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    static shoal_link_t *w, *a, *b;
    shoal_link_layout_t lay;
    shoal_link_req_t rq;
    shoal_link_resp_t rs;
    char msg[SHOAL_LINK_MSG_MAX];
    uint64_t seq = 1;
    size_t mlen;
    int v;

    if (w == NULL) {
        if (shoal_link_create(&w, 4096, 8192) < 0)
            return 0;
        lay = *shoal_link_get_layout(w);
        if (shoal_link_open(&a, dup(shoal_link_fd(w)), &lay, 8192) < 0 ||
            shoal_link_open(&b, dup(shoal_link_fd(w)), &lay, 8192) < 0)
            return 0;
    }
    if (len >= sizeof(seq))
        memcpy(&seq, buf, sizeof(seq));
    memset(shoal_link_hdr(w), 0, SHOAL_LINK_PAGE);
    memcpy(shoal_link_hdr(w), buf, len < SHOAL_LINK_PAGE ? len : SHOAL_LINK_PAGE);
    if (shoal_link_poll_req(b, &rq) == 1 && rq.in_len > shoal_link_get_layout(b)->in_cap)
        __builtin_trap();
    if (shoal_link_poll_resp(a, seq, &rs) == 1 &&
        (rs.out_len > shoal_link_get_layout(a)->out_cap || rs.err_len > 4 * SHOAL_LINK_MSG_MAX))
        __builtin_trap();
    if (shoal_link_closed(a, &v, msg, sizeof(msg), &mlen) == 1 && (v > 0 || mlen > sizeof(msg)))
        __builtin_trap();
    if (len >= sizeof(lay)) {
        memcpy(&lay, buf, sizeof(lay));
        (void)shoal_link_layout_check(&lay, 1u << 20, lay.size);
    }
    return 0;
}
