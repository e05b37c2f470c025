/* kernels.h - the C interface of the GPU kernels (HIP sources, extern "C")
 *
 * The engine sees the device only through this header: plain C types, no HIP
 * or CUDA headers. Device pointers are void *; a stream is an opaque
 * rf_gpu_stream_t (NULL is the default stream). Every function returns 0 or a
 * negative code below (RF_KERNEL_EGPU for a runtime failure, RF_KERNEL_ENOGPU
 * when no device is present) and, on failure, logs the runtime call, file and line to
 * stderr through RF_GPU_CHECK (kernels/gpu_check.h).
 *
 * Launchers are asynchronous on their stream; they check the launch, not the
 * kernel's completion: rf_gpu_sync() reports errors that surface later.
 */
#ifndef RF_KERNELS_H
#define RF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Return codes; the same values as engine/error.h's RF_EGPU, RF_ENOGPU and
 * RF_EUNSUPPORTED (the engine checks that with static asserts). */
#define RF_KERNEL_EGPU (-1009)
#define RF_KERNEL_ENOGPU (-1010)
#define RF_KERNEL_EUNSUPPORTED (-1007)
#define RF_KERNEL_EINVAL (-22)

typedef struct rf_gpu_stream *rf_gpu_stream_t;

typedef struct rf_gpu_info {
    char name[256];
    char platform[8];       /* "hip" or "cuda" */
    int warp_size;
    int multiprocessors;
    size_t total_memory;    /* bytes */
    int major, minor;       /* compute capability / gfx major.minor */
} rf_gpu_info_t;

/* ---- runtime (runtime.hip) ---- */

/* Number of usable devices in *out; 0 (and return 0) when there are none
 * or the driver is missing, so callers can skip GPU work with a reason. */
int rf_gpu_device_count(int *out);
int rf_gpu_set_device(int device);
int rf_gpu_device_info(int device, rf_gpu_info_t *out);
int rf_gpu_malloc(void **out, size_t bytes);
int rf_gpu_free(void *ptr); /* NULL is fine */
int rf_gpu_memcpy_h2d(void *dst, const void *src, size_t bytes);
int rf_gpu_memcpy_d2h(void *dst, const void *src, size_t bytes);
int rf_gpu_mem_info(size_t *free_bytes, size_t *total_bytes); /* current device */
int rf_gpu_memset(void *dst, int value, size_t bytes);
int rf_gpu_sync(void); /* wait for the device; reports asynchronous errors */

/* ---- dequantize (dequantize.hip) ---- */

/* Dequantize n elements (a multiple of the type's block size) of ggml type
 * `type` from device memory src to float32 device memory dst. Supported:
 * F16, BF16, Q8_0, Q4_0; anything else returns RF_KERNEL_EUNSUPPORTED,
 * and an n that is not a multiple of the block size RF_KERNEL_EINVAL. */
int rf_kernel_dequantize_f32(int type, const void *src, float *dst, int64_t n,
                             rf_gpu_stream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* RF_KERNELS_H */
