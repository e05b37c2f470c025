/* test_cli.c - the rocmforge executable as a user runs it */
#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

typedef rf_test_result_t result_t;

/* Run the CLI with a shell-quoted argument string, capturing both streams. */
static result_t run_cli(const char *args)
{
    return rf_test_run(args, NULL);
}

static const char *model_path(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/cli_%d_%s", RF_TMPDIR, (int)getpid(), name);
    return buf;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

Test(cli, help_lists_commands)
{
    result_t r = run_cli("--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "inspect") && strstr(r.out, "synth"), "%s", r.out);
    rf_test_result_free(&r);
    r = run_cli("help inspect");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--json"), "%s", r.out);
    rf_test_result_free(&r);
}

Test(cli, unknown_command_is_usage_error)
{
    result_t r = run_cli("frobnicate");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "unknown command 'frobnicate'"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("");
    cr_assert_eq(r.status, 2);
    rf_test_result_free(&r);
}

Test(cli, synth_then_inspect_text)
{
    char args[1024];
    const char *path = model_path("tiny.gguf");
    snprintf(args, sizeof args, "synth --shape tiny --type q8_0 --seed 2 -q -o '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "inspect '%s'", path);
    r = run_cli(args);
    cr_assert_eq(r.status, 0, "inspect: %s", r.err);
    cr_assert(strstr(r.out, "GGUF v3"), "%s", r.out);
    cr_assert(strstr(r.out, "general.architecture"), "%s", r.out);
    cr_assert(strstr(r.out, "\"llama\""), "%s", r.out);
    cr_assert(strstr(r.out, "(+504 more)"), "token array abbreviated: %s", r.out);
    cr_assert(strstr(r.out, "token_embd.weight"), "%s", r.out);
    cr_assert(strstr(r.out, "256 x 512"), "%s", r.out);
    cr_assert(strstr(r.out, "Q8_0"), "%s", r.out);
    rf_test_result_free(&r);
}

Test(cli, inspect_json_is_complete_and_parses)
{
    char args[1024];
    const char *path = model_path("json.gguf");
    snprintf(args, sizeof args, "synth --shape tiny --type f16 -q -o '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "inspect --json --max-array 0 '%s'", path);
    r = run_cli(args);
    cr_assert_eq(r.status, 0, "inspect: %s", r.err);
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    cr_assert_not_null(root, "invalid JSON at line %d: %s", jerr.line, jerr.text);
    cr_assert_eq(json_integer_value(json_object_get(root, "version")), 3);
    json_t *tensors = json_object_get(root, "tensors");
    cr_assert_eq(json_array_size(tensors), 21);
    json_t *first = json_array_get(tensors, 0);
    cr_assert_str_eq(json_string_value(json_object_get(first, "name")), "token_embd.weight");
    cr_assert_str_eq(json_string_value(json_object_get(first, "type")), "F16");
    cr_assert_eq(json_integer_value(json_object_get(first, "bytes")), 256 * 512 * 2);
    json_t *meta = json_object_get(root, "metadata");
    bool saw_tokens = false;
    for (size_t i = 0; i < json_array_size(meta); i++) {
        json_t *kv = json_array_get(meta, i);
        if (strcmp(json_string_value(json_object_get(kv, "key")), "tokenizer.ggml.tokens") == 0) {
            json_t *value = json_object_get(kv, "value");
            cr_assert_eq(json_integer_value(json_object_get(value, "n")), 512);
            cr_assert_eq(json_array_size(json_object_get(value, "values")), 512,
                         "--max-array 0 keeps every element");
            saw_tokens = true;
        }
    }
    cr_assert(saw_tokens);
    json_decref(root);
    rf_test_result_free(&r);
}

Test(cli, inspect_missing_file_names_it)
{
    result_t r = run_cli("inspect /nonexistent/model.gguf");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/model.gguf"), "%s", r.err);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    rf_test_result_free(&r);
}

Test(cli, synth_rejects_bad_options)
{
    result_t r = run_cli("synth --shape tiny --type q9_9 -o /tmp/never.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "q9_9"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("synth --shape nope -o /tmp/never.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "nope"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("synth --shape tiny --type iq2_xxs -o /tmp/never.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "quantizer"), "%s", r.err);
    rf_test_result_free(&r);
}

/* Every file of the corrupt corpus: exit 1, exactly one line on stderr that
 * names the byte offset, nothing else (a sanitizer report would add lines). */
Test(cli, inspect_rejects_every_corrupt_file_in_one_line, .timeout = 300)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/gguf_corrupt", RF_FIXTURES);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "corpus folder %s", dir);
    int n_files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 5, ".gguf") != 0)
            continue;
        char args[1024];
        snprintf(args, sizeof args, "inspect '%s/%s'", dir, e->d_name);
        result_t r = run_cli(args);
        cr_expect_eq(r.status, 1, "%s: exit %d", e->d_name, r.status);
        cr_expect_eq(count_lines(r.err), 1, "%s: stderr: %s", e->d_name, r.err);
        cr_expect(strstr(r.err, "rocmforge: inspect: ") == r.err, "%s: %s", e->d_name, r.err);
        cr_expect(strstr(r.err, "byte ") != NULL, "%s: no byte offset: %s", e->d_name, r.err);
        cr_expect_eq(r.out[0], '\0', "%s: printed to stdout: %s", e->d_name, r.out);
        rf_test_result_free(&r);
        n_files++;
    }
    closedir(d);
    cr_assert_geq(n_files, 20, "corpus has only %d files", n_files);
}

/* ---- vocab import, tokenize, detokenize ---- */

/* Like run_cli, with stdin read from the given bytes. args may be a
 * pipeline ('... | RF_BIN ...'): the redirections apply to all of it. */
static result_t run_cli_input(const char *args, const char *input, size_t len)
{
    char in[512];
    snprintf(in, sizeof in, "%s/cli_%d.in", RF_TMPDIR, (int)getpid());
    FILE *f = fopen(in, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(input, 1, len, f), len);
    fclose(f);
    return rf_test_run(args, in);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static void write_json(const char *path, json_t *root)
{
    cr_assert_eq(json_dump_file(root, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER), 0, "%s", path);
    json_decref(root);
}

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the
 * rest take code points from U+0100 up, in byte order. */
static void byte_char(unsigned b, char out[4])
{
    unsigned cp = b, n = 0;
    bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
    if (!printable) {
        for (unsigned x = 0; x < b; x++)
            n += !((x >= '!' && x <= '~') || (x >= 0xa1 && x <= 0xac) || x >= 0xae);
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = '\0';
    }
}

#define LLAMA3_REGEX                                                                          \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* A byte-level BPE tokenizer.json: ids 0-255 are the bytes in order, then
 * he ll hell hello Ġhello, then <|end|> (special) and <x> (not special).
 * regex NULL means llama3's; array_merges writes ["a", "b"] merges. */
static json_t *byte_level_tokenizer(const char *regex, bool array_merges)
{
    json_t *vocab = json_object();
    for (unsigned b = 0; b < 256; b++) {
        char c[4];
        byte_char(b, c);
        json_object_set_new(vocab, c, json_integer(b));
    }
    const char *merged[] = {"he", "ll", "hell", "hello", "\xc4\xa0hello"};
    for (int i = 0; i < 5; i++)
        json_object_set_new(vocab, merged[i], json_integer(256 + i));
    const char *merges[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
                               {"\xc4\xa0", "hello"}};
    json_t *jmerges = json_array();
    for (int i = 0; i < 5; i++) {
        char joined[64];
        snprintf(joined, sizeof joined, "%s %s", merges[i][0], merges[i][1]);
        json_array_append_new(jmerges, array_merges ? json_pack("[ss]", merges[i][0], merges[i][1])
                                                    : json_string(joined));
    }
    return json_pack(
        "{s:s, s:[{s:i, s:s, s:b}, {s:i, s:s, s:b}], s:n, "
        "s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b}]}, s:n, s:{s:s}, "
        "s:{s:s, s:o, s:o, s:b, s:b}}",
        "version", "1.0",
        "added_tokens", "id", 261, "content", "<|end|>", "special", 1, "id", 262, "content", "<x>",
        "special", 0,
        "normalizer",
        "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex",
        regex ? regex : LLAMA3_REGEX, "behavior", "Isolated", "invert", 0, "type", "ByteLevel",
        "add_prefix_space", 0, "use_regex", 0,
        "post_processor", "decoder", "type", "ByteLevel",
        "model", "type", "BPE", "vocab", vocab, "merges", jmerges, "byte_fallback", 0,
        "ignore_merges", 0);
}

/* A SentencePiece-converted tokenizer.json: <unk> <s> </s>, the 256 byte
 * pieces, then ▁ h e l o he ll ▁he hell ▁hell ▁hello. */
static json_t *spm_tokenizer(void)
{
    json_t *vocab = json_object();
    json_object_set_new(vocab, "<unk>", json_integer(0));
    json_object_set_new(vocab, "<s>", json_integer(1));
    json_object_set_new(vocab, "</s>", json_integer(2));
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        json_object_set_new(vocab, name, json_integer(3 + b));
    }
    const char *pieces[] = {"\xe2\x96\x81", "h", "e", "l", "o", "he", "ll", "\xe2\x96\x81he", "hell",
                            "\xe2\x96\x81hell", "\xe2\x96\x81hello"};
    for (int i = 0; i < 11; i++)
        json_object_set_new(vocab, pieces[i], json_integer(259 + i));
    return json_pack(
        "{s:[{s:i, s:s, s:b}, {s:i, s:s, s:b}, {s:i, s:s, s:b}], "
        "s:{s:s, s:[{s:s, s:s}, {s:s, s:{s:s}, s:s}]}, s:n, "
        "s:{s:s, s:o, s:[s, s, s, s, s, s], s:s, s:b}}",
        "added_tokens", "id", 0, "content", "<unk>", "special", 1, "id", 1, "content", "<s>",
        "special", 1, "id", 2, "content", "</s>", "special", 1,
        "normalizer", "type", "Sequence", "normalizers", "type", "Prepend", "prepend",
        "\xe2\x96\x81", "type", "Replace", "pattern", "String", " ", "content", "\xe2\x96\x81",
        "pre_tokenizer",
        "model", "type", "BPE", "vocab", vocab, "merges", "h e", "l l", "\xe2\x96\x81 he", "he ll",
        "\xe2\x96\x81he ll", "\xe2\x96\x81hell o", "unk_token", "<unk>", "byte_fallback", 1);
}

/* Metadata of a GGUF, through `inspect --json`: key -> value. */
static json_t *inspect_metadata(const char *path)
{
    char args[1024];
    snprintf(args, sizeof args, "inspect --json --max-array 0 '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "inspect: %s", r.err);
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    cr_assert_not_null(root, "inspect output line %d: %s", jerr.line, jerr.text);
    json_t *meta = json_object();
    json_t *list = json_object_get(root, "metadata");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *kv = json_array_get(list, i);
        json_object_set(meta, json_string_value(json_object_get(kv, "key")),
                        json_object_get(kv, "value"));
    }
    json_decref(root);
    rf_test_result_free(&r);
    return meta;
}

static json_int_t meta_int(json_t *meta, const char *key)
{
    json_t *v = json_object_get(meta, key);
    cr_assert(json_is_integer(v), "%s missing or not an integer", key);
    return json_integer_value(v);
}

static json_t *meta_array(json_t *meta, const char *key)
{
    json_t *values = json_object_get(json_object_get(meta, key), "values");
    cr_assert(json_is_array(values), "%s missing or not an array", key);
    return values;
}

/* Import the byte-level test tokenizer with its config; returns the GGUF path. */
static const char *import_byte_level(const char *name)
{
    static char gguf[512];
    char tok[512], cfg[512], args[2048];
    snprintf(tok, sizeof tok, "%s/cli_%d_%s.tokenizer.json", RF_TMPDIR, (int)getpid(), name);
    snprintf(cfg, sizeof cfg, "%s/cli_%d_%s.config.json", RF_TMPDIR, (int)getpid(), name);
    snprintf(gguf, sizeof gguf, "%s/cli_%d_%s.gguf", RF_TMPDIR, (int)getpid(), name);
    write_json(tok, byte_level_tokenizer(NULL, false));
    /* model_max_length as the real files write it: too big for a 64-bit integer */
    write_text(cfg, "{\"eos_token\": \"<|end|>\", \"add_bos_token\": false,\n"
                    " \"model_max_length\": 1000000000000000019884624838656,\n"
                    " \"chat_template\": [{\"name\": \"default\", \"template\": \"{{ x }}\"},\n"
                    "                   {\"name\": \"tool_use\", \"template\": \"T\"}]}\n");
    snprintf(args, sizeof args, "vocab import '%s' '%s' '%s'", tok, cfg, gguf);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "vocab import: %s", r.err);
    cr_assert(strstr(r.err, "pre llama-bpe"), "summary: %s", r.err);
    rf_test_result_free(&r);
    return gguf;
}

Test(cli, help_lists_tokenizer_commands)
{
    result_t r = run_cli("--help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "vocab") && strstr(r.out, "tokenize") && strstr(r.out, "detokenize"),
              "%s", r.out);
    rf_test_result_free(&r);
    r = run_cli("vocab --help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "vocab import") && strstr(r.out, "tokenizer_config.json"), "%s", r.out);
    rf_test_result_free(&r);
    r = run_cli("help tokenize");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--special") && strstr(r.out, "--no-bos") && strstr(r.out, "--json"),
              "%s", r.out);
    rf_test_result_free(&r);
    r = run_cli("detokenize --help");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--skip-special"), "%s", r.out);
    rf_test_result_free(&r);
}

Test(cli, vocab_import_byte_level_writes_llama_cpp_keys)
{
    json_t *meta = inspect_metadata(import_byte_level("bl"));
    cr_assert_str_eq(json_string_value(json_object_get(meta, "tokenizer.ggml.model")), "gpt2");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "tokenizer.ggml.pre")), "llama-bpe");
    json_t *tokens = meta_array(meta, "tokenizer.ggml.tokens");
    json_t *types = meta_array(meta, "tokenizer.ggml.token_type");
    json_t *merges = meta_array(meta, "tokenizer.ggml.merges");
    cr_assert_eq(json_array_size(tokens), 263);
    cr_assert_str_eq(json_string_value(json_array_get(tokens, 32)), "\xc4\xa0", "byte 0x20 is Ġ");
    cr_assert_str_eq(json_string_value(json_array_get(tokens, 261)), "<|end|>");
    cr_assert_eq(json_integer_value(json_array_get(types, 104)), 1, "normal");
    cr_assert_eq(json_integer_value(json_array_get(types, 261)), 3, "special added token: control");
    cr_assert_eq(json_integer_value(json_array_get(types, 262)), 4, "plain added token: user-defined");
    cr_assert_eq(json_array_size(merges), 5);
    cr_assert_str_eq(json_string_value(json_array_get(merges, 4)), "\xc4\xa0 hello");
    cr_assert_null(json_object_get(meta, "tokenizer.ggml.scores"), "scores are for llama only");
    cr_assert_eq(meta_int(meta, "tokenizer.ggml.eos_token_id"), 261);
    cr_assert_null(json_object_get(meta, "tokenizer.ggml.bos_token_id"));
    cr_assert(json_is_false(json_object_get(meta, "tokenizer.ggml.add_bos_token")));
    cr_assert(json_is_false(json_object_get(meta, "tokenizer.ggml.add_eos_token")));
    cr_assert(json_is_false(json_object_get(meta, "rocmforge.tokenizer.ignore_merges")));
    cr_assert_str_eq(json_string_value(json_object_get(meta, "tokenizer.chat_template")), "{{ x }}");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "tokenizer.chat_template.tool_use")), "T");
    json_decref(meta);
}

Test(cli, vocab_import_reads_array_merges)
{
    char tok[512], gguf[512], args[2048];
    snprintf(tok, sizeof tok, "%s/cli_%d_arr.tokenizer.json", RF_TMPDIR, (int)getpid());
    snprintf(gguf, sizeof gguf, "%s/cli_%d_arr.gguf", RF_TMPDIR, (int)getpid());
    write_json(tok, byte_level_tokenizer(NULL, true));
    snprintf(args, sizeof args, "vocab import -q '%s' '%s'", tok, gguf);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_eq(r.err[0], '\0', "-q prints nothing: %s", r.err);
    rf_test_result_free(&r);
    json_t *meta = inspect_metadata(gguf);
    json_t *merges = meta_array(meta, "tokenizer.ggml.merges");
    cr_assert_str_eq(json_string_value(json_array_get(merges, 2)), "he ll");
    json_decref(meta);
}

Test(cli, vocab_import_spm_scores_types_and_prefix)
{
    char tok[512], cfg[512], gguf[512], args[2048];
    snprintf(tok, sizeof tok, "%s/cli_%d_spm.tokenizer.json", RF_TMPDIR, (int)getpid());
    snprintf(cfg, sizeof cfg, "%s/cli_%d_spm.config.json", RF_TMPDIR, (int)getpid());
    snprintf(gguf, sizeof gguf, "%s/cli_%d_spm.gguf", RF_TMPDIR, (int)getpid());
    write_json(tok, spm_tokenizer());
    write_json(cfg, json_pack("{s:{s:s, s:s}, s:s, s:s, s:b, s:b}", "bos_token", "__type",
                              "AddedToken", "content", "<s>", "eos_token", "</s>", "unk_token",
                              "<unk>", "add_bos_token", 1, "add_eos_token", 0));
    snprintf(args, sizeof args, "vocab import --arch llama --name tiny-spm '%s' '%s' '%s'", tok,
             cfg, gguf);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    rf_test_result_free(&r);

    json_t *meta = inspect_metadata(gguf);
    cr_assert_str_eq(json_string_value(json_object_get(meta, "general.architecture")), "llama");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "general.name")), "tiny-spm");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "tokenizer.ggml.model")), "llama");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "tokenizer.ggml.pre")), "default");
    json_t *types = meta_array(meta, "tokenizer.ggml.token_type");
    json_t *scores = meta_array(meta, "tokenizer.ggml.scores");
    cr_assert_eq(json_integer_value(json_array_get(types, 0)), 2, "<unk> is unknown");
    cr_assert_eq(json_integer_value(json_array_get(types, 1)), 3, "<s> is control");
    cr_assert_eq(json_integer_value(json_array_get(types, 3)), 6, "<0x00> is a byte");
    cr_assert_eq(json_integer_value(json_array_get(types, 258)), 6, "<0xFF> is a byte");
    cr_assert_eq(json_integer_value(json_array_get(types, 259)), 1, "▁ is normal");
    /* score = -(rank of the merge that makes the token); pieces no merge
     * makes get -(number of merges); the others 0 */
    const struct {
        int id;
        double score;
    } want[] = {{264, 0}, {265, -1}, {266, -2}, {267, -3}, {268, -4}, {269, -5},
                {260, -6}, {259, -6}, {0, 0}, {1, 0}, {3, 0}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_assert_float_eq(json_number_value(json_array_get(scores, want[i].id)), want[i].score,
                           1e-9, "score of id %d", want[i].id);
    cr_assert_eq(meta_int(meta, "tokenizer.ggml.bos_token_id"), 1);
    cr_assert_eq(meta_int(meta, "tokenizer.ggml.eos_token_id"), 2);
    cr_assert_eq(meta_int(meta, "tokenizer.ggml.unknown_token_id"), 0);
    cr_assert(json_is_true(json_object_get(meta, "tokenizer.ggml.add_bos_token")));
    cr_assert(json_is_true(json_object_get(meta, "tokenizer.ggml.add_space_prefix")));
    json_decref(meta);

    snprintf(args, sizeof args, "tokenize -m '%s'", gguf);
    r = run_cli_input(args, "hello", 5);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "1 269\n", "BOS, then ▁hello");
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "detokenize -m '%s' --skip-special", gguf);
    r = run_cli_input(args, "1 269", 5);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "hello", "the space prefix is dropped");
    rf_test_result_free(&r);
    /* é is not in the vocabulary: byte fallback, and back */
    snprintf(args, sizeof args, "tokenize --no-bos -m '%s' | '%s' detokenize -m '%s'", gguf, RF_BIN,
             gguf);
    r = run_cli_input(args, "h\xc3\xa9 hello", 9);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "h\xc3\xa9 hello");
    rf_test_result_free(&r);
}

Test(cli, tokenize_and_detokenize_imported_vocab)
{
    const char *gguf = import_byte_level("tok");
    char args[2048];
    snprintf(args, sizeof args, "tokenize --no-bos -m '%s'", gguf);
    result_t r = run_cli_input(args, "hello hello", 11);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "259 260\n");
    rf_test_result_free(&r);

    /* special tokens are text unless --special */
    r = run_cli_input(args, "hello<|end|>", 12);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "259 60 124 101 110 100 124 62\n");
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "tokenize --special -m '%s'", gguf);
    r = run_cli_input(args, "hello<|end|>", 12);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "259 261\n");
    rf_test_result_free(&r);

    snprintf(args, sizeof args, "tokenize --json --no-bos -m '%s'", gguf);
    r = run_cli_input(args, "hello hello", 11);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", r.out, jerr.text);
    cr_assert_eq(json_integer_value(json_object_get(root, "n_tokens")), 2);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(root, "pieces"), 1)),
                     "\xc4\xa0hello");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(root, "text"), 1)), " hello");
    json_decref(root);

    /* detokenize takes the --json object, a JSON array, or a plain list */
    char json_out[1024];
    snprintf(json_out, sizeof json_out, "%s", r.out);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "detokenize -m '%s'", gguf);
    const char *inputs[] = {json_out, "[259, 260]", "259,260", " 259\n260\n"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        r = run_cli_input(args, inputs[i], strlen(inputs[i]));
        cr_assert_eq(r.status, 0, "input %zu: %s", i, r.err);
        cr_assert_str_eq(r.out, "hello hello", "input %zu", i);
        rf_test_result_free(&r);
    }
    r = run_cli_input(args, "259 261", 7);
    cr_assert_str_eq(r.out, "hello<|end|>");
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "detokenize --skip-special -m '%s'", gguf);
    r = run_cli_input(args, "259 261", 7);
    cr_assert_str_eq(r.out, "hello");
    rf_test_result_free(&r);

    /* bytes in, the same bytes out: UTF-8 the merges do not cover, emoji,
     * a newline at the end */
    const char text[] = "h\xc3\xa9llo \xf0\x9f\x98\x80 hello\n";
    snprintf(args, sizeof args, "tokenize --no-bos -m '%s' | '%s' detokenize -m '%s'", gguf, RF_BIN,
             gguf);
    r = run_cli_input(args, text, sizeof text - 1);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, text);
    rf_test_result_free(&r);
}

Test(cli, tokenize_synth_model_round_trip)
{
    char args[2048];
    const char *path = model_path("tok_tiny.gguf");
    snprintf(args, sizeof args, "synth --shape tiny -q -o '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    rf_test_result_free(&r);
    const char text[] = "The quick brown fox, 12345 \xe2\x80\x94 caf\xc3\xa9!\n";
    snprintf(args, sizeof args, "tokenize --no-bos -m '%s' | '%s' detokenize -m '%s'", path, RF_BIN,
             path);
    r = run_cli_input(args, text, sizeof text - 1);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, text);
    rf_test_result_free(&r);
    /* with BOS (the synthetic vocabulary adds it) the first id is BOS */
    snprintf(args, sizeof args, "tokenize -m '%s'", path);
    r = run_cli_input(args, "", 0);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_neq(r.out[0], '\n', "BOS is printed for empty text: '%s'", r.out);
    rf_test_result_free(&r);
}

Test(cli, tokenize_rejects_bad_usage_and_ids)
{
    result_t r = run_cli("tokenize");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "-m"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("tokenize -m /nonexistent/v.gguf");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/v.gguf"), "%s", r.err);
    rf_test_result_free(&r);

    const char *gguf = import_byte_level("bad");
    char args[2048];
    snprintf(args, sizeof args, "detokenize -m '%s'", gguf);
    r = run_cli_input(args, "259 abc", 7);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "'abc'") && strstr(r.err, "id 2"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli_input(args, "259 99999", 9);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "99999") && strstr(r.err, "263 tokens"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli_input(args, "[259, \"x\"]", 10);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "id 2"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli_input(args, "[259,", 5);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "invalid JSON"), "%s", r.err);
    rf_test_result_free(&r);
}

/* Every failure: exit 1 (2 for usage), one line on stderr naming the file. */
static void expect_import_error(const char *tok_path, const char *cfg_path, const char *needle1,
                                const char *needle2)
{
    char args[2048];
    snprintf(args, sizeof args, "vocab import '%s' %s%s%s '%s'", tok_path, cfg_path ? "'" : "",
             cfg_path ? cfg_path : "", cfg_path ? "'" : "", model_path("never.gguf"));
    result_t r = run_cli(args);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect_eq(count_lines(r.err), 1, "%s", r.err);
    cr_expect(strstr(r.err, "rocmforge: vocab: ") == r.err, "%s", r.err);
    cr_expect(strstr(r.err, needle1) != NULL, "'%s' not in: %s", needle1, r.err);
    cr_expect(needle2 == NULL || strstr(r.err, needle2) != NULL, "'%s' not in: %s", needle2, r.err);
    rf_test_result_free(&r);
}

Test(cli, vocab_import_bad_json_names_line_and_column)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cli_%d_broken.tokenizer.json", RF_TMPDIR, (int)getpid());
    write_text(path, "{\n  \"model\": {\n    \"type\": \"BPE\",\n    \"vocab\": {\"a\": 0,, \"b\": 1}\n  }\n}\n");
    char where[600];
    snprintf(where, sizeof where, "%s:4:", path);
    expect_import_error(path, NULL, where, "invalid JSON");
}

Test(cli, vocab_import_unknown_regex_is_refused)
{
    char path[512];
    snprintf(path, sizeof path, "%s/cli_%d_regex.tokenizer.json", RF_TMPDIR, (int)getpid());
    write_json(path, byte_level_tokenizer("\\p{L}+|\\p{N}+", false));
    expect_import_error(path, NULL, "\\p{L}+|\\p{N}+", "supported: llama-bpe");
}

Test(cli, vocab_import_rejects_bad_input)
{
    char path[512], cfg[512];
    snprintf(path, sizeof path, "%s/cli_%d_bad.tokenizer.json", RF_TMPDIR, (int)getpid());
    snprintf(cfg, sizeof cfg, "%s/cli_%d_bad.config.json", RF_TMPDIR, (int)getpid());
    expect_import_error("/nonexistent/tokenizer.json", NULL, "/nonexistent/tokenizer.json",
                        "No such file");

    json_t *t = byte_level_tokenizer(NULL, false);
    json_object_set_new(json_object_get(t, "model"), "type", json_string("Unigram"));
    write_json(path, t);
    expect_import_error(path, NULL, "Unigram", "not supported");

    t = byte_level_tokenizer(NULL, false);
    json_array_append_new(json_object_get(json_object_get(t, "model"), "merges"),
                          json_string("hello zz"));
    write_json(path, t);
    expect_import_error(path, NULL, "model.merges[5]", "\"zz\" is not in the vocabulary");

    t = byte_level_tokenizer(NULL, false);
    json_object_set_new(json_object_get(json_object_get(t, "model"), "vocab"), "dup",
                        json_integer(7));
    write_json(path, t);
    expect_import_error(path, NULL, "id 7", "dup");

    t = byte_level_tokenizer(NULL, false);
    json_object_set_new(t, "normalizer", json_pack("{s:s}", "type", "Lowercase"));
    write_json(path, t);
    expect_import_error(path, NULL, "Lowercase", "llama-bpe");

    write_json(path, byte_level_tokenizer(NULL, false));
    write_json(cfg, json_pack("{s:s}", "bos_token", "<nope>"));
    expect_import_error(path, cfg, "bos_token \"<nope>\" is not in the vocabulary", cfg);
    write_json(cfg, json_pack("{s:i}", "add_bos_token", 1));
    expect_import_error(path, cfg, "add_bos_token is a number", "expected true or false");

    char args[2048];
    snprintf(args, sizeof args, "vocab import '%s' '%s'", path, cfg);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 2, "the output would overwrite a JSON input: %s", r.err);
    cr_assert(strstr(r.err, "last argument"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("vocab import only-one.json");
    cr_assert_eq(r.status, 2);
    rf_test_result_free(&r);
    r = run_cli("vocab export x");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "'export'"), "%s", r.err);
    rf_test_result_free(&r);
}

/* ---- chat ---- */

Test(cli, chat_renders_with_named_family_and_refuses_unknown_template)
{
    char args[1024];
    const char *path = model_path("chat_tiny.gguf");
    snprintf(args, sizeof args, "synth --shape tiny --type q8_0 -q -o '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    rf_test_result_free(&r);
    const char *messages = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                           "{\"role\":\"user\",\"content\":\"2+2?\"}]";

    /* The synthetic model has no chat template: the error names the flag. */
    snprintf(args, sizeof args, "chat -m '%s'", path);
    r = run_cli_input(args, messages, strlen(messages));
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "--chat-template"), "%s", r.err);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    rf_test_result_free(&r);

    snprintf(args, sizeof args, "chat --chat-template chatml -m '%s'", path);
    r = run_cli_input(args, messages, strlen(messages));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?"
                            "<|im_end|>\n<|im_start|>assistant\n");
    rf_test_result_free(&r);

    snprintf(args, sizeof args, "chat --chat-template llama3 --no-generation-prompt -m '%s'", path);
    r = run_cli_input(args, messages + 0, strlen(messages));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.out, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                            "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
                            "2+2?<|eot_id|>");
    rf_test_result_free(&r);

    /* --ids parses the special tokens the template wrote: BOS first. */
    snprintf(args, sizeof args, "chat --chat-template llama3 --ids -m '%s'", path);
    r = run_cli_input(args, messages, strlen(messages));
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strncmp(r.out, "507 509 ", 8) == 0, "BOS then <|start_header_id|>: %s", r.out);
    rf_test_result_free(&r);

    snprintf(args, sizeof args, "chat --chat-template vicuna -m '%s'", path);
    r = run_cli_input(args, messages, strlen(messages));
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "vicuna"), "%s", r.err);
    rf_test_result_free(&r);

    snprintf(args, sizeof args, "chat --chat-template chatml -m '%s'", path);
    r = run_cli_input(args, "[{\"role\":\"user\"}]", 17);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "message 0"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli_input(args, "[{\"role\":\"user\", ", 17);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "line 1"), "%s", r.err);
    rf_test_result_free(&r);
}

/* ---- quantize ---- */

#include <math.h>

#include "gguf.h"
#include "quant.h"

static const char *tensor_type_name(const rf_gguf_t *g, const char *name)
{
    const rf_gguf_tensor_t *t = rf_gguf_find_tensor(g, name);
    cr_assert_not_null(t, "tensor %s missing", name);
    return rf_type_name(t->type);
}

static float f32_at(const rf_gguf_tensor_t *t, uint64_t i)
{
    float x;
    memcpy(&x, (const uint8_t *)t->data + 4 * i, 4);
    return x;
}

/* Largest error allowed for element i of a row quantized with type, from the
 * values of its block: half a quantization step, plus the rounding of the
 * fp16 scales (and, for Q4_K, of the 6-bit sub-block scales and mins, which
 * can move a step by up to one part in 63 of the super-block's range). */
static double allowed_error(int type, const rf_gguf_tensor_t *t, uint64_t i)
{
    uint64_t block = rf_type_traits(type)->block_size;
    uint64_t b0 = i / block * block;
    double lo = INFINITY, hi = -INFINITY, amax = 0;
    for (uint64_t j = b0; j < b0 + block; j++) {
        double x = f32_at(t, j);
        lo = fmin(lo, x);
        hi = fmax(hi, x);
        amax = fmax(amax, fabs(x));
    }
    if (type == RF_TYPE_Q8_0)
        return 0.5 * amax / 127 * 1.001 + amax * 128 / 2048.0 + 1e-7;
    /* Q4_K: a 4-bit step over the sub-block range, scales and mins on a 6-bit
     * grid of the super-block range */
    double range = hi - lo;
    return range / 15 + range / 63 + 1e-6;
}

/* Quantize ref (F32) to type, dequantize back with --type f32, and compare
 * every 2-D tensor with the original element by element. Returns the RMS
 * error relative to the RMS of the values, over all converted tensors. */
static double round_trip(const char *ref_path, int type, const char *tag)
{
    char args[2048], q_path[512], back_path[520];
    snprintf(q_path, sizeof q_path, "%s", model_path(tag));
    snprintf(back_path, sizeof back_path, "%s.f32", q_path);
    snprintf(args, sizeof args, "quantize '%s' '%s' --type %s", ref_path, q_path,
             rf_type_name(type));
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "quantize: %s", r.err);
    cr_assert(strstr(r.err, "16 of 21 tensors converted"), "%s", r.err);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "quantize -q --type f32 '%s' '%s'", q_path, back_path);
    r = run_cli(args);
    cr_assert_eq(r.status, 0, "dequantize: %s", r.err);
    cr_assert_str_eq(r.err, "", "--quiet prints nothing");
    rf_test_result_free(&r);

    rf_err_t err = {0};
    rf_gguf_t *ref = NULL, *q = NULL, *back = NULL;
    cr_assert_eq(rf_gguf_open(&ref, ref_path, &err), 0, "%s", err.msg);
    cr_assert_eq(rf_gguf_open(&q, q_path, &err), 0, "%s", err.msg);
    cr_assert_eq(rf_gguf_open(&back, back_path, &err), 0, "%s", err.msg);

    /* metadata: every key copied, general.file_type set to llama.cpp's value */
    uint32_t file_type = 99;
    cr_assert_eq(rf_gguf_get_u32(q, "general.file_type", &file_type), 0);
    cr_assert_eq(file_type, type == RF_TYPE_Q8_0 ? 7u : 14u);
    cr_assert_eq(rf_gguf_get_u32(back, "general.file_type", &file_type), 0);
    cr_assert_eq(file_type, 0u);
    for (uint64_t i = 0; i < rf_gguf_n_kv(ref); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(ref, i);
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)kv->key.len, kv->key.data);
        const rf_gguf_kv_t *copy = rf_gguf_find_kv(q, key);
        cr_assert_not_null(copy, "key %s not copied", key);
        cr_assert_eq(copy->value.type, kv->value.type, "key %s", key);
        if (kv->value.type == RF_GGUF_ARRAY)
            cr_assert_eq(copy->value.v.arr.n, kv->value.v.arr.n, "key %s", key);
    }
    const rf_gguf_value_t *tokens = NULL;
    cr_assert_eq(rf_gguf_get_arr(q, "tokenizer.ggml.tokens", RF_GGUF_STRING, &tokens), 0);
    rf_gguf_str_t tok;
    cr_assert_eq(rf_gguf_arr_str(tokens, 300, &tok), 0);

    cr_assert_eq(rf_gguf_n_tensors(q), rf_gguf_n_tensors(ref));
    cr_assert_eq(rf_gguf_n_tensors(back), rf_gguf_n_tensors(ref));
    double sum_err2 = 0, sum_x2 = 0;
    uint64_t n_changed = 0;
    for (uint64_t ti = 0; ti < rf_gguf_n_tensors(ref); ti++) {
        const rf_gguf_tensor_t *a = rf_gguf_tensor_at(ref, ti);
        const rf_gguf_tensor_t *qt = rf_gguf_tensor_at(q, ti);
        const rf_gguf_tensor_t *b = rf_gguf_tensor_at(back, ti);
        cr_assert(a->name.len == b->name.len && memcmp(a->name.data, b->name.data, a->name.len) == 0);
        cr_assert_eq(b->n_dims, a->n_dims);
        for (int d = 0; d < RF_GGUF_MAX_DIMS; d++) {
            cr_assert_eq(qt->ne[d], a->ne[d], "%.*s dim %d", (int)a->name.len, a->name.data, d);
            cr_assert_eq(b->ne[d], a->ne[d]);
        }
        cr_assert_eq(b->type, RF_TYPE_F32);
        if (a->n_dims == 1) {
            /* norms stay F32, bit for bit */
            cr_assert_eq(qt->type, RF_TYPE_F32);
            cr_assert_eq(memcmp(a->data, qt->data, a->n_bytes), 0);
            continue;
        }
        cr_assert_eq(qt->type, type, "%.*s is %s", (int)a->name.len, a->name.data,
                     rf_type_name(qt->type));
        uint64_t row_bytes = 0;
        cr_assert_eq(rf_type_row_bytes(type, a->n_elements, &row_bytes), 0);
        cr_assert_eq(qt->n_bytes, row_bytes);
        for (uint64_t i = 0; i < a->n_elements; i++) {
            double x = f32_at(a, i), y = f32_at(b, i), e = fabs(x - y);
            cr_assert(e <= allowed_error(type, a, i),
                      "%.*s element %llu: %g came back as %g (%s)", (int)a->name.len,
                      a->name.data, (unsigned long long)i, x, y, rf_type_name(type));
            sum_err2 += e * e;
            sum_x2 += x * x;
            n_changed += x != y;
        }
    }
    cr_assert_gt(n_changed, 0, "%s changed no value: nothing was quantized", rf_type_name(type));
    rf_gguf_close(ref);
    rf_gguf_close(q);
    rf_gguf_close(back);
    return sqrt(sum_err2 / sum_x2);
}

Test(cli, quantize_round_trip_within_type_error, .timeout = 120)
{
    char args[1024];
    const char *path = model_path("q_ref.gguf");
    char ref_path[512];
    snprintf(ref_path, sizeof ref_path, "%s", path);
    snprintf(args, sizeof args, "synth --shape tiny --type f32 --seed 7 -q -o '%s'", ref_path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    rf_test_result_free(&r);

    double rel_q8 = round_trip(ref_path, RF_TYPE_Q8_0, "q_q8_0.gguf");
    double rel_q4 = round_trip(ref_path, RF_TYPE_Q4_K, "q_q4_k.gguf");
    /* 8 bits: well under 1 % RMS; 4 bits: a few percent, and clearly worse */
    cr_assert_lt(rel_q8, 0.01, "Q8_0 relative RMS error %g", rel_q8);
    cr_assert_lt(rel_q4, 0.12, "Q4_K relative RMS error %g", rel_q4);
    cr_assert_gt(rel_q4, 2 * rel_q8, "Q4_K %g vs Q8_0 %g", rel_q4, rel_q8);
}

/* A file the synth command would never write: odd row lengths and an F16
 * norm, to check the fallbacks the CLI reference promises. */
static void write_odd_model(const char *path)
{
    rf_gguf_writer_t *w = NULL;
    cr_assert_eq(rf_gguf_writer_open(&w), 0);
    cr_assert_eq(rf_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    cr_assert_eq(rf_gguf_writer_set_u32(w, "general.file_type", 1), 0);
    static float wide[256 * 2], narrow[96 * 4];
    static rf_fp16_t norm[64];
    for (int i = 0; i < 256 * 2; i++)
        wide[i] = sinf((float)i);
    for (int i = 0; i < 96 * 4; i++)
        narrow[i] = cosf((float)i);
    for (int i = 0; i < 64; i++)
        norm[i] = rf_fp32_to_fp16(1.0f + (float)i / 64);
    uint64_t ne_wide[] = {256, 2}, ne_narrow[] = {96, 4}, ne_norm[] = {64};
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "wide.weight", RF_TYPE_F32, 2, ne_wide, wide), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "narrow.weight", RF_TYPE_F32, 2, ne_narrow, narrow), 0);
    cr_assert_eq(rf_gguf_writer_add_tensor(w, "norm.weight", RF_TYPE_F16, 1, ne_norm, norm), 0);
    rf_err_t err = {0};
    cr_assert_eq(rf_gguf_writer_write(w, path, NULL, NULL, &err), 0, "%s", err.msg);
    rf_gguf_writer_close(w);
}

Test(cli, quantize_keeps_tensors_that_do_not_fit_and_names_them)
{
    char args[2048], in_path[512], out_path[512];
    snprintf(in_path, sizeof in_path, "%s", model_path("odd.gguf"));
    snprintf(out_path, sizeof out_path, "%s", model_path("odd_q4_k.gguf"));
    write_odd_model(in_path);

    snprintf(args, sizeof args, "quantize '%s' '%s' --type q4_k", in_path, out_path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.err, "note: tensor 'narrow.weight' keeps type F32"), "%s", r.err);
    cr_assert(strstr(r.err, "1 kept their type"), "%s", r.err);
    rf_test_result_free(&r);
    rf_err_t err = {0};
    rf_gguf_t *g = NULL;
    cr_assert_eq(rf_gguf_open(&g, out_path, &err), 0, "%s", err.msg);
    cr_assert_str_eq(tensor_type_name(g, "wide.weight"), "Q4_K");
    cr_assert_str_eq(tensor_type_name(g, "narrow.weight"), "F32");
    cr_assert_str_eq(tensor_type_name(g, "norm.weight"), "F32", "1-D tensors become F32");
    const rf_gguf_tensor_t *norm = rf_gguf_find_tensor(g, "norm.weight");
    cr_assert_float_eq(f32_at(norm, 63), 1.0f + 63.0f / 64, 1e-3);
    rf_gguf_close(g);

    /* --keep-1d leaves the F16 norm alone; Q8_0's 32-block fits all rows */
    snprintf(args, sizeof args, "quantize --keep-1d -t q8_0 '%s' '%s'", in_path, out_path);
    r = run_cli(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_null(strstr(r.err, "note:"), "%s", r.err);
    rf_test_result_free(&r);
    cr_assert_eq(rf_gguf_open(&g, out_path, &err), 0, "%s", err.msg);
    cr_assert_str_eq(tensor_type_name(g, "narrow.weight"), "Q8_0");
    cr_assert_str_eq(tensor_type_name(g, "norm.weight"), "F16");
    rf_gguf_close(g);

    /* --strict makes the misfit an error that names the tensor; no output */
    snprintf(out_path, sizeof out_path, "%s", model_path("odd_strict.gguf"));
    snprintf(args, sizeof args, "quantize --strict -t q4_k '%s' '%s'", in_path, out_path);
    r = run_cli(args);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "'narrow.weight'") && strstr(r.err, "96"), "%s", r.err);
    cr_assert_neq(access(out_path, F_OK), 0, "no output file after an error");
    rf_test_result_free(&r);
}

Test(cli, quantize_rejects_bad_usage)
{
    result_t r = run_cli("quantize a.gguf b.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "--type"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("quantize a.gguf b.gguf --type q9_9");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "q9_9"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("quantize /nonexistent/in.gguf /tmp/never.gguf --type q8_0");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/in.gguf"), "%s", r.err);
    rf_test_result_free(&r);
    r = run_cli("help quantize");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--keep-1d") && strstr(r.out, "Q4_K"), "%s", r.out);
    rf_test_result_free(&r);
}

/* ---- generate, score ---- */

static const char *tiny_model(const char *name, const char *type)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/cli_%d_%s", RF_TMPDIR, (int)getpid(), name);
    char args[1024];
    snprintf(args, sizeof args, "synth --shape tiny --type %s --seed 9 -q -o '%s'", type, path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    rf_test_result_free(&r);
    return path;
}

Test(cli, generate_is_deterministic_per_seed_and_json_is_complete)
{
    const char *m = tiny_model("gen.gguf", "q8_0");
    char args[1024];
    snprintf(args, sizeof args, "generate -m '%s' -p 'abc' -n 12 --temp 0.9 --seed 5 "
             "--ignore-eos --json --top-logprobs 3", m);
    result_t a = run_cli(args), b = run_cli(args);
    cr_assert_eq(a.status, 0, "%s", a.err);
    /* the token lines, not the summary (it holds timings) */
    const char *a_sum = strrchr(a.out, '{'), *b_sum = strrchr(b.out, '{');
    cr_assert(a_sum && b_sum && a_sum - a.out == b_sum - b.out &&
                  memcmp(a.out, b.out, (size_t)(a_sum - a.out)) == 0,
              "same seed, same tokens:\n%s\n%s", a.out, b.out);
    rf_test_result_free(&b);
    /* 12 token objects, then the summary */
    int lines = count_lines(a.out);
    cr_assert_eq(lines, 13, "%s", a.out);
    const char *p = a.out;
    for (int i = 0; i < 12; i++) {
        const char *nl = strchr(p, '\n');
        json_error_t jerr;
        json_t *tok = json_loadb(p, (size_t)(nl - p), 0, &jerr);
        cr_assert_not_null(tok, "line %d: %s", i, jerr.text);
        double lp = json_real_value(json_object_get(tok, "logprob"));
        cr_assert(lp <= 0.0, "a log-probability is <= 0: %g", lp);
        json_t *top = json_object_get(tok, "top_logprobs");
        cr_assert_eq(json_array_size(top), 3);
        double t0 = json_real_value(json_object_get(json_array_get(top, 0), "logprob"));
        double t2 = json_real_value(json_object_get(json_array_get(top, 2), "logprob"));
        cr_assert(t0 >= t2, "alternatives descend");
        json_decref(tok);
        p = nl + 1;
    }
    json_error_t jerr;
    json_t *sum = json_loads(p, 0, &jerr);
    cr_assert_not_null(sum, "%s", jerr.text);
    cr_assert_str_eq(json_string_value(json_object_get(sum, "finish_reason")), "length");
    cr_assert_eq(json_integer_value(json_object_get(sum, "completion_tokens")), 12);
    json_decref(sum);
    rf_test_result_free(&a);

    snprintf(args, sizeof args, "generate -m '%s' -p 'abc' -n 12 --temp 0.9 --seed 6 "
             "--ignore-eos --json", m);
    result_t c = run_cli(args);
    snprintf(args, sizeof args, "generate -m '%s' -p 'abc' -n 12 --temp 0.9 --seed 5 "
             "--ignore-eos --json", m);
    result_t d = run_cli(args);
    const char *c_end = strstr(c.out, "\"text\""), *d_end = strstr(d.out, "\"text\"");
    cr_assert(c_end && d_end);
    cr_assert(c_end - c.out != d_end - d.out ||
                  memcmp(c.out, d.out, (size_t)(c_end - c.out)) != 0,
              "another seed samples other tokens");
    rf_test_result_free(&c);
    rf_test_result_free(&d);
}

Test(cli, generate_greedy_prompt_ids_and_errors)
{
    const char *m = tiny_model("greedy.gguf", "f16");
    char args[1024];
    snprintf(args, sizeof args, "generate -m '%s' --prompt-ids 507,65,66 -n 8 --ignore-eos", m);
    result_t a = run_cli(args);
    cr_assert_eq(a.status, 0, "%s", a.err);
    cr_assert(strstr(a.err, "3 prompt tokens"), "%s", a.err);
    cr_assert(strstr(a.err, "8 generated"), "%s", a.err);
    rf_test_result_free(&a);
    snprintf(args, sizeof args, "generate -m '%s' --prompt-ids 507,9999 -n 2", m);
    a = run_cli(args);
    cr_assert_eq(a.status, 2);
    cr_assert(strstr(a.err, "9999"), "%s", a.err);
    rf_test_result_free(&a);
    snprintf(args, sizeof args, "generate -m '%s' -p hi --top-p 1.5", m);
    a = run_cli(args);
    cr_assert_neq(a.status, 0);
    cr_assert(strstr(a.err, "top_p") || strstr(a.err, "top-p"), "%s", a.err);
    rf_test_result_free(&a);
    snprintf(args, sizeof args, "generate -m '%s' -p hi --chat", m);
    a = run_cli(args);
    cr_assert_eq(a.status, 1);
    cr_assert(strstr(a.err, "--chat-template"), "%s", a.err);
    rf_test_result_free(&a);
}

Test(cli, score_sums_per_token_logprobs)
{
    const char *m = tiny_model("score.gguf", "f32");
    char args[1024];
    snprintf(args, sizeof args, "score -m '%s' --context 'The sky is' --continuation ' blue today'", m);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "%s", r.err);
    json_error_t jerr;
    json_t *root = json_loads(r.out, 0, &jerr);
    cr_assert_not_null(root, "%s: %s", r.out, jerr.text);
    json_t *lps = json_object_get(root, "logprobs");
    json_t *ids = json_object_get(root, "continuation_tokens");
    cr_assert_gt(json_array_size(lps), 0);
    cr_assert_eq(json_array_size(lps), json_array_size(ids));
    double sum = 0;
    for (size_t i = 0; i < json_array_size(lps); i++) {
        double lp = json_real_value(json_array_get(lps, i));
        cr_assert(lp <= 0.0 && lp > -100.0, "%g", lp);
        sum += lp;
    }
    double reported = json_real_value(json_object_get(root, "sum_logprob"));
    cr_assert(fabs(sum - reported) < 1e-6 * (1 + fabs(sum)), "%g vs %g", sum, reported);
    cr_assert(json_is_boolean(json_object_get(root, "is_greedy")));
    json_decref(root);
    rf_test_result_free(&r);
    snprintf(args, sizeof args, "score -m '%s' --context 'x'", m);
    r = run_cli(args);
    cr_assert_eq(r.status, 2);
    rf_test_result_free(&r);
}
