/*
 * invmeta - the binary meta of the hot frames (transport/frame.h, protocol version 2): INVOKE,
 * RESULT and CALL_RESULT. A warm invocation crosses the controller and the worker once each way;
 * encoding and decoding these metas as fixed-layout little-endian records instead of JSON costs
 * no parser, no allocation and no tree.
 *
 * INVOKE meta (SHOAL_INVMETA_INVOKE_FIXED bytes, then four variable parts in this order):
 *
 *   offset 0  u8  fn_len       function name length, 1..SHOAL_INVMETA_NAME_MAX
 *   offset 1  u8  id_len       invocation id length, 1..SHOAL_INVMETA_ID_MAX
 *   offset 2  u16 depth        shoal_call nesting
 *   offset 4  u32 version      the function version to run (the worker has it from WELCOME/FUNC)
 *   offset 8  u32 timeout_ms   time left, >= 1
 *   offset 12 u32 kv_len       bytes of the request meta list
 *   offset 16 u32 ext_len      bytes of the extension JSON object (0: none)
 *   offset 20 u32 reserved     must be 0
 *   then fn_len name bytes ([a-z0-9][a-z0-9_-]*), id_len id bytes (printable ASCII), kv_len bytes
 *   of request meta (a key/value list, below; keys "method", "path", "query", "header:<name>",
 *   "trigger", "topic" ...), and ext_len bytes of JSON for the cold cases: {"group":{...}} (see
 *   SHOAL_FRAME_INVOKE) and optionally "fn", a function object the worker installs when its table
 *   lacks name@version. The parts fill the meta exactly.
 *
 * RESULT / CALL_RESULT meta (SHOAL_INVMETA_RESULT_FIXED bytes, then the error, then the headers):
 *
 *   offset 0  u8  ok           1 when the function succeeded, else 0
 *   offset 1  u8  kind         shoal_invmeta_kind: 0 when ok, else why it failed
 *   offset 2  u16 status       the HTTP status the function set, 0 when it set none
 *   offset 4  u32 err_len      error message bytes (no NUL), at most SHOAL_INVMETA_ERR_MAX
 *   offset 8  u32 hdr_len      bytes of the response header list (keys are header names)
 *   offset 12 u32 reserved     must be 0
 *   offset 16 u64 duration_us
 *
 * A key/value list is a run of entries, each u16 key length (1..SHOAL_INVMETA_KEY_MAX), u32 value
 * length, the key bytes, the value bytes. Neither contains a NUL (the instance's channel keeps them
 * NUL-terminated). Every decoder here checks each length against what is left before it reads, so
 * neither side trusts the other's lengths; it returns pointers into the caller's buffer.
 */
#ifndef SHOAL_TRANSPORT_INVMETA_H
#define SHOAL_TRANSPORT_INVMETA_H

#include <stddef.h>
#include <stdint.h>

#define SHOAL_INVMETA_INVOKE_FIXED 24
#define SHOAL_INVMETA_RESULT_FIXED 24
#define SHOAL_INVMETA_NAME_MAX 63
#define SHOAL_INVMETA_ID_MAX 64
/* The INVOKE head: the fixed part, the name and the id; what shoal_invmeta_invoke_head writes. */
#define SHOAL_INVMETA_INVOKE_HEAD_MAX                                                              \
    (SHOAL_INVMETA_INVOKE_FIXED + SHOAL_INVMETA_NAME_MAX + SHOAL_INVMETA_ID_MAX)
#define SHOAL_INVMETA_KEY_MAX 512
#define SHOAL_INVMETA_ERR_MAX (64u << 10)
#define SHOAL_INVMETA_KV_HDR 6

typedef enum {
    SHOAL_KIND_NONE = 0,
    SHOAL_KIND_FUNCTION = 1,
    SHOAL_KIND_CRASH = 2,
    SHOAL_KIND_TIMEOUT = 3,
    SHOAL_KIND_OVERLOAD = 4,
    SHOAL_KIND_INTERNAL = 5,
    SHOAL_KIND_NOT_FOUND = 6,
    SHOAL_KIND_TOO_LARGE = 7,
    SHOAL_KIND_MAX = 7
} shoal_invmeta_kind;

typedef struct {
    const char *function;
    size_t function_len;
    const char *id;
    size_t id_len;
    uint32_t version;
    uint32_t timeout_ms;
    uint32_t depth;
    const uint8_t *kv; /* request meta list */
    size_t kv_len;
    const char *ext; /* JSON object or NULL */
    size_t ext_len;
} shoal_invmeta_invoke_t;

typedef struct {
    int ok;
    shoal_invmeta_kind kind;
    uint32_t status;
    uint64_t duration_us;
    const char *error;
    size_t error_len;
    const uint8_t *headers; /* key/value list of header names and values */
    size_t headers_len;
} shoal_invmeta_result_t;

typedef struct {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
} shoal_invmeta_kv_t;

/* Writes the INVOKE head (fixed part, name, id) of m into out and returns its length; the kv list
 * and ext follow it on the wire. -EINVAL when a field is out of range (names, id, lengths). */
int shoal_invmeta_invoke_head(uint8_t out[SHOAL_INVMETA_INVOKE_HEAD_MAX],
                              const shoal_invmeta_invoke_t *m);
/* Decodes and checks an INVOKE meta of len bytes (the kv list included). 0 or -EPROTO. */
int shoal_invmeta_invoke_decode(const uint8_t *p, size_t len, shoal_invmeta_invoke_t *m);

/* Writes the fixed RESULT part of m; the error and then the headers follow it on the wire.
 * -EINVAL when a field is out of range. */
int shoal_invmeta_result_head(uint8_t out[SHOAL_INVMETA_RESULT_FIXED],
                              const shoal_invmeta_result_t *m);
/* Decodes and checks a RESULT meta (error NUL-free, header list well formed). 0 or -EPROTO. */
int shoal_invmeta_result_decode(const uint8_t *p, size_t len, shoal_invmeta_result_t *m);

/* Writes one list entry's 6-byte length prefix. -EINVAL for an empty or too long key or a value
 * longer than 4 GiB. The caller appends the key and value bytes. */
int shoal_invmeta_kv_hdr(uint8_t out[SHOAL_INVMETA_KV_HDR], size_t key_len, size_t val_len);
/* Appends one entry to buf (cap bytes, *len used): -ENOSPC when it does not fit, -EINVAL for a
 * key or value that is empty/too long or contains a NUL. */
int shoal_invmeta_kv_put(uint8_t *buf, size_t cap, size_t *len, const char *key, size_t key_len,
                         const char *val, size_t val_len);
/* Iterates a list: 1 with the entry at *off (and *off advanced), 0 at the end, -EPROTO when the
 * entry is malformed (lengths past the end, an empty key, a NUL). */
int shoal_invmeta_kv_next(const uint8_t *p, size_t len, size_t *off, shoal_invmeta_kv_t *kv);
/* Checks a whole list: 0 or -EPROTO. */
int shoal_invmeta_kv_validate(const uint8_t *p, size_t len);

/* "function", "crash", ... for a kind; "" for SHOAL_KIND_NONE and unknown values. */
const char *shoal_invmeta_kind_name(shoal_invmeta_kind k);
/* The kind a name stands for; SHOAL_KIND_INTERNAL for NULL or an unknown name. */
shoal_invmeta_kind shoal_invmeta_kind_parse(const char *name);

#endif
