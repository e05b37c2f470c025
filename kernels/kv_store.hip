/* kv_store.hip - write a batch's K and V rows into the paged F16 KV cache
 *
 * Cache layout per layer: K and V are F16 [n_blocks][n_kv_heads][block_size]
 * [head_dim]; block_tables is int32 [n_seqs][max_blocks_per_seq]. Token t of
 * the batch (sequence seq_ids[t], position positions[t]) goes to block
 * block_tables[seq][pos / block_size], slot pos % block_size, rounded to
 * nearest even as engine/quant.c's rf_fp32_to_fp16. Block 0 is the reserved
 * padding block: nothing stops a table pointing there, it only must never be
 * read as data. One block of threads per (token, kv head).
 */
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { KV_THREADS = 128 };

__global__ void kv_store_kernel(uint16_t *k_cache, uint16_t *v_cache, const float *k,
                                const float *v, int64_t k_stride, int64_t v_stride,
                                const int32_t *block_tables, int max_blocks_per_seq,
                                const int32_t *seq_ids, const int32_t *positions, int n_kv_heads,
                                int head_dim, int block_size)
{
    const int t = blockIdx.x, h = blockIdx.y;
    const int32_t seq = seq_ids[t], pos = positions[t];
    const int32_t block = block_tables[(int64_t)seq * max_blocks_per_seq + pos / block_size];
    const int64_t slot = (((int64_t)block * n_kv_heads + h) * block_size + pos % block_size) *
                         head_dim;
    for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
        k_cache[slot + d] = rf_float_to_half(k[(int64_t)t * k_stride + (int64_t)h * head_dim + d]);
        v_cache[slot + d] = rf_float_to_half(v[(int64_t)t * v_stride + (int64_t)h * head_dim + d]);
    }
}

extern "C" int rf_kernel_kv_store_f16(void *k_cache, void *v_cache, const float *k,
                                      const float *v, int64_t k_stride, int64_t v_stride,
                                      const int32_t *block_tables, int max_blocks_per_seq,
                                      const int32_t *seq_ids, const int32_t *positions,
                                      int n_tokens, int n_kv_heads, int head_dim, int block_size,
                                      rf_gpu_stream_t stream)
{
    if (k_cache == NULL || v_cache == NULL || k == NULL || v == NULL || block_tables == NULL ||
        seq_ids == NULL || positions == NULL || n_tokens < 0 || n_kv_heads <= 0 ||
        n_kv_heads > 65535 || head_dim <= 0 || block_size <= 0 || max_blocks_per_seq <= 0)
        return RF_KERNEL_EINVAL;
    const int64_t width = (int64_t)n_kv_heads * head_dim;
    if (k_stride == 0)
        k_stride = width;
    if (v_stride == 0)
        v_stride = width;
    if (k_stride < width || v_stride < width)
        return RF_KERNEL_EINVAL;
    if (n_tokens == 0)
        return 0;
    dim3 grid((unsigned)n_tokens, (unsigned)n_kv_heads);
    kv_store_kernel<<<grid, KV_THREADS, 0, (hipStream_t)stream>>>(
        (uint16_t *)k_cache, (uint16_t *)v_cache, k, v, k_stride, v_stride, block_tables,
        max_blocks_per_seq, seq_ids, positions, n_kv_heads, head_dim, block_size);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
