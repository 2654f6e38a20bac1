/*
 * json - see json.h. Growth doubles the buffer, so appending n bytes costs amortised O(n); runs
 * of plain ASCII in strings are copied in one memcpy rather than byte by byte.
 */
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void shoal_json_init(shoal_json_t *j)
{
    j->buf = NULL;
    j->len = 0;
    j->cap = 0;
    j->oom = 0;
}

void shoal_json_free(shoal_json_t *j)
{
    free(j->buf);
    shoal_json_init(j);
}

void shoal_json_reset(shoal_json_t *j)
{
    j->len = 0;
    j->oom = 0;
}

void shoal_json_trim(shoal_json_t *j, size_t max)
{
    if (j->cap > max)
        shoal_json_free(j);
    else
        shoal_json_reset(j);
}

int shoal_json_error(const shoal_json_t *j)
{
    return j->oom ? -ENOMEM : 0;
}

/* Makes room for n more bytes; 0 or -1 (and the sticky flag) when memory runs out. */
static int reserve(shoal_json_t *j, size_t n)
{
    size_t cap;
    char *nb;

    if (j->oom)
        return -1;
    if (j->cap - j->len >= n)
        return 0;
    if (n > SIZE_MAX / 2 - j->len) {
        j->oom = 1;
        return -1;
    }
    cap = j->cap ? j->cap : 256;
    while (cap - j->len < n)
        cap *= 2;
    if ((nb = realloc(j->buf, cap)) == NULL) {
        j->oom = 1;
        return -1;
    }
    j->buf = nb;
    j->cap = cap;
    return 0;
}

void shoal_json_raw(shoal_json_t *j, const void *s, size_t n)
{
    if (n == 0 || reserve(j, n) < 0)
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

/* Length of the well-formed UTF-8 sequence starting at s (at most n bytes available), or 0 if the
 * bytes there are not one (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

void shoal_json_str(shoal_json_t *j, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;

    shoal_json_lit(j, "\"");
    while (i < n) {
        size_t run = i;
        /* Plain printable ASCII other than the two characters JSON escapes. */
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' && s[run] != '\\')
            run++;
        if (run > i) {
            shoal_json_raw(j, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = s[i];
        if (c == '"') {
            shoal_json_lit(j, "\\\"");
            i++;
        } else if (c == '\\') {
            shoal_json_lit(j, "\\\\");
            i++;
        } else if (c == '\n') {
            shoal_json_lit(j, "\\n");
            i++;
        } else if (c == '\r') {
            shoal_json_lit(j, "\\r");
            i++;
        } else if (c == '\t') {
            shoal_json_lit(j, "\\t");
            i++;
        } else if (c == 0) {
            shoal_json_lit(j, "\\ufffd");
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            shoal_json_raw(j, esc, sizeof(esc));
            i++;
        } else {
            size_t len = utf8_seq(s + i, n - i);
            if (len == 0) {
                shoal_json_lit(j, "\\ufffd");
                i++;
            } else {
                shoal_json_raw(j, s + i, len);
                i += len;
            }
        }
    }
    shoal_json_lit(j, "\"");
}

void shoal_json_cstr(shoal_json_t *j, const char *s)
{
    shoal_json_str(j, s, strlen(s));
}

void shoal_json_u64(shoal_json_t *j, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    shoal_json_raw(j, tmp, (size_t)n);
}

void shoal_json_i64(shoal_json_t *j, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    shoal_json_raw(j, tmp, (size_t)n);
}

void shoal_json_key(shoal_json_t *j, const char *key)
{
    shoal_json_cstr(j, key);
    shoal_json_lit(j, ":");
}
