/* engine.h - the engine facade: open a model, evaluate batches, read logits
 *
 * This is the layer the CLI and (later) the scheduler use: it opens the
 * model (model.h) and a backend for it (today the CPU backend, cpu/cpu.h)
 * and forwards batches. A batch holds tokens of one or more sequences
 * (rf_batch_t in model.h); each sequence has its own KV cache region that
 * grows with every eval. The request-level API of the design (submit,
 * step, poll, cancel) will sit on top of rf_engine_eval in this header.
 *
 *     rf_engine_t *e;
 *     rf_engine_options_t opt = {.n_threads = 0, .n_ctx = 2048, .max_seqs = 4};
 *     if (rf_engine_open(&e, "model.gguf", &opt, &err) < 0) ...
 *     rf_batch_t batch = {.n_tokens = n, .tokens = ids, .positions = pos,
 *                         .seq_ids = seq, .logits = NULL};
 *     if (rf_engine_eval(e, &batch, &err) < 0) ...
 *     const float *logits = rf_engine_logits(e, n - 1);   // [n_vocab]
 *     rf_engine_close(e);
 *
 * One engine is driven by one thread at a time; it runs its own worker
 * threads inside rf_engine_eval.
 */
#ifndef RF_ENGINE_H
#define RF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "model.h"
#include "tokenizer.h"

typedef enum rf_device {
    RF_DEVICE_CPU = 0,   /* the default */
    RF_DEVICE_GPU,       /* the GPU backend; RF_ENOGPU when there is none */
    RF_DEVICE_AUTO,      /* the GPU when this build has one and a device is present */
} rf_device_t;

typedef struct rf_engine_options {
    rf_device_t device;
    int gpu_index;          /* which device (GPU backend) */
    double gpu_memory;      /* GPU, paged pool without kv_blocks/kv_memory: fraction of the
                               device memory to use, the KV pool taking the rest after
                               weights (0: room for max_seqs * n_ctx positions) */
    int n_threads;      /* worker threads incl. the caller; 0: all online cores */
    uint32_t n_ctx;     /* positions per sequence; 0: min(model's context_length, 4096) */
    uint32_t max_seqs;  /* sequences held at once (ids 0..max_seqs-1); 0: 1 */
    bool no_tokenizer;  /* do not open the tokenizer (weights-only tests) */
    /* KV cache. Without kv_paged each of the max_seqs sequences owns n_ctx
     * positions. With it, one pool of blocks that sequences use through
     * block tables bound with rf_engine_seq_bind (the scheduler does):
     * kv_blocks blocks if set, else as many as kv_memory bytes hold, else
     * max_seqs * n_ctx positions' worth (block 0 is reserved in all cases). */
    bool kv_paged;
    uint32_t kv_block_size; /* positions per block; 0: 16 */
    uint32_t kv_blocks;
    uint64_t kv_memory;     /* bytes */
} rf_engine_options_t;

typedef struct rf_engine rf_engine_t;

/* Open the model at path and a CPU backend for it. opt may be NULL
 * (defaults). Returns 0 or the error of rf_model_open / rf_cpu_backend_open;
 * err names the key, tensor or option. On failure *out is NULL. */
int rf_engine_open(rf_engine_t **out, const char *path, const rf_engine_options_t *opt,
                   rf_err_t *err);
void rf_engine_close(rf_engine_t *e); /* NULL is fine */

/* One forward pass over batch. Returns 0; RF_ERANGE for a bad batch
 * (token id, sequence id, position not continuing its sequence, past
 * n_ctx; err names the batch index), nothing changed; -ENOMEM. */
int rf_engine_eval(rf_engine_t *e, const rf_batch_t *batch, rf_err_t *err);

/* Logits [n_vocab] of token i of the last eval, valid until the next eval;
 * NULL if not requested. */
const float *rf_engine_logits(const rf_engine_t *e, uint32_t i);

/* Greedy token (largest logit, lowest id on ties) of batch token i of the
 * last eval and its log-probability under softmax(logits). Returns 0, or
 * RF_ERANGE when token i's logits were not asked for. Works for rows asked
 * as RF_LOGITS_FULL too (computed from the logits on the host). */
int rf_engine_greedy(const rf_engine_t *e, uint32_t i, int32_t *token, float *logprob);

/* Positions sequence seq holds; forget positions >= n_pos (0 clears). */
uint32_t rf_engine_seq_len(const rf_engine_t *e, int32_t seq);
int rf_engine_seq_truncate(rf_engine_t *e, int32_t seq, uint32_t n_pos);

/* Paged pool: sequence seq reads and writes its KV through blocks (block
 * ids of the pool, borrowed until its next bind; an eval uses the tables
 * bound when it starts) and holds n_pos positions. RF_ERANGE for a bad seq
 * or block, or an engine opened without kv_blocks. */
int rf_engine_seq_bind(rf_engine_t *e, int32_t seq, const uint32_t *blocks, uint32_t n_blocks,
                       uint32_t n_pos);
/* Copy KV block src to dst in every layer (copy-on-write). RF_ERANGE. */
int rf_engine_kv_copy(rf_engine_t *e, uint32_t src, uint32_t dst);
uint32_t rf_engine_kv_blocks(const rf_engine_t *e);      /* incl. reserved block 0 */
bool rf_engine_kv_paged(const rf_engine_t *e);
uint32_t rf_engine_kv_block_size(const rf_engine_t *e);
/* Bytes one KV block takes on the engine's device (all layers, K and V). */
size_t rf_engine_kv_block_bytes(const rf_engine_t *e);

/* "cpu" or the GPU's name. */
const char *rf_engine_device_name(const rf_engine_t *e);
bool rf_engine_on_gpu(const rf_engine_t *e);
/* Whether this build has a GPU backend and a device is present. */
bool rf_engine_gpu_available(void);
/* GPUs present (0 in builds without a GPU backend). */
int rf_engine_gpu_count(void);

const rf_model_t *rf_engine_model(const rf_engine_t *e);
const rf_hparams_t *rf_engine_hparams(const rf_engine_t *e);
const rf_tokenizer_t *rf_engine_tokenizer(const rf_engine_t *e); /* NULL with no_tokenizer */
int rf_engine_n_threads(const rf_engine_t *e);
uint32_t rf_engine_n_ctx(const rf_engine_t *e);    /* positions per sequence, after defaults */
uint32_t rf_engine_max_seqs(const rf_engine_t *e); /* sequence ids are 0 .. this - 1 */

#endif /* RF_ENGINE_H */
