/* gemm.hip - dense matmuls of many tokens through the vendor BLAS
 *
 * For prefill chunks and large decode batches the GEMV kernels of
 * matmul.hip re-read the weight once per 8 tokens; a GEMM reads it once
 * and runs on the tensor cores. Weights stay in their F16 / BF16 type (F32
 * weights use the f32 GEMM); the f32 activations are converted to the
 * weight's 16-bit type first (into the caller's workspace), and the product
 * accumulates in f32 into f32 outputs.
 *
 * The vendor library is cuBLAS under nvcc. Debian's ROCm has no hipBLAS,
 * so a HIP build answers RF_KERNEL_EUNSUPPORTED from rf_gpu_blas_open and
 * the engine keeps the GEMV kernels for every batch (rf_gpu_blas_available
 * says which at run time).
 *
 * Row-major y[t][o] = sum_i x[t][i] W[o][i] is, in BLAS's column-major
 * terms, Y^T (n_out x n_tokens) = op_T(W) (n_out x n_in) * X^T (n_in x
 * n_tokens), with W read as an n_in x n_out column-major matrix.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

#if defined(__CUDACC__)
#include <cublas_v2.h>
#include <cuda_bf16.h>
#endif

struct rf_gpu_blas {
#if defined(__CUDACC__)
    cublasHandle_t handle;
#else
    int unused;
#endif
};

#if defined(__CUDACC__)
/* f32 -> F16 or BF16 bit patterns, n elements. */
__global__ static void to_half_kernel(uint16_t *dst, const float *src, int64_t n, int bf16)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    if (bf16) {
        __nv_bfloat16 h = __float2bfloat16_rn(src[i]);
        dst[i] = *(const uint16_t *)&h;
    } else {
        __half h = __float2half_rn(src[i]);
        dst[i] = *(const uint16_t *)&h;
    }
}
#endif

extern "C" int rf_gpu_blas_available(void)
{
#if defined(__CUDACC__)
    return 1;
#else
    return 0;
#endif
}

extern "C" int rf_gpu_blas_open(rf_gpu_blas_t **out)
{
    *out = NULL;
#if defined(__CUDACC__)
    rf_gpu_blas_t *b = (rf_gpu_blas_t *)calloc(1, sizeof *b);
    if (b == NULL)
        return RF_KERNEL_EINVAL;
    cublasStatus_t st = cublasCreate(&b->handle);
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "rocmforge: cublasCreate failed (status %d) at %s:%d\n", (int)st,
                __FILE__, __LINE__);
        free(b);
        return RF_KERNEL_EGPU;
    }
    *out = b;
    return 0;
#else
    return RF_KERNEL_EUNSUPPORTED;
#endif
}

extern "C" void rf_gpu_blas_close(rf_gpu_blas_t *b)
{
    if (b == NULL)
        return;
#if defined(__CUDACC__)
    cublasDestroy(b->handle);
#endif
    free(b);
}

extern "C" size_t rf_kernel_gemm_workspace(int64_t n_in, int n_tokens)
{
    return (size_t)n_in * (size_t)n_tokens * sizeof(uint16_t);
}

extern "C" int rf_kernel_gemm_f32(rf_gpu_blas_t *blas, int type, const void *weight,
                                  const float *x, float *y, int64_t n_out, int64_t n_in,
                                  int n_tokens, void *workspace, size_t workspace_bytes,
                                  rf_gpu_stream_t stream)
{
    if (blas == NULL || weight == NULL || x == NULL || y == NULL || n_out <= 0 || n_in <= 0 ||
        n_tokens <= 0 || n_out > INT32_MAX || n_in > INT32_MAX)
        return RF_KERNEL_EINVAL;
    if (type != RF_DEV_F16 && type != RF_DEV_BF16 && type != RF_DEV_F32)
        return RF_KERNEL_EUNSUPPORTED;
#if defined(__CUDACC__)
    cublasStatus_t st = cublasSetStream(blas->handle, (cudaStream_t)stream);
    const float one = 1.0f, zero = 0.0f;
    if (st == CUBLAS_STATUS_SUCCESS && type == RF_DEV_F32) {
        st = cublasSgemm(blas->handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)n_out, n_tokens, (int)n_in,
                         &one, (const float *)weight, (int)n_in, x, (int)n_in, &zero, y,
                         (int)n_out);
    } else if (st == CUBLAS_STATUS_SUCCESS) {
        if (workspace == NULL || workspace_bytes < rf_kernel_gemm_workspace(n_in, n_tokens))
            return RF_KERNEL_EINVAL;
        int64_t n = n_in * (int64_t)n_tokens;
        int bf16 = type == RF_DEV_BF16;
        to_half_kernel<<<(unsigned)((n + 255) / 256), 256, 0, (hipStream_t)stream>>>(
            (uint16_t *)workspace, x, n, bf16);
        RF_GPU_CHECK_LAUNCH();
        cudaDataType_t t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
        st = cublasGemmEx(blas->handle, CUBLAS_OP_T, CUBLAS_OP_N, (int)n_out, n_tokens,
                          (int)n_in, &one, weight, t, (int)n_in, workspace, t, (int)n_in,
                          &zero, y, CUDA_R_32F, (int)n_out, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT);
    }
    if (st != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "rocmforge: cuBLAS GEMM (%lld x %lld, %d tokens) failed with status %d "
                "at %s:%d\n", (long long)n_out, (long long)n_in, n_tokens, (int)st, __FILE__,
                __LINE__);
        return RF_KERNEL_EGPU;
    }
    return 0;
#else
    (void)workspace;
    (void)workspace_bytes;
    (void)stream;
    return RF_KERNEL_EUNSUPPORTED;
#endif
}
