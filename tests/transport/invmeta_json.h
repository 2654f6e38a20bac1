/*
 * invmeta_json - test helpers that translate the binary INVOKE and RESULT metas
 * (transport/invmeta.h) to and from the JSON shapes of frame protocol version 1, so that the
 * fake controllers and workers of tests/controller and tests/worker can keep stating what they
 * send and expect in readable JSON. They go through the real encoder and decoder, so a test
 * still fails when either is wrong. Test code only; header-only (static functions).
 */
#ifndef SHOAL_TESTS_INVMETA_JSON_H
#define SHOAL_TESTS_INVMETA_JSON_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "transport/frame.h"
#include "transport/invmeta.h"

/* Appends one list entry to a growing buffer; 0 or -1. */
static inline int ij_put(uint8_t **buf, size_t *len, size_t *cap, const char *k, size_t kl,
                         const char *v, size_t vl)
{
    while (*cap - *len < SHOAL_INVMETA_KV_HDR + kl + vl) {
        size_t nc = *cap ? *cap * 2 : 256;
        uint8_t *nb = realloc(*buf, nc);
        if (nb == NULL)
            return -1;
        *buf = nb;
        *cap = nc;
    }
    return shoal_invmeta_kv_put(*buf, *cap, len, k, kl, v, vl) == 0 ? 0 : -1;
}

static inline json_t *ij_kv_object(const uint8_t *p, size_t len)
{
    json_t *o = json_object();
    shoal_invmeta_kv_t kv;
    size_t off = 0;

    while (shoal_invmeta_kv_next(p, len, &off, &kv) == 1) {
        char *k = strndup(kv.key, kv.key_len);
        json_object_set_new(o, k, json_stringn(kv.val, kv.val_len));
        free(k);
    }
    return o;
}

/* {"fn":{"name","version"},"invocation_id","timeout_ms","depth","meta":{...}} plus the
 * extension's keys ("group", "fn" when present). NULL when the meta does not decode. */
static inline json_t *ij_invoke_to_json(const void *meta, size_t len)
{
    shoal_invmeta_invoke_t m;
    json_t *j, *fn;

    if (shoal_invmeta_invoke_decode(meta, len, &m) < 0)
        return NULL;
    j = m.ext_len > 0 ? json_loadb(m.ext, m.ext_len, 0, NULL) : json_object();
    if (j == NULL)
        return NULL;
    fn = json_pack("{s:s%,s:I}", "name", m.function, m.function_len, "version",
                   (json_int_t)m.version);
    if (json_object_get(j, "fn") == NULL)
        json_object_set_new(j, "fn", fn);
    else
        json_decref(fn);
    json_object_set_new(j, "invocation_id", json_stringn(m.id, m.id_len));
    json_object_set_new(j, "timeout_ms", json_integer(m.timeout_ms));
    json_object_set_new(j, "depth", json_integer(m.depth));
    json_object_set_new(j, "meta", ij_kv_object(m.kv, m.kv_len));
    return j;
}

/* The binary INVOKE meta for a v1-shaped JSON one: "fn" (an object with at least "name" and
 * "version"; it also travels whole in the extension so the worker can install it),
 * "invocation_id", "timeout_ms", "depth", "meta" (strings), "group". malloc'd; NULL on failure. */
static inline uint8_t *ij_invoke_from_json(const json_t *j, size_t *out_len)
{
    const json_t *fn = json_object_get(j, "fn"), *meta = json_object_get(j, "meta"), *v;
    const char *id = json_string_value(json_object_get(j, "invocation_id")), *k;
    uint8_t head[SHOAL_INVMETA_INVOKE_HEAD_MAX], *kv = NULL, *out = NULL;
    size_t kv_len = 0, kv_cap = 0;
    json_t *ext = json_object();
    char *ext_s = NULL;
    shoal_invmeta_invoke_t m;
    int n;

    memset(&m, 0, sizeof(m));
    m.function = json_string_value(json_object_get(fn, "name"));
    m.function_len = m.function ? strlen(m.function) : 0;
    m.version = (uint32_t)json_integer_value(json_object_get(fn, "version"));
    m.id = id ? id : "";
    m.id_len = strlen(m.id);
    m.timeout_ms = (uint32_t)json_integer_value(json_object_get(j, "timeout_ms"));
    m.depth = (uint32_t)json_integer_value(json_object_get(j, "depth"));
    json_object_foreach((json_t *)meta, k, v)
    {
        if (json_is_string(v) && ij_put(&kv, &kv_len, &kv_cap, k, strlen(k), json_string_value(v),
                                        json_string_length(v)) < 0)
            goto out;
    }
    if (fn != NULL)
        json_object_set(ext, "fn", (json_t *)fn);
    if ((v = json_object_get(j, "group")) != NULL)
        json_object_set(ext, "group", (json_t *)v);
    ext_s = json_dumps(ext, JSON_COMPACT);
    m.kv_len = kv_len;
    m.ext_len = ext_s ? strlen(ext_s) : 0;
    if (ext_s == NULL || (n = shoal_invmeta_invoke_head(head, &m)) < 0)
        goto out;
    if ((out = malloc((size_t)n + kv_len + m.ext_len)) == NULL)
        goto out;
    memcpy(out, head, (size_t)n);
    if (kv_len)
        memcpy(out + n, kv, kv_len);
    memcpy(out + n + kv_len, ext_s, m.ext_len);
    *out_len = (size_t)n + kv_len + m.ext_len;
out:
    free(kv);
    free(ext_s);
    json_decref(ext);
    return out;
}

/* {"ok","kind","status","error","headers":{...},"duration_us"}, or NULL. */
static inline json_t *ij_result_to_json(const void *meta, size_t len)
{
    shoal_invmeta_result_t m;
    json_t *j;

    if (shoal_invmeta_result_decode(meta, len, &m) < 0)
        return NULL;
    j = json_pack("{s:b,s:I}", "ok", m.ok, "duration_us", (json_int_t)m.duration_us);
    if (m.status)
        json_object_set_new(j, "status", json_integer(m.status));
    if (!m.ok) {
        json_object_set_new(j, "kind", json_string(shoal_invmeta_kind_name(m.kind)));
        json_object_set_new(j, "error", json_stringn(m.error, m.error_len));
    }
    if (m.headers_len > 0)
        json_object_set_new(j, "headers", ij_kv_object(m.headers, m.headers_len));
    return j;
}

/* The binary RESULT meta for a v1-shaped JSON text; malloc'd, NULL when it is not such JSON. */
static inline uint8_t *ij_result_from_json(const char *text, size_t *out_len)
{
    json_t *j = json_loads(text, 0, NULL), *v;
    const json_t *hd;
    shoal_invmeta_result_t m;
    uint8_t *kv = NULL, *out = NULL;
    size_t kv_len = 0, kv_cap = 0;
    const char *k, *err;

    if (!json_is_object(j))
        goto out;
    memset(&m, 0, sizeof(m));
    m.ok = json_is_true(json_object_get(j, "ok"));
    m.kind = m.ok ? SHOAL_KIND_NONE
                  : shoal_invmeta_kind_parse(json_string_value(json_object_get(j, "kind")));
    m.status = (uint32_t)json_integer_value(json_object_get(j, "status"));
    m.duration_us = (uint64_t)json_integer_value(json_object_get(j, "duration_us"));
    err = json_string_value(json_object_get(j, "error"));
    m.error = err ? err : "";
    m.error_len = strlen(m.error);
    hd = json_object_get(j, "headers");
    json_object_foreach((json_t *)hd, k, v)
    {
        if (json_is_string(v) && ij_put(&kv, &kv_len, &kv_cap, k, strlen(k), json_string_value(v),
                                        json_string_length(v)) < 0)
            goto out;
    }
    m.headers_len = kv_len;
    if ((out = malloc(SHOAL_INVMETA_RESULT_FIXED + m.error_len + kv_len)) == NULL)
        goto out;
    if (shoal_invmeta_result_head(out, &m) < 0) {
        free(out);
        out = NULL;
        goto out;
    }
    memcpy(out + SHOAL_INVMETA_RESULT_FIXED, m.error, m.error_len);
    if (kv_len)
        memcpy(out + SHOAL_INVMETA_RESULT_FIXED + m.error_len, kv, kv_len);
    *out_len = SHOAL_INVMETA_RESULT_FIXED + m.error_len + kv_len;
out:
    free(kv);
    json_decref(j);
    return out;
}

/* Writes one frame to fd as a fake peer does: a RESULT meta given as v1 JSON goes out binary, any
 * other meta (or one that is not even JSON: malformed-meta tests send it as it is) unchanged.
 * 0 or -1. */
static inline int ij_send_frame(int fd, uint8_t type, uint32_t id, const char *meta,
                                const void *data, size_t len)
{
    uint8_t pre[SHOAL_FRAME_PREFIX_SIZE], *bin = NULL;
    size_t mlen = strlen(meta);
    int rc = -1;

    if (type == SHOAL_FRAME_RESULT && (bin = ij_result_from_json(meta, &mlen)) != NULL)
        meta = (const char *)bin;
    else
        mlen = strlen(meta);
    if (shoal_frame_encode(pre, type, id, mlen, len) == 0 &&
        shoal_util_write_all(fd, pre, sizeof(pre)) == 0 &&
        shoal_util_write_all(fd, meta, mlen) == 0 &&
        (len == 0 || shoal_util_write_all(fd, data, len) == 0))
        rc = 0;
    free(bin);
    return rc;
}

#endif
