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

typedef struct result {
    int status;     /* exit status, or -1 if killed by a signal */
    char *out, *err;
} result_t;

static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    buf[len] = '\0';
    fclose(f);
    return buf;
}

/* Run the CLI with a shell-quoted argument string, capturing both streams. */
static result_t run_cli(const char *args)
{
    char out[512], err[512], cmd[4096];
    snprintf(out, sizeof out, "%s/cli_%d.out", RF_TMPDIR, (int)getpid());
    snprintf(err, sizeof err, "%s/cli_%d.err", RF_TMPDIR, (int)getpid());
    snprintf(cmd, sizeof cmd, "'%s' %s >'%s' 2>'%s' </dev/null", RF_BIN, args, out, err);
    int raw = system(cmd);
    result_t r = {.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1};
    r.out = slurp_file(out);
    r.err = slurp_file(err);
    return r;
}

static void result_free(result_t *r)
{
    free(r->out);
    free(r->err);
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
    result_free(&r);
    r = run_cli("help inspect");
    cr_assert_eq(r.status, 0);
    cr_assert(strstr(r.out, "--json"), "%s", r.out);
    result_free(&r);
}

Test(cli, unknown_command_is_usage_error)
{
    result_t r = run_cli("frobnicate");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "unknown command 'frobnicate'"), "%s", r.err);
    result_free(&r);
    r = run_cli("");
    cr_assert_eq(r.status, 2);
    result_free(&r);
}

Test(cli, synth_then_inspect_text)
{
    char args[1024];
    const char *path = model_path("tiny.gguf");
    snprintf(args, sizeof args, "synth --shape tiny --type q8_0 --seed 2 -q -o '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    result_free(&r);
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
    result_free(&r);
}

Test(cli, inspect_json_is_complete_and_parses)
{
    char args[1024];
    const char *path = model_path("json.gguf");
    snprintf(args, sizeof args, "synth --shape tiny --type f16 -q -o '%s'", path);
    result_t r = run_cli(args);
    cr_assert_eq(r.status, 0, "synth: %s", r.err);
    result_free(&r);
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
    result_free(&r);
}

Test(cli, inspect_missing_file_names_it)
{
    result_t r = run_cli("inspect /nonexistent/model.gguf");
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "/nonexistent/model.gguf"), "%s", r.err);
    cr_assert_eq(count_lines(r.err), 1, "%s", r.err);
    result_free(&r);
}

Test(cli, synth_rejects_bad_options)
{
    result_t r = run_cli("synth --shape tiny --type q9_9 -o /tmp/never.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "q9_9"), "%s", r.err);
    result_free(&r);
    r = run_cli("synth --shape nope -o /tmp/never.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "nope"), "%s", r.err);
    result_free(&r);
    r = run_cli("synth --shape tiny --type iq2_xxs -o /tmp/never.gguf");
    cr_assert_eq(r.status, 2);
    cr_assert(strstr(r.err, "quantizer"), "%s", r.err);
    result_free(&r);
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
        result_free(&r);
        n_files++;
    }
    closedir(d);
    cr_assert_geq(n_files, 20, "corpus has only %d files", n_files);
}
