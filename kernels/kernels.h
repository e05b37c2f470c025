/* kernels.h - the C interface of the GPU kernels (HIP sources, extern "C")
 *
 * The engine sees the device only through this header: plain C types, no HIP
 * or CUDA headers. Device pointers are void *; a stream is an opaque
 * rf_gpu_stream_t (NULL is the default stream). Every function returns 0 or a
 * negative code below (RF_KERNEL_EGPU for a runtime failure, RF_KERNEL_ENOGPU
 * when no device is present) and, on failure, logs the runtime call, file and line to
 * stderr through RF_GPU_CHECK (kernels/gpu_check.h).
 *
 * Launchers are asynchronous on their stream; they check the launch, not the
 * kernel's completion: rf_gpu_sync() reports errors that surface later.
 */
#ifndef RF_KERNELS_H
#define RF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes; the same values as engine/error.h's RF_EGPU, RF_ENOGPU and
 * RF_EUNSUPPORTED (the engine checks that with static asserts). */
#define RF_KERNEL_EGPU (-1009)
#define RF_KERNEL_ENOGPU (-1010)
#define RF_KERNEL_EUNSUPPORTED (-1007)
#define RF_KERNEL_EINVAL (-22)

typedef struct rf_gpu_stream *rf_gpu_stream_t;

typedef struct rf_gpu_info {
    char name[256];
    char platform[8];       /* "hip" or "cuda" */
    int warp_size;
    int multiprocessors;
    size_t total_memory;    /* bytes */
    int major, minor;       /* compute capability / gfx major.minor */
} rf_gpu_info_t;

/* ---- runtime (runtime.hip) ---- */

/* Number of usable devices in *out; 0 (and return 0) when there are none
 * or the driver is missing, so callers can skip GPU work with a reason. */
int rf_gpu_device_count(int *out);
int rf_gpu_set_device(int device);
int rf_gpu_device_info(int device, rf_gpu_info_t *out);
int rf_gpu_malloc(void **out, size_t bytes);
int rf_gpu_free(void *ptr); /* NULL is fine */
int rf_gpu_memcpy_h2d(void *dst, const void *src, size_t bytes);
int rf_gpu_memcpy_d2h(void *dst, const void *src, size_t bytes);
int rf_gpu_mem_info(size_t *free_bytes, size_t *total_bytes); /* current device */
int rf_gpu_memset(void *dst, int value, size_t bytes);
int rf_gpu_sync(void); /* wait for the device; reports asynchronous errors */

/* Streams, pinned host memory (fast asynchronous copies) and graphs: a
 * sequence of launches on a stream captured once and replayed with one
 * launch. Capture records; nothing runs until rf_gpu_graph_launch. */
typedef struct rf_gpu_graph *rf_gpu_graph_t;
int rf_gpu_stream_create(rf_gpu_stream_t *out);
int rf_gpu_stream_destroy(rf_gpu_stream_t stream); /* NULL is fine */
int rf_gpu_stream_sync(rf_gpu_stream_t stream);
int rf_gpu_memcpy_h2d_async(void *dst, const void *src, size_t bytes, rf_gpu_stream_t stream);
int rf_gpu_memcpy_d2h_async(void *dst, const void *src, size_t bytes, rf_gpu_stream_t stream);
int rf_gpu_host_alloc(void **out, size_t bytes);
int rf_gpu_host_free(void *ptr); /* NULL is fine */
int rf_gpu_capture_begin(rf_gpu_stream_t stream);
int rf_gpu_capture_end(rf_gpu_stream_t stream, rf_gpu_graph_t *out); /* instantiates */
int rf_gpu_graph_launch(rf_gpu_graph_t graph, rf_gpu_stream_t stream);
void rf_gpu_graph_destroy(rf_gpu_graph_t graph); /* NULL is fine */
/* Events, for timing work on a stream: rf_gpu_event_elapsed_ms waits for
 * `end` and gives the milliseconds between the two records. */
typedef struct rf_gpu_event *rf_gpu_event_t;
int rf_gpu_event_create(rf_gpu_event_t *out);
void rf_gpu_event_destroy(rf_gpu_event_t event); /* NULL is fine */
int rf_gpu_event_record(rf_gpu_event_t event, rf_gpu_stream_t stream);
int rf_gpu_event_elapsed_ms(float *ms, rf_gpu_event_t start, rf_gpu_event_t end);
/* Asynchronous device-to-device copy on a stream (copy.hip). */
int rf_gpu_memcpy_d2d(void *dst, const void *src, size_t bytes, rf_gpu_stream_t stream);

/* ---- dequantize (dequantize.hip) ---- */

/* Dequantize n elements (a multiple of the type's block size) of ggml type
 * `type` from device memory src to float32 device memory dst. Supported:
 * F16, BF16, Q8_0, Q4_0; anything else returns RF_KERNEL_EUNSUPPORTED,
 * and an n that is not a multiple of the block size RF_KERNEL_EINVAL. */
int rf_kernel_dequantize_f32(int type, const void *src, float *dst, int64_t n,
                             rf_gpu_stream_t stream);

/* ---- elementwise and per-row ops (rmsnorm.hip, rope.hip, swiglu.hip, add.hip) ----
 * All f32, rows contiguous unless a stride (in floats) says otherwise; a
 * stride of 0 means "packed". */

/* y[row] = x[row] * rsqrt(mean(x[row]^2) + eps) * w, rows of n_cols floats;
 * y may be x. Per-head Q/K norm: n_rows = n_tokens * n_heads, n_cols = head_dim. */
int rf_kernel_rmsnorm_f32(float *y, const float *x, const float *w, int64_t n_rows,
                          int64_t n_cols, float eps, rf_gpu_stream_t stream);

/* x += r (written back: the new residual), then y = rmsnorm(x) * w as above;
 * y must not alias x or r. */
int rf_kernel_add_rmsnorm_f32(float *y, float *x, const float *r, const float *w,
                              int64_t n_rows, int64_t n_cols, float eps,
                              rf_gpu_stream_t stream);

/* In-place RoPE of x [n_tokens][n_heads][head_dim] (token rows token_stride
 * floats apart, 0 = n_heads * head_dim) by positions[t] (device int32):
 * engine/cpu/ops.c rf__cpu_rope's semantics. neox: 0 rotates pairs
 * (2i, 2i+1), nonzero (i, i + n_rot/2). n_rot even, <= head_dim, <= 1024.
 * freq_factors: device f32 [n_rot/2] divisors (Llama 3) or NULL. */
int rf_kernel_rope_f32(float *x, const int32_t *positions, int n_tokens, int n_heads,
                       int head_dim, int n_rot, int64_t token_stride, int neox,
                       float freq_base, float freq_scale, const float *freq_factors,
                       rf_gpu_stream_t stream);
/* The same in two steps, for a step with several RoPEs of the same
 * positions and frequencies (Q and K of every layer): the table holds each
 * token's cosines then sines, f32 [n_tokens][n_rot], computed once as
 * rf_kernel_rope_f32 does; the apply step rotates with them. Results are
 * bit-identical to rf_kernel_rope_f32. */
int rf_kernel_rope_table_f32(float *table, const int32_t *positions, int n_tokens, int n_rot,
                             float freq_base, float freq_scale, const float *freq_factors,
                             rf_gpu_stream_t stream);
int rf_kernel_rope_apply_f32(float *x, const float *table, int n_tokens, int n_heads,
                             int head_dim, int n_rot, int64_t token_stride, int neox,
                             rf_gpu_stream_t stream);

/* out[row][i] = silu(gate[row][i]) * up[row][i]; out may be gate.
 * n_rows <= 65535. */
int rf_kernel_swiglu_f32(float *out, const float *gate, const float *up, int64_t n_rows,
                         int64_t n_cols, int64_t out_stride, int64_t in_stride,
                         rf_gpu_stream_t stream);

/* out = a + b over n floats (out may alias either). */
int rf_kernel_add_f32(float *out, const float *a, const float *b, int64_t n,
                      rf_gpu_stream_t stream);

/* x[row][i] += bias[i]; n_rows <= 65535. */
int rf_kernel_add_bias_f32(float *x, const float *bias, int64_t n_rows, int64_t n_cols,
                           rf_gpu_stream_t stream);

/* ---- embedding gather (get_rows.hip) ---- */

/* out[t][:] = dequantized row ids[t] of weight [n_rows][n_cols] of ggml type
 * `type` (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K; else RF_KERNEL_EUNSUPPORTED).
 * n_cols a multiple of the block size, n_ids <= 65535 (RF_KERNEL_EINVAL).
 * An id outside [0, n_rows) yields a row of NaN (checked on the host first). */
int rf_kernel_get_rows_f32(int type, const void *weight, int64_t n_rows, int64_t n_cols,
                           const int32_t *ids, int n_ids, float *out, rf_gpu_stream_t stream);

/* ---- matmul (matmul.hip) ---- */

/* y[t][o] = sum_i x[t][i] * W[o][i] (+ bias[o] when bias is not NULL) for
 * x f32 [n_tokens][n_in], W [n_out][n_in] of type F32, F16, BF16, Q8_0, Q4_0,
 * Q4_K or Q6_K, y f32 [n_tokens][n_out]. Fused dequantize-GEMV: each launch
 * reads W once for up to 8 tokens; more tokens run in groups of 8. Quantized
 * types need n_in a multiple of the block size and x (and, for Q4_K, W)
 * 16-byte aligned: RF_KERNEL_EINVAL otherwise. Other types:
 * RF_KERNEL_EUNSUPPORTED. y must not alias x. */
int rf_kernel_matmul_f32(int type, const void *weight, const float *x, float *y,
                         const float *bias, int64_t n_out, int64_t n_in, int n_tokens,
                         rf_gpu_stream_t stream);

/* Device-only layouts of Q4_0 and Q8_0 weights that the engine may repack
 * them into at upload: for n_rows rows of n_in elements (n_in a multiple of
 * 32), every row's quants (16 or 32 bytes a block) end to end, then every
 * row's F16 block scales; the same bytes as the GGUF layout. Its 18- and
 * 34-byte blocks only allow 2-byte loads; this one lets a lane read a
 * block's quants with 16-byte loads. rf_kernel_matmul_f32 and
 * rf_kernel_matmul_set_f32 take these type ids as weight types. */
enum { RF_KERNEL_Q4_0_SPLIT = 1002, RF_KERNEL_Q8_0_SPLIT = 1008 };
/* Repack n_rows rows of a Q4_0 or Q8_0 weight (type 2 or 8) from src to
 * dst (device memory, not overlapping, dst 16-byte aligned). */
int rf_kernel_repack_split(int type, const void *src, void *dst, int64_t n_rows, int64_t n_in,
                           rf_gpu_stream_t stream);

/* Several matmuls of one input in one launch (Q, K and V; gate and up):
 * for each k < n_mats, y[k] = x W[k]^T (+ bias[k]) as rf_kernel_matmul_f32,
 * every W[k] of the same type and n_in, n_mats 1..RF_MATMUL_MAX_SET. For few
 * tokens, where a launch's fixed cost is a good part of a small matrix's. */
enum { RF_MATMUL_MAX_SET = 4 };
int rf_kernel_matmul_set_f32(int type, int n_mats, const void *const *weights, float *const *ys,
                             const float *const *biases, const int64_t *n_outs, const float *x,
                             int64_t n_in, int n_tokens, rf_gpu_stream_t stream);

/* ---- paged KV cache and attention (kv_store.hip, attention.hip) ----
 * Per layer, K and V caches are F16 [n_blocks][n_kv_heads][block_size][head_dim];
 * block_tables is int32 [n_seqs][max_blocks_per_seq]; block 0 is the reserved
 * padding block. seq_ids[t] indexes block_tables' rows; positions[t] is the
 * token's position in its sequence. All arrays are device memory. */

/* Store token t's K and V rows (f32, [n_tokens][n_kv_heads * head_dim], token
 * rows k_stride / v_stride floats apart, 0 = packed) as F16 into slot
 * pos % block_size of block block_tables[seq][pos / block_size]. */
int rf_kernel_kv_store_f16(void *k_cache, void *v_cache, const float *k, const float *v,
                           int64_t k_stride, int64_t v_stride, const int32_t *block_tables,
                           int max_blocks_per_seq, const int32_t *seq_ids,
                           const int32_t *positions, int n_tokens, int n_kv_heads,
                           int head_dim, int block_size, rf_gpu_stream_t stream);

/* Bytes of workspace rf_kernel_paged_attention_f32 needs for this batch
 * shape (0 when every context fits one partition of 256 positions). */
size_t rf_kernel_paged_attention_workspace(int n_tokens, int n_heads, int head_dim,
                                           int max_context);

/* out[t][h][:] = softmax_j(q[t][h] . k_j * scale) . v_j over positions
 * 0..positions[t] of sequence seq_ids[t], kv head h / (n_heads / n_kv_heads).
 * q: f32 [n_tokens][n_heads * head_dim] (token rows q_stride floats apart,
 * 0 = packed); out: f32 [n_tokens][n_heads * head_dim]. max_context >= every
 * positions[t] + 1 and <= max_blocks_per_seq * block_size; it sizes the grid
 * and the workspace (a token past it gets NaN). head_dim 32, 64, 128 or 256
 * (else RF_KERNEL_EUNSUPPORTED). Store the batch's K/V first: a token sees
 * the earlier tokens of its own batch. */
int rf_kernel_paged_attention_f32(float *out, const float *q, int64_t q_stride,
                                  const void *k_cache, const void *v_cache,
                                  const int32_t *block_tables, int max_blocks_per_seq,
                                  const int32_t *seq_ids, const int32_t *positions,
                                  int n_tokens, int n_heads, int n_kv_heads, int head_dim,
                                  int block_size, float scale, int max_context,
                                  void *workspace, size_t workspace_bytes,
                                  rf_gpu_stream_t stream);

/* ---- dense matmul through the vendor BLAS (gemm.hip) ---- */

/* A BLAS handle (cuBLAS under nvcc). rf_gpu_blas_available() is 0 in builds
 * without a vendor BLAS (Debian's ROCm has no hipBLAS): then
 * rf_gpu_blas_open returns RF_KERNEL_EUNSUPPORTED and callers keep the
 * GEMV kernels. */
typedef struct rf_gpu_blas rf_gpu_blas_t;
int rf_gpu_blas_available(void);
int rf_gpu_blas_open(rf_gpu_blas_t **out);
void rf_gpu_blas_close(rf_gpu_blas_t *blas); /* NULL is fine */

/* Workspace bytes rf_kernel_gemm_f32 needs for n_tokens rows of n_in. */
size_t rf_kernel_gemm_workspace(int64_t n_in, int n_tokens);

/* y[t][o] = sum_i x[t][i] * W[o][i] as rf_kernel_matmul_f32, for W of type
 * F16 or BF16 (x converted to that type in workspace, f32 accumulation) or
 * F32 (f32 GEMM). No bias (add it with rf_kernel_add_bias_f32). Returns 0,
 * RF_KERNEL_EINVAL (bad sizes, workspace too small), RF_KERNEL_EUNSUPPORTED
 * (another type, or no BLAS in this build), RF_KERNEL_EGPU. */
int rf_kernel_gemm_f32(rf_gpu_blas_t *blas, int type, const void *weight, const float *x,
                       float *y, int64_t n_out, int64_t n_in, int n_tokens, void *workspace,
                       size_t workspace_bytes, rf_gpu_stream_t stream);

/* ---- greedy choice (argmax.hip) ---- */

/* For each i < n_rows, row r = rows[i] (rows NULL: r = i) of logits [..][n_vocab]:
 * out_token[i] = the largest logit's id (lowest id on ties), out_logprob[i] =
 * its log-probability under softmax(row). n_rows <= 65535. */
int rf_kernel_argmax_f32(const float *logits, const int32_t *rows, int n_rows, int64_t n_vocab,
                         int32_t *out_token, float *out_logprob, rf_gpu_stream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* RF_KERNELS_H */
