/* quant_internal.h - what quant.c and quant_k.c share and nobody else sees
 *
 * quant.c owns the type table and the row dispatch; quant_k.c holds the
 * 256-element super-block formats. The dispatcher copies every block out of
 * the caller's buffer into an rf__block before decoding it (and encodes into
 * one before copying it back), so the per-block functions below always see
 * a properly aligned struct even when a row sits at an odd file offset, and
 * they never need to check anything: the dispatcher has validated the type
 * and the element count, which is why they return void.
 */
#ifndef RF_QUANT_INTERNAL_H
#define RF_QUANT_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "quant.h"

/* One block of any format with a per-block codec. */
typedef union rf__block {
    rf_block_q4_0 q4_0;
    rf_block_q4_1 q4_1;
    rf_block_q5_0 q5_0;
    rf_block_q5_1 q5_1;
    rf_block_q8_0 q8_0;
    rf_block_q2_K q2_K;
    rf_block_q3_K q3_K;
    rf_block_q4_K q4_K;
    rf_block_q5_K q5_K;
    rf_block_q6_K q6_K;
    rf_block_iq4_nl iq4_nl;
    rf_block_iq4_xs iq4_xs;
    rf_block_mxfp4 mxfp4;
} rf__block;

/* Decode one block into its block_size floats. */
typedef void (*rf__dequantize_block_fn)(const rf__block *block, float *dst);
/* Encode block_size floats into one block; every byte of it is written. */
typedef void (*rf__quantize_block_fn)(const float *src, rf__block *block);

/* IQ4_NL's 16 non-uniform levels, shared by IQ4_NL and IQ4_XS. Sorted. */
extern const int8_t rf__kvalues_iq4nl[16];

/* Round to the nearest integer, ties to even (the rounding the K-quant
 * reference quantizers use), clamped to [lo, hi]. NaN maps to lo so that
 * garbage input yields a valid if meaningless block instead of undefined
 * behaviour from an out-of-range conversion. */
static inline int rf__round_clamp(float v, int lo, int hi)
{
    if (!(v > (float)lo))
        return lo;
    if (v >= (float)hi)
        return hi;
    return (int)nearbyintf(v);
}

/* Index of the IQ4_NL level nearest to v (v already divided by the scale). */
int rf__iq4nl_best_index(float v);

/* Scale for a group of n IQ4_NL-coded values: searches scales around the
 * ones that map the largest-magnitude element onto either outermost level,
 * refitting each by least squares for the levels it picks, and keeps the
 * one with the lowest squared error. Returns 0 for an all-zero group. */
float rf__iq4nl_fit_scale(const float *x, size_t n);

/* 256-element formats (quant_k.c). */
void rf__dequantize_q2_K(const rf__block *block, float *dst);
void rf__dequantize_q3_K(const rf__block *block, float *dst);
void rf__dequantize_q4_K(const rf__block *block, float *dst);
void rf__dequantize_q5_K(const rf__block *block, float *dst);
void rf__dequantize_q6_K(const rf__block *block, float *dst);
void rf__dequantize_iq4_xs(const rf__block *block, float *dst);

void rf__quantize_q2_K(const float *src, rf__block *block);
void rf__quantize_q3_K(const float *src, rf__block *block);
void rf__quantize_q4_K(const float *src, rf__block *block);
void rf__quantize_q5_K(const float *src, rf__block *block);
void rf__quantize_q6_K(const float *src, rf__block *block);
void rf__quantize_iq4_xs(const float *src, rf__block *block);

#endif /* RF_QUANT_INTERNAL_H */
