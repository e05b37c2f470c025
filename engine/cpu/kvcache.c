/* kvcache.c - f32 KV cache, one contiguous region per sequence
 *
 * Position p of sequence s of layer l lives at row ((l * n_seq + s) * n_ctx
 * + p). The memory is calloc'd, so regions never written are never
 * committed by the OS. The backend reaches K and V rows only through
 * rf__cpu_kv_k/_v and the sequence lengths, so the paged cache (block
 * tables, shared prefix blocks) can replace this file without touching the
 * attention code beyond those calls.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

int rf__cpu_kv_init(rf__cpu_kv_t *kv, uint32_t n_layer, uint32_t n_seq, uint32_t n_ctx,
                    uint32_t k_width, uint32_t v_width)
{
    memset(kv, 0, sizeof *kv);
    size_t rows = (size_t)n_layer * n_seq * n_ctx;
    if (rows == 0 || rows > SIZE_MAX / sizeof(float) / (k_width > v_width ? k_width : v_width))
        return -ENOMEM;
    kv->k = calloc(rows * k_width, sizeof(float));
    kv->v = calloc(rows * v_width, sizeof(float));
    kv->seq_len = calloc(n_seq, sizeof *kv->seq_len);
    if (kv->k == NULL || kv->v == NULL || kv->seq_len == NULL) {
        rf__cpu_kv_free(kv);
        return -ENOMEM;
    }
    kv->n_layer = n_layer;
    kv->n_seq = n_seq;
    kv->n_ctx = n_ctx;
    kv->k_width = k_width;
    kv->v_width = v_width;
    return 0;
}

void rf__cpu_kv_free(rf__cpu_kv_t *kv)
{
    free(kv->k);
    free(kv->v);
    free(kv->seq_len);
    memset(kv, 0, sizeof *kv);
}

float *rf__cpu_kv_k(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos)
{
    size_t row = ((size_t)layer * kv->n_seq + seq) * kv->n_ctx + pos;
    return kv->k + row * kv->k_width;
}

float *rf__cpu_kv_v(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos)
{
    size_t row = ((size_t)layer * kv->n_seq + seq) * kv->n_ctx + pos;
    return kv->v + row * kv->v_width;
}
