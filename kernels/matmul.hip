/* matmul.hip - fused dequantize-GEMV for small batches: y = x W^T (+ bias)
 *
 * y[t][o] = sum_i x[t][i] * W[o][i] for f32 activations x [n_tokens][n_in]
 * and a weight W [n_out][n_in] in F32, F16, BF16, Q8_0, Q4_0, Q4_K or Q6_K,
 * f32 accumulation. This is the decode hot path, bound by weight bytes: each
 * launch reads every weight byte once for up to 8 tokens; larger batches are
 * cut into groups of 8 (correct, but they re-read W: prefill belongs on the
 * BLAS path).
 *
 * Work split: a block of 128 threads owns R consecutive output rows (R = 2 for
 * one or two tokens, 4 above, 8 for Q4_0 / Q8_0 at one or two tokens; the
 * activations a thread loads serve R rows from registers). The row is cut
 * into units of 32 quantized elements (one Q4_0/Q8_0 block, an eighth of a
 * K-quant super-block) or 16 bytes of a plain type; consecutive threads take
 * consecutive units, so a warp's loads cover a contiguous stretch of every
 * row. Each thread keeps R x n_tokens
 * partial sums, the warps reduce with shuffles and the block through shared
 * memory. Quants become floats by the 2^23 mantissa trick (an OR and an
 * exact subtraction) instead of the slower int-to-float unit.
 *
 * One launch may cover up to RF_MATMUL_MAX_SET matrices of the same input
 * (rf_kernel_matmul_set_f32: Q, K and V; gate and up): the grid is their
 * blocks end to end, and each block looks up which matrix it computes.
 *
 * Q4_0 and Q8_0 also come in the split layout of kernels.h (repack.hip):
 * a lane then reads its block's quants with 16-byte loads and the scale
 * from the table after the quants, instead of nine or seventeen 2-byte
 * loads.
 *
 * Alignment: quantized and vectorised paths need x and W 16-byte aligned
 * (every device allocation is); a plain-type row whose length is not a
 * multiple of the vector falls back to one element per unit.
 */
#include <stdint.h>

#include "device_util.h"
#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

/* Threads per block, fixed for every target: the host pass of a ROCm build
 * cannot know the wave size of the device it will run on (RF_WARP_SIZE is
 * only right in device code), so device code derives its warp count. */
enum { GEMV_THREADS = 128, GEMV_MAX_TOKENS = 8 };

/* ---- activations ---------------------------------------------------------- */

__device__ static inline float4 load_x4(const float *x, int64_t offset)
{
    return *(const float4 *)(x + offset);
}

__device__ static inline float dot4(float4 x, float a, float b, float c, float d)
{
    return x.x * a + x.y * b + x.z * c + x.w * d;
}

__device__ static inline float sum4(float4 x)
{
    return (x.x + x.y) + (x.z + x.w);
}

/* The four bytes of w as floats minus `bias`: v - bias with v = byte. */
#define BYTE_F(w, i, magic) (__uint_as_float(0x4b000000u | (((w) >> (8 * (i))) & 0xffu)) - (magic))
#define NIB_F(w, shift, magic) (__uint_as_float(0x4b000000u | (((w) >> (shift)) & 0xfu)) - (magic))

__device__ static inline uint32_t load_u32_2aligned(const uint8_t *p)
{
    const uint16_t *q = (const uint16_t *)p;
    return (uint32_t)q[0] | (uint32_t)q[1] << 16;
}

/* ---- one unit of work per type ------------------------------------------ */

/* Unit size in elements of each path. */
template <int TYPE, bool VEC>
struct unit_traits {
    static constexpr int elems = (TYPE == RF_DEV_F32) ? (VEC ? 4 : 1)
                               : (TYPE == RF_DEV_F16 || TYPE == RF_DEV_BF16) ? (VEC ? 8 : 1)
                               : 32;
};

template <int TYPE, bool VEC, int MAXT, int R>
__device__ static inline void unit_dot(const uint8_t *const *rows, const uint8_t *const *scales,
                                       int64_t u, const float *x, int64_t n_in, int nt,
                                       float (&acc)[R][MAXT])
{
    if (TYPE == RF_DEV_F32 && VEC) {
        const int64_t e = u * 4;
        float4 w[R];
#pragma unroll
        for (int r = 0; r < R; r++)
            w[r] = *(const float4 *)(rows[r] + e * 4);
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
                const float4 xv = load_x4(x, t * n_in + e);
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][t] += dot4(xv, w[r].x, w[r].y, w[r].z, w[r].w);
            }
        }
    } else if ((TYPE == RF_DEV_F16 || TYPE == RF_DEV_BF16) && VEC) {
        const int64_t e = u * 8;
        float w[R][8];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint4 raw = *(const uint4 *)(rows[r] + e * 2);
            const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
            for (int k = 0; k < 4; k++) {
                if (TYPE == RF_DEV_F16) {
                    w[r][2 * k] = rf_half_to_float((uint16_t)(words[k] & 0xffffu));
                    w[r][2 * k + 1] = rf_half_to_float((uint16_t)(words[k] >> 16));
                } else {
                    w[r][2 * k] = __uint_as_float(words[k] << 16);
                    w[r][2 * k + 1] = __uint_as_float(words[k] & 0xffff0000u);
                }
            }
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
                const float4 x0 = load_x4(x, t * n_in + e), x1 = load_x4(x, t * n_in + e + 4);
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][t] += dot4(x0, w[r][0], w[r][1], w[r][2], w[r][3]) +
                                 dot4(x1, w[r][4], w[r][5], w[r][6], w[r][7]);
            }
        }
    } else if (TYPE == RF_DEV_F32 || TYPE == RF_DEV_F16 || TYPE == RF_DEV_BF16) {
        float w[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (TYPE == RF_DEV_F32)
                w[r] = ((const float *)rows[r])[u];
            else if (TYPE == RF_DEV_F16)
                w[r] = rf_half_to_float(((const uint16_t *)rows[r])[u]);
            else
                w[r] = rf_bf16_to_float(((const uint16_t *)rows[r])[u]);
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
                const float xv = x[t * n_in + u];
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][t] += xv * w[r];
            }
        }
    } else if (TYPE == RF_DEV_Q4_0 || TYPE == RF_KERNEL_Q4_0_SPLIT) {
        /* byte j: element j in the low nibble, j + 16 in the high one */
        const int64_t e = u * 32;
        uint32_t q[R][4];
        float d[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (TYPE == RF_KERNEL_Q4_0_SPLIT) {
                const uint4 v = ((const uint4 *)rows[r])[u];
                q[r][0] = v.x, q[r][1] = v.y, q[r][2] = v.z, q[r][3] = v.w;
                d[r] = rf_half_to_float(((const uint16_t *)scales[r])[u]);
            } else {
                const uint8_t *b = rows[r] + u * RF_DEV_Q4_0_BYTES;
                d[r] = rf_half_to_float(rf_load_u16(b));
#pragma unroll
                for (int k = 0; k < 4; k++)
                    q[r][k] = load_u32_2aligned(b + 2 + 4 * k);
            }
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
                float s[R];
#pragma unroll
                for (int r = 0; r < R; r++)
                    s[r] = 0.0f;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float4 lo = load_x4(x, t * n_in + e + 4 * k);
                    const float4 hi = load_x4(x, t * n_in + e + 16 + 4 * k);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const uint32_t w = q[r][k];
                        const float m = 8388616.0f; /* 2^23 + 8 */
                        s[r] += dot4(lo, NIB_F(w, 0, m), NIB_F(w, 8, m), NIB_F(w, 16, m),
                                     NIB_F(w, 24, m)) +
                                dot4(hi, NIB_F(w, 4, m), NIB_F(w, 12, m), NIB_F(w, 20, m),
                                     NIB_F(w, 28, m));
                    }
                }
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][t] += d[r] * s[r];
            }
        }
    } else if (TYPE == RF_DEV_Q8_0 || TYPE == RF_KERNEL_Q8_0_SPLIT) {
        const int64_t e = u * 32;
        uint32_t q[R][8];
        float d[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            if (TYPE == RF_KERNEL_Q8_0_SPLIT) {
                const uint4 v0 = ((const uint4 *)rows[r])[2 * u];
                const uint4 v1 = ((const uint4 *)rows[r])[2 * u + 1];
                const uint32_t w8[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
#pragma unroll
                for (int k = 0; k < 8; k++) /* flip the sign bits: q + 128 as unsigned */
                    q[r][k] = w8[k] ^ 0x80808080u;
                d[r] = rf_half_to_float(((const uint16_t *)scales[r])[u]);
            } else {
                const uint8_t *b = rows[r] + u * RF_DEV_Q8_0_BYTES;
                d[r] = rf_half_to_float(rf_load_u16(b));
#pragma unroll
                for (int k = 0; k < 8; k++) /* flip the sign bits: q + 128 as unsigned */
                    q[r][k] = load_u32_2aligned(b + 2 + 4 * k) ^ 0x80808080u;
            }
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
                float s[R];
#pragma unroll
                for (int r = 0; r < R; r++)
                    s[r] = 0.0f;
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const float4 xv = load_x4(x, t * n_in + e + 4 * k);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const float m = 8388736.0f; /* 2^23 + 128 */
                        s[r] += dot4(xv, BYTE_F(q[r][k], 0, m), BYTE_F(q[r][k], 1, m),
                                     BYTE_F(q[r][k], 2, m), BYTE_F(q[r][k], 3, m));
                    }
                }
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][t] += d[r] * s[r];
            }
        }
    } else if (TYPE == RF_DEV_Q4_K) {
        /* Unit m of a super-block: qs bytes 16m..16m+15. Chunk c = m / 2 holds
         * sub-block 2c in low nibbles (elements 64c + l) and 2c + 1 in high
         * nibbles (64c + 32 + l), l = 16 (m % 2) + j. */
        const int64_t sb = u / 8;
        const int m_unit = (int)(u % 8), c = m_unit / 2;
        const int64_t e_lo = sb * 256 + 64 * c + 16 * (m_unit % 2), e_hi = e_lo + 32;
        uint4 qs[R];
        float dl0[R], ml0[R], dl1[R], ml1[R];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint8_t *b = rows[r] + sb * RF_DEV_Q4_K_BYTES;
            const uint4 head = *(const uint4 *)b;
            qs[r] = *(const uint4 *)(b + 16 + 16 * m_unit);
            const float d = rf_half_to_float((uint16_t)(head.x & 0xffffu));
            const float dmin = rf_half_to_float((uint16_t)(head.x >> 16));
            uint8_t s[12];
            const uint32_t sw[3] = {head.y, head.z, head.w};
#pragma unroll
            for (int i = 0; i < 12; i++)
                s[i] = (uint8_t)(sw[i / 4] >> (8 * (i % 4)));
            int sc[2], mn[2];
#pragma unroll
            for (int k = 0; k < 2; k++) {
                const int sub = 2 * c + k;
                if (sub < 4) {
                    sc[k] = s[sub] & 63;
                    mn[k] = s[sub + 4] & 63;
                } else {
                    sc[k] = (s[sub + 4] & 15) | (s[sub - 4] >> 6) << 4;
                    mn[k] = (s[sub + 4] >> 4) | (s[sub] >> 6) << 4;
                }
            }
            dl0[r] = d * (float)sc[0];
            ml0[r] = dmin * (float)mn[0];
            dl1[r] = d * (float)sc[1];
            ml1[r] = dmin * (float)mn[1];
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
                float slo[R], shi[R], xlo = 0.0f, xhi = 0.0f;
#pragma unroll
                for (int r = 0; r < R; r++)
                    slo[r] = shi[r] = 0.0f;
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    const float4 lo = load_x4(x, t * n_in + e_lo + 4 * k);
                    const float4 hi = load_x4(x, t * n_in + e_hi + 4 * k);
                    xlo += sum4(lo);
                    xhi += sum4(hi);
#pragma unroll
                    for (int r = 0; r < R; r++) {
                        const uint32_t w = k == 0 ? qs[r].x : k == 1 ? qs[r].y
                                         : k == 2 ? qs[r].z : qs[r].w;
                        const float m = 8388608.0f;
                        slo[r] += dot4(lo, NIB_F(w, 0, m), NIB_F(w, 8, m), NIB_F(w, 16, m),
                                       NIB_F(w, 24, m));
                        shi[r] += dot4(hi, NIB_F(w, 4, m), NIB_F(w, 12, m), NIB_F(w, 20, m),
                                       NIB_F(w, 28, m));
                    }
                }
#pragma unroll
                for (int r = 0; r < R; r++)
                    acc[r][t] += dl0[r] * slo[r] - ml0[r] * xlo + dl1[r] * shi[r] - ml1[r] * xhi;
            }
        }
    } else { /* Q6_K */
        /* Unit m of a super-block: half h = m / 4, l in [lg, lg + 8) with
         * lg = 8 (m % 4), all four runs: element h*128 + 32 run + l is
         * (ql[h*64 + 32 (run & 1) + l] nibble (run >= 2)) | (qh[h*32 + l]
         * bits 2 run) << 4, minus 32, times d * scales[h*8 + 2 run + lg/16]. */
        const int64_t sb = u / 8;
        const int m_unit = (int)(u % 8), h = m_unit / 4, lg = 8 * (m_unit % 4);
        const int64_t e0 = sb * 256 + 128 * h + lg;
        uint32_t qa[R][2], qb[R][2], qh[R][2];
        float ds[R][4];
#pragma unroll
        for (int r = 0; r < R; r++) {
            const uint8_t *b = rows[r] + sb * RF_DEV_Q6_K_BYTES;
            const float d = rf_half_to_float(rf_load_u16(b + RF_DEV_Q6_K_D));
#pragma unroll
            for (int k = 0; k < 2; k++) {
                qa[r][k] = load_u32_2aligned(b + 64 * h + lg + 4 * k);
                qb[r][k] = load_u32_2aligned(b + 64 * h + 32 + lg + 4 * k);
                qh[r][k] = load_u32_2aligned(b + RF_DEV_Q6_K_QH + 32 * h + lg + 4 * k);
            }
            const uint8_t *sc = b + RF_DEV_Q6_K_SCALES + 8 * h + lg / 16;
#pragma unroll
            for (int run = 0; run < 4; run++)
                ds[r][run] = d * (float)(int8_t)sc[2 * run];
        }
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            if (t < nt) {
#pragma unroll
                for (int run = 0; run < 4; run++) {
                    float s[R];
#pragma unroll
                    for (int r = 0; r < R; r++)
                        s[r] = 0.0f;
#pragma unroll
                    for (int k = 0; k < 2; k++) {
                        const float4 xv = load_x4(x, t * n_in + e0 + 32 * run + 4 * k);
#pragma unroll
                        for (int r = 0; r < R; r++) {
                            const uint32_t low_word = (run & 1) ? qb[r][k] : qa[r][k];
                            const int low_shift = run < 2 ? 0 : 4;
                            float v[4];
#pragma unroll
                            for (int i = 0; i < 4; i++) {
                                const uint32_t lo = (low_word >> (8 * i + low_shift)) & 15u;
                                const uint32_t hi = (qh[r][k] >> (8 * i + 2 * run)) & 3u;
                                v[i] = __uint_as_float(0x4b000000u | lo | hi << 4) - 8388640.0f;
                            }
                            s[r] += dot4(xv, v[0], v[1], v[2], v[3]);
                        }
                    }
#pragma unroll
                    for (int r = 0; r < R; r++)
                        acc[r][t] += ds[r][run] * s[r];
                }
            }
        }
    }
}

/* ---- the kernel ----------------------------------------------------------- */

/* Output rows per block: two or four, eight for Q4_0 / Q8_0 at one or two
 * tokens (their 32-element units are few per row, so a block of two rows
 * did little work and reloaded the activations for every two rows). */
template <int TYPE, int MAXT>
struct gemv_rows {
    static constexpr bool q32 = TYPE == RF_DEV_Q4_0 || TYPE == RF_DEV_Q8_0 ||
                                TYPE == RF_KERNEL_Q4_0_SPLIT || TYPE == RF_KERNEL_Q8_0_SPLIT;
    static constexpr int value = MAXT <= 2 ? (q32 ? 8 : 2) : 4;
};

/* The matrices of one launch: blocks first_block[k] .. first_block[k+1]-1
 * compute matrix k (one matrix for a plain matmul). */
struct gemv_set {
    const uint8_t *w[RF_MATMUL_MAX_SET];
    float *y[RF_MATMUL_MAX_SET];
    const float *bias[RF_MATMUL_MAX_SET];
    int64_t n_out[RF_MATMUL_MAX_SET];
    unsigned first_block[RF_MATMUL_MAX_SET + 1];
    int n;
};

template <int TYPE, bool VEC, int MAXT>
__global__ void __launch_bounds__(GEMV_THREADS)
gemv_kernel(const gemv_set set, int64_t row_bytes, const float *x, int64_t n_in, int nt)
{
    constexpr int R = gemv_rows<TYPE, MAXT>::value;
    constexpr int UNIT = unit_traits<TYPE, VEC>::elems;
    constexpr int WARPS = GEMV_THREADS / RF_WARP_SIZE;
    __shared__ float partial[WARPS][R][MAXT];

    int m = 0;
#pragma unroll
    for (int k = 1; k < RF_MATMUL_MAX_SET; k++)
        if (k < set.n && blockIdx.x >= set.first_block[k])
            m = k;
    const uint8_t *weight = set.w[m];
    float *y = set.y[m];
    const float *bias = set.bias[m];
    const int64_t n_out = set.n_out[m];
    const int64_t row0 = (int64_t)(blockIdx.x - set.first_block[m]) * R;
    /* Split layouts: the scales follow every row's quants, 2 bytes a block. */
    const uint8_t *scale_base = weight + n_out * row_bytes;
    const int64_t scale_row = n_in / 32 * 2;
    const uint8_t *rows[R], *scales[R];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int64_t row = row0 + r < n_out ? row0 + r : n_out - 1; /* clamp, never written */
        rows[r] = weight + row * row_bytes;
        scales[r] = scale_base + row * scale_row;
    }
    float acc[R][MAXT];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < MAXT; t++)
            acc[r][t] = 0.0f;

    const int64_t n_units = n_in / UNIT;
    for (int64_t u = threadIdx.x; u < n_units; u += blockDim.x)
        unit_dot<TYPE, VEC, MAXT, R>(rows, scales, u, x, n_in, nt, acc);

    const int lane = threadIdx.x % RF_WARP_SIZE, warp = threadIdx.x / RF_WARP_SIZE;
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < MAXT; t++) {
            const float v = rf_warp_sum(acc[r][t]);
            if (lane == 0)
                partial[warp][r][t] = v;
        }
    __syncthreads();
    if (threadIdx.x < R * MAXT) {
        const int r = threadIdx.x / MAXT, t = threadIdx.x % MAXT;
        const int64_t row = row0 + r;
        if (t < nt && row < n_out) {
            float sum = 0.0f;
            for (int w = 0; w < WARPS; w++)
                sum += partial[w][r][t];
            if (bias != NULL)
                sum += bias[row];
            y[(int64_t)t * n_out + row] = sum;
        }
    }
}

/* ---- launcher ------------------------------------------------------------- */

template <int TYPE, bool VEC, int MAXT>
static void launch_rows(gemv_set set, int64_t row_bytes, const float *x, int64_t n_in, int nt,
                        hipStream_t s)
{
    const int64_t rows_per_block = gemv_rows<TYPE, MAXT>::value;
    unsigned blocks = 0;
    for (int k = 0; k < set.n; k++) {
        set.first_block[k] = blocks;
        blocks += (unsigned)((set.n_out[k] + rows_per_block - 1) / rows_per_block);
    }
    set.first_block[set.n] = blocks;
    gemv_kernel<TYPE, VEC, MAXT><<<dim3(blocks), GEMV_THREADS, 0, s>>>(set, row_bytes, x, n_in,
                                                                        nt);
}

template <int TYPE, bool VEC>
static int launch_group(const gemv_set &set, int64_t row_bytes, const float *x, int64_t n_in,
                        int nt, hipStream_t s)
{
    if (nt == 1)
        launch_rows<TYPE, VEC, 1>(set, row_bytes, x, n_in, nt, s);
    else if (nt == 2)
        launch_rows<TYPE, VEC, 2>(set, row_bytes, x, n_in, nt, s);
    else if (nt <= 4)
        launch_rows<TYPE, VEC, 4>(set, row_bytes, x, n_in, nt, s);
    else
        launch_rows<TYPE, VEC, 8>(set, row_bytes, x, n_in, nt, s);
    RF_GPU_CHECK_LAUNCH();
    return 0;
}

template <int TYPE, bool VEC>
static int launch_all(const gemv_set &set, int64_t row_bytes, const float *x, int64_t n_in,
                      int n_tokens, hipStream_t s)
{
    for (int t0 = 0; t0 < n_tokens; t0 += GEMV_MAX_TOKENS) {
        const int nt = n_tokens - t0 < GEMV_MAX_TOKENS ? n_tokens - t0 : GEMV_MAX_TOKENS;
        gemv_set group = set;
        for (int k = 0; k < set.n; k++)
            group.y[k] = set.y[k] + (int64_t)t0 * set.n_out[k];
        int rc = launch_group<TYPE, VEC>(group, row_bytes, x + (int64_t)t0 * n_in, n_in, nt, s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static bool aligned16(const void *p)
{
    return ((uintptr_t)p & 15u) == 0;
}

/* Checks the set, then launches it: every matrix of one type and n_in. */
static int matmul_set(int type, const gemv_set &set, const float *x, int64_t n_in, int n_tokens,
                      hipStream_t s)
{
    if (x == NULL || n_in <= 0 || n_tokens < 0 || set.n < 1 || set.n > RF_MATMUL_MAX_SET)
        return RF_KERNEL_EINVAL;
    bool w_aligned = true, w_even = true;
    int64_t blocks = 0;
    for (int k = 0; k < set.n; k++) {
        if (set.w[k] == NULL || set.y[k] == NULL || set.n_out[k] <= 0 ||
            set.n_out[k] > ((int64_t)1 << 32))
            return RF_KERNEL_EINVAL;
        w_aligned = w_aligned && aligned16(set.w[k]);
        w_even = w_even && ((uintptr_t)set.w[k] & 1u) == 0;
        blocks += (set.n_out[k] + 1) / 2;
    }
    if (blocks > 0x7fffffff)
        return RF_KERNEL_EINVAL;
    const bool x_vec = aligned16(x) && n_in % 4 == 0;
    switch (type) {
    case RF_DEV_F32:
    case RF_DEV_F16:
    case RF_DEV_BF16:
        break;
    case RF_DEV_Q8_0:
    case RF_DEV_Q4_0:
        if (n_in % 32 != 0 || !x_vec || !w_even)
            return RF_KERNEL_EINVAL;
        break;
    case RF_KERNEL_Q4_0_SPLIT:
    case RF_KERNEL_Q8_0_SPLIT:
        if (n_in % 32 != 0 || !x_vec || !w_aligned)
            return RF_KERNEL_EINVAL;
        break;
    case RF_DEV_Q4_K:
    case RF_DEV_Q6_K:
        if (n_in % RF_DEV_QK_K != 0 || !x_vec)
            return RF_KERNEL_EINVAL;
        if (type == RF_DEV_Q4_K ? !w_aligned : !w_even)
            return RF_KERNEL_EINVAL;
        break;
    default:
        return RF_KERNEL_EUNSUPPORTED;
    }
    if (n_tokens == 0)
        return 0;
    switch (type) {
    case RF_DEV_F32:
        if (x_vec && w_aligned)
            return launch_all<RF_DEV_F32, true>(set, n_in * 4, x, n_in, n_tokens, s);
        return launch_all<RF_DEV_F32, false>(set, n_in * 4, x, n_in, n_tokens, s);
    case RF_DEV_F16:
        if (x_vec && n_in % 8 == 0 && w_aligned)
            return launch_all<RF_DEV_F16, true>(set, n_in * 2, x, n_in, n_tokens, s);
        return launch_all<RF_DEV_F16, false>(set, n_in * 2, x, n_in, n_tokens, s);
    case RF_DEV_BF16:
        if (x_vec && n_in % 8 == 0 && w_aligned)
            return launch_all<RF_DEV_BF16, true>(set, n_in * 2, x, n_in, n_tokens, s);
        return launch_all<RF_DEV_BF16, false>(set, n_in * 2, x, n_in, n_tokens, s);
    case RF_DEV_Q8_0:
        return launch_all<RF_DEV_Q8_0, true>(set, n_in / 32 * RF_DEV_Q8_0_BYTES, x, n_in,
                                             n_tokens, s);
    case RF_DEV_Q4_0:
        return launch_all<RF_DEV_Q4_0, true>(set, n_in / 32 * RF_DEV_Q4_0_BYTES, x, n_in,
                                             n_tokens, s);
    case RF_KERNEL_Q4_0_SPLIT:
        return launch_all<RF_KERNEL_Q4_0_SPLIT, true>(set, n_in / 32 * 16, x, n_in, n_tokens, s);
    case RF_KERNEL_Q8_0_SPLIT:
        return launch_all<RF_KERNEL_Q8_0_SPLIT, true>(set, n_in / 32 * 32, x, n_in, n_tokens, s);
    case RF_DEV_Q4_K:
        return launch_all<RF_DEV_Q4_K, true>(set, n_in / 256 * RF_DEV_Q4_K_BYTES, x, n_in,
                                             n_tokens, s);
    default:
        return launch_all<RF_DEV_Q6_K, true>(set, n_in / 256 * RF_DEV_Q6_K_BYTES, x, n_in,
                                             n_tokens, s);
    }
}

extern "C" int rf_kernel_matmul_f32(int type, const void *weight, const float *x, float *y,
                                    const float *bias, int64_t n_out, int64_t n_in, int n_tokens,
                                    rf_gpu_stream_t stream)
{
    gemv_set set = {};
    set.n = 1;
    set.w[0] = (const uint8_t *)weight;
    set.y[0] = y;
    set.bias[0] = bias;
    set.n_out[0] = n_out;
    return matmul_set(type, set, x, n_in, n_tokens, (hipStream_t)stream);
}

extern "C" int rf_kernel_matmul_set_f32(int type, int n_mats, const void *const *weights,
                                        float *const *ys, const float *const *biases,
                                        const int64_t *n_outs, const float *x, int64_t n_in,
                                        int n_tokens, rf_gpu_stream_t stream)
{
    if (n_mats < 1 || n_mats > RF_MATMUL_MAX_SET || weights == NULL || ys == NULL ||
        n_outs == NULL)
        return RF_KERNEL_EINVAL;
    gemv_set set = {};
    set.n = n_mats;
    for (int k = 0; k < n_mats; k++) {
        set.w[k] = (const uint8_t *)weights[k];
        set.y[k] = ys[k];
        set.bias[k] = biases != NULL ? biases[k] : NULL;
        set.n_out[k] = n_outs[k];
    }
    return matmul_set(type, set, x, n_in, n_tokens, (hipStream_t)stream);
}
