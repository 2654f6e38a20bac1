/*
 * sqlutil - SQLite helpers shared by the controller's two databases (registry.c, store.c).
 * Stateless; safe from any thread that may use the statement it is given.
 */
#ifndef SHOAL_CONTROLLER_SQLUTIL_H
#define SHOAL_CONTROLLER_SQLUTIL_H

#include <sqlite3.h>
#include <stddef.h>

/* How shoal_sqlutil_collect turns rows into the elements of one array. */
typedef struct {
    size_t size;      /* bytes per element */
    size_t first_cap; /* elements in the first allocation; the array doubles from there */
    /* Fills elem from st's current row: 0, or -errno having released whatever it took. */
    int (*row)(sqlite3_stmt *st, void *elem);
    /* Releases what row() put in elem, for rows already kept when a later one fails; may be
     * NULL when elements own nothing. */
    void (*release)(void *elem);
    /* Turns a failed sqlite3_step result into -errno (logging it if it likes); it runs before
     * shoal_sqlutil_collect returns, so sqlite3_errmsg still describes the failure. */
    int (*step_err)(void *ctx, int rc);
    void *ctx; /* passed to step_err */
} shoal_sqlutil_rows_t;

/* Steps st to its end and returns every row as a malloc'd array in *out (NULL when there are
 * none), *n elements long; the caller frees it. 0 or -errno, and on failure nothing is returned
 * and nothing is left allocated. st is neither reset nor finalized: that stays with its owner. */
int shoal_sqlutil_collect(sqlite3_stmt *st, const shoal_sqlutil_rows_t *how, void **out, size_t *n);

#endif
