/* test_gpu_backend.c - the GPU backend against the CPU backend
 *
 * The CPU backend matches PyTorch's logits (test_golden); here the GPU
 * backend runs the same batches on the same synthetic models and must give
 * the same logits within a stated tolerance, max |delta| / max |logit|:
 * 2e-3 for F32/F16 weights (the GPU keeps K/V in F16 and sums in another
 * order; measured 3.3e-4 and 3.9e-4 on the H100), 5e-2 for quantized
 * weights: both backends read the same blocks, but the CPU quantizes the
 * activations to 8 bits (Q8_0 / Q8_K, as ggml does) and the GPU keeps them
 * in f32, so they differ by about the CPU's own error against exact
 * arithmetic (test_golden's bounds: 0.022 for Q8_0, 0.033 for Q4_K;
 * measured here 0.020 to 0.033). Then the scheduler on the GPU: a paged pool with
 * prefix sharing and preemption gives the same greedy tokens as on the CPU
 * for requests whose logits have a clear winner. Skips without a device.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "quant.h"
#include "scheduler.h"
#include "synth.h"
#include "testutil.h"

static void need_gpu(void)
{
    if (!rf_engine_gpu_available())
        cr_skip_test("no GPU device present: the GPU backend is not checked");
}

static const char *synth(int type, const char *name)
{
    const char *path = rf_test_tmp_path("gpub", name);
    rf_synth_options_t opt = {.shape = "tiny", .type = type, .seed = 9};
    rf_err_t err = {0};
    cr_assert_eq(rf_synth_write(&opt, path, NULL, NULL, &err), 0, "synth: %s", err.msg);
    return path;
}

static rf_engine_t *open_on(const char *path, rf_device_t dev, uint32_t max_seqs)
{
    rf_engine_options_t o = {.device = dev, .n_ctx = 512, .max_seqs = max_seqs,
                             .no_tokenizer = true, .n_threads = 2};
    rf_engine_t *e = NULL;
    rf_err_t err = {0};
    int rc = rf_engine_open(&e, path, &o, &err);
    cr_assert_eq(rc, 0, "open on %s: %s", dev == RF_DEVICE_GPU ? "gpu" : "cpu", err.msg);
    return e;
}

/* Two sequences: a 37-token prompt and a 5-token one in one batch (logits
 * of every token), then 20 decode steps of both, greedy from the CPU's
 * logits fed to both engines. */
static void compare(int type, const char *name, double tol)
{
    need_gpu();
    const char *path = synth(type, name);
    rf_engine_t *cpu = open_on(path, RF_DEVICE_CPU, 2), *gpu = open_on(path, RF_DEVICE_GPU, 2);
    uint32_t n_vocab = rf_engine_hparams(cpu)->n_vocab;
    int32_t tok[42], pos[42], seq[42];
    int8_t want[42];
    for (int i = 0; i < 42; i++) {
        seq[i] = i < 37 ? 0 : 1;
        pos[i] = i < 37 ? i : i - 37;
        tok[i] = (int32_t)((i * 7919 + 13) % n_vocab);
        want[i] = 1;
    }
    rf_batch_t batch = {.n_tokens = 42, .tokens = tok, .positions = pos, .seq_ids = seq,
                        .logits = want};
    double worst = 0;
    int32_t next[2] = {0, 0};
    for (int step = 0; step <= 20; step++) {
        rf_err_t err = {0};
        cr_assert_eq(rf_engine_eval(cpu, &batch, &err), 0, "cpu: %s", err.msg);
        cr_assert_eq(rf_engine_eval(gpu, &batch, &err), 0, "gpu: %s", err.msg);
        for (uint32_t t = 0; t < batch.n_tokens; t++) {
            if (batch.logits != NULL && !batch.logits[t])
                continue;
            const float *a = rf_engine_logits(cpu, t), *b = rf_engine_logits(gpu, t);
            cr_assert(a && b);
            double max_abs = 0, max_d = 0;
            int best = 0;
            for (uint32_t v = 0; v < n_vocab; v++) {
                cr_assert(isfinite(b[v]), "gpu logit %u of token %u is not finite", v, t);
                max_abs = fmax(max_abs, fabs(a[v]));
                max_d = fmax(max_d, fabs((double)a[v] - b[v]));
                if (a[v] > a[best])
                    best = (int)v;
            }
            worst = fmax(worst, max_d / max_abs);
            next[batch.seq_ids[t]] = best;
        }
        /* Next step: one token per sequence. */
        static int32_t dtok[2], dpos[2], dseq[2] = {0, 1};
        dtok[0] = next[0];
        dtok[1] = next[1];
        dpos[0] = (int32_t)rf_engine_seq_len(cpu, 0);
        dpos[1] = (int32_t)rf_engine_seq_len(cpu, 1);
        batch = (rf_batch_t){.n_tokens = 2, .tokens = dtok, .positions = dpos, .seq_ids = dseq};
    }
    cr_log_info("%s: worst max|delta|/max|logit| = %.3g (bound %.g)", name, worst, tol);
    cr_assert_leq(worst, tol, "%s: GPU logits differ from the CPU's by %.3g (bound %.g)", name,
                  worst, tol);
    rf_engine_close(cpu);
    rf_engine_close(gpu);
}

Test(gpu_backend, f32_matches_cpu, .timeout = 120) { compare(RF_TYPE_F32, "f32.gguf", 2e-3); }
Test(gpu_backend, f16_matches_cpu, .timeout = 120) { compare(RF_TYPE_F16, "f16.gguf", 2e-3); }
Test(gpu_backend, q8_0_matches_cpu, .timeout = 120) { compare(RF_TYPE_Q8_0, "q8.gguf", 5e-2); }
Test(gpu_backend, q4_0_matches_cpu, .timeout = 120) { compare(RF_TYPE_Q4_0, "q4.gguf", 5e-2); }
Test(gpu_backend, q4_k_matches_cpu, .timeout = 120) { compare(RF_TYPE_Q4_K, "q4k.gguf", 5e-2); }
Test(gpu_backend, q6_k_matches_cpu, .timeout = 120) { compare(RF_TYPE_Q6_K, "q6k.gguf", 5e-2); }

/* The scheduler on the GPU: 40 requests with shared prefixes through a
 * small pool (preemption, prefix hits, copy-on-write), every request
 * finished, every block back, and the first generated token equal to the
 * CPU's for every request (the first token of a random model's greedy
 * choice; later tokens may legitimately diverge once two logits tie
 * within the F16 rounding). */
Test(gpu_backend, scheduler_on_the_gpu, .timeout = 300)
{
    need_gpu();
    const char *path = synth(RF_TYPE_F16, "sched.gguf");
    int32_t first[2][40];
    float first_lp[2][40];
    for (int d = 0; d < 2; d++) {
        rf_engine_options_t o = {.device = d ? RF_DEVICE_GPU : RF_DEVICE_CPU, .n_ctx = 256,
                                 .max_seqs = 8, .no_tokenizer = true, .kv_paged = true,
                                 .kv_blocks = 30, .kv_block_size = 16, .n_threads = 2};
        rf_engine_t *e = NULL;
        rf_err_t err = {0};
        cr_assert_eq(rf_engine_open(&e, path, &o, &err), 0, "%s", err.msg);
        rf_sched_t *s;
        rf_sched_options_t so = {.max_batched_tokens = 64, .check_kv = true};
        cr_assert_eq(rf_sched_open(&s, e, &so, &err), 0, "%s", err.msg);
        static int32_t prompts[40][100];
        for (int i = 0; i < 40; i++) {
            uint32_t n = 20 + (uint32_t)(i * 13 % 70);
            for (uint32_t k = 0; k < n; k++)
                prompts[i][k] = (int32_t)(k < 32 ? 5 + k : 3 + (i * 31 + k * 7) % 500);
            rf_request_t r = {.id = (uint64_t)i, .prompt = prompts[i], .n_prompt = n,
                              .max_tokens = 12, .ignore_eos = true, .logprobs = true};
            rf_sampling_params_default(&r.sampling);
            cr_assert_eq(rf_sched_submit(s, &r, &err), 0, "%s", err.msg);
        }
        int done = 0;
        while (rf_sched_has_work(s)) {
            rf_err_clear(&err);
            cr_assert_geq(rf_sched_step(s, &err), 0, "%s", err.msg);
            rf_sched_event_t ev;
            while (rf_sched_poll(s, &ev)) {
                cr_assert_neq(ev.kind, RF_SCHED_EV_FAILED, "%s", ev.error);
                if (ev.kind == RF_SCHED_EV_FINISHED) {
                    first[d][ev.id] = ev.output->tokens[0];
                    first_lp[d][ev.id] = ev.output->samples[0].logprob;
                    done++;
                }
                rf_sched_event_free(&ev);
            }
        }
        rf_sched_stats_t st;
        rf_sched_get_stats(s, &st);
        cr_assert_eq(done, 40);
        cr_assert_eq(st.kv_blocks_free, st.kv_blocks - 1);
        cr_log_info("%s: %llu steps, %llu preemptions, %llu prefix hit tokens", d ? "gpu" : "cpu",
                    (unsigned long long)st.steps, (unsigned long long)st.preemptions,
                    (unsigned long long)st.prefix_hit_tokens);
        rf_sched_close(s);
        rf_engine_close(e);
    }
    int same = 0;
    for (int i = 0; i < 40; i++) {
        same += first[0][i] == first[1][i];
        /* The GPU chose on the device (greedy, no penalties): its
         * log-probability matches the CPU sampler's. */
        if (first[0][i] == first[1][i])
            cr_assert(fabsf(first_lp[0][i] - first_lp[1][i]) < 1e-2,
                      "request %d: logprob %f on the CPU, %f on the GPU", i, first_lp[0][i],
                      first_lp[1][i]);
    }
    cr_assert_geq(same, 38, "first tokens agree for only %d of 40 requests", same);
}
