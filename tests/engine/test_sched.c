/* test_sched.c - the scheduler: continuous batching, determinism, resume,
 * score mode, admission errors
 *
 * The model is the synthetic "tiny" Llama (random weights, synthetic BPE
 * vocabulary). A random model's sampled output is varied, which is what
 * the determinism tests need: any dependence on batch composition would
 * change some token.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "quant.h"
#include "scheduler.h"
#include "synth.h"
#include "testutil.h"

#define N_REQ 24

static const char *model_path(void)
{
    const char *path = rf_test_tmp_path("sched", "tiny.gguf");
    rf_synth_options_t opt = {.shape = "tiny", .type = RF_TYPE_Q8_0, .seed = 5};
    rf_err_t err = {0};
    cr_assert_eq(rf_synth_write(&opt, path, NULL, NULL, &err), 0, "synth: %s", err.msg);
    return path;
}

static rf_engine_t *open_pool(const char *path, uint32_t max_seqs, uint32_t n_ctx,
                             uint32_t kv_blocks, uint32_t block_size)
{
    rf_engine_options_t opt = {.n_threads = 2, .n_ctx = n_ctx, .max_seqs = max_seqs,
                               .kv_paged = true, .kv_blocks = kv_blocks,
                               .kv_block_size = block_size};
    rf_engine_t *e = NULL;
    rf_err_t err = {0};
    int rc = rf_engine_open(&e, path, &opt, &err);
    cr_assert_eq(rc, 0, "open: %s", err.msg);
    return e;
}

static rf_engine_t *open_engine(const char *path, uint32_t max_seqs, uint32_t n_ctx)
{
    rf_engine_options_t opt = {.n_threads = 2, .n_ctx = n_ctx, .max_seqs = max_seqs,
                               .kv_paged = true};
    rf_engine_t *e = NULL;
    rf_err_t err = {0};
    int rc = rf_engine_open(&e, path, &opt, &err);
    cr_assert_eq(rc, 0, "open: %s", err.msg);
    return e;
}

/* Request i of a mixed set: prompt lengths 1..~90, greedy and sampled,
 * penalties, different max_tokens. */
typedef struct req_spec {
    int32_t prompt[128];
    uint32_t n_prompt;
    rf_request_t r;
} req_spec_t;

static void make_spec(req_spec_t *sp, int i)
{
    memset(sp, 0, sizeof *sp);
    sp->n_prompt = 1 + (uint32_t)((i * 37) % 90);
    for (uint32_t k = 0; k < sp->n_prompt; k++)
        sp->prompt[k] = (int32_t)(3 + (i * 131 + k * 17) % 500);
    rf_request_t *r = &sp->r;
    r->id = (uint64_t)i + 100;
    r->rng_id = (uint64_t)i;
    r->prompt = sp->prompt;
    r->n_prompt = sp->n_prompt;
    r->max_tokens = 4 + (uint32_t)(i % 13);
    r->ignore_eos = true;
    rf_sampling_params_default(&r->sampling);
    if (i % 3 != 0) {
        r->sampling.temperature = 0.7f + 0.1f * (float)(i % 4);
        r->sampling.top_k = i % 2 ? 40 : 0;
        r->sampling.top_p = i % 5 ? 0.9f : 1.0f;
        r->sampling.seed = (uint64_t)(i * 7 + 1);
    }
    if (i % 4 == 1)
        r->sampling.repetition_penalty = 1.2f;
    r->logprobs = i % 2 == 0;
}

typedef struct outputs {
    int32_t tokens[N_REQ][64];
    uint32_t n_tokens[N_REQ];
    float logprob0[N_REQ];
    char finish[N_REQ][16];
} outputs_t;

/* Drive s until idle, storing each FINISHED output by request index. */
static void run_all(rf_sched_t *s, outputs_t *o, int *n_checkpoints)
{
    rf_err_t err = {0};
    while (rf_sched_has_work(s)) {
        int rc = rf_sched_step(s, &err);
        cr_assert_geq(rc, 0, "step: %s", err.msg);
        rf_sched_event_t ev;
        while (rf_sched_poll(s, &ev)) {
            cr_assert_neq(ev.kind, RF_SCHED_EV_FAILED, "request %llu failed: %s",
                          (unsigned long long)ev.id, ev.error);
            if (ev.kind == RF_SCHED_EV_CHECKPOINT && n_checkpoints != NULL)
                (*n_checkpoints)++;
            if (ev.kind == RF_SCHED_EV_FINISHED) {
                int i = (int)ev.id - 100;
                cr_assert(i >= 0 && i < N_REQ);
                o->n_tokens[i] = ev.output->n_tokens;
                memcpy(o->tokens[i], ev.output->tokens, ev.output->n_tokens * sizeof(int32_t));
                o->logprob0[i] = ev.output->samples ? ev.output->samples[0].logprob : NAN;
                snprintf(o->finish[i], sizeof o->finish[i], "%s",
                         rf_finish_name(ev.output->finish));
            }
            rf_sched_event_free(&ev);
        }
    }
}

static void expect_same(const outputs_t *a, const outputs_t *b, const char *what)
{
    for (int i = 0; i < N_REQ; i++) {
        cr_assert_eq(a->n_tokens[i], b->n_tokens[i], "%s: request %d: %u vs %u tokens", what, i,
                     a->n_tokens[i], b->n_tokens[i]);
        cr_assert_gt(a->n_tokens[i], 0, "%s: request %d produced nothing", what, i);
        for (uint32_t k = 0; k < a->n_tokens[i]; k++)
            cr_assert_eq(a->tokens[i][k], b->tokens[i][k], "%s: request %d token %u: %d vs %d",
                         what, i, k, a->tokens[i][k], b->tokens[i][k]);
        if (!isnan(a->logprob0[i]))
            cr_assert_eq(a->logprob0[i], b->logprob0[i], "%s: request %d logprob differs", what,
                         i);
        cr_assert_str_eq(a->finish[i], b->finish[i]);
    }
}

/* One request at a time, then all at once with chunked prefill and a full
 * batch, then all at once in reverse order with other priorities: the same
 * tokens and logprobs, bit for bit. */
Test(sched, output_does_not_depend_on_batching, .timeout = 240)
{
    const char *path = model_path();
    static outputs_t alone, together, reversed;
    static req_spec_t specs[N_REQ];
    for (int i = 0; i < N_REQ; i++)
        make_spec(&specs[i], i);
    rf_err_t err = {0};

    rf_engine_t *e = open_engine(path, 8, 256);
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.max_seqs = 1}, &err), 0);
    for (int i = 0; i < N_REQ; i++) {
        cr_assert_eq(rf_sched_submit(s, &specs[i].r, &err), 0, "%s", err.msg);
        run_all(s, &alone, NULL);
    }
    rf_sched_close(s);

    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.max_batched_tokens = 40}, &err), 0);
    for (int i = 0; i < N_REQ; i++)
        cr_assert_eq(rf_sched_submit(s, &specs[i].r, &err), 0, "%s", err.msg);
    run_all(s, &together, NULL);
    rf_sched_stats_t st;
    rf_sched_get_stats(s, &st);
    cr_assert_eq(st.finished, N_REQ);
    /* Batching happened: far fewer steps than tokens. */
    cr_assert_lt(st.steps, st.generated_tokens, "steps %llu, tokens %llu",
                 (unsigned long long)st.steps, (unsigned long long)st.generated_tokens);
    rf_sched_close(s);
    expect_same(&alone, &together, "batched");

    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.max_batched_tokens = 13}, &err), 0);
    for (int i = N_REQ - 1; i >= 0; i--) {
        rf_request_t r = specs[i].r;
        r.priority = i % 3;
        cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
    }
    run_all(s, &reversed, NULL);
    rf_sched_close(s);
    expect_same(&alone, &reversed, "reversed");
    rf_engine_close(e);
}

/* Checkpoint every 3 tokens, drain half-way, resubmit from the
 * checkpoints: the final outputs equal an uninterrupted run's. */
Test(sched, resume_from_checkpoint_gives_the_same_output, .timeout = 240)
{
    const char *path = model_path();
    static outputs_t straight, resumed;
    static req_spec_t specs[N_REQ];
    for (int i = 0; i < N_REQ; i++) {
        make_spec(&specs[i], i);
        specs[i].r.max_tokens += 10;
    }
    rf_err_t err = {0};
    rf_engine_t *e = open_engine(path, 6, 256);
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, NULL, &err), 0);
    for (int i = 0; i < N_REQ; i++)
        cr_assert_eq(rf_sched_submit(s, &specs[i].r, &err), 0, "%s", err.msg);
    run_all(s, &straight, NULL);
    rf_sched_close(s);

    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.checkpoint_tokens = 3}, &err), 0);
    for (int i = 0; i < N_REQ; i++)
        cr_assert_eq(rf_sched_submit(s, &specs[i].r, &err), 0, "%s", err.msg);
    for (int k = 0; k < 6; k++)
        cr_assert_geq(rf_sched_step(s, &err), 0, "%s", err.msg);
    /* Finished ones are kept; the rest drain as checkpoints. */
    static rf_sched_output_t *ckpt[N_REQ];
    size_t n_live = rf_sched_checkpoint_all(s);
    cr_assert_gt(n_live, 0);
    rf_sched_event_t ev;
    int n_partial = 0;
    while (rf_sched_poll(s, &ev)) {
        int i = (int)ev.id - 100;
        if (ev.kind == RF_SCHED_EV_FINISHED) {
            resumed.n_tokens[i] = ev.output->n_tokens;
            memcpy(resumed.tokens[i], ev.output->tokens, ev.output->n_tokens * sizeof(int32_t));
            resumed.logprob0[i] = ev.output->samples ? ev.output->samples[0].logprob : NAN;
            snprintf(resumed.finish[i], 16, "%s", rf_finish_name(ev.output->finish));
        } else if (ev.kind == RF_SCHED_EV_CHECKPOINT) {
            rf_sched_output_free(ckpt[i]);
            ckpt[i] = ev.output;
            ev.output = NULL;
        }
        rf_sched_event_free(&ev);
    }
    cr_assert_eq(rf_sched_has_work(s), false);
    for (int i = 0; i < N_REQ; i++) {
        if (ckpt[i] == NULL || resumed.n_tokens[i] > 0)
            continue;
        rf_request_t r = specs[i].r;
        r.generated = ckpt[i]->tokens;
        r.n_generated = ckpt[i]->n_tokens;
        r.generated_samples = ckpt[i]->samples;
        n_partial += r.n_generated > 0;
        cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
    }
    cr_assert_gt(n_partial, 0, "no request was interrupted mid-generation");
    run_all(s, &resumed, NULL);
    for (int i = 0; i < N_REQ; i++)
        rf_sched_output_free(ckpt[i]);
    rf_sched_close(s);
    rf_engine_close(e);
    expect_same(&straight, &resumed, "resumed");
}

/* Score a continuation the model itself produced greedily: every token is
 * the greedy one and the log-probabilities equal the generator's. */
Test(sched, score_agrees_with_greedy_generation, .timeout = 120)
{
    const char *path = model_path();
    rf_err_t err = {0};
    rf_engine_t *e = open_engine(path, 4, 256);
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.max_batched_tokens = 7}, &err), 0);
    int32_t prompt[20];
    for (int k = 0; k < 20; k++)
        prompt[k] = 5 + k * 23;
    rf_request_t r = {.id = 1, .prompt = prompt, .n_prompt = 20, .max_tokens = 12,
                      .ignore_eos = true, .logprobs = true};
    rf_sampling_params_default(&r.sampling);
    cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
    rf_sched_output_t *gen = NULL;
    while (rf_sched_has_work(s)) {
        cr_assert_geq(rf_sched_step(s, &err), 0);
        rf_sched_event_t ev;
        while (rf_sched_poll(s, &ev)) {
            if (ev.kind == RF_SCHED_EV_FINISHED) {
                gen = ev.output;
                ev.output = NULL;
            }
            rf_sched_event_free(&ev);
        }
    }
    cr_assert_not_null(gen);
    cr_assert_eq(gen->n_tokens, 12);
    int32_t all[32];
    memcpy(all, prompt, sizeof prompt);
    memcpy(all + 20, gen->tokens, 12 * sizeof(int32_t));
    rf_request_t sc = {.id = 2, .prompt = all, .n_prompt = 32, .n_score = 12};
    rf_sampling_params_default(&sc.sampling);
    cr_assert_eq(rf_sched_submit(s, &sc, &err), 0, "%s", err.msg);
    rf_sched_output_t *score = NULL;
    while (rf_sched_has_work(s)) {
        cr_assert_geq(rf_sched_step(s, &err), 0);
        rf_sched_event_t ev;
        while (rf_sched_poll(s, &ev)) {
            if (ev.kind == RF_SCHED_EV_FINISHED) {
                score = ev.output;
                ev.output = NULL;
            }
            rf_sched_event_free(&ev);
        }
    }
    cr_assert_not_null(score);
    cr_assert_eq(score->finish, RF_FINISH_SCORED);
    cr_assert_eq(score->n_score, 12);
    cr_assert(score->score_all_greedy);
    double sum = 0;
    for (int k = 0; k < 12; k++) {
        cr_assert(fabs(score->score_logprobs[k] - gen->samples[k].logprob) < 1e-4,
                  "token %d: score %f, sampler %f", k, score->score_logprobs[k],
                  gen->samples[k].logprob);
        sum += score->score_logprobs[k];
    }
    cr_assert(fabs(sum - score->score_sum) < 1e-9);
    rf_sched_output_free(gen);
    rf_sched_output_free(score);
    rf_sched_close(s);
    rf_engine_close(e);
}

Test(sched, request_that_cannot_fit_is_refused_at_submit, .timeout = 60)
{
    const char *path = model_path();
    rf_err_t err = {0};
    rf_engine_t *e = open_engine(path, 2, 64);
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, NULL, &err), 0);
    int32_t prompt[60] = {0};
    for (int k = 0; k < 60; k++)
        prompt[k] = k + 1;
    rf_request_t r = {.id = 1, .prompt = prompt, .n_prompt = 60, .max_tokens = 5};
    rf_sampling_params_default(&r.sampling);
    cr_assert_eq(rf_sched_submit(s, &r, &err), RF_ERANGE);
    cr_assert(strstr(err.msg, "60 tokens") && strstr(err.msg, "64") && strstr(err.msg, "--ctx"),
              "message: %s", err.msg);
    r.max_tokens = 4;
    cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
    cr_assert_eq(rf_sched_submit(s, &r, &err), RF_ERANGE, "a live id is refused");
    prompt[3] = 999999;
    r.id = 2;
    rf_err_clear(&err);
    cr_assert_eq(rf_sched_submit(s, &r, &err), RF_ERANGE);
    cr_assert(strstr(err.msg, "999999"), "%s", err.msg);
    r.n_prompt = 0;
    cr_assert_eq(rf_sched_submit(s, &r, &err), RF_ERANGE);
    rf_sched_close(s);
    rf_engine_close(e);
}

/* Cancelling a running request frees its region for a waiting one. */
Test(sched, cancel_frees_the_sequence, .timeout = 60)
{
    const char *path = model_path();
    rf_err_t err = {0};
    rf_engine_t *e = open_engine(path, 1, 128);
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, NULL, &err), 0);
    int32_t prompt[4] = {10, 20, 30, 40};
    rf_request_t a = {.id = 1, .prompt = prompt, .n_prompt = 4, .max_tokens = 100,
                      .ignore_eos = true};
    rf_sampling_params_default(&a.sampling);
    rf_request_t b = a;
    b.id = 2;
    b.max_tokens = 3;
    cr_assert_eq(rf_sched_submit(s, &a, &err), 0);
    cr_assert_eq(rf_sched_submit(s, &b, &err), 0);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(rf_sched_step(s, &err), 0);
    rf_sched_stats_t st;
    rf_sched_get_stats(s, &st);
    cr_assert_eq(st.running, 1);
    cr_assert_eq(st.waiting, 1);
    rf_sched_event_t ev;
    while (rf_sched_poll(s, &ev)) /* request 1's first token */
        rf_sched_event_free(&ev);
    cr_assert_eq(rf_sched_cancel(s, 1), 0);
    cr_assert_eq(rf_sched_cancel(s, 1), RF_ENOTFOUND);
    int finished = 0;
    while (rf_sched_has_work(s)) {
        cr_assert_geq(rf_sched_step(s, &err), 0);
        while (rf_sched_poll(s, &ev)) {
            if (ev.kind == RF_SCHED_EV_FINISHED) {
                cr_assert_eq(ev.id, 2);
                cr_assert_eq(ev.output->n_tokens, 3);
                cr_assert_str_eq(rf_finish_name(ev.output->finish), "length");
                finished++;
            }
            cr_assert_neq(ev.id, 1, "no event after cancel");
            rf_sched_event_free(&ev);
        }
    }
    cr_assert_eq(finished, 1);
    rf_sched_close(s);
    rf_engine_close(e);
}

/* ---------------------------------------------------------------- paged KV */

#define N_BIG 200

typedef struct big_outputs {
    int32_t tokens[N_BIG][48];
    uint32_t n_tokens[N_BIG];
} big_outputs_t;

/* Request i of 200: prompts of 1..120 tokens, a quarter of them starting
 * with one of two shared 40-token prefixes (prefix caching), greedy and
 * sampled with penalties, 1..30 new tokens. */
static void make_big(int32_t *prompt, rf_request_t *r, int i)
{
    uint32_t n = 1 + (uint32_t)((i * 53) % 120);
    for (uint32_t k = 0; k < n; k++)
        prompt[k] = (int32_t)(3 + (i * 211 + k * 29) % 500);
    if (i % 4 == 0 && n > 40)
        for (uint32_t k = 0; k < 40; k++)
            prompt[k] = (int32_t)(7 + ((i / 4) % 2) * 100 + k * 3);
    memset(r, 0, sizeof *r);
    r->id = (uint64_t)i;
    r->rng_id = (uint64_t)i * 7;
    r->prompt = prompt;
    r->n_prompt = n;
    r->max_tokens = 1 + (uint32_t)((i * 17) % 30);
    r->ignore_eos = true;
    rf_sampling_params_default(&r->sampling);
    if (i % 2) {
        r->sampling.temperature = 0.8f;
        r->sampling.top_p = 0.95f;
        r->sampling.seed = (uint64_t)i;
    }
    if (i % 5 == 0)
        r->sampling.presence_penalty = 0.5f;
}

static rf_sched_stats_t run_big(rf_engine_t *e, const rf_sched_options_t *so, bool one_at_a_time,
                                big_outputs_t *out)
{
    static int32_t prompts[N_BIG][128];
    rf_err_t err = {0};
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, so, &err), 0, "%s", err.msg);
    for (int i = 0; i < N_BIG; i++) {
        rf_request_t r;
        make_big(prompts[i], &r, i);
        cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "request %d: %s", i, err.msg);
        if (!one_at_a_time && i != N_BIG - 1)
            continue;
        while (rf_sched_has_work(s)) {
            rf_err_clear(&err);
            cr_assert_geq(rf_sched_step(s, &err), 0, "step: %s", err.msg);
            rf_sched_event_t ev;
            while (rf_sched_poll(s, &ev)) {
                cr_assert_neq(ev.kind, RF_SCHED_EV_FAILED, "request %llu: %s",
                              (unsigned long long)ev.id, ev.error);
                if (ev.kind == RF_SCHED_EV_FINISHED) {
                    out->n_tokens[ev.id] = ev.output->n_tokens;
                    memcpy(out->tokens[ev.id], ev.output->tokens,
                           ev.output->n_tokens * sizeof(int32_t));
                }
                rf_sched_event_free(&ev);
            }
        }
    }
    rf_sched_stats_t st;
    rf_sched_get_stats(s, &st);
    cr_assert_eq(st.finished, N_BIG);
    cr_assert_eq(st.kv_blocks_free, st.kv_blocks - 1, "every block back in the pool");
    rf_sched_close(s);
    return st;
}

static void expect_big_same(const big_outputs_t *a, const big_outputs_t *b, const char *what)
{
    for (int i = 0; i < N_BIG; i++) {
        cr_assert_eq(a->n_tokens[i], b->n_tokens[i], "%s: request %d length", what, i);
        cr_assert_eq(memcmp(a->tokens[i], b->tokens[i], a->n_tokens[i] * sizeof(int32_t)), 0,
                     "%s: request %d tokens differ", what, i);
    }
}

/* The paged cache's determinism: 200 requests (a) one at a time, (b) all
 * at once with a large pool, (c) all at once with a pool so small that
 * preemption happens often - identical tokens in all three, and the KV
 * books verified after every step. */
Test(sched, paged_output_survives_batching_and_preemption, .timeout = 600)
{
    const char *path = model_path();
    static big_outputs_t a, b, c;
    rf_engine_t *big = open_pool(path, 16, 256, 1 + 16 * 16, 16);
    rf_sched_options_t so = {.max_seqs = 1, .check_kv = true};
    rf_sched_stats_t sa = run_big(big, &so, true, &a);
    so = (rf_sched_options_t){.max_seqs = 16, .max_batched_tokens = 64, .check_kv = true};
    rf_sched_stats_t sb = run_big(big, &so, false, &b);
    rf_engine_close(big);
    expect_big_same(&a, &b, "large pool");
    cr_assert_eq(sb.preemptions, 0);
    cr_assert_lt(sb.steps, sa.steps / 2, "batching: %llu steps vs %llu",
                 (unsigned long long)sb.steps, (unsigned long long)sa.steps);
    cr_assert_gt(sb.prefix_hit_tokens, 0, "the shared prefixes were reused");
    /* Prefix caching changes nothing in the outputs. */
    static big_outputs_t nocache;
    so = (rf_sched_options_t){.max_seqs = 16, .max_batched_tokens = 64, .check_kv = true,
                              .no_prefix_cache = true};
    rf_engine_t *fresh = open_pool(path, 16, 256, 1 + 16 * 16, 16);
    rf_sched_stats_t sn = run_big(fresh, &so, false, &nocache);
    rf_engine_close(fresh);
    cr_assert_eq(sn.prefix_hit_tokens, 0);
    expect_big_same(&a, &nocache, "without the prefix cache");

    /* 24 blocks of 8 positions: room for one or two long requests at a
     * time while 16 try to run. */
    rf_engine_t *small = open_pool(path, 16, 256, 25, 8);
    so = (rf_sched_options_t){.max_seqs = 16, .max_batched_tokens = 48, .check_kv = true};
    rf_sched_stats_t sc = run_big(small, &so, false, &c);
    rf_engine_close(small);
    expect_big_same(&a, &c, "small pool");
    cr_assert_gt(sc.preemptions, 10, "only %llu preemptions", (unsigned long long)sc.preemptions);
}

/* A request that can never fit in the pool is refused at submit. */
Test(sched, request_larger_than_the_pool_is_refused, .timeout = 60)
{
    const char *path = model_path();
    rf_engine_t *e = open_pool(path, 4, 256, 5, 16); /* 4 usable blocks: 64 positions */
    rf_err_t err = {0};
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, NULL, &err), 0, "%s", err.msg);
    int32_t prompt[60];
    for (int k = 0; k < 60; k++)
        prompt[k] = k + 3;
    rf_request_t r = {.id = 1, .prompt = prompt, .n_prompt = 60, .max_tokens = 10};
    rf_sampling_params_default(&r.sampling);
    cr_assert_eq(rf_sched_submit(s, &r, &err), RF_ERANGE);
    cr_assert(strstr(err.msg, "--kv-memory") && strstr(err.msg, "5 KV blocks"), "%s", err.msg);
    r.max_tokens = 4;
    rf_err_clear(&err);
    cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
    rf_sched_close(s);
    rf_engine_close(e);
}

/* No leak: after finishing, cancelling (waiting and running requests) and
 * preempting in one run, every block is back in the pool. */
Test(sched, every_block_returns_after_cancel_and_preemption, .timeout = 120)
{
    const char *path = model_path();
    rf_engine_t *e = open_pool(path, 8, 256, 13, 8);
    rf_err_t err = {0};
    rf_sched_t *s;
    rf_sched_options_t so = {.max_seqs = 8, .max_batched_tokens = 32, .check_kv = true};
    cr_assert_eq(rf_sched_open(&s, e, &so, &err), 0, "%s", err.msg);
    static int32_t prompts[40][128];
    for (int i = 0; i < 40; i++) {
        rf_request_t r;
        make_big(prompts[i], &r, i);
        r.max_tokens = r.max_tokens > 20 ? 20 : r.max_tokens;
        if (r.n_prompt > 60)
            r.n_prompt = 60;
        cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%d: %s", i, err.msg);
    }
    int steps = 0;
    while (rf_sched_has_work(s)) {
        rf_err_clear(&err);
        cr_assert_geq(rf_sched_step(s, &err), 0, "%s", err.msg);
        if (++steps % 5 == 0)
            for (int i = steps % 40; i < 40; i += 7)
                rf_sched_cancel(s, (uint64_t)i);
        rf_sched_event_t ev;
        while (rf_sched_poll(s, &ev))
            rf_sched_event_free(&ev);
        if (steps == 60)
            rf_sched_checkpoint_all(s);
    }
    rf_sched_stats_t st;
    rf_sched_get_stats(s, &st);
    cr_assert_gt(st.preemptions, 0, "the pool was large enough to avoid preemption");
    cr_assert_gt(st.cancelled, 0);
    cr_assert_eq(st.kv_blocks_free, st.kv_blocks - 1, "%u of %u blocks free", st.kv_blocks_free,
                 st.kv_blocks - 1);
    rf_sched_close(s);
    rf_engine_close(e);
}

/* A request whose whole prompt but its last token is cached runs alone to
 * the end (it once was preempted and readmitted forever: the prefix hit
 * left a single token, which neither the decode nor the prefill pass took). */
Test(sched, lone_request_with_its_prefix_cached_finishes, .timeout = 60)
{
    const char *path = model_path();
    rf_engine_t *e = open_pool(path, 4, 256, 20, 8);
    rf_err_t err = {0};
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.check_kv = true}, &err), 0);
    int32_t prompt[17];
    for (int k = 0; k < 17; k++)
        prompt[k] = 40 + k;
    for (int round = 0; round < 2; round++) {
        rf_request_t r = {.id = (uint64_t)round, .prompt = prompt, .n_prompt = round ? 17 : 16,
                          .max_tokens = 3, .ignore_eos = true};
        rf_sampling_params_default(&r.sampling);
        cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
        int steps = 0;
        while (rf_sched_has_work(s)) {
            cr_assert_lt(++steps, 100, "round %d: no progress after 100 steps", round);
            rf_err_clear(&err);
            cr_assert_geq(rf_sched_step(s, &err), 0, "%s", err.msg);
            rf_sched_event_t ev;
            while (rf_sched_poll(s, &ev))
                rf_sched_event_free(&ev);
        }
    }
    rf_sched_stats_t st;
    rf_sched_get_stats(s, &st);
    cr_assert_eq(st.finished, 2);
    cr_assert_geq(st.prefix_hit_tokens, 16, "the second request reused the first's blocks");
    rf_sched_close(s);
    rf_engine_close(e);
}

/* n > 1 samples of one prompt (submitted together) share its blocks: the
 * later samples wait for the first one's prompt and reuse its full blocks. */
Test(sched, samples_of_one_prompt_share_its_blocks, .timeout = 60)
{
    const char *path = model_path();
    rf_engine_t *e = open_pool(path, 4, 256, 60, 8);
    rf_err_t err = {0};
    rf_sched_t *s;
    cr_assert_eq(rf_sched_open(&s, e, &(rf_sched_options_t){.check_kv = true}, &err), 0);
    int32_t prompt[70];
    for (int k = 0; k < 70; k++)
        prompt[k] = 11 + k * 3;
    for (int i = 0; i < 4; i++) {
        rf_request_t r = {.id = (uint64_t)i, .rng_id = (uint64_t)i, .prompt = prompt,
                          .n_prompt = 70, .max_tokens = 4, .ignore_eos = true};
        rf_sampling_params_default(&r.sampling);
        r.sampling.temperature = 1.0f;
        cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
    }
    while (rf_sched_has_work(s)) {
        rf_err_clear(&err);
        cr_assert_geq(rf_sched_step(s, &err), 0, "%s", err.msg);
        rf_sched_event_t ev;
        while (rf_sched_poll(s, &ev)) {
            cr_assert_neq(ev.kind, RF_SCHED_EV_FAILED, "%s", ev.error);
            rf_sched_event_free(&ev);
        }
    }
    rf_sched_stats_t st;
    rf_sched_get_stats(s, &st);
    /* 8 full blocks of the 70-token prompt (64 tokens) reused by 3 samples. */
    cr_assert_eq(st.prefix_hit_tokens, 3 * 64, "hit %llu tokens",
                 (unsigned long long)st.prefix_hit_tokens);
    cr_assert_eq(st.prompt_tokens, 70 + 3 * 6, "computed %llu prompt tokens",
                 (unsigned long long)st.prompt_tokens);
    rf_sched_close(s);
    rf_engine_close(e);
}
