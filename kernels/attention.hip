/* attention.hip - causal GQA attention straight from the paged F16 KV cache
 *
 * For batch token t (sequence seq_ids[t], position positions[t]) and query
 * head h: out = softmax_j(q . k_j * scale) . v_j over positions j = 0..pos of
 * the sequence, K/V of kv head h / (n_heads / n_kv_heads), read through the
 * block table (layout in kv_store.hip). This is engine/cpu/attention.c on
 * F16 K/V.
 *
 * Flash-decoding split: the context is cut into partitions of `part`
 * positions (a power of two from 32 to 256: 256 when the batch gives the
 * device enough blocks anyway, smaller for a few tokens so that one decode
 * token still spreads over many blocks instead of a long serial loop in
 * eight). One block per (token, kv head, chunk of up to 8 query heads of
 * that kv head, partition) loads each K and V row once for all the query
 * heads it serves:
 *   1. scores: a thread takes a position (1-4 lanes when the partition is
 *      shorter than the block) and reads its K row in 16-byte pieces, dot
 *      products with the pre-scaled queries in shared memory into shared
 *      scores;
 *   2. per head, the partition's max and the exponentials and their sum;
 *   3. V: groups of head_dim / 8 lanes take a position each, every lane one
 *      16-byte piece (8 dimensions) of the V row; the lanes of a warp that
 *      hold the same dimensions are added by shuffles, the warps in shared
 *      memory (reusing the space of the queries and scores).
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

/* ATTN_SPLIT: the (token, query head, partition) items below which the
 * partitions shrink; ATTN_MIN_WARP: the smallest warp (shared memory is
 * sized for its warp count, ATTN_THREADS / 32). */
enum { ATTN_THREADS = 128, ATTN_PART = 256, ATTN_MIN_PART = 32, ATTN_MAX_HEADS = 8,
       ATTN_SPLIT = 2048, ATTN_MIN_WARP = 32 };

/* Shared memory (floats) of one block: max and sum per head, then either
 * the queries and scores (steps 1-3) or the warps' V sums (the end). */
static size_t shared_floats(int head_dim)
{
    const size_t qs = (size_t)ATTN_MAX_HEADS * head_dim + (size_t)ATTN_MAX_HEADS * ATTN_PART;
    const size_t red = (size_t)(ATTN_THREADS / ATTN_MIN_WARP) * ATTN_MAX_HEADS * head_dim;
    return 2 * ATTN_MAX_HEADS + (qs > red ? qs : red);
}

/* Partition size for a launch: the largest power of two from 32 to 256
 * that still gives ATTN_SPLIT items of work. */
static int part_for(int n_tokens, int n_heads, int max_context)
{
    int part = ATTN_PART;
    while (part > ATTN_MIN_PART &&
           (int64_t)n_tokens * n_heads * ((max_context + part - 1) / part) < ATTN_SPLIT)
        part /= 2;
    return part;
}

template <int HD, int LP>
__global__ void __launch_bounds__(ATTN_THREADS)
paged_attention_kernel(float *out, const float *q, int64_t q_stride, const uint16_t *k_cache,
                       const uint16_t *v_cache, const int32_t *block_tables,
                       int max_blocks_per_seq, const int32_t *seq_ids, const int32_t *positions,
                       int n_heads, int n_kv_heads, int block_size, float scale, int part_len,
                       int max_parts, float *ws_acc, float *ws_ml)
{
    constexpr int LANES = HD / 8;                 /* lanes per position (16 bytes each) */
    constexpr int GROUPS = ATTN_THREADS / LANES;  /* positions per step */
    extern __shared__ float shared[];
    float *max_s = shared;                                /* [8] */
    float *sum_s = max_s + ATTN_MAX_HEADS;                /* [8] */
    float *q_s = sum_s + ATTN_MAX_HEADS;                  /* [8][HD] */
    float *score_s = q_s + ATTN_MAX_HEADS * HD;           /* [8][ATTN_PART] */
    float *red_s = q_s;                                   /* [warps][8][HD], at the end */

    const int group_size = n_heads / n_kv_heads;
    const int n_chunks = (group_size + ATTN_MAX_HEADS - 1) / ATTN_MAX_HEADS;
    const int t = blockIdx.x / (n_kv_heads * n_chunks);
    const int kvh = (blockIdx.x / n_chunks) % n_kv_heads;
    const int chunk = blockIdx.x % n_chunks;
    const int part = blockIdx.y;
    const int h0 = kvh * group_size + chunk * ATTN_MAX_HEADS;
    const int n_h = min(ATTN_MAX_HEADS, group_size - chunk * ATTN_MAX_HEADS);
    const int32_t seq = seq_ids[t], pos = positions[t];
    const int p0 = part * part_len;
    if (p0 > pos)
        return; /* the whole block: this partition is past the context */
    const int p1 = min(p0 + part_len, pos + 1);
    const int n_pos = p1 - p0;
    const int n_parts = pos / part_len + 1;
    const int32_t *table = block_tables + (int64_t)seq * max_blocks_per_seq;

    for (int i = threadIdx.x; i < n_h * HD; i += ATTN_THREADS)
        q_s[i] = q[(int64_t)t * q_stride + (int64_t)h0 * HD + i] * scale;
    __syncthreads();

    /* 1. scores: LP lanes per position (one when the partition has a
     * position for every thread), each the dot products of HD / LP
     * dimensions with every query head, read as 16-byte pieces */
    {
        constexpr int CH = HD / 8 / LP;          /* 16-byte pieces per lane */
        constexpr int SLOTS = ATTN_THREADS / LP; /* positions per pass */
        const int sub = threadIdx.x % LP, slot = threadIdx.x / LP;
        for (int j0 = 0; j0 < n_pos; j0 += SLOTS) { /* uniform: shuffles below are safe */
            const int j = j0 + slot;
            float sc[ATTN_MAX_HEADS];
#pragma unroll
            for (int g = 0; g < ATTN_MAX_HEADS; g++)
                sc[g] = 0.0f;
            if (j < n_pos) {
                const int p = p0 + j;
                const int64_t row = ((int64_t)table[p / block_size] * n_kv_heads + kvh) *
                                    block_size + p % block_size;
                const uint4 *kr = (const uint4 *)(k_cache + row * HD) + sub * CH;
#pragma unroll
                for (int c = 0; c < CH; c++) {
                    const uint4 raw = kr[c];
                    const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
                    float k[8];
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        k[2 * i] = rf_half_to_float((uint16_t)(words[i] & 0xffffu));
                        k[2 * i + 1] = rf_half_to_float((uint16_t)(words[i] >> 16));
                    }
                    const float *qc = q_s + (sub * CH + c) * 8;
#pragma unroll
                    for (int g = 0; g < ATTN_MAX_HEADS; g++) {
                        if (g < n_h) { /* uniform across the block */
#pragma unroll
                            for (int i = 0; i < 8; i++)
                                sc[g] += qc[g * HD + i] * k[i];
                        }
                    }
                }
            }
#pragma unroll
            for (int g = 0; g < ATTN_MAX_HEADS; g++) {
                if (g < n_h) {
                    if (LP > 1)
                        sc[g] = rf_group_sum(sc[g], LP);
                    if (sub == 0 && j < n_pos)
                        score_s[g * ATTN_PART + j] = sc[g];
                }
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

    /* 3. probabilities times V: lane_in owns dimensions lane_in * 8 .. + 7
     * of every position its group takes. */
    const int lane_in = threadIdx.x % LANES, group = threadIdx.x / LANES;
    float acc[ATTN_MAX_HEADS][8];
#pragma unroll
    for (int g = 0; g < ATTN_MAX_HEADS; g++)
#pragma unroll
        for (int i = 0; i < 8; i++)
            acc[g][i] = 0.0f;
#pragma unroll 2
    for (int j = group; j < n_pos; j += GROUPS) {
        const int p = p0 + j;
        const int64_t row = ((int64_t)table[p / block_size] * n_kv_heads + kvh) * block_size +
                            p % block_size;
        const uint4 raw = *(const uint4 *)(v_cache + row * HD + lane_in * 8);
        const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
        float v[8];
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[2 * i] = rf_half_to_float((uint16_t)(words[i] & 0xffffu));
            v[2 * i + 1] = rf_half_to_float((uint16_t)(words[i] >> 16));
        }
#pragma unroll
        for (int g = 0; g < ATTN_MAX_HEADS; g++) {
            if (g < n_h) {
                const float pr = score_s[g * ATTN_PART + j];
#pragma unroll
                for (int i = 0; i < 8; i++)
                    acc[g][i] += pr * v[i];
            }
        }
    }
    /* The lanes of a warp with the same lane_in hold the same dimensions
     * (a warp is a whole number of groups): add them up by shuffles. */
#pragma unroll
    for (int g = 0; g < ATTN_MAX_HEADS; g++) {
        if (g < n_h) {
            for (int off = LANES; off < RF_WARP_SIZE; off *= 2)
#pragma unroll
                for (int i = 0; i < 8; i++)
                    acc[g][i] += rf_shfl_xor(acc[g][i], off);
        }
    }
    __syncthreads(); /* queries and scores are dead: red_s reuses their space */
    const int n_warps = ATTN_THREADS / RF_WARP_SIZE;
    if (lane < LANES) {
#pragma unroll
        for (int g = 0; g < ATTN_MAX_HEADS; g++)
            if (g < n_h)
#pragma unroll
                for (int i = 0; i < 8; i++)
                    red_s[(warp * ATTN_MAX_HEADS + g) * HD + lane_in * 8 + i] = acc[g][i];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < n_h * HD; i += ATTN_THREADS) {
        const int g = i / HD, d = i % HD;
        float sum = 0.0f;
        for (int w = 0; w < n_warps; w++)
            sum += red_s[(w * ATTN_MAX_HEADS + g) * HD + d];
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
                                        int head_dim, int part_len, int max_parts,
                                        const float *ws_acc, const float *ws_ml)
{
    const int64_t head = blockIdx.x;
    const int t = (int)(head / n_heads);
    const int n_parts = positions[t] / part_len + 1;
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

/* The workspace of a launch of n_tokens at max_context. */
static size_t workspace_for(int n_tokens, int n_heads, int head_dim, int max_context)
{
    const int part = part_for(n_tokens, n_heads, max_context);
    const int parts = (max_context + part - 1) / part;
    if (parts <= 1)
        return 0;
    return (size_t)n_tokens * n_heads * parts * (head_dim + 2) * sizeof(float);
}

/* Enough for every launch of up to n_tokens tokens and max_context: at
 * 256-position partitions the size grows with both; a launch whose
 * partitions shrank has fewer than 2 * ATTN_SPLIT items (the halving that
 * took it there started below ATTN_SPLIT). */
extern "C" size_t rf_kernel_paged_attention_workspace(int n_tokens, int n_heads, int head_dim,
                                                      int max_context)
{
    if (n_tokens <= 0 || n_heads <= 0 || head_dim <= 0 || max_context <= 0)
        return 0;
    size_t need = workspace_for(n_tokens, n_heads, head_dim, max_context);
    if (max_context > ATTN_MIN_PART) {
        size_t shrunk = (size_t)2 * ATTN_SPLIT * (head_dim + 2) * sizeof(float);
        need = need > shrunk ? need : shrunk;
    }
    return need;
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
    const int part_len = part_for(n_tokens, n_heads, max_context);
    const int parts = (max_context + part_len - 1) / part_len;
    float *ws_acc = (float *)workspace;
    float *ws_ml = ws_acc == NULL ? NULL
                 : ws_acc + (int64_t)n_tokens * n_heads * parts * HD;
    const dim3 grid((unsigned)((int64_t)n_tokens * n_kv_heads * n_chunks), (unsigned)parts);
    const size_t shared = shared_floats(HD) * sizeof(float);
#define RF_ATTN_LAUNCH(LP)                                                                      \
    paged_attention_kernel<HD, LP><<<grid, ATTN_THREADS, shared, s>>>(                          \
        out, q, q_stride, (const uint16_t *)k_cache, (const uint16_t *)v_cache, block_tables,  \
        max_blocks_per_seq, seq_ids, positions, n_heads, n_kv_heads, block_size, scale,         \
        part_len, parts, ws_acc, ws_ml)
    /* lanes per position in the scores: a position for every thread */
    if (part_len >= ATTN_THREADS)
        RF_ATTN_LAUNCH(1);
    else if (part_len >= ATTN_THREADS / 2)
        RF_ATTN_LAUNCH(2);
    else
        RF_ATTN_LAUNCH(4);
#undef RF_ATTN_LAUNCH
    RF_GPU_CHECK_LAUNCH();
    if (parts > 1) {
        attention_reduce_kernel<<<(unsigned)((int64_t)n_tokens * n_heads), HD, 0, s>>>(
            out, positions, n_heads, HD, part_len, parts, ws_acc, ws_ml);
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
    const size_t need = n_tokens > 0 ? workspace_for(n_tokens, n_heads, head_dim, max_context)
                                     : 0;
    if (n_tokens > 0 && need > 0 && (workspace == NULL || workspace_bytes < need))
        return RF_KERNEL_EINVAL;
    if ((int64_t)n_tokens * n_kv_heads * ((n_heads / n_kv_heads + 7) / 8) > 0x7fffffff ||
        (n_tokens > 0 && (max_context + part_for(n_tokens, n_heads, max_context) - 1) /
                             part_for(n_tokens, n_heads, max_context) > 65535))
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
