/* jobq.c - the job queue in the job database: claims, leases, completions
 *
 * Every write runs inside BEGIN IMMEDIATE (the caller's group, or one of its
 * own): a plain autocommit UPDATE reads before it writes, and when another
 * process commits in between SQLite answers SQLITE_BUSY_SNAPSHOT without
 * calling the busy handler. Taking the write lock first makes the busy
 * timeout the only wait. The design notes (invariants, states) are in jobq.h.
 */
#include "jobq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

/* Open a transaction unless the caller has one; *own says which. */
static int begin_own(rf_db_t *db, int *own, rf_err_t *err)
{
    *own = !rf_db_in_transaction(db);
    return *own ? rf_db_begin(db, err) : rf_db_check_transaction(db, err);
}

/* Finish what begin_own opened: commit when rc is 0 or positive (a fenced
 * no-op changes nothing, committing it is harmless), else roll back. */
static int end_own(rf_db_t *db, int own, int rc, rf_err_t *err)
{
    if (!own)
        return rc;
    if (rc < 0) {
        rf_db_rollback(db);
        return rc;
    }
    int commit_rc = rf_db_commit(db, err);
    return commit_rc != 0 ? commit_rc : rc;
}

static int bind_text(sqlite3_stmt *stmt, int index, const char *text)
{
    return text != NULL ? sqlite3_bind_text(stmt, index, text, -1, SQLITE_TRANSIENT)
                        : sqlite3_bind_null(stmt, index);
}

static int bind_blob(sqlite3_stmt *stmt, int index, const void *data, size_t len)
{
    if (data == NULL)
        return sqlite3_bind_null(stmt, index);
    return sqlite3_bind_blob64(stmt, index, data, len, SQLITE_TRANSIENT);
}

/* A negative value stores NULL (unknown metric). */
static int bind_opt_i64(sqlite3_stmt *stmt, int index, int64_t value)
{
    return value >= 0 ? sqlite3_bind_int64(stmt, index, value) : sqlite3_bind_null(stmt, index);
}

static int bind_opt_double(sqlite3_stmt *stmt, int index, double value)
{
    return value >= 0 ? sqlite3_bind_double(stmt, index, value) : sqlite3_bind_null(stmt, index);
}

/* Step a statement without result rows to the end; the changed row count
 * goes to *changes (may be NULL). The statement is reset either way. */
static int step_done(rf_db_t *db, sqlite3_stmt *stmt, const char *what, int64_t *changes,
                     rf_err_t *err)
{
    int rc = sqlite3_step(stmt);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) {
        rc = rf_db_error(db, rc, what, err);
        rf_db_done(stmt);
        return rc;
    }
    if (changes != NULL)
        *changes = sqlite3_changes64(rf_db_handle(db));
    rf_db_done(stmt);
    return 0;
}

static char *column_strdup(sqlite3_stmt *stmt, int column)
{
    const unsigned char *text = sqlite3_column_text(stmt, column);
    return text != NULL ? strdup((const char *)text) : NULL;
}

void rf_jobq_job_free(rf_jobq_job_t *job)
{
    if (job == NULL)
        return;
    free(job->custom_id);
    free(job->kind);
    free(job->input);
    free(job->params);
    free(job->metadata);
    free(job->checkpoint);
    memset(job, 0, sizeof *job);
}

static int job_order(const void *a, const void *b)
{
    const rf_jobq_job_t *x = a, *y = b;
    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return (x->job_id > y->job_id) - (x->job_id < y->job_id);
}

/* ---------------------------------------------------------------- claims */

/* Invariant 3: expired leases out of attempts fail instead of running again. */
static const char SQL_FAIL_EXHAUSTED[] =
    "UPDATE jobs SET state = 'failed', finished_ms = ?1, "
    "  error = 'lease of worker ' || lease_owner || ' expired on attempt ' || attempts || "
    "          ' of ' || max_attempts || ' (the worker stopped or hung while running it)' || "
    "          coalesce('; last error: ' || error, ''), "
    "  lease_owner = NULL, lease_expires_ms = NULL "
    "WHERE state = 'running' AND lease_expires_ms < ?1 AND attempts >= max_attempts";

/* One UPDATE ... RETURNING. The candidates are the union of two ordered,
 * limited scans instead of one OR, so each arm walks its own partial index
 * (jobs_claim in claim order, jobs_lease over the expired range) and stops
 * after max_jobs rows: a claim costs O(max_jobs), not O(queued jobs). */
static const char SQL_CLAIM[] =
    "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_expires_ms = ?2, "
    "  attempts = attempts + 1, claimed_ms = coalesce(claimed_ms, ?3) "
    "WHERE job_id IN ("
    "  SELECT job_id FROM ("
    "    SELECT * FROM (SELECT job_id, priority FROM jobs"
    "                   WHERE state = 'queued' AND not_before_ms <= ?3"
    "                   ORDER BY priority DESC, job_id LIMIT ?4)"
    "    UNION ALL"
    "    SELECT * FROM (SELECT job_id, priority FROM jobs"
    "                   WHERE state = 'running' AND lease_expires_ms < ?3"
    "                     AND attempts < max_attempts"
    "                   ORDER BY priority DESC, job_id LIMIT ?4))"
    "  ORDER BY priority DESC, job_id LIMIT ?4) "
    "RETURNING job_id, run_id, attempts, max_attempts, priority, created_ms, not_before_ms, "
    "  claimed_ms, lease_expires_ms, custom_id, kind, input, params, metadata, checkpoint";

static int read_claimed(sqlite3_stmt *stmt, rf_jobq_job_t *job)
{
    memset(job, 0, sizeof *job);
    job->job_id = sqlite3_column_int64(stmt, 0);
    job->run_id = sqlite3_column_int64(stmt, 1);
    job->attempt = sqlite3_column_int64(stmt, 2);
    job->max_attempts = sqlite3_column_int64(stmt, 3);
    job->priority = sqlite3_column_int64(stmt, 4);
    job->created_ms = sqlite3_column_int64(stmt, 5);
    job->not_before_ms = sqlite3_column_int64(stmt, 6);
    job->claimed_ms = sqlite3_column_int64(stmt, 7);
    job->lease_expires_ms = sqlite3_column_int64(stmt, 8);
    job->custom_id = column_strdup(stmt, 9);
    job->kind = column_strdup(stmt, 10);
    job->input = column_strdup(stmt, 11);
    job->params = column_strdup(stmt, 12);
    job->metadata = column_strdup(stmt, 13);
    int failed = job->custom_id == NULL || job->kind == NULL || job->input == NULL ||
                 job->params == NULL ||
                 (job->metadata == NULL && sqlite3_column_type(stmt, 13) != SQLITE_NULL);
    int n = sqlite3_column_bytes(stmt, 14);
    const void *blob = sqlite3_column_blob(stmt, 14);
    if (blob != NULL && n > 0) {
        job->checkpoint = malloc((size_t)n);
        if (job->checkpoint == NULL)
            failed = 1;
        else
            memcpy(job->checkpoint, blob, (size_t)n);
        job->checkpoint_bytes = (size_t)n;
    }
    return failed ? -ENOMEM : 0;
}

int rf_jobq_claim(rf_db_t *db, const char *worker_id, int max_jobs, int64_t lease_ms,
                  int64_t now_ms, rf_jobq_job_t *out, size_t *n_claimed, rf_err_t *err)
{
    *n_claimed = 0;
    if (max_jobs <= 0 || lease_ms <= 0)
        return rf_err_set(err, RF_ERANGE,
                          "database %s: claim: max_jobs (%d) and lease_ms (%lld) must be > 0",
                          rf_db_path(db), max_jobs, (long long)lease_ms);
    if (worker_id == NULL || worker_id[0] == '\0')
        return rf_err_set(err, RF_ERANGE, "database %s: claim: empty worker id", rf_db_path(db));
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    /* Inside the caller's transaction a savepoint takes back a claim whose
     * jobs could not be handed over (out of memory), as the own transaction's
     * rollback does. */
    if (!own && (rc = rf_db_exec(db, "SAVEPOINT rf_claim", "claim: savepoint", err)) != 0)
        return rc;
    sqlite3_stmt *stmt;
    size_t n = 0;
    rc = rf_db_prepare(db, SQL_FAIL_EXHAUSTED, &stmt, err);
    if (rc == 0) {
        sqlite3_bind_int64(stmt, 1, now_ms);
        rc = step_done(db, stmt, "claim: fail jobs out of attempts", NULL, err);
    }
    if (rc == 0)
        rc = rf_db_prepare(db, SQL_CLAIM, &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 2, now_ms + lease_ms);
        sqlite3_bind_int64(stmt, 3, now_ms);
        sqlite3_bind_int(stmt, 4, max_jobs);
        int step;
        while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
            if (n == (size_t)max_jobs) { /* cannot happen: LIMIT ?4 */
                step = SQLITE_INTERNAL;
                break;
            }
            if (read_claimed(stmt, &out[n++]) != 0) {
                rc = rf_err_set(err, -ENOMEM, "database %s: claim: out of memory reading jobs",
                                rf_db_path(db));
                break;
            }
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = rf_db_error(db, step, "claim jobs", err);
        rf_db_done(stmt);
    }
    if (!own && rf_db_check_transaction(db, NULL) == 0) {
        if (rc != 0)
            sqlite3_exec(rf_db_handle(db), "ROLLBACK TO rf_claim", NULL, NULL, NULL);
        sqlite3_exec(rf_db_handle(db), "RELEASE rf_claim", NULL, NULL, NULL);
    }
    if (rc == 0)
        rc = end_own(db, own, 0, err);
    else
        end_own(db, own, rc, err);
    if (rc != 0) {
        for (size_t i = 0; i < n; i++)
            rf_jobq_job_free(&out[i]);
        return rc;
    }
    /* RETURNING order is unspecified; hand the jobs over in claim order. */
    qsort(out, n, sizeof *out, job_order);
    *n_claimed = n;
    return 0;
}

int rf_jobq_heartbeat(rf_db_t *db, const char *worker_id, int64_t n_held, int64_t lease_ms,
                      int64_t now_ms, int64_t *n_extended, rf_err_t *err)
{
    if (n_extended != NULL)
        *n_extended = 0;
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    int64_t n = 0;
    rc = rf_db_prepare(db,
                       "UPDATE jobs SET lease_expires_ms = ?2 "
                       "WHERE state = 'running' AND lease_owner = ?1",
                       &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 2, now_ms + lease_ms);
        rc = step_done(db, stmt, "heartbeat: extend leases", &n, err);
    }
    if (rc == 0)
        rc = rf_db_prepare(db, "UPDATE workers SET heartbeat_ms = ?2 WHERE worker_id = ?1",
                           &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 2, now_ms);
        rc = step_done(db, stmt, "heartbeat: worker row", NULL, err);
    }
    rc = end_own(db, own, rc, err);
    if (rc != 0)
        return rc;
    if (n_extended != NULL)
        *n_extended = n;
    return n < n_held ? RF_JOBQ_LOST : 0;
}

int rf_jobq_checkpoint(rf_db_t *db, const char *worker_id, int64_t job_id, int64_t attempt,
                       const void *data, size_t len, rf_err_t *err)
{
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    int64_t n = 0;
    rc = rf_db_prepare(db,
                       "UPDATE jobs SET checkpoint = ?4 WHERE job_id = ?1 AND state = 'running' "
                       "AND lease_owner = ?2 AND attempts = ?3",
                       &stmt, err);
    if (rc == 0) {
        sqlite3_bind_int64(stmt, 1, job_id);
        sqlite3_bind_text(stmt, 2, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 3, attempt);
        bind_blob(stmt, 4, data, len);
        rc = step_done(db, stmt, "checkpoint job", &n, err);
    }
    if (rc == 0 && n == 0)
        rc = RF_JOBQ_LOST;
    return end_own(db, own, rc, err);
}

/* ---------------------------------------------------------------- finishing */

int rf_jobq_begin_group(rf_db_t *db, rf_err_t *err)
{
    return rf_db_begin(db, err);
}

int rf_jobq_commit_group(rf_db_t *db, rf_err_t *err)
{
    return rf_db_commit(db, err);
}

int rf_jobq_abort_group(rf_db_t *db)
{
    return rf_db_rollback(db);
}

static int insert_result(rf_db_t *db, int64_t job_id, const rf_jobq_result_t *r, rf_err_t *err)
{
    sqlite3_stmt *stmt;
    int rc = rf_db_prepare(db,
                           "INSERT INTO results (job_id, sample, output, dict_id, output_bytes, "
                           "  finish_reason, prompt_tokens, completion_tokens, logprobs, "
                           "  created_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           &stmt, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, job_id);
    sqlite3_bind_int64(stmt, 2, r->sample);
    /* output is NOT NULL: an empty output is an empty blob, not NULL. */
    sqlite3_bind_blob64(stmt, 3, r->output != NULL ? r->output : "", r->output_len,
                        SQLITE_TRANSIENT);
    if (r->dict_id > 0)
        sqlite3_bind_int64(stmt, 4, r->dict_id);
    sqlite3_bind_int64(stmt, 5, r->output_bytes);
    bind_text(stmt, 6, r->finish_reason);
    sqlite3_bind_int64(stmt, 7, r->prompt_tokens);
    sqlite3_bind_int64(stmt, 8, r->completion_tokens);
    bind_blob(stmt, 9, r->logprobs, r->logprobs_len);
    sqlite3_bind_int64(stmt, 10, r->created_ms);
    char what[96];
    snprintf(what, sizeof what, "complete job %lld: insert result sample %lld", (long long)job_id,
             (long long)r->sample);
    return step_done(db, stmt, what, NULL, err);
}

static int insert_metrics(rf_db_t *db, int64_t job_id, const char *worker_id,
                          const rf_jobq_metrics_t *m, rf_err_t *err)
{
    sqlite3_stmt *stmt;
    int rc = rf_db_prepare(db,
                           "INSERT INTO job_metrics (job_id, worker_id, model_hash, queue_ms, "
                           "  ttft_ms, prefill_ms, decode_ms, e2e_ms, prompt_tokens, "
                           "  completion_tokens, decode_tokens_per_s, mean_batch_size, "
                           "  preemptions) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                           &stmt, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, job_id);
    bind_text(stmt, 2, worker_id);
    bind_text(stmt, 3, m->model_hash);
    bind_opt_i64(stmt, 4, m->queue_ms);
    bind_opt_i64(stmt, 5, m->ttft_ms);
    bind_opt_i64(stmt, 6, m->prefill_ms);
    bind_opt_i64(stmt, 7, m->decode_ms);
    bind_opt_i64(stmt, 8, m->e2e_ms);
    bind_opt_i64(stmt, 9, m->prompt_tokens);
    bind_opt_i64(stmt, 10, m->completion_tokens);
    bind_opt_double(stmt, 11, m->decode_tokens_per_s);
    bind_opt_double(stmt, 12, m->mean_batch_size);
    sqlite3_bind_int64(stmt, 13, m->preemptions > 0 ? m->preemptions : 0);
    char what[64];
    snprintf(what, sizeof what, "complete job %lld: insert metrics", (long long)job_id);
    return step_done(db, stmt, what, NULL, err);
}

/* The fenced part of a completion, inside a savepoint. */
static int complete_one(rf_db_t *db, const char *worker_id, const rf_jobq_completion_t *done,
                        int64_t now_ms, rf_err_t *err)
{
    sqlite3_stmt *stmt;
    int rc = rf_db_prepare(db,
                           "UPDATE jobs SET state = 'done', finished_ms = ?4, lease_owner = NULL, "
                           "  lease_expires_ms = NULL, checkpoint = NULL "
                           "WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 "
                           "  AND attempts = ?3",
                           &stmt, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, done->job_id);
    sqlite3_bind_text(stmt, 2, worker_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(stmt, 3, done->attempt);
    sqlite3_bind_int64(stmt, 4, now_ms);
    int64_t n = 0;
    char what[64];
    snprintf(what, sizeof what, "complete job %lld", (long long)done->job_id);
    rc = step_done(db, stmt, what, &n, err);
    if (rc != 0)
        return rc;
    if (n == 0)
        return RF_JOBQ_LOST;
    for (size_t i = 0; i < done->n_results && rc == 0; i++)
        rc = insert_result(db, done->job_id, &done->results[i], err);
    if (rc == 0 && done->metrics != NULL)
        rc = insert_metrics(db, done->job_id, worker_id, done->metrics, err);
    return rc;
}

int rf_jobq_complete(rf_db_t *db, const char *worker_id, const rf_jobq_completion_t *done,
                     int64_t now_ms, rf_err_t *err)
{
    if (done->n_results == 0 || done->results == NULL)
        return rf_err_set(err, RF_ERANGE,
                          "database %s: complete job %lld: a completion needs at least one result",
                          rf_db_path(db), (long long)done->job_id);
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    /* A savepoint per completion, so that one bad completion (a duplicate
     * sample, say) takes back only its own rows, not the group's. */
    rc = rf_db_exec(db, "SAVEPOINT rf_complete", "complete: savepoint", err);
    if (rc != 0)
        return end_own(db, own, rc, err);
    rc = complete_one(db, worker_id, done, now_ms, err);
    if (rf_db_check_transaction(db, NULL) == 0) {
        if (rc < 0)
            sqlite3_exec(rf_db_handle(db), "ROLLBACK TO rf_complete", NULL, NULL, NULL);
        sqlite3_exec(rf_db_handle(db), "RELEASE rf_complete", NULL, NULL, NULL);
    }
    return end_own(db, own, rc, err);
}

int rf_jobq_fail(rf_db_t *db, const char *worker_id, int64_t job_id, int64_t attempt,
                 const char *error, unsigned flags, int64_t now_ms, rf_err_t *err)
{
    int64_t backoff = RF_JOBQ_BACKOFF_MAX_MS;
    if (attempt >= 1 && attempt <= 20) {
        backoff = (int64_t)RF_JOBQ_BACKOFF_MS << (attempt - 1);
        if (backoff > RF_JOBQ_BACKOFF_MAX_MS)
            backoff = RF_JOBQ_BACKOFF_MAX_MS;
    }
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    int64_t n = 0;
    rc = rf_db_prepare(db,
                       "UPDATE jobs SET "
                       "  state = CASE WHEN ?5 = 0 AND attempts < max_attempts "
                       "               THEN 'queued' ELSE 'failed' END, "
                       "  not_before_ms = CASE WHEN ?5 = 0 AND attempts < max_attempts "
                       "                       THEN ?7 ELSE not_before_ms END, "
                       "  finished_ms = CASE WHEN ?5 = 0 AND attempts < max_attempts "
                       "                     THEN NULL ELSE ?6 END, "
                       "  error = ?4, lease_owner = NULL, lease_expires_ms = NULL "
                       "WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 "
                       "  AND attempts = ?3",
                       &stmt, err);
    if (rc == 0) {
        sqlite3_bind_int64(stmt, 1, job_id);
        sqlite3_bind_text(stmt, 2, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 3, attempt);
        sqlite3_bind_text(stmt, 4, error != NULL ? error : "unknown error", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(stmt, 5, (flags & RF_JOBQ_FAIL_PERMANENT) ? 1 : 0);
        sqlite3_bind_int64(stmt, 6, now_ms);
        sqlite3_bind_int64(stmt, 7, now_ms + backoff);
        char what[64];
        snprintf(what, sizeof what, "fail job %lld", (long long)job_id);
        rc = step_done(db, stmt, what, &n, err);
    }
    if (rc == 0 && n == 0)
        rc = RF_JOBQ_LOST;
    return end_own(db, own, rc, err);
}

int rf_jobq_release(rf_db_t *db, const char *worker_id, int64_t *n_released, rf_err_t *err)
{
    if (n_released != NULL)
        *n_released = 0;
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    int64_t n = 0;
    rc = rf_db_prepare(db,
                       "UPDATE jobs SET state = 'queued', attempts = attempts - 1, "
                       "  lease_owner = NULL, lease_expires_ms = NULL "
                       "WHERE state = 'running' AND lease_owner = ?1",
                       &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, worker_id, -1, SQLITE_TRANSIENT);
        rc = step_done(db, stmt, "release leases", &n, err);
    }
    rc = end_own(db, own, rc, err);
    if (rc == 0 && n_released != NULL)
        *n_released = n;
    return rc;
}

/* ---------------------------------------------------------------- operators */

/* An operator transition: in one transaction, check that the job or run
 * exists (exists_sql), then run sqls in order with ?1 = id and ?2 = now_ms
 * (where used); the last one's change count goes to *n_changed. */
static int transition(rf_db_t *db, const char *what, const char *exists_sql,
                      const char *const *sqls, int n_sqls, int64_t id, int64_t now_ms,
                      int64_t *n_changed, rf_err_t *err)
{
    if (n_changed != NULL)
        *n_changed = 0;
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    rc = rf_db_prepare(db, exists_sql, &stmt, err);
    if (rc == 0) {
        sqlite3_bind_int64(stmt, 1, id);
        int step = sqlite3_step(stmt);
        if (step == SQLITE_DONE)
            rc = rf_err_set(err, RF_ENOTFOUND, "database %s: %s %lld: no such id",
                            rf_db_path(db), what, (long long)id);
        else if (step != SQLITE_ROW)
            rc = rf_db_error(db, step, what, err);
        rf_db_done(stmt);
    }
    int64_t n = 0;
    for (int i = 0; i < n_sqls && rc == 0; i++) {
        rc = rf_db_prepare(db, sqls[i], &stmt, err);
        if (rc != 0)
            break;
        sqlite3_bind_int64(stmt, 1, id);
        if (sqlite3_bind_parameter_count(stmt) >= 2)
            sqlite3_bind_int64(stmt, 2, now_ms);
        rc = step_done(db, stmt, what, &n, err);
    }
    rc = end_own(db, own, rc, err);
    if (rc == 0 && n_changed != NULL)
        *n_changed = n;
    return rc;
}

static const char SQL_JOB_EXISTS[] = "SELECT 1 FROM jobs WHERE job_id = ?1";
static const char SQL_RUN_EXISTS[] = "SELECT 1 FROM runs WHERE run_id = ?1";

#define CANCEL_SET                                                                     \
    "UPDATE jobs SET state = 'cancelled', finished_ms = ?2, lease_owner = NULL, "     \
    "  lease_expires_ms = NULL "
#define RETRY_SET                                                                      \
    "UPDATE jobs SET state = 'queued', attempts = 0, not_before_ms = 0, "             \
    "  finished_ms = NULL "
#define REQUEUE_SET                                                                    \
    "UPDATE jobs SET state = 'queued', attempts = 0, not_before_ms = 0, "             \
    "  finished_ms = NULL, claimed_ms = NULL, error = NULL, checkpoint = NULL "
#define CANCEL_FROM " AND state IN ('queued', 'running')"
#define RETRY_FROM " AND state IN ('failed', 'cancelled')"
#define REQUEUE_FROM " AND state IN ('done', 'failed', 'cancelled')"

int rf_jobq_cancel_job(rf_db_t *db, int64_t job_id, int64_t now_ms, int64_t *n_changed,
                       rf_err_t *err)
{
    static const char *const sqls[] = {CANCEL_SET "WHERE job_id = ?1" CANCEL_FROM};
    return transition(db, "cancel job", SQL_JOB_EXISTS, sqls, 1, job_id, now_ms, n_changed, err);
}

int rf_jobq_retry_job(rf_db_t *db, int64_t job_id, int64_t *n_changed, rf_err_t *err)
{
    static const char *const sqls[] = {RETRY_SET "WHERE job_id = ?1" RETRY_FROM};
    return transition(db, "retry job", SQL_JOB_EXISTS, sqls, 1, job_id, 0, n_changed, err);
}

int rf_jobq_requeue_job(rf_db_t *db, int64_t job_id, int64_t *n_changed, rf_err_t *err)
{
    static const char *const sqls[] = {
        "DELETE FROM results WHERE job_id IN "
        "  (SELECT job_id FROM jobs WHERE job_id = ?1" REQUEUE_FROM ")",
        "DELETE FROM job_metrics WHERE job_id IN "
        "  (SELECT job_id FROM jobs WHERE job_id = ?1" REQUEUE_FROM ")",
        REQUEUE_SET "WHERE job_id = ?1" REQUEUE_FROM,
    };
    return transition(db, "requeue job", SQL_JOB_EXISTS, sqls, 3, job_id, 0, n_changed, err);
}

int rf_jobq_cancel_run(rf_db_t *db, int64_t run_id, int64_t now_ms, int64_t *n_changed,
                       rf_err_t *err)
{
    static const char *const sqls[] = {
        "UPDATE runs SET status = 'cancelled' WHERE run_id = ?1",
        CANCEL_SET "WHERE run_id = ?1" CANCEL_FROM,
    };
    return transition(db, "cancel run", SQL_RUN_EXISTS, sqls, 2, run_id, now_ms, n_changed, err);
}

int rf_jobq_retry_run(rf_db_t *db, int64_t run_id, int64_t *n_changed, rf_err_t *err)
{
    static const char *const sqls[] = {
        "UPDATE runs SET status = 'open' WHERE run_id = ?1",
        RETRY_SET "WHERE run_id = ?1" RETRY_FROM,
    };
    return transition(db, "retry run", SQL_RUN_EXISTS, sqls, 2, run_id, 0, n_changed, err);
}

int rf_jobq_requeue_run(rf_db_t *db, int64_t run_id, int64_t *n_changed, rf_err_t *err)
{
    static const char *const sqls[] = {
        "UPDATE runs SET status = 'open' WHERE run_id = ?1",
        "DELETE FROM results WHERE job_id IN "
        "  (SELECT job_id FROM jobs WHERE run_id = ?1" REQUEUE_FROM ")",
        "DELETE FROM job_metrics WHERE job_id IN "
        "  (SELECT job_id FROM jobs WHERE run_id = ?1" REQUEUE_FROM ")",
        REQUEUE_SET "WHERE run_id = ?1" REQUEUE_FROM,
    };
    return transition(db, "requeue run", SQL_RUN_EXISTS, sqls, 4, run_id, 0, n_changed, err);
}

int rf_jobq_counts(rf_db_t *db, int64_t run_id, int64_t now_ms, rf_jobq_counts_t *counts,
                   rf_err_t *err)
{
    memset(counts, 0, sizeof *counts);
    sqlite3_stmt *stmt;
    int rc = rf_db_prepare(db,
                           run_id > 0
                               ? "SELECT state, count(*), "
                                 "  sum(state = 'running' AND lease_expires_ms < ?2) "
                                 "FROM jobs WHERE run_id = ?1 GROUP BY state"
                               : "SELECT state, count(*), "
                                 "  sum(state = 'running' AND lease_expires_ms < ?2) "
                                 "FROM jobs WHERE ?1 <= 0 GROUP BY state",
                           &stmt, err);
    if (rc != 0)
        return rc;
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_int64(stmt, 2, now_ms);
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *state = (const char *)sqlite3_column_text(stmt, 0);
        int64_t n = sqlite3_column_int64(stmt, 1);
        if (state == NULL)
            continue;
        if (strcmp(state, "queued") == 0)
            counts->queued = n;
        else if (strcmp(state, "running") == 0) {
            counts->running = n;
            counts->expired = sqlite3_column_int64(stmt, 2);
        } else if (strcmp(state, "done") == 0)
            counts->done = n;
        else if (strcmp(state, "failed") == 0)
            counts->failed = n;
        else if (strcmp(state, "cancelled") == 0)
            counts->cancelled = n;
    }
    if (step != SQLITE_DONE)
        rc = rf_db_error(db, step, "count jobs per state", err);
    rf_db_done(stmt);
    return rc;
}

/* ---------------------------------------------------------------- workers */

static int worker_write(rf_db_t *db, const char *sql, const char *what, const char *worker_id,
                        int64_t now_ms, rf_err_t *err)
{
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    rc = rf_db_prepare(db, sql, &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 2, now_ms);
        rc = step_done(db, stmt, what, NULL, err);
    }
    return end_own(db, own, rc, err);
}

int rf_jobq_worker_register(rf_db_t *db, const char *worker_id, const char *host, int64_t pid,
                            const char *model, const char *device, int64_t now_ms,
                            rf_err_t *err)
{
    int own;
    int rc = begin_own(db, &own, err);
    if (rc != 0)
        return rc;
    sqlite3_stmt *stmt;
    rc = rf_db_prepare(db,
                       "INSERT INTO workers (worker_id, host, pid, started_ms, heartbeat_ms, "
                       "  model, device, stopped_ms) VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, NULL) "
                       "ON CONFLICT (worker_id) DO UPDATE SET host = excluded.host, "
                       "  pid = excluded.pid, started_ms = excluded.started_ms, "
                       "  heartbeat_ms = excluded.heartbeat_ms, model = excluded.model, "
                       "  device = excluded.device, stopped_ms = NULL",
                       &stmt, err);
    if (rc == 0) {
        sqlite3_bind_text(stmt, 1, worker_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(stmt, 2, host != NULL ? host : "", -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(stmt, 3, pid);
        sqlite3_bind_int64(stmt, 4, now_ms);
        bind_text(stmt, 5, model);
        bind_text(stmt, 6, device);
        rc = step_done(db, stmt, "register worker", NULL, err);
    }
    return end_own(db, own, rc, err);
}

int rf_jobq_worker_heartbeat(rf_db_t *db, const char *worker_id, int64_t now_ms, rf_err_t *err)
{
    return worker_write(db, "UPDATE workers SET heartbeat_ms = ?2 WHERE worker_id = ?1",
                        "worker heartbeat", worker_id, now_ms, err);
}

int rf_jobq_worker_stop(rf_db_t *db, const char *worker_id, int64_t now_ms, rf_err_t *err)
{
    return worker_write(db,
                        "UPDATE workers SET heartbeat_ms = ?2, stopped_ms = ?2 "
                        "WHERE worker_id = ?1",
                        "stop worker", worker_id, now_ms, err);
}
