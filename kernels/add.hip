/* add.hip - elementwise f32 addition and row-broadcast bias add
 *
 * rf_kernel_add_f32: out = a + b over n floats (out may be a or b).
 * rf_kernel_add_bias_f32: x[row][i] += bias[i], for the outputs of the BLAS
 * path, which has no bias epilogue of its own (the GEMV kernels take their
 * bias directly).
 */
#include <stdint.h>

#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { ADD_THREADS = 256 };

__global__ void add_kernel(float *out, const float *a, const float *b, int64_t n)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        out[i] = a[i] + b[i];
}

__global__ void add_bias_kernel(float *x, const float *bias, int64_t n_cols)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n_cols)
        x[(int64_t)blockIdx.y * n_cols + i] += bias[i];
}

extern "C" int rf_kernel_add_f32(float *out, const float *a, const float *b, int64_t n,
                                 rf_gpu_stream_t stream)
{
    if (out == NULL || a == NULL || b == NULL || n < 0)
        return RF_KERNEL_EINVAL;
    if (n == 0)
        return 0;
    add_kernel<<<(unsigned)((n + ADD_THREADS - 1) / ADD_THREADS), ADD_THREADS, 0,
                 (hipStream_t)stream>>>(out, a, b, n);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}

extern "C" int rf_kernel_add_bias_f32(float *x, const float *bias, int64_t n_rows,
                                      int64_t n_cols, rf_gpu_stream_t stream)
{
    if (x == NULL || bias == NULL || n_rows < 0 || n_cols < 0 || n_rows > 65535)
        return RF_KERNEL_EINVAL;
    if (n_rows == 0 || n_cols == 0)
        return 0;
    dim3 grid((unsigned)((n_cols + ADD_THREADS - 1) / ADD_THREADS), (unsigned)n_rows);
    add_bias_kernel<<<grid, ADD_THREADS, 0, (hipStream_t)stream>>>(x, bias, n_cols);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
