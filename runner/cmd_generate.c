/* cmd_generate.c - `rocmforge generate` and `rocmforge score` on the CPU engine
 *
 * generate: tokenize a prompt (optionally rendered with the chat template),
 * evaluate it in chunks, then sample one token per step and stream the text
 * to stdout through the incremental decoder and the stop-string filter, so
 * no partial UTF-8 and no part of a stop string is ever printed. --json
 * prints one object per generated token and a summary instead.
 *
 * score: the log-likelihood of a continuation after a context, per token and
 * summed, and whether the continuation is the greedy one (what evaluation
 * harnesses ask for). Context and continuation are tokenized separately and
 * concatenated, so the continuation's tokens are exactly its own.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat.h"
#include "cli.h"
#include "engine.h"
#include "sampler.h"
#include "tokenizer.h"

#define MAX_STOPS 16
#define PROMPT_CHUNK 256 /* prompt tokens per forward pass */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void generate_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge generate -m MODEL.gguf [-p TEXT | --prompt-ids 1,2,3] [options]\n"
            "\n"
            "Generate a completion on the CPU and stream it to stdout. Without -p or\n"
            "--prompt-ids the prompt is read from stdin.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE         GGUF model\n"
            "  -p, --prompt TEXT        prompt text\n"
            "      --prompt-ids LIST    prompt token ids, comma-separated (no tokenizer)\n"
            "      --chat               render the prompt as a user message with the model's\n"
            "                           chat template (and --system TEXT as the system one)\n"
            "      --chat-template NAME use this chat family instead of the model's template\n"
            "  -n, --max-tokens N       tokens to generate (default 128)\n"
            "      --temp T             temperature (default 0: greedy)\n"
            "      --top-k K            keep the K most likely tokens (0: off)\n"
            "      --top-p P            nucleus sampling (1: off)\n"
            "      --min-p P            drop tokens below P x the top probability (0: off)\n"
            "      --repeat-penalty R   repetition penalty (1: off)\n"
            "      --frequency-penalty F, --presence-penalty P   OpenAI-style penalties\n"
            "      --seed N             sampling seed (default 0)\n"
            "      --stop TEXT          stop before this text (repeatable)\n"
            "      --ignore-eos         keep going past end-of-generation tokens\n"
            "      --json               one JSON object per token, then a summary\n"
            "      --top-logprobs K     alternatives per token in --json (0..20)\n"
            "  -t, --threads N          CPU threads (default: all cores)\n"
            "  -c, --ctx N              context length (default: min(model, 4096))\n"
            "  -h, --help               show this help\n");
}

static int parse_ids(const char *s, rf_tokens_t *out)
{
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 0 || v > INT32_MAX)
            return RF_EUSAGE;
        if (rf_tokens_push(out, (int32_t)v) < 0)
            return -ENOMEM;
        s = end;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return out->n > 0 ? 0 : RF_EUSAGE;
}

static int read_all(FILE *f, rf_bytes_t *out)
{
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (rf_bytes_append(out, chunk, n) < 0)
            return -ENOMEM;
    return ferror(f) ? -EIO : 0;
}

/* Evaluate tokens[0..n) of sequence 0 from position pos0 in chunks; the
 * logits of the last token are then rf_engine_logits(e, *last). */
static int eval_tokens(rf_engine_t *e, const int32_t *tokens, size_t n, uint32_t pos0,
                       uint32_t *last, rf_err_t *err)
{
    int32_t pos[PROMPT_CHUNK], seq[PROMPT_CHUNK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < PROMPT_CHUNK ? n - done : PROMPT_CHUNK;
        for (size_t i = 0; i < k; i++) {
            pos[i] = (int32_t)(pos0 + done + i);
            seq[i] = 0;
        }
        rf_batch_t batch = {.n_tokens = (uint32_t)k, .tokens = tokens + done, .positions = pos,
                            .seq_ids = seq, .logits = NULL};
        int rc = rf_engine_eval(e, &batch, err);
        if (rc < 0)
            return rc;
        *last = (uint32_t)(k - 1);
        done += k;
    }
    return 0;
}

typedef struct gen_options {
    const char *model, *prompt, *prompt_ids, *system, *chat_template;
    bool chat, json, ignore_eos;
    long max_tokens;
    int threads;
    long ctx;
    const char *stops[MAX_STOPS];
    size_t n_stops;
    rf_sampling_params_t sp;
} gen_options_t;

static int render_prompt(const gen_options_t *o, rf_engine_t *e, const rf_bytes_t *user,
                         rf_bytes_t *out, rf_err_t *err)
{
    const rf_tokenizer_t *tok = rf_engine_tokenizer(e);
    rf_chat_family_t family = RF_CHAT_UNKNOWN;
    char *tmpl = NULL;
    rf_gguf_str_t s;
    if (rf_gguf_get_str(rf_engine_model(e)->gguf, "tokenizer.chat_template", &s) == 0)
        tmpl = strndup(s.data, (size_t)s.len);
    if (o->chat_template != NULL) {
        family = rf_chat_family_from_name(o->chat_template);
        if (family == RF_CHAT_UNKNOWN) {
            free(tmpl);
            return rf_err_set(err, RF_EUSAGE, "unknown --chat-template '%s'; use llama3, llama2, "
                              "chatml, qwen3, mistral, gemma or phi3", o->chat_template);
        }
    } else {
        family = tmpl ? rf_chat_detect(tmpl) : RF_CHAT_UNKNOWN;
        if (family == RF_CHAT_UNKNOWN) {
            free(tmpl);
            return rf_err_set(err, RF_EUNSUPPORTED, "%s: %s; name the format with "
                              "--chat-template (llama3, llama2, chatml, qwen3, mistral, gemma, "
                              "phi3)", o->model, s.data ? "tokenizer.chat_template is not a "
                              "template rocmforge recognises" : "the model has no chat template");
        }
    }
    free(tmpl);
    rf_chat_message_t msgs[2];
    size_t n = 0;
    if (o->system != NULL)
        msgs[n++] = (rf_chat_message_t){.role = "system", .content = o->system};
    msgs[n++] = (rf_chat_message_t){.role = "user", .content = user->data ? user->data : ""};
    int32_t bos = rf_tokenizer_bos(tok), eos = rf_tokenizer_eos(tok);
    const char *bos_text = bos >= 0 ? rf_tokenizer_piece(tok, bos) : NULL;
    const char *eos_text = eos >= 0 ? rf_tokenizer_piece(tok, eos) : NULL;
    rf_chat_options_t copt = {.add_generation_prompt = true,
                              .bos_token = bos_text ? bos_text : "",
                              .eos_token = eos_text ? eos_text : ""};
    return rf_chat_render(family, msgs, n, &copt, out, err);
}

static void print_json_token(const rf_tokenizer_t *tok, const rf_sample_t *s)
{
    rf_bytes_t piece = {0};
    json_t *obj = json_object();
    json_object_set_new(obj, "id", json_integer(s->token));
    if (tok != NULL && rf_tokenizer_token_bytes(tok, s->token, &piece) == 0)
        json_object_set_new(obj, "piece", rf__json_from_bytes(piece.data ? piece.data : "", piece.len));
    json_object_set_new(obj, "logprob", json_real(s->logprob));
    if (s->n_top > 0) {
        json_t *top = json_array();
        for (int32_t i = 0; i < s->n_top; i++) {
            json_t *alt = json_object();
            json_object_set_new(alt, "id", json_integer(s->top_tokens[i]));
            piece.len = 0;
            if (tok != NULL && rf_tokenizer_token_bytes(tok, s->top_tokens[i], &piece) == 0)
                json_object_set_new(alt, "piece",
                                    rf__json_from_bytes(piece.data ? piece.data : "", piece.len));
            json_object_set_new(alt, "logprob", json_real(s->top_logprobs[i]));
            json_array_append_new(top, alt);
        }
        json_object_set_new(obj, "top_logprobs", top);
    }
    json_dumpf(obj, stdout, JSON_COMPACT);
    putchar('\n');
    json_decref(obj);
    rf_bytes_free(&piece);
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    float v = strtof(s, &end);
    if (*s == '\0' || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int rf__cmd_generate(int argc, char **argv)
{
    gen_options_t o = {.max_tokens = 128};
    rf_sampling_params_default(&o.sp);
    enum { OPT_IDS = 256, OPT_CHAT, OPT_TEMPLATE, OPT_SYSTEM, OPT_TEMP, OPT_TOPK, OPT_TOPP,
           OPT_MINP, OPT_REP, OPT_FREQ, OPT_PRES, OPT_SEED, OPT_STOP, OPT_IGNORE_EOS, OPT_JSON,
           OPT_TOPLP };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"prompt-ids", required_argument, NULL, OPT_IDS},
        {"chat", no_argument, NULL, OPT_CHAT},
        {"chat-template", required_argument, NULL, OPT_TEMPLATE},
        {"system", required_argument, NULL, OPT_SYSTEM},
        {"max-tokens", required_argument, NULL, 'n'},
        {"temp", required_argument, NULL, OPT_TEMP},
        {"top-k", required_argument, NULL, OPT_TOPK},
        {"top-p", required_argument, NULL, OPT_TOPP},
        {"min-p", required_argument, NULL, OPT_MINP},
        {"repeat-penalty", required_argument, NULL, OPT_REP},
        {"frequency-penalty", required_argument, NULL, OPT_FREQ},
        {"presence-penalty", required_argument, NULL, OPT_PRES},
        {"seed", required_argument, NULL, OPT_SEED},
        {"stop", required_argument, NULL, OPT_STOP},
        {"ignore-eos", no_argument, NULL, OPT_IGNORE_EOS},
        {"json", no_argument, NULL, OPT_JSON},
        {"top-logprobs", required_argument, NULL, OPT_TOPLP},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    long v = 0;
    while ((c = getopt_long(argc, argv, "m:p:n:t:c:h", long_options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': o.model = optarg; break;
        case 'p': o.prompt = optarg; break;
        case OPT_IDS: o.prompt_ids = optarg; break;
        case OPT_CHAT: o.chat = true; break;
        case OPT_TEMPLATE: o.chat_template = optarg; o.chat = true; break;
        case OPT_SYSTEM: o.system = optarg; break;
        case 'n': bad = parse_long(optarg, 0, 1 << 24, &o.max_tokens); break;
        case OPT_TEMP: bad = parse_float(optarg, &o.sp.temperature); break;
        case OPT_TOPK: bad = parse_long(optarg, 0, INT32_MAX, &v); o.sp.top_k = (int32_t)v; break;
        case OPT_TOPP: bad = parse_float(optarg, &o.sp.top_p); break;
        case OPT_MINP: bad = parse_float(optarg, &o.sp.min_p); break;
        case OPT_REP: bad = parse_float(optarg, &o.sp.repetition_penalty); break;
        case OPT_FREQ: bad = parse_float(optarg, &o.sp.frequency_penalty); break;
        case OPT_PRES: bad = parse_float(optarg, &o.sp.presence_penalty); break;
        case OPT_SEED: {
            char *end;
            o.sp.seed = strtoull(optarg, &end, 0);
            bad = *optarg == '\0' || *optarg == '-' || *end != '\0';
            break;
        }
        case OPT_STOP:
            if (o.n_stops == MAX_STOPS || optarg[0] == '\0')
                bad = 1;
            else
                o.stops[o.n_stops++] = optarg;
            break;
        case OPT_IGNORE_EOS: o.ignore_eos = true; break;
        case OPT_JSON: o.json = true; break;
        case OPT_TOPLP: bad = parse_long(optarg, 0, RF_SAMPLER_MAX_TOP_LOGPROBS, &v);
            o.sp.top_logprobs = (int32_t)v; break;
        case 't': bad = parse_long(optarg, 1, 1024, &v); o.threads = (int)v; break;
        case 'c': bad = parse_long(optarg, 1, 1 << 24, &o.ctx); break;
        case 'h': generate_usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("generate", "unknown or incomplete option '%s'; see 'rocmforge "
                          "generate --help'", argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
        if (bad) {
            rf__cli_error("generate", "bad value '%s' for %s; see 'rocmforge generate --help'",
                          optarg, argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (o.model == NULL || optind != argc || (o.prompt && o.prompt_ids) ||
        (o.chat && o.prompt_ids)) {
        rf__cli_error("generate", "needs -m MODEL.gguf and one prompt (-p, --prompt-ids or "
                      "stdin; --chat does not combine with --prompt-ids)");
        return RF_EXIT_USAGE;
    }

    int status = RF_EXIT_FAIL;
    rf_err_t err = {0};
    rf_engine_t *e = NULL;
    rf_tokens_t prompt = {0}, history = {0};
    rf_bytes_t text = {0}, rendered = {0}, out = {0};
    rf_sampler_scratch_t scratch = {0};
    rf_stop_t stop;
    bool stop_ready = false;
    rf_engine_options_t eopt = {.n_threads = o.threads, .n_ctx = (uint32_t)o.ctx, .max_seqs = 1,
                                .no_tokenizer = o.prompt_ids != NULL && o.n_stops == 0 && !o.json};
    int rc = rf_engine_open(&e, o.model, &eopt, &err);
    if (rc < 0) {
        rf__cli_error("generate", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return RF_EXIT_FAIL;
    }
    const rf_tokenizer_t *tok = rf_engine_tokenizer(e);
    uint32_t n_vocab = rf_engine_hparams(e)->n_vocab;
    if (rf_sampling_params_check(&o.sp, n_vocab, &err) < 0) {
        rf__cli_error("generate", "%s", err.msg);
        status = RF_EXIT_USAGE;
        goto done;
    }
    if (o.prompt_ids != NULL) {
        rc = parse_ids(o.prompt_ids, &prompt);
        if (rc < 0) {
            rf__cli_error("generate", "--prompt-ids wants comma-separated token ids, got '%s'",
                          o.prompt_ids);
            status = RF_EXIT_USAGE;
            goto done;
        }
    } else {
        if (o.prompt != NULL)
            rc = rf_bytes_append(&text, o.prompt, strlen(o.prompt));
        else
            rc = read_all(stdin, &text);
        if (rc < 0) {
            rf__cli_error("generate", "reading the prompt: %s", rf_strerror(rc));
            goto done;
        }
        rf_tokenize_options_t topt = {.add_special = true, .parse_special = false};
        if (o.chat) {
            rc = render_prompt(&o, e, &text, &rendered, &err);
            if (rc < 0) {
                rf__cli_error("generate", "%s", err.msg);
                status = rc == RF_EUSAGE ? RF_EXIT_USAGE : RF_EXIT_FAIL;
                goto done;
            }
            /* the template writes BOS and the chat markup itself */
            topt = (rf_tokenize_options_t){.add_special = false, .parse_special = true};
            rc = rf_tokenizer_encode(tok, rendered.data, rendered.len, &topt, &prompt);
        } else {
            rc = rf_tokenizer_encode(tok, text.data ? text.data : "", text.len, &topt, &prompt);
        }
        if (rc < 0) {
            rf__cli_error("generate", "tokenizing the prompt: %s", rf_strerror(rc));
            goto done;
        }
    }
    if (prompt.n == 0) {
        rf__cli_error("generate", "the prompt has no tokens (and the vocabulary adds no BOS)");
        goto done;
    }
    for (size_t i = 0; i < prompt.n; i++) {
        if (prompt.ids[i] < 0 || (uint32_t)prompt.ids[i] >= n_vocab) {
            rf__cli_error("generate", "prompt token %zu is id %d, outside the vocabulary of %u",
                          i, prompt.ids[i], n_vocab);
            status = RF_EXIT_USAGE;
            goto done;
        }
        if (rf_tokens_push(&history, prompt.ids[i]) < 0)
            goto done;
    }
    if (rf_stop_init(&stop, o.stops, o.n_stops) < 0)
        goto done;
    stop_ready = true;

    double t0 = now_seconds();
    uint32_t last = 0;
    rc = eval_tokens(e, prompt.ids, prompt.n, 0, &last, &err);
    double t_prompt = now_seconds() - t0;
    if (rc < 0) {
        rf__cli_error("generate", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    rf_detok_t detok;
    rf_detokenize_options_t dopt = {.skip_special = true};
    if (tok != NULL)
        rf_detok_init(&detok, tok, &dopt);
    const char *finish = "length";
    long n_gen = 0;
    double t1 = now_seconds();
    uint32_t n_ctx = rf_engine_n_ctx(e);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    if (logits == NULL)
        goto done;
    bool stopped = false;
    while (n_gen < o.max_tokens) {
        if (history.n >= n_ctx) {
            finish = "context";
            break;
        }
        memcpy(logits, rf_engine_logits(e, last), (size_t)n_vocab * sizeof *logits);
        rf_sample_t s;
        rc = rf_sampler_sample(&o.sp, logits, n_vocab, history.ids, history.n, 0,
                               (uint64_t)n_gen, &scratch, &s);
        if (rc < 0) {
            rf__cli_error("generate", "sampling token %ld: %s", n_gen, rf_strerror(rc));
            free(logits);
            goto done;
        }
        n_gen++;
        if (rf_tokens_push(&history, s.token) < 0) {
            free(logits);
            goto done;
        }
        bool eog = tok != NULL && rf_tokenizer_is_eog(tok, s.token);
        if (o.json)
            print_json_token(tok, &s);
        if (eog && !o.ignore_eos) {
            finish = "stop";
            break;
        }
        if (tok != NULL) {
            size_t before = stop.emitted, stop_at = 0;
            out.len = 0;
            if (rf_detok_push(&detok, s.token, &out) < 0) {
                free(logits);
                goto done;
            }
            int hit = rf_stop_feed(&stop, out.data ? out.data : "", out.len, &stop_at);
            if (!o.json)
                fwrite(stop.text + before, 1, stop.emitted - before, stdout);
            if (hit == 1) {
                finish = "stop";
                stopped = true;
                break;
            }
        } else if (!o.json) {
            printf("%s%d", n_gen > 1 ? " " : "", s.token);
        }
        if (!o.json)
            fflush(stdout);
        rc = eval_tokens(e, &s.token, 1, (uint32_t)(history.n - 1), &last, &err);
        if (rc < 0) {
            rf__cli_error("generate", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
            free(logits);
            goto done;
        }
    }
    free(logits);
    double t_gen = now_seconds() - t1;
    if (tok != NULL && !stopped) {
        size_t before = stop.emitted, stop_at = 0;
        out.len = 0;
        rf_detok_flush(&detok, &out);
        rf_stop_feed(&stop, out.data ? out.data : "", out.len, &stop_at);
        size_t end = stop.stopped ? stop.emitted : stop.len;
        if (!o.json)
            fwrite(stop.text + before, 1, end - before, stdout);
    }
    if (o.json) {
        size_t end = stop.stopped ? stop.emitted : stop.len;
        json_t *sum = json_pack("{s:s, s:i, s:i, s:o, s:f, s:f}", "finish_reason", finish,
                                "prompt_tokens", (json_int_t)prompt.n, "completion_tokens",
                                (json_int_t)n_gen, "text",
                                rf__json_from_bytes(stop.text ? stop.text : "", end),
                                "prompt_tokens_per_s", t_prompt > 0 ? (double)prompt.n / t_prompt : 0.0,
                                "generation_tokens_per_s", t_gen > 0 ? (double)n_gen / t_gen : 0.0);
        json_dumpf(sum, stdout, JSON_COMPACT);
        json_decref(sum);
    }
    putchar('\n');
    fprintf(stderr, "rocmforge: generate: %zu prompt tokens in %.2f s (%.1f tok/s), %ld generated "
            "in %.2f s (%.1f tok/s), %d threads, finish: %s\n", prompt.n, t_prompt,
            t_prompt > 0 ? (double)prompt.n / t_prompt : 0.0, n_gen, t_gen,
            t_gen > 0 ? (double)n_gen / t_gen : 0.0, rf_engine_n_threads(e), finish);
    status = fflush(stdout) == 0 ? RF_EXIT_OK : RF_EXIT_FAIL;
done:
    if (stop_ready)
        rf_stop_free(&stop);
    rf_sampler_scratch_free(&scratch);
    rf_bytes_free(&text);
    rf_bytes_free(&rendered);
    rf_bytes_free(&out);
    rf_tokens_free(&prompt);
    rf_tokens_free(&history);
    rf_engine_close(e);
    return status;
}

/* ---- score ---- */

static void score_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge score -m MODEL.gguf --context TEXT --continuation TEXT [options]\n"
            "\n"
            "Print the log-likelihood of the continuation after the context as JSON: each\n"
            "continuation token's log-probability, their sum, and whether every token is\n"
            "the greedy choice. Context (with BOS as the vocabulary says) and continuation\n"
            "are tokenized separately and joined.\n"
            "\n"
            "options:\n"
            "  -m, --model FILE       GGUF model\n"
            "      --context TEXT     the conditioning text\n"
            "      --continuation TEXT  the text to score\n"
            "  -t, --threads N        CPU threads (default: all cores)\n"
            "  -c, --ctx N            context length (default: min(model, 4096))\n"
            "  -h, --help             show this help\n");
}

int rf__cmd_score(int argc, char **argv)
{
    const char *model = NULL, *context = NULL, *continuation = NULL;
    long threads = 0, ctx = 0;
    enum { OPT_CONTEXT = 256, OPT_CONTINUATION };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"context", required_argument, NULL, OPT_CONTEXT},
        {"continuation", required_argument, NULL, OPT_CONTINUATION},
        {"threads", required_argument, NULL, 't'},
        {"ctx", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:c:h", long_options, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model = optarg; break;
        case OPT_CONTEXT: context = optarg; break;
        case OPT_CONTINUATION: continuation = optarg; break;
        case 't': bad = parse_long(optarg, 1, 1024, &threads); break;
        case 'c': bad = parse_long(optarg, 1, 1 << 24, &ctx); break;
        case 'h': score_usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("score", "unknown or incomplete option '%s'; see 'rocmforge score "
                          "--help'", argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
        if (bad) {
            rf__cli_error("score", "bad value '%s' for %s", optarg, argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (model == NULL || context == NULL || continuation == NULL || optind != argc) {
        rf__cli_error("score", "needs -m MODEL.gguf, --context and --continuation");
        return RF_EXIT_USAGE;
    }
    int status = RF_EXIT_FAIL;
    rf_err_t err = {0};
    rf_engine_t *e = NULL;
    rf_tokens_t all = {0};
    int8_t *want = NULL;
    int32_t *pos = NULL, *seq = NULL;
    json_t *logprobs = json_array(), *ids = json_array();
    rf_engine_options_t eopt = {.n_threads = (int)threads, .n_ctx = (uint32_t)ctx, .max_seqs = 1};
    int rc = rf_engine_open(&e, model, &eopt, &err);
    if (rc < 0) {
        rf__cli_error("score", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    const rf_tokenizer_t *tok = rf_engine_tokenizer(e);
    /* Control tokens written in the text are recognised, as Hugging Face
     * tokenizers do by default (a context in chat markup scores as in
     * evaluation harnesses). */
    rf_tokenize_options_t with_bos = {.add_special = true, .parse_special = true},
                          plain = {.add_special = false, .parse_special = true};
    rc = rf_tokenizer_encode(tok, context, strlen(context), &with_bos, &all);
    size_t n_context = all.n;
    if (rc == 0)
        rc = rf_tokenizer_encode(tok, continuation, strlen(continuation), &plain, &all);
    if (rc < 0) {
        rf__cli_error("score", "tokenizing: %s", rf_strerror(rc));
        goto done;
    }
    if (n_context == 0 || all.n == n_context) {
        rf__cli_error("score", "%s", n_context == 0 ? "the context has no tokens (and the "
                      "vocabulary adds no BOS)" : "the continuation has no tokens");
        goto done;
    }
    uint32_t n_vocab = rf_engine_hparams(e)->n_vocab;
    want = calloc(PROMPT_CHUNK, 1);
    pos = calloc(PROMPT_CHUNK, sizeof *pos);
    seq = calloc(PROMPT_CHUNK, sizeof *seq);
    if (want == NULL || pos == NULL || seq == NULL)
        goto done;
    double sum = 0.0;
    bool greedy = true;
    /* Token t's logits predict token t + 1: ask for logits at positions
     * n_context - 1 .. n - 2. */
    for (size_t done = 0; done < all.n - 1;) {
        size_t k = all.n - 1 - done < PROMPT_CHUNK ? all.n - 1 - done : PROMPT_CHUNK;
        for (size_t i = 0; i < k; i++) {
            pos[i] = (int32_t)(done + i);
            want[i] = done + i + 1 >= n_context;
        }
        rf_batch_t batch = {.n_tokens = (uint32_t)k, .tokens = all.ids + done, .positions = pos,
                            .seq_ids = seq, .logits = want};
        rc = rf_engine_eval(e, &batch, &err);
        if (rc < 0) {
            rf__cli_error("score", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
            goto done;
        }
        for (size_t i = 0; i < k; i++) {
            if (!want[i])
                continue;
            int32_t next = all.ids[done + i + 1];
            double lp = 0.0;
            bool is_greedy = false;
            rc = rf_sampler_score(rf_engine_logits(e, (uint32_t)i), n_vocab, next, &lp, &is_greedy);
            if (rc < 0) {
                rf__cli_error("score", "position %zu: %s", done + i, rf_strerror(rc));
                goto done;
            }
            sum += lp;
            greedy = greedy && is_greedy;
            json_array_append_new(logprobs, json_real(lp));
            json_array_append_new(ids, json_integer(next));
        }
        done += k;
    }
    json_t *result = json_pack("{s:i, s:O, s:O, s:f, s:b}", "context_tokens", (json_int_t)n_context,
                               "continuation_tokens", ids, "logprobs", logprobs, "sum_logprob",
                               sum, "is_greedy", greedy);
    json_dumpf(result, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(result);
    status = fflush(stdout) == 0 ? RF_EXIT_OK : RF_EXIT_FAIL;
done:
    json_decref(logprobs);
    json_decref(ids);
    free(want);
    free(pos);
    free(seq);
    rf_tokens_free(&all);
    rf_engine_close(e);
    return status;
}
