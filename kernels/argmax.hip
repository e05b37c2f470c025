/* argmax.hip - greedy choice and its log-probability on the device
 *
 * For greedy requests without penalties, bias or top logprobs, the host
 * needs only the chosen token and its log-probability, not the logits row:
 * one block per row finds the largest logit (the lowest id on ties, as the
 * CPU sampler does) and log(sum(exp(logit - max))) in one pass over the row
 * (a running max whose sum is rescaled when the max moves), and 8 bytes per
 * row cross to the host instead of n_vocab floats.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

#define ARGMAX_THREADS 512

/* Running (max, index of its first occurrence, sum of exp(x - max)) of a
 * stretch of the row; merging two rescales the smaller one's sum. */
struct arg_state {
    float max;
    int32_t idx;
    float sum;
};

__device__ static inline void arg_add(arg_state &s, float v, int32_t i)
{
    if (v > s.max) { /* ascending indices: the first hit of a tie is the lowest id */
        s.sum = s.sum * expf(s.max - v) + 1.0f;
        s.max = v;
        s.idx = i;
    } else {
        s.sum += expf(v - s.max);
    }
}

__device__ static inline arg_state arg_merge(arg_state a, arg_state b)
{
    if (b.max > a.max || (b.max == a.max && b.idx < a.idx)) {
        arg_state t = a;
        a = b;
        b = t;
    }
    /* a has the larger max (or the lower index of an equal one) */
    if (b.max != -INFINITY)
        a.sum += b.sum * expf(b.max - a.max);
    return a;
}

/* One block per row, one pass: each thread walks its elements in order
 * (float4 pieces when the rows allow), then the block merges. */
__global__ static void argmax_kernel(const float *logits, const int32_t *rows, int64_t n_vocab,
                                     int vec, int32_t *out_token, float *out_logprob)
{
    __shared__ float s_max[ARGMAX_THREADS];
    __shared__ int32_t s_idx[ARGMAX_THREADS];
    __shared__ float s_sum[ARGMAX_THREADS];
    const int64_t row = rows != NULL ? rows[blockIdx.x] : (int64_t)blockIdx.x;
    const float *x = logits + row * n_vocab;
    arg_state st = {-INFINITY, INT32_MAX, 0.0f};
    if (vec) {
        const float4 *x4 = (const float4 *)x;
        for (int64_t i = threadIdx.x; i < n_vocab / 4; i += blockDim.x) {
            const float4 v = x4[i];
            arg_add(st, v.x, (int32_t)(4 * i));
            arg_add(st, v.y, (int32_t)(4 * i + 1));
            arg_add(st, v.z, (int32_t)(4 * i + 2));
            arg_add(st, v.w, (int32_t)(4 * i + 3));
        }
    } else {
        for (int64_t i = threadIdx.x; i < n_vocab; i += blockDim.x)
            arg_add(st, x[i], (int32_t)i);
    }
    s_max[threadIdx.x] = st.max;
    s_idx[threadIdx.x] = st.idx;
    s_sum[threadIdx.x] = st.sum;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
        if ((int)threadIdx.x < stride) {
            arg_state a = {s_max[threadIdx.x], s_idx[threadIdx.x], s_sum[threadIdx.x]};
            arg_state b = {s_max[threadIdx.x + stride], s_idx[threadIdx.x + stride],
                           s_sum[threadIdx.x + stride]};
            a = arg_merge(a, b);
            s_max[threadIdx.x] = a.max;
            s_idx[threadIdx.x] = a.idx;
            s_sum[threadIdx.x] = a.sum;
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        out_token[blockIdx.x] = s_idx[0];
        out_logprob[blockIdx.x] = -logf(s_sum[0]); /* logit(arg) - max - log(sum) */
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
    const int vec = ((uintptr_t)logits & 15u) == 0 && n_vocab % 4 == 0;
    argmax_kernel<<<(unsigned)n_rows, ARGMAX_THREADS, 0, (hipStream_t)stream>>>(
        logits, rows, n_vocab, vec, out_token, out_logprob);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}
