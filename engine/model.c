/* model.c - open a GGUF model: architecture, hyperparameters, weights, plan
 *
 * The architecture named by general.architecture picks a description in
 * engine/models/; its load hook reads hyperparameters and finds the
 * weights (zero-copy, in the mapping), its build hook writes the plan.
 * Every failure names the key or tensor at fault.
 */
#include "model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/models.h"

static const rf__arch_desc_t *const arches[] = {
    &rf__arch_llama,
    &rf__arch_qwen2,
    &rf__arch_qwen3,
    &rf__arch_qwen3moe,
};
#define N_ARCHES (sizeof arches / sizeof arches[0])

const char *rf_arch_name(rf_arch_t arch)
{
    for (size_t i = 0; i < N_ARCHES; i++)
        if (arches[i]->arch == arch)
            return arches[i]->name;
    return "?";
}

const char *rf_op_name(rf_op_kind_t kind)
{
    switch (kind) {
    case RF_OP_EMBED: return "embed";
    case RF_OP_RMSNORM: return "rmsnorm";
    case RF_OP_HEAD_RMSNORM: return "head_rmsnorm";
    case RF_OP_MATMUL: return "matmul";
    case RF_OP_ROPE: return "rope";
    case RF_OP_ATTENTION: return "attention";
    case RF_OP_SWIGLU: return "swiglu";
    case RF_OP_ADD: return "add";
    case RF_OP_MOE: return "moe";
    case RF_OP_LOGITS: return "logits";
    case RF_OP_OUTPUT_ROWS: return "output_rows";
    }
    return "?";
}

const char *rf_buf_name(rf_buf_t buf)
{
    static const char *const names[RF_BUF_COUNT] = {
        "none", "x", "xn", "q", "k", "v", "attn", "ff_a", "ff_b", "out",
    };
    return (unsigned)buf < RF_BUF_COUNT ? names[buf] : "?";
}

void rf_model_close(rf_model_t *m)
{
    if (m == NULL)
        return;
    rf_tokenizer_close(m->tokenizer);
    rf_gguf_close(m->gguf);
    free(m->layers);
    free(m->plan.ops);
    for (size_t i = 0; i < m->n_names; i++)
        free(m->names[i]);
    free(m->names);
    free(m);
}

int rf_model_open_gguf(rf_model_t **out, rf_gguf_t *g, const rf_model_options_t *opt,
                       rf_err_t *err)
{
    *out = NULL;
    rf_model_t *m = calloc(1, sizeof *m);
    if (m == NULL) {
        rf_gguf_close(g);
        return rf_err_set(err, -ENOMEM, "model: out of memory");
    }
    m->gguf = g;
    int rc;
    rf_gguf_str_t arch;
    rc = rf_gguf_get_str(g, "general.architecture", &arch);
    if (rc != 0) {
        rc = rc == 1 ? RF_ENOTFOUND : rc;
        rf_err_set(err, rc, "model: key general.architecture is %s",
                   rc == RF_ENOTFOUND ? "missing" : "not a string");
        goto fail;
    }
    const rf__arch_desc_t *desc = NULL;
    for (size_t i = 0; i < N_ARCHES; i++)
        if (rf_gguf_str_eq(arch, arches[i]->name))
            desc = arches[i];
    if (desc == NULL) {
        rc = rf_err_set(err, RF_EUNSUPPORTED, "model: architecture \"%.*s\" "
                        "(general.architecture) is not supported; supported: llama, qwen2, "
                        "qwen3, qwen3moe", (int)(arch.len > 64 ? 64 : arch.len), arch.data);
        goto fail;
    }
    snprintf(m->arch_name, sizeof m->arch_name, "%s", desc->name);
    m->hp.arch = desc->arch;
    if ((rc = desc->load(m, err)) < 0)
        goto fail;
    m->hp.rope_kind = desc->rope_kind;
    rf__plan_widths(&m->plan, &m->hp);
    if ((rc = desc->build(m, err)) < 0)
        goto fail;
    if (opt == NULL || !opt->no_tokenizer) {
        if ((rc = rf_tokenizer_open(&m->tokenizer, g, err)) < 0)
            goto fail;
    }
    *out = m;
    return 0;
fail:
    rf_model_close(m);
    return rc;
}

int rf_model_open(rf_model_t **out, const char *path, const rf_model_options_t *opt,
                  rf_err_t *err)
{
    *out = NULL;
    rf_gguf_t *g = NULL;
    int rc = rf_gguf_open(&g, path, err);
    if (rc < 0)
        return rc;
    rc = rf_model_open_gguf(out, g, opt, err);
    if (rc < 0)
        rf_err_set(err, rc, "%s: %s", path, rf_strerror(rc));
    return rc;
}

int rf_batch_check(const rf_batch_t *batch, const rf_batch_limits_t *lim, rf_err_t *err)
{
    if (batch->tokens == NULL || batch->positions == NULL || batch->seq_ids == NULL)
        return rf_err_set(err, RF_ERANGE, "batch: tokens, positions and seq_ids are required");
    memset(lim->scratch, 0, lim->max_seqs * sizeof *lim->scratch);
    for (uint32_t i = 0; i < batch->n_tokens; i++) {
        int32_t tok = batch->tokens[i], seq = batch->seq_ids[i], pos = batch->positions[i];
        if (tok < 0 || (uint32_t)tok >= lim->n_vocab)
            return rf_err_set(err, RF_ERANGE, "batch token %u: id %d is outside the vocabulary "
                              "(0..%u)", i, tok, lim->n_vocab - 1);
        if (seq < 0 || (uint32_t)seq >= lim->max_seqs)
            return rf_err_set(err, RF_ERANGE, "batch token %u: sequence %d is outside 0..%u "
                              "(raise max_seqs)", i, seq, lim->max_seqs - 1);
        uint32_t expected = lim->seq_len[seq] + lim->scratch[seq];
        if (pos < 0 || (uint32_t)pos != expected)
            return rf_err_set(err, RF_ERANGE, "batch token %u: position %d of sequence %d, "
                              "expected %u (positions continue the sequence's cache; truncate "
                              "it to go back)", i, pos, seq, expected);
        if (expected >= lim->n_ctx)
            return rf_err_set(err, RF_ERANGE, "batch token %u: position %d of sequence %d is "
                              "past n_ctx = %u", i, pos, seq, lim->n_ctx);
        if (expected >= (uint64_t)lim->table_len[seq] * lim->block_size)
            return rf_err_set(err, RF_ERANGE, "batch token %u: position %d of sequence %d is "
                              "past its %u KV blocks (bind a longer block table)", i, pos, seq,
                              lim->table_len[seq]);
        lim->scratch[seq]++;
    }
    return 0;
}
