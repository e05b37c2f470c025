/* cmd_status.c - `rocmforge runs` and `rocmforge status`: look at a job database
 *
 * runs lists every run with its jobs per state. status reports one run (or
 * the whole database): jobs per state, tokens of the done jobs, throughput
 * over the last minutes and the time left at that rate, running jobs whose
 * lease expired (a worker that stopped), failures grouped by message,
 * rejected input lines and how well outputs compress. Both open the
 * database read-only and change nothing; --json prints one object for
 * scripts (docs/cli.md lists its fields).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "db.h"
#include "jobq.h"

/* ---------------------------------------------------------------- types */

enum { MAX_LISTED = 10 }; /* expired leases and error kinds shown */

typedef struct throughput {
    int64_t window_ms;         /* the last --window minutes, cut to when work began */
    int64_t jobs;              /* jobs whose results were written in the window */
    int64_t completion_tokens; /* their completion tokens */
    double jobs_per_s, tokens_per_s;
    double mean_ttft_ms, mean_e2e_ms, mean_decode_tokens_per_s; /* job_metrics; < 0: none */
} throughput_t;

typedef struct compression {
    int64_t outputs, output_bytes, stored_bytes;
} compression_t;

/* ---------------------------------------------------------------- helpers */

static int fail_db(const char *cmd, rf_db_t *db, int rc, const char *what)
{
    rf_err_t err = {0};
    rc = rf_db_error(db, rc, what, &err);
    rf__cli_error(cmd, "%s", err.msg);
    return rc;
}

/* Prepare sql with ?1 = run_id (<= 0: every run) and ?2 = extra. */
static int prepare(const char *cmd, rf_db_t *db, const char *sql, int64_t run_id, int64_t extra,
                   sqlite3_stmt **stmt)
{
    rf_err_t err = {0};
    int rc = rf_db_prepare(db, sql, stmt, &err);
    if (rc < 0) {
        rf__cli_error(cmd, "%s", err.msg);
        return rc;
    }
    sqlite3_bind_int64(*stmt, 1, run_id);
    if (sqlite3_bind_parameter_count(*stmt) >= 2)
        sqlite3_bind_int64(*stmt, 2, extra);
    return 0;
}

/* One row of integers from sql into out[0..n). */
static int query_ints(const char *cmd, rf_db_t *db, const char *sql, int64_t run_id,
                      int64_t extra, int64_t *out, int n)
{
    sqlite3_stmt *stmt;
    int rc = prepare(cmd, db, sql, run_id, extra, &stmt);
    if (rc < 0)
        return rc;
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        for (int i = 0; i < n; i++)
            out[i] = sqlite3_column_int64(stmt, i);
        rc = 0;
    } else {
        rc = fail_db(cmd, db, step == SQLITE_DONE ? SQLITE_ERROR : step, sql);
    }
    rf_db_done(stmt);
    return rc;
}

static double ratio(int64_t num, int64_t den)
{
    return den > 0 ? (double)num / (double)den : 0.0;
}

static int64_t total_of(const rf_jobq_counts_t *c)
{
    return c->queued + c->running + c->done + c->failed + c->cancelled;
}

static json_t *counts_json(const rf_jobq_counts_t *c)
{
    return json_pack("{sI sI sI sI sI sI sI}", "queued", (json_int_t)c->queued, "running",
                     (json_int_t)c->running, "done", (json_int_t)c->done, "failed",
                     (json_int_t)c->failed, "cancelled", (json_int_t)c->cancelled, "total",
                     (json_int_t)total_of(c), "expired", (json_int_t)c->expired);
}

static int print_json(json_t *obj)
{
    if (obj == NULL) {
        rf__cli_error("status", "out of memory");
        return RF_EXIT_FAIL;
    }
    int rc = json_dumpf(obj, stdout, JSON_COMPACT);
    json_decref(obj);
    fputc('\n', stdout);
    return rc == 0 ? RF_EXIT_OK : RF_EXIT_FAIL;
}

/* "1h 02m", "3m 05s", "42 s": a duration for people. */
static void format_duration(double seconds, char *buf, size_t size)
{
    long long s = (long long)(seconds + 0.5);
    if (s >= 86400)
        snprintf(buf, size, "%lldd %02lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, size, "%lldh %02lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, size, "%lldm %02llds", s / 60, s % 60);
    else
        snprintf(buf, size, "%lld s", s);
}

/* ---------------------------------------------------------------- runs */

static void runs_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge runs DB [--json]\n"
            "\n"
            "List the runs of the job database DB: name, when it was created, its jobs per\n"
            "state and how many are done. The database is opened read-only.\n"
            "\n"
            "options:\n"
            "      --json       one JSON object: {\"database\", \"runs\": [{\"run_id\", \"name\",\n"
            "                   \"status\", \"created_ms\", \"jobs\": {\"queued\", \"running\", \"done\",\n"
            "                   \"failed\", \"cancelled\", \"total\"}}]}\n"
            "  -h, --help       show this help\n");
}

static const char RUNS_SQL[] =
    "SELECT r.run_id, r.name, r.status, r.created_ms, "
    "  coalesce(sum(j.state = 'queued'), 0), coalesce(sum(j.state = 'running'), 0), "
    "  coalesce(sum(j.state = 'done'), 0), coalesce(sum(j.state = 'failed'), 0), "
    "  coalesce(sum(j.state = 'cancelled'), 0) "
    "FROM runs r LEFT JOIN jobs j ON j.run_id = r.run_id "
    "GROUP BY r.run_id ORDER BY r.run_id";

int rf__cmd_runs(int argc, char **argv)
{
    static const struct option long_options[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool as_json = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'h') {
            runs_usage(stdout);
            return RF_EXIT_OK;
        } else if (c == 'j') {
            as_json = true;
        } else {
            rf__cli_error("runs", "unknown option '%s'; see 'rocmforge runs --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        rf__cli_error("runs", "expected one argument, the database; see 'rocmforge runs --help'");
        return RF_EXIT_USAGE;
    }
    rf_db_t *db = NULL;
    if (rf__cli_open_db("runs", argv[optind], RF_DB_READONLY, &db) < 0)
        return RF_EXIT_FAIL;
    sqlite3_stmt *stmt;
    int status = RF_EXIT_FAIL;
    json_t *runs = as_json ? json_array() : NULL;
    if (prepare("runs", db, RUNS_SQL, 0, 0, &stmt) < 0)
        goto done;
    if (!as_json)
        printf("%-24s %-20s %8s %8s %8s %8s %9s  %s\n", "RUN", "CREATED", "QUEUED", "RUNNING",
               "DONE", "FAILED", "CANCELLED", "DONE/TOTAL");
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(stmt, 1);
        const char *run_status = (const char *)sqlite3_column_text(stmt, 2);
        rf_jobq_counts_t n = {
            .queued = sqlite3_column_int64(stmt, 4),
            .running = sqlite3_column_int64(stmt, 5),
            .done = sqlite3_column_int64(stmt, 6),
            .failed = sqlite3_column_int64(stmt, 7),
            .cancelled = sqlite3_column_int64(stmt, 8),
        };
        int64_t created_ms = sqlite3_column_int64(stmt, 3), total = total_of(&n);
        if (as_json) {
            json_t *counts = counts_json(&n);
            json_object_del(counts, "expired");
            json_t *run = json_pack("{sI ss ss sI so}", "run_id",
                                    (json_int_t)sqlite3_column_int64(stmt, 0), "name",
                                    name ? name : "", "status", run_status ? run_status : "",
                                    "created_ms", (json_int_t)created_ms, "jobs", counts);
            if (run == NULL || json_array_append_new(runs, run) < 0) {
                rf__cli_error("runs", "out of memory");
                rf_db_done(stmt);
                goto done;
            }
            continue;
        }
        char created[32];
        rf__cli_format_time(created_ms, created, sizeof created);
        printf("%-24s %-20s %8lld %8lld %8lld %8lld %9lld  %lld/%lld (%.1f%%)%s\n",
               name ? name : "", created, (long long)n.queued, (long long)n.running,
               (long long)n.done, (long long)n.failed, (long long)n.cancelled,
               (long long)n.done, (long long)total, 100.0 * ratio(n.done, total),
               run_status && strcmp(run_status, "cancelled") == 0 ? "  [cancelled]" : "");
    }
    rf_db_done(stmt);
    if (step != SQLITE_DONE) {
        fail_db("runs", db, step, "list runs");
        goto done;
    }
    if (as_json) {
        json_t *obj = json_pack("{ss sO}", "database", argv[optind], "runs", runs);
        status = print_json(obj);
    } else {
        status = RF_EXIT_OK;
    }
done:
    json_decref(runs);
    rf_db_close(db);
    return status;
}

/* ---------------------------------------------------------------- status */

static void status_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge status DB [--run NAME] [--window MINUTES] [--json]\n"
            "\n"
            "Report on the job database DB (every run, or run NAME): jobs per state, tokens\n"
            "of the done jobs, throughput over the last MINUTES (completion tokens/s and\n"
            "jobs/s from when results were written) and the time left at that rate, running\n"
            "jobs whose lease expired (their worker stopped; the next 'rocmforge run' takes\n"
            "them over), failed jobs grouped by error, rejected input lines, and the\n"
            "compression of stored outputs (with and without a trained dictionary).\n"
            "The database is opened read-only.\n"
            "\n"
            "options:\n"
            "      --run NAME         only this run\n"
            "      --window MINUTES   throughput window, 1..10080 (default 10)\n"
            "      --json             one JSON object (fields in docs/cli.md)\n"
            "  -h, --help             show this help\n");
}

/* Filter for a query on jobs j: ?1 <= 0 means every run. */
#define RUN_FILTER "(?1 <= 0 OR j.run_id = ?1)"

static int query_throughput(rf_db_t *db, int64_t run_id, int64_t now_ms, int64_t window_ms,
                            throughput_t *t)
{
    int64_t since = now_ms - window_ms, v[3];
    int rc = query_ints("status", db,
                        "SELECT count(DISTINCT r.job_id), coalesce(sum(r.completion_tokens), 0), "
                        "  coalesce((SELECT min(j.claimed_ms) FROM jobs j WHERE " RUN_FILTER
                        "    AND j.claimed_ms IS NOT NULL), 0) "
                        "FROM results r JOIN jobs j ON j.job_id = r.job_id "
                        "WHERE " RUN_FILTER " AND r.created_ms >= ?2",
                        run_id, since, v, 3);
    if (rc < 0)
        return rc;
    /* A run that started inside the window has worked for less than it. */
    int64_t start = v[2] > since ? v[2] : since;
    *t = (throughput_t){.window_ms = now_ms - start, .jobs = v[0], .completion_tokens = v[1],
                        .mean_ttft_ms = -1, .mean_e2e_ms = -1, .mean_decode_tokens_per_s = -1};
    if (t->window_ms > 0) {
        t->jobs_per_s = (double)t->jobs * 1000.0 / (double)t->window_ms;
        t->tokens_per_s = (double)t->completion_tokens * 1000.0 / (double)t->window_ms;
    }
    sqlite3_stmt *stmt;
    rc = prepare("status", db,
                 "SELECT avg(m.ttft_ms), avg(m.e2e_ms), avg(m.decode_tokens_per_s) "
                 "FROM job_metrics m JOIN jobs j ON j.job_id = m.job_id "
                 "WHERE " RUN_FILTER " AND j.state = 'done' AND j.finished_ms >= ?2",
                 run_id, since, &stmt);
    if (rc < 0)
        return rc;
    int step = sqlite3_step(stmt);
    if (step == SQLITE_ROW) {
        double *out[] = {&t->mean_ttft_ms, &t->mean_e2e_ms, &t->mean_decode_tokens_per_s};
        for (int i = 0; i < 3; i++)
            if (sqlite3_column_type(stmt, i) != SQLITE_NULL)
                *out[i] = sqlite3_column_double(stmt, i);
    } else {
        rc = fail_db("status", db, step, "read job_metrics");
    }
    rf_db_done(stmt);
    return rc;
}

static int query_compression(rf_db_t *db, int64_t run_id, compression_t *with_dict,
                             compression_t *without_dict)
{
    *with_dict = *without_dict = (compression_t){0};
    sqlite3_stmt *stmt;
    int rc = prepare("status", db,
                     "SELECT r.dict_id IS NOT NULL, count(*), sum(r.output_bytes), "
                     "  sum(length(r.output)) "
                     "FROM results r JOIN jobs j ON j.job_id = r.job_id WHERE " RUN_FILTER
                     " GROUP BY r.dict_id IS NOT NULL",
                     run_id, 0, &stmt);
    if (rc < 0)
        return rc;
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        compression_t *c = sqlite3_column_int(stmt, 0) ? with_dict : without_dict;
        *c = (compression_t){sqlite3_column_int64(stmt, 1), sqlite3_column_int64(stmt, 2),
                             sqlite3_column_int64(stmt, 3)};
    }
    if (step != SQLITE_DONE)
        rc = fail_db("status", db, step, "sum output sizes");
    rf_db_done(stmt);
    return rc;
}

static json_t *compression_json(const compression_t *c)
{
    return json_pack("{sI sI sI sf}", "outputs", (json_int_t)c->outputs, "output_bytes",
                     (json_int_t)c->output_bytes, "stored_bytes", (json_int_t)c->stored_bytes,
                     "ratio", ratio(c->output_bytes, c->stored_bytes));
}

static void print_compression(const char *label, const compression_t *c)
{
    printf("%s %lld outputs, %lld bytes stored as %lld (%.2fx)", label, (long long)c->outputs,
           (long long)c->output_bytes, (long long)c->stored_bytes,
           ratio(c->output_bytes, c->stored_bytes));
}

static const char EXPIRED_SQL[] =
    "SELECT j.job_id, j.custom_id, j.lease_owner, j.lease_expires_ms, j.attempts, "
    "  j.max_attempts "
    "FROM jobs j WHERE " RUN_FILTER " AND j.state = 'running' AND j.lease_expires_ms < ?2 "
    "ORDER BY j.lease_expires_ms LIMIT 10";

static const char ERRORS_SQL[] =
    "SELECT CASE WHEN instr(j.error, char(10)) > 0 "
    "  THEN substr(j.error, 1, instr(j.error, char(10)) - 1) ELSE j.error END AS kind, "
    "  count(*), min(j.custom_id) "
    "FROM jobs j WHERE " RUN_FILTER " AND j.state = 'failed' "
    "GROUP BY kind ORDER BY count(*) DESC, kind LIMIT 10";

/* Rows of the expired-lease and error queries, as JSON or printed. */
static int list_expired(rf_db_t *db, int64_t run_id, int64_t now_ms, int64_t n_expired,
                        json_t *out)
{
    sqlite3_stmt *stmt;
    int rc = prepare("status", db, EXPIRED_SQL, run_id, now_ms, &stmt);
    if (rc < 0)
        return rc;
    if (out == NULL && n_expired > 0)
        printf("leases      %lld running job%s with an expired lease (the worker stopped; the "
               "next 'rocmforge run' takes %s over):\n",
               (long long)n_expired, n_expired == 1 ? "" : "s", n_expired == 1 ? "it" : "them");
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *cid = (const char *)sqlite3_column_text(stmt, 1);
        const char *owner = (const char *)sqlite3_column_text(stmt, 2);
        int64_t expires = sqlite3_column_int64(stmt, 3);
        if (out != NULL) {
            json_t *row = json_pack("{sI ss ss sI sI sI}", "job_id",
                                    (json_int_t)sqlite3_column_int64(stmt, 0), "custom_id",
                                    cid ? cid : "", "lease_owner", owner ? owner : "",
                                    "lease_expires_ms", (json_int_t)expires, "attempts",
                                    (json_int_t)sqlite3_column_int64(stmt, 4), "max_attempts",
                                    (json_int_t)sqlite3_column_int64(stmt, 5));
            json_array_append_new(out, row);
            continue;
        }
        char ago[32];
        format_duration((double)(now_ms - expires) / 1000.0, ago, sizeof ago);
        printf("            %s (job_id %lld): worker %s, expired %s ago, attempt %lld of %lld\n",
               cid ? cid : "", (long long)sqlite3_column_int64(stmt, 0), owner ? owner : "?",
               ago, (long long)sqlite3_column_int64(stmt, 4),
               (long long)sqlite3_column_int64(stmt, 5));
    }
    if (step != SQLITE_DONE)
        rc = fail_db("status", db, step, "list expired leases");
    else if (out == NULL && n_expired > MAX_LISTED)
        printf("            ... and %lld more\n", (long long)(n_expired - MAX_LISTED));
    rf_db_done(stmt);
    return rc;
}

static int list_errors(rf_db_t *db, int64_t run_id, int64_t n_failed, json_t *out)
{
    sqlite3_stmt *stmt;
    int rc = prepare("status", db, ERRORS_SQL, run_id, 0, &stmt);
    if (rc < 0)
        return rc;
    if (out == NULL && n_failed > 0)
        printf("errors      %lld failed job%s, by error (count, error, an example custom_id):\n",
               (long long)n_failed, n_failed == 1 ? "" : "s");
    int step, n_kinds = 0;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *kind = (const char *)sqlite3_column_text(stmt, 0);
        const char *cid = (const char *)sqlite3_column_text(stmt, 2);
        int64_t n = sqlite3_column_int64(stmt, 1);
        n_kinds++;
        if (out != NULL) {
            json_t *row = json_pack("{so sI ss}", "error",
                                    kind ? rf__json_from_bytes(kind, strlen(kind)) : json_null(),
                                    "count", (json_int_t)n, "example_custom_id", cid ? cid : "");
            json_array_append_new(out, row);
        } else {
            printf("  %8lld  %s  (e.g. %s)\n", (long long)n, kind ? kind : "(no message)",
                   cid ? cid : "");
        }
    }
    if (step != SQLITE_DONE)
        rc = fail_db("status", db, step, "group errors");
    else if (out == NULL && n_kinds == MAX_LISTED)
        printf("  ... (the %d most frequent errors; all: sqlite3 DB \"SELECT error, count(*) "
               "FROM jobs WHERE state = 'failed' GROUP BY error\")\n", MAX_LISTED);
    rf_db_done(stmt);
    return rc;
}

int rf__cmd_status(int argc, char **argv)
{
    enum { OPT_RUN = 256, OPT_WINDOW, OPT_JSON };
    static const struct option long_options[] = {
        {"run", required_argument, NULL, OPT_RUN},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *run_name = NULL;
    bool as_json = false;
    long window_min = 10;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (c == 'h') {
            status_usage(stdout);
            return RF_EXIT_OK;
        } else if (c == OPT_RUN) {
            run_name = optarg;
        } else if (c == OPT_JSON) {
            as_json = true;
        } else if (c == OPT_WINDOW) {
            char *end;
            window_min = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || window_min < 1 || window_min > 10080) {
                rf__cli_error("status", "bad value '%s' for --window: minutes, 1..10080", optarg);
                return RF_EXIT_USAGE;
            }
        } else {
            rf__cli_error("status", "unknown or incomplete option '%s'; see 'rocmforge status "
                          "--help'", argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        rf__cli_error("status", "expected one argument, the database; see 'rocmforge status "
                      "--help'");
        return RF_EXIT_USAGE;
    }
    const char *path = argv[optind];
    rf_db_t *db = NULL;
    if (rf__cli_open_db("status", path, RF_DB_READONLY, &db) < 0)
        return RF_EXIT_FAIL;
    int status = RF_EXIT_FAIL;
    json_t *obj = NULL;
    int64_t run_id = 0, now_ms = rf__cli_now_ms();
    /* One read transaction: every figure comes from the same snapshot. */
    rf_err_t err = {0};
    if (rf_db_exec(db, "BEGIN", "begin read", &err) < 0) {
        rf__cli_error("status", "%s", err.msg);
        goto done;
    }
    if (run_name != NULL && rf__cli_find_run("status", db, run_name, &run_id) < 0)
        goto done;
    rf_jobq_counts_t counts;
    if (rf_jobq_counts(db, run_id, now_ms, &counts, &err) < 0) {
        rf__cli_error("status", "%s", err.msg);
        goto done;
    }
    int64_t tokens[2] = {0, 0}, rejected = 0;
    throughput_t t;
    compression_t with_dict, without_dict;
    if (query_ints("status", db,
                   "SELECT coalesce(sum(CASE WHEN r.sample = 0 THEN r.prompt_tokens END), 0), "
                   "  coalesce(sum(r.completion_tokens), 0) "
                   "FROM results r JOIN jobs j ON j.job_id = r.job_id WHERE " RUN_FILTER,
                   run_id, 0, tokens, 2) < 0 ||
        query_ints("status", db,
                   "SELECT count(*) FROM rejected_lines j WHERE " RUN_FILTER, run_id, 0,
                   &rejected, 1) < 0 ||
        query_throughput(db, run_id, now_ms, (int64_t)window_min * 60000, &t) < 0 ||
        query_compression(db, run_id, &with_dict, &without_dict) < 0)
        goto done;
    compression_t all = {with_dict.outputs + without_dict.outputs,
                         with_dict.output_bytes + without_dict.output_bytes,
                         with_dict.stored_bytes + without_dict.stored_bytes};
    int64_t remaining = counts.queued + counts.running;
    double eta_s = t.jobs_per_s > 0 ? (double)remaining / t.jobs_per_s : -1;

    if (as_json) {
        json_t *expired = json_array(), *errors = json_array();
        obj = json_pack(
            "{ss ss? so so s{sI sI} s{sf sI sI sf sf so? so? so?} sI so? so so sI "
            " s{so so so}}",
            "database", path, "run", run_name, "now_ms",
            json_integer(now_ms), "jobs", counts_json(&counts), "tokens", "prompt",
            (json_int_t)tokens[0], "completion", (json_int_t)tokens[1], "throughput",
            "window_s", (double)t.window_ms / 1000.0, "jobs", (json_int_t)t.jobs,
            "completion_tokens", (json_int_t)t.completion_tokens, "jobs_per_s", t.jobs_per_s,
            "completion_tokens_per_s", t.tokens_per_s, "mean_ttft_ms",
            t.mean_ttft_ms >= 0 ? json_real(t.mean_ttft_ms) : NULL, "mean_e2e_ms",
            t.mean_e2e_ms >= 0 ? json_real(t.mean_e2e_ms) : NULL, "mean_decode_tokens_per_s",
            t.mean_decode_tokens_per_s >= 0 ? json_real(t.mean_decode_tokens_per_s) : NULL,
            "remaining", (json_int_t)remaining, "eta_s", eta_s >= 0 ? json_real(eta_s) : NULL,
            "expired_leases", expired, "errors", errors, "rejected_lines",
            (json_int_t)rejected, "compression", "all", compression_json(&all), "with_dict",
            compression_json(&with_dict), "without_dict", compression_json(&without_dict));
        if (obj == NULL) {
            rf__cli_error("status", "out of memory");
            goto done;
        }
        if (list_expired(db, run_id, now_ms, counts.expired, expired) < 0 ||
            list_errors(db, run_id, counts.failed, errors) < 0)
            goto done;
        status = print_json(obj);
        obj = NULL;
        goto done;
    }

    int64_t total = total_of(&counts);
    if (run_name != NULL)
        printf("database %s, run '%s' (run_id %lld)\n", path, run_name, (long long)run_id);
    else
        printf("database %s, all runs\n", path);
    printf("jobs        %lld total: %lld queued, %lld running, %lld done, %lld failed, "
           "%lld cancelled (%.1f%% done)\n",
           (long long)total, (long long)counts.queued, (long long)counts.running,
           (long long)counts.done, (long long)counts.failed, (long long)counts.cancelled,
           100.0 * ratio(counts.done, total));
    printf("tokens      %lld prompt, %lld completion (done jobs)\n", (long long)tokens[0],
           (long long)tokens[1]);
    char span[32];
    format_duration((double)t.window_ms / 1000.0, span, sizeof span);
    printf("throughput  last %s: %.2f completion tokens/s, %.3f jobs/s (%lld jobs, %lld "
           "completion tokens)\n",
           span, t.tokens_per_s, t.jobs_per_s, (long long)t.jobs, (long long)t.completion_tokens);
    if (t.mean_e2e_ms >= 0)
        printf("per job     mean time to first token %.0f ms, end to end %.0f ms, decode %.1f "
               "tokens/s (job_metrics)\n",
               t.mean_ttft_ms >= 0 ? t.mean_ttft_ms : 0.0, t.mean_e2e_ms,
               t.mean_decode_tokens_per_s >= 0 ? t.mean_decode_tokens_per_s : 0.0);
    if (remaining == 0) {
        printf("eta         nothing left to run\n");
    } else if (eta_s >= 0) {
        char eta[32];
        format_duration(eta_s, eta, sizeof eta);
        printf("eta         %s for %lld remaining jobs at that rate\n", eta, (long long)remaining);
    } else {
        printf("eta         unknown: %lld jobs remain and none finished in the last %ld minutes\n",
               (long long)remaining, window_min);
    }
    if (list_expired(db, run_id, now_ms, counts.expired, NULL) < 0 ||
        list_errors(db, run_id, counts.failed, NULL) < 0)
        goto done;
    if (rejected > 0)
        printf("rejected    %lld input lines (sqlite3 %s \"SELECT source_file, source_line, "
               "reason FROM rejected_lines\")\n",
               (long long)rejected, path);
    else
        printf("rejected    0 input lines\n");
    print_compression("compression", &all);
    printf("\n");
    print_compression("            with a dictionary:", &with_dict);
    printf("\n");
    print_compression("            without:", &without_dict);
    printf("\n");
    status = RF_EXIT_OK;
done:
    json_decref(obj);
    rf_db_close(db);
    return status;
}
