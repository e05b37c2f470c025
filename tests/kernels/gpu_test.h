/* gpu_test.h - helpers shared by the GPU kernel suites (header-only)
 *
 * Skipping with a reason when no device is present, a deterministic random
 * source, and device buffers that fail the current test on any error. Every
 * output buffer is poisoned with NaN (all bits set) before a kernel runs, so
 * an element the kernel never writes cannot match its reference.
 */
#ifndef RF_GPU_TEST_H
#define RF_GPU_TEST_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

static inline void gpu_test_require(const char *what)
{
    int n = 0;
    cr_assert_eq(rf_gpu_device_count(&n), 0);
    if (n == 0)
        cr_skip_test("no GPU device present: %s not checked", what);
    cr_assert_eq(rf_gpu_set_device(0), 0);
}

static uint64_t gpu_test_state = 0x9e3779b97f4a7c15ull;

static inline void gpu_test_seed(uint64_t seed)
{
    gpu_test_state = seed * 0x9e3779b97f4a7c15ull + 1;
}

static inline uint32_t gpu_test_u32(void)
{
    gpu_test_state = gpu_test_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(gpu_test_state >> 32);
}

/* Roughly normal, mean 0, standard deviation about 1. */
static inline float gpu_test_normal(void)
{
    float s = 0;
    for (int i = 0; i < 4; i++)
        s += (float)(gpu_test_u32() >> 8) / 16777216.0f - 0.5f;
    return s * 1.7320508f;
}

static inline float *gpu_test_random(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    cr_assert_not_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = gpu_test_normal() * scale;
    return p;
}

/* A device copy of host memory. */
static inline void *gpu_test_upload(const void *host, size_t bytes)
{
    void *d = NULL;
    cr_assert_eq(rf_gpu_malloc(&d, bytes ? bytes : 1), 0);
    if (bytes)
        cr_assert_eq(rf_gpu_memcpy_h2d(d, host, bytes), 0);
    return d;
}

/* A device buffer filled with NaN. */
static inline void *gpu_test_poisoned(size_t bytes)
{
    void *d = NULL;
    cr_assert_eq(rf_gpu_malloc(&d, bytes ? bytes : 1), 0);
    cr_assert_eq(rf_gpu_memset(d, 0xff, bytes ? bytes : 1), 0);
    return d;
}

/* Wait for the device and copy a result back (malloc'ed). */
static inline void *gpu_test_download(const void *device, size_t bytes)
{
    cr_assert_eq(rf_gpu_sync(), 0);
    void *h = malloc(bytes ? bytes : 1);
    cr_assert_not_null(h);
    if (bytes)
        cr_assert_eq(rf_gpu_memcpy_d2h(h, device, bytes), 0);
    return h;
}

#endif /* RF_GPU_TEST_H */
