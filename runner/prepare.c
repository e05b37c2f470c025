/* prepare.c - a claimed job to engine requests, and checkpoints to bytes
 *
 * The JSON read here was written by ingest.c, which already checked every
 * value's type and range; the checks below catch what depends on the model
 * (vocabulary, chat template) and keep a hand-edited database from
 * crashing the runner.
 */
#include "prepare.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

static double num(json_t *params, const char *key, double dflt)
{
    json_t *v = json_object_get(params, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

static void free_strings(char **s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; s[i] != NULL; i++)
        free(s[i]);
    free(s);
}

void rf_resume_free(rf_resume_t *resume, uint32_t n_samples)
{
    if (resume == NULL)
        return;
    for (uint32_t i = 0; i < n_samples; i++) {
        free(resume[i].tokens);
        free(resume[i].samples);
    }
    free(resume);
}

void rf_prepared_free(rf_prepared_t *p)
{
    if (p == NULL)
        return;
    rf_tokens_free(&p->prompt);
    free_strings(p->stop);
    free(p->bias);
    rf_resume_free(p->resume, p->n_samples);
    memset(p, 0, sizeof *p);
}

/* ------------------------------------------------------------------ params */

static int read_params(const rf_prepare_ctx_t *ctx, json_t *params, rf_prepared_t *out,
                       rf_err_t *err)
{
    rf_request_t *r = &out->request;
    rf_sampling_params_t *sp = &r->sampling;
    rf_sampling_params_default(sp);
    sp->temperature = (float)num(params, "temperature", 1.0);
    sp->top_p = (float)num(params, "top_p", 1.0);
    sp->top_k = (int32_t)num(params, "top_k", 0);
    sp->min_p = (float)num(params, "min_p", 0.0);
    sp->repetition_penalty = (float)num(params, "repetition_penalty", 1.0);
    sp->frequency_penalty = (float)num(params, "frequency_penalty", 0.0);
    sp->presence_penalty = (float)num(params, "presence_penalty", 0.0);
    sp->seed = (uint64_t)num(params, "seed", 0);
    double n = num(params, "n", 1), max_tokens = num(params, "max_tokens", 256);
    if (n < 1 || n > 128)
        return rf_err_set(err, RF_ERANGE, "params.n is %g; must be in [1, 128]", n);
    if (max_tokens < 1 || max_tokens > 1e6)
        return rf_err_set(err, RF_ERANGE, "params.max_tokens is %g; must be in [1, 1000000]",
                          max_tokens);
    out->n_samples = (uint32_t)n;
    r->max_tokens = (uint32_t)max_tokens;
    r->ignore_eos = json_is_true(json_object_get(params, "ignore_eos"));
    json_t *lp = json_object_get(params, "logprobs");
    r->logprobs = json_is_true(lp) || (json_is_integer(lp) && json_integer_value(lp) > 0);
    sp->top_logprobs = (int32_t)num(params, "top_logprobs", 0);
    if (sp->top_logprobs > 0)
        r->logprobs = true;

    json_t *stop = json_object_get(params, "stop");
    if (stop != NULL && !json_is_array(stop))
        return rf_err_set(err, RF_EFORMAT, "params.stop must be a list of strings");
    size_t n_stop = json_array_size(stop);
    out->stop = calloc(n_stop + 1, sizeof *out->stop);
    if (out->stop == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n_stop; i++) {
        const char *s = json_string_value(json_array_get(stop, i));
        if (s == NULL || s[0] == '\0')
            return rf_err_set(err, RF_EFORMAT, "params.stop[%zu] must be a non-empty string", i);
        if ((out->stop[i] = strdup(s)) == NULL)
            return rf_err_set(err, -ENOMEM, "out of memory");
    }
    r->stop = (const char *const *)out->stop;
    r->n_stop = n_stop;

    json_t *bias = json_object_get(params, "logit_bias");
    if (bias != NULL && !json_is_object(bias))
        return rf_err_set(err, RF_EFORMAT, "params.logit_bias must be an object");
    size_t n_bias = json_object_size(bias);
    if (n_bias > 0) {
        out->bias = calloc(n_bias, sizeof *out->bias);
        if (out->bias == NULL)
            return rf_err_set(err, -ENOMEM, "out of memory");
        const char *key;
        json_t *v;
        size_t i = 0;
        json_object_foreach(bias, key, v) {
            char *end;
            long id = strtol(key, &end, 10);
            if (*end != '\0' || id < 0 || (uint64_t)id >= ctx->n_vocab)
                return rf_err_set(err, RF_ERANGE, "params.logit_bias: token '%s' is not an id "
                                  "in this model's vocabulary of %u", key, ctx->n_vocab);
            out->bias[i].token = (int32_t)id;
            out->bias[i].bias = (float)json_number_value(v);
            i++;
        }
        sp->logit_bias = out->bias;
        sp->n_logit_bias = n_bias;
    }
    return rf_sampling_params_check(sp, ctx->n_vocab, err);
}

/* ------------------------------------------------------------------ input */

/* Control tokens written in the text (<|im_start|>, <|eot_id|>) are
 * recognised, as Hugging Face tokenizers do by default, so a score job's
 * context in chat markup scores the way evaluation harnesses score it. */
static int encode(const rf_prepare_ctx_t *ctx, const char *text, bool special, rf_tokens_t *out,
                  rf_err_t *err)
{
    rf_tokenize_options_t o = {.add_special = special, .parse_special = true};
    int rc = rf_tokenizer_encode(ctx->tok, text, strlen(text), &o, out);
    if (rc < 0)
        return rf_err_set(err, rc, "tokenizing the input: %s", rf_strerror(rc));
    return 0;
}

static int render_chat(const rf_prepare_ctx_t *ctx, json_t *messages, rf_tokens_t *out,
                       rf_err_t *err)
{
    if (ctx->chat_family == RF_CHAT_UNKNOWN)
        return rf_err_set(err, RF_EUNSUPPORTED, "chat job: %s", ctx->chat_error);
    size_t n = json_array_size(messages);
    if (n == 0)
        return rf_err_set(err, RF_EFORMAT, "input.messages must be a non-empty list");
    rf_chat_message_t *msgs = calloc(n, sizeof *msgs);
    if (msgs == NULL)
        return rf_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *m = json_array_get(messages, i);
        msgs[i].role = json_string_value(json_object_get(m, "role"));
        msgs[i].content = json_string_value(json_object_get(m, "content"));
        if (msgs[i].role == NULL || msgs[i].content == NULL) {
            free(msgs);
            return rf_err_set(err, RF_EFORMAT, "input.messages[%zu] needs string role and "
                              "content", i);
        }
    }
    int32_t bos = rf_tokenizer_bos(ctx->tok), eos = rf_tokenizer_eos(ctx->tok);
    const char *bos_text = bos >= 0 ? rf_tokenizer_piece(ctx->tok, bos) : NULL;
    const char *eos_text = eos >= 0 ? rf_tokenizer_piece(ctx->tok, eos) : NULL;
    rf_chat_options_t copt = {.add_generation_prompt = true,
                              .bos_token = bos_text ? bos_text : "",
                              .eos_token = eos_text ? eos_text : ""};
    rf_bytes_t text = {0};
    int rc = rf_chat_render(ctx->chat_family, msgs, n, &copt, &text, err);
    free(msgs);
    if (rc == 0) {
        /* The template writes BOS and the markup itself. */
        rf_tokenize_options_t o = {.add_special = false, .parse_special = true};
        rc = rf_tokenizer_encode(ctx->tok, text.data ? text.data : "", text.len, &o, out);
        if (rc < 0)
            rf_err_set(err, rc, "tokenizing the rendered chat: %s", rf_strerror(rc));
    }
    rf_bytes_free(&text);
    return rc;
}

int rf_prepare_job(const rf_prepare_ctx_t *ctx, const char *kind, const char *input,
                   const char *params, const void *checkpoint, size_t checkpoint_len,
                   rf_prepared_t *out, rf_err_t *err)
{
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *in = json_loads(input, 0, &jerr);
    json_t *pa = json_loads(params, 0, &jerr);
    int rc = 0;
    if (in == NULL || pa == NULL || !json_is_object(in) || !json_is_object(pa)) {
        rc = rf_err_set(err, RF_EFORMAT, "the job's %s is not a JSON object",
                        in == NULL || !json_is_object(in) ? "input" : "params");
        goto done;
    }
    rc = read_params(ctx, pa, out, err);
    if (rc < 0)
        goto done;
    if (strcmp(kind, "completion") == 0) {
        const char *prompt = json_string_value(json_object_get(in, "prompt"));
        if (prompt == NULL) {
            rc = rf_err_set(err, RF_EFORMAT, "input.prompt must be a string");
            goto done;
        }
        rc = encode(ctx, prompt, true, &out->prompt, err);
    } else if (strcmp(kind, "chat") == 0) {
        rc = render_chat(ctx, json_object_get(in, "messages"), &out->prompt, err);
    } else if (strcmp(kind, "score") == 0) {
        const char *context = json_string_value(json_object_get(in, "context"));
        const char *cont = json_string_value(json_object_get(in, "continuation"));
        if (context == NULL || cont == NULL) {
            rc = rf_err_set(err, RF_EFORMAT, "input.context and input.continuation must be "
                            "strings");
            goto done;
        }
        rc = encode(ctx, context, true, &out->prompt, err);
        size_t n_context = out->prompt.n;
        if (rc == 0)
            rc = encode(ctx, cont, false, &out->prompt, err);
        if (rc == 0 && (n_context == 0 || out->prompt.n == n_context))
            rc = rf_err_set(err, RF_ERANGE, "the %s has no tokens",
                            n_context == 0 ? "context" : "continuation");
        out->is_score = true;
        out->n_samples = 1;
        out->request.n_score = (uint32_t)(out->prompt.n - n_context);
        out->request.logprobs = false;
    } else {
        rc = rf_err_set(err, RF_EFORMAT, "unknown job kind '%s'", kind);
    }
    if (rc < 0)
        goto done;
    if (out->prompt.n == 0) {
        rc = rf_err_set(err, RF_ERANGE, "the prompt has no tokens");
        goto done;
    }
    out->request.prompt = out->prompt.ids;
    out->request.n_prompt = (uint32_t)out->prompt.n;
    if (checkpoint != NULL && checkpoint_len > 0 && !out->is_score) {
        rf_err_t cerr = {0};
        int crc = rf_checkpoint_decode(checkpoint, checkpoint_len, ctx->model_hash,
                                       out->n_samples, &out->resume, &cerr);
        /* A damaged checkpoint costs the work it saved, never the job. */
        if (crc != 0)
            out->resume = NULL;
        if (crc == -ENOMEM) {
            rc = rf_err_set(err, -ENOMEM, "out of memory");
            goto done;
        }
    }
done:
    json_decref(in);
    json_decref(pa);
    if (rc < 0)
        rf_prepared_free(out);
    return rc;
}

/* ------------------------------------------------------------------ checkpoints */

typedef struct writer {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} writer_t;

static void put(writer_t *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        while (cap < w->len + n)
            cap *= 2;
        unsigned char *d = realloc(w->data, cap);
        if (d == NULL) {
            w->failed = true;
            return;
        }
        w->data = d;
        w->cap = cap;
    }
    memcpy(w->data + w->len, p, n);
    w->len += n;
}

/* Little-endian on disk; x86-64 and arm64 are little-endian hosts. */
static void put_u32(writer_t *w, uint32_t v)
{
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    put(w, b, 4);
}

static void put_f32(writer_t *w, float f)
{
    uint32_t v;
    memcpy(&v, &f, 4);
    put_u32(w, v);
}

int rf_checkpoint_encode(const char *model_hash, const rf_resume_t *resume, uint32_t n_samples,
                         void **out, size_t *out_len)
{
    writer_t w = {0};
    const char *hash = model_hash ? model_hash : "";
    put(&w, "RFCK", 4);
    put_u32(&w, 1);
    put_u32(&w, n_samples);
    put_u32(&w, (uint32_t)strlen(hash));
    put(&w, hash, strlen(hash));
    for (uint32_t s = 0; s < n_samples; s++) {
        const rf_resume_t *r = &resume[s];
        put_u32(&w, r->n_tokens);
        put_u32(&w, r->samples != NULL);
        for (uint32_t i = 0; i < r->n_tokens; i++)
            put_u32(&w, (uint32_t)r->tokens[i]);
        for (uint32_t i = 0; r->samples != NULL && i < r->n_tokens; i++) {
            const rf_sample_t *x = &r->samples[i];
            put_u32(&w, (uint32_t)x->token);
            put_f32(&w, x->logprob);
            put_u32(&w, (uint32_t)x->n_top);
            for (int32_t k = 0; k < x->n_top; k++) {
                put_u32(&w, (uint32_t)x->top_tokens[k]);
                put_f32(&w, x->top_logprobs[k]);
            }
        }
    }
    if (w.failed) {
        free(w.data);
        return -ENOMEM;
    }
    *out = w.data;
    *out_len = w.len;
    return 0;
}

typedef struct reader {
    const unsigned char *p;
    size_t len, off;
    bool bad;
} reader_t;

static uint32_t get_u32(reader_t *r)
{
    if (r->bad || r->len - r->off < 4) {
        r->bad = true;
        return 0;
    }
    const unsigned char *b = r->p + r->off;
    r->off += 4;
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static float get_f32(reader_t *r)
{
    uint32_t v = get_u32(r);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

int rf_checkpoint_decode(const void *blob, size_t len, const char *model_hash,
                         uint32_t n_samples, rf_resume_t **resume, rf_err_t *err)
{
    *resume = NULL;
    reader_t r = {.p = blob, .len = len};
    if (len < 16 || memcmp(blob, "RFCK", 4) != 0)
        return rf_err_set(err, RF_EFORMAT, "checkpoint: not a rocmforge checkpoint");
    r.off = 4;
    uint32_t version = get_u32(&r), n = get_u32(&r), hash_len = get_u32(&r);
    if (version != 1)
        return rf_err_set(err, RF_EFORMAT, "checkpoint: version %u, this build reads 1", version);
    if (hash_len > len - r.off)
        return rf_err_set(err, RF_EFORMAT, "checkpoint: truncated at byte %zu", r.off);
    const char *hash = model_hash ? model_hash : "";
    if (hash_len != strlen(hash) || memcmp(r.p + r.off, hash, hash_len) != 0 || n != n_samples)
        return 1;
    r.off += hash_len;
    rf_resume_t *res = calloc(n ? n : 1, sizeof *res);
    if (res == NULL)
        return -ENOMEM;
    for (uint32_t s = 0; s < n && !r.bad; s++) {
        uint32_t n_tok = get_u32(&r), has = get_u32(&r);
        if (r.bad || n_tok > (len - r.off) / 4) {
            r.bad = true;
            break;
        }
        res[s].n_tokens = n_tok;
        res[s].tokens = malloc(((size_t)n_tok + 1) * sizeof *res[s].tokens);
        if (has)
            res[s].samples = calloc((size_t)n_tok + 1, sizeof *res[s].samples);
        if (res[s].tokens == NULL || (has && res[s].samples == NULL)) {
            rf_resume_free(res, n);
            return -ENOMEM;
        }
        for (uint32_t i = 0; i < n_tok; i++)
            res[s].tokens[i] = (int32_t)get_u32(&r);
        for (uint32_t i = 0; has && i < n_tok && !r.bad; i++) {
            rf_sample_t *x = &res[s].samples[i];
            x->token = (int32_t)get_u32(&r);
            x->logprob = get_f32(&r);
            uint32_t n_top = get_u32(&r);
            if (n_top > RF_SAMPLER_MAX_TOP_LOGPROBS) {
                r.bad = true;
                break;
            }
            x->n_top = (int32_t)n_top;
            for (uint32_t k = 0; k < n_top; k++) {
                x->top_tokens[k] = (int32_t)get_u32(&r);
                x->top_logprobs[k] = get_f32(&r);
            }
        }
    }
    if (r.bad) {
        size_t where = r.off;
        rf_resume_free(res, n);
        return rf_err_set(err, RF_EFORMAT, "checkpoint: truncated or damaged at byte %zu", where);
    }
    *resume = res;
    return 0;
}
