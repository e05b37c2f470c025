/* cmd_export.c - `rocmforge export`: a run's results as JSONL
 *
 * Writes one line per finished job of a run. The default format is the
 * OpenAI Batch API's output file: a done job becomes
 *   {"id": "batch_req_<job_id>", "custom_id", "response": {"status_code": 200,
 *    "request_id": "<job_id>", "body": <chat.completion | text_completion>},
 *    "error": null}
 * and a failed or cancelled job {"id", "custom_id", "response": null,
 * "error": {"code", "message"}}, in the --errors file when one is given.
 * --format simple writes {"custom_id", "output" (or "outputs" for n > 1),
 * "finish_reason", "prompt_tokens", "completion_tokens", "metadata"}.
 * docs/cli.md has every field.
 *
 * The run is streamed: one job's results are held at a time (its n samples),
 * never the whole run. Queries walk the jobs_run_state index in job_id order
 * so SQLite needs no sort either. Files are written to OUT.tmp and renamed
 * when complete, so a reader never sees half an export; a path that is not
 * a regular file (/dev/null, a pipe, a symbolic link) is written in place.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "compress.h"
#include "db.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- types */

typedef enum format { FORMAT_OPENAI, FORMAT_SIMPLE } format_t;

/* An output file: the final path and the .tmp being written (NULL: stdout). */
typedef struct sink {
    FILE *f;
    char *path, *tmp;       /* tmp == path when written in place */
    bool in_place;          /* not a regular file: no .tmp and rename */
    int64_t lines;
} sink_t;

/* The job being assembled from its results rows. */
typedef struct job {
    int64_t job_id;             /* 0: none yet */
    char *custom_id, *kind, *model;
    json_t *metadata;           /* parsed jobs.metadata, or null */
    json_t *outputs;            /* [n] strings (score jobs: the parsed score JSON) */
    json_t *finish_reasons;     /* [n] as stored */
    json_t *logprobs;           /* [n] parsed, or null each */
    int64_t prompt_tokens, completion_tokens, created_ms;
    bool any_logprobs;
    bool broken;                /* a sample could not be read: skip the job */
} job_t;

typedef struct export {
    rf_db_t *db;
    rf_compressor_t *compressor;
    format_t format;
    sink_t out, errors;
    rf_bytes_t buf;             /* decompression scratch */
    job_t job;
    int64_t n_done, n_failed, n_cancelled, n_broken;
} export_t;

/* ---------------------------------------------------------------- helpers */

static void export_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge export DB --run NAME [-o OUT.jsonl] [--errors ERR.jsonl]\n"
            "                        [--format openai|simple]\n"
            "\n"
            "Write the results of run NAME of the job database DB as JSONL, one line per\n"
            "finished job, streamed (memory holds one job at a time). Done jobs go to OUT\n"
            "(stdout without -o); failed and cancelled jobs go to ERR, or to OUT without\n"
            "--errors. Queued and running jobs are not written (a count goes to stderr).\n"
            "Files are written to NAME.tmp and renamed when complete. The database is\n"
            "opened read-only.\n"
            "\n"
            "options:\n"
            "      --run NAME          the run to export (required)\n"
            "  -o, --output OUT        output file (default: stdout)\n"
            "      --errors ERR        file for failed and cancelled jobs\n"
            "      --format FORMAT     openai (default): OpenAI Batch API output lines\n"
            "                          {\"id\", \"custom_id\", \"response\": {\"status_code\",\n"
            "                          \"request_id\", \"body\": chat.completion or\n"
            "                          text_completion}, \"error\"};\n"
            "                          simple: {\"custom_id\", \"output\" (\"outputs\" when n > 1),\n"
            "                          \"finish_reason\", \"prompt_tokens\", \"completion_tokens\",\n"
            "                          \"metadata\"}\n"
            "  -h, --help              show this help\n"
            "\n"
            "Exit status: 0 all finished jobs written, 1 a job's output could not be read\n"
            "(named on stderr; the others are written) or the database or a file failed,\n"
            "2 usage error.\n");
}

static char *dup_text(sqlite3_stmt *stmt, int col)
{
    const char *t = (const char *)sqlite3_column_text(stmt, col);
    return strdup(t ? t : "");
}

static void job_clear(job_t *job)
{
    free(job->custom_id);
    free(job->kind);
    free(job->model);
    json_decref(job->metadata);
    json_decref(job->outputs);
    json_decref(job->finish_reasons);
    json_decref(job->logprobs);
    memset(job, 0, sizeof *job);
}

static int sink_open(sink_t *s, const char *path)
{
    memset(s, 0, sizeof *s);
    if (path == NULL) {
        s->f = stdout;
        return 0;
    }
    /* A device, pipe or symbolic link (/dev/null, /dev/stdout, a FIFO) is
     * written in place: renaming a file over it would replace it. */
    struct stat st;
    bool in_place = lstat(path, &st) == 0 && !S_ISREG(st.st_mode);
    size_t n = strlen(path) + 5;
    s->path = strdup(path);
    s->tmp = malloc(n);
    if (s->path == NULL || s->tmp == NULL) {
        rf__cli_error("export", "out of memory");
        return -ENOMEM;
    }
    snprintf(s->tmp, n, in_place ? "%s" : "%s.tmp", path);
    s->in_place = in_place;
    s->f = fopen(s->tmp, "w");
    if (s->f == NULL) {
        int e = errno;
        rf__cli_error("export", "cannot write %s: %s", s->tmp, strerror(e));
        return -e;
    }
    return 0;
}

/* Finish a sink: flush, close and (ok) rename the .tmp into place, or
 * remove it. Returns 0 or -errno (message printed). */
static int sink_close(sink_t *s, bool ok)
{
    int rc = 0;
    if (s->f != NULL && s->f != stdout) {
        if (fflush(s->f) != 0 || ferror(s->f) || (!s->in_place && fsync(fileno(s->f)) != 0))
            rc = errno ? -errno : -EIO;
        if (fclose(s->f) != 0 && rc == 0)
            rc = -errno;
        if (rc != 0) {
            rf__cli_error("export", "writing %s: %s", s->tmp, strerror(-rc));
            ok = false;
        }
        if (!s->in_place && ok && rename(s->tmp, s->path) != 0) {
            rc = -errno;
            rf__cli_error("export", "renaming %s to %s: %s", s->tmp, s->path, strerror(errno));
            ok = false;
        }
        if (!ok && !s->in_place)
            unlink(s->tmp);
    } else if (s->f == stdout && (fflush(stdout) != 0 || ferror(stdout))) {
        rc = -EIO;
        rf__cli_error("export", "writing to stdout failed");
    }
    free(s->path);
    free(s->tmp);
    memset(s, 0, sizeof *s);
    return rc;
}

/* Write obj (stolen) as one line. */
static int emit(sink_t *s, json_t *obj)
{
    if (obj == NULL) {
        rf__cli_error("export", "out of memory");
        return -ENOMEM;
    }
    int rc = json_dumpf(obj, s->f, JSON_COMPACT);
    json_decref(obj);
    if (rc != 0 || fputc('\n', s->f) == EOF) {
        rf__cli_error("export", "writing %s: %s", s->tmp ? s->tmp : "stdout", strerror(errno));
        return -EIO;
    }
    s->lines++;
    return 0;
}

/* Decompress one zstd frame of at most max_size bytes into e->buf. */
static int unpack(export_t *e, const void *frame, size_t len, size_t max_size, rf_err_t *err)
{
    e->buf.len = 0;
    if (e->buf.data != NULL)
        e->buf.data[0] = '\0';
    return rf_decompress(e->compressor, frame, len, max_size, &e->buf, err);
}

/* ---------------------------------------------------------------- done jobs */

/* OpenAI reports a stop on the context window as "length"; its list of
 * reasons has no "context". */
static const char *openai_finish_reason(const char *reason)
{
    return strcmp(reason, "context") == 0 ? "length" : reason;
}

static json_t *openai_line(const job_t *job)
{
    bool chat = strcmp(job->kind, "chat") == 0, score = strcmp(job->kind, "score") == 0;
    char id[48], request_id[24];
    snprintf(request_id, sizeof request_id, "%lld", (long long)job->job_id);
    json_t *usage = json_pack("{sI sI sI}", "prompt_tokens", (json_int_t)job->prompt_tokens,
                              "completion_tokens", (json_int_t)job->completion_tokens,
                              "total_tokens",
                              (json_int_t)(job->prompt_tokens + job->completion_tokens));
    json_t *body;
    if (score) {
        snprintf(id, sizeof id, "score-%lld", (long long)job->job_id);
        body = json_pack("{ss ss sI ss sO so}", "id", id, "object", "score", "created",
                         (json_int_t)(job->created_ms / 1000), "model", job->model, "score",
                         json_array_get(job->outputs, 0), "usage", usage);
    } else {
        json_t *choices = json_array();
        for (size_t i = 0; choices != NULL && i < json_array_size(job->outputs); i++) {
            json_t *text = json_array_get(job->outputs, i);
            json_t *lp = json_array_get(job->logprobs, i);
            const char *reason =
                openai_finish_reason(json_string_value(json_array_get(job->finish_reasons, i)));
            json_t *choice;
            if (chat) {
                /* Chat logprobs are {"content": [...]}: a stored list is wrapped. */
                json_t *chat_lp = json_is_array(lp) ? json_pack("{sO}", "content", lp)
                                                    : json_incref(lp);
                choice = json_pack("{sI s{ss sO sn} so ss}", "index", (json_int_t)i, "message",
                                   "role", "assistant", "content", text, "refusal", "logprobs",
                                   chat_lp ? chat_lp : json_null(), "finish_reason", reason);
            } else {
                choice = json_pack("{sO sI sO ss}", "text", text, "index", (json_int_t)i,
                                   "logprobs", lp ? lp : json_null(), "finish_reason", reason);
            }
            if (json_array_append_new(choices, choice) < 0) {
                json_decref(choices);
                choices = NULL;
            }
        }
        snprintf(id, sizeof id, "%s-%lld", chat ? "chatcmpl" : "cmpl", (long long)job->job_id);
        body = json_pack("{ss ss sI ss so so}", "id", id, "object",
                         chat ? "chat.completion" : "text_completion", "created",
                         (json_int_t)(job->created_ms / 1000), "model", job->model, "choices",
                         choices, "usage", usage);
    }
    char line_id[48];
    snprintf(line_id, sizeof line_id, "batch_req_%lld", (long long)job->job_id);
    return json_pack("{ss ss s{si ss so} sn}", "id", line_id, "custom_id", job->custom_id,
                     "response", "status_code", 200, "request_id", request_id, "body", body,
                     "error");
}

static json_t *simple_line(const job_t *job)
{
    size_t n = json_array_size(job->outputs);
    json_t *line = json_pack("{ss}", "custom_id", job->custom_id);
    if (line == NULL)
        return NULL;
    int rc = 0;
    if (n == 1) {
        rc |= json_object_set(line, "output", json_array_get(job->outputs, 0));
        rc |= json_object_set(line, "finish_reason", json_array_get(job->finish_reasons, 0));
    } else {
        rc |= json_object_set(line, "outputs", job->outputs);
        rc |= json_object_set(line, "finish_reason", job->finish_reasons);
    }
    rc |= json_object_set_new(line, "prompt_tokens", json_integer(job->prompt_tokens));
    rc |= json_object_set_new(line, "completion_tokens", json_integer(job->completion_tokens));
    if (job->any_logprobs)
        rc |= json_object_set(line, "logprobs",
                              n == 1 ? json_array_get(job->logprobs, 0) : job->logprobs);
    rc |= json_object_set(line, "metadata", job->metadata);
    if (rc != 0) {
        json_decref(line);
        return NULL;
    }
    return line;
}

/* Write the assembled job (if any) and forget it. */
static int flush_job(export_t *e)
{
    if (e->job.job_id == 0)
        return 0;
    int rc = 0;
    if (e->job.broken) {
        e->n_broken++;
    } else {
        rc = emit(&e->out, e->format == FORMAT_OPENAI ? openai_line(&e->job)
                                                      : simple_line(&e->job));
        e->n_done++;
    }
    job_clear(&e->job);
    return rc;
}

static const char DONE_SQL[] =
    "SELECT j.job_id, j.custom_id, j.kind, j.metadata, "
    "  coalesce(json_extract(j.params, '$.model'), "
    "    (SELECT w.model FROM job_metrics m JOIN workers w ON w.worker_id = m.worker_id "
    "     WHERE m.job_id = j.job_id), 'rocmforge'), "
    "  r.sample, r.output, r.output_bytes, r.finish_reason, r.prompt_tokens, "
    "  r.completion_tokens, r.logprobs, r.created_ms "
    "FROM jobs j INDEXED BY jobs_run_state JOIN results r ON r.job_id = j.job_id "
    "WHERE j.run_id = ?1 AND j.state = 'done' ORDER BY j.job_id, r.sample";

/* Logprobs frames hold JSON; their size is not stored, so allow this much. */
enum { MAX_LOGPROBS_BYTES = 256 << 20 };

/* Add one results row to e->job (starting a new job when the id changes). */
static int add_row(export_t *e, sqlite3_stmt *stmt)
{
    int64_t job_id = sqlite3_column_int64(stmt, 0);
    job_t *job = &e->job;
    if (job_id != job->job_id) {
        int rc = flush_job(e);
        if (rc < 0)
            return rc;
        job->job_id = job_id;
        job->custom_id = dup_text(stmt, 1);
        job->kind = dup_text(stmt, 2);
        job->model = dup_text(stmt, 4);
        const char *meta = (const char *)sqlite3_column_text(stmt, 3);
        job->metadata = meta ? json_loads(meta, JSON_DECODE_ANY, NULL) : NULL;
        if (job->metadata == NULL)
            job->metadata = json_null();
        job->outputs = json_array();
        job->finish_reasons = json_array();
        job->logprobs = json_array();
        job->prompt_tokens = sqlite3_column_int64(stmt, 9);
        if (job->custom_id == NULL || job->kind == NULL || job->model == NULL ||
            job->outputs == NULL || job->finish_reasons == NULL || job->logprobs == NULL) {
            rf__cli_error("export", "out of memory");
            return -ENOMEM;
        }
    }
    if (job->broken)
        return 0;
    int64_t sample = sqlite3_column_int64(stmt, 5), output_bytes = sqlite3_column_int64(stmt, 7);
    rf_err_t err = {0};
    int rc = output_bytes < 0 ? RF_EFORMAT
                              : unpack(e, sqlite3_column_blob(stmt, 6),
                                       (size_t)sqlite3_column_bytes(stmt, 6),
                                       (size_t)output_bytes, &err);
    if (rc == 0 && e->buf.len != (size_t)output_bytes)
        rc = rf_err_set(&err, RF_EFORMAT, "decompressed %zu bytes, results.output_bytes says %lld",
                        e->buf.len, (long long)output_bytes);
    json_t *output = NULL;
    if (rc == 0) {
        if (strcmp(job->kind, "score") == 0) {
            output = json_loadb(e->buf.data ? e->buf.data : "", e->buf.len, JSON_DECODE_ANY, NULL);
            if (output == NULL)
                rc = rf_err_set(&err, RF_EFORMAT, "the stored score is not JSON");
        } else {
            output = rf__json_from_bytes(e->buf.data ? e->buf.data : "", e->buf.len);
            if (output == NULL)
                rc = -ENOMEM;
        }
    }
    json_t *lp = json_null();
    if (rc == 0 && sqlite3_column_type(stmt, 11) != SQLITE_NULL) {
        rc = unpack(e, sqlite3_column_blob(stmt, 11), (size_t)sqlite3_column_bytes(stmt, 11),
                    MAX_LOGPROBS_BYTES, &err);
        if (rc == 0) {
            /* A token's text may hold a NUL byte (stored as \u0000). */
            lp = json_loadb(e->buf.data ? e->buf.data : "", e->buf.len,
                            JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
            if (lp == NULL)
                rc = rf_err_set(&err, RF_EFORMAT, "the stored logprobs are not JSON");
            job->any_logprobs = true;
        }
    }
    if (rc == -ENOMEM) {
        json_decref(output);
        json_decref(lp);
        rf__cli_error("export", "out of memory");
        return rc;
    }
    if (rc < 0) {
        json_decref(output);
        json_decref(lp);
        rf__cli_error("export", "database %s: job '%s' (job_id %lld), sample %lld: %s; the job "
                      "is left out of the export",
                      rf_db_path(e->db), job->custom_id, (long long)job_id, (long long)sample,
                      err.msg[0] ? err.msg : rf_strerror(rc));
        job->broken = true;
        return 0;
    }
    const char *reason = (const char *)sqlite3_column_text(stmt, 8);
    int64_t created_ms = sqlite3_column_int64(stmt, 12);
    if (json_array_append_new(job->outputs, output) < 0 ||
        json_array_append_new(job->finish_reasons, json_string(reason ? reason : "")) < 0 ||
        json_array_append_new(job->logprobs, lp) < 0) {
        rf__cli_error("export", "out of memory");
        return -ENOMEM;
    }
    job->completion_tokens += sqlite3_column_int64(stmt, 10);
    if (created_ms > job->created_ms)
        job->created_ms = created_ms;
    return 0;
}

static int export_done(export_t *e, int64_t run_id)
{
    sqlite3_stmt *stmt;
    rf_err_t err = {0};
    int rc = rf_db_prepare(e->db, DONE_SQL, &stmt, &err);
    if (rc < 0) {
        rf__cli_error("export", "%s", err.msg);
        return rc;
    }
    sqlite3_bind_int64(stmt, 1, run_id);
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        rc = add_row(e, stmt);
        if (rc < 0)
            break;
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = rf_db_error(e->db, step, "read results", &err);
        rf__cli_error("export", "%s", err.msg);
    }
    rf_db_done(stmt);
    if (rc == 0)
        rc = flush_job(e);
    job_clear(&e->job);
    return rc;
}

/* ---------------------------------------------------------------- failures */

static int export_failures(export_t *e, int64_t run_id, const char *state)
{
    sqlite3_stmt *stmt;
    rf_err_t err = {0};
    int rc = rf_db_prepare(e->db,
                           "SELECT job_id, custom_id, error, metadata FROM jobs "
                           "INDEXED BY jobs_run_state WHERE run_id = ?1 AND state = ?2 "
                           "ORDER BY job_id",
                           &stmt, &err);
    if (rc < 0) {
        rf__cli_error("export", "%s", err.msg);
        return rc;
    }
    sqlite3_bind_int64(stmt, 1, run_id);
    sqlite3_bind_text(stmt, 2, state, -1, SQLITE_STATIC);
    bool failed = strcmp(state, "failed") == 0;
    /* "batch_cancelled" is what OpenAI reports for requests a cancel stopped. */
    const char *code = failed ? "job_failed" : "batch_cancelled";
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        int64_t job_id = sqlite3_column_int64(stmt, 0);
        const char *cid = (const char *)sqlite3_column_text(stmt, 1);
        const char *error = (const char *)sqlite3_column_text(stmt, 2);
        if (error == NULL)
            error = failed ? "the job failed (no message stored)"
                           : "the job was cancelled before it finished";
        json_t *message = rf__json_from_bytes(error, strlen(error)), *line;
        if (e->format == FORMAT_OPENAI) {
            char id[48];
            snprintf(id, sizeof id, "batch_req_%lld", (long long)job_id);
            line = json_pack("{ss ss sn s{ss so}}", "id", id, "custom_id", cid ? cid : "",
                             "response", "error", "code", code, "message", message);
        } else {
            const char *meta = (const char *)sqlite3_column_text(stmt, 3);
            json_t *metadata = meta ? json_loads(meta, JSON_DECODE_ANY, NULL) : NULL;
            line = json_pack("{ss s{ss so} so}", "custom_id", cid ? cid : "", "error", "code",
                             code, "message", message, "metadata",
                             metadata ? metadata : json_null());
        }
        rc = emit(&e->errors, line);
        if (rc < 0)
            break;
        if (failed)
            e->n_failed++;
        else
            e->n_cancelled++;
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = rf_db_error(e->db, step, "read failed jobs", &err);
        rf__cli_error("export", "%s", err.msg);
    }
    rf_db_done(stmt);
    return rc;
}

/* ---------------------------------------------------------------- command */

int rf__cmd_export(int argc, char **argv)
{
    enum { OPT_RUN = 256, OPT_ERRORS, OPT_FORMAT };
    static const struct option long_options[] = {
        {"run", required_argument, NULL, OPT_RUN},
        {"output", required_argument, NULL, 'o'},
        {"errors", required_argument, NULL, OPT_ERRORS},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *run_name = NULL, *out_path = NULL, *errors_path = NULL;
    export_t e = {.format = FORMAT_OPENAI};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", long_options, NULL)) != -1) {
        if (c == 'h') {
            export_usage(stdout);
            return RF_EXIT_OK;
        } else if (c == OPT_RUN) {
            run_name = optarg;
        } else if (c == 'o') {
            out_path = optarg;
        } else if (c == OPT_ERRORS) {
            errors_path = optarg;
        } else if (c == OPT_FORMAT) {
            if (strcmp(optarg, "openai") == 0) {
                e.format = FORMAT_OPENAI;
            } else if (strcmp(optarg, "simple") == 0) {
                e.format = FORMAT_SIMPLE;
            } else {
                rf__cli_error("export", "bad value '%s' for --format: openai or simple", optarg);
                return RF_EXIT_USAGE;
            }
        } else {
            rf__cli_error("export", "unknown or incomplete option '%s'; see 'rocmforge export "
                          "--help'", argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        rf__cli_error("export", "expected one argument, the database; see 'rocmforge export "
                      "--help'");
        return RF_EXIT_USAGE;
    }
    if (run_name == NULL) {
        rf__cli_error("export", "which run? give --run NAME ('rocmforge runs %s' lists them)",
                      argv[optind]);
        return RF_EXIT_USAGE;
    }
    if (out_path != NULL && errors_path != NULL && strcmp(out_path, errors_path) == 0) {
        rf__cli_error("export", "-o and --errors name the same file; leave --errors out to "
                      "write failures to the output file");
        return RF_EXIT_USAGE;
    }
    int status = RF_EXIT_FAIL, rc;
    bool ok = false, errors_own = errors_path != NULL;
    int64_t run_id = 0, unfinished = 0;
    rf_err_t err = {0};
    if (rf__cli_open_db("export", argv[optind], RF_DB_READONLY, &e.db) < 0)
        return RF_EXIT_FAIL;
    /* One read transaction: the export is one consistent snapshot even
     * while a run writes results. */
    if (rf_db_exec(e.db, "BEGIN", "begin read", &err) < 0) {
        rf__cli_error("export", "%s", err.msg);
        goto done;
    }
    if (rf__cli_find_run("export", e.db, run_name, &run_id) < 0)
        goto done;
    rc = rf_compressor_open(&e.compressor, rf_db_handle(e.db), 0, &err);
    if (rc < 0) {
        rf__cli_error("export", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    if (sink_open(&e.out, out_path) < 0 || (errors_own && sink_open(&e.errors, errors_path) < 0))
        goto done;
    if (!errors_own)
        e.errors = e.out;
    if (export_done(&e, run_id) < 0 || export_failures(&e, run_id, "failed") < 0 ||
        export_failures(&e, run_id, "cancelled") < 0)
        goto done;
    sqlite3_stmt *stmt;
    if (rf_db_prepare(e.db, "SELECT count(*) FROM jobs WHERE run_id = ?1 AND state IN "
                      "('queued', 'running')", &stmt, &err) == 0) {
        sqlite3_bind_int64(stmt, 1, run_id);
        if (sqlite3_step(stmt) == SQLITE_ROW)
            unfinished = sqlite3_column_int64(stmt, 0);
        rf_db_done(stmt);
    }
    ok = true;
done:
    if (!errors_own)
        memset(&e.errors, 0, sizeof e.errors);
    if (sink_close(&e.errors, ok) < 0)
        ok = false;
    if (sink_close(&e.out, ok) < 0)
        ok = false;
    if (ok) {
        fprintf(stderr, "rocmforge: export: run '%s': %lld done jobs written to %s, %lld failed "
                "and %lld cancelled to %s", run_name, (long long)e.n_done,
                out_path ? out_path : "stdout", (long long)e.n_failed, (long long)e.n_cancelled,
                errors_path ? errors_path : out_path ? out_path : "stdout");
        if (unfinished > 0)
            fprintf(stderr, "; %lld queued or running jobs not exported", (long long)unfinished);
        fputc('\n', stderr);
        if (e.n_broken > 0)
            fprintf(stderr, "rocmforge: export: %lld done jobs left out: their output could not "
                    "be read (see above)\n", (long long)e.n_broken);
        status = e.n_broken > 0 ? RF_EXIT_FAIL : RF_EXIT_OK;
    }
    job_clear(&e.job);
    rf_bytes_free(&e.buf);
    rf_compressor_close(e.compressor);
    rf_db_close(e.db);
    return status;
}
