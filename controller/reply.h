/*
 * reply - the one way the controller's HTTP handlers (http.c, evhttp.c) send a whole answer:
 * status, its reason phrase, an optional Content-Type, and an inline body. Loop thread only, like
 * every h2o call.
 */
#ifndef SHOAL_CONTROLLER_REPLY_H
#define SHOAL_CONTROLLER_REPLY_H

#include <h2o.h>
#include <stddef.h>

#include "controller/json.h"

/* The HTTP/1 reason phrase for status (a static string). */
const char *shoal_reply_reason(int status);

/* Answers req with status and len bytes of body, which h2o copies before returning; ctype (of
 * ctype_len bytes) may be NULL when the caller has already set a Content-Type header. */
void shoal_reply_send(h2o_req_t *req, int status, const char *ctype, size_t ctype_len,
                      const char *body, size_t len);

/* Answers req with status and the JSON built in j, or with a fixed 500 when j ran out of memory
 * (its contents would be truncated JSON). */
void shoal_reply_json(h2o_req_t *req, int status, const shoal_json_t *j);

/* Longest response header value a function may set. */
#define SHOAL_REPLY_HEADER_VALUE_MAX 8192

/* Whether len bytes at v may be sent as a header value that came from a function: bounded, and
 * free of CR, LF and NUL, which would let it split the response. */
int shoal_reply_value_allowed(const char *v, size_t len);

#endif
