/*
 * auth - who may use the HTTP API (docs/security.md, "Authentication").
 *
 * Every /v1/ request carries `Authorization: Bearer <token>`; the token is the controller's
 * (--token, SHOAL_TOKEN or <home>/token, common/secret.h). This module parses the header and
 * compares the token in constant time; http.c decides which requests need it (everything under
 * /v1/ except invoking a public function; HTTP trigger routes of non-public functions) and
 * answers 401 (with WWW-Authenticate: Bearer) or 403. Kept apart from h2o so it can be tested on
 * its own. Pure; any thread.
 */
#ifndef SHOAL_CONTROLLER_AUTH_H
#define SHOAL_CONTROLLER_AUTH_H

#include <stddef.h>

typedef enum {
    SHOAL_AUTH_OK = 0,    /* the right token */
    SHOAL_AUTH_MISSING,   /* no Authorization header: 401 */
    SHOAL_AUTH_MALFORMED, /* not "Bearer <token68>": 401 */
    SHOAL_AUTH_WRONG,     /* a well-formed bearer token that is not ours: 403 */
} shoal_auth_result_t;

/* Extracts the token of an Authorization header value: the scheme "Bearer" (any case), one or
 * more spaces, a token68 (the characters of common/secret.h, at most SHOAL_SECRET_MAX of them), and
 * optional trailing spaces. Returns 0 with *tok and *tok_len pointing into value, or -EINVAL. */
int shoal_auth_parse_bearer(const char *value, size_t len, const char **tok, size_t *tok_len);

/* Checks an Authorization header value (NULL when the request has none) against token. The
 * comparison takes time independent of where the tokens differ. */
shoal_auth_result_t shoal_auth_check(const char *token, const char *value, size_t len);

/* The controller's token as it is compared: its SHA-256 digest and length, computed once
 * (shoal_auth_key_init) so that a request costs one digest, of the token it presents. */
typedef struct {
    unsigned char digest[32];
    size_t len;
} shoal_auth_key_t;

void shoal_auth_key_init(shoal_auth_key_t *k, const char *token);
/* shoal_auth_check against a prepared key. */
shoal_auth_result_t shoal_auth_check_key(const shoal_auth_key_t *k, const char *value, size_t len);

/* A one-line message for a failed check, for the JSON error (never includes either token). */
const char *shoal_auth_message(shoal_auth_result_t r);

#endif
