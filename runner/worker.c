/* worker.c - `rocmforge run`'s loop: claim, prepare, run, compress, commit
 *
 * Design notes
 * ------------
 * Every job this worker claimed has one entry (job_entry_t) from claim to
 * the commit that finishes it. Entry states:
 *
 *   claim_jobs        prepare (pool) ok: SUBMIT        last FINISHED
 *   ----------> PREPARING -----------------> RUNNING ---------------> COMPRESSING
 *                   |  prepare failed             |  FAILED event          | compress (pool)
 *                   v                             v                        v
 *                FAILING <------------------------+                      READY
 *                   |                                                      |
 *                   +------------- flush (group commit) -------------------+--> freed
 *
 * Invariants:
 *   1. Only the loop thread reads or writes entries, the database, and the
 *      libuv handles. A work item on the pool touches only its own entry's
 *      payload fields (prep, frames), never the list, until its after-work
 *      callback runs on the loop thread.
 *   2. A job is committed (complete or fail) at most once by this worker,
 *      and always through rf_jobq_complete / rf_jobq_fail, which are fenced
 *      by (worker, attempt): a job whose lease was lost changes nothing.
 *   3. n_work counts work items queued on the pool; the loop is not torn
 *      down while it is nonzero (their after-work callbacks still run).
 *   4. Draining: once `draining`, no claim is made and no job is submitted;
 *      the engine is asked to checkpoint (DRAIN) exactly once; teardown
 *      starts when the engine said DRAINED and n_work is 0. Then the last
 *      group is committed and every lease still held is released.
 */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zstd.h>

#include "bridge.h"
#include "chat.h"
#include "cli.h"
#include "compress.h"
#include "engine_thread.h"
#include "gguf.h"
#include "jobq.h"
#include "prepare.h"

/* ------------------------------------------------------------------ types */

typedef enum entry_state {
    E_PREPARING, E_RUNNING, E_COMPRESSING, E_READY, E_FAILING,
} entry_state_t;

typedef struct run_dict {
    struct run_dict *next;
    int64_t run_id;
    uint32_t dict_id;            /* 0: the run has none (yet) */
    ZSTD_CDict *cdict;
    int64_t results_at_check;    /* committed results when last trained/looked */
} run_dict_t;

typedef struct worker worker_t;

typedef struct job_entry {
    struct job_entry *next;
    worker_t *w;
    rf_jobq_job_t job;
    entry_state_t state;
    uv_work_t work;
    /* prepare */
    rf_prepared_t prep;
    int prep_rc;
    rf_err_t prep_err;
    uint32_t n_samples;
    bool is_score, logprobs;
    /* running */
    rf_sched_output_t **outputs;  /* [n_samples] */
    uint32_t n_finished;
    rf_resume_t *progress;        /* [n_samples] latest tokens (borrowed from outputs
                                     or owned copies: see set_progress) */
    rf_sched_output_t **ckpts;    /* [n_samples] owned checkpoint outputs */
    bool ckpt_dirty;
    int64_t claim_wall_ms, first_token_wall_ms;
    int64_t mono_offset_ms;       /* wall - monotonic at claim */
    /* compress */
    run_dict_t *dict;
    rf_bytes_t *frames, *lp_frames; /* [n_samples] */
    size_t *text_bytes;
    int comp_rc;
    rf_err_t comp_err;
    /* failing */
    char *error;
    unsigned fail_flags;
} job_entry_t;

struct worker {
    uv_loop_t loop;
    rf_bridge_t bridge;
    uv_timer_t poll_timer, heartbeat_timer, flush_timer, progress_timer;
    uv_signal_t sigint, sigterm;
    rf_db_t *db;
    rf_engine_t *engine;
    rf_sched_t *sched;
    rf_engine_thread_t thread;
    rf_compressor_t *comp;
    rf_worker_options_t o;
    char worker_id[256];
    rf_prepare_ctx_t pctx;
    char chat_error[256];
    job_entry_t *entries;
    size_t n_entries;
    run_dict_t *dicts;
    int n_work;
    bool draining, drain_sent, drained, torn_down, idle_check_due;
    int signals;
    int exit_code;
    rf_err_t err;
    /* progress */
    int progress_mode;            /* 1 bar, 2 lines, 0 none */
    int64_t start_ms;
    int64_t jobs_done, jobs_failed, tokens_out, tokens_in;
    int64_t committed;
    bool bar_drawn;
};

/* ------------------------------------------------------------------ helpers */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logf_(worker_t *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(worker_t *w, const char *fmt, ...)
{
    if (w->bar_drawn) {
        fputs("\r\033[K", stderr);
        w->bar_drawn = false;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("rocmforge run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void entry_free(job_entry_t *e)
{
    if (e == NULL)
        return;
    rf_jobq_job_free(&e->job);
    rf_prepared_free(&e->prep);
    for (uint32_t i = 0; i < e->n_samples; i++) {
        if (e->outputs)
            rf_sched_output_free(e->outputs[i]);
        if (e->ckpts)
            rf_sched_output_free(e->ckpts[i]);
        if (e->frames)
            rf_bytes_free(&e->frames[i]);
        if (e->lp_frames)
            rf_bytes_free(&e->lp_frames[i]);
    }
    free(e->outputs);
    free(e->ckpts);
    free(e->progress);
    free(e->frames);
    free(e->lp_frames);
    free(e->text_bytes);
    free(e->error);
    free(e);
}

static job_entry_t *find_entry(worker_t *w, int64_t job_id)
{
    for (job_entry_t *e = w->entries; e != NULL; e = e->next)
        if (e->job.job_id == job_id)
            return e;
    return NULL;
}

static void remove_entry(worker_t *w, job_entry_t *e)
{
    for (job_entry_t **p = &w->entries; *p != NULL; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            w->n_entries--;
            entry_free(e);
            return;
        }
}

static void schedule_flush(worker_t *w);

/* The job cannot be done by this worker: fail it at the next commit.
 * Permanent failures (the input is wrong for this model) are not retried. */
static void entry_fail(worker_t *w, job_entry_t *e, const char *msg, bool permanent)
{
    if (e->state == E_RUNNING)
        rf_bridge_push_request(&w->bridge, RF_BRIDGE_REQ_CANCEL, e->job.job_id, NULL, NULL);
    free(e->error);
    e->error = strdup(msg);
    e->fail_flags = permanent ? RF_JOBQ_FAIL_PERMANENT : 0;
    e->state = E_FAILING;
    schedule_flush(w);
}

static void begin_drain(worker_t *w);
static void maybe_teardown(worker_t *w);

/* A database error other than a lock wait (disk full, I/O error, a
 * read-only or damaged file): stop the run. Nothing more is written;
 * what was committed stays, the jobs in flight are reclaimed later. */
static void db_fatal(worker_t *w, int rc, const rf_err_t *err)
{
    if (w->exit_code == 0) {
        w->exit_code = 1;
        snprintf(w->err.msg, sizeof w->err.msg, "%.380s; stopping (results committed so far "
                 "are kept; jobs in flight are retried by the next run)",
                 err->msg[0] ? err->msg : rf_strerror(rc));
        logf_(w, "database error: %s", w->err.msg);
    }
    begin_drain(w);
}

/* ------------------------------------------------------------------ dictionaries */

static run_dict_t *dict_for_run(worker_t *w, int64_t run_id)
{
    for (run_dict_t *d = w->dicts; d != NULL; d = d->next)
        if (d->run_id == run_id)
            return d;
    run_dict_t *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->run_id = run_id;
    uint32_t id = 0;
    void *bytes = NULL;
    size_t size = 0;
    rf_err_t err = {0};
    if (rf_compress_run_dict(w->comp, run_id, &id, &bytes, &size, &err) == 0 && bytes != NULL) {
        d->cdict = ZSTD_createCDict(bytes, size, w->o.zstd_level > 0 ? w->o.zstd_level : 3);
        d->dict_id = d->cdict != NULL ? id : 0;
    }
    free(bytes);
    d->next = w->dicts;
    w->dicts = d;
    return d;
}

/* After a commit: train the run's dictionary when enough results exist
 * (first at 64, then again at 8x as many), and use it from now on. A
 * superseded dictionary stays allocated until exit: work in flight may
 * still be compressing with it. */
static void maybe_train(worker_t *w, int64_t run_id)
{
    sqlite3_stmt *st = NULL;
    rf_err_t err = {0};
    if (rf_db_prepare(w->db, "SELECT count(*) FROM results r JOIN jobs j USING (job_id) "
                             "WHERE j.run_id = ?", &st, &err) != 0)
        return;
    sqlite3_bind_int64(st, 1, run_id);
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    rf_db_done(st);
    run_dict_t *cur = dict_for_run(w, run_id);
    if (cur == NULL)
        return;
    int64_t next_at = cur->results_at_check == 0 ? 64 : cur->results_at_check * 8;
    if (n < next_at)
        return;
    cur->results_at_check = n;
    int rc = rf_compress_train(w->comp, run_id, 64, 2000, 16384, &err);
    if (rc < 0) {
        logf_(w, "training a dictionary for run %" PRId64 " failed (%s); results stay "
              "compressed without one", run_id, err.msg);
        return;
    }
    if (rc != 0)
        return;
    uint32_t id = 0;
    void *bytes = NULL;
    size_t size = 0;
    rf_err_clear(&err);
    if (rf_compress_run_dict(w->comp, run_id, &id, &bytes, &size, &err) == 0 && bytes != NULL) {
        ZSTD_CDict *cd = ZSTD_createCDict(bytes, size, w->o.zstd_level > 0 ? w->o.zstd_level : 3);
        if (cd != NULL) {
            run_dict_t *d = calloc(1, sizeof *d);
            if (d != NULL) {
                /* The new one goes first, so dict_for_run finds it. */
                *d = (run_dict_t){.next = w->dicts, .run_id = run_id, .dict_id = id,
                                  .cdict = cd, .results_at_check = n};
                w->dicts = d;
            } else {
                ZSTD_freeCDict(cd);
            }
        }
    }
    free(bytes);
}

/* ------------------------------------------------------------------ compress (pool) */

/* Token text as JSON: invalid UTF-8 bytes become U+FFFD (a token can end
 * inside a character), and "bytes" keeps the exact bytes, as OpenAI's
 * logprobs do. */
static json_t *token_json(const rf_tokenizer_t *tok, int32_t id, float logprob)
{
    rf_bytes_t piece = {0};
    rf_tokenizer_token_bytes(tok, id, &piece);
    json_t *bytes = json_array();
    for (size_t i = 0; bytes != NULL && i < piece.len; i++)
        json_array_append_new(bytes, json_integer((unsigned char)piece.data[i]));
    json_t *o = json_pack("{s:o, s:I, s:f, s:o}", "token",
                          rf__json_from_bytes(piece.data ? piece.data : "", piece.len), "id",
                          (json_int_t)id, "logprob", (double)logprob, "bytes", bytes);
    rf_bytes_free(&piece);
    return o;
}

/* The sampled tokens' logprobs in OpenAI's chat shape: a list of
 * {token, id, logprob, bytes, top_logprobs: [{token, id, logprob, bytes}]}. */
static json_t *logprobs_json(const rf_tokenizer_t *tok, const rf_sched_output_t *o)
{
    json_t *list = json_array();
    for (uint32_t i = 0; list != NULL && i < o->n_tokens && o->samples != NULL; i++) {
        const rf_sample_t *s = &o->samples[i];
        json_t *top = json_array();
        for (int32_t k = 0; top != NULL && k < s->n_top; k++)
            json_array_append_new(top, token_json(tok, s->top_tokens[k], s->top_logprobs[k]));
        json_t *t = token_json(tok, s->token, s->logprob);
        if (t == NULL || top == NULL || json_object_set_new(t, "top_logprobs", top) < 0 ||
            json_array_append_new(list, t) < 0) {
            json_decref(list);
            return NULL;
        }
    }
    return list;
}

static void compress_work(uv_work_t *req)
{
    job_entry_t *e = req->data;
    worker_t *w = e->w;
    int level = w->o.zstd_level > 0 ? w->o.zstd_level : 3;
    const ZSTD_CDict *cdict = e->dict != NULL ? e->dict->cdict : NULL;
    for (uint32_t i = 0; i < e->n_samples && e->comp_rc == 0; i++) {
        const rf_sched_output_t *o = e->outputs[i];
        char *text = NULL;
        size_t len;
        if (e->is_score) {
            json_t *lps = json_array(), *ids = json_array();
            uint32_t n_context = o->n_prompt - o->n_score;
            for (uint32_t k = 0; k < o->n_score; k++) {
                json_array_append_new(lps, json_real(o->score_logprobs[k]));
                json_array_append_new(ids, json_integer(e->prep.prompt.ids[n_context + k]));
            }
            json_t *j = json_pack("{s:I, s:o, s:o, s:f, s:b}", "context_tokens",
                                  (json_int_t)n_context, "continuation_tokens", ids, "logprobs",
                                  lps, "sum_logprob", o->score_sum, "is_greedy",
                                  o->score_all_greedy);
            text = j ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
            if (text == NULL) {
                e->comp_rc = rf_err_set(&e->comp_err, -ENOMEM, "out of memory");
                break;
            }
            len = strlen(text);
        } else {
            text = o->text;
            len = o->text_len;
        }
        e->text_bytes[i] = len;
        e->comp_rc = rf_compress_frame(cdict, level, text, len, &e->frames[i], &e->comp_err);
        if (e->is_score)
            free(text);
        if (e->comp_rc == 0 && e->logprobs && o->samples != NULL) {
            json_t *lp = logprobs_json(w->pctx.tok, o);
            char *s = lp ? json_dumps(lp, JSON_COMPACT) : NULL;
            json_decref(lp);
            if (s == NULL)
                e->comp_rc = rf_err_set(&e->comp_err, -ENOMEM, "out of memory");
            else
                e->comp_rc = rf_compress_frame(NULL, level, s, strlen(s), &e->lp_frames[i],
                                               &e->comp_err);
            free(s);
        }
    }
}

static void compress_done(uv_work_t *req, int status)
{
    job_entry_t *e = req->data;
    worker_t *w = e->w;
    w->n_work--;
    if (status != 0 || e->comp_rc != 0) {
        entry_fail(w, e, e->comp_rc != 0 ? e->comp_err.msg : "compression was cancelled",
                   false);
    } else {
        e->state = E_READY;
        schedule_flush(w);
    }
    maybe_teardown(w);
}

static void start_compress(worker_t *w, job_entry_t *e)
{
    e->frames = calloc(e->n_samples, sizeof *e->frames);
    e->lp_frames = calloc(e->n_samples, sizeof *e->lp_frames);
    e->text_bytes = calloc(e->n_samples, sizeof *e->text_bytes);
    if (e->frames == NULL || e->lp_frames == NULL || e->text_bytes == NULL) {
        entry_fail(w, e, "out of memory for the results", false);
        return;
    }
    e->dict = dict_for_run(w, e->job.run_id);
    e->state = E_COMPRESSING;
    e->work.data = e;
    if (uv_queue_work(&w->loop, &e->work, compress_work, compress_done) != 0) {
        entry_fail(w, e, "cannot queue the compression", false);
        return;
    }
    w->n_work++;
}

/* ------------------------------------------------------------------ group commit */

static int64_t max_i64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Write one READY entry's completion into the open group. */
static int write_completion(worker_t *w, job_entry_t *e, int64_t now, rf_err_t *err)
{
    rf_jobq_result_t *res = calloc(e->n_samples, sizeof *res);
    if (res == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory");
    int64_t completion = 0;
    double prefill = 0, decode = 0, batch_sum = 0, steps = 0;
    for (uint32_t i = 0; i < e->n_samples; i++) {
        const rf_sched_output_t *o = e->outputs[i];
        res[i] = (rf_jobq_result_t){
            .sample = i, .output = e->frames[i].data, .output_len = e->frames[i].len,
            .dict_id = e->dict != NULL ? e->dict->dict_id : 0,
            .output_bytes = (int64_t)e->text_bytes[i],
            .finish_reason = e->is_score ? "scored" : rf_finish_name(o->finish),
            .prompt_tokens = o->n_prompt, .completion_tokens = e->is_score ? 0 : o->n_tokens,
            .logprobs = e->lp_frames[i].len ? e->lp_frames[i].data : NULL,
            .logprobs_len = e->lp_frames[i].len, .created_ms = now};
        completion += e->is_score ? 0 : o->n_tokens;
        prefill = fmax(prefill, o->prefill_ms);
        decode = fmax(decode, o->decode_ms);
        batch_sum += (double)o->batch_seqs_sum;
        steps += (double)o->steps;
    }
    const rf_sched_output_t *o0 = e->outputs[0];
    rf_jobq_metrics_t m = {
        .model_hash = w->o.model_hash,
        .queue_ms = e->job.claimed_ms - max_i64(e->job.created_ms, e->job.not_before_ms),
        .ttft_ms = e->first_token_wall_ms > 0 ? e->first_token_wall_ms - e->claim_wall_ms : -1,
        .prefill_ms = (int64_t)llround(prefill),
        .decode_ms = e->is_score ? -1 : (int64_t)llround(decode),
        .e2e_ms = now - e->claim_wall_ms,
        .prompt_tokens = o0->n_prompt,
        .completion_tokens = completion,
        .decode_tokens_per_s = !e->is_score && decode > 0 ? (double)completion / (decode / 1e3)
                                                          : -1.0,
        .mean_batch_size = steps > 0 ? batch_sum / steps : -1.0,
        .preemptions = 0,
    };
    for (uint32_t i = 0; i < e->n_samples; i++)
        m.preemptions += e->outputs[i]->preemptions;
    if (m.queue_ms < 0)
        m.queue_ms = 0;
    rf_jobq_completion_t done = {.job_id = e->job.job_id, .attempt = e->job.attempt,
                                 .results = res, .n_results = e->n_samples, .metrics = &m};
    int rc = rf_jobq_complete(w->db, w->worker_id, &done, now, err);
    free(res);
    if (rc == 0) {
        w->tokens_out += completion;
        w->tokens_in += o0->n_prompt;
    }
    return rc;
}

/* The newest tokens of every sample, encoded. */
static int write_checkpoint(worker_t *w, job_entry_t *e, rf_err_t *err)
{
    rf_resume_t *r = calloc(e->n_samples, sizeof *r);
    if (r == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory");
    for (uint32_t i = 0; i < e->n_samples; i++) {
        const rf_sched_output_t *o = e->outputs[i] ? e->outputs[i] : e->ckpts[i];
        if (o != NULL)
            r[i] = (rf_resume_t){.tokens = o->tokens, .samples = o->samples,
                                 .n_tokens = o->n_tokens};
    }
    void *blob = NULL;
    size_t len = 0;
    int rc = rf_checkpoint_encode(w->o.model_hash, r, e->n_samples, &blob, &len);
    free(r);
    if (rc < 0)
        return rf_err_set(err, rc, "out of memory for a checkpoint");
    rc = rf_jobq_checkpoint(w->db, w->worker_id, e->job.job_id, e->job.attempt, blob, len, err);
    free(blob);
    return rc;
}

/* One transaction: every READY completion (up to group_max), every
 * failure, every changed checkpoint. On a database error nothing of the
 * group is stored: the run stops (the jobs stay leased and are reclaimed
 * after their leases expire, or released by the drain). */
static int flush(worker_t *w)
{
    bool any = false;
    for (job_entry_t *e = w->entries; e != NULL && !any; e = e->next)
        any = e->state == E_READY || e->state == E_FAILING || e->ckpt_dirty;
    if (!any)
        return 0;
    rf_err_t err = {0};
    int rc = rf_jobq_begin_group(w->db, &err);
    if (rc < 0)
        goto db_failed;
    int64_t now = wall_ms();
    uint32_t n_written = 0;
    int64_t runs[64];
    int n_runs = 0;
    for (job_entry_t *e = w->entries; e != NULL; e = e->next) {
        rf_err_clear(&err);
        if (e->state == E_READY && n_written < (w->o.group_max ? w->o.group_max : 256)) {
            rc = write_completion(w, e, now, &err);
            n_written++;
            bool seen = false;
            for (int k = 0; k < n_runs; k++)
                seen |= runs[k] == e->job.run_id;
            if (!seen && n_runs < 64)
                runs[n_runs++] = e->job.run_id;
        } else if (e->state == E_FAILING) {
            rc = rf_jobq_fail(w->db, w->worker_id, e->job.job_id, e->job.attempt, e->error,
                              e->fail_flags, now, &err);
        } else if (e->ckpt_dirty && (e->state == E_RUNNING || e->state == E_PREPARING)) {
            rc = write_checkpoint(w, e, &err);
        } else {
            continue;
        }
        if (rc == -ENOSPC || rc == -EIO || rc == RF_EDB || rc == -ENOMEM) {
            rf_jobq_abort_group(w->db);
            goto db_failed;
        }
        if (rc < 0) /* this job only; the group goes on */
            logf_(w, "job %" PRId64 " (%s): %s", e->job.job_id, e->job.custom_id, err.msg);
    }
    rf_err_clear(&err);
    rc = rf_jobq_commit_group(w->db, &err);
    if (rc < 0)
        goto db_failed;
    /* Committed: forget what it wrote. A lost lease (RF_JOBQ_LOST) was
     * written as nothing; the entry is dropped all the same. */
    job_entry_t *next;
    n_written = 0;
    for (job_entry_t *e = w->entries; e != NULL; e = next) {
        next = e->next;
        if (e->state == E_READY && n_written < (w->o.group_max ? w->o.group_max : 256)) {
            n_written++;
            w->jobs_done++;
            w->committed++;
            remove_entry(w, e);
        } else if (e->state == E_FAILING) {
            w->jobs_failed++;
            w->committed++;
            logf_(w, "job %" PRId64 " (%s) failed: %s", e->job.job_id, e->job.custom_id,
                  e->error);
            remove_entry(w, e);
        } else {
            e->ckpt_dirty = false;
        }
    }
    for (int k = 0; k < n_runs; k++)
        maybe_train(w, runs[k]);
    if (w->o.stop_after_jobs > 0 && w->committed >= w->o.stop_after_jobs && !w->draining)
        begin_drain(w);
    return 0;
db_failed:
    db_fatal(w, rc, &err);
    return rc;
}

static void poll_cb(uv_timer_t *t);

static void flush_cb(uv_timer_t *t)
{
    worker_t *w = t->data;
    if (w->exit_code != 0)
        return; /* the database failed: write nothing more */
    flush(w);
    /* Committed jobs made room: claim their successors now, not at the
     * next poll, so the engine's batch stays full. */
    if (!w->draining && w->n_entries < w->o.max_inflight)
        uv_timer_start(&w->poll_timer, poll_cb, 0, (uint64_t)w->o.poll_ms);
    maybe_teardown(w);
}

/* Commit within flush_ms, so that the results finishing meanwhile share
 * one transaction; at once when the group is full, or when no job in
 * flight could join it (the last results of a run would otherwise wait
 * flush_ms for nothing, and the run's end with them). */
static void schedule_flush(worker_t *w)
{
    size_t ready = 0;
    bool more_coming = false;
    for (job_entry_t *e = w->entries; e != NULL; e = e->next) {
        ready += e->state == E_READY;
        more_coming |= e->state == E_PREPARING || e->state == E_RUNNING ||
                       e->state == E_COMPRESSING;
    }
    if (ready >= (w->o.group_max ? w->o.group_max : 256) || !more_coming)
        uv_timer_start(&w->flush_timer, flush_cb, 0, 0);
    else if (!uv_is_active((uv_handle_t *)&w->flush_timer))
        uv_timer_start(&w->flush_timer, flush_cb, (uint64_t)w->o.flush_ms, 0);
}

/* ------------------------------------------------------------------ prepare (pool) */

static void prepare_work(uv_work_t *req)
{
    job_entry_t *e = req->data;
    e->prep_rc = rf_prepare_job(&e->w->pctx, e->job.kind, e->job.input, e->job.params,
                                e->job.checkpoint, e->job.checkpoint_bytes, &e->prep,
                                &e->prep_err);
}

static void prepare_done(uv_work_t *req, int status)
{
    job_entry_t *e = req->data;
    worker_t *w = e->w;
    w->n_work--;
    if (status != 0) {
        /* Cancelled by teardown: the lease is released with the rest. */
        e->state = E_RUNNING;
    } else if (e->prep_rc < 0) {
        entry_fail(w, e, e->prep_err.msg, e->prep_rc != -ENOMEM);
    } else if (w->draining) {
        /* Not submitted; released by the drain with its checkpoint. */
        e->state = E_RUNNING;
    } else {
        e->n_samples = e->prep.n_samples;
        e->is_score = e->prep.is_score;
        e->logprobs = e->prep.request.logprobs;
        e->outputs = calloc(e->n_samples, sizeof *e->outputs);
        e->ckpts = calloc(e->n_samples, sizeof *e->ckpts);
        rf_engine_job_t *job = calloc(1, sizeof *job);
        if (e->outputs == NULL || e->ckpts == NULL || job == NULL) {
            free(job);
            entry_fail(w, e, "out of memory", false);
        } else {
            job->prep = e->prep;  /* moved: the engine owns it now */
            memset(&e->prep, 0, sizeof e->prep);
            /* Keep the prompt ids for score output: copy them back. */
            if (e->is_score) {
                for (size_t i = 0; i < job->prep.prompt.n; i++)
                    rf_tokens_push(&e->prep.prompt, job->prep.prompt.ids[i]);
            }
            e->state = E_RUNNING;
            if (rf_bridge_push_request(&w->bridge, RF_BRIDGE_REQ_SUBMIT, e->job.job_id, job,
                                       rf_engine_job_free) != 0) {
                rf_engine_job_free(job);
                entry_fail(w, e, "the engine thread is gone", false);
            }
        }
    }
    maybe_teardown(w);
}

/* ------------------------------------------------------------------ claims */

/* Claim up to the in-flight limit. Returns the number claimed, or < 0. */
static int claim_jobs(worker_t *w)
{
    if (w->draining)
        return 0;
    uint32_t limit = w->o.max_inflight;
    if (w->n_entries >= limit)
        return 0;
    int want = (int)(limit - w->n_entries);
    rf_jobq_job_t *jobs = calloc((size_t)want, sizeof *jobs);
    if (jobs == NULL)
        return -ENOMEM;
    size_t n = 0;
    rf_err_t err = {0};
    int64_t now = wall_ms();
    int rc = rf_jobq_claim(w->db, w->worker_id, want, w->o.lease_ms, now, jobs, &n, &err);
    if (rc < 0) {
        free(jobs);
        if (rc == -EBUSY)
            logf_(w, "claiming jobs: %s (retrying)", err.msg);
        else
            db_fatal(w, rc, &err);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        job_entry_t *e = calloc(1, sizeof *e);
        if (e == NULL) {
            /* Left leased; the drain releases it. */
            rf_jobq_job_free(&jobs[i]);
            continue;
        }
        e->w = w;
        e->job = jobs[i];
        e->claim_wall_ms = now;
        e->mono_offset_ms = now - rf_sched_now_ms();
        e->state = E_PREPARING;
        e->next = w->entries;
        w->entries = e;
        w->n_entries++;
        e->work.data = e;
        if (uv_queue_work(&w->loop, &e->work, prepare_work, prepare_done) != 0)
            entry_fail(w, e, "cannot queue the tokenization", false);
        else
            w->n_work++;
    }
    free(jobs);
    return (int)n;
}

/* Nothing in flight and nothing to claim: is the queue empty for good?
 * Jobs backing off after a failure (queued, attempts > 0) count as work
 * still to come, and so do jobs other workers hold: a live worker may yet
 * release them, and a dead one's (kill -9) come back when their leases
 * expire, so a run restarted right after a crash waits for them instead of
 * exiting with them undone. Jobs scheduled for later (not_before) do not
 * count, unless --watch. */
static bool queue_exhausted(worker_t *w)
{
    sqlite3_stmt *st = NULL;
    rf_err_t err = {0};
    if (rf_db_prepare(w->db, "SELECT count(*) FROM jobs WHERE (state = 'queued' AND "
                             "(attempts > 0 OR not_before_ms <= ?1)) OR state = 'running'",
                      &st, &err) != 0)
        return false;
    sqlite3_bind_int64(st, 1, wall_ms());
    int64_t n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
    rf_db_done(st);
    return n == 0;
}

static void poll_cb(uv_timer_t *t)
{
    worker_t *w = t->data;
    if (w->draining)
        return;
    int n = claim_jobs(w);
    if (n == 0 && w->n_entries == 0 && !w->o.watch && queue_exhausted(w))
        begin_drain(w);
}

/* ------------------------------------------------------------------ leases */

/* Which of our jobs are no longer ours (cancelled by an operator, or
 * reclaimed after our lease expired): stop computing them. */
static void drop_lost_jobs(worker_t *w)
{
    sqlite3_stmt *st = NULL;
    rf_err_t err = {0};
    if (rf_db_prepare(w->db, "SELECT 1 FROM jobs WHERE job_id = ? AND state = 'running' AND "
                             "lease_owner = ? AND attempts = ?", &st, &err) != 0)
        return;
    job_entry_t *next;
    for (job_entry_t *e = w->entries; e != NULL; e = next) {
        next = e->next;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, e->job.job_id);
        sqlite3_bind_text(st, 2, w->worker_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, e->job.attempt);
        if (sqlite3_step(st) == SQLITE_ROW || e->state == E_PREPARING || e->state == E_COMPRESSING)
            continue; /* still ours, or a pool item holds the entry */
        logf_(w, "job %" PRId64 " (%s) is no longer this worker's (cancelled or reclaimed); "
              "dropping it", e->job.job_id, e->job.custom_id);
        if (e->state == E_RUNNING)
            rf_bridge_push_request(&w->bridge, RF_BRIDGE_REQ_CANCEL, e->job.job_id, NULL, NULL);
        remove_entry(w, e);
    }
    rf_db_done(st);
}

static void heartbeat_cb(uv_timer_t *t)
{
    worker_t *w = t->data;
    if (w->exit_code != 0)
        return;
    rf_err_t err = {0};
    int64_t extended = 0;
    int rc = rf_jobq_heartbeat(w->db, w->worker_id, (int64_t)w->n_entries, w->o.lease_ms,
                               wall_ms(), &extended, &err);
    if (rc == RF_JOBQ_LOST)
        drop_lost_jobs(w);
    else if (rc == -EBUSY)
        logf_(w, "heartbeat: %s (retrying)", err.msg);
    else if (rc < 0)
        db_fatal(w, rc, &err);
}

/* ------------------------------------------------------------------ events */

static void on_events(rf_bridge_t *bridge, rf_bridge_list_t *events, void *ctx)
{
    (void)bridge;
    worker_t *w = ctx;
    rf_bridge_msg_t *m;
    while ((m = rf_bridge_list_pop(events)) != NULL) {
        job_entry_t *e = m->job_id >= 0 ? find_entry(w, m->job_id) : NULL;
        switch (m->kind) {
        case RF_BRIDGE_EV_FIRST_TOKEN:
            if (e != NULL && e->first_token_wall_ms == 0)
                e->first_token_wall_ms = m->value + e->mono_offset_ms;
            break;
        case RF_BRIDGE_EV_CHECKPOINT:
            if (e != NULL && e->state == E_RUNNING && m->value >= 0 &&
                (uint32_t)m->value < e->n_samples) {
                rf_sched_output_free(e->ckpts[m->value]);
                e->ckpts[m->value] = m->payload;
                m->payload = NULL;
                e->ckpt_dirty = true;
                schedule_flush(w);
            }
            break;
        case RF_BRIDGE_EV_FINISHED:
            if (e != NULL && e->state == E_RUNNING && m->value >= 0 &&
                (uint32_t)m->value < e->n_samples && e->outputs[m->value] == NULL) {
                e->outputs[m->value] = m->payload;
                m->payload = NULL;
                if (++e->n_finished == e->n_samples)
                    start_compress(w, e);
                else if (e->n_samples > 1) {
                    e->ckpt_dirty = true; /* keep the finished sample across a restart */
                    schedule_flush(w);
                }
            }
            break;
        case RF_BRIDGE_EV_FAILED:
            if (e != NULL && e->state == E_RUNNING) {
                int code = (int)m->value;
                /* A request the engine refuses (too long for the context, a
                 * bad parameter) fails for good; other errors are retried. */
                entry_fail(w, e, m->payload ? (const char *)m->payload : rf_strerror(code),
                           code == RF_ERANGE);
            }
            break;
        case RF_BRIDGE_EV_DRAINED:
            w->drained = true;
            break;
        default:
            break;
        }
        rf_bridge_msg_free(m);
    }
    /* Room freed: claim more at once rather than at the next poll. */
    if (!w->draining && w->n_entries < w->o.max_inflight / 2 + 1)
        uv_timer_start(&w->poll_timer, poll_cb, 0, (uint64_t)w->o.poll_ms);
    maybe_teardown(w);
}

/* ------------------------------------------------------------------ progress */

static void progress_cb(uv_timer_t *t)
{
    worker_t *w = t->data;
    if (w->progress_mode == 0)
        return;
    rf_jobq_counts_t c = {0};
    rf_err_t err = {0};
    if (rf_jobq_counts(w->db, 0, wall_ms(), &c, &err) != 0)
        return;
    int64_t total = c.queued + c.running + c.done + c.failed + c.cancelled;
    int64_t finished = c.done + c.failed + c.cancelled;
    double secs = (double)(wall_ms() - w->start_ms) / 1e3;
    double jps = secs > 0 ? (double)(w->jobs_done + w->jobs_failed) / secs : 0;
    double tps = secs > 0 ? (double)w->tokens_out / secs : 0;
    char eta[32] = "-";
    if (jps > 0 && c.queued + c.running > 0) {
        double s = (double)(c.queued + c.running) / jps;
        if (s < 120)
            snprintf(eta, sizeof eta, "%.0fs", s);
        else if (s < 7200)
            snprintf(eta, sizeof eta, "%.0fm", s / 60);
        else
            snprintf(eta, sizeof eta, "%.1fh", s / 3600);
    }
    char line[256];
    snprintf(line, sizeof line, "%" PRId64 "/%" PRId64 " jobs finished (%.0f%%), %" PRId64
             " running here, %" PRId64 " failed | %.2f jobs/s, %.1f tok/s | ETA %s",
             finished, total, total > 0 ? 100.0 * (double)finished / (double)total : 100.0,
             (int64_t)w->n_entries, c.failed, jps, tps, eta);
    if (w->progress_mode == 1) {
        int width = 24, fill = total > 0 ? (int)(width * finished / total) : width;
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        fprintf(stderr, "\r\033[K[%s] %s", bar, line);
        w->bar_drawn = true;
    } else {
        fprintf(stderr, "rocmforge run: %s\n", line);
    }
    fflush(stderr);
}

/* ------------------------------------------------------------------ drain, teardown */

static void signal_cb(uv_signal_t *h, int signum)
{
    worker_t *w = h->data;
    if (++w->signals > 1) {
        /* Second signal: leave now. Every commit so far is durable; jobs
         * in flight keep their leases until they expire. */
        fprintf(stderr, "\nrocmforge run: second signal, exiting now (committed results are "
                "kept; jobs in flight are retried after their leases expire)\n");
        _exit(128 + signum);
    }
    logf_(w, "%s: draining (finishing commits, checkpointing running jobs; signal again to "
          "exit at once)", signum == SIGINT ? "SIGINT" : "SIGTERM");
    begin_drain(w);
}

static void begin_drain(worker_t *w)
{
    if (!w->draining) {
        w->draining = true;
        uv_timer_stop(&w->poll_timer);
    }
    if (!w->drain_sent) {
        if (rf_bridge_push_request(&w->bridge, RF_BRIDGE_REQ_DRAIN, -1, NULL, NULL) == 0)
            w->drain_sent = true;
        else
            w->drained = true;
    }
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void maybe_teardown(worker_t *w)
{
    if (!w->draining || !w->drained || w->n_work > 0 || w->torn_down)
        return;
    w->torn_down = true;
    rf_err_t err = {0};
    if (w->exit_code == 0)
        flush(w);
    rf_bridge_push_request(&w->bridge, RF_BRIDGE_REQ_STOP, -1, NULL, NULL);
    rf_engine_thread_join(&w->thread);
    /* Jobs still held (submitted but checkpointed, or never submitted) go
     * back to the queue without counting the attempt. */
    int64_t released = 0;
    if (w->exit_code != 0)
        logf_(w, "leaving the jobs in flight leased; they return to the queue when their "
              "leases expire (%" PRId64 " s)", w->o.lease_ms / 1000);
    else if (rf_jobq_release(w->db, w->worker_id, &released, &err) < 0)
        logf_(w, "releasing leases: %s (they expire in %" PRId64 " s)", err.msg,
              w->o.lease_ms / 1000);
    else if (released > 0)
        logf_(w, "released %" PRId64 " unfinished jobs (with their checkpoints) for the next "
              "run", released);
    rf_err_clear(&err);
    if (w->exit_code == 0)
        rf_jobq_worker_stop(w->db, w->worker_id, wall_ms(), &err);
    while (w->entries != NULL) {
        job_entry_t *e = w->entries;
        w->entries = e->next;
        entry_free(e);
    }
    w->n_entries = 0;
    progress_cb(&w->progress_timer);
    if (w->bar_drawn)
        fputc('\n', stderr);
    w->bar_drawn = false;
    uv_close((uv_handle_t *)&w->poll_timer, close_cb);
    uv_close((uv_handle_t *)&w->heartbeat_timer, close_cb);
    uv_close((uv_handle_t *)&w->flush_timer, close_cb);
    uv_close((uv_handle_t *)&w->progress_timer, close_cb);
    uv_close((uv_handle_t *)&w->sigint, close_cb);
    uv_close((uv_handle_t *)&w->sigterm, close_cb);
    rf_bridge_close(&w->bridge, NULL);
}

/* ------------------------------------------------------------------ run */

static void set_chat(worker_t *w, const rf_engine_t *e)
{
    rf_gguf_str_t s = {0};
    w->pctx.chat_family = RF_CHAT_UNKNOWN;
    if (rf_gguf_get_str(rf_engine_model(e)->gguf, "tokenizer.chat_template", &s) == 0) {
        char *tmpl = strndup(s.data, (size_t)s.len);
        if (tmpl != NULL)
            w->pctx.chat_family = rf_chat_detect(tmpl);
        free(tmpl);
        snprintf(w->chat_error, sizeof w->chat_error, "the model's tokenizer.chat_template is "
                 "not one rocmforge recognises (llama3, llama2, chatml, qwen3, mistral, gemma, "
                 "phi3)");
    } else {
        snprintf(w->chat_error, sizeof w->chat_error, "the model has no chat template "
                 "(tokenizer.chat_template); submit a prompt instead of messages");
    }
    w->pctx.chat_error = w->chat_error;
}

int rf_worker_run(rf_db_t *db, rf_engine_t *e, rf_sched_t *sched,
                  const rf_worker_options_t *opt, rf_err_t *err)
{
    worker_t *w = calloc(1, sizeof *w);
    if (w == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory"), 1;
    w->db = db;
    w->engine = e;
    w->sched = sched;
    w->o = *opt;
    if (w->o.lease_ms <= 0)
        w->o.lease_ms = 60000;
    if (w->o.heartbeat_ms <= 0)
        w->o.heartbeat_ms = w->o.lease_ms / 3;
    if (w->o.poll_ms <= 0)
        w->o.poll_ms = 500;
    if (w->o.flush_ms <= 0)
        w->o.flush_ms = 50;
    if (w->o.max_inflight == 0)
        w->o.max_inflight = 2 * rf_engine_max_seqs(e) + 4;
    w->start_ms = wall_ms();
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    if (opt->worker_id != NULL)
        snprintf(w->worker_id, sizeof w->worker_id, "%s", opt->worker_id);
    else
        snprintf(w->worker_id, sizeof w->worker_id, "%s:%d:%" PRId64, host, (int)getpid(),
                 w->start_ms);
    w->pctx.tok = rf_engine_tokenizer(e);
    w->pctx.n_vocab = rf_engine_hparams(e)->n_vocab;
    w->pctx.model_hash = opt->model_hash;
    set_chat(w, e);
    w->progress_mode = opt->progress == 1 ? 1 : opt->progress == 2 ? 2
                     : opt->progress < 0 ? 0 : isatty(STDERR_FILENO) ? 1 : 2;
    int64_t progress_ms = opt->progress_ms > 0 ? opt->progress_ms
                          : w->progress_mode == 1 ? 500 : 5000;

    int status = 1, rc;
    if (w->pctx.tok == NULL) {
        rf_err_set(err, RF_EUNSUPPORTED, "the model has no tokenizer");
        goto out_free;
    }
    rc = rf_compressor_open(&w->comp, rf_db_handle(db), w->o.zstd_level, err);
    if (rc < 0)
        goto out_free;
    rc = rf_jobq_worker_register(db, w->worker_id, host, getpid(), opt->model_path, opt->device,
                                 wall_ms(), err);
    if (rc < 0)
        goto out_comp;
    if (uv_loop_init(&w->loop) != 0) {
        rf_err_set(err, -ENOMEM, "cannot start the event loop");
        goto out_comp;
    }
    rc = rf_bridge_init(&w->bridge, &w->loop, on_events, w);
    if (rc < 0) {
        rf_err_set(err, rc, "cannot start the engine bridge: %s", uv_strerror(rc));
        goto out_loop;
    }
    rc = rf_engine_thread_start(&w->thread, &w->bridge, sched);
    if (rc < 0) {
        rf_err_set(err, rc, "cannot start the engine thread: %s", strerror(-rc));
        rf_bridge_close(&w->bridge, NULL);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        goto out_loop;
    }
    uv_timer_init(&w->loop, &w->poll_timer);
    uv_timer_init(&w->loop, &w->heartbeat_timer);
    uv_timer_init(&w->loop, &w->flush_timer);
    uv_timer_init(&w->loop, &w->progress_timer);
    uv_signal_init(&w->loop, &w->sigint);
    uv_signal_init(&w->loop, &w->sigterm);
    w->poll_timer.data = w->heartbeat_timer.data = w->flush_timer.data =
        w->progress_timer.data = w;
    w->sigint.data = w->sigterm.data = w;
    uv_timer_start(&w->poll_timer, poll_cb, 0, (uint64_t)w->o.poll_ms);
    uv_timer_start(&w->heartbeat_timer, heartbeat_cb, (uint64_t)w->o.heartbeat_ms,
                   (uint64_t)w->o.heartbeat_ms);
    if (w->progress_mode != 0)
        uv_timer_start(&w->progress_timer, progress_cb, (uint64_t)progress_ms,
                       (uint64_t)progress_ms);
    uv_signal_start(&w->sigint, signal_cb, SIGINT);
    uv_signal_start(&w->sigterm, signal_cb, SIGTERM);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    status = w->exit_code;
    if (status != 0) {
        rf_err_set(err, RF_EDB, "%s", w->err.msg);
    } else {
        double secs = (double)(wall_ms() - w->start_ms) / 1e3;
        /* The engine thread is joined: its totals can be read. Steps and
         * the share of the run spent in them tell a slow engine from an
         * engine kept waiting (compare `rocmforge bench batch`). */
        rf_sched_stats_t st;
        rf_sched_get_stats(w->sched, &st);
        logf_(w, "done: %" PRId64 " jobs completed, %" PRId64 " failed, %" PRId64
              " tokens generated in %.1f s (%.0f tokens/s); engine: %" PRIu64 " steps, "
              "%.1f s in them (%.0f%%)", w->jobs_done, w->jobs_failed, w->tokens_out, secs,
              secs > 0 ? (double)w->tokens_out / secs : 0.0, st.steps, st.busy_ms / 1e3,
              secs > 0 ? st.busy_ms / 10.0 / secs : 0.0);
    }
out_loop:
    uv_loop_close(&w->loop);
out_comp:
    rf_compressor_close(w->comp);
out_free:
    while (w->dicts != NULL) {
        run_dict_t *d = w->dicts;
        w->dicts = d->next;
        ZSTD_freeCDict(d->cdict);
        free(d);
    }
    free(w);
    return status;
}
