/* sampler.c - logits to tokens: penalties, filters, seeded draws, logprobs, stop strings
 *
 * This file is the reference the GPU sampler must reproduce, so the exact
 * arithmetic is written down here.
 *
 * Design notes
 *   1. Adjusted logits l: l = logit + sum of the biases naming the token; then,
 *      for each distinct token t among the last penalty_last_n history tokens
 *      (count c = its occurrences there): l /= r if l > 0 else l *= r
 *      (repetition penalty r), then l -= c * frequency + presence. Applied
 *      once per distinct token, as llama.cpp and HF do.
 *   2. Ranking: token a ranks before b when l[a] > l[b], or they are equal
 *      and a < b. Top-k, top-p and top logprobs all use this order, so ties
 *      never depend on a sort's stability or a thread schedule.
 *   3. Greedy (temperature 0 or top_k 1) picks the first token in that order.
 *   4. Otherwise, with m = max l (float): candidates are the top_k best ranked
 *      (all tokens when top_k is 0 or >= n_vocab), each with weight
 *      w = expf((l - m) / temperature) in float. The best-ranked token has
 *      w == 1 exactly, which makes min-p a plain comparison.
 *   5. top-p < 1: walking the candidates in rank order, summing w in double,
 *      keep the shortest prefix whose sum is >= top_p * (sum of all candidate
 *      weights, in double). The order of these summations is not part of the
 *      contract (a GPU reduces in a tree; over the whole vocabulary this
 *      file sums per histogram bin, see top_p_all): it moves the cut only
 *      when the prefix sum lands within rounding of the target.
 *   6. min-p > 0: keep the survivors with w >= min_p.
 *   7. u = rf_rng_uniform(seed, request id, token index); target = u * W in
 *      double, W the survivors' weight sum taken in ascending token id.
 *      Walking survivors in ascending id, cumulating w in double, the token
 *      is the first whose cumulative sum is > target. Ascending id needs no
 *      sort when nothing ranks the candidates, and a GPU gets it from one
 *      prefix scan. A zero weight can never be chosen.
 *   8. logprob values: log-softmax of l at temperature 1 over the whole
 *      vocabulary, lse = m + log(sum exp(l - m)) with exp and the sum in
 *      double; they describe the model's distribution (as OpenAI reports),
 *      not the filtered one the token was drawn from.
 *
 * Scratch invariant: scratch->counts is all zero between calls; the penalty
 * pass increments only the history tokens and clears exactly those again,
 * so no call touches the whole array.
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- counter-based generator ---- */

/* Philox4x32 constants from Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3" (SC11), as Random123 defines them. */
#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u
#define PHILOX_ROUNDS 10

void rf_philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < PHILOX_ROUNDS; round++) {
        /* The first round uses the key as given; each later one bumps it
         * first (Random123's order: 9 bumps for 10 rounds). */
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* Layout, fixed because GPU kernels recompute it (Random123 word order):
 *   key     = { seed & 0xffffffff, seed >> 32 }
 *   counter = { token_index & 0xffffffff, token_index >> 32,
 *               request_id & 0xffffffff,  request_id >> 32 }
 *   u       = (out[0] >> 8) * 2^-24, exactly representable in float, so u is
 *             in [0, 1 - 2^-24]; out[1..3] are unused.
 * Only the top 24 bits are used because a float holds 24 significant bits:
 * more would round up to 1.0 for outputs near 2^32. */
float rf_rng_uniform(uint64_t seed, uint64_t request_id, uint64_t token_index)
{
    const uint32_t counter[4] = {
        (uint32_t)token_index,
        (uint32_t)(token_index >> 32),
        (uint32_t)request_id,
        (uint32_t)(request_id >> 32),
    };
    const uint32_t key[2] = { (uint32_t)seed, (uint32_t)(seed >> 32) };
    uint32_t out[4];
    rf_philox4x32_10(counter, key, out);
    return (float)(out[0] >> 8) * 0x1p-24f;
}

/* ---- ranking and selection ---- */

/* Note 2: higher logit first, lower id on ties. */
static inline bool ranks_before(const float *logits, int32_t a, int32_t b)
{
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

/* Heap whose root is the worst-ranked element it holds. */
static void sift_down_worst(const float *logits, int32_t *heap, size_t n, size_t i)
{
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, worst = i;
        if (left < n && ranks_before(logits, heap[worst], heap[left]))
            worst = left;
        if (right < n && ranks_before(logits, heap[worst], heap[right]))
            worst = right;
        if (worst == i)
            return;
        int32_t t = heap[i];
        heap[i] = heap[worst];
        heap[worst] = t;
        i = worst;
    }
}

/* Put the m best-ranked tokens of [0, n) in ids[0..m), best first, with
 * 1 <= m <= n. O(n log m): a heap of the m best so far, where most tokens
 * lose to its root in one comparison; then an in-place heap sort. Allocates
 * nothing (qsort may). */
static void select_top(const float *logits, size_t n, size_t m, int32_t *ids)
{
    for (size_t i = 0; i < m; i++)
        ids[i] = (int32_t)i;
    for (size_t i = m / 2; i-- > 0;)
        sift_down_worst(logits, ids, m, i);
    for (size_t i = m; i < n; i++) {
        if (ranks_before(logits, (int32_t)i, ids[0])) {
            ids[0] = (int32_t)i;
            sift_down_worst(logits, ids, m, 0);
        }
    }
    /* Moving the worst to the end each time leaves the array best first. */
    for (size_t end = m; end-- > 1;) {
        int32_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down_worst(logits, ids, end, 0);
    }
}

/* Sort ids[0..n) best first, in place (heap sort). */
static void sort_ranked(const float *logits, int32_t *ids, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down_worst(logits, ids, n, i);
    for (size_t end = n; end-- > 1;) {
        int32_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down_worst(logits, ids, end, 0);
    }
}

static void sift_down_max_id(int32_t *heap, size_t n, size_t i)
{
    for (;;) {
        size_t left = 2 * i + 1, right = left + 1, big = i;
        if (left < n && heap[left] > heap[big])
            big = left;
        if (right < n && heap[right] > heap[big])
            big = right;
        if (big == i)
            return;
        int32_t t = heap[i];
        heap[i] = heap[big];
        heap[big] = t;
        i = big;
    }
}

/* Ascending ids, in place and without allocating. */
static void sort_ids(int32_t *ids, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down_max_id(ids, n, i);
    for (size_t end = n; end-- > 1;) {
        int32_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down_max_id(ids, end, 0);
    }
}

/* Greedy choice: the first token in rank order. */
static int32_t argmax_lowest_id(const float *logits, uint32_t n)
{
    int32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (logits[i] > logits[best])
            best = (int32_t)i;
    return best;
}

/* Max of the logits, or RF_ERANGE when one is NaN or +inf (softmax is not
 * defined) or all are -inf (every token banned: nothing can be chosen). */
static int logits_max(const float *logits, uint32_t n, float *max_out)
{
    float max = -INFINITY;
    bool bad = false;
    for (uint32_t i = 0; i < n; i++) {
        float v = logits[i];
        bad |= isnan(v) || v == INFINITY;
        if (v > max)
            max = v;
    }
    if (bad || max == -INFINITY)
        return RF_ERANGE;
    *max_out = max;
    return 0;
}

/* log(sum exp(l)) over the vocabulary at temperature 1 (note 8). */
static double log_sum_exp(const float *logits, uint32_t n, float max)
{
    double sum = 0.0;
    for (uint32_t i = 0; i < n; i++)
        sum += exp((double)logits[i] - (double)max);
    return (double)max + log(sum);
}

/* ---- parameters ---- */

void rf_sampling_params_default(rf_sampling_params_t *p)
{
    /* penalty_last_n -1 (whole history) only matters once a penalty is set;
     * it matches OpenAI's and vLLM's penalties, which see every token. */
    *p = (rf_sampling_params_t){
        .temperature = 0.0f,
        .top_k = 0,
        .top_p = 1.0f,
        .min_p = 0.0f,
        .repetition_penalty = 1.0f,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .penalty_last_n = -1,
        .logit_bias = NULL,
        .n_logit_bias = 0,
        .seed = 0,
        .top_logprobs = 0,
    };
}

int rf_sampling_params_check(const rf_sampling_params_t *p, uint32_t n_vocab, rf_err_t *err)
{
    /* Token ids are int32_t, so a vocabulary cannot be larger than that. */
    if (n_vocab == 0 || n_vocab > (uint32_t)INT32_MAX)
        return rf_err_set(err, RF_ERANGE, "n_vocab = %u: must be in 1..%d", (unsigned)n_vocab,
                          INT32_MAX);
    /* The comparisons are written so that NaN fails them. */
    if (!(p->temperature >= 0.0f && isfinite(p->temperature)))
        return rf_err_set(err, RF_ERANGE,
                          "temperature = %g: must be finite and >= 0 (0 means greedy)",
                          (double)p->temperature);
    if (p->top_k < 0)
        return rf_err_set(err, RF_ERANGE, "top_k = %d: must be >= 0 (0 means off)",
                          (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return rf_err_set(err, RF_ERANGE, "top_p = %g: must be in (0, 1] (1 means off)",
                          (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return rf_err_set(err, RF_ERANGE, "min_p = %g: must be in [0, 1) (0 means off)",
                          (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return rf_err_set(err, RF_ERANGE,
                          "repetition_penalty = %g: must be finite and > 0 (1 means off)",
                          (double)p->repetition_penalty);
    if (!isfinite(p->frequency_penalty))
        return rf_err_set(err, RF_ERANGE, "frequency_penalty = %g: must be finite",
                          (double)p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return rf_err_set(err, RF_ERANGE, "presence_penalty = %g: must be finite",
                          (double)p->presence_penalty);
    if (p->penalty_last_n < -1)
        return rf_err_set(err, RF_ERANGE,
                          "penalty_last_n = %d: must be >= -1 (-1 means the whole history)",
                          (int)p->penalty_last_n);
    if (p->top_logprobs < 0 || p->top_logprobs > RF_SAMPLER_MAX_TOP_LOGPROBS)
        return rf_err_set(err, RF_ERANGE, "top_logprobs = %d: must be in 0..%d",
                          (int)p->top_logprobs, RF_SAMPLER_MAX_TOP_LOGPROBS);
    if (p->n_logit_bias > 0 && p->logit_bias == NULL)
        return rf_err_set(err, RF_ERANGE, "logit_bias is NULL but n_logit_bias = %zu",
                          p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const rf_logit_bias_t *b = &p->logit_bias[i];
        if (b->token < 0 || (uint32_t)b->token >= n_vocab)
            return rf_err_set(err, RF_ERANGE, "logit_bias[%zu].token = %d: must be in 0..%u",
                              i, (int)b->token, (unsigned)(n_vocab - 1));
        /* -inf is allowed: it bans the token. +inf would make softmax NaN. */
        if (isnan(b->bias) || b->bias == INFINITY)
            return rf_err_set(err, RF_ERANGE,
                              "logit_bias[%zu].bias = %g (token %d): must be a number < +inf",
                              i, (double)b->bias, (int)b->token);
    }
    return 0;
}

/* ---- scratch ---- */

static int scratch_reserve(rf_sampler_scratch_t *s, uint32_t n)
{
    if (s->cap >= n && s->probs != NULL && s->ids != NULL && s->counts != NULL)
        return 0;
    float *probs = malloc((size_t)n * sizeof *probs);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    uint32_t *counts = calloc(n, sizeof *counts); /* zero: the invariant */
    if (probs == NULL || ids == NULL || counts == NULL) {
        free(probs);
        free(ids);
        free(counts);
        return -ENOMEM;
    }
    free(s->probs);
    free(s->ids);
    free(s->counts);
    s->probs = probs;
    s->ids = ids;
    s->counts = counts;
    s->cap = n;
    return 0;
}

void rf_sampler_scratch_free(rf_sampler_scratch_t *s)
{
    free(s->probs);
    free(s->ids);
    free(s->counts);
    memset(s, 0, sizeof *s);
}

/* ---- bias and penalties ---- */

static void apply_bias(const rf_sampling_params_t *p, float *logits)
{
    for (size_t i = 0; i < p->n_logit_bias; i++)
        logits[p->logit_bias[i].token] += p->logit_bias[i].bias;
}

/* Note 1. recent holds tokens already checked to be in range. */
static void apply_penalties(const rf_sampling_params_t *p, float *logits, const int32_t *recent,
                            size_t n_recent, uint32_t *counts)
{
    const float rep = p->repetition_penalty;
    const float freq = p->frequency_penalty;
    const float pres = p->presence_penalty;
    if (n_recent == 0 || (rep == 1.0f && freq == 0.0f && pres == 0.0f))
        return;
    for (size_t j = 0; j < n_recent; j++)
        counts[recent[j]]++;
    /* The first visit of a token applies its penalty and clears its count,
     * so later visits skip it and counts is zero again afterwards. */
    for (size_t j = 0; j < n_recent; j++) {
        int32_t t = recent[j];
        uint32_t c = counts[t];
        if (c == 0)
            continue;
        counts[t] = 0;
        float l = logits[t];
        if (rep != 1.0f)
            l = l > 0.0f ? l / rep : l * rep;
        l -= (float)c * freq + pres;
        logits[t] = l;
    }
}

/* ---- sampling ---- */

/* The smallest c such that the weights of ranked[0..c) sum to >= target, or
 * n when rounding keeps them short of it. */
static size_t top_p_cut(const float *w, const int32_t *ranked, size_t n, double target)
{
    double cum = 0.0;
    for (size_t i = 0; i < n; i++) {
        cum += w[ranked[i]];
        if (cum >= target)
            return i + 1;
    }
    return n;
}

/* Top-p over the whole vocabulary buckets tokens by d = (max - l) /
 * temperature, TOP_P_BINS_PER_UNIT bins per unit of d (a bin spans a weight
 * ratio of e^(1/64)); d past the last bin (weights below e^-32) shares it.
 * Float subtraction, division and multiplication are monotone, so a better
 * ranked token never lands in a later bin. */
#define TOP_P_BINS 2048
#define TOP_P_BINS_PER_UNIT 64.0f

static uint32_t top_p_bin(float l, float max, float temp)
{
    float d = (max - l) / temp * TOP_P_BINS_PER_UNIT; /* >= 0; +inf for l = -inf */
    return d < (float)(TOP_P_BINS - 1) ? (uint32_t)d : TOP_P_BINS - 1;
}

/* Note 5 with every token a candidate, without sorting the vocabulary: the
 * bin where the running sum (best bins first) reaches the target holds the
 * cut; bins before it are kept whole, bins after it dropped, and only the
 * crossing bin's tokens are ranked. Dropped tokens get weight 0, which the
 * draw skips. ids is scratch (n entries). Two passes and a sort of one bin,
 * where ranking ever more of a flat distribution would approach a full sort.
 * A very high temperature puts everything in bin 0 and degrades to that
 * full sort, still correct. */
static void top_p_all(const float *logits, uint32_t n, float max, float temp, double top_p,
                      float *w, int32_t *ids)
{
    double bin_sum[TOP_P_BINS] = { 0 };
    double total = 0.0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = top_p_bin(logits[i], max, temp);
        ids[i] = (int32_t)b;
        bin_sum[b] += w[i];
        total += w[i];
    }
    const double target = top_p * total;
    double before = 0.0;
    uint32_t cross = 0;
    for (;;) {
        if (before + bin_sum[cross] >= target)
            break;
        before += bin_sum[cross];
        if (++cross == TOP_P_BINS)
            return; /* rounding kept every bin short of the target: keep all */
    }
    /* ids[i] is read before any write to ids[0..i], so compacting the
     * crossing bin's tokens into the front of ids is safe. */
    size_t n_cross = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)ids[i];
        if (b > cross)
            w[i] = 0.0f;
        else if (b == cross)
            ids[n_cross++] = (int32_t)i;
    }
    sort_ranked(logits, ids, n_cross);
    double cum = before;
    size_t j = 0;
    while (j < n_cross) {
        cum += w[ids[j++]];
        if (cum >= target)
            break;
    }
    for (; j < n_cross; j++)
        w[ids[j]] = 0.0f;
}

/* Notes 4-7 for a non-greedy draw; max is the largest adjusted logit. */
static int32_t draw_token(const rf_sampling_params_t *p, const float *logits, uint32_t n_vocab,
                          float max, float u, rf_sampler_scratch_t *s)
{
    float *w = s->probs;
    int32_t *ids = s->ids;
    const float temp = p->temperature;
    /* Either the candidates are ids[0..n_ranked) in rank order (ranked), or
     * they are every token with w > 0, in id order. */
    bool ranked = false;
    size_t n_ranked = 0;

    if (p->top_k > 0 && (uint32_t)p->top_k < n_vocab) {
        n_ranked = (size_t)p->top_k;
        select_top(logits, n_vocab, n_ranked, ids);
        for (size_t j = 0; j < n_ranked; j++)
            w[ids[j]] = expf((logits[ids[j]] - max) / temp);
        ranked = true;
    } else {
        for (uint32_t i = 0; i < n_vocab; i++)
            w[i] = expf((logits[i] - max) / temp);
    }

    if (p->top_p < 1.0f) {
        if (ranked) {
            double total = 0.0;
            for (size_t j = 0; j < n_ranked; j++)
                total += w[ids[j]];
            n_ranked = top_p_cut(w, ids, n_ranked, (double)p->top_p * total);
        } else {
            top_p_all(logits, n_vocab, max, temp, (double)p->top_p, w, ids);
        }
    }

    const float min_p = p->min_p;
    if (ranked) {
        /* Weights fall along rank order and ids[0] has w == 1 >= min_p, so
         * min-p keeps a non-empty prefix. */
        if (min_p > 0.0f) {
            size_t keep = 1;
            while (keep < n_ranked && w[ids[keep]] >= min_p)
                keep++;
            n_ranked = keep;
        }
        sort_ids(ids, n_ranked);
        double total = 0.0;
        for (size_t j = 0; j < n_ranked; j++)
            total += w[ids[j]];
        const double target = (double)u * total;
        double cum = 0.0;
        int32_t last = ids[0];
        for (size_t j = 0; j < n_ranked; j++) {
            if (w[ids[j]] <= 0.0f)
                continue;
            cum += w[ids[j]];
            last = ids[j];
            if (cum > target)
                return ids[j];
        }
        return last; /* unreachable: cum ends at total > target; never a zero weight */
    }

    double total = 0.0;
    for (uint32_t i = 0; i < n_vocab; i++)
        if (w[i] >= min_p)
            total += w[i];
    const double target = (double)u * total;
    double cum = 0.0;
    int32_t last = 0;
    for (uint32_t i = 0; i < n_vocab; i++) {
        if (w[i] <= 0.0f || w[i] < min_p)
            continue;
        cum += w[i];
        last = (int32_t)i;
        if (cum > target)
            return (int32_t)i;
    }
    return last; /* unreachable, as above */
}

int rf_sampler_sample(const rf_sampling_params_t *p, float *logits, uint32_t n_vocab,
                      const int32_t *history, size_t n_history, uint64_t request_id,
                      uint64_t token_index, rf_sampler_scratch_t *scratch, rf_sample_t *out)
{
    /* Checked here as well as at submission: a bad bias token would write
     * outside logits. */
    int rc = rf_sampling_params_check(p, n_vocab, NULL);
    if (rc != 0)
        return rc;
    if (n_history > 0 && history == NULL)
        return RF_ERANGE;

    size_t window = n_history;
    if (p->penalty_last_n >= 0 && (size_t)p->penalty_last_n < n_history)
        window = (size_t)p->penalty_last_n;
    const int32_t *recent = window > 0 ? history + (n_history - window) : NULL;
    for (size_t j = 0; j < window; j++)
        if (recent[j] < 0 || (uint32_t)recent[j] >= n_vocab)
            return RF_ERANGE;

    rc = scratch_reserve(scratch, n_vocab);
    if (rc != 0)
        return rc;

    apply_bias(p, logits);
    apply_penalties(p, logits, recent, window, scratch->counts);

    float max;
    rc = logits_max(logits, n_vocab, &max);
    if (rc != 0)
        return rc;

    int32_t token;
    if (p->temperature == 0.0f || p->top_k == 1) {
        token = argmax_lowest_id(logits, n_vocab);
    } else {
        float u = rf_rng_uniform(p->seed, request_id, token_index);
        token = draw_token(p, logits, n_vocab, max, u, scratch);
    }

    const double lse = log_sum_exp(logits, n_vocab, max);
    out->token = token;
    out->logprob = (float)((double)logits[token] - lse);
    int32_t n_top = p->top_logprobs;
    if ((uint32_t)n_top > n_vocab)
        n_top = (int32_t)n_vocab;
    out->n_top = n_top;
    if (n_top > 0) {
        select_top(logits, n_vocab, (size_t)n_top, out->top_tokens);
        for (int32_t j = 0; j < n_top; j++)
            out->top_logprobs[j] = (float)((double)logits[out->top_tokens[j]] - lse);
    }
    return 0;
}

/* ---- score mode ---- */

int rf_sampler_score(const float *logits, uint32_t n_vocab, int32_t token, double *logprob,
                     bool *is_greedy)
{
    if (n_vocab == 0 || token < 0 || (uint32_t)token >= n_vocab)
        return RF_ERANGE;
    float max;
    int rc = logits_max(logits, n_vocab, &max);
    if (rc != 0)
        return rc;
    *logprob = (double)logits[token] - log_sum_exp(logits, n_vocab, max);
    *is_greedy = argmax_lowest_id(logits, n_vocab) == token;
    return 0;
}

/* ---- stop strings ---- */

/* Invariant: no stop string begins before emitted, and text[emitted..len) is
 * the longest suffix that is a proper prefix of some stop string. Any stop
 * string completed by new text therefore begins at or after emitted, which
 * bounds both searches in rf_stop_feed to the last max_len bytes or so. */

int rf_stop_init(rf_stop_t *s, const char *const *strings, size_t n)
{
    memset(s, 0, sizeof *s);
    if (n > 0 && strings == NULL)
        return RF_ERANGE;
    size_t max_len = 0;
    for (size_t i = 0; i < n; i++) {
        /* An empty stop string would match before any text. */
        if (strings[i] == NULL || strings[i][0] == '\0')
            return RF_ERANGE;
        size_t len = strlen(strings[i]);
        if (len > max_len)
            max_len = len;
    }
    s->strings = strings;
    s->n_strings = n;
    s->max_len = max_len;
    return 0;
}

void rf_stop_free(rf_stop_t *s)
{
    free(s->text);
    memset(s, 0, sizeof *s);
}

static int stop_reserve(rf_stop_t *s, size_t add)
{
    if (add > SIZE_MAX - s->len - 1)
        return -ENOMEM;
    size_t need = s->len + add + 1; /* + NUL, so text is always a C string */
    if (need <= s->cap)
        return 0;
    size_t cap = s->cap < 64 ? 64 : s->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : 2 * cap;
    char *text = realloc(s->text, cap);
    if (text == NULL)
        return -ENOMEM;
    s->text = text;
    s->cap = cap;
    return 0;
}

/* Where the longest suffix of the text that is a proper prefix of a stop
 * string begins; len when there is none. */
static size_t held_back_start(const rf_stop_t *s)
{
    size_t from = s->emitted;
    if (s->max_len == 0)
        return s->len;
    if (s->len - from > s->max_len - 1)
        from = s->len - (s->max_len - 1);
    for (size_t pos = from; pos < s->len; pos++) {
        size_t tail = s->len - pos;
        for (size_t k = 0; k < s->n_strings; k++) {
            const char *str = s->strings[k];
            if (strlen(str) > tail && memcmp(s->text + pos, str, tail) == 0)
                return pos;
        }
    }
    return s->len;
}

int rf_stop_feed(rf_stop_t *s, const char *text, size_t len, size_t *stop_at)
{
    if (s->stopped) {
        *stop_at = s->emitted;
        return 1;
    }
    if (len > 0) {
        int rc = stop_reserve(s, len);
        if (rc != 0)
            return rc;
        memcpy(s->text + s->len, text, len);
        s->len += len;
        s->text[s->len] = '\0';
    }
    /* Positions ascending, so the first match is the earliest beginning. */
    for (size_t pos = s->emitted; pos < s->len; pos++) {
        size_t room = s->len - pos;
        for (size_t k = 0; k < s->n_strings; k++) {
            const char *str = s->strings[k];
            size_t n = strlen(str);
            if (n <= room && memcmp(s->text + pos, str, n) == 0) {
                s->stopped = true;
                s->emitted = pos;
                *stop_at = pos;
                return 1;
            }
        }
    }
    s->emitted = held_back_start(s);
    return 0;
}
