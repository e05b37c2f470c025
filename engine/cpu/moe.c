/* moe.c - routed experts FFN (Mixtral, Qwen 3 MoE) on the CPU
 *
 * Router logits for the whole batch (one matmul with ffn_gate_inp), then
 * per token: softmax over all experts, the top-k (ties go to the lower
 * expert id), and, where the architecture asks (expert_weights_norm), the
 * k weights rescaled to sum 1. The experts then run grouped: each expert
 * with at least one token gathers its tokens' rows and runs gate/up
 * matmuls, SwiGLU and the down matmul on just those rows. Each token's
 * output is summed over its experts in ascending expert id, so the result
 * does not depend on the other tokens of the batch.
 */
#include <string.h>

#include "cpu_internal.h"

static rf_weight_t expert_slice(const rf_weight_t *w, uint32_t e)
{
    rf_weight_t s = *w;
    s.data = (const uint8_t *)w->data + (size_t)e * w->ne[1] * w->row_bytes;
    s.ne[2] = 1;
    return s;
}

/* Top-k of probs [n] into ids/weights [k], largest first. */
static void top_k(const float *probs, uint32_t n, uint32_t k, int32_t *ids, float *weights)
{
    for (uint32_t j = 0; j < k; j++) {
        int32_t best = -1;
        for (uint32_t e = 0; e < n; e++) {
            bool taken = false;
            for (uint32_t i = 0; i < j; i++)
                taken |= ids[i] == (int32_t)e;
            if (!taken && (best < 0 || probs[e] > probs[best]))
                best = (int32_t)e;
        }
        ids[j] = best;
        weights[j] = probs[best];
    }
}

/* Expert e's first packed group, or NULL. */
static const uint8_t *expert_packed(const rf__cpu_packed_t *p, uint32_t e)
{
    return p->data != NULL ? p->data + (size_t)e * p->expert_bytes : NULL;
}

void rf__cpu_moe(rf__cpu_matmul_ctx_t *mm, const rf_hparams_t *hp, const rf_op_t *op,
                 const rf__cpu_packed_t packed[4], uint32_t n_tokens, const float *src,
                 float *dst, rf__cpu_moe_scratch_t *s)
{
    const uint32_t n_embd = hp->n_embd, n_expert = hp->n_expert, k = hp->n_expert_used;
    const uint32_t n_ff = hp->n_ff_expert;

    rf__cpu_matmul(mm, op->w[0], packed[0].data, NULL, src, n_embd, NULL, n_tokens, s->router,
                   n_expert);
    for (uint32_t t = 0; t < n_tokens; t++) {
        float *probs = s->router + (size_t)t * n_expert;
        rf__cpu_softmax(probs, n_expert);
        int32_t *ids = s->chosen + (size_t)t * k;
        float *w = s->weights + (size_t)t * k;
        top_k(probs, n_expert, k, ids, w);
        if (hp->expert_weights_norm) {
            double sum = 0.0;
            for (uint32_t j = 0; j < k; j++)
                sum += w[j];
            for (uint32_t j = 0; j < k; j++)
                w[j] = (float)(w[j] / sum);
        }
    }

    memset(dst, 0, (size_t)n_tokens * n_embd * sizeof(float));
    for (uint32_t e = 0; e < n_expert; e++) {
        uint32_t n = 0;
        for (uint32_t t = 0; t < n_tokens; t++)
            for (uint32_t j = 0; j < k; j++)
                if (s->chosen[(size_t)t * k + j] == (int32_t)e) {
                    s->rows[n] = (int32_t)t;
                    s->row_weights[n] = s->weights[(size_t)t * k + j];
                    n++;
                }
        if (n == 0)
            continue;
        rf_weight_t gate = expert_slice(op->w[1], e);
        rf_weight_t up = expert_slice(op->w[2], e);
        rf_weight_t down = expert_slice(op->w[3], e);
        const rf__cpu_matmul_out_t gate_up[2] = {
            {.w = &gate, .packed = expert_packed(&packed[1], e), .dst = s->gate,
             .dst_stride = n_ff},
            {.w = &up, .packed = expert_packed(&packed[2], e), .dst = s->up,
             .dst_stride = n_ff},
        };
        if (rf__cpu_matmul_can_share(&gate, gate_up[0].packed, &up, gate_up[1].packed)) {
            rf__cpu_matmul_multi(mm, gate_up, 2, src, n_embd, s->rows, n);
        } else {
            rf__cpu_matmul_multi(mm, &gate_up[0], 1, src, n_embd, s->rows, n);
            rf__cpu_matmul_multi(mm, &gate_up[1], 1, src, n_embd, s->rows, n);
        }
        for (uint32_t i = 0; i < n; i++)
            rf__cpu_swiglu(s->gate + (size_t)i * n_ff, s->up + (size_t)i * n_ff, n_ff);
        rf__cpu_matmul(mm, &down, expert_packed(&packed[3], e), NULL, s->gate, n_ff, NULL, n,
                       s->down, n_embd);
        for (uint32_t i = 0; i < n; i++) {
            float *out = dst + (size_t)s->rows[i] * n_embd;
            const float *d = s->down + (size_t)i * n_embd;
            float wgt = s->row_weights[i];
            for (uint32_t c = 0; c < n_embd; c++)
                out[c] += wgt * d[c];
        }
    }
}
