/* cmd_vocab.c - `rocmforge vocab import`: a Hugging Face tokenizer.json to a vocab-only GGUF
 *
 * Reads tokenizer.json (and, when given, tokenizer_config.json) with jansson
 * and writes a GGUF that holds only tokenizer metadata, with the keys and
 * conventions of a model that llama.cpp's convert_hf_to_gguf.py converted, so
 * engine/tokenizer.c loads it as it loads a real model. Two families:
 *
 *   "gpt2"  byte-level BPE (a ByteLevel pre-tokenizer); tokenizer.ggml.pre
 *           names the pre-tokenizer, recognised from the Split regex:
 *           llama-bpe (Llama 3), qwen2 (Qwen 2/2.5/3, with the NFC
 *           normalizer), gpt-2 (ByteLevel's own regex) and smollm (Digits
 *           then ByteLevel). Anything else is refused, naming the regex.
 *   "llama" SentencePiece converted to BPE: byte_fallback plus the U+2581
 *           normalizer (Prepend + Replace) or a Metaspace pre-tokenizer.
 *
 * GGUF keys written (docs/vocab.md is the reference for users and for the
 * tokenizer):
 *   general.architecture       --arch only: a tokenizer.json does not say it
 *   general.name               --name only
 *   tokenizer.ggml.model       "gpt2" or "llama"
 *   tokenizer.ggml.pre         the pre-tokenizer ("default" for llama, as
 *                              llama.cpp writes for SentencePiece models)
 *   tokenizer.ggml.tokens      [str] every id 0..n-1, added tokens included;
 *                              an id nothing names is "[PAD<id>]"
 *   tokenizer.ggml.token_type  [i32] 1 normal, 2 unknown, 3 control (special
 *                              added token), 4 user-defined (non-special
 *                              added token), 5 unused (the [PAD] fillers),
 *                              6 byte (<0xNN> in a byte_fallback vocabulary)
 *   tokenizer.ggml.scores      [f32] llama only: -(rank of the first merge
 *                              whose result is the token), so a higher score
 *                              is an earlier merge; a normal token no merge
 *                              makes (a single character) scores -(number of
 *                              merges); every other type scores 0
 *   tokenizer.ggml.merges      [str] "left right", in rank order (both the
 *                              "a b" and the ["a", "b"] forms are read)
 *   tokenizer.ggml.{bos,eos,unknown,padding}_token_id   u32, when known
 *   tokenizer.ggml.add_bos_token, add_eos_token          bool, always
 *   tokenizer.ggml.add_space_prefix                      bool, llama only
 *   tokenizer.chat_template    the template string; from a list of named
 *                              templates the "default" one, the others as
 *                              tokenizer.chat_template.<name> and their names
 *                              in tokenizer.chat_templates
 *   rocmforge.tokenizer.ignore_merges  bool, when tokenizer.json's BPE model
 *                              sets ignore_merges (a word that is itself in
 *                              the vocabulary is one token, merges unused).
 *                              llama.cpp ties this to pre = llama-bpe; the
 *                              key says what the source says.
 *
 * Special ids come from tokenizer_config.json's *_token fields (a string or
 * {"content": ...}); add_bos_token and add_eos_token from the same file, and
 * when it does not say, from the post-processor: a TemplateProcessing whose
 * single-sequence template starts (ends) with a special token adds BOS (EOS);
 * any other post-processor adds neither. Both are always written, so loaders
 * never fall back to per-pre-tokenizer defaults (llama.cpp's llama-bpe one
 * adds BOS).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

/* Pre-tokenizer regexes as tokenizer.json writes them (JSON-decoded). */
#define RE_LLAMA3                                                                             \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static const struct {
    const char *pre;
    const char *regex;
    bool nfc; /* the tokenizer NFC-normalizes first for this pre-tokenizer */
} known_regexes[] = {
    {"llama-bpe", RE_LLAMA3, false},
    {"qwen2", RE_QWEN2, true},
    {"gpt-2", RE_GPT2, false},
};
#define N_KNOWN_REGEXES (sizeof known_regexes / sizeof known_regexes[0])
#define SUPPORTED_PRE                                                                      \
    "llama-bpe (Llama 3 Split regex), qwen2 (Qwen 2 Split regex with NFC), gpt-2 (ByteLevel " \
    "with use_regex, or its regex as a Split) and smollm (Digits individual_digits + ByteLevel)"

/* Ids we accept: 16.7 M, 64 times the largest vocabulary in use (Gemma 3's
 * 262,144), so a corrupt id cannot make us allocate gigabytes of fillers. */
#define MAX_IDS (1 << 24)

/* ---- types ---- */

typedef struct import_options {
    const char *tokenizer_path;
    const char *config_path; /* NULL: no tokenizer_config.json */
    const char *out_path;
    const char *arch; /* NULL: no general.architecture */
    const char *name; /* NULL: no general.name */
    bool quiet;       /* no summary on stderr */
} import_options_t;

typedef struct vocab {
    /* tokens, by id: [n] views into the JSON documents or into fillers */
    size_t n;
    rf_gguf_str_t *tokens;
    int32_t *types;      /* [n] rf_token_type_t */
    bool *added;         /* [n] the id comes from added_tokens */
    float *scores;       /* [n] llama only */
    char *fillers;       /* "[PAD<id>]" strings for ids nothing names */
    uint32_t *map;       /* open addressing: id + 1, 0 empty; [map_cap] */
    size_t map_cap;

    size_t n_merges;
    rf_gguf_str_t *merges; /* [n_merges] "left right" */
    char *merge_pool;      /* built "left right" strings of the array form */

    bool spm;              /* "llama" rather than "gpt2" */
    const char *pre;
    bool add_space_prefix; /* llama */
    int ignore_merges;     /* -1 not stated, else 0/1 */
    bool add_bos, add_eos;
    int64_t bos, eos, unk, pad; /* -1: none */
    size_t n_added;
    bool prefix_first_only; /* legacy: false or prepend_scheme "first": the source
                               adds U+2581 at the start only, not after specials */
} vocab_t;

/* ---- helpers: files, JSON ---- */

static const char *json_kind(const json_t *v)
{
    if (v == NULL)
        return "missing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Load a whole JSON document. Errors name the file and, for syntax errors,
 * jansson's line and column. */
static int load_json(const char *path, json_t **out, rf_err_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return rf_err_set(err, -errno, "%s: %s", path, strerror(errno));
    json_error_t jerr;
    /* Numbers decode as doubles: tokenizer_config.json's model_max_length
     * (1e30) overflows jansson's integers, and ids are checked integral. */
    json_t *root =
        json_loadf(f, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &jerr);
    int read_errno = ferror(f) ? errno : 0;
    fclose(f);
    if (root == NULL) {
        if (read_errno != 0)
            return rf_err_set(err, -read_errno, "%s: %s", path, strerror(read_errno));
        return rf_err_set(err, RF_EFORMAT, "%s:%d:%d: invalid JSON: %s", path, jerr.line,
                          jerr.column, jerr.text);
    }
    if (!json_is_object(root)) {
        rf_err_set(err, RF_EFORMAT, "%s: the top level is %s, expected an object", path,
                   json_kind(root));
        json_decref(root);
        return RF_EFORMAT;
    }
    *out = root;
    return 0;
}

/* A token id: a whole number below MAX_IDS. */
static bool json_id(const json_t *v, int64_t *id)
{
    if (!json_is_number(v))
        return false;
    double d = json_number_value(v);
    if (!(d >= 0 && d < (double)MAX_IDS) || d != (double)(int64_t)d)
        return false;
    *id = (int64_t)d;
    return true;
}

static bool json_flag(const json_t *obj, const char *key, bool dflt)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static bool str_is(const json_t *v, const char *s)
{
    return json_is_string(v) && strcmp(json_string_value(v), s) == 0;
}

static bool view_eq(rf_gguf_str_t a, const char *data, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.data, data, len) == 0);
}

/* Print a possibly long, possibly odd string for a message: at most 160
 * bytes, control characters escaped. */
static const char *shown(const char *s, size_t len, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o >= 160) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    buf[o] = '\0';
    return buf;
}

/* ---- the token table and its index ---- */

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Id of a token text, or -1. */
static int64_t vocab_find(const vocab_t *v, const char *s, size_t len)
{
    size_t mask = v->map_cap - 1;
    for (size_t i = (size_t)hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t slot = v->map[i];
        if (slot == 0)
            return -1;
        if (view_eq(v->tokens[slot - 1], s, len))
            return slot - 1;
    }
}

/* Index every token. A text held by two ids maps to the added token's id
 * (the reference's tokens_to_ids is overwritten by added tokens), else to
 * the lower id. */
static int vocab_index(vocab_t *v)
{
    size_t cap = 16;
    while (cap < 2 * v->n)
        cap *= 2;
    v->map = calloc(cap, sizeof *v->map);
    if (v->map == NULL)
        return -ENOMEM;
    v->map_cap = cap;
    for (size_t id = 0; id < v->n; id++) {
        rf_gguf_str_t t = v->tokens[id];
        size_t mask = cap - 1;
        for (size_t i = (size_t)hash_bytes(t.data, t.len) & mask;; i = (i + 1) & mask) {
            uint32_t slot = v->map[i];
            if (slot == 0) {
                v->map[i] = (uint32_t)id + 1;
                break;
            }
            if (view_eq(v->tokens[slot - 1], t.data, t.len)) {
                if (v->added[id] && !v->added[slot - 1])
                    v->map[i] = (uint32_t)id + 1;
                break;
            }
        }
    }
    return 0;
}

static void vocab_free(vocab_t *v)
{
    free(v->tokens);
    free(v->types);
    free(v->added);
    free(v->scores);
    free(v->fillers);
    free(v->map);
    free(v->merges);
    free(v->merge_pool);
    memset(v, 0, sizeof *v);
}

/* ---- reading tokenizer.json ---- */

/* Ids from model.vocab and added_tokens; fills tokens, added, n. */
static int read_tokens(vocab_t *v, const json_t *root, const char *path, rf_err_t *err)
{
    const json_t *model = json_object_get(root, "model");
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *added = json_object_get(root, "added_tokens");
    char b1[192], b2[192];
    if (!json_is_object(vocab))
        return rf_err_set(err, RF_EFORMAT, "%s: model.vocab is %s, expected an object of token: id",
                          path, json_kind(vocab));
    if (added != NULL && !json_is_array(added) && !json_is_null(added))
        return rf_err_set(err, RF_EFORMAT, "%s: added_tokens is %s, expected an array", path,
                          json_kind(added));

    /* First pass: the largest id, and that every id is a sane integer. */
    int64_t max_id = -1;
    const char *key;
    const json_t *value;
    int64_t id;
    json_object_foreach((json_t *)vocab, key, value) {
        if (!json_id(value, &id))
            return rf_err_set(err, RF_EFORMAT,
                              "%s: model.vocab[\"%s\"] is %s, expected an id from 0 to %d", path,
                              shown(key, strlen(key), b1, sizeof b1), json_kind(value),
                              MAX_IDS - 1);
        if (id > max_id)
            max_id = id;
    }
    size_t i_added;
    json_array_foreach(added, i_added, value) {
        const json_t *content = json_object_get(value, "content");
        if (!json_is_object(value) || !json_id(json_object_get(value, "id"), &id) ||
            !json_is_string(content))
            return rf_err_set(err, RF_EFORMAT,
                              "%s: added_tokens[%zu] needs an integer \"id\" from 0 to %d and a "
                              "string \"content\"",
                              path, i_added, MAX_IDS - 1);
        if (id > max_id)
            max_id = id;
    }
    if (max_id < 0)
        return rf_err_set(err, RF_EFORMAT, "%s: model.vocab and added_tokens hold no tokens", path);

    v->n = (size_t)max_id + 1;
    v->tokens = calloc(v->n, sizeof *v->tokens);
    v->added = calloc(v->n, sizeof *v->added);
    v->types = calloc(v->n, sizeof *v->types);
    bool *set = calloc(v->n, sizeof *set);
    if (v->tokens == NULL || v->added == NULL || v->types == NULL || set == NULL) {
        free(set);
        return -ENOMEM;
    }
    int rc = 0;
    size_t key_len;
    json_object_keylen_foreach((json_t *)vocab, key, key_len, value) {
        json_id(value, &id);
        if (set[id]) {
            rc = rf_err_set(err, RF_EFORMAT, "%s: model.vocab gives id %lld to both \"%s\" and \"%s\"",
                            path, (long long)id,
                            shown(v->tokens[id].data, v->tokens[id].len, b1, sizeof b1),
                            shown(key, key_len, b2, sizeof b2));
            goto out;
        }
        v->tokens[id] = (rf_gguf_str_t){key_len, key};
        set[id] = true;
    }
    json_array_foreach(added, i_added, value) {
        const json_t *content = json_object_get(value, "content");
        json_id(json_object_get(value, "id"), &id);
        const char *text = json_string_value(content);
        size_t len = json_string_length(content);
        if (set[id] && !view_eq(v->tokens[id], text, len)) {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: added_tokens[%zu] gives id %lld to \"%s\", which model.vocab gives "
                            "to \"%s\"",
                            path, i_added, (long long)id, shown(text, len, b1, sizeof b1),
                            shown(v->tokens[id].data, v->tokens[id].len, b2, sizeof b2));
            goto out;
        }
        v->tokens[id] = (rf_gguf_str_t){len, text};
        set[id] = true;
        v->added[id] = true;
        v->types[id] = json_flag(value, "special", false) ? RF_TOKEN_CONTROL : RF_TOKEN_USER_DEFINED;
        v->n_added++;
    }

    /* Ids nothing names get "[PAD<id>]" fillers, as llama.cpp's converter
     * does, so the table stays indexed by id. */
    size_t n_holes = 0;
    for (size_t i = 0; i < v->n; i++)
        n_holes += !set[i];
    if (n_holes != 0) {
        v->fillers = malloc(n_holes * 24);
        if (v->fillers == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        char *p = v->fillers;
        for (size_t i = 0; i < v->n; i++) {
            if (set[i])
                continue;
            int len = snprintf(p, 24, "[PAD%zu]", i);
            v->tokens[i] = (rf_gguf_str_t){(uint64_t)len, p};
            v->types[i] = RF_TOKEN_UNUSED;
            p += len + 1;
        }
    }
out:
    free(set);
    return rc;
}

static bool is_upper_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* <0xNN> with two upper-case hex digits, as SentencePiece names byte pieces. */
static bool is_byte_piece(rf_gguf_str_t t)
{
    return t.len == 6 && memcmp(t.data, "<0x", 3) == 0 && is_upper_hex(t.data[3]) &&
           is_upper_hex(t.data[4]) && t.data[5] == '>';
}

static bool is_metaspace(const json_t *v)
{
    return str_is(v, "\xe2\x96\x81"); /* U+2581 */
}

/* SentencePiece-converted vocabularies: which normalizer adds the prefix. */
static int detect_spm(vocab_t *v, const json_t *root, const char *path, rf_err_t *err)
{
    const json_t *normalizer = json_object_get(root, "normalizer");
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    bool prepend = false, replace = false;
    if (json_is_object(normalizer)) {
        const json_t *type = json_object_get(normalizer, "type");
        const json_t *list = json_object_get(normalizer, "normalizers");
        json_t *single = json_array();
        if (single == NULL)
            return -ENOMEM;
        if (str_is(type, "Sequence") && json_is_array(list)) {
            json_array_extend(single, (json_t *)list);
        } else {
            json_array_append(single, (json_t *)normalizer);
        }
        size_t i;
        json_t *n;
        json_array_foreach(single, i, n) {
            const json_t *ntype = json_object_get(n, "type");
            const json_t *pattern = json_object_get(n, "pattern");
            if (str_is(ntype, "Prepend") && is_metaspace(json_object_get(n, "prepend"))) {
                prepend = true;
            } else if (str_is(ntype, "Replace") && str_is(json_object_get(pattern, "String"), " ") &&
                       is_metaspace(json_object_get(n, "content"))) {
                replace = true;
            } else {
                json_decref(single);
                return rf_err_set(err, RF_EUNSUPPORTED,
                                  "%s: normalizer step %s is not supported for a "
                                  "SentencePiece-style vocabulary; rocmforge knows Prepend "
                                  "U+2581 and Replace ' ' with U+2581",
                                  path, json_is_string(ntype) ? json_string_value(ntype) : "?");
            }
        }
        json_decref(single);
    } else if (!json_is_null(normalizer) && normalizer != NULL) {
        return rf_err_set(err, RF_EFORMAT, "%s: normalizer is %s, expected an object or null", path,
                          json_kind(normalizer));
    }

    if (json_is_object(pre)) {
        const json_t *type = json_object_get(pre, "type");
        if (!str_is(type, "Metaspace") || !is_metaspace(json_object_get(pre, "replacement")) ||
            replace)
            return rf_err_set(err, RF_EUNSUPPORTED,
                              "%s: pre_tokenizer %s is not supported for a SentencePiece-style "
                              "vocabulary; rocmforge knows none (with the U+2581 normalizer) or "
                              "Metaspace with replacement U+2581",
                              path, json_is_string(type) ? json_string_value(type) : "?");
        const json_t *scheme = json_object_get(pre, "prepend_scheme");
        if (json_is_string(scheme))
            prepend = !str_is(scheme, "never");
        else
            prepend = json_flag(pre, "add_prefix_space", true);
        v->prefix_first_only = str_is(scheme, "first");
        replace = true;
    } else if (pre != NULL && !json_is_null(pre)) {
        return rf_err_set(err, RF_EFORMAT, "%s: pre_tokenizer is %s, expected an object or null",
                          path, json_kind(pre));
    }
    if (!replace)
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "%s: a byte_fallback BPE vocabulary without the SentencePiece space "
                          "handling (a Replace ' ' -> U+2581 normalizer or a Metaspace "
                          "pre-tokenizer) is not supported",
                          path);
    v->spm = true;
    v->pre = "default";
    v->add_space_prefix = prepend;
    return 0;
}

static bool is_byte_level(const json_t *p, bool use_regex)
{
    return str_is(json_object_get(p, "type"), "ByteLevel") &&
           json_flag(p, "use_regex", true) == use_regex;
}

/* Byte-level BPE: name the pre-tokenizer from its structure and regex. */
static int detect_bpe(vocab_t *v, const json_t *root, const char *path, rf_err_t *err)
{
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    const json_t *type = json_object_get(pre, "type");
    const json_t *list = json_object_get(pre, "pretokenizers");
    const json_t *byte_level = NULL;
    const char *name = NULL;
    bool nfc = false;
    char shown_re[192];

    if (is_byte_level(pre, true)) {
        byte_level = pre;
        name = "gpt-2";
    } else if (str_is(type, "Sequence") && json_is_array(list) && json_array_size(list) == 2) {
        const json_t *first = json_array_get(list, 0);
        const json_t *second = json_array_get(list, 1);
        const json_t *ftype = json_object_get(first, "type");
        if (str_is(ftype, "Digits") && json_flag(first, "individual_digits", false) &&
            is_byte_level(second, true)) {
            byte_level = second;
            name = "smollm";
        } else if (str_is(ftype, "Split") && is_byte_level(second, false)) {
            const json_t *regex = json_object_get(json_object_get(first, "pattern"), "Regex");
            const json_t *behavior = json_object_get(first, "behavior");
            if (!json_is_string(regex))
                return rf_err_set(err, RF_EUNSUPPORTED,
                                  "%s: the Split pre-tokenizer has no Regex pattern; supported: %s",
                                  path, SUPPORTED_PRE);
            if (!str_is(behavior, "Isolated") || json_flag(first, "invert", false))
                return rf_err_set(err, RF_EUNSUPPORTED,
                                  "%s: the Split pre-tokenizer must have behavior \"Isolated\" "
                                  "and invert false to be one rocmforge knows",
                                  path);
            const char *re = json_string_value(regex);
            for (size_t i = 0; i < N_KNOWN_REGEXES; i++) {
                if (strcmp(re, known_regexes[i].regex) == 0) {
                    name = known_regexes[i].pre;
                    nfc = known_regexes[i].nfc;
                }
            }
            if (name == NULL)
                return rf_err_set(err, RF_EUNSUPPORTED,
                                  "%s: pre-tokenizer regex \"%s\" is not one rocmforge knows; "
                                  "supported: %s",
                                  path, shown(re, strlen(re), shown_re, sizeof shown_re),
                                  SUPPORTED_PRE);
            byte_level = second;
        }
    }
    if (name == NULL && (pre == NULL || json_is_null(pre)))
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "%s: pre_tokenizer is %s: a BPE model without byte_fallback needs a "
                          "byte-level pre-tokenizer; supported: %s",
                          path, pre == NULL ? "missing" : "null", SUPPORTED_PRE);
    if (name == NULL)
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "%s: pre_tokenizer %s is not a byte-level layout rocmforge knows; "
                          "supported: %s",
                          path, json_is_string(type) ? json_string_value(type) : json_kind(pre),
                          SUPPORTED_PRE);
    if (json_flag(byte_level, "add_prefix_space", false))
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "%s: ByteLevel add_prefix_space = true is not supported (rocmforge, "
                          "like llama.cpp, adds no space before the first word)",
                          path);

    /* The normalizer must be the one the named pre-tokenizer implies, or the
     * ids would differ silently. */
    const json_t *normalizer = json_object_get(root, "normalizer");
    const json_t *ntype = json_object_get(normalizer, "type");
    bool has_nfc = str_is(ntype, "NFC");
    bool has_none = normalizer == NULL || json_is_null(normalizer);
    if (nfc && !has_nfc)
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "%s: pre-tokenizer %s comes with the NFC normalizer, but this file's "
                          "normalizer is %s",
                          path, name, has_none ? "null" : json_is_string(ntype) ? json_string_value(ntype) : "?");
    if (!nfc && !has_none)
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "%s: normalizer %s is not supported with pre-tokenizer %s (rocmforge "
                          "normalizes only for qwen2, with NFC)",
                          path, json_is_string(ntype) ? json_string_value(ntype) : "?", name);
    v->spm = false;
    v->pre = name;
    return 0;
}

/* Merges in rank order as "left right", checked against the vocabulary. */
static int read_merges(vocab_t *v, const json_t *model, const char *path, rf_err_t *err)
{
    const json_t *merges = json_object_get(model, "merges");
    char b1[192], b2[192];
    if (merges == NULL || json_is_null(merges))
        return 0;
    if (!json_is_array(merges))
        return rf_err_set(err, RF_EFORMAT, "%s: model.merges is %s, expected an array", path,
                          json_kind(merges));
    size_t n = json_array_size(merges);
    v->merges = calloc(n ? n : 1, sizeof *v->merges);
    if (v->merges == NULL)
        return -ENOMEM;

    /* The array form needs "left right" built; size the pool first. */
    size_t pool = 0, pos = 0, i;
    const json_t *m;
    json_array_foreach(merges, i, m) {
        if (json_is_array(m) && json_array_size(m) == 2)
            pool += json_string_length(json_array_get(m, 0)) +
                    json_string_length(json_array_get(m, 1)) + 2;
    }
    v->merge_pool = malloc(pool ? pool : 1);
    char *concat = NULL;
    size_t concat_cap = 0;
    if (v->merge_pool == NULL)
        return -ENOMEM;
    int rc = 0;
    json_array_foreach(merges, i, m) {
        const char *left, *right;
        size_t left_len, right_len;
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t len = json_string_length(m);
            const char *space = memchr(s, ' ', len);
            if (space == NULL || memchr(space + 1, ' ', len - (size_t)(space + 1 - s)) != NULL) {
                rc = rf_err_set(err, RF_EFORMAT,
                                "%s: model.merges[%zu] \"%s\" must be two tokens with one space "
                                "between them",
                                path, i, shown(s, len, b1, sizeof b1));
                goto out;
            }
            left = s;
            left_len = (size_t)(space - s);
            right = space + 1;
            right_len = len - left_len - 1;
            v->merges[i] = (rf_gguf_str_t){len, s};
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            left = json_string_value(json_array_get(m, 0));
            left_len = json_string_length(json_array_get(m, 0));
            right = json_string_value(json_array_get(m, 1));
            right_len = json_string_length(json_array_get(m, 1));
            if (memchr(left, ' ', left_len) != NULL || memchr(right, ' ', right_len) != NULL) {
                rc = rf_err_set(err, RF_EUNSUPPORTED,
                                "%s: model.merges[%zu] [\"%s\", \"%s\"] has a token with a space, "
                                "which GGUF's \"left right\" merge form cannot hold",
                                path, i, shown(left, left_len, b1, sizeof b1),
                                shown(right, right_len, b2, sizeof b2));
                goto out;
            }
            char *dst = v->merge_pool + pos;
            memcpy(dst, left, left_len);
            dst[left_len] = ' ';
            memcpy(dst + left_len + 1, right, right_len);
            dst[left_len + 1 + right_len] = '\0';
            v->merges[i] = (rf_gguf_str_t){left_len + 1 + right_len, dst};
            pos += left_len + right_len + 2;
        } else {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: model.merges[%zu] is %s, expected \"left right\" or [\"left\", "
                            "\"right\"]",
                            path, i, json_kind(m));
            goto out;
        }
        if (vocab_find(v, left, left_len) < 0 || vocab_find(v, right, right_len) < 0) {
            bool left_missing = vocab_find(v, left, left_len) < 0;
            rc = rf_err_set(err, RF_EFORMAT, "%s: model.merges[%zu]: \"%s\" is not in the vocabulary",
                            path, i,
                            left_missing ? shown(left, left_len, b1, sizeof b1)
                                         : shown(right, right_len, b1, sizeof b1));
            goto out;
        }
        if (left_len + right_len > concat_cap) {
            concat_cap = 2 * (left_len + right_len);
            char *grown = realloc(concat, concat_cap);
            if (grown == NULL) {
                rc = -ENOMEM;
                goto out;
            }
            concat = grown;
        }
        memcpy(concat, left, left_len);
        memcpy(concat + left_len, right, right_len);
        int64_t id = vocab_find(v, concat, left_len + right_len);
        if (id < 0) {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: model.merges[%zu]: the merged token \"%s\" is not in the "
                            "vocabulary",
                            path, i, shown(concat, left_len + right_len, b1, sizeof b1));
            goto out;
        }
        if (v->scores != NULL && v->types[id] == RF_TOKEN_NORMAL && v->scores[id] == 1.0f)
            v->scores[id] = 0.0f - (float)i; /* 0.0f - 0 is +0, not -0 */
    }
    v->n_merges = n;
out:
    free(concat);
    return rc;
}

/* Token types beyond what read_tokens set, and llama's scores. Scores start
 * at 1 ("no merge makes it yet"), which read_merges replaces; what remains
 * becomes -(number of merges). */
static int assign_types(vocab_t *v, const json_t *model)
{
    const json_t *unk = json_object_get(model, "unk_token");
    for (size_t id = 0; id < v->n; id++) {
        if (v->types[id] != 0)
            continue;
        if (v->spm && is_byte_piece(v->tokens[id]))
            v->types[id] = RF_TOKEN_BYTE;
        else
            v->types[id] = RF_TOKEN_NORMAL;
    }
    if (json_is_string(unk)) {
        int64_t id = vocab_find(v, json_string_value(unk), json_string_length(unk));
        if (id >= 0)
            v->types[id] = RF_TOKEN_UNKNOWN;
    }
    if (v->spm) {
        v->scores = malloc(v->n * sizeof *v->scores);
        if (v->scores == NULL)
            return -ENOMEM;
        for (size_t id = 0; id < v->n; id++)
            v->scores[id] = v->types[id] == RF_TOKEN_NORMAL ? 1.0f : 0.0f;
    }
    return 0;
}

static void finish_scores(vocab_t *v)
{
    if (v->scores == NULL)
        return;
    for (size_t id = 0; id < v->n; id++)
        if (v->scores[id] == 1.0f)
            v->scores[id] = -(float)v->n_merges;
}

/* ---- special tokens: tokenizer_config.json and the post-processor ---- */

/* Id of a token named by a config value (string or {"content": ...}).
 * *id stays -1 when the value is absent or null. */
static int config_token(const vocab_t *v, const json_t *config, const char *key, const char *path,
                        int64_t *id, rf_err_t *err)
{
    const json_t *value = json_object_get(config, key);
    char b[192];
    if (value == NULL || json_is_null(value))
        return 0;
    if (json_is_object(value))
        value = json_object_get(value, "content");
    if (!json_is_string(value))
        return rf_err_set(err, RF_EFORMAT,
                          "%s: %s is %s, expected a token string or {\"content\": string}", path,
                          key, json_kind(value));
    int64_t found = vocab_find(v, json_string_value(value), json_string_length(value));
    if (found < 0)
        return rf_err_set(err, RF_EFORMAT, "%s: %s \"%s\" is not in the vocabulary", path, key,
                          shown(json_string_value(value), json_string_length(value), b, sizeof b));
    *id = found;
    return 0;
}

/* What the post-processor adds around a single sequence. Only
 * TemplateProcessing adds anything; a Sequence of processors is searched for
 * one. */
static void post_processor_specials(const vocab_t *v, const json_t *pp, int64_t *bos, int64_t *eos)
{
    *bos = *eos = -1;
    if (str_is(json_object_get(pp, "type"), "Sequence")) {
        size_t i;
        const json_t *p;
        json_array_foreach(json_object_get(pp, "processors"), i, p) {
            post_processor_specials(v, p, bos, eos);
            if (*bos >= 0 || *eos >= 0)
                return;
        }
        return;
    }
    if (!str_is(json_object_get(pp, "type"), "TemplateProcessing"))
        return;
    const json_t *single = json_object_get(pp, "single");
    size_t n = json_array_size(single);
    for (int end = 0; end < 2 && n > 0; end++) {
        const json_t *item = json_array_get(single, end == 0 ? 0 : n - 1);
        const json_t *special = json_object_get(json_object_get(item, "SpecialToken"), "id");
        if (!json_is_string(special))
            continue;
        int64_t id = vocab_find(v, json_string_value(special), json_string_length(special));
        if (end == 0)
            *bos = id;
        else
            *eos = id;
    }
}

static int read_specials(vocab_t *v, const json_t *root, const json_t *config,
                         const char *config_path, const char *path, rf_err_t *err)
{
    int rc;
    v->bos = v->eos = v->unk = v->pad = -1;
    if (config != NULL) {
        if ((rc = config_token(v, config, "bos_token", config_path, &v->bos, err)) < 0 ||
            (rc = config_token(v, config, "eos_token", config_path, &v->eos, err)) < 0 ||
            (rc = config_token(v, config, "unk_token", config_path, &v->unk, err)) < 0 ||
            (rc = config_token(v, config, "pad_token", config_path, &v->pad, err)) < 0)
            return rc;
        const json_t *legacy = json_object_get(config, "legacy");
        if (v->spm && json_is_false(legacy))
            v->prefix_first_only = true;
    }
    const json_t *model = json_object_get(root, "model");
    const json_t *unk = json_object_get(model, "unk_token");
    if (v->unk < 0 && json_is_string(unk)) {
        v->unk = vocab_find(v, json_string_value(unk), json_string_length(unk));
        if (v->unk < 0)
            return rf_err_set(err, RF_EFORMAT, "%s: model.unk_token \"%s\" is not in the vocabulary",
                              path, json_string_value(unk));
    }

    int64_t pp_bos, pp_eos;
    post_processor_specials(v, json_object_get(root, "post_processor"), &pp_bos, &pp_eos);
    const json_t *add_bos = json_object_get(config, "add_bos_token");
    const json_t *add_eos = json_object_get(config, "add_eos_token");
    if (add_bos != NULL && !json_is_boolean(add_bos) && !json_is_null(add_bos))
        return rf_err_set(err, RF_EFORMAT, "%s: add_bos_token is %s, expected true or false",
                          config_path, json_kind(add_bos));
    if (add_eos != NULL && !json_is_boolean(add_eos) && !json_is_null(add_eos))
        return rf_err_set(err, RF_EFORMAT, "%s: add_eos_token is %s, expected true or false",
                          config_path, json_kind(add_eos));
    v->add_bos = json_is_boolean(add_bos) ? json_is_true(add_bos) : pp_bos >= 0;
    v->add_eos = json_is_boolean(add_eos) ? json_is_true(add_eos) : pp_eos >= 0;
    if (v->bos < 0)
        v->bos = pp_bos;
    if (v->eos < 0)
        v->eos = pp_eos;
    if (v->add_bos && v->bos < 0)
        return rf_err_set(err, RF_EFORMAT,
                          "%s: BOS is to be added but no bos_token is named (give "
                          "tokenizer_config.json with bos_token)",
                          config ? config_path : path);
    if (v->add_eos && v->eos < 0)
        return rf_err_set(err, RF_EFORMAT,
                          "%s: EOS is to be added but no eos_token is named (give "
                          "tokenizer_config.json with eos_token)",
                          config ? config_path : path);
    return 0;
}

/* ---- writing ---- */

#define CHECK(call)        \
    do {                   \
        rc = (call);       \
        if (rc < 0)        \
            goto fail;     \
    } while (0)

static int set_str_array(rf_gguf_writer_t *w, const char *key, const rf_gguf_str_t *strs, size_t n)
{
    rf_gguf_value_t value = {.type = RF_GGUF_ARRAY};
    value.v.arr.elem_type = RF_GGUF_STRING;
    value.v.arr.n = n;
    value.v.arr.strs = strs;
    return rf_gguf_writer_set_value(w, key, &value);
}

static int set_id(rf_gguf_writer_t *w, const char *key, int64_t id)
{
    return id >= 0 ? rf_gguf_writer_set_u32(w, key, (uint32_t)id) : 0;
}

/* tokenizer.chat_template from a string or a list of {name, template}. */
static int write_chat_templates(rf_gguf_writer_t *w, const json_t *config, const char *path,
                                rf_err_t *err)
{
    const json_t *t = json_object_get(config, "chat_template");
    int rc = 0;
    if (t == NULL || json_is_null(t))
        return 0;
    if (json_is_string(t))
        return rf_gguf_writer_set_str(w, "tokenizer.chat_template", json_string_value(t));
    if (!json_is_array(t))
        return rf_err_set(err, RF_EFORMAT,
                          "%s: chat_template is %s, expected a string or a list of {name, template}",
                          path, json_kind(t));
    size_t n = json_array_size(t), n_named = 0, i;
    const json_t *entry;
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (names == NULL)
        return -ENOMEM;
    json_array_foreach(t, i, entry) {
        const json_t *name = json_object_get(entry, "name");
        const json_t *tmpl = json_object_get(entry, "template");
        if (!json_is_string(name) || !json_is_string(tmpl)) {
            rc = rf_err_set(err, RF_EFORMAT,
                            "%s: chat_template[%zu] needs string \"name\" and \"template\"", path, i);
            goto out;
        }
        char key[256];
        if (strcmp(json_string_value(name), "default") == 0) {
            snprintf(key, sizeof key, "tokenizer.chat_template");
        } else {
            if (snprintf(key, sizeof key, "tokenizer.chat_template.%s", json_string_value(name)) >=
                (int)sizeof key) {
                rc = rf_err_set(err, RF_EFORMAT, "%s: chat_template[%zu] has a name too long", path, i);
                goto out;
            }
            names[n_named++] = json_string_value(name);
        }
        if ((rc = rf_gguf_writer_set_str(w, key, json_string_value(tmpl))) < 0)
            goto out;
    }
    if (n_named != 0)
        rc = rf_gguf_writer_set_arr_str(w, "tokenizer.chat_templates", names, n_named);
out:
    free(names);
    return rc;
}

static int write_gguf(const vocab_t *v, const json_t *config, const import_options_t *opt,
                      rf_err_t *err)
{
    rf_gguf_writer_t *w = NULL;
    int rc;
    CHECK(rf_gguf_writer_open(&w));
    if (opt->arch != NULL)
        CHECK(rf_gguf_writer_set_str(w, "general.architecture", opt->arch));
    if (opt->name != NULL)
        CHECK(rf_gguf_writer_set_str(w, "general.name", opt->name));
    CHECK(rf_gguf_writer_set_str(w, "tokenizer.ggml.model", v->spm ? "llama" : "gpt2"));
    CHECK(rf_gguf_writer_set_str(w, "tokenizer.ggml.pre", v->pre));
    CHECK(set_str_array(w, "tokenizer.ggml.tokens", v->tokens, v->n));
    CHECK(rf_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", RF_GGUF_INT32, v->types, v->n));
    if (v->scores != NULL)
        CHECK(rf_gguf_writer_set_arr(w, "tokenizer.ggml.scores", RF_GGUF_FLOAT32, v->scores, v->n));
    if (v->n_merges != 0)
        CHECK(set_str_array(w, "tokenizer.ggml.merges", v->merges, v->n_merges));
    CHECK(set_id(w, "tokenizer.ggml.bos_token_id", v->bos));
    CHECK(set_id(w, "tokenizer.ggml.eos_token_id", v->eos));
    CHECK(set_id(w, "tokenizer.ggml.unknown_token_id", v->unk));
    CHECK(set_id(w, "tokenizer.ggml.padding_token_id", v->pad));
    CHECK(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos));
    CHECK(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", v->add_eos));
    if (v->spm)
        CHECK(rf_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", v->add_space_prefix));
    if (v->ignore_merges >= 0)
        CHECK(rf_gguf_writer_set_bool(w, "rocmforge.tokenizer.ignore_merges", v->ignore_merges));
    CHECK(write_chat_templates(w, config, opt->config_path, err));
    CHECK(rf_gguf_writer_write(w, opt->out_path, NULL, NULL, err));
    rf_gguf_writer_close(w);
    return 0;
fail:
    rf_err_set(err, rc, "writing %s: %s", opt->out_path, rf_strerror(rc));
    rf_gguf_writer_close(w);
    return rc;
}

/* ---- the import ---- */

static const char *id_text(const vocab_t *v, int64_t id, char *buf, size_t cap)
{
    char piece[192];
    if (id < 0)
        return "none";
    snprintf(buf, cap, "%lld %s", (long long)id,
             shown(v->tokens[id].data, v->tokens[id].len, piece, sizeof piece));
    return buf;
}

/* One line on stderr; the token views still point into the JSON. */
static void print_summary(const vocab_t *v, const import_options_t *opt)
{
    char b1[256], b2[256], b3[256];
    if (v->prefix_first_only)
        fprintf(stderr,
                "rocmforge: vocab: note: %s puts the U+2581 space prefix only at the start of the "
                "text (legacy: false or prepend_scheme \"first\"); rocmforge, like llama.cpp, also "
                "puts it after special tokens\n",
                opt->tokenizer_path);
    if (opt->quiet)
        return;
    fprintf(stderr,
            "rocmforge: vocab: wrote %s: %s, pre %s, %zu tokens (%zu added), %zu merges, bos %s, "
            "eos %s, unk %s, add_bos %s, add_eos %s%s\n",
            opt->out_path, v->spm ? "llama" : "gpt2", v->pre, v->n, v->n_added, v->n_merges,
            id_text(v, v->bos, b1, sizeof b1), id_text(v, v->eos, b2, sizeof b2),
            id_text(v, v->unk, b3, sizeof b3), v->add_bos ? "true" : "false",
            v->add_eos ? "true" : "false", v->ignore_merges == 1 ? ", ignore_merges" : "");
}

static int import_vocab(const import_options_t *opt, vocab_t *v, rf_err_t *err)
{
    json_t *root = NULL, *config = NULL;
    const char *path = opt->tokenizer_path;
    int rc = load_json(path, &root, err);
    if (rc < 0)
        return rc;
    if (opt->config_path != NULL && (rc = load_json(opt->config_path, &config, err)) < 0)
        goto out;

    const json_t *model = json_object_get(root, "model");
    const json_t *type = json_object_get(model, "type");
    if (!json_is_object(model)) {
        rc = rf_err_set(err, RF_EFORMAT, "%s: model is %s, expected an object", path,
                        json_kind(model));
        goto out;
    }
    /* Older files leave out model.type; merges say BPE. */
    if (!(str_is(type, "BPE") || (type == NULL && json_object_get(model, "merges") != NULL))) {
        rc = rf_err_set(err, RF_EUNSUPPORTED,
                        "%s: model type %s is not supported; vocab import reads BPE models "
                        "(byte-level, or SentencePiece converted with byte_fallback)",
                        path, json_is_string(type) ? json_string_value(type) : json_kind(type));
        goto out;
    }
    if (json_flag(model, "byte_fallback", false))
        rc = detect_spm(v, root, path, err);
    else
        rc = detect_bpe(v, root, path, err);
    if (rc < 0)
        goto out;
    const json_t *ignore = json_object_get(model, "ignore_merges");
    v->ignore_merges = json_is_boolean(ignore) ? json_is_true(ignore) : -1;

    if ((rc = read_tokens(v, root, path, err)) < 0 || (rc = vocab_index(v)) < 0 ||
        (rc = assign_types(v, model)) < 0 || (rc = read_merges(v, model, path, err)) < 0 ||
        (rc = read_specials(v, root, config, opt->config_path, path, err)) < 0)
        goto out;
    /* The unknown token is typed so whichever file names it. */
    if (v->unk >= 0 && (v->types[v->unk] == RF_TOKEN_NORMAL || v->types[v->unk] == RF_TOKEN_CONTROL)) {
        v->types[v->unk] = RF_TOKEN_UNKNOWN;
        if (v->scores != NULL)
            v->scores[v->unk] = 0.0f;
    }
    finish_scores(v);
    rc = write_gguf(v, config, opt, err);
    if (rc == 0)
        print_summary(v, opt);
out:
    if (rc < 0 && err != NULL && err->msg[0] == '\0')
        rf_err_set(err, rc, "%s: %s", path, rf_strerror(rc));
    json_decref(root);
    json_decref(config);
    return rc;
}

/* ---- the command ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge vocab import [options] tokenizer.json [tokenizer_config.json] OUT.gguf\n"
            "\n"
            "Convert a Hugging Face tokenizer (tokenizer.json, and tokenizer_config.json for\n"
            "the special tokens, add_bos_token and the chat template) into a vocab-only GGUF\n"
            "with the tokenizer keys llama.cpp's converter writes. It can be given to any\n"
            "command that takes -m for its tokenizer (tokenize, detokenize, bench tokenize).\n"
            "\n"
            "Supported: BPE models, byte-level (tokenizer.ggml.model gpt2) with the\n"
            "pre-tokenizers llama-bpe (Llama 3), qwen2 (Qwen 2/2.5/3), gpt-2 and smollm, and\n"
            "SentencePiece converted to BPE with byte_fallback (model llama). Anything else is\n"
            "refused with the reason. docs/vocab.md lists the keys written.\n"
            "\n"
            "options:\n"
            "      --arch NAME     write general.architecture (a tokenizer.json does not say it)\n"
            "      --name NAME     write general.name\n"
            "  -q, --quiet         no summary on stderr\n"
            "  -h, --help          show this help\n");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int cmd_import(int argc, char **argv)
{
    import_options_t opt = {0};
    enum { OPT_ARCH = 256, OPT_NAME };
    static const struct option long_options[] = {
        {"arch", required_argument, NULL, OPT_ARCH},
        {"name", required_argument, NULL, OPT_NAME},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "qh", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_ARCH: opt.arch = optarg; break;
        case OPT_NAME: opt.name = optarg; break;
        case 'q': opt.quiet = true; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("vocab", "unknown or incomplete option '%s'; see 'rocmforge vocab --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    int n_args = argc - optind;
    if (n_args != 2 && n_args != 3) {
        rf__cli_error("vocab",
                      "import takes tokenizer.json, optionally tokenizer_config.json, and OUT.gguf "
                      "(%d argument%s given); see 'rocmforge vocab --help'",
                      n_args, n_args == 1 ? "" : "s");
        return RF_EXIT_USAGE;
    }
    opt.tokenizer_path = argv[optind];
    opt.config_path = n_args == 3 ? argv[optind + 1] : NULL;
    opt.out_path = argv[argc - 1];
    if (ends_with(opt.out_path, ".json")) {
        rf__cli_error("vocab", "the output '%s' looks like a JSON input; the last argument is the "
                      "GGUF to write", opt.out_path);
        return RF_EXIT_USAGE;
    }

    vocab_t v;
    memset(&v, 0, sizeof v);
    rf_err_t err = {0};
    int rc = import_vocab(&opt, &v, &err);
    vocab_free(&v);
    if (rc < 0) {
        rf__cli_error("vocab", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return RF_EXIT_FAIL;
    }
    return RF_EXIT_OK;
}

int rf__cmd_vocab(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RF_EXIT_USAGE : RF_EXIT_OK;
    }
    if (strcmp(argv[1], "import") == 0)
        return cmd_import(argc - 1, argv + 1);
    rf__cli_error("vocab", "unknown subcommand '%s'; the one there is: import", argv[1]);
    return RF_EXIT_USAGE;
}
