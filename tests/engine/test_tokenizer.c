/* test_tokenizer.c - tokenizer: loading, SPM and byte-level BPE, special tokens, decoding
 *
 * The vocabularies here are small and built by hand with the GGUF writer, so
 * each expected id can be worked out on paper; the synthetic "tiny" model
 * checks a whole model file end to end. The pre-tokenizers are compared with
 * tables of splits the reference's regular expressions give (checked with
 * Node's RegExp, flags "gu") and, when the build provides PCRE2
 * (RF_HAVE_PCRE2), with the same expressions run by PCRE2 on random text.
 * Agreement with the real Llama 2, Llama 3 and Qwen 3 vocabularies is
 * test_tokenizer_conformance.c's job.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "quant.h"
#include "synth.h"
#include "tokenizer.h"
#include "tokenizer_internal.h"
#include "unicode.h"

#define FFFD_STR "\xEF\xBF\xBD"

#ifdef RF_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

/* ------------------------------------------------------------------------
 * Building vocabularies
 * ------------------------------------------------------------------------ */

typedef struct vocab {
    const char *model;        /* NULL: key left out */
    const char *pre;          /* NULL: key left out */
    char **tokens;
    int32_t *types;
    float *scores;            /* NULL: key left out */
    size_t n;
    const char *const *merges;
    size_t n_merges;          /* 0 with merges NULL: key left out */
    int64_t bos, eos, unk;    /* -1: key left out */
    int add_bos, add_eos, add_space_prefix, ignore_merges; /* -1: key left out */
    bool types_short;         /* write one type fewer than tokens */
} vocab_t;

static void vocab_init(vocab_t *v, const char *model, const char *pre)
{
    memset(v, 0, sizeof *v);
    v->model = model;
    v->pre = pre;
    v->bos = v->eos = v->unk = -1;
    v->add_bos = v->add_eos = v->add_space_prefix = v->ignore_merges = -1;
    v->tokens = calloc(1024, sizeof *v->tokens);
    v->types = calloc(1024, sizeof *v->types);
    cr_assert(v->tokens && v->types);
}

static int32_t vocab_add(vocab_t *v, const char *piece, int32_t type)
{
    cr_assert_lt(v->n, 1024);
    v->tokens[v->n] = strdup(piece);
    v->types[v->n] = type;
    return (int32_t)v->n++;
}

static void vocab_free(vocab_t *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->tokens[i]);
    free(v->tokens);
    free(v->types);
    free(v->scores);
}

static const char *tmp_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/test_tokenizer_%d_%s.gguf", RF_TMPDIR, (int)getpid(), name);
    return buf;
}

/* Write v, open it as a tokenizer and return the tokenizer's return code. */
static int vocab_open(const vocab_t *v, rf_tokenizer_t **tok, rf_err_t *err)
{
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    if (v->model)
        cr_assert_eq(rf_gguf_writer_set_str(w, "tokenizer.ggml.model", v->model), 0);
    if (v->pre)
        cr_assert_eq(rf_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre), 0);
    cr_assert_eq(rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                            (const char *const *)v->tokens, v->n), 0);
    cr_assert_eq(rf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RF_GGUF_INT32, v->types,
                                        v->types_short ? v->n - 1 : v->n), 0);
    if (v->scores)
        cr_assert_eq(rf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", RF_GGUF_FLOAT32,
                                            v->scores, v->n), 0);
    if (v->merges)
        cr_assert_eq(rf_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", v->merges,
                                                v->n_merges), 0);
    if (v->bos >= 0)
        cr_assert_eq(rf_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos), 0);
    if (v->eos >= 0)
        cr_assert_eq(rf_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos), 0);
    if (v->unk >= 0)
        cr_assert_eq(rf_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id",
                                            (uint32_t)v->unk), 0);
    if (v->add_bos >= 0)
        cr_assert_eq(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos), 0);
    if (v->add_eos >= 0)
        cr_assert_eq(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos), 0);
    if (v->add_space_prefix >= 0)
        cr_assert_eq(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix",
                                             v->add_space_prefix), 0);
    if (v->ignore_merges >= 0)
        cr_assert_eq(rf_gguf_writer_set_bool(w, "rocmforge.tokenizer.ignore_merges",
                                             v->ignore_merges), 0);
    const char *path = tmp_path(v->model ? v->model : "none");
    rf_err_t werr = {0};
    cr_assert_eq(rf_gguf_writer_write(w, path, NULL, NULL, &werr), 0, "%s", werr.msg);
    rf_gguf_writer_close(w);
    rf_gguf_t *g = NULL;
    cr_assert_eq(rf_gguf_open(&g, path, &werr), 0, "%s", werr.msg);
    unlink(path);
    *tok = NULL;
    rf_err_clear(err);
    int rc = rf_tokenizer_open(tok, g, err);
    rf_gguf_close(g);
    return rc;
}

static rf_tokenizer_t *vocab_open_ok(const vocab_t *v)
{
    rf_tokenizer_t *tok;
    rf_err_t err = {0};
    int rc = vocab_open(v, &tok, &err);
    cr_assert_eq(rc, 0, "open failed: %s", err.msg);
    return tok;
}

/* Encode text and compare with want (n ids). */
static void assert_encodes(const rf_tokenizer_t *tok, const char *text, size_t len,
                           bool add_special, bool parse_special, const int32_t *want, size_t n)
{
    rf_tokens_t t = {0};
    rf_tokenize_options_t opt = {add_special, parse_special};
    cr_assert_eq(rf_tokenizer_encode(tok, text, len, &opt, &t), 0);
    char got[512] = "", exp[512] = "";
    for (size_t i = 0; i < t.n; i++)
        snprintf(got + strlen(got), sizeof got - strlen(got), " %d", t.ids[i]);
    for (size_t i = 0; i < n; i++)
        snprintf(exp + strlen(exp), sizeof exp - strlen(exp), " %d", want[i]);
    cr_assert_str_eq(got, exp, "encoding '%.*s': got [%s ], want [%s ]", (int)len, text, got, exp);
    rf_tokens_free(&t);
}

#define ENC(tok, text, add, parse, ...)                                                   \
    do {                                                                                  \
        const int32_t want_[] = {__VA_ARGS__};                                            \
        assert_encodes(tok, text, sizeof(text) - 1, add, parse, want_,                    \
                       sizeof want_ / sizeof want_[0]);                                   \
    } while (0)

static rf_bytes_t decode(const rf_tokenizer_t *tok, const int32_t *ids, size_t n, bool skip,
                         bool strip)
{
    rf_bytes_t b = {0};
    rf_detokenize_options_t opt = {skip, strip};
    cr_assert_eq(rf_tokenizer_decode(tok, ids, n, &opt, &b), 0);
    if (b.data == NULL)
        rf_bytes_append(&b, "", 0);
    return b;
}

/* ------------------------------------------------------------------------
 * An SPM vocabulary: <unk> <s> </s>, the 256 byte tokens, then pieces that
 * merge "▁hello ▁world".
 * ------------------------------------------------------------------------ */

#define LB "\xE2\x96\x81" /* U+2581 */

enum { SPM_UNK, SPM_BOS, SPM_EOS, SPM_BYTE0 };

typedef struct spm_ids {
    int32_t lb, h, e, l, o, w, r, d, he, ll, lb_he, llo, lb_hello, or, lb_w, lb_wor, ld, lb_world,
        tool;
} spm_ids_t;

static const char *const spm_merges[] = {
    "h e", "l l", LB " he", "ll o", LB "he llo", "o r", LB " w", LB "w or", "l d", LB "wor ld",
};

static void spm_vocab(vocab_t *v, spm_ids_t *ids, bool with_bytes)
{
    vocab_init(v, "llama", "default");
    vocab_add(v, "<unk>", RF_TOKEN_UNKNOWN);
    vocab_add(v, "<s>", RF_TOKEN_CONTROL);
    vocab_add(v, "</s>", RF_TOKEN_CONTROL);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        /* Without byte tokens the slots still exist, as unused pieces. */
        if (with_bytes)
            vocab_add(v, name, RF_TOKEN_BYTE);
        else
            vocab_add(v, name + 1, RF_TOKEN_UNUSED);
    }
    ids->lb = vocab_add(v, LB, RF_TOKEN_NORMAL);
    ids->h = vocab_add(v, "h", RF_TOKEN_NORMAL);
    ids->e = vocab_add(v, "e", RF_TOKEN_NORMAL);
    ids->l = vocab_add(v, "l", RF_TOKEN_NORMAL);
    ids->o = vocab_add(v, "o", RF_TOKEN_NORMAL);
    ids->w = vocab_add(v, "w", RF_TOKEN_NORMAL);
    ids->r = vocab_add(v, "r", RF_TOKEN_NORMAL);
    ids->d = vocab_add(v, "d", RF_TOKEN_NORMAL);
    ids->he = vocab_add(v, "he", RF_TOKEN_NORMAL);
    ids->ll = vocab_add(v, "ll", RF_TOKEN_NORMAL);
    ids->lb_he = vocab_add(v, LB "he", RF_TOKEN_NORMAL);
    ids->llo = vocab_add(v, "llo", RF_TOKEN_NORMAL);
    ids->lb_hello = vocab_add(v, LB "hello", RF_TOKEN_NORMAL);
    ids->or = vocab_add(v, "or", RF_TOKEN_NORMAL);
    ids->lb_w = vocab_add(v, LB "w", RF_TOKEN_NORMAL);
    ids->lb_wor = vocab_add(v, LB "wor", RF_TOKEN_NORMAL);
    ids->ld = vocab_add(v, "ld", RF_TOKEN_NORMAL);
    ids->lb_world = vocab_add(v, LB "world", RF_TOKEN_NORMAL);
    ids->tool = vocab_add(v, "<tool>", RF_TOKEN_USER_DEFINED);
    v->merges = spm_merges;
    v->n_merges = sizeof spm_merges / sizeof spm_merges[0];
    v->bos = SPM_BOS;
    v->eos = SPM_EOS;
    v->unk = SPM_UNK;
}

Test(tokenizer_spm, words_merge_in_rank_order)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    cr_assert_eq(rf_tokenizer_kind(tok), RF_TOKENIZER_SPM);
    cr_assert_str_eq(rf_tokenizer_pre(tok), "");
    ENC(tok, "hello world", false, false, id.lb_hello, id.lb_world);
    /* Two spaces: the first stays a lone U+2581. */
    ENC(tok, "hello  world", false, false, id.lb_hello, id.lb, id.lb_world);
    /* "h e" and "l l" rank before "▁ he"; "▁hell" is no token. */
    ENC(tok, "hell", false, false, id.lb_he, id.ll);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, characters_missing_from_the_vocabulary_fall_back_to_bytes)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    /* é is C3 A9; 😀 is F0 9F 98 80. */
    ENC(tok, "h\xC3\xA9", false, false, id.lb, id.h, SPM_BYTE0 + 0xC3, SPM_BYTE0 + 0xA9);
    ENC(tok, "\xF0\x9F\x98\x80", false, false, id.lb, SPM_BYTE0 + 0xF0, SPM_BYTE0 + 0x9F,
        SPM_BYTE0 + 0x98, SPM_BYTE0 + 0x80);
    /* An embedded NUL is a character like any other: here, byte 00. */
    ENC(tok, "h\0e", false, false, id.lb, id.h, SPM_BYTE0, id.e);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, without_byte_tokens_an_unknown_character_is_unk)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, false);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    ENC(tok, "h\xC3\xA9", false, false, id.lb, id.h, SPM_UNK);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, special_tokens_split_the_text_and_each_part_gets_the_prefix)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    ENC(tok, "<s>hello</s>world", false, true, SPM_BOS, id.lb_hello, SPM_EOS, id.lb_world);
    ENC(tok, "hello<tool>", false, true, id.lb_hello, id.tool);
    /* Not parsed: the markup is text, here bytes for '<', '/', '>' and 's'. */
    ENC(tok, "</s>", false, false, id.lb, SPM_BYTE0 + '<', SPM_BYTE0 + '/', SPM_BYTE0 + 's',
        SPM_BYTE0 + '>');
    ENC(tok, "<tool>", false, false, id.lb, SPM_BYTE0 + '<', SPM_BYTE0 + 't', id.o, id.o, id.l,
        SPM_BYTE0 + '>');
    /* <unk> is an added token of the Hugging Face vocabulary: parsed too. */
    ENC(tok, "<unk>", false, true, SPM_UNK);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, bos_and_eos_follow_the_vocabulary)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    /* SPM adds BOS by default, never EOS. */
    ENC(tok, "hello", true, false, SPM_BOS, id.lb_hello);
    ENC(tok, "hello", false, false, id.lb_hello);
    ENC(tok, "", true, false, SPM_BOS);
    rf_tokenizer_close(tok);
    v.add_bos = 0;
    v.add_eos = 1;
    tok = vocab_open_ok(&v);
    ENC(tok, "hello", true, false, id.lb_hello, SPM_EOS);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, ignore_merges_looks_the_whole_stretch_up_first)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    int32_t lb_hell = vocab_add(&v, LB "hell", RF_TOKEN_NORMAL); /* no merge makes it */
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    ENC(tok, "hell", false, false, id.lb_he, id.ll);
    rf_tokenizer_close(tok);
    v.ignore_merges = 1;
    tok = vocab_open_ok(&v);
    ENC(tok, "hell", false, false, lb_hell);
    ENC(tok, "hell hell", false, false, id.lb_he, id.ll, id.lb_he, id.ll);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, add_space_prefix_false_keeps_the_text_as_it_is)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    v.add_space_prefix = 0;
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    ENC(tok, "hello world", false, false, id.he, id.llo, id.lb_world);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, decode_undoes_the_normalisation)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    const int32_t ids[] = {SPM_BOS, id.lb_hello, id.lb_world, SPM_BYTE0 + 0xC3, SPM_BYTE0 + 0xA9,
                           SPM_EOS};
    size_t n = sizeof ids / sizeof ids[0];
    rf_bytes_t b = decode(tok, ids, n, true, true);
    cr_assert_str_eq(b.data, "hello world\xC3\xA9");
    rf_bytes_free(&b);
    b = decode(tok, ids, n, false, false);
    cr_assert_str_eq(b.data, "<s> hello world\xC3\xA9</s>");
    rf_bytes_free(&b);
    /* The space prefix goes from the first piece decoded, not from <s>. */
    b = decode(tok, ids, n, true, false);
    cr_assert_str_eq(b.data, " hello world\xC3\xA9");
    rf_bytes_free(&b);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

/* Two vocabularies that differ only in the order of their merges. */
static rf_tokenizer_t *abc_vocab(vocab_t *v, const char *const *merges, const float *scores)
{
    vocab_init(v, "llama", NULL);
    vocab_add(v, "<unk>", RF_TOKEN_UNKNOWN);
    vocab_add(v, "a", RF_TOKEN_NORMAL);  /* 1 */
    vocab_add(v, "b", RF_TOKEN_NORMAL);  /* 2 */
    vocab_add(v, "c", RF_TOKEN_NORMAL);  /* 3 */
    vocab_add(v, "ab", RF_TOKEN_NORMAL); /* 4 */
    vocab_add(v, "bc", RF_TOKEN_NORMAL); /* 5 */
    v->add_space_prefix = 0;
    v->unk = 0;
    if (merges) {
        v->merges = merges;
        v->n_merges = 2;
    }
    if (scores) {
        v->scores = malloc(v->n * sizeof *v->scores);
        memcpy(v->scores, scores, v->n * sizeof *v->scores);
    }
    return vocab_open_ok(v);
}

Test(tokenizer_spm, the_earlier_merge_wins)
{
    static const char *const ab_first[] = {"a b", "b c"};
    static const char *const bc_first[] = {"b c", "a b"};
    vocab_t v;
    rf_tokenizer_t *tok = abc_vocab(&v, ab_first, NULL);
    ENC(tok, "abc", false, false, 4, 3);
    rf_tokenizer_close(tok);
    vocab_free(&v);
    tok = abc_vocab(&v, bc_first, NULL);
    ENC(tok, "abc", false, false, 1, 5);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_spm, without_merges_the_higher_score_wins_and_ties_go_left)
{
    vocab_t v;
    const float ab_higher[] = {0, -10, -10, -10, -1, -2};
    const float bc_higher[] = {0, -10, -10, -10, -2, -1};
    const float equal[] = {0, -10, -10, -10, -1, -1};
    rf_tokenizer_t *tok = abc_vocab(&v, NULL, ab_higher);
    ENC(tok, "abc", false, false, 4, 3);
    rf_tokenizer_close(tok);
    vocab_free(&v);
    tok = abc_vocab(&v, NULL, bc_higher);
    ENC(tok, "abc", false, false, 1, 5);
    rf_tokenizer_close(tok);
    vocab_free(&v);
    tok = abc_vocab(&v, NULL, equal);
    ENC(tok, "abc", false, false, 4, 3);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------
 * A byte-level BPE vocabulary: the 256 byte tokens in byte order (id = byte),
 * then pieces that merge "hello world", then special tokens.
 * ------------------------------------------------------------------------ */

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* GPT-2's character for byte b, written out independently of the library. */
static uint32_t gpt2_char(unsigned b)
{
    unsigned n = 0;
    for (unsigned c = 0; c < 256; c++) {
        bool printable = (c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE;
        if (c == b)
            return printable ? c : 256 + n;
        if (!printable)
            n++;
    }
    return 0;
}

typedef struct bpe_ids {
    int32_t he, ll, hell, hello, gw, or, gwor, ld, gworld, xyz, bos, eos, eot, tool;
} bpe_ids_t;

static const char *const bpe_merges[] = {
    "h e", "l l", "he ll", "hell o", "\xC4\xA0 w", "o r", "\xC4\xA0w or", "l d", "\xC4\xA0wor ld",
};

static void bpe_vocab(vocab_t *v, bpe_ids_t *ids, const char *pre)
{
    vocab_init(v, "gpt2", pre);
    for (unsigned b = 0; b < 256; b++) {
        char s[3] = {0};
        utf8_put(gpt2_char(b), s);
        vocab_add(v, s, RF_TOKEN_NORMAL);
    }
    ids->he = vocab_add(v, "he", RF_TOKEN_NORMAL);
    ids->ll = vocab_add(v, "ll", RF_TOKEN_NORMAL);
    ids->hell = vocab_add(v, "hell", RF_TOKEN_NORMAL);
    ids->hello = vocab_add(v, "hello", RF_TOKEN_NORMAL);
    ids->gw = vocab_add(v, "\xC4\xA0w", RF_TOKEN_NORMAL);
    ids->or = vocab_add(v, "or", RF_TOKEN_NORMAL);
    ids->gwor = vocab_add(v, "\xC4\xA0wor", RF_TOKEN_NORMAL);
    ids->ld = vocab_add(v, "ld", RF_TOKEN_NORMAL);
    ids->gworld = vocab_add(v, "\xC4\xA0world", RF_TOKEN_NORMAL);
    ids->xyz = vocab_add(v, "xyz", RF_TOKEN_NORMAL); /* no merge makes it */
    ids->bos = vocab_add(v, "<|begin_of_text|>", RF_TOKEN_CONTROL);
    ids->eos = vocab_add(v, "<|end_of_text|>", RF_TOKEN_CONTROL);
    ids->eot = vocab_add(v, "<|eot_id|>", RF_TOKEN_CONTROL);
    ids->tool = vocab_add(v, "<tool>", RF_TOKEN_USER_DEFINED);
    v->merges = bpe_merges;
    v->n_merges = sizeof bpe_merges / sizeof bpe_merges[0];
    v->bos = ids->bos;
    v->eos = ids->eos;
}

Test(tokenizer_bpe, bytes_merge_by_rank_within_pieces)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "gpt-2");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    cr_assert_eq(rf_tokenizer_kind(tok), RF_TOKENIZER_BPE);
    cr_assert_str_eq(rf_tokenizer_pre(tok), "gpt-2");
    ENC(tok, "hello world", false, false, id.hello, id.gworld);
    ENC(tok, "hello\n", false, false, id.hello, '\n');
    /* A merge never crosses pieces: "o" and " w" are in different ones. */
    ENC(tok, "hello wo", false, false, id.hello, id.gw, 'o');
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, ignore_merges_emits_a_vocabulary_word_whole)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    ENC(tok, "xyz", false, false, id.xyz);
    rf_tokenizer_close(tok);
    /* qwen2 has no ignore_merges: nothing merges x, y and z. */
    v.pre = "qwen2";
    tok = vocab_open_ok(&v);
    ENC(tok, "xyz", false, false, 'x', 'y', 'z');
    rf_tokenizer_close(tok);
    /* The importer's key overrides the pre-tokenizer's default. */
    v.pre = "llama-bpe";
    v.ignore_merges = 0;
    tok = vocab_open_ok(&v);
    ENC(tok, "xyz", false, false, 'x', 'y', 'z');
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, qwen2_normalises_to_nfc_first)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "qwen2");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    /* e + COMBINING ACUTE becomes é (C3 A9) before the bytes are taken. */
    ENC(tok, "e\xCC\x81", false, false, 0xC3, 0xA9);
    rf_tokenizer_close(tok);
    v.pre = "llama-bpe";
    tok = vocab_open_ok(&v);
    ENC(tok, "e\xCC\x81", false, false, 'e', 0xCC, 0x81);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, special_tokens_parse_only_when_asked)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    ENC(tok, "<|eot_id|>hello<tool>", false, true, id.eot, id.hello, id.tool);
    /* As text: "<|", "eot", "_id", "|>" pieces of bytes. */
    ENC(tok, "<|eot_id|>", false, false, '<', '|', 'e', 'o', 't', '_', 'i', 'd', '|', '>');
    /* Longest match: "<|eot_id|>" is not cut short by a shorter token. */
    ENC(tok, "<|end_of_text|><|eot_id|>", false, true, id.eos, id.eot);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, bos_default_and_override)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    /* llama.cpp's default for llama-bpe adds BOS. */
    ENC(tok, "hello", true, false, id.bos, id.hello);
    rf_tokenizer_close(tok);
    v.add_bos = 0;
    tok = vocab_open_ok(&v);
    ENC(tok, "hello", true, false, id.hello);
    rf_tokenizer_close(tok);
    v.pre = "qwen2";
    v.add_bos = -1;
    tok = vocab_open_ok(&v);
    ENC(tok, "hello", true, false, id.hello);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, invalid_utf8_is_u_fffd_and_nul_is_a_character)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    /* "a", FF, "b" reads as "a\uFFFDb": pieces "a" and "\uFFFDb" (U+FFFD
     * is neither letter, number nor space, so it leads the letters). */
    ENC(tok, "a\xFF" "b", false, false, 'a', 0xEF, 0xBF, 0xBD, 'b');
    ENC(tok, "a\xEF\xBF\xBD" "b", false, false, 'a', 0xEF, 0xBF, 0xBD, 'b');
    ENC(tok, "a\0b", false, false, 'a', 0, 'b');
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, oversized_text_is_refused_before_it_is_read)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "gpt-2");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    rf_tokens_t t = {0};
    char small[1] = {'a'};
    cr_assert_eq(rf_tokenizer_encode(tok, small, RF_TOKENIZER_MAX_TEXT, NULL, &t), RF_ERANGE);
    cr_assert_eq(t.n, 0);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, decode_maps_byte_characters_back)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    const int32_t ids[] = {id.bos, id.hello, id.gworld, 0xC3, 0xA9, '\n', 0, id.eot};
    size_t n = sizeof ids / sizeof ids[0];
    rf_bytes_t b = decode(tok, ids, n, false, false);
    const char want[] = "<|begin_of_text|>hello world\xC3\xA9\n\0<|eot_id|>";
    cr_assert_eq(b.len, sizeof want - 1);
    cr_assert(memcmp(b.data, want, b.len) == 0);
    rf_bytes_free(&b);
    b = decode(tok, ids, n, true, false);
    cr_assert_eq(b.len, sizeof "hello world\xC3\xA9\n" - 1 + 1);
    rf_bytes_free(&b);
    rf_bytes_t one = {0};
    cr_assert_eq(rf_tokenizer_token_bytes(tok, id.gworld, &one), 0);
    cr_assert_str_eq(one.data, " world");
    rf_bytes_free(&one);
    /* An id out of range appends nothing. */
    const int32_t bad[] = {id.hello, 100000};
    rf_bytes_t none = {0};
    cr_assert_eq(rf_tokenizer_decode(tok, bad, 2, NULL, &none), RF_ERANGE);
    cr_assert_eq(none.len, 0);
    rf_bytes_free(&none);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_bpe, vocabulary_facts)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    cr_assert_eq(rf_tokenizer_n_vocab(tok), v.n);
    cr_assert_eq(rf_tokenizer_find(tok, "hello"), id.hello);
    cr_assert_eq(rf_tokenizer_find(tok, "nope"), -1);
    cr_assert_str_eq(rf_tokenizer_piece(tok, id.gw), "\xC4\xA0w");
    cr_assert_null(rf_tokenizer_piece(tok, -1));
    cr_assert_eq(rf_tokenizer_token_type(tok, id.tool), RF_TOKEN_USER_DEFINED);
    cr_assert_eq(rf_tokenizer_bos(tok), id.bos);
    cr_assert_eq(rf_tokenizer_eos(tok), id.eos);
    cr_assert_eq(rf_tokenizer_eot(tok), id.eot, "found by name when the file has no eot id");
    cr_assert(rf_tokenizer_is_eog(tok, id.eos));
    cr_assert(rf_tokenizer_is_eog(tok, id.eot));
    cr_assert(!rf_tokenizer_is_eog(tok, id.bos));
    cr_assert(!rf_tokenizer_is_eog(tok, id.hello));
    cr_assert(!rf_tokenizer_is_eog(tok, 1 << 30));
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------
 * Incremental decoding
 * ------------------------------------------------------------------------ */

Test(tokenizer_detok, never_emits_a_partial_character)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    const char text[] = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80 hello";
    rf_tokens_t t = {0};
    cr_assert_eq(rf_tokenizer_encode(tok, text, sizeof text - 1, NULL, &t), 0);
    rf_detok_t d;
    rf_detok_init(&d, tok, NULL);
    rf_bytes_t out = {0};
    for (size_t i = 0; i < t.n; i++) {
        cr_assert_eq(rf_detok_push(&d, t.ids[i], &out), 0);
        cr_assert_eq(rf__utf8_valid_prefix(out.data ? out.data : "", out.len), out.len,
                     "after token %zu the output ends inside a character", i);
    }
    cr_assert_eq(rf_detok_flush(&d, &out), 0);
    cr_assert_eq(out.len, sizeof text - 1);
    cr_assert(memcmp(out.data, text, out.len) == 0);
    rf_bytes_free(&out);
    rf_tokens_free(&t);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_detok, broken_sequences_become_u_fffd)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "llama-bpe");
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    rf_detok_t d;
    rf_detok_init(&d, tok, NULL);
    rf_bytes_t out = {0};
    /* C3 waits for its continuation; 'A' cannot be one. */
    cr_assert_eq(rf_detok_push(&d, 0xC3, &out), 0);
    cr_assert_eq(out.len, 0, "held back");
    cr_assert_eq(rf_detok_push(&d, 'A', &out), 0);
    cr_assert_str_eq(out.data, FFFD_STR "A");
    /* E2 82 then the end of the stream: one U+FFFD at flush. */
    cr_assert_eq(rf_detok_push(&d, 0xE2, &out), 0);
    cr_assert_eq(rf_detok_push(&d, 0x82, &out), 0);
    cr_assert_str_eq(out.data, FFFD_STR "A");
    cr_assert_eq(rf_detok_flush(&d, &out), 0);
    cr_assert_str_eq(out.data, FFFD_STR "A" FFFD_STR);
    /* A lone continuation byte is invalid at once. */
    cr_assert_eq(rf_detok_push(&d, 0x80, &out), 0);
    cr_assert_str_eq(out.data, FFFD_STR "A" FFFD_STR FFFD_STR);
    cr_assert_eq(rf_detok_push(&d, 100000, &out), RF_ERANGE);
    rf_bytes_free(&out);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

Test(tokenizer_detok, strips_the_spm_prefix_once_and_skips_control_tokens)
{
    vocab_t v;
    spm_ids_t id;
    spm_vocab(&v, &id, true);
    rf_tokenizer_t *tok = vocab_open_ok(&v);
    rf_detokenize_options_t opt = {true, true};
    rf_detok_t d;
    rf_detok_init(&d, tok, &opt);
    rf_bytes_t out = {0};
    cr_assert_eq(rf_detok_push(&d, SPM_BOS, &out), 0);
    cr_assert_eq(rf_detok_push(&d, id.lb_hello, &out), 0);
    cr_assert_str_eq(out.data, "hello");
    cr_assert_eq(rf_detok_push(&d, id.lb_world, &out), 0);
    cr_assert_eq(rf_detok_push(&d, SPM_EOS, &out), 0);
    cr_assert_str_eq(out.data, "hello world");
    rf_bytes_free(&out);
    rf_tokenizer_close(tok);
    vocab_free(&v);
}

/* ------------------------------------------------------------------------
 * Loading errors
 * ------------------------------------------------------------------------ */

static void assert_open_fails(const vocab_t *v, int want, const char *in_msg)
{
    rf_tokenizer_t *tok = (rf_tokenizer_t *)1;
    rf_err_t err = {0};
    int rc = vocab_open(v, &tok, &err);
    cr_assert_eq(rc, want, "got %d (%s), want %d", rc, err.msg, want);
    cr_assert_null(tok);
    cr_assert_not_null(strstr(err.msg, in_msg), "message '%s' lacks '%s'", err.msg, in_msg);
}

Test(tokenizer_open, unknown_pre_tokenizer_is_unsupported_and_named)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "tekken");
    assert_open_fails(&v, RF_EUNSUPPORTED, "'tekken'");
    vocab_free(&v);
}

Test(tokenizer_open, unknown_model_is_unsupported_and_named)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "gpt-2");
    v.model = "rwkv";
    assert_open_fails(&v, RF_EUNSUPPORTED, "'rwkv'");
    vocab_free(&v);
}

Test(tokenizer_open, missing_keys_are_not_found)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, NULL);
    assert_open_fails(&v, RF_ENOTFOUND, "tokenizer.ggml.pre");
    v.pre = "gpt-2";
    v.model = NULL;
    assert_open_fails(&v, RF_ENOTFOUND, "tokenizer.ggml.model");
    v.model = "gpt2";
    v.merges = NULL;
    v.n_merges = 0;
    assert_open_fails(&v, RF_ENOTFOUND, "tokenizer.ggml.merges");
    vocab_free(&v);
}

Test(tokenizer_open, inconsistent_vocabularies_are_format_errors)
{
    vocab_t v;
    bpe_ids_t id;
    bpe_vocab(&v, &id, "gpt-2");
    static const char *const bad_merge[] = {"h e", "he q\xC3\xA9"};
    v.merges = bad_merge;
    v.n_merges = 2;
    assert_open_fails(&v, RF_EFORMAT, "merges[1]");
    v.merges = bpe_merges;
    v.n_merges = sizeof bpe_merges / sizeof bpe_merges[0];
    v.bos = 100000;
    assert_open_fails(&v, RF_EFORMAT, "bos_token_id");
    v.bos = id.bos;
    v.types_short = true;
    assert_open_fails(&v, RF_EFORMAT, "token_type");
    vocab_free(&v);
}

/* ------------------------------------------------------------------------
 * The synthetic model
 * ------------------------------------------------------------------------ */

Test(tokenizer_synth, tiny_model_round_trips_text)
{
    const char *path = tmp_path("synth");
    rf_synth_options_t opt = {.shape = "tiny", .type = RF_TYPE_F16, .seed = 5};
    rf_err_t err = {0};
    cr_assert_eq(rf_synth_write(&opt, path, NULL, NULL, &err), 0, "%s", err.msg);
    rf_gguf_t *g = NULL;
    cr_assert_eq(rf_gguf_open(&g, path, &err), 0, "%s", err.msg);
    unlink(path);
    rf_tokenizer_t *tok = NULL;
    cr_assert_eq(rf_tokenizer_open(&tok, g, &err), 0, "%s", err.msg);
    rf_gguf_close(g);
    cr_assert_eq(rf_tokenizer_kind(tok), RF_TOKENIZER_BPE);
    cr_assert_str_eq(rf_tokenizer_pre(tok), "llama-bpe");
    cr_assert_eq(rf_tokenizer_n_vocab(tok), 512);

    const char text[] = "Hello, world! It's 2024: na\xC3\xAFve caf\xC3\xA9s\n\tcost $12,345.";
    rf_tokens_t t = {0};
    rf_tokenize_options_t eopt = {true, true};
    cr_assert_eq(rf_tokenizer_encode(tok, text, sizeof text - 1, &eopt, &t), 0);
    cr_assert_gt(t.n, 1);
    cr_assert_eq(t.ids[0], rf_tokenizer_bos(tok), "the vocabulary asks for BOS");
    rf_bytes_t b = decode(tok, t.ids, t.n, true, false);
    cr_assert_eq(b.len, sizeof text - 1);
    cr_assert(memcmp(b.data, text, b.len) == 0);
    rf_bytes_free(&b);

    t.n = 0;
    cr_assert_eq(rf_tokenizer_encode(tok, "<|eot_id|>", 10, &eopt, &t), 0);
    cr_assert_eq(t.n, 2);
    cr_assert_eq(t.ids[1], rf_tokenizer_eot(tok));
    cr_assert(rf_tokenizer_is_eog(tok, t.ids[1]));
    rf_tokens_free(&t);
    rf_tokenizer_close(tok);
}

/* ------------------------------------------------------------------------
 * Pre-tokenizers
 * ------------------------------------------------------------------------ */

typedef struct split_case {
    rf__pre_t pre;
    const char *text;
    const char *pieces; /* joined with '|' */
} split_case_t;

/* Splits the reference's regular expressions give (Node 20, flags "gu");
 * see the expressions in tokenizer_bpe.c. */
static const split_case_t split_cases[] = {
    {RF__PRE_LLAMA3, "Hello world", "Hello| world"},
    {RF__PRE_LLAMA3, "I'M here'S it's", "I|'M| here|'S| it|'s"},
    {RF__PRE_LLAMA3, "12345 6", "123|45| |6"},
    {RF__PRE_LLAMA3, "a  b", "a| | b"},
    {RF__PRE_LLAMA3, "a\n\n  b", "a|\n\n| | b"},
    {RF__PRE_LLAMA3, "x\t\ty", "x|\t|\ty"},
    {RF__PRE_LLAMA3, "(hello)", "(hello|)"},
    {RF__PRE_LLAMA3, "  !!\n\nz", " | !!\n\n|z"},
    {RF__PRE_LLAMA3, "end  ", "end|  "},
    {RF__PRE_LLAMA3, "\xC2\xA0x", "\xC2\xA0x"},
    {RF__PRE_LLAMA3, "e\xCC\x81", "e|\xCC\x81"},
    {RF__PRE_LLAMA3, "\xEF\xBB\xBFhi", "\xEF\xBB\xBFhi"},
    {RF__PRE_LLAMA3, "a\xC2\x85" "b", "a|\xC2\x85" "b"},
    {RF__PRE_LLAMA3, "it's\n", "it|'s|\n"},
    {RF__PRE_QWEN2, "12345 6", "1|2|3|4|5| |6"},
    {RF__PRE_QWEN2, "don't", "don|'t"},
    {RF__PRE_GPT2, "I'M here'S it's", "I|'|M| here|'|S| it|'s"},
    {RF__PRE_GPT2, "12345 6", "12345| 6"},
    {RF__PRE_GPT2, "a\n\n  b", "a|\n\n | b"},
    {RF__PRE_GPT2, "x\t\ty", "x|\t|\t|y"},
    {RF__PRE_GPT2, "  !!\n\nz", " | !!|\n|\n|z"},
    {RF__PRE_GPT2, "\xEF\xBB\xBFhi", "\xEF\xBB\xBF|hi"},
    {RF__PRE_GPT2, " 123abc", " 123|abc"},
    {RF__PRE_SMOLLM, "abc 123", "abc| |1|2|3"},
    {RF__PRE_SMOLLM, " 123abc", " |1|2|3|abc"},
    {RF__PRE_DEFAULT, "a+=b 1234", "a|+=|b| |123|4"},
    {RF__PRE_DEFAULT, "it's\n", "it|'|s|\n"},
    {RF__PRE_DEFAULT, "  !!\n\nz", "  |!!|\n|\n|z"},
};

typedef struct collect {
    const char *text;
    const char *sep; /* between pieces */
    char out[1024];
} collect_t;

static int collect_piece(void *ctx, size_t start, size_t end)
{
    collect_t *c = ctx;
    size_t n = strlen(c->out);
    snprintf(c->out + n, sizeof c->out - n, "%s%.*s", n ? c->sep : "", (int)(end - start),
             c->text + start);
    return 0;
}

Test(tokenizer_pre, splits_match_the_reference_expressions)
{
    for (size_t i = 0; i < sizeof split_cases / sizeof split_cases[0]; i++) {
        const split_case_t *sc = &split_cases[i];
        rf__work_t w = {0};
        collect_t c = {sc->text, "|", ""};
        cr_assert_eq(rf__pretokenize(sc->pre, &w, sc->text, strlen(sc->text), collect_piece, &c), 0);
        rf__work_free(&w);
        cr_expect_str_eq(c.out, sc->pieces, "case %zu: got '%s', want '%s'", i, c.out, sc->pieces);
    }
}

#ifdef RF_HAVE_PCRE2

/* The expressions in PCRE2's syntax. PCRE2's \s (with UCP) is not
 * JavaScript's: it has U+0085 and lacks U+FEFF. So the characters of
 * JavaScript's \s are spelt out. */
#define JS_WS "\\t\\n\\x0b\\f\\r \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}" \
              "\\x{202f}\\x{205f}\\x{3000}\\x{feff}"
#define JS_S "[" JS_WS "]"
#define JS_NOT_S "[^" JS_WS "]"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" JS_WS "\\p{L}\\p{N}]+|" \
                JS_S "+(?!" JS_NOT_S ")|" JS_S "+"
#define RE_LLAMA3_LIKE(digits)                                                                 \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}" digits                \
    "| ?[^" JS_WS "\\p{L}\\p{N}]+[\\r\\n]*|" JS_S "*[\\r\\n]+|" JS_S "+(?!" JS_NOT_S ")|" JS_S "+"

static const struct {
    rf__pre_t pre;
    const char *stages[4];
} pcre_pres[] = {
    {RF__PRE_GPT2, {RE_GPT2}},
    {RF__PRE_LLAMA3, {RE_LLAMA3_LIKE("{1,3}")}},
    {RF__PRE_QWEN2, {RE_LLAMA3_LIKE("")}},
    {RF__PRE_SMOLLM, {"\\p{N}", RE_GPT2}},
    {RF__PRE_DEFAULT, {"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]"}},
};

typedef struct oracle {
    pcre2_code *re[4];
    size_t n;
    pcre2_match_data *md;
    const char *text;
    char out[1024];
} oracle_t;

static void oracle_split(oracle_t *o, size_t stage, size_t a, size_t b)
{
    if (stage == o->n) {
        size_t n = strlen(o->out);
        snprintf(o->out + n, sizeof o->out - n, "%s%.*s", n ? "]|[" : "", (int)(b - a),
                 o->text + a);
        return;
    }
    size_t gap = 0, at = 0, len = b - a;
    const PCRE2_SPTR s = (PCRE2_SPTR)(o->text + a);
    while (at < len) {
        int rc = pcre2_match(o->re[stage], s, len, at, 0, o->md, NULL);
        if (rc < 0)
            break;
        /* Copy the match out: the next stage reuses the match data. */
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(o->md);
        size_t start = ov[0], end = ov[1];
        if (start > gap)
            oracle_split(o, stage + 1, a + gap, a + start);
        oracle_split(o, stage + 1, a + start, a + end);
        gap = at = end;
    }
    if (gap < len)
        oracle_split(o, stage + 1, a + gap, b);
}

/* Characters the expressions treat differently, all assigned by Unicode
 * 14.0, so PCRE2 10.42's tables and utf8proc's agree on them. */
static const char *const alphabet[] = {
    "a", "Z", "s", "S", "t", "r", "e", "v", "m", "l", "L", "d", "D", "'", "'", "0", "7", " ", " ",
    " ", "\t", "\n", "\r", "\x0b", "\x0c", "\xC2\xA0", "\xE3\x80\x80", "\xEF\xBB\xBF", "\xC2\x85",
    "\xE2\x80\xA8", "\xE2\x80\x8B", "!", "?", ".", "+", "=", "$", "|", "^", "~", "`", "_", "-", "(",
    "\xC3\xA9", "e\xCC\x81", "\xCC\x81", "\xC3\x9F", "\xD0\x96", "\xE4\xB8\xAD", "\xD9\xA3",
    "\xE2\x85\xAB", "\xC2\xBD", "\xC2\xB2", "\xF0\x9F\x98\x80", "\xF0\x9D\x90\x80", "\xC2\xBF",
    "\xE3\x80\x8C", "\x01", "\x7F", "\xEF\xBF\xBD",
};

Test(tokenizer_pre, random_text_splits_as_pcre2_runs_the_expressions)
{
    uint32_t seed = 12345;
    for (size_t p = 0; p < sizeof pcre_pres / sizeof pcre_pres[0]; p++) {
        oracle_t o = {0};
        for (size_t k = 0; k < 4 && pcre_pres[p].stages[k]; k++) {
            int code;
            PCRE2_SIZE off;
            o.re[k] = pcre2_compile((PCRE2_SPTR)pcre_pres[p].stages[k], PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
            cr_assert_not_null(o.re[k], "pattern %zu.%zu does not compile at %zu", p, k,
                               (size_t)off);
            o.n = k + 1;
        }
        o.md = pcre2_match_data_create(4, NULL);
        for (int round = 0; round < 2000; round++) {
            char text[256] = "";
            size_t n_chars = 1 + (seed >> 8) % 24;
            for (size_t i = 0; i < n_chars; i++) {
                seed = seed * 1103515245u + 12345u;
                const char *ch = alphabet[(seed >> 16) % (sizeof alphabet / sizeof alphabet[0])];
                strcat(text, ch);
            }
            o.text = text;
            o.out[0] = 0;
            oracle_split(&o, 0, 0, strlen(text));
            rf__work_t w = {0};
            collect_t c = {text, "]|[", ""};
            cr_assert_eq(rf__pretokenize(pcre_pres[p].pre, &w, text, strlen(text), collect_piece,
                                         &c), 0);
            rf__work_free(&w);
            cr_assert_str_eq(c.out, o.out, "pre %d on '%s': got '%s', PCRE2 '%s'",
                             (int)pcre_pres[p].pre, text, c.out, o.out);
        }
        pcre2_match_data_free(o.md);
        for (size_t k = 0; k < o.n; k++)
            pcre2_code_free(o.re[k]);
    }
}

#else

Test(tokenizer_pre, random_text_splits_as_pcre2_runs_the_expressions)
{
    cr_skip_test("built without RF_HAVE_PCRE2: the PCRE2 oracle is not linked");
}

#endif
