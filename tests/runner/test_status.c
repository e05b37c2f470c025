/* test_status.c - runs, status, export, cancel, retry, requeue on a job database
 *
 * Each test builds its database as a user would: `rocmforge submit` on a
 * small JSONL file. Jobs are then finished with plain SQL (results rows with
 * outputs compressed here by libzstd without a dictionary, job_metrics
 * rows, failed, cancelled and running states), so these tests depend on
 * neither the engine nor the dictionary trainer. The commands are run
 * through the CLI binary and their text, JSON and files checked.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

typedef rf_test_result_t result_t;

/* A file name unique to this test process. */
/* rocmforge ARGS (shell-quoted by the caller). */
static const char *tmp_path(const char *name)
{
    return rf_test_tmp_path("status", name);
}

static result_t cli(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static result_t cli(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return rf_test_run(args, NULL);
}

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void exec_sql(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void exec_sql(sqlite3 *db, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    cr_assert_eq(rc, SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static int64_t query_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t job_id_of(sqlite3 *db, const char *custom_id)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT job_id FROM jobs WHERE custom_id = '%s'", custom_id);
    return query_i64(db, sql);
}

static int64_t stored_bytes; /* sum of the frames add_result wrote */

/* A results row for custom_id's sample, its text compressed with plain zstd. */
static void add_result(sqlite3 *db, const char *custom_id, int sample, const char *text,
                       int64_t dict_id, const char *finish, int prompt, int completion,
                       const char *logprobs, int64_t created_ms)
{
    size_t len = strlen(text), cap = ZSTD_compressBound(len);
    void *frame = malloc(cap);
    size_t n = ZSTD_compress(frame, cap, text, len, 3);
    cr_assert(!ZSTD_isError(n));
    stored_bytes += (int64_t)n;
    void *lp_frame = NULL;
    size_t lp_n = 0;
    if (logprobs != NULL) {
        size_t lp_cap = ZSTD_compressBound(strlen(logprobs));
        lp_frame = malloc(lp_cap);
        lp_n = ZSTD_compress(lp_frame, lp_cap, logprobs, strlen(logprobs), 3);
        cr_assert(!ZSTD_isError(lp_n));
    }
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "INSERT INTO results (job_id, sample, output, dict_id, "
                                    "output_bytes, finish_reason, prompt_tokens, "
                                    "completion_tokens, logprobs, created_ms) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                    -1, &st, NULL),
                 SQLITE_OK);
    sqlite3_bind_int64(st, 1, job_id_of(db, custom_id));
    sqlite3_bind_int(st, 2, sample);
    sqlite3_bind_blob(st, 3, frame, (int)n, SQLITE_TRANSIENT);
    if (dict_id > 0)
        sqlite3_bind_int64(st, 4, dict_id);
    sqlite3_bind_int64(st, 5, (int64_t)len);
    sqlite3_bind_text(st, 6, finish, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, prompt);
    sqlite3_bind_int(st, 8, completion);
    if (lp_frame != NULL)
        sqlite3_bind_blob(st, 9, lp_frame, (int)lp_n, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 10, created_ms);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    free(frame);
    free(lp_frame);
}

static void mark_done(sqlite3 *db, const char *custom_id, int64_t claimed_ms, int64_t finished_ms)
{
    exec_sql(db,
             "UPDATE jobs SET state = 'done', attempts = 1, claimed_ms = %lld, "
             "finished_ms = %lld WHERE custom_id = '%s'",
             (long long)claimed_ms, (long long)finished_ms, custom_id);
    exec_sql(db,
             "INSERT INTO job_metrics (job_id, worker_id, ttft_ms, e2e_ms, prompt_tokens, "
             "completion_tokens, decode_tokens_per_s) VALUES (%lld, 'w1', 100, 2000, 1, 1, 50.0)",
             (long long)job_id_of(db, custom_id));
}

static const char JOBS[] =
    "{\"custom_id\": \"q1\", \"prompt\": \"Say hi\", \"logprobs\": true}\n"
    "{\"custom_id\": \"c1\", \"messages\": [{\"role\": \"user\", \"content\": \"6 x 7?\"}], "
    "\"metadata\": {\"expected\": \"42\"}}\n"
    "{\"custom_id\": \"n2\", \"prompt\": \"Count:\", \"n\": 2}\n"
    "{\"custom_id\": \"s1\", \"context\": \"The sky is\", \"continuation\": \" blue\"}\n"
    "{\"custom_id\": \"f1\", \"prompt\": \"long one\"}\n"
    "{\"custom_id\": \"f2\", \"prompt\": \"long two\"}\n"
    "{\"custom_id\": \"x1\", \"prompt\": \"cancelled\"}\n"
    "{\"custom_id\": \"r1\", \"prompt\": \"running\"}\n"
    "{\"custom_id\": \"q2\", \"prompt\": \"queued\"}\n"
    "not json\n";

static const char SCORE_JSON[] = "{\"logprob\":-1.5,\"is_greedy\":true,\"n_tokens\":2}";
static const char Q1_LOGPROBS[] = "[{\"token\":\"Hello\",\"logprob\":-0.25}]";

static int64_t build_now; /* when build_db finished jobs */

/* Submit JOBS as run "batch", then finish them: q1 c1 n2 s1 done (n2 with
 * two samples, its second stored with dictionary 7), f1 f2 failed with the
 * same first error line, x1 cancelled, r1 running with an expired lease, q2
 * queued; the last line is rejected. Returns the database path. */
static const char *build_db(const char *name)
{
    const char *db_path = tmp_path(name);
    char side[600];
    unlink(db_path);
    snprintf(side, sizeof side, "%s-wal", db_path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", db_path);
    unlink(side);
    const char *jsonl = tmp_path("jobs.jsonl");
    FILE *f = fopen(jsonl, "w");
    cr_assert_not_null(f);
    fputs(JOBS, f);
    fclose(f);
    result_t r = cli("submit '%s' '%s' --run batch --quiet", db_path, jsonl);
    cr_assert_eq(r.status, 1, "one line is rejected: %s %s", r.out, r.err);
    rf_test_result_free(&r);

    sqlite3 *db;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    exec_sql(db, "PRAGMA foreign_keys = ON");
    exec_sql(db, "BEGIN");
    int64_t now = now_ms(), claimed = now - 120000, done_at = now - 30000;
    build_now = now;
    stored_bytes = 0;
    exec_sql(db, "INSERT INTO zstd_dicts (dict_id, run_id, created_ms, n_samples, dict) "
                 "VALUES (7, 1, 0, 1, x'00')");
    add_result(db, "q1", 0, "Hello there", 0, "stop", 5, 3, Q1_LOGPROBS, done_at);
    add_result(db, "c1", 0, "42", 0, "stop", 12, 2, NULL, done_at);
    add_result(db, "n2", 0, "one", 0, "length", 4, 5, NULL, done_at);
    add_result(db, "n2", 1, "two", 7, "context", 4, 6, NULL, done_at);
    add_result(db, "s1", 0, SCORE_JSON, 0, "stop", 3, 2, NULL, done_at);
    const char *done[] = {"q1", "c1", "n2", "s1"};
    for (int i = 0; i < 4; i++)
        mark_done(db, done[i], claimed, done_at);
    exec_sql(db, "UPDATE jobs SET state = 'failed', attempts = 3, finished_ms = %lld, error = "
                 "'context overflow' || char(10) || 'at token ' || job_id "
                 "WHERE custom_id IN ('f1', 'f2')", (long long)done_at);
    exec_sql(db, "UPDATE jobs SET state = 'cancelled', finished_ms = %lld WHERE custom_id = 'x1'",
             (long long)done_at);
    exec_sql(db, "UPDATE jobs SET state = 'running', attempts = 1, claimed_ms = %lld, "
                 "lease_owner = 'host:42:0', lease_expires_ms = %lld WHERE custom_id = 'r1'",
             (long long)(now - 100000), (long long)(now - 60000));
    exec_sql(db, "COMMIT");
    sqlite3_close(db);
    return db_path;
}

/* The JSON object of a command's stdout. */
static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "not JSON (%s): %s", e.text, text);
    return j;
}

static int64_t ival(json_t *j, const char *path)
{
    /* "a.b.c" */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = j;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    cr_assert(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

static double rval(json_t *j, const char *path)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *v = j;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = json_object_get(v, k);
    cr_assert(json_is_number(v), "%s is not a number", path);
    return json_number_value(v);
}

/* Lines of a JSONL file, parsed; *n set. Each line must be one object. */
static json_t **read_jsonl(const char *path, size_t *n)
{
    char *text = rf_test_slurp(path);
    json_t **lines = calloc(64, sizeof *lines);
    *n = 0;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cr_assert_lt(*n, 64);
        lines[(*n)++] = parse(line);
        cr_assert(json_is_object(lines[*n - 1]), "%s", line);
    }
    free(text);
    return lines;
}

static json_t *find_line(json_t **lines, size_t n, const char *custom_id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(json_string_value(json_object_get(lines[i], "custom_id")), custom_id) == 0)
            return lines[i];
    cr_assert_fail("no line for custom_id %s", custom_id);
    return NULL;
}

static void free_lines(json_t **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(lines[i]);
    free(lines);
}

static const char *sval(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    cr_assert(json_is_string(v), "%s is not a string", key);
    return json_string_value(v);
}

/* ---------------------------------------------------------------- runs, status */

Test(status, runs_lists_counts_per_state, .timeout = 60)
{
    const char *db = build_db("runs.db");
    result_t r = cli("runs '%s'", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "batch") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "4/9 (44.4%)") != NULL, "%s", r.out);
    rf_test_result_free(&r);

    r = cli("runs '%s' --json", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_t *j = parse(r.out);
    json_t *run = json_array_get(json_object_get(j, "runs"), 0);
    cr_assert_str_eq(sval(run, "name"), "batch");
    cr_assert_eq(ival(run, "jobs.queued"), 1);
    cr_assert_eq(ival(run, "jobs.running"), 1);
    cr_assert_eq(ival(run, "jobs.done"), 4);
    cr_assert_eq(ival(run, "jobs.failed"), 2);
    cr_assert_eq(ival(run, "jobs.cancelled"), 1);
    cr_assert_eq(ival(run, "jobs.total"), 9);
    json_decref(j);
    rf_test_result_free(&r);
}

Test(status, json_reports_tokens_throughput_errors_and_compression, .timeout = 60)
{
    const char *db = build_db("status.db");
    result_t r = cli("status '%s' --run batch --json", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_t *j = parse(r.out);
    cr_assert_eq(ival(j, "jobs.done"), 4);
    cr_assert_eq(ival(j, "jobs.failed"), 2);
    cr_assert_eq(ival(j, "jobs.expired"), 1);
    cr_assert_eq(ival(j, "tokens.prompt"), 5 + 12 + 4 + 3, "prompt tokens count each job once");
    cr_assert_eq(ival(j, "tokens.completion"), 3 + 2 + 5 + 6 + 2);

    /* Work began 120 s before build_now (the first claim): the window is cut to it. */
    double window = rval(j, "throughput.window_s");
    double elapsed = (double)(ival(j, "now_ms") - build_now) / 1000.0;
    cr_assert(fabs(window - (120.0 + elapsed)) < 0.01, "window %f, elapsed %f", window, elapsed);
    cr_assert_eq(ival(j, "throughput.jobs"), 4);
    cr_assert_eq(ival(j, "throughput.completion_tokens"), 18);
    cr_assert_float_eq(rval(j, "throughput.jobs_per_s"), 4.0 / window, 1e-9);
    cr_assert_float_eq(rval(j, "throughput.completion_tokens_per_s"), 18.0 / window, 1e-9);
    cr_assert_float_eq(rval(j, "throughput.mean_e2e_ms"), 2000.0, 1e-9);
    cr_assert_eq(ival(j, "remaining"), 2);
    cr_assert_float_eq(rval(j, "eta_s"), 2.0 / (4.0 / window), 1e-6);

    json_t *expired = json_object_get(j, "expired_leases");
    cr_assert_eq(json_array_size(expired), 1);
    cr_assert_str_eq(sval(json_array_get(expired, 0), "custom_id"), "r1");
    cr_assert_str_eq(sval(json_array_get(expired, 0), "lease_owner"), "host:42:0");

    json_t *errors = json_object_get(j, "errors");
    cr_assert_eq(json_array_size(errors), 1, "both failures share their first line");
    cr_assert_str_eq(sval(json_array_get(errors, 0), "error"), "context overflow");
    cr_assert_eq(ival(json_array_get(errors, 0), "count"), 2);
    cr_assert_str_eq(sval(json_array_get(errors, 0), "example_custom_id"), "f1");
    cr_assert_eq(ival(j, "rejected_lines"), 1);

    int64_t output_bytes = 11 + 2 + 3 + 3 + (int64_t)strlen(SCORE_JSON);
    cr_assert_eq(ival(j, "compression.all.outputs"), 5);
    cr_assert_eq(ival(j, "compression.all.output_bytes"), output_bytes);
    cr_assert_eq(ival(j, "compression.all.stored_bytes"), stored_bytes);
    cr_assert_float_eq(rval(j, "compression.all.ratio"), (double)output_bytes / stored_bytes,
                       1e-9);
    cr_assert_eq(ival(j, "compression.with_dict.outputs"), 1);
    cr_assert_eq(ival(j, "compression.with_dict.output_bytes"), 3);
    cr_assert_eq(ival(j, "compression.without_dict.outputs"), 4);
    json_decref(j);
    rf_test_result_free(&r);
}

Test(status, text_names_each_part, .timeout = 60)
{
    const char *db = build_db("text.db");
    result_t r = cli("status '%s'", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *expect[] = {
        "9 total: 1 queued, 1 running, 4 done, 2 failed, 1 cancelled (44.4% done)",
        "24 prompt, 18 completion",
        "completion tokens/s",
        "for 2 remaining jobs at that rate",
        "1 running job with an expired lease",
        "r1 (job_id 8): worker host:42:0",
        "       2  context overflow  (e.g. f1)",
        "rejected    1 input lines",
        "with a dictionary: 1 outputs, 3 bytes",
    };
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        cr_assert(strstr(r.out, expect[i]) != NULL, "missing '%s' in:\n%s", expect[i], r.out);
    rf_test_result_free(&r);

    r = cli("status '%s' --run nosuch", db);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no run named 'nosuch'") != NULL, "%s", r.err);
    rf_test_result_free(&r);
}

Test(status, missing_database_is_an_error_and_not_created, .timeout = 60)
{
    const char *db = tmp_path("missing.db");
    unlink(db);
    const char *cmds[] = {"runs", "status", "export --run x", "cancel --run x", "retry --run x",
                          "requeue --state failed"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char first[16];
        sscanf(cmds[i], "%15s", first);
        const char *opts = strchr(cmds[i], ' ') ? strchr(cmds[i], ' ') : "";
        result_t r = cli("%s '%s' %s", first, db, opts);
        cr_assert_eq(r.status, 1, "%s: %d", cmds[i], r.status);
        cr_assert(strstr(r.err, db) != NULL && strstr(r.err, "does not exist") != NULL,
                  "%s: %s", cmds[i], r.err);
        cr_assert_neq(access(db, F_OK), 0, "%s created the database", cmds[i]);
        rf_test_result_free(&r);
    }
}

Test(status, usage_errors, .timeout = 60)
{
    const char *db = build_db("usage.db");
    result_t r = cli("export '%s'", db);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "--run NAME") != NULL, "%s", r.err);
    rf_test_result_free(&r);
    r = cli("retry '%s' --state done", db);
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "failed or cancelled") != NULL, "%s", r.err);
    rf_test_result_free(&r);
    r = cli("cancel '%s' --job q1", db);
    cr_assert_eq(r.status, 2);
    rf_test_result_free(&r);
    r = cli("export '%s' --run batch --format csv", db);
    cr_assert_eq(r.status, 2);
    rf_test_result_free(&r);
    r = cli("status --help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "usage: rocmforge status DB") != NULL);
    rf_test_result_free(&r);
}

/* ---------------------------------------------------------------- export */

Test(status, export_openai_batch_output, .timeout = 60)
{
    const char *db = build_db("export.db");
    const char *out = tmp_path("out.jsonl"), *errs = tmp_path("err.jsonl");
    unlink(out);
    unlink(errs);
    result_t r = cli("export '%s' --run batch -o '%s' --errors '%s'", db, out, errs);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "4 done jobs written") != NULL, "%s", r.err);
    cr_assert(strstr(r.err, "2 queued or running jobs not exported") != NULL, "%s", r.err);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    cr_assert_neq(access(tmp, F_OK), 0, "the .tmp file is renamed");
    rf_test_result_free(&r);

    size_t n;
    json_t **lines = read_jsonl(out, &n);
    cr_assert_eq(n, 4);
    sqlite3 *handle;
    cr_assert_eq(sqlite3_open_v2(db, &handle, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);

    json_t *q1 = find_line(lines, n, "q1");
    char id[64];
    snprintf(id, sizeof id, "batch_req_%lld", (long long)job_id_of(handle, "q1"));
    cr_assert_str_eq(sval(q1, "id"), id);
    cr_assert(json_is_null(json_object_get(q1, "error")));
    json_t *resp = json_object_get(q1, "response");
    cr_assert_eq(ival(resp, "status_code"), 200);
    cr_assert_str_eq(sval(resp, "request_id"), id + strlen("batch_req_"));
    json_t *body = json_object_get(resp, "body");
    cr_assert_str_eq(sval(body, "object"), "text_completion");
    cr_assert_str_eq(sval(body, "model"), "rocmforge");
    cr_assert_eq(ival(body, "created"), (build_now - 30000) / 1000);
    json_t *choice = json_array_get(json_object_get(body, "choices"), 0);
    cr_assert_str_eq(sval(choice, "text"), "Hello there");
    cr_assert_eq(ival(choice, "index"), 0);
    cr_assert_str_eq(sval(choice, "finish_reason"), "stop");
    json_t *lp = json_object_get(choice, "logprobs");
    cr_assert(json_is_array(lp), "stored logprobs are exported");
    cr_assert_float_eq(json_real_value(json_object_get(json_array_get(lp, 0), "logprob")), -0.25,
                       1e-12);
    cr_assert_eq(ival(body, "usage.prompt_tokens"), 5);
    cr_assert_eq(ival(body, "usage.completion_tokens"), 3);
    cr_assert_eq(ival(body, "usage.total_tokens"), 8);

    json_t *c1 = json_object_get(json_object_get(find_line(lines, n, "c1"), "response"), "body");
    cr_assert_str_eq(sval(c1, "object"), "chat.completion");
    cr_assert(strncmp(sval(c1, "id"), "chatcmpl-", 9) == 0);
    choice = json_array_get(json_object_get(c1, "choices"), 0);
    json_t *message = json_object_get(choice, "message");
    cr_assert_str_eq(sval(message, "role"), "assistant");
    cr_assert_str_eq(sval(message, "content"), "42");
    cr_assert(json_is_null(json_object_get(choice, "logprobs")));

    json_t *n2 = json_object_get(json_object_get(find_line(lines, n, "n2"), "response"), "body");
    json_t *choices = json_object_get(n2, "choices");
    cr_assert_eq(json_array_size(choices), 2, "one choice per sample");
    cr_assert_str_eq(sval(json_array_get(choices, 0), "text"), "one");
    cr_assert_eq(ival(json_array_get(choices, 1), "index"), 1);
    cr_assert_str_eq(sval(json_array_get(choices, 1), "text"), "two");
    cr_assert_str_eq(sval(json_array_get(choices, 1), "finish_reason"), "length",
                     "a stop at the context window is OpenAI's \"length\"");
    cr_assert_eq(ival(n2, "usage.prompt_tokens"), 4);
    cr_assert_eq(ival(n2, "usage.completion_tokens"), 11);

    json_t *s1 = json_object_get(json_object_get(find_line(lines, n, "s1"), "response"), "body");
    cr_assert_str_eq(sval(s1, "object"), "score");
    cr_assert_float_eq(rval(s1, "score.logprob"), -1.5, 1e-12);
    cr_assert(json_is_true(json_object_get(json_object_get(s1, "score"), "is_greedy")));
    free_lines(lines, n);

    lines = read_jsonl(errs, &n);
    cr_assert_eq(n, 3, "two failed and one cancelled job");
    json_t *f1 = find_line(lines, n, "f1");
    cr_assert(json_is_null(json_object_get(f1, "response")));
    json_t *error = json_object_get(f1, "error");
    cr_assert_str_eq(sval(error, "code"), "job_failed");
    cr_assert(strncmp(sval(error, "message"), "context overflow\nat token", 25) == 0);
    snprintf(id, sizeof id, "batch_req_%lld", (long long)job_id_of(handle, "f1"));
    cr_assert_str_eq(sval(f1, "id"), id);
    cr_assert_str_eq(sval(json_object_get(find_line(lines, n, "x1"), "error"), "code"),
                     "batch_cancelled");
    free_lines(lines, n);
    sqlite3_close(handle);
}

Test(status, export_simple_to_stdout_with_errors_inline, .timeout = 60)
{
    const char *db = build_db("simple.db");
    result_t r = cli("export '%s' --run batch --format simple", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    const char *out = tmp_path("simple.jsonl");
    FILE *f = fopen(out, "w");
    fputs(r.out, f);
    fclose(f);
    rf_test_result_free(&r);
    size_t n;
    json_t **lines = read_jsonl(out, &n);
    cr_assert_eq(n, 7, "4 done, then 2 failed and 1 cancelled in the same stream");
    json_t *q1 = find_line(lines, n, "q1");
    cr_assert_str_eq(sval(q1, "output"), "Hello there");
    cr_assert_str_eq(sval(q1, "finish_reason"), "stop");
    cr_assert_eq(ival(q1, "prompt_tokens"), 5);
    cr_assert_eq(ival(q1, "completion_tokens"), 3);
    cr_assert(json_is_null(json_object_get(q1, "metadata")));
    json_t *c1 = find_line(lines, n, "c1");
    cr_assert_str_eq(sval(json_object_get(c1, "metadata"), "expected"), "42");
    json_t *n2 = find_line(lines, n, "n2");
    cr_assert_null(json_object_get(n2, "output"));
    json_t *outputs = json_object_get(n2, "outputs");
    cr_assert_eq(json_array_size(outputs), 2);
    cr_assert_str_eq(json_string_value(json_array_get(outputs, 1)), "two");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(n2, "finish_reason"), 1)),
                     "context", "simple keeps the stored finish reason");
    json_t *s1 = find_line(lines, n, "s1");
    cr_assert_float_eq(rval(s1, "output.logprob"), -1.5, 1e-12, "the score JSON, not a string");
    json_t *f2 = find_line(lines, n, "f2");
    cr_assert_str_eq(sval(json_object_get(f2, "error"), "code"), "job_failed");
    free_lines(lines, n);
}

Test(status, export_of_a_corrupt_output_skips_that_job, .timeout = 60)
{
    const char *db = build_db("corrupt.db");
    sqlite3 *handle;
    cr_assert_eq(sqlite3_open(db, &handle), SQLITE_OK);
    exec_sql(handle, "UPDATE results SET output = x'0102030405' WHERE job_id = %lld",
             (long long)job_id_of(handle, "c1"));
    sqlite3_close(handle);
    const char *out = tmp_path("corrupt.jsonl"), *errs = tmp_path("corrupt_errors.jsonl");
    result_t r = cli("export '%s' --run batch -o '%s' --errors '%s'", db, out, errs);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "job 'c1'") != NULL, "%s", r.err);
    rf_test_result_free(&r);
    size_t n;
    json_t **lines = read_jsonl(out, &n);
    cr_assert_eq(n, 3, "the other done jobs are written");
    free_lines(lines, n);
}

/* ---------------------------------------------------------------- control */

static int64_t count_state(const char *db_path, const char *state)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM jobs WHERE state = '%s'", state);
    int64_t n = query_i64(db, sql);
    sqlite3_close(db);
    return n;
}

Test(status, cancel_retry_requeue_move_jobs_and_print_counts, .timeout = 60)
{
    const char *db = build_db("control.db");
    result_t r = cli("cancel '%s' --run batch", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "2 jobs moved from queued or running to cancelled") != NULL, "%s",
              r.out);
    cr_assert(strstr(r.out, "before: 1 queued, 1 running, 4 done, 2 failed, 1 cancelled") != NULL,
              "%s", r.out);
    cr_assert(strstr(r.out, "after:  0 queued, 0 running, 4 done, 2 failed, 3 cancelled") != NULL,
              "%s", r.out);
    rf_test_result_free(&r);

    r = cli("retry '%s' --state failed --run batch", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "2 jobs moved from failed to queued") != NULL, "%s", r.out);
    cr_assert_eq(count_state(db, "failed"), 0);
    cr_assert_eq(count_state(db, "cancelled"), 3, "--state failed leaves cancelled jobs");
    rf_test_result_free(&r);

    r = cli("requeue '%s' --run batch --job q1", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "job 'q1' of run 'batch'") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "done -> queued") != NULL, "%s", r.out);
    sqlite3 *handle;
    cr_assert_eq(sqlite3_open_v2(db, &handle, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    cr_assert_eq(query_i64(handle, "SELECT count(*) FROM results r JOIN jobs j USING (job_id) "
                                   "WHERE j.custom_id = 'q1'"), 0, "requeue deletes results");
    sqlite3_close(handle);
    rf_test_result_free(&r);

    r = cli("retry '%s' --run batch --job c1", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "is done; retry moves only failed or cancelled jobs: nothing "
                            "changed") != NULL, "%s", r.out);
    rf_test_result_free(&r);

    r = cli("retry '%s' --run batch", db);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "3 jobs moved") != NULL, "%s", r.out);
    cr_assert_eq(count_state(db, "queued"), 6);
    rf_test_result_free(&r);

    r = cli("requeue '%s' --run batch --job nosuch", db);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "no job with custom_id 'nosuch'") != NULL, "%s", r.err);
    rf_test_result_free(&r);
}

Test(status, export_writes_through_a_symbolic_link_in_place, .timeout = 60)
{
    const char *db = build_db("link.db");
    const char *target = tmp_path("link_target.jsonl"), *link = tmp_path("link.jsonl");
    unlink(target);
    unlink(link);
    FILE *f = fopen(target, "w");
    fclose(f);
    cr_assert_eq(symlink(target, link), 0);
    result_t r = cli("export '%s' --run batch -o '%s' --errors '%s'", db, link,
                     tmp_path("link_errors.jsonl"));
    cr_assert_eq(r.status, 0, "%s", r.err);
    rf_test_result_free(&r);
    struct stat st;
    cr_assert_eq(lstat(link, &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link is not replaced by a file");
    size_t n;
    json_t **lines = read_jsonl(target, &n);
    cr_assert_eq(n, 4);
    free_lines(lines, n);
}
