/* dequantize.hip - weights in a ggml block format to float32 on the device
 *
 * One thread per output element: it reads its block's scale and its own
 * quant. Block layouts are ggml's (see engine/quant.h); they are read here
 * as bytes at fixed offsets, because the kernels cannot include engine
 * headers. The fp16 scale is decoded with integer arithmetic so the same code
 * runs under ROCm and CUDA without either half-precision API.
 */
#include <stdint.h>

#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { TYPE_F16 = 1, TYPE_Q4_0 = 2, TYPE_Q8_0 = 8, TYPE_BF16 = 30 };
enum { Q4_0_BLOCK = 32, Q4_0_BYTES = 18, Q8_0_BLOCK = 32, Q8_0_BYTES = 34 };

__device__ static inline float fp16_bits_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) /* inf or NaN */
        return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24 is exact in float32 */
        float value = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -value : value;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

__device__ static inline uint16_t load_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

__global__ void dequantize_f16_kernel(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        dst[i] = fp16_bits_to_f32(src[i]);
}

__global__ void dequantize_bf16_kernel(const uint16_t *src, float *dst, int64_t n)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        dst[i] = __uint_as_float((uint32_t)src[i] << 16);
}

__global__ void dequantize_q8_0_kernel(const uint8_t *src, float *dst, int64_t n)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const uint8_t *block = src + (i / Q8_0_BLOCK) * Q8_0_BYTES;
    float d = fp16_bits_to_f32(load_u16(block));
    dst[i] = d * (float)(int8_t)block[2 + i % Q8_0_BLOCK];
}

/* Q4_0: byte j of qs holds element j (low nibble) and j + 16 (high nibble),
 * each stored as q + 8. */
__global__ void dequantize_q4_0_kernel(const uint8_t *src, float *dst, int64_t n)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    const uint8_t *block = src + (i / Q4_0_BLOCK) * Q4_0_BYTES;
    int j = (int)(i % Q4_0_BLOCK);
    uint8_t byte = block[2 + (j & 15)];
    int q = (j < 16 ? (byte & 0x0f) : (byte >> 4)) - 8;
    dst[i] = fp16_bits_to_f32(load_u16(block)) * (float)q;
}

extern "C" int rf_kernel_dequantize_f32(int type, const void *src, float *dst, int64_t n,
                                        rf_gpu_stream_t stream)
{
    const int threads = 256;
    hipStream_t s = (hipStream_t)stream;
    if (n < 0)
        return RF_KERNEL_EINVAL;
    if (n == 0)
        return 0;
    dim3 grid((unsigned)((n + threads - 1) / threads));
    switch (type) {
    case TYPE_F16:
        dequantize_f16_kernel<<<grid, threads, 0, s>>>((const uint16_t *)src, dst, n);
        break;
    case TYPE_BF16:
        dequantize_bf16_kernel<<<grid, threads, 0, s>>>((const uint16_t *)src, dst, n);
        break;
    case TYPE_Q8_0:
        if (n % Q8_0_BLOCK != 0)
            return RF_KERNEL_EINVAL;
        dequantize_q8_0_kernel<<<grid, threads, 0, s>>>((const uint8_t *)src, dst, n);
        break;
    case TYPE_Q4_0:
        if (n % Q4_0_BLOCK != 0)
            return RF_KERNEL_EINVAL;
        dequantize_q4_0_kernel<<<grid, threads, 0, s>>>((const uint8_t *)src, dst, n);
        break;
    default:
        return RF_KERNEL_EUNSUPPORTED;
    }
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
