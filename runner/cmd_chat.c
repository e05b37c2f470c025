/* cmd_chat.c - `rocmforge chat`: render chat messages with a model's template
 *
 * Reads a JSON array of {"role","content"} messages (or an object with a
 * "messages" array, as a chat job line has) on stdin and prints the prompt
 * text the model would be given, or its token ids with --ids. The family
 * comes from the GGUF's tokenizer.chat_template unless --chat-template names
 * one; a template rocmforge does not recognise is an error that says so.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge chat -m MODEL.gguf [options] < messages.json\n"
            "\n"
            "Render chat messages into the prompt a model expects. stdin holds a JSON\n"
            "array of {\"role\": \"system\"|\"user\"|\"assistant\", \"content\": \"...\"}, or an\n"
            "object with such a \"messages\" array.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE          model or vocab-only GGUF (template and special tokens)\n"
            "      --chat-template NAME  use this family instead of detecting it from\n"
            "                            tokenizer.chat_template: llama3, llama2, chatml,\n"
            "                            qwen3, mistral, gemma, phi3\n"
            "      --no-generation-prompt  do not end with the assistant turn's opening\n"
            "      --ids                 print token ids (special tokens parsed) instead of text\n"
            "  -h, --help                show this help\n");
}

static const char *token_text(const rf_tokenizer_t *tok, int32_t id)
{
    const char *piece = id >= 0 ? rf_tokenizer_piece(tok, id) : NULL;
    return piece != NULL ? piece : "";
}

int rf__cmd_chat(int argc, char **argv)
{
    const char *model = NULL, *family_name = NULL;
    bool generation_prompt = true, ids = false;
    enum { OPT_TEMPLATE = 256, OPT_NO_GEN, OPT_IDS };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"chat-template", required_argument, NULL, OPT_TEMPLATE},
        {"no-generation-prompt", no_argument, NULL, OPT_NO_GEN},
        {"ids", no_argument, NULL, OPT_IDS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_TEMPLATE: family_name = optarg; break;
        case OPT_NO_GEN: generation_prompt = false; break;
        case OPT_IDS: ids = true; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("chat", "unknown or incomplete option '%s'; see 'rocmforge chat --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (model == NULL || optind != argc) {
        rf__cli_error("chat", "needs -m MODEL.gguf and the messages on stdin; see 'rocmforge chat --help'");
        return RF_EXIT_USAGE;
    }
    rf_chat_family_t family = RF_CHAT_UNKNOWN;
    if (family_name != NULL) {
        family = rf_chat_family_from_name(family_name);
        if (family == RF_CHAT_UNKNOWN) {
            rf__cli_error("chat", "unknown --chat-template '%s'; use llama3, llama2, chatml, "
                          "qwen3, mistral, gemma or phi3", family_name);
            return RF_EXIT_USAGE;
        }
    }

    json_error_t jerr;
    json_t *root = json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        rf__cli_error("chat", "stdin: line %d, column %d: %s", jerr.line, jerr.column, jerr.text);
        return RF_EXIT_FAIL;
    }
    json_t *list = json_is_object(root) ? json_object_get(root, "messages") : root;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        rf__cli_error("chat", "stdin: expected a non-empty JSON array of messages (or an object "
                      "with a \"messages\" array)");
        json_decref(root);
        return RF_EXIT_FAIL;
    }
    size_t n = json_array_size(list);
    rf_chat_message_t *messages = calloc(n, sizeof *messages);
    if (messages == NULL) {
        json_decref(root);
        rf__cli_error("chat", "out of memory");
        return RF_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(list, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (role == NULL || content == NULL) {
            rf__cli_error("chat", "stdin: message %zu needs string fields \"role\" and \"content\"", i);
            free(messages);
            json_decref(root);
            return RF_EXIT_FAIL;
        }
        messages[i].role = role;
        messages[i].content = content;
    }

    int status = RF_EXIT_FAIL;
    rf_err_t err = {0};
    rf_gguf_t *g = NULL;
    rf_tokenizer_t *tok = NULL;
    rf_bytes_t text = {0};
    rf_tokens_t tokens = {0};
    int rc = rf_gguf_open(&g, model, &err);
    if (rc == 0)
        rc = rf_tokenizer_open(&tok, g, &err);
    if (rc < 0) {
        rf__cli_error("chat", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    rf_gguf_str_t tmpl = {0, NULL};
    char *tmpl_text = NULL;
    if (rf_gguf_get_str(g, "tokenizer.chat_template", &tmpl) == 0) {
        tmpl_text = strndup(tmpl.data, (size_t)tmpl.len);
        if (tmpl_text == NULL) {
            rf__cli_error("chat", "out of memory");
            goto done;
        }
    }
    if (family == RF_CHAT_UNKNOWN) {
        family = tmpl_text ? rf_chat_detect(tmpl_text) : RF_CHAT_UNKNOWN;
        if (family == RF_CHAT_UNKNOWN) {
            rf__cli_error("chat", "%s: %s; name the format with --chat-template (llama3, llama2, "
                          "chatml, qwen3, mistral, gemma, phi3)", model,
                          tmpl_text ? "tokenizer.chat_template is not a template rocmforge "
                                      "recognises"
                                    : "the model has no tokenizer.chat_template");
            free(tmpl_text);
            goto done;
        }
    }
    /* Some templates (Meta-Llama-3's first release) always open the
     * assistant turn; follow the template rather than the flag. */
    if (tmpl_text != NULL && family_name == NULL && rf_chat_template_forces_prompt(tmpl_text))
        generation_prompt = true;
    free(tmpl_text);
    rf_chat_options_t copt = {
        .add_generation_prompt = generation_prompt,
        .bos_token = token_text(tok, rf_tokenizer_bos(tok)),
        .eos_token = token_text(tok, rf_tokenizer_eos(tok)),
    };
    rc = rf_chat_render(family, messages, n, &copt, &text, &err);
    if (rc < 0) {
        rf__cli_error("chat", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    if (ids) {
        /* The rendered text already holds BOS where the template writes it. */
        rf_tokenize_options_t topt = {.add_special = false, .parse_special = true};
        rc = rf_tokenizer_encode(tok, text.data, text.len, &topt, &tokens);
        if (rc < 0) {
            rf__cli_error("chat", "tokenizing the rendered prompt: %s", rf_strerror(rc));
            goto done;
        }
        for (size_t i = 0; i < tokens.n; i++)
            printf("%s%d", i ? " " : "", tokens.ids[i]);
        putchar('\n');
    } else {
        fwrite(text.data, 1, text.len, stdout);
    }
    status = fflush(stdout) == 0 ? RF_EXIT_OK : RF_EXIT_FAIL;
done:
    rf_tokens_free(&tokens);
    rf_bytes_free(&text);
    rf_tokenizer_close(tok);
    rf_gguf_close(g);
    free(messages);
    json_decref(root);
    return status;
}
