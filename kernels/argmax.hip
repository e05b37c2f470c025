/* argmax.hip - greedy choice and its log-probability on the device
 *
 * For greedy requests without penalties, bias or top logprobs, the host
 * needs only the chosen token and its log-probability, not the logits row:
 * one block per row finds the largest logit (the lowest id on ties, as the
 * CPU sampler does) and log(sum(exp(logit - max))), and 8 bytes per row
 * cross to the host instead of n_vocab floats.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

#define ARGMAX_THREADS 256

__global__ static void argmax_kernel(const float *logits, const int32_t *rows, int64_t n_vocab,
                                     int32_t *out_token, float *out_logprob)
{
    __shared__ float s_val[ARGMAX_THREADS];
    __shared__ int32_t s_idx[ARGMAX_THREADS];
    const int64_t row = rows != NULL ? rows[blockIdx.x] : (int64_t)blockIdx.x;
    const float *x = logits + row * n_vocab;
    float best = -INFINITY;
    int32_t best_i = INT32_MAX;
    for (int64_t i = threadIdx.x; i < n_vocab; i += blockDim.x) {
        float v = x[i];
        if (v > best) { /* strided ascending: the first hit of a tie is the lowest id */
            best = v;
            best_i = (int32_t)i;
        }
    }
    s_val[threadIdx.x] = best;
    s_idx[threadIdx.x] = best_i;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) {
            float ov = s_val[threadIdx.x + stride];
            int32_t oi = s_idx[threadIdx.x + stride];
            if (ov > s_val[threadIdx.x] || (ov == s_val[threadIdx.x] && oi < s_idx[threadIdx.x])) {
                s_val[threadIdx.x] = ov;
                s_idx[threadIdx.x] = oi;
            }
        }
        __syncthreads();
    }
    const float max = s_val[0];
    const int32_t arg = s_idx[0];
    __syncthreads();
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < n_vocab; i += blockDim.x)
        sum += expf(x[i] - max);
    s_val[threadIdx.x] = sum;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride)
            s_val[threadIdx.x] += s_val[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out_token[blockIdx.x] = arg;
        out_logprob[blockIdx.x] = -logf(s_val[0]); /* logit(arg) - max - log(sum) */
    }
}

extern "C" int rf_kernel_argmax_f32(const float *logits, const int32_t *rows, int n_rows,
                                    int64_t n_vocab, int32_t *out_token, float *out_logprob,
                                    rf_gpu_stream_t stream)
{
    if (logits == NULL || out_token == NULL || out_logprob == NULL || n_rows < 0 ||
        n_vocab <= 0 || n_rows > 65535)
        return RF_KERNEL_EINVAL;
    if (n_rows == 0)
        return 0;
    argmax_kernel<<<(unsigned)n_rows, ARGMAX_THREADS, 0, (hipStream_t)stream>>>(
        logits, rows, n_vocab, out_token, out_logprob);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
