/* cmd_synth.c - `rocmforge synth`: write a random-weight model of a named shape
 *
 * For tests and benchmarks: weights do not change speed, so real shapes with
 * random weights measure what real models would, with nothing downloaded.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "quant.h"
#include "synth.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge synth --shape NAME [options] -o OUT.gguf\n"
            "\n"
            "Write a Llama-architecture GGUF with random weights at a named shape and a\n"
            "synthetic byte-level BPE vocabulary. The same seed writes the same file.\n"
            "\n"
            "options:\n"
            "  -s, --shape NAME    model shape (see --list)\n"
            "  -t, --type TYPE     type of the 2-D weights (default f16), one of:\n"
            "                     ");
    for (int t = 0, col = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_traits_t *tr = rf_type_traits(t);
        if (tr == NULL || !tr->can_quantize)
            continue;
        fprintf(out, "%s%s", col % 8 == 0 && col ? "\n                      " : " ", tr->name);
        col++;
    }
    fprintf(out, "\n"
            "  -o, --output FILE   where to write (written to FILE.tmp, then renamed)\n"
            "      --seed N        random seed (default 0)\n"
            "      --layers N      override the shape's layer count\n"
            "      --untied        separate output.weight even if the shape ties it\n"
            "      --tied          reuse token_embd for the output even if the shape does not\n"
            "      --list          list the shapes and exit\n"
            "  -q, --quiet         no progress on stderr\n"
            "  -h, --help          show this help\n");
}

static void list_shapes(void)
{
    printf("%-14s %8s %6s %6s %6s %6s %7s %8s  %s\n", "shape", "vocab", "embd", "layers", "heads",
           "kv", "ff", "ctx", "description");
    for (const rf_synth_shape_t *s = rf_synth_shapes(); s->name != NULL; s++)
        printf("%-14s %8u %6u %6u %6u %6u %7u %8u  %s\n", s->name, s->n_vocab, s->n_embd,
               s->n_layer, s->n_head, s->n_head_kv, s->n_ff, s->n_ctx, s->description);
}

typedef struct progress {
    bool enabled;
    time_t last;
} progress_t;

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    progress_t *p = ctx;
    time_t now = time(NULL);
    if (!p->enabled || (now == p->last && done < total))
        return;
    p->last = now;
    fprintf(stderr, "\rrocmforge: synth: %5.1f%% (%.2f of %.2f GiB)", 100.0 * (double)done / (double)total,
            (double)done / 1073741824.0, (double)total / 1073741824.0);
    if (done >= total)
        fputc('\n', stderr);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (s[0] == '-' || s[0] == '\0')
        return false;
    unsigned long long x = strtoull(s, &end, 0);
    if (*end != '\0')
        return false;
    *out = x;
    return true;
}

int rf__cmd_synth(int argc, char **argv)
{
    rf_synth_options_t opt = {.shape = NULL, .type = RF_TYPE_F16, .seed = 0, .output = 0};
    const char *out_path = NULL;
    bool quiet = false;
    enum { OPT_SEED = 256, OPT_LAYERS, OPT_UNTIED, OPT_TIED, OPT_LIST };
    static const struct option long_options[] = {
        {"shape", required_argument, NULL, 's'},
        {"type", required_argument, NULL, 't'},
        {"output", required_argument, NULL, 'o'},
        {"seed", required_argument, NULL, OPT_SEED},
        {"layers", required_argument, NULL, OPT_LAYERS},
        {"untied", no_argument, NULL, OPT_UNTIED},
        {"tied", no_argument, NULL, OPT_TIED},
        {"list", no_argument, NULL, OPT_LIST},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    uint64_t x;
    while ((c = getopt_long(argc, argv, "s:t:o:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 's': opt.shape = optarg; break;
        case 't':
            opt.type = rf_type_from_name(optarg);
            if (opt.type < 0) {
                rf__cli_error("synth", "unknown type '%s'; see 'rocmforge synth --help'", optarg);
                return RF_EXIT_USAGE;
            }
            break;
        case 'o': out_path = optarg; break;
        case OPT_SEED:
            if (!parse_u64(optarg, &opt.seed)) {
                rf__cli_error("synth", "--seed wants a whole number, got '%s'", optarg);
                return RF_EXIT_USAGE;
            }
            break;
        case OPT_LAYERS:
            if (!parse_u64(optarg, &x) || x == 0 || x > 1024) {
                rf__cli_error("synth", "--layers wants a number from 1 to 1024, got '%s'", optarg);
                return RF_EXIT_USAGE;
            }
            opt.n_layer = (uint32_t)x;
            break;
        case OPT_UNTIED: opt.output = 1; break;
        case OPT_TIED: opt.output = -1; break;
        case OPT_LIST: list_shapes(); return RF_EXIT_OK;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("synth", "unknown or incomplete option '%s'; see 'rocmforge synth --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        rf__cli_error("synth", "unexpected argument '%s'; see 'rocmforge synth --help'",
                      argv[optind]);
        return RF_EXIT_USAGE;
    }
    if (opt.shape == NULL || out_path == NULL) {
        rf__cli_error("synth", "--shape and -o are required; see 'rocmforge synth --help'");
        return RF_EXIT_USAGE;
    }
    if (rf_synth_find_shape(opt.shape) == NULL) {
        rf__cli_error("synth", "unknown shape '%s'; 'rocmforge synth --list' shows the shapes",
                      opt.shape);
        return RF_EXIT_USAGE;
    }
    uint64_t total = 0;
    rf_err_t err = {0};
    progress_t progress = {.enabled = false, .last = 0};
    if (rf_synth_data_bytes(&opt, &total) == 0)
        progress.enabled = !quiet && (isatty(STDERR_FILENO) || total >= (64u << 20));
    int rc = rf_synth_write(&opt, out_path, on_progress, &progress, &err);
    if (rc < 0) {
        if (progress.enabled)
            fputc('\n', stderr);
        rf__cli_error("synth", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return rc == RF_EUSAGE ? RF_EXIT_USAGE : RF_EXIT_FAIL;
    }
    if (!quiet)
        fprintf(stderr, "rocmforge: synth: wrote %s (%s, %s, %.1f MiB of tensor data)\n", out_path,
                opt.shape, rf_type_name(opt.type), (double)total / 1048576.0);
    return RF_EXIT_OK;
}
