/* matmul.c - quantized weights times f32 activations on the CPU
 *
 * Two parallel steps. First every activation row is quantized once into
 * the type the weight's blocks multiply with (rf_cpu_act_type: Q8_0, Q8_K
 * or F32), rows split across threads. Then the weight's output rows, in
 * units of RF_CPU_TILE_MAX rows, are split across threads in contiguous
 * ranges. Each thread walks its units one at a time and multiplies each
 * with every activation row of a tile of tokens (ACT_TILE_BYTES of
 * activations, which stay in L2), RF_CPU_TILE_MAX activation rows per call
 * where the type has a tile kernel: a weight block is decoded once for up
 * to four tokens and an activation block loaded once for up to four weight
 * rows, and a weight row is read from memory once per tile of tokens.
 *
 * Weights packed at load time (Q4_0 and Q8_0 with AVX-512; layout and
 * kernels in vecdot.h) run the same way in units of RF_CPU_PACK_ROWS rows,
 * RF_CPU_PACK_ACT_MAX activation rows per call, on activations prepared
 * for them. rf__cpu_matmul_multi runs several weights of the same input
 * (Q, K, V; gate, up) as one range of units: one quantization and one
 * wake-up of the threads for all of them.
 *
 * Every output element is computed exactly as one rf_cpu_vec_dot_fn call
 * would (the tile and packed kernels promise it): the result does not
 * depend on the thread count, on the other rows of the batch, on the
 * weights it shares a pass with, or on whether its weight is packed.
 */
#include <string.h>

#include "cpu_internal.h"

/* Bytes of quantized activation rows one pass over the weights serves:
 * half of a 2 MiB L2. Each further tile re-reads the whole weight from
 * memory, so the tile is as large as L2 allows: 128 tokens of 2048 F16
 * activations (f32, 1 MiB) are one pass; 128 KiB made that eight. */
#define ACT_TILE_BYTES (1024 * 1024)

/* One weight of a matmul: its rows are split into units (packed groups of
 * RF_CPU_PACK_ROWS rows, or groups of RF_CPU_TILE_MAX rows as stored). */
typedef struct matmul_part {
    const rf_weight_t *w;
    const uint8_t *packed;       /* NULL: rows as stored */
    const float *bias;
    float *dst;
    int64_t dst_stride;
    int64_t first_unit;          /* index of its first unit in the task */
} matmul_part_t;

/* Several weights of the same type and width times the same activations,
 * quantized once; their units are numbered one after another and split
 * across threads as one range. */
typedef struct matmul_task {
    matmul_part_t part[RF__CPU_MATMUL_MAX_PARTS];
    int n_parts;
    int64_t n_units;
    int type;
    int64_t k;                   /* weight row length (ne[0]) */
    bool packed;
    const float *src;
    int64_t src_stride;
    const int32_t *rows;
    int64_t n_rows;
    int act_type;
    size_t act_row_bytes;
    uint8_t *act;
    rf_cpu_vec_dot_fn dot;
    rf_cpu_vec_dot_tile_fn tile; /* NULL: one dot call per output */
    size_t group_bytes;
    rf_cpu_packed_gemm_fn gemm;
    int64_t tile_rows;           /* activation rows per L2 tile */
} matmul_task_t;

static void quantize_task(void *ctx, int ith, int nth)
{
    matmul_task_t *t = ctx;
    int64_t begin, end;
    rf__cpu_split(t->n_rows, ith, nth, &begin, &end);
    for (int64_t r = begin; r < end; r++) {
        int64_t src_row = t->rows != NULL ? t->rows[r] : r;
        const float *x = t->src + src_row * t->src_stride;
        uint8_t *out = t->act + (size_t)r * t->act_row_bytes;
        if (t->packed)
            rf_cpu_quantize_packed_act(t->type, x, out, t->k);
        else
            rf_cpu_quantize_act(t->act_type, x, out, t->k);
    }
}

/* Weight rows [o, o + n_w) of part p times activation rows [r0, r1). */
static void dot_group(const matmul_task_t *t, const matmul_part_t *p, int64_t o, int n_w,
                      int64_t r0, int64_t r1)
{
    const size_t row_bytes = p->w->row_bytes;
    const uint8_t *wrow = (const uint8_t *)p->w->data + (size_t)o * row_bytes;
    if (t->tile != NULL) {
        for (int64_t r = r0; r < r1; r += RF_CPU_TILE_MAX) {
            const int n_act = r1 - r < RF_CPU_TILE_MAX ? (int)(r1 - r) : RF_CPU_TILE_MAX;
            t->tile(t->k, wrow, row_bytes, n_w, t->act + (size_t)r * t->act_row_bytes,
                    t->act_row_bytes, n_act, p->dst + r * p->dst_stride + o,
                    (size_t)p->dst_stride);
        }
    } else {
        for (int i = 0; i < n_w; i++)
            for (int64_t r = r0; r < r1; r++)
                p->dst[r * p->dst_stride + o + i] =
                    t->dot(t->k, wrow + i * row_bytes, t->act + (size_t)r * t->act_row_bytes);
    }
}

/* Packed group of rows [o, o + n_w) of part p times activation rows [r0, r1). */
static void packed_group(const matmul_task_t *t, const matmul_part_t *p, int64_t o, int n_w,
                         int64_t r0, int64_t r1)
{
    const uint8_t *group = p->packed + (size_t)(o / RF_CPU_PACK_ROWS) * t->group_bytes;
    for (int64_t r = r0; r < r1; r += RF_CPU_PACK_ACT_MAX) {
        const int n_act = r1 - r < RF_CPU_PACK_ACT_MAX ? (int)(r1 - r) : RF_CPU_PACK_ACT_MAX;
        t->gemm(t->k, group, t->act + (size_t)r * t->act_row_bytes, t->act_row_bytes, n_act,
                p->dst + r * p->dst_stride + o, (size_t)p->dst_stride, n_w);
    }
}

/* Units [u0, u1) times activation rows [r0, r1). */
static void dot_units(const matmul_task_t *t, int64_t u0, int64_t u1, int64_t r0, int64_t r1)
{
    const int unit_rows = t->packed ? RF_CPU_PACK_ROWS : RF_CPU_TILE_MAX;
    int pi = 0;
    for (int64_t u = u0; u < u1; u++) {
        while (pi + 1 < t->n_parts && u >= t->part[pi + 1].first_unit)
            pi++;
        const matmul_part_t *p = &t->part[pi];
        const int64_t n_out = (int64_t)p->w->ne[1];
        const int64_t o = (u - p->first_unit) * unit_rows;
        const int n_w = n_out - o < unit_rows ? (int)(n_out - o) : unit_rows;
        if (t->packed)
            packed_group(t, p, o, n_w, r0, r1);
        else
            dot_group(t, p, o, n_w, r0, r1);
        if (p->bias != NULL)
            for (int64_t r = r0; r < r1; r++)
                for (int i = 0; i < n_w; i++)
                    p->dst[r * p->dst_stride + o + i] += p->bias[o + i];
    }
}

/* Each thread takes a fixed range of units: one contiguous stream of
 * weights per thread. Claiming units from an atomic counter instead (so a
 * core slowed down by other processes would do less) measured slower on
 * a quiet machine: generation 5-7% (Q4_0 31.7-32.5 vs 34.1-34.5 tok/s,
 * chunks of several units), prompts 3% (one unit per claim). */
static void dot_task(void *ctx, int ith, int nth)
{
    matmul_task_t *t = ctx;
    int64_t begin, end;
    rf__cpu_split(t->n_units, ith, nth, &begin, &end);
    for (int64_t r0 = 0; r0 < t->n_rows; r0 += t->tile_rows) {
        const int64_t r1 = r0 + t->tile_rows < t->n_rows ? r0 + t->tile_rows : t->n_rows;
        dot_units(t, begin, end, r0, r1);
    }
}

/* ------------------------------------------------------------------------
 * Packing
 * ------------------------------------------------------------------------ */

typedef struct pack_task {
    const rf_weight_t *w;
    uint8_t *dst;
    size_t group_bytes;
    int64_t n_groups;      /* per expert */
} pack_task_t;

static void pack_task_run(void *ctx, int ith, int nth)
{
    const pack_task_t *pt = ctx;
    const rf_weight_t *w = pt->w;
    const int64_t n_experts = w->ne[2] > 1 ? (int64_t)w->ne[2] : 1;
    int64_t begin, end;
    rf__cpu_split(n_experts * pt->n_groups, ith, nth, &begin, &end);
    for (int64_t i = begin; i < end; i++) {
        const int64_t e = i / pt->n_groups, g = i % pt->n_groups;
        const int64_t row = g * RF_CPU_PACK_ROWS;
        const int64_t n_rows = (int64_t)w->ne[1] - row < RF_CPU_PACK_ROWS
                                   ? (int64_t)w->ne[1] - row : RF_CPU_PACK_ROWS;
        const uint8_t *src = (const uint8_t *)w->data +
                             ((size_t)e * w->ne[1] + (size_t)row) * w->row_bytes;
        rf_cpu_pack_rows(w->type, (int64_t)w->ne[0], n_rows, src, w->row_bytes,
                         pt->dst + (size_t)(e * pt->n_groups + g) * pt->group_bytes);
    }
}

size_t rf__cpu_packed_bytes(rf_cpu_isa_t isa, const rf_weight_t *w)
{
    if (!rf_cpu_pack_supported(w->type, isa))
        return 0;
    const size_t group_bytes = rf_cpu_pack_group_bytes(w->type, (int64_t)w->ne[0]);
    const size_t n_groups = ((size_t)w->ne[1] + RF_CPU_PACK_ROWS - 1) / RF_CPU_PACK_ROWS;
    return (w->ne[2] > 1 ? (size_t)w->ne[2] : 1) * n_groups * group_bytes;
}

void rf__cpu_pack_weight(rf__cpu_pool_t *pool, const rf_weight_t *w, uint8_t *dst,
                         rf__cpu_packed_t *out)
{
    const size_t group_bytes = rf_cpu_pack_group_bytes(w->type, (int64_t)w->ne[0]);
    const int64_t n_groups = ((int64_t)w->ne[1] + RF_CPU_PACK_ROWS - 1) / RF_CPU_PACK_ROWS;
    *out = (rf__cpu_packed_t){.data = dst, .group_bytes = group_bytes,
                              .expert_bytes = (size_t)n_groups * group_bytes};
    pack_task_t pt = {.w = w, .dst = dst, .group_bytes = group_bytes, .n_groups = n_groups};
    rf__cpu_pool_run(pool, pack_task_run, &pt);
}

/* ------------------------------------------------------------------------
 * Matmul
 * ------------------------------------------------------------------------ */

size_t rf__cpu_matmul_act_row_bytes(const rf_weight_t *w, rf_cpu_isa_t isa)
{
    const size_t plain = rf_cpu_act_row_bytes(rf_cpu_act_type(w->type), (int64_t)w->ne[0]);
    const size_t packed = rf_cpu_pack_supported(w->type, isa)
                              ? rf_cpu_packed_act_row_bytes(w->type, (int64_t)w->ne[0]) : 0;
    return plain > packed ? plain : packed;
}

bool rf__cpu_matmul_can_share(const rf_weight_t *a, const uint8_t *a_packed,
                              const rf_weight_t *b, const uint8_t *b_packed)
{
    return a->type == b->type && a->ne[0] == b->ne[0] && (a_packed == NULL) == (b_packed == NULL);
}

void rf__cpu_matmul_multi(rf__cpu_matmul_ctx_t *mm, const rf__cpu_matmul_out_t *outs,
                          int n_outs, const float *src, int64_t src_stride,
                          const int32_t *rows, int64_t n_rows)
{
    if (n_rows == 0 || n_outs <= 0)
        return;
    const rf_weight_t *w = outs[0].w;
    matmul_task_t t = {
        .n_parts = n_outs, .type = w->type, .k = (int64_t)w->ne[0],
        .packed = outs[0].packed != NULL, .src = src, .src_stride = src_stride, .rows = rows,
        .n_rows = n_rows, .act = mm->act,
    };
    t.act_type = rf_cpu_act_type(w->type);
    if (t.packed) {
        t.gemm = rf_cpu_packed_gemm_get(w->type, mm->isa);
        t.group_bytes = rf_cpu_pack_group_bytes(w->type, t.k);
        t.act_row_bytes = rf_cpu_packed_act_row_bytes(w->type, t.k);
    } else {
        t.act_row_bytes = rf_cpu_act_row_bytes(t.act_type, t.k);
        t.dot = rf_cpu_vec_dot_get(w->type, mm->isa);
        t.tile = rf_cpu_vec_dot_tile_get(w->type, mm->isa);
    }
    const int unit_rows = t.packed ? RF_CPU_PACK_ROWS : RF_CPU_TILE_MAX;
    double work = 0.0;
    for (int i = 0; i < n_outs; i++) {
        t.part[i] = (matmul_part_t){
            .w = outs[i].w, .packed = outs[i].packed, .bias = outs[i].bias,
            .dst = outs[i].dst, .dst_stride = outs[i].dst_stride, .first_unit = t.n_units,
        };
        t.n_units += ((int64_t)outs[i].w->ne[1] + unit_rows - 1) / unit_rows;
        work += (double)outs[i].w->ne[0] * (double)outs[i].w->ne[1];
    }
    t.tile_rows = (int64_t)(ACT_TILE_BYTES / t.act_row_bytes);
    if (t.tile_rows < 1)
        t.tile_rows = 1;
    /* Quantizing a row or two is cheaper than waking the pool. */
    if (n_rows <= 2)
        quantize_task(&t, 0, 1);
    else
        rf__cpu_pool_run(mm->pool, quantize_task, &t);
    if (work * (double)n_rows < RF__CPU_MIN_PARALLEL_WORK)
        dot_task(&t, 0, 1);
    else
        rf__cpu_pool_run(mm->pool, dot_task, &t);
}

void rf__cpu_matmul(rf__cpu_matmul_ctx_t *mm, const rf_weight_t *w, const uint8_t *packed,
                    const float *bias, const float *src, int64_t src_stride,
                    const int32_t *rows, int64_t n_rows, float *dst, int64_t dst_stride)
{
    const rf__cpu_matmul_out_t out = {
        .w = w, .packed = packed, .bias = bias, .dst = dst, .dst_stride = dst_stride,
    };
    rf__cpu_matmul_multi(mm, &out, 1, src, src_stride, rows, n_rows);
}
