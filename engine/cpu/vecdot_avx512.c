/* vecdot_avx512.c - AVX-512 (F, BW, VL, VNNI) dot products
 *
 * Compiled with the AVX-512 flags and called only when
 * rf_cpu_isa_supported(RF_CPU_AVX512) holds, which includes VNNI.
 *
 * F16 runs on 512-bit registers, with masked loads for the tail. The
 * 32-element formats use vpdpbusd, which multiplies unsigned by signed
 * bytes and sums each four into an int32 lane, replacing AVX2's vpmaddubsw
 * + vpmaddwd pair (and its int16 saturation): one block per 256-bit
 * register on rows as stored, and 16 rows per 512-bit register on packed
 * groups (the matmul's path). The row kernels are written as tiles of up to
 * 4 weight rows by 4 activation rows (see Tiles below); the single-row dot
 * products are the 1 x 1 tile.
 */
#include "vecdot_internal.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__F16C__)

#include <immintrin.h>

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static inline float hsum256_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float load_fp16_f16c(const uint8_t *p)
{
    return _cvtsh_ss(rf__load_u16(p));
}

static inline __m256i loadu256(const uint8_t *p)
{
    return _mm256_loadu_si256((const __m256i *)p);
}

/* ------------------------------------------------------------------------
 * Tiles
 *
 * Each function body is written once for any n_w x n_act up to 4 x 4 and
 * instantiated for every shape by TILE_DISPATCH with constant sizes, so the
 * accumulators live in registers (a 4 x 4 tile uses 16 of the 32). Every
 * output has one accumulator chain, updated block by block in the same
 * order whatever the tile's shape: the single-row dot products are the
 * 1 x 1 tile, and a result never depends on the rows beside it.
 * ------------------------------------------------------------------------ */

#define TILE_INLINE static inline __attribute__((always_inline))
/* Loops over a tile's rows unroll completely, which keeps the arrays of
 * accumulators in registers (without it gcc -O2 keeps them in memory). */
#define UNROLL _Pragma("GCC unroll 4")

/* Call body(n, w, ws, NW, act, as, NA, dst, ds) with NW and NA constant. */
#define TILE_DISPATCH(body)                                                                   \
    switch ((n_w - 1) * RF_CPU_TILE_MAX + (n_act - 1)) {                                      \
    case 0: body(n, w, w_stride, 1, act, act_stride, 1, dst, dst_stride); break;              \
    case 1: body(n, w, w_stride, 1, act, act_stride, 2, dst, dst_stride); break;              \
    case 2: body(n, w, w_stride, 1, act, act_stride, 3, dst, dst_stride); break;              \
    case 3: body(n, w, w_stride, 1, act, act_stride, 4, dst, dst_stride); break;              \
    case 4: body(n, w, w_stride, 2, act, act_stride, 1, dst, dst_stride); break;              \
    case 5: body(n, w, w_stride, 2, act, act_stride, 2, dst, dst_stride); break;              \
    case 6: body(n, w, w_stride, 2, act, act_stride, 3, dst, dst_stride); break;              \
    case 7: body(n, w, w_stride, 2, act, act_stride, 4, dst, dst_stride); break;              \
    case 8: body(n, w, w_stride, 3, act, act_stride, 1, dst, dst_stride); break;              \
    case 9: body(n, w, w_stride, 3, act, act_stride, 2, dst, dst_stride); break;              \
    case 10: body(n, w, w_stride, 3, act, act_stride, 3, dst, dst_stride); break;             \
    case 11: body(n, w, w_stride, 3, act, act_stride, 4, dst, dst_stride); break;             \
    case 12: body(n, w, w_stride, 4, act, act_stride, 1, dst, dst_stride); break;             \
    case 13: body(n, w, w_stride, 4, act, act_stride, 2, dst, dst_stride); break;             \
    case 14: body(n, w, w_stride, 4, act, act_stride, 3, dst, dst_stride); break;             \
    case 15: body(n, w, w_stride, 4, act, act_stride, 4, dst, dst_stride); break;             \
    default: break;                                                                           \
    }

/* ------------------------------------------------------------------------
 * F16 (float32 activations)
 * ------------------------------------------------------------------------ */

/* Matrix-vector products (one activation row, generation) stream their
 * weight rows from memory once, and the hardware prefetcher alone left
 * them waiting on loads: they prefetch the same position in the next
 * group of rows (the caller's next call), 1 KiB further on, into L2 (the
 * distance reaches 35 KiB for four 8192-wide Q8_0 rows, most of L1).
 * Measured on a 2048-wide matrix of 60-100k rows, one thread, hint T0:
 * Q4_0 5.8 -> 8.4 GB/s, Q8_0 8.8 -> 10.8, F16 12.3 -> 13.5; T1 measured
 * the same in the engine's generation benchmark. Tiles of several
 * activation rows find the weights in cache after the first row and skip
 * the extra loads. */
#define PREFETCH_NEXT_GROUP(na, p, nw, ws)                                                \
    do {                                                                                  \
        if ((na) == 1)                                                                    \
            _mm_prefetch((const char *)(p) + (size_t)(nw) * (ws) + 1024, _MM_HINT_T1); \
    } while (0)

static inline __m512 load16_fp16(const uint8_t *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

/* 16 elements per step on 512-bit registers; the tail with masked loads,
 * which read only the remaining elements, never past the row. */
TILE_INLINE void f16_tile(int64_t n, const uint8_t *w, size_t ws, const int nw,
                          const uint8_t *act, size_t as, const int na, float *dst, size_t ds)
{
    __m512 acc[RF_CPU_TILE_MAX][RF_CPU_TILE_MAX];
    UNROLL
    for (int i = 0; i < nw; i++)
        UNROLL
        for (int j = 0; j < na; j++)
            acc[i][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
        __m512 wv[RF_CPU_TILE_MAX];
        UNROLL
        for (int i = 0; i < nw; i++) {
            PREFETCH_NEXT_GROUP(na, w + i * ws + 2 * k, nw, ws);
            wv[i] = load16_fp16(w + i * ws + 2 * k);
        }
        UNROLL
        for (int j = 0; j < na; j++) {
            const __m512 av = _mm512_loadu_ps(act + j * as + 4 * k);
            UNROLL
            for (int i = 0; i < nw; i++)
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
    if (k < n) {
        const __mmask16 m = (__mmask16)((1u << (n - k)) - 1u);
        __m512 wv[RF_CPU_TILE_MAX];
        UNROLL
        for (int i = 0; i < nw; i++)
            wv[i] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w + i * ws + 2 * k));
        UNROLL
        for (int j = 0; j < na; j++) {
            const __m512 av = _mm512_maskz_loadu_ps(m, act + j * as + 4 * k);
            UNROLL
            for (int i = 0; i < nw; i++)
                acc[i][j] = _mm512_fmadd_ps(wv[i], av, acc[i][j]);
        }
    }
    UNROLL
    for (int i = 0; i < nw; i++)
        UNROLL
        for (int j = 0; j < na; j++)
            dst[j * ds + i] = _mm512_reduce_add_ps(acc[i][j]);
}

void rf__vec_dot_tile_f16_avx512(int64_t n, const void *w, size_t w_stride, int n_w,
                                 const void *act, size_t act_stride, int n_act, float *dst,
                                 size_t dst_stride)
{
    TILE_DISPATCH(f16_tile)
}

float rf__vec_dot_f16_avx512(int64_t n, const void *w, const void *act)
{
    float out;
    f16_tile(n, w, 0, 1, act, 0, 1, &out, 0);
    return out;
}

/* ------------------------------------------------------------------------
 * 32-element formats (Q8_0 activations), unpacked rows
 *
 * One block per 256-bit register (AVX-512 VL) with vpdpbusd, which
 * multiplies unsigned by signed bytes and adds each four products into an
 * int32 lane, starting from a given int32 vector. Each format makes one
 * operand unsigned by an offset whose contribution depends on one side
 * only, so it is computed once per block of that side and is the
 * vpdpbusd's starting value: the integer block sum s is exact.
 *
 * The float step is the packed kernels' (below), which these must match
 * bit for bit: one scalar chain per output, acc = fma(float(s) * dy, dw,
 * acc), block by block. The packed kernels keep 16 such chains in the 16
 * lanes of a register; here each block's eight int32 lanes are summed to
 * one integer first, which makes these slower than the packed kernels:
 * the matmul packs every Q4_0 and Q8_0 weight and comes here only for a
 * weight it had no memory to pack.
 * ------------------------------------------------------------------------ */

static inline int32_t hsum256_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* The float step of one block of one output. */
static inline float block_step(int32_t s, float dy, float dw, float acc)
{
    return __builtin_fmaf((float)s * dy, dw, acc);
}

/* Q8_0 weights x (signed) against activations y: y + 128 (y xor 0x80) is
 * unsigned for every int8 y, and sum((y + 128) x) - 128 sum(x) = sum(x y);
 * the -128 sum(x) is the weight block's starting value. */
TILE_INLINE void q8_0_tile(int64_t n, const uint8_t *w, size_t ws, const int nw,
                           const uint8_t *act, size_t as, const int na, float *dst, size_t ds)
{
    const int64_t nb = n / RF_QK8_0;
    const __m256i bias = _mm256_set1_epi8((char)0x80);
    float acc[RF_CPU_TILE_MAX][RF_CPU_TILE_MAX];
    UNROLL
    for (int i = 0; i < nw; i++)
        UNROLL
        for (int j = 0; j < na; j++)
            acc[i][j] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        __m256i xq[RF_CPU_TILE_MAX], start[RF_CPU_TILE_MAX];
        float dw[RF_CPU_TILE_MAX];
        UNROLL
        for (int i = 0; i < nw; i++) {
            const uint8_t *xb = w + i * ws + b * 34;
            PREFETCH_NEXT_GROUP(na, xb, nw, ws);
            xq[i] = loadu256(xb + 2);
            start[i] = _mm256_sub_epi32(_mm256_setzero_si256(),
                                        _mm256_dpbusd_epi32(_mm256_setzero_si256(), bias, xq[i]));
            dw[i] = load_fp16_f16c(xb);
        }
        UNROLL
        for (int j = 0; j < na; j++) {
            const uint8_t *yb = act + j * as + b * 34;
            const __m256i yu = _mm256_xor_si256(loadu256(yb + 2), bias);
            const float dy = load_fp16_f16c(yb);
            UNROLL
            for (int i = 0; i < nw; i++) {
                const int32_t s = hsum256_epi32(_mm256_dpbusd_epi32(start[i], yu, xq[i]));
                acc[i][j] = block_step(s, dy, dw[i], acc[i][j]);
            }
        }
    }
    UNROLL
    for (int i = 0; i < nw; i++)
        UNROLL
        for (int j = 0; j < na; j++)
            dst[j * ds + i] = acc[i][j];
}

void rf__vec_dot_tile_q8_0_avx512(int64_t n, const void *w, size_t w_stride, int n_w,
                                  const void *act, size_t act_stride, int n_act, float *dst,
                                  size_t dst_stride)
{
    TILE_DISPATCH(q8_0_tile)
}

float rf__vec_dot_q8_0_avx512(int64_t n, const void *w, const void *act)
{
    float out;
    q8_0_tile(n, w, 0, 1, act, 0, 1, &out, 0);
    return out;
}

/* Q4_0 nibbles q (unsigned 0..15) against activations y: sum((q - 8) y) =
 * sum(q y) - 8 sum(y); the -8 sum(y) is the activation block's starting
 * value. */
TILE_INLINE void q4_0_tile(int64_t n, const uint8_t *w, size_t ws, const int nw,
                           const uint8_t *act, size_t as, const int na, float *dst, size_t ds)
{
    const int64_t nb = n / RF_QK4_0;
    const __m256i mask = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    const __m256i nibble_shift = _mm256_setr_epi64x(0, 0, 4, 4);
    float acc[RF_CPU_TILE_MAX][RF_CPU_TILE_MAX];
    UNROLL
    for (int i = 0; i < nw; i++)
        UNROLL
        for (int j = 0; j < na; j++)
            acc[i][j] = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        __m256i q[RF_CPU_TILE_MAX];
        float dw[RF_CPU_TILE_MAX];
        UNROLL
        for (int i = 0; i < nw; i++) {
            const uint8_t *xb = w + i * ws + b * 18;
            PREFETCH_NEXT_GROUP(na, xb, nw, ws);
            /* The 16 bytes in both lanes, the high lane shifted right by 4:
             * a broadcast load and a per-lane shift, no lane insert. */
            const __m256i raw =
                _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(xb + 2)));
            q[i] = _mm256_and_si256(_mm256_srlv_epi64(raw, nibble_shift), mask);
            dw[i] = load_fp16_f16c(xb);
        }
        UNROLL
        for (int j = 0; j < na; j++) {
            const uint8_t *yb = act + j * as + b * 34;
            const __m256i y = loadu256(yb + 2);
            const __m256i start = _mm256_sub_epi32(
                _mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), eight, y));
            const float dy = load_fp16_f16c(yb);
            UNROLL
            for (int i = 0; i < nw; i++) {
                const int32_t s = hsum256_epi32(_mm256_dpbusd_epi32(start, q[i], y));
                acc[i][j] = block_step(s, dy, dw[i], acc[i][j]);
            }
        }
    }
    UNROLL
    for (int i = 0; i < nw; i++)
        UNROLL
        for (int j = 0; j < na; j++)
            dst[j * ds + i] = acc[i][j];
}

void rf__vec_dot_tile_q4_0_avx512(int64_t n, const void *w, size_t w_stride, int n_w,
                                  const void *act, size_t act_stride, int n_act, float *dst,
                                  size_t dst_stride)
{
    TILE_DISPATCH(q4_0_tile)
}

float rf__vec_dot_q4_0_avx512(int64_t n, const void *w, const void *act)
{
    float out;
    q4_0_tile(n, w, 0, 1, act, 0, 1, &out, 0);
    return out;
}

/* ------------------------------------------------------------------------
 * Packed 32-element formats (layouts in vecdot.c, rf_cpu_pack_rows)
 *
 * A group holds 16 weight rows; for each block, 64-byte chunks whose lane
 * l (four bytes) is four consecutive quant bytes of row l, then the 16
 * rows' fp16 scales. An activation row holds its Q8_0 quants, float
 * scales and each block's starting value (the offset term, -8 sum(y) for
 * Q4_0, -128 sum(y) for Q8_0, whose weights are stored as x + 128). So
 * vpdpbusd of a chunk with four activation quants broadcast (an embedded
 * {1to16} load) adds four products to each of 16 rows' sums, and the
 * float step runs on 16 rows at once, in their own lanes, in the order of
 * block_step above.
 * ------------------------------------------------------------------------ */

#define PACK_SCALES(w, nb, chunk) ((w) + (nb) * (chunk))

static inline __m512i bcast_i32(const uint8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

static inline void store_rows(float *dst, __m512 v, int n_rows)
{
    if (n_rows >= RF_CPU_PACK_ROWS)
        _mm512_storeu_ps(dst, v);
    else
        _mm512_mask_storeu_ps(dst, (__mmask16)((1u << n_rows) - 1u), v);
}

/* Call body(n, w, act, as, NA, dst, ds, n_rows) with NA constant. */
#define PACK_DISPATCH(body)                                                   \
    switch (n_act) {                                                          \
    case 1: body(n, group, act, act_stride, 1, dst, dst_stride, n_rows); break; \
    case 2: body(n, group, act, act_stride, 2, dst, dst_stride, n_rows); break; \
    case 3: body(n, group, act, act_stride, 3, dst, dst_stride, n_rows); break; \
    case 4: body(n, group, act, act_stride, 4, dst, dst_stride, n_rows); break; \
    case 5: body(n, group, act, act_stride, 5, dst, dst_stride, n_rows); break; \
    case 6: body(n, group, act, act_stride, 6, dst, dst_stride, n_rows); break; \
    case 7: body(n, group, act, act_stride, 7, dst, dst_stride, n_rows); break; \
    case 8: body(n, group, act, act_stride, 8, dst, dst_stride, n_rows); break; \
    default: break;                                                           \
    }

#define UNROLL8 _Pragma("GCC unroll 8")

/* Matrix-vector products (one activation row, generation) stream a
 * group's weights once: prefetching 1 KiB ahead into L1 (any further
 * group follows in memory) raised generation 5% over the hardware
 * prefetchers alone (Q4_0 33.8 -> 35.1 tok/s, Q8_0 18.2 -> 19.3; 512 B
 * and 2 KiB measured the same, 4 and 16 KiB into L2 no better than none). */
#define PACK_PREFETCH(na, p)                                                  \
    do {                                                                      \
        if ((na) == 1)                                                        \
            _mm_prefetch((const char *)(p) + 1024, _MM_HINT_T0);              \
    } while (0)

TILE_INLINE void q4_0_x16(int64_t n, const uint8_t *w, const uint8_t *act, size_t as,
                          const int na, float *dst, size_t ds, int n_rows)
{
    const int64_t nb = n / RF_QK4_0;
    const uint8_t *scales = PACK_SCALES(w, nb, 256);
    const __m512i mask = _mm512_set1_epi8(0x0f);
    __m512 acc[RF_CPU_PACK_ACT_MAX];
    UNROLL8
    for (int j = 0; j < na; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = w + b * 256;
        __m512i lo[4], hi[4];
        UNROLL
        for (int c = 0; c < 4; c++) {
            PACK_PREFETCH(na, q + 64 * c);
            const __m512i raw = _mm512_loadu_si512(q + 64 * c);
            lo[c] = _mm512_and_si512(raw, mask);
            hi[c] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), mask);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(scales + 32 * b)));
        UNROLL8
        for (int j = 0; j < na; j++) {
            const uint8_t *a = act + j * as;
            const uint8_t *y = a + 32 * b;
            __m512i s0 = bcast_i32(a + 36 * nb + 4 * b);
            __m512i s1 = _mm512_setzero_si512();
            /* Low nibbles of chunk c are quants 4c..4c+3, high ones 16 on. */
            s0 = _mm512_dpbusd_epi32(s0, lo[0], bcast_i32(y + 0));
            s1 = _mm512_dpbusd_epi32(s1, hi[0], bcast_i32(y + 16));
            s0 = _mm512_dpbusd_epi32(s0, lo[1], bcast_i32(y + 4));
            s1 = _mm512_dpbusd_epi32(s1, hi[1], bcast_i32(y + 20));
            s0 = _mm512_dpbusd_epi32(s0, lo[2], bcast_i32(y + 8));
            s1 = _mm512_dpbusd_epi32(s1, hi[2], bcast_i32(y + 24));
            s0 = _mm512_dpbusd_epi32(s0, lo[3], bcast_i32(y + 12));
            s1 = _mm512_dpbusd_epi32(s1, hi[3], bcast_i32(y + 28));
            const __m512 dy = _mm512_set1_ps(rf__load_f32(a + 32 * nb + 4 * b));
            const __m512 sf = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(sf, dy), dw, acc[j]);
        }
    }
    UNROLL8
    for (int j = 0; j < na; j++)
        store_rows(dst + j * ds, acc[j], n_rows);
}

void rf__packed_gemm_q4_0_avx512(int64_t n, const void *group, const void *act,
                                 size_t act_stride, int n_act, float *dst, size_t dst_stride,
                                 int n_rows)
{
    PACK_DISPATCH(q4_0_x16)
}

TILE_INLINE void q8_0_x16(int64_t n, const uint8_t *w, const uint8_t *act, size_t as,
                          const int na, float *dst, size_t ds, int n_rows)
{
    const int64_t nb = n / RF_QK8_0;
    const uint8_t *scales = PACK_SCALES(w, nb, 512);
    __m512 acc[RF_CPU_PACK_ACT_MAX];
    UNROLL8
    for (int j = 0; j < na; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *q = w + b * 512;
        __m512i x[8];
        UNROLL8
        for (int c = 0; c < 8; c++) {
            PACK_PREFETCH(na, q + 64 * c);
            x[c] = _mm512_loadu_si512(q + 64 * c);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(scales + 32 * b)));
        UNROLL8
        for (int j = 0; j < na; j++) {
            const uint8_t *a = act + j * as;
            const uint8_t *y = a + 32 * b;
            __m512i s0 = bcast_i32(a + 36 * nb + 4 * b);
            __m512i s1 = _mm512_setzero_si512();
            s0 = _mm512_dpbusd_epi32(s0, x[0], bcast_i32(y + 0));
            s1 = _mm512_dpbusd_epi32(s1, x[1], bcast_i32(y + 4));
            s0 = _mm512_dpbusd_epi32(s0, x[2], bcast_i32(y + 8));
            s1 = _mm512_dpbusd_epi32(s1, x[3], bcast_i32(y + 12));
            s0 = _mm512_dpbusd_epi32(s0, x[4], bcast_i32(y + 16));
            s1 = _mm512_dpbusd_epi32(s1, x[5], bcast_i32(y + 20));
            s0 = _mm512_dpbusd_epi32(s0, x[6], bcast_i32(y + 24));
            s1 = _mm512_dpbusd_epi32(s1, x[7], bcast_i32(y + 28));
            const __m512 dy = _mm512_set1_ps(rf__load_f32(a + 32 * nb + 4 * b));
            const __m512 sf = _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1));
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(sf, dy), dw, acc[j]);
        }
    }
    UNROLL8
    for (int j = 0; j < na; j++)
        store_rows(dst + j * ds, acc[j], n_rows);
}

void rf__packed_gemm_q8_0_avx512(int64_t n, const void *group, const void *act,
                                 size_t act_stride, int n_act, float *dst, size_t dst_stride,
                                 int n_rows)
{
    PACK_DISPATCH(q8_0_x16)
}

/* ------------------------------------------------------------------------
 * Q8_0 activation quantizer
 *
 * Byte for byte quant.c's reference (ggml's quantize_row_q8_0_ref): amax
 * ignores NaN (vmaxps returns its second operand, the running maximum,
 * when the first is NaN), the scalar d and 1 / d are the same expressions,
 * and each v = x * id is rounded half away from zero as roundf does:
 * truncate, then step away from zero when the exact remainder |v - t| is at
 * least 0.5. Values not above -127 (NaN included) give -127, values from
 * 127 up give 127, as round_clamp does.
 * ------------------------------------------------------------------------ */

void rf__quantize_q8_0_avx512(const float *x, void *dst, int64_t n)
{
    uint8_t *out = dst;
    const __m512i sign_mask = _mm512_set1_epi32((int)0x80000000u);
    const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
    const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
    for (int64_t b = 0; b < n / RF_QK8_0; b++) {
        const __m512 x0 = _mm512_loadu_ps(x + b * 32), x1 = _mm512_loadu_ps(x + b * 32 + 16);
        __m512 m = _mm512_max_ps(_mm512_abs_ps(x0), _mm512_setzero_ps());
        m = _mm512_max_ps(_mm512_abs_ps(x1), m);
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        uint8_t *blk = out + b * RF__Q8_0_SIZE;
        const rf_fp16_t dh = rf_fp32_to_fp16(d);
        memcpy(blk, &dh, sizeof dh);
        for (int h = 0; h < 2; h++) {
            const __m512 v = _mm512_mul_ps(h == 0 ? x0 : x1, _mm512_set1_ps(id));
            const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m512 rem = _mm512_abs_ps(_mm512_sub_ps(v, t));
            const __mmask16 away = _mm512_cmp_ps_mask(rem, half, _CMP_GE_OQ);
            /* +-1 with v's sign (AVX-512 F has no float and/or: integer ops). */
            const __m512 step = _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_and_si512(_mm512_castps_si512(v), sign_mask), _mm512_castps_si512(one)));
            __m512 r = _mm512_mask_add_ps(t, away, t, step);
            r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, lo, _CMP_GT_OQ), lo, r);
            r = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, hi, _CMP_GE_OQ), r, hi);
            _mm_storeu_si128((__m128i *)(blk + RF__Q8_0_QS + 16 * h),
                             _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(r)));
        }
    }
}

#endif /* AVX-512 F/BW/VL/VNNI */
