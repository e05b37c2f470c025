/* llama.c - the llama architecture: Llama 2/3.x, Mistral, TinyLlama, SmolLM, Mixtral
 *
 * Pre-norm transformer: RMSNorm, attention with RoPE "normal" (adjacent
 * pairs: llama.cpp's converter permutes the Q/K rows of Hugging Face
 * checkpoints so that this layout applies), GQA, SwiGLU FFN. Llama 3.x
 * files carry rope_freqs.weight, divisors of each rotary frequency. When
 * llama.expert_count is set the FFN is Mixtral's routed experts: softmax
 * over the router logits, top-k, weights renormalised to sum 1.
 */
#include "models.h"

static int llama_load(rf_model_t *m, rf_err_t *err)
{
    /* Mixtral has no dense FFN: feed_forward_length is the expert width. */
    uint32_t n_expert = 0;
    int rc = rf__key_u32(m, "expert_count", false, 0, &n_expert, err);
    if (rc < 0)
        return rc;
    rc = rf__load_common(m, RF_ROPE_NORMAL, n_expert == 0, err);
    if (rc < 0)
        return rc;
    m->hp.expert_weights_norm = true;
    rc = rf__load_experts(m, false, NULL, err);
    if (rc < 0)
        return rc;
    if (m->hp.n_expert > 0)
        m->hp.n_ff = 0;
    return 0;
}

static int llama_build(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__plan_embed(&m->plan, &m->token_embd);
    for (uint32_t l = 0; l < m->hp.n_layer && rc == 0; l++) {
        rc = rf__plan_attention_block(m, (int)l);
        if (rc == 0)
            rc = m->hp.n_expert > 0 ? rf__plan_moe_ffn_block(m, (int)l)
                                    : rf__plan_dense_ffn_block(m, (int)l);
    }
    if (rc == 0)
        rc = rf__plan_output(m);
    if (rc < 0)
        return rf_err_set(err, rc, "model: out of memory building the llama plan");
    return 0;
}

const rf__arch_desc_t rf__arch_llama = {
    .name = "llama",
    .arch = RF_ARCH_LLAMA,
    .rope_kind = RF_ROPE_NORMAL,
    .load = llama_load,
    .build = llama_build,
};
