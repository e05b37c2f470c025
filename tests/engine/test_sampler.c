/* test_sampler.c - sampler: Philox stream, penalties, filters, draws, logprobs, score, stops
 *
 * Filters are checked exactly rather than statistically where possible: the
 * draw rule is public (the first survivor, in ascending id, whose cumulative
 * probability exceeds u), so for each token index the test computes u with
 * rf_rng_uniform and the expected token from a hand-computed distribution.
 * Frequency tests then check that the draws really follow the distribution.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static rf_sampling_params_t params_default(void)
{
    rf_sampling_params_t p;
    rf_sampling_params_default(&p);
    return p;
}

/* Deterministic pseudo-random numbers for test data (xorshift64*). */
static uint64_t test_rng_state = 0x9E3779B97F4A7C15ull;
static double test_rand(void)
{
    test_rng_state ^= test_rng_state >> 12;
    test_rng_state ^= test_rng_state << 25;
    test_rng_state ^= test_rng_state >> 27;
    return (double)((test_rng_state * 2685821657736338717ull) >> 11) * 0x1p-53;
}

static float *random_logits(uint32_t n, double scale)
{
    float *l = malloc(n * sizeof *l);
    cr_assert_not_null(l);
    for (uint32_t i = 0; i < n; i++)
        l[i] = (float)((test_rand() - 0.5) * scale);
    return l;
}

/* Sample from a copy of logits (the sampler adjusts them in place). */
static rf_sample_t sample_copy(const rf_sampling_params_t *p, const float *logits, uint32_t n,
                               const int32_t *history, size_t n_history, uint64_t request_id,
                               uint64_t token_index, rf_sampler_scratch_t *scratch)
{
    float *work = malloc(n * sizeof *work);
    cr_assert_not_null(work);
    memcpy(work, logits, n * sizeof *work);
    rf_sample_t out;
    memset(&out, 0, sizeof out);
    int rc = rf_sampler_sample(p, work, n, history, n_history, request_id, token_index, scratch,
                               &out);
    cr_assert_eq(rc, 0, "rf_sampler_sample: %s", rf_strerror(rc));
    free(work);
    return out;
}

/* The draw rule applied to an explicit distribution: the first token, in
 * ascending id, whose cumulative probability exceeds u. *margin receives the
 * distance from u to the nearest boundary, so callers can skip draws that
 * rounding could move. */
static int32_t expected_draw(const double *prob, uint32_t n, double u, double *margin)
{
    double cum = 0.0;
    int32_t want = -1;
    *margin = 1.0;
    for (uint32_t i = 0; i < n; i++) {
        if (prob[i] <= 0.0)
            continue;
        cum += prob[i];
        if (fabs(u - cum) < *margin)
            *margin = fabs(u - cum);
        if (want < 0 && u < cum)
            want = (int32_t)i;
    }
    return want;
}

/* For 2000 token indices the sampler must pick what the draw rule gives on
 * the hand-computed distribution want[] (0 for filtered tokens). */
static void check_draws(const rf_sampling_params_t *p, const float *logits, uint32_t n,
                        const double *want)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += want[i];
    cr_assert_float_eq(sum, 1.0, 1e-9, "the expected distribution must sum to 1");

    rf_sampler_scratch_t scratch = { 0 };
    unsigned checked = 0;
    for (uint64_t idx = 0; idx < 2000; idx++) {
        double u = rf_rng_uniform(p->seed, 7, idx);
        double margin;
        int32_t expect = expected_draw(want, n, u, &margin);
        rf_sample_t s = sample_copy(p, logits, n, NULL, 0, 7, idx, &scratch);
        cr_assert(s.token >= 0 && (uint32_t)s.token < n);
        cr_assert_gt(want[s.token], 0.0, "index %llu drew token %d, which the filters remove",
                     (unsigned long long)idx, s.token);
        if (margin > 1e-5) {
            cr_assert_eq(s.token, expect, "index %llu (u = %.9f): drew %d, expected %d",
                         (unsigned long long)idx, u, s.token, expect);
            checked++;
        }
    }
    cr_assert_gt(checked, 1900, "too few draws away from a boundary: %u", checked);
    rf_sampler_scratch_free(&scratch);
}

/* Pearson's chi-square statistic of counts against probabilities. */
static double chi_square(const unsigned *counts, const double *prob, uint32_t n, unsigned total)
{
    double chi = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        if (prob[i] <= 0.0) {
            cr_assert_eq(counts[i], 0u, "token %u has probability 0 but was drawn %u times", i,
                         counts[i]);
            continue;
        }
        double e = prob[i] * total;
        chi += (counts[i] - e) * (counts[i] - e) / e;
    }
    return chi;
}

/* logits = ln(0.1), ln(0.2), ln(0.3), ln(0.4): softmax gives those back. */
static void logits_1234(float l[4])
{
    l[0] = logf(0.1f);
    l[1] = logf(0.2f);
    l[2] = logf(0.3f);
    l[3] = logf(0.4f);
}

/* ---- Philox and the generator ---- */

/* Random123's tests/kat_vectors, the three "philox4x32 10" lines: counter[4],
 * key[2], then the expected output[4]. */
Test(sampler, philox_known_answers)
{
    static const uint32_t kat[3][10] = {
        { 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
          0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 },
        { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
          0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd },
        { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
          0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 },
    };
    for (size_t v = 0; v < N_OF(kat); v++) {
        uint32_t out[4];
        rf_philox4x32_10(&kat[v][0], &kat[v][4], out);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(out[j], kat[v][6 + j], "vector %zu word %d: got %08x, want %08x", v, j,
                         out[j], kat[v][6 + j]);
    }
}

/* The documented key/counter layout and float conversion, pinned to the
 * same vectors: a GPU kernel that follows the comment must agree. */
Test(sampler, rng_layout_matches_known_answers)
{
    cr_assert_eq(rf_rng_uniform(0, 0, 0), (float)(0x6627e8d5u >> 8) * 0x1p-24f);
    cr_assert_eq(rf_rng_uniform(UINT64_MAX, UINT64_MAX, UINT64_MAX),
                 (float)(0x408f276du >> 8) * 0x1p-24f);
    /* seed = key[1]:key[0], request = ctr[3]:ctr[2], index = ctr[1]:ctr[0] */
    cr_assert_eq(rf_rng_uniform(0x299f31d0a4093822ull, 0x0370734413198a2eull,
                                0x85a308d3243f6a88ull),
                 (float)(0xd16cfe09u >> 8) * 0x1p-24f);
}

Test(sampler, rng_uniform_range_and_histogram)
{
    enum { BINS = 16, N = 160000 };
    unsigned counts[BINS] = { 0 };
    double prob[BINS];
    for (int b = 0; b < BINS; b++)
        prob[b] = 1.0 / BINS;
    double mean = 0.0;
    for (uint64_t i = 0; i < N; i++) {
        float u = rf_rng_uniform(42, 3, i);
        cr_assert(u >= 0.0f && u < 1.0f, "u = %.9g at index %llu", (double)u,
                  (unsigned long long)i);
        counts[(int)(u * BINS)]++;
        mean += u;
    }
    mean /= N;
    cr_assert_float_eq(mean, 0.5, 0.005);
    /* 15 degrees of freedom: 37.7 is the 0.999 quantile. */
    double chi = chi_square(counts, prob, BINS, N);
    cr_assert_lt(chi, 37.7, "chi-square %.2f over %d bins", chi, BINS);
}

/* Every half of every 64-bit input reaches the output. */
Test(sampler, rng_streams_differ_by_every_input_word)
{
    const uint64_t base[3] = { 1234, 5, 6 };
    const uint64_t delta[6][3] = {
        { 1, 0, 0 }, { 1ull << 32, 0, 0 }, { 0, 1, 0 },
        { 0, 1ull << 32, 0 }, { 0, 0, 1 }, { 0, 0, 1ull << 32 },
    };
    for (size_t d = 0; d < N_OF(delta); d++) {
        unsigned same = 0;
        for (uint64_t k = 0; k < 64; k++) {
            float a = rf_rng_uniform(base[0], base[1], base[2] + 1000 * k);
            float b = rf_rng_uniform(base[0] + delta[d][0], base[1] + delta[d][1],
                                     base[2] + delta[d][2] + 1000 * k);
            same += a == b;
        }
        cr_assert_lt(same, 2u, "change %zu leaves %u of 64 values equal", d, same);
    }
}

Test(sampler, draws_depend_only_on_seed_request_and_index)
{
    float logits[4];
    logits_1234(logits);
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.seed = 99;
    rf_sampler_scratch_t scratch = { 0 };
    int32_t first[64];
    for (uint64_t i = 0; i < 64; i++)
        first[i] = sample_copy(&p, logits, 4, NULL, 0, 11, i, &scratch).token;

    /* Other requests, other vocabularies and other settings in between. */
    rf_sampling_params_t q = params_default();
    q.temperature = 0.7f;
    q.top_k = 50;
    float *big = random_logits(1000, 10.0);
    for (uint64_t i = 0; i < 64; i++) {
        sample_copy(&q, big, 1000, NULL, 0, 12 + i, 3 * i, &scratch);
        int32_t again = sample_copy(&p, logits, 4, NULL, 0, 11, 63 - i, &scratch).token;
        cr_assert_eq(again, first[63 - i], "index %llu changed after other calls",
                     (unsigned long long)(63 - i));
    }
    free(big);

    /* A different request id is a different stream. */
    unsigned same = 0;
    for (uint64_t i = 0; i < 64; i++)
        same += sample_copy(&p, logits, 4, NULL, 0, 12, i, &scratch).token == first[i];
    cr_assert_lt(same, 40u, "request 12 repeats request 11's tokens (%u of 64)", same);
    rf_sampler_scratch_free(&scratch);
}

/* ---- greedy ---- */

Test(sampler, greedy_lowest_id_wins_ties)
{
    const float logits[5] = { 1.0f, 5.0f, 2.0f, 5.0f, 5.0f };
    rf_sampling_params_t p = params_default();
    rf_sampler_scratch_t scratch = { 0 };
    for (uint64_t i = 0; i < 8; i++)
        cr_assert_eq(sample_copy(&p, logits, 5, NULL, 0, i, i, &scratch).token, 1);
    /* top_k 1 is greedy at any temperature. */
    p.temperature = 5.0f;
    p.top_k = 1;
    for (uint64_t i = 0; i < 8; i++)
        cr_assert_eq(sample_copy(&p, logits, 5, NULL, 0, i, i, &scratch).token, 1);
    rf_sampler_scratch_free(&scratch);
}

Test(sampler, greedy_sees_bias_and_penalties)
{
    const float logits[3] = { 3.0f, 2.0f, 1.0f };
    rf_sampling_params_t p = params_default();
    rf_sampler_scratch_t scratch = { 0 };
    const rf_logit_bias_t bias[1] = { { .token = 2, .bias = 2.5f } };
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    cr_assert_eq(sample_copy(&p, logits, 3, NULL, 0, 0, 0, &scratch).token, 2);
    /* 3.5 / 2 = 1.75 for token 2, so token 0 (3) wins again. */
    const int32_t history[1] = { 2 };
    p.repetition_penalty = 2.0f;
    cr_assert_eq(sample_copy(&p, logits, 3, history, 1, 0, 0, &scratch).token, 0);
    rf_sampler_scratch_free(&scratch);
}

/* ---- bias and penalties ---- */

Test(sampler, penalties_arithmetic)
{
    const float logits[5] = { 2.0f, -2.0f, 1.0f, 0.5f, 3.0f };
    const int32_t history[6] = { 0, 1, 1, 4, 4, 4 };
    rf_sampling_params_t p = params_default();
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    rf_sampler_scratch_t scratch = { 0 };
    rf_sample_t out;
    float work[5];

    /* Whole history: each distinct token once, with its count. */
    memcpy(work, logits, sizeof work);
    cr_assert_eq(rf_sampler_sample(&p, work, 5, history, 6, 0, 0, &scratch, &out), 0);
    const float whole[5] = {
        2.0f / 2 - 1 * 0.5f - 0.25f,  /* 0.25 */
        -2.0f * 2 - 2 * 0.5f - 0.25f, /* -5.25: negative logits are multiplied */
        1.0f,
        0.5f,
        3.0f / 2 - 3 * 0.5f - 0.25f, /* -0.25 */
    };
    for (int i = 0; i < 5; i++)
        cr_assert_float_eq(work[i], whole[i], 1e-6, "token %d: %g, want %g", i, (double)work[i],
                           (double)whole[i]);

    /* Last 3 tokens: only token 4 is penalised. */
    p.penalty_last_n = 3;
    memcpy(work, logits, sizeof work);
    cr_assert_eq(rf_sampler_sample(&p, work, 5, history, 6, 0, 0, &scratch, &out), 0);
    const float last3[5] = { 2.0f, -2.0f, 1.0f, 0.5f, -0.25f };
    for (int i = 0; i < 5; i++)
        cr_assert_float_eq(work[i], last3[i], 1e-6, "token %d: %g, want %g", i, (double)work[i],
                           (double)last3[i]);

    /* penalty_last_n 0 looks at nothing. */
    p.penalty_last_n = 0;
    memcpy(work, logits, sizeof work);
    cr_assert_eq(rf_sampler_sample(&p, work, 5, history, 6, 0, 0, &scratch, &out), 0);
    cr_assert_arr_eq(work, logits, sizeof work);
    rf_sampler_scratch_free(&scratch);
}

Test(sampler, repetition_penalty_applies_once_per_distinct_token)
{
    const float logits[2] = { 8.0f, -8.0f };
    const int32_t history[5] = { 0, 0, 0, 1, 1 };
    rf_sampling_params_t p = params_default();
    p.repetition_penalty = 2.0f;
    rf_sampler_scratch_t scratch = { 0 };
    rf_sample_t out;
    float work[2];
    memcpy(work, logits, sizeof work);
    cr_assert_eq(rf_sampler_sample(&p, work, 2, history, 5, 0, 0, &scratch, &out), 0);
    cr_assert_eq(work[0], 4.0f, "3 occurrences must still divide once: %g", (double)work[0]);
    cr_assert_eq(work[1], -16.0f);
    /* The counts scratch must be clean for the next call: same result. */
    memcpy(work, logits, sizeof work);
    cr_assert_eq(rf_sampler_sample(&p, work, 2, history, 5, 0, 0, &scratch, &out), 0);
    cr_assert_eq(work[0], 4.0f);
    cr_assert_eq(work[1], -16.0f);
    rf_sampler_scratch_free(&scratch);
}

Test(sampler, bias_is_added_before_the_repetition_penalty)
{
    /* -1 + 3 = 2, then divided: 1. Penalising first would give -2 + 3 = 1
     * too, so use a bias that separates them: -1 + 5 = 4 -> 2 (vs 3). */
    const float logits[2] = { -1.0f, 0.0f };
    const int32_t history[1] = { 0 };
    const rf_logit_bias_t bias[2] = { { 0, 2.0f }, { 0, 3.0f } }; /* repeated: both add */
    rf_sampling_params_t p = params_default();
    p.repetition_penalty = 2.0f;
    p.logit_bias = bias;
    p.n_logit_bias = 2;
    rf_sampler_scratch_t scratch = { 0 };
    rf_sample_t out;
    float work[2];
    memcpy(work, logits, sizeof work);
    cr_assert_eq(rf_sampler_sample(&p, work, 2, history, 1, 0, 0, &scratch, &out), 0);
    cr_assert_eq(work[0], 2.0f, "got %g", (double)work[0]);
    cr_assert_eq(work[1], 0.0f);
    rf_sampler_scratch_free(&scratch);
}

Test(sampler, minus_infinity_bias_bans_a_token)
{
    float logits[4];
    logits_1234(logits);
    const rf_logit_bias_t bias[1] = { { 3, -INFINITY } };
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    const double want[4] = { 1.0 / 6, 2.0 / 6, 3.0 / 6, 0.0 };
    check_draws(&p, logits, 4, want);
}

/* ---- filters ---- */

Test(sampler, temperature_scales_the_distribution)
{
    const float logits[3] = { 0.0f, logf(2.0f), logf(4.0f) };
    rf_sampling_params_t p = params_default();
    p.seed = 1;
    p.temperature = 1.0f;
    check_draws(&p, logits, 3, (const double[]){ 1.0 / 7, 2.0 / 7, 4.0 / 7 });
    p.temperature = 0.5f; /* probabilities squared */
    check_draws(&p, logits, 3, (const double[]){ 1.0 / 21, 4.0 / 21, 16.0 / 21 });
    p.temperature = 2.0f; /* square roots */
    const double z = 3.0 + sqrt(2.0);
    check_draws(&p, logits, 3, (const double[]){ 1.0 / z, sqrt(2.0) / z, 2.0 / z });
}

Test(sampler, top_k_keeps_the_k_best)
{
    float logits[4];
    logits_1234(logits);
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.seed = 2;
    p.top_k = 2;
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 3.0 / 7, 4.0 / 7 });
    p.top_k = 4; /* = n_vocab: off */
    check_draws(&p, logits, 4, (const double[]){ 0.1, 0.2, 0.3, 0.4 });
    p.top_k = 1000; /* > n_vocab: off */
    check_draws(&p, logits, 4, (const double[]){ 0.1, 0.2, 0.3, 0.4 });
}

Test(sampler, top_k_ties_at_the_cut_keep_lower_ids)
{
    const float logits[5] = { 1.0f, 3.0f, 3.0f, 3.0f, 0.0f };
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.top_k = 2;
    check_draws(&p, logits, 5, (const double[]){ 0, 0.5, 0.5, 0, 0 });
}

Test(sampler, top_p_keeps_the_smallest_prefix_reaching_p)
{
    float logits[4];
    logits_1234(logits);
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.seed = 3;
    p.top_p = 0.5f; /* 0.4 < 0.5 <= 0.4 + 0.3 */
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 3.0 / 7, 4.0 / 7 });
    p.top_p = 0.75f; /* 0.7 < 0.75 <= 0.9 */
    check_draws(&p, logits, 4, (const double[]){ 0, 2.0 / 9, 3.0 / 9, 4.0 / 9 });
    p.top_p = 0.35f; /* the top token alone */
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 0, 1 });
}

Test(sampler, min_p_drops_tokens_below_a_fraction_of_the_top)
{
    float logits[4];
    logits_1234(logits);
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.seed = 4;
    p.min_p = 0.45f; /* ratios to the top: 0.25, 0.5, 0.75, 1 */
    check_draws(&p, logits, 4, (const double[]){ 0, 2.0 / 9, 3.0 / 9, 4.0 / 9 });
    p.min_p = 0.6f;
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 3.0 / 7, 4.0 / 7 });
    /* After top-k the candidates are ranked: min-p cuts that list. */
    p.top_k = 3;
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 3.0 / 7, 4.0 / 7 });
    p.min_p = 0.45f;
    check_draws(&p, logits, 4, (const double[]){ 0, 2.0 / 9, 3.0 / 9, 4.0 / 9 });
}

/* Each pair below gives a different answer if the two steps swap. */
Test(sampler, filters_apply_in_the_documented_order)
{
    float logits[4];
    logits_1234(logits);
    rf_sampling_params_t p = params_default();
    p.seed = 5;

    /* Temperature before top-p: at T 0.5 the probabilities are
     * 1/30, 4/30, 9/30, 16/30 and two tokens reach 0.8; at T 1, three. */
    p.temperature = 0.5f;
    p.top_p = 0.8f;
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 9.0 / 25, 16.0 / 25 });

    /* Temperature before min-p: ratios squared are 1/16, 1/4, 9/16, 1. */
    p.top_p = 1.0f;
    p.min_p = 0.3f;
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 9.0 / 25, 16.0 / 25 });

    /* Top-k before top-p: after top-k 3 the top two hold 7/9 >= 0.75; over
     * all four they hold 0.7 < 0.75. */
    p.temperature = 1.0f;
    p.min_p = 0.0f;
    p.top_k = 3;
    p.top_p = 0.75f;
    check_draws(&p, logits, 4, (const double[]){ 0, 0, 3.0 / 7, 4.0 / 7 });
}

/* Flat logits: top-p must rank far past the first rounds of partial
 * selection, and ties go to the lower ids. */
Test(sampler, top_p_on_a_flat_distribution_keeps_the_lowest_ids)
{
    enum { N = 1000 };
    float *logits = malloc(N * sizeof *logits);
    double *want = malloc(N * sizeof *want);
    cr_assert(logits && want);
    for (int i = 0; i < N; i++) {
        logits[i] = 0.25f;
        want[i] = i < 500 ? 1.0 / 500 : 0.0;
    }
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.top_p = 0.4995f; /* 500 tokens of 1/1000 reach it; 499 do not */
    check_draws(&p, logits, N, want);
    free(logits);
    free(want);
}

/* The reference for the large-vocabulary test: a full sort. */
static const float *cmp_logits;
static int cmp_rank(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (cmp_logits[x] != cmp_logits[y])
        return cmp_logits[x] > cmp_logits[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Top-k/top-p/min-p on a real-sized vocabulary against a full-sort
 * reference that follows the documented rule step by step. */
Test(sampler, large_vocabulary_matches_full_sort_reference, .timeout = 120)
{
    enum { N = 151936 };
    float *logits = random_logits(N, 16.0);
    int32_t *order = malloc(N * sizeof *order);
    double *want = malloc(N * sizeof *want);
    cr_assert(order && want);
    for (int32_t i = 0; i < N; i++)
        order[i] = i;
    cmp_logits = logits;
    qsort(order, N, sizeof *order, cmp_rank);

    const struct {
        float temperature;
        int32_t top_k;
        float top_p, min_p;
    } cases[] = {
        { 1.0f, 40, 1.0f, 0.0f }, { 0.7f, 40, 0.9f, 0.0f }, { 1.0f, 0, 0.9f, 0.0f },
        { 1.3f, 0, 0.95f, 0.05f }, { 0.8f, 0, 1.0f, 0.1f }, { 1.0f, 0, 1.0f, 0.0f },
        { 0.05f, 0, 0.99f, 0.0f }, /* most tokens in top-p's last histogram bin */
        { 1.0f, 5000, 0.5f, 0.0f },
    };
    rf_sampler_scratch_t scratch = { 0 };
    for (size_t c = 0; c < N_OF(cases); c++) {
        rf_sampling_params_t p = params_default();
        p.temperature = cases[c].temperature;
        p.top_k = cases[c].top_k;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.seed = 1000 + c;

        size_t n_keep = p.top_k > 0 ? (size_t)p.top_k : N;
        const float max = logits[order[0]];
        double total = 0.0;
        for (size_t j = 0; j < n_keep; j++)
            total += expf((logits[order[j]] - max) / p.temperature);
        if (p.top_p < 1.0f) {
            double cum = 0.0;
            size_t j = 0;
            while (j < n_keep) {
                cum += expf((logits[order[j]] - max) / p.temperature);
                j++;
                if (cum >= p.top_p * total)
                    break;
            }
            n_keep = j;
        }
        size_t j = 0;
        while (j < n_keep && expf((logits[order[j]] - max) / p.temperature) >= p.min_p)
            j++;
        n_keep = j;
        memset(want, 0, N * sizeof *want);
        double kept = 0.0;
        for (j = 0; j < n_keep; j++)
            kept += want[order[j]] = expf((logits[order[j]] - max) / p.temperature);
        for (j = 0; j < n_keep; j++)
            want[order[j]] /= kept;
        cr_assert_gt(n_keep, 1u, "case %zu keeps one token: not a useful test", c);

        for (uint64_t idx = 0; idx < 20; idx++) {
            double margin;
            int32_t expect = expected_draw(want, N, rf_rng_uniform(p.seed, 1, idx), &margin);
            rf_sample_t s = sample_copy(&p, logits, N, NULL, 0, 1, idx, &scratch);
            cr_assert_gt(want[s.token], 0.0, "case %zu: token %d is filtered out", c, s.token);
            if (margin > 1e-6)
                cr_assert_eq(s.token, expect, "case %zu index %llu: %d, expected %d", c,
                             (unsigned long long)idx, s.token, expect);
        }
    }
    rf_sampler_scratch_free(&scratch);
    free(logits);
    free(order);
    free(want);
}

Test(sampler, frequencies_converge_to_the_distribution)
{
    enum { DRAWS = 20000 };
    float logits[4];
    logits_1234(logits);
    rf_sampler_scratch_t scratch = { 0 };
    const struct {
        int32_t top_k;
        double prob[4];
    } cases[] = {
        { 0, { 0.1, 0.2, 0.3, 0.4 } },
        { 3, { 0, 2.0 / 9, 3.0 / 9, 4.0 / 9 } },
    };
    for (size_t c = 0; c < N_OF(cases); c++) {
        rf_sampling_params_t p = params_default();
        p.temperature = 1.0f;
        p.top_k = cases[c].top_k;
        p.seed = 77;
        unsigned counts[4] = { 0 };
        for (uint64_t i = 0; i < DRAWS; i++)
            counts[sample_copy(&p, logits, 4, NULL, 0, 5, i, &scratch).token]++;
        /* At most 3 degrees of freedom: 16.27 is the 0.999 quantile. */
        double chi = chi_square(counts, cases[c].prob, 4, DRAWS);
        cr_assert_lt(chi, 16.27, "case %zu: chi-square %.2f, counts %u %u %u %u", c, chi,
                     counts[0], counts[1], counts[2], counts[3]);
    }
    rf_sampler_scratch_free(&scratch);
}

Test(sampler, scratch_is_reused_not_reallocated)
{
    float *logits = random_logits(5000, 4.0);
    rf_sampling_params_t p = params_default();
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    rf_sampler_scratch_t scratch = { 0 };
    sample_copy(&p, logits, 5000, NULL, 0, 0, 0, &scratch);
    const float *probs = scratch.probs;
    const int32_t *ids = scratch.ids;
    cr_assert_geq(scratch.cap, 5000u);
    sample_copy(&p, logits, 5000, NULL, 0, 0, 1, &scratch);
    sample_copy(&p, logits, 100, NULL, 0, 0, 2, &scratch);
    cr_assert_eq(scratch.probs, probs);
    cr_assert_eq(scratch.ids, ids);
    rf_sampler_scratch_free(&scratch);
    cr_assert_null(scratch.probs);
    cr_assert_eq(scratch.cap, 0u);
    rf_sampler_scratch_free(&scratch); /* freeing a zeroed scratch is safe */
    free(logits);
}

/* ---- logprobs ---- */

Test(sampler, logprobs_cover_the_adjusted_distribution)
{
    enum { N = 20 };
    float *logits = random_logits(N, 6.0);
    const int32_t history[3] = { 4, 4, 9 };
    const rf_logit_bias_t bias[1] = { { 7, 1.5f } };
    rf_sampling_params_t p = params_default();
    p.temperature = 0.8f;
    p.repetition_penalty = 1.3f;
    p.frequency_penalty = 0.2f;
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    p.top_logprobs = N;
    rf_sampler_scratch_t scratch = { 0 };
    float work[N];
    memcpy(work, logits, sizeof work);
    rf_sample_t out;
    cr_assert_eq(rf_sampler_sample(&p, work, N, history, 3, 1, 2, &scratch, &out), 0);
    cr_assert_eq(out.n_top, N);

    /* Direct computation from the adjusted logits left in work. */
    double m = -INFINITY, z = 0.0, total = 0.0;
    for (int i = 0; i < N; i++)
        m = fmax(m, work[i]);
    for (int i = 0; i < N; i++)
        z += exp(work[i] - m);
    bool seen[N] = { false };
    for (int j = 0; j < N; j++) {
        int32_t t = out.top_tokens[j];
        cr_assert(t >= 0 && t < N && !seen[t], "top token %d repeated or out of range", t);
        seen[t] = true;
        cr_assert_float_eq(out.top_logprobs[j], work[t] - m - log(z), 1e-5);
        if (j > 0)
            cr_assert_geq(out.top_logprobs[j - 1], out.top_logprobs[j], "not descending at %d",
                          j);
        total += exp(out.top_logprobs[j]);
        if (t == out.token)
            cr_assert_eq(out.logprob, out.top_logprobs[j]);
    }
    cr_assert_float_eq(total, 1.0, 1e-5, "exp(logprobs) sum to %.9f", total);
    cr_assert_float_eq(out.logprob, work[out.token] - m - log(z), 1e-5);
    rf_sampler_scratch_free(&scratch);
    free(logits);
}

Test(sampler, top_logprobs_descend_with_lower_ids_first_on_ties)
{
    const float logits[6] = { 1.0f, 3.0f, 2.0f, 3.0f, 3.0f, -1.0f };
    rf_sampling_params_t p = params_default();
    p.top_logprobs = 4;
    rf_sampler_scratch_t scratch = { 0 };
    rf_sample_t s = sample_copy(&p, logits, 6, NULL, 0, 0, 0, &scratch);
    cr_assert_eq(s.n_top, 4);
    const int32_t want[4] = { 1, 3, 4, 2 };
    for (int j = 0; j < 4; j++)
        cr_assert_eq(s.top_tokens[j], want[j], "rank %d: token %d, want %d", j, s.top_tokens[j],
                     want[j]);
    cr_assert_eq(s.top_logprobs[0], s.top_logprobs[2]);
    cr_assert_gt(s.top_logprobs[2], s.top_logprobs[3]);

    /* More alternatives than tokens: every token, once. */
    p.top_logprobs = 10;
    const float three[3] = { 0.0f, 1.0f, 2.0f };
    s = sample_copy(&p, three, 3, NULL, 0, 0, 0, &scratch);
    cr_assert_eq(s.n_top, 3);
    cr_assert_eq(s.top_tokens[0], 2);
    cr_assert_eq(s.top_tokens[2], 0);
    p.top_logprobs = 0;
    s = sample_copy(&p, three, 3, NULL, 0, 0, 0, &scratch);
    cr_assert_eq(s.n_top, 0);
    rf_sampler_scratch_free(&scratch);
}

/* Logprobs are reported at temperature 1 whatever the sampling temperature,
 * and stay finite for large logits (max-subtraction). */
Test(sampler, logprob_ignores_temperature_and_is_stable)
{
    const float logits[3] = { 1000.0f, 999.0f, 998.0f };
    const double lse = 1000.0 + log(1.0 + exp(-1.0) + exp(-2.0));
    rf_sampler_scratch_t scratch = { 0 };
    rf_sampling_params_t p = params_default();
    rf_sample_t g = sample_copy(&p, logits, 3, NULL, 0, 0, 0, &scratch);
    cr_assert_eq(g.token, 0);
    cr_assert_float_eq(g.logprob, 1000.0 - lse, 1e-5);
    p.temperature = 0.1f;
    p.top_logprobs = 3;
    rf_sample_t t = sample_copy(&p, logits, 3, NULL, 0, 0, 0, &scratch);
    for (int j = 0; j < 3; j++)
        cr_assert_float_eq(t.top_logprobs[j], logits[t.top_tokens[j]] - lse, 1e-5);
    rf_sampler_scratch_free(&scratch);
}

/* ---- score mode ---- */

Test(sampler, score_matches_a_direct_double_computation)
{
    enum { N = 3000 }; /* N^2 exps: each score is a full pass */
    float *logits = random_logits(N, 30.0);
    double m = -INFINITY, z = 0.0;
    int32_t argmax = 0;
    for (int i = 0; i < N; i++) {
        if (logits[i] > m) {
            m = logits[i];
            argmax = i;
        }
    }
    for (int i = 0; i < N; i++)
        z += exp((double)logits[i] - m);
    double total = 0.0;
    for (int32_t t = 0; t < N; t++) {
        double lp;
        bool greedy;
        cr_assert_eq(rf_sampler_score(logits, N, t, &lp, &greedy), 0);
        cr_assert_float_eq(lp, logits[t] - m - log(z), 1e-9);
        cr_assert_eq(greedy, t == argmax);
        total += exp(lp);
    }
    cr_assert_float_eq(total, 1.0, 1e-9, "exp(score) over the vocabulary sums to %.12f", total);
    free(logits);
}

Test(sampler, score_greedy_rule_and_errors)
{
    const float logits[4] = { 2.0f, 5.0f, 5.0f, 1.0f };
    double lp;
    bool greedy;
    cr_assert_eq(rf_sampler_score(logits, 4, 1, &lp, &greedy), 0);
    cr_assert(greedy);
    cr_assert_eq(rf_sampler_score(logits, 4, 2, &lp, &greedy), 0);
    cr_assert_not(greedy, "a tie goes to the lower id");
    cr_assert_float_eq(lp, 5.0 - log(exp(2.0) + 2 * exp(5.0) + exp(1.0)), 1e-12);
    cr_assert_eq(rf_sampler_score(logits, 4, 4, &lp, &greedy), RF_ERANGE);
    cr_assert_eq(rf_sampler_score(logits, 4, -1, &lp, &greedy), RF_ERANGE);
    cr_assert_eq(rf_sampler_score(logits, 0, 0, &lp, &greedy), RF_ERANGE);
    const float bad[2] = { NAN, 1.0f };
    cr_assert_eq(rf_sampler_score(bad, 2, 1, &lp, &greedy), RF_ERANGE);
}

/* ---- parameters and bad input ---- */

Test(sampler, defaults_are_greedy_and_valid)
{
    rf_sampling_params_t p = params_default();
    cr_assert_eq(p.temperature, 0.0f);
    cr_assert_eq(p.top_k, 0);
    cr_assert_eq(p.top_p, 1.0f);
    cr_assert_eq(p.min_p, 0.0f);
    cr_assert_eq(p.repetition_penalty, 1.0f);
    cr_assert_eq(p.frequency_penalty, 0.0f);
    cr_assert_eq(p.presence_penalty, 0.0f);
    cr_assert_eq(p.top_logprobs, 0);
    rf_err_t err = { 0 };
    cr_assert_eq(rf_sampling_params_check(&p, 32000, &err), 0, "%s", err.msg);
}

Test(sampler, params_check_names_the_parameter)
{
    static const rf_logit_bias_t bad_token[1] = { { 100, 1.0f } };
    static const rf_logit_bias_t bad_bias[1] = { { 3, NAN } };
    struct bad {
        const char *name;
        rf_sampling_params_t p;
        uint32_t n_vocab;
    } cases[16];
    size_t n = 0;
    for (size_t i = 0; i < N_OF(cases); i++) {
        cases[i].p = params_default();
        cases[i].n_vocab = 100;
    }
#define BAD(label, field, value) \
    (cases[n].name = (label), cases[n].p.field = (value), n++)
    BAD("temperature", temperature, -0.5f);
    BAD("temperature", temperature, NAN);
    BAD("top_k", top_k, -1);
    BAD("top_p", top_p, 0.0f);
    BAD("top_p", top_p, 1.5f);
    BAD("min_p", min_p, 1.0f);
    BAD("min_p", min_p, -0.1f);
    BAD("repetition_penalty", repetition_penalty, 0.0f);
    BAD("frequency_penalty", frequency_penalty, INFINITY);
    BAD("presence_penalty", presence_penalty, NAN);
    BAD("penalty_last_n", penalty_last_n, -2);
    BAD("top_logprobs", top_logprobs, RF_SAMPLER_MAX_TOP_LOGPROBS + 1);
    BAD("logit_bias[0].token", logit_bias, bad_token);
    cases[n - 1].p.n_logit_bias = 1;
    BAD("logit_bias[0].bias", logit_bias, bad_bias);
    cases[n - 1].p.n_logit_bias = 1;
    BAD("logit_bias", n_logit_bias, 2); /* with a NULL array */
    BAD("n_vocab", top_k, 0);
    cases[n - 1].n_vocab = 0;
#undef BAD
    for (size_t i = 0; i < n; i++) {
        rf_err_t err = { 0 };
        int rc = rf_sampling_params_check(&cases[i].p, cases[i].n_vocab, &err);
        cr_assert_eq(rc, RF_ERANGE, "case %zu (%s): rc %d", i, cases[i].name, rc);
        cr_assert_eq(err.code, RF_ERANGE);
        cr_assert(strncmp(err.msg, cases[i].name, strlen(cases[i].name)) == 0,
                  "case %zu: message \"%s\" does not start with %s", i, err.msg, cases[i].name);
        /* The sampler refuses the same parameters. */
        float logits[100] = { 0 };
        rf_sampler_scratch_t scratch = { 0 };
        rf_sample_t out;
        if (cases[i].n_vocab > 0)
            cr_assert_eq(rf_sampler_sample(&cases[i].p, logits, cases[i].n_vocab, NULL, 0, 0, 0,
                                           &scratch, &out),
                         RF_ERANGE, "case %zu", i);
        rf_sampler_scratch_free(&scratch);
    }
    /* The value appears too. */
    rf_sampling_params_t p = params_default();
    p.top_p = 1.5f;
    rf_err_t err = { 0 };
    rf_sampling_params_check(&p, 10, &err);
    cr_assert(strstr(err.msg, "1.5") != NULL, "%s", err.msg);
}

Test(sampler, bad_logits_and_history_are_errors_not_crashes)
{
    rf_sampling_params_t p = params_default();
    rf_sampler_scratch_t scratch = { 0 };
    rf_sample_t out = { .token = -7 };

    float nan_logits[3] = { 0.0f, NAN, 1.0f };
    cr_assert_eq(rf_sampler_sample(&p, nan_logits, 3, NULL, 0, 0, 0, &scratch, &out), RF_ERANGE);
    float inf_logits[3] = { 0.0f, INFINITY, 1.0f };
    cr_assert_eq(rf_sampler_sample(&p, inf_logits, 3, NULL, 0, 0, 0, &scratch, &out), RF_ERANGE);

    /* Every token banned: nothing can be drawn. */
    const rf_logit_bias_t ban[2] = { { 0, -INFINITY }, { 1, -INFINITY } };
    p.logit_bias = ban;
    p.n_logit_bias = 2;
    p.temperature = 1.0f;
    float two[2] = { 1.0f, 2.0f };
    cr_assert_eq(rf_sampler_sample(&p, two, 2, NULL, 0, 0, 0, &scratch, &out), RF_ERANGE);

    /* A history token outside the vocabulary: logits untouched. */
    p = params_default();
    p.repetition_penalty = 2.0f;
    float logits[3] = { 1.0f, 2.0f, 3.0f };
    const int32_t history[2] = { 1, 3 };
    cr_assert_eq(rf_sampler_sample(&p, logits, 3, history, 2, 0, 0, &scratch, &out), RF_ERANGE);
    cr_assert_eq(logits[1], 2.0f);
    const int32_t negative[1] = { -1 };
    cr_assert_eq(rf_sampler_sample(&p, logits, 3, negative, 1, 0, 0, &scratch, &out), RF_ERANGE);
    cr_assert_eq(out.token, -7, "out must be untouched on failure");
    /* Outside the penalty window it is not looked at. */
    p.penalty_last_n = 1;
    const int32_t old_bad[2] = { 3, 2 };
    cr_assert_eq(rf_sampler_sample(&p, logits, 3, old_bad, 2, 0, 0, &scratch, &out), 0);
    rf_sampler_scratch_free(&scratch);
}

/* ---- stop strings ---- */

static int feed(rf_stop_t *s, const char *text, size_t *stop_at)
{
    return rf_stop_feed(s, text, strlen(text), stop_at);
}

Test(sampler, stop_string_split_across_chunks)
{
    const char *const stops[] = { "</s>" };
    rf_stop_t s;
    cr_assert_eq(rf_stop_init(&s, stops, 1), 0);
    size_t at = 12345;
    cr_assert_eq(feed(&s, "Hello <", &at), 0);
    cr_assert_eq(s.emitted, 6u, "'<' may begin </s>: hold it back");
    cr_assert_eq(feed(&s, "/s", &at), 0);
    cr_assert_eq(s.emitted, 6u);
    cr_assert_eq(feed(&s, "> and more", &at), 1);
    cr_assert_eq(at, 6u);
    cr_assert_eq(s.emitted, 6u);
    cr_assert_str_eq(s.text, "Hello </s> and more");
    /* Later feeds report the same stop and append nothing. */
    at = 0;
    cr_assert_eq(feed(&s, "x", &at), 1);
    cr_assert_eq(at, 6u);
    cr_assert_eq(s.len, 19u);
    rf_stop_free(&s);
}

Test(sampler, stop_held_back_prefix_is_released)
{
    const char *const stops[] = { "</s>", "###" };
    rf_stop_t s;
    cr_assert_eq(rf_stop_init(&s, stops, 2), 0);
    size_t at;
    cr_assert_eq(feed(&s, "a</", &at), 0);
    cr_assert_eq(s.emitted, 1u);
    cr_assert_eq(feed(&s, "b", &at), 0);
    cr_assert_eq(s.emitted, 4u, "</b cannot become a stop string");
    cr_assert_eq(feed(&s, "##", &at), 0);
    cr_assert_eq(s.emitted, 4u);
    cr_assert_eq(feed(&s, " ok", &at), 0);
    cr_assert_eq(s.emitted, 9u);
    cr_assert_eq(s.len, 9u);
    rf_stop_free(&s);
}

Test(sampler, stop_string_at_the_very_start)
{
    const char *const stops[] = { "STOP" };
    rf_stop_t s;
    cr_assert_eq(rf_stop_init(&s, stops, 1), 0);
    size_t at = 99;
    cr_assert_eq(feed(&s, "STOP now", &at), 1);
    cr_assert_eq(at, 0u);
    cr_assert_eq(s.emitted, 0u);
    rf_stop_free(&s);
    cr_assert_eq(rf_stop_init(&s, stops, 1), 0);
    cr_assert_eq(feed(&s, "ST", &at), 0);
    cr_assert_eq(s.emitted, 0u);
    cr_assert_eq(feed(&s, "OP", &at), 1);
    cr_assert_eq(at, 0u);
    rf_stop_free(&s);
}

Test(sampler, stop_overlapping_candidates)
{
    /* "abc" begins before "bcd": both complete in "xabcd", earliest wins,
     * whichever order they are listed in. */
    const char *const stops[] = { "bcd", "abc" };
    rf_stop_t s;
    size_t at;
    cr_assert_eq(rf_stop_init(&s, stops, 2), 0);
    cr_assert_eq(feed(&s, "xab", &at), 0);
    cr_assert_eq(s.emitted, 1u);
    cr_assert_eq(feed(&s, "cd", &at), 1);
    cr_assert_eq(at, 1u);
    rf_stop_free(&s);

    /* Self-overlap: "aab" in "aaab" begins at 1, found byte by byte. */
    const char *const aab[] = { "aab" };
    cr_assert_eq(rf_stop_init(&s, aab, 1), 0);
    cr_assert_eq(feed(&s, "a", &at), 0);
    cr_assert_eq(feed(&s, "a", &at), 0);
    cr_assert_eq(feed(&s, "a", &at), 0);
    cr_assert_eq(s.emitted, 1u);
    cr_assert_eq(feed(&s, "b", &at), 1);
    cr_assert_eq(at, 1u);
    rf_stop_free(&s);

    /* A shorter stop string inside a longer candidate that never completes. */
    const char *const nested[] = { "hello world", "lo" };
    cr_assert_eq(rf_stop_init(&s, nested, 2), 0);
    cr_assert_eq(feed(&s, "say hel", &at), 0);
    cr_assert_eq(s.emitted, 4u);
    cr_assert_eq(feed(&s, "lo", &at), 1);
    cr_assert_eq(at, 7u);
    rf_stop_free(&s);
}

Test(sampler, stop_init_rejects_empty_strings_and_allows_none)
{
    const char *const empty[] = { "ok", "" };
    rf_stop_t s;
    cr_assert_eq(rf_stop_init(&s, empty, 2), RF_ERANGE);
    const char *const with_null[] = { "ok", NULL };
    cr_assert_eq(rf_stop_init(&s, with_null, 2), RF_ERANGE);
    cr_assert_eq(rf_stop_init(&s, NULL, 1), RF_ERANGE);
    rf_stop_free(&s);

    cr_assert_eq(rf_stop_init(&s, NULL, 0), 0);
    size_t at;
    cr_assert_eq(feed(&s, "anything </s>", &at), 0);
    cr_assert_eq(s.emitted, s.len);
    rf_stop_free(&s);
}

/* Random texts cut into random chunks: with stop strings of one length the
 * answer cannot depend on the chunking, so it must equal a whole-text
 * search, and emitted must equal the whole-text definition at every step. */
Test(sampler, stop_random_chunkings_agree_with_whole_text)
{
    const char *const stops[] = { "abab", "baab" };
    char full[64];
    for (int trial = 0; trial < 2000; trial++) {
        size_t n = 1 + (size_t)(test_rand() * 40);
        for (size_t i = 0; i < n; i++)
            full[i] = test_rand() < 0.5 ? 'a' : 'b';
        full[n] = '\0';
        size_t want = SIZE_MAX;
        for (size_t k = 0; k < N_OF(stops); k++) {
            const char *hit = strstr(full, stops[k]);
            if (hit != NULL && (size_t)(hit - full) < want)
                want = (size_t)(hit - full);
        }

        rf_stop_t s;
        cr_assert_eq(rf_stop_init(&s, stops, 2), 0);
        size_t pos = 0, at = SIZE_MAX, emitted = 0;
        int rc = 0;
        while (pos < n && rc == 0) {
            size_t chunk = 1 + (size_t)(test_rand() * 5);
            if (chunk > n - pos)
                chunk = n - pos;
            rc = rf_stop_feed(&s, full + pos, chunk, &at);
            pos += chunk;
            cr_assert_geq(s.emitted, emitted, "emitted went back");
            emitted = s.emitted;
            if (rc == 0) {
                /* Whole-text definition: the first position whose suffix
                 * is a proper prefix of a stop string. */
                size_t expect = pos;
                for (size_t q = pos; q-- > 0 && pos - q < 4;) {
                    for (size_t k = 0; k < N_OF(stops); k++)
                        if (strncmp(full + q, stops[k], pos - q) == 0)
                            expect = q;
                }
                cr_assert_eq(s.emitted, expect, "trial %d text %.*s: emitted %zu, want %zu",
                             trial, (int)pos, full, s.emitted, expect);
            }
        }
        if (want == SIZE_MAX) {
            cr_assert_eq(rc, 0, "trial %d: no stop in %s, but stopped at %zu", trial, full, at);
        } else {
            cr_assert_eq(rc, 1, "trial %d: missed the stop in %s", trial, full);
            cr_assert_eq(at, want, "trial %d (%s): stop at %zu, want %zu", trial, full, at, want);
        }
        rf_stop_free(&s);
    }
}
