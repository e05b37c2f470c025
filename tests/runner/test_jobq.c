/* test_jobq.c - the job database and its queue: schema, claims, leases, fencing
 *
 * Jobs are inserted with plain SQL (as `rocmforge submit` would); the clock is
 * the now_ms argument, so lease expiry needs no sleeping.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "db_sql.h"
#include "jobq.h"

/* ---------------------------------------------------------------- helpers */

static const char *db_path(const char *name)
{
    static char buf[512];
    char side[600];
    snprintf(buf, sizeof buf, "%s/jobq_%d_%s.db", RF_TMPDIR, (int)getpid(), name);
    unlink(buf);
    snprintf(side, sizeof side, "%s-wal", buf);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", buf);
    unlink(side);
    return buf;
}

static rf_db_t *open_new(const char *name)
{
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    int rc = rf_db_open(&db, db_path(name), RF_DB_CREATE, &err);
    cr_assert_eq(rc, 0, "rf_db_open: %d %s", rc, err.msg);
    return db;
}

static void exec_sql(rf_db_t *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(rf_db_handle(db), sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static int64_t query_i64(rf_db_t *db, const char *sql)
{
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(rf_db_handle(db), sql, -1, &stmt, NULL), SQLITE_OK, "%s: %s",
                 sql, sqlite3_errmsg(rf_db_handle(db)));
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(stmt, 0);
    sqlite3_finalize(stmt);
    return v;
}

/* The text of a one-row query, copied into a static buffer ("NULL" for NULL). */
static const char *query_text(rf_db_t *db, const char *sql)
{
    static char buf[1024];
    sqlite3_stmt *stmt;
    cr_assert_eq(sqlite3_prepare_v2(rf_db_handle(db), sql, -1, &stmt, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(stmt), SQLITE_ROW, "%s", sql);
    const unsigned char *t = sqlite3_column_text(stmt, 0);
    snprintf(buf, sizeof buf, "%s", t ? (const char *)t : "NULL");
    sqlite3_finalize(stmt);
    return buf;
}

static int64_t add_run(rf_db_t *db, const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "INSERT INTO runs (name, created_ms) VALUES ('%s', 0)", name);
    exec_sql(db, sql);
    return sqlite3_last_insert_rowid(rf_db_handle(db));
}

static int64_t add_job(rf_db_t *db, int64_t run_id, int64_t priority, int64_t not_before_ms,
                       int64_t max_attempts)
{
    static int serial;
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO jobs (run_id, custom_id, kind, input, params, input_hash, priority, "
             "  not_before_ms, max_attempts, created_ms) "
             "VALUES (%lld, 'c%d', 'completion', '{\"prompt\":\"hi\"}', '{}', 'h', %lld, %lld, "
             "  %lld, 0)",
             (long long)run_id, ++serial, (long long)priority, (long long)not_before_ms,
             (long long)max_attempts);
    exec_sql(db, sql);
    return sqlite3_last_insert_rowid(rf_db_handle(db));
}

static void add_jobs(rf_db_t *db, int64_t run_id, int n)
{
    exec_sql(db, "BEGIN");
    for (int i = 0; i < n; i++)
        add_job(db, run_id, 0, 0, 3);
    exec_sql(db, "COMMIT");
}

static size_t claim(rf_db_t *db, const char *worker, int max_jobs, int64_t lease_ms,
                    int64_t now_ms, rf_jobq_job_t *out)
{
    size_t n = 0;
    rf_err_t err = {0};
    int rc = rf_jobq_claim(db, worker, max_jobs, lease_ms, now_ms, out, &n, &err);
    cr_assert_eq(rc, 0, "claim: %d %s", rc, err.msg);
    return n;
}

static void free_jobs(rf_jobq_job_t *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rf_jobq_job_free(&jobs[i]);
}

static rf_jobq_result_t a_result(const char *text)
{
    return (rf_jobq_result_t){.sample = 0, .output = text, .output_len = strlen(text),
                              .output_bytes = (int64_t)strlen(text), .finish_reason = "stop",
                              .prompt_tokens = 3, .completion_tokens = 5, .created_ms = 1};
}

static int complete(rf_db_t *db, const char *worker, const rf_jobq_job_t *job, const char *text,
                    rf_err_t *err)
{
    rf_jobq_result_t r = a_result(text);
    rf_jobq_metrics_t m = {.queue_ms = 1, .ttft_ms = 2, .prefill_ms = -1, .decode_ms = 4,
                           .e2e_ms = 5, .prompt_tokens = 3, .completion_tokens = 5,
                           .decode_tokens_per_s = 100.0, .mean_batch_size = -1};
    rf_jobq_completion_t c = {.job_id = job->job_id, .attempt = job->attempt, .results = &r,
                              .n_results = 1, .metrics = &m};
    return rf_jobq_complete(db, worker, &c, 100, err);
}

static const char *job_state(rf_db_t *db, int64_t job_id)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT state FROM jobs WHERE job_id = %lld", (long long)job_id);
    return query_text(db, sql);
}

static int64_t job_i64(rf_db_t *db, int64_t job_id, const char *column)
{
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT %s FROM jobs WHERE job_id = %lld", column,
             (long long)job_id);
    return query_i64(db, sql);
}

/* ---------------------------------------------------------------- schema */

Test(jobq, create_sets_schema_wal_and_version)
{
    rf_db_t *db = open_new("create");
    cr_assert_eq(query_i64(db, "PRAGMA user_version"), rf_db_schema_version());
    cr_assert_eq(rf_db_schema_version(), rf__schema_version);
    cr_assert_str_eq(query_text(db, "PRAGMA journal_mode"), "wal");
    cr_assert_eq(query_i64(db, "PRAGMA foreign_keys"), 1);
    cr_assert_eq(query_i64(db, "PRAGMA synchronous"), 2, "FULL by default");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                               "('runs','jobs','results','job_metrics','workers','zstd_dicts')"),
                 6);
    rf_db_close(db);

    /* Reopening leaves it as it is; foreign keys are enforced. */
    rf_err_t err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/jobq_%d_create.db", RF_TMPDIR, (int)getpid());
    cr_assert_eq(rf_db_open(&db, path, 0, &err), 0, "%s", err.msg);
    cr_assert_neq(sqlite3_exec(rf_db_handle(db),
                               "INSERT INTO jobs (run_id, custom_id, kind, input, params, "
                               "input_hash, created_ms) VALUES (999, 'x', 'chat', '{}', '{}', "
                               "'h', 0)",
                               NULL, NULL, NULL),
                  SQLITE_OK, "a job of a missing run must be refused");
    rf_db_close(db);
}

Test(jobq, missing_file_without_create_is_a_clear_error)
{
    rf_db_t *db = (rf_db_t *)1;
    rf_err_t err = {0};
    const char *path = db_path("missing");
    int rc = rf_db_open(&db, path, 0, &err);
    cr_assert_lt(rc, 0);
    cr_assert_null(db);
    cr_assert_not_null(strstr(err.msg, path), "message names the path: %s", err.msg);
    cr_assert_not_null(strstr(err.msg, "open"), "%s", err.msg);
}

Test(jobq, empty_version_0_file_gets_the_schema)
{
    const char *path = db_path("empty");
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fclose(f);
    rf_db_t *db;
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, path, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(db, "PRAGMA user_version"), rf_db_schema_version());
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'jobs'"), 1);
    rf_db_close(db);
}

Test(jobq, lock_held_past_busy_timeout_is_ebusy)
{
    rf_db_t *holder = open_new("busy");
    rf_db_t *waiter;
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&waiter, rf_db_path(holder), 0, &err), 0, "%s", err.msg);
    cr_assert_eq(rf_db_set_busy_timeout(waiter, 50), 0);
    cr_assert_eq(rf_db_begin(holder, &err), 0, "%s", err.msg);
    rf_jobq_job_t jobs[1];
    size_t n = 0;
    int rc = rf_jobq_claim(waiter, "W", 1, 1000, 0, jobs, &n, &err);
    cr_assert_eq(rc, -EBUSY, "rc %d: %s", rc, err.msg);
    cr_assert_not_null(strstr(err.msg, "BEGIN IMMEDIATE"), "%s", err.msg);
    cr_assert_not(rf_db_in_transaction(waiter));
    rf_db_rollback(holder);
    rf_err_clear(&err);
    cr_assert_eq(rf_jobq_claim(waiter, "W", 1, 1000, 0, jobs, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 0);
    rf_db_close(waiter);
    rf_db_close(holder);
}

Test(jobq, refuses_database_from_newer_binary)
{
    rf_db_t *db = open_new("newer");
    char path[512];
    snprintf(path, sizeof path, "%s", rf_db_path(db));
    exec_sql(db, "PRAGMA user_version = 99");
    rf_db_close(db);
    rf_err_t err = {0};
    int rc = rf_db_open(&db, path, RF_DB_CREATE, &err);
    cr_assert_eq(rc, RF_EVERSION, "%d %s", rc, err.msg);
    cr_assert_null(db);
    cr_assert_not_null(strstr(err.msg, "99"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "newer"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
}

Test(jobq, refuses_foreign_database_with_tables_and_no_version)
{
    const char *path = db_path("foreign");
    sqlite3 *raw;
    cr_assert_eq(sqlite3_open(path, &raw), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(raw, "CREATE TABLE mine (x INTEGER)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(raw);
    rf_db_t *db;
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, path, RF_DB_CREATE, &err), RF_EFORMAT, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "not a rocmforge job database"), "%s", err.msg);
}

Test(jobq, migrations_apply_in_order_one_transaction_each)
{
    rf_db_t *db = open_new("migrate");
    int v = rf__schema_version;
    rf__migration_t steps[] = {
        {v + 1, "0002_extra.sql", "CREATE TABLE extra (x INTEGER) STRICT;"},
        {v + 2, "0003_more.sql", "ALTER TABLE extra ADD COLUMN y TEXT;"},
    };
    rf_err_t err = {0};
    cr_assert_eq(rf__db_upgrade(db, steps, 2, v + 2, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(db, "PRAGMA user_version"), v + 2);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM pragma_table_info('extra')"), 2);

    /* A failing migration leaves nothing of itself and the version as it was. */
    rf__migration_t bad[] = {
        {v + 3, "0004_bad.sql", "CREATE TABLE half (x INTEGER) STRICT; SELECT no_such_function();"},
    };
    rf_err_clear(&err);
    int rc = rf__db_upgrade(db, bad, 1, v + 3, &err);
    cr_assert_lt(rc, 0);
    cr_assert_not_null(strstr(err.msg, "0004_bad.sql"), "%s", err.msg);
    cr_assert_eq(query_i64(db, "PRAGMA user_version"), v + 2);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'half'"), 0);

    /* A gap in the list is an error, not a silent skip. */
    rf_err_clear(&err);
    rc = rf__db_upgrade(db, steps, 2, v + 5, &err);
    cr_assert_eq(rc, RF_EVERSION, "%s", err.msg);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- claims */

Test(jobq, claims_by_priority_then_age)
{
    rf_db_t *db = open_new("order");
    int64_t run = add_run(db, "r");
    int64_t a = add_job(db, run, 0, 0, 3);
    int64_t b = add_job(db, run, 5, 0, 3);
    int64_t c = add_job(db, run, 0, 0, 3);
    int64_t d = add_job(db, run, 5, 0, 3);
    int64_t e = add_job(db, run, -1, 0, 3);
    int64_t want[] = {b, d, a, c, e};
    rf_jobq_job_t jobs[3];
    size_t got = 0;
    for (int round = 0; round < 3; round++) {
        size_t n = claim(db, "w", 2, 1000, 10, jobs);
        for (size_t i = 0; i < n; i++) {
            cr_assert_eq(jobs[i].job_id, want[got], "claim %zu: job %lld, want %lld", got,
                         (long long)jobs[i].job_id, (long long)want[got]);
            cr_assert_eq(jobs[i].attempt, 1);
            cr_assert_str_eq(jobs[i].input, "{\"prompt\":\"hi\"}");
            cr_assert_eq(jobs[i].lease_expires_ms, 1010);
            got++;
        }
        free_jobs(jobs, n);
    }
    cr_assert_eq(got, 5);
    cr_assert_eq(claim(db, "w", 2, 1000, 10, jobs), 0);
    cr_assert_str_eq(job_state(db, a), "running");
    cr_assert_eq(job_i64(db, a, "claimed_ms"), 10);
    rf_db_close(db);
}

Test(jobq, not_before_is_respected)
{
    rf_db_t *db = open_new("not_before");
    int64_t run = add_run(db, "r");
    int64_t later = add_job(db, run, 9, 500, 3);
    int64_t now = add_job(db, run, 0, 0, 3);
    rf_jobq_job_t jobs[4];
    cr_assert_eq(claim(db, "w", 4, 1000, 100, jobs), 1);
    cr_assert_eq(jobs[0].job_id, now);
    free_jobs(jobs, 1);
    cr_assert_eq(claim(db, "w", 4, 1000, 499, jobs), 0);
    cr_assert_eq(claim(db, "w", 4, 1000, 500, jobs), 1);
    cr_assert_eq(jobs[0].job_id, later);
    free_jobs(jobs, 1);
    rf_db_close(db);
}

Test(jobq, expired_lease_is_reclaimed_and_old_owner_is_fenced)
{
    rf_db_t *db = open_new("reclaim");
    int64_t run = add_run(db, "r");
    int64_t id = add_job(db, run, 0, 0, 3);
    rf_jobq_job_t a[1], b[1];
    cr_assert_eq(claim(db, "A", 1, 1000, 0, a), 1);
    cr_assert_eq(claim(db, "B", 1, 1000, 1000, b), 0, "not expired at exactly the deadline");
    cr_assert_eq(claim(db, "B", 1, 1000, 1001, b), 1);
    cr_assert_eq(b[0].job_id, id);
    cr_assert_eq(b[0].attempt, 2);
    cr_assert_eq(b[0].claimed_ms, 0, "claimed_ms keeps the first claim");

    /* B checkpoints; A, which lost the lease, can change nothing. */
    rf_err_t err = {0};
    cr_assert_eq(rf_jobq_checkpoint(db, "B", id, b[0].attempt, "tok", 3, &err), 0, "%s", err.msg);
    cr_assert_eq(complete(db, "A", &a[0], "stale", &err), RF_JOBQ_LOST, "%s", err.msg);
    cr_assert_eq(rf_jobq_checkpoint(db, "A", id, a[0].attempt, "xx", 2, &err), RF_JOBQ_LOST);
    cr_assert_eq(rf_jobq_fail(db, "A", id, a[0].attempt, "boom", 0, 1100, &err), RF_JOBQ_LOST);
    int64_t n = -1;
    cr_assert_eq(rf_jobq_heartbeat(db, "A", 1, 1000, 1100, &n, &err), RF_JOBQ_LOST);
    cr_assert_eq(n, 0);
    cr_assert_str_eq(job_state(db, id), "running");
    cr_assert_str_eq(query_text(db, "SELECT lease_owner FROM jobs"), "B");
    cr_assert_eq(job_i64(db, id, "lease_expires_ms"), 2001);
    cr_assert_eq(job_i64(db, id, "attempts"), 2);
    cr_assert_str_eq(query_text(db, "SELECT CAST(checkpoint AS TEXT) FROM jobs"), "tok");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results"), 0);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM job_metrics"), 0);

    /* The same worker id with the old attempt is fenced too. */
    rf_jobq_job_t stale = b[0];
    stale.attempt = 1;
    cr_assert_eq(complete(db, "B", &stale, "stale", &err), RF_JOBQ_LOST);

    /* B's heartbeat keeps it, and B completes it. */
    cr_assert_eq(rf_jobq_heartbeat(db, "B", 1, 1000, 1500, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_eq(claim(db, "C", 1, 1000, 2200, a + 0), 0, "heartbeat extended the lease");
    cr_assert_eq(complete(db, "B", &b[0], "fresh", &err), 0, "%s", err.msg);
    cr_assert_str_eq(job_state(db, id), "done");
    cr_assert_str_eq(query_text(db, "SELECT CAST(output AS TEXT) FROM results"), "fresh");
    cr_assert_str_eq(query_text(db, "SELECT worker_id FROM job_metrics"), "B");
    cr_assert_str_eq(query_text(db, "SELECT coalesce(prefill_ms, 'NULL') FROM job_metrics"),
                     "NULL");
    cr_assert_eq(query_i64(db, "SELECT checkpoint IS NULL AND lease_owner IS NULL FROM jobs"), 1);
    free_jobs(a, 1);
    free_jobs(b, 1);
    rf_db_close(db);
}

Test(jobq, failures_back_off_then_fail_after_max_attempts)
{
    rf_db_t *db = open_new("attempts");
    int64_t run = add_run(db, "r");
    int64_t id = add_job(db, run, 0, 0, 2);
    rf_jobq_job_t j[1];
    rf_err_t err = {0};
    cr_assert_eq(claim(db, "A", 1, 1000, 0, j), 1);
    cr_assert_eq(rf_jobq_fail(db, "A", id, j[0].attempt, "boom: bad tensor", 0, 10, &err), 0,
                 "%s", err.msg);
    free_jobs(j, 1);
    cr_assert_str_eq(job_state(db, id), "queued");
    cr_assert_eq(job_i64(db, id, "not_before_ms"), 10 + RF_JOBQ_BACKOFF_MS);
    cr_assert_eq(claim(db, "A", 1, 1000, 10 + RF_JOBQ_BACKOFF_MS - 1, j), 0, "backing off");

    /* Attempt 2 (the last) is claimed, then its worker dies: the next claim
     * fails the job with the lost worker and the last error, not a 3rd run. */
    cr_assert_eq(claim(db, "B", 1, 1000, 2000, j), 1);
    cr_assert_eq(j[0].attempt, 2);
    free_jobs(j, 1);
    cr_assert_eq(claim(db, "C", 1, 1000, 3001, j), 0);
    cr_assert_str_eq(job_state(db, id), "failed");
    cr_assert_eq(job_i64(db, id, "attempts"), 2);
    cr_assert_eq(job_i64(db, id, "finished_ms"), 3001);
    const char *error = query_text(db, "SELECT error FROM jobs");
    cr_assert_not_null(strstr(error, "worker B"), "%s", error);
    cr_assert_not_null(strstr(error, "attempt 2 of 2"), "%s", error);
    cr_assert_not_null(strstr(error, "last error: boom: bad tensor"), "%s", error);
    cr_assert_eq(query_i64(db, "SELECT lease_owner IS NULL FROM jobs"), 1);

    /* A failure on the last attempt goes straight to failed; so does a
     * permanent one with attempts left. */
    int64_t id2 = add_job(db, run, 0, 0, 1);
    cr_assert_eq(claim(db, "A", 1, 1000, 4000, j), 1);
    cr_assert_eq(rf_jobq_fail(db, "A", id2, j[0].attempt, "oom", 0, 4001, &err), 0, "%s", err.msg);
    free_jobs(j, 1);
    cr_assert_str_eq(job_state(db, id2), "failed");
    int64_t id3 = add_job(db, run, 0, 0, 5);
    cr_assert_eq(claim(db, "A", 1, 1000, 5000, j), 1);
    cr_assert_eq(rf_jobq_fail(db, "A", id3, j[0].attempt, "bad input", RF_JOBQ_FAIL_PERMANENT,
                              5001, &err),
                 0);
    free_jobs(j, 1);
    cr_assert_str_eq(job_state(db, id3), "failed");
    cr_assert_str_eq(query_text(db, "SELECT error FROM jobs WHERE job_id = 3"), "bad input");
    rf_db_close(db);
}

/* ---------------------------------------------------------------- finishing */

Test(jobq, group_commit_of_300_completions_is_one_transaction)
{
    rf_db_t *db = open_new("group");
    int64_t run = add_run(db, "r");
    add_jobs(db, run, 300);
    rf_jobq_job_t *jobs = calloc(300, sizeof *jobs);
    cr_assert_eq(claim(db, "W", 300, 60000, 0, jobs), 300);

    rf_db_t *reader;
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&reader, rf_db_path(db), 0, &err), 0, "%s", err.msg);

    cr_assert_eq(rf_jobq_begin_group(db, &err), 0, "%s", err.msg);
    for (int i = 0; i < 300; i++) {
        char text[32];
        snprintf(text, sizeof text, "out %d", i);
        cr_assert_eq(complete(db, "W", &jobs[i], text, &err), 0, "%s", err.msg);
        cr_assert(rf_db_in_transaction(db));
    }
    /* Nothing is visible before the commit, everything after it. */
    cr_assert_eq(query_i64(reader, "SELECT count(*) FROM jobs WHERE state = 'done'"), 0);
    cr_assert_eq(query_i64(reader, "SELECT count(*) FROM results"), 0);
    cr_assert_eq(rf_jobq_commit_group(db, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(reader, "SELECT count(*) FROM jobs WHERE state = 'done'"), 300);
    cr_assert_eq(query_i64(reader, "SELECT count(*) FROM results"), 300);
    cr_assert_eq(query_i64(reader, "SELECT count(*) FROM job_metrics"), 300);

    /* An aborted group leaves the jobs running. */
    add_jobs(db, run, 2);
    cr_assert_eq(claim(db, "W", 2, 60000, 0, jobs), 2);
    cr_assert_eq(rf_jobq_begin_group(db, &err), 0);
    cr_assert_eq(complete(db, "W", &jobs[300 - 300], "x", &err), 0);
    rf_jobq_abort_group(db);
    cr_assert_str_eq(job_state(reader, jobs[0].job_id), "running");
    free_jobs(jobs, 2);
    free(jobs);
    rf_db_close(reader);
    rf_db_close(db);
}

Test(jobq, bad_completion_in_a_group_takes_back_only_itself)
{
    rf_db_t *db = open_new("group_bad");
    int64_t run = add_run(db, "r");
    add_jobs(db, run, 2);
    rf_jobq_job_t jobs[2];
    cr_assert_eq(claim(db, "W", 2, 60000, 0, jobs), 2);
    rf_err_t err = {0};
    cr_assert_eq(rf_jobq_begin_group(db, &err), 0);
    rf_jobq_result_t twice[2] = {a_result("a"), a_result("b")}; /* same sample twice */
    rf_jobq_completion_t bad = {.job_id = jobs[0].job_id, .attempt = jobs[0].attempt,
                                .results = twice, .n_results = 2};
    cr_assert_eq(rf_jobq_complete(db, "W", &bad, 5, &err), RF_EDB, "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "result sample 0"), "%s", err.msg);
    cr_assert_eq(complete(db, "W", &jobs[1], "ok", &err), 0);
    cr_assert_eq(rf_jobq_commit_group(db, &err), 0);
    cr_assert_str_eq(job_state(db, jobs[0].job_id), "running");
    cr_assert_str_eq(job_state(db, jobs[1].job_id), "done");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results"), 1);
    free_jobs(jobs, 2);
    rf_db_close(db);
}

Test(jobq, claim_inside_a_group_joins_its_transaction)
{
    rf_db_t *db = open_new("claim_in_group");
    int64_t run = add_run(db, "r");
    add_jobs(db, run, 3);
    rf_jobq_job_t jobs[2];
    rf_err_t err = {0};
    cr_assert_eq(rf_jobq_begin_group(db, &err), 0);
    cr_assert_eq(claim(db, "W", 2, 1000, 0, jobs), 2);
    cr_assert(rf_db_in_transaction(db), "the claim did not commit the group");
    rf_jobq_abort_group(db);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'queued'"), 3);
    free_jobs(jobs, 2);
    size_t n = 7;
    cr_assert_eq(rf_jobq_claim(db, "", 2, 1000, 0, jobs, &n, &err), RF_ERANGE);
    cr_assert_eq(n, 0);
    rf_db_close(db);
}

Test(jobq, release_on_drain_does_not_count_the_attempt)
{
    rf_db_t *db = open_new("release");
    int64_t run = add_run(db, "r");
    add_jobs(db, run, 3);
    int64_t other = add_job(db, run, 0, 0, 3);
    rf_jobq_job_t jobs[3], theirs[1];
    cr_assert_eq(claim(db, "W", 3, 60000, 0, jobs), 3);
    cr_assert_eq(claim(db, "V", 1, 60000, 0, theirs), 1);
    cr_assert_eq(theirs[0].job_id, other);
    rf_err_t err = {0};
    cr_assert_eq(rf_jobq_checkpoint(db, "W", jobs[1].job_id, 1, "\x01\x02", 2, &err), 0);
    int64_t n = 0;
    cr_assert_eq(rf_jobq_release(db, "W", &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'queued' AND "
                               "attempts = 0 AND lease_owner IS NULL"),
                 3);
    cr_assert_str_eq(job_state(db, other), "running", "another worker's job stays");
    free_jobs(jobs, 3);
    cr_assert_eq(claim(db, "W2", 3, 60000, 10, jobs), 3);
    cr_assert_eq(jobs[1].attempt, 1);
    cr_assert_eq(jobs[1].checkpoint_bytes, 2, "the checkpoint survives the release");
    cr_assert_eq(memcmp(jobs[1].checkpoint, "\x01\x02", 2), 0);
    free_jobs(jobs, 3);
    free_jobs(theirs, 1);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- operators */

Test(jobq, cancel_retry_requeue_jobs_and_runs)
{
    rf_db_t *db = open_new("operators");
    int64_t run = add_run(db, "r");
    int64_t q = add_job(db, run, 3, 0, 3);
    int64_t r = add_job(db, run, 2, 0, 3);
    int64_t d = add_job(db, run, 1, 0, 3);
    rf_jobq_job_t jobs[2];
    rf_err_t err = {0};
    cr_assert_eq(claim(db, "W", 2, 60000, 0, jobs), 2); /* q and r */
    cr_assert_eq(complete(db, "W", &jobs[1], "r's output", &err), 0); /* r done */
    int64_t n = -1;

    /* cancel: queued|running -> cancelled; the worker is then fenced. */
    cr_assert_eq(rf_jobq_cancel_job(db, q, 50, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(job_state(db, q), "cancelled");
    cr_assert_eq(complete(db, "W", &jobs[0], "late", &err), RF_JOBQ_LOST);
    cr_assert_eq(rf_jobq_cancel_job(db, r, 50, &n, &err), 0);
    cr_assert_eq(n, 0, "a done job is not cancelled");
    cr_assert_str_eq(job_state(db, r), "done");

    /* retry: failed|cancelled -> queued with fresh attempts. */
    cr_assert_eq(rf_jobq_retry_job(db, r, &n, &err), 0);
    cr_assert_eq(n, 0, "a done job is not retried");
    cr_assert_eq(rf_jobq_retry_job(db, q, &n, &err), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(job_state(db, q), "queued");
    cr_assert_eq(job_i64(db, q, "attempts"), 0);

    /* requeue: done -> queued, its results gone. */
    cr_assert_eq(rf_jobq_requeue_job(db, r, &n, &err), 0, "%s", err.msg);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(job_state(db, r), "queued");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results"), 0);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM job_metrics"), 0);
    cr_assert_eq(rf_jobq_cancel_job(db, 12345, 0, &n, &err), RF_ENOTFOUND);
    cr_assert_not_null(strstr(err.msg, "12345"), "%s", err.msg);
    free_jobs(jobs, 2);

    /* Whole runs. */
    rf_jobq_counts_t counts;
    cr_assert_eq(rf_jobq_cancel_run(db, run, 60, &n, &err), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(query_text(db, "SELECT status FROM runs"), "cancelled");
    cr_assert_eq(rf_jobq_counts(db, run, 60, &counts, &err), 0);
    cr_assert_eq(counts.cancelled, 3);
    cr_assert_eq(counts.queued + counts.running + counts.done + counts.failed, 0);
    cr_assert_eq(rf_jobq_retry_run(db, run, &n, &err), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(query_text(db, "SELECT status FROM runs"), "open");
    cr_assert_str_eq(job_state(db, d), "queued");
    cr_assert_eq(rf_jobq_requeue_run(db, run, &n, &err), 0);
    cr_assert_eq(n, 0, "nothing is done, failed or cancelled");
    cr_assert_eq(rf_jobq_retry_run(db, 999, &n, &err), RF_ENOTFOUND);
    rf_db_close(db);
}

Test(jobq, counts_per_state_and_expired_leases)
{
    rf_db_t *db = open_new("counts");
    int64_t run = add_run(db, "r");
    int64_t other = add_run(db, "s");
    add_jobs(db, run, 5);
    add_jobs(db, other, 2);
    rf_jobq_job_t jobs[2];
    cr_assert_eq(claim(db, "W", 2, 100, 0, jobs), 2);
    rf_err_t err = {0};
    cr_assert_eq(complete(db, "W", &jobs[0], "x", &err), 0);
    rf_jobq_counts_t c;
    cr_assert_eq(rf_jobq_counts(db, run, 50, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.queued, 3);
    cr_assert_eq(c.running, 1);
    cr_assert_eq(c.done, 1);
    cr_assert_eq(c.expired, 0);
    cr_assert_eq(rf_jobq_counts(db, run, 500, &c, &err), 0);
    cr_assert_eq(c.expired, 1);
    cr_assert_eq(rf_jobq_counts(db, 0, 50, &c, &err), 0);
    cr_assert_eq(c.queued, 5);
    free_jobs(jobs, 2);
    rf_db_close(db);
}

Test(jobq, workers_register_heartbeat_stop)
{
    rf_db_t *db = open_new("workers");
    rf_err_t err = {0};
    cr_assert_eq(rf_jobq_worker_register(db, "h:1:0", "h", 1, "m.gguf", NULL, 10, &err), 0,
                 "%s", err.msg);
    cr_assert_eq(rf_jobq_worker_heartbeat(db, "h:1:0", 20, &err), 0);
    cr_assert_eq(query_i64(db, "SELECT heartbeat_ms FROM workers"), 20);
    cr_assert_eq(rf_jobq_worker_stop(db, "h:1:0", 30, &err), 0);
    cr_assert_eq(query_i64(db, "SELECT stopped_ms FROM workers"), 30);
    cr_assert_eq(rf_jobq_worker_register(db, "h:1:0", "h", 1, "m.gguf", "cpu", 40, &err), 0);
    cr_assert_eq(query_i64(db, "SELECT stopped_ms IS NULL AND started_ms = 40 FROM workers"), 1);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM workers"), 1);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- concurrency */

/* Claim in batches of 7 until nothing is left, completing each batch in a
 * group; write the claimed ids to out_path. Exit status 0 on success. */
static int drain_worker(const char *path, const char *worker, const char *out_path)
{
    rf_db_t *db;
    rf_err_t err = {0};
    if (rf_db_open(&db, path, 0, &err) != 0) {
        fprintf(stderr, "%s: %s\n", worker, err.msg);
        return 1;
    }
    FILE *out = fopen(out_path, "w");
    if (out == NULL)
        return 2;
    rf_jobq_job_t jobs[7];
    for (;;) {
        size_t n = 0;
        int rc = rf_jobq_claim(db, worker, 7, 600000, 1000, jobs, &n, &err);
        if (rc != 0) {
            fprintf(stderr, "%s: claim: %s\n", worker, err.msg);
            return 3;
        }
        if (n == 0)
            break;
        usleep(500); /* run the batch: the lock is free meanwhile */
        if (rf_jobq_begin_group(db, &err) != 0) {
            fprintf(stderr, "%s: %s\n", worker, err.msg);
            return 4;
        }
        for (size_t i = 0; i < n; i++) {
            fprintf(out, "%lld\n", (long long)jobs[i].job_id);
            rf_jobq_result_t r = {.output = worker, .output_len = strlen(worker),
                                  .finish_reason = "stop"};
            rf_jobq_completion_t c = {.job_id = jobs[i].job_id, .attempt = jobs[i].attempt,
                                      .results = &r, .n_results = 1};
            if (rf_jobq_complete(db, worker, &c, 2000, &err) != 0) {
                fprintf(stderr, "%s: complete: %s\n", worker, err.msg);
                return 5;
            }
            rf_jobq_job_free(&jobs[i]);
        }
        if (rf_jobq_commit_group(db, &err) != 0) {
            fprintf(stderr, "%s: commit: %s\n", worker, err.msg);
            return 6;
        }
    }
    fclose(out);
    rf_db_close(db);
    return 0;
}

Test(jobq, two_processes_claim_every_job_exactly_once, .timeout = 120)
{
    rf_db_t *db = open_new("two_procs");
    char path[512];
    snprintf(path, sizeof path, "%s", rf_db_path(db));
    int64_t run = add_run(db, "r");
    add_jobs(db, run, 2000);
    int64_t first = query_i64(db, "SELECT min(job_id) FROM jobs");
    rf_db_close(db); /* never carry a connection across fork */

    /* Both children wait on one pipe so that they start together. */
    char outs[2][600];
    pid_t pids[2];
    int start[2];
    cr_assert_eq(pipe(start), 0);
    for (int p = 0; p < 2; p++) {
        snprintf(outs[p], sizeof outs[p], "%s.claimed%d", path, p);
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            char go;
            close(start[1]);
            if (read(start[0], &go, 1) != 1)
                _exit(9);
            _exit(drain_worker(path, p == 0 ? "P0" : "P1", outs[p]));
        }
    }
    close(start[0]);
    cr_assert_eq(write(start[1], "gg", 2), 2);
    close(start[1]);
    for (int p = 0; p < 2; p++) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d: status %d", p,
                  status);
    }
    int *seen = calloc(2000, sizeof *seen);
    int per_process[2] = {0, 0};
    for (int p = 0; p < 2; p++) {
        FILE *f = fopen(outs[p], "r");
        cr_assert_not_null(f);
        long long id;
        while (fscanf(f, "%lld", &id) == 1) {
            cr_assert(id >= first && id < first + 2000, "job id %lld", id);
            seen[id - first]++;
            per_process[p]++;
        }
        fclose(f);
    }
    for (int i = 0; i < 2000; i++)
        cr_assert_eq(seen[i], 1, "job %lld claimed %d times", (long long)(first + i), seen[i]);
    free(seen);
    cr_assert_eq(per_process[0] + per_process[1], 2000);
    cr_log_info("jobs per process: %d, %d", per_process[0], per_process[1]);
    cr_assert(per_process[0] > 0 && per_process[1] > 0, "both processes claimed (%d, %d)",
              per_process[0], per_process[1]);

    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, path, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done' AND attempts = 1"),
                 2000);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results"), 2000);
    /* Each result was written by the process that claimed the job. */
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results WHERE CAST(output AS TEXT) = 'P0'"),
                 per_process[0]);
    rf_db_close(db);
}

Test(jobq, two_processes_create_one_new_database, .timeout = 60)
{
    char path[512];
    snprintf(path, sizeof path, "%s", db_path("create_race"));
    pid_t pids[4];
    for (int p = 0; p < 4; p++) {
        pids[p] = fork();
        cr_assert_geq(pids[p], 0);
        if (pids[p] == 0) {
            rf_db_t *db;
            rf_err_t err = {0};
            int rc = rf_db_open(&db, path, RF_DB_CREATE, &err);
            if (rc != 0)
                fprintf(stderr, "open %d: %s\n", p, err.msg);
            rf_db_close(db);
            _exit(rc == 0 ? 0 : 1);
        }
    }
    for (int p = 0; p < 4; p++) {
        int status;
        cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "opener %d failed", p);
    }
    rf_db_t *db;
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, path, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(db, "PRAGMA user_version"), rf_db_schema_version());
    rf_db_close(db);
}

Test(jobq, kill_9_in_a_group_loses_only_the_uncommitted_group, .timeout = 60)
{
    rf_db_t *db = open_new("kill9");
    char path[512];
    snprintf(path, sizeof path, "%s", rf_db_path(db));
    add_jobs(db, add_run(db, "r"), 4);
    rf_db_close(db);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        rf_err_t err = {0};
        rf_jobq_job_t jobs[4];
        size_t n = 0;
        if (rf_db_open(&db, path, 0, &err) != 0 ||
            rf_jobq_claim(db, "dead", 4, 1000, 0, jobs, &n, &err) != 0 || n != 4)
            _exit(1);
        if (complete(db, "dead", &jobs[0], "committed", &err) != 0) /* its own commit */
            _exit(2);
        if (rf_jobq_begin_group(db, &err) != 0 ||
            complete(db, "dead", &jobs[1], "lost", &err) != 0 ||
            complete(db, "dead", &jobs[2], "lost", &err) != 0)
            _exit(3);
        kill(getpid(), SIGKILL);
        _exit(4);
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child status %d", status);
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, path, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), 1);
    cr_assert_str_eq(query_text(db, "SELECT CAST(output AS TEXT) FROM results"), "committed");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'running' AND "
                               "lease_owner = 'dead'"),
                 3);
    /* After the lease runs out the next worker takes the three over. */
    rf_jobq_job_t jobs[4];
    cr_assert_eq(claim(db, "next", 4, 1000, 999, jobs), 0);
    cr_assert_eq(claim(db, "next", 4, 1000, 1001, jobs), 3);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(jobs[i].attempt, 2);
    free_jobs(jobs, 3);
    rf_db_close(db);
}

/* ---------------------------------------------------------------- failure injection */

Test(jobq, full_disk_is_a_clear_error_and_keeps_committed_data)
{
    rf_db_t *db = open_new("full");
    int64_t run = add_run(db, "r");
    add_jobs(db, run, 20);
    rf_jobq_job_t jobs[20];
    rf_err_t err = {0};
    cr_assert_eq(claim(db, "W", 20, 60000, 0, jobs), 20);
    cr_assert_eq(complete(db, "W", &jobs[0], "kept", &err), 0, "%s", err.msg);

    /* The file may grow by 100 pages only: a group of large results fills it
     * after its first completion. */
    exec_sql(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    int64_t pages = query_i64(db, "PRAGMA page_count");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages + 100);
    exec_sql(db, sql);
    static char big[256 * 1024];
    memset(big, 'x', sizeof big - 1);
    int rc = rf_jobq_begin_group(db, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    int n_ok = 0;
    for (int i = 1; i < 20 && rc == 0; i++, n_ok += rc == 0)
        rc = complete(db, "W", &jobs[i], big, &err);
    cr_assert_geq(n_ok, 1, "room for one completion in the group before it fills up");
    cr_assert_eq(rc, -ENOSPC, "rc %d: %s", rc, err.msg);
    /* SQLite rolled the group back: the next write in it must not fall
     * back to autocommit, and the commit reports the loss. */
    rf_err_t later = {0};
    cr_assert_eq(complete(db, "W", &jobs[19], "small", &later), -ENOSPC, "%s", later.msg);
    cr_assert_not_null(strstr(later.msg, "rolled back"), "%s", later.msg);
    rc = rf_jobq_commit_group(db, &later);
    cr_assert_eq(rc, -ENOSPC, "rc %d: %s", rc, later.msg);
    cr_assert_not_null(strstr(err.msg, "full"), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, rf_db_path(db)), "%s", err.msg);
    cr_assert_not_null(strstr(err.msg, "complete job"), "names the operation: %s", err.msg);
    cr_assert_not(rf_db_in_transaction(db));

    /* What was committed is there; nothing of the failed group is. */
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), 1);
    cr_assert_str_eq(query_text(db, "SELECT CAST(output AS TEXT) FROM results"), "kept");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'running'"), 19);
    cr_assert_str_eq(query_text(db, "PRAGMA integrity_check"), "ok");

    /* With room again the same completions go through. */
    exec_sql(db, "PRAGMA max_page_count = 1073741823");
    rf_err_clear(&err);
    cr_assert_eq(rf_jobq_begin_group(db, &err), 0);
    for (int i = 1; i < 20; i++)
        cr_assert_eq(complete(db, "W", &jobs[i], "later", &err), 0, "%s", err.msg);
    cr_assert_eq(rf_jobq_commit_group(db, &err), 0, "%s", err.msg);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), 20);
    free_jobs(jobs, 20);
    rf_db_close(db);
}

Test(jobq, read_only_open_cannot_write)
{
    rf_db_t *db = open_new("readonly");
    char path[512];
    snprintf(path, sizeof path, "%s", rf_db_path(db));
    add_jobs(db, add_run(db, "r"), 1);
    rf_db_close(db);
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, path, RF_DB_READONLY, &err), 0, "%s", err.msg);
    rf_jobq_counts_t c;
    cr_assert_eq(rf_jobq_counts(db, 0, 0, &c, &err), 0, "%s", err.msg);
    cr_assert_eq(c.queued, 1);
    rf_jobq_job_t jobs[1];
    size_t n = 9;
    int rc = rf_jobq_claim(db, "W", 1, 1000, 0, jobs, &n, &err);
    cr_assert_eq(rc, -EROFS, "rc %d: %s", rc, err.msg);
    cr_assert_eq(n, 0);
    cr_assert_not_null(strstr(err.msg, path), "%s", err.msg);
    rf_db_close(db);
}
