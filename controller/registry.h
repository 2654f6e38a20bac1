/*
 * registry - the controller's durable state: functions, their version history, and the artifacts
 * they run, under --home.
 *
 * Layout:  <home>/shoal.db                SQLite (WAL, synchronous=FULL): tables `functions` (one
 *                                         row per name ever deployed; deleted ones stay as
 *                                         tombstones so versions only ever increase) and
 *                                         `versions` (every deploy, for history)
 *          <home>/artifacts/<sha256>.so   the shared objects, content-addressed
 *          <home>/controller.lock         flock'd while a controller owns the home
 *
 * Crash safety comes from ordering: an artifact is written durably (temporary file, fsync, rename,
 * fsync of the directory) BEFORE the transaction that references it commits, so a committed row
 * always finds its file. Whatever a crash leaves behind the other way round - a temporary file, or
 * an artifact whose transaction never committed - is unreferenced, and shoal_registry_open removes
 * it. Artifacts of replaced or deleted versions are removed the same way at the next open (not at
 * once: a worker may still be fetching one).
 *
 * Threads: every call may be made from any thread; calls are serialised by a mutex inside, so
 * the controller runs the slow ones (put, delete) on libuv's thread pool while the event loop
 * serves invocations from its own in-memory table (see fntable.h) and never waits on SQLite.
 */
#ifndef SHOAL_CONTROLLER_REGISTRY_H
#define SHOAL_CONTROLLER_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

/* Limits of a function: defaults and allowed ranges (the PUT query parameters). */
#define SHOAL_FN_TIMEOUT_DEFAULT 60000u
#define SHOAL_FN_TIMEOUT_MIN 1u
#define SHOAL_FN_TIMEOUT_MAX 900000u
#define SHOAL_FN_MEMORY_DEFAULT 256u
#define SHOAL_FN_MEMORY_MIN 16u
#define SHOAL_FN_MEMORY_MAX 16384u
#define SHOAL_FN_MIN_WARM_DEFAULT 0u
#define SHOAL_FN_MIN_WARM_MAX 64u
#define SHOAL_FN_MAX_INSTANCES_DEFAULT 64u
#define SHOAL_FN_MAX_INSTANCES_MIN 1u
#define SHOAL_FN_MAX_INSTANCES_MAX 1024u

/* One deployed version of a function. A small value type: copy it freely. */
typedef struct {
    char name[SHOAL_NAME_MAX + 1];
    uint64_t version; /* 1, 2, ... per name; never reused, even across delete */
    char sha256[65];  /* lower-case hex of the artifact; its file is artifacts/<sha256>.so */
    uint64_t size;    /* artifact bytes */
    uint32_t timeout_ms;
    uint32_t memory_mb;
    uint32_t min_warm;
    uint32_t max_instances;
    uint64_t created_ms; /* wall clock: first deploy of this incarnation of the name */
    uint64_t updated_ms; /* wall clock: this version's deploy (or the delete, for a tombstone) */
    uint32_t is_public;  /* 1: invoking it needs no API token (deploy ?public=1; auth.h) */
} shoal_fn_t;

/* Which limits a deploy sets; the others keep the function's current values (or the defaults
 * when the function is new or was deleted). */
enum {
    SHOAL_LIMIT_TIMEOUT = 1u << 0,
    SHOAL_LIMIT_MEMORY = 1u << 1,
    SHOAL_LIMIT_MIN_WARM = 1u << 2,
    SHOAL_LIMIT_MAX_INSTANCES = 1u << 3,
    SHOAL_LIMIT_RETRIES = 1u << 4, /* kept by events.h, not by the registry */
    SHOAL_LIMIT_PUBLIC = 1u << 5,  /* is_public; like a limit, kept across updates until set */
};
typedef struct {
    unsigned set; /* SHOAL_LIMIT_* bits */
    uint32_t timeout_ms;
    uint32_t memory_mb;
    uint32_t min_warm;
    uint32_t max_instances;
    uint32_t retries;   /* async retries of function errors (0..10) */
    uint32_t is_public; /* 0 or 1 */
} shoal_fn_limits_t;

typedef struct shoal_registry shoal_registry_t;

/* Opens (creating if needed) the registry under home, takes the home's lock (-EBUSY if another
 * process holds it), and removes leftovers of a crash and unreferenced artifacts. */
int shoal_registry_open(const char *home, shoal_registry_t **out);
/* Closes the database and releases the lock. NULL is ignored. */
void shoal_registry_close(shoal_registry_t *r);

/* Deploys data as the next version of name: stores the artifact durably, then commits the new
 * version. *out is the new version, *created is 1 when the name was new or deleted (HTTP 201) and
 * 0 for an update. -EINVAL with a message in err when the merged limits are inconsistent
 * (min_warm > max_instances) or out of range; other -errno on I/O or database failure, in which
 * case nothing changed. The caller has validated name and the artifact. */
int shoal_registry_put(shoal_registry_t *r, const char *name, const void *data, size_t len,
                       const shoal_fn_limits_t *limits, shoal_fn_t *out, int *created, char *err,
                       size_t errlen);
/* The current version of a live function; -ENOENT if unknown or deleted. */
int shoal_registry_get(shoal_registry_t *r, const char *name, shoal_fn_t *out);
/* Every live function sorted by name into a malloc'd array the caller frees (NULL when n is 0). */
int shoal_registry_list(shoal_registry_t *r, shoal_fn_t **out, size_t *n);
/* Every version ever deployed of name, oldest first, malloc'd; -ENOENT if the name is unknown. */
int shoal_registry_history(shoal_registry_t *r, const char *name, shoal_fn_t **out, size_t *n);
/* Deletes a live function, keeping a tombstone with its last version; *out (optional) is that
 * last version with updated_ms set to the time of the delete. -ENOENT if not live. */
int shoal_registry_delete(shoal_registry_t *r, const char *name, shoal_fn_t *out);
/* Reads the artifact with the given hex SHA-256 into a malloc'd buffer of at most max bytes.
 * -EINVAL if sha256 is not 64 lower-case hex digits (it may come from the network), -ENOENT if
 * not stored, -EFBIG if larger than max. Touches no database state. */
int shoal_registry_read_artifact(shoal_registry_t *r, const char *sha256, size_t max, void **out,
                                 size_t *len);
/* Whether s is a well-formed artifact id (64 lower-case hex digits). */
int shoal_registry_sha_valid(const char *s);

#endif
