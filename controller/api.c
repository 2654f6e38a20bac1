/*
 * api - see api.h. Everything here is pure: no I/O except getrandom for ids.
 */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const struct {
    const char *code;
    int status;
} ERRORS[SHOAL_API_ERR_COUNT] = {
    [SHOAL_API_OK] = {"ok", 200},
    [SHOAL_API_BAD_NAME] = {"bad_name", 400},
    [SHOAL_API_BAD_QUERY] = {"bad_query", 400},
    [SHOAL_API_EMPTY_ARTIFACT] = {"empty_artifact", 400},
    [SHOAL_API_BAD_ARTIFACT] = {"bad_artifact", 400},
    [SHOAL_API_WRONG_ARCHITECTURE] = {"wrong_architecture", 400},
    [SHOAL_API_COMPILE_ERROR] = {"compile_error", 400},
    [SHOAL_API_NOT_FOUND] = {"not_found", 404},
    [SHOAL_API_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405},
    [SHOAL_API_TOO_LARGE] = {"too_large", 413},
    [SHOAL_API_OVERLOADED] = {"overloaded", 429},
    [SHOAL_API_INTERNAL] = {"internal", 500},
    [SHOAL_API_NOT_IMPLEMENTED] = {"not_implemented", 501},
    [SHOAL_API_FUNCTION_ERROR] = {"function_error", 502},
    [SHOAL_API_FUNCTION_CRASHED] = {"function_crashed", 502},
    [SHOAL_API_WORKER_LOST] = {"worker_lost", 502},
    [SHOAL_API_NO_WORKERS] = {"no_workers", 503},
    [SHOAL_API_SHUTTING_DOWN] = {"shutting_down", 503},
    [SHOAL_API_TIMEOUT] = {"timeout", 504},
    [SHOAL_API_GROUP_TOO_LARGE] = {"group_too_large", 400},
    [SHOAL_API_UNAUTHORIZED] = {"unauthorized", 401},
    [SHOAL_API_FORBIDDEN] = {"forbidden", 403},
};

const char *shoal_api_err_code(shoal_api_err_t e)
{
    return (unsigned)e < SHOAL_API_ERR_COUNT ? ERRORS[e].code : "internal";
}

int shoal_api_err_status(shoal_api_err_t e)
{
    return (unsigned)e < SHOAL_API_ERR_COUNT ? ERRORS[e].status : 500;
}

void shoal_api_error_json(shoal_json_t *j, shoal_api_err_t e, const char *msg, size_t len)
{
    shoal_json_lit(j, "{\"error\":{\"code\":");
    shoal_json_cstr(j, shoal_api_err_code(e));
    shoal_json_lit(j, ",\"message\":");
    shoal_json_str(j, msg, len);
    shoal_json_lit(j, "}}");
}

void shoal_api_rfc3339(uint64_t wall_ms, char out[32])
{
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 0)
        memset(&tm, 0, sizeof(tm)), tm.tm_year = 70, tm.tm_mday = 1;
    /* Every field is now bounded, but the compiler cannot see that through struct tm. */
    char buf[96];
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned)(wall_ms % 1000));
    memcpy(out, buf, 31);
    out[31] = '\0';
}

void shoal_api_fn_json(shoal_json_t *j, const shoal_fn_t *fn, int with_times)
{
    shoal_json_lit(j, "{\"name\":");
    shoal_json_cstr(j, fn->name);
    shoal_json_lit(j, ",\"version\":");
    shoal_json_u64(j, fn->version);
    shoal_json_lit(j, ",\"sha256\":");
    shoal_json_cstr(j, fn->sha256);
    shoal_json_lit(j, ",\"size\":");
    shoal_json_u64(j, fn->size);
    shoal_json_lit(j, ",\"timeout_ms\":");
    shoal_json_u64(j, fn->timeout_ms);
    shoal_json_lit(j, ",\"memory_mb\":");
    shoal_json_u64(j, fn->memory_mb);
    shoal_json_lit(j, ",\"min_warm\":");
    shoal_json_u64(j, fn->min_warm);
    shoal_json_lit(j, ",\"max_instances\":");
    shoal_json_u64(j, fn->max_instances);
    if (fn->is_public)
        shoal_json_lit(j, ",\"public\":true");
    else
        shoal_json_lit(j, ",\"public\":false");
    if (with_times) {
        char t[32];
        shoal_api_rfc3339(fn->created_ms, t);
        shoal_json_lit(j, ",\"created\":");
        shoal_json_cstr(j, t);
        shoal_api_rfc3339(fn->updated_ms, t);
        shoal_json_lit(j, ",\"updated\":");
        shoal_json_cstr(j, t);
    }
    shoal_json_lit(j, "}");
}

int shoal_api_query_next(const char *q, size_t len, size_t *pos, shoal_api_param_t *p)
{
    while (*pos < len) {
        size_t start = *pos, end = start, eq;
        while (end < len && q[end] != '&')
            end++;
        *pos = end < len ? end + 1 : end;
        if (end == start)
            continue;
        for (eq = start; eq < end && q[eq] != '='; eq++)
            ;
        p->key = q + start;
        p->key_len = eq - start;
        if (eq < end) {
            p->val = q + eq + 1;
            p->val_len = end - eq - 1;
        } else {
            p->val = NULL;
            p->val_len = 0;
        }
        return 1;
    }
    return 0;
}

static int key_is(const shoal_api_param_t *p, const char *k)
{
    size_t n = strlen(k);
    return p->key_len == n && memcmp(p->key, k, n) == 0;
}

static int val_is(const shoal_api_param_t *p, const char *v)
{
    size_t n = strlen(v);
    return p->val != NULL && p->val_len == n && memcmp(p->val, v, n) == 0;
}

/* Prints at most 40 bytes of untrusted text, so that a message stays one short line. */
#define SHOWN(p, l) (int)((l) > 40 ? 40 : (l)), (p)

static int parse_bool(const shoal_api_param_t *p, const char *name, int *out, char *err,
                      size_t errlen);

static int parse_range(const shoal_api_param_t *p, const char *name, uint64_t min, uint64_t max,
                       uint32_t *out, char *err, size_t errlen)
{
    uint64_t v;

    if (p->val == NULL || shoal_util_parse_u64(p->val, p->val_len, min, max, &v) < 0) {
        snprintf(err, errlen, "%s must be an integer in %llu..%llu", name, (unsigned long long)min,
                 (unsigned long long)max);
        return -EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

int shoal_api_parse_deploy_query(const char *q, size_t len, shoal_fn_limits_t *limits, char *err,
                                 size_t errlen)
{
    static const struct {
        const char *name;
        unsigned bit;
        uint32_t min, max;
        size_t field;
    } PARAMS[] = {
        {"timeout_ms", SHOAL_LIMIT_TIMEOUT, SHOAL_FN_TIMEOUT_MIN, SHOAL_FN_TIMEOUT_MAX,
         offsetof(shoal_fn_limits_t, timeout_ms)},
        {"memory_mb", SHOAL_LIMIT_MEMORY, SHOAL_FN_MEMORY_MIN, SHOAL_FN_MEMORY_MAX,
         offsetof(shoal_fn_limits_t, memory_mb)},
        {"min_warm", SHOAL_LIMIT_MIN_WARM, 0, SHOAL_FN_MIN_WARM_MAX,
         offsetof(shoal_fn_limits_t, min_warm)},
        {"max_instances", SHOAL_LIMIT_MAX_INSTANCES, SHOAL_FN_MAX_INSTANCES_MIN,
         SHOAL_FN_MAX_INSTANCES_MAX, offsetof(shoal_fn_limits_t, max_instances)},
        {"retries", SHOAL_LIMIT_RETRIES, 0, 10, offsetof(shoal_fn_limits_t, retries)},
    };
    shoal_api_param_t p;
    size_t pos = 0;

    memset(limits, 0, sizeof(*limits));
    while (shoal_api_query_next(q, len, &pos, &p)) {
        size_t i;
        if (key_is(&p, "public")) {
            int v;
            if (limits->set & SHOAL_LIMIT_PUBLIC) {
                snprintf(err, errlen, "parameter public given more than once");
                return -EINVAL;
            }
            if (parse_bool(&p, "public", &v, err, errlen) < 0)
                return -EINVAL;
            limits->is_public = (uint32_t)v;
            limits->set |= SHOAL_LIMIT_PUBLIC;
            continue;
        }
        for (i = 0; i < sizeof(PARAMS) / sizeof(PARAMS[0]); i++)
            if (key_is(&p, PARAMS[i].name))
                break;
        if (i == sizeof(PARAMS) / sizeof(PARAMS[0])) {
            snprintf(err, errlen,
                     "unknown parameter '%.*s' (known: timeout_ms, memory_mb, min_warm, "
                     "max_instances, retries, public)",
                     SHOWN(p.key, p.key_len));
            return -EINVAL;
        }
        if (limits->set & PARAMS[i].bit) {
            snprintf(err, errlen, "parameter %s given more than once", PARAMS[i].name);
            return -EINVAL;
        }
        if (parse_range(&p, PARAMS[i].name, PARAMS[i].min, PARAMS[i].max,
                        (uint32_t *)((char *)limits + PARAMS[i].field), err, errlen) < 0)
            return -EINVAL;
        limits->set |= PARAMS[i].bit;
    }
    if ((limits->set & SHOAL_LIMIT_MIN_WARM) && (limits->set & SHOAL_LIMIT_MAX_INSTANCES) &&
        limits->min_warm > limits->max_instances) {
        snprintf(err, errlen, "min_warm (%u) must not exceed max_instances (%u)", limits->min_warm,
                 limits->max_instances);
        return -EINVAL;
    }
    return 0;
}

/* A boolean parameter: bare, 1 or true is 1; 0 or false is 0. */
static int parse_bool(const shoal_api_param_t *p, const char *name, int *out, char *err,
                      size_t errlen)
{
    if (p->val == NULL || val_is(p, "1") || val_is(p, "true")) {
        *out = 1;
        return 0;
    }
    if (val_is(p, "0") || val_is(p, "false")) {
        *out = 0;
        return 0;
    }
    snprintf(err, errlen, "%s must be true or false (or 1 or 0)", name);
    return -EINVAL;
}

int shoal_api_parse_invoke_query(const char *q, size_t len, shoal_api_invoke_params_t *out,
                                 char *err, size_t errlen)
{
    static const char *TRANSPORTS[] = {"auto", "shm", "tcp", "redis"};
    shoal_api_param_t p;
    size_t pos = 0;
    unsigned seen = 0;

    memset(out, 0, sizeof(*out));
    out->group = 1;
    while (shoal_api_query_next(q, len, &pos, &p)) {
        unsigned bit;
        if (key_is(&p, "group"))
            bit = 1;
        else if (key_is(&p, "async"))
            bit = 2;
        else if (key_is(&p, "spread"))
            bit = 4;
        else if (key_is(&p, "transport"))
            bit = 8;
        else
            continue; /* the function's own parameter */
        if (seen & bit) {
            snprintf(err, errlen, "parameter %.*s given more than once", SHOWN(p.key, p.key_len));
            return -EINVAL;
        }
        seen |= bit;
        if (bit == 1) {
            if (parse_range(&p, "group", 1, 1024, &out->group, err, errlen) < 0)
                return -EINVAL;
        } else if (bit == 2) {
            if (parse_bool(&p, "async", &out->async, err, errlen) < 0)
                return -EINVAL;
        } else if (bit == 4) {
            if (parse_bool(&p, "spread", &out->spread, err, errlen) < 0)
                return -EINVAL;
        } else {
            size_t i;
            for (i = 0; i < sizeof(TRANSPORTS) / sizeof(TRANSPORTS[0]); i++)
                if (val_is(&p, TRANSPORTS[i]))
                    break;
            if (i == sizeof(TRANSPORTS) / sizeof(TRANSPORTS[0])) {
                snprintf(err, errlen, "transport must be one of auto, shm, tcp, redis");
                return -EINVAL;
            }
            snprintf(out->transport, sizeof(out->transport), "%s", TRANSPORTS[i]);
        }
    }
    /* spread=true (or transport=tcp) places a group's ranks over the nodes, whose workers move
     * the data between them over TCP: it contradicts transport=shm (one node's shared memory)
     * and transport=redis (the baseline, which runs on one node). transport=redis is accepted
     * here; whether this controller has a Redis server is the caller's to check. */
    if (out->group > 1 && out->spread &&
        (strcmp(out->transport, "shm") == 0 || strcmp(out->transport, "redis") == 0)) {
        snprintf(err, errlen, "spread=true needs transport=tcp or auto, not %s", out->transport);
        return -EINVAL;
    }
    return 0;
}

int shoal_api_parse_logs_query(const char *q, size_t len, shoal_api_logs_params_t *out, char *err,
                               size_t errlen)
{
    shoal_api_param_t p;
    size_t pos = 0;
    unsigned seen = 0, bit;

    memset(out, 0, sizeof(*out));
    out->tail = 100;
    while (shoal_api_query_next(q, len, &pos, &p)) {
        if (key_is(&p, "tail"))
            bit = 1;
        else if (key_is(&p, "since"))
            bit = 2;
        else if (key_is(&p, "invocation"))
            bit = 4;
        else {
            snprintf(err, errlen, "unknown parameter %.*s (logs take tail, since, invocation)",
                     SHOWN(p.key, p.key_len));
            return -EINVAL;
        }
        if (seen & bit) {
            snprintf(err, errlen, "parameter %.*s given more than once", SHOWN(p.key, p.key_len));
            return -EINVAL;
        }
        seen |= bit;
        if (bit == 1) {
            if (parse_range(&p, "tail", 1, 10000, &out->tail, err, errlen) < 0)
                return -EINVAL;
        } else if (bit == 2) {
            if (p.val == NULL ||
                shoal_util_parse_u64(p.val, p.val_len, 0, UINT64_MAX, &out->since) < 0) {
                snprintf(err, errlen, "since must be a line's sequence number (an integer)");
                return -EINVAL;
            }
        } else {
            if (p.val == NULL || p.val_len != 32 || !shoal_util_lower_hex(p.val, p.val_len)) {
                snprintf(err, errlen, "invocation must be an invocation id (32 hex digits)");
                return -EINVAL;
            }
            memcpy(out->invocation_id, p.val, 32);
            out->invocation_id[32] = '\0';
        }
    }
    return 0;
}

void shoal_api_idgen_init(shoal_api_idgen_t *g)
{
    g->used = sizeof(g->pool);
}

int shoal_api_new_id(shoal_api_idgen_t *g, char out[33])
{
    static const char hex[] = "0123456789abcdef";

    if (g->used + 16 > sizeof(g->pool)) {
        size_t have = 0;
        while (have < sizeof(g->pool)) {
            ssize_t n = getrandom(g->pool + have, sizeof(g->pool) - have, 0);
            if (n < 0) {
                if (errno == EINTR)
                    continue;
                return -errno;
            }
            have += (size_t)n;
        }
        g->used = 0;
    }
    for (int i = 0; i < 16; i++) {
        uint8_t b = g->pool[g->used + i];
        out[2 * i] = hex[b >> 4];
        out[2 * i + 1] = hex[b & 15];
    }
    /* Each random byte is used once. */
    memset(g->pool + g->used, 0, 16);
    g->used += 16;
    out[32] = '\0';
    return 0;
}
