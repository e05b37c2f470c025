/* backend.c - the CPU backend: validate a batch, run the plan, keep logits
 *
 * Design notes
 *
 * Invariants:
 *   1. kv.seq_len[s] positions of sequence s are valid in every layer's
 *      cache, in the blocks of its table; rows at or past it are garbage
 *      and never read.
 *   2. An eval either fails before touching anything (validation) or runs
 *      to the end: no op can fail once the buffers are sized.
 *   3. Every float of every activation buffer for a token is a function of
 *      that token's inputs and its sequence's cached K/V only; nothing
 *      mixes tokens except attention, which reads the cache.
 *
 * Sequence state, per sequence:
 *
 *     length n --rf_cpu_backend_eval (k tokens of s)--> length n + k
 *     length n --rf_cpu_backend_seq_truncate(s, m)--> length min(n, m)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpu_internal.h"
#include "quant.h"

struct rf_cpu_backend {
    const rf_model_t *model;
    rf__cpu_pool_t pool;
    rf__cpu_matmul_ctx_t mm;
    rf__cpu_kv_t kv;
    uint32_t n_ctx, max_seqs;
    uint32_t cap_tokens;         /* activation buffers hold this many tokens */
    float *buf[RF_BUF_COUNT];    /* [cap_tokens][plan.width[buf]] */
    float *scores;               /* [n_threads][n_ctx] attention scratch */
    size_t act_row_max;          /* bytes of the largest quantized activation row */
    rf__cpu_moe_scratch_t moe;   /* sized for cap_tokens */
    rf__cpu_packed_t (*packed)[4]; /* [plan.n_ops]: op->w[0..3] packed, or zeroed */
    void *packed_arena;          /* mmapped; holds every packed weight */
    size_t packed_arena_bytes;
    float *logits;               /* [cap_tokens][n_vocab] */
    int32_t *logit_rows;         /* [cap_tokens] batch index of each logits row */
    int32_t *logit_of;           /* [cap_tokens] logits row of batch token i, -1 none */
    uint32_t *seq_count;         /* [max_seqs] validation scratch */
    uint32_t n_batch, n_logits;  /* of the last successful eval */
};

/* ------------------------------------------------------------------------
 * Buffers
 * ------------------------------------------------------------------------ */

static void free_buffers(rf_cpu_backend_t *b)
{
    for (int i = 0; i < RF_BUF_COUNT; i++) {
        free(b->buf[i]);
        b->buf[i] = NULL;
    }
    free(b->mm.act);
    free(b->logits);
    free(b->logit_rows);
    free(b->logit_of);
    free(b->moe.router);
    free(b->moe.chosen);
    free(b->moe.weights);
    free(b->moe.rows);
    free(b->moe.row_weights);
    free(b->moe.gate);
    free(b->moe.up);
    free(b->moe.down);
    memset(&b->moe, 0, sizeof b->moe);
    b->mm.act = NULL;
    b->logits = NULL;
    b->logit_rows = b->logit_of = NULL;
    b->cap_tokens = 0;
}

static int reserve(rf_cpu_backend_t *b, uint32_t n_tokens)
{
    if (n_tokens <= b->cap_tokens)
        return 0;
    free_buffers(b);
    const rf_hparams_t *hp = &b->model->hp;
    const rf_plan_t *p = &b->model->plan;
    size_t n = n_tokens;
    bool ok = true;
    for (int i = 1; i < RF_BUF_COUNT; i++)
        if (p->width[i] > 0)
            ok &= (b->buf[i] = malloc(n * p->width[i] * sizeof(float))) != NULL;
    size_t act_bytes = (n * b->act_row_max + 63) / 64 * 64;
    ok &= (b->mm.act = aligned_alloc(64, act_bytes)) != NULL;
    b->mm.act_size = act_bytes;
    ok &= (b->logits = malloc(n * hp->n_vocab * sizeof(float))) != NULL;
    ok &= (b->logit_rows = malloc(n * sizeof(int32_t))) != NULL;
    ok &= (b->logit_of = malloc(n * sizeof(int32_t))) != NULL;
    if (hp->n_expert > 0) {
        ok &= (b->moe.router = malloc(n * hp->n_expert * sizeof(float))) != NULL;
        ok &= (b->moe.chosen = malloc(n * hp->n_expert_used * sizeof(int32_t))) != NULL;
        ok &= (b->moe.weights = malloc(n * hp->n_expert_used * sizeof(float))) != NULL;
        ok &= (b->moe.rows = malloc(n * sizeof(int32_t))) != NULL;
        ok &= (b->moe.row_weights = malloc(n * sizeof(float))) != NULL;
        ok &= (b->moe.gate = malloc(n * hp->n_ff_expert * sizeof(float))) != NULL;
        ok &= (b->moe.up = malloc(n * hp->n_ff_expert * sizeof(float))) != NULL;
        ok &= (b->moe.down = malloc(n * hp->n_embd * sizeof(float))) != NULL;
    }
    if (!ok) {
        free_buffers(b);
        return -ENOMEM;
    }
    b->cap_tokens = n_tokens;
    return 0;
}

/* ------------------------------------------------------------------------
 * Plan checks
 * ------------------------------------------------------------------------ */

static int check_matmul_weight(rf_cpu_backend_t *b, const rf_weight_t *w, uint64_t in,
                               uint64_t out, rf_err_t *err)
{
    if (!rf_cpu_vec_dot_supported(w->type))
        return rf_err_set(err, RF_EUNSUPPORTED, "cpu backend: tensor %s has type %s, which has "
                          "no CPU dot product", w->name, rf_type_name(w->type));
    if (w->ne[0] != in || w->ne[1] != out)
        return rf_err_set(err, RF_EFORMAT, "cpu backend: tensor %s is [%llu, %llu] but the plan "
                          "multiplies [%llu] into [%llu]", w->name,
                          (unsigned long long)w->ne[0], (unsigned long long)w->ne[1],
                          (unsigned long long)in, (unsigned long long)out);
    size_t bytes = rf__cpu_matmul_act_row_bytes(w, b->mm.isa);
    if (bytes > b->act_row_max)
        b->act_row_max = bytes;
    return 0;
}

static int check_plan(rf_cpu_backend_t *b, rf_err_t *err)
{
    const rf_plan_t *p = &b->model->plan;
    const rf_hparams_t *hp = &b->model->hp;
    int rc = 0;
    for (size_t i = 0; i < p->n_ops && rc == 0; i++) {
        const rf_op_t *op = &p->ops[i];
        switch (op->kind) {
        case RF_OP_MATMUL:
            rc = check_matmul_weight(b, op->w[0], p->width[op->src], p->width[op->dst], err);
            break;
        case RF_OP_MOE:
            rc = check_matmul_weight(b, op->w[0], hp->n_embd, hp->n_expert, err);
            if (rc == 0)
                rc = check_matmul_weight(b, op->w[1], hp->n_embd, hp->n_ff_expert, err);
            if (rc == 0)
                rc = check_matmul_weight(b, op->w[2], hp->n_embd, hp->n_ff_expert, err);
            if (rc == 0)
                rc = check_matmul_weight(b, op->w[3], hp->n_ff_expert, hp->n_embd, err);
            break;
        case RF_OP_LOGITS:
            rc = check_matmul_weight(b, op->w[0], p->width[op->src], hp->n_vocab, err);
            break;
        default:
            break;
        }
    }
    return rc;
}

/* Weights op i multiplies with (op->w[0..n)). */
static int matmul_weights(const rf_op_t *op)
{
    switch (op->kind) {
    case RF_OP_MATMUL:
    case RF_OP_LOGITS:
        return 1;
    case RF_OP_MOE:
        return 4;
    default:
        return 0;
    }
}

/* Pack every matmul weight the ISA has a packed kernel for (Q4_0 and Q8_0
 * with AVX-512) into one anonymous mapping: a copy made once, read every
 * token. Whole 2 MiB pages, so the kernel can back it with huge pages (the
 * weights stream past every token; 4 KiB pages cost TLB misses). Without
 * the memory for it every weight stays unpacked, which gives the same
 * results, slower. */
static int pack_weights(rf_cpu_backend_t *b)
{
    const rf_plan_t *p = &b->model->plan;
    b->packed = calloc(p->n_ops > 0 ? p->n_ops : 1, sizeof *b->packed);
    if (b->packed == NULL)
        return -ENOMEM;
    size_t total = 0;
    for (size_t i = 0; i < p->n_ops; i++)
        for (int k = 0; k < matmul_weights(&p->ops[i]); k++)
            total += rf__cpu_packed_bytes(b->mm.isa, p->ops[i].w[k]);
    if (total == 0)
        return 0;
    const size_t huge = 2u << 20;
    const size_t map_bytes = (total + huge - 1) / huge * huge;
    void *arena = mmap(NULL, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    if (arena == MAP_FAILED)
        return 0;
#ifdef MADV_HUGEPAGE
    (void)madvise(arena, map_bytes, MADV_HUGEPAGE); /* a hint: failing costs only speed */
#endif
    b->packed_arena = arena;
    b->packed_arena_bytes = map_bytes;
    uint8_t *at = arena;
    for (size_t i = 0; i < p->n_ops; i++)
        for (int k = 0; k < matmul_weights(&p->ops[i]); k++) {
            const size_t bytes = rf__cpu_packed_bytes(b->mm.isa, p->ops[i].w[k]);
            if (bytes == 0)
                continue;
            rf__cpu_pack_weight(&b->pool, p->ops[i].w[k], at, &b->packed[i][k]);
            at += bytes;
        }
    return 0;
}

static void free_packed(rf_cpu_backend_t *b)
{
    if (b->packed_arena != NULL)
        munmap(b->packed_arena, b->packed_arena_bytes);
    b->packed_arena = NULL;
    free(b->packed);
    b->packed = NULL;
}

/* ------------------------------------------------------------------------
 * Per-token ops
 * ------------------------------------------------------------------------ */

typedef struct token_task {
    rf_cpu_backend_t *b;
    const rf_op_t *op;
    const rf_batch_t *batch;
    uint32_t n_rows;      /* rows live in the buffers (tokens, or output rows) */
} token_task_t;

static void token_op(const token_task_t *tt, uint32_t t)
{
    rf_cpu_backend_t *b = tt->b;
    const rf_op_t *op = tt->op;
    const rf_hparams_t *hp = &b->model->hp;
    const uint32_t *width = b->model->plan.width;
    float *dst = b->buf[op->dst] + (size_t)t * width[op->dst];
    const float *src = op->src != RF_BUF_NONE ? b->buf[op->src] + (size_t)t * width[op->src]
                                              : NULL;
    switch (op->kind) {
    case RF_OP_EMBED: {
        const rf_weight_t *w = op->w[0];
        const uint8_t *row = (const uint8_t *)w->data + (size_t)tt->batch->tokens[t] * w->row_bytes;
        rf_dequantize_row(w->type, row, dst, (int64_t)w->ne[0]);
        break;
    }
    case RF_OP_RMSNORM:
        rf__cpu_rmsnorm(dst, src, op->w[0]->data, width[op->dst], hp->rms_eps);
        break;
    case RF_OP_HEAD_RMSNORM:
        for (uint32_t h = 0; h < width[op->dst] / op->head_dim; h++)
            rf__cpu_rmsnorm(dst + (size_t)h * op->head_dim, src + (size_t)h * op->head_dim,
                            op->w[0]->data, op->head_dim, hp->rms_eps);
        break;
    case RF_OP_ROPE:
        rf__cpu_rope(dst, width[op->dst] / op->head_dim, op->head_dim, hp->n_rot, hp->rope_kind,
                     hp->rope_freq_base, hp->rope_freq_scale,
                     op->w[0] != NULL ? op->w[0]->data : NULL, tt->batch->positions[t]);
        break;
    case RF_OP_SWIGLU:
        rf__cpu_swiglu(dst, src, width[op->dst]);
        break;
    case RF_OP_ADD:
        for (uint32_t i = 0; i < width[op->dst]; i++)
            dst[i] += src[i];
        break;
    default:
        break;
    }
}

static void token_op_task(void *ctx, int ith, int nth)
{
    const token_task_t *tt = ctx;
    int64_t begin, end;
    rf__cpu_split(tt->n_rows, ith, nth, &begin, &end);
    for (int64_t t = begin; t < end; t++)
        token_op(tt, (uint32_t)t);
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

int rf_cpu_backend_open(rf_cpu_backend_t **out, const rf_model_t *m,
                        const rf_cpu_options_t *opt, rf_err_t *err)
{
    *out = NULL;
    rf_cpu_options_t o = opt != NULL ? *opt : (rf_cpu_options_t){0};
    if (o.n_threads < 0 || o.n_threads > 1024)
        return rf_err_set(err, RF_ERANGE, "cpu backend: threads = %d; use 1..1024, or 0 for "
                          "all cores", o.n_threads);
    if (o.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.n_threads = n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
    }
    if (o.n_ctx == 0)
        o.n_ctx = m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if (o.n_ctx > (1u << 24))
        return rf_err_set(err, RF_ERANGE, "cpu backend: n_ctx = %u is more than 16M positions",
                          o.n_ctx);
    if (o.max_seqs == 0)
        o.max_seqs = 1;
    if (o.max_seqs > 65536)
        return rf_err_set(err, RF_ERANGE, "cpu backend: max_seqs = %u; use 1..65536",
                          o.max_seqs);
    rf_cpu_backend_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return rf_err_set(err, -ENOMEM, "cpu backend: out of memory");
    b->model = m;
    b->n_ctx = o.n_ctx;
    b->max_seqs = o.max_seqs;
    b->mm.isa = rf_cpu_isa_best();
    int rc = check_plan(b, err);
    if (rc < 0)
        goto fail;
    const rf_hparams_t *hp = &m->hp;
    if (o.kv_block_size == 0)
        o.kv_block_size = 16;
    if (o.kv_block_size > 4096 || (o.kv_blocks != 0 && o.kv_blocks < 2)) {
        rc = rf_err_set(err, RF_ERANGE, "cpu backend: KV block size %u (1..4096) or %u blocks "
                        "(at least 2) out of range", o.kv_block_size, o.kv_blocks);
        goto fail;
    }
    rc = rf__cpu_kv_init(&b->kv, hp->n_layer, o.max_seqs, o.n_ctx,
                         hp->n_head_kv * hp->head_dim_k, hp->n_head_kv * hp->head_dim_v,
                         o.kv_block_size, o.kv_blocks);
    if (rc < 0) {
        if (o.kv_blocks != 0)
            rf_err_set(err, rc, "cpu backend: cannot allocate a KV pool of %u blocks of %u "
                       "positions (%zu bytes each); lower --kv-memory", o.kv_blocks,
                       o.kv_block_size, rf_cpu_kv_block_bytes(m, o.kv_block_size));
        else
            rf_err_set(err, rc, "cpu backend: cannot allocate the KV cache for %u sequences of "
                       "%u positions (%u layers); lower max_seqs or n_ctx", o.max_seqs, o.n_ctx,
                       hp->n_layer);
        goto fail;
    }
    b->seq_count = calloc(o.max_seqs, sizeof *b->seq_count);
    b->scores = malloc((size_t)o.n_threads * o.n_ctx * sizeof(float));
    if (b->seq_count == NULL || b->scores == NULL) {
        rc = rf_err_set(err, -ENOMEM, "cpu backend: out of memory");
        goto fail;
    }
    rc = rf__cpu_pool_init(&b->pool, o.n_threads);
    if (rc < 0) {
        rf_err_set(err, rc, "cpu backend: starting %d threads: %s", o.n_threads,
                   rf_strerror(rc));
        goto fail;
    }
    b->mm.pool = &b->pool;
    rc = pack_weights(b);
    if (rc < 0) {
        rf_err_set(err, rc, "cpu backend: out of memory");
        goto fail;
    }
    *out = b;
    return 0;
fail:
    rf_cpu_backend_close(b);
    return rc;
}

void rf_cpu_backend_close(rf_cpu_backend_t *b)
{
    if (b == NULL)
        return;
    rf__cpu_pool_free(&b->pool);
    free_packed(b);
    rf__cpu_kv_free(&b->kv);
    free_buffers(b);
    free(b->scores);
    free(b->seq_count);
    free(b);
}

int rf_cpu_backend_n_threads(const rf_cpu_backend_t *b)
{
    return b->pool.n_threads;
}

uint32_t rf_cpu_backend_n_ctx(const rf_cpu_backend_t *b)
{
    return b->n_ctx;
}

uint32_t rf_cpu_backend_max_seqs(const rf_cpu_backend_t *b)
{
    return b->max_seqs;
}

size_t rf_cpu_kv_block_bytes(const rf_model_t *m, uint32_t block_size)
{
    const rf_hparams_t *hp = &m->hp;
    return (size_t)hp->n_layer * block_size * hp->n_head_kv *
           (hp->head_dim_k + hp->head_dim_v) * sizeof(float);
}

int rf_cpu_backend_seq_bind(rf_cpu_backend_t *b, int32_t seq, const uint32_t *blocks,
                            uint32_t n_blocks, uint32_t n_pos)
{
    if (seq < 0)
        return RF_ERANGE;
    return rf__cpu_kv_bind(&b->kv, (uint32_t)seq, blocks, n_blocks, n_pos);
}

int rf_cpu_backend_kv_copy(rf_cpu_backend_t *b, uint32_t src, uint32_t dst)
{
    return rf__cpu_kv_copy_block(&b->kv, src, dst);
}

uint32_t rf_cpu_backend_kv_blocks(const rf_cpu_backend_t *b)
{
    return b->kv.n_blocks;
}

bool rf_cpu_backend_kv_paged(const rf_cpu_backend_t *b)
{
    return b->kv.own == NULL;
}

uint32_t rf_cpu_backend_kv_block_size(const rf_cpu_backend_t *b)
{
    return b->kv.block_size;
}

uint32_t rf_cpu_backend_seq_len(const rf_cpu_backend_t *b, int32_t seq)
{
    if (seq < 0 || (uint32_t)seq >= b->max_seqs)
        return 0;
    return b->kv.seq_len[seq];
}

int rf_cpu_backend_seq_truncate(rf_cpu_backend_t *b, int32_t seq, uint32_t n_pos)
{
    if (seq < 0 || (uint32_t)seq >= b->max_seqs)
        return RF_ERANGE;
    if (n_pos < b->kv.seq_len[seq])
        b->kv.seq_len[seq] = n_pos;
    return 0;
}

const float *rf_cpu_backend_logits(const rf_cpu_backend_t *b, uint32_t i)
{
    if (i >= b->n_batch || b->logit_of == NULL || b->logit_of[i] < 0)
        return NULL;
    return b->logits + (size_t)b->logit_of[i] * b->model->hp.n_vocab;
}

static int validate(rf_cpu_backend_t *b, const rf_batch_t *batch, rf_err_t *err)
{
    rf_batch_limits_t lim = {.n_vocab = b->model->hp.n_vocab, .max_seqs = b->max_seqs,
                             .n_ctx = b->n_ctx, .block_size = b->kv.block_size,
                             .seq_len = b->kv.seq_len, .table_len = b->kv.table_len,
                             .scratch = b->seq_count};
    return rf_batch_check(batch, &lim, err);
}

int rf_cpu_backend_eval(rf_cpu_backend_t *b, const rf_batch_t *batch, rf_err_t *err)
{
    b->n_batch = 0;
    b->n_logits = 0;
    if (batch->n_tokens == 0)
        return 0;
    int rc = validate(b, batch, err);
    if (rc < 0)
        return rc;
    rc = reserve(b, batch->n_tokens);
    if (rc < 0)
        return rf_err_set(err, rc, "cpu backend: out of memory for a batch of %u tokens",
                          batch->n_tokens);
    const rf_model_t *m = b->model;
    const rf_hparams_t *hp = &m->hp;
    uint32_t n = batch->n_tokens;

    /* Which tokens get logits: as asked, or the last of each sequence. */
    uint32_t n_logits = 0;
    for (uint32_t i = 0; i < n; i++) {
        bool want;
        if (batch->logits != NULL) {
            want = batch->logits[i] != 0;
        } else {
            want = true;
            for (uint32_t j = i + 1; j < n && want; j++)
                want = batch->seq_ids[j] != batch->seq_ids[i];
        }
        b->logit_of[i] = want ? (int32_t)n_logits : -1;
        if (want)
            b->logit_rows[n_logits++] = (int32_t)i;
    }

    /* n rows live in the buffers: every token, until RF_OP_OUTPUT_ROWS
     * packs them down to the logits rows (then row r is logits row r). */
    const rf_plan_t *p = &m->plan;
    const int32_t *logit_src_rows = b->logit_rows;
    for (size_t i = 0; i < p->n_ops; i++) {
        const rf_op_t *op = &p->ops[i];
        switch (op->kind) {
        case RF_OP_OUTPUT_ROWS: {
            /* logit_rows is increasing, so packing forward never overwrites
             * a row still to be read. */
            rf_buf_t bufs[2] = {op->dst, op->src};
            for (int k = 0; k < 2; k++) {
                size_t w = p->width[bufs[k]];
                float *buf = b->buf[bufs[k]];
                for (uint32_t r = 0; r < n_logits; r++)
                    if ((uint32_t)b->logit_rows[r] != r)
                        memcpy(buf + r * w, buf + (size_t)b->logit_rows[r] * w,
                               w * sizeof(float));
            }
            n = n_logits;
            logit_src_rows = NULL;
            break;
        }
        case RF_OP_MATMUL: {
            /* The matmuls that follow on the same input run in one pass. */
            rf__cpu_matmul_out_t outs[RF__CPU_MATMUL_MAX_PARTS];
            int n_outs = 0;
            for (size_t j = i; j < p->n_ops && n_outs < RF__CPU_MATMUL_MAX_PARTS; j++) {
                const rf_op_t *o = &p->ops[j];
                if (o->kind != RF_OP_MATMUL || o->src != op->src || o->dst == op->src ||
                    !rf__cpu_matmul_can_share(op->w[0], b->packed[i][0].data, o->w[0],
                                              b->packed[j][0].data))
                    break;
                bool dst_taken = false;
                for (int k = 0; k < n_outs; k++)
                    dst_taken |= outs[k].dst == b->buf[o->dst];
                if (dst_taken)
                    break;
                outs[n_outs++] = (rf__cpu_matmul_out_t){
                    .w = o->w[0], .packed = b->packed[j][0].data,
                    .bias = o->bias != NULL ? o->bias->data : NULL, .dst = b->buf[o->dst],
                    .dst_stride = p->width[o->dst],
                };
            }
            rf__cpu_matmul_multi(&b->mm, outs, n_outs, b->buf[op->src], p->width[op->src],
                                 NULL, n);
            i += (size_t)n_outs - 1;
            break;
        }
        case RF_OP_ATTENTION: {
            rf__cpu_kv_store(&b->kv, (uint32_t)op->layer, n, batch->positions, batch->seq_ids,
                             b->buf[op->src2], b->buf[op->src3]);
            rf__cpu_attn_args_t args = {
                .hp = hp, .kv = &b->kv, .layer = (uint32_t)op->layer, .n_tokens = n,
                .positions = batch->positions, .seq_ids = batch->seq_ids,
                .q = b->buf[op->src], .out = b->buf[op->dst], .scores = b->scores,
            };
            rf__cpu_attention(&b->pool, &args);
            break;
        }
        case RF_OP_MOE:
            rf__cpu_moe(&b->mm, hp, op, b->packed[i], n, b->buf[op->src], b->buf[op->dst],
                        &b->moe);
            break;
        case RF_OP_LOGITS:
            rf__cpu_matmul(&b->mm, op->w[0], b->packed[i][0].data, NULL, b->buf[op->src],
                           p->width[op->src], logit_src_rows, n_logits, b->logits,
                           hp->n_vocab);
            break;
        default: {
            token_task_t tt = {.b = b, .op = op, .batch = batch, .n_rows = n};
            if (n <= 2) /* cheaper than waking the pool */
                token_op_task(&tt, 0, 1);
            else
                rf__cpu_pool_run(&b->pool, token_op_task, &tt);
            break;
        }
        }
    }
    for (uint32_t i = 0; i < batch->n_tokens; i++)
        b->kv.seq_len[batch->seq_ids[i]]++;
    b->n_batch = batch->n_tokens;
    b->n_logits = n_logits;
    return 0;
}
