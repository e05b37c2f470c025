/* gpu_check.h - the one checking macro for GPU runtime calls
 *
 * RF_GPU_CHECK(call) evaluates a hip* runtime call; on failure it logs the
 * call, its error name and string, file and line to stderr and returns
 * RF_KERNEL_EGPU from the enclosing function. It never aborts: one bad job
 * must fail that job, not the process.
 */
#ifndef RF_GPU_CHECK_H
#define RF_GPU_CHECK_H

#include <stdio.h>

#include "hip_compat.h"
#include "kernels.h"

#define RF_GPU_CHECK(call)                                                    \
    do {                                                                      \
        hipError_t rf_gpu_status_ = (call);                                   \
        if (rf_gpu_status_ != hipSuccess) {                                   \
            fprintf(stderr, "rocmforge: gpu: %s failed: %s (%s) at %s:%d\n",  \
                    #call, hipGetErrorName(rf_gpu_status_),                   \
                    hipGetErrorString(rf_gpu_status_), __FILE__, __LINE__);   \
            return RF_KERNEL_EGPU;                                            \
        }                                                                     \
    } while (0)

/* After a kernel launch: report a bad launch configuration at once. */
#define RF_GPU_CHECK_LAUNCH() RF_GPU_CHECK(hipGetLastError())

#endif /* RF_GPU_CHECK_H */
