/* bench_gpu.c - `rocmforge bench gpu`: the GPU's ceilings and each model's
 * figures against them, in one table
 *
 * First the device: its copy bandwidth (device-to-device copies of 1 GiB,
 * bytes read plus written: the roofline's denominator) and the rate of the
 * engine's GEMM (F16 weights 8192 x 8192, 8192 tokens, f32 activations in
 * and out, the f32 -> F16 conversion included, as prefill and large decode
 * batches run it). Then, per model: the bytes of weights one decode token
 * reads (every matmul weight once; the embedding row is negligible), the
 * roofline (bandwidth over those bytes), single-sequence decode tokens/s
 * (greedy on the device) and its fraction of the roofline, and output
 * tokens/s of bench batch's workload (--prompts 0 skips it).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "engine.h"
#include "model.h"
#include "quant.h"

#ifdef RF_HAVE_GPU
#include "kernels.h"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge bench gpu [-m MODEL.gguf]... [options]\n"
            "\n"
            "The GPU's copy bandwidth and GEMM rate, then for each model the bytes of\n"
            "weights a decode token reads, the roofline (bandwidth / bytes), one\n"
            "sequence's decode tokens/s and its fraction of the roofline, and output\n"
            "tokens/s of a batch workload through the engine. Runs on GPU 0 (choose\n"
            "another with CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES).\n"
            "\n"
            "options:\n"
            "  -m, --model FILE          a model (up to 8; none: the device figures only)\n"
            "  -p, --prompt N            prompt tokens before decoding (default 128)\n"
            "  -n, --gen N               decoded tokens, one sequence (default 128)\n"
            "      --reps N              decode runs, the median is shown (default 3)\n"
            "      --prompts N           batch workload: prompts (default 1024; 0 skips)\n"
            "      --in L, --out L       batch workload: tokens in and out (default 128, 128)\n"
            "      --max-seqs N          batch workload: sequences at once (default 256)\n"
            "      --max-batched-tokens N  batch workload: tokens per step (default 4096)\n"
            "  -h, --help                show this help\n");
}

#ifdef RF_HAVE_GPU
/* Bytes of weights one decode token reads: each matmul weight once. */
static double weight_bytes_per_token(const rf_model_t *m)
{
    const rf_weight_t *seen[1024];
    size_t n_seen = 0;
    double bytes = 0;
    for (size_t i = 0; i < m->plan.n_ops; i++) {
        const rf_op_t *op = &m->plan.ops[i];
        if (op->kind != RF_OP_MATMUL && op->kind != RF_OP_LOGITS)
            continue;
        const rf_weight_t *w = op->w[0];
        bool dup = false;
        for (size_t k = 0; k < n_seen && !dup; k++)
            dup = seen[k] == w;
        if (dup || w == NULL || w->data == NULL)
            continue;
        if (n_seen < sizeof seen / sizeof seen[0])
            seen[n_seen++] = w;
        bytes += (double)w->row_bytes * (double)w->ne[1] * (double)(w->ne[2] ? w->ne[2] : 1);
    }
    return bytes;
}

/* Device-to-device copy bandwidth in bytes/s, read plus written. */
static int copy_bandwidth(double *out, rf_err_t *err)
{
    const size_t bytes = (size_t)1 << 30;
    const int reps = 10;
    void *a = NULL, *b = NULL;
    rf_gpu_stream_t s = NULL;
    rf_gpu_event_t e0 = NULL, e1 = NULL;
    int rc = rf_gpu_malloc(&a, bytes);
    if (rc == 0)
        rc = rf_gpu_malloc(&b, bytes);
    if (rc == 0)
        rc = rf_gpu_memset(a, 0x5a, bytes);
    if (rc == 0)
        rc = rf_gpu_stream_create(&s);
    if (rc == 0)
        rc = rf_gpu_event_create(&e0);
    if (rc == 0)
        rc = rf_gpu_event_create(&e1);
    for (int i = 0; rc == 0 && i < 2; i++) /* warm-up */
        rc = rf_gpu_memcpy_d2d(b, a, bytes, s);
    if (rc == 0)
        rc = rf_gpu_event_record(e0, s);
    for (int i = 0; rc == 0 && i < reps; i++)
        rc = rf_gpu_memcpy_d2d(i % 2 ? a : b, i % 2 ? b : a, bytes, s);
    if (rc == 0)
        rc = rf_gpu_event_record(e1, s);
    float ms = 0;
    if (rc == 0)
        rc = rf_gpu_event_elapsed_ms(&ms, e0, e1);
    if (rc == 0 && ms > 0)
        *out = 2.0 * (double)bytes * reps / (ms / 1e3);
    else if (rc == 0)
        rc = RF_KERNEL_EGPU;
    rf_gpu_event_destroy(e0);
    rf_gpu_event_destroy(e1);
    rf_gpu_stream_destroy(s);
    rf_gpu_free(a);
    rf_gpu_free(b);
    return rc < 0 ? rf_err_set(err, RF_EGPU, "bench gpu: the copy bandwidth measurement "
                               "failed (2 GiB of device memory needed)") : 0;
}

/* The engine's GEMM on F16 weights: FLOP/s, or 0 without a vendor BLAS. */
static int gemm_rate(double *out, rf_err_t *err)
{
    *out = 0;
    enum { N = 8192 };
    rf_gpu_blas_t *blas = NULL;
    if (rf_gpu_blas_open(&blas) < 0)
        return 0; /* no BLAS in this build: the table says so */
    const size_t n2 = (size_t)N * N;
    uint16_t *hw = malloc(n2 * sizeof *hw);
    float *hx = malloc(n2 * sizeof *hx);
    void *w = NULL, *x = NULL, *y = NULL, *ws = NULL;
    size_t ws_bytes = rf_kernel_gemm_workspace(N, N);
    rf_gpu_stream_t s = NULL;
    rf_gpu_event_t e0 = NULL, e1 = NULL;
    int rc = hw != NULL && hx != NULL ? 0 : -ENOMEM;
    /* Random values: all-zero operands run faster than real ones. */
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; rc == 0 && i < n2; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        float v = (float)(int32_t)(state >> 40 & 0xffffff) / (float)(1 << 24) - 0.5f;
        hw[i] = rf_fp32_to_fp16(v);
        hx[i] = v;
    }
    if (rc == 0)
        rc = rf_gpu_malloc(&w, n2 * 2);
    if (rc == 0)
        rc = rf_gpu_malloc(&x, n2 * 4);
    if (rc == 0)
        rc = rf_gpu_malloc(&y, n2 * 4);
    if (rc == 0)
        rc = rf_gpu_malloc(&ws, ws_bytes);
    if (rc == 0)
        rc = rf_gpu_memcpy_h2d(w, hw, n2 * 2);
    if (rc == 0)
        rc = rf_gpu_memcpy_h2d(x, hx, n2 * 4);
    if (rc == 0)
        rc = rf_gpu_stream_create(&s);
    if (rc == 0)
        rc = rf_gpu_event_create(&e0);
    if (rc == 0)
        rc = rf_gpu_event_create(&e1);
    const int reps = 5;
    for (int i = 0; rc == 0 && i < reps + 2; i++) {
        if (i == 2)
            rc = rf_gpu_event_record(e0, s);
        if (rc == 0)
            rc = rf_kernel_gemm_f32(blas, RF_TYPE_F16, w, x, y, N, N, N, ws, ws_bytes, s);
    }
    if (rc == 0)
        rc = rf_gpu_event_record(e1, s);
    float ms = 0;
    if (rc == 0)
        rc = rf_gpu_event_elapsed_ms(&ms, e0, e1);
    if (rc == 0 && ms > 0)
        *out = 2.0 * (double)N * N * N * reps / (ms / 1e3);
    rf_gpu_event_destroy(e0);
    rf_gpu_event_destroy(e1);
    rf_gpu_stream_destroy(s);
    rf_gpu_free(w);
    rf_gpu_free(x);
    rf_gpu_free(y);
    rf_gpu_free(ws);
    rf_gpu_blas_close(blas);
    free(hw);
    free(hx);
    return rc < 0 ? rf_err_set(err, RF_EGPU, "bench gpu: the GEMM measurement failed (%s)",
                               rc == -ENOMEM ? "out of host memory" : "device error") : 0;
}
#endif

int rf__bench_gpu(int argc, char **argv)
{
    const char *models[8];
    int n_models = 0;
    long n_prompt = 128, n_gen = 128, reps = 3, prompts = 1024, n_in = 128, n_out = 128;
    long max_seqs = 256, max_batched = 4096;
    enum { O_REPS = 256, O_PROMPTS, O_IN, O_OUT, O_SEQS, O_BATCHED };
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"gen", required_argument, NULL, 'n'},
        {"reps", required_argument, NULL, O_REPS},
        {"prompts", required_argument, NULL, O_PROMPTS},
        {"in", required_argument, NULL, O_IN},
        {"out", required_argument, NULL, O_OUT},
        {"max-seqs", required_argument, NULL, O_SEQS},
        {"max-batched-tokens", required_argument, NULL, O_BATCHED},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:h", long_options, NULL)) != -1) {
        long *target = NULL;
        long lo = 1, hi = 1 << 20;
        switch (c) {
        case 'm':
            if (n_models == 8) {
                rf__cli_error("bench", "gpu takes at most 8 models");
                return RF_EXIT_USAGE;
            }
            models[n_models++] = optarg;
            continue;
        case 'p': target = &n_prompt; break;
        case 'n': target = &n_gen; break;
        case O_REPS: target = &reps; hi = 100; break;
        case O_PROMPTS: target = &prompts; lo = 0; break;
        case O_IN: target = &n_in; break;
        case O_OUT: target = &n_out; break;
        case O_SEQS: target = &max_seqs; hi = 4096; break;
        case O_BATCHED: target = &max_batched; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("bench", "unknown or incomplete option '%s'; see 'rocmforge bench gpu "
                          "--help'", argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
        char *end;
        long v = strtol(optarg, &end, 10);
        if (*optarg == '\0' || *end != '\0' || v < lo || v > hi) {
            rf__cli_error("bench", "bad value '%s' for %s", optarg, argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
        *target = v;
    }
    if (optind != argc) {
        rf__cli_error("bench", "gpu: unexpected argument '%s'; see 'rocmforge bench gpu --help'",
                      argv[optind]);
        return RF_EXIT_USAGE;
    }
#ifndef RF_HAVE_GPU
    (void)models;
    rf__cli_error("bench", "gpu: this build has no GPU backend (configure with -DRF_GPU=CUDA "
                  "or -DRF_GPU=HIP)");
    return RF_EXIT_FAIL;
#else
    int n_dev = 0;
    rf_gpu_device_count(&n_dev);
    rf_gpu_info_t info;
    if (n_dev == 0 || rf_gpu_set_device(0) < 0 || rf_gpu_device_info(0, &info) < 0) {
        rf__cli_error("bench", "gpu: no GPU found (no device, or no driver)");
        return RF_EXIT_FAIL;
    }
    rf_err_t err = {0};
    double bw = 0, gemm = 0;
    if (copy_bandwidth(&bw, &err) < 0 || gemm_rate(&gemm, &err) < 0) {
        rf__cli_error("bench", "%s", err.msg);
        return RF_EXIT_FAIL;
    }
    printf("device: %s (%s, %d multiprocessors, %.1f GiB)\n", info.name, info.platform,
           info.multiprocessors, (double)info.total_memory / (1 << 30));
    printf("copy bandwidth: %.0f GB/s (device to device, 1 GiB, bytes read + written)\n",
           bw / 1e9);
    if (gemm > 0)
        printf("GEMM rate: %.0f TFLOP/s (engine GEMM: F16 weights 8192 x 8192, 8192 tokens, "
               "f32 in and out)\n", gemm / 1e12);
    else
        printf("GEMM rate: - (no vendor BLAS in this build: every matmul is a GEMV)\n");
    if (n_models == 0)
        return RF_EXIT_OK;
    printf("\n%-28s %9s %10s %11s %8s %14s\n", "model", "GB/token", "roofline", "1-seq tok/s",
           "of roof", "batch out tok/s");
    int status = RF_EXIT_OK;
    for (int k = 0; k < n_models; k++) {
        rf_engine_t *e = NULL;
        rf_engine_options_t opt = {.device = RF_DEVICE_GPU,
                                   .n_ctx = (uint32_t)(n_prompt + n_gen + 1), .max_seqs = 1,
                                   .no_tokenizer = true};
        double pm = 0, gm = 0, bytes = 0;
        int rc = rf_engine_open(&e, models[k], &opt, &err);
        if (rc == 0) {
            bytes = weight_bytes_per_token(rf_engine_model(e));
            rc = rf__bench_decode(e, n_prompt, n_gen, reps, &pm, &gm, &err);
        }
        rf_engine_close(e);
        double secs = 0, tps = 0;
        if (rc == 0 && prompts > 0)
            rc = rf__bench_batch_measure(models[k], RF_DEVICE_GPU, prompts, n_in, n_out,
                                         (uint32_t)max_seqs, max_batched, &secs, &tps, &err);
        if (rc < 0) {
            rf__cli_error("bench", "%s: %s", models[k], err.msg[0] ? err.msg : rf_strerror(rc));
            rf_err_clear(&err);
            status = RF_EXIT_FAIL;
            continue;
        }
        const char *base = strrchr(models[k], '/');
        base = base != NULL ? base + 1 : models[k];
        double roof = bw / bytes, decode = (double)n_gen / gm;
        char batch[32] = "-";
        if (prompts > 0)
            snprintf(batch, sizeof batch, "%.0f", tps);
        printf("%-28s %9.2f %10.0f %11.1f %7.1f%% %14s\n", base, bytes / 1e9, roof, decode,
               100.0 * decode / roof, batch);
    }
    if (prompts > 0)
        printf("\nbatch: %ld prompts x %ld in / %ld out, up to %ld sequences, %ld tokens per "
               "step (bench batch's workload, engine only)\n", prompts, n_in, n_out, max_seqs,
               max_batched);
    printf("decode: one sequence, %ld tokens after a %ld-token prompt, median of %ld runs\n",
           n_gen, n_prompt, reps);
    return status;
#endif
}
