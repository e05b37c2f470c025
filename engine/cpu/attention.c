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
#include <stdatomic.h>
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

/* The task, written once; instantiated with the generic helpers above and,
 * on x86-64, with AVX-512 ones. */
typedef float (*dot_fn)(const float *q, const float *k, uint32_t n);
typedef void (*axpy_fn)(float *restrict out, float p, const float *restrict v, uint32_t n);

static inline __attribute__((always_inline)) void attention_body(void *ctx, int ith, int nth,
                                                                 dot_fn dot, axpy_fn axpy)
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
            scores[j] = dot(q, k, hd_k) * scale;
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
            axpy(out, scores[j] * inv,
                     rf__cpu_kv_v(a->kv, a->layer, seq, j) + (size_t)kvh * hd_v, hd_v);
    }
}

static void attention_task(void *ctx, int ith, int nth)
{
    attention_body(ctx, ith, nth, dot_f32, axpy_f32);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* AVX-512 F: one fma per 16 dimensions, masked loads for the tail. This
 * file has no ISA flags, so only these functions are compiled for it, and
 * they run only where rf_cpu_isa_supported(RF_CPU_AVX512) said yes.
 * Measured (Llama-3.2-1B shape, 2 threads): the SSE helpers above were
 * 6-8% of a 128-token prompt and 3-5% of generation. */
#include <immintrin.h>

#define AVX512_FN __attribute__((target("avx512f,fma")))

AVX512_FN static inline __mmask16 tail_mask(uint32_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

AVX512_FN static float dot_f32_avx512(const float *q, const float *k, uint32_t n)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    uint32_t d = 0;
    for (; d + 32 <= n; d += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(k + d + 16), s1);
    }
    for (; d < n; d += 16) {
        const __mmask16 m = tail_mask(n - d);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, k + d), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

AVX512_FN static void axpy_f32_avx512(float *restrict out, float p, const float *restrict v,
                                      uint32_t n)
{
    const __m512 pv = _mm512_set1_ps(p);
    for (uint32_t d = 0; d < n; d += 16) {
        const __mmask16 m = tail_mask(n - d);
        _mm512_mask_storeu_ps(out + d, m, _mm512_fmadd_ps(pv, _mm512_maskz_loadu_ps(m, v + d),
                                                          _mm512_maskz_loadu_ps(m, out + d)));
    }
}

AVX512_FN static void attention_task_avx512(void *ctx, int ith, int nth)
{
    attention_body(ctx, ith, nth, dot_f32_avx512, axpy_f32_avx512);
}

static rf__cpu_task_fn pick_task(void)
{
    static _Atomic int avx512 = -1;
    int v = atomic_load_explicit(&avx512, memory_order_relaxed);
    if (v < 0) {
        v = rf_cpu_isa_supported(RF_CPU_AVX512);
        atomic_store_explicit(&avx512, v, memory_order_relaxed);
    }
    return v ? attention_task_avx512 : attention_task;
}
#else
static rf__cpu_task_fn pick_task(void)
{
    return attention_task;
}
#endif

void rf__cpu_attention(rf__cpu_pool_t *pool, rf__cpu_attn_args_t *args)
{
    /* Work estimate: every token against the longest context in the batch. */
    int32_t max_pos = 0;
    for (uint32_t t = 0; t < args->n_tokens; t++)
        if (args->positions[t] > max_pos)
            max_pos = args->positions[t];
    double work = (double)args->n_tokens * args->hp->n_head *
                  (args->hp->head_dim_k + args->hp->head_dim_v) * ((double)max_pos + 1);
    const rf__cpu_task_fn task = pick_task();
    if (work < RF__CPU_MIN_PARALLEL_WORK)
        task(args, 0, 1);
    else
        rf__cpu_pool_run(pool, task, args);
}
