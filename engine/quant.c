/* quant.c - tensor element types, half-float conversions, 32-element quant formats
 *
 * This file owns the table of every type id ggml defines (name, elements per
 * block, bytes per block), the fp16/bf16 conversions, the row dispatch behind
 * rf_dequantize_row() and rf_quantize_row(), and the codecs of the formats
 * whose block holds 32 elements: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL and
 * MXFP4, plus the plain F32, F16 and BF16. The 256-element super-block
 * formats live in quant_k.c.
 *
 * Dequantizers reproduce ggml's reference dequantizers bit for bit: the same
 * layouts, the same formulas and the same order of float operations, so a
 * model decodes to exactly the floats llama.cpp's CPU reference would see.
 * Quantizers follow ggml's reference (round-to-nearest, no importance matrix)
 * schemes; for the 32-element formats they make the same choices as ggml's
 * quantize_row_*_ref, for IQ4_NL and MXFP4 their own simpler searches.
 *
 * Blocks are copied between the caller's buffer and an aligned rf__block, so
 * rows may sit at any byte offset (GGUF tensor data is only as aligned as
 * the file says). The host must be little-endian, as GGUF is.
 */
#include "quant.h"

#include <assert.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "error.h"
#include "quant_internal.h"

/* Block fields wider than a byte are read in host order; GGUF stores them
 * little-endian, so a big-endian host would decode garbage. */
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "rocmforge needs a little-endian host");

/* Sizes from ggml-common.h; a wrong size would misread every model. */
static_assert(sizeof(rf_block_q4_0) == 18, "Q4_0 block is 18 bytes");
static_assert(sizeof(rf_block_q4_1) == 20, "Q4_1 block is 20 bytes");
static_assert(sizeof(rf_block_q5_0) == 22, "Q5_0 block is 22 bytes");
static_assert(sizeof(rf_block_q5_1) == 24, "Q5_1 block is 24 bytes");
static_assert(sizeof(rf_block_q8_0) == 34, "Q8_0 block is 34 bytes");
static_assert(sizeof(rf_block_q2_K) == 84, "Q2_K block is 84 bytes");
static_assert(sizeof(rf_block_q3_K) == 110, "Q3_K block is 110 bytes");
static_assert(sizeof(rf_block_q4_K) == 144, "Q4_K block is 144 bytes");
static_assert(sizeof(rf_block_q5_K) == 176, "Q5_K block is 176 bytes");
static_assert(sizeof(rf_block_q6_K) == 210, "Q6_K block is 210 bytes");
static_assert(sizeof(rf_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
static_assert(sizeof(rf_block_iq4_xs) == 136, "IQ4_XS block is 136 bytes");
static_assert(sizeof(rf_block_mxfp4) == 17, "MXFP4 block is 17 bytes");

/* ------------------------------------------------------------------------
 * Half floats
 * ------------------------------------------------------------------------ */

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float rf_fp16_to_fp32(rf_fp16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;

    if (exponent == 0x1f && mantissa != 0) /* NaN: payload kept, made quiet as ggml and F16C do */
        return f32_from_bits(sign | 0x7fc00000u | (mantissa << 13));
    if (exponent == 0x1f)
        return f32_from_bits(sign | 0x7f800000u);
    if (exponent != 0) /* normal: rebias the exponent from 15 to 127 */
        return f32_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0)
        return f32_from_bits(sign);
    /* Subnormal half: mantissa * 2^-24 is exact in binary32 (a normal there). */
    float magnitude = (float)mantissa * 0x1p-24f;
    return f32_from_bits(sign | f32_bits(magnitude));
}

rf_fp16_t rf_fp32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;

    /* NaN: ggml returns the canonical quiet NaN with the sign kept, and so do
     * we, so files we write match files ggml writes. */
    if (a > 0x7f800000u)
        return sign | 0x7e00u;
    /* From 65520 up (halfway between 65504 and 65536, a tie that rounds to
     * the even neighbour 65536) everything overflows to infinity. */
    if (a >= 0x477ff000u)
        return sign | 0x7c00u;
    if (a >= 0x38800000u) {
        /* Normal half. Rebias the exponent, keep 10 mantissa bits and round
         * on the 13 dropped ones; a carry out of the mantissa correctly bumps
         * the exponent. */
        uint32_t half = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu);
        uint32_t dropped = a & 0x1fffu;
        if (dropped > 0x1000u || (dropped == 0x1000u && (half & 1u)))
            half++;
        return sign | (uint16_t)half;
    }
    /* Subnormal half (or zero). 2^-25 is exactly half the smallest subnormal
     * and ties to even, i.e. to zero. */
    if (a <= 0x33000000u)
        return sign;
    uint32_t mantissa = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - (a >> 23); /* 14 .. 24 */
    uint32_t half = mantissa >> shift;
    uint32_t dropped = mantissa & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (dropped > halfway || (dropped == halfway && (half & 1u)))
        half++; /* may carry into the smallest normal, which is correct */
    return sign | (uint16_t)half;
}

float rf_bf16_to_fp32(rf_bf16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

rf_bf16_t rf_fp32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    /* Truncating a NaN could clear every mantissa bit left and make it an
     * infinity; set the quiet bit instead (as ggml does). */
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (rf_bf16_t)((x >> 16) | 0x40u);
    /* Round to nearest even on the 16 dropped bits; finite values that round
     * past the largest bf16 carry into the exponent and become infinity. */
    return (rf_bf16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ------------------------------------------------------------------------
 * Helpers for the 32-element formats
 * ------------------------------------------------------------------------ */

/* floor(v) clamped to [lo, hi]; NaN gives lo. ggml's 32-element reference
 * quantizers add 0.5 (or 8.5, 16.5) and truncate, i.e. round halves up. */
static int floor_clamp(float v, int lo, int hi)
{
    if (!(v > (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)floorf(v);
}

/* roundf(v) (halves away from zero) clamped to [lo, hi]; NaN gives lo. */
static int round_clamp(float v, int lo, int hi)
{
    if (!(v > (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)roundf(v);
}

/* Signed value of largest magnitude (the first one on ties) and its magnitude. */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

static void min_max(const float *x, int n, float *min_out, float *max_out)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
    }
    if (min > max) /* every element NaN: fall back to an all-zero block */
        min = max = 0.0f;
    *min_out = min;
    *max_out = max;
}

/* The fifth bit of element i of a Q5 block: bit i of the little-endian qh. */
static int q5_high_bit(const uint8_t qh[4], int i)
{
    return (qh[i / 8] >> (i % 8)) & 1;
}

/* ------------------------------------------------------------------------
 * Q4_0: x = d * (q - 8), q in 0..15
 * Element j of the block is the low nibble of qs[j], element j + 16 the high.
 * ------------------------------------------------------------------------ */

static void dequantize_q4_0(const rf__block *blk, float *y)
{
    const rf_block_q4_0 *b = &blk->q4_0;
    const float d = rf_fp16_to_fp32(b->d);
    for (int j = 0; j < RF_QK4_0 / 2; j++) {
        const int lo = (b->qs[j] & 0x0f) - 8;
        const int hi = (b->qs[j] >> 4) - 8;
        y[j] = lo * d;
        y[j + RF_QK4_0 / 2] = hi * d;
    }
}

static void quantize_q4_0(const float *x, rf__block *blk)
{
    rf_block_q4_0 *b = &blk->q4_0;
    float amax;
    /* The largest-magnitude element maps to -8, the level with no positive
     * twin, so the scale can take its sign and the full range is used. */
    const float max = signed_absmax(x, RF_QK4_0, &amax);
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = rf_fp32_to_fp16(d);
    for (int j = 0; j < RF_QK4_0 / 2; j++) {
        const int lo = floor_clamp(x[j] * id + 8.5f, 0, 15);
        const int hi = floor_clamp(x[j + RF_QK4_0 / 2] * id + 8.5f, 0, 15);
        b->qs[j] = (uint8_t)(lo | hi << 4);
    }
}

/* ------------------------------------------------------------------------
 * Q4_1: x = d * q + m, q in 0..15
 * ------------------------------------------------------------------------ */

static void dequantize_q4_1(const rf__block *blk, float *y)
{
    const rf_block_q4_1 *b = &blk->q4_1;
    const float d = rf_fp16_to_fp32(b->d);
    const float m = rf_fp16_to_fp32(b->m);
    for (int j = 0; j < RF_QK4_1 / 2; j++) {
        const int lo = b->qs[j] & 0x0f;
        const int hi = b->qs[j] >> 4;
        y[j] = lo * d + m;
        y[j + RF_QK4_1 / 2] = hi * d + m;
    }
}

static void quantize_q4_1(const float *x, rf__block *blk)
{
    rf_block_q4_1 *b = &blk->q4_1;
    float min, max;
    min_max(x, RF_QK4_1, &min, &max);
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = rf_fp32_to_fp16(d);
    b->m = rf_fp32_to_fp16(min);
    for (int j = 0; j < RF_QK4_1 / 2; j++) {
        const int lo = floor_clamp((x[j] - min) * id + 0.5f, 0, 15);
        const int hi = floor_clamp((x[j + RF_QK4_1 / 2] - min) * id + 0.5f, 0, 15);
        b->qs[j] = (uint8_t)(lo | hi << 4);
    }
}

/* ------------------------------------------------------------------------
 * Q5_0: x = d * (q - 16), q in 0..31; the low 4 bits as in Q4_0, the fifth
 * bit of element i is bit i of qh (a little-endian u32).
 * ------------------------------------------------------------------------ */

static void dequantize_q5_0(const rf__block *blk, float *y)
{
    const rf_block_q5_0 *b = &blk->q5_0;
    const float d = rf_fp16_to_fp32(b->d);
    for (int j = 0; j < RF_QK5_0 / 2; j++) {
        const int lo = ((b->qs[j] & 0x0f) | q5_high_bit(b->qh, j) << 4) - 16;
        const int hi = ((b->qs[j] >> 4) | q5_high_bit(b->qh, j + RF_QK5_0 / 2) << 4) - 16;
        y[j] = lo * d;
        y[j + RF_QK5_0 / 2] = hi * d;
    }
}

static void pack_q5(const int *q, uint8_t qs[16], uint8_t qh[4])
{
    memset(qh, 0, 4);
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
    for (int i = 0; i < 32; i++)
        qh[i / 8] |= (uint8_t)(((q[i] >> 4) & 1) << (i % 8));
}

static void quantize_q5_0(const float *x, rf__block *blk)
{
    rf_block_q5_0 *b = &blk->q5_0;
    float amax;
    const float max = signed_absmax(x, RF_QK5_0, &amax); /* maps to -16, see Q4_0 */
    const float d = max / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[RF_QK5_0];
    for (int i = 0; i < RF_QK5_0; i++)
        q[i] = floor_clamp(x[i] * id + 16.5f, 0, 31);
    b->d = rf_fp32_to_fp16(d);
    pack_q5(q, b->qs, b->qh);
}

/* ------------------------------------------------------------------------
 * Q5_1: x = d * q + m, q in 0..31, bits as in Q5_0
 * ------------------------------------------------------------------------ */

static void dequantize_q5_1(const rf__block *blk, float *y)
{
    const rf_block_q5_1 *b = &blk->q5_1;
    const float d = rf_fp16_to_fp32(b->d);
    const float m = rf_fp16_to_fp32(b->m);
    for (int j = 0; j < RF_QK5_1 / 2; j++) {
        const int lo = (b->qs[j] & 0x0f) | q5_high_bit(b->qh, j) << 4;
        const int hi = (b->qs[j] >> 4) | q5_high_bit(b->qh, j + RF_QK5_1 / 2) << 4;
        y[j] = lo * d + m;
        y[j + RF_QK5_1 / 2] = hi * d + m;
    }
}

static void quantize_q5_1(const float *x, rf__block *blk)
{
    rf_block_q5_1 *b = &blk->q5_1;
    float min, max;
    min_max(x, RF_QK5_1, &min, &max);
    const float d = (max - min) / 31.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[RF_QK5_1];
    for (int i = 0; i < RF_QK5_1; i++)
        q[i] = floor_clamp((x[i] - min) * id + 0.5f, 0, 31);
    b->d = rf_fp32_to_fp16(d);
    b->m = rf_fp32_to_fp16(min);
    pack_q5(q, b->qs, b->qh);
}

/* ------------------------------------------------------------------------
 * Q8_0: x = d * q, q in -128..127 (the quantizer uses -127..127)
 * ------------------------------------------------------------------------ */

static void dequantize_q8_0(const rf__block *blk, float *y)
{
    const rf_block_q8_0 *b = &blk->q8_0;
    const float d = rf_fp16_to_fp32(b->d);
    for (int j = 0; j < RF_QK8_0; j++)
        y[j] = b->qs[j] * d;
}

static void quantize_q8_0(const float *x, rf__block *blk)
{
    rf_block_q8_0 *b = &blk->q8_0;
    float amax;
    signed_absmax(x, RF_QK8_0, &amax);
    /* Symmetric: -128 is never produced, so +x and -x quantize alike. */
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b->d = rf_fp32_to_fp16(d);
    for (int j = 0; j < RF_QK8_0; j++) {
        /* roundf (halves away from zero) is what ggml's reference uses. */
        b->qs[j] = (int8_t)round_clamp(x[j] * id, -127, 127);
    }
}

/* ------------------------------------------------------------------------
 * IQ4_NL: x = d * kvalues[q], q in 0..15, nibbles as in Q4_0
 * ------------------------------------------------------------------------ */

/* Levels from ggml-common.h (kvalues_iq4nl): a non-uniform 4-bit grid. */
const int8_t rf__kvalues_iq4nl[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

int rf__iq4nl_best_index(float v)
{
    int best = 0;
    float best_err = fabsf(v - rf__kvalues_iq4nl[0]);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf(v - rf__kvalues_iq4nl[i]);
        if (err < best_err) {
            best_err = err;
            best = i;
        }
    }
    return best;
}

float rf__iq4nl_fit_scale(const float *x, size_t n)
{
    float amax;
    const float max = signed_absmax(x, (int)n, &amax);
    if (!(amax > 0.0f))
        return 0.0f;
    /* The grid is lopsided (-127 .. 113), so try mapping the extreme element
     * near either end, at 7 stretches each side of the exact fit. */
    const int ends[2] = {rf__kvalues_iq4nl[0], rf__kvalues_iq4nl[15]};
    float best_d = 0.0f, best_score = -1.0f;
    for (int e = 0; e < 2; e++) {
        for (int step = -7; step <= 7; step++) {
            const float id = ((float)ends[e] + (float)step) / max;
            float sum_qx = 0.0f, sum_q2 = 0.0f;
            for (size_t i = 0; i < n; i++) {
                const float q = rf__kvalues_iq4nl[rf__iq4nl_best_index(id * x[i])];
                sum_qx += q * x[i];
                sum_q2 += q * q;
            }
            /* For the least-squares scale sum_qx / sum_q2 the squared error
             * is sum(x^2) - sum_qx^2 / sum_q2: maximize the latter term. */
            if (sum_q2 > 0.0f && sum_qx * sum_qx / sum_q2 > best_score) {
                best_score = sum_qx * sum_qx / sum_q2;
                best_d = sum_qx / sum_q2;
            }
        }
    }
    return best_d;
}

static void dequantize_iq4_nl(const rf__block *blk, float *y)
{
    const rf_block_iq4_nl *b = &blk->iq4_nl;
    const float d = rf_fp16_to_fp32(b->d);
    for (int j = 0; j < RF_QK_NL / 2; j++) {
        y[j] = d * rf__kvalues_iq4nl[b->qs[j] & 0x0f];
        y[j + RF_QK_NL / 2] = d * rf__kvalues_iq4nl[b->qs[j] >> 4];
    }
}

static void quantize_iq4_nl(const float *x, rf__block *blk)
{
    rf_block_iq4_nl *b = &blk->iq4_nl;
    b->d = rf_fp32_to_fp16(rf__iq4nl_fit_scale(x, RF_QK_NL));
    /* Pick the levels again with the scale as stored, which is what the
     * dequantizer will multiply by. */
    const float d = rf_fp16_to_fp32(b->d);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < RF_QK_NL / 2; j++) {
        const int lo = rf__iq4nl_best_index(x[j] * id);
        const int hi = rf__iq4nl_best_index(x[j + RF_QK_NL / 2] * id);
        b->qs[j] = (uint8_t)(lo | hi << 4);
    }
}

/* ------------------------------------------------------------------------
 * MXFP4 (OCP microscaling): x = 2^(e - 127) * E2M1(q)
 * ggml stores the E2M1 values doubled (as small integers) and halves the
 * E8M0 scale instead; we do the same so results match bit for bit.
 * ------------------------------------------------------------------------ */

/* E2M1 values doubled, from ggml-common.h (kvalues_mxfp4): index bit 3 is
 * the sign, so 0 and 8 are both zero. */
static const int8_t kvalues_mxfp4[16] = {
    0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

/* 2^(e - 128), i.e. half the E8M0 value. For e < 2 that is a binary32
 * subnormal, built from its bits; e = 255 (NaN in the OCP spec) is decoded
 * as 2^127 like ggml does rather than as NaN. */
static float e8m0_to_fp32_half(uint8_t e)
{
    if (e < 2)
        return f32_from_bits(0x00200000u << e);
    return f32_from_bits((uint32_t)(e - 1) << 23);
}

static void dequantize_mxfp4(const rf__block *blk, float *y)
{
    const rf_block_mxfp4 *b = &blk->mxfp4;
    const float d = e8m0_to_fp32_half(b->e);
    for (int j = 0; j < RF_QK_MXFP4 / 2; j++) {
        const int lo = kvalues_mxfp4[b->qs[j] & 0x0f];
        const int hi = kvalues_mxfp4[b->qs[j] >> 4];
        y[j] = lo * d;
        y[j + RF_QK_MXFP4 / 2] = hi * d;
    }
}

static int mxfp4_best_index(float x, float d)
{
    int best = 0;
    float best_err = fabsf(kvalues_mxfp4[0] * d - x);
    for (int i = 1; i < 16; i++) {
        const float err = fabsf(kvalues_mxfp4[i] * d - x);
        if (err < best_err) {
            best_err = err;
            best = i;
        }
    }
    return best;
}

static void quantize_mxfp4(const float *x, rf__block *blk)
{
    rf_block_mxfp4 *b = &blk->mxfp4;
    float amax;
    signed_absmax(x, RF_QK_MXFP4, &amax);
    /* The OCP rule: shared exponent floor(log2(amax)) minus E2M1's largest
     * exponent (2). The top element is then 4 to 8 times the scale and
     * clips to E2M1's largest value, 6, above 1.5 * 2^floor(log2(amax)).
     * Clamped to 0..254, the exponents ggml decodes as numbers. */
    int e = 0;
    if (amax > 0.0f) {
        const float biased = floorf(log2f(amax)) - 2.0f + 127.0f;
        e = biased < 0.0f ? 0 : biased > 254.0f ? 254 : (int)biased;
    }
    b->e = (uint8_t)e;
    const float d = e8m0_to_fp32_half(b->e);
    for (int j = 0; j < RF_QK_MXFP4 / 2; j++) {
        const int lo = mxfp4_best_index(x[j], d);
        const int hi = mxfp4_best_index(x[j + RF_QK_MXFP4 / 2], d);
        b->qs[j] = (uint8_t)(lo | hi << 4);
    }
}

/* ------------------------------------------------------------------------
 * Type table
 * ------------------------------------------------------------------------ */

typedef struct type_entry {
    rf_type_traits_t traits;            /* name NULL: id not defined */
    rf__dequantize_block_fn dequantize; /* NULL for plain types and no-codec types */
    rf__quantize_block_fn quantize;
} type_entry_t;

/* Plain types are converted element by element in the row functions. */
#define PLAIN(id, name, size, supported) [id] = {{name, 1, size, supported, supported}, NULL, NULL}
/* Block types with both a dequantizer and a quantizer. */
#define BLOCKS(id, name, n, size, dq, q) [id] = {{name, n, size, true, true}, dq, q}
/* Block types we can only name and size. */
#define OPAQUE(id, name, n, size) [id] = {{name, n, size, false, false}, NULL, NULL}

/* Names, block sizes and bytes per block from ggml.c's type_traits; ids it
 * has retired (4, 5, 31-33, 36-38) stay zero and have no traits. */
static const type_entry_t types[RF_TYPE_COUNT] = {
    PLAIN(RF_TYPE_F32, "F32", 4, true),
    PLAIN(RF_TYPE_F16, "F16", 2, true),
    BLOCKS(RF_TYPE_Q4_0, "Q4_0", 32, 18, dequantize_q4_0, quantize_q4_0),
    BLOCKS(RF_TYPE_Q4_1, "Q4_1", 32, 20, dequantize_q4_1, quantize_q4_1),
    BLOCKS(RF_TYPE_Q5_0, "Q5_0", 32, 22, dequantize_q5_0, quantize_q5_0),
    BLOCKS(RF_TYPE_Q5_1, "Q5_1", 32, 24, dequantize_q5_1, quantize_q5_1),
    BLOCKS(RF_TYPE_Q8_0, "Q8_0", 32, 34, dequantize_q8_0, quantize_q8_0),
    OPAQUE(RF_TYPE_Q8_1, "Q8_1", 32, 36),
    BLOCKS(RF_TYPE_Q2_K, "Q2_K", 256, 84, rf__dequantize_q2_K, rf__quantize_q2_K),
    BLOCKS(RF_TYPE_Q3_K, "Q3_K", 256, 110, rf__dequantize_q3_K, rf__quantize_q3_K),
    BLOCKS(RF_TYPE_Q4_K, "Q4_K", 256, 144, rf__dequantize_q4_K, rf__quantize_q4_K),
    BLOCKS(RF_TYPE_Q5_K, "Q5_K", 256, 176, rf__dequantize_q5_K, rf__quantize_q5_K),
    BLOCKS(RF_TYPE_Q6_K, "Q6_K", 256, 210, rf__dequantize_q6_K, rf__quantize_q6_K),
    OPAQUE(RF_TYPE_Q8_K, "Q8_K", 256, 292),
    OPAQUE(RF_TYPE_IQ2_XXS, "IQ2_XXS", 256, 66),
    OPAQUE(RF_TYPE_IQ2_XS, "IQ2_XS", 256, 74),
    OPAQUE(RF_TYPE_IQ3_XXS, "IQ3_XXS", 256, 98),
    OPAQUE(RF_TYPE_IQ1_S, "IQ1_S", 256, 50),
    BLOCKS(RF_TYPE_IQ4_NL, "IQ4_NL", 32, 18, dequantize_iq4_nl, quantize_iq4_nl),
    OPAQUE(RF_TYPE_IQ3_S, "IQ3_S", 256, 110),
    OPAQUE(RF_TYPE_IQ2_S, "IQ2_S", 256, 82),
    BLOCKS(RF_TYPE_IQ4_XS, "IQ4_XS", 256, 136, rf__dequantize_iq4_xs, rf__quantize_iq4_xs),
    PLAIN(RF_TYPE_I8, "I8", 1, false),
    PLAIN(RF_TYPE_I16, "I16", 2, false),
    PLAIN(RF_TYPE_I32, "I32", 4, false),
    PLAIN(RF_TYPE_I64, "I64", 8, false),
    PLAIN(RF_TYPE_F64, "F64", 8, false),
    OPAQUE(RF_TYPE_IQ1_M, "IQ1_M", 256, 56),
    PLAIN(RF_TYPE_BF16, "BF16", 2, true),
    OPAQUE(RF_TYPE_TQ1_0, "TQ1_0", 256, 54),
    OPAQUE(RF_TYPE_TQ2_0, "TQ2_0", 256, 66),
    BLOCKS(RF_TYPE_MXFP4, "MXFP4", 32, 17, dequantize_mxfp4, quantize_mxfp4),
};

#undef PLAIN
#undef BLOCKS
#undef OPAQUE

static const type_entry_t *find_type(int type)
{
    if (type < 0 || type >= RF_TYPE_COUNT || types[type].traits.name == NULL)
        return NULL;
    return &types[type];
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

const rf_type_traits_t *rf_type_traits(int type)
{
    const type_entry_t *t = find_type(type);
    return t != NULL ? &t->traits : NULL;
}

const char *rf_type_name(int type)
{
    const type_entry_t *t = find_type(type);
    return t != NULL ? t->traits.name : "?";
}

/* ASCII-only, so the answer does not depend on the process locale. */
static bool name_equal(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = *a >= 'a' && *a <= 'z' ? (char)(*a - 'a' + 'A') : *a;
        char cb = *b >= 'a' && *b <= 'z' ? (char)(*b - 'a' + 'A') : *b;
        if (ca != cb)
            return false;
        if (ca == '\0')
            return true;
    }
}

int rf_type_from_name(const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < RF_TYPE_COUNT; i++) {
        if (types[i].traits.name != NULL && name_equal(name, types[i].traits.name))
            return i;
    }
    return -1;
}

int rf_type_row_bytes(int type, uint64_t n_elements, uint64_t *out_bytes)
{
    if (out_bytes != NULL)
        *out_bytes = 0;
    const type_entry_t *t = find_type(type);
    if (t == NULL)
        return RF_EUNSUPPORTED;
    if (n_elements % t->traits.block_size != 0)
        return RF_EFORMAT;
    const uint64_t n_blocks = n_elements / t->traits.block_size;
    if (n_blocks > UINT64_MAX / t->traits.type_size)
        return RF_ERANGE;
    if (out_bytes != NULL)
        *out_bytes = n_blocks * t->traits.type_size;
    return 0;
}

/* Shared checks of the row functions; on success *out is the type's entry. */
static int check_row(int type, int64_t n, bool quantize, const type_entry_t **out)
{
    const type_entry_t *t = find_type(type);
    if (t == NULL || !(quantize ? t->traits.can_quantize : t->traits.can_dequantize))
        return RF_EUNSUPPORTED;
    if (n < 0 || n % t->traits.block_size != 0)
        return RF_EFORMAT;
    *out = t;
    return 0;
}

int rf_dequantize_row(int type, const void *src, float *dst, int64_t n)
{
    const type_entry_t *t;
    int rc = check_row(type, n, false, &t);
    if (rc < 0)
        return rc;
    const unsigned char *in = src;
    switch (type) {
    case RF_TYPE_F32:
        if (n > 0)
            memcpy(dst, in, (size_t)n * sizeof(float));
        return 0;
    case RF_TYPE_F16:
    case RF_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, in + 2 * i, sizeof h);
            dst[i] = type == RF_TYPE_F16 ? rf_fp16_to_fp32(h) : rf_bf16_to_fp32(h);
        }
        return 0;
    default:
        break;
    }
    const int64_t block_size = t->traits.block_size;
    const size_t type_size = t->traits.type_size;
    for (int64_t i = 0; i < n / block_size; i++) {
        rf__block block;
        memcpy(&block, in + (size_t)i * type_size, type_size);
        t->dequantize(&block, dst + i * block_size);
    }
    return 0;
}

int rf_quantize_row(int type, const float *src, void *dst, int64_t n)
{
    const type_entry_t *t;
    int rc = check_row(type, n, true, &t);
    if (rc < 0)
        return rc;
    unsigned char *out = dst;
    switch (type) {
    case RF_TYPE_F32:
        if (n > 0)
            memcpy(out, src, (size_t)n * sizeof(float));
        return 0;
    case RF_TYPE_F16:
    case RF_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = type == RF_TYPE_F16 ? rf_fp32_to_fp16(src[i]) : rf_fp32_to_bf16(src[i]);
            memcpy(out + 2 * i, &h, sizeof h);
        }
        return 0;
    default:
        break;
    }
    const int64_t block_size = t->traits.block_size;
    const size_t type_size = t->traits.type_size;
    for (int64_t i = 0; i < n / block_size; i++) {
        rf__block block;
        t->quantize(src + i * block_size, &block);
        memcpy(out + (size_t)i * type_size, &block, type_size);
    }
    return 0;
}
