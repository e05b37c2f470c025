/* matmul.c - quantized weights times f32 activations on the CPU
 *
 * Two parallel steps. First every activation row is quantized once into
 * the type the weight's blocks multiply with (rf_cpu_act_type: Q8_0, Q8_K
 * or F32), rows split across threads. Then the weight's output rows are
 * split across threads in groups of RF_CPU_TILE_MAX. Each thread walks its
 * weight rows a group at a time and multiplies the group with every
 * activation row of a tile of tokens (ACT_TILE_BYTES of activations, which
 * stay in L2), RF_CPU_TILE_MAX activation rows per call where the type has
 * a tile kernel: a weight block is decoded once for up to four tokens and
 * an activation block loaded once for up to four weight rows, and a weight
 * row is read from memory once per tile of tokens. Every output element is
 * computed exactly as one rf_cpu_vec_dot_fn call would (the tile kernels
 * promise it): the result does not depend on the thread count or on the
 * other rows of the batch.
 */
#include "cpu_internal.h"

/* Bytes of quantized activation rows one pass over the weights serves:
 * half of a 2 MiB L2. Each further tile re-reads the whole weight from
 * memory, so the tile is as large as L2 allows: 128 tokens of 2048 F16
 * activations (f32, 1 MiB) are one pass; 128 KiB made that eight. */
#define ACT_TILE_BYTES (1024 * 1024)

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
    rf_cpu_vec_dot_tile_fn tile; /* NULL: one dot call per output */
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

/* Weight rows [o, o + n_w) times activation rows [r0, r1). */
static void dot_group(const matmul_task_t *t, int64_t o, int n_w, int64_t r0, int64_t r1)
{
    const int64_t k = (int64_t)t->w->ne[0];
    const size_t row_bytes = t->w->row_bytes;
    const uint8_t *wrow = (const uint8_t *)t->w->data + (size_t)o * row_bytes;
    if (t->tile != NULL) {
        for (int64_t r = r0; r < r1; r += RF_CPU_TILE_MAX) {
            const int n_act = r1 - r < RF_CPU_TILE_MAX ? (int)(r1 - r) : RF_CPU_TILE_MAX;
            t->tile(k, wrow, row_bytes, n_w, t->act + (size_t)r * t->act_row_bytes,
                    t->act_row_bytes, n_act, t->dst + r * t->dst_stride + o,
                    (size_t)t->dst_stride);
        }
    } else {
        for (int i = 0; i < n_w; i++)
            for (int64_t r = r0; r < r1; r++)
                t->dst[r * t->dst_stride + o + i] =
                    t->dot(k, wrow + i * row_bytes, t->act + (size_t)r * t->act_row_bytes);
    }
    if (t->bias != NULL)
        for (int64_t r = r0; r < r1; r++)
            for (int i = 0; i < n_w; i++)
                t->dst[r * t->dst_stride + o + i] += t->bias[o + i];
}

static void dot_task(void *ctx, int ith, int nth)
{
    matmul_task_t *t = ctx;
    const int64_t n_out = (int64_t)t->w->ne[1];
    const int64_t n_groups = (n_out + RF_CPU_TILE_MAX - 1) / RF_CPU_TILE_MAX;
    int64_t begin, end;
    rf__cpu_split(n_groups, ith, nth, &begin, &end);
    begin *= RF_CPU_TILE_MAX;
    end = end * RF_CPU_TILE_MAX < n_out ? end * RF_CPU_TILE_MAX : n_out;
    /* Activation rows in tiles that stay in L2 while the thread's weight
     * rows stream past them once per tile. */
    int64_t tile = (int64_t)(ACT_TILE_BYTES / t->act_row_bytes);
    if (tile < 1)
        tile = 1;
    for (int64_t r0 = 0; r0 < t->n_rows; r0 += tile) {
        const int64_t r1 = r0 + tile < t->n_rows ? r0 + tile : t->n_rows;
        for (int64_t o = begin; o < end; o += RF_CPU_TILE_MAX) {
            const int n_w = end - o < RF_CPU_TILE_MAX ? (int)(end - o) : RF_CPU_TILE_MAX;
            dot_group(t, o, n_w, r0, r1);
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
    t.tile = rf_cpu_vec_dot_tile_get(w->type, mm->isa);
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
