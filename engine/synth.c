/* synth.c - random-weight Llama-architecture GGUF models at named shapes
 *
 * Weights come from a counter-based generator: element e of tensor t is a
 * hash of (seed, t, e), so a file is the same whatever order or chunking
 * writes it, and rows are produced in chunks by the writer's fill callback
 * without ever holding a whole multi-GB model in memory.
 *
 * The vocabulary is byte-level BPE: the 256 byte tokens in GPT-2's byte to
 * code point mapping, then tokens made by merging two existing tokens (each
 * with its merge rule, in rank order), then control tokens. It is not a
 * trained vocabulary, but it is a consistent one: every merged token is
 * reachable from its merge, so tokenizers built later can load it.
 */
#include "synth.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"

/* ------------------------------------------------------------------------
 * Shapes
 * ------------------------------------------------------------------------ */

static const rf_synth_shape_t shapes[] = {
    {"tiny", "2 layers, 256 wide: fast tests", 512, 256, 2, 4, 2, 512, 1024,
     10000.0f, 1e-5f, false},
    {"llama-3.2-1b", "Llama-3.2-1B shape (16 layers, 2048 wide, GQA 32/8)", 128256, 2048,
     16, 32, 8, 8192, 131072, 500000.0f, 1e-5f, true},
    {"llama-3-8b", "Llama-3-8B shape (32 layers, 4096 wide, GQA 32/8)", 128256, 4096, 32,
     32, 8, 14336, 8192, 500000.0f, 1e-5f, false},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0.0f, 0.0f, false},
};

const rf_synth_shape_t *rf_synth_shapes(void)
{
    return shapes;
}

const rf_synth_shape_t *rf_synth_find_shape(const char *name)
{
    for (const rf_synth_shape_t *s = shapes; s->name != NULL; s++)
        if (strcmp(s->name, name) == 0)
            return s;
    return NULL;
}

/* ------------------------------------------------------------------------
 * Counter-based random numbers
 * ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t key_hash(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return mix64(mix64(seed ^ 0x9e3779b97f4a7c15ull) ^ mix64(stream + 0x632be59bd9b4e019ull)
                 ^ counter);
}

/* Uniform in [-1, 1). */
static float uniform_pm1(uint64_t h)
{
    return (float)(h >> 40) * (1.0f / 8388608.0f) - 1.0f;
}

/* ------------------------------------------------------------------------
 * Tensor plan
 * ------------------------------------------------------------------------ */

enum init_kind { INIT_WEIGHT, INIT_EMBED, INIT_NORM, INIT_ROPE_FREQS };

typedef struct plan_tensor {
    char name[64];
    int type;
    uint32_t n_dims;
    uint64_t ne[2];
    enum init_kind init;
} plan_tensor_t;

typedef struct plan {
    const rf_synth_shape_t *shape;
    rf_synth_options_t opt;
    uint32_t n_layer;
    bool untied;
    bool rope_freqs;
    size_t n_tensors;
    plan_tensor_t *tensors;
    uint64_t total_bytes;
    uint64_t done_bytes;
    void (*progress)(void *, uint64_t, uint64_t);
    void *progress_ctx;
    float *scratch;          /* f32 rows before quantization */
    size_t scratch_elems;
} plan_t;

static void plan_add(plan_t *p, const char *name, int type, uint32_t n_dims, uint64_t ne0,
                     uint64_t ne1, enum init_kind init)
{
    plan_tensor_t *t = &p->tensors[p->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type = type;
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->init = init;
}

static int plan_build(plan_t *p, const rf_synth_options_t *opt, rf_err_t *err)
{
    memset(p, 0, sizeof *p);
    p->opt = *opt;
    p->shape = opt->shape ? rf_synth_find_shape(opt->shape) : NULL;
    if (p->shape == NULL)
        return rf_err_set(err, RF_EUSAGE, "unknown shape '%s' (see rocmforge synth --list)",
                          opt->shape ? opt->shape : "(null)");
    const rf_type_traits_t *tr = rf_type_traits(opt->type);
    if (tr == NULL || !tr->can_quantize) {
        char list[512];
        size_t used = 0;
        list[0] = '\0';
        for (int t = 0; t < RF_TYPE_COUNT && used < sizeof list; t++) {
            const rf_type_traits_t *q = rf_type_traits(t);
            if (q != NULL && q->can_quantize)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s",
                                         used ? ", " : "", q->name);
        }
        return rf_err_set(err, RF_EUSAGE, "type %s has no quantizer; use one of: %s",
                          rf_type_name(opt->type), list);
    }
    const rf_synth_shape_t *s = p->shape;
    p->n_layer = opt->n_layer ? opt->n_layer : s->n_layer;
    p->untied = opt->output > 0 || (opt->output == 0 && !s->tied_output);
    p->rope_freqs = s->rope_freq_base >= 500000.0f && s->n_ctx > 8192;
    uint32_t head_dim = s->n_embd / s->n_head;
    uint64_t n_embd_kv = (uint64_t)head_dim * s->n_head_kv;
    if (s->n_embd % tr->block_size != 0 || s->n_ff % tr->block_size != 0)
        return rf_err_set(err, RF_EUSAGE, "shape %s: widths %u and %u are not multiples of "
                          "%s's block of %u", s->name, s->n_embd, s->n_ff, tr->name,
                          tr->block_size);

    p->tensors = calloc(4 + 9 * (size_t)p->n_layer, sizeof *p->tensors);
    if (p->tensors == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory planning %u layers", p->n_layer);
    int wt = opt->type;
    plan_add(p, "token_embd.weight", wt, 2, s->n_embd, s->n_vocab, INIT_EMBED);
    if (p->rope_freqs)
        plan_add(p, "rope_freqs.weight", RF_TYPE_F32, 1, head_dim / 2, 1, INIT_ROPE_FREQS);
    for (uint32_t l = 0; l < p->n_layer; l++) {
        char name[64];
#define LAYER(suffix, type, nd, a, b, init)                         \
    snprintf(name, sizeof name, "blk.%u." suffix, l);               \
    plan_add(p, name, type, nd, a, b, init)
        LAYER("attn_norm.weight", RF_TYPE_F32, 1, s->n_embd, 1, INIT_NORM);
        LAYER("attn_q.weight", wt, 2, s->n_embd, s->n_embd, INIT_WEIGHT);
        LAYER("attn_k.weight", wt, 2, s->n_embd, n_embd_kv, INIT_WEIGHT);
        LAYER("attn_v.weight", wt, 2, s->n_embd, n_embd_kv, INIT_WEIGHT);
        LAYER("attn_output.weight", wt, 2, s->n_embd, s->n_embd, INIT_WEIGHT);
        LAYER("ffn_norm.weight", RF_TYPE_F32, 1, s->n_embd, 1, INIT_NORM);
        LAYER("ffn_gate.weight", wt, 2, s->n_embd, s->n_ff, INIT_WEIGHT);
        LAYER("ffn_up.weight", wt, 2, s->n_embd, s->n_ff, INIT_WEIGHT);
        LAYER("ffn_down.weight", wt, 2, s->n_ff, s->n_embd, INIT_WEIGHT);
#undef LAYER
    }
    plan_add(p, "output_norm.weight", RF_TYPE_F32, 1, s->n_embd, 1, INIT_NORM);
    if (p->untied)
        plan_add(p, "output.weight", wt, 2, s->n_embd, s->n_vocab, INIT_WEIGHT);

    for (size_t i = 0; i < p->n_tensors; i++) {
        uint64_t row;
        int rc = rf_type_row_bytes(p->tensors[i].type, p->tensors[i].ne[0], &row);
        if (rc < 0)
            return rf_err_set(err, rc, "tensor %s: %s", p->tensors[i].name, rf_strerror(rc));
        p->total_bytes += row * p->tensors[i].ne[1];
    }
    return 0;
}

static void plan_free(plan_t *p)
{
    free(p->tensors);
    free(p->scratch);
    memset(p, 0, sizeof *p);
}

/* Llama 3 RoPE frequency factors (the divisor applied to each rotary
 * frequency): wavelengths shorter than the high-frequency cut keep their
 * frequency, longer than the low-frequency cut are divided by the scale
 * factor, and the band between is interpolated smoothly. */
static float llama3_rope_factor(uint32_t i, uint32_t head_dim, float base)
{
    const float factor = 32.0f, low_freq_factor = 1.0f, high_freq_factor = 4.0f;
    const float original_ctx = 8192.0f;
    float freq = powf(base, -2.0f * (float)i / (float)head_dim);
    float wavelen = 2.0f * (float)M_PI / freq;
    float low_wavelen = original_ctx / low_freq_factor;
    float high_wavelen = original_ctx / high_freq_factor;
    if (wavelen < high_wavelen)
        return 1.0f;
    if (wavelen > low_wavelen)
        return factor;
    float smooth = (original_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
    return 1.0f / ((1.0f - smooth) / factor + smooth);
}

/* Rows [a, b) of a fill_rows chunk: values into scratch, quantized into dst
 * (both at the chunk's start). Elements depend only on their index, so the
 * rows can be split between threads. */
typedef struct fill_job {
    const plan_t *p;
    const plan_tensor_t *t;
    size_t tensor_index;
    uint64_t row0, a, b;
    void *dst;
    int rc;
} fill_job_t;

static void *fill_range(void *arg)
{
    fill_job_t *j = arg;
    const plan_t *p = j->p;
    const plan_tensor_t *t = j->t;
    uint64_t ne0 = t->ne[0];
    /* Weights: uniform with standard deviation 1/sqrt(fan_in), so
     * activations keep their scale through the layers. */
    float weight_amp = sqrtf(3.0f / (float)ne0);
    uint32_t head_dim = p->shape->n_embd / p->shape->n_head;
    float *vals = p->scratch + j->a * ne0;
    size_t n = (size_t)((j->b - j->a) * ne0);
    for (size_t k = 0; k < n; k++) {
        uint64_t e = (j->row0 + j->a) * ne0 + k;
        float u = uniform_pm1(key_hash(p->opt.seed, j->tensor_index, e));
        float v;
        switch (t->init) {
        case INIT_EMBED: v = u; break;
        case INIT_NORM: v = 1.0f + 0.1f * u; break;
        case INIT_ROPE_FREQS:
            v = llama3_rope_factor((uint32_t)e, head_dim, p->shape->rope_freq_base);
            break;
        default: v = weight_amp * u; break;
        }
        vals[k] = v;
    }
    uint64_t row_bytes = 0;
    rf_type_row_bytes(t->type, ne0, &row_bytes);
    j->rc = rf_quantize_row(t->type, vals, (uint8_t *)j->dst + j->a * row_bytes, (int64_t)n);
    return NULL;
}

static int fill_rows(void *ctx, size_t tensor_index, uint64_t row0, uint64_t n_rows, void *dst)
{
    plan_t *p = ctx;
    const plan_tensor_t *t = &p->tensors[tensor_index];
    uint64_t ne0 = t->ne[0];
    size_t n = (size_t)(n_rows * ne0);
    if (n > p->scratch_elems) {
        float *bigger = realloc(p->scratch, n * sizeof *bigger);
        if (bigger == NULL)
            return -ENOMEM;
        p->scratch = bigger;
        p->scratch_elems = n;
    }
    /* Large chunks on every core (an 8B model is 8e9 values). */
    enum { MAX_THREADS = 32 };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t n_threads = n >= ((size_t)1 << 20) && cores > 1 ? (uint64_t)cores : 1;
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    if (n_threads > n_rows)
        n_threads = n_rows;
    fill_job_t jobs[MAX_THREADS];
    pthread_t threads[MAX_THREADS];
    bool started[MAX_THREADS] = {false};
    for (uint64_t i = 0; i < n_threads; i++) {
        jobs[i] = (fill_job_t){.p = p, .t = t, .tensor_index = tensor_index, .row0 = row0,
                               .a = n_rows * i / n_threads, .b = n_rows * (i + 1) / n_threads,
                               .dst = dst};
        if (i > 0)
            started[i] = pthread_create(&threads[i], NULL, fill_range, &jobs[i]) == 0;
    }
    fill_range(&jobs[0]);
    int rc = jobs[0].rc;
    for (uint64_t i = 1; i < n_threads; i++) {
        if (started[i])
            pthread_join(threads[i], NULL);
        else
            fill_range(&jobs[i]); /* no thread: do it here */
        if (rc == 0)
            rc = jobs[i].rc;
    }
    if (rc < 0)
        return rc;
    uint64_t row_bytes = 0;
    rf_type_row_bytes(t->type, ne0, &row_bytes);
    p->done_bytes += row_bytes * n_rows;
    if (p->progress)
        p->progress(p->progress_ctx, p->done_bytes, p->total_bytes);
    return 0;
}

/* ------------------------------------------------------------------------
 * Vocabulary
 * ------------------------------------------------------------------------ */

typedef struct vocab {
    char **tokens;
    int32_t *types;
    char **merges;
    uint32_t n_tokens, n_merges;
    uint32_t *table;   /* open addressing: token index + 1, 0 empty */
    uint32_t table_mask;
} vocab_t;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

static bool vocab_has(const vocab_t *v, const char *s)
{
    for (uint64_t i = str_hash(s) & v->table_mask;; i = (i + 1) & v->table_mask) {
        uint32_t slot = v->table[i];
        if (slot == 0)
            return false;
        if (strcmp(v->tokens[slot - 1], s) == 0)
            return true;
    }
}

static void vocab_push(vocab_t *v, char *s, int32_t type)
{
    uint32_t id = v->n_tokens++;
    v->tokens[id] = s;
    v->types[id] = type;
    uint64_t i = str_hash(s) & v->table_mask;
    while (v->table[i] != 0)
        i = (i + 1) & v->table_mask;
    v->table[i] = id + 1;
}

/* GPT-2's byte to code point map: printable Latin-1 bytes stand for
 * themselves, the others are shifted to code points from 256 up. */
static uint32_t byte_code_point(uint32_t b)
{
    if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff))
        return b;
    uint32_t shifted = 0;
    for (uint32_t c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff)))
            shifted++;
    return 256 + shifted;
}

static char *utf8_of(uint32_t cp)
{
    char *s = malloc(3);
    if (s == NULL)
        return NULL;
    if (cp < 0x80) {
        s[0] = (char)cp;
        s[1] = 0;
    } else {
        s[0] = (char)(0xc0 | (cp >> 6));
        s[1] = (char)(0x80 | (cp & 0x3f));
        s[2] = 0;
    }
    return s;
}

static void vocab_free(vocab_t *v)
{
    for (uint32_t i = 0; i < v->n_tokens; i++)
        free(v->tokens[i]);
    for (uint32_t i = 0; i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->table);
    memset(v, 0, sizeof *v);
}

enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3 };

static const char *const named_specials[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
    "<|eot_id|>",
};
#define N_NAMED_SPECIALS (sizeof named_specials / sizeof named_specials[0])

static int vocab_build(vocab_t *v, const rf_synth_shape_t *s, uint64_t seed, rf_err_t *err)
{
    memset(v, 0, sizeof *v);
    uint32_t n = s->n_vocab;
    /* Real Llama 3 vocabularies end in 256 control tokens; small shapes keep
     * just the named ones. */
    uint32_t n_special = n >= 4096 ? 256 : (uint32_t)N_NAMED_SPECIALS;
    if (n < 256 + n_special)
        return rf_err_set(err, RF_EUSAGE, "vocabulary of %u is too small", n);
    uint32_t table_size = 1;
    while (table_size < 2 * n)
        table_size <<= 1;
    v->tokens = calloc(n, sizeof *v->tokens);
    v->types = calloc(n, sizeof *v->types);
    v->merges = calloc(n, sizeof *v->merges);
    v->table = calloc(table_size, sizeof *v->table);
    v->table_mask = table_size - 1;
    if (!v->tokens || !v->types || !v->merges || !v->table)
        goto oom;
    for (uint32_t b = 0; b < 256; b++) {
        char *t = utf8_of(byte_code_point(b));
        if (t == NULL)
            goto oom;
        vocab_push(v, t, TOKEN_NORMAL);
    }
    /* Merge two tokens drawn with a bias toward short, early tokens, as a
     * trained vocabulary's early merges are; skip duplicates and long ones. */
    uint32_t n_normal = n - n_special;
    for (uint64_t attempt = 0; v->n_tokens < n_normal; attempt++) {
        uint64_t h = key_hash(seed, 0xb0cab, attempt);
        uint32_t limit = v->n_tokens;
        uint32_t a = (uint32_t)((h & 0xffffffffu) % limit);
        uint32_t b = (uint32_t)((h >> 32) % limit);
        if (attempt % 2 == 0) { /* favour printable ASCII bytes as one side */
            a = 0x21 + (uint32_t)(h % 94);
        }
        size_t la = strlen(v->tokens[a]), lb = strlen(v->tokens[b]);
        if (la + lb > 24)
            continue;
        char *joined = malloc(la + lb + 1);
        if (joined == NULL)
            goto oom;
        memcpy(joined, v->tokens[a], la);
        memcpy(joined + la, v->tokens[b], lb + 1);
        if (vocab_has(v, joined)) {
            free(joined);
            continue;
        }
        char *merge = malloc(la + lb + 2);
        if (merge == NULL) {
            free(joined);
            goto oom;
        }
        memcpy(merge, v->tokens[a], la);
        merge[la] = ' ';
        memcpy(merge + la + 1, v->tokens[b], lb + 1);
        v->merges[v->n_merges++] = merge;
        vocab_push(v, joined, TOKEN_NORMAL);
    }
    for (uint32_t i = 0; i < n_special; i++) {
        char buf[64];
        if (i < N_NAMED_SPECIALS)
            snprintf(buf, sizeof buf, "%s", named_specials[i]);
        else
            snprintf(buf, sizeof buf, "<|reserved_special_token_%u|>", i - (uint32_t)N_NAMED_SPECIALS);
        char *t = strdup(buf);
        if (t == NULL)
            goto oom;
        vocab_push(v, t, TOKEN_CONTROL);
    }
    return 0;
oom:
    vocab_free(v);
    return rf_err_set(err, -ENOMEM, "out of memory building a vocabulary of %u tokens", n);
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

int rf_synth_data_bytes(const rf_synth_options_t *opt, uint64_t *out)
{
    plan_t p;
    int rc = plan_build(&p, opt, NULL);
    if (rc == 0)
        *out = p.total_bytes;
    plan_free(&p);
    return rc;
}

#define CHECK(call)        \
    do {                   \
        rc = (call);       \
        if (rc < 0)        \
            goto fail;     \
    } while (0)

int rf_synth_write(const rf_synth_options_t *opt, const char *path,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total),
                   void *progress_ctx, rf_err_t *err)
{
    plan_t p;
    vocab_t v;
    rf_gguf_writer_t *w = NULL;
    memset(&v, 0, sizeof v);
    int rc = plan_build(&p, opt, err);
    if (rc < 0) {
        plan_free(&p);
        return rc;
    }
    p.progress = progress;
    p.progress_ctx = progress_ctx;
    const rf_synth_shape_t *s = p.shape;
    rc = vocab_build(&v, s, opt->seed, err);
    if (rc < 0) {
        plan_free(&p);
        return rc;
    }
    CHECK(rf_gguf_writer_open(&w));

    char name[128];
    snprintf(name, sizeof name, "rocmforge synthetic %s %s", s->name, rf_type_name(opt->type));
    CHECK(rf_gguf_writer_set_str(w, "general.architecture", "llama"));
    CHECK(rf_gguf_writer_set_str(w, "general.name", name));
    CHECK(rf_gguf_writer_set_u32(w, "general.quantization_version", 2));
    CHECK(rf_gguf_writer_set_str(w, "rocmforge.synth.shape", s->name));
    CHECK(rf_gguf_writer_set_u64(w, "rocmforge.synth.seed", opt->seed));
    CHECK(rf_gguf_writer_set_u32(w, "llama.vocab_size", s->n_vocab));
    CHECK(rf_gguf_writer_set_u32(w, "llama.context_length", s->n_ctx));
    CHECK(rf_gguf_writer_set_u32(w, "llama.embedding_length", s->n_embd));
    CHECK(rf_gguf_writer_set_u32(w, "llama.block_count", p.n_layer));
    CHECK(rf_gguf_writer_set_u32(w, "llama.feed_forward_length", s->n_ff));
    CHECK(rf_gguf_writer_set_u32(w, "llama.attention.head_count", s->n_head));
    CHECK(rf_gguf_writer_set_u32(w, "llama.attention.head_count_kv", s->n_head_kv));
    CHECK(rf_gguf_writer_set_u32(w, "llama.rope.dimension_count", s->n_embd / s->n_head));
    CHECK(rf_gguf_writer_set_f32(w, "llama.rope.freq_base", s->rope_freq_base));
    CHECK(rf_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", s->rms_eps));

    CHECK(rf_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2"));
    CHECK(rf_gguf_writer_set_str(w, "tokenizer.ggml.pre", "llama-bpe"));
    CHECK(rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.tokens,
                                     v.n_tokens));
    CHECK(rf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RF_GGUF_INT32, v.types,
                                 v.n_tokens));
    CHECK(rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v.merges,
                                     v.n_merges));
    uint32_t first_special = s->n_vocab - (s->n_vocab >= 4096 ? 256 : (uint32_t)N_NAMED_SPECIALS);
    CHECK(rf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", first_special));
    CHECK(rf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", first_special + 1));
    CHECK(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true));

    for (size_t i = 0; i < p.n_tensors; i++) {
        const plan_tensor_t *t = &p.tensors[i];
        CHECK(rf_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, NULL));
    }
    rc = rf_gguf_writer_write(w, path, fill_rows, &p, err);
    if (rc < 0)
        goto fail;
    rf_gguf_writer_close(w);
    vocab_free(&v);
    plan_free(&p);
    return 0;
fail:
    rf_err_set(err, rc, "writing %s: %s", path, rf_strerror(rc));
    rf_gguf_writer_close(w);
    vocab_free(&v);
    plan_free(&p);
    return rc;
}
