/* scheduler.h - requests in, finished outputs out: the engine's scheduler
 *
 * (Named scheduler.h, not sched.h: engine/ is on the include path and
 * <sched.h> is the system header pthread.h includes.)
 *
 * The request-level API of the engine. A caller (the runner's engine
 * thread, `rocmforge bench`) submits requests - token ids, sampling
 * params, limits - then calls rf_sched_step() in a loop; every step is one
 * forward pass over a batch the scheduler assembles (continuous batching:
 * running sequences decode one token each, waiting ones are admitted as
 * prefill chunks under a token budget). What happens is reported as events
 * popped with rf_sched_poll(): first token, checkpoint, finished, failed.
 *
 *     rf_sched_t *s;
 *     rf_sched_options_t so = {.max_batched_tokens = 512};
 *     rf_sched_open(&s, engine, &so, &err);
 *     rf_request_t r = {.id = 7, .prompt = ids, .n_prompt = n, .max_tokens = 64};
 *     rf_sampling_params_default(&r.sampling);
 *     rf_sched_submit(s, &r, &err);
 *     while (rf_sched_has_work(s)) {
 *         rf_sched_step(s, &err);
 *         rf_sched_event_t ev;
 *         while (rf_sched_poll(s, &ev)) { ...; rf_sched_event_free(&ev); }
 *     }
 *
 * Determinism: a request's tokens depend only on its own prompt, params
 * and rng_id - never on what it was batched with, the admission order, or
 * a restart from a checkpoint - because the backend computes every row of
 * a batch exactly as it would alone (cpu.h) and the sampler is keyed by
 * (seed, rng_id, token index) (sampler.h).
 *
 * K/V live in the engine's paged pool (rf_engine_options_t.kv_paged);
 * this scheduler keeps the books with kv.h: a running request holds a
 * block table, a new one starts from the longest cached prefix of its
 * tokens (prefix caching), and when blocks run out the most recently
 * admitted request is preempted by recompute (its blocks freed, itself put
 * back at the head of the queue; the cached full blocks usually bring most
 * of its work back on readmission).
 *
 * One scheduler is driven by one thread (the engine thread).
 */
#ifndef RF_SCHEDULER_H
#define RF_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "error.h"
#include "sampler.h"

typedef struct rf_sched_options {
    uint32_t max_batched_tokens; /* tokens per forward pass; 0: 512 */
    uint32_t max_seqs;           /* running sequences at once; 0 or more than the
                                    engine holds: rf_engine_max_seqs() */
    uint32_t checkpoint_tokens;  /* a CHECKPOINT event every this many generated
                                    tokens of a request; 0: never */
    bool check_kv;               /* verify the KV books after every step (tests) */
    bool no_prefix_cache;        /* never reuse cached blocks at admission */
} rf_sched_options_t;

/* One request. Everything is copied by rf_sched_submit. */
typedef struct rf_request {
    uint64_t id;                 /* the caller's handle; unique among live requests */
    uint64_t rng_id;             /* request id of the keyed generator (sampler.h) */
    int32_t priority;            /* higher is admitted first; FCFS within a priority */
    const int32_t *prompt;       /* [n_prompt] token ids; n_prompt >= 1 */
    uint32_t n_prompt;
    /* Resume: tokens this request already generated before a checkpoint,
     * and (when logprobs are asked) their samples. They are recomputed as
     * prompt and not sampled again; the output is the same as without the
     * interruption. */
    const int32_t *generated;
    const rf_sample_t *generated_samples; /* [n_generated] or NULL */
    uint32_t n_generated;
    rf_sampling_params_t sampling;        /* logit_bias is copied */
    uint32_t max_tokens;         /* generated tokens at most (resumed ones count) */
    const char *const *stop;     /* stop strings, copied */
    size_t n_stop;
    bool ignore_eos;             /* do not stop at end-of-generation tokens */
    bool logprobs;               /* keep an rf_sample_t per generated token */
    /* Score mode: no generation; the last n_score prompt tokens are the
     * continuation whose log-likelihood after the rest is reported. */
    uint32_t n_score;
} rf_request_t;

typedef enum rf_finish {
    RF_FINISH_NONE = 0,   /* still running (checkpoints) */
    RF_FINISH_STOP,       /* end-of-generation token or a stop string */
    RF_FINISH_LENGTH,     /* max_tokens generated */
    RF_FINISH_CONTEXT,    /* the sequence filled the context */
    RF_FINISH_SCORED,     /* a score request was evaluated */
} rf_finish_t;

const char *rf_finish_name(rf_finish_t f); /* "stop", "length", "context", "scored" */

/* What a request produced; owned by the event that carries it. */
typedef struct rf_sched_output {
    rf_finish_t finish;
    uint32_t n_prompt;
    int32_t *tokens;             /* [n_tokens] generated ids (incl. resumed ones) */
    uint32_t n_tokens;
    rf_sample_t *samples;        /* [n_tokens] when logprobs was asked, else NULL */
    char *text;                  /* NUL-terminated UTF-8 of the generated tokens,
                                    cut where a stop string begins; special tokens
                                    skipped */
    size_t text_len;
    /* Score mode: per continuation token. */
    double *score_logprobs;      /* [n_score] */
    bool *score_greedy;          /* [n_score] */
    uint32_t n_score;
    double score_sum;
    bool score_all_greedy;
    /* Timing (ms, monotonic clock of the engine thread) and batching. */
    int64_t submitted_ms, admitted_ms, first_token_ms, finished_ms;
    double prefill_ms;           /* admission to the end of the prompt's last chunk */
    double decode_ms;            /* first token to the last one */
    uint64_t steps;              /* forward passes this request took part in */
    uint64_t batch_seqs_sum;     /* sum over those steps of the sequences in the batch */
    uint32_t preemptions;
} rf_sched_output_t;

typedef enum rf_sched_event_kind {
    RF_SCHED_EV_FIRST_TOKEN = 1, /* output NULL; value = first_token_ms */
    RF_SCHED_EV_CHECKPOINT,      /* output: tokens (and samples) so far, finish NONE */
    RF_SCHED_EV_FINISHED,        /* output: the result */
    RF_SCHED_EV_FAILED,          /* value = negative rf code; error holds the message */
} rf_sched_event_kind_t;

typedef struct rf_sched_event {
    rf_sched_event_kind_t kind;
    uint64_t id;
    int64_t value;
    rf_sched_output_t *output;   /* owned; NULL for FIRST_TOKEN and FAILED */
    char error[256];
} rf_sched_event_t;

void rf_sched_output_free(rf_sched_output_t *out); /* frees out itself; NULL is fine */
void rf_sched_event_free(rf_sched_event_t *ev);    /* frees ev->output; ev itself is the caller's */

/* Totals since open. */
typedef struct rf_sched_stats {
    uint64_t steps;
    uint64_t prompt_tokens;      /* tokens computed as prompt (incl. recomputed) */
    uint64_t generated_tokens;   /* tokens sampled */
    uint64_t finished, failed, cancelled;
    uint32_t waiting, running;   /* now */
    double busy_ms;              /* time inside forward passes and sampling */
    uint64_t preemptions;        /* running requests sent back to wait for blocks */
    uint32_t kv_blocks, kv_blocks_free; /* the pool (free counts cached ones) */
    uint64_t prefix_query_tokens, prefix_hit_tokens; /* prefix caching at admission */
} rf_sched_stats_t;

typedef struct rf_sched rf_sched_t;

/* A scheduler over e (borrowed; must outlive it). Returns 0, -ENOMEM or
 * RF_ERANGE (bad options; err says which). */
int rf_sched_open(rf_sched_t **out, rf_engine_t *e, const rf_sched_options_t *opt,
                  rf_err_t *err);
void rf_sched_close(rf_sched_t *s); /* NULL is fine; drops live requests silently */

/* Queue a request. Checked here, so a bad request never reaches a batch:
 * RF_ERANGE when a token id is outside the vocabulary, the prompt is empty,
 * prompt + max_tokens exceeds the context (err gives both numbers and the
 * flag to change), sampling params are out of range, n_score >= n_prompt,
 * or id is already live. -ENOMEM. On error nothing is queued and no event
 * is produced. A resumed request that had already finished (its text holds
 * a stop string, or it has max_tokens tokens) is not queued: its FINISHED
 * event is queued at once. */
int rf_sched_submit(rf_sched_t *s, const rf_request_t *r, rf_err_t *err);

/* Forget a live request at once (its KV region is freed); no event follows.
 * 0, or RF_ENOTFOUND when no live request has this id. */
int rf_sched_cancel(rf_sched_t *s, uint64_t id);

/* Emit a CHECKPOINT event for every live request (tokens so far; waiting
 * ones with what they were resumed from) and forget them all: the drain
 * on shutdown. Returns the number of requests checkpointed. */
size_t rf_sched_checkpoint_all(rf_sched_t *s);

/* One forward pass and the sampling after it. Returns 0 (one step done),
 * 1 (nothing to do), or an error of the backend (-ENOMEM): then the
 * requests of the batch have FAILED events and the others are unchanged. */
int rf_sched_step(rf_sched_t *s, rf_err_t *err);

bool rf_sched_has_work(const rf_sched_t *s);  /* live requests exist */
/* Pop the oldest event into *ev (the caller frees it with
 * rf_sched_event_free). Returns true if one was popped. */
bool rf_sched_poll(rf_sched_t *s, rf_sched_event_t *ev);
void rf_sched_get_stats(const rf_sched_t *s, rf_sched_stats_t *out);

/* Monotonic milliseconds of the clock the timings use. */
int64_t rf_sched_now_ms(void);

#endif /* RF_SCHEDULER_H */
