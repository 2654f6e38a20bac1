/*
 * store - see store.h for the group-commit design.
 *
 * Queues: `in` (submitted, not yet taken by the writer) and `done` (committed, callbacks not yet
 * run) are singly linked lists under one mutex; the writer signals the loop with a uv_async, and
 * the loop drains `done`. A batch is executed inside BEGIN IMMEDIATE .. COMMIT; a statement that
 * fails fails only its own op (the rest still commit); a failed COMMIT fails the whole batch.
 *
 * Reads for HTTP requests go through a third list, `rin`, served by READERS threads, each with
 * its own read connection (a connection is used by one thread only: they are opened NOMUTEX);
 * finished reads join `rdone` and come back through the same uv_async as committed writes.
 */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/trace.h"
#include "common/util.h"
#include "controller/api.h"
#include "controller/sqlutil.h"

/* Reader threads: two, so one slow listing does not hold up every other GET. */
#define READERS 2

struct shoal_store {
    uv_loop_t *loop;
    sqlite3 *wdb; /* writer thread's connection */
    sqlite3 *rdb; /* loop thread's connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uv_async_t async;
    shoal_store_op_t *in_head, *in_tail;
    shoal_store_op_t *done_head, *done_tail;
    size_t pending;
    int stop;
    /* Readers. */
    sqlite3 *readers_db[READERS];
    pthread_t readers[READERS];
    int nreaders;
    pthread_cond_t rcond;
    shoal_store_read_t *rin_head, *rin_tail;
    shoal_store_read_t *rdone_head, *rdone_tail;
    size_t reads; /* submitted, callback not run yet */
    int rstop;
    uint32_t window_us;
    shoal_store_stats_t stats;
};

static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS invocations("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, function TEXT NOT NULL,"
    " lane TEXT NOT NULL DEFAULT '', trigger TEXT NOT NULL DEFAULT '', state INTEGER NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL,"
    " finished_ms INTEGER NOT NULL DEFAULT 0, not_before_ms INTEGER NOT NULL DEFAULT 0,"
    " error TEXT, meta BLOB, input BLOB, output BLOB, headers TEXT);"
    "CREATE INDEX IF NOT EXISTS inv_state ON invocations(state, seq);"
    "CREATE INDEX IF NOT EXISTS inv_fn ON invocations(function, seq);"
    "CREATE TABLE IF NOT EXISTS triggers(name TEXT PRIMARY KEY NOT NULL, doc TEXT NOT NULL,"
    " fired_ms INTEGER NOT NULL DEFAULT 0, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS retries(name TEXT PRIMARY KEY NOT NULL, n INTEGER NOT NULL)"
    " WITHOUT ROWID;";

static const char *const STATES[] = {"queued", "running", "succeeded", "failed", "dead"};

const char *shoal_store_state_name(int state)
{
    return state >= 0 && state <= SHOAL_INV_DEAD ? STATES[state] : "unknown";
}

int shoal_store_state_parse(const char *s, size_t len)
{
    for (int i = 0; i <= SHOAL_INV_DEAD; i++)
        if (strlen(STATES[i]) == len && memcmp(STATES[i], s, len) == 0)
            return i;
    return -1;
}

static int db_errno(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CONSTRAINT:
        return -EEXIST;
    default:
        return -EIO;
    }
}

static int open_db(const char *path, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(
        path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        SHOAL_ERROR("store: cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
        sqlite3_close(db);
        return db_errno(rc) ? db_errno(rc) : -EIO;
    }
    sqlite3_busy_timeout(db, 10000);
    rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        SHOAL_ERROR("store: %s: %s", path, sqlite3_errmsg(db));
        sqlite3_close(db);
        return -EIO;
    }
    *out = db;
    return 0;
}

/* ---- the writer thread -------------------------------------------------------------------- */

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
    return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int run_op(sqlite3 *db, shoal_store_op_t *op)
{
    static const char *const SQL[] = {
        [SHOAL_STORE_INSERT] = "INSERT INTO invocations(id, function, lane, trigger, state,"
                               " created_ms, meta, input) VALUES(?1, ?2, ?3, ?4, 0, ?5, ?6, ?7)",
        [SHOAL_STORE_START] = "UPDATE invocations SET state = 1, attempts = ?2"
                              " WHERE id = ?1 AND state < 2",
        [SHOAL_STORE_REQUEUE] = "UPDATE invocations SET state = 0, attempts = ?2,"
                                " not_before_ms = ?3, error = ?4 WHERE id = ?1 AND state < 2",
        [SHOAL_STORE_FINISH] = "UPDATE invocations SET state = ?2, attempts = ?3,"
                               " finished_ms = ?4, error = ?5, output = ?6, headers = ?7,"
                               " input = NULL WHERE id = ?1 AND state < 2",
        [SHOAL_STORE_TRIGGER_PUT] = "INSERT OR REPLACE INTO triggers(name, doc, fired_ms,"
                                    " created_ms) VALUES(?1, ?2, ?3, ?4)",
        [SHOAL_STORE_TRIGGER_DEL] = "DELETE FROM triggers WHERE name = ?1",
        [SHOAL_STORE_FIRED] = "UPDATE triggers SET fired_ms = ?2 WHERE name = ?1",
        [SHOAL_STORE_RETRIES] = "INSERT OR REPLACE INTO retries(name, n) VALUES(?1, ?2)",
        [SHOAL_STORE_PRUNE] = "DELETE FROM invocations WHERE state >= 2 AND finished_ms < ?1",
    };
    const char *sql = SQL[op->kind];
    sqlite3_stmt *st;
    int rc;

    if (op->kind == SHOAL_STORE_RETRIES && op->value < 0)
        sql = "DELETE FROM retries WHERE name = ?1";
    /* The prepared-statement cache keeps this cheap: SQLite reuses its parse for equal text. */
    if ((rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL)) != SQLITE_OK)
        return db_errno(rc);
    switch (op->kind) {
    case SHOAL_STORE_INSERT:
        bind_text(st, 1, op->id);
        bind_text(st, 2, op->name);
        bind_text(st, 3, op->lane ? op->lane : "");
        bind_text(st, 4, op->trigger ? op->trigger : "");
        sqlite3_bind_int64(st, 5, (sqlite3_int64)op->created_ms);
        sqlite3_bind_blob(st, 6, op->meta ? op->meta : "", (int)op->meta_len, SQLITE_STATIC);
        sqlite3_bind_blob(st, 7, op->data ? op->data : "", (int)op->len, SQLITE_STATIC);
        break;
    case SHOAL_STORE_START:
        bind_text(st, 1, op->id);
        sqlite3_bind_int64(st, 2, op->value);
        break;
    case SHOAL_STORE_REQUEUE:
        bind_text(st, 1, op->id);
        sqlite3_bind_int64(st, 2, op->value);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->not_before_ms);
        bind_text(st, 4, op->error);
        break;
    case SHOAL_STORE_FINISH:
        bind_text(st, 1, op->id);
        sqlite3_bind_int(st, 2, op->state);
        sqlite3_bind_int64(st, 3, op->value);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)op->finished_ms);
        bind_text(st, 5, op->error);
        if (op->data)
            sqlite3_bind_blob64(st, 6, op->data, op->len, SQLITE_STATIC);
        bind_text(st, 7, op->headers);
        break;
    case SHOAL_STORE_TRIGGER_PUT:
        bind_text(st, 1, op->name);
        sqlite3_bind_text(st, 2, op->data, (int)op->len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)op->fired_ms);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)op->created_ms);
        break;
    case SHOAL_STORE_TRIGGER_DEL:
        bind_text(st, 1, op->name);
        break;
    case SHOAL_STORE_FIRED:
        bind_text(st, 1, op->name);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)op->fired_ms);
        break;
    case SHOAL_STORE_RETRIES:
        bind_text(st, 1, op->name);
        if (op->value >= 0)
            sqlite3_bind_int64(st, 2, op->value);
        break;
    case SHOAL_STORE_PRUNE:
        sqlite3_bind_int64(st, 1, (sqlite3_int64)op->finished_ms);
        break;
    }
    rc = sqlite3_step(st);
    op->changed = sqlite3_changes(db);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        SHOAL_ERROR("store: write failed: %s", sqlite3_errmsg(db));
        return db_errno(rc) ? db_errno(rc) : -EIO;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    shoal_store_t *s = arg;

    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->in_head == NULL && !s->stop)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->in_head == NULL && s->stop)
            break;
        /* Group commit: a lone op waits a moment for company (bounded by the window). */
        if (s->window_us > 0 && s->in_head == s->in_tail && !s->stop) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)s->window_us * 1000;
            ts.tv_sec += ts.tv_nsec / 1000000000;
            ts.tv_nsec %= 1000000000;
            pthread_cond_timedwait(&s->cond, &s->lock, &ts);
        }
        shoal_store_op_t *batch = s->in_head;
        s->in_head = s->in_tail = NULL;
        pthread_mutex_unlock(&s->lock);

        uint64_t n = 0, t0;
        int rc = sqlite3_exec(s->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        for (shoal_store_op_t *op = batch; op != NULL; op = op->next, n++)
            op->err = rc == SQLITE_OK ? run_op(s->wdb, op) : -EIO;
        t0 = shoal_util_now_ns();
        if (rc == SQLITE_OK &&
            (rc = sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK) {
            SHOAL_ERROR("store: commit failed: %s", sqlite3_errmsg(s->wdb));
            sqlite3_exec(s->wdb, "ROLLBACK", NULL, NULL, NULL);
            for (shoal_store_op_t *op = batch; op != NULL; op = op->next)
                op->err = -EIO;
        }
        uint64_t dt = shoal_util_now_ns() - t0;

        pthread_mutex_lock(&s->lock);
        s->stats.commits++;
        s->stats.ops += n;
        s->stats.commit_ns += dt;
        if (n > s->stats.max_batch)
            s->stats.max_batch = n;
        shoal_store_op_t *last = batch;
        while (last->next != NULL)
            last = last->next;
        if (s->done_tail)
            s->done_tail->next = batch;
        else
            s->done_head = batch;
        s->done_tail = last;
        uv_async_send(&s->async);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void on_async(uv_async_t *a)
{
    shoal_store_t *s = a->data;
    shoal_store_op_t *op, *next;

    shoal_store_read_t *r, *rnext;

    pthread_mutex_lock(&s->lock);
    op = s->done_head;
    s->done_head = s->done_tail = NULL;
    r = s->rdone_head;
    s->rdone_head = s->rdone_tail = NULL;
    pthread_mutex_unlock(&s->lock);
    for (; op != NULL; op = next) {
        next = op->next;
        s->pending--;
        op->cb(op, op->err);
    }
    for (; r != NULL; r = rnext) {
        rnext = r->next;
        s->reads--;
        r->cb(r, r->err);
    }
}

static int run_read(sqlite3 *db, shoal_store_read_t *r);

typedef struct {
    shoal_store_t *s;
    int i;
} reader_arg_t;

static void *reader_main(void *arg)
{
    shoal_store_t *s = ((reader_arg_t *)arg)->s;
    sqlite3 *db = s->readers_db[((reader_arg_t *)arg)->i];

    free(arg);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->rin_head == NULL && !s->rstop)
            pthread_cond_wait(&s->rcond, &s->lock);
        if (s->rin_head == NULL)
            break; /* stopping, and every read queued before the stop is done */
        shoal_store_read_t *r = s->rin_head;
        if ((s->rin_head = r->next) == NULL)
            s->rin_tail = NULL;
        pthread_mutex_unlock(&s->lock);
        r->next = NULL;
        r->err = run_read(db, r);
        pthread_mutex_lock(&s->lock);
        if (s->rdone_tail)
            s->rdone_tail->next = r;
        else
            s->rdone_head = r;
        s->rdone_tail = r;
        uv_async_send(&s->async);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- life cycle ---------------------------------------------------------------------------- */

int shoal_store_open(uv_loop_t *loop, const char *home, uint32_t window_us, shoal_store_t **out)
{
    char path[PATH_MAX];
    shoal_store_t *s;
    int err;

    if (snprintf(path, sizeof(path), "%s/events.db", home) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return -ENOMEM;
    s->loop = loop;
    s->window_us = window_us;
    if ((err = open_db(path, &s->wdb)) < 0)
        goto fail;
    if (sqlite3_exec(s->wdb, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        SHOAL_ERROR("store: schema: %s", sqlite3_errmsg(s->wdb));
        err = -EIO;
        goto fail;
    }
    if ((err = open_db(path, &s->rdb)) < 0)
        goto fail;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->rcond, NULL);
    if ((err = uv_async_init(loop, &s->async, on_async)) < 0)
        goto fail_sync;
    s->async.data = s;
    if ((err = -pthread_create(&s->thread, NULL, writer_main, s)) < 0) {
        uv_close((uv_handle_t *)&s->async, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        goto fail_sync;
    }
    /* One reader is enough for correctness (reads just queue longer); none is an error. */
    for (int i = 0; i < READERS; i++) {
        reader_arg_t *ra = malloc(sizeof(*ra));
        if (ra == NULL || open_db(path, &s->readers_db[i]) < 0) {
            free(ra);
            break;
        }
        ra->s = s;
        ra->i = i;
        if (pthread_create(&s->readers[i], NULL, reader_main, ra) != 0) {
            free(ra);
            sqlite3_close(s->readers_db[i]);
            s->readers_db[i] = NULL;
            break;
        }
        s->nreaders++;
    }
    if (s->nreaders == 0) {
        SHOAL_ERROR("store: cannot start a reader thread");
        shoal_store_close(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
fail_sync:
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->rcond);
fail:
    sqlite3_close(s->rdb);
    sqlite3_close(s->wdb);
    free(s);
    return err;
}

void shoal_store_close(shoal_store_t *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    s->rstop = 1;
    pthread_cond_signal(&s->cond);
    pthread_cond_broadcast(&s->rcond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->nreaders; i++)
        pthread_join(s->readers[i], NULL);
    on_async(&s->async); /* callbacks of the last batches and reads */
    if (!uv_is_closing((uv_handle_t *)&s->async))
        uv_close((uv_handle_t *)&s->async, NULL);
    uv_run(s->loop, UV_RUN_NOWAIT);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->rcond);
    for (int i = 0; i < s->nreaders; i++)
        sqlite3_close(s->readers_db[i]);
    sqlite3_close(s->rdb);
    sqlite3_close(s->wdb);
    free(s);
}

void shoal_store_submit(shoal_store_t *s, shoal_store_op_t *op)
{
    op->next = NULL;
    op->err = 0;
    op->changed = 0;
    s->pending++;
    pthread_mutex_lock(&s->lock);
    if (s->in_tail)
        s->in_tail->next = op;
    else
        s->in_head = op;
    s->in_tail = op;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void shoal_store_read(shoal_store_t *s, shoal_store_read_t *r)
{
    r->next = NULL;
    r->err = 0;
    s->reads++;
    pthread_mutex_lock(&s->lock);
    if (s->rin_tail)
        s->rin_tail->next = r;
    else
        s->rin_head = r;
    s->rin_tail = r;
    pthread_cond_signal(&s->rcond);
    pthread_mutex_unlock(&s->lock);
}

size_t shoal_store_pending(const shoal_store_t *s)
{
    return s->pending;
}

void shoal_store_stats(shoal_store_t *s, shoal_store_stats_t *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->stats;
    pthread_mutex_unlock(&s->lock);
}

/* ---- reads --------------------------------------------------------------------------------- */

#define INV_COLS                                                                                   \
    "id, function, lane, trigger, state, attempts, seq, created_ms, finished_ms, not_before_ms,"   \
    " error, meta"

static char *dup_col(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void copy_col(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

static int row_to_inv(sqlite3_stmt *st, shoal_store_inv_t *inv, int with_input)
{
    memset(inv, 0, sizeof(*inv));
    copy_col(st, 0, inv->id, sizeof(inv->id));
    copy_col(st, 1, inv->function, sizeof(inv->function));
    copy_col(st, 2, inv->lane, sizeof(inv->lane));
    copy_col(st, 3, inv->trigger, sizeof(inv->trigger));
    inv->state = sqlite3_column_int(st, 4);
    inv->attempts = (uint32_t)sqlite3_column_int64(st, 5);
    inv->seq = (uint64_t)sqlite3_column_int64(st, 6);
    inv->created_ms = (uint64_t)sqlite3_column_int64(st, 7);
    inv->finished_ms = (uint64_t)sqlite3_column_int64(st, 8);
    inv->not_before_ms = (uint64_t)sqlite3_column_int64(st, 9);
    inv->error = dup_col(st, 10);
    if (with_input) {
        const void *m = sqlite3_column_blob(st, 11);
        size_t ml = (size_t)sqlite3_column_bytes(st, 11);
        const void *in = sqlite3_column_blob(st, 12);
        size_t il = (size_t)sqlite3_column_bytes(st, 12);
        inv->meta = malloc(ml + 1);
        inv->input = malloc(il ? il : 1);
        if (inv->meta == NULL || inv->input == NULL) {
            shoal_store_inv_free(inv);
            return -ENOMEM;
        }
        if (ml)
            memcpy(inv->meta, m, ml);
        inv->meta[ml] = '\0';
        inv->meta_len = ml;
        if (il)
            memcpy(inv->input, in, il);
        inv->input_len = il;
    }
    return 0;
}

void shoal_store_inv_free(shoal_store_inv_t *inv)
{
    free(inv->error);
    free(inv->meta);
    free(inv->input);
    inv->error = inv->meta = NULL;
    inv->input = NULL;
}

static int get_db(sqlite3 *db, const char *id, int with_input, shoal_store_inv_t *out)
{
    sqlite3_stmt *st;
    int rc, err = -ENOENT;

    rc = sqlite3_prepare_v3(db, "SELECT " INV_COLS ", input FROM invocations WHERE id = ?1", -1,
                            SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW)
        err = row_to_inv(st, out, with_input);
    else if (rc != SQLITE_DONE)
        err = db_errno(rc);
    sqlite3_finalize(st);
    return err;
}

static int output_db(sqlite3 *db, const char *id, int *state, void **data, size_t *len,
                     char **headers)
{
    sqlite3_stmt *st;
    int rc, err = -ENOENT;

    *data = NULL;
    *len = 0;
    *headers = NULL;
    rc = sqlite3_prepare_v2(db, "SELECT state, output, headers FROM invocations WHERE id = ?1", -1,
                            &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        size_t n = (size_t)sqlite3_column_bytes(st, 1);
        *state = sqlite3_column_int(st, 0);
        *len = n;
        *data = malloc(n ? n : 1);
        *headers = dup_col(st, 2);
        if (*data == NULL) {
            err = -ENOMEM;
        } else {
            if (n)
                memcpy(*data, sqlite3_column_blob(st, 1), n);
            err = 0;
        }
    } else if (rc != SQLITE_DONE) {
        err = db_errno(rc);
    }
    sqlite3_finalize(st);
    return err;
}

void shoal_store_inv_json(const shoal_store_inv_t *inv, shoal_json_t *j)
{
    char t[32];

    shoal_json_lit(j, "{\"id\":");
    shoal_json_cstr(j, inv->id);
    shoal_json_lit(j, ",\"function\":");
    shoal_json_cstr(j, inv->function);
    shoal_json_lit(j, ",\"state\":");
    shoal_json_cstr(j, shoal_store_state_name(inv->state));
    shoal_json_lit(j, ",\"attempts\":");
    shoal_json_u64(j, inv->attempts);
    shoal_api_rfc3339(inv->created_ms, t);
    shoal_json_lit(j, ",\"created\":");
    shoal_json_cstr(j, t);
    shoal_json_lit(j, ",\"finished\":");
    if (inv->state >= SHOAL_INV_SUCCEEDED) {
        shoal_api_rfc3339(inv->finished_ms, t);
        shoal_json_cstr(j, t);
    } else {
        shoal_json_lit(j, "null");
    }
    shoal_json_lit(j, ",\"error\":");
    if (inv->error != NULL)
        shoal_json_cstr(j, inv->error);
    else
        shoal_json_lit(j, "null");
    if (inv->trigger[0] != '\0') {
        shoal_json_lit(j, ",\"trigger\":");
        shoal_json_cstr(j, inv->trigger);
    }
    shoal_json_lit(j, "}");
}

static int list_db(sqlite3 *db, const char *function, int state, uint32_t limit, shoal_json_t *j)
{
    sqlite3_stmt *st;
    int rc, first = 1, err = 0;

    rc = sqlite3_prepare_v2(db,
                            "SELECT " INV_COLS
                            " FROM invocations WHERE (?1 IS NULL OR function = ?1)"
                            " AND (?2 < 0 OR state = ?2) ORDER BY seq DESC LIMIT ?3",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    bind_text(st, 1, function);
    sqlite3_bind_int(st, 2, state);
    sqlite3_bind_int64(st, 3, limit);
    shoal_json_lit(j, "{\"invocations\":[");
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        shoal_store_inv_t inv;
        row_to_inv(st, &inv, 0);
        if (!first)
            shoal_json_lit(j, ",");
        first = 0;
        shoal_store_inv_json(&inv, j);
        shoal_store_inv_free(&inv);
    }
    if (rc != SQLITE_DONE)
        err = db_errno(rc);
    shoal_json_lit(j, "]}");
    sqlite3_finalize(st);
    return err;
}

int shoal_store_get(shoal_store_t *s, const char *id, int with_input, shoal_store_inv_t *out)
{
    return get_db(s->rdb, id, with_input, out);
}

int shoal_store_output(shoal_store_t *s, const char *id, int *state, void **data, size_t *len,
                       char **headers)
{
    return output_db(s->rdb, id, state, data, len, headers);
}

int shoal_store_list_json(shoal_store_t *s, const char *function, int state, uint32_t limit,
                          shoal_json_t *j)
{
    return list_db(s->rdb, function, state, limit, j);
}

/* On a reader thread. */
static int run_read(sqlite3 *db, shoal_store_read_t *r)
{
    shoal_store_inv_t inv;
    int err;

    switch (r->kind) {
    case SHOAL_STORE_READ_GET:
        if ((err = get_db(db, r->id, 0, &inv)) < 0)
            return err;
        shoal_store_inv_json(&inv, &r->json);
        shoal_store_inv_free(&inv);
        return shoal_json_error(&r->json);
    case SHOAL_STORE_READ_OUTPUT:
        return output_db(db, r->id, &r->state, &r->data, &r->len, &r->headers);
    case SHOAL_STORE_READ_LIST: {
        const char *fn = r->function[0] ? r->function : NULL;
        if ((err = list_db(db, fn, r->state, r->limit, &r->json)) < 0)
            return err;
        return shoal_json_error(&r->json);
    }
    }
    return -EINVAL;
}

static int pending_row(sqlite3_stmt *st, void *elem)
{
    return row_to_inv(st, elem, 1);
}

static void pending_release(void *elem)
{
    shoal_store_inv_free(elem);
}

static int step_err(void *ctx, int rc)
{
    (void)ctx;
    return db_errno(rc);
}

int shoal_store_load_pending(shoal_store_t *s, shoal_store_inv_t **out, size_t *n)
{
    shoal_sqlutil_rows_t how = {.size = sizeof(shoal_store_inv_t),
                                .first_cap = 64,
                                .row = pending_row,
                                .release = pending_release,
                                .step_err = step_err};
    sqlite3_stmt *st;
    void *v;
    int rc, err;

    rc = sqlite3_prepare_v2(s->rdb,
                            "SELECT " INV_COLS ", input FROM invocations WHERE state < 2"
                            " ORDER BY seq",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    err = shoal_sqlutil_collect(st, &how, &v, n);
    sqlite3_finalize(st);
    if (err == 0)
        *out = v;
    return err;
}

int shoal_store_load_triggers(shoal_store_t *s, shoal_store_trigger_fn fn, void *opaque)
{
    sqlite3_stmt *st;
    int rc;

    rc = sqlite3_prepare_v2(s->rdb,
                            "SELECT name, doc, fired_ms, created_ms FROM triggers"
                            " ORDER BY name",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(opaque, (const char *)sqlite3_column_text(st, 0),
           (const char *)sqlite3_column_text(st, 1), (uint64_t)sqlite3_column_int64(st, 2),
           (uint64_t)sqlite3_column_int64(st, 3));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

int shoal_store_load_retries(shoal_store_t *s, shoal_store_retries_fn fn, void *opaque)
{
    sqlite3_stmt *st;
    int rc;

    rc = sqlite3_prepare_v2(s->rdb, "SELECT name, n FROM retries", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return db_errno(rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        fn(opaque, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int(st, 1));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}
