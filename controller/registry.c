/*
 * registry - see registry.h for the layout and the crash-safety argument.
 *
 * All statements are prepared once at open and reused (sqlite3_reset) under the registry mutex.
 * A put is one IMMEDIATE transaction that reads the row, computes the next version and the merged
 * limits, and writes both tables, so two concurrent deploys of one name can never hand out the
 * same version. The schema carries PRAGMA user_version so that later issues can migrate it.
 *
 * Migrations add columns with a default that keeps the old meaning (schema 2: `public`, 0), each
 * only when the column is missing, so a database of any earlier version opens and keeps its
 * rows. The flag is read by column name (it is always the last column selected).
 */
#include "registry.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/trace.h"
#include "common/util.h"
#include "controller/sqlutil.h"

#define SCHEMA_VERSION 2
#define STR_(x) #x
#define STR(x) STR_(x)

struct shoal_registry {
    pthread_mutex_t lock;
    sqlite3 *db;
    int lock_fd;
    char home[PATH_MAX];
    char artifacts[PATH_MAX];
    sqlite3_stmt *st_get;     /* row of a name, live or tombstone */
    sqlite3_stmt *st_upsert;  /* write the functions row */
    sqlite3_stmt *st_version; /* append to versions */
    sqlite3_stmt *st_delete;  /* turn a live row into a tombstone */
    sqlite3_stmt *st_list;    /* live rows by name */
    sqlite3_stmt *st_history; /* versions of a name */
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS functions("
    " name TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL,"
    " size INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL,"
    " min_warm INTEGER NOT NULL, max_instances INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,"
    " public INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS versions("
    " name TEXT NOT NULL, version INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,"
    " timeout_ms INTEGER NOT NULL, memory_mb INTEGER NOT NULL, min_warm INTEGER NOT NULL,"
    " max_instances INTEGER NOT NULL, created_ms INTEGER NOT NULL,"
    " public INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(name, version)) WITHOUT ROWID;";

#define FN_COLUMNS                                                                                 \
    "name, version, sha256, size, timeout_ms, memory_mb, min_warm, max_instances, created_ms,"     \
    " updated_ms"

/* Maps an SQLite failure to an errno for our callers, logging the database's own message. */
static int db_err(shoal_registry_t *r, int rc, const char *what)
{
    SHOAL_ERROR("registry: %s: %s", what, sqlite3_errmsg(r->db));
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return -EACCES;
    default:
        return -EIO;
    }
}

/* Where a statement runs, for shoal_sqlutil_collect's step_err: db_err needs both. */
typedef struct {
    shoal_registry_t *r;
    const char *what;
} db_site_t;

static int step_err(void *ctx, int rc)
{
    const db_site_t *site = ctx;
    return db_err(site->r, rc, site->what);
}

int shoal_registry_sha_valid(const char *s)
{
    return s != NULL && strnlen(s, 65) == 64 && shoal_util_lower_hex(s, 64);
}

static int artifact_path(const shoal_registry_t *r, const char *sha, char *buf, size_t size)
{
    if (snprintf(buf, size, "%s/%s.so", r->artifacts, sha) >= (int)size)
        return -ENAMETOOLONG;
    return 0;
}

static void copy_text(char *dst, size_t size, const unsigned char *src)
{
    snprintf(dst, size, "%s", src ? (const char *)src : "");
}

/* Reads a functions/versions row laid out as FN_COLUMNS into fn. */
static void row_to_fn(sqlite3_stmt *st, shoal_fn_t *fn)
{
    memset(fn, 0, sizeof(*fn));
    copy_text(fn->name, sizeof(fn->name), sqlite3_column_text(st, 0));
    fn->version = (uint64_t)sqlite3_column_int64(st, 1);
    copy_text(fn->sha256, sizeof(fn->sha256), sqlite3_column_text(st, 2));
    fn->size = (uint64_t)sqlite3_column_int64(st, 3);
    fn->timeout_ms = (uint32_t)sqlite3_column_int64(st, 4);
    fn->memory_mb = (uint32_t)sqlite3_column_int64(st, 5);
    fn->min_warm = (uint32_t)sqlite3_column_int64(st, 6);
    fn->max_instances = (uint32_t)sqlite3_column_int64(st, 7);
    fn->created_ms = (uint64_t)sqlite3_column_int64(st, 8);
    fn->updated_ms = (uint64_t)sqlite3_column_int64(st, 9);
    int last = sqlite3_column_count(st) - 1;
    const char *col = last > 9 ? sqlite3_column_name(st, last) : NULL;
    if (col != NULL && strcmp(col, "public") == 0)
        fn->is_public = sqlite3_column_int64(st, last) != 0;
}

static int exec(shoal_registry_t *r, const char *sql)
{
    int rc = sqlite3_exec(r->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : db_err(r, rc, sql);
}

static int prepare(shoal_registry_t *r, const char *sql, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(r->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : db_err(r, rc, "prepare");
}

/* Adds a column to an existing table unless it is there already (a database made by an older
 * controller). Called inside the schema transaction. */
static int add_column(shoal_registry_t *r, const char *table, const char *column, const char *decl)
{
    char sql[256];
    sqlite3_stmt *st = NULL;

    snprintf(sql, sizeof(sql), "SELECT %s FROM %s LIMIT 0", column, table);
    if (sqlite3_prepare_v2(r->db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_finalize(st);
        return 0;
    }
    snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN %s %s", table, column, decl);
    SHOAL_INFO("registry: migrating %s/shoal.db: adding %s.%s", r->home, table, column);
    return exec(r, sql);
}

static int setup_db(shoal_registry_t *r)
{
    sqlite3_stmt *st = NULL;
    int err, rc, user_version;

    /* WAL keeps readers off the writer's back and makes each commit one fsync of the log;
     * synchronous=FULL makes that fsync happen before COMMIT returns, which is what "a deploy
     * that answered survives kill -9 and power loss" needs. */
    if ((err = prepare(r, "PRAGMA journal_mode=WAL", &st)) < 0)
        return err;
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW || sqlite3_column_text(st, 0) == NULL ||
        strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
        sqlite3_finalize(st);
        SHOAL_ERROR("registry: cannot switch %s/shoal.db to WAL mode", r->home);
        return -EIO;
    }
    sqlite3_finalize(st);
    if ((err = exec(r, "PRAGMA synchronous=FULL")) < 0)
        return err;
    sqlite3_busy_timeout(r->db, 5000);

    if ((err = prepare(r, "PRAGMA user_version", &st)) < 0)
        return err;
    user_version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (user_version < 0 || user_version > SCHEMA_VERSION) {
        SHOAL_ERROR("registry: %s/shoal.db has schema %d; this controller knows up to %d", r->home,
                    user_version, SCHEMA_VERSION);
        return -EPROTO;
    }
    if ((err = exec(r, "BEGIN IMMEDIATE")) < 0)
        return err;
    if ((err = exec(r, SCHEMA)) < 0 ||
        (err = add_column(r, "functions", "public", "INTEGER NOT NULL DEFAULT 0")) < 0 ||
        (err = add_column(r, "versions", "public", "INTEGER NOT NULL DEFAULT 0")) < 0 ||
        (err = exec(r, "PRAGMA user_version=" STR(SCHEMA_VERSION))) < 0) {
        exec(r, "ROLLBACK");
        return err;
    }
    if ((err = exec(r, "COMMIT")) < 0)
        return err;

    if ((err = prepare(r, "SELECT " FN_COLUMNS ", deleted, public FROM functions WHERE name=?1",
                       &r->st_get)) < 0 ||
        (err = prepare(r,
                       "INSERT OR REPLACE INTO functions(" FN_COLUMNS ", deleted, public)"
                       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,0,?11)",
                       &r->st_upsert)) < 0 ||
        (err = prepare(r,
                       "INSERT INTO versions(name, version, sha256, size, timeout_ms, memory_mb,"
                       " min_warm, max_instances, created_ms, public)"
                       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                       &r->st_version)) < 0 ||
        (err =
             prepare(r, "UPDATE functions SET deleted=1, updated_ms=?2 WHERE name=?1 AND deleted=0",
                     &r->st_delete)) < 0 ||
        (err = prepare(r,
                       "SELECT " FN_COLUMNS ", public FROM functions WHERE deleted=0 ORDER BY name",
                       &r->st_list)) < 0 ||
        (err = prepare(r,
                       "SELECT name, version, sha256, size, timeout_ms, memory_mb, min_warm,"
                       " max_instances, created_ms, created_ms, public FROM versions WHERE name=?1"
                       " ORDER BY version",
                       &r->st_history)) < 0)
        return err;
    return 0;
}

static int cmp_sha(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

static int sha_row(sqlite3_stmt *st, void *elem)
{
    char(*sha)[65] = elem;
    copy_text(*sha, sizeof(*sha), sqlite3_column_text(st, 0));
    return 0;
}

/* Removes what a crash may have left in artifacts/ - temporary files of interrupted writes - and
 * every artifact no live function references (replaced versions, deleted functions, and files
 * whose deploy transaction never committed). Files we do not recognise are left alone. */
static int collect_garbage(shoal_registry_t *r)
{
    char(*live)[65] = NULL;
    size_t nlive = 0;
    sqlite3_stmt *st = NULL;
    DIR *dir = NULL;
    struct dirent *de;
    db_site_t site = {r, "list artifacts"};
    shoal_sqlutil_rows_t how = {
        .size = sizeof(*live), .first_cap = 64, .row = sha_row, .step_err = step_err, .ctx = &site};
    void *v;
    int err = 0, removed = 0;

    if ((err = prepare(r, "SELECT DISTINCT sha256 FROM functions WHERE deleted=0", &st)) < 0)
        return err;
    if ((err = shoal_sqlutil_collect(st, &how, &v, &nlive)) < 0)
        goto done;
    live = v;
    if (nlive > 0)
        qsort(live, nlive, sizeof(*live), cmp_sha);

    if ((dir = opendir(r->artifacts)) == NULL) {
        err = -errno;
        goto done;
    }
    while ((de = readdir(dir)) != NULL) {
        const char *n = de->d_name;
        size_t len = strlen(n);
        char sha[65];
        int stray = strstr(n, ".tmp.") != NULL;

        if (!stray) {
            if (len != 67 || strcmp(n + 64, ".so") != 0)
                continue;
            memcpy(sha, n, 64);
            sha[64] = '\0';
            if (!shoal_registry_sha_valid(sha))
                continue;
            if (nlive > 0 && bsearch(sha, live, nlive, sizeof(*live), cmp_sha) != NULL)
                continue;
        }
        if (unlinkat(dirfd(dir), n, 0) < 0 && errno != ENOENT) {
            SHOAL_WARN("registry: cannot remove %s/%s: %s", r->artifacts, n, strerror(errno));
            continue;
        }
        removed++;
    }
    if (removed > 0)
        SHOAL_INFO("registry: removed %d unreferenced or partial artifact file(s)", removed);

    /* A live function whose artifact is missing cannot be repaired here, but say so loudly. */
    for (size_t i = 0; i < nlive; i++) {
        char path[PATH_MAX];
        struct stat sb;
        if (artifact_path(r, live[i], path, sizeof(path)) == 0 && stat(path, &sb) < 0)
            SHOAL_ERROR("registry: artifact %s is missing", path);
    }
done:
    if (dir != NULL)
        closedir(dir);
    sqlite3_finalize(st);
    free(live);
    return err;
}

int shoal_registry_open(const char *home, shoal_registry_t **out)
{
    shoal_registry_t *r;
    char path[PATH_MAX];
    int err, rc;

    if ((r = calloc(1, sizeof(*r))) == NULL)
        return -ENOMEM;
    r->lock_fd = -1;
    if ((err = pthread_mutex_init(&r->lock, NULL)) != 0) {
        free(r);
        return -err;
    }
    if (snprintf(r->home, sizeof(r->home), "%s", home) >= (int)sizeof(r->home) ||
        snprintf(r->artifacts, sizeof(r->artifacts), "%s/artifacts", home) >=
            (int)sizeof(r->artifacts) ||
        snprintf(path, sizeof(path), "%s/controller.lock", home) >= (int)sizeof(path)) {
        err = -ENAMETOOLONG;
        goto fail;
    }
    if ((err = shoal_util_mkdir_p(r->artifacts, 0755)) < 0)
        goto fail;
    /* Two controllers on one home would each garbage-collect the other's fresh artifacts. */
    if ((r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        err = -errno;
        goto fail;
    }
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        err = errno == EWOULDBLOCK ? -EBUSY : -errno;
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/shoal.db", home);
    rc = sqlite3_open_v2(path, &r->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err = r->db ? db_err(r, rc, path) : -ENOMEM;
        goto fail;
    }
    if ((err = setup_db(r)) < 0)
        goto fail;
    if ((err = collect_garbage(r)) < 0)
        goto fail;
    *out = r;
    return 0;
fail:
    shoal_registry_close(r);
    return err;
}

void shoal_registry_close(shoal_registry_t *r)
{
    if (r == NULL)
        return;
    sqlite3_finalize(r->st_get);
    sqlite3_finalize(r->st_upsert);
    sqlite3_finalize(r->st_version);
    sqlite3_finalize(r->st_delete);
    sqlite3_finalize(r->st_list);
    sqlite3_finalize(r->st_history);
    if (r->db != NULL)
        sqlite3_close(r->db);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Writes the artifact unless an identical one is already stored. Files only ever appear under
 * their final name through a rename after fsync, so an existing file of the right size is a
 * complete copy of the same bytes. */
static int store_artifact(shoal_registry_t *r, const char *sha, const void *data, size_t len)
{
    char path[PATH_MAX];
    struct stat sb;
    int err;

    if ((err = artifact_path(r, sha, path, sizeof(path))) < 0)
        return err;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size == (uint64_t)len)
        return 0;
    return shoal_util_write_file_durable(path, data, len, 0644);
}

/* Looks name up (live or tombstone). 1 found, 0 not found, or -errno. */
static int lookup(shoal_registry_t *r, const char *name, shoal_fn_t *fn, int *deleted)
{
    int rc, ret;

    sqlite3_bind_text(r->st_get, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(r->st_get);
    if (rc == SQLITE_ROW) {
        row_to_fn(r->st_get, fn);
        *deleted = sqlite3_column_int(r->st_get, 10);
        ret = 1;
    } else if (rc == SQLITE_DONE) {
        ret = 0;
    } else {
        ret = db_err(r, rc, "get");
    }
    sqlite3_reset(r->st_get);
    sqlite3_clear_bindings(r->st_get);
    return ret;
}

static int check_range(const char *what, uint32_t v, uint32_t min, uint32_t max, char *err,
                       size_t errlen)
{
    if (v >= min && v <= max)
        return 0;
    snprintf(err, errlen, "%s must be an integer in %u..%u", what, min, max);
    return -EINVAL;
}

/* Merges the limits a deploy sets onto the previous ones and checks the result. */
static int merge_limits(const shoal_fn_t *prev, const shoal_fn_limits_t *lim, shoal_fn_t *fn,
                        char *err, size_t errlen)
{
    unsigned set = lim ? lim->set : 0;

    if (prev != NULL) {
        fn->timeout_ms = prev->timeout_ms;
        fn->memory_mb = prev->memory_mb;
        fn->min_warm = prev->min_warm;
        fn->max_instances = prev->max_instances;
        fn->is_public = prev->is_public;
    } else {
        fn->timeout_ms = SHOAL_FN_TIMEOUT_DEFAULT;
        fn->memory_mb = SHOAL_FN_MEMORY_DEFAULT;
        fn->min_warm = SHOAL_FN_MIN_WARM_DEFAULT;
        fn->max_instances = SHOAL_FN_MAX_INSTANCES_DEFAULT;
    }
    if (set & SHOAL_LIMIT_TIMEOUT)
        fn->timeout_ms = lim->timeout_ms;
    if (set & SHOAL_LIMIT_MEMORY)
        fn->memory_mb = lim->memory_mb;
    if (set & SHOAL_LIMIT_MIN_WARM)
        fn->min_warm = lim->min_warm;
    if (set & SHOAL_LIMIT_MAX_INSTANCES)
        fn->max_instances = lim->max_instances;
    if (set & SHOAL_LIMIT_PUBLIC)
        fn->is_public = lim->is_public != 0;
    if (check_range("timeout_ms", fn->timeout_ms, SHOAL_FN_TIMEOUT_MIN, SHOAL_FN_TIMEOUT_MAX, err,
                    errlen) < 0 ||
        check_range("memory_mb", fn->memory_mb, SHOAL_FN_MEMORY_MIN, SHOAL_FN_MEMORY_MAX, err,
                    errlen) < 0 ||
        check_range("min_warm", fn->min_warm, 0, SHOAL_FN_MIN_WARM_MAX, err, errlen) < 0 ||
        check_range("max_instances", fn->max_instances, SHOAL_FN_MAX_INSTANCES_MIN,
                    SHOAL_FN_MAX_INSTANCES_MAX, err, errlen) < 0)
        return -EINVAL;
    if (fn->min_warm > fn->max_instances) {
        snprintf(err, errlen, "min_warm (%u) must not exceed max_instances (%u)", fn->min_warm,
                 fn->max_instances);
        return -EINVAL;
    }
    return 0;
}

static void bind_fn(sqlite3_stmt *st, const shoal_fn_t *fn)
{
    sqlite3_bind_text(st, 1, fn->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)fn->version);
    sqlite3_bind_text(st, 3, fn->sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)fn->size);
    sqlite3_bind_int64(st, 5, fn->timeout_ms);
    sqlite3_bind_int64(st, 6, fn->memory_mb);
    sqlite3_bind_int64(st, 7, fn->min_warm);
    sqlite3_bind_int64(st, 8, fn->max_instances);
}

static int step_done(shoal_registry_t *r, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int err = rc == SQLITE_DONE ? 0 : db_err(r, rc, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return err;
}

int shoal_registry_put(shoal_registry_t *r, const char *name, const void *data, size_t len,
                       const shoal_fn_limits_t *limits, shoal_fn_t *out, int *created, char *err,
                       size_t errlen)
{
    shoal_fn_t prev, fn;
    int found, deleted = 0, e, in_tx = 0;
    uint64_t now = shoal_util_wall_ms();

    if (!shoal_util_name_valid(name))
        return -EINVAL;
    memset(&fn, 0, sizeof(fn));
    snprintf(fn.name, sizeof(fn.name), "%s", name);
    shoal_util_sha256_hex(data, len, fn.sha256);
    fn.size = len;

    pthread_mutex_lock(&r->lock);
    /* The file first: once the transaction below commits, something refers to it. */
    if ((e = store_artifact(r, fn.sha256, data, len)) < 0) {
        SHOAL_ERROR("registry: cannot store artifact %s: %s", fn.sha256, strerror(-e));
        goto fail;
    }
    if ((e = exec(r, "BEGIN IMMEDIATE")) < 0)
        goto fail;
    in_tx = 1;
    if ((found = lookup(r, name, &prev, &deleted)) < 0) {
        e = found;
        goto fail;
    }
    if ((e = merge_limits(found && !deleted ? &prev : NULL, limits, &fn, err, errlen)) < 0)
        goto fail;
    fn.version = found ? prev.version + 1 : 1;
    fn.created_ms = found && !deleted ? prev.created_ms : now;
    fn.updated_ms = now;

    bind_fn(r->st_upsert, &fn);
    sqlite3_bind_int64(r->st_upsert, 9, (sqlite3_int64)fn.created_ms);
    sqlite3_bind_int64(r->st_upsert, 10, (sqlite3_int64)fn.updated_ms);
    sqlite3_bind_int64(r->st_upsert, 11, fn.is_public);
    if ((e = step_done(r, r->st_upsert, "put")) < 0)
        goto fail;
    bind_fn(r->st_version, &fn);
    sqlite3_bind_int64(r->st_version, 9, (sqlite3_int64)fn.updated_ms);
    sqlite3_bind_int64(r->st_version, 10, fn.is_public);
    if ((e = step_done(r, r->st_version, "put version")) < 0)
        goto fail;
    if ((e = exec(r, "COMMIT")) < 0)
        goto fail;
    pthread_mutex_unlock(&r->lock);
    *out = fn;
    if (created)
        *created = !found || deleted;
    return 0;
fail:
    if (in_tx)
        exec(r, "ROLLBACK");
    pthread_mutex_unlock(&r->lock);
    if (e != -EINVAL && err != NULL && errlen > 0)
        snprintf(err, errlen, "cannot store the function: %s", strerror(-e));
    return e;
}

int shoal_registry_get(shoal_registry_t *r, const char *name, shoal_fn_t *out)
{
    int found, deleted = 0;

    pthread_mutex_lock(&r->lock);
    found = lookup(r, name, out, &deleted);
    pthread_mutex_unlock(&r->lock);
    if (found < 0)
        return found;
    return found && !deleted ? 0 : -ENOENT;
}

static int fn_row(sqlite3_stmt *st, void *elem)
{
    row_to_fn(st, elem);
    return 0;
}

/* Collects every row st yields into a malloc'd array. Called with the lock held. */
static int collect(shoal_registry_t *r, sqlite3_stmt *st, shoal_fn_t **out, size_t *n)
{
    db_site_t site = {r, "list"};
    shoal_sqlutil_rows_t how = {.size = sizeof(shoal_fn_t),
                                .first_cap = 16,
                                .row = fn_row,
                                .step_err = step_err,
                                .ctx = &site};
    void *v;
    int err = shoal_sqlutil_collect(st, &how, &v, n);

    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (err == 0)
        *out = v;
    return err;
}

int shoal_registry_list(shoal_registry_t *r, shoal_fn_t **out, size_t *n)
{
    int err;

    pthread_mutex_lock(&r->lock);
    err = collect(r, r->st_list, out, n);
    pthread_mutex_unlock(&r->lock);
    return err;
}

int shoal_registry_history(shoal_registry_t *r, const char *name, shoal_fn_t **out, size_t *n)
{
    int err;

    pthread_mutex_lock(&r->lock);
    sqlite3_bind_text(r->st_history, 1, name, -1, SQLITE_STATIC);
    err = collect(r, r->st_history, out, n);
    pthread_mutex_unlock(&r->lock);
    if (err == 0 && *n == 0)
        return -ENOENT;
    return err;
}

int shoal_registry_delete(shoal_registry_t *r, const char *name, shoal_fn_t *out)
{
    shoal_fn_t fn;
    int found, deleted = 0, e, in_tx = 0;
    uint64_t now = shoal_util_wall_ms();

    pthread_mutex_lock(&r->lock);
    if ((e = exec(r, "BEGIN IMMEDIATE")) < 0)
        goto fail;
    in_tx = 1;
    if ((found = lookup(r, name, &fn, &deleted)) < 0) {
        e = found;
        goto fail;
    }
    if (!found || deleted) {
        e = -ENOENT;
        goto fail;
    }
    sqlite3_bind_text(r->st_delete, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(r->st_delete, 2, (sqlite3_int64)now);
    if ((e = step_done(r, r->st_delete, "delete")) < 0)
        goto fail;
    if ((e = exec(r, "COMMIT")) < 0)
        goto fail;
    pthread_mutex_unlock(&r->lock);
    fn.updated_ms = now;
    if (out)
        *out = fn;
    return 0;
fail:
    if (in_tx)
        exec(r, "ROLLBACK");
    pthread_mutex_unlock(&r->lock);
    return e;
}

int shoal_registry_read_artifact(shoal_registry_t *r, const char *sha256, size_t max, void **out,
                                 size_t *len)
{
    char path[PATH_MAX];
    char *buf;
    int err;

    if (!shoal_registry_sha_valid(sha256))
        return -EINVAL;
    if ((err = artifact_path(r, sha256, path, sizeof(path))) < 0)
        return err;
    if ((err = shoal_util_read_file(path, max, &buf, len)) < 0)
        return err;
    *out = buf;
    return 0;
}
