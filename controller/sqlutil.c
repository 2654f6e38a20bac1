/*
 * sqlutil - see sqlutil.h.
 */
#include "sqlutil.h"

#include <errno.h>
#include <stdlib.h>

int shoal_sqlutil_collect(sqlite3_stmt *st, const shoal_sqlutil_rows_t *how, void **out, size_t *n)
{
    char *v = NULL;
    size_t len = 0, cap = 0;
    int rc, err = 0;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : how->first_cap;
            char *nv = realloc(v, ncap * how->size);
            if (nv == NULL) {
                err = -ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        if ((err = how->row(st, v + len * how->size)) < 0)
            break;
        len++;
    }
    if (err == 0 && rc != SQLITE_DONE)
        err = how->step_err(how->ctx, rc);
    if (err < 0) {
        if (how->release != NULL)
            for (size_t i = 0; i < len; i++)
                how->release(v + i * how->size);
        free(v);
        return err;
    }
    *out = v;
    *n = len;
    return 0;
}
