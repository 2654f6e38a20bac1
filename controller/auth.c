/*
 * auth - see auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

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

shoal_auth_result_t shoal_auth_check(const char *token, const char *value, size_t len)
{
    const char *tok;
    size_t tok_len;

    if (value == NULL)
        return SHOAL_AUTH_MISSING;
    if (shoal_auth_parse_bearer(value, len, &tok, &tok_len) < 0)
        return SHOAL_AUTH_MALFORMED;
    return shoal_secret_equal(tok, tok_len, token, strlen(token)) ? SHOAL_AUTH_OK
                                                                  : SHOAL_AUTH_WRONG;
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
