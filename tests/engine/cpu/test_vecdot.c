/* test_vecdot.c - CPU dot products against dequantized references and each other
 *
 * For every weight type with a dot product and every ISA this CPU runs:
 * weight rows (quantized from seeded random floats, and raw random bytes
 * with sane scales, which reach quant values the quantizers rarely emit)
 * are dotted with quantized activations. The scalar result must match a
 * double-precision dot product of the DEQUANTIZED weights (rf_dequantize_row)
 * and DEQUANTIZED activations (rf_dequantize_row for Q8_0, a Q8_K decoder
 * written here); each SIMD result must match the scalar one. Both differ
 * only by float rounding and reassociation, so the tolerance is
 * TOLERANCE * sum |w_i * a_i|. Rows sit at odd addresses and come in several
 * lengths: one block, a few, and counts that leave remainders in every
 * SIMD loop. Exact-integer cases pin the sign handling of the int8 tricks.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant.h"
#include "cpu/cpu_internal.h"
#include "cpu/vecdot.h"

/* Relative to sum |w_i a_i|. Float32 has a 6e-8 unit roundoff; the scaled
 * block sums are added in different orders by different ISAs, so a few
 * hundred roundings of that size are the most a row here can collect;
 * the largest seen is 1.2e-7. */
#define TOLERANCE 2e-6

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static uint64_t next_random(uint64_t *state)
{
    /* splitmix64: tiny, seedable, good enough for test data. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1). */
static float uniform(uint64_t *state)
{
    return (float)((double)(next_random(state) >> 11) * 0x1p-52 - 1.0);
}

/* n floats whose magnitude and offset change every 32 elements, so blocks
 * get different scales and the min formats see non-zero mins. */
static void random_floats(float *x, int64_t n, uint64_t *state)
{
    float amp = 1.0f, bias = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) {
            amp = expf(2.0f * uniform(state));
            bias = 0.5f * amp * uniform(state);
        }
        x[i] = amp * uniform(state) + bias;
    }
}

/* Byte offsets of each block's fp16 scale fields (ggml-common.h), so raw
 * random blocks can be given finite, moderate scales. -1: none. */
typedef struct {
    int type;
    int d_offset, m_offset;
} scale_fields_t;

static const scale_fields_t scale_fields[] = {
    {RF_TYPE_Q4_0, 0, -1},   {RF_TYPE_Q4_1, 0, 2},    {RF_TYPE_Q5_0, 0, -1},
    {RF_TYPE_Q5_1, 0, 2},    {RF_TYPE_Q8_0, 0, -1},   {RF_TYPE_Q2_K, 80, 82},
    {RF_TYPE_Q3_K, 108, -1}, {RF_TYPE_Q4_K, 0, 2},    {RF_TYPE_Q5_K, 0, 2},
    {RF_TYPE_Q6_K, 208, -1}, {RF_TYPE_IQ4_NL, 0, -1}, {RF_TYPE_IQ4_XS, 0, -1},
};

static void put_fp16(uint8_t *p, float v)
{
    const rf_fp16_t h = rf_fp32_to_fp16(v);
    memcpy(p, &h, sizeof h);
}

/* A row of random bytes with every scale field replaced by a finite value
 * (MXFP4: an exponent near 2^0). Returns false for plain types, which take
 * random floats instead. */
static bool random_blocks(int type, uint8_t *row, int64_t n, uint64_t *state)
{
    const rf_type_traits_t *t = rf_type_traits(type);
    if (t->block_size == 1)
        return false;
    const int64_t nb = n / t->block_size;
    for (int64_t i = 0; i < nb * t->type_size; i++)
        row[i] = (uint8_t)next_random(state);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *block = row + b * t->type_size;
        if (type == RF_TYPE_MXFP4) {
            block[0] = (uint8_t)(120 + next_random(state) % 12);
            continue;
        }
        for (size_t k = 0; k < sizeof scale_fields / sizeof scale_fields[0]; k++) {
            if (scale_fields[k].type != type)
                continue;
            put_fp16(block + scale_fields[k].d_offset, 0.01f * (1.5f + uniform(state)));
            if (scale_fields[k].m_offset >= 0)
                put_fp16(block + scale_fields[k].m_offset, 0.01f * (1.5f + uniform(state)));
        }
    }
    return true;
}

/* Q8_K has no dequantizer in quant.c (it is only an activation type). */
static void dequantize_q8_K(const uint8_t *row, float *y, int64_t n)
{
    for (int64_t b = 0; b < n / 256; b++) {
        rf_block_q8_K blk;
        memcpy(&blk, row + b * sizeof blk, sizeof blk);
        for (int j = 0; j < 256; j++)
            y[b * 256 + j] = blk.d * blk.qs[j];
    }
}

static void dequantize_act(int act_type, const uint8_t *act, float *y, int64_t n)
{
    if (act_type == RF_TYPE_Q8_K)
        dequantize_q8_K(act, y, n);
    else
        cr_assert_eq(rf_dequantize_row(act_type, act, y, n), 0);
}

/* ------------------------------------------------------------------------
 * The check
 * ------------------------------------------------------------------------ */

/* One row of n elements: scalar vs the dequantized double reference, and
 * every supported SIMD path vs scalar. raw: weights are random bytes. */
static void check_row(int type, int64_t n, bool raw, uint64_t seed)
{
    uint64_t state = seed;
    const int act_type = rf_cpu_act_type(type);
    cr_assert(act_type >= 0, "%s has an activation type", rf_type_name(type));
    uint64_t w_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n, &w_bytes), 0);
    const size_t a_bytes = rf_cpu_act_row_bytes(act_type, n);
    cr_assert(a_bytes > 0);

    float *wf = malloc((size_t)n * sizeof *wf), *af = malloc((size_t)n * sizeof *af);
    float *wd = malloc((size_t)n * sizeof *wd), *ad = malloc((size_t)n * sizeof *ad);
    uint8_t *wbuf = malloc(w_bytes + 1), *abuf = malloc(a_bytes + 1);
    cr_assert(wf && af && wd && ad && wbuf && abuf);
    /* Odd addresses: rows from an mmapped file need not be aligned. */
    uint8_t *w = wbuf + 1, *a = abuf + 1;

    if (!raw || !random_blocks(type, w, n, &state)) {
        random_floats(wf, n, &state);
        cr_assert_eq(rf_quantize_row(type, wf, w, n), 0);
    }
    random_floats(af, n, &state);
    cr_assert_eq(rf_cpu_quantize_act(act_type, af, a, n), 0);
    cr_assert_eq(rf_dequantize_row(type, w, wd, n), 0);
    dequantize_act(act_type, a, ad, n);

    double ref = 0.0, mag = 0.0;
    for (int64_t i = 0; i < n; i++) {
        ref += (double)wd[i] * (double)ad[i];
        mag += fabs((double)wd[i] * (double)ad[i]);
    }
    cr_assert(isfinite(ref) && mag > 0.0, "%s n=%ld: test data degenerate", rf_type_name(type),
              (long)n);

    rf_cpu_vec_dot_fn scalar = rf_cpu_vec_dot_get(type, RF_CPU_SCALAR);
    cr_assert(scalar != NULL, "%s has a scalar dot product", rf_type_name(type));
    const float s = scalar(n, w, a);
    cr_expect(fabs((double)s - ref) <= TOLERANCE * mag,
              "%s n=%ld%s scalar: got %.9g, reference %.9g (error %.3g of sum|wa| %.3g)",
              rf_type_name(type), (long)n, raw ? " raw" : "", (double)s, ref,
              fabs((double)s - ref) / mag, mag);

    for (int isa = RF_CPU_AVX2; isa < RF_CPU_ISA_COUNT; isa++) {
        if (!rf_cpu_isa_supported((rf_cpu_isa_t)isa))
            continue;
        rf_cpu_vec_dot_fn f = rf_cpu_vec_dot_get(type, (rf_cpu_isa_t)isa);
        cr_assert(f != NULL);
        const float v = f(n, w, a);
        cr_expect(
            fabs((double)v - (double)s) <= TOLERANCE * mag,
            "%s n=%ld%s %s (code: %s): got %.9g, scalar %.9g (difference %.3g of sum|wa| %.3g)",
            rf_type_name(type), (long)n, raw ? " raw" : "", rf_cpu_isa_name((rf_cpu_isa_t)isa),
            rf_cpu_isa_name((rf_cpu_isa_t)rf_cpu_vec_dot_isa(type, (rf_cpu_isa_t)isa)), (double)v,
            (double)s, fabs((double)v - (double)s) / mag, mag);
    }
    free(wf);
    free(af);
    free(wd);
    free(ad);
    free(wbuf);
    free(abuf);
}

/* Block counts leave every remainder of the 2- and 4-block SIMD loops;
 * element counts for the plain types every remainder of 8, 16 and 64. */
static void check_type(int type)
{
    const rf_type_traits_t *t = rf_type_traits(type);
    cr_assert(t != NULL);
    uint64_t seed = 1000u * (uint64_t)type;
    if (t->block_size == 1) {
        static const int64_t lengths[] = {1, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000, 4099};
        for (size_t k = 0; k < sizeof lengths / sizeof lengths[0]; k++)
            check_row(type, lengths[k], false, seed++);
        return;
    }
    static const int64_t blocks[] = {1, 2, 3, 4, 5, 6, 7, 9, 33, 64};
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        const int64_t n = blocks[k] * t->block_size;
        if (n > 16384)
            continue;
        check_row(type, n, false, seed++);
        check_row(type, n, true, seed++);
    }
}

/* ------------------------------------------------------------------------
 * Dot products, one test per weight type
 * ------------------------------------------------------------------------ */

#define TYPE_TEST(name, type)                                          \
    Test(vecdot, name##_matches_reference_on_every_isa, .timeout = 60) \
    {                                                                  \
        check_type(type);                                              \
    }

TYPE_TEST(f32, RF_TYPE_F32)
TYPE_TEST(f16, RF_TYPE_F16)
TYPE_TEST(bf16, RF_TYPE_BF16)
TYPE_TEST(q4_0, RF_TYPE_Q4_0)
TYPE_TEST(q4_1, RF_TYPE_Q4_1)
TYPE_TEST(q5_0, RF_TYPE_Q5_0)
TYPE_TEST(q5_1, RF_TYPE_Q5_1)
TYPE_TEST(q8_0, RF_TYPE_Q8_0)
TYPE_TEST(q2_K, RF_TYPE_Q2_K)
TYPE_TEST(q3_K, RF_TYPE_Q3_K)
TYPE_TEST(q4_K, RF_TYPE_Q4_K)
TYPE_TEST(q5_K, RF_TYPE_Q5_K)
TYPE_TEST(q6_K, RF_TYPE_Q6_K)
TYPE_TEST(iq4_nl, RF_TYPE_IQ4_NL)
TYPE_TEST(iq4_xs, RF_TYPE_IQ4_XS)
TYPE_TEST(mxfp4, RF_TYPE_MXFP4)

/* ------------------------------------------------------------------------
 * Tiles: several weight rows times several activation rows per call
 * ------------------------------------------------------------------------ */

/* Every tile shape up to RF_CPU_TILE_MAX x RF_CPU_TILE_MAX, at odd
 * addresses and strides, must give each output bit for bit what the
 * single-row function of the same ISA gives (the matmul's results must not
 * depend on how rows were grouped), and stay within TOLERANCE of scalar. */
static void check_tiles(int type, int64_t n, uint64_t seed)
{
    enum { ROWS = RF_CPU_TILE_MAX };
    uint64_t state = seed;
    const int act_type = rf_cpu_act_type(type);
    uint64_t w_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n, &w_bytes), 0);
    const size_t a_bytes = rf_cpu_act_row_bytes(act_type, n);
    /* Strides one byte longer than a row: no row starts aligned. */
    const size_t w_stride = (size_t)w_bytes + 1, a_stride = a_bytes + 3;
    float *f = malloc((size_t)n * sizeof *f);
    uint8_t *wbuf = calloc(ROWS * w_stride + 1, 1), *abuf = calloc(ROWS * a_stride + 1, 1);
    cr_assert(f && wbuf && abuf);
    uint8_t *w = wbuf + 1, *a = abuf + 1;
    for (int r = 0; r < ROWS; r++) {
        random_floats(f, n, &state);
        cr_assert_eq(rf_quantize_row(type, f, w + r * w_stride, n), 0);
        random_floats(f, n, &state);
        cr_assert_eq(rf_cpu_quantize_act(act_type, f, a + r * a_stride, n), 0);
    }
    rf_cpu_vec_dot_fn scalar = rf_cpu_vec_dot_get(type, RF_CPU_SCALAR);
    for (int isa = RF_CPU_SCALAR; isa < RF_CPU_ISA_COUNT; isa++) {
        if (!rf_cpu_isa_supported((rf_cpu_isa_t)isa))
            continue;
        rf_cpu_vec_dot_tile_fn tile = rf_cpu_vec_dot_tile_get(type, (rf_cpu_isa_t)isa);
        rf_cpu_vec_dot_fn one = rf_cpu_vec_dot_get(type, (rf_cpu_isa_t)isa);
        if (tile == NULL)
            continue;
        for (int n_w = 1; n_w <= ROWS; n_w++) {
            for (int n_act = 1; n_act <= ROWS; n_act++) {
                /* dst rows 7 floats apart, pre-filled to catch stray writes. */
                float dst[ROWS * 7];
                for (int k = 0; k < ROWS * 7; k++)
                    dst[k] = -1234.5f;
                tile(n, w, w_stride, n_w, a, a_stride, n_act, dst, 7);
                for (int j = 0; j < ROWS; j++) {
                    for (int i = 0; i < 7; i++) {
                        const float got = dst[j * 7 + i];
                        if (j >= n_act || i >= n_w) {
                            cr_expect(got == -1234.5f, "%s tile %dx%d wrote outside at %d,%d",
                                      rf_type_name(type), n_w, n_act, i, j);
                            continue;
                        }
                        const uint8_t *wi = w + i * w_stride, *aj = a + j * a_stride;
                        const float want = one(n, wi, aj);
                        cr_expect(memcmp(&got, &want, sizeof got) == 0,
                                  "%s n=%ld %s tile %dx%d output (%d,%d): %.9g, single row %.9g",
                                  rf_type_name(type), (long)n,
                                  rf_cpu_isa_name((rf_cpu_isa_t)isa), n_w, n_act, i, j,
                                  (double)got, (double)want);
                        const float s = scalar(n, wi, aj);
                        double mag = 0.0;
                        float wd[4096], ad[4096];
                        cr_assert(n <= 4096);
                        cr_assert_eq(rf_dequantize_row(type, wi, wd, n), 0);
                        dequantize_act(act_type, aj, ad, n);
                        for (int64_t e = 0; e < n; e++)
                            mag += fabs((double)wd[e] * (double)ad[e]);
                        cr_expect(fabs((double)got - (double)s) <= TOLERANCE * mag,
                                  "%s n=%ld %s tile %dx%d: %.9g, scalar %.9g",
                                  rf_type_name(type), (long)n,
                                  rf_cpu_isa_name((rf_cpu_isa_t)isa), n_w, n_act,
                                  (double)got, (double)s);
                    }
                }
            }
        }
    }
    free(f);
    free(wbuf);
    free(abuf);
}

Test(vecdot, tiles_equal_single_rows_bit_for_bit, .timeout = 60)
{
    /* Lengths leave every remainder of F16's 16-element step and its
     * masked tail; the block formats get one, an odd number and many. */
    static const int64_t f16_lengths[] = {1, 15, 16, 17, 100, 2048};
    static const int64_t blocks[] = {1, 3, 64};
    for (size_t k = 0; k < sizeof f16_lengths / sizeof f16_lengths[0]; k++)
        check_tiles(RF_TYPE_F16, f16_lengths[k], 77 + k);
    for (size_t k = 0; k < sizeof blocks / sizeof blocks[0]; k++) {
        check_tiles(RF_TYPE_Q8_0, 32 * blocks[k], 177 + k);
        check_tiles(RF_TYPE_Q4_0, 32 * blocks[k], 277 + k);
    }
}

Test(vecdot, tile_paths_exist_where_the_cpu_has_them)
{
    static const int types[] = {RF_TYPE_F16, RF_TYPE_Q8_0, RF_TYPE_Q4_0};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        cr_expect_null(rf_cpu_vec_dot_tile_get(types[k], RF_CPU_SCALAR));
        if (rf_cpu_isa_supported(RF_CPU_AVX512))
            cr_expect_not_null(rf_cpu_vec_dot_tile_get(types[k], RF_CPU_AVX512), "%s",
                               rf_type_name(types[k]));
    }
    cr_expect_null(rf_cpu_vec_dot_tile_get(RF_TYPE_Q4_K, RF_CPU_AVX512));
    cr_expect_null(rf_cpu_vec_dot_tile_get(-1, RF_CPU_AVX512));
}

/* ------------------------------------------------------------------------
 * Packed weights: groups of 16 rows times up to 8 prepared activation rows
 * ------------------------------------------------------------------------ */

/* n_rows weight rows (from random floats, or random bytes with sane
 * scales, which reach Q8_0's -128) packed, times N_ACT activation rows in
 * every call size 1..RF_CPU_PACK_ACT_MAX: each output must equal bit for
 * bit the AVX-512 single-row function on the rows as stored and Q8_0
 * activations, and nothing may be written past the group's live rows. */
static void check_packed(int type, int64_t n, int64_t n_rows, bool raw, uint64_t seed)
{
    enum { N_ACT = 11, DST_STRIDE = 7 * RF_CPU_PACK_ROWS };
    const rf_cpu_packed_gemm_fn gemm = rf_cpu_packed_gemm_get(type, RF_CPU_AVX512);
    cr_assert_not_null(gemm);
    const rf_cpu_vec_dot_fn one = rf_cpu_vec_dot_get(type, RF_CPU_AVX512);
    cr_assert_eq(rf_cpu_vec_dot_isa(type, RF_CPU_AVX512), RF_CPU_AVX512);
    uint64_t state = seed;
    uint64_t w_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n, &w_bytes), 0);
    const int64_t n_groups = (n_rows + RF_CPU_PACK_ROWS - 1) / RF_CPU_PACK_ROWS;
    const size_t group_bytes = rf_cpu_pack_group_bytes(type, n);
    const size_t q_bytes = rf_cpu_act_row_bytes(RF_TYPE_Q8_0, n);
    const size_t p_bytes = rf_cpu_packed_act_row_bytes(type, n);
    cr_assert(group_bytes > 0 && group_bytes % 64 == 0 && p_bytes > 0 && p_bytes % 64 == 0);
    float *f = malloc((size_t)n * sizeof *f);
    uint8_t *w = malloc((size_t)n_rows * w_bytes + 1);
    uint8_t *packed = aligned_alloc(64, (size_t)n_groups * group_bytes);
    uint8_t *act = malloc(N_ACT * q_bytes + 1);
    uint8_t *prep = aligned_alloc(64, N_ACT * p_bytes);
    float *dst = malloc((size_t)n_groups * N_ACT * DST_STRIDE * sizeof *dst);
    cr_assert(f && w && packed && act && prep && dst);
    for (int64_t r = 0; r < n_rows; r++) {
        uint8_t *row = w + 1 + r * w_bytes; /* odd addresses, as from a file */
        if (!raw || !random_blocks(type, row, n, &state)) {
            random_floats(f, n, &state);
            cr_assert_eq(rf_quantize_row(type, f, row, n), 0);
        }
    }
    cr_assert_eq(rf_cpu_pack_rows(type, n, n_rows, w + 1, (size_t)w_bytes, packed), 0);
    for (int a = 0; a < N_ACT; a++) {
        random_floats(f, n, &state);
        cr_assert_eq(rf_cpu_quantize_act(RF_TYPE_Q8_0, f, act + 1 + a * q_bytes, n), 0);
        cr_assert_eq(rf_cpu_quantize_packed_act(type, f, prep + a * p_bytes, n), 0);
    }
    for (int per_call = 1; per_call <= RF_CPU_PACK_ACT_MAX; per_call++) {
        for (int64_t k = 0; k < n_groups * N_ACT * DST_STRIDE; k++)
            dst[k] = -1234.5f;
        for (int64_t g = 0; g < n_groups; g++) {
            const int live = n_rows - g * RF_CPU_PACK_ROWS < RF_CPU_PACK_ROWS
                                 ? (int)(n_rows - g * RF_CPU_PACK_ROWS) : RF_CPU_PACK_ROWS;
            for (int a = 0; a < N_ACT; a += per_call) {
                const int n_act = N_ACT - a < per_call ? N_ACT - a : per_call;
                gemm(n, packed + g * group_bytes, prep + a * p_bytes, p_bytes, n_act,
                     dst + (g * N_ACT + a) * DST_STRIDE, DST_STRIDE, live);
            }
        }
        for (int64_t g = 0; g < n_groups; g++) {
            for (int a = 0; a < N_ACT; a++) {
                for (int i = 0; i < DST_STRIDE; i++) {
                    const int64_t r = g * RF_CPU_PACK_ROWS + i;
                    const float got = dst[(g * N_ACT + a) * DST_STRIDE + i];
                    if (i >= RF_CPU_PACK_ROWS || r >= n_rows) {
                        cr_expect(got == -1234.5f, "%s packed wrote outside: group %ld row %d",
                                  rf_type_name(type), (long)g, i);
                        continue;
                    }
                    const float want = one(n, w + 1 + r * w_bytes, act + 1 + a * q_bytes);
                    cr_expect(memcmp(&got, &want, sizeof got) == 0,
                              "%s n=%ld%s packed, %d per call, row %ld act %d: %.9g, single "
                              "row %.9g", rf_type_name(type), (long)n, raw ? " raw" : "",
                              per_call, (long)r, a, (double)got, (double)want);
                }
            }
        }
    }
    free(f);
    free(w);
    free(packed);
    free(act);
    free(prep);
    free(dst);
}

Test(vecdot, packed_gemm_equals_single_rows_bit_for_bit, .timeout = 60)
{
    if (!rf_cpu_isa_supported(RF_CPU_AVX512)) {
        cr_skip_test("this CPU has no AVX-512 VNNI: no packed kernels");
        return;
    }
    static const int types[] = {RF_TYPE_Q4_0, RF_TYPE_Q8_0};
    /* One block, an odd count, a model-sized row; a partial group, one
     * whole group, and several with a partial last one. */
    static const int64_t blocks[] = {1, 3, 64};
    static const int64_t rows[] = {5, 16, 37};
    uint64_t seed = 500;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
        for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++)
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
                check_packed(types[t], 32 * blocks[b], rows[r], false, seed++);
                check_packed(types[t], 32 * blocks[b], rows[r], true, seed++);
            }
}

/* The matmul on packed weights, with Q, K and V-like parts in one pass:
 * every output is the single-row function's bits, whatever the batch (all
 * rows, one row at a time, a gathered subset), the thread count, and
 * whether the weight is packed. This is what lets a job's output not
 * depend on what it is batched with. */
static void check_packed_matmul(int type)
{
    enum { K = 512, N_TOK = 13, N_PARTS = 3 };
    static const uint64_t rows_of[N_PARTS] = {40, 16, 7};
    uint64_t state = 900 + (uint64_t)type;
    uint64_t row_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, K, &row_bytes), 0);
    rf__cpu_pool_t pool1, pool2;
    cr_assert_eq(rf__cpu_pool_init(&pool1, 1), 0);
    cr_assert_eq(rf__cpu_pool_init(&pool2, 2), 0);
    float *x = malloc(N_TOK * K * sizeof *x), f[K];
    random_floats(x, N_TOK * K, &state);
    rf_weight_t w[N_PARTS];
    rf__cpu_packed_t packed[N_PARTS];
    uint8_t *data[N_PARTS], *pack_mem[N_PARTS];
    float *want[N_PARTS];
    for (int p = 0; p < N_PARTS; p++) {
        data[p] = malloc(rows_of[p] * row_bytes);
        for (uint64_t r = 0; r < rows_of[p]; r++) {
            random_floats(f, K, &state);
            cr_assert_eq(rf_quantize_row(type, f, data[p] + r * row_bytes, K), 0);
        }
        w[p] = (rf_weight_t){.data = data[p], .type = type, .ne = {K, rows_of[p], 1},
                             .row_bytes = row_bytes, .name = "w"};
        const size_t bytes = rf__cpu_packed_bytes(RF_CPU_AVX512, &w[p]);
        cr_assert(bytes > 0 && bytes % 64 == 0);
        pack_mem[p] = aligned_alloc(64, bytes);
        rf__cpu_pack_weight(&pool2, &w[p], pack_mem[p], &packed[p]);
        /* The reference: the single-row function on Q8_0 activations. */
        want[p] = malloc(N_TOK * rows_of[p] * sizeof(float));
        uint8_t act[K / 32 * 34];
        for (int t = 0; t < N_TOK; t++) {
            cr_assert_eq(rf_cpu_quantize_act(RF_TYPE_Q8_0, x + t * K, act, K), 0);
            for (uint64_t r = 0; r < rows_of[p]; r++)
                want[p][t * rows_of[p] + r] = rf_cpu_vec_dot_get(type, RF_CPU_AVX512)(
                    K, data[p] + r * row_bytes, act);
        }
    }
    size_t act_bytes = 0;
    for (int p = 0; p < N_PARTS; p++)
        if (rf__cpu_matmul_act_row_bytes(&w[p], RF_CPU_AVX512) > act_bytes)
            act_bytes = rf__cpu_matmul_act_row_bytes(&w[p], RF_CPU_AVX512);
    rf__cpu_matmul_ctx_t mm = {.isa = RF_CPU_AVX512, .act = aligned_alloc(64, N_TOK * act_bytes),
                               .act_size = N_TOK * act_bytes};
    float *got[N_PARTS];
    for (int p = 0; p < N_PARTS; p++)
        got[p] = malloc(N_TOK * rows_of[p] * sizeof(float));
    /* Reversed order gathered through rows: each output row r is token
     * N_TOK - 1 - r. */
    int32_t reversed[N_TOK];
    for (int t = 0; t < N_TOK; t++)
        reversed[t] = N_TOK - 1 - t;
    for (int variant = 0; variant < 5; variant++) {
        const bool use_packed = variant != 4;
        mm.pool = variant == 1 ? &pool1 : &pool2;
        rf__cpu_matmul_out_t outs[N_PARTS];
        for (int p = 0; p < N_PARTS; p++)
            outs[p] = (rf__cpu_matmul_out_t){.w = &w[p],
                                             .packed = use_packed ? packed[p].data : NULL,
                                             .dst = got[p], .dst_stride = (int64_t)rows_of[p]};
        if (variant == 2) { /* one token per call, each part alone */
            for (int t = 0; t < N_TOK; t++)
                for (int p = 0; p < N_PARTS; p++)
                    rf__cpu_matmul(&mm, &w[p], packed[p].data, NULL, x + t * K, K, NULL, 1,
                                   got[p] + t * rows_of[p], (int64_t)rows_of[p]);
        } else if (variant == 3) {
            rf__cpu_matmul_multi(&mm, outs, N_PARTS, x, K, reversed, N_TOK);
        } else {
            rf__cpu_matmul_multi(&mm, outs, N_PARTS, x, K, NULL, N_TOK);
        }
        for (int p = 0; p < N_PARTS; p++)
            for (int r = 0; r < N_TOK; r++) {
                const int t = variant == 3 ? reversed[r] : r;
                const float *g = got[p] + r * rows_of[p], *e = want[p] + t * rows_of[p];
                cr_expect(memcmp(g, e, rows_of[p] * sizeof(float)) == 0,
                          "%s variant %d part %d token %d differs from the single-row "
                          "function", rf_type_name(type), variant, p, t);
            }
    }
    for (int p = 0; p < N_PARTS; p++) {
        free(pack_mem[p]);
        free(data[p]);
        free(want[p]);
        free(got[p]);
    }
    free(mm.act);
    free(x);
    rf__cpu_pool_free(&pool1);
    rf__cpu_pool_free(&pool2);
}

/* Routed experts: a 3-D weight packs expert after expert, and the matmul
 * on one expert's slice (as moe.c takes it) with that expert's packed
 * groups gives the single-row function's bits. */
static void check_packed_experts(int type)
{
    enum { K = 256, ROWS = 23, EXPERTS = 3, N_TOK = 5 };
    uint64_t state = 1900 + (uint64_t)type;
    uint64_t row_bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, K, &row_bytes), 0);
    rf__cpu_pool_t pool;
    cr_assert_eq(rf__cpu_pool_init(&pool, 2), 0);
    float f[K], x[N_TOK * K];
    random_floats(x, N_TOK * K, &state);
    uint8_t *data = malloc(EXPERTS * ROWS * row_bytes);
    for (int r = 0; r < EXPERTS * ROWS; r++) {
        random_floats(f, K, &state);
        cr_assert_eq(rf_quantize_row(type, f, data + r * row_bytes, K), 0);
    }
    const rf_weight_t w = {.data = data, .type = type, .ne = {K, ROWS, EXPERTS},
                           .row_bytes = row_bytes, .name = "exps"};
    const size_t bytes = rf__cpu_packed_bytes(RF_CPU_AVX512, &w);
    cr_assert(bytes > 0);
    uint8_t *mem = aligned_alloc(64, bytes);
    rf__cpu_packed_t packed;
    rf__cpu_pack_weight(&pool, &w, mem, &packed);
    cr_assert_eq(packed.expert_bytes * EXPERTS, bytes);
    const size_t act_bytes = rf__cpu_matmul_act_row_bytes(&w, RF_CPU_AVX512);
    rf__cpu_matmul_ctx_t mm = {.pool = &pool, .isa = RF_CPU_AVX512,
                               .act = aligned_alloc(64, N_TOK * act_bytes),
                               .act_size = N_TOK * act_bytes};
    for (int e = 0; e < EXPERTS; e++) {
        rf_weight_t slice = w;
        slice.data = data + (size_t)e * ROWS * row_bytes;
        slice.ne[2] = 1;
        float got[N_TOK * ROWS];
        rf__cpu_matmul(&mm, &slice, packed.data + e * packed.expert_bytes, NULL, x, K, NULL,
                       N_TOK, got, ROWS);
        uint8_t act[K / 32 * 34];
        for (int t = 0; t < N_TOK; t++) {
            cr_assert_eq(rf_cpu_quantize_act(RF_TYPE_Q8_0, x + t * K, act, K), 0);
            for (int r = 0; r < ROWS; r++) {
                const float want = rf_cpu_vec_dot_get(type, RF_CPU_AVX512)(
                    K, (const uint8_t *)slice.data + r * row_bytes, act);
                cr_expect(memcmp(&got[t * ROWS + r], &want, sizeof want) == 0,
                          "%s expert %d token %d row %d: %.9g, single row %.9g",
                          rf_type_name(type), e, t, r, (double)got[t * ROWS + r],
                          (double)want);
            }
        }
    }
    free(mm.act);
    free(mem);
    free(data);
    rf__cpu_pool_free(&pool);
}

Test(vecdot, packed_matmul_does_not_depend_on_batch_threads_or_packing, .timeout = 60)
{
    if (!rf_cpu_isa_supported(RF_CPU_AVX512)) {
        cr_skip_test("this CPU has no AVX-512 VNNI: no packed kernels");
        return;
    }
    check_packed_matmul(RF_TYPE_Q4_0);
    check_packed_matmul(RF_TYPE_Q8_0);
    check_packed_experts(RF_TYPE_Q4_0);
    check_packed_experts(RF_TYPE_Q8_0);
}

Test(vecdot, packed_layouts_exist_only_where_written)
{
    const bool avx512 = rf_cpu_isa_supported(RF_CPU_AVX512);
    static const int packed[] = {RF_TYPE_Q4_0, RF_TYPE_Q8_0};
    for (size_t k = 0; k < sizeof packed / sizeof packed[0]; k++) {
        cr_expect_eq(rf_cpu_pack_supported(packed[k], RF_CPU_AVX512), avx512);
        cr_expect_not(rf_cpu_pack_supported(packed[k], RF_CPU_AVX2));
        cr_expect_not(rf_cpu_pack_supported(packed[k], RF_CPU_SCALAR));
        cr_expect_eq(rf_cpu_pack_group_bytes(packed[k], 48), 0, "n not a multiple of 32");
        cr_expect_eq(rf_cpu_packed_act_row_bytes(packed[k], 0), 0);
    }
    static const int others[] = {RF_TYPE_F16, RF_TYPE_Q4_K, RF_TYPE_Q4_1, -1};
    float x[32] = {0};
    uint8_t out[1024];
    for (size_t k = 0; k < sizeof others / sizeof others[0]; k++) {
        cr_expect_not(rf_cpu_pack_supported(others[k], RF_CPU_AVX512));
        cr_expect_null(rf_cpu_packed_gemm_get(others[k], RF_CPU_AVX512));
        cr_expect_eq(rf_cpu_pack_group_bytes(others[k], 256), 0);
        cr_expect_eq(rf_cpu_pack_rows(others[k], 256, 1, out, 256, out), RF_EUNSUPPORTED);
        cr_expect_eq(rf_cpu_quantize_packed_act(others[k], x, out, 32), RF_EUNSUPPORTED);
    }
    cr_expect_eq(rf_cpu_pack_rows(RF_TYPE_Q4_0, 40, 1, out, 40, out), RF_EFORMAT);
    cr_expect_eq(rf_cpu_quantize_packed_act(RF_TYPE_Q8_0, x, out, 31), RF_EFORMAT);
}

/* Scales of 1 make every product an exact integer, so all ISAs must give
 * the integer sum exactly. Weights hit the extremes the int8 sign trick
 * must handle: Q8_0's -128 (its |x| only fits unsigned) and Q4_0's -8,
 * against activation quants of +-127. Five blocks cover the paired loops
 * and the odd tail. */
Test(vecdot, extreme_quants_sum_exactly)
{
    enum { NB = 5 };
    const rf_fp16_t one = rf_fp32_to_fp16(1.0f);
    uint8_t act[NB * 34 + 1], q8[NB * 34 + 1], q4[NB * 18 + 1];
    int64_t want_q8 = 0, want_q4 = 0;
    for (int b = 0; b < NB; b++) {
        uint8_t *ab = act + 1 + 34 * b, *xb = q8 + 1 + 34 * b, *zb = q4 + 1 + 18 * b;
        memcpy(ab, &one, 2);
        memcpy(xb, &one, 2);
        memcpy(zb, &one, 2);
        for (int j = 0; j < 32; j++) {
            const int8_t y = (j + b) % 3 == 0 ? -127 : 127;
            const int8_t x = (j + 2 * b) % 4 == 0 ? -128 : (j % 4 == 1 ? 127 : -127);
            const int nib = (j + b) % 2 == 0 ? 0 : 15; /* -8 or +7 */
            ab[2 + j] = (uint8_t)y;
            xb[2 + j] = (uint8_t)x;
            if (j < 16)
                zb[2 + j] = (uint8_t)nib;
            else
                zb[2 + j - 16] |= (uint8_t)(nib << 4);
            want_q8 += x * y;
            want_q4 += (nib - 8) * y;
        }
    }
    for (int isa = 0; isa < RF_CPU_ISA_COUNT; isa++) {
        if (!rf_cpu_isa_supported((rf_cpu_isa_t)isa))
            continue;
        const float got_q8 =
            rf_cpu_vec_dot_get(RF_TYPE_Q8_0, (rf_cpu_isa_t)isa)(NB * 32, q8 + 1, act + 1);
        const float got_q4 =
            rf_cpu_vec_dot_get(RF_TYPE_Q4_0, (rf_cpu_isa_t)isa)(NB * 32, q4 + 1, act + 1);
        cr_expect_eq(got_q8, (float)want_q8, "Q8_0 %s: got %.1f, want %ld",
                     rf_cpu_isa_name((rf_cpu_isa_t)isa), (double)got_q8, (long)want_q8);
        cr_expect_eq(got_q4, (float)want_q4, "Q4_0 %s: got %.1f, want %ld",
                     rf_cpu_isa_name((rf_cpu_isa_t)isa), (double)got_q4, (long)want_q4);
    }
}

/* ------------------------------------------------------------------------
 * Activation quantization
 * ------------------------------------------------------------------------ */

Test(vecdot, q8_0_activations_dequantize_within_half_a_step)
{
    enum { N = 32 * 40 };
    float x[N], y[N];
    uint8_t q[N / 32 * 34];
    uint64_t state = 7;
    random_floats(x, N, &state);
    cr_assert_eq(rf_cpu_act_row_bytes(RF_TYPE_Q8_0, N), sizeof q);
    cr_assert_eq(rf_cpu_quantize_act(RF_TYPE_Q8_0, x, q, N), 0);
    cr_assert_eq(rf_dequantize_row(RF_TYPE_Q8_0, q, y, N), 0);
    for (int b = 0; b < N / 32; b++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        /* Half a step of amax / 127, plus the fp16 rounding of the scale
         * (2^-11 relative) times at most 127 steps. */
        const float bound = amax / 127.0f * (0.5f + 127.0f * 0x1p-11f) * 1.0001f;
        for (int j = 0; j < 32; j++) {
            const int i = 32 * b + j;
            cr_expect(fabsf(x[i] - y[i]) <= bound, "element %d: %.9g became %.9g (bound %.3g)", i,
                      (double)x[i], (double)y[i], (double)bound);
            cr_expect((int8_t)q[34 * b + 2 + j] != -128, "element %d quantized to -128", i);
        }
    }
}

/* The activation quantizer may take a SIMD path; it must give quant.c's
 * reference bytes exactly, on random rows and on the edge cases: ties that
 * round away from zero (amax 127 makes the scale 1), values just below a
 * half, NaN, infinities, signed zeros, subnormals and all-zero blocks. */
Test(vecdot, q8_0_activations_equal_the_reference_quantizer)
{
    enum { N = 32 * 40 };
    float x[N];
    uint64_t state = 4242;
    random_floats(x, N, &state);
    /* Block 0: amax 127, ties k + 0.5 and neighbours either side. */
    x[0] = 127.0f;
    for (int j = 1; j < 32; j++) {
        const float tie = (float)(j - 16) + 0.5f;
        x[j] = j % 3 == 0 ? tie : j % 3 == 1 ? nextafterf(tie, 0.0f) : nextafterf(tie, 200.0f);
    }
    /* Block 1: NaN among finite values; block 2: an infinity; block 3:
     * zeros of both signs; block 4: subnormals; block 5: -amax first. */
    for (int j = 0; j < 32; j++) {
        x[32 + j] = j == 5 ? NAN : 0.25f * (float)(j - 16);
        x[64 + j] = j == 9 ? -INFINITY : 1.0f;
        x[96 + j] = j % 2 ? -0.0f : 0.0f;
        x[128 + j] = (float)(j - 16) * 1e-40f;
        x[160 + j] = j == 0 ? -3.0f : (j == 7 ? 3.0f : 0.1f * (float)j);
    }
    uint8_t got[N / 32 * 34], want[N / 32 * 34];
    memset(got, 0xaa, sizeof got);
    cr_assert_eq(rf_cpu_quantize_act(RF_TYPE_Q8_0, x, got, N), 0);
    cr_assert_eq(rf_quantize_row(RF_TYPE_Q8_0, x, want, N), 0);
    for (int b = 0; b < N / 32; b++)
        cr_expect(memcmp(got + 34 * b, want + 34 * b, 34) == 0,
                  "block %d differs from the reference quantizer", b);
}

Test(vecdot, q8_K_activations_dequantize_within_half_a_step_and_sum)
{
    enum { N = 256 * 6 };
    float x[N], y[N];
    uint8_t q[N / 256 * sizeof(rf_block_q8_K)];
    uint64_t state = 11;
    random_floats(x, N, &state);
    for (int j = 0; j < 256; j++) /* one all-zero block */
        x[512 + j] = 0.0f;
    cr_assert_eq(rf_cpu_act_row_bytes(RF_TYPE_Q8_K, N), sizeof q);
    cr_assert_eq(rf_cpu_quantize_act(RF_TYPE_Q8_K, x, q, N), 0);
    dequantize_q8_K(q, y, N);
    for (int b = 0; b < N / 256; b++) {
        rf_block_q8_K blk;
        memcpy(&blk, q + b * sizeof blk, sizeof blk);
        float amax = 0.0f;
        for (int j = 0; j < 256; j++)
            amax = fmaxf(amax, fabsf(x[256 * b + j]));
        const float bound = amax / 127.0f * 0.5f * 1.0001f;
        for (int j = 0; j < 256; j++) {
            const int i = 256 * b + j;
            cr_expect(fabsf(x[i] - y[i]) <= bound, "element %d: %.9g became %.9g (bound %.3g)", i,
                      (double)x[i], (double)y[i], (double)bound);
            cr_expect(blk.qs[j] != -128, "element %d quantized to -128", i);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int l = 0; l < 16; l++)
                sum += blk.qs[16 * g + l];
            cr_expect_eq(blk.bsums[g], sum, "block %d group %d: bsum %d, quants sum to %d", b, g,
                         blk.bsums[g], sum);
        }
        if (b == 2)
            cr_expect(blk.d == 0.0f, "an all-zero block has scale 0, got %g", (double)blk.d);
    }
}

Test(vecdot, activation_quantizer_rejects_bad_input)
{
    float x[512] = {0};
    uint8_t out[2 * sizeof(rf_block_q8_K)];
    cr_expect_eq(rf_cpu_quantize_act(RF_TYPE_Q8_0, x, out, 33), RF_EFORMAT);
    cr_expect_eq(rf_cpu_quantize_act(RF_TYPE_Q8_K, x, out, 300), RF_EFORMAT);
    cr_expect_eq(rf_cpu_quantize_act(RF_TYPE_Q8_K, x, out, -256), RF_EFORMAT);
    cr_expect_eq(rf_cpu_quantize_act(RF_TYPE_Q4_0, x, out, 32), RF_EUNSUPPORTED);
    cr_expect_eq(rf_cpu_quantize_act(-1, x, out, 32), RF_EUNSUPPORTED);
    cr_expect_eq(rf_cpu_act_row_bytes(RF_TYPE_Q4_0, 32), 0);
    cr_expect_eq(rf_cpu_act_row_bytes(RF_TYPE_F32, 5), 20);
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------ */

Test(vecdot, unsupported_types_have_no_dot_product)
{
    /* Block types without a dot product, non-block types, retired and
     * out-of-range ids. */
    static const int types[] = {
        RF_TYPE_IQ2_XXS, RF_TYPE_IQ3_S, RF_TYPE_Q8_K,  RF_TYPE_Q8_1, RF_TYPE_I8, RF_TYPE_TQ1_0,
        RF_TYPE_F64,     4,             RF_TYPE_COUNT, 1000,         -1,
    };
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        cr_expect(!rf_cpu_vec_dot_supported(types[k]), "type %d reported supported", types[k]);
        cr_expect_eq(rf_cpu_act_type(types[k]), -1, "type %d has an activation type", types[k]);
        for (int isa = 0; isa < RF_CPU_ISA_COUNT; isa++) {
            cr_expect_null(rf_cpu_vec_dot_get(types[k], (rf_cpu_isa_t)isa), "type %d isa %d",
                           types[k], isa);
            cr_expect_eq(rf_cpu_vec_dot_isa(types[k], (rf_cpu_isa_t)isa), -1);
        }
    }
    cr_expect_null(rf_cpu_vec_dot_get(RF_TYPE_Q4_0, RF_CPU_ISA_COUNT));
    cr_expect_null(rf_cpu_vec_dot_get(RF_TYPE_Q4_0, (rf_cpu_isa_t)-1));
}

Test(vecdot, supported_types_have_dot_products)
{
    static const int types[] = {RF_TYPE_F32,  RF_TYPE_F16,    RF_TYPE_BF16,   RF_TYPE_Q4_0,
                                RF_TYPE_Q4_1, RF_TYPE_Q5_0,   RF_TYPE_Q5_1,   RF_TYPE_Q8_0,
                                RF_TYPE_Q2_K, RF_TYPE_Q3_K,   RF_TYPE_Q4_K,   RF_TYPE_Q5_K,
                                RF_TYPE_Q6_K, RF_TYPE_IQ4_NL, RF_TYPE_IQ4_XS, RF_TYPE_MXFP4};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        cr_expect(rf_cpu_vec_dot_supported(types[k]), "%s", rf_type_name(types[k]));
        for (int isa = 0; isa < RF_CPU_ISA_COUNT; isa++) {
            const int used = rf_cpu_vec_dot_isa(types[k], (rf_cpu_isa_t)isa);
            /* Never code above the request or above what the CPU runs. */
            cr_expect(used >= 0 && used <= isa && rf_cpu_isa_supported((rf_cpu_isa_t)used),
                      "%s asked %s got %d", rf_type_name(types[k]),
                      rf_cpu_isa_name((rf_cpu_isa_t)isa), used);
        }
    }
}

/* The fast paths the CPU backend counts on exist wherever the CPU has the ISA. */
Test(vecdot, simd_paths_exist_where_the_cpu_has_them)
{
    cr_expect(rf_cpu_isa_supported(rf_cpu_isa_best()));
    cr_expect(rf_cpu_isa_supported(RF_CPU_SCALAR));
    static const int avx2[] = {RF_TYPE_F32,  RF_TYPE_F16,    RF_TYPE_BF16,   RF_TYPE_Q4_0,
                               RF_TYPE_Q4_1, RF_TYPE_Q5_0,   RF_TYPE_Q5_1,   RF_TYPE_Q8_0,
                               RF_TYPE_Q2_K, RF_TYPE_Q3_K,   RF_TYPE_Q4_K,   RF_TYPE_Q5_K,
                               RF_TYPE_Q6_K, RF_TYPE_IQ4_NL, RF_TYPE_IQ4_XS, RF_TYPE_MXFP4};
    static const int avx512[] = {RF_TYPE_F16, RF_TYPE_Q8_0, RF_TYPE_Q4_0};
    if (!rf_cpu_isa_supported(RF_CPU_AVX2)) {
        cr_log_warn("CPU has no AVX2+FMA+F16C: only the scalar paths were checked");
        return;
    }
    for (size_t k = 0; k < sizeof avx2 / sizeof avx2[0]; k++)
        cr_expect_eq(rf_cpu_vec_dot_isa(avx2[k], RF_CPU_AVX2), RF_CPU_AVX2, "%s",
                     rf_type_name(avx2[k]));
    if (!rf_cpu_isa_supported(RF_CPU_AVX512)) {
        cr_log_warn("CPU has no AVX-512 F/BW/VL/VNNI: AVX-512 paths were not checked");
        return;
    }
    for (size_t k = 0; k < sizeof avx512 / sizeof avx512[0]; k++)
        cr_expect_eq(rf_cpu_vec_dot_isa(avx512[k], RF_CPU_AVX512), RF_CPU_AVX512, "%s",
                     rf_type_name(avx512[k]));
    /* A type without AVX-512 code falls back to its AVX2 code. */
    cr_expect_eq(rf_cpu_vec_dot_isa(RF_TYPE_Q4_K, RF_CPU_AVX512), RF_CPU_AVX2);
}
