/* cpu.h - the CPU backend: runs a model's plan on a batch of tokens
 *
 * The backend executes the rf_plan_t of an rf_model_t with f32 activations,
 * quantized-weight dot products from vecdot.h (activations quantized once
 * per row, output rows split across a small thread pool), and an f32 KV
 * cache with one contiguous region per sequence (kvcache.c; a paged cache
 * replaces it later behind the same few calls).
 *
 * Results are bit-identical whatever the thread count and whatever else is
 * in the batch: every output element is computed by one thread with the
 * same sequence of operations.
 *
 * One backend is used by one thread at a time (the engine thread).
 */
#ifndef RF_CPU_H
#define RF_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "model.h"

typedef struct rf_cpu_options {
    int n_threads;      /* 0: all online cores */
    uint32_t n_ctx;     /* positions per sequence; 0: min(n_ctx_train, 4096) */
    uint32_t max_seqs;  /* sequences with a KV region; 0: 1 */
    uint32_t kv_block_size; /* positions per KV block; 0: 16 */
    uint32_t kv_blocks; /* 0: each sequence owns n_ctx positions (default
                           partition); else a pool of this many blocks (block
                           0 reserved) that sequences use through tables bound
                           with rf_cpu_backend_seq_bind */
} rf_cpu_options_t;

typedef struct rf_cpu_backend rf_cpu_backend_t;

/* Check every weight the plan uses has a dot product on this CPU, start
 * the threads and allocate the KV cache. m is borrowed and must outlive
 * the backend. Returns 0, -ENOMEM, -errno (threads), RF_EUNSUPPORTED (a
 * weight type without a dot product; err names the tensor) or RF_ERANGE
 * (bad options). On failure *out is NULL. */
int rf_cpu_backend_open(rf_cpu_backend_t **out, const rf_model_t *m,
                        const rf_cpu_options_t *opt, rf_err_t *err);
void rf_cpu_backend_close(rf_cpu_backend_t *b); /* NULL is fine */

/* Run one forward pass. Validates the whole batch first (token ids,
 * sequence ids, positions continuing each sequence, n_ctx): a bad batch
 * returns RF_ERANGE naming the token index and changes nothing. On
 * success the sequences' KV caches have grown by their tokens and the
 * logits of the requested tokens are readable until the next eval.
 * Returns 0, RF_ERANGE or -ENOMEM. */
int rf_cpu_backend_eval(rf_cpu_backend_t *b, const rf_batch_t *batch, rf_err_t *err);

/* Logits [n_vocab] of batch token i of the last eval; NULL if they were
 * not requested or i is out of range. */
const float *rf_cpu_backend_logits(const rf_cpu_backend_t *b, uint32_t i);

/* Positions a sequence holds in the KV cache (0 if seq is out of range). */
uint32_t rf_cpu_backend_seq_len(const rf_cpu_backend_t *b, int32_t seq);

/* Forget positions >= n_pos of seq (0 clears it). RF_ERANGE for a bad seq. */
int rf_cpu_backend_seq_truncate(rf_cpu_backend_t *b, int32_t seq, uint32_t n_pos);

/* Pool mode: sequence seq uses blocks (borrowed: must stay valid and
 * unchanged until the next bind of seq or the next eval ends) and holds
 * n_pos positions. RF_ERANGE for a bad seq, a block id of 0 or outside the
 * pool, n_pos beyond the table, or a backend with the default partition. */
int rf_cpu_backend_seq_bind(rf_cpu_backend_t *b, int32_t seq, const uint32_t *blocks,
                            uint32_t n_blocks, uint32_t n_pos);
/* Copy KV block src to dst in every layer (copy-on-write). RF_ERANGE. */
int rf_cpu_backend_kv_copy(rf_cpu_backend_t *b, uint32_t src, uint32_t dst);
uint32_t rf_cpu_backend_kv_blocks(const rf_cpu_backend_t *b);     /* incl. block 0 */
uint32_t rf_cpu_backend_kv_block_size(const rf_cpu_backend_t *b);
bool rf_cpu_backend_kv_paged(const rf_cpu_backend_t *b); /* opened with kv_blocks */
/* Bytes one KV block takes (all layers, K and V). */
size_t rf_cpu_kv_block_bytes(const rf_model_t *m, uint32_t block_size);

int rf_cpu_backend_n_threads(const rf_cpu_backend_t *b);
uint32_t rf_cpu_backend_n_ctx(const rf_cpu_backend_t *b);
uint32_t rf_cpu_backend_max_seqs(const rf_cpu_backend_t *b);

#endif /* RF_CPU_H */
