/* test_dequantize_gpu.c - device dequantization against the C reference
 *
 * Skips (with the reason) when no GPU is present; never passes silently.
 * The device output is poisoned with NaN before each run so an element the
 * kernel fails to write cannot match.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels.h"
#include "quant.h"

_Static_assert(RF_KERNEL_EGPU == RF_EGPU, "kernel and engine codes agree");
_Static_assert(RF_KERNEL_ENOGPU == RF_ENOGPU, "kernel and engine codes agree");
_Static_assert(RF_KERNEL_EUNSUPPORTED == RF_EUNSUPPORTED, "kernel and engine codes agree");

static void require_gpu(void)
{
    int n = 0;
    cr_assert_eq(rf_gpu_device_count(&n), 0);
    if (n == 0)
        cr_skip_test("no GPU device present: device dequantization not checked");
    cr_assert_eq(rf_gpu_set_device(0), 0);
}

static uint64_t state = 0x1234567;

static float gaussianish(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        s += (float)(state >> 40) / 16777216.0f - 0.5f;
    }
    return s;
}

static void check_type(int type, int64_t n)
{
    const rf_type_traits_t *tr = rf_type_traits(type);
    uint64_t bytes = 0;
    cr_assert_eq(rf_type_row_bytes(type, (uint64_t)n, &bytes), 0);
    float *src = malloc((size_t)n * sizeof *src);
    float *want = malloc((size_t)n * sizeof *want);
    float *got = malloc((size_t)n * sizeof *got);
    void *packed = malloc(bytes);
    for (int64_t i = 0; i < n; i++)
        src[i] = gaussianish() * 3.0f;
    cr_assert_eq(rf_quantize_row(type, src, packed, n), 0);
    cr_assert_eq(rf_dequantize_row(type, packed, want, n), 0);

    void *d_src = NULL, *d_dst = NULL;
    cr_assert_eq(rf_gpu_malloc(&d_src, bytes), 0);
    cr_assert_eq(rf_gpu_malloc(&d_dst, (size_t)n * sizeof(float)), 0);
    cr_assert_eq(rf_gpu_memcpy_h2d(d_src, packed, bytes), 0);
    cr_assert_eq(rf_gpu_memset(d_dst, 0xff, (size_t)n * sizeof(float)), 0); /* NaN poison */
    cr_assert_eq(rf_kernel_dequantize_f32(type, d_src, d_dst, n, NULL), 0);
    cr_assert_eq(rf_gpu_sync(), 0);
    cr_assert_eq(rf_gpu_memcpy_d2h(got, d_dst, (size_t)n * sizeof(float)), 0);
    for (int64_t i = 0; i < n; i++)
        cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0,
                  "%s element %ld: gpu %g, reference %g", tr->name, (long)i, got[i], want[i]);
    rf_gpu_free(d_src);
    rf_gpu_free(d_dst);
    free(src);
    free(want);
    free(got);
    free(packed);
}

/* Sizes not a multiple of the 256-thread launch block exercise the tail. */
Test(dequantize_gpu, f16_matches_reference) { require_gpu(); check_type(RF_TYPE_F16, 1000003); }
Test(dequantize_gpu, bf16_matches_reference) { require_gpu(); check_type(RF_TYPE_BF16, 4099); }
Test(dequantize_gpu, q8_0_matches_reference) { require_gpu(); check_type(RF_TYPE_Q8_0, 32 * 31253); }
Test(dequantize_gpu, q4_0_matches_reference) { require_gpu(); check_type(RF_TYPE_Q4_0, 32 * 9); }

Test(dequantize_gpu, rejects_unsupported_and_ragged)
{
    require_gpu();
    void *d = NULL;
    cr_assert_eq(rf_gpu_malloc(&d, 4096), 0);
    cr_assert_eq(rf_kernel_dequantize_f32(RF_TYPE_IQ2_XXS, d, d, 256, NULL), RF_KERNEL_EUNSUPPORTED);
    cr_assert_eq(rf_kernel_dequantize_f32(RF_TYPE_Q8_0, d, d, 33, NULL), RF_KERNEL_EINVAL);
    rf_gpu_free(d);
}
