/* vecdot_avx2.c - AVX2 + FMA + F16C dot products
 *
 * Compiled with -mavx2 -mfma -mf16c and called only when
 * rf_cpu_isa_supported(RF_CPU_AVX2) holds. Each function computes the same
 * integer block sums as its scalar twin in vecdot.c; only the order in which
 * the float products are added differs, so results agree to float rounding.
 *
 * Signed int8 x int8 products use ggml's trick for vpmaddubsw, which wants
 * one unsigned operand: |x| times y with x's sign moved onto y. |x| of -128
 * reads as unsigned 128, which is right; y = -128 with a negative x would
 * overflow, but the activation quantizers never produce -128.
 * Formats whose quants are unsigned (the K-quants, Q4_1, Q5_1) feed them to
 * vpmaddubsw directly; where a format subtracts a fixed offset from its
 * quants (Q3_K's 4, Q6_K's 32) the offset comes off afterwards as
 * offset * sum(scale * bsum), exactly, in int32. No vpmaddubsw pair sum can
 * saturate int16: the largest is 2 * 128 * 127 (a Q8_0 weight of -128).
 * IQ4_NL, IQ4_XS and MXFP4 map nibbles to their int8 levels with vpshufb.
 *
 * Every type has a function here. All loads are unaligned (loadu or
 * memcpy): rows come from an mmap at any offset.
 */
#include "vecdot_internal.h"

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)

#include <immintrin.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static inline float hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Sums of each 4 consecutive products of unsigned u and signed y, as int32. */
static inline __m256i dot_u8_i8(__m256i u, __m256i y)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
}

/* As dot_u8_i8 for two signed operands. */
static inline __m256i dot_i8_i8(__m256i x, __m256i y)
{
    return dot_u8_i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* A Q4 block's 16 bytes as 32 unsigned nibbles in element order: the low
 * nibbles (elements 0-15) in the low lane, the high ones in the high lane. */
static inline __m256i unpack_nibbles_16(const uint8_t *qs)
{
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

static inline float load_fp16_f16c(const uint8_t *p)
{
    return _cvtsh_ss(rf__load_u16(p));
}

/* ------------------------------------------------------------------------
 * Plain types
 * ------------------------------------------------------------------------ */

float rf__vec_dot_f32_avx2(int64_t n, const void *w, const void *act)
{
    const float *x = w, *y = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    /* Four accumulators hide the FMA latency. */
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    const uint8_t *xb = w, *yb = act;
    for (; i < n; i++)
        sum += rf__load_f32(xb + 4 * i) * rf__load_f32(yb + 4 * i);
    return sum;
}

static inline __m256 load8_fp16(const uint8_t *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

float rf__vec_dot_f16_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    const float *y = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm256_fmadd_ps(load8_fp16(x + 2 * i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load8_fp16(x + 2 * i + 16), _mm256_loadu_ps(y + i + 8), acc1);
        acc2 = _mm256_fmadd_ps(load8_fp16(x + 2 * i + 32), _mm256_loadu_ps(y + i + 16), acc2);
        acc3 = _mm256_fmadd_ps(load8_fp16(x + 2 * i + 48), _mm256_loadu_ps(y + i + 24), acc3);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load8_fp16(x + 2 * i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
    const uint8_t *yb = act;
    for (; i < n; i++)
        sum += load_fp16_f16c(x + 2 * i) * rf__load_f32(yb + 4 * i);
    return sum;
}

/* bf16 is the top half of a float32: widen and shift into place. */
static inline __m256 load8_bf16(const uint8_t *p)
{
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}

float rf__vec_dot_bf16_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w;
    const float *y = act;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(load8_bf16(x + 2 * i), _mm256_loadu_ps(y + i), acc0);
        acc1 = _mm256_fmadd_ps(load8_bf16(x + 2 * i + 16), _mm256_loadu_ps(y + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8)
        acc0 = _mm256_fmadd_ps(load8_bf16(x + 2 * i), _mm256_loadu_ps(y + i), acc0);
    float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
    const uint8_t *yb = act;
    for (; i < n; i++)
        sum += rf_bf16_to_fp32(rf__load_u16(x + 2 * i)) * rf__load_f32(yb + 4 * i);
    return sum;
}

/* ------------------------------------------------------------------------
 * 32-element formats (Q8_0 activations)
 * ------------------------------------------------------------------------ */

float rf__vec_dot_q8_0_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK8_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const uint8_t *xa = x + i * 34, *ya = y + i * 34;
        const __m256i pa = dot_i8_i8(_mm256_loadu_si256((const __m256i *)(xa + 2)),
                                     _mm256_loadu_si256((const __m256i *)(ya + 2)));
        const __m256i pb = dot_i8_i8(_mm256_loadu_si256((const __m256i *)(xa + 36)),
                                     _mm256_loadu_si256((const __m256i *)(ya + 36)));
        const float da = load_fp16_f16c(xa) * load_fp16_f16c(ya);
        const float db = load_fp16_f16c(xa + 34) * load_fp16_f16c(ya + 34);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pa), _mm256_set1_ps(da), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pb), _mm256_set1_ps(db), acc1);
    }
    for (; i < nb; i++) {
        const uint8_t *xa = x + i * 34, *ya = y + i * 34;
        const __m256i p = dot_i8_i8(_mm256_loadu_si256((const __m256i *)(xa + 2)),
                                    _mm256_loadu_si256((const __m256i *)(ya + 2)));
        const float d = load_fp16_f16c(xa) * load_fp16_f16c(ya);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* One Q4_0 block (18 bytes at xa) against one Q8_0 block (34 bytes at ya). */
static inline __m256 q4_0_block(const uint8_t *xa, const uint8_t *ya, __m256 acc)
{
    const __m256i q = _mm256_sub_epi8(unpack_nibbles_16(xa + 2), _mm256_set1_epi8(8));
    const __m256i p = dot_i8_i8(q, _mm256_loadu_si256((const __m256i *)(ya + 2)));
    const float d = load_fp16_f16c(xa) * load_fp16_f16c(ya);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc);
}

float rf__vec_dot_q4_0_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK4_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        acc0 = q4_0_block(x + i * 18, y + i * 34, acc0);
        acc1 = q4_0_block(x + i * 18 + 18, y + i * 34 + 34, acc1);
        acc2 = q4_0_block(x + i * 18 + 36, y + i * 34 + 68, acc2);
        acc3 = q4_0_block(x + i * 18 + 54, y + i * 34 + 102, acc3);
    }
    for (; i < nb; i++)
        acc0 = q4_0_block(x + i * 18, y + i * 34, acc0);
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
}

float rf__vec_dot_q4_1_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK4_1;
    const __m256i ones = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xa = x + i * 20, *ya = y + i * 34;
        const __m256i yv = _mm256_loadu_si256((const __m256i *)(ya + 2));
        /* The quants are unsigned 0..15, so vpmaddubsw takes them directly;
         * the min multiplies the sum of the activation quants. */
        const __m256i p = dot_u8_i8(unpack_nibbles_16(xa + 4), yv);
        const __m256i ysum = dot_u8_i8(ones, yv);
        const float dy = load_fp16_f16c(ya);
        const float d = load_fp16_f16c(xa) * dy;
        const float m = load_fp16_f16c(xa + 2) * dy;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc);
        acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ysum), _mm256_set1_ps(m), acc_min);
    }
    return hsum_ps(acc) + hsum_ps(acc_min);
}

/* Q5's fifth bits (a little-endian u32, bit i for element i) as 0x10 in
 * byte i: byte k of the word is spread over bytes 8k .. 8k + 7, and each
 * keeps only its own bit. */
static inline __m256i q5_high_bits(const uint8_t *qh)
{
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)h),
        _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll, 0x0303030303030303ll));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit),
                            _mm256_set1_epi8(0x10));
}

float rf__vec_dot_q5_0_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK5_0;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xa = x + i * sizeof(rf_block_q5_0), *ya = y + i * 34;
        const __m256i q = _mm256_or_si256(unpack_nibbles_16(xa + offsetof(rf_block_q5_0, qs)),
                                          q5_high_bits(xa + offsetof(rf_block_q5_0, qh)));
        const __m256i p = dot_i8_i8(_mm256_sub_epi8(q, _mm256_set1_epi8(16)),
                                    _mm256_loadu_si256((const __m256i *)(ya + 2)));
        const __m256 d = _mm256_set1_ps(load_fp16_f16c(xa) * load_fp16_f16c(ya));
        if (i & 1)
            acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc1);
        else
            acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

float rf__vec_dot_q5_1_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK5_1;
    const __m256i ones = _mm256_set1_epi8(1);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xa = x + i * sizeof(rf_block_q5_1), *ya = y + i * 34;
        const __m256i yv = _mm256_loadu_si256((const __m256i *)(ya + 2));
        /* Unsigned 0..31 quants; the min multiplies the sum of y, as Q4_1. */
        const __m256i q = _mm256_or_si256(unpack_nibbles_16(xa + offsetof(rf_block_q5_1, qs)),
                                          q5_high_bits(xa + offsetof(rf_block_q5_1, qh)));
        const __m256i p = dot_u8_i8(q, yv);
        const __m256i ysum = dot_u8_i8(ones, yv);
        const float dy = load_fp16_f16c(ya);
        const float d = load_fp16_f16c(xa) * dy;
        const float m = load_fp16_f16c(xa + 2) * dy;
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d), acc);
        acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ysum), _mm256_set1_ps(m), acc_min);
    }
    return hsum_ps(acc) + hsum_ps(acc_min);
}

/* A 16-entry int8 table in both lanes, for vpshufb lookups by nibble. */
static inline __m256i table16(const int8_t *values)
{
    return _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)values));
}

/* IQ4_NL and MXFP4: a Q4_0 layout whose nibbles index a table of int8
 * levels; scale is the product of the two block scales. */
static inline __m256 lookup_block(__m256i table, const uint8_t *qs, const uint8_t *ya, float scale,
                                  __m256 acc)
{
    const __m256i v = _mm256_shuffle_epi8(table, unpack_nibbles_16(qs));
    const __m256i p = dot_i8_i8(v, _mm256_loadu_si256((const __m256i *)(ya + 2)));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(scale), acc);
}

float rf__vec_dot_iq4_nl_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK_NL;
    const __m256i table = table16(rf__cpu_kvalues_iq4nl);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xa = x + i * sizeof(rf_block_iq4_nl), *ya = y + i * 34;
        const float d = load_fp16_f16c(xa) * load_fp16_f16c(ya);
        if (i & 1)
            acc1 = lookup_block(table, xa + 2, ya, d, acc1);
        else
            acc0 = lookup_block(table, xa + 2, ya, d, acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

float rf__vec_dot_mxfp4_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK_MXFP4;
    const __m256i table = table16(rf__cpu_kvalues_mxfp4);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xa = x + i * sizeof(rf_block_mxfp4), *ya = y + i * 34;
        const float d = rf__e8m0_half(xa[0]) * load_fp16_f16c(ya);
        if (i & 1)
            acc1 = lookup_block(table, xa + 1, ya, d, acc1);
        else
            acc0 = lookup_block(table, xa + 1, ya, d, acc0);
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

/* ------------------------------------------------------------------------
 * 256-element formats (Q8_K activations)
 * ------------------------------------------------------------------------ */

/* int16 scales for one 32-element run of a 16-element-scale format: eight
 * copies of int8 scale sub (elements 0-15, the low lane) and eight of
 * sub + 1 (elements 16-31, the high lane). */
static inline __m256i scale_pair(__m128i scales, int sub)
{
    const __m128i pick = _mm_set_epi64x((long long)(0x0101010101010101ull * (unsigned)(sub + 1)),
                                        (long long)(0x0101010101010101ull * (unsigned)sub));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pick));
}

/* 0xff in each byte whose bit `bit` is set. */
static inline __m256i bit_set(__m256i v, int bit)
{
    const __m256i b = _mm256_set1_epi8((char)(1u << bit));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, b), b);
}

float rf__vec_dot_q2_K_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK_K;
    const __m256i mask2 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps(), acc_min = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + i * sizeof(rf_block_q2_K);
        const uint8_t *yb = y + i * RF__Q8K_SIZE;
        const float dy = rf__load_f32(yb + RF__Q8K_D);
        const float d = dy * load_fp16_f16c(xb + offsetof(rf_block_q2_K, d));
        const float dmin = dy * load_fp16_f16c(xb + offsetof(rf_block_q2_K, dmin));
        const __m128i packed =
            _mm_loadu_si128((const __m128i *)(xb + offsetof(rf_block_q2_K, scales)));
        const __m128i scales = _mm_and_si128(packed, _mm_set1_epi8(0x0f));
        const __m128i mins = _mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0f));

        /* Min term: one 4-bit min per 16 elements, against its bsum. */
        const __m256i min_dot = _mm256_madd_epi16(
            _mm256_cvtepu8_epi16(mins), _mm256_loadu_si256((const __m256i *)(yb + RF__Q8K_BSUMS)));
        acc_min = _mm256_fmadd_ps(_mm256_cvtepi32_ps(min_dot), _mm256_set1_ps(dmin), acc_min);

        const int8_t *q8 = (const int8_t *)(yb + RF__Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        /* Each half's 32 bytes hold four runs of 32 elements, bit pairs 0-1 .. 6-7. */
        for (int half = 0; half < 2; half++) {
            const __m256i q32 =
                _mm256_loadu_si256((const __m256i *)(xb + offsetof(rf_block_q2_K, qs) + 32 * half));
            for (int r = 0; r < 4; r++) {
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(q32, 2 * r), mask2);
                const __m256i p = _mm256_maddubs_epi16(
                    q, _mm256_loadu_si256((const __m256i *)(q8 + 128 * half + 32 * r)));
                sumi = _mm256_add_epi32(sumi,
                                        _mm256_madd_epi16(p, scale_pair(scales, 8 * half + 2 * r)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    }
    return hsum_ps(acc) - hsum_ps(acc_min);
}

/* Q3_K's sixteen 6-bit scales, unbiased, as int8 (layout in quant_k.c),
 * four at a time on 32-bit words: scales 0-3 and 8-11 take the low and high
 * nibbles of bytes 0-3, scales 4-7 and 12-15 those of bytes 4-7, and scale
 * j's top two bits sit in byte 8 + j % 4 at bit 2 * (j / 4). */
static inline __m128i unpack_scales_q3_K(const uint8_t *packed)
{
    uint32_t u[3];
    memcpy(u, packed, sizeof u);
    const uint32_t low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    const __m128i biased = _mm_set_epi32((int)(((u[1] >> 4) & low4) | ((u[2] >> 6) & low2) << 4),
                                         (int)(((u[0] >> 4) & low4) | ((u[2] >> 4) & low2) << 4),
                                         (int)((u[1] & low4) | ((u[2] >> 2) & low2) << 4),
                                         (int)((u[0] & low4) | (u[2] & low2) << 4));
    return _mm_sub_epi8(biased, _mm_set1_epi8(32));
}

float rf__vec_dot_q3_K_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK_K;
    const __m256i mask2 = _mm256_set1_epi8(3);
    const __m256i four = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + i * sizeof(rf_block_q3_K);
        const uint8_t *yb = y + i * RF__Q8K_SIZE;
        const float d =
            rf__load_f32(yb + RF__Q8K_D) * load_fp16_f16c(xb + offsetof(rf_block_q3_K, d));
        const __m128i scales = unpack_scales_q3_K(xb + offsetof(rf_block_q3_K, scales));

        /* Quants are taken as q + 4 in 0..7 (low bits | hmask bit << 2),
         * unsigned for vpmaddubsw; the 4 comes off as 4 * sum(scale * bsum). */
        const __m256i offset =
            _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales),
                              _mm256_loadu_si256((const __m256i *)(yb + RF__Q8K_BSUMS)));
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 2));

        const __m256i hmask =
            _mm256_loadu_si256((const __m256i *)(xb + offsetof(rf_block_q3_K, hmask)));
        const int8_t *q8 = (const int8_t *)(yb + RF__Q8K_QS);
        for (int half = 0; half < 2; half++) {
            const __m256i q32 =
                _mm256_loadu_si256((const __m256i *)(xb + offsetof(rf_block_q3_K, qs) + 32 * half));
            for (int r = 0; r < 4; r++) {
                /* Element 32k + l has its high bit at bit k of hmask[l]. */
                const __m256i high = _mm256_and_si256(bit_set(hmask, 4 * half + r), four);
                const __m256i q =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q32, 2 * r), mask2), high);
                const __m256i p = _mm256_maddubs_epi16(
                    q, _mm256_loadu_si256((const __m256i *)(q8 + 128 * half + 32 * r)));
                sumi = _mm256_add_epi32(sumi,
                                        _mm256_madd_epi16(p, scale_pair(scales, 8 * half + 2 * r)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    }
    return hsum_ps(acc);
}

/* Q4_K's packed scales (quant_k.c) as 8 scale bytes then 8 min bytes,
 * unpacked four at a time on 32-bit words: byte k of each word is sub-block
 * k or k + 4, and the masks keep the shifts from crossing bytes. */
static inline __m128i unpack_scale_min_k4_x16(const uint8_t *packed)
{
    uint32_t u[3];
    memcpy(u, packed, sizeof u);
    const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, low2 = 0x03030303u;
    const uint32_t scale_lo = u[0] & low6;
    const uint32_t scale_hi = (u[2] & low4) | ((u[0] >> 6) & low2) << 4;
    const uint32_t min_lo = u[1] & low6;
    const uint32_t min_hi = ((u[2] >> 4) & low4) | ((u[1] >> 6) & low2) << 4;
    return _mm_set_epi32((int)min_hi, (int)min_lo, (int)scale_hi, (int)scale_lo);
}

/* Q4_K and Q5_K rows: the same layout but for Q5_K's 32 bytes of fifth
 * bits (qh_offset < 0 for Q4_K; inlined with constants, the compiler drops
 * the unused branch). */
static inline float scale_min_k(int64_t n, const uint8_t *x, const uint8_t *y, size_t block_bytes,
                                size_t scales_offset, int qh_offset, size_t qs_offset)
{
    const int64_t nb = n / RF_QK_K;
    const __m256i mask = _mm256_set1_epi8(0x0f);
    const __m256i sixteen = _mm256_set1_epi8(0x10);
    __m256 acc = _mm256_setzero_ps();
    __m128 acc_min = _mm_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + i * block_bytes;
        const uint8_t *yb = y + i * RF__Q8K_SIZE;
        /* d and dmin are the first two fields of both formats. */
        const float dy = rf__load_f32(yb + RF__Q8K_D);
        const float d = dy * load_fp16_f16c(xb);
        const float dmin = dy * load_fp16_f16c(xb + 2);
        /* int16 lanes 0-7: the sub-block scales, 8-15: the mins. */
        const __m256i scale_min = _mm256_cvtepu8_epi16(unpack_scale_min_k4_x16(xb + scales_offset));

        /* Min term: each min covers two bsums (32 elements). */
        const __m128i bsum_pairs =
            _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)(yb + RF__Q8K_BSUMS)),
                           _mm_loadu_si128((const __m128i *)(yb + RF__Q8K_BSUMS + 16)));
        const __m128i mins_dot = _mm_madd_epi16(_mm256_extracti128_si256(scale_min, 1), bsum_pairs);
        acc_min = _mm_fmadd_ps(_mm_cvtepi32_ps(mins_dot), _mm_set1_ps(dmin), acc_min);

        const __m256i scales = _mm256_broadcastsi128_si256(_mm256_castsi256_si128(scale_min));
        const uint8_t *qs = xb + qs_offset;
        const int8_t *q8 = (const int8_t *)(yb + RF__Q8K_QS);
        const __m256i qh = qh_offset >= 0 ? _mm256_loadu_si256((const __m256i *)(xb + qh_offset))
                                          : _mm256_setzero_si256();
        __m256i sumi = _mm256_setzero_si256();
        /* Each 32 bytes of qs hold sub-blocks 2j (low nibbles) and 2j + 1
         * (high); Q5_K's fifth bit of sub-block k is bit k of qh. */
        for (int j = 0; j < 4; j++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
            __m256i lo = _mm256_and_si256(q, mask);
            __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
            if (qh_offset >= 0) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(bit_set(qh, 2 * j), sixteen));
                hi = _mm256_or_si256(hi, _mm256_and_si256(bit_set(qh, 2 * j + 1), sixteen));
            }
            const __m256i plo =
                _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
            const __m256i phi =
                _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
            /* Broadcast int16 lanes 2j and 2j + 1 (bytes 4j .. 4j + 3). */
            const __m256i sc_lo =
                _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)((4 * j + 1) << 8 | 4 * j)));
            const __m256i sc_hi = _mm256_shuffle_epi8(
                scales, _mm256_set1_epi16((short)((4 * j + 3) << 8 | (4 * j + 2))));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(plo, sc_lo));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(phi, sc_hi));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    }
    __m128 m = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    return hsum_ps(acc) - _mm_cvtss_f32(m);
}

float rf__vec_dot_q4_K_avx2(int64_t n, const void *w, const void *act)
{
    return scale_min_k(n, w, act, sizeof(rf_block_q4_K), offsetof(rf_block_q4_K, scales), -1,
                       offsetof(rf_block_q4_K, qs));
}

float rf__vec_dot_q5_K_avx2(int64_t n, const void *w, const void *act)
{
    return scale_min_k(n, w, act, sizeof(rf_block_q5_K), offsetof(rf_block_q5_K, scales),
                       (int)offsetof(rf_block_q5_K, qh), offsetof(rf_block_q5_K, qs));
}

float rf__vec_dot_q6_K_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK_K;
    const __m256i mask4 = _mm256_set1_epi8(0x0f);
    const __m256i mask_hi = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + i * sizeof(rf_block_q6_K);
        const uint8_t *yb = y + i * RF__Q8K_SIZE;
        const __m128i scales =
            _mm_loadu_si128((const __m128i *)(xb + offsetof(rf_block_q6_K, scales)));
        const float d =
            rf__load_f32(yb + RF__Q8K_D) * load_fp16_f16c(xb + offsetof(rf_block_q6_K, d));

        /* The quants are stored as q + 32 in 0..63 (unsigned, as vpmaddubsw
         * wants); the 32 comes off as 32 * sum(scale * bsum), exactly. */
        const __m256i offset =
            _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales),
                              _mm256_loadu_si256((const __m256i *)(yb + RF__Q8K_BSUMS)));
        __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(offset, 5));

        const int8_t *q8 = (const int8_t *)(yb + RF__Q8K_QS);
        for (int half = 0; half < 2; half++) {
            const uint8_t *ql = xb + offsetof(rf_block_q6_K, ql) + 64 * half;
            const __m256i qh =
                _mm256_loadu_si256((const __m256i *)(xb + offsetof(rf_block_q6_K, qh) + 32 * half));
            const __m256i ql0 = _mm256_loadu_si256((const __m256i *)ql);
            const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            /* Run r takes the low (r < 2) or high nibble of ql[32 * (r & 1)]
             * and bits 2r..2r+1 of qh, moved to bits 4-5. */
            const __m256i q[4] = {
                _mm256_or_si256(_mm256_and_si256(ql0, mask4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 4), mask_hi)),
                _mm256_or_si256(_mm256_and_si256(ql1, mask4),
                                _mm256_and_si256(_mm256_slli_epi16(qh, 2), mask_hi)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), mask4),
                                _mm256_and_si256(qh, mask_hi)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), mask4),
                                _mm256_and_si256(_mm256_srli_epi16(qh, 2), mask_hi)),
            };
            for (int r = 0; r < 4; r++) {
                /* Elements 0-15 of the run use scale sub, 16-31 sub + 1:
                 * eight copies of each, widened to int16. */
                const int sub = 8 * half + 2 * r;
                const __m128i pick =
                    _mm_set_epi64x((long long)(0x0101010101010101ull * (unsigned)(sub + 1)),
                                   (long long)(0x0101010101010101ull * (unsigned)sub));
                const __m256i sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pick));
                const __m256i p = _mm256_maddubs_epi16(
                    q[r], _mm256_loadu_si256((const __m256i *)(q8 + 128 * half + 32 * r)));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, sc));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    }
    return hsum_ps(acc);
}

float rf__vec_dot_iq4_xs_avx2(int64_t n, const void *w, const void *act)
{
    const uint8_t *x = w, *y = act;
    const int64_t nb = n / RF_QK_K;
    const __m256i table = table16(rf__cpu_kvalues_iq4nl);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *xb = x + i * sizeof(rf_block_iq4_xs);
        const uint8_t *yb = y + i * RF__Q8K_SIZE;
        const float d =
            rf__load_f32(yb + RF__Q8K_D) * load_fp16_f16c(xb + offsetof(rf_block_iq4_xs, d));
        const uint16_t scales_h = rf__load_u16(xb + offsetof(rf_block_iq4_xs, scales_h));
        const uint8_t *scales_l = xb + offsetof(rf_block_iq4_xs, scales_l);
        const uint8_t *qs = xb + offsetof(rf_block_iq4_xs, qs);
        const int8_t *q8 = (const int8_t *)(yb + RF__Q8K_QS);
        __m256i sumi = _mm256_setzero_si256();
        for (int ib = 0; ib < 8; ib++) {
            const int ls =
                ((scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | ((scales_h >> (2 * ib)) & 3) << 4;
            const __m256i v = _mm256_shuffle_epi8(table, unpack_nibbles_16(qs + 16 * ib));
            const __m256i yv = _mm256_loadu_si256((const __m256i *)(q8 + 32 * ib));
            /* |level| * |y| <= 127 * 127, so pairs fit vpmaddubsw's int16. */
            const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(v, v), _mm256_sign_epi8(yv, v));
            sumi =
                _mm256_add_epi32(sumi, _mm256_madd_epi16(p, _mm256_set1_epi16((short)(ls - 32))));
        }
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d), acc);
    }
    return hsum_ps(acc);
}

#endif /* __AVX2__ && __FMA__ && __F16C__ */
