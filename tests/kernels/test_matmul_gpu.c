/* test_matmul_gpu.c - the fused dequantize-GEMV against the C reference
 *
 * For every weight type the kernel takes: random activations and weights
 * (quantized by the engine's reference quantizer), the reference is the
 * engine's reference dequantizer followed by a dot product in double. Bound:
 * |gpu - ref| <= 1e-4 * sum_i |x_i * w_i| per output (the row's magnitude;
 * f32 accumulation lands near 1e-6). Token counts 1..8 run in one launch,
 * 37 in groups; odd output counts exercise the partial last block, odd input
 * widths the scalar path of the plain types. Skips when no GPU is present.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_test.h"
#include "kernels.h"
#include "quant.h"

typedef struct weight {
    void *host;
    float *dequant; /* [n_out][n_in] */
    size_t bytes;
} weight_t;

static weight_t make_weight(int type, int64_t n_out, int64_t n_in)
{
    weight_t w = {0};
    uint64_t row_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n_in, &row_bytes), 0);
    w.bytes = (size_t)row_bytes * (size_t)n_out;
    w.host = malloc(w.bytes);
    w.dequant = malloc((size_t)(n_out * n_in) * sizeof(float));
    float *row = malloc((size_t)n_in * sizeof *row);
    for (int64_t o = 0; o < n_out; o++) {
        for (int64_t i = 0; i < n_in; i++)
            row[i] = gpu_test_normal() * 0.05f;
        uint8_t *dst = (uint8_t *)w.host + o * (int64_t)row_bytes;
        if (type == RF_TYPE_F32)
            memcpy(dst, row, (size_t)n_in * 4);
        else
            cr_assert_eq(rf_quantize_row(type, row, dst, n_in), 0);
        cr_assert_eq(rf_dequantize_row(type, dst, w.dequant + o * n_in, n_in), 0);
    }
    free(row);
    return w;
}

static double check_matmul(int type, int64_t n_out, int64_t n_in, int n_tokens, bool bias)
{
    weight_t w = make_weight(type, n_out, n_in);
    float *x = gpu_test_random((size_t)(n_tokens * n_in), 1.0f);
    float *b = bias ? gpu_test_random((size_t)n_out, 0.5f) : NULL;
    void *d_w = gpu_test_upload(w.host, w.bytes);
    float *d_x = gpu_test_upload(x, (size_t)(n_tokens * n_in) * 4);
    float *d_b = bias ? gpu_test_upload(b, (size_t)n_out * 4) : NULL;
    const size_t y_bytes = (size_t)n_tokens * (size_t)n_out * 4;
    float *d_y = gpu_test_poisoned(y_bytes);
    cr_assert_eq(rf_kernel_matmul_f32(type, d_w, d_x, d_y, d_b, n_out, n_in, n_tokens, NULL), 0,
                 "matmul %s launch", rf_type_name(type));
    float *got = gpu_test_download(d_y, y_bytes);
    double worst = 0;
    for (int t = 0; t < n_tokens; t++)
        for (int64_t o = 0; o < n_out; o++) {
            double sum = bias ? b[o] : 0.0, mag = bias ? fabs(b[o]) : 0.0;
            const float *wr = w.dequant + o * n_in, *xr = x + (int64_t)t * n_in;
            for (int64_t i = 0; i < n_in; i++) {
                sum += (double)wr[i] * xr[i];
                mag += fabs((double)wr[i] * xr[i]);
            }
            const float g = got[(size_t)t * (size_t)n_out + (size_t)o];
            cr_assert(!isnan(g), "matmul %s %ldx%ld n_tokens %d: y[%d][%ld] not written (NaN)",
                      rf_type_name(type), (long)n_out, (long)n_in, n_tokens, t, (long)o);
            const double err = fabs(g - sum) / (mag + 1e-30);
            if (err > worst)
                worst = err;
        }
    cr_expect(worst <= 1e-4, "matmul %s %ldx%ld n_tokens %d bias %d: error %g > 1e-4",
              rf_type_name(type), (long)n_out, (long)n_in, n_tokens, bias, worst);
    rf_gpu_free(d_w); rf_gpu_free(d_x); rf_gpu_free(d_b); rf_gpu_free(d_y);
    free(w.host); free(w.dequant); free(x); free(b); free(got);
    return worst;
}

static void check_type(int type, const int64_t (*shapes)[2], size_t n_shapes)
{
    static const int token_counts[] = {1, 2, 3, 4, 5, 8, 37};
    double worst = 0;
    for (size_t s = 0; s < n_shapes; s++)
        for (size_t k = 0; k < sizeof token_counts / sizeof token_counts[0]; k++) {
            double e = check_matmul(type, shapes[s][0], shapes[s][1], token_counts[k],
                                    (k + s) % 2 == 1);
            if (e > worst)
                worst = e;
        }
    cr_log_info("matmul %s: worst error %.3g of the row magnitude", rf_type_name(type), worst);
}

static const int64_t quant_shapes[][2] = {{67, 512}, {33, 4096}, {1, 256}, {130, 1280}};
static const int64_t plain_shapes[][2] = {{67, 512}, {33, 4096}, {5, 999}, {130, 1001}, {3, 6}};

Test(matmul_gpu, f32, .timeout = 120) { gpu_test_require("matmul F32"); gpu_test_seed(11); check_type(RF_TYPE_F32, plain_shapes, 5); }
Test(matmul_gpu, f16, .timeout = 120) { gpu_test_require("matmul F16"); gpu_test_seed(12); check_type(RF_TYPE_F16, plain_shapes, 5); }
Test(matmul_gpu, bf16, .timeout = 120) { gpu_test_require("matmul BF16"); gpu_test_seed(13); check_type(RF_TYPE_BF16, plain_shapes, 5); }
Test(matmul_gpu, q8_0, .timeout = 120) { gpu_test_require("matmul Q8_0"); gpu_test_seed(14); check_type(RF_TYPE_Q8_0, quant_shapes, 4); }
Test(matmul_gpu, q4_0, .timeout = 120) { gpu_test_require("matmul Q4_0"); gpu_test_seed(15); check_type(RF_TYPE_Q4_0, quant_shapes, 4); }
Test(matmul_gpu, q4_k, .timeout = 120) { gpu_test_require("matmul Q4_K"); gpu_test_seed(16); check_type(RF_TYPE_Q4_K, quant_shapes, 4); }
Test(matmul_gpu, q6_k, .timeout = 120) { gpu_test_require("matmul Q6_K"); gpu_test_seed(17); check_type(RF_TYPE_Q6_K, quant_shapes, 4); }

/* A set of three matrices of one input (Q, K, V shaped, with and without
 * bias) in one launch gives exactly what three single launches give, for
 * 1, 3 and 11 tokens (one, and two groups of 8). */
static void check_set(int type, int64_t n_in)
{
    const int64_t n_outs[3] = {64, 16, 37};
    weight_t w[3];
    void *d_w[3];
    float *d_single[3], *d_set[3], *d_b[3];
    float *x = gpu_test_random((size_t)(11 * n_in), 1.0f);
    float *d_x = gpu_test_upload(x, (size_t)(11 * n_in) * 4);
    for (int k = 0; k < 3; k++) {
        w[k] = make_weight(type, n_outs[k], n_in);
        d_w[k] = gpu_test_upload(w[k].host, w[k].bytes);
        float *b = gpu_test_random((size_t)n_outs[k], 0.5f);
        d_b[k] = k == 1 ? NULL : gpu_test_upload(b, (size_t)n_outs[k] * 4);
        free(b);
    }
    const int tokens[3] = {1, 3, 11};
    for (int c = 0; c < 3; c++) {
        const int nt = tokens[c];
        for (int k = 0; k < 3; k++) {
            d_single[k] = gpu_test_poisoned((size_t)(nt * n_outs[k]) * 4);
            d_set[k] = gpu_test_poisoned((size_t)(nt * n_outs[k]) * 4);
            cr_assert_eq(rf_kernel_matmul_f32(type, d_w[k], d_x, d_single[k], d_b[k], n_outs[k],
                                              n_in, nt, NULL), 0);
        }
        const void *ws[3] = {d_w[0], d_w[1], d_w[2]};
        const float *bs[3] = {d_b[0], d_b[1], d_b[2]};
        cr_assert_eq(rf_kernel_matmul_set_f32(type, 3, ws, d_set, bs, n_outs, d_x, n_in, nt,
                                              NULL), 0);
        for (int k = 0; k < 3; k++) {
            size_t bytes = (size_t)(nt * n_outs[k]) * 4;
            float *a = gpu_test_download(d_single[k], bytes), *b = gpu_test_download(d_set[k], bytes);
            cr_assert(memcmp(a, b, bytes) == 0, "%s: matrix %d of the set, %d tokens, differs "
                      "from its single launch", rf_type_name(type), k, nt);
            free(a);
            free(b);
            rf_gpu_free(d_single[k]);
            rf_gpu_free(d_set[k]);
        }
    }
    for (int k = 0; k < 3; k++) {
        rf_gpu_free(d_w[k]);
        rf_gpu_free(d_b[k]);
        free(w[k].host);
        free(w[k].dequant);
    }
    rf_gpu_free(d_x);
    free(x);
}

Test(matmul_gpu, set_equals_single_launches, .timeout = 120)
{
    gpu_test_require("matmul set");
    gpu_test_seed(18);
    check_set(RF_TYPE_F16, 512);
    check_set(RF_TYPE_Q8_0, 512);
    check_set(RF_TYPE_Q4_K, 512);
    check_set(RF_TYPE_F32, 130);
    float *d = gpu_test_poisoned(1 << 16);
    const void *ws[2] = {d, d};
    float *ys[2] = {d, d};
    const int64_t bad[2] = {4, 0};
    cr_expect_eq(rf_kernel_matmul_set_f32(RF_TYPE_F16, 2, ws, ys, NULL, bad, d, 256, 1, NULL),
                 RF_KERNEL_EINVAL);
    cr_expect_eq(rf_kernel_matmul_set_f32(RF_TYPE_F16, 5, ws, ys, NULL, bad, d, 256, 1, NULL),
                 RF_KERNEL_EINVAL);
    rf_gpu_free(d);
}

/* Q4_0 / Q8_0 repacked into the split layout give the same bits as the
 * GGUF layout, for 1, 3 and 11 tokens, with and without bias. */
static void check_split(int type, int64_t n_out, int64_t n_in)
{
    weight_t w = make_weight(type, n_out, n_in);
    void *d_w = gpu_test_upload(w.host, w.bytes);
    void *d_split = gpu_test_poisoned(w.bytes);
    cr_assert_eq(rf_kernel_repack_split(type, d_w, d_split, n_out, n_in, NULL), 0);
    const int split = type == RF_TYPE_Q4_0 ? RF_KERNEL_Q4_0_SPLIT : RF_KERNEL_Q8_0_SPLIT;
    float *x = gpu_test_random((size_t)(11 * n_in), 1.0f);
    float *bias = gpu_test_random((size_t)n_out, 0.5f);
    float *d_x = gpu_test_upload(x, (size_t)(11 * n_in) * 4);
    float *d_b = gpu_test_upload(bias, (size_t)n_out * 4);
    const int tokens[3] = {1, 3, 11};
    for (int c = 0; c < 6; c++) {
        const int nt = tokens[c % 3];
        const float *b = c < 3 ? NULL : d_b;
        size_t bytes = (size_t)(nt * n_out) * 4;
        float *d_a = gpu_test_poisoned(bytes), *d_s = gpu_test_poisoned(bytes);
        cr_assert_eq(rf_kernel_matmul_f32(type, d_w, d_x, d_a, b, n_out, n_in, nt, NULL), 0);
        cr_assert_eq(rf_kernel_matmul_f32(split, d_split, d_x, d_s, b, n_out, n_in, nt, NULL), 0);
        float *ga = gpu_test_download(d_a, bytes), *gs = gpu_test_download(d_s, bytes);
        cr_assert(memcmp(ga, gs, bytes) == 0, "%s split layout differs, %d tokens (%ld x %ld)",
                  rf_type_name(type), nt, (long)n_out, (long)n_in);
        free(ga);
        free(gs);
        rf_gpu_free(d_a);
        rf_gpu_free(d_s);
    }
    rf_gpu_free(d_w);
    rf_gpu_free(d_split);
    rf_gpu_free(d_x);
    rf_gpu_free(d_b);
    free(w.host);
    free(w.dequant);
    free(x);
    free(bias);
}

Test(matmul_gpu, split_layout_equals_gguf_layout, .timeout = 120)
{
    gpu_test_require("matmul split layout");
    gpu_test_seed(19);
    check_split(RF_TYPE_Q4_0, 67, 512);
    check_split(RF_TYPE_Q4_0, 130, 1280);
    check_split(RF_TYPE_Q8_0, 33, 4096);
    check_split(RF_TYPE_Q8_0, 1, 256);
    void *d = gpu_test_poisoned(1 << 16);
    cr_expect_eq(rf_kernel_repack_split(RF_TYPE_Q4_K, d, d, 1, 256, NULL),
                 RF_KERNEL_EUNSUPPORTED);
    cr_expect_eq(rf_kernel_repack_split(RF_TYPE_Q4_0, d, d, 1, 48, NULL), RF_KERNEL_EINVAL);
    rf_gpu_free(d);
}

Test(matmul_gpu, rejects_bad_arguments)
{
    gpu_test_require("matmul argument checks");
    void *d = gpu_test_poisoned(1 << 16);
    float *x = d;
    cr_expect_eq(rf_kernel_matmul_f32(RF_TYPE_Q5_K, d, x, x, NULL, 4, 256, 1, NULL),
                 RF_KERNEL_EUNSUPPORTED);
    cr_expect_eq(rf_kernel_matmul_f32(RF_TYPE_Q4_0, d, x, x, NULL, 4, 48, 1, NULL),
                 RF_KERNEL_EINVAL); /* not whole blocks */
    cr_expect_eq(rf_kernel_matmul_f32(RF_TYPE_Q4_K, d, x + 1, x, NULL, 4, 256, 1, NULL),
                 RF_KERNEL_EINVAL); /* misaligned activations */
    cr_expect_eq(rf_kernel_matmul_f32(RF_TYPE_F16, d, x, x, NULL, 0, 256, 1, NULL),
                 RF_KERNEL_EINVAL);
    rf_gpu_free(d);
}
