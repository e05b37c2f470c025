/* models.h - architecture descriptions shared by model.c and engine/models/
 *
 * Not a public header: model.c looks an architecture up by its
 * general.architecture name and calls its two hooks, load (hyperparameters
 * and weights, on top of the common ones) and build (the forward-pass plan).
 * common.c holds the key and tensor readers and the plan emitters the
 * architecture files are written with.
 */
#ifndef RF_MODELS_H
#define RF_MODELS_H

#include <stdarg.h>

#include "model.h"

typedef struct rf__arch_desc {
    const char *name;                 /* general.architecture */
    rf_arch_t arch;
    rf_rope_kind_t rope_kind;
    int (*load)(rf_model_t *m, rf_err_t *err);  /* after rf__load_common */
    int (*build)(rf_model_t *m, rf_err_t *err); /* fills m->plan */
} rf__arch_desc_t;

extern const rf__arch_desc_t rf__arch_llama;
extern const rf__arch_desc_t rf__arch_qwen2;
extern const rf__arch_desc_t rf__arch_qwen3;
extern const rf__arch_desc_t rf__arch_qwen3moe;

/* ---- keys ---- */

/* Read "<arch>.<suffix>" as u32 / f32. Absent: store def and return 0 if
 * !required, else RF_ENOTFOUND. A wrong type or range names the key. */
int rf__key_u32(rf_model_t *m, const char *suffix, bool required, uint32_t def,
                uint32_t *out, rf_err_t *err);
int rf__key_f32(rf_model_t *m, const char *suffix, bool required, float def, float *out,
                rf_err_t *err);

/* Hyperparameters every architecture here has (dimensions, heads, RoPE,
 * norm epsilon), and the tensors every one has (embeddings, norms,
 * attention and output projections; dense FFN when dense_ffn). */
int rf__load_common(rf_model_t *m, rf_rope_kind_t rope_kind, bool dense_ffn, rf_err_t *err);

/* Routed experts: reads <arch>.expert_count (required when required is
 * true; absent otherwise means a dense model), expert_used_count and the
 * expert FFN width key (ff_key; when NULL expert_feed_forward_length if
 * present, else feed_forward_length), then
 * the router and expert tensors of every layer. */
int rf__load_experts(rf_model_t *m, bool required, const char *ff_key, rf_err_t *err);

/* Find tensor printf(fmt, ...) and check its shape (ne2 == 1 for 2-D,
 * ne1 == ne2 == 1 for 1-D). Absent: w zeroed and 0 when !required, else
 * RF_ENOTFOUND. Wrong shape or a type without a dequantizer: RF_EFORMAT;
 * 1-D tensors must be F32. */
int rf__weight(rf_model_t *m, rf_weight_t *w, bool required, uint64_t ne0, uint64_t ne1,
               uint64_t ne2, rf_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* Per-head Q/K RMSNorm weights of every layer (qwen3, qwen3moe; in qwen3.c). */
int rf__qwen3_load_qk_norm(rf_model_t *m, rf_err_t *err);

/* ---- plan emitters (append one op; -ENOMEM on allocation failure) ---- */

int rf__plan_embed(rf_plan_t *p, const rf_weight_t *token_embd);
int rf__plan_rmsnorm(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src, const rf_weight_t *w);
int rf__plan_head_rmsnorm(rf_plan_t *p, int layer, rf_buf_t buf, const rf_weight_t *w);
int rf__plan_matmul(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src, const rf_weight_t *w,
                    const rf_weight_t *bias);
int rf__plan_rope(rf_plan_t *p, int layer, rf_buf_t buf, uint32_t head_dim,
                  const rf_weight_t *rope_freqs);
int rf__plan_attention(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t q, rf_buf_t k,
                       rf_buf_t v);
int rf__plan_swiglu(rf_plan_t *p, int layer, rf_buf_t gate_inout, rf_buf_t up);
int rf__plan_add(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src);
int rf__plan_moe(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src,
                 const rf_layer_weights_t *lw);
int rf__plan_logits(rf_plan_t *p, rf_buf_t src, const rf_weight_t *output);
int rf__plan_output_rows(rf_plan_t *p, int layer, rf_buf_t a, rf_buf_t b);

/* Set the buffer widths from the hyperparameters. */
void rf__plan_widths(rf_plan_t *p, const rf_hparams_t *hp);

/* The attention block every architecture here shares up to the Q/K
 * treatment: x -> norm -> q,k,v (+bias) -> [per-head norm] -> RoPE ->
 * attention -> [last layer: keep only the output rows] -> wo -> residual
 * add. */
int rf__plan_attention_block(rf_model_t *m, int layer);
/* Dense SwiGLU FFN block with its residual add. */
int rf__plan_dense_ffn_block(rf_model_t *m, int layer);
/* Routed-experts FFN block with its residual add. */
int rf__plan_moe_ffn_block(rf_model_t *m, int layer);
/* Embedding at the start, final norm and logits at the end. */
int rf__plan_output(rf_model_t *m);

#endif /* RF_MODELS_H */
