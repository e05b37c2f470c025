/* engine.c - the engine facade over a model and its backend
 *
 * Today the backend is always the CPU one; the GPU backend will be chosen
 * here from an option, running the same rf_plan_t.
 */
#include "engine.h"

#include <errno.h>
#include <stdlib.h>

#include "cpu/cpu.h"

struct rf_engine {
    rf_model_t *model;
    rf_cpu_backend_t *cpu;
};

int rf_engine_open(rf_engine_t **out, const char *path, const rf_engine_options_t *opt,
                   rf_err_t *err)
{
    *out = NULL;
    rf_engine_options_t o = opt != NULL ? *opt : (rf_engine_options_t){0};
    rf_engine_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return rf_err_set(err, -ENOMEM, "engine: out of memory");
    rf_model_options_t mo = {.no_tokenizer = o.no_tokenizer};
    int rc = rf_model_open(&e->model, path, &mo, err);
    if (rc < 0)
        goto fail;
    rf_cpu_options_t co = {.n_threads = o.n_threads, .n_ctx = o.n_ctx, .max_seqs = o.max_seqs,
                           .kv_block_size = o.kv_block_size};
    if (o.kv_paged) {
        uint32_t bs = o.kv_block_size ? o.kv_block_size : 16;
        uint32_t n_ctx = o.n_ctx;
        if (n_ctx == 0)
            n_ctx = e->model->hp.n_ctx_train > 0 && e->model->hp.n_ctx_train < 4096
                        ? e->model->hp.n_ctx_train : 4096;
        uint64_t blocks = o.kv_blocks;
        if (blocks == 0 && o.kv_memory > 0)
            blocks = o.kv_memory / rf_cpu_kv_block_bytes(e->model, bs);
        if (blocks == 0)
            blocks = 1 + (uint64_t)(o.max_seqs ? o.max_seqs : 1) * ((n_ctx + bs - 1) / bs);
        if (blocks < 2 || blocks > UINT32_MAX) {
            rc = rf_err_set(err, RF_ERANGE, "engine: a KV pool of %llu blocks of %u positions "
                            "(%zu bytes each) is out of range; %s",
                            (unsigned long long)blocks, bs, rf_cpu_kv_block_bytes(e->model, bs),
                            blocks < 2 ? "raise --kv-memory" : "lower --kv-memory");
            goto fail;
        }
        co.kv_blocks = (uint32_t)blocks;
    }
    rc = rf_cpu_backend_open(&e->cpu, e->model, &co, err);
    if (rc < 0)
        goto fail;
    *out = e;
    return 0;
fail:
    rf_engine_close(e);
    return rc;
}

void rf_engine_close(rf_engine_t *e)
{
    if (e == NULL)
        return;
    rf_cpu_backend_close(e->cpu);
    rf_model_close(e->model);
    free(e);
}

int rf_engine_eval(rf_engine_t *e, const rf_batch_t *batch, rf_err_t *err)
{
    return rf_cpu_backend_eval(e->cpu, batch, err);
}

const float *rf_engine_logits(const rf_engine_t *e, uint32_t i)
{
    return rf_cpu_backend_logits(e->cpu, i);
}

uint32_t rf_engine_seq_len(const rf_engine_t *e, int32_t seq)
{
    return rf_cpu_backend_seq_len(e->cpu, seq);
}

int rf_engine_seq_truncate(rf_engine_t *e, int32_t seq, uint32_t n_pos)
{
    return rf_cpu_backend_seq_truncate(e->cpu, seq, n_pos);
}

int rf_engine_seq_bind(rf_engine_t *e, int32_t seq, const uint32_t *blocks, uint32_t n_blocks,
                       uint32_t n_pos)
{
    return rf_cpu_backend_seq_bind(e->cpu, seq, blocks, n_blocks, n_pos);
}

int rf_engine_kv_copy(rf_engine_t *e, uint32_t src, uint32_t dst)
{
    return rf_cpu_backend_kv_copy(e->cpu, src, dst);
}

uint32_t rf_engine_kv_blocks(const rf_engine_t *e)
{
    return rf_cpu_backend_kv_blocks(e->cpu);
}

bool rf_engine_kv_paged(const rf_engine_t *e)
{
    return rf_cpu_backend_kv_paged(e->cpu);
}

uint32_t rf_engine_kv_block_size(const rf_engine_t *e)
{
    return rf_cpu_backend_kv_block_size(e->cpu);
}

size_t rf_engine_kv_block_bytes(const rf_model_t *m, uint32_t block_size)
{
    return rf_cpu_kv_block_bytes(m, block_size);
}

const rf_model_t *rf_engine_model(const rf_engine_t *e)
{
    return e->model;
}

const rf_hparams_t *rf_engine_hparams(const rf_engine_t *e)
{
    return &e->model->hp;
}

const rf_tokenizer_t *rf_engine_tokenizer(const rf_engine_t *e)
{
    return e->model->tokenizer;
}

int rf_engine_n_threads(const rf_engine_t *e)
{
    return rf_cpu_backend_n_threads(e->cpu);
}

uint32_t rf_engine_n_ctx(const rf_engine_t *e)
{
    return rf_cpu_backend_n_ctx(e->cpu);
}

uint32_t rf_engine_max_seqs(const rf_engine_t *e)
{
    return rf_cpu_backend_max_seqs(e->cpu);
}
