/* cpu_internal.h - what the CPU backend's files share
 *
 * pool.c: a fixed set of worker threads running one task at a time.
 * kvcache.c: the f32 KV cache in blocks, reached through block tables
 * (attention reads rows through two calls and never sees the layout).
 * ops.c: per-row kernels (RMSNorm, RoPE, SwiGLU). matmul.c: quantized
 * weight times f32 activations. attention.c, moe.c: the two composite ops.
 */
#ifndef RF_CPU_INTERNAL_H
#define RF_CPU_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu.h"
#include "model.h"
#include "vecdot.h"

/* ---- thread pool ---- */

/* Called on every thread (ith 0 .. nth-1; 0 is the caller) for one run. */
typedef void (*rf__cpu_task_fn)(void *ctx, int ith, int nth);

typedef struct rf__cpu_pool {
    int n_threads;                 /* including the calling thread */
    pthread_t *workers;            /* [n_threads - 1] */
    int n_started;
    pthread_mutex_t mutex;         /* guards sleeping on start */
    pthread_cond_t start;          /* generation moved on, or stop */
    _Atomic uint64_t generation;   /* bumped once per run (release: fn, ctx) */
    atomic_int pending;            /* workers still in the current run */
    atomic_bool stop;
    rf__cpu_task_fn fn;            /* written before generation is bumped */
    void *ctx;
} rf__cpu_pool_t;

int rf__cpu_pool_init(rf__cpu_pool_t *pool, int n_threads);
void rf__cpu_pool_free(rf__cpu_pool_t *pool);
/* Run fn on all threads and return when every one has finished. */
void rf__cpu_pool_run(rf__cpu_pool_t *pool, rf__cpu_task_fn fn, void *ctx);

/* Below this many multiply-adds an op runs on the calling thread alone:
 * waking the pool costs microseconds, about what this much work takes.
 * Results do not change (each output element is computed the same way). */
#define RF__CPU_MIN_PARALLEL_WORK (1 << 18)

/* Split n items evenly: thread ith gets [*begin, *end). */
static inline void rf__cpu_split(int64_t n, int ith, int nth, int64_t *begin, int64_t *end)
{
    *begin = n * ith / nth;
    *end = n * (ith + 1) / nth;
}

/* ---- KV cache ---- */

typedef struct rf__cpu_kv {
    uint32_t n_layer, n_seq, n_ctx;
    uint32_t k_width;   /* n_head_kv * head_dim_k floats per position */
    uint32_t v_width;   /* n_head_kv * head_dim_v */
    uint32_t block_size, n_blocks;
    float *k;           /* [n_layer][n_blocks][block_size][k_width] */
    float *v;           /* [n_layer][n_blocks][block_size][v_width] */
    uint32_t *seq_len;  /* [n_seq] positions held */
    const uint32_t **table; /* [n_seq] block ids of each sequence */
    uint32_t *table_len;    /* [n_seq] entries in each table */
    uint32_t *own;      /* the default partition's tables, or NULL (bound tables) */
} rf__cpu_kv_t;

/* n_blocks 0: the default partition (each sequence owns n_ctx positions);
 * else a pool of n_blocks (block 0 reserved) used through bound tables. */
int rf__cpu_kv_init(rf__cpu_kv_t *kv, uint32_t n_layer, uint32_t n_seq, uint32_t n_ctx,
                    uint32_t k_width, uint32_t v_width, uint32_t block_size, uint32_t n_blocks);
void rf__cpu_kv_free(rf__cpu_kv_t *kv);
/* Pool mode: sequence seq reads and writes through blocks (borrowed until
 * the next bind) and holds n_pos positions. RF_ERANGE: bad seq, a block id
 * out of range or 0, n_pos beyond the table, or a default partition. */
int rf__cpu_kv_bind(rf__cpu_kv_t *kv, uint32_t seq, const uint32_t *blocks, uint32_t n_blocks,
                    uint32_t n_pos);
/* Copy block src to block dst in every layer (copy-on-write). */
int rf__cpu_kv_copy_block(rf__cpu_kv_t *kv, uint32_t src, uint32_t dst);
/* K or V row of (layer, seq, pos); the caller checked the ranges. */
float *rf__cpu_kv_k(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos);
float *rf__cpu_kv_v(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos);

/* ---- row kernels (ops.c) ---- */

void rf__cpu_rmsnorm(float *dst, const float *src, const float *w, int64_t n, float eps);
/* Rotate n_heads heads of head_dim at x by position pos. freq_factors may
 * be NULL; else [n_rot/2] divisors of each frequency (Llama 3). */
void rf__cpu_rope(float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                  rf_rope_kind_t kind, float freq_base, float freq_scale,
                  const float *freq_factors, int32_t pos);
void rf__cpu_swiglu(float *gate, const float *up, int64_t n);
void rf__cpu_softmax(float *x, int64_t n);

/* ---- matmul (matmul.c) ---- */

typedef struct rf__cpu_matmul_ctx {
    rf__cpu_pool_t *pool;
    rf_cpu_isa_t isa;
    uint8_t *act;          /* scratch for quantized activations */
    size_t act_size;       /* bytes */
} rf__cpu_matmul_ctx_t;

/* A weight repacked for rf_cpu_packed_gemm_get's kernel: each expert
 * (ne[2] of them, 1 for a plain matrix) as ceil(ne[1] / 16) groups of
 * group_bytes, expert after expert. Zeroed: not packed. */
typedef struct rf__cpu_packed {
    const uint8_t *data;    /* borrowed: the caller's memory */
    size_t group_bytes;
    size_t expert_bytes;    /* bytes of one expert's groups */
} rf__cpu_packed_t;

/* Bytes w takes packed for the matmul ISA (a multiple of 64); 0 where the
 * ISA has no packed kernel for its type. */
size_t rf__cpu_packed_bytes(rf_cpu_isa_t isa, const rf_weight_t *w);

/* Pack w (rf__cpu_packed_bytes > 0) into dst, 64-byte aligned, on the
 * pool's threads, and describe it in *out. */
void rf__cpu_pack_weight(rf__cpu_pool_t *pool, const rf_weight_t *w, uint8_t *dst,
                         rf__cpu_packed_t *out);

/* Scratch bytes one activation row of a matmul with w needs, packed or
 * not (rf__cpu_matmul_ctx_t.act holds n_rows of them). */
size_t rf__cpu_matmul_act_row_bytes(const rf_weight_t *w, rf_cpu_isa_t isa);

/* dst[r][:] = W src[rows[r]] (+ bias) for r < n_rows, src rows of
 * w->ne[0] floats at src_stride floats apart, dst rows w->ne[1] floats at
 * dst_stride apart. rows may be NULL (row r is src row r). w is a 2-D
 * weight (an expert slice is fine); packed is its first packed group
 * (rf__cpu_packed_t; for an expert slice, that expert's), or NULL to run
 * on the rows as stored. Both give the same bits. Scratch must hold
 * n_rows * rf__cpu_matmul_act_row_bytes(w, mm->isa). */
void rf__cpu_matmul(rf__cpu_matmul_ctx_t *mm, const rf_weight_t *w, const uint8_t *packed,
                    const float *bias, const float *src, int64_t src_stride,
                    const int32_t *rows, int64_t n_rows, float *dst, int64_t dst_stride);

/* Several matmuls of one activation buffer (Q, K and V; gate and up) in one
 * pass: the activations are quantized once and the threads wake once for
 * all of them. Each output is computed as rf__cpu_matmul computes it. */
#define RF__CPU_MATMUL_MAX_PARTS 4

typedef struct rf__cpu_matmul_out {
    const rf_weight_t *w;
    const uint8_t *packed;  /* as rf__cpu_matmul's */
    const float *bias;      /* [ne[1]] or NULL */
    float *dst;             /* rows dst_stride floats apart */
    int64_t dst_stride;
} rf__cpu_matmul_out_t;

/* Whether two weights can share one rf__cpu_matmul_multi call: same type
 * and row length, both packed or neither. */
bool rf__cpu_matmul_can_share(const rf_weight_t *a, const uint8_t *a_packed,
                              const rf_weight_t *b, const uint8_t *b_packed);

/* outs[0 .. n_outs) (at most RF__CPU_MATMUL_MAX_PARTS, pairwise
 * rf__cpu_matmul_can_share) times the same src rows, as rf__cpu_matmul. */
void rf__cpu_matmul_multi(rf__cpu_matmul_ctx_t *mm, const rf__cpu_matmul_out_t *outs,
                          int n_outs, const float *src, int64_t src_stride,
                          const int32_t *rows, int64_t n_rows);

/* ---- attention (attention.c) ---- */

typedef struct rf__cpu_attn_args {
    const rf_hparams_t *hp;
    const rf__cpu_kv_t *kv;
    uint32_t layer;
    uint32_t n_tokens;
    const int32_t *positions, *seq_ids; /* [n_tokens] */
    const float *q;        /* [n_tokens][n_head * head_dim_k] */
    float *out;            /* [n_tokens][n_head * head_dim_v] */
    float *scores;         /* [n_threads][n_ctx] scratch */
} rf__cpu_attn_args_t;

/* Store k, v ([n_tokens][width]) at each token's (seq, pos). */
void rf__cpu_kv_store(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t n_tokens,
                      const int32_t *positions, const int32_t *seq_ids, const float *k,
                      const float *v);
void rf__cpu_attention(rf__cpu_pool_t *pool, rf__cpu_attn_args_t *args);

/* ---- routed experts (moe.c) ---- */

typedef struct rf__cpu_moe_scratch {
    float *router;         /* [n_tokens][n_expert] */
    int32_t *chosen;       /* [n_tokens][n_expert_used] expert ids */
    float *weights;        /* [n_tokens][n_expert_used] routing weights */
    int32_t *rows;         /* [n_tokens] tokens routed to one expert */
    float *row_weights;    /* [n_tokens] */
    float *gate, *up;      /* [n_tokens][n_ff_expert] */
    float *down;           /* [n_tokens][n_embd] */
} rf__cpu_moe_scratch_t;

/* dst[t] = sum over the top-k experts e of token t of w_e * FFN_e(src[t]).
 * packed[k]: op->w[k] packed (rf__cpu_pack_weight), or zeroed. */
void rf__cpu_moe(rf__cpu_matmul_ctx_t *mm, const rf_hparams_t *hp, const rf_op_t *op,
                 const rf__cpu_packed_t packed[4], uint32_t n_tokens, const float *src,
                 float *dst, rf__cpu_moe_scratch_t *s);

#endif /* RF_CPU_INTERNAL_H */
