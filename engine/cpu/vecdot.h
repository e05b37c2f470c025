/* vecdot.h - dot products of quantized weight rows with activations (CPU)
 *
 * Matmuls on the CPU run on weights in their GGUF type. Activations are
 * quantized once per row of input to the type the weight's blocks multiply
 * with, as ggml does: Q8_0 blocks for the 32-element formats, Q8_K blocks for
 * the 256-element K-quants and IQ4_XS, and plain float32 for F32, F16 and
 * BF16 weights. One dot product is then integer work per block and one float
 * scale multiply, accumulated in float32.
 *
 * Each function has a scalar C implementation (the reference) and, where the
 * CPU has them, AVX2+FMA and AVX-512 versions chosen at run time; the tests
 * compare every SIMD path against the scalar one on random data.
 *
 * Weight and activation rows may sit at any byte offset (weights come
 * straight from an mmapped GGUF file); every block is read with unaligned
 * loads or memcpy. Q4_1 and Q5_1 take plain Q8_0 activations, not ggml's
 * Q8_1: the min term m * sum(y) uses the sum of the activation block's
 * quants, computed where it is used, which gives the same value.
 */
#ifndef RF_CPU_VECDOT_H
#define RF_CPU_VECDOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Activation block for the K-quants: one float scale per 256 values and the
 * sums of each 16 quants (the K-quant formats subtract mins with them). */
typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16];
} rf_block_q8_K;

typedef enum rf_cpu_isa {
    RF_CPU_SCALAR = 0,
    RF_CPU_AVX2 = 1,   /* AVX2 + FMA + F16C */
    RF_CPU_AVX512 = 2, /* AVX-512 F/BW/VL + VNNI (all required) */
    RF_CPU_ISA_COUNT
} rf_cpu_isa_t;

/* Best ISA this CPU supports, and whether a given one is usable: the CPU
 * has the instructions (cpuid) and the OS saves their registers (xgetbv).
 * RF_CPU_AVX512 needs F, BW, VL and VNNI; a CPU without VNNI gets AVX2. */
rf_cpu_isa_t rf_cpu_isa_best(void);
bool rf_cpu_isa_supported(rf_cpu_isa_t isa);
const char *rf_cpu_isa_name(rf_cpu_isa_t isa);

/* Activation type for a weight type: RF_TYPE_Q8_0, RF_TYPE_Q8_K or
 * RF_TYPE_F32; -1 if the weight type has no dot product. */
int rf_cpu_act_type(int weight_type);

/* Bytes of n activations in act_type (n a multiple of its block; a partial
 * block is not counted); 0 for another type or a negative n. */
size_t rf_cpu_act_row_bytes(int act_type, int64_t n);

/* Quantize n floats into act_type blocks (F32: copy) at dst, which holds
 * rf_cpu_act_row_bytes(act_type, n) bytes. Q8_0 is ggml's reference Q8_0
 * (fp16 scale, round half away from zero); Q8_K has a float scale amax / 127
 * and the sums of each 16 quants. Returns 0, RF_EUNSUPPORTED for another
 * act_type, RF_EFORMAT when n is negative or not a multiple of the block
 * (nothing written). */
int rf_cpu_quantize_act(int act_type, const float *x, void *dst, int64_t n);

/* Dot product of one weight row (n elements of weight_type) with an
 * activation row in rf_cpu_act_type(weight_type). n must be a multiple of
 * the weight type's block size (the caller checks it once per tensor); a
 * partial trailing block is ignored. */
typedef float (*rf_cpu_vec_dot_fn)(int64_t n, const void *w, const void *act);

/* The most weight rows and the most activation rows one tile call takes. */
#define RF_CPU_TILE_MAX 4

/* Dots of n_w weight rows (w_stride bytes apart) with n_act activation rows
 * (act_stride bytes apart), 1 <= n_w, n_act <= RF_CPU_TILE_MAX:
 * dst[a * dst_stride + i] = dot(weight row i, activation row a). A tile
 * decodes each weight block once for all its activation rows and loads each
 * activation block once for all its weight rows. Every output is computed
 * exactly as rf_cpu_vec_dot_get(weight_type, isa) computes it alone, bit for
 * bit, so a result never depends on the tile it was computed in. */
typedef void (*rf_cpu_vec_dot_tile_fn)(int64_t n, const void *w, size_t w_stride, int n_w,
                                       const void *act, size_t act_stride, int n_act, float *dst,
                                       size_t dst_stride);

/* The tile function matching rf_cpu_vec_dot_get(weight_type, isa); NULL
 * where that ISA level has none (callers then loop over the dot product). */
rf_cpu_vec_dot_tile_fn rf_cpu_vec_dot_tile_get(int weight_type, rf_cpu_isa_t isa);

/* The function for a weight type on an ISA (falling back to the best
 * implemented one not above isa, and never above what this CPU supports);
 * NULL if the type has no dot product or isa is out of range. */
rf_cpu_vec_dot_fn rf_cpu_vec_dot_get(int weight_type, rf_cpu_isa_t isa);

/* The ISA whose code rf_cpu_vec_dot_get(weight_type, isa) returns, so that
 * tests and logs can tell a SIMD path from a fallback; -1 where get is NULL. */
int rf_cpu_vec_dot_isa(int weight_type, rf_cpu_isa_t isa);

/* ------------------------------------------------------------------------
 * Packed weights (AVX-512: Q4_0 and Q8_0)
 *
 * A matrix of these types can be repacked once, at load time, into groups
 * of RF_CPU_PACK_ROWS rows whose quants are interleaved four bytes at a
 * time, so one 512-bit vpdpbusd multiplies 16 weight rows by four
 * activation quants and every output stays in its own float lane: the
 * float step costs one multiply and one fma per block for 16 rows, instead
 * of per row. Activations for packed weights are prepared per row too
 * (rf_cpu_quantize_packed_act: Q8_0 quants, float scales and each block's
 * offset term).
 *
 * Every output is computed exactly as rf_cpu_vec_dot_get(type,
 * RF_CPU_AVX512) computes it from the unpacked row and Q8_0 activations,
 * bit for bit: both sum each block exactly in int32 (s) and then run one
 * float chain per output, acc = fmaf((float)s * dy, dw, acc), block by block.
 * ------------------------------------------------------------------------ */

/* Rows per packed group, and the most activation rows one gemm call takes. */
#define RF_CPU_PACK_ROWS 16
#define RF_CPU_PACK_ACT_MAX 8

/* Whether weight_type has a packed layout and kernel on isa (clamped to
 * this CPU like rf_cpu_vec_dot_get). */
bool rf_cpu_pack_supported(int weight_type, rf_cpu_isa_t isa);

/* Bytes of one packed group of n-element rows (n a multiple of 32): each
 * group starts 64-byte aligned when the first one does. 0: no packed
 * layout for the type. */
size_t rf_cpu_pack_group_bytes(int weight_type, int64_t n);

/* Pack n_rows rows (w_stride bytes apart) into ceil(n_rows / 16) groups at
 * dst; missing rows of the last group are zero (their outputs are 0 and
 * never stored). Returns 0, or RF_EUNSUPPORTED for a type without a packed
 * layout, RF_EFORMAT when n is not a positive multiple of 32. */
int rf_cpu_pack_rows(int weight_type, int64_t n, int64_t n_rows, const void *w,
                     size_t w_stride, void *dst);

/* Bytes of one prepared activation row for packed weight_type (a multiple
 * of 64); 0 for a type without a packed layout. */
size_t rf_cpu_packed_act_row_bytes(int weight_type, int64_t n);

/* Quantize n floats (a multiple of 32) as rf_cpu_quantize_act(RF_TYPE_Q8_0)
 * does and lay them out for packed weight_type's kernel at dst
 * (rf_cpu_packed_act_row_bytes bytes). Returns 0, RF_EUNSUPPORTED or
 * RF_EFORMAT as rf_cpu_pack_rows does. */
int rf_cpu_quantize_packed_act(int weight_type, const float *x, void *dst, int64_t n);

/* dst[a * dst_stride + i] = dot(row i of the group, activation row a) for
 * i < n_rows (<= RF_CPU_PACK_ROWS) and a < n_act (1..RF_CPU_PACK_ACT_MAX),
 * activation rows act_stride bytes apart. */
typedef void (*rf_cpu_packed_gemm_fn)(int64_t n, const void *group, const void *act,
                                      size_t act_stride, int n_act, float *dst,
                                      size_t dst_stride, int n_rows);

/* The kernel for packed weight_type on isa; NULL where there is none. */
rf_cpu_packed_gemm_fn rf_cpu_packed_gemm_get(int weight_type, rf_cpu_isa_t isa);

/* Which weight types have a dot product (for error messages and tests). */
bool rf_cpu_vec_dot_supported(int weight_type);

#endif /* RF_CPU_VECDOT_H */
