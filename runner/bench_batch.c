/* bench_batch.c - `rocmforge bench batch`: the scheduler's throughput
 *
 * Runs one workload of N prompts (L_in random tokens each, L_out generated
 * tokens, greedy, end-of-generation ignored so every request generates
 * exactly L_out) through the engine's scheduler once per --max-seqs value,
 * side by side in one process, and prints output tokens/s, the mean batch
 * size and preemptions of each. Then the same N prompts behind one shared
 * prefix of --prefix tokens, with and without prefix caching, to show the
 * cache's hit rate and what it saves. No database: this is the engine alone
 * (`rocmforge run` adds SQLite and libuv on top).
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cli.h"
#include "engine.h"
#include "scheduler.h"

static void batch_usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge bench batch -m MODEL.gguf [--prompts N] [--in L] [--out L]\n"
            "                             [--max-seqs LIST] [--max-batched-tokens N]\n"
            "                             [--prefix L] [--kv-memory BYTES] [-t N]\n"
            "\n"
            "Continuous batching on the engine: N prompts of --in random tokens, --out\n"
            "generated tokens each (greedy), run once per value of --max-seqs (default\n"
            "1,4,16,64); prints output tokens/s, mean sequences per step and preemptions.\n"
            "Then the prompts behind a shared --prefix-token prefix (default 512; 0 skips\n"
            "it) at the largest --max-seqs, with and without prefix caching.\n"
            "\n"
            "  --prompts N             requests (default 64)\n"
            "  --in L, --out L         prompt and generated tokens (default 128, 128)\n"
            "  --max-batched-tokens N  tokens per forward pass (default 512)\n"
            "  --kv-memory MIB         KV pool in MiB (default: room for every sequence)\n"
            "  --device cpu|gpu|auto   backend (default cpu)\n"
            "  -t, --threads N         CPU threads (default: all cores)\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct workload {
    const char *model;
    long n_prompts, n_in, n_out, max_batched, threads, kv_mib, prefix;
    rf_device_t device;
} workload_t;

typedef struct result {
    double seconds, out_tps, mean_batch;
    uint64_t preemptions, steps, hit_tokens, query_tokens;
} result_t;

/* One run: open an engine sized for it, submit everything, step to the end. */
static int run_one(const workload_t *w, uint32_t max_seqs, long prefix, bool prefix_cache,
                   result_t *res, rf_err_t *err)
{
    uint32_t n_ctx = (uint32_t)(prefix + w->n_in + w->n_out + 1);
    rf_engine_options_t eo = {.device = w->device, .n_threads = (int)w->threads, .n_ctx = n_ctx,
                              .max_seqs = max_seqs,
                              .no_tokenizer = true, .kv_paged = true,
                              .kv_memory = (uint64_t)w->kv_mib << 20};
    rf_engine_t *e = NULL;
    int rc = rf_engine_open(&e, w->model, &eo, err);
    if (rc < 0)
        return rc;
    rf_sched_options_t so = {.max_batched_tokens = (uint32_t)w->max_batched,
                             .max_seqs = max_seqs, .no_prefix_cache = !prefix_cache};
    rf_sched_t *s = NULL;
    rc = rf_sched_open(&s, e, &so, err);
    uint32_t n_vocab = rf_engine_hparams(e)->n_vocab;
    size_t len = (size_t)(prefix + w->n_in);
    int32_t *prompt = malloc(len * sizeof *prompt);
    if (rc == 0 && prompt == NULL)
        rc = rf_err_set(err, -ENOMEM, "out of memory");
    double t0 = now_s();
    for (long i = 0; rc == 0 && i < w->n_prompts; i++) {
        /* Random weights: which ids a prompt holds does not change the
         * cost, only whether prompts share a prefix does. */
        for (size_t k = 0; k < len; k++) {
            uint64_t salt = k < (size_t)prefix ? 0 : (uint64_t)i + 1;
            prompt[k] = (int32_t)((salt * 1000003u + k * 2654435761u + 7) % n_vocab);
        }
        rf_request_t r = {.id = (uint64_t)i, .rng_id = (uint64_t)i, .prompt = prompt,
                          .n_prompt = (uint32_t)len, .max_tokens = (uint32_t)w->n_out,
                          .ignore_eos = true};
        rf_sampling_params_default(&r.sampling);
        rc = rf_sched_submit(s, &r, err);
    }
    uint64_t steps_sum = 0, batch_sum = 0, out_tokens = 0;
    while (rc == 0 && rf_sched_has_work(s)) {
        rc = rf_sched_step(s, err);
        if (rc > 0)
            rc = 0;
        rf_sched_event_t ev;
        while (rf_sched_poll(s, &ev)) {
            if (ev.kind == RF_SCHED_EV_FAILED && rc == 0)
                rc = rf_err_set(err, (int)ev.value, "request %llu failed: %s",
                                (unsigned long long)ev.id, ev.error);
            if (ev.kind == RF_SCHED_EV_FINISHED) {
                steps_sum += ev.output->steps;
                batch_sum += ev.output->batch_seqs_sum;
                out_tokens += ev.output->n_tokens;
            }
            rf_sched_event_free(&ev);
        }
    }
    double t = now_s() - t0;
    if (rc == 0) {
        rf_sched_stats_t st;
        rf_sched_get_stats(s, &st);
        *res = (result_t){.seconds = t, .out_tps = (double)out_tokens / t,
                          .mean_batch = steps_sum ? (double)batch_sum / (double)steps_sum : 0,
                          .preemptions = st.preemptions, .steps = st.steps,
                          .hit_tokens = st.prefix_hit_tokens,
                          .query_tokens = st.prefix_query_tokens};
    }
    free(prompt);
    rf_sched_close(s);
    rf_engine_close(e);
    return rc;
}

int rf__bench_batch_measure(const char *model, rf_device_t device, long n_prompts, long n_in,
                            long n_out, uint32_t max_seqs, long max_batched, double *seconds,
                            double *out_tps, rf_err_t *err)
{
    workload_t w = {.model = model, .n_prompts = n_prompts, .n_in = n_in, .n_out = n_out,
                    .max_batched = max_batched, .device = device};
    result_t res = {0};
    int rc = run_one(&w, max_seqs, 0, true, &res, err);
    if (rc == 0) {
        *seconds = res.seconds;
        *out_tps = res.out_tps;
    }
    return rc;
}

static bool parse_list(const char *s, long *out, int *n)
{
    *n = 0;
    while (*s != '\0' && *n < 16) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096)
            return false;
        out[(*n)++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',' && *end != '\0')
            return false;
    }
    return *n > 0;
}

int rf__bench_batch(int argc, char **argv)
{
    workload_t w = {.n_prompts = 64, .n_in = 128, .n_out = 128, .max_batched = 512,
                    .prefix = 512};
    long seqs[16] = {1, 4, 16, 64};
    int n_seqs = 4;
    enum { O_PROMPTS = 256, O_IN, O_OUT, O_SEQS, O_MBT, O_PREFIX, O_KV, O_DEVICE };
    static const struct option longopts[] = {
        {"model", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 't'},
        {"prompts", required_argument, NULL, O_PROMPTS}, {"in", required_argument, NULL, O_IN},
        {"out", required_argument, NULL, O_OUT}, {"max-seqs", required_argument, NULL, O_SEQS},
        {"max-batched-tokens", required_argument, NULL, O_MBT},
        {"prefix", required_argument, NULL, O_PREFIX},
        {"kv-memory", required_argument, NULL, O_KV}, {"help", no_argument, NULL, 'h'},
        {"device", required_argument, NULL, O_DEVICE},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:t:h", longopts, NULL)) != -1) {
        long *target = NULL, lo = 1, hi = 1 << 20;
        switch (c) {
        case 'm': w.model = optarg; continue;
        case 't': target = &w.threads; hi = 1024; break;
        case O_PROMPTS: target = &w.n_prompts; break;
        case O_IN: target = &w.n_in; break;
        case O_OUT: target = &w.n_out; break;
        case O_MBT: target = &w.max_batched; break;
        case O_PREFIX: target = &w.prefix; lo = 0; break;
        case O_KV: target = &w.kv_mib; break;
        case O_DEVICE:
            if (strcmp(optarg, "cpu") == 0)
                w.device = RF_DEVICE_CPU;
            else if (strcmp(optarg, "gpu") == 0)
                w.device = RF_DEVICE_GPU;
            else if (strcmp(optarg, "auto") == 0)
                w.device = RF_DEVICE_AUTO;
            else {
                rf__cli_error("bench", "bad value '%s' for --device (cpu, gpu or auto)", optarg);
                return RF_EXIT_USAGE;
            }
            continue;
        case O_SEQS:
            if (!parse_list(optarg, seqs, &n_seqs)) {
                rf__cli_error("bench", "bad value '%s' for --max-seqs (a list like 1,4,16,64)",
                              optarg);
                return RF_EXIT_USAGE;
            }
            continue;
        case 'h': batch_usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("bench", "unknown or incomplete option '%s'; see 'rocmforge bench "
                          "batch --help'", argv[optind - 1]);
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
    if (w.model == NULL || optind != argc) {
        rf__cli_error("bench", "batch needs -m MODEL.gguf; see 'rocmforge bench batch --help'");
        return RF_EXIT_USAGE;
    }
    printf("model: %s, %ld prompts x %ld in / %ld out, %ld tokens per step, %s\n", w.model,
           w.n_prompts, w.n_in, w.n_out, w.max_batched,
           w.device == RF_DEVICE_GPU ? "GPU" : w.device == RF_DEVICE_AUTO ? "auto" : "CPU");
    printf("%-10s %10s %12s %12s %12s\n", "max_seqs", "seconds", "out tok/s", "mean batch",
           "preemptions");
    long largest = 1;
    for (int i = 0; i < n_seqs; i++) {
        result_t r;
        rf_err_t err = {0};
        int rc = run_one(&w, (uint32_t)seqs[i], 0, true, &r, &err);
        if (rc < 0) {
            rf__cli_error("bench", "max_seqs %ld: %s", seqs[i], err.msg[0] ? err.msg
                                                                       : rf_strerror(rc));
            return RF_EXIT_FAIL;
        }
        printf("%-10ld %10.2f %12.1f %12.2f %12llu\n", seqs[i], r.seconds, r.out_tps,
               r.mean_batch, (unsigned long long)r.preemptions);
        fflush(stdout);
        if (seqs[i] > largest)
            largest = seqs[i];
    }
    if (w.prefix == 0)
        return RF_EXIT_OK;
    printf("\nshared %ld-token prefix, max_seqs %ld:\n", w.prefix, largest);
    printf("%-14s %10s %12s %12s\n", "prefix cache", "seconds", "out tok/s", "hit rate");
    for (int on = 1; on >= 0; on--) {
        result_t r;
        rf_err_t err = {0};
        int rc = run_one(&w, (uint32_t)largest, w.prefix, on, &r, &err);
        if (rc < 0) {
            rf__cli_error("bench", "prefix workload: %s", err.msg[0] ? err.msg : rf_strerror(rc));
            return RF_EXIT_FAIL;
        }
        printf("%-14s %10.2f %12.1f %11.1f%%\n", on ? "on" : "off", r.seconds, r.out_tps,
               r.query_tokens ? 100.0 * (double)r.hit_tokens / (double)r.query_tokens : 0.0);
        fflush(stdout);
    }
    return RF_EXIT_OK;
}
