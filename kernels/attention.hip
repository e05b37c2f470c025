/* attention.hip - causal GQA attention straight from the paged F16 KV cache
 *
 * For batch token t (sequence seq_ids[t], position positions[t]) and query
 * head h: out = softmax_j(q . k_j * scale) . v_j over positions j = 0..pos of
 * the sequence, K/V of kv head h / (n_heads / n_kv_heads), read through the
 * block table (layout in kv_store.hip). This is engine/cpu/attention.c on
 * F16 K/V.
 *
 * Flash-decoding split: the context is cut into partitions of ATTN_PART
 * positions. One block per (token, kv head, chunk of up to 8 query heads of
 * that kv head, partition) loads each K and V row once for all the query
 * heads it serves:
 *   1. scores: groups of head_dim / 8 lanes take a position each, every lane
 *      one 16-byte piece of the K row; dot products with the pre-scaled
 *      queries in shared memory, reduced by shuffles, into shared scores;
 *   2. per head, the partition's max and the exponentials and their sum;
 *   3. V: each thread owns two dimensions and a slice of the positions;
 *      the slices are added in shared memory.
 * A context of one partition is normalised and written out directly.
 * Longer ones write (unnormalised output, max, sum) per partition to the
 * workspace, and a second kernel rescales and adds them. Prefill uses the
 * same kernels, one query token at a time (correct; a flash-style prefill
 * kernel is future work).
 */
#include <math.h>
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { ATTN_THREADS = 128, ATTN_PART = 256, ATTN_MAX_HEADS = 8 };

/* Shared memory (floats) of one block. */
static size_t shared_floats(int head_dim)
{
    return (size_t)ATTN_MAX_HEADS * head_dim        /* q */
         + (size_t)ATTN_MAX_HEADS * ATTN_PART       /* scores, then probabilities */
         + (size_t)(2 * ATTN_THREADS / head_dim) * ATTN_MAX_HEADS * head_dim /* V slices */
         + 2 * ATTN_MAX_HEADS;                      /* max, sum */
}

template <int HD>
__global__ void __launch_bounds__(ATTN_THREADS)
paged_attention_kernel(float *out, const float *q, int64_t q_stride, const uint16_t *k_cache,
                       const uint16_t *v_cache, const int32_t *block_tables,
                       int max_blocks_per_seq, const int32_t *seq_ids, const int32_t *positions,
                       int n_heads, int n_kv_heads, int block_size, float scale, int max_parts,
                       float *ws_acc, float *ws_ml)
{
    constexpr int LANES = HD / 8;                 /* lanes per position in step 1 */
    constexpr int GROUPS = ATTN_THREADS / LANES;  /* positions per step */
    constexpr int PAIRS = HD / 2;
    constexpr int SLICES = ATTN_THREADS / PAIRS;  /* position slices in step 3 */
    extern __shared__ float shared[];
    float *q_s = shared;                                  /* [8][HD] */
    float *score_s = q_s + ATTN_MAX_HEADS * HD;           /* [8][ATTN_PART] */
    float *slice_s = score_s + ATTN_MAX_HEADS * ATTN_PART;/* [SLICES][8][HD] */
    float *max_s = slice_s + SLICES * ATTN_MAX_HEADS * HD;
    float *sum_s = max_s + ATTN_MAX_HEADS;

    const int group_size = n_heads / n_kv_heads;
    const int n_chunks = (group_size + ATTN_MAX_HEADS - 1) / ATTN_MAX_HEADS;
    const int t = blockIdx.x / (n_kv_heads * n_chunks);
    const int kvh = (blockIdx.x / n_chunks) % n_kv_heads;
    const int chunk = blockIdx.x % n_chunks;
    const int part = blockIdx.y;
    const int h0 = kvh * group_size + chunk * ATTN_MAX_HEADS;
    const int n_h = min(ATTN_MAX_HEADS, group_size - chunk * ATTN_MAX_HEADS);
    const int32_t seq = seq_ids[t], pos = positions[t];
    const int p0 = part * ATTN_PART;
    if (p0 > pos)
        return; /* the whole block: this partition is past the context */
    const int p1 = min(p0 + ATTN_PART, pos + 1);
    const int n_pos = p1 - p0;
    const int n_parts = pos / ATTN_PART + 1;
    const int32_t *table = block_tables + (int64_t)seq * max_blocks_per_seq;

    for (int i = threadIdx.x; i < n_h * HD; i += ATTN_THREADS)
        q_s[i] = q[(int64_t)t * q_stride + (int64_t)h0 * HD + i] * scale;
    __syncthreads();

    /* 1. scores */
    const int lane_in = threadIdx.x % LANES, group = threadIdx.x / LANES;
    for (int base = 0; base < n_pos; base += GROUPS) {
        const int j = base + group;
        float k[8];
        if (j < n_pos) {
            const int p = p0 + j;
            const int64_t row = ((int64_t)table[p / block_size] * n_kv_heads + kvh) * block_size +
                                p % block_size;
            const uint4 raw = *(const uint4 *)(k_cache + row * HD + lane_in * 8);
            const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
            for (int i = 0; i < 4; i++) {
                k[2 * i] = rf_half_to_float((uint16_t)(words[i] & 0xffffu));
                k[2 * i + 1] = rf_half_to_float((uint16_t)(words[i] >> 16));
            }
        } else {
#pragma unroll
            for (int i = 0; i < 8; i++)
                k[i] = 0.0f;
        }
#pragma unroll
        for (int g = 0; g < ATTN_MAX_HEADS; g++) {
            if (g < n_h) { /* uniform across the block */
                const float *qg = q_s + g * HD + lane_in * 8;
                float s = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++)
                    s += qg[i] * k[i];
                s = rf_group_sum(s, LANES);
                if (lane_in == 0 && j < n_pos)
                    score_s[g * ATTN_PART + j] = s;
            }
        }
    }
    __syncthreads();

    /* 2. softmax pieces, one warp per head */
    const int lane = threadIdx.x % RF_WARP_SIZE, warp = threadIdx.x / RF_WARP_SIZE;
    for (int g = warp; g < n_h; g += ATTN_THREADS / RF_WARP_SIZE) {
        float *sg = score_s + g * ATTN_PART;
        float m = -INFINITY;
        for (int j = lane; j < n_pos; j += RF_WARP_SIZE)
            m = fmaxf(m, sg[j]);
        m = rf_warp_max(m);
        float l = 0.0f;
        for (int j = lane; j < n_pos; j += RF_WARP_SIZE) {
            const float e = expf(sg[j] - m);
            sg[j] = e;
            l += e;
        }
        l = rf_warp_sum(l);
        if (lane == 0) {
            max_s[g] = m;
            sum_s[g] = l;
        }
    }
    __syncthreads();

    /* 3. probabilities times V */
    const int pair = threadIdx.x % PAIRS, slice = threadIdx.x / PAIRS;
    float acc[ATTN_MAX_HEADS][2];
#pragma unroll
    for (int g = 0; g < ATTN_MAX_HEADS; g++)
        acc[g][0] = acc[g][1] = 0.0f;
    for (int j = slice; j < n_pos; j += SLICES) {
        const int p = p0 + j;
        const int64_t row = ((int64_t)table[p / block_size] * n_kv_heads + kvh) * block_size +
                            p % block_size;
        const uint32_t raw = *(const uint32_t *)(v_cache + row * HD + 2 * pair);
        const float v0 = rf_half_to_float((uint16_t)(raw & 0xffffu));
        const float v1 = rf_half_to_float((uint16_t)(raw >> 16));
#pragma unroll
        for (int g = 0; g < ATTN_MAX_HEADS; g++) {
            if (g < n_h) {
                const float pr = score_s[g * ATTN_PART + j];
                acc[g][0] += pr * v0;
                acc[g][1] += pr * v1;
            }
        }
    }
#pragma unroll
    for (int g = 0; g < ATTN_MAX_HEADS; g++) {
        if (g < n_h) {
            slice_s[(slice * ATTN_MAX_HEADS + g) * HD + 2 * pair] = acc[g][0];
            slice_s[(slice * ATTN_MAX_HEADS + g) * HD + 2 * pair + 1] = acc[g][1];
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n_h * HD; i += ATTN_THREADS) {
        const int g = i / HD, d = i % HD;
        float sum = 0.0f;
#pragma unroll
        for (int s = 0; s < SLICES; s++)
            sum += slice_s[(s * ATTN_MAX_HEADS + g) * HD + d];
        const int64_t head = (int64_t)t * n_heads + h0 + g;
        if (n_parts == 1) {
            out[head * HD + d] = sum / sum_s[g];
        } else {
            const int64_t item = head * max_parts + part;
            ws_acc[item * HD + d] = sum;
            if (d == 0) {
                ws_ml[2 * item] = max_s[g];
                ws_ml[2 * item + 1] = sum_s[g];
            }
        }
    }
}

/* Combine the partitions of one (token, head); one thread per dimension. */
__global__ void attention_reduce_kernel(float *out, const int32_t *positions, int n_heads,
                                        int head_dim, int max_parts, const float *ws_acc,
                                        const float *ws_ml)
{
    const int64_t head = blockIdx.x;
    const int t = (int)(head / n_heads);
    const int n_parts = positions[t] / ATTN_PART + 1;
    if (n_parts == 1)
        return; /* written by the first kernel */
    const float *ml = ws_ml + head * max_parts * 2;
    float m = -INFINITY;
    for (int p = 0; p < n_parts && p < max_parts; p++)
        m = fmaxf(m, ml[2 * p]);
    float l = 0.0f;
    for (int p = 0; p < n_parts && p < max_parts; p++)
        l += ml[2 * p + 1] * expf(ml[2 * p] - m);
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        float sum = 0.0f;
        for (int p = 0; p < n_parts && p < max_parts; p++)
            sum += ws_acc[(head * max_parts + p) * head_dim + d] * expf(ml[2 * p] - m);
        /* A context longer than the caller's max_context was not computed. */
        out[head * head_dim + d] = n_parts > max_parts ? __uint_as_float(0x7fc00000u) : sum / l;
    }
}

static int parts_for(int max_context)
{
    return (max_context + ATTN_PART - 1) / ATTN_PART;
}

extern "C" size_t rf_kernel_paged_attention_workspace(int n_tokens, int n_heads, int head_dim,
                                                      int max_context)
{
    if (n_tokens <= 0 || n_heads <= 0 || head_dim <= 0 || max_context <= 0)
        return 0;
    const int parts = parts_for(max_context);
    if (parts <= 1)
        return 0;
    return (size_t)n_tokens * n_heads * parts * (head_dim + 2) * sizeof(float);
}

template <int HD>
static int launch(float *out, const float *q, int64_t q_stride, const void *k_cache,
                  const void *v_cache, const int32_t *block_tables, int max_blocks_per_seq,
                  const int32_t *seq_ids, const int32_t *positions, int n_tokens, int n_heads,
                  int n_kv_heads, int block_size, float scale, int max_context, void *workspace,
                  hipStream_t s)
{
    const int group_size = n_heads / n_kv_heads;
    const int n_chunks = (group_size + ATTN_MAX_HEADS - 1) / ATTN_MAX_HEADS;
    const int parts = parts_for(max_context);
    float *ws_acc = (float *)workspace;
    float *ws_ml = ws_acc == NULL ? NULL
                 : ws_acc + (int64_t)n_tokens * n_heads * parts * HD;
    const dim3 grid((unsigned)((int64_t)n_tokens * n_kv_heads * n_chunks), (unsigned)parts);
    const size_t shared = shared_floats(HD) * sizeof(float);
    paged_attention_kernel<HD><<<grid, ATTN_THREADS, shared, s>>>(
        out, q, q_stride, (const uint16_t *)k_cache, (const uint16_t *)v_cache, block_tables,
        max_blocks_per_seq, seq_ids, positions, n_heads, n_kv_heads, block_size, scale, parts,
        ws_acc, ws_ml);
    RF_GPU_CHECK_LAUNCH();
    if (parts > 1) {
        attention_reduce_kernel<<<(unsigned)((int64_t)n_tokens * n_heads), HD, 0, s>>>(
            out, positions, n_heads, HD, parts, ws_acc, ws_ml);
        RF_GPU_CHECK_LAUNCH();
    }
    return 0;
}

extern "C" int rf_kernel_paged_attention_f32(float *out, const float *q, int64_t q_stride,
                                             const void *k_cache, const void *v_cache,
                                             const int32_t *block_tables, int max_blocks_per_seq,
                                             const int32_t *seq_ids, const int32_t *positions,
                                             int n_tokens, int n_heads, int n_kv_heads,
                                             int head_dim, int block_size, float scale,
                                             int max_context, void *workspace,
                                             size_t workspace_bytes, rf_gpu_stream_t stream)
{
    if (out == NULL || q == NULL || k_cache == NULL || v_cache == NULL || block_tables == NULL ||
        seq_ids == NULL || positions == NULL || n_tokens < 0 || n_heads <= 0 ||
        n_kv_heads <= 0 || n_heads % n_kv_heads != 0 || block_size <= 0 ||
        max_blocks_per_seq <= 0 || max_context <= 0 ||
        (int64_t)max_context > (int64_t)max_blocks_per_seq * block_size)
        return RF_KERNEL_EINVAL;
    if (head_dim != 32 && head_dim != 64 && head_dim != 128 && head_dim != 256)
        return RF_KERNEL_EUNSUPPORTED;
    if (q_stride == 0)
        q_stride = (int64_t)n_heads * head_dim;
    if (q_stride < (int64_t)n_heads * head_dim)
        return RF_KERNEL_EINVAL;
    const size_t need = rf_kernel_paged_attention_workspace(n_tokens, n_heads, head_dim,
                                                            max_context);
    if (n_tokens > 0 && need > 0 && (workspace == NULL || workspace_bytes < need))
        return RF_KERNEL_EINVAL;
    if ((int64_t)n_tokens * n_kv_heads * ((n_heads / n_kv_heads + 7) / 8) > 0x7fffffff ||
        parts_for(max_context) > 65535)
        return RF_KERNEL_EINVAL;
    if (n_tokens == 0)
        return 0;
    hipStream_t s = (hipStream_t)stream;
    switch (head_dim) {
    case 32:
        return launch<32>(out, q, q_stride, k_cache, v_cache, block_tables, max_blocks_per_seq,
                          seq_ids, positions, n_tokens, n_heads, n_kv_heads, block_size, scale,
                          max_context, workspace, s);
    case 64:
        return launch<64>(out, q, q_stride, k_cache, v_cache, block_tables, max_blocks_per_seq,
                          seq_ids, positions, n_tokens, n_heads, n_kv_heads, block_size, scale,
                          max_context, workspace, s);
    case 128:
        return launch<128>(out, q, q_stride, k_cache, v_cache, block_tables, max_blocks_per_seq,
                           seq_ids, positions, n_tokens, n_heads, n_kv_heads, block_size, scale,
                           max_context, workspace, s);
    default:
        return launch<256>(out, q, q_stride, k_cache, v_cache, block_tables, max_blocks_per_seq,
                           seq_ids, positions, n_tokens, n_heads, n_kv_heads, block_size, scale,
                           max_context, workspace, s);
    }
}
