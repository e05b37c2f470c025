/* device_util.h - device helpers shared by the kernel sources
 *
 * Half-precision conversions on raw bit patterns (the engine stores halves
 * as uint16_t), warp reductions that take the width from RF_WARP_SIZE, and
 * the ggml type ids and block sizes the kernels read. Kernels cannot include
 * engine headers, so the block layouts are restated here as byte offsets;
 * engine/quant.h is the authority (its static_asserts pin the sizes).
 * Include only from .hip files.
 */
#ifndef RF_DEVICE_UTIL_H
#define RF_DEVICE_UTIL_H

#include <stdint.h>

#include "hip_compat.h"

/* ggml type ids (engine/quant.h rf_type_t) */
enum {
    RF_DEV_F32 = 0,
    RF_DEV_F16 = 1,
    RF_DEV_Q4_0 = 2,
    RF_DEV_Q8_0 = 8,
    RF_DEV_Q4_K = 12,
    RF_DEV_Q6_K = 14,
    RF_DEV_BF16 = 30,
};

/* Elements and bytes per block. Q4_0: d, qs[16]. Q8_0: d, qs[32].
 * Q4_K: d, dmin, scales[12], qs[128]. Q6_K: ql[128], qh[64], scales[16], d. */
enum {
    RF_DEV_Q4_0_ELEMS = 32, RF_DEV_Q4_0_BYTES = 18,
    RF_DEV_Q8_0_ELEMS = 32, RF_DEV_Q8_0_BYTES = 34,
    RF_DEV_QK_K = 256,
    RF_DEV_Q4_K_BYTES = 144,
    RF_DEV_Q6_K_BYTES = 210,
    RF_DEV_Q6_K_QH = 128, RF_DEV_Q6_K_SCALES = 192, RF_DEV_Q6_K_D = 208,
};

__device__ static inline float rf_half_to_float(uint16_t bits)
{
    return __half2float(__ushort_as_half(bits));
}

/* Round to nearest even, as engine/quant.c's rf_fp32_to_fp16. */
__device__ static inline uint16_t rf_float_to_half(float value)
{
    return __half_as_ushort(__float2half_rn(value));
}

__device__ static inline float rf_bf16_to_float(uint16_t bits)
{
    return __uint_as_float((uint32_t)bits << 16);
}

__device__ static inline uint16_t rf_load_u16(const uint8_t *p)
{
    return *(const uint16_t *)p; /* p is 2-byte aligned in every layout read */
}

/* A small unsigned integer (< 2^23) to float without the slow int-to-float
 * unit: 2^23 + v has v as its mantissa, and the subtraction is exact. */
__device__ static inline float rf_small_u_to_float(uint32_t v)
{
    return __uint_as_float(0x4b000000u | v) - 8388608.0f;
}

__device__ static inline float rf_shfl_xor(float value, int mask)
{
#if defined(__CUDACC__)
    return __shfl_xor_sync(0xffffffffu, value, mask);
#else
    return __shfl_xor(value, mask);
#endif
}

/* Sum over the whole warp (every lane gets the result). */
__device__ static inline float rf_warp_sum(float value)
{
#pragma unroll
    for (int mask = RF_WARP_SIZE / 2; mask > 0; mask >>= 1)
        value += rf_shfl_xor(value, mask);
    return value;
}

__device__ static inline float rf_warp_max(float value)
{
#pragma unroll
    for (int mask = RF_WARP_SIZE / 2; mask > 0; mask >>= 1)
        value = fmaxf(value, rf_shfl_xor(value, mask));
    return value;
}

/* Sum over aligned groups of `width` lanes (a power of two <= the warp). */
__device__ static inline float rf_group_sum(float value, int width)
{
    for (int mask = width / 2; mask > 0; mask >>= 1)
        value += rf_shfl_xor(value, mask);
    return value;
}

/* Sum over the block; `scratch` holds one float per warp. Every thread must
 * call it; every thread gets the result. */
__device__ static inline float rf_block_sum(float value, float *scratch)
{
    const int lane = threadIdx.x % RF_WARP_SIZE, warp = threadIdx.x / RF_WARP_SIZE;
    const int n_warps = (blockDim.x + RF_WARP_SIZE - 1) / RF_WARP_SIZE;
    value = rf_warp_sum(value);
    __syncthreads(); /* scratch may still be read by a previous call */
    if (lane == 0)
        scratch[warp] = value;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < n_warps; w++)
        total += scratch[w];
    return total;
}

#endif /* RF_DEVICE_UTIL_H */
