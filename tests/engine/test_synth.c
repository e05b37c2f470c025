/* test_synth.c - random-weight models: shapes, vocabulary, determinism */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"
#include "synth.h"

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/test_synth_%d_%s", RF_TMPDIR, (int)getpid(), name);
    return p;
}

static rf_gguf_t *write_and_open(const rf_synth_options_t *opt, const char *name)
{
    const char *path = tmp_path(name);
    rf_err_t err = {0};
    int rc = rf_synth_write(opt, path, NULL, NULL, &err);
    cr_assert_eq(rc, 0, "synth failed: %s", err.msg);
    rf_gguf_t *g = NULL;
    rc = rf_gguf_open(&g, path, &err);
    cr_assert_eq(rc, 0, "reading back failed: %s", err.msg);
    return g;
}

Test(synth, tiny_has_llama_metadata_and_every_tensor)
{
    rf_synth_options_t opt = {.shape = "tiny", .type = RF_TYPE_F16, .seed = 7};
    rf_gguf_t *g = write_and_open(&opt, "tiny.gguf");
    rf_gguf_str_t arch;
    cr_assert_eq(rf_gguf_get_str(g, "general.architecture", &arch), 0);
    cr_assert(rf_gguf_str_eq(arch, "llama"));
    uint32_t n_layer, n_embd, n_head, n_head_kv, n_ff;
    cr_assert_eq(rf_gguf_get_u32(g, "llama.block_count", &n_layer), 0);
    cr_assert_eq(rf_gguf_get_u32(g, "llama.embedding_length", &n_embd), 0);
    cr_assert_eq(rf_gguf_get_u32(g, "llama.attention.head_count", &n_head), 0);
    cr_assert_eq(rf_gguf_get_u32(g, "llama.attention.head_count_kv", &n_head_kv), 0);
    cr_assert_eq(rf_gguf_get_u32(g, "llama.feed_forward_length", &n_ff), 0);
    cr_assert_eq(n_layer, 2);
    cr_assert_eq(n_embd, 256);
    cr_assert_eq(n_head, 4);
    cr_assert_eq(n_head_kv, 2);
    cr_assert_eq(n_ff, 512);
    /* token_embd + 9 per layer + output_norm + untied output */
    cr_assert_eq(rf_gguf_n_tensors(g), 1 + 9 * 2 + 1 + 1);

    const rf_gguf_tensor_t *k = rf_gguf_find_tensor(g, "blk.1.attn_k.weight");
    cr_assert_not_null(k);
    cr_assert_eq(k->type, RF_TYPE_F16);
    cr_assert_eq(k->ne[0], 256);
    cr_assert_eq(k->ne[1], 128, "GQA: k projects to n_head_kv * head_dim");
    const rf_gguf_tensor_t *norm = rf_gguf_find_tensor(g, "blk.0.ffn_norm.weight");
    cr_assert_not_null(norm);
    cr_assert_eq(norm->type, RF_TYPE_F32, "norm weights stay f32");
    const rf_gguf_tensor_t *down = rf_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    cr_assert_not_null(down);
    cr_assert_eq(down->ne[0], 512);
    cr_assert_eq(down->ne[1], 256);
    rf_gguf_close(g);
}

Test(synth, vocabulary_is_consistent_bpe)
{
    rf_synth_options_t opt = {.shape = "tiny", .type = RF_TYPE_Q8_0, .seed = 3};
    rf_gguf_t *g = write_and_open(&opt, "vocab.gguf");
    const rf_gguf_value_t *tokens, *merges, *types;
    cr_assert_eq(rf_gguf_get_arr(g, "tokenizer.ggml.tokens", RF_GGUF_STRING, &tokens), 0);
    cr_assert_eq(rf_gguf_get_arr(g, "tokenizer.ggml.merges", RF_GGUF_STRING, &merges), 0);
    cr_assert_eq(rf_gguf_get_arr(g, "tokenizer.ggml.token_type", RF_GGUF_INT32, &types), 0);
    cr_assert_eq(tokens->v.arr.n, 512);
    cr_assert_eq(types->v.arr.n, 512);
    cr_assert_eq(merges->v.arr.n, 512 - 256 - 5, "every non-byte, non-control token has a merge");

    /* Byte 'A' stands for itself; byte 0x20 (space) is shifted to U+0120. */
    rf_gguf_str_t s;
    cr_assert_eq(rf_gguf_arr_str(tokens, 'A', &s), 0);
    cr_assert(s.len == 1 && s.data[0] == 'A');
    cr_assert_eq(rf_gguf_arr_str(tokens, ' ', &s), 0);
    cr_assert(s.len == 2 && (unsigned char)s.data[0] == 0xc4 && (unsigned char)s.data[1] == 0xa0);

    /* Merge i "a b" produces token 256 + i == a concatenated with b. */
    for (uint64_t i = 0; i < merges->v.arr.n; i++) {
        rf_gguf_str_t m, t;
        cr_assert_eq(rf_gguf_arr_str(merges, i, &m), 0);
        cr_assert_eq(rf_gguf_arr_str(tokens, 256 + i, &t), 0);
        const char *space = memchr(m.data, ' ', m.len);
        cr_assert_not_null(space);
        uint64_t left = (uint64_t)(space - m.data);
        cr_assert_eq(t.len, m.len - 1);
        cr_assert(memcmp(t.data, m.data, left) == 0);
        cr_assert(memcmp(t.data + left, space + 1, m.len - left - 1) == 0);
    }
    int64_t type;
    cr_assert_eq(rf_gguf_arr_i64(types, 100, &type), 0);
    cr_assert_eq(type, 1, "normal token");
    cr_assert_eq(rf_gguf_arr_i64(types, 511, &type), 0);
    cr_assert_eq(type, 3, "control token");
    uint32_t bos, eos;
    cr_assert_eq(rf_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &bos), 0);
    cr_assert_eq(rf_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &eos), 0);
    cr_assert_eq(rf_gguf_arr_str(tokens, bos, &s), 0);
    cr_assert(rf_gguf_str_eq(s, "<|begin_of_text|>"));
    cr_assert_eq(rf_gguf_arr_str(tokens, eos, &s), 0);
    cr_assert(rf_gguf_str_eq(s, "<|end_of_text|>"));
    rf_gguf_close(g);
}

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*size);
    cr_assert_eq(fread(buf, 1, *size, f), *size);
    fclose(f);
    return buf;
}

Test(synth, same_seed_same_bytes_other_seed_other_weights)
{
    rf_synth_options_t opt = {.shape = "tiny", .type = RF_TYPE_Q4_0, .seed = 11};
    const char *a = tmp_path("a.gguf"), *b = tmp_path("b.gguf"), *c = tmp_path("c.gguf");
    cr_assert_eq(rf_synth_write(&opt, a, NULL, NULL, NULL), 0);
    cr_assert_eq(rf_synth_write(&opt, b, NULL, NULL, NULL), 0);
    opt.seed = 12;
    cr_assert_eq(rf_synth_write(&opt, c, NULL, NULL, NULL), 0);
    size_t na, nb, nc;
    uint8_t *da = slurp(a, &na), *db = slurp(b, &nb), *dc = slurp(c, &nc);
    cr_assert_eq(na, nb);
    cr_assert(memcmp(da, db, na) == 0, "same seed must give identical files");
    cr_assert(na != nc || memcmp(da, dc, na) != 0, "another seed must change the weights");
    free(da);
    free(db);
    free(dc);
}

Test(synth, weights_have_unit_fan_in_scale)
{
    rf_synth_options_t opt = {.shape = "tiny", .type = RF_TYPE_F32, .seed = 5};
    rf_gguf_t *g = write_and_open(&opt, "scale.gguf");
    const rf_gguf_tensor_t *t = rf_gguf_find_tensor(g, "blk.0.ffn_up.weight");
    cr_assert_not_null(t);
    float *x = malloc(t->n_elements * sizeof *x);
    cr_assert_eq(rf_dequantize_row(t->type, t->data, x, (int64_t)t->n_elements), 0);
    double sum = 0, sq = 0;
    for (uint64_t i = 0; i < t->n_elements; i++) {
        sum += x[i];
        sq += (double)x[i] * x[i];
    }
    double mean = sum / (double)t->n_elements;
    double sd = sqrt(sq / (double)t->n_elements - mean * mean);
    double want = 1.0 / sqrt((double)t->ne[0]);
    cr_assert(fabs(mean) < 0.05 * want, "mean %g", mean);
    cr_assert(fabs(sd - want) < 0.03 * want, "sd %g, want %g", sd, want);
    free(x);
    rf_gguf_close(g);
}

Test(synth, real_shapes_have_published_parameter_counts)
{
    /* Llama-3-8B: 8,030,261,248 parameters, of which the 65 RMSNorm weight
     * vectors (2 per layer + the final one, 4096 each) stay F32 and the rest
     * are F16. */
    rf_synth_options_t opt = {.shape = "llama-3-8b", .type = RF_TYPE_F16};
    uint64_t bytes = 0, norms = 65ull * 4096;
    cr_assert_eq(rf_synth_data_bytes(&opt, &bytes), 0);
    cr_assert_eq(bytes, 2ull * (8030261248ull - norms) + 4 * norms, "got %llu",
                 (unsigned long long)bytes);
    /* Llama-3.2-1B: 1,235,814,400 parameters with the output tied, 33 norms
     * of 2048, plus the 32 f32 RoPE frequency factors of Llama 3's
     * long-context scaling. */
    opt.shape = "llama-3.2-1b";
    norms = 33ull * 2048;
    cr_assert_eq(rf_synth_data_bytes(&opt, &bytes), 0);
    cr_assert_eq(bytes, 2ull * (1235814400ull - norms) + 4 * norms + 32 * 4, "got %llu",
                 (unsigned long long)bytes);
    opt.output = 1; /* untied: a second 128256 x 2048 matrix */
    cr_assert_eq(rf_synth_data_bytes(&opt, &bytes), 0);
    cr_assert_eq(bytes, 2ull * (1235814400ull - norms + 128256ull * 2048ull) + 4 * norms + 32 * 4);
}

Test(synth, rejects_unknown_shape_and_type_without_quantizer)
{
    rf_err_t err = {0};
    rf_synth_options_t opt = {.shape = "gpt-5", .type = RF_TYPE_F16};
    cr_assert_eq(rf_synth_write(&opt, tmp_path("x.gguf"), NULL, NULL, &err), RF_EUSAGE);
    cr_assert(strstr(err.msg, "gpt-5") != NULL, "%s", err.msg);
    rf_err_clear(&err);
    opt.shape = "tiny";
    opt.type = RF_TYPE_IQ2_XXS;
    cr_assert_eq(rf_synth_write(&opt, tmp_path("x.gguf"), NULL, NULL, &err), RF_EUSAGE);
    cr_assert(strstr(err.msg, "IQ2_XXS") != NULL, "%s", err.msg);
    FILE *f = fopen(tmp_path("x.gguf"), "rb");
    cr_assert_null(f, "a failed synth must not leave a file");
}
