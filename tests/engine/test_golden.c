/* test_golden.c - the CPU engine against golden logits from PyTorch
 *
 * Every tests/fixtures/golden/<name>.json describes one fixture:
 *   {"arch": "qwen3", "variant": "...", "n_vocab": 151936,
 *    "tokens": [[...], ...],            one list of token ids per sequence
 *    "logits": "<name>.logits.f32",     little-endian float32
 *                                       [n_seq][n_tokens][n_vocab]
 *    "tolerance": 1e-3}
 * next to <name>.gguf. The engine evaluates all sequences in ONE batch
 * (one KV region each) with logits at every position; a fixture passes
 * when, for each sequence, max|engine - golden| / max|golden| <= tolerance.
 * Sequences of different lengths are stored one after the other.
 *
 * The suite fails when the folder holds no fixture: a golden test that
 * silently checks nothing is worse than none. Link with jansson.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define GOLDEN_DIR RF_FIXTURES "/golden"

typedef struct fixture {
    char name[256];
    char arch[64];
    uint32_t n_vocab, n_seq;
    uint32_t *len;        /* [n_seq] */
    int32_t **tokens;     /* [n_seq][len] */
    double tolerance;
    float *logits;        /* concatenated [sum len][n_vocab] */
} fixture_t;

static void fixture_free(fixture_t *f)
{
    for (uint32_t s = 0; s < f->n_seq; s++)
        free(f->tokens[s]);
    free(f->tokens);
    free(f->len);
    free(f->logits);
}

/* Returns 0 or a message in why. */
static int fixture_load(fixture_t *f, const char *json_name, char *why, size_t why_size)
{
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%.*s", (int)(strlen(json_name) - 5), json_name);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, json_name);
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL) {
        snprintf(why, why_size, "%.700s:%d: %.200s", path, jerr.line, jerr.text);
        return -1;
    }
    int rc = -1;
    const char *arch = NULL, *logits_file = NULL;
    json_int_t n_vocab = 0;
    double tolerance = 0;
    json_t *tokens = NULL;
    if (json_unpack_ex(root, &jerr, 0, "{s:s, s:I, s:o, s:s, s:F}", "arch", &arch, "n_vocab",
                       &n_vocab, "tokens", &tokens, "logits", &logits_file, "tolerance",
                       &tolerance) != 0 || !json_is_array(tokens) || json_array_size(tokens) == 0
        || n_vocab <= 0) {
        snprintf(why, why_size, "%.700s: needs arch, n_vocab, tokens (non-empty list of lists), "
                 "logits, tolerance: %s", path, jerr.text);
        goto out;
    }
    snprintf(f->arch, sizeof f->arch, "%s", arch);
    f->n_vocab = (uint32_t)n_vocab;
    f->tolerance = tolerance;
    f->n_seq = (uint32_t)json_array_size(tokens);
    f->len = calloc(f->n_seq, sizeof *f->len);
    f->tokens = calloc(f->n_seq, sizeof *f->tokens);
    size_t total = 0;
    for (uint32_t s = 0; s < f->n_seq; s++) {
        json_t *seq = json_array_get(tokens, s);
        if (!json_is_array(seq) || json_array_size(seq) == 0) {
            snprintf(why, why_size, "%.700s: tokens[%u] is not a non-empty list", path, s);
            goto out;
        }
        f->len[s] = (uint32_t)json_array_size(seq);
        f->tokens[s] = malloc(f->len[s] * sizeof(int32_t));
        for (uint32_t i = 0; i < f->len[s]; i++)
            f->tokens[s][i] = (int32_t)json_integer_value(json_array_get(seq, i));
        total += f->len[s];
    }
    snprintf(path, sizeof path, "%s/%s", GOLDEN_DIR, logits_file);
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        snprintf(why, why_size, "%.700s: cannot open", path);
        goto out;
    }
    size_t want = total * f->n_vocab;
    f->logits = malloc(want * sizeof(float));
    size_t got = fread(f->logits, sizeof(float), want, fp);
    int extra = fgetc(fp);
    fclose(fp);
    if (got != want || extra != EOF) {
        snprintf(why, why_size, "%.700s: expected exactly %zu floats ([%zu tokens][%u vocab])",
                 path, want, total, f->n_vocab);
        goto out;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* Returns true when the fixture passes; logs why not. */
static bool run_fixture(const fixture_t *f)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", GOLDEN_DIR, f->name);
    uint32_t total = 0, max_len = 0;
    for (uint32_t s = 0; s < f->n_seq; s++) {
        total += f->len[s];
        if (f->len[s] > max_len)
            max_len = f->len[s];
    }
    rf_engine_options_t opt = {.n_threads = 0, .n_ctx = max_len, .max_seqs = f->n_seq,
                               .no_tokenizer = true};
    rf_engine_t *e = NULL;
    rf_err_t err = {0};
    if (rf_engine_open(&e, path, &opt, &err) < 0) {
        cr_log_error("%s: %s", f->name, err.msg);
        return false;
    }
    bool ok = true;
    const rf_hparams_t *hp = rf_engine_hparams(e);
    if (strcmp(rf_arch_name(hp->arch), f->arch) != 0 || hp->n_vocab != f->n_vocab) {
        cr_log_error("%s: model is %s with %u tokens, the fixture says %s with %u", f->name,
                     rf_arch_name(hp->arch), hp->n_vocab, f->arch, f->n_vocab);
        rf_engine_close(e);
        return false;
    }
    int32_t *tok = malloc(total * sizeof(int32_t)), *pos = malloc(total * sizeof(int32_t));
    int32_t *seq = malloc(total * sizeof(int32_t));
    int8_t *want = malloc(total);
    uint32_t n = 0;
    for (uint32_t s = 0; s < f->n_seq; s++)
        for (uint32_t i = 0; i < f->len[s]; i++, n++) {
            tok[n] = f->tokens[s][i];
            pos[n] = (int32_t)i;
            seq[n] = (int32_t)s;
            want[n] = 1;
        }
    rf_batch_t b = {.n_tokens = total, .tokens = tok, .positions = pos, .seq_ids = seq,
                    .logits = want};
    if (rf_engine_eval(e, &b, &err) < 0) {
        cr_log_error("%s: eval: %s", f->name, err.msg);
        ok = false;
    }
    for (uint32_t s = 0, base = 0; ok && s < f->n_seq; base += f->len[s], s++) {
        double max_d = 0, max_g = 0;
        uint32_t worst_pos = 0;
        for (uint32_t i = 0; i < f->len[s]; i++) {
            const float *got = rf_engine_logits(e, base + i);
            const float *gold = f->logits + (size_t)(base + i) * f->n_vocab;
            for (uint32_t v = 0; v < f->n_vocab; v++) {
                double d = fabs((double)got[v] - gold[v]);
                if (!(d <= max_d)) { /* NaN counts as worst */
                    max_d = isnan(d) ? INFINITY : d;
                    worst_pos = i;
                }
                max_g = fmax(max_g, fabs((double)gold[v]));
            }
        }
        double rel = max_d / (max_g > 0 ? max_g : 1.0);
        cr_log_info("%s seq %u: max|d|/max|golden| = %g (tolerance %g, worst at position %u)",
                    f->name, s, rel, f->tolerance, worst_pos);
        if (!(rel <= f->tolerance)) {
            cr_log_error("%s seq %u: %g > tolerance %g (worst at position %u)", f->name, s, rel,
                         f->tolerance, worst_pos);
            ok = false;
        }
    }
    free(tok);
    free(pos);
    free(seq);
    free(want);
    rf_engine_close(e);
    return ok;
}

Test(golden, every_fixture_matches_pytorch, .timeout = 1200)
{
    DIR *dir = opendir(GOLDEN_DIR);
    cr_assert_not_null(dir, "no fixture folder %s: golden logits are required", GOLDEN_DIR);
    int n_fixtures = 0, n_failed = 0;
    struct dirent *ent;
    while ((ent = readdir(dir)) != NULL) {
        size_t len = strlen(ent->d_name);
        if (len <= 5 || strcmp(ent->d_name + len - 5, ".json") != 0)
            continue;
        n_fixtures++;
        fixture_t f;
        char why[1024];
        if (fixture_load(&f, ent->d_name, why, sizeof why) != 0) {
            cr_log_error("%s", why);
            n_failed++;
        } else if (!run_fixture(&f)) {
            n_failed++;
        }
        fixture_free(&f);
    }
    closedir(dir);
    cr_assert_gt(n_fixtures, 0, "%s holds no <name>.json fixture", GOLDEN_DIR);
    cr_assert_eq(n_failed, 0, "%d of %d golden fixtures failed (see the log above)", n_failed,
                 n_fixtures);
}
