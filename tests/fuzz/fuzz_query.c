/*
 * libFuzzer target for the HTTP query parsing of the controller (controller/api.c): the pair
 * iterator and the deploy and invoke parameter parsers, on arbitrary query strings.
 */
#include <stddef.h>
#include <stdint.h>

#include "controller/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
    const char *q = (const char *)buf;
    shoal_api_param_t p;
    shoal_fn_limits_t limits;
    shoal_api_invoke_params_t inv;
    char err[256];
    size_t pos = 0;
    volatile size_t sink = 0;

    while (shoal_api_query_next(q, len, &pos, &p) == 1) {
        sink += p.key_len + (p.val ? p.val_len : 0);
        if (pos > len)
            __builtin_trap();
    }
    shoal_api_parse_deploy_query(q, len, &limits, err, sizeof(err));
    shoal_api_parse_invoke_query(q, len, &inv, err, sizeof(err));
    (void)sink;
    return 0;
}
