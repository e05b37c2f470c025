/* engine.c - the engine facade over a model and its backend
 *
 * Opens the model and one backend for it - the CPU backend, or in GPU
 * builds (RF_HAVE_GPU) the GPU backend - and forwards every call to it.
 * Both run the same rf_plan_t and keep the same batch and KV contract.
 */
#include "engine.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "cpu/cpu.h"
#ifdef RF_HAVE_GPU
#include "gpu/gpu.h"
#include "kernels.h"
#endif

struct rf_engine {
    rf_model_t *model;
    rf_cpu_backend_t *cpu;
#ifdef RF_HAVE_GPU
    rf_gpu_backend_t *gpu;
#endif
};

#ifdef RF_HAVE_GPU
#define DISPATCH(e, gpu_call, cpu_call) ((e)->gpu != NULL ? (gpu_call) : (cpu_call))
#else
#define DISPATCH(e, gpu_call, cpu_call) (cpu_call)
#endif

bool rf_engine_gpu_available(void)
{
#ifdef RF_HAVE_GPU
    int n = 0;
    return rf_gpu_device_count(&n) == 0 && n > 0;
#else
    return false;
#endif
}

int rf_engine_gpu_count(void)
{
#ifdef RF_HAVE_GPU
    int n = 0;
    return rf_gpu_device_count(&n) == 0 ? n : 0;
#else
    return 0;
#endif
}

static uint32_t default_ctx(const rf_model_t *m, uint32_t n_ctx)
{
    if (n_ctx != 0)
        return n_ctx;
    return m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
}

/* Blocks of the paged pool from the options (0: the backend decides). */
static int pool_blocks(const rf_engine_options_t *o, const rf_model_t *m, size_t block_bytes,
                       uint32_t *out, rf_err_t *err)
{
    uint32_t bs = o->kv_block_size ? o->kv_block_size : 16;
    uint64_t blocks = o->kv_blocks;
    if (blocks == 0 && o->kv_memory > 0)
        blocks = o->kv_memory / block_bytes;
    else if (blocks == 0 && o->gpu_memory > 0)
        blocks = 0; /* the GPU backend sizes it from free memory */
    else if (blocks == 0)
        blocks = 1 + (uint64_t)(o->max_seqs ? o->max_seqs : 1) *
                         ((default_ctx(m, o->n_ctx) + bs - 1) / bs);
    if ((blocks != 0 && blocks < 2) || blocks > UINT32_MAX)
        return rf_err_set(err, RF_ERANGE, "engine: a KV pool of %llu blocks of %u positions "
                          "(%zu bytes each) is out of range; %s", (unsigned long long)blocks,
                          bs, block_bytes, blocks < 2 ? "raise --kv-memory" : "lower --kv-memory");
    *out = (uint32_t)blocks;
    return 0;
}

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
    bool gpu = o.device == RF_DEVICE_GPU ||
               (o.device == RF_DEVICE_AUTO && rf_engine_gpu_available());
    uint32_t bs = o.kv_block_size ? o.kv_block_size : 16;
    if (gpu) {
#ifdef RF_HAVE_GPU
        rf_gpu_options_t go = {.device = o.gpu_index, .n_ctx = o.n_ctx, .max_seqs = o.max_seqs,
                               .kv_block_size = bs, .kv_paged = o.kv_paged,
                               .gpu_memory = o.gpu_memory};
        if (o.kv_paged) {
            rc = pool_blocks(&o, e->model, rf_gpu_kv_block_bytes(e->model, bs), &go.kv_blocks,
                             err);
            if (rc < 0)
                goto fail;
        }
        rc = rf_gpu_backend_open(&e->gpu, e->model, &go, err);
#else
        rc = rf_err_set(err, RF_ENOGPU, "engine: this build has no GPU backend (configure with "
                        "-DRF_GPU=HIP or -DRF_GPU=CUDA); use --device cpu");
#endif
    } else {
        rf_cpu_options_t co = {.n_threads = o.n_threads, .n_ctx = o.n_ctx,
                               .max_seqs = o.max_seqs, .kv_block_size = bs};
        if (o.kv_paged) {
            o.gpu_memory = 0;
            rc = pool_blocks(&o, e->model, rf_cpu_kv_block_bytes(e->model, bs), &co.kv_blocks,
                             err);
            if (rc < 0)
                goto fail;
        }
        rc = rf_cpu_backend_open(&e->cpu, e->model, &co, err);
    }
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
#ifdef RF_HAVE_GPU
    rf_gpu_backend_close(e->gpu);
#endif
    rf_model_close(e->model);
    free(e);
}

int rf_engine_eval(rf_engine_t *e, const rf_batch_t *batch, rf_err_t *err)
{
    return DISPATCH(e, rf_gpu_backend_eval(e->gpu, batch, err),
                    rf_cpu_backend_eval(e->cpu, batch, err));
}

const float *rf_engine_logits(const rf_engine_t *e, uint32_t i)
{
    return DISPATCH(e, rf_gpu_backend_logits(e->gpu, i), rf_cpu_backend_logits(e->cpu, i));
}

int rf_engine_greedy(const rf_engine_t *e, uint32_t i, int32_t *token, float *logprob)
{
#ifdef RF_HAVE_GPU
    if (e->gpu != NULL && rf_gpu_backend_greedy(e->gpu, i, token, logprob) == 0)
        return 0;
#endif
    const float *lg = rf_engine_logits(e, i);
    if (lg == NULL)
        return RF_ERANGE;
    uint32_t n = e->model->hp.n_vocab, best = 0;
    for (uint32_t v = 1; v < n; v++)
        if (lg[v] > lg[best])
            best = v;
    double sum = 0.0;
    for (uint32_t v = 0; v < n; v++)
        sum += exp((double)lg[v] - lg[best]);
    *token = (int32_t)best;
    *logprob = (float)-log(sum);
    return 0;
}

uint32_t rf_engine_seq_len(const rf_engine_t *e, int32_t seq)
{
    return DISPATCH(e, rf_gpu_backend_seq_len(e->gpu, seq), rf_cpu_backend_seq_len(e->cpu, seq));
}

int rf_engine_seq_truncate(rf_engine_t *e, int32_t seq, uint32_t n_pos)
{
    return DISPATCH(e, rf_gpu_backend_seq_truncate(e->gpu, seq, n_pos),
                    rf_cpu_backend_seq_truncate(e->cpu, seq, n_pos));
}

int rf_engine_seq_bind(rf_engine_t *e, int32_t seq, const uint32_t *blocks, uint32_t n_blocks,
                       uint32_t n_pos)
{
    return DISPATCH(e, rf_gpu_backend_seq_bind(e->gpu, seq, blocks, n_blocks, n_pos),
                    rf_cpu_backend_seq_bind(e->cpu, seq, blocks, n_blocks, n_pos));
}

int rf_engine_kv_copy(rf_engine_t *e, uint32_t src, uint32_t dst)
{
    return DISPATCH(e, rf_gpu_backend_kv_copy(e->gpu, src, dst),
                    rf_cpu_backend_kv_copy(e->cpu, src, dst));
}

uint32_t rf_engine_kv_blocks(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_backend_kv_blocks(e->gpu), rf_cpu_backend_kv_blocks(e->cpu));
}

bool rf_engine_kv_paged(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_backend_kv_paged(e->gpu), rf_cpu_backend_kv_paged(e->cpu));
}

uint32_t rf_engine_kv_block_size(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_backend_kv_block_size(e->gpu),
                    rf_cpu_backend_kv_block_size(e->cpu));
}

size_t rf_engine_kv_block_bytes(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_kv_block_bytes(e->model, rf_gpu_backend_kv_block_size(e->gpu)),
                    rf_cpu_kv_block_bytes(e->model, rf_cpu_backend_kv_block_size(e->cpu)));
}

const char *rf_engine_device_name(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_backend_device_name(e->gpu), "cpu");
}

bool rf_engine_on_gpu(const rf_engine_t *e)
{
    return DISPATCH(e, true, false);
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
    return DISPATCH(e, 1, rf_cpu_backend_n_threads(e->cpu));
}

uint32_t rf_engine_n_ctx(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_backend_n_ctx(e->gpu), rf_cpu_backend_n_ctx(e->cpu));
}

uint32_t rf_engine_max_seqs(const rf_engine_t *e)
{
    return DISPATCH(e, rf_gpu_backend_max_seqs(e->gpu), rf_cpu_backend_max_seqs(e->cpu));
}
