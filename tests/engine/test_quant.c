/* test_quant.c - type traits, half floats and quant formats against their definitions
 *
 * Dequantizer tests build blocks byte by byte at the offsets ggml-common.h
 * defines and compute the expected floats here from each format's
 * definition (never with the code under test); hand-worked elements are
 * spelled out as literals in comments. Values are chosen so the expected
 * floats are exact and compared exactly. Round-trip tests quantize seeded
 * random rows of several distributions and bound the error per type; the
 * grid test pins each quantizer's choice of scale.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "quant.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* Format facts from ggml-common.h, repeated here so the tests do not read
 * the tables under test. */
static const int8_t iq4nl_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                        1,    13,   25,  38,  53,  69,  89,  113};
static const float e2m1_values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                      -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Fill a buffer with a reproducible byte pattern, so that fields a test
 * does not set explicitly still vary. */
static void pattern(uint8_t *p, size_t n, unsigned mul, unsigned add)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * mul + add);
}

/* Dequantize n elements of type from bytes and compare with want: equal
 * as floats (so -0 == 0), or both NaN. The block is placed at an odd
 * address to prove that the decoder does not need aligned input. */
static void expect_dequant(int type, const uint8_t *bytes, size_t n_bytes, const float *want,
                           int64_t n)
{
    uint8_t *shifted = malloc(n_bytes + 1);
    float *got = malloc((size_t)n * sizeof *got);
    cr_assert(shifted != NULL && got != NULL);
    memcpy(shifted + 1, bytes, n_bytes);
    uint64_t row = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n, &row), 0);
    cr_assert_eq(row, n_bytes, "%s: %ld elements take %lu bytes, test built %zu",
                 rf_type_name(type), (long)n, (unsigned long)row, n_bytes);
    cr_assert_eq(rf_dequantize_row(type, shifted + 1, got, n), 0);
    for (int64_t i = 0; i < n; i++) {
        const bool same = got[i] == want[i] || (isnan(got[i]) && isnan(want[i]));
        cr_assert(same, "%s element %ld: got %.9g (0x%08x), want %.9g (0x%08x)",
                  rf_type_name(type), (long)i, (double)got[i], bits_of(got[i]),
                  (double)want[i], bits_of(want[i]));
    }
    free(shifted);
    free(got);
}

/* ------------------------------------------------------------------------
 * Traits
 * ------------------------------------------------------------------------ */

static const struct {
    int id;
    const char *name;
    uint32_t block_size, type_size;
} ggml_types[] = {
    /* From ggml.c's type_traits table and the block sizes in ggml-common.h. */
    {0, "F32", 1, 4},          {1, "F16", 1, 2},          {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},       {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},       {9, "Q8_1", 32, 36},       {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},    {12, "Q4_K", 256, 144},    {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},    {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},   {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},    {21, "IQ3_S", 256, 110},   {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136},  {24, "I8", 1, 1},          {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},         {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},    {39, "MXFP4", 32, 17},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

Test(quant, traits_of_every_ggml_type)
{
    for (size_t i = 0; i < N_GGML_TYPES; i++) {
        const rf_type_traits_t *t = rf_type_traits(ggml_types[i].id);
        cr_assert(t != NULL, "type id %d has no traits", ggml_types[i].id);
        cr_assert_str_eq(t->name, ggml_types[i].name);
        cr_assert_eq(t->block_size, ggml_types[i].block_size, "%s block size", t->name);
        cr_assert_eq(t->type_size, ggml_types[i].type_size, "%s bytes per block", t->name);
    }
    /* The block structs agree with the table. */
    cr_assert_eq(rf_type_traits(RF_TYPE_Q4_K)->type_size, sizeof(rf_block_q4_K));
    cr_assert_eq(rf_type_traits(RF_TYPE_Q6_K)->type_size, sizeof(rf_block_q6_K));
    cr_assert_eq(rf_type_traits(RF_TYPE_IQ4_XS)->type_size, sizeof(rf_block_iq4_xs));
    cr_assert_eq(rf_type_traits(RF_TYPE_MXFP4)->type_size, sizeof(rf_block_mxfp4));
}

Test(quant, retired_and_unknown_ids_have_no_traits)
{
    const int ids[] = {4, 5, 31, 32, 33, 36, 37, 38, 40, 41, -1, 1000, RF_TYPE_COUNT};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        cr_assert_null(rf_type_traits(ids[i]), "id %d", ids[i]);
        cr_assert_str_eq(rf_type_name(ids[i]), "?");
    }
}

Test(quant, type_names_round_trip)
{
    for (size_t i = 0; i < N_GGML_TYPES; i++) {
        const char *name = ggml_types[i].name;
        cr_assert_eq(rf_type_from_name(name), ggml_types[i].id, "%s", name);
        char lower[16];
        size_t k = 0;
        for (; name[k] != '\0' && k + 1 < sizeof lower; k++)
            lower[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] - 'A' + 'a' : name[k]);
        lower[k] = '\0';
        cr_assert_eq(rf_type_from_name(lower), ggml_types[i].id, "%s", lower);
    }
    cr_assert_eq(rf_type_from_name("q4_k"), RF_TYPE_Q4_K); /* ggml spells it q4_K */
    cr_assert_eq(rf_type_from_name("Q4_K_M"), -1);          /* a file type, not a tensor type */
    cr_assert_eq(rf_type_from_name("Q4"), -1);
    cr_assert_eq(rf_type_from_name(""), -1);
    cr_assert_eq(rf_type_from_name(NULL), -1);
}

Test(quant, row_bytes)
{
    uint64_t bytes = 1;
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_Q4_K, 512, &bytes), 0);
    cr_assert_eq(bytes, 288);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_Q6_K, 4096, &bytes), 0);
    cr_assert_eq(bytes, 16 * 210);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_MXFP4, 64, &bytes), 0);
    cr_assert_eq(bytes, 34);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_F32, 3, &bytes), 0);
    cr_assert_eq(bytes, 12);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_Q8_0, 0, &bytes), 0);
    cr_assert_eq(bytes, 0);

    bytes = 7;
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_Q4_0, 33, &bytes), RF_EFORMAT);
    cr_assert_eq(bytes, 0, "a failed call leaves 0, not a stale size");
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_Q4_K, 128, &bytes), RF_EFORMAT);
    cr_assert_eq(rf_type_row_bytes(4, 32, &bytes), RF_EUNSUPPORTED);
    cr_assert_eq(rf_type_row_bytes(40, 32, &bytes), RF_EUNSUPPORTED);
    cr_assert_eq(rf_type_row_bytes(-1, 32, &bytes), RF_EUNSUPPORTED);

    /* Overflow is caught, and the largest size that fits is not refused. */
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_F32, UINT64_MAX / 4, &bytes), 0);
    cr_assert_eq(bytes, UINT64_MAX / 4 * 4);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_F32, UINT64_MAX / 4 + 1, &bytes), RF_ERANGE);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_Q8_0, UINT64_MAX - 31, &bytes), RF_ERANGE);
    cr_assert_eq(rf_type_row_bytes(RF_TYPE_I64, UINT64_MAX, &bytes), RF_ERANGE);
}

Test(quant, supported_formats_are_flagged)
{
    const int dequantizable[] = {RF_TYPE_F32,  RF_TYPE_F16,    RF_TYPE_BF16,   RF_TYPE_Q4_0,
                                 RF_TYPE_Q4_1, RF_TYPE_Q5_0,   RF_TYPE_Q5_1,   RF_TYPE_Q8_0,
                                 RF_TYPE_Q2_K, RF_TYPE_Q3_K,   RF_TYPE_Q4_K,   RF_TYPE_Q5_K,
                                 RF_TYPE_Q6_K, RF_TYPE_IQ4_NL, RF_TYPE_IQ4_XS, RF_TYPE_MXFP4};
    for (size_t i = 0; i < sizeof dequantizable / sizeof dequantizable[0]; i++)
        cr_assert(rf_type_traits(dequantizable[i])->can_dequantize, "%s",
                  rf_type_name(dequantizable[i]));
    const int quantizable[] = {RF_TYPE_F16,  RF_TYPE_BF16, RF_TYPE_Q8_0, RF_TYPE_Q4_0,
                               RF_TYPE_Q4_1, RF_TYPE_Q5_0, RF_TYPE_Q5_1, RF_TYPE_Q4_K,
                               RF_TYPE_Q5_K, RF_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof quantizable / sizeof quantizable[0]; i++)
        cr_assert(rf_type_traits(quantizable[i])->can_quantize, "%s",
                  rf_type_name(quantizable[i]));
    const int opaque[] = {RF_TYPE_Q8_1,  RF_TYPE_Q8_K,  RF_TYPE_IQ2_XXS, RF_TYPE_IQ2_XS,
                          RF_TYPE_IQ3_XXS, RF_TYPE_IQ1_S, RF_TYPE_IQ3_S, RF_TYPE_IQ2_S,
                          RF_TYPE_IQ1_M, RF_TYPE_TQ1_0, RF_TYPE_TQ2_0, RF_TYPE_I8};
    for (size_t i = 0; i < sizeof opaque / sizeof opaque[0]; i++)
        cr_assert(!rf_type_traits(opaque[i])->can_dequantize, "%s", rf_type_name(opaque[i]));
}

/* The flags promise exactly what the row functions do, for every id. */
Test(quant, flags_match_row_functions)
{
    static uint8_t zero_block[512];
    static float zeros[256];
    float out[256];
    uint8_t packed[512];
    for (int id = -2; id < RF_TYPE_COUNT + 3; id++) {
        const rf_type_traits_t *t = rf_type_traits(id);
        const int64_t n = t != NULL ? (int64_t)t->block_size : 32;
        const int dq = rf_dequantize_row(id, zero_block, out, n);
        const int q = rf_quantize_row(id, zeros, packed, n);
        if (t == NULL || !t->can_dequantize) {
            cr_assert_eq(dq, RF_EUNSUPPORTED, "id %d dequantize", id);
        } else {
            cr_assert_eq(dq, 0, "%s dequantize", t->name);
            for (int64_t i = 0; i < n; i++)
                cr_assert(out[i] == 0.0f, "%s: an all-zero block decodes to 0", t->name);
        }
        if (t == NULL || !t->can_quantize) {
            cr_assert_eq(q, RF_EUNSUPPORTED, "id %d quantize", id);
        } else {
            cr_assert(t->can_dequantize, "%s can be written but not read back", t->name);
            cr_assert_eq(q, 0, "%s quantize", t->name);
            cr_assert_eq(rf_dequantize_row(id, packed, out, n), 0);
            for (int64_t i = 0; i < n; i++)
                cr_assert(out[i] == 0.0f, "%s: zeros quantize to zeros", t->name);
        }
    }
}

Test(quant, row_function_errors_leave_output_alone)
{
    uint8_t src[2 * 210] = {0};
    float dst[512];
    for (size_t i = 0; i < 512; i++)
        dst[i] = 42.0f;
    cr_assert_eq(rf_dequantize_row(RF_TYPE_IQ2_XXS, src, dst, 256), RF_EUNSUPPORTED);
    cr_assert_eq(rf_dequantize_row(RF_TYPE_Q8_K, src, dst, 256), RF_EUNSUPPORTED);
    cr_assert_eq(rf_dequantize_row(4, src, dst, 32), RF_EUNSUPPORTED);
    cr_assert_eq(rf_dequantize_row(99, src, dst, 32), RF_EUNSUPPORTED);
    cr_assert_eq(rf_dequantize_row(RF_TYPE_Q4_0, src, dst, 33), RF_EFORMAT);
    cr_assert_eq(rf_dequantize_row(RF_TYPE_Q6_K, src, dst, 384), RF_EFORMAT);
    cr_assert_eq(rf_dequantize_row(RF_TYPE_Q4_0, src, dst, -32), RF_EFORMAT);
    for (size_t i = 0; i < 512; i++)
        cr_assert(dst[i] == 42.0f, "a failed call wrote element %zu", i);

    uint8_t out[64];
    memset(out, 0x5a, sizeof out);
    cr_assert_eq(rf_quantize_row(RF_TYPE_IQ2_XXS, dst, out, 256), RF_EUNSUPPORTED);
    cr_assert_eq(rf_quantize_row(RF_TYPE_Q8_0, dst, out, 48), RF_EFORMAT);
    cr_assert_eq(rf_quantize_row(RF_TYPE_Q8_0, dst, out, -32), RF_EFORMAT);
    for (size_t i = 0; i < sizeof out; i++)
        cr_assert_eq(out[i], 0x5a, "a failed call wrote byte %zu", i);
    cr_assert_eq(rf_dequantize_row(RF_TYPE_Q4_0, NULL, NULL, 0), 0); /* empty row */
}

/* ------------------------------------------------------------------------
 * Half floats
 * ------------------------------------------------------------------------ */

Test(quant, fp16_from_fp32_known_values)
{
    const struct {
        float f;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {0.1f, 0x2e66},
        {65504.0f, 0x7bff},                     /* largest half */
        {65519.996f, 0x7bff},                   /* just under the tie */
        {65520.0f, 0x7c00},                     /* tie with 65536 rounds to even: inf */
        {1e6f, 0x7c00},
        {0x1p-14f, 0x0400},                     /* smallest normal */
        {0x1p-24f, 0x0001},                     /* smallest subnormal */
        {0x1p-25f, 0x0000},                     /* half of it: tie to even (zero) */
        {0x1.000002p-25f, 0x0001},              /* just above the tie */
        {0x3p-25f, 0x0002},                     /* 1.5 units: tie to even (2) */
        {0x5p-25f, 0x0002},                     /* 2.5 units: tie to even (2) */
        {0x3ffp-24f, 0x03ff},                   /* largest subnormal */
        {0x7ffp-25f, 0x0400},                   /* 1023.5 units: carries into the normal range */
        {1.0f + 0x1p-11f, 0x3c00},              /* tie, even neighbour below */
        {1.0f + 0x3p-11f, 0x3c02},              /* tie, even neighbour above */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},   /* above the tie */
        {-0.0f, 0x8000},
        {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(rf_fp32_to_fp16(cases[i].f), cases[i].h, "%a: got 0x%04x, want 0x%04x",
                     (double)cases[i].f, rf_fp32_to_fp16(cases[i].f), cases[i].h);

    const uint16_t nan = rf_fp32_to_fp16(NAN);
    cr_assert((nan & 0x7c00) == 0x7c00 && (nan & 0x03ff) != 0, "NaN became 0x%04x", nan);
    const uint16_t snan = rf_fp32_to_fp16(from_bits(0xff800001u)); /* signalling, negative */
    cr_assert((snan & 0x7c00) == 0x7c00 && (snan & 0x03ff) != 0, "sNaN became 0x%04x", snan);
    cr_assert(snan & 0x8000, "NaN lost its sign");
}

/* Every half decodes to the value its fields define, and re-encodes to
 * itself. */
Test(quant, fp16_to_fp32_all_values)
{
    for (uint32_t h = 0; h <= 0xffff; h++) {
        const float f = rf_fp16_to_fp32((uint16_t)h);
        const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
        if (exponent == 31 && mantissa != 0) {
            cr_assert(isnan(f), "0x%04x should be NaN", h);
            continue;
        }
        float want;
        if (exponent == 31)
            want = INFINITY;
        else if (exponent == 0)
            want = ldexpf((float)mantissa, -24);
        else
            want = ldexpf(1.0f + (float)mantissa / 1024.0f, exponent - 15);
        if (sign)
            want = -want;
        cr_assert(bits_of(f) == bits_of(want), "0x%04x decodes to %a, want %a", h, (double)f,
                  (double)want);
        cr_assert_eq(rf_fp32_to_fp16(f), h, "0x%04x does not survive a round trip", h);
    }
}

/* Random floats in the half range encode to the nearest half, ties to the
 * even one. */
Test(quant, fp16_rounds_to_nearest_even)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int k = 0; k < 200000; k++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        /* Exponents 2^-27 .. 2^15, any mantissa, either sign; every third
         * value lands exactly halfway between two halves. */
        uint32_t u = (uint32_t)(s >> 32);
        uint32_t exponent = 100 + (uint32_t)(s % 43);
        u = (u & 0x807fffffu) | exponent << 23;
        if (k % 3 == 0)
            u = (u & ~0x1fffu) | 0x1000u;
        const float x = from_bits(u);
        if (fabsf(x) >= 65520.0f)
            continue;
        const uint16_t h = rf_fp32_to_fp16(x);
        const double err = fabs((double)rf_fp16_to_fp32(h) - (double)x);
        const uint16_t neighbours[2] = {(uint16_t)(h - 1), (uint16_t)(h + 1)};
        for (int j = 0; j < 2; j++) {
            const uint16_t nb = neighbours[j];
            if ((nb & 0x8000) != (h & 0x8000) || (nb & 0x7c00) == 0x7c00)
                continue; /* wrapped across zero or into inf/NaN */
            const double nb_err = fabs((double)rf_fp16_to_fp32(nb) - (double)x);
            cr_assert(err <= nb_err, "%a -> 0x%04x but 0x%04x is nearer", (double)x, h, nb);
            if (err == nb_err)
                cr_assert((h & 1) == 0, "%a: tie went to odd 0x%04x", (double)x, h);
        }
    }
}

Test(quant, bf16_known_values)
{
    const struct {
        uint32_t f;
        uint16_t h;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1.0 */
        {0xbfc00000u, 0xbfc0}, /* -1.5 */
        {0x3f808000u, 0x3f80}, /* tie, even below */
        {0x3f818000u, 0x3f82}, /* tie, even above */
        {0x3f808001u, 0x3f81}, /* above the tie */
        {0x3f807fffu, 0x3f80}, /* below the tie */
        {0x00018000u, 0x0002}, /* subnormal tie rounds to even */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX rounds up to inf */
        {0x7f800000u, 0x7f80}, /* inf */
        {0xff800000u, 0xff80}, /* -inf */
        {0x80000000u, 0x8000}, /* -0 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        cr_assert_eq(rf_fp32_to_bf16(from_bits(cases[i].f)), cases[i].h,
                     "0x%08x: got 0x%04x, want 0x%04x", cases[i].f,
                     rf_fp32_to_bf16(from_bits(cases[i].f)), cases[i].h);

    /* NaNs stay NaN, even one whose payload lives only in the dropped bits. */
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0xff800001u, 0x7fffffffu};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const uint16_t h = rf_fp32_to_bf16(from_bits(nans[i]));
        cr_assert((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0, "0x%08x -> 0x%04x", nans[i], h);
        cr_assert_eq(h & 0x8000, (nans[i] >> 16) & 0x8000, "NaN sign");
    }

    cr_assert(rf_bf16_to_fp32(0x4049) == 3.140625f);
    cr_assert(rf_bf16_to_fp32(0xc2f7) == -123.5f);
    cr_assert(rf_bf16_to_fp32(0x0001) == 0x1p-133f);
    cr_assert(isnan(rf_bf16_to_fp32(0x7fc1)));
}

/* ------------------------------------------------------------------------
 * Plain types through the row functions
 * ------------------------------------------------------------------------ */

Test(quant, f32_row_is_a_bitwise_copy)
{
    const float in[4] = {1.5f, -0.0f, INFINITY, from_bits(0x7fc00001u)};
    uint8_t bytes[16];
    memcpy(bytes, in, sizeof bytes);
    expect_dequant(RF_TYPE_F32, bytes, sizeof bytes, in, 4);
    float out[4];
    cr_assert_eq(rf_dequantize_row(RF_TYPE_F32, bytes, out, 4), 0);
    cr_assert_eq(memcmp(out, in, sizeof in), 0, "NaN payload and -0 survive");
}

Test(quant, f16_row_known_values)
{
    const uint16_t h[] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400,
                          0x7c00, 0xfc00, 0x8000, 0x7e00, 0x3555};
    const float want[] = {1.0f,      -2.0f,     65504.0f,  0x1p-24f, 0x3ffp-24f,     0x1p-14f,
                          INFINITY,  -INFINITY, -0.0f,     NAN,      0.333251953125f};
    uint8_t bytes[2 * 11];
    for (int i = 0; i < 11; i++)
        put16(bytes + 2 * i, h[i]);
    expect_dequant(RF_TYPE_F16, bytes, sizeof bytes, want, 11);
}

Test(quant, bf16_row_known_values)
{
    const uint16_t h[] = {0x3f80, 0x4049, 0xc2f7, 0x0001, 0x7f80, 0x7fc1};
    const float want[] = {1.0f, 3.140625f, -123.5f, 0x1p-133f, INFINITY, NAN};
    uint8_t bytes[12];
    for (int i = 0; i < 6; i++)
        put16(bytes + 2 * i, h[i]);
    expect_dequant(RF_TYPE_BF16, bytes, sizeof bytes, want, 6);
}

/* ------------------------------------------------------------------------
 * 32-element formats, hand-built blocks
 * ------------------------------------------------------------------------ */

/* Element j of a 32-element block lives in byte j % 16 of qs, low nibble
 * for j < 16, high nibble for j >= 16. */
static int nibble32(const uint8_t *qs, int j)
{
    return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
}

Test(quant, q4_0_known_block)
{
    /* Block 0: d = 0.5 (fp16 0x3800). Block 1: d = -2 (0xc000). */
    uint8_t b[2 * 18];
    put16(b, 0x3800);
    pattern(b + 2, 16, 0x35, 0x1f); /* qs[0] = 0x1f */
    put16(b + 18, 0xc000);
    pattern(b + 20, 16, 0x4b, 0x80);
    float want[64];
    for (int blk = 0; blk < 2; blk++) {
        const float d = blk == 0 ? 0.5f : -2.0f;
        for (int j = 0; j < 32; j++)
            want[32 * blk + j] = (float)(nibble32(b + 18 * blk + 2, j) - 8) * d;
    }
    /* qs[0] = 0x1f: element 0 is (0xf - 8) * 0.5, element 16 is (0x1 - 8) * 0.5. */
    cr_assert(want[0] == 3.5f && want[16] == -3.5f);
    /* Block 1 qs[0] = 0x80: element 32 is (0 - 8) * -2, element 48 is (8 - 8) * -2. */
    cr_assert(want[32] == 16.0f && want[48] == 0.0f);
    expect_dequant(RF_TYPE_Q4_0, b, sizeof b, want, 64);
}

Test(quant, q4_1_known_block)
{
    /* d = 0.25 (0x3400), m = -1 (0xbc00): x = q * 0.25 - 1. */
    uint8_t b[20];
    put16(b, 0x3400);
    put16(b + 2, 0xbc00);
    pattern(b + 4, 16, 0x3b, 0x3c); /* qs[0] = 0x3c */
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = (float)nibble32(b + 4, j) * 0.25f - 1.0f;
    cr_assert(want[0] == 2.0f && want[16] == -0.25f); /* 12 * 0.25 - 1, 3 * 0.25 - 1 */
    expect_dequant(RF_TYPE_Q4_1, b, sizeof b, want, 32);
}

/* The fifth bit of element j of a Q5 block: bit j of qh read as a
 * little-endian 32-bit word. */
static int fifth_bit(const uint8_t *qh, int j)
{
    const uint32_t word = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
                          (uint32_t)qh[3] << 24;
    return (int)((word >> j) & 1);
}

Test(quant, q5_0_high_bits_from_qh)
{
    /* d = 0.5; qh bits 0, 16 and 31 set; qs[0] = 0x21, qs[15] = 0xf0, the
     * rest 0x88. */
    uint8_t b[22];
    put16(b, 0x3800);
    b[2] = 0x01, b[3] = 0x00, b[4] = 0x01, b[5] = 0x80;
    memset(b + 6, 0x88, 16);
    b[6] = 0x21;
    b[6 + 15] = 0xf0;
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = (float)((nibble32(b + 6, j) | fifth_bit(b + 2, j) << 4) - 16) * 0.5f;
    cr_assert(want[0] == 0.5f);   /* (1 | 16) - 16 = 1 */
    cr_assert(want[16] == 1.0f);  /* (2 | 16) - 16 = 2: bit 16, not bit 12 */
    cr_assert(want[15] == -8.0f); /* 0 - 16 */
    cr_assert(want[31] == 7.5f);  /* (15 | 16) - 16 = 15 */
    cr_assert(want[1] == -4.0f);  /* 8 - 16 */
    expect_dequant(RF_TYPE_Q5_0, b, sizeof b, want, 32);
}

Test(quant, q5_1_high_bits_from_qh)
{
    /* d = 0.125 (0x3000), m = 0.5 (0x3800): x = q * 0.125 + 0.5. */
    uint8_t b[24];
    put16(b, 0x3000);
    put16(b + 2, 0x3800);
    b[4] = 0x01, b[5] = 0x40, b[6] = 0x01, b[7] = 0x80; /* bits 0, 14, 16, 31 */
    pattern(b + 8, 16, 0x29, 0x21);
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = (float)(nibble32(b + 8, j) | fifth_bit(b + 4, j) << 4) * 0.125f + 0.5f;
    cr_assert(want[0] == 2.625f);  /* (1 | 16) * 0.125 + 0.5 */
    cr_assert(want[16] == 2.75f);  /* (2 | 16) * 0.125 + 0.5 */
    expect_dequant(RF_TYPE_Q5_1, b, sizeof b, want, 32);
}

Test(quant, q8_0_known_block)
{
    /* d = 0.25; quants -128, 127, then a spread. */
    uint8_t b[34];
    put16(b, 0x3400);
    pattern(b + 2, 32, 0x1d, 0x80);
    b[3] = 0x7f;
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = (float)(int8_t)b[2 + j] * 0.25f;
    cr_assert(want[0] == -32.0f && want[1] == 31.75f);
    expect_dequant(RF_TYPE_Q8_0, b, sizeof b, want, 32);
}

Test(quant, iq4_nl_known_block)
{
    /* d = 0.5; qs[j] = j | (15 - j) << 4, so element j is level j and
     * element j + 16 is level 15 - j. */
    uint8_t b[18];
    put16(b, 0x3800);
    for (int j = 0; j < 16; j++)
        b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    float want[32];
    for (int j = 0; j < 32; j++)
        want[j] = 0.5f * (float)iq4nl_levels[nibble32(b + 2, j)];
    cr_assert(want[0] == -63.5f && want[16] == 56.5f && want[8] == 0.5f);
    expect_dequant(RF_TYPE_IQ4_NL, b, sizeof b, want, 32);
}

/* MXFP4: x = E2M1(q) * 2^(e - 127), with q's bit 3 the sign. Exponents
 * 0 and 1 give binary32 subnormal scales; 255, which the OCP spec calls
 * NaN, decodes as 2^128 like ggml does. */
Test(quant, mxfp4_e8m0_scales)
{
    const uint8_t exps[] = {127, 0, 1, 2, 100, 200, 254, 255};
    enum { N_BLOCKS = sizeof exps };
    uint8_t b[N_BLOCKS * 17];
    float want[N_BLOCKS * 32];
    for (int k = 0; k < N_BLOCKS; k++) {
        uint8_t *blk = b + 17 * k;
        blk[0] = exps[k];
        for (int j = 0; j < 16; j++)
            blk[1 + j] = (uint8_t)(((j + k) & 15) | (15 - j) << 4);
        for (int j = 0; j < 32; j++)
            want[32 * k + j] = ldexpf(e2m1_values[nibble32(blk + 1, j)], exps[k] - 127);
    }
    /* e = 127 (scale 1): nibble 7 is 6.0, nibble 9 is -0.5. */
    cr_assert(want[7] == 6.0f && want[16 + 6] == -0.5f);
    /* e = 0 (block 1, element 0 has nibble 1): 0.5 * 2^-127 = 2^-128, a
     * subnormal; element 15 has nibble 0. */
    cr_assert(want[32 + 0] == 0x1p-128f && want[32 + 15] == 0.0f);
    /* e = 255 (block 7, element 10 has nibble 1): 0.5 * 2^128 = 2^127, finite. */
    cr_assert(want[7 * 32 + 10] == 0x1p127f);
    expect_dequant(RF_TYPE_MXFP4, b, sizeof b, want, N_BLOCKS * 32);
}

/* ------------------------------------------------------------------------
 * 256-element formats, hand-built blocks
 * ------------------------------------------------------------------------ */

/* The 2-bit field of element i in Q2_K/Q3_K qs: byte 32 * (i / 128) + i % 32,
 * bit pair (i % 128) / 32. */
static int two_bits(const uint8_t *qs, int i)
{
    const int byte = 32 * (i / 128) + i % 32;
    const int pair = (i % 128) / 32;
    return (qs[byte] >> (2 * pair)) & 3;
}

Test(quant, q2_K_known_block)
{
    /* scales[0..15] at 0, qs[64] at 16, d at 80, dmin at 82.
     * d = 0.5, dmin = 0.25; sub-block j has scale (j + 1) & 15 and min 15 - j. */
    uint8_t b[84];
    for (int j = 0; j < 16; j++)
        b[j] = (uint8_t)(((j + 1) & 15) | (15 - j) << 4);
    pattern(b + 16, 64, 0x25, 0x0b);
    b[16] = 0xe4; /* elements 0, 32, 64, 96 get 0, 1, 2, 3 */
    put16(b + 80, 0x3800);
    put16(b + 82, 0x3400);
    float want[256];
    for (int i = 0; i < 256; i++) {
        const int sc = b[i / 16] & 15, m = b[i / 16] >> 4;
        want[i] = 0.5f * (float)sc * (float)two_bits(b + 16, i) - 0.25f * (float)m;
    }
    cr_assert(want[0] == -3.75f);  /* 0.5*1*0 - 0.25*15 */
    cr_assert(want[32] == -1.75f); /* 0.5*3*1 - 0.25*13 */
    cr_assert(want[64] == 2.25f);  /* 0.5*5*2 - 0.25*11 */
    cr_assert(want[96] == 8.25f);  /* 0.5*7*3 - 0.25*9 */
    expect_dequant(RF_TYPE_Q2_K, b, sizeof b, want, 256);
}

/* Pack sixteen 6-bit values the way Q3_K stores its scales. */
static void pack_q3_K_scales(const int raw[16], uint8_t s[12])
{
    memset(s, 0, 12);
    for (int j = 0; j < 16; j++) {
        const int low = raw[j] & 15, high = raw[j] >> 4;
        if (j < 8)
            s[j] |= (uint8_t)low;
        else
            s[j - 8] |= (uint8_t)(low << 4);
        s[8 + j % 4] |= (uint8_t)(high << (2 * (j / 4)));
    }
}

Test(quant, q3_K_scales_and_hmask)
{
    /* hmask[32] at 0, qs[64] at 32, scales[12] at 96, d at 108; d = 0.25.
     * Element i: q = two bits - (hmask[i % 32] bit i / 32 ? 0 : 4),
     * x = d * (raw scale - 32) * q. */
    const int raw[16] = {0, 63, 34, 33, 31, 1, 48, 16, 5, 60, 40, 20, 10, 50, 30, 47};
    uint8_t b[110];
    pattern(b, 32, 0x1d, 0x03);
    pattern(b + 32, 64, 0x35, 0x07);
    pack_q3_K_scales(raw, b + 96);
    put16(b + 108, 0x3400);
    b[32] = 0x1b;      /* elements 0, 32, 64, 96: low bits 3, 2, 1, 0 */
    b[0] = 0x05;       /* high bits: element 0 and 64 set, 32 and 96 clear */
    b[32 + 40] = 0x20; /* element 200 (half 1, run 2, qs byte 32 + 8): low bits 2 */
    b[8] = 0x00;       /* ... and its high bit (bit 6) clear */
    b[32 + 63] = 0xc0; /* element 255: low bits 3 */
    b[31] = 0x80;      /* ... high bit set */
    float want[256];
    for (int i = 0; i < 256; i++) {
        const int high = (b[i % 32] >> (i / 32)) & 1;
        const int q = two_bits(b + 32, i) - (high ? 0 : 4);
        want[i] = 0.25f * (float)(raw[i / 16] - 32) * (float)q;
    }
    cr_assert(want[0] == -24.0f);  /* scale 0-32, q 3 */
    cr_assert(want[32] == -1.0f);  /* scale 34-32, q 2-4 */
    cr_assert(want[64] == -0.25f); /* scale 31-32, q 1 */
    cr_assert(want[96] == -16.0f); /* scale 48-32, q 0-4 */
    cr_assert(want[200] == 11.0f); /* scale 10-32 (j >= 8 path), q 2-4 */
    cr_assert(want[255] == 11.25f); /* scale 47-32, q 3 */
    expect_dequant(RF_TYPE_Q3_K, b, sizeof b, want, 256);
}

/* Pack eight 6-bit scales and mins the way Q4_K and Q5_K store them. */
static void pack_k4_scales(const int sc[8], const int m[8], uint8_t s[12])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

static const int k4_sc[8] = {1, 63, 17, 32, 5, 48, 63, 33};
static const int k4_m[8] = {0, 2, 63, 16, 47, 1, 20, 63};

/* Element i of Q4_K/Q5_K qs: byte 32 * (i / 64) + i % 32, low nibble for
 * even sub-blocks (i / 32), high for odd. */
static int k4_nibble(const uint8_t *qs, int i)
{
    const uint8_t byte = qs[32 * (i / 64) + i % 32];
    return (i / 32) % 2 == 0 ? byte & 15 : byte >> 4;
}

Test(quant, q4_K_scale_min_both_halves)
{
    /* d at 0, dmin at 2, scales[12] at 4, qs[128] at 16; d = 0.5, dmin = 0.25. */
    uint8_t b[144];
    put16(b, 0x3800);
    put16(b + 2, 0x3400);
    pack_k4_scales(k4_sc, k4_m, b + 4);
    pattern(b + 16, 128, 0x29, 0x05);
    b[16 + 0] = 0xa3;       /* element 0: 3; element 32: 10 */
    b[16 + 64 + 5] = 0x7e;  /* element 133: 14; element 165: 7 */
    b[16 + 127] = 0xf0;     /* element 255: 15 */
    float want[256];
    for (int i = 0; i < 256; i++) {
        const int sub = i / 32;
        want[i] = 0.5f * (float)k4_sc[sub] * (float)k4_nibble(b + 16, i) -
                  0.25f * (float)k4_m[sub];
    }
    cr_assert(want[0] == 1.5f);     /* 0.5*1*3 - 0 */
    cr_assert(want[32] == 314.5f);  /* 0.5*63*10 - 0.25*2 */
    cr_assert(want[133] == 23.25f); /* 0.5*5*14 - 0.25*47: j >= 4 path */
    cr_assert(want[165] == 167.75f); /* 0.5*48*7 - 0.25*1 */
    cr_assert(want[255] == 231.75f); /* 0.5*33*15 - 0.25*63 */
    expect_dequant(RF_TYPE_Q4_K, b, sizeof b, want, 256);
}

Test(quant, q5_K_scale_min_and_qh)
{
    /* d at 0, dmin at 2, scales[12] at 4, qh[32] at 16, qs[128] at 48.
     * The fifth bit of element i is bit i / 32 of qh[i % 32]. */
    uint8_t b[176];
    put16(b, 0x3800);
    put16(b + 2, 0x3400);
    pack_k4_scales(k4_sc, k4_m, b + 4);
    pattern(b + 16, 32, 0x3d, 0x11);
    pattern(b + 48, 128, 0x29, 0x05);
    b[48 + 0] = 0xa3;
    b[48 + 64 + 5] = 0x7e;
    b[48 + 127] = 0xf0;
    b[16 + 0] = 0x03;  /* elements 0 and 32 get +16 */
    b[16 + 5] = 0x10;  /* element 133 (bit 4) gets +16, element 165 (bit 5) not */
    b[16 + 31] = 0x80; /* element 255 gets +16 */
    float want[256];
    for (int i = 0; i < 256; i++) {
        const int sub = i / 32;
        const int q = k4_nibble(b + 48, i) | ((b[16 + i % 32] >> sub) & 1) << 4;
        want[i] = 0.5f * (float)k4_sc[sub] * (float)q - 0.25f * (float)k4_m[sub];
    }
    cr_assert(want[0] == 9.5f);     /* 0.5*1*19 */
    cr_assert(want[32] == 818.5f);  /* 0.5*63*26 - 0.5 */
    cr_assert(want[133] == 63.25f); /* 0.5*5*30 - 11.75 */
    cr_assert(want[165] == 167.75f);
    cr_assert(want[255] == 495.75f); /* 0.5*33*31 - 15.75 */
    expect_dequant(RF_TYPE_Q5_K, b, sizeof b, want, 256);
}

Test(quant, q6_K_ql_qh_interleave)
{
    /* ql[128] at 0, qh[64] at 128, scales[16] (int8) at 192, d at 208.
     * Half h = i / 128, run r = (i % 128) / 32, l = i % 32: low 4 bits from
     * ql[64h + 32(r & 1) + l] (low nibble for r < 2), top 2 bits from
     * qh[32h + l] bits 2r. x = d * scale[i / 16] * (q - 32). */
    const int8_t scales[16] = {-128, 127, -7, 3, 1, -1, 64, 100, -50, 20, 0, 2, 99, -99, 5, -3};
    uint8_t b[210];
    pattern(b, 128, 0x2b, 0x09);
    pattern(b + 128, 64, 0x47, 0x21);
    memcpy(b + 192, scales, 16);
    put16(b + 208, 0x3800); /* d = 0.5 */
    b[0] = 0x5a;            /* elements 0 (low 0xa) and 64 (low 0x5) */
    b[32] = 0xc3;           /* elements 32 (low 0x3) and 96 (low 0xc) */
    b[128] = 0xe4;          /* top bits of elements 0, 32, 64, 96: 0, 1, 2, 3 */
    b[64 + 31] = 0x0f;      /* elements 159 (low 15) and 223 (low 0) */
    b[127] = 0xf0;          /* elements 191 (low 0) and 255 (low 15) */
    b[128 + 63] = 0xff;     /* top bits 3 for all four */
    float want[256];
    for (int i = 0; i < 256; i++) {
        const int h = i / 128, r = (i % 128) / 32, l = i % 32;
        const uint8_t lb = b[64 * h + 32 * (r & 1) + l];
        const int low = r < 2 ? lb & 15 : lb >> 4;
        const int top = (b[128 + 32 * h + l] >> (2 * r)) & 3;
        want[i] = 0.5f * (float)scales[i / 16] * (float)((low | top << 4) - 32);
    }
    cr_assert(want[0] == 1408.0f);  /* 0.5 * -128 * (10 - 32) */
    cr_assert(want[32] == 45.5f);   /* 0.5 * -7 * (19 - 32) */
    cr_assert(want[64] == 2.5f);    /* 0.5 * 1 * (37 - 32) */
    cr_assert(want[96] == 896.0f);  /* 0.5 * 64 * (60 - 32) */
    cr_assert(want[159] == 310.0f); /* 0.5 * 20 * (63 - 32) */
    cr_assert(want[191] == 16.0f);  /* 0.5 * 2 * (48 - 32) */
    cr_assert(want[223] == -792.0f); /* 0.5 * -99 * (48 - 32) */
    cr_assert(want[255] == -46.5f); /* 0.5 * -3 * (63 - 32) */
    expect_dequant(RF_TYPE_Q6_K, b, sizeof b, want, 256);
}

Test(quant, iq4_xs_scales_h_and_scales_l)
{
    /* d at 0, scales_h (u16) at 2, scales_l[4] at 4, qs[128] at 8.
     * Sub-block ib's 6-bit scale: nibble ib % 2 of scales_l[ib / 2], top
     * bits 2ib of scales_h. x = d * (scale - 32) * level. */
    const int raw[8] = {0, 63, 32, 33, 17, 48, 5, 40};
    uint8_t b[136];
    uint16_t scales_h = 0;
    memset(b + 4, 0, 4);
    for (int ib = 0; ib < 8; ib++) {
        b[4 + ib / 2] |= (uint8_t)((raw[ib] & 15) << (4 * (ib % 2)));
        scales_h |= (uint16_t)((raw[ib] >> 4) << (2 * ib));
    }
    put16(b, 0x3800);
    put16(b + 2, scales_h);
    pattern(b + 8, 128, 0x33, 0x17);
    b[8 + 0] = 0xf0;       /* element 0: level 0; element 16: level 15 */
    b[8 + 16] = 0x98;      /* element 32: level 8; element 48: level 9 */
    b[8 + 112 + 15] = 0x3c; /* element 239: level 12; element 255: level 3 */
    float want[256];
    for (int i = 0; i < 256; i++) {
        const int ib = i / 32, j = i % 32;
        const int level = iq4nl_levels[nibble32(b + 8 + 16 * ib, j)];
        want[i] = 0.5f * (float)(raw[ib] - 32) * (float)level;
    }
    cr_assert(want[0] == 2032.0f);   /* -16 * -127 */
    cr_assert(want[16] == -1808.0f); /* -16 * 113 */
    cr_assert(want[32] == 15.5f);    /* 15.5 * 1 */
    cr_assert(want[48] == 201.5f);   /* 15.5 * 13 */
    cr_assert(want[239] == 212.0f);  /* 4 * 53 */
    cr_assert(want[255] == -260.0f); /* 4 * -65 */
    expect_dequant(RF_TYPE_IQ4_XS, b, sizeof b, want, 256);
}

/* ------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

typedef enum {
    DIST_GAUSS,    /* N(0, 1) */
    DIST_UNIFORM,  /* U(-1, 1) */
    DIST_CONSTANT, /* every element 0.37 */
    DIST_OUTLIERS, /* N(0, 1) with one +-20 outlier every 64 elements */
    DIST_SCALES,   /* N(0, 1) times 3^-4 .. 3^4, changing every 256 elements */
    DIST_COUNT
} dist_t;

static const char *const dist_names[DIST_COUNT] = {"gauss", "uniform", "constant", "outliers",
                                                   "scales"};

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static double rng_uniform(uint64_t *s) /* (0, 1) */
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

static float rng_gauss(uint64_t *s)
{
    const double u1 = rng_uniform(s), u2 = rng_uniform(s);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void fill(dist_t dist, uint64_t seed, float *x, int64_t n)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        switch (dist) {
        case DIST_GAUSS: x[i] = rng_gauss(&s); break;
        case DIST_UNIFORM: x[i] = (float)(2.0 * rng_uniform(&s) - 1.0); break;
        case DIST_CONSTANT: x[i] = 0.37f; break;
        case DIST_OUTLIERS:
            x[i] = rng_gauss(&s);
            if (i % 64 == 17)
                x[i] = (rng_next(&s) & 1) ? 20.0f : -20.0f;
            break;
        default: x[i] = rng_gauss(&s) * powf(3.0f, (float)((i / 256) % 9) - 4.0f); break;
        }
    }
}

/* Worst relative RMS error over the row's 256-element chunks: each chunk's
 * error RMS divided by its signal RMS. Chunks are judged separately so a
 * small-magnitude chunk cannot hide behind a large one. */
static double worst_chunk_error(const float *x, const float *y, int64_t n)
{
    double worst = 0.0;
    for (int64_t c = 0; c < n; c += 256) {
        double err = 0.0, sig = 0.0;
        for (int64_t i = c; i < c + 256; i++) {
            err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
            sig += (double)x[i] * x[i];
        }
        const double rel = sqrt(err / sig);
        if (!(rel <= worst))
            worst = rel; /* NaN sticks */
    }
    return worst;
}

enum { ROW = 4096 };

static void quantize_dequantize(int type, const float *x, float *y, int64_t n)
{
    uint64_t bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n, &bytes), 0);
    void *packed = malloc(bytes + 1);
    cr_assert(packed != NULL);
    /* Odd destination address: the quantizer must not need alignment. */
    cr_assert_eq(rf_quantize_row(type, x, (uint8_t *)packed + 1, n), 0);
    cr_assert_eq(rf_dequantize_row(type, (uint8_t *)packed + 1, y, n), 0);
    free(packed);
}

/* Bounds on worst_chunk_error per distribution: a quarter above what the
 * reference quantizers reach with these seeds (half above on constant data,
 * where the error is little more than the fp16 rounding of a scale). They
 * follow the bit widths, each extra bit roughly halving the error, so a
 * quantizer that wastes a level or picks poor scales fails them. */
typedef struct {
    int type;
    double bound[DIST_COUNT];
} bounds_t;

static void check_round_trip(const bounds_t *b)
{
    float *x = malloc(ROW * sizeof *x);
    float *y = malloc(ROW * sizeof *y);
    cr_assert(x != NULL && y != NULL);
    for (int dist = 0; dist < DIST_COUNT; dist++) {
        for (uint64_t seed = 1; seed <= 3; seed++) {
            fill((dist_t)dist, seed, x, ROW);
            quantize_dequantize(b->type, x, y, ROW);
            const double err = worst_chunk_error(x, y, ROW);
            cr_log_info("%s %s seed %lu: %.5f", rf_type_name(b->type), dist_names[dist],
                        (unsigned long)seed, err);
            cr_assert(err <= b->bound[dist], "%s on %s data (seed %lu): error %.5f > %.5f",
                      rf_type_name(b->type), dist_names[dist], (unsigned long)seed, err,
                      b->bound[dist]);
        }
    }
    free(x);
    free(y);
}

/*                                   gauss  uniform constant outliers scales */
#define ROUND_TRIP(tname, type, g, u, c, o, s)                                      \
    Test(quant, tname##_round_trip, .timeout = 30)                                  \
    {                                                                               \
        const bounds_t b = {type, {g, u, c, o, s}};                                 \
        check_round_trip(&b);                                                       \
    }

ROUND_TRIP(f16, RF_TYPE_F16, 0.00029, 0.00025, 0.00048, 0.00012, 0.00028)
ROUND_TRIP(bf16, RF_TYPE_BF16, 0.0023, 0.002, 0.0035, 0.00088, 0.0023)
ROUND_TRIP(q8_0, RF_TYPE_Q8_0, 0.008, 0.0051, 0.00045, 0.017, 0.008)
ROUND_TRIP(q4_0, RF_TYPE_Q4_0, 0.13, 0.09, 0.00048, 0.25, 0.13)
ROUND_TRIP(q4_1, RF_TYPE_Q4_1, 0.11, 0.082, 0.00048, 0.15, 0.11)
ROUND_TRIP(q5_0, RF_TYPE_Q5_0, 0.062, 0.042, 0.00048, 0.13, 0.062)
ROUND_TRIP(q5_1, RF_TYPE_Q5_1, 0.056, 0.041, 0.00048, 0.072, 0.056)
ROUND_TRIP(iq4_nl, RF_TYPE_IQ4_NL, 0.11, 0.083, 0.00027, 0.19, 0.11)
ROUND_TRIP(mxfp4, RF_TYPE_MXFP4, 0.17, 0.2, 0.021, 0.32, 0.17)
ROUND_TRIP(q2_K, RF_TYPE_Q2_K, 0.39, 0.31, 0.00042, 0.34, 0.39)
ROUND_TRIP(q3_K, RF_TYPE_Q3_K, 0.22, 0.17, 0.00048, 0.28, 0.22)
ROUND_TRIP(q4_K, RF_TYPE_Q4_K, 0.098, 0.075, 0.0002, 0.14, 0.098)
ROUND_TRIP(q5_K, RF_TYPE_Q5_K, 0.052, 0.038, 0.00023, 0.071, 0.052)
ROUND_TRIP(q6_K, RF_TYPE_Q6_K, 0.026, 0.019, 0.00039, 0.047, 0.026)
ROUND_TRIP(iq4_xs, RF_TYPE_IQ4_XS, 0.11, 0.084, 0.00027, 0.19, 0.11)

/* Input that already lies on a format's grid (with the scale the format's
 * scheme picks) comes back exactly: this pins the scheme itself, e.g. that
 * Q4_0 maps its largest element to level -8 and wastes no level. Every
 * 32- or 16-element group holds the extreme level its scheme aims for. */
static float grid_q4_0(int i) { return (float)(i % 16 - 8) * 0.25f; }
static float grid_q4_0_neg(int i) { return (float)(8 - i % 16) * 0.25f; }
static float grid_q5_0(int i) { return (float)(i % 32 - 16) * 0.125f; }
static float grid_q8_0(int i) { return (float)(i % 32 == 0 ? -127 : i * 7 % 255 - 127) * 0.5f; }
static float grid_q4_1(int i) { return (float)(i % 16) * 0.5f - 3.0f; }
static float grid_q5_1(int i) { return (float)(i % 32) * 0.25f + 1.0f; }
static float grid_iq4(int i) { return (float)iq4nl_levels[i * 5 % 16] * 0.5f; }
static float grid_mxfp4(int i) { return e2m1_values[i * 3 % 16] * 0.125f; }
static float grid_q6_K(int i) { return (float)((i % 16) * 4 - 32) * 0.125f; }
static float grid_q3_K(int i) { return (float)(i % 8 - 4) * 0.5f; }

Test(quant, grid_values_are_reproduced_exactly)
{
    const struct {
        int type;
        float (*value)(int i);
    } cases[] = {
        {RF_TYPE_Q4_0, grid_q4_0},     {RF_TYPE_Q4_0, grid_q4_0_neg}, {RF_TYPE_Q5_0, grid_q5_0},
        {RF_TYPE_Q8_0, grid_q8_0},     {RF_TYPE_Q4_1, grid_q4_1},     {RF_TYPE_Q5_1, grid_q5_1},
        {RF_TYPE_IQ4_NL, grid_iq4},    {RF_TYPE_MXFP4, grid_mxfp4},   {RF_TYPE_Q6_K, grid_q6_K},
        {RF_TYPE_Q3_K, grid_q3_K},     {RF_TYPE_IQ4_XS, grid_iq4},
    };
    float x[512], y[512];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int i = 0; i < 512; i++)
            x[i] = cases[k].value(i);
        quantize_dequantize(cases[k].type, x, y, 512);
        for (int i = 0; i < 512; i++)
            cr_assert(x[i] == y[i], "%s (case %zu) element %d: %g came back as %g",
                      rf_type_name(cases[k].type), k, i, (double)x[i], (double)y[i]);
    }
}

/* A run of zeros inside a row decodes to exact zeros, whatever the other
 * blocks hold, and nothing turns into NaN. */
Test(quant, zero_blocks_stay_zero)
{
    float x[ROW], y[ROW];
    for (int id = 0; id < RF_TYPE_COUNT; id++) {
        const rf_type_traits_t *t = rf_type_traits(id);
        if (t == NULL || !t->can_quantize)
            continue;
        fill(DIST_GAUSS, 7, x, ROW);
        for (int i = 256; i < 768; i++)
            x[i] = 0.0f;
        quantize_dequantize(id, x, y, ROW);
        for (int i = 0; i < ROW; i++) {
            cr_assert(isfinite(y[i]), "%s element %d is %g", t->name, i, (double)y[i]);
            if (i >= 256 && i < 768)
                cr_assert(y[i] == 0.0f, "%s element %d: %g", t->name, i, (double)y[i]);
        }
    }
}

/* Q8_0: every element is within half a step (plus the fp16 rounding of the
 * step) of its input. */
Test(quant, q8_0_error_within_half_step)
{
    float x[ROW], y[ROW];
    fill(DIST_GAUSS, 11, x, ROW);
    quantize_dequantize(RF_TYPE_Q8_0, x, y, ROW);
    for (int blk = 0; blk < ROW / 32; blk++) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[32 * blk + j]));
        const float d = amax / 127.0f;
        for (int j = 0; j < 32; j++) {
            const int i = 32 * blk + j;
            cr_assert(fabsf(y[i] - x[i]) <= d * (0.5f + 127.0f / 2048.0f),
                      "element %d: %g -> %g, step %g", i, (double)x[i], (double)y[i], (double)d);
        }
    }
}

/* Quantizing what a quantizer produced gives it back unchanged: the levels
 * it decodes to are exactly representable in its own scheme. */
Test(quant, requantizing_is_lossless)
{
    const int types[] = {RF_TYPE_Q8_0, RF_TYPE_Q4_0, RF_TYPE_Q5_0, RF_TYPE_F16, RF_TYPE_BF16};
    float x[ROW], y[ROW], z[ROW];
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        fill(DIST_GAUSS, 5, x, ROW);
        quantize_dequantize(types[k], x, y, ROW);
        quantize_dequantize(types[k], y, z, ROW);
        for (int i = 0; i < ROW; i++)
            cr_assert(y[i] == z[i], "%s element %d: %g then %g", rf_type_name(types[k]), i,
                      (double)y[i], (double)z[i]);
    }
}

/* NaN, infinite and extreme input neither crashes a quantizer nor spills
 * into other blocks: the blocks without such values still round-trip with
 * a sane error. (Under RF_SANITIZE this also proves no undefined float to
 * int conversion happens.) */
Test(quant, hostile_input_stays_in_its_block)
{
    float x[1024], y[1024];
    for (int id = 0; id < RF_TYPE_COUNT; id++) {
        const rf_type_traits_t *t = rf_type_traits(id);
        if (t == NULL || !t->can_quantize)
            continue;
        fill(DIST_GAUSS, 3, x, 1024);
        x[3] = NAN;
        x[40] = INFINITY;
        x[300] = -INFINITY;
        x[301] = FLT_MAX;
        x[302] = -FLT_MAX;
        x[303] = 0x1p-149f;
        x[400] = NAN;
        for (int i = 401; i < 512; i++)
            x[i] = i % 2 ? FLT_MAX : -FLT_MAX;
        quantize_dequantize(id, x, y, 1024);
        const double err = worst_chunk_error(x + 512, y + 512, 512);
        cr_assert(err < 0.5, "%s: clean blocks after hostile ones have error %g", t->name, err);
    }
}
