/* get_rows.hip - embedding gather: rows of a weight picked by token id, to f32
 *
 * out[t][:] = dequantize(weight row ids[t]) for F32, F16, BF16, Q8_0, Q4_0,
 * Q4_K and Q6_K weights. One thread per output element: it decodes its own
 * element from its block (the gather moves a few rows per token, so per-element
 * decoding costs nothing that matters). An id outside [0, n_rows) cannot be
 * reported from the device; its row is filled with NaN so the error shows in
 * the logits instead of reading out of bounds. The engine checks ids first.
 */
#include <math.h>
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { GATHER_THREADS = 256 };

template <int TYPE>
__device__ static inline float element(const uint8_t *row, int64_t j)
{
    if (TYPE == RF_DEV_F32)
        return ((const float *)row)[j];
    if (TYPE == RF_DEV_F16)
        return rf_half_to_float(((const uint16_t *)row)[j]);
    if (TYPE == RF_DEV_BF16)
        return rf_bf16_to_float(((const uint16_t *)row)[j]);
    if (TYPE == RF_DEV_Q8_0) {
        const uint8_t *b = row + (j / RF_DEV_Q8_0_ELEMS) * RF_DEV_Q8_0_BYTES;
        return rf_half_to_float(rf_load_u16(b)) * (float)(int8_t)b[2 + j % RF_DEV_Q8_0_ELEMS];
    }
    if (TYPE == RF_DEV_Q4_0) {
        const uint8_t *b = row + (j / RF_DEV_Q4_0_ELEMS) * RF_DEV_Q4_0_BYTES;
        const int k = (int)(j % RF_DEV_Q4_0_ELEMS);
        const uint8_t byte = b[2 + (k & 15)];
        return rf_half_to_float(rf_load_u16(b)) * (float)((k < 16 ? byte & 15 : byte >> 4) - 8);
    }
    if (TYPE == RF_DEV_Q4_K) {
        const uint8_t *b = row + (j / RF_DEV_QK_K) * RF_DEV_Q4_K_BYTES;
        const int k = (int)(j % RF_DEV_QK_K), sub = k / 32;
        const uint8_t *s = b + 4;
        int sc, m;
        if (sub < 4) {
            sc = s[sub] & 63;
            m = s[sub + 4] & 63;
        } else {
            sc = (s[sub + 4] & 15) | (s[sub - 4] >> 6) << 4;
            m = (s[sub + 4] >> 4) | (s[sub] >> 6) << 4;
        }
        const uint8_t byte = b[16 + (sub / 2) * 32 + k % 32];
        const int q = (sub % 2) ? byte >> 4 : byte & 15;
        return rf_half_to_float(rf_load_u16(b)) * (float)sc * (float)q -
               rf_half_to_float(rf_load_u16(b + 2)) * (float)m;
    }
    /* Q6_K */
    const uint8_t *b = row + (j / RF_DEV_QK_K) * RF_DEV_Q6_K_BYTES;
    const int k = (int)(j % RF_DEV_QK_K);
    const int half = k / 128, run = (k % 128) / 32, l = k % 32;
    const uint8_t low_byte = b[half * 64 + (run & 1) * 32 + l];
    const int low = run < 2 ? low_byte & 15 : low_byte >> 4;
    const int high = (b[RF_DEV_Q6_K_QH + half * 32 + l] >> (2 * run)) & 3;
    const float d = rf_half_to_float(rf_load_u16(b + RF_DEV_Q6_K_D));
    return d * (float)(int8_t)b[RF_DEV_Q6_K_SCALES + k / 16] * (float)((low | high << 4) - 32);
}

template <int TYPE>
__global__ void get_rows_kernel(const uint8_t *weight, int64_t row_bytes, int64_t n_rows,
                                int64_t n_cols, const int32_t *ids, float *out)
{
    const int64_t t = blockIdx.y;
    const int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= n_cols)
        return;
    const int32_t id = ids[t];
    float value;
    if (id < 0 || id >= n_rows)
        value = __uint_as_float(0x7fc00000u); /* NaN: see the header */
    else
        value = element<TYPE>(weight + (int64_t)id * row_bytes, j);
    out[t * n_cols + j] = value;
}

extern "C" int rf_kernel_get_rows_f32(int type, const void *weight, int64_t n_rows,
                                      int64_t n_cols, const int32_t *ids, int n_ids, float *out,
                                      rf_gpu_stream_t stream)
{
    int64_t block_elems, block_bytes;
    switch (type) {
    case RF_DEV_F32: block_elems = 1; block_bytes = 4; break;
    case RF_DEV_F16:
    case RF_DEV_BF16: block_elems = 1; block_bytes = 2; break;
    case RF_DEV_Q8_0: block_elems = RF_DEV_Q8_0_ELEMS; block_bytes = RF_DEV_Q8_0_BYTES; break;
    case RF_DEV_Q4_0: block_elems = RF_DEV_Q4_0_ELEMS; block_bytes = RF_DEV_Q4_0_BYTES; break;
    case RF_DEV_Q4_K: block_elems = RF_DEV_QK_K; block_bytes = RF_DEV_Q4_K_BYTES; break;
    case RF_DEV_Q6_K: block_elems = RF_DEV_QK_K; block_bytes = RF_DEV_Q6_K_BYTES; break;
    default: return RF_KERNEL_EUNSUPPORTED;
    }
    if (weight == NULL || ids == NULL || out == NULL || n_rows <= 0 || n_cols <= 0 ||
        n_ids < 0 || n_ids > 65535 || n_cols % block_elems != 0)
        return RF_KERNEL_EINVAL;
    if (n_ids == 0)
        return 0;
    const int64_t row_bytes = n_cols / block_elems * block_bytes;
    const uint8_t *w = (const uint8_t *)weight;
    dim3 grid((unsigned)((n_cols + GATHER_THREADS - 1) / GATHER_THREADS), (unsigned)n_ids);
    hipStream_t s = (hipStream_t)stream;
    switch (type) {
    case RF_DEV_F32:
        get_rows_kernel<RF_DEV_F32><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    case RF_DEV_F16:
        get_rows_kernel<RF_DEV_F16><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    case RF_DEV_BF16:
        get_rows_kernel<RF_DEV_BF16><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    case RF_DEV_Q8_0:
        get_rows_kernel<RF_DEV_Q8_0><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    case RF_DEV_Q4_0:
        get_rows_kernel<RF_DEV_Q4_0><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    case RF_DEV_Q4_K:
        get_rows_kernel<RF_DEV_Q4_K><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    default:
        get_rows_kernel<RF_DEV_Q6_K><<<grid, GATHER_THREADS, 0, s>>>(w, row_bytes, n_rows, n_cols, ids, out);
        break;
    }
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
