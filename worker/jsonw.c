/*
 * jsonw - see jsonw.h.
 */
#include "jsonw.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void shoal_strbuf_reset(shoal_strbuf_t *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

void shoal_strbuf_free(shoal_strbuf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

static int reserve(shoal_strbuf_t *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->oom)
        return -1;
    if (b->len + more + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + more + 1)
        cap *= 2;
    if ((p = realloc(b->p, cap)) == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void shoal_strbuf_append(shoal_strbuf_t *b, const char *s, size_t len)
{
    if (reserve(b, len) < 0)
        return;
    memcpy(b->p + b->len, s, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void shoal_strbuf_printf(shoal_strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len, i;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2, cp = s[0] & 0x1f;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3, cp = s[0] & 0x0f;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4, cp = s[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return len;
}

void shoal_strbuf_json(shoal_strbuf_t *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run;
    char esc[8];

    shoal_strbuf_append(b, "\"", 1);
    while (i < len) {
        /* Copy runs of plain characters in one go. */
        for (run = i;
             run < len && u[run] >= 0x20 && u[run] < 0x80 && u[run] != '"' && u[run] != '\\'; run++)
            ;
        if (run > i) {
            shoal_strbuf_append(b, s + i, run - i);
            i = run;
            continue;
        }
        if (u[i] == '"' || u[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)u[i];
            shoal_strbuf_append(b, esc, 2);
            i++;
        } else if (u[i] == 0) {
            /* JSON parsers refuse \u0000 by default (jansson does): a NUL from a function's
             * text must not make the controller reject the whole frame. */
            shoal_strbuf_append(b, "\xef\xbf\xbd", 3);
            i++;
        } else if (u[i] < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", u[i]);
            shoal_strbuf_append(b, esc, 6);
            i++;
        } else {
            size_t n = utf8_len(u + i, len - i);
            if (n == 0) {
                shoal_strbuf_append(b, "\xef\xbf\xbd", 3);
                i++;
            } else {
                shoal_strbuf_append(b, s + i, n);
                i += n;
            }
        }
    }
    shoal_strbuf_append(b, "\"", 1);
}
