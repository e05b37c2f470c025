/* test_attention_gpu.c - KV store and paged attention against the C reference
 *
 * A block pool is filled the way the engine fills it: each sequence gets a
 * random, non-contiguous list of blocks (never block 0, the padding block),
 * its earlier positions are stored in one batch, then a mixed batch (decode
 * tokens of some sequences, a prefill chunk of another) is stored and
 * attended. The reference is engine/cpu/attention.c's computation in double
 * on K and V rounded to F16. Bounds: the stored cache equals the engine's
 * fp32 -> fp16 rounding bit for bit; attention output within 2e-5 of the
 * largest |V| (a convex combination of V rows; f32 accumulation lands near
 * 1e-6, and dropping one of 3000 positions moves it by about 3e-4).
 * Skips when no GPU is present.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test.h"
#include "kernels.h"
#include "quant.h"

typedef struct shape {
    int n_heads, n_kv_heads, head_dim, block_size;
    int n_seqs;
    int context[8]; /* final length of each sequence */
    int n_new[8];   /* tokens of it in the checked batch (its last ones) */
} shape_t;

static float f16_round(float x)
{
    return rf_fp16_to_fp32(rf_fp32_to_fp16(x));
}

static void run_case(const shape_t *sh)
{
    const int H = sh->n_heads, KVH = sh->n_kv_heads, HD = sh->head_dim, BS = sh->block_size;
    const int width = KVH * HD;
    int max_context = 0, max_blocks = 0, total_blocks = 1, n_old = 0, n_new = 0;
    for (int s = 0; s < sh->n_seqs; s++) {
        int blocks = (sh->context[s] + BS - 1) / BS;
        if (sh->context[s] > max_context)
            max_context = sh->context[s];
        if (blocks > max_blocks)
            max_blocks = blocks;
        total_blocks += blocks;
        n_old += sh->context[s] - sh->n_new[s];
        n_new += sh->n_new[s];
    }
    max_blocks += 1; /* a spare column, left pointing at the padding block */
    const int n_blocks = total_blocks + 3;

    /* block tables: a random permutation of blocks 1..n_blocks-1 */
    int32_t *perm = malloc((size_t)n_blocks * sizeof *perm);
    for (int i = 0; i < n_blocks - 1; i++)
        perm[i] = i + 1;
    for (int i = n_blocks - 2; i > 0; i--) {
        int j = (int)(gpu_test_u32() % (uint32_t)(i + 1));
        int32_t tmp = perm[i]; perm[i] = perm[j]; perm[j] = tmp;
    }
    int32_t *tables = calloc((size_t)(sh->n_seqs * max_blocks), sizeof *tables);
    for (int s = 0, next = 0; s < sh->n_seqs; s++)
        for (int b = 0; b < (sh->context[s] + BS - 1) / BS; b++)
            tables[s * max_blocks + b] = perm[next++];

    /* every sequence's K and V, and the two batches */
    float **k = malloc((size_t)sh->n_seqs * sizeof *k), **v = malloc((size_t)sh->n_seqs * sizeof *v);
    for (int s = 0; s < sh->n_seqs; s++) {
        k[s] = gpu_test_random((size_t)sh->context[s] * width, 1.0f);
        v[s] = gpu_test_random((size_t)sh->context[s] * width, 1.0f);
    }
    const int n_all = n_old + n_new;
    int32_t *seq_ids = malloc((size_t)n_all * sizeof *seq_ids);
    int32_t *positions = malloc((size_t)n_all * sizeof *positions);
    float *kb = malloc((size_t)n_all * width * sizeof *kb), *vb = malloc((size_t)n_all * width * sizeof *vb);
    int i = 0;
    for (int pass = 0; pass < 2; pass++) /* old tokens first, then the checked batch */
        for (int s = 0; s < sh->n_seqs; s++) {
            int first = pass == 0 ? 0 : sh->context[s] - sh->n_new[s];
            int last = pass == 0 ? sh->context[s] - sh->n_new[s] : sh->context[s];
            for (int p = first; p < last; p++, i++) {
                seq_ids[i] = s;
                positions[i] = p;
                memcpy(kb + (size_t)i * width, k[s] + (size_t)p * width, (size_t)width * 4);
                memcpy(vb + (size_t)i * width, v[s] + (size_t)p * width, (size_t)width * 4);
            }
        }
    float *q = gpu_test_random((size_t)n_new * H * HD, 1.0f);

    const size_t cache_bytes = (size_t)n_blocks * width * BS * 2;
    void *d_kc = gpu_test_poisoned(cache_bytes), *d_vc = gpu_test_poisoned(cache_bytes);
    int32_t *d_tables = gpu_test_upload(tables, (size_t)(sh->n_seqs * max_blocks) * 4);
    int32_t *d_seq = gpu_test_upload(seq_ids, (size_t)n_all * 4);
    int32_t *d_pos = gpu_test_upload(positions, (size_t)n_all * 4);
    float *d_kb = gpu_test_upload(kb, (size_t)n_all * width * 4);
    float *d_vb = gpu_test_upload(vb, (size_t)n_all * width * 4);
    float *d_q = gpu_test_upload(q, (size_t)n_new * H * HD * 4);
    const size_t out_bytes = (size_t)n_new * H * HD * 4;
    float *d_out = gpu_test_poisoned(out_bytes);
    const size_t ws_bytes = rf_kernel_paged_attention_workspace(n_new, H, HD, max_context);
    void *d_ws = ws_bytes ? gpu_test_poisoned(ws_bytes) : NULL;

    if (n_old > 0)
        cr_assert_eq(rf_kernel_kv_store_f16(d_kc, d_vc, d_kb, d_vb, 0, 0, d_tables, max_blocks,
                                            d_seq, d_pos, n_old, KVH, HD, BS, NULL), 0);
    cr_assert_eq(rf_kernel_kv_store_f16(d_kc, d_vc, d_kb + (size_t)n_old * width,
                                        d_vb + (size_t)n_old * width, 0, 0, d_tables, max_blocks,
                                        d_seq + n_old, d_pos + n_old, n_new, KVH, HD, BS, NULL), 0);
    const float scale = 1.0f / sqrtf((float)HD);
    cr_assert_eq(rf_kernel_paged_attention_f32(d_out, d_q, 0, d_kc, d_vc, d_tables, max_blocks,
                                               d_seq + n_old, d_pos + n_old, n_new, H, KVH, HD,
                                               BS, scale, max_context, d_ws, ws_bytes, NULL), 0);
    float *got = gpu_test_download(d_out, out_bytes);

    /* the cache holds exactly the F16 rounding of every stored row, and the
     * padding block was never written */
    uint16_t *kc = gpu_test_download(d_kc, cache_bytes), *vc = gpu_test_download(d_vc, cache_bytes);
    for (int s = 0; s < sh->n_seqs; s++)
        for (int p = 0; p < sh->context[s]; p++)
            for (int h = 0; h < KVH; h++) {
                size_t slot = (((size_t)tables[s * max_blocks + p / BS] * KVH + h) * BS + p % BS) * HD;
                for (int d = 0; d < HD; d++) {
                    size_t src = (size_t)p * width + (size_t)h * HD + d;
                    cr_assert_eq(kc[slot + d], rf_fp32_to_fp16(k[s][src]),
                                 "K of seq %d pos %d head %d dim %d", s, p, h, d);
                    cr_assert_eq(vc[slot + d], rf_fp32_to_fp16(v[s][src]),
                                 "V of seq %d pos %d head %d dim %d", s, p, h, d);
                }
            }
    for (size_t e = 0; e < (size_t)width * BS; e++)
        cr_assert(kc[e] == 0xffff && vc[e] == 0xffff, "padding block 0 was written");

    /* reference */
    const int group = H / KVH;
    double worst = 0, vmax = 0;
    double *scores = malloc((size_t)max_context * sizeof *scores);
    for (int t = 0; t < n_new; t++) {
        const int s = seq_ids[n_old + t], pos = positions[n_old + t];
        for (int h = 0; h < H; h++) {
            const int kvh = h / group;
            const float *qh = q + ((size_t)t * H + h) * HD;
            double m = -INFINITY;
            for (int j = 0; j <= pos; j++) {
                double dot = 0;
                for (int d = 0; d < HD; d++)
                    dot += (double)qh[d] * f16_round(k[s][(size_t)j * width + kvh * HD + d]);
                scores[j] = dot * scale;
                if (scores[j] > m)
                    m = scores[j];
            }
            double sum = 0;
            for (int j = 0; j <= pos; j++) {
                scores[j] = exp(scores[j] - m);
                sum += scores[j];
            }
            for (int d = 0; d < HD; d++) {
                double o = 0, vm = 0;
                for (int j = 0; j <= pos; j++) {
                    double vv = f16_round(v[s][(size_t)j * width + kvh * HD + d]);
                    o += scores[j] * vv;
                    vm = fmax(vm, fabs(vv));
                }
                o /= sum;
                vmax = fmax(vmax, vm);
                float g = got[((size_t)t * H + h) * HD + d];
                cr_assert(!isnan(g), "attention out[%d][%d][%d] not written (NaN)", t, h, d);
                worst = fmax(worst, fabs(g - o) / vm);
            }
        }
    }
    cr_log_info("attention H=%d KVH=%d hd=%d bs=%d max_context=%d batch=%d: worst error %.3g "
                "of max |V|", H, KVH, HD, BS, max_context, n_new, worst);
    cr_expect(worst <= 2e-5, "attention H=%d KVH=%d hd=%d bs=%d ctx=%d: error %g > 2e-5 of |V|",
              H, KVH, HD, BS, max_context, worst);

    rf_gpu_free(d_kc); rf_gpu_free(d_vc); rf_gpu_free(d_tables); rf_gpu_free(d_seq);
    rf_gpu_free(d_pos); rf_gpu_free(d_kb); rf_gpu_free(d_vb); rf_gpu_free(d_q);
    rf_gpu_free(d_out); rf_gpu_free(d_ws);
    for (int s = 0; s < sh->n_seqs; s++) {
        free(k[s]);
        free(v[s]);
    }
    free(k); free(v); free(perm); free(tables); free(seq_ids); free(positions); free(kb);
    free(vb); free(q); free(got); free(kc); free(vc); free(scores);
}

/* Decode: one new token per sequence, contexts 1 .. 3000, GQA 4, head_dim 128. */
Test(attention_gpu, decode_gqa4_hd128, .timeout = 300)
{
    gpu_test_require("paged attention");
    gpu_test_seed(21);
    shape_t sh = {.n_heads = 32, .n_kv_heads = 8, .head_dim = 128, .block_size = 16,
                  .n_seqs = 5, .context = {1, 17, 256, 257, 3000}, .n_new = {1, 1, 1, 1, 1}};
    run_case(&sh);
}

/* One decode token per sequence of a Llama-3.2-1B-shaped layer: few items of
 * work, so the partitions shrink to 32-128 positions; contexts on and just
 * past their edges. */
Test(attention_gpu, few_tokens_small_partitions_hd64, .timeout = 300)
{
    gpu_test_require("paged attention");
    gpu_test_seed(25);
    shape_t sh = {.n_heads = 32, .n_kv_heads = 8, .head_dim = 64, .block_size = 16,
                  .n_seqs = 4, .context = {32, 33, 190, 1025}, .n_new = {1, 1, 1, 1}};
    run_case(&sh);
}

/* A prefill chunk of 37 tokens crossing block and partition boundaries,
 * batched with decode tokens; no GQA, head_dim 64, odd block size. */
Test(attention_gpu, mixed_batch_gqa1_hd64, .timeout = 300)
{
    gpu_test_require("paged attention");
    gpu_test_seed(22);
    shape_t sh = {.n_heads = 8, .n_kv_heads = 8, .head_dim = 64, .block_size = 7,
                  .n_seqs = 3, .context = {5, 275, 530}, .n_new = {1, 37, 1}};
    run_case(&sh);
}

/* The demo model's shape: head_dim 32, GQA 4, contexts across partitions. */
Test(attention_gpu, demo_shape_gqa4_hd32, .timeout = 300)
{
    gpu_test_require("paged attention");
    gpu_test_seed(29);
    shape_t sh = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 32, .block_size = 16,
                  .n_seqs = 2, .context = {300, 5}, .n_new = {1, 5}};
    run_case(&sh);
}

/* A whole prompt from position 0 (8 tokens), GQA 4, head_dim 64. */
Test(attention_gpu, prefill_from_zero_gqa4_hd64)
{
    gpu_test_require("paged attention");
    gpu_test_seed(23);
    shape_t sh = {.n_heads = 16, .n_kv_heads = 4, .head_dim = 64, .block_size = 16,
                  .n_seqs = 2, .context = {8, 1}, .n_new = {8, 1}};
    run_case(&sh);
}

/* More query heads per KV head than one block serves (12 > 8), head_dim 256. */
Test(attention_gpu, wide_groups_hd256, .timeout = 300)
{
    gpu_test_require("paged attention");
    gpu_test_seed(24);
    shape_t sh = {.n_heads = 24, .n_kv_heads = 2, .head_dim = 256, .block_size = 32,
                  .n_seqs = 2, .context = {600, 3}, .n_new = {2, 3}};
    run_case(&sh);
}

Test(attention_gpu, rejects_bad_arguments)
{
    gpu_test_require("paged attention argument checks");
    void *d = gpu_test_poisoned(1 << 16);
    cr_expect_eq(rf_kernel_paged_attention_f32(d, d, 0, d, d, d, 4, d, d, 1, 8, 8, 80, 16, 1.0f,
                                               64, NULL, 0, NULL), RF_KERNEL_EUNSUPPORTED);
    cr_expect_eq(rf_kernel_paged_attention_f32(d, d, 0, d, d, d, 4, d, d, 1, 8, 3, 64, 16, 1.0f,
                                               64, NULL, 0, NULL), RF_KERNEL_EINVAL);
    cr_expect_eq(rf_kernel_paged_attention_f32(d, d, 0, d, d, d, 4, d, d, 1, 8, 8, 64, 16, 1.0f,
                                               65, NULL, 0, NULL), RF_KERNEL_EINVAL);
    cr_expect_eq(rf_kernel_paged_attention_f32(d, d, 0, d, d, d, 64, d, d, 1, 8, 8, 64, 16, 1.0f,
                                               1000, NULL, 0, NULL), RF_KERNEL_EINVAL);
    rf_gpu_free(d);
}
