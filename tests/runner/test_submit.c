/* test_submit.c - `rocmforge submit`: input lines to jobs in the database
 *
 * Most tests run the CLI as a user does and then query the job database;
 * a few call rf_ingest_parse_line / rf_ingest_file directly where the CLI
 * cannot reach (a small line limit, hash equality).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "ingest.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

typedef rf_test_result_t result_t;

/* A file name unique to this test process. */
static const char *tmp_path(const char *name)
{
    return rf_test_tmp_path("submit", name);
}

/* rocmforge submit DB FILE args... (args shell-quoted by the caller). */
static result_t submit(const char *db, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static result_t submit(const char *db, const char *file, const char *fmt, ...)
{
    char args[2048] = "", cmd[4096];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(args, sizeof args, fmt, ap);
        va_end(ap);
    }
    snprintf(cmd, sizeof cmd, "submit '%s' '%s' %s", db, file, args);
    return rf_test_run(cmd, NULL);
}

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK, "%s", path);
    return db;
}

/* First column of the first row as a malloc'd string ("" for NULL), or NULL
 * when there is no row. */
static char *query_text(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *query_text(sqlite3 *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    char *text = NULL;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        text = strdup(t ? t : "");
    }
    sqlite3_finalize(st);
    return text;
}

static long long query_int(sqlite3 *db, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long query_int(sqlite3 *db, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    char *t = query_text(db, "%s", sql);
    cr_assert_not_null(t, "no row: %s", sql);
    long long v = atoll(t);
    free(t);
    return v;
}

/* A job's column parsed as JSON. */
static json_t *job_json(sqlite3 *db, const char *custom_id, const char *column)
{
    char *text = query_text(db, "SELECT %s FROM jobs WHERE custom_id = '%s'", column, custom_id);
    cr_assert_not_null(text, "no job '%s'", custom_id);
    json_t *v = json_loads(text, 0, NULL);
    cr_assert_not_null(v, "%s of '%s' is not JSON: %s", column, custom_id, text);
    free(text);
    return v;
}

static double param_real(json_t *params, const char *key)
{
    json_t *v = json_object_get(params, key);
    cr_assert(json_is_number(v), "params.%s missing", key);
    return json_number_value(v);
}

/* The reason rejected_lines holds for line n (NULL if none). */
static char *reason_of(sqlite3 *db, int n)
{
    return query_text(db, "SELECT reason FROM rejected_lines WHERE source_line = %d", n);
}

/* ---------------------------------------------------------------- shapes */

Test(submit, each_shape_is_stored)
{
    const char *db_path = tmp_path("shapes.db"), *file = tmp_path("shapes.jsonl");
    rf_test_write_file(file,
        "{\"custom_id\":\"p\",\"prompt\":\"Once upon\",\"max_tokens\":12,\"temperature\":0.5,"
        "\"metadata\":{\"expected\":\"42\"}}\n"
        "{\"custom_id\":\"c\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":\"2+2?\"}],\"stop\":\"\\n\",\"seed\":9,\"n\":2}\n"
        "{\"custom_id\":\"s\",\"context\":\"The sky is\",\"continuation\":\" blue\"}\n");
    result_t r = submit(db_path, file, "--run shapes --quiet");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "3 accepted, 0 already present, 0 rejected"), "%s", r.out);
    rf_test_result_free(&r);

    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs"), 3);
    char *kind = query_text(db, "SELECT group_concat(kind, ',') FROM "
                            "(SELECT kind FROM jobs ORDER BY source_line)");
    cr_assert_str_eq(kind, "completion,chat,score");
    free(kind);

    json_t *in = job_json(db, "p", "input");
    cr_assert_str_eq(json_string_value(json_object_get(in, "prompt")), "Once upon");
    json_decref(in);
    json_t *pp = job_json(db, "p", "params");
    cr_assert_eq(json_integer_value(json_object_get(pp, "max_tokens")), 12);
    cr_assert_float_eq(param_real(pp, "temperature"), 0.5, 1e-12);
    cr_assert_float_eq(param_real(pp, "top_p"), 1.0, 1e-12, "built-in default filled in");
    json_decref(pp);
    char *meta = query_text(db, "SELECT metadata FROM jobs WHERE custom_id = 'p'");
    cr_assert_str_eq(meta, "{\"expected\":\"42\"}");
    free(meta);

    in = job_json(db, "c", "input");
    json_t *msgs = json_object_get(in, "messages");
    cr_assert_eq(json_array_size(msgs), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "role")), "user");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                     "2+2?");
    json_decref(in);
    pp = job_json(db, "c", "params");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(pp, "stop"), 0)), "\n",
                     "a single stop string is stored as a list");
    cr_assert_eq(json_integer_value(json_object_get(pp, "seed")), 9);
    cr_assert_eq(json_integer_value(json_object_get(pp, "n")), 2);
    json_decref(pp);

    in = job_json(db, "s", "input");
    cr_assert_str_eq(json_string_value(json_object_get(in, "context")), "The sky is");
    cr_assert_str_eq(json_string_value(json_object_get(in, "continuation")), " blue");
    json_decref(in);

    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs WHERE length(input_hash) = 64 AND "
                           "state = 'queued' AND source_file LIKE '%%shapes.jsonl'"), 3);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM runs WHERE name = 'shapes'"), 1);
    sqlite3_close(db);
}

Test(submit, openai_batch_lines_of_both_urls)
{
    const char *db_path = tmp_path("openai.db"), *file = tmp_path("openai.jsonl");
    rf_test_write_file(file,
        "{\"custom_id\":\"req-1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\","
        "\"body\":{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"developer\",\"content\":"
        "\"Answer.\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi \"},"
        "{\"type\":\"text\",\"text\":\"there\"}]}],\"max_completion_tokens\":30,"
        "\"logprobs\":true,\"top_logprobs\":3,\"stop\":[\"END\",\"###\"],"
        "\"logit_bias\":{\"50256\":-100}}}\n"
        "{\"custom_id\":\"req-2\",\"method\":\"POST\",\"url\":\"/v1/completions\","
        "\"body\":{\"model\":\"davinci\",\"prompt\":\"Say this\",\"max_tokens\":7,"
        "\"logprobs\":2,\"seed\":5,\"frequency_penalty\":0.5,\"presence_penalty\":-0.5}}\n"
        "{\"custom_id\":\"req-3\",\"method\":\"GET\",\"url\":\"/v1/completions\",\"body\":{}}\n"
        "{\"custom_id\":\"req-4\",\"method\":\"POST\",\"url\":\"/v1/embeddings\","
        "\"body\":{\"input\":\"x\"}}\n"
        "{\"custom_id\":\"req-5\",\"method\":\"POST\",\"url\":\"/v1/completions\","
        "\"body\":{\"prompt\":\"x\",\"stream\":true}}\n");
    result_t r = submit(db_path, file, "--quiet");
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "2 accepted, 0 already present, 3 rejected"), "%s", r.out);
    rf_test_result_free(&r);

    sqlite3 *db = open_db(db_path);
    char *name = query_text(db, "SELECT name FROM runs"), expect[64];
    snprintf(expect, sizeof expect, "submit_%d_openai", (int)getpid());
    cr_assert_str_eq(name, expect, "without --run, the run is named after the file");
    free(name);
    char *kind = query_text(db, "SELECT kind FROM jobs WHERE custom_id = 'req-1'");
    cr_assert_str_eq(kind, "chat");
    free(kind);
    json_t *in = job_json(db, "req-1", "input"), *pp = job_json(db, "req-1", "params");
    json_t *msgs = json_object_get(in, "messages");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
                     "system", "developer is the system role");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(msgs, 1), "content")),
                     "Hi there", "text parts are joined");
    cr_assert_eq(json_integer_value(json_object_get(pp, "max_tokens")), 30);
    cr_assert(json_is_true(json_object_get(pp, "logprobs")));
    cr_assert_eq(json_integer_value(json_object_get(pp, "top_logprobs")), 3);
    cr_assert_eq(json_array_size(json_object_get(pp, "stop")), 2);
    cr_assert_float_eq(param_real(json_object_get(pp, "logit_bias"), "50256"), -100.0, 1e-12);
    cr_assert_str_eq(json_string_value(json_object_get(pp, "model")), "gpt-4o-mini");
    json_decref(in);
    json_decref(pp);

    kind = query_text(db, "SELECT kind FROM jobs WHERE custom_id = 'req-2'");
    cr_assert_str_eq(kind, "completion");
    free(kind);
    in = job_json(db, "req-2", "input");
    pp = job_json(db, "req-2", "params");
    cr_assert_str_eq(json_string_value(json_object_get(in, "prompt")), "Say this");
    cr_assert(json_is_true(json_object_get(pp, "logprobs")), "completions logprobs: 2");
    cr_assert_eq(json_integer_value(json_object_get(pp, "top_logprobs")), 2);
    cr_assert_eq(json_integer_value(json_object_get(pp, "seed")), 5);
    cr_assert_float_eq(param_real(pp, "presence_penalty"), -0.5, 1e-12);
    json_decref(in);
    json_decref(pp);

    char *why = reason_of(db, 3);
    cr_assert(why && strstr(why, "method must be \"POST\""), "%s", why);
    free(why);
    why = reason_of(db, 4);
    cr_assert(why && strstr(why, "/v1/embeddings"), "%s", why);
    free(why);
    why = reason_of(db, 5);
    cr_assert(why && strstr(why, "body.stream"), "%s", why);
    free(why);
    sqlite3_close(db);
}

/* ---------------------------------------------------------------- rejections */

/* Each line is bad for one reason; line N's reason must name it. */
static const struct {
    const char *line, *reason;
} bad_lines[] = {
    {"{\"custom_id\":\"a\",\"prompt\":\"x\"", "invalid JSON at column"},
    {"[\"custom_id\",\"prompt\"]", "must be a JSON object"},
    {"{\"prompt\":\"x\"}", "missing custom_id"},
    {"{\"custom_id\":\"\",\"prompt\":\"x\"}", "custom_id is empty"},
    {"{\"custom_id\":7,\"prompt\":\"x\"}", "custom_id must be a string"},
    {"{\"custom_id\":\"u\",\"prompt\":\"x\",\"expected\":\"42\"}", "unknown field 'expected'"},
    {"{\"custom_id\":\"t\",\"prompt\":\"x\",\"temperature\":\"hot\"}",
     "temperature must be a number"},
    {"{\"custom_id\":\"t2\",\"prompt\":\"x\",\"temperature\":-0.1}", "temperature must be in"},
    {"{\"custom_id\":\"tp\",\"prompt\":\"x\",\"top_p\":0}", "top_p must be in (0, 1]"},
    {"{\"custom_id\":\"tp2\",\"prompt\":\"x\",\"top_p\":1.5}", "top_p must be in (0, 1]"},
    {"{\"custom_id\":\"n\",\"prompt\":\"x\",\"n\":0}", "n must be in [1, 128]"},
    {"{\"custom_id\":\"m\",\"prompt\":\"x\",\"max_tokens\":0}", "max_tokens must be in"},
    {"{\"custom_id\":\"m2\",\"prompt\":\"x\",\"max_tokens\":1000001}", "max_tokens must be in"},
    {"{\"custom_id\":\"m3\",\"prompt\":\"x\",\"max_tokens\":1.5}", "max_tokens must be an integer"},
    {"{\"custom_id\":\"r\",\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}",
     "messages[0].role 'robot'"},
    {"{\"custom_id\":\"e\",\"messages\":[]}", "messages is empty"},
    {"{\"custom_id\":\"mc\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content is missing"},
    {"{\"custom_id\":\"u8\",\"prompt\":\"caf\xc3\x28\"}", "invalid UTF-8"},
    {"{\"custom_id\":\"two\",\"prompt\":\"x\",\"messages\":[]}", "only one of"},
    {"{\"custom_id\":\"none\"}", "no input"},
    {"{\"custom_id\":\"sc\",\"context\":\"x\"}", "needs both context and continuation"},
    {"{\"custom_id\":\"st\",\"prompt\":\"x\",\"stop\":[\"a\",3]}", "stop[1] must be a string"},
    {"{\"custom_id\":\"nb\",\"prompt\":\"x\",\"not_before\":\"tomorrow\"}", "RFC 3339"},
    {"{\"custom_id\":\"md\",\"prompt\":\"x\",\"metadata\":[1]}", "metadata must be an object"},
    {"{\"custom_id\":\"dk\",\"prompt\":\"x\",\"prompt\":\"y\"}", "duplicate object key"},
    {"{\"custom_id\":\"lp\",\"prompt\":\"x\",\"top_logprobs\":21}", "top_logprobs must be in"},
    {"{\"custom_id\":\"pl\",\"prompt\":[\"a\",\"b\"]}", "its own line"},
    {"{\"custom_id\":\"ma\",\"prompt\":\"x\",\"max_attempts\":0}", "max_attempts must be in"},
};
#define N_BAD (sizeof bad_lines / sizeof bad_lines[0])

Test(submit, each_rejection_reason_on_its_line)
{
    const char *db_path = tmp_path("bad.db"), *file = tmp_path("bad.jsonl");
    FILE *f = fopen(file, "wb");
    for (size_t i = 0; i < N_BAD; i++)
        fprintf(f, "%s\n", bad_lines[i].line);
    fprintf(f, "{\"custom_id\":\"good\",\"prompt\":\"fine\"}\n");
    fclose(f);
    result_t r = submit(db_path, file, "--run bad --quiet");
    cr_assert_eq(r.status, 1, "rejections give exit status 1: %s%s", r.out, r.err);
    char expect[128];
    snprintf(expect, sizeof expect, "1 accepted, 0 already present, %zu rejected", N_BAD);
    cr_assert(strstr(r.out, expect), "%s", r.out);
    cr_assert(strstr(r.out, ":1: invalid JSON"), "first reasons are printed: %s", r.out);
    rf_test_result_free(&r);

    sqlite3 *db = open_db(db_path);
    for (size_t i = 0; i < N_BAD; i++) {
        char *why = reason_of(db, (int)i + 1);
        cr_assert_not_null(why, "line %zu (%s) was not rejected", i + 1, bad_lines[i].line);
        cr_assert(strstr(why, bad_lines[i].reason), "line %zu: reason '%s' lacks '%s'", i + 1,
                  why, bad_lines[i].reason);
        free(why);
    }
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs"), 1);
    cr_assert_eq(query_int(db, "SELECT source_line FROM jobs WHERE custom_id = 'good'"),
                 (long long)N_BAD + 1);
    char *id = query_text(db, "SELECT custom_id FROM rejected_lines WHERE source_line = 6");
    cr_assert_str_eq(id, "u", "the custom_id of a rejected line is kept when it had one");
    free(id);
    char *line = query_text(db, "SELECT line FROM rejected_lines WHERE source_line = 3");
    cr_assert_str_eq(line, "{\"prompt\":\"x\"}", "the line is kept");
    free(line);
    sqlite3_close(db);
}

Test(submit, good_lines_go_in_beside_bad_ones)
{
    const char *db_path = tmp_path("mixed.db"), *file = tmp_path("mixed.jsonl");
    FILE *f = fopen(file, "wb");
    for (int i = 1; i <= 20; i++) {
        if (i % 3 == 0)
            fprintf(f, "{\"custom_id\":\"j%d\",\"prompt\":\"x\",\"temperature\":-1}\n", i);
        else
            fprintf(f, "{\"custom_id\":\"j%d\",\"prompt\":\"question %d\"}\n", i, i);
    }
    fclose(f);
    result_t r = submit(db_path, file, "--run mixed --quiet");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.out, "14 accepted, 0 already present, 6 rejected"), "%s", r.out);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs WHERE source_line %% 3 != 0"), 14);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rejected_lines WHERE source_line %% 3 = 0"), 6);
    sqlite3_close(db);
}

Test(submit, invalid_utf8_line_is_rejected_alone)
{
    const char *db_path = tmp_path("utf8.db"), *file = tmp_path("utf8.jsonl");
    rf_test_write_file(file, "{\"custom_id\":\"ok1\",\"prompt\":\"caf\xc3\xa9\"}\n"
                     "{\"custom_id\":\"bad\",\"prompt\":\"caf\xe9\"}\n"
                     "{\"custom_id\":\"ok2\",\"prompt\":\"\xe2\x82\xac 5\"}\n");
    result_t r = submit(db_path, file, "--run u --quiet");
    cr_assert_eq(r.status, 1);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs"), 2);
    char *why = reason_of(db, 2);
    cr_assert(why && strstr(why, "invalid UTF-8 at column"), "%s", why);
    free(why);
    json_t *in = job_json(db, "ok1", "input");
    cr_assert_str_eq(json_string_value(json_object_get(in, "prompt")), "caf\xc3\xa9");
    json_decref(in);
    /* The stored copy of the bad line is valid text: the bad byte is replaced. */
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rejected_lines WHERE line = "
                           "'{\"custom_id\":\"bad\",\"prompt\":\"caf?\"}'"), 1);
    sqlite3_close(db);
}

Test(submit, blank_lines_are_skipped_and_counted)
{
    const char *db_path = tmp_path("blank.db"), *file = tmp_path("blank.jsonl");
    rf_test_write_file(file, "\n{\"custom_id\":\"a\",\"prompt\":\"x\"}\n   \n\t\r\n"
                     "{\"custom_id\":\"b\",\"prompt\":\"y\"}\r\n\n"
                     "{\"custom_id\":\"c\",\"prompt\":\"z\",\"n\":0}");
    result_t r = submit(db_path, file, "--run blank --quiet");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.out, "2 accepted, 0 already present, 1 rejected, 4 blank lines skipped "
                     "(7 lines)"), "%s", r.out);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT source_line FROM jobs WHERE custom_id = 'b'"), 5,
                 "blank lines still count for line numbers");
    cr_assert_eq(query_int(db, "SELECT source_line FROM rejected_lines"), 7,
                 "a last line without a newline is read");
    sqlite3_close(db);
}

/* ---------------------------------------------------------------- idempotence */

Test(submit, resubmission_inserts_nothing_new)
{
    const char *db_path = tmp_path("again.db"), *file = tmp_path("again.jsonl");
    rf_test_write_file(file, "{\"custom_id\":\"a\",\"prompt\":\"x\"}\n"
                     "{\"custom_id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}\n"
                     "{\"custom_id\":\"c\",\"prompt\":\"z\",\"top_p\":7}\n");
    result_t r = submit(db_path, file, "--run again --quiet");
    cr_assert(strstr(r.out, "2 accepted, 0 already present, 1 rejected"), "%s", r.out);
    rf_test_result_free(&r);
    /* Same file through another path: the stored name is absolute. */
    char other[600];
    snprintf(other, sizeof other, "%s/./%s", RF_TMPDIR, strrchr(file, '/') + 1);
    r = submit(db_path, other, "--run again --quiet");
    cr_assert(strstr(r.out, "0 accepted, 2 already present, 1 rejected"), "%s", r.out);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs"), 2);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rejected_lines"), 1,
                 "a rejected line is recorded once per (run, file, line)");
    cr_assert_eq(query_int(db, "SELECT count(*) FROM runs"), 1);
    sqlite3_close(db);

    /* The file is fixed: line 3 goes in and its old rejection goes away. */
    rf_test_write_file(file, "{\"custom_id\":\"a\",\"prompt\":\"x\"}\n"
                     "{\"custom_id\":\"b\",\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}\n"
                     "{\"custom_id\":\"c\",\"prompt\":\"z\",\"top_p\":0.7}\n");
    r = submit(db_path, file, "--run again --quiet");
    cr_assert_eq(r.status, 0, "%s", r.out);
    cr_assert(strstr(r.out, "1 accepted, 2 already present, 0 rejected"), "%s", r.out);
    rf_test_result_free(&r);
    db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs"), 3);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rejected_lines"), 0);
    sqlite3_close(db);
}

Test(submit, duplicate_custom_id_with_different_content)
{
    const char *db_path = tmp_path("dup.db"), *file = tmp_path("dup.jsonl");
    rf_test_write_file(file, "{\"custom_id\":\"q1\",\"prompt\":\"What is 2+2?\"}\n"
                     "{\"custom_id\":\"q1\",\"prompt\":\"What is 2+2?\"}\n"
                     "{\"custom_id\":\"q1\",\"prompt\":\"What is 3+3?\"}\n");
    result_t r = submit(db_path, file, "--run dup --quiet");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.out, "1 accepted, 1 already present, 1 rejected"), "%s", r.out);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    char *why = reason_of(db, 3);
    cr_assert(why && strstr(why, "duplicate custom_id 'q1'") && strstr(why, "(line 1)"), "%s",
              why);
    free(why);
    json_t *in = job_json(db, "q1", "input");
    cr_assert_str_eq(json_string_value(json_object_get(in, "prompt")), "What is 2+2?",
                     "the first line's job stays");
    json_decref(in);
    sqlite3_close(db);

    /* Another file with the same id and other params is a conflict too;
     * to a different run it is a new job. */
    const char *file2 = tmp_path("dup2.jsonl");
    rf_test_write_file(file2, "{\"custom_id\":\"q1\",\"prompt\":\"What is 2+2?\",\"seed\":1}\n");
    r = submit(db_path, file2, "--run dup --quiet");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.out, "from another file"), "%s", r.out);
    rf_test_result_free(&r);
    r = submit(db_path, file2, "--run dup-b --quiet");
    cr_assert_eq(r.status, 0, "%s", r.out);
    rf_test_result_free(&r);
}

/* ---------------------------------------------------------------- defaults */

Test(submit, command_line_defaults_fill_unset_params)
{
    const char *db_path = tmp_path("defaults.db"), *file = tmp_path("defaults.jsonl");
    rf_test_write_file(file, "{\"custom_id\":\"d\",\"prompt\":\"x\"}\n"
                     "{\"custom_id\":\"o\",\"prompt\":\"y\",\"temperature\":0.9,\"max_tokens\":3,"
                     "\"priority\":-2}\n");
    result_t r = submit(db_path, file, "--run def --quiet --temperature 0.2 --max-tokens 77 "
                        "--top-p 0.9 --seed 11 --stop END --stop '###' --priority 4 "
                        "--max-attempts 5 --not-before 2030-01-01T00:00:00Z --logprobs");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    json_t *pp = job_json(db, "d", "params");
    cr_assert_float_eq(param_real(pp, "temperature"), 0.2, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(pp, "max_tokens")), 77);
    cr_assert_float_eq(param_real(pp, "top_p"), 0.9, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(pp, "seed")), 11);
    cr_assert_eq(json_array_size(json_object_get(pp, "stop")), 2);
    cr_assert(json_is_true(json_object_get(pp, "logprobs")));
    cr_assert_null(json_object_get(pp, "priority"), "priority is a column, not a param");
    json_decref(pp);
    cr_assert_eq(query_int(db, "SELECT priority FROM jobs WHERE custom_id = 'd'"), 4);
    cr_assert_eq(query_int(db, "SELECT max_attempts FROM jobs WHERE custom_id = 'd'"), 5);
    cr_assert_eq(query_int(db, "SELECT not_before_ms FROM jobs WHERE custom_id = 'd'"),
                 1893456000000LL);
    pp = job_json(db, "o", "params");
    cr_assert_float_eq(param_real(pp, "temperature"), 0.9, 1e-12, "the line wins");
    cr_assert_eq(json_integer_value(json_object_get(pp, "max_tokens")), 3);
    json_decref(pp);
    cr_assert_eq(query_int(db, "SELECT priority FROM jobs WHERE custom_id = 'o'"), -2);

    char *text = query_text(db, "SELECT defaults FROM runs WHERE name = 'def'");
    json_t *d = json_loads(text, 0, NULL);
    cr_assert_not_null(d, "%s", text);
    cr_assert_float_eq(param_real(d, "temperature"), 0.2, 1e-12);
    cr_assert_eq(json_integer_value(json_object_get(d, "priority")), 4);
    cr_assert_null(json_object_get(d, "min_p"), "only the defaults given are stored: %s", text);
    json_decref(d);
    free(text);
    sqlite3_close(db);

    /* A later submit without options uses the stored defaults. */
    const char *file2 = tmp_path("defaults2.jsonl");
    rf_test_write_file(file2, "{\"custom_id\":\"later\",\"prompt\":\"z\"}\n");
    r = submit(db_path, file2, "--run def --quiet");
    cr_assert_eq(r.status, 0, "%s%s", r.out, r.err);
    rf_test_result_free(&r);
    db = open_db(db_path);
    pp = job_json(db, "later", "params");
    cr_assert_eq(json_integer_value(json_object_get(pp, "max_tokens")), 77);
    json_decref(pp);
    sqlite3_close(db);
}

Test(submit, bad_defaults_are_usage_errors)
{
    const char *db_path = tmp_path("baddef.db"), *file = tmp_path("baddef.jsonl");
    rf_test_write_file(file, "{\"custom_id\":\"d\",\"prompt\":\"x\"}\n");
    result_t r = submit(db_path, file, "--temperature -3");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "--temperature") && strstr(r.err, "must be in"), "%s", r.err);
    rf_test_result_free(&r);
    r = submit(db_path, file, "--max-tokens lots");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "must be an integer"), "%s", r.err);
    rf_test_result_free(&r);
    cr_assert_neq(access(db_path, F_OK), 0, "no database is created on a usage error");
}

Test(submit, stdin_with_a_run_name_and_a_missing_file)
{
    const char *db_path = tmp_path("stdin.db");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "printf '{\"custom_id\":\"a\",\"prompt\":\"x\"}\\n' | '%s' "
             "submit '%s' - --run piped >/dev/null 2>&1", RF_BIN, db_path);
    int raw = system(cmd);
    cr_assert(WIFEXITED(raw) && WEXITSTATUS(raw) == 0, "%s", cmd);
    sqlite3 *db = open_db(db_path);
    char *src = query_text(db, "SELECT source_file FROM jobs JOIN runs USING (run_id) "
                           "WHERE name = 'piped'");
    cr_assert_str_eq(src, "<stdin>");
    free(src);
    sqlite3_close(db);

    result_t r = submit(db_path, "-", "%s", "");
    cr_assert_eq(r.status, 2, "stdin needs --run");
    cr_assert(strstr(r.err, "--run"), "%s", r.err);
    rf_test_result_free(&r);
    r = submit(db_path, tmp_path("missing.jsonl"), "--run m");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "missing.jsonl: No such file or directory"), "%s", r.err);
    rf_test_result_free(&r);
}

/* ---------------------------------------------------------------- limits */

Test(submit, line_over_the_length_limit, .timeout = 60)
{
    const char *db_path = tmp_path("long.db"), *file = tmp_path("long.jsonl");
    FILE *f = fopen(file, "wb");
    fprintf(f, "{\"custom_id\":\"before\",\"prompt\":\"x\"}\n{\"custom_id\":\"big\",\"prompt\":\"");
    static char chunk[1 << 20];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 65; i++)
        fwrite(chunk, 1, sizeof chunk, f);
    fprintf(f, "\"}\n{\"custom_id\":\"after\",\"prompt\":\"y\"}\n");
    fclose(f);
    result_t r = submit(db_path, file, "--run long --quiet");
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    cr_assert(strstr(r.out, "2 accepted, 0 already present, 1 rejected"), "%s", r.out);
    cr_assert(strstr(r.out, ":2: line is 68157471 bytes, over the limit of 67108864"), "%s",
              r.out);
    rf_test_result_free(&r);
    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT length(line) FROM rejected_lines"), 4096,
                 "the stored line is cut to 4 KiB");
    cr_assert_eq(query_int(db, "SELECT source_line FROM jobs WHERE custom_id = 'after'"), 3);
    sqlite3_close(db);
    remove(file);
}

Test(submit, small_line_limit_through_the_api)
{
    const char *db_path = tmp_path("api.db"), *file = tmp_path("api.jsonl");
    rf_test_write_file(file, "{\"custom_id\":\"a\",\"prompt\":\"short\"}\n"
                     "{\"custom_id\":\"b\",\"prompt\":\"this one is longer than sixty-four bytes "
                     "in total\"}\n"
                     "{\"custom_id\":\"c\",\"prompt\":\"short\"}\n");
    rf_db_t *db = NULL;
    rf_err_t err = {0};
    cr_assert_eq(rf_db_open(&db, db_path, RF_DB_CREATE, &err), 0, "%s", err.msg);
    rf_ingest_options_t opt = {.run_name = "api", .max_line_bytes = 64, .chunk_lines = 2};
    rf_ingest_stats_t stats;
    cr_assert_eq(rf_ingest_file(db, file, &opt, &stats, &err), 0, "%s", err.msg);
    cr_assert_eq(stats.accepted, 2);
    cr_assert_eq(stats.rejected, 1);
    cr_assert_eq(stats.reason_line[0], 2);
    cr_assert(strstr(stats.reason[0], "over the limit of 64 bytes"), "%s", stats.reason[0]);
    rf_db_close(db);
}

/* 100,000 lines: counts match and memory stays far below the file size. */
Test(submit, large_file_with_bounded_memory, .timeout = 120)
{
    const char *db_path = tmp_path("big.db"), *file = tmp_path("big.jsonl");
    enum { N_LINES = 100000, PROMPT = 600 };
    char prompt[PROMPT + 1];
    memset(prompt, 'w', PROMPT);
    prompt[PROMPT] = '\0';
    FILE *f = fopen(file, "wb");
    long long n_bad = 0;
    for (int i = 0; i < N_LINES; i++) {
        if (i % 1000 == 999) {
            fprintf(f, "{\"custom_id\":\"job-%d\",\"prompt\":\"x\",\"n\":-1}\n", i);
            n_bad++;
        } else {
            fprintf(f, "{\"custom_id\":\"job-%d\",\"prompt\":\"%d %s\",\"seed\":%d}\n", i, i,
                    prompt, i);
        }
    }
    long file_bytes = ftell(f);
    fclose(f);
    cr_assert_gt(file_bytes, 60L << 20);
    result_t r = submit(db_path, file, "--run big --quiet");
    cr_assert_eq(r.status, 1, "%s%s", r.out, r.err);
    char expect[128];
    snprintf(expect, sizeof expect, "%lld accepted, 0 already present, %lld rejected",
             N_LINES - n_bad, n_bad);
    cr_assert(strstr(r.out, expect), "%s", r.out);
    rf_test_result_free(&r);
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
#if defined(__SANITIZE_ADDRESS__)
    long limit_kb = 400L << 10; /* ASan's shadow and quarantine */
#else
    long limit_kb = 48L << 10;
#endif
    cr_assert_lt(ru.ru_maxrss, limit_kb, "peak RSS %ld KiB for a %ld MiB file", ru.ru_maxrss,
                 file_bytes >> 20);
    sqlite3 *db = open_db(db_path);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM jobs"), N_LINES - n_bad);
    cr_assert_eq(query_int(db, "SELECT count(*) FROM rejected_lines"), n_bad);
    cr_assert_eq(query_int(db, "SELECT source_line FROM jobs WHERE custom_id = 'job-54321'"),
                 54322);
    sqlite3_close(db);
    remove(file);
    remove(db_path);
}

/* ---------------------------------------------------------------- parser */

Test(submit, same_content_gives_the_same_hash)
{
    rf_ingest_job_t a, b, c;
    rf_err_t err = {0};
    const char *l1 = "{\"custom_id\":\"x\",\"prompt\":\"p\",\"temperature\":1,\"top_p\":0.5}";
    const char *l2 = "{\"top_p\":0.5,\"temperature\":1.0,\"prompt\":\"p\",\"custom_id\":\"x\","
                     "\"priority\":9,\"metadata\":{\"k\":1}}";
    const char *l3 = "{\"custom_id\":\"x\",\"prompt\":\"p\",\"temperature\":1,\"top_p\":0.6}";
    cr_assert_eq(rf_ingest_parse_line(l1, strlen(l1), NULL, &a, &err), 0, "%s", err.msg);
    cr_assert_eq(rf_ingest_parse_line(l2, strlen(l2), NULL, &b, &err), 0, "%s", err.msg);
    cr_assert_eq(rf_ingest_parse_line(l3, strlen(l3), NULL, &c, &err), 0, "%s", err.msg);
    cr_assert_str_eq(a.input_hash, b.input_hash, "key order, 1 vs 1.0, priority and metadata "
                     "do not change the content");
    cr_assert_str_eq(a.params, b.params);
    cr_assert_str_neq(a.input_hash, c.input_hash);
    cr_assert_eq(b.priority, 9);
    rf_ingest_job_free(&a);
    rf_ingest_job_free(&b);
    rf_ingest_job_free(&c);
}

Test(submit, not_before_forms)
{
    static const struct {
        const char *value;
        long long ms;
    } cases[] = {
        {"\"1970-01-01T00:00:00Z\"", 0},
        {"\"2026-11-24T08:00:00.250+01:00\"", 1795503600250LL},
        {"\"2024-02-29t12:00:00-00:30\"", 1709209800000LL},
        {"1700000000123", 1700000000123LL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "{\"custom_id\":\"t\",\"prompt\":\"p\",\"not_before\":%s}",
                 cases[i].value);
        rf_ingest_job_t job;
        rf_err_t err = {0};
        cr_assert_eq(rf_ingest_parse_line(line, strlen(line), NULL, &job, &err), 0, "%s: %s",
                     cases[i].value, err.msg);
        cr_assert_eq(job.not_before_ms, cases[i].ms, "%s", cases[i].value);
        rf_ingest_job_free(&job);
    }
    static const char *bad[] = {"\"2023-02-29T00:00:00Z\"", "\"2026-11-24T08:00:00\"",
                                "\"2026-13-01T00:00:00Z\"", "-5", "true"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "{\"custom_id\":\"t\",\"prompt\":\"p\",\"not_before\":%s}",
                 bad[i]);
        rf_ingest_job_t job;
        rf_err_t err = {0};
        cr_assert_lt(rf_ingest_parse_line(line, strlen(line), NULL, &job, &err), 0, "%s", bad[i]);
        cr_assert(strstr(err.msg, "not_before"), "%s", err.msg);
        cr_assert_str_eq(job.custom_id, "t", "the custom_id is kept for the rejection");
        rf_ingest_job_free(&job);
    }
}
