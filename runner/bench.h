/* bench.h - pieces the benchmark commands share (private to runner/) */
#ifndef RF_BENCH_H
#define RF_BENCH_H

#include "engine.h"

/* One sequence on e: a prompt of n_prompt tokens, then n_gen tokens one
 * pass each, reps times; medians in seconds (cmd_bench.c). */
int rf__bench_decode(rf_engine_t *e, long n_prompt, long n_gen, long reps, double *prompt_s,
                     double *gen_s, rf_err_t *err);

/* bench batch's workload once (bench_batch.c): n_prompts random prompts of
 * n_in tokens, n_out generated each, continuous batching at max_seqs;
 * output tokens/s over the whole run in *out_tps. */
int rf__bench_batch_measure(const char *model, rf_device_t device, long n_prompts, long n_in,
                            long n_out, uint32_t max_seqs, long max_batched, double *seconds,
                            double *out_tps, rf_err_t *err);

/* `rocmforge bench gpu` (bench_gpu.c). */
int rf__bench_gpu(int argc, char **argv);

#endif
