/*
 * input - the body of a deploy or an invoke: a literal, a file, or standard input. A regular
 * file is streamed from its descriptor with its size known up front (so a 1 GiB artifact is never
 * held in memory); a pipe or terminal is read into memory first, bounded by SHOAL_CLI_INPUT_MAX,
 * because the API wants a Content-Length. Single-threaded.
 */
#ifndef SHOAL_CLI_INPUT_H
#define SHOAL_CLI_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"

#define SHOAL_CLI_INPUT_MAX (1ull << 30)

typedef struct {
    int fd;           /* streamed from here when >= 0 */
    int owned_fd;     /* fd was opened here and is closed by shoal_cli_input_close */
    const char *data; /* else the bytes, in memory */
    char *owned_data; /* data when it was read here */
    uint64_t size;    /* bytes in the body */
} shoal_cli_input_t;

/* Opens path ("-" is standard input) as an input. 0, or -1 with the reason in err
 * ("cannot open x.so: No such file or directory", "input larger than 1.0 GiB"). */
int shoal_cli_input_open(shoal_cli_input_t *in, const char *path, char *err, size_t errsize);

/* An input of len bytes at data, which must outlive it. */
void shoal_cli_input_literal(shoal_cli_input_t *in, const char *data, size_t len);

/* Makes in the body of req. */
void shoal_cli_input_apply(const shoal_cli_input_t *in, shoal_cli_http_req_t *req);

void shoal_cli_input_close(shoal_cli_input_t *in);

#endif
