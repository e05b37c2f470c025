/* cmd_bench.c - `rocmforge bench`: throughput benchmarks
 *
 * `bench tokenize` times the tokenizer, single thread, on text files: each
 * file is read into memory and encoded whole, repeatedly, for at least
 * --seconds, and the median pass gives MB/s (decimal megabytes of input per
 * second) and tokens/s. Engine benchmarks join this command later.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "gguf.h"
#include "tokenizer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge bench tokenize -m VOCAB.gguf [options] FILE...\n"
            "\n"
            "Benchmarks. 'tokenize' encodes each text file whole on one thread, again and\n"
            "again for at least --seconds, and prints MB/s (10^6 bytes of input per\n"
            "second, median pass), tokens/s and bytes per token.\n"
            "\n"
            "options:\n"
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
    rf_err_t err = {0};
    rf_gguf_t *g = NULL;
    rf_tokenizer_t *tok = NULL;
    int rc = rf_gguf_open(&g, model, &err);
    if (rc == 0)
        rc = rf_tokenizer_open(&tok, g, &err);
    rf_gguf_close(g);
    if (rc < 0) {
        rf__cli_error("bench", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return RF_EXIT_FAIL;
    }
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
        rc = read_file(argv[i], &text, &len);
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

int rf__cmd_bench(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? RF_EXIT_USAGE : RF_EXIT_OK;
    }
    if (strcmp(argv[1], "tokenize") == 0)
        return bench_tokenize(argc - 1, argv + 1);
    rf__cli_error("bench", "unknown benchmark '%s'; available: tokenize", argv[1]);
    return RF_EXIT_USAGE;
}
