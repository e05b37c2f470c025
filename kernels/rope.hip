/* rope.hip - rotary position embedding, in place, normal and NeoX orderings
 *
 * x is [n_tokens][n_heads][head_dim] f32 (a token's rows token_stride floats
 * apart); token t is rotated by positions[t]. Pair i (i < n_rot / 2) is
 * (2i, 2i + 1) in the normal ordering and (i, i + n_rot / 2) in NeoX's, by
 * theta_i = pos * freq_scale * freq_base^(-2i / n_rot) / freq_factors[i]
 * (freq_factors optional: Llama 3's rope_freqs). Dimensions from n_rot on are
 * left alone. This is engine/cpu/ops.c's rf__cpu_rope: theta, its cosine and
 * sine are computed in double as there, because a float theta at position
 * 3000 is already off by 2e-4 radians.
 *
 * One block per token: the first n_rot / 2 threads compute the token's
 * cosines and sines into shared memory, then the block rotates every head.
 * The engine computes the table once per step (rf_kernel_rope_table_f32: a
 * thread per cosine-sine pair) and applies it to Q and K of every layer
 * (rf_kernel_rope_apply_f32): the double-precision trigonometry, a long
 * serial chain in each block, then runs once instead of twice per layer.
 */
#include <math.h>
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { ROPE_THREADS = 256, ROPE_MAX_HALF = 512 };

/* One rotation, its roundings pinned (no contraction left to the compiler),
 * so that both kernels below give the same bits. */
__device__ static inline void rotate(float &x0, float &x1, float c, float s)
{
    const float a = __fmaf_rn(x0, c, -__fmul_rn(x1, s));
    const float b = __fmaf_rn(x0, s, __fmul_rn(x1, c));
    x0 = a;
    x1 = b;
}

__global__ void __launch_bounds__(ROPE_THREADS)
rope_kernel(float *x, const int32_t *positions, int n_heads, int head_dim, int n_rot,
            int64_t token_stride, int neox, float freq_base, float freq_scale,
            const float *freq_factors)
{
    __shared__ float cos_s[ROPE_MAX_HALF], sin_s[ROPE_MAX_HALF];
    const int t = blockIdx.x;
    const int half = n_rot / 2;
    const double pos = (double)positions[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        double theta = pos * (double)freq_scale * pow((double)freq_base, -2.0 * i / n_rot);
        if (freq_factors != NULL)
            theta /= (double)freq_factors[i];
        cos_s[i] = (float)cos(theta);
        sin_s[i] = (float)sin(theta);
    }
    __syncthreads();
    float *xt = x + (int64_t)t * token_stride;
    for (int item = threadIdx.x; item < n_heads * half; item += blockDim.x) {
        const int h = item / half, i = item % half;
        float *head = xt + (int64_t)h * head_dim;
        const int a = neox ? i : 2 * i;
        const int b = neox ? i + half : 2 * i + 1;
        float x0 = head[a], x1 = head[b];
        rotate(x0, x1, cos_s[i], sin_s[i]);
        head[a] = x0;
        head[b] = x1;
    }
}

extern "C" int rf_kernel_rope_f32(float *x, const int32_t *positions, int n_tokens, int n_heads,
                                  int head_dim, int n_rot, int64_t token_stride, int neox,
                                  float freq_base, float freq_scale, const float *freq_factors,
                                  rf_gpu_stream_t stream)
{
    if (x == NULL || positions == NULL || n_tokens < 0 || n_heads <= 0 || head_dim <= 0)
        return RF_KERNEL_EINVAL;
    if (n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim || n_rot / 2 > ROPE_MAX_HALF)
        return RF_KERNEL_EINVAL;
    if (!(freq_base > 0.0f))
        return RF_KERNEL_EINVAL;
    if (token_stride == 0)
        token_stride = (int64_t)n_heads * head_dim;
    if (token_stride < (int64_t)n_heads * head_dim)
        return RF_KERNEL_EINVAL;
    if (n_tokens == 0)
        return 0;
    rope_kernel<<<(unsigned)n_tokens, ROPE_THREADS, 0, (hipStream_t)stream>>>(
        x, positions, n_heads, head_dim, n_rot, token_stride, neox != 0, freq_base, freq_scale,
        freq_factors);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}

/* ---- the table and the rotation apart ---- */

__global__ void rope_table_kernel(float *table, const int32_t *positions, int n_tokens,
                                  int n_rot, float freq_base, float freq_scale,
                                  const float *freq_factors)
{
    const int half = n_rot / 2;
    const int64_t item = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (item >= (int64_t)n_tokens * half)
        return;
    const int t = (int)(item / half), i = (int)(item % half);
    const double pos = (double)positions[t];
    double theta = pos * (double)freq_scale * pow((double)freq_base, -2.0 * i / n_rot);
    if (freq_factors != NULL)
        theta /= (double)freq_factors[i];
    table[(int64_t)t * n_rot + i] = (float)cos(theta);
    table[(int64_t)t * n_rot + half + i] = (float)sin(theta);
}

__global__ void __launch_bounds__(ROPE_THREADS)
rope_apply_kernel(float *x, const float *table, int n_heads, int head_dim, int n_rot,
                  int64_t token_stride, int neox)
{
    const int t = blockIdx.x;
    const int half = n_rot / 2;
    const float *cs = table + (int64_t)t * n_rot;
    float *xt = x + (int64_t)t * token_stride;
    /* Four pairs a pass, all loaded before any is stored: in place, a store
     * between loads would make each load wait for the one before. */
    const int n_items = n_heads * half;
    for (int base = 0; base < n_items; base += 4 * ROPE_THREADS) {
        float x0[4], x1[4], c[4], sn[4];
        int off_a[4], off_b[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int item = base + k * ROPE_THREADS + threadIdx.x;
            if (item < n_items) {
                const int h = item / half, i = item % half;
                off_a[k] = h * head_dim + (neox ? i : 2 * i);
                off_b[k] = h * head_dim + (neox ? i + half : 2 * i + 1);
                x0[k] = xt[off_a[k]];
                x1[k] = xt[off_b[k]];
                c[k] = cs[i];
                sn[k] = cs[half + i];
            }
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            if (base + k * ROPE_THREADS + (int)threadIdx.x < n_items) {
                rotate(x0[k], x1[k], c[k], sn[k]);
                xt[off_a[k]] = x0[k];
                xt[off_b[k]] = x1[k];
            }
        }
    }
}

extern "C" int rf_kernel_rope_table_f32(float *table, const int32_t *positions, int n_tokens,
                                        int n_rot, float freq_base, float freq_scale,
                                        const float *freq_factors, rf_gpu_stream_t stream)
{
    if (table == NULL || positions == NULL || n_tokens < 0 || n_rot <= 0 || n_rot % 2 != 0 ||
        !(freq_base > 0.0f))
        return RF_KERNEL_EINVAL;
    const int64_t items = (int64_t)n_tokens * (n_rot / 2);
    if (items == 0)
        return 0;
    rope_table_kernel<<<(unsigned)((items + 127) / 128), 128, 0, (hipStream_t)stream>>>(
        table, positions, n_tokens, n_rot, freq_base, freq_scale, freq_factors);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}

extern "C" int rf_kernel_rope_apply_f32(float *x, const float *table, int n_tokens, int n_heads,
                                        int head_dim, int n_rot, int64_t token_stride, int neox,
                                        rf_gpu_stream_t stream)
{
    if (x == NULL || table == NULL || n_tokens < 0 || n_heads <= 0 || head_dim <= 0 ||
        n_rot <= 0 || n_rot % 2 != 0 || n_rot > head_dim)
        return RF_KERNEL_EINVAL;
    if (token_stride == 0)
        token_stride = (int64_t)n_heads * head_dim;
    if (token_stride < (int64_t)n_heads * head_dim)
        return RF_KERNEL_EINVAL;
    if (n_tokens == 0)
        return 0;
    rope_apply_kernel<<<(unsigned)n_tokens, ROPE_THREADS, 0, (hipStream_t)stream>>>(
        x, table, n_heads, head_dim, n_rot, token_stride, neox != 0);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
