/* cmd_tokenize.c - `rocmforge tokenize` and `rocmforge detokenize`: text to ids and back
 *
 * Both read standard input whole and use the tokenizer of a model or
 * vocab-only GGUF (-m). tokenize takes the input bytes exactly as they are
 * (a trailing newline is text too) and prints the ids on one line, or with
 * --json one object with the ids and each token's vocabulary piece and text.
 * detokenize reads ids separated by whitespace or commas, a JSON array, or
 * the object tokenize --json prints, and writes the decoded bytes exactly,
 * with no newline added, so `tokenize --no-bos | detokenize` gives the input
 * back wherever the tokenizer round-trips.
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

/* ---- helpers ---- */

static int read_stdin(rf_bytes_t *out)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if (rf_bytes_append(out, chunk, n) < 0)
            return -ENOMEM;
    return ferror(stdin) ? -EIO : 0;
}

/* ---- tokenize ---- */

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge tokenize -m MODEL.gguf [--special] [--no-bos] [--json] < TEXT\n"
            "\n"
            "Print the token ids of the text on standard input, space-separated on one\n"
            "line. The input is taken byte for byte: a trailing newline is tokenized too\n"
            "(use printf or echo -n to leave it out). MODEL.gguf is a model or a vocab-only\n"
            "GGUF ('rocmforge vocab import' writes one from a tokenizer.json).\n"
            "\n"
            "options:\n"
            "  -m, --model FILE    the GGUF whose tokenizer to use\n"
            "      --special       recognise special tokens written in the text\n"
            "                      (<|im_start|>, <s>, ...); without it they are plain text\n"
            "      --no-bos        add no BOS/EOS (by default they are added as the\n"
            "                      vocabulary's add_bos_token/add_eos_token say)\n"
            "      --json          print {\"n_tokens\", \"ids\", \"pieces\", \"text\"}: pieces are\n"
            "                      the vocabulary strings, text each token's bytes as text\n"
            "                      (a byte that is not UTF-8 on its own shows as U+FFFD)\n"
            "  -h, --help          show this help\n");
}

static int print_json(const rf_tokenizer_t *tok, const rf_tokens_t *ids)
{
    json_t *root = json_object();
    json_t *jids = json_array(), *pieces = json_array(), *texts = json_array();
    rf_bytes_t bytes = {0};
    int rc = -ENOMEM;
    if (root == NULL || jids == NULL || pieces == NULL || texts == NULL)
        goto out;
    for (size_t i = 0; i < ids->n; i++) {
        const char *piece = rf_tokenizer_piece(tok, ids->ids[i]);
        bytes.len = 0;
        if (rf_tokenizer_token_bytes(tok, ids->ids[i], &bytes) < 0)
            goto out;
        if (json_array_append_new(jids, json_integer(ids->ids[i])) < 0 ||
            json_array_append_new(pieces, rf__json_from_bytes(piece ? piece : "", piece ? strlen(piece) : 0)) < 0 ||
            json_array_append_new(texts, rf__json_from_bytes(bytes.data ? bytes.data : "", bytes.len)) < 0)
            goto out;
    }
    if (json_object_set_new(root, "n_tokens", json_integer((json_int_t)ids->n)) < 0 ||
        json_object_set(root, "ids", jids) < 0 || json_object_set(root, "pieces", pieces) < 0 ||
        json_object_set(root, "text", texts) < 0)
        goto out;
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        puts(s);
        free(s);
        rc = 0;
    }
out:
    rf_bytes_free(&bytes);
    json_decref(jids);
    json_decref(pieces);
    json_decref(texts);
    json_decref(root);
    return rc;
}

int rf__cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL;
    bool json = false;
    rf_tokenize_options_t opt = {.add_special = true, .parse_special = false};
    enum { OPT_SPECIAL = 256, OPT_NO_BOS, OPT_JSON };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"special", no_argument, NULL, OPT_SPECIAL},
        {"no-bos", no_argument, NULL, OPT_NO_BOS},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_SPECIAL: opt.parse_special = true; break;
        case OPT_NO_BOS: opt.add_special = false; break;
        case OPT_JSON: json = true; break;
        case 'h': tokenize_usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("tokenize", "unknown or incomplete option '%s'; see 'rocmforge tokenize --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        rf__cli_error("tokenize", "unexpected argument '%s': the text comes on standard input; see "
                      "'rocmforge tokenize --help'", argv[optind]);
        return RF_EXIT_USAGE;
    }
    if (model == NULL) {
        rf__cli_error("tokenize", "-m MODEL.gguf is required; see 'rocmforge tokenize --help'");
        return RF_EXIT_USAGE;
    }
    rf_tokenizer_t *tok = NULL;
    if (rf__cli_open_tokenizer("tokenize", model, &tok) < 0)
        return RF_EXIT_FAIL;
    rf_bytes_t text = {0};
    rf_tokens_t ids = {0};
    int status = RF_EXIT_FAIL;
    int rc = read_stdin(&text);
    if (rc < 0) {
        rf__cli_error("tokenize", "reading standard input: %s", rf_strerror(rc));
        goto out;
    }
    rc = rf_tokenizer_encode(tok, text.data ? text.data : "", text.len, &opt, &ids);
    if (rc < 0) {
        rf__cli_error("tokenize", "encoding %zu bytes: %s", text.len, rf_strerror(rc));
        goto out;
    }
    if (json) {
        if ((rc = print_json(tok, &ids)) < 0) {
            rf__cli_error("tokenize", "writing JSON: %s", rf_strerror(rc));
            goto out;
        }
    } else {
        for (size_t i = 0; i < ids.n; i++)
            printf(i ? " %d" : "%d", (int)ids.ids[i]);
        putchar('\n');
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        rf__cli_error("tokenize", "writing standard output: %s", strerror(errno));
        goto out;
    }
    status = RF_EXIT_OK;
out:
    rf_tokens_free(&ids);
    rf_bytes_free(&text);
    rf_tokenizer_close(tok);
    return status;
}

/* ---- detokenize ---- */

static void detokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge detokenize -m MODEL.gguf [--skip-special] < IDS\n"
            "\n"
            "Print the text of the token ids on standard input. The ids may be separated by\n"
            "whitespace or commas, or be a JSON array, or the object 'rocmforge tokenize\n"
            "--json' prints. The bytes are written exactly, with no newline added. For a\n"
            "SentencePiece (llama) vocabulary the space the tokenizer put before the first\n"
            "word is dropped, as Hugging Face's decoder does.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE    the GGUF whose tokenizer to use\n"
            "      --skip-special  leave out control tokens (BOS, EOS, chat markup)\n"
            "  -h, --help          show this help\n");
}

/* Ids from a JSON array, or from the "ids" of an object. */
static int parse_json_ids(const char *text, size_t len, rf_tokens_t *ids)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
    if (root == NULL) {
        rf__cli_error("detokenize", "standard input:%d:%d: invalid JSON: %s", jerr.line, jerr.column,
                      jerr.text);
        return RF_EFORMAT;
    }
    const json_t *arr = json_is_object(root) ? json_object_get(root, "ids") : root;
    int rc = 0;
    if (!json_is_array(arr)) {
        rf__cli_error("detokenize", "standard input: expected a JSON array of ids or an object with "
                      "\"ids\"");
        rc = RF_EFORMAT;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        if (rc < 0)
            break;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX) {
            rf__cli_error("detokenize", "standard input: id %zu is not a token id (a whole number "
                          "from 0)", i + 1);
            rc = RF_EFORMAT;
        } else if (rf_tokens_push(ids, (int32_t)json_integer_value(v)) < 0) {
            rc = -ENOMEM;
        }
    }
    json_decref(root);
    return rc;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Ids separated by whitespace or commas, or JSON (see parse_json_ids). */
static int parse_ids(const char *text, size_t len, rf_tokens_t *ids)
{
    size_t i = 0;
    while (i < len && is_space(text[i]))
        i++;
    if (i < len && (text[i] == '[' || text[i] == '{'))
        return parse_json_ids(text, len, ids);
    for (size_t n = 1;; n++) {
        while (i < len && (is_space(text[i]) || text[i] == ','))
            i++;
        if (i == len)
            return 0;
        size_t start = i;
        int64_t value = 0;
        while (i < len && text[i] >= '0' && text[i] <= '9' && value <= INT32_MAX)
            value = value * 10 + (text[i++] - '0');
        if (i == start || value > INT32_MAX || (i < len && !is_space(text[i]) && text[i] != ',')) {
            size_t end = start;
            while (end < len && end - start < 24 && !is_space(text[end]) && text[end] != ',')
                end++;
            rf__cli_error("detokenize", "standard input: id %zu '%.*s' is not a token id (a whole "
                          "number from 0)", n, (int)(end - start), text + start);
            return RF_EFORMAT;
        }
        if (rf_tokens_push(ids, (int32_t)value) < 0)
            return -ENOMEM;
    }
}

int rf__cmd_detokenize(int argc, char **argv)
{
    const char *model = NULL;
    rf_detokenize_options_t opt = {.skip_special = false, .strip_leading_space = false};
    enum { OPT_SKIP_SPECIAL = 256 };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"skip-special", no_argument, NULL, OPT_SKIP_SPECIAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_SKIP_SPECIAL: opt.skip_special = true; break;
        case 'h': detokenize_usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("detokenize", "unknown or incomplete option '%s'; see 'rocmforge "
                          "detokenize --help'", argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        rf__cli_error("detokenize", "unexpected argument '%s': the ids come on standard input; see "
                      "'rocmforge detokenize --help'", argv[optind]);
        return RF_EXIT_USAGE;
    }
    if (model == NULL) {
        rf__cli_error("detokenize", "-m MODEL.gguf is required; see 'rocmforge detokenize --help'");
        return RF_EXIT_USAGE;
    }
    rf_tokenizer_t *tok = NULL;
    if (rf__cli_open_tokenizer("detokenize", model, &tok) < 0)
        return RF_EXIT_FAIL;
    opt.strip_leading_space = rf_tokenizer_kind(tok) == RF_TOKENIZER_SPM;
    rf_bytes_t input = {0}, text = {0};
    rf_tokens_t ids = {0};
    int status = RF_EXIT_FAIL;
    int rc = read_stdin(&input);
    if (rc < 0) {
        rf__cli_error("detokenize", "reading standard input: %s", rf_strerror(rc));
        goto out;
    }
    if ((rc = parse_ids(input.data ? input.data : "", input.len, &ids)) < 0) {
        if (rc == -ENOMEM)
            rf__cli_error("detokenize", "%s", rf_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < ids.n; i++) {
        if ((uint32_t)ids.ids[i] >= rf_tokenizer_n_vocab(tok)) {
            rf__cli_error("detokenize", "id %d (number %zu) is out of range: %s has %u tokens",
                          (int)ids.ids[i], i + 1, model, rf_tokenizer_n_vocab(tok));
            goto out;
        }
    }
    rc = rf_tokenizer_decode(tok, ids.ids, ids.n, &opt, &text);
    if (rc < 0) {
        rf__cli_error("detokenize", "decoding %zu ids: %s", ids.n, rf_strerror(rc));
        goto out;
    }
    if ((text.len != 0 && fwrite(text.data, 1, text.len, stdout) != text.len) || fflush(stdout) != 0) {
        rf__cli_error("detokenize", "writing standard output: %s", strerror(errno));
        goto out;
    }
    status = RF_EXIT_OK;
out:
    rf_tokens_free(&ids);
    rf_bytes_free(&text);
    rf_bytes_free(&input);
    rf_tokenizer_close(tok);
    return status;
}
