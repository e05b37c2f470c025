/* model.h - model files: hyperparameters, weights and the forward-pass plan
 *
 * rf_model_open() maps a GGUF model, reads the hyperparameters of its
 * architecture (llama.cpp's key names: "<arch>.embedding_length", ...),
 * finds every weight by llama.cpp's tensor name ("blk.<i>.attn_q.weight"),
 * checks its shape, and opens the tokenizer. Weights stay in the mapping in
 * their GGUF type (zero-copy): an rf_weight_t points into it.
 *
 * Supported architectures (general.architecture):
 *   llama    - Llama 2, Llama 3.x (rope_freqs.weight frequency factors),
 *              Mistral, TinyLlama, SmolLM; tied embeddings when
 *              output.weight is absent; Mixtral-style routed experts when
 *              llama.expert_count is set. RoPE "normal" (adjacent pairs):
 *              the converter permutes Q/K rows for it.
 *   qwen2    - Qwen 2 / 2.5: Q/K/V biases, RoPE NeoX (halves).
 *   qwen3    - Qwen 3: per-head RMSNorm on Q and K before RoPE, NeoX.
 *   qwen3moe - Qwen 3 MoE: qwen3 attention, routed experts (no shared
 *              expert), top-k weights renormalised (norm_topk_prob).
 * Anything else fails with RF_EUNSUPPORTED naming the architecture.
 *
 * The forward pass of every architecture is one rf_plan_t: a flat list of
 * operations over named activation buffers. engine/models/<arch>.c builds
 * it; a backend (engine/cpu/, later engine/gpu/) executes it. The plan says
 * which weights, which ops, in which order; the backend owns the buffers,
 * the KV cache and the threads.
 */
#ifndef RF_MODEL_H
#define RF_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "gguf.h"
#include "tokenizer.h"

typedef enum rf_arch {
    RF_ARCH_LLAMA = 0,
    RF_ARCH_QWEN2 = 1,
    RF_ARCH_QWEN3 = 2,
    RF_ARCH_QWEN3MOE = 3,
    RF_ARCH_COUNT
} rf_arch_t;

typedef enum rf_rope_kind {
    RF_ROPE_NORMAL = 0, /* rotate pairs (2i, 2i+1): GGML_ROPE_TYPE_NORM */
    RF_ROPE_NEOX = 2,   /* rotate pairs (i, i + n_rot/2): GGML_ROPE_TYPE_NEOX */
} rf_rope_kind_t;

typedef struct rf_hparams {
    rf_arch_t arch;
    uint32_t n_vocab;        /* rows of token_embd.weight */
    uint32_t n_ctx_train;    /* <arch>.context_length */
    uint32_t n_embd;         /* residual width */
    uint32_t n_layer;
    uint32_t n_head;         /* query heads */
    uint32_t n_head_kv;      /* key/value heads (GQA: n_head % n_head_kv == 0) */
    uint32_t head_dim_k;     /* <arch>.attention.key_length, else n_embd / n_head */
    uint32_t head_dim_v;     /* <arch>.attention.value_length, else head_dim_k */
    uint32_t n_ff;           /* dense FFN width (0 when every layer is MoE) */
    uint32_t n_expert;       /* 0: dense FFN */
    uint32_t n_expert_used;  /* top-k experts per token */
    uint32_t n_ff_expert;    /* width of one expert's FFN */
    bool expert_weights_norm;/* renormalise the top-k routing weights to sum 1 */
    uint32_t n_rot;          /* rotated dims per head (<= head_dim_k), even */
    rf_rope_kind_t rope_kind;
    float rope_freq_base;    /* theta base */
    float rope_freq_scale;   /* 1 / linear scaling factor */
    float rms_eps;
    bool tied_output;        /* output.weight absent: logits use token_embd */
    bool has_rope_freqs;     /* rope_freqs.weight: per-frequency divisors (Llama 3) */
    bool qkv_bias;           /* attn_{q,k,v}.bias (qwen2) */
    bool qk_norm;            /* attn_{q,k}_norm.weight per-head RMSNorm (qwen3) */
} rf_hparams_t;

/* A tensor of the model, borrowed from the mapping. */
typedef struct rf_weight {
    const void *data;    /* NULL: absent (optional tensor) */
    int type;            /* rf_type_t */
    uint64_t ne[3];      /* ne[0] fastest (a row), ne[1] rows, ne[2] experts */
    uint64_t row_bytes;  /* bytes of one row of ne[0] elements */
    const char *name;    /* tensor name, NUL-terminated, owned by the model */
} rf_weight_t;

typedef struct rf_layer_weights {
    rf_weight_t attn_norm;      /* f32 [n_embd] */
    rf_weight_t wq, wk, wv;     /* [n_embd] x [n_head*hd_k], [n_head_kv*hd_k], [n_head_kv*hd_v] */
    rf_weight_t bq, bk, bv;     /* f32 biases, qwen2 only */
    rf_weight_t q_norm, k_norm; /* f32 [head_dim_k], qwen3 only */
    rf_weight_t wo;             /* [n_head*hd_v] x [n_embd] */
    rf_weight_t ffn_norm;       /* f32 [n_embd] */
    rf_weight_t ffn_gate, ffn_up, ffn_down;  /* dense: [n_embd]x[n_ff], [n_ff]x[n_embd] */
    rf_weight_t ffn_gate_inp;   /* router [n_embd] x [n_expert] */
    rf_weight_t ffn_gate_exps, ffn_up_exps;  /* [n_embd] x [n_ff_expert] x [n_expert] */
    rf_weight_t ffn_down_exps;  /* [n_ff_expert] x [n_embd] x [n_expert] */
} rf_layer_weights_t;

/* ---- forward-pass plan ---- */

/* Activation buffers, each [n_tokens][width] f32 (widths in rf_plan_t). */
typedef enum rf_buf {
    RF_BUF_NONE = 0,
    RF_BUF_X,       /* residual stream [n_embd] */
    RF_BUF_XN,      /* normalised input of a block [n_embd] */
    RF_BUF_Q,       /* [n_head * head_dim_k] */
    RF_BUF_K,       /* [n_head_kv * head_dim_k] */
    RF_BUF_V,       /* [n_head_kv * head_dim_v] */
    RF_BUF_ATTN,    /* attention output [n_head * head_dim_v] */
    RF_BUF_FF_A,    /* FFN gate / hidden [n_ff] */
    RF_BUF_FF_B,    /* FFN up [n_ff] */
    RF_BUF_OUT,     /* block output before the residual add [n_embd] */
    RF_BUF_COUNT
} rf_buf_t;

typedef enum rf_op_kind {
    /* dst = dequantize(w row tokens[t]) for every token. w: token_embd. */
    RF_OP_EMBED,
    /* dst = src / rms(src) * w, per row of width(src). w: f32 [width]. */
    RF_OP_RMSNORM,
    /* Same, per head: each group of w.ne[0] values normalised with w.
     * dst may equal src. */
    RF_OP_HEAD_RMSNORM,
    /* dst[t] = W src[t] (+ bias). w: [width(src)] x [width(dst)]. */
    RF_OP_MATMUL,
    /* Rotate dst in place by each token's position; n_heads = width/head_dim.
     * Uses hparams' rope kind, n_rot, base, scale and rope_freqs (w). */
    RF_OP_ROPE,
    /* Store K (src2) and V (src3) of every token into the layer's KV cache
     * at (seq, pos), then dst = causal GQA attention of Q (src) over the
     * sequence's cached positions <= pos. */
    RF_OP_ATTENTION,
    /* dst = silu(dst) * src (SwiGLU). */
    RF_OP_SWIGLU,
    /* dst += src. */
    RF_OP_ADD,
    /* dst = routed experts FFN of src: router w[0] (ffn_gate_inp), softmax,
     * top-k, optional renormalisation, experts w[1] gate, w[2] up,
     * w[3] down, SwiGLU, weighted sum. */
    RF_OP_MOE,
    /* Logits of the tokens asked for: rows of src (already normalised) times
     * w (output.weight or the tied token_embd.weight). Last op of a plan.
     * After RF_OP_OUTPUT_ROWS the rows are exactly those tokens, in order. */
    RF_OP_LOGITS,
    /* From here on only the tokens whose logits were asked for matter: keep
     * those rows of dst and src (in batch order, packed to the front) and
     * run the following ops on them alone. Placed in the last layer after
     * attention, whose K/V every token still had to store (llama.cpp's
     * inp_out_ids). No op that reads positions may follow it. */
    RF_OP_OUTPUT_ROWS,
} rf_op_kind_t;

typedef struct rf_op {
    rf_op_kind_t kind;
    int32_t layer;          /* layer index, -1 outside layers */
    rf_buf_t dst, src, src2, src3;
    const rf_weight_t *w[4];/* see rf_op_kind_t; unused are NULL */
    const rf_weight_t *bias;/* MATMUL only, optional f32 [width(dst)] */
    uint32_t head_dim;      /* ROPE, HEAD_RMSNORM: values per head */
} rf_op_t;

typedef struct rf_plan {
    rf_op_t *ops;                 /* [n_ops] in execution order */
    size_t n_ops, cap_ops;
    uint32_t width[RF_BUF_COUNT]; /* floats per token of each buffer; 0 unused */
} rf_plan_t;

/* ---- batch: the input of one forward pass ---- */

/* Tokens of one or more sequences. Within a sequence, positions continue
 * where the sequence's KV cache ends: the first token of sequence s in a
 * batch is at the cache's current length, the next one after it, and so on
 * (they need not be adjacent in the arrays). */
typedef struct rf_batch {
    uint32_t n_tokens;
    const int32_t *tokens;    /* [n_tokens] ids < n_vocab */
    const int32_t *positions; /* [n_tokens] position of each token in its sequence */
    const int32_t *seq_ids;   /* [n_tokens] 0 .. max_seqs-1 */
    const int8_t *logits;     /* [n_tokens] RF_LOGITS_*: nonzero: return this token's
                                 logits; NULL: the last token of each sequence */
} rf_batch_t;

/* The sequence state a backend keeps, for rf_batch_check. */
typedef struct rf_batch_limits {
    uint32_t n_vocab, max_seqs, n_ctx, block_size;
    const uint32_t *seq_len;    /* [max_seqs] positions each sequence holds */
    const uint32_t *table_len;  /* [max_seqs] KV blocks in each sequence's table */
    uint32_t *scratch;          /* [max_seqs] overwritten */
} rf_batch_limits_t;

/* The check every backend makes before an eval: token ids in the
 * vocabulary, sequence ids in range, positions continuing each sequence's
 * cache, within n_ctx and the sequence's KV blocks. Returns 0 or RF_ERANGE
 * with err naming the batch index. */
int rf_batch_check(const rf_batch_t *batch, const rf_batch_limits_t *lim, rf_err_t *err);

/* What a batch token's logits are needed for. A backend may answer
 * RF_LOGITS_GREEDY with the greedy token and its log-probability only
 * (rf_engine_greedy) instead of the whole row (the GPU backend does: a few
 * bytes cross to the host instead of n_vocab floats). */
enum { RF_LOGITS_NONE = 0, RF_LOGITS_FULL = 1, RF_LOGITS_GREEDY = 2 };

/* ---- model ---- */

typedef struct rf_model {
    rf_gguf_t *gguf;              /* owns the mapping the weights point into */
    rf_tokenizer_t *tokenizer;
    char arch_name[32];           /* general.architecture */
    rf_hparams_t hp;
    rf_weight_t token_embd;       /* [n_embd] x [n_vocab] */
    rf_weight_t output_norm;      /* f32 [n_embd] */
    rf_weight_t output;           /* [n_embd] x [n_vocab]; == token_embd when tied */
    rf_weight_t rope_freqs;       /* f32 [n_rot/2], optional */
    rf_layer_weights_t *layers;   /* [n_layer] */
    rf_plan_t plan;
    char **names;                 /* [n_names] tensor names the weights point at */
    size_t n_names, cap_names;
} rf_model_t;

typedef struct rf_model_options {
    bool no_tokenizer;            /* skip the tokenizer (tests of weights only) */
} rf_model_options_t;

/* Open path, read hparams and weights, build the plan. opt may be NULL.
 * On success *out owns the mapping; free with rf_model_close(). On failure
 * *out is NULL and err names the key or tensor. Returns 0, -errno,
 * RF_EFORMAT (wrong shape or type), RF_ENOTFOUND (missing key or tensor),
 * RF_EUNSUPPORTED (architecture or feature), or a GGUF/tokenizer error. */
int rf_model_open(rf_model_t **out, const char *path, const rf_model_options_t *opt,
                  rf_err_t *err);

/* Same from an already open GGUF; takes ownership of g (closed on failure too). */
int rf_model_open_gguf(rf_model_t **out, rf_gguf_t *g, const rf_model_options_t *opt,
                       rf_err_t *err);

void rf_model_close(rf_model_t *m); /* NULL is fine */

const char *rf_arch_name(rf_arch_t arch);

/* Name of an op kind and a buffer, for dumps and messages. */
const char *rf_op_name(rf_op_kind_t kind);
const char *rf_buf_name(rf_buf_t buf);

#endif /* RF_MODEL_H */
