/* attention.c - causal GQA attention over the per-sequence f32 KV cache
 *
 * The batch's K and V rows are stored first (rf__cpu_kv_store), so a token
 * sees the tokens before it in the same batch exactly as it would have seen
 * them from earlier batches. Then each (token, head) pair is one work item:
 * scores against the sequence's positions 0..pos (the causal mask is the
 * loop bound), softmax, weighted sum of V. Query head h reads KV head
 * h / (n_head / n_head_kv).
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

static void attention_task(void *ctx, int ith, int nth)
{
    const rf__cpu_attn_args_t *a = ctx;
    const rf_hparams_t *hp = a->hp;
    const uint32_t hd_k = hp->head_dim_k, hd_v = hp->head_dim_v;
    const uint32_t group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / sqrtf((float)hd_k);
    float *scores = a->scores + (size_t)ith * a->kv->n_ctx;
    int64_t begin, end;
    rf__cpu_split((int64_t)a->n_tokens * hp->n_head, ith, nth, &begin, &end);
    for (int64_t item = begin; item < end; item++) {
        uint32_t t = (uint32_t)(item / hp->n_head), h = (uint32_t)(item % hp->n_head);
        uint32_t seq = (uint32_t)a->seq_ids[t], pos = (uint32_t)a->positions[t];
        uint32_t kvh = h / group;
        const float *q = a->q + ((size_t)t * hp->n_head + h) * hd_k;
        float max = -INFINITY;
        for (uint32_t j = 0; j <= pos; j++) {
            const float *k = rf__cpu_kv_k(a->kv, a->layer, seq, j) + (size_t)kvh * hd_k;
            float dot = 0.0f;
            for (uint32_t d = 0; d < hd_k; d++)
                dot += q[d] * k[d];
            scores[j] = dot * scale;
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
        for (uint32_t j = 0; j <= pos; j++) {
            const float *v = rf__cpu_kv_v(a->kv, a->layer, seq, j) + (size_t)kvh * hd_v;
            float p = scores[j] * inv;
            for (uint32_t d = 0; d < hd_v; d++)
                out[d] += p * v[d];
        }
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
