/* qwen3moe.c - the qwen3moe architecture: Qwen 3 mixture-of-experts models
 *
 * Qwen 3's attention (per-head Q/K RMSNorm, NeoX RoPE) with every FFN
 * replaced by routed experts: a router (ffn_gate_inp) gives n_expert
 * logits, softmax, the top expert_used_count experts run a SwiGLU FFN of
 * width qwen3moe.expert_feed_forward_length, and their outputs are summed
 * with the routing weights. There is no shared expert. The released models
 * all set norm_topk_prob = true and llama.cpp renormalises the top-k
 * weights unconditionally for this architecture; so do we.
 */
#include "models.h"

static int qwen3moe_load(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__load_common(m, RF_ROPE_NEOX, false, err);
    if (rc < 0)
        return rc;
    if ((rc = rf__qwen3_load_qk_norm(m, err)) < 0)
        return rc;
    m->hp.expert_weights_norm = true;
    m->hp.n_ff = 0;
    return rf__load_experts(m, true, "expert_feed_forward_length", err);
}

static int qwen3moe_build(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__plan_embed(&m->plan, &m->token_embd);
    for (uint32_t l = 0; l < m->hp.n_layer && rc == 0; l++) {
        rc = rf__plan_attention_block(m, (int)l);
        if (rc == 0)
            rc = rf__plan_moe_ffn_block(m, (int)l);
    }
    if (rc == 0)
        rc = rf__plan_output(m);
    if (rc < 0)
        return rf_err_set(err, rc, "model: out of memory building the qwen3moe plan");
    return 0;
}

const rf__arch_desc_t rf__arch_qwen3moe = {
    .name = "qwen3moe",
    .arch = RF_ARCH_QWEN3MOE,
    .rope_kind = RF_ROPE_NEOX,
    .load = qwen3moe_load,
    .build = qwen3moe_build,
};
