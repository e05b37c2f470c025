/* attention.c - causal GQA attention over the per-sequence f32 KV cache
 *
 * The batch's K and V rows are stored first (rf__cpu_kv_store), so a token
 * sees the tokens before it in the same batch exactly as it would have seen
 * them from earlier batches. Then each (token, head) pair is one work item:
 * scores against the sequence's positions 0..pos (the causal mask is the
 * loop bound), softmax, weighted sum of V. Query head h reads KV head
 * h / (n_head / n_head_kv).
 *
 * Items go to threads round-robin, not in ranges: a later token attends
 * to more positions, and ranges gave the last thread of a prompt about
 * three times the work of the first. An item's result does not depend on
 * which thread computes it.
 */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"

void rf__cpu_kv_store(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t n_tokens,
                      const int32_t *positions, const int32_t *seq_ids, const float *k,
                      const float *v)
{
    for (uint32_t t = 0; t < n_tokens; t++) {
        uint32_t seq = (uint32_t)seq_ids[t], pos = (uint32_t)positions[t];
        memcpy(rf__cpu_kv_k(kv, layer, seq, pos), k + (size_t)t * kv->k_width,
               kv->k_width * sizeof(float));
        memcpy(rf__cpu_kv_v(kv, layer, seq, pos), v + (size_t)t * kv->v_width,
               kv->v_width * sizeof(float));
    }
}

/* Four floats: GCC's generic vectors, SSE on any x86-64 (this file has
 * no ISA flags). */
typedef float v4f __attribute__((vector_size(16)));

static inline v4f load_v4f(const float *p)
{
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* q . k in eight interleaved partial sums (two vectors): a single running
 * sum would be one long dependency chain, and the compiler does not
 * reorder float additions by itself. */
static float dot_f32(const float *q, const float *k, uint32_t n)
{
    v4f s0 = {0}, s1 = {0};
    uint32_t d = 0;
    for (; d + 8 <= n; d += 8) {
        s0 += load_v4f(q + d) * load_v4f(k + d);
        s1 += load_v4f(q + d + 4) * load_v4f(k + d + 4);
    }
    const v4f s = s0 + s1;
    float sum = (s[0] + s[1]) + (s[2] + s[3]);
    for (; d < n; d++)
        sum += q[d] * k[d];
    return sum;
}

/* out += p * v; out and v never overlap (output buffer vs KV cache). */
static void axpy_f32(float *restrict out, float p, const float *restrict v, uint32_t n)
{
    for (uint32_t d = 0; d < n; d++)
        out[d] += p * v[d];
}

static void attention_task(void *ctx, int ith, int nth)
{
    const rf__cpu_attn_args_t *a = ctx;
    const rf_hparams_t *hp = a->hp;
    const uint32_t hd_k = hp->head_dim_k, hd_v = hp->head_dim_v;
    const uint32_t group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd_k);
    float *scores = a->scores + (size_t)ith * a->kv->n_ctx;
    const int64_t n_items = (int64_t)a->n_tokens * hp->n_head;
    for (int64_t item = ith; item < n_items; item += nth) {
        uint32_t t = (uint32_t)(item / hp->n_head), h = (uint32_t)(item % hp->n_head);
        uint32_t seq = (uint32_t)a->seq_ids[t], pos = (uint32_t)a->positions[t];
        uint32_t kvh = h / group;
        const float *q = a->q + ((size_t)t * hp->n_head + h) * hd_k;
        float max = -INFINITY;
        for (uint32_t j = 0; j <= pos; j++) {
            const float *k = rf__cpu_kv_k(a->kv, a->layer, seq, j) + (size_t)kvh * hd_k;
            scores[j] = dot_f32(q, k, hd_k) * scale;
            if (scores[j] > max)
                max = scores[j];
        }
        float sum = 0.0f;
        for (uint32_t j = 0; j <= pos; j++) {
            scores[j] = expf(scores[j] - max);
            sum += scores[j];
        }
        float inv = 1.0f / sum;
        float *out = a->out + ((size_t)t * hp->n_head + h) * hd_v;
        memset(out, 0, hd_v * sizeof(float));
        for (uint32_t j = 0; j <= pos; j++)
            axpy_f32(out, scores[j] * inv,
                     rf__cpu_kv_v(a->kv, a->layer, seq, j) + (size_t)kvh * hd_v, hd_v);
    }
}

void rf__cpu_attention(rf__cpu_pool_t *pool, rf__cpu_attn_args_t *args)
{
    /* Work estimate: every token against the longest context in the batch. */
    int32_t max_pos = 0;
    for (uint32_t t = 0; t < args->n_tokens; t++)
        if (args->positions[t] > max_pos)
            max_pos = args->positions[t];
    double work = (double)args->n_tokens * args->hp->n_head *
                  (args->hp->head_dim_k + args->hp->head_dim_v) * ((double)max_pos + 1);
    if (work < RF__CPU_MIN_PARALLEL_WORK)
        attention_task(args, 0, 1);
    else
        rf__cpu_pool_run(pool, attention_task, args);
}
