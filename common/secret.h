/*
 * secret - shared secrets: the API token and the cluster key (docs/security.md).
 *
 * A secret is 16..SHOAL_SECRET_MAX characters from the RFC 6750 token68 set
 * ([A-Za-z0-9-._~+/] and trailing '='), so it fits an `Authorization: Bearer` header and a JSON
 * string unescaped. Generated secrets are 32 bytes from getrandom(2) as 64 lower-case hex digits.
 * Secret files hold the secret and optionally a trailing newline; they are written durably with
 * mode 0600 from the start (never readable by others, not even for a moment).
 *
 * Comparisons take time that depends on the lengths of the inputs only, never on where they
 * differ: both sides are hashed with SHA-256 and the digests compared with CRYPTO_memcmp. The
 * worker-to-worker peer protocol reuses the cluster key through these same calls.
 *
 * No state; every call is safe from any thread.
 */
#ifndef SHOAL_COMMON_SECRET_H
#define SHOAL_COMMON_SECRET_H

#include <stddef.h>

#define SHOAL_SECRET_MIN 16
#define SHOAL_SECRET_MAX 256

/* Whether a and b hold the same bytes, in time independent of their contents. 1 or 0. */
int shoal_secret_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Whether s[0..len) is a well-formed secret (length and characters above). */
int shoal_secret_valid(const char *s, size_t len);

/* Writes a fresh random secret (64 hex digits and a NUL) into out; 0 or -errno. */
int shoal_secret_generate(char out[65]);

/* Reads the secret in the file at path into out (NUL-terminated; size > SHOAL_SECRET_MAX), one
 * trailing newline (or CRLF) removed. -ENOENT when there is no file, -EINVAL when its content is
 * not a well-formed secret, other -errno on I/O errors. A file readable by group or others is
 * still used, after its mode is narrowed to 0600 (best effort) and *loose (optional) set to 1. */
int shoal_secret_load(const char *path, char *out, size_t size, int *loose);

/* Writes secret to path durably with mode 0600. 0 or -errno. */
int shoal_secret_store(const char *path, const char *secret);

/* Where shoal_secret_init found its secret. */
typedef enum {
    SHOAL_SECRET_GIVEN = 1, /* the given value (then stored at path if it differed) */
    SHOAL_SECRET_LOADED,    /* read from path */
    SHOAL_SECRET_CREATED,   /* generated and stored at path */
} shoal_secret_origin_t;

/* The secret a process starting up uses: `given` (a flag or environment value; NULL or "" when
 * none) if there is one, which is then also stored at path so that local tools reading the file
 * keep working; else the one stored at path; else a fresh one, stored at path. Result in out
 * (size > SHOAL_SECRET_MAX), origin in *origin (optional). -EINVAL when given or the file's
 * content is malformed, other -errno from the file system. */
int shoal_secret_init(const char *path, const char *given, char *out, size_t size,
                      shoal_secret_origin_t *origin);

#endif
