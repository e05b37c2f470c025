/* cmd_merge.c - `rocmforge merge`: bring the results of shards back
 *
 * `rocmforge merge OUT.db SHARD.db...` copies the finished jobs of each
 * shard made by `rocmforge shard` (cmd_shard.c) into OUT: their state,
 * attempts, times and error, their results and job_metrics rows, the zstd
 * dictionaries the results name, and the shard's workers rows. OUT is
 * normally the database the shards were made from (its jobs have the same
 * job_id); it may also be a new file, which then gets the shards' runs and
 * every job of theirs (unfinished ones as queued).
 *
 * Design notes
 * ------------
 * Invariants:
 *   1. One transaction per shard (BEGIN IMMEDIATE on OUT, which also holds
 *      the shard still while it is read): a shard is merged whole or not at
 *      all. Every check below runs before the first write.
 *   2. A shard matches OUT when every run it shares with OUT (by run_id or
 *      by name) has the same run_id and name in both, and every job it
 *      shares (by job_id, or by run and custom_id) has the same job_id,
 *      run_id, custom_id and input_hash. Otherwise it was made from another
 *      database and is refused.
 *   3. A zstd dictionary id means one dictionary: frames name their
 *      dictionary by id alone. Ids are a hash of the dictionary
 *      (compress.c), so a dictionary the shard copied from OUT arrives with
 *      its own id and identical bytes (skipped), and one trained in a shard
 *      gets a new id. Should a shard's dictionary share an id with a
 *      different dictionary in OUT (a 31-bit hash collision), the shard is
 *      refused with the id named; its frames could not be read in OUT.
 *   4. A done job in OUT is never overwritten, and neither is a running one
 *      (a worker on OUT holds it). A shard job that is done, failed or
 *      cancelled replaces an OUT job that is queued, failed or cancelled
 *      (including the "sharded into" marking) unless OUT already has that
 *      outcome (same state, attempts, finished_ms and error). Hence merging
 *      the same shard twice changes nothing the second time, and a shard
 *      re-run after a failure is merged again safely.
 *   5. Jobs still queued or running in a shard are not merged into a job
 *      OUT has; they are counted so the user knows to finish that shard.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "db.h"

/* ---------------------------------------------------------------- types */

/* What one shard brought. */
typedef struct merge_counts {
    int64_t done, failed, cancelled;   /* jobs whose outcome was taken */
    int64_t new_jobs;                  /* jobs OUT did not have */
    int64_t unfinished;                /* queued or running in the shard */
    int64_t kept_done, kept_running;   /* finished in the shard; OUT's kept */
    int64_t dicts, workers;
} merge_counts_t;

/* ---------------------------------------------------------------- helpers */

static void merge_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge merge OUT.db SHARD.db...\n"
            "\n"
            "Bring the results of shards made by 'rocmforge shard' back into OUT.db:\n"
            "for every job that is done, failed or cancelled in a shard, its state, its\n"
            "results and metrics (with the zstd dictionaries they need), and the\n"
            "shard's workers rows. OUT.db is normally the database the shards were made\n"
            "from; a new path makes a new database holding the shards' jobs.\n"
            "\n"
            "Each shard is merged in one transaction, whole or not at all. A shard\n"
            "that is not a rocmforge database, or whose jobs do not match OUT's (same\n"
            "job_id, custom_id and input), is refused and the others are still merged\n"
            "(exit status 1). A done job in OUT is never replaced, so merging a shard\n"
            "again changes nothing; merge a shard again after re-running it to take the\n"
            "jobs it finished since.\n"
            "\n"
            "options:\n"
            "  -h, --help            show this help\n");
}

/* Run one statement on db; *changes (may be NULL) gets sqlite3_changes. */
static int exec_changes(rf_db_t *db, const char *sql, const char *what, int64_t *changes,
                        rf_err_t *err)
{
    sqlite3 *h = rf_db_handle(db);
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(h, sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rf_db_error(db, rc, what, err);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
        ;
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE)
        return rf_db_error(db, rc, what, err);
    if (changes != NULL)
        *changes = sqlite3_changes64(h);
    return 0;
}

/* First row of sql (a check): 1 and the statement (to read, then finalize)
 * when there is one, 0 when none, or an error. */
static int check_row(rf_db_t *db, const char *sql, const char *what, sqlite3_stmt **out,
                     rf_err_t *err)
{
    *out = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(rf_db_handle(db), sql, -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rf_db_error(db, rc, what, err);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        *out = stmt;
        return 1;
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE ? 0 : rf_db_error(db, rc, what, err);
}

static int64_t count_of(rf_db_t *db, const char *sql, int *rc, rf_err_t *err)
{
    sqlite3_stmt *stmt = NULL;
    int64_t n = 0;
    if (*rc < 0)
        return 0;
    int found = check_row(db, sql, "count jobs", &stmt, err);
    if (found < 0) {
        *rc = found;
        return 0;
    }
    if (found == 1) {
        n = sqlite3_column_int64(stmt, 0);
        sqlite3_finalize(stmt);
    }
    return n;
}

static const char *text_or(sqlite3_stmt *stmt, int col, const char *dflt)
{
    const char *s = (const char *)sqlite3_column_text(stmt, col);
    return s != NULL ? s : dflt;
}

/* Invariants 2 and 3: 0 when the attached shard matches OUT, RF_EFORMAT
 * with the first mismatch in err, or a database error. */
static int check_shard(rf_db_t *db, const char *shard, rf_err_t *err)
{
    const char *out = rf_db_path(db);
    sqlite3_stmt *row = NULL;
    int rc = check_row(db,
                       "SELECT s.run_id, s.name, o.run_id, o.name FROM shard.runs s "
                       "JOIN main.runs o ON o.run_id = s.run_id WHERE o.name <> s.name "
                       "UNION ALL "
                       "SELECT s.run_id, s.name, o.run_id, o.name FROM shard.runs s "
                       "JOIN main.runs o ON o.name = s.name WHERE o.run_id <> s.run_id "
                       "LIMIT 1",
                       "compare runs", &row, err);
    if (rc == 1) {
        rc = rf_err_set(err, RF_EFORMAT,
                        "shard %s: its run '%s' (run_id %lld) does not match run '%s' "
                        "(run_id %lld) of %s: the shard was not made from this database",
                        shard, text_or(row, 1, "?"), (long long)sqlite3_column_int64(row, 0),
                        text_or(row, 3, "?"), (long long)sqlite3_column_int64(row, 2), out);
        sqlite3_finalize(row);
        return rc;
    }
    if (rc < 0)
        return rc;
    rc = check_row(db,
                   "SELECT s.job_id, s.custom_id, o.job_id, o.custom_id FROM shard.jobs s "
                   "JOIN main.jobs o ON o.job_id = s.job_id "
                   "WHERE o.run_id <> s.run_id OR o.custom_id <> s.custom_id "
                   "   OR o.input_hash <> s.input_hash "
                   "UNION ALL "
                   "SELECT s.job_id, s.custom_id, o.job_id, o.custom_id FROM shard.jobs s "
                   "JOIN main.jobs o ON o.run_id = s.run_id AND o.custom_id = s.custom_id "
                   "WHERE o.job_id <> s.job_id "
                   "LIMIT 1",
                   "compare jobs", &row, err);
    if (rc == 1) {
        rc = rf_err_set(err, RF_EFORMAT,
                        "shard %s: its job %lld ('%s') does not match job %lld ('%s') of %s "
                        "(job_id, run, custom_id and input must all agree): the shard was "
                        "not made from this database",
                        shard, (long long)sqlite3_column_int64(row, 0), text_or(row, 1, "?"),
                        (long long)sqlite3_column_int64(row, 2), text_or(row, 3, "?"), out);
        sqlite3_finalize(row);
        return rc;
    }
    if (rc < 0)
        return rc;
    rc = check_row(db,
                   "SELECT s.dict_id FROM shard.zstd_dicts s JOIN main.zstd_dicts o "
                   "USING (dict_id) WHERE o.dict <> s.dict OR o.run_id IS NOT s.run_id "
                   "LIMIT 1",
                   "compare zstd dictionaries", &row, err);
    if (rc == 1) {
        rc = rf_err_set(err, RF_EFORMAT,
                        "shard %s: its zstd dictionary %lld differs from the dictionary with "
                        "that id in %s (the ids, hashes of the dictionaries, collide): its "
                        "results could not be decompressed there; merge this shard into a "
                        "new database instead",
                        shard, (long long)sqlite3_column_int64(row, 0), out);
        sqlite3_finalize(row);
        return rc;
    }
    return rc;
}

/* The jobs whose outcome is taken from the shard (invariant 4). */
static const char TAKE_SQL[] =
    "INSERT INTO temp.merge_take (job_id) "
    "SELECT s.job_id FROM shard.jobs s LEFT JOIN main.jobs o USING (job_id) "
    "WHERE s.state IN ('done', 'failed', 'cancelled') AND (o.job_id IS NULL OR "
    "  (o.state IN ('queued', 'failed', 'cancelled') AND NOT (o.state = s.state AND "
    "   o.attempts = s.attempts AND o.finished_ms IS s.finished_ms AND o.error IS s.error)))";

/* New jobs (OUT lacks them) come in whole; unfinished ones as queued. */
static const char NEW_JOBS_SQL[] =
    "INSERT INTO main.jobs (job_id, run_id, custom_id, kind, input, params, metadata, "
    "  source_file, source_line, input_hash, priority, not_before_ms, state, attempts, "
    "  max_attempts, lease_owner, lease_expires_ms, created_ms, claimed_ms, finished_ms, "
    "  error, checkpoint) "
    "SELECT job_id, run_id, custom_id, kind, input, params, metadata, source_file, "
    "  source_line, input_hash, priority, not_before_ms, "
    "  CASE WHEN state IN ('queued', 'running') THEN 'queued' ELSE state END, attempts, "
    "  max_attempts, NULL, NULL, created_ms, claimed_ms, finished_ms, error, checkpoint "
    "FROM shard.jobs WHERE job_id NOT IN (SELECT job_id FROM main.jobs) ORDER BY job_id";

static const char UPDATE_JOBS_SQL[] =
    "UPDATE main.jobs AS o SET state = s.state, attempts = s.attempts, "
    "  not_before_ms = s.not_before_ms, claimed_ms = s.claimed_ms, "
    "  finished_ms = s.finished_ms, error = s.error, checkpoint = s.checkpoint, "
    "  lease_owner = NULL, lease_expires_ms = NULL "
    "FROM shard.jobs AS s "
    "WHERE s.job_id = o.job_id AND o.job_id IN (SELECT job_id FROM temp.merge_take)";

/* Merge the attached shard inside OUT's open transaction. */
static int merge_rows(rf_db_t *db, merge_counts_t *n, rf_err_t *err)
{
    int rc = 0;
    n->unfinished = count_of(db, "SELECT count(*) FROM shard.jobs WHERE state IN "
                             "('queued', 'running')", &rc, err);
    n->kept_done = count_of(db, "SELECT count(*) FROM shard.jobs s JOIN main.jobs o "
                            "USING (job_id) WHERE s.state IN ('done', 'failed', "
                            "'cancelled') AND o.state = 'done'", &rc, err);
    n->kept_running = count_of(db, "SELECT count(*) FROM shard.jobs s JOIN main.jobs o "
                               "USING (job_id) WHERE s.state IN ('done', 'failed', "
                               "'cancelled') AND o.state = 'running'", &rc, err);
    if (rc < 0)
        return rc;
    static const struct {
        const char *sql, *what;
    } steps[] = {
        {"INSERT INTO main.runs (run_id, name, created_ms, defaults, status) "
         "SELECT run_id, name, created_ms, defaults, status FROM shard.runs "
         "WHERE run_id NOT IN (SELECT run_id FROM main.runs)", "copy runs"},
        {"INSERT INTO main.zstd_dicts (dict_id, run_id, created_ms, n_samples, dict) "
         "SELECT dict_id, run_id, created_ms, n_samples, dict FROM shard.zstd_dicts "
         "WHERE dict_id NOT IN (SELECT dict_id FROM main.zstd_dicts)", "copy zstd dictionaries"},
        {"DELETE FROM temp.merge_take", "choose jobs"},
        {TAKE_SQL, "choose jobs"},
        {NEW_JOBS_SQL, "copy new jobs"},
        {UPDATE_JOBS_SQL, "update jobs"},
        {"DELETE FROM main.results WHERE job_id IN (SELECT job_id FROM temp.merge_take)",
         "replace results"},
        {"DELETE FROM main.job_metrics WHERE job_id IN (SELECT job_id FROM temp.merge_take)",
         "replace metrics"},
        {"INSERT INTO main.results (job_id, sample, output, dict_id, output_bytes, "
         "finish_reason, prompt_tokens, completion_tokens, logprobs, created_ms) "
         "SELECT job_id, sample, output, dict_id, output_bytes, finish_reason, prompt_tokens, "
         "completion_tokens, logprobs, created_ms FROM shard.results "
         "WHERE job_id IN (SELECT job_id FROM temp.merge_take) ORDER BY job_id, sample",
         "copy results"},
        {"INSERT INTO main.job_metrics (job_id, worker_id, model_hash, queue_ms, ttft_ms, "
         "prefill_ms, decode_ms, e2e_ms, prompt_tokens, completion_tokens, "
         "decode_tokens_per_s, mean_batch_size, preemptions) "
         "SELECT job_id, worker_id, model_hash, queue_ms, ttft_ms, prefill_ms, decode_ms, "
         "e2e_ms, prompt_tokens, completion_tokens, decode_tokens_per_s, mean_batch_size, "
         "preemptions FROM shard.job_metrics "
         "WHERE job_id IN (SELECT job_id FROM temp.merge_take) ORDER BY job_id",
         "copy metrics"},
        /* A worker row changes only while that worker runs, so taking the
         * shard's newest values is idempotent. */
        {"INSERT INTO main.workers (worker_id, host, pid, started_ms, heartbeat_ms, model, "
         "device, stopped_ms) "
         "SELECT worker_id, host, pid, started_ms, heartbeat_ms, model, device, stopped_ms "
         "FROM shard.workers s WHERE NOT EXISTS (SELECT 1 FROM main.workers o WHERE "
         "o.worker_id = s.worker_id AND o.host = s.host AND o.pid = s.pid AND "
         "o.started_ms = s.started_ms AND o.heartbeat_ms = s.heartbeat_ms AND "
         "o.model IS s.model AND o.device IS s.device AND o.stopped_ms IS s.stopped_ms) "
         "ON CONFLICT (worker_id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
         "started_ms = excluded.started_ms, heartbeat_ms = excluded.heartbeat_ms, "
         "model = excluded.model, device = excluded.device, stopped_ms = excluded.stopped_ms",
         "copy workers"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int64_t changes = 0;
        rc = exec_changes(db, steps[i].sql, steps[i].what, &changes, err);
        if (rc < 0)
            return rc;
        if (i == 1)
            n->dicts = changes;
        else if (i == 4)
            n->new_jobs = changes;
        else if (i == sizeof steps / sizeof steps[0] - 1)
            n->workers = changes;
    }
    n->done = count_of(db, "SELECT count(*) FROM temp.merge_take JOIN shard.jobs USING "
                       "(job_id) WHERE state = 'done'", &rc, err);
    n->failed = count_of(db, "SELECT count(*) FROM temp.merge_take JOIN shard.jobs USING "
                         "(job_id) WHERE state = 'failed'", &rc, err);
    n->cancelled = count_of(db, "SELECT count(*) FROM temp.merge_take JOIN shard.jobs USING "
                            "(job_id) WHERE state = 'cancelled'", &rc, err);
    return rc;
}

/* false only when path opens as an SQLite database without a jobs table
 * (an empty file, another program's database); other failures are left
 * to rf__cli_open_db, which names them. */
static bool is_job_database(const char *path)
{
    sqlite3 *h = NULL;
    bool ok = true;
    if (sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *stmt = NULL;
        if (sqlite3_prepare_v2(h, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
                               "AND name = 'jobs'", -1, &stmt, NULL) == SQLITE_OK &&
            sqlite3_step(stmt) == SQLITE_ROW)
            ok = sqlite3_column_int64(stmt, 0) == 1;
        sqlite3_finalize(stmt);
    }
    sqlite3_close(h);
    return ok;
}

/* Attach, check and merge one shard in one transaction. Prints the outcome;
 * returns 0 or the error (nothing of the shard written). */
static int merge_shard(rf_db_t *db, const char *shard)
{
    const char *out = rf_db_path(db);
    struct stat st_out, st_shard;
    if (stat(out, &st_out) == 0 && stat(shard, &st_shard) == 0 &&
        st_out.st_dev == st_shard.st_dev && st_out.st_ino == st_shard.st_ino) {
        rf__cli_error("merge", "shard %s is %s itself; give the shard files after OUT.db", shard,
                      out);
        return RF_EUSAGE;
    }
    /* Opening it the way every command does checks that it is a rocmforge
     * job database of this schema version, with a message naming it; a
     * read-only open cannot tell another SQLite file from an old job
     * database (both have user_version 0), so look for the jobs table. */
    int rc = 0;
    if (!is_job_database(shard)) {
        rf__cli_error("merge", "shard %s is not a rocmforge job database (it has no jobs "
                      "table); nothing of it was merged", shard);
        return RF_EFORMAT;
    }
    rf_db_t *probe = NULL;
    rc = rf__cli_open_db("merge", shard, RF_DB_READONLY, &probe);
    rf_db_close(probe);
    if (rc < 0) {
        fprintf(stderr, "rocmforge: merge: shard %s refused: nothing of it was merged\n", shard);
        return rc;
    }
    rf_err_t err = {0};
    merge_counts_t n = {0};
    sqlite3_stmt *attach = NULL;
    rc = sqlite3_prepare_v2(rf_db_handle(db), "ATTACH DATABASE ?1 AS shard", -1, &attach, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(attach, 1, shard, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(attach);
    }
    sqlite3_finalize(attach);
    if (rc != SQLITE_DONE && rc != SQLITE_OK) {
        rc = rf_db_error(db, rc, "attach the shard", &err);
        rf__cli_error("merge", "shard %s: %s; nothing of it was merged", shard, err.msg);
        return rc;
    }
    rc = rf_db_begin(db, &err);
    if (rc == 0)
        rc = check_shard(db, shard, &err);
    if (rc == 0)
        rc = merge_rows(db, &n, &err);
    if (rc == 0)
        rc = rf_db_commit(db, &err);
    if (rc < 0)
        rf_db_rollback(db);
    rf_err_t detach_err = {0};
    rf_db_exec(db, "DETACH DATABASE shard", "detach the shard", &detach_err);
    if (rc < 0) {
        rf__cli_error("merge", "%s; nothing of shard %s was merged", err.msg[0] ? err.msg :
                      rf_strerror(rc), shard);
        return rc;
    }
    printf("merge: %s: %lld job%s merged (%lld done, %lld failed, %lld cancelled)",
           shard, (long long)(n.done + n.failed + n.cancelled),
           n.done + n.failed + n.cancelled == 1 ? "" : "s", (long long)n.done,
           (long long)n.failed, (long long)n.cancelled);
    if (n.new_jobs > 0)
        printf(", %lld new to %s", (long long)n.new_jobs, out);
    printf(", %lld zstd dictionar%s, %lld worker row%s\n", (long long)n.dicts,
           n.dicts == 1 ? "y" : "ies", (long long)n.workers, n.workers == 1 ? "" : "s");
    if (n.kept_done > 0)
        printf("merge: %s: %lld finished job%s already done in %s (merged before, or run "
               "there): kept as %s\n", shard, (long long)n.kept_done,
               n.kept_done == 1 ? "" : "s", out, n.kept_done == 1 ? "it is" : "they are");
    if (n.kept_running > 0)
        printf("merge: %s: %lld finished job%s running in %s (a worker there holds them): "
               "left alone\n", shard, (long long)n.kept_running,
               n.kept_running == 1 ? "" : "s", out);
    if (n.unfinished > 0)
        printf("merge: %s: %lld job%s still queued or running in the shard: run it again, "
               "then merge it again\n", shard, (long long)n.unfinished,
               n.unfinished == 1 ? "" : "s");
    return 0;
}

/* ---------------------------------------------------------------- command */

int rf__cmd_merge(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'h') {
            merge_usage(stdout);
            return RF_EXIT_OK;
        }
        rf__cli_error("merge", "unknown or incomplete option '%s'; see 'rocmforge merge "
                      "--help'", argv[optind - 1]);
        return RF_EXIT_USAGE;
    }
    if (argc - optind < 2) {
        rf__cli_error("merge", "expected the database to merge into and at least one shard; "
                      "see 'rocmforge merge --help'");
        return RF_EXIT_USAGE;
    }
    const char *out_path = argv[optind];
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    struct stat st;
    if (stat(out_path, &st) == 0) {
        if (rf__cli_open_db("merge", out_path, 0, &db) < 0)
            return RF_EXIT_FAIL;
    } else {
        int rc = rf_db_open(&db, out_path, RF_DB_CREATE, &err);
        if (rc < 0) {
            rf__cli_error("merge", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
            return RF_EXIT_FAIL;
        }
        printf("merge: created %s\n", out_path);
    }
    int status = RF_EXIT_OK;
    if (rf_db_exec(db, "CREATE TEMP TABLE merge_take (job_id INTEGER PRIMARY KEY)",
                   "create a scratch table", &err) < 0) {
        rf__cli_error("merge", "%s", err.msg);
        status = RF_EXIT_FAIL;
    }
    int n_refused = 0;
    if (status == RF_EXIT_OK) {
        for (int i = optind + 1; i < argc; i++)
            if (merge_shard(db, argv[i]) < 0)
                n_refused++;
        if (n_refused > 0) {
            int n_shards = argc - optind - 1;
            if (n_refused == n_shards)
                fprintf(stderr, "rocmforge: merge: no shard was merged (see above)\n");
            else
                fprintf(stderr, "rocmforge: merge: %d of %d shards not merged (see above); "
                        "the others were\n", n_refused, n_shards);
            status = RF_EXIT_FAIL;
        }
    }
    rf_db_close(db);
    return status;
}
