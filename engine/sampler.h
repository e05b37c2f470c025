/* sampler.h - turn logits into tokens: penalties, filters, seeded sampling
 *
 * The sampler works on one position's logits (float32, n_vocab) and is
 * backend-independent: the CPU backend calls it directly, and the GPU
 * sampler must reproduce it (same seed, same stream, same token).
 *
 * Order of operations (the same for every backend):
 *   1. logit bias (added), 2. repetition penalty (divide positive logits,
 *   multiply negative ones, for tokens in the last penalty_last_n), frequency
 *   and presence penalties (subtract count * frequency + presence),
 *   3. temperature 0 (or top_k 1): greedy argmax, lowest id on ties;
 *   otherwise 4. top-k, 5. softmax over the survivors with temperature,
 *   6. top-p (smallest prefix of the sorted distribution reaching p),
 *   7. min-p (drop tokens below min_p * max probability), 8. renormalise and
 *   draw with one uniform number u from the counter-based generator: walking
 *   the survivors in ascending token id, the token is the first whose
 *   cumulative weight exceeds u times the survivors' total weight.
 * Ranking (top-k, top-p, top logprobs) is by logit, the lower id first on
 * ties, so the survivors are the same on every backend. sampler.c spells the
 * arithmetic out for the GPU sampler.
 * Randomness is keyed by (seed, request id, token index) only: a request's
 * output never depends on what it was batched with or on a restart.
 */
#ifndef RF_SAMPLER_H
#define RF_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RF_SAMPLER_MAX_TOP_LOGPROBS 20

typedef struct rf_logit_bias {
    int32_t token;
    float bias;
} rf_logit_bias_t;

typedef struct rf_sampling_params {
    float temperature;        /* 0: greedy */
    int32_t top_k;            /* 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off */
    float frequency_penalty;  /* 0: off */
    float presence_penalty;   /* 0: off */
    int32_t penalty_last_n;   /* tokens of history the penalties look at; -1: all */
    const rf_logit_bias_t *logit_bias; /* borrowed */
    size_t n_logit_bias;
    uint64_t seed;
    int32_t top_logprobs;     /* alternatives to report, 0..RF_SAMPLER_MAX_TOP_LOGPROBS */
} rf_sampling_params_t;

/* Defaults: greedy, no filters, no penalties. */
void rf_sampling_params_default(rf_sampling_params_t *p);

/* Checks ranges (temperature >= 0, top_p in (0,1], min_p in [0,1), penalties
 * finite, bias tokens < n_vocab, top_logprobs in range). Returns 0 or
 * RF_ERANGE with err naming the parameter and the value. */
int rf_sampling_params_check(const rf_sampling_params_t *p, uint32_t n_vocab, rf_err_t *err);

typedef struct rf_sample {
    int32_t token;
    float logprob;    /* log-probability of token under the distribution the
                         logits define after penalties and temperature 1 (the
                         model's own distribution, as OpenAI's logprobs) */
    int32_t n_top;
    int32_t top_tokens[RF_SAMPLER_MAX_TOP_LOGPROBS];
    float top_logprobs[RF_SAMPLER_MAX_TOP_LOGPROBS]; /* same definition, descending */
} rf_sample_t;

/* Scratch space reused across calls (sized for n_vocab on first use). */
typedef struct rf_sampler_scratch {
    float *probs;
    int32_t *ids;
    uint32_t *counts;
    size_t cap;
} rf_sampler_scratch_t;

void rf_sampler_scratch_free(rf_sampler_scratch_t *s);

/* Sample one token. logits (n_vocab floats) is modified in place (bias and
 * penalties applied). history holds the request's tokens so far (prompt and
 * generated) for the penalties. Returns 0, -ENOMEM (scratch could not grow;
 * logits untouched), or RF_ERANGE: p fails rf_sampling_params_check, a
 * history token is outside [0, n_vocab) (logits untouched), or the adjusted
 * logits hold a NaN or +inf or are all -inf (logits adjusted). out is
 * written only on success. */
int rf_sampler_sample(const rf_sampling_params_t *p, float *logits, uint32_t n_vocab,
                      const int32_t *history, size_t n_history, uint64_t request_id,
                      uint64_t token_index, rf_sampler_scratch_t *scratch, rf_sample_t *out);

/* Score mode: log-probability of `token` under softmax(logits) (no
 * penalties, temperature 1) and whether it is the greedy choice (argmax,
 * lowest id on ties). Returns 0, or RF_ERANGE when token is outside
 * [0, n_vocab), n_vocab is 0, or the logits hold a NaN or +inf or are all
 * -inf. */
int rf_sampler_score(const float *logits, uint32_t n_vocab, int32_t token, double *logprob,
                     bool *is_greedy);

/* The counter-based generator: a uniform float in [0, 1) from
 * (seed, request id, token index). Philox4x32-10, so GPUs can compute the
 * same stream. */
float rf_rng_uniform(uint64_t seed, uint64_t request_id, uint64_t token_index);

/* The Philox4x32-10 block function itself (Random123's philox4x32 with 10
 * rounds), exposed so tests can check it against the published vectors. */
void rf_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Stop strings: feed decoded text as it is produced; reports the byte offset
 * in the text so far where the earliest stop string begins, holding back text
 * that could still become one. */
typedef struct rf_stop {
    const char *const *strings; /* borrowed */
    size_t n_strings;
    size_t max_len;
    char *text;                 /* all text so far */
    size_t len, cap;
    size_t emitted;             /* bytes safe to show (no stop string can start before) */
    bool stopped;               /* a stop string was found; emitted is where it begins */
} rf_stop_t;

/* strings must outlive s. Returns 0, or RF_ERANGE (s zeroed) when a string
 * is NULL or empty, or strings is NULL with n > 0. */
int rf_stop_init(rf_stop_t *s, const char *const *strings, size_t n);
void rf_stop_free(rf_stop_t *s);
/* Append text. Returns 1 if a stop string now appears (*stop_at is where it
 * begins: the output is text[0..stop_at)), 0 if not, -ENOMEM (nothing
 * appended). When several have appeared, the one that begins first wins.
 * After a 0, text[emitted_before..s->emitted) is newly safe to stream; after
 * a 1, s->emitted == *stop_at and text[emitted_before..stop_at) is the last
 * of the output; later feeds append nothing and return 1 with the same
 * offset. */
int rf_stop_feed(rf_stop_t *s, const char *text, size_t len, size_t *stop_at);

#endif /* RF_SAMPLER_H */
