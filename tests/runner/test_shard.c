/* test_shard.c - `rocmforge shard` and `rocmforge merge` end to end
 *
 * The many-hosts workflow of docs/slurm.md on one machine: a job database
 * is sharded, the shards run as separate processes at the same time on the
 * synthetic "tiny" model, and merge brings their results back. The merged
 * database must export exactly what a single run of the same jobs exports,
 * with every job done once; merging again must change nothing; a shard
 * from another database, or a damaged one, must be refused whole; shard
 * must not overwrite its earlier output.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

typedef rf_test_result_t result_t;
typedef char path_t[512];

static void tmp(path_t out, const char *name)
{
    snprintf(out, sizeof(path_t), "%s", rf_test_tmp_path("shard", name));
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

static void tiny_model(path_t out)
{
    tmp(out, "tiny.gguf");
    cli_ok("synth", cli("synth --shape tiny --type q8_0 --seed 5 -o '%s'", out));
}

/* n jobs with seeds, some sampled, some greedy, some n = 2, some with
 * logprobs; prompts vary with salt (another salt: other inputs, same
 * custom_ids). */
static void write_jobs(path_t out, const char *name, int n, const char *salt)
{
    tmp(out, name);
    FILE *f = fopen(out, "w");
    cr_assert_not_null(f);
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"custom_id\": \"job-%d\", \"prompt\": \"%s %d %s\", \"max_tokens\": %d, "
                "\"temperature\": %s, \"seed\": %d%s%s}\n", i, salt, i * 7919 % 1000,
                i % 3 ? "the quick brown fox" : "", 2 + i % 7, i % 4 == 0 ? "0" : "0.9", i,
                i % 9 == 0 ? ", \"n\": 2" : "",
                i % 5 == 0 ? ", \"logprobs\": true, \"top_logprobs\": 2" : "");
    fclose(f);
}

static void submit(const char *db, const char *jobs)
{
    unlink(db);
    cli_ok("submit", cli("submit '%s' '%s' --run r --quiet", db, jobs));
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK, "%s", path);
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

static void exec_sql(const char *db_path, const char *sql)
{
    sqlite3 *db = open_db(db_path);
    char *msg = NULL;
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql, msg);
    sqlite3_close(db);
}

/* Every row of every table merge writes, as one string (free it): equal
 * digests mean nothing changed. */
static char *digest(const char *db_path)
{
    static const char *const sqls[] = {
        "SELECT run_id, name, defaults, status FROM runs ORDER BY run_id",
        "SELECT job_id, run_id, custom_id, input_hash, state, attempts, claimed_ms, "
        "finished_ms, error, hex(checkpoint), lease_owner FROM jobs ORDER BY job_id",
        "SELECT job_id, sample, hex(output), dict_id, finish_reason, hex(logprobs), created_ms "
        "FROM results ORDER BY job_id, sample",
        "SELECT * FROM job_metrics ORDER BY job_id",
        "SELECT dict_id, run_id, n_samples, hex(dict) FROM zstd_dicts ORDER BY dict_id",
        "SELECT * FROM workers ORDER BY worker_id",
    };
    sqlite3 *db = open_db(db_path);
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    for (size_t q = 0; q < sizeof sqls / sizeof sqls[0]; q++) {
        sqlite3_stmt *st;
        cr_assert_eq(sqlite3_prepare_v2(db, sqls[q], -1, &st, NULL), SQLITE_OK, "%s",
                     sqlite3_errmsg(db));
        while (sqlite3_step(st) == SQLITE_ROW) {
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const char *v = (const char *)sqlite3_column_text(st, c);
                size_t n = v ? strlen(v) : 4;
                while (len + n + 2 >= cap) {
                    cap *= 2;
                    out = realloc(out, cap);
                    cr_assert_not_null(out);
                }
                memcpy(out + len, v ? v : "NULL", n);
                len += n;
                out[len++] = c + 1 < sqlite3_column_count(st) ? '|' : '\n';
            }
        }
        sqlite3_finalize(st);
    }
    out[len] = '\0';
    sqlite3_close(db);
    return out;
}

static char *export_simple(const char *db)
{
    result_t r = cli("export '%s' --run r --format simple", db);
    cr_assert_eq(r.status, 0, "export %s: %s", db, r.err);
    char *out = r.out;
    r.out = NULL;
    rf_test_result_free(&r);
    return out;
}

/* Start `rocmforge run` without waiting; returns the pid. */
static pid_t spawn_run(const char *db, const char *model, const char *log)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "exec %s run '%s' -m '%s' --progress none -t 1 --max-seqs 4 "
             ">>'%s' 2>&1", RF_BIN, db, model, log);
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

static void shard_path(path_t out, const char *prefix, int k)
{
    int n = snprintf(out, sizeof(path_t), "%s.%d.db", prefix, k);
    cr_assert(n > 0 && (size_t)n < sizeof(path_t));
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---------------------------------------------------------------- tests */

/* Shard into 3, run the shards in parallel, merge: the database exports
 * what a single run exports, every job done once, by the shards' workers.
 * Merging into a new file gives the same; merging again changes nothing. */
Test(shard, three_shards_in_parallel_equal_one_run, .timeout = 600)
{
    enum { N_JOBS = 240 };
    path_t model, jobs, ref, db, prefix, log, fresh;
    tiny_model(model);
    write_jobs(jobs, "jobs.jsonl", N_JOBS, "prompt");
    tmp(ref, "ref.db");
    tmp(db, "src.db");
    tmp(prefix, "src.part");
    tmp(log, "runs.log");
    tmp(fresh, "fresh.db");

    submit(ref, jobs);
    cli_ok("reference run",
           cli("run '%s' -m '%s' --progress none -t 2 --max-seqs 4", ref, model));
    char *want = export_simple(ref);
    int lines = 0;
    for (const char *p = want; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, N_JOBS, "reference export: %s", want);

    submit(db, jobs);
    cli_ok("shard", cli("shard '%s' --into 3 -o '%s'", db, prefix));
    /* Balanced, disjoint, complete, same ids; the source's jobs are marked. */
    path_t shards[3];
    int64_t total = 0;
    for (int k = 0; k < 3; k++) {
        shard_path(shards[k], prefix, k);
        int64_t n = query_i64(shards[k], "SELECT count(*) FROM jobs WHERE state = 'queued'");
        cr_assert_eq(n, N_JOBS / 3, "shard %d has %lld jobs", k, (long long)n);
        cr_assert_eq(query_i64(shards[k], "SELECT count(*) FROM runs WHERE name = 'r'"), 1);
        cr_assert_eq(query_i64(shards[k], "PRAGMA user_version"),
                     query_i64(db, "PRAGMA user_version"));
        total += n;
    }
    cr_assert_eq(total, N_JOBS);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'cancelled' AND "
                               "error LIKE 'sharded into %.part._.db'"), N_JOBS);
    /* Running the source now does nothing twice: no job is left to claim. */
    cli_ok("run the sharded source", cli("run '%s' -m '%s' --progress none -t 1", db, model));
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM results"), 0);

    pid_t pids[3];
    for (int k = 0; k < 3; k++)
        pids[k] = spawn_run(shards[k], model, log);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(wait_exit(pids[k]), 0, "run of shard %d failed: %s", k,
                     rf_test_slurp(log));

    result_t r = cli("merge '%s' '%s' '%s' '%s'", db, shards[0], shards[1], shards[2]);
    cr_assert_eq(r.status, 0, "merge: %s%s", r.out, r.err);
    cr_assert(strstr(r.out, "80 jobs merged (80 done") != NULL, "%s", r.out);
    rf_test_result_free(&r);

    char *got = export_simple(db);
    cr_assert_str_eq(got, want, "merged results differ from a single run's");
    /* Every job done once, with its n results and one metrics row written
     * by one of the three shard workers, and nothing left leased. */
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done' AND "
                               "attempts = 1 AND error IS NULL"), N_JOBS);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs j WHERE (SELECT count(*) FROM "
                               "results r WHERE r.job_id = j.job_id) <> "
                               "json_extract(j.params, '$.n')"), 0);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM job_metrics m JOIN workers w "
                               "USING (worker_id)"), N_JOBS);
    cr_assert_eq(query_i64(db, "SELECT count(DISTINCT worker_id) FROM job_metrics"), 3);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE lease_owner IS NOT NULL OR "
                               "checkpoint IS NOT NULL"), 0);

    /* Merging the same shards again changes nothing. */
    char *before = digest(db);
    r = cli("merge '%s' '%s' '%s' '%s'", db, shards[0], shards[1], shards[2]);
    cr_assert_eq(r.status, 0, "second merge: %s%s", r.out, r.err);
    cr_assert(strstr(r.out, "0 jobs merged") != NULL, "%s", r.out);
    rf_test_result_free(&r);
    char *after = digest(db);
    cr_assert_str_eq(after, before, "merging again changed the database");
    /* Each shard trained its own dictionary; all three came over, and the
     * export above decoded frames made with them. */
    cr_assert_eq(query_i64(db, "SELECT count(DISTINCT dict_id) FROM results WHERE dict_id "
                               "IS NOT NULL"), 3);

    /* A shard dictionary that shares its id with a different dictionary of
     * the target is refused: its frames would not decode there. */
    exec_sql(shards[1], "CREATE TABLE kept AS SELECT dict_id, dict FROM zstd_dicts; "
                        "UPDATE zstd_dicts SET dict = randomblob(length(dict))");
    r = cli("merge '%s' '%s'", db, shards[1]);
    cr_assert_eq(r.status, 1, "%s", r.out);
    cr_assert(strstr(r.err, "zstd dictionary") != NULL && strstr(r.err, "collide") != NULL,
              "%s", r.err);
    rf_test_result_free(&r);
    free(after);
    after = digest(db);
    cr_assert_str_eq(after, before, "a refused shard changed the database");
    exec_sql(shards[1], "UPDATE zstd_dicts SET dict = (SELECT k.dict FROM kept k WHERE "
                        "k.dict_id = zstd_dicts.dict_id); DROP TABLE kept");

    /* A new file gets the same results (dictionaries and all). */
    unlink(fresh);
    cli_ok("merge into a new file",
           cli("merge '%s' '%s' '%s' '%s'", fresh, shards[2], shards[0], shards[1]));
    char *fresh_export = export_simple(fresh);
    cr_assert_str_eq(fresh_export, want);
    cr_assert_eq(query_i64(fresh, "SELECT count(*) FROM jobs WHERE state = 'done'"), N_JOBS);
    free(fresh_export);
    free(before);
    free(after);
    free(got);
    free(want);
}

/* A shard whose jobs do not match the target's (another database, or a
 * tampered input) is refused and nothing of it is written, though it holds
 * finished jobs; files that are not job databases are refused by name. */
Test(shard, mismatched_shard_is_refused_whole, .timeout = 300)
{
    path_t model, jobs, other_jobs, db, other, prefix, notdb;
    tiny_model(model);
    write_jobs(jobs, "m.jsonl", 20, "prompt");
    write_jobs(other_jobs, "o.jsonl", 20, "other");
    tmp(db, "m.db");
    tmp(other, "o.db");
    tmp(prefix, "m.part");
    tmp(notdb, "notes.txt");
    submit(db, jobs);
    submit(other, other_jobs);
    cli_ok("shard", cli("shard '%s' --into 2 -o '%s'", db, prefix));
    path_t s0;
    shard_path(s0, prefix, 0);
    cli_ok("run shard 0", cli("run '%s' -m '%s' --progress none -t 2", s0, model));
    cr_assert_eq(query_i64(s0, "SELECT count(*) FROM jobs WHERE state = 'done'"), 10);

    /* Same custom_ids, other inputs: refused. */
    char *other_before = digest(other);
    result_t r = cli("merge '%s' '%s'", other, s0);
    cr_assert_eq(r.status, 1, "merge into another database: %s%s", r.out, r.err);
    cr_assert(strstr(r.err, "does not match") != NULL && strstr(r.err, s0) != NULL, "%s",
              r.err);
    rf_test_result_free(&r);
    char *other_after = digest(other);
    cr_assert_str_eq(other_after, other_before);

    /* One tampered job makes the whole shard refused, the good jobs too. */
    char *db_before = digest(db);
    exec_sql(s0, "UPDATE jobs SET input_hash = 'x' || input_hash WHERE job_id = "
                 "(SELECT max(job_id) FROM jobs)");
    r = cli("merge '%s' '%s'", db, s0);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "does not match") != NULL, "%s", r.err);
    rf_test_result_free(&r);
    char *db_after = digest(db);
    cr_assert_str_eq(db_after, db_before);

    /* Not a job database; not there. */
    rf_test_write_file(notdb, "just some notes\n");
    r = cli("merge '%s' '%s' '%s.missing'", db, notdb, s0);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, notdb) != NULL && strstr(r.err, ".missing does not exist") != NULL,
              "%s", r.err);
    rf_test_result_free(&r);
    free(db_after);
    cr_assert_str_eq(db_after = digest(db), db_before);

    /* Undo the tampering: now it merges, its 10 done jobs and no more. */
    exec_sql(s0, "UPDATE jobs SET input_hash = substr(input_hash, 2) WHERE job_id = "
                 "(SELECT max(job_id) FROM jobs)");
    cli_ok("merge", cli("merge '%s' '%s'", db, s0));
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'done'"), 10);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'cancelled' AND "
                               "error LIKE 'sharded into %.part.1.db'"), 10);
    free(other_before);
    free(other_after);
    free(db_before);
    free(db_after);
}

/* shard never overwrites earlier shards unless --force; it deals jobs the
 * same way every time; a database with nothing queued is an error. */
Test(shard, refuses_to_overwrite, .timeout = 120)
{
    path_t jobs, db, prefix, s0, s1;
    write_jobs(jobs, "w.jsonl", 21, "prompt");
    tmp(db, "w.db");
    tmp(prefix, "w.part");
    submit(db, jobs);
    cli_ok("shard", cli("shard '%s' --into 2 -o '%s' --leave-queued", db, prefix));
    shard_path(s0, prefix, 0);
    shard_path(s1, prefix, 1);
    cr_assert_eq(query_i64(s0, "SELECT count(*) FROM jobs"), 11);
    cr_assert_eq(query_i64(s1, "SELECT count(*) FROM jobs"), 10);
    /* Round robin in job_id order. */
    cr_assert_eq(query_i64(s0, "SELECT count(*) FROM jobs WHERE (job_id - (SELECT min(job_id) "
                               "FROM jobs)) % 2 <> 0"), 0);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'queued'"), 21);

    exec_sql(s0, "UPDATE jobs SET state = 'cancelled' WHERE job_id IN "
                 "(SELECT min(job_id) FROM jobs)");
    char *before = digest(s0);
    result_t r = cli("shard '%s' --into 3 -o '%s' --leave-queued", db, prefix);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "already exists") != NULL && strstr(r.err, "--force") != NULL,
              "%s", r.err);
    rf_test_result_free(&r);
    char *after = digest(s0);
    cr_assert_str_eq(after, before, "a refused shard changed an existing shard file");
    path_t s2;
    shard_path(s2, prefix, 2);
    cr_assert(!file_exists(s2), "a refused shard wrote %s", s2);

    cli_ok("shard --force", cli("shard '%s' --into 3 -o '%s' --force", db, prefix));
    cr_assert_eq(query_i64(s0, "SELECT count(*) FROM jobs WHERE state = 'queued'"), 7);
    cr_assert_eq(query_i64(s2, "SELECT count(*) FROM jobs"), 7);
    cr_assert_eq(query_i64(db, "SELECT count(*) FROM jobs WHERE state = 'cancelled'"), 21);

    /* Nothing queued any more: an error, and no files. */
    path_t prefix2, t0;
    tmp(prefix2, "w.again");
    r = cli("shard '%s' --into 2 -o '%s'", db, prefix2);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no queued jobs") != NULL, "%s", r.err);
    rf_test_result_free(&r);
    shard_path(t0, prefix2, 0);
    cr_assert(!file_exists(t0));
    free(before);
    free(after);
}
