/* vecdot.c - scalar dot products, activation quantizers and ISA dispatch
 *
 * The scalar functions here are the reference the SIMD files are tested
 * against. Each follows ggml's vec_dot_*_q8_* arithmetic: per block, the
 * integer products of weight quants and activation quants are summed exactly
 * in int32, then multiplied once by the two float scales. Formats with a
 * per-block offset split it off the same way ggml does:
 *
 *   Q4_1, Q5_1   sum (d q + m) y  =  d dy sum(q qy) + m dy sum(qy)
 *   Q2_K, Q4_K,  sum (d sc q - dmin mn) y
 *   Q5_K            =  d dy sum(sc sum(q qy)) - dmin dy sum(mn bsum)
 *   Q3_K, Q6_K   the offset (-4, -32) stays inside the integer quant
 *
 * where bsum is the Q8_K block's sum of the activation quants a min covers.
 * The int32 sums cannot overflow: the largest, Q6_K, is bounded by
 * 16 * 128 * 16 * 32 * 127 < 2^31.
 *
 * The dispatch table maps (weight type, ISA) to the best function written
 * for that ISA or below; rf_cpu_vec_dot_get() also clamps the ISA to what
 * the CPU supports, so it never hands out code that would fault. Every type
 * has AVX2 code; F16, Q8_0 and Q4_0 also have AVX-512 code, the rest fall
 * back to AVX2 there. Those three AVX-512 functions are the 1 x 1 case of
 * tile functions (several weight rows times several activation rows, for
 * the matmul), listed in a second table at the same levels. Q4_0 and Q8_0
 * also have a packed layout for AVX-512 (rf_cpu_pack_rows, made here once
 * per weight; kernels in vecdot_avx512.c), which the matmul uses for every
 * weight of those types.
 */
#include "vecdot.h"

#include <assert.h>
#include <math.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "error.h"
#include "quant.h"
#include "vecdot_internal.h"

static_assert(sizeof(rf_block_q8_K) == RF__Q8K_SIZE, "Q8_K block is 292 bytes");
static_assert(offsetof(rf_block_q8_K, qs) == RF__Q8K_QS, "Q8_K quants at byte 4");
static_assert(offsetof(rf_block_q8_K, bsums) == RF__Q8K_BSUMS, "Q8_K sums at byte 260");
static_assert(sizeof(rf_block_q8_0) == RF__Q8_0_SIZE, "Q8_0 block is 34 bytes");

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* IQ4_NL levels (also quant.c's; duplicated to keep quant_internal.h out of
 * the CPU backend). */
const int8_t rf__cpu_kvalues_iq4nl[16] = {
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
};

/* MXFP4's E2M1 values doubled, as ggml stores them; the scale is halved. */
const int8_t rf__cpu_kvalues_mxfp4[16] = {
    0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12,
};

/* Activation block i of a Q8_0 row: scale and quants. */
static const int8_t *q8_0_block(const uint8_t *act, int64_t i, float *d)
{
    const uint8_t *b = act + i * RF__Q8_0_SIZE;
    *d = rf__load_fp16(b);
    return (const int8_t *)(b + RF__Q8_0_QS);
}

/* Activation block i of a Q8_K row: scale, quants and the 16 sums. */
static const int8_t *q8_K_block(const uint8_t *act, int64_t i, float *d, int16_t bsums[16])
{
    const uint8_t *b = act + i * RF__Q8K_SIZE;
    *d = rf__load_f32(b + RF__Q8K_D);
    if (bsums != NULL)
        memcpy(bsums, b + RF__Q8K_BSUMS, 16 * sizeof(int16_t));
    return (const int8_t *)(b + RF__Q8K_QS);
}

/* ------------------------------------------------------------------------
 * Scalar dot products: plain types (float32 activations)
 * ------------------------------------------------------------------------ */

static float vec_dot_f32(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += rf__load_f32(x + 4 * i) * rf__load_f32(y + 4 * i);
    return sum;
}

static float vec_dot_f16(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += rf__load_fp16(x + 2 * i) * rf__load_f32(y + 4 * i);
    return sum;
}

static float vec_dot_bf16(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += rf_bf16_to_fp32(rf__load_u16(x + 2 * i)) * rf__load_f32(y + 4 * i);
    return sum;
}

/* ------------------------------------------------------------------------
 * Scalar dot products: 32-element formats (Q8_0 activations)
 * ------------------------------------------------------------------------ */

static float vec_dot_q4_0(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK4_0; i++) {
        rf_block_q4_0 b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += ((b.qs[j] & 0x0f) - 8) * y[j] + ((b.qs[j] >> 4) - 8) * y[j + 16];
        sum += (float)sumi * (rf_fp16_to_fp32(b.d) * dy);
    }
    return sum;
}

static float vec_dot_q4_1(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK4_1; i++) {
        rf_block_q4_1 b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0, sumy = 0;
        for (int j = 0; j < 16; j++) {
            sumi += (b.qs[j] & 0x0f) * y[j] + (b.qs[j] >> 4) * y[j + 16];
            sumy += y[j] + y[j + 16];
        }
        sum +=
            (float)sumi * (rf_fp16_to_fp32(b.d) * dy) + (float)sumy * (rf_fp16_to_fp32(b.m) * dy);
    }
    return sum;
}

/* The fifth bit of element j of a Q5 block: bit j of the little-endian qh. */
static int q5_high(const uint8_t qh[4], int j)
{
    return (qh[j / 8] >> (j % 8)) & 1;
}

static float vec_dot_q5_0(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK5_0; i++) {
        rf_block_q5_0 b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = ((b.qs[j] & 0x0f) | q5_high(b.qh, j) << 4) - 16;
            const int hi = ((b.qs[j] >> 4) | q5_high(b.qh, j + 16) << 4) - 16;
            sumi += lo * y[j] + hi * y[j + 16];
        }
        sum += (float)sumi * (rf_fp16_to_fp32(b.d) * dy);
    }
    return sum;
}

static float vec_dot_q5_1(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK5_1; i++) {
        rf_block_q5_1 b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0, sumy = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (b.qs[j] & 0x0f) | q5_high(b.qh, j) << 4;
            const int hi = (b.qs[j] >> 4) | q5_high(b.qh, j + 16) << 4;
            sumi += lo * y[j] + hi * y[j + 16];
            sumy += y[j] + y[j + 16];
        }
        sum +=
            (float)sumi * (rf_fp16_to_fp32(b.d) * dy) + (float)sumy * (rf_fp16_to_fp32(b.m) * dy);
    }
    return sum;
}

static float vec_dot_q8_0(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK8_0; i++) {
        rf_block_q8_0 b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0;
        for (int j = 0; j < 32; j++)
            sumi += b.qs[j] * y[j];
        sum += (float)sumi * (rf_fp16_to_fp32(b.d) * dy);
    }
    return sum;
}

static float vec_dot_iq4_nl(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_NL; i++) {
        rf_block_iq4_nl b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += rf__cpu_kvalues_iq4nl[b.qs[j] & 0x0f] * y[j] +
                    rf__cpu_kvalues_iq4nl[b.qs[j] >> 4] * y[j + 16];
        sum += (float)sumi * (rf_fp16_to_fp32(b.d) * dy);
    }
    return sum;
}

static float vec_dot_mxfp4(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_MXFP4; i++) {
        rf_block_mxfp4 b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_0_block(act, i, &dy);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++)
            sumi += rf__cpu_kvalues_mxfp4[b.qs[j] & 0x0f] * y[j] +
                    rf__cpu_kvalues_mxfp4[b.qs[j] >> 4] * y[j + 16];
        sum += (float)sumi * (rf__e8m0_half(b.e) * dy);
    }
    return sum;
}

/* ------------------------------------------------------------------------
 * Scalar dot products: 256-element formats (Q8_K activations)
 * ------------------------------------------------------------------------ */

/* Element i's 2-bit field in Q2_K/Q3_K qs (layout in quant_k.c). */
static int q2_field(const uint8_t *qs, int i)
{
    return (qs[(i / 128) * 32 + i % 32] >> (2 * ((i % 128) / 32))) & 3;
}

static float vec_dot_q2_K(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        rf_block_q2_K b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        int16_t bsums[16];
        const int8_t *y = q8_K_block(act, i, &dy, bsums);
        int32_t sumi = 0, summ = 0;
        for (int sub = 0; sub < 16; sub++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++)
                s += q2_field(b.qs, 16 * sub + l) * y[16 * sub + l];
            sumi += (b.scales[sub] & 0x0f) * s;
            summ += (b.scales[sub] >> 4) * bsums[sub];
        }
        sum += dy * rf_fp16_to_fp32(b.d) * (float)sumi - dy * rf_fp16_to_fp32(b.dmin) * (float)summ;
    }
    return sum;
}

/* Q3_K's signed scale of sub-block j (layout in quant_k.c). */
static int q3_K_scale(const uint8_t s[12], int j)
{
    const int low = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (low | high << 4) - 32;
}

static float vec_dot_q3_K(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        rf_block_q3_K b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_K_block(act, i, &dy, NULL);
        int32_t sumi = 0;
        for (int sub = 0; sub < 16; sub++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) {
                const int e = 16 * sub + l;
                /* A clear hmask bit means the quant is 4 lower. */
                const int q = q2_field(b.qs, e) - (((b.hmask[e % 32] >> (e / 32)) & 1) ? 0 : 4);
                s += q * y[e];
            }
            sumi += q3_K_scale(b.scales, sub) * s;
        }
        sum += dy * rf_fp16_to_fp32(b.d) * (float)sumi;
    }
    return sum;
}

/* Q4_K and Q5_K share everything but the fifth bit; qh is NULL for Q4_K. */
static void scale_min_k_block(const uint8_t scales[12], const uint8_t *qs, const uint8_t *qh,
                              const int8_t *y, const int16_t bsums[16], int32_t *sumi_out,
                              int32_t *summ_out)
{
    uint8_t sc[8], mn[8];
    rf__unpack_scale_min_k4(scales, sc, mn);
    int32_t sumi = 0, summ = 0;
    for (int sub = 0; sub < 8; sub++) {
        const uint8_t *q = qs + (sub / 2) * 32;
        const int shift = (sub % 2) * 4;
        int32_t s = 0;
        for (int l = 0; l < 32; l++) {
            int v = (q[l] >> shift) & 0x0f;
            if (qh != NULL)
                v += ((qh[l] >> sub) & 1) << 4;
            s += v * y[32 * sub + l];
        }
        sumi += sc[sub] * s;
        summ += mn[sub] * (bsums[2 * sub] + bsums[2 * sub + 1]);
    }
    *sumi_out = sumi;
    *summ_out = summ;
}

static float vec_dot_q4_K(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        rf_block_q4_K b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        int16_t bsums[16];
        const int8_t *y = q8_K_block(act, i, &dy, bsums);
        int32_t sumi, summ;
        scale_min_k_block(b.scales, b.qs, NULL, y, bsums, &sumi, &summ);
        sum += dy * rf_fp16_to_fp32(b.d) * (float)sumi - dy * rf_fp16_to_fp32(b.dmin) * (float)summ;
    }
    return sum;
}

static float vec_dot_q5_K(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        rf_block_q5_K b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        int16_t bsums[16];
        const int8_t *y = q8_K_block(act, i, &dy, bsums);
        int32_t sumi, summ;
        scale_min_k_block(b.scales, b.qs, b.qh, y, bsums, &sumi, &summ);
        sum += dy * rf_fp16_to_fp32(b.d) * (float)sumi - dy * rf_fp16_to_fp32(b.dmin) * (float)summ;
    }
    return sum;
}

static float vec_dot_q6_K(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        rf_block_q6_K b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_K_block(act, i, &dy, NULL);
        int32_t sumi = 0;
        for (int sub = 0; sub < 16; sub++) {
            int32_t s = 0;
            for (int l16 = 0; l16 < 16; l16++) {
                const int e = 16 * sub + l16;
                const int half = e / 128, run = (e % 128) / 32, l = e % 32;
                const uint8_t low_byte = b.ql[half * 64 + (run & 1) * 32 + l];
                const int low = run < 2 ? low_byte & 0x0f : low_byte >> 4;
                const int high = (b.qh[half * 32 + l] >> (2 * run)) & 3;
                s += ((low | high << 4) - 32) * y[e];
            }
            sumi += b.scales[sub] * s;
        }
        sum += dy * rf_fp16_to_fp32(b.d) * (float)sumi;
    }
    return sum;
}

static float vec_dot_iq4_xs(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    float sum = 0.0f;
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        rf_block_iq4_xs b;
        memcpy(&b, x + i * sizeof b, sizeof b);
        float dy;
        const int8_t *y = q8_K_block(act, i, &dy, NULL);
        int32_t sumi = 0;
        for (int ib = 0; ib < 8; ib++) {
            const int ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) |
                           ((b.scales_h >> (2 * ib)) & 3) << 4;
            const uint8_t *qs = b.qs + 16 * ib;
            const int8_t *yb = y + 32 * ib;
            int32_t s = 0;
            for (int j = 0; j < 16; j++)
                s += rf__cpu_kvalues_iq4nl[qs[j] & 0x0f] * yb[j] +
                     rf__cpu_kvalues_iq4nl[qs[j] >> 4] * yb[j + 16];
            sumi += (ls - 32) * s;
        }
        sum += dy * rf_fp16_to_fp32(b.d) * (float)sumi;
    }
    return sum;
}

/* ------------------------------------------------------------------------
 * Activation quantizers
 * ------------------------------------------------------------------------ */

static void quantize_q8_K(const float *x, uint8_t *dst, int64_t n)
{
    for (int64_t i = 0; i < n / RF_QK_K; i++) {
        const float *xb = x + i * RF_QK_K;
        rf_block_q8_K b;
        memset(&b, 0, sizeof b);
        float amax = 0.0f;
        for (int j = 0; j < RF_QK_K; j++) {
            if (fabsf(xb[j]) > amax)
                amax = fabsf(xb[j]);
        }
        /* Symmetric like Q8_0, but the scale stays a float: activations
         * never touch a file, and fp16 would only add error. */
        if (amax > 0.0f && isfinite(amax)) {
            b.d = amax / 127.0f;
            const float id = 127.0f / amax;
            for (int j = 0; j < RF_QK_K; j++) {
                float v = nearbyintf(xb[j] * id);
                /* Clamp also turns NaN into 0 so the int8 conversion is defined. */
                v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v == v ? v : 0.0f;
                b.qs[j] = (int8_t)v;
            }
            for (int g = 0; g < 16; g++) {
                int s = 0;
                for (int l = 0; l < 16; l++)
                    s += b.qs[16 * g + l];
                b.bsums[g] = (int16_t)s;
            }
        }
        memcpy(dst + i * RF__Q8K_SIZE, &b, sizeof b);
    }
}

/* ------------------------------------------------------------------------
 * Dispatch
 * ------------------------------------------------------------------------ */

/* The SIMD files are built (with their ISA's flags) only for x86-64; X86()
 * leaves their entries empty elsewhere, so only scalar remains. */
#if defined(__x86_64__)
#define HAVE_X86 1
#define X86(fn) fn
#else
#define HAVE_X86 0
#define X86(fn) NULL
#endif

/* [type][isa]: the function written for that ISA, NULL where there is none
 * (dispatch then falls back to the next ISA down). */
static const rf_cpu_vec_dot_fn table[RF_TYPE_COUNT][RF_CPU_ISA_COUNT] = {
    [RF_TYPE_F32] = {vec_dot_f32, X86(rf__vec_dot_f32_avx2), NULL},
    [RF_TYPE_F16] = {vec_dot_f16, X86(rf__vec_dot_f16_avx2), X86(rf__vec_dot_f16_avx512)},
    [RF_TYPE_BF16] = {vec_dot_bf16, X86(rf__vec_dot_bf16_avx2), NULL},
    [RF_TYPE_Q4_0] = {vec_dot_q4_0, X86(rf__vec_dot_q4_0_avx2), X86(rf__vec_dot_q4_0_avx512)},
    [RF_TYPE_Q4_1] = {vec_dot_q4_1, X86(rf__vec_dot_q4_1_avx2), NULL},
    [RF_TYPE_Q5_0] = {vec_dot_q5_0, X86(rf__vec_dot_q5_0_avx2), NULL},
    [RF_TYPE_Q5_1] = {vec_dot_q5_1, X86(rf__vec_dot_q5_1_avx2), NULL},
    [RF_TYPE_Q8_0] = {vec_dot_q8_0, X86(rf__vec_dot_q8_0_avx2), X86(rf__vec_dot_q8_0_avx512)},
    [RF_TYPE_Q2_K] = {vec_dot_q2_K, X86(rf__vec_dot_q2_K_avx2), NULL},
    [RF_TYPE_Q3_K] = {vec_dot_q3_K, X86(rf__vec_dot_q3_K_avx2), NULL},
    [RF_TYPE_Q4_K] = {vec_dot_q4_K, X86(rf__vec_dot_q4_K_avx2), NULL},
    [RF_TYPE_Q5_K] = {vec_dot_q5_K, X86(rf__vec_dot_q5_K_avx2), NULL},
    [RF_TYPE_Q6_K] = {vec_dot_q6_K, X86(rf__vec_dot_q6_K_avx2), NULL},
    [RF_TYPE_IQ4_NL] = {vec_dot_iq4_nl, X86(rf__vec_dot_iq4_nl_avx2), NULL},
    [RF_TYPE_IQ4_XS] = {vec_dot_iq4_xs, X86(rf__vec_dot_iq4_xs_avx2), NULL},
    [RF_TYPE_MXFP4] = {vec_dot_mxfp4, X86(rf__vec_dot_mxfp4_avx2), NULL},
};

/* [type][isa]: tile functions, bit-identical per output to table's entry
 * at the same level. */
static const rf_cpu_vec_dot_tile_fn tile_table[RF_TYPE_COUNT][RF_CPU_ISA_COUNT] = {
    [RF_TYPE_F16] = {NULL, NULL, X86(rf__vec_dot_tile_f16_avx512)},
    [RF_TYPE_Q4_0] = {NULL, NULL, X86(rf__vec_dot_tile_q4_0_avx512)},
    [RF_TYPE_Q8_0] = {NULL, NULL, X86(rf__vec_dot_tile_q8_0_avx512)},
};

/* ISA level of the function get() would return, or -1. */
static int resolve(int weight_type, rf_cpu_isa_t isa)
{
    if (weight_type < 0 || weight_type >= RF_TYPE_COUNT || (int)isa < 0 ||
        isa >= RF_CPU_ISA_COUNT || table[weight_type][RF_CPU_SCALAR] == NULL)
        return -1;
    const rf_cpu_isa_t best = rf_cpu_isa_best();
    for (int level = isa > best ? best : isa; level > RF_CPU_SCALAR; level--) {
        if (table[weight_type][level] != NULL)
            return level;
    }
    return RF_CPU_SCALAR;
}

/* ------------------------------------------------------------------------
 * Public API
 * ------------------------------------------------------------------------ */

bool rf_cpu_isa_supported(rf_cpu_isa_t isa)
{
    switch (isa) {
    case RF_CPU_SCALAR:
        return true;
#if HAVE_X86
    /* libgcc's __builtin_cpu_supports checks xgetbv as well as cpuid: it
     * reports AVX2 only when the OS saves YMM state and the AVX-512 features
     * only when it saves the opmask and ZMM state too. */
    case RF_CPU_AVX2:
        __builtin_cpu_init(); /* idempotent; needed if called from a constructor */
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("f16c");
    case RF_CPU_AVX512:
        /* VNNI is required rather than optional so the AVX-512 file, built
         * with -mavx512vnni, can never run where vpdpbusd would fault. */
        return rf_cpu_isa_supported(RF_CPU_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
#endif
    default:
        return false;
    }
}

rf_cpu_isa_t rf_cpu_isa_best(void)
{
    for (int isa = RF_CPU_ISA_COUNT - 1; isa > RF_CPU_SCALAR; isa--) {
        if (rf_cpu_isa_supported((rf_cpu_isa_t)isa))
            return (rf_cpu_isa_t)isa;
    }
    return RF_CPU_SCALAR;
}

const char *rf_cpu_isa_name(rf_cpu_isa_t isa)
{
    switch (isa) {
    case RF_CPU_SCALAR:
        return "scalar";
    case RF_CPU_AVX2:
        return "avx2";
    case RF_CPU_AVX512:
        return "avx512";
    default:
        return "?";
    }
}

int rf_cpu_act_type(int weight_type)
{
    switch (weight_type) {
    case RF_TYPE_F32:
    case RF_TYPE_F16:
    case RF_TYPE_BF16:
        return RF_TYPE_F32;
    case RF_TYPE_Q4_0:
    case RF_TYPE_Q4_1:
    case RF_TYPE_Q5_0:
    case RF_TYPE_Q5_1:
    case RF_TYPE_Q8_0:
    case RF_TYPE_IQ4_NL:
    case RF_TYPE_MXFP4:
        return RF_TYPE_Q8_0;
    case RF_TYPE_Q2_K:
    case RF_TYPE_Q3_K:
    case RF_TYPE_Q4_K:
    case RF_TYPE_Q5_K:
    case RF_TYPE_Q6_K:
    case RF_TYPE_IQ4_XS:
        return RF_TYPE_Q8_K;
    default:
        return -1;
    }
}

size_t rf_cpu_act_row_bytes(int act_type, int64_t n)
{
    if (n < 0)
        return 0;
    switch (act_type) {
    case RF_TYPE_F32:
        return (size_t)n * sizeof(float);
    case RF_TYPE_Q8_0:
        return (size_t)(n / RF_QK8_0) * RF__Q8_0_SIZE;
    case RF_TYPE_Q8_K:
        return (size_t)(n / RF_QK_K) * RF__Q8K_SIZE;
    default:
        return 0;
    }
}

#if HAVE_X86
/* rf_cpu_isa_supported(RF_CPU_AVX512), asked once: activations are
 * quantized for every matmul. */
static bool avx512_usable(void)
{
    static _Atomic int cached = -1;
    int v = atomic_load_explicit(&cached, memory_order_relaxed);
    if (v < 0) {
        v = rf_cpu_isa_supported(RF_CPU_AVX512);
        atomic_store_explicit(&cached, v, memory_order_relaxed);
    }
    return v != 0;
}
#endif

int rf_cpu_quantize_act(int act_type, const float *x, void *dst, int64_t n)
{
    switch (act_type) {
    case RF_TYPE_F32:
        return rf_quantize_row(act_type, x, dst, n);
    case RF_TYPE_Q8_0:
        /* quant.c's Q8_0 quantizer is ggml's reference one, which is what
         * ggml quantizes activations with too; the AVX-512 one gives the
         * same bytes (test_vecdot checks it), several times faster. */
#if HAVE_X86
        if (n >= 0 && n % RF_QK8_0 == 0 && avx512_usable()) {
            rf__quantize_q8_0_avx512(x, dst, n);
            return 0;
        }
#endif
        return rf_quantize_row(act_type, x, dst, n);
    case RF_TYPE_Q8_K:
        if (n < 0 || n % RF_QK_K != 0)
            return RF_EFORMAT;
        quantize_q8_K(x, dst, n);
        return 0;
    default:
        return RF_EUNSUPPORTED;
    }
}

/* ------------------------------------------------------------------------
 * Packed weights (kernels in vecdot_avx512.c)
 *
 * Group of 16 rows, n = 32 nb elements per row:
 *   Q4_0: [nb][4 chunks][16 rows][4 bytes] quant bytes as stored (low
 *         nibble quant k, high nibble quant k + 16, k = 4 chunk + 0..3),
 *   Q8_0: [nb][8 chunks][16 rows][4 bytes] quants xor 0x80 (x + 128),
 *   then [nb][16 rows] fp16 scales, the group padded to 64 bytes.
 * Activation row: [nb][32] int8 quants, [nb] float scales, [nb] int32
 * starting values (-8 or -128 times the block's quant sum), padded to 64.
 * ------------------------------------------------------------------------ */

/* Bytes of one block's quants for 16 rows; 0: no packed layout. */
static size_t pack_chunk_bytes(int weight_type)
{
    switch (weight_type) {
    case RF_TYPE_Q4_0:
        return 16 * 16;
    case RF_TYPE_Q8_0:
        return 16 * 32;
    default:
        return 0;
    }
}

static size_t round64(size_t v)
{
    return (v + 63) / 64 * 64;
}

bool rf_cpu_pack_supported(int weight_type, rf_cpu_isa_t isa)
{
    return rf_cpu_packed_gemm_get(weight_type, isa) != NULL;
}

size_t rf_cpu_pack_group_bytes(int weight_type, int64_t n)
{
    const size_t chunk = pack_chunk_bytes(weight_type);
    if (chunk == 0 || n <= 0 || n % 32 != 0)
        return 0;
    return round64((size_t)(n / 32) * (chunk + 2 * RF_CPU_PACK_ROWS));
}

int rf_cpu_pack_rows(int weight_type, int64_t n, int64_t n_rows, const void *w,
                     size_t w_stride, void *dst)
{
    const size_t chunk = pack_chunk_bytes(weight_type);
    if (chunk == 0)
        return RF_EUNSUPPORTED;
    if (n <= 0 || n % 32 != 0 || n_rows < 0)
        return RF_EFORMAT;
    const int64_t nb = n / 32;
    const size_t group_bytes = rf_cpu_pack_group_bytes(weight_type, n);
    const size_t block_bytes = weight_type == RF_TYPE_Q4_0 ? 18 : 34;
    for (int64_t g = 0; g * RF_CPU_PACK_ROWS < n_rows; g++) {
        uint8_t *out = (uint8_t *)dst + (size_t)g * group_bytes;
        uint8_t *scales = out + (size_t)nb * chunk;
        /* Every byte is written once: zeros only where a row is missing
         * and in the padding (a full memset first cost a pass over GBs). */
        const size_t used = (size_t)nb * (chunk + 2 * RF_CPU_PACK_ROWS);
        memset(out + used, 0, group_bytes - used);
        if (n_rows - g * RF_CPU_PACK_ROWS < RF_CPU_PACK_ROWS)
            memset(out, 0, used);
        for (int l = 0; l < RF_CPU_PACK_ROWS && g * RF_CPU_PACK_ROWS + l < n_rows; l++) {
            const uint8_t *row = (const uint8_t *)w + (size_t)(g * RF_CPU_PACK_ROWS + l) * w_stride;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = row + (size_t)b * block_bytes;
                uint8_t *q = out + (size_t)b * chunk + 4 * l;
                memcpy(scales + (size_t)b * 2 * RF_CPU_PACK_ROWS + 2 * l, blk, 2);
                const uint32_t flip = weight_type == RF_TYPE_Q8_0 ? 0x80808080u : 0;
                for (int c = 0; c < (int)(chunk / 64); c++) {
                    uint32_t four;
                    memcpy(&four, blk + 2 + 4 * c, 4);
                    four ^= flip;
                    memcpy(q + 64 * c, &four, 4);
                }
            }
        }
    }
    return 0;
}

size_t rf_cpu_packed_act_row_bytes(int weight_type, int64_t n)
{
    if (pack_chunk_bytes(weight_type) == 0 || n <= 0 || n % 32 != 0)
        return 0;
    return round64((size_t)(n / 32) * (32 + 4 + 4));
}

int rf_cpu_quantize_packed_act(int weight_type, const float *x, void *dst, int64_t n)
{
    if (pack_chunk_bytes(weight_type) == 0)
        return RF_EUNSUPPORTED;
    if (n <= 0 || n % 32 != 0)
        return RF_EFORMAT;
    const int64_t nb = n / 32;
    const int32_t offset = weight_type == RF_TYPE_Q4_0 ? 8 : 128;
    uint8_t *qs = dst, *scales = qs + 32 * nb, *starts = scales + 4 * nb;
    /* Through Q8_0 blocks, a stack buffer at a time. */
    enum { CHUNK = 64 };
    uint8_t tmp[CHUNK * RF__Q8_0_SIZE];
    for (int64_t b0 = 0; b0 < nb; b0 += CHUNK) {
        const int64_t count = nb - b0 < CHUNK ? nb - b0 : CHUNK;
        const int rc = rf_cpu_quantize_act(RF_TYPE_Q8_0, x + 32 * b0, tmp, 32 * count);
        if (rc != 0)
            return rc;
        for (int64_t b = 0; b < count; b++) {
            const uint8_t *blk = tmp + b * RF__Q8_0_SIZE;
            const float d = rf__load_fp16(blk);
            int32_t sum = 0;
            for (int k = 0; k < 32; k++)
                sum += (int8_t)blk[RF__Q8_0_QS + k];
            const int32_t start = -offset * sum;
            memcpy(qs + 32 * (b0 + b), blk + RF__Q8_0_QS, 32);
            memcpy(scales + 4 * (b0 + b), &d, 4);
            memcpy(starts + 4 * (b0 + b), &start, 4);
        }
    }
    return 0;
}

rf_cpu_packed_gemm_fn rf_cpu_packed_gemm_get(int weight_type, rf_cpu_isa_t isa)
{
    if (resolve(weight_type, isa) != RF_CPU_AVX512)
        return NULL;
    switch (weight_type) {
    case RF_TYPE_Q4_0:
        return X86(rf__packed_gemm_q4_0_avx512);
    case RF_TYPE_Q8_0:
        return X86(rf__packed_gemm_q8_0_avx512);
    default:
        return NULL;
    }
}

rf_cpu_vec_dot_fn rf_cpu_vec_dot_get(int weight_type, rf_cpu_isa_t isa)
{
    const int level = resolve(weight_type, isa);
    return level < 0 ? NULL : table[weight_type][level];
}

rf_cpu_vec_dot_tile_fn rf_cpu_vec_dot_tile_get(int weight_type, rf_cpu_isa_t isa)
{
    const int level = resolve(weight_type, isa);
    return level < 0 ? NULL : tile_table[weight_type][level];
}

int rf_cpu_vec_dot_isa(int weight_type, rf_cpu_isa_t isa)
{
    return resolve(weight_type, isa);
}

bool rf_cpu_vec_dot_supported(int weight_type)
{
    return weight_type >= 0 && weight_type < RF_TYPE_COUNT &&
           table[weight_type][RF_CPU_SCALAR] != NULL;
}
