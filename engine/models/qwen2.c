/* qwen2.c - the qwen2 architecture: Qwen 2 and 2.5
 *
 * Llama's layer with biases on the Q, K and V projections and RoPE NeoX
 * (rotating dimension i with i + n_rot/2, as Hugging Face's rotate_half
 * does; the converter leaves the Q/K rows in their original order).
 * Small models tie the output to the embeddings.
 */
#include "models.h"

static int qwen2_load(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__load_common(m, RF_ROPE_NEOX, true, err);
    if (rc < 0)
        return rc;
    const rf_hparams_t *hp = &m->hp;
    uint64_t q_w = (uint64_t)hp->n_head * hp->head_dim_k;
    uint64_t k_w = (uint64_t)hp->n_head_kv * hp->head_dim_k;
    uint64_t v_w = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        rf_layer_weights_t *L = &m->layers[l];
        if ((rc = rf__weight(m, &L->bq, true, q_w, 1, 1, err, "blk.%u.attn_q.bias", l)) < 0 ||
            (rc = rf__weight(m, &L->bk, true, k_w, 1, 1, err, "blk.%u.attn_k.bias", l)) < 0 ||
            (rc = rf__weight(m, &L->bv, true, v_w, 1, 1, err, "blk.%u.attn_v.bias", l)) < 0)
            return rc;
    }
    m->hp.qkv_bias = true;
    return 0;
}

static int qwen2_build(rf_model_t *m, rf_err_t *err)
{
    int rc = rf__plan_embed(&m->plan, &m->token_embd);
    for (uint32_t l = 0; l < m->hp.n_layer && rc == 0; l++) {
        rc = rf__plan_attention_block(m, (int)l); /* the biases ride on the matmuls */
        if (rc == 0)
            rc = rf__plan_dense_ffn_block(m, (int)l);
    }
    if (rc == 0)
        rc = rf__plan_output(m);
    if (rc < 0)
        return rf_err_set(err, rc, "model: out of memory building the qwen2 plan");
    return 0;
}

const rf__arch_desc_t rf__arch_qwen2 = {
    .name = "qwen2",
    .arch = RF_ARCH_QWEN2,
    .rope_kind = RF_ROPE_NEOX,
    .load = qwen2_load,
    .build = qwen2_build,
};
