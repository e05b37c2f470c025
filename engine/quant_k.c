/* quant_k.c - 256-element super-block formats: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS
 *
 * A super-block of 256 elements splits into sub-blocks of 16 (Q2_K, Q3_K,
 * Q6_K) or 32 (Q4_K, Q5_K, IQ4_XS) elements. Each sub-block has a small
 * integer scale (and for Q2_K, Q4_K, Q5_K a min) which is itself quantized
 * against one or two fp16 super-block factors, d and dmin.
 *
 * Dequantizers reproduce ggml's dequantize_row_* bit for bit, including the
 * order of the float operations (d * scale first, then times the quant, then
 * minus the min), since a different order rounds differently.
 *
 * Quantizers follow the scheme of ggml's quantize_row_*_ref, written afresh:
 * fit each sub-block (a weighted least-squares search over a few candidate
 * scales), quantize the sub-block scales against the largest one, store d
 * and dmin as fp16, then re-pick every quant with the scales exactly as the
 * dequantizer will see them. They are not bit-identical to ggml's output.
 */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "quant.h"
#include "quant_internal.h"

/* ------------------------------------------------------------------------
 * Packed scales
 * ------------------------------------------------------------------------ */

/* Q4_K and Q5_K keep eight 6-bit scales and eight 6-bit mins in 12 bytes:
 * sub-blocks 0-3 in the low 6 bits of bytes 0-3 (scales) and 4-7 (mins);
 * sub-blocks 4-7 as a low nibble in bytes 8-11 (scale low, min high) with
 * their top two bits in the spare bits 6-7 of bytes 0-3 and 4-7. */
static void get_scale_min_k4(int j, const uint8_t s[RF_K_SCALE_SIZE], uint8_t *scale, uint8_t *min)
{
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (uint8_t)((s[j + 4] & 0x0f) | (s[j - 4] >> 6) << 4);
        *min = (uint8_t)((s[j + 4] >> 4) | (s[j] >> 6) << 4);
    }
}

/* Inverse of get_scale_min_k4; every value must be below 64. */
static void set_scale_min_k4(const uint8_t scale[8], const uint8_t min[8],
                             uint8_t s[RF_K_SCALE_SIZE])
{
    for (int j = 0; j < 4; j++) {
        s[j] = (uint8_t)(scale[j] | (scale[j + 4] >> 4) << 6);
        s[j + 4] = (uint8_t)(min[j] | (min[j + 4] >> 4) << 6);
        s[j + 8] = (uint8_t)((scale[j + 4] & 0x0f) | (min[j + 4] & 0x0f) << 4);
    }
}

/* Q3_K's sixteen 6-bit scales (stored with a +32 bias) in 12 bytes: low
 * nibbles of scales 0-7 in the low halves of bytes 0-7, of scales 8-15 in
 * their high halves; the top two bits of scale j in byte 8 + j % 4 at bit
 * 2 * (j / 4). Returns the signed scale. */
static int get_scale_q3_K(const uint8_t s[12], int j)
{
    const int low = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | high << 4) - 32;
}

/* Element i's 2-bit field in the qs of Q2_K and Q3_K: each 128-element half
 * owns 32 bytes, and its four runs of 32 elements take bit pairs 0-1, 2-3,
 * 4-5 and 6-7 of those bytes. */
static int q2_bits(const uint8_t *qs, int i)
{
    return (qs[(i / 128) * 32 + i % 32] >> (2 * ((i % 128) / 32))) & 3;
}

static void put_q2_bits(uint8_t *qs, int i, int q)
{
    qs[(i / 128) * 32 + i % 32] |= (uint8_t)(q << (2 * ((i % 128) / 32)));
}

/* ------------------------------------------------------------------------
 * Sub-block fits
 * ------------------------------------------------------------------------ */

/* Fit x[i] ~ scale * L[i] + bias with L in 0..nmax and bias <= 0 (the
 * formats store -bias as a non-negative min), minimizing the weighted
 * squared error. Starts from the plain min/max mapping, then tries the
 * stretched mappings (nmax + rmin + rdelta * step) / (max - min) for step
 * 0..nstep, solving the 2x2 least-squares problem for each. n <= 32.
 * Returns scale and writes -bias to *min_out. Only the scale and min are
 * kept: the caller re-picks the quants once they are stored. */
static float fit_scale_min(const float *x, const float *w, size_t n, int nmax, float rmin,
                           float rdelta, int nstep, float *min_out)
{
    float min = x[0], max = x[0];
    float sum_w = 0.0f, sum_x = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0.0f) /* the bias can only lower the levels, so start at or below 0 */
        min = 0.0f;
    if (!(max > min)) {
        *min_out = min == min ? -min : 0.0f;
        return 0.0f;
    }

    float iscale = (float)nmax / (max - min);
    float scale = 1.0f / iscale;
    float bias = min;
    float best_error = 0.0f;
    for (size_t i = 0; i < n; i++) {
        const int l = rf__round_clamp(iscale * (x[i] - min), 0, nmax);
        const float diff = scale * (float)l + bias - x[i];
        best_error += w[i] * diff * diff;
    }

    uint8_t trial[32];
    for (int step = 0; step <= nstep; step++) {
        iscale = (rmin + rdelta * (float)step + (float)nmax) / (max - min);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (size_t i = 0; i < n; i++) {
            const int l = rf__round_clamp(iscale * (x[i] - min), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)(l * l);
            sum_xl += w[i] * (float)l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f))
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_bias = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_bias > 0.0f) { /* not storable: refit the scale alone */
            this_bias = 0.0f;
            this_scale = sum_xl / sum_l2;
        }
        float error = 0.0f;
        for (size_t i = 0; i < n; i++) {
            const float diff = this_scale * trial[i] + this_bias - x[i];
            error += w[i] * diff * diff;
        }
        if (error < best_error) {
            best_error = error;
            scale = this_scale;
            bias = this_bias;
        }
    }
    *min_out = -bias;
    return scale;
}

/* Fit x[i] ~ scale * L[i] with L in -nmax..nmax-1, weighting each element
 * by x^2 so the large ones, which matter most in a dot product, come out
 * best. The largest-magnitude element is mapped near -nmax (the level with
 * no positive twin) at 19 stretches around the exact fit; the scale is the
 * weighted least-squares one for the levels chosen. The caller re-picks
 * the quants once the scale is stored. */
static float fit_symmetric(const float *x, size_t n, int nmax)
{
    float amax = 0.0f, max = 0.0f;
    for (size_t i = 0; i < n; i++) {
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    }
    if (!(amax > 0.0f))
        return 0.0f;

    float best_scale = 0.0f, best_score = -1.0f;
    for (int step = -9; step <= 9; step++) {
        const float iscale = -((float)nmax + 0.1f * (float)step) / max;
        float sum_lx = 0.0f, sum_l2 = 0.0f;
        for (size_t i = 0; i < n; i++) {
            const int l = rf__round_clamp(iscale * x[i], -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sum_lx += w * x[i] * (float)l;
            sum_l2 += w * (float)(l * l);
        }
        /* The error at the least-squares scale is sum(w x^2) - sum_lx^2 / sum_l2. */
        if (sum_l2 > 0.0f && sum_lx * sum_lx / sum_l2 > best_score) {
            best_score = sum_lx * sum_lx / sum_l2;
            best_scale = sum_lx / sum_l2;
        }
    }
    return best_scale;
}

/* The per-element weights of the asymmetric fits: the group's RMS plus
 * |x|, which favours large elements without ignoring small ones. */
static void fit_weights(const float *x, size_t n, float *w)
{
    float sum_x2 = 0.0f;
    for (size_t i = 0; i < n; i++)
        sum_x2 += x[i] * x[i];
    const float rms = sqrtf(sum_x2 / (float)n);
    for (size_t i = 0; i < n; i++)
        w[i] = rms + fabsf(x[i]);
}

/* ------------------------------------------------------------------------
 * Q2_K: x = d * (scale & 15) * q - dmin * (scale >> 4), q in 0..3,
 * one 4-bit scale and 4-bit min per 16 elements
 * ------------------------------------------------------------------------ */

void rf__dequantize_q2_K(const rf__block *blk, float *y)
{
    const rf_block_q2_K *b = &blk->q2_K;
    const float d = rf_fp16_to_fp32(b->d);
    const float dmin = rf_fp16_to_fp32(b->dmin);
    for (int sub = 0; sub < RF_QK_K / 16; sub++) {
        const uint8_t sc = b->scales[sub];
        const float dl = d * (sc & 0x0f);
        const float ml = dmin * (sc >> 4);
        for (int l = 0; l < 16; l++) {
            const int i = sub * 16 + l;
            y[i] = dl * q2_bits(b->qs, i) - ml;
        }
    }
}

void rf__quantize_q2_K(const float *x, rf__block *blk)
{
    rf_block_q2_K *b = &blk->q2_K;
    float scales[RF_QK_K / 16], mins[RF_QK_K / 16], w[16];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < RF_QK_K / 16; j++) {
        fit_weights(x + 16 * j, 16, w);
        scales[j] = fit_scale_min(x + 16 * j, w, 16, 3, -0.5f, 0.1f, 15, &mins[j]);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    memset(b, 0, sizeof *b);
    const float iscale = max_scale > 0.0f ? 15.0f / max_scale : 0.0f;
    const float imin = max_min > 0.0f ? 15.0f / max_min : 0.0f;
    for (int j = 0; j < RF_QK_K / 16; j++) {
        const int ls = rf__round_clamp(iscale * scales[j], 0, 15);
        const int lm = rf__round_clamp(imin * mins[j], 0, 15);
        b->scales[j] = (uint8_t)(ls | lm << 4);
    }
    b->d = rf_fp32_to_fp16(max_scale / 15.0f);
    b->dmin = rf_fp32_to_fp16(max_min / 15.0f);

    const float d = rf_fp16_to_fp32(b->d);
    const float dmin = rf_fp16_to_fp32(b->dmin);
    for (int i = 0; i < RF_QK_K; i++) {
        const float dl = d * (b->scales[i / 16] & 0x0f);
        const float ml = dmin * (b->scales[i / 16] >> 4);
        const int q = dl != 0.0f ? rf__round_clamp((x[i] + ml) / dl, 0, 3) : 0;
        put_q2_bits(b->qs, i, q);
    }
}

/* ------------------------------------------------------------------------
 * Q3_K: x = d * scale * (q - 4), q in 0..7 (two bits in qs, the third in
 * hmask), one signed 6-bit scale per 16 elements
 * ------------------------------------------------------------------------ */

/* Element i's high bit: byte i % 32 of hmask, bit i / 32. A clear bit means
 * the value is 4 lower. */
static int q3_high_bit(const uint8_t hmask[32], int i)
{
    return (hmask[i % 32] >> (i / 32)) & 1;
}

void rf__dequantize_q3_K(const rf__block *blk, float *y)
{
    const rf_block_q3_K *b = &blk->q3_K;
    const float d = rf_fp16_to_fp32(b->d);
    for (int sub = 0; sub < RF_QK_K / 16; sub++) {
        const float dl = d * get_scale_q3_K(b->scales, sub);
        for (int l = 0; l < 16; l++) {
            const int i = sub * 16 + l;
            const int q = q2_bits(b->qs, i) - (q3_high_bit(b->hmask, i) ? 0 : 4);
            y[i] = dl * q;
        }
    }
}

void rf__quantize_q3_K(const float *x, rf__block *blk)
{
    rf_block_q3_K *b = &blk->q3_K;
    float scales[RF_QK_K / 16];
    float max_scale = 0.0f, max_abs = 0.0f;
    for (int j = 0; j < RF_QK_K / 16; j++) {
        scales[j] = fit_symmetric(x + 16 * j, 16, 4);
        if (fabsf(scales[j]) > max_abs) {
            max_abs = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }

    memset(b, 0, sizeof *b);
    if (!(max_abs > 0.0f))
        return; /* d = 0: every element decodes to zero */
    /* The largest sub-block scale maps to -32, see Q4_0's choice. */
    const float iscale = -32.0f / max_scale;
    for (int j = 0; j < RF_QK_K / 16; j++) {
        const int raw = rf__round_clamp(iscale * scales[j], -32, 31) + 32;
        if (j < 8)
            b->scales[j] |= (uint8_t)(raw & 0x0f);
        else
            b->scales[j - 8] |= (uint8_t)((raw & 0x0f) << 4);
        b->scales[8 + j % 4] |= (uint8_t)((raw >> 4) << (2 * (j / 4)));
    }
    b->d = rf_fp32_to_fp16(1.0f / iscale);

    const float d = rf_fp16_to_fp32(b->d);
    for (int i = 0; i < RF_QK_K; i++) {
        const float dl = d * get_scale_q3_K(b->scales, i / 16);
        const int q = dl != 0.0f ? rf__round_clamp(x[i] / dl, -4, 3) + 4 : 4;
        if (q >= 4)
            b->hmask[i % 32] |= (uint8_t)(1u << (i / 32));
        put_q2_bits(b->qs, i, q & 3);
    }
}

/* ------------------------------------------------------------------------
 * Q4_K: x = d * scale * q - dmin * min, q in 0..15, 6-bit scale and min
 * per 32 elements. Sub-blocks 2k and 2k+1 share the 32 bytes qs[32k..]:
 * low nibbles for the first, high nibbles for the second.
 * ------------------------------------------------------------------------ */

void rf__dequantize_q4_K(const rf__block *blk, float *y)
{
    const rf_block_q4_K *b = &blk->q4_K;
    const float d = rf_fp16_to_fp32(b->d);
    const float dmin = rf_fp16_to_fp32(b->dmin);
    for (int sub = 0; sub < RF_QK_K / 32; sub++) {
        uint8_t sc, m;
        get_scale_min_k4(sub, b->scales, &sc, &m);
        const float dl = d * sc;
        const float ml = dmin * m;
        const uint8_t *q = b->qs + (sub / 2) * 32;
        const int shift = (sub % 2) * 4;
        for (int l = 0; l < 32; l++)
            y[sub * 32 + l] = dl * ((q[l] >> shift) & 0x0f) - ml;
    }
}

/* The shared part of the Q4_K and Q5_K quantizers: fits the sub-blocks,
 * stores d, dmin and the packed scales, and returns the quants (0..nmax)
 * re-picked against the stored values. */
static void quantize_scale_min_k(const float *x, int nmax, float rmin, float rdelta, int nstep,
                                 rf_fp16_t *d_out, rf_fp16_t *dmin_out,
                                 uint8_t packed[RF_K_SCALE_SIZE], uint8_t L[RF_QK_K])
{
    float scales[RF_QK_K / 32], mins[RF_QK_K / 32], w[32];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int j = 0; j < RF_QK_K / 32; j++) {
        fit_weights(x + 32 * j, 32, w);
        scales[j] = fit_scale_min(x + 32 * j, w, 32, nmax, rmin, rdelta, nstep, &mins[j]);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    const float iscale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float imin = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < RF_QK_K / 32; j++) {
        ls[j] = (uint8_t)rf__round_clamp(iscale * scales[j], 0, 63);
        lm[j] = (uint8_t)rf__round_clamp(imin * mins[j], 0, 63);
    }
    set_scale_min_k4(ls, lm, packed);
    *d_out = rf_fp32_to_fp16(max_scale / 63.0f);
    *dmin_out = rf_fp32_to_fp16(max_min / 63.0f);

    const float d = rf_fp16_to_fp32(*d_out);
    const float dmin = rf_fp16_to_fp32(*dmin_out);
    for (int j = 0; j < RF_QK_K / 32; j++) {
        const float dl = d * ls[j];
        const float ml = dmin * lm[j];
        for (int l = 0; l < 32; l++) {
            const float v = x[32 * j + l];
            L[32 * j + l] = (uint8_t)(dl != 0.0f ? rf__round_clamp((v + ml) / dl, 0, nmax) : 0);
        }
    }
}

void rf__quantize_q4_K(const float *x, rf__block *blk)
{
    rf_block_q4_K *b = &blk->q4_K;
    uint8_t L[RF_QK_K];
    memset(b, 0, sizeof *b);
    quantize_scale_min_k(x, 15, -1.0f, 0.1f, 20, &b->d, &b->dmin, b->scales, L);
    for (int i = 0; i < RF_QK_K; i++) {
        const int sub = i / 32;
        b->qs[(sub / 2) * 32 + i % 32] |= (uint8_t)(L[i] << ((sub % 2) * 4));
    }
}

/* ------------------------------------------------------------------------
 * Q5_K: as Q4_K with q in 0..31; the fifth bit of element i is bit i / 32
 * of qh[i % 32].
 * ------------------------------------------------------------------------ */

void rf__dequantize_q5_K(const rf__block *blk, float *y)
{
    const rf_block_q5_K *b = &blk->q5_K;
    const float d = rf_fp16_to_fp32(b->d);
    const float dmin = rf_fp16_to_fp32(b->dmin);
    for (int sub = 0; sub < RF_QK_K / 32; sub++) {
        uint8_t sc, m;
        get_scale_min_k4(sub, b->scales, &sc, &m);
        const float dl = d * sc;
        const float ml = dmin * m;
        const uint8_t *q = b->qs + (sub / 2) * 32;
        const int shift = (sub % 2) * 4;
        for (int l = 0; l < 32; l++) {
            const int high = (b->qh[l] >> sub) & 1 ? 16 : 0;
            y[sub * 32 + l] = dl * (((q[l] >> shift) & 0x0f) + high) - ml;
        }
    }
}

void rf__quantize_q5_K(const float *x, rf__block *blk)
{
    rf_block_q5_K *b = &blk->q5_K;
    uint8_t L[RF_QK_K];
    memset(b, 0, sizeof *b);
    quantize_scale_min_k(x, 31, -0.5f, 0.1f, 15, &b->d, &b->dmin, b->scales, L);
    for (int i = 0; i < RF_QK_K; i++) {
        const int sub = i / 32;
        b->qs[(sub / 2) * 32 + i % 32] |= (uint8_t)((L[i] & 0x0f) << ((sub % 2) * 4));
        b->qh[i % 32] |= (uint8_t)((L[i] >> 4) << sub);
    }
}

/* ------------------------------------------------------------------------
 * Q6_K: x = d * scale * (q - 32), q in 0..63, signed 8-bit scale per 16.
 * Each 128-element half owns 64 bytes of ql and 32 of qh. Within a half,
 * run r (of four runs of 32) takes ql[l + 32 * (r & 1)], low nibble for
 * runs 0-1 and high for 2-3, and bits 2r..2r+1 of qh[l] as its top bits.
 * ------------------------------------------------------------------------ */

void rf__dequantize_q6_K(const rf__block *blk, float *y)
{
    const rf_block_q6_K *b = &blk->q6_K;
    const float d = rf_fp16_to_fp32(b->d);
    for (int i = 0; i < RF_QK_K; i++) {
        const int half = i / 128, run = (i % 128) / 32, l = i % 32;
        const uint8_t low_byte = b->ql[half * 64 + (run & 1) * 32 + l];
        const int low = run < 2 ? low_byte & 0x0f : low_byte >> 4;
        const int high = (b->qh[half * 32 + l] >> (2 * run)) & 3;
        const int q = (low | high << 4) - 32;
        y[i] = d * b->scales[i / 16] * q;
    }
}

void rf__quantize_q6_K(const float *x, rf__block *blk)
{
    rf_block_q6_K *b = &blk->q6_K;
    float scales[RF_QK_K / 16];
    float max_scale = 0.0f, max_abs = 0.0f;
    for (int j = 0; j < RF_QK_K / 16; j++) {
        scales[j] = fit_symmetric(x + 16 * j, 16, 32);
        if (fabsf(scales[j]) > max_abs) {
            max_abs = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }

    memset(b, 0, sizeof *b);
    if (!(max_abs > 0.0f))
        return; /* d = 0: every element decodes to zero */
    /* The largest sub-block scale maps to -128, see Q4_0's choice. */
    const float iscale = -128.0f / max_scale;
    for (int j = 0; j < RF_QK_K / 16; j++)
        b->scales[j] = (int8_t)rf__round_clamp(iscale * scales[j], -128, 127);
    b->d = rf_fp32_to_fp16(1.0f / iscale);

    const float d = rf_fp16_to_fp32(b->d);
    for (int i = 0; i < RF_QK_K; i++) {
        const float dl = d * b->scales[i / 16];
        const int q = dl != 0.0f ? rf__round_clamp(x[i] / dl, -32, 31) + 32 : 32;
        const int half = i / 128, run = (i % 128) / 32, l = i % 32;
        b->ql[half * 64 + (run & 1) * 32 + l] |= (uint8_t)((q & 0x0f) << (run < 2 ? 0 : 4));
        b->qh[half * 32 + l] |= (uint8_t)((q >> 4) << (2 * run));
    }
}

/* ------------------------------------------------------------------------
 * IQ4_XS: x = d * (scale - 32) * kvalues[q] with IQ4_NL's levels, one 6-bit
 * scale per 32 elements (low nibble in scales_l, element ib / 2, nibble
 * ib % 2; top two bits in scales_h at bit 2 * ib). Each sub-block's 16
 * bytes of qs hold its elements j (low nibble) and j + 16 (high nibble).
 * ------------------------------------------------------------------------ */

void rf__dequantize_iq4_xs(const rf__block *blk, float *y)
{
    const rf_block_iq4_xs *b = &blk->iq4_xs;
    const float d = rf_fp16_to_fp32(b->d);
    for (int ib = 0; ib < RF_QK_K / 32; ib++) {
        const int ls = ((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) |
                       ((b->scales_h >> (2 * ib)) & 3) << 4;
        const float dl = d * (ls - 32);
        const uint8_t *qs = b->qs + 16 * ib;
        for (int j = 0; j < 16; j++) {
            y[32 * ib + j] = dl * rf__kvalues_iq4nl[qs[j] & 0x0f];
            y[32 * ib + j + 16] = dl * rf__kvalues_iq4nl[qs[j] >> 4];
        }
    }
}

void rf__quantize_iq4_xs(const float *x, rf__block *blk)
{
    rf_block_iq4_xs *b = &blk->iq4_xs;
    float scales[RF_QK_K / 32];
    float max_scale = 0.0f, max_abs = 0.0f;
    for (int ib = 0; ib < RF_QK_K / 32; ib++) {
        scales[ib] = rf__iq4nl_fit_scale(x + 32 * ib, 32);
        if (fabsf(scales[ib]) > max_abs) {
            max_abs = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }

    memset(b, 0, sizeof *b);
    if (!(max_abs > 0.0f))
        return; /* d = 0: every element decodes to zero */
    /* The largest sub-block scale maps to -32, see Q4_0's choice. */
    const float d = max_scale / -32.0f;
    const float id = 1.0f / d;
    uint16_t scales_h = 0;
    int raw[RF_QK_K / 32];
    for (int ib = 0; ib < RF_QK_K / 32; ib++) {
        raw[ib] = rf__round_clamp(id * scales[ib], -32, 31) + 32;
        b->scales_l[ib / 2] |= (uint8_t)((raw[ib] & 0x0f) << (4 * (ib % 2)));
        scales_h |= (uint16_t)((raw[ib] >> 4) << (2 * ib));
    }
    b->scales_h = scales_h;
    b->d = rf_fp32_to_fp16(d);

    const float d16 = rf_fp16_to_fp32(b->d);
    for (int ib = 0; ib < RF_QK_K / 32; ib++) {
        const float dl = d16 * (raw[ib] - 32);
        const float inv = dl != 0.0f ? 1.0f / dl : 0.0f;
        for (int j = 0; j < 16; j++) {
            const int lo = rf__iq4nl_best_index(x[32 * ib + j] * inv);
            const int hi = rf__iq4nl_best_index(x[32 * ib + j + 16] * inv);
            b->qs[16 * ib + j] = (uint8_t)(lo | hi << 4);
        }
    }
}
