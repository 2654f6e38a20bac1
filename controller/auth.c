/*
 * auth - see auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "common/secret.h"

static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int shoal_auth_parse_bearer(const char *value, size_t len, const char **tok, size_t *tok_len)
{
    static const char SCHEME[] = "bearer";
    size_t i = sizeof(SCHEME) - 1, start, end;

    if (value == NULL || len <= i || strncasecmp(value, SCHEME, i) != 0 || value[i] != ' ')
        return -EINVAL;
    while (i < len && value[i] == ' ')
        i++;
    start = i;
    while (i < len && token_char((unsigned char)value[i]))
        i++;
    if (i == start)
        return -EINVAL;
    while (i < len && value[i] == '=')
        i++;
    end = i;
    while (i < len && (value[i] == ' ' || value[i] == '\t'))
        i++;
    if (i != len || end - start > SHOAL_SECRET_MAX)
        return -EINVAL;
    *tok = value + start;
    *tok_len = end - start;
    return 0;
}

void shoal_auth_key_init(shoal_auth_key_t *k, const char *token)
{
    k->len = strlen(token);
    SHA256((const unsigned char *)token, k->len, k->digest);
}

shoal_auth_result_t shoal_auth_check_key(const shoal_auth_key_t *k, const char *value, size_t len)
{
    unsigned char d[32];
    const char *tok;
    size_t tok_len;

    if (value == NULL)
        return SHOAL_AUTH_MISSING;
    if (shoal_auth_parse_bearer(value, len, &tok, &tok_len) < 0)
        return SHOAL_AUTH_MALFORMED;
    /* As shoal_secret_equal: digests of equal length make the time independent of where the
     * tokens differ, and both are compared in full before the (public) lengths are. */
    SHA256((const unsigned char *)tok, tok_len, d);
    int same = (CRYPTO_memcmp(d, k->digest, sizeof(d)) == 0) & (tok_len == k->len);
    return same ? SHOAL_AUTH_OK : SHOAL_AUTH_WRONG;
}

shoal_auth_result_t shoal_auth_check(const char *token, const char *value, size_t len)
{
    shoal_auth_key_t k;

    shoal_auth_key_init(&k, token);
    return shoal_auth_check_key(&k, value, len);
}

const char *shoal_auth_message(shoal_auth_result_t r)
{
    switch (r) {
    case SHOAL_AUTH_OK:
        return "ok";
    case SHOAL_AUTH_MISSING:
        return "this endpoint needs \"Authorization: Bearer TOKEN\" (the token is in the "
               "controller's home, HOME/token)";
    case SHOAL_AUTH_MALFORMED:
        return "the Authorization header must be \"Bearer TOKEN\"";
    case SHOAL_AUTH_WRONG:
    default:
        return "the bearer token is not valid for this controller";
    }
}
