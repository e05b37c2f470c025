/* cmd_bench.c - `rocmforge bench`: throughput benchmarks
 *
 * `bench tokenize` times the tokenizer, single thread, on text files: each
 * file is read into memory and encoded whole, repeatedly, for at least
 * --seconds, and the median pass gives MB/s (decimal megabytes of input per
 * second) and tokens/s. Engine benchmarks join this command later.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "gguf.h"
#include "engine.h"
#include "tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge bench tokenize -m VOCAB.gguf [options] FILE...\n"
            "       rocmforge bench cpu -m MODEL.gguf [-p N] [-n N] [-t N] [--reps N] [--device gpu]\n"
            "       rocmforge bench batch -m MODEL.gguf [options] (see bench batch --help)\n"
            "       rocmforge bench gpu [-m MODEL.gguf]... [options] (see bench gpu --help)\n"
            "       rocmforge bench memory [-t N] [--mib N] [--reps N]\n"
            "\n"
            "Benchmarks. 'tokenize' encodes each text file whole on one thread, again and\n"
            "again for at least --seconds, and prints MB/s (10^6 bytes of input per\n"
            "second, median pass), tokens/s and bytes per token.\n"
            "\n"
            "options:\n"
            "'cpu' times the CPU engine on one sequence: a prompt of -p tokens (default\n"
            "128) in one forward pass, then -n generated tokens (default 128) one pass\n"
            "each (greedy on the logits, so no sampler cost), and prints tokens/s of each,\n"
            "the median of --reps runs (default 3).\n"
            "\n"
            "  -m, --model FILE    model or vocab-only GGUF whose tokenizer to use\n"
            "      --seconds S     time per file (default 2)\n"
            "      --special       recognise special tokens written in the text\n"
            "  -h, --help          show this help\n");
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2);
            if (bigger == NULL) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    int rc = ferror(f) ? -EIO : 0;
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_tokenize(int argc, char **argv)
{
    const char *model = NULL;
    double seconds = 2.0;
    bool special = false;
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"seconds", required_argument, NULL, 's'},
        {"special", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 's': {
            char *end;
            seconds = strtod(optarg, &end);
            if (*end != '\0' || !(seconds > 0.0 && seconds <= 3600.0)) {
                rf__cli_error("bench", "--seconds wants a number of seconds, got '%s'", optarg);
                return RF_EXIT_USAGE;
            }
            break;
        }
        case 'S': special = true; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("bench", "unknown or incomplete option '%s'; see 'rocmforge bench --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (model == NULL || optind >= argc) {
        rf__cli_error("bench", "tokenize needs -m VOCAB.gguf and at least one text file");
        return RF_EXIT_USAGE;
    }
    rf_tokenizer_t *tok = NULL;
    if (rf__cli_open_tokenizer("bench", model, &tok) < 0)
        return RF_EXIT_FAIL;
    printf("tokenizer: %s (%s%s%s), one thread, >= %.1f s per file\n", model,
           rf_tokenizer_kind(tok) == RF_TOKENIZER_SPM ? "llama/SPM" : "gpt2/BPE",
           rf_tokenizer_kind(tok) == RF_TOKENIZER_BPE ? ", pre " : "",
           rf_tokenizer_pre(tok), seconds);
    printf("%-40s %10s %8s %10s %12s %8s\n", "file", "bytes", "passes", "MB/s", "tokens/s",
           "B/token");
    int status = RF_EXIT_OK;
    rf_tokenize_options_t opt = {.add_special = false, .parse_special = special};
    for (int i = optind; i < argc; i++) {
        char *text = NULL;
        size_t len = 0;
        int rc = read_file(argv[i], &text, &len);
        if (rc < 0) {
            rf__cli_error("bench", "%s: %s", argv[i], rf_strerror(rc));
            status = RF_EXIT_FAIL;
            continue;
        }
        double times[4096];
        size_t passes = 0, n_tokens = 0;
        double start = now_seconds();
        rf_tokens_t ids = {0};
        while (passes < sizeof times / sizeof times[0]) {
            ids.n = 0;
            double t0 = now_seconds();
            rc = rf_tokenizer_encode(tok, text, len, &opt, &ids);
            double t1 = now_seconds();
            if (rc < 0)
                break;
            times[passes++] = t1 - t0;
            n_tokens = ids.n;
            if (t1 - start >= seconds && passes >= 3)
                break;
        }
        rf_tokens_free(&ids);
        free(text);
        if (rc < 0) {
            rf__cli_error("bench", "%s: encoding failed: %s", argv[i], rf_strerror(rc));
            status = RF_EXIT_FAIL;
            continue;
        }
        qsort(times, passes, sizeof times[0], compare_double);
        double median = times[passes / 2];
        printf("%-40s %10zu %8zu %10.2f %12.0f %8.2f\n", argv[i], len, passes,
               (double)len / median / 1e6, (double)n_tokens / median,
               n_tokens ? (double)len / (double)n_tokens : 0.0);
    }
    rf_tokenizer_close(tok);
    return status;
}

static int argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int)best;
}

/* One sequence: a prompt of n_prompt tokens in one pass, then n_gen tokens
 * one pass each, reps times; the medians in *prompt_s and *gen_s. On the GPU
 * the greedy choice is made on the device (RF_LOGITS_GREEDY, as greedy jobs
 * run); on the CPU the host takes the argmax of the logits. */
int rf__bench_decode(rf_engine_t *e, long n_prompt, long n_gen, long reps, double *prompt_s,
                     double *gen_s, rf_err_t *err)
{
    uint32_t n_vocab = rf_engine_hparams(e)->n_vocab;
    bool greedy = rf_engine_on_gpu(e);
    int32_t *tokens = malloc((size_t)n_prompt * sizeof *tokens);
    int32_t *pos = malloc((size_t)n_prompt * sizeof *pos);
    int32_t *seq = calloc((size_t)n_prompt, sizeof *seq);
    int8_t *want = calloc((size_t)n_prompt, sizeof *want);
    double *ps = calloc((size_t)reps, sizeof *ps);
    double *gs = calloc((size_t)reps, sizeof *gs);
    int rc = 0;
    if (tokens == NULL || pos == NULL || seq == NULL || want == NULL || ps == NULL || gs == NULL) {
        rc = rf_err_set(err, -ENOMEM, "out of memory");
        goto done;
    }
    /* A fixed pseudo-random prompt: weights are random too, and the cost of
     * a forward pass does not depend on which ids it sees. */
    for (long i = 0; i < n_prompt; i++) {
        tokens[i] = (int32_t)(((uint64_t)(i + 1) * 2654435761u) % n_vocab);
        pos[i] = (int32_t)i;
    }
    want[n_prompt - 1] = greedy ? RF_LOGITS_GREEDY : RF_LOGITS_FULL;
    for (long r = 0; r < reps && rc == 0; r++) {
        rf_engine_seq_truncate(e, 0, 0);
        rf_batch_t batch = {.n_tokens = (uint32_t)n_prompt, .tokens = tokens, .positions = pos,
                            .seq_ids = seq, .logits = want};
        double t0 = now_seconds();
        rc = rf_engine_eval(e, &batch, err);
        ps[r] = now_seconds() - t0;
        int32_t next = 0;
        float lp;
        if (rc == 0 && greedy)
            rc = rf_engine_greedy(e, (uint32_t)(n_prompt - 1), &next, &lp);
        else if (rc == 0)
            next = argmax(rf_engine_logits(e, (uint32_t)(n_prompt - 1)), n_vocab);
        t0 = now_seconds();
        for (long i = 0; i < n_gen && rc == 0; i++) {
            int32_t p = (int32_t)(n_prompt + i), s0 = 0;
            int8_t w = want[n_prompt - 1];
            rf_batch_t one = {.n_tokens = 1, .tokens = &next, .positions = &p, .seq_ids = &s0,
                              .logits = &w};
            rc = rf_engine_eval(e, &one, err);
            if (rc == 0 && greedy)
                rc = rf_engine_greedy(e, 0, &next, &lp);
            else if (rc == 0)
                next = argmax(rf_engine_logits(e, 0), n_vocab);
        }
        gs[r] = now_seconds() - t0;
    }
    if (rc == 0) {
        qsort(ps, (size_t)reps, sizeof *ps, compare_double);
        qsort(gs, (size_t)reps, sizeof *gs, compare_double);
        *prompt_s = ps[reps / 2];
        *gen_s = gs[reps / 2];
    }
done:
    free(tokens);
    free(pos);
    free(seq);
    free(want);
    free(ps);
    free(gs);
    return rc;
}

static int bench_cpu(int argc, char **argv)
{
    const char *model = NULL;
    long n_prompt = 128, n_gen = 128, threads = 0, reps = 3;
    rf_device_t device = RF_DEVICE_CPU;
    static const struct option long_options[] = {
        {"model", required_argument, NULL, 'm'},
        {"prompt", required_argument, NULL, 'p'},
        {"gen", required_argument, NULL, 'n'},
        {"threads", required_argument, NULL, 't'},
        {"reps", required_argument, NULL, 'r'},
        {"device", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:t:r:h", long_options, NULL)) != -1) {
        long *target = NULL;
        long lo = 1, hi = 1 << 20;
        switch (c) {
        case 'm': model = optarg; continue;
        case 'd':
            if (strcmp(optarg, "gpu") == 0)
                device = RF_DEVICE_GPU;
            else if (strcmp(optarg, "cpu") != 0) {
                rf__cli_error("bench", "bad value '%s' for --device (cpu or gpu)", optarg);
                return RF_EXIT_USAGE;
            }
            continue;
        case 'p': target = &n_prompt; break;
        case 'n': target = &n_gen; lo = 0; break;
        case 't': target = &threads; hi = 1024; break;
        case 'r': target = &reps; hi = 100; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("bench", "unknown or incomplete option '%s'; see 'rocmforge bench --help'",
                          argv[optind - 1]);
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
    if (model == NULL || optind != argc) {
        rf__cli_error("bench", "cpu needs -m MODEL.gguf; see 'rocmforge bench --help'");
        return RF_EXIT_USAGE;
    }
    rf_err_t err = {0};
    rf_engine_t *e = NULL;
    rf_engine_options_t opt = {.device = device, .n_threads = (int)threads,
                               .n_ctx = (uint32_t)(n_prompt + n_gen + 1), .max_seqs = 1,
                               .no_tokenizer = true};
    int rc = rf_engine_open(&e, model, &opt, &err);
    if (rc < 0) {
        rf__cli_error("bench", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return RF_EXIT_FAIL;
    }
    double pm = 0, gm = 0;
    rc = rf__bench_decode(e, n_prompt, n_gen, reps, &pm, &gm, &err);
    if (rc < 0) {
        rf__cli_error("bench", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        rf_engine_close(e);
        return RF_EXIT_FAIL;
    }
    if (rf_engine_on_gpu(e))
        printf("model: %s, GPU %s, median of %ld runs\n", model, rf_engine_device_name(e), reps);
    else
        printf("model: %s, %d threads, CPU, median of %ld runs\n", model, rf_engine_n_threads(e),
               reps);
    printf("%-12s %8s %10s %10s\n", "phase", "tokens", "seconds", "tokens/s");
    printf("%-12s %8ld %10.3f %10.2f\n", "prompt", n_prompt, pm, (double)n_prompt / pm);
    if (n_gen > 0)
        printf("%-12s %8ld %10.3f %10.2f\n", "generation", n_gen, gm, (double)n_gen / gm);
    rf_engine_close(e);
    return RF_EXIT_OK;
}

/* ---------------------------------------------------------------- memory */

static volatile uint64_t bench_sink;

typedef struct read_task {
    const uint64_t *p;
    size_t n;
    uint64_t sum;
} read_task_t;

static void *read_worker(void *arg)
{
    read_task_t *t = arg;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i + 4 <= t->n; i += 4) {
        s0 += t->p[i];
        s1 += t->p[i + 1];
        s2 += t->p[i + 2];
        s3 += t->p[i + 3];
    }
    t->sum = s0 + s1 + s2 + s3;
    return NULL;
}

/* Streaming read bandwidth: the ceiling of memory-bound decode (tokens/s
 * <= bandwidth / bytes of weights read per token). */
static int bench_memory(int argc, char **argv)
{
    long threads = 0, mib = 2048, reps = 5;
    for (int i = 1; i < argc; i++) {
        long *target = strcmp(argv[i], "-t") == 0 || strcmp(argv[i], "--threads") == 0 ? &threads
                       : strcmp(argv[i], "--mib") == 0                                 ? &mib
                       : strcmp(argv[i], "--reps") == 0                                ? &reps
                                                                                       : NULL;
        char *end = NULL;
        long v = target != NULL && i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
        if (target == NULL || end == NULL || *end != '\0' || v < 1 || v > (1L << 20)) {
            rf__cli_error("bench", "memory takes -t N, --mib N and --reps N; got '%s'", argv[i]);
            return RF_EXIT_USAGE;
        }
        *target = v;
        i++;
    }
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? n : 1;
    }
    size_t bytes = (size_t)mib << 20, n = bytes / sizeof(uint64_t);
    uint64_t *buf = malloc(bytes);
    read_task_t *tasks = calloc((size_t)threads, sizeof *tasks);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    double *secs = calloc((size_t)reps, sizeof *secs);
    if (buf == NULL || tasks == NULL || tid == NULL || secs == NULL) {
        free(buf);
        free(tasks);
        free(tid);
        free(secs);
        rf__cli_error("bench", "memory: cannot allocate %ld MiB", mib);
        return RF_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 2654435761u; /* touch every page, not zeros */
    uint64_t check = 0;
    for (long r = 0; r < reps; r++) {
        double t0 = now_seconds();
        for (long k = 0; k < threads; k++) {
            size_t b = n / (size_t)threads * (size_t)k;
            size_t e = k == threads - 1 ? n : n / (size_t)threads * (size_t)(k + 1);
            tasks[k] = (read_task_t){.p = buf + b, .n = e - b};
            pthread_create(&tid[k], NULL, read_worker, &tasks[k]);
        }
        for (long k = 0; k < threads; k++) {
            pthread_join(tid[k], NULL);
            check += tasks[k].sum;
        }
        secs[r] = now_seconds() - t0;
    }
    qsort(secs, (size_t)reps, sizeof *secs, compare_double);
    bench_sink = check; /* the sums are used: the reads cannot be optimised away */
    printf("memory read: %ld MiB, %ld threads, median of %ld: %.1f GB/s\n", mib, threads, reps,
           (double)bytes / secs[reps / 2] / 1e9);
    free(buf);
    free(tasks);
    free(tid);
    free(secs);
    return RF_EXIT_OK;
}

int rf__cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RF_EXIT_USAGE : RF_EXIT_OK;
    }
    if (strcmp(argv[1], "tokenize") == 0)
        return bench_tokenize(argc - 1, argv + 1);
    if (strcmp(argv[1], "cpu") == 0)
        return bench_cpu(argc - 1, argv + 1);
    if (strcmp(argv[1], "batch") == 0)
        return rf__bench_batch(argc - 1, argv + 1);
    if (strcmp(argv[1], "gpu") == 0)
        return rf__bench_gpu(argc - 1, argv + 1);
    if (strcmp(argv[1], "memory") == 0)
        return bench_memory(argc - 1, argv + 1);
    rf__cli_error("bench", "unknown benchmark '%s'; available: tokenize, cpu, batch, gpu, memory", argv[1]);
    return RF_EXIT_USAGE;
}
