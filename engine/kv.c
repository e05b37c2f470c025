/* kv.c - paged KV block pool: reference counts, block tables, prefix cache
 *
 * Implements kv.h: the books of the paged KV cache. A block's state lives in
 * one kv_block record; free blocks sit on a stack, cached blocks on an
 * intrusive LRU list threaded through their records, and the prefix cache is
 * an open-addressing hash table of block ids (linear probing, deletion by
 * backward shift, so no tombstones), sized from the pool at open.
 *
 * Design notes
 * ------------
 * A block is "registered" when it is in the prefix cache: it holds a key
 * (previous block id and generation, chain hash, block_size token ids) and
 * its id is in the hash table. A registered block's contents never change.
 *
 * Invariants (rf_kv_check verifies each, by number):
 *   1. Every block 1 .. n_blocks-1 is in exactly one state: free (ref 0,
 *      not registered, on the free stack), cached (ref 0, registered, on
 *      the LRU list) or used (ref >= 1, on neither); n_free + n_cached +
 *      n_used = n_blocks - 1.
 *   2. A block's ref count equals the number of table entries holding it;
 *      no table holds a block twice.
 *   3. Block 0 is in no table, never free, never cached, never registered.
 *   4. A table has n_blocks = ceil(n_tokens / block_size) <= cap,
 *      n_committed * block_size <= n_tokens, and ids below the pool size.
 *   5. The hash table holds exactly the registered blocks, each reachable
 *      from its home slot, and each block's stored hash is the chain hash
 *      of its stored parent hash and stored tokens.
 *   6. A table's first n_committed blocks are registered, each keyed on the
 *      table's previous block (or on none, for the first) at that block's
 *      current generation: committed prefixes form chains in the cache.
 *   7. A block appears at the same index in every table holding it (its
 *      position in the sequence is fixed by its prefix), so two tables that
 *      share a block share all of its prefix too. (Not checked: it follows
 *      from how blocks are shared, by fork, prefix match and commit.)
 * A block's generation goes up whenever it leaves the cache, so a cached
 * child keyed on a previous block that was since evicted and reused can
 * never match again: prefix hits are exact, not merely probable.
 *
 * States of a block and the function for each transition:
 *
 *                 take_block (rf_kv_reserve, rf_kv_prepare_write)
 *        +--------------------------------------------------------------+
 *        |                                                              v
 *      free <---- release to ref 0, not registered -------------------- used
 *                 (rf_kv_seq_free, rf_kv_truncate,                  (ref >= 1)
 *                 rf_kv_prepare_write, rf_kv_commit swap)              | ^ ^
 *                                                                      | | |
 *      cached <-- release to ref 0, registered (same functions) -------+ | |
 *     (ref 0,  --- revive: rf_kv_match_prefix hit, rf_kv_commit swap ---+ |
 *      on LRU) --- evict: take_block, when no block is free, takes the ---+
 *                  LRU head out of the cache (generation + 1) and hands
 *                  it out with new contents
 *
 *   Within used: rf_kv_commit registers a block; rf_kv_prepare_write
 *   unregisters a private registered block (generation + 1) before it is
 *   written; rf_kv_fork, rf_kv_match_prefix and a commit swap add references.
 */
#include "kv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ---- */

typedef struct kv_block {
    uint64_t hash;        /* chain hash of (parent_hash, tokens); valid while registered */
    uint64_t parent_hash; /* the previous block's chain hash, or KV_ROOT_HASH */
    uint32_t ref;         /* table entries holding this block */
    uint32_t parent;      /* previous block's id in the chain, 0 for the first block */
    uint32_t parent_gen;  /* the previous block's generation when this one registered */
    uint32_t gen;         /* + 1 each time the block leaves the cache */
    uint32_t lru_prev;    /* LRU links while cached; block 0 is the list head */
    uint32_t lru_next;
    bool registered;
} kv_block_t;

struct rf_kv_pool {
    uint32_t n_blocks;
    uint32_t block_size;
    kv_block_t *block;    /* [n_blocks]; block[0] heads the LRU list */
    int32_t *tokens;      /* [n_blocks][block_size] keys of registered blocks */
    uint32_t *free_stack; /* [n_blocks - 1], n_free in use, top last */
    uint32_t n_free;
    uint32_t n_cached;
    uint32_t n_used;
    uint32_t *slots;      /* [slot_mask + 1] hash table of block ids, 0 = empty */
    uint32_t slot_mask;
    uint32_t *scratch;    /* [2][n_blocks] for rf_kv_check */
    rf_kv_stats_t stats;  /* counters; the gauges are filled in by rf_kv_stats */
};

#define KV_ROOT_HASH 0x6a09e667f3bcc908ull /* parent hash of a sequence's first block */

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit reaches every output bit */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static uint64_t chain_hash(uint64_t parent_hash, const int32_t *tokens, uint32_t n)
{
    uint64_t h = mix64(parent_hash ^ 0x9e3779b97f4a7c15ull);
    for (uint32_t i = 0; i < n; i++)
        h = mix64(h + 0x9e3779b97f4a7c15ull + (uint64_t)(uint32_t)tokens[i]);
    return h;
}

/* ---- block records ---- */

static const int32_t *block_tokens(const rf_kv_pool_t *pool, uint32_t id)
{
    return pool->tokens + (size_t)id * pool->block_size;
}

static void lru_unlink(rf_kv_pool_t *pool, uint32_t id)
{
    kv_block_t *b = &pool->block[id];
    pool->block[b->lru_prev].lru_next = b->lru_next;
    pool->block[b->lru_next].lru_prev = b->lru_prev;
    b->lru_prev = b->lru_next = 0;
    pool->n_cached--;
}

/* Append at the most recently used end (just before the head, block 0). */
static void lru_push(rf_kv_pool_t *pool, uint32_t id)
{
    kv_block_t *head = &pool->block[0];
    kv_block_t *b = &pool->block[id];
    b->lru_prev = head->lru_prev;
    b->lru_next = 0;
    pool->block[head->lru_prev].lru_next = id;
    head->lru_prev = id;
    pool->n_cached++;
}

/* ---- hash table ---- */

static uint32_t home_slot(const rf_kv_pool_t *pool, uint64_t hash)
{
    return (uint32_t)(hash >> 32 ^ hash) & pool->slot_mask;
}

/* The registered block with this exact key, or 0. */
static uint32_t table_find(const rf_kv_pool_t *pool, uint64_t hash, uint32_t parent,
                           uint32_t parent_gen, const int32_t *tokens)
{
    for (uint32_t s = home_slot(pool, hash);; s = (s + 1) & pool->slot_mask) {
        uint32_t id = pool->slots[s];
        if (id == 0)
            return 0;
        const kv_block_t *b = &pool->block[id];
        if (b->hash == hash && b->parent == parent && b->parent_gen == parent_gen &&
            memcmp(block_tokens(pool, id), tokens, pool->block_size * sizeof *tokens) == 0)
            return id;
    }
}

static void table_insert(rf_kv_pool_t *pool, uint32_t id)
{
    uint32_t s = home_slot(pool, pool->block[id].hash);
    while (pool->slots[s] != 0)
        s = (s + 1) & pool->slot_mask;
    pool->slots[s] = id;
}

/* Remove id and close the gap: later entries of the probe run move back
 * into the hole when their home slot allows it, so runs stay unbroken. */
static void table_remove(rf_kv_pool_t *pool, uint32_t id)
{
    uint32_t mask = pool->slot_mask;
    uint32_t hole = home_slot(pool, pool->block[id].hash);
    while (pool->slots[hole] != id)
        hole = (hole + 1) & mask;
    for (uint32_t s = (hole + 1) & mask; pool->slots[s] != 0; s = (s + 1) & mask) {
        uint32_t home = home_slot(pool, pool->block[pool->slots[s]].hash);
        /* the entry at s may fill the hole unless its home lies in (hole, s] */
        bool home_after_hole = ((s - home) & mask) < ((s - hole) & mask);
        if (!home_after_hole) {
            pool->slots[hole] = pool->slots[s];
            hole = s;
        }
    }
    pool->slots[hole] = 0;
}

static void unregister(rf_kv_pool_t *pool, uint32_t id)
{
    table_remove(pool, id);
    pool->block[id].registered = false;
    pool->block[id].gen++;
}

/* ---- reference counts ---- */

/* A block for new contents: a free one, else the least recently used cached
 * one, evicted. The caller has checked that one exists. */
static uint32_t take_block(rf_kv_pool_t *pool)
{
    uint32_t id;
    if (pool->n_free > 0) {
        id = pool->free_stack[--pool->n_free];
    } else {
        id = pool->block[0].lru_next;
        lru_unlink(pool, id);
        unregister(pool, id);
        pool->stats.evictions++;
    }
    pool->block[id].ref = 1;
    pool->n_used++;
    return id;
}

static void acquire(rf_kv_pool_t *pool, uint32_t id)
{
    kv_block_t *b = &pool->block[id];
    if (b->ref == 0) {
        lru_unlink(pool, id); /* only registered blocks are found by a lookup */
        pool->n_used++;
    }
    b->ref++;
}

static void release(rf_kv_pool_t *pool, uint32_t id)
{
    kv_block_t *b = &pool->block[id];
    if (--b->ref > 0)
        return;
    pool->n_used--;
    if (b->registered)
        lru_push(pool, id);
    else
        pool->free_stack[pool->n_free++] = id;
}

static uint32_t n_available(const rf_kv_pool_t *pool)
{
    return pool->n_free + pool->n_cached;
}

static int seq_grow(rf_kv_seq_t *seq, uint32_t n)
{
    if (n <= seq->cap)
        return 0;
    uint32_t cap = seq->cap < 4 ? 4 : seq->cap;
    while (cap < n)
        cap = cap > UINT32_MAX / 2 ? n : cap * 2;
    uint32_t *blocks = realloc(seq->blocks, (size_t)cap * sizeof *blocks);
    if (blocks == NULL)
        return -ENOMEM;
    seq->blocks = blocks;
    seq->cap = cap;
    return 0;
}

/* Chain hash of the block before index i of seq (registered, invariant 6). */
static uint64_t parent_hash_of(const rf_kv_pool_t *pool, const rf_kv_seq_t *seq, uint32_t i)
{
    return i == 0 ? KV_ROOT_HASH : pool->block[seq->blocks[i - 1]].hash;
}

/* ---- pool ---- */

int rf_kv_open(rf_kv_pool_t **out, uint32_t n_blocks, uint32_t block_size, rf_err_t *err)
{
    *out = NULL;
    if (n_blocks < 2 || n_blocks > (1u << 30))
        return rf_err_set(err, RF_ERANGE,
                          "KV pool of %u blocks: need 2 .. 2^30 (block 0 is reserved)", n_blocks);
    if (block_size == 0 || (uint64_t)n_blocks * block_size > INT32_MAX)
        return rf_err_set(err, RF_ERANGE,
                          "KV pool of %u blocks of %u tokens: block size must be >= 1 and the "
                          "pool at most 2^31 - 1 token slots",
                          n_blocks, block_size);
    rf_kv_pool_t *pool = calloc(1, sizeof *pool);
    if (pool == NULL)
        return rf_err_set(err, -ENOMEM, "KV pool: out of memory");
    uint32_t n_slots = 1;
    while (n_slots < 2 * (uint64_t)n_blocks) /* load factor <= 1/2 */
        n_slots *= 2;
    pool->n_blocks = n_blocks;
    pool->block_size = block_size;
    pool->block = calloc(n_blocks, sizeof *pool->block);
    pool->tokens = calloc((size_t)n_blocks * block_size, sizeof *pool->tokens);
    pool->free_stack = calloc(n_blocks, sizeof *pool->free_stack);
    pool->slots = calloc(n_slots, sizeof *pool->slots);
    pool->scratch = calloc(2 * (size_t)n_blocks, sizeof *pool->scratch);
    if (pool->block == NULL || pool->tokens == NULL || pool->free_stack == NULL ||
        pool->slots == NULL || pool->scratch == NULL) {
        rf_kv_close(pool);
        return rf_err_set(err, -ENOMEM, "KV pool of %u blocks of %u tokens: out of memory",
                          n_blocks, block_size);
    }
    pool->slot_mask = n_slots - 1;
    /* highest id on the bottom: blocks are handed out 1, 2, 3, ... */
    for (uint32_t id = n_blocks - 1; id >= 1; id--)
        pool->free_stack[pool->n_free++] = id;
    *out = pool;
    return 0;
}

void rf_kv_close(rf_kv_pool_t *pool)
{
    if (pool == NULL)
        return;
    free(pool->block);
    free(pool->tokens);
    free(pool->free_stack);
    free(pool->slots);
    free(pool->scratch);
    free(pool);
}

uint32_t rf_kv_block_size(const rf_kv_pool_t *pool)
{
    return pool->block_size;
}

uint32_t rf_kv_block_ref(const rf_kv_pool_t *pool, uint32_t id)
{
    return id < pool->n_blocks ? pool->block[id].ref : 0;
}

void rf_kv_stats(const rf_kv_pool_t *pool, rf_kv_stats_t *out)
{
    *out = pool->stats;
    out->n_blocks = pool->n_blocks;
    out->block_size = pool->block_size;
    out->n_free = pool->n_free;
    out->n_cached = pool->n_cached;
    out->n_used = pool->n_used;
}

/* ---- block tables ---- */

void rf_kv_seq_init(rf_kv_seq_t *seq)
{
    memset(seq, 0, sizeof *seq);
}

void rf_kv_seq_free(rf_kv_pool_t *pool, rf_kv_seq_t *seq)
{
    for (uint32_t i = seq->n_blocks; i-- > 0;)
        release(pool, seq->blocks[i]);
    free(seq->blocks);
    memset(seq, 0, sizeof *seq);
}

int rf_kv_reserve(rf_kv_pool_t *pool, rf_kv_seq_t *seq, uint32_t n_tokens_total)
{
    uint64_t need = ((uint64_t)n_tokens_total + pool->block_size - 1) / pool->block_size;
    if (need > pool->n_blocks - 1)
        return RF_ERANGE;
    if (need > seq->n_blocks) {
        uint32_t add = (uint32_t)need - seq->n_blocks;
        if (add > n_available(pool))
            return RF_KV_NO_SPACE;
        int rc = seq_grow(seq, (uint32_t)need);
        if (rc < 0)
            return rc;
        while (seq->n_blocks < need)
            seq->blocks[seq->n_blocks++] = take_block(pool);
    }
    if (n_tokens_total > seq->n_tokens)
        seq->n_tokens = n_tokens_total;
    return 0;
}

int rf_kv_match_prefix(rf_kv_pool_t *pool, rf_kv_seq_t *seq, const int32_t *tokens,
                       uint32_t n_tokens, uint32_t max_tokens)
{
    if (seq->n_blocks != 0 || seq->n_tokens != 0)
        return -EINVAL;
    uint32_t limit = n_tokens < max_tokens ? n_tokens : max_tokens;
    uint32_t max_blocks = limit / pool->block_size;
    pool->stats.prefix_queries++;
    pool->stats.prefix_query_tokens += limit;
    int rc = seq_grow(seq, max_blocks);
    if (rc < 0)
        return rc;
    uint64_t hash = KV_ROOT_HASH;
    uint32_t parent = 0;
    uint32_t n = 0;
    while (n < max_blocks) {
        const int32_t *t = tokens + (size_t)n * pool->block_size;
        hash = chain_hash(hash, t, pool->block_size);
        uint32_t id = table_find(pool, hash, parent, pool->block[parent].gen, t);
        if (id == 0)
            break;
        acquire(pool, id);
        seq->blocks[n++] = id;
        parent = id;
    }
    seq->n_blocks = n;
    seq->n_committed = n;
    seq->n_tokens = n * pool->block_size;
    pool->stats.prefix_hit_tokens += seq->n_tokens;
    return (int)seq->n_tokens;
}

int rf_kv_prepare_write(rf_kv_pool_t *pool, rf_kv_seq_t *seq, uint32_t first_pos,
                        uint32_t n_tokens, rf_kv_copy_t *copies, uint32_t *n_copies)
{
    uint32_t bs = pool->block_size;
    *n_copies = 0;
    if (n_tokens == 0)
        return 0;
    if ((uint64_t)first_pos + n_tokens > (uint64_t)seq->n_blocks * bs ||
        first_pos < seq->n_committed * bs)
        return RF_ERANGE;
    uint32_t first = first_pos / bs;
    uint32_t last = (uint32_t)(((uint64_t)first_pos + n_tokens - 1) / bs);
    uint32_t n_shared = 0;
    for (uint32_t i = first; i <= last; i++)
        n_shared += pool->block[seq->blocks[i]].ref > 1;
    if (n_shared > n_available(pool))
        return RF_KV_NO_SPACE;
    for (uint32_t i = first; i <= last; i++) {
        uint32_t id = seq->blocks[i];
        kv_block_t *b = &pool->block[id];
        if (b->ref == 1) {
            if (b->registered)
                unregister(pool, id); /* private: written in place, leaves the cache */
            continue;
        }
        uint32_t copy = take_block(pool);
        /* only the step's first block can hold slots before first_pos */
        if ((uint64_t)i * bs < first_pos) {
            copies[(*n_copies)++] = (rf_kv_copy_t){.src_block = id, .dst_block = copy};
            pool->stats.cow_copies++;
        }
        release(pool, id);
        seq->blocks[i] = copy;
    }
    return 0;
}

int rf_kv_commit(rf_kv_pool_t *pool, rf_kv_seq_t *seq, const int32_t *tokens,
                 uint32_t n_computed)
{
    uint32_t bs = pool->block_size;
    if (n_computed > seq->n_tokens)
        return RF_ERANGE;
    uint32_t n_full = n_computed / bs;
    for (uint32_t i = seq->n_committed; i < n_full; i++) {
        const int32_t *t = tokens + (size_t)i * bs;
        uint32_t parent = i == 0 ? 0 : seq->blocks[i - 1];
        uint64_t parent_hash = parent_hash_of(pool, seq, i);
        uint64_t hash = chain_hash(parent_hash, t, bs);
        uint32_t id = seq->blocks[i];
        kv_block_t *b = &pool->block[id];
        if (b->registered) {
            /* shared with the table that registered it (fork): same key */
            if (b->hash != hash || b->parent != parent)
                return -EINVAL;
        } else {
            uint32_t twin = table_find(pool, hash, parent, pool->block[parent].gen, t);
            if (twin != 0) {
                acquire(pool, twin);
                release(pool, id);
                seq->blocks[i] = twin;
                pool->stats.dedup_swaps++;
            } else {
                b->hash = hash;
                b->parent_hash = parent_hash;
                b->parent = parent;
                b->parent_gen = pool->block[parent].gen;
                b->registered = true;
                memcpy(pool->tokens + (size_t)id * bs, t, bs * sizeof *t);
                table_insert(pool, id);
            }
        }
        seq->n_committed = i + 1;
    }
    return 0;
}

int rf_kv_fork(rf_kv_pool_t *pool, rf_kv_seq_t *dst, const rf_kv_seq_t *src)
{
    if (dst->n_blocks != 0 || dst->n_tokens != 0)
        return -EINVAL;
    int rc = seq_grow(dst, src->n_blocks);
    if (rc < 0)
        return rc;
    for (uint32_t i = 0; i < src->n_blocks; i++) {
        dst->blocks[i] = src->blocks[i];
        acquire(pool, src->blocks[i]);
    }
    dst->n_blocks = src->n_blocks;
    dst->n_tokens = src->n_tokens;
    dst->n_committed = src->n_committed;
    return 0;
}

int rf_kv_truncate(rf_kv_pool_t *pool, rf_kv_seq_t *seq, uint32_t n_tokens)
{
    uint32_t bs = pool->block_size;
    if (n_tokens > seq->n_tokens)
        return RF_ERANGE;
    uint32_t keep = (uint32_t)(((uint64_t)n_tokens + bs - 1) / bs);
    while (seq->n_blocks > keep)
        release(pool, seq->blocks[--seq->n_blocks]);
    seq->n_tokens = n_tokens;
    if (seq->n_committed > n_tokens / bs)
        seq->n_committed = n_tokens / bs;
    return 0;
}

/* ---- debug check ---- */

#define CHECK_FAIL(...) rf_err_set(err, RF_EFORMAT, "KV pool: " __VA_ARGS__)

static int check_tables(const rf_kv_pool_t *pool, const rf_kv_seq_t *const *seqs, size_t n_seqs,
                        rf_err_t *err)
{
    uint32_t bs = pool->block_size;
    uint32_t *count = pool->scratch;
    uint32_t *last_table = pool->scratch + pool->n_blocks; /* table index + 1 */
    memset(count, 0, 2 * (size_t)pool->n_blocks * sizeof *count);
    for (size_t s = 0; s < n_seqs; s++) {
        const rf_kv_seq_t *seq = seqs[s];
        if (seq->n_blocks != ((uint64_t)seq->n_tokens + bs - 1) / bs || seq->n_blocks > seq->cap)
            return CHECK_FAIL("invariant 4: table %zu has %u blocks (cap %u) for %u tokens", s,
                              seq->n_blocks, seq->cap, seq->n_tokens);
        if ((uint64_t)seq->n_committed * bs > seq->n_tokens)
            return CHECK_FAIL("invariant 4: table %zu has %u committed blocks but %u tokens", s,
                              seq->n_committed, seq->n_tokens);
        for (uint32_t i = 0; i < seq->n_blocks; i++) {
            uint32_t id = seq->blocks[i];
            if (id == 0)
                return CHECK_FAIL("invariant 3: table %zu holds reserved block 0 at index %u",
                                  s, i);
            if (id >= pool->n_blocks)
                return CHECK_FAIL("invariant 4: table %zu holds block %u at index %u, pool "
                                  "has %u", s, id, i, pool->n_blocks);
            if (last_table[id] == (uint32_t)(s + 1))
                return CHECK_FAIL("invariant 2: table %zu holds block %u twice", s, id);
            last_table[id] = (uint32_t)(s + 1);
            count[id]++;
            if (i >= seq->n_committed)
                continue;
            const kv_block_t *b = &pool->block[id];
            uint32_t parent = i == 0 ? 0 : seq->blocks[i - 1];
            if (!b->registered || b->parent != parent ||
                b->parent_gen != pool->block[parent].gen ||
                b->parent_hash != parent_hash_of(pool, seq, i))
                return CHECK_FAIL("invariant 6: table %zu committed block %u at index %u is %s",
                                  s, id, i,
                                  b->registered ? "keyed on another previous block"
                                                : "not in the prefix cache");
        }
    }
    for (uint32_t id = 1; id < pool->n_blocks; id++)
        if (count[id] != pool->block[id].ref)
            return CHECK_FAIL("invariant 2: block %u has ref count %u but %u table entries "
                              "hold it", id, pool->block[id].ref, count[id]);
    return 0;
}

static int check_lists(const rf_kv_pool_t *pool, rf_err_t *err)
{
    enum { ON_FREE = 1, ON_LRU = 2 };
    uint32_t *mark = pool->scratch;
    memset(mark, 0, pool->n_blocks * sizeof *mark);
    const kv_block_t *block0 = &pool->block[0];
    if (block0->ref != 0 || block0->registered)
        return CHECK_FAIL("invariant 3: reserved block 0 has ref %u%s", block0->ref,
                          block0->registered ? " and is in the prefix cache" : "");
    if (pool->n_free > pool->n_blocks - 1)
        return CHECK_FAIL("invariant 1: %u free blocks in a pool of %u", pool->n_free,
                          pool->n_blocks);
    for (uint32_t k = 0; k < pool->n_free; k++) {
        uint32_t id = pool->free_stack[k];
        if (id == 0 || id >= pool->n_blocks)
            return CHECK_FAIL("invariant 3: free list entry %u is block %u", k, id);
        const kv_block_t *b = &pool->block[id];
        if (mark[id] != 0)
            return CHECK_FAIL("invariant 1: block %u is on the free list twice", id);
        if (b->ref != 0 || b->registered)
            return CHECK_FAIL("invariant 1: block %u is free but has ref %u%s", id, b->ref,
                              b->registered ? " and is in the prefix cache" : "");
        mark[id] = ON_FREE;
    }
    uint32_t n_lru = 0;
    for (uint32_t prev = 0, id = block0->lru_next; id != 0;
         prev = id, id = pool->block[id].lru_next) {
        if (id >= pool->n_blocks || n_lru >= pool->n_blocks)
            return CHECK_FAIL("invariant 1: LRU list is broken after block %u", prev);
        const kv_block_t *b = &pool->block[id];
        if (b->lru_prev != prev)
            return CHECK_FAIL("invariant 1: LRU block %u links back to %u, not %u", id,
                              b->lru_prev, prev);
        if (mark[id] != 0)
            return CHECK_FAIL("invariant 1: block %u is on the %s list and the LRU list", id,
                              mark[id] == ON_FREE ? "free" : "LRU");
        if (b->ref != 0 || !b->registered)
            return CHECK_FAIL("invariant 1: block %u is cached but has ref %u%s", id, b->ref,
                              b->registered ? "" : " and is not in the prefix cache");
        mark[id] = ON_LRU;
        n_lru++;
    }
    if (n_lru != pool->n_cached)
        return CHECK_FAIL("invariant 1: %u blocks on the LRU list, %u counted cached", n_lru,
                          pool->n_cached);
    uint32_t n_used = 0;
    for (uint32_t id = 1; id < pool->n_blocks; id++) {
        const kv_block_t *b = &pool->block[id];
        if (b->ref > 0)
            n_used++;
        else if (mark[id] == 0)
            return CHECK_FAIL("invariant 1: block %u has ref 0 but is neither free nor cached",
                              id);
    }
    if (n_used != pool->n_used ||
        (uint64_t)pool->n_free + pool->n_cached + pool->n_used != pool->n_blocks - 1)
        return CHECK_FAIL("invariant 1: free %u + cached %u + used %u (%u counted) != %u "
                          "usable blocks", pool->n_free, pool->n_cached, pool->n_used, n_used,
                          pool->n_blocks - 1);
    return 0;
}

static int check_hash_table(const rf_kv_pool_t *pool, rf_err_t *err)
{
    uint32_t mask = pool->slot_mask;
    uint32_t n_entries = 0, n_registered = 0;
    for (uint32_t s = 0; s <= mask; s++) {
        uint32_t id = pool->slots[s];
        if (id == 0)
            continue;
        n_entries++;
        if (id >= pool->n_blocks)
            return CHECK_FAIL("invariant 5: hash slot %u holds block %u, pool has %u", s, id,
                              pool->n_blocks);
        const kv_block_t *b = &pool->block[id];
        if (!b->registered)
            return CHECK_FAIL("invariant 5: hash slot %u holds block %u, which is not "
                              "registered", s, id);
        if (chain_hash(b->parent_hash, block_tokens(pool, id), pool->block_size) != b->hash)
            return CHECK_FAIL("invariant 5: block %u's stored key does not hash to its hash "
                              "%016llx", id, (unsigned long long)b->hash);
        for (uint32_t p = home_slot(pool, b->hash); p != s; p = (p + 1) & mask)
            if (pool->slots[p] == 0)
                return CHECK_FAIL("invariant 5: block %u in hash slot %u is unreachable from "
                                  "its home slot", id, s);
    }
    for (uint32_t id = 0; id < pool->n_blocks; id++)
        n_registered += pool->block[id].registered;
    if (n_entries != n_registered)
        return CHECK_FAIL("invariant 5: %u hash table entries but %u registered blocks",
                          n_entries, n_registered);
    return 0;
}

int rf_kv_check(const rf_kv_pool_t *pool, const rf_kv_seq_t *const *seqs, size_t n_seqs,
                rf_err_t *err)
{
    int rc = check_lists(pool, err);
    if (rc == 0)
        rc = check_hash_table(pool, err);
    if (rc == 0)
        rc = check_tables(pool, seqs, n_seqs, err);
    return rc;
}
