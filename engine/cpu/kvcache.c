/* kvcache.c - f32 KV cache in fixed-size blocks, reached through block tables
 *
 * Storage is one pool of n_blocks blocks of block_size positions per layer:
 * position p of a sequence lives in block table[p / block_size], slot
 * p % block_size, at row ((layer * n_blocks + block) * block_size + slot).
 * Which blocks a sequence holds is the caller's business (engine/kv.h keeps
 * the books for the scheduler); this file only stores rows and follows the
 * tables it is given.
 *
 * Two ways to get tables:
 *   - default partition (rf__cpu_kv_init with n_blocks == 0): sequence s
 *     owns blocks 1 + s * per_seq .. (s + 1) * per_seq, enough for n_ctx
 *     positions; the single-request API (generate, score, bench) uses it.
 *   - bound tables (rf__cpu_kv_bind): the scheduler hands in each running
 *     sequence's block table before a step.
 * Block 0 is never part of a default table (it is reserved for padding).
 * The memory is calloc'd, so blocks never written are never committed by
 * the OS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

int rf__cpu_kv_init(rf__cpu_kv_t *kv, uint32_t n_layer, uint32_t n_seq, uint32_t n_ctx,
                    uint32_t k_width, uint32_t v_width, uint32_t block_size, uint32_t n_blocks)
{
    memset(kv, 0, sizeof *kv);
    if (block_size == 0 || n_seq == 0 || n_ctx == 0)
        return -EINVAL;
    uint32_t per_seq = (n_ctx + block_size - 1) / block_size;
    bool partition = n_blocks == 0;
    if (partition) {
        uint64_t n = 1 + (uint64_t)n_seq * per_seq;
        if (n > UINT32_MAX)
            return -ENOMEM;
        n_blocks = (uint32_t)n;
    }
    size_t rows = (size_t)n_layer * n_blocks * block_size;
    size_t width = k_width > v_width ? k_width : v_width;
    if (rows == 0 || n_blocks > SIZE_MAX / block_size / (n_layer ? n_layer : 1) ||
        rows > SIZE_MAX / sizeof(float) / width)
        return -ENOMEM;
    kv->k = calloc(rows * k_width, sizeof(float));
    kv->v = calloc(rows * v_width, sizeof(float));
    kv->seq_len = calloc(n_seq, sizeof *kv->seq_len);
    kv->table = calloc(n_seq, sizeof *kv->table);
    kv->table_len = calloc(n_seq, sizeof *kv->table_len);
    if (partition)
        kv->own = malloc((size_t)n_seq * per_seq * sizeof *kv->own);
    if (kv->k == NULL || kv->v == NULL || kv->seq_len == NULL || kv->table == NULL ||
        kv->table_len == NULL || (partition && kv->own == NULL)) {
        rf__cpu_kv_free(kv);
        return -ENOMEM;
    }
    kv->n_layer = n_layer;
    kv->n_seq = n_seq;
    kv->n_ctx = n_ctx;
    kv->k_width = k_width;
    kv->v_width = v_width;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    if (partition)
        for (uint32_t s = 0; s < n_seq; s++) {
            for (uint32_t i = 0; i < per_seq; i++)
                kv->own[(size_t)s * per_seq + i] = 1 + s * per_seq + i;
            kv->table[s] = kv->own + (size_t)s * per_seq;
            kv->table_len[s] = per_seq;
        }
    return 0;
}

void rf__cpu_kv_free(rf__cpu_kv_t *kv)
{
    free(kv->k);
    free(kv->v);
    free(kv->seq_len);
    free(kv->table);
    free(kv->table_len);
    free(kv->own);
    memset(kv, 0, sizeof *kv);
}

int rf__cpu_kv_bind(rf__cpu_kv_t *kv, uint32_t seq, const uint32_t *blocks, uint32_t n_blocks,
                    uint32_t n_pos)
{
    if (seq >= kv->n_seq || kv->own != NULL)
        return RF_ERANGE;
    if (n_pos > (uint64_t)n_blocks * kv->block_size)
        return RF_ERANGE;
    for (uint32_t i = 0; i < n_blocks; i++)
        if (blocks[i] == 0 || blocks[i] >= kv->n_blocks)
            return RF_ERANGE;
    kv->table[seq] = blocks;
    kv->table_len[seq] = n_blocks;
    kv->seq_len[seq] = n_pos;
    return 0;
}

int rf__cpu_kv_copy_block(rf__cpu_kv_t *kv, uint32_t src, uint32_t dst)
{
    if (src == 0 || dst == 0 || src >= kv->n_blocks || dst >= kv->n_blocks)
        return RF_ERANGE;
    if (src == dst)
        return 0;
    for (uint32_t l = 0; l < kv->n_layer; l++) {
        size_t from = ((size_t)l * kv->n_blocks + src) * kv->block_size;
        size_t to = ((size_t)l * kv->n_blocks + dst) * kv->block_size;
        memcpy(kv->k + to * kv->k_width, kv->k + from * kv->k_width,
               (size_t)kv->block_size * kv->k_width * sizeof(float));
        memcpy(kv->v + to * kv->v_width, kv->v + from * kv->v_width,
               (size_t)kv->block_size * kv->v_width * sizeof(float));
    }
    return 0;
}

static inline size_t row_of(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos)
{
    uint32_t block = kv->table[seq][pos / kv->block_size];
    return ((size_t)layer * kv->n_blocks + block) * kv->block_size + pos % kv->block_size;
}

float *rf__cpu_kv_k(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos)
{
    return kv->k + row_of(kv, layer, seq, pos) * kv->k_width;
}

float *rf__cpu_kv_v(const rf__cpu_kv_t *kv, uint32_t layer, uint32_t seq, uint32_t pos)
{
    return kv->v + row_of(kv, layer, seq, pos) * kv->v_width;
}
