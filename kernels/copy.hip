/* copy.hip - device-to-device copies on a stream
 *
 * For moving KV blocks (copy-on-write of a shared prefix block) and for the
 * copy-bandwidth roofline the benchmarks report.
 */
#include <stddef.h>

#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

extern "C" int rf_gpu_memcpy_d2d(void *dst, const void *src, size_t bytes,
                                 rf_gpu_stream_t stream)
{
    if ((dst == NULL || src == NULL) && bytes > 0)
        return RF_KERNEL_EINVAL;
    if (bytes == 0)
        return 0;
    RF_GPU_CHECK(hipMemcpyAsync(dst, src, bytes, hipMemcpyDeviceToDevice, (hipStream_t)stream));
    return 0;
}
