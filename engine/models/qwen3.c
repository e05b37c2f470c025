/* qwen3.c - the qwen3 architecture: Qwen 3 dense models
 *
 * Qwen 2's layer without the Q/K/V biases and with an RMSNorm over each
 * head of Q and of K (attn_q_norm, attn_k_norm, [head_dim]) between the
 * projection and RoPE. The head size is qwen3.attention.key_length (128),
 * not embedding_length / head_count. RoPE NeoX.
 */
#include "models.h"

int rf__qwen3_load_qk_norm(rf_model_t *m, rf_err_t *err)
{
    const rf_hparams_t *hp = &m->hp;
    int rc;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        rf_layer_weights_t *L = &m->layers[l];
        if ((rc = rf__weight(m, &L->q_norm, true, hp->head_dim_k, 1, 1, err,
                             "blk.%u.attn_q_norm.weight", l)) < 0 ||
            (rc = rf__weight(m, &L->k_norm, true, hp->head_dim_k, 1, 1, err,
                             "blk.%u.attn_k_norm.weight", l)) < 0)
            return rc;
    }
    m->hp.qk_norm = true;
    return 0;
}

static int qwen3_load(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__load_common(m, RF_ROPE_NEOX, true, err);
    if (rc < 0)
        return rc;
    return rf__qwen3_load_qk_norm(m, err);
}

static int qwen3_build(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__plan_embed(&m->plan, &m->token_embd);
    for (uint32_t l = 0; l < m->hp.n_layer && rc == 0; l++) {
        rc = rf__plan_attention_block(m, (int)l); /* adds the Q/K head norms */
        if (rc == 0)
            rc = rf__plan_dense_ffn_block(m, (int)l);
    }
    if (rc == 0)
        rc = rf__plan_output(m);
    if (rc < 0)
        return rf_err_set(err, rc, "model: out of memory building the qwen3 plan");
    return 0;
}

const rf__arch_desc_t rf__arch_qwen3 = {
    .name = "qwen3",
    .arch = RF_ARCH_QWEN3,
    .rope_kind = RF_ROPE_NEOX,
    .load = qwen3_load,
    .build = qwen3_build,
};
