/* swiglu.hip - the gated FFN activation: out = silu(gate) * up, f32
 *
 * silu(g) = g / (1 + exp(-g)), written as engine/cpu/ops.c writes it so the
 * two agree to rounding. out may be gate (in place, as the CPU backend does).
 * Rows of gate and up may be interleaved in a wider buffer: the row strides
 * are in floats.
 */
#include <math.h>
#include <stdint.h>

#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

enum { SWIGLU_THREADS = 256 };

__global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t n_cols,
                              int64_t out_stride, int64_t in_stride)
{
    const int64_t row = blockIdx.y;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_cols)
        return;
    const float g = gate[row * in_stride + i];
    out[row * out_stride + i] = g / (1.0f + expf(-g)) * up[row * in_stride + i];
}

extern "C" int rf_kernel_swiglu_f32(float *out, const float *gate, const float *up,
                                    int64_t n_rows, int64_t n_cols, int64_t out_stride,
                                    int64_t in_stride, rf_gpu_stream_t stream)
{
    if (out == NULL || gate == NULL || up == NULL || n_rows < 0 || n_cols < 0)
        return RF_KERNEL_EINVAL;
    if (out_stride == 0)
        out_stride = n_cols;
    if (in_stride == 0)
        in_stride = n_cols;
    if (out_stride < n_cols || in_stride < n_cols || n_rows > 65535)
        return RF_KERNEL_EINVAL;
    if (n_rows == 0 || n_cols == 0)
        return 0;
    dim3 grid((unsigned)((n_cols + SWIGLU_THREADS - 1) / SWIGLU_THREADS), (unsigned)n_rows);
    swiglu_kernel<<<grid, SWIGLU_THREADS, 0, (hipStream_t)stream>>>(out, gate, up, n_cols,
                                                                     out_stride, in_stride);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
