/*
 * url - the addresses the CLI handles: the API base URL (--url / SHOAL_URL), query strings, and
 * the ADDR:PORT pairs of `shoal up`. Pure string functions, safe from any thread.
 */
#ifndef SHOAL_CLI_URL_H
#define SHOAL_CLI_URL_H

#include <stddef.h>

/* Normalises an API base URL into out: "http://" is added when no scheme is given
 * ("localhost:8080" → "http://localhost:8080") and trailing slashes are removed. -1 for an empty
 * URL, one with blanks or control characters, a scheme other than http or https, or one that
 * does not fit; else 0. */
int shoal_cli_url_base(const char *in, char *out, size_t size);

/* Appends "?key=value" (or "&key=value" when buf already holds a '?') to the NUL-terminated
 * buf, percent-encoding the value. 0, or -1 when it does not fit (buf is then unchanged). */
int shoal_cli_url_query_add(char *buf, size_t size, const char *key, const char *value);

/* Writes "/v1/functions/<name><suffix>" into buf with name percent-encoded, so that whatever the
 * user typed reaches the server as one path segment (which then judges the name). 0, or -1 when
 * it does not fit. */
int shoal_cli_url_function_path(char *buf, size_t size, const char *name, const char *suffix);

/* Splits "HOST:PORT" (HOST may be "[v6-address]") into host (without brackets) and port
 * (1..65535). 0, or -1 when malformed. */
int shoal_cli_url_hostport_parse(const char *s, char *host, size_t hostsize, unsigned *port);

/* Formats host and port as "HOST:PORT", bracketing an IPv6 host. Returns out. */
char *shoal_cli_url_hostport_format(const char *host, unsigned port, char *out, size_t size);

/* The host a client on this machine connects to for a server listening on host: the loopback
 * address for the wildcard addresses ("0.0.0.0" → "127.0.0.1", "::" → "::1"), else host. */
const char *shoal_cli_url_connect_host(const char *host);

#endif
