/* test_ops_gpu.c - per-row kernels and the embedding gather against C references
 *
 * RMSNorm (alone and fused with the residual add), RoPE (normal and NeoX,
 * partial rotation, Llama 3 frequency factors), SwiGLU, the adds, and the
 * gather from every supported weight type. References are computed here in
 * double with the semantics of engine/cpu/ops.c; quantized rows come from the
 * engine's reference dequantizer. Tolerances, relative to the output's
 * magnitude: 1e-5 for the f32 ops, 1e-6 for the gather (it only decodes).
 * Skips with a reason when no GPU is present.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test.h"
#include "kernels.h"
#include "quant.h"

/* ---- RMSNorm -------------------------------------------------------------- */

static void rmsnorm_ref(float *y, const float *x, const float *w, int64_t n, float eps)
{
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i] * x[i];
    double scale = 1.0 / sqrt(sum / (double)n + eps);
    for (int64_t i = 0; i < n; i++)
        y[i] = (float)(x[i] * scale * w[i]);
}

static double worst_rel(const float *got, const float *want, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(got[i]) || isnan(want[i]))
            return INFINITY;
        double err = fabs((double)got[i] - want[i]) / (fabs((double)want[i]) + 1e-30);
        if (err > worst)
            worst = err;
    }
    return worst;
}

static void check_rmsnorm(int64_t rows, int64_t cols, bool fused)
{
    const float eps = 1e-5f;
    float *x = gpu_test_random((size_t)(rows * cols), 2.0f);
    float *r = gpu_test_random((size_t)(rows * cols), 1.0f);
    float *w = gpu_test_random((size_t)cols, 1.0f);
    float *want = malloc((size_t)(rows * cols) * sizeof *want);
    float *sum = malloc((size_t)(rows * cols) * sizeof *sum);
    for (int64_t i = 0; i < rows * cols; i++)
        sum[i] = fused ? x[i] + r[i] : x[i];
    for (int64_t row = 0; row < rows; row++)
        rmsnorm_ref(want + row * cols, sum + row * cols, w, cols, eps);

    const size_t bytes = (size_t)(rows * cols) * sizeof(float);
    float *d_x = gpu_test_upload(x, bytes), *d_r = gpu_test_upload(r, bytes);
    float *d_w = gpu_test_upload(w, (size_t)cols * sizeof(float));
    float *d_y = gpu_test_poisoned(bytes);
    if (fused)
        cr_assert_eq(rf_kernel_add_rmsnorm_f32(d_y, d_x, d_r, d_w, rows, cols, eps, NULL), 0);
    else
        cr_assert_eq(rf_kernel_rmsnorm_f32(d_y, d_x, d_w, rows, cols, eps, NULL), 0);
    float *got = gpu_test_download(d_y, bytes);
    double err = worst_rel(got, want, (size_t)(rows * cols));
    cr_log_info("rmsnorm%s %ldx%ld: worst relative error %.3g", fused ? " (fused add)" : "",
                (long)rows, (long)cols, err);
    cr_expect(err <= 1e-5, "rmsnorm %ldx%ld fused=%d: relative error %g > 1e-5", (long)rows,
              (long)cols, fused, err);
    if (fused) { /* the residual stream is written back exactly */
        float *x_new = gpu_test_download(d_x, bytes);
        cr_expect(memcmp(x_new, sum, bytes) == 0, "fused rmsnorm: x + r not written back");
        free(x_new);
    }
    rf_gpu_free(d_x); rf_gpu_free(d_r); rf_gpu_free(d_w); rf_gpu_free(d_y);
    free(x); free(r); free(w); free(want); free(sum); free(got);
}

Test(ops_gpu, rmsnorm)
{
    gpu_test_require("rmsnorm");
    gpu_test_seed(1);
    check_rmsnorm(1, 4096, false);
    check_rmsnorm(37, 4096, false);
    check_rmsnorm(8, 1, false);
    check_rmsnorm(5, 1000, false);           /* not a multiple of the block */
    check_rmsnorm(64, 128, false);          /* per-head Q/K norm shape */
}

Test(ops_gpu, add_rmsnorm)
{
    gpu_test_require("fused add + rmsnorm");
    gpu_test_seed(2);
    check_rmsnorm(1, 4096, true);
    check_rmsnorm(37, 2053, true);
    check_rmsnorm(8, 14336, true);
}

/* ---- RoPE ------------------------------------------------------------------ */

/* engine/cpu/ops.c rf__cpu_rope, in double. */
static void rope_ref(float *x, int n_heads, int head_dim, int n_rot, bool neox, float base,
                     float scale, const float *factors, int pos)
{
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        double theta = (double)pos * scale * pow((double)base, -2.0 * i / n_rot);
        if (factors != NULL)
            theta /= factors[i];
        double c = cos(theta), s = sin(theta);
        for (int h = 0; h < n_heads; h++) {
            float *head = x + (size_t)h * head_dim;
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            double x0 = head[a], x1 = head[b];
            head[a] = (float)(x0 * c - x1 * s);
            head[b] = (float)(x0 * s + x1 * c);
        }
    }
}

static void check_rope(int n_tokens, int n_heads, int head_dim, int n_rot, bool neox,
                       float base, bool factors, int max_pos)
{
    const size_t n = (size_t)n_tokens * n_heads * head_dim;
    float *x = gpu_test_random(n, 1.0f);
    float *want = malloc(n * sizeof *want);
    memcpy(want, x, n * sizeof *want);
    int32_t *pos = malloc((size_t)n_tokens * sizeof *pos);
    for (int t = 0; t < n_tokens; t++)
        pos[t] = t == 0 ? max_pos : (int32_t)(gpu_test_u32() % (uint32_t)(max_pos + 1));
    float *ff = NULL;
    if (factors) {
        ff = malloc((size_t)(n_rot / 2) * sizeof *ff);
        for (int i = 0; i < n_rot / 2; i++)
            ff[i] = 1.0f + (float)(gpu_test_u32() % 32); /* Llama 3: 1 .. 32 */
    }
    const float scale = 0.5f + (float)(gpu_test_u32() % 2) * 0.5f;
    for (int t = 0; t < n_tokens; t++)
        rope_ref(want + (size_t)t * n_heads * head_dim, n_heads, head_dim, n_rot, neox, base,
                 scale, ff, pos[t]);

    float *d_x = gpu_test_upload(x, n * sizeof(float));
    int32_t *d_pos = gpu_test_upload(pos, (size_t)n_tokens * sizeof(int32_t));
    float *d_ff = factors ? gpu_test_upload(ff, (size_t)(n_rot / 2) * sizeof(float)) : NULL;
    cr_assert_eq(rf_kernel_rope_f32(d_x, d_pos, n_tokens, n_heads, head_dim, n_rot, 0, neox, base,
                                    scale, d_ff, NULL), 0);
    float *got = gpu_test_download(d_x, n * sizeof(float));
    /* the table-then-apply pair the engine uses gives the same bits */
    float *d_x2 = gpu_test_upload(x, n * sizeof(float));
    float *d_table = gpu_test_poisoned((size_t)n_tokens * n_rot * sizeof(float));
    cr_assert_eq(rf_kernel_rope_table_f32(d_table, d_pos, n_tokens, n_rot, base, scale, d_ff,
                                          NULL), 0);
    cr_assert_eq(rf_kernel_rope_apply_f32(d_x2, d_table, n_tokens, n_heads, head_dim, n_rot, 0,
                                          neox, NULL), 0);
    float *got2 = gpu_test_download(d_x2, n * sizeof(float));
    cr_assert(memcmp(got, got2, n * sizeof(float)) == 0,
              "rope table + apply differs from rope (%s, head_dim %d, n_rot %d)",
              neox ? "neox" : "normal", head_dim, n_rot);
    rf_gpu_free(d_x2);
    rf_gpu_free(d_table);
    free(got2);
    double worst = 0, mag = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert(!isnan(got[i]), "rope: NaN at %zu", i);
        worst = fmax(worst, fabs((double)got[i] - want[i]));
        mag = fmax(mag, fabs((double)want[i]));
    }
    /* dimensions past n_rot are left alone exactly */
    for (int t = 0; t < n_tokens; t++)
        for (int h = 0; h < n_heads; h++)
            for (int d = n_rot; d < head_dim; d++) {
                size_t i = ((size_t)t * n_heads + h) * head_dim + d;
                cr_assert(got[i] == x[i], "rope touched dim %d >= n_rot %d", d, n_rot);
            }
    cr_log_info("rope %s hd=%d n_rot=%d max_pos=%d: worst error %.3g of max %.3g",
                neox ? "neox" : "normal", head_dim, n_rot, max_pos, worst, mag);
    cr_expect(worst <= 1e-5 * mag, "rope (%s, head_dim %d, n_rot %d): error %g > 1e-5 x %g",
              neox ? "neox" : "normal", head_dim, n_rot, worst, mag);
    rf_gpu_free(d_x); rf_gpu_free(d_pos); rf_gpu_free(d_ff);
    free(x); free(want); free(pos); free(ff); free(got);
}

Test(ops_gpu, rope_normal_and_neox)
{
    gpu_test_require("rope");
    gpu_test_seed(3);
    check_rope(1, 32, 128, 128, false, 10000.0f, false, 0);
    check_rope(37, 32, 128, 128, false, 500000.0f, true, 3000);   /* Llama 3 */
    check_rope(8, 8, 64, 64, true, 1000000.0f, false, 5000);      /* Qwen */
    check_rope(5, 3, 128, 32, true, 10000.0f, false, 100);        /* partial rotation */
    check_rope(3, 2, 96, 64, false, 10000.0f, true, 70000);
}

Test(ops_gpu, rope_rejects_bad_shapes)
{
    gpu_test_require("rope argument checks");
    void *d = gpu_test_poisoned(4096);
    cr_expect_eq(rf_kernel_rope_f32(d, d, 1, 1, 64, 65, 0, 0, 10000.0f, 1.0f, NULL, NULL),
                 RF_KERNEL_EINVAL); /* odd n_rot */
    cr_expect_eq(rf_kernel_rope_f32(d, d, 1, 1, 64, 128, 0, 0, 10000.0f, 1.0f, NULL, NULL),
                 RF_KERNEL_EINVAL); /* n_rot > head_dim */
    cr_expect_eq(rf_kernel_rope_f32(d, d, 1, 2, 64, 64, 100, 0, 10000.0f, 1.0f, NULL, NULL),
                 RF_KERNEL_EINVAL); /* stride shorter than a token */
    rf_gpu_free(d);
}

/* ---- SwiGLU and adds -------------------------------------------------------- */

Test(ops_gpu, swiglu)
{
    gpu_test_require("swiglu");
    gpu_test_seed(4);
    const int64_t rows = 37, cols = 14336 + 3;
    const size_t n = (size_t)(rows * cols);
    float *gate = gpu_test_random(n, 3.0f), *up = gpu_test_random(n, 1.0f);
    float *want = malloc(n * sizeof *want);
    for (size_t i = 0; i < n; i++)
        want[i] = (float)(gate[i] / (1.0 + exp(-(double)gate[i])) * up[i]);
    float *d_gate = gpu_test_upload(gate, n * 4), *d_up = gpu_test_upload(up, n * 4);
    float *d_out = gpu_test_poisoned(n * 4);
    cr_assert_eq(rf_kernel_swiglu_f32(d_out, d_gate, d_up, rows, cols, 0, 0, NULL), 0);
    float *got = gpu_test_download(d_out, n * 4);
    double err = worst_rel(got, want, n);
    cr_log_info("swiglu %ldx%ld: worst relative error %.3g", (long)rows, (long)cols, err);
    cr_expect(err <= 1e-5, "swiglu: relative error %g > 1e-5", err);
    /* in place, as the CPU backend runs it */
    cr_assert_eq(rf_kernel_swiglu_f32(d_gate, d_gate, d_up, rows, cols, 0, 0, NULL), 0);
    float *got2 = gpu_test_download(d_gate, n * 4);
    cr_expect(memcmp(got, got2, n * 4) == 0, "swiglu in place differs from out of place");
    rf_gpu_free(d_gate); rf_gpu_free(d_up); rf_gpu_free(d_out);
    free(gate); free(up); free(want); free(got); free(got2);
}

Test(ops_gpu, add_and_bias)
{
    gpu_test_require("add");
    gpu_test_seed(5);
    const int64_t rows = 9, cols = 1031;
    const size_t n = (size_t)(rows * cols);
    float *a = gpu_test_random(n, 1.0f), *b = gpu_test_random(n, 1.0f);
    float *bias = gpu_test_random((size_t)cols, 1.0f);
    float *d_a = gpu_test_upload(a, n * 4), *d_b = gpu_test_upload(b, n * 4);
    float *d_bias = gpu_test_upload(bias, (size_t)cols * 4), *d_out = gpu_test_poisoned(n * 4);
    cr_assert_eq(rf_kernel_add_f32(d_out, d_a, d_b, (int64_t)n, NULL), 0);
    cr_assert_eq(rf_kernel_add_bias_f32(d_out, d_bias, rows, cols, NULL), 0);
    float *got = gpu_test_download(d_out, n * 4);
    for (size_t i = 0; i < n; i++) {
        float want = (a[i] + b[i]) + bias[i % (size_t)cols];
        cr_assert(got[i] == want, "add element %zu: %g, want %g", i, got[i], want);
    }
    rf_gpu_free(d_a); rf_gpu_free(d_b); rf_gpu_free(d_bias); rf_gpu_free(d_out);
    free(a); free(b); free(bias); free(got);
}

/* ---- get_rows --------------------------------------------------------------- */

static void check_get_rows(int type, int64_t n_rows, int64_t n_cols, int n_ids)
{
    uint64_t row_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n_cols, &row_bytes), 0);
    uint8_t *weight = malloc((size_t)(row_bytes * (uint64_t)n_rows));
    float *row = malloc((size_t)n_cols * sizeof *row);
    float *dequant = malloc((size_t)(n_rows * n_cols) * sizeof *dequant);
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t i = 0; i < n_cols; i++)
            row[i] = gpu_test_normal() * 0.5f;
        if (type == RF_TYPE_F32)
            memcpy(weight + r * (int64_t)row_bytes, row, (size_t)n_cols * 4);
        else
            cr_assert_eq(rf_quantize_row(type, row, weight + r * (int64_t)row_bytes, n_cols), 0);
        cr_assert_eq(rf_dequantize_row(type, weight + r * (int64_t)row_bytes,
                                       dequant + r * n_cols, n_cols), 0);
    }
    int32_t *ids = malloc((size_t)n_ids * sizeof *ids);
    for (int i = 0; i < n_ids; i++)
        ids[i] = i == 0 ? (int32_t)(n_rows - 1) : (int32_t)(gpu_test_u32() % (uint32_t)n_rows);
    void *d_w = gpu_test_upload(weight, (size_t)(row_bytes * (uint64_t)n_rows));
    int32_t *d_ids = gpu_test_upload(ids, (size_t)n_ids * 4);
    const size_t out_bytes = (size_t)n_ids * (size_t)n_cols * 4;
    float *d_out = gpu_test_poisoned(out_bytes);
    cr_assert_eq(rf_kernel_get_rows_f32(type, d_w, n_rows, n_cols, d_ids, n_ids, d_out, NULL), 0);
    float *got = gpu_test_download(d_out, out_bytes);
    double worst = 0;
    for (int t = 0; t < n_ids; t++) {
        const float *want = dequant + (int64_t)ids[t] * n_cols;
        double mag = 0;
        for (int64_t i = 0; i < n_cols; i++)
            mag = fmax(mag, fabs((double)want[i]));
        for (int64_t i = 0; i < n_cols; i++) {
            float g = got[(size_t)t * (size_t)n_cols + (size_t)i];
            cr_assert(!isnan(g), "get_rows %s: NaN at token %d column %ld", rf_type_name(type), t,
                      (long)i);
            worst = fmax(worst, fabs((double)g - want[i]) / mag);
        }
    }
    cr_log_info("get_rows %s: worst error %.3g of the row's max", rf_type_name(type), worst);
    cr_expect(worst <= 1e-6, "get_rows %s: error %g > 1e-6 of the row's max", rf_type_name(type),
              worst);
    rf_gpu_free(d_w); rf_gpu_free(d_ids); rf_gpu_free(d_out);
    free(weight); free(row); free(dequant); free(ids); free(got);
}

Test(ops_gpu, get_rows_every_type)
{
    gpu_test_require("get_rows");
    gpu_test_seed(6);
    const int types[] = {RF_TYPE_F32, RF_TYPE_F16, RF_TYPE_BF16, RF_TYPE_Q8_0,
                         RF_TYPE_Q4_0, RF_TYPE_Q4_K, RF_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        check_get_rows(types[i], 301, 2048, 37);
        check_get_rows(types[i], 5, 256, 1);
    }
}

Test(ops_gpu, get_rows_bad_id_gives_nan_and_bad_args_fail)
{
    gpu_test_require("get_rows argument checks");
    float w[64] = {0};
    int32_t ids[2] = {1, 7}; /* 7 is out of range for 2 rows */
    void *d_w = gpu_test_upload(w, sizeof w);
    int32_t *d_ids = gpu_test_upload(ids, sizeof ids);
    float *d_out = gpu_test_poisoned(2 * 32 * 4);
    cr_assert_eq(rf_kernel_get_rows_f32(RF_TYPE_F32, d_w, 2, 32, d_ids, 2, d_out, NULL), 0);
    float *got = gpu_test_download(d_out, 2 * 32 * 4);
    cr_expect(got[0] == 0.0f && isnan(got[32]), "row 1 is zeros, the bad id's row NaN");
    cr_expect_eq(rf_kernel_get_rows_f32(RF_TYPE_Q5_K, d_w, 2, 256, d_ids, 2, d_out, NULL),
                 RF_KERNEL_EUNSUPPORTED);
    cr_expect_eq(rf_kernel_get_rows_f32(RF_TYPE_Q8_0, d_w, 2, 33, d_ids, 2, d_out, NULL),
                 RF_KERNEL_EINVAL);
    rf_gpu_free(d_w); rf_gpu_free(d_ids); rf_gpu_free(d_out);
    free(got);
}
