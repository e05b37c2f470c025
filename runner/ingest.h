/* ingest.h - input lines to jobs: the `submit` parser, validator and inserter
 *
 * One JSON object per line becomes one job of a run. Three shapes:
 *   {"custom_id", "prompt", params...}                      kind completion
 *   {"custom_id", "messages": [{"role","content"}...], ...} kind chat
 *   {"custom_id", "context", "continuation", ...}           kind score
 * and the OpenAI Batch request line
 *   {"custom_id", "method": "POST", "url": "/v1/chat/completions" or
 *    "/v1/completions", "body": {...}}.
 * docs/submit.md is the user's reference; schemas/input_line.schema.json
 * describes the same lines for other tools.
 *
 * Stored forms (all compact JSON text, keys sorted, so equal content gives
 * equal bytes and an equal input_hash):
 *   input     {"prompt": S} | {"messages": [{"content": S, "role": R}...]}
 *             | {"context": S, "continuation": S}
 *   params    every sampling parameter with its effective value (the line's,
 *             else the run's default, else the built-in one): frequency_penalty,
 *             logit_bias {}, logprobs, max_tokens, min_p, n, presence_penalty,
 *             repetition_penalty, seed, stop [], temperature, top_k,
 *             top_logprobs, top_p; and model when the line named one
 *   input_hash  SHA-256 (hex) of kind, input and params
 * priority, not_before and max_attempts go to their own columns.
 */
#ifndef RF_INGEST_H
#define RF_INGEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "error.h"

#define RF_INGEST_MAX_LINE (64u << 20)  /* bytes: longer lines are rejected unread */
#define RF_INGEST_CHUNK 1000            /* lines per transaction */
#define RF_INGEST_MAX_REASONS 5         /* reasons kept in rf_ingest_stats_t */

/* One validated line, ready to insert. Strings are owned (rf_ingest_job_free). */
typedef struct rf_ingest_job {
    const char *kind;        /* "completion", "chat" or "score" (static) */
    char *custom_id;
    char *input;             /* JSON text, see the header comment */
    char *params;            /* JSON text, defaults applied */
    char *metadata;          /* JSON text of the line's "metadata" object, or NULL */
    char input_hash[65];     /* hex SHA-256 */
    int64_t priority;        /* higher first */
    int64_t not_before_ms;   /* ms since the epoch; 0: any time */
    int64_t max_attempts;
} rf_ingest_job_t;

/* Parse and validate one line (len bytes, no newline) against the run's
 * defaults (a JSON object as rf_ingest_defaults_add builds, or NULL).
 * Returns 0 and fills *job; or RF_EFORMAT / RF_ETYPE / RF_ERANGE / RF_EUNSUPPORTED
 * with err->msg the reason (one line, no line number) and *job zeroed except
 * custom_id when the line had a usable one; -ENOMEM. Either way free *job
 * with rf_ingest_job_free. */
int rf_ingest_parse_line(const char *line, size_t len, const json_t *defaults,
                         rf_ingest_job_t *job, rf_err_t *err);
void rf_ingest_job_free(rf_ingest_job_t *job);

/* Validate param `name` (a line field name such as "temperature", "stop",
 * "not_before") with value v and store it, normalised, into the defaults
 * object. Returns 0, or an error with err->msg saying why (v is borrowed). */
int rf_ingest_defaults_add(json_t *defaults, const char *name, json_t *v, rf_err_t *err);

typedef struct rf_ingest_options {
    const char *run_name;      /* the run; created when missing */
    const json_t *defaults;    /* command-line defaults, merged over the run's; may be NULL */
    size_t chunk_lines;        /* lines per transaction; 0: RF_INGEST_CHUNK */
    size_t max_line_bytes;     /* 0: RF_INGEST_MAX_LINE */
    bool progress;             /* progress lines on stderr */
} rf_ingest_options_t;

typedef struct rf_ingest_stats {
    int64_t run_id;
    int64_t lines;             /* lines read, blank ones included */
    int64_t blank;
    int64_t accepted;          /* new jobs */
    int64_t present;           /* same custom_id and content already in the run */
    int64_t rejected;
    size_t n_reasons;          /* first rejections: line number and reason */
    int64_t reason_line[RF_INGEST_MAX_REASONS];
    char reason[RF_INGEST_MAX_REASONS][256];
} rf_ingest_stats_t;

/* Submit the lines of path ("-": stdin) to a run of db, one BEGIN IMMEDIATE
 * transaction per chunk of lines, parsed before the write lock is taken.
 * Bad lines go to rejected_lines (keyed by run, file, line: resubmission
 * replaces, never duplicates). Returns 0 when the file was read to the end
 * (rejections included: see stats), or a negative error with err->msg set
 * (I/O, a db.h code, RF_EUSAGE for a cancelled run); chunks committed before
 * a failure stay committed, and resubmitting is safe. */
int rf_ingest_file(rf_db_t *db, const char *path, const rf_ingest_options_t *opt,
                   rf_ingest_stats_t *stats, rf_err_t *err);

#endif /* RF_INGEST_H */
