/* gpu.h - the GPU backend: runs a model's plan on the device (HIP or CUDA)
 *
 * The same contract as the CPU backend (cpu.h), so the engine facade and
 * the scheduler drive either: a batch in, logits of the asked-for tokens
 * out, K/V in a paged pool reached through block tables (the default
 * partition or tables bound with rf_gpu_backend_seq_bind). The device is
 * reached only through kernels/kernels.h.
 *
 * Weights are uploaded once at open, in their GGUF type; activations are
 * f32; the KV pool is F16, [n_layer] x [n_blocks][n_kv_heads][block_size]
 * [head_dim] for K and for V. Every op of the plan is one or two kernel
 * launches on one stream; the host waits only to read the logits back.
 *
 * Compiled only in GPU builds (RF_HAVE_GPU); one backend is used by one
 * thread at a time.
 */
#ifndef RF_GPU_H
#define RF_GPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

typedef struct rf_gpu_options {
    int device;             /* device index */
    uint32_t n_ctx;         /* positions per sequence; 0: min(n_ctx_train, 4096) */
    uint32_t max_seqs;      /* 0: 1 */
    uint32_t kv_block_size; /* 0: 16 */
    uint32_t kv_blocks;     /* 0: default partition (each sequence owns n_ctx) */
    double gpu_memory;      /* with kv_blocks == 0 and kv_paged: fraction of the
                               device's memory the process may use, the KV pool
                               taking what weights and workspace leave; 0: none */
    bool kv_paged;          /* pool mode: tables are bound by the caller */
} rf_gpu_options_t;

typedef struct rf_gpu_backend rf_gpu_backend_t;

/* Check the plan runs on the device (weight types, head sizes, no MoE yet),
 * upload the weights and allocate the KV pool. Returns 0, RF_ENOGPU (no
 * device), RF_EUNSUPPORTED (err names the tensor or feature), RF_ERANGE (bad
 * options), RF_EGPU (a runtime call failed; out of device memory says what
 * did not fit and what to change). On failure *out is NULL. */
int rf_gpu_backend_open(rf_gpu_backend_t **out, const rf_model_t *m,
                        const rf_gpu_options_t *opt, rf_err_t *err);
void rf_gpu_backend_close(rf_gpu_backend_t *b); /* NULL is fine */

/* As rf_cpu_backend_eval: validates the whole batch first (RF_ERANGE, nothing
 * changed), then runs the plan; RF_EGPU when the device failed. */
int rf_gpu_backend_eval(rf_gpu_backend_t *b, const rf_batch_t *batch, rf_err_t *err);
const float *rf_gpu_backend_logits(const rf_gpu_backend_t *b, uint32_t i);
/* Token i asked as RF_LOGITS_GREEDY: its greedy token and log-probability,
 * computed on the device. RF_ERANGE when not asked that way. */
int rf_gpu_backend_greedy(const rf_gpu_backend_t *b, uint32_t i, int32_t *token, float *logprob);
uint32_t rf_gpu_backend_seq_len(const rf_gpu_backend_t *b, int32_t seq);
int rf_gpu_backend_seq_truncate(rf_gpu_backend_t *b, int32_t seq, uint32_t n_pos);
int rf_gpu_backend_seq_bind(rf_gpu_backend_t *b, int32_t seq, const uint32_t *blocks,
                            uint32_t n_blocks, uint32_t n_pos);
int rf_gpu_backend_kv_copy(rf_gpu_backend_t *b, uint32_t src, uint32_t dst);
uint32_t rf_gpu_backend_kv_blocks(const rf_gpu_backend_t *b);
uint32_t rf_gpu_backend_kv_block_size(const rf_gpu_backend_t *b);
bool rf_gpu_backend_kv_paged(const rf_gpu_backend_t *b);
uint32_t rf_gpu_backend_n_ctx(const rf_gpu_backend_t *b);
uint32_t rf_gpu_backend_max_seqs(const rf_gpu_backend_t *b);
const char *rf_gpu_backend_device_name(const rf_gpu_backend_t *b);
/* Bytes of one F16 KV block (all layers, K and V). */
size_t rf_gpu_kv_block_bytes(const rf_model_t *m, uint32_t block_size);

#endif /* RF_GPU_H */
