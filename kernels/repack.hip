/* repack.hip - Q4_0 / Q8_0 weights into the split layout of the GEMV
 *
 * GGUF blocks are 18 (Q4_0) or 34 (Q8_0) bytes: an F16 scale then 16 or 32
 * bytes of quants, so a block's quants sit at 2-byte alignment and a lane
 * can only read them 2 bytes at a time. The split layout (kernels.h) puts
 * each row's quants end to end (16-byte aligned blocks) and the scales
 * after all the quants. One thread per block moves its bytes.
 */
#include <stdint.h>

#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

__global__ static void repack_kernel(const uint8_t *src, uint8_t *dst, int64_t n_blocks,
                                     int qbytes)
{
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_blocks)
        return;
    const uint8_t *b = src + i * (qbytes + 2);
    const uint16_t *q = (const uint16_t *)(b + 2);
    uint16_t *out = (uint16_t *)(dst + i * qbytes);
    for (int k = 0; k < qbytes / 2; k++)
        out[k] = q[k];
    uint16_t *scales = (uint16_t *)(dst + n_blocks * qbytes);
    scales[i] = *(const uint16_t *)b;
}

extern "C" int rf_kernel_repack_split(int type, const void *src, void *dst, int64_t n_rows,
                                      int64_t n_in, rf_gpu_stream_t stream)
{
    if (src == NULL || dst == NULL || n_rows <= 0 || n_in <= 0 || n_in % 32 != 0 ||
        ((uintptr_t)src & 1u) != 0 || ((uintptr_t)dst & 15u) != 0)
        return RF_KERNEL_EINVAL;
    if (type != 2 && type != 8) /* Q4_0, Q8_0 */
        return RF_KERNEL_EUNSUPPORTED;
    const int qbytes = type == 2 ? 16 : 32;
    const int64_t n_blocks = n_rows * (n_in / 32);
    const int64_t grid = (n_blocks + 255) / 256;
    if (grid > 0x7fffffff)
        return RF_KERNEL_EINVAL;
    repack_kernel<<<(unsigned)grid, 256, 0, (hipStream_t)stream>>>(
        (const uint8_t *)src, (uint8_t *)dst, n_blocks, qbytes);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
