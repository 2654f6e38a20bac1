/*
 * fntable - the controller's in-memory function table: the registry's current rows, looked up
 * by name on every invocation without touching SQLite.
 *
 * Entries are allocated once per name and never move or go away while the table lives (a
 * deleted function stays as a tombstone entry, like its database row), so the scheduler may keep
 * pointers to them. Changes are applied by version: a change older than what the entry holds is
 * ignored, which makes concurrent deploys finishing out of order harmless.
 *
 * Lookup is an open-addressing hash (FNV-1a, linear probing, at most half full). Loop thread only.
 */
#ifndef SHOAL_CONTROLLER_FNTABLE_H
#define SHOAL_CONTROLLER_FNTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "controller/json.h"
#include "controller/registry.h"

typedef struct {
    shoal_fn_t fn;     /* current version (for a tombstone: the last one, updated_ms = delete) */
    int deleted;       /* tombstone: the name exists but cannot be invoked */
    shoal_json_t json; /* fn as the frames' function object (no times); empty for a tombstone */
    uint32_t inflight; /* invocations of this function dispatched to workers (scheduler's) */
    void *sched;       /* the scheduler's per-function state */
    struct shoal_logs *logs; /* recent log lines (logs.h), made on the first; dropped with a
                                delete */
} shoal_fnent_t;

typedef struct shoal_fntable shoal_fntable_t;

shoal_fntable_t *shoal_fntable_create(void);
/* Frees every entry (their json and logs too). The scheduler must have released its `sched` data.
 */
void shoal_fntable_destroy(shoal_fntable_t *t);

/* The entry for name[0..len) (live or tombstone), or NULL. */
shoal_fnent_t *shoal_fntable_find(shoal_fntable_t *t, const char *name, size_t len);
/* Applies a deploy (deleted = 0) or a delete (deleted = 1) of fn->version. Returns 1 and the entry
 * when it changed the table, 0 (and the entry, if any) when the change was older than what the
 * table holds, or -ENOMEM. */
int shoal_fntable_apply(shoal_fntable_t *t, const shoal_fn_t *fn, int deleted, shoal_fnent_t **out);

/* Number of entries, tombstones included, and the i-th of them (insertion order). */
size_t shoal_fntable_count(const shoal_fntable_t *t);
shoal_fnent_t *shoal_fntable_at(const shoal_fntable_t *t, size_t i);
/* Number of live (not deleted) functions. */
size_t shoal_fntable_live(const shoal_fntable_t *t);
/* The live entries sorted by name in a malloc'd array the caller frees (NULL when *n is 0). */
int shoal_fntable_sorted(const shoal_fntable_t *t, shoal_fnent_t ***out, size_t *n);

#endif
