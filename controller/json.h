/*
 * json - a small append-only JSON writer for the controller's hot paths.
 *
 * Every answer and every frame the controller sends is JSON. Building them with jansson would
 * allocate a tree per request; this writer appends straight into one growable buffer that callers
 * keep and reset between uses, so a warm path allocates nothing. It only writes JSON (parsing is
 * jansson's job). Allocation failure is sticky: the writer stops growing, remembers it, and
 * shoal_json_error() reports -ENOMEM once the caller is done, so call sites need not check each
 * append.
 *
 * Strings are always emitted as valid UTF-8: bytes that are not part of a well-formed UTF-8
 * sequence (and NUL, which many decoders refuse) become U+FFFD, so a header carrying Latin-1 or
 * garbage cannot make a peer's decoder reject the whole message.
 *
 * Not thread-safe; a writer belongs to whoever owns the struct.
 */
#ifndef SHOAL_CONTROLLER_JSON_H
#define SHOAL_CONTROLLER_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *buf;  /* the bytes written so far; not NUL-terminated unless shoal_json_cstr is used */
    size_t len; /* bytes used */
    size_t cap; /* bytes allocated */
    int oom;    /* an allocation failed; the contents are incomplete */
} shoal_json_t;

/* Initialises an empty writer; it allocates on first append. */
void shoal_json_init(shoal_json_t *j);
/* Releases the buffer; the writer may be initialised again. */
void shoal_json_free(shoal_json_t *j);
/* Empties the writer but keeps its buffer for reuse. Clears the allocation failure flag. */
void shoal_json_reset(shoal_json_t *j);
/* Shrinks the buffer back to nothing if it grew beyond max bytes (so that one huge message does
 * not pin memory in a pooled writer), then resets it. */
void shoal_json_trim(shoal_json_t *j, size_t max);
/* 0, or -ENOMEM if any append since the last reset failed. */
int shoal_json_error(const shoal_json_t *j);

/* Appends raw bytes (already valid JSON or a fragment of it). */
void shoal_json_raw(shoal_json_t *j, const void *s, size_t n);
/* Appends a string literal without strlen. Only a literal: the "" s "" makes anything else (a
 * pointer, whose sizeof is not its length, e.g. `c ? "," : "{"`) a compile error. */
#define shoal_json_lit(j, s) shoal_json_raw((j), "" s "", sizeof(s) - 1)
/* Appends a quoted, escaped JSON string of n bytes (see the UTF-8 rule above). */
void shoal_json_str(shoal_json_t *j, const char *s, size_t n);
/* Appends a quoted, escaped NUL-terminated string. */
void shoal_json_cstr(shoal_json_t *j, const char *s);
/* Appends a number. */
void shoal_json_u64(shoal_json_t *j, uint64_t v);
void shoal_json_i64(shoal_json_t *j, int64_t v);
/* Appends "key": (quoted key, colon); the key is escaped like any string. */
void shoal_json_key(shoal_json_t *j, const char *key);

#endif
