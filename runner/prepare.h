/* prepare.h - a claimed job to engine requests, and checkpoints to bytes
 *
 * rf_prepare_job reads a job's stored input and params (JSON, as submit
 * normalised them), renders chat messages with the model's template,
 * tokenizes, and fills one rf_request_t per sample (n of them). It touches
 * no database and no libuv handle and only reads the tokenizer, so the
 * runner calls it on the libuv thread pool.
 *
 * A checkpoint is the tokens (and, with logprobs, the samples) each sample
 * of a job has generated so far, with the model's hash, so a resumed job
 * continues where it stopped and a checkpoint from another model is not
 * applied. Byte format (little-endian), version 1:
 *   "RFCK" u32 version, u32 n_samples, u32 model_hash_len, model_hash bytes,
 *   then per sample: u32 n_tokens, u32 has_samples, i32 tokens[n_tokens],
 *   and when has_samples, per token: i32 token, f32 logprob, i32 n_top,
 *   then n_top x (i32 token, f32 logprob).
 */
#ifndef RF_PREPARE_H
#define RF_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "chat.h"
#include "error.h"
#include "scheduler.h"
#include "tokenizer.h"

/* What a sample resumes from; owned. */
typedef struct rf_resume {
    int32_t *tokens;
    rf_sample_t *samples;  /* [n_tokens] or NULL */
    uint32_t n_tokens;
} rf_resume_t;

typedef struct rf_prepared {
    uint32_t n_samples;          /* the job's n (1 for score jobs) */
    rf_request_t request;        /* template of every sample's request; id, rng_id
                                    and the resume fields are set per sample */
    rf_tokens_t prompt;          /* owned; request.prompt points into it */
    char **stop;                 /* owned; request.stop points at it */
    rf_logit_bias_t *bias;       /* owned; request.sampling.logit_bias */
    rf_resume_t *resume;         /* [n_samples] from the checkpoint, or NULL */
    bool is_score;
} rf_prepared_t;

/* Context the preparation reads: all borrowed and immutable while it runs. */
typedef struct rf_prepare_ctx {
    const rf_tokenizer_t *tok;
    rf_chat_family_t chat_family; /* RF_CHAT_UNKNOWN: chat jobs fail with chat_error */
    const char *chat_error;       /* why there is no template (one line) */
    uint32_t n_vocab;
    const char *model_hash;       /* checkpoints from another hash are ignored */
} rf_prepare_ctx_t;

/* Fill *out from a job's kind ("completion" | "chat" | "score"), input and
 * params JSON and checkpoint (may be NULL). Returns 0, or an error with err
 * naming the job's field: RF_EFORMAT (unreadable JSON or a field of the
 * wrong shape), RF_EUNSUPPORTED (chat without a usable template), RF_ERANGE
 * (a value out of range, e.g. a bias token outside the vocabulary), -ENOMEM.
 * These are permanent (the job's input is wrong for this model). On failure
 * *out holds nothing to free. */
int rf_prepare_job(const rf_prepare_ctx_t *ctx, const char *kind, const char *input,
                   const char *params, const void *checkpoint, size_t checkpoint_len,
                   rf_prepared_t *out, rf_err_t *err);
void rf_prepared_free(rf_prepared_t *p);

/* Encode samples' progress as a checkpoint blob (malloc'd into *out).
 * resume[i] may have n_tokens 0. Returns 0 or -ENOMEM. */
int rf_checkpoint_encode(const char *model_hash, const rf_resume_t *resume, uint32_t n_samples,
                         void **out, size_t *out_len);

/* Decode a blob for n_samples samples. Returns 0 (*resume set, owned:
 * rf_resume_free), 1 (the blob is for another model or another n: ignore
 * it), RF_EFORMAT (damaged; err says where), -ENOMEM. */
int rf_checkpoint_decode(const void *blob, size_t len, const char *model_hash,
                         uint32_t n_samples, rf_resume_t **resume, rf_err_t *err);
void rf_resume_free(rf_resume_t *resume, uint32_t n_samples);

#endif /* RF_PREPARE_H */
