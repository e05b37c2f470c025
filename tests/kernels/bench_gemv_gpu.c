/* bench_gemv_gpu.c - GEMV bandwidth at Llama-3-8B shapes against the copy roofline
 *
 * Not a test: prints, per weight type and shape, the time of one
 * rf_kernel_matmul_f32 call and the weight bytes it reads per second, as a
 * fraction of the device's measured copy bandwidth (a 1 GiB device-to-device
 * copy, read plus written bytes). Weights rotate among enough copies to
 * exceed the L2 cache several times and hold random finite values (zeros
 * could flatter the speed). A round is many back-to-back launches between
 * two device synchronisations, timed on the host; the median of 7 rounds is
 * reported, so launch overhead counts only where a call is shorter than a
 * launch (no graph capture here).
 *
 *   bench_gemv_gpu [n_tokens]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

#define CHECK(call)                                                                 \
    do {                                                                            \
        int rc_ = (call);                                                           \
        if (rc_ != 0) {                                                             \
            fprintf(stderr, "bench_gemv_gpu: %s returned %d (line %d)\n", #call, rc_, \
                    __LINE__);                                                      \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Random bytes whose every 16-bit half is a finite, modest fp16/bf16 value. */
static void fill_random(void *device, size_t bytes, uint64_t seed)
{
    const size_t chunk = (size_t)64 << 20;
    uint32_t *host = malloc(chunk);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (size_t i = 0; i < chunk / 4; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        host[i] = (uint32_t)s & 0x3bff3bffu;
    }
    for (size_t off = 0; off < bytes; off += chunk)
        CHECK(rf_gpu_memcpy_h2d((uint8_t *)device + off, host,
                                bytes - off < chunk ? bytes - off : chunk));
    free(host);
}

typedef struct type_info {
    int id;
    const char *name;
    int block_elems, block_bytes;
} type_info_t;

int main(int argc, char **argv)
{
    const int n_tokens = argc > 1 ? atoi(argv[1]) : 1;
    int n_dev = 0;
    CHECK(rf_gpu_device_count(&n_dev));
    if (n_dev == 0) {
        printf("no GPU device present: nothing measured\n");
        return 0;
    }
    CHECK(rf_gpu_set_device(0));
    rf_gpu_info_t info;
    CHECK(rf_gpu_device_info(0, &info));

    const size_t copy_bytes = (size_t)1 << 30;
    void *src, *dst;
    CHECK(rf_gpu_malloc(&src, copy_bytes));
    CHECK(rf_gpu_malloc(&dst, copy_bytes));
    fill_random(src, copy_bytes, 1);
    double rounds[7];
    for (int i = 0; i < 2; i++)
        CHECK(rf_gpu_memcpy_d2d(dst, src, copy_bytes, NULL));
    CHECK(rf_gpu_sync());
    for (int r = 0; r < 7; r++) {
        double t0 = now_s();
        for (int i = 0; i < 5; i++)
            CHECK(rf_gpu_memcpy_d2d(dst, src, copy_bytes, NULL));
        CHECK(rf_gpu_sync());
        rounds[r] = (now_s() - t0) / 5;
    }
    qsort(rounds, 7, sizeof rounds[0], cmp_double);
    const double copy_gbs = 2.0 * (double)copy_bytes / rounds[3] / 1e9;
    CHECK(rf_gpu_free(src));
    CHECK(rf_gpu_free(dst));
    printf("device: %s (%d SMs, warp %d); copy bandwidth %.0f GB/s (read+write, 1 GiB d2d)\n",
           info.name, info.multiprocessors, info.warp_size, copy_gbs);
    printf("n_tokens %d\n", n_tokens);
    printf("%-5s %6s x %-6s %9s %9s %8s %8s\n", "type", "n_out", "n_in", "MB", "us/call",
           "GB/s", "of copy");

    static const type_info_t types[] = {
        {1, "F16", 1, 2}, {30, "BF16", 1, 2}, {8, "Q8_0", 32, 34}, {2, "Q4_0", 32, 18},
        {12, "Q4_K", 256, 144}, {14, "Q6_K", 256, 210}, {0, "F32", 1, 4},
    };
    static const int64_t shapes[][2] = {{4096, 4096}, {14336, 4096}, {4096, 14336},
                                        {128256, 4096}};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const type_info_t *ty = &types[ti];
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int64_t n_out = shapes[si][0], n_in = shapes[si][1];
            if (ty->id == 0 && n_out > 14336)
                continue;
            const size_t bytes = (size_t)(n_out * n_in / ty->block_elems * ty->block_bytes);
            const size_t stride = (bytes + 255) / 256 * 256;
            size_t copies = ((size_t)400 << 20) / stride + 1;
            if (copies < 2)
                copies = 2;
            if (copies > 64)
                copies = 64;
            void *w, *x, *y;
            CHECK(rf_gpu_malloc(&w, stride * copies));
            CHECK(rf_gpu_malloc(&x, (size_t)n_tokens * (size_t)n_in * 4));
            CHECK(rf_gpu_malloc(&y, (size_t)n_tokens * (size_t)n_out * 4));
            fill_random(w, stride * copies, 7);
            fill_random(x, (size_t)n_tokens * (size_t)n_in * 4, 9);
            const int reps = bytes > ((size_t)200 << 20) ? 20 : 200;
            for (int i = 0; i < 10; i++)
                CHECK(rf_kernel_matmul_f32(ty->id, (uint8_t *)w + (size_t)i % copies * stride,
                                           x, y, NULL, n_out, n_in, n_tokens, NULL));
            CHECK(rf_gpu_sync());
            for (int r = 0; r < 7; r++) {
                double t0 = now_s();
                for (int i = 0; i < reps; i++)
                    CHECK(rf_kernel_matmul_f32(ty->id,
                                               (uint8_t *)w + (size_t)i % copies * stride, x, y,
                                               NULL, n_out, n_in, n_tokens, NULL));
                CHECK(rf_gpu_sync());
                rounds[r] = (now_s() - t0) / reps;
            }
            qsort(rounds, 7, sizeof rounds[0], cmp_double);
            const double gbs = (double)bytes / rounds[3] / 1e9;
            printf("%-5s %6ld x %-6ld %9.1f %9.2f %8.0f %7.1f%%\n", ty->name, (long)n_out,
                   (long)n_in, (double)bytes / 1e6, rounds[3] * 1e6, gbs, 100.0 * gbs / copy_gbs);
            CHECK(rf_gpu_free(w));
            CHECK(rf_gpu_free(x));
            CHECK(rf_gpu_free(y));
        }
    }
    return 0;
}
