/* cmd_quantize.c - `rocmforge quantize`: rewrite a GGUF with its weights in another type
 *
 * Every metadata key is copied as it is, except general.file_type, which is
 * rewritten to llama.cpp's file type for TYPE (or dropped where TYPE has no
 * single llama.cpp file type, since a stale value would lie). Tensors of two
 * or more dimensions are converted row by row: the reference dequantizer of
 * the input type into f32, then the reference quantizer of TYPE. Rows stream
 * through the writer's fill callback, so only one row of f32 sits in memory.
 * A tensor already in TYPE is copied byte for byte (re-quantizing a quantized
 * row is not the identity). 1-D tensors (norms, biases, rope_freqs) are
 * written as F32, as llama.cpp's converters write them, unless --keep-1d.
 *
 * A tensor whose row length is not a multiple of TYPE's block keeps its input
 * type with a note on stderr, like llama.cpp's fallbacks: one odd tensor
 * should not stop a conversion, and the note plus the summary line make the
 * exception visible. --strict turns it into an error naming the tensor.
 * `--type f32` dequantizes a whole model: that is how reference weights for
 * golden tests are made.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "gguf.h"
#include "quant.h"

/* ---- types ---- */

/* What happens to one input tensor. */
typedef enum plan_kind {
    PLAN_COPY,    /* bytes copied from the input mapping as they are */
    PLAN_CONVERT, /* dequantize each row to f32, quantize to out_type */
} plan_kind_t;

typedef struct plan {
    const rf_gguf_tensor_t *in; /* borrowed from the reader */
    plan_kind_t kind;
    int out_type;
    uint64_t in_row_bytes;
    uint64_t out_row_bytes;
} plan_t;

typedef struct progress {
    bool enabled;
    time_t last;
    uint64_t done, total; /* bytes of converted output */
} progress_t;

typedef struct job {
    plan_t *plans;      /* [n_tensors], in the order added to the writer */
    size_t n_plans;
    float *row;         /* scratch: one row of f32, [max ne[0]] */
    progress_t progress;
} job_t;

/* llama.cpp's general.file_type (enum llama_ftype) for a file whose weights
 * are all of one type; -1 where no single value fits. The K quants map to
 * their _S variants, which are the all-one-type members of each family. */
static int llama_file_type(int type)
{
    switch (type) {
    case RF_TYPE_F32: return 0;
    case RF_TYPE_F16: return 1;
    case RF_TYPE_Q4_0: return 2;
    case RF_TYPE_Q4_1: return 3;
    case RF_TYPE_Q8_0: return 7;
    case RF_TYPE_Q5_0: return 8;
    case RF_TYPE_Q5_1: return 9;
    case RF_TYPE_Q2_K: return 10;
    case RF_TYPE_Q3_K: return 11;
    case RF_TYPE_Q4_K: return 14;
    case RF_TYPE_Q5_K: return 16;
    case RF_TYPE_Q6_K: return 18;
    case RF_TYPE_IQ4_NL: return 25;
    case RF_TYPE_IQ4_XS: return 30;
    case RF_TYPE_BF16: return 32;
    default: return -1;
    }
}

/* ---- helpers ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rocmforge quantize IN.gguf OUT.gguf --type TYPE [options]\n"
            "\n"
            "Copy a GGUF model with its 2-D and larger tensors converted to TYPE by the\n"
            "reference (de)quantizers. Metadata is copied; general.file_type is updated.\n"
            "1-D tensors (norms, biases) are written as F32. A tensor whose rows are not a\n"
            "multiple of TYPE's block keeps its type, with a note on stderr.\n"
            "--type f32 dequantizes the whole model.\n"
            "\n"
            "options:\n"
            "  -t, --type TYPE   target type, one of:\n"
            "                   ");
    for (int t = 0, col = 0; t < RF_TYPE_COUNT; t++) {
        const rf_type_traits_t *tr = rf_type_traits(t);
        if (tr == NULL || !tr->can_quantize)
            continue;
        fprintf(out, "%s%s", col % 8 == 0 && col ? "\n                    " : " ", tr->name);
        col++;
    }
    fprintf(out, "\n"
            "      --keep-1d     keep 1-D tensors in their input type instead of F32\n"
            "      --strict      fail instead of keeping a tensor whose rows do not fit TYPE\n"
            "  -q, --quiet       no progress or summary on stderr (notes still print)\n"
            "  -h, --help        show this help\n");
}

static void progress_add(progress_t *p, uint64_t bytes)
{
    p->done += bytes;
    if (!p->enabled)
        return;
    time_t now = time(NULL);
    if (now == p->last && p->done < p->total)
        return;
    p->last = now;
    fprintf(stderr, "\rrocmforge: quantize: %5.1f%% (%.2f of %.2f GiB)",
            p->total ? 100.0 * (double)p->done / (double)p->total : 100.0,
            (double)p->done / 1073741824.0, (double)p->total / 1073741824.0);
    if (p->done >= p->total)
        fputc('\n', stderr);
}

static void tensor_name(const rf_gguf_tensor_t *t, char *buf, size_t size)
{
    size_t n = t->name.len < size - 1 ? (size_t)t->name.len : size - 1;
    memcpy(buf, t->name.data, n);
    buf[n] = '\0';
}

/* Fill rows of a converted tensor: the writer asks for them in order. */
static int fill_rows(void *ctx, size_t tensor_index, uint64_t row0, uint64_t n_rows, void *dst)
{
    job_t *job = ctx;
    const plan_t *p = &job->plans[tensor_index];
    const int64_t ne0 = (int64_t)p->in->ne[0];
    const uint8_t *src = (const uint8_t *)p->in->data + row0 * p->in_row_bytes;
    uint8_t *out = dst;
    for (uint64_t r = 0; r < n_rows; r++) {
        int rc = rf_dequantize_row(p->in->type, src + r * p->in_row_bytes, job->row, ne0);
        if (rc == 0)
            rc = rf_quantize_row(p->out_type, job->row, out + r * p->out_row_bytes, ne0);
        if (rc < 0)
            return rc; /* the writer's message names the tensor and the rows */
    }
    progress_add(&job->progress, n_rows * p->out_row_bytes);
    return 0;
}

/* Decide what to do with tensor t. Returns 0, or RF_EUNSUPPORTED/RF_EFORMAT
 * with a message naming the tensor in err. */
static int plan_tensor(const rf_gguf_tensor_t *t, int type, bool keep_1d, bool strict,
                       plan_t *p, rf_err_t *err)
{
    char name[256];
    tensor_name(t, name, sizeof name);
    p->in = t;
    p->kind = PLAN_COPY;
    p->out_type = t->type;
    if (rf_type_row_bytes(t->type, t->ne[0], &p->in_row_bytes) != 0)
        return rf_err_set(err, RF_EFORMAT, "tensor '%s': rows of %" PRIu64 " %s elements have no size",
                          name, t->ne[0], rf_type_name(t->type));
    bool one_d = true;
    for (uint32_t d = 1; d < t->n_dims; d++)
        one_d = one_d && t->ne[d] == 1;
    int want = one_d ? (keep_1d ? t->type : RF_TYPE_F32) : type;
    if (want == t->type)
        return 0;
    const rf_type_traits_t *want_traits = rf_type_traits(want);
    if (t->ne[0] % want_traits->block_size != 0) {
        if (strict)
            return rf_err_set(err, RF_EFORMAT,
                              "tensor '%s': rows of %" PRIu64 " elements are not a multiple of "
                              "%s's block of %u (run without --strict to keep it as %s)",
                              name, t->ne[0], want_traits->name, want_traits->block_size,
                              rf_type_name(t->type));
        fprintf(stderr,
                "rocmforge: quantize: note: tensor '%s' keeps type %s: rows of %" PRIu64
                " elements are not a multiple of %s's block of %u\n",
                name, rf_type_name(t->type), t->ne[0], want_traits->name,
                want_traits->block_size);
        return 0;
    }
    const rf_type_traits_t *in_traits = rf_type_traits(t->type);
    if (in_traits == NULL || !in_traits->can_dequantize)
        return rf_err_set(err, RF_EUNSUPPORTED,
                          "tensor '%s': type %s has no reference dequantizer, so it cannot be "
                          "converted to %s",
                          name, rf_type_name(t->type), want_traits->name);
    p->kind = PLAN_CONVERT;
    p->out_type = want;
    if (rf_type_row_bytes(want, t->ne[0], &p->out_row_bytes) != 0)
        return rf_err_set(err, RF_ERANGE, "tensor '%s': output row size overflows", name);
    return 0;
}

/* Copy every metadata key except general.file_type, then set it for type. */
static int copy_metadata(const rf_gguf_t *in, rf_gguf_writer_t *w, int type, rf_err_t *err)
{
    for (uint64_t i = 0; i < rf_gguf_n_kv(in); i++) {
        const rf_gguf_kv_t *kv = rf_gguf_kv_at(in, i);
        if (rf_gguf_str_eq(kv->key, "general.file_type"))
            continue;
        char *key = strndup(kv->key.data, (size_t)kv->key.len);
        if (key == NULL)
            return rf_err_set(err, -ENOMEM, "out of memory copying metadata");
        int rc = rf_gguf_writer_set_value(w, key, &kv->value);
        if (rc < 0) {
            rf_err_set(err, rc, "metadata key '%s' (offset %" PRIu64 "): %s", key,
                       kv->file_offset, rf_strerror(rc));
            free(key);
            return rc;
        }
        free(key);
    }
    int file_type = llama_file_type(type);
    if (file_type >= 0) {
        int rc = rf_gguf_writer_set_u32(w, "general.file_type", (uint32_t)file_type);
        if (rc < 0)
            return rf_err_set(err, rc, "setting general.file_type: %s", rf_strerror(rc));
    }
    return 0;
}

/* ---- the command ---- */

static int quantize(const char *in_path, const char *out_path, int type, bool keep_1d,
                    bool strict, bool quiet)
{
    rf_err_t err = {0};
    rf_gguf_t *in = NULL;
    rf_gguf_writer_t *w = NULL;
    job_t job = {0};
    int status = RF_EXIT_FAIL;

    int rc = rf_gguf_open(&in, in_path, &err);
    if (rc < 0) {
        rf__cli_error("quantize", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        return RF_EXIT_FAIL;
    }
    rc = rf_gguf_writer_open(&w);
    if (rc < 0) {
        rf__cli_error("quantize", "cannot start the writer: %s", rf_strerror(rc));
        goto done;
    }
    if (copy_metadata(in, w, type, &err) < 0) {
        rf__cli_error("quantize", "%s: %s", in_path, err.msg);
        goto done;
    }

    job.n_plans = (size_t)rf_gguf_n_tensors(in);
    job.plans = calloc(job.n_plans ? job.n_plans : 1, sizeof *job.plans);
    if (job.plans == NULL) {
        rf__cli_error("quantize", "out of memory for %zu tensor plans", job.n_plans);
        goto done;
    }
    uint64_t max_row = 1, n_kept = 0, n_converted = 0;
    for (size_t i = 0; i < job.n_plans; i++) {
        const rf_gguf_tensor_t *t = rf_gguf_tensor_at(in, i);
        plan_t *p = &job.plans[i];
        if (plan_tensor(t, type, keep_1d, strict, p, &err) < 0) {
            rf__cli_error("quantize", "%s: %s", in_path, err.msg);
            goto done;
        }
        bool one_d = true;
        for (uint32_t d = 1; d < t->n_dims; d++)
            one_d = one_d && t->ne[d] == 1;
        if (!one_d && p->out_type != type)
            n_kept++;
        char name[256];
        tensor_name(t, name, sizeof name);
        if (p->kind == PLAN_CONVERT) {
            n_converted++;
            max_row = t->ne[0] > max_row ? t->ne[0] : max_row;
            job.progress.total += p->out_row_bytes * (t->n_elements / t->ne[0]);
        }
        rc = rf_gguf_writer_add_tensor(w, name, p->out_type, t->n_dims, t->ne,
                                       p->kind == PLAN_COPY ? t->data : NULL);
        if (rc < 0) {
            rf__cli_error("quantize", "%s: tensor '%s' (%s): cannot add it to the output: %s",
                          in_path, name, rf_type_name(p->out_type), rf_strerror(rc));
            goto done;
        }
    }
    job.row = malloc(max_row * sizeof *job.row);
    if (job.row == NULL) {
        rf__cli_error("quantize", "out of memory for a row of %" PRIu64 " floats", max_row);
        goto done;
    }
    job.progress.enabled =
        !quiet && (isatty(STDERR_FILENO) || job.progress.total >= (64u << 20));

    rc = rf_gguf_writer_write(w, out_path, fill_rows, &job, &err);
    if (rc < 0) {
        if (job.progress.enabled && job.progress.done < job.progress.total)
            fputc('\n', stderr);
        rf__cli_error("quantize", "%s", err.msg[0] ? err.msg : rf_strerror(rc));
        goto done;
    }
    if (!quiet) {
        fprintf(stderr, "rocmforge: quantize: wrote %s (%s; %" PRIu64 " of %zu tensors converted",
                out_path, rf_type_name(type), n_converted, job.n_plans);
        if (n_kept > 0)
            fprintf(stderr, "; %" PRIu64 " kept their type: rows do not fit %s's block", n_kept,
                    rf_type_name(type));
        fprintf(stderr, ")\n");
    }
    status = RF_EXIT_OK;
done:
    free(job.row);
    free(job.plans);
    rf_gguf_writer_close(w);
    rf_gguf_close(in);
    return status;
}

int rf__cmd_quantize(int argc, char **argv)
{
    int type = -1;
    bool keep_1d = false, strict = false, quiet = false;
    enum { OPT_KEEP_1D = 256, OPT_STRICT };
    static const struct option long_options[] = {
        {"type", required_argument, NULL, 't'},
        {"keep-1d", no_argument, NULL, OPT_KEEP_1D},
        {"strict", no_argument, NULL, OPT_STRICT},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "t:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 't': {
            type = rf_type_from_name(optarg);
            const rf_type_traits_t *tr = type >= 0 ? rf_type_traits(type) : NULL;
            if (tr == NULL || !tr->can_quantize) {
                rf__cli_error("quantize",
                              "'%s' is not a type we can quantize to; see 'rocmforge quantize "
                              "--help'",
                              optarg);
                return RF_EXIT_USAGE;
            }
            break;
        }
        case OPT_KEEP_1D: keep_1d = true; break;
        case OPT_STRICT: strict = true; break;
        case 'q': quiet = true; break;
        case 'h': usage(stdout); return RF_EXIT_OK;
        default:
            rf__cli_error("quantize",
                          "unknown or incomplete option '%s'; see 'rocmforge quantize --help'",
                          argv[optind - 1]);
            return RF_EXIT_USAGE;
        }
    }
    if (argc - optind != 2 || type < 0) {
        rf__cli_error("quantize",
                      "want IN.gguf OUT.gguf and --type TYPE; see 'rocmforge quantize --help'");
        return RF_EXIT_USAGE;
    }
    const char *in_path = argv[optind], *out_path = argv[optind + 1];
    if (strcmp(in_path, out_path) == 0) {
        rf__cli_error("quantize", "input and output are the same file '%s'; the input is read "
                      "while the output is written, so give another output path", in_path);
        return RF_EXIT_USAGE;
    }
    return quantize(in_path, out_path, type, keep_1d, strict, quiet);
}
