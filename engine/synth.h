/* synth.h - random-weight models at named shapes, for tests and benchmarks
 *
 * rf_synth_write() writes a Llama-architecture GGUF with the hyperparameters
 * of a named shape, weights drawn from a seeded counter-based generator
 * (the same seed gives the same file), and a synthetic byte-level BPE
 * vocabulary (256 byte tokens, merged tokens built from them, special
 * tokens), so every loader path sees a complete model. Weights do not change
 * speed, so benchmarks at real shapes need no downloads.
 */
#ifndef RF_SYNTH_H
#define RF_SYNTH_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct rf_synth_shape {
    const char *name;          /* "tiny", "llama-3.2-1b", "llama-3-8b" */
    const char *description;
    uint32_t n_vocab;
    uint32_t n_embd;
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t n_ff;
    uint32_t n_ctx;            /* context length the shape advertises */
    float rope_freq_base;
    float rms_eps;
    bool tied_output;          /* default; rf_synth_options_t can untie */
} rf_synth_shape_t;

/* The built-in shapes, terminated by an entry with name == NULL. */
const rf_synth_shape_t *rf_synth_shapes(void);
const rf_synth_shape_t *rf_synth_find_shape(const char *name); /* NULL if unknown */

typedef struct rf_synth_options {
    const char *shape;     /* a name from rf_synth_shapes() */
    int type;              /* rf_type_t of the 2-D weights (needs a quantizer) */
    uint64_t seed;
    int output;            /* 0: shape's default, 1: untied output.weight, -1: tied */
    uint32_t n_layer;      /* 0: the shape's; else override (smaller benchmarks) */
} rf_synth_options_t;

/* Total bytes of tensor data the options produce (for progress and checks). */
int rf_synth_data_bytes(const rf_synth_options_t *opt, uint64_t *out);

/* Write the model to path. progress, if non-NULL, is called after each
 * chunk with bytes written so far and the total. Returns 0, RF_EUSAGE
 * (unknown shape, type without a quantizer, ne[0] not a multiple of the
 * type's block), -errno on I/O; err says which. */
int rf_synth_write(const rf_synth_options_t *opt, const char *path,
                   void (*progress)(void *ctx, uint64_t done, uint64_t total),
                   void *progress_ctx, rf_err_t *err);

#endif /* RF_SYNTH_H */
