/* jobq.h - the job queue in the job database: claims, leases, completions
 *
 * Workers (rocmforge run processes, any number, on one database) take jobs
 * with a lease, keep it alive with heartbeats, and finish each job by
 * completing, failing, or releasing it. Every operation on a claimed job is
 * fenced: it names the worker and the attempt it claimed, and does nothing
 * (returns RF_JOBQ_LOST) when that lease is no longer the job's.
 *
 * Design notes
 * ------------
 * A lease is the triple (job_id, lease_owner, attempts) of a running job.
 *
 * Invariants:
 *   1. state = 'running' exactly when lease_owner and lease_expires_ms are
 *      set; every other state has both NULL.
 *   2. attempts counts claims that were not released: each claim adds one,
 *      rf_jobq_release takes its one back, retry and requeue reset it to 0.
 *      A running job therefore has 1 <= attempts <= max_attempts.
 *   3. A job is claimed only when queued with not_before_ms <= now, or
 *      running with lease_expires_ms < now (its worker stopped heartbeating)
 *      and attempts < max_attempts. An expired job that has used all its
 *      attempts is failed by the claim instead, with an error naming the lost
 *      worker and keeping the last error: a job that kills its worker
 *      (a poison job) cannot take every worker down in turn.
 *   4. A lease is lost only to a claim after it expired, or to cancel; time
 *      alone never takes it away. So a worker that was slow to heartbeat
 *      but whose job nobody reclaimed still completes it (and its heartbeat
 *      extends the lease again).
 *   5. Fenced operations (complete, fail, checkpoint, heartbeat) change a job
 *      only when state = 'running', lease_owner = the worker and attempts =
 *      the claimed attempt; otherwise they change nothing and return
 *      RF_JOBQ_LOST. Hence at most one completion per job is ever stored,
 *      even when two workers ran it.
 *   6. A completion writes its results, its metrics and state = 'done' in one
 *      transaction (the group's): a reader never sees a done job without its
 *      results, nor results of a job that is not done.
 *   7. Claims are one UPDATE ... RETURNING inside BEGIN IMMEDIATE (the
 *      write lock is taken before the candidates are read), so two workers
 *      never hold the same job at once.
 *
 * States (jobs.state) and the function for each transition:
 *
 *                  rf_jobq_claim                   rf_jobq_complete
 *      queued ----------------------> running ----------------------> done
 *       ^ ^ ^                         | | | |
 *       | | +--- rf_jobq_release -----+ | | +-- rf_jobq_claim, by any worker
 *       | |      (attempt not counted)  | |     (lease expired, attempts left):
 *       | +----- rf_jobq_fail ----------+ |     running again, attempts + 1
 *       |        (attempts left: backoff) |
 *       |                                 +---- rf_jobq_fail (no attempts left,
 *       |                                 |     or permanent); rf_jobq_claim
 *       |                                 |     (lease expired, no attempts
 *       |                                 |     left) ------------------> failed
 *       |                                 +---- rf_jobq_cancel_job / _run
 *       |                                       (from queued too) ---> cancelled
 *       +-- rf_jobq_retry_job / _run:   failed | cancelled -> queued, attempts 0
 *       +-- rf_jobq_requeue_job / _run: done | failed | cancelled -> queued,
 *                                       its results and metrics deleted
 *
 * Times are milliseconds since the Unix epoch and passed in by the caller
 * (now_ms), so tests control the clock. All functions run on the
 * connection's thread. Functions that write and are called outside a
 * transaction run in their own BEGIN IMMEDIATE transaction; inside one
 * (rf_jobq_begin_group) they join it.
 */
#ifndef RF_JOBQ_H
#define RF_JOBQ_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

/* "Not done, not broken": the lease named in a fenced call is no longer this
 * worker's (reclaimed, cancelled, requeued). Nothing was changed. */
enum { RF_JOBQ_LOST = 1 };

/* Base and cap of the retry backoff after rf_jobq_fail: attempt k may run
 * again RF_JOBQ_BACKOFF_MS * 2^(k-1) ms later, at most RF_JOBQ_BACKOFF_MAX_MS. */
enum { RF_JOBQ_BACKOFF_MS = 1000, RF_JOBQ_BACKOFF_MAX_MS = 300000 };

/* A claimed job. Strings and the checkpoint are owned; rf_jobq_job_free. */
typedef struct rf_jobq_job {
    int64_t job_id;
    int64_t run_id;
    int64_t attempt;         /* this claim's attempt number (1-based): the fence */
    int64_t max_attempts;
    int64_t priority;
    int64_t created_ms;
    int64_t not_before_ms;
    int64_t claimed_ms;      /* first claim of the job (queue wait ends) */
    int64_t lease_expires_ms;
    char *custom_id;
    char *kind;              /* completion | chat | score */
    char *input;             /* JSON */
    char *params;            /* JSON */
    char *metadata;          /* JSON or NULL */
    void *checkpoint;        /* tokens stored by rf_jobq_checkpoint, or NULL */
    size_t checkpoint_bytes;
} rf_jobq_job_t;

void rf_jobq_job_free(rf_jobq_job_t *job);

/* One results row (jobs with n > 1 have several). Borrowed. */
typedef struct rf_jobq_result {
    int64_t sample;             /* 0-based */
    const void *output;         /* zstd frame */
    size_t output_len;
    int64_t dict_id;            /* zstd_dicts.dict_id, or 0 for none */
    int64_t output_bytes;       /* uncompressed size */
    const char *finish_reason;  /* stop | length | context | error */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    const void *logprobs;       /* zstd frame of JSON, or NULL */
    size_t logprobs_len;
    int64_t created_ms;
} rf_jobq_result_t;

/* A job_metrics row. Negative integers (and negative reals) store NULL. */
typedef struct rf_jobq_metrics {
    const char *model_hash;     /* or NULL */
    int64_t queue_ms, ttft_ms, prefill_ms, decode_ms, e2e_ms;
    int64_t prompt_tokens, completion_tokens;
    double decode_tokens_per_s;
    double mean_batch_size;
    int64_t preemptions;
} rf_jobq_metrics_t;

/* One finished job. Borrowed. */
typedef struct rf_jobq_completion {
    int64_t job_id;
    int64_t attempt;                  /* from the claim */
    const rf_jobq_result_t *results;  /* [n_results], n_results >= 1 */
    size_t n_results;
    const rf_jobq_metrics_t *metrics; /* or NULL for no metrics row */
} rf_jobq_completion_t;

/* Jobs per state (for a run, or all runs). */
typedef struct rf_jobq_counts {
    int64_t queued, running, done, failed, cancelled;
    int64_t expired;            /* running with an expired lease (dead worker) */
} rf_jobq_counts_t;

/* ------------------------------------------------------------------ claims */

/* Claim up to max_jobs jobs for worker_id with a lease until now_ms +
 * lease_ms: queued jobs whose not_before_ms has come, and running jobs whose
 * lease expired (invariant 3), by priority (higher first), then job_id.
 * Expired jobs out of attempts are failed in the same transaction. out has
 * room for max_jobs; *n_claimed is set to the number filled, in claim order.
 * Returns 0 (possibly with 0 jobs) or an error; on error nothing was
 * claimed and out holds nothing to free. */
int rf_jobq_claim(rf_db_t *db, const char *worker_id, int max_jobs, int64_t lease_ms,
                  int64_t now_ms, rf_jobq_job_t *out, size_t *n_claimed, rf_err_t *err);

/* Extend the lease of every job worker_id holds to now_ms + lease_ms, and its
 * workers row's heartbeat. *n_extended (may be NULL) receives how many.
 * Returns 0, RF_JOBQ_LOST when fewer than n_held jobs were found (some lease
 * was lost: the others are still extended; the worker learns which from the
 * fenced calls), or an error (nothing extended). */
int rf_jobq_heartbeat(rf_db_t *db, const char *worker_id, int64_t n_held, int64_t lease_ms,
                      int64_t now_ms, int64_t *n_extended, rf_err_t *err);

/* Store tokens generated so far for a running job (fenced), so a later claim
 * resumes from them. 0, RF_JOBQ_LOST or an error (nothing stored). */
int rf_jobq_checkpoint(rf_db_t *db, const char *worker_id, int64_t job_id, int64_t attempt,
                       const void *data, size_t len, rf_err_t *err);

/* ------------------------------------------------------------------ finishing */

/* Group commit: one BEGIN IMMEDIATE transaction for many completions.
 * begin, then rf_jobq_complete (and rf_jobq_fail) any number of times, then
 * commit. If commit fails (disk full), none of the group is stored: the jobs
 * stay running under their leases and the worker may retry or let them be
 * reclaimed. abort rolls the group back. */
int rf_jobq_begin_group(rf_db_t *db, rf_err_t *err);
int rf_jobq_commit_group(rf_db_t *db, rf_err_t *err);
int rf_jobq_abort_group(rf_db_t *db);

/* Store a completion (fenced): results rows, the metrics row, state done,
 * finished_ms = now_ms, checkpoint dropped. Inside a group it joins the
 * group's transaction, else it commits by itself. Returns 0, RF_JOBQ_LOST
 * (nothing written for this job), or an error: then nothing of this job was
 * written and the group stays usable unless the error is a disk error
 * (-ENOSPC, -EIO), which the group's commit reports again. */
int rf_jobq_complete(rf_db_t *db, const char *worker_id, const rf_jobq_completion_t *done,
                     int64_t now_ms, rf_err_t *err);

enum { RF_JOBQ_FAIL_PERMANENT = 1u << 0 }; /* do not retry (bad input) */

/* A claimed job failed with error (one line). With attempts left and not
 * RF_JOBQ_FAIL_PERMANENT it goes back to queued with not_before_ms = now_ms
 * + backoff; else to failed. Fenced: 0, RF_JOBQ_LOST or an error. */
int rf_jobq_fail(rf_db_t *db, const char *worker_id, int64_t job_id, int64_t attempt,
                 const char *error, unsigned flags, int64_t now_ms, rf_err_t *err);

/* Drain: put every job worker_id holds back to queued, not counting the
 * attempt (the checkpoint stays for the next claim). *n_released may be NULL. */
int rf_jobq_release(rf_db_t *db, const char *worker_id, int64_t *n_released, rf_err_t *err);

/* ------------------------------------------------------------------ operators */

/* Each sets *n_changed (may be NULL) to the number of jobs moved; 0 when none
 * was in a state the transition starts from. A job or run that does not
 * exist is RF_ENOTFOUND. */
int rf_jobq_cancel_job(rf_db_t *db, int64_t job_id, int64_t now_ms, int64_t *n_changed,
                       rf_err_t *err);
int rf_jobq_retry_job(rf_db_t *db, int64_t job_id, int64_t *n_changed, rf_err_t *err);
int rf_jobq_requeue_job(rf_db_t *db, int64_t job_id, int64_t *n_changed, rf_err_t *err);
/* For a run, cancel also marks runs.status cancelled (so its name shows it);
 * retry and requeue reopen it. */
int rf_jobq_cancel_run(rf_db_t *db, int64_t run_id, int64_t now_ms, int64_t *n_changed,
                       rf_err_t *err);
int rf_jobq_retry_run(rf_db_t *db, int64_t run_id, int64_t *n_changed, rf_err_t *err);
int rf_jobq_requeue_run(rf_db_t *db, int64_t run_id, int64_t *n_changed, rf_err_t *err);

/* Counts per state for run_id (run_id <= 0: all runs); expired uses now_ms. */
int rf_jobq_counts(rf_db_t *db, int64_t run_id, int64_t now_ms, rf_jobq_counts_t *counts,
                   rf_err_t *err);

/* ------------------------------------------------------------------ workers */

/* Insert or refresh the workers row (started_ms = heartbeat_ms = now_ms,
 * stopped_ms NULL). model and device may be NULL. */
int rf_jobq_worker_register(rf_db_t *db, const char *worker_id, const char *host, int64_t pid,
                            const char *model, const char *device, int64_t now_ms,
                            rf_err_t *err);
int rf_jobq_worker_heartbeat(rf_db_t *db, const char *worker_id, int64_t now_ms,
                             rf_err_t *err);
int rf_jobq_worker_stop(rf_db_t *db, const char *worker_id, int64_t now_ms, rf_err_t *err);

#endif /* RF_JOBQ_H */
