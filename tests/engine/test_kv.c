/* test_kv.c - paged KV bookkeeping: allocation, prefix cache, LRU, sharing, the check
 *
 * Most tests drive the pool the way the scheduler does (match, reserve,
 * prepare_write, commit, free) and look at block ids, reference counts and
 * the stats. The randomized test also simulates the backend's storage: each
 * token slot holds a value that depends on the whole prefix up to it, written
 * only through the block tables and copied only as rf_kv_prepare_write says,
 * so a wrong prefix hit, a missed copy-on-write or a block handed out while
 * in use shows up as a wrong value read back.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static rf_kv_pool_t *open_pool(uint32_t n_blocks, uint32_t block_size)
{
    rf_kv_pool_t *pool = NULL;
    rf_err_t err = {0};
    int rc = rf_kv_open(&pool, n_blocks, block_size, &err);
    cr_assert_eq(rc, 0, "rf_kv_open(%u, %u): %s", n_blocks, block_size, err.msg);
    return pool;
}

static rf_kv_stats_t stats_of(const rf_kv_pool_t *pool)
{
    rf_kv_stats_t st;
    rf_kv_stats(pool, &st);
    return st;
}

/* Assert rf_kv_check passes with exactly these live tables. */
static void check_ok(const rf_kv_pool_t *pool, const rf_kv_seq_t *const *seqs, size_t n)
{
    rf_err_t err = {0};
    int rc = rf_kv_check(pool, seqs, n, &err);
    cr_assert_eq(rc, 0, "rf_kv_check: %s", err.msg);
}

/* Prefill a sequence with tokens[0 .. n) the scheduler way: match, then
 * reserve + prepare_write + commit the rest in one chunk. Returns the
 * number of tokens the prefix cache supplied. */
static uint32_t prefill(rf_kv_pool_t *pool, rf_kv_seq_t *seq, const int32_t *tokens, uint32_t n)
{
    int matched = rf_kv_match_prefix(pool, seq, tokens, n, n - 1);
    cr_assert_geq(matched, 0, "match_prefix: %s", rf_strerror(matched));
    cr_assert_eq(rf_kv_reserve(pool, seq, n), 0);
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 99;
    cr_assert_eq(rf_kv_prepare_write(pool, seq, (uint32_t)matched, n - (uint32_t)matched, copies,
                                     &n_copies), 0);
    cr_assert_eq(n_copies, 0);
    cr_assert_eq(rf_kv_commit(pool, seq, tokens, n), 0);
    return (uint32_t)matched;
}

static void fill_tokens(int32_t *t, uint32_t n, int32_t base)
{
    for (uint32_t i = 0; i < n; i++)
        t[i] = base + (int32_t)i;
}

/* ---- pool and allocation ---- */

Test(kv, open_rejects_bad_sizes)
{
    rf_kv_pool_t *pool = (rf_kv_pool_t *)&pool;
    rf_err_t err = {0};
    cr_assert_eq(rf_kv_open(&pool, 1, 16, &err), RF_ERANGE);
    cr_assert_null(pool);
    cr_assert(strstr(err.msg, "block 0 is reserved") != NULL, "message: %s", err.msg);
    rf_err_clear(&err);
    cr_assert_eq(rf_kv_open(&pool, 8, 0, &err), RF_ERANGE);
    cr_assert(strstr(err.msg, "block size") != NULL, "message: %s", err.msg);
    cr_assert_eq(rf_kv_open(&pool, 1u << 30, 16, NULL), RF_ERANGE);
    rf_kv_close(NULL);
}

Test(kv, reserve_until_exhausted_then_no_space_changes_nothing)
{
    rf_kv_pool_t *pool = open_pool(9, 16); /* 8 usable blocks */
    rf_kv_seq_t a, b;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&b);
    cr_assert_eq(rf_kv_reserve(pool, &a, 1), 0);
    cr_assert_eq(a.n_blocks, 1);
    cr_assert_eq(a.n_tokens, 1);
    cr_assert_eq(rf_kv_reserve(pool, &a, 16), 0);
    cr_assert_eq(a.n_blocks, 1, "16 tokens still fit one block");
    cr_assert_eq(rf_kv_reserve(pool, &a, 80), 0);
    cr_assert_eq(a.n_blocks, 5);
    cr_assert_eq(rf_kv_reserve(pool, &b, 48), 0);
    cr_assert_eq(stats_of(pool).n_free, 0);

    uint32_t before[5];
    memcpy(before, a.blocks, sizeof before);
    cr_assert_eq(rf_kv_reserve(pool, &a, 81), RF_KV_NO_SPACE);
    cr_assert_eq(a.n_blocks, 5);
    cr_assert_eq(a.n_tokens, 80, "a failed reserve must not move n_tokens");
    cr_assert_arr_eq(a.blocks, before, sizeof before);
    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.n_used, 8);
    cr_assert_eq(st.n_free + st.n_cached, 0);
    const rf_kv_seq_t *live[] = {&a, &b};
    check_ok(pool, live, 2);

    /* once b is gone, a can grow into its blocks */
    rf_kv_seq_free(pool, &b);
    cr_assert_eq(rf_kv_reserve(pool, &a, 81), 0);
    cr_assert_eq(a.n_blocks, 6);
    rf_kv_seq_free(pool, &a);
    rf_kv_close(pool);
}

Test(kv, never_fitting_reserve_is_a_range_error)
{
    rf_kv_pool_t *pool = open_pool(5, 4); /* 4 usable blocks: 16 tokens */
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    cr_assert_eq(rf_kv_reserve(pool, &a, 16), 0);
    rf_kv_seq_t b;
    rf_kv_seq_init(&b);
    cr_assert_eq(rf_kv_reserve(pool, &b, 17), RF_ERANGE,
                 "more than the whole pool can never fit: an error, not a wait");
    cr_assert_eq(rf_kv_reserve(pool, &b, 4), RF_KV_NO_SPACE, "fits later: wait");
    cr_assert_eq(b.n_blocks, 0);
    rf_kv_seq_free(pool, &a);
    rf_kv_seq_free(pool, &b);
    rf_kv_close(pool);
}

Test(kv, block_zero_is_never_handed_out)
{
    rf_kv_pool_t *pool = open_pool(33, 1);
    rf_kv_seq_t seqs[4];
    bool seen[33] = {false};
    for (size_t s = 0; s < N_OF(seqs); s++) {
        rf_kv_seq_init(&seqs[s]);
        cr_assert_eq(rf_kv_reserve(pool, &seqs[s], 8), 0);
        for (uint32_t i = 0; i < seqs[s].n_blocks; i++) {
            uint32_t id = seqs[s].blocks[i];
            cr_assert_neq(id, RF_KV_NULL_BLOCK);
            cr_assert_lt(id, 33);
            cr_assert(!seen[id], "block %u handed out twice", id);
            seen[id] = true;
        }
    }
    cr_assert_eq(stats_of(pool).n_free, 0, "all 32 usable blocks are out, block 0 is not");
    for (size_t s = 0; s < N_OF(seqs); s++)
        rf_kv_seq_free(pool, &seqs[s]);
    rf_kv_close(pool);
}

Test(kv, seq_free_returns_blocks_and_zeroed_free_is_fine)
{
    rf_kv_pool_t *pool = open_pool(17, 16);
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    rf_kv_seq_free(pool, &a); /* zeroed: nothing to do */
    cr_assert_eq(rf_kv_reserve(pool, &a, 100), 0);
    cr_assert_eq(stats_of(pool).n_used, 7);
    rf_kv_seq_free(pool, &a);
    cr_assert_null(a.blocks);
    cr_assert_eq(a.n_blocks, 0);
    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.n_used, 0);
    cr_assert_eq(st.n_free, 16, "uncommitted blocks go back to the free list");
    cr_assert_eq(st.n_cached, 0);
    rf_kv_seq_free(pool, &a);
    check_ok(pool, NULL, 0);
    rf_kv_close(pool);
}

/* ---- prefix cache ---- */

Test(kv, prefix_hit_shares_blocks_and_leaves_a_token_to_compute)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[12];
    fill_tokens(t, 12, 100);
    rf_kv_seq_t a, b;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&b);
    cr_assert_eq(prefill(pool, &a, t, 12), 0, "empty cache: no hit");
    cr_assert_eq(a.n_committed, 3);

    /* the same 12 tokens: 3 full blocks cached, but max_tokens 11 keeps the
     * last block out so the last token is computed and gives logits */
    int matched = rf_kv_match_prefix(pool, &b, t, 12, 11);
    cr_assert_eq(matched, 8);
    cr_assert_eq(b.n_tokens, 8);
    cr_assert_eq(b.n_blocks, 2);
    cr_assert_eq(b.n_committed, 2);
    for (uint32_t i = 0; i < 2; i++) {
        cr_assert_eq(b.blocks[i], a.blocks[i], "block %u must be shared", i);
        cr_assert_eq(rf_kv_block_ref(pool, a.blocks[i]), 2);
    }
    cr_assert_eq(rf_kv_block_ref(pool, a.blocks[2]), 1);
    const rf_kv_seq_t *live[] = {&a, &b};
    check_ok(pool, live, 2);

    /* a longer prompt with the same start matches all three blocks */
    int32_t longer[14];
    memcpy(longer, t, sizeof t);
    longer[12] = 7;
    longer[13] = 8;
    rf_kv_seq_t c;
    rf_kv_seq_init(&c);
    cr_assert_eq(rf_kv_match_prefix(pool, &c, longer, 14, 13), 12);

    /* a prompt differing in the second block matches only the first */
    rf_kv_seq_t d;
    rf_kv_seq_init(&d);
    int32_t other[12];
    memcpy(other, t, sizeof other);
    other[5] = -1;
    cr_assert_eq(rf_kv_match_prefix(pool, &d, other, 12, 11), 4);
    cr_assert_eq(rf_kv_block_ref(pool, a.blocks[0]), 4);

    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.prefix_queries, 4);
    cr_assert_eq(st.prefix_query_tokens, 11 + 11 + 13 + 11);
    cr_assert_eq(st.prefix_hit_tokens, 8 + 12 + 4);
    cr_assert_eq(rf_kv_match_prefix(pool, &d, t, 12, 11), -EINVAL, "d is not empty");

    rf_kv_seq_free(pool, &a);
    rf_kv_seq_free(pool, &b);
    rf_kv_seq_free(pool, &c);
    rf_kv_seq_free(pool, &d);
    check_ok(pool, NULL, 0);
    rf_kv_close(pool);
}

Test(kv, same_block_tokens_under_another_parent_do_not_hit)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[9] = {1, 2, 3, 4, 5, 6, 7, 8, 0};
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    prefill(pool, &a, t, 9);
    /* second block's tokens 5..8 cached after 1..4; after 9..12 they must miss */
    int32_t u[9] = {9, 10, 11, 12, 5, 6, 7, 8, 0};
    rf_kv_seq_t b;
    rf_kv_seq_init(&b);
    cr_assert_eq(rf_kv_match_prefix(pool, &b, u, 9, 8), 0);
    /* nor as the first block */
    int32_t v[5] = {5, 6, 7, 8, 0};
    cr_assert_eq(rf_kv_match_prefix(pool, &b, v, 5, 4), 0);
    rf_kv_seq_free(pool, &b);
    rf_kv_seq_free(pool, &a);
    rf_kv_close(pool);
}

Test(kv, freed_committed_blocks_stay_cached_and_a_hit_revives_them)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[10];
    fill_tokens(t, 10, 0);
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    prefill(pool, &a, t, 10);
    uint32_t b0 = a.blocks[0], b1 = a.blocks[1];
    rf_kv_seq_free(pool, &a);
    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.n_cached, 2, "the two full blocks stay cached");
    cr_assert_eq(st.n_free, 14, "the partial block is free");
    cr_assert_eq(st.n_used, 0);

    rf_kv_seq_t b;
    rf_kv_seq_init(&b);
    cr_assert_eq(rf_kv_match_prefix(pool, &b, t, 10, 9), 8);
    cr_assert_eq(b.blocks[0], b0);
    cr_assert_eq(b.blocks[1], b1);
    cr_assert_eq(rf_kv_block_ref(pool, b0), 1);
    st = stats_of(pool);
    cr_assert_eq(st.n_cached, 0, "revived blocks leave the LRU");
    cr_assert_eq(st.n_used, 2);
    const rf_kv_seq_t *live[] = {&b};
    check_ok(pool, live, 1);
    rf_kv_seq_free(pool, &b);
    rf_kv_close(pool);
}

Test(kv, eviction_takes_free_blocks_first_then_least_recently_used)
{
    /* 6 usable blocks of 2 tokens */
    rf_kv_pool_t *pool = open_pool(7, 2);
    int32_t p[3][3] = {{10, 11, 0}, {20, 21, 0}, {30, 31, 0}};
    rf_kv_seq_t s[3];
    for (int i = 0; i < 3; i++) {
        rf_kv_seq_init(&s[i]);
        prefill(pool, &s[i], p[i], 3); /* block 0 full + committed, block 1 partial */
    }
    /* free in the order 1, 0, 2: cached LRU order is p1, p0, p2; s[2] stays */
    rf_kv_seq_free(pool, &s[1]);
    rf_kv_seq_free(pool, &s[0]);
    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.n_cached, 2);
    cr_assert_eq(st.n_free, 2);
    cr_assert_eq(st.n_used, 2);

    /* 2 blocks come from the free list: nothing evicted */
    rf_kv_seq_t x;
    rf_kv_seq_init(&x);
    cr_assert_eq(rf_kv_reserve(pool, &x, 4), 0);
    cr_assert_eq(stats_of(pool).evictions, 0);
    /* the third evicts the least recently freed: p1 */
    cr_assert_eq(rf_kv_reserve(pool, &x, 6), 0);
    cr_assert_eq(stats_of(pool).evictions, 1);
    rf_kv_seq_t probe;
    rf_kv_seq_init(&probe);
    cr_assert_eq(rf_kv_match_prefix(pool, &probe, p[1], 3, 2), 0, "p1 was evicted");
    cr_assert_eq(rf_kv_match_prefix(pool, &probe, p[0], 3, 2), 2, "p0 is still cached");
    rf_kv_seq_free(pool, &probe);
    /* p0 was just revived and freed again: most recent now. Only ref-0
     * blocks are evictable: s[2]'s blocks are in use, so once p0 is gone
     * the pool is full */
    cr_assert_eq(rf_kv_reserve(pool, &x, 8), 0);
    cr_assert_eq(stats_of(pool).evictions, 2);
    cr_assert_eq(rf_kv_reserve(pool, &x, 10), RF_KV_NO_SPACE);
    cr_assert_eq(rf_kv_match_prefix(pool, &probe, p[2], 3, 2), 2, "p2 (in use) still hits");
    const rf_kv_seq_t *live[] = {&s[2], &x, &probe};
    check_ok(pool, live, 3);
    rf_kv_seq_free(pool, &probe);
    rf_kv_seq_free(pool, &x);
    rf_kv_seq_free(pool, &s[2]);
    check_ok(pool, NULL, 0);
    rf_kv_close(pool);
}

Test(kv, eviction_takes_a_chains_tail_before_its_head)
{
    rf_kv_pool_t *pool = open_pool(5, 2); /* 4 usable blocks */
    int32_t t[7] = {1, 2, 3, 4, 5, 6, 0};
    rf_kv_seq_t a, x, probe;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&x);
    rf_kv_seq_init(&probe);
    prefill(pool, &a, t, 7); /* (1 2) (3 4) (5 6) cached once freed, (0) free */
    rf_kv_seq_free(pool, &a);
    cr_assert_eq(rf_kv_reserve(pool, &x, 4), 0, "takes the free block and evicts one");
    cr_assert_eq(stats_of(pool).evictions, 1);
    /* evicting (1 2) would have made (3 4) and (5 6) unreachable */
    cr_assert_eq(rf_kv_match_prefix(pool, &probe, t, 7, 6), 4);
    rf_kv_seq_free(pool, &probe);
    rf_kv_seq_free(pool, &x);
    rf_kv_close(pool);
}

Test(kv, commit_of_a_duplicate_block_swaps_in_the_cached_one)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[6];
    fill_tokens(t, 6, 40);
    rf_kv_seq_t a, b;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&b);
    /* both admitted before either committed: no hit for b */
    cr_assert_eq(rf_kv_match_prefix(pool, &a, t, 6, 5), 0);
    cr_assert_eq(rf_kv_match_prefix(pool, &b, t, 6, 5), 0);
    cr_assert_eq(rf_kv_reserve(pool, &a, 6), 0);
    cr_assert_eq(rf_kv_reserve(pool, &b, 6), 0);
    uint32_t b_own = b.blocks[0];
    cr_assert_eq(rf_kv_commit(pool, &a, t, 6), 0);
    cr_assert_eq(rf_kv_commit(pool, &b, t, 6), 0);
    cr_assert_eq(b.blocks[0], a.blocks[0], "b now uses a's registered block");
    cr_assert_eq(rf_kv_block_ref(pool, a.blocks[0]), 2);
    cr_assert_eq(rf_kv_block_ref(pool, b_own), 0, "b's duplicate went back to the pool");
    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.dedup_swaps, 1);
    cr_assert_eq(st.n_used, 3);
    const rf_kv_seq_t *live[] = {&a, &b};
    check_ok(pool, live, 2);
    rf_kv_seq_free(pool, &a);
    rf_kv_seq_free(pool, &b);
    rf_kv_close(pool);
}

Test(kv, commit_beyond_reserved_tokens_is_a_range_error)
{
    rf_kv_pool_t *pool = open_pool(9, 4);
    int32_t t[8] = {0};
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    cr_assert_eq(rf_kv_reserve(pool, &a, 4), 0);
    cr_assert_eq(rf_kv_commit(pool, &a, t, 8), RF_ERANGE);
    cr_assert_eq(a.n_committed, 0);
    rf_kv_seq_free(pool, &a);
    rf_kv_close(pool);
}

/* ---- sharing and copy-on-write ---- */

Test(kv, fork_then_prepare_write_copies_only_the_shared_partial_block)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[6];
    fill_tokens(t, 6, 0);
    rf_kv_seq_t a, b;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&b);
    prefill(pool, &a, t, 6); /* blocks: [full, 2 of 4] */
    cr_assert_eq(rf_kv_fork(pool, &b, &a), 0);
    cr_assert_eq(b.n_tokens, 6);
    cr_assert_eq(b.n_committed, 1);
    uint32_t full = a.blocks[0], partial = a.blocks[1];
    cr_assert_eq(rf_kv_block_ref(pool, full), 2);
    cr_assert_eq(rf_kv_block_ref(pool, partial), 2);
    cr_assert_eq(rf_kv_fork(pool, &b, &a), -EINVAL, "dst must be empty");

    /* sample 1 writes its first token at position 6 */
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 0;
    cr_assert_eq(rf_kv_reserve(pool, &a, 7), 0);
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 6, 1, copies, &n_copies), 0);
    cr_assert_eq(n_copies, 1);
    cr_assert_eq(copies[0].src_block, partial);
    cr_assert_eq(copies[0].dst_block, a.blocks[1]);
    cr_assert_neq(a.blocks[1], partial);
    cr_assert_eq(a.blocks[0], full, "the full block stays shared");
    cr_assert_eq(rf_kv_block_ref(pool, partial), 1);
    cr_assert_eq(rf_kv_block_ref(pool, a.blocks[1]), 1);

    /* sample 2 now owns the old partial block alone: no copy */
    cr_assert_eq(rf_kv_reserve(pool, &b, 7), 0);
    cr_assert_eq(rf_kv_prepare_write(pool, &b, 6, 1, copies, &n_copies), 0);
    cr_assert_eq(n_copies, 0);
    cr_assert_eq(b.blocks[1], partial);
    cr_assert_eq(stats_of(pool).cow_copies, 1);
    const rf_kv_seq_t *live[] = {&a, &b};
    check_ok(pool, live, 2);
    rf_kv_seq_free(pool, &a);
    rf_kv_seq_free(pool, &b);
    rf_kv_close(pool);
}

Test(kv, shared_block_past_the_written_slots_is_replaced_without_a_copy)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[4];
    fill_tokens(t, 4, 0);
    rf_kv_seq_t a, b;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&b);
    prefill(pool, &a, t, 4);
    cr_assert_eq(rf_kv_reserve(pool, &a, 8), 0); /* reserved ahead, then forked */
    cr_assert_eq(rf_kv_fork(pool, &b, &a), 0);
    uint32_t ahead = a.blocks[1];
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 9;
    cr_assert_eq(rf_kv_prepare_write(pool, &b, 4, 4, copies, &n_copies), 0);
    cr_assert_eq(n_copies, 0, "nothing before position 4 lives in block 1");
    cr_assert_neq(b.blocks[1], ahead);
    cr_assert_eq(a.blocks[1], ahead);
    cr_assert_eq(rf_kv_block_ref(pool, ahead), 1);
    const rf_kv_seq_t *live[] = {&a, &b};
    check_ok(pool, live, 2);
    rf_kv_seq_free(pool, &a);
    rf_kv_seq_free(pool, &b);
    rf_kv_close(pool);
}

Test(kv, prepare_write_without_space_changes_nothing)
{
    rf_kv_pool_t *pool = open_pool(3, 4); /* 2 usable blocks */
    int32_t t[6];
    fill_tokens(t, 6, 0);
    rf_kv_seq_t a, b;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&b);
    prefill(pool, &a, t, 6);
    cr_assert_eq(rf_kv_fork(pool, &b, &a), 0);
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 9;
    uint32_t before[2] = {a.blocks[0], a.blocks[1]};
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 6, 1, copies, &n_copies), RF_KV_NO_SPACE);
    cr_assert_eq(n_copies, 0);
    cr_assert_arr_eq(a.blocks, before, sizeof before);
    cr_assert_eq(rf_kv_block_ref(pool, before[1]), 2);
    /* outside the table, or into committed blocks: range errors */
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 7, 2, copies, &n_copies), RF_ERANGE);
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 3, 1, copies, &n_copies), RF_ERANGE);
    const rf_kv_seq_t *live[] = {&a, &b};
    check_ok(pool, live, 2);
    rf_kv_seq_free(pool, &b);
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 6, 1, copies, &n_copies), 0);
    cr_assert_eq(n_copies, 0, "the last sharer writes in place");
    rf_kv_seq_free(pool, &a);
    rf_kv_close(pool);
}

/* ---- truncate ---- */

Test(kv, truncate_releases_blocks_and_a_rewrite_leaves_the_cache)
{
    rf_kv_pool_t *pool = open_pool(17, 4);
    int32_t t[10];
    fill_tokens(t, 10, 0);
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    prefill(pool, &a, t, 10); /* [full, full, 2 of 4] */
    cr_assert_eq(rf_kv_truncate(pool, &a, 11), RF_ERANGE);
    cr_assert_eq(rf_kv_truncate(pool, &a, 6), 0);
    cr_assert_eq(a.n_tokens, 6);
    cr_assert_eq(a.n_blocks, 2);
    cr_assert_eq(a.n_committed, 1, "block 1 is now partial");
    rf_kv_stats_t st = stats_of(pool);
    cr_assert_eq(st.n_used, 2);
    cr_assert_eq(st.n_free, 14);
    const rf_kv_seq_t *live[] = {&a};
    check_ok(pool, live, 1);

    /* block 1 is still cached under tokens 4..7; writing a different token
     * at position 6 must take it out of the cache first */
    uint32_t kept = a.blocks[1];
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 9;
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 6, 1, copies, &n_copies), 0);
    cr_assert_eq(n_copies, 0, "private: written in place");
    cr_assert_eq(a.blocks[1], kept);
    rf_kv_seq_t b;
    rf_kv_seq_init(&b);
    cr_assert_eq(rf_kv_match_prefix(pool, &b, t, 10, 9), 4,
                 "the rewritten block must no longer hit");
    const rf_kv_seq_t *live2[] = {&a, &b};
    check_ok(pool, live2, 2);
    rf_kv_seq_free(pool, &b);

    cr_assert_eq(rf_kv_truncate(pool, &a, 0), 0);
    cr_assert_eq(a.n_blocks, 0);
    cr_assert_eq(stats_of(pool).n_used, 0);
    rf_kv_seq_free(pool, &a);
    rf_kv_close(pool);
}

Test(kv, rewritten_block_orphans_its_cached_children)
{
    rf_kv_pool_t *pool = open_pool(17, 2);
    int32_t t[7] = {1, 2, 3, 4, 5, 6, 0};
    rf_kv_seq_t a;
    rf_kv_seq_init(&a);
    prefill(pool, &a, t, 7); /* (1 2) (3 4) (5 6) (0) */
    uint32_t child = a.blocks[2];
    /* roll back into block 1 and write 9 where 4 was: block 1 becomes (3 9) */
    cr_assert_eq(rf_kv_truncate(pool, &a, 3), 0);
    cr_assert_eq(rf_kv_block_ref(pool, child), 0, "(5 6) is cached, unreferenced");
    rf_kv_copy_t copies[RF_KV_MAX_COPIES];
    uint32_t n_copies = 0;
    cr_assert_eq(rf_kv_reserve(pool, &a, 4), 0);
    cr_assert_eq(rf_kv_prepare_write(pool, &a, 3, 1, copies, &n_copies), 0);
    t[3] = 9;
    cr_assert_eq(rf_kv_commit(pool, &a, t, 4), 0);
    const rf_kv_seq_t *live[] = {&a};
    check_ok(pool, live, 1);
    /* (5 6) was computed after (3 4), not after (3 9): it must not hit */
    rf_kv_seq_t b;
    rf_kv_seq_init(&b);
    cr_assert_eq(rf_kv_match_prefix(pool, &b, t, 7, 6), 4);
    cr_assert_eq(b.blocks[1], a.blocks[1], "the rewritten block is cached under (3 9)");
    rf_kv_seq_free(pool, &b);
    int32_t old[7] = {1, 2, 3, 4, 5, 6, 0};
    cr_assert_eq(rf_kv_match_prefix(pool, &b, old, 7, 6), 2, "(3 4) is gone from the cache");
    rf_kv_seq_free(pool, &b);
    rf_kv_seq_free(pool, &a);
    check_ok(pool, NULL, 0);
    rf_kv_close(pool);
}

/* ---- the check itself ---- */

Test(kv, check_names_a_broken_ref_count)
{
    rf_kv_pool_t *pool = open_pool(9, 4);
    int32_t t[5] = {1, 2, 3, 4, 5};
    rf_kv_seq_t a, leaked;
    rf_kv_seq_init(&a);
    rf_kv_seq_init(&leaked);
    prefill(pool, &a, t, 5);
    cr_assert_eq(rf_kv_fork(pool, &leaked, &a), 0);
    const rf_kv_seq_t *both[] = {&a, &leaked};
    check_ok(pool, both, 2);

    /* a table the scheduler lost track of: refs exceed table entries */
    const rf_kv_seq_t *one[] = {&a};
    rf_err_t err = {0};
    cr_assert_eq(rf_kv_check(pool, one, 1, &err), RF_EFORMAT);
    cr_assert(strstr(err.msg, "invariant 2") && strstr(err.msg, "ref count 2") &&
                  strstr(err.msg, "1 table entries"),
              "message: %s", err.msg);

    /* a table entry overwritten with another block */
    uint32_t saved = leaked.blocks[1];
    leaked.blocks[1] = a.blocks[0];
    rf_err_clear(&err);
    cr_assert_eq(rf_kv_check(pool, both, 2, &err), RF_EFORMAT);
    cr_assert(strstr(err.msg, "invariant 2") != NULL, "message: %s", err.msg);
    /* block 0 in a table */
    leaked.blocks[1] = RF_KV_NULL_BLOCK;
    rf_err_clear(&err);
    cr_assert_eq(rf_kv_check(pool, both, 2, &err), RF_EFORMAT);
    cr_assert(strstr(err.msg, "invariant 3") && strstr(err.msg, "block 0"), "message: %s",
              err.msg);
    /* a table whose size disagrees with its token count */
    leaked.blocks[1] = saved;
    leaked.n_tokens = 9;
    rf_err_clear(&err);
    cr_assert_eq(rf_kv_check(pool, both, 2, &err), RF_EFORMAT);
    cr_assert(strstr(err.msg, "invariant 4") != NULL, "message: %s", err.msg);
    leaked.n_tokens = 5;
    check_ok(pool, both, 2);
    rf_kv_seq_free(pool, &leaked);
    rf_kv_seq_free(pool, &a);
    check_ok(pool, NULL, 0);
    rf_kv_close(pool);
}

/* ---- randomized: the scheduler's operations, checked after each ---- */

enum { R_TABLES = 20, R_BLOCK = 4, R_POOL = 48, R_MAX_TOKENS = 64, R_OPS = 10000 };

typedef struct rtable {
    rf_kv_seq_t seq;
    bool live;
    uint32_t n_known;    /* tokens decided */
    uint32_t n_computed; /* tokens whose values are in storage */
    int32_t tokens[R_MAX_TOKENS];
    uint64_t values[R_MAX_TOKENS]; /* slot_value of each computed position */
} rtable_t;

static uint64_t r_state = 0x2545F4914F6CDD1Dull;
static uint32_t r_next(uint32_t n)
{
    r_state ^= r_state >> 12;
    r_state ^= r_state << 25;
    r_state ^= r_state >> 27;
    return (uint32_t)((r_state * 2685821657736338717ull) >> 33) % n;
}

/* The value a backend would store at position p: depends on all of
 * tokens[0 .. p], as K/V do (a rolling hash of the previous value). */
static uint64_t slot_value(const rtable_t *r, uint32_t p)
{
    uint64_t v = p == 0 ? 0x1234567 : r->values[p - 1];
    return (v ^ (uint64_t)(uint32_t)r->tokens[p]) * 0x100000001b3ull + p;
}

static void r_verify(const rtable_t *tab, const uint64_t *storage)
{
    for (int s = 0; s < R_TABLES; s++) {
        const rtable_t *r = &tab[s];
        if (!r->live)
            continue;
        for (uint32_t p = 0; p < r->n_computed; p++) {
            uint32_t id = r->seq.blocks[p / R_BLOCK];
            cr_assert_eq(storage[id * R_BLOCK + p % R_BLOCK], r->values[p],
                         "table %d position %u (block %u) reads another sequence's K/V", s, p,
                         id);
        }
    }
}

/* A prompt from one of three shared prefixes plus a tail from a small
 * alphabet, so that full-block hits, partial hits and misses all occur. */
static void r_prompt(rtable_t *r)
{
    static const int32_t prefixes[3][12] = {
        {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
        {1, 2, 3, 4, 50, 60, 70, 80, 90, 100, 110, 120},
        {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7},
    };
    uint32_t which = r_next(3), keep = r_next(13);
    uint32_t n = keep + 1 + r_next(10);
    for (uint32_t i = 0; i < n; i++)
        r->tokens[i] = i < keep ? prefixes[which][i] : (int32_t)r_next(3);
    r->n_known = n;
}

Test(kv, random_operations_keep_every_invariant, .timeout = 120)
{
    rf_kv_pool_t *pool = open_pool(R_POOL, R_BLOCK);
    static rtable_t tab[R_TABLES];
    static uint64_t storage[R_POOL * R_BLOCK];
    const rf_kv_seq_t *live[R_TABLES];
    memset(tab, 0, sizeof tab);
    uint32_t counts[8] = {0};
    for (int op = 0; op < R_OPS; op++) {
        rtable_t *r = &tab[r_next(R_TABLES)];
        uint32_t kind = r_next(100);
        if (!r->live) {
            /* admit: prefix match, then computing the rest is a later step */
            rf_kv_seq_init(&r->seq);
            r_prompt(r);
            int matched = rf_kv_match_prefix(pool, &r->seq, r->tokens, r->n_known, r->n_known - 1);
            cr_assert_geq(matched, 0);
            cr_assert_lt((uint32_t)matched, r->n_known);
            r->n_computed = (uint32_t)matched;
            for (uint32_t p = 0; p < r->n_computed; p++)
                r->values[p] = slot_value(r, p);
            r->live = true;
            counts[0]++;
            counts[7] += matched > 0;
        } else if (kind < 50) {
            /* one step: a prefill chunk or a decode token */
            uint32_t n_new = r->n_computed < r->n_known ? 1 + r_next(r->n_known - r->n_computed)
                                                        : 1;
            if (r->n_computed + n_new > R_MAX_TOKENS) {
                rf_kv_seq_free(pool, &r->seq);
                r->live = false;
                counts[3]++;
            } else {
                int rc = rf_kv_reserve(pool, &r->seq, r->n_computed + n_new);
                cr_assert(rc == 0 || rc == RF_KV_NO_SPACE, "reserve: %d", rc);
                rf_kv_copy_t copies[RF_KV_MAX_COPIES];
                uint32_t n_copies = 0;
                if (rc == 0)
                    rc = rf_kv_prepare_write(pool, &r->seq, r->n_computed, n_new, copies,
                                             &n_copies);
                cr_assert(rc == 0 || rc == RF_KV_NO_SPACE, "prepare_write: %d", rc);
                if (rc == 0) {
                    for (uint32_t c = 0; c < n_copies; c++)
                        memcpy(&storage[copies[c].dst_block * R_BLOCK],
                               &storage[copies[c].src_block * R_BLOCK],
                               R_BLOCK * sizeof *storage);
                    if (r->n_computed + n_new > r->n_known) {
                        /* decode: the sampled token joins the known tokens */
                        r->tokens[r->n_known++] = (int32_t)r_next(3);
                    }
                    for (uint32_t p = r->n_computed; p < r->n_computed + n_new; p++) {
                        r->values[p] = slot_value(r, p);
                        storage[r->seq.blocks[p / R_BLOCK] * R_BLOCK + p % R_BLOCK] =
                            r->values[p];
                    }
                    r->n_computed += n_new;
                    cr_assert_eq(rf_kv_commit(pool, &r->seq, r->tokens, r->n_computed), 0);
                    counts[1]++;
                } else {
                    counts[2]++;
                }
            }
        } else if (kind < 62) {
            rf_kv_seq_free(pool, &r->seq);
            r->live = false;
            counts[3]++;
        } else if (kind < 75) {
            rtable_t *dst = &tab[r_next(R_TABLES)];
            if (!dst->live && r->n_computed > 0) {
                rf_kv_seq_init(&dst->seq);
                cr_assert_eq(rf_kv_fork(pool, &dst->seq, &r->seq), 0);
                memcpy(dst->tokens, r->tokens, sizeof r->tokens);
                memcpy(dst->values, r->values, sizeof r->values);
                dst->n_known = r->n_computed; /* samples diverge from here */
                dst->n_computed = r->n_computed;
                r->n_known = r->n_computed;
                dst->live = true;
                counts[4]++;
            }
        } else if (kind < 85) {
            /* roll back; tokens after the cut are decided again */
            uint32_t n = r_next(r->n_computed + 1);
            cr_assert_eq(rf_kv_truncate(pool, &r->seq, n), 0);
            r->n_computed = n;
            r->n_known = n > 0 ? n : 1;
            for (uint32_t i = n; i < r->n_known; i++)
                r->tokens[i] = (int32_t)r_next(3);
            counts[5]++;
        } else {
            /* a step that fails after reserve (e.g. the batch was cut): the
             * table keeps reserved slots past n_computed, harmless */
            if (r->n_computed + R_BLOCK <= R_MAX_TOKENS &&
                rf_kv_reserve(pool, &r->seq, r->n_computed + R_BLOCK) == 0)
                counts[6]++;
        }
        size_t n_live = 0;
        for (int s = 0; s < R_TABLES; s++)
            if (tab[s].live)
                live[n_live++] = &tab[s].seq;
        rf_err_t err = {0};
        int rc = rf_kv_check(pool, live, n_live, &err);
        cr_assert_eq(rc, 0, "after operation %d: %s", op, err.msg);
        r_verify(tab, storage);
    }
    rf_kv_stats_t st = stats_of(pool);
    /* the mix must really have exercised each path */
    cr_assert_gt(counts[1], 1000, "steps: %u", counts[1]);
    cr_assert_gt(counts[2], 10, "steps refused for space: %u", counts[2]);
    cr_assert_gt(counts[4], 50, "forks: %u", counts[4]);
    cr_assert_gt(counts[7], 100, "admissions with a prefix hit: %u", counts[7]);
    cr_assert_gt(st.evictions, 100, "evictions: %llu", (unsigned long long)st.evictions);
    cr_assert_gt(st.cow_copies, 50, "copies: %llu", (unsigned long long)st.cow_copies);
    cr_assert_gt(st.dedup_swaps, 5, "dedup swaps: %llu", (unsigned long long)st.dedup_swaps);
    for (int s = 0; s < R_TABLES; s++)
        rf_kv_seq_free(pool, &tab[s].seq);
    st = stats_of(pool);
    cr_assert_eq(st.n_used, 0, "every block back in the pool");
    cr_assert_eq(st.n_free + st.n_cached, R_POOL - 1);
    check_ok(pool, NULL, 0);
    rf_kv_close(pool);
}
