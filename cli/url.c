/*
 * url - see url.h.
 */
#include "url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"

int shoal_cli_url_base(const char *in, char *out, size_t size)
{
    const char *scheme = strstr(in, "://");
    size_t len = strlen(in);
    int n;

    for (const char *p = in; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return -1;
    while (len > 0 && in[len - 1] == '/')
        len--;
    if (scheme != NULL) {
        size_t slen = (size_t)(scheme - in);
        if (!((slen == 4 && strncasecmp(in, "http", 4) == 0) ||
              (slen == 5 && strncasecmp(in, "https", 5) == 0)))
            return -1;
        if (len <= slen + 3)
            return -1; /* no host */
        n = snprintf(out, size, "%.*s", (int)len, in);
    } else {
        if (len == 0)
            return -1;
        n = snprintf(out, size, "http://%.*s", (int)len, in);
    }
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Appends value to buf at *o, percent-encoding all but the unreserved characters of RFC 3986;
 * -1 when it does not fit (room for the NUL is kept). */
static int encode(char *buf, size_t size, size_t *o, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        int plain = (*v >= 'a' && *v <= 'z') || (*v >= 'A' && *v <= 'Z') ||
                    (*v >= '0' && *v <= '9') || *v == '-' || *v == '_' || *v == '.' || *v == '~';
        size_t need = plain ? 1 : 3;

        if (*o + need >= size)
            return -1;
        if (plain) {
            buf[(*o)++] = (char)*v;
        } else {
            buf[(*o)++] = '%';
            buf[(*o)++] = hex[*v >> 4];
            buf[(*o)++] = hex[*v & 15];
        }
    }
    return 0;
}

int shoal_cli_url_query_add(char *buf, size_t size, const char *key, const char *value)
{
    size_t o = strlen(buf), start = o;

    if (o + 1 >= size)
        return -1;
    buf[o++] = strchr(buf, '?') != NULL ? '&' : '?';
    if (encode(buf, size, &o, key) < 0 || o + 1 >= size)
        goto full;
    buf[o++] = '=';
    if (encode(buf, size, &o, value) < 0)
        goto full;
    buf[o] = '\0';
    return 0;
full:
    buf[start] = '\0';
    return -1;
}

int shoal_cli_url_function_path(char *buf, size_t size, const char *name, const char *suffix)
{
    size_t o = 0;
    int n = snprintf(buf, size, "/v1/functions/");

    if (n < 0 || (size_t)n >= size)
        return -1;
    o = (size_t)n;
    if (encode(buf, size, &o, name) < 0)
        return -1;
    n = snprintf(buf + o, size - o, "%s", suffix);
    return n < 0 || (size_t)n >= size - o ? -1 : 0;
}

int shoal_cli_url_hostport_parse(const char *s, char *host, size_t hostsize, unsigned *port)
{
    const char *colon, *h = s;
    size_t hlen;
    uint64_t p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        if ((colon = strrchr(s, ':')) == NULL)
            return -1;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen) != NULL)
            return -1; /* an IPv6 address must be bracketed */
    }
    if (hlen == 0 || hlen >= hostsize)
        return -1;
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)h[i] <= ' ' || h[i] == '/' || h[i] == '[' || h[i] == ']')
            return -1;
    if (shoal_util_parse_u64(colon + 1, strlen(colon + 1), 1, 65535, &p) < 0)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (unsigned)p;
    return 0;
}

char *shoal_cli_url_hostport_format(const char *host, unsigned port, char *out, size_t size)
{
    if (strchr(host, ':') != NULL)
        snprintf(out, size, "[%s]:%u", host, port);
    else
        snprintf(out, size, "%s:%u", host, port);
    return out;
}

const char *shoal_cli_url_connect_host(const char *host)
{
    if (strcmp(host, "0.0.0.0") == 0)
        return "127.0.0.1";
    if (strcmp(host, "::") == 0 || strcmp(host, "::0") == 0)
        return "::1";
    return host;
}
