/* quant.h - tensor element types, quant block layouts, reference (de)quantizers
 *
 * Type ids are ggml's (GGUF stores them), so a tensor's type in a file maps
 * straight to rf_type_t. Block structs copy ggml's layouts byte for byte;
 * quant.c holds a static_assert on each size. Every type ggml defines has
 * traits (name, elements per block, bytes per block) so files that use types
 * we cannot compute with can still be inspected; rf_type_can_dequantize()
 * and rf_type_can_quantize() say what the reference code supports.
 *
 * The dequantizers and quantizers here are scalar C: the reference every
 * SIMD and GPU kernel is compared with.
 */
#ifndef RF_QUANT_H
#define RF_QUANT_H

#include <stdbool.h>
#include <stdint.h>

/* ggml type ids; gaps are ids ggml has retired. */
typedef enum rf_type {
    RF_TYPE_F32 = 0,
    RF_TYPE_F16 = 1,
    RF_TYPE_Q4_0 = 2,
    RF_TYPE_Q4_1 = 3,
    RF_TYPE_Q5_0 = 6,
    RF_TYPE_Q5_1 = 7,
    RF_TYPE_Q8_0 = 8,
    RF_TYPE_Q8_1 = 9,
    RF_TYPE_Q2_K = 10,
    RF_TYPE_Q3_K = 11,
    RF_TYPE_Q4_K = 12,
    RF_TYPE_Q5_K = 13,
    RF_TYPE_Q6_K = 14,
    RF_TYPE_Q8_K = 15,
    RF_TYPE_IQ2_XXS = 16,
    RF_TYPE_IQ2_XS = 17,
    RF_TYPE_IQ3_XXS = 18,
    RF_TYPE_IQ1_S = 19,
    RF_TYPE_IQ4_NL = 20,
    RF_TYPE_IQ3_S = 21,
    RF_TYPE_IQ2_S = 22,
    RF_TYPE_IQ4_XS = 23,
    RF_TYPE_I8 = 24,
    RF_TYPE_I16 = 25,
    RF_TYPE_I32 = 26,
    RF_TYPE_I64 = 27,
    RF_TYPE_F64 = 28,
    RF_TYPE_IQ1_M = 29,
    RF_TYPE_BF16 = 30,
    RF_TYPE_TQ1_0 = 34,
    RF_TYPE_TQ2_0 = 35,
    RF_TYPE_MXFP4 = 39,
    RF_TYPE_COUNT = 40 /* one past the largest id */
} rf_type_t;

#define RF_QK4_0 32
#define RF_QK4_1 32
#define RF_QK5_0 32
#define RF_QK5_1 32
#define RF_QK8_0 32
#define RF_QK_NL 32     /* IQ4_NL */
#define RF_QK_MXFP4 32
#define RF_QK_K 256     /* super-block of the K quants and IQ4_XS */
#define RF_K_SCALE_SIZE 12

/* Half floats are stored as their bit patterns. */
typedef uint16_t rf_fp16_t;
typedef uint16_t rf_bf16_t;

typedef struct { rf_fp16_t d; uint8_t qs[RF_QK4_0 / 2]; } rf_block_q4_0;
typedef struct { rf_fp16_t d, m; uint8_t qs[RF_QK4_1 / 2]; } rf_block_q4_1;
typedef struct { rf_fp16_t d; uint8_t qh[4]; uint8_t qs[RF_QK5_0 / 2]; } rf_block_q5_0;
typedef struct { rf_fp16_t d, m; uint8_t qh[4]; uint8_t qs[RF_QK5_1 / 2]; } rf_block_q5_1;
typedef struct { rf_fp16_t d; int8_t qs[RF_QK8_0]; } rf_block_q8_0;

typedef struct {
    uint8_t scales[RF_QK_K / 16]; /* 4-bit scale (low) and min (high) per 16 */
    uint8_t qs[RF_QK_K / 4];      /* 2-bit quants */
    rf_fp16_t d, dmin;
} rf_block_q2_K;

typedef struct {
    uint8_t hmask[RF_QK_K / 8];  /* high bit of each 3-bit quant */
    uint8_t qs[RF_QK_K / 4];     /* low 2 bits */
    uint8_t scales[12];          /* 16 6-bit scales, packed */
    rf_fp16_t d;
} rf_block_q3_K;

typedef struct {
    rf_fp16_t d, dmin;
    uint8_t scales[RF_K_SCALE_SIZE]; /* 8 6-bit scales and 8 6-bit mins */
    uint8_t qs[RF_QK_K / 2];
} rf_block_q4_K;

typedef struct {
    rf_fp16_t d, dmin;
    uint8_t scales[RF_K_SCALE_SIZE];
    uint8_t qh[RF_QK_K / 8];
    uint8_t qs[RF_QK_K / 2];
} rf_block_q5_K;

typedef struct {
    uint8_t ql[RF_QK_K / 2];      /* low 4 bits */
    uint8_t qh[RF_QK_K / 4];      /* high 2 bits */
    int8_t scales[RF_QK_K / 16];  /* 8-bit scale per 16 */
    rf_fp16_t d;
} rf_block_q6_K;

typedef struct { rf_fp16_t d; uint8_t qs[RF_QK_NL / 2]; } rf_block_iq4_nl;

typedef struct {
    rf_fp16_t d;
    uint16_t scales_h;
    uint8_t scales_l[RF_QK_K / 64];
    uint8_t qs[RF_QK_K / 2];
} rf_block_iq4_xs;

typedef struct { uint8_t e; uint8_t qs[RF_QK_MXFP4 / 2]; } rf_block_mxfp4; /* e: E8M0 */

typedef struct rf_type_traits {
    const char *name;      /* ggml's name, upper case: "Q4_K", "F16" */
    uint32_t block_size;   /* elements per block (1 for plain types) */
    uint32_t type_size;    /* bytes per block */
    bool can_dequantize;   /* rf_dequantize_row supports it */
    bool can_quantize;     /* rf_quantize_row supports it */
} rf_type_traits_t;

/* Traits of a type id, or NULL for an id ggml does not define. */
const rf_type_traits_t *rf_type_traits(int type);

/* Name of a type id; "?" for unknown ids (never NULL). */
const char *rf_type_name(int type);

/* Type id by name, case-insensitive ("q8_0", "F16"); -1 if unknown. */
int rf_type_from_name(const char *name);

/* Bytes of a row of n_elements of type. Returns 0, RF_EUNSUPPORTED for an
 * unknown id, RF_EFORMAT when n_elements is not a multiple of the block size,
 * RF_ERANGE on overflow. */
int rf_type_row_bytes(int type, uint64_t n_elements, uint64_t *out_bytes);

/* Half-precision conversions (round to nearest even; NaN stays NaN). */
float rf_fp16_to_fp32(rf_fp16_t h);
rf_fp16_t rf_fp32_to_fp16(float f);
float rf_bf16_to_fp32(rf_bf16_t h);
rf_bf16_t rf_fp32_to_bf16(float f);

/* Dequantize n elements (a multiple of the block size) from src to dst.
 * Returns 0, RF_EUNSUPPORTED if the type has no dequantizer, RF_EFORMAT if n
 * is not a multiple of the block size. */
int rf_dequantize_row(int type, const void *src, float *dst, int64_t n);

/* Quantize n elements (a multiple of the block size) from src into dst, with
 * the reference (round-to-nearest, no importance weights) quantizer of the type.
 * Returns 0, RF_EUNSUPPORTED or RF_EFORMAT as above. */
int rf_quantize_row(int type, const float *src, void *dst, int64_t n);

#endif /* RF_QUANT_H */
