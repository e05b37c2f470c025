/* db.c - the job database: open, migrate, transactions, statement cache
 *
 * Opening sets the connection up (WAL, busy timeout, foreign keys,
 * synchronous), then brings the schema to this binary's version: an empty
 * file gets schemas/schema.sql, an older one the missing numbered migrations,
 * each in its own BEGIN IMMEDIATE transaction that re-reads user_version
 * first, so two processes opening one old file at once migrate it once.
 *
 * Durability: synchronous=FULL by default. In WAL mode that is one fsync of
 * the WAL per commit; the runner commits results in groups (one transaction
 * per ~50 ms or N results), so the cost is small, and a completed job
 * survives a power cut, not only a process crash. NORMAL (RF_DB_SYNC_NORMAL)
 * keeps the database consistent but may drop the last commits on power loss;
 * it is for bulk inserts whose caller can simply run again.
 */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db_sql.h"

/* ---------------------------------------------------------------- types */

typedef struct cached_stmt {
    char *sql;              /* owned copy of the text, the cache key */
    sqlite3_stmt *stmt;
} cached_stmt_t;

struct rf_db {
    sqlite3 *handle;
    char *path;
    unsigned flags;
    int busy_timeout_ms;
    int64_t busy_since_ms;  /* monotonic, when the current lock wait began */
    int in_transaction;     /* between rf_db_begin and rf_db_commit/rollback */
    int last_error;         /* code of the last rf_db_error, for a lost transaction */
    cached_stmt_t *cache;   /* [n_cached], grown by doubling */
    int n_cached, cap_cached;
};

/* ---------------------------------------------------------------- helpers */

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int code_of(int rc, int system_errno)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_IOERR:
        return rc == SQLITE_IOERR_NOMEM ? -ENOMEM : -EIO;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_CANTOPEN:
        return system_errno > 0 ? -system_errno : -ENOENT;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return RF_EFORMAT;
    default:
        return RF_EDB;
    }
}

static const char *hint_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return " (another process holds the lock; raise the busy timeout or stop it)";
    case SQLITE_FULL:
        return " (free disk space and run again; what was committed is kept)";
    case SQLITE_READONLY:
        return " (the file or its directory is not writable; WAL needs both)";
    case SQLITE_CANTOPEN:
        return " (check that the directory exists and is writable)";
    default:
        return "";
    }
}

static int error_on(sqlite3 *handle, const char *path, int rc, const char *what,
                    rf_err_t *err)
{
    int system_errno = handle != NULL ? sqlite3_system_errno(handle) : 0;
    const char *msg = handle != NULL ? sqlite3_errmsg(handle) : sqlite3_errstr(rc);
    int code = code_of(rc, system_errno);
    return rf_err_set(err, code, "database %s: %s: %s (SQLite code %d)%s", path, what, msg,
                      rc, hint_of(rc));
}

int rf_db_error(rf_db_t *db, int rc, const char *what, rf_err_t *err)
{
    db->last_error = error_on(db->handle, db->path, rc, what, err);
    return db->last_error;
}

/* Read one integer from a one-row query (PRAGMA user_version, counts). */
static int query_int(rf_db_t *db, const char *sql, int64_t *value, rf_err_t *err)
{
    sqlite3_stmt *stmt;
    int rc = rf_db_prepare(db, sql, &stmt, err);
    if (rc != 0)
        return rc;
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        *value = sqlite3_column_int64(stmt, 0);
        rf_db_done(stmt);
        return 0;
    }
    rc = rf_db_error(db, step == SQLITE_DONE ? SQLITE_ERROR : step, sql, err);
    rf_db_done(stmt);
    return rc;
}

static int set_pragma(rf_db_t *db, const char *sql, rf_err_t *err)
{
    return rf_db_exec(db, sql, sql, err);
}

/* SQLite's own busy_timeout handler backs off to 100 ms sleeps, so a waiting
 * process keeps losing the lock to one that commits in a loop, and the
 * runner's ~50 ms group commits would wait for whole sleeps. Short sleeps
 * (1 to 5 ms) until the deadline keep the wait close to the lock's release. */
static int busy_wait(void *arg, int n_calls)
{
    rf_db_t *db = arg;
    int64_t now = monotonic_ms();
    if (n_calls == 0)
        db->busy_since_ms = now;
    if (now - db->busy_since_ms >= db->busy_timeout_ms)
        return 0;
    sleep_ms(n_calls < 8 ? 1 : n_calls < 32 ? 2 : 5);
    return 1;
}

/* ---------------------------------------------------------------- statements */

int rf_db_prepare(rf_db_t *db, const char *sql, sqlite3_stmt **stmt, rf_err_t *err)
{
    *stmt = NULL;
    for (int i = 0; i < db->n_cached; i++) {
        if (strcmp(db->cache[i].sql, sql) == 0) {
            sqlite3_reset(db->cache[i].stmt);
            sqlite3_clear_bindings(db->cache[i].stmt);
            *stmt = db->cache[i].stmt;
            return 0;
        }
    }
    if (db->n_cached == db->cap_cached) {
        int cap = db->cap_cached ? db->cap_cached * 2 : 16;
        cached_stmt_t *grown = realloc(db->cache, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return rf_err_set(err, -ENOMEM, "database %s: prepare: out of memory", db->path);
        db->cache = grown;
        db->cap_cached = cap;
    }
    char *copy = strdup(sql);
    if (copy == NULL)
        return rf_err_set(err, -ENOMEM, "database %s: prepare: out of memory", db->path);
    sqlite3_stmt *prepared = NULL;
    int rc = sqlite3_prepare_v3(db->handle, sql, -1, SQLITE_PREPARE_PERSISTENT, &prepared, NULL);
    if (rc != SQLITE_OK) {
        free(copy);
        char what[160];
        snprintf(what, sizeof what, "prepare \"%.120s\"", sql);
        return rf_db_error(db, rc, what, err);
    }
    db->cache[db->n_cached++] = (cached_stmt_t){.sql = copy, .stmt = prepared};
    *stmt = prepared;
    return 0;
}

void rf_db_done(sqlite3_stmt *stmt)
{
    if (stmt != NULL) {
        sqlite3_reset(stmt);
        sqlite3_clear_bindings(stmt);
    }
}

int rf_db_exec(rf_db_t *db, const char *sql, const char *what, rf_err_t *err)
{
    int rc = sqlite3_exec(db->handle, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return rf_db_error(db, rc, what, err);
    return 0;
}

/* ---------------------------------------------------------------- transactions */

int rf_db_in_transaction(rf_db_t *db)
{
    return db->in_transaction;
}

/* SQLite rolls a whole transaction back by itself on some errors (disk full,
 * I/O, out of memory); the caller still thinks it is open. */
static int transaction_lost(rf_db_t *db)
{
    return db->in_transaction && sqlite3_get_autocommit(db->handle);
}

int rf_db_check_transaction(rf_db_t *db, rf_err_t *err)
{
    if (!transaction_lost(db))
        return 0;
    return rf_err_set(err, db->last_error != 0 ? db->last_error : RF_EDB,
                      "database %s: the transaction was rolled back by SQLite after an earlier "
                      "error (%s); nothing of it was stored",
                      db->path, rf_strerror(db->last_error));
}

int rf_db_begin(rf_db_t *db, rf_err_t *err)
{
    if (rf_db_in_transaction(db))
        return rf_err_set(err, RF_EDB, "database %s: begin: a transaction is already open",
                          db->path);
    /* The busy handler already waits up to the timeout for the lock; SQLite
     * returns BUSY at once in a few cases (WAL recovery by another
     * connection), so keep trying until the same deadline. */
    int64_t deadline = monotonic_ms() + db->busy_timeout_ms;
    int pause_ms = 1;
    for (;;) {
        int rc = sqlite3_exec(db->handle, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc == SQLITE_OK) {
            db->in_transaction = 1;
            db->last_error = 0;
            return 0;
        }
        if ((rc & 0xff) != SQLITE_BUSY || monotonic_ms() >= deadline)
            return rf_db_error(db, rc, "BEGIN IMMEDIATE", err);
        sleep_ms(pause_ms);
        if (pause_ms < 50)
            pause_ms *= 2;
    }
}

int rf_db_commit(rf_db_t *db, rf_err_t *err)
{
    if (!db->in_transaction)
        return rf_err_set(err, RF_EDB, "database %s: COMMIT: no transaction is open", db->path);
    int code = rf_db_check_transaction(db, err);
    if (code != 0) {
        db->in_transaction = 0;
        return code;
    }
    int rc = sqlite3_exec(db->handle, "COMMIT", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        db->in_transaction = 0;
        return 0;
    }
    code = rf_db_error(db, rc, "COMMIT", err);
    rf_db_rollback(db);
    return code;
}

int rf_db_rollback(rf_db_t *db)
{
    if (db == NULL)
        return 0;
    db->in_transaction = 0;
    if (sqlite3_get_autocommit(db->handle))
        return 0;
    /* Statements still stepping would make ROLLBACK fail. */
    for (int i = 0; i < db->n_cached; i++)
        sqlite3_reset(db->cache[i].stmt);
    int rc = sqlite3_exec(db->handle, "ROLLBACK", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : code_of(rc, 0);
}

/* ---------------------------------------------------------------- schema */

static const rf__migration_t *find_migration(const rf__migration_t *migrations, int n,
                                             int version)
{
    for (int i = 0; i < n; i++)
        if (migrations[i].version == version)
            return &migrations[i];
    return NULL;
}

int rf__db_upgrade(rf_db_t *db, const rf__migration_t *migrations, int n, int target,
                   rf_err_t *err)
{
    int rc;
    for (;;) {
        rc = rf_db_begin(db, err);
        if (rc != 0)
            return rc;
        int64_t version = 0, n_objects = 0;
        rc = query_int(db, "PRAGMA user_version", &version, err);
        if (rc != 0)
            goto fail;
        if (version == target)
            return rf_db_commit(db, err);
        if (version > target) {
            rc = rf_err_set(err, RF_EVERSION,
                            "database %s: schema version %lld is newer than this rocmforge "
                            "(it knows versions up to %d): use a newer rocmforge",
                            db->path, (long long)version, target);
            goto fail;
        }
        if (version == 0) {
            rc = query_int(db, "SELECT count(*) FROM sqlite_schema", &n_objects, err);
            if (rc != 0)
                goto fail;
            if (n_objects > 0) {
                rc = rf_err_set(err, RF_EFORMAT,
                                "database %s: has %lld tables or indexes but user_version 0: "
                                "not a rocmforge job database",
                                db->path, (long long)n_objects);
                goto fail;
            }
            rc = rf_db_exec(db, rf__schema_sql, "create schema (schemas/schema.sql)", err);
            if (rc != 0)
                goto fail;
            rc = query_int(db, "PRAGMA user_version", &version, err);
            if (rc != 0)
                goto fail;
            if (version != target) {
                rc = rf_err_set(err, RF_EVERSION,
                                "database %s: schema.sql set user_version %lld, expected %d "
                                "(a build problem)",
                                db->path, (long long)version, target);
                goto fail;
            }
        } else {
            const rf__migration_t *m = find_migration(migrations, n, (int)version + 1);
            if (m == NULL) {
                rc = rf_err_set(err, RF_EVERSION,
                                "database %s: schema version %lld and no migration to %lld "
                                "in this rocmforge (a build problem)",
                                db->path, (long long)version, (long long)version + 1);
                goto fail;
            }
            char what[160], set_version[64];
            snprintf(what, sizeof what, "migration %s", m->name);
            rc = rf_db_exec(db, m->sql, what, err);
            if (rc != 0)
                goto fail;
            snprintf(set_version, sizeof set_version, "PRAGMA user_version = %d", m->version);
            rc = rf_db_exec(db, set_version, what, err);
            if (rc != 0)
                goto fail;
        }
        rc = rf_db_commit(db, err);
        if (rc != 0)
            return rc;
    }
fail:
    rf_db_rollback(db);
    return rc;
}

/* ---------------------------------------------------------------- open/close */

int rf_db_schema_version(void)
{
    return rf__schema_version;
}

int rf_db_set_busy_timeout(rf_db_t *db, int busy_timeout_ms)
{
    if (busy_timeout_ms < 0)
        return RF_ERANGE;
    db->busy_timeout_ms = busy_timeout_ms;
    return sqlite3_busy_handler(db->handle, busy_wait, db) == SQLITE_OK ? 0 : RF_EDB;
}

sqlite3 *rf_db_handle(rf_db_t *db)
{
    return db->handle;
}

const char *rf_db_path(const rf_db_t *db)
{
    return db->path;
}

static int configure(rf_db_t *db, rf_err_t *err)
{
    sqlite3_extended_result_codes(db->handle, 1);
    int rc = rf_db_set_busy_timeout(db, RF_DB_BUSY_TIMEOUT_MS);
    if (rc != 0)
        return rf_db_error(db, SQLITE_ERROR, "set busy timeout", err);
    rc = set_pragma(db, "PRAGMA foreign_keys = ON", err);
    if (rc != 0)
        return rc;
    if (db->flags & RF_DB_READONLY)
        return 0;
    /* journal_mode answers with the mode in force; anything but "wal" (a
     * file system without shared memory, say) is an error, since the
     * runner's concurrency relies on readers never blocking the writer. */
    /* Switching a new file to WAL needs an exclusive lock, and SQLite
     * answers SQLITE_BUSY at once (no busy handler) when another process
     * opening the same new file holds a lock: retry until the deadline. */
    sqlite3_stmt *stmt;
    rc = rf_db_prepare(db, "PRAGMA journal_mode = WAL", &stmt, err);
    if (rc != 0)
        return rc;
    int step = sqlite3_step(stmt);
    int64_t deadline = monotonic_ms() + db->busy_timeout_ms;
    for (int pause_ms = 1; (step & 0xff) == SQLITE_BUSY && monotonic_ms() < deadline;) {
        sqlite3_reset(stmt);
        sleep_ms(pause_ms);
        if (pause_ms < 50)
            pause_ms *= 2;
        step = sqlite3_step(stmt);
    }
    if (step != SQLITE_ROW) {
        rc = rf_db_error(db, step, "PRAGMA journal_mode = WAL", err);
        rf_db_done(stmt);
        return rc;
    }
    const char *mode = (const char *)sqlite3_column_text(stmt, 0);
    int is_wal = mode != NULL && strcmp(mode, "wal") == 0;
    rf_db_done(stmt);
    if (!is_wal)
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "database %s: PRAGMA journal_mode = WAL: the journal mode stays \"%s\" "
                          "(WAL needs a local file system with shared memory)",
                          db->path, mode != NULL ? mode : "?");
    return set_pragma(db,
                      (db->flags & RF_DB_SYNC_NORMAL) ? "PRAGMA synchronous = NORMAL"
                                                      : "PRAGMA synchronous = FULL",
                      err);
}

int rf_db_open(rf_db_t **out, const char *path, unsigned flags, rf_err_t *err)
{
    *out = NULL;
    rf_db_t *db = calloc(1, sizeof *db);
    if (db == NULL || (db->path = strdup(path)) == NULL) {
        free(db);
        return rf_err_set(err, -ENOMEM, "database %s: open: out of memory", path);
    }
    db->flags = flags;
    int open_flags = (flags & RF_DB_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if ((flags & RF_DB_CREATE) && !(flags & RF_DB_READONLY))
        open_flags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &db->handle, open_flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = error_on(db->handle, path, rc, "open", err);
        rf_db_close(db);
        return rc;
    }
    rc = configure(db, err);
    if (rc == 0 && (flags & RF_DB_READONLY)) {
        int64_t version = 0;
        rc = query_int(db, "PRAGMA user_version", &version, err);
        if (rc == 0 && version != rf__schema_version)
            rc = rf_err_set(err, RF_EVERSION,
                            "database %s: schema version %lld, this rocmforge reads %d: %s",
                            path, (long long)version, rf__schema_version,
                            version > rf__schema_version
                                ? "use a newer rocmforge"
                                : "open it once read-write to migrate it");
    } else if (rc == 0) {
        /* Skip the write lock when the version is already right, so workers
         * opening a busy database do not queue behind its writers. */
        int64_t version = -1;
        rc = query_int(db, "PRAGMA user_version", &version, err);
        if (rc == 0 && version != rf__schema_version)
            rc = rf__db_upgrade(db, rf__migrations, rf__n_migrations, rf__schema_version, err);
    }
    if (rc != 0) {
        rf_db_close(db);
        return rc;
    }
    *out = db;
    return 0;
}

int rf_db_close(rf_db_t *db)
{
    if (db == NULL)
        return 0;
    rf_db_rollback(db);
    for (int i = 0; i < db->n_cached; i++) {
        sqlite3_finalize(db->cache[i].stmt);
        free(db->cache[i].sql);
    }
    free(db->cache);
    int rc = sqlite3_close_v2(db->handle);
    free(db->path);
    free(db);
    return rc == SQLITE_OK ? 0 : RF_EDB;
}
