/* test_tokenizer_conformance.c - token ids identical to the reference tokenizers on the corpus
 *
 * Two CTest setup fixtures write into RF_CONFORMANCE_OUT:
 *   conformance_reference_tokens  node reference_tokens.mjs: <vocab>.expected.jsonl,
 *       one object per corpus line (ids, ids_special, decoded_raw, roundtrip)
 *   conformance_import            import_vocabs.sh: <vocab>.gguf from the
 *       package's tokenizer.json by `rocmforge vocab import`
 * Each test encodes every line of RF_CONFORMANCE_SRC/corpus.jsonl with the
 * imported vocabulary and needs, line for line:
 *   ids          encode(add_special = false, parse_special = true) equal to the
 *                reference's encode(add_special_tokens: false). parse_special,
 *                because the reference splits every added token (special or
 *                not) out of the raw text before anything else.
 *   ids_special  the same with add_special = true
 *   round trip   decode(our ids) == the line, wherever the reference's own
 *                decode round-trips (skip_special false; the SentencePiece
 *                space prefix stripped, as the reference's Strip decoder does)
 *   decode       decode(the reference's ids) == the reference's decode
 *                (without clean_up_tokenization_spaces, which rocmforge
 *                does not do)
 * It prints a count per check and the first mismatches in full (text
 * escaped, our ids against the reference's, with pieces), writes every
 * mismatch to RF_CONFORMANCE_OUT/<vocab>.mismatches.txt, and asserts that
 * there are none.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gguf.h"
#include "tokenizer.h"

#define N_SHOWN 4 /* mismatches printed in full per check */

enum { CHECK_IDS, CHECK_IDS_SPECIAL, CHECK_ROUNDTRIP, CHECK_DECODE, N_CHECKS };
static const char *const check_names[N_CHECKS] = {"ids", "ids_special", "round trip", "decode"};

/* ---- reading the corpus and the expected file ---- */

static char *slurp(const char *path, size_t *len, const char *hint)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s: %s; %s", path, strerror(errno), hint);
    size_t cap = 1 << 20, n = 0, got;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    cr_assert(!ferror(f), "reading %s failed", path);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The lines of a JSON Lines file, each parsed (NUL allowed in strings). */
static json_t *load_jsonl(const char *path, const char *hint)
{
    size_t len;
    char *text = slurp(path, &len, hint);
    json_t *rows = json_array();
    size_t line_no = 0;
    for (size_t pos = 0; pos < len;) {
        char *end = memchr(text + pos, '\n', len - pos);
        size_t line_len = end ? (size_t)(end - (text + pos)) : len - pos;
        line_no++;
        json_error_t jerr;
        json_t *row = json_loadb(text + pos, line_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        cr_assert_not_null(row, "%s:%zu:%d: %s", path, line_no, jerr.column, jerr.text);
        json_array_append_new(rows, row);
        pos += line_len + 1;
    }
    free(text);
    return rows;
}

static void ids_from_json(const json_t *arr, rf_tokens_t *out, const char *what, size_t line)
{
    out->n = 0;
    cr_assert(json_is_array(arr), "expected file line %zu: %s is not an array", line, what);
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        cr_assert(json_is_integer(v), "expected file line %zu: %s[%zu] is not an id", line, what, i);
        cr_assert_eq(rf_tokens_push(out, (int32_t)json_integer_value(v)), 0);
    }
}

/* ---- printing ---- */

/* Text as ASCII: printable ASCII as is, everything else escaped, so
 * combining marks, odd spaces and controls are visible. Cut at max_out. */
static void put_escaped(FILE *out, const char *s, size_t len, size_t max_out)
{
    size_t written = 0;
    fputc('"', out);
    for (size_t i = 0; i < len; written++) {
        if (written >= max_out) {
            fprintf(out, "\"... (%zu bytes in all)", len);
            return;
        }
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
            i++;
        } else if (c == '\n') {
            fputs("\\n", out);
            i++;
        } else if (c == '\t') {
            fputs("\\t", out);
            i++;
        } else if (c == '\r') {
            fputs("\\r", out);
            i++;
        } else if (c >= 0x20 && c < 0x7f) {
            fputc(c, out);
            i++;
        } else {
            size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
            uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
            bool ok = n > 1 && i + n <= len;
            for (size_t k = 1; ok && k < n; k++) {
                unsigned char cc = (unsigned char)s[i + k];
                ok = (cc & 0xc0) == 0x80;
                cp = (cp << 6) | (cc & 0x3f);
            }
            if (ok) {
                fprintf(out, "\\u{%" PRIX32 "}", cp);
                i += n;
            } else {
                fprintf(out, "\\x%02X", c);
                i++;
            }
        }
    }
    fputc('"', out);
}

/* Ids with their pieces, all of them or a window around the first
 * difference from other. */
static void put_ids(FILE *out, const rf_tokenizer_t *tok, const rf_tokens_t *ids,
                    const rf_tokens_t *other, bool full)
{
    size_t diff = 0;
    while (diff < ids->n && diff < other->n && ids->ids[diff] == other->ids[diff])
        diff++;
    size_t from = 0, to = ids->n;
    if (!full && ids->n > 24) {
        from = diff > 4 ? diff - 4 : 0;
        to = from + 12 < ids->n ? from + 12 : ids->n;
    }
    fprintf(out, "%zu ids%s [", ids->n, from > 0 || to < ids->n ? ", window" : "");
    if (from > 0)
        fprintf(out, "...%zu before... ", from);
    for (size_t i = from; i < to; i++) {
        const char *piece = rf_tokenizer_piece(tok, ids->ids[i]);
        fprintf(out, "%s%s%" PRId32 " ", i > from ? ", " : "", i == diff ? ">" : "", ids->ids[i]);
        if (piece != NULL)
            put_escaped(out, piece, strlen(piece), 40);
        else
            fputs("(out of range)", out);
    }
    if (to < ids->n)
        fprintf(out, " ...%zu after...", ids->n - to);
    fputc(']', out);
}

typedef struct report {
    const char *vocab;
    const rf_tokenizer_t *tok;
    FILE *file; /* every mismatch, in full */
    size_t failed[N_CHECKS];
    size_t checked[N_CHECKS];
} report_t;

static void mismatch_ids(report_t *r, int check, size_t line, const char *text, size_t len,
                         const rf_tokens_t *ours, const rf_tokens_t *ref)
{
    r->failed[check]++;
    FILE *outs[2] = {r->failed[check] <= N_SHOWN ? stderr : NULL, r->file};
    for (int k = 0; k < 2; k++) {
        FILE *out = outs[k];
        if (out == NULL)
            continue;
        bool full = out == r->file;
        fprintf(out, "%s: corpus line %zu: %s differ\n  text: ", r->vocab, line, check_names[check]);
        put_escaped(out, text, len, full ? SIZE_MAX : 300);
        fputs("\n  ours: ", out);
        put_ids(out, r->tok, ours, ref, full);
        fputs("\n  ref:  ", out);
        put_ids(out, r->tok, ref, ours, full);
        fputc('\n', out);
    }
}

static void mismatch_text(report_t *r, int check, size_t line, const char *text, size_t len,
                          const rf_tokens_t *ids, const char *got, size_t got_len,
                          const char *want, size_t want_len)
{
    r->failed[check]++;
    FILE *outs[2] = {r->failed[check] <= N_SHOWN ? stderr : NULL, r->file};
    for (int k = 0; k < 2; k++) {
        FILE *out = outs[k];
        if (out == NULL)
            continue;
        size_t max = out == r->file ? SIZE_MAX : 300;
        fprintf(out, "%s: corpus line %zu: %s differs\n  text: ", r->vocab, line, check_names[check]);
        put_escaped(out, text, len, max);
        fputs("\n  ids:  ", out);
        put_ids(out, r->tok, ids, ids, out == r->file);
        fputs("\n  ours: ", out);
        put_escaped(out, got, got_len, max);
        fputs("\n  want: ", out);
        put_escaped(out, want, want_len, max);
        fputc('\n', out);
    }
}

static bool same_ids(const rf_tokens_t *a, const rf_tokens_t *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0);
}

/* ---- the test ---- */

static void run_conformance(const char *vocab)
{
    char path[1024], hint[1024];
    snprintf(hint, sizeof hint,
             "the CTest fixtures write it (ctest -R conformance), or run: node %s/reference_tokens.mjs "
             "--out %s && sh %s/import_vocabs.sh BUILD/rocmforge %s",
             RF_CONFORMANCE_SRC, RF_CONFORMANCE_OUT, RF_CONFORMANCE_SRC, RF_CONFORMANCE_OUT);

    snprintf(path, sizeof path, "%s/corpus.jsonl", RF_CONFORMANCE_SRC);
    json_t *corpus = load_jsonl(path, "node tests/conformance/make_corpus.mjs writes it");
    snprintf(path, sizeof path, "%s/%s.expected.jsonl", RF_CONFORMANCE_OUT, vocab);
    json_t *expected = load_jsonl(path, hint);
    cr_assert_eq(json_array_size(expected), json_array_size(corpus),
                 "%s has %zu lines but the corpus %zu: it is stale; %s", path,
                 json_array_size(expected), json_array_size(corpus), hint);

    snprintf(path, sizeof path, "%s/%s.gguf", RF_CONFORMANCE_OUT, vocab);
    rf_err_t err = {0};
    rf_gguf_t *g = NULL;
    int rc = rf_gguf_open(&g, path, &err);
    cr_assert_eq(rc, 0, "%s; %s", err.msg, hint);
    rf_tokenizer_t *tok = NULL;
    rc = rf_tokenizer_open(&tok, g, &err);
    rf_gguf_close(g);
    cr_assert_eq(rc, 0, "rf_tokenizer_open(%s): %s", path, err.msg);

    snprintf(path, sizeof path, "%s/%s.mismatches.txt", RF_CONFORMANCE_OUT, vocab);
    report_t r = {.vocab = vocab, .tok = tok, .file = fopen(path, "w")};
    cr_assert_not_null(r.file, "cannot write %s: %s", path, strerror(errno));

    const bool spm = rf_tokenizer_kind(tok) == RF_TOKENIZER_SPM;
    const rf_tokenize_options_t plain = {.add_special = false, .parse_special = true};
    const rf_tokenize_options_t special = {.add_special = true, .parse_special = true};
    const rf_detokenize_options_t detok = {.skip_special = false, .strip_leading_space = spm};
    rf_tokens_t ours = {0}, ref = {0};
    rf_bytes_t text_out = {0};
    for (size_t i = 0; i < json_array_size(corpus); i++) {
        const json_t *line = json_array_get(corpus, i);
        const json_t *row = json_array_get(expected, i);
        cr_assert(json_is_string(line), "corpus line %zu is not a JSON string", i + 1);
        cr_assert(json_is_object(row), "expected line %zu is not an object", i + 1);
        const char *s = json_string_value(line);
        size_t len = json_string_length(line);

        ours.n = 0;
        cr_assert_eq(rf_tokenizer_encode(tok, s, len, &plain, &ours), 0);
        ids_from_json(json_object_get(row, "ids"), &ref, "ids", i + 1);
        r.checked[CHECK_IDS]++;
        if (!same_ids(&ours, &ref))
            mismatch_ids(&r, CHECK_IDS, i + 1, s, len, &ours, &ref);

        /* Decode the reference's ids before ours replaces them. */
        const json_t *want = json_object_get(row, "decoded_raw");
        cr_assert(json_is_string(want), "expected line %zu has no decoded_raw", i + 1);
        text_out.len = 0;
        r.checked[CHECK_DECODE]++;
        rc = rf_tokenizer_decode(tok, ref.ids, ref.n, &detok, &text_out);
        if (rc != 0 || text_out.len != json_string_length(want) ||
            (text_out.len && memcmp(text_out.data, json_string_value(want), text_out.len) != 0))
            mismatch_text(&r, CHECK_DECODE, i + 1, s, len, &ref, text_out.data ? text_out.data : "",
                          text_out.len, json_string_value(want), json_string_length(want));

        if (json_is_true(json_object_get(row, "roundtrip"))) {
            text_out.len = 0;
            r.checked[CHECK_ROUNDTRIP]++;
            rc = rf_tokenizer_decode(tok, ours.ids, ours.n, &detok, &text_out);
            if (rc != 0 || text_out.len != len || (len && memcmp(text_out.data, s, len) != 0))
                mismatch_text(&r, CHECK_ROUNDTRIP, i + 1, s, len, &ours,
                              text_out.data ? text_out.data : "", text_out.len, s, len);
        }

        ours.n = 0;
        cr_assert_eq(rf_tokenizer_encode(tok, s, len, &special, &ours), 0);
        ids_from_json(json_object_get(row, "ids_special"), &ref, "ids_special", i + 1);
        r.checked[CHECK_IDS_SPECIAL]++;
        if (!same_ids(&ours, &ref))
            mismatch_ids(&r, CHECK_IDS_SPECIAL, i + 1, s, len, &ours, &ref);
    }
    fclose(r.file);

    size_t total_failed = 0;
    char summary[512];
    int o = snprintf(summary, sizeof summary, "%s: %zu corpus lines:", vocab, json_array_size(corpus));
    for (int c = 0; c < N_CHECKS; c++) {
        total_failed += r.failed[c];
        o += snprintf(summary + o, sizeof summary - (size_t)o, "%s %s %zu/%zu", c ? "," : "",
                      check_names[c], r.checked[c] - r.failed[c], r.checked[c]);
    }
    fprintf(stderr, "conformance %s%s\n", summary,
            total_failed ? " (every mismatch is in the .mismatches.txt beside the GGUF)" : "");

    rf_tokens_free(&ours);
    rf_tokens_free(&ref);
    rf_bytes_free(&text_out);
    rf_tokenizer_close(tok);
    json_decref(corpus);
    json_decref(expected);
    cr_assert_eq(total_failed, 0, "%s; all mismatches: %s", summary, path);
}

Test(conformance, llama2, .timeout = 400)
{
    run_conformance("llama2");
}

Test(conformance, llama3, .timeout = 400)
{
    run_conformance("llama3");
}

Test(conformance, qwen3, .timeout = 400)
{
    run_conformance("qwen3");
}
