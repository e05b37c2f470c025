/* runtime.hip - device discovery, memory and synchronisation for the engine
 *
 * Thin extern "C" wrappers so the engine never includes a GPU header. Every
 * call is checked with RF_GPU_CHECK.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpu_check.h"
#include "hip_compat.h"
#include "kernels.h"

extern "C" int rf_gpu_device_count(int *out)
{
    int n = 0;
    hipError_t status = hipGetDeviceCount(&n);
    if (status == hipErrorNoDevice || status == hipErrorInsufficientDriver) {
        (void)hipGetLastError(); /* clear the sticky "no device" status */
        *out = 0;
        return 0;
    }
    RF_GPU_CHECK(status);
    *out = n;
    return 0;
}

extern "C" int rf_gpu_set_device(int device)
{
    RF_GPU_CHECK(hipSetDevice(device));
    return 0;
}

extern "C" int rf_gpu_device_info(int device, rf_gpu_info_t *out)
{
    hipDeviceProp_t prop;
    RF_GPU_CHECK(hipGetDeviceProperties(&prop, device));
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    snprintf(out->platform, sizeof out->platform, "%s", RF_PLATFORM_NAME);
    out->warp_size = prop.warpSize;
    out->multiprocessors = prop.multiProcessorCount;
    out->total_memory = prop.totalGlobalMem;
    out->major = prop.major;
    out->minor = prop.minor;
    return 0;
}

extern "C" int rf_gpu_malloc(void **out, size_t bytes)
{
    *out = NULL;
    RF_GPU_CHECK(hipMalloc(out, bytes));
    return 0;
}

extern "C" int rf_gpu_free(void *ptr)
{
    if (ptr != NULL)
        RF_GPU_CHECK(hipFree(ptr));
    return 0;
}

extern "C" int rf_gpu_memcpy_h2d(void *dst, const void *src, size_t bytes)
{
    RF_GPU_CHECK(hipMemcpy(dst, src, bytes, hipMemcpyHostToDevice));
    return 0;
}

extern "C" int rf_gpu_memcpy_d2h(void *dst, const void *src, size_t bytes)
{
    RF_GPU_CHECK(hipMemcpy(dst, src, bytes, hipMemcpyDeviceToHost));
    return 0;
}

extern "C" int rf_gpu_mem_info(size_t *free_bytes, size_t *total_bytes)
{
    RF_GPU_CHECK(hipMemGetInfo(free_bytes, total_bytes));
    return 0;
}

extern "C" int rf_gpu_memset(void *dst, int value, size_t bytes)
{
    RF_GPU_CHECK(hipMemset(dst, value, bytes));
    return 0;
}

extern "C" int rf_gpu_sync(void)
{
    RF_GPU_CHECK(hipDeviceSynchronize());
    return 0;
}

/* ---- streams, pinned memory, graphs ---- */

extern "C" int rf_gpu_stream_create(rf_gpu_stream_t *out)
{
    hipStream_t s;
    RF_GPU_CHECK(hipStreamCreate(&s));
    *out = (rf_gpu_stream_t)s;
    return 0;
}

extern "C" int rf_gpu_stream_destroy(rf_gpu_stream_t stream)
{
    if (stream != NULL)
        RF_GPU_CHECK(hipStreamDestroy((hipStream_t)stream));
    return 0;
}

extern "C" int rf_gpu_stream_sync(rf_gpu_stream_t stream)
{
    RF_GPU_CHECK(hipStreamSynchronize((hipStream_t)stream));
    return 0;
}

extern "C" int rf_gpu_memcpy_h2d_async(void *dst, const void *src, size_t bytes,
                                       rf_gpu_stream_t stream)
{
    if (bytes == 0)
        return 0;
    RF_GPU_CHECK(hipMemcpyAsync(dst, src, bytes, hipMemcpyHostToDevice, (hipStream_t)stream));
    return 0;
}

extern "C" int rf_gpu_memcpy_d2h_async(void *dst, const void *src, size_t bytes,
                                       rf_gpu_stream_t stream)
{
    if (bytes == 0)
        return 0;
    RF_GPU_CHECK(hipMemcpyAsync(dst, src, bytes, hipMemcpyDeviceToHost, (hipStream_t)stream));
    return 0;
}

extern "C" int rf_gpu_host_alloc(void **out, size_t bytes)
{
    *out = NULL;
    RF_GPU_CHECK(hipHostMalloc(out, bytes, hipHostMallocDefault));
    return 0;
}

extern "C" int rf_gpu_host_free(void *ptr)
{
    if (ptr != NULL)
        RF_GPU_CHECK(hipHostFree(ptr));
    return 0;
}

struct rf_gpu_graph {
    hipGraphExec_t exec;
};

extern "C" int rf_gpu_capture_begin(rf_gpu_stream_t stream)
{
    RF_GPU_CHECK(hipStreamBeginCapture((hipStream_t)stream, hipStreamCaptureModeThreadLocal));
    return 0;
}

extern "C" int rf_gpu_capture_end(rf_gpu_stream_t stream, rf_gpu_graph_t *out)
{
    *out = NULL;
    hipGraph_t graph;
    RF_GPU_CHECK(hipStreamEndCapture((hipStream_t)stream, &graph));
    rf_gpu_graph_t g = (rf_gpu_graph_t)calloc(1, sizeof *g);
    if (g == NULL) {
        hipGraphDestroy(graph);
        return RF_KERNEL_EINVAL;
    }
    hipError_t rc = hipGraphInstantiate(&g->exec, graph, NULL, NULL, 0);
    hipGraphDestroy(graph);
    if (rc != hipSuccess) {
        fprintf(stderr, "rocmforge: GPU runtime error: graph instantiation: %s at %s:%d\n",
                hipGetErrorString(rc), __FILE__, __LINE__);
        free(g);
        return RF_KERNEL_EGPU;
    }
    *out = g;
    return 0;
}

extern "C" int rf_gpu_graph_launch(rf_gpu_graph_t graph, rf_gpu_stream_t stream)
{
    RF_GPU_CHECK(hipGraphLaunch(graph->exec, (hipStream_t)stream));
    return 0;
}

extern "C" void rf_gpu_graph_destroy(rf_gpu_graph_t graph)
{
    if (graph == NULL)
        return;
    hipGraphExecDestroy(graph->exec);
    free(graph);
}

/* ---- events ---- */

struct rf_gpu_event {
    hipEvent_t event;
};

extern "C" int rf_gpu_event_create(rf_gpu_event_t *out)
{
    *out = NULL;
    rf_gpu_event_t e = (rf_gpu_event_t)calloc(1, sizeof *e);
    if (e == NULL)
        return RF_KERNEL_EINVAL;
    hipError_t rc = hipEventCreate(&e->event);
    if (rc != hipSuccess) {
        fprintf(stderr, "rocmforge: GPU runtime error: creating an event: %s at %s:%d\n",
                hipGetErrorString(rc), __FILE__, __LINE__);
        free(e);
        return RF_KERNEL_EGPU;
    }
    *out = e;
    return 0;
}

extern "C" void rf_gpu_event_destroy(rf_gpu_event_t event)
{
    if (event == NULL)
        return;
    hipEventDestroy(event->event);
    free(event);
}

extern "C" int rf_gpu_event_record(rf_gpu_event_t event, rf_gpu_stream_t stream)
{
    RF_GPU_CHECK(hipEventRecord(event->event, (hipStream_t)stream));
    return 0;
}

extern "C" int rf_gpu_event_elapsed_ms(float *ms, rf_gpu_event_t start, rf_gpu_event_t end)
{
    RF_GPU_CHECK(hipEventSynchronize(end->event));
    RF_GPU_CHECK(hipEventElapsedTime(ms, start->event, end->event));
    return 0;
}
