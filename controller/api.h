/*
 * api - the HTTP API's vocabulary, kept apart from h2o so it can be tested on its own: the error
 * codes and their statuses, the JSON shapes of errors and function objects, RFC 3339 times, the
 * query-string rules of deploy and invoke, and invocation ids.
 *
 * Error answers are always {"error":{"code":"...","message":"..."}}. Query strings are parsed
 * strictly: a deploy with an unknown parameter is refused (a typo must not silently deploy with
 * defaults), while invoke ignores parameters it does not know (a function may read its own from
 * the "query" meta). Values are compared as sent, without percent-decoding: every value we accept
 * is made of characters that need no escaping.
 */
#ifndef SHOAL_CONTROLLER_API_H
#define SHOAL_CONTROLLER_API_H

#include <stddef.h>
#include <stdint.h>

#include "controller/json.h"
#include "controller/registry.h"

typedef enum {
    SHOAL_API_OK = 0,
    SHOAL_API_BAD_NAME,           /* 400 */
    SHOAL_API_BAD_QUERY,          /* 400 */
    SHOAL_API_EMPTY_ARTIFACT,     /* 400 */
    SHOAL_API_BAD_ARTIFACT,       /* 400 */
    SHOAL_API_WRONG_ARCHITECTURE, /* 400 */
    SHOAL_API_COMPILE_ERROR,      /* 400 */
    SHOAL_API_NOT_FOUND,          /* 404 */
    SHOAL_API_METHOD_NOT_ALLOWED, /* 405 */
    SHOAL_API_TOO_LARGE,          /* 413 */
    SHOAL_API_OVERLOADED,         /* 429, with Retry-After: 1 */
    SHOAL_API_INTERNAL,           /* 500 */
    SHOAL_API_NOT_IMPLEMENTED,    /* 501 */
    SHOAL_API_FUNCTION_ERROR,     /* 502 */
    SHOAL_API_FUNCTION_CRASHED,   /* 502 */
    SHOAL_API_WORKER_LOST,        /* 502 */
    SHOAL_API_NO_WORKERS,         /* 503 */
    SHOAL_API_SHUTTING_DOWN,      /* 503 */
    SHOAL_API_TIMEOUT,            /* 504 */
    SHOAL_API_GROUP_TOO_LARGE,    /* 400; appended so that the values above keep their numbers */
    SHOAL_API_UNAUTHORIZED,       /* 401, with WWW-Authenticate: Bearer (auth.h) */
    SHOAL_API_FORBIDDEN,          /* 403: a wrong token */
    SHOAL_API_ERR_COUNT
} shoal_api_err_t;

/* The code string ("bad_name", ...; "ok" for SHOAL_API_OK) and the HTTP status of an error. */
const char *shoal_api_err_code(shoal_api_err_t e);
int shoal_api_err_status(shoal_api_err_t e);

/* Appends {"error":{"code":...,"message":...}}. */
void shoal_api_error_json(shoal_json_t *j, shoal_api_err_t e, const char *msg, size_t len);
/* Appends a function object. with_times adds "created" and "updated" (HTTP answers do, frames do
 * not). Key order is fixed: name, version, sha256, size, timeout_ms, memory_mb, min_warm,
 * max_instances, public[, created, updated]. */
void shoal_api_fn_json(shoal_json_t *j, const shoal_fn_t *fn, int with_times);
/* Formats wall-clock milliseconds as RFC 3339 UTC with milliseconds: 2024-05-01T12:00:00.123Z. */
void shoal_api_rfc3339(uint64_t wall_ms, char out[32]);

/* One key=value pair of a query string, pointing into it (not decoded, not NUL-terminated). */
typedef struct {
    const char *key;
    size_t key_len;
    const char *val; /* NULL when the pair had no '=' */
    size_t val_len;
} shoal_api_param_t;
/* Iterates the pairs of q[0..len): *pos starts at 0; returns 1 and fills p, or 0 at the end.
 * Empty pairs ("a=1&&b=2") are skipped. */
int shoal_api_query_next(const char *q, size_t len, size_t *pos, shoal_api_param_t *p);

/* Parses a deploy query (timeout_ms, memory_mb, min_warm, max_instances, retries, public) into
 * limits.
 * -EINVAL with a message naming the parameter and its range in err for a malformed, out-of-range,
 * repeated or unknown parameter, or min_warm > max_instances when both are given. */
int shoal_api_parse_deploy_query(const char *q, size_t len, shoal_fn_limits_t *limits, char *err,
                                 size_t errlen);

/* Parameters of an invoke. */
typedef struct {
    uint32_t group;    /* 1 unless ?group=N (1..1024): the number of ranks */
    int async;         /* ?async=1|true */
    int spread;        /* ?spread=1|true: ranks round-robin over the nodes (cross-node) */
    char transport[8]; /* "" or auto|shm|tcp|redis, as given */
} shoal_api_invoke_params_t;
/* Parses an invoke query. -EINVAL (message in err) for a malformed or repeated known parameter,
 * and for a group of more than one rank with spread=true and transport=shm or redis (spread
 * groups move data over TCP). transport=tcp means spread=true. transport=redis is accepted (the
 * caller checks that the controller was started with --redis). A group of one rank is a plain
 * invocation: spread and transport=tcp mean nothing to it and are accepted. */
int shoal_api_parse_invoke_query(const char *q, size_t len, shoal_api_invoke_params_t *p, char *err,
                                 size_t errlen);

/* Parameters of GET /v1/functions/{name}/logs. */
typedef struct {
    uint32_t tail;          /* ?tail=N (1..10000), default 100: the last N matching lines */
    uint64_t since;         /* ?since=SEQ: only lines after that sequence number; default 0 */
    char invocation_id[33]; /* ?invocation=ID (32 hex digits): only its lines; "" for all */
} shoal_api_logs_params_t;
/* Parses a logs query; -EINVAL with a message naming the parameter in err for a malformed,
 * out-of-range, repeated or unknown one. */
int shoal_api_parse_logs_query(const char *q, size_t len, shoal_api_logs_params_t *p, char *err,
                               size_t errlen);

/* Invocation ids: 128 random bits as 32 lower-case hex digits. The generator reads getrandom(2)
 * in blocks so that an id costs no system call; use one per thread. */
typedef struct {
    uint8_t pool[512];
    size_t used; /* bytes of pool consumed; starts at sizeof(pool) (empty) */
} shoal_api_idgen_t;
void shoal_api_idgen_init(shoal_api_idgen_t *g);
/* Writes a fresh id and its NUL into out; 0 or -errno if the kernel gave no randomness. */
int shoal_api_new_id(shoal_api_idgen_t *g, char out[33]);

#endif
