/* vecdot_internal.h - what vecdot.c and its per-ISA files share
 *
 * vecdot.c owns the scalar reference, the activation quantizers and the
 * dispatch table; vecdot_avx2.c and vecdot_avx512.c are compiled with their
 * ISA's flags and only ever called after rf_cpu_isa_supported() said yes.
 * Every function has the rf_cpu_vec_dot_fn signature and the same contract:
 * n a multiple of the weight type's block (the caller checked it), weight
 * and activation rows at any byte offset.
 */
#ifndef RF_CPU_VECDOT_INTERNAL_H
#define RF_CPU_VECDOT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "quant.h"
#include "vecdot.h"

/* Byte offsets inside a Q8_K activation block (292 bytes: float d, 256
 * int8 quants, 16 int16 sums). Blocks are read through these rather than
 * through the struct so a row may sit at any address. */
#define RF__Q8K_D 0
#define RF__Q8K_QS 4
#define RF__Q8K_BSUMS 260
#define RF__Q8K_SIZE 292

/* Byte offsets inside a Q8_0 block (34 bytes: fp16 d, 32 int8 quants). */
#define RF__Q8_0_QS 2
#define RF__Q8_0_SIZE 34

static inline float rf__load_f32(const uint8_t *p)
{
    float f;
    memcpy(&f, p, sizeof f);
    return f;
}

static inline uint16_t rf__load_u16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return h;
}

static inline float rf__load_fp16(const uint8_t *p)
{
    return rf_fp16_to_fp32(rf__load_u16(p));
}

/* IQ4_NL's 16 levels (IQ4_NL and IQ4_XS) and MXFP4's E2M1 values doubled
 * (ggml's kvalues_iq4nl and kvalues_mxfp4), defined in vecdot.c. */
extern const int8_t rf__cpu_kvalues_iq4nl[16];
extern const int8_t rf__cpu_kvalues_mxfp4[16];

/* Half MXFP4's E8M0 scale, 2^(e - 128), as quant.c decodes it (the values
 * above are doubled). e < 2 gives a binary32 subnormal, built from bits. */
static inline float rf__e8m0_half(uint8_t e)
{
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Q4_K/Q5_K's eight 6-bit scales and eight 6-bit mins from their 12 packed
 * bytes (layout described in quant_k.c). */
static inline void rf__unpack_scale_min_k4(const uint8_t s[RF_K_SCALE_SIZE], uint8_t scale[8],
                                           uint8_t min[8])
{
    for (int j = 0; j < 4; j++) {
        scale[j] = s[j] & 63;
        min[j] = s[j + 4] & 63;
        scale[j + 4] = (uint8_t)((s[j + 8] & 0x0f) | (s[j] >> 6) << 4);
        min[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

/* AVX2 + FMA + F16C (vecdot_avx2.c). */
float rf__vec_dot_f32_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_f16_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_bf16_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q4_0_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q4_1_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q5_0_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q5_1_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q8_0_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_iq4_nl_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_mxfp4_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q2_K_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q3_K_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q4_K_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q5_K_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_q6_K_avx2(int64_t n, const void *w, const void *act);
float rf__vec_dot_iq4_xs_avx2(int64_t n, const void *w, const void *act);

/* AVX-512 F/BW/VL + VNNI (vecdot_avx512.c). */
float rf__vec_dot_f16_avx512(int64_t n, const void *w, const void *act);
float rf__vec_dot_q4_0_avx512(int64_t n, const void *w, const void *act);
float rf__vec_dot_q8_0_avx512(int64_t n, const void *w, const void *act);
/* Q8_0 activations, byte for byte rf_quantize_row(RF_TYPE_Q8_0, ...); n a
 * multiple of 32 (the caller checked it). */
void rf__quantize_q8_0_avx512(const float *x, void *dst, int64_t n);
void rf__vec_dot_tile_f16_avx512(int64_t n, const void *w, size_t w_stride, int n_w,
                                 const void *act, size_t act_stride, int n_act, float *dst,
                                 size_t dst_stride);
void rf__vec_dot_tile_q4_0_avx512(int64_t n, const void *w, size_t w_stride, int n_w,
                                  const void *act, size_t act_stride, int n_act, float *dst,
                                  size_t dst_stride);
void rf__vec_dot_tile_q8_0_avx512(int64_t n, const void *w, size_t w_stride, int n_w,
                                  const void *act, size_t act_stride, int n_act, float *dst,
                                  size_t dst_stride);
void rf__packed_gemm_q4_0_avx512(int64_t n, const void *group, const void *act,
                                 size_t act_stride, int n_act, float *dst, size_t dst_stride,
                                 int n_rows);
void rf__packed_gemm_q8_0_avx512(int64_t n, const void *group, const void *act,
                                 size_t act_stride, int n_act, float *dst, size_t dst_stride,
                                 int n_rows);

#endif /* RF_CPU_VECDOT_INTERNAL_H */
