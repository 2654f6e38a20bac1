/*
 * reply - see reply.h.
 */
#include "reply.h"

const char *shoal_reply_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 300   ? "OK"
               : status < 400 ? "Redirect"
               : status < 500 ? "Client Error"
                              : "Server Error";
    }
}

void shoal_reply_send(h2o_req_t *req, int status, const char *ctype, size_t ctype_len,
                      const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = shoal_reply_reason(status);
    req->res.content_length = len;
    if (ctype != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype,
                       ctype_len);
    h2o_send_inline(req, body, len);
}

void shoal_reply_json(h2o_req_t *req, int status, const shoal_json_t *j)
{
    if (shoal_json_error(j) < 0) {
        static const char OOM[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        shoal_reply_send(req, 500, H2O_STRLIT("application/json"), OOM, sizeof(OOM) - 1);
        return;
    }
    shoal_reply_send(req, status, H2O_STRLIT("application/json"), j->buf, j->len);
}

int shoal_reply_value_allowed(const char *v, size_t len)
{
    if (len > SHOAL_REPLY_HEADER_VALUE_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            return 0;
    return 1;
}
