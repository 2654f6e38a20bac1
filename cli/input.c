/*
 * input - see input.h.
 */
#include "input.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fmt.h"

/* Reads fd to its end into in->owned_data, at most SHOAL_CLI_INPUT_MAX bytes. */
static int slurp(shoal_cli_input_t *in, int fd, const char *name, char *err, size_t errsize)
{
    size_t len = 0, cap = 0;
    char *buf = NULL;

    for (;;) {
        ssize_t n;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *b;
            if (cap >= SHOAL_CLI_INPUT_MAX + 1) {
                char lim[32];
                snprintf(err, errsize, "%s: input larger than %s", name,
                         shoal_cli_fmt_bytes(SHOAL_CLI_INPUT_MAX, lim, sizeof(lim)));
                goto fail;
            }
            if (ncap > SHOAL_CLI_INPUT_MAX + 1)
                ncap = SHOAL_CLI_INPUT_MAX + 1; /* one more byte tells "too big" from "exact" */
            if ((b = realloc(buf, ncap)) == NULL) {
                snprintf(err, errsize, "%s: out of memory", name);
                goto fail;
            }
            buf = b;
            cap = ncap;
        }
        if ((n = read(fd, buf + len, cap - len)) < 0) {
            if (errno == EINTR)
                continue;
            snprintf(err, errsize, "cannot read %s: %s", name, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > SHOAL_CLI_INPUT_MAX) {
        char lim[32];
        snprintf(err, errsize, "%s: input larger than %s", name,
                 shoal_cli_fmt_bytes(SHOAL_CLI_INPUT_MAX, lim, sizeof(lim)));
        goto fail;
    }
    in->owned_data = buf;
    in->data = buf;
    in->size = len;
    return 0;
fail:
    free(buf);
    return -1;
}

int shoal_cli_input_open(shoal_cli_input_t *in, const char *path, char *err, size_t errsize)
{
    int stdin_ = strcmp(path, "-") == 0;
    const char *name = stdin_ ? "standard input" : path;
    struct stat st;
    int fd;

    memset(in, 0, sizeof(*in));
    in->fd = -1;
    if (stdin_) {
        fd = STDIN_FILENO;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        snprintf(err, errsize, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0) {
        snprintf(err, errsize, "cannot read %s: %s", name, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errsize, "%s is a directory", name);
        goto fail;
    }
    if (S_ISREG(st.st_mode)) {
        /* Standard input may be a file that was partly read already: send the rest. */
        off_t pos = lseek(fd, 0, SEEK_CUR);
        if (pos < 0 || pos > st.st_size)
            pos = 0;
        in->fd = fd;
        in->owned_fd = !stdin_;
        in->size = (uint64_t)(st.st_size - pos);
        return 0;
    }
    if (slurp(in, fd, name, err, errsize) < 0)
        goto fail;
    if (!stdin_)
        close(fd);
    return 0;
fail:
    if (!stdin_)
        close(fd);
    return -1;
}

void shoal_cli_input_literal(shoal_cli_input_t *in, const char *data, size_t len)
{
    memset(in, 0, sizeof(*in));
    in->fd = -1;
    in->data = data;
    in->size = len;
}

void shoal_cli_input_apply(const shoal_cli_input_t *in, shoal_cli_http_req_t *req)
{
    if (in->fd >= 0) {
        req->has_body_fd = 1;
        req->body_fd = in->fd;
        req->body_size = in->size;
    } else {
        req->body = in->data != NULL ? in->data : "";
        req->body_len = (size_t)in->size;
    }
}

void shoal_cli_input_close(shoal_cli_input_t *in)
{
    if (in->owned_fd)
        close(in->fd);
    free(in->owned_data);
    memset(in, 0, sizeof(*in));
    in->fd = -1;
}
