/*
 * jsonw - a growable string buffer and JSON string escaping, for the worker's hot-path frame
 * metas (RESULT, STATUS) that are formatted without building a jansson tree. Arbitrary bytes are
 * made valid JSON: invalid UTF-8 becomes U+FFFD. Loop thread only; a buffer is owned by its user.
 */
#ifndef SHOAL_WORKER_JSONW_H
#define SHOAL_WORKER_JSONW_H

#include <stddef.h>

typedef struct {
    char *p;
    size_t len, cap;
    int oom; /* an append failed; the contents are incomplete */
} shoal_strbuf_t;

/* Empties the buffer, keeping its memory. */
void shoal_strbuf_reset(shoal_strbuf_t *b);
void shoal_strbuf_free(shoal_strbuf_t *b);
void shoal_strbuf_append(shoal_strbuf_t *b, const char *s, size_t len);
void shoal_strbuf_printf(shoal_strbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends s (len bytes) as a quoted JSON string. */
void shoal_strbuf_json(shoal_strbuf_t *b, const char *s, size_t len);

#endif
