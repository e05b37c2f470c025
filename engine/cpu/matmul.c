/* matmul.c - quantized weights times f32 activations on the CPU
 *
 * Two parallel steps. First every activation row is quantized once into
 * the type the weight's blocks multiply with (rf_cpu_act_type: Q8_0, Q8_K
 * or F32), rows split across threads. Then the weight's output rows are
 * split across threads; each thread walks its weight rows and dots each
 * with every activation row of a tile, so a weight row is read from memory
 * once per tile of tokens (ACT_TILE_BYTES of activations, which stay in
 * L2). Every output element is one rf_cpu_vec_dot_fn call: the result does
 * not depend on the thread count or on the other rows of the batch.
 */
#include "cpu_internal.h"

/* Bytes of quantized activation rows one pass over the weights serves. */
#define ACT_TILE_BYTES (128 * 1024)

typedef struct matmul_task {
    const rf_weight_t *w;
    const float *bias;
    const float *src;
    int64_t src_stride;
    const int32_t *rows;
    int64_t n_rows;
    float *dst;
    int64_t dst_stride;
    int act_type;
    size_t act_row_bytes;
    uint8_t *act;
    rf_cpu_vec_dot_fn dot;
} matmul_task_t;

static void quantize_task(void *ctx, int ith, int nth)
{
    matmul_task_t *t = ctx;
    int64_t begin, end;
    rf__cpu_split(t->n_rows, ith, nth, &begin, &end);
    for (int64_t r = begin; r < end; r++) {
        int64_t src_row = t->rows != NULL ? t->rows[r] : r;
        rf_cpu_quantize_act(t->act_type, t->src + src_row * t->src_stride,
                            t->act + (size_t)r * t->act_row_bytes, (int64_t)t->w->ne[0]);
    }
}

static void dot_task(void *ctx, int ith, int nth)
{
    matmul_task_t *t = ctx;
    int64_t n_out = (int64_t)t->w->ne[1];
    int64_t k = (int64_t)t->w->ne[0];
    int64_t begin, end;
    rf__cpu_split(n_out, ith, nth, &begin, &end);
    const uint8_t *wdata = t->w->data;
    /* Activation rows in tiles that stay in L2 while the thread's weight
     * rows stream past them once per tile. */
    int64_t tile = (int64_t)(ACT_TILE_BYTES / t->act_row_bytes);
    if (tile < 1)
        tile = 1;
    for (int64_t r0 = 0; r0 < t->n_rows; r0 += tile) {
        int64_t r1 = r0 + tile < t->n_rows ? r0 + tile : t->n_rows;
        for (int64_t o = begin; o < end; o++) {
            const uint8_t *wrow = wdata + (size_t)o * t->w->row_bytes;
            float b = t->bias != NULL ? t->bias[o] : 0.0f;
            for (int64_t r = r0; r < r1; r++)
                t->dst[r * t->dst_stride + o] =
                    t->dot(k, wrow, t->act + (size_t)r * t->act_row_bytes) + b;
        }
    }
}

void rf__cpu_matmul(rf__cpu_matmul_ctx_t *mm, const rf_weight_t *w, const float *bias,
                    const float *src, int64_t src_stride, const int32_t *rows, int64_t n_rows,
                    float *dst, int64_t dst_stride)
{
    if (n_rows == 0)
        return;
    matmul_task_t t = {
        .w = w, .bias = bias, .src = src, .src_stride = src_stride, .rows = rows,
        .n_rows = n_rows, .dst = dst, .dst_stride = dst_stride, .act = mm->act,
    };
    t.act_type = rf_cpu_act_type(w->type);
    t.act_row_bytes = rf_cpu_act_row_bytes(t.act_type, (int64_t)w->ne[0]);
    t.dot = rf_cpu_vec_dot_get(w->type, mm->isa);
    /* Quantizing a row or two is cheaper than waking the pool. */
    if (n_rows <= 2)
        quantize_task(&t, 0, 1);
    else
        rf__cpu_pool_run(mm->pool, quantize_task, &t);
    if ((double)w->ne[0] * (double)w->ne[1] * (double)n_rows < RF__CPU_MIN_PARALLEL_WORK)
        dot_task(&t, 0, 1);
    else
        rf__cpu_pool_run(mm->pool, dot_task, &t);
}
