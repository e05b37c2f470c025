/* backend.c - the GPU backend: upload weights, run the plan with kernels
 *
 * Design notes
 *
 * Invariants:
 *   1. seq_len[s] positions of sequence s are valid in every layer's KV
 *      pool, in the blocks of its table (as in the CPU backend).
 *   2. An eval either fails validation before any device work, or runs
 *      every op; a device error mid-way leaves the KV of the batch's
 *      positions undefined but the lengths unchanged, so a retry recomputes
 *      them.
 *   3. The device block table (d_tables, [max_seqs][max_blocks]) is
 *      rewritten from the host tables at every eval, so a bind or a copy
 *      between evals is always seen.
 *
 * Per eval: tokens, positions, sequence ids and block tables go up in one
 * staging copy each; every op is a kernel launch on the default stream;
 * the logits come back with one synchronous copy (the only wait).
 */
#include "gpu.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"
#include "quant.h"

_Static_assert(RF_KERNEL_EGPU == RF_EGPU, "kernel and engine codes agree");
_Static_assert(RF_KERNEL_ENOGPU == RF_ENOGPU, "kernel and engine codes agree");
_Static_assert(RF_KERNEL_EUNSUPPORTED == RF_EUNSUPPORTED, "kernel and engine codes agree");

typedef struct dev_weight {
    const rf_weight_t *w;        /* host weight (key) */
    void *data;                  /* device copy */
    int type;                    /* its layout: w->type, or a split layout (kernels.h) */
} dev_weight_t;

struct rf_gpu_backend {
    const rf_model_t *model;
    rf_gpu_info_t info;
    int device;                  /* index: the current device is per thread, so every
                                    entry point that touches the device selects it */
    uint32_t n_ctx, max_seqs, block_size, n_blocks, max_blocks;
    bool paged;
    /* weights */
    dev_weight_t *weights;
    size_t n_weights;
    size_t weight_bytes;
    /* KV pool: per layer K and V, F16 */
    void **k_cache, **v_cache;   /* [n_layer] */
    size_t layer_kv_bytes;       /* bytes of one layer's K (= V) pool */
    /* host tables */
    uint32_t *seq_len;           /* [max_seqs] */
    const uint32_t **table;      /* [max_seqs] */
    uint32_t *table_len;         /* [max_seqs] */
    uint32_t *own;               /* default partition or NULL */
    int32_t *d_tables;
    uint32_t *seq_count;         /* validation scratch */
    /* batch buffers (device unless h_) */
    uint32_t cap_tokens;
    float *buf[RF_BUF_COUNT];    /* [cap][width] */
    float *scratch;              /* [cap][max width]: OUTPUT_ROWS gathers */
    int32_t *d_tokens, *d_pos, *d_seq, *d_rows;
    float *d_rope;               /* [cap][n_rot]: the step's RoPE cosines and sines */
    float *d_logits;             /* [cap][n_vocab] */
    float *h_logits;
    int32_t *logit_rows, *logit_of;
    int8_t *row_greedy;          /* [cap] logits row r was asked as RF_LOGITS_GREEDY */
    int32_t *d_greedy_rows;      /* logits rows to reduce on the device */
    int32_t *d_greedy_tok, *h_greedy_tok;   /* [cap] by logits row */
    float *d_greedy_lp, *h_greedy_lp;
    void *workspace;
    size_t workspace_bytes;
    rf_gpu_blas_t *blas;         /* NULL: no vendor BLAS, every matmul is a GEMV */
    void *gemm_ws;               /* [cap][max width] halves: GEMM activations */
    size_t gemm_ws_bytes;
    uint32_t n_batch, n_logits;
    size_t max_width;
    /* one stream for everything; pinned staging for the per-step copies */
    rf_gpu_stream_t stream;
    int32_t *h_stage;            /* pinned: tables, tokens, positions, seqs, rows, greedy rows */
    size_t stage_ints;
    int32_t *h_out_tok;          /* pinned [cap] greedy tokens back */
    float *h_out_lp;             /* pinned [cap] their log-probabilities */
    /* decode steps captured as graphs, keyed by their shape */
    bool use_graphs;
    struct graph_entry {
        uint32_t n, n_logits, n_greedy;
        int32_t context;
        rf_gpu_graph_t graph;
        uint64_t used;
    } graphs[32];
    uint64_t tick;
    struct gpu_prof *prof;       /* RF_GPU_PROFILE=1: per-op timing, NULL otherwise */
};

/* ------------------------------------------------------------------ profile */

/* RF_GPU_PROFILE=1 times every op of every step with events (graphs off, so
 * each op is its own launch) and prints the totals per op kind and weight at
 * close, split into steps of fewer than 16 tokens (GEMV, decode) and larger
 * ones (BLAS). It also times each whole eval call on the host clock: the
 * difference from the device time is host work and copies. A tool for
 * performance work: timing adds a little to every op. */
struct gpu_prof {
    size_t n_ops;
    rf_gpu_event_t *ev;          /* [n_ops + 2]: before each op, after the plan, after argmax */
    double *ms[2];               /* [n_ops + 1]: per op, then the argmax; [0] small, [1] large */
    uint64_t steps[2], tokens[2];
    double wall_ms[2], device_ms[2];
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void prof_free(struct gpu_prof *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; p->ev != NULL && i < p->n_ops + 2; i++)
        rf_gpu_event_destroy(p->ev[i]);
    free(p->ev);
    free(p->ms[0]);
    free(p->ms[1]);
    free(p);
}

static struct gpu_prof *prof_open(size_t n_ops)
{
    struct gpu_prof *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->n_ops = n_ops;
    p->ev = calloc(n_ops + 2, sizeof *p->ev);
    p->ms[0] = calloc(n_ops + 1, sizeof(double));
    p->ms[1] = calloc(n_ops + 1, sizeof(double));
    bool ok = p->ev != NULL && p->ms[0] != NULL && p->ms[1] != NULL;
    for (size_t i = 0; ok && i < n_ops + 2; i++)
        ok = rf_gpu_event_create(&p->ev[i]) == 0;
    if (!ok) {
        prof_free(p);
        return NULL;
    }
    return p;
}

/* After the step's sync: add each op's time. */
static void prof_step(struct gpu_prof *p, uint32_t n_tokens, double wall)
{
    int c = n_tokens >= 16;
    p->steps[c]++;
    p->tokens[c] += n_tokens;
    p->wall_ms[c] += wall;
    for (size_t i = 0; i <= p->n_ops; i++) {
        float ms = 0;
        if (rf_gpu_event_elapsed_ms(&ms, p->ev[i], p->ev[i + 1]) == 0) {
            p->ms[c][i] += ms;
            p->device_ms[c] += ms;
        }
    }
}

/* "matmul attn_q" for blk.N.attn_q.weight: layers add up under one name. */
static void prof_label(const rf_op_t *op, char *out, size_t size)
{
    const char *name = op->w[0] != NULL && op->w[0]->name != NULL ? op->w[0]->name : "";
    if (strncmp(name, "blk.", 4) == 0) {
        const char *dot = strchr(name + 4, '.');
        name = dot != NULL ? dot + 1 : name;
    }
    size_t len = strlen(name);
    if (len > 7 && strcmp(name + len - 7, ".weight") == 0)
        len -= 7;
    snprintf(out, size, "%s%s%.*s", rf_op_name(op->kind), len ? " " : "", (int)len, name);
}

static void prof_print(const struct gpu_prof *p, const rf_plan_t *plan)
{
    struct row {
        char label[64];
        double ms[2];
    } rows[64];
    size_t n_rows = 0;
    for (size_t i = 0; i <= p->n_ops; i++) {
        char label[64];
        if (i < p->n_ops)
            prof_label(&plan->ops[i], label, sizeof label);
        else
            snprintf(label, sizeof label, "greedy argmax");
        size_t r = 0;
        while (r < n_rows && strcmp(rows[r].label, label) != 0)
            r++;
        if (r == n_rows) {
            if (n_rows == sizeof rows / sizeof rows[0])
                r = n_rows - 1; /* more kinds than rows: the last row collects them */
            else
                memset(&rows[n_rows++], 0, sizeof rows[0]);
            if (rows[r].label[0] == '\0')
                snprintf(rows[r].label, sizeof rows[r].label, "%s", label);
        }
        rows[r].ms[0] += p->ms[0][i];
        rows[r].ms[1] += p->ms[1][i];
    }
    fprintf(stderr, "rocmforge gpu profile (RF_GPU_PROFILE=1, graphs off; ops fused into one "
            "launch show under the first):\n");
    const char *cls[2] = {"steps of 1-15 tokens", "steps of 16+ tokens"};
    for (int c = 0; c < 2; c++) {
        if (p->steps[c] == 0)
            continue;
        double steps = (double)p->steps[c];
        fprintf(stderr, "  %s: %llu steps, %.1f tokens per step, %.3f ms per step on the "
                "host clock, %.3f ms of it timed on the device\n", cls[c],
                (unsigned long long)p->steps[c], (double)p->tokens[c] / steps,
                p->wall_ms[c] / steps, p->device_ms[c] / steps);
        fprintf(stderr, "    %-28s %12s %7s\n", "op", "ms per step", "share");
        for (size_t r = 0; r < n_rows; r++)
            if (rows[r].ms[c] > 0)
                fprintf(stderr, "    %-28s %12.4f %6.1f%%\n", rows[r].label, rows[r].ms[c] / steps,
                        100.0 * rows[r].ms[c] / (p->device_ms[c] > 0 ? p->device_ms[c] : 1));
    }
}

/* ------------------------------------------------------------------ helpers */

static int gpu_fail(rf_err_t *err, int rc, const char *what)
{
    return rf_err_set(err, rc < 0 ? rc : RF_EGPU, "gpu backend: %s failed (%s); the runtime's "
                      "message is on stderr", what, rf_strerror(rc < 0 ? rc : RF_EGPU));
}

static bool type_supported(int type)
{
    switch (type) {
    case RF_TYPE_F32: case RF_TYPE_F16: case RF_TYPE_BF16: case RF_TYPE_Q8_0:
    case RF_TYPE_Q4_0: case RF_TYPE_Q4_K: case RF_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

static size_t weight_bytes(const rf_weight_t *w)
{
    uint64_t rows = w->ne[1] ? w->ne[1] : 1;
    uint64_t mats = w->ne[2] ? w->ne[2] : 1;
    return (size_t)(w->row_bytes * rows * mats);
}

static void *dev_of(const rf_gpu_backend_t *b, const rf_weight_t *w)
{
    if (w == NULL || w->data == NULL)
        return NULL;
    for (size_t i = 0; i < b->n_weights; i++)
        if (b->weights[i].w == w || b->weights[i].w->data == w->data)
            return b->weights[i].data;
    return NULL;
}

/* The device layout of w (its GGUF type, or the split layout it was
 * repacked into); w must have been uploaded. */
static int dev_type(const rf_gpu_backend_t *b, const rf_weight_t *w)
{
    for (size_t i = 0; i < b->n_weights; i++)
        if (b->weights[i].w == w || b->weights[i].w->data == w->data)
            return b->weights[i].type;
    return w->type;
}

/* Upload w once (tied embeddings share one copy). Q4_0 and Q8_0 weights
 * that only matmuls read (split true) are repacked into the split layout on
 * the device, through a temporary copy in the GGUF layout. */
static int upload(rf_gpu_backend_t *b, const rf_weight_t *w, bool split, rf_err_t *err)
{
    if (w == NULL || w->data == NULL || dev_of(b, w) != NULL)
        return 0;
    if (!type_supported(w->type))
        return rf_err_set(err, RF_EUNSUPPORTED, "gpu backend: tensor %s has type %s, which the "
                          "GPU kernels do not read yet (F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q6_K); "
                          "use --device cpu or requantize", w->name, rf_type_name(w->type));
    size_t bytes = weight_bytes(w);
    void *d = NULL;
    int rc = rf_gpu_malloc(&d, bytes);
    if (rc < 0)
        return rf_err_set(err, RF_EGPU, "gpu backend: out of device memory uploading %s (%zu "
                          "bytes; %zu bytes of weights uploaded so far): the model does not fit "
                          "on %s; use a smaller quantization or --device cpu", w->name, bytes,
                          b->weight_bytes, b->info.name);
    int type = w->type;
    split = split && (type == RF_TYPE_Q4_0 || type == RF_TYPE_Q8_0) && w->ne[0] % 32 == 0 &&
            (w->ne[2] == 0 || w->ne[2] == 1);
    if (split) {
        void *raw = NULL;
        rc = rf_gpu_malloc(&raw, bytes);
        if (rc == 0)
            rc = rf_gpu_memcpy_h2d(raw, w->data, bytes);
        if (rc == 0)
            rc = rf_kernel_repack_split(type, raw, d, (int64_t)w->ne[1], (int64_t)w->ne[0], NULL);
        if (rc == 0)
            rc = rf_gpu_sync();
        rf_gpu_free(raw);
        type = type == RF_TYPE_Q4_0 ? RF_KERNEL_Q4_0_SPLIT : RF_KERNEL_Q8_0_SPLIT;
    } else {
        rc = rf_gpu_memcpy_h2d(d, w->data, bytes);
    }
    if (rc < 0) {
        rf_gpu_free(d);
        return gpu_fail(err, rc, "uploading a weight");
    }
    dev_weight_t *grown = realloc(b->weights, (b->n_weights + 1) * sizeof *grown);
    if (grown == NULL) {
        rf_gpu_free(d);
        return rf_err_set(err, -ENOMEM, "gpu backend: out of memory");
    }
    b->weights = grown;
    b->weights[b->n_weights++] = (dev_weight_t){.w = w, .data = d, .type = type};
    b->weight_bytes += bytes;
    return 0;
}

static void drop_graphs(rf_gpu_backend_t *b)
{
    for (size_t i = 0; i < sizeof b->graphs / sizeof b->graphs[0]; i++) {
        rf_gpu_graph_destroy(b->graphs[i].graph);
        memset(&b->graphs[i], 0, sizeof b->graphs[i]);
    }
}

static void free_batch(rf_gpu_backend_t *b)
{
    drop_graphs(b); /* they name the buffers freed below */
    rf_gpu_host_free(b->h_stage);
    rf_gpu_host_free(b->h_out_tok);
    rf_gpu_host_free(b->h_out_lp);
    b->h_stage = NULL;
    b->h_out_tok = NULL;
    b->h_out_lp = NULL;
    for (int i = 0; i < RF_BUF_COUNT; i++) {
        rf_gpu_free(b->buf[i]);
        b->buf[i] = NULL;
    }
    rf_gpu_free(b->scratch);
    rf_gpu_free(b->d_tokens);
    rf_gpu_free(b->d_pos);
    rf_gpu_free(b->d_seq);
    rf_gpu_free(b->d_rows);
    rf_gpu_free(b->d_rope);
    b->d_rope = NULL;
    rf_gpu_free(b->d_logits);
    rf_gpu_free(b->workspace);
    rf_gpu_free(b->gemm_ws);
    b->gemm_ws = NULL;
    b->gemm_ws_bytes = 0;
    free(b->h_logits);
    free(b->logit_rows);
    free(b->logit_of);
    free(b->row_greedy);
    free(b->h_greedy_tok);
    free(b->h_greedy_lp);
    rf_gpu_free(b->d_greedy_rows);
    rf_gpu_free(b->d_greedy_tok);
    rf_gpu_free(b->d_greedy_lp);
    b->row_greedy = NULL;
    b->d_greedy_rows = b->h_greedy_tok = b->d_greedy_tok = NULL;
    b->h_greedy_lp = b->d_greedy_lp = NULL;
    b->scratch = b->d_logits = b->h_logits = NULL;
    b->d_tokens = b->d_pos = b->d_seq = b->d_rows = NULL;
    b->logit_rows = b->logit_of = NULL;
    b->workspace = NULL;
    b->workspace_bytes = 0;
    b->cap_tokens = 0;
}

static int reserve(rf_gpu_backend_t *b, uint32_t n, rf_err_t *err)
{
    if (n <= b->cap_tokens)
        return 0;
    free_batch(b);
    const rf_plan_t *p = &b->model->plan;
    const rf_hparams_t *hp = &b->model->hp;
    int rc = 0;
    for (int i = 1; i < RF_BUF_COUNT && rc == 0; i++)
        if (p->width[i] > 0)
            rc = rf_gpu_malloc((void **)&b->buf[i], (size_t)n * p->width[i] * sizeof(float));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->scratch, (size_t)n * b->max_width * sizeof(float));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_tokens, n * sizeof(int32_t));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_pos, n * sizeof(int32_t));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_seq, n * sizeof(int32_t));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_rows, n * sizeof(int32_t));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_rope, (size_t)n * (hp->n_rot > 0 ? hp->n_rot : 2) *
                           sizeof(float));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_logits, (size_t)n * hp->n_vocab * sizeof(float));
    size_t ws = rf_kernel_paged_attention_workspace((int)n, (int)hp->n_head,
                                                    (int)hp->head_dim_k, (int)b->n_ctx);
    if (rc == 0 && ws > 0)
        rc = rf_gpu_malloc(&b->workspace, ws);
    size_t gws = b->blas != NULL ? rf_kernel_gemm_workspace((int64_t)b->max_width, (int)n) : 0;
    if (rc == 0 && gws > 0)
        rc = rf_gpu_malloc(&b->gemm_ws, gws);
    b->gemm_ws_bytes = gws;
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_greedy_rows, n * sizeof(int32_t));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_greedy_tok, n * sizeof(int32_t));
    if (rc == 0)
        rc = rf_gpu_malloc((void **)&b->d_greedy_lp, n * sizeof(float));
    b->h_logits = malloc((size_t)n * hp->n_vocab * sizeof(float));
    b->logit_rows = malloc(n * sizeof(int32_t));
    b->logit_of = malloc(n * sizeof(int32_t));
    b->row_greedy = malloc(n);
    b->h_greedy_tok = malloc(n * sizeof(int32_t));
    b->h_greedy_lp = malloc(n * sizeof(float));
    if (rc < 0 || b->h_logits == NULL || b->logit_rows == NULL || b->logit_of == NULL ||
        b->row_greedy == NULL || b->h_greedy_tok == NULL ||
        b->h_greedy_lp == NULL) {
        free_batch(b);
        return rf_err_set(err, rc < 0 ? RF_EGPU : -ENOMEM, "gpu backend: out of %s memory for "
                          "a batch of %u tokens; lower --max-batched-tokens",
                          rc < 0 ? "device" : "host", n);
    }
    b->stage_ints = (size_t)b->max_seqs * b->max_blocks + 5 * (size_t)n;
    if (rf_gpu_host_alloc((void **)&b->h_stage, b->stage_ints * sizeof(int32_t)) < 0 ||
        rf_gpu_host_alloc((void **)&b->h_out_tok, n * sizeof(int32_t)) < 0 ||
        rf_gpu_host_alloc((void **)&b->h_out_lp, n * sizeof(float)) < 0) {
        free_batch(b);
        return rf_err_set(err, RF_EGPU, "gpu backend: out of pinned host memory for a batch of "
                          "%u tokens", n);
    }
    b->workspace_bytes = ws;
    b->cap_tokens = n;
    return 0;
}

/* ------------------------------------------------------------------ open */

static int check_and_upload(rf_gpu_backend_t *b, rf_err_t *err)
{
    const rf_model_t *m = b->model;
    const rf_hparams_t *hp = &m->hp;
    if (hp->n_expert > 0)
        return rf_err_set(err, RF_EUNSUPPORTED, "gpu backend: %s has routed experts, which the "
                          "GPU backend does not run yet; use --device cpu", m->arch_name);
    if (hp->head_dim_k != hp->head_dim_v)
        return rf_err_set(err, RF_EUNSUPPORTED, "gpu backend: key and value heads differ (%u, "
                          "%u); use --device cpu", hp->head_dim_k, hp->head_dim_v);
    if (hp->head_dim_k != 32 && hp->head_dim_k != 64 && hp->head_dim_k != 128 &&
        hp->head_dim_k != 256)
        return rf_err_set(err, RF_EUNSUPPORTED, "gpu backend: head size %u; the attention "
                          "kernel handles 32, 64, 128 and 256; use --device cpu", hp->head_dim_k);
    const rf_plan_t *p = &m->plan;
    for (int i = 1; i < RF_BUF_COUNT; i++)
        if (p->width[i] > b->max_width)
            b->max_width = p->width[i];
    for (size_t i = 0; i < p->n_ops; i++) {
        const rf_op_t *op = &p->ops[i];
        for (int k = 0; k < 4; k++) {
            /* Matmul weights may take the split layout unless an embedding
             * gather also reads them (tied output). */
            const rf_weight_t *w = op->w[k];
            bool split = (op->kind == RF_OP_MATMUL || op->kind == RF_OP_LOGITS) && k == 0;
            for (size_t j = 0; split && w != NULL && j < p->n_ops; j++)
                if (p->ops[j].kind == RF_OP_EMBED && p->ops[j].w[0] != NULL &&
                    (p->ops[j].w[0] == w || p->ops[j].w[0]->data == w->data))
                    split = false;
            int rc = upload(b, w, split, err);
            if (rc < 0)
                return rc;
        }
        int rc = upload(b, op->bias, false, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int rf_gpu_backend_open(rf_gpu_backend_t **out, const rf_model_t *m,
                        const rf_gpu_options_t *opt, rf_err_t *err)
{
    *out = NULL;
    rf_gpu_options_t o = opt != NULL ? *opt : (rf_gpu_options_t){0};
    int n_dev = 0;
    rf_gpu_device_count(&n_dev);
    if (n_dev == 0)
        return rf_err_set(err, RF_ENOGPU, "gpu backend: no GPU found (no device, or no driver); "
                          "use --device cpu");
    if (o.device < 0 || o.device >= n_dev)
        return rf_err_set(err, RF_ERANGE, "gpu backend: device %d; this machine has %d (0..%d)",
                          o.device, n_dev, n_dev - 1);
    if (o.n_ctx == 0)
        o.n_ctx = m->hp.n_ctx_train > 0 && m->hp.n_ctx_train < 4096 ? m->hp.n_ctx_train : 4096;
    if (o.max_seqs == 0)
        o.max_seqs = 1;
    if (o.kv_block_size == 0)
        o.kv_block_size = 16;
    if (o.max_seqs > 65536 || o.n_ctx > (1u << 24) || o.kv_block_size > 1024)
        return rf_err_set(err, RF_ERANGE, "gpu backend: max_seqs %u, n_ctx %u or KV block size "
                          "%u out of range", o.max_seqs, o.n_ctx, o.kv_block_size);
    rf_gpu_backend_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return rf_err_set(err, -ENOMEM, "gpu backend: out of memory");
    b->model = m;
    b->n_ctx = o.n_ctx;
    b->max_seqs = o.max_seqs;
    b->block_size = o.kv_block_size;
    b->max_blocks = (o.n_ctx + o.kv_block_size - 1) / o.kv_block_size;
    b->paged = o.kv_paged;
    const rf_hparams_t *hp = &m->hp;
    b->device = o.device;
    int rc = rf_gpu_set_device(o.device);
    if (rc == 0)
        rc = rf_gpu_device_info(o.device, &b->info);
    if (rc < 0) {
        rc = gpu_fail(err, rc, "selecting the device");
        goto fail;
    }
    rc = check_and_upload(b, err);
    if (rc < 0)
        goto fail;
    if (rf_gpu_stream_create(&b->stream) < 0) {
        rc = rf_err_set(err, RF_EGPU, "gpu backend: cannot create a stream on %s", b->info.name);
        goto fail;
    }
    {
        const char *env = getenv("RF_GPU_GRAPHS");
        b->use_graphs = env == NULL || strcmp(env, "0") != 0;
        env = getenv("RF_GPU_PROFILE");
        if (env != NULL && strcmp(env, "0") != 0) {
            b->prof = prof_open(m->plan.n_ops);
            if (b->prof == NULL) {
                rc = rf_err_set(err, RF_EGPU, "gpu backend: RF_GPU_PROFILE: cannot create "
                                "events");
                goto fail;
            }
            b->use_graphs = false;
        }
    }
    if (rf_gpu_blas_available() && rf_gpu_blas_open(&b->blas) < 0) {
        rc = rf_err_set(err, RF_EGPU, "gpu backend: the BLAS library failed to start on %s",
                        b->info.name);
        goto fail;
    }
    size_t block_bytes = rf_gpu_kv_block_bytes(m, b->block_size);
    uint64_t n_blocks = o.kv_blocks;
    if (!b->paged) {
        n_blocks = 1 + (uint64_t)o.max_seqs * b->max_blocks;
    } else if (n_blocks == 0) {
        size_t free_b = 0, total_b = 0;
        if (o.gpu_memory > 0 && rf_gpu_mem_info(&free_b, &total_b) == 0) {
            /* Leave room for the activations of a large batch (a rough
             * 256 MiB) besides what the fraction excludes. */
            double budget = o.gpu_memory * (double)total_b - (double)(total_b - free_b) -
                            256.0 * (1 << 20);
            n_blocks = budget > 0 ? (uint64_t)(budget / (double)block_bytes) : 0;
        } else {
            n_blocks = 1 + (uint64_t)o.max_seqs * b->max_blocks;
        }
    }
    if (n_blocks < 2 || n_blocks > INT32_MAX) {
        rc = rf_err_set(err, RF_EGPU, "gpu backend: no room for a KV pool on %s after %zu bytes "
                        "of weights (%llu blocks of %zu bytes); raise --gpu-memory or use a "
                        "smaller model", b->info.name, b->weight_bytes,
                        (unsigned long long)n_blocks, block_bytes);
        goto fail;
    }
    b->n_blocks = (uint32_t)n_blocks;
    b->layer_kv_bytes = (size_t)b->n_blocks * hp->n_head_kv * b->block_size * hp->head_dim_k * 2;
    b->k_cache = calloc(hp->n_layer, sizeof *b->k_cache);
    b->v_cache = calloc(hp->n_layer, sizeof *b->v_cache);
    if (b->k_cache == NULL || b->v_cache == NULL) {
        rc = rf_err_set(err, -ENOMEM, "gpu backend: out of memory");
        goto fail;
    }
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (rf_gpu_malloc(&b->k_cache[l], b->layer_kv_bytes) < 0 ||
            rf_gpu_malloc(&b->v_cache[l], b->layer_kv_bytes) < 0) {
            rc = rf_err_set(err, RF_EGPU, "gpu backend: out of device memory for the KV pool "
                            "(%u blocks of %u positions, %zu bytes per layer; weights take %zu): "
                            "lower --max-seqs, --ctx or --kv-memory", b->n_blocks, b->block_size,
                            2 * b->layer_kv_bytes, b->weight_bytes);
            goto fail;
        }
    }
    b->seq_len = calloc(o.max_seqs, sizeof *b->seq_len);
    b->table = calloc(o.max_seqs, sizeof *b->table);
    b->table_len = calloc(o.max_seqs, sizeof *b->table_len);
    b->seq_count = calloc(o.max_seqs, sizeof *b->seq_count);
    if (!b->paged)
        b->own = malloc((size_t)o.max_seqs * b->max_blocks * sizeof *b->own);
    if (b->seq_len == NULL || b->table == NULL || b->table_len == NULL || b->seq_count == NULL ||
        (!b->paged && b->own == NULL)) {
        rc = rf_err_set(err, -ENOMEM, "gpu backend: out of memory");
        goto fail;
    }
    if (!b->paged)
        for (uint32_t s = 0; s < o.max_seqs; s++) {
            for (uint32_t i = 0; i < b->max_blocks; i++)
                b->own[(size_t)s * b->max_blocks + i] = 1 + s * b->max_blocks + i;
            b->table[s] = b->own + (size_t)s * b->max_blocks;
            b->table_len[s] = b->max_blocks;
        }
    if (rf_gpu_malloc((void **)&b->d_tables,
                      (size_t)o.max_seqs * b->max_blocks * sizeof(int32_t)) < 0) {
        rc = rf_err_set(err, RF_EGPU, "gpu backend: out of device memory for block tables");
        goto fail;
    }
    *out = b;
    return 0;
fail:
    rf_gpu_backend_close(b);
    return rc;
}

void rf_gpu_backend_close(rf_gpu_backend_t *b)
{
    if (b == NULL)
        return;
    if (b->prof != NULL) {
        prof_print(b->prof, &b->model->plan);
        prof_free(b->prof);
        b->prof = NULL;
    }
    rf_gpu_set_device(b->device);
    free_batch(b);
    rf_gpu_blas_close(b->blas);
    rf_gpu_stream_destroy(b->stream);
    for (size_t i = 0; i < b->n_weights; i++)
        rf_gpu_free(b->weights[i].data);
    free(b->weights);
    for (uint32_t l = 0; b->k_cache != NULL && l < b->model->hp.n_layer; l++) {
        rf_gpu_free(b->k_cache[l]);
        rf_gpu_free(b->v_cache[l]);
    }
    free(b->k_cache);
    free(b->v_cache);
    rf_gpu_free(b->d_tables);
    free(b->seq_len);
    free(b->table);
    free(b->table_len);
    free(b->seq_count);
    free(b->own);
    free(b);
}

/* ------------------------------------------------------------------ small API */

size_t rf_gpu_kv_block_bytes(const rf_model_t *m, uint32_t block_size)
{
    const rf_hparams_t *hp = &m->hp;
    return (size_t)hp->n_layer * block_size * hp->n_head_kv * (hp->head_dim_k + hp->head_dim_v) *
           2;
}

const float *rf_gpu_backend_logits(const rf_gpu_backend_t *b, uint32_t i)
{
    if (i >= b->n_batch || b->logit_of == NULL || b->logit_of[i] < 0 ||
        b->row_greedy[b->logit_of[i]])
        return NULL;
    return b->h_logits + (size_t)b->logit_of[i] * b->model->hp.n_vocab;
}

int rf_gpu_backend_greedy(const rf_gpu_backend_t *b, uint32_t i, int32_t *token, float *logprob)
{
    if (i >= b->n_batch || b->logit_of == NULL || b->logit_of[i] < 0 ||
        !b->row_greedy[b->logit_of[i]])
        return RF_ERANGE;
    *token = b->h_greedy_tok[b->logit_of[i]];
    *logprob = b->h_greedy_lp[b->logit_of[i]];
    return 0;
}

uint32_t rf_gpu_backend_seq_len(const rf_gpu_backend_t *b, int32_t seq)
{
    return seq >= 0 && (uint32_t)seq < b->max_seqs ? b->seq_len[seq] : 0;
}

int rf_gpu_backend_seq_truncate(rf_gpu_backend_t *b, int32_t seq, uint32_t n_pos)
{
    if (seq < 0 || (uint32_t)seq >= b->max_seqs)
        return RF_ERANGE;
    if (n_pos < b->seq_len[seq])
        b->seq_len[seq] = n_pos;
    return 0;
}

int rf_gpu_backend_seq_bind(rf_gpu_backend_t *b, int32_t seq, const uint32_t *blocks,
                            uint32_t n_blocks, uint32_t n_pos)
{
    if (!b->paged || seq < 0 || (uint32_t)seq >= b->max_seqs || n_blocks > b->max_blocks ||
        n_pos > (uint64_t)n_blocks * b->block_size)
        return RF_ERANGE;
    for (uint32_t i = 0; i < n_blocks; i++)
        if (blocks[i] == 0 || blocks[i] >= b->n_blocks)
            return RF_ERANGE;
    b->table[seq] = blocks;
    b->table_len[seq] = n_blocks;
    b->seq_len[seq] = n_pos;
    return 0;
}

int rf_gpu_backend_kv_copy(rf_gpu_backend_t *b, uint32_t src, uint32_t dst)
{
    if (src == 0 || dst == 0 || src >= b->n_blocks || dst >= b->n_blocks)
        return RF_ERANGE;
    if (src == dst)
        return 0;
    if (rf_gpu_set_device(b->device) < 0)
        return RF_EGPU;
    const rf_hparams_t *hp = &b->model->hp;
    size_t block = (size_t)hp->n_head_kv * b->block_size * hp->head_dim_k * 2;
    for (uint32_t l = 0; l < hp->n_layer; l++) {
        if (rf_gpu_memcpy_d2d((char *)b->k_cache[l] + dst * block,
                              (char *)b->k_cache[l] + src * block, block, b->stream) < 0 ||
            rf_gpu_memcpy_d2d((char *)b->v_cache[l] + dst * block,
                              (char *)b->v_cache[l] + src * block, block, b->stream) < 0)
            return RF_EGPU;
    }
    return 0;
}

uint32_t rf_gpu_backend_kv_blocks(const rf_gpu_backend_t *b) { return b->n_blocks; }
uint32_t rf_gpu_backend_kv_block_size(const rf_gpu_backend_t *b) { return b->block_size; }
bool rf_gpu_backend_kv_paged(const rf_gpu_backend_t *b) { return b->paged; }
uint32_t rf_gpu_backend_n_ctx(const rf_gpu_backend_t *b) { return b->n_ctx; }
uint32_t rf_gpu_backend_max_seqs(const rf_gpu_backend_t *b) { return b->max_seqs; }
const char *rf_gpu_backend_device_name(const rf_gpu_backend_t *b) { return b->info.name; }

/* ------------------------------------------------------------------ eval */

/* Tokens from which a 16-bit or f32 weight goes through the BLAS GEMM
 * rather than the GEMV kernels (which re-read the weight every 8 tokens). */
#define GEMM_MIN_TOKENS 16

static int matmul(rf_gpu_backend_t *b, const rf_weight_t *w, const void *bias, const float *x,
                  float *y, uint32_t n_tokens)
{
    int type = dev_type(b, w);
    if (b->blas != NULL && n_tokens >= GEMM_MIN_TOKENS &&
        (type == RF_TYPE_F16 || type == RF_TYPE_BF16 || type == RF_TYPE_F32)) {
        int rc = rf_kernel_gemm_f32(b->blas, type, dev_of(b, w), x, y, (int64_t)w->ne[1],
                                    (int64_t)w->ne[0], (int)n_tokens, b->gemm_ws,
                                    b->gemm_ws_bytes, b->stream);
        if (rc == 0 && bias != NULL)
            rc = rf_kernel_add_bias_f32(y, bias, n_tokens, (int64_t)w->ne[1], b->stream);
        return rc;
    }
    return rf_kernel_matmul_f32(type, dev_of(b, w), x, y, bias, (int64_t)w->ne[1],
                                (int64_t)w->ne[0], (int)n_tokens, b->stream);
}


/* How many matmuls from op i on can run as one GEMV launch: consecutive
 * matmuls of the same input and weight type and width, each a GEMV at this
 * batch size (not the BLAS), writing buffers other than the input. */
static size_t matmul_run(const rf_gpu_backend_t *b, const rf_plan_t *p, size_t i,
                         uint32_t n_tokens)
{
    const rf_op_t *op = &p->ops[i];
    const rf_weight_t *w = op->w[0];
    bool blas_types = w->type == RF_TYPE_F16 || w->type == RF_TYPE_BF16 ||
                      w->type == RF_TYPE_F32;
    if (b->blas != NULL && n_tokens >= GEMM_MIN_TOKENS && blas_types)
        return 1;
    size_t k = 1;
    while (k < RF_MATMUL_MAX_SET && i + k < p->n_ops) {
        const rf_op_t *o = &p->ops[i + k];
        if (o->kind != RF_OP_MATMUL || o->src != op->src || o->dst == op->src ||
            dev_type(b, o->w[0]) != dev_type(b, w) || o->w[0]->ne[0] != w->ne[0])
            break;
        k++;
    }
    return k;
}

static int validate(rf_gpu_backend_t *b, const rf_batch_t *batch, rf_err_t *err)
{
    rf_batch_limits_t lim = {.n_vocab = b->model->hp.n_vocab, .max_seqs = b->max_seqs,
                             .n_ctx = b->n_ctx, .block_size = b->block_size,
                             .seq_len = b->seq_len, .table_len = b->table_len,
                             .scratch = b->seq_count};
    return rf_batch_check(batch, &lim, err);
}

#define LAUNCH(call)                                                                   \
    do {                                                                               \
        int launch_rc_ = (call);                                                       \
        if (launch_rc_ < 0)                                                            \
            return rf_err_set(err, launch_rc_ == RF_KERNEL_EGPU ? RF_EGPU : launch_rc_, \
                              "gpu backend: op %zu (%s, layer %d): %s failed (%s)", i,  \
                              rf_op_name(op->kind), op->layer, #call,                   \
                              rf_strerror(launch_rc_));                                 \
    } while (0)

/* Every op of the plan, then the greedy reduction, as launches on b->stream
 * (capturable: no host waits, no copies from pageable memory). n_greedy
 * rows listed in d_greedy_rows are reduced into d_greedy_tok / _lp. */
static int run_plan(rf_gpu_backend_t *b, uint32_t n, uint32_t n_logits, uint32_t n_greedy,
                    int32_t context, rf_err_t *err)
{
    const rf_model_t *m = b->model;
    const rf_hparams_t *hp = &m->hp;
    const rf_plan_t *p = &m->plan;
    const float scale = 1.0f / sqrtf((float)hp->head_dim_k);
    uint32_t rows = n; /* rows live in the buffers */
    size_t fused_until = 0; /* ops before this index ran inside an earlier launch */
    const void *rope_key = NULL; /* the RoPE table of the step: computed for the first RoPE */
    bool rope_ready = false;
    for (size_t i = 0; i < p->n_ops; i++) {
        const rf_op_t *op = &p->ops[i];
        if (b->prof != NULL && rf_gpu_event_record(b->prof->ev[i], b->stream) < 0)
            return gpu_fail(err, RF_EGPU, "RF_GPU_PROFILE: recording an event");
        if (i < fused_until)
            continue;
        float *dst = b->buf[op->dst];
        const float *src = op->src != RF_BUF_NONE ? b->buf[op->src] : NULL;
        switch (op->kind) {
        case RF_OP_EMBED: {
            const rf_weight_t *w = op->w[0];
            LAUNCH(rf_kernel_get_rows_f32(w->type, dev_of(b, w), (int64_t)w->ne[1],
                                          (int64_t)w->ne[0], b->d_tokens, (int)n, dst, b->stream));
            break;
        }
        case RF_OP_RMSNORM:
            LAUNCH(rf_kernel_rmsnorm_f32(dst, src, dev_of(b, op->w[0]), rows,
                                         p->width[op->dst], hp->rms_eps, b->stream));
            break;
        case RF_OP_HEAD_RMSNORM:
            LAUNCH(rf_kernel_rmsnorm_f32(dst, src, dev_of(b, op->w[0]),
                                         (int64_t)rows * (p->width[op->dst] / op->head_dim),
                                         op->head_dim, hp->rms_eps, b->stream));
            break;
        case RF_OP_MATMUL: {
            size_t k = matmul_run(b, p, i, rows);
            if (k > 1) {
                /* Q, K, V (gate, up): one GEMV launch for the matmuls of one input */
                const void *ws[RF_MATMUL_MAX_SET];
                float *ys[RF_MATMUL_MAX_SET];
                const float *bs[RF_MATMUL_MAX_SET];
                int64_t outs[RF_MATMUL_MAX_SET];
                for (size_t j = 0; j < k; j++) {
                    const rf_op_t *o = &p->ops[i + j];
                    ws[j] = dev_of(b, o->w[0]);
                    ys[j] = b->buf[o->dst];
                    bs[j] = o->bias ? dev_of(b, o->bias) : NULL;
                    outs[j] = (int64_t)o->w[0]->ne[1];
                }
                LAUNCH(rf_kernel_matmul_set_f32(dev_type(b, op->w[0]), (int)k, ws, ys, bs, outs,
                                                src, (int64_t)op->w[0]->ne[0], (int)rows,
                                                b->stream));
                fused_until = i + k;
                break;
            }
            LAUNCH(matmul(b, op->w[0], op->bias ? dev_of(b, op->bias) : NULL, src, dst, rows));
            break;
        }
        case RF_OP_ROPE: {
            /* Positions, n_rot and frequencies are the step's; only the
             * frequency factors could differ between RoPEs of a plan. */
            const void *factors = op->w[0] ? dev_of(b, op->w[0]) : NULL;
            if (!rope_ready || factors != rope_key) {
                LAUNCH(rf_kernel_rope_table_f32(b->d_rope, b->d_pos, (int)rows, (int)hp->n_rot,
                                                hp->rope_freq_base, hp->rope_freq_scale,
                                                factors, b->stream));
                rope_key = factors;
                rope_ready = true;
            }
            LAUNCH(rf_kernel_rope_apply_f32(dst, b->d_rope, (int)rows,
                                            (int)(p->width[op->dst] / op->head_dim),
                                            (int)op->head_dim, (int)hp->n_rot, 0,
                                            hp->rope_kind == RF_ROPE_NEOX, b->stream));
            break;
        }
        case RF_OP_ATTENTION: {
            uint32_t l = (uint32_t)op->layer;
            LAUNCH(rf_kernel_kv_store_f16(b->k_cache[l], b->v_cache[l], b->buf[op->src2],
                                          b->buf[op->src3], 0, 0, b->d_tables,
                                          (int)b->max_blocks, b->d_seq, b->d_pos, (int)rows,
                                          (int)hp->n_head_kv, (int)hp->head_dim_k,
                                          (int)b->block_size, b->stream));
            LAUNCH(rf_kernel_paged_attention_f32(dst, src, 0, b->k_cache[l], b->v_cache[l],
                                                 b->d_tables, (int)b->max_blocks, b->d_seq,
                                                 b->d_pos, (int)rows, (int)hp->n_head,
                                                 (int)hp->n_head_kv, (int)hp->head_dim_k,
                                                 (int)b->block_size, scale, context,
                                                 b->workspace, b->workspace_bytes, b->stream));
            break;
        }
        case RF_OP_SWIGLU:
            LAUNCH(rf_kernel_swiglu_f32(dst, dst, src, rows, p->width[op->dst], 0, 0, b->stream));
            break;
        case RF_OP_ADD: {
            /* The residual add and the RMSNorm that reads it: one pass. */
            const rf_op_t *next = i + 1 < p->n_ops ? &p->ops[i + 1] : NULL;
            if (next != NULL && next->kind == RF_OP_RMSNORM && next->src == op->dst &&
                next->dst != op->dst && next->dst != op->src &&
                p->width[next->dst] == p->width[op->dst]) {
                LAUNCH(rf_kernel_add_rmsnorm_f32(b->buf[next->dst], dst, src,
                                                 dev_of(b, next->w[0]), rows,
                                                 p->width[op->dst], hp->rms_eps, b->stream));
                fused_until = i + 2;
                break;
            }
            LAUNCH(rf_kernel_add_f32(dst, dst, src, (int64_t)rows * p->width[op->dst], b->stream));
            break;
        }
        case RF_OP_OUTPUT_ROWS: {
            /* Keep the logits rows of dst and src, packed to the front: a
             * gather into scratch, then back. */
            rf_buf_t bufs[2] = {op->dst, op->src};
            for (int k = 0; k < 2; k++) {
                uint32_t w = p->width[bufs[k]];
                LAUNCH(rf_kernel_get_rows_f32(RF_TYPE_F32, b->buf[bufs[k]], rows, w, b->d_rows,
                                              (int)n_logits, b->scratch, b->stream));
                if (n_logits > 0 && rf_gpu_memcpy_d2d(b->buf[bufs[k]], b->scratch,
                                                      (size_t)n_logits * w * sizeof(float),
                                                      b->stream) < 0)
                    return gpu_fail(err, RF_EGPU, "packing the output rows");
            }
            rows = n_logits;
            rope_ready = false; /* a RoPE after this would see other rows */
            break;
        }
        case RF_OP_LOGITS: {
            const rf_weight_t *w = op->w[0];
            if (rows != n_logits) {
                /* No OUTPUT_ROWS in the plan: gather the logits rows now. */
                uint32_t width = p->width[op->src];
                LAUNCH(rf_kernel_get_rows_f32(RF_TYPE_F32, src, rows, width, b->d_rows,
                                              (int)n_logits, b->scratch, b->stream));
                src = b->scratch;
            }
            if (n_logits > 0)
                LAUNCH(matmul(b, w, NULL, src, b->d_logits, n_logits));
            break;
        }
        case RF_OP_MOE:
        default:
            return rf_err_set(err, RF_EUNSUPPORTED, "gpu backend: op %s is not supported on "
                              "the GPU", rf_op_name(op->kind));
        }
    }
    if (b->prof != NULL && rf_gpu_event_record(b->prof->ev[p->n_ops], b->stream) < 0)
        return gpu_fail(err, RF_EGPU, "RF_GPU_PROFILE: recording an event");
    if (n_greedy > 0 &&
        rf_kernel_argmax_f32(b->d_logits, b->d_greedy_rows, (int)n_greedy, (int64_t)hp->n_vocab,
                             b->d_greedy_tok, b->d_greedy_lp, b->stream) < 0)
        return gpu_fail(err, RF_EGPU, "the greedy choice on the device");
    if (b->prof != NULL && rf_gpu_event_record(b->prof->ev[p->n_ops + 1], b->stream) < 0)
        return gpu_fail(err, RF_EGPU, "RF_GPU_PROFILE: recording an event");
    return 0;
}

/* Graphs cost their capture once; decode steps of one shape repeat. Only
 * small batches (all GEMV: the BLAS is never captured) are graphed. */
static int run_graphed(rf_gpu_backend_t *b, uint32_t n, uint32_t n_logits, uint32_t n_greedy,
                       int32_t context, rf_err_t *err)
{
    const size_t n_slots = sizeof b->graphs / sizeof b->graphs[0];
    struct graph_entry *e = NULL, *oldest = &b->graphs[0];
    for (size_t i = 0; i < n_slots; i++) {
        struct graph_entry *g = &b->graphs[i];
        if (g->graph != NULL && g->n == n && g->n_logits == n_logits && g->n_greedy == n_greedy &&
            g->context == context) {
            e = g;
            break;
        }
        if (g->used < oldest->used)
            oldest = g;
    }
    if (e == NULL) {
        e = oldest;
        rf_gpu_graph_destroy(e->graph);
        memset(e, 0, sizeof *e);
        if (rf_gpu_capture_begin(b->stream) < 0)
            return gpu_fail(err, RF_EGPU, "starting a graph capture");
        int rc = run_plan(b, n, n_logits, n_greedy, context, err);
        rf_gpu_graph_t g = NULL;
        int crc = rf_gpu_capture_end(b->stream, &g);
        if (rc < 0) {
            rf_gpu_graph_destroy(g);
            return rc;
        }
        if (crc < 0)
            return gpu_fail(err, RF_EGPU, "capturing a decode step as a graph (set "
                            "RF_GPU_GRAPHS=0 to run without graphs)");
        *e = (struct graph_entry){.n = n, .n_logits = n_logits, .n_greedy = n_greedy,
                                  .context = context, .graph = g};
    }
    e->used = ++b->tick;
    if (rf_gpu_graph_launch(e->graph, b->stream) < 0)
        return gpu_fail(err, RF_EGPU, "launching a decode graph");
    return 0;
}

int rf_gpu_backend_eval(rf_gpu_backend_t *b, const rf_batch_t *batch, rf_err_t *err)
{
    b->n_batch = 0;
    b->n_logits = 0;
    if (batch->n_tokens == 0)
        return 0;
    double t_start = b->prof != NULL ? now_ms() : 0;
    int rc = validate(b, batch, err);
    if (rc < 0)
        return rc;
    /* The engine thread is not the thread that opened the backend, and
     * the device selection is per thread (--gpu 1 must not run on 0). */
    if (rf_gpu_set_device(b->device) < 0)
        return gpu_fail(err, RF_EGPU, "selecting the device");
    rc = reserve(b, batch->n_tokens, err);
    if (rc < 0)
        return rc;
    const rf_hparams_t *hp = &b->model->hp;
    uint32_t n = batch->n_tokens;

    uint32_t n_logits = 0;
    int32_t max_pos = 0;
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
        if (want) {
            b->row_greedy[n_logits] = batch->logits != NULL &&
                                      batch->logits[i] == RF_LOGITS_GREEDY;
            b->logit_rows[n_logits++] = (int32_t)i;
        }
        if (batch->positions[i] > max_pos)
            max_pos = batch->positions[i];
    }
    /* Stage everything the step reads in pinned memory, then one
     * asynchronous copy per array: tables (sequences of the batch; the
     * rest padding), tokens, positions, sequence ids, logits rows, greedy
     * rows. */
    int32_t *tables = b->h_stage, *st_tok = tables + (size_t)b->max_seqs * b->max_blocks;
    int32_t *st_pos = st_tok + n, *st_seq = st_pos + n, *st_rows = st_seq + n;
    int32_t *st_greedy = st_rows + n;
    for (uint32_t i = 0; i < n; i++) {
        int32_t sq = batch->seq_ids[i];
        /* A prompt chunk is a run of one sequence's tokens: write its row
         * once, not once per token (max_blocks entries each, 256 at a
         * 4096-position context). */
        if (i > 0 && batch->seq_ids[i - 1] == sq)
            continue;
        int32_t *row = tables + (size_t)sq * b->max_blocks;
        for (uint32_t k = 0; k < b->max_blocks; k++)
            row[k] = k < b->table_len[sq] ? (int32_t)b->table[sq][k] : 0;
    }
    memcpy(st_tok, batch->tokens, n * sizeof(int32_t));
    memcpy(st_pos, batch->positions, n * sizeof(int32_t));
    memcpy(st_seq, batch->seq_ids, n * sizeof(int32_t));
    memcpy(st_rows, b->logit_rows, n_logits * sizeof(int32_t));
    uint32_t n_greedy = 0;
    for (uint32_t r = 0; r < n_logits; r++)
        if (b->row_greedy[r])
            st_greedy[n_greedy++] = (int32_t)r;
    if (rf_gpu_memcpy_h2d_async(b->d_tables, tables,
                                (size_t)b->max_seqs * b->max_blocks * sizeof(int32_t),
                                b->stream) < 0 ||
        rf_gpu_memcpy_h2d_async(b->d_tokens, st_tok, n * sizeof(int32_t), b->stream) < 0 ||
        rf_gpu_memcpy_h2d_async(b->d_pos, st_pos, n * sizeof(int32_t), b->stream) < 0 ||
        rf_gpu_memcpy_h2d_async(b->d_seq, st_seq, n * sizeof(int32_t), b->stream) < 0 ||
        rf_gpu_memcpy_h2d_async(b->d_rows, st_rows, n_logits * sizeof(int32_t), b->stream) < 0 ||
        rf_gpu_memcpy_h2d_async(b->d_greedy_rows, st_greedy, n_greedy * sizeof(int32_t),
                                b->stream) < 0)
        return gpu_fail(err, RF_EGPU, "uploading the batch");

    /* Attention's grid is sized by the longest context: graphs key on it
     * rounded up to a power of two (at least 256), direct runs use it. */
    int32_t context = max_pos + 1;
    bool graphed = b->use_graphs && n < GEMM_MIN_TOKENS;
    if (graphed) {
        int32_t c = 256;
        while (c < context)
            c *= 2;
        context = c < (int32_t)b->n_ctx ? c : (int32_t)b->n_ctx;
        if (context < max_pos + 1)
            context = max_pos + 1;
    }
    rc = graphed ? run_graphed(b, n, n_logits, n_greedy, context, err)
                 : run_plan(b, n, n_logits, n_greedy, context, err);
    if (rc < 0)
        return rc;

    /* Back: greedy choices (8 bytes a row), full logits rows in runs. */
    if (n_greedy > 0 &&
        (rf_gpu_memcpy_d2h_async(b->h_out_tok, b->d_greedy_tok, n_greedy * sizeof(int32_t),
                                 b->stream) < 0 ||
         rf_gpu_memcpy_d2h_async(b->h_out_lp, b->d_greedy_lp, n_greedy * sizeof(float),
                                 b->stream) < 0))
        return gpu_fail(err, RF_EGPU, "reading the greedy choices back");
    for (uint32_t r = 0; r < n_logits;) {
        if (b->row_greedy[r]) {
            r++;
            continue;
        }
        uint32_t end = r + 1;
        while (end < n_logits && !b->row_greedy[end])
            end++;
        size_t row = hp->n_vocab;
        if (rf_gpu_memcpy_d2h_async(b->h_logits + r * row, b->d_logits + r * row,
                                    (size_t)(end - r) * row * sizeof(float), b->stream) < 0)
            return gpu_fail(err, RF_EGPU, "reading the logits back");
        r = end;
    }
    if (rf_gpu_stream_sync(b->stream) < 0)
        return gpu_fail(err, RF_EGPU, "the step on the device");
    for (uint32_t r = 0, k = 0; r < n_logits; r++)
        if (b->row_greedy[r]) {
            b->h_greedy_tok[r] = b->h_out_tok[k];
            b->h_greedy_lp[r] = b->h_out_lp[k];
            k++;
        }
    for (uint32_t i = 0; i < n; i++)
        b->seq_len[batch->seq_ids[i]]++;
    b->n_batch = n;
    b->n_logits = n_logits;
    if (b->prof != NULL)
        prof_step(b->prof, n, now_ms() - t_start);
    return 0;
}
