/* scheduler.c - continuous batching over the engine's sequences
 *
 * Every step assembles one batch: each running sequence whose known tokens
 * are all computed but one (decoding) contributes that token; then the
 * sequences still in their prompt contribute chunks, oldest admission first,
 * until max_batched_tokens is used up (chunked prefill: a long prompt takes
 * several steps and never stalls the decoders for long). After the forward
 * pass every sequence whose last known token was computed samples its next
 * token.
 *
 * Design notes
 * ------------
 * A request's tokens are tokens[0 .. n_known): the prompt, then what it
 * generated. n_computed of them have their K/V in the sequence's region.
 *
 * Invariants:
 *   1. A running request holds exactly one region (seq id), no two hold the
 *      same one, and the backend's length of that region is n_computed.
 *   2. n_computed < n_known while a request is running: there is always at
 *      least one token to compute, and the logits of tokens[n_known - 1]
 *      produce the next token.
 *   3. Waiting requests hold no region; the waiting list is ordered by
 *      priority (higher first), then by submission (FCFS).
 *   4. Each live request produces exactly one terminal event (FINISHED or
 *      FAILED) unless it is cancelled or checkpointed away, which produce
 *      none or a CHECKPOINT respectively.
 *
 * States and transitions:
 *
 *      rf_sched_submit           admit (step, region free)
 *   ----------------> waiting ---------------------------> running
 *                        |                                   |  |
 *                        +-- rf_sched_cancel / checkpoint_all-+  +-- step: finish
 *                            (forgotten)                        (FINISHED / FAILED)
 */
#include "scheduler.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"
#include "tokenizer.h"

/* ------------------------------------------------------------------ types */

typedef enum req_state { REQ_WAITING, REQ_RUNNING } req_state_t;

typedef struct req {
    struct req *next;            /* waiting list or running list */
    req_state_t state;
    uint64_t id, rng_id, order;  /* order: submission counter (FCFS) */
    int32_t priority;
    int32_t seq;                 /* slot (sequence id of the engine) while running, else -1 */
    rf_kv_seq_t kv;              /* block table; empty while waiting */
    uint32_t preemptions;
    int32_t *tokens;             /* [cap] prompt then generated */
    uint32_t n_prompt, n_known, n_computed, cap;
    uint32_t n_resumed;          /* generated tokens given at submit */
    rf_sampling_params_t sampling;
    rf_logit_bias_t *bias;
    uint32_t max_tokens;
    char **stop_strings;
    size_t n_stop;
    bool ignore_eos, logprobs, plain_greedy;
    uint32_t n_score;
    rf_sample_t *samples;        /* [cap - n_prompt] with logprobs */
    rf_detok_t detok;
    rf_stop_t stop;
    bool stop_hit;
    size_t stop_at;
    double *score_logprobs;
    bool *score_greedy;
    uint32_t n_scored;
    uint32_t since_checkpoint;
    int64_t submitted_ms, admitted_ms, first_token_ms;
    double t_prefill_end;        /* ms, 0 until the prompt is done */
    uint64_t steps, batch_seqs_sum;
} req_t;

typedef struct event_node {
    struct event_node *next;
    rf_sched_event_t ev;
} event_node_t;

struct rf_sched {
    rf_engine_t *engine;
    const rf_tokenizer_t *tok;   /* NULL: no text, no end-of-generation */
    uint32_t n_vocab, n_ctx, max_seqs, max_batched;
    uint32_t checkpoint_tokens;
    req_t *waiting;              /* sorted (invariant 3) */
    req_t *running;              /* admission order */
    bool *seq_used;              /* [max_seqs] */
    rf_kv_pool_t *pool;          /* the KV blocks' books; the engine holds the K/V */
    uint32_t block_size, n_blocks;
    bool check_kv, no_prefix_cache;
    bool device_greedy;          /* the engine picks greedy tokens itself (GPU) */
    uint64_t next_order;
    /* Batch arrays, [max_batched] */
    int32_t *b_tokens, *b_pos, *b_seq;
    int8_t *b_logits;
    req_t **b_req;               /* request of each batch token */
    float *logits;               /* [n_vocab] scratch the sampler modifies */
    int32_t *history;            /* scratch */
    rf_sampler_scratch_t scratch;
    event_node_t *ev_head, *ev_tail;
    rf_sched_stats_t stats;
};

/* ------------------------------------------------------------------ helpers */

int64_t rf_sched_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_ms_f(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *rf_finish_name(rf_finish_t f)
{
    switch (f) {
    case RF_FINISH_STOP: return "stop";
    case RF_FINISH_LENGTH: return "length";
    case RF_FINISH_CONTEXT: return "context";
    case RF_FINISH_SCORED: return "scored";
    case RF_FINISH_NONE: break;
    }
    return "none";
}

static void req_free(req_t *r)
{
    if (r == NULL)
        return;
    free(r->tokens);
    free(r->bias);
    for (size_t i = 0; i < r->n_stop; i++)
        free(r->stop_strings[i]);
    free(r->stop_strings);
    free(r->samples);
    rf_stop_free(&r->stop);
    free(r->score_logprobs);
    free(r->score_greedy);
    free(r);
}

void rf_sched_output_free(rf_sched_output_t *out)
{
    if (out == NULL)
        return;
    free(out->tokens);
    free(out->samples);
    free(out->text);
    free(out->score_logprobs);
    free(out->score_greedy);
    free(out);
}

void rf_sched_event_free(rf_sched_event_t *ev)
{
    if (ev == NULL)
        return;
    rf_sched_output_free(ev->output);
    ev->output = NULL;
}

/* Queue an event; takes ownership of out. On allocation failure the output
 * is dropped and -ENOMEM returned (the caller has nothing else to do). */
static int push_event(rf_sched_t *s, rf_sched_event_kind_t kind, uint64_t id, int64_t value,
                      rf_sched_output_t *out, const char *error)
{
    event_node_t *n = calloc(1, sizeof *n);
    if (n == NULL) {
        rf_sched_output_free(out);
        return -ENOMEM;
    }
    n->ev.kind = kind;
    n->ev.id = id;
    n->ev.value = value;
    n->ev.output = out;
    if (error != NULL)
        snprintf(n->ev.error, sizeof n->ev.error, "%s", error);
    if (s->ev_tail != NULL)
        s->ev_tail->next = n;
    else
        s->ev_head = n;
    s->ev_tail = n;
    return 0;
}

/* A snapshot of r as an output (tokens so far, text so far). */
static rf_sched_output_t *make_output(const req_t *r, rf_finish_t finish)
{
    rf_sched_output_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return NULL;
    uint32_t n_gen = r->n_known - r->n_prompt;
    o->finish = finish;
    o->n_prompt = r->n_prompt;
    o->n_tokens = n_gen;
    o->tokens = malloc(((size_t)n_gen + 1) * sizeof *o->tokens);
    size_t text_len = r->stop_hit ? r->stop_at : r->stop.len;
    o->text = malloc(text_len + 1);
    if (o->tokens == NULL || o->text == NULL)
        goto fail;
    memcpy(o->tokens, r->tokens + r->n_prompt, (size_t)n_gen * sizeof *o->tokens);
    if (text_len > 0)
        memcpy(o->text, r->stop.text, text_len);
    o->text[text_len] = '\0';
    o->text_len = text_len;
    if (r->logprobs && n_gen > 0) {
        o->samples = malloc((size_t)n_gen * sizeof *o->samples);
        if (o->samples == NULL)
            goto fail;
        memcpy(o->samples, r->samples, (size_t)n_gen * sizeof *o->samples);
    }
    if (r->n_score > 0) {
        o->n_score = r->n_score;
        o->score_logprobs = malloc((size_t)r->n_score * sizeof *o->score_logprobs);
        o->score_greedy = malloc((size_t)r->n_score * sizeof *o->score_greedy);
        if (o->score_logprobs == NULL || o->score_greedy == NULL)
            goto fail;
        memcpy(o->score_logprobs, r->score_logprobs, (size_t)r->n_score * sizeof(double));
        memcpy(o->score_greedy, r->score_greedy, (size_t)r->n_score * sizeof(bool));
        o->score_all_greedy = true;
        for (uint32_t i = 0; i < r->n_score; i++) {
            o->score_sum += r->score_logprobs[i];
            o->score_all_greedy &= r->score_greedy[i];
        }
    }
    o->submitted_ms = r->submitted_ms;
    o->admitted_ms = r->admitted_ms;
    o->first_token_ms = r->first_token_ms;
    o->finished_ms = rf_sched_now_ms();
    o->prefill_ms = r->t_prefill_end > 0 ? r->t_prefill_end - (double)r->admitted_ms : 0;
    o->decode_ms = r->first_token_ms > 0 ? (double)(o->finished_ms - r->first_token_ms) : 0;
    o->steps = r->steps;
    o->batch_seqs_sum = r->batch_seqs_sum;
    o->preemptions = r->preemptions;
    return o;
fail:
    rf_sched_output_free(o);
    return NULL;
}

/* Unlink r from list *head; true if it was there. */
static bool list_remove(req_t **head, req_t *r)
{
    for (req_t **p = head; *p != NULL; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            r->next = NULL;
            return true;
        }
    return false;
}

/* Release r's region and free it; r must already be unlinked. */
static void drop(rf_sched_t *s, req_t *r)
{
    rf_kv_seq_free(s->pool, &r->kv);
    if (r->seq >= 0)
        s->seq_used[r->seq] = false;
    req_free(r);
}

static req_t *find(rf_sched_t *s, uint64_t id, req_t ***link)
{
    for (req_t **p = &s->running; *p != NULL; p = &(*p)->next)
        if ((*p)->id == id) {
            *link = p;
            return *p;
        }
    for (req_t **p = &s->waiting; *p != NULL; p = &(*p)->next)
        if ((*p)->id == id) {
            *link = p;
            return *p;
        }
    return NULL;
}

/* Append generated token text to the stop-string state. */
static int feed_text(rf_sched_t *s, req_t *r, int32_t token)
{
    if (s->tok == NULL || r->stop_hit)
        return 0;
    rf_bytes_t piece = {0};
    int rc = rf_detok_push(&r->detok, token, &piece);
    if (rc == 0) {
        rc = rf_stop_feed(&r->stop, piece.data ? piece.data : "", piece.len, &r->stop_at);
        if (rc == 1) {
            r->stop_hit = true;
            rc = 0;
        }
    }
    rf_bytes_free(&piece);
    return rc;
}

/* Greedy with nothing that needs the whole row on the host (penalties,
 * bias, top logprobs): the device may pick the token itself. */
static bool is_plain_greedy(const rf_sampling_params_t *p)
{
    return (p->temperature == 0.0f || p->top_k == 1) && p->repetition_penalty == 1.0f &&
           p->frequency_penalty == 0.0f && p->presence_penalty == 0.0f &&
           p->n_logit_bias == 0 && p->top_logprobs == 0;
}

/* The request ends: emit text held back for an incomplete UTF-8 sequence. */
static void flush_text(rf_sched_t *s, req_t *r)
{
    if (s->tok == NULL || r->stop_hit)
        return;
    rf_bytes_t rest = {0};
    if (rf_detok_flush(&r->detok, &rest) == 0 && rest.len > 0 &&
        rf_stop_feed(&r->stop, rest.data, rest.len, &r->stop_at) == 1)
        r->stop_hit = true;
    rf_bytes_free(&rest);
}

/* ------------------------------------------------------------------ API */

int rf_sched_open(rf_sched_t **out, rf_engine_t *e, const rf_sched_options_t *opt,
                  rf_err_t *err)
{
    *out = NULL;
    rf_sched_options_t o = opt != NULL ? *opt : (rf_sched_options_t){0};
    if (o.max_batched_tokens == 0)
        o.max_batched_tokens = 512;
    uint32_t engine_seqs = rf_engine_max_seqs(e);
    if (o.max_seqs == 0 || o.max_seqs > engine_seqs)
        o.max_seqs = engine_seqs;
    if (o.max_batched_tokens < o.max_seqs)
        return rf_err_set(err, RF_ERANGE,
                          "--max-batched-tokens (%u) must be at least --max-seqs (%u): every "
                          "running sequence decodes one token per step",
                          o.max_batched_tokens, o.max_seqs);
    if (!rf_engine_kv_paged(e))
        return rf_err_set(err, RF_ERANGE, "scheduler: the engine was opened without a paged KV "
                          "pool (set kv_paged in rf_engine_options_t)");
    rf_sched_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return rf_err_set(err, -ENOMEM, "scheduler: out of memory");
    s->engine = e;
    s->block_size = rf_engine_kv_block_size(e);
    s->n_blocks = rf_engine_kv_blocks(e);
    s->check_kv = o.check_kv;
    s->no_prefix_cache = o.no_prefix_cache;
    s->device_greedy = rf_engine_on_gpu(e);
    int prc = rf_kv_open(&s->pool, s->n_blocks, s->block_size, err);
    if (prc < 0) {
        free(s);
        return prc;
    }
    s->tok = rf_engine_tokenizer(e);
    s->n_vocab = rf_engine_hparams(e)->n_vocab;
    s->n_ctx = rf_engine_n_ctx(e);
    s->max_seqs = o.max_seqs;
    s->max_batched = o.max_batched_tokens;
    s->checkpoint_tokens = o.checkpoint_tokens;
    s->seq_used = calloc(engine_seqs, sizeof *s->seq_used);
    s->b_tokens = malloc(s->max_batched * sizeof *s->b_tokens);
    s->b_pos = malloc(s->max_batched * sizeof *s->b_pos);
    s->b_seq = malloc(s->max_batched * sizeof *s->b_seq);
    s->b_logits = malloc(s->max_batched * sizeof *s->b_logits);
    s->b_req = malloc(s->max_batched * sizeof *s->b_req);
    s->logits = malloc((size_t)s->n_vocab * sizeof *s->logits);
    s->history = malloc((size_t)s->n_ctx * sizeof *s->history);
    if (s->seq_used == NULL || s->b_tokens == NULL || s->b_pos == NULL || s->b_seq == NULL ||
        s->b_logits == NULL || s->b_req == NULL || s->logits == NULL || s->history == NULL) {
        rf_sched_close(s);
        return rf_err_set(err, -ENOMEM, "scheduler: out of memory");
    }
    *out = s;
    return 0;
}

void rf_sched_close(rf_sched_t *s)
{
    if (s == NULL)
        return;
    while (s->running != NULL) {
        req_t *r = s->running;
        s->running = r->next;
        drop(s, r);
    }
    while (s->waiting != NULL) {
        req_t *r = s->waiting;
        s->waiting = r->next;
        req_free(r);
    }
    while (s->ev_head != NULL) {
        event_node_t *n = s->ev_head;
        s->ev_head = n->next;
        rf_sched_event_free(&n->ev);
        free(n);
    }
    rf_kv_close(s->pool);
    free(s->seq_used);
    free(s->b_tokens);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_logits);
    free(s->b_req);
    free(s->logits);
    free(s->history);
    rf_sampler_scratch_free(&s->scratch);
    free(s);
}

int rf_sched_submit(rf_sched_t *s, const rf_request_t *in, rf_err_t *err)
{
    req_t **unused;
    if (find(s, in->id, &unused) != NULL)
        return rf_err_set(err, RF_ERANGE, "request %llu is already live",
                          (unsigned long long)in->id);
    if (in->n_prompt == 0)
        return rf_err_set(err, RF_ERANGE, "the prompt is empty (no tokens)");
    uint64_t need = in->n_score > 0 ? in->n_prompt : (uint64_t)in->n_prompt + in->max_tokens;
    if (in->n_score > 0 && in->n_score >= in->n_prompt)
        return rf_err_set(err, RF_ERANGE,
                          "the continuation (%u tokens) needs a context of at least one token "
                          "before it", in->n_score);
    if (in->n_score == 0 && in->max_tokens == 0)
        return rf_err_set(err, RF_ERANGE, "max_tokens must be at least 1");
    if (in->n_generated > in->max_tokens && in->n_score == 0)
        return rf_err_set(err, RF_ERANGE, "the checkpoint holds %u tokens, more than max_tokens %u",
                          in->n_generated, in->max_tokens);
    if (need > s->n_ctx && in->n_score > 0)
        return rf_err_set(err, RF_ERANGE,
                          "context + continuation is %u tokens, more than the context of %u "
                          "positions (raise --ctx, or shorten the input)",
                          in->n_prompt, s->n_ctx);
    if (need > s->n_ctx)
        return rf_err_set(err, RF_ERANGE,
                          "prompt (%u tokens) + max_tokens (%u) is more than the context of %u "
                          "positions (raise --ctx, or lower max_tokens)",
                          in->n_prompt, in->max_tokens, s->n_ctx);
    uint64_t blocks_needed = (need + s->block_size - 1) / s->block_size;
    if (blocks_needed > s->n_blocks - 1)
        return rf_err_set(err, RF_ERANGE,
                          "the request needs %llu KV blocks of %u positions (%llu tokens), the "
                          "whole pool has %u (raise --kv-memory)",
                          (unsigned long long)blocks_needed, s->block_size,
                          (unsigned long long)need, s->n_blocks - 1);
    for (uint32_t i = 0; i < in->n_prompt; i++)
        if (in->prompt[i] < 0 || (uint32_t)in->prompt[i] >= s->n_vocab)
            return rf_err_set(err, RF_ERANGE, "prompt token %u is id %d, outside the vocabulary "
                              "of %u", i, in->prompt[i], s->n_vocab);
    for (uint32_t i = 0; i < in->n_generated; i++)
        if (in->generated[i] < 0 || (uint32_t)in->generated[i] >= s->n_vocab)
            return rf_err_set(err, RF_ERANGE, "checkpoint token %u is id %d, outside the "
                              "vocabulary of %u", i, in->generated[i], s->n_vocab);
    int rc = rf_sampling_params_check(&in->sampling, s->n_vocab, err);
    if (rc < 0)
        return rc;
    if (in->logprobs && in->n_generated > 0 && in->generated_samples == NULL)
        return rf_err_set(err, RF_ERANGE, "resuming with logprobs needs the checkpoint's samples");

    req_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return rf_err_set(err, -ENOMEM, "scheduler: out of memory");
    r->id = in->id;
    r->rng_id = in->rng_id;
    r->priority = in->priority;
    r->order = s->next_order++;
    r->seq = -1;
    r->n_prompt = in->n_prompt;
    r->cap = (uint32_t)(in->n_score > 0 ? in->n_prompt : need);
    r->tokens = malloc((size_t)r->cap * sizeof *r->tokens);
    r->sampling = in->sampling;
    r->max_tokens = in->max_tokens;
    r->ignore_eos = in->ignore_eos;
    r->logprobs = in->logprobs;
    r->plain_greedy = is_plain_greedy(&in->sampling);
    r->n_score = in->n_score;
    r->n_stop = in->n_stop;
    bool ok = r->tokens != NULL;
    if (ok && in->sampling.n_logit_bias > 0) {
        r->bias = malloc(in->sampling.n_logit_bias * sizeof *r->bias);
        ok = r->bias != NULL;
        if (ok)
            memcpy(r->bias, in->sampling.logit_bias, in->sampling.n_logit_bias * sizeof *r->bias);
        r->sampling.logit_bias = r->bias;
    }
    if (ok && in->n_stop > 0) {
        r->stop_strings = calloc(in->n_stop, sizeof *r->stop_strings);
        ok = r->stop_strings != NULL;
        for (size_t i = 0; ok && i < in->n_stop; i++)
            ok = (r->stop_strings[i] = strdup(in->stop[i])) != NULL;
    }
    if (ok && in->logprobs) {
        r->samples = malloc(((size_t)r->cap - r->n_prompt + 1) * sizeof *r->samples);
        ok = r->samples != NULL;
    }
    if (ok && in->n_score > 0) {
        r->score_logprobs = calloc(in->n_score, sizeof *r->score_logprobs);
        r->score_greedy = calloc(in->n_score, sizeof *r->score_greedy);
        ok = r->score_logprobs != NULL && r->score_greedy != NULL;
    }
    if (!ok) {
        req_free(r);
        return rf_err_set(err, -ENOMEM, "scheduler: out of memory");
    }
    rc = rf_stop_init(&r->stop, (const char *const *)r->stop_strings, r->n_stop);
    if (rc < 0) {
        req_free(r);
        return rf_err_set(err, rc, "a stop string is empty");
    }
    rf_detokenize_options_t dopt = {.skip_special = true};
    if (s->tok != NULL)
        rf_detok_init(&r->detok, s->tok, &dopt);
    memcpy(r->tokens, in->prompt, (size_t)in->n_prompt * sizeof *r->tokens);
    r->n_known = in->n_prompt;
    /* Resumed tokens: known, not sampled again, but their text and samples
     * are restored so stop strings and the output continue seamlessly. */
    for (uint32_t i = 0; i < in->n_generated; i++) {
        r->tokens[r->n_known++] = in->generated[i];
        if (r->logprobs)
            r->samples[i] = in->generated_samples[i];
        rc = feed_text(s, r, in->generated[i]);
        if (rc < 0) {
            req_free(r);
            return rf_err_set(err, rc, "scheduler: out of memory");
        }
    }
    r->n_resumed = in->n_generated;
    r->submitted_ms = rf_sched_now_ms();
    /* A sample that had already finished when its job was checkpointed
     * (a stop string in its text, or max_tokens reached) finishes at once
     * with the same output; one that ended with an end-of-generation token
     * (not kept) computes one step and samples it again. */
    if (in->n_score == 0 && in->n_generated > 0 &&
        (r->stop_hit || in->n_generated == in->max_tokens)) {
        flush_text(s, r);
        rf_sched_output_t *o = make_output(r, r->stop_hit ? RF_FINISH_STOP : RF_FINISH_LENGTH);
        req_free(r);
        if (o == NULL || push_event(s, RF_SCHED_EV_FINISHED, in->id, 0, o, NULL) < 0)
            return rf_err_set(err, -ENOMEM, "scheduler: out of memory");
        s->stats.finished++;
        return 0;
    }
    /* Waiting list: by priority, FCFS within (invariant 3). */
    req_t **p = &s->waiting;
    while (*p != NULL && (*p)->priority >= r->priority)
        p = &(*p)->next;
    r->next = *p;
    *p = r;
    r->state = REQ_WAITING;
    s->stats.waiting++;
    return 0;
}

int rf_sched_cancel(rf_sched_t *s, uint64_t id)
{
    req_t **link;
    req_t *r = find(s, id, &link);
    if (r == NULL)
        return RF_ENOTFOUND;
    *link = r->next;
    r->next = NULL;
    if (r->state == REQ_RUNNING)
        s->stats.running--;
    else
        s->stats.waiting--;
    s->stats.cancelled++;
    drop(s, r);
    return 0;
}

size_t rf_sched_checkpoint_all(rf_sched_t *s)
{
    size_t n = 0;
    req_t *lists[2] = {s->running, s->waiting};
    s->running = s->waiting = NULL;
    for (int l = 0; l < 2; l++)
        while (lists[l] != NULL) {
            req_t *r = lists[l];
            lists[l] = r->next;
            r->next = NULL;
            /* A score request has nothing worth keeping: it is recomputed. */
            if (r->n_score == 0)
                push_event(s, RF_SCHED_EV_CHECKPOINT, r->id, 0, make_output(r, RF_FINISH_NONE),
                           NULL);
            drop(s, r);
            n++;
        }
    s->stats.running = s->stats.waiting = 0;
    return n;
}

bool rf_sched_has_work(const rf_sched_t *s)
{
    return s->running != NULL || s->waiting != NULL;
}

bool rf_sched_poll(rf_sched_t *s, rf_sched_event_t *ev)
{
    event_node_t *n = s->ev_head;
    if (n == NULL)
        return false;
    s->ev_head = n->next;
    if (s->ev_head == NULL)
        s->ev_tail = NULL;
    *ev = n->ev;
    free(n);
    return true;
}

void rf_sched_get_stats(const rf_sched_t *s, rf_sched_stats_t *out)
{
    *out = s->stats;
    rf_kv_stats_t kv;
    rf_kv_stats(s->pool, &kv);
    out->kv_blocks = kv.n_blocks;
    out->kv_blocks_free = kv.n_free + kv.n_cached;
    out->prefix_query_tokens = kv.prefix_query_tokens;
    out->prefix_hit_tokens = kv.prefix_hit_tokens;
}

/* ------------------------------------------------------------------ step */

/* Move waiting requests into free regions, in waiting-list order. */
static void admit(rf_sched_t *s)
{
    uint32_t n_running = 0;
    for (req_t *r = s->running; r != NULL; r = r->next)
        n_running++;
    req_t **tail = &s->running;
    while (*tail != NULL)
        tail = &(*tail)->next;
    while (s->waiting != NULL && n_running < s->max_seqs) {
        int32_t seq = -1;
        for (uint32_t i = 0; i < s->max_seqs; i++)
            if (!s->seq_used[i]) {
                seq = (int32_t)i;
                break;
            }
        if (seq < 0)
            break;
        req_t *r = s->waiting;
        s->waiting = r->next;
        r->next = NULL;
        s->seq_used[seq] = true;
        r->seq = seq;
        r->state = REQ_RUNNING;
        r->n_computed = 0; /* the prefix cache is asked when its first chunk is scheduled */
        if (r->admitted_ms == 0)
            r->admitted_ms = rf_sched_now_ms();
        *tail = r;
        tail = &r->next;
        n_running++;
        s->stats.waiting--;
        s->stats.running++;
    }
}

/* Finish r: unlink, emit its event, free it. */
static void finish(rf_sched_t *s, req_t *r, rf_finish_t why)
{
    list_remove(&s->running, r);
    s->stats.running--;
    flush_text(s, r);
    rf_sched_output_t *o = make_output(r, why);
    if (o == NULL) {
        push_event(s, RF_SCHED_EV_FAILED, r->id, -ENOMEM, NULL, "out of memory for the output");
        s->stats.failed++;
    } else {
        push_event(s, RF_SCHED_EV_FINISHED, r->id, 0, o, NULL);
        s->stats.finished++;
    }
    drop(s, r);
}

static void fail(rf_sched_t *s, req_t *r, int code, const char *msg)
{
    list_remove(&s->running, r);
    s->stats.running--;
    s->stats.failed++;
    push_event(s, RF_SCHED_EV_FAILED, r->id, code, NULL, msg);
    drop(s, r);
}

/* Sample the next token of r from logits row lg; emit what follows. */
static void sample_next(rf_sched_t *s, req_t *r, uint32_t row, double t_now)
{
    if (r->t_prefill_end == 0)
        r->t_prefill_end = t_now;
    uint32_t index = r->n_known - r->n_prompt; /* token index of the generator */
    rf_sample_t smp;
    int rc;
    const float *lg = rf_engine_logits(s->engine, row);
    if (lg == NULL) {
        /* Asked as RF_LOGITS_GREEDY: the device chose. */
        memset(&smp, 0, sizeof smp);
        rc = rf_engine_greedy(s->engine, row, &smp.token, &smp.logprob);
    } else {
        memcpy(s->logits, lg, (size_t)s->n_vocab * sizeof *s->logits);
        rc = rf_sampler_sample(&r->sampling, s->logits, s->n_vocab, r->tokens, r->n_known,
                               r->rng_id, index, &s->scratch, &smp);
    }
    if (rc < 0) {
        fail(s, r, rc, rc == -ENOMEM ? "out of memory in the sampler"
                                     : "the logits hold NaN or infinity (numeric failure)");
        return;
    }
    r->tokens[r->n_known++] = smp.token;
    if (r->logprobs)
        r->samples[index] = smp;
    s->stats.generated_tokens++;
    if (r->first_token_ms == 0) {
        r->first_token_ms = rf_sched_now_ms();
        push_event(s, RF_SCHED_EV_FIRST_TOKEN, r->id, r->first_token_ms, NULL, NULL);
    }
    bool eog = s->tok != NULL && !r->ignore_eos && rf_tokenizer_is_eog(s->tok, smp.token);
    if (!eog && feed_text(s, r, smp.token) < 0) {
        fail(s, r, -ENOMEM, "out of memory for the output text");
        return;
    }
    uint32_t n_gen = r->n_known - r->n_prompt;
    if (eog || r->stop_hit) {
        /* The end-of-generation token is not part of the output. */
        if (eog)
            r->n_known--;
        finish(s, r, RF_FINISH_STOP);
    } else if (n_gen >= r->max_tokens) {
        finish(s, r, RF_FINISH_LENGTH);
    } else if (r->n_known >= s->n_ctx) {
        finish(s, r, RF_FINISH_CONTEXT);
    } else if (s->checkpoint_tokens > 0 && ++r->since_checkpoint >= s->checkpoint_tokens) {
        r->since_checkpoint = 0;
        rf_sched_output_t *o = make_output(r, RF_FINISH_NONE);
        if (o != NULL)
            push_event(s, RF_SCHED_EV_CHECKPOINT, r->id, 0, o, NULL);
    }
}

/* Whether the logits of r's token at pos are needed: the last known token
 * of a generating request; each context token before a continuation token
 * of a score request. */
static int8_t wants_logits(const rf_sched_t *s, const req_t *r, uint32_t pos)
{
    if (r->n_score > 0)
        return pos + 1 >= r->n_prompt - r->n_score && pos + 1 < r->n_prompt;
    if (pos + 1 != r->n_known)
        return RF_LOGITS_NONE;
    return s->device_greedy && r->plain_greedy ? RF_LOGITS_GREEDY : RF_LOGITS_FULL;
}


/* Append r's tokens [n_computed, n_computed + take) to the batch. */
static void add_tokens(rf_sched_t *s, req_t *r, uint32_t take, uint32_t *n,
                       uint32_t *n_prompt_tokens)
{
    for (uint32_t i = 0; i < take; i++) {
        uint32_t pos = r->n_computed + i;
        s->b_tokens[*n] = r->tokens[pos];
        s->b_pos[*n] = (int32_t)pos;
        s->b_seq[*n] = r->seq;
        s->b_logits[*n] = wants_logits(s, r, pos);
        s->b_req[*n] = r;
        (*n)++;
        if (pos < r->n_prompt + r->n_resumed)
            (*n_prompt_tokens)++;
    }
}

/* Send running request r back to the head of the queue, its blocks freed
 * (preemption by recompute). Its full blocks stay in the prefix cache
 * until evicted, so readmission usually finds most of them. */
static void preempt(rf_sched_t *s, req_t *r)
{
    list_remove(&s->running, r);
    rf_kv_seq_free(s->pool, &r->kv);
    s->seq_used[r->seq] = false;
    r->seq = -1;
    r->n_computed = 0;
    r->state = REQ_WAITING;
    r->preemptions++;
    r->next = s->waiting;
    s->waiting = r;
    s->stats.running--;
    s->stats.waiting++;
    s->stats.preemptions++;
}

static req_t *newest_running(rf_sched_t *s)
{
    req_t *last = s->running;
    while (last != NULL && last->next != NULL)
        last = last->next;
    return last;
}

/* r has not started and an older running request whose first block holds
 * the same tokens is still computing its prompt (n > 1 samples of one
 * job, a shared few-shot prefix): r waits until those blocks are committed
 * to the prefix cache instead of computing the same K/V a second time. */
static bool shares_prefix_in_flight(const rf_sched_t *s, const req_t *r)
{
    if (s->no_prefix_cache || r->n_computed != 0 || r->kv.n_blocks != 0 ||
        r->n_known <= s->block_size)
        return false;
    for (const req_t *o = s->running; o != NULL && o != r; o = o->next)
        if (o->n_computed < o->n_prompt && o->n_known > s->block_size &&
            memcmp(o->tokens, r->tokens, s->block_size * sizeof *r->tokens) == 0)
            return true;
    return false;
}

/* Before r's first chunk: reuse the cached blocks of the longest cached
 * prefix of its tokens, leaving the first token whose logits are needed to
 * be computed. Asked here rather than at admission, so that requests
 * admitted together find the prefix their predecessors' first chunks
 * committed in earlier steps. */
static void match_prefix(rf_sched_t *s, req_t *r)
{
    if (s->no_prefix_cache || r->n_computed != 0 || r->kv.n_blocks != 0)
        return;
    uint32_t max_match = r->n_score > 0 ? r->n_prompt - r->n_score - 1 : r->n_known - 1;
    int matched = rf_kv_match_prefix(s->pool, &r->kv, r->tokens, r->n_known, max_match);
    if (matched > 0)
        r->n_computed = (uint32_t)matched;
}

/* Blocks for r's slots [n_computed, n_computed + take), private and
 * writable, with any copy-on-write done. Returns 0, RF_KV_NO_SPACE, or a
 * negative error (r cannot ever fit, or the engine refused the copy). */
static int make_room(rf_sched_t *s, req_t *r, uint32_t take)
{
    int rc = rf_kv_reserve(s->pool, &r->kv, r->n_computed + take);
    if (rc != 0)
        return rc;
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 0;
    rc = rf_kv_prepare_write(s->pool, &r->kv, r->n_computed, take, copies, &n_copies);
    for (uint32_t i = 0; rc == 0 && i < n_copies; i++)
        rc = rf_engine_kv_copy(s->engine, copies[i].src_block, copies[i].dst_block);
    return rc;
}

int rf_sched_step(rf_sched_t *s, rf_err_t *err)
{
    admit(s);
    if (s->running == NULL)
        return 1;
    double t0 = now_ms_f();
    uint32_t n = 0, budget = s->max_batched, n_seqs = 0, n_prompt_tokens = 0;
    /* Decoders first, one token each, oldest admission first. When blocks
     * run out, the newest running request is preempted (it may be r
     * itself: everything already in the batch is older than r). */
    for (req_t *r = s->running, *next; r != NULL && budget > 0; r = next) {
        next = r->next;
        if (r->n_known - r->n_computed != 1)
            continue;
        int rc;
        while ((rc = make_room(s, r, 1)) == RF_KV_NO_SPACE) {
            req_t *victim = newest_running(s);
            preempt(s, victim);
            if (victim == r)
                break;
        }
        /* The victims were the newest: r's successors changed. When r went
         * itself it was the newest, so nothing is left to visit. */
        next = r->state == REQ_RUNNING ? r->next : NULL;
        if (r->state != REQ_RUNNING)
            continue;
        if (rc < 0) {
            fail(s, r, rc, "no KV blocks for the request");
            continue;
        }
        add_tokens(s, r, 1, &n, &n_prompt_tokens);
        budget--;
        n_seqs++;
    }
    /* Then prompt chunks in admission order; a chunk that finds no blocks
     * waits for a later step (decoders free blocks as they finish). */
    for (req_t *r = s->running, *next; r != NULL && budget > 0; r = next) {
        next = r->next;
        if (r->n_known - r->n_computed <= 1)
            continue; /* a decoder: the loop above had it */
        if (shares_prefix_in_flight(s, r))
            continue; /* reuse the blocks that request is computing, next steps */
        /* A prefix hit may leave a single token: it runs now like a
         * decoder (skipping it would leave a lone request preempted and
         * readmitted forever). */
        match_prefix(s, r);
        uint32_t left = r->n_known - r->n_computed;
        uint32_t take = left < budget ? left : budget; /* tokens still to compute */
        int rc = make_room(s, r, take);
        if (rc == RF_KV_NO_SPACE)
            continue;
        if (rc < 0) {
            fail(s, r, rc, "no KV blocks for the request");
            continue;
        }
        add_tokens(s, r, take, &n, &n_prompt_tokens);
        budget -= take;
        n_seqs++;
    }
    if (n == 0) {
        /* Every running request is a prompt waiting for blocks that only
         * the others hold: free the newest one's. */
        req_t *victim = newest_running(s);
        if (victim != NULL)
            preempt(s, victim);
        return 0;
    }
    /* The tables as they are now (commit may swap block ids between steps). */
    for (uint32_t i = 0; i < n; i++) {
        req_t *r = s->b_req[i];
        if (i > 0 && s->b_req[i - 1] == r)
            continue;
        int rc = rf_engine_seq_bind(s->engine, r->seq, r->kv.blocks, r->kv.n_blocks,
                                    r->n_computed);
        if (rc < 0)
            return rf_err_set(err, rc, "scheduler: the engine refused the block table of "
                              "request %llu", (unsigned long long)r->id);
    }
    rf_batch_t batch = {.n_tokens = n, .tokens = s->b_tokens, .positions = s->b_pos,
                        .seq_ids = s->b_seq, .logits = s->b_logits};
    int rc = rf_engine_eval(s->engine, &batch, err);
    if (rc < 0) {
        /* Nothing changed in the backend; the batch's requests fail. */
        for (uint32_t i = 0; i < n; i++)
            if (i == 0 || s->b_req[i] != s->b_req[i - 1])
                fail(s, s->b_req[i], rc, err->msg);
        return rc;
    }
    s->stats.steps++;
    s->stats.prompt_tokens += n_prompt_tokens;
    double t_now = now_ms_f();
    /* Each run [i, j) of one request: score or sample. Requests finish and
     * are freed here, so r is read only within its own run. */
    for (uint32_t i = 0; i < n;) {
        req_t *r = s->b_req[i];
        uint32_t j = i + 1;
        while (j < n && s->b_req[j] == r)
            j++;
        r->n_computed += j - i;
        /* Full blocks enter the prefix cache. -EINVAL would mean the books
         * disagree with the tokens: a bug, reported by the debug check. */
        rf_kv_commit(s->pool, &r->kv, r->tokens, r->n_computed);
        r->steps++;
        r->batch_seqs_sum += n_seqs;
        if (r->n_score > 0) {
            for (uint32_t t = i; t < j; t++) {
                if (!s->b_logits[t])
                    continue;
                uint32_t pos = (uint32_t)s->b_pos[t];
                uint32_t k = pos + 1 - (r->n_prompt - r->n_score);
                double lp;
                bool greedy;
                if (rf_sampler_score(rf_engine_logits(s->engine, t), s->n_vocab,
                                     r->tokens[pos + 1], &lp, &greedy) < 0) {
                    lp = -INFINITY;
                    greedy = false;
                }
                r->score_logprobs[k] = lp;
                r->score_greedy[k] = greedy;
            }
            if (r->n_computed == r->n_known) {
                r->t_prefill_end = t_now;
                finish(s, r, RF_FINISH_SCORED);
            }
        } else if (r->n_computed == r->n_known) {
            sample_next(s, r, j - 1, t_now);
        }
        i = j;
    }
    s->stats.busy_ms += now_ms_f() - t0;
    if (s->check_kv) {
        const rf_kv_seq_t *tables[4096];
        size_t n_tables = 0;
        for (req_t *r = s->running; r != NULL && n_tables < 4096; r = r->next)
            tables[n_tables++] = &r->kv;
        int crc = rf_kv_check(s->pool, tables, n_tables, err);
        if (crc < 0)
            return crc;
    }
    return 0;
}
