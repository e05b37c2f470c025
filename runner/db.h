/* db.h - the job database: open, migrate, transactions, statement cache
 *
 * One rf_db_t is one SQLite connection to a job database (schemas/schema.sql)
 * in WAL mode. Opening creates an empty database from the compiled-in schema,
 * brings an older one up to date with the numbered migrations (one
 * transaction each), and refuses one written by a newer rocmforge. Only one
 * thread may use an rf_db_t (the loop thread); other processes may open the
 * same file at the same time.
 *
 * Errors: every function returns 0 or a negative code and, where it takes an
 * rf_err_t, a message naming the SQL operation, SQLite's message and the
 * database path. SQLite result codes map to:
 *   -EBUSY    the database stayed locked past the busy timeout
 *   -ENOSPC   disk (or max_page_count) full
 *   -EIO      I/O error
 *   -EROFS    read-only file or directory
 *   -ENOENT / -EACCES / -ENOTDIR  could not open the file (from the OS)
 *   -ENOMEM   out of memory
 *   RF_EFORMAT  not a database, corrupt, or not a rocmforge job database
 *   RF_EVERSION database newer than this binary
 *   RF_EDB    any other SQLite error (constraint, misuse, ...)
 * A failed write leaves what was committed before it untouched: the open
 * transaction is rolled back, never partly applied.
 */
#ifndef RF_DB_H
#define RF_DB_H

#include <sqlite3.h>
#include <stdint.h>

#include "error.h"

typedef struct rf_db rf_db_t;

/* Flags for rf_db_open. */
enum {
    RF_DB_CREATE = 1u << 0,      /* create the file if it does not exist */
    RF_DB_READONLY = 1u << 1,    /* open read-only; no schema changes (status, export) */
    RF_DB_SYNC_NORMAL = 1u << 2, /* synchronous=NORMAL instead of FULL: faster commits,
                                    but a power cut may lose the last commits
                                    (never a process crash); for bulk submit */
};

enum { RF_DB_BUSY_TIMEOUT_MS = 10000 };   /* default lock wait */

/* Open (and with RF_DB_CREATE create) the job database at path and bring its
 * schema up to date. On success *db is set; on failure *db is NULL, nothing
 * was changed in the file beyond what a completed migration committed, and
 * err says what happened. Returns 0 or a code listed above; RF_EVERSION when
 * the file's user_version is newer than this binary's schema. */
int rf_db_open(rf_db_t **db, const char *path, unsigned flags, rf_err_t *err);

/* Close and free (NULL is fine). An open transaction is rolled back. */
int rf_db_close(rf_db_t *db);

/* Lock wait for this connection (ms, >= 0), default RF_DB_BUSY_TIMEOUT_MS. */
int rf_db_set_busy_timeout(rf_db_t *db, int busy_timeout_ms);

/* The connection (borrowed), the path it was opened with, and the schema
 * version this binary creates. */
sqlite3 *rf_db_handle(rf_db_t *db);
const char *rf_db_path(const rf_db_t *db);
int rf_db_schema_version(void);

/* BEGIN IMMEDIATE: take the write lock now, so a read-then-write cannot
 * fail half way with SQLITE_BUSY. Waits up to the busy timeout, retrying
 * when SQLite gives up early. -EBUSY after that. Transactions do not nest:
 * beginning inside one is RF_EDB. */
int rf_db_begin(rf_db_t *db, rf_err_t *err);

/* COMMIT. On failure the transaction is rolled back (nothing of it is
 * stored) and the error returned. */
int rf_db_commit(rf_db_t *db, rf_err_t *err);

/* ROLLBACK if a transaction is open; always safe. */
int rf_db_rollback(rf_db_t *db);

/* 1 between rf_db_begin and rf_db_commit/rf_db_rollback, else 0. */
int rf_db_in_transaction(rf_db_t *db);

/* 0 when no transaction is open or the open one is intact; the code of the
 * error that made SQLite roll it back by itself (disk full, I/O), with a
 * message, when it is gone. rf_db_commit reports the same: a transaction is
 * never committed in part, and later writes never fall back to autocommit. */
int rf_db_check_transaction(rf_db_t *db, rf_err_t *err);

/* A cached prepared statement for sql (compared by content; prepared on first
 * use). The statement is reset with its bindings cleared; the caller binds,
 * steps, and calls rf_db_done() when finished with it (a statement left
 * unreset holds a read snapshot open). Owned by db: never finalize it. */
int rf_db_prepare(rf_db_t *db, const char *sql, sqlite3_stmt **stmt, rf_err_t *err);
void rf_db_done(sqlite3_stmt *stmt);

/* Run one or more statements without results (sqlite3_exec). what names the
 * operation in the message ("create schema"). */
int rf_db_exec(rf_db_t *db, const char *sql, const char *what, rf_err_t *err);

/* Turn SQLite result rc into a code from the list above and record
 * "database PATH: WHAT: sqlite message (code N)" in err. */
int rf_db_error(rf_db_t *db, int rc, const char *what, rf_err_t *err);

#endif /* RF_DB_H */
