/* hip_compat.h - one HIP source tree for ROCm (AMD) and CUDA (NVIDIA)
 *
 * Kernel sources include this header and use the hip* runtime names. Under
 * ROCm (hipcc) it is hip/hip_runtime.h; under nvcc it maps the hip* names the
 * project uses onto CUDA's. Add a mapping here when a kernel needs a new
 * runtime call; never include cuda_runtime.h or hip_runtime.h elsewhere.
 *
 * RF_WARP_SIZE is the hardware warp (wavefront) width of the target being
 * compiled: 64 on AMD CDNA (gfx90a, gfx940), 32 on NVIDIA. Device code must
 * take it from here, never assume 32.
 */
#ifndef RF_HIP_COMPAT_H
#define RF_HIP_COMPAT_H

#if defined(__CUDACC__)

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define RF_PLATFORM_NAME "cuda"
#define RF_WARP_SIZE 32

typedef cudaError_t hipError_t;
typedef cudaStream_t hipStream_t;
typedef cudaEvent_t hipEvent_t;
typedef cudaDeviceProp hipDeviceProp_t;

#define hipSuccess cudaSuccess
#define hipErrorNoDevice cudaErrorNoDevice
#define hipErrorInsufficientDriver cudaErrorInsufficientDriver
#define hipGetErrorString cudaGetErrorString
#define hipGetErrorName cudaGetErrorName
#define hipGetLastError cudaGetLastError
#define hipGetDeviceCount cudaGetDeviceCount
#define hipGetDeviceProperties cudaGetDeviceProperties
#define hipSetDevice cudaSetDevice
#define hipDeviceSynchronize cudaDeviceSynchronize
#define hipMalloc cudaMalloc
#define hipFree cudaFree
#define hipMemcpy cudaMemcpy
#define hipMemcpyAsync cudaMemcpyAsync
#define hipMemset cudaMemset
#define hipMemsetAsync cudaMemsetAsync
#define hipMemGetInfo cudaMemGetInfo
#define hipMemcpyHostToDevice cudaMemcpyHostToDevice
#define hipMemcpyDeviceToHost cudaMemcpyDeviceToHost
#define hipMemcpyDeviceToDevice cudaMemcpyDeviceToDevice
#define hipStreamCreate cudaStreamCreate
#define hipStreamDestroy cudaStreamDestroy
#define hipStreamSynchronize cudaStreamSynchronize
#define hipEventCreate cudaEventCreate
#define hipEventDestroy cudaEventDestroy
#define hipEventRecord cudaEventRecord
#define hipEventSynchronize cudaEventSynchronize
#define hipEventElapsedTime cudaEventElapsedTime
#define hipHostMalloc(p, n, f) cudaMallocHost(p, n)
#define hipHostFree cudaFreeHost
#define hipHostMallocDefault 0
typedef cudaGraph_t hipGraph_t;
typedef cudaGraphExec_t hipGraphExec_t;
#define hipStreamBeginCapture cudaStreamBeginCapture
#define hipStreamEndCapture cudaStreamEndCapture
#define hipStreamCaptureModeThreadLocal cudaStreamCaptureModeThreadLocal
#define hipGraphInstantiate(e, g, n, l, s) cudaGraphInstantiate(e, g, 0)
#define hipGraphLaunch cudaGraphLaunch
#define hipGraphExecDestroy cudaGraphExecDestroy
#define hipGraphDestroy cudaGraphDestroy

#elif defined(__HIPCC__) || defined(__HIP_PLATFORM_AMD__)

#include <hip/hip_fp16.h>
#include <hip/hip_runtime.h>

#define RF_PLATFORM_NAME "hip"
#if defined(__GFX8__) || defined(__GFX9__)
#define RF_WARP_SIZE 64 /* GCN and CDNA (gfx90a, gfx940): wave64 */
#else
#define RF_WARP_SIZE 32 /* RDNA (gfx10+) runs wave32 by default */
#endif

#else
#error "hip_compat.h: compile kernels with hipcc (ROCm) or nvcc (CUDA)"
#endif

#endif /* RF_HIP_COMPAT_H */
