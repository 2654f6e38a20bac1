/*
 * invmeta - see invmeta.h. Byte-wise little-endian access throughout, so nothing here depends on
 * the host's alignment or byte order; every length is checked against what is left before use.
 */
#include "invmeta.h"

#include <errno.h>
#include <string.h>

#include "transport/frame.h"

static void put_u16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, v);
    put_u16(p + 2, v >> 16);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u16(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t get_u32(const uint8_t *p)
{
    return get_u16(p) | get_u16(p + 2) << 16;
}

static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Function names as the controller accepts them: [a-z0-9][a-z0-9_-]*. */
static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > SHOAL_INVMETA_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              (i > 0 && (c == '_' || c == '-'))))
            return 0;
    }
    return 1;
}

static int id_ok(const char *s, size_t len)
{
    if (len == 0 || len > SHOAL_INVMETA_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return 0;
    return 1;
}

int shoal_invmeta_invoke_head(uint8_t out[SHOAL_INVMETA_INVOKE_HEAD_MAX],
                              const shoal_invmeta_invoke_t *m)
{
    if (!name_ok(m->function, m->function_len) || !id_ok(m->id, m->id_len) ||
        m->depth > UINT16_MAX || m->timeout_ms == 0 || m->kv_len > SHOAL_FRAME_META_MAX ||
        m->ext_len > SHOAL_FRAME_META_MAX)
        return -EINVAL;
    out[0] = (uint8_t)m->function_len;
    out[1] = (uint8_t)m->id_len;
    put_u16(out + 2, m->depth);
    put_u32(out + 4, m->version);
    put_u32(out + 8, m->timeout_ms);
    put_u32(out + 12, (uint32_t)m->kv_len);
    put_u32(out + 16, (uint32_t)m->ext_len);
    put_u32(out + 20, 0);
    memcpy(out + SHOAL_INVMETA_INVOKE_FIXED, m->function, m->function_len);
    memcpy(out + SHOAL_INVMETA_INVOKE_FIXED + m->function_len, m->id, m->id_len);
    return (int)(SHOAL_INVMETA_INVOKE_FIXED + m->function_len + m->id_len);
}

int shoal_invmeta_invoke_decode(const uint8_t *p, size_t len, shoal_invmeta_invoke_t *m)
{
    size_t off = SHOAL_INVMETA_INVOKE_FIXED;
    uint64_t need;

    if (len < SHOAL_INVMETA_INVOKE_FIXED)
        return -EPROTO;
    memset(m, 0, sizeof(*m));
    m->function_len = p[0];
    m->id_len = p[1];
    m->depth = get_u16(p + 2);
    m->version = get_u32(p + 4);
    m->timeout_ms = get_u32(p + 8);
    m->kv_len = get_u32(p + 12);
    m->ext_len = get_u32(p + 16);
    /* 64-bit sum: four u32-sized parts cannot wrap it. */
    need =
        (uint64_t)SHOAL_INVMETA_INVOKE_FIXED + m->function_len + m->id_len + m->kv_len + m->ext_len;
    if (get_u32(p + 20) != 0 || need != len || m->timeout_ms == 0)
        return -EPROTO;
    m->function = (const char *)p + off;
    off += m->function_len;
    m->id = (const char *)p + off;
    off += m->id_len;
    m->kv = p + off;
    off += m->kv_len;
    m->ext = m->ext_len > 0 ? (const char *)p + off : NULL;
    if (!name_ok(m->function, m->function_len) || !id_ok(m->id, m->id_len) ||
        shoal_invmeta_kv_validate(m->kv, m->kv_len) < 0)
        return -EPROTO;
    if (m->ext_len > 0 && (m->ext_len < 2 || m->ext[0] != '{'))
        return -EPROTO;
    return 0;
}

int shoal_invmeta_result_head(uint8_t out[SHOAL_INVMETA_RESULT_FIXED],
                              const shoal_invmeta_result_t *m)
{
    if ((m->ok != 0 && m->ok != 1) || m->kind > SHOAL_KIND_MAX || (m->ok && m->kind != 0) ||
        (!m->ok && m->kind == 0) || m->status > UINT16_MAX ||
        m->error_len > SHOAL_INVMETA_ERR_MAX || m->headers_len > SHOAL_FRAME_META_MAX)
        return -EINVAL;
    out[0] = (uint8_t)m->ok;
    out[1] = (uint8_t)m->kind;
    put_u16(out + 2, m->status);
    put_u32(out + 4, (uint32_t)m->error_len);
    put_u32(out + 8, (uint32_t)m->headers_len);
    put_u32(out + 12, 0);
    put_u64(out + 16, m->duration_us);
    return 0;
}

int shoal_invmeta_result_decode(const uint8_t *p, size_t len, shoal_invmeta_result_t *m)
{
    if (len < SHOAL_INVMETA_RESULT_FIXED)
        return -EPROTO;
    memset(m, 0, sizeof(*m));
    m->ok = p[0];
    m->kind = (shoal_invmeta_kind)p[1];
    m->status = get_u16(p + 2);
    m->error_len = get_u32(p + 4);
    m->headers_len = get_u32(p + 8);
    m->duration_us = get_u64(p + 16);
    if ((p[0] != 0 && p[0] != 1) || p[1] > SHOAL_KIND_MAX || (m->ok && p[1] != 0) ||
        (!m->ok && p[1] == 0) || get_u32(p + 12) != 0 || m->error_len > SHOAL_INVMETA_ERR_MAX)
        return -EPROTO;
    if ((uint64_t)SHOAL_INVMETA_RESULT_FIXED + m->error_len + m->headers_len != len)
        return -EPROTO;
    m->error = (const char *)p + SHOAL_INVMETA_RESULT_FIXED;
    m->headers = p + SHOAL_INVMETA_RESULT_FIXED + m->error_len;
    /* The message ends up in C strings and JSON answers: no NUL may cut it short. */
    if (memchr(m->error, '\0', m->error_len) != NULL ||
        shoal_invmeta_kv_validate(m->headers, m->headers_len) < 0)
        return -EPROTO;
    return 0;
}

int shoal_invmeta_kv_hdr(uint8_t out[SHOAL_INVMETA_KV_HDR], size_t key_len, size_t val_len)
{
    if (key_len == 0 || key_len > SHOAL_INVMETA_KEY_MAX || val_len > UINT32_MAX)
        return -EINVAL;
    put_u16(out, (uint32_t)key_len);
    put_u32(out + 2, (uint32_t)val_len);
    return 0;
}

int shoal_invmeta_kv_put(uint8_t *buf, size_t cap, size_t *len, const char *key, size_t key_len,
                         const char *val, size_t val_len)
{
    int err;

    if (memchr(key, '\0', key_len) != NULL || memchr(val, '\0', val_len) != NULL)
        return -EINVAL;
    if (*len > cap || cap - *len < SHOAL_INVMETA_KV_HDR ||
        key_len + val_len > cap - *len - SHOAL_INVMETA_KV_HDR)
        return -ENOSPC;
    if ((err = shoal_invmeta_kv_hdr(buf + *len, key_len, val_len)) < 0)
        return err;
    memcpy(buf + *len + SHOAL_INVMETA_KV_HDR, key, key_len);
    memcpy(buf + *len + SHOAL_INVMETA_KV_HDR + key_len, val, val_len);
    *len += SHOAL_INVMETA_KV_HDR + key_len + val_len;
    return 0;
}

int shoal_invmeta_kv_next(const uint8_t *p, size_t len, size_t *off, shoal_invmeta_kv_t *kv)
{
    size_t left, klen, vlen;

    if (*off >= len)
        return 0;
    left = len - *off;
    if (left < SHOAL_INVMETA_KV_HDR)
        return -EPROTO;
    klen = get_u16(p + *off);
    vlen = get_u32(p + *off + 2);
    left -= SHOAL_INVMETA_KV_HDR;
    if (klen == 0 || klen > SHOAL_INVMETA_KEY_MAX || klen > left || vlen > left - klen)
        return -EPROTO;
    kv->key = (const char *)p + *off + SHOAL_INVMETA_KV_HDR;
    kv->key_len = klen;
    kv->val = kv->key + klen;
    kv->val_len = vlen;
    if (memchr(kv->key, '\0', klen) != NULL || memchr(kv->val, '\0', vlen) != NULL)
        return -EPROTO;
    *off += SHOAL_INVMETA_KV_HDR + klen + vlen;
    return 1;
}

int shoal_invmeta_kv_validate(const uint8_t *p, size_t len)
{
    shoal_invmeta_kv_t kv;
    size_t off = 0;
    int r;

    while ((r = shoal_invmeta_kv_next(p, len, &off, &kv)) == 1)
        ;
    return r;
}

static const char *const KINDS[] = {"",         "function", "crash",     "timeout",
                                    "overload", "internal", "not_found", "too_large"};

const char *shoal_invmeta_kind_name(shoal_invmeta_kind k)
{
    return (unsigned)k <= SHOAL_KIND_MAX ? KINDS[k] : "";
}

shoal_invmeta_kind shoal_invmeta_kind_parse(const char *name)
{
    if (name != NULL)
        for (unsigned i = 1; i <= SHOAL_KIND_MAX; i++)
            if (strcmp(name, KINDS[i]) == 0)
                return (shoal_invmeta_kind)i;
    return SHOAL_KIND_INTERNAL;
}
