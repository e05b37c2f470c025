/* common.c - key and tensor readers and plan emitters for engine/models/
 *
 * The architectures here differ in a few places (Q/K/V biases, per-head
 * Q/K norms, RoPE layout, routed experts) and share everything else; the
 * shared loading and the shared blocks of the plan live in this file, and
 * each architecture file says which of them it uses, in which order.
 */
#include "models.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

/* Return from the enclosing function (with an int rc in scope) on error. */
#define TRY(call)              \
    do {                       \
        if ((rc = (call)) < 0) \
            return rc;         \
    } while (0)

/* ------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------ */

static void key_name(const rf_model_t *m, const char *suffix, char *buf, size_t size)
{
    snprintf(buf, size, "%s.%s", m->arch_name, suffix);
}

int rf__key_u32(rf_model_t *m, const char *suffix, bool required, uint32_t def,
                uint32_t *out, rf_err_t *err)
{
    char key[128];
    key_name(m, suffix, key, sizeof key);
    int rc = rf_gguf_get_u32(m->gguf, key, out);
    if (rc == 1) {
        if (required)
            return rf_err_set(err, RF_ENOTFOUND, "model: key %s is missing (architecture %s "
                              "needs it)", key, m->arch_name);
        *out = def;
        return 0;
    }
    if (rc < 0)
        return rf_err_set(err, rc, "model: key %s: %s (expected an unsigned 32-bit integer)",
                          key, rf_strerror(rc));
    return 0;
}

int rf__key_f32(rf_model_t *m, const char *suffix, bool required, float def, float *out,
                rf_err_t *err)
{
    char key[128];
    key_name(m, suffix, key, sizeof key);
    int rc = rf_gguf_get_f32(m->gguf, key, out);
    if (rc == 1) {
        if (required)
            return rf_err_set(err, RF_ENOTFOUND, "model: key %s is missing (architecture %s "
                              "needs it)", key, m->arch_name);
        *out = def;
        return 0;
    }
    if (rc < 0)
        return rf_err_set(err, rc, "model: key %s: %s (expected a float)", key,
                          rf_strerror(rc));
    return 0;
}

/* ------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------ */

static const char *keep_name(rf_model_t *m, const char *name)
{
    if (m->n_names == m->cap_names) {
        size_t cap = m->cap_names ? 2 * m->cap_names : 64;
        char **bigger = realloc(m->names, cap * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        m->names = bigger;
        m->cap_names = cap;
    }
    char *copy = strdup(name);
    if (copy == NULL)
        return NULL;
    m->names[m->n_names++] = copy;
    return copy;
}

int rf__weight(rf_model_t *m, rf_weight_t *w, bool required, uint64_t ne0, uint64_t ne1,
               uint64_t ne2, rf_err_t *err, const char *fmt, ...)
{
    char name[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    memset(w, 0, sizeof *w);

    const rf_gguf_tensor_t *t = rf_gguf_find_tensor(m->gguf, name);
    if (t == NULL) {
        if (!required)
            return 0;
        return rf_err_set(err, RF_ENOTFOUND, "model: tensor %s is missing (architecture %s "
                          "needs it)", name, m->arch_name);
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != ne2 || t->ne[3] != 1)
        return rf_err_set(err, RF_EFORMAT, "model: tensor %s has shape [%llu, %llu, %llu, %llu],"
                          " expected [%llu, %llu, %llu] from the hyperparameters", name,
                          (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                          (unsigned long long)t->ne[2], (unsigned long long)t->ne[3],
                          (unsigned long long)ne0, (unsigned long long)ne1,
                          (unsigned long long)ne2);
    const rf_type_traits_t *tr = rf_type_traits(t->type);
    if (tr == NULL || !tr->can_dequantize)
        return rf_err_set(err, RF_EUNSUPPORTED, "model: tensor %s has type %s, which rocmforge "
                          "cannot compute with", name, rf_type_name(t->type));
    if (ne1 == 1 && ne2 == 1 && t->type != RF_TYPE_F32)
        return rf_err_set(err, RF_EFORMAT, "model: tensor %s is %s; norm, bias and frequency "
                          "vectors must be F32", name, rf_type_name(t->type));
    uint64_t row_bytes = 0;
    int rc = rf_type_row_bytes(t->type, ne0, &row_bytes);
    if (rc < 0)
        return rf_err_set(err, rc, "model: tensor %s: rows of %llu %s elements: %s", name,
                          (unsigned long long)ne0, rf_type_name(t->type), rf_strerror(rc));
    const char *kept = keep_name(m, name);
    if (kept == NULL)
        return rf_err_set(err, -ENOMEM, "model: out of memory loading tensor %s", name);
    w->data = t->data;
    w->type = t->type;
    w->ne[0] = ne0;
    w->ne[1] = ne1;
    w->ne[2] = ne2;
    w->row_bytes = row_bytes;
    w->name = kept;
    return 0;
}

int rf__load_common(rf_model_t *m, rf_rope_kind_t rope_kind, bool dense_ffn, rf_err_t *err)
{
    rf_hparams_t *hp = &m->hp;
    int rc;
    TRY(rf__key_u32(m, "embedding_length", true, 0, &hp->n_embd, err));
    TRY(rf__key_u32(m, "block_count", true, 0, &hp->n_layer, err));
    TRY(rf__key_u32(m, "context_length", false, 0, &hp->n_ctx_train, err));
    TRY(rf__key_u32(m, "attention.head_count", true, 0, &hp->n_head, err));
    TRY(rf__key_u32(m, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err));
    TRY(rf__key_u32(m, "feed_forward_length", dense_ffn, 0, &hp->n_ff, err));
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_head == 0 || hp->n_head_kv == 0)
        return rf_err_set(err, RF_EFORMAT, "model: %s.embedding_length, block_count, "
                          "attention.head_count and head_count_kv must be non-zero "
                          "(have %u, %u, %u, %u)", m->arch_name, hp->n_embd, hp->n_layer,
                          hp->n_head, hp->n_head_kv);
    if (hp->n_head % hp->n_head_kv != 0)
        return rf_err_set(err, RF_EFORMAT, "model: %s.attention.head_count %u is not a multiple "
                          "of head_count_kv %u", m->arch_name, hp->n_head, hp->n_head_kv);
    if (dense_ffn && hp->n_ff == 0)
        return rf_err_set(err, RF_EFORMAT, "model: %s.feed_forward_length is 0", m->arch_name);
    uint32_t default_hd = hp->n_embd % hp->n_head == 0 ? hp->n_embd / hp->n_head : 0;
    TRY(rf__key_u32(m, "attention.key_length", false, default_hd, &hp->head_dim_k, err));
    TRY(rf__key_u32(m, "attention.value_length", false, hp->head_dim_k, &hp->head_dim_v, err));
    if (hp->head_dim_k == 0 || hp->head_dim_v == 0)
        return rf_err_set(err, RF_EFORMAT, "model: head size is 0: set %s.attention.key_length "
                          "(embedding_length %u is not a multiple of head_count %u)",
                          m->arch_name, hp->n_embd, hp->n_head);
    TRY(rf__key_u32(m, "rope.dimension_count", false, hp->head_dim_k, &hp->n_rot, err));
    if (hp->n_rot > hp->head_dim_k || hp->n_rot % 2 != 0)
        return rf_err_set(err, RF_EFORMAT, "model: %s.rope.dimension_count %u must be even and "
                          "at most the head size %u", m->arch_name, hp->n_rot, hp->head_dim_k);
    TRY(rf__key_f32(m, "rope.freq_base", false, 10000.0f, &hp->rope_freq_base, err));
    TRY(rf__key_f32(m, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps, err));
    hp->rope_kind = rope_kind;
    hp->rope_freq_scale = 1.0f;

    /* Linear scaling is a plain position divisor; YaRN and friends change
     * the attention math and are refused rather than approximated. */
    char key[128];
    rf_gguf_str_t scaling;
    key_name(m, "rope.scaling.type", key, sizeof key);
    rc = rf_gguf_get_str(m->gguf, key, &scaling);
    if (rc < 0)
        return rf_err_set(err, rc, "model: key %s: %s (expected a string)", key,
                          rf_strerror(rc));
    float factor = 0.0f;
    if (rc == 0 && !rf_gguf_str_eq(scaling, "none")) {
        if (!rf_gguf_str_eq(scaling, "linear"))
            return rf_err_set(err, RF_EUNSUPPORTED, "model: %s = \"%.*s\" is not supported "
                              "(only none and linear)", key, (int)scaling.len, scaling.data);
        TRY(rf__key_f32(m, "rope.scaling.factor", true, 0, &factor, err));
    } else if (rc == 1) {
        TRY(rf__key_f32(m, "rope.scale_linear", false, 0.0f, &factor, err));
    }
    if (factor > 0.0f)
        hp->rope_freq_scale = 1.0f / factor;

    /* Tensors. */
    const rf_gguf_tensor_t *embd = rf_gguf_find_tensor(m->gguf, "token_embd.weight");
    if (embd == NULL)
        return rf_err_set(err, RF_ENOTFOUND, "model: tensor token_embd.weight is missing "
                          "(architecture %s needs it)", m->arch_name);
    uint32_t n_vocab_key = 0;
    TRY(rf__key_u32(m, "vocab_size", false, 0, &n_vocab_key, err));
    if (embd->ne[1] == 0 || embd->ne[1] > INT32_MAX)
        return rf_err_set(err, RF_EFORMAT, "model: tensor token_embd.weight has %llu rows",
                          (unsigned long long)embd->ne[1]);
    hp->n_vocab = (uint32_t)embd->ne[1];
    if (n_vocab_key != 0 && n_vocab_key != hp->n_vocab)
        return rf_err_set(err, RF_EFORMAT, "model: %s.vocab_size is %u but token_embd.weight "
                          "has %u rows", m->arch_name, n_vocab_key, hp->n_vocab);
    uint64_t E = hp->n_embd, V = hp->n_vocab;
    uint64_t q_w = (uint64_t)hp->n_head * hp->head_dim_k;
    uint64_t k_w = (uint64_t)hp->n_head_kv * hp->head_dim_k;
    uint64_t v_w = (uint64_t)hp->n_head_kv * hp->head_dim_v;
    uint64_t o_w = (uint64_t)hp->n_head * hp->head_dim_v;
    TRY(rf__weight(m, &m->token_embd, true, E, V, 1, err, "token_embd.weight"));
    TRY(rf__weight(m, &m->output_norm, true, E, 1, 1, err, "output_norm.weight"));
    TRY(rf__weight(m, &m->output, false, E, V, 1, err, "output.weight"));
    hp->tied_output = m->output.data == NULL;
    if (hp->tied_output)
        m->output = m->token_embd;
    TRY(rf__weight(m, &m->rope_freqs, false, hp->n_rot / 2, 1, 1, err, "rope_freqs.weight"));
    hp->has_rope_freqs = m->rope_freqs.data != NULL;

    m->layers = calloc(hp->n_layer, sizeof *m->layers);
    if (m->layers == NULL)
        return rf_err_set(err, -ENOMEM, "model: out of memory for %u layers", hp->n_layer);
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        rf_layer_weights_t *L = &m->layers[l];
        TRY(rf__weight(m, &L->attn_norm, true, E, 1, 1, err, "blk.%u.attn_norm.weight", l));
        TRY(rf__weight(m, &L->wq, true, E, q_w, 1, err, "blk.%u.attn_q.weight", l));
        TRY(rf__weight(m, &L->wk, true, E, k_w, 1, err, "blk.%u.attn_k.weight", l));
        TRY(rf__weight(m, &L->wv, true, E, v_w, 1, err, "blk.%u.attn_v.weight", l));
        TRY(rf__weight(m, &L->wo, true, o_w, E, 1, err, "blk.%u.attn_output.weight", l));
        TRY(rf__weight(m, &L->ffn_norm, true, E, 1, 1, err, "blk.%u.ffn_norm.weight", l));
        if (dense_ffn) {
            uint64_t F = hp->n_ff;
            TRY(rf__weight(m, &L->ffn_gate, true, E, F, 1, err, "blk.%u.ffn_gate.weight", l));
            TRY(rf__weight(m, &L->ffn_up, true, E, F, 1, err, "blk.%u.ffn_up.weight", l));
            TRY(rf__weight(m, &L->ffn_down, true, F, E, 1, err, "blk.%u.ffn_down.weight", l));
        }
    }
    return 0;
}

int rf__load_experts(rf_model_t *m, bool required, const char *ff_key, rf_err_t *err)
{
    rf_hparams_t *hp = &m->hp;
    int rc;
    TRY(rf__key_u32(m, "expert_count", required, 0, &hp->n_expert, err));
    if (hp->n_expert == 0) {
        if (required)
            return rf_err_set(err, RF_EFORMAT, "model: %s.expert_count is 0", m->arch_name);
        return 0;
    }
    TRY(rf__key_u32(m, "expert_used_count", true, 0, &hp->n_expert_used, err));
    if (hp->n_expert_used == 0 || hp->n_expert_used > hp->n_expert)
        return rf_err_set(err, RF_EFORMAT, "model: %s.expert_used_count %u must be in 1..%u "
                          "(expert_count)", m->arch_name, hp->n_expert_used, hp->n_expert);
    /* Without an explicit key (llama/Mixtral), newer files may still carry
     * expert_feed_forward_length; older ones give the width as
     * feed_forward_length. */
    if (ff_key == NULL) {
        TRY(rf__key_u32(m, "expert_feed_forward_length", false, 0, &hp->n_ff_expert, err));
        ff_key = hp->n_ff_expert != 0 ? "expert_feed_forward_length" : "feed_forward_length";
    }
    TRY(rf__key_u32(m, ff_key, true, 0, &hp->n_ff_expert, err));
    if (hp->n_ff_expert == 0)
        return rf_err_set(err, RF_EFORMAT, "model: %s.%s is 0", m->arch_name, ff_key);
    uint64_t E = hp->n_embd, F = hp->n_ff_expert, X = hp->n_expert;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        rf_layer_weights_t *L = &m->layers[l];
        /* Old Mixtral conversions stored one tensor per expert
         * (blk.N.ffn_gate.E.weight); llama.cpp merges them at load, we ask
         * for a re-conversion instead. */
        char old[64];
        snprintf(old, sizeof old, "blk.%u.ffn_gate.0.weight", l);
        if (rf_gguf_find_tensor(m->gguf, old) != NULL)
            return rf_err_set(err, RF_EUNSUPPORTED, "model: tensor %s: per-expert tensors are "
                              "not supported; re-convert the model with a current llama.cpp "
                              "(merged ffn_*_exps tensors)", old);
        TRY(rf__weight(m, &L->ffn_gate_inp, true, E, X, 1, err, "blk.%u.ffn_gate_inp.weight", l));
        TRY(rf__weight(m, &L->ffn_gate_exps, true, E, F, X, err, "blk.%u.ffn_gate_exps.weight", l));
        TRY(rf__weight(m, &L->ffn_up_exps, true, E, F, X, err, "blk.%u.ffn_up_exps.weight", l));
        TRY(rf__weight(m, &L->ffn_down_exps, true, F, E, X, err, "blk.%u.ffn_down_exps.weight", l));
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Plan emitters
 * ------------------------------------------------------------------------ */

static rf_op_t *plan_push(rf_plan_t *p, rf_op_kind_t kind, int layer)
{
    if (p->n_ops == p->cap_ops) {
        size_t cap = p->cap_ops ? 2 * p->cap_ops : 64;
        rf_op_t *bigger = realloc(p->ops, cap * sizeof *bigger);
        if (bigger == NULL)
            return NULL;
        p->ops = bigger;
        p->cap_ops = cap;
    }
    rf_op_t *op = &p->ops[p->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->layer = layer;
    return op;
}

int rf__plan_embed(rf_plan_t *p, const rf_weight_t *token_embd)
{
    rf_op_t *op = plan_push(p, RF_OP_EMBED, -1);
    if (op == NULL)
        return -ENOMEM;
    op->dst = RF_BUF_X;
    op->w[0] = token_embd;
    return 0;
}

int rf__plan_rmsnorm(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src, const rf_weight_t *w)
{
    rf_op_t *op = plan_push(p, RF_OP_RMSNORM, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = dst;
    op->src = src;
    op->w[0] = w;
    return 0;
}

int rf__plan_head_rmsnorm(rf_plan_t *p, int layer, rf_buf_t buf, const rf_weight_t *w)
{
    rf_op_t *op = plan_push(p, RF_OP_HEAD_RMSNORM, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = buf;
    op->src = buf;
    op->w[0] = w;
    op->head_dim = (uint32_t)w->ne[0];
    return 0;
}

int rf__plan_matmul(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src, const rf_weight_t *w,
                    const rf_weight_t *bias)
{
    rf_op_t *op = plan_push(p, RF_OP_MATMUL, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = dst;
    op->src = src;
    op->w[0] = w;
    op->bias = bias != NULL && bias->data != NULL ? bias : NULL;
    return 0;
}

int rf__plan_rope(rf_plan_t *p, int layer, rf_buf_t buf, uint32_t head_dim,
                  const rf_weight_t *rope_freqs)
{
    rf_op_t *op = plan_push(p, RF_OP_ROPE, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = buf;
    op->head_dim = head_dim;
    op->w[0] = rope_freqs != NULL && rope_freqs->data != NULL ? rope_freqs : NULL;
    return 0;
}

int rf__plan_attention(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t q, rf_buf_t k,
                       rf_buf_t v)
{
    rf_op_t *op = plan_push(p, RF_OP_ATTENTION, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = dst;
    op->src = q;
    op->src2 = k;
    op->src3 = v;
    return 0;
}

int rf__plan_swiglu(rf_plan_t *p, int layer, rf_buf_t gate_inout, rf_buf_t up)
{
    rf_op_t *op = plan_push(p, RF_OP_SWIGLU, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = gate_inout;
    op->src = up;
    return 0;
}

int rf__plan_add(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src)
{
    rf_op_t *op = plan_push(p, RF_OP_ADD, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = dst;
    op->src = src;
    return 0;
}

int rf__plan_moe(rf_plan_t *p, int layer, rf_buf_t dst, rf_buf_t src,
                 const rf_layer_weights_t *lw)
{
    rf_op_t *op = plan_push(p, RF_OP_MOE, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = dst;
    op->src = src;
    op->w[0] = &lw->ffn_gate_inp;
    op->w[1] = &lw->ffn_gate_exps;
    op->w[2] = &lw->ffn_up_exps;
    op->w[3] = &lw->ffn_down_exps;
    return 0;
}

int rf__plan_logits(rf_plan_t *p, rf_buf_t src, const rf_weight_t *output)
{
    rf_op_t *op = plan_push(p, RF_OP_LOGITS, -1);
    if (op == NULL)
        return -ENOMEM;
    op->src = src;
    op->w[0] = output;
    return 0;
}

int rf__plan_output_rows(rf_plan_t *p, int layer, rf_buf_t a, rf_buf_t b)
{
    rf_op_t *op = plan_push(p, RF_OP_OUTPUT_ROWS, layer);
    if (op == NULL)
        return -ENOMEM;
    op->dst = a;
    op->src = b;
    return 0;
}

void rf__plan_widths(rf_plan_t *p, const rf_hparams_t *hp)
{
    uint32_t ff = hp->n_ff > hp->n_ff_expert ? hp->n_ff : hp->n_ff_expert;
    memset(p->width, 0, sizeof p->width);
    p->width[RF_BUF_X] = hp->n_embd;
    p->width[RF_BUF_XN] = hp->n_embd;
    p->width[RF_BUF_Q] = hp->n_head * hp->head_dim_k;
    p->width[RF_BUF_K] = hp->n_head_kv * hp->head_dim_k;
    p->width[RF_BUF_V] = hp->n_head_kv * hp->head_dim_v;
    p->width[RF_BUF_ATTN] = hp->n_head * hp->head_dim_v;
    p->width[RF_BUF_FF_A] = ff;
    p->width[RF_BUF_FF_B] = ff;
    p->width[RF_BUF_OUT] = hp->n_embd;
}

/* ------------------------------------------------------------------------
 * Shared blocks
 * ------------------------------------------------------------------------ */

int rf__plan_attention_block(rf_model_t *m, int layer)
{
    rf_plan_t *p = &m->plan;
    const rf_layer_weights_t *L = &m->layers[layer];
    const rf_hparams_t *hp = &m->hp;
    int rc = 0;
    rc |= rf__plan_rmsnorm(p, layer, RF_BUF_XN, RF_BUF_X, &L->attn_norm);
    rc |= rf__plan_matmul(p, layer, RF_BUF_Q, RF_BUF_XN, &L->wq, &L->bq);
    rc |= rf__plan_matmul(p, layer, RF_BUF_K, RF_BUF_XN, &L->wk, &L->bk);
    rc |= rf__plan_matmul(p, layer, RF_BUF_V, RF_BUF_XN, &L->wv, &L->bv);
    if (hp->qk_norm) {
        rc |= rf__plan_head_rmsnorm(p, layer, RF_BUF_Q, &L->q_norm);
        rc |= rf__plan_head_rmsnorm(p, layer, RF_BUF_K, &L->k_norm);
    }
    rc |= rf__plan_rope(p, layer, RF_BUF_Q, hp->head_dim_k, &m->rope_freqs);
    rc |= rf__plan_rope(p, layer, RF_BUF_K, hp->head_dim_k, &m->rope_freqs);
    rc |= rf__plan_attention(p, layer, RF_BUF_ATTN, RF_BUF_Q, RF_BUF_K, RF_BUF_V);
    /* The rest of the last layer only feeds the logits. */
    if ((uint32_t)layer + 1 == hp->n_layer)
        rc |= rf__plan_output_rows(p, layer, RF_BUF_X, RF_BUF_ATTN);
    rc |= rf__plan_matmul(p, layer, RF_BUF_OUT, RF_BUF_ATTN, &L->wo, NULL);
    rc |= rf__plan_add(p, layer, RF_BUF_X, RF_BUF_OUT);
    return rc ? -ENOMEM : 0;
}

int rf__plan_dense_ffn_block(rf_model_t *m, int layer)
{
    rf_plan_t *p = &m->plan;
    const rf_layer_weights_t *L = &m->layers[layer];
    int rc = 0;
    rc |= rf__plan_rmsnorm(p, layer, RF_BUF_XN, RF_BUF_X, &L->ffn_norm);
    rc |= rf__plan_matmul(p, layer, RF_BUF_FF_A, RF_BUF_XN, &L->ffn_gate, NULL);
    rc |= rf__plan_matmul(p, layer, RF_BUF_FF_B, RF_BUF_XN, &L->ffn_up, NULL);
    rc |= rf__plan_swiglu(p, layer, RF_BUF_FF_A, RF_BUF_FF_B);
    rc |= rf__plan_matmul(p, layer, RF_BUF_OUT, RF_BUF_FF_A, &L->ffn_down, NULL);
    rc |= rf__plan_add(p, layer, RF_BUF_X, RF_BUF_OUT);
    return rc ? -ENOMEM : 0;
}

int rf__plan_moe_ffn_block(rf_model_t *m, int layer)
{
    rf_plan_t *p = &m->plan;
    const rf_layer_weights_t *L = &m->layers[layer];
    int rc = 0;
    rc |= rf__plan_rmsnorm(p, layer, RF_BUF_XN, RF_BUF_X, &L->ffn_norm);
    rc |= rf__plan_moe(p, layer, RF_BUF_OUT, RF_BUF_XN, L);
    rc |= rf__plan_add(p, layer, RF_BUF_X, RF_BUF_OUT);
    return rc ? -ENOMEM : 0;
}

int rf__plan_output(rf_model_t *m)
{
    rf_plan_t *p = &m->plan;
    int rc = 0;
    rc |= rf__plan_rmsnorm(p, -1, RF_BUF_XN, RF_BUF_X, &m->output_norm);
    rc |= rf__plan_logits(p, RF_BUF_XN, &m->output);
    return rc ? -ENOMEM : 0;
}
