/* kv.h - paged KV cache bookkeeping: block pool, block tables, prefix cache
 *
 * The KV cache is one pool of fixed-size blocks shared by every sequence
 * (vLLM's PagedAttention). This module keeps the books only: which block ids
 * are free, cached or in use, their reference counts, each sequence's block
 * table, and the prefix cache that lets a new sequence reuse the blocks of
 * an earlier one with the same leading tokens. It stores no K or V: the
 * backend owns that memory, laid out by block id (block b holds token slots
 * [b * block_size, (b + 1) * block_size) of every layer), and learns from
 * this module which blocks to read, write and copy.
 *
 * Block 0 is reserved: it is never handed out, so a backend can pad block
 * tables with it and the prefix cache can use it as "no block".
 *
 * Prefix caching keys a full block by a chained 64-bit hash of (the previous
 * block's hash, its block_size token ids). Lookups also compare the stored
 * token ids and the identity of the previous block exactly, so a hash
 * collision costs a probe, never a wrong hit. Blocks whose last sequence has
 * gone keep their contents (reference count 0, "cached") and stay reusable
 * until an allocation evicts them, least recently freed first.
 *
 * One step of a sequence in the scheduler, in this order:
 *   1. admission only: rf_kv_match_prefix (seq empty), with max_tokens =
 *      prompt length - 1 so that at least one token is computed and gives
 *      logits; the sequence's computed count starts at the return value;
 *   2. rf_kv_reserve(seq, computed + n_new): table covers the new slots;
 *   3. rf_kv_prepare_write(seq, computed, n_new): private copies of shared
 *      blocks the step writes into; the backend copies the reported block
 *      before the forward pass;
 *   4. forward pass (writes K/V of slots [computed, computed + n_new));
 *   5. rf_kv_commit(seq, tokens, computed + n_new): full blocks enter the
 *      prefix cache. commit may swap a block id in the table for an
 *      identical cached block (see rf_kv_commit), so block tables are read
 *      again after it, never kept across steps.
 * rf_kv_fork shares a whole table (n > 1 samples of one prompt); the shared
 * partial block is copied by step 3 of the first sample that writes into it.
 * Steps 2 and 3 return RF_KV_NO_SPACE when the pool is short; the scheduler
 * preempts (rf_kv_seq_free a victim) and tries again.
 *
 * All functions run on one thread (the engine thread). Every call costs O(1)
 * or O(blocks it touches); only a block table's array grows (amortised).
 */
#ifndef RF_KV_H
#define RF_KV_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* "Not done, not broken": not enough free or evictable blocks for the
 * request. Nothing was changed; free a sequence and try again. */
enum { RF_KV_NO_SPACE = 1 };

enum {
    RF_KV_BLOCK_SIZE_DEFAULT = 16, /* tokens per block */
    RF_KV_NULL_BLOCK = 0,          /* reserved block id: padding, "none" */
    RF_KV_MAX_COPIES = 1,          /* pairs rf_kv_prepare_write reports at most */
};

typedef struct rf_kv_pool rf_kv_pool_t;

/* A sequence's block table. Caller-allocated (rf_kv_seq_init or zeroed),
 * changed only through this module, released with rf_kv_seq_free. The
 * backend reads blocks[0 .. n_blocks) as the table: token position p lives
 * in block blocks[p / block_size], slot p % block_size. */
typedef struct rf_kv_seq {
    uint32_t *blocks;     /* [cap] block ids, the first n_blocks in use */
    uint32_t n_blocks;    /* = ceil(n_tokens / block_size) */
    uint32_t cap;
    uint32_t n_tokens;    /* token slots whose K/V are stored or reserved */
    uint32_t n_committed; /* leading full blocks registered in the prefix
                             cache (by rf_kv_commit or rf_kv_match_prefix) */
} rf_kv_seq_t;

/* One block copy the backend performs before the step's forward pass:
 * every layer's K and V of block src_block into dst_block. */
typedef struct rf_kv_copy {
    uint32_t src_block;
    uint32_t dst_block;
} rf_kv_copy_t;

typedef struct rf_kv_stats {
    uint32_t n_blocks;            /* pool size, reserved block 0 included */
    uint32_t block_size;          /* tokens */
    uint32_t n_free;              /* never cached or evicted: handed out first */
    uint32_t n_cached;            /* reference count 0, in the prefix cache: evictable */
    uint32_t n_used;              /* reference count >= 1 */
    uint64_t prefix_queries;      /* rf_kv_match_prefix calls */
    uint64_t prefix_query_tokens; /* tokens those calls could have matched */
    uint64_t prefix_hit_tokens;   /* tokens they matched */
    uint64_t evictions;           /* cached blocks taken for new contents */
    uint64_t cow_copies;          /* pairs reported by rf_kv_prepare_write */
    uint64_t dedup_swaps;         /* blocks rf_kv_commit replaced by a cached twin */
} rf_kv_stats_t;

/* Open a pool of n_blocks blocks of block_size tokens (block 0 reserved, so
 * n_blocks - 1 are usable). Returns 0 and *out, RF_ERANGE (n_blocks < 2 or
 * above 2^30, block_size 0, n_blocks * block_size over 2^31 - 1 token slots) or
 * -ENOMEM, with *out NULL and err naming the cause. */
int rf_kv_open(rf_kv_pool_t **out, uint32_t n_blocks, uint32_t block_size, rf_err_t *err);
void rf_kv_close(rf_kv_pool_t *pool); /* NULL is fine; live tables are not freed */

uint32_t rf_kv_block_size(const rf_kv_pool_t *pool);
/* Reference count of block id (0 for an id outside the pool): for tests
 * and debugging output. */
uint32_t rf_kv_block_ref(const rf_kv_pool_t *pool, uint32_t id);
void rf_kv_stats(const rf_kv_pool_t *pool, rf_kv_stats_t *out);

/* An empty table (the same as a zeroed struct). */
void rf_kv_seq_init(rf_kv_seq_t *seq);

/* Return the table's blocks to the pool (reference count - 1; a block that
 * reaches 0 becomes cached if it is in the prefix cache, free otherwise),
 * the last block first so that eviction takes a chain's tail before its
 * head. Frees the array and leaves seq empty. A zeroed seq is fine. */
void rf_kv_seq_free(rf_kv_pool_t *pool, rf_kv_seq_t *seq);

/* Make the table cover n_tokens_total token slots, allocating blocks as
 * needed (free blocks first, then evicting the least recently used cached
 * block), and set n_tokens to the larger of n_tokens and n_tokens_total.
 * New blocks are private (reference count 1). All or nothing: returns 0,
 * RF_KV_NO_SPACE (too few free and cached blocks; nothing changed),
 * RF_ERANGE (more blocks than the whole pool holds: the sequence can never
 * fit; nothing changed) or -ENOMEM (nothing changed). */
int rf_kv_reserve(rf_kv_pool_t *pool, rf_kv_seq_t *seq, uint32_t n_tokens_total);

/* For an empty seq, attach the longest run of cached full blocks matching
 * tokens[0 .. n_tokens), at most max_tokens tokens (pass n_tokens - 1 so
 * that one token is left to compute). Each attached block's reference count
 * goes up by one (a cached block leaves the LRU: revived); n_tokens and
 * n_committed cover the match. Returns the matched token count (a multiple
 * of the block size, >= 0), -EINVAL (seq not empty) or -ENOMEM (nothing
 * changed). The hit counters in rf_kv_stats count every call. */
int rf_kv_match_prefix(rf_kv_pool_t *pool, rf_kv_seq_t *seq, const int32_t *tokens,
                       uint32_t n_tokens, uint32_t max_tokens);

/* Before a forward pass writes K/V of slots [first_pos, first_pos + n_tokens)
 * of seq: give seq a private, writable block for every block the range
 * touches. A block shared with another table is replaced by a new block;
 * when it holds slots before first_pos (the step's first block, when
 * first_pos is not a block boundary), the pair (old, new) is written to
 * copies[0] and the backend must copy it before the pass (at most
 * RF_KV_MAX_COPIES pairs; *n_copies says how many). A private block that is
 * in the prefix cache (after rf_kv_truncate) leaves the cache instead.
 * All or nothing: returns 0, RF_KV_NO_SPACE (nothing changed, *n_copies 0)
 * or RF_ERANGE (range not inside the table, or before the committed blocks:
 * truncate first; nothing changed). */
int rf_kv_prepare_write(rf_kv_pool_t *pool, rf_kv_seq_t *seq, uint32_t first_pos,
                        uint32_t n_tokens, rf_kv_copy_t *copies, uint32_t *n_copies);

/* After the backend computed K/V of tokens[0 .. n_computed) of seq
 * (n_computed <= seq->n_tokens), register each full block past n_committed
 * in the prefix cache. When an identical block (same tokens, same previous
 * block) is already cached under another id, seq takes that one instead
 * (its reference count + 1, revived if cached) and its own block is
 * released, so the pool keeps one copy of each prefix: a dedup swap, which
 * changes seq->blocks. Returns 0, RF_ERANGE (n_computed > n_tokens; nothing
 * changed) or -EINVAL (a block seq shares is cached with other tokens than
 * tokens says: the caller passed the wrong tokens; blocks before it stay
 * committed). */
int rf_kv_commit(rf_kv_pool_t *pool, rf_kv_seq_t *seq, const int32_t *tokens,
                 uint32_t n_computed);

/* Make the empty table dst share every block of src (reference counts + 1),
 * with src's n_tokens and n_committed. Returns 0, -EINVAL (dst not empty)
 * or -ENOMEM (nothing changed). */
int rf_kv_fork(rf_kv_pool_t *pool, rf_kv_seq_t *dst, const rf_kv_seq_t *src);

/* Drop token slots >= n_tokens (roll back): blocks no longer needed are
 * released as by rf_kv_seq_free, n_committed shrinks to the full blocks
 * left. A cached block kept partially is left in the cache until
 * rf_kv_prepare_write makes it writable. Returns 0 or RF_ERANGE
 * (n_tokens > seq->n_tokens; nothing changed). */
int rf_kv_truncate(rf_kv_pool_t *pool, rf_kv_seq_t *seq, uint32_t n_tokens);

/* Debug check of every invariant in kv.c's design notes against the given
 * live tables, which must be all the tables holding blocks. Returns 0, or
 * RF_EFORMAT with err naming the first broken invariant (its number in the
 * design notes), the block and the table. O(pool + tables). */
int rf_kv_check(const rf_kv_pool_t *pool, const rf_kv_seq_t *const *seqs, size_t n_seqs,
                rf_err_t *err);

#endif /* RF_KV_H */
