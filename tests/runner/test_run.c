/* test_run.c - `rocmforge run` end to end on the CPU engine
 *
 * Every test builds a job database with `rocmforge submit`, runs the real
 * binary on the synthetic "tiny" model (random weights, so sampled outputs
 * are varied and any nondeterminism would show), and checks the database
 * and `rocmforge export`. Outputs are compared as exported text between a
 * reference run and the run under test: with seeds, a job's output must
 * not depend on batching, on a second worker, on kill -9 and restarts, or
 * on a drain and resume.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

/* Sanitizer builds run every binary several times slower: the same
 * scenarios with fewer jobs and kill rounds (the normal build runs the
 * full ones: 20 kills, as the job-runner issue asks). */
#ifdef RF_TEST_SANITIZED
enum { CRASH_JOBS = 60, CRASH_ROUNDS = 6, DRAIN_JOBS = 16, TWO_JOBS = 60, FULL_JOBS = 120 };
#else
enum { CRASH_JOBS = 200, CRASH_ROUNDS = 20, DRAIN_JOBS = 40, TWO_JOBS = 150, FULL_JOBS = 300 };
#endif

typedef rf_test_result_t result_t;

static const char *tmp_path(const char *name)
{
    return rf_test_tmp_path("run", name);
}

static result_t cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static result_t cli(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return rf_test_run(args, NULL);
}

static void cli_ok(const char *what, result_t r)
{
    cr_assert_eq(r.status, 0, "%s: exit %d\nstdout: %s\nstderr: %s", what, r.status, r.out,
                 r.err);
    rf_test_result_free(&r);
}

static const char *tiny_model(void)
{
    const char *path = tmp_path("tiny.gguf");
    cli_ok("synth", cli("synth --shape tiny --type q8_0 --seed 3 -o '%s'", path));
    return path;
}

/* n jobs: sampled with seeds (some n = 2, some with logprobs), some
 * greedy, max_tokens between min_tokens and min_tokens + 11. */
static const char *write_jobs(const char *name, int n, int min_tokens, const char *extra)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"custom_id\": \"job-%d\", \"prompt\": \"prompt %d %s\", \"max_tokens\": %d, "
                "\"temperature\": %s, \"seed\": %d%s%s%s}\n", i, i * 7919 % 1000,
                i % 3 ? "the quick brown fox" : "", min_tokens + i % 12,
                i % 4 == 0 ? "0" : "0.9", i, i % 9 == 0 ? ", \"n\": 2" : "",
                i % 5 == 0 ? ", \"logprobs\": true, \"top_logprobs\": 2" : "", extra ? extra : "");
    }
    fclose(f);
    return path;
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 10000);
    return db;
}

static int64_t query_i64(const char *db_path, const char *sql)
{
    sqlite3 *db = open_db(db_path);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* `export --format simple` of run NAME: the outputs as text. */
static char *export_simple(const char *db, const char *run)
{
    result_t r = cli("export '%s' --run %s --format simple", db, run);
    cr_assert_eq(r.status, 0, "export: %s", r.err);
    char *out = r.out;
    r.out = NULL;
    rf_test_result_free(&r);
    return out;
}

/* Submit jobs to a fresh database and run it to the end in one go. */
static char *reference_run(const char *db, const char *jobs, const char *model, const char *opts)
{
    unlink(db);
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
    cli_ok("reference run", cli("run '%s' -m '%s' --progress none %s", db, model, opts));
    return export_simple(db, "r");
}

/* Start `rocmforge run` without waiting; returns the pid. */
static pid_t spawn_run(const char *db, const char *model, const char *opts, const char *log)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s run '%s' -m '%s' --progress none %s >>'%s' 2>&1", RF_BIN,
             db, model, opts, log);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Every job done, each with exactly its n results, nothing else. */
static void expect_all_done_once(const char *db, int n_jobs)
{
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), n_jobs,
                 "jobs not done: %lld", (long long)query_i64(db, "SELECT count(*) FROM jobs "
                                                             "WHERE state <> 'done'"));
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM "
                               "results r WHERE r.job_id = j.job_id) <> "
                               "json_extract(j.params, '$.n')"), 0, "a job has the wrong "
                                                                    "number of results");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM job_metrics"), n_jobs);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL OR "
                               "checkpoint IS NOT NULL"), 0);
}

/* ---------------------------------------------------------------- tests */

/* A run finishes every job; results, metrics and export are there; the
 * outputs do not depend on how many sequences are batched together. */
Test(run, outputs_do_not_depend_on_batching, .timeout = 300)
{
    const char *model = tiny_model();
    const char *jobs = write_jobs("jobs.jsonl", 60, 4, NULL);
    const char *db1 = tmp_path("one.db"), *db8 = tmp_path("eight.db");
    char *one = reference_run(db1, jobs, model, "--max-seqs 1");
    char *eight = reference_run(db8, jobs, model, "--max-seqs 8 --max-batched-tokens 24");
    cr_assert_str_eq(one, eight, "outputs differ between --max-seqs 1 and 8");
    /* A KV pool of a few blocks: sequences are preempted and recomputed,
     * job_metrics says so, and the outputs are still the same. */
    const char *dbp = tmp_path("preempt.db");
    char *small = reference_run(dbp, jobs, model, "--max-seqs 8 --kv-memory 200K --kv-block-size 8");
    cr_assert_str_eq(one, small, "outputs differ with a small KV pool");
    cr_assert_gt(query_i64(dbp, "SELECT sum(preemptions) FROM job_metrics"), 0,
                 "no preemption with a 200 KiB pool");
    free(small);
    expect_all_done_once(db8, 60);
    /* Metrics: every field a user queries is filled in. */
    cr_assert_eq(query_i64(db8, "SELECT count(*) FROM job_metrics WHERE worker_id IS NULL OR "
                                "model_hash NOT LIKE 'fh64:%' OR ttft_ms IS NULL OR e2e_ms IS "
                                "NULL OR prompt_tokens <= 0 OR completion_tokens <= 0 OR "
                                "mean_batch_size < 1"), 0);
    /* With 8 sequences some steps batched several. */
    cr_assert_gt(query_i64(db8, "SELECT max(mean_batch_size) * 100 FROM job_metrics"), 150);
    cr_assert_eq(query_i64(db1, "SELECT max(mean_batch_size) * 100 FROM job_metrics"), 100);
    free(one);
    free(eight);
}

/* A prompt longer than the context fails that job with a clear error; a
 * job asking for logprobs gets them; a score job gets its score; the rest
 * finish. */
Test(run, bad_job_fails_alone, .timeout = 120)
{
    const char *model = tiny_model();
    const char *jobs = tmp_path("mixed.jsonl");
    char long_prompt[8192] = "";
    for (int i = 0; i < 600; i++)
        strcat(long_prompt, "word ");
    char text[16384];
    snprintf(text, sizeof text,
             "{\"custom_id\": \"ok-1\", \"prompt\": \"hello\", \"max_tokens\": 5}\n"
             "{\"custom_id\": \"too-long\", \"prompt\": \"%s\", \"max_tokens\": 5}\n"
             "{\"custom_id\": \"lp\", \"prompt\": \"hi\", \"max_tokens\": 3, \"logprobs\": 2}\n"
             "{\"custom_id\": \"score\", \"context\": \"the sky is\", \"continuation\": \" blue\"}\n"
             "{\"custom_id\": \"chat\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n"
             "{\"custom_id\": \"ok-2\", \"prompt\": \"bye\", \"max_tokens\": 5}\n",
             long_prompt);
    rf_test_write_file(jobs, text);
    const char *db = tmp_path("mixed.db");
    cli_ok("submit", cli("submit '%s' '%s' --run m --quiet", db, jobs));
    result_t r = cli("run '%s' -m '%s' --ctx 256 --progress lines", db, model);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "too-long") && strstr(r.err, "more than the context of 256"),
              "stderr: %s", r.err);
    rf_test_result_free(&r);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), 4);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'failed' AND custom_id "
                               "IN ('too-long', 'chat') AND attempts = 1"), 2,
                 "permanent failures are not retried");
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE custom_id = 'chat' AND error "
                               "LIKE '%chat template%'"), 1);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results r JOIN jobs j USING (job_id) WHERE "
                               "custom_id = 'lp' AND r.logprobs IS NOT NULL"), 1);
    r = cli("export '%s' --run m --format simple", db);
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "\"sum_logprob\""), "%s", r.out);
    cr_assert(strstr(r.out, "\"top_logprobs\""), "%s", r.out);
    rf_test_result_free(&r);
}

/* A corrupt model file: a clear error naming it, exit 1, no job touched. */
Test(run, corrupt_model_is_a_clear_error, .timeout = 60)
{
    const char *model = tiny_model();
    const char *bad = tmp_path("bad.gguf");
    FILE *in = fopen(model, "rb"), *out = fopen(bad, "wb");
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, n, out); /* the header and part of the metadata only */
    fclose(in);
    fclose(out);
    const char *jobs = write_jobs("c.jsonl", 5, 3, NULL);
    const char *db = tmp_path("c.db");
    cli_ok("submit", cli("submit '%s' '%s' --run c --quiet", db, jobs));
    result_t r = cli("run '%s' -m '%s' --progress none", db, bad);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "bad.gguf") != NULL, "stderr: %s", r.err);
    rf_test_result_free(&r);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'queued' AND attempts = "
                               "0"), 5);
}

/* Two run processes on one database share the work: every job done once,
 * both did some, outputs equal a single run's. */
Test(run, two_workers_share_one_database, .timeout = 300)
{
    const char *model = tiny_model();
    const char *jobs = write_jobs("two.jsonl", TWO_JOBS, 4, NULL);
    char *ref = reference_run(tmp_path("ref.db"), jobs, model, "--max-seqs 4");
    const char *db = tmp_path("two.db");
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
    const char *log = tmp_path("two.log");
    pid_t a = spawn_run(db, model, "--max-seqs 2 -t 1 --worker-id A", log);
    pid_t b = spawn_run(db, model, "--max-seqs 2 -t 1 --worker-id B", log);
    cr_assert_eq(wait_exit(a), 0, "worker A: %s", rf_test_slurp(log));
    cr_assert_eq(wait_exit(b), 0, "worker B: %s", rf_test_slurp(log));
    expect_all_done_once(db, TWO_JOBS);
    cr_assert_gt(query_i64(db, "SELECT count(*) FROM job_metrics WHERE worker_id = 'A'"), 0);
    cr_assert_gt(query_i64(db, "SELECT count(*) FROM job_metrics WHERE worker_id = 'B'"), 0);
    cr_assert_eq(query_i64(db, "SELECT max(attempts) FROM jobs"), 1, "a job was claimed twice");
    char *got = export_simple(db, "r");
    cr_assert_str_eq(ref, got);
    free(ref);
    free(got);
}

/* kill -9 at 20 random moments, restarting each time: at the end every
 * job is done exactly once and every output equals an uninterrupted run's
 * (long generations resumed from checkpoints included). */
Test(run, kill_9_twenty_times_loses_nothing, .timeout = 600)
{
    const char *model = tiny_model();
    /* Enough work (about 31k tokens at four sequences a step) that the run
     * is still going at every kill, however fast the engine gets. */
    const char *jobs = write_jobs("crash.jsonl", CRASH_JOBS, 150, ", \"max_attempts\": 100");
    const char *opts = "--max-seqs 4 -t 1 --lease-ms 1000 --poll-ms 50 --checkpoint-tokens 8";
    char *ref = reference_run(tmp_path("crash-ref.db"), jobs, model, opts);
    const char *db = tmp_path("crash.db");
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
    const char *log = tmp_path("crash.log");
    srand(12345);
    int kills = 0, resumed_from_checkpoint = 0;
    for (int round = 0; round < CRASH_ROUNDS; round++) {
        pid_t pid = spawn_run(db, model, opts, log);
        sleep_ms(150 + rand() % 900);
        if (kill(pid, SIGKILL) == 0)
            kills++;
        wait_exit(pid);
        resumed_from_checkpoint +=
            query_i64(db, "SELECT count(*) FROM jobs WHERE checkpoint IS NOT NULL") > 0;
    }
    cr_assert_geq(kills, CRASH_ROUNDS * 3 / 4,
                  "the run finished before it could be killed often enough");
    cr_assert_gt(resumed_from_checkpoint, 0, "no kill left a checkpoint to resume");
    pid_t pid = spawn_run(db, model, opts, log);
    cr_assert_eq(wait_exit(pid), 0, "final run: %s", rf_test_slurp(log));
    expect_all_done_once(db, CRASH_JOBS);
    char *got = export_simple(db, "r");
    cr_assert_str_eq(ref, got, "outputs differ from the uninterrupted run");
    free(ref);
    free(got);
}

/* SIGTERM drains: exit 0, running jobs checkpointed and released (queued,
 * checkpoint kept, attempt not counted); the next run finishes them with
 * the outputs of an uninterrupted run. */
Test(run, sigterm_drains_and_resumes, .timeout = 300)
{
    const char *model = tiny_model();
    const char *jobs = write_jobs("drain.jsonl", DRAIN_JOBS, 200, NULL);
    const char *opts = "--max-seqs 4 -t 1 --checkpoint-tokens 4";
    char *ref = reference_run(tmp_path("drain-ref.db"), jobs, model, opts);
    const char *db = tmp_path("drain.db");
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
    const char *log = tmp_path("drain.log");
    pid_t pid = spawn_run(db, model, opts, log);
    /* Signal once the run is mid-way: its first checkpoints are written. */
    for (int waited = 0; waited < 30000; waited += 10) {
        if (query_i64(db, "SELECT count(*) FROM jobs WHERE checkpoint IS NOT NULL") > 0)
            break;
        sleep_ms(10);
    }
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid), 0, "drain: %s", rf_test_slurp(log));
    char *text = rf_test_slurp(log);
    cr_assert(strstr(text, "draining") != NULL, "%s", text);
    free(text);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'running'"), 0);
    cr_assert_gt(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'queued'"), 0,
                 "the run finished before the signal");
    cr_assert_gt(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'queued' AND checkpoint "
                               "IS NOT NULL AND attempts = 0"), 0);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM workers WHERE stopped_ms IS NOT NULL"), 1);
    cli_ok("resume", cli("run '%s' -m '%s' --progress none %s", db, model, opts));
    expect_all_done_once(db, DRAIN_JOBS);
    char *got = export_simple(db, "r");
    cr_assert_str_eq(ref, got);
    free(ref);
    free(got);
}

/* The database's filesystem fills up (a file-size limit stands in for a
 * full disk): the run stops with a clear error and exit 1, what it
 * committed is intact, and a later run finishes the rest. */
Test(run, full_disk_stops_cleanly, .timeout = 300)
{
    const char *model = tiny_model();
    const char *jobs = write_jobs("full.jsonl", FULL_JOBS, 20, NULL);
    const char *ref_db = tmp_path("full-ref.db");
    char *ref = reference_run(ref_db, jobs, model, "");
    /* Over a hundred results: a dictionary was trained for the run and later outputs
     * use it; status reports the ratio with and without. */
    cr_assert_geq(query_i64(ref_db, "SELECT count(*) FROM zstd_dicts"), 1);
    cr_assert_gt(query_i64(ref_db, "SELECT count(*) FROM results WHERE dict_id IS NOT NULL"), 0);
    result_t sr = cli("status '%s'", ref_db);
    cr_assert_eq(sr.status, 0);
    cr_assert(strstr(sr.out, "with a dictionary:") && !strstr(sr.out, "with a dictionary: 0 "),
              "%s", sr.out);
    rf_test_result_free(&sr);
    const char *db = tmp_path("full.db");
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
    struct stat st;
    cr_assert_eq(stat(db, &st), 0);
    /* Room for the database as submitted plus ~64 KiB of WAL. */
    long blocks = (long)(st.st_size / 512) + 128;
    const char *log = tmp_path("full.log");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "ulimit -f %ld; trap '' XFSZ; exec %s run '%s' -m '%s' "
             "--progress none --lease-ms 1000 >'%s' 2>&1", blocks, RF_BIN, db, model, log);
    int status = system(cmd);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 1, "exit %d: %s", status,
              rf_test_slurp(log));
    char *text = rf_test_slurp(log);
    cr_assert(strstr(text, "database error") && strstr(text, "committed so far are kept"),
              "%s", text);
    free(text);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM pragma_integrity_check WHERE "
                               "integrity_check <> 'ok'"), 0);
    int64_t done = query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'");
    cr_assert_lt(done, FULL_JOBS, "the limit did not bite");
    /* The done ones are complete: results and metrics for each. */
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM job_metrics"), done);
    cli_ok("rerun", cli("run '%s' -m '%s' --progress none --lease-ms 1000", db, model));
    expect_all_done_once(db, FULL_JOBS);
    char *got = export_simple(db, "r");
    cr_assert_str_eq(ref, got);
    free(ref);
    free(got);
}

/* `run --workers 2`: the launcher starts two worker processes on one
 * database (the claiming logic `--gpus` uses, one worker per GPU); every
 * job is done once by one of them, the outputs equal one worker's, and a
 * SIGTERM to the launcher drains both. */
Test(run, launcher_workers_share_and_drain, .timeout = 300)
{
    const char *model = tiny_model();
    const char *jobs = write_jobs("launch.jsonl", TWO_JOBS, 4, NULL);
    char *ref = reference_run(tmp_path("launch-ref.db"), jobs, model, "--max-seqs 2 -t 1");
    const char *db = tmp_path("launch.db");
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
    result_t r = cli("run '%s' -m '%s' --workers 2 --max-seqs 2 -t 1", db, model);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "starting 2 workers") != NULL, "%s", r.err);
    rf_test_result_free(&r);
    expect_all_done_once(db, TWO_JOBS);
    cr_assert_eq(query_i64(db, "SELECT count(DISTINCT worker_id) FROM job_metrics"), 2);
    cr_assert_eq(query_i64(db, "SELECT max(attempts) FROM jobs"), 1);
    char *got = export_simple(db, "r");
    cr_assert_str_eq(ref, got);
    free(got);
    free(ref);

    /* Drain: long jobs, SIGTERM to the launcher once checkpoints exist. */
    const char *long_jobs = write_jobs("launch-long.jsonl", DRAIN_JOBS, 200, NULL);
    const char *db2 = tmp_path("launch-drain.db");
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db2, long_jobs));
    const char *log = tmp_path("launch.log");
    pid_t pid = spawn_run(db2, model, "--workers 2 --max-seqs 2 -t 1 --checkpoint-tokens 4", log);
    for (int waited = 0; waited < 30000; waited += 10) {
        if (query_i64(db2, "SELECT count(*) FROM jobs WHERE checkpoint IS NOT NULL") > 0)
            break;
        sleep_ms(10);
    }
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid), 0, "launcher: %s", rf_test_slurp(log));
    cr_assert_eq(query_i64(db2, "SELECT count(*) FROM jobs WHERE state = 'running'"), 0);
    cr_assert_eq(query_i64(db2, "SELECT count(*) FROM workers WHERE stopped_ms IS NOT NULL"), 2,
                 "both workers drained: %s", rf_test_slurp(log));
}
